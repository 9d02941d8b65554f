//! A replica's side of the replication stream (`Replication::replay`, the
//! code a replica's link runs on what its primary sends): any bytes are
//! applied as whole commands or refused as malformed, never a panic; what
//! was used is a prefix of the input, and the offset moves by exactly
//! that much.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pogocache_command::{Settings, Shared};
use pogocache_store::{Config, Store};

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let store = Store::new(Config {
            shards: 8,
            seed: Some(1),
            ..Config::default()
        });
        Shared::new(store, Settings::default(), 1)
    })
}

fuzz_target!(|data: &[u8]| {
    let sh = shared();
    let before = sh.repl.offset();
    match sh.repl.replay(sh, data) {
        Ok(used) => {
            assert!(used <= data.len());
            assert_eq!(sh.repl.offset(), before + used as u64);
        }
        Err(why) => assert!(!why.is_empty()),
    }
    if sh.store.len() > 10_000 {
        sh.store.clear();
    }
});
