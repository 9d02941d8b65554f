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
}

/// Writes RESP2 replies into a connection's output buffer.
pub struct RespReply<'a>(pub &'a mut Vec<u8>);

impl Reply for RespReply<'_> {
    #[inline]
    fn ok(&mut self) {
        self.0.extend_from_slice(b"+OK\r\n");
    }
    #[inline]
    fn simple(&mut self, s: &[u8]) {
        resp::simple(self.0, s)
    }
    #[inline]
    fn error(&mut self, e: &[u8]) {
        resp::error(self.0, e)
    }
    #[inline]
    fn int(&mut self, n: i64) {
        resp::int(self.0, n)
    }
    #[inline]
    fn uint(&mut self, n: u64) {
        resp::uint(self.0, n)
    }
    #[inline]
    fn bulk(&mut self, b: &[u8]) {
        resp::bulk(self.0, b)
    }
    #[inline]
    fn null(&mut self) {
        resp::null(self.0)
    }
    #[inline]
    fn array(&mut self, n: usize) {
        resp::array(self.0, n)
    }
}
