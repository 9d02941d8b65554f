//! RESP2: multibulk and inline (telnet) request parsing, and reply
//! encoding.
//!
//! Owns: Pogocache's framing rules and error kinds, and the reply byte
//! shapes (simple, error, integer, bulk, array, RESP3 null and map). Does not own: what the commands mean.
//!
//! Hand-written because it is the measured hot path: one pass over the
//! buffer, no allocation, ranges instead of copies (crates such as
//! redis-protocol build a frame tree per request).

use crate::{Args, Limits, Parsed};

/// Why a request could not be framed. Each maps to one exact error reply
/// ([`ParseError::message`]) after which the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// `*<n>` is not a number, or n > max args.
    MultibulkLength,
    /// An element did not start with `$`; carries the byte found.
    ExpectedDollar(u8),
    /// `$<n>` is not a number, negative, or over the size limit.
    BulkLength,
    /// A `\r` after a length was not followed by `\n`. Pogocache replies
    /// with an empty error (`-\r\n`, gap B9); we name the problem.
    LineEnding,
    /// Inline request with bad quoting.
    UnbalancedQuotes,
    /// Inline request longer than [`Limits::max_inline_len`] without a
    /// line end (gap B3; Pogocache buffers without limit).
    InlineTooBig,
}

impl ParseError {
    /// The error text, without the leading `-` and trailing CRLF.
    pub fn message(&self) -> ErrorText {
        let mut t = ErrorText {
            buf: [0; 64],
            len: 0,
        };
        match self {
            ParseError::MultibulkLength => t.push(b"ERR Protocol error: invalid multibulk length"),
            ParseError::ExpectedDollar(c) => {
                t.push(b"ERR Protocol error: expected '$', got '");
                t.push(&[*c]);
                t.push(b"'");
            }
            ParseError::BulkLength => t.push(b"ERR Protocol error: invalid bulk length"),
            ParseError::LineEnding => t.push(b"ERR Protocol error: expected '\\r\\n'"),
            ParseError::UnbalancedQuotes => {
                t.push(b"ERR Protocol error: unbalanced quotes in request")
            }
            ParseError::InlineTooBig => t.push(b"ERR Protocol error: too big inline request"),
        }
        t
    }
}

/// A short error message in a stack buffer (no allocation on error paths
/// that hostile clients can trigger at will).
pub struct ErrorText {
    buf: [u8; 64],
    len: usize,
}

impl ErrorText {
    fn push(&mut self, b: &[u8]) {
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// How many bytes after a `*`/`$` marker may precede the `\r` before the
/// number is declared invalid (Pogocache's rule).
const MAX_NUMBER_LEN: usize = 32;

enum Num {
    Value(i64),
    Incomplete,
    Invalid,
    BadEnding,
}

/// Reads the number after a marker at `buf[pos]`; on success returns the
/// value and the index just past its `\r\n`.
#[inline]
fn read_number(buf: &[u8], pos: usize) -> (Num, usize) {
    let start = pos + 1;
    let window = &buf[start.min(buf.len())..buf.len().min(start + MAX_NUMBER_LEN + 1)];
    let Some(cr) = memchr::memchr(b'\r', window) else {
        return if window.len() > MAX_NUMBER_LEN {
            (Num::Invalid, 0)
        } else {
            (Num::Incomplete, 0)
        };
    };
    let end = start + cr;
    if end + 1 >= buf.len() {
        return (Num::Incomplete, 0);
    }
    if buf[end + 1] != b'\n' {
        return (Num::BadEnding, 0);
    }
    match crate::num::i64_unbounded(&buf[start..end]) {
        Some(v) => (Num::Value(v), end + 2),
        None => (Num::Invalid, 0),
    }
}

pub use crate::num::parse_i64_strict;

/// Parses one multibulk request starting at `buf[0] == b'*'`.
///
/// # Format
/// ```text
/// *<count>\r\n  then <count> times:  $<len>\r\n<len bytes><2 bytes>
/// ```
/// A count ≤ 0 is consumed and yields zero arguments (no reply). The two
/// bytes after each payload are skipped unchecked, as in Pogocache.
pub fn parse_multibulk(buf: &[u8], limits: &Limits, args: &mut Args) -> Parsed<ParseError> {
    debug_assert_eq!(buf.first(), Some(&b'*'));
    args.clear();
    let (count, mut pos) = match read_number(buf, 0) {
        (Num::Value(v), p) => (v, p),
        (Num::Incomplete, _) => {
            return Parsed::Incomplete {
                need: buf.len() + 1,
            };
        }
        (Num::Invalid, _) => return Parsed::Invalid(ParseError::MultibulkLength),
        (Num::BadEnding, _) => return Parsed::Invalid(ParseError::LineEnding),
    };
    if count > limits.max_args as i64 {
        return Parsed::Invalid(ParseError::MultibulkLength);
    }
    if count <= 0 {
        return Parsed::Complete(pos, ());
    }
    for _ in 0..count {
        let Some(&marker) = buf.get(pos) else {
            return Parsed::Incomplete { need: pos + 1 };
        };
        if marker != b'$' {
            return Parsed::Invalid(ParseError::ExpectedDollar(marker));
        }
        let (len, start) = match read_number(buf, pos) {
            (Num::Value(v), p) => (v, p),
            (Num::Incomplete, _) => {
                return Parsed::Incomplete {
                    need: buf.len() + 1,
                };
            }
            (Num::Invalid, _) => return Parsed::Invalid(ParseError::BulkLength),
            (Num::BadEnding, _) => return Parsed::Invalid(ParseError::LineEnding),
        };
        if len < 0 || len > limits.max_arg_len as i64 {
            return Parsed::Invalid(ParseError::BulkLength);
        }
        let end = start + len as usize;
        if end + 2 > buf.len() {
            return Parsed::Incomplete { need: end + 2 };
        }
        args.push(start, end);
        pos = end + 2;
    }
    Parsed::Complete(pos, ())
}

#[inline]
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Parses one inline (telnet-style) request: a line up to the first LF,
/// split on whitespace, with `"`/`'` quoting and backslash escapes inside
/// quotes. Arguments are unescaped into `args`' scratch buffer. A blank
/// line completes with zero arguments.
pub fn parse_inline(buf: &[u8], limits: &Limits, args: &mut Args) -> Parsed<ParseError> {
    args.clear();
    args.in_scratch = true;
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > limits.max_inline_len {
            return Parsed::Invalid(ParseError::InlineTooBig);
        }
        return Parsed::Incomplete {
            need: buf.len() + 1,
        };
    };
    // The same rule whether or not the newline came in the same read, so
    // the outcome never depends on how TCP split the request.
    if nl > limits.max_inline_len {
        return Parsed::Invalid(ParseError::InlineTooBig);
    }
    let line = &buf[..nl];
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        if args.ranges.len() >= limits.max_args {
            return Parsed::Invalid(ParseError::MultibulkLength);
        }
        let start = args.scratch.len();
        // One argument: runs of plain bytes and quoted sections.
        loop {
            if i >= line.len() || is_space(line[i]) {
                break;
            }
            let c = line[i];
            if c == b'"' || c == b'\'' {
                let q = c;
                i += 1;
                loop {
                    let Some(&b) = line.get(i) else {
                        return Parsed::Invalid(ParseError::UnbalancedQuotes);
                    };
                    if b == b'\\' && i + 1 < line.len() {
                        args.scratch.push(match line[i + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            o => o,
                        });
                        i += 2;
                    } else if b == q {
                        i += 1;
                        break;
                    } else {
                        args.scratch.push(b);
                        i += 1;
                    }
                }
                // A closing quote must end the argument.
                if i < line.len() && !is_space(line[i]) {
                    return Parsed::Invalid(ParseError::UnbalancedQuotes);
                }
                break;
            }
            args.scratch.push(c);
            i += 1;
        }
        if args.scratch.len() - start > limits.max_arg_len {
            return Parsed::Invalid(ParseError::BulkLength);
        }
        let end = args.scratch.len();
        args.ranges.push((start as u32, end as u32));
    }
    Parsed::Complete(nl + 1, ())
}

/// Parses one request of either form, choosing by its first byte.
#[inline]
pub fn parse(buf: &[u8], limits: &Limits, args: &mut Args) -> Parsed<ParseError> {
    if buf.first() == Some(&b'*') {
        parse_multibulk(buf, limits, args)
    } else {
        parse_inline(buf, limits, args)
    }
}

// ---------------------------------------------------------------- replies

/// Appends `+<text>\r\n`, blanking control bytes so a reply can never
/// break framing (gap B6 "fix").
pub fn simple(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'+');
    push_sanitized(out, text);
    out.extend_from_slice(b"\r\n");
}

/// Appends `-<text>\r\n`, blanking control bytes (gap B6).
pub fn error(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'-');
    push_sanitized(out, text);
    out.extend_from_slice(b"\r\n");
}

#[inline]
fn push_sanitized(out: &mut Vec<u8>, text: &[u8]) {
    let start = out.len();
    out.extend_from_slice(text);
    for b in &mut out[start..] {
        if *b < 0x20 {
            *b = b' ';
        }
    }
}

/// Appends `:<n>\r\n`.
#[inline]
pub fn int(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends an unsigned number the way Pogocache does: as a simple string
/// (`+<n>\r\n`), used by the UINCR family and MGETS.
#[inline]
pub fn uint(out: &mut Vec<u8>, n: u64) {
    out.push(b'+');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `$<len>\r\n<bytes>\r\n`.
#[inline]
pub fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Appends the RESP2 null bulk `$-1\r\n`.
#[inline]
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// Appends an array header `*<n>\r\n`.
#[inline]
pub fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a RESP3 push header `><n>\r\n` (out-of-band messages:
/// pub/sub confirmations and deliveries).
#[inline]
pub fn push(out: &mut Vec<u8>, n: usize) {
    out.push(b'>');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

// ---------------------------------------------------------------- requests

/// Appends a request as a client sends it: an array of bulk strings
/// (what every Redis client library writes).
pub fn request(out: &mut Vec<u8>, args: &[&[u8]]) {
    array(out, args.len());
    for a in args {
        bulk(out, a);
    }
}

#[cfg(test)]
mod tests;
