//! Request counters.
//!
//! Owns: the per-worker counters behind the `STATS` command and their
//! aggregation. Does not own: connection counts (the runtime keeps those
//! in [`ConnCounters`]) or store figures (asked of the store).
//!
//! Each worker thread writes only its own cache-padded [`Stats`], with
//! plain relaxed loads and stores (no read-modify-write, no contention);
//! `STATS` sums all workers. Unlike Pogocache (gap C11) the sums are
//! current: a `STATS` right after a `GET` on the same connection sees it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A counter written by one thread and read by any.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker thread may call this (single
    /// writer), which is what makes load+store correct and cheap.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn incr(&self) {
        self.add(1)
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

macro_rules! stats {
    ($($name:ident),* $(,)?) => {
        /// One worker's request counters (names as in Pogocache's STATS),
        /// plus the finer counters behind `/metrics`.
        #[derive(Default, Debug)]
        pub struct Stats { $(pub $name: Counter,)* pub detail: Detail }

        /// A summed snapshot of [`Stats`].
        #[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
        pub struct Totals { $(pub $name: u64,)* }

        impl Totals {
            /// Sums a set of per-worker counters.
            pub fn sum<'a>(all: impl IntoIterator<Item = &'a Stats>) -> Totals {
                let mut t = Totals::default();
                for s in all { $(t.$name += s.$name.get();)* }
                t
            }
        }
    };
}

stats!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    get_hits,
    get_misses,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    touch_hits,
    touch_misses,
    store_too_large,
    store_no_memory,
    auth_cmds,
    auth_errors,
);

/// Counters per command: one per row of the command table, then one for
/// unknown commands.
pub const CMD_COUNTERS: usize = crate::table::COUNT + 1;

/// Label of `pogocache_commands_total{cmd=...}` for counter `i`: the
/// command's name, or `unknown`.
pub fn cmd_label(i: usize) -> &'static str {
    crate::table::SPECS
        .get(i)
        .map(|s| s.label())
        .unwrap_or("unknown")
}

/// Upper bounds (seconds) of the command latency histogram buckets.
pub const LATENCY_BOUNDS: [f64; 14] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 1e-1, 1.0,
];

/// One command in this many is timed for the latency histogram: two clock
/// reads per command would cost more than the histogram is worth.
pub const LATENCY_SAMPLE: u64 = 64;

/// Per-worker counters for `/metrics`: commands by name and outcome,
/// requests by protocol, and sampled command latency. Single writer, like
/// the rest of [`Stats`].
#[derive(Debug)]
pub struct Detail {
    pub ok: [Counter; CMD_COUNTERS],
    pub err: [Counter; CMD_COUNTERS],
    /// Requests by protocol: RESP, Memcache, HTTP, Postgres.
    pub requests: [Counter; 4],
    /// Histogram buckets (cumulative when rendered), then +Inf.
    pub latency: [Counter; LATENCY_BOUNDS.len() + 1],
    pub latency_sum_ns: Counter,
    /// Commands seen, for the 1-in-[`LATENCY_SAMPLE`] choice.
    pub seen: Counter,
}

impl Default for Detail {
    fn default() -> Self {
        Detail {
            ok: std::array::from_fn(|_| Counter::default()),
            err: std::array::from_fn(|_| Counter::default()),
            requests: Default::default(),
            latency: std::array::from_fn(|_| Counter::default()),
            latency_sum_ns: Counter::default(),
            seen: Counter::default(),
        }
    }
}

impl Detail {
    /// Whether to time the command about to run.
    #[inline]
    pub fn sample(&self) -> bool {
        self.seen.incr();
        self.seen.get().is_multiple_of(LATENCY_SAMPLE)
    }

    pub fn record_latency(&self, ns: i64) {
        let s = ns.max(0) as f64 / 1e9;
        let i = LATENCY_BOUNDS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency[i].incr();
        self.latency_sum_ns.add(ns.max(0) as u64);
    }
}

/// Connection counts, maintained by the runtime.
#[derive(Default, Debug)]
pub struct ConnCounters {
    pub curr: AtomicU64,
    pub total: AtomicU64,
    pub rejected: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_workers() {
        let a = Stats::default();
        let b = Stats::default();
        a.cmd_get.add(2);
        b.cmd_get.incr();
        b.auth_errors.incr();
        let t = Totals::sum([&a, &b]);
        assert_eq!((t.cmd_get, t.auth_errors, t.cmd_set), (3, 1, 0));
    }
}
