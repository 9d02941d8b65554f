//! RESP sessions: the Redis protocol's side of a connection.
//!
//! Owns: RESP's connection state (RESP2 or RESP3 replies, MONITOR mode),
//! running parsed requests through the command table, and the pipeline
//! look-ahead: when requests are queued behind the one at the front, up to
//! [`WINDOW`] of them are parsed once, their store buckets prefetched,
//! and then run from those parse results, so the cache misses of a
//! pipeline overlap instead of queueing. Does not own: framing
//! (`pogocache_protocol::resp`), what commands do (the command table) or
//! reply bytes ([`RespReply`]).

use pogocache_protocol::{Args, Limits, Parsed, resp};
use pogocache_store::Store;

use crate::conn::Step;
use crate::monitor::Queue;
use crate::{Action, Ctx, RespReply, execute, table};

/// Pipelined requests parsed and prefetched ahead of execution.
pub const WINDOW: usize = 8;
/// Replies one window may add before it yields to the server's
/// backpressure check (which runs between steps).
pub(crate) const WINDOW_OUT: usize = 64 * 1024;

/// Per-connection RESP state.
pub struct RespSession {
    /// Replies in RESP3 (after `HELLO 3`).
    resp3: bool,
    /// MONITOR mode: the feed queue. A monitoring connection answers PING
    /// and closes on anything else.
    monitor: Option<Queue>,
    /// Parse results of the requests of one window, reused so the steady
    /// state allocates nothing. Boxed, so that a connection slot (which
    /// holds any protocol's session inline) stays small for memcache and
    /// HTTP clients: 450 bytes less per idle connection.
    args: Box<[Args; WINDOW]>,
    /// Length of the request at the front of the input, when it is
    /// already parsed into `args[0]` (by [`RespSession::prefetch`], or
    /// carried over from the previous window); 0 when not.
    front: usize,
}

impl Default for RespSession {
    fn default() -> Self {
        RespSession {
            resp3: false,
            monitor: None,
            args: Box::new(std::array::from_fn(|_| Args::new())),
            front: 0,
        }
    }
}

impl RespSession {
    /// Runs the request at the front of `input`, or, when more are
    /// buffered behind it, one window of them (see the module docs).
    pub fn step(&mut self, ctx: &mut Ctx<'_>, input: &[u8], out: &mut Vec<u8>) -> Step {
        if self.monitor.is_some() {
            return self.monitoring(ctx, input, out);
        }
        let shared = ctx.shared;
        let store = &shared.store;
        let mut lens = [0usize; WINDOW];
        let first = if self.front > 0 {
            std::mem::take(&mut self.front)
        } else {
            match resp::parse(input, &Limits::DEFAULT, &mut self.args[0]) {
                Parsed::Complete(n, ()) => n,
                Parsed::Incomplete { need } => return Step::Incomplete(need),
                Parsed::Invalid(e) => {
                    resp::error(out, e.message().as_bytes());
                    return Step::Close;
                }
            }
        };
        lens[0] = first;
        let mut parsed = 1;
        let mut end = first;
        // A lone request (no pipelining) skips the look-ahead.
        while parsed < WINDOW && end < input.len() {
            let rest = &input[end..];
            let Parsed::Complete(n, ()) =
                resp::parse(rest, &Limits::DEFAULT, &mut self.args[parsed])
            else {
                // Incomplete or invalid: the next step meets it at the front.
                break;
            };
            if let Some(k) = table::first_key(&self.args[parsed].view(rest)) {
                store.prefetch(k);
            }
            lens[parsed] = n;
            parsed += 1;
            end += n;
        }
        // A full window leaves its last request (parsed, bucket already
        // loading) to lead the next window, so every pipelined request's
        // bucket is prefetched a window ahead of its execution.
        let run = if parsed == WINDOW { WINDOW - 1 } else { parsed };
        let out_start = out.len();
        let mut at = 0;
        for i in 0..run {
            if i > 0 && out.len() - out_start >= WINDOW_OUT {
                // Yield to backpressure; request `i` stays parsed.
                self.args.swap(0, i);
                self.front = lens[i];
                return Step::Consumed(at);
            }
            let data = &input[at..];
            if i + 1 < parsed {
                // The next request's bucket was prefetched when it was
                // parsed: now start loading its entry.
                let next = &input[at + lens[i]..];
                if let Some(k) = table::first_key(&self.args[i + 1].view(next)) {
                    store.prefetch_entry(k);
                }
            }
            ctx.stats.detail.requests[0].incr();
            at += lens[i];
            let args = self.args[i].view(data);
            if args.is_empty() {
                continue;
            }
            let mut reply = RespReply::new(out, self.resp3);
            let action = execute(ctx, args, &mut reply);
            self.resp3 = reply.resp3;
            match action {
                Action::Continue | Action::Exec => {}
                Action::Close => return Step::Close,
                Action::Monitor => return Step::Monitor(at),
                Action::Mailbox => return Step::Mailbox(at),
                Action::Replica => return Step::Replica(at),
                Action::Block => return Step::Block(at),
            }
        }
        if run < parsed {
            self.args.swap(0, run);
            self.front = lens[run];
        }
        Step::Consumed(at)
    }

    /// A monitoring connection: PING is answered, anything else closes.
    fn monitoring(&mut self, ctx: &mut Ctx<'_>, input: &[u8], out: &mut Vec<u8>) -> Step {
        match resp::parse(input, &Limits::DEFAULT, &mut self.args[0]) {
            Parsed::Complete(n, ()) => {
                ctx.stats.detail.requests[0].incr();
                let args = self.args[0].view(input);
                if args.is_empty() {
                    Step::Consumed(n)
                } else if args.get(0).eq_ignore_ascii_case(b"ping") {
                    out.extend_from_slice(b"+PONG\r\n");
                    Step::Consumed(n)
                } else {
                    Step::Close
                }
            }
            Parsed::Incomplete { need } => Step::Incomplete(need),
            Parsed::Invalid(e) => {
                resp::error(out, e.message().as_bytes());
                Step::Close
            }
        }
    }

    /// See [`crate::conn::Protocol::prefetch`]. The parse is kept for the
    /// step that runs the request.
    pub fn prefetch(&mut self, store: &Store, input: &[u8]) {
        if self.monitor.is_some() {
            return;
        }
        if self.front == 0 {
            match resp::parse(input, &Limits::DEFAULT, &mut self.args[0]) {
                Parsed::Complete(n, ()) => self.front = n,
                _ => return,
            }
        }
        if let Some(k) = table::first_key(&self.args[0].view(input)) {
            store.prefetch(k);
        }
    }

    pub fn monitor(&self) -> Option<&Queue> {
        self.monitor.as_ref()
    }

    pub fn enter_monitor(&mut self, queue: Queue) {
        self.front = 0;
        self.monitor = Some(queue);
    }
}
