//! Worker threads: one mio event loop each, owning its connections.
//!
//! Owns: the connection slots, scheduling (ready queue, per-turn budget,
//! fairness), the three-step loop turn, MONITOR subscription and
//! delivery, pub/sub delivery, connections parked in WAIT (answered when
//! replicas acknowledge or the deadline passes), handing a connection
//! that sent PSYNC to a replication thread, CLIENT KILL. Does not own:
//! accepting (the acceptor hands sockets over through [`WorkerHandle`]),
//! sockets, buffers and TLS
//! ([`crate::transport`]), or what the bytes mean (the connection's
//! [`Protocol`], which parses and runs requests through the command
//! table).
//!
//! A request's path: `fill` reads it into the transport's input buffer;
//! `execute` hands the buffered input to `Protocol::step`, which parses
//! it, runs it against the store and appends the reply to the output
//! buffer; `flush` writes the output. Hot-path rules kept here: one clock
//! read per loop turn; arguments are ranges into the input buffer;
//! replies go straight into the reused output buffer; one `write` per
//! batch. A loop turn runs each step over all ready connections before
//! the next: read them all, prefetch the first key of each, execute them
//! all, write them all (so cache misses of different clients overlap, and
//! a client woken by its reply does not preempt the next one's execution
//! on a shared CPU).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use mio::{Events, Interest, Poll, Token, Waker};
use pogocache_command::clients::ClientInfo;
use pogocache_command::conn::{Protocol, Step};
use pogocache_command::pubsub::Wake;
use pogocache_command::{Ctx, Session, Shared};

use crate::config::Config;
use crate::listener::Stream;
use crate::ticker::Stop;
use crate::transport::{Buffers, Flushed, Transport};

/// Requests one connection may run per loop turn before yielding to the
/// other ready connections on this thread.
pub const BUDGET: usize = 512;
const WAKER: Token = Token(usize::MAX);

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

/// One connection: its transport, the protocol it speaks (with that
/// protocol's state), and what every protocol's commands share.
struct Conn {
    io: Transport,
    id: u64,
    proto: Protocol,
    session: Session,
    scheduled: bool,
    /// The idle sweep this connection last ran requests in.
    active: u64,
}

/// What the read and execute steps of a visit left for the next step.
enum Ran {
    /// The slot is empty (closed earlier in this turn).
    Gone,
    Close,
    /// Replies are buffered; `true` if the input alone needs another turn.
    Again(bool),
    /// PSYNC: the socket goes to a replication thread.
    HandOff,
}

pub struct Worker {
    id: usize,
    poll: Poll,
    handle: WorkerHandle,
    shared: Arc<Shared>,
    stop: Arc<Stop>,
    /// Connection slots. Each connection is boxed: a slot costs 8 bytes,
    /// so growing the table for 20,000 clients does not leave thousands
    /// of empty 700-byte slots resident.
    conns: Vec<Option<Box<Conn>>>,
    free: Vec<usize>,
    pending: VecDeque<usize>,
    monitors: Vec<usize>,
    scratch: Vec<u8>,
    /// The read buffer and spare connection buffers.
    bufs: Buffers,
    queuesize: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections read this turn and still to be executed and written.
    ran: Vec<(usize, bool)>,
    /// Connections parked in WAIT.
    parked: Vec<usize>,
    /// Wakes this worker (pub/sub delivery, WAIT acknowledgements).
    wake: Wake,
    /// Counts idle sweeps; a connection records the sweep it last ran in.
    epoch: u64,
    /// When the last idle sweep ran (store clock).
    swept: i64,
}

/// How often connections that ran nothing since the last sweep give up
/// buffers grown for large values.
const SWEEP_NS: i64 = 1_000_000_000;

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
        let w = waker.clone();
        let wake: Wake = Arc::new(move || {
            let _ = w.wake();
        });
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
            scratch: Vec::new(),
            bufs: Buffers::default(),
            queuesize: config.queuesize,
            tls,
            ran: Vec::new(),
            parked: Vec::new(),
            wake,
            epoch: 0,
            swept: pogocache_store::clock::monotonic_ns(),
        })
    }

    pub fn handle(&self) -> WorkerHandle {
        self.handle.clone()
    }

    /// What wakes this worker from other threads.
    pub fn wake(&self) -> Wake {
        self.wake.clone()
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(self.queuesize);
        loop {
            let timeout = if !self.pending.is_empty() {
                Some(std::time::Duration::ZERO)
            } else if !self.parked.is_empty() {
                // A WAIT's deadline: look again at least this often.
                Some(std::time::Duration::from_millis(10))
            } else if self.free.len() < self.conns.len() {
                // Connections may hold grown buffers: sweep while idle.
                Some(std::time::Duration::from_nanos(SWEEP_NS as u64))
            } else {
                None
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
            if !self.parked.is_empty() {
                self.settle_waits(now);
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
                    Ran::Gone | Ran::HandOff => {}
                    Ran::Close => self.close(idx),
                    Ran::Again(again) => self.ran.push((idx, again)),
                }
            }
            // With input read on every ready connection, start loading the
            // bucket of each one's first key, so that without pipelining the
            // cache misses of different clients' requests overlap.
            if self.ran.len() > 1 {
                for &(idx, _) in &self.ran {
                    if let Some(Some(c)) = self.conns.get_mut(idx)
                        && c.io.runnable()
                    {
                        c.proto.prefetch(&self.shared.store, c.io.input());
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
                    Ran::HandOff => self.hand_off(idx),
                    Ran::Again(again) => {
                        self.ran[kept] = (idx, again);
                        kept += 1;
                    }
                }
            }
            self.ran.truncate(kept);
            // What this turn wrote goes to the replicas in one send each.
            self.shared.repl.kick();
            // Then all the writes, back to back: a client woken by one
            // reply does not preempt the execution of the next request.
            for i in 0..self.ran.len() {
                let (idx, again) = self.ran[i];
                match self.flush(idx, again) {
                    Ok(Flushed::Idle) => {}
                    Ok(Flushed::Again) => self.schedule(idx),
                    Ok(Flushed::Done) | Err(_) => self.close(idx),
                }
            }
            self.ran.clear();
            if now - self.swept >= SWEEP_NS {
                self.sweep(now);
            }
        }
    }

    /// Connections that ran nothing since the last sweep free buffers
    /// grown for large values (see [`Transport::release_grown`]).
    fn sweep(&mut self, now: i64) {
        for c in self.conns.iter_mut().flatten() {
            if c.active != self.epoch {
                c.io.release_grown();
            }
        }
        self.epoch += 1;
        self.swept = now;
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
            let plain_tcp = !tls_port && matches!(stream, Stream::Tcp(_));
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
            self.conns[idx] = Some(Box::new(Conn {
                io: Transport::new(stream, tls_port),
                id,
                proto: Protocol::Sniffing,
                session: Session {
                    authed: self.shared.settings.auth.is_empty(),
                    addr,
                    client: Some(client),
                    can_hand_off: plain_tcp,
                    ..Default::default()
                },
                scheduled: false,
                active: self.epoch,
            }));
            self.schedule(idx);
        }
    }

    fn deliver_monitor_output(&mut self) {
        let mut i = 0;
        while i < self.monitors.len() {
            let idx = self.monitors[i];
            i += 1;
            if let Some(Some(c)) = self.conns.get(idx)
                && c.io.pending_out() > pogocache_command::monitor::QUEUE_MAX
            {
                // A MONITOR or pub/sub client that stopped reading: close
                // it (Redis's output-buffer limit) rather than grow.
                self.close(idx);
                i -= 1;
                continue;
            }
            if let Some(Some(c)) = self.conns.get_mut(idx)
                && let Some(q) = c
                    .proto
                    .monitor()
                    .or(c.session.pubsub.as_ref().map(|s| &s.queue))
            {
                let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                c.io.out().extend_from_slice(&q);
                q.clear();
                drop(q);
                self.schedule(idx);
            }
        }
    }

    fn close(&mut self, idx: usize) {
        if let Some(c) = self.detach(idx) {
            self.shared.conns.curr.fetch_sub(1, Relaxed);
            self.shared.clients.remove(c.id);
        }
    }

    /// Takes connection `idx` out of this worker: its slot, its poll
    /// registration, its MONITOR and pub/sub subscriptions and a WAIT it
    /// was parked in. What stays is the socket and the client record
    /// (closed with it, or handed to a replication thread).
    fn detach(&mut self, idx: usize) -> Option<Box<Conn>> {
        let mut c = self.conns.get_mut(idx).and_then(|c| c.take())?;
        let _ = self.poll.registry().deregister(c.io.stream.source());
        if c.proto.monitor().is_some() {
            self.shared.monitor.unsubscribe(c.id);
        }
        if let Some(subs) = &c.session.pubsub {
            self.shared.pubsub.remove(c.id, subs);
        }
        self.monitors.retain(|&m| m != idx);
        if c.session.blocked.is_some() {
            self.shared.repl.park(false);
            self.parked.retain(|&p| p != idx);
        }
        self.free.push(idx);
        Some(c)
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

    /// Answers the WAITs whose replicas have acknowledged enough, or whose
    /// deadline passed, and lets their connections run again.
    fn settle_waits(&mut self, now: i64) {
        // A server that became a replica answers its WAITs at once (its
        // replicas were dropped; Redis unblocks them too).
        let replica = self.shared.repl.is_replica();
        let mut i = 0;
        while i < self.parked.len() {
            let idx = self.parked[i];
            let Some(Some(c)) = self.conns.get_mut(idx) else {
                self.parked.swap_remove(i);
                continue;
            };
            let Some(b) = c.session.blocked else {
                self.parked.swap_remove(i);
                continue;
            };
            let have = self.shared.repl.acked(b.target);
            if have >= b.need || b.deadline.is_some_and(|d| now >= d) || replica {
                c.session.blocked = None;
                self.shared.repl.park(false);
                pogocache_protocol::resp::int(c.io.out(), have as i64);
                self.parked.swap_remove(i);
                self.schedule(idx);
            } else {
                i += 1;
            }
        }
    }

    /// Gives a connection that sent PSYNC to a replication thread: its
    /// slot is freed here, the thread owns the socket (and the client
    /// record, and the connection count) from now on.
    fn hand_off(&mut self, idx: usize) {
        let Some(mut c) = self.detach(idx) else {
            return;
        };
        let psync = c.session.psync.take();
        let client = c.session.client.clone();
        let plain = c.io.into_plain();
        match (plain, psync, client) {
            (Some((Stream::Tcp(tcp), pending)), Some(req), Some(client)) => {
                let req = *req;
                use std::os::fd::{FromRawFd, IntoRawFd};
                // SAFETY: the descriptor comes from a mio stream that was
                // just taken apart, so it is open and owned by nobody else.
                let std_tcp = unsafe { std::net::TcpStream::from_raw_fd(tcp.into_raw_fd()) };
                self.shared
                    .repl
                    .serve(self.shared.clone(), std_tcp, pending, req, client);
            }
            (_, _, client) => {
                if let Some(info) = client {
                    self.shared.clients.remove(info.id);
                }
                self.shared.conns.curr.fetch_sub(1, Relaxed);
            }
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
        match c.io.fill(&mut self.bufs, self.tls.as_ref()) {
            Ok(again) => Ran::Again(again),
            Err(_) => Ran::Close,
        }
    }

    /// The second step of a visit (see [`Worker::fill`]): the
    /// connection's protocol runs what is buffered, one step at a time,
    /// until the input is used up or incomplete, the budget is spent, the
    /// output is over its high-water mark, or the connection must close
    /// or switch to TLS. This loop knows no protocol.
    fn execute(&mut self, idx: usize, now: i64, again: bool) -> Ran {
        let Some(Some(c)) = self.conns.get_mut(idx) else {
            return Ran::Gone;
        };
        if c.session.blocked.is_some() {
            // Parked in WAIT: nothing runs until it is settled.
            return Ran::Again(false);
        }
        let mut budget = BUDGET;
        c.active = self.epoch;
        c.io.ready_output(&mut self.bufs);
        let mut ctx = Ctx {
            shared: &self.shared,
            stats: &self.shared.workers[self.id],
            now,
            session: &mut c.session,
            scratch: &mut self.scratch,
            wake: Some(&self.wake),
        };
        while budget > 0 && c.io.runnable() {
            budget -= 1;
            let (input, out) = c.io.io();
            match c.proto.step(&mut ctx, input, out) {
                Step::Consumed(n) => c.io.consume(n),
                Step::Incomplete(need) => {
                    c.io.need(need);
                    break;
                }
                Step::Close => c.io.close_after_flush(),
                Step::StartTls(n) => {
                    c.io.consume(n);
                    c.io.tls_after_flush();
                }
                Step::Monitor(n) => {
                    c.io.consume(n);
                    let waker = self.handle.waker.clone();
                    let queue = self.shared.monitor.subscribe_queue(c.id, move || {
                        let _ = waker.wake();
                    });
                    c.proto.enter_monitor(queue);
                    self.monitors.push(idx);
                }
                Step::Mailbox(n) => {
                    c.io.consume(n);
                    if !self.monitors.contains(&idx) {
                        self.monitors.push(idx);
                    }
                }
                Step::Replica(n) => {
                    c.io.consume(n);
                    return Ran::HandOff;
                }
                Step::Block(n) => {
                    c.io.consume(n);
                    self.shared.repl.park(true);
                    self.parked.push(idx);
                    break;
                }
            }
        }
        if budget < BUDGET
            && let Some(info) = &c.session.client
        {
            // CLIENT LIST's idle time: one store per turn that ran requests.
            info.last.store(now, Relaxed);
        }
        c.io.settle_input(&mut self.bufs);
        Ran::Again(again || (budget == 0 && c.io.runnable()))
    }

    /// The third step of a visit (see [`Worker::fill`]): write the pending
    /// output and decide whether the connection needs another turn
    /// (`again`: what the first two steps found), can wait for readiness,
    /// or is done.
    fn flush(&mut self, idx: usize, again: bool) -> Result<Flushed, crate::transport::Broken> {
        let Some(Some(c)) = self.conns.get_mut(idx) else {
            return Ok(Flushed::Idle);
        };
        c.io.flush(&mut self.bufs, self.tls.as_ref(), again)
    }
}
