//! One cache entry as a single heap allocation: a 40-byte header followed by
//! the key bytes and then the value bytes.
//!
//! Owns: the entry's memory layout, allocation and release. Does not own:
//! hashing, locking, expiry decisions (see `shard.rs`).
//!
//! Why hand-rolled: a `struct { key: Box<[u8]>, value: Box<[u8]>, .. }`
//! costs two or three allocations and ~64 bytes of table slot per item,
//! which puts RSS per item well above Pogocache's. Here the hash table
//! stores a thin 8-byte pointer and everything else lives in one block,
//! so an item costs `8 / load + 40 + key + value` bytes plus allocator
//! rounding. The unsafe code is confined to this file and every accessor
//! is bounds-checked by construction (lengths come from the header that
//! `Entry::new` wrote).

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ptr::NonNull;

/// Fixed part of every entry. `repr(C)` so the layout (and the size test
/// below) is stable.
#[repr(C)]
pub(crate) struct Header {
    /// Full 64-bit key hash, kept so table growth never rehashes keys.
    pub hash: u64,
    /// Absolute expiry in nanoseconds on the store clock; 0 = never.
    pub expires: i64,
    /// Compare-and-swap token (0 when CAS is disabled).
    pub cas: u64,
    /// Last access in whole seconds on the store clock (for eviction).
    pub access: u32,
    /// Opaque client flags (memcache flags).
    pub flags: u32,
    /// Key length in bytes.
    pub klen: u32,
    /// Value length in bytes.
    pub vlen: u32,
}

pub(crate) const HEADER: usize = size_of::<Header>();

/// Owning thin pointer to one entry block.
pub(crate) struct Entry(NonNull<Header>);

// SAFETY: an Entry exclusively owns its block (like Box), and the block
// holds only plain bytes, so moving it across threads is sound.
unsafe impl Send for Entry {}
// SAFETY: shared access only reads through `&self`.
unsafe impl Sync for Entry {}

impl Entry {
    fn layout(klen: usize, vlen: usize) -> Layout {
        // Sizes are bounded by the u32 header fields, far below isize::MAX.
        Layout::from_size_align(HEADER + klen + vlen, align_of::<Header>()).expect("entry layout")
    }

    /// Allocates an entry holding `key` and the concatenation of `parts`
    /// as its value (APPEND/PREPEND build values from two slices without
    /// an intermediate copy).
    pub fn new(hash: u64, key: &[u8], parts: &[&[u8]], meta: Meta) -> Entry {
        let vlen: usize = parts.iter().map(|p| p.len()).sum();
        assert!(key.len() <= u32::MAX as usize && vlen <= u32::MAX as usize);
        let layout = Self::layout(key.len(), vlen);
        // SAFETY: layout has non-zero size (the header is 40 bytes).
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw as *mut Header) else {
            handle_alloc_error(layout)
        };
        // SAFETY: `ptr` points to a fresh block of HEADER + klen + vlen
        // bytes aligned for Header; we initialise every byte we later read.
        unsafe {
            ptr.as_ptr().write(Header {
                hash,
                expires: meta.expires,
                cas: meta.cas,
                access: meta.access,
                flags: meta.flags,
                klen: key.len() as u32,
                vlen: vlen as u32,
            });
            let mut dst = raw.add(HEADER);
            std::ptr::copy_nonoverlapping(key.as_ptr(), dst, key.len());
            dst = dst.add(key.len());
            for p in parts {
                std::ptr::copy_nonoverlapping(p.as_ptr(), dst, p.len());
                dst = dst.add(p.len());
            }
        }
        Entry(ptr)
    }

    #[inline]
    pub fn header(&self) -> &Header {
        // SAFETY: the header was initialised in `new` and lives as long as self.
        unsafe { self.0.as_ref() }
    }

    /// Bytes this entry accounts for in the `bytes` statistic.
    #[inline]
    pub fn size(&self) -> usize {
        self.as_ptr().size()
    }

    #[inline]
    pub fn is_alive(&self, now: i64) -> bool {
        self.as_ptr().is_alive(now)
    }
}

impl Entry {
    /// Gives up ownership of the block (the table packs the address into
    /// a bucket). Pair with [`Entry::from_raw`].
    #[inline]
    pub fn into_raw(self) -> *mut Header {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// Takes back ownership of a block from [`Entry::into_raw`].
    ///
    /// # Safety
    /// `p` must come from `into_raw` and be taken back exactly once.
    #[inline]
    pub unsafe fn from_raw(p: *mut Header) -> Entry {
        // SAFETY: non-null by the contract above.
        Entry(unsafe { NonNull::new_unchecked(p) })
    }

    /// A borrowed view of this entry.
    #[inline]
    pub fn as_ptr(&self) -> EntryPtr<'_> {
        EntryPtr(self.0, std::marker::PhantomData)
    }
}

/// A shared borrow of an entry block owned by someone else (a table
/// bucket), with the same read accessors as [`Entry`].
#[derive(Clone, Copy)]
pub(crate) struct EntryPtr<'a>(NonNull<Header>, std::marker::PhantomData<&'a Header>);

impl<'a> EntryPtr<'a> {
    /// # Safety
    /// `p` must point to a live entry block that outlives `'a` and is not
    /// mutated during `'a`.
    #[inline]
    pub unsafe fn new(p: *mut Header) -> EntryPtr<'a> {
        // SAFETY: non-null by the contract above.
        EntryPtr(
            unsafe { NonNull::new_unchecked(p) },
            std::marker::PhantomData,
        )
    }

    #[inline]
    pub fn header(self) -> &'a Header {
        // SAFETY: live block for 'a (constructor contract).
        unsafe { self.0.as_ref() }
    }

    #[inline]
    pub fn key(self) -> &'a [u8] {
        let h = self.header();
        // SAFETY: klen key bytes follow the header (written in `new`).
        unsafe {
            std::slice::from_raw_parts((self.0.as_ptr() as *const u8).add(HEADER), h.klen as usize)
        }
    }

    #[inline]
    pub fn value(self) -> &'a [u8] {
        let h = self.header();
        // SAFETY: vlen value bytes follow the key (written in `new`).
        unsafe {
            std::slice::from_raw_parts(
                (self.0.as_ptr() as *const u8).add(HEADER + h.klen as usize),
                h.vlen as usize,
            )
        }
    }

    #[inline]
    pub fn size(self) -> usize {
        let h = self.header();
        HEADER + h.klen as usize + h.vlen as usize
    }

    #[inline]
    pub fn is_alive(self, now: i64) -> bool {
        let e = self.header().expires;
        e == 0 || e > now
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let h = self.header();
        let layout = Self::layout(h.klen as usize, h.vlen as usize);
        // SAFETY: the block was allocated in `new` with this same layout.
        unsafe { dealloc(self.0.as_ptr() as *mut u8, layout) }
    }
}

/// Header fields chosen by the caller when building an entry.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Meta {
    pub expires: i64,
    pub cas: u64,
    pub access: u32,
    pub flags: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_sizes_are_pinned() {
        // Layout changes move RSS per item; make them fail loudly.
        assert_eq!(size_of::<Header>(), 40);
        assert_eq!(size_of::<Entry>(), 8);
        assert_eq!(size_of::<Option<Entry>>(), 8);
    }

    #[test]
    fn key_and_value_round_trip() {
        let meta = Meta {
            expires: 7,
            cas: 9,
            access: 3,
            flags: 5,
        };
        let e = Entry::new(42, b"key", &[b"val", b"ue\x00\xff"], meta);
        assert_eq!(e.as_ptr().key(), b"key");
        assert_eq!(e.as_ptr().value(), b"value\x00\xff");
        let h = e.header();
        assert_eq!(
            (h.hash, h.expires, h.cas, h.access, h.flags),
            (42, 7, 9, 3, 5)
        );
        assert_eq!(e.size(), 40 + 3 + 7);
        let empty = Entry::new(1, b"", &[], Meta::default());
        assert_eq!(empty.as_ptr().key(), b"");
        assert_eq!(empty.as_ptr().value(), b"");
    }

    #[test]
    fn liveness() {
        let e = Entry::new(1, b"k", &[b"v"], Meta::default());
        assert!(e.is_alive(i64::MAX));
        let meta = Meta {
            expires: 100,
            ..Meta::default()
        };
        let e = Entry::new(1, b"k", &[b"v"], meta);
        assert!(e.is_alive(99));
        assert!(!e.is_alive(100));
    }
}
