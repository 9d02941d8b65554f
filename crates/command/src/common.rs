//! Helpers every protocol's executor shares (the command table, memcache
//! and meta, HTTP, and through the table Postgres), written once.
//!
//! Owns: counting a command for `/metrics` (by outcome, with the sampled
//! latency histogram), the counters of a refused unauthenticated request,
//! of a failed store write and of lookups, the MONITOR / `-vvv` echo of a
//! request translated into command arguments, and seconds-to-clock
//! arithmetic. Does not own: what each protocol replies.

use pogocache_protocol::ArgView;
use pogocache_store::StoreError;

use crate::table::{COUNT, Cmd};
use crate::{Ctx, Stats, err, log};

/// Nanoseconds per second, the store clock's unit.
pub(crate) const NS_PER_SEC: i64 = 1_000_000_000;

/// `now` plus `secs` seconds on the store clock, saturating.
#[inline]
pub(crate) fn after_secs(now: i64, secs: i64) -> i64 {
    now.saturating_add(secs.saturating_mul(NS_PER_SEC))
}

/// Runs `f` as one execution of `cmd` (`None`: unknown) for `/metrics`:
/// `f` returns its result and whether it failed; the command is counted
/// by outcome, and one in `stats::LATENCY_SAMPLE` is timed. Every
/// protocol's requests pass here, so `pogocache_commands_total` and the
/// latency histogram cover them all.
#[inline]
pub(crate) fn metered<'c, T>(
    ctx: &mut Ctx<'c>,
    cmd: Option<Cmd>,
    f: impl FnOnce(&mut Ctx<'c>) -> (T, bool),
) -> T {
    let timed = ctx
        .stats
        .detail
        .sample()
        .then(pogocache_store::clock::monotonic_ns);
    let (r, failed) = f(ctx);
    let d = &ctx.stats.detail;
    let i = cmd.map(Cmd::index).unwrap_or(COUNT);
    if failed {
        d.err[i].incr();
    } else {
        d.ok[i].incr();
    }
    if let Some(t0) = timed {
        d.record_latency(pogocache_store::clock::monotonic_ns() - t0);
    }
    r
}

/// Counts a request refused for want of authentication.
#[inline]
pub(crate) fn denied(stats: &Stats) {
    stats.auth_cmds.incr();
    stats.auth_errors.incr();
}

/// Counts a store write that failed, and returns its RESP error text
/// (Postgres shows the same message).
#[inline]
pub(crate) fn store_error(stats: &Stats, e: StoreError) -> &'static [u8] {
    match e {
        StoreError::OutOfMemory => {
            stats.store_no_memory.incr();
            err::MEMORY
        }
        StoreError::TooLarge => {
            stats.store_too_large.incr();
            err::SIZE
        }
    }
}

/// The memcache (and meta) reply line of a failed store write.
#[inline]
pub(crate) fn store_error_line(e: StoreError) -> &'static [u8] {
    match e {
        StoreError::OutOfMemory => b"SERVER_ERROR out of memory\r\n",
        StoreError::TooLarge => b"SERVER_ERROR object too large for cache\r\n",
    }
}

/// Counts `hits + misses` lookups of GET-like commands.
#[inline]
pub(crate) fn lookups(stats: &Stats, hits: u64, misses: u64) {
    stats.cmd_get.add(hits + misses);
    stats.get_hits.add(hits);
    stats.get_misses.add(misses);
}

/// Whether MONITOR or `-vvv` wants requests echoed: callers build the
/// translated arguments only then.
#[inline]
pub(crate) fn tracing(ctx: &Ctx<'_>) -> bool {
    ctx.shared.monitor.active() || ctx.shared.settings.verbosity >= 3
}

/// Echoes a request, as command arguments, to `-vvv` and MONITOR.
pub(crate) fn trace(ctx: &Ctx<'_>, args: ArgView<'_>) {
    if ctx.shared.settings.verbosity >= 3 {
        log::command(args);
    }
    if ctx.shared.monitor.active() {
        ctx.shared
            .monitor
            .feed(pogocache_store::clock::wall_ns(), &ctx.session.addr, args);
    }
}
