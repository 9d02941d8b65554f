//! Protocol sniffer: never panics, and once it decides, more bytes never
//! change the decision (a connection is sniffed once).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pogocache_protocol::sniff::{Sniff, sniff};

fuzz_target!(|data: &[u8]| {
    let split = data
        .first()
        .map(|&b| b as usize % (data.len() + 1))
        .unwrap_or(0);
    let (head, _) = data.split_at(split);
    if let Sniff::Decided(p) = sniff(head) {
        assert_eq!(
            sniff(data),
            Sniff::Decided(p),
            "decision changed with more input"
        );
    }
});
