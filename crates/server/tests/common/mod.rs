//! Shared helpers for the black-box tests: start a server in-process on
//! 127.0.0.1 port 0 (exactly as `main` does), talk raw bytes to it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use pogocache_server::{Config, Server};

pub fn config() -> Config {
    Config {
        threads: 2,
        seed: Some(1),
        port: Some(0),
        ..Config::default()
    }
}

pub fn start(c: Config) -> (Server, SocketAddr) {
    let s = Server::start(c).expect("server starts");
    let addr = s.local_addr().expect("tcp listener");
    (s, addr)
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    // A bound on how long a broken test can hang, not a synchronisation.
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads exactly `n` bytes.
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    buf
}

/// Sends `req` and asserts the reply is exactly `want`.
pub fn exchange(s: &mut TcpStream, req: &[u8], want: &[u8]) {
    s.write_all(req).unwrap();
    let got = read_n(s, want.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(want),
        "request {:?}",
        String::from_utf8_lossy(req)
    );
}

/// Asserts the server closed the connection (EOF or reset, no bytes).
pub fn assert_closed(s: &mut TcpStream) {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => {}
        Ok(n) => panic!("expected close, got {:?}", String::from_utf8_lossy(&b[..n])),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "expected close, got {e}"
        ),
    }
}

/// This process's resident set size in bytes.
pub fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

/// Whether RSS bounds mean anything in this run: under AddressSanitizer
/// (scripts/sanitize.sh sets `POGOCACHE_SANITIZER`) shadow memory and the
/// free quarantine inflate RSS many times over, so only behaviour is
/// checked there.
pub fn rss_bounds_apply() -> bool {
    std::env::var_os("POGOCACHE_SANITIZER").is_none()
}

/// Whether an external client tool the tests drive is installed (the
/// command exits 0). `.ci/run` installs them all, so under CI (the `CI`
/// environment variable) a missing one is a failure; elsewhere (a
/// developer machine, the compose test container) the test is skipped.
pub fn tool(cmd: &str, args: &[&str]) -> bool {
    let ok = std::process::Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "{cmd} {args:?} failed in CI"
    );
    if !ok {
        eprintln!("{cmd} not available; skipping (.ci/run installs it)");
    }
    ok
}

/// Encodes a RESP multibulk request.
pub fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    pogocache_protocol::resp::request(&mut out, args);
    out
}

/// One captured session of the reference binary (tests/data/*.rs): a
/// connection and its request/reply steps, in order.
pub struct Session {
    pub name: &'static str,
    /// Ran against the instance started with `--auth secret`.
    pub auth: bool,
    pub steps: &'static [Step],
}

/// One captured exchange: the bytes sent, the exact reply, and whether
/// the server then closed the connection.
pub struct Step {
    pub send: &'static [u8],
    pub reply: &'static [u8],
    pub closed: bool,
}
