//! Sharding with the engines users already run, against the real binary:
//! twemproxy (Debian's `nutcracker`) in front of three nodes for RESP and
//! for Memcache, with ketama and `auto_eject_hosts`, including a node
//! killed mid-run; client-side consistent hashing with pymemcache's
//! `HashClient` and libmemcached's ketama (pylibmc); and how many keys
//! move when a fourth node joins three, for every engine.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, call, call_until, cmd, have, reserve, run, spawn_node};

/// A nutcracker process, killed when dropped.
struct Proxy {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts nutcracker with one pool (`redis: true` for RESP) over `nodes`,
/// ketama, ejecting a host after one failure and not retrying it during
/// the test. Waits until the pool's port accepts.
fn proxy(name: &str, redis: bool, nodes: &[u16], extra: &str) -> Proxy {
    let dir = std::env::temp_dir().join(format!("pogocache-proxy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = reserve();
    let mut conf = format!(
        "pool:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  distribution: ketama\n  \
         redis: {redis}\n  auto_eject_hosts: true\n  server_failure_limit: 1\n  \
         server_retry_timeout: 600000\n  timeout: 2000\n  preconnect: true\n{extra}  servers:\n"
    );
    for (i, p) in nodes.iter().enumerate() {
        conf.push_str(&format!("   - 127.0.0.1:{p}:1 node-{}\n", i + 1));
    }
    let file = dir.join("nutcracker.yml");
    std::fs::write(&file, &conf).unwrap();
    let stats = reserve();
    let child = Command::new("nutcracker")
        .args([
            "-c",
            file.to_str().unwrap(),
            "-s",
            &stats.to_string(),
            "-a",
            "127.0.0.1",
        ])
        .args(["-o", dir.join("nutcracker.log").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proxy { child, port, dir };
    // nutcracker prints no ready line: poll its port until it accepts.
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nutcracker did not listen:\n{conf}"
        );
        std::thread::yield_now();
    }
    p
}

fn nodes(n: usize, extra: &[&str]) -> Vec<Node> {
    (0..n).map(|_| spawn_node(reserve(), extra)).collect()
}

fn dbsize(n: &Node) -> usize {
    let r = call(&mut n.connect(), &cmd(&[b"DBSIZE"]));
    std::str::from_utf8(&r[1..r.len() - 2])
        .unwrap()
        .parse()
        .unwrap()
}

/// Pipelined SETs of `key:{i}` through a connection, every reply checked.
fn fill_resp(s: &mut TcpStream, n: usize) {
    let mut req = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        req.clear();
        for i in chunk {
            req.extend(cmd(&[
                b"SET",
                format!("key:{i}").as_bytes(),
                format!("v{i}").as_bytes(),
            ]));
        }
        let want = b"+OK\r\n".repeat(chunk.len());
        assert_eq!(read_n(s, &req, want.len()), want);
    }
}

#[test]
fn twemproxy_resp_in_front_of_three_nodes() {
    if !have("nutcracker", &["--version"]) {
        return;
    }
    let mut ns = nodes(3, &[]);
    let ports: Vec<u16> = ns.iter().map(|n| n.port).collect();
    let p = proxy("resp", true, &ports, "");
    let mut s = common::connect(p.port);
    // Byte for byte what a Redis client sees through twemproxy.
    let exchanges: &[(&[&[u8]], &[u8])] = &[
        (&[b"SET", b"a", b"1"], b"+OK\r\n"),
        (&[b"SET", b"b", b"2", b"EX", b"100"], b"+OK\r\n"),
        (&[b"SET", b"c", b"3", b"NX"], b"+OK\r\n"),
        (&[b"SET", b"c", b"4", b"NX"], b"$-1\r\n"),
        (&[b"GET", b"a"], b"$1\r\n1\r\n"),
        (&[b"GET", b"nope"], b"$-1\r\n"),
        (
            &[b"MGET", b"a", b"nope", b"b", b"c"],
            b"*4\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n$1\r\n3\r\n",
        ),
        (&[b"EXISTS", b"a"], b":1\r\n"),
        (&[b"TTL", b"nope"], b":-2\r\n"),
        (&[b"PTTL", b"a"], b":-1\r\n"),
        (&[b"EXPIRE", b"a", b"50"], b":1\r\n"),
        (&[b"INCR", b"n"], b":1\r\n"),
        (&[b"INCRBY", b"n", b"41"], b":42\r\n"),
        (&[b"DECR", b"n"], b":41\r\n"),
        (&[b"DECRBY", b"n", b"1"], b":40\r\n"),
        (&[b"INCR", b"a"], b":2\r\n"),
        (&[b"APPEND", b"a", b"xy"], b":3\r\n"),
        (&[b"GET", b"a"], b"$3\r\n2xy\r\n"),
        (&[b"DEL", b"a", b"b", b"c", b"nope"], b":3\r\n"),
        (&[b"GET", b"a"], b"$-1\r\n"),
        (&[b"PING"], b"+PONG\r\n"),
    ];
    for (req, want) in exchanges {
        let got = call(&mut s, &cmd(req));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "{:?}",
            req.iter()
                .map(|a| String::from_utf8_lossy(a))
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(
        call(&mut s, &cmd(&[b"SET", b"t", b"1", b"EX", b"100"])),
        b"+OK\r\n"
    );
    let ttl = call(&mut s, &cmd(&[b"TTL", b"t"]));
    assert!(ttl == b":100\r\n" || ttl == b":99\r\n", "{ttl:?}");
    fill_resp(&mut s, 3000);
    let shares: Vec<usize> = ns.iter().map(dbsize).collect();
    assert_eq!(shares.iter().sum::<usize>(), 3002, "{shares:?}");
    for k in &shares {
        assert!(*k > 500, "ketama spread {shares:?}");
    }

    // Kill node 2 with requests in flight: those get twemproxy's error,
    // the host is ejected, and its keys then land on the other two
    // (misses, not errors), while the survivors' keys still hit.
    let mut pipeline = Vec::new();
    for i in 0..3000 {
        pipeline.extend(cmd(&[b"GET", format!("key:{i}").as_bytes()]));
    }
    s.write_all(&pipeline).unwrap();
    ns.remove(1);
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let (mut hits, mut misses, mut errors) = (0, 0, 0);
    for _ in 0..3000 {
        match read_reply(&mut r).as_slice() {
            [b'$', b'-', ..] => misses += 1,
            [b'$', ..] => hits += 1,
            [b'-', ..] => errors += 1,
            other => panic!("{:?}", String::from_utf8_lossy(other)),
        }
    }
    assert_eq!(hits + misses + errors, 3000);
    eprintln!("node killed mid-pipeline: {hits} hits, {misses} misses, {errors} errors in flight");
    // Once ejected, nothing fails: every request is a hit or a miss.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (h, m, e) = gets(&mut s, &mut r, 3000);
        if e == 0 {
            assert!(
                h >= 3000 - shares[1] - 50,
                "hits {h}, misses {m}, shares {shares:?}"
            );
            assert!(m >= shares[1] - 50, "misses {m}, shares {shares:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {e} errors after the ejection"
        );
    }
    // Writes go to the survivors.
    assert_eq!(call(&mut s, &cmd(&[b"SET", b"after", b"1"])), b"+OK\r\n");
    assert_eq!(call(&mut s, &cmd(&[b"GET", b"after"])), b"$1\r\n1\r\n");
}

/// Sends `req` and reads exactly `n` bytes of replies.
fn read_n(s: &mut TcpStream, req: &[u8], n: usize) -> Vec<u8> {
    s.write_all(req).unwrap();
    let mut got = vec![0u8; n];
    std::io::Read::read_exact(s, &mut got).unwrap();
    got
}

fn read_reply(r: &mut impl std::io::BufRead) -> Vec<u8> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).unwrap();
    assert!(!line.is_empty(), "closed");
    if line[0] == b'$' {
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
            .unwrap()
            .parse()
            .unwrap();
        if n >= 0 {
            let mut body = vec![0u8; n as usize + 2];
            std::io::Read::read_exact(r, &mut body).unwrap();
            line.extend(body);
        }
    }
    line
}

/// GETs of `key:0..n`, pipelined: (hits, misses, errors).
fn gets(s: &mut TcpStream, r: &mut impl std::io::BufRead, n: usize) -> (usize, usize, usize) {
    let mut req = Vec::new();
    for i in 0..n {
        req.extend(cmd(&[b"GET", format!("key:{i}").as_bytes()]));
    }
    s.write_all(&req).unwrap();
    let (mut h, mut m, mut e) = (0, 0, 0);
    for _ in 0..n {
        match read_reply(r).as_slice() {
            [b'$', b'-', ..] => m += 1,
            [b'$', ..] => h += 1,
            _ => e += 1,
        }
    }
    (h, m, e)
}

#[test]
fn twemproxy_authenticates_to_password_protected_nodes() {
    if !have("nutcracker", &["--version"]) {
        return;
    }
    let ns = nodes(3, &["--auth", "s3cret"]);
    let ports: Vec<u16> = ns.iter().map(|n| n.port).collect();
    let p = proxy("auth", true, &ports, "  redis_auth: s3cret\n");
    let mut s = common::connect(p.port);
    // twemproxy's own refusal (its wording, without Redis's period).
    assert_eq!(
        call(&mut s, &cmd(&[b"GET", b"a"])),
        b"-NOAUTH Authentication required\r\n"
    );
    assert_eq!(
        call(&mut s, &cmd(&[b"AUTH", b"wrong"])),
        b"-ERR invalid password\r\n"
    );
    assert_eq!(call(&mut s, &cmd(&[b"AUTH", b"s3cret"])), b"+OK\r\n");
    fill_resp(&mut s, 600);
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    assert_eq!(gets(&mut s, &mut r, 600), (600, 0, 0));
    for n in &ns {
        let mut d = n.connect();
        assert_eq!(call(&mut d, &cmd(&[b"AUTH", b"s3cret"])), b"+OK\r\n");
        let k = call(&mut d, &cmd(&[b"DBSIZE"]));
        assert!(k.len() > 4, "{k:?}");
    }
}

#[test]
fn twemproxy_memcache_in_front_of_three_nodes() {
    if !have("nutcracker", &["--version"]) {
        return;
    }
    let mut ns = nodes(3, &[]);
    let ports: Vec<u16> = ns.iter().map(|n| n.port).collect();
    let p = proxy("memcache", false, &ports, "");
    let mut s = common::connect(p.port);
    let ex: &[(&[u8], &[u8])] = &[
        (b"set a 5 0 1\r\n1\r\n", b"STORED\r\n"),
        (b"set b 0 100 2\r\n22\r\n", b"STORED\r\n"),
        (b"add a 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
        (b"add c 0 0 1\r\n3\r\n", b"STORED\r\n"),
        (b"replace nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
        (b"append a 0 0 2\r\nxy\r\n", b"STORED\r\n"),
        (b"prepend a 0 0 1\r\n0\r\n", b"STORED\r\n"),
        (b"get a\r\n", b"VALUE a 5 4\r\n01xy\r\nEND\r\n"),
        (b"get nope\r\n", b"END\r\n"),
        (
            b"get a nope b c\r\n",
            b"VALUE a 5 4\r\n01xy\r\nVALUE b 0 2\r\n22\r\nVALUE c 0 1\r\n3\r\nEND\r\n",
        ),
        (b"set n 0 0 2\r\n10\r\n", b"STORED\r\n"),
        (b"incr n 5\r\n", b"15\r\n"),
        (b"decr n 20\r\n", b"0\r\n"),
        (b"incr nope 1\r\n", b"NOT_FOUND\r\n"),
        (b"touch b 10\r\n", b"TOUCHED\r\n"),
        (b"touch nope 10\r\n", b"NOT_FOUND\r\n"),
        (b"delete c\r\n", b"DELETED\r\n"),
        (b"delete c\r\n", b"NOT_FOUND\r\n"),
    ];
    for (req, want) in ex {
        let end = if want.ends_with(b"END\r\n") {
            &b"END\r\n"[..]
        } else {
            &b"\r\n"[..]
        };
        let got = call_until(&mut s, req, end);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "{}",
            String::from_utf8_lossy(req)
        );
    }
    // gets + cas through the proxy.
    let g = call_until(&mut s, b"gets a\r\n", b"END\r\n");
    let g = String::from_utf8(g).unwrap();
    let unique = g
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let req = format!("cas a 0 0 1 {unique}\r\nz\r\n");
    assert_eq!(call_until(&mut s, req.as_bytes(), b"\r\n"), b"STORED\r\n");
    assert_eq!(call_until(&mut s, req.as_bytes(), b"\r\n"), b"EXISTS\r\n");

    // 3000 keys spread over the three nodes.
    let mut req = Vec::new();
    for i in 0..3000 {
        req.extend(format!("set key:{i} 0 0 2\r\nvv\r\n").as_bytes());
    }
    assert_eq!(read_n(&mut s, &req, 8 * 3000), b"STORED\r\n".repeat(3000));
    let shares: Vec<usize> = ns.iter().map(dbsize).collect();
    for k in &shares {
        assert!(*k > 500, "ketama spread {shares:?}");
    }
    // Kill node 3 with a pipeline in flight, then expect only hits and
    // misses once it is ejected.
    let mut req = Vec::new();
    for i in 0..3000 {
        req.extend(format!("get key:{i}\r\n").as_bytes());
    }
    s.write_all(&req).unwrap();
    ns.remove(2);
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let mut answered = 0;
    while answered < 3000 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        if line == "END\r\n" || line.starts_with("SERVER_ERROR") {
            answered += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        s.write_all(&req).unwrap();
        let (mut hits, mut errors, mut done) = (0, 0, 0);
        while done < 3000 {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut r, &mut line).unwrap();
            if line.starts_with("VALUE ") {
                hits += 1;
            } else if line.starts_with("SERVER_ERROR") {
                errors += 1;
                done += 1;
            } else if line == "END\r\n" {
                done += 1;
            }
        }
        if errors == 0 {
            assert!(
                hits >= 3000 - shares[2] - 50,
                "hits {hits}, shares {shares:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {errors} errors after the ejection"
        );
    }
    assert_eq!(
        call_until(&mut s, b"set after 0 0 1\r\n1\r\n", b"\r\n"),
        b"STORED\r\n"
    );
}

/// pymemcache's HashClient and pylibmc (libmemcached ketama) across three
/// nodes.
#[test]
fn client_side_hashing_across_three_nodes() {
    let ns = nodes(3, &[]);
    let ports: Vec<String> = ns.iter().map(|n| n.port.to_string()).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/hash_client.py");
    let mut total = 0;
    for lib in ["pymemcache", "pylibmc"] {
        if !have("python3", &["-c", &format!("import {lib}")]) {
            continue;
        }
        let before: Vec<usize> = ns.iter().map(dbsize).collect();
        let out = run("python3", &[script, lib, "3000", &ports.join(",")], 120);
        assert!(out.contains("ok 3000"), "{out}");
        let after: Vec<usize> = ns.iter().map(dbsize).collect();
        for (b, a) in before.iter().zip(&after) {
            assert!(a - b > 500, "{lib} spread {before:?} -> {after:?}");
        }
        total += 3000;
    }
    if total > 0 {
        assert_eq!(ns.iter().map(dbsize).sum::<usize>(), total);
    }
}

/// What moves when a fourth node joins three: about a quarter of the keys
/// for every engine. Measured on real servers: keys written with three
/// nodes, then read through four; a key that moved is a miss.
#[test]
fn key_movement_when_a_fourth_node_joins() {
    let mut figures = Vec::new();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/key_movement.py");
    const N: usize = 20000;
    // Client-side hashing.
    for lib in ["pymemcache", "pylibmc"] {
        if !have("python3", &["-c", &format!("import {lib}")]) {
            continue;
        }
        let ns = nodes(4, &[]);
        let ports: Vec<String> = ns.iter().map(|n| n.port.to_string()).collect();
        let out = run(
            "python3",
            &[script, lib, &N.to_string(), &ports.join(",")],
            180,
        );
        let moved: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("moved "))
            .unwrap_or_else(|| panic!("{out}"))
            .parse()
            .unwrap();
        figures.push((lib, moved));
    }
    // twemproxy ketama: fill through a three-node pool, read through four.
    if have("nutcracker", &["--version"]) {
        let ns = nodes(4, &[]);
        let ports: Vec<u16> = ns.iter().map(|n| n.port).collect();
        let p3 = proxy("move3", false, &ports[..3], "");
        let mut s = common::connect(p3.port);
        let mut req = Vec::new();
        for i in 0..N {
            req.extend(format!("set key:{i} 0 0 1\r\nv\r\n").as_bytes());
        }
        assert_eq!(read_n(&mut s, &req, 8 * N), b"STORED\r\n".repeat(N));
        drop(p3);
        let p4 = proxy("move4", false, &ports, "");
        let mut s = common::connect(p4.port);
        let mut req = Vec::new();
        for i in 0..N {
            req.extend(format!("get key:{i}\r\n").as_bytes());
        }
        s.write_all(&req).unwrap();
        let mut r = std::io::BufReader::new(s.try_clone().unwrap());
        let (mut hits, mut done) = (0, 0);
        while done < N {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut r, &mut line).unwrap();
            if line.starts_with("VALUE ") {
                hits += 1;
            } else if line == "END\r\n" {
                done += 1;
            }
        }
        figures.push(("twemproxy ketama", (N - hits) as f64 / N as f64));
    }
    // Cluster mode: the standard three-way split rebalanced to four, the
    // new node taking a quarter of the slots; measured in slots and in
    // keys (each key's owner read back through MOVED).
    {
        let dir =
            std::env::temp_dir().join(format!("pogocache-move-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("nodes.conf");
        let ports: Vec<u16> = (0..4).map(|_| reserve()).collect();
        let three = format!(
            "n1 127.0.0.1:{} 0-5460\nn2 127.0.0.1:{} 5461-10922\nn3 127.0.0.1:{} 10923-16383\nn4 127.0.0.1:{}\n",
            ports[0], ports[1], ports[2], ports[3]
        );
        // What `redis-cli --cluster rebalance` does: 4096 slots each, the
        // new node taking 1365/1366 from the top of each old range.
        let four = format!(
            "n1 127.0.0.1:{} 0-4095\nn2 127.0.0.1:{} 5461-9556\nn3 127.0.0.1:{} 10923-15018\n\
             n4 127.0.0.1:{} 4096-5460 9557-10922 15019-16383\n",
            ports[0], ports[1], ports[2], ports[3]
        );
        std::fs::write(&file, &three).unwrap();
        let f = file.to_str().unwrap();
        let ns: Vec<Node> = ports
            .iter()
            .map(|&p| spawn_node(p, &["--cluster", "yes", "--cluster-config", f]))
            .collect();
        let mut conns: Vec<TcpStream> = ns.iter().map(|n| n.connect()).collect();
        // Ask node 1 for every key's owner through MOVED, before and after.
        let place = |conns: &mut Vec<TcpStream>| -> Vec<u16> {
            let mut req = Vec::new();
            for i in 0..N {
                req.extend(cmd(&[b"EXISTS", format!("key:{i}").as_bytes()]));
            }
            conns[0].write_all(&req).unwrap();
            let mut r = std::io::BufReader::new(conns[0].try_clone().unwrap());
            (0..N)
                .map(|_| {
                    let mut line = String::new();
                    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
                    match line.strip_prefix("-MOVED ") {
                        Some(rest) => rest.trim_end().rsplit(':').next().unwrap().parse().unwrap(),
                        None => ports[0],
                    }
                })
                .collect()
        };
        let before = place(&mut conns);
        std::fs::write(&file, &four).unwrap();
        for c in conns.iter_mut() {
            assert_eq!(call(c, &cmd(&[b"CLUSTER", b"RELOAD"])), b"+OK\r\n");
        }
        let after = place(&mut conns);
        let moved_keys = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert!(after.iter().all(|p| ports.contains(p)));
        figures.push(("cluster (keys)", moved_keys as f64 / N as f64));
        // n4's ranges: 1365 + 1366 + 1365 slots.
        figures.push(("cluster (slots)", 4096.0 / 16384.0));
        drop(ns);
        let _ = std::fs::remove_dir_all(&dir);
    }
    for (what, moved) in &figures {
        eprintln!("key movement 3 -> 4 nodes, {what}: {:.1}%", moved * 100.0);
        assert!(
            (0.15..=0.35).contains(moved),
            "{what}: {:.1}% of keys moved (expected about 25%)",
            moved * 100.0
        );
    }
}
