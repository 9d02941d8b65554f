//! HTTP routes: `GET /`, `GET /key`,
//! `PUT /key`, `DELETE /key`, with Pogocache's status lines and bodies.
//!
//! Owns: key rules and percent-decoding, the query options (`ttl`/`ex`,
//! `flags`, `cas`, `nx`, `xx`, `auth`), per-request authentication, and the
//! response for every outcome. Does not own: request framing
//! (`pogocache_protocol::http`).
//!
//! Extensions over Pogocache (docs/COMPATIBILITY.md): keep-alive and
//! pipelining, percent-decoded keys (`/a%20b` is the key `a b`), 411 for
//! chunked bodies and 413 for oversized ones.

use pogocache_protocol::http::{self as h, Method, Request, response};
use pogocache_protocol::{Args, Limits};
use pogocache_store::{Cond, Expiry, SetOptions, SetOutcome, StoreError};

use crate::conn::Step;
use crate::table::Cmd;
use crate::{Action, Ctx, common, err, parse_i64_strict, parse_u64_strict, session};

const HELP_TEXT: &[u8] = b"Welcome to the Pogocache HTTP interface.\nVisit https://github.com/tidwall/pogocache for documentation and examples.\n";
const HELP_HTML: &[u8] = b"<html>\n<head>\n<title>Pogocache</title>\n</head>\n<body>\n<h2>Welcome to the Pogocache HTTP interface.</h2>\nVisit <a href=\"https://github.com/tidwall/pogocache\">https://github.com/tidwall/pogocache</a> for documentation and examples.\n</body>\n</html>\n";

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Validates the raw key (Pogocache's byte rules, with `%` allowed for
/// escapes) and percent-decodes it into `out`.
fn decode_key(raw: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if !(0x21..=0x7e).contains(&c) || matches!(c, b'+' | b'@' | b'$' | b'?' | b'=') {
            return false;
        }
        if c == b'%' {
            let (Some(h), Some(l)) = (
                raw.get(i + 1).and_then(|&x| hex(x)),
                raw.get(i + 2).and_then(|&x| hex(x)),
            ) else {
                return false;
            };
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    !out.is_empty() && out.len() <= 250
}

/// Query options, last one wins.
#[derive(Default)]
struct Query<'a> {
    ttl: Option<&'a [u8]>,
    flags: Option<&'a [u8]>,
    cas: Option<&'a [u8]>,
    nx: bool,
    xx: bool,
    auth: Option<&'a [u8]>,
}

fn parse_query(q: &[u8]) -> Query<'_> {
    let mut out = Query::default();
    for pair in q.split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        match name {
            b"ttl" | b"ex" => out.ttl = Some(value),
            b"flags" => out.flags = Some(value),
            b"cas" => out.cas = Some(value),
            b"nx" => out.nx = true,
            b"xx" => out.xx = true,
            b"auth" => out.auth = Some(value),
            _ => {}
        }
    }
    out
}

/// An HTTP/1.x session: one request per step; the protocol keeps no
/// state between requests (keep-alive is per request).
pub struct HttpSession;

impl HttpSession {
    pub fn step(&mut self, ctx: &mut Ctx<'_>, input: &[u8], out: &mut Vec<u8>) -> Step {
        match h::parse(input, &Limits::DEFAULT) {
            h::Parsed::Complete(n, req) => {
                ctx.stats.detail.requests[2].incr();
                match execute(ctx, &req, out) {
                    Action::Close => Step::Close,
                    _ => Step::Consumed(n),
                }
            }
            h::Parsed::Incomplete { need } => Step::Incomplete(need),
            h::Parsed::Invalid(r) => {
                if r == h::Reject::TooLarge {
                    ctx.stats.store_too_large.incr();
                }
                let (code, reason) = r.status();
                let body = format!("{reason}\r\n");
                response(out, code, reason, body.as_bytes(), false);
                Step::Close
            }
        }
    }
}

/// Runs one request and appends the response. Returns `Close` unless the
/// connection is kept alive.
pub fn execute(ctx: &mut Ctx<'_>, req: &Request<'_>, out: &mut Vec<u8>) -> Action {
    let ka = req.keep_alive;
    let done = if ka { Action::Continue } else { Action::Close };
    let Some(path) = req.target.strip_prefix(b"/") else {
        response(out, 400, "Bad Request", b"Bad Request\r\n", false);
        return Action::Close;
    };
    let (raw_key, query) = match path.iter().position(|&b| b == b'?') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (path, &b""[..]),
    };
    if req.method == Method::Other || raw_key.first() == Some(&b'@') {
        response(out, 400, "Bad Request", b"Bad Request\r\n", false);
        return Action::Close;
    }
    let mut send = |code: u16, reason: &str, body: &[u8]| response(out, code, reason, body, ka);
    if req.method == Method::Get && raw_key.is_empty() {
        send(
            200,
            "OK",
            if req.accept_html {
                HELP_HTML
            } else {
                HELP_TEXT
            },
        );
        return done;
    }
    let q = parse_query(query);
    // Credential: a non-empty ?auth= wins over `Authorization: Bearer`.
    let credential: Option<&[u8]> = match (q.auth.filter(|a| !a.is_empty()), req.authorization) {
        (Some(a), _) => Some(a),
        (None, Some(h)) => match h.strip_prefix(b"Bearer ") {
            Some(token) => Some(token),
            None => {
                common::denied(ctx.stats);
                send(401, "Unauthorized", b"Unauthorized\r\n");
                return done;
            }
        },
        (None, None) => None,
    };
    let auth_on = !ctx.shared.settings.auth.is_empty();
    if auth_on || credential.is_some_and(|c| !c.is_empty()) {
        ctx.stats.auth_cmds.incr();
        let ok = credential.is_some_and(|c| session::same(c, &ctx.shared.settings.auth));
        if !ok {
            ctx.stats.auth_errors.incr();
            send(401, "Unauthorized", b"Unauthorized\r\n");
            return done;
        }
    }
    if req.method == Method::Get && raw_key == b"metrics" {
        // Extension: Prometheus metrics (a key named `metrics` is still
        // reachable over PUT/DELETE and the other protocols).
        let body = crate::metrics::render(ctx.shared, ctx.now, pogocache_store::clock::wall_ns());
        send(200, "OK", body.as_bytes());
        return done;
    }
    let mut key = std::mem::take(ctx.scratch);
    if !decode_key(raw_key, &mut key) {
        *ctx.scratch = key;
        send(500, "Internal Server Error", b"ERR Invalid Key\r\n");
        return done;
    }
    trace(ctx, req.method, &key);
    let cmd = match req.method {
        Method::Get => Cmd::Get,
        Method::Put => Cmd::Set,
        _ => Cmd::Del,
    };
    // Counted for /metrics as the table command it is; a miss (404) is an
    // answer, not a failure.
    common::metered(ctx, Some(cmd), |ctx| {
        let code = key_route(ctx, req, &key, &q, out, ka);
        ((), code >= 400 && code != 404)
    });
    *ctx.scratch = key;
    done
}

/// GET, PUT or DELETE of one key: sends the response (keep-alive as
/// `ka`) and returns its status.
fn key_route(
    ctx: &mut Ctx<'_>,
    req: &Request<'_>,
    key: &[u8],
    q: &Query<'_>,
    out: &mut Vec<u8>,
    ka: bool,
) -> u16 {
    let mut send = |code: u16, reason: &str, body: &[u8]| {
        response(out, code, reason, body, ka);
        code
    };
    if !matches!(req.method, Method::Get) && ctx.shared.repl.refuses_writes() {
        return send(
            403,
            "Forbidden",
            b"READONLY You can't write against a read only replica.\r\n",
        );
    }
    let store = &ctx.shared.store;
    match req.method {
        Method::Get => {
            let hit = store.get(key, ctx.now, |e| e.map(|e| send(200, "OK", e.value())));
            common::lookups(ctx.stats, hit.is_some() as u64, hit.is_none() as u64);
            hit.unwrap_or_else(|| send(404, "Not Found", b"Not Found\r\n"))
        }
        Method::Delete => {
            if store.delete(key, ctx.now) {
                ctx.stats.delete_hits.incr();
                send(200, "OK", b"Deleted\r\n")
            } else {
                ctx.stats.delete_misses.incr();
                send(404, "Not Found", b"Not Found\r\n")
            }
        }
        Method::Put => {
            ctx.stats.cmd_set.incr();
            let opts = match put_options(ctx, q) {
                Ok(opts) => opts,
                Err(e) => return send(500, "Internal Server Error", &[e, b"\r\n"].concat()),
            };
            match store.set(key, req.body, &opts, ctx.now) {
                Ok(SetOutcome::Stored { .. }) => send(200, "OK", b"Stored\r\n"),
                Ok(SetOutcome::NotStored { .. }) => send(404, "Not Found", b"Not Found\r\n"),
                Err(e) => {
                    let body = [common::store_error(ctx.stats, e), b"\r\n"].concat();
                    match e {
                        StoreError::OutOfMemory => send(500, "Internal Server Error", &body),
                        StoreError::TooLarge => send(413, "Payload Too Large", &body),
                    }
                }
            }
        }
        Method::Other => unreachable!("rejected before routing"),
    }
}

/// `SET key body [CAS c] [EX ttl] [FLAGS f] [XX] [NX]`, validated in
/// that order as Pogocache does.
fn put_options(ctx: &Ctx<'_>, q: &Query<'_>) -> Result<SetOptions, &'static [u8]> {
    let cas = match q.cas {
        None => None,
        Some(c) => Some(parse_u64_strict(c).ok_or(err::SYNTAX)?),
    };
    let expiry = match q.ttl {
        None => Expiry::Never,
        Some(t) => {
            let s = parse_i64_strict(t).filter(|&s| s > 0).ok_or(err::EXPIRE)?;
            Expiry::At(common::after_secs(ctx.now, s))
        }
    };
    let flags = match q.flags {
        None => 0,
        Some(f) => parse_u64_strict(f).ok_or(err::SYNTAX)? as u32,
    };
    let cond = match (q.nx, q.xx) {
        (true, true) => return Err(err::SYNTAX),
        (true, false) => Cond::Nx,
        (false, true) => Cond::Xx,
        _ => Cond::Always,
    };
    Ok(SetOptions {
        expiry,
        flags,
        cond,
        cas,
    })
}

/// MONITOR and `-vvv` see the translated command (`"get" "x"`).
fn trace(ctx: &Ctx<'_>, method: Method, key: &[u8]) {
    if !common::tracing(ctx) {
        return;
    }
    let mut a = Args::new();
    a.push_owned(match method {
        Method::Get => b"get",
        Method::Put => b"set",
        _ => b"del",
    });
    a.push_owned(key);
    common::trace(ctx, a.view(&[]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_then_decoded() {
        let mut k = Vec::new();
        assert!(decode_key(b"a%20b", &mut k) && k == b"a b");
        assert!(decode_key(b"a/b", &mut k) && k == b"a/b");
        assert!(decode_key(b"%2B", &mut k) && k == b"+");
        for bad in [&b""[..], b"a+b", b"a$b", b"a=b", b"%zz", b"%2", b"a b"] {
            assert!(
                !decode_key(bad, &mut k),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(!decode_key(&[b'k'; 251], &mut k));
    }

    #[test]
    fn query_last_one_wins() {
        let q = parse_query(b"ttl=1&ex=2&flags=7&nx&unknown=5&auth=s");
        assert_eq!(
            (q.ttl, q.flags, q.nx, q.xx, q.auth),
            (
                Some(&b"2"[..]),
                Some(&b"7"[..]),
                true,
                false,
                Some(&b"s"[..])
            )
        );
    }
}
