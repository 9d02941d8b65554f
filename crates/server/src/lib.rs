//! # pogocache-server
//!
//! The network runtime of pogocache-rs: listeners, worker threads with one
//! mio event loop each, connections, the once-a-second ticker, and the
//! [`Server`] composition root that `main`, tests and benches all start
//! the same way.
//!
//! Owns: sockets, buffering, TLS, fairness, backpressure, connection
//! limits, shutdown. Does not own: wire formats (`pogocache-protocol`),
//! what a connection's bytes mean (the protocol sessions of
//! `pogocache-command`, driven through `conn::Protocol::step`) or
//! storage (`pogocache-store`).
//!
//! ## Layout
//!
//! - `worker`: the event loop, scheduling, the three-step loop turn,
//!   MONITOR delivery.
//! - `transport`: one connection's socket (plain or TLS) and buffers, the
//!   TLS port's sniff and upgrade.
//! - `tls`: certificate loading and the rustls connection driver.
//! - `listener`: binding and accepting (TCP, unix socket, TLS port).
//! - `ticker`: the once-a-second housekeeping thread.
//! - [`config`]: the command line, Pogocache's flags and error text.
//!
//! ## Threads
//!
//! ```text
//!             accept (mio Poll: TCP + unix listeners + stop waker)
//!                │  round-robin hand-off: inbox + Waker
//!      ┌─────────┼──────────┐
//!   worker 0  worker 1 … worker N-1     each: mio Poll, its connections,
//!      │         │          │           read → step → write
//!      └────── Store (sharded Mutexes) ─┘
//!   ticker: RSS vs --maxmemory → low-memory flag; autosweep; -v lines
//! ```
//!
//! - **acceptor**: accepts, enforces `--maxconns` (closing surplus
//!   connections without a reply, as Pogocache does), sets socket options
//!   and hands each socket to the next worker.
//! - **workers**: own their connections outright; cache commands never
//!   block, so there is no async runtime, only edge-triggered readiness.
//!   A connection runs at most `worker::BUDGET` (512) commands per turn and is
//!   then queued behind the others, so a deep pipeline cannot starve its
//!   neighbours. Output past a high-water mark stops input processing
//!   until the client reads (no unbounded buffering, gap B2).
//! - **ticker**: wakes once a second (or at shutdown).

pub mod config;
mod listener;
mod ticker;
mod tls;
mod transport;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use config::{Config, Exit, parse_args};
/// Log lines (text or JSON), for the binary's own startup and shutdown lines.
pub use pogocache_command::log;
use pogocache_command::{Settings, Shared};
use pogocache_store::Store;

/// A running server. Dropping it does not stop it: call
/// [`Server::shutdown`].
pub struct Server {
    shared: Arc<Shared>,
    stop: Arc<ticker::Stop>,
    threads: Vec<JoinHandle<()>>,
    wakers: Vec<Arc<mio::Waker>>,
    local_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    unix_path: Option<PathBuf>,
    /// `--persist`: the snapshot [`Server::shutdown`] writes last.
    persist: Option<PathBuf>,
    /// Log startup and shutdown lines (the binary does, tests do not).
    log: bool,
}

impl Server {
    /// Binds the listeners and starts every thread. Returns once the
    /// server accepts connections.
    pub fn start(config: Config) -> io::Result<Server> {
        let store = Store::new(pogocache_store::Config {
            shards: config.shards,
            load_factor: config.loadfactor,
            cas: config.cas,
            evict: config.evict,
            seed: config.seed,
            max_bytes: None,
            ..Default::default()
        });
        let settings = Settings {
            auth: config.auth.clone().into_bytes(),
            persist: config.persist.clone(),
            verbosity: config.verbosity,
            exat_unix: config.exat_unix,
            threads: config.threads,
            maxconns: config.maxconns,
            mc_legacy: config.mc_legacy,
            pg_auth: config.pg_auth,
            tls: config.tlsport.is_some(),
            host: config.host.clone(),
            port: config.port.unwrap_or(0),
            maxmemory: config.maxmemory.unwrap_or(0),
            evict: config.evict,
            allocator: config::allocator(),
            repl_backlog: config.repl_backlog,
        };
        let mut shared = Shared::new(store, settings, config.threads);
        shared
            .repl
            .set_primary_auth(config.primary_auth.clone().map(String::into_bytes));
        shared.repl.set_read_only(config.replica_read_only);
        shared.repl.set_priority(config.replica_priority);
        if config.cluster {
            let path = config.cluster_config.clone().unwrap_or_default();
            let c = pogocache_command::cluster::Cluster::load(
                path,
                config.cluster_node.clone(),
                &config.host,
                config.port.unwrap_or(0),
            )
            .map_err(|e| io::Error::other(format!("# cluster: {e}")))?;
            shared.cluster = Some(c);
        }
        let shared = Arc::new(shared);
        let stop = Arc::new(ticker::Stop::default());
        let tls = match (config.tlsport, &config.tlscert, &config.tlskey) {
            (None, _, _) => None,
            (Some(_), Some(cert), Some(key)) => Some(
                tls::server_config(cert, key, config.tlscacert.as_deref())
                    .map_err(io::Error::other)?,
            ),
            (Some(_), _, _) => {
                return Err(io::Error::other(
                    "# tls: --tlsport needs both --tlscert and --tlskey",
                ));
            }
        };
        let listeners = listener::bind(&config)?;
        let tls_addr = listeners.tls_addr();
        let local_addr = listeners.local_addr();
        if config.log_startup {
            log::line(format_args!("* Network listener established"));
            if let Some(c) = &shared.cluster {
                let t = c.topology();
                log::line(format_args!(
                    "* Cluster mode: node {} ({}) owns {} of {} slots, {} nodes",
                    t.myself().name,
                    t.myself().id,
                    t.owned(),
                    pogocache_command::cluster::SLOTS,
                    t.nodes.len()
                ));
            }
        }
        // Load before serving: connections wait in the accept backlog.
        if let Some(path) = &config.persist {
            persist_startup(&shared, path, config.recover, config.log_startup)?;
            // The replication id and offset saved with the snapshot: a
            // restarted replica continues with a partial resync.
            shared
                .repl
                .restore_saved(path, &shared.store, config.replicaof.is_some());
        }
        let unix_path = config.unixsocket.clone();

        let mut threads = Vec::new();
        let mut handles = Vec::new();
        let mut wakers = Vec::new();
        let mut wakes = Vec::new();
        for id in 0..config.threads.max(1) {
            let w = worker::Worker::new(id, shared.clone(), &config, stop.clone(), tls.clone())?;
            handles.push(w.handle());
            wakes.push(w.wake());
            wakers.push(w.handle().waker.clone());
            threads.push(spawn(format!("worker-{id}"), move || w.run())?);
        }
        shared.repl.set_wakers(wakes);
        let kick: Vec<_> = handles.iter().map(|h| h.waker.clone()).collect();
        shared.clients.set_waker(Box::new(move |i| {
            if let Some(w) = kick.get(i) {
                let _ = w.wake();
            }
        }));
        let acceptor = listener::Acceptor::new(listeners, handles, shared.clone(), &config)?;
        wakers.push(acceptor.waker());
        threads.push(spawn("acceptor".into(), move || acceptor.run())?);
        let t = ticker::Ticker::new(shared.clone(), stop.clone(), &config);
        threads.push(spawn("ticker".into(), move || t.run())?);
        if let (Some(path), secs @ 1..) = (config.persist.clone(), config.save_interval) {
            let (shared, stop) = (shared.clone(), stop.clone());
            threads.push(spawn("saver".into(), move || {
                ticker::saver(&shared, &stop, &path, secs)
            })?);
        }
        if let Some((host, port)) = &config.replicaof {
            shared.repl.follow(&shared, host.clone(), *port);
        }
        Ok(Server {
            shared,
            stop,
            threads,
            wakers,
            local_addr,
            tls_addr,
            unix_path,
            persist: config.persist.clone(),
            log: config.log_startup,
        })
    }

    /// The bound TCP address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The bound TLS address, with `--tlsport`.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Shared state: the store, stats and settings.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Re-reads the cluster nodes file (the binary calls this on SIGHUP;
    /// `CLUSTER RELOAD` does the same), logging what changed. An invalid
    /// file keeps the current topology and logs why.
    pub fn reload_cluster(&self) -> Result<pogocache_command::cluster::Reloaded, String> {
        let r = pogocache_command::cluster::Cluster::reload(&self.shared);
        match &r {
            Ok(r) => log::line(format_args!(
                "* Cluster topology reloaded: {} slots gained, {} lost",
                r.gained, r.lost
            )),
            Err(e) => log::eline(format_args!("# Cluster reload failed: {e}")),
        }
        r
    }

    /// Stops accepting, closes every connection, joins all threads and,
    /// with `--persist`, writes the final snapshot. Serving stops first,
    /// so the snapshot holds every acknowledged write (Pogocache saves
    /// while still serving, gap H8). The binary and the tests both stop
    /// the server this way. Returns the save's error, with its message.
    pub fn shutdown(self) -> io::Result<()> {
        if self.log
            && let Some(path) = &self.persist
        {
            log::line(format_args!(
                "* Saving data to {}, please wait...",
                path.display()
            ));
        }
        self.stop.set();
        for w in &self.wakers {
            let _ = w.wake();
        }
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
        // No more replicated writes land after this: the snapshot and the
        // offset saved beside it agree.
        self.shared.repl.stop();
        if let Some(path) = &self.persist {
            self.shared
                .repl
                .save(&self.shared.store, path)
                .map_err(|e| io::Error::other(format!("# Save failed: {e}")))?;
        }
        Ok(())
    }
}

/// `--persist` at startup: refuse a missing directory (Pogocache exits 0,
/// gap A5), remove this path's stale work files, then load the snapshot
/// if there is one, logging progress. A damaged file stops the start
/// (`--recover strict`) or is loaded past its damage and then renamed
/// aside so that no later save overwrites it silently (`skip`).
fn persist_startup(
    shared: &Shared,
    path: &std::path::Path,
    mode: pogocache_persist::Recovery,
    log: bool,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if let Err(e) = std::fs::read_dir(dir) {
        return Err(io::Error::new(
            e.kind(),
            format!("# opendir: {}: {e}", dir.display()),
        ));
    }
    for removed in pogocache_persist::remove_stale_work_files(path)? {
        log::line(format_args!("# deleted work file {}", removed.display()));
    }
    if !path.exists() {
        return Ok(());
    }
    if log {
        log::line(format_args!(
            "* Loading data from {}, please wait...",
            path.display()
        ));
    }
    let t = std::time::Instant::now();
    let progress = |n: u64| {
        log::line(format_args!(
            ". loading {}: {n} entries so far ({:.0}s)",
            path.display(),
            t.elapsed().as_secs_f64()
        ))
    };
    let (st, skipped) = pogocache_persist::load(&shared.store, path, mode, progress)
        .map_err(|e| io::Error::other(format!("# Load failed: {e}")))?;
    shared.mark_snapshot();
    let secs = t.elapsed().as_secs_f64().max(1e-9);
    let mb = st.bytes as f64 / (1024.0 * 1024.0);
    if log {
        log::line(format_args!(
            "* Loaded {} entries ({} expired) ({mb:.3} MB in {secs:.3} secs) ({:.0} entries/sec, {:.0} MB/sec) ",
            st.entries,
            st.expired,
            (st.entries + st.expired) as f64 / secs,
            mb / secs
        ));
    }
    if !skipped.is_empty() {
        for e in &skipped {
            log::line(format_args!("# Skipped damaged data: {e}"));
        }
        let unix = pogocache_store::clock::wall_ns() / 1_000_000_000;
        let mut aside = path.as_os_str().to_os_string();
        aside.push(format!(".bad-{unix}"));
        std::fs::rename(path, &aside)?;
        log::line(format_args!(
            "# Kept the damaged snapshot as {}",
            std::path::Path::new(&aside).display()
        ));
    }
    Ok(())
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
}

/// Makes any panic, on any thread, end the process loudly: the message and
/// a backtrace go to stderr and the process aborts, so a dead worker can
/// never linger with its connections frozen. (Release builds also use
/// `panic = "abort"`; this covers debug builds and tests of the binary.)
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        eprintln!("# fatal: a thread panicked; exiting");
        std::process::abort();
    }));
}
