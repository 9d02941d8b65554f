//! TLS over real sockets. Certificates are made per test with rcgen; the
//! client side is rustls (RESP, HTTP, Memcache bytes over one TLS
//! session each), plus `curl`, `openssl s_client`, `redis-cli --tls` and
//! `psql sslmode=require` when installed (CI installs psql).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pogocache_server::Config;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};

struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: String,
    client_key: String,
    rogue_cert: String,
    rogue_key: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("pogocache-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = ca("pogocache test ca");
    let (cert, key) = leaf(&ca, &["localhost", "127.0.0.1"]);
    let (client_cert, client_key) = leaf(&ca, &["client"]);
    let rogue = self::ca("rogue ca");
    let (rogue_cert, rogue_key) = leaf(&rogue, &["client"]);
    let write = |n: &str, s: &str| {
        let p = dir.join(n);
        std::fs::write(&p, s).unwrap();
        p
    };
    Pki {
        ca: write("ca.crt", &ca.pem()),
        cert: write("srv.crt", &cert),
        key: write("srv.key", &key),
        dir,
        client_cert,
        client_key,
        rogue_cert,
        rogue_key,
    }
}

fn tls_config(p: &Pki, cacert: bool) -> Config {
    Config {
        tlsport: Some(0),
        tlscert: Some(p.cert.clone()),
        tlskey: Some(p.key.clone()),
        tlscacert: cacert.then(|| p.ca.clone()),
        ..config()
    }
}

/// A rustls client session over TCP, optionally with a client certificate.
fn client(
    p: &Pki,
    addr: std::net::SocketAddr,
    identity: Option<(&str, &str)>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&p.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match identity {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            b.with_client_auth_cert(
                certs,
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap()
        }
    };
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

fn talk(s: &mut impl Read, w: impl FnOnce(), want: &[u8]) {
    w();
    let mut got = vec![0; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

#[test]
fn every_protocol_over_tls() {
    let p = pki("protocols");
    let srv = pogocache_server::Server::start(tls_config(&p, false)).unwrap();
    let addr = srv.tls_addr().unwrap();
    let mut r = client(&p, addr, None);
    r.write_all(b"SET k tls-value\r\n").unwrap();
    talk(&mut r, || {}, b"+OK\r\n");
    r.write_all(&cmd(&[b"GET", b"k"])).unwrap();
    talk(&mut r, || {}, b"$9\r\ntls-value\r\n");
    let mut m = client(&p, addr, None);
    m.write_all(b"get k\r\n").unwrap();
    talk(&mut m, || {}, b"VALUE k 0 9\r\ntls-value\r\nEND\r\n");
    let mut h = client(&p, addr, None);
    h.write_all(b"GET /k HTTP/1.0\r\n\r\n").unwrap();
    talk(
        &mut h,
        || {},
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: Close\r\n\r\ntls-value",
    );
    // The plain port still works, and plain bytes on the TLS port are refused.
    let mut plain = connect(srv.local_addr().unwrap());
    exchange(&mut plain, b"GET k\r\n", b"$9\r\ntls-value\r\n");
    let mut wrong = connect(addr);
    let _ = wrong.write_all(b"PING\r\n");
    assert_closed(&mut wrong);
    // A large value crosses many TLS records both ways.
    let big = vec![b'z'; 3 << 20];
    r.write_all(&cmd(&[b"SET", b"big", &big])).unwrap();
    talk(&mut r, || {}, b"+OK\r\n");
    r.write_all(&cmd(&[b"GET", b"big"])).unwrap();
    let mut got = vec![0; "$3145728\r\n".len() + big.len() + 2];
    r.read_exact(&mut got).unwrap();
    assert!(got.starts_with(b"$3145728\r\nzzz") && got.ends_with(b"z\r\n"));
    srv.shutdown().unwrap();
}

#[test]
fn redis_crate_over_tls() {
    let p = pki("redis");
    let srv = pogocache_server::Server::start(tls_config(&p, false)).unwrap();
    let port = srv.tls_addr().unwrap().port();
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(std::fs::read(&p.ca).unwrap()),
    };
    let client =
        redis::Client::build_with_tls(format!("rediss://localhost:{port}/"), certs).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg("tk")
        .arg(b"\x00tls\xff".as_slice())
        .query(&mut con)
        .unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg("tk").query(&mut con).unwrap();
    assert_eq!(got, b"\x00tls\xff");
    srv.shutdown().unwrap();
}

#[test]
fn client_certificates_are_verified_when_presented() {
    let p = pki("clientcert");
    let srv = pogocache_server::Server::start(tls_config(&p, true)).unwrap();
    let addr = srv.tls_addr().unwrap();
    // No certificate: accepted (Pogocache's verify-if-presented).
    let mut anon = client(&p, addr, None);
    anon.write_all(b"PING\r\n").unwrap();
    talk(&mut anon, || {}, b"+PONG\r\n");
    // Signed by the configured CA: accepted.
    let mut good = client(&p, addr, Some((&p.client_cert, &p.client_key)));
    good.write_all(b"PING\r\n").unwrap();
    talk(&mut good, || {}, b"+PONG\r\n");
    // Signed by another CA: the handshake fails.
    let mut bad = client(&p, addr, Some((&p.rogue_cert, &p.rogue_key)));
    let _ = bad.write_all(b"PING\r\n");
    let mut buf = [0u8; 16];
    assert!(
        bad.read(&mut buf).map(|n| n == 0).unwrap_or(true),
        "rogue client certificate accepted"
    );
    srv.shutdown().unwrap();
}

#[test]
fn startup_refuses_bad_tls_files() {
    let p = pki("badfiles");
    let bad = |c: Config| match pogocache_server::Server::start(c) {
        Ok(s) => {
            s.shutdown().unwrap();
            panic!("started with bad TLS files")
        }
        Err(e) => e.to_string(),
    };
    let e = bad(Config {
        tlskey: None,
        ..tls_config(&p, false)
    });
    assert_eq!(e, "# tls: --tlsport needs both --tlscert and --tlskey");
    let e = bad(Config {
        tlscert: Some(p.dir.join("missing.crt")),
        ..tls_config(&p, false)
    });
    assert!(e.starts_with("# tls: cannot read certificate"), "{e}");
    std::fs::write(p.dir.join("garbage.key"), "not a key").unwrap();
    let e = bad(Config {
        tlskey: Some(p.dir.join("garbage.key")),
        ..tls_config(&p, false)
    });
    assert!(e.starts_with("# tls: cannot read private key"), "{e}");
    // A key that does not belong to the certificate.
    let other = p.dir.join("other.key");
    std::fs::write(&other, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let e = bad(Config {
        tlskey: Some(other),
        ..tls_config(&p, false)
    });
    assert!(
        e.starts_with("# tls: private key does not match the certificate"),
        "{e}"
    );
}

fn have(tool: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        ok || tool != "psql" || std::env::var_os("CI").is_none(),
        "{tool} missing in CI"
    );
    ok
}

fn run(cmd: &mut std::process::Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn real_command_line_clients() {
    let p = pki("clis");
    let srv = pogocache_server::Server::start(tls_config(&p, false)).unwrap();
    let tls_port = srv.tls_addr().unwrap().port().to_string();
    let plain_port = srv.local_addr().unwrap().port().to_string();
    let ca: &Path = &p.ca;
    // The key the tools read, set over plain text first (so each tool's
    // check stands alone, whichever tools are installed).
    let mut plain = connect(srv.local_addr().unwrap());
    exchange(&mut plain, b"SET ck via-curl\r\n", b"+OK\r\n");
    if have("curl") {
        let url = format!("https://127.0.0.1:{tls_port}/ck");
        run(std::process::Command::new("curl").args([
            "-sS",
            "--cacert",
            ca.to_str().unwrap(),
            "-X",
            "PUT",
            "-d",
            "via-curl",
            &url,
        ]));
        let got = run(std::process::Command::new("curl").args([
            "-sS",
            "--cacert",
            ca.to_str().unwrap(),
            &url,
        ]));
        assert_eq!(got, "via-curl");
    }
    if have("redis-cli")
        && run(std::process::Command::new("redis-cli").arg("--help")).contains("--tls")
    {
        let got = run(std::process::Command::new("redis-cli").args([
            "--tls",
            "--cacert",
            ca.to_str().unwrap(),
            "-p",
            &tls_port,
            "GET",
            "ck",
        ]));
        assert_eq!(got.trim(), "via-curl");
    }
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok()
    {
        let mut child = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-connect",
                &format!("127.0.0.1:{tls_port}"),
                "-CAfile",
                ca.to_str().unwrap(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"get ck\r\nquit\r\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "VALUE ck 0 8\r\nvia-curl\r\nEND\r\n"
        );
    }
    if have("psql") {
        // SSLRequest → `S` → TLS, on the TLS port and on the plain port.
        for port in [&tls_port, &plain_port] {
            let conn = format!(
                "host=127.0.0.1 port={port} user=u sslmode=verify-ca sslrootcert={}",
                ca.display()
            );
            let got = run(std::process::Command::new("psql").args([
                conn.as_str(),
                "-At",
                "-c",
                "GET ck",
            ]));
            assert_eq!(got, "via-curl\n");
        }
    }
    srv.shutdown().unwrap();
}
