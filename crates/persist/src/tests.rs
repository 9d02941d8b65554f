//! Snapshot tests: byte compatibility with Pogocache's format (the documented
//! worked example), round trips, expiry on load, corruption and
//! truncation in both recovery modes, and work-file hygiene.

use super::*;
use pogocache_store::Config;

fn store() -> Store {
    Store::new(Config {
        shards: 8,
        seed: Some(1),
        ..Config::default()
    })
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pogocache-persist-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn get(st: &Store, k: &[u8]) -> Option<(Vec<u8>, u32)> {
    st.get(k, clock::monotonic_ns(), |e| {
        e.map(|e| (e.value().to_vec(), e.flags()))
    })
}

const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/pogocache-set-a-b.pogo");

#[test]
fn encoder_reproduces_the_spec_example_byte_for_byte() {
    let mut payload = Vec::new();
    begin_payload(&mut payload, 1_795_550_050_008_884_228);
    encode_record(&mut payload, b"a", b"b", 0, 0, 0);
    let mut block = Vec::new();
    encode_block(&payload, &mut block);
    assert_eq!(block, FIXTURE);
}

#[test]
fn pogocache_fixture_loads() {
    let d = tmpdir("fixture");
    let p = d.join("snap.db");
    fs::write(&p, FIXTURE).unwrap();
    let st = store();
    let (stats, skipped) = load(&st, &p, Recovery::Strict, |_| {}).unwrap();
    assert_eq!((stats.entries, stats.expired, skipped.len()), (1, 0, 0));
    assert_eq!(get(&st, b"a"), Some((b"b".to_vec(), 0)));
    // An empty file is an empty snapshot.
    fs::write(&p, b"").unwrap();
    assert_eq!(
        load(&st, &p, Recovery::Strict, |_| {}).unwrap().0.entries,
        0
    );
}

#[test]
fn round_trip_keeps_values_flags_and_ttls() {
    let d = tmpdir("roundtrip");
    let p = d.join("snap.db");
    let a = store();
    let now = clock::monotonic_ns();
    for i in 0..1000u32 {
        let opts = SetOptions {
            flags: i,
            expiry: if i % 2 == 0 {
                Expiry::At(now + 100_000_000_000)
            } else {
                Expiry::Never
            },
            ..Default::default()
        };
        a.set(
            format!("k{i}").as_bytes(),
            &i.to_le_bytes().repeat(i as usize % 50),
            &opts,
            now,
        )
        .unwrap();
    }
    a.set(b"bin\x00\xff", b"\x00\xff\r\n", &SetOptions::default(), now)
        .unwrap();
    let saved = save(&a, &p).unwrap();
    assert_eq!(saved.entries, 1001);
    let mode = fs::metadata(&p).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let b = store();
    let (st, _) = load(&b, &p, Recovery::Strict, |_| {}).unwrap();
    assert_eq!(st.entries, 1001);
    for i in (0..1000u32).step_by(37) {
        let k = format!("k{i}");
        assert_eq!(
            get(&b, k.as_bytes()),
            Some((i.to_le_bytes().repeat(i as usize % 50), i))
        );
        let ttl = b.ttl_ns(k.as_bytes(), clock::monotonic_ns()).unwrap();
        if i % 2 == 0 {
            let left = ttl.unwrap();
            assert!(
                (90_000_000_000..=100_000_000_000).contains(&left),
                "ttl {left}"
            );
        } else {
            assert_eq!(ttl, None);
        }
    }
    assert_eq!(get(&b, b"bin\x00\xff"), Some((b"\x00\xff\r\n".to_vec(), 0)));
    // No work files are left behind.
    assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
}

#[test]
fn records_that_expired_while_saved_are_not_resurrected() {
    let d = tmpdir("expired");
    let p = d.join("snap.db");
    let mut payload = Vec::new();
    begin_payload(&mut payload, clock::wall_ns() - 10_000_000_000);
    encode_record(&mut payload, b"old", b"x", 5_000_000_000, 0, 0);
    encode_record(&mut payload, b"exact", b"x", 10_000_000_000, 0, 0);
    encode_record(&mut payload, b"live", b"y", 60_000_000_000, 3, 0);
    let mut file = Vec::new();
    encode_block(&payload, &mut file);
    fs::write(&p, &file).unwrap();
    let st = store();
    let (stats, _) = load(&st, &p, Recovery::Strict, |_| {}).unwrap();
    assert_eq!((stats.entries, stats.expired), (1, 2));
    assert_eq!(get(&st, b"live"), Some((b"y".to_vec(), 3)));
}

fn two_block_file() -> Vec<u8> {
    let mut file = Vec::new();
    for (k, v) in [(b"k1", b"v1"), (b"k2", b"v2")] {
        let mut payload = Vec::new();
        begin_payload(&mut payload, clock::wall_ns());
        encode_record(&mut payload, k, v, 0, 0, 0);
        encode_block(&payload, &mut file);
    }
    file
}

#[test]
fn corrupted_byte_is_reported_with_its_offset() {
    let d = tmpdir("corrupt");
    let p = d.join("snap.db");
    let mut file = two_block_file();
    let first_len = file.len() / 2;
    file[20] ^= 0xff; // inside the first block's payload
    fs::write(&p, &file).unwrap();
    let e = load(&store(), &p, Recovery::Strict, |_| {}).unwrap_err();
    assert_eq!(e.offset, 0);
    assert!(matches!(e.kind, LoadErrorKind::BadCrc { .. }));
    assert!(
        e.to_string().contains("snap.db: at offset 0: bad crc"),
        "{e}"
    );
    // Skip mode keeps the good block.
    let st = store();
    let (stats, skipped) = load(&st, &p, Recovery::Skip, |_| {}).unwrap();
    assert_eq!(
        (stats.entries, stats.skipped_blocks, skipped.len()),
        (1, 1, 1)
    );
    assert_eq!(get(&st, b"k2"), Some((b"v2".to_vec(), 0)));
    // A damaged header is skipped by resynchronising on the next block.
    let mut file = two_block_file();
    file[0] = b'X';
    fs::write(&p, &file).unwrap();
    let e = load(&store(), &p, Recovery::Strict, |_| {}).unwrap_err();
    assert!(matches!(e.kind, LoadErrorKind::MissingMagic));
    let st = store();
    let (stats, _) = load(&st, &p, Recovery::Skip, |_| {}).unwrap();
    assert_eq!(stats.entries, 1);
    assert_eq!(get(&st, b"k2"), Some((b"v2".to_vec(), 0)));
    assert_eq!(first_len * 2, file.len());
}

#[test]
fn truncated_file_is_detected() {
    let d = tmpdir("truncated");
    let p = d.join("snap.db");
    let file = two_block_file();
    for cut in [file.len() - 3, file.len() / 2 + 10] {
        fs::write(&p, &file[..cut]).unwrap();
        let e = load(&store(), &p, Recovery::Strict, |_| {}).unwrap_err();
        assert_eq!(e.offset, (file.len() / 2) as u64);
        assert!(
            matches!(
                e.kind,
                LoadErrorKind::ShortRead | LoadErrorKind::BadHeadSize
            ),
            "{e}"
        );
        let st = store();
        let (stats, skipped) = load(&st, &p, Recovery::Skip, |_| {}).unwrap();
        assert_eq!((stats.entries, skipped.len()), (1, 1));
    }
}

#[test]
fn only_our_own_stale_work_files_are_removed() {
    let d = tmpdir("work");
    let p = d.join("snap.db");
    fs::write(d.join("snap.db.0123abcd.pogocache.work"), b"x").unwrap();
    fs::write(d.join("other.db.0123abcd.pogocache.work"), b"x").unwrap();
    fs::write(d.join("snap.db.keep"), b"x").unwrap();
    let removed = remove_stale_work_files(&p).unwrap();
    assert_eq!(removed, vec![d.join("snap.db.0123abcd.pogocache.work")]);
    assert!(d.join("other.db.0123abcd.pogocache.work").exists());
}

#[test]
fn big_shards_split_into_several_blocks() {
    let d = tmpdir("split");
    let p = d.join("snap.db");
    let st = Store::new(Config {
        shards: 1,
        ..Config::default()
    });
    let v = vec![7u8; 100_000];
    for i in 0..100u32 {
        st.set(
            &i.to_le_bytes(),
            &v,
            &SetOptions::default(),
            clock::monotonic_ns(),
        )
        .unwrap();
    }
    save(&st, &p).unwrap();
    let data = fs::read(&p).unwrap();
    let blocks = data.windows(4).filter(|w| w == MAGIC).count();
    assert!(blocks >= 2, "{blocks} blocks");
    let b = Store::new(Config {
        shards: 4,
        ..Config::default()
    });
    assert_eq!(
        load(&b, &p, Recovery::Strict, |_| {}).unwrap().0.entries,
        100
    );
}

#[test]
fn varints_round_trip_and_reject_overlong() {
    let mut out = Vec::new();
    for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
        out.clear();
        put_varint(&mut out, v);
        let mut pos = 0;
        assert_eq!(get_varint(&out, &mut pos), Some(v));
        assert_eq!(pos, out.len());
    }
    let mut pos = 0;
    assert_eq!(get_varint(&[0xff; 11], &mut pos), None);
}
