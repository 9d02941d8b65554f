//! `--maxmemory` against the real binary, for values of every size: the
//! process's resident memory must stay within 10% of the limit once the
//! cache is full, whether the values are 100 bytes or 1 MiB, one size or
//! a mix. (A per-shard budget once let 1,200 values of 256 KiB take RSS
//! to 9.5x a 40 MB limit: each was larger than its shard's share, and
//! eviction looked only in that shard.)

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

const LIMIT: u64 = 64 << 20;

struct Server {
    child: Child,
    sock: PathBuf,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[allow(clippy::zombie_processes)]
fn start(name: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("pogocache-maxmem-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pogocache"))
        .args(["-p", "0", "-s", sock.to_str().unwrap(), "--threads", "1"])
        .args(["--maxmemory", &LIMIT.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    if let Err(log) = common::until_ready(&mut out) {
        panic!("server exited: {log}");
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Server { child, sock, dir }
}

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// A small deterministic generator (xorshift), so every run writes the
/// same sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes distinct keys with sizes from `size` until 4x the limit has
/// been sent, in pipelined batches of about 1 MiB, checking every reply.
/// Returns (peak RSS once past twice the limit, final RSS, keys held,
/// bytes held).
fn fill(name: &str, mut size: impl FnMut() -> usize) -> (u64, u64, u64, u64) {
    let srv = start(name);
    let pid = srv.child.id();
    let mut s = UnixStream::connect(&srv.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let (mut sent, mut key, mut peak) = (0u64, 0u64, 0u64);
    let mut sizes = std::collections::HashMap::new();
    let mut req = Vec::new();
    while sent < 4 * LIMIT {
        req.clear();
        let mut batch = 0;
        while req.len() < 1 << 20 {
            let n = size();
            req.extend_from_slice(format!("set k{key} 0 0 {n}\r\n").as_bytes());
            req.resize(req.len() + n, b'v');
            req.extend_from_slice(b"\r\n");
            sizes.insert(key, n as u64);
            key += 1;
            batch += 1;
            sent += n as u64;
        }
        s.write_all(&req).unwrap();
        let mut want = Vec::new();
        for _ in 0..batch {
            want.extend_from_slice(b"STORED\r\n");
        }
        let mut got = vec![0; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{name}"
        );
        if sent > 2 * LIMIT {
            peak = peak.max(rss(pid));
        }
    }
    let last = rss(pid);
    // What is still held: probe every key with a pipelined mget-style
    // get and add up the sizes of the hits.
    let (mut held, mut bytes) = (0u64, 0u64);
    let keys: Vec<u64> = (0..key).collect();
    for chunk in keys.chunks(200) {
        let mut q = b"get".to_vec();
        for k in chunk {
            q.extend_from_slice(format!(" k{k}").as_bytes());
        }
        q.extend_from_slice(b"\r\n");
        s.write_all(&q).unwrap();
        let mut r = BufReader::new(&mut s);
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "END\r\n" {
                break;
            }
            let mut parts = line.split_whitespace();
            assert_eq!(parts.next(), Some("VALUE"), "{line:?}");
            let k: u64 = parts.next().unwrap()[1..].parse().unwrap();
            let n: usize = parts.nth(1).unwrap().parse().unwrap();
            assert_eq!(n as u64, sizes[&k]);
            let mut v = vec![0; n + 2];
            r.read_exact(&mut v).unwrap();
            held += 1;
            bytes += n as u64;
        }
    }
    (peak, last, held, bytes)
}

fn check(name: &str, (peak, last, held, bytes): (u64, u64, u64, u64)) {
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "{name}: peak RSS {:.1} MiB, final {:.1} MiB, {held} keys holding {:.1} MiB (limit {:.0} MiB)",
        mb(peak),
        mb(last),
        mb(bytes),
        mb(LIMIT)
    );
    let bound = LIMIT + LIMIT / 10;
    assert!(peak <= bound, "{name}: peak RSS {peak} over {bound}");
    assert!(last <= bound, "{name}: final RSS {last} over {bound}");
    // It still caches: evictions make room, they do not empty the cache
    // (100-byte items cost about twice their value in RSS, and the server
    // itself a few MiB).
    assert!(bytes >= LIMIT * 4 / 10, "{name}: only {bytes} bytes kept");
}

#[test]
fn rss_stays_within_the_limit_for_every_value_size() {
    for size in [100usize, 4 << 10, 64 << 10, 256 << 10, 1 << 20] {
        let name = format!("{size}B");
        check(&name, fill(&name, || size));
    }
}

#[test]
fn rss_stays_within_the_limit_for_mixed_sizes() {
    // Log-uniform from 100 B to 1 MiB: most values small, most bytes in
    // the large ones.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    check(
        "mixed",
        fill("mixed", move || {
            let exp = (rng.next() % 10_000) as f64 / 10_000.0;
            (100.0 * (10_485.76f64).powf(exp)) as usize
        }),
    );
}
