//! Read-modify-write commands: the INCR family (signed and the unsigned
//! U-forms) and APPEND/PREPEND. Each runs
//! atomically under its key's shard lock.

use pogocache_protocol::ArgView;
use pogocache_store::{Side, UpdateError};

use crate::{Ctx, Reply, common, err, parse_i64_strict, parse_u64_strict};

/// Which counter command: direction, signedness, explicit delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    decr: bool,
    unsigned: bool,
    by: bool,
}

impl Op {
    pub const INCR: Op = Op {
        decr: false,
        unsigned: false,
        by: false,
    };
    pub const DECR: Op = Op {
        decr: true,
        unsigned: false,
        by: false,
    };
    pub const INCRBY: Op = Op {
        decr: false,
        unsigned: false,
        by: true,
    };
    pub const DECRBY: Op = Op {
        decr: true,
        unsigned: false,
        by: true,
    };
    pub const UINCR: Op = Op {
        decr: false,
        unsigned: true,
        by: false,
    };
    pub const UDECR: Op = Op {
        decr: true,
        unsigned: true,
        by: false,
    };
    pub const UINCRBY: Op = Op {
        decr: false,
        unsigned: true,
        by: true,
    };
    pub const UDECRBY: Op = Op {
        decr: true,
        unsigned: true,
        by: true,
    };
}

enum Fail {
    NotInteger,
    Overflow,
}

/// Parses a stored value the way C `strtoll`/`strtoull` over the whole
/// value would: the empty value counts as 0.
fn stored_int<T>(v: &[u8], parse: impl Fn(&[u8]) -> Option<T>, zero: T) -> Option<T> {
    if v.is_empty() { Some(zero) } else { parse(v) }
}

/// `INCR`/`DECR`/`INCRBY`/`DECRBY` and the `U` forms. A missing key
/// counts as 0 and is created; TTL and flags are kept.
pub fn incr<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R, op: Op) {
    // The delta as a magnitude plus direction; signed forms fold a
    // negative delta into the direction below.
    let delta = if !op.by {
        Some(1i128)
    } else if op.unsigned {
        parse_u64_strict(args.get(2)).map(|v| v as i128)
    } else {
        parse_i64_strict(args.get(2)).map(|v| v as i128)
    };
    let Some(delta) = delta else {
        return out.error(err::INTEGER);
    };
    let delta = if op.decr { -delta } else { delta };
    let res = ctx
        .shared
        .store
        .update(args.get(1), ctx.now, ctx.scratch, |old, buf| {
            let cur: i128 = match old {
                None => 0,
                Some(v) if op.unsigned => {
                    stored_int(v, parse_u64_strict, 0).ok_or(Fail::NotInteger)? as i128
                }
                Some(v) => stored_int(v, parse_i64_strict, 0).ok_or(Fail::NotInteger)? as i128,
            };
            let new = cur + delta;
            let fits = if op.unsigned {
                (0..=u64::MAX as i128).contains(&new)
            } else {
                (i64::MIN as i128..=i64::MAX as i128).contains(&new)
            };
            if !fits {
                return Err(Fail::Overflow);
            }
            buf.extend_from_slice(itoa::Buffer::new().format(new).as_bytes());
            Ok((new, true))
        });
    match res {
        Ok(n) => {
            if op.decr {
                ctx.stats.decr_hits.incr();
            } else {
                ctx.stats.incr_hits.incr();
            }
            if op.unsigned {
                out.uint(n as u64)
            } else {
                out.int(n as i64)
            }
        }
        Err(UpdateError::Op(Fail::NotInteger)) => out.error(err::INTEGER),
        Err(UpdateError::Op(Fail::Overflow)) => out.error(err::OVERFLOW),
        Err(UpdateError::Store(_)) => out.error(err::SIZE),
    }
}

/// `APPEND key value` / `PREPEND key value`: returns the new length; a
/// missing key is created.
pub fn append<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R, side: Side) {
    match ctx
        .shared
        .store
        .append(args.get(1), args.get(2), side, true, ctx.now)
    {
        Ok(Some(n)) => out.int(n as i64),
        Ok(None) => out.int(0),
        Err(e) => out.error(common::store_error(ctx.stats, e)),
    }
}
