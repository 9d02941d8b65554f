//! Memcache text protocol: request parsing, as Pogocache and memcached
//! frame it.
//!
//! Owns: line framing, single-space tokenising, key rules, numeric field
//! validation, data-block framing, `noreply`, and the error lines a
//! malformed request earns. Does not own: what the commands do (the
//! command crate executes a [`Request`] against the store and writes the
//! reply lines).
//!
//! Hand-written (hot path): a request is parsed in one pass over the line
//! and borrows every key and value from the input buffer.

use crate::Limits;
use crate::num::{parse_i64_strict, parse_u64_strict as parse_u64};

pub mod compose;
pub mod meta;

/// Longest key.
pub const MAX_KEY: usize = 250;

/// The storage verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreVerb {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// A parse-level error; each is one reply line and the connection stays
/// open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `ERROR`: unknown verb, empty line, wrong token count.
    Error,
    /// `CLIENT_ERROR bad command line format`.
    BadFormat,
    /// `CLIENT_ERROR bad data chunk`: the data block was not followed by
    /// `\r\n` (the whole block is skipped).
    BadChunk,
    /// `CLIENT_ERROR invalid numeric delta argument` (incr/decr).
    BadDelta,
    /// `CLIENT_ERROR value is not an integer or out of range` (touch).
    BadInteger,
    /// `CLIENT_ERROR invalid exptime argument` (gat/gats).
    BadExptime,
    /// `CLIENT_ERROR invalid delay argument` (flush_all).
    BadDelay,
    /// `CLIENT_ERROR syntax error` (stats with arguments).
    Syntax,
    /// Data length over the limit: `CLIENT_ERROR bad command line format`,
    /// counted in `store_too_large`.
    TooLarge,
    /// A meta flag that is not a letter: `CLIENT_ERROR invalid flag`.
    BadFlag,
}

impl Error {
    /// The reply line, with its CRLF.
    pub fn line(&self) -> &'static [u8] {
        match self {
            Error::Error => b"ERROR\r\n",
            Error::BadFormat | Error::TooLarge => b"CLIENT_ERROR bad command line format\r\n",
            Error::BadChunk => b"CLIENT_ERROR bad data chunk\r\n",
            Error::BadDelta => b"CLIENT_ERROR invalid numeric delta argument\r\n",
            Error::BadInteger => b"CLIENT_ERROR value is not an integer or out of range\r\n",
            Error::BadExptime => b"CLIENT_ERROR invalid exptime argument\r\n",
            Error::BadDelay => b"CLIENT_ERROR invalid delay argument\r\n",
            Error::Syntax => b"CLIENT_ERROR syntax error\r\n",
            Error::BadFlag => b"CLIENT_ERROR invalid flag\r\n",
        }
    }
}

/// Keys of a multi-key request, borrowed from the line. The parser notes
/// whether there is more than one, so the common single-key `get` is not
/// scanned for spaces again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys<'a> {
    line: &'a [u8],
    multi: bool,
}

impl<'a> Keys<'a> {
    /// `line`: the keys, separated by single spaces.
    pub fn new(line: &'a [u8]) -> Keys<'a> {
        Keys {
            line,
            multi: memchr::memchr(b' ', line).is_some(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        KeysIter {
            rest: Some(self.line),
            multi: self.multi,
        }
    }
}

struct KeysIter<'a> {
    rest: Option<&'a [u8]>,
    multi: bool,
}

impl<'a> Iterator for KeysIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        if self.multi
            && let Some(i) = memchr::memchr(b' ', rest)
        {
            self.rest = Some(&rest[i + 1..]);
            return Some(&rest[..i]);
        }
        self.rest = None;
        Some(rest)
    }
}

/// One parsed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `get`/`gets` (`cas` = gets).
    Get {
        keys: Keys<'a>,
        cas: bool,
    },
    /// `gat`/`gats <exptime> <key>+`.
    Gat {
        exptime: i64,
        keys: Keys<'a>,
        cas: bool,
    },
    Store {
        verb: StoreVerb,
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        value: &'a [u8],
        cas: u64,
        noreply: bool,
    },
    Delete {
        key: &'a [u8],
        noreply: bool,
    },
    Incr {
        key: &'a [u8],
        delta: u64,
        decr: bool,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i64,
        noreply: bool,
    },
    FlushAll {
        delay: i64,
        noreply: bool,
    },
    Stats,
    Version,
    Verbosity {
        noreply: bool,
    },
    Quit,
    /// A meta-protocol request (`mg`, `ms`, `md`, `ma`, `mn`, `me`).
    Meta(meta::Meta<'a>),
    /// A malformed request and its reply line.
    Invalid(Error),
}

impl<'a> Request<'a> {
    /// The first key the request touches, if any: what a server prefetches
    /// while earlier pipelined requests run.
    pub fn first_key(&self) -> Option<&'a [u8]> {
        match *self {
            Request::Get { keys, .. } | Request::Gat { keys, .. } => keys.iter().next(),
            Request::Store { key, .. }
            | Request::Delete { key, .. }
            | Request::Incr { key, .. }
            | Request::Touch { key, .. } => Some(key),
            Request::Meta(m) if !m.key.is_empty() => Some(m.key),
            _ => None,
        }
    }
}

/// The framing error: the line exceeded `Limits::max_line`. Reply
/// `CLIENT_ERROR line too long` and close. (Malformed requests are not
/// framing errors: they parse to [`Request::Invalid`] and the connection
/// goes on.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineTooLong;

/// Result of one parse attempt: a request (or an error reply) and the
/// bytes it occupied.
pub type Parsed<'a> = crate::Parsed<LineTooLong, Request<'a>>;

/// A memcache key: 1–250 bytes, none ≤ 0x20 nor 0x7F.
pub fn valid_key(k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= MAX_KEY && k.iter().all(|&b| b > 0x20 && b != 0x7f)
}

/// Eight copies of a byte, for word-at-a-time scans.
const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// The high bit of each byte of `x` that is zero, and no other bit.
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = splat(0x7f);
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// Whether any byte of `x` is a control byte (below 0x20) or DEL.
#[inline(always)]
fn has_control(x: u64) -> bool {
    (x.wrapping_sub(splat(0x20)) & !x & splat(0x80)) | zero_bytes(x ^ splat(0x7f)) != 0
}

/// Splits a line into single-space separated tokens (at most `N`; the
/// count of all tokens is returned, with whether the line is *clean*: free
/// of control bytes and DEL, so that its tokens are valid keys as soon as
/// they are non-empty and short enough). A single trailing space does not
/// make an empty token.
///
/// Hand-written, eight bytes at a time: this scan was a third of the
/// instructions of a pipelined memcache `get` (issue 20's profile), and a
/// request line is split here once instead of once per check.
fn tokens<'a, const N: usize>(line: &'a [u8], out: &mut [&'a [u8]; N]) -> (usize, bool) {
    let line = line.strip_suffix(b" ").unwrap_or(line);
    if line.is_empty() {
        return (0, true);
    }
    let mut n = 0;
    let mut start = 0;
    let mut push = |end: usize, start: &mut usize| {
        if n < N {
            out[n] = &line[*start..end];
        }
        n += 1;
        *start = end + 1;
    };
    let mut dirty = false;
    let mut i = 0;
    while i + 8 <= line.len() {
        let w = u64::from_le_bytes(line[i..i + 8].try_into().expect("eight bytes"));
        dirty |= has_control(w);
        let mut spaces = zero_bytes(w ^ splat(b' '));
        while spaces != 0 {
            push(i + (spaces.trailing_zeros() / 8) as usize, &mut start);
            spaces &= spaces - 1;
        }
        i += 8;
    }
    for (j, &b) in line.iter().enumerate().skip(i) {
        dirty |= b < 0x20 || b == 0x7f;
        if b == b' ' {
            push(j, &mut start);
        }
    }
    push(line.len(), &mut start);
    (n, !dirty)
}

/// The second token of the first line of `buf` (the key of `get`, `set`,
/// `mg` ... requests), found without parsing the request, for a prefetch
/// hint: a wrong guess costs only a wasted prefetch. Looks at most at the
/// first 300 bytes.
pub fn peek_key(buf: &[u8]) -> Option<&[u8]> {
    let head = &buf[..buf.len().min(300)];
    let sp = memchr::memchr2(b' ', b'\n', head)?;
    if head[sp] != b' ' {
        return None;
    }
    let rest = &head[sp + 1..];
    let end = memchr::memchr3(b' ', b'\r', b'\n', rest)?;
    (end > 0).then(|| &rest[..end])
}

/// Parses one request from the front of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parsed<'a> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > limits.max_line {
            return Parsed::Invalid(LineTooLong);
        }
        return Parsed::Incomplete {
            need: buf.len() + 1,
        };
    };
    let line_len = nl + 1;
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let done = |r| Parsed::Complete(line_len, r);
    if line.len() >= 2
        && line[0] == b'm'
        && matches!(line[1], b'g' | b's' | b'd' | b'a' | b'n' | b'e')
        && line.get(2).is_none_or(|&c| c == b' ')
    {
        return meta::parse(buf, line, line_len, limits);
    }
    let mut t: [&[u8]; 8] = [&[]; 8];
    let (n, clean) = tokens(line, &mut t);
    // In a clean line a token is a valid key when it is not empty and not
    // too long; otherwise each key gets the byte-by-byte check.
    let key_ok = |k: &[u8]| {
        if clean {
            !k.is_empty() && k.len() <= MAX_KEY
        } else {
            valid_key(k)
        }
    };
    if n == 0 {
        return done(Request::Invalid(Error::Error));
    }
    // `noreply` is honoured when it is the last token.
    let noreply = n > 1 && n <= t.len() && t[n - 1] == b"noreply";
    let argc = if noreply { n - 1 } else { n };
    let verb = t[0];
    match verb {
        b"get" | b"gets" => {
            if argc < 2 {
                return done(Request::Invalid(Error::Error));
            }
            let rest = line[verb.len() + 1..]
                .strip_suffix(b" ")
                .unwrap_or(&line[verb.len() + 1..]);
            let keys = Keys {
                line: rest,
                multi: n > 2,
            };
            let ok = if clean && n <= t.len() {
                t[1..n].iter().all(|k| key_ok(k))
            } else {
                keys.iter().all(valid_key)
            };
            if !ok {
                return done(Request::Invalid(Error::BadFormat));
            }
            done(Request::Get {
                keys,
                cas: verb == b"gets",
            })
        }
        b"gat" | b"gats" => {
            if n < 3 {
                return done(Request::Invalid(Error::Error));
            }
            let Some(exptime) = parse_i64_strict(t[1]) else {
                return done(Request::Invalid(Error::BadExptime));
            };
            let start = verb.len() + 1 + t[1].len() + 1;
            let rest = line[start..].strip_suffix(b" ").unwrap_or(&line[start..]);
            let keys = Keys::new(rest);
            if !keys.iter().all(valid_key) {
                return done(Request::Invalid(Error::BadFormat));
            }
            done(Request::Gat {
                exptime,
                keys,
                cas: verb == b"gats",
            })
        }
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            let verb = match verb {
                b"set" => StoreVerb::Set,
                b"add" => StoreVerb::Add,
                b"replace" => StoreVerb::Replace,
                b"append" => StoreVerb::Append,
                b"prepend" => StoreVerb::Prepend,
                _ => StoreVerb::Cas,
            };
            let want = if verb == StoreVerb::Cas { 6 } else { 5 };
            if argc < want {
                return done(Request::Invalid(Error::BadFormat));
            }
            if argc > want {
                return done(Request::Invalid(Error::Error));
            }
            let key = t[1];
            if !key_ok(key) {
                return done(Request::Invalid(Error::BadFormat));
            }
            let flags = if t[2].is_empty() {
                Some(0)
            } else {
                parse_i64_strict(t[2])
            };
            let Some(flags) = flags.filter(|&f| f >= 0) else {
                return done(Request::Invalid(Error::BadFormat));
            };
            let Some(exptime) = parse_i64_strict(t[3]) else {
                return done(Request::Invalid(Error::BadFormat));
            };
            let bytes = match parse_i64_strict(t[4]) {
                Some(b) if b >= 0 && b as u64 <= limits.max_arg_len as u64 => b as usize,
                Some(b) if b >= 0 => return done(Request::Invalid(Error::TooLarge)),
                _ => return done(Request::Invalid(Error::BadFormat)),
            };
            let cas = if verb == StoreVerb::Cas {
                match parse_u64(t[5]) {
                    Some(c) => c,
                    None => return done(Request::Invalid(Error::BadFormat)),
                }
            } else {
                0
            };
            let total = line_len + bytes + 2;
            if buf.len() < total {
                return Parsed::Incomplete { need: total };
            }
            if &buf[line_len + bytes..total] != b"\r\n" {
                return Parsed::Complete(total, Request::Invalid(Error::BadChunk));
            }
            Parsed::Complete(
                total,
                Request::Store {
                    verb,
                    key,
                    flags: flags as u64 as u32,
                    exptime,
                    value: &buf[line_len..line_len + bytes],
                    cas,
                    noreply,
                },
            )
        }
        b"delete" => {
            if argc < 2 {
                return done(Request::Invalid(Error::Error));
            }
            // `delete <key> [0] [noreply]`: the legacy time must be 0.
            if !key_ok(t[1]) || argc > 3 || (argc == 3 && t[2] != b"0") {
                return done(Request::Invalid(Error::BadFormat));
            }
            done(Request::Delete { key: t[1], noreply })
        }
        b"incr" | b"decr" => {
            if argc != 3 {
                return done(Request::Invalid(Error::Error));
            }
            if !key_ok(t[1]) {
                return done(Request::Invalid(Error::BadFormat));
            }
            let Some(delta) = parse_u64(t[2]) else {
                return done(Request::Invalid(Error::BadDelta));
            };
            done(Request::Incr {
                key: t[1],
                delta,
                decr: verb == b"decr",
                noreply,
            })
        }
        b"touch" => {
            if argc != 3 {
                return done(Request::Invalid(Error::Error));
            }
            if !key_ok(t[1]) {
                return done(Request::Invalid(Error::BadFormat));
            }
            let Some(exptime) = parse_i64_strict(t[2]) else {
                return done(Request::Invalid(Error::BadInteger));
            };
            done(Request::Touch {
                key: t[1],
                exptime,
                noreply,
            })
        }
        b"flush_all" => match argc {
            1 => done(Request::FlushAll { delay: 0, noreply }),
            2 => match parse_i64_strict(t[1]) {
                Some(d) if (0..=31_536_000).contains(&d) => {
                    done(Request::FlushAll { delay: d, noreply })
                }
                _ => done(Request::Invalid(Error::BadDelay)),
            },
            _ => done(Request::Invalid(Error::Error)),
        },
        b"stats" => done(if n == 1 {
            Request::Stats
        } else {
            Request::Invalid(Error::Syntax)
        }),
        b"version" => done(Request::Version),
        b"verbosity" => done(if argc <= 2 {
            Request::Verbosity { noreply }
        } else {
            Request::Invalid(Error::Error)
        }),
        b"quit" => done(Request::Quit),
        _ => done(Request::Invalid(Error::Error)),
    }
}

#[cfg(test)]
mod tests;
