//! Cluster mode against the real binary: three nodes from one nodes file,
//! driven by cluster-aware clients (redis-py `RedisCluster`,
//! `redis-cli -c`) and byte for byte over raw sockets; topology reloads
//! (SIGHUP and `CLUSTER RELOAD`) moving slots and dropping the keys that
//! left.

mod common;

use std::path::PathBuf;

use common::{Node, call, call_until, cmd, have, reserve, run, spawn_node};

struct Cluster {
    nodes: Vec<Node>,
    file: PathBuf,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The standard three-way split (Redis's `--cluster create` ranges).
fn three_way(ports: &[u16]) -> String {
    format!(
        "# test topology\n\
         node-1 127.0.0.1:{} 0-5460\n\
         node-2 127.0.0.1:{} 5461-10922\n\
         node-3 127.0.0.1:{} 10923-16383\n",
        ports[0], ports[1], ports[2]
    )
}

fn start(name: &str) -> Cluster {
    let dir = std::env::temp_dir().join(format!("pogocache-cluster-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ports: Vec<u16> = (0..3).map(|_| reserve()).collect();
    let file = dir.join("nodes.conf");
    std::fs::write(&file, three_way(&ports)).unwrap();
    let f = file.to_str().unwrap().to_string();
    let nodes = ports
        .iter()
        .map(|&p| spawn_node(p, &["--cluster", "yes", "--cluster-config", &f]))
        .collect();
    Cluster { nodes, file, dir }
}

#[test]
fn redirects_and_cluster_replies_are_byte_exact() {
    let c = start("bytes");
    let [p1, p2, p3] = [c.nodes[0].port, c.nodes[1].port, c.nodes[2].port];
    let mut s1 = c.nodes[0].connect();
    // "foo" is slot 12182 (node-3); "somekey" 11058 (node-3); "a" 15495.
    assert_eq!(
        call(&mut s1, &cmd(&[b"CLUSTER", b"KEYSLOT", b"foo"])),
        b":12182\r\n"
    );
    assert_eq!(
        call(
            &mut s1,
            &cmd(&[b"cluster", b"keyslot", b"{user1000}.following"])
        ),
        call(&mut s1, &cmd(&[b"CLUSTER", b"KEYSLOT", b"user1000"]))
    );
    assert_eq!(
        call(&mut s1, &cmd(&[b"SET", b"foo", b"bar"])),
        format!("-MOVED 12182 127.0.0.1:{p3}\r\n").as_bytes()
    );
    assert_eq!(
        call(&mut s1, &cmd(&[b"GET", b"foo"])),
        format!("-MOVED 12182 127.0.0.1:{p3}\r\n").as_bytes()
    );
    // Multi-key commands: one slot or CROSSSLOT, checked before MOVED.
    assert_eq!(
        call(&mut s1, &cmd(&[b"MGET", b"foo", b"bar"])),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    assert_eq!(
        call(&mut s1, &cmd(&[b"DEL", b"{t}a", b"b"])),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    // "{t}" is slot 15891 on node-3; "{a}" 15495 too; "{b}" 3300 on node-1.
    assert_eq!(call(&mut s1, &cmd(&[b"SET", b"{b}x", b"1"])), b"+OK\r\n");
    assert_eq!(call(&mut s1, &cmd(&[b"SET", b"{b}y", b"2"])), b"+OK\r\n");
    assert_eq!(
        call(&mut s1, &cmd(&[b"MGET", b"{b}x", b"{b}y"])),
        b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
    );
    assert_eq!(
        call(&mut s1, &cmd(&[b"MGET", b"{t}x", b"{t}y"])),
        format!("-MOVED 15891 127.0.0.1:{p3}\r\n").as_bytes()
    );
    // Errors that Redis gives before routing still come first.
    assert_eq!(
        call(&mut s1, &cmd(&[b"GET"])),
        b"-ERR wrong number of arguments\r\n"
    );
    // Keyless and per-node commands run here.
    assert_eq!(call(&mut s1, &cmd(&[b"DBSIZE"])), b":2\r\n");
    assert_eq!(
        call(&mut s1, &cmd(&[b"KEYS", b"*"])).len(),
        b"*2\r\n$4\r\n{b}x\r\n$4\r\n{b}y\r\n".len()
    );
    assert_eq!(
        call(&mut s1, &cmd(&[b"CLUSTER", b"COUNTKEYSINSLOT", b"3300"])),
        b":2\r\n"
    );
    assert_eq!(
        call(&mut s1, &cmd(&[b"CLUSTER", b"COUNTKEYSINSLOT", b"3301"])),
        b":0\r\n"
    );
    assert_eq!(
        call(
            &mut s1,
            &cmd(&[b"CLUSTER", b"GETKEYSINSLOT", b"3300", b"1"])
        )
        .len(),
        b"*1\r\n$4\r\n{b}x\r\n".len()
    );
    assert_eq!(
        call(&mut s1, &cmd(&[b"CLUSTER", b"COUNTKEYSINSLOT", b"16384"])),
        b"-ERR Invalid slot\r\n"
    );
    assert_eq!(
        call(&mut s1, &cmd(&[b"CLUSTER", b"GETKEYSINSLOT", b"1", b"-1"])),
        b"-ERR Invalid number of keys\r\n"
    );
    assert_eq!(
        call(&mut s1, &cmd(&[b"CLUSTER", b"NOPE"])),
        b"-ERR unknown subcommand 'NOPE'. Try CLUSTER HELP.\r\n"
    );
    assert_eq!(
        call(&mut s1, &cmd(&[b"CLUSTER", b"KEYSLOT"])),
        b"-ERR wrong number of arguments for 'cluster|keyslot' command\r\n"
    );
    for c in [&b"ASKING"[..], b"READONLY", b"READWRITE"] {
        assert_eq!(call(&mut s1, &cmd(&[c])), b"+OK\r\n");
    }

    // Ids: 40 hex digits, the same on every node for the same name.
    let myid = call(&mut s1, &cmd(&[b"CLUSTER", b"MYID"]));
    let myid = String::from_utf8(myid[5..myid.len() - 2].to_vec()).unwrap();
    assert_eq!(myid.len(), 40, "{myid}");
    let mut s2 = c.nodes[1].connect();
    let mut s3 = c.nodes[2].connect();
    let id2 = call(&mut s2, &cmd(&[b"CLUSTER", b"MYID"]));
    let id2 = String::from_utf8(id2[5..id2.len() - 2].to_vec()).unwrap();
    let id3 = call(&mut s3, &cmd(&[b"CLUSTER", b"MYID"]));
    let id3 = String::from_utf8(id3[5..id3.len() - 2].to_vec()).unwrap();
    assert!(myid != id2 && id2 != id3 && myid != id3);

    // CLUSTER SLOTS: Redis's layout, ranges in slot order.
    let slot = |a: u16, b: u16, port: u16, id: &str| {
        format!("*3\r\n:{a}\r\n:{b}\r\n*3\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$40\r\n{id}\r\n")
    };
    let want = format!(
        "*3\r\n{}{}{}",
        slot(0, 5460, p1, &myid),
        slot(5461, 10922, p2, &id2),
        slot(10923, 16383, p3, &id3)
    );
    assert_eq!(
        String::from_utf8(call(&mut s2, &cmd(&[b"CLUSTER", b"SLOTS"]))).unwrap(),
        want
    );
    // CLUSTER NODES: one line a node, "myself" on the asked node.
    let nodes = call(&mut s2, &cmd(&[b"CLUSTER", b"NODES"]));
    let text = String::from_utf8_lossy(&nodes);
    let (head, body) = text.split_once("\r\n").unwrap();
    let body = body.strip_suffix("\r\n").unwrap();
    assert_eq!(head, format!("${}", body.len()));
    assert!(body.ends_with('\n'));
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let fields: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(fields[0], id2);
    assert_eq!(fields[1], format!("127.0.0.1:{p2}@{}", p2 as u32 + 10000));
    assert_eq!(fields[2], "myself,master");
    assert_eq!((fields[3], fields[4], fields[7]), ("-", "0", "connected"));
    assert_eq!(fields[8], "5461-10922");
    assert!(lines[0].starts_with(&format!("{myid} 127.0.0.1:{p1}@")));
    assert!(lines[0].contains(" master - 0 ") && lines[0].ends_with(" connected 0-5460"));
    // CLUSTER SHARDS: one shard a node, RESP2 maps as flat arrays.
    let shards = call(&mut s2, &cmd(&[b"CLUSTER", b"SHARDS"]));
    let first = format!(
        "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*1\r\n*14\r\n\
         $2\r\nid\r\n$40\r\n{myid}\r\n$4\r\nport\r\n:{p1}\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n\
         $8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n\
         $18\r\nreplication-offset\r\n:0\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
    );
    assert!(
        String::from_utf8_lossy(&shards).starts_with(&first),
        "{}",
        String::from_utf8_lossy(&shards)
    );
    // CLUSTER INFO and INFO cluster.
    let info = String::from_utf8(call(&mut s2, &cmd(&[b"CLUSTER", b"INFO"]))).unwrap();
    for line in [
        "cluster_state:ok\r\n",
        "cluster_slots_assigned:16384\r\n",
        "cluster_known_nodes:3\r\n",
        "cluster_size:3\r\n",
        "cluster_slots_owned_here:5462\r\n",
        "cluster_keys_dropped:0\r\n",
    ] {
        assert!(info.contains(line), "{line} in {info}");
    }
    let info = String::from_utf8(call(&mut s2, &cmd(&[b"INFO", b"cluster"]))).unwrap();
    assert!(
        info.ends_with("# Cluster\r\ncluster_enabled:1\r\n\r\n"),
        "{info}"
    );

    // Memcache and HTTP on a cluster node serve every key (point 2's
    // proxies shard them).
    let mut m = c.nodes[0].connect();
    assert_eq!(
        call_until(&mut m, b"set foo 0 0 3\r\nbar\r\nget foo\r\n", b"END\r\n"),
        b"STORED\r\nVALUE foo 0 3\r\nbar\r\nEND\r\n"
    );
}

#[test]
fn standalone_servers_and_bad_nodes_files() {
    let p = reserve();
    let n = spawn_node(p, &[]);
    let mut s = n.connect();
    for req in [
        cmd(&[b"CLUSTER", b"INFO"]),
        cmd(&[b"CLUSTER", b"SLOTS"]),
        cmd(&[b"READONLY"]),
        cmd(&[b"ASKING"]),
    ] {
        assert_eq!(
            call(&mut s, &req),
            b"-ERR This instance has cluster support disabled\r\n"
        );
    }
    let info = String::from_utf8(call(&mut s, &cmd(&[b"INFO", b"cluster"]))).unwrap();
    assert!(info.contains("cluster_enabled:0\r\n"), "{info}");
    drop(n);

    let dir = std::env::temp_dir().join(format!("pogocache-cluster-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("nodes.conf");
    let f = file.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_pogocache");
    let fail = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    std::fs::write(
        &file,
        "a 127.0.0.1:7001 0-100\nb 127.0.0.1:7002 102-16383\n",
    )
    .unwrap();
    let port = reserve().to_string();
    let e = fail(&[
        "-p",
        &port,
        "--cluster",
        "yes",
        "--cluster-config",
        f,
        "--cluster-node",
        "a",
    ]);
    assert!(e.contains("slots 101-101 are not assigned"), "{e}");
    std::fs::write(&file, "a 127.0.0.1:7001 0-16383\n").unwrap();
    let e = fail(&["-p", &port, "--cluster", "yes", "--cluster-config", f]);
    assert!(e.contains("name it with --cluster-node"), "{e}");
    let e = fail(&["-p", &port, "--cluster", "yes"]);
    assert_eq!(
        e,
        "# Option --cluster yes needs --cluster-config <nodes file>\n"
    );
    let e = fail(&["-p", &port, "--cluster-config", f]);
    assert_eq!(
        e,
        "# Options --cluster-config and --cluster-node need --cluster yes\n"
    );
    let e = fail(&[
        "-p",
        &port,
        "--cluster",
        "yes",
        "--cluster-config",
        "/nonexistent/x",
    ]);
    assert!(e.contains("cannot read /nonexistent/x"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reload_moves_slots_and_drops_their_keys() {
    let c = start("reload");
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.port).collect();
    let mut s3 = c.nodes[2].connect();
    // 300 keys in node-3's slots (hash tags pick the slot), none elsewhere.
    for i in 0..300 {
        let k = format!("{{t}}k{i}");
        assert_eq!(
            call(&mut s3, &cmd(&[b"SET", k.as_bytes(), b"v"])),
            b"+OK\r\n"
        );
    }
    assert_eq!(call(&mut s3, &cmd(&[b"DBSIZE"])), b":300\r\n");

    // An invalid file is refused and changes nothing.
    std::fs::write(&c.file, "node-1 127.0.0.1:1 0-100\n").unwrap();
    let r = call(&mut s3, &cmd(&[b"CLUSTER", b"RELOAD"]));
    assert!(
        r.starts_with(b"-ERR ")
            && String::from_utf8_lossy(&r).contains("slots 101-16383 are not assigned"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(call(&mut s3, &cmd(&[b"GET", b"{t}k1"])), b"$1\r\nv\r\n");

    // node-3's slots move to node-1.
    let moved = format!(
        "node-1 127.0.0.1:{} 0-5460 10923-16383\n\
         node-2 127.0.0.1:{} 5461-10922\n\
         node-3 127.0.0.1:{}\n",
        ports[0], ports[1], ports[2]
    );
    std::fs::write(&c.file, moved).unwrap();
    // node-1 by SIGHUP, the others by CLUSTER RELOAD.
    // SAFETY: kill(2) on a child this test started and still owns.
    unsafe { libc::kill(c.nodes[0].child.id() as i32, libc::SIGHUP) };
    let line = c.nodes[0].wait_log("Cluster topology reloaded");
    assert!(line.ends_with("5461 slots gained, 0 lost"), "{line}");
    let mut s2 = c.nodes[1].connect();
    assert_eq!(call(&mut s2, &cmd(&[b"CLUSTER", b"RELOAD"])), b"+OK\r\n");
    assert_eq!(call(&mut s3, &cmd(&[b"CLUSTER", b"RELOAD"])), b"+OK\r\n");

    let moved_to_1 = format!("-MOVED 15891 127.0.0.1:{}\r\n", ports[0]);
    assert_eq!(
        call(&mut s3, &cmd(&[b"GET", b"{t}k1"])),
        moved_to_1.as_bytes()
    );
    assert_eq!(
        call(&mut s2, &cmd(&[b"GET", b"{t}k1"])),
        moved_to_1.as_bytes()
    );
    // The new owner starts empty for them: a cache moves ownership, not data.
    let mut s1 = c.nodes[0].connect();
    assert_eq!(call(&mut s1, &cmd(&[b"GET", b"{t}k1"])), b"$-1\r\n");
    let slots = String::from_utf8(call(&mut s3, &cmd(&[b"CLUSTER", b"SLOTS"]))).unwrap();
    assert!(slots.starts_with("*3\r\n*3\r\n:0\r\n:5460\r\n"), "{slots}");
    assert!(slots.contains(&format!(
        ":10923\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:{}\r\n",
        ports[0]
    )));

    // node-3 drops the 300 keys in the background, and counts them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let info = String::from_utf8(call(&mut s3, &cmd(&[b"CLUSTER", b"INFO"]))).unwrap();
        if info.contains("cluster_keys_dropped:300\r\n") {
            assert!(info.contains("cluster_slots_owned_here:0\r\n"), "{info}");
            assert!(info.contains("cluster_current_epoch:2\r\n"), "{info}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        std::thread::yield_now();
    }
    assert_eq!(call(&mut s3, &cmd(&[b"DBSIZE"])), b":0\r\n");
    let mut h = c.nodes[2].connect();
    std::io::Write::write_all(
        &mut h,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut metrics = String::new();
    std::io::Read::read_to_string(&mut h, &mut metrics).unwrap();
    for line in [
        "\npogocache_cluster_keys_dropped_total 300\n",
        "\npogocache_cluster_slots_owned 0\n",
        "\npogocache_cluster_reloads_total 1\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[test]
fn cluster_clients_spread_keys_over_every_node() {
    let c = start("clients");
    let ports: Vec<String> = c.nodes.iter().map(|n| n.port.to_string()).collect();
    if have("python3", &["-c", "import redis.cluster"]) {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/redis_cluster.py"
        );
        let out = run("python3", &[script, &ports[0], "10000"], 120);
        assert!(out.contains("ok 10000"), "{out}");
        // Every node holds a share (about a third each).
        let mut total = 0;
        for n in &c.nodes {
            let r = call(&mut n.connect(), &cmd(&[b"DBSIZE"]));
            let k: usize = std::str::from_utf8(&r[1..r.len() - 2])
                .unwrap()
                .parse()
                .unwrap();
            assert!(k > 2500, "node {} holds only {k} of 10000", n.port);
            total += k;
        }
        assert_eq!(total, 10000);
    }
    if have("redis-cli", &["--version"]) {
        // -c follows MOVED from whichever node it asked.
        for (i, k) in ["foo", "bar", "somekey", "{b}x", "hello"]
            .iter()
            .enumerate()
        {
            let port = &ports[i % 3];
            let v = format!("v{i}");
            assert_eq!(
                run("redis-cli", &["-c", "-p", port, "SET", k, &v], 20),
                "OK\n"
            );
            let other = &ports[(i + 1) % 3];
            assert_eq!(
                run("redis-cli", &["-c", "-p", other, "GET", k], 20),
                format!("{v}\n")
            );
        }
        let info = run("redis-cli", &["-p", &ports[0], "CLUSTER", "INFO"], 20);
        assert!(info.starts_with("cluster_state:ok"), "{info}");
    }
}

/// The `redis` crate's synchronous cluster client: discovers the nodes
/// from one of them, routes by slot, follows a topology change.
#[test]
fn redis_crate_cluster_client() {
    use redis::Commands;
    let c = start("rust");
    let url = format!("redis://127.0.0.1:{}/", c.nodes[0].port);
    let client = redis::cluster::ClusterClient::new(vec![url]).unwrap();
    let mut con = client.get_connection().unwrap();
    for i in 0..2000 {
        let _: () = con.set(format!("rs:{i}"), i).unwrap();
    }
    for i in 0..2000 {
        let v: i64 = con.get(format!("rs:{i}")).unwrap();
        assert_eq!(v, i);
    }
    let both: Vec<String> = redis::cmd("MGET")
        .arg("{x}1")
        .arg("{x}2")
        .query(&mut con)
        .map(|v: Vec<Option<String>>| v.into_iter().map(|o| o.unwrap_or_default()).collect())
        .unwrap();
    assert_eq!(both, vec![String::new(), String::new()]);
    for n in &c.nodes {
        let r = call(&mut n.connect(), &cmd(&[b"DBSIZE"]));
        let k: usize = std::str::from_utf8(&r[1..r.len() - 2])
            .unwrap()
            .parse()
            .unwrap();
        assert!(k > 400, "node {} holds {k} of 2000", n.port);
    }
    // node-3's slots move to node-1: the client follows MOVED and
    // refreshes its slot map; the moved keys are misses, not errors.
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.port).collect();
    std::fs::write(
        &c.file,
        format!(
            "node-1 127.0.0.1:{} 0-5460 10923-16383\nnode-2 127.0.0.1:{} 5461-10922\nnode-3 127.0.0.1:{}\n",
            ports[0], ports[1], ports[2]
        ),
    )
    .unwrap();
    for n in &c.nodes {
        assert_eq!(
            call(&mut n.connect(), &cmd(&[b"CLUSTER", b"RELOAD"])),
            b"+OK\r\n"
        );
    }
    let v: Option<String> = con.get("foo").unwrap();
    assert_eq!(v, None);
    let _: () = con.set("foo", "after").unwrap();
    let v: String = con.get("foo").unwrap();
    assert_eq!(v, "after");
    let on_1 = call(&mut c.nodes[0].connect(), &cmd(&[b"GET", b"foo"]));
    assert_eq!(on_1, b"$5\r\nafter\r\n");
}
