//! Modern clients and operator tools with their default settings: the
//! handshake and introspection commands byte for byte (HELLO 2/3, RESP3
//! replies, CLIENT, INFO, COMMAND, CONFIG GET, RESET, WAIT), then real
//! clients: redis-py in RESP2 and RESP3 (with and without a password),
//! the `redis` crate in RESP2 and RESP3, `redis-cli INFO`, and pymemcache
//! (storage replies and CAS as against memcached).
//!
//! redis-py and pymemcache come from PyPI and redis-cli from Debian's
//! redis-tools; `.ci/run` installs them.

mod common;

use std::process::Command;

use common::{assert_closed, cmd, config, connect, exchange, read_n, start};
use pogocache_server::Config;

/// The exact HELLO reply: a RESP3 map or a RESP2 flat array.
fn hello_reply(resp3: bool, proto: u8, id: u64) -> Vec<u8> {
    let mut v = if resp3 {
        b"%8\r\n".to_vec()
    } else {
        b"*16\r\n".to_vec()
    };
    let bulk = |v: &mut Vec<u8>, s: &str| {
        v.extend_from_slice(format!("${}\r\n{s}\r\n", s.len()).as_bytes())
    };
    for (k, val) in [("server", "redis"), ("version", "7.2.0")] {
        bulk(&mut v, k);
        bulk(&mut v, val);
    }
    bulk(&mut v, "proto");
    v.extend_from_slice(format!(":{proto}\r\n").as_bytes());
    bulk(&mut v, "id");
    v.extend_from_slice(format!(":{id}\r\n").as_bytes());
    for (k, val) in [("mode", "standalone"), ("role", "master")] {
        bulk(&mut v, k);
        bulk(&mut v, val);
    }
    bulk(&mut v, "modules");
    v.extend_from_slice(b"*0\r\n");
    bulk(&mut v, "pogocache");
    bulk(&mut v, "1.3.1-rs.0.1.0");
    v
}

#[test]
fn hello_switches_to_resp3_and_back() {
    let (srv, addr) = start(config());
    let mut s = connect(addr);
    exchange(&mut s, &cmd(&[b"GET", b"nope"]), b"$-1\r\n");
    exchange(&mut s, &cmd(&[b"HELLO", b"3"]), &hello_reply(true, 3, 1));
    exchange(&mut s, &cmd(&[b"GET", b"nope"]), b"_\r\n");
    exchange(&mut s, &cmd(&[b"MGET", b"a", b"b"]), b"*2\r\n_\r\n_\r\n");
    exchange(
        &mut s,
        &cmd(&[b"CONFIG", b"GET", b"databases"]),
        b"%1\r\n$9\r\ndatabases\r\n$1\r\n1\r\n",
    );
    exchange(&mut s, &cmd(&[b"HELLO"]), &hello_reply(true, 3, 1));
    exchange(&mut s, &cmd(&[b"RESET"]), b"+RESET\r\n");
    exchange(&mut s, &cmd(&[b"GET", b"nope"]), b"$-1\r\n");
    exchange(
        &mut s,
        &cmd(&[b"CONFIG", b"GET", b"databases"]),
        b"*2\r\n$9\r\ndatabases\r\n$1\r\n1\r\n",
    );
    exchange(&mut s, &cmd(&[b"HELLO", b"2"]), &hello_reply(false, 2, 1));
    exchange(
        &mut s,
        &cmd(&[b"HELLO", b"4"]),
        b"-NOPROTO unsupported protocol version\r\n",
    );
    exchange(
        &mut s,
        &cmd(&[b"HELLO", b"x"]),
        b"-ERR Protocol version is not an integer or out of range\r\n",
    );
    exchange(&mut s, &cmd(&[b"WAIT", b"0", b"0"]), b":0\r\n");
    exchange(&mut s, &cmd(&[b"SELECT", b"0"]), b"+OK\r\n");
    exchange(&mut s, &cmd(&[b"COMMAND", b"COUNT"]), b":65\r\n");
    exchange(
        &mut s,
        &cmd(&[b"COMMAND", b"INFO", b"get"]),
        b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*0\r\n*0\r\n*0\r\n*0\r\n",
    );
    srv.shutdown().unwrap();
}

#[test]
fn hello_authenticates_and_noauth_is_explained() {
    let (srv, addr) = start(Config {
        auth: "pw".into(),
        ..config()
    });
    let mut s = connect(addr);
    exchange(
        &mut s,
        &cmd(&[b"HELLO", b"3"]),
        b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n",
    );
    exchange(
        &mut s,
        &cmd(&[b"HELLO", b"3", b"AUTH", b"default", b"bad"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    exchange(
        &mut s,
        &cmd(&[
            b"HELLO", b"3", b"AUTH", b"default", b"pw", b"SETNAME", b"me",
        ]),
        &hello_reply(true, 3, 1),
    );
    exchange(&mut s, &cmd(&[b"CLIENT", b"GETNAME"]), b"$2\r\nme\r\n");
    // RESET signs out again.
    exchange(&mut s, &cmd(&[b"RESET"]), b"+RESET\r\n");
    exchange(
        &mut s,
        &cmd(&[b"GET", b"k"]),
        b"-NOAUTH Authentication required.\r\n",
    );
    srv.shutdown().unwrap();
}

#[test]
fn client_commands_name_list_and_kill() {
    let (srv, addr) = start(config());
    let mut a = connect(addr);
    let mut b = connect(addr);
    exchange(&mut a, &cmd(&[b"CLIENT", b"GETNAME"]), b"$-1\r\n");
    exchange(&mut a, &cmd(&[b"CLIENT", b"SETNAME", b"alpha"]), b"+OK\r\n");
    exchange(
        &mut a,
        &cmd(&[b"CLIENT", b"SETNAME", b"has space"]),
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    );
    exchange(
        &mut a,
        &cmd(&[b"CLIENT", b"SETINFO", b"LIB-NAME", b"mylib"]),
        b"+OK\r\n",
    );
    exchange(&mut a, &cmd(&[b"CLIENT", b"GETNAME"]), b"$5\r\nalpha\r\n");
    exchange(&mut a, &cmd(&[b"CLIENT", b"ID"]), b":1\r\n");
    exchange(&mut b, &cmd(&[b"CLIENT", b"ID"]), b":2\r\n");
    // LIST shows both, with names and library tags.
    std::io::Write::write_all(&mut a, &cmd(&[b"CLIENT", b"LIST"])).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = std::io::Read::read(&mut a, &mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(text.contains("id=1 addr=127.0.0.1:"), "{text}");
    assert!(text.contains(" name=alpha age="), "{text}");
    assert!(text.contains(" lib-name=mylib lib-ver="), "{text}");
    assert!(text.contains("\nid=2 addr=127.0.0.1:"), "{text}");
    // KILL ID closes the other connection at once.
    exchange(&mut a, &cmd(&[b"CLIENT", b"KILL", b"ID", b"2"]), b":1\r\n");
    assert_closed(&mut b);
    exchange(&mut a, &cmd(&[b"CLIENT", b"KILL", b"ID", b"2"]), b":0\r\n");
    exchange(
        &mut a,
        &cmd(&[b"CLIENT", b"KILL", b"127.0.0.1:1"]),
        b"-ERR No such client\r\n",
    );
    exchange(
        &mut a,
        &cmd(&[b"CLIENT", b"NOPE"]),
        b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n",
    );
    srv.shutdown().unwrap();
}

#[test]
fn info_has_redis_sections_and_counts() {
    let (srv, addr) = start(config());
    let mut s = connect(addr);
    exchange(&mut s, &cmd(&[b"SET", b"a", b"1"]), b"+OK\r\n");
    exchange(
        &mut s,
        &cmd(&[b"SET", b"b", b"2", b"EX", b"100"]),
        b"+OK\r\n",
    );
    exchange(&mut s, &cmd(&[b"GET", b"a"]), b"$1\r\n1\r\n");
    exchange(&mut s, &cmd(&[b"GET", b"zz"]), b"$-1\r\n");
    std::io::Write::write_all(&mut s, &cmd(&[b"INFO"])).unwrap();
    let head = read_n(&mut s, 1);
    assert_eq!(head, b"$");
    let mut len = Vec::new();
    loop {
        let b = read_n(&mut s, 1)[0];
        if b == b'\r' {
            break;
        }
        len.push(b);
    }
    let n: usize = String::from_utf8(len).unwrap().parse().unwrap();
    let body = read_n(&mut s, n + 3);
    let text = String::from_utf8(body[1..n + 1].to_vec()).unwrap();
    for section in ["# Server", "# Clients", "# Memory", "# Stats", "# Keyspace"] {
        assert!(text.contains(&format!("{section}\r\n")), "{text}");
    }
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
            .to_string()
    };
    assert_eq!(field("keyspace_hits"), "1");
    assert_eq!(field("keyspace_misses"), "1");
    assert_eq!(field("db0"), "keys=2,expires=1,avg_ttl=0");
    assert_eq!(field("connected_clients"), "1");
    // As in Redis, the running INFO is not counted yet.
    assert_eq!(field("total_commands_processed"), "4");
    assert!(
        text.split("\r\n\r\n").all(|sec| sec.starts_with("# ")),
        "{text}"
    );
    srv.shutdown().unwrap();
}

fn port(addr: std::net::SocketAddr) -> String {
    addr.port().to_string()
}

#[test]
fn redis_py_default_and_resp3() {
    if !common::tool("python3", &["-c", "import redis"]) {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/redis_py.py");
    for auth in ["", "s3cret"] {
        let (srv, addr) = start(Config {
            auth: auth.into(),
            ..config()
        });
        let mut c = Command::new("python3");
        c.arg(script).arg(port(addr));
        if !auth.is_empty() {
            c.arg(auth);
        }
        let out = c
            .output()
            .expect("python3 (with redis-py: pip install redis) runs");
        assert!(
            out.status.success() && out.stdout == b"ok\n",
            "redis-py (auth {auth:?}) failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        srv.shutdown().unwrap();
    }
}

/// pymemcache with default server flags: add/replace/gets/cas answer as
/// against memcached (NOT_STORED, working uniques).
#[test]
fn pymemcache_storage_and_cas() {
    if !common::tool("python3", &["-c", "import pymemcache"]) {
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/pymemcache_client.py"
    );
    let (srv, addr) = start(config());
    let out = Command::new("python3")
        .arg(script)
        .arg(port(addr))
        .output()
        .expect("python3 (with pymemcache: pip install pymemcache) runs");
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "pymemcache failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    srv.shutdown().unwrap();
}

#[test]
fn redis_crate_resp2_and_resp3() {
    let (srv, addr) = start(config());
    for (q, p) in [("", "r2"), ("?protocol=resp3", "r3")] {
        let client = redis::Client::open(format!("redis://{addr}/{q}")).unwrap();
        let mut c = client.get_connection().unwrap();
        let _: () = redis::cmd("SET")
            .arg(format!("{p}:k"))
            .arg("v")
            .query(&mut c)
            .unwrap();
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("{p}:k"))
            .query(&mut c)
            .unwrap();
        assert_eq!(v.as_deref(), Some("v"));
        let none: Option<String> = redis::cmd("GET").arg("missing").query(&mut c).unwrap();
        assert_eq!(none, None);
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
        assert!(id > 0);
        let info: redis::InfoDict = redis::cmd("INFO").query(&mut c).unwrap();
        assert_eq!(
            info.get::<String>("redis_mode").as_deref(),
            Some("standalone")
        );
        // The packed entries' segments: a few small values fill no
        // segment yet, so none is sealed and there are no holes.
        let mem: redis::InfoDict = redis::cmd("INFO").arg("memory").query(&mut c).unwrap();
        assert_eq!(
            info.get::<u64>("mem_segments_holes"),
            mem.get("mem_segments_holes")
        );
        assert_eq!(mem.get::<u64>("mem_segments"), Some(0));
        assert_eq!(mem.get::<u64>("mem_segments_holes"), Some(0));
    }
    srv.shutdown().unwrap();
}

#[test]
fn redis_cli_info() {
    if !common::tool("redis-cli", &["--version"]) {
        return;
    }
    let (srv, addr) = start(config());
    let mut s = connect(addr);
    exchange(&mut s, &cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port(addr), "INFO"])
        .output()
        .expect("redis-cli (Debian's redis-tools) runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("# Server") && text.contains("redis_version:7.2.0"),
        "{text}"
    );
    assert!(text.contains("db0:keys=1,expires=0,avg_ttl=0"), "{text}");
    let out = Command::new("redis-cli")
        .args(["-p", &port(addr), "CLIENT", "LIST"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("id="));
    srv.shutdown().unwrap();
}
