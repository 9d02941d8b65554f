//! Snapshot loader (`load_from`, what `load` runs on a file): any input, in strict and skip recovery modes, loads or
//! fails with an error, never panics, and never allocates much more than
//! the file could hold (LZ4 expands at most ~255:1; lengths declared in
//! headers and records are checked before anything is allocated).
//!
//! Input mode (first byte): even = the rest is the file as is; odd = the
//! rest is one block's uncompressed payload, wrapped in a valid block
//! (magic, CRC, sizes), so the fuzzer gets past the CRC and reaches the
//! record parser.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use libfuzzer_sys::fuzz_target;
use pogocache_persist::{Recovery, encode_block, load_from};
use pogocache_store::{Config, Store};

/// Counts live heap bytes and their peak.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(live, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 1 {
        let mut f = Vec::new();
        encode_block(rest, &mut f);
        f
    } else {
        rest.to_vec()
    };
    let origin = std::path::Path::new("fuzz.pogo");
    for recovery in [Recovery::Strict, Recovery::Skip] {
        let store = Store::new(Config {
            shards: 4,
            ..Config::default()
        });
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        let _ = load_from(&store, &file[..], origin, recovery, |_| {});
        let peak = PEAK.load(Relaxed) - base;
        // Compressed block (≤ file) + decompressed block (≤ 255 × file) +
        // entries made from it (≤ the block plus per-entry overhead).
        let bound = (1 << 20) + file.len() * 600;
        assert!(peak <= bound, "peak {peak} for a {}-byte file", file.len());
        // Whatever loaded must be readable back.
        store.for_each(0, |e| {
            let _ = (e.key().len(), e.value().len(), e.flags());
        });
    }
});
