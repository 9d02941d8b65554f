//! One connection's protocol, behind one contract.
//!
//! Owns: the [`Step`] every protocol session returns, and [`Protocol`],
//! the enum that holds a connection's protocol and that protocol's state
//! (sniffing until the first bytes decide, then a [`RespSession`],
//! [`McSession`], [`HttpSession`] or [`PgSession`]). A server drives any
//! connection the same way: hand the buffered input to
//! [`Protocol::step`], write what it appended to the output, drop the
//! bytes it consumed, repeat. Does not own: sockets, buffers, TLS or
//! fairness (the server's transport and event loop), nor what commands do
//! (the command table).
//!
//! Dispatch is a `match` over the enum, not a trait object, so each
//! protocol's step inlines into the server's loop.

use pogocache_protocol::sniff::{Proto, Sniff, sniff};
use pogocache_store::Store;

use crate::Ctx;
use crate::http::HttpSession;
use crate::memcache::McSession;
use crate::monitor::Queue;
use crate::postgres::PgSession;
use crate::resp::RespSession;

/// What one step of a session did with the input it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing ran: the request at the front is not complete until at
    /// least this many bytes are buffered (a lower bound on the total, so
    /// a large value is not re-parsed on every read).
    Incomplete(usize),
    /// Ran one request (or one pipelined window of them) that occupied
    /// this many bytes at the front of the input; its replies are in the
    /// output. Call again with what remains.
    Consumed(usize),
    /// Close the connection once the output is written (QUIT, a framing
    /// error whose reply is already in the output, a Postgres client
    /// leaving). Nothing more is read or run.
    Close,
    /// Consumed this many bytes of a Postgres SSLRequest answered `S`:
    /// switch to TLS once the `S` is written, before running anything
    /// else.
    StartTls(usize),
    /// Consumed this many bytes, the last of them a MONITOR: from now on
    /// the connection receives the MONITOR feed. The server subscribes it
    /// and hands the queue to [`Protocol::enter_monitor`].
    Monitor(usize),
    /// Consumed this many bytes, the last a (P)SUBSCRIBE: the connection
    /// now has a pub/sub queue ([`crate::Session::pubsub`]) its worker
    /// drains when woken.
    Mailbox(usize),
    /// Consumed this many bytes, the last a PSYNC: hand the socket to
    /// [`crate::repl::Replication::serve`].
    Replica(usize),
    /// Consumed this many bytes, the last a WAIT that must wait: run
    /// nothing more until [`crate::Session::blocked`] is settled.
    Block(usize),
}

/// A connection's protocol and its state. Starts as `Sniffing`; the first
/// bytes decide, once, which protocol the connection speaks.
// RESP's session (its window of parse results, ~0.5 KiB with no heap
// until used) is held inline: the protocol that carries most traffic
// pays no pointer chase per request. Boxing it would save that half
// KiB only on connections speaking another protocol.
#[allow(clippy::large_enum_variant)]
pub enum Protocol {
    Sniffing,
    Resp(RespSession),
    Memcache(McSession),
    Http(HttpSession),
    Postgres(Box<PgSession>),
}

impl Protocol {
    /// Runs what the front of `input` holds, appending replies to `out`.
    /// `input` is every byte buffered and not yet consumed.
    #[inline]
    pub fn step(&mut self, ctx: &mut Ctx<'_>, input: &[u8], out: &mut Vec<u8>) -> Step {
        match self {
            Protocol::Resp(s) => s.step(ctx, input, out),
            Protocol::Memcache(s) => s.step(ctx, input, out),
            Protocol::Http(s) => s.step(ctx, input, out),
            Protocol::Postgres(s) => s.step(ctx, input, out),
            Protocol::Sniffing => match sniff(input) {
                Sniff::Decided(p) => {
                    ctx.session.routed = p == Proto::Resp;
                    *self = match p {
                        Proto::Resp => Protocol::Resp(RespSession::default()),
                        Proto::Memcache => Protocol::Memcache(McSession),
                        Proto::Http => Protocol::Http(HttpSession),
                        Proto::Postgres => Protocol::Postgres(Box::default()),
                    };
                    self.step(ctx, input, out)
                }
                Sniff::NeedMore => Step::Incomplete(input.len() + 1),
                Sniff::Reject => {
                    // Pogocache's answer to bytes no protocol starts with.
                    out.extend_from_slice(b"-ERROR\r\n");
                    Step::Close
                }
            },
        }
    }

    /// Starts loading the store bucket of the first key of the complete
    /// request at the front of `input`, if there is one (RESP and
    /// Memcache). The server calls this for every ready connection before
    /// running any, so that the cache misses of different clients'
    /// requests overlap.
    pub fn prefetch(&mut self, store: &Store, input: &[u8]) {
        match self {
            Protocol::Resp(s) => s.prefetch(store, input),
            Protocol::Memcache(s) => s.prefetch(store, input),
            _ => {}
        }
    }

    /// The MONITOR feed queue, once the connection is monitoring.
    pub fn monitor(&self) -> Option<&Queue> {
        match self {
            Protocol::Resp(s) => s.monitor(),
            _ => None,
        }
    }

    /// Puts the connection in MONITOR mode after [`Step::Monitor`]: `queue`
    /// is where the server's subscription delivers the feed.
    pub fn enter_monitor(&mut self, queue: Queue) {
        if let Protocol::Resp(s) = self {
            s.enter_monitor(queue)
        }
    }
}
