//! Postgres wire protocol v3: framing, the query-text tokenizer, and the
//! backend messages we send (protocol version 3.0, as Pogocache speaks it).
//!
//! Owns: startup-type and regular message framing with size limits, a
//! bounds-checked body reader, the SQL-ish tokenizer that turns query text
//! into command arguments (with `$n` parameters), and encoders for every
//! backend message. Does not own: the session (statements, portals,
//! auth) or what commands return (the command crate).
//!
//! Hand-written: the message set we need is small and its exact bytes
//! are part of the contract; pgwire's server API owns the socket.

use crate::Limits;

/// One framed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A startup-type packet (first byte 0): its code and payload.
    Startup { code: u32, payload: &'a [u8] },
    /// A regular message: type byte and body (without the length).
    Message { kind: u8, body: &'a [u8] },
}

/// Framing failures; each ends the connection after an ErrorResponse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    TooLarge,
    Invalid,
}

/// Result of one framing attempt.
pub type Framed<'a> = crate::Parsed<FrameError, Frame<'a>>;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Frames one message from the front of `buf`.
pub fn frame<'a>(buf: &'a [u8], limits: &Limits) -> Framed<'a> {
    if buf.len() < 5 {
        return Framed::Incomplete { need: 5 };
    }
    if buf[0] == 0 {
        let len = be32(buf) as usize;
        if len > limits.max_startup {
            return Framed::Invalid(FrameError::TooLarge);
        }
        if len < 8 {
            return Framed::Invalid(FrameError::Invalid);
        }
        if buf.len() < len {
            return Framed::Incomplete { need: len };
        }
        return Framed::Complete(
            len,
            Frame::Startup {
                code: be32(&buf[4..]),
                payload: &buf[8..len],
            },
        );
    }
    let len = be32(&buf[1..]) as usize;
    if len < 4 {
        return Framed::Invalid(FrameError::Invalid);
    }
    if len > limits.max_message {
        return Framed::Invalid(FrameError::TooLarge);
    }
    if buf.len() < len + 1 {
        return Framed::Incomplete { need: len + 1 };
    }
    Framed::Complete(
        len + 1,
        Frame::Message {
            kind: buf[0],
            body: &buf[5..len + 1],
        },
    )
}

/// A bounds-checked reader over a message body. Every accessor returns
/// `None` instead of reading past the end, so a lying length can never
/// cause a panic or an out-of-bounds read.
pub struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b }
    }
    pub fn u8(&mut self) -> Option<u8> {
        let (&v, rest) = self.b.split_first()?;
        self.b = rest;
        Some(v)
    }
    pub fn i16(&mut self) -> Option<i16> {
        let v = self.b.get(..2)?;
        self.b = &self.b[2..];
        Some(i16::from_be_bytes([v[0], v[1]]))
    }
    pub fn i32(&mut self) -> Option<i32> {
        let v = self.b.get(..4)?;
        self.b = &self.b[4..];
        Some(i32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.b.get(..n)?;
        self.b = &self.b[n..];
        Some(v)
    }
    /// A NUL-terminated string (without the NUL).
    pub fn cstr(&mut self) -> Option<&'a [u8]> {
        let i = memchr::memchr(0, self.b)?;
        let v = &self.b[..i];
        self.b = &self.b[i + 1..];
        Some(v)
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
}

// ---------------------------------------------------------------- tokenizer

/// One piece of a query: literal text or a `$n` parameter. `glued` marks a
/// piece that touches the previous one with no whitespace between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(Vec<u8>),
    Param(u16),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub piece: Piece,
    pub glued: bool,
    /// The piece came from a quoted string (a glued quoted string stays a
    /// separate argument in a simple query).
    pub quoted: bool,
}

/// Tokenizer failures, with Pogocache's messages (the `idenifiers` typo
/// included, since clients may match on it).
pub fn tokenize(q: &[u8]) -> Result<Vec<Token>, String> {
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut glued = false;
    while i < q.len() {
        let c = q[i];
        if c.is_ascii_whitespace() {
            glued = false;
            i += 1;
            continue;
        }
        if c == b';' {
            if q[i..].iter().any(|&b| b != b';') {
                return Err("unexpected characters at end of query".into());
            }
            break;
        }
        if c == b'"' {
            return Err("idenifiers not allowed".into());
        }
        if (c == b'E' || c == b'e') && q.get(i + 1) == Some(&b'\'') {
            let (s, n) = escape_string(&q[i + 2..])?;
            out.push(Token {
                piece: Piece::Text(s),
                glued,
                quoted: true,
            });
            i += 2 + n;
            glued = true;
            continue;
        }
        if c == b'\'' {
            // Standard string: '' is an escaped quote (Pogocache stored an
            // empty value for any string holding '', gap F1).
            let mut s = Vec::new();
            let mut j = i + 1;
            loop {
                match q.get(j) {
                    None => return Err("unterminated quoted string".into()),
                    Some(b'\'') if q.get(j + 1) == Some(&b'\'') => {
                        s.push(b'\'');
                        j += 2;
                    }
                    Some(b'\'') => break,
                    Some(&b) => {
                        s.push(b);
                        j += 1;
                    }
                }
            }
            out.push(Token {
                piece: Piece::Text(s),
                glued,
                quoted: true,
            });
            i = j + 1;
            glued = true;
            continue;
        }
        if c == b'$' {
            let digits = q[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return Err("dollar-quote strings not allowed".into());
            }
            let text = &q[i + 1..i + 1 + digits];
            let n: u64 = std::str::from_utf8(text)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            if n == 0 || n > 65_535 {
                return Err(format!(
                    "there is no parameter ${}",
                    String::from_utf8_lossy(text)
                ));
            }
            out.push(Token {
                piece: Piece::Param(n as u16),
                glued,
                quoted: false,
            });
            i += 1 + digits;
            glued = true;
            continue;
        }
        let start = i;
        while i < q.len()
            && !q[i].is_ascii_whitespace()
            && !matches!(q[i], b';' | b'\'' | b'"' | b'$')
        {
            i += 1;
        }
        out.push(Token {
            piece: Piece::Text(q[start..i].to_vec()),
            glued,
            quoted: false,
        });
        glued = true;
    }
    Ok(out)
}

/// Decodes an `E'...'` body (after the opening quote). Returns the bytes
/// and how many input bytes were used, including the closing quote.
/// Escapes: `\\ \/ \b \f \n \r \t \" \'`, `\uXXXX` (surrogate pairs
/// combined, invalid ones become U+FFFD), and any other escaped byte is
/// itself (Pogocache dropped it, gap F2).
fn escape_string(q: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match q.get(i) {
            None => return Err("unterminated quoted string".into()),
            Some(b'\'') => {
                if q.get(i + 1) == Some(&b'\'') {
                    out.push(b'\'');
                    i += 2;
                    continue;
                }
                return Ok((out, i + 1));
            }
            Some(b'\\') => {
                let Some(&e) = q.get(i + 1) else {
                    return Err("unterminated quoted string".into());
                };
                i += 2;
                match e {
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let cp = hex4(q.get(i..i + 4));
                        i += if cp.is_some() { 4 } else { 0 };
                        let mut ch = cp.and_then(char::from_u32);
                        if let Some(hi @ 0xD800..=0xDBFF) = cp
                            && q.get(i..i + 2) == Some(b"\\u")
                            && let Some(lo @ 0xDC00..=0xDFFF) = hex4(q.get(i + 2..i + 6))
                        {
                            ch = char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                            i += 6;
                        }
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(
                            ch.unwrap_or('\u{FFFD}').encode_utf8(&mut buf).as_bytes(),
                        );
                    }
                    other => out.push(other),
                }
            }
            Some(&b) => {
                out.push(b);
                i += 1;
            }
        }
    }
}

fn hex4(b: Option<&[u8]>) -> Option<u32> {
    let b = b?;
    let s = std::str::from_utf8(b).ok()?;
    if s.len() != 4 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// The distinct parameter count of a token list, checking that the
/// numbers used are exactly `1..=k` (else `missing parameter $m`).
pub fn param_count(tokens: &[Token]) -> Result<usize, String> {
    let mut seen = [false; 65_536];
    let mut max = 0usize;
    for t in tokens {
        if let Piece::Param(n) = t.piece {
            seen[n as usize] = true;
            max = max.max(n as usize);
        }
    }
    match (1..=max).find(|&n| !seen[n]) {
        Some(m) => Err(format!("missing parameter ${m}")),
        None => Ok(max),
    }
}

/// Builds the command arguments from tokens. Simple queries (`params`
/// = None) keep every token separate; extended queries join glued pieces
/// and substitute parameters.
pub fn build_args(tokens: &[Token], params: Option<&[Vec<u8>]>) -> Vec<Vec<u8>> {
    let mut args: Vec<Vec<u8>> = Vec::new();
    for t in tokens {
        let bytes: &[u8] = match &t.piece {
            Piece::Text(s) => s,
            Piece::Param(n) => params
                .and_then(|p| p.get(*n as usize - 1))
                .map(|v| v.as_slice())
                .unwrap_or(&[]),
        };
        match args.last_mut() {
            Some(last) if t.glued && params.is_some() => last.extend_from_slice(bytes),
            _ => args.push(bytes.to_vec()),
        }
    }
    args
}

// ---------------------------------------------------------------- messages

/// Type OIDs for the session's output mode.
pub const OID_TEXT: i32 = 25;
pub const OID_BYTEA: i32 = 17;

fn msg(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(kind);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// RowDescription: one text/bytea column per name, format code 1 (as
/// Pogocache sends, gap F4).
pub fn row_description(out: &mut Vec<u8>, names: &[&str], oid: i32) {
    msg(out, b'T', |o| {
        o.extend_from_slice(&(names.len() as i16).to_be_bytes());
        for n in names {
            o.extend_from_slice(n.as_bytes());
            o.push(0);
            o.extend_from_slice(&0i32.to_be_bytes());
            o.extend_from_slice(&0i16.to_be_bytes());
            o.extend_from_slice(&oid.to_be_bytes());
            o.extend_from_slice(&(-1i16).to_be_bytes());
            o.extend_from_slice(&(-1i32).to_be_bytes());
            o.extend_from_slice(&1i16.to_be_bytes());
        }
    });
}

pub fn data_row(out: &mut Vec<u8>, cols: &[&[u8]]) {
    msg(out, b'D', |o| {
        o.extend_from_slice(&(cols.len() as i16).to_be_bytes());
        for c in cols {
            o.extend_from_slice(&(c.len() as i32).to_be_bytes());
            o.extend_from_slice(c);
        }
    });
}

pub fn command_complete(out: &mut Vec<u8>, tag: &str) {
    msg(out, b'C', |o| {
        o.extend_from_slice(tag.as_bytes());
        o.push(0);
    });
}

/// ErrorResponse with Pogocache's fixed fields (SQLSTATE 23505, gap F3).
pub fn error_response(out: &mut Vec<u8>, message: &[u8]) {
    msg(out, b'E', |o| {
        o.extend_from_slice(b"SERROR\0VERROR\0C23505\0M");
        o.extend(message.iter().map(|&b| if b == 0 { b' ' } else { b }));
        o.extend_from_slice(b"\0\0");
    });
}

pub fn ready_for_query(out: &mut Vec<u8>) {
    out.extend_from_slice(b"Z\0\0\0\x05I");
}

pub fn empty_query(out: &mut Vec<u8>) {
    out.extend_from_slice(b"I\0\0\0\x04");
}

pub fn parse_complete(out: &mut Vec<u8>) {
    out.extend_from_slice(b"1\0\0\0\x04");
}

pub fn bind_complete(out: &mut Vec<u8>) {
    out.extend_from_slice(b"2\0\0\0\x04");
}

pub fn close_complete(out: &mut Vec<u8>) {
    out.extend_from_slice(b"3\0\0\0\x04");
}

pub fn no_data(out: &mut Vec<u8>) {
    out.extend_from_slice(b"n\0\0\0\x04");
}

pub fn parameter_description(out: &mut Vec<u8>, n: usize, oid: i32) {
    msg(out, b't', |o| {
        o.extend_from_slice(&(n as i16).to_be_bytes());
        for _ in 0..n {
            o.extend_from_slice(&oid.to_be_bytes());
        }
    });
}

/// `R` with an authentication code (0 ok, 3 cleartext, 5 md5 + salt).
pub fn authentication(out: &mut Vec<u8>, code: i32, salt: Option<[u8; 4]>) {
    msg(out, b'R', |o| {
        o.extend_from_slice(&code.to_be_bytes());
        if let Some(s) = salt {
            o.extend_from_slice(&s);
        }
    });
}

pub fn parameter_status(out: &mut Vec<u8>, name: &str, value: &str) {
    msg(out, b'S', |o| {
        o.extend_from_slice(name.as_bytes());
        o.push(0);
        o.extend_from_slice(value.as_bytes());
        o.push(0);
    });
}

#[cfg(test)]
mod tests;
