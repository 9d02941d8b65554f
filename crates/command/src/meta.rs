//! The memcached meta protocol (extension): `mg`, `ms`, `md`, `ma`, `mn`,
//! `me`, with the flags memcached's protocol.txt documents and modern
//! clients and proxies use.
//!
//! Owns: what each meta verb and flag does to the store, and the meta
//! reply lines (`VA`, `HD`, `EN`, `NF`, `NS`, `EX`, `MN`, `ME`). Does not
//! own: framing (`pogocache_protocol::memcache::meta`).
//!
//! Supported flags — mg: `b c f k O q s t v T N` (returning `W`, `X`, `Z`
//! for recache wins and stale items); ms: `b c k O q T F C I M(E A P R
//! S)`; md: `b k O q C I T`; ma: `b c k O q t v T N J D M(I + D -)`.
//! Not supported (refused with `CLIENT_ERROR invalid flag`, like any
//! unknown flag): `h`, `l`, `E`, `R`, `u`.

use std::borrow::Cow;

use pogocache_protocol::memcache::compose::{MetaValue, line, meta_flags};
use pogocache_protocol::memcache::meta::{Meta, MetaCmd, decode_key, encode};
use pogocache_store::{
    Cond, EntryRef, Expiry, SetOptions, SetOutcome, Side, StoreError, UpdateError,
};

use crate::table::Cmd;
use crate::{Ctx, common, parse_u64_strict};

const NS: i64 = 1_000_000_000;

fn allowed(cmd: MetaCmd) -> &'static [u8] {
    match cmd {
        MetaCmd::Get => b"bcfkOqstvTN",
        MetaCmd::Set => b"bckOqTFCMI",
        MetaCmd::Delete => b"bkOqCIT",
        MetaCmd::Arith => b"bckOqtvTNJDM",
        MetaCmd::Noop => b"",
        MetaCmd::Debug => b"b",
    }
}

/// A meta TTL token: memcache exptime rules (0 never, negative expired,
/// up to 30 days relative, beyond a Unix time).
fn ttl(ctx: &Ctx<'_>, tok: &[u8]) -> Option<Expiry> {
    let e = crate::parse_i64_strict(tok)?;
    Some(crate::memcache::expiry(ctx, e))
}

fn at(e: Expiry) -> Option<i64> {
    match e {
        Expiry::At(t) => Some(t),
        _ => None,
    }
}

/// Runs one meta request.
/// The table command a meta request counts as in `/metrics` (`mn` has
/// none; `ma` is an increment or decrement by its mode).
pub(crate) fn command_of(m: &Meta<'_>) -> Option<Cmd> {
    Some(match m.cmd {
        MetaCmd::Get => Cmd::Get,
        MetaCmd::Set => Cmd::Set,
        MetaCmd::Delete => Cmd::Del,
        MetaCmd::Arith => match m.flags.get(b'M').and_then(|t| t.first()) {
            Some(b'D' | b'd' | b'-') => Cmd::Udecrby,
            _ => Cmd::Uincrby,
        },
        MetaCmd::Debug => Cmd::Debug,
        MetaCmd::Noop => return None,
    })
}

pub fn execute(ctx: &mut Ctx<'_>, m: &Meta<'_>, out: &mut Vec<u8>) {
    if m.cmd == MetaCmd::Noop {
        return out.extend_from_slice(line::MN);
    }
    let ok = allowed(m.cmd);
    if m.flags.iter().any(|(f, _)| !ok.contains(&f)) {
        return out.extend_from_slice(line::INVALID_FLAG);
    }
    let key: Cow<'_, [u8]> = if m.flags.has(b'b') {
        match decode_key(m.key) {
            Some(k) => Cow::Owned(k),
            None => return out.extend_from_slice(line::BAD_CHUNK),
        }
    } else {
        Cow::Borrowed(m.key)
    };
    match m.cmd {
        MetaCmd::Get => get(ctx, m, &key, out),
        MetaCmd::Set => set(ctx, m, &key, out),
        MetaCmd::Delete => delete(ctx, m, &key, out),
        MetaCmd::Arith => arith(ctx, m, &key, out),
        MetaCmd::Debug => debug(ctx, m, &key, out),
        MetaCmd::Noop => unreachable!("handled above"),
    }
}

fn bad(out: &mut Vec<u8>) {
    out.extend_from_slice(line::BAD_TOKEN);
}

/// The token of flag `f` parsed by `parse`: `Ok(None)` when the flag is
/// absent, `Err(())` when its token does not parse.
fn token<T>(m: &Meta<'_>, f: u8, parse: impl FnOnce(&[u8]) -> Option<T>) -> Result<Option<T>, ()> {
    m.flags.get(f).map(|t| parse(t).ok_or(())).transpose()
}

fn get(ctx: &mut Ctx<'_>, m: &Meta<'_>, key: &[u8], out: &mut Vec<u8>) {
    let store = &ctx.shared.store;
    let now = ctx.now;
    ctx.stats.cmd_get.incr();
    let Ok(touch) = token(m, b'T', |t| ttl(ctx, t)) else {
        return bad(out);
    };
    let Ok(vivify) = token(m, b'N', |t| ttl(ctx, t)) else {
        return bad(out);
    };
    if let Some(e) = touch {
        ctx.stats.cmd_touch.incr();
        store.expire(key, at(e), now);
    }
    let mut hit = store.get(key, now, |e| e.is_some());
    if !hit && let Some(e) = vivify {
        // Create an empty item; the client that created it takes its
        // recache token (W) and should fill it; others see Z until then.
        let opts = SetOptions {
            expiry: e,
            cond: Cond::Nx,
            ..Default::default()
        };
        let _ = store.set(key, b"", &opts, now);
        hit = store.get(key, now, |e| e.is_some());
    }
    // Recache tokens: a stale item's first fetcher wins (W); once the
    // token is out, everyone sees Z until a new value is written.
    let (stale, claimed) = store
        .peek(key, now, |e| e.map(|e| (e.is_stale(), e.win_claimed())))
        .unwrap_or((false, false));
    let vivified = vivify.is_some()
        && !claimed
        && store.peek(key, now, |e| e.is_some_and(|e| e.value().is_empty()));
    let token: &[u8] = if (stale || vivified) && !claimed {
        match store.claim_win(key, now) {
            Some(true) => b" W",
            _ => b" Z",
        }
    } else if claimed {
        b" Z"
    } else {
        b""
    };
    if !hit {
        ctx.stats.get_misses.incr();
        if !m.flags.has(b'q') {
            out.extend_from_slice(line::EN);
        }
        return;
    }
    ctx.stats.get_hits.incr();
    let reply = |e: Option<EntryRef<'_>>| {
        let Some(e) = e else {
            // Deleted by another client since the lookup above: a miss.
            if !m.flags.has(b'q') {
                out.extend_from_slice(line::EN);
            }
            return;
        };
        let value = m.flags.has(b'v');
        if value {
            out.extend_from_slice(b"VA ");
            out.extend_from_slice(itoa::Buffer::new().format(e.value().len()).as_bytes());
        } else {
            out.extend_from_slice(b"HD");
        }
        let (cas, flags, size) = (e.cas(), e.flags(), e.value().len());
        let left = e.expires().map(|x| (x - now + NS - 1).div_euclid(NS));
        meta_flags(out, m, &|f| match f {
            b'c' => Some(MetaValue::Uint(cas)),
            b'f' => Some(MetaValue::Uint(flags as u64)),
            b's' => Some(MetaValue::Uint(size as u64)),
            b't' => Some(MetaValue::Int(left.unwrap_or(-1))),
            _ => None,
        });
        if !token.is_empty() || stale {
            // The marks go before the line end echo wrote.
            out.truncate(out.len() - 2);
            out.extend_from_slice(token);
            if stale {
                out.extend_from_slice(b" X");
            }
            out.extend_from_slice(b"\r\n");
        }
        if value {
            out.extend_from_slice(e.value());
            out.extend_from_slice(b"\r\n");
        }
    };
    // `c` asks for the item's CAS token: one is assigned if it has none.
    if m.flags.has(b'c') {
        store.get_cas(key, now, true, reply)
    } else {
        store.get(key, now, reply)
    }
}

/// The CAS token of `key` for an echoed `c` flag (assigned if needed),
/// 0 when the key is gone.
fn cas_of(ctx: &Ctx<'_>, key: &[u8]) -> u64 {
    ctx.shared
        .store
        .get_cas(key, ctx.now, false, |e| e.map(|e| e.cas()).unwrap_or(0))
}

fn set(ctx: &mut Ctx<'_>, m: &Meta<'_>, key: &[u8], out: &mut Vec<u8>) {
    ctx.stats.cmd_set.incr();
    let store = &ctx.shared.store;
    let now = ctx.now;
    let (Ok(expiry), Ok(flags), Ok(cas)) = (
        token(m, b'T', |t| ttl(ctx, t)),
        token(m, b'F', |t| {
            parse_u64_strict(t).and_then(|f| u32::try_from(f).ok())
        }),
        token(m, b'C', parse_u64_strict),
    ) else {
        return bad(out);
    };
    let (expiry, flags) = (expiry.unwrap_or(Expiry::Never), flags.unwrap_or(0));
    // I with C: a CAS older than the item's still stores, as a stale
    // item (memcached's invalidation for late writers).
    let mut cas = cas;
    let mut mark_stale = false;
    if let Some(c) = cas
        && m.flags.has(b'I')
        // An item that never handed out a token is newer than any token.
        && store.peek(key, now, |e| {
            e.is_some_and(|e| e.cas_token().is_none_or(|t| t > c))
        })
    {
        cas = None;
        mark_stale = true;
    }
    let mode = m.flags.get(b'M').map(|t| t.first().copied().unwrap_or(0));
    let res: Result<&[u8], StoreError> = match mode {
        Some(b'A' | b'a' | b'P' | b'p') => {
            let side = if matches!(mode, Some(b'A' | b'a')) {
                Side::Append
            } else {
                Side::Prepend
            };
            store
                .append(key, m.value, side, false, now)
                .map(|r| if r.is_some() { &b"HD"[..] } else { b"NS" })
        }
        None | Some(b'S' | b's' | b'E' | b'e' | b'R' | b'r') => {
            let opts = SetOptions {
                expiry,
                flags,
                cond: match mode {
                    Some(b'E' | b'e') => Cond::Nx,
                    Some(b'R' | b'r') => Cond::Xx,
                    _ => Cond::Always,
                },
                cas,
            };
            store.set(key, m.value, &opts, now).map(|o| match o {
                SetOutcome::Stored { .. } => &b"HD"[..],
                SetOutcome::NotStored { existed } if cas.is_some() => {
                    if existed {
                        b"EX"
                    } else {
                        b"NF"
                    }
                }
                SetOutcome::NotStored { .. } => b"NS",
            })
        }
        Some(_) => {
            return out.extend_from_slice(line::BAD_SET_MODE);
        }
    };
    if mark_stale && res == Ok(&b"HD"[..]) {
        store.invalidate(key, now);
    }
    match res {
        Ok(b"HD") if m.flags.has(b'q') => {}
        Ok(code) => {
            out.extend_from_slice(code);
            let new_cas = if m.flags.has(b'c') {
                cas_of(ctx, key)
            } else {
                0
            };
            meta_flags(out, m, &|f| (f == b'c').then_some(MetaValue::Uint(new_cas)));
        }
        Err(e) => {
            common::store_error(ctx.stats, e);
            out.extend_from_slice(common::store_error_line(e))
        }
    }
}

fn delete(ctx: &mut Ctx<'_>, m: &Meta<'_>, key: &[u8], out: &mut Vec<u8>) {
    let now = ctx.now;
    let Ok(touch) = token(m, b'T', |t| ttl(ctx, t)) else {
        return bad(out);
    };
    let store = &ctx.shared.store;
    // I: invalidate instead of deleting (the item stays, stale).
    let remove = |key: &[u8]| {
        if m.flags.has(b'I') {
            if let Some(e) = touch {
                store.expire(key, at(e), now);
            }
            store.invalidate(key, now)
        } else {
            store.delete(key, now)
        }
    };
    let Ok(cas) = token(m, b'C', parse_u64_strict) else {
        return bad(out);
    };
    let code: &[u8] = match cas {
        Some(c) => match store.peek(key, now, |e| e.map(|e| e.cas_token())) {
            None => b"NF",
            Some(cur) if cur != Some(c) => b"EX",
            Some(_) => {
                if remove(key) {
                    b"HD"
                } else {
                    b"NF"
                }
            }
        },
        None => {
            if remove(key) {
                b"HD"
            } else {
                b"NF"
            }
        }
    };
    if code == b"HD" {
        ctx.stats.delete_hits.incr();
    } else {
        ctx.stats.delete_misses.incr();
    }
    if code == b"HD" && m.flags.has(b'q') {
        return;
    }
    out.extend_from_slice(code);
    meta_flags(out, m, &|_| None);
}

enum ArithFail {
    Missing,
    NotNumber,
}

fn arith(ctx: &mut Ctx<'_>, m: &Meta<'_>, key: &[u8], out: &mut Vec<u8>) {
    let now = ctx.now;
    let (Ok(delta), Ok(initial)) = (
        token(m, b'D', parse_u64_strict),
        token(m, b'J', parse_u64_strict),
    ) else {
        return bad(out);
    };
    let (delta, initial) = (delta.unwrap_or(1), initial.unwrap_or(0));
    let decr = match m.flags.get(b'M').map(|t| t.first().copied().unwrap_or(0)) {
        None | Some(b'I' | b'i' | b'+') => false,
        Some(b'D' | b'd' | b'-') => true,
        Some(_) => {
            return out.extend_from_slice(line::BAD_ARITH_MODE);
        }
    };
    let Ok(vivify) = token(m, b'N', |t| ttl(ctx, t)) else {
        return bad(out);
    };
    let Ok(touch) = token(m, b'T', |t| ttl(ctx, t)) else {
        return bad(out);
    };
    let mut created = false;
    let res = ctx.shared.store.update(key, now, ctx.scratch, |old, buf| {
        let new = match old {
            None if vivify.is_some() => {
                created = true;
                initial
            }
            None => return Err(ArithFail::Missing),
            Some(v) => {
                crate::memcache::counter_step(v, delta, decr, false).ok_or(ArithFail::NotNumber)?
            }
        };
        buf.extend_from_slice(itoa::Buffer::new().format(new).as_bytes());
        Ok((new, true))
    });
    let (hits, misses) = crate::memcache::counter_stats(ctx, decr);
    let store = &ctx.shared.store;
    let n = match res {
        Ok(n) => n,
        Err(UpdateError::Op(ArithFail::Missing)) => {
            misses.incr();
            out.extend_from_slice(b"NF");
            return meta_flags(out, m, &|_| None);
        }
        Err(UpdateError::Op(ArithFail::NotNumber)) => {
            return out.extend_from_slice(line::NON_NUMERIC);
        }
        Err(UpdateError::Store(_)) => {
            return out.extend_from_slice(line::TOO_LARGE);
        }
    };
    hits.incr();
    // A created item gets the N TTL; T updates any item's TTL.
    if let Some(e) = touch.or(vivify.filter(|_| created)) {
        store.expire(key, at(e), now);
    }
    let value = m.flags.has(b'v');
    if !value && m.flags.has(b'q') {
        return;
    }
    let text = itoa::Buffer::new().format(n).as_bytes().to_vec();
    let left = store.peek(key, now, |e| {
        e.and_then(|e| e.expires().map(|x| (x - now + NS - 1).div_euclid(NS)))
    });
    let cas = if m.flags.has(b'c') {
        cas_of(ctx, key)
    } else {
        0
    };
    if value {
        out.extend_from_slice(b"VA ");
        out.extend_from_slice(itoa::Buffer::new().format(text.len()).as_bytes());
    } else {
        out.extend_from_slice(b"HD");
    }
    meta_flags(out, m, &|f| match f {
        b'c' => Some(MetaValue::Uint(cas)),
        b't' => Some(MetaValue::Int(left.unwrap_or(-1))),
        _ => None,
    });
    if value {
        out.extend_from_slice(&text);
        out.extend_from_slice(b"\r\n");
    }
}

fn debug(ctx: &mut Ctx<'_>, m: &Meta<'_>, key: &[u8], out: &mut Vec<u8>) {
    let now = ctx.now;
    ctx.shared.store.peek(key, now, |e| match e {
        None => out.extend_from_slice(line::EN),
        Some(e) => {
            let exp = e
                .expires()
                .map(|x| (x - now + NS - 1).div_euclid(NS))
                .unwrap_or(-1);
            out.extend_from_slice(b"ME ");
            if m.flags.has(b'b') {
                encode(out, e.key());
            } else {
                out.extend_from_slice(e.key());
            }
            let mut b = itoa::Buffer::new();
            out.extend_from_slice(b" exp=");
            out.extend_from_slice(b.format(exp).as_bytes());
            let la = (now.div_euclid(NS) - e.last_access_secs() as i64).max(0);
            out.extend_from_slice(b" la=");
            out.extend_from_slice(b.format(la).as_bytes());
            out.extend_from_slice(b" cas=");
            out.extend_from_slice(b.format(e.cas()).as_bytes());
            out.extend_from_slice(b" fetch=no cls=1 size=");
            out.extend_from_slice(b.format(e.value().len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    });
}
