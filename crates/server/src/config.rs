//! Command-line parsing and the effective configuration.
//!
//! Owns: Pogocache's flag grammar: two passes, `--x v` and
//! `--x=v`, value-only short flags, C-`atoi` integers, the exact error
//! lines and exit codes, `--help`/`--version` text, `--maxmemory`
//! grammar, and the startup banner. Does not own: acting on the config.
//!
//! Hand-written rather than clap: clap accepts `-p9401`, counts `-v -v`
//! as 2, and prints its own messages and exit codes, none of which a
//! drop-in replacement may do.

use std::fmt::Write as _;
use std::path::PathBuf;

use pogocache_command::{VERSION, sys};

/// The effective configuration, after defaults and clamping.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    /// TCP port; `None` disables TCP. `Some(0)` binds an ephemeral port
    /// (tests use this; on the command line `-p 0` means "disabled", as
    /// in Pogocache).
    pub port: Option<u16>,
    /// The port as typed, echoed by the banner.
    pub port_text: String,
    pub unixsocket: Option<PathBuf>,
    pub verbosity: u8,
    pub threads: usize,
    /// Byte limit; `None` = unlimited.
    pub maxmemory: Option<u64>,
    pub maxmemory_text: String,
    pub evict: bool,
    pub persist: Option<PathBuf>,
    pub maxconns: usize,
    pub auth: String,
    pub tlsport: Option<u16>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub tlscacert: Option<PathBuf>,
    pub shards: usize,
    pub backlog: i32,
    pub queuesize: usize,
    pub reuseport: bool,
    pub tcpnodelay: bool,
    pub keepalive: bool,
    pub quickack: bool,
    pub loadfactor: u8,
    pub autosweep: bool,
    pub sixpack: bool,
    pub cas: bool,
    pub seed: Option<u64>,
    pub trackallocs: bool,
    pub exat_unix: bool,
    /// `--mclegacy yes`: Pogocache's memcache quirks (see Settings).
    pub mc_legacy: bool,
    /// `--pgauth cleartext|md5`: how Postgres clients send `--auth`.
    pub pg_auth: pogocache_command::postgres::PgAuth,
    /// `--saveinterval secs`: periodic background snapshots to
    /// `--persist` (0 = only at shutdown, as Pogocache).
    pub save_interval: u64,
    /// `--recover strict|skip`: what a damaged `--persist` file does at
    /// startup.
    pub recover: pogocache_persist::Recovery,
    /// Print the startup lines (listener, loading) as the binary does.
    pub log_startup: bool,
    /// `--health`: probe a running server (PING) instead of starting one.
    pub health: bool,
    /// `--logformat json`: one JSON object per log line (extension).
    pub log_json: bool,
    /// `--logsample N`: at `-vvv`, log one command in N (extension).
    pub log_sample: u64,
    /// `--cluster yes`: Redis Cluster mode, with the nodes file of
    /// `--cluster-config` and this node's name in it, `--cluster-node`
    /// (else found by `-h`/`-p`). Extension.
    pub cluster: bool,
    pub cluster_config: Option<PathBuf>,
    pub cluster_node: Option<String>,
    /// `--replicaof host port`: follow this primary from the start.
    pub replicaof: Option<(String, u16)>,
    /// `--primaryauth` / `--primaryauthfile`: the primary's password.
    pub primary_auth: Option<String>,
    /// `--replica-read-only yes|no` (default yes).
    pub replica_read_only: bool,
    /// `--replica-priority N` (Sentinel promotes lower first; 0 never).
    pub replica_priority: u32,
    /// `--repl-backlog-size`: bytes of stream kept for partial resyncs.
    pub repl_backlog: usize,
}

impl Default for Config {
    /// Pogocache's defaults, except `port: Some(0)` (ephemeral) so that
    /// tests and embedders never collide on a fixed port. The CLI sets
    /// 9401.
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: Some(0),
            port_text: "0".into(),
            unixsocket: None,
            verbosity: 0,
            threads: sys::cpu_count(),
            maxmemory: Some(default_maxmemory()),
            maxmemory_text: "80%".into(),
            evict: true,
            persist: None,
            maxconns: 1024,
            auth: String::new(),
            tlsport: None,
            tlscert: None,
            tlskey: None,
            tlscacert: None,
            shards: 4096,
            backlog: 1024,
            queuesize: 128,
            reuseport: false,
            tcpnodelay: true,
            keepalive: true,
            quickack: false,
            loadfactor: 75,
            autosweep: true,
            sixpack: true,
            cas: false,
            seed: None,
            trackallocs: false,
            exat_unix: true,
            mc_legacy: false,
            pg_auth: Default::default(),
            save_interval: 0,
            recover: Default::default(),
            log_startup: false,
            health: false,
            log_json: false,
            log_sample: 1,
            cluster: false,
            cluster_config: None,
            cluster_node: None,
            replicaof: None,
            primary_auth: None,
            replica_read_only: true,
            replica_priority: 100,
            repl_backlog: 1 << 20,
        }
    }
}

/// How the process should end instead of starting a server.
#[derive(Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Exit {
    fn err(msg: String) -> Exit {
        Exit {
            code: 1,
            stdout: String::new(),
            stderr: msg + "\n",
        }
    }
}

/// The allocator compiled into this binary (set by the binary crate).
pub static ALLOCATOR: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

pub(crate) fn allocator() -> &'static str {
    ALLOCATOR.get().copied().unwrap_or("stock")
}

/// Memory the defaults are computed against: `MemTotal`, or the cgroup
/// limit when lower (Pogocache ignores cgroups, gap G6 "fix").
pub fn system_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(1 << 30);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
    match cgroup {
        Some(c) if c > 0 && c < total => c,
        _ => total,
    }
}

fn default_maxmemory() -> u64 {
    system_memory() / 100 * 80
}

const VALUE_FLAGS: &[&str] = &[
    "-h",
    "-p",
    "-s",
    "-t",
    "-m",
    "--port",
    "--threads",
    "--maxmemory",
    "--evict",
    "--persist",
    "--maxconns",
    "--auth",
    "--tlsport",
    "--tlscert",
    "--tlskey",
    "--tlscacert",
    "--shards",
    "--backlog",
    "--queuesize",
    "--reuseport",
    "--tcpnodelay",
    "--keepalive",
    "--quickack",
    "--uring",
    "--loadfactor",
    "--autosweep",
    "--sixpack",
    "--keysixpack",
    "--cas",
    "--allocator",
    "--seed",
    "--trackallocs",
    "--warmup",
    "--noticker",
    "--exatunix",
    "--mclegacy",
    "--pgauth",
    "--saveinterval",
    "--recover",
    "--authfile",
    "--logformat",
    "--logsample",
    "--cluster",
    "--cluster-config",
    "--cluster-node",
    "--replicaof",
    "--slaveof",
    "--primaryauth",
    "--masterauth",
    "--primaryauthfile",
    "--replica-read-only",
    "--replica-priority",
    "--repl-backlog-size",
];
const SWITCHES: &[&str] = &["-v", "-vv", "-vvv", "-M", "--health"];

/// C `atoi` (Pogocache never rejects a malformed count, so neither do we).
fn atoi(s: &str) -> i64 {
    pogocache_command::atoi(s.as_bytes())
}

/// Strict port syntax: empty or 0 disables; otherwise the whole string
/// must be an unsigned decimal ≤ 65535 (leading spaces, `+` and zeros
/// allowed).
fn parse_port(s: &str) -> Result<Option<u16>, ()> {
    let t = s.trim_start();
    let t = t.strip_prefix('+').unwrap_or(t);
    if s.is_empty() {
        return Ok(None);
    }
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return Err(());
    }
    match t.trim_start_matches('0').parse::<u32>() {
        _ if t.bytes().all(|c| c == b'0') => Ok(None),
        Ok(v) if v <= 65535 => Ok(Some(v as u16)),
        _ => Err(()),
    }
}

/// `--maxmemory` grammar: a byte count with an optional unit suffix, or a
/// percentage of system memory, as Pogocache reads it. `None` = unlimited.
fn parse_maxmemory(s: &str, system: u64) -> Result<Option<u64>, ()> {
    if s == "unlimited" {
        return Ok(None);
    }
    let t = s.trim_start();
    let num_len = t
        .char_indices()
        .take_while(|(i, c)| {
            c.is_ascii_digit()
                || *c == '.'
                || (*i == 0 && (*c == '+' || *c == '-'))
                || *c == 'e'
                || *c == 'E'
        })
        .count();
    // Back off an exponent marker that is not followed by digits (so
    // "1e" is not a float but "1" + suffix "e" — which is invalid anyway).
    let mut n = num_len;
    let mut v = None;
    while n > 0 {
        if let Ok(f) = t[..n].parse::<f64>() {
            v = Some(f);
            break;
        }
        n -= 1;
    }
    let v = v.ok_or(())?;
    if !v.is_finite() || v <= 0.0 {
        return Err(());
    }
    let mult = match t[n..].trim_start().to_ascii_lowercase().as_str() {
        "" => 1.0,
        "%" => system as f64 / 100.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(()),
    };
    Ok(Some((v * mult) as u64))
}

/// Human-readable size as in Pogocache's banner: `1000B`, `1.5K`, `100M`,
/// `18.8G` (no T unit; a trailing `.0` is dropped).
pub fn human_size(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    let s = if n < 1024 {
        return format!("{n}B");
    } else if f < K * K {
        format!("{:.1}K", f / K)
    } else if f < K * K * K {
        format!("{:.1}M", f / K / K)
    } else {
        format!("{:.1}G", f / K / K / K)
    };
    s.replace(".0", "")
}

/// The `--help` text, in Pogocache's layout, showing the defaults.
pub fn help_text() -> String {
    let mut s = String::from("Usage: pogocache [options]\n\n");
    let line = |s: &mut String, opt: &str, desc: &str, def: Option<&str>| {
        let _ = write!(s, "  {opt:<22} {desc:<30} ");
        if let Some(d) = def {
            let _ = write!(s, "(default: {d})");
        }
        s.push('\n');
    };
    let threads = sys::cpu_count().to_string();
    s.push_str("Basic options:\n");
    line(&mut s, "-h hostname", "listening host", Some("127.0.0.1"));
    line(&mut s, "-p port", "listening port", Some("9401"));
    line(&mut s, "-s socket", "unix socket file", Some("none"));
    line(&mut s, "-v,-vv,-vvv", "verbose logging level", None);
    s.push_str("\nAdditional options:\n");
    line(
        &mut s,
        "--threads count",
        "number of threads",
        Some(&threads),
    );
    line(
        &mut s,
        "--maxmemory value",
        "set max memory usage",
        Some("80%"),
    );
    line(
        &mut s,
        "--evict yes/no",
        "evict keys at maxmemory",
        Some("yes"),
    );
    line(&mut s, "--persist path", "persistence file", Some("none"));
    line(
        &mut s,
        "--maxconns conns",
        "maximum connections",
        Some("1024"),
    );
    line(
        &mut s,
        "--saveinterval secs",
        "background save interval",
        Some("0 (off)"),
    );
    line(
        &mut s,
        "--recover strict/skip",
        "on a damaged persist file",
        Some("strict"),
    );
    line(
        &mut s,
        "--logformat text/json",
        "log line format",
        Some("text"),
    );
    line(
        &mut s,
        "--logsample N",
        "log one command in N (-vvv)",
        Some("1"),
    );
    s.push_str("\nSecurity options:\n");
    line(
        &mut s,
        "--auth passwd",
        "auth token or password",
        Some("none"),
    );
    line(
        &mut s,
        "--authfile path",
        "read --auth from a file",
        Some("none"),
    );
    line(&mut s, "--tlsport port", "enable tls on port", Some("none"));
    line(&mut s, "--tlscert certfile", "tls cert file", Some("none"));
    line(&mut s, "--tlskey keyfile", "tls key file", Some("none"));
    line(
        &mut s,
        "--tlscacert cacertfile",
        "tls ca-cert file",
        Some("none"),
    );
    s.push_str("\nAdvanced options:\n");
    line(&mut s, "--shards count", "number of shards", Some("4096"));
    line(&mut s, "--backlog count", "accept backlog", Some("1024"));
    line(
        &mut s,
        "--queuesize count",
        "event queuesize size",
        Some("128"),
    );
    line(
        &mut s,
        "--reuseport yes/no",
        "reuseport for tcp",
        Some("no"),
    );
    line(
        &mut s,
        "--tcpnodelay yes/no",
        "disable nagle's algo",
        Some("yes"),
    );
    line(
        &mut s,
        "--quickack yes/no",
        "use quickack (linux)",
        Some("no"),
    );
    line(&mut s, "--uring yes/no", "use uring (linux)", Some("no"));
    line(
        &mut s,
        "--loadfactor percent",
        "hashmap load factor",
        Some("75"),
    );
    line(
        &mut s,
        "--autosweep yes/no",
        "automatic eviction sweeps",
        Some("yes"),
    );
    line(
        &mut s,
        "--sixpack yes/no",
        "sixpack compress keys",
        Some("yes"),
    );
    line(&mut s, "--cas yes/no", "use compare and store", Some("no"));
    let alloc = allocator();
    line(&mut s, "--allocator name", alloc, Some(alloc));
    line(
        &mut s,
        "--exatunix yes/no",
        "EXAT/PXAT are unix times",
        Some("yes"),
    );
    line(
        &mut s,
        "--mclegacy yes/no",
        "pogocache memcache quirks",
        Some("no"),
    );
    line(
        &mut s,
        "--pgauth method",
        "cleartext or md5",
        Some("cleartext"),
    );
    line(&mut s, "--cluster yes/no", "redis cluster mode", Some("no"));
    line(
        &mut s,
        "--cluster-config path",
        "cluster nodes file",
        Some("none"),
    );
    line(
        &mut s,
        "--cluster-node name",
        "this node in that file",
        Some("by -h/-p"),
    );
    line(
        &mut s,
        "--replicaof host port",
        "replicate this primary",
        Some("none"),
    );
    line(
        &mut s,
        "--primaryauth pass",
        "the primary's password",
        Some("none"),
    );
    line(
        &mut s,
        "--primaryauthfile path",
        "read it from a file",
        Some("none"),
    );
    line(
        &mut s,
        "--replica-read-only yes/no",
        "refuse client writes",
        Some("yes"),
    );
    line(
        &mut s,
        "--replica-priority n",
        "sentinel promotion order",
        Some("100"),
    );
    line(
        &mut s,
        "--repl-backlog-size size",
        "stream kept for resyncs",
        Some("1mb"),
    );
    line(&mut s, "--health", "probe a running server", None);
    s.push('\n');
    s
}

/// Parses `argv` (without the program name) into a config, or the exit
/// the process must take (help, version, or an error).
pub fn parse_args<S: AsRef<str>>(argv: &[S]) -> Result<(Config, Vec<String>), Exit> {
    // `--replicaof host port` is Redis's two-word form: fold it into one
    // value ("host port") for the one-value parser below.
    let mut joined: Vec<String> = Vec::with_capacity(argv.len());
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i].as_ref();
        if (a == "--replicaof" || a == "--slaveof")
            && i + 2 < argv.len()
            && !argv[i + 2].as_ref().starts_with('-')
            && argv[i + 2].as_ref().bytes().all(|b| b.is_ascii_digit())
            && !argv[i + 1].as_ref().contains(' ')
        {
            joined.push(a.to_string());
            joined.push(format!("{} {}", argv[i + 1].as_ref(), argv[i + 2].as_ref()));
            i += 3;
            continue;
        }
        joined.push(a.to_string());
        i += 1;
    }
    let argv: Vec<&str> = joined.iter().map(|s| s.as_str()).collect();
    // Pass 1: structure only.
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i];
        if a == "--help" {
            return Err(Exit {
                code: 0,
                stdout: help_text(),
                stderr: String::new(),
            });
        }
        if a == "--version" {
            return Err(Exit {
                code: 0,
                stdout: format!("pogocache {VERSION}\n"),
                stderr: String::new(),
            });
        }
        let name = if a.starts_with("--") {
            a.split('=').next().unwrap_or(a)
        } else {
            a
        };
        if SWITCHES.contains(&a) {
        } else if VALUE_FLAGS.contains(&name) {
            let inline = a.starts_with("--") && a.contains('=');
            if !inline {
                if i + 1 >= argv.len() {
                    return Err(Exit::err(format!("# Option {name} missing value")));
                }
                i += 1;
            }
        } else {
            return Err(Exit::err(format!("# Unknown program option {a}")));
        }
        i += 1;
    }
    // Pass 2: values, last one wins.
    let mut v: std::collections::HashMap<&str, String> = Default::default();
    let mut verbosity = 0u8;
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i];
        match a {
            "-v" => verbosity = 1,
            "-vv" => verbosity = 2,
            "-vvv" => verbosity = 3,
            "-M" => {
                v.insert("--evict", "no".into());
            }
            "--health" => {
                v.insert("--health", "yes".into());
            }
            _ => {
                let (name, val) = match a.split_once('=') {
                    Some((n, val)) if a.starts_with("--") => (n, val.to_string()),
                    _ => {
                        i += 1;
                        (a, argv[i].to_string())
                    }
                };
                let canon = match name {
                    "-p" => "--port",
                    "-t" => "--threads",
                    "--keysixpack" => "--sixpack",
                    n => n,
                };
                v.insert(canon, val);
            }
        }
        i += 1;
    }
    let get = |k: &str| v.get(k).map(|s| s.as_str());
    let mut c = Config {
        port: Some(9401),
        port_text: "9401".into(),
        verbosity,
        ..Config::default()
    };
    let mut notes = Vec::new();

    if let Some(a) = get("--allocator")
        && a != allocator()
    {
        return Err(Exit::err("# Option --allocator is invalid".into()));
    }
    if let Some(t) = get("--threads") {
        let t = atoi(t);
        c.threads = if t <= 0 {
            sys::cpu_count()
        } else {
            t.min(4096) as usize
        };
    }
    if let Some(s) = get("--shards") {
        let s = atoi(s);
        c.shards = if s <= 0 { 4096 } else { s.min(65536) as usize };
    }
    let yes_no = |key: &str, shown: &str, default: bool| -> Result<bool, Exit> {
        match get(key) {
            None => Ok(default),
            Some("yes") => Ok(true),
            Some("no") => Ok(false),
            Some(_) => Err(Exit::err(format!("# Option {shown} is invalid"))),
        }
    };
    c.evict = yes_no("--evict", "--evict", true)?;
    c.reuseport = yes_no("--reuseport", "--reuseport", false)?;
    c.trackallocs = yes_no("--trackallocs", "--trackallocs", false)?;
    c.tcpnodelay = yes_no("--tcpnodelay", "--tcpnodelay", true)?;
    c.keepalive = yes_no("--keepalive", "--keepalive", true)?;
    c.cas = yes_no("--cas", "--usecas", false)?;
    if let Some(m) = get("--maxconns") {
        let m = atoi(m);
        c.maxconns = if m <= 0 { 1024 } else { m as usize };
    }
    // Pogocache silently treats any non-"yes" autosweep as "no" when CAS
    // is off (gap G3, "fix"): we accept only yes/no, with its message.
    c.autosweep = yes_no("--autosweep", "--autosweep", true)?;
    yes_no("--uring", "--uring", false)?; // no io_uring: "yes" is downgraded
    c.quickack = yes_no("--quickack", "--quickack", false)?;
    c.sixpack = yes_no("--sixpack", "--sixpack", true)?;
    c.exat_unix = yes_no("--exatunix", "--exatunix", true)?;
    c.health = get("--health").is_some();
    c.mc_legacy = yes_no("--mclegacy", "--mclegacy", false)?;
    c.pg_auth = match get("--pgauth") {
        None | Some("cleartext") => pogocache_command::postgres::PgAuth::Cleartext,
        Some("md5") => pogocache_command::postgres::PgAuth::Md5,
        Some(_) => return Err(Exit::err("# Option --pgauth is invalid".into())),
    };
    if let Some(l) = get("--loadfactor") {
        let l = atoi(l);
        c.loadfactor = if l < 55 {
            notes.push("# loadfactor minumum set to 55".to_string());
            55
        } else if l > 95 {
            notes.push("# loadfactor maximum set to 95".to_string());
            95
        } else {
            l as u8
        };
    }
    if let Some(q) = get("--queuesize") {
        let q = atoi(q);
        c.queuesize = if q < 1 {
            notes.push("# queuesize adjusted to 1".to_string());
            1
        } else if q > 4096 {
            notes.push("# queuesize adjusted to 4096".to_string());
            4096
        } else {
            q as usize
        };
    }
    let mut maxmem = get("--maxmemory").map(str::to_string);
    if let Some(m) = get("-m") {
        maxmem = Some(format!("{m}M"));
    }
    if let Some(p) = get("--port") {
        c.port = parse_port(p).map_err(|_| Exit::err("# Option --port is invalid".into()))?;
        c.port_text = p.to_string();
    }
    if let Some(p) = get("--tlsport") {
        c.tlsport = parse_port(p).map_err(|_| Exit::err("# Option --tlsport is invalid".into()))?;
    }
    c.unixsocket = get("-s").filter(|s| !s.is_empty()).map(PathBuf::from);
    if c.port.is_none() && c.tlsport.is_none() && c.unixsocket.is_none() {
        return Err(Exit {
            code: 1,
            stdout: "Need to specify at least one valid port, tlsport or socket option\n".into(),
            stderr: String::new(),
        });
    }
    if let Some(m) = maxmem {
        c.maxmemory = match parse_maxmemory(&m, system_memory()) {
            Ok(v) => v,
            Err(()) => {
                return Err(Exit {
                    code: 1,
                    stdout: String::new(),
                    stderr: format!("# Invalid maxmemory '{m}'\n{}", help_text()),
                });
            }
        };
        if c.maxmemory.is_none() {
            c.evict = false;
        }
        c.maxmemory_text = m;
    }
    if let Some(h) = get("-h") {
        c.host = h.to_string();
    }
    c.persist = get("--persist")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    c.auth = get("--auth").unwrap_or_default().to_string();
    if let Some(f) = get("--authfile") {
        // For container secrets: the password is the file's first line.
        let text = std::fs::read_to_string(f)
            .map_err(|e| Exit::err(format!("# Option --authfile: cannot read {f}: {e}")))?;
        c.auth = text.lines().next().unwrap_or_default().to_string();
    }
    if let Some(v) = get("--saveinterval") {
        c.save_interval = atoi(v).max(0) as u64;
    }
    c.recover = match get("--recover") {
        None | Some("strict") => pogocache_persist::Recovery::Strict,
        Some("skip") => pogocache_persist::Recovery::Skip,
        Some(_) => return Err(Exit::err("# Option --recover is invalid".into())),
    };
    c.log_json = match get("--logformat") {
        None | Some("text") => false,
        Some("json") => true,
        Some(_) => return Err(Exit::err("# Option --logformat is invalid".into())),
    };
    if let Some(v) = get("--logsample") {
        c.log_sample = atoi(v).max(1) as u64;
    }
    c.tlscert = get("--tlscert").map(PathBuf::from);
    c.tlskey = get("--tlskey").map(PathBuf::from);
    c.tlscacert = get("--tlscacert").map(PathBuf::from);
    if let Some(b) = get("--backlog") {
        c.backlog = atoi(b).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    }
    if let Some(s) = get("--seed") {
        c.seed = Some(s.trim().parse::<u64>().unwrap_or(0));
    }
    c.cluster = yes_no("--cluster", "--cluster", false)?;
    c.cluster_config = get("--cluster-config")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    c.cluster_node = get("--cluster-node")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(v) = get("--replicaof").or(get("--slaveof")) {
        let v = v.trim();
        let (host, port) = match v.rsplit_once([' ', ':']) {
            Some((h, p)) if !h.trim().is_empty() => (h.trim(), p),
            _ => ("", ""),
        };
        match parse_port(port) {
            Ok(Some(p)) if !host.is_empty() && !host.eq_ignore_ascii_case("no") => {
                c.replicaof = Some((host.to_string(), p));
            }
            _ if v.eq_ignore_ascii_case("no one") || v.is_empty() => {}
            _ => {
                return Err(Exit::err(
                    "# Option --replicaof needs a host and a port".into(),
                ));
            }
        }
    }
    c.primary_auth = get("--primaryauth")
        .or(get("--masterauth"))
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(f) = get("--primaryauthfile") {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Exit::err(format!("# Option --primaryauthfile: cannot read {f}: {e}")))?;
        c.primary_auth = Some(text.lines().next().unwrap_or_default().to_string());
    }
    c.replica_read_only = yes_no("--replica-read-only", "--replica-read-only", true)?;
    if let Some(v) = get("--replica-priority") {
        c.replica_priority = atoi(v).clamp(0, i32::MAX as i64) as u32;
    }
    if let Some(v) = get("--repl-backlog-size") {
        match pogocache_command::parse_memory(v.as_bytes()) {
            Some(n) if n >= 16 * 1024 => c.repl_backlog = n as usize,
            _ => {
                return Err(Exit::err(
                    "# Option --repl-backlog-size is invalid (at least 16kb)".into(),
                ));
            }
        }
    }
    if c.cluster && c.replicaof.is_some() {
        return Err(Exit::err(
            "# Option --replicaof is not available with --cluster yes".into(),
        ));
    }
    if c.cluster && c.cluster_config.is_none() {
        return Err(Exit::err(
            "# Option --cluster yes needs --cluster-config <nodes file>".into(),
        ));
    }
    if !c.cluster && (c.cluster_config.is_some() || c.cluster_node.is_some()) {
        return Err(Exit::err(
            "# Options --cluster-config and --cluster-node need --cluster yes".into(),
        ));
    }
    Ok((c, notes))
}

impl Config {
    /// The startup banner lines, byte for byte Pogocache's, without the final
    /// "listener established" / "ready" lines.
    pub fn banner(&self) -> Vec<String> {
        let yn = |b: bool| if b { "yes" } else { "no" };
        let sys_mem = system_memory();
        let max = match self.maxmemory {
            None => "unlimited".to_string(),
            Some(m) => format!(
                "{}%/{}",
                ((m as f64 / sys_mem as f64) * 100.0).round() as u64,
                human_size(m)
            ),
        };
        let (sysname, machine) = uname();
        let arch = match machine.as_str() {
            "x86_64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            m => m.to_string(),
        };
        let libc = if cfg!(target_env = "musl") {
            "musl"
        } else if cfg!(target_env = "gnu") {
            "glibc"
        } else {
            "unknown"
        };
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| sysname.clone());
        let verbosity = ["normal", "verbose", "very", "extremely"][self.verbosity.min(3) as usize];
        vec![
            format!(
                "* Pogocache (pid: {}, version: {VERSION}, git: {})",
                std::process::id(),
                pogocache_command::GITHASH
            ),
            format!(
                "* Arch (arch: {}/{arch}, libc: {libc}, os: {os})",
                sysname.to_lowercase()
            ),
            format!(
                "* Memory (system: {}, max: {max}, evict: {}, allocator: {})",
                human_size(sys_mem),
                yn(self.evict),
                allocator()
            ),
            format!(
                "* Features (verbosity: {verbosity}, sixpack: {}, cas: {}, persist: {}, uring: no)",
                yn(self.sixpack),
                yn(self.cas),
                self.persist
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or("none".into())
            ),
            format!(
                "* Network (port: {}, unixsocket: {}, backlog: {}, reuseport: {}, maxconns: {})",
                if self.port.is_some() {
                    self.port_text.as_str()
                } else {
                    "none"
                },
                self.unixsocket
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or("none".into()),
                self.backlog,
                yn(self.reuseport),
                self.maxconns
            ),
            format!(
                "* Socket (tcpnodelay: {}, keepalive: {}, quickack: {})",
                yn(self.tcpnodelay),
                yn(self.keepalive),
                yn(self.quickack)
            ),
            format!(
                "* Threads (threads: {}, queuesize: {})",
                self.threads, self.queuesize
            ),
            format!(
                "* Shards (shards: {}, loadfactor: {}%, autosweep: {})",
                self.shards,
                self.loadfactor,
                yn(self.autosweep)
            ),
            format!(
                "* Security (auth: {}, tlsport: {})",
                if self.auth.is_empty() {
                    "disabled"
                } else {
                    "enabled"
                },
                self.tlsport.map(|p| p.to_string()).unwrap_or("none".into())
            ),
        ]
    }
}

fn uname() -> (String, String) {
    // SAFETY: zeroed utsname is a valid out-parameter for uname(2).
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("Linux".into(), "unknown".into());
    }
    let s = |f: &[libc::c_char]| {
        let b: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    (s(&u.sysname), s(&u.machine))
}

#[cfg(test)]
mod tests;
