//! Listening sockets and the acceptor thread.
//!
//! Owns: resolving `-h`, binding TCP (IPv4 or IPv6) and Unix listeners
//! with `--backlog`/`--reuseport`, per-socket options, `--maxconns`, and
//! the round-robin hand-off to workers. Does not own: reading or writing
//! connections (the workers do).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use pogocache_command::Shared;

use crate::config::Config;
use crate::worker::WorkerHandle;

/// An accepted connection of either family.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    /// Our end's address as CLIENT LIST shows it (`laddr`).
    pub fn local_name(&self) -> String {
        match self {
            Stream::Tcp(s) => s.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Stream::Unix(s) => s
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_default(),
        }
    }
}

impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub struct Listeners {
    tcp: Option<TcpListener>,
    unix: Option<UnixListener>,
    tls: Option<TcpListener>,
}

impl Listeners {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|l| l.local_addr().ok())
    }
}

fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    // An empty root (FROM scratch) cannot resolve "localhost" without
    // /etc/hosts; never depend on NSS for it.
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs.sort_by_key(|a| !a.is_ipv4()); // prefer IPv4, as Pogocache does
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
}

fn bind_tcp(c: &Config, port: u16, port_text: &str) -> io::Result<TcpListener> {
    let addr = resolve(&c.host, port).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("# getaddrinfo: {e}: {}:{port_text}", c.host),
        )
    })?;
    let ctx = |what: &str, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("# {what}(tcp): {}:{port_text}: {e}", c.host),
        )
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .map_err(|e| ctx("socket", e))?;
    sock.set_reuse_address(true)
        .map_err(|e| ctx("setsockopt", e))?;
    if c.reuseport {
        sock.set_reuse_port(true)
            .map_err(|e| ctx("setsockopt", e))?;
    }
    sock.bind(&addr.into()).map_err(|e| ctx("bind", e))?;
    sock.listen(c.backlog).map_err(|e| ctx("listen", e))?;
    sock.set_nonblocking(true)?;
    Ok(TcpListener::from_std(sock.into()))
}

/// Binds every configured listener. Errors carry Pogocache's messages.
pub fn bind(c: &Config) -> io::Result<Listeners> {
    let tcp = match c.port {
        None => None,
        Some(port) => Some(bind_tcp(c, port, &c.port_text)?),
    };
    let tls = match c.tlsport {
        None => None,
        Some(port) => Some(bind_tcp(c, port, &port.to_string())?),
    };
    let unix = match &c.unixsocket {
        None => None,
        Some(path) => {
            let _ = std::fs::remove_file(path);
            Some(UnixListener::bind(path).map_err(|e| {
                io::Error::new(e.kind(), format!("# bind(unix): {}: {e}", path.display()))
            })?)
        }
    };
    Ok(Listeners { tcp, unix, tls })
}

const TCP: Token = Token(0);
const UNIX: Token = Token(1);
const STOP: Token = Token(2);
const TLS: Token = Token(3);

pub struct Acceptor {
    poll: Poll,
    listeners: Listeners,
    workers: Vec<WorkerHandle>,
    next: usize,
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    tcpnodelay: bool,
    keepalive: bool,
    quickack: bool,
    maxconns: u64,
}

impl Acceptor {
    pub fn new(
        mut listeners: Listeners,
        workers: Vec<WorkerHandle>,
        shared: Arc<Shared>,
        c: &Config,
    ) -> io::Result<Acceptor> {
        let poll = Poll::new()?;
        if let Some(l) = &mut listeners.tcp {
            poll.registry().register(l, TCP, Interest::READABLE)?;
        }
        if let Some(l) = &mut listeners.unix {
            poll.registry().register(l, UNIX, Interest::READABLE)?;
        }
        if let Some(l) = &mut listeners.tls {
            poll.registry().register(l, TLS, Interest::READABLE)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), STOP)?);
        Ok(Acceptor {
            poll,
            listeners,
            workers,
            next: 0,
            shared,
            waker,
            tcpnodelay: c.tcpnodelay,
            keepalive: c.keepalive,
            quickack: c.quickack,
            maxconns: c.maxconns as u64,
        })
    }

    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                panic!("acceptor poll failed: {e}");
            }
            for ev in events.iter() {
                match ev.token() {
                    STOP => return,
                    TCP => self.accept_tcp(false),
                    TLS => self.accept_tcp(true),
                    UNIX => self.accept_unix(),
                    _ => {}
                }
            }
        }
    }

    fn accept_tcp(&mut self, tls: bool) {
        loop {
            let listener = if tls {
                &self.listeners.tls
            } else {
                &self.listeners.tcp
            };
            let Some(l) = listener else { return };
            match l.accept() {
                Ok((s, addr)) => {
                    let _ = s.set_nodelay(self.tcpnodelay);
                    let sock = socket2::SockRef::from(&s);
                    if self.keepalive {
                        let ka = socket2::TcpKeepalive::new()
                            .with_time(Duration::from_secs(300))
                            .with_interval(Duration::from_secs(30))
                            .with_retries(3);
                        let _ = sock.set_tcp_keepalive(&ka);
                    }
                    if self.quickack {
                        set_quickack(&s);
                    }
                    self.hand_off(Stream::Tcp(s), addr.to_string(), tls);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    if !transient(&e) {
                        eprintln!("# accept(tcp): {e}");
                    }
                    // Out of descriptors and friends: back off briefly
                    // rather than spin on a listener that stays readable.
                    std::thread::sleep(Duration::from_millis(10));
                    return;
                }
            }
        }
    }

    fn accept_unix(&mut self) {
        loop {
            let Some(l) = &self.listeners.unix else {
                return;
            };
            match l.accept() {
                Ok((s, _)) => self.hand_off(Stream::Unix(s), "unixsocket".into(), false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    return;
                }
            }
        }
    }

    fn hand_off(&mut self, stream: Stream, addr: String, tls: bool) {
        let conns = &self.shared.conns;
        if conns.curr.load(Relaxed) >= self.maxconns {
            conns.rejected.fetch_add(1, Relaxed);
            drop(stream); // closed without a reply, as Pogocache does
            return;
        }
        conns.curr.fetch_add(1, Relaxed);
        conns.total.fetch_add(1, Relaxed);
        let w = &self.workers[self.next % self.workers.len()];
        self.next = self.next.wrapping_add(1);
        w.send(stream, addr, tls, self.shared.clients.next_id());
    }
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
    )
}

/// `--quickack yes`: real TCP_QUICKACK (Pogocache sets SO_PRIORITY by
/// mistake, gap G5).
fn set_quickack(s: &TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: valid fd and a pointer to an int of the stated size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
