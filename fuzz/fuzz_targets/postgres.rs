//! Postgres wire framing and the simple-query tokenizer: never panic,
//! frames stay inside the input, a prefix of a frame is Incomplete, and
//! tokenizing any text then building arguments never panics (with or
//! without parameters, whatever `$n` references the text holds).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pogocache_protocol::Limits;
use pogocache_protocol::postgres::{self, Frame, Framed};

fuzz_target!(|data: &[u8]| {
    match postgres::frame(data, &Limits::DEFAULT) {
        Framed::Complete(n, f) => {
            assert!(n >= 5 && n <= data.len());
            match f {
                Frame::Startup { payload, .. } => assert!(payload.len() < n),
                Frame::Message { body, .. } => assert!(body.len() < n),
            }
            let k = n - 1;
            assert!(
                matches!(
                    postgres::frame(&data[..k], &Limits::DEFAULT),
                    Framed::Incomplete { .. }
                ),
                "prefix {k} of a {n}-byte frame"
            );
        }
        Framed::Incomplete { need } => assert!(need > data.len()),
        Framed::Invalid(_) => {}
    }
    if let Ok(tokens) = postgres::tokenize(data) {
        let _ = postgres::build_args(&tokens, None);
        if let Ok(n) = postgres::param_count(&tokens) {
            let params: Vec<Vec<u8>> = (0..n.min(64)).map(|i| vec![b'p'; i]).collect();
            let _ = postgres::build_args(&tokens, Some(&params));
        }
    }
});
