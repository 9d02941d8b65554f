//! Postgres over real sockets: tokio-postgres (simple and extended query,
//! parameters, bytea, binary values), auth (cleartext, MD5, wrong, none),
//! captured byte exchanges, and `psql` when it is installed.

mod common;

use common::*;
use pogocache_server::Config;
use tokio_postgres::{NoTls, SimpleQueryMessage};

async fn client(
    addr: std::net::SocketAddr,
    extra: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=u {extra}", addr.port()),
        NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(c)
}

fn simple_rows(msgs: &[SimpleQueryMessage]) -> Vec<Vec<String>> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The psycopg and pgx examples of Pogocache's README, written with
/// tokio-postgres.
#[tokio::test(flavor = "current_thread")]
async fn readme_examples() {
    let (srv, addr) = start(config());
    let c = client(addr, "").await.unwrap();
    c.simple_query("SET first Tom").await.unwrap();
    c.simple_query("SET last Anderson").await.unwrap();
    c.simple_query("SET age 37").await.unwrap();
    assert_eq!(c.execute("SET city $1", &[&"Phoenix"]).await.unwrap(), 1);
    let first: String = c.query_one("GET first", &[]).await.unwrap().get(0);
    let age: String = c.query_one("GET age", &[]).await.unwrap().get(0);
    let city: String = c.query_one("GET $1", &[&"city"]).await.unwrap().get(0);
    assert_eq!(
        (first.as_str(), age.as_str(), city.as_str()),
        ("Tom", "37", "Phoenix")
    );
    let rows = c.query("MGET first last city", &[]).await.unwrap();
    let pairs: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        pairs,
        vec![
            ("first".into(), "Tom".into()),
            ("last".into(), "Anderson".into()),
            ("city".into(), "Phoenix".into())
        ]
    );
    // pgx example: glued parameters.
    let id = "1287";
    c.execute("SET user:$1:first $2", &[&id, &"Tom"])
        .await
        .unwrap();
    c.execute("SET user:$1:last $2", &[&id, &"Anderson"])
        .await
        .unwrap();
    let last: String = c
        .query_one("GET user:$1:last", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(last, "Anderson");
    // Simple query shapes.
    let msgs = c.simple_query("MGET first nokey").await.unwrap();
    assert_eq!(
        simple_rows(&msgs),
        vec![vec!["first".to_string(), "Tom".to_string()]]
    );
    let msgs = c.simple_query("TTL first").await.unwrap();
    assert_eq!(simple_rows(&msgs), vec![vec!["-1".to_string()]]);
    let err = c.simple_query("FOO").await.unwrap_err();
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "unknown command 'FOO'"
    );
    assert_eq!(err.as_db_error().unwrap().code().code(), "23505");
    // A missing key is an empty result, not an error.
    assert!(c.query_opt("GET $1", &[&"nokey"]).await.unwrap().is_none());
    srv.shutdown().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn binary_values_and_bytea_mode() {
    let (srv, addr) = start(config());
    let c = client(addr, "").await.unwrap();
    c.simple_query("::bytea").await.unwrap();
    let bin: &[u8] = b"\x00\x01\x02hello\xff";
    c.execute("SET binary $1", &[&bin]).await.unwrap();
    c.execute("SET name $1", &[&b"Tom".as_slice()])
        .await
        .unwrap();
    let got: Vec<u8> = c.query_one("GET binary", &[]).await.unwrap().get(0);
    assert_eq!(got, bin);
    let got: Vec<u8> = c.query_one("GET name", &[]).await.unwrap().get(0);
    assert_eq!(got, b"Tom");
    c.simple_query("::text").await.unwrap();
    let name: String = c.query_one("GET name", &[]).await.unwrap().get(0);
    assert_eq!(name, "Tom");
    // Prepared statements are reused and closed (Close message).
    let st = c.prepare("INCR $1").await.unwrap();
    for want in ["1", "2", "3"] {
        let v: String = c.query_one(&st, &[&"ctr"]).await.unwrap().get(0);
        assert_eq!(v, want);
    }
    drop(st);
    let v: String = c.query_one("GET ctr", &[]).await.unwrap().get(0);
    assert_eq!(v, "3");
    // Errors in the extended flow do not break the session.
    assert!(c.query("GET $1 $2", &[&"a", &"b"]).await.is_err());
    let v: String = c.query_one("GET ctr", &[]).await.unwrap().get(0);
    assert_eq!(v, "3");
    srv.shutdown().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn passwords() {
    let (srv, addr) = start(Config {
        auth: "secret".into(),
        ..config()
    });
    let c = client(addr, "password=secret").await.unwrap();
    assert_eq!(c.simple_query("PING").await.unwrap().len(), 3);
    let Err(e) = client(addr, "password=wrong").await else {
        panic!("wrong password accepted")
    };
    assert_eq!(
        e.as_db_error().unwrap().message(),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert!(client(addr, "").await.is_err(), "no password refused");
    srv.shutdown().unwrap();
    let (srv, addr) = start(Config {
        auth: "secret".into(),
        pg_auth: pogocache_command::postgres::PgAuth::Md5,
        ..config()
    });
    let c = client(addr, "password=secret").await.unwrap();
    assert_eq!(
        c.query_one("ECHO $1", &[&"md5 ok"])
            .await
            .unwrap()
            .get::<_, String>(0),
        "md5 ok"
    );
    assert!(client(addr, "password=wrong").await.is_err());
    srv.shutdown().unwrap();
}

/// Byte-exact exchanges captured from Pogocache 1.3.1 (its simple-query
/// session).
#[test]
fn simple_query_bytes() {
    let (srv, addr) = start(config());
    let mut s = connect(addr);
    exchange(&mut s, b"\x00\x00\x00\x08\x04\xd2\x16\x2f", b"N");
    let ok = [
        &b"R\x00\x00\x00\x08\x00\x00\x00\x00S\x00\x00\x00\x19client_encoding\x00UTF8\x00S\x00\x00\x00\x19server_encoding\x00UTF8\x00S"[..],
        &((4 + 15 + pogocache_command::VERSION.len() + " (Pogocache)".len() + 1) as u32).to_be_bytes(),
        b"server_version\x00",
        pogocache_command::VERSION.as_bytes(),
        b" (Pogocache)\x00Z\x00\x00\x00\x05I",
    ]
    .concat();
    exchange(
        &mut s,
        b"\x00\x00\x00\x1b\x00\x03\x00\x00user\x00u\x00database\x00d\x00\x00",
        &ok,
    );
    let value_t = b"T\x00\x00\x00\x1e\x00\x01value\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x01";
    let z = b"Z\x00\x00\x00\x05I";
    let cases: Vec<(&[u8], Vec<u8>)> = vec![
        (b"Q\x00\x00\x00\x19SET pk 'hello world'\x00", [&b"C\x00\x00\x00\nSET 1\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x0bGET pk\x00", [&value_t[..], b"D\x00\x00\x00\x15\x00\x01\x00\x00\x00\x0bhello worldC\x00\x00\x00\nGET 1\x00", z].concat()),
        (b"Q\x00\x00\x00\x0eGET nokey\x00", [&value_t[..], b"C\x00\x00\x00\nGET 0\x00", z].concat()),
        (b"Q\x00\x00\x00\x11DEL pk nokey\x00", [&b"C\x00\x00\x00\nDEL 1\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x05\x00", [&b"I\x00\x00\x00\x04"[..], z].concat()),
        (b"Q\x00\x00\x00\x08FOO\x00", [&b"E\x00\x00\x001SERROR\x00VERROR\x00C23505\x00Munknown command 'FOO'\x00\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\nSET a\x00", [&b"E\x00\x00\x005SERROR\x00VERROR\x00C23505\x00Mwrong number of arguments\x00\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x13SET q2 'it''s'\x00", [&b"C\x00\x00\x00\nSET 1\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x0bGET q2\x00", [&value_t[..], b"D\x00\x00\x00\x0e\x00\x01\x00\x00\x00\x04it'sC\x00\x00\x00\nGET 1\x00", z].concat()),
        (b"Q\x00\x00\x00\x0fSET \"q5\" x\x00", [&b"E\x00\x00\x002SERROR\x00VERROR\x00C23505\x00Midenifiers not allowed\x00\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x0eSET q7 $1\x00", [&b"E\x00\x00\x008SERROR\x00VERROR\x00C23505\x00Mquery cannot have parameters\x00\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x11SET q10 x;;;\x00", [&b"C\x00\x00\x00\nSET 1\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\nBEGIN\x00", [&b"C\x00\x00\x00\nBEGIN\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x0c::bytea\x00", [&b"C\x00\x00\x00\nBYTEA\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x0cGET q10\x00", [&b"T\x00\x00\x00\x1e\x00\x01value\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x11\xff\xff\xff\xff\xff\xff\x00\x01D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x01xC\x00\x00\x00\nGET 1\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x0b::text\x00", [&b"C\x00\x00\x00\tTEXT\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\n::foo\x00", [&b"E\x00\x00\x00.SERROR\x00VERROR\x00C23505\x00Munknown type 'foo'\x00\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\rSELECT 1\x00", [&b"E\x00\x00\x004SERROR\x00VERROR\x00C23505\x00Munknown command 'SELECT'\x00\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x0cTTL q10\x00", [&b"T\x00\x00\x00\x1c\x00\x01ttl\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x01D\x00\x00\x00\x0c\x00\x01\x00\x00\x00\x02-1C\x00\x00\x00\nTTL 1\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x0eTTL nokey\x00", [&b"T\x00\x00\x00\x1c\x00\x01ttl\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x01C\x00\x00\x00\nTTL 0\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x0cINCR n1\x00", [&value_t[..], b"D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011C\x00\x00\x00\tINCR\x00", z].concat()),
        (b"Q\x00\x00\x00\rUINCR n2\x00", [&value_t[..], b"D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011C\x00\x00\x00\tINCR\x00", z].concat()),
        (b"Q\x00\x00\x00\x12APPEND q10 zz\x00", [&b"C\x00\x00\x00\rAPPEND 3\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x12SET s9 v2 GET\x00", [&value_t[..], b"C\x00\x00\x00\nSET 0\x00", z].concat()),
        (b"Q\x00\x00\x00\x0cMONITOR\x00", [&b"E\x00\x00\x00'SERROR\x00VERROR\x00C23505\x00Munavailable\x00\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\nFLUSH\x00", [&b"C\x00\x00\x00\x0fFLUSH SYNC\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x13FLUSHALL ASYNC\x00", [&b"C\x00\x00\x00\x13FLUSHALL ASYNC\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\x1aDEBUG populate 3 dp 2\x00", [&b"C\x00\x00\x00\x15DEBUG POPULATE 3\x00"[..], z].concat()),
        (b"Q\x00\x00\x00\tSAVE\x00", [&b"E\x00\x00\x00-SERROR\x00VERROR\x00C23505\x00Mpath not provided\x00\x00"[..], z].concat()),
        // F5: Close and Flush are supported.
        (b"P\x00\x00\x00\x10s1\x00GET $1\x00\x00\x00C\x00\x00\x00\x08Ss1\x00H\x00\x00\x00\x04S\x00\x00\x00\x04", [&b"1\x00\x00\x00\x043\x00\x00\x00\x04"[..], z].concat()),
        // F8: an error skips to Sync, which sends the only ReadyForQuery.
        (b"P\x00\x00\x00\x0e\x00GET $2\x00\x00\x00B\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x00S\x00\x00\x00\x04", [&b"E\x00\x00\x000SERROR\x00VERROR\x00C23505\x00Mmissing parameter $1\x00\x00"[..], z].concat()),
    ];
    for (req, want) in &cases {
        exchange(&mut s, req, want);
    }
    // A Query without its NUL: error, then closed.
    s.write_all_and(b"Q\x00\x00\x00\x08PING");
    let got = read_n(&mut s, 57);
    assert!(
        got.starts_with(b"E\x00\x00\x002SERROR"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_closed(&mut s);
    // Startup errors close the connection.
    let mut s = connect(addr);
    exchange(
        &mut s,
        b"\x00\x01\x11p\x00\x03\x00\x00",
        &[
            &b"E\x00\x00\x00-SERROR\x00VERROR\x00C23505\x00Mmessage too large\x00\x00"[..],
            z,
        ]
        .concat(),
    );
    assert_closed(&mut s);
    let mut s = connect(addr);
    s.write_all_and(b"\x00\x00\x00\x10\x04\xd2\x16.\x00\x00\x00\x00\x00\x00\x00\x00");
    assert_closed(&mut s);
    srv.shutdown().unwrap();
}

trait WriteAll {
    fn write_all_and(&mut self, b: &[u8]);
}

impl WriteAll for std::net::TcpStream {
    fn write_all_and(&mut self, b: &[u8]) {
        std::io::Write::write_all(self, b).unwrap();
    }
}

#[test]
fn psql_when_installed() {
    let Ok(out) = std::process::Command::new("psql").arg("--version").output() else {
        // CI installs postgresql-client (.ci/run), so there it must exist.
        assert!(std::env::var_os("CI").is_none(), "psql is missing in CI");
        eprintln!("psql not installed; skipping (.ci/run installs postgresql-client)");
        return;
    };
    assert!(out.status.success());
    let (srv, addr) = start(config());
    let run = |sql: &str| {
        let o = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &addr.port().to_string(),
                "-U",
                "u",
                "-d",
                "d",
                "-At",
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    run("SET first Tom");
    assert_eq!(run("GET first"), "Tom\n");
    run("SET last Anderson");
    assert_eq!(run("MGET first last"), "first|Tom\nlast|Anderson\n");
    srv.shutdown().unwrap();
}

mod data {
    use super::{Session, Step};
    include!("data/conformance_pg.rs");
}

/// The reply of a step whose capture holds the reference's version
/// string, rebuilt with ours (its length fields change with it).
fn versioned(send: &[u8]) -> Vec<u8> {
    use pogocache_protocol::postgres as pg;
    let mut out = Vec::new();
    if send.first() == Some(&0) {
        pg::authentication(&mut out, 0, None);
        pg::parameter_status(&mut out, "client_encoding", "UTF8");
        pg::parameter_status(&mut out, "server_encoding", "UTF8");
        pg::parameter_status(
            &mut out,
            "server_version",
            &format!("{} (Pogocache)", pogocache_command::VERSION),
        );
    } else {
        pg::row_description(&mut out, &["version"], pg::OID_TEXT);
        pg::data_row(&mut out, &[pogocache_command::VERSION.as_bytes()]);
        pg::command_complete(&mut out, "VERSION 1");
    }
    pg::ready_for_query(&mut out);
    out
}

#[test]
fn captured_postgres_sessions() {
    let (srv, addr) = start(config());
    // The captures ran after the HTTP sessions, which left `hk3` and `hk5`
    // behind (DBSIZE counts them).
    let mut r = connect(addr);
    exchange(&mut r, b"SET hk3 A\r\nSET hk5 abc\r\n", b"+OK\r\n+OK\r\n");
    let mut steps = 0;
    for session in data::SESSIONS {
        let mut s = connect(addr);
        for step in session.steps {
            let want = if step.reply.windows(3).any(|w| w == b"\0V\0") {
                versioned(step.send)
            } else {
                step.reply.to_vec()
            };
            exchange(&mut s, step.send, &want);
            if step.closed {
                assert_closed(&mut s);
            }
            steps += 1;
        }
    }
    assert_eq!(steps, 72);
    srv.shutdown().unwrap();
}
