//! Durability through the real binary: `--persist` round trips for every
//! protocol (TTLs included), SIGKILL in the middle of background saves,
//! and damaged snapshot files.

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

struct Running {
    child: Child,
    out: BufReader<ChildStdout>,
    sock: PathBuf,
    log: String,
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pogocache-bin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Whatever happens in a test, the server process does not outlive it.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a Unix socket in `dir` and waits for its ready
/// line (or its exit). The child is reaped by `stop` or by `Drop`.
#[allow(clippy::zombie_processes)]
fn start(dir: &Path, extra: &[&str]) -> Result<Running, (i32, String)> {
    let sock = dir.join("s.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pogocache"))
        .args(["-p", "0", "-s", sock.to_str().unwrap(), "--threads", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    match common::until_ready(&mut out) {
        Err(log) => {
            let status = child.wait().unwrap();
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            Err((status.code().unwrap_or(-1), log + &err))
        }
        Ok(log) => Ok(Running {
            child,
            out,
            sock,
            log,
        }),
    }
}

fn conn(r: &Running) -> UnixStream {
    let s = UnixStream::connect(&r.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn talk(s: &mut UnixStream, req: &[u8], reply_len: usize) -> Vec<u8> {
    s.write_all(req).unwrap();
    let mut buf = vec![0; reply_len];
    s.read_exact(&mut buf).unwrap();
    buf
}

fn stop(mut r: Running) -> (i32, String) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(r.child.id() as i32, libc::SIGTERM) };
    let status = r.child.wait().unwrap();
    let mut rest = String::new();
    r.out.read_to_string(&mut rest).unwrap();
    (status.code().unwrap_or(-1), rest)
}

#[test]
fn restart_round_trip_for_every_protocol() {
    let dir = tmpdir("roundtrip");
    let db = dir.join("data.db");
    let args = ["--persist", db.to_str().unwrap()];
    let r = start(&dir, &args).unwrap();
    let mut c = conn(&r);
    assert_eq!(talk(&mut c, b"SET resp v1 EX 1000\r\n", 5), b"+OK\r\n");
    let mut m = conn(&r);
    assert_eq!(
        talk(&mut m, b"set mc 42 0 5\r\nhello\r\n", 8),
        b"STORED\r\n"
    );
    let mut h = conn(&r);
    let put = b"PUT /web?ttl=500 HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc";
    let reply = talk(&mut h, put, 60);
    assert!(
        reply.starts_with(b"HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // Postgres: startup, then a simple query.
    let mut pg = conn(&r);
    pg.write_all(b"\x00\x00\x00\x1b\x00\x03\x00\x00user\x00u\x00database\x00d\x00\x00")
        .unwrap();
    let mut seen = Vec::new();
    while !seen.ends_with(b"Z\x00\x00\x00\x05I") {
        seen.extend(talk(&mut pg, b"", 1));
    }
    let q = b"SET pgk 'from pg' EX 700\x00";
    let mut msg = vec![b'Q'];
    msg.extend_from_slice(&((q.len() + 4) as u32).to_be_bytes());
    msg.extend_from_slice(q);
    assert_eq!(
        talk(&mut pg, &msg, 17),
        b"C\x00\x00\x00\nSET 1\x00Z\x00\x00\x00\x05I"
    );
    let (code, rest) = stop(r);
    assert_eq!(code, 0, "{rest}");
    assert_eq!(
        rest,
        format!(
            "* Saving data to {}, please wait...\n# Pogocache exiting now\n",
            db.display()
        )
    );

    let r = start(&dir, &args).unwrap();
    assert!(
        r.log.contains("* Loaded 4 entries (0 expired)"),
        "{}",
        r.log
    );
    let mut c = conn(&r);
    assert_eq!(talk(&mut c, b"GET resp\r\n", 8), b"$2\r\nv1\r\n");
    let ttl = talk(&mut c, b"TTL resp\r\n", 6);
    assert!(
        ttl == b":999\r\n" || ttl == b":998\r\n",
        "{}",
        String::from_utf8_lossy(&ttl)
    );
    assert_eq!(talk(&mut c, b"TTL web\r\n", 6), b":499\r\n");
    assert_eq!(talk(&mut c, b"GET pgk\r\n", 13), b"$7\r\nfrom pg\r\n");
    assert_eq!(talk(&mut c, b"TTL pgk\r\n", 6), b":699\r\n");
    let mut m = conn(&r);
    assert_eq!(
        talk(&mut m, b"get mc\r\n", 27),
        b"VALUE mc 42 5\r\nhello\r\nEND\r\n"
    );
    assert_eq!(talk(&mut c, b"SAVE\r\n", 5), b"+OK\r\n");
    assert_eq!(talk(&mut c, b"FLUSHALL\r\n", 5), b"+OK\r\n");
    assert_eq!(talk(&mut c, b"LOAD\r\n", 5), b"+OK\r\n");
    assert_eq!(talk(&mut c, b"DBSIZE\r\n", 4), b":4\r\n");
    assert_eq!(
        talk(&mut c, b"LOAD FROM /nonexistent/x.db\r\n", 14),
        b"-load failed\r\n"
    );
    let (code, _) = stop(r);
    assert_eq!(code, 0);
    let mode = std::fs::metadata(&db).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}

#[test]
fn sigkill_during_background_saves_keeps_the_last_good_snapshot() {
    let dir = tmpdir("sigkill");
    let db = dir.join("data.db");
    let args = ["--persist", db.to_str().unwrap(), "--saveinterval", "1"];
    let r = start(&dir, &args).unwrap();
    let mut c = conn(&r);
    assert_eq!(
        talk(&mut c, b"DEBUG POPULATE 300000 key 64\r\n", 5),
        b"+OK\r\n"
    );
    let (code, _) = stop(r);
    assert_eq!(code, 0);
    for round in 0..3 {
        let mut r = start(&dir, &args).unwrap();
        assert!(
            r.log.contains("* Loaded 300000 entries"),
            "round {round}: {}",
            r.log
        );
        // Wait (bounded) until a background save is writing its work
        // file, then kill the process in the middle of it.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut caught = false;
        while Instant::now() < deadline && !caught {
            caught = std::fs::read_dir(&dir).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".pogocache.work")
            });
            std::thread::yield_now();
        }
        r.child.kill().unwrap();
        r.child.wait().unwrap();
        assert!(caught, "round {round}: no background save was seen");
        assert!(db.exists());
    }
    let r = start(&dir, &args).unwrap();
    assert!(r.log.contains("* Loaded 300000 entries"), "{}", r.log);
    assert!(
        r.log.contains("# deleted work file"),
        "stale work file cleaned: {}",
        r.log
    );
    stop(r);
}

#[test]
fn damaged_snapshots_stop_the_start_or_are_set_aside() {
    let dir = tmpdir("damaged");
    let db = dir.join("data.db");
    let args = ["--persist", db.to_str().unwrap()];
    let r = start(&dir, &args).unwrap();
    let mut c = conn(&r);
    for i in 0..50 {
        assert_eq!(
            talk(&mut c, format!("SET k{i} v{i}\r\n").as_bytes(), 5),
            b"+OK\r\n"
        );
    }
    stop(r);
    let mut bytes = std::fs::read(&db).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x55;
    std::fs::write(&db, &bytes).unwrap();
    let (code, log) = start(&dir, &args)
        .err()
        .expect("strict recovery refuses to start");
    assert_eq!(code, 1);
    assert!(
        log.contains("# Load failed:")
            && log.contains("data.db: at offset")
            && log.contains("bad crc"),
        "{log}"
    );
    // Truncated as well.
    std::fs::write(&db, &bytes[..n - 3]).unwrap();
    let (code, log) = start(&dir, &args).err().expect("truncated file refused");
    assert_eq!(code, 1);
    assert!(log.contains("short read"), "{log}");
    // With --recover skip it starts, loads what is readable, and keeps
    // the damaged file aside instead of overwriting it later.
    std::fs::write(&db, &bytes).unwrap();
    let r = start(&dir, &[&args[..], &["--recover", "skip"]].concat()).unwrap();
    assert!(r.log.contains("# Skipped damaged data:"), "{}", r.log);
    assert!(
        r.log.contains("# Kept the damaged snapshot as"),
        "{}",
        r.log
    );
    assert!(!db.exists());
    stop(r);
    assert!(db.exists(), "a fresh snapshot was written at shutdown");
    let kept = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".bad-")
        })
        .count();
    assert_eq!(kept, 1);
    // A missing directory is an error (Pogocache exits 0, gap A5).
    let (code, log) = start(&dir, &["--persist", "/nonexistent-dir/x.db"])
        .err()
        .expect("refused");
    assert_eq!(code, 1);
    assert!(log.contains("# opendir: /nonexistent-dir"), "{log}");
}
