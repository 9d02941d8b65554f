//! One shard's hash table: open addressing with linear probing over an
//! array of 8-byte buckets, each holding an entry pointer with a 16-bit
//! hash tag in its top bits.
//!
//! Owns: bucket layout, probing, growth, backward-shift deletion and the
//! raw-pointer bookkeeping that goes with packing tags into pointers.
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
//! probe runs stay short at the configured load factor.

use crate::entry::{Entry, EntryPtr, Header};

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
fn addr(b: u64) -> *mut Header {
    (b & ADDR) as *mut Header
}

/// Bucket array plus entry count. Empty buckets are 0 (entry addresses
/// are never null).
pub(crate) struct Table {
    buckets: Box<[u64]>,
    len: usize,
}

impl Table {
    pub fn new() -> Table {
        Table {
            buckets: Box::new([]),
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

    /// Number of buckets (0 or a power of two).
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

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    /// Index of the bucket holding the entry with this hash for which
    /// `eq` is true.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(EntryPtr<'_>) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
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
            i = (i + 1) & mask;
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

    /// Mutable header of the entry in occupied bucket `i`.
    #[inline]
    pub fn header_mut(&mut self, i: usize) -> &mut Header {
        let b = self.buckets[i];
        assert!(b != 0, "header_mut on an empty bucket");
        // SAFETY: the table owns the entry; &mut self gives exclusivity.
        unsafe { &mut *addr(b) }
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
    pub fn remove(&mut self, i: usize) -> Entry {
        let b = self.buckets[i];
        assert!(b != 0, "remove on an empty bucket");
        let mask = self.mask();
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let nb = self.buckets[j];
            if nb == 0 {
                break;
            }
            // SAFETY: occupied bucket, entry owned by this table.
            let home = unsafe { (*addr(nb)).hash } as usize & mask;
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
            j = (j + 1) & mask;
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
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.buckets[i] != 0 {
            i = (i + 1) & mask;
        }
        self.buckets[i] = pack(hash, e);
        self.len += 1;
    }

    /// Rebuilds the table with `n` buckets (a power of two above len).
    pub fn resize(&mut self, n: usize) {
        assert!(n.is_power_of_two() && n > self.len);
        let old = std::mem::replace(&mut self.buckets, vec![0; n].into_boxed_slice());
        let mask = n - 1;
        for b in old.iter().copied().filter(|&b| b != 0) {
            // SAFETY: occupied bucket; the entry moves to the new array.
            let h = unsafe { (*addr(b)).hash };
            let mut i = h as usize & mask;
            while self.buckets[i] != 0 {
                i = (i + 1) & mask;
            }
            self.buckets[i] = b;
        }
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
        mut dead: impl FnMut(EntryPtr<'_>) -> bool,
        out: &mut Vec<Entry>,
    ) {
        if self.len == 0 {
            return;
        }
        let n = self.buckets.len();
        let old = std::mem::replace(&mut self.buckets, vec![0; n].into_boxed_slice());
        self.len = 0;
        for b in old.iter().copied().filter(|&b| b != 0) {
            // SAFETY: occupied bucket; ownership is taken exactly once,
            // either here or by re-packing below.
            let e = unsafe { Entry::from_raw(addr(b)) };
            if dead(e.as_ptr()) {
                out.push(e);
            } else {
                let h = e.header().hash;
                self.insert(h, e);
            }
        }
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

    fn entry(hash: u64, key: &[u8]) -> Entry {
        Entry::new(hash, key, &[b"v"], Meta::default())
    }

    /// Hashes chosen to collide on the home bucket exercise probe runs,
    /// wrap-around and backward shifts.
    #[test]
    fn colliding_runs_survive_removal_in_any_order() {
        for order in [[0usize, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] {
            let mut t = Table::new();
            t.resize(8);
            // homes: 6, 6, 7, 7 (run wraps to 0 and 1), with distinct tags.
            let keys: [(&[u8], u64); 4] = [
                (b"a", (1 << 48) | 6),
                (b"b", (2 << 48) | 6),
                (b"c", (3 << 48) | 7),
                (b"d", (4 << 48) | 7),
            ];
            for (k, h) in keys {
                t.insert(h, entry(h, k));
            }
            let mut gone = vec![];
            for idx in order {
                let (k, h) = keys[idx];
                let i = t.find(h, |e| e.key() == k).expect("present");
                let e = t.remove(i);
                assert_eq!(e.as_ptr().key(), k);
                gone.push(idx);
                for (j, (k2, h2)) in keys.iter().enumerate() {
                    let found = t.find(*h2, |e| e.key() == *k2).is_some();
                    assert_eq!(found, !gone.contains(&j), "key {j} after removing {gone:?}");
                }
            }
            assert!(t.is_empty());
        }
    }

    #[test]
    fn tag_filters_and_resize_keeps_everything() {
        let mut t = Table::new();
        t.resize(4);
        for i in 0..3u64 {
            let h = (i << 48) | i;
            t.insert(h, entry(h, &i.to_le_bytes()));
        }
        // Same home bucket, different tag: no match, no key comparison.
        assert!(
            t.find((9 << 48) | 1, |_| panic!("tag mismatch compared"))
                .is_none()
        );
        t.resize(64);
        for i in 0..3u64 {
            let h = (i << 48) | i;
            assert!(t.find(h, |e| e.key() == i.to_le_bytes()).is_some());
        }
        let mut out = vec![];
        t.extract_into(|e| e.key() == 1u64.to_le_bytes(), &mut out);
        assert_eq!((out.len(), t.len()), (1, 2));
        assert_eq!(t.iter().count(), 2);
    }
}
