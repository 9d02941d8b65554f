//! One shard's hash table: open addressing with linear probing over an
//! array of 8-byte buckets, each holding an entry pointer with a 16-bit
//! hash tag in its top bits.
//!
//! Owns: bucket layout, probing, the table sizes, backward-shift deletion
//! and the raw-pointer bookkeeping that goes with packing tags into
//! pointers.
//! Does not own: locking, load-factor policy, expiry or accounting (the
//! shard in `lib.rs` decides when to grow and what to remove).
//!
//! Why not hashbrown: a SwissTable keeps its control bytes and its slots
//! in different cache lines, so a lookup misses on the control group, then
//! on the slot, then on the entry. Here the tag sits next to the pointer:
//! one miss finds the bucket and filters out nearly every wrong entry
//! (1 in 65,536 false matches), and the bucket's address is computable
//! from the hash alone, so a pipeline of requests can prefetch it (see
//! `Store::prefetch`). Deletion shifts later members of the probe run
//! back, as Pogocache's own map does, so there are no tombstones and
//! probe runs stay short at the configured load factor. Entries do not
//! store their hash (see `entry.rs`): growth and deletion shifts rehash
//! the keys they move, with the store's seeded hasher.
//!
//! Why the sizes are not powers of two: a table that doubles runs
//! between 3/8 and 3/4 full, so its buckets cost 10.7 to 21.3 bytes per
//! item (16 on average), more than the rest of a small item's overhead.
//! Bucket counts here are `m << e` with `m` in 8..=15 from 64 buckets
//! up, so each growth step is 1.07x to 1.125x and a table at the default
//! load factor runs between 67% and 75% full: 10.7 to 12.0 bytes per item
//! (with `m` in 4..=7, the steps before issue 17's packing, 10.7 to 13.3;
//! a byte per item once entries carry no allocator rounding). Below 64
//! buckets `m` stays in 4..=7: a shard with a few dozen items gains a few
//! bytes from finer steps and pays a rehash of every item for each one
//! (11 growths more on the way to 64, 6% more instructions in the
//! benchmark's 100,000-key prefill). The home bucket is
//! `(low 32 bits of the hash × n) >> 32` (a multiply instead of a mask,
//! uniform for any `n`; the shard uses bits 32..48 and the tag the top 16,
//! so the three are independent). More steps mean more rehashing while a
//! table grows (about twelve moves per item in all, against two when
//! doubling); `resize` prefetches the keys it is about to rehash so those
//! moves do not each wait for a cache miss.

use std::alloc::{Layout, handle_alloc_error};
use std::hash::BuildHasher;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use foldhash::fast::FixedState;

use crate::entry::{Entry, EntryMut, EntryPtr};

/// Low 48 bits of a bucket: the entry's address. x86-64 and AArch64 Linux
/// give user space 47/48-bit addresses unless a program asks mmap for
/// more, which neither we nor the allocators we use do; `pack` checks.
const ADDR: u64 = (1 << 48) - 1;

#[inline]
fn tag(hash: u64) -> u64 {
    hash & !ADDR
}

#[inline]
fn pack(hash: u64, e: Entry) -> u64 {
    let addr = e.into_raw() as u64;
    assert!(addr & !ADDR == 0, "entry address above 48 bits");
    tag(hash) | addr
}

#[inline]
fn addr(b: u64) -> *mut u8 {
    (b & ADDR) as *mut u8
}

/// The smallest valid bucket count of at least `x` buckets: `m << e`
/// with `m` in 4..=7 below 64 buckets and in 8..=15 from 64 up.
pub(crate) fn size_at_least(x: usize) -> usize {
    let x = x.max(4);
    let bits = mantissa_bits(x);
    let e = (usize::BITS - 1 - x.leading_zeros()).saturating_sub(bits);
    let m = x.div_ceil(1 << e);
    if m >= 2 << bits {
        1 << (bits + e + 1)
    } else {
        m << e
    }
}

/// Bits of `m` below its leading one: 2 for small tables (few items, so
/// coarse steps cost little memory and save rehashing), 3 from 64 buckets.
#[inline]
fn mantissa_bits(n: usize) -> u32 {
    if n < 64 { 2 } else { 3 }
}

/// Packs a valid bucket count into 9 bits (`m` and `e`), for the store's
/// lock-free prefetch hint.
pub(crate) fn encode_size(n: usize) -> u64 {
    let e = (usize::BITS - 1 - n.leading_zeros()).saturating_sub(mantissa_bits(n));
    debug_assert_eq!(size_at_least(n), n, "not a table size");
    ((n >> e) as u64) | ((e as u64) << 4)
}

/// The bucket count [`encode_size`] packed.
#[inline]
pub(crate) fn decode_size(code: u64) -> usize {
    (code as usize & 15) << ((code >> 4) & 31)
}

/// Home bucket of `hash` among `n` buckets.
#[inline]
pub(crate) fn index(hash: u64, n: usize) -> usize {
    ((hash as u32 as u64 * n as u64) >> 32) as usize
}

/// A zeroed bucket array, from whichever heap the shard's entries do not
/// use: the C library's (`calloc`) or the process allocator's.
///
/// Why it matters: a table grows through many sizes (see the module
/// header) and frees the array it outgrew every time. A size-class
/// allocator keeps those in the free list of their class, where nothing
/// else of that size comes to reuse them. glibc's heap coalesces freed
/// neighbours into holes that the next, larger, array fits, and `calloc`
/// of memory fresh from the kernel need not zero it, but only while the
/// arrays lie next to each other: between entries on the same heap the
/// holes are too small for an entry and stay empty. Measured RSS per item
/// (a million 32-byte values, 400,000 of 4,000 bytes): with every array
/// on mimalloc, 42.0 and 32.8 bytes of overhead; with every array on the
/// C heap, 37.5 and 54.6 (the 4,000-byte entries are on the C heap,
/// see `entry::on_c_heap`). The shard picks per array (`Table::grow`), so
/// each workload gets the better of the two.
struct Buckets {
    ptr: NonNull<u64>,
    /// Bucket count. A u32, so that the heap flag fits beside it and a
    /// shard (lock, table, counters) still fills one cache line; tables
    /// are capped at `u32::MAX` buckets (32 GiB of buckets in one shard).
    len: u32,
    /// Allocated by `calloc` (freed by `free`), else by the process's
    /// global allocator.
    c_heap: bool,
}

// SAFETY: Buckets owns its array exclusively (like Box<[u64]>).
unsafe impl Send for Buckets {}
// SAFETY: shared access only reads.
unsafe impl Sync for Buckets {}

impl Buckets {
    fn empty() -> Buckets {
        Buckets {
            ptr: NonNull::dangling(),
            len: 0,
            c_heap: true,
        }
    }

    fn layout(n: usize) -> Layout {
        Layout::array::<u64>(n).expect("bucket layout")
    }

    fn zeroed(n: usize, c_heap: bool) -> Buckets {
        if n == 0 {
            return Buckets::empty();
        }
        let len = u32::try_from(n).expect("a shard table above u32::MAX buckets");
        let p = if c_heap {
            // SAFETY: calloc has no preconditions; null is handled below.
            unsafe { libc::calloc(n, size_of::<u64>()) }.cast::<u64>()
        } else {
            // SAFETY: the layout has a non-zero size (n > 0).
            unsafe { std::alloc::alloc_zeroed(Buckets::layout(n)) }.cast::<u64>()
        };
        match NonNull::new(p) {
            Some(ptr) => Buckets { ptr, len, c_heap },
            None => handle_alloc_error(Buckets::layout(n)),
        }
    }
}

impl Deref for Buckets {
    type Target = [u64];
    #[inline]
    fn deref(&self) -> &[u64] {
        // SAFETY: `ptr` holds `len` initialised u64s (or is dangling with
        // len 0, which a slice allows).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len as usize) }
    }
}

impl DerefMut for Buckets {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `deref`, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len as usize) }
    }
}

impl Drop for Buckets {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        if self.c_heap {
            // SAFETY: allocated by calloc in `zeroed`, freed once here.
            unsafe { libc::free(self.ptr.as_ptr().cast()) }
        } else {
            // SAFETY: allocated by `alloc_zeroed` with this layout in
            // `zeroed`, freed once here.
            unsafe {
                std::alloc::dealloc(self.ptr.as_ptr().cast(), Buckets::layout(self.len as usize))
            }
        }
    }
}

/// Bucket array plus entry count. Empty buckets are 0 (entry addresses
/// are never null).
///
/// The store's hasher is passed to the operations that rehash rather than
/// kept here, so a shard (lock, table, counters) still fits one cache line.
pub(crate) struct Table {
    buckets: Buckets,
    len: usize,
}

/// Home bucket of the entry in bucket value `b` among `n` buckets.
#[inline]
fn home(h: &FixedState, b: u64, n: usize) -> usize {
    // SAFETY: `b` is an occupied bucket of a live table.
    let key = unsafe { EntryPtr::new(addr(b)) }.key();
    index(h.hash_one(key), n)
}

/// The bucket after `i` in probe order (wrapping at `n`).
#[inline]
fn next(i: usize, n: usize) -> usize {
    if i + 1 == n { 0 } else { i + 1 }
}

impl Table {
    pub fn new() -> Table {
        Table {
            buckets: Buckets::empty(),
            len: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets (0 or a size from [`size_at_least`]).
    #[inline]
    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Start of the bucket array, for prefetching (may be dangling when
    /// the table is empty).
    #[inline]
    pub fn buckets_ptr(&self) -> *const u64 {
        self.buckets.as_ptr()
    }

    /// Index of the bucket holding the entry with this hash for which
    /// `eq` is true.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(EntryPtr<'_>) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let n = self.buckets.len();
        let mut i = index(hash, n);
        let t = tag(hash);
        loop {
            let b = self.buckets[i];
            if b == 0 {
                return None;
            }
            // SAFETY: a non-zero bucket holds a live entry owned by this
            // table; the borrow is tied to &self.
            if b & !ADDR == t && eq(unsafe { EntryPtr::new(addr(b)) }) {
                return Some(i);
            }
            i = next(i, n);
        }
    }

    /// Starts loading the first entry whose hash has `hash`'s tag (the
    /// likely match, unconfirmed: comparing the key would wait for the
    /// very load this hides). A prefetch never faults, so a miss or a
    /// false match costs one wasted hint.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        if let Some(i) = self.find(hash, |_| true) {
            crate::prefetch_read(addr(self.buckets[i]));
        }
    }

    /// The entry in bucket `i`, if any.
    #[inline]
    pub fn get(&self, i: usize) -> Option<EntryPtr<'_>> {
        match self.buckets.get(i) {
            // SAFETY: as in `find`.
            Some(&b) if b != 0 => Some(unsafe { EntryPtr::new(addr(b)) }),
            _ => None,
        }
    }

    /// The entry in occupied bucket `i` (an index `find` returned).
    #[inline]
    pub fn at(&self, i: usize) -> EntryPtr<'_> {
        let b = self.buckets[i];
        assert!(b != 0, "at on an empty bucket");
        // SAFETY: as in `find`.
        unsafe { EntryPtr::new(addr(b)) }
    }

    /// In-place editor for the entry in occupied bucket `i`.
    #[inline]
    pub fn entry_mut(&mut self, i: usize) -> EntryMut {
        let b = self.buckets[i];
        assert!(b != 0, "entry_mut on an empty bucket");
        // SAFETY: the table owns the entry; &mut self gives exclusivity
        // for as long as the editor can be used.
        unsafe { EntryMut::new(addr(b)) }
    }

    /// Whether bucket `i` holds an entry whose hash has `hash`'s tag.
    #[inline]
    pub fn same_tag(&self, i: usize, hash: u64) -> bool {
        let b = self.buckets[i];
        b != 0 && b & !ADDR == tag(hash)
    }

    /// Puts `new` (same key, so same hash) in occupied bucket `i` and
    /// returns the entry it replaces.
    pub fn replace(&mut self, i: usize, hash: u64, new: Entry) -> Entry {
        let old = self.buckets[i];
        assert!(old != 0, "replace on an empty bucket");
        self.buckets[i] = pack(hash, new);
        // SAFETY: the bucket owned this entry; ownership moves out here.
        unsafe { Entry::from_raw(addr(old)) }
    }

    /// Removes the entry in occupied bucket `i`, shifting the rest of its
    /// probe run back so lookups never need tombstones.
    pub fn remove(&mut self, i: usize, h: &FixedState) -> Entry {
        let b = self.buckets[i];
        assert!(b != 0, "remove on an empty bucket");
        let n = self.buckets.len();
        let mut hole = i;
        let mut j = next(i, n);
        loop {
            let nb = self.buckets[j];
            if nb == 0 {
                break;
            }
            let home = home(h, nb, n);
            // Move nb back into the hole unless its home lies cyclically
            // in (hole, j], where the hole would break its probe run.
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.buckets[hole] = nb;
                hole = j;
            }
            j = next(j, n);
        }
        self.buckets[hole] = 0;
        self.len -= 1;
        // SAFETY: bucket `i` owned this entry; ownership moves out here.
        unsafe { Entry::from_raw(addr(b)) }
    }

    /// Inserts an entry whose key is not in the table. The caller keeps
    /// the table below full (see `reserve`).
    pub fn insert(&mut self, hash: u64, e: Entry) {
        debug_assert!(self.len < self.buckets.len());
        let n = self.buckets.len();
        let mut i = index(hash, n);
        while self.buckets[i] != 0 {
            i = next(i, n);
        }
        self.buckets[i] = pack(hash, e);
        self.len += 1;
    }

    /// Rebuilds the table with `n` buckets (a table size above len), on
    /// the heap its array is on now.
    pub fn resize(&mut self, n: usize, h: &FixedState) {
        let c_heap = self.buckets.c_heap;
        self.grow(n, h, c_heap);
    }

    /// Rebuilds the table with `n` buckets (a table size above len) on
    /// the C heap or the process allocator (`c_heap`): the shard passes
    /// the heap its entries do not use (see [`Buckets`]).
    pub fn grow(&mut self, n: usize, h: &FixedState, c_heap: bool) {
        assert!(size_at_least(n) == n && n > self.len);
        let old = std::mem::replace(&mut self.buckets, Buckets::zeroed(n, c_heap));
        self.rebuild(&old, h, |_| false, &mut Vec::new());
    }

    /// Puts the entries of bucket array `old` into this (empty) array,
    /// moving those for which `dead` is true into `out` instead. Each
    /// step rehashes one key, so the entry a few buckets ahead is
    /// prefetched first: otherwise every move waits for its own miss.
    fn rebuild(
        &mut self,
        old: &[u64],
        h: &FixedState,
        mut dead: impl FnMut(EntryPtr<'_>) -> bool,
        out: &mut Vec<Entry>,
    ) {
        const AHEAD: usize = 8;
        for (i, &b) in old.iter().enumerate() {
            if let Some(&ahead) = old.get(i + AHEAD)
                && ahead != 0
            {
                crate::prefetch_read(addr(ahead));
            }
            if b == 0 {
                continue;
            }
            // SAFETY: occupied bucket of the old array.
            if dead(unsafe { EntryPtr::new(addr(b)) }) {
                // SAFETY: ownership leaves the table exactly once, here.
                out.push(unsafe { Entry::from_raw(addr(b)) });
                self.len -= 1;
            } else {
                self.put(b, h);
            }
        }
    }

    /// Places a packed bucket value at the first free bucket from its home.
    fn put(&mut self, b: u64, h: &FixedState) {
        let n = self.buckets.len();
        let mut i = home(h, b, n);
        while self.buckets[i] != 0 {
            i = next(i, n);
        }
        self.buckets[i] = b;
    }

    /// Live view of every entry, in bucket order.
    pub fn iter(&self) -> impl Iterator<Item = EntryPtr<'_>> {
        self.buckets
            .iter()
            .filter(|&&b| b != 0)
            // SAFETY: as in `find`.
            .map(|&b| unsafe { EntryPtr::new(addr(b)) })
    }

    /// Moves every entry for which `dead` is true into `out` and rebuilds
    /// the rest in place (a sweep touches every entry anyway).
    pub fn extract_into(
        &mut self,
        dead: impl FnMut(EntryPtr<'_>) -> bool,
        out: &mut Vec<Entry>,
        h: &FixedState,
    ) {
        if self.len == 0 {
            return;
        }
        let n = self.buckets.len();
        let c_heap = self.buckets.c_heap;
        let old = std::mem::replace(&mut self.buckets, Buckets::zeroed(n, c_heap));
        self.rebuild(&old, h, dead, out);
    }

    /// Takes every entry out, leaving an empty table without buckets.
    pub fn take(&mut self) -> Table {
        std::mem::replace(self, Table::new())
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for &b in self.buckets.iter() {
            if b != 0 {
                // SAFETY: each occupied bucket owns its entry exactly once.
                drop(unsafe { Entry::from_raw(addr(b)) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Meta;
    use std::collections::HashSet;

    fn entry(key: &[u8]) -> Entry {
        Entry::new(key, &[b"v"], Meta::default())
    }

    /// Random inserts and removals in small tables (long probe runs that
    /// wrap around the end), checked against a set after every step.
    #[test]
    fn matches_a_set_under_churn() {
        let hasher = FixedState::with_seed(7);
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for size in [4usize, 5, 6, 7, 8, 10, 14, 16, 64, 112] {
            let mut t = Table::new();
            t.resize(size, &hasher);
            let mut model = HashSet::new();
            for _ in 0..4000 {
                let k = (next() % (size as u64 * 2)).to_le_bytes();
                let h = hasher.hash_one(k);
                match t.find(h, |e| e.key() == k) {
                    Some(i) => {
                        assert!(model.remove(&k));
                        assert_eq!(t.remove(i, &hasher).as_ptr().key(), k);
                    }
                    None if model.len() * 4 < size * 3 => {
                        assert!(model.insert(k));
                        t.insert(h, entry(&k));
                    }
                    None => {}
                }
                assert_eq!(t.len(), model.len());
                for m in &model {
                    let h = hasher.hash_one(m);
                    assert!(t.find(h, |e| e.key() == m).is_some(), "lost {m:?}");
                }
            }
        }
    }

    #[test]
    fn sizes_step_by_an_eighth_from_64_buckets() {
        let mut prev = 0;
        for x in 0..100_000usize {
            let n = size_at_least(x);
            assert!(n >= x.max(4), "{x} -> {n}");
            let e = (usize::BITS - 1 - n.leading_zeros()).saturating_sub(mantissa_bits(n));
            let m = n >> e;
            assert!(
                (if n < 64 { 4..=7 } else { 8..=15 }).contains(&m) && n.is_multiple_of(1 << e),
                "{n}"
            );
            assert_eq!(decode_size(encode_size(n)), n);
            assert!(encode_size(n) < 1 << 9);
            if n != prev {
                // Minimal: the size just below x is not a valid size.
                assert!(x <= 4 || size_at_least(x - 1) < n);
                if prev >= 64 {
                    assert!(n * 8 <= prev * 9, "{prev} -> {n}");
                } else {
                    assert!(prev == 0 || n * 4 <= prev * 5, "{prev} -> {n}");
                }
                prev = n;
            }
        }
        assert_eq!(size_at_least(1 << 31), 1 << 31);
        assert_eq!(decode_size(encode_size(15 << 28)), 15 << 28);
        for n in [4, 5, 6, 7, 8, 10, 448, 1 << 20] {
            // The home bucket covers every index and never runs past n.
            assert_eq!(index(u64::MAX, n), n - 1);
            assert_eq!(index(0, n), 0);
        }
    }

    #[test]
    fn resize_and_extract_keep_everything_else() {
        let hasher = FixedState::with_seed(1);
        let mut t = Table::new();
        t.resize(4, &hasher);
        for i in 0..3u64 {
            let k = i.to_le_bytes();
            t.insert(hasher.hash_one(k), entry(&k));
        }
        // A hash with another tag never reaches the key comparison.
        let h0 = hasher.hash_one(0u64.to_le_bytes());
        assert!(
            t.find(h0 ^ (1 << 60), |_| panic!("tag mismatch compared"))
                .is_none()
        );
        t.resize(64, &hasher);
        for i in 0..3u64 {
            let k = i.to_le_bytes();
            assert!(t.find(hasher.hash_one(k), |e| e.key() == k).is_some());
        }
        let mut out = vec![];
        t.extract_into(|e| e.key() == 1u64.to_le_bytes(), &mut out, &hasher);
        assert_eq!((out.len(), t.len()), (1, 2));
        assert_eq!(t.iter().count(), 2);
        let k = 2u64.to_le_bytes();
        assert!(t.find(hasher.hash_one(k), |e| e.key() == k).is_some());
    }

    /// A bucket array stays on the heap it was grown on through resizes
    /// and sweeps, so it is always freed by the allocator that made it,
    /// and entries survive a move between heaps.
    #[test]
    fn bucket_arrays_keep_their_heap() {
        let hasher = FixedState::with_seed(3);
        for c_heap in [true, false] {
            let mut t = Table::new();
            t.grow(4, &hasher, c_heap);
            assert_eq!(t.buckets.c_heap, c_heap);
            for i in 0..3u64 {
                let k = i.to_le_bytes();
                t.insert(hasher.hash_one(k), entry(&k));
            }
            t.resize(8, &hasher);
            assert_eq!(t.buckets.c_heap, c_heap);
            t.extract_into(|e| e.key() == 0u64.to_le_bytes(), &mut vec![], &hasher);
            assert_eq!((t.buckets.c_heap, t.len()), (c_heap, 2));
            // Growing onto the other heap moves every entry across.
            t.grow(16, &hasher, !c_heap);
            assert_eq!(t.buckets.c_heap, !c_heap);
            for i in 1..3u64 {
                let k = i.to_le_bytes();
                assert!(t.find(hasher.hash_one(k), |e| e.key() == k).is_some());
            }
        }
    }
}
