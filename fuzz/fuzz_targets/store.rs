//! The store against a model: a HashMap of key → (value, expiry, flags),
//! driven by an op sequence decoded from the input (set with NX/XX/TTL/
//! KEEPTTL/flags, get, delete, expire/persist, append/prepend, read-modify-
//! write, time steps that land exactly on expiry boundaries, sweep, a
//! full SCAN, and an insert under low memory or a tight byte budget).
//! Every result must match the model. Those inserts evict entries the
//! model cannot predict (reads and their hit marks steer it; packed, the
//! compactor evicts from an old segment, on that write or, what it still
//! owes, on a later one): after every op the model drops whatever the
//! store lost, which must be exactly the live keys counted as evicted, and
//! never the key just written (unpacked under low memory: one live key at
//! most, none when a dead entry was taken or a replacement did not grow).
//! Reads go through the CAS path half the time, which rebuilds
//! an entry without a token and must keep its hit mark. Keys and values
//! sometimes cross the entry layout's boundaries (keys of 255 bytes and
//! more, values of 64 KiB and more) and the allocator choices (around
//! 128 bytes, and 256 KiB, where entries get a mapping of their own).
//! The input's length picks the entry placement: allocations of their
//! own, packed into 1 KiB segments (which seal, compact and go back within
//! a few writes, so moves race nothing but the ops themselves) or packed
//! as the server does. Sweeps are followed by a compaction step, as the
//! server's timer runs one. At the end a clear must leave no segment behind,
//! and dropping the store checks (under debug assertions) that every
//! segment came back empty.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use pogocache_store::{
    Cond, Config, Expiry, SegmentStats, SetOptions, SetOutcome, Side, Store,
};

/// value, expires (0 = never), flags. Values are shared (`Rc`) so that
/// taking the current state of a key before each op copies no bytes: with
/// 1 MiB values about, copying it made the target five times slower.
type Model = HashMap<Vec<u8>, (Rc<Vec<u8>>, i64, u32)>;

fn live(m: &Model, k: &[u8], now: i64) -> Option<(Rc<Vec<u8>>, i64, u32)> {
    m.get(k).filter(|e| e.1 == 0 || e.1 > now).cloned()
}

fuzz_target!(|data: &[u8]| {
    let packing = [0, 1024, 16 << 20][data.len() % 3];
    let store = Store::new(Config {
        shards: 2,
        segment_bytes: packing,
        ..Config::default()
    });
    let mut evictions = 0;
    let mut model: Model = HashMap::new();
    let mut now: i64 = 1_000_000;
    let mut it = data.iter().copied();
    let mut scratch = Vec::new();
    while let (Some(op), Some(kb)) = (it.next(), it.next()) {
        // Three keys in 24 are long, on either side of the one-byte key
        // length (a key's length never changes, so the model stays a map).
        let mut key = format!("k{}", kb % 24).into_bytes();
        match kb % 24 {
            21 => key.resize(254, b'L'),
            22 => key.resize(255, b'L'),
            23 => key.resize(300, b'L'),
            _ => {}
        }
        let arg = it.next().unwrap_or(0);
        let cur = live(&model, &key, now);
        match op % 10 {
            0 => {
                // Mostly short values; now and then one that crosses a
                // length-field or allocator boundary.
                let len = match (arg % 64, it.next().unwrap_or(0) % 32) {
                    // Either side of entry.rs's MMAP_MIN (256 KiB).
                    (63, 0) => (256 << 10) - 40,
                    (63, 1) => 256 << 10,
                    (63, 2) => 0xFFFF,
                    (63, 3) => 0x1_0000,
                    (63, n) => 100 + n as usize * 4,
                    _ => (arg % 40) as usize,
                };
                let value = vec![b'a' + arg % 26; len];
                let expiry = match arg % 4 {
                    0 => Expiry::Never,
                    1 => Expiry::At(now + (arg as i64 % 5)),
                    2 => Expiry::Keep,
                    _ => Expiry::At(now + 3),
                };
                let cond = match (arg >> 2) % 3 {
                    0 => Cond::Always,
                    1 => Cond::Nx,
                    _ => Cond::Xx,
                };
                let flags = (arg >> 4) as u32;
                let opts = SetOptions {
                    expiry,
                    flags,
                    cond,
                    cas: None,
                };
                let got = store.set(&key, &value, &opts, now).unwrap();
                let allowed = match cond {
                    Cond::Always => true,
                    Cond::Nx => cur.is_none(),
                    Cond::Xx => cur.is_some(),
                };
                if allowed {
                    assert_eq!(
                        got,
                        SetOutcome::Stored {
                            replaced: cur.is_some()
                        }
                    );
                    let exp = match expiry {
                        Expiry::Never => 0,
                        Expiry::At(t) => t,
                        Expiry::Keep => cur.as_ref().map(|c| c.1).unwrap_or(0),
                    };
                    model.insert(key, (Rc::new(value), exp, flags));
                } else {
                    assert_eq!(
                        got,
                        SetOutcome::NotStored {
                            existed: cur.is_some()
                        }
                    );
                }
            }
            1 => {
                // Compared inside the closure: copying out a value of
                // 256 KiB on every read made the target slow.
                let want = cur.as_ref().map(|c| (&c.0[..], c.1, c.2));
                let check = |e: Option<pogocache_store::EntryRef<'_>>| match (e, want) {
                    (None, None) => true,
                    (Some(e), Some(w)) => (e.value(), e.expires().unwrap_or(0), e.flags()) == w,
                    _ => false,
                };
                let same = if arg & 1 == 0 {
                    store.get(&key, now, check)
                } else {
                    store.get_cas(&key, now, arg & 2 == 0, check)
                };
                if !same {
                    let got = store.peek(&key, now, |e| {
                        e.map(|e| (e.value().to_vec(), e.expires().unwrap_or(0), e.flags()))
                    });
                    panic!("get {key:?} at {now}: got {got:?}, want {want:?}");
                }
            }
            2 => {
                assert_eq!(store.delete(&key, now), cur.is_some());
                model.remove(&key);
            }
            3 => {
                let t = (arg % 3 != 0).then(|| now + (arg as i64 % 4));
                assert_eq!(store.expire(&key, t, now), cur.is_some());
                if let Some(mut c) = cur {
                    c.1 = t.unwrap_or(0);
                    model.insert(key, c);
                }
            }
            4 => {
                let add = vec![b'+'; (arg % 5) as usize];
                let side = if arg & 1 == 0 {
                    Side::Append
                } else {
                    Side::Prepend
                };
                let create = arg & 2 == 0;
                let got = store.append(&key, &add, side, create, now).unwrap();
                match cur {
                    None if !create => assert_eq!(got, None),
                    None => {
                        assert_eq!(got, Some(add.len()));
                        model.insert(key, (Rc::new(add), 0, 0));
                    }
                    Some((v, e, f)) => {
                        let nv = if side == Side::Append {
                            [&v[..], &add[..]].concat()
                        } else {
                            [&add[..], &v[..]].concat()
                        };
                        assert_eq!(got, Some(nv.len()));
                        model.insert(key, (Rc::new(nv), e, f));
                    }
                }
            }
            5 => {
                let got = store
                    .update(&key, now, &mut scratch, |old, out| {
                        out.extend_from_slice(old.unwrap_or(b""));
                        out.push(b'x');
                        Ok::<_, ()>((old.map(|o| o.len()), true))
                    })
                    .unwrap();
                assert_eq!(got, cur.as_ref().map(|c| c.0.len()));
                let (v, e, f) = cur.unwrap_or_default();
                let mut nv = Vec::with_capacity(v.len() + 1);
                nv.extend_from_slice(&v);
                nv.push(b'x');
                model.insert(key, (Rc::new(nv), e, f));
            }
            6 => now += (arg % 4) as i64,
            7 => {
                store.sweep(now);
                model.retain(|_, e| e.1 == 0 || e.1 > now);
                assert_eq!(store.len(), model.len());
                // What the server's timer does after: compact the holes
                // the sweep (or anything before it) left, a step at most.
                store.compact(64 + arg as usize * 16, now);
            }
            8 => {
                // Under low memory a new key evicts: the hit marks and
                // last-access times the other ops left decide which.
                // Whatever goes, the rest must stay intact (checked after
                // every op, below).
                // A third of the time a byte budget just under what the
                // store holds makes the room instead (the eviction walks'
                // path, packed; several victims may go).
                let before = store.evictions();
                let budget = arg % 3 == 2;
                if budget {
                    let max = store.bytes().saturating_sub(arg as usize * 4).max(4096);
                    store.set_max_bytes(Some(max));
                } else {
                    store.set_low_memory(true);
                }
                let value = vec![b'e'; (arg % 40) as usize];
                let got = store
                    .set(&key, &value, &SetOptions::default(), now)
                    .unwrap();
                store.set_low_memory(false);
                store.set_max_bytes(None);
                assert_eq!(
                    got,
                    SetOutcome::Stored {
                        replaced: cur.is_some()
                    }
                );
                assert!(store.peek(&key, now, |e| e.is_some()), "the new key was evicted");
                let evicted = store.evictions() - before;
                if packing == 0 && !budget {
                    // One victim per write at most; a replacement that does
                    // not grow the entry (this one has no optional fields)
                    // takes none. (Packed, the compactor evicts at least
                    // the bytes written from the oldest segment, so a write
                    // may take several small entries, or none when the
                    // last eviction freed more than it owed.)
                    assert!(evicted <= 1);
                    if cur.as_ref().is_some_and(|c| value.len() <= c.0.len()) {
                        assert_eq!(evicted, 0, "a replacement that does not grow evicted");
                    }
                }
                model.insert(key.clone(), (Rc::new(value), 0, 0));
            }
            _ => {
                let mut seen = HashSet::new();
                let mut cursor = 0;
                loop {
                    // SCAN may repeat a key (removing a dead entry shifts
                    // its probe run), never miss one.
                    cursor = store.scan(cursor, 1 + arg as usize % 5, now, |k| {
                        seen.insert(k.to_vec());
                        true
                    });
                    if cursor == 0 {
                        break;
                    }
                }
                let want: HashSet<Vec<u8>> = model
                    .iter()
                    .filter(|(_, e)| e.1 == 0 || e.1 > now)
                    .map(|(k, _)| k.clone())
                    .collect();
                assert_eq!(seen, want);
            }
        }
        // Evictions (op 8's, or the compactor paying what op 8 left owed
        // on a later write): exactly the live keys counted went, and no
        // other changed.
        let evicted = store.evictions() - evictions;
        evictions = store.evictions();
        if evicted > 0 {
            let gone: Vec<Vec<u8>> = model
                .keys()
                .filter(|k| !store.peek(k, now, |e| e.is_some()))
                .cloned()
                .collect();
            let live_gone = gone
                .iter()
                .filter(|k| live(&model, k, now).is_some())
                .count() as u64;
            assert_eq!(live_gone, evicted, "evicted {gone:?}");
            for k in gone {
                model.remove(&k);
            }
        }
    }
    store.clear();
    if let Some(stats) = store.segment_stats() {
        assert_eq!(stats, SegmentStats::default(), "segments left after a clear");
    }
});
