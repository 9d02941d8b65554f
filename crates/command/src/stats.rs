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
        /// One worker's request counters (names as in Pogocache's STATS).
        #[derive(Default, Debug)]
        pub struct Stats { $(pub $name: Counter,)* }

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
    // Every request that reached the command table (INFO's
    // total_commands_processed; not part of Pogocache's STATS).
    commands,
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
