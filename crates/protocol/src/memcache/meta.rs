//! The memcached meta protocol (`mg`, `ms`, `md`, `ma`, `mn`, `me`), as
//! memcached's protocol.txt documents it: a two-letter verb, a key, then
//! single-letter flags, each optionally followed by a token (`T30`,
//! `Oabc`, `v`).
//!
//! Owns: framing of meta lines and `ms` data blocks, flag syntax, and
//! base64 keys (`b`). Does not own: what the flags do (the command crate).

use super::{Error, MAX_KEY, Parsed, Request, valid_key};
use crate::Limits;

/// The meta verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaCmd {
    Get,
    Set,
    Delete,
    Arith,
    Noop,
    Debug,
}

/// The flags of one meta request, in the order sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags<'a>(&'a [u8]);

impl<'a> Flags<'a> {
    /// `(flag, token)` pairs in request order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        self.0
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
            .map(|t| (t[0], &t[1..]))
    }

    pub fn has(&self, f: u8) -> bool {
        self.iter().any(|(c, _)| c == f)
    }

    /// The token of the last occurrence of `f`.
    pub fn get(&self, f: u8) -> Option<&'a [u8]> {
        self.iter().filter(|&(c, _)| c == f).map(|(_, t)| t).last()
    }
}

/// One meta request. `key` is as sent (base64 when the `b` flag is set;
/// [`decode_key`] gives the bytes to store under).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta<'a> {
    pub cmd: MetaCmd,
    pub key: &'a [u8],
    pub flags: Flags<'a>,
    /// The `ms` data block.
    pub value: &'a [u8],
}

/// Parses a meta line (`line` without its line ending; `line_len` with it)
/// at the front of `buf`.
pub(super) fn parse<'a>(
    buf: &'a [u8],
    line: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Parsed<'a> {
    let done = |r| Parsed::Complete(line_len, r);
    let line = line.strip_suffix(b" ").unwrap_or(line);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let verb = parts.next().unwrap_or_default();
    let cmd = match verb {
        b"mg" => MetaCmd::Get,
        b"ms" => MetaCmd::Set,
        b"md" => MetaCmd::Delete,
        b"ma" => MetaCmd::Arith,
        b"mn" => MetaCmd::Noop,
        b"me" => MetaCmd::Debug,
        _ => return done(Request::Invalid(Error::Error)),
    };
    if cmd == MetaCmd::Noop {
        return done(Request::Meta(Meta {
            cmd,
            key: b"",
            flags: Flags(b""),
            value: b"",
        }));
    }
    let key = parts.next().unwrap_or_default();
    let mut rest = parts.next().unwrap_or_default();
    let mut datalen = None;
    if cmd == MetaCmd::Set {
        let mut p = rest.splitn(2, |&b| b == b' ');
        let n = p.next().unwrap_or_default();
        rest = p.next().unwrap_or_default();
        match super::parse_u64(n) {
            Some(n) if n <= limits.max_arg_len as u64 => datalen = Some(n as usize),
            Some(_) => return done(Request::Invalid(Error::TooLarge)),
            None => return done(Request::Invalid(Error::BadFormat)),
        }
    }
    let flags = Flags(rest);
    if !rest.is_empty()
        && rest
            .split(|&b| b == b' ')
            .any(|t| t.is_empty() || !t[0].is_ascii_alphabetic())
    {
        return done(Request::Invalid(Error::BadFlag));
    }
    let key_ok = if flags.has(b'b') {
        decode_key(key).is_some()
    } else {
        valid_key(key)
    };
    if !key_ok {
        return done(Request::Invalid(Error::BadFormat));
    }
    let value: &[u8] = match datalen {
        None => b"",
        Some(n) => {
            let total = line_len + n + 2;
            if buf.len() < total {
                return Parsed::Incomplete { need: total };
            }
            if &buf[line_len + n..total] != b"\r\n" {
                return Parsed::Complete(total, Request::Invalid(Error::BadChunk));
            }
            return Parsed::Complete(
                total,
                Request::Meta(Meta {
                    cmd,
                    key,
                    flags,
                    value: &buf[line_len..line_len + n],
                }),
            );
        }
    };
    done(Request::Meta(Meta {
        cmd,
        key,
        flags,
        value,
    }))
}

fn b64(c: u8) -> Option<u8> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    })
}

/// Decodes a base64 (standard alphabet, padded) key; `None` unless it
/// decodes to 1..=250 bytes.
pub fn decode_key(s: &[u8]) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, q) in s.chunks(4).enumerate() {
        let last = i == s.len() / 4 - 1;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut v = 0u32;
        for &c in &q[..4 - pad] {
            v = v << 6 | b64(c)? as u32;
        }
        v <<= 6 * pad as u32;
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    (!out.is_empty() && out.len() <= MAX_KEY).then_some(out)
}

/// Encodes bytes as base64 (standard alphabet, padded), for returning a
/// binary key with the `k` flag.
pub fn encode(out: &mut Vec<u8>, data: &[u8]) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in data.chunks(3) {
        let v = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(v >> (18 - 6 * i)) as usize & 63]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    fn parse_all(input: &[u8]) -> Parsed<'_> {
        super::super::parse(input, &Limits::DEFAULT)
    }
    use super::*;

    #[test]
    fn base64_round_trip() {
        for s in [&b"a"[..], b"ab", b"abc", b"\x00\xff\x10binary"] {
            let mut e = Vec::new();
            encode(&mut e, s);
            assert_eq!(decode_key(&e).as_deref(), Some(s));
        }
        assert_eq!(decode_key(b"Zm9v"), Some(b"foo".to_vec()));
        assert_eq!(decode_key(b"Zm9"), None);
        assert_eq!(decode_key(b"Z=9v"), None);
    }

    #[test]
    fn frames_meta_lines_and_blocks() {
        let Parsed::Complete(n, Request::Meta(m)) = parse_all(b"mg foo v t Oxx\r\n") else {
            panic!()
        };
        assert_eq!((n, m.cmd, m.key), (16, MetaCmd::Get, &b"foo"[..]));
        assert_eq!(
            m.flags.iter().collect::<Vec<_>>(),
            vec![(b'v', &b""[..]), (b't', &b""[..]), (b'O', &b"xx"[..])]
        );
        assert_eq!(
            parse_all(b"ms foo 3 T10\r\nab"),
            Parsed::Incomplete { need: 19 }
        );
        let Parsed::Complete(19, Request::Meta(m)) = parse_all(b"ms foo 3 T10\r\nabc\r\n") else {
            panic!()
        };
        assert_eq!(
            (m.value, m.flags.get(b'T')),
            (&b"abc"[..], Some(&b"10"[..]))
        );
        assert_eq!(
            parse_all(b"ms foo 3\r\nabcXY"),
            Parsed::Complete(15, Request::Invalid(Error::BadChunk))
        );
        assert_eq!(
            parse_all(b"mg foo 1bad\r\n"),
            Parsed::Complete(13, Request::Invalid(Error::BadFlag))
        );
        assert_eq!(
            parse_all(b"mg\r\n"),
            Parsed::Complete(4, Request::Invalid(Error::BadFormat))
        );
        assert!(matches!(
            parse_all(b"mn\r\n"),
            Parsed::Complete(
                4,
                Request::Meta(Meta {
                    cmd: MetaCmd::Noop,
                    ..
                })
            )
        ));
        assert!(matches!(
            parse_all(b"mg Zm9v b v\r\n"),
            Parsed::Complete(_, Request::Meta(Meta { key: b"Zm9v", .. }))
        ));
    }
}
