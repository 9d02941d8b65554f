//! Memcache text parser: never panics, consumes no more than it was
//! given, a prefix of a complete request is Incomplete, and every key it
//! hands out is a valid memcache key (1-250 bytes, no spaces or controls).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pogocache_protocol::Limits;
use pogocache_protocol::memcache::{self, MAX_KEY, Parsed, Request};

fn valid_key(k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= MAX_KEY && k.iter().all(|&b| b > 0x20 && b != 0x7f)
}

fuzz_target!(|data: &[u8]| {
    let (n, req) = match memcache::parse(data, &Limits::DEFAULT) {
        Parsed::Complete(n, req) => (n, req),
        Parsed::Incomplete { need } => {
            assert!(need > data.len(), "need {need} of {}", data.len());
            return;
        }
        Parsed::Invalid(memcache::LineTooLong) => return,
    };
    assert!(n > 0 && n <= data.len());
    match req {
        Request::Get { keys, .. } | Request::Gat { keys, .. } => {
            assert!(keys.iter().all(valid_key), "{req:?}");
        }
        Request::Store { key, value, .. } => {
            assert!(valid_key(key));
            assert!(value.len() < n);
        }
        Request::Delete { key, .. } | Request::Incr { key, .. } | Request::Touch { key, .. } => {
            assert!(valid_key(key));
        }
        _ => {}
    }
    if n > 1 {
        let k = n - 1;
        match memcache::parse(&data[..k], &Limits::DEFAULT) {
            Parsed::Incomplete { .. } => {}
            other => panic!("prefix {k} of a {n}-byte request parsed as {other:?}"),
        }
    }
});
