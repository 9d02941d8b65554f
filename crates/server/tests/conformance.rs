//! Replays the captured RESP sessions of the reference binary (spec
//! `conformance.md`) over real sockets and asserts byte-exact replies.

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

#[test]
fn captured_resp_sessions() {
    let (main, main_addr) = start(config());
    let (auth, auth_addr) = start(pogocache_server::Config {
        auth: "secret".into(),
        ..config()
    });
    let mut steps = 0;
    for session in data::SESSIONS {
        let addr = if session.auth { auth_addr } else { main_addr };
        let mut conn = connect(addr);
        for step in session.steps {
            exchange(&mut conn, step.send, &with_version(step.reply));
            if step.closed {
                assert_closed(&mut conn);
            }
            steps += 1;
        }
    }
    assert!(steps > 200, "replayed {steps} steps");
    main.shutdown();
    auth.shutdown();
}
