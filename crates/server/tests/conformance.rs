//! Replays the RESP sessions captured from the reference binary
//! (Pogocache 1.3.1, in `tests/data/`) over real sockets and asserts
//! byte-exact replies.

mod common;

use common::*;
use pogocache_command::VERSION;

mod data {
    use super::{Session, Step};
    include!("data/conformance_resp.rs");
}

/// Puts our version where the capture had the reference's (`\0V\0`).
fn with_version(reply: &[u8]) -> Vec<u8> {
    match reply.windows(3).position(|w| w == b"\0V\0") {
        Some(i) => [&reply[..i], VERSION.as_bytes(), &reply[i + 3..]].concat(),
        None => reply.to_vec(),
    }
}

/// Commands Pogocache answered with `unknown command` that we implement
/// (issue 10: modern clients). Their captured steps are skipped here and
/// covered byte for byte by tests/clients.rs; docs/COMPATIBILITY.md lists
/// them.
const EXTENSIONS: [&[u8]; 7] = [
    b"HELLO", b"CLIENT", b"INFO", b"COMMAND", b"CONFIG", b"RESET", b"WAIT",
];

fn is_extension(send: &[u8]) -> bool {
    let mut parts = send.split(|&b| b == b'\n');
    let (Some(count), Some(_len), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let name = name.strip_suffix(b"\r").unwrap_or(name);
    count.starts_with(b"*") && EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(name))
}

#[test]
fn captured_resp_sessions() {
    let (main, main_addr) = start(config());
    let (auth, auth_addr) = start(pogocache_server::Config {
        auth: "secret".into(),
        ..config()
    });
    let mut steps = 0;
    let mut skipped = 0;
    for session in data::SESSIONS {
        let addr = if session.auth { auth_addr } else { main_addr };
        let mut conn = connect(addr);
        for step in session.steps {
            if is_extension(step.send) {
                skipped += 1;
                continue;
            }
            exchange(&mut conn, step.send, &with_version(step.reply));
            if step.closed {
                assert_closed(&mut conn);
            }
            steps += 1;
        }
    }
    assert!(steps > 200, "replayed {steps} steps");
    assert_eq!(skipped, 5, "captured steps of extension commands");
    main.shutdown().unwrap();
    auth.shutdown().unwrap();
}
