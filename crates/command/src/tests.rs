//! Handler tests: run commands against a real store and assert the exact
//! RESP bytes. (The black-box tests in the server crate replay the same
//! kind of table over real sockets.)

use super::*;
use pogocache_protocol::{Args, Limits, Parsed, resp};
use pogocache_store::Config;

struct Harness {
    shared: Arc<Shared>,
    session: Session,
    scratch: Vec<u8>,
    now: i64,
}

impl Harness {
    fn new(settings: Settings) -> Harness {
        let store = Store::new(Config {
            shards: 16,
            seed: Some(1),
            ..Config::default()
        });
        let authed = settings.auth.is_empty();
        Harness {
            shared: Arc::new(Shared::new(store, settings, 1)),
            session: Session {
                authed,
                addr: "test".into(),
                ..Session::default()
            },
            scratch: Vec::new(),
            now: 1_000 * 1_000_000_000,
        }
    }

    /// Sends one inline-or-multibulk request; returns the reply bytes.
    fn run(&mut self, req: &[u8]) -> (Vec<u8>, Action) {
        let mut args = Args::new();
        let Parsed::Complete(_, ()) = resp::parse(req, &Limits::default(), &mut args) else {
            panic!("bad request {req:?}")
        };
        let mut out = Vec::new();
        let shared = self.shared.clone();
        let mut ctx = Ctx {
            shared: &shared,
            stats: &shared.workers[0],
            now: self.now,
            session: &mut self.session,
            scratch: &mut self.scratch,
            wake: None,
        };
        let action = execute(
            &mut ctx,
            args.view(req),
            &mut RespReply::new(&mut out, false),
        );
        (out, action)
    }

    fn check(&mut self, cases: &[(&str, &str)]) {
        for (req, want) in cases {
            let line = format!("{req}\r\n");
            let (got, _) = self.run(line.as_bytes());
            assert_eq!(String::from_utf8_lossy(&got), *want, "request {req:?}");
        }
    }
}

fn harness() -> Harness {
    Harness::new(Settings {
        exat_unix: true,
        threads: 1,
        maxconns: 1024,
        ..Settings::default()
    })
}

#[test]
fn set_and_get_family() {
    harness().check(&[
        ("SET k1 v1", "+OK\r\n"),
        ("GET k1", "$2\r\nv1\r\n"),
        ("GET nokey", "$-1\r\n"),
        ("SET k1 v2 NX", "$-1\r\n"),
        ("SET k1 v3 XX", "+OK\r\n"),
        ("SET k2 v XX", "$-1\r\n"),
        ("SET k1 v4 GET", "$2\r\nv3\r\n"),
        ("SET k9 v4 GET", "$-1\r\n"),
        ("GET k9", "$2\r\nv4\r\n"),
        ("SET k1 v5 NX GET", "$-1\r\n"),
        ("SET k1 v5 NX XX", "-ERR syntax error\r\n"),
        ("SET k1 v EX 0", "-ERR invalid expire time\r\n"),
        ("SET k1 v EX -1", "-ERR invalid expire time\r\n"),
        ("SET k1 v EX abc", "-ERR invalid expire time\r\n"),
        ("SET k1 v EX", "-ERR syntax error\r\n"),
        ("SET k1 v PX 0", "-ERR invalid expire time\r\n"),
        ("SET k1 w KEEPTTL EX 5", "-ERR syntax error\r\n"),
        ("SET k1 w EX 5 KEEPTTL", "-ERR syntax error\r\n"),
        ("SET k1 w FLAGS -1", "-ERR syntax error\r\n"),
        ("SET k1 w FLAGS", "-ERR syntax error\r\n"),
        ("SET k1 w CAS x", "-ERR syntax error\r\n"),
        ("SET k1 w BOGUS", "-ERR syntax error\r\n"),
        ("SET k1 w FLAGS 4294967297", "+OK\r\n"),
        ("MGETS k1", "*1\r\n*3\r\n+1\r\n+0\r\n$1\r\nw\r\n"),
        ("SET k1 w CAS 1", "$-1\r\n"),
        ("SET", "-ERR wrong number of arguments\r\n"),
        ("SET a", "-ERR wrong number of arguments\r\n"),
        ("SET \"\" emptykey", "+OK\r\n"),
        ("GET \"\"", "$8\r\nemptykey\r\n"),
        ("SET k1 v EX 100", "+OK\r\n"),
        ("TTL k1", ":100\r\n"),
        ("PTTL k1", ":100000\r\n"),
        ("SET k1 w KEEPTTL", "+OK\r\n"),
        ("TTL k1", ":100\r\n"),
        ("SET k1 v EX 10 PX 20000", "+OK\r\n"),
        ("TTL k1", ":20\r\n"),
        ("SETEX k3 100 v", "+OK\r\n"),
        ("SETEX k3 0 v", "-ERR invalid expire time\r\n"),
        ("SETEX k3 x v", "-ERR invalid expire time\r\n"),
        ("SETEX k3 10", "-ERR wrong number of arguments\r\n"),
        ("TTL nokey", ":-2\r\n"),
        ("SET k4 v", "+OK\r\n"),
        ("TTL k4", ":-1\r\n"),
        ("PTTL k4", ":-1\r\n"),
        ("TTL a b", "-ERR wrong number of arguments\r\n"),
        ("DEL k4 k3 nokey", ":2\r\n"),
        ("DEL", "-ERR wrong number of arguments\r\n"),
        ("EXISTS k1 k1 nokey", ":2\r\n"),
        ("MGET k1 nokey k9", "*3\r\n$1\r\nv\r\n$-1\r\n$2\r\nv4\r\n"),
        (
            "MGETS k9 nokey",
            "*2\r\n*3\r\n+0\r\n+0\r\n$2\r\nv4\r\n$-1\r\n",
        ),
        ("EXPIRE k1 100", ":1\r\n"),
        ("EXPIRE nokey 10", ":0\r\n"),
        (
            "EXPIRE k1 x",
            "-ERR value is not an integer or out of range\r\n",
        ),
        ("EXPIRE k1 10 NX", ":1\r\n"),
        ("EXPIRE k9 0", ":1\r\n"),
        ("EXISTS k9", ":0\r\n"),
        ("TOUCH k1 nokey k1", ":2\r\n"),
        ("TOUCH", "-ERR wrong number of arguments\r\n"),
    ]);
}

#[test]
fn ttl_truncates_as_time_passes() {
    let mut h = harness();
    h.check(&[("SET k v EX 10", "+OK\r\n")]);
    h.now += 1;
    h.check(&[("TTL k", ":9\r\n"), ("PTTL k", ":9999\r\n")]);
    h.now += 10 * 1_000_000_000;
    h.check(&[("GET k", "$-1\r\n"), ("TTL k", ":-2\r\n")]);
}

#[test]
fn exat_is_unix_time_by_default_and_boot_time_on_request() {
    let mut h = harness();
    let unix = pogocache_store::clock::wall_ns() / 1_000_000_000;
    h.check(&[(&format!("SET k v EXAT {}", unix + 100), "+OK\r\n")]);
    let (ttl, _) = h.run(b"TTL k\r\n");
    let ttl: i64 = std::str::from_utf8(&ttl[1..ttl.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    assert!((98..=100).contains(&ttl), "ttl {ttl}");
    h.check(&[("SET old v EXAT 100", "+OK\r\n"), ("GET old", "$-1\r\n")]);

    let mut h = Harness::new(Settings {
        exat_unix: false,
        ..Settings::default()
    });
    // now = 1000 s on the boot clock: EXAT 1100 is 100 s away.
    h.check(&[("SET k v EXAT 1100", "+OK\r\n"), ("TTL k", ":100\r\n")]);
}

#[test]
fn counters() {
    harness().check(&[
        ("INCR c", ":1\r\n"),
        ("INCR c", ":2\r\n"),
        ("INCRBY c 10", ":12\r\n"),
        ("DECR c", ":11\r\n"),
        ("DECRBY c 20", ":-9\r\n"),
        (
            "INCRBY c x",
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            "INCRBY c 1.5",
            "-ERR value is not an integer or out of range\r\n",
        ),
        ("INCRBY c", "-ERR wrong number of arguments\r\n"),
        ("INCR c d", "-ERR wrong number of arguments\r\n"),
        ("SET c 9223372036854775807", "+OK\r\n"),
        ("INCR c", "-ERR increment or decrement would overflow\r\n"),
        ("GET c", "$19\r\n9223372036854775807\r\n"),
        ("SET c -9223372036854775808", "+OK\r\n"),
        ("DECR c", "-ERR increment or decrement would overflow\r\n"),
        ("SET c abc", "+OK\r\n"),
        ("INCR c", "-ERR value is not an integer or out of range\r\n"),
        ("SET c \" 5\"", "+OK\r\n"),
        ("INCR c", ":6\r\n"),
        ("SET c \"5 \"", "+OK\r\n"),
        ("INCR c", "-ERR value is not an integer or out of range\r\n"),
        ("SET c +5", "+OK\r\n"),
        ("INCR c", ":6\r\n"),
        ("SET c 007", "+OK\r\n"),
        ("INCR c", ":8\r\n"),
        ("SET c \"\"", "+OK\r\n"),
        ("INCR c", ":1\r\n"),
        ("SET c 5 EX 100 FLAGS 9", "+OK\r\n"),
        ("INCR c", ":6\r\n"),
        ("TTL c", ":100\r\n"),
        ("MGETS c", "*1\r\n*3\r\n+9\r\n+0\r\n$1\r\n6\r\n"),
        ("UINCR u", "+1\r\n"),
        ("UDECR u", "+0\r\n"),
        ("UDECR u", "-ERR increment or decrement would overflow\r\n"),
        ("UINCRBY u 5", "+5\r\n"),
        (
            "UINCRBY u -1",
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            "UDECRBY u 10",
            "-ERR increment or decrement would overflow\r\n",
        ),
        ("SET u 18446744073709551615", "+OK\r\n"),
        ("UINCR u", "-ERR increment or decrement would overflow\r\n"),
        ("SET u -5", "+OK\r\n"),
        (
            "UINCR u",
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            "INCRBY big 9223372036854775808",
            "-ERR value is not an integer or out of range\r\n",
        ),
        ("APPEND ap abc", ":3\r\n"),
        ("APPEND ap def", ":6\r\n"),
        ("PREPEND ap xyz", ":9\r\n"),
        ("GET ap", "$9\r\nxyzabcdef\r\n"),
        ("APPEND ap", "-ERR wrong number of arguments\r\n"),
        ("SET ap2 v EX 100 FLAGS 5", "+OK\r\n"),
        ("APPEND ap2 w", ":2\r\n"),
        ("TTL ap2", ":100\r\n"),
        ("MGETS ap2", "*1\r\n*3\r\n+5\r\n+0\r\n$2\r\nvw\r\n"),
    ]);
}

#[test]
fn admin_commands() {
    let mut h = harness();
    h.check(&[
        ("SET ap2 v", "+OK\r\n"),
        ("KEYS ap2", "*1\r\n$3\r\nap2\r\n"),
        ("KEYS ap?", "*1\r\n$3\r\nap2\r\n"),
        ("KEYS a[p]2", "*0\r\n"),
        ("KEYS", "-ERR wrong number of arguments\r\n"),
        ("SCAN 0 MATCH ap2", "*2\r\n$1\r\n0\r\n*1\r\n$3\r\nap2\r\n"),
        ("SCAN 0 MATCH zz* COUNT 5", "*2\r\n$1\r\n0\r\n*0\r\n"),
        ("SCAN x", "-ERR invalid cursor\r\n"),
        ("SCAN -1", "-ERR invalid cursor\r\n"),
        ("SCAN 0 COUNT 0", "-ERR syntax error\r\n"),
        ("SCAN 0 COUNT x", "-ERR syntax error\r\n"),
        ("SCAN 0 MATCH", "-ERR syntax error\r\n"),
        ("SCAN 0 FOO 1", "-ERR syntax error\r\n"),
        ("SCAN 0 TYPE hash", "-ERR unknown type name 'hash'\r\n"),
        ("SCAN 0 TYPE STRING", "*2\r\n$1\r\n0\r\n*1\r\n$3\r\nap2\r\n"),
        ("SCAN 99999999999999", "*2\r\n$1\r\n0\r\n*0\r\n"),
        ("SCAN 68719476736", "*2\r\n$1\r\n0\r\n*0\r\n"),
        ("FLUSHALL DELAY -1", "-ERR invalid delay argument\r\n"),
        ("FLUSHALL DELAY 31536001", "-ERR invalid delay argument\r\n"),
        ("FLUSHALL DELAY", "-ERR syntax error\r\n"),
        ("FLUSHALL BOGUS", "-ERR syntax error\r\n"),
        ("FLUSHALL", "+OK\r\n"),
        ("DBSIZE", ":0\r\n"),
        ("FLUSHDB SYNC FAST", "+OK\r\n"),
        ("SWEEP", "+OK\r\n"),
        ("SWEEP FAST", "+OK\r\n"),
        ("SWEEP x", "-ERR syntax error\r\n"),
        ("SWEEP ASYNC FAST", "-ERR wrong number of arguments\r\n"),
        ("PURGE x", "-ERR syntax error\r\n"),
        ("PURGE a b", "-ERR wrong number of arguments\r\n"),
        ("STATS x", "-ERR syntax error\r\n"),
        ("SAVE", "-ERR path not provided\r\n"),
        ("LOAD", "-ERR path not provided\r\n"),
        ("SAVE x", "-ERR syntax error\r\n"),
        ("SAVE TO", "-ERR syntax error\r\n"),
        ("LOAD FROM", "-ERR syntax error\r\n"),
        ("LOAD TO x", "-ERR syntax error\r\n"),
        ("DEBUG", "-ERR wrong number of arguments\r\n"),
        ("DEBUG foo", "-ERR unknown subcommand\r\n"),
        ("DEBUG populate x p 1", "-ERR syntax error\r\n"),
        ("DEBUG populate 3 p", "-ERR wrong number of arguments\r\n"),
        ("DEBUG populate 3 p 2", "+OK\r\n"),
        ("DBSIZE", ":3\r\n"),
        ("GET p:2", "$2\r\n\x00\x00\r\n"),
        ("DEBUG populate 10 x 1 5-5", "+OK\r\n"),
        ("TTL x:3", ":5\r\n"),
        ("DBSIZE x", "-ERR wrong number of arguments\r\n"),
    ]);
    let (stats, _) = h.run(b"STATS\r\n");
    assert!(stats.starts_with(b"*36\r\n*2\r\n$3\r\npid\r\n"));
    assert!(String::from_utf8_lossy(&stats).contains("$10\r\ncurr_items\r\n$2\r\n13\r\n"));
}

#[test]
fn session_commands_and_unknowns() {
    let mut h = harness();
    h.check(&[
        ("PING", "+PONG\r\n"),
        ("PING x", "$1\r\nx\r\n"),
        ("PING x y", "-ERR wrong number of arguments\r\n"),
        ("ECHO hello", "$5\r\nhello\r\n"),
        ("ECHO", "-ERR wrong number of arguments\r\n"),
        ("SELECT 0", "+OK\r\n"),
        ("SELECT -1", "+OK\r\n"),
        ("SELECT 1", "-ERR index is out of range\r\n"),
        (
            "SELECT x",
            "-ERR value is not an integer or out of range\r\n",
        ),
        ("SELECT", "-ERR wrong number of arguments\r\n"),
        ("HELLO 4", "-NOPROTO unsupported protocol version\r\n"),
        ("WAIT 0 0", ":0\r\n"),
        ("CLIENT", "-ERR wrong number of arguments\r\n"),
        ("foo", "-ERR unknown command 'foo'\r\n"),
        ("\"\"", "-ERR unknown command ''\r\n"),
        (
            "AUTH x",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (
            "AUTH a b",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        ("AUTH", "-ERR wrong number of arguments\r\n"),
        ("AUTH a b c", "-ERR syntax error\r\n"),
        ("AUTH \"\"", "+OK\r\n"),
        ("MONITOR x", "-ERR wrong number of arguments\r\n"),
    ]);
    assert_eq!(
        h.run(b"VERSION extra\r\n").0,
        format!("+{VERSION}\r\n").into_bytes()
    );
    assert_eq!(h.run(b"QUIT\r\n"), (b"+OK\r\n".to_vec(), Action::Close));
    assert_eq!(
        h.run(b"MONITOR\r\n"),
        (b"+OK\r\n".to_vec(), Action::Monitor)
    );
    let long = "x".repeat(300);
    let (got, _) = h.run(format!("{long}\r\n").as_bytes());
    assert_eq!(got.len(), 1 + 255 + 2, "message cut to 255 bytes");
}

#[test]
fn auth_gate() {
    let mut h = Harness::new(Settings {
        auth: b"secret".to_vec(),
        ..Settings::default()
    });
    h.check(&[
        ("PING", "-NOAUTH Authentication required.\r\n"),
        ("SET a b", "-NOAUTH Authentication required.\r\n"),
        (
            "AUTH wrong",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (
            "AUTH bob secret",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        ("AUTH default secret", "+OK\r\n"),
        ("PING", "+PONG\r\n"),
    ]);
    let t = h.shared.totals();
    assert_eq!((t.auth_cmds, t.auth_errors), (5, 4));
}

#[test]
fn evict_no_refuses_new_keys_at_the_limit() {
    let store = Store::new(Config {
        shards: 4,
        evict: false,
        ..Config::default()
    });
    let mut h = harness();
    h.shared = Arc::new(Shared::new(store, Settings::default(), 1));
    h.session.authed = true;
    h.check(&[("SET a 1", "+OK\r\n")]);
    h.shared.store.set_low_memory(true);
    h.check(&[
        ("SET b 1", "-ERR out of memory\r\n"),
        ("SET a 2", "+OK\r\n"),
        ("GET a", "$1\r\n2\r\n"),
    ]);
    assert_eq!(h.shared.totals().store_no_memory, 1);
}

#[test]
fn wire_and_store_agree_on_the_value_limit() {
    assert_eq!(
        pogocache_protocol::MAX_VALUE,
        pogocache_store::MAX_VALUE_LEN
    );
}

/// Drives a connection's [`conn::Protocol`] over `input` as the server
/// does (step, drop what was consumed, repeat) and returns the output and
/// the last step.
fn drive(h: &mut Harness, proto: &mut conn::Protocol, input: &[u8]) -> (Vec<u8>, conn::Step) {
    let shared = h.shared.clone();
    let mut ctx = Ctx {
        shared: &shared,
        stats: &shared.workers[0],
        now: h.now,
        session: &mut h.session,
        scratch: &mut h.scratch,
        wake: None,
    };
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        if at == input.len() {
            return (out, conn::Step::Consumed(at));
        }
        match proto.step(&mut ctx, &input[at..], &mut out) {
            conn::Step::Consumed(n) => at += n,
            other => return (out, other),
        }
    }
}

/// The replies to `reqs` sent one at a time, each stepped alone on a
/// fresh server's connection.
fn one_at_a_time<R: AsRef<[u8]>>(reqs: &[R]) -> Vec<u8> {
    let mut h = Harness::new(Settings::default());
    let mut proto = conn::Protocol::Sniffing;
    let mut want = Vec::new();
    for r in reqs {
        let r = r.as_ref();
        let (out, step) = drive(&mut h, &mut proto, r);
        assert_eq!(step, conn::Step::Consumed(r.len()));
        want.extend_from_slice(&out);
    }
    want
}

/// A pipeline stepped as one buffered input (windows of `resp::WINDOW`,
/// each parsed once) answers exactly what the same requests answer one
/// at a time, across window boundaries and with HELLO switching RESP3 in
/// the middle of a window.
#[test]
fn pipelined_windows_answer_like_single_requests() {
    let mut reqs: Vec<Vec<u8>> = Vec::new();
    for i in 0..20 {
        let k = format!("k{i}");
        let mut r = Vec::new();
        resp::request(&mut r, &[b"SET", k.as_bytes(), b"v"]);
        reqs.push(r);
        let mut r = Vec::new();
        resp::request(&mut r, &[b"GET", k.as_bytes()]);
        reqs.push(r);
        if i == 5 {
            reqs.push(b"HELLO 3\r\n".to_vec());
        }
        if i == 11 {
            reqs.push(b"GET missing\r\n".to_vec());
            reqs.push(b"HELLO 2\r\n".to_vec());
        }
    }
    reqs.push(b"GET missing\r\n".to_vec());

    let want = one_at_a_time(&reqs);

    let mut piped = Harness::new(Settings::default());
    let mut proto = conn::Protocol::Sniffing;
    let all = reqs.concat();
    let (got, step) = drive(&mut piped, &mut proto, &all);
    assert_eq!(step, conn::Step::Consumed(all.len()));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    assert!(got.ends_with(b"$-1\r\n"));
    assert_eq!(
        piped.shared.workers[0].detail.requests[0].get(),
        reqs.len() as u64
    );
}

/// Stepping stops at MONITOR (the server subscribes the connection) and
/// at QUIT, with the requests before them answered and none after.
#[test]
fn a_window_stops_at_monitor_and_quit() {
    let mut h = Harness::new(Settings::default());
    let mut proto = conn::Protocol::Sniffing;
    let input = b"PING\r\nMONITOR\r\nPING\r\nGET k\r\n";
    let (out, step) = drive(&mut h, &mut proto, input);
    assert_eq!(out, b"+PONG\r\n+OK\r\n");
    assert_eq!(step, conn::Step::Monitor(15));
    proto.enter_monitor(Default::default());
    assert!(proto.monitor().is_some());
    // Monitoring: PING is answered, anything else closes.
    let (out, step) = drive(&mut h, &mut proto, &input[15..]);
    assert_eq!(out, b"+PONG\r\n");
    assert_eq!(step, conn::Step::Close);

    let mut proto = conn::Protocol::Sniffing;
    let (out, step) = drive(&mut h, &mut proto, b"SET a 1\r\nQUIT\r\nSET b 2\r\n");
    assert_eq!(out, b"+OK\r\n+OK\r\n");
    assert_eq!(step, conn::Step::Close);
    assert!(!h.shared.store.get(b"b", h.now, |e| e.is_some()));
}

/// Memcache windows: a pipeline answers like its requests one at a time,
/// and a request that is still arriving is left for a later step.
#[test]
fn memcache_pipelines_step_like_single_requests() {
    let reqs: Vec<&[u8]> = vec![
        b"set a 0 0 1\r\n1\r\n",
        b"get a\r\n",
        b"incr a 5\r\n",
        b"gets a b\r\n",
        b"delete a\r\n",
        b"get a\r\n",
        b"add b 3 0 2\r\nxy\r\n",
        b"add b 3 0 2\r\nzz\r\n",
        b"get b\r\n",
        b"mn\r\n",
        b"version\r\n",
    ];
    let want = one_at_a_time(&reqs);
    let mut piped = Harness::new(Settings::default());
    let mut proto = conn::Protocol::Sniffing;
    let mut all = reqs.concat();
    all.extend_from_slice(b"set c 0 0 10\r\nabc");
    let (got, step) = drive(&mut piped, &mut proto, &all);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    assert!(matches!(step, conn::Step::Incomplete(_)));
}
