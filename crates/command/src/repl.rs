//! Replication: asynchronous primary → replica streaming of every store
//! mutation, whatever protocol made it, with Redis's replication ids,
//! offsets, backlog and partial resynchronisation.
//!
//! Owns: the replication state (role, replication ids and offsets, the
//! backlog), the stream's encoding, serving replicas (full sync from a
//! snapshot in the persistence format, then the stream; partial resync
//! from the backlog), the replica's link to its primary (handshake,
//! loading, applying, acknowledging, reconnecting), `REPLICAOF`,
//! `REPLCONF`, `PSYNC`, `ROLE`, `WAIT`'s counting and the replication
//! fields of INFO. Does not own: which mutations happen (the store
//! reports them through [`Journal`], under the key's shard lock), sockets
//! of ordinary clients (the server hands a replica's socket over after
//! `PSYNC`) or parking a connection in WAIT (the server's worker).
//!
//! ## The stream
//!
//! RESP arrays, so offsets count bytes exactly as Redis's do, but not
//! Redis commands: each mutation is the key's whole new state, with its
//! expiry as an absolute wall-clock time on the primary's clock, so it
//! does not matter which protocol made it and applying one twice is
//! harmless:
//!
//! - `RSET key value flags expires_unix_ns stale` (0: no expiry),
//! - `RDEL key` (deleted, evicted, dropped by a cluster reload),
//! - `FLUSHALL`,
//! - `RTIME unix_ns`: the primary's clock, once a second while replicas
//!   are attached. A replica converts expiry times with the last one it
//!   received, so it expires keys when the primary does, whatever its
//!   own clock says.
//!
//! Because every mutation is a whole state, a full sync does not need a
//! frozen copy of the store: the primary notes its offset, then writes a
//! snapshot shard by shard while it keeps serving; whatever changed after
//! the offset is in the snapshot and again in the stream that follows,
//! and replaying it is harmless.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use pogocache_protocol::{ArgView, Args, Limits, Parsed, resp};
use pogocache_store::clock::{monotonic_ns, wall_ns};
use pogocache_store::{Journal, Mutation};

use crate::clients::{ClientInfo, Kind};
use crate::pubsub::Wake;
use crate::{Ctx, Reply, Shared, eq_ic, err, log, parse_i64_strict};

/// Redis's default `repl-backlog-size`.
pub const DEFAULT_BACKLOG: usize = 1 << 20;
/// How often a primary sends its clock, and a replica its offset when
/// nothing else made it ack.
const TICK: Duration = Duration::from_secs(1);
/// A link silent this long is taken as dead (Redis's `repl-timeout`).
const TIMEOUT_NS: i64 = 60_000_000_000;
/// Stream bytes kept for a replica that has not been sent them yet (Redis's
/// default hard limit of a replica's output buffer).
const LIVE_MAX: usize = 256 << 20;
/// Bytes a sender copies out of the backlog per write.
const CHUNK: usize = 1 << 20;
const READONLY: &[u8] = b"READONLY You can't write against a read only replica.";

/// A replica attached to this server.
struct Downstream {
    ip: String,
    port: u16,
    /// Offset the replica acknowledged.
    ack: AtomicU64,
    /// Offset sent to it so far (the backlog keeps what is past this).
    sent: AtomicU64,
    /// Monotonic ns of its last acknowledgement.
    last_ack: AtomicI64,
    /// Past the snapshot: streaming.
    online: AtomicBool,
    dead: AtomicBool,
}

/// This server's link to its primary, while it is a replica.
struct Upstream {
    host: String,
    port: u16,
    up: bool,
    syncing: bool,
    /// Monotonic ns of the last bytes from the primary.
    last_io: i64,
    /// Monotonic ns the link went down (0: never up yet).
    down_since: i64,
    /// The socket, so REPLICAOF can cut a blocked read short.
    sock: Option<TcpStream>,
}

struct State {
    replid: String,
    /// The previous primary's id, valid up to `second_offset`, after a
    /// promotion (so that the other replicas can continue).
    replid2: String,
    second_offset: i64,
    /// Bytes of stream ever produced (or applied, on a replica).
    offset: u64,
    backlog: VecDeque<u8>,
    backlog_size: usize,
    /// Journaling has started (the first replica came, or this server
    /// was a replica): the backlog is kept.
    active: bool,
    scratch: Vec<u8>,
    replicas: Vec<Arc<Downstream>>,
    upstream: Option<Upstream>,
    /// Bumped by every REPLICAOF, so a superseded link thread stops.
    generation: u64,
    /// A replica whose data may not match its offset (a malformed
    /// stream, an interrupted load) must full-sync next time.
    need_full: bool,
    primary_auth: Option<Vec<u8>>,
    read_only: bool,
    priority: u32,
    /// `primary wall ns - local monotonic ns`, from the last RTIME.
    clock: i64,
    /// The primary asked for an acknowledgement (REPLCONF GETACK).
    ack_asked: bool,
    sync_full: u64,
    sync_partial_ok: u64,
    sync_partial_err: u64,
}

impl State {
    fn first_byte(&self) -> u64 {
        self.offset - self.backlog.len() as u64
    }

    /// Appends stream bytes (from `scratch`) to the backlog.
    fn append_scratch(&mut self) {
        let n = self.scratch.len();
        self.backlog.extend(self.scratch.iter().copied());
        self.scratch.clear();
        self.offset += n as u64;
        let mut over = self.backlog.len().saturating_sub(self.backlog_size);
        if over > 0 {
            // Keep what an attached replica has not been sent yet (its
            // output buffer, in Redis's terms), up to LIVE_MAX: past that
            // it is dropped and resyncs.
            let first = self.first_byte();
            if let Some(oldest) = self.live().map(|r| r.sent.load(Ordering::Relaxed)).min() {
                over = over.min(oldest.saturating_sub(first) as usize);
            }
            // Past LIVE_MAX, only replicas that far behind lose their place.
            over = over.max(self.backlog.len().saturating_sub(LIVE_MAX));
            self.backlog.drain(..over);
            let keep = self.backlog.len().max(self.backlog_size);
            if self.backlog.capacity() > 4 * keep && self.backlog.capacity() > 64 << 20 {
                self.backlog.shrink_to(2 * keep);
            }
        }
    }

    fn is_replica(&self) -> bool {
        self.upstream.is_some()
    }

    /// The attached replicas whose link is still up.
    fn live(&self) -> impl Iterator<Item = &Arc<Downstream>> {
        self.replicas
            .iter()
            .filter(|r| !r.dead.load(Ordering::Relaxed))
    }
}

/// The server's replication state. One per server, in [`Shared`].
pub struct Replication {
    st: Mutex<State>,
    /// New stream bytes, acknowledgements, role changes.
    cv: Condvar,
    /// 40 hex digits, new every start (INFO's `run_id`, which Sentinel
    /// uses to notice restarts).
    pub run_id: String,
    /// Writes are refused (a read-only replica); read on every write.
    refuse: AtomicBool,
    /// Stream bytes were added since the senders were last woken (see
    /// [`Replication::kick`]).
    pending: AtomicBool,
    /// Connections parked in WAIT, and the wakers of their workers.
    parked: AtomicUsize,
    wakers: OnceLock<Vec<Wake>>,
    /// Our own `--port`, announced to a primary.
    port: u16,
}

fn random_hex40() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::with_capacity(40);
    while s.len() < 40 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(monotonic_ns());
        h.write_usize(s.len());
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s.truncate(40);
    s
}

impl Replication {
    pub fn new(port: u16, backlog_size: usize) -> Replication {
        Replication {
            st: Mutex::new(State {
                replid: random_hex40(),
                replid2: "0".repeat(40),
                second_offset: -1,
                offset: 0,
                backlog: VecDeque::new(),
                backlog_size: backlog_size.max(16 * 1024),
                active: false,
                scratch: Vec::new(),
                replicas: Vec::new(),
                upstream: None,
                generation: 0,
                need_full: false,
                primary_auth: None,
                read_only: true,
                priority: 100,
                clock: 0,
                ack_asked: false,
                sync_full: 0,
                sync_partial_ok: 0,
                sync_partial_err: 0,
            }),
            cv: Condvar::new(),
            run_id: random_hex40(),
            refuse: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            parked: AtomicUsize::new(0),
            wakers: OnceLock::new(),
            port,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The password a replica gives its primary (`--primaryauth`,
    /// `CONFIG SET masterauth`).
    pub fn set_primary_auth(&self, pass: Option<Vec<u8>>) {
        self.lock().primary_auth = pass;
    }

    /// Whether a replica refuses client writes (`--replica-read-only`).
    pub fn set_read_only(&self, on: bool) {
        let mut st = self.lock();
        st.read_only = on;
        self.refuse.store(on && st.is_replica(), Ordering::Relaxed);
    }

    /// Read-only flag, priority and backlog size (CONFIG GET).
    pub fn settings(&self) -> (bool, u32, usize) {
        let st = self.lock();
        (st.read_only, st.priority, st.backlog_size)
    }

    pub fn set_priority(&self, p: u32) {
        self.lock().priority = p;
    }

    pub fn set_backlog_size(&self, n: usize) {
        // The next append trims to it, keeping what attached replicas have
        // not been sent yet.
        self.lock().backlog_size = n.max(16 * 1024);
    }

    /// The workers' wakers, for WAIT (set once by the server).
    pub fn set_wakers(&self, w: Vec<Wake>) {
        let _ = self.wakers.set(w);
    }

    /// True on a read-only replica: every protocol's writes are refused.
    #[inline]
    pub fn refuses_writes(&self) -> bool {
        self.refuse.load(Ordering::Relaxed)
    }

    pub fn is_replica(&self) -> bool {
        self.lock().is_replica()
    }

    /// The current offset (what WAIT waits for replicas to reach).
    pub fn offset(&self) -> u64 {
        self.lock().offset
    }

    /// Wakes the replica senders if the stream grew since the last kick.
    /// Why not on every write: a worker calls this once per loop turn, so
    /// a turn's writes reach each replica in one send, as Redis sends once
    /// per event-loop iteration; the ticker calls it too, for mutations
    /// made outside the workers.
    #[inline]
    pub fn kick(&self) {
        if self.pending.load(Ordering::Relaxed) && self.pending.swap(false, Ordering::Relaxed) {
            self.cv.notify_all();
        }
    }

    /// Asks every replica to acknowledge its offset now (`REPLCONF GETACK
    /// *` in the stream, as Redis does for WAIT); otherwise replicas
    /// acknowledge once a second.
    pub fn request_acks(&self) {
        let mut st = self.lock();
        if st.active && !st.is_replica() && !st.replicas.is_empty() {
            resp::request(&mut st.scratch, &[b"REPLCONF", b"GETACK", b"*"]);
            st.append_scratch();
            self.pending.store(true, Ordering::Relaxed);
        }
    }

    /// Replicas whose acknowledged offset is at least `target`.
    pub fn acked(&self, target: u64) -> usize {
        self.lock()
            .replicas
            .iter()
            .filter(|r| r.ack.load(Ordering::Relaxed) >= target)
            .count()
    }

    /// A connection parks in WAIT (`true`) or leaves it (`false`).
    pub fn park(&self, on: bool) {
        if on {
            self.parked.fetch_add(1, Ordering::Relaxed);
        } else {
            self.parked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn acks_moved(&self) {
        if self.parked.load(Ordering::Relaxed) > 0
            && let Some(w) = self.wakers.get()
        {
            for f in w {
                f();
            }
        }
    }

    /// Starts the backlog (and the store's journal) if it is not kept yet.
    fn activate(&self, st: &mut State, shared: &Shared) {
        if !st.active {
            st.active = true;
            if !st.is_replica() {
                shared.store.set_journaling(true);
            }
        }
    }

    /// Once a second: the primary's clock into the stream while replicas
    /// are attached, and dead links dropped.
    pub fn tick(&self) {
        let mut st = self.lock();
        st.replicas.retain(|r| !r.dead.load(Ordering::Relaxed));
        if st.active && !st.is_replica() && !st.replicas.is_empty() {
            let t = wall_ns().to_string();
            resp::request(&mut st.scratch, &[b"RTIME", t.as_bytes()]);
            st.append_scratch();
            self.cv.notify_all();
        }
    }

    // ------------------------------------------------------------ saving

    /// Saves the store to `path` and, beside it (`path.repl`), the
    /// replication id and the offset the snapshot is at least as new as,
    /// so that a restarted replica continues with a partial resync, and a
    /// restarted primary can still be continued from. The offset is read
    /// before the snapshot starts: what changes during it is replayed by
    /// the stream, harmlessly.
    pub fn save(
        &self,
        store: &pogocache_store::Store,
        path: &Path,
    ) -> io::Result<pogocache_persist::Stats> {
        let (replid, offset, trusted) = {
            let st = self.lock();
            let syncing = st.upstream.as_ref().is_some_and(|u| u.syncing);
            (st.replid.clone(), st.offset, !st.need_full && !syncing)
        };
        let stats = pogocache_persist::save(store, path)?;
        let side = side_path(path);
        if !trusted {
            // The data does not match any offset (a full sync was under
            // way): no saved position, so a restart full-syncs.
            let _ = std::fs::remove_file(&side);
            return Ok(stats);
        }
        let mut tmp = side.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, format!("{replid} {offset}\n"))?;
        std::fs::rename(&tmp, &side)?;
        Ok(stats)
    }

    /// After a snapshot was loaded at start: take the replication id and
    /// offset saved with it, if any. A replica (`as_replica`) asks its
    /// primary to continue from them. A primary, as Redis does, starts a
    /// new history that continues the saved one: a new id, the saved one
    /// as its second id valid up to the saved offset, and its backlog
    /// running from there, so a replica exactly at that offset continues
    /// and one that had more (from before a crash) full-syncs.
    pub fn restore_saved(&self, path: &Path, store: &pogocache_store::Store, as_replica: bool) {
        let Ok(text) = std::fs::read_to_string(side_path(path)) else {
            return;
        };
        let mut it = text.split_whitespace();
        if let (Some(id), Some(off)) = (it.next(), it.next().and_then(|o| o.parse::<u64>().ok()))
            && id.len() == 40
            && id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let mut st = self.lock();
            st.offset = off;
            if as_replica {
                st.replid = id.to_string();
            } else {
                st.replid2 = id.to_string();
                st.second_offset = off as i64 + 1;
                st.active = true;
                store.set_journaling(true);
            }
        }
    }

    // ------------------------------------------------------------ role

    /// `REPLICAOF host port` (or `--replicaof`): follow a primary. Starts
    /// the link thread; returns at once.
    pub fn follow(self: &Arc<Self>, shared: &Arc<Shared>, host: String, port: u16) {
        let mut st = self.lock();
        if let Some(u) = &st.upstream
            && u.host == host
            && u.port == port
        {
            return;
        }
        cut(&mut st);
        st.generation += 1;
        st.active = true;
        st.upstream = Some(Upstream {
            host: host.clone(),
            port,
            up: false,
            syncing: false,
            last_io: 0,
            down_since: monotonic_ns(),
            sock: None,
        });
        // Replicas of ours follow the new primary through us: drop them,
        // they reconnect and continue (Redis disconnects them too).
        for r in st.replicas.drain(..) {
            r.dead.store(true, Ordering::Relaxed);
        }
        shared.store.set_journaling(false);
        self.refuse.store(st.read_only, Ordering::Relaxed);
        let generation = st.generation;
        drop(st);
        self.cv.notify_all();
        log::line(format_args!("* Connecting to MASTER {host}:{port}"));
        let me = self.clone();
        let shared = shared.clone();
        let _ = std::thread::Builder::new()
            .name("pogocache-replica".into())
            .spawn(move || me.link(&shared, generation));
    }

    /// `REPLICAOF NO ONE`: become a primary. The replication id becomes a
    /// new one and the old one is kept as the second id, valid up to the
    /// current offset, so the other replicas of the old primary continue
    /// from us with a partial resync.
    pub fn promote(&self, shared: &Shared) {
        let mut st = self.lock();
        if !st.is_replica() {
            return;
        }
        cut(&mut st);
        st.generation += 1;
        let old = std::mem::replace(&mut st.replid, random_hex40());
        if st.need_full || st.upstream.as_ref().is_some_and(|u| u.syncing) {
            // Promoted in the middle of a full sync: the data matches no
            // offset of the old history, so no one may continue it.
            st.replid2 = "0".repeat(40);
            st.second_offset = -1;
        } else {
            st.replid2 = old;
            st.second_offset = st.offset as i64 + 1;
        }
        st.upstream = None;
        st.active = true;
        shared.store.set_journaling(true);
        self.refuse.store(false, Ordering::Relaxed);
        drop(st);
        self.cv.notify_all();
        log::line(format_args!(
            "* MASTER MODE enabled (user request from REPLICAOF NO ONE)"
        ));
    }

    /// Stops the link to the primary (shutdown), so that the final
    /// snapshot matches the offset saved with it.
    pub fn stop(&self) {
        let mut st = self.lock();
        cut(&mut st);
        st.generation += 1;
        for r in &st.replicas {
            r.dead.store(true, Ordering::Relaxed);
        }
        drop(st);
        self.cv.notify_all();
    }
}

/// Closes the socket to the primary, if any (the link thread then sees
/// its read fail and that its generation is over).
fn cut(st: &mut State) {
    if let Some(u) = &mut st.upstream
        && let Some(s) = u.sock.take()
    {
        let _ = s.shutdown(Shutdown::Both);
    }
}

fn side_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".repl");
    PathBuf::from(p)
}

impl Journal for Replication {
    fn record(&self, m: Mutation<'_>) {
        let mut st = self.lock();
        if !st.active || st.is_replica() {
            return;
        }
        match m {
            Mutation::Set {
                key,
                value,
                flags,
                expires,
                stale,
            } => {
                let exp = match expires {
                    Some(t) => (t - monotonic_ns() + wall_ns()).max(1),
                    None => 0,
                };
                let (mut fb, mut eb) = (itoa::Buffer::new(), itoa::Buffer::new());
                let stale: &[u8] = if stale { b"1" } else { b"0" };
                resp::request(
                    &mut st.scratch,
                    &[
                        b"RSET",
                        key,
                        value,
                        fb.format(flags).as_bytes(),
                        eb.format(exp).as_bytes(),
                        stale,
                    ],
                );
            }
            Mutation::Del { key } => resp::request(&mut st.scratch, &[b"RDEL", key]),
            Mutation::Clear => resp::request(&mut st.scratch, &[b"FLUSHALL"]),
        }
        st.append_scratch();
        drop(st);
        self.pending.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------- primary

/// What a replica asked for with PSYNC.
#[derive(Clone, Debug)]
pub struct Psync {
    pub replid: String,
    pub offset: i64,
    /// Its `REPLCONF listening-port`.
    pub port: u16,
}

impl Replication {
    /// Serves a replica on its own thread: the socket is this server's
    /// side of a connection that sent PSYNC; `pending` is output still to
    /// be written to it before the sync reply.
    pub fn serve(
        self: &Arc<Self>,
        shared: Arc<Shared>,
        mut sock: TcpStream,
        pending: Vec<u8>,
        req: Psync,
        client: Arc<ClientInfo>,
    ) {
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("pogocache-repl-out".into())
            .spawn(move || {
                let _ = sock.set_nonblocking(false);
                let _ = sock.set_nodelay(true);
                // A replica that stops reading is dropped, not waited on.
                let _ = sock.set_write_timeout(Some(Duration::from_nanos(TIMEOUT_NS as u64)));
                let ip = sock
                    .peer_addr()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                client.set_kind(Kind::Replica);
                let link = Arc::new(Downstream {
                    ip,
                    port: req.port,
                    ack: AtomicU64::new(0),
                    sent: AtomicU64::new(u64::MAX),
                    last_ack: AtomicI64::new(monotonic_ns()),
                    online: AtomicBool::new(false),
                    dead: AtomicBool::new(false),
                });
                if let Err(e) = me.feed(&shared, &mut sock, &pending, &req, &link, &client) {
                    log::line(format_args!(
                        "# Connection with replica {}:{} lost: {e}",
                        link.ip, link.port
                    ));
                }
                link.dead.store(true, Ordering::Relaxed);
                let _ = sock.shutdown(Shutdown::Both);
                me.lock().replicas.retain(|r| !Arc::ptr_eq(r, &link));
                shared.clients.remove(client.id);
                shared
                    .conns
                    .curr
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                me.acks_moved();
            });
        if spawned.is_err() {
            log::line(format_args!("# Could not start a replication thread"));
        }
    }

    fn feed(
        self: &Arc<Self>,
        shared: &Shared,
        sock: &mut TcpStream,
        pending: &[u8],
        req: &Psync,
        link: &Arc<Downstream>,
        client: &ClientInfo,
    ) -> io::Result<()> {
        sock.write_all(pending)?;
        let mut st = self.lock();
        if st.is_replica() && !st.upstream.as_ref().is_some_and(|u| u.up) {
            drop(st);
            sock.write_all(b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n")?;
            return Ok(());
        }
        self.activate(&mut st, shared);
        let want = req.offset;
        let same_history = req.replid == st.replid
            || (req.replid == st.replid2 && want >= 0 && want < st.second_offset);
        let partial =
            same_history && want >= st.first_byte() as i64 && want <= st.offset as i64 && want >= 0;
        let mut pos;
        if partial {
            pos = want as u64;
            st.sync_partial_ok += 1;
            let line = format!("+CONTINUE {} {}\r\n", st.replid, wall_ns());
            st.replicas.push(link.clone());
            link.online.store(true, Ordering::Relaxed);
            link.ack.store(pos, Ordering::Relaxed);
            link.sent.store(pos, Ordering::Relaxed);
            drop(st);
            log::line(format_args!(
                "* Partial resynchronization request from {}:{} accepted. Sending {} bytes of backlog starting from offset {}.",
                link.ip,
                link.port,
                self.offset() - pos,
                pos
            ));
            sock.write_all(line.as_bytes())?;
        } else {
            if req.replid != "?" {
                st.sync_partial_err += 1;
            }
            st.sync_full += 1;
            pos = st.offset;
            link.sent.store(pos, Ordering::Relaxed);
            let line = format!("+FULLRESYNC {} {} {}\r\n", st.replid, pos, wall_ns());
            st.replicas.push(link.clone());
            drop(st);
            log::line(format_args!(
                "* Replica {}:{} asks for synchronization; full resync from offset {pos}",
                link.ip, link.port
            ));
            sock.write_all(line.as_bytes())?;
            // Streamed in chunks while the snapshot is taken, shard by
            // shard: memory stays at one chunk whatever the store's size.
            let mut chunks = Chunked {
                sock: &mut *sock,
                buf: Vec::with_capacity(CHUNK),
            };
            pogocache_persist::write_to(&shared.store, &mut chunks)?;
            chunks.finish()?;
            link.last_ack.store(monotonic_ns(), Ordering::Relaxed);
            link.online.store(true, Ordering::Relaxed);
            log::line(format_args!(
                "* Synchronization with replica {}:{} succeeded",
                link.ip, link.port
            ));
        }
        // Acknowledgements come back on the same socket.
        let reader = sock.try_clone()?;
        let acks = AckWake {
            link: link.clone(),
            repl: self.clone(),
        };
        std::thread::Builder::new()
            .name("pogocache-repl-ack".into())
            .spawn(move || read_acks(reader, &acks))?;
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            if link.dead.load(Ordering::Relaxed) || client.kill.load(Ordering::Relaxed) {
                return Ok(());
            }
            if monotonic_ns() - link.last_ack.load(Ordering::Relaxed) > TIMEOUT_NS {
                return Err(io::Error::other(
                    "no acknowledgement for 60 seconds (timeout)",
                ));
            }
            let mut st = self.lock();
            if st.offset == pos {
                st = self
                    .cv
                    .wait_timeout(st, TICK)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if pos < st.first_byte() {
                drop(st);
                log::line(format_args!(
                    "# Replica {}:{} fell more than the backlog and 256 MiB behind; it will resync",
                    link.ip, link.port
                ));
                return Ok(());
            }
            if pos > st.offset {
                // This server's history was reset under the replica (it
                // turned into a replica and full-synced): start over.
                return Ok(());
            }
            let from = (pos - st.first_byte()) as usize;
            let n = (st.offset - pos).min(CHUNK as u64) as usize;
            buf.clear();
            let (a, b) = st.backlog.as_slices();
            let end = from + n;
            if from < a.len() {
                buf.extend_from_slice(&a[from..end.min(a.len())]);
            }
            if end > a.len() {
                buf.extend_from_slice(&b[from.saturating_sub(a.len())..end - a.len()]);
            }
            drop(st);
            if n > 0 {
                sock.write_all(&buf)?;
                pos += n as u64;
                link.sent.store(pos, Ordering::Relaxed);
            }
        }
    }
}

/// The full-sync snapshot on the wire: `$<n>\r\n` and n bytes, again and
/// again, then `$0\r\n`.
struct Chunked<'a> {
    sock: &'a mut TcpStream,
    buf: Vec<u8>,
}

impl Chunked<'_> {
    fn send(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.sock
                .write_all(format!("${}\r\n", self.buf.len()).as_bytes())?;
            self.sock.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.send()?;
        self.sock.write_all(b"$0\r\n")
    }
}

impl Write for Chunked<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a replica's acknowledgements go: its link, and the WAITs
/// parked on the server.
struct AckWake {
    link: Arc<Downstream>,
    repl: Arc<Replication>,
}

/// Reads `REPLCONF ACK <offset>` from a replica until the socket closes.
fn read_acks(sock: TcpStream, w: &AckWake) {
    let mut r = BufReader::new(sock);
    let mut args = Args::new();
    let mut buf = Vec::new();
    loop {
        let got = match r.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => b.len(),
        };
        buf.extend_from_slice(&r.buffer()[..got]);
        r.consume(got);
        let mut at = 0;
        loop {
            match resp::parse(&buf[at..], &Limits::DEFAULT, &mut args) {
                Parsed::Complete(n, ()) => {
                    let v = args.view(&buf[at..]);
                    if v.len() == 3
                        && eq_ic(v.get(0), b"replconf")
                        && eq_ic(v.get(1), b"ack")
                        && let Some(o) = parse_i64_strict(v.get(2))
                    {
                        // Never past what was produced: a lying replica
                        // cannot satisfy future WAITs.
                        let o = (o.max(0) as u64).min(w.repl.offset());
                        w.link.ack.store(o, Ordering::Relaxed);
                        w.link.last_ack.store(monotonic_ns(), Ordering::Relaxed);
                        w.repl.acks_moved();
                    }
                    at += n;
                }
                Parsed::Incomplete { .. } => break,
                Parsed::Invalid(_) => {
                    w.link.dead.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
        buf.drain(..at);
        if buf.len() > 1 << 20 {
            break;
        }
    }
    w.link.dead.store(true, Ordering::Relaxed);
}

// ---------------------------------------------------------------- replica

/// Why a link attempt ended.
enum LinkEnd {
    /// REPLICAOF moved on (or shutdown): stop.
    Superseded,
    /// Retry after a pause.
    Retry(String),
}

impl Replication {
    /// The replica's side: connect, sync, apply; retry until superseded.
    fn link(self: &Arc<Self>, shared: &Arc<Shared>, generation: u64) {
        loop {
            match self.link_once(shared, generation) {
                LinkEnd::Superseded => return,
                LinkEnd::Retry(why) => {
                    log::line(format_args!("# {why}"));
                    let mut st = self.lock();
                    if st.generation != generation {
                        return;
                    }
                    if let Some(u) = &mut st.upstream {
                        if u.up {
                            u.down_since = monotonic_ns();
                        }
                        u.up = false;
                        u.syncing = false;
                        u.sock = None;
                    }
                    let st = self
                        .cv
                        .wait_timeout(st, TICK)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if st.generation != generation {
                        return;
                    }
                }
            }
        }
    }

    fn current(&self, generation: u64) -> bool {
        self.lock().generation == generation
    }

    fn link_once(self: &Arc<Self>, shared: &Arc<Shared>, generation: u64) -> LinkEnd {
        let (host, port, auth, replid, offset, need_full) = {
            let st = self.lock();
            if st.generation != generation {
                return LinkEnd::Superseded;
            }
            let Some(u) = &st.upstream else {
                return LinkEnd::Superseded;
            };
            (
                u.host.clone(),
                u.port,
                st.primary_auth.clone(),
                st.replid.clone(),
                st.offset,
                st.need_full,
            )
        };
        let addr = match (host.as_str(), port)
            .to_socket_addrs()
            .map(|mut a| a.next())
        {
            Ok(Some(a)) => a,
            _ => return LinkEnd::Retry(format!("Unable to resolve MASTER {host}:{port}")),
        };
        let sock = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => s,
            Err(e) => {
                return LinkEnd::Retry(format!(
                    "Error condition on socket for SYNC: {e} (MASTER {host}:{port})"
                ));
            }
        };
        let _ = sock.set_nodelay(true);
        let _ = sock.set_read_timeout(Some(TICK));
        {
            let mut st = self.lock();
            if st.generation != generation {
                return LinkEnd::Superseded;
            }
            if let Some(u) = &mut st.upstream {
                u.sock = sock.try_clone().ok();
            }
        }
        log::line(format_args!("* MASTER <-> REPLICA sync started"));
        let mut w = match sock.try_clone() {
            Ok(s) => s,
            Err(e) => return LinkEnd::Retry(format!("socket: {e}")),
        };
        let mut r = BufReader::with_capacity(256 * 1024, sock);
        let mut ask = |w: &mut TcpStream, parts: &[&[u8]]| -> Result<String, String> {
            let mut req = Vec::new();
            resp::request(&mut req, parts);
            w.write_all(&req).map_err(|e| e.to_string())?;
            read_line(&mut r, generation, self).map_err(|e| e.to_string())
        };
        if let Some(pass) = &auth {
            match ask(&mut w, &[b"AUTH", pass]) {
                Ok(l) if l == "+OK" => {}
                Ok(l) => {
                    return LinkEnd::Retry(format!(
                        "Unable to AUTH to MASTER {host}:{port}: {}",
                        l.trim_start_matches('-')
                    ));
                }
                Err(e) => return LinkEnd::Retry(format!("MASTER {host}:{port} AUTH: {e}")),
            }
        }
        match ask(&mut w, &[b"PING"]) {
            Ok(l) if l.starts_with("+") => {}
            Ok(l) => {
                return LinkEnd::Retry(format!(
                    "Error reply to PING from master {host}:{port}: '{l}'"
                ));
            }
            Err(e) => return LinkEnd::Retry(format!("MASTER {host}:{port} PING: {e}")),
        }
        let lport = self.port.to_string();
        for parts in [
            &[&b"REPLCONF"[..], b"listening-port", lport.as_bytes()][..],
            &[b"REPLCONF", b"capa", b"psync2"],
        ] {
            match ask(&mut w, parts) {
                Ok(l) if l == "+OK" => {}
                Ok(l) => {
                    return LinkEnd::Retry(format!("MASTER {host}:{port} refused REPLCONF: {l}"));
                }
                Err(e) => return LinkEnd::Retry(format!("MASTER {host}:{port} REPLCONF: {e}")),
            }
        }
        // Nothing applied yet (a fresh server) or nothing trustworthy:
        // ask for a full sync, as a fresh Redis replica does.
        let (id, off) = if need_full || offset == 0 {
            ("?".to_string(), "-1".to_string())
        } else {
            (replid.clone(), offset.to_string())
        };
        let reply = match ask(&mut w, &[b"PSYNC", id.as_bytes(), off.as_bytes()]) {
            Ok(l) => l,
            Err(e) => return LinkEnd::Retry(format!("MASTER {host}:{port} PSYNC: {e}")),
        };
        let words: Vec<&str> = reply.split(' ').collect();
        let wall_at_primary;
        match words.as_slice() {
            ["+FULLRESYNC", id, off, wall] => {
                let (Some(off), Some(wall)) = (off.parse::<u64>().ok(), wall.parse::<i64>().ok())
                else {
                    return LinkEnd::Retry(format!("Bad FULLRESYNC reply from master: {reply}"));
                };
                wall_at_primary = wall;
                log::line(format_args!("* Full resync from master: {id}:{off}"));
                {
                    let mut st = self.lock();
                    if st.generation != generation {
                        return LinkEnd::Superseded;
                    }
                    st.need_full = true;
                    st.clock = wall - monotonic_ns();
                    if let Some(u) = &mut st.upstream {
                        u.syncing = true;
                    }
                }
                if let Err(e) = self.load_snapshot(shared, &mut r, generation, wall - wall_ns()) {
                    return LinkEnd::Retry(format!(
                        "Failed trying to load the MASTER synchronization DB: {e}"
                    ));
                }
                let mut st = self.lock();
                if st.generation != generation {
                    return LinkEnd::Superseded;
                }
                st.replid = id.to_string();
                st.replid2 = "0".repeat(40);
                st.second_offset = -1;
                st.offset = off;
                st.backlog.clear();
                st.need_full = false;
                // Replicas of ours have another history now.
                for d in st.replicas.drain(..) {
                    d.dead.store(true, Ordering::Relaxed);
                }
                log::line(format_args!(
                    "* MASTER <-> REPLICA sync: Finished with success"
                ));
            }
            ["+CONTINUE", id, wall] => {
                let Some(wall) = wall.parse::<i64>().ok() else {
                    return LinkEnd::Retry(format!("Bad CONTINUE reply from master: {reply}"));
                };
                wall_at_primary = wall;
                let mut st = self.lock();
                if st.generation != generation {
                    return LinkEnd::Superseded;
                }
                if *id != st.replid {
                    // The primary was promoted: its history continues ours.
                    st.replid2 = std::mem::replace(&mut st.replid, id.to_string());
                    st.second_offset = st.offset as i64 + 1;
                }
                log::line(format_args!(
                    "* MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization."
                ));
            }
            _ => {
                return LinkEnd::Retry(format!(
                    "Unexpected reply to PSYNC from master: {}",
                    reply.chars().take(200).collect::<String>()
                ));
            }
        }
        {
            let mut st = self.lock();
            if st.generation != generation {
                return LinkEnd::Superseded;
            }
            st.clock = wall_at_primary - monotonic_ns();
            if let Some(u) = &mut st.upstream {
                u.up = true;
                u.syncing = false;
                u.last_io = monotonic_ns();
            }
        }
        self.apply_stream(shared, r, w, generation)
    }

    /// Reads the `$<len>` snapshot that follows FULLRESYNC and loads it
    /// into an emptied store.
    fn load_snapshot(
        &self,
        shared: &Shared,
        r: &mut BufReader<TcpStream>,
        generation: u64,
        wall_offset: i64,
    ) -> Result<(), String> {
        if !self.current(generation) {
            return Err("replication was reconfigured".into());
        }
        shared.store.clear();
        let mut body = Patient {
            r,
            left: 0,
            done: false,
            total: 0,
            repl: self,
            generation,
        };
        let stats = pogocache_persist::load_from_primary(&shared.store, &mut body, wall_offset)
            .map_err(|e| e.to_string())?;
        // Whatever the loader did not read (nothing, for a well-formed
        // snapshot) is skipped so the stream starts in the right place.
        io::copy(&mut body, &mut io::sink()).map_err(|e| e.to_string())?;
        log::line(format_args!(
            "* MASTER <-> REPLICA sync: Loading DB in memory: {} keys, {} bytes",
            stats.entries, body.total
        ));
        Ok(())
    }

    fn apply_stream(
        &self,
        shared: &Shared,
        mut r: BufReader<TcpStream>,
        mut w: TcpStream,
        generation: u64,
    ) -> LinkEnd {
        let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
        let mut args = Args::new();
        let mut chunk = vec![0u8; 256 * 1024];
        let mut last_ack = monotonic_ns();
        let mut acked = u64::MAX;
        loop {
            let n = match r.read(&mut chunk) {
                Ok(0) => {
                    return self.ended(generation, "Connection with master lost.".into());
                }
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    0
                }
                Err(e) => {
                    return self.ended(generation, format!("Connection with master lost: {e}"));
                }
            };
            if !self.current(generation) {
                return LinkEnd::Superseded;
            }
            let now = monotonic_ns();
            if n > 0 {
                buf.extend_from_slice(&chunk[..n]);
                {
                    let mut st = self.lock();
                    if st.generation != generation {
                        return LinkEnd::Superseded;
                    }
                    if let Some(u) = &mut st.upstream {
                        u.last_io = now;
                    }
                }
                let at = match apply_frames(self, shared, Some(generation), &buf, &mut args, now) {
                    Ok(at) => at,
                    Err(Stop::Superseded) => return LinkEnd::Superseded,
                    Err(Stop::Malformed(why)) => {
                        self.lock().need_full = true;
                        let _ = w.shutdown(Shutdown::Both);
                        return self.ended(
                            generation,
                            format!(
                                "Malformed replication stream from master ({why}); a full resync follows"
                            ),
                        );
                    }
                };
                self.cv.notify_all();
                buf.drain(..at);
            } else {
                let st = self.lock();
                let silent = st.upstream.as_ref().map_or(0, |u| now - u.last_io);
                drop(st);
                if silent > TIMEOUT_NS {
                    return self.ended(
                        generation,
                        "MASTER timeout: no data nor PING received...".into(),
                    );
                }
            }
            // Acknowledge what was applied: at once when the primary asks
            // (a client is in WAIT), right after a sync, and once a second.
            let (off, asked) = {
                let mut st = self.lock();
                (st.offset, std::mem::take(&mut st.ack_asked))
            };
            if asked || acked == u64::MAX || now - last_ack >= 1_000_000_000 {
                let s = off.to_string();
                let mut req = Vec::new();
                resp::request(&mut req, &[b"REPLCONF", b"ACK", s.as_bytes()]);
                if let Err(e) = w.write_all(&req) {
                    return self.ended(generation, format!("Connection with master lost: {e}"));
                }
                acked = off;
                last_ack = now;
            }
        }
    }

    fn ended(&self, generation: u64, why: String) -> LinkEnd {
        if self.current(generation) {
            LinkEnd::Retry(why)
        } else {
            LinkEnd::Superseded
        }
    }
}

/// A `Read` over the chunked snapshot (see [`Chunked`]) that ends at its
/// `$0` and waits through the read timeout (used to notice REPLICAOF)
/// while the link is current.
struct Patient<'a> {
    r: &'a mut BufReader<TcpStream>,
    /// Bytes left in the current chunk.
    left: u64,
    done: bool,
    total: u64,
    repl: &'a Replication,
    generation: u64,
}

impl Read for Patient<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let line = read_line(self.r, self.generation, self.repl)?;
            let n: u64 = line
                .strip_prefix('$')
                .and_then(|n| n.parse().ok())
                .filter(|&n| n <= 64 * CHUNK as u64)
                .ok_or_else(|| io::Error::other(format!("bad snapshot chunk header '{line}'")))?;
            if n == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = n;
        }
        let want = buf.len().min(self.left as usize);
        if !self.repl.current(self.generation) {
            return Err(io::Error::other("replication was reconfigured"));
        }
        loop {
            match self.r.read(&mut buf[..want]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.left -= n as u64;
                    self.total += n as u64;
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if !self.repl.current(self.generation) {
                        return Err(io::Error::other("replication was reconfigured"));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// One reply line (without CRLF), waiting through read timeouts while the
/// link is current; at most 64 KiB.
fn read_line(
    r: &mut BufReader<TcpStream>,
    generation: u64,
    repl: &Replication,
) -> io::Result<String> {
    let mut line = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        match r.read(&mut byte) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {
                if byte[0] == b'\n' {
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Ok(String::from_utf8_lossy(&line).into_owned());
                }
                line.push(byte[0]);
                if line.len() > 64 * 1024 {
                    return Err(io::Error::other("reply line too long"));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if !repl.current(generation) {
                    return Err(io::Error::other("replication was reconfigured"));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Why a batch of stream bytes stopped being applied.
enum Stop {
    /// REPLICAOF moved on (or shutdown) in the middle.
    Superseded,
    Malformed(String),
}

/// Applies every complete command at the front of `buf` to the store,
/// then appends it to the backlog; returns the bytes used. The state lock
/// is taken only to append (and to read the clock), never across a store
/// call: a writer that saw journaling on just before this server became a
/// replica may still be waiting for the state lock while it holds a shard
/// lock. An error leaves what was applied before it applied.
fn apply_frames(
    repl: &Replication,
    shared: &Shared,
    generation: Option<u64>,
    buf: &[u8],
    args: &mut Args,
    now: i64,
) -> Result<usize, Stop> {
    let mut at = 0;
    let mut clock = repl.lock().clock;
    loop {
        match resp::parse(&buf[at..], &Limits::DEFAULT, args) {
            Parsed::Complete(len, ()) => {
                let frame = &buf[at..at + len];
                let v = args.view(frame);
                let effect =
                    apply(shared, clock, &v, now).map_err(|e| Stop::Malformed(e.into()))?;
                let mut st = repl.lock();
                if generation.is_some_and(|g| g != st.generation) {
                    return Err(Stop::Superseded);
                }
                match effect {
                    Effect::Clock(c) => {
                        st.clock = c;
                        clock = c;
                    }
                    Effect::AckAsked => st.ack_asked = true,
                    Effect::Store => {}
                }
                st.scratch.extend_from_slice(frame);
                st.append_scratch();
                at += len;
            }
            Parsed::Incomplete { .. } => return Ok(at),
            Parsed::Invalid(e) => {
                return Err(Stop::Malformed(
                    String::from_utf8_lossy(e.message().as_bytes()).into(),
                ));
            }
        }
    }
}

/// What applying one stream command changed besides the store.
enum Effect {
    Store,
    Clock(i64),
    AckAsked,
}

impl Replication {
    /// Applies replication-stream bytes as a replica's link does, without
    /// a link: the complete commands at the front of `input` change the
    /// store and the offset. Returns the bytes used, or why the stream is
    /// malformed. Why public: the stream fuzz target drives the replica's
    /// parser and store writes with arbitrary bytes through this.
    pub fn replay(&self, shared: &Shared, input: &[u8]) -> Result<usize, String> {
        let mut args = Args::new();
        apply_frames(self, shared, None, input, &mut args, monotonic_ns()).map_err(|e| match e {
            Stop::Superseded => "superseded".to_string(),
            Stop::Malformed(why) => why,
        })
    }
}

/// Applies one stream command to the store; `clock` is the primary's
/// wall clock minus ours (from the last RTIME).
fn apply(shared: &Shared, clock: i64, v: &ArgView<'_>, now: i64) -> Result<Effect, &'static str> {
    let store = &shared.store;
    if v.is_empty() {
        return Err("empty command");
    }
    let name = v.get(0);
    if eq_ic(name, b"RSET") && v.len() == 6 {
        let flags = parse_i64_strict(v.get(3))
            .and_then(|f| u32::try_from(f).ok())
            .ok_or("bad flags")?;
        let exp = parse_i64_strict(v.get(4)).ok_or("bad expiry")?;
        let stale = v.get(5) == b"1";
        let expires = (exp != 0).then(|| exp.saturating_sub(clock));
        store
            .restore(v.get(1), v.get(2), flags, expires, stale, now)
            .map_err(|_| "value too large")?;
    } else if eq_ic(name, b"RDEL") && v.len() == 2 {
        store.delete(v.get(1), now);
    } else if eq_ic(name, b"FLUSHALL") && v.len() == 1 {
        store.clear();
    } else if eq_ic(name, b"RTIME") && v.len() == 2 {
        let t = parse_i64_strict(v.get(1)).ok_or("bad time")?;
        return Ok(Effect::Clock(t.saturating_sub(monotonic_ns())));
    } else if eq_ic(name, b"REPLCONF") && v.len() == 3 && eq_ic(v.get(1), b"GETACK") {
        return Ok(Effect::AckAsked);
    } else if eq_ic(name, b"PING") {
    } else {
        return Err("unknown command");
    }
    Ok(Effect::Store)
}

// ---------------------------------------------------------------- commands

/// The replica-side refusal, in RESP: `-READONLY ...`.
pub fn refuse<R: Reply>(out: &mut R) {
    out.error(READONLY);
}

/// Memcache's refusal line.
pub const READONLY_MEMCACHE: &[u8] =
    b"SERVER_ERROR You can't write against a read only replica.\r\n";

/// `REPLICAOF host port | NO ONE` (and `SLAVEOF`).
pub fn replicaof<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let (a, b) = (args.get(1), args.get(2));
    let repl = &ctx.shared.repl;
    if eq_ic(a, b"no") && eq_ic(b, b"one") {
        repl.promote(ctx.shared);
        return out.ok();
    }
    if ctx.shared.cluster.is_some() {
        return out.error(b"ERR REPLICAOF not allowed in cluster mode.");
    }
    let port = match parse_i64_strict(b) {
        Some(p) if (1..=65535).contains(&p) => p as u16,
        _ => return out.error(b"ERR Invalid master port"),
    };
    let host = String::from_utf8_lossy(a).into_owned();
    let already = {
        let st = repl.lock();
        st.upstream
            .as_ref()
            .is_some_and(|u| u.host == host && u.port == port)
    };
    if already {
        return out.simple(b"OK Already connected to specified master");
    }
    repl.follow(ctx.shared, host, port);
    out.ok();
}

/// `REPLCONF listening-port <port> | capa ... | ack <offset> | getack *`
pub fn replconf<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    if args.len().is_multiple_of(2) {
        return out.error(err::SYNTAX);
    }
    let mut i = 1;
    while i + 1 < args.len() {
        let (k, v) = (args.get(i), args.get(i + 1));
        if eq_ic(k, b"listening-port") {
            match parse_i64_strict(v) {
                Some(p) if (0..=65535).contains(&p) => ctx.session.listening_port = p as u16,
                _ => return out.error(b"ERR value is not an integer or out of range"),
            }
        } else if eq_ic(k, b"ack") || eq_ic(k, b"getack") {
            // Only meaningful on a replication link; ignored elsewhere.
            return;
        } else if !(eq_ic(k, b"capa") || eq_ic(k, b"ip-address") || eq_ic(k, b"rdb-only")) {
            let mut msg = b"ERR Unrecognized REPLCONF option: ".to_vec();
            msg.extend_from_slice(&k[..k.len().min(64)]);
            return out.error(&msg);
        }
        i += 2;
    }
    out.ok();
}

/// `PSYNC replid offset`: validated here; the server then hands the
/// connection to [`Replication::serve`]. Returns whether to do so.
pub fn psync<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) -> bool {
    let Some(off) = parse_i64_strict(args.get(2)) else {
        out.error(err::INTEGER);
        return false;
    };
    if ctx.session.pubsub.as_ref().is_some_and(|s| s.count() > 0) {
        out.error(b"ERR PSYNC is not allowed on a subscribed connection");
        return false;
    }
    if !ctx.session.can_hand_off {
        out.error(b"ERR PSYNC is only served over plain TCP connections");
        return false;
    }
    ctx.session.psync = Some(Box::new(Psync {
        replid: String::from_utf8_lossy(args.get(1)).into_owned(),
        offset: off,
        port: ctx.session.listening_port,
    }));
    true
}

/// `ROLE`, in Redis's shape.
pub fn role<R: Reply>(ctx: &mut Ctx<'_>, out: &mut R) {
    let st = ctx.shared.repl.lock();
    match &st.upstream {
        None => {
            out.array(3);
            out.bulk(b"master");
            out.int(st.offset as i64);
            let live: Vec<_> = st.live().collect();
            out.array(live.len());
            for r in live {
                out.array(3);
                out.bulk(r.ip.as_bytes());
                out.bulk(r.port.to_string().as_bytes());
                out.bulk(r.ack.load(Ordering::Relaxed).to_string().as_bytes());
            }
        }
        Some(u) => {
            out.array(5);
            out.bulk(b"slave");
            out.bulk(u.host.as_bytes());
            out.int(u.port as i64);
            out.bulk(if u.up {
                b"connected"
            } else if u.syncing {
                b"sync"
            } else {
                b"connect"
            });
            out.int(if u.up { st.offset as i64 } else { -1 });
        }
    }
}

/// What WAIT decided: answer now, or park until `target` is acknowledged
/// by `need` replicas or `deadline` passes.
pub enum Wait {
    Done,
    Park {
        target: u64,
        need: usize,
        deadline: Option<i64>,
    },
}

/// `WAIT numreplicas timeout`: counts replicas that acknowledged every
/// write made so far. Answers at once when enough did; otherwise asks the
/// replicas for acknowledgements and the connection parks until enough
/// arrive or the timeout (0: none, as in Redis) passes.
pub fn wait<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) -> Wait {
    let (Some(n), Some(t)) = (parse_i64_strict(args.get(1)), parse_i64_strict(args.get(2))) else {
        out.error(err::INTEGER);
        return Wait::Done;
    };
    if t < 0 {
        out.error(b"ERR timeout is negative");
        return Wait::Done;
    }
    let repl = &ctx.shared.repl;
    if repl.is_replica() {
        out.error(b"ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
        return Wait::Done;
    }
    let target = repl.offset();
    let have = repl.acked(target);
    if have as i64 >= n || n <= 0 {
        out.int(have as i64);
        return Wait::Done;
    }
    repl.request_acks();
    Wait::Park {
        target,
        need: n as usize,
        deadline: (t > 0).then(|| ctx.now.saturating_add(t.saturating_mul(1_000_000))),
    }
}

/// INFO's `# Replication` fields, Redis's names and order.
pub fn info(repl: &Replication, kv: &mut dyn FnMut(&str, &dyn std::fmt::Display)) {
    let st = repl.lock();
    let now = monotonic_ns();
    let secs = |ns: i64| ns.max(0) / 1_000_000_000;
    match &st.upstream {
        None => {
            kv("role", &"master");
            let live: Vec<_> = st.live().collect();
            kv("connected_slaves", &live.len());
            for (i, r) in live.iter().enumerate() {
                kv(
                    &format!("slave{i}"),
                    &format!(
                        "ip={},port={},state={},offset={},lag={}",
                        r.ip,
                        r.port,
                        if r.online.load(Ordering::Relaxed) {
                            "online"
                        } else {
                            "send_bulk"
                        },
                        r.ack.load(Ordering::Relaxed),
                        secs(now - r.last_ack.load(Ordering::Relaxed))
                    ),
                );
            }
        }
        Some(u) => {
            kv("role", &"slave");
            kv("master_host", &u.host);
            kv("master_port", &u.port);
            kv("master_link_status", &if u.up { "up" } else { "down" });
            kv(
                "master_last_io_seconds_ago",
                &if u.last_io > 0 {
                    secs(now - u.last_io)
                } else {
                    -1
                },
            );
            kv("master_sync_in_progress", &u8::from(u.syncing));
            kv("slave_read_repl_offset", &st.offset);
            kv("slave_repl_offset", &st.offset);
            if !u.up {
                kv(
                    "master_link_down_since_seconds",
                    &if u.down_since > 0 {
                        secs(now - u.down_since)
                    } else {
                        -1
                    },
                );
            }
            kv("slave_priority", &st.priority);
            kv("slave_read_only", &u8::from(st.read_only));
            kv("replica_announced", &1);
            kv("connected_slaves", &st.live().count());
        }
    }
    kv("master_failover_state", &"no-failover");
    kv("master_replid", &st.replid);
    kv("master_replid2", &st.replid2);
    kv("master_repl_offset", &st.offset);
    kv("second_repl_offset", &st.second_offset);
    kv("repl_backlog_active", &u8::from(st.active));
    kv("repl_backlog_size", &st.backlog_size);
    kv("repl_backlog_first_byte_offset", &(st.first_byte() + 1));
    kv("repl_backlog_histlen", &st.backlog.len());
}

/// INFO stats' sync counters.
pub fn sync_stats(repl: &Replication) -> (u64, u64, u64) {
    let st = repl.lock();
    (st.sync_full, st.sync_partial_ok, st.sync_partial_err)
}

/// `/metrics` lines: role, offset, replicas and their lag in bytes.
pub fn metrics(repl: &Replication, out: &mut String) {
    use std::fmt::Write;
    let st = repl.lock();
    let _ = writeln!(
        out,
        "# HELP pogocache_replication_role 1 for the current role.\n# TYPE pogocache_replication_role gauge\npogocache_replication_role{{role=\"primary\"}} {}\npogocache_replication_role{{role=\"replica\"}} {}",
        u8::from(!st.is_replica()),
        u8::from(st.is_replica())
    );
    let _ = writeln!(
        out,
        "# HELP pogocache_replication_offset Bytes of replication stream produced (primary) or applied (replica).\n# TYPE pogocache_replication_offset gauge\npogocache_replication_offset {}",
        st.offset
    );
    let live: Vec<_> = st.live().collect();
    let _ = writeln!(
        out,
        "# HELP pogocache_replication_connected_replicas Replicas streaming from this server.\n# TYPE pogocache_replication_connected_replicas gauge\npogocache_replication_connected_replicas {}",
        live.len()
    );
    let _ = writeln!(
        out,
        "# HELP pogocache_replication_replica_lag_bytes Stream bytes a replica has not acknowledged yet.\n# TYPE pogocache_replication_replica_lag_bytes gauge"
    );
    for r in live {
        let _ = writeln!(
            out,
            "pogocache_replication_replica_lag_bytes{{replica=\"{}:{}\"}} {}",
            r.ip,
            r.port,
            st.offset.saturating_sub(r.ack.load(Ordering::Relaxed))
        );
    }
    let link = st.upstream.as_ref().map_or(0, |u| u8::from(u.up));
    let _ = writeln!(
        out,
        "# HELP pogocache_replication_link_up 1 while a replica's link to its primary is up.\n# TYPE pogocache_replication_link_up gauge\npogocache_replication_link_up {link}"
    );
}
