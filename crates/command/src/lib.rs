//! # pogocache-command
//!
//! The one command table of pogocache-rs, shared by every protocol, as in
//! Pogocache's `cmds.c`: 40 command names, their argument rules, their
//! semantics against the store, and their replies through the
//! protocol-neutral [`Reply`] sink.
//!
//! Owns: each protocol's session (what a connection's bytes mean, run
//! step by step), the auth gate, name lookup, argument counts and option
//! parsing, error strings, stats counting, MONITOR fan-out, and the log
//! lines commands print. Does not own: framing or reply bytes (the
//! protocol crate's parsers and composers, behind [`Reply`]), sockets,
//! buffers and threads (the server), storage (the store).
//!
//! ## Layout
//!
//! - [`conn`]: a connection's [`conn::Protocol`] (sniffing, then one
//!   session per protocol, owning that protocol's state) and the one
//!   [`conn::Step`] contract every session's `step(ctx, input, out)`
//!   returns.
//! - [`resp`]: RESP sessions (RESP3, MONITOR mode, the pipeline window).
//! - [`table`]: the command table, one row per command (names, argument
//!   counts, flags, key positions, Postgres columns); lookup, labels and
//!   `COMMAND` are generated from it, and [`execute`] dispatches on it.
//! - [`reply`]: the [`Reply`] trait and the RESP implementation.
//! - `keys`: SET, GET, MGET(S), DEL, EXISTS, TTL, EXPIRE, TOUCH, DBSIZE.
//! - `counters`: the INCR family and APPEND/PREPEND.
//! - `admin`: KEYS, SCAN, FLUSH, SWEEP, PURGE, SAVE, LOAD, STATS, DEBUG.
//! - `common`: what every protocol's executor shares (metrics counting,
//!   auth and store-error counters, the MONITOR / `-vvv` echo).
//! - `session`: PING, SELECT, AUTH (ECHO, VERSION, QUIT and MONITOR are
//!   one-liners in the dispatcher).
//! - [`intro`]: HELLO, CLIENT, INFO, COMMAND, CONFIG, RESET, WAIT
//!   (extensions for modern clients), with [`clients`] the registry
//!   behind CLIENT LIST/KILL.
//! - [`memcache`] and `meta`: memcache sessions, and the text and meta
//!   protocols' verbs against the store.
//! - [`http`]: HTTP sessions and routes; [`metrics`]: `GET /metrics`.
//! - [`postgres`]: Postgres sessions, running the table's commands.
//! - [`cluster`]: cluster mode (slots, the nodes file, MOVED/CROSSSLOT,
//!   CLUSTER).
//! - [`repl`]: replication (the stream, serving replicas, the link to a
//!   primary, REPLICAOF/REPLCONF/PSYNC/ROLE/WAIT); [`pubsub`]: PUBLISH
//!   and the subscribe family; MULTI/EXEC/DISCARD are in this file.
//! - [`stats`]: per-worker counters; [`monitor`]: the MONITOR fan-out;
//!   [`log`]: log lines (text or JSON); [`sys`]: RSS and the allocator.

mod admin;
pub mod clients;
pub mod cluster;
mod common;
pub mod conn;
mod counters;
pub mod http;
pub mod intro;
mod keys;
pub mod log;
pub mod memcache;
mod meta;
pub mod metrics;
pub mod monitor;
pub mod postgres;
pub mod pubsub;
pub mod repl;
pub mod reply;
pub mod resp;
mod session;
pub mod stats;
pub mod sys;
pub mod table;

use std::path::PathBuf;
use std::sync::Arc;

use pogocache_protocol::ArgView;
use pogocache_store::Store;

pub use reply::{Reply, RespReply};
pub use stats::{ConnCounters, Stats, Totals};
pub use table::Cmd;

/// Version reported by VERSION, STATS and `--version`: Pogocache's
/// release line with our own build suffix, so clients that compare
/// versions see a Pogocache 1.3.1 equivalent.
pub const VERSION: &str = concat!("1.3.1-rs.", env!("CARGO_PKG_VERSION"));

/// Git hash reported by STATS and the banner (set `POGOCACHE_GITHASH` at
/// build time to fill it in).
pub const GITHASH: &str = match option_env!("POGOCACHE_GITHASH") {
    Some(h) => h,
    None => "0000000",
};

/// Shared error strings, Pogocache's exact wording.
pub mod err {
    pub const ARITY: &[u8] = b"ERR wrong number of arguments";
    pub const SYNTAX: &[u8] = b"ERR syntax error";
    pub const INTEGER: &[u8] = b"ERR value is not an integer or out of range";
    pub const RANGE: &[u8] = b"ERR index is out of range";
    pub const MEMORY: &[u8] = b"ERR out of memory";
    pub const EXPIRE: &[u8] = b"ERR invalid expire time";
    pub const OVERFLOW: &[u8] = b"ERR increment or decrement would overflow";
    pub const DELAY: &[u8] = b"ERR invalid delay argument";
    pub const CURSOR: &[u8] = b"ERR invalid cursor";
    pub const SIZE: &[u8] = b"ERR value too large";
    pub const PATH: &[u8] = b"ERR path not provided";
    pub const NOAUTH: &[u8] = b"NOAUTH Authentication required.";
    pub const WRONGPASS: &[u8] = b"WRONGPASS invalid username-password pair or user is disabled.";
}

/// Server-wide settings the commands need.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// `--auth`: empty means no authentication required.
    pub auth: Vec<u8>,
    /// `--persist`: default path for SAVE and LOAD.
    pub persist: Option<PathBuf>,
    /// `-v` level (0..=3).
    pub verbosity: u8,
    /// Treat SET EXAT/PXAT as Unix times (true, the default and what Redis
    /// does) or as boot-clock times like Pogocache (gap C1, "switch").
    pub exat_unix: bool,
    /// Worker thread count (reported by STATS).
    pub threads: usize,
    /// `--maxconns` (reported by STATS).
    pub maxconns: usize,
    /// Memcache as Pogocache does it (`--mclegacy yes`): `noreply` still
    /// replies, `decr` wraps below zero, `touch k 0` expires at once
    /// (gaps D1, D6, D7). Off by default: memcached semantics.
    pub mc_legacy: bool,
    /// How Postgres clients are asked for the `--auth` password.
    pub pg_auth: postgres::PgAuth,
    /// TLS is configured: a Postgres SSLRequest is answered `S` and the
    /// connection upgraded.
    pub tls: bool,
    /// `-h` and `-p`, for INFO and CONFIG GET.
    pub host: String,
    pub port: u16,
    /// `--maxmemory` in bytes (0: none), and `--evict`.
    pub maxmemory: u64,
    pub evict: bool,
    /// The compiled allocator's name (INFO `mem_allocator`).
    pub allocator: &'static str,
    /// `--repl-backlog-size` in bytes.
    pub repl_backlog: usize,
}

/// Everything shared by all workers. One per server.
pub struct Shared {
    pub store: Store,
    pub settings: Settings,
    /// One counter block per worker; index = worker id.
    pub workers: Box<[crossbeam_utils::CachePadded<Stats>]>,
    /// Flushes executed, on any thread (the `cmd_flush` stat).
    pub flushes: std::sync::atomic::AtomicU64,
    pub conns: ConnCounters,
    pub monitor: monitor::MonitorHub,
    /// Monotonic time at start, for `uptime`.
    pub started: i64,
    /// Returns freed memory to the OS (allocator specific; PURGE).
    pub purge: fn(),
    /// Every open connection (CLIENT LIST/KILL).
    pub clients: clients::Registry,
    /// Wall-clock ns of the last snapshot saved or loaded (0: none yet),
    /// for `pogocache_snapshot_age_seconds`.
    pub last_save: std::sync::atomic::AtomicI64,
    /// `--cluster yes`: the topology RESP requests are routed by (set
    /// before the server starts; `None` on a standalone server).
    pub cluster: Option<cluster::Cluster>,
    /// Channel and pattern subscriptions.
    pub pubsub: pubsub::PubSub,
    /// Replication state; the store journals to it.
    pub repl: Arc<repl::Replication>,
}

impl Shared {
    pub fn new(store: Store, settings: Settings, workers: usize) -> Shared {
        let repl = Arc::new(repl::Replication::new(
            settings.port,
            if settings.repl_backlog == 0 {
                repl::DEFAULT_BACKLOG
            } else {
                settings.repl_backlog
            },
        ));
        store.set_journal(repl.clone());
        Shared {
            store,
            settings,
            workers: (0..workers.max(1)).map(|_| Default::default()).collect(),
            flushes: Default::default(),
            conns: ConnCounters::default(),
            monitor: Default::default(),
            started: pogocache_store::clock::monotonic_ns(),
            purge: sys::malloc_trim,
            clients: clients::Registry::new(workers),
            last_save: Default::default(),
            cluster: None,
            pubsub: Default::default(),
            repl,
        }
    }

    /// Notes a snapshot saved or loaded just now.
    pub fn mark_snapshot(&self) {
        self.last_save.store(
            pogocache_store::clock::wall_ns(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Requests that reached the command table, on every worker (INFO's
    /// `total_commands_processed`).
    pub fn commands_processed(&self) -> u64 {
        self.workers
            .iter()
            .flat_map(|w| w.detail.ok.iter().chain(w.detail.err.iter()))
            .map(|c| c.get())
            .sum()
    }

    /// Sum of every worker's counters.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::sum(self.workers.iter().map(|w| &**w));
        t.cmd_flush += self.flushes.load(std::sync::atomic::Ordering::Relaxed);
        t
    }
}

/// Per-connection state the commands read and change, whatever the
/// protocol. Protocol state (RESP3, MONITOR mode, a Postgres session's
/// statements) belongs to that protocol's session in [`conn`].
#[derive(Debug, Default)]
pub struct Session {
    /// Passed the auth gate (always true when no `--auth` is set).
    pub authed: bool,
    /// `ip:port` or `unixsocket`, as MONITOR shows it.
    pub addr: String,
    /// This connection's registry record (CLIENT ID/SETNAME/...).
    pub client: Option<Arc<clients::ClientInfo>>,
    /// Requests are routed by cluster slot (RESP connections; Memcache,
    /// HTTP and Postgres serve every key on a cluster node).
    pub routed: bool,
    /// Channel and pattern subscriptions (SUBSCRIBE), once any.
    pub pubsub: Option<Box<pubsub::Subscriptions>>,
    /// Commands queued since MULTI.
    pub multi: Option<Box<Multi>>,
    /// Running the commands of EXEC (WAIT answers at once there).
    pub in_exec: bool,
    /// `REPLCONF listening-port`, announced by a replica.
    pub listening_port: u16,
    /// What PSYNC asked for, for the server's hand-over.
    pub psync: Option<Box<repl::Psync>>,
    /// The server can hand this connection's socket to a replication
    /// thread (plain TCP).
    pub can_hand_off: bool,
    /// Parked in WAIT: until `target` is acknowledged by `need` replicas
    /// or the deadline (monotonic ns) passes.
    pub blocked: Option<Blocked>,
}

/// A WAIT in progress (see [`Session::blocked`]).
#[derive(Clone, Copy, Debug)]
pub struct Blocked {
    pub target: u64,
    pub need: usize,
    pub deadline: Option<i64>,
}

/// A transaction being queued (MULTI ... EXEC).
#[derive(Debug, Default)]
pub struct Multi {
    queued: Vec<pogocache_protocol::Args>,
    /// A queued command was refused (unknown, wrong arity): EXEC aborts.
    dirty: bool,
}

/// What a command asks of its connection after replying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Close after flushing the reply (QUIT).
    Close,
    /// Switch the connection into MONITOR mode.
    Monitor,
    /// The connection now has a pub/sub queue its worker must drain.
    Mailbox,
    /// PSYNC: hand the connection to a replication thread.
    Replica,
    /// WAIT: park until [`Session::blocked`] is settled.
    Block,
    /// EXEC passed the gates: [`execute`] runs the queue. Never returned
    /// by [`execute`]; why a variant: `run` handing EXEC back keeps it
    /// free of recursion, so the compiler still inlines it into
    /// `execute` on every request's path.
    Exec,
}

/// The context of one command execution.
pub struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    /// The executing worker's counters.
    pub stats: &'a Stats,
    /// Monotonic nanoseconds, read once per event-loop turn.
    pub now: i64,
    pub session: &'a mut Session,
    /// Reused buffer for read-modify-write commands.
    pub scratch: &'a mut Vec<u8>,
    /// Wakes this connection's worker (pub/sub delivery); `None` where
    /// nothing can be delivered later (Postgres, tests).
    pub wake: Option<&'a pubsub::Wake>,
}

/// Passes a reply through, noting whether it was an error (the outcome
/// label of `pogocache_commands_total`).
struct Track<'r, R> {
    inner: &'r mut R,
    failed: bool,
}

impl<R: Reply> Reply for Track<'_, R> {
    #[inline]
    fn ok(&mut self) {
        self.inner.ok()
    }
    #[inline]
    fn simple(&mut self, s: &[u8]) {
        self.inner.simple(s)
    }
    #[inline]
    fn error(&mut self, e: &[u8]) {
        self.failed = true;
        self.inner.error(e)
    }
    #[inline]
    fn int(&mut self, n: i64) {
        self.inner.int(n)
    }
    #[inline]
    fn uint(&mut self, n: u64) {
        self.inner.uint(n)
    }
    #[inline]
    fn bulk(&mut self, b: &[u8]) {
        self.inner.bulk(b)
    }
    #[inline]
    fn null(&mut self) {
        self.inner.null()
    }
    #[inline]
    fn array(&mut self, n: usize) {
        self.inner.array(n)
    }
    #[inline]
    fn map(&mut self, n: usize) {
        self.inner.map(n)
    }
    fn push(&mut self, n: usize) {
        self.inner.push(n)
    }
    fn set_resp3(&mut self, on: bool) {
        self.inner.set_resp3(on)
    }
    fn resp3(&self) -> bool {
        self.inner.resp3()
    }
}

/// Runs one request. `args` must be non-empty (protocols skip empty
/// requests before calling). Counts it by command and outcome, and times
/// one in `stats::LATENCY_SAMPLE`.
pub fn execute<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) -> Action {
    let cmd = table::lookup(args.get(0));
    common::metered(ctx, cmd, |ctx| {
        let mut track = Track {
            inner: out,
            failed: false,
        };
        let mut action = run(ctx, cmd, args, &mut track);
        if action == Action::Exec {
            action = exec(ctx, &mut track);
        }
        (action, track.failed)
    })
}

/// One command through the gates (auth, lookup, arity, pub/sub mode,
/// MULTI queueing, cluster routing, read-only replica) to its handler.
fn run<R: Reply>(ctx: &mut Ctx<'_>, cmd: Option<Cmd>, args: ArgView<'_>, out: &mut R) -> Action {
    use counters::Op;
    let name = args.get(0);
    if !ctx.session.authed {
        // HELLO may carry AUTH; it enforces the password itself.
        if !matches!(cmd, Some(Cmd::Auth | Cmd::Hello)) {
            common::denied(ctx.stats);
            out.error(err::NOAUTH);
            return Action::Continue;
        }
    } else if ctx.shared.settings.verbosity >= 3 && cmd != Some(Cmd::Auth) {
        log::command(args);
    }
    let Some(cmd) = cmd else {
        if let Some(m) = &mut ctx.session.multi {
            m.dirty = true;
        }
        unknown(ctx, name, out);
        return Action::Continue;
    };
    if ctx.shared.monitor.active() && !matches!(cmd, Cmd::Auth | Cmd::Quit | Cmd::Monitor) {
        let wall = pogocache_store::clock::wall_ns();
        ctx.shared.monitor.feed(wall, &ctx.session.addr, args);
    }
    // The one argument-count check (the table's rule for each command).
    if !cmd.spec().args_ok(args.len()) {
        if let Some(m) = &mut ctx.session.multi {
            m.dirty = true;
        }
        out.error(err::ARITY);
        return Action::Continue;
    }
    if let Some(subs) = &ctx.session.pubsub
        && subs.count() > 0
        && !out.resp3()
        && !matches!(
            cmd,
            Cmd::Subscribe
                | Cmd::Psubscribe
                | Cmd::Unsubscribe
                | Cmd::Punsubscribe
                | Cmd::Ping
                | Cmd::Quit
                | Cmd::Reset
        )
    {
        let mut msg = b"ERR Can't execute '".to_vec();
        msg.extend_from_slice(&name[..name.len().min(64)].to_ascii_lowercase());
        msg.extend_from_slice(b"': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
        out.error(&msg);
        return Action::Continue;
    }
    if let Some(m) = &mut ctx.session.multi
        && matches!(
            cmd,
            Cmd::Psync
                | Cmd::Monitor
                | Cmd::Subscribe
                | Cmd::Psubscribe
                | Cmd::Unsubscribe
                | Cmd::Punsubscribe
        )
    {
        // They change what the connection is; Redis refuses them here too.
        m.dirty = true;
        out.error(b"ERR Command not allowed inside a transaction");
        return Action::Continue;
    }
    if let Some(m) = &mut ctx.session.multi
        && !matches!(
            cmd,
            Cmd::Exec | Cmd::Discard | Cmd::Multi | Cmd::Quit | Cmd::Reset
        )
    {
        let mut a = pogocache_protocol::Args::new();
        for x in args.iter() {
            a.push_owned(x);
        }
        m.queued.push(a);
        out.simple(b"QUEUED");
        return Action::Continue;
    }
    if ctx.session.routed && cmd.spec().keys.0 > 0 && cluster::redirect(ctx, cmd.spec(), &args, out)
    {
        return Action::Continue;
    }
    if cmd.spec().is_write() && ctx.shared.repl.refuses_writes() {
        repl::refuse(out);
        return Action::Continue;
    }
    match cmd {
        Cmd::Set => keys::set(ctx, args, out),
        Cmd::Setex => keys::setex(ctx, args, out),
        Cmd::Get => keys::get(ctx, args, out),
        Cmd::Mget => keys::mget(ctx, args, out, false),
        Cmd::Mgets => keys::mget(ctx, args, out, true),
        Cmd::Del => keys::del(ctx, args, out),
        Cmd::Exists => keys::exists(ctx, args, out),
        Cmd::Ttl => keys::ttl(ctx, args, out, 1_000_000_000),
        Cmd::Pttl => keys::ttl(ctx, args, out, 1_000_000),
        Cmd::Expire => keys::expire(ctx, args, out),
        Cmd::Touch => keys::touch(ctx, args, out),
        Cmd::Dbsize => keys::dbsize(ctx, out),
        Cmd::Incr => counters::incr(ctx, args, out, Op::INCR),
        Cmd::Decr => counters::incr(ctx, args, out, Op::DECR),
        Cmd::Incrby => counters::incr(ctx, args, out, Op::INCRBY),
        Cmd::Decrby => counters::incr(ctx, args, out, Op::DECRBY),
        Cmd::Uincr => counters::incr(ctx, args, out, Op::UINCR),
        Cmd::Udecr => counters::incr(ctx, args, out, Op::UDECR),
        Cmd::Uincrby => counters::incr(ctx, args, out, Op::UINCRBY),
        Cmd::Udecrby => counters::incr(ctx, args, out, Op::UDECRBY),
        Cmd::Append => counters::append(ctx, args, out, pogocache_store::Side::Append),
        Cmd::Prepend => counters::append(ctx, args, out, pogocache_store::Side::Prepend),
        Cmd::Keys => admin::keys(ctx, args, out),
        Cmd::Scan => admin::scan(ctx, args, out),
        Cmd::Flush => admin::flush(ctx, args, out),
        Cmd::Sweep => admin::sweep(ctx, args, out),
        Cmd::Purge => admin::purge(ctx, args, out),
        Cmd::Save => admin::save_load(ctx, args, out, b"to", "save"),
        Cmd::Load => admin::save_load(ctx, args, out, b"from", "load"),
        Cmd::Stats => admin::stats(ctx, args, out),
        Cmd::Debug => admin::debug(ctx, args, out),
        Cmd::Ping if ctx.session.pubsub.as_ref().is_some_and(|s| s.count() > 0) && !out.resp3() => {
            // Subscribed (RESP2): a pong message, as Redis does.
            out.array(2);
            out.bulk(b"pong");
            out.bulk(if args.len() > 1 { args.get(1) } else { b"" });
        }
        Cmd::Ping => session::ping(args, out),
        Cmd::Echo => out.bulk(args.get(1)),
        Cmd::Version => out.simple(VERSION.as_bytes()),
        Cmd::Quit => {
            out.ok();
            return Action::Close;
        }
        Cmd::Select => session::select(args, out),
        Cmd::Auth => session::auth(ctx, args, out),
        Cmd::Hello => intro::hello(ctx, args, out),
        Cmd::Client => intro::client(ctx, args, out),
        Cmd::Config => intro::config(ctx, args, out),
        Cmd::Info => intro::info(ctx, args, out),
        Cmd::Command => intro::command(args, out),
        Cmd::Reset => intro::reset(ctx, out),
        Cmd::Wait => match repl::wait(ctx, args, out) {
            repl::Wait::Done => {}
            // No way to park here (inside EXEC, or a protocol without a
            // worker-side wait): answer with what is acknowledged now.
            repl::Wait::Park { target, .. } if ctx.session.in_exec || ctx.wake.is_none() => {
                out.int(ctx.shared.repl.acked(target) as i64);
            }
            repl::Wait::Park {
                target,
                need,
                deadline,
            } => {
                ctx.session.blocked = Some(Blocked {
                    target,
                    need,
                    deadline,
                });
                return Action::Block;
            }
        },
        Cmd::Replicaof => repl::replicaof(ctx, args, out),
        Cmd::Replconf => repl::replconf(ctx, args, out),
        Cmd::Psync => {
            if repl::psync(ctx, args, out) {
                return Action::Replica;
            }
        }
        Cmd::Role => repl::role(ctx, out),
        Cmd::Publish => pubsub::publish(ctx, args, out),
        Cmd::Pubsub => pubsub::pubsub(ctx, args, out),
        Cmd::Subscribe | Cmd::Psubscribe | Cmd::Unsubscribe | Cmd::Punsubscribe => {
            let pattern = matches!(cmd, Cmd::Psubscribe | Cmd::Punsubscribe);
            let on = matches!(cmd, Cmd::Subscribe | Cmd::Psubscribe);
            if pubsub::subscribe(ctx, args, pattern, on, out) {
                return Action::Mailbox;
            }
        }
        Cmd::Multi => {
            if ctx.session.multi.is_some() {
                out.error(b"ERR MULTI calls can not be nested");
            } else {
                ctx.session.multi = Some(Box::default());
                out.ok();
            }
        }
        Cmd::Discard => match ctx.session.multi.take() {
            Some(_) => out.ok(),
            None => out.error(b"ERR DISCARD without MULTI"),
        },
        Cmd::Exec => return Action::Exec,
        Cmd::Cluster => cluster::command(ctx, args, out),
        Cmd::Asking | Cmd::Readonly | Cmd::Readwrite => cluster::accept(ctx, out),
        Cmd::Monitor => {
            out.ok();
            return Action::Monitor;
        }
    }
    Action::Continue
}

/// `EXEC`: runs the queued commands back to back, their replies in one
/// array. Another worker's commands may run between two of them: the
/// store has no global lock (see COMPATIBILITY.md).
fn exec<R: Reply>(ctx: &mut Ctx<'_>, out: &mut R) -> Action {
    let Some(m) = ctx.session.multi.take() else {
        out.error(b"ERR EXEC without MULTI");
        return Action::Continue;
    };
    if m.dirty {
        out.error(b"EXECABORT Transaction discarded because of previous errors.");
        return Action::Continue;
    }
    out.array(m.queued.len());
    let mut then = Action::Continue;
    ctx.session.in_exec = true;
    for a in &m.queued {
        let v = a.view(&[]);
        let cmd = table::lookup(v.get(0));
        match run(ctx, cmd, v, out) {
            Action::Close => then = Action::Close,
            Action::Mailbox if then == Action::Continue => then = Action::Mailbox,
            _ => {}
        }
    }
    ctx.session.in_exec = false;
    then
}

/// `ERR unknown command '<name>'`, cut to 255 bytes like Pogocache.
fn unknown<R: Reply>(ctx: &Ctx<'_>, name: &[u8], out: &mut R) {
    let mut msg = [0u8; 255];
    let mut n = 0;
    for part in [&b"ERR unknown command '"[..], name, b"'"] {
        let take = part.len().min(msg.len() - n);
        msg[n..n + take].copy_from_slice(&part[..take]);
        n += take;
    }
    if ctx.shared.settings.verbosity >= 1 {
        log::line(format_args!(
            "# Unknown command '{}'",
            String::from_utf8_lossy(name)
        ));
    }
    out.error(&msg[..n]);
}

/// A memory size as Redis configs write it: bytes, or a number with
/// `k`/`kb`/`m`/`mb`/`g`/`gb` (k = 1000, kb = 1024, and so on). Why not
/// `--maxmemory`'s parser: that one keeps Pogocache's own grammar
/// (fractions, percentages, k = 1024); the replication parameters are
/// Redis's, set by Redis tools through `CONFIG SET`, so they read as Redis
/// reads them.
pub fn parse_memory(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// ASCII case-insensitive equality, for option keywords.
#[inline]
pub(crate) fn eq_ic(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

pub use pogocache_protocol::num::{atoi, parse_i64_strict, parse_u64_strict};

#[cfg(test)]
mod tests;
