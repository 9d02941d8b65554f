//! Connection-level commands: PING, SELECT, AUTH. ECHO, VERSION, QUIT
//! and MONITOR are one-liners in the dispatcher.

use pogocache_protocol::ArgView;

use crate::{Ctx, Reply, err, parse_i64_strict};

/// `PING [message]`
pub fn ping<R: Reply>(args: ArgView<'_>, out: &mut R) {
    if args.len() == 1 {
        out.simple(b"PONG")
    } else {
        out.bulk(args.get(1))
    }
}

/// `SELECT db`: there is one database; indexes ≤ 0 are accepted for
/// clients that always send `SELECT 0`.
pub fn select<R: Reply>(args: ArgView<'_>, out: &mut R) {
    match parse_i64_strict(args.get(1)) {
        Some(n) if n > 0 => out.error(err::RANGE),
        Some(_) => out.ok(),
        None => out.error(err::INTEGER),
    }
}

/// Constant-time comparison, so response timing does not reveal how much
/// of a password prefix was right.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `AUTH password` or `AUTH default password`.
///
/// Pogocache refuses every two-argument (ACL) form; Redis clients that
/// always send a user name send `default`, so we accept that user (gap
/// C4, "fix"). Any other user name is refused.
pub fn auth<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let pass = match args.len() {
        2 => Some(args.get(1)),
        3 if args.get(1) == b"default" => Some(args.get(2)),
        3 => None,
        _ => return out.error(err::SYNTAX),
    };
    ctx.stats.auth_cmds.incr();
    if pass.is_some_and(|p| same(p, &ctx.shared.settings.auth)) {
        ctx.session.authed = true;
        out.ok()
    } else {
        ctx.stats.auth_errors.incr();
        out.error(err::WRONGPASS)
    }
}
