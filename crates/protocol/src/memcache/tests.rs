use super::*;

fn parse(input: &[u8]) -> Parsed<'_> {
    super::parse(input, &Limits::DEFAULT)
}

fn one(input: &[u8]) -> (usize, Request<'_>) {
    match parse(input) {
        Parsed::Complete(n, r) => (n, r),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

#[test]
fn storage_basic_noreply_and_exact_consumption() {
    let input = b"set k 5 0 3\r\nabc\r\nget k\r\n";
    let (n, r) = one(input);
    assert_eq!(n, 18);
    assert_eq!(
        r,
        Request::Store {
            verb: StoreVerb::Set,
            key: b"k",
            flags: 5,
            exptime: 0,
            value: b"abc",
            cas: 0,
            noreply: false
        }
    );
    let (n2, r2) = one(&input[n..]);
    assert_eq!(n2, 7);
    assert!(matches!(r2, Request::Get { cas: false, .. }));
    let (_, r) = one(b"set k 0 0 1 noreply\r\nx\r\n");
    assert!(matches!(
        r,
        Request::Store {
            noreply: true,
            value: b"x",
            ..
        }
    ));
    let (_, r) = one(b"cas k 0 0 1 77\r\nx\r\n");
    assert!(matches!(
        r,
        Request::Store {
            verb: StoreVerb::Cas,
            cas: 77,
            ..
        }
    ));
    // Data may contain CR LF; a bare LF ends the line.
    let (n, r) = one(b"set m9 0 0 4\na\r\nb\r\n");
    assert_eq!(n, 19);
    assert!(matches!(
        r,
        Request::Store {
            value: b"a\r\nb",
            ..
        }
    ));
    // Flags are reduced modulo 2^32.
    assert!(matches!(
        one(b"set k 4294967296 0 1\r\na\r\n").1,
        Request::Store { flags: 0, .. }
    ));
}

#[test]
fn incomplete_until_line_and_data_arrive() {
    let input = b"set k 0 0 5\r\nhello\r\n";
    for cut in 1..input.len() {
        match parse(&input[..cut]) {
            Parsed::Incomplete { need } => assert!(need > cut),
            other => panic!("cut {cut}: {other:?}"),
        }
    }
    assert!(matches!(parse(input), Parsed::Complete(20, _)));
}

#[test]
fn error_lines_from_the_spec() {
    use super::Error as E;
    use super::Error::{
        BadChunk, BadDelay, BadDelta, BadExptime, BadFormat, BadInteger, Syntax, TooLarge,
    };
    let cases: &[(&[u8], E, usize)] = &[
        (b"set m5 0 0 3\r\nabcd\r\n", BadChunk, 19),
        (b"set m6 0 0 -1\r\n", BadFormat, 15),
        (b"set m6 0 0 x\r\n", BadFormat, 14),
        (b"set m6 x 0 1\r\na\r\n", BadFormat, 14),
        (b"set m6 -1 0 1\r\na\r\n", BadFormat, 15),
        (b"set m6 0 x 1\r\na\r\n", BadFormat, 14),
        (b"set m6 0 0\r\n", BadFormat, 12),
        (b"set m6 0 0 536870913\r\n", TooLarge, 22),
        (b"set n\x01x 0 0 1\r\na\r\n", BadFormat, 15),
        (b"set m9 0 0 1\ra\r\n", BadFormat, 16),
        (b"set n1 0 0 1 2 3\r\nZ\r\n", E::Error, 18),
        (b"cas m7 0 0 1 x\r\nq\r\n", BadFormat, 16),
        (b"get\r\n", E::Error, 5),
        (b"gets\r\n", E::Error, 6),
        (b"get  m7\r\n", BadFormat, 9),
        (b"delete m1 1\r\n", BadFormat, 13),
        (b"delete\r\n", E::Error, 8),
        (b"incr cnt x\r\n", BadDelta, 12),
        (b"incr cnt -1\r\n", BadDelta, 13),
        (b"incr\r\n", E::Error, 6),
        (b"touch m7\r\n", E::Error, 10),
        (b"touch m7 x\r\n", BadInteger, 12),
        (b"gat 100\r\n", E::Error, 9),
        (b"gat x k\r\n", BadExptime, 9),
        (b"flush_all x\r\n", BadDelay, 13),
        (b"flush_all -1\r\n", BadDelay, 14),
        (b"flush_all 1 2\r\n", E::Error, 15),
        (b"verbosity 1 2\r\n", E::Error, 15),
        (b"stats items\r\n", Syntax, 13),
        (b"foo\r\n", E::Error, 5),
        (b"GET m2\r\n", E::Error, 8),
        (b"\r\n", E::Error, 2),
    ];
    for (input, want, consumed) in cases {
        assert_eq!(
            parse(input),
            Parsed::Complete(*consumed, Request::Invalid(*want)),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    let long_key = [b"set ".as_slice(), &[b'k'; 251], b" 0 0 1\r\na\r\n"].concat();
    assert!(matches!(
        parse(&long_key),
        Parsed::Complete(_, Request::Invalid(BadFormat))
    ));
}

#[test]
fn keys_and_other_verbs() {
    let (_, r) = one(b"get m1 m2 nokey m7 \r\n");
    let Request::Get { keys, .. } = r else {
        panic!()
    };
    assert_eq!(
        keys.iter().collect::<Vec<_>>(),
        vec![&b"m1"[..], b"m2", b"nokey", b"m7"]
    );
    let (_, r) = one(b"gats 100 a b\r\n");
    let Request::Gat {
        exptime: 100,
        keys,
        cas: true,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(keys.iter().count(), 2);
    assert!(matches!(one(b"get n\xffx\r\n").1, Request::Get { .. }));
    assert_eq!(
        one(b"delete m1 0 noreply\r\n").1,
        Request::Delete {
            key: b"m1",
            noreply: true
        }
    );
    assert_eq!(
        one(b"incr c 10\r\n").1,
        Request::Incr {
            key: b"c",
            delta: 10,
            decr: false,
            noreply: false
        }
    );
    assert_eq!(
        one(b"decr c 1 noreply\r\n").1,
        Request::Incr {
            key: b"c",
            delta: 1,
            decr: true,
            noreply: true
        }
    );
    assert_eq!(
        one(b"touch k 0\r\n").1,
        Request::Touch {
            key: b"k",
            exptime: 0,
            noreply: false
        }
    );
    assert_eq!(
        one(b"flush_all 5 noreply\r\n").1,
        Request::FlushAll {
            delay: 5,
            noreply: true
        }
    );
    assert_eq!(one(b"stats\r\n").1, Request::Stats);
    assert_eq!(one(b"version extra\r\n").1, Request::Version);
    assert_eq!(
        one(b"verbosity 1\r\n").1,
        Request::Verbosity { noreply: false }
    );
    assert_eq!(one(b"quit\r\n").1, Request::Quit);
    assert!(matches!(
        one(b"set k 0 00 1\r\na\r\n").1,
        Request::Store { exptime: 0, .. }
    ));
}

#[test]
fn endless_line_is_refused() {
    assert_eq!(
        parse(&vec![b'a'; Limits::DEFAULT.max_line + 1]),
        Parsed::Invalid(LineTooLong)
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics_and_never_overclaims(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Parsed::Complete(n, r) = parse(&input) {
                prop_assert!(n <= input.len() && n > 0);
                if let Request::Store { key, .. } = r { prop_assert!(valid_key(key)); }
                if let Request::Get { keys, .. } = r { for k in keys.iter() { prop_assert!(valid_key(k)); } }
            }
        }
    }
}

/// The word-at-a-time tokenizer against the obvious byte loop: the same
/// tokens, the same count and the same verdict on control bytes, for
/// lines of every length around the 8-byte word boundaries, made of
/// spaces, key bytes, control bytes, DEL and high bytes.
mod word_scan {
    use proptest::prelude::*;

    fn reference(line: &[u8]) -> (Vec<&[u8]>, bool) {
        let line = line.strip_suffix(b" ").unwrap_or(line);
        if line.is_empty() {
            return (Vec::new(), true);
        }
        let clean = line.iter().all(|&b| b >= 0x20 && b != 0x7f);
        (line.split(|&b| b == b' ').collect(), clean)
    }

    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => Just(b' '),
            8 => b'a'..=b'z',
            1 => 0u8..0x20,
            1 => Just(0x7fu8),
            1 => 0x80u8..=0xff,
            1 => Just(0x20u8 + 1),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn tokens_match_the_byte_loop(line in proptest::collection::vec(byte(), 0..40)) {
            let mut t: [&[u8]; 8] = [&[]; 8];
            let (n, clean) = super::tokens(&line, &mut t);
            let (want, want_clean) = reference(&line);
            prop_assert_eq!(n, want.len());
            prop_assert_eq!(clean, want_clean);
            for (got, want) in t.iter().zip(&want) {
                prop_assert_eq!(got, want);
            }
        }

        #[test]
        fn peek_key_is_the_second_token_of_a_line(
            verb in "[a-z]{1,6}", key in "[!-~]{1,40}", rest in "( [0-9]{1,3}){0,3}",
        ) {
            let line = format!("{verb} {key}{rest}\r\nget other\r\n");
            prop_assert_eq!(super::peek_key(line.as_bytes()), Some(key.as_bytes()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn keys_iterate_as_a_split_on_spaces(line in proptest::collection::vec(
            prop_oneof![4 => Just(b' '), 8 => b'a'..=b'z'], 0..40)) {
            let want: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let got: Vec<&[u8]> = super::Keys::new(&line).iter().collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn peek_key_gives_nothing_without_a_key() {
        assert_eq!(super::peek_key(b"version\r\n"), None);
        assert_eq!(super::peek_key(b"get \r\n"), None);
        assert_eq!(super::peek_key(b"get"), None);
        assert_eq!(super::peek_key(b"get abc"), None);
        let long = [b"get ".as_slice(), &[b'k'; 400], b"\r\n"].concat();
        assert_eq!(super::peek_key(&long), None);
    }
}
