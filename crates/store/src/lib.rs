//! # pogocache-store
//!
//! The embeddable engine behind pogocache-rs: a sharded, thread-safe,
//! in-memory key/value map with per-entry expiry, client flags, optional
//! compare-and-swap tokens, lazy and background expiry, and Pogocache's
//! "2-random" eviction under memory pressure. It does no I/O and knows no
//! protocol, so it can be used directly from any Rust program, the way
//! Pogocache's `pogocache.c` can be embedded in C.
//!
//! Owns: entry layout and memory accounting, sharding and hashing, TTL
//! rules, CAS counters, eviction, sweeps, iteration cursors.
//! Does not own: reading the clock (callers pass `now`, see [`clock`]),
//! deciding *when* memory is low for a server (the server samples RSS and
//! calls [`Store::set_low_memory`]), wire formats or command parsing.
//!
//! ## Design
//!
//! - A boxed slice of cache-line shards, each a `Mutex` around an
//!   open-addressing table of 8-byte buckets (entry pointer + 16-bit hash
//!   tag, see `table.rs`; [`entry`] has the entry layout). The shard comes
//!   from bits 32.. of a per-process seeded foldhash, the bucket from the
//!   low bits, the tag from the top 16.
//! - [`Store::prefetch`] lets a server that has several requests in hand
//!   start the bucket loads of the later ones while it runs the first.
//! - Critical sections copy or swap only. Replaced, deleted and evicted
//!   entries are moved out and freed after the lock is released.
//! - Time is a parameter: every call takes `now` (nanoseconds on the
//!   monotonic clock), so tests can step time without sleeping.
//!
//! ## Example
//!
//! ```
//! use pogocache_store::{clock, Config, SetOptions, Expiry, Store};
//!
//! let store = Store::new(Config::default());
//! let now = clock::monotonic_ns();
//! let ttl = Expiry::At(now + 60_000_000_000); // one minute
//! store.set(b"user:1", b"alice", &SetOptions { expiry: ttl, ..Default::default() }, now).unwrap();
//! let v = store.get(b"user:1", now, |e| e.map(|e| e.value().to_vec()));
//! assert_eq!(v.as_deref(), Some(&b"alice"[..]));
//! assert_eq!(store.ttl_ns(b"user:1", now), Some(Some(60_000_000_000)));
//! assert!(store.delete(b"user:1", now));
//! ```

pub mod clock;
mod entry;
pub mod glob;
mod table;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use entry::{Entry, EntryPtr, Meta};
use foldhash::fast::FixedState;
use table::Table;

/// Largest value the store accepts (512 MiB), as in Pogocache.
pub const MAX_VALUE_LEN: usize = 536_870_912;

/// Store construction parameters. Every field has a sensible default, so
/// `Config::default()` gives Pogocache's defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of independent shards (locks). More shards means less lock
    /// contention between threads; 4096 is Pogocache's default and costs
    /// about 1 MiB of empty tables. Clamped to 1..=65536.
    pub shards: usize,
    /// Grow a shard's table once it is this percent full (55..=95).
    /// Lower trades memory for shorter probe sequences.
    pub load_factor: u8,
    /// Keep real CAS tokens (a per-shard counter). When false every entry
    /// reports CAS 0 and any CAS-conditioned store fails, like
    /// Pogocache's `--cas no`.
    pub cas: bool,
    /// When memory is low, make room by evicting (true) or refuse inserts
    /// of new keys with [`StoreError::OutOfMemory`] (false).
    pub evict: bool,
    /// Hash seed. `None` draws a random one, so key placement (and KEYS
    /// order) differs per process, which defeats hash-flooding.
    pub seed: Option<u64>,
    /// Optional budget for the bytes the entries themselves use (see
    /// [`Store::bytes`]). Each shard gets an equal share; a shard over its
    /// share behaves as if memory were low. Embedders without an RSS
    /// monitor use this; the server leaves it `None` and samples RSS.
    pub max_bytes: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shards: 4096,
            load_factor: 75,
            cas: false,
            evict: true,
            seed: None,
            max_bytes: None,
        }
    }
}

/// When a store should happen, relative to what is there now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cond {
    /// Always store.
    #[default]
    Always,
    /// Only if the key is missing (SET NX, memcache `add`).
    Nx,
    /// Only if the key exists (SET XX, memcache `replace`).
    Xx,
}

/// The expiry a store gives the new entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expiry {
    /// No expiry.
    #[default]
    Never,
    /// Absolute time in nanoseconds on the store clock. A time at or
    /// before `now` stores an entry that is already dead.
    At(i64),
    /// Keep the remaining expiry of the live entry being replaced
    /// (SET KEEPTTL); none if there was no live entry.
    Keep,
}

/// Options for [`Store::set`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SetOptions {
    pub expiry: Expiry,
    pub flags: u32,
    pub cond: Cond,
    /// Compare-and-swap: store only if the key is alive and its CAS token
    /// equals this value (always fails when CAS is disabled).
    pub cas: Option<u64>,
}

/// What a store did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// Stored. `replaced` says whether a live entry was overwritten.
    Stored { replaced: bool },
    /// A condition (NX, XX or CAS) failed. `existed` says whether a live
    /// entry was there, which memcache reports as EXISTS vs NOT_FOUND.
    NotStored { existed: bool },
}

/// Errors a write can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Memory is low and eviction is disabled.
    OutOfMemory,
    /// The resulting value would exceed [`MAX_VALUE_LEN`].
    TooLarge,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreError::OutOfMemory => "out of memory",
            StoreError::TooLarge => "value too large",
        })
    }
}

impl std::error::Error for StoreError {}

/// A borrowed view of a live entry, valid while the shard lock is held
/// (that is, inside the closure it is passed to).
#[derive(Clone, Copy)]
pub struct EntryRef<'a>(EntryPtr<'a>);

impl<'a> EntryRef<'a> {
    pub fn key(&self) -> &'a [u8] {
        self.0.key()
    }
    pub fn value(&self) -> &'a [u8] {
        self.0.value()
    }
    pub fn flags(&self) -> u32 {
        self.0.flags()
    }
    pub fn cas(&self) -> u64 {
        self.0.cas()
    }
    /// Marked stale by the memcache meta protocol (`md ... I`).
    pub fn is_stale(&self) -> bool {
        self.0.marks() & entry::STALE != 0
    }
    /// The item's one recache ("win") token has been handed out.
    pub fn win_claimed(&self) -> bool {
        self.0.marks() & entry::WON != 0
    }
    /// Last access (or write), whole seconds on the store clock.
    pub fn last_access_secs(&self) -> u32 {
        self.0.access()
    }
    /// Absolute expiry on the store clock, or `None` for no expiry.
    pub fn expires(&self) -> Option<i64> {
        match self.0.expires() {
            0 => None,
            e => Some(e),
        }
    }
}

/// Which end [`Store::append`] adds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Append,
    Prepend,
}

/// Result of [`Store::sweep`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    pub swept: usize,
    pub kept: usize,
}

/// One shard in exactly one cache line: the lock word and the table
/// header are fetched by a single miss, and 4096 shards take 256 KiB
/// (half of what 128-byte `CachePadded` slots cost), so the shard array
/// mostly stays in L2. Neighbouring shards never share a line.
#[repr(align(64))]
struct Slot {
    lock: Mutex<Shard>,
    /// Bucket array address (low 48 bits) and log2 of its length (top
    /// bits), republished under the lock whenever the table is rebuilt,
    /// and read without it by [`Store::prefetch`]. Only ever used as a
    /// prefetch address, so a stale value costs a wasted hint, nothing more.
    hint: AtomicU64,
}

struct Shard {
    table: Table,
    /// Sum of `Entry::size` over the table.
    bytes: usize,
    /// Per-shard CAS counter (starts at 1, bumped before every store).
    cas: u64,
    /// New-key inserts since start (the `total_items` stat).
    inserts: u64,
}

/// The sharded store. Cheap to share: wrap it in an `Arc` and call it
/// from any number of threads.
pub struct Store {
    shards: Box<[Slot]>,
    hasher: FixedState,
    nshards: u64,
    load_factor: usize,
    cas: bool,
    evict: bool,
    /// Per-shard byte budget (`usize::MAX`: none), see
    /// [`Store::set_max_bytes`].
    shard_budget: AtomicUsize,
    low_memory: AtomicBool,
    /// Live entries removed to make room (only under memory pressure, so
    /// a shared counter costs nothing on the fast path).
    evictions: AtomicU64,
    /// Dead entries removed: lazily on access, by sweeps and scans, or
    /// when a write replaces them.
    expirations: AtomicU64,
}

const MIN_BUCKETS: usize = 64;

#[inline]
fn secs(now: i64) -> u32 {
    (now / 1_000_000_000).max(0) as u32
}

impl Store {
    /// Builds an empty store. Costs one small table per shard.
    pub fn new(config: Config) -> Store {
        let n = config.shards.clamp(1, 65536);
        let seed = config.seed.unwrap_or_else(random_seed);
        let shards = (0..n)
            .map(|_| Slot {
                lock: Mutex::new(Shard {
                    table: Table::new(),
                    bytes: 0,
                    cas: 1,
                    inserts: 0,
                }),
                hint: AtomicU64::new(0),
            })
            .collect();
        Store {
            shards,
            hasher: FixedState::with_seed(seed),
            nshards: n as u64,
            load_factor: config.load_factor.clamp(55, 95) as usize,
            cas: config.cas,
            evict: config.evict,
            shard_budget: AtomicUsize::new(Self::per_shard(config.max_bytes, n)),
            low_memory: AtomicBool::new(false),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Whether CAS tokens are real (see [`Config::cas`]).
    pub fn cas_enabled(&self) -> bool {
        self.cas
    }

    /// Tells the store that the process is over its memory limit (or back
    /// under it). While set, inserting a new key evicts one entry from the
    /// same shard, or fails when eviction is disabled.
    pub fn set_low_memory(&self, low: bool) {
        self.low_memory.store(low, Ordering::Relaxed);
    }

    fn per_shard(max_bytes: Option<usize>, shards: usize) -> usize {
        max_bytes.map(|b| (b / shards).max(1)).unwrap_or(usize::MAX)
    }

    /// Changes the entry-byte budget ([`Config::max_bytes`]) at run time.
    /// A server that knows its memory limit in RSS terms converts it to
    /// entry bytes from the overhead it observes and sets it here, so the
    /// limit holds between its RSS samples.
    pub fn set_max_bytes(&self, max_bytes: Option<usize>) {
        self.shard_budget.store(
            Self::per_shard(max_bytes, self.shards.len()),
            Ordering::Relaxed,
        );
    }

    /// Live entries evicted to make room since creation.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Expired entries removed since creation (lazily, by sweeps, or
    /// replaced by a write).
    pub fn expirations(&self) -> u64 {
        self.expirations.load(Ordering::Relaxed)
    }

    #[inline]
    fn expired(&self, n: usize) {
        if n > 0 {
            self.expirations.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Current low-memory flag.
    pub fn low_memory(&self) -> bool {
        self.low_memory.load(Ordering::Relaxed)
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }

    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        ((hash >> 32) % self.nshards) as usize
    }

    #[inline]
    fn lock_index(&self, i: usize) -> MutexGuard<'_, Shard> {
        // A poisoned lock can only follow a panic, which ends the process
        // in release builds (panic = "abort"); in tests keep going.
        self.shards[i]
            .lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Republishes shard `i`'s bucket array for [`Store::prefetch`] after
    /// the table may have been rebuilt (call with the lock held).
    #[inline]
    fn publish(&self, i: usize, shard: &Shard) {
        let n = shard.table.num_buckets();
        let hint = if n == 0 {
            0
        } else {
            (shard.table.buckets_ptr() as u64 & ((1 << 48) - 1))
                | ((n.trailing_zeros() as u64) << 58)
        };
        let slot = &self.shards[i].hint;
        if slot.load(Ordering::Relaxed) != hint {
            slot.store(hint, Ordering::Relaxed);
        }
    }

    /// Starts loading the cache line of the bucket `key` hashes to, without
    /// locking. A server that has parsed several pipelined requests calls
    /// this for the later keys before running the first, so their bucket
    /// misses overlap instead of queueing one after another.
    #[inline]
    pub fn prefetch(&self, key: &[u8]) {
        let hash = self.hash(key);
        let hint = self.shards[self.shard_of(hash)]
            .hint
            .load(Ordering::Relaxed);
        if hint == 0 {
            return;
        }
        let base = (hint & ((1 << 48) - 1)) as *const u64;
        let mask = (1usize << (hint >> 58)) - 1;
        prefetch_read(base.wrapping_add(hash as usize & mask) as *const u8);
    }

    /// Starts loading the entry `key` most likely refers to, for a request
    /// about to run: the second stage after [`Store::prefetch`] (whose
    /// bucket load should have landed by now). Takes the shard lock only
    /// if it is free, and never waits for it.
    #[inline]
    pub fn prefetch_entry(&self, key: &[u8]) {
        let hash = self.hash(key);
        if let Ok(shard) = self.shards[self.shard_of(hash)].lock.try_lock() {
            shard.table.prefetch_entry(hash);
        }
    }

    #[inline]
    fn lock(&self, key: &[u8]) -> (u64, MutexGuard<'_, Shard>) {
        let hash = self.hash(key);
        (hash, self.lock_index(self.shard_of(hash)))
    }

    /// The configuration shard methods need.
    #[inline]
    fn cx(&self) -> Cx<'_> {
        Cx {
            hasher: &self.hasher,
            load_factor: self.load_factor,
            with_cas: self.cas,
        }
    }

    /// After a write that may have grown or shrunk the key's table.
    #[inline]
    fn publish_for(&self, hash: u64, shard: &Shard) {
        self.publish(self.shard_of(hash), shard);
    }

    /// Looks up a live entry and passes it to `f` (or `None` on a miss),
    /// refreshing its last-access time. A dead entry met here is removed.
    /// `f` runs under the shard lock: copy what you need and return.
    pub fn get<R>(&self, key: &[u8], now: i64, f: impl FnOnce(Option<EntryRef<'_>>) -> R) -> R {
        self.lookup(key, now, true, f)
    }

    /// Like [`Store::get`] but leaves the last-access time alone (EXISTS,
    /// TTL and friends must not change eviction order).
    pub fn peek<R>(&self, key: &[u8], now: i64, f: impl FnOnce(Option<EntryRef<'_>>) -> R) -> R {
        self.lookup(key, now, false, f)
    }

    fn lookup<R>(
        &self,
        key: &[u8],
        now: i64,
        touch: bool,
        f: impl FnOnce(Option<EntryRef<'_>>) -> R,
    ) -> R {
        let (hash, mut shard) = self.lock(key);
        let Some(i) = shard.table.find(hash, |e| e.key() == key) else {
            return f(None);
        };
        if shard.table.at(i).is_alive(now) {
            if touch {
                shard.table.entry_mut(i).set_access(secs(now));
            }
            return f(Some(EntryRef(shard.table.at(i))));
        }
        let dead = shard.table.remove(i, &self.hasher);
        shard.bytes -= dead.size();
        drop(shard);
        drop(dead);
        self.expired(1);
        f(None)
    }

    /// Returns `None` if the key is missing or dead, `Some(None)` if it
    /// has no expiry, and `Some(Some(ns))` with the remaining nanoseconds.
    pub fn ttl_ns(&self, key: &[u8], now: i64) -> Option<Option<i64>> {
        self.peek(key, now, |e| e.map(|e| e.expires().map(|x| x - now)))
    }

    /// Stores `value` under `key`. See [`Store::set_with`].
    pub fn set(
        &self,
        key: &[u8],
        value: &[u8],
        opts: &SetOptions,
        now: i64,
    ) -> Result<SetOutcome, StoreError> {
        self.set_with(key, value, opts, now, |_| ())
    }

    /// Stores `value` under `key` subject to `opts`. When the store
    /// replaces a live entry, `on_replaced` sees the old entry first
    /// (under the lock), which is how SET ... GET returns the old value
    /// without a second lookup.
    pub fn set_with(
        &self,
        key: &[u8],
        value: &[u8],
        opts: &SetOptions,
        now: i64,
        on_replaced: impl FnOnce(EntryRef<'_>),
    ) -> Result<SetOutcome, StoreError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::TooLarge);
        }
        let (hash, mut guard) = self.lock(key);
        let shard = &mut *guard;
        shard.cas += 1;
        let cas = if self.cas { shard.cas } else { 0 };
        let found = shard.table.find(hash, |e| e.key() == key);
        let old = found.map(|i| shard.table.at(i));
        let old_live = old.is_some_and(|e| e.is_alive(now));
        let allowed = match opts.cond {
            Cond::Always => true,
            Cond::Nx => !old_live,
            Cond::Xx => old_live,
        } && match opts.cas {
            None => true,
            Some(c) => old_live && self.cas && old.is_some_and(|e| e.cas() == c),
        };
        if !allowed {
            return Ok(SetOutcome::NotStored { existed: old_live });
        }
        let expires = match opts.expiry {
            Expiry::Never => 0,
            Expiry::At(t) => t.max(1),
            Expiry::Keep => match old {
                Some(e) if old_live => e.expires(),
                _ => 0,
            },
        };
        let meta = Meta {
            expires,
            cas,
            with_cas: self.cas,
            access: secs(now),
            flags: opts.flags,
        };
        let old = match (found, old) {
            (Some(i), Some(e)) => {
                if old_live {
                    on_replaced(EntryRef(e));
                } else {
                    // The dead entry expired; the key is new again.
                    self.expired(1);
                    shard.inserts += 1;
                }
                let new = Entry::new(key, &[value], meta);
                let size = new.size();
                let old = shard.table.replace(i, hash, new);
                shard.bytes = shard.bytes - old.size() + size;
                (Some(old), Evicted::default())
            }
            _ => {
                let evicted = self.make_room(shard, hash, now)?;
                let new = Entry::new(key, &[value], meta);
                shard.insert(new, hash, &self.cx());
                self.publish_for(hash, shard);
                (None, evicted)
            }
        };
        drop(guard);
        drop(old);
        Ok(SetOutcome::Stored { replaced: old_live })
    }

    /// Called before inserting a new key: when memory is low, evict from
    /// the same shard (or refuse, with eviction off). Over the RSS limit
    /// (the low-memory flag) that is one entry per insert, Pogocache's
    /// rule; over the byte budget it is as many as bring the shard back
    /// under it, up to `EVICT_MAX` per insert, so a shrinking budget
    /// actually frees memory instead of holding it steady.
    fn make_room(&self, shard: &mut Shard, hash: u64, now: i64) -> Result<Evicted, StoreError> {
        let mut out = Evicted::default();
        let budget = self.shard_budget.load(Ordering::Relaxed);
        if !self.low_memory.load(Ordering::Relaxed) && shard.bytes <= budget {
            return Ok(out);
        }
        if !self.evict {
            return Err(StoreError::OutOfMemory);
        }
        for slot in out.0.iter_mut() {
            let Some(e) = shard.evict_one(hash, now, &self.hasher) else {
                break;
            };
            if e.is_alive(now) {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            } else {
                self.expired(1);
            }
            *slot = Some(e);
            if shard.bytes <= budget {
                break;
            }
        }
        Ok(out)
    }

    /// Deletes a live key. Returns whether one was deleted.
    pub fn delete(&self, key: &[u8], now: i64) -> bool {
        let (hash, mut shard) = self.lock(key);
        let Some(i) = shard.table.find(hash, |e| e.key() == key) else {
            return false;
        };
        let e = shard.table.remove(i, &self.hasher);
        shard.bytes -= e.size();
        if shard.maybe_shrink(&self.hasher) {
            self.publish_for(hash, &shard);
        }
        drop(shard);
        let alive = e.is_alive(now);
        if !alive {
            self.expired(1);
        }
        alive
    }

    /// Sets a new absolute expiry on a live key (`None` clears it) and
    /// gives it a new CAS token. An expiry at or before `now` kills the
    /// entry. Returns whether the key was alive.
    pub fn expire(&self, key: &[u8], expires: Option<i64>, now: i64) -> bool {
        let (hash, mut guard) = self.lock(key);
        let shard = &mut *guard;
        shard.cas += 1;
        let cas = if self.cas { shard.cas } else { 0 };
        let Some(i) = shard.table.find(hash, |e| e.key() == key) else {
            return false;
        };
        let alive = shard.table.at(i).is_alive(now);
        let mut replaced = None;
        if alive {
            let ex = expires.map(|t| t.max(1)).unwrap_or(0);
            let mut m = shard.table.entry_mut(i);
            if m.set_expiry(ex, cas) {
                m.set_access(secs(now));
            } else {
                // No room for an expiry in this entry: rebuild it with one.
                let old = shard.table.at(i);
                let meta = Meta {
                    expires: ex,
                    cas,
                    with_cas: self.cas,
                    access: secs(now),
                    flags: old.flags(),
                };
                let new = Entry::new(old.key(), &[old.value()], meta);
                let size = new.size();
                let old = shard.table.replace(i, hash, new);
                shard.bytes = shard.bytes + size - old.size();
                replaced = Some(old);
            }
        }
        let mut removed = None;
        if !shard.table.at(i).is_alive(now) {
            let e = shard.table.remove(i, &self.hasher);
            shard.bytes -= e.size();
            removed = Some(e);
            self.expired(1);
        }
        drop(guard);
        drop(replaced);
        drop(removed);
        alive
    }

    /// Memcache meta invalidation: marks a live key stale (it is still
    /// served, flagged as stale) and re-arms its recache token; gives it a
    /// new CAS. Returns whether the key was alive.
    pub fn invalidate(&self, key: &[u8], now: i64) -> bool {
        let (hash, mut guard) = self.lock(key);
        let shard = &mut *guard;
        shard.cas += 1;
        let cas = if self.cas { shard.cas } else { 0 };
        let Some(i) = shard.table.find(hash, |e| e.key() == key) else {
            return false;
        };
        let e = shard.table.at(i);
        if !e.is_alive(now) {
            return false;
        }
        let expires = e.expires();
        let mut m = shard.table.entry_mut(i);
        m.mark(entry::STALE, entry::WON);
        m.set_expiry(expires, cas);
        true
    }

    /// Hands out a live key's one recache token: `Some(true)` to the first
    /// caller (which should refill the item), `Some(false)` after that,
    /// `None` when the key is missing. Writing a new value re-arms it.
    pub fn claim_win(&self, key: &[u8], now: i64) -> Option<bool> {
        let (hash, mut shard) = self.lock(key);
        let i = shard.table.find(hash, |e| e.key() == key)?;
        let e = shard.table.at(i);
        if !e.is_alive(now) {
            return None;
        }
        if e.marks() & entry::WON != 0 {
            return Some(false);
        }
        shard.table.entry_mut(i).mark(entry::WON, 0);
        Some(true)
    }

    /// Refreshes the last-access time of a live key. Returns whether it
    /// was alive.
    pub fn touch(&self, key: &[u8], now: i64) -> bool {
        self.get(key, now, |e| e.is_some())
    }

    /// Read-modify-write of one value under the shard lock, the way INCR
    /// is atomic. `f` gets the live value (or `None`) and an empty buffer
    /// to write the new value into, and returns `(result, write)`; the
    /// store keeps the old expiry and flags, gives a new CAS and access
    /// time, and creates the key (no TTL, no flags) if it was missing.
    /// Nothing is written when `write` is false or `f` fails.
    pub fn update<R, E>(
        &self,
        key: &[u8],
        now: i64,
        scratch: &mut Vec<u8>,
        f: impl FnOnce(Option<&[u8]>, &mut Vec<u8>) -> Result<(R, bool), E>,
    ) -> Result<R, UpdateError<E>> {
        let (hash, mut guard) = self.lock(key);
        let shard = &mut *guard;
        shard.cas += 1;
        let cas = if self.cas { shard.cas } else { 0 };
        let found = shard.table.find(hash, |e| e.key() == key);
        let live = found.is_some_and(|i| shard.table.at(i).is_alive(now));
        scratch.clear();
        let (r, write) = match found {
            Some(i) if live => f(Some(shard.table.at(i).value()), scratch),
            _ => f(None, scratch),
        }
        .map_err(UpdateError::Op)?;
        if !write {
            return Ok(r);
        }
        if scratch.len() > MAX_VALUE_LEN {
            return Err(UpdateError::Store(StoreError::TooLarge));
        }
        let old = self.write_back(
            shard,
            found,
            live,
            hash,
            key,
            now,
            cas,
            Edit::Whole(scratch),
        );
        drop(guard);
        drop(old);
        Ok(r)
    }

    /// The end of every read-modify-write: builds and places the new
    /// entry, republishes the table for prefetching, and counts a dead
    /// entry it replaced as expired (the key is new again). Returns the
    /// entry to free after the lock.
    #[allow(clippy::too_many_arguments)]
    fn write_back(
        &self,
        shard: &mut Shard,
        found: Option<usize>,
        live: bool,
        hash: u64,
        key: &[u8],
        now: i64,
        cas: u64,
        edit: Edit<'_>,
    ) -> Option<Entry> {
        let old = shard.write_back(found, live, hash, key, now, cas, edit, &self.cx());
        self.publish_for(hash, shard);
        if found.is_some() && !live {
            self.expired(1);
            shard.inserts += 1;
        }
        old
    }

    /// APPEND/PREPEND `data` to a live value, keeping expiry and flags.
    /// A missing key is created with `data` when `create` is true (RESP);
    /// otherwise nothing happens and `Ok(None)` is returned (memcache's
    /// NOT_STORED). Returns the new length.
    pub fn append(
        &self,
        key: &[u8],
        data: &[u8],
        side: Side,
        create: bool,
        now: i64,
    ) -> Result<Option<usize>, StoreError> {
        let (hash, mut guard) = self.lock(key);
        let shard = &mut *guard;
        let found = shard.table.find(hash, |e| e.key() == key);
        let live = found.is_some_and(|i| shard.table.at(i).is_alive(now));
        if !live && !create {
            return Ok(None);
        }
        let old_len = match found {
            Some(i) if live => shard.table.at(i).value().len(),
            _ => 0,
        };
        let len = old_len + data.len();
        if len > MAX_VALUE_LEN {
            return Err(StoreError::TooLarge);
        }
        shard.cas += 1;
        let cas = if self.cas { shard.cas } else { 0 };
        let dropped = self.write_back(
            shard,
            found,
            live,
            hash,
            key,
            now,
            cas,
            Edit::Add(side, data),
        );
        drop(guard);
        drop(dropped);
        Ok(Some(len))
    }

    /// Live entries that carry an expiry (INFO's keyspace `expires`).
    /// Visits every entry, one shard at a time.
    pub fn count_expiring(&self, now: i64) -> usize {
        (0..self.shards.len())
            .map(|i| {
                let s = self.lock_index(i);
                s.table
                    .iter()
                    .filter(|e| e.expires() != 0 && e.is_alive(now))
                    .count()
            })
            .sum()
    }

    /// Number of entries, including expired ones not yet removed (this is
    /// what Pogocache's DBSIZE reports).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.lock_index(i).table.len())
            .sum()
    }

    /// True when [`Store::len`] is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes used by entries (header + key + value each), excluding table
    /// slots and allocator overhead.
    pub fn bytes(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.lock_index(i).bytes)
            .sum()
    }

    /// New-key inserts since creation, counting a key written again after
    /// it expired (survives [`Store::clear`]).
    pub fn total_inserts(&self) -> u64 {
        (0..self.shards.len())
            .map(|i| self.lock_index(i).inserts)
            .sum()
    }

    /// Removes every entry, one shard at a time. Returns how many were
    /// removed. Memory is freed outside the locks.
    pub fn clear(&self) -> usize {
        let mut n = 0;
        for i in 0..self.shards.len() {
            let old = {
                let mut s = self.lock_index(i);
                s.bytes = 0;
                let old = s.table.take();
                self.publish(i, &s);
                old
            };
            n += old.len();
            drop(old);
        }
        n
    }

    /// Removes every dead entry in every shard.
    pub fn sweep(&self, now: i64) -> SweepStats {
        let mut st = SweepStats::default();
        let mut dead = Vec::new();
        for i in 0..self.shards.len() {
            {
                let mut s = self.lock_index(i);
                s.sweep_into(now, &mut dead, &self.hasher);
                st.kept += s.table.len();
                s.maybe_shrink(&self.hasher);
                self.publish(i, &s);
            }
            st.swept += dead.len();
            self.expired(dead.len());
            dead.clear();
        }
        st
    }

    /// One round of background expiry, as Pogocache's once-a-second
    /// autosweep: sample up to 20 occupied buckets in each of `samples`
    /// pseudo-random shards (`rand` supplies randomness); if more than 10%
    /// of what was sampled is dead, sweep everything. Returns the sweep
    /// result when one ran.
    pub fn autosweep(
        &self,
        now: i64,
        samples: usize,
        mut rand: impl FnMut() -> u64,
    ) -> Option<SweepStats> {
        let (mut seen, mut dead) = (0usize, 0usize);
        for _ in 0..samples {
            let i = (rand() % self.nshards) as usize;
            let s = self.lock_index(i);
            let n = s.table.num_buckets();
            if s.table.is_empty() {
                continue;
            }
            let start = (rand() as usize) % n;
            let mut got = 0;
            for k in 0..n {
                if let Some(e) = s.table.get((start + k) % n) {
                    seen += 1;
                    got += 1;
                    if !e.is_alive(now) {
                        dead += 1;
                    }
                    if got == 20 {
                        break;
                    }
                }
            }
        }
        if seen > 0 && dead * 10 > seen {
            Some(self.sweep(now))
        } else {
            None
        }
    }

    /// Resumable iteration for SCAN. Starts at `cursor` (0 = beginning),
    /// calls `f` with each live key until it has returned `true`
    /// ("collected") `count` times, and returns the cursor to continue
    /// from, 0 once the keyspace is exhausted. Cursors are
    /// `(shard << 32) | (bucket + 1)` of the last collected entry, as in
    /// Pogocache; a cursor past the end yields nothing and 0. Dead entries
    /// met on the way are removed.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        now: i64,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> u64 {
        let mut shard = (cursor >> 32) as usize;
        let mut bucket = (cursor & 0xffff_ffff) as usize;
        let mut collected = 0usize;
        let mut dead = Vec::new();
        while shard < self.shards.len() {
            let mut s = self.lock_index(shard);
            let n = s.table.num_buckets();
            while bucket < n {
                let i = bucket;
                bucket += 1;
                let Some(e) = s.table.get(i) else {
                    continue;
                };
                if !e.is_alive(now) {
                    let e = s.table.remove(i, &self.hasher);
                    s.bytes -= e.size();
                    self.expired(1);
                    dead.push(e);
                    // The removal shifted the rest of the probe run back:
                    // bucket i may hold an unvisited entry now.
                    bucket = i;
                    continue;
                }
                if f(e.key()) {
                    collected += 1;
                    if collected >= count {
                        drop(s);
                        return ((shard as u64) << 32) | (i as u64 + 1);
                    }
                }
            }
            drop(s);
            dead.clear();
            shard += 1;
            bucket = 0;
        }
        0
    }

    /// Visits every live entry, one shard at a time (each shard is locked
    /// while its entries are visited). Dead entries met are removed.
    /// Used by KEYS.
    pub fn for_each(&self, now: i64, mut f: impl FnMut(EntryRef<'_>)) {
        for i in 0..self.shards.len() {
            self.for_each_in_shard(i, now, &mut f);
        }
    }

    /// Visits the live entries of shard `i` under its lock, removing dead
    /// ones (freed after the lock is released). Snapshots use this to
    /// write one block per shard without pausing the others.
    pub fn for_each_in_shard(&self, i: usize, now: i64, mut f: impl FnMut(EntryRef<'_>)) {
        let mut dead = Vec::new();
        {
            let mut s = self.lock_index(i);
            s.sweep_into(now, &mut dead, &self.hasher);
            for e in s.table.iter() {
                f(EntryRef(e));
            }
        }
        self.expired(dead.len());
        drop(dead);
    }
}

/// How [`write_back`] builds the new value from the old one.
enum Edit<'a> {
    Whole(&'a [u8]),
    Add(Side, &'a [u8]),
}

impl<'a> Edit<'a> {
    fn parts<'b>(&self, old: &'b [u8]) -> [&'b [u8]; 2]
    where
        'a: 'b,
    {
        match *self {
            Edit::Whole(v) => [v, &[]],
            Edit::Add(Side::Append, d) => [old, d],
            Edit::Add(Side::Prepend, d) => [d, old],
        }
    }
}

impl Shard {
    /// Builds the entry for `key` from `edit` applied to the old live
    /// value (or to nothing), keeping the old live entry's expiry and
    /// flags, and puts it in bucket `found` or inserts it. Returns the
    /// replaced entry, to be freed outside the lock.
    #[allow(clippy::too_many_arguments)]
    fn write_back(
        &mut self,
        found: Option<usize>,
        live: bool,
        hash: u64,
        key: &[u8],
        now: i64,
        cas: u64,
        edit: Edit<'_>,
        cx: &Cx<'_>,
    ) -> Option<Entry> {
        let old = found.filter(|_| live).map(|i| self.table.at(i));
        let (expires, flags) = old.map(|e| (e.expires(), e.flags())).unwrap_or((0, 0));
        let new = Entry::new(
            key,
            &edit.parts(old.map(|e| e.value()).unwrap_or_default()),
            Meta {
                expires,
                cas,
                with_cas: cx.with_cas,
                access: secs(now),
                flags,
            },
        );
        match found {
            Some(i) => {
                let size = new.size();
                let old = self.table.replace(i, hash, new);
                self.bytes = self.bytes + size - old.size();
                Some(old)
            }
            None => {
                self.insert(new, hash, cx);
                None
            }
        }
    }
}

/// Most entries one insert evicts when the shard is over its byte budget.
const EVICT_MAX: usize = 8;

/// Entries removed to make room for one insert, freed after the lock.
#[derive(Default)]
struct Evicted([Option<Entry>; EVICT_MAX]);

/// What shard methods need from the store's configuration.
struct Cx<'a> {
    hasher: &'a FixedState,
    load_factor: usize,
    with_cas: bool,
}

/// Error from [`Store::update`]: the caller's own failure, or the store's.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateError<E> {
    Op(E),
    Store(StoreError),
}

impl Shard {
    fn insert(&mut self, e: Entry, hash: u64, cx: &Cx<'_>) {
        let len = self.table.len();
        let mut n = self.table.num_buckets();
        if (len + 1) * 100 > n * cx.load_factor {
            // Grow early so the table never runs fuller than --loadfactor.
            n = n.max(MIN_BUCKETS / 2);
            while (len + 1) * 100 > n * cx.load_factor {
                n *= 2;
            }
            self.table.resize(n, cx.hasher);
        }
        self.bytes += e.size();
        self.inserts += 1;
        self.table.insert(hash, e);
    }

    /// Shrinks after mass deletion (count ≤ 10% of buckets), never below
    /// the minimum table size. Returns whether the table was rebuilt.
    fn maybe_shrink(&mut self, h: &FixedState) -> bool {
        let n = self.table.num_buckets();
        if n > MIN_BUCKETS * 2 && self.table.len() * 10 <= n {
            self.table.resize((n / 4).max(MIN_BUCKETS), h);
            return true;
        }
        false
    }

    fn sweep_into(&mut self, now: i64, dead: &mut Vec<Entry>, h: &FixedState) {
        let before = dead.len();
        self.table.extract_into(|e| !e.is_alive(now), dead, h);
        for e in &dead[before..] {
            self.bytes -= e.size();
        }
    }

    /// 2-random eviction: scan from a pseudo-random bucket (derived from
    /// the new key's hash), skip the new key's own hash, remove the first
    /// dead entry met, else the older (by last access) of the first two
    /// live ones.
    fn evict_one(&mut self, hash: u64, now: i64, h: &FixedState) -> Option<Entry> {
        let n = self.table.num_buckets();
        if self.table.is_empty() {
            return None;
        }
        let start = (hash as usize).wrapping_add(1) % n;
        let mut first: Option<(usize, u32)> = None;
        let mut victim = None;
        for k in 0..n {
            let i = (start + k) % n;
            let Some(e) = self.table.get(i) else {
                continue;
            };
            if self.table.same_tag(i, hash) {
                continue;
            }
            if !e.is_alive(now) {
                victim = Some(i);
                break;
            }
            let access = e.access();
            match first {
                None => first = Some((i, access)),
                Some((j, a)) => {
                    victim = Some(if access < a { i } else { j });
                    break;
                }
            }
        }
        let i = victim.or(first.map(|f| f.0))?;
        let e = self.table.remove(i, h);
        self.bytes -= e.size();
        Some(e)
    }
}

/// A 64-bit seed from the kernel's random source, falling back to the
/// clocks if that fails (it never does on Linux).
fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: buf is a valid writable 8-byte buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), 8, 0) };
    if n == 8 {
        u64::from_ne_bytes(buf)
    } else {
        (clock::wall_ns() as u64) ^ (clock::monotonic_ns() as u64).rotate_left(32)
    }
}

#[cfg(test)]
mod tests;

/// Hints the CPU to load the cache line at `p` (a no-op off x86-64).
#[inline(always)]
pub(crate) fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and reads nothing
    // the program can observe, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
