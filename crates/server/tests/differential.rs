//! The differences a differential run (identical command bursts sent to
//! Pogocache 1.3.1 and to us) found, each pinned to Pogocache's exact
//! reply bytes, plus the one place where we deliberately keep Redis's
//! behaviour (a TTL of 0 or less deletes at once; docs/COMPATIBILITY.md).
//!
//! Nothing here waits for time to pass: an entry that is already dead is
//! written with an expiry in the past (`PXAT 1`, memcache exptime `-1`),
//! which both servers store as a dead entry that DBSIZE still counts.

mod common;

use std::io::Write;

use common::*;

fn run(addr: std::net::SocketAddr, cases: &[(&[u8], &[u8])]) {
    let mut s = connect(addr);
    for (req, want) in cases {
        exchange(&mut s, req, want);
    }
}

/// A failing write that meets an expired entry removes it: DBSIZE no
/// longer counts it (Pogocache's bytes).
#[test]
fn failing_writes_on_expired_entries_remove_them() {
    let (srv, addr) = start(config());
    run(
        addr,
        &[
            (b"SET k v PXAT 1\r\nDBSIZE\r\n", b"+OK\r\n:1\r\n"),
            (b"SET k w XX\r\nDBSIZE\r\n", b"$-1\r\n:0\r\n"),
            (
                b"SET k v PXAT 1\r\nSET k w CAS 0\r\nDBSIZE\r\n",
                b"+OK\r\n$-1\r\n:0\r\n",
            ),
            // RESP APPEND and INCR create the key anew.
            (
                b"SET k v PXAT 1\r\nAPPEND k x\r\nDBSIZE\r\nGET k\r\n",
                b"+OK\r\n:1\r\n:1\r\n$1\r\nx\r\n",
            ),
            (
                b"SET k v PXAT 1\r\nINCR k\r\nDBSIZE\r\n",
                b"+OK\r\n:1\r\n:1\r\n",
            ),
            (b"FLUSHALL\r\n", b"+OK\r\n"),
        ],
    );
    // Memcache: replace, cas, append, prepend, incr, decr and touch on a
    // dead item each fail and leave nothing behind.
    let mut m = connect(addr);
    let mut r = connect(addr);
    for (req, want) in [
        (&b"replace j 0 0 1\r\nb\r\n"[..], &b"NOT_STORED\r\n"[..]),
        (b"cas j 0 0 1 0\r\nb\r\n", b"NOT_FOUND\r\n"),
        (b"append j 0 0 1\r\nb\r\n", b"NOT_STORED\r\n"),
        (b"prepend j 0 0 1\r\nb\r\n", b"NOT_STORED\r\n"),
        (b"incr j 1\r\n", b"NOT_FOUND\r\n"),
        (b"decr j 1\r\n", b"NOT_FOUND\r\n"),
        (b"touch j 10\r\n", b"NOT_FOUND\r\n"),
    ] {
        exchange(&mut m, b"set j 0 -1 1\r\na\r\n", b"STORED\r\n");
        exchange(&mut r, b"DBSIZE\r\n", b":1\r\n");
        exchange(&mut m, req, want);
        exchange(&mut r, b"DBSIZE\r\n", b":0\r\n");
    }
    // Meta commands too.
    for (req, want) in [
        (&b"ms j 1 MR\r\nb\r\n"[..], &b"NS\r\n"[..]),
        (b"ma j\r\n", b"NF\r\n"),
        (b"md j I\r\n", b"NF\r\n"),
        (b"mg j v\r\n", b"EN\r\n"),
    ] {
        exchange(&mut m, b"set j 0 -1 1\r\na\r\n", b"STORED\r\n");
        exchange(&mut m, req, want);
        exchange(&mut r, b"DBSIZE\r\n", b":0\r\n");
    }
    srv.shutdown().unwrap();
}

/// Decision (kept, Redis's behaviour): a TTL of 0 or less deletes the key
/// at once, so DBSIZE drops immediately. Pogocache keeps counting the dead
/// entry until it is read or swept (`:1`).
#[test]
fn a_ttl_of_zero_or_less_deletes_at_once() {
    let (srv, addr) = start(config());
    run(
        addr,
        &[
            (
                b"SET k v\r\nEXPIRE k 0\r\nDBSIZE\r\n",
                b"+OK\r\n:1\r\n:0\r\n",
            ),
            (
                b"SET k v\r\nEXPIRE k -5\r\nDBSIZE\r\n",
                b"+OK\r\n:1\r\n:0\r\n",
            ),
        ],
    );
    let mut m = connect(addr);
    let mut r = connect(addr);
    exchange(
        &mut m,
        b"set k 0 0 1\r\na\r\ntouch k -1\r\n",
        b"STORED\r\nTOUCHED\r\n",
    );
    exchange(&mut r, b"DBSIZE\r\n", b":0\r\n");
    srv.shutdown().unwrap();
}

/// A bad number is reported as soon as it is read, before option
/// conflicts (KEEPTTL with EX, NX with XX) that Pogocache checks last.
#[test]
fn set_reports_a_bad_expire_before_conflicts() {
    let (srv, addr) = start(config());
    let invalid = &b"-ERR invalid expire time\r\n"[..];
    let syntax = &b"-ERR syntax error\r\n"[..];
    run(
        addr,
        &[
            (b"SET k v KEEPTTL EX 0\r\n", invalid),
            (b"SET k v KEEPTTL EX abc\r\n", invalid),
            (b"SET k v KEEPTTL PX -1\r\n", invalid),
            (b"SET k v KEEPTTL EXAT 0\r\n", invalid),
            (b"SET k v NX XX EX 0\r\n", invalid),
            (b"SET k v EX 0 NX XX\r\n", invalid),
            (b"SET k v EX 10 KEEPTTL\r\n", syntax),
            (b"SET k v KEEPTTL PX 10\r\n", syntax),
            (b"SET k v NX XX\r\n", syntax),
            (b"SET k v FLAGS x KEEPTTL EX 0\r\n", syntax),
            (b"DBSIZE\r\n", b":0\r\n"),
        ],
    );
    srv.shutdown().unwrap();
}

/// Integers written with more than 21 bytes are not numbers, wherever a
/// number is parsed (Pogocache's bytes); 21 bytes still are.
#[test]
fn numbers_longer_than_21_bytes_are_refused() {
    let (srv, addr) = start(config());
    let ok_not_int = &b"+OK\r\n-ERR value is not an integer or out of range\r\n"[..];
    run(
        addr,
        &[
            (b"SET k 0000000000000000000042\r\nINCR k\r\n", ok_not_int),
            (
                b"SET k 000000000000000000042\r\nINCR k\r\n",
                b"+OK\r\n:43\r\n",
            ),
            (
                b"SET k 1\r\nEXPIRE k 0000000000000000000010\r\n",
                ok_not_int,
            ),
            (b"EXPIRE k 000000000000000000010\r\n", b":1\r\n"),
            (
                b"SET k 1 EX 0000000000000000000010\r\n",
                b"-ERR invalid expire time\r\n",
            ),
            (
                b"SET k 1 FLAGS 0000000000000000000010\r\n",
                b"-ERR syntax error\r\n",
            ),
            (
                b"SET k 1\r\nINCRBY k 0000000000000000000010\r\n",
                ok_not_int,
            ),
            (
                b"SCAN 0000000000000000000000\r\n",
                b"-ERR invalid cursor\r\n",
            ),
            (
                b"SCAN 000000000000000000000\r\n",
                b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n",
            ),
        ],
    );
    run(
        addr,
        &[
            (
                b"set k 0 0000000000000000000010 1\r\na\r\n",
                b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
            ),
            (
                b"set k 0000000000000000000010 0 1\r\na\r\n",
                b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
            ),
            (
                b"set k 000000000000000000010 0 1\r\na\r\nget k\r\n",
                b"STORED\r\nVALUE k 10 1\r\na\r\nEND\r\n",
            ),
            (
                b"set k 0 0 0000000000000000000001\r\na\r\n",
                b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
            ),
            (
                b"set n 0 0 22\r\n0000000000000000000042\r\nincr n 1\r\n",
                b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            ),
            (
                b"set n 0 0 1\r\n5\r\nincr n 0000000000000000000001\r\n",
                b"STORED\r\nCLIENT_ERROR invalid numeric delta argument\r\n",
            ),
            (
                b"touch n 0000000000000000000010\r\n",
                b"CLIENT_ERROR value is not an integer or out of range\r\n",
            ),
            (
                b"flush_all 0000000000000000000001\r\n",
                b"CLIENT_ERROR invalid delay argument\r\n",
            ),
            (
                b"cas n 0 0 1 0000000000000000000001\r\n",
                b"CLIENT_ERROR bad command line format\r\n",
            ),
        ],
    );
    let mut h = connect(addr);
    exchange(
        &mut h,
        b"PUT /hk?ttl=0000000000000000000010 HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 25\r\nConnection: Close\r\n\r\nERR invalid expire time\r\n",
    );
    let mut h = connect(addr);
    exchange(
        &mut h,
        b"PUT /hk HTTP/1.1\r\nContent-Length: 0000000000000000000001\r\nConnection: close\r\n\r\nx",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 13\r\nConnection: Close\r\n\r\nBad Request\r\n",
    );
    srv.shutdown().unwrap();
}

/// An absolute memcache exptime is compared with the wall clock at full
/// precision: the item has at most (exptime - now) seconds left, never up
/// to a second more (the unit test in `command/src/memcache.rs` pins the
/// arithmetic with a fixed clock).
#[test]
fn absolute_exptime_is_exact() {
    let (srv, addr) = start(config());
    let mut m = connect(addr);
    let mut r = connect(addr);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let at = before.as_secs() + 100;
    exchange(
        &mut m,
        format!("set abs 0 {at} 1\r\na\r\n").as_bytes(),
        b"STORED\r\n",
    );
    r.write_all(b"PTTL abs\r\n").unwrap();
    let line = read_line(&mut r);
    let pttl: u128 = line.trim_start_matches(':').trim_end().parse().unwrap();
    let most = at as u128 * 1000 - before.as_millis();
    assert!(
        pttl <= most,
        "PTTL {pttl} ms, at most {most} ms may be left"
    );
    assert!(
        pttl + 2_000 > most,
        "PTTL {pttl} ms, about {most} ms expected"
    );
    srv.shutdown().unwrap();
}

fn read_line(s: &mut std::net::TcpStream) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.extend(read_n(s, 1));
    }
    String::from_utf8(line).unwrap()
}
