//! Key/value commands: SET, SETEX, GET, MGET, MGETS, DEL, EXISTS, TTL,
//! PTTL, EXPIRE, TOUCH, DBSIZE, with Pogocache's arguments and replies.

use pogocache_protocol::ArgView;
use pogocache_store::{Cond, Expiry, SetOptions, SetOutcome};

use crate::{Ctx, Reply, common, eq_ic, err, parse_i64_strict, parse_u64_strict};

use common::NS_PER_SEC;
const NS_PER_MS: i64 = 1_000_000;

/// The expiry-setting options of SET.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ttl {
    None,
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Parsed SET options.
struct SetArgs {
    opts: SetOptions,
    get: bool,
}

/// Parses `SET key value [options...]` left to right: the first bad token
/// decides the error, and option conflicts come after every token.
fn parse_set(ctx: &Ctx<'_>, args: ArgView<'_>) -> Result<SetArgs, &'static [u8]> {
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut ttl = (Ttl::None, 0i64);
    let mut flags = 0u32;
    let mut cas = None;
    let mut i = 3;
    while i < args.len() {
        let a = args.get(i);
        let kind = if eq_ic(a, b"ex") {
            Ttl::Ex
        } else if eq_ic(a, b"px") {
            Ttl::Px
        } else if eq_ic(a, b"exat") {
            Ttl::ExAt
        } else if eq_ic(a, b"pxat") {
            Ttl::PxAt
        } else {
            Ttl::None
        };
        if kind != Ttl::None {
            if i + 1 >= args.len() {
                return Err(err::SYNTAX);
            }
            match parse_i64_strict(args.get(i + 1)) {
                Some(v) if v > 0 => ttl = (kind, v),
                _ => return Err(err::EXPIRE),
            }
            i += 2;
            continue;
        }
        if eq_ic(a, b"nx") {
            nx = true;
        } else if eq_ic(a, b"xx") {
            xx = true;
        } else if eq_ic(a, b"get") {
            get = true;
        } else if eq_ic(a, b"keepttl") {
            keepttl = true;
        } else if eq_ic(a, b"flags") || eq_ic(a, b"cas") {
            let v = if i + 1 < args.len() {
                parse_u64_strict(args.get(i + 1))
            } else {
                None
            };
            let Some(v) = v else { return Err(err::SYNTAX) };
            if eq_ic(a, b"flags") {
                flags = v as u32;
            } else {
                cas = Some(v);
            }
            i += 2;
            continue;
        } else {
            return Err(err::SYNTAX);
        }
        i += 1;
    }
    // Conflicts are checked once every token has been read, so a bad
    // number is reported first, as soon as it is read (Pogocache's order).
    if (keepttl && ttl.0 != Ttl::None) || (nx && xx) {
        return Err(err::SYNTAX);
    }
    let now = ctx.now;
    let expiry = match ttl {
        _ if keepttl => Expiry::Keep,
        (Ttl::None, _) => Expiry::Never,
        (Ttl::Ex, s) => Expiry::At(common::after_secs(now, s)),
        (Ttl::Px, ms) => Expiry::At(now.saturating_add(ms.saturating_mul(NS_PER_MS))),
        (Ttl::ExAt, s) => Expiry::At(absolute(ctx, s.saturating_mul(NS_PER_SEC))),
        (Ttl::PxAt, ms) => Expiry::At(absolute(ctx, ms.saturating_mul(NS_PER_MS))),
    };
    let cond = if nx {
        Cond::Nx
    } else if xx {
        Cond::Xx
    } else {
        Cond::Always
    };
    Ok(SetArgs {
        opts: SetOptions {
            expiry,
            flags,
            cond,
            cas,
        },
        get,
    })
}

/// Converts an EXAT/PXAT timestamp to the store clock. By default the
/// timestamp is Unix time, as Redis users expect; with the compatibility
/// switch it is taken as a boot-clock time, as Pogocache does (gap C1).
fn absolute(ctx: &Ctx<'_>, t_ns: i64) -> i64 {
    if ctx.shared.settings.exat_unix {
        let wall = pogocache_store::clock::wall_ns();
        ctx.now.saturating_add(t_ns.saturating_sub(wall))
    } else {
        t_ns
    }
}

/// Stores and replies: `+OK`, the old value for GET, or nil.
fn store<R: Reply>(ctx: &mut Ctx<'_>, key: &[u8], value: &[u8], sa: &SetArgs, out: &mut R) {
    ctx.stats.cmd_set.incr();
    let mut replied = false;
    let res = ctx
        .shared
        .store
        .set_with(key, value, &sa.opts, ctx.now, |old| {
            if sa.get {
                out.bulk(old.value());
                replied = true;
            }
        });
    match res {
        Ok(SetOutcome::Stored { .. }) if !sa.get => out.ok(),
        Ok(_) => {
            if !replied {
                out.null()
            }
        }
        Err(e) => out.error(common::store_error(ctx.stats, e)),
    }
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL] [FLAGS f] [CAS c]`
pub fn set<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    match parse_set(ctx, args) {
        Ok(sa) => store(ctx, args.get(1), args.get(2), &sa, out),
        Err(e) => out.error(e),
    }
}

/// `SETEX key seconds value`
pub fn setex<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let Some(s) = parse_i64_strict(args.get(2)).filter(|&s| s > 0) else {
        return out.error(err::EXPIRE);
    };
    let expires = common::after_secs(ctx.now, s);
    let sa = SetArgs {
        opts: SetOptions {
            expiry: Expiry::At(expires),
            ..Default::default()
        },
        get: false,
    };
    store(ctx, args.get(1), args.get(3), &sa, out);
}

/// `GET key`
pub fn get<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    ctx.stats.cmd_get.incr();
    let hit = ctx.shared.store.get(args.get(1), ctx.now, |e| match e {
        Some(e) => {
            out.bulk(e.value());
            true
        }
        None => false,
    });
    if hit {
        ctx.stats.get_hits.incr();
    } else {
        ctx.stats.get_misses.incr();
        out.null();
    }
}

/// `MGET key [key ...]` and `MGETS key [key ...]` (the latter with flags
/// and CAS per hit).
pub fn mget<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R, with_meta: bool) {
    out.array(args.len() - 1);
    let (mut hits, mut misses) = (0, 0);
    for key in args.iter().skip(1) {
        let hit = ctx.shared.store.get(key, ctx.now, |e| match e {
            Some(e) => {
                if with_meta {
                    out.array(3);
                    out.uint(e.flags() as u64);
                    out.uint(e.cas());
                }
                out.bulk(e.value());
                true
            }
            None => false,
        });
        if hit {
            hits += 1;
        } else {
            misses += 1;
            out.null();
        }
    }
    common::lookups(ctx.stats, hits, misses);
}

/// `DEL key [key ...]`
pub fn del<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let mut n = 0;
    for key in args.iter().skip(1) {
        if ctx.shared.store.delete(key, ctx.now) {
            n += 1;
        }
    }
    ctx.stats.delete_hits.add(n);
    ctx.stats.delete_misses.add((args.len() - 1) as u64 - n);
    out.int(n as i64);
}

/// `EXISTS key [key ...]` (repeated keys count each time).
pub fn exists<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let n = args
        .iter()
        .skip(1)
        .filter(|k| ctx.shared.store.peek(k, ctx.now, |e| e.is_some()))
        .count();
    out.int(n as i64);
}

/// `TTL key` / `PTTL key`: -2 missing, -1 no expiry, else the remaining
/// time truncated to the unit.
pub fn ttl<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R, unit: i64) {
    match ctx.shared.store.ttl_ns(args.get(1), ctx.now) {
        None => {
            ctx.stats.get_misses.incr();
            out.int(-2)
        }
        Some(None) => {
            ctx.stats.get_hits.incr();
            out.int(-1)
        }
        Some(Some(ns)) => {
            ctx.stats.get_hits.incr();
            out.int(ns / unit)
        }
    }
}

/// `EXPIRE key seconds [ignored ...]`: a value ≤ 0 expires the key now.
pub fn expire<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let Some(s) = parse_i64_strict(args.get(2)) else {
        return out.error(err::INTEGER);
    };
    let at = common::after_secs(ctx.now, s);
    let ok = ctx.shared.store.expire(args.get(1), Some(at), ctx.now);
    out.int(ok as i64);
}

/// `TOUCH key [key ...]`: refreshes last-access times.
pub fn touch<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let mut n = 0;
    for key in args.iter().skip(1) {
        if ctx.shared.store.touch(key, ctx.now) {
            n += 1;
        }
    }
    let total = (args.len() - 1) as u64;
    ctx.stats.cmd_touch.add(total);
    ctx.stats.touch_hits.add(n);
    ctx.stats.touch_misses.add(total - n);
    out.int(n as i64);
}

/// `DBSIZE`: entries including expired ones not yet removed.
pub fn dbsize<R: Reply>(ctx: &mut Ctx<'_>, out: &mut R) {
    out.int(ctx.shared.store.len() as i64);
}
