//! The once-a-second background thread.
//!
//! Owns: the memory check (process RSS against `--maxmemory`, which turns
//! the store's low-memory mode on and off, as in Pogocache), autosweep,
//! and the periodic `-v` / `--trackallocs` lines. Also the [`Stop`] signal
//! that wakes it early at shutdown.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pogocache_command::{Shared, log, sys};

use crate::config::{Config, human_size};

/// A stop flag that sleeping threads can wait on.
#[derive(Default)]
pub struct Stop {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    pub fn set(&self) {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    pub fn is_set(&self) -> bool {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps up to `d`; returns true if stop was requested.
    pub fn wait(&self, d: Duration) -> bool {
        let g = self.flag.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, d, |s| !*s)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

pub struct Ticker {
    shared: Arc<Shared>,
    stop: Arc<Stop>,
    maxmemory: Option<u64>,
    /// Created with the ticker, so its RSS baseline predates any client.
    memory: MemoryGuard,
    autosweep: bool,
    trackallocs: bool,
    verbosity: u8,
}

impl Ticker {
    pub fn new(shared: Arc<Shared>, stop: Arc<Stop>, c: &Config) -> Ticker {
        Ticker {
            memory: MemoryGuard::new(c.maxmemory, &shared.store),
            shared,
            stop,
            maxmemory: c.maxmemory,
            autosweep: c.autosweep,
            trackallocs: c.trackallocs,
            verbosity: c.verbosity,
        }
    }

    pub fn run(mut self) {
        let mut rng = pogocache_store::clock::monotonic_ns() as u64 | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut tick = 0u64;
        while !self.stop.wait(Duration::from_millis(100)) {
            tick += 1;
            // Stream bytes from outside the workers (cluster drops, SAVE's
            // neighbours) reach replicas within 100 ms.
            self.shared.repl.kick();
            // Holes in the packed entries' segments that writes have not
            // compacted (deletes and expiry in a store nobody writes to):
            // up to 2 MiB walked a tick, nothing when there are few.
            self.shared
                .store
                .compact(2 << 20, pogocache_store::clock::monotonic_ns());
            let rss = sys::rss() as u64;
            if let Some(limit) = self.maxmemory {
                let low = rss > limit;
                if low != self.shared.store.low_memory() {
                    self.shared.store.set_low_memory(low);
                    if self.verbosity >= 1 {
                        log::line(format_args!(
                            "# Low memory mode {}",
                            if low { "on" } else { "off" }
                        ));
                    }
                }
                self.memory.update(&self.shared.store, rss);
                if self.verbosity >= 1 && tick.is_multiple_of(10) {
                    log::line(format_args!(
                        ". Memory (usage={}, limit={})",
                        human_size(rss),
                        human_size(limit)
                    ));
                }
            }
            if !tick.is_multiple_of(10) {
                continue;
            }
            // Once a second: the primary's clock into the replication
            // stream, dead replica links dropped.
            self.shared.repl.tick();
            if self.autosweep {
                let now = pogocache_store::clock::monotonic_ns();
                if let Some(st) = self.shared.store.autosweep(now, 8, &mut next)
                    && self.verbosity >= 1
                {
                    log::line(format_args!(
                        ". autosweep (swept={}, kept={})",
                        st.swept, st.kept
                    ));
                }
            }
            if self.trackallocs {
                log::line(format_args!(
                    ". keys={}, allocs={}, rss={} conns={}",
                    self.shared.store.len(),
                    self.shared.store.len(),
                    human_size(rss),
                    self.shared.conns.curr.load(Relaxed)
                ));
            }
        }
    }
}

/// Keeps `--maxmemory` between RSS samples. Pogocache only compares RSS
/// with the limit once a second, so a burst of writes overshoots by
/// whatever arrives in that second (and churn then fragments memory: the
/// soak workload in scripts/soak.sh ends at 1.8x the limit there). Here
/// the RSS cost of one stored byte is learned, and the store gets an
/// entry-byte budget that puts RSS at 97% of the limit: every write checks
/// it, so memory stops growing at once, whatever the value sizes (the
/// budget is store-wide, see `pogocache_store::Config::max_bytes`).
///
/// The ratio is learned only when RSS reaches a new high, and only once
/// the entries hold an eighth of the room below the limit: memory the
/// allocator keeps after evictions never lowers RSS, so a ratio learned
/// at other moments (fewer entry bytes, the same RSS) would shrink the
/// budget again and again until the cache held nothing; and early on,
/// fixed costs (connection buffers, table growth) would inflate it. A
/// correction factor then closes the loop on RSS itself: while RSS is over
/// the limit it shrinks in proportion (down to half); while the budget
/// binds (the entries fill it) and RSS stays under 95.5% of the limit it
/// grows by 2% a tick (up to 4x), so a ratio learned too high cannot
/// leave the cache half empty; between the two it drifts back to 1. The
/// low-memory flag still evicts one entry per insert above the limit, as
/// Pogocache.
struct MemoryGuard {
    limit: Option<u64>,
    /// RSS with no entries, taken when the server starts (before any
    /// client can write).
    base: u64,
    /// RSS bytes per entry byte.
    ratio: f64,
    /// Highest RSS seen while learning.
    peak: u64,
    /// Correction for what the ratio misses (see above).
    scale: f64,
    /// The budget last given to the store.
    budget: u64,
}

impl MemoryGuard {
    fn new(limit: Option<u64>, store: &pogocache_store::Store) -> MemoryGuard {
        let base = (sys::rss() as u64).saturating_sub(store.bytes() as u64);
        let mut g = MemoryGuard {
            limit,
            base,
            ratio: 0.0,
            peak: 0,
            scale: 1.0,
            budget: u64::MAX,
        };
        // Until a ratio is learned, assume a conservative 1.5 RSS bytes
        // per entry byte, so the limit holds from the first insert even if
        // this thread is slow to get its first sample.
        if let Some(limit) = limit
            && limit > base
        {
            g.set(store, ((limit - base) as f64 / 1.5) as u64);
        }
        g
    }

    fn set(&mut self, store: &pogocache_store::Store, budget: u64) {
        self.budget = budget.max(1 << 20);
        store.set_max_bytes(Some(self.budget as usize));
    }

    fn update(&mut self, store: &pogocache_store::Store, rss: u64) {
        let Some(limit) = self.limit else {
            return;
        };
        if limit <= self.base {
            return;
        }
        let bytes = store.bytes() as u64;
        let span = limit - self.base;
        if bytes >= (1 << 20).max(span / 8) && rss > self.peak {
            self.peak = rss;
            self.ratio = (rss.saturating_sub(self.base) as f64 / bytes as f64).max(1.0);
        }
        let rss_f = rss as f64;
        let limit_f = limit as f64;
        if rss > limit {
            self.scale = (self.scale * limit_f / rss_f).max(0.5);
        } else if rss_f < limit_f * 0.955 && bytes as f64 >= self.budget as f64 * 0.95 {
            self.scale = (self.scale * 1.02).min(4.0);
        } else if rss_f < limit_f * 0.97 && self.scale < 1.0 {
            self.scale = (self.scale * 1.01).min(1.0);
        }
        if self.ratio > 0.0 {
            // Aim at 97%: churn fragments memory after the ratio is
            // learned, and the headroom absorbs that before `scale` has
            // to react. (At 90% a cache under churn held 3% fewer items
            // than 0.85 x limit / mean item size, and fewer than
            // Pogocache at the same limit, for no gain: RSS ended at 0.91
            // of the limit with glibc's heap, which fragments little.)
            self.set(store, (span as f64 * 0.97 / self.ratio * self.scale) as u64);
        }
    }
}

/// `--saveinterval`: snapshots `path` every `secs` seconds until stopped.
/// Each save is crash-safe (work file, fsync, rename), so a kill at any
/// moment leaves the previous good snapshot.
pub fn saver(shared: &Shared, stop: &Stop, path: &std::path::Path, secs: u64) {
    while !stop.wait(Duration::from_secs(secs)) {
        let t = std::time::Instant::now();
        match shared.repl.save(&shared.store, path) {
            Ok(st) => {
                shared.mark_snapshot();
                if shared.settings.verbosity >= 1 {
                    log::line(format_args!(
                        ". background save finished {:.3} secs ({} entries, {} bytes)",
                        t.elapsed().as_secs_f64(),
                        st.entries,
                        st.bytes
                    ));
                }
            }
            Err(e) => log::line(format_args!(
                "# Background save to {} failed: {e}",
                path.display()
            )),
        }
    }
}
