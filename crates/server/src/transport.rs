//! A connection's transport: its socket, plain or TLS, and its buffers.
//!
//! Owns: reading into the input buffer (allocated only once bytes arrive,
//! compacted and grown by what was actually received), writing the output
//! buffer, handing drained buffers back to the worker's [`Buffers`] (so an
//! idle connection holds no buffer; buffers grown for large values stay
//! until the worker finds the connection idle), end of stream, "close once
//! written", the TLS port's sniff (a ClientHello starts TLS; a Postgres
//! SSLRequest is answered `S` first) and the upgrade after that `S`.
//! Does not own: what the bytes mean (the connection's
//! `pogocache_command::conn::Protocol`), scheduling and fairness (the
//! worker's event loop).

use std::io::{self, Read, Write};
use std::sync::Arc;

use crate::listener::Stream;
use crate::tls::{self, Tls};

/// Bytes requested per `read`.
pub const READ_CHUNK: usize = 16 * 1024;
/// Unprocessed input buffered before reading stops (unless a single
/// request declares it needs more, up to the protocol limits).
pub const READ_CAP: usize = 1 << 20;
/// Pending output at which the connection stops running requests until
/// the client reads.
pub const OUT_HIGH: usize = 1 << 20;
/// Buffers grown past this are released once drained.
const SHRINK_OVER: usize = 1 << 20;
/// Spare buffers of each kind a worker keeps for its connections.
const SPARES: usize = 64;
/// Drained output buffers of this capacity or more go back to the spares
/// (up to [`OUT_SPARE_MAX`]); smaller ones stay with their connection.
const OUT_SPARE_MIN: usize = 1024;
/// Larger drained output buffers are freed.
const OUT_SPARE_MAX: usize = 64 * 1024;

/// A worker's read buffer and its spare connection buffers.
///
/// Why: an idle connection must cost almost nothing. Memcached and
/// Pogocache keep a few hundred bytes per idle client; a 16 KiB input
/// buffer kept per connection made 20,000 idle clients pin 340 MiB (and
/// spend their CPU zeroing fresh pages). A connection takes a buffer when
/// bytes arrive and gives it back once everything in it has run, so
/// buffers exist per *busy* connection, and the spares make taking one
/// cost a pop instead of an allocation.
pub struct Buffers {
    /// Read buffer for connections that have none and no spare is left.
    probe: Box<[u8]>,
    /// Input buffers, each `READ_CHUNK` bytes long and initialised.
    ins: Vec<Vec<u8>>,
    /// Empty output buffers with capacity in `OUT_SPARE_MIN..=OUT_SPARE_MAX`.
    outs: Vec<Vec<u8>>,
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers {
            probe: vec![0; READ_CHUNK].into_boxed_slice(),
            ins: Vec::new(),
            outs: Vec::new(),
        }
    }
}

/// The transport failed or the peer broke the protocol below the
/// application (a TLS error, a reset, a bad first byte on the TLS port):
/// close without writing anything more.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken;

/// A connection's socket and buffers.
pub struct Transport {
    pub stream: Stream,
    tls: Tls,
    /// Input: valid bytes are `inbuf[start..end]`; `inbuf.len()` is the
    /// allocated (and initialised) size, so reads never re-zero memory.
    inbuf: Vec<u8>,
    start: usize,
    end: usize,
    /// Don't try to run anything until this many bytes are buffered.
    need: usize,
    out: Vec<u8>,
    wpos: usize,
    /// The peer closed its side.
    eof: bool,
    /// Close once the output is written; read and run nothing more.
    closing: bool,
    /// Switch to TLS once the pending output (a Postgres `S`) is written.
    tls_after_flush: bool,
}

impl Transport {
    /// `tls_port`: the connection came in on `--tlsport`, so its first
    /// bytes decide between TLS and a Postgres SSLRequest.
    pub fn new(stream: Stream, tls_port: bool) -> Transport {
        Transport {
            stream,
            tls: if tls_port { Tls::Sniff } else { Tls::Off },
            inbuf: Vec::new(),
            start: 0,
            end: 0,
            need: 0,
            out: Vec::new(),
            wpos: 0,
            eof: false,
            closing: false,
            tls_after_flush: false,
        }
    }

    /// Reads what the socket has (plain or through TLS), up to the input
    /// cap, then settles the TLS port's sniff. A connection without an
    /// input buffer takes a spare from `bufs`, or reads into the worker's
    /// probe and gets a buffer only if bytes came. Returns whether the
    /// input alone calls for another turn (the cap stopped the read, or a
    /// handshake started).
    pub fn fill(
        &mut self,
        bufs: &mut Buffers,
        config: Option<&Arc<rustls::ServerConfig>>,
    ) -> Result<bool, Broken> {
        let mut again = false;
        if !self.eof && !self.closing && self.pending_out() < OUT_HIGH {
            let cap = READ_CAP.max(self.need);
            if matches!(self.tls, Tls::On(_)) && self.start > 0 {
                // TLS appends at `end` and grows when full: move the
                // unprocessed tail to the front first, or a client that
                // always leaves a partial request behind grows the buffer
                // with every byte it streams.
                self.compact();
            }
            if let Tls::On(t) = &mut self.tls {
                match tls::pull(
                    t,
                    &mut self.stream,
                    &mut self.inbuf,
                    self.start,
                    &mut self.end,
                    cap,
                ) {
                    Ok(tls::Pulled::Ok) => {}
                    Ok(tls::Pulled::Eof) => self.eof = true,
                    Err(_) => return Err(Broken),
                }
                if self.end - self.start >= cap {
                    again = true;
                }
            } else {
                again = self.read_plain(bufs, cap)?;
            }
        }
        if let Tls::Sniff = self.tls {
            again |= self.sniff_tls(config)?;
        }
        Ok(again)
    }

    /// Reads until the socket would block, it closes, or `cap` bytes are
    /// buffered (then returns true).
    fn read_plain(&mut self, bufs: &mut Buffers, cap: usize) -> Result<bool, Broken> {
        if self.inbuf.is_empty()
            && let Some(spare) = bufs.ins.pop()
        {
            self.inbuf = spare;
        }
        loop {
            if self.end - self.start >= cap {
                return Ok(true);
            }
            if self.inbuf.is_empty() {
                // No buffer and no spare: read into the worker's, so a
                // connection that has nothing to say costs no buffer.
                // A new buffer holds just what came (no zeroing, and a
                // burst of thousands of small requests does not leave
                // thousands of freed 16 KiB blocks behind); it grows to a
                // full chunk only if it must take more.
                let probe = &mut bufs.probe;
                match self.stream.read(probe) {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        let mut b = Vec::with_capacity(n);
                        b.extend_from_slice(&probe[..n]);
                        self.inbuf = b;
                        self.end = n;
                        if n == probe.len() {
                            continue;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return Err(Broken),
                }
                return Ok(false);
            }
            if self.end == self.inbuf.len() {
                self.make_room();
            }
            let space = self.inbuf.len() - self.end;
            match self.stream.read(&mut self.inbuf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    // A short read drained the socket: new data will raise
                    // a fresh edge, so skip the EAGAIN round trip (a third
                    // of all syscalls under pipelining).
                    if n < space {
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Broken),
            }
        }
    }

    /// The TLS port's first bytes: a ClientHello starts TLS; a Postgres
    /// SSLRequest gets `S`, then TLS once it is written. Returns whether
    /// a handshake started (its reply needs a turn).
    fn sniff_tls(&mut self, config: Option<&Arc<rustls::ServerConfig>>) -> Result<bool, Broken> {
        let Some(config) = config else {
            return Err(Broken);
        };
        match tls::sniff(self.input()) {
            tls::SniffResult::NeedMore if self.eof => Err(Broken),
            tls::SniffResult::NeedMore => Ok(false),
            tls::SniffResult::Reject => Err(Broken),
            tls::SniffResult::PgSslRequest => {
                self.consume(8);
                self.out.push(b'S');
                self.tls_after_flush = true;
                self.tls = Tls::Off;
                Ok(false)
            }
            tls::SniffResult::Handshake => {
                let mut t = tls::start(config).map_err(|_| Broken)?;
                let mut hello = &self.inbuf[self.start..self.end];
                while !hello.is_empty() {
                    t.read_tls(&mut hello).map_err(|_| Broken)?;
                }
                if t.process_new_packets().is_err() {
                    let _ = t.write_tls(&mut self.stream);
                    return Err(Broken);
                }
                self.start = 0;
                self.end = 0;
                self.tls = Tls::On(t);
                Ok(true)
            }
        }
    }

    /// Frees space at the end of the input buffer: moves unprocessed bytes
    /// to the front, and doubles the buffer when that is not enough.
    /// Growth follows the bytes actually received, never a length the
    /// client merely declared, so `$536870000` followed by silence costs
    /// nothing.
    fn make_room(&mut self) {
        self.compact();
        if self.end == self.inbuf.len() {
            let want = (self.inbuf.len() * 2).max(READ_CHUNK);
            self.inbuf.resize(want, 0);
        }
    }

    /// Moves the unprocessed input to the front of the buffer.
    fn compact(&mut self) {
        if self.start > 0 {
            self.inbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Whether requests may run now: not closing, no TLS switch or sniff
    /// pending, output under the high-water mark, and at least `need`
    /// (and at least one) bytes buffered.
    #[inline]
    pub fn runnable(&self) -> bool {
        let buffered = self.end - self.start;
        !self.closing
            && !self.tls_after_flush
            && !matches!(self.tls, Tls::Sniff)
            && self.pending_out() < OUT_HIGH
            && buffered > 0
            && buffered >= self.need
    }

    /// The buffered input not yet consumed.
    #[inline]
    pub fn input(&self) -> &[u8] {
        &self.inbuf[self.start..self.end]
    }

    /// The buffered input and the output buffer, borrowed together.
    #[inline]
    pub fn io(&mut self) -> (&[u8], &mut Vec<u8>) {
        (&self.inbuf[self.start..self.end], &mut self.out)
    }

    /// Drops `n` bytes from the front of the input.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        self.need = 0;
    }

    /// Nothing runs until `n` bytes are buffered.
    #[inline]
    pub fn need(&mut self, n: usize) {
        self.need = n;
    }

    /// Close once the output is written.
    pub fn close_after_flush(&mut self) {
        self.closing = true;
    }

    /// Switch to TLS once the output is written (a Postgres `S`).
    pub fn tls_after_flush(&mut self) {
        self.tls_after_flush = true;
    }

    /// Takes the plain socket out with the output not yet written, for
    /// a replication thread (PSYNC). `None` on a TLS connection.
    pub fn into_plain(self) -> Option<(Stream, Vec<u8>)> {
        if !matches!(self.tls, Tls::Off) {
            return None;
        }
        let pending = self.out[self.wpos..].to_vec();
        Some((self.stream, pending))
    }

    /// Output for the client outside a request (the MONITOR feed).
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Output not yet written.
    #[inline]
    pub fn pending_out(&self) -> usize {
        self.out.len() - self.wpos
    }

    /// After requests ran: an emptied input buffer goes back to the
    /// spares (or is freed when they are full or it had grown past 1 MiB),
    /// so a connection with nothing buffered holds no input buffer. A
    /// buffer grown for large requests (up to 1 MiB) stays with its
    /// connection, which is likely to send more of them.
    pub fn settle_input(&mut self, bufs: &mut Buffers) {
        if self.start != self.end {
            return;
        }
        self.start = 0;
        self.end = 0;
        let len = self.inbuf.len();
        if len == 0 || (len > READ_CHUNK && len <= SHRINK_OVER) {
            return;
        }
        let mut b = std::mem::take(&mut self.inbuf);
        if len <= READ_CHUNK && bufs.ins.len() < SPARES {
            // Spares are full chunks, initialised once here.
            b.resize(READ_CHUNK, 0);
            bufs.ins.push(b);
        }
    }

    /// Frees buffers grown past the spare sizes for large requests or
    /// replies, if nothing is pending in them. The worker calls this for
    /// connections that ran nothing for a second, so a client that once
    /// sent a 256 KiB value does not keep half a megabyte while idle.
    pub fn release_grown(&mut self) {
        if self.start == self.end && self.inbuf.len() > READ_CHUNK {
            self.inbuf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
        if self.pending_out() == 0 && self.out.capacity() > OUT_SPARE_MAX {
            self.out = Vec::new();
            self.wpos = 0;
        }
    }

    /// Before requests run: a connection whose output buffer was handed
    /// back takes a spare, so replies don't grow a buffer from nothing.
    #[inline]
    pub fn ready_output(&mut self, bufs: &mut Buffers) {
        if self.out.capacity() == 0
            && let Some(b) = bufs.outs.pop()
        {
            self.out = b;
        }
    }

    /// Writes pending output until the socket would block, then starts a
    /// TLS switch that waited for it. Returns what the connection needs
    /// next (`again`: the earlier steps found more to do).
    pub fn flush(
        &mut self,
        bufs: &mut Buffers,
        config: Option<&Arc<rustls::ServerConfig>>,
        again: bool,
    ) -> Result<Flushed, Broken> {
        let mut again = again;
        let drained = if let Tls::On(t) = &mut self.tls {
            tls::push(t, &mut self.stream, &self.out, &mut self.wpos).map_err(|_| Broken)?
        } else {
            while self.wpos < self.out.len() {
                match self.stream.write(&self.out[self.wpos..]) {
                    Ok(0) => return Err(Broken),
                    Ok(n) => self.wpos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Err(Broken),
                }
            }
            self.wpos == self.out.len()
        };
        if drained {
            // The `S` of a Postgres SSLRequest is out in plain text: the
            // client's ClientHello comes next.
            if self.tls_after_flush {
                self.tls_after_flush = false;
                let config = config.ok_or(Broken)?;
                self.tls = Tls::On(tls::start(config).map_err(|_| Broken)?);
                again = true;
            }
            self.out.clear();
            self.wpos = 0;
            let cap = self.out.capacity();
            if (OUT_SPARE_MIN..=OUT_SPARE_MAX).contains(&cap) {
                // Written out: the buffer goes back to the spares, so an
                // idle connection keeps no reply buffer.
                let b = std::mem::take(&mut self.out);
                if bufs.outs.len() < SPARES {
                    bufs.outs.push(b);
                }
            } else if cap > SHRINK_OVER {
                self.out = Vec::new();
            }
            // A buffer grown for large replies stays while the connection
            // is busy (regrowing it for every 256 KiB value cost a copy
            // per doubling): see `release_grown`.
        }
        let buffered = self.end - self.start;
        if drained && (self.closing || (self.eof && buffered < self.need.max(1))) {
            return Ok(Flushed::Done);
        }
        // Requests still buffered (held back by the budget, by output
        // backpressure that has now cleared, or by EOF) need another turn.
        if buffered > 0 && buffered >= self.need {
            again = true;
        }
        Ok(if drained && again {
            Flushed::Again
        } else {
            Flushed::Idle
        })
    }
}

/// What a connection needs after [`Transport::flush`].
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Wait for readiness.
    Idle,
    /// Run another turn without waiting.
    Again,
    /// Everything is written and the connection is finished: close it.
    Done,
}

#[cfg(test)]
mod tests;
