//! Black-box tests of the runtime over real sockets: a real client crate,
//! pipelines, large and binary values, bad input, backpressure, limits,
//! MONITOR, the Unix socket and shutdown.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use pogocache_server::Config;

fn client(addr: std::net::SocketAddr) -> redis::Connection {
    let c = redis::Client::open(format!("redis://{addr}/")).unwrap();
    c.get_connection().unwrap()
}

#[test]
fn redis_crate_pipeline_of_ten_thousand() {
    let (srv, addr) = start(config());
    let mut con = client(addr);
    let mut p = redis::pipe();
    for i in 0..5000 {
        p.cmd("SET").arg(format!("key:{i}")).arg(i);
        p.cmd("INCR").arg("counter");
    }
    let replies: Vec<redis::Value> = p.query(&mut con).unwrap();
    assert_eq!(replies.len(), 10_000);
    assert_eq!(replies[9_999], redis::Value::Int(5000));
    let mut p = redis::pipe();
    for i in 0..10_000 {
        p.cmd("GET").arg(format!("key:{}", i % 5000));
    }
    let vals: Vec<Option<i64>> = p.query(&mut con).unwrap();
    assert!(
        vals.iter()
            .enumerate()
            .all(|(i, v)| *v == Some((i % 5000) as i64))
    );
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 5001);
    srv.shutdown().unwrap();
}

#[test]
fn binary_and_large_values() {
    let (srv, addr) = start(config());
    let mut con = client(addr);
    let bin: Vec<u8> = (0..=255u8).chain([0, 0xff, b'\r', b'\n']).collect();
    let _: () = redis::cmd("SET")
        .arg(&bin[..])
        .arg(&bin[..])
        .query(&mut con)
        .unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg(&bin[..]).query(&mut con).unwrap();
    assert_eq!(got, bin);
    let big: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big[..])
        .query(&mut con)
        .unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut con).unwrap();
    assert_eq!(got, big);
    let len: i64 = redis::cmd("APPEND")
        .arg("big")
        .arg("xyz")
        .query(&mut con)
        .unwrap();
    assert_eq!(len, (1 << 20) + 3);
    srv.shutdown().unwrap();
}

#[test]
fn millisecond_expiry_and_past_exat() {
    let (srv, addr) = start(config());
    let mut s = connect(addr);
    exchange(
        &mut s,
        &cmd(&[b"SET", b"k", b"v", b"PX", b"5000"]),
        b"+OK\r\n",
    );
    s.write_all(&cmd(&[b"PTTL", b"k"])).unwrap();
    let reply = read_n(&mut s, 7);
    let ms: i64 = std::str::from_utf8(&reply[1..5]).unwrap().parse().unwrap();
    assert!((4000..5000).contains(&ms), "pttl {ms}");
    exchange(
        &mut s,
        &cmd(&[b"SET", b"old", b"v", b"EXAT", b"1000"]),
        b"+OK\r\n",
    );
    exchange(&mut s, &cmd(&[b"GET", b"old"]), b"$-1\r\n");
    srv.shutdown().unwrap();
}

#[test]
fn bad_input_gets_an_error_and_the_server_stays_up() {
    let (srv, addr) = start(config());
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*1\r\n$999999999999\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*99999999\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n!garbage",
            b"-ERR Protocol error: expected '$', got '!'\r\n",
        ),
        (b"*1\r\n$3\r\nXYZ\r\n", b"-ERR unknown command 'XYZ'\r\n"),
    ];
    for (req, want) in cases {
        let mut s = connect(addr);
        exchange(&mut s, req, want);
        if !want.starts_with(b"-ERR unknown") {
            assert_closed(&mut s);
        }
    }
    // A declared 512 MiB bulk is not allocated up front: the server keeps
    // answering while that client trickles.
    let mut hog = connect(addr);
    hog.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nabc")
        .unwrap();
    let mut s = connect(addr);
    exchange(&mut s, b"PING\r\n", b"+PONG\r\n");
    // Garbage that is not a protocol at all.
    let mut g = connect(addr);
    g.write_all(&[0xffu8; 70_000]).unwrap();
    exchange(&mut s, &cmd(&[b"PING"]), b"+PONG\r\n");
    drop((hog, g));
    srv.shutdown().unwrap();
}

#[test]
fn a_client_that_stops_reading_does_not_stall_its_thread() {
    let (srv, addr) = start(Config {
        threads: 1,
        ..config()
    });
    let mut s = connect(addr);
    let big = vec![b'x'; 8 << 20];
    exchange(&mut s, &cmd(&[b"SET", b"big", &big]), b"+OK\r\n");
    // Ask for 64 MiB of replies and never read them.
    let mut slow = connect(addr);
    let mut reqs = Vec::new();
    for _ in 0..8 {
        reqs.extend_from_slice(&cmd(&[b"GET", b"big"]));
    }
    slow.write_all(&reqs).unwrap();
    let mut other = connect(addr);
    exchange(&mut other, b"PING\r\n", b"+PONG\r\n");
    // The slow client still gets everything once it reads.
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let want = 8 * (big.len() + "$8388608\r\n\r\n".len());
    while total < want {
        let n = slow.read(&mut buf).unwrap();
        assert!(n > 0);
        total += n;
    }
    assert_eq!(total, want);
    srv.shutdown().unwrap();
}

#[test]
fn maxconns_closes_the_surplus_without_a_reply() {
    let (srv, addr) = start(Config {
        maxconns: 1,
        ..config()
    });
    let mut first = connect(addr);
    exchange(&mut first, b"PING\r\n", b"+PONG\r\n");
    let mut second = connect(addr);
    let _ = second.write_all(b"PING\r\n");
    assert_closed(&mut second);
    let stats = srv
        .shared()
        .conns
        .rejected
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stats, 1);
    exchange(&mut first, b"PING\r\n", b"+PONG\r\n");
    srv.shutdown().unwrap();
}

#[test]
fn monitor_sees_other_clients_commands() {
    let (srv, addr) = start(config());
    let mut mon = connect(addr);
    exchange(&mut mon, b"MONITOR\r\n", b"+OK\r\n");
    let mut c = connect(addr);
    exchange(&mut c, &cmd(&[b"SET", b"mon", b"a\x01"]), b"+OK\r\n");
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        mon.read_exact(&mut b).unwrap();
        line.push(b[0]);
    }
    let line = String::from_utf8(line).unwrap();
    assert!(line.starts_with('+'), "{line}");
    assert!(line.ends_with("] \"SET\" \"mon\" \"a\\x01\"\r\n"), "{line}");
    assert!(line.contains(" [0 127.0.0.1:"), "{line}");
    // A monitoring connection answers PING and closes on anything else.
    exchange(&mut mon, b"PING\r\n", b"+PONG\r\n");
    mon.write_all(b"GET x\r\n").unwrap();
    assert_closed(&mut mon);
    srv.shutdown().unwrap();
}

#[test]
fn unix_socket_and_inline_protocol() {
    let dir = std::env::temp_dir().join(format!("pogocache-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.sock");
    let srv = pogocache_server::Server::start(Config {
        port: None,
        unixsocket: Some(path.clone()),
        ..config()
    })
    .unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"SET a \"hello world\"\r\nGET a\r\n").unwrap();
    let mut buf = [0u8; 23];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+OK\r\n$11\r\nhello world\r\n");
    srv.shutdown().unwrap();
    assert!(!path.exists(), "socket file removed at shutdown");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn first_line_split_across_segments_is_served() {
    // Pogocache rejects this with -ERROR (gap B1); we wait for the line.
    let (srv, addr) = start(config());
    let mut s = connect(addr);
    s.write_all(b"PI").unwrap();
    s.flush().unwrap();
    exchange(&mut s, b"NG\r\n", b"+PONG\r\n");
    srv.shutdown().unwrap();
}

#[test]
fn stats_count_this_connection_and_commands() {
    let (srv, addr) = start(config());
    let mut s = connect(addr);
    exchange(&mut s, &cmd(&[b"GET", b"a"]), b"$-1\r\n");
    s.write_all(b"STATS\r\n").unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&reply).contains("total_items\r\n$1\r\n0\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        reply.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("*36\r\n*2\r\n$3\r\npid\r\n"));
    assert!(
        text.contains("$16\r\ncurr_connections\r\n$1\r\n1\r\n"),
        "{text}"
    );
    assert!(text.contains("$7\r\ncmd_get\r\n$1\r\n1\r\n"), "{text}");
    assert!(text.contains("$10\r\nget_misses\r\n$1\r\n1\r\n"), "{text}");
    srv.shutdown().unwrap();
}

#[test]
fn nothing_runs_before_auth_on_any_protocol() {
    let (srv, addr) = start(Config {
        auth: "pw".into(),
        ..config()
    });
    let mut r = connect(addr);
    exchange(
        &mut r,
        &cmd(&[b"SET", b"a", b"resp"]),
        b"-NOAUTH Authentication required.\r\n",
    );
    let mut m = connect(addr);
    exchange(
        &mut m,
        b"set b 0 0 1\r\nx\r\n",
        b"CLIENT_ERROR Authentication required\r\n",
    );
    let mut h = connect(addr);
    exchange(
        &mut h,
        b"PUT /c HTTP/1.0\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 14\r\nConnection: Close\r\n\r\nUnauthorized\r\n",
    );
    exchange(&mut r, &cmd(&[b"AUTH", b"pw"]), b"+OK\r\n");
    exchange(
        &mut r,
        &cmd(&[b"MGET", b"a", b"b", b"c"]),
        b"*3\r\n$-1\r\n$-1\r\n$-1\r\n",
    );
    assert_eq!(srv.shared().store.len(), 0);
    srv.shutdown().unwrap();
}
