//! Prometheus metrics (`GET /metrics` on the HTTP protocol, behind `--auth`
//! like every other route): the text exposition format 0.0.4, with HELP
//! and TYPE lines and `pogocache_`-prefixed names in Prometheus's
//! conventions (`_total` counters, base units).
//!
//! Owns: metric names, help texts and rendering. Does not own the numbers:
//! per-worker counters (`stats.rs`, summed here), connection counts, the
//! store's figures and the last snapshot time live where they are kept.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use crate::stats::{CMD_COUNTERS, LATENCY_BOUNDS, LATENCY_SAMPLE, cmd_label};
use crate::{Shared, sys};

const PROTOCOLS: [&str; 4] = ["resp", "memcache", "http", "postgres"];

fn head(t: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(t, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

fn one(t: &mut String, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
    head(t, name, kind, help);
    let _ = writeln!(t, "{name} {v}");
}

/// Renders every metric. `now`/`wall` are the monotonic and wall clocks in
/// nanoseconds.
pub fn render(sh: &Shared, now: i64, wall: i64) -> String {
    let mut t = String::with_capacity(16 << 10);
    let workers = || sh.workers.iter().map(|w| &w.detail);

    head(
        &mut t,
        "pogocache_commands_total",
        "counter",
        "Commands by command-table name and outcome, every protocol (memcache, meta and HTTP requests count as the table command they run).",
    );
    for i in 0..CMD_COUNTERS {
        let cmd = cmd_label(i);
        let ok: u64 = workers().map(|d| d.ok[i].get()).sum();
        let err: u64 = workers().map(|d| d.err[i].get()).sum();
        if ok + err > 0 {
            let _ = writeln!(
                t,
                "pogocache_commands_total{{cmd=\"{cmd}\",outcome=\"ok\"}} {ok}"
            );
            let _ = writeln!(
                t,
                "pogocache_commands_total{{cmd=\"{cmd}\",outcome=\"error\"}} {err}"
            );
        }
    }
    head(
        &mut t,
        "pogocache_requests_total",
        "counter",
        "Requests parsed, by protocol.",
    );
    for (i, p) in PROTOCOLS.iter().enumerate() {
        let n: u64 = workers().map(|d| d.requests[i].get()).sum();
        let _ = writeln!(t, "pogocache_requests_total{{protocol=\"{p}\"}} {n}");
    }

    head(
        &mut t,
        "pogocache_command_duration_seconds",
        "histogram",
        &format!(
            "Time to run a command and encode its reply, sampled: one command in {LATENCY_SAMPLE}."
        ),
    );
    let mut cumulative = 0u64;
    for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
        cumulative += workers().map(|d| d.latency[i].get()).sum::<u64>();
        let _ = writeln!(
            t,
            "pogocache_command_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += workers()
        .map(|d| d.latency[LATENCY_BOUNDS.len()].get())
        .sum::<u64>();
    let _ = writeln!(
        t,
        "pogocache_command_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let sum_ns: u64 = workers().map(|d| d.latency_sum_ns.get()).sum();
    let _ = writeln!(
        t,
        "pogocache_command_duration_seconds_sum {}",
        sum_ns as f64 / 1e9
    );
    let _ = writeln!(t, "pogocache_command_duration_seconds_count {cumulative}");

    let tot = sh.totals();
    one(
        &mut t,
        "pogocache_keyspace_hits_total",
        "counter",
        "Key lookups that found a live entry (all protocols).",
        tot.get_hits,
    );
    one(
        &mut t,
        "pogocache_keyspace_misses_total",
        "counter",
        "Key lookups that found nothing (all protocols).",
        tot.get_misses,
    );
    one(
        &mut t,
        "pogocache_connections",
        "gauge",
        "Open client connections.",
        sh.conns.curr.load(Relaxed),
    );
    one(
        &mut t,
        "pogocache_connections_received_total",
        "counter",
        "Client connections accepted since start.",
        sh.conns.total.load(Relaxed),
    );
    one(
        &mut t,
        "pogocache_connections_rejected_total",
        "counter",
        "Connections closed at once because --maxconns was reached.",
        sh.conns.rejected.load(Relaxed),
    );
    one(
        &mut t,
        "pogocache_items",
        "gauge",
        "Entries in the store, including expired ones not yet removed.",
        sh.store.len(),
    );
    one(
        &mut t,
        "pogocache_item_bytes",
        "gauge",
        "Bytes held by entries (header, key and value).",
        sh.store.bytes(),
    );
    one(
        &mut t,
        "pogocache_evictions_total",
        "counter",
        "Live entries evicted to stay under the memory limit.",
        sh.store.evictions(),
    );
    one(
        &mut t,
        "pogocache_expirations_total",
        "counter",
        "Expired entries removed.",
        sh.store.expirations(),
    );
    one(
        &mut t,
        "pogocache_resident_memory_bytes",
        "gauge",
        "Resident set size of the process.",
        sys::rss(),
    );
    one(
        &mut t,
        "pogocache_max_memory_bytes",
        "gauge",
        "The --maxmemory limit (0: none).",
        sh.settings.maxmemory,
    );
    one(
        &mut t,
        "pogocache_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        ((now - sh.started) as f64 / 1e9).max(0.0),
    );
    let last = sh.last_save.load(Relaxed);
    if last > 0 {
        one(
            &mut t,
            "pogocache_snapshot_age_seconds",
            "gauge",
            "Seconds since the last snapshot was saved or loaded.",
            ((wall - last) as f64 / 1e9).max(0.0),
        );
    }
    if let Some(c) = &sh.cluster {
        let topo = c.topology();
        one(
            &mut t,
            "pogocache_cluster_slots_owned",
            "gauge",
            "Hash slots this cluster node owns.",
            topo.owned() as f64,
        );
        one(
            &mut t,
            "pogocache_cluster_keys_dropped_total",
            "counter",
            "Keys dropped because their slot moved to another node.",
            c.dropped.load(Relaxed) as f64,
        );
        one(
            &mut t,
            "pogocache_cluster_reloads_total",
            "counter",
            "Nodes-file reloads that changed the topology.",
            c.reloads.load(Relaxed) as f64,
        );
    }
    crate::repl::metrics(&sh.repl, &mut t);
    t
}
