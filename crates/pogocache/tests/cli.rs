//! The real binary: exit codes and messages of the CLI, the banner, and a
//! clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

mod common;
use common::until_ready;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pogocache"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = bin().args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_version_and_errors() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage: pogocache [options]\n"));
    let (code, out, _) = run(&["--version"]);
    assert_eq!((code, out.starts_with("pogocache 1.3.1")), (0, true));
    assert_eq!(
        run(&["--bogus"]),
        (
            1,
            String::new(),
            "# Unknown program option --bogus\n".into()
        )
    );
    assert_eq!(
        run(&["-p", "abc"]),
        (1, String::new(), "# Option --port is invalid\n".into())
    );
    assert_eq!(
        run(&["--cas", "x"]),
        (1, String::new(), "# Option --usecas is invalid\n".into())
    );
    let (code, out, _) = run(&["-p", "0"]);
    assert_eq!(
        (code, out.as_str()),
        (
            1,
            "Need to specify at least one valid port, tlsport or socket option\n"
        )
    );
    let (code, _, err) = run(&["-p", "0", "-s", "/nonexistent-dir/x/sock"]);
    assert_eq!(code, 1, "gap A4: a clean exit 1, not abort");
    assert!(
        err.contains("# bind(unix): /nonexistent-dir/x/sock"),
        "{err}"
    );
}

#[test]
fn serves_then_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("pogocache-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let mut child = bin()
        .args(["-p", "0", "-s", sock.to_str().unwrap(), "--threads", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let banner = until_ready(&mut out).unwrap_or_else(|log| panic!("exited early: {log}"));
    assert!(banner.starts_with("* Pogocache (pid: "));
    assert!(banner.contains("* Network (port: none, unixsocket: "));
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.write_all(b"PING\r\n").unwrap();
    let mut b = [0u8; 7];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"+PONG\r\n");
    // The built-in health probe sees it; with nothing listening it fails.
    let probe = bin()
        .args(["--health", "-p", "0", "-s", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        probe.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let probe = bin()
        .args(["--health", "-p", "0", "-s"])
        .arg(dir.join("nothing.sock"))
        .output()
        .unwrap();
    assert_eq!(probe.status.code(), Some(1));
    // Flags from the environment (containers have no shell to expand them).
    let probe = bin()
        .arg("--health")
        .env(
            "POGOCACHE_EXTRA_FLAGS",
            format!("-p 0 -s {}", sock.display()),
        )
        .output()
        .unwrap();
    assert_eq!(probe.status.code(), Some(0));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(rest, "# Pogocache exiting now\n");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn json_logs_and_sampled_command_log() {
    let dir = std::env::temp_dir().join(format!("pogocache-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let mut child = bin()
        .args(["-p", "0", "-s", sock.to_str().unwrap(), "--threads", "1"])
        .args(["--logformat", "json", "-vvv", "--logsample", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "exited early: {lines:?}"
        );
        let ready = line.contains("\"msg\":\"Ready to accept connections\"");
        lines.push(line);
        if ready {
            break;
        }
    }
    for l in &lines {
        assert!(
            l.starts_with("{\"time\":\"20") && l.ends_with("\"}\n") && l.contains("\"level\":\""),
            "{l}"
        );
    }
    assert!(
        lines[0].contains("\"level\":\"info\",\"msg\":\"Pogocache (pid: "),
        "{}",
        lines[0]
    );
    // Four commands, one in two logged: the 1st and the 3rd.
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.write_all(b"SET a \"x\\\"y\"\r\nGET a\r\nGET b\r\nPING\r\n")
        .unwrap();
    let mut b = [0u8; 5 + 9 + 5 + 7];
    c.read_exact(&mut b).unwrap();
    let mut logged = Vec::new();
    while logged.len() < 2 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if line.contains("\"cmd\":") {
            logged.push(line);
        }
    }
    assert!(
        logged[0].ends_with("\"level\":\"debug\",\"cmd\":[\"SET\",\"a\",\"x\\\"y\"]}\n"),
        "{}",
        logged[0]
    );
    assert!(
        logged[1].ends_with("\"cmd\":[\"GET\",\"b\"]}\n"),
        "{}",
        logged[1]
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        rest.ends_with("\"level\":\"warn\",\"msg\":\"Pogocache exiting now\"}\n"),
        "{rest}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The upstream image contract: `POGOCACHE_AUTH_PASSWORD` sets the
/// password (the health probe uses it too), it is never printed, and it
/// cannot be combined with `POGOCACHE_AUTH_FILE`.
#[test]
fn password_from_the_environment() {
    let dir = std::env::temp_dir().join(format!("pogocache-envpw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let secret = "s3cret-from-env";
    let mut child = bin()
        .args([
            "-p",
            "0",
            "-s",
            sock.to_str().unwrap(),
            "--threads",
            "1",
            "-vv",
        ])
        .env("POGOCACHE_AUTH_PASSWORD", secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let log = until_ready(&mut out).unwrap_or_else(|log| panic!("exited early: {log}"));
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    // A bound on how long a broken test can hang, not a synchronisation.
    c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut talk = |req: &[u8], want: &[u8]| {
        c.write_all(req).unwrap();
        let mut got = vec![0u8; want.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    };
    talk(b"PING\r\n", b"-NOAUTH Authentication required.\r\n");
    talk(
        b"AUTH wrong\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    talk(
        format!("AUTH {secret}\r\nPING\r\n").as_bytes(),
        b"+OK\r\n+PONG\r\n",
    );
    // The probe reads the same variable, so a container's HEALTHCHECK
    // authenticates; without it the probe is refused.
    let probe = |pw: Option<&str>| {
        let mut cmd = bin();
        cmd.args(["--health", "-p", "0", "-s", sock.to_str().unwrap()]);
        if let Some(pw) = pw {
            cmd.env("POGOCACHE_AUTH_PASSWORD", pw);
        }
        cmd.output().unwrap().status.code()
    };
    assert_eq!(probe(Some(secret)), Some(0));
    assert_eq!(probe(None), Some(1));
    // Both variables: refused at start, with a message that names the
    // variables and not the password.
    let both = bin()
        .args(["-p", "0", "-s", dir.join("x.sock").to_str().unwrap()])
        .env("POGOCACHE_AUTH_PASSWORD", secret)
        .env("POGOCACHE_AUTH_FILE", dir.join("pw"))
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(1));
    let err = String::from_utf8_lossy(&both.stderr);
    assert_eq!(
        err,
        "# POGOCACHE_AUTH_PASSWORD and POGOCACHE_AUTH_FILE are both set: set only one\n"
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let mut errs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut errs)
        .unwrap();
    let all = format!("{log}{rest}{errs}");
    assert!(!all.contains(secret), "the password was printed: {all}");
    let _ = std::fs::remove_dir_all(dir);
}
