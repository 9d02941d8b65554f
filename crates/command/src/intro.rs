//! What modern Redis clients and operators send that Pogocache lacks:
//! HELLO (RESP2/RESP3), CLIENT, INFO, COMMAND, CONFIG GET, RESET, WAIT.
//! All are extensions (see README); none changes a reply Pogocache
//! defines.
//!
//! Owns: these commands' argument rules and replies and the INFO
//! sections (`COMMAND` reports the command table, `table.rs`). Does not own: the client registry
//! (`clients.rs`) or reply encoding (`reply.rs`).

use std::sync::atomic::Ordering::Relaxed;

use pogocache_protocol::ArgView;

use crate::table::{SPECS, Spec};
use crate::{Ctx, Reply, VERSION, clients::ClientInfo, eq_ic, err, parse_i64_strict, session, sys};

/// The Redis version we answer as in INFO and HELLO: the command and
/// protocol level clients may assume (RESP3, HELLO, CLIENT SETINFO).
/// Our own version is reported next to it (`pogocache_version`).
pub const REDIS_COMPAT: &str = "7.2.0";

/// One `COMMAND` entry per name (aliases too), in table order.
fn entries() -> impl Iterator<Item = (&'static [u8], &'static Spec)> {
    SPECS
        .iter()
        .flat_map(|s| s.names.iter().map(move |n| (*n, s)))
}

fn command_entry<R: Reply>((name, spec): (&[u8], &Spec), out: &mut R) {
    let (first, last, step) = spec.keys;
    out.array(10);
    out.bulk(name);
    out.int(spec.arity);
    out.array(spec.flags.redis.len());
    for f in spec.flags.redis {
        out.simple(f.as_bytes());
    }
    out.int(first);
    out.int(last);
    out.int(step);
    // ACL categories, tips, key specs, subcommands: none described.
    for _ in 0..4 {
        out.array(0);
    }
}

/// `COMMAND [COUNT | LIST | INFO name... | DOCS [name...]]`
pub fn command<R: Reply>(args: ArgView<'_>, out: &mut R) {
    if args.len() == 1 {
        out.array(entries().count());
        return entries().for_each(|e| command_entry(e, out));
    }
    let sub = args.get(1);
    if eq_ic(sub, b"count") && args.len() == 2 {
        out.int(entries().count() as i64);
    } else if eq_ic(sub, b"list") && args.len() == 2 {
        out.array(entries().count());
        entries().for_each(|(n, _)| out.bulk(n));
    } else if eq_ic(sub, b"info") {
        let names: Vec<&[u8]> = args.iter().skip(2).collect();
        if names.is_empty() {
            out.array(entries().count());
            return entries().for_each(|e| command_entry(e, out));
        }
        out.array(names.len());
        for n in names {
            match entries().find(|(name, _)| eq_ic(name, n)) {
                Some(e) => command_entry(e, out),
                None => out.null(),
            }
        }
    } else if eq_ic(sub, b"docs") {
        // No documentation is served; clients (redis-cli) fall back to
        // their built-in hints.
        out.map(0);
    } else {
        unknown_sub(b"COMMAND", sub, out);
    }
}

fn unknown_sub<R: Reply>(cmd: &[u8], sub: &[u8], out: &mut R) {
    let mut e = b"ERR unknown subcommand '".to_vec();
    e.extend_from_slice(&sub[..sub.len().min(128)]);
    e.extend_from_slice(b"'. Try ");
    e.extend_from_slice(cmd);
    e.extend_from_slice(b" HELP.");
    out.error(&e);
}

/// Client names and library tags: printable ASCII without spaces, as Redis
/// requires (they are space-separated fields of CLIENT LIST).
fn valid_tag(s: &[u8]) -> bool {
    s.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

const BAD_NAME: &[u8] = b"ERR Client names cannot contain spaces, newlines or special characters.";

/// `HELLO [protover [AUTH username password] [SETNAME name]]`
pub fn hello<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let mut proto = None;
    let mut i = 1;
    if args.len() > 1 {
        match parse_i64_strict(args.get(1)) {
            Some(v @ 2..=3) => proto = Some(v as u8),
            Some(_) => return out.error(b"NOPROTO unsupported protocol version"),
            None => return out.error(b"ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    let mut auth = None;
    let mut name = None;
    while i < args.len() {
        let opt = args.get(i);
        if eq_ic(opt, b"auth") && i + 2 < args.len() {
            auth = Some((args.get(i + 1), args.get(i + 2)));
            i += 3;
        } else if eq_ic(opt, b"setname") && i + 1 < args.len() {
            name = Some(args.get(i + 1));
            i += 2;
        } else {
            let mut e = b"ERR Syntax error in HELLO option '".to_vec();
            e.extend_from_slice(&opt[..opt.len().min(128)]);
            e.push(b'\'');
            return out.error(&e);
        }
    }
    if let Some((user, pass)) = auth {
        let want = &ctx.shared.settings.auth;
        ctx.stats.auth_cmds.incr();
        if user != b"default" || (!want.is_empty() && !session::same(pass, want)) {
            ctx.stats.auth_errors.incr();
            return out.error(err::WRONGPASS);
        }
        ctx.session.authed = true;
    }
    if !ctx.session.authed {
        return out.error(
            b"NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    if let Some(n) = name {
        if !valid_tag(n) {
            return out.error(BAD_NAME);
        }
        if let Some(c) = &ctx.session.client {
            c.tags.lock().unwrap_or_else(|e| e.into_inner()).name = n.to_vec();
        }
    }
    if let Some(p) = proto {
        out.set_resp3(p == 3);
        if let Some(c) = &ctx.session.client {
            c.resp.store(p, Relaxed);
        }
    }
    out.map(8);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(REDIS_COMPAT.as_bytes());
    out.bulk(b"proto");
    out.int(if out.resp3() { 3 } else { 2 });
    out.bulk(b"id");
    out.int(
        ctx.session
            .client
            .as_ref()
            .map(|c| c.id as i64)
            .unwrap_or(0),
    );
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    out.bulk(b"pogocache");
    out.bulk(VERSION.as_bytes());
}

/// `RESET`: back to a fresh connection's state (RESP2, no name, signed
/// out when a password is set).
pub fn reset<R: Reply>(ctx: &mut Ctx<'_>, out: &mut R) {
    out.set_resp3(false);
    ctx.session.multi = None;
    if let Some(subs) = ctx.session.pubsub.take() {
        let id = ctx.session.client.as_ref().map_or(0, |c| c.id);
        ctx.shared.pubsub.remove(id, &subs);
        if let Some(c) = &ctx.session.client {
            c.set_kind(crate::clients::Kind::Normal);
        }
    }
    ctx.session.authed = ctx.shared.settings.auth.is_empty();
    if let Some(c) = &ctx.session.client {
        c.resp.store(2, Relaxed);
        c.tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .name
            .clear();
    }
    out.simple(b"RESET");
}

/// `CLIENT ID | INFO | LIST | GETNAME | SETNAME n | SETINFO k v | KILL ...
/// | NO-EVICT on|off | NO-TOUCH on|off`
pub fn client<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let sub = args.get(1);
    let n = args.len();
    let me = ctx.session.client.clone();
    if eq_ic(sub, b"id") && n == 2 {
        out.int(me.map(|c| c.id as i64).unwrap_or(0));
    } else if eq_ic(sub, b"info") && n == 2 {
        let mut line = Vec::new();
        if let Some(c) = me {
            c.line(ctx.now, &mut line);
        }
        out.bulk(&line);
    } else if eq_ic(sub, b"list") && (n == 2 || (n == 4 && eq_ic(args.get(2), b"type"))) {
        let mut text = Vec::new();
        for c in ctx.shared.clients.list() {
            c.line(ctx.now, &mut text);
        }
        out.bulk(&text);
    } else if eq_ic(sub, b"getname") && n == 2 {
        let name = me.map(|c| {
            c.tags
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .name
                .clone()
        });
        match name {
            Some(v) if !v.is_empty() => out.bulk(&v),
            _ => out.null(),
        }
    } else if eq_ic(sub, b"setname") && n == 3 {
        let v = args.get(2);
        if !valid_tag(v) {
            return out.error(BAD_NAME);
        }
        if let Some(c) = me {
            c.tags.lock().unwrap_or_else(|e| e.into_inner()).name = v.to_vec();
        }
        out.ok();
    } else if eq_ic(sub, b"setinfo") && n == 4 {
        let (attr, v) = (args.get(2), args.get(3));
        if !valid_tag(v) {
            return out.error(
                b"ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
            );
        }
        let Some(c) = me else { return out.ok() };
        let mut t = c.tags.lock().unwrap_or_else(|e| e.into_inner());
        if eq_ic(attr, b"lib-name") {
            t.lib_name = v.to_vec();
        } else if eq_ic(attr, b"lib-ver") {
            t.lib_ver = v.to_vec();
        } else {
            drop(t);
            let mut e = b"ERR Unrecognized option '".to_vec();
            e.extend_from_slice(&attr[..attr.len().min(128)]);
            e.push(b'\'');
            return out.error(&e);
        }
        drop(t);
        out.ok();
    } else if eq_ic(sub, b"kill") && n >= 3 {
        kill(ctx, args, me.as_deref(), out);
    } else if (eq_ic(sub, b"no-evict") || eq_ic(sub, b"no-touch")) && n == 3 {
        let v = args.get(2);
        if eq_ic(v, b"on") || eq_ic(v, b"off") {
            out.ok();
        } else {
            out.error(err::SYNTAX);
        }
    } else {
        unknown_sub(b"CLIENT", sub, out);
    }
}

/// `CLIENT KILL ip:port` (old form: OK or an error) or
/// `CLIENT KILL [ID id] [ADDR ip:port] [LADDR ip:port] [SKIPME yes|no]`
/// (new form: the number killed).
fn kill<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, me: Option<&ClientInfo>, out: &mut R) {
    let my_id = me.map(|c| c.id);
    if args.len() == 3 {
        let addr = args.get(2);
        let n = ctx
            .shared
            .clients
            .kill(|c| c.addr.as_bytes() == addr && Some(c.id) != my_id);
        return if n > 0 {
            out.ok()
        } else {
            out.error(b"ERR No such client")
        };
    }
    let (mut id, mut addr, mut laddr, mut skipme) = (None, None, None, true);
    let mut kind = None;
    let mut i = 2;
    while i + 1 < args.len() {
        let (k, v) = (args.get(i), args.get(i + 1));
        if eq_ic(k, b"id") {
            match parse_i64_strict(v) {
                Some(x) if x > 0 => id = Some(x as u64),
                _ => return out.error(b"ERR client-id should be greater than 0"),
            }
        } else if eq_ic(k, b"addr") {
            addr = Some(v);
        } else if eq_ic(k, b"laddr") {
            laddr = Some(v);
        } else if eq_ic(k, b"type") {
            match crate::clients::Kind::parse(v) {
                Some(t) => kind = Some(t),
                None => {
                    let mut msg = b"ERR Unknown client type '".to_vec();
                    msg.extend_from_slice(&v[..v.len().min(64)]);
                    msg.push(b'\'');
                    return out.error(&msg);
                }
            }
        } else if eq_ic(k, b"skipme") {
            skipme = if eq_ic(v, b"yes") {
                true
            } else if eq_ic(v, b"no") {
                false
            } else {
                return out.error(err::SYNTAX);
            };
        } else {
            return out.error(err::SYNTAX);
        }
        i += 2;
    }
    if i != args.len() {
        return out.error(err::SYNTAX);
    }
    let n = ctx.shared.clients.kill(|c| {
        id.is_none_or(|x| c.id == x)
            && addr.is_none_or(|a| c.addr.as_bytes() == a)
            && laddr.is_none_or(|a| c.laddr.as_bytes() == a)
            && kind.is_none_or(|t| c.kind() == t)
            && !(skipme && Some(c.id) == my_id)
    });
    out.int(n as i64);
}

/// `CONFIG GET pattern [pattern ...]` over the settings tools ask for.
/// Nothing is settable at run time.
pub fn config<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let sub = args.get(1);
    if eq_ic(sub, b"set") {
        return config_set(ctx, args, out);
    }
    if eq_ic(sub, b"rewrite") && args.len() == 2 {
        // Settings come from flags; there is no file to rewrite. Sentinel
        // sends this inside its promotion MULTI and ignores the answer.
        return out.error(b"ERR The server is running without a config file");
    }
    if !eq_ic(sub, b"get") {
        return unknown_sub(b"CONFIG", sub, out);
    }
    if args.len() < 3 {
        return out.error(err::ARITY);
    }
    let s = &ctx.shared.settings;
    let (read_only, priority, backlog) = ctx.shared.repl.settings();
    let all: [(&str, String); 16] = [
        ("replica-read-only", yes_no(read_only)),
        ("slave-read-only", yes_no(read_only)),
        ("replica-priority", priority.to_string()),
        ("slave-priority", priority.to_string()),
        ("repl-backlog-size", backlog.to_string()),
        ("maxmemory", s.maxmemory.to_string()),
        (
            "maxmemory-policy",
            if s.evict {
                "allkeys-random"
            } else {
                "noeviction"
            }
            .into(),
        ),
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("databases", "1".into()),
        ("maxclients", s.maxconns.to_string()),
        ("port", s.port.to_string()),
        ("bind", s.host.clone()),
        ("timeout", "0".into()),
        ("tcp-keepalive", "300".into()),
        ("io-threads", s.threads.to_string()),
    ];
    let hits: Vec<&(&str, String)> = all
        .iter()
        .filter(|(k, _)| {
            args.iter()
                .skip(2)
                .any(|p| pogocache_store::glob::matches(&p.to_ascii_lowercase(), k.as_bytes()))
        })
        .collect();
    out.map(hits.len());
    for (k, v) in hits {
        out.bulk(k.as_bytes());
        out.bulk(v.as_bytes());
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// `CONFIG SET name value [name value ...]` for the replication
/// parameters Sentinel and operators change at run time.
fn config_set<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    if args.len() < 4 || !args.len().is_multiple_of(2) {
        return out.error(b"ERR wrong number of arguments for 'config|set' command");
    }
    let repl = &ctx.shared.repl;
    // Check every pair before applying any, as Redis does.
    enum Change {
        ReadOnly(bool),
        Priority(u32),
        Auth(Option<Vec<u8>>),
        Backlog(usize),
    }
    let mut changes = Vec::new();
    for i in (2..args.len()).step_by(2) {
        let (k, v) = (args.get(i).to_ascii_lowercase(), args.get(i + 1));
        let bad = |out: &mut R, why: &str| {
            let msg = format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
                String::from_utf8_lossy(&k)
            );
            out.error(msg.as_bytes());
        };
        let c = match &k[..] {
            b"replica-read-only" | b"slave-read-only" => {
                if eq_ic(v, b"yes") {
                    Change::ReadOnly(true)
                } else if eq_ic(v, b"no") {
                    Change::ReadOnly(false)
                } else {
                    return bad(out, "argument must be 'yes' or 'no'");
                }
            }
            b"replica-priority" | b"slave-priority" => match parse_i64_strict(v) {
                Some(p) if (0..=i32::MAX as i64).contains(&p) => Change::Priority(p as u32),
                _ => return bad(out, "argument couldn't be parsed into an integer"),
            },
            b"masterauth" | b"primaryauth" => Change::Auth((!v.is_empty()).then(|| v.to_vec())),
            b"repl-backlog-size" => match crate::parse_memory(v) {
                Some(n) if n > 0 => Change::Backlog(n as usize),
                _ => return bad(out, "argument must be a memory value"),
            },
            _ => {
                let msg = format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                    String::from_utf8_lossy(&k)
                );
                return out.error(msg.as_bytes());
            }
        };
        changes.push(c);
    }
    for c in changes {
        match c {
            Change::ReadOnly(b) => repl.set_read_only(b),
            Change::Priority(p) => repl.set_priority(p),
            Change::Auth(a) => repl.set_primary_auth(a),
            Change::Backlog(n) => repl.set_backlog_size(n),
        }
    }
    out.ok();
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", UNITS[u])
    }
}

const SECTIONS: [&str; 9] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "cluster",
    "keyspace",
];

/// `INFO [section ...]`: Redis's field format (`# Section`, `key:value`
/// lines, CRLF, a blank line between sections) for the sections
/// redis_exporter-style scrapers read.
pub fn info<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let want: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = want.is_empty()
        || want
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let mut text = String::new();
    for sec in SECTIONS {
        if !all && !want.iter().any(|w| w == sec) {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        section(ctx, sec, &mut text);
    }
    out.bulk(text.as_bytes());
}

fn section(ctx: &Ctx<'_>, name: &str, t: &mut String) {
    use std::fmt::Write;
    let sh = ctx.shared;
    let s = &sh.settings;
    t.push_str(match name {
        "server" => "# Server\r\n",
        "clients" => "# Clients\r\n",
        "memory" => "# Memory\r\n",
        "persistence" => "# Persistence\r\n",
        "stats" => "# Stats\r\n",
        "replication" => "# Replication\r\n",
        "cpu" => "# CPU\r\n",
        "cluster" => "# Cluster\r\n",
        _ => "# Keyspace\r\n",
    });
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(t, "{k}:{v}\r\n");
    };
    let uptime = ((ctx.now - sh.started) / 1_000_000_000).max(0);
    match name {
        "server" => {
            kv("redis_version", &REDIS_COMPAT);
            kv("pogocache_version", &VERSION);
            kv(
                "redis_mode",
                &if sh.cluster.is_some() {
                    "cluster"
                } else {
                    "standalone"
                },
            );
            kv(
                "os",
                &format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            );
            kv("arch_bits", &usize::BITS);
            kv("multiplexing_api", &"epoll");
            kv("process_id", &std::process::id());
            kv("run_id", &sh.repl.run_id);
            kv("tcp_port", &s.port);
            kv(
                "server_time_usec",
                &(pogocache_store::clock::wall_ns() / 1000),
            );
            kv("uptime_in_seconds", &uptime);
            kv("uptime_in_days", &(uptime / 86_400));
            kv("hz", &10);
            kv("io_threads_active", &0);
        }
        "clients" => {
            kv("connected_clients", &sh.conns.curr.load(Relaxed));
            kv("maxclients", &s.maxconns);
            kv("blocked_clients", &0);
            kv("tracking_clients", &0);
        }
        "memory" => {
            let used = sh.store.bytes() as u64;
            let rss = sys::rss() as u64;
            kv("used_memory", &used);
            kv("used_memory_human", &human(used));
            kv("used_memory_rss", &rss);
            kv("used_memory_rss_human", &human(rss));
            kv("maxmemory", &s.maxmemory);
            kv("maxmemory_human", &human(s.maxmemory));
            kv(
                "maxmemory_policy",
                &if s.evict {
                    "allkeys-random"
                } else {
                    "noeviction"
                },
            );
            kv(
                "mem_fragmentation_ratio",
                &format!("{:.2}", rss as f64 / used.max(1) as f64),
            );
            kv("mem_allocator", &s.allocator);
            // Packed entries' segments (issue 17): holes are the memory
            // that deletes, overwrites and evictions freed and compaction
            // has not yet given back (zeros when the store does not pack).
            let seg = sh.store.segment_stats().unwrap_or_default();
            kv("mem_segments", &seg.segments);
            kv("mem_segments_bytes", &seg.bytes);
            kv("mem_segments_holes", &seg.holes);
        }
        "persistence" => {
            kv("loading", &0);
            kv("aof_enabled", &0);
        }
        "stats" => {
            let tot = sh.totals();
            kv("total_connections_received", &sh.conns.total.load(Relaxed));
            kv("total_commands_processed", &sh.commands_processed());
            kv("rejected_connections", &sh.conns.rejected.load(Relaxed));
            kv("expired_keys", &sh.store.expirations());
            kv("evicted_keys", &sh.store.evictions());
            kv("keyspace_hits", &tot.get_hits);
            kv("keyspace_misses", &tot.get_misses);
            let (full, ok, bad) = crate::repl::sync_stats(&sh.repl);
            kv("sync_full", &full);
            kv("sync_partial_ok", &ok);
            kv("sync_partial_err", &bad);
        }
        "replication" => crate::repl::info(&sh.repl, &mut kv),
        "cluster" => kv("cluster_enabled", &u8::from(sh.cluster.is_some())),
        "cpu" => {
            let (user, system) = sys::cpu_times_us();
            let secs = |us: u64| format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
            kv("used_cpu_sys", &secs(system));
            kv("used_cpu_user", &secs(user));
        }
        _ => {
            let keys = sh.store.len();
            if keys > 0 {
                let expires = sh.store.count_expiring(ctx.now);
                kv("db0", &format!("keys={keys},expires={expires},avg_ttl=0"));
            }
        }
    }
}
