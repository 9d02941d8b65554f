//! The memcached meta protocol (extension), byte for byte as memcached's
//! protocol.txt specifies the replies: mn, ms with modes/TTL/flags/CAS,
//! mg with value/flag/size/TTL/key/opaque/CAS returns, quiet mode, vivify
//! on miss, base64 keys, md, ma with auto-create, and me.

mod common;

use std::io::{BufRead, BufReader, Write};

use common::{config, connect, exchange};
use pogocache_server::Config;

#[test]
fn meta_commands_byte_for_byte() {
    let (srv, addr) = common::start(Config {
        cas: true,
        ..config()
    });
    let mut s = connect(addr);
    exchange(&mut s, b"mn\r\n", b"MN\r\n");
    exchange(&mut s, b"ms foo 2 F5\r\nhi\r\n", b"HD\r\n");
    exchange(&mut s, b"mg foo v f t\r\n", b"VA 2 f5 t-1\r\nhi\r\n");
    exchange(&mut s, b"mg foo k s Oabc\r\n", b"HD kfoo s2 Oabc\r\n");
    exchange(&mut s, b"mg foo\r\n", b"HD\r\n");
    exchange(&mut s, b"mg missing v\r\n", b"EN\r\n");
    // Quiet mode: misses and successes say nothing; mn ends the batch.
    exchange(
        &mut s,
        b"mg missing v q\r\nms foo 2 q\r\nxx\r\nmn\r\n",
        b"MN\r\n",
    );
    exchange(&mut s, b"mg foo v\r\n", b"VA 2\r\nxx\r\n");
    // Modes: E add, R replace, A append, P prepend, S set.
    exchange(&mut s, b"ms foo 2 ME\r\nzz\r\n", b"NS\r\n");
    exchange(&mut s, b"ms new 2 ME\r\nzz\r\n", b"HD\r\n");
    exchange(&mut s, b"ms none 2 MR\r\nzz\r\n", b"NS\r\n");
    exchange(&mut s, b"ms foo 1 MA\r\n!\r\n", b"HD\r\n");
    exchange(&mut s, b"ms foo 1 MP\r\n<\r\n", b"HD\r\n");
    exchange(&mut s, b"mg foo v\r\n", b"VA 4\r\n<xx!\r\n");
    exchange(&mut s, b"ms none 1 MA\r\n!\r\n", b"NS\r\n");
    exchange(
        &mut s,
        b"ms foo 1 MX\r\n!\r\n",
        b"CLIENT_ERROR invalid mode for ms STORE\r\n",
    );
    // TTLs: T on ms sets it, T on mg updates it, t reports it.
    exchange(&mut s, b"ms ttl 1 T100\r\nx\r\n", b"HD\r\n");
    exchange(&mut s, b"mg ttl t\r\n", b"HD t100\r\n");
    exchange(&mut s, b"mg ttl T30 t\r\n", b"HD t30\r\n");
    // CAS: c returns it, C compares it.
    s.write_all(b"mg foo c\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let cas: u64 = line
        .trim_end()
        .strip_prefix("HD c")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    assert!(cas > 0);
    let wrong = format!("ms foo 1 C{}\r\n1\r\n", cas + 1000);
    exchange(&mut s, wrong.as_bytes(), b"EX\r\n");
    let right = format!("ms foo 1 C{cas} c\r\n1\r\n");
    s.write_all(right.as_bytes()).unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("HD c") && line != format!("HD c{cas}\r\n"),
        "{line}"
    );
    exchange(&mut s, b"ms gone 1 C5\r\n1\r\n", b"NF\r\n");
    // Vivify on miss: the first fetcher wins (W) and gets an empty value.
    exchange(&mut s, b"mg viv N30 v t\r\n", b"VA 0 t30 W\r\n\r\n");
    exchange(&mut s, b"mg viv N30 v\r\n", b"VA 0 Z\r\n\r\n");
    exchange(&mut s, b"ms viv 1\r\nv\r\n", b"HD\r\n");
    exchange(&mut s, b"mg viv v\r\n", b"VA 1\r\nv\r\n");
    // Invalidation: md I keeps the item, stale (X); the first fetcher
    // wins the recache (W), the next ones see Z; a new value clears it.
    exchange(&mut s, b"ms st 1\r\nA\r\n", b"HD\r\n");
    exchange(&mut s, b"md st I T30\r\n", b"HD\r\n");
    exchange(&mut s, b"mg st v t\r\n", b"VA 1 t30 W X\r\nA\r\n");
    exchange(&mut s, b"mg st v\r\n", b"VA 1 Z X\r\nA\r\n");
    exchange(&mut s, b"ms st 1\r\nB\r\n", b"HD\r\n");
    exchange(&mut s, b"mg st v\r\n", b"VA 1\r\nB\r\n");
    // ms I with an older CAS still stores, but stale.
    exchange(&mut s, b"ms st 1 I C1\r\nC\r\n", b"HD\r\n");
    exchange(&mut s, b"mg st v\r\n", b"VA 1 W X\r\nC\r\n");
    // Base64 keys: `Zm9vYg==` is "foob".
    exchange(&mut s, b"ms Zm9vYg== 1 b\r\nX\r\n", b"HD\r\n");
    exchange(&mut s, b"mg foob v\r\n", b"VA 1\r\nX\r\n");
    exchange(
        &mut s,
        b"mg Zm9vYg== b k v\r\n",
        b"VA 1 b kZm9vYg==\r\nX\r\n",
    );
    // Delete.
    exchange(&mut s, b"md new q\r\nmn\r\n", b"MN\r\n");
    exchange(&mut s, b"md new\r\n", b"NF\r\n");
    exchange(&mut s, b"md foo C1 Oq1\r\n", b"EX Oq1\r\n");
    // Arithmetic: miss, auto-create with an initial value, incr, decr
    // (clamped at 0), and a non-number.
    exchange(&mut s, b"ma cnt\r\n", b"NF\r\n");
    exchange(&mut s, b"ma cnt N0 J10 v\r\n", b"VA 2\r\n10\r\n");
    exchange(&mut s, b"ma cnt v\r\n", b"VA 2\r\n11\r\n");
    exchange(&mut s, b"ma cnt MD D5 v\r\n", b"VA 1\r\n6\r\n");
    exchange(&mut s, b"ma cnt MD D100\r\n", b"HD\r\n");
    // N only applies its TTL to an item it creates, even when an existing
    // item's new value happens to equal the initial value.
    exchange(&mut s, b"ms nine 1\r\n9\r\n", b"HD\r\n");
    exchange(&mut s, b"ma nine N100 J10 t v\r\n", b"VA 2 t-1\r\n10\r\n");
    exchange(&mut s, b"ma ten N100 J10 t v\r\n", b"VA 2 t100\r\n10\r\n");
    exchange(&mut s, b"mg cnt v\r\n", b"VA 1\r\n0\r\n");
    exchange(&mut s, b"ms txt 1\r\nx\r\n", b"HD\r\n");
    exchange(
        &mut s,
        b"ma txt\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    // me, errors, and classic commands on the same connection.
    s.write_all(b"me cnt\r\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("ME cnt exp=-1 la=0 cas=") && line.ends_with(" fetch=no cls=1 size=1\r\n"),
        "{line}"
    );
    exchange(&mut s, b"me missing\r\n", b"EN\r\n");
    exchange(&mut s, b"mg foo zz\r\n", b"CLIENT_ERROR invalid flag\r\n");
    exchange(&mut s, b"mg foo 9\r\n", b"CLIENT_ERROR invalid flag\r\n");
    exchange(&mut s, b"get cnt\r\n", b"VALUE cnt 0 1\r\n0\r\nEND\r\n");
    srv.shutdown().unwrap();
}
