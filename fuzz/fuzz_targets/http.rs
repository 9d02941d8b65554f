//! HTTP request parser: never panics, consumes no more than it was
//! given, the body is exactly inside the consumed bytes, and a prefix of a
//! complete request is Incomplete.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pogocache_protocol::Limits;
use pogocache_protocol::http::{self, Parsed};

fuzz_target!(|data: &[u8]| {
    let n = match http::parse(data, &Limits::DEFAULT) {
        Parsed::Complete(n, req) => {
            assert!(n > 0 && n <= data.len());
            assert!(req.body.len() <= n);
            assert!(!req.target.is_empty());
            n
        }
        Parsed::Incomplete { need } => {
            assert!(need > data.len(), "need {need} of {}", data.len());
            return;
        }
        Parsed::Invalid(r) => {
            let (code, _) = r.status();
            assert!((400..500).contains(&code));
            return;
        }
    };
    if n > 1 {
        let k = n - 1;
        match http::parse(&data[..k], &Limits::DEFAULT) {
            Parsed::Incomplete { .. } => {}
            Parsed::Complete(..) => panic!("prefix {k} of a {n}-byte request parsed as complete"),
            Parsed::Invalid(r) => panic!("prefix {k} of a {n}-byte request refused: {r:?}"),
        }
    }
});
