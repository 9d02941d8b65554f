//! Cluster mode (`--cluster yes`): Redis Cluster's client-facing contract
//! over a topology an operator supplies.
//!
//! Owns: key → slot hashing (CRC16/XMODEM with `{hash tags}`, exactly
//! Redis's), the nodes file (parsing and validation: every one of the
//! 16,384 slots owned exactly once), the current topology and its
//! reloads, the routing decision (`MOVED`, `CROSSSLOT`) for RESP
//! requests, the `CLUSTER` subcommands in Redis's reply formats, and
//! dropping the keys of slots this node stopped owning. Does not own:
//! gossip, failure detection or slot migration (there are none: an
//! orchestrator writes the file, and moving a slot moves ownership, not
//! data, because this is a cache), nor sharding for Memcache, HTTP and
//! Postgres, which serve every key on a cluster node as on any other
//! (clients of those protocols shard with a proxy or consistent hashing;
//! see docs/SCALING.md).
//!
//! ## The nodes file
//!
//! One node a line: a name, `host:port` (what clients are sent to) and
//! the slots it owns, as single slots or `first-last` ranges. `#` starts
//! a comment.
//!
//! ```text
//! # name   address          slots
//! node-1   10.0.0.1:9401    0-5460
//! node-2   10.0.0.2:9401    5461-10922
//! node-3   10.0.0.3:9401    10923-16383
//! ```
//!
//! A node finds its own line by `--cluster-node NAME`, or else by its
//! `-h`/`-p` address. A name that is 40 hex digits is used as the Redis
//! node id; any other name is turned into a stable 40-hex id, so every
//! node and every client agree on the ids without coordination.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwap;
use pogocache_protocol::ArgView;

use crate::table::Spec;
use crate::{Ctx, Reply, Shared, err, parse_i64_strict};

/// Redis Cluster's slot count.
pub const SLOTS: usize = 16384;

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The slot of `key`, as Redis computes it: CRC16/XMODEM of the key, or of
/// the part between the first `{` and the first `}` after it when that
/// part is not empty, modulo 16,384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match memchr_byte(b'{', key) {
        Some(open) => match memchr_byte(b'}', &key[open + 1..]) {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    CRC16.checksum(hashed) & (SLOTS as u16 - 1)
}

fn memchr_byte(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// One node of the topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The name in the nodes file.
    pub name: String,
    /// The 40-hex Redis node id.
    pub id: String,
    /// Where clients are sent (`MOVED`, `CLUSTER SLOTS`).
    pub host: String,
    pub port: u16,
    /// Owned slot ranges, inclusive, sorted.
    pub ranges: Vec<(u16, u16)>,
}

/// A validated topology and which node this server is.
#[derive(Debug)]
pub struct Topology {
    pub nodes: Vec<Node>,
    /// Index into `nodes` of each slot's owner.
    owner: Box<[u16]>,
    /// This server's index into `nodes`.
    pub me: usize,
    /// Incremented by every reload that changed the topology (the
    /// `config_epoch` of CLUSTER NODES and INFO).
    pub epoch: u64,
}

/// The 40-hex id for a node name: the name itself when it already is one
/// (lowercased), else four CRC-32s of the name with different salts,
/// printed as hex (stable across versions and machines).
pub fn node_id(name: &str) -> String {
    if name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return name.to_ascii_lowercase();
    }
    let mut id = String::with_capacity(40);
    for salt in 0u8..5 {
        let mut h = crc32fast::Hasher::new();
        h.update(&[salt]);
        h.update(name.as_bytes());
        id.push_str(&format!("{:08x}", h.finalize()));
    }
    id
}

/// Parses and validates a nodes file's text. Errors name the line and
/// what is wrong, for the operator who wrote it.
pub fn parse_nodes(text: &str) -> Result<Vec<Node>, String> {
    let mut nodes: Vec<Node> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let lineno = n + 1;
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default().to_string();
        let addr = words
            .next()
            .ok_or_else(|| format!("line {lineno}: expected `name host:port slots...`"))?;
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| {
                let h = h.trim_start_matches('[').trim_end_matches(']');
                Some((h.to_string(), p.parse::<u16>().ok().filter(|p| *p > 0)?))
            })
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| format!("line {lineno}: address '{addr}' is not host:port"))?;
        let mut ranges = Vec::new();
        for w in words {
            let (a, b) = w.split_once('-').unwrap_or((w, w));
            let parse = |s: &str| s.parse::<u16>().ok().filter(|v| (*v as usize) < SLOTS);
            match (parse(a), parse(b)) {
                (Some(a), Some(b)) if a <= b => ranges.push((a, b)),
                _ => {
                    return Err(format!(
                        "line {lineno}: '{w}' is not a slot or a range of slots (0-16383)"
                    ));
                }
            }
        }
        if nodes.iter().any(|o| o.name == name) {
            return Err(format!("line {lineno}: node '{name}' appears twice"));
        }
        if nodes.iter().any(|o| o.host == host && o.port == port) {
            return Err(format!("line {lineno}: address '{addr}' appears twice"));
        }
        ranges.sort_unstable();
        nodes.push(Node {
            id: node_id(&name),
            name,
            host,
            port,
            ranges,
        });
    }
    if nodes.is_empty() {
        return Err("no nodes".into());
    }
    if nodes.len() > u16::MAX as usize {
        return Err("too many nodes".into());
    }
    owners(&nodes).map(|_| nodes)
}

/// Each slot's owner, or the first slot assigned twice or not at all.
fn owners(nodes: &[Node]) -> Result<Box<[u16]>, String> {
    const NONE: u16 = u16::MAX;
    let mut owner = vec![NONE; SLOTS].into_boxed_slice();
    for (i, node) in nodes.iter().enumerate() {
        for &(a, b) in &node.ranges {
            for s in a..=b {
                let o = &mut owner[s as usize];
                if *o != NONE {
                    return Err(format!(
                        "slot {s} is assigned twice ('{}' and '{}')",
                        nodes[*o as usize].name, node.name
                    ));
                }
                *o = i as u16;
            }
        }
    }
    if let Some(first) = owner.iter().position(|&o| o == NONE) {
        let last = owner[first..]
            .iter()
            .position(|&o| o != NONE)
            .map_or(SLOTS - 1, |n| first + n - 1);
        return Err(format!(
            "slots {first}-{last} are not assigned: every slot 0-16383 needs exactly one node"
        ));
    }
    Ok(owner)
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Here,
    Moved(u16),
    CrossSlot,
}

impl Topology {
    /// Builds a topology from validated nodes; `me` is a node name, or
    /// `None` to find this server by `host:port`.
    pub fn new(nodes: Vec<Node>, me: Option<&str>, host: &str, port: u16) -> Result<Self, String> {
        let owner = owners(&nodes)?;
        let me = match me {
            Some(name) => nodes
                .iter()
                .position(|n| n.name == name)
                .ok_or_else(|| format!("no node named '{name}' (--cluster-node)"))?,
            None => {
                let hits: Vec<usize> = (0..nodes.len())
                    .filter(|&i| nodes[i].port == port && nodes[i].host == host)
                    .collect();
                match hits[..] {
                    [i] => i,
                    _ => {
                        return Err(format!(
                            "no node has this server's address {host}:{port}: \
                             name it with --cluster-node"
                        ));
                    }
                }
            }
        };
        Ok(Topology {
            nodes,
            owner,
            me,
            epoch: 1,
        })
    }

    /// The node owning `slot`.
    #[inline]
    pub fn owner(&self, slot: u16) -> &Node {
        &self.nodes[self.owner[slot as usize] as usize]
    }

    /// Whether this server owns `slot`.
    #[inline]
    pub fn owns(&self, slot: u16) -> bool {
        self.owner[slot as usize] as usize == self.me
    }

    pub fn myself(&self) -> &Node {
        &self.nodes[self.me]
    }

    /// Slots this server owns.
    pub fn owned(&self) -> usize {
        self.owner
            .iter()
            .filter(|&&o| o as usize == self.me)
            .count()
    }

    /// The route of a request by the table's key positions: every key in
    /// one slot, and that slot owned here.
    pub fn route(&self, spec: &Spec, args: &ArgView<'_>) -> Route {
        let (first, last, step) = spec.keys;
        if first <= 0 || first as usize >= args.len() {
            return Route::Here;
        }
        let last = if last < 0 {
            args.len() as i64 + last
        } else {
            last.min(args.len() as i64 - 1)
        };
        let mut slot = None;
        let mut i = first;
        while i <= last {
            let s = key_slot(args.get(i as usize));
            match slot {
                None => slot = Some(s),
                Some(t) if t != s => return Route::CrossSlot,
                _ => {}
            }
            i += step.max(1);
        }
        match slot {
            Some(s) if !self.owns(s) => Route::Moved(s),
            _ => Route::Here,
        }
    }
}

/// The cluster state of a server: its nodes file and current topology.
pub struct Cluster {
    path: PathBuf,
    me: Option<String>,
    host: String,
    port: u16,
    topo: ArcSwap<Topology>,
    /// Serialises reloads (SIGHUP and CLUSTER RELOAD may race).
    reloading: Mutex<()>,
    /// Keys dropped because their slot moved away
    /// (`pogocache_cluster_keys_dropped_total`).
    pub dropped: AtomicU64,
    /// Successful reloads that changed the topology.
    pub reloads: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("path", &self.path).finish()
    }
}

fn read(path: &Path) -> Result<Vec<Node>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_nodes(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Slots this node owned before and no longer owns.
    pub lost: usize,
    /// Slots it owns now and did not before.
    pub gained: usize,
    pub changed: bool,
}

impl Cluster {
    /// Reads and validates the nodes file at startup.
    pub fn load(path: PathBuf, me: Option<String>, host: &str, port: u16) -> Result<Self, String> {
        let nodes = read(&path)?;
        let topo = Topology::new(nodes, me.as_deref(), host, port)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Cluster {
            path,
            me,
            host: host.to_string(),
            port,
            topo: ArcSwap::from_pointee(topo),
            reloading: Mutex::new(()),
            dropped: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
        })
    }

    /// The current topology (a cheap, lock-free snapshot).
    #[inline]
    pub fn topology(&self) -> arc_swap::Guard<Arc<Topology>> {
        self.topo.load()
    }

    /// Re-reads the nodes file. An invalid file changes nothing (the
    /// error says why). Keys of the slots this node lost are dropped by a
    /// background thread, so the caller (a worker or the signal thread)
    /// does not wait for a pass over the store.
    pub fn reload(shared: &Arc<Shared>) -> Result<Reloaded, String> {
        let Some(c) = shared.cluster.as_ref() else {
            return Err("cluster mode is off".into());
        };
        let _one = c.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let nodes = read(&c.path)?;
        let old = c.topo.load_full();
        let mut new = Topology::new(nodes, c.me.as_deref(), &c.host, c.port)
            .map_err(|e| format!("{}: {e}", c.path.display()))?;
        let mut lost = vec![false; SLOTS];
        let mut r = Reloaded::default();
        for s in 0..SLOTS as u16 {
            match (old.owns(s), new.owns(s)) {
                (true, false) => {
                    lost[s as usize] = true;
                    r.lost += 1;
                }
                (false, true) => r.gained += 1,
                _ => {}
            }
        }
        r.changed = old.nodes != new.nodes || old.myself().name != new.myself().name;
        new.epoch = old.epoch + u64::from(r.changed);
        c.topo.store(Arc::new(new));
        if r.changed {
            c.reloads.fetch_add(1, Relaxed);
        }
        if r.lost > 0 {
            let lost = Arc::new(lost);
            let (sh, l) = (shared.clone(), lost.clone());
            let spawned = std::thread::Builder::new()
                .name("cluster-drop".into())
                .spawn(move || drop_lost(&sh, &l));
            if spawned.is_err() {
                // No thread to spare: drop them here.
                drop_lost(shared, &lost);
            }
        }
        Ok(r)
    }
}

/// Removes the keys of the `lost` slots that this node still does not
/// own (a later reload may have given some back) and counts them.
fn drop_lost(shared: &Shared, lost: &[bool]) {
    let Some(c) = shared.cluster.as_ref() else {
        return;
    };
    let now = pogocache_store::clock::monotonic_ns();
    let topo = c.topology();
    let n = shared.store.remove_where(now, |k| {
        let s = key_slot(k);
        lost[s as usize] && !topo.owns(s)
    });
    c.dropped.fetch_add(n as u64, Relaxed);
    if shared.settings.verbosity >= 1 {
        crate::log::line(format_args!(
            "* Cluster: dropped {n} keys of slots this node no longer owns"
        ));
    }
}

/// `MOVED`/`CROSSSLOT` for a RESP request on a cluster node, or `false`
/// when the request runs here.
pub fn redirect<R: Reply>(ctx: &Ctx<'_>, spec: &Spec, args: &ArgView<'_>, out: &mut R) -> bool {
    let Some(c) = ctx.shared.cluster.as_ref() else {
        return false;
    };
    let topo = c.topology();
    match topo.route(spec, args) {
        Route::Here => false,
        Route::CrossSlot => {
            out.error(b"CROSSSLOT Keys in request don't hash to the same slot");
            true
        }
        Route::Moved(slot) => {
            let n = topo.owner(slot);
            let msg = format!("MOVED {slot} {}:{}", n.host, n.port);
            out.error(msg.as_bytes());
            true
        }
    }
}

/// Redis's error for cluster commands on a server not in cluster mode.
pub const DISABLED: &[u8] = b"ERR This instance has cluster support disabled";

/// ASKING, READONLY, READWRITE: accepted on a cluster node (there is no
/// migration to ask about, and replicas are not part of the topology).
pub fn accept<R: Reply>(ctx: &Ctx<'_>, out: &mut R) {
    if ctx.shared.cluster.is_some() {
        out.ok()
    } else {
        out.error(DISABLED)
    }
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "MYSHARDID",
    "    Return the node's shard id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "RELOAD",
    "    Re-read the nodes file (--cluster-config), as SIGHUP does.",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "HELP",
    "    Print this help.",
];

fn is_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
}

/// `CLUSTER <subcommand> ...`.
pub fn command<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let Some(c) = ctx.shared.cluster.as_ref() else {
        out.error(DISABLED);
        return;
    };
    let sub = args.get(1);
    let lower = String::from_utf8_lossy(sub).to_ascii_lowercase();
    let want = match lower.as_str() {
        "keyslot" | "countkeysinslot" => 3,
        "getkeysinslot" => 4,
        "help" | "info" | "myid" | "myshardid" | "nodes" | "reload" | "shards" | "slots" => 2,
        _ => {
            let msg = format!(
                "ERR unknown subcommand '{}'. Try CLUSTER HELP.",
                String::from_utf8_lossy(sub)
            );
            out.error(msg.as_bytes());
            return;
        }
    };
    if args.len() != want {
        let msg = format!("ERR wrong number of arguments for 'cluster|{lower}' command");
        out.error(msg.as_bytes());
        return;
    }
    let topo = c.topology();
    match lower.as_str() {
        "help" => {
            out.array(HELP.len());
            for l in HELP {
                out.simple(l.as_bytes());
            }
        }
        "keyslot" => out.int(key_slot(args.get(2)) as i64),
        "myid" => out.bulk(topo.myself().id.as_bytes()),
        "myshardid" => out.bulk(node_id(&format!("shard:{}", topo.myself().name)).as_bytes()),
        "info" => {
            let n = topo.nodes.len();
            let text = format!(
                "cluster_state:ok\r\n\
                 cluster_slots_assigned:{SLOTS}\r\n\
                 cluster_slots_ok:{SLOTS}\r\n\
                 cluster_slots_pfail:0\r\n\
                 cluster_slots_fail:0\r\n\
                 cluster_known_nodes:{n}\r\n\
                 cluster_size:{}\r\n\
                 cluster_current_epoch:{}\r\n\
                 cluster_my_epoch:{}\r\n\
                 cluster_stats_messages_sent:0\r\n\
                 cluster_stats_messages_received:0\r\n\
                 total_cluster_links_buffer_limit_exceeded:0\r\n\
                 cluster_slots_owned_here:{}\r\n\
                 cluster_keys_dropped:{}\r\n\
                 cluster_reloads:{}\r\n",
                topo.nodes.iter().filter(|n| !n.ranges.is_empty()).count(),
                topo.epoch,
                topo.epoch,
                topo.owned(),
                c.dropped.load(Relaxed),
                c.reloads.load(Relaxed),
            );
            out.bulk(text.as_bytes());
        }
        "nodes" => {
            let mut text = String::new();
            let now_ms = pogocache_store::clock::wall_ns() / 1_000_000;
            for (i, n) in topo.nodes.iter().enumerate() {
                let me = i == topo.me;
                let bus = n.port as u32 + 10000;
                let addr = if is_ip(&n.host) {
                    format!("{}:{}@{bus}", n.host, n.port)
                } else {
                    format!(":{}@{bus},{}", n.port, n.host)
                };
                text.push_str(&format!(
                    "{} {addr} {} - 0 {} {} connected",
                    n.id,
                    if me { "myself,master" } else { "master" },
                    if me { 0 } else { now_ms },
                    topo.epoch,
                ));
                for &(a, b) in &n.ranges {
                    if a == b {
                        text.push_str(&format!(" {a}"));
                    } else {
                        text.push_str(&format!(" {a}-{b}"));
                    }
                }
                text.push('\n');
            }
            out.bulk(text.as_bytes());
        }
        "slots" => {
            let mut ranges: Vec<(u16, u16, &Node)> = topo
                .nodes
                .iter()
                .flat_map(|n| n.ranges.iter().map(move |&(a, b)| (a, b, n)))
                .collect();
            ranges.sort_unstable_by_key(|r| r.0);
            out.array(ranges.len());
            for (a, b, n) in ranges {
                out.array(3);
                out.int(a as i64);
                out.int(b as i64);
                out.array(3);
                out.bulk(n.host.as_bytes());
                out.int(n.port as i64);
                out.bulk(n.id.as_bytes());
            }
        }
        "shards" => {
            out.array(topo.nodes.len());
            for n in &topo.nodes {
                out.map(2);
                out.bulk(b"slots");
                out.array(n.ranges.len() * 2);
                for &(a, b) in &n.ranges {
                    out.int(a as i64);
                    out.int(b as i64);
                }
                out.bulk(b"nodes");
                out.array(1);
                let ip = is_ip(&n.host);
                out.map(if ip { 7 } else { 8 });
                out.bulk(b"id");
                out.bulk(n.id.as_bytes());
                out.bulk(b"port");
                out.int(n.port as i64);
                out.bulk(b"ip");
                out.bulk(if ip { n.host.as_bytes() } else { b"" });
                out.bulk(b"endpoint");
                out.bulk(n.host.as_bytes());
                if !ip {
                    out.bulk(b"hostname");
                    out.bulk(n.host.as_bytes());
                }
                out.bulk(b"role");
                out.bulk(b"master");
                out.bulk(b"replication-offset");
                out.int(0);
                out.bulk(b"health");
                out.bulk(b"online");
            }
        }
        "countkeysinslot" => {
            let Some(slot) = slot_arg(args.get(2)) else {
                out.error(b"ERR Invalid slot");
                return;
            };
            let mut n = 0i64;
            ctx.shared.store.for_each(ctx.now, |e| {
                n += i64::from(key_slot(e.key()) == slot);
            });
            out.int(n);
        }
        "getkeysinslot" => {
            let Some(slot) = slot_arg(args.get(2)) else {
                out.error(b"ERR Invalid slot");
                return;
            };
            let count = match parse_i64_strict(args.get(3)) {
                Some(n) if n >= 0 => n as usize,
                Some(_) => {
                    out.error(b"ERR Invalid number of keys");
                    return;
                }
                None => {
                    out.error(err::INTEGER);
                    return;
                }
            };
            let mut keys = Vec::new();
            ctx.shared.store.for_each(ctx.now, |e| {
                if keys.len() < count && key_slot(e.key()) == slot {
                    keys.push(e.key().to_vec());
                }
            });
            out.array(keys.len());
            for k in keys {
                out.bulk(&k);
            }
        }
        _ => {
            // "reload"
            drop(topo);
            match Cluster::reload(ctx.shared) {
                Ok(_) => out.ok(),
                Err(e) => out.error(format!("ERR {e}").as_bytes()),
            }
        }
    }
}

fn slot_arg(a: &[u8]) -> Option<u16> {
    parse_i64_strict(a)
        .filter(|s| (0..SLOTS as i64).contains(s))
        .map(|s| s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from Redis's CLUSTER KEYSLOT and its cluster spec.
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
        // Empty tag: the whole key is hashed.
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            CRC16.checksum(b"foo{}{bar}") & 16383
        );
        // Only the first tag counts.
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"{unclosed"), CRC16.checksum(b"{unclosed") & 16383);
        assert_eq!(key_slot(b""), 0);
    }

    const THREE: &str = "# a comment\n\
        n1 127.0.0.1:7001 0-5460\n\
        n2 127.0.0.1:7002 5461-10922  # trailing\n\
        \n\
        n3 127.0.0.1:7003 10923-16382 16383\n";

    #[test]
    fn a_valid_file_parses_and_finds_me() {
        let nodes = parse_nodes(THREE).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[2].ranges, vec![(10923, 16382), (16383, 16383)]);
        let t = Topology::new(nodes.clone(), None, "127.0.0.1", 7002).unwrap();
        assert_eq!(t.me, 1);
        assert_eq!(t.owned(), 5462);
        assert_eq!(t.owner(0).name, "n1");
        assert_eq!(t.owner(16383).name, "n3");
        let t = Topology::new(nodes.clone(), Some("n3"), "0.0.0.0", 9401).unwrap();
        assert_eq!(t.me, 2);
        let e = Topology::new(nodes.clone(), None, "0.0.0.0", 9401).unwrap_err();
        assert!(e.contains("--cluster-node"), "{e}");
        let e = Topology::new(nodes, Some("n9"), "0.0.0.0", 9401).unwrap_err();
        assert_eq!(e, "no node named 'n9' (--cluster-node)");
    }

    #[test]
    fn invalid_files_say_what_is_wrong() {
        let cases = [
            ("", "no nodes"),
            (
                "n1 127.0.0.1:7001 0-16382\n",
                "slots 16383-16383 are not assigned",
            ),
            (
                "n1 127.0.0.1:7001 0-100 200-16383\n",
                "slots 101-199 are not assigned",
            ),
            (
                "n1 127.0.0.1:7001 0-9000\nn2 127.0.0.1:7002 9000-16383\n",
                "slot 9000 is assigned twice ('n1' and 'n2')",
            ),
            (
                "n1 127.0.0.1:7001 0-16384\n",
                "line 1: '0-16384' is not a slot",
            ),
            ("n1 127.0.0.1:7001 9-3\n", "line 1: '9-3' is not a slot"),
            ("n1 127.0.0.1:7001 x\n", "line 1: 'x' is not a slot"),
            (
                "n1 127.0.0.1 0-16383\n",
                "line 1: address '127.0.0.1' is not host:port",
            ),
            ("n1 127.0.0.1:0 0-16383\n", "is not host:port"),
            ("n1\n", "line 1: expected `name host:port slots...`"),
            (
                "n1 a:1 0-100\nn1 b:1 101-16383\n",
                "line 2: node 'n1' appears twice",
            ),
            (
                "n1 a:1 0-100\nn2 a:1 101-16383\n",
                "line 2: address 'a:1' appears twice",
            ),
        ];
        for (text, want) in cases {
            let e = parse_nodes(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        // IPv6 in brackets, hostnames, and a node without slots.
        let n = parse_nodes("a [::1]:7001 0-16383\nb pogo-2.pogo:9401\n").unwrap();
        assert_eq!((n[0].host.as_str(), n[0].port), ("::1", 7001));
        assert_eq!(n[1].host, "pogo-2.pogo");
        assert!(n[1].ranges.is_empty());
    }

    #[test]
    fn ids_are_40_hex_and_stable() {
        let id = node_id("node-1");
        assert_eq!(id.len(), 40);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id, node_id("node-1"));
        assert_ne!(id, node_id("node-2"));
        let given = "07C37DFEB235213A872192D90877D0CD55635B91";
        assert_eq!(node_id(given), given.to_ascii_lowercase());
    }
}
