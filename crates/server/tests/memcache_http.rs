//! Memcache and HTTP over real sockets: byte tables from Pogocache's
//! captures (adjusted where we fix a documented Pogocache bug), real
//! client crates, keep-alive, auth, and cross-protocol visibility.

mod common;

use std::io::Write;

use common::*;
use pogocache_command::VERSION;
use pogocache_server::Config;

/// The memcache session captured from Pogocache 1.3.1, in order on
/// one connection. Rows marked with a gap id are where we diverge.
#[test]
fn memcache_session_bytes() {
    let (srv, addr) = start(config());
    let mut s = connect(addr);
    let version = format!("VERSION {VERSION}\r\n");
    let cases: &[(&[u8], &[u8])] = &[
        (b"set m1 0 0 5\r\nhello\r\nget m1\r\n", b"STORED\r\nVALUE m1 0 5\r\nhello\r\nEND\r\n"),
        // CAS works by default: `gets` hands out a unique (lazily, the
        // first time an item is read with gets).
        (b"set m2 5 0 3\r\nabc\r\nget m2\r\ngets m2\r\n", b"STORED\r\nVALUE m2 5 3\r\nabc\r\nEND\r\nVALUE m2 5 3 1\r\nabc\r\nEND\r\n"),
        // D1: noreply is honoured.
        (b"set m4 0 0 3 noreply\r\nabc\r\nget m4\r\n", b"VALUE m4 0 3\r\nabc\r\nEND\r\n"),
        (b"set m5 0 0 3\r\nabcd\r\nget m5\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"),
        (b"set m6 0 0 -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (b"set m6 0 0 x\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (b"set m6 x 0 1\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        (b"set m6 -1 0 1\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        (b"set m6 4294967296 0 1\r\na\r\nget m6\r\n", b"STORED\r\nVALUE m6 0 1\r\na\r\nEND\r\n"),
        (b"set m6 0 x 1\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        (b"set m6 0 0\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (b"set m6 0 0 536870913\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        // D3: extra tokens are an error, as in memcached.
        (b"set n1 0 0 1 2 3\r\nZ\r\nget n1\r\n", b"ERROR\r\nERROR\r\nEND\r\n"),
        (b"set n\x01x 0 0 1\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        (b"set n\xffx 0 0 1\r\na\r\nget n\xffx\r\n", b"STORED\r\nVALUE n\xffx 0 1\r\na\r\nEND\r\n"),
        (b"set n4 0 -1 1\r\na\r\nget n4\r\n", b"STORED\r\nEND\r\n"),
        (b"set n5 0 2592001 1\r\na\r\nget n5\r\n", b"STORED\r\nEND\r\n"),
        // D8: any spelling of zero means "never expires".
        (b"set n6 0 00 1\r\na\r\nget n6\r\n", b"STORED\r\nVALUE n6 0 1\r\na\r\nEND\r\n"),
        (b"set n9 0 0 0\r\n\r\nget n9\r\n", b"STORED\r\nVALUE n9 0 0\r\n\r\nEND\r\n"),
        // memcached's replies for a failed add/replace (Pogocache: EXISTS
        // and NOT_FOUND, kept under --mclegacy yes).
        (b"add m1 0 0 1\r\nz\r\n", b"NOT_STORED\r\n"),
        (b"add m7 0 0 1\r\nz\r\n", b"STORED\r\n"),
        (b"replace m8 0 0 1\r\nz\r\n", b"NOT_STORED\r\n"),
        (b"replace m7 0 0 1\r\ny\r\nget m7\r\n", b"STORED\r\nVALUE m7 0 1\r\ny\r\nEND\r\n"),
        (b"append m7 5 9 2\r\nAB\r\nprepend m7 0 0 2\r\nCD\r\nget m7\r\n", b"STORED\r\nSTORED\r\nVALUE m7 0 5\r\nCDyAB\r\nEND\r\n"),
        (b"append nokey 0 0 2\r\nAB\r\n", b"NOT_STORED\r\n"),
        (b"prepend nokey 0 0 2\r\nAB\r\n", b"NOT_STORED\r\n"),
        (b"cas m7 0 0 1 0\r\nq\r\n", b"EXISTS\r\n"),
        // D2: no stray NUL after NOT_FOUND.
        (b"cas nokey 0 0 1 0\r\nq\r\n", b"NOT_FOUND\r\n"),
        (b"cas m7 0 0 1 x\r\nq\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        (b"get m1 m2 nokey m7\r\n", b"VALUE m1 0 5\r\nhello\r\nVALUE m2 5 3\r\nabc\r\nVALUE m7 0 5\r\nCDyAB\r\nEND\r\n"),
        (b"gets m1 m2\r\n", b"VALUE m1 0 5 2\r\nhello\r\nVALUE m2 5 3 1\r\nabc\r\nEND\r\n"),
        (b"get\r\n", b"ERROR\r\n"),
        (b"gets\r\n", b"ERROR\r\n"),
        (b"get  m7\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (b"get m7 \r\n", b"VALUE m7 0 5\r\nCDyAB\r\nEND\r\n"),
        (b"delete m1\r\ndelete m1\r\n", b"DELETED\r\nNOT_FOUND\r\n"),
        // D11: the legacy time 0 is accepted.
        (b"delete m1 0\r\n", b"NOT_FOUND\r\n"),
        (b"delete m1 5\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (b"delete\r\n", b"ERROR\r\n"),
        (b"incr cnt 1\r\n", b"NOT_FOUND\r\n"),
        // D6: decr clamps at 0; incr wraps at 2^64.
        (b"set cnt 0 0 1\r\n5\r\nincr cnt 10\r\ndecr cnt 100\r\nincr cnt 18446744073709551615\r\n", b"STORED\r\n15\r\n0\r\n18446744073709551615\r\n"),
        (b"incr cnt 1\r\n", b"0\r\n"),
        (b"incr cnt x\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
        (b"incr cnt -1\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
        (b"incr m7 1\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
        (b"incr\r\n", b"ERROR\r\n"),
        (b"incr cnt 1 noreply\r\nget cnt\r\n", b"VALUE cnt 0 1\r\n1\r\nEND\r\n"),
        (b"touch m7 100\r\ntouch nokey 100\r\n", b"TOUCHED\r\nNOT_FOUND\r\n"),
        (b"touch m7\r\n", b"ERROR\r\n"),
        (b"touch m7 x\r\n", b"CLIENT_ERROR value is not an integer or out of range\r\n"),
        // D7: touch 0 clears the TTL instead of expiring the key.
        (b"touch m7 0\r\nget m7\r\n", b"TOUCHED\r\nVALUE m7 0 5\r\nCDyAB\r\nEND\r\n"),
        // D5: gat/gats work.
        (b"gat 100 m2\r\n", b"VALUE m2 5 3\r\nabc\r\nEND\r\n"),
        // gat changed m2's TTL (unique 3), gats again (unique 4).
        (b"gats 100 m2 nokey\r\n", b"VALUE m2 5 3 4\r\nabc\r\nEND\r\n"),
        (b"gat -1 m2\r\nget m2\r\n", b"END\r\nEND\r\n"),
        (b"gat 100\r\n", b"ERROR\r\n"),
        (b"version\r\n", version.as_bytes()),
        // D4: verbosity answers OK.
        (b"verbosity 1\r\n", b"OK\r\n"),
        (b"verbosity 1 2\r\n", b"ERROR\r\n"),
        (b"flush_all x\r\n", b"CLIENT_ERROR invalid delay argument\r\n"),
        (b"flush_all -1\r\n", b"CLIENT_ERROR invalid delay argument\r\n"),
        (b"flush_all 1 2\r\n", b"ERROR\r\n"),
        (b"flush_all\r\nget m1\r\n", b"OK\r\nEND\r\n"),
        (b"flush_all noreply\r\nversion\r\n", version.as_bytes()),
        (b"foo\r\n", b"ERROR\r\n"),
        (b"GET m2\r\n", b"ERROR\r\n"),
        (b"ping\r\n", b"ERROR\r\n"),
        (b"mget a\r\n", b"ERROR\r\n"),
        (b"stats items\r\n", b"CLIENT_ERROR syntax error\r\n"),
        (b"\r\n", b"ERROR\r\n"),
    ];
    for (req, want) in cases {
        exchange(&mut s, req, want);
    }
    s.write_all(b"stats\r\n").unwrap();
    let mut stats = Vec::new();
    while !stats.ends_with(b"END\r\n") {
        stats.extend(read_n(&mut s, 1));
    }
    let text = String::from_utf8(stats).unwrap();
    assert!(text.starts_with("STAT pid "), "{text}");
    assert_eq!(text.lines().count(), 37, "36 stats and END");
    assert!(text.contains("\r\nSTAT store_too_large 1\r\n"), "{text}");
    exchange(&mut s, b"quit\r\n", b"");
    assert_closed(&mut s);
    // An uppercase first verb makes the connection RESP.
    let mut r = connect(addr);
    exchange(&mut r, b"SET x 0 0 1\r\n", b"-ERR syntax error\r\n");
    srv.shutdown().unwrap();
}

#[test]
fn memcache_readme_example_and_cas() {
    let (srv, addr) = start(Config {
        cas: true,
        ..config()
    });
    let mut s = connect(addr);
    exchange(
        &mut s,
        b"set k 5 0 2\r\nhi\r\nget k\r\n",
        b"STORED\r\nVALUE k 5 2\r\nhi\r\nEND\r\n",
    );
    exchange(
        &mut s,
        b"set c1 0 0 1\r\na\r\ngets c1\r\n",
        b"STORED\r\nVALUE c1 0 1 2\r\na\r\nEND\r\n",
    );
    exchange(
        &mut s,
        b"set c1 0 0 1\r\nb\r\ngets c1\r\n",
        b"STORED\r\nVALUE c1 0 1 3\r\nb\r\nEND\r\n",
    );
    exchange(&mut s, b"cas c1 0 0 1 3\r\nZ\r\n", b"STORED\r\n");
    exchange(&mut s, b"cas c1 0 0 1 3\r\nY\r\n", b"EXISTS\r\n");
    exchange(
        &mut s,
        b"touch c1 100\r\ngets c1\r\n",
        b"TOUCHED\r\nVALUE c1 0 1 6\r\nZ\r\nEND\r\n",
    );
    srv.shutdown().unwrap();
}

#[test]
fn memcache_legacy_switch_restores_pogocache_quirks() {
    let (srv, addr) = start(Config {
        mc_legacy: true,
        ..config()
    });
    let mut s = connect(addr);
    exchange(&mut s, b"set m4 0 0 3 noreply\r\nabc\r\n", b"STORED\r\n");
    exchange(
        &mut s,
        b"set cnt 0 0 1\r\n5\r\ndecr cnt 6\r\n",
        b"STORED\r\n18446744073709551615\r\n",
    );
    exchange(&mut s, b"touch m4 0\r\nget m4\r\n", b"TOUCHED\r\nEND\r\n");
    // Pogocache's replies for a failed add / replace.
    exchange(
        &mut s,
        b"set a 0 0 1\r\nx\r\nadd a 0 0 1\r\ny\r\nreplace nokey 0 0 1\r\ny\r\n",
        b"STORED\r\nEXISTS\r\nNOT_FOUND\r\n",
    );
    srv.shutdown().unwrap();
}

/// Storage replies exactly as memcached sends them, with default flags:
/// add/replace failures are NOT_STORED, cas tells a missing key
/// (NOT_FOUND) from a changed one (EXISTS), and gets/cas work without
/// `--cas yes`, with a unique that changes on every modification.
#[test]
fn memcache_storage_replies_and_cas_by_default() {
    let (srv, addr) = start(config());
    let mut s = connect(addr);
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"add k 0 0 1\r\na\r\nadd k 0 0 1\r\nb\r\n",
            b"STORED\r\nNOT_STORED\r\n",
        ),
        (
            b"replace nokey 0 0 1\r\nb\r\nreplace k 0 0 1\r\nb\r\n",
            b"NOT_STORED\r\nSTORED\r\n",
        ),
        (b"cas nokey 0 0 1 1\r\nb\r\n", b"NOT_FOUND\r\n"),
        // An item never read with gets has no unique: no cas matches it.
        (b"cas k 0 0 1 0\r\nc\r\n", b"EXISTS\r\n"),
        (b"gets k\r\n", b"VALUE k 0 1 1\r\nb\r\nEND\r\n"),
        (b"gets k\r\n", b"VALUE k 0 1 1\r\nb\r\nEND\r\n"),
        (b"cas k 0 0 1 1\r\nc\r\n", b"STORED\r\n"),
        (b"cas k 0 0 1 1\r\nd\r\n", b"EXISTS\r\n"),
        (b"gets k\r\n", b"VALUE k 0 1 2\r\nc\r\nEND\r\n"),
        // Every modification changes the unique: a write by another
        // client, a touch, an append, a counter step.
        (
            b"set k 0 0 1\r\nz\r\ncas k 0 0 1 2\r\ny\r\n",
            b"STORED\r\nEXISTS\r\n",
        ),
        (b"gets k\r\n", b"VALUE k 0 1 3\r\nz\r\nEND\r\n"),
        (
            b"touch k 100\r\ncas k 0 0 1 3\r\ny\r\n",
            b"TOUCHED\r\nEXISTS\r\n",
        ),
        (b"gets k\r\n", b"VALUE k 0 1 4\r\nz\r\nEND\r\n"),
        (
            b"append k 0 0 1\r\n!\r\ncas k 0 0 1 4\r\ny\r\n",
            b"STORED\r\nEXISTS\r\n",
        ),
        (b"gats 0 k\r\n", b"VALUE k 0 2 5\r\nz!\r\nEND\r\n"),
        (
            b"set n 0 0 1\r\n1\r\ngets n\r\nincr n 1\r\ncas n 0 0 1 6\r\n9\r\n",
            b"STORED\r\nVALUE n 0 1 6\r\n1\r\nEND\r\n2\r\nEXISTS\r\n",
        ),
        // The meta protocol shares the uniques.
        (b"mg k c v\r\n", b"VA 2 c5\r\nz!\r\n"),
        (b"ms k 1 C5 c\r\nQ\r\n", b"HD c7\r\n"),
        (b"ms k 1 C5\r\nR\r\n", b"EX\r\n"),
        (b"md k C5\r\nmd k C0\r\n", b"EX\r\nEX\r\n"),
        (b"md k C7\r\nmg k\r\n", b"HD\r\nEN\r\n"),
    ];
    for (req, want) in cases {
        exchange(&mut s, req, want);
    }
    srv.shutdown().unwrap();
}

#[test]
fn memcache_and_http_with_auth() {
    let (srv, addr) = start(Config {
        auth: "secret".into(),
        ..config()
    });
    let mut m = connect(addr);
    exchange(
        &mut m,
        b"get a\r\n",
        b"CLIENT_ERROR Authentication required\r\n",
    );
    exchange(&mut m, b"auth secret\r\n", b"ERROR\r\n");
    exchange(
        &mut m,
        b"quit\r\n",
        b"CLIENT_ERROR Authentication required\r\n",
    );
    let unauthorized = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 14\r\nConnection: Close\r\n\r\nUnauthorized\r\n";
    let not_found =
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 11\r\nConnection: Close\r\n\r\nNot Found\r\n";
    let cases: &[(&[u8], &[u8])] = &[
        (b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", unauthorized),
        (b"GET /a?auth=secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", not_found),
        (b"GET /a?auth=wrong HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", unauthorized),
        (b"GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\nConnection: close\r\n\r\n", not_found),
        (b"GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nConnection: close\r\n\r\n", unauthorized),
    ];
    for (req, want) in cases {
        let mut h = connect(addr);
        exchange(&mut h, req, want);
        assert_closed(&mut h);
    }
    srv.shutdown().unwrap();
}

fn http_ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: Close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn http_routes_bytes() {
    let (srv, addr) = start(config());
    let bad = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 13\r\nConnection: Close\r\n\r\nBad Request\r\n".to_vec();
    let nf =
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 11\r\nConnection: Close\r\n\r\nNot Found\r\n"
            .to_vec();
    let invalid_key = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 17\r\nConnection: Close\r\n\r\nERR Invalid Key\r\n".to_vec();
    let err500 = |m: &str| {
        format!("HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: Close\r\n\r\n{m}\r\n", m.len() + 2)
            .into_bytes()
    };
    let long = format!(
        "GET /{} HTTP/1.1\r\nConnection: close\r\n\r\n",
        "k".repeat(251)
    );
    let cases: Vec<(&[u8], Vec<u8>)> = vec![
        (b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", http_ok("Welcome to the Pogocache HTTP interface.\nVisit https://github.com/tidwall/pogocache for documentation and examples.\n")),
        (b"GET /hk HTTP/1.0\r\nHost: x\r\n\r\n", nf.clone()),
        (b"PUT /hk HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", http_ok("Stored\r\n")),
        (b"GET /hk HTTP/1.0\r\nHost: x\r\n\r\n", http_ok("hello")),
        (b"DELETE /hk HTTP/1.0\r\nHost: x\r\n\r\n", http_ok("Deleted\r\n")),
        (b"DELETE /hk HTTP/1.0\r\nHost: x\r\n\r\n", nf.clone()),
        (b"POST /hk HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", bad.clone()),
        (b"HEAD /hk HTTP/1.1\r\nHost: x\r\n\r\n", bad.clone()),
        (b"get /hk HTTP/1.1\r\nHost: x\r\n\r\n", bad.clone()),
        (b"GET /@stats HTTP/1.1\r\nHost: x\r\n\r\n", bad.clone()),
        (b"GET hk HTTP/1.1\r\nHost: x\r\n\r\n", bad.clone()),
        (b"GET /hk HTTP/3.0\r\nHost: x\r\n\r\n", bad.clone()),
        (b"GET /hk HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", bad.clone()),
        (long.as_bytes(), invalid_key.clone()),
        (b"GET /a+b HTTP/1.0\r\n\r\n", invalid_key.clone()),
        (b"PUT / HTTP/1.0\r\nContent-Length: 1\r\n\r\nx", invalid_key.clone()),
        (b"PUT /hk3?ttl=100&flags=7&nx HTTP/1.0\r\nContent-Length: 1\r\n\r\nA", http_ok("Stored\r\n")),
        (b"PUT /hk3?nx HTTP/1.0\r\nContent-Length: 1\r\n\r\nB", nf.clone()),
        (b"PUT /hk4?xx HTTP/1.0\r\nContent-Length: 1\r\n\r\nB", nf.clone()),
        (b"PUT /hk4?ttl=0 HTTP/1.0\r\nContent-Length: 1\r\n\r\nB", err500("ERR invalid expire time")),
        (b"PUT /hk4?flags=abc HTTP/1.0\r\nContent-Length: 1\r\n\r\nB", err500("ERR syntax error")),
        (b"PUT /hk4?nx&xx HTTP/1.0\r\nContent-Length: 1\r\n\r\nB", err500("ERR syntax error")),
        (b"GET /hk4?auth=zzz HTTP/1.0\r\n\r\n", b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 14\r\nConnection: Close\r\n\r\nUnauthorized\r\n".to_vec()),
        // Percent-decoding: `a%20b` is the key `a b` (E5, decided: decode).
        (b"PUT /a%20b HTTP/1.0\r\nContent-Length: 2\r\n\r\nsp", http_ok("Stored\r\n")),
        (b"GET /a%20b HTTP/1.0\r\n\r\n", http_ok("sp")),
        // E1: no header lines at all is served.
        (b"GET /hk3 HTTP/1.0\r\n\r\n", http_ok("A")),
        // E4: chunked bodies are refused, not stored empty.
        (b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", b"HTTP/1.1 411 Length Required\r\nContent-Length: 17\r\nConnection: Close\r\n\r\nLength Required\r\n".to_vec()),
        (b"PUT /c HTTP/1.1\r\nContent-Length: 536870913\r\n\r\n", b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 19\r\nConnection: Close\r\n\r\nPayload Too Large\r\n".to_vec()),
    ];
    for (req, want) in &cases {
        let mut h = connect(addr);
        exchange(&mut h, req, want);
        assert_closed(&mut h);
    }
    srv.shutdown().unwrap();
}

#[test]
fn http_keep_alive_and_pipelining() {
    let (srv, addr) = start(config());
    let mut h = connect(addr);
    let reqs = b"PUT /p1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let want = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: keep-alive\r\n\r\nStored\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: Close\r\n\r\nabc";
    exchange(&mut h, reqs, want);
    assert_closed(&mut h);
    srv.shutdown().unwrap();
}

#[test]
fn real_clients_and_cross_protocol() {
    let (srv, addr) = start(config());
    // memcache crate (text protocol).
    let mc = memcache::connect(format!("memcache://{addr}?protocol=ascii")).unwrap();
    mc.set("mk", "from-memcache", 0).unwrap();
    let v: Option<String> = mc.get("mk").unwrap();
    assert_eq!(v.as_deref(), Some("from-memcache"));
    mc.set("n", 41u64, 0).unwrap();
    assert_eq!(mc.increment("n", 1).unwrap(), 42);
    // As against memcached: a failed add is NOT_STORED, which the crate
    // reports as success without storing.
    mc.add("mk", "again", 0).unwrap();
    assert_eq!(
        mc.get::<String>("mk").unwrap().as_deref(),
        Some("from-memcache")
    );
    // gets + cas with default flags.
    let got: std::collections::HashMap<String, (String, u32, Option<u64>)> =
        mc.gets(&["mk"]).unwrap();
    let unique = got["mk"].2.expect("gets returns a cas unique");
    assert!(mc.cas("mk", "swapped", 0, unique).unwrap());
    assert!(
        !mc.cas("mk", "stale", 0, unique).unwrap(),
        "a used unique is stale"
    );
    assert_eq!(mc.get::<String>("mk").unwrap().as_deref(), Some("swapped"));
    mc.set("mk", "from-memcache", 0).unwrap();
    mc.delete("n").unwrap();
    let gone: Option<u64> = mc.get("n").unwrap();
    assert_eq!(gone, None);

    // RESP sees the memcache value; HTTP sees both.
    let mut r = connect(addr);
    exchange(&mut r, &cmd(&[b"GET", b"mk"]), b"$13\r\nfrom-memcache\r\n");
    exchange(
        &mut r,
        &cmd(&[b"SET", b"rk", b"from-resp", b"FLAGS", b"7"]),
        b"+OK\r\n",
    );
    let got = ureq::get(&format!("http://{addr}/rk"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert_eq!(got, "from-resp");
    let got = ureq::get(&format!("http://{addr}/mk"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert_eq!(got, "from-memcache");
    let put = ureq::put(&format!("http://{addr}/hk?ttl=100"))
        .send("from-http")
        .unwrap();
    assert_eq!(put.status(), 200);
    let v: Option<String> = mc.get("hk").unwrap();
    assert_eq!(v.as_deref(), Some("from-http"));
    let mut m = connect(addr);
    exchange(
        &mut m,
        b"get rk\r\n",
        b"VALUE rk 7 9\r\nfrom-resp\r\nEND\r\n",
    );
    exchange(&mut r, &cmd(&[b"TTL", b"hk"]), b":99\r\n");
    let missing = ureq::get(&format!("http://{addr}/nope")).call();
    assert!(matches!(missing, Err(ureq::Error::StatusCode(404))));
    srv.shutdown().unwrap();
}
