//! Keyspace-wide and server commands: KEYS, SCAN, FLUSH/FLUSHDB/FLUSHALL,
//! SWEEP, PURGE, SAVE, LOAD, STATS, DEBUG.
//!
//! Pogocache hands KEYS, sync FLUSH, SWEEP and PURGE to a helper thread
//! and parks the connection; here they run on the worker, one shard lock
//! at a time, so other connections' commands interleave at shard level
//! just the same and reply order is trivially preserved. Delayed and
//! ASYNC forms run on a detached thread, as in Pogocache.

use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use pogocache_protocol::ArgView;
use pogocache_store::{Expiry, SetOptions, glob};

use crate::{
    Ctx, GITHASH, Reply, Shared, VERSION, atoi, eq_ic, err, log, parse_i64_strict,
    parse_u64_strict, sys,
};

/// `KEYS pattern`
pub fn keys<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let pattern = args.get(1);
    let mut found: Vec<Vec<u8>> = Vec::new();
    ctx.shared.store.for_each(ctx.now, |e| {
        if glob::matches(pattern, e.key()) {
            found.push(e.key().to_vec());
        }
    });
    out.array(found.len());
    for k in &found {
        out.bulk(k);
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
pub fn scan<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let Some(cursor) = parse_u64_strict(args.get(1)) else {
        return out.error(err::CURSOR);
    };
    let mut pattern: Option<&[u8]> = None;
    let mut count = 100usize;
    let mut i = 2;
    while i < args.len() {
        let opt = args.get(i);
        if i + 1 >= args.len() {
            return out.error(err::SYNTAX);
        }
        let val = args.get(i + 1);
        if eq_ic(opt, b"match") {
            pattern = Some(val);
        } else if eq_ic(opt, b"count") {
            match parse_i64_strict(val) {
                Some(c) if (1..=i32::MAX as i64).contains(&c) => count = c as usize,
                _ => return out.error(err::SYNTAX),
            }
        } else if eq_ic(opt, b"type") {
            if !eq_ic(val, b"string") {
                let mut msg = b"ERR unknown type name '".to_vec();
                msg.extend_from_slice(val);
                msg.push(b'\'');
                return out.error(&msg);
            }
        } else {
            return out.error(err::SYNTAX);
        }
        i += 2;
    }
    let mut found: Vec<Vec<u8>> = Vec::new();
    let next = ctx.shared.store.scan(cursor, count, ctx.now, |k| {
        if pattern.is_none_or(|p| glob::matches(p, k)) {
            found.push(k.to_vec());
            true
        } else {
            false
        }
    });
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(found.len());
    for k in &found {
        out.bulk(k);
    }
}

fn secs_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn run_flush(shared: &Shared) {
    let verbose = shared.settings.verbosity >= 1;
    if verbose {
        log::line(format_args!(". flush started"));
    }
    let t = Instant::now();
    shared.store.clear();
    shared.flushes.fetch_add(1, Relaxed);
    if verbose {
        log::line(format_args!(". flush finished in {:.2}s", secs_since(t)));
    }
}

/// `FLUSHALL [ASYNC|SYNC] [FAST] [DELAY seconds]` (also FLUSH, FLUSHDB).
pub fn flush<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let (mut asynchronous, mut delay) = (false, 0i64);
    let mut i = 1;
    while i < args.len() {
        let a = args.get(i);
        if eq_ic(a, b"async") {
            asynchronous = true;
        } else if eq_ic(a, b"sync") {
            asynchronous = false;
            delay = 0;
        } else if eq_ic(a, b"fast") {
        } else if eq_ic(a, b"delay") {
            if i + 1 >= args.len() {
                return out.error(err::SYNTAX);
            }
            match parse_i64_strict(args.get(i + 1)) {
                Some(d) if (0..=31_536_000).contains(&d) => {
                    delay = d;
                    if d > 0 {
                        asynchronous = true;
                    }
                }
                _ => return out.error(err::DELAY),
            }
            i += 1;
        } else {
            return out.error(err::SYNTAX);
        }
        i += 1;
    }
    flush_all(ctx.shared, asynchronous, delay);
    out.ok()
}

/// Flushes now (sync) or from a detached thread after `delay` seconds
/// (async), as FLUSHALL and memcache `flush_all` do.
pub(crate) fn flush_all(shared: &Arc<Shared>, asynchronous: bool, delay: i64) {
    if !asynchronous {
        return run_flush(shared);
    }
    let shared = Arc::clone(shared);
    if delay > 0 {
        log::line(format_args!(". flush scheduled in {delay} seconds"));
    }
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(delay as u64));
        run_flush(&shared);
    });
}

fn run_sweep(shared: &Shared, now: i64) {
    let verbose = shared.settings.verbosity >= 1;
    if verbose {
        log::line(format_args!(". sweep started"));
    }
    let t = Instant::now();
    let st = shared.store.sweep(now);
    if verbose {
        log::line(format_args!(
            ". sweep finished in {:.2}s, (swept={}, kept={}) ",
            secs_since(t),
            st.swept,
            st.kept
        ));
    }
}

/// `SWEEP [ASYNC|FAST]`: removes every expired entry.
pub fn sweep<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let asynchronous = match args.len() {
        2 if eq_ic(args.get(1), b"async") => true,
        2 if eq_ic(args.get(1), b"fast") => false,
        2 => return out.error(err::SYNTAX),
        _ => false,
    };
    if asynchronous {
        let shared = Arc::clone(ctx.shared);
        std::thread::spawn(move || run_sweep(&shared, pogocache_store::clock::monotonic_ns()));
    } else {
        run_sweep(ctx.shared, ctx.now);
    }
    out.ok()
}

fn run_purge(shared: &Shared) {
    log::line(format_args!(". purge started"));
    let t = Instant::now();
    (shared.purge)();
    log::line(format_args!(". purge finished in {:.2}s", secs_since(t)));
}

/// `PURGE [ASYNC]`: returns free memory to the OS.
pub fn purge<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    if args.len() == 2 {
        if !eq_ic(args.get(1), b"async") {
            return out.error(err::SYNTAX);
        }
        let shared = Arc::clone(ctx.shared);
        std::thread::spawn(move || run_purge(&shared));
    } else {
        run_purge(ctx.shared);
    }
    out.ok()
}

/// `SAVE [TO path] [FAST]` / `LOAD [FROM path] [FAST]`: write a snapshot
/// (crash-safe, see `pogocache_persist::save`) or merge one into the live
/// data. They run on the calling worker, one shard lock at a time; `FAST`
/// is accepted for compatibility.
pub fn save_load<R: Reply>(
    ctx: &mut Ctx<'_>,
    args: ArgView<'_>,
    out: &mut R,
    kw: &[u8],
    what: &str,
) {
    let mut path: Option<&[u8]> = None;
    let mut i = 1;
    while i < args.len() {
        let a = args.get(i);
        if eq_ic(a, kw) {
            if i + 1 >= args.len() {
                return out.error(err::SYNTAX);
            }
            path = Some(args.get(i + 1));
            i += 2;
        } else if eq_ic(a, b"fast") {
            i += 1;
        } else {
            return out.error(err::SYNTAX);
        }
    }
    let path = match (path, &ctx.shared.settings.persist) {
        (Some(p), _) => std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p)),
        (None, Some(p)) => p.clone(),
        (None, None) => return out.error(err::PATH),
    };
    let t = Instant::now();
    let store = &ctx.shared.store;
    let ok = if what == "save" {
        ctx.shared
            .repl
            .save(store, &path)
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", path.display()))
    } else {
        pogocache_persist::load(store, &path, pogocache_persist::Recovery::Strict, |_| {})
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match ok {
        Ok(()) => {
            log::line(format_args!(". {what} finished {:.3} secs", secs_since(t)));
            ctx.shared.mark_snapshot();
            out.ok()
        }
        Err(e) => {
            log::line(format_args!(". {what} failed: {e}"));
            out.error(if what == "save" {
                b"save failed"
            } else {
                b"load failed"
            })
        }
    }
}

/// `STATS`: the 36 counters, in Pogocache's order.
pub fn stats<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    if args.len() != 1 {
        return out.error(err::SYNTAX);
    }
    let stats = stats_list(ctx);
    out.array(stats.len());
    for (name, value) in &stats {
        out.array(2);
        out.bulk(name.as_bytes());
        out.bulk(value.as_bytes());
    }
}

/// The 36 statistics as (name, value) pairs, shared by RESP `STATS` and
/// memcache `stats`.
pub(crate) fn stats_list(ctx: &Ctx<'_>) -> [(&'static str, String); 36] {
    let sh = ctx.shared;
    let t = sh.totals();
    let uptime = (ctx.now - sh.started + 500_000_000) / 1_000_000_000;
    let time = (pogocache_store::clock::wall_ns() + 500_000_000) / 1_000_000_000;
    let (user, system) = sys::cpu_times_us();
    let rusage = |us: u64| format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    let n = |v: u64| v.to_string();
    [
        ("pid", n(std::process::id() as u64)),
        ("uptime", uptime.to_string()),
        ("time", time.to_string()),
        ("product", "pogocache".into()),
        ("version", VERSION.into()),
        ("githash", GITHASH.into()),
        ("pointer_size", n(usize::BITS as u64)),
        ("rusage_user", rusage(user)),
        ("rusage_system", rusage(system)),
        ("max_connections", n(sh.settings.maxconns as u64)),
        ("curr_connections", n(sh.conns.curr.load(Relaxed))),
        ("total_connections", n(sh.conns.total.load(Relaxed))),
        ("rejected_connections", n(sh.conns.rejected.load(Relaxed))),
        ("cmd_get", n(t.cmd_get)),
        ("cmd_set", n(t.cmd_set)),
        ("cmd_flush", n(t.cmd_flush)),
        ("cmd_touch", n(t.cmd_touch)),
        ("get_hits", n(t.get_hits)),
        ("get_misses", n(t.get_misses)),
        ("delete_misses", n(t.delete_misses)),
        ("delete_hits", n(t.delete_hits)),
        ("incr_misses", n(t.incr_misses)),
        ("incr_hits", n(t.incr_hits)),
        ("decr_misses", n(t.decr_misses)),
        ("decr_hits", n(t.decr_hits)),
        ("touch_hits", n(t.touch_hits)),
        ("touch_misses", n(t.touch_misses)),
        ("store_too_large", n(t.store_too_large)),
        ("store_no_memory", n(t.store_no_memory)),
        ("auth_cmds", n(t.auth_cmds)),
        ("auth_errors", n(t.auth_errors)),
        ("threads", n(sh.settings.threads as u64)),
        ("rss", n(sys::rss() as u64)),
        ("bytes", n(sh.store.bytes() as u64)),
        ("curr_items", n(sh.store.len() as u64)),
        ("total_items", n(sh.store.total_inserts())),
    ]
}

/// `DEBUG POPULATE count prefix size [min-max]` and `DEBUG DETACH`.
pub fn debug<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let sub = args.get(1);
    if eq_ic(sub, b"detach") {
        let t0 = pogocache_store::clock::monotonic_ns();
        let t1 = std::thread::spawn(pogocache_store::clock::monotonic_ns)
            .join()
            .unwrap_or(t0);
        return out.bulk(format!("{t0}:{t1}").as_bytes());
    }
    if !eq_ic(sub, b"populate") {
        return out.error(b"ERR unknown subcommand");
    }
    if args.len() != 5 && args.len() != 6 {
        return out.error(err::ARITY);
    }
    let count = parse_i64_strict(args.get(2)).filter(|&c| c >= 0);
    let size = parse_i64_strict(args.get(4))
        .filter(|&s| (0..=pogocache_store::MAX_VALUE_LEN as i64).contains(&s));
    let (Some(count), Some(size)) = (count, size) else {
        return out.error(err::SYNTAX);
    };
    // Optional random TTL range. Pogocache divides by (max - min) and
    // crashes when they are equal (gap A2); we draw from [min, max].
    let range = if args.len() == 6 {
        let r = args.get(5);
        r.iter().position(|&c| c == b'-').map(|dash| {
            let (a, b) = (atoi(&r[..dash]), atoi(&r[dash + 1..]));
            (a.min(b), a.max(b))
        })
    } else {
        None
    };
    let prefix = args.get(3);
    let threads = sys::cpu_count().min(count.max(1) as usize);
    let value = vec![0u8; size as usize];
    let now = ctx.now;
    let store = &ctx.shared.store;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (value, prefix) = (&value, prefix);
            s.spawn(move || {
                let mut rng = (now as u64) ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut key = Vec::with_capacity(prefix.len() + 21);
                let mut i = t as i64;
                while i < count {
                    key.clear();
                    key.extend_from_slice(prefix);
                    key.push(b':');
                    key.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
                    let mut opts = SetOptions::default();
                    if let Some((lo, hi)) = range {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let secs = lo + (rng % ((hi - lo) as u64 + 1)) as i64;
                        if secs > 0 {
                            opts.expiry =
                                Expiry::At(now.saturating_add(secs.saturating_mul(1_000_000_000)));
                        }
                    }
                    let _ = store.set(&key, value, &opts, now);
                    i += threads as i64;
                }
            });
        }
    });
    out.ok()
}
