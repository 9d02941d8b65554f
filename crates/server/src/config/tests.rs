use super::*;

fn err(args: &[&str]) -> Exit {
    parse_args(args).expect_err("should exit")
}

fn ok(args: &[&str]) -> Config {
    parse_args(args).expect("should parse").0
}

#[test]
fn structural_errors_and_exit_codes() {
    let e = err(&["--bogus", "--help"]);
    assert_eq!(
        (e.code, e.stderr.as_str()),
        (1, "# Unknown program option --bogus\n")
    );
    assert_eq!(err(&["--help", "--bogus"]).code, 0);
    assert!(
        err(&["--help"])
            .stdout
            .starts_with("Usage: pogocache [options]\n\nBasic options:\n")
    );
    assert_eq!(
        err(&["--version", "-p", "abc"]).stdout,
        format!("pogocache {VERSION}\n")
    );
    assert_eq!(err(&["-p"]).stderr, "# Option -p missing value\n");
    assert_eq!(
        err(&["--threads"]).stderr,
        "# Option --threads missing value\n"
    );
    assert_eq!(err(&["-p9401"]).stderr, "# Unknown program option -p9401\n");
    assert_eq!(
        err(&["-p=9401"]).stderr,
        "# Unknown program option -p=9401\n"
    );
    assert_eq!(err(&["-vvvv"]).stderr, "# Unknown program option -vvvv\n");
    assert_eq!(
        err(&["--threads", "-p", "19402"]).stderr,
        "# Unknown program option 19402\n"
    );
}

#[test]
fn ports() {
    for p in ["19402", "019402", "+19402", " 19402"] {
        assert_eq!(ok(&["-p", p]).port, Some(19402), "{p}");
    }
    assert_eq!(ok(&["-p", "019405"]).port_text, "019405");
    for p in ["abc", "-1", "65536", "70000"] {
        assert_eq!(
            err(&["-p", p]).stderr,
            "# Option --port is invalid\n",
            "{p}"
        );
    }
    let e = err(&["-p", "0"]);
    assert_eq!(
        e.stdout,
        "Need to specify at least one valid port, tlsport or socket option\n"
    );
    assert_eq!(ok(&["--port=", "-s", "x.sock"]).port, None);
    assert_eq!(
        ok(&["-p", "1", "-p", "19402"]).port,
        Some(19402),
        "last one wins"
    );
}

#[test]
fn lenient_integers_and_clamps() {
    assert_eq!(ok(&["--threads", "3x"]).threads, 3);
    assert_eq!(ok(&["--threads", "abc"]).threads, sys::cpu_count());
    assert_eq!(ok(&["--threads", "99999"]).threads, 4096);
    assert_eq!(ok(&["--shards", "7"]).shards, 7);
    assert_eq!(ok(&["--shards", "100000"]).shards, 65536);
    assert_eq!(ok(&["--maxconns", "0"]).maxconns, 1024);
    assert_eq!(ok(&["--backlog", "abc"]).backlog, 0);
    let (c, notes) = parse_args(&["--loadfactor", "abc", "--queuesize", "9999"]).unwrap();
    assert_eq!((c.loadfactor, c.queuesize), (55, 4096));
    assert_eq!(
        notes,
        vec![
            "# loadfactor minumum set to 55",
            "# queuesize adjusted to 4096"
        ]
    );
}

#[test]
fn yes_no_flags() {
    assert_eq!(
        err(&["--evict", "maybe"]).stderr,
        "# Option --evict is invalid\n"
    );
    assert_eq!(
        err(&["--cas", "maybe"]).stderr,
        "# Option --usecas is invalid\n"
    );
    assert_eq!(
        err(&["--autosweep", "x"]).stderr,
        "# Option --autosweep is invalid\n"
    );
    assert!(!ok(&["-M"]).evict);
    assert!(ok(&["--cas=yes"]).cas);
    assert!(!ok(&["--keysixpack", "no"]).sixpack);
    assert!(ok(&["--uring", "yes"]).port.is_some());
    assert_eq!(
        err(&["--allocator", "nope"]).stderr,
        "# Option --allocator is invalid\n"
    );
    assert_eq!(ok(&["-v"]).verbosity, 1);
    assert_eq!(ok(&["-vvv", "-v"]).verbosity, 1);
}

#[test]
fn maxmemory_grammar() {
    let sys = 1u64 << 30;
    assert_eq!(parse_maxmemory("1GB", sys), Ok(Some(1 << 30)));
    assert_eq!(parse_maxmemory("1g", sys), Ok(Some(1 << 30)));
    assert_eq!(parse_maxmemory("1.5G", sys), Ok(Some(3 << 29)));
    assert_eq!(parse_maxmemory(" 100 mb", sys), Ok(Some(100 << 20)));
    assert_eq!(parse_maxmemory("1000", sys), Ok(Some(1000)));
    assert_eq!(parse_maxmemory("1e3", sys), Ok(Some(1000)));
    assert_eq!(parse_maxmemory("50%", sys), Ok(Some(sys / 2)));
    assert_eq!(parse_maxmemory("unlimited", sys), Ok(None));
    for bad in ["0", "-5", "abc", "10x", "100MiB", ""] {
        assert_eq!(parse_maxmemory(bad, sys), Err(()), "{bad}");
    }
    let e = err(&["--maxmemory", "10x"]);
    assert!(
        e.stderr
            .starts_with("# Invalid maxmemory '10x'\nUsage: pogocache")
    );
    assert_eq!(ok(&["-m", "100"]).maxmemory, Some(100 << 20));
    let c = ok(&["--maxmemory", "unlimited"]);
    assert_eq!((c.maxmemory, c.evict), (None, false));
}

#[test]
fn human_sizes() {
    assert_eq!(human_size(1000), "1000B");
    assert_eq!(human_size(1024), "1K");
    assert_eq!(human_size(100 << 20), "100M");
    assert_eq!(human_size(3 << 29), "1.5G");
    assert_eq!(human_size(2 << 40), "2048G");
}

#[test]
fn help_layout() {
    let h = help_text();
    assert!(h.contains("\n  -v,-vv,-vvv            verbose logging level          \n"));
    assert!(h.contains(
        "\n  -h hostname            listening host                 (default: 127.0.0.1)\n"
    ));
    assert!(h.ends_with("\n\n"));
}

#[test]
fn our_own_flags() {
    let c = ok(&[
        "--pgauth",
        "md5",
        "--saveinterval",
        "30",
        "--recover=skip",
        "--mclegacy",
        "yes",
        "--exatunix",
        "no",
    ]);
    assert_eq!(c.pg_auth, pogocache_command::postgres::PgAuth::Md5);
    assert_eq!(
        (c.save_interval, c.mc_legacy, c.exat_unix),
        (30, true, false)
    );
    assert_eq!(c.recover, pogocache_persist::Recovery::Skip);
    assert_eq!(
        err(&["--pgauth", "scram"]).stderr,
        "# Option --pgauth is invalid\n"
    );
    assert_eq!(
        err(&["--recover", "maybe"]).stderr,
        "# Option --recover is invalid\n"
    );
    let f = std::env::temp_dir().join(format!("pogocache-authfile-{}", std::process::id()));
    std::fs::write(&f, "s3cret\n").unwrap();
    assert_eq!(ok(&["--authfile", f.to_str().unwrap()]).auth, "s3cret");
    let _ = std::fs::remove_file(&f);
    assert!(
        err(&["--authfile", "/nonexistent/secret"])
            .stderr
            .starts_with("# Option --authfile: cannot read /nonexistent/secret")
    );
}

#[test]
fn help_lists_our_flags() {
    let h = help_text();
    for flag in [
        "--saveinterval",
        "--recover",
        "--authfile",
        "--exatunix",
        "--mclegacy",
        "--pgauth",
        "--health",
        "--tlsport",
    ] {
        assert!(
            h.contains(&format!("\n  {flag}")),
            "{flag} missing from --help"
        );
    }
    assert!(ok(&["--health"]).health);
}
