//! HTTP/1.x request framing on top of httparse.
//!
//! Owns: request-line and header parsing (httparse, zero-copy), the
//! headers Pogocache honours (`Content-Length`, `Accept`, `Authorization`,
//! `Connection`), body framing, keep-alive decision, and the status a bad
//! request earns. Does not own: routes and their replies (the command
//! crate), or percent-decoding of keys (also there, with the key rules).

use crate::Limits;

/// Most headers one request may carry (more: 431).
const MAX_HEADERS: usize = 64;

/// The methods with a route; anything else is answered 400, as Pogocache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Delete,
    Other,
}

/// A complete request, borrowing from the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The request target as sent (`/key?query`).
    pub target: &'a [u8],
    /// `Authorization` header value, if any.
    pub authorization: Option<&'a [u8]>,
    /// `Accept` contains `text/html`.
    pub accept_html: bool,
    /// Keep the connection open after the reply (HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    pub body: &'a [u8],
}

/// A request that cannot be served: the status to answer (then close).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// 400: malformed request line, headers or `Content-Length`.
    BadRequest,
    /// 411: a `Transfer-Encoding` body (Pogocache silently stored an
    /// empty value, gap E4).
    LengthRequired,
    /// 413: `Content-Length` over the value limit.
    TooLarge,
    /// 431: header block over `Limits::max_head`.
    HeadersTooLarge,
}

impl Reject {
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Reject::BadRequest => (400, "Bad Request"),
            Reject::LengthRequired => (411, "Length Required"),
            Reject::TooLarge => (413, "Payload Too Large"),
            Reject::HeadersTooLarge => (431, "Request Header Fields Too Large"),
        }
    }
}

/// Result of one parse attempt.
pub type Parsed<'a> = crate::Parsed<Reject, Request<'a>>;

/// Parses one request from the front of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parsed<'a> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head {
                return Parsed::Invalid(Reject::HeadersTooLarge);
            }
            return Parsed::Incomplete {
                need: buf.len() + 1,
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(Reject::HeadersTooLarge),
        Err(_) => return Parsed::Invalid(Reject::BadRequest),
    };
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("PUT") => Method::Put,
        Some("DELETE") => Method::Delete,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or("").as_bytes();
    let mut keep_alive = req.version == Some(1);
    let (mut length, mut authorization, mut accept_html) = (0u64, None, false);
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let v = h.value.trim_ascii();
            // More than 21 bytes is not a number at all (as everywhere,
            // see `num`); a long but valid number is too large.
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) || v.len() > 12 {
                let number = v.len() <= crate::num::MAX_LEN && v.iter().all(u8::is_ascii_digit);
                return Parsed::Invalid(if v.len() > 12 && number {
                    Reject::TooLarge
                } else {
                    Reject::BadRequest
                });
            }
            length = v.iter().fold(0u64, |a, &d| a * 10 + (d - b'0') as u64);
            if length > limits.max_arg_len as u64 {
                return Parsed::Invalid(Reject::TooLarge);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parsed::Invalid(Reject::LengthRequired);
        } else if name.eq_ignore_ascii_case(b"authorization") {
            authorization = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"accept") {
            accept_html = memchr::memmem::find(h.value, b"text/html").is_some();
        } else if name.eq_ignore_ascii_case(b"connection") {
            let v = h.value.trim_ascii();
            if v.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if v.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    let total = head + length as usize;
    if buf.len() < total {
        return Parsed::Incomplete { need: total };
    }
    Parsed::Complete(
        total,
        Request {
            method,
            target,
            authorization,
            accept_html,
            keep_alive,
            body: &buf[head..total],
        },
    )
}

/// Appends a whole response: status line, `Content-Length`, `Connection`
/// and the body. Pogocache always says `HTTP/1.1` and `Connection: Close`;
/// we say `keep-alive` when we keep the connection.
pub fn response(out: &mut Vec<u8>, code: u16, reason: &str, body: &[u8], keep_alive: bool) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(b.format(code).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(b.format(body.len()).as_bytes());
    out.extend_from_slice(if keep_alive {
        b"\r\nConnection: keep-alive\r\n\r\n"
    } else {
        b"\r\nConnection: Close\r\n\r\n"
    });
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Parsed<'_> {
        super::parse(input, &Limits::DEFAULT)
    }

    #[test]
    fn request_with_body_and_exact_consumption() {
        let input = b"PUT /hk?ttl=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET";
        let Parsed::Complete(n, r) = parse(input) else {
            panic!()
        };
        assert_eq!(n, input.len() - 3);
        assert_eq!(
            (r.method, r.target, r.body, r.keep_alive),
            (Method::Put, &b"/hk?ttl=1"[..], &b"hello"[..], true)
        );
        for cut in 1..n {
            assert!(
                matches!(parse(&input[..cut]), Parsed::Incomplete { .. }),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn headers_and_keep_alive() {
        let Parsed::Complete(_, r) =
            parse(b"GET / HTTP/1.0\r\nAccept: text/html\r\nAuthorization: Bearer s\r\n\r\n")
        else {
            panic!()
        };
        assert!(r.accept_html && !r.keep_alive);
        assert_eq!(r.authorization, Some(&b"Bearer s"[..]));
        let Parsed::Complete(_, r) = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n") else {
            panic!()
        };
        assert!(!r.keep_alive);
        // No header lines at all still completes (gap E1).
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Parsed::Complete(18, _)
        ));
        assert!(matches!(
            parse(b"POST /k HTTP/1.1\r\n\r\n"),
            Parsed::Complete(
                _,
                Request {
                    method: Method::Other,
                    ..
                }
            )
        ));
    }

    #[test]
    fn rejections() {
        let cases: &[(&[u8], Reject)] = &[
            (
                b"GET /hk HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                Reject::BadRequest,
            ),
            (
                b"PUT /hk HTTP/1.1\r\nContent-Length: 536870913\r\n\r\n",
                Reject::TooLarge,
            ),
            (
                b"PUT /hk HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                Reject::TooLarge,
            ),
            (
                b"PUT /hk HTTP/1.1\r\nContent-Length: 0000000000000000000001\r\n\r\n",
                Reject::BadRequest,
            ),
            (
                b"PUT /hk HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Reject::LengthRequired,
            ),
            (b"GET /hk HTTP/3.0\r\nHost: x\r\n\r\n", Reject::BadRequest),
            (b"GET  /hk HTTP/1.1\r\n\r\n", Reject::BadRequest),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input),
                Parsed::Invalid(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            parse(
                &[
                    b"GET / HTTP/1.1\r\nX: ".as_slice(),
                    &[b'a'; Limits::DEFAULT.max_head]
                ]
                .concat()
            ),
            Parsed::Invalid(Reject::HeadersTooLarge)
        );
    }

    #[test]
    fn response_bytes() {
        let mut out = Vec::new();
        response(&mut out, 200, "OK", b"Stored\r\n", false);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: Close\r\n\r\nStored\r\n"
        );
    }
}
