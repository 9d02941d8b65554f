//! Helpers shared by the tests that run the real binary.

#![allow(dead_code)]

use std::io::BufRead;

/// Reads the server's log up to its ready line (the server's own signal
/// that it accepts connections, so nothing sleeps). Returns what was read,
/// or, if the server exited first, `Err` with the log so far.
pub fn until_ready(out: &mut impl BufRead) -> Result<String, String> {
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            return Err(log);
        }
        log.push_str(&line);
        if line == "* Ready to accept connections\n" {
            return Ok(log);
        }
    }
}

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A port free at the moment of asking: bound on 127.0.0.1:0 and released.
/// For topologies that must name every node's port before the nodes
/// start (cluster nodes files, proxy configs); the kernel does not hand
/// the same ephemeral port out again at once.
pub fn reserve() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `pogocache` process of this build, killed when dropped. Its log
/// lines arrive on a channel, so tests wait on what it prints.
pub struct Node {
    pub child: Child,
    pub port: u16,
    log: mpsc::Receiver<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on `port` with `extra` flags and waits for its
/// ready line; panics with the log if it exits first.
pub fn spawn_node(port: u16, extra: &[&str]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pogocache"))
        .args(["-p", &port.to_string(), "--threads", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut errs = child.stderr.take().unwrap();
    match until_ready(&mut out) {
        Ok(_) => {}
        Err(log) => {
            let mut e = String::new();
            let _ = errs.read_to_string(&mut e);
            panic!("server on {port} exited: {log}{e}");
        }
    }
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(errs).lines().map_while(Result::ok) {
            let _ = tx2.send(line);
        }
    });
    Node {
        child,
        port,
        log: rx,
    }
}

impl Node {
    /// Waits (up to 20 s) for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} from the node on {}", self.port),
            }
        }
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.port)
    }
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// A RESP request.
pub fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Length of the first complete RESP2 reply in `b`, if there is one.
fn reply_len(b: &[u8]) -> Option<usize> {
    let line = b.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&b[1..line]).ok()?;
    let after = line + 2;
    match b.first()? {
        b'+' | b'-' | b':' => Some(after),
        b'$' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            let end = after + n as usize + 2;
            (b.len() >= end).then_some(end)
        }
        b'*' => {
            let n: i64 = head.parse().ok()?;
            let mut at = after;
            for _ in 0..n.max(0) {
                at += reply_len(&b[at..])?;
            }
            Some(at)
        }
        _ => None,
    }
}

/// Sends `req` and returns exactly one RESP reply's bytes.
pub fn call(s: &mut TcpStream, req: &[u8]) -> Vec<u8> {
    s.write_all(req).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(n) = reply_len(&got) {
            assert_eq!(
                n,
                got.len(),
                "more than one reply: {:?}",
                String::from_utf8_lossy(&got)
            );
            return got;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// Sends `req` and reads until the reply ends with `end` (text protocols).
pub fn call_until(s: &mut TcpStream, req: &[u8], end: &[u8]) -> Vec<u8> {
    s.write_all(req).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while !got.ends_with(end) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Whether an external tool can run here. Under CI (`CI` set) a missing
/// tool fails the test, because `.ci/run` installs it; elsewhere the test
/// is skipped with a note.
pub fn have(program: &str, probe: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is required under CI (.ci/run installs it)"
        );
        eprintln!("skipped: {program} is not installed");
    }
    ok
}

/// Runs a command to completion (bounded by `timeout` seconds through
/// coreutils' `timeout`), returning stdout; panics with stderr on failure.
pub fn run(program: &str, args: &[&str], secs: u32) -> String {
    let out = Command::new("timeout")
        .arg(secs.to_string())
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
