//! Abuse over TCP: clients that hold partial requests, thousands of idle
//! connections, huge declared lengths, invalid UTF-8 in every protocol,
//! clients that never read, and random disconnects mid-request. In each
//! case a well-behaved client on the same server keeps being served, the
//! data it stored stays intact, and the process's RSS stays bounded.
//!
//! RSS is the whole test process (server and clients share it), so the
//! tests that measure it run one at a time (`SERIAL`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;

use common::{assert_closed, cmd, config, connect, exchange, read_n, rss, rss_bounds_apply, start};
use pogocache_server::Config;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A well-behaved client: a round of writes and reads with exact replies.
fn healthy(addr: SocketAddr, tag: &str) {
    let mut s = connect(addr);
    for i in 0..50 {
        let k = format!("{tag}:{i}");
        exchange(&mut s, &cmd(&[b"SET", k.as_bytes(), b"v"]), b"+OK\r\n");
        exchange(&mut s, &cmd(&[b"GET", k.as_bytes()]), b"$1\r\nv\r\n");
    }
}

/// Raises this process's open-file limit to its hard limit; returns it.
fn raise_nofile() -> usize {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    r.rlim_cur as usize
}

#[test]
fn slowloris_clients_holding_partial_requests_do_not_block_others() {
    let _g = serial();
    let (srv, addr) = start(config());
    let partials: [&[u8]; 4] = [
        b"*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$10\r\nabc",
        b"set slow 0 0 10\r\nabc",
        b"PUT /slow HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
        b"GET /slow HTTP/1.1\r\nHost: x\r\n",
    ];
    let mut held = Vec::new();
    for i in 0..200 {
        let mut s = connect(addr);
        s.write_all(partials[i % partials.len()]).unwrap();
        held.push(s);
    }
    healthy(addr, "slowloris");
    // The held requests were buffered, not lost: finishing them works.
    let rests: [&[u8]; 4] = [b"defghij\r\n", b"defghij\r\n", b"defghij", b"\r\n"];
    let replies: [&[u8]; 4] = [
        b"+OK\r\n",
        b"STORED\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\n",
    ];
    for (i, s) in held.iter_mut().enumerate().take(8) {
        s.write_all(rests[i % 4]).unwrap();
        assert_eq!(read_n(s, replies[i % 4].len()), replies[i % 4]);
    }
    let mut c = connect(addr);
    exchange(&mut c, &cmd(&[b"GET", b"slow"]), b"$10\r\nabcdefghij\r\n");
    srv.shutdown().unwrap();
}

#[test]
fn ten_thousand_idle_connections_against_maxconns() {
    let _g = serial();
    let limit = raise_nofile();
    // Client and server ends share this process's descriptors.
    let n = 10_000.min(limit.saturating_sub(500) / 2);
    assert!(n >= 1000, "open-file limit {limit} too low for this test");
    let (srv, addr) = start(Config {
        maxconns: n + 1,
        threads: 2,
        ..config()
    });
    let before = rss();
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(addr).unwrap());
    }
    // One slot left: a working client gets it and is served.
    let mut active = connect(addr);
    exchange(&mut active, b"PING\r\n", b"+PONG\r\n");
    for i in 0..50 {
        let k = format!("idle:{i}");
        exchange(&mut active, &cmd(&[b"SET", k.as_bytes(), b"v"]), b"+OK\r\n");
        exchange(&mut active, &cmd(&[b"GET", k.as_bytes()]), b"$1\r\nv\r\n");
    }
    // Beyond --maxconns new connections are closed without a reply.
    let mut extra = connect(addr);
    let _ = extra.write_all(b"PING\r\n");
    assert_closed(&mut extra);
    exchange(&mut active, b"PING\r\n", b"+PONG\r\n");
    let grown = rss().saturating_sub(before);
    // Idle connections cost the server a small struct and an untouched
    // buffer each, not their 16 KiB read buffer.
    assert!(
        !rss_bounds_apply() || grown < n * 4096,
        "{n} idle connections grew RSS by {grown} bytes"
    );
    drop(idle);
    srv.shutdown().unwrap();
}

#[test]
fn huge_declared_lengths_do_not_allocate_up_front() {
    let _g = serial();
    let (srv, addr) = start(config());
    let before = rss();
    let mut held = Vec::new();
    for i in 0..300 {
        let mut s = connect(addr);
        let req: &[u8] = match i % 3 {
            // 512 MB (just under the argument limit), 10 bytes sent.
            0 => b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870000\r\n0123456789",
            1 => b"set k 0 0 536870000\r\n0123456789",
            _ => b"PUT /k HTTP/1.1\r\nContent-Length: 536870000\r\n\r\n0123456789",
        };
        s.write_all(req).unwrap();
        held.push(s);
    }
    healthy(addr, "huge");
    let grown = rss().saturating_sub(before);
    assert!(
        !rss_bounds_apply() || grown < 64 << 20,
        "300 huge declarations grew RSS by {grown} bytes"
    );
    // Lengths past the limits are refused outright.
    let mut s = connect(addr);
    s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"-ERR"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let mut s = connect(addr);
    exchange(
        &mut s,
        b"*2147483647\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    let mut h = connect(addr);
    h.write_all(b"PUT /k HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    h.read_to_end(&mut got).unwrap();
    assert!(
        got.starts_with(b"HTTP/1.1 413"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    drop(held);
    srv.shutdown().unwrap();
}

#[test]
fn invalid_utf8_in_every_protocol_is_data_or_a_clean_error() {
    let (srv, addr) = start(config());
    let key = b"k\xff\xfe\x80";
    let val = b"\xc3\x28\xa0\xa1\x00\xff";
    let mut r = connect(addr);
    exchange(&mut r, &cmd(&[b"SET", key, val]), b"+OK\r\n");
    let mut want = b"$6\r\n".to_vec();
    want.extend_from_slice(val);
    want.extend_from_slice(b"\r\n");
    exchange(&mut r, &cmd(&[b"GET", key]), &want);
    exchange(
        &mut r,
        &cmd(&[b"\xff\xfeGET", key]),
        b"-ERR unknown command '\xff\xfeGET'\r\n",
    );
    let mut m = connect(addr);
    exchange(&mut m, b"set \xc3\x28 0 0 2\r\n\xff\xfe\r\n", b"STORED\r\n");
    exchange(
        &mut m,
        b"get \xc3\x28\r\n",
        b"VALUE \xc3\x28 0 2\r\n\xff\xfe\r\nEND\r\n",
    );
    exchange(&mut m, b"\xff\xfe\r\n", b"ERROR\r\n");
    let mut h = connect(addr);
    h.write_all(b"GET /%FF%FE HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_n(&mut h, 24), b"HTTP/1.1 404 Not Found\r\n");
    let mut h = connect(addr);
    h.write_all(b"GET /\xff\xfe HTTP/1.1\r\n\r\n").unwrap();
    let mut got = Vec::new();
    h.read_to_end(&mut got).unwrap();
    assert!(
        got.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // Everything stored is intact.
    exchange(&mut r, &cmd(&[b"GET", key]), &want);
    srv.shutdown().unwrap();
}

#[test]
fn a_client_that_never_reads_costs_bounded_memory() {
    let _g = serial();
    let (srv, addr) = start(Config {
        threads: 1,
        ..config()
    });
    let mut s = connect(addr);
    let value = vec![b'x'; 1 << 20];
    exchange(&mut s, &cmd(&[b"SET", b"mb", &value]), b"+OK\r\n");
    let before = rss();
    // 4 GiB of replies requested, none read: the server stops running
    // this client's requests once its output backs up, and stops reading
    // its input once that backs up too.
    let mut hog = connect(addr);
    hog.set_nonblocking(true).unwrap();
    let get = cmd(&[b"GET", b"mb"]);
    let mut sent = 0usize;
    for _ in 0..4096 {
        match hog.write(&get) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent > 0);
    healthy(addr, "hog");
    let grown = rss().saturating_sub(before);
    assert!(
        !rss_bounds_apply() || grown < 64 << 20,
        "a non-reading client grew RSS by {grown} bytes"
    );
    drop(hog);
    exchange(&mut s, &cmd(&[b"EXISTS", b"mb"]), b":1\r\n");
    srv.shutdown().unwrap();
}

#[test]
fn random_disconnects_mid_request_lose_nothing() {
    let (srv, addr) = start(config());
    let mut c = connect(addr);
    exchange(&mut c, &cmd(&[b"SET", b"keep", b"safe"]), b"+OK\r\n");
    let requests: [&[u8]; 5] = [
        b"*3\r\n$3\r\nSET\r\n$4\r\nkeep\r\n$5\r\nlost!\r\n",
        b"set keep 0 0 5\r\nlost!\r\n",
        b"PUT /keep HTTP/1.1\r\nContent-Length: 5\r\n\r\nlost!",
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
        b"*2\r\n$3\r\nDEL\r\n$4\r\nkeep\r\n",
    ];
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..600 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let req = requests[i % requests.len()];
        // Strictly shorter than the request: it never completes.
        let cut = (rng as usize) % req.len();
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(&req[..cut]);
        if i % 2 == 0 {
            // Reset instead of FIN on half of them.
            let _ = socket2::SockRef::from(&s).set_linger(Some(std::time::Duration::ZERO));
        }
        drop(s);
    }
    exchange(&mut c, &cmd(&[b"GET", b"keep"]), b"$4\r\nsafe\r\n");
    healthy(addr, "disconnects");
    srv.shutdown().unwrap();
}
