//! Failover driven by Redis Sentinel (Debian's `redis-sentinel`): one
//! primary, two replicas and three Sentinels, all real processes on
//! 127.0.0.1. A writer follows the primary through redis-py's Sentinel
//! client with `WAIT 1 1000` after each write; the primary gets `kill -9`.
//! A replica must be promoted, the other must follow it, the writer must
//! resume, no acknowledged write may be lost, and the old primary must
//! rejoin as a replica when it comes back.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

fn info(port: u16) -> String {
    let mut s = connect(port);
    String::from_utf8_lossy(&call(&mut s, &cmd(&[b"INFO", b"replication"]))).into_owned()
}

/// Polls `f` every 50 ms until it holds, for at most `secs` (Sentinel's
/// own timers decide when things happen; there is no event to wait on
/// from outside).
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `SENTINEL master mymaster` as name/value pairs (none while the
/// Sentinel is not listening yet).
fn sentinel_master(port: u16) -> Vec<(String, String)> {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let r = call(&mut s, &cmd(&[b"SENTINEL", b"master", b"mymaster"]));
    let text = String::from_utf8_lossy(&r).into_owned();
    let words: Vec<String> = text
        .split("\r\n")
        .filter(|l| !l.starts_with('*') && !l.starts_with('$') && !l.is_empty())
        .map(str::to_string)
        .collect();
    words
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

fn get(pairs: &[(String, String)], k: &str) -> String {
    pairs
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn start_sentinels(dir: &std::path::Path, primary: u16) -> (Vec<Proc>, Vec<u16>) {
    let mut procs = Vec::new();
    let mut ports = Vec::new();
    for i in 0..3 {
        let port = reserve();
        let conf = dir.join(format!("sentinel-{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds mymaster 2000\n\
                 sentinel failover-timeout mymaster 10000\n\
                 sentinel parallel-syncs mymaster 1\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        procs.push(Proc(child));
        ports.push(port);
    }
    (procs, ports)
}

struct Run {
    /// From `kill -9` to the first write acknowledged by WAIT after it.
    failover: Duration,
}

fn one_run(dir: &std::path::Path) -> Run {
    let primary = spawn_node(reserve(), &[]);
    let p = primary.port;
    let ps = p.to_string();
    let replicas: Vec<Node> = (0..2)
        .map(|_| {
            let n = spawn_node(reserve(), &["--replicaof", "127.0.0.1", &ps]);
            n.wait_log("sync: Finished with success");
            n
        })
        .collect();
    let (_sentinels, sports) = start_sentinels(dir, p);
    // Sentinels have found both replicas (through INFO) and each other
    // (through the primary's __sentinel__:hello channel).
    for &sp in &sports {
        eventually(30, "sentinel discovery", || {
            let m = sentinel_master(sp);
            get(&m, "num-slaves") == "2" && get(&m, "num-other-sentinels") == "2"
        });
    }

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/sentinel_writer.py"
    );
    let list = sports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut writer = Command::new("timeout")
        .args(["150", "python3", script, &list, "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(writer.stdout.take().unwrap());
    let _writer = Proc(writer);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the writer went quiet")
    };
    let mut acked = Vec::new();
    while acked.len() < 200 {
        let l = next();
        if let Some(i) = l.strip_prefix("ACK ") {
            acked.push(i.parse::<u64>().unwrap());
        } else {
            assert!(!l.starts_with("ERR"), "error before the kill: {l}");
        }
    }
    // kill -9 (Node's drop sends SIGKILL).
    drop(primary);
    let killed = Instant::now();
    let mut errored = false;
    let mut failover = None;
    loop {
        let l = next();
        if l == "DONE" {
            break;
        }
        if l.starts_with("ERR") {
            errored = true;
        } else if let Some(i) = l.strip_prefix("ACK ") {
            if errored && failover.is_none() {
                failover = Some(killed.elapsed());
            }
            acked.push(i.parse().unwrap());
        }
    }
    let failover = failover.expect("the writer never resumed");

    // A replica was promoted, and the other follows it.
    let roles: Vec<String> = replicas
        .iter()
        .map(|r| field(&info(r.port), "role").unwrap())
        .collect();
    let promoted = roles
        .iter()
        .position(|r| r == "master")
        .expect("no promotion");
    let new_primary = replicas[promoted].port;
    let other = replicas[1 - promoted].port;
    eventually(30, "the other replica following the new primary", || {
        let i = info(other);
        field(&i, "master_port") == Some(new_primary.to_string())
            && field(&i, "master_link_status").as_deref() == Some("up")
    });
    for &sp in &sports {
        let mut s = connect(sp);
        let r = call(
            &mut s,
            &cmd(&[b"SENTINEL", b"get-master-addr-by-name", b"mymaster"]),
        );
        assert_eq!(
            r,
            format!(
                "*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{new_primary}\r\n",
                new_primary.to_string().len()
            )
            .as_bytes()
        );
    }

    // No write that WAIT acknowledged is lost.
    let mut s = connect(new_primary);
    for chunk in acked.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|i| format!("w:{i}")).collect();
        let mut req: Vec<&[u8]> = vec![b"MGET"];
        req.extend(keys.iter().map(|k| k.as_bytes()));
        let got = String::from_utf8_lossy(&call(&mut s, &cmd(&req))).into_owned();
        for i in chunk {
            let v = format!("\r\nv{i}\r\n");
            assert!(got.contains(&v), "acknowledged write w:{i} lost");
        }
    }

    // The old primary comes back empty and rejoins as a replica of the
    // new one (Sentinel reconfigures it), then holds the data.
    let old = spawn_node(p, &[]);
    eventually(60, "the old primary rejoining as a replica", || {
        let i = info(old.port);
        field(&i, "role").as_deref() == Some("slave")
            && field(&i, "master_port") == Some(new_primary.to_string())
            && field(&i, "master_link_status").as_deref() == Some("up")
    });
    assert_eq!(
        call(&mut s, &cmd(&[b"WAIT", b"2", b"10000"])),
        b":2\r\n",
        "both replicas of the new primary acknowledge"
    );
    let last = format!("w:{}", acked.last().unwrap());
    let mut o = connect(old.port);
    assert_eq!(
        call(&mut o, &cmd(&[b"GET", last.as_bytes()])),
        call(&mut s, &cmd(&[b"GET", last.as_bytes()]))
    );
    Run { failover }
}

#[test]
fn sentinel_promotes_a_replica_and_no_acknowledged_write_is_lost() {
    if !have("redis-sentinel", &["--version"]) || !have("python3", &["-c", "import redis.sentinel"])
    {
        return;
    }
    // POGOCACHE_FAILOVER_RUNS=5 measures the median failover time.
    let runs: usize = std::env::var("POGOCACHE_FAILOVER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut times = Vec::new();
    for run in 0..runs {
        let dir: PathBuf =
            std::env::temp_dir().join(format!("pogo-failover-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let r = one_run(&dir);
        eprintln!(
            "failover run {run}: kill -9 to the first acknowledged write: {} ms",
            r.failover.as_millis()
        );
        times.push(r.failover);
        let _ = std::fs::remove_dir_all(&dir);
    }
    times.sort();
    eprintln!(
        "failover median of {runs}: {} ms",
        times[times.len() / 2].as_millis()
    );
}
