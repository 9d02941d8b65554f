//! A short soak (the long one is `scripts/soak.sh`): a mixed, pipelined
//! workload several times larger than `--maxmemory`, with churn and
//! expiring keys, from several clients at once. RSS must stay within the
//! limit plus 10%, no request may fail, and the counters must add up:
//! STATS against what the clients sent and saw, and the store's entry
//! count against inserts, evictions and expirations.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use common::{config, connect, rss, rss_bounds_apply, start};
use pogocache_server::Config;

const LIMIT: u64 = 128 << 20;
const CLIENTS: usize = 4;
const BATCHES: usize = 1500;
const PIPELINE: usize = 64;

#[derive(Default)]
struct Tally {
    sets: usize,
    gets: usize,
    hits: usize,
}

/// Reads one RESP reply from `buf[*pos..]`, refilling from `s`; returns
/// whether it was a hit (bulk) for GETs. Panics on an error reply.
fn reply(s: &mut std::net::TcpStream, buf: &mut Vec<u8>, pos: &mut usize) -> Option<bool> {
    loop {
        let data = &buf[*pos..];
        if let Some(nl) = data.windows(2).position(|w| w == b"\r\n") {
            let line = &data[..nl];
            match line.first() {
                Some(b'+') => {
                    assert_eq!(line, b"+OK");
                    *pos += nl + 2;
                    return Some(false);
                }
                Some(b'$') if line == b"$-1" => {
                    *pos += nl + 2;
                    return Some(false);
                }
                Some(b'$') => {
                    let n: usize = std::str::from_utf8(&line[1..]).unwrap().parse().unwrap();
                    if data.len() >= nl + 2 + n + 2 {
                        *pos += nl + 2 + n + 2;
                        return Some(true);
                    }
                }
                _ => panic!("unexpected reply {:?}", String::from_utf8_lossy(line)),
            }
        }
        if *pos > 0 {
            buf.drain(..*pos);
            *pos = 0;
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn mixed_churn_at_maxmemory_stays_bounded_and_counts_add_up() {
    let (srv, addr) = start(Config {
        maxmemory: Some(LIMIT),
        threads: 2,
        // The entry-count identity below is exact only on a quiet store: a
        // background sweep between reading the count and the counters would
        // skew it. Expired keys are still removed (lazily, and on eviction).
        autosweep: false,
        ..config()
    });
    let peak = Arc::new(AtomicUsize::new(rss()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let peak = peak.clone();
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let value = vec![b'v'; 1024];
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1);
                let mut t = Tally::default();
                let (mut buf, mut pos) = (Vec::new(), 0);
                for _ in 0..BATCHES {
                    let mut req = Vec::new();
                    let mut kinds = Vec::with_capacity(PIPELINE);
                    for _ in 0..PIPELINE {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let key = format!("soak:{}", rng % 2_000_000);
                        if rng % 10 < 6 {
                            // A fifth of the writes expire within 0.1-1 s.
                            if rng.is_multiple_of(5) {
                                let px = format!("{}", 100 + rng % 900);
                                req.extend_from_slice(&common::cmd(&[
                                    b"SET",
                                    key.as_bytes(),
                                    &value,
                                    b"PX",
                                    px.as_bytes(),
                                ]));
                            } else {
                                req.extend_from_slice(&common::cmd(&[
                                    b"SET",
                                    key.as_bytes(),
                                    &value,
                                ]));
                            }
                            t.sets += 1;
                            kinds.push(true);
                        } else {
                            req.extend_from_slice(&common::cmd(&[b"GET", key.as_bytes()]));
                            t.gets += 1;
                            kinds.push(false);
                        }
                    }
                    s.write_all(&req).unwrap();
                    for set in kinds {
                        let hit = reply(&mut s, &mut buf, &mut pos).unwrap();
                        if !set && hit {
                            t.hits += 1;
                        }
                    }
                    peak.fetch_max(rss(), Relaxed);
                }
                t
            })
        })
        .collect();
    let mut total = Tally::default();
    for c in clients {
        let t = c.join().unwrap();
        total.sets += t.sets;
        total.gets += t.gets;
        total.hits += t.hits;
    }
    let peak = peak.load(Relaxed) as u64;
    eprintln!("peak RSS {} MiB, limit {} MiB", peak >> 20, LIMIT >> 20);
    assert!(
        !rss_bounds_apply() || peak <= LIMIT + LIMIT / 10,
        "RSS peaked at {} MiB with a {} MiB limit",
        peak >> 20,
        LIMIT >> 20
    );
    // The workload wrote ~4x the limit: eviction must have happened.
    let store = &srv.shared().store;
    assert!(store.evictions() > 0, "no evictions");
    assert!(store.expirations() > 0, "no expired keys removed");

    // STATS (memcache protocol) against what the clients did.
    let mut m = connect(addr);
    m.write_all(b"stats\r\n").unwrap();
    let mut text = Vec::new();
    while !text.ends_with(b"END\r\n") {
        let mut b = [0u8; 4096];
        let n = m.read(&mut b).unwrap();
        assert!(n > 0);
        text.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8(text).unwrap();
    let stat = |name: &str| -> usize {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(stat("cmd_set"), total.sets);
    assert_eq!(stat("cmd_get"), total.gets);
    assert_eq!(stat("get_hits"), total.hits);
    assert_eq!(stat("get_misses"), total.gets - total.hits);
    assert_eq!(stat("store_no_memory"), 0);
    // Entries: every insert is still there, or was evicted or expired.
    assert_eq!(
        store.len() as u64,
        store.total_inserts() - store.evictions() - store.expirations()
    );
    srv.shutdown().unwrap();
}
