use super::*;

fn frame(input: &[u8]) -> Framed<'_> {
    super::frame(input, &Limits::DEFAULT)
}

fn args(q: &str) -> Result<Vec<String>, String> {
    let t = tokenize(q.as_bytes())?;
    Ok(build_args(&t, None)
        .into_iter()
        .map(|a| String::from_utf8_lossy(&a).into_owned())
        .collect())
}

#[test]
fn framing_startup_and_regular() {
    let startup = b"\x00\x00\x00\x1b\x00\x03\x00\x00user\x00u\x00database\x00d\x00\x00";
    assert_eq!(
        frame(startup),
        Framed::Complete(
            27,
            Frame::Startup {
                code: 196608,
                payload: &startup[8..]
            }
        )
    );
    for cut in 0..startup.len() {
        assert!(
            matches!(frame(&startup[..cut]), Framed::Incomplete { .. }),
            "cut {cut}"
        );
    }
    let q = b"Q\x00\x00\x00\x09PING\x00rest";
    assert_eq!(
        frame(q),
        Framed::Complete(
            10,
            Frame::Message {
                kind: b'Q',
                body: b"PING\x00"
            }
        )
    );
    assert_eq!(
        frame(b"\x00\x01\x11p\x00\x03\x00\x00"),
        Framed::Invalid(FrameError::TooLarge)
    );
    assert_eq!(
        frame(b"\x00\x00\x00\x04\x00"),
        Framed::Invalid(FrameError::Invalid)
    );
    assert_eq!(
        frame(b"Q\x00\x00\x00\x02x"),
        Framed::Invalid(FrameError::Invalid)
    );
    assert_eq!(
        frame(b"Q\x7f\xff\xff\xffx"),
        Framed::Invalid(FrameError::TooLarge)
    );
}

#[test]
fn reader_never_overreads() {
    let mut r = Reader::new(b"ab\x00\x00\x01");
    assert_eq!(r.cstr(), Some(&b"ab"[..]));
    assert_eq!(r.i16(), Some(1));
    assert_eq!(r.i32(), None);
    assert!(r.is_empty());
    assert_eq!(Reader::new(b"no-nul").cstr(), None);
}

#[test]
fn tokenizer_cases_from_the_spec() {
    assert_eq!(
        args("SET pk 'hello world'").unwrap(),
        vec!["SET", "pk", "hello world"]
    );
    assert_eq!(args("  GET   pk  ").unwrap(), vec!["GET", "pk"]);
    assert_eq!(args("SET a b;;;").unwrap(), vec!["SET", "a", "b"]);
    assert_eq!(
        args("SET a b; ").unwrap_err(),
        "unexpected characters at end of query"
    );
    assert_eq!(
        args("SET a b; GET a").unwrap_err(),
        "unexpected characters at end of query"
    );
    assert_eq!(args("SET \"q5\" x").unwrap_err(), "idenifiers not allowed");
    assert_eq!(
        args("SET q6 $$x$$").unwrap_err(),
        "dollar-quote strings not allowed"
    );
    assert_eq!(
        args("SET q8 'unterm").unwrap_err(),
        "unterminated quoted string"
    );
    assert_eq!(args("GET $0").unwrap_err(), "there is no parameter $0");
    assert_eq!(
        args("GET $65536").unwrap_err(),
        "there is no parameter $65536"
    );
    // A quoted string glued to a keyword stays a separate argument.
    assert_eq!(args("SET q11 a'b'").unwrap(), vec!["SET", "q11", "a", "b"]);
    assert_eq!(args("").unwrap(), Vec::<String>::new());
    assert_eq!(args(";").unwrap(), Vec::<String>::new());
}

#[test]
fn string_escapes_are_fixed() {
    // F1: '' is a quote, not an empty string.
    assert_eq!(args("SET q 'it''s'").unwrap(), vec!["SET", "q", "it's"]);
    // F2: \' is a quote and unknown escapes keep the character.
    assert_eq!(args(r"SET q E'it\'s'").unwrap(), vec!["SET", "q", "it's"]);
    assert_eq!(args(r"SET q E'a\qb'").unwrap(), vec!["SET", "q", "aqb"]);
    assert_eq!(
        args(r"SET q E'a\nb\u0041'").unwrap(),
        vec!["SET", "q", "a\nbA"]
    );
    assert_eq!(args(r"SET q e'\u00e9'").unwrap(), vec!["SET", "q", "é"]);
    assert_eq!(
        args(r"SET q E'\ud83d\ude00'").unwrap(),
        vec!["SET", "q", "😀"]
    );
    assert_eq!(
        args(r"SET q E'\ud83d'").unwrap(),
        vec!["SET", "q", "\u{FFFD}"]
    );
}

#[test]
fn extended_queries_join_glued_pieces() {
    let t = tokenize(b"SET user:$1:x $2").unwrap();
    assert_eq!(param_count(&t), Ok(2));
    let a = build_args(&t, Some(&[b"9".to_vec(), b"val".to_vec()]));
    assert_eq!(
        a,
        vec![b"SET".to_vec(), b"user:9:x".to_vec(), b"val".to_vec()]
    );
    assert_eq!(
        param_count(&tokenize(b"GET $2").unwrap()),
        Err("missing parameter $1".into())
    );
}

#[test]
fn message_bytes() {
    let mut out = Vec::new();
    row_description(&mut out, &["value"], OID_TEXT);
    data_row(&mut out, &[b"hello world"]);
    command_complete(&mut out, "GET 1");
    ready_for_query(&mut out);
    assert_eq!(
        out,
        b"T\x00\x00\x00\x1e\x00\x01value\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x01D\x00\x00\x00\x15\x00\x01\x00\x00\x00\x0bhello worldC\x00\x00\x00\x0aGET 1\x00Z\x00\x00\x00\x05I"
    );
    out.clear();
    error_response(&mut out, b"unknown command 'FOO'");
    assert_eq!(
        out,
        b"E\x00\x00\x001SERROR\x00VERROR\x00C23505\x00Munknown command 'FOO'\x00\x00"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn tokenizer_and_framer_never_panic(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = tokenize(&input);
            if let Framed::Complete(n, _) = frame(&input) { prop_assert!(n <= input.len()); }
        }
    }
}
