//! The protocol-neutral reply sink.
//!
//! Owns: the [`Reply`] trait every protocol implements, and the RESP
//! implementation. Handlers call these methods and never see bytes, so a
//! miss can become `$-1`, `END`, a 404 or an empty row set depending on
//! who asked.

use pogocache_protocol::resp;

/// Where a command's reply goes. Methods mirror RESP2's value kinds; the
/// other protocols (later) map them onto their own shapes.
pub trait Reply {
    /// `+OK`.
    fn ok(&mut self) {
        self.simple(b"OK")
    }
    /// A status line.
    fn simple(&mut self, s: &[u8]);
    /// An error. `e` is the whole message, for example `ERR syntax error`
    /// or `NOAUTH Authentication required.`.
    fn error(&mut self, e: &[u8]);
    fn int(&mut self, n: i64);
    /// An unsigned number (Pogocache sends these as status lines).
    fn uint(&mut self, n: u64);
    fn bulk(&mut self, b: &[u8]);
    /// A missing value.
    fn null(&mut self);
    /// Announces `n` elements that follow.
    fn array(&mut self, n: usize);
    /// Announces an out-of-band message of `n` elements: a RESP3 push, or
    /// an array in RESP2 (pub/sub confirmations and messages).
    fn push(&mut self, n: usize) {
        self.array(n)
    }
    /// Announces `n` key/value pairs: a RESP3 map, or (RESP2 and the
    /// other protocols) an array of `2n` elements.
    fn map(&mut self, n: usize) {
        self.array(2 * n)
    }
    /// Switches the encoding to RESP3 or back (HELLO, RESET), effective
    /// for the rest of this reply.
    fn set_resp3(&mut self, _on: bool) {}
    /// Whether replies are encoded as RESP3 now (HELLO's `proto` field).
    fn resp3(&self) -> bool {
        false
    }
}

/// Writes RESP2 (or, after `HELLO 3`, RESP3) replies into a connection's
/// output buffer. RESP3 changes only what Pogocache's commands can send:
/// nulls (`_`) and maps (`%`).
pub struct RespReply<'a> {
    pub out: &'a mut Vec<u8>,
    pub resp3: bool,
}

impl<'a> RespReply<'a> {
    pub fn new(out: &'a mut Vec<u8>, resp3: bool) -> RespReply<'a> {
        RespReply { out, resp3 }
    }
}

impl Reply for RespReply<'_> {
    #[inline]
    fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }
    #[inline]
    fn simple(&mut self, s: &[u8]) {
        resp::simple(self.out, s)
    }
    #[inline]
    fn error(&mut self, e: &[u8]) {
        resp::error(self.out, e)
    }
    #[inline]
    fn int(&mut self, n: i64) {
        resp::int(self.out, n)
    }
    #[inline]
    fn uint(&mut self, n: u64) {
        resp::uint(self.out, n)
    }
    #[inline]
    fn bulk(&mut self, b: &[u8]) {
        resp::bulk(self.out, b)
    }
    #[inline]
    fn null(&mut self) {
        if self.resp3 {
            self.out.extend_from_slice(b"_\r\n");
        } else {
            resp::null(self.out)
        }
    }
    #[inline]
    fn array(&mut self, n: usize) {
        resp::array(self.out, n)
    }
    fn push(&mut self, n: usize) {
        if self.resp3 {
            resp::push(self.out, n)
        } else {
            resp::array(self.out, n)
        }
    }
    #[inline]
    fn map(&mut self, n: usize) {
        if self.resp3 {
            self.out.push(b'%');
            self.out
                .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            self.out.extend_from_slice(b"\r\n");
        } else {
            resp::array(self.out, 2 * n)
        }
    }
    fn set_resp3(&mut self, on: bool) {
        self.resp3 = on;
    }
    fn resp3(&self) -> bool {
        self.resp3
    }
}
