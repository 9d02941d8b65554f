//! Memcache command execution.
//!
//! Owns: what each memcache verb does to the store and the memcache reply
//! lines. Pogocache rewrites memcache requests into its shared commands
//! (`get` → MGET, `incr` → UINCRBY ...); we run the same store operations
//! directly with memcache's reply shapes, count the same stats, and feed
//! MONITOR / `-vvv` with the translated names. Does not own: parsing
//! (`pogocache_protocol::memcache`).
//!
//! Divergences from Pogocache, all toward memcached (docs/COMPATIBILITY.md):
//! `noreply` is honoured, `decr` clamps at 0, `touch k 0` clears the TTL,
//! a failed `add`/`replace` is `NOT_STORED` (all four restored by
//! `--mclegacy yes`), `gets` hands out working CAS uniques without
//! `--cas yes`, `verbosity` answers OK, `gat` and `gats` work, and
//! `NOT_FOUND` carries no stray NUL byte.

use pogocache_protocol::memcache::compose::{self, line};
use pogocache_protocol::memcache::{self as mc, Error, Request, StoreVerb};
use pogocache_protocol::{ArgView, Args, Limits};
use pogocache_store::{Cond, EntryRef, Expiry, SetOptions, SetOutcome, Side, Store, UpdateError};

use crate::conn::Step;
use crate::resp::{WINDOW, WINDOW_OUT};
use crate::table::Cmd;
use crate::{Action, Ctx, VERSION, admin, common, parse_u64_strict};

/// A memcache (text and meta) session. The protocol keeps no state
/// between requests; the session is where its step lives: the request at
/// the front of the input, or, when more are buffered behind it, one
/// window of up to [`WINDOW`] requests, each parsed once, their buckets
/// prefetched before any of them runs (as [`crate::resp::RespSession`]
/// does).
pub struct McSession;

impl McSession {
    pub fn step(&mut self, ctx: &mut Ctx<'_>, input: &[u8], out: &mut Vec<u8>) -> Step {
        let shared = ctx.shared;
        let store = &shared.store;
        let mut reqs = [(0usize, Request::Quit); WINDOW];
        reqs[0] = match mc::parse(input, &Limits::DEFAULT) {
            mc::Parsed::Complete(n, r) => (n, r),
            mc::Parsed::Incomplete { need } => return Step::Incomplete(need),
            mc::Parsed::Invalid(mc::LineTooLong) => {
                out.extend_from_slice(line::LINE_TOO_LONG);
                return Step::Close;
            }
        };
        let mut parsed = 1;
        let mut end = reqs[0].0;
        // A lone request (no pipelining) skips the look-ahead.
        while parsed < WINDOW && end < input.len() {
            let mc::Parsed::Complete(n, r) = mc::parse(&input[end..], &Limits::DEFAULT) else {
                break;
            };
            if let Some(k) = r.first_key() {
                store.prefetch(k);
            }
            reqs[parsed] = (n, r);
            parsed += 1;
            end += n;
        }
        let out_start = out.len();
        let mut at = 0;
        for i in 0..parsed {
            if i > 0 && out.len() - out_start >= WINDOW_OUT {
                return Step::Consumed(at);
            }
            if i + 1 < parsed
                && let Some(k) = reqs[i + 1].1.first_key()
            {
                store.prefetch_entry(k);
            }
            ctx.stats.detail.requests[1].incr();
            let (n, req) = reqs[i];
            at += n;
            if execute(ctx, &req, out) == Action::Close {
                return Step::Close;
            }
        }
        Step::Consumed(at)
    }

    /// See [`crate::conn::Protocol::prefetch`]. Only the key is looked
    /// for, not the request parsed: [`McSession::step`] parses it right
    /// after, and a wrong guess costs one wasted prefetch.
    pub fn prefetch(&mut self, store: &Store, input: &[u8]) {
        if let Some(k) = mc::peek_key(input) {
            store.prefetch(k);
        }
    }
}

const THIRTY_DAYS: i64 = 60 * 60 * 24 * 30;
const NS: i64 = common::NS_PER_SEC;

/// Converts a memcache exptime to a store expiry: 0 never expires, a
/// negative value is already expired, up to 30 days is relative, beyond
/// that it is a Unix timestamp.
pub(crate) fn expiry(ctx: &Ctx<'_>, e: i64) -> Expiry {
    expiry_at(ctx.now, pogocache_store::clock::wall_ns(), e)
}

/// [`expiry`] with both clocks given: `now` on the store clock and `wall`
/// in Unix nanoseconds. An absolute exptime is compared with the wall
/// clock at full precision, so the item dies exactly at that second (as
/// in Pogocache), not up to a second later.
fn expiry_at(now: i64, wall: i64, e: i64) -> Expiry {
    if e == 0 {
        Expiry::Never
    } else if e < 0 {
        Expiry::At(now)
    } else if e <= THIRTY_DAYS {
        Expiry::At(common::after_secs(now, e))
    } else {
        let left = e.saturating_mul(NS).saturating_sub(wall);
        Expiry::At(now.saturating_add(left.max(0)))
    }
}

/// The table command a memcache request runs as (Pogocache rewrites
/// memcache requests into these), for `/metrics`; `None` for what has no
/// counterpart (`verbosity`, meta `mn`, invalid lines).
fn command_of(req: &Request<'_>) -> Option<Cmd> {
    Some(match *req {
        Request::Get { cas: false, .. } | Request::Gat { cas: false, .. } => Cmd::Mget,
        Request::Get { cas: true, .. } | Request::Gat { cas: true, .. } => Cmd::Mgets,
        Request::Store { verb, .. } => match verb {
            StoreVerb::Append => Cmd::Append,
            StoreVerb::Prepend => Cmd::Prepend,
            _ => Cmd::Set,
        },
        Request::Delete { .. } => Cmd::Del,
        Request::Incr { decr: false, .. } => Cmd::Uincrby,
        Request::Incr { decr: true, .. } => Cmd::Udecrby,
        Request::Touch { .. } => Cmd::Expire,
        Request::FlushAll { .. } => Cmd::Flush,
        Request::Stats => Cmd::Stats,
        Request::Version => Cmd::Version,
        Request::Quit => Cmd::Quit,
        Request::Meta(m) => crate::meta::command_of(&m)?,
        Request::Verbosity { .. } | Request::Invalid(_) => return None,
    })
}

/// The translated command, for MONITOR and `-vvv` (only built when one of
/// them is on).
fn trace(ctx: &Ctx<'_>, req: &Request<'_>) {
    if !common::tracing(ctx) {
        return;
    }
    let mut a = Args::new();
    match *req {
        Request::Get { keys, cas } | Request::Gat { keys, cas, .. } => {
            a.push_owned(if cas { b"mgets" } else { b"mget" });
            keys.iter().for_each(|k| a.push_owned(k));
        }
        Request::Store {
            verb, key, value, ..
        } => {
            a.push_owned(match verb {
                StoreVerb::Append => b"append",
                StoreVerb::Prepend => b"prepend",
                _ => b"set",
            });
            a.push_owned(key);
            a.push_owned(value);
        }
        Request::Delete { key, .. } => [&b"del"[..], key].iter().for_each(|p| a.push_owned(p)),
        Request::Incr { key, decr, .. } => [if decr { &b"udecrby"[..] } else { b"uincrby" }, key]
            .iter()
            .for_each(|p| a.push_owned(p)),
        Request::Touch { key, .. } => [&b"expire"[..], key].iter().for_each(|p| a.push_owned(p)),
        Request::FlushAll { .. } => a.push_owned(b"flushall"),
        Request::Stats => a.push_owned(b"stats"),
        Request::Version => a.push_owned(b"version"),
        _ => return,
    }
    let view: ArgView<'_> = a.view(&[]);
    common::trace(ctx, view);
}

/// Runs one memcache request, appending the reply to `out`. It is
/// counted for `/metrics` as the table command it translates to, failed
/// when it answers an error line.
pub fn execute(ctx: &mut Ctx<'_>, req: &Request<'_>, out: &mut Vec<u8>) -> Action {
    let start = out.len();
    common::metered(ctx, command_of(req), |ctx| {
        let action = run(ctx, req, out);
        let reply = &out[start..];
        let failed = reply.starts_with(b"CLIENT_ERROR")
            || reply.starts_with(b"SERVER_ERROR")
            || reply.starts_with(b"ERROR");
        (action, failed)
    })
}

fn run(ctx: &mut Ctx<'_>, req: &Request<'_>, out: &mut Vec<u8>) -> Action {
    if let Request::Invalid(e) = req {
        if *e == Error::TooLarge {
            ctx.stats.store_too_large.incr();
        }
        out.extend_from_slice(e.line());
        return Action::Continue;
    }
    if !ctx.session.authed {
        // Memcache has no way to authenticate (gap D9, kept).
        common::denied(ctx.stats);
        out.extend_from_slice(line::AUTH_REQUIRED);
        return Action::Continue;
    }
    trace(ctx, req);
    if ctx.shared.repl.refuses_writes() && command_of(req).is_some_and(|c| c.spec().is_write()) {
        out.extend_from_slice(crate::repl::READONLY_MEMCACHE);
        return Action::Continue;
    }
    let legacy = ctx.shared.settings.mc_legacy;
    // A reply line, unless the client asked for none.
    let reply = |out: &mut Vec<u8>, noreply: bool, line: &[u8]| {
        if !noreply || legacy {
            out.extend_from_slice(line);
        }
    };
    let store = &ctx.shared.store;
    match *req {
        Request::Get { keys, cas } => get(ctx, keys.iter(), cas, None, out),
        Request::Meta(m) => crate::meta::execute(ctx, &m, out),
        Request::Gat { exptime, keys, cas } => {
            let e = expiry(ctx, exptime);
            get(ctx, keys.iter(), cas, Some(e), out)
        }
        Request::Store {
            verb,
            key,
            flags,
            exptime,
            value,
            cas,
            noreply,
        } => {
            ctx.stats.cmd_set.incr();
            let res = match verb {
                StoreVerb::Append | StoreVerb::Prepend => {
                    let side = if verb == StoreVerb::Append {
                        Side::Append
                    } else {
                        Side::Prepend
                    };
                    store
                        .append(key, value, side, false, ctx.now)
                        .map(|r| match r {
                            Some(_) => line::STORED,
                            None => line::NOT_STORED,
                        })
                }
                _ => {
                    let opts = SetOptions {
                        expiry: expiry(ctx, exptime),
                        flags,
                        cond: match verb {
                            StoreVerb::Add => Cond::Nx,
                            StoreVerb::Replace => Cond::Xx,
                            _ => Cond::Always,
                        },
                        cas: (verb == StoreVerb::Cas).then_some(cas),
                    };
                    store.set(key, value, &opts, ctx.now).map(|o| match o {
                        SetOutcome::Stored { .. } => line::STORED,
                        // memcached: a failed add/replace is NOT_STORED;
                        // Pogocache answered EXISTS / NOT_FOUND.
                        SetOutcome::NotStored { .. } if verb != StoreVerb::Cas && !legacy => {
                            line::NOT_STORED
                        }
                        SetOutcome::NotStored { existed: true } => line::EXISTS,
                        SetOutcome::NotStored { existed: false } => line::NOT_FOUND,
                    })
                }
            };
            match res {
                Ok(line) => reply(out, noreply, line),
                Err(e) => {
                    common::store_error(ctx.stats, e);
                    reply(out, noreply, common::store_error_line(e))
                }
            }
        }
        Request::Delete { key, noreply } => {
            if store.delete(key, ctx.now) {
                ctx.stats.delete_hits.incr();
                reply(out, noreply, line::DELETED)
            } else {
                ctx.stats.delete_misses.incr();
                reply(out, noreply, line::NOT_FOUND)
            }
        }
        Request::Incr {
            key,
            delta,
            decr,
            noreply,
        } => incr(ctx, key, delta, decr, noreply, out),
        Request::Touch {
            key,
            exptime,
            noreply,
        } => {
            let at = if legacy {
                Some(common::after_secs(ctx.now, exptime))
            } else {
                match expiry(ctx, exptime) {
                    Expiry::At(t) => Some(t),
                    _ => None,
                }
            };
            let line: &[u8] = if store.expire(key, at, ctx.now) {
                line::TOUCHED
            } else {
                line::NOT_FOUND
            };
            reply(out, noreply, line)
        }
        Request::FlushAll { delay, noreply } => {
            admin::flush_all(ctx.shared, delay > 0, delay);
            reply(out, noreply, line::OK)
        }
        Request::Stats => {
            for (name, value) in admin::stats_list(ctx) {
                out.extend_from_slice(b"STAT ");
                out.extend_from_slice(name.as_bytes());
                out.push(b' ');
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(line::END);
        }
        Request::Version => {
            out.extend_from_slice(b"VERSION ");
            out.extend_from_slice(VERSION.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Request::Verbosity { noreply } => reply(out, noreply, line::OK),
        Request::Quit => return Action::Close,
        Request::Invalid(_) => unreachable!("handled above"),
    }
    Action::Continue
}

/// `get`/`gets`, and `gat`/`gats` when `touch` carries the new expiry.
fn get<'k>(
    ctx: &mut Ctx<'_>,
    keys: impl Iterator<Item = &'k [u8]>,
    with_cas: bool,
    touch: Option<Expiry>,
    out: &mut Vec<u8>,
) {
    let (mut hits, mut misses) = (0, 0);
    for key in keys {
        if let Some(e) = touch {
            let at = match e {
                Expiry::At(t) => Some(t),
                _ => None,
            };
            ctx.shared.store.expire(key, at, ctx.now);
        }
        let line = |e: Option<EntryRef<'_>>| match e {
            Some(e) => {
                compose::value(out, key, e.flags(), e.value(), with_cas.then(|| e.cas()));
                true
            }
            None => false,
        };
        // `gets`/`gats` hand out a CAS unique, assigned on first request.
        let hit = if with_cas {
            ctx.shared.store.get_cas(key, ctx.now, true, line)
        } else {
            ctx.shared.store.get(key, ctx.now, line)
        };
        if hit { hits += 1 } else { misses += 1 }
    }
    out.extend_from_slice(line::END);
    common::lookups(ctx.stats, hits, misses);
}

enum IncrFail {
    Missing,
    NotNumber,
}

/// `incr`/`decr`: unsigned 64-bit; incr wraps at 2^64 (as memcached);
/// decr stops at 0 (memcached) or wraps (Pogocache, `--mclegacy yes`).
/// One memcache counter step (`incr`/`decr`, meta `ma`): an empty value
/// counts as 0, anything else must be an unsigned decimal (`None`
/// otherwise). `incr` wraps at 2^64; `decr` stops at 0 (memcached), or
/// wraps too with `legacy` (Pogocache).
pub(crate) fn counter_step(old: &[u8], delta: u64, decr: bool, legacy: bool) -> Option<u64> {
    let cur = if old.is_empty() {
        0
    } else {
        parse_u64_strict(old)?
    };
    Some(match (decr, legacy) {
        (false, _) => cur.wrapping_add(delta),
        (true, true) => cur.wrapping_sub(delta),
        (true, false) => cur.saturating_sub(delta),
    })
}

/// The hit and miss counters of `incr` or `decr`.
pub(crate) fn counter_stats<'a>(
    ctx: &'a Ctx<'_>,
    decr: bool,
) -> (&'a crate::stats::Counter, &'a crate::stats::Counter) {
    if decr {
        (&ctx.stats.decr_hits, &ctx.stats.decr_misses)
    } else {
        (&ctx.stats.incr_hits, &ctx.stats.incr_misses)
    }
}

fn incr(ctx: &mut Ctx<'_>, key: &[u8], delta: u64, decr: bool, noreply: bool, out: &mut Vec<u8>) {
    let legacy = ctx.shared.settings.mc_legacy;
    let res = ctx
        .shared
        .store
        .update(key, ctx.now, ctx.scratch, |old, buf| {
            let old = old.ok_or(IncrFail::Missing)?;
            let new = counter_step(old, delta, decr, legacy).ok_or(IncrFail::NotNumber)?;
            buf.extend_from_slice(itoa::Buffer::new().format(new).as_bytes());
            Ok((new, true))
        });
    let (hits, misses) = counter_stats(ctx, decr);
    let mut num = itoa::Buffer::new();
    let text: &[u8] = match res {
        Ok(n) => {
            hits.incr();
            num.format(n).as_bytes()
        }
        Err(UpdateError::Op(IncrFail::Missing)) => {
            misses.incr();
            line::NOT_FOUND
        }
        Err(UpdateError::Op(IncrFail::NotNumber)) => line::NON_NUMERIC,
        Err(UpdateError::Store(_)) => line::TOO_LARGE,
    };
    if !noreply || legacy {
        out.extend_from_slice(text);
        if res.is_ok() {
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_exptime_uses_the_full_clock() {
        // Wall clock at 1,800,000,000.7 s, store clock at 50 s: an item
        // with exptime 1,800,000,010 has 9.3 s left, not 10.
        let wall = 1_800_000_000 * NS + 700_000_000;
        let now = 50 * NS;
        assert_eq!(
            expiry_at(now, wall, 1_800_000_010),
            Expiry::At(now + 9 * NS + 300_000_000)
        );
        // The current second, already begun, is in the past.
        assert_eq!(expiry_at(now, wall, 1_800_000_000), Expiry::At(now));
        assert_eq!(expiry_at(now, wall, 2_592_001), Expiry::At(now));
        assert_eq!(
            expiry_at(now, wall, 2_592_000),
            Expiry::At(now + 2_592_000 * NS)
        );
        assert_eq!(expiry_at(now, wall, 0), Expiry::Never);
        assert_eq!(expiry_at(now, wall, -1), Expiry::At(now));
    }
}
