//! Store operation benchmarks (criterion): single-threaded cost of the
//! hot operations against a store with 100k resident keys (random keys,
//! so most hits miss the CPU caches, as in a server).
//!
//! Results (`cargo bench -p pogocache-store`; 2 vCPU Intel Xeon VM, Rust 1.95, 2026-11-25, means):
//!
//! | bench               | time/op  | ops/s   |
//! |---------------------|---------:|--------:|
//! | get_hit_copy_100B   | 135.5 ns |  7.4 M  |
//! | get_miss            |  11.6 ns | 86.5 M  |
//! | set_replace_100B    | 271.1 ns |  3.7 M  |
//! | set_new_then_delete |  57.6 ns | 17.4 M  |

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pogocache_store::{Config, SetOptions, Store};
use std::hint::black_box;

const N: u64 = 100_000;

fn keys() -> Vec<Vec<u8>> {
    (0..N).map(|i| format!("key:{i:08}").into_bytes()).collect()
}

fn bench(c: &mut Criterion) {
    let store = Store::new(Config::default());
    let keys = keys();
    let value = [7u8; 100];
    let now = 1_000_000_000;
    for k in &keys {
        store.set(k, &value, &SetOptions::default(), now).unwrap();
    }
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("get_hit_copy_100B", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            i = (i + 7919) % keys.len();
            out.clear();
            store.get(&keys[i], now, |e| out.extend_from_slice(e.unwrap().value()));
            black_box(&out);
        })
    });
    g.bench_function("get_miss", |b| {
        b.iter(|| black_box(store.get(b"missing-key", now, |e| e.is_some())))
    });
    g.bench_function("set_replace_100B", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            store
                .set(&keys[i], &value, &SetOptions::default(), now)
                .unwrap()
        })
    });
    g.bench_function("set_new_then_delete", |b| {
        b.iter(|| {
            store
                .set(b"fresh-key", &value, &SetOptions::default(), now)
                .unwrap();
            store.delete(b"fresh-key", now)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
