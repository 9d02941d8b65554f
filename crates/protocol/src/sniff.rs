//! Protocol sniffing: decide once, from the first bytes of a connection,
//! which of the four protocols it speaks.
//!
//! Owns: Pogocache's decision rules. A first byte `*` is RESP and `\0`
//! is Postgres (a startup message's length starts with zero); otherwise
//! the first line decides: ending in ` HTTP/x.y\r\n` it is HTTP, else a
//! first non-space byte `A`-`Z` is RESP (inline) and anything else is
//! Memcache (its verbs are lowercase). Does not own: what
//! happens next (the connection fixes the protocol for its lifetime).
//!
//! One deliberate divergence (gap B1, "fix"): Pogocache decides from the
//! first `read()` only and rejects a first read that holds no `\n`, which
//! kills telnet sessions and clients whose first line spans two TCP
//! segments. We wait for the first line instead, up to a cap.

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Resp,
    Memcache,
    Http,
    Postgres,
}

/// Result of looking at the buffered bytes of a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniff {
    Decided(Proto),
    /// Not enough bytes yet (no complete first line).
    NeedMore,
    /// The first line is longer than the cap without an end: reply
    /// `-ERROR\r\n` and close, as Pogocache does for its own reject case.
    Reject,
}

/// Longest first line we wait for before rejecting.
pub const MAX_FIRST_LINE: usize = 64 * 1024;

/// Applies the sniffing rules to the bytes buffered so far.
pub fn sniff(buf: &[u8]) -> Sniff {
    match buf.first() {
        None => return Sniff::NeedMore,
        Some(b'*') => return Sniff::Decided(Proto::Resp),
        Some(0) => return Sniff::Decided(Proto::Postgres),
        _ => {}
    }
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > MAX_FIRST_LINE {
            Sniff::Reject
        } else {
            Sniff::NeedMore
        };
    };
    let n = nl + 1;
    if n >= 11 && &buf[n - 11..n - 6] == b" HTTP" && buf[n - 4] == b'.' && buf[n - 2] == b'\r' {
        return Sniff::Decided(Proto::Http);
    }
    let first = buf.iter().position(|&b| b != b' ').map(|i| buf[i]);
    match first {
        Some(b'A'..=b'Z') => Sniff::Decided(Proto::Resp),
        _ => Sniff::Decided(Proto::Memcache),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_pogocache_decisions() {
        use Proto::*;
        let cases: &[(&[u8], Sniff)] = &[
            (b"*1\r\n$4\r\nPING\r\n", Sniff::Decided(Resp)),
            (b"*1\r\n$4\r\nPI", Sniff::Decided(Resp)),
            (b"PING\r\n", Sniff::Decided(Resp)),
            (b" PING\r\n", Sniff::Decided(Resp)),
            (b"Ping\r\n", Sniff::Decided(Resp)),
            (b"ping\r\n", Sniff::Decided(Memcache)),
            (b"\tPING\r\n", Sniff::Decided(Memcache)),
            (b"+PING\r\n", Sniff::Decided(Memcache)),
            (b"1\r\n", Sniff::Decided(Memcache)),
            (b"   \r\n", Sniff::Decided(Memcache)),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Sniff::Decided(Http)),
            (b"get / HTTP/1.1\r\n", Sniff::Decided(Http)),
            (b"FOO / HTTP/1.1\r\n", Sniff::Decided(Http)),
            (b"GET / HTTP/1.1\nHost: x\r\n\r\n", Sniff::Decided(Resp)),
            (
                b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
                Sniff::Decided(Postgres),
            ),
            (b"PING", Sniff::NeedMore),
            (b"GET /k HT", Sniff::NeedMore),
            (b"", Sniff::NeedMore),
        ];
        for (input, want) in cases {
            assert_eq!(
                sniff(input),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn endless_first_line_is_rejected() {
        let line = vec![b'a'; MAX_FIRST_LINE + 1];
        assert_eq!(sniff(&line), Sniff::Reject);
    }
}
