//! A replica's side of the replication stream (`Replication::replay`, the
//! code a replica's link runs on what its primary sends): any bytes are
//! applied as whole commands or refused as malformed, never a panic; what
//! was used is a prefix of the input, and the offset moves by exactly
//! that much.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pogocache_command::{Settings, Shared};
use pogocache_store::{Config, Store};

fuzz_target!(|data: &[u8]| {
    // A fresh server state per input (8 shards: cheap), dropped at the
    // end, so the leak checker sees every entry freed.
    let store = Store::new(Config {
        shards: 8,
        seed: Some(1),
        ..Config::default()
    });
    let sh = Shared::new(store, Settings::default(), 1);
    match sh.repl.replay(&sh, data) {
        Ok(used) => {
            assert!(used <= data.len());
            assert_eq!(sh.repl.offset(), used as u64);
        }
        Err(why) => assert!(!why.is_empty()),
    }
});
