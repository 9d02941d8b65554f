//! RESP request parser: never panics, consumes no more than it was given,
//! a prefix of a complete request is Incomplete or parses the same, and
//! arguments re-encoded as a multibulk request parse back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pogocache_protocol::{Args, Limits, Parsed, resp};

fn owned(args: &Args, input: &[u8]) -> Vec<Vec<u8>> {
    args.view(input).iter().map(|a| a.to_vec()).collect()
}

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer reaches them.
    let limits = Limits {
        max_args: 16,
        max_arg_len: 64,
        max_inline_len: 128,
        ..Limits::DEFAULT
    };
    let mut args = Args::new();
    let n = match resp::parse(data, &limits, &mut args) {
        Parsed::Complete(n, ()) => n,
        Parsed::Incomplete { need } => {
            assert!(need > data.len(), "need {need} of {}", data.len());
            return;
        }
        Parsed::Invalid(_) => return,
    };
    assert!(n > 0 && n <= data.len());
    let got = owned(&args, data);
    assert!(got.len() <= limits.max_args);
    assert!(got.iter().all(|a| a.len() <= limits.max_arg_len));

    // A request split across reads must not be refused or changed: every
    // prefix is Incomplete (or, never shorter, the same request).
    for k in [n / 2, n.saturating_sub(1)] {
        let mut a = Args::new();
        match resp::parse(&data[..k], &limits, &mut a) {
            Parsed::Incomplete { .. } => {}
            Parsed::Complete(m, ()) => assert_eq!((m, owned(&a, &data[..k])), (n, got.clone())),
            Parsed::Invalid(e) => panic!("prefix {k} of a {n}-byte request refused: {e:?}"),
        }
    }

    // Round trip through the multibulk encoding.
    if !got.is_empty() {
        let mut enc = format!("*{}\r\n", got.len()).into_bytes();
        for a in &got {
            enc.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            enc.extend_from_slice(a);
            enc.extend_from_slice(b"\r\n");
        }
        let mut b = Args::new();
        assert!(
            matches!(resp::parse(&enc, &limits, &mut b), Parsed::Complete(m, ()) if m == enc.len())
        );
        assert_eq!(owned(&b, &enc), got);
    }
});
