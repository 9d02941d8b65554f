//! Replication between real `pogocache` processes on 127.0.0.1: writes
//! through all four protocols converge on two replicas, expiry follows the
//! primary, restarts resume partially within the backlog and full-sync
//! past it, and bad input (a wrong password, a garbage stream, a primary
//! restarted with a new history) leaves every server healthy.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Redis-style `INFO` field.
fn info_field(port: u16, section: &str, field: &str) -> String {
    let mut s = connect(port);
    let r = call(&mut s, &cmd(&[b"INFO", section.as_bytes()]));
    let text = String::from_utf8_lossy(&r).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}: {text}"))
        .trim()
        .to_string()
}

/// `WAIT n timeout` on a fresh connection: the number of replicas that
/// acknowledged every write made so far.
fn wait_replicas(port: u16, n: usize) -> i64 {
    let mut s = connect(port);
    let r = call(&mut s, &cmd(&[b"WAIT", n.to_string().as_bytes(), b"10000"]));
    let t = String::from_utf8_lossy(&r);
    t.trim_start_matches(':').trim().parse().unwrap()
}

/// Writes `reqs` on one connection from a second thread while this one
/// reads, until `done` says the replies are all there (a pipeline of any
/// size, without deadlocking on full socket buffers).
fn pipeline(port: u16, reqs: Vec<u8>, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut s = connect(port);
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&reqs).unwrap());
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while !done(&got) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed");
        got.extend_from_slice(&buf[..n]);
    }
    writer.join().unwrap();
    got
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Every live key and its value, by SCAN and MGET.
fn contents(port: u16) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut s = connect(port);
    let mut keys = Vec::new();
    let mut cursor = b"0".to_vec();
    loop {
        let r = call(&mut s, &cmd(&[b"SCAN", &cursor, b"COUNT", b"1000"]));
        let items = parse_array(&r);
        // [cursor, [keys...]] flattened by parse_array: cursor first.
        cursor = items[0].clone();
        keys.extend(items[1..].iter().cloned());
        if cursor == b"0" {
            break;
        }
    }
    let mut map = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let mut req: Vec<&[u8]> = vec![b"MGET"];
        req.extend(chunk.iter().map(|k| k.as_slice()));
        let vals = parse_array(&call(&mut s, &cmd(&req)));
        for (k, v) in chunk.iter().zip(vals) {
            map.insert(k.clone(), v);
        }
    }
    map
}

/// The bulk strings of a (possibly nested) RESP array, in order.
fn parse_array(b: &[u8]) -> Vec<Vec<u8>> {
    fn walk(b: &[u8], at: &mut usize, out: &mut Vec<Vec<u8>>) {
        let end = *at + b[*at..].windows(2).position(|w| w == b"\r\n").unwrap();
        let head = std::str::from_utf8(&b[*at + 1..end]).unwrap();
        let kind = b[*at];
        *at = end + 2;
        match kind {
            b'*' => {
                for _ in 0..head.parse::<i64>().unwrap().max(0) {
                    walk(b, at, out);
                }
            }
            b'$' => {
                let n: i64 = head.parse().unwrap();
                if n >= 0 {
                    out.push(b[*at..*at + n as usize].to_vec());
                    *at += n as usize + 2;
                } else {
                    out.push(b"<nil>".to_vec());
                }
            }
            _ => out.push(head.as_bytes().to_vec()),
        }
    }
    let mut out = Vec::new();
    walk(b, &mut 0, &mut out);
    out
}

fn replica(primary: u16, extra: &[&str]) -> Node {
    let port = reserve();
    let p = primary.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", p.as_str()];
    args.extend_from_slice(extra);
    let n = spawn_node(port, &args);
    n.wait_log("sync: ");
    n
}

/// Stops a node with SIGTERM (a clean shutdown: it saves with
/// `--persist`) and waits for it to exit.
fn stop(mut n: Node) {
    // SAFETY: a plain signal to a child process this test started.
    unsafe { libc::kill(n.child.id() as i32, libc::SIGTERM) };
    let status = n.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn replicas_converge_across_protocols_and_expire_with_the_primary() {
    let primary = spawn_node(reserve(), &["--threads", "2"]);
    let p = primary.port;
    let r1 = replica(p, &[]);
    let r2 = replica(p, &[]);

    // 100,000 keys, 25,000 through each protocol.
    const N: usize = 25_000;
    let mut resp = Vec::new();
    for i in 0..N {
        resp.extend_from_slice(&cmd(&[
            b"SET",
            format!("resp:{i}").as_bytes(),
            format!("v{i}").as_bytes(),
        ]));
    }
    let got = pipeline(p, resp, |g| g.len() >= 5 * N);
    assert_eq!(count(&got, b"+OK\r\n"), N);

    let mut mc = Vec::new();
    for i in 0..N {
        let v = format!("m{i}");
        mc.extend_from_slice(format!("set mc:{i} {i} 0 {}\r\n{v}\r\n", v.len()).as_bytes());
    }
    let got = pipeline(p, mc, |g| g.len() >= 8 * N);
    assert_eq!(count(&got, b"STORED\r\n"), N);

    let mut http = Vec::new();
    for i in 0..N {
        let v = format!("h{i}");
        http.extend_from_slice(
            format!(
                "PUT /http:{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{v}",
                v.len()
            )
            .as_bytes(),
        );
    }
    let got = pipeline(p, http, |g| count(g, b"Stored\r\n") >= N);
    assert_eq!(count(&got, b"Stored\r\n"), N);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={p} user=u"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        for i in 0..N {
            c.simple_query(&format!("SET pg:{i} p{i}")).await.unwrap();
        }
    });

    // Changes that are not plain sets: they replicate as the key's state.
    let mut s = primary.connect();
    for (req, want) in [
        (cmd(&[b"DEL", b"resp:0", b"resp:1"]), &b":2\r\n"[..]),
        (cmd(&[b"INCR", b"resp:counter"]), b":1\r\n"),
        (cmd(&[b"INCRBY", b"resp:counter", b"41"]), b":42\r\n"),
        (cmd(&[b"APPEND", b"resp:2", b"-more"]), b":7\r\n"),
        (
            cmd(&[b"SET", b"resp:ttl", b"t", b"EX", b"1000"]),
            b"+OK\r\n",
        ),
        (cmd(&[b"EXPIRE", b"resp:3", b"2000"]), b":1\r\n"),
    ] {
        assert_eq!(call(&mut s, &req), want);
    }
    // The memcache meta protocol, on a connection of its own (the
    // protocol is sniffed once per connection).
    let mut meta = primary.connect();
    assert_eq!(
        call_until(&mut meta, b"ms meta:1 2 T500\r\nhi\r\n", b"\r\n"),
        b"HD\r\n"
    );
    assert_eq!(call_until(&mut meta, b"md mc:7\r\n", b"\r\n"), b"HD\r\n");

    assert_eq!(wait_replicas(p, 2), 2, "both replicas acknowledged");
    let want = contents(p);
    // 4N written, 2 deleted by DEL and 1 by md; counter, ttl, meta:1 new.
    assert_eq!(want.len(), 4 * N);
    assert_eq!(want[&b"resp:counter"[..]], b"42");
    assert_eq!(want[&b"resp:2"[..]], b"v2-more");
    assert_eq!(want[&b"pg:77"[..]], b"p77");
    for r in [&r1, &r2] {
        assert_eq!(contents(r.port), want, "replica {} differs", r.port);
    }
    // Flags and TTLs travel with the value.
    for r in [&r1, &r2] {
        let mut m = r.connect();
        assert_eq!(
            call_until(&mut m, b"get mc:42\r\n", b"END\r\n"),
            b"VALUE mc:42 42 3\r\nm42\r\nEND\r\n"
        );
        assert_eq!(
            call_until(&mut m, b"set x 0 0 1\r\ny\r\n", b"\r\n"),
            b"SERVER_ERROR You can't write against a read only replica.\r\n"
        );
        let mut c = r.connect();
        let ttl = call(&mut c, &cmd(&[b"TTL", b"resp:ttl"]));
        let ttl: i64 = String::from_utf8_lossy(&ttl[1..]).trim().parse().unwrap();
        assert!((990..=1000).contains(&ttl), "ttl {ttl}");
        assert_eq!(
            call(&mut c, &cmd(&[b"SET", b"x", b"y"])),
            b"-READONLY You can't write against a read only replica.\r\n"
        );
    }

    // Expiry on the primary is seen on the replicas: a key that lives
    // 300 ms is there, then gone everywhere.
    // Timed from before the SET: every server expires the key 300 ms
    // after it received it, so never sooner than 300 ms from here.
    let set_at = Instant::now();
    assert_eq!(
        call(&mut s, &cmd(&[b"SET", b"short", b"lived", b"PX", b"300"])),
        b"+OK\r\n"
    );
    assert_eq!(wait_replicas(p, 2), 2);
    for r in [&r1, &r2] {
        let mut c = r.connect();
        let got = call(&mut c, &cmd(&[b"GET", b"short"]));
        // Unless this machine stalled for the whole 300 ms.
        if set_at.elapsed() < Duration::from_millis(250) {
            assert_eq!(got, b"$5\r\nlived\r\n");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for port in [p, r1.port, r2.port] {
        let mut c = connect(port);
        loop {
            let got = call(&mut c, &cmd(&[b"GET", b"short"]));
            if got == b"$-1\r\n" {
                break;
            }
            assert!(Instant::now() < deadline, "short still on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            set_at.elapsed() >= Duration::from_millis(280),
            "expired early on {port}"
        );
    }

    // A writable replica (CONFIG SET replica-read-only no) takes local
    // writes; they are not sent anywhere.
    let mut w = r2.connect();
    assert_eq!(
        call(
            &mut w,
            &cmd(&[b"CONFIG", b"SET", b"replica-read-only", b"no"])
        ),
        b"+OK\r\n"
    );
    assert_eq!(
        call(&mut w, &cmd(&[b"CONFIG", b"GET", b"replica-read-only"])),
        b"*2\r\n$17\r\nreplica-read-only\r\n$2\r\nno\r\n"
    );
    assert_eq!(call(&mut w, &cmd(&[b"SET", b"local", b"1"])), b"+OK\r\n");
    assert_eq!(call(&mut w, &cmd(&[b"GET", b"local"])), b"$1\r\n1\r\n");
    assert_eq!(call(&mut s, &cmd(&[b"GET", b"local"])), b"$-1\r\n");
    assert_eq!(
        call(&mut w, &cmd(&[b"CONFIG", b"SET", b"bogus", b"1"])),
        b"-ERR Unknown option or number of arguments for CONFIG SET - 'bogus'\r\n"
    );

    // INFO and ROLE in Redis's shape.
    assert_eq!(info_field(p, "replication", "role"), "master");
    assert_eq!(info_field(p, "replication", "connected_slaves"), "2");
    let slave0 = info_field(p, "replication", "slave0");
    assert!(
        slave0.starts_with("ip=127.0.0.1,port=") && slave0.contains(",state=online,offset="),
        "{slave0}"
    );
    assert_eq!(info_field(r1.port, "replication", "role"), "slave");
    assert_eq!(
        info_field(r1.port, "replication", "master_link_status"),
        "up"
    );
    assert_eq!(
        info_field(r1.port, "replication", "master_port"),
        p.to_string()
    );
    assert_eq!(
        info_field(r1.port, "replication", "master_replid"),
        info_field(p, "replication", "master_replid")
    );
    let role = parse_array(&call(&mut r1.connect(), &cmd(&[b"ROLE"])));
    assert_eq!(role[0], b"slave");
    assert_eq!(role[2], p.to_string().as_bytes());
    assert_eq!(role[3], b"connected");
    // Replication state in /metrics.
    let m = call_until(
        &mut primary.connect(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"pogocache_replication_link_up 0\n",
    );
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains("pogocache_replication_connected_replicas 2"),
        "{m}"
    );
    assert!(m.contains("pogocache_replication_role{role=\"primary\"} 1"));
}

#[test]
fn restarts_resume_within_the_backlog_and_full_sync_past_it() {
    let dir = std::env::temp_dir().join(format!("pogo-repl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("replica.db");
    let db = db.to_str().unwrap();
    let primary = spawn_node(reserve(), &["--repl-backlog-size", "64kb"]);
    let p = primary.port;
    let rport = reserve();
    let ps = p.to_string();
    let flags = ["--replicaof", "127.0.0.1", &ps, "--persist", db];
    let start = || {
        let n = spawn_node(rport, &flags);
        n.wait_log("sync: ");
        n
    };
    let mut s = primary.connect();
    let r = start();
    for i in 0..100 {
        let k = format!("k{i}");
        assert_eq!(
            call(&mut s, &cmd(&[b"SET", k.as_bytes(), b"one"])),
            b"+OK\r\n"
        );
    }
    assert_eq!(wait_replicas(p, 1), 1);
    stop(r);
    assert!(Path::new(&format!("{db}.repl")).exists());

    // Down for a few writes, well within the 64 KiB backlog.
    for i in 50..150 {
        let k = format!("k{i}");
        assert_eq!(
            call(&mut s, &cmd(&[b"SET", k.as_bytes(), b"two"])),
            b"+OK\r\n"
        );
    }
    let r = spawn_node(rport, &flags);
    r.wait_log("Partial Resynchronization");
    assert_eq!(wait_replicas(p, 1), 1);
    assert_eq!(info_field(p, "stats", "sync_full"), "1");
    assert_eq!(info_field(p, "stats", "sync_partial_ok"), "1");
    assert_eq!(contents(rport), contents(p));
    assert_eq!(contents(rport).len(), 150);
    stop(r);

    // Down for more than the backlog holds: 200 values of 1 KiB.
    let big = vec![b'x'; 1024];
    for i in 0..200 {
        let k = format!("big{i}");
        assert_eq!(
            call(&mut s, &cmd(&[b"SET", k.as_bytes(), &big])),
            b"+OK\r\n"
        );
    }
    let r = spawn_node(rport, &flags);
    r.wait_log("Full resync from master");
    r.wait_log("sync: Finished with success");
    assert_eq!(wait_replicas(p, 1), 1);
    assert_eq!(info_field(p, "stats", "sync_full"), "2");
    assert_eq!(info_field(p, "stats", "sync_partial_ok"), "1");
    assert_eq!(contents(rport), contents(p));
    assert_eq!(contents(rport).len(), 350);

    // The primary restarted without its data: a new replication id, so
    // the replica full-syncs to the (empty) new history instead of keeping
    // keys the primary no longer has.
    let pport = primary.port;
    drop(primary);
    let primary = spawn_node(pport, &[]);
    let mut s = primary.connect();
    assert_eq!(
        call(&mut s, &cmd(&[b"SET", b"after", b"restart"])),
        b"+OK\r\n"
    );
    r.wait_log("sync: Finished with success");
    assert_eq!(wait_replicas(pport, 1), 1);
    let want = contents(pport);
    assert_eq!(want.len(), 1);
    assert_eq!(contents(rport), want);
    drop(r);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_password_then_right_one() {
    let primary = spawn_node(reserve(), &["--auth", "s3cret"]);
    let p = primary.port;
    let rport = reserve();
    let ps = p.to_string();
    let r = spawn_node(
        rport,
        &["--replicaof", "127.0.0.1", &ps, "--primaryauth", "wrong"],
    );
    let line = r.wait_log("Unable to AUTH to MASTER");
    assert!(line.contains("WRONGPASS"), "{line}");
    // Still healthy, and honest about its link.
    let mut c = r.connect();
    assert_eq!(call(&mut c, &cmd(&[b"PING"])), b"+PONG\r\n");
    assert_eq!(
        info_field(rport, "replication", "master_link_status"),
        "down"
    );
    assert_eq!(
        call(&mut c, &cmd(&[b"CONFIG", b"SET", b"masterauth", b"s3cret"])),
        b"+OK\r\n"
    );
    r.wait_log("sync: Finished with success");
    let mut s = primary.connect();
    assert_eq!(call(&mut s, &cmd(&[b"AUTH", b"s3cret"])), b"+OK\r\n");
    assert_eq!(call(&mut s, &cmd(&[b"SET", b"a", b"b"])), b"+OK\r\n");
    assert_eq!(call(&mut s, &cmd(&[b"WAIT", b"1", b"10000"])), b":1\r\n");
    assert_eq!(call(&mut c, &cmd(&[b"GET", b"a"])), b"$1\r\nb\r\n");
}

/// A fake primary: answers the handshake, sends a full sync and then
/// `stream`; returns the PSYNC request it was sent.
fn fake_primary(l: &TcpListener, stream: &[u8]) -> String {
    let (sock, _) = l.accept().unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut w = sock.try_clone().unwrap();
    let mut r = BufReader::new(sock);
    let mut args = || -> Vec<String> {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let n: usize = line.trim()[1..].parse().unwrap();
        (0..n)
            .map(|_| {
                let mut len = String::new();
                r.read_line(&mut len).unwrap();
                let mut v = String::new();
                r.read_line(&mut v).unwrap();
                v.trim_end().to_string()
            })
            .collect()
    };
    loop {
        let a = args();
        match a[0].as_str() {
            "PING" => w.write_all(b"+PONG\r\n").unwrap(),
            "REPLCONF" => w.write_all(b"+OK\r\n").unwrap(),
            "PSYNC" => {
                w.write_all(
                    format!(
                        "+FULLRESYNC {} 0 1700000000000000000\r\n$0\r\n",
                        "a".repeat(40)
                    )
                    .as_bytes(),
                )
                .unwrap();
                w.write_all(stream).unwrap();
                return a.join(" ");
            }
            other => panic!("unexpected {other}"),
        }
    }
}

#[test]
fn garbage_streams_never_crash_or_silently_diverge() {
    // A replica fed a malformed stream drops the link, logs it, stays
    // healthy, and asks for a full resync next time (not a continuation
    // of a history it could not apply).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let fport = l.local_addr().unwrap().port().to_string();
    let r = spawn_node(reserve(), &["--replicaof", "127.0.0.1", &fport]);
    let first = fake_primary(
        &l,
        b"*6\r\n$4\r\nRSET\r\n$1\r\nk\r\n$1\r\nv\r\n$1\r\n0\r\n$1\r\n0\r\n$1\r\n0\r\n*2\r\n$5\r\nBOGUS\r\n$1\r\nx\r\n",
    );
    assert!(first.starts_with("PSYNC"), "{first}");
    r.wait_log("Malformed replication stream");
    let mut c = r.connect();
    assert_eq!(call(&mut c, &cmd(&[b"PING"])), b"+PONG\r\n");
    let second = fake_primary(&l, b"$-1\r\n$x\r\n");
    assert_eq!(second, "PSYNC ? -1");
    r.wait_log("Malformed replication stream");
    assert_eq!(call(&mut c, &cmd(&[b"PING"])), b"+PONG\r\n");

    // A primary fed garbage by a "replica" after PSYNC drops that link
    // and keeps serving; bad REPLCONF/PSYNC arguments get error replies.
    let primary = spawn_node(reserve(), &[]);
    let mut bad = primary.connect();
    assert_eq!(
        call(&mut bad, &cmd(&[b"PSYNC", b"?", b"x"])),
        b"-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        call(&mut bad, &cmd(&[b"REPLCONF", b"bogus", b"1"])),
        b"-ERR Unrecognized REPLCONF option: bogus\r\n"
    );
    assert_eq!(
        call(&mut bad, &cmd(&[b"REPLICAOF", b"127.0.0.1", b"notaport"])),
        b"-ERR Invalid master port\r\n"
    );
    bad.write_all(&cmd(&[b"PSYNC", b"?", b"-1"])).unwrap();
    let mut head = [0u8; 11];
    bad.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"+FULLRESYNC");
    bad.write_all(b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$1\r\n0\r\n\x00\xff garbage")
        .unwrap();
    let mut s = primary.connect();
    assert_eq!(call(&mut s, &cmd(&[b"SET", b"still", b"fine"])), b"+OK\r\n");
    assert_eq!(call(&mut s, &cmd(&[b"GET", b"still"])), b"$4\r\nfine\r\n");
}

#[test]
fn pubsub_and_transactions() {
    let n = spawn_node(reserve(), &[]);
    let mut sub = n.connect();
    assert_eq!(
        call(&mut sub, &cmd(&[b"SUBSCRIBE", b"news"])),
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
    assert_eq!(
        call(&mut sub, &cmd(&[b"PSUBSCRIBE", b"n*"])),
        b"*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:2\r\n"
    );
    assert_eq!(
        call(&mut sub, &cmd(&[b"GET", b"x"])),
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(
        call(&mut sub, &cmd(&[b"PING"])),
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    );
    let mut publ = n.connect();
    assert_eq!(
        call(&mut publ, &cmd(&[b"PUBLISH", b"news", b"hello"])),
        b":2\r\n"
    );
    let want: &[u8] = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
    let mut got = vec![0u8; want.len()];
    sub.read_exact(&mut got).unwrap();
    assert_eq!(got, want);
    assert_eq!(
        call(&mut publ, &cmd(&[b"PUBSUB", b"NUMSUB", b"news", b"none"])),
        b"*4\r\n$4\r\nnews\r\n:1\r\n$4\r\nnone\r\n:0\r\n"
    );
    assert_eq!(
        call(&mut sub, &cmd(&[b"UNSUBSCRIBE", b"news"])),
        b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
    // CLIENT KILL TYPE pubsub closes the subscriber only.
    assert_eq!(
        call(&mut publ, &cmd(&[b"CLIENT", b"KILL", b"TYPE", b"pubsub"])),
        b":1\r\n"
    );
    let mut rest = Vec::new();
    sub.read_to_end(&mut rest).unwrap();
    assert_eq!(
        call(&mut publ, &cmd(&[b"PUBLISH", b"news", b"gone"])),
        b":0\r\n"
    );

    // MULTI/EXEC/DISCARD.
    let mut t = n.connect();
    assert_eq!(call(&mut t, &cmd(&[b"MULTI"])), b"+OK\r\n");
    assert_eq!(call(&mut t, &cmd(&[b"SET", b"a", b"1"])), b"+QUEUED\r\n");
    assert_eq!(call(&mut t, &cmd(&[b"INCR", b"a"])), b"+QUEUED\r\n");
    assert_eq!(call(&mut t, &cmd(&[b"WAIT", b"0", b"0"])), b"+QUEUED\r\n");
    assert_eq!(call(&mut t, &cmd(&[b"EXEC"])), b"*3\r\n+OK\r\n:2\r\n:0\r\n");
    assert_eq!(call(&mut t, &cmd(&[b"MULTI"])), b"+OK\r\n");
    assert_eq!(
        call(&mut t, &cmd(&[b"MULTI"])),
        b"-ERR MULTI calls can not be nested\r\n"
    );
    assert_eq!(
        call(&mut t, &cmd(&[b"NOSUCH"])),
        b"-ERR unknown command 'NOSUCH'\r\n"
    );
    assert_eq!(
        call(&mut t, &cmd(&[b"EXEC"])),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(call(&mut t, &cmd(&[b"MULTI"])), b"+OK\r\n");
    assert_eq!(call(&mut t, &cmd(&[b"DEL", b"a"])), b"+QUEUED\r\n");
    assert_eq!(call(&mut t, &cmd(&[b"DISCARD"])), b"+OK\r\n");
    assert_eq!(call(&mut t, &cmd(&[b"GET", b"a"])), b"$1\r\n2\r\n");
    assert_eq!(
        call(&mut t, &cmd(&[b"EXEC"])),
        b"-ERR EXEC without MULTI\r\n"
    );
    // Commands that change what a connection is are refused inside
    // MULTI, and the transaction is aborted.
    assert_eq!(call(&mut t, &cmd(&[b"MULTI"])), b"+OK\r\n");
    assert_eq!(
        call(&mut t, &cmd(&[b"SUBSCRIBE", b"x"])),
        b"-ERR Command not allowed inside a transaction\r\n"
    );
    assert_eq!(
        call(&mut t, &cmd(&[b"EXEC"])),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // WAIT with no replicas answers 0 after its timeout, without holding
    // up the other connections of its worker.
    let mut w = n.connect();
    w.write_all(&cmd(&[b"WAIT", b"1", b"300"])).unwrap();
    assert_eq!(call(&mut t, &cmd(&[b"PING"])), b"+PONG\r\n");
    let mut reply = [0u8; 4];
    w.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b":0\r\n");
}

#[test]
fn a_restarted_primary_continues_its_replicas_history() {
    // Saved with its replication id and offset, a primary restarts under a
    // new id that continues the saved one (Redis's rule): its replica
    // continues with a partial resync and gets the writes made since.
    let dir = std::env::temp_dir().join(format!("pogo-repl-p-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("primary.db");
    let db = db.to_str().unwrap();
    let pport = reserve();
    let primary = spawn_node(pport, &["--persist", db]);
    let r = replica(pport, &[]);
    let mut s = primary.connect();
    assert_eq!(call(&mut s, &cmd(&[b"SET", b"before", b"1"])), b"+OK\r\n");
    assert_eq!(wait_replicas(pport, 1), 1);
    let old_id = info_field(pport, "replication", "master_replid");
    stop(primary);
    let primary = spawn_node(pport, &["--persist", db]);
    assert_eq!(info_field(pport, "replication", "master_replid2"), old_id);
    let mut s = primary.connect();
    assert_eq!(call(&mut s, &cmd(&[b"SET", b"after", b"2"])), b"+OK\r\n");
    r.wait_log("Partial Resynchronization");
    assert_eq!(wait_replicas(pport, 1), 1);
    assert_eq!(info_field(pport, "stats", "sync_partial_ok"), "1");
    assert_eq!(info_field(pport, "stats", "sync_full"), "0");
    assert_eq!(contents(r.port), contents(pport));
    assert_eq!(contents(r.port).len(), 2);
    drop(r);
    drop(primary);
    let _ = std::fs::remove_dir_all(&dir);
}
