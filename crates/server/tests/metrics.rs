//! `GET /metrics`: Prometheus text format validated by `promtool check
//! metrics` (Debian's prometheus package, installed by `.ci/run`) after a
//! mixed workload over three protocols, with counters checked against the
//! operations sent; and the route is behind `--auth`.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::{cmd, config, connect, exchange, start};
use pogocache_server::Config;

fn scrape(addr: std::net::SocketAddr, auth: Option<&str>) -> (u16, String) {
    let mut h = connect(addr);
    let header = auth
        .map(|a| format!("Authorization: Bearer {a}\r\n"))
        .unwrap_or_default();
    write!(h, "GET /metrics HTTP/1.0\r\n{header}\r\n").unwrap();
    let mut raw = Vec::new();
    h.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head[9..12].parse().unwrap();
    (code, body.to_string())
}

fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{series} missing:\n{body}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_after_a_mixed_workload_pass_promtool_and_add_up() {
    let (srv, addr) = start(config());
    let mut r = connect(addr);
    for i in 0..30 {
        let k = format!("k{i}");
        exchange(&mut r, &cmd(&[b"SET", k.as_bytes(), b"v"]), b"+OK\r\n");
    }
    for i in 0..20 {
        let k = format!("k{}", i * 2); // 15 hits (k0..k28), 5 misses
        let want: &[u8] = if i * 2 < 30 {
            b"$1\r\nv\r\n"
        } else {
            b"$-1\r\n"
        };
        exchange(&mut r, &cmd(&[b"GET", k.as_bytes()]), want);
    }
    exchange(
        &mut r,
        &cmd(&[b"INCR", b"k0"]),
        b"-ERR value is not an integer or out of range\r\n",
    );
    exchange(&mut r, &cmd(&[b"NOPE"]), b"-ERR unknown command 'NOPE'\r\n");
    let mut m = connect(addr);
    exchange(
        &mut m,
        b"set mc 0 0 1\r\nx\r\nget mc\r\n",
        b"STORED\r\nVALUE mc 0 1\r\nx\r\nEND\r\n",
    );
    // HTTP on one keep-alive connection: a store, a hit, a miss (an
    // answer, not an error) and a refused TTL (an error).
    let mut h = connect(addr);
    let ok = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            body.len()
        )
    };
    exchange(
        &mut h,
        b"PUT /hk HTTP/1.1\r\nContent-Length: 1\r\n\r\ny",
        ok("Stored\r\n").as_bytes(),
    );
    exchange(&mut h, b"GET /hk HTTP/1.1\r\n\r\n", ok("y").as_bytes());
    exchange(
        &mut h,
        b"GET /nokey HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\nNot Found\r\n",
    );
    exchange(
        &mut h,
        b"PUT /hk?ttl=abc HTTP/1.1\r\nContent-Length: 1\r\n\r\nz",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 25\r\nConnection: keep-alive\r\n\r\nERR invalid expire time\r\n",
    );

    let (code, body) = scrape(addr, None);
    assert_eq!(code, 200);
    assert_eq!(
        sample(
            &body,
            "pogocache_commands_total{cmd=\"set\",outcome=\"ok\"}"
        ),
        // 30 RESP, 1 memcache, 1 HTTP: every protocol is counted as the
        // table command it runs.
        32.0
    );
    assert_eq!(
        sample(
            &body,
            "pogocache_commands_total{cmd=\"set\",outcome=\"error\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &body,
            "pogocache_commands_total{cmd=\"mget\",outcome=\"ok\"}"
        ),
        1.0,
        "memcache get"
    );
    assert_eq!(
        sample(
            &body,
            "pogocache_commands_total{cmd=\"get\",outcome=\"ok\"}"
        ),
        22.0
    );
    assert_eq!(
        sample(
            &body,
            "pogocache_commands_total{cmd=\"incr\",outcome=\"error\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &body,
            "pogocache_commands_total{cmd=\"unknown\",outcome=\"error\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&body, "pogocache_requests_total{protocol=\"resp\"}"),
        52.0
    );
    assert_eq!(
        sample(&body, "pogocache_requests_total{protocol=\"memcache\"}"),
        2.0
    );
    // Hits and misses span protocols: 15 + 1 memcache + 1 HTTP hit,
    // 5 + 1 HTTP misses.
    assert_eq!(sample(&body, "pogocache_keyspace_hits_total"), 17.0);
    assert_eq!(sample(&body, "pogocache_keyspace_misses_total"), 6.0);
    assert_eq!(sample(&body, "pogocache_items"), 32.0);
    assert_eq!(sample(&body, "pogocache_connections"), 4.0);
    assert!(sample(&body, "pogocache_item_bytes") > 0.0);
    // One command in 64 is timed, per worker, whatever the protocol.
    // Connections go to the two workers in turn: the RESP connection and
    // the HTTP one share worker 0 (52 + 4 requests, plus 76 PINGs: 132,
    // so exactly 2 samples); the memcache connection's 2 requests and the
    // scrapes (not commands) are on worker 1.
    for _ in 0..76 {
        exchange(&mut r, &cmd(&[b"PING"]), b"+PONG\r\n");
    }
    let (_, body2) = scrape(addr, None);
    assert_eq!(
        sample(&body2, "pogocache_command_duration_seconds_count"),
        2.0
    );
    assert_eq!(
        sample(
            &body2,
            "pogocache_command_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        2.0
    );
    assert!(sample(&body2, "pogocache_command_duration_seconds_sum") > 0.0);

    if !common::tool("promtool", &["--version"]) {
        srv.shutdown().unwrap();
        return;
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) runs");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    srv.shutdown().unwrap();
}

#[test]
fn metrics_need_the_password_when_auth_is_set() {
    let (srv, addr) = start(Config {
        auth: "pw".into(),
        ..config()
    });
    assert_eq!(scrape(addr, None).0, 401);
    assert_eq!(scrape(addr, Some("bad")).0, 401);
    let (code, body) = scrape(addr, Some("pw"));
    assert_eq!(code, 200);
    assert!(body.contains("# TYPE pogocache_commands_total counter"));
    srv.shutdown().unwrap();
}
