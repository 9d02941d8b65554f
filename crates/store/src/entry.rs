//! One cache entry as a single heap allocation: a compact header, the
//! optional fields the entry actually uses, the key bytes, then the value.
//!
//! Owns: the entry's memory layout, allocation and release. Does not own:
//! hashing, locking, expiry decisions (see `lib.rs`) or where entries are
//! kept (`table.rs`).
//!
//! Layout (little-endian, unaligned):
//!
//! ```text
//! 0       bits    u8    which optional fields follow, whether the value
//!                       length is long, the meta protocol's stale /
//!                       win-claimed marks, and whether it was read since
//!                       written (eviction's hit mark)
//! 1       klen    u8    key length (0xFF: see the long-key field)
//! 2..6    access  u32   last access, whole seconds on the store clock
//! 6..8    vlen    u16   value length (6..10, u32, for values of 64 KiB
//!                       and more)
//! then, when present and in this order:
//!         expires i64   absolute expiry, ns on the store clock (0 = never)
//!         cas     u64   compare-and-swap token (only with CAS enabled)
//!         flags   u32   client flags (only when non-zero)
//!         klen32  u32   key length of keys of 255 bytes and more
//! then the key bytes, then the value bytes.
//! ```
//!
//! Why hand-rolled: a `struct { key: Box<[u8]>, value: Box<[u8]>, .. }`
//! costs two or three allocations per item, and even a fixed 40-byte
//! header pushes a 16-byte key with a 100-byte value past the allocator's
//! 128-byte size class. Here the common entry (no TTL, no flags, no CAS,
//! a key under 255 bytes and a value under 64 KiB, which is nearly every
//! item a cache holds) carries 8 bytes of metadata, so it costs
//! `8 / load + 8 + key + value` bytes: exactly that when it is packed
//! into a segment (`seg.rs`, entries up to 16 KiB), plus the allocator's
//! rounding when it is an allocation of its own. The
//! full hash is not stored: the table keeps a 16-bit tag in each bucket
//! and rehashes keys on the rare paths (growth, deletion shifts) that need
//! the home bucket. The unsafe code is confined to this file and every
//! accessor reads only bytes `Entry::new` wrote (lengths come from the
//! header).

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::seg::{self, Arena, Head};

/// Fixed header bytes of an entry with a short value length.
pub(crate) const HEADER: usize = 8;

const EXPIRES: u8 = 1;
const CAS: u8 = 2;
const FLAGS: u8 = 4;
const LONG_KEY: u8 = 8;
/// Marked stale (memcache meta `md ... I`): served, flagged `X`.
pub(crate) const STALE: u8 = 16;
/// The one "win" (recache) token for this item has been handed out.
pub(crate) const WON: u8 = 32;
/// The value length is a u32 (values of 64 KiB and more).
const LONG_VAL: u8 = 64;
/// Read at least once since it was written, or since eviction last
/// demoted it (see `Shard::evict_one` in `lib.rs`). Eviction takes
/// entries without it first.
pub(crate) const HIT: u8 = 128;

/// Offset of the first optional field: past the fixed header.
#[inline]
fn fixed_len(bits: u8) -> usize {
    if bits & LONG_VAL != 0 {
        HEADER + 2
    } else {
        HEADER
    }
}

/// Header fields chosen by the caller when building an entry.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Meta {
    /// Absolute expiry in ns; 0 = never (then no expiry field is stored).
    pub expires: i64,
    /// CAS token, stored only when `with_cas`.
    pub cas: u64,
    pub with_cas: bool,
    pub access: u32,
    /// Client flags; 0 is not stored.
    pub flags: u32,
}

/// Owning thin pointer to one entry block.
pub(crate) struct Entry(NonNull<u8>);

// SAFETY: an Entry exclusively owns its block (like Box), and the block
// holds only plain bytes, so moving it across threads is sound.
unsafe impl Send for Entry {}
// SAFETY: shared access only reads through `&self`.
unsafe impl Sync for Entry {}

fn opt_len(bits: u8) -> usize {
    (if bits & EXPIRES != 0 { 8 } else { 0 })
        + (if bits & CAS != 0 { 8 } else { 0 })
        + (if bits & FLAGS != 0 { 4 } else { 0 })
        + (if bits & LONG_KEY != 0 { 4 } else { 0 })
}

fn layout(size: usize) -> Layout {
    // Sizes are bounded by the u32 length fields, far below isize::MAX.
    Layout::from_size_align(size, 1).expect("entry layout")
}

/// Entries of at least this many bytes get pages of their own straight
/// from the kernel (`mmap`) instead of an allocator.
///
/// Why: a size-class allocator keeps freed large blocks, and pages of
/// size classes that only a few items use, resident for reuse. With a
/// mix of large values under `--maxmemory` that retained memory grew
/// RSS to several times what the entries held, and the RSS-driven budget
/// then evicted almost everything. A mapping is exactly as resident as
/// the entry plus at most one partial page (under 1.6% at this size)
/// and `munmap` returns it at once, so RSS follows the stored bytes.
/// Below this size the C library's heap (see [`on_c_heap`]) wastes less:
/// a page of rounding was 6% at 64 KiB, against 16 bytes on the heap.
/// Not higher: with entries up to 1 MiB on the heap, a mix of 100 B to
/// 1 MiB values under `--maxmemory 64mb` kept 24 MiB of entries at the
/// limit (holes between large blocks), against 39 MiB at this threshold.
/// [`init_c_heap`] keeps glibc from mapping smaller sizes itself.
pub(crate) const MMAP_MIN: usize = 256 * 1024;

/// Tells glibc to keep blocks below [`MMAP_MIN`] on its heap, once per
/// process. Its default sends blocks of 128 KiB and more to a mapping of
/// their own (a partial page each, up to 3% at 128 KiB), and it raises
/// that threshold whenever such a block is freed, up to 32 MiB, so where
/// a large entry lived, and what it cost, depended on history. This is a
/// process-wide setting, and it is the one thing the store changes
/// outside itself: for an embedding program it only moves blocks of
/// 128 KiB to 256 KiB from mappings onto the heap.
pub(crate) fn init_c_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only sets a tunable; any value is accepted
            // or refused with a return code, which changes nothing here.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_MIN as libc::c_int) };
        });
    }
}

/// Whether an entry of `size` bytes (below [`MMAP_MIN`]) comes from the
/// C library's `malloc` rather than the process allocator (mimalloc in
/// the shipped binary): whichever of the two occupies fewer bytes for
/// it, mimalloc on a tie (it is the faster of the two).
///
/// Why: every entry is its own allocation, so an allocator's rounding is
/// paid per item. mimalloc rounds up to its next size class (16-byte
/// steps up to 64 bytes, then four classes per power of two): a 321-byte
/// entry takes 384 bytes, while a 1,021-byte one fits its 1,024-byte class
/// almost exactly. glibc's heap takes the size plus an 8-byte header,
/// rounded to 16 bytes: 8 to 23 bytes more, whatever the size. Picking
/// per size keeps the waste at the smaller of the two: 1,000,000 300-byte
/// values cost 86 bytes of overhead per item on mimalloc alone, 47 for
/// Pogocache on libc malloc. The coalescing heap also holds up under
/// churn: under `--maxmemory 64mb` with values from 100 B to 64 KiB
/// overwritten for 4x the limit, mimalloc's pages for medium classes
/// (512 KiB each) stayed resident half empty and RSS held 23 MiB of
/// entries, while glibc held 38 MiB, steady. Where the process allocator
/// is glibc itself (a build without mimalloc) both paths are the same
/// heap. The choice depends only on the size, so `free_block` finds the
/// allocator again from the size the header gives.
#[inline]
pub(crate) fn on_c_heap(size: usize) -> bool {
    c_heap_block(size) < mimalloc_block(size)
}

/// Bytes glibc's heap takes for a `size`-byte request (x86-64, AArch64).
#[inline]
fn c_heap_block(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

/// Bytes of the mimalloc size class a `size`-byte request lands in (its
/// `mi_bin` with 16-byte minimal alignment, as on x86-64 and AArch64:
/// 8, then 16-byte steps to 64 bytes, then the top three bits of the
/// word count, rounded up).
#[inline]
fn mimalloc_block(size: usize) -> usize {
    let w = size.div_ceil(8).max(1);
    if w <= 8 {
        return if w == 1 { 8 } else { ((w + 1) & !1) * 8 };
    }
    let w1 = w - 1;
    let b = usize::BITS - 1 - w1.leading_zeros();
    (((w1 >> (b - 2)) + 1) << (b - 2)) * 8
}

/// Mappings of freed large entries kept for reuse: at most this many...
const MAPS_KEPT: usize = 16;
/// ... and at most this many bytes in all.
const MAPS_KEPT_BYTES: usize = 4 << 20;

/// Freed entry mappings, by page-rounded length, for the next large entry
/// of the same page count.
///
/// Why: overwriting a 256 KiB value mapped fresh pages for the new entry
/// and unmapped the old one, so every such write paid 64 page faults,
/// zeroing and a TLB flush (about a tenth of the server's CPU at 256 KiB
/// values). Reusing the old mapping skips all three. The cache is small
/// and bounded, so RSS still follows the stored bytes within 4 MiB.
struct KeptMaps {
    maps: Vec<(usize, usize)>,
    bytes: usize,
}

static KEPT: std::sync::Mutex<KeptMaps> = std::sync::Mutex::new(KeptMaps {
    maps: Vec::new(),
    bytes: 0,
});

/// A mapping's length: `size` rounded up to whole pages.
#[inline]
fn map_len(size: usize) -> usize {
    size.div_ceil(4096) * 4096
}

fn kept() -> std::sync::MutexGuard<'static, KeptMaps> {
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Allocates an entry block of `size` bytes; null on failure.
fn alloc_block(size: usize) -> *mut u8 {
    if size >= MMAP_MIN {
        let len = map_len(size);
        {
            let mut k = kept();
            if let Some(i) = k.maps.iter().position(|&(_, l)| l == len) {
                let (p, _) = k.maps.swap_remove(i);
                k.bytes -= len;
                return p as *mut u8;
            }
        }
        // SAFETY: an anonymous private mapping with no address hint has
        // no preconditions; the result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    } else if on_c_heap(size) {
        // SAFETY: malloc has no preconditions; null is handled by the caller.
        unsafe { libc::malloc(size).cast() }
    } else {
        // SAFETY: layout has non-zero size (the header is 11 bytes).
        unsafe { alloc(layout(size)) }
    }
}

/// Frees a block from [`alloc_block`].
///
/// # Safety
/// `p` must come from `alloc_block(size)` with this `size`, once.
unsafe fn free_block(p: *mut u8, size: usize) {
    if size >= MMAP_MIN {
        let len = map_len(size);
        {
            let mut k = kept();
            if k.maps.len() < MAPS_KEPT && k.bytes + len <= MAPS_KEPT_BYTES {
                // Kept whole: the next entry of this page count takes it.
                k.maps.push((p as usize, len));
                k.bytes += len;
                return;
            }
        }
        // SAFETY: `p..p+len` is exactly the mapping `alloc_block` made
        // (the kernel maps whole pages). munmap can only fail for a bad
        // range, which this is not.
        unsafe { libc::munmap(p.cast(), len) };
    } else if on_c_heap(size) {
        // SAFETY: allocated by `libc::malloc`.
        unsafe { libc::free(p.cast()) }
    } else {
        // SAFETY: allocated by `alloc` with this same layout.
        unsafe { dealloc(p, layout(size)) }
    }
}

/// Layout bits and total size of an entry with these fields.
fn shape(key: &[u8], parts: &[&[u8]], meta: &Meta) -> (u8, usize) {
    let vlen: usize = parts.iter().map(|p| p.len()).sum();
    shape_of(key.len(), vlen, meta)
}

/// [`shape`] from the key and value lengths.
fn shape_of(klen: usize, vlen: usize, meta: &Meta) -> (u8, usize) {
    assert!(klen <= u32::MAX as usize && vlen <= u32::MAX as usize);
    let mut bits = 0;
    if meta.expires != 0 {
        bits |= EXPIRES;
    }
    if meta.with_cas {
        bits |= CAS;
    }
    if meta.flags != 0 {
        bits |= FLAGS;
    }
    if klen >= 0xFF {
        bits |= LONG_KEY;
    }
    if vlen > 0xFFFF {
        bits |= LONG_VAL;
    }
    (bits, fixed_len(bits) + opt_len(bits) + klen + vlen)
}

/// The bits that give an entry's layout (the rest are marks).
const LAYOUT: u8 = EXPIRES | CAS | FLAGS | LONG_KEY | LONG_VAL;

/// Writes an entry front to back.
///
/// # Safety
/// `raw` must be the start of `shape(key, parts, meta).1` writable bytes.
unsafe fn write_entry(raw: *mut u8, bits: u8, key: &[u8], parts: &[&[u8]], meta: &Meta) {
    let vlen: usize = parts.iter().map(|p| p.len()).sum();
    let mut w = Writer(raw);
    // SAFETY: the writes below fill the block front to back, exactly the
    // size `shape` gave, which the caller provides.
    unsafe {
        w.put(&[bits, key.len().min(0xFF) as u8]);
        w.put(&meta.access.to_le_bytes());
        if bits & LONG_VAL != 0 {
            w.put(&(vlen as u32).to_le_bytes());
        } else {
            w.put(&(vlen as u16).to_le_bytes());
        }
        if bits & EXPIRES != 0 {
            w.put(&meta.expires.to_le_bytes());
        }
        if bits & CAS != 0 {
            w.put(&meta.cas.to_le_bytes());
        }
        if bits & FLAGS != 0 {
            w.put(&meta.flags.to_le_bytes());
        }
        if bits & LONG_KEY != 0 {
            w.put(&(key.len() as u32).to_le_bytes());
        }
        w.put(key);
        for p in parts {
            w.put(p);
        }
    }
}

/// Size and key of the packed entry at `p`, read without its shard's
/// lock (the compactor's walk). Only fields that never change after the
/// entry is written are read, the layout bits atomically (the marks in
/// the same byte change under the lock, see [`EntryMut`]).
///
/// # Safety
/// `p` must be the start of an entry in a sealed segment that cannot be
/// given back during `'a` (pinned), whether or not the entry is still
/// alive: its bytes stay as written until the segment is reused.
pub(crate) unsafe fn peek_unlocked<'a>(p: *const u8) -> (usize, &'a [u8]) {
    // SAFETY: byte 0 of a written entry; atomics of one byte need no
    // alignment.
    let bits = unsafe { std::sync::atomic::AtomicU8::from_ptr(p as *mut u8) }
        .load(std::sync::atomic::Ordering::Relaxed);
    let rd = |at: usize, n: usize| -> usize {
        let mut b = [0u8; 4];
        // SAFETY: `at..at+n` is a length field inside the entry.
        unsafe { std::ptr::copy_nonoverlapping(p.add(at), b.as_mut_ptr(), n) };
        u32::from_le_bytes(b) as usize
    };
    let vlen = if bits & LONG_VAL != 0 {
        rd(6, 4)
    } else {
        rd(6, 2)
    };
    let key_at = fixed_len(bits) + opt_len(bits);
    let klen = match rd(1, 1) {
        0xFF => rd(key_at - 4, 4),
        short => short,
    };
    // SAFETY: the key bytes follow the optional fields and never change.
    let key = unsafe { std::slice::from_raw_parts(p.add(key_at), klen) };
    (key_at + klen + vlen, key)
}

impl Entry {
    /// Allocates an entry holding `key` and the concatenation of `parts`
    /// as its value (APPEND/PREPEND build values from two slices without
    /// an intermediate copy), as an allocation of its own.
    pub fn new(key: &[u8], parts: &[&[u8]], meta: Meta) -> Entry {
        let (bits, size) = shape(key, parts, &meta);
        let Some(ptr) = NonNull::new(alloc_block(size)) else {
            handle_alloc_error(layout(size))
        };
        // SAFETY: a fresh block of exactly `size` bytes.
        unsafe { write_entry(ptr.as_ptr(), bits, key, parts, &meta) };
        Entry(ptr)
    }

    /// As [`Entry::new`], packed into `arena` (through head `h`) when it
    /// is small enough and a segment can be had, else an allocation of
    /// its own.
    pub fn new_in(arena: &Arena, h: usize, key: &[u8], parts: &[&[u8]], meta: Meta) -> Entry {
        let (bits, size) = shape(key, parts, &meta);
        if size <= arena.max_entry() {
            let placed = arena.alloc(h, size, |p| {
                // SAFETY: `alloc` hands out `size` fresh bytes.
                unsafe { write_entry(p, bits, key, parts, &meta) }
            });
            if let Some(p) = placed {
                // SAFETY: non-null (inside a segment).
                return Entry(unsafe { NonNull::new_unchecked(p) });
            }
        }
        Entry::new(key, parts, meta)
    }

    /// A copy of the entry at `src` (with every field, marks included),
    /// packed through the compactor's head `head`; `None` when no segment
    /// can be had.
    ///
    /// # Safety
    /// `src` must be a live entry that nobody mutates during the call.
    pub unsafe fn copy_in(arena: &Arena, head: &mut Head, src: EntryPtr<'_>) -> Option<Entry> {
        let size = src.size();
        let p = arena.alloc_in(head, size, |p| {
            // SAFETY: `size` fresh bytes at `p`; the source is `size`
            // bytes of another block.
            unsafe { std::ptr::copy_nonoverlapping(src.0.as_ptr(), p, size) }
        })?;
        // SAFETY: non-null (inside a segment).
        Some(Entry(unsafe { NonNull::new_unchecked(p) }))
    }

    /// Gives up ownership of the block (the table packs the address into
    /// a bucket). Pair with [`Entry::from_raw`].
    #[inline]
    pub fn into_raw(self) -> *mut u8 {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// Takes back ownership of a block from [`Entry::into_raw`].
    ///
    /// # Safety
    /// `p` must come from `into_raw` and be taken back exactly once.
    #[inline]
    pub unsafe fn from_raw(p: *mut u8) -> Entry {
        // SAFETY: non-null by the contract above.
        Entry(unsafe { NonNull::new_unchecked(p) })
    }

    /// A borrowed view of this entry.
    #[inline]
    pub fn as_ptr(&self) -> EntryPtr<'_> {
        EntryPtr(self.0, PhantomData)
    }

    /// Bytes this entry accounts for in the `bytes` statistic.
    #[inline]
    pub fn size(&self) -> usize {
        self.as_ptr().size()
    }

    /// Whether this entry's block is on the C library's heap (not on the
    /// process allocator, not a mapping of its own): the shard keeps its
    /// bucket arrays off that heap (see `Buckets` in `table.rs`).
    #[inline]
    pub fn on_c_heap(&self) -> bool {
        let size = self.size();
        !seg::contains(self.0.as_ptr()) && size < MMAP_MIN && on_c_heap(size)
    }

    #[inline]
    pub fn is_alive(&self, now: i64) -> bool {
        self.as_ptr().is_alive(now)
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let (p, size) = (self.0.as_ptr(), self.size());
        if seg::contains(p) {
            // SAFETY: a packed entry, dropped once; its store (and arena)
            // outlives it.
            unsafe { seg::free(p, size) }
        } else {
            // SAFETY: the block came from `alloc_block` with this same
            // size (the header fields that give the size never change).
            unsafe { free_block(p, size) }
        }
    }
}

/// Sequential writer over a fresh block.
struct Writer(*mut u8);

impl Writer {
    /// # Safety
    /// The block must have room for `b` at the current position.
    #[inline]
    unsafe fn put(&mut self, b: &[u8]) {
        // SAFETY: caller guarantees room; source and block never overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(b.as_ptr(), self.0, b.len());
            self.0 = self.0.add(b.len());
        }
    }
}

/// A shared borrow of an entry block owned by someone else (a table
/// bucket), with the entry's read accessors.
#[derive(Clone, Copy)]
pub(crate) struct EntryPtr<'a>(NonNull<u8>, PhantomData<&'a u8>);

impl<'a> EntryPtr<'a> {
    /// # Safety
    /// `p` must point to a live entry block that outlives `'a` and is not
    /// mutated during `'a`.
    #[inline]
    pub unsafe fn new(p: *mut u8) -> EntryPtr<'a> {
        // SAFETY: non-null by the contract above.
        EntryPtr(unsafe { NonNull::new_unchecked(p) }, PhantomData)
    }

    #[inline]
    fn read<const N: usize>(self, at: usize) -> [u8; N] {
        // SAFETY: callers read only fields inside the block, whose layout
        // the header describes.
        unsafe { self.0.as_ptr().add(at).cast::<[u8; N]>().read_unaligned() }
    }

    #[inline]
    fn bits(self) -> u8 {
        self.read::<1>(0)[0]
    }

    /// The entry's address (the compactor tells entries apart by it).
    #[inline]
    pub fn addr(self) -> *const u8 {
        self.0.as_ptr()
    }

    /// The meta-protocol marks ([`STALE`], [`WON`]).
    #[inline]
    pub fn marks(self) -> u8 {
        self.bits() & (STALE | WON)
    }

    #[inline]
    pub fn access(self) -> u32 {
        u32::from_le_bytes(self.read(2))
    }

    /// Read since written (or since eviction last cleared the mark).
    #[inline]
    pub fn was_hit(self) -> bool {
        self.bits() & HIT != 0
    }

    #[inline]
    fn vlen(self) -> usize {
        if self.bits() & LONG_VAL != 0 {
            u32::from_le_bytes(self.read(6)) as usize
        } else {
            u16::from_le_bytes(self.read(6)) as usize
        }
    }

    #[inline]
    fn klen(self) -> usize {
        let short = self.read::<1>(1)[0] as usize;
        if short < 0xFF {
            short
        } else {
            let at = self.key_at() - 4;
            u32::from_le_bytes(self.read(at)) as usize
        }
    }

    /// Offset of the key: past the header and the optional fields.
    #[inline]
    fn key_at(self) -> usize {
        let b = self.bits();
        fixed_len(b) + opt_len(b)
    }

    /// Absolute expiry, 0 for none.
    #[inline]
    pub fn expires(self) -> i64 {
        let b = self.bits();
        if b & EXPIRES == 0 {
            0
        } else {
            i64::from_le_bytes(self.read(fixed_len(b)))
        }
    }

    /// Offset of the CAS field, `None` when the entry has none.
    #[inline]
    pub fn cas_at(self) -> Option<usize> {
        let b = self.bits();
        (b & CAS != 0).then(|| fixed_len(b) + if b & EXPIRES != 0 { 8 } else { 0 })
    }

    /// CAS token, 0 when the entry has none.
    #[inline]
    pub fn cas(self) -> u64 {
        self.cas_at()
            .map(|at| u64::from_le_bytes(self.read(at)))
            .unwrap_or(0)
    }

    /// Client flags (0 when none were stored).
    #[inline]
    pub fn flags(self) -> u32 {
        let b = self.bits();
        if b & FLAGS == 0 {
            return 0;
        }
        let at = fixed_len(b) + opt_len(b & (EXPIRES | CAS));
        u32::from_le_bytes(self.read(at))
    }

    #[inline]
    pub fn key(self) -> &'a [u8] {
        // SAFETY: klen key bytes follow the optional fields (`new`).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(self.key_at()), self.klen()) }
    }

    #[inline]
    pub fn value(self) -> &'a [u8] {
        let at = self.key_at() + self.klen();
        // SAFETY: vlen value bytes follow the key (`new`).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(at), self.vlen()) }
    }

    /// Bytes the block occupies (the `bytes` statistic).
    #[inline]
    pub fn size(self) -> usize {
        self.key_at() + self.klen() + self.vlen()
    }

    #[inline]
    pub fn is_alive(self, now: i64) -> bool {
        let e = self.expires();
        e == 0 || e > now
    }

    /// Whether [`Entry::new`] with this entry's key, `meta` and a value
    /// of `vlen` bytes would give the same layout, so that
    /// [`EntryMut::rewrite`] can overwrite this entry in place.
    #[inline]
    pub fn same_shape(self, vlen: usize, meta: &Meta) -> bool {
        let (bits, _) = shape_of(self.klen(), vlen, meta);
        bits == self.bits() & LAYOUT && vlen == self.vlen()
    }
}

/// In-place edits of fields an entry already has room for. Only the table
/// hands these out, for buckets it owns, behind `&mut`.
pub(crate) struct EntryMut(NonNull<u8>);

impl EntryMut {
    /// # Safety
    /// `p` must point to a live entry block the caller may mutate
    /// exclusively for as long as this value is used.
    #[inline]
    pub unsafe fn new(p: *mut u8) -> EntryMut {
        // SAFETY: non-null by the contract above.
        EntryMut(unsafe { NonNull::new_unchecked(p) })
    }

    #[inline]
    fn view(&self) -> EntryPtr<'_> {
        EntryPtr(self.0, PhantomData)
    }

    #[inline]
    fn write(&mut self, at: usize, b: &[u8]) {
        // SAFETY: `at` is a field offset inside the block (computed from
        // its own header), and we have exclusive access.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), self.0.as_ptr().add(at), b.len()) }
    }

    /// Writes the bits byte. Atomically: the compactor reads the layout
    /// bits of packed entries without the shard lock (`peek_unlocked`)
    /// while a lock holder may be changing a mark in the same byte.
    #[inline]
    fn write_bits(&mut self, b: u8) {
        // SAFETY: byte 0 of the block, which we may write exclusively of
        // every other writer; one-byte atomics need no alignment.
        unsafe { std::sync::atomic::AtomicU8::from_ptr(self.0.as_ptr()) }
            .store(b, std::sync::atomic::Ordering::Relaxed);
    }

    #[inline]
    pub fn set_access(&mut self, secs: u32) {
        self.write(2, &secs.to_le_bytes());
    }

    /// A read: refreshes the last access and sets the hit mark.
    #[inline]
    pub fn read_at(&mut self, secs: u32) {
        self.set_hit();
        self.set_access(secs);
    }

    /// Sets the hit mark (a read, or a rebuilt entry keeping its mark).
    #[inline]
    pub fn set_hit(&mut self) {
        let b = self.view().bits() | HIT;
        self.write_bits(b);
    }

    /// Clears the hit mark (eviction's demotion).
    #[inline]
    pub fn clear_hit(&mut self) {
        let b = self.view().bits() & !HIT;
        self.write_bits(b);
    }

    /// Sets expiry and CAS in place. Returns false (changing nothing) when
    /// the entry has no expiry field and `expires` is not 0: the caller
    /// rebuilds the entry with one.
    /// Sets and clears meta-protocol marks (layout bits are untouched).
    pub fn mark(&mut self, set: u8, clear: u8) {
        let b = (self.view().bits() | (set & (STALE | WON))) & !(clear & (STALE | WON));
        self.write_bits(b);
    }

    /// Makes this entry the one [`Entry::new`] would build from the same
    /// key, `meta` and `value`, in place: the caller has checked
    /// [`EntryPtr::same_shape`]. The marks are cleared, as on a new
    /// entry. Why: overwriting a value with one of the same size (a
    /// counter, a fixed-size record, a session refreshed) then leaves no
    /// hole for compaction and costs no allocation. The key and the
    /// length fields are not written: they are already right, and the
    /// compactor reads them without the lock.
    pub fn rewrite(&mut self, meta: &Meta, value: &[u8]) {
        let bits = self.view().bits() & LAYOUT;
        self.write_bits(bits);
        self.set_access(meta.access);
        let mut at = fixed_len(bits);
        if bits & EXPIRES != 0 {
            self.write(at, &meta.expires.to_le_bytes());
            at += 8;
        }
        if bits & CAS != 0 {
            self.write(at, &meta.cas.to_le_bytes());
            at += 8;
        }
        if bits & FLAGS != 0 {
            self.write(at, &meta.flags.to_le_bytes());
        }
        let v = self.view();
        let at = v.key_at() + v.klen();
        debug_assert_eq!(v.vlen(), value.len());
        self.write(at, value);
    }

    pub fn set_expiry(&mut self, expires: i64, cas: u64) -> bool {
        let bits = self.view().bits();
        let has = bits & EXPIRES != 0;
        if !has && expires != 0 {
            return false;
        }
        if has {
            self.write(fixed_len(bits), &expires.to_le_bytes());
        }
        if let Some(at) = self.view().cas_at() {
            self.write(at, &cas.to_le_bytes());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_entry_fits_the_128_byte_class() {
        // A 16-byte key and a 100-byte value (the benchmark item) must stay
        // within 128 bytes: layout changes move RSS per item, so make them
        // fail loudly.
        let e = Entry::new(&[b'k'; 16], &[&[b'v'; 100]], Meta::default());
        assert_eq!(e.size(), 124);
        assert_eq!(size_of::<Entry>(), 8);
        assert_eq!(size_of::<Option<Entry>>(), 8);
    }

    #[test]
    fn freed_large_mappings_are_reused_and_bounded() {
        // A page count no other test uses, so the shared cache is ours.
        let size = MMAP_MIN + 4096 * 37 + 5;
        let a = alloc_block(size);
        assert!(!a.is_null());
        // SAFETY: the whole block is ours to write.
        unsafe { a.write_bytes(7, size) };
        // SAFETY: from alloc_block(size), freed once.
        unsafe { free_block(a, size) };
        // Same page count, different size: the same mapping comes back.
        let b = alloc_block(size - 3);
        assert_eq!(a, b);
        // SAFETY: from alloc_block(size - 3), freed once.
        unsafe { free_block(b, size - 3) };
        let k = kept();
        assert!(k.maps.len() <= MAPS_KEPT && k.bytes <= MAPS_KEPT_BYTES);
        drop(k);

        // Beyond the bounds, freed mappings are returned to the kernel.
        let big = MAPS_KEPT_BYTES / 2 + 4096 * 41;
        let blocks: Vec<_> = (0..4).map(|_| alloc_block(big)).collect();
        for &p in &blocks {
            // SAFETY: each from alloc_block(big), freed once.
            unsafe { free_block(p, big) };
        }
        let k = kept();
        assert!(k.bytes <= MAPS_KEPT_BYTES);
        assert!(k.maps.iter().filter(|&&(_, l)| l == map_len(big)).count() <= 1);
    }

    #[test]
    fn allocator_choice_takes_the_smaller_block() {
        // mimalloc's classes around the sizes the doc names.
        assert_eq!(mimalloc_block(321), 384);
        assert_eq!(mimalloc_block(1021), 1024);
        assert_eq!(mimalloc_block(1027), 1280);
        assert_eq!(mimalloc_block(127), 128);
        assert_eq!(mimalloc_block(53), 64);
        assert_eq!(mimalloc_block(48), 48);
        assert_eq!(mimalloc_block(8), 8);
        assert_eq!(c_heap_block(127), 144);
        assert_eq!(c_heap_block(1), 32);
        assert!(!on_c_heap(127) && !on_c_heap(1021) && !on_c_heap(11));
        assert!(on_c_heap(321) && on_c_heap(1027));
        for size in 1..MMAP_MIN {
            let waste = c_heap_block(size).min(mimalloc_block(size)) - size;
            assert!(waste <= 23, "{size}: {waste}");
            assert!(mimalloc_block(size) >= size && c_heap_block(size) >= size + 8);
        }
    }

    #[test]
    fn fields_round_trip_in_every_combination() {
        let long = vec![b'L'; 70_000];
        let long_val = [&b"val"[..], &[b'u'; 0xFFFF], b"\x00\xff"];
        for bits in 0..128u8 {
            if bits & (STALE | WON) != 0 {
                continue;
            }
            let key: &[u8] = if bits & LONG_KEY != 0 { &long } else { b"key" };
            let parts: &[&[u8]] = if bits & LONG_VAL != 0 {
                &long_val
            } else {
                &[b"val", b"ue\x00\xff"]
            };
            let value = parts.concat();
            let meta = Meta {
                expires: if bits & EXPIRES != 0 { 7 } else { 0 },
                cas: 9,
                with_cas: bits & CAS != 0,
                access: 3,
                flags: if bits & FLAGS != 0 { 5 } else { 0 },
            };
            let e = Entry::new(key, parts, meta);
            let p = e.as_ptr();
            assert_eq!(p.key(), key);
            assert_eq!(p.value(), value);
            assert_eq!(p.expires(), meta.expires);
            assert_eq!(p.cas(), if meta.with_cas { 9 } else { 0 });
            assert_eq!(p.flags(), meta.flags);
            assert_eq!(p.access(), 3);
            assert_eq!(
                p.size(),
                fixed_len(bits) + opt_len(bits) + key.len() + value.len()
            );
            assert_eq!(p.bits(), bits, "layout bits");
        }
        // The boundaries of the short length fields.
        for (klen, vlen) in [(254, 0xFFFF), (255, 0x1_0000), (0, 0)] {
            let (k, v) = (vec![b'k'; klen], vec![b'v'; vlen]);
            let e = Entry::new(&k, &[&v], Meta::default());
            assert_eq!((e.as_ptr().key(), e.as_ptr().value()), (&k[..], &v[..]));
            let extra = if klen >= 255 { 4 + 2 } else { 0 };
            assert_eq!(e.size(), HEADER + extra + klen + vlen);
        }
        let empty = Entry::new(b"", &[], Meta::default());
        assert_eq!(
            (empty.as_ptr().key(), empty.as_ptr().value()),
            (&b""[..], &b""[..])
        );
    }

    #[test]
    fn in_place_edits() {
        let meta = Meta {
            expires: 100,
            with_cas: true,
            cas: 1,
            ..Meta::default()
        };
        let e = Entry::new(b"k", &[b"v"], meta);
        assert!(e.is_alive(99));
        assert!(!e.is_alive(100));
        let p = e.into_raw();
        // SAFETY: we own the block and nothing else refers to it.
        let mut m = unsafe { EntryMut::new(p) };
        m.set_access(42);
        assert!(!m.view().was_hit(), "a new entry is not hit");
        m.read_at(43);
        assert!(m.view().was_hit() && m.view().access() == 43);
        m.mark(STALE, 0);
        m.clear_hit();
        assert!(!m.view().was_hit() && m.view().marks() == STALE);
        m.mark(0, STALE);
        m.set_access(42);
        assert!(m.set_expiry(0, 8));
        // SAFETY: as above; reclaim ownership once.
        let e = unsafe { Entry::from_raw(p) };
        let v = e.as_ptr();
        assert_eq!((v.access(), v.expires(), v.cas()), (42, 0, 8));
        assert!(e.is_alive(i64::MAX));

        let e = Entry::new(b"k", &[b"v"], Meta::default());
        let p = e.into_raw();
        // SAFETY: as above.
        let mut m = unsafe { EntryMut::new(p) };
        assert!(!m.set_expiry(5, 0), "no room for an expiry");
        assert!(m.set_expiry(0, 0));
        // SAFETY: as above.
        drop(unsafe { Entry::from_raw(p) });
    }
}
