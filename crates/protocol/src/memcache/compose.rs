//! Memcache bytes out: the server's reply lines and a client's requests.
//!
//! Owns: every fixed reply line of the text and meta protocols, the
//! `VALUE` line and its data block, the meta flag echo that ends a meta
//! reply line, and request encoders (storage verbs, `get`/`gets`, `mg`,
//! `ms`) for clients such as the load generator and the tests. Does not
//! own: when each reply is chosen (the command crate).

use super::meta::Meta;
use super::{Request, StoreVerb};

/// Fixed reply lines, byte for byte as memcached and Pogocache send them.
pub mod line {
    pub const STORED: &[u8] = b"STORED\r\n";
    pub const NOT_STORED: &[u8] = b"NOT_STORED\r\n";
    pub const EXISTS: &[u8] = b"EXISTS\r\n";
    pub const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";
    pub const DELETED: &[u8] = b"DELETED\r\n";
    pub const TOUCHED: &[u8] = b"TOUCHED\r\n";
    pub const END: &[u8] = b"END\r\n";
    pub const OK: &[u8] = b"OK\r\n";
    pub const LINE_TOO_LONG: &[u8] = b"CLIENT_ERROR line too long\r\n";
    pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
    pub const NON_NUMERIC: &[u8] =
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
    /// Memcache has no way to authenticate (Pogocache's answer when
    /// `--auth` is set).
    pub const AUTH_REQUIRED: &[u8] = b"CLIENT_ERROR Authentication required\r\n";
    /// Meta: not found (`mg`, `md`, `ma`).
    pub const EN: &[u8] = b"EN\r\n";
    /// Meta: the `mn` no-op's reply.
    pub const MN: &[u8] = b"MN\r\n";
    pub const INVALID_FLAG: &[u8] = b"CLIENT_ERROR invalid flag\r\n";
    pub const BAD_TOKEN: &[u8] = b"CLIENT_ERROR bad token in command line format\r\n";
    pub const BAD_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
    pub const BAD_SET_MODE: &[u8] = b"CLIENT_ERROR invalid mode for ms STORE\r\n";
    pub const BAD_ARITH_MODE: &[u8] = b"CLIENT_ERROR invalid mode for ma ARITHMETIC\r\n";
}

fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`: one item of a
/// `get`/`gets`/`gat`/`gats` reply (`cas` for the `s` forms).
pub fn value(out: &mut Vec<u8>, key: &[u8], flags: u32, data: &[u8], cas: Option<u64>) {
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.push(b' ');
    number(out, flags);
    out.push(b' ');
    number(out, data.len());
    if let Some(cas) = cas {
        out.push(b' ');
        number(out, cas);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Ends a meta reply line: echoes the flags that echo back (`O`, `k`,
/// `b`) and, for every other flag of the request, the value `vals` gives
/// for it (`c` → CAS, `t` → TTL ...), in request order, then `\r\n`.
pub fn meta_flags(out: &mut Vec<u8>, m: &Meta<'_>, vals: &dyn Fn(u8) -> Option<MetaValue>) {
    for (f, tok) in m.flags.iter() {
        match f {
            b'O' => {
                out.extend_from_slice(b" O");
                out.extend_from_slice(tok);
            }
            b'k' => {
                out.extend_from_slice(b" k");
                out.extend_from_slice(m.key);
            }
            b'b' if m.flags.has(b'k') => out.extend_from_slice(b" b"),
            _ => {
                if let Some(v) = vals(f) {
                    out.push(b' ');
                    out.push(f);
                    match v {
                        MetaValue::Int(n) => number(out, n),
                        MetaValue::Uint(n) => number(out, n),
                    }
                }
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// A value a meta reply reports for a flag.
#[derive(Clone, Copy, Debug)]
pub enum MetaValue {
    Int(i64),
    Uint(u64),
}

/// The verb's name on the wire.
pub fn verb_name(verb: StoreVerb) -> &'static [u8] {
    match verb {
        StoreVerb::Set => b"set",
        StoreVerb::Add => b"add",
        StoreVerb::Replace => b"replace",
        StoreVerb::Append => b"append",
        StoreVerb::Prepend => b"prepend",
        StoreVerb::Cas => b"cas",
    }
}

/// Appends `req` as a client sends it; what it writes parses back to
/// `req`. Meta requests and invalid ones write nothing (meta requests are
/// written by [`meta`] and [`meta_set`]).
pub fn request(out: &mut Vec<u8>, req: &Request<'_>) {
    let noreply = |out: &mut Vec<u8>, on: bool| {
        if on {
            out.extend_from_slice(b" noreply");
        }
    };
    match *req {
        Request::Get { keys, cas } => {
            out.extend_from_slice(if cas { b"gets" } else { b"get" });
            push_keys(out, keys.iter());
        }
        Request::Gat { exptime, keys, cas } => {
            out.extend_from_slice(if cas { b"gats " } else { b"gat " });
            number(out, exptime);
            push_keys(out, keys.iter());
        }
        Request::Store {
            verb,
            key,
            flags,
            exptime,
            value,
            cas,
            noreply: nr,
        } => {
            out.extend_from_slice(verb_name(verb));
            out.push(b' ');
            out.extend_from_slice(key);
            out.push(b' ');
            number(out, flags);
            out.push(b' ');
            number(out, exptime);
            out.push(b' ');
            number(out, value.len());
            if verb == StoreVerb::Cas {
                out.push(b' ');
                number(out, cas);
            }
            noreply(out, nr);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(value);
        }
        Request::Delete { key, noreply: nr } => {
            out.extend_from_slice(b"delete ");
            out.extend_from_slice(key);
            noreply(out, nr);
        }
        Request::Incr {
            key,
            delta,
            decr,
            noreply: nr,
        } => {
            out.extend_from_slice(if decr { b"decr " } else { b"incr " });
            out.extend_from_slice(key);
            out.push(b' ');
            number(out, delta);
            noreply(out, nr);
        }
        Request::Touch {
            key,
            exptime,
            noreply: nr,
        } => {
            out.extend_from_slice(b"touch ");
            out.extend_from_slice(key);
            out.push(b' ');
            number(out, exptime);
            noreply(out, nr);
        }
        Request::FlushAll { delay, noreply: nr } => {
            out.extend_from_slice(b"flush_all ");
            number(out, delay);
            noreply(out, nr);
        }
        Request::Stats => out.extend_from_slice(b"stats"),
        Request::Version => out.extend_from_slice(b"version"),
        Request::Verbosity { noreply: nr } => {
            out.extend_from_slice(b"verbosity 1");
            noreply(out, nr);
        }
        Request::Quit => out.extend_from_slice(b"quit"),
        Request::Meta(_) | Request::Invalid(_) => return,
    }
    out.extend_from_slice(b"\r\n");
}

fn push_keys<'a>(out: &mut Vec<u8>, keys: impl Iterator<Item = &'a [u8]>) {
    for k in keys {
        out.push(b' ');
        out.extend_from_slice(k);
    }
}

/// `set <key> 0 <exptime> <bytes>\r\n<data>\r\n`, the common case.
pub fn set(out: &mut Vec<u8>, key: &[u8], exptime: i64, data: &[u8]) {
    request(
        out,
        &Request::Store {
            verb: StoreVerb::Set,
            key,
            flags: 0,
            exptime,
            value: data,
            cas: 0,
            noreply: false,
        },
    )
}

/// `get <key>...\r\n`, or `gets` with `cas`.
pub fn get(out: &mut Vec<u8>, keys: &[&[u8]], cas: bool) {
    out.extend_from_slice(if cas { b"gets" } else { b"get" });
    push_keys(out, keys.iter().copied());
    out.extend_from_slice(b"\r\n");
}

/// A meta line without a data block: `<verb> <key> <flags...>\r\n`
/// (`mg`, `md`, `ma`, `mn`); `flags` are the tokens as sent (`v`, `T30`).
pub fn meta(out: &mut Vec<u8>, verb: &[u8], key: &[u8], flags: &[&[u8]]) {
    out.extend_from_slice(verb);
    if !key.is_empty() {
        out.push(b' ');
        out.extend_from_slice(key);
    }
    for f in flags {
        out.push(b' ');
        out.extend_from_slice(f);
    }
    out.extend_from_slice(b"\r\n");
}

/// `ms <key> <bytes> <flags...>\r\n<data>\r\n`.
pub fn meta_set(out: &mut Vec<u8>, key: &[u8], data: &[u8], flags: &[&[u8]]) {
    out.extend_from_slice(b"ms ");
    out.extend_from_slice(key);
    out.push(b' ');
    number(out, data.len());
    for f in flags {
        out.push(b' ');
        out.extend_from_slice(f);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::memcache::{Parsed, Request, parse};

    /// What the request encoders write parses back to the same request.
    #[test]
    fn requests_round_trip_through_the_parser() {
        let mut out = Vec::new();
        let lines: &[&[u8]] = &[
            b"cas k 7 30 3 99 noreply\r\nabc\r\n",
            b"append k 0 0 1\r\nx\r\n",
            b"get a b\r\n",
            b"gats 10 a\r\n",
            b"delete k noreply\r\n",
            b"decr k 5\r\n",
            b"touch k -1\r\n",
            b"flush_all 0\r\n",
            b"stats\r\n",
            b"version\r\n",
            b"verbosity 1 noreply\r\n",
            b"quit\r\n",
        ];
        for line in lines {
            let Parsed::Complete(n, r) = parse(line, &Limits::DEFAULT) else {
                panic!("{line:?}")
            };
            assert_eq!(n, line.len());
            out.clear();
            request(&mut out, &r);
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(line));
        }

        out.clear();
        set(&mut out, b"k", 60, b"v");
        assert_eq!(out, b"set k 0 60 1\r\nv\r\n");

        out.clear();
        get(&mut out, &[b"a", b"b"], true);
        assert_eq!(out, b"gets a b\r\n");
        let Parsed::Complete(_, Request::Get { keys, cas: true }) = parse(&out, &Limits::DEFAULT)
        else {
            panic!()
        };
        assert_eq!(keys.iter().collect::<Vec<_>>(), [b"a", b"b"]);

        out.clear();
        meta_set(&mut out, b"k", b"xy", &[b"T10", b"c"]);
        assert_eq!(out, b"ms k 2 T10 c\r\nxy\r\n");
        let Parsed::Complete(_, Request::Meta(m)) = parse(&out, &Limits::DEFAULT) else {
            panic!()
        };
        assert_eq!(
            (m.key, m.value, m.flags.get(b'T')),
            (&b"k"[..], &b"xy"[..], Some(&b"10"[..]))
        );

        out.clear();
        meta(&mut out, b"mn", b"", &[]);
        assert_eq!(out, b"mn\r\n");
    }

    #[test]
    fn value_lines_and_meta_flag_echo() {
        let mut out = Vec::new();
        value(&mut out, b"k", 3, b"hello", None);
        value(&mut out, b"k", 0, b"", Some(12));
        assert_eq!(out, b"VALUE k 3 5\r\nhello\r\nVALUE k 0 0 12\r\n\r\n");

        let line = b"mg key O123 k c t v\r\n";
        let Parsed::Complete(_, Request::Meta(m)) = parse(line, &Limits::DEFAULT) else {
            panic!()
        };
        out.clear();
        out.extend_from_slice(b"HD");
        meta_flags(&mut out, &m, &|f| match f {
            b'c' => Some(MetaValue::Uint(42)),
            b't' => Some(MetaValue::Int(-1)),
            _ => None,
        });
        assert_eq!(out, b"HD O123 kkey c42 t-1\r\n");
    }
}
