//! Worker threads: one mio event loop each, owning its connections.
//!
//! Owns: per-connection buffers and state machines, sniffing, the
//! read → parse → execute → write cycle, fairness, backpressure and
//! MONITOR delivery. Does not own: accepting (the acceptor hands sockets
//! over through [`WorkerHandle`]).
//!
//! Hot-path rules kept here: one clock read per loop turn; arguments are
//! ranges into the connection's input buffer; replies go straight into
//! the connection's reused output buffer; one `write` per batch. A loop
//! turn runs in steps over all ready connections: read them all, prefetch
//! the first key of each, execute them all, write them all (so cache
//! misses of different clients overlap, and a client woken by its reply
//! does not preempt the next one's execution on a shared CPU).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use mio::{Events, Interest, Poll, Token, Waker};
use pogocache_command::clients::ClientInfo;
use pogocache_command::postgres::{PgSession, Step as PgStep};
use pogocache_command::{Action, Ctx, RespReply, Session, Shared, execute};
use pogocache_protocol::sniff::{Proto, Sniff, sniff};
use pogocache_protocol::{Args, Limits, Parsed, http, memcache, resp};

use crate::config::Config;
use crate::listener::Stream;
use crate::ticker::Stop;
use crate::tls::{self, Tls};

/// Commands one connection may run per loop turn before yielding to the
/// other ready connections on this thread.
pub const BUDGET: usize = 512;
/// Bytes requested per `read`.
const READ_CHUNK: usize = 16 * 1024;
/// Unprocessed input we buffer before we stop reading (unless a single
/// request declares it needs more, up to the protocol limits).
const READ_CAP: usize = 1 << 20;
/// Pending output at which we stop executing this connection's requests
/// until the client reads.
const OUT_HIGH: usize = 1 << 20;
/// Buffers grown past this are released once drained.
const SHRINK_OVER: usize = 1 << 20;
/// MONITOR output a slow monitoring client may fall behind by before it
/// is disconnected.
const MONITOR_MAX: usize = 64 << 20;
const WAKER: Token = Token(usize::MAX);
/// Pipelined requests whose keys are prefetched ahead of execution.
const LOOKAHEAD: usize = 8;

/// An accepted connection on its way to a worker: stream, peer address,
/// came in on `--tlsport`, client id.
type Handoff = (Stream, String, bool, u64);

/// How the acceptor (and MONITOR feeds) reach a worker.
#[derive(Clone)]
pub struct WorkerHandle {
    pub waker: Arc<Waker>,
    inbox: Arc<Mutex<Vec<Handoff>>>,
}

impl WorkerHandle {
    /// Hands over an accepted connection (`tls_port`: it came in on
    /// `--tlsport`; `id`: its client id, in accept order).
    pub fn send(&self, stream: Stream, addr: String, tls_port: bool, id: u64) {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((stream, addr, tls_port, id));
        let _ = self.waker.wake();
    }
}

struct Conn {
    stream: Stream,
    id: u64,
    /// Input: valid bytes are `inbuf[start..end]`; `inbuf.len()` is the
    /// allocated (and initialised) size, so reads never re-zero memory.
    /// Allocated when the first bytes arrive; released when a drained
    /// buffer has grown past `SHRINK_OVER`.
    inbuf: Vec<u8>,
    start: usize,
    end: usize,
    /// Don't try to parse until this many bytes are buffered.
    need: usize,
    out: Vec<u8>,
    wpos: usize,
    proto: Option<Proto>,
    session: Session,
    args: Args,
    eof: bool,
    closing: bool,
    scheduled: bool,
    monitor: Option<Arc<Mutex<Vec<u8>>>>,
    /// Postgres session state, created on the first Postgres message.
    pg: Option<Box<PgSession>>,
    tls: Tls,
    /// Switch to TLS once the pending output (a Postgres `S`) is sent.
    tls_after_flush: bool,
}

/// What a visit decided once it has been written out.
enum Outcome {
    Idle,
    Again,
    Close,
}

/// What the read and execute steps of a visit left for the next step.
enum Ran {
    /// The slot is empty (closed earlier in this turn).
    Gone,
    Close,
    /// Replies are buffered; `true` if the input alone needs another turn.
    Again(bool),
}

pub struct Worker {
    id: usize,
    poll: Poll,
    handle: WorkerHandle,
    shared: Arc<Shared>,
    stop: Arc<Stop>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    pending: VecDeque<usize>,
    monitors: Vec<usize>,
    limits: Limits,
    scratch: Vec<u8>,
    /// Argument ranges for the prefetch look-ahead parse.
    look: Args,
    /// Read buffer for connections that have none yet.
    probe: Box<[u8]>,
    queuesize: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections read this turn and still to be executed and written.
    ran: Vec<(usize, bool)>,
}

impl Worker {
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        config: &Config,
        stop: Arc<Stop>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Worker> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Worker {
            id,
            poll,
            handle: WorkerHandle {
                waker,
                inbox: Default::default(),
            },
            shared,
            stop,
            conns: Vec::new(),
            free: Vec::new(),
            pending: VecDeque::new(),
            monitors: Vec::new(),
            limits: Limits::default(),
            scratch: Vec::new(),
            look: Args::new(),
            probe: vec![0; READ_CHUNK].into_boxed_slice(),
            queuesize: config.queuesize,
            tls,
            ran: Vec::new(),
        })
    }

    pub fn handle(&self) -> WorkerHandle {
        self.handle.clone()
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(self.queuesize);
        loop {
            let timeout = if self.pending.is_empty() {
                None
            } else {
                Some(std::time::Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                panic!("worker {} poll failed: {e}", self.id);
            }
            let now = pogocache_store::clock::monotonic_ns();
            let mut woke = false;
            for ev in events.iter() {
                if ev.token() == WAKER {
                    woke = true;
                } else {
                    self.schedule(ev.token().0);
                }
            }
            if woke {
                if self.stop.is_set() {
                    self.close_all();
                    return;
                }
                self.take_new_connections();
                self.deliver_monitor_output();
                if self.shared.clients.take_kills(self.id) {
                    self.close_killed();
                }
            }
            // One pass over everything ready now; connections that still
            // have work go to the back of the queue for the next turn.
            for _ in 0..self.pending.len() {
                let Some(idx) = self.pending.pop_front() else {
                    break;
                };
                match self.conns.get_mut(idx).and_then(|c| c.as_mut()) {
                    Some(c) => c.scheduled = false,
                    None => continue,
                }
                match self.fill(idx) {
                    Ran::Gone => {}
                    Ran::Close => self.close(idx),
                    Ran::Again(again) => self.ran.push((idx, again)),
                }
            }
            // With input read on every ready connection, start loading the
            // bucket of each one's first key, so that without pipelining the
            // cache misses of different clients' requests overlap.
            if self.ran.len() > 1 {
                for &(idx, _) in &self.ran {
                    if let Some(Some(c)) = self.conns.get(idx) {
                        prefetch_first(c, &self.shared.store, &self.limits, &mut self.look);
                    }
                }
            }
            // Then execute them all.
            let mut kept = 0;
            for i in 0..self.ran.len() {
                let (idx, again) = self.ran[i];
                match self.execute(idx, now, again) {
                    Ran::Gone => {}
                    Ran::Close => self.close(idx),
                    Ran::Again(again) => {
                        self.ran[kept] = (idx, again);
                        kept += 1;
                    }
                }
            }
            self.ran.truncate(kept);
            // Then all the writes, back to back: a client woken by one
            // reply does not preempt the execution of the next request.
            for i in 0..self.ran.len() {
                let (idx, again) = self.ran[i];
                match self.flush(idx, again) {
                    Outcome::Idle => {}
                    Outcome::Again => self.schedule(idx),
                    Outcome::Close => self.close(idx),
                }
            }
            self.ran.clear();
        }
    }

    fn schedule(&mut self, idx: usize) {
        if let Some(Some(c)) = self.conns.get_mut(idx)
            && !c.scheduled
        {
            c.scheduled = true;
            self.pending.push_back(idx);
        }
    }

    fn take_new_connections(&mut self) {
        let new = std::mem::take(&mut *self.handle.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        for (mut stream, addr, tls_port, id) in new {
            let idx = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            if self
                .poll
                .registry()
                .register(
                    stream.source(),
                    Token(idx),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                self.free.push(idx);
                self.shared.conns.curr.fetch_sub(1, Relaxed);
                continue;
            }
            let now = pogocache_store::clock::monotonic_ns();
            let client = Arc::new(ClientInfo::new(
                id,
                addr.clone(),
                stream.local_name(),
                self.id,
                now,
            ));
            self.shared.clients.register(client.clone());
            self.conns[idx] = Some(Conn {
                stream,
                id,
                inbuf: Vec::new(),
                start: 0,
                end: 0,
                need: 0,
                out: Vec::new(),
                wpos: 0,
                proto: None,
                session: Session {
                    authed: self.shared.settings.auth.is_empty(),
                    addr,
                    resp3: false,
                    client: Some(client),
                },
                args: Args::new(),
                eof: false,
                closing: false,
                scheduled: false,
                monitor: None,
                pg: None,
                tls: if tls_port { Tls::Sniff } else { Tls::Off },
                tls_after_flush: false,
            });
            self.schedule(idx);
        }
    }

    fn deliver_monitor_output(&mut self) {
        for i in 0..self.monitors.len() {
            let idx = self.monitors[i];
            if let Some(Some(c)) = self.conns.get_mut(idx)
                && let Some(q) = &c.monitor
            {
                let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                c.out.extend_from_slice(&q);
                q.clear();
                drop(q);
                self.schedule(idx);
            }
        }
    }

    fn close(&mut self, idx: usize) {
        if let Some(mut c) = self.conns.get_mut(idx).and_then(|c| c.take()) {
            let _ = self.poll.registry().deregister(c.stream.source());
            if c.monitor.is_some() {
                self.shared.monitor.unsubscribe(c.id);
                self.monitors.retain(|&m| m != idx);
            }
            self.shared.conns.curr.fetch_sub(1, Relaxed);
            self.shared.clients.remove(c.id);
            self.free.push(idx);
        }
    }

    /// Closes the connections CLIENT KILL marked (output is dropped, as
    /// Redis does).
    fn close_killed(&mut self) {
        for idx in 0..self.conns.len() {
            let killed = self.conns[idx]
                .as_ref()
                .and_then(|c| c.session.client.as_ref())
                .is_some_and(|i| i.kill.load(Relaxed));
            if killed {
                self.close(idx);
            }
        }
    }

    fn close_all(&mut self) {
        for idx in 0..self.conns.len() {
            self.close(idx);
        }
    }

    /// A visit of a connection has three steps, each run over all ready
    /// connections before the next: `fill` reads what is there,
    /// [`Worker::execute`] runs up to BUDGET requests into the output
    /// buffer, [`Worker::flush`] writes. Each step returns whether the
    /// connection must be closed, or whether its input alone already
    /// calls for another turn.
    fn fill(&mut self, idx: usize) -> Ran {
        let Some(Some(c)) = self.conns.get_mut(idx) else {
            return Ran::Gone;
        };
        let mut again = false;

        // Read.
        if !c.eof && !c.closing && c.out.len() - c.wpos < OUT_HIGH {
            let cap = READ_CAP.max(c.need);
            if let Tls::On(t) = &mut c.tls {
                match tls::pull(t, &mut c.stream, &mut c.inbuf, c.start, &mut c.end, cap) {
                    Ok(tls::Pulled::Ok) => {}
                    Ok(tls::Pulled::Eof) => c.eof = true,
                    Err(_) => return Ran::Close,
                }
                if c.end - c.start >= cap {
                    again = true;
                }
            } else {
                loop {
                    let buffered = c.end - c.start;
                    if buffered >= cap {
                        again = true;
                        break;
                    }
                    if c.inbuf.is_empty() {
                        // No buffer yet: read into the worker's, so a
                        // connection that never sends costs no buffer
                        // (10,000 idle clients must not pin 160 MiB).
                        match c.stream.read(&mut self.probe) {
                            Ok(0) => {
                                c.eof = true;
                                break;
                            }
                            Ok(n) => {
                                c.inbuf = vec![0; READ_CHUNK.max(n)];
                                c.inbuf[..n].copy_from_slice(&self.probe[..n]);
                                c.end = n;
                                if n < self.probe.len() {
                                    break;
                                }
                                continue;
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(_) => return Ran::Close,
                        }
                    }
                    if c.end == c.inbuf.len() {
                        make_room(c);
                    }
                    let space = c.inbuf.len() - c.end;
                    match c.stream.read(&mut c.inbuf[c.end..]) {
                        Ok(0) => {
                            c.eof = true;
                            break;
                        }
                        Ok(n) => {
                            c.end += n;
                            // A short read drained the socket: new data will
                            // raise a fresh edge, so skip the EAGAIN round trip
                            // (a third of all syscalls under pipelining).
                            if n < space {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Ran::Close,
                    }
                }
            }
        }

        // The TLS port: a ClientHello starts TLS; a Postgres SSLRequest
        // gets `S` first.
        if let Tls::Sniff = c.tls {
            let Some(config) = &self.tls else {
                return Ran::Close;
            };
            match tls::sniff(&c.inbuf[c.start..c.end]) {
                tls::SniffResult::NeedMore if c.eof => return Ran::Close,
                tls::SniffResult::NeedMore => {}
                tls::SniffResult::Reject => return Ran::Close,
                tls::SniffResult::PgSslRequest => {
                    c.start += 8;
                    c.out.push(b'S');
                    c.tls_after_flush = true;
                    c.tls = Tls::Off;
                }
                tls::SniffResult::Handshake => {
                    let Ok(mut t) = tls::start(config) else {
                        return Ran::Close;
                    };
                    let mut hello = &c.inbuf[c.start..c.end];
                    while !hello.is_empty() {
                        if t.read_tls(&mut hello).is_err() {
                            return Ran::Close;
                        }
                    }
                    if t.process_new_packets().is_err() {
                        let _ = t.write_tls(&mut c.stream);
                        return Ran::Close;
                    }
                    c.start = 0;
                    c.end = 0;
                    c.tls = Tls::On(t);
                    again = true;
                }
            }
        }

        Ran::Again(again)
    }

    /// The second step of a visit (see [`Worker::fill`]).
    fn execute(&mut self, idx: usize, now: i64, again: bool) -> Ran {
        let Some(Some(c)) = self.conns.get_mut(idx) else {
            return Ran::Gone;
        };
        let mut again = again;
        let mut budget = BUDGET;
        // Input before this offset has had its keys prefetched.
        let mut ahead = 0;
        let stats = &self.shared.workers[self.id];
        // The look-ahead prefetch of a pipeline (a macro for the same
        // reason as `ctx!` below).
        macro_rules! prefetch_ahead {
            ($proto:expr, $data:expr, $n:expr) => {
                prefetch_ahead(
                    $proto,
                    $data,
                    $n,
                    c.start,
                    &mut ahead,
                    &self.shared.store,
                    &self.limits,
                    &mut self.look,
                )
            };
        }
        // The command context, borrowing this connection's session and the
        // worker's scratch buffer (a macro: the borrows are of distinct
        // fields, which a helper function could not express).
        macro_rules! ctx {
            () => {
                Ctx {
                    shared: &self.shared,
                    stats,
                    now,
                    session: &mut c.session,
                    scratch: &mut self.scratch,
                }
            };
        }
        while !c.closing
            && !c.tls_after_flush
            && !matches!(c.tls, Tls::Sniff)
            && c.out.len() - c.wpos < OUT_HIGH
        {
            let data = &c.inbuf[c.start..c.end];
            if data.is_empty() || data.len() < c.need {
                break;
            }
            if budget == 0 {
                again = true;
                break;
            }
            budget -= 1;
            let proto = match c.proto {
                Some(p) => p,
                None => match sniff(data) {
                    Sniff::Decided(p) => {
                        c.proto = Some(p);
                        p
                    }
                    Sniff::NeedMore => {
                        c.need = data.len() + 1;
                        break;
                    }
                    Sniff::Reject => {
                        c.out.extend_from_slice(b"-ERROR\r\n");
                        c.closing = true;
                        break;
                    }
                },
            };
            match proto {
                Proto::Resp => match resp::parse(data, &self.limits, &mut c.args) {
                    Parsed::Complete(n) => {
                        c.need = 0;
                        stats.detail.requests[0].incr();
                        // More requests are buffered behind this one: parse
                        // ahead and start their bucket loads, so the cache
                        // misses of a pipeline overlap instead of queueing.
                        // A lone request (no pipelining) skips this.
                        if n < data.len() {
                            prefetch_ahead!(Proto::Resp, data, n);
                        }
                        let args = c.args.view(data);
                        if !args.is_empty() {
                            if c.monitor.is_some() {
                                if args.get(0).eq_ignore_ascii_case(b"ping") {
                                    c.out.extend_from_slice(b"+PONG\r\n");
                                } else {
                                    c.closing = true;
                                }
                            } else {
                                let mut ctx = ctx!();
                                let resp3 = ctx.session.resp3;
                                match execute(
                                    &mut ctx,
                                    args,
                                    &mut RespReply::new(&mut c.out, resp3),
                                ) {
                                    Action::Continue => {}
                                    Action::Close => c.closing = true,
                                    Action::Monitor => {
                                        let q = Arc::new(Mutex::new(Vec::new()));
                                        c.monitor = Some(q.clone());
                                        let waker = self.handle.waker.clone();
                                        self.shared.monitor.subscribe(
                                            c.id,
                                            Box::new(move |line| {
                                                let mut q =
                                                    q.lock().unwrap_or_else(|e| e.into_inner());
                                                if q.len() > MONITOR_MAX {
                                                    return false;
                                                }
                                                let was_empty = q.is_empty();
                                                q.extend_from_slice(line);
                                                if was_empty {
                                                    let _ = waker.wake();
                                                }
                                                true
                                            }),
                                        );
                                        self.monitors.push(idx);
                                    }
                                }
                            }
                        }
                        c.start += n;
                    }
                    Parsed::Incomplete { need } => {
                        c.need = need;
                        break;
                    }
                    Parsed::Invalid(e) => {
                        resp::error(&mut c.out, e.message().as_bytes());
                        c.closing = true;
                    }
                },
                Proto::Memcache => match memcache::parse(data) {
                    memcache::Parsed::Done(n, req) => {
                        stats.detail.requests[1].incr();
                        // Prefetch the keys of pipelined requests behind
                        // this one (as for RESP above).
                        if n < data.len() {
                            prefetch_ahead!(Proto::Memcache, data, n);
                        }
                        let mut ctx = ctx!();
                        if pogocache_command::memcache::execute(&mut ctx, &req, &mut c.out)
                            == Action::Close
                        {
                            c.closing = true;
                        }
                        c.need = 0;
                        c.start += n;
                    }
                    memcache::Parsed::Incomplete { need } => {
                        c.need = need;
                        break;
                    }
                    memcache::Parsed::LineTooLong => {
                        c.out.extend_from_slice(b"CLIENT_ERROR line too long\r\n");
                        c.closing = true;
                    }
                },
                Proto::Http => match http::parse(data) {
                    http::Parsed::Done(n, req) => {
                        stats.detail.requests[2].incr();
                        let mut ctx = ctx!();
                        if pogocache_command::http::execute(&mut ctx, &req, &mut c.out)
                            == Action::Close
                        {
                            c.closing = true;
                        }
                        c.need = 0;
                        c.start += n;
                    }
                    http::Parsed::Incomplete { need } => {
                        c.need = need;
                        break;
                    }
                    http::Parsed::Invalid(r) => {
                        if r == http::Reject::TooLarge {
                            stats.store_too_large.incr();
                        }
                        let (code, reason) = r.status();
                        let body = format!("{reason}\r\n");
                        http::response(&mut c.out, code, reason, body.as_bytes(), false);
                        c.closing = true;
                    }
                },
                Proto::Postgres => {
                    let sess = c.pg.get_or_insert_with(Default::default);
                    let mut ctx = ctx!();
                    match sess.step(&mut ctx, data, &mut c.out) {
                        PgStep::Incomplete(need) => {
                            c.need = need;
                            break;
                        }
                        PgStep::Consumed(n) => {
                            stats.detail.requests[3].incr();
                            c.need = 0;
                            c.start += n;
                        }
                        PgStep::Close => c.closing = true,
                        PgStep::StartTls(n) => {
                            c.start += n;
                            c.tls_after_flush = true;
                            break;
                        }
                    }
                }
            }
        }
        if budget < BUDGET
            && let Some(info) = &c.session.client
        {
            // CLIENT LIST's idle time: one store per turn that ran requests.
            info.last.store(now, Relaxed);
        }
        if c.start == c.end {
            c.start = 0;
            c.end = 0;
            if c.inbuf.len() > SHRINK_OVER {
                c.inbuf = Vec::new();
            }
        }

        Ran::Again(again)
    }

    /// The third step of a visit (see [`Worker::fill`]): write the pending
    /// output and decide whether the connection needs another turn
    /// (`again`: what the first two steps found), can wait for readiness,
    /// or is done.
    fn flush(&mut self, idx: usize, again: bool) -> Outcome {
        let Some(Some(c)) = self.conns.get_mut(idx) else {
            return Outcome::Idle;
        };
        let mut again = again;
        // Write.
        let drained = if let Tls::On(t) = &mut c.tls {
            match tls::push(t, &mut c.stream, &c.out, &mut c.wpos) {
                Ok(done) => done,
                Err(_) => return Outcome::Close,
            }
        } else {
            while c.wpos < c.out.len() {
                match c.stream.write(&c.out[c.wpos..]) {
                    Ok(0) => return Outcome::Close,
                    Ok(n) => c.wpos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Outcome::Close,
                }
            }
            c.wpos == c.out.len()
        };
        if drained {
            // The `S` of a Postgres SSLRequest is out in plain text: the
            // client's ClientHello comes next.
            if c.tls_after_flush {
                c.tls_after_flush = false;
                match &self.tls {
                    Some(config) => match tls::start(config) {
                        Ok(t) => c.tls = Tls::On(t),
                        Err(_) => return Outcome::Close,
                    },
                    None => return Outcome::Close,
                }
                again = true;
            }
            c.out.clear();
            c.wpos = 0;
            if c.out.capacity() > SHRINK_OVER {
                c.out = Vec::new();
            }
        }
        if c.closing && drained {
            return Outcome::Close;
        }
        if c.eof && drained && (c.end - c.start < c.need.max(1) || c.closing) {
            return Outcome::Close;
        }
        // Requests still buffered (held back by the budget, by output
        // backpressure that has now cleared, or by EOF) need another turn.
        let buffered = c.end - c.start;
        if buffered > 0 && buffered >= c.need {
            again = true;
        }
        if drained && again {
            Outcome::Again
        } else {
            Outcome::Idle
        }
    }
}

/// Length and key of the complete request at the front of `data`, for
/// prefetching: RESP's second argument, Memcache's first key. `None` if
/// no complete request is there.
fn front_key<'d>(
    proto: Proto,
    data: &'d [u8],
    limits: &Limits,
    look: &'d mut Args,
) -> Option<(usize, Option<&'d [u8]>)> {
    match proto {
        Proto::Resp => {
            let Parsed::Complete(m) = resp::parse(data, limits, look) else {
                return None;
            };
            let a = look.view(data);
            // The key positions come from the command table.
            Some((m, pogocache_command::table::first_key(&a)))
        }
        Proto::Memcache => match memcache::parse(data) {
            memcache::Parsed::Done(m, r) => Some((m, r.first_key())),
            _ => None,
        },
        _ => None,
    }
}

/// Prefetches the bucket of the key of the first request buffered on `c`
/// (RESP and Memcache; a no-op until the protocol is known).
fn prefetch_first(c: &Conn, store: &pogocache_store::Store, limits: &Limits, look: &mut Args) {
    let data = &c.inbuf[c.start..c.end];
    if data.is_empty() || data.len() < c.need || matches!(c.tls, Tls::Sniff) {
        return;
    }
    if let Some(proto) = c.proto
        && let Some((_, Some(k))) = front_key(proto, data, limits, look)
    {
        store.prefetch(k);
    }
}

/// Called while the request ending at `n` runs with more requests
/// buffered behind it (`data` starts at buffer offset `start`): starts
/// loading the entry of the next request (its bucket was prefetched
/// earlier), and, once the window `ahead` is used up, the buckets of up to
/// [`LOOKAHEAD`] more, so the cache misses of a pipeline overlap instead
/// of queueing.
#[allow(clippy::too_many_arguments)]
fn prefetch_ahead(
    proto: Proto,
    data: &[u8],
    n: usize,
    start: usize,
    ahead: &mut usize,
    store: &pogocache_store::Store,
    limits: &Limits,
    look: &mut Args,
) {
    if *ahead <= start + n {
        let mut pos = n;
        for _ in 0..LOOKAHEAD {
            let Some((m, k)) = front_key(proto, &data[pos..], limits, look) else {
                break;
            };
            if let Some(k) = k {
                store.prefetch(k);
            }
            pos += m;
            if pos == data.len() {
                break;
            }
        }
        *ahead = start + pos;
    }
    if let Some((_, Some(k))) = front_key(proto, &data[n..], limits, look) {
        store.prefetch_entry(k);
    }
}

/// Frees space at the end of the input buffer: moves unprocessed bytes to
/// the front, and doubles the buffer when that is not enough. Growth
/// follows the bytes actually received, never a length the client merely
/// declared, so `$536870000` followed by silence costs nothing.
fn make_room(c: &mut Conn) {
    if c.start > 0 {
        c.inbuf.copy_within(c.start..c.end, 0);
        c.end -= c.start;
        c.start = 0;
    }
    if c.end == c.inbuf.len() {
        let want = (c.inbuf.len() * 2).max(READ_CHUNK);
        c.inbuf.resize(want, 0);
    }
}
