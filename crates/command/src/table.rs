//! The command table: one row per command, and everything generated from
//! it.
//!
//! Owns: each command's names, the argument counts it accepts (checked
//! once, in [`crate::execute`], before the handler runs), the metadata
//! `COMMAND` reports (Redis's arity, flags, key positions), the flags
//! other layers route by (write, read-only, admin, may block), its
//! `/metrics` label, and the columns of its Postgres result. Does not own:
//! what a command does (its handler, dispatched in `lib.rs`) or how a
//! Postgres result's tag is worded (`postgres.rs`).
//!
//! Adding a command is one row here plus its handler arm in `lib.rs`;
//! dispatch, lookup, stats labels, `COMMAND` and the Postgres columns
//! follow from the row.

/// How a command touches the keyspace, for routing (cluster slots),
/// replication (which commands to forward) and `COMMAND`'s flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    /// The flag words `COMMAND INFO` reports, Redis's names.
    pub redis: &'static [&'static str],
    /// [`WRITE`], [`READONLY`], [`ADMIN`], [`MAY_BLOCK`] bits.
    pub bits: u8,
}

/// Changes the keyspace.
pub const WRITE: u8 = 1;
/// Only reads the keyspace.
pub const READONLY: u8 = 2;
/// Operates the server (persistence, maintenance, connections).
pub const ADMIN: u8 = 4;
/// May wait for something outside the request (replica acknowledgements).
pub const MAY_BLOCK: u8 = 8;

const W: Flags = Flags {
    redis: &["write"],
    bits: WRITE,
};
const R: Flags = Flags {
    redis: &["readonly", "fast"],
    bits: READONLY,
};
const SCANS: Flags = Flags {
    redis: &["readonly"],
    bits: READONLY,
};
const A: Flags = Flags {
    redis: &["admin"],
    bits: ADMIN,
};
const F: Flags = Flags {
    redis: &["fast"],
    bits: 0,
};
const L: Flags = Flags {
    redis: &["loading", "stale", "fast"],
    bits: 0,
};
const CONN: Flags = Flags {
    redis: &["noscript", "loading", "stale", "fast"],
    bits: 0,
};
const INTRO: Flags = Flags {
    redis: &["loading", "stale"],
    bits: 0,
};
const ADMIN_INTRO: Flags = Flags {
    redis: &["admin", "noscript", "loading", "stale"],
    bits: ADMIN,
};
const BLOCKS: Flags = Flags {
    redis: &["noscript"],
    bits: MAY_BLOCK,
};

const PUBSUB: Flags = Flags {
    redis: &["pubsub", "loading", "stale", "fast"],
    bits: 0,
};
const TX: Flags = Flags {
    redis: &["noscript", "loading", "stale", "fast"],
    bits: 0,
};

/// No upper bound on the argument count.
const ANY: usize = usize::MAX;

/// One row of the table.
#[derive(Debug)]
pub struct Spec {
    pub cmd: Cmd,
    /// Lowercase names; the first is the label (`/metrics`), the rest are
    /// aliases (`flushdb`, `flushall`).
    pub names: &'static [&'static [u8]],
    /// Arguments accepted, the name included (Pogocache's rule): fewer or
    /// more get `ERR wrong number of arguments` before the handler runs.
    /// Handlers check only what depends on a subcommand or option.
    pub args: (usize, usize),
    /// Redis's arity as `COMMAND` reports it (negative: at least).
    pub arity: i64,
    pub flags: Flags,
    /// First key, last key (negative: from the end) and step, Redis's
    /// convention; `(0, 0, 0)` for commands without keys.
    pub keys: (i64, i64, i64),
    /// Columns of the Postgres result (empty: no rows). SET with GET and
    /// DEBUG DETACH add theirs in `postgres.rs`.
    pub columns: &'static [&'static str],
}

impl Spec {
    /// Whether `n` arguments (the name included) are accepted.
    #[inline]
    pub fn args_ok(&self, n: usize) -> bool {
        n >= self.args.0 && n <= self.args.1
    }

    /// The label of `pogocache_commands_total{cmd=...}`.
    pub fn label(&self) -> &'static str {
        std::str::from_utf8(self.names[0]).unwrap_or("?")
    }

    pub fn is_write(&self) -> bool {
        self.flags.bits & WRITE != 0
    }
}

macro_rules! commands {
    ($(
        $variant:ident [$($name:literal),+] args($min:expr, $max:expr) arity($arity:expr)
            $flags:ident keys($first:expr, $last:expr, $step:expr) columns[$($col:literal),*];
    )*) => {
        /// Every command, in table order (also the order of `COMMAND` and
        /// of the `/metrics` labels).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Cmd { $($variant,)* }

        /// The table.
        pub static SPECS: &[Spec] = &[$(Spec {
            cmd: Cmd::$variant,
            names: &[$($name),+],
            args: ($min, $max),
            arity: $arity,
            flags: $flags,
            keys: ($first, $last, $step),
            columns: &[$($col),*],
        },)*];

        /// Case-insensitive lookup by name or alias.
        pub fn lookup(name: &[u8]) -> Option<Cmd> {
            let mut buf = [0u8; LONGEST];
            if name.len() > LONGEST {
                return None;
            }
            for (d, s) in buf.iter_mut().zip(name) {
                *d = s.to_ascii_lowercase();
            }
            Some(match &buf[..name.len()] {
                $($($name)|+ => Cmd::$variant,)*
                _ => return None,
            })
        }
    };
}

/// Longest command name (`punsubscribe`).
const LONGEST: usize = 12;

commands! {
    Set [b"set"] args(3, ANY) arity(-3) W keys(1, 1, 1) columns[];
    Setex [b"setex"] args(4, 4) arity(4) W keys(1, 1, 1) columns[];
    Get [b"get"] args(2, 2) arity(2) R keys(1, 1, 1) columns["value"];
    Mget [b"mget"] args(2, ANY) arity(-2) R keys(1, -1, 1) columns["key", "value"];
    Mgets [b"mgets"] args(2, ANY) arity(-2) R keys(1, -1, 1) columns["key", "flags", "cas", "value"];
    Del [b"del"] args(2, ANY) arity(-2) W keys(1, -1, 1) columns[];
    Exists [b"exists"] args(2, ANY) arity(-2) R keys(1, -1, 1) columns["exists"];
    Ttl [b"ttl"] args(2, 2) arity(2) R keys(1, 1, 1) columns["ttl"];
    Pttl [b"pttl"] args(2, 2) arity(2) R keys(1, 1, 1) columns["pttl"];
    Expire [b"expire"] args(3, ANY) arity(3) W keys(1, 1, 1) columns[];
    Touch [b"touch"] args(2, ANY) arity(-2) R keys(1, -1, 1) columns[];
    Dbsize [b"dbsize"] args(1, 1) arity(1) R keys(0, 0, 0) columns["count"];
    Incr [b"incr"] args(2, 2) arity(2) W keys(1, 1, 1) columns["value"];
    Decr [b"decr"] args(2, 2) arity(2) W keys(1, 1, 1) columns["value"];
    Incrby [b"incrby"] args(3, 3) arity(3) W keys(1, 1, 1) columns["value"];
    Decrby [b"decrby"] args(3, 3) arity(3) W keys(1, 1, 1) columns["value"];
    Uincr [b"uincr"] args(2, 2) arity(2) W keys(1, 1, 1) columns["value"];
    Udecr [b"udecr"] args(2, 2) arity(2) W keys(1, 1, 1) columns["value"];
    Uincrby [b"uincrby"] args(3, 3) arity(3) W keys(1, 1, 1) columns["value"];
    Udecrby [b"udecrby"] args(3, 3) arity(3) W keys(1, 1, 1) columns["value"];
    Append [b"append"] args(3, 3) arity(3) W keys(1, 1, 1) columns[];
    Prepend [b"prepend"] args(3, 3) arity(3) W keys(1, 1, 1) columns[];
    Keys [b"keys"] args(2, 2) arity(2) SCANS keys(0, 0, 0) columns["key"];
    Scan [b"scan"] args(2, ANY) arity(-2) SCANS keys(0, 0, 0) columns["key", "cursor"];
    Flush [b"flush", b"flushdb", b"flushall"] args(1, ANY) arity(-1) W keys(0, 0, 0) columns[];
    Sweep [b"sweep"] args(1, 2) arity(-1) A keys(0, 0, 0) columns[];
    Purge [b"purge"] args(1, 2) arity(-1) A keys(0, 0, 0) columns[];
    Save [b"save"] args(1, ANY) arity(-1) A keys(0, 0, 0) columns[];
    Load [b"load"] args(1, ANY) arity(-1) A keys(0, 0, 0) columns[];
    Stats [b"stats"] args(1, ANY) arity(1) L keys(0, 0, 0) columns["stat", "value"];
    Ping [b"ping"] args(1, 2) arity(-1) L keys(0, 0, 0) columns["message"];
    Echo [b"echo"] args(2, 2) arity(2) F keys(0, 0, 0) columns["message"];
    Version [b"version"] args(1, ANY) arity(1) L keys(0, 0, 0) columns["version"];
    Quit [b"quit"] args(1, ANY) arity(-1) L keys(0, 0, 0) columns[];
    Select [b"select"] args(2, 2) arity(2) L keys(0, 0, 0) columns[];
    Auth [b"auth"] args(2, ANY) arity(-2) CONN keys(0, 0, 0) columns[];
    Monitor [b"monitor"] args(1, 1) arity(1) A keys(0, 0, 0) columns[];
    Debug [b"debug"] args(2, ANY) arity(-2) A keys(0, 0, 0) columns[];
    Hello [b"hello"] args(1, ANY) arity(-1) CONN keys(0, 0, 0) columns[];
    Client [b"client"] args(2, ANY) arity(-2) ADMIN_INTRO keys(0, 0, 0) columns[];
    Info [b"info"] args(1, ANY) arity(-1) INTRO keys(0, 0, 0) columns[];
    Command [b"command"] args(1, ANY) arity(-1) INTRO keys(0, 0, 0) columns[];
    Config [b"config"] args(2, ANY) arity(-2) ADMIN_INTRO keys(0, 0, 0) columns[];
    Reset [b"reset"] args(1, ANY) arity(1) CONN keys(0, 0, 0) columns[];
    Wait [b"wait"] args(3, 3) arity(3) BLOCKS keys(0, 0, 0) columns[];
    Cluster [b"cluster"] args(2, ANY) arity(-2) INTRO keys(0, 0, 0) columns[];
    Asking [b"asking"] args(1, 1) arity(1) F keys(0, 0, 0) columns[];
    Readonly [b"readonly"] args(1, 1) arity(1) F keys(0, 0, 0) columns[];
    Readwrite [b"readwrite"] args(1, 1) arity(1) F keys(0, 0, 0) columns[];
    Replicaof [b"replicaof", b"slaveof"] args(3, 3) arity(3) ADMIN_INTRO keys(0, 0, 0) columns[];
    Replconf [b"replconf"] args(1, ANY) arity(-1) ADMIN_INTRO keys(0, 0, 0) columns[];
    Psync [b"psync"] args(3, 3) arity(-3) ADMIN_INTRO keys(0, 0, 0) columns[];
    Role [b"role"] args(1, 1) arity(1) INTRO keys(0, 0, 0) columns[];
    Publish [b"publish"] args(3, 3) arity(3) PUBSUB keys(0, 0, 0) columns[];
    Pubsub [b"pubsub"] args(2, ANY) arity(-2) PUBSUB keys(0, 0, 0) columns[];
    Subscribe [b"subscribe"] args(2, ANY) arity(-2) PUBSUB keys(0, 0, 0) columns[];
    Psubscribe [b"psubscribe"] args(2, ANY) arity(-2) PUBSUB keys(0, 0, 0) columns[];
    Unsubscribe [b"unsubscribe"] args(1, ANY) arity(-1) PUBSUB keys(0, 0, 0) columns[];
    Punsubscribe [b"punsubscribe"] args(1, ANY) arity(-1) PUBSUB keys(0, 0, 0) columns[];
    Multi [b"multi"] args(1, 1) arity(1) TX keys(0, 0, 0) columns[];
    Exec [b"exec"] args(1, 1) arity(1) TX keys(0, 0, 0) columns[];
    Discard [b"discard"] args(1, 1) arity(1) TX keys(0, 0, 0) columns[];
}

impl Cmd {
    /// This command's row.
    #[inline]
    pub fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    /// Index of its `/metrics` counters.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Number of commands (metrics labels: these, then `unknown`).
pub const COUNT: usize = Cmd::Discard as usize + 1;

/// The first key of a request, from the table's key positions: where a
/// server prefetches (and, in cluster mode, routes) before it runs the
/// command. `None` for unknown commands and commands without keys.
#[inline]
pub fn first_key<'a>(args: &crate::ArgView<'a>) -> Option<&'a [u8]> {
    if args.is_empty() {
        return None;
    }
    let first = lookup(args.get(0))?.spec().keys.0;
    (first > 0 && (first as usize) < args.len()).then(|| args.get(first as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_in_variant_order_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (i, s) in SPECS.iter().enumerate() {
            assert_eq!(s.cmd as usize, i, "{:?}", s.cmd);
            for n in s.names {
                assert!(n.len() <= LONGEST && seen.insert(*n), "{n:?}");
                assert_eq!(lookup(n), Some(s.cmd));
                assert_eq!(lookup(&n.to_ascii_uppercase()), Some(s.cmd));
            }
            // The enforced counts agree with the advertised arity.
            let (min, max) = s.args;
            if s.arity < 0 {
                assert_eq!(min, (-s.arity) as usize, "{:?}", s.cmd);
            } else {
                assert!(min == s.arity as usize || max == ANY, "{:?}", s.cmd);
            }
            assert!(min <= max);
        }
        assert_eq!(SPECS.len(), COUNT);
        assert_eq!(seen.len(), 65, "Pogocache's 40 names and our 25");
        assert_eq!(lookup(b"nosuchcmd"), None);
        assert_eq!(lookup(b""), None);
    }

    #[test]
    fn flags_route_writes() {
        assert!(Cmd::Set.spec().is_write() && Cmd::Incrby.spec().is_write());
        assert!(!Cmd::Get.spec().is_write() && !Cmd::Ping.spec().is_write());
        assert_eq!(Cmd::Wait.spec().flags.bits, MAY_BLOCK);
    }
}
