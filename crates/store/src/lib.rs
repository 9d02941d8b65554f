//! # pogocache-store
//!
//! The embeddable engine behind pogocache-rs: a sharded, thread-safe,
//! in-memory key/value map with per-entry expiry, client flags, optional
//! compare-and-swap tokens, lazy and background expiry, and eviction under
//! memory pressure (for packed entries, whole segments in S3-FIFO order:
//! new entries first, read ones kept; otherwise, and as a fallback,
//! Pogocache's 2-random LRU extended to five samples that spare entries
//! read since written). It does no I/O
//! and knows no protocol, so it can be used directly from any Rust
//! program, the way Pogocache's `pogocache.c` can be embedded in C.
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
//!   tag, see `table.rs`; `entry.rs` has the entry layout). The shard comes
//!   from bits 32.. of a per-process seeded foldhash, the bucket from the
//!   low bits, the tag from the top 16.
//! - [`Store::prefetch`] lets a server that has several requests in hand
//!   start the bucket loads of the later ones while it runs the first.
//! - Critical sections copy or swap only. Replaced, deleted and evicted
//!   entries are moved out and freed after the lock is released (for a
//!   packed entry, freeing is one atomic subtraction from its segment's
//!   live count).
//! - Memory is budgeted store-wide ([`Config::max_bytes`]): each shard's
//!   lock guard publishes its byte delta to one shared total when it is
//!   released, and a write that would go over evicts first, from its own
//!   shard while that shard holds more than its share, else from others.
//!   A per-shard budget could not hold values larger than one shard's
//!   share (a 256 KiB value against 40 MB over 4096 shards).
//! - CAS uniques are lazy unless [`Config::cas`] asks for one on every
//!   entry: the first reader that wants one ([`Store::get_cas`]) gets the
//!   next value of a store-wide counter, and any modification builds a new
//!   version without one, so items never read with `gets` pay nothing.
//! - A dead (expired) entry is removed by whichever command meets it,
//!   even one that then fails, so counts never include what a client has
//!   already seen as gone.
//! - Time is a parameter: every call takes `now` (nanoseconds on the
//!   monotonic clock), so tests can step time without sleeping.
//!
//! ## Where entries live: packed segments (issue 17)
//!
//! Entries of up to 16 KiB are packed byte-exact into segments shared by
//! every shard (`seg.rs`): a write appends its entry at the end of one of
//! four open segments (picked by hash, so two threads seldom share one),
//! and the bucket points at it as before. Larger entries stay allocations
//! of their own (`entry.rs` picks mimalloc, the C heap or a mapping by
//! size), as does everything in a store built with
//! [`Config::segment_bytes`] 0.
//!
//! Why: with an allocation per entry the allocator's rounding is paid per
//! item. At 1,000,000 items with 32-byte values and keys
//! `key:1`..`key:1000000`, a 50-byte entry took a 64-byte block: 14 of
//! the 37 bytes of overhead per item. Packed, the overhead is the 8-byte
//! header, the bucket (8 bytes / load) and under 2 bytes of everything
//! else: 21.4 bytes per item at 32- and 100-byte values, against 37.3
//! and 32.3 (BENCHMARKS.md has every size, beside Pogocache, Memcached and
//! Redis). An allocator of our own with 8-byte classes would still have
//! rounded 50 bytes to 56.
//!
//! What it costs, and how that is kept small:
//! - **Holes.** A delete, an overwrite or an eviction leaves the old
//!   entry's bytes unused. A segment counts its live bytes and goes back
//!   (its pages to the kernel, its slot to the next segment) the moment the count
//!   reaches zero; otherwise the compactor (`Store::compact_step`)
//!   copies the live entries of the segment with the largest share of
//!   holes into a fresh one, one entry at a time under that entry's shard
//!   lock, and the segment empties. Writers run it, in steps proportional
//!   to what they wrote, while the sealed segments hold more holes than a
//!   quarter of their bytes (a sixteenth while the store is evicting, when
//!   every hole is an item the limit does not hold, and never more than
//!   the room left under the budget; see `Arena::tolerated` for why);
//!   [`Store::compact`] does the same from a timer,
//!   for holes that deletes leave in a store nobody writes to.
//! - **An overwrite of the same size** (a counter, a fixed-size record, a
//!   session refreshed) is written in place ([`Store::set`]): no hole, no
//!   allocation. That is also the common benchmark shape, where it makes
//!   the store cheaper than before, not dearer.
//! - **Eviction empties whole segments.** Random victims would leave
//!   holes all over the store, and at the limit every hole is RSS the
//!   budget cannot use: in a burst that wrote 4x a 128 MiB limit in a
//!   second, holes reached a quarter of the sealed bytes and RSS went 10%
//!   over while the compactor copied nine bytes for each it gave back.
//!   So once a write has had to evict (over the byte budget, or over the
//!   RSS limit), the compactor walks an old segment and evicts its
//!   entries where they lie, until the store has a 128th of its budget
//!   free again; an entry read since it was written (or last moved) is
//!   moved instead, with its hit mark cleared. Which segment: S3-FIFO's
//!   two queues, with segments for queues (`Arena::pick_oldest`): the
//!   oldest writers' segment while those hold more than a tenth of the
//!   sealed bytes, else the oldest of the compactor's (the entries that
//!   were read). One-hit wonders leave without a whole turn of the
//!   cache, and read entries stay while they are read once a turn. Under
//!   Zipf(0.99) with a third of the keys in memory: 0.877-0.878 of reads
//!   kept, against 0.851-0.855 for the sampled eviction and 0.843-0.848
//!   for Pogocache's release build. The segment then empties and goes
//!   back whole. Entries too large to pack, which no walk meets, are
//!   evicted by sampling in proportion to the packed bytes the walks
//!   evict (`Store::evict_unpacked_share`), and the sampled per-item
//!   eviction remains for a store with no sealed segment yet and for a
//!   write that finds the budget full before the compactor has caught
//!   up.
//! - **Safety.** A segment is reused only once every entry placed in it
//!   has been dropped, wherever it was (an entry moved out of a table is
//!   read until its owner drops it), so no read can see a reused segment.
//!   The compactor reads a sealed segment's keys and lengths without
//!   locks; those bytes never change after the entry is written, and the
//!   byte that holds both layout bits and marks is accessed atomically.
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
mod seg;
mod table;

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crossbeam_utils::CachePadded;

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
    /// contention between threads; 4096 is Pogocache's default (a shard
    /// without entries has no table). Clamped to 1..=65536.
    pub shards: usize,
    /// Grow a shard's table once it is this percent full (55..=95).
    /// Lower trades memory for shorter probe sequences.
    pub load_factor: u8,
    /// Give every entry a CAS token when it is written (Pogocache's
    /// `--cas yes`). When false (the default) an entry gets its token
    /// lazily, the first time a reader asks for one ([`Store::get_cas`]),
    /// so items never read with `gets` cost no memory for it. Either way
    /// a token changes on every modification and CAS-conditioned stores
    /// work.
    pub cas: bool,
    /// When memory is low, make room by evicting (true) or refuse inserts
    /// of new keys with [`StoreError::OutOfMemory`] (false).
    pub evict: bool,
    /// Hash seed. `None` draws a random one, so key placement (and KEYS
    /// order) differs per process, which defeats hash-flooding.
    pub seed: Option<u64>,
    /// Optional budget for the bytes the entries themselves use (see
    /// [`Store::bytes`]), for the whole store: a write that would take it
    /// over evicts first (from its own shard while that shard holds more
    /// than its share, else from other shards), so it holds for values of
    /// any size. An entry larger than the whole budget is refused with
    /// [`StoreError::OutOfMemory`]. Embedders without an RSS monitor use
    /// this; the server derives it from `--maxmemory` and RSS samples.
    pub max_bytes: Option<usize>,
    /// Pack entries of up to 16 KiB byte-exact into shared segments of
    /// at most this many bytes (clamped to 1 KiB ..= 16 MiB); 0 gives
    /// every entry an allocation of its own. Why: an allocation per entry
    /// pays the allocator's rounding per item (14 of the 37 bytes of
    /// overhead per item at 32-byte values). Packed, an entry costs its
    /// exact size, and the holes that deletes and overwrites leave are
    /// compacted away once they pass a quarter of the sealed segments'
    /// bytes (a sixteenth while the store evicts, and no more than the
    /// room left under the budget; see `seg.rs`); evictions empty the
    /// old segments instead of leaving holes. Below this size, segments
    /// are sealed at a sixteenth of the store's packed bytes (at least
    /// 1 MiB), so a small store returns memory in small pieces. Each
    /// segment takes a 16 MiB slot of one address range reserved for the
    /// process (1 TiB, no memory until used) whatever its size, so sizes
    /// below 1 MiB are for tests. Default: 16 MiB.
    pub segment_bytes: usize,
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
            segment_bytes: seg::SEG,
        }
    }
}

/// How full the sealed segments of packed entries are. Why it is
/// public: holes are memory the process holds that no entry uses, the
/// packed store's counterpart of an allocator's fragmentation, and an
/// embedder watching RSS needs to tell the two apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentStats {
    /// Sealed segments (those still open for appends are not counted).
    pub segments: usize,
    /// Bytes written into them, headers included.
    pub bytes: usize,
    /// Bytes of entries since deleted, replaced or moved: what compaction
    /// would give back.
    pub holes: usize,
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
    /// The CAS token, 0 when the entry has none (see [`Config::cas`]).
    pub fn cas(&self) -> u64 {
        self.0.cas()
    }
    /// The CAS token, `None` when none was ever handed out for this
    /// version of the item: no CAS-conditioned write can match it.
    pub fn cas_token(&self) -> Option<u64> {
        self.0.cas_at().map(|_| self.0.cas())
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
    /// Bucket array address (low 48 bits) and its length packed by
    /// `table::encode_size` (top 16 bits), republished under the lock whenever the table is rebuilt,
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
    /// Entry-byte budget for the whole store (`usize::MAX`: none), see
    /// [`Store::set_max_bytes`].
    budget: AtomicUsize,
    /// Sum of every shard's `bytes`, kept by [`Locked`] when a guard that
    /// changed its shard's bytes is released: one atomic add per write.
    total: CachePadded<AtomicUsize>,
    /// Where [`Store::evict_elsewhere`] looks for its next victim shard.
    hand: AtomicUsize,
    /// One bit per shard, set while the shard holds entries (bytes > 0).
    /// Kept by [`Locked`] when a guard that took a shard from empty to
    /// non-empty, or back, is released, so it changes only on those
    /// transitions and is exact whenever no lock is held.
    ///
    /// Why: under a limit smaller than the process's fixed memory the
    /// store stays nearly empty and every insert looks for a victim in
    /// other shards; the walk tried the locks of hundreds to thousands of
    /// empty shards to find the one or two that held anything. With
    /// `--maxmemory 1mb`, 50 connections, pipeline 16, 1:10 set:get, the
    /// server did 0.51-0.58M requests/s with that walk and 2.04M with
    /// this bitmap (1.7M with a limit that never evicts).
    occupied: Box<[AtomicU64]>,
    /// Last lazily assigned CAS token (see [`Config::cas`]).
    tokens: AtomicU64,
    low_memory: AtomicBool,
    /// Live entries removed to make room (only under memory pressure, so
    /// a shared counter costs nothing on the fast path).
    evictions: AtomicU64,
    /// Dead entries removed: lazily on access, by sweeps and scans, or
    /// when a write replaces them.
    expirations: AtomicU64,
    /// Where mutations are reported while [`Store::set_journaling`] is on
    /// (see [`Journal`]).
    journal: OnceLock<Arc<dyn Journal>>,
    journaling: AtomicBool,
    /// Segments for packed entries (`None`: every entry is allocated on
    /// its own). Declared last so that it is dropped after the shards,
    /// whose entries point into it.
    arena: Option<Box<seg::Arena>>,
}

/// A change to the keyspace, as a [`Journal`] sees it: always the key's
/// whole new state, never a delta, so that applying the same mutation
/// twice, or a mutation to a state that already includes it, is harmless.
#[derive(Clone, Copy, Debug)]
pub enum Mutation<'a> {
    /// The key now holds this entry. `expires` is on the store clock.
    Set {
        key: &'a [u8],
        value: &'a [u8],
        flags: u32,
        expires: Option<i64>,
        /// Marked stale by the meta protocol (`md ... I`).
        stale: bool,
    },
    /// The key is gone (deleted, evicted, dropped or expired).
    Del { key: &'a [u8] },
    /// Every key is gone.
    Clear,
}

/// Receives every mutation of a store, for replication. Why under the
/// shard lock: a mutation is reported while the lock of the key's shard is
/// still held, so two writers of one key are journaled in the order they
/// changed it, and a replica applying the journal in order ends with the
/// same value. [`Store::clear`] holds every shard's lock while it reports
/// [`Mutation::Clear`]. Implementations must be quick and must not call
/// back into the store.
///
/// What is not reported: lazy and background removal of entries that had
/// already expired (a replica expires them by their time, which the
/// journal carries), access times and CAS tokens (local to each store).
pub trait Journal: Send + Sync {
    fn record(&self, m: Mutation<'_>);
}

/// Smallest table a shard with entries gets. Small, because a store's
/// 4096 shards each pay it: at 64 buckets it was 2 MiB before the first
/// thousand items, 80 bytes per item for 26,000 16 KB values.
const MIN_BUCKETS: usize = 4;

#[inline]
fn secs(now: i64) -> u32 {
    (now / 1_000_000_000).max(0) as u32
}

impl Store {
    /// Builds an empty store. A shard gets its table with its first entry.
    ///
    /// On glibc this sets the C library's mmap threshold to 256 KiB, once
    /// per process, so entries of 128 KiB to 256 KiB stay on its heap
    /// instead of taking a partial page each (see `entry.rs`).
    pub fn new(config: Config) -> Store {
        entry::init_c_heap();
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
            budget: AtomicUsize::new(config.max_bytes.unwrap_or(usize::MAX)),
            total: CachePadded::new(AtomicUsize::new(0)),
            hand: AtomicUsize::new(0),
            occupied: (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            tokens: AtomicU64::new(0),
            low_memory: AtomicBool::new(false),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            journal: OnceLock::new(),
            journaling: AtomicBool::new(false),
            arena: (config.segment_bytes > 0)
                .then(|| Box::new(seg::Arena::new(config.segment_bytes))),
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
    /// under it). While set, every write that grows the store evicts: at
    /// least one entry (from its own shard or others, as for the byte
    /// budget of [`Config::max_bytes`]), or, in a store that packs, at
    /// least its own bytes from an old segment right after the write
    /// (several small entries, or none when the last eviction freed more
    /// than it owed); and inserting a new key fails when eviction is
    /// disabled.
    pub fn set_low_memory(&self, low: bool) {
        self.low_memory.store(low, Ordering::Relaxed);
        if !low && let Some(a) = &self.arena {
            // Back under the limit: nothing more is owed.
            a.debt.store(0, Ordering::Relaxed);
        }
    }

    /// Changes the entry-byte budget ([`Config::max_bytes`]) at run time.
    /// A server that knows its memory limit in RSS terms converts it to
    /// entry bytes from the overhead it observes and sets it here, so the
    /// limit holds between its RSS samples.
    pub fn set_max_bytes(&self, max_bytes: Option<usize>) {
        self.budget
            .store(max_bytes.unwrap_or(usize::MAX), Ordering::Relaxed);
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

    /// Installs the journal mutations are reported to (once per store; a
    /// second call returns `false` and changes nothing). Reporting starts
    /// with [`Store::set_journaling`].
    pub fn set_journal(&self, journal: Arc<dyn Journal>) -> bool {
        self.journal.set(journal).is_ok()
    }

    /// Turns reporting to the journal on or off. Why a switch: a server
    /// journals only while some replica may need the stream, and a replica
    /// applying its primary's stream must not journal what it applies.
    pub fn set_journaling(&self, on: bool) {
        self.journaling.store(on, Ordering::SeqCst);
    }

    /// The journal, when reporting is on.
    #[inline]
    fn journal(&self) -> Option<&dyn Journal> {
        if self.journaling.load(Ordering::Relaxed) {
            self.journal.get().map(|j| &**j)
        } else {
            None
        }
    }

    /// Reports `key`'s state in `shard` (whose lock is held) to the
    /// journal, if on: the live entry, or its absence.
    #[inline]
    fn note(&self, shard: &Shard, hash: u64, key: &[u8], now: i64) {
        if let Some(j) = self.journal() {
            note_state(j, shard, hash, key, now);
        }
    }

    /// Reports a removed entry (evicted or dropped) to the journal, if on;
    /// call with the lock of the shard it came from still held.
    #[inline]
    fn note_gone(&self, e: &Entry) {
        if let Some(j) = self.journal() {
            j.record(Mutation::Del {
                key: e.as_ptr().key(),
            });
        }
    }

    /// Stores a replicated entry as it is: no conditions, no eviction, no
    /// budget check (a replica mirrors its primary, which evicts and
    /// journals the evictions), with the stale mark given. Why a separate
    /// path: applying a primary's stream must never refuse or evict on
    /// its own, or the replica would diverge. Not journaled.
    pub fn restore(
        &self,
        key: &[u8],
        value: &[u8],
        flags: u32,
        expires: Option<i64>,
        stale: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::TooLarge);
        }
        let (hash, mut guard) = self.lock(key);
        let shard = &mut guard;
        shard.cas += 1;
        let cas = if self.cas { shard.cas } else { 0 };
        let found = shard.table.find(hash, |e| e.key() == key);
        let meta = Meta {
            expires: expires.map(|t| t.max(1)).unwrap_or(0),
            cas,
            with_cas: self.cas,
            access: secs(now),
            flags,
        };
        let new = self.entry(hash, key, &[value], meta);
        let old = self.put(shard, found, hash, new);
        if stale && let Some(i) = shard.table.find(hash, |e| e.key() == key) {
            shard.table.entry_mut(i).mark(entry::STALE, 0);
        }
        drop(guard);
        drop(old);
        // Compaction, never eviction: a replica mirrors its primary's.
        self.after_write(key.len() + value.len(), now, false);
        Ok(())
    }

    /// Builds an entry: packed into the store's segments when it has
    /// them, else an allocation of its own. The head is picked by hash
    /// bits the shard and bucket do not use, so concurrent writers spread
    /// over the heads.
    #[inline]
    fn entry(&self, hash: u64, key: &[u8], parts: &[&[u8]], meta: Meta) -> Entry {
        match &self.arena {
            Some(a) => {
                let e = Entry::new_in(a, (hash >> 29) as usize, key, parts, meta);
                if !a.has_unpacked.load(Ordering::Relaxed) && !seg::contains(e.as_ptr().addr()) {
                    a.has_unpacked.store(true, Ordering::Relaxed);
                }
                e
            }
            None => Entry::new(key, parts, meta),
        }
    }

    /// Room under the budget the compactor frees by evicting ahead of the
    /// writes each time one has had to evict: a 128th of the budget (at
    /// least 64 KiB, four of the largest packed entries), so that only
    /// one write in that many bytes finds the budget full and evicts at
    /// random (which leaves a hole in some segment), the rest being made
    /// room for by segment eviction.
    fn slack(&self) -> usize {
        (self.budget.load(Ordering::Relaxed) / 128).max(64 << 10)
    }

    /// Entry bytes the store may still add under its budget.
    fn room(&self) -> usize {
        self.budget
            .load(Ordering::Relaxed)
            .saturating_sub(self.total.load(Ordering::Relaxed))
    }

    /// After a write has released its lock: checks the holes if the write
    /// sealed a segment, and while the segments hold more holes than the
    /// store tolerates, or it is short of room, does a compaction step in
    /// proportion to what was written (`bytes`), so compaction and
    /// eviction keep up with the writes. `evict` false (a replica applying
    /// its primary's stream) compacts but never evicts.
    #[inline]
    fn after_write(&self, bytes: usize, now: i64, evict: bool) {
        if let Some(a) = &self.arena {
            if a.check_due.load(Ordering::Relaxed) && a.check_due.swap(false, Ordering::Relaxed) {
                a.check(self.room());
            }
            if a.needs.load(Ordering::Relaxed)
                || a.walking.load(Ordering::Relaxed)
                || (evict && a.want_room.load(Ordering::Relaxed))
            {
                self.compact_step(a, 16 * bytes + 1024, now, evict);
            }
        }
    }

    /// Walks about `work` bytes of the segment being compacted (picking
    /// one first if none is), moving every entry it finds still in a
    /// table into the compactor's own segment under that entry's shard
    /// lock. An entry no table holds is a hole: it is skipped, and its
    /// bytes come back with the segment once whoever holds it drops it.
    /// One compactor at a time; a writer that finds it busy leaves its
    /// work to the next step (`Arena::owed`), so two writers get twice
    /// the compaction of one.
    ///
    /// Short of room (a write had to evict, and the store has less than
    /// [`Store::slack`] free under its budget, or owes bytes for writes
    /// over the RSS limit), the walk takes an old segment (the one
    /// `Arena::pick_oldest` picks), evicts the entries it finds unread or
    /// expired, and moves the read ones with their hit mark cleared
    /// (their second chance); it pauses as soon as the store has room
    /// again, keeping the segment pinned for the next shortage.
    ///
    /// Why per entry, under its shard's lock: a table's buckets point at
    /// entries, so a move must swap the pointer where lookups cannot see
    /// it half done. The key is read without the lock to find the shard;
    /// the segment is pinned, so its bytes stay as written.
    fn compact_step(&self, a: &seg::Arena, work: usize, now: i64, evict: bool) {
        let Ok(mut c) = a.compactor.try_lock() else {
            a.owed.fetch_add(work, Ordering::Relaxed);
            return;
        };
        // What busy steps left, up to a segment's worth at a time, so
        // that no one request walks for long.
        let work = work + a.owed.swap(0, Ordering::Relaxed).min(seg::SEG);
        let c = &mut *c;
        // Short of room: a write had to evict, and the room under the
        // budget is still below the slack (or writes over the RSS limit
        // owe bytes). Then cold entries are evicted where the walk finds
        // them instead of being copied.
        let slack = self.slack();
        let shortage = || self.room() < slack || a.debt.load(Ordering::Relaxed) > 0;
        let mut short = evict && a.want_room.load(Ordering::Acquire) && shortage();
        if evict && !short {
            a.want_room.store(false, Ordering::Relaxed);
        }
        if let Some(w) = &c.walk
            && w.evict
            && !short
            && a.needs.load(Ordering::Relaxed)
        {
            // A paused eviction walk, and holes elsewhere: the segment
            // with the largest share of holes is the one to copy from,
            // and the old segment's unread entries must not be copied
            // among the read ones. Left for the next shortage (it starts
            // over; what was evicted from it is skipped as holes).
            let base = w.base;
            c.walk = None;
            a.unpin(base);
        }
        if c.walk.is_none() {
            c.walk = if short { a.pick_oldest() } else { a.pick() };
            a.walking
                .store(c.walk.as_ref().is_some_and(|w| !w.evict), Ordering::Relaxed);
            if short && c.walk.is_none() {
                // Nothing sealed to evict from: the writes evict for
                // themselves (sampled) until there is.
                a.debt.store(0, Ordering::Relaxed);
                a.want_room.store(false, Ordering::Relaxed);
                return;
            }
        }
        let Some(w) = &mut c.walk else {
            return;
        };
        // An eviction walk with room enough waits for the next shortage:
        // it pins one segment meanwhile.
        let pause = |short: bool| w.evict && !short;
        if pause(short) {
            return;
        }
        let end = w.off + work;
        // Entries ahead of the one being moved: their buckets are
        // prefetched a few entries early, so that the moves (to random
        // shards) do not each wait for a cache miss.
        const AHEAD: usize = 8;
        let mut ring = [(0usize, 0u64); AHEAD];
        let (mut head, mut tail, mut next) = (0usize, 0usize, w.off);
        while w.off < w.fill && w.off < end {
            while tail - head < AHEAD && next < w.fill && next < end {
                // SAFETY: `next` starts an entry of a sealed segment (the
                // walk goes entry by entry from the first), pinned by
                // `pick`.
                let (size, key) = unsafe { entry::peek_unlocked((w.base + next) as *const u8) };
                let hash = self.hash(key);
                self.prefetch_hash(hash);
                ring[tail % AHEAD] = (size, hash);
                tail += 1;
                next += size;
            }
            let (size, hash) = ring[head % AHEAD];
            head += 1;
            let p = (w.base + w.off) as *mut u8;
            let mut g = self.lock_index(self.shard_of(hash));
            if let Some(i) = g.table.find(hash, |e| e.addr() == p) {
                let e = g.table.at(i);
                // An eviction walk evicts what was not read; any walk
                // drops what has expired (counted as expired).
                if !e.is_alive(now) || (short && w.evict && !e.was_hit()) {
                    // Evicted where it lies: its bytes come back with the
                    // segment, and no other segment gets a hole.
                    let old = g.table.remove(i, &self.hasher);
                    g.bytes -= old.size();
                    self.note_gone(&old);
                    self.count_removed(&old, now);
                    drop(g);
                    if a.debt.load(Ordering::Relaxed) > 0 {
                        a.debt.fetch_sub(old.size() as isize, Ordering::Relaxed);
                    }
                    if short && a.has_unpacked.load(Ordering::Relaxed) {
                        self.evict_unpacked_share(a, &mut c.credit, old.size(), hash, now);
                    }
                    drop(old);
                    short = shortage();
                } else {
                    // SAFETY: the table's live entry, under its shard's lock.
                    let moved = unsafe { Entry::copy_in(a, &mut c.head, e) };
                    match moved {
                        Some(new) => {
                            let old = g.table.replace(i, hash, new);
                            if short && w.evict {
                                // Its second chance is spent: read again
                                // before the walk comes back, or it goes.
                                g.table.entry_mut(i).clear_hit();
                            }
                            drop(g);
                            drop(old);
                        }
                        // No segment to move it to: stop, keep the walk.
                        None => return,
                    }
                }
            }
            w.off += size;
            if w.off < w.fill && pause(short) {
                return;
            }
        }
        if w.off >= w.fill {
            let base = w.base;
            c.walk = None;
            a.walking.store(false, Ordering::Relaxed);
            a.unpin(base);
        }
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }

    /// The shard of a hash: bits 32..48 scaled onto the shard count by a
    /// multiply and a shift (uniform for any count up to 65,536, and no
    /// 64-bit division, which cost ~40 cycles three times a request: the
    /// prefetch, the entry prefetch and the lookup). Buckets use bits
    /// 0..32 and a bucket's tag bits 48..64, so the three stay
    /// independent: a shard drawn from the tag's bits would leave its
    /// entries' tags alike, and lookups and eviction rely on them
    /// differing.
    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        ((((hash >> 32) & 0xffff) * self.nshards) >> 16) as usize
    }

    #[inline]
    fn lock_index(&self, i: usize) -> Locked<'_> {
        // A poisoned lock can only follow a panic, which ends the process
        // in release builds (panic = "abort"); in tests keep going.
        Locked::new(
            self.shards[i]
                .lock
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            self,
        )
    }

    /// Locks shard `i` only if it is free (eviction from other shards
    /// while holding one's own lock must never wait: two writers could
    /// wait on each other).
    #[inline]
    fn try_lock_index(&self, i: usize) -> Option<Locked<'_>> {
        match self.shards[i].lock.try_lock() {
            Ok(g) => Some(Locked::new(g, self)),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(Locked::new(e.into_inner(), self)),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Republishes shard `i`'s bucket array for [`Store::prefetch`] after
    /// the table may have been rebuilt (call with the lock held).
    #[inline]
    fn publish(&self, i: usize, shard: &Shard) {
        let n = shard.table.num_buckets();
        let hint = if n == 0 {
            0
        } else {
            (shard.table.buckets_ptr() as u64 & ((1 << 48) - 1)) | (table::encode_size(n) << 48)
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
        self.prefetch_hash(self.hash(key));
    }

    /// [`Store::prefetch`] for a hash in hand.
    #[inline]
    fn prefetch_hash(&self, hash: u64) {
        let hint = self.shards[self.shard_of(hash)]
            .hint
            .load(Ordering::Relaxed);
        if hint == 0 {
            return;
        }
        let base = (hint & ((1 << 48) - 1)) as *const u64;
        let n = table::decode_size(hint >> 48);
        prefetch_read(base.wrapping_add(table::index(hash, n)) as *const u8);
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
    fn lock(&self, key: &[u8]) -> (u64, Locked<'_>) {
        let hash = self.hash(key);
        (hash, self.lock_index(self.shard_of(hash)))
    }

    /// The configuration shard methods need.
    #[inline]
    fn cx(&self) -> Cx<'_> {
        Cx {
            hasher: &self.hasher,
            load_factor: self.load_factor,
        }
    }

    /// After a write that may have grown or shrunk the key's table.
    #[inline]
    fn publish_for(&self, hash: u64, shard: &Shard) {
        self.publish(self.shard_of(hash), shard);
    }

    /// Looks up a live entry and passes it to `f` (or `None` on a miss),
    /// refreshing its last-access time and marking it read, which
    /// eviction weighs (see `Shard::evict_one`). A dead entry met here is
    /// removed.
    /// `f` runs under the shard lock: copy what you need and return.
    pub fn get<R>(&self, key: &[u8], now: i64, f: impl FnOnce(Option<EntryRef<'_>>) -> R) -> R {
        self.lookup(key, now, true, false, f)
    }

    /// Like [`Store::get`] but leaves the last-access time and the read
    /// mark alone (EXISTS, TTL and friends must not change eviction
    /// order).
    pub fn peek<R>(&self, key: &[u8], now: i64, f: impl FnOnce(Option<EntryRef<'_>>) -> R) -> R {
        self.lookup(key, now, false, false, f)
    }

    /// Like [`Store::get`] (or [`Store::peek`] when `touch` is false), but
    /// the entry passed to `f` always carries a CAS token: one that has
    /// none yet gets a fresh one (see [`Config::cas`]; the entry is
    /// rebuilt 8 bytes larger). This is how memcache `gets`, `gats` and
    /// meta `c` hand out uniques without every item paying for one: a
    /// modification builds a new entry without a token, and the next
    /// reader gets a higher counter value, so a token never repeats for a
    /// key.
    pub fn get_cas<R>(
        &self,
        key: &[u8],
        now: i64,
        touch: bool,
        f: impl FnOnce(Option<EntryRef<'_>>) -> R,
    ) -> R {
        self.lookup(key, now, touch, true, f)
    }

    /// The one lookup behind `get`, `peek` and `get_cas`: finds the live
    /// entry (removing a dead one), refreshes its access time when
    /// `touch`, gives it a CAS token when `cas` and it has none, and
    /// passes it to `f` under the lock (a miss is reported after it).
    fn lookup<R>(
        &self,
        key: &[u8],
        now: i64,
        touch: bool,
        cas: bool,
        f: impl FnOnce(Option<EntryRef<'_>>) -> R,
    ) -> R {
        let (hash, mut guard) = self.lock(key);
        let shard = &mut *guard;
        let (found, dead) = self.find_live(shard, hash, key, now);
        let Some(i) = found else {
            drop(guard);
            drop(dead);
            return f(None);
        };
        if touch {
            shard.table.entry_mut(i).read_at(secs(now));
        }
        let old = (cas && shard.table.at(i).cas_at().is_none()).then(|| {
            let token = self.next_token(shard);
            let e = shard.table.at(i);
            let marks = e.marks();
            let hit = e.was_hit();
            let meta = Meta {
                expires: e.expires(),
                cas: token,
                with_cas: true,
                access: e.access(),
                flags: e.flags(),
            };
            let new = self.entry(hash, e.key(), &[e.value()], meta);
            let size = new.size();
            let prev = shard.table.replace(i, hash, new);
            shard.bytes = shard.bytes + size - prev.size();
            let mut m = shard.table.entry_mut(i);
            m.mark(marks, 0);
            if hit {
                m.set_hit();
            }
            prev
        });
        let r = f(Some(EntryRef(shard.table.at(i))));
        drop(guard);
        drop(old);
        r
    }

    /// A token value never handed out before: the shard's counter with
    /// `--cas yes` (every write bumps it), else the store-wide counter of
    /// lazily assigned tokens. One mode, one sequence, so a key's token
    /// never repeats.
    #[inline]
    fn next_token(&self, shard: &mut Shard) -> u64 {
        if self.cas {
            shard.cas += 1;
            shard.cas
        } else {
            self.tokens.fetch_add(1, Ordering::Relaxed) + 1
        }
    }

    /// The token for an in-place change of the entry in bucket `i` (the
    /// shard counter was already bumped for this write): a fresh one if
    /// the entry carries a token field, else 0 (nothing to change).
    #[inline]
    fn new_token(&self, shard: &mut Shard, i: usize) -> u64 {
        if self.cas {
            shard.cas
        } else if shard.table.at(i).cas_at().is_some() {
            self.next_token(shard)
        } else {
            0
        }
    }

    /// Finds `key`'s entry. A dead one is removed here (and counted as
    /// expired), so a command that touched it, even one that then fails,
    /// leaves no dead entry behind; it is returned to be freed after the
    /// lock. The index returned is always a live entry.
    #[inline]
    fn find_live(
        &self,
        shard: &mut Shard,
        hash: u64,
        key: &[u8],
        now: i64,
    ) -> (Option<usize>, Option<Entry>) {
        let Some(i) = shard.table.find(hash, |e| e.key() == key) else {
            return (None, None);
        };
        if shard.table.at(i).is_alive(now) {
            return (Some(i), None);
        }
        let dead = shard.remove_dead(i, &self.hasher);
        self.expired(1);
        (None, Some(dead))
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
        let shard = &mut guard;
        shard.cas += 1;
        let cas = if self.cas { shard.cas } else { 0 };
        let (found, dead) = self.find_live(shard, hash, key, now);
        let old = found.map(|i| shard.table.at(i));
        let allowed = match opts.cond {
            Cond::Always => true,
            Cond::Nx => old.is_none(),
            Cond::Xx => old.is_some(),
        } && match opts.cas {
            None => true,
            // Only an entry that handed out a token can match one.
            Some(c) => old.is_some_and(|e| e.cas_at().is_some() && e.cas() == c),
        };
        if !allowed {
            let existed = old.is_some();
            drop(guard);
            drop(dead);
            return Ok(SetOutcome::NotStored { existed });
        }
        let expires = match opts.expiry {
            Expiry::Never => 0,
            Expiry::At(t) => t.max(1),
            Expiry::Keep => old.map(|e| e.expires()).unwrap_or(0),
        };
        let meta = Meta {
            expires,
            cas,
            with_cas: self.cas,
            access: secs(now),
            flags: opts.flags,
        };
        if let Some(i) = found
            && shard.table.at(i).same_shape(value.len(), &meta)
        {
            // The same layout and size: overwrite in place (no allocation,
            // no hole, nothing to free; the size does not change, so
            // nothing needs evicting either).
            on_replaced(EntryRef(shard.table.at(i)));
            shard.table.entry_mut(i).rewrite(&meta, value);
            self.note(shard, hash, key, now);
            drop(guard);
            drop(dead);
            return Ok(SetOutcome::Stored { replaced: true });
        }
        let new = self.entry(hash, key, &[value], meta);
        let mut evicted = Evicted::default();
        let placed = self.place(shard, found, hash, key, new, now, &mut evicted);
        let replaced = match placed {
            Ok(old) => old,
            Err(e) => {
                drop(guard);
                drop(dead);
                return Err(e);
            }
        };
        if let Some(old) = &replaced {
            on_replaced(EntryRef(old.as_ptr()));
        }
        self.note(shard, hash, key, now);
        drop(guard);
        drop(replaced);
        drop(dead);
        drop(evicted);
        self.after_write(key.len() + value.len(), now, true);
        Ok(SetOutcome::Stored {
            replaced: found.is_some(),
        })
    }

    /// Puts `new` in place of the live entry in bucket `found`, or inserts
    /// it. When that grows the store it first makes room ([`make_room`]),
    /// which may refuse. Returns the replaced entry, to be freed (with
    /// `evicted`) after the lock.
    ///
    /// [`make_room`]: Store::make_room
    #[allow(clippy::too_many_arguments)]
    fn place(
        &self,
        shard: &mut Locked<'_>,
        mut found: Option<usize>,
        hash: u64,
        key: &[u8],
        new: Entry,
        now: i64,
        evicted: &mut Evicted,
    ) -> Result<Option<Entry>, StoreError> {
        let old_size = found.map(|i| shard.table.at(i).size()).unwrap_or(0);
        let grow = new.size().saturating_sub(old_size);
        if grow > 0 && self.make_room(shard, hash, now, grow, found.is_none(), evicted)? {
            // Evicting from this shard shifts probe runs: find the key's
            // bucket again (eviction never takes the key's own entry).
            if found.is_some() {
                found = shard.table.find(hash, |e| e.key() == key);
            }
        }
        Ok(self.put(shard, found, hash, new))
    }

    /// Puts `new` in bucket `found` (returning the entry it replaces) or
    /// inserts it, keeping the shard's byte count and prefetch hint.
    #[inline]
    fn put(
        &self,
        shard: &mut Locked<'_>,
        found: Option<usize>,
        hash: u64,
        new: Entry,
    ) -> Option<Entry> {
        match found {
            Some(i) => {
                let size = new.size();
                let old = shard.table.replace(i, hash, new);
                shard.bytes = shard.bytes + size - old.size();
                Some(old)
            }
            None => {
                shard.insert(new, hash, &self.cx());
                self.publish_for(hash, shard);
                None
            }
        }
    }

    /// Would `grow` more bytes take the store over its budget? Counts
    /// what this shard's open guard has changed but not yet published.
    #[inline]
    fn over_budget(&self, shard: &Locked<'_>, grow: usize, budget: usize) -> bool {
        let total = self.total.load(Ordering::Relaxed) as isize + shard.pending();
        total.max(0) as usize + grow > budget
    }

    /// Makes room before a write grows the store by `grow` bytes. Over
    /// the RSS limit (the low-memory flag) at least one entry goes per
    /// write, Pogocache's rule (in a store that packs, at least `grow`
    /// bytes, evicted by the compactor right after the write: the debt
    /// below); over the byte budget, as many as bring the
    /// store back under it (up to a cap that scales with `grow`, so one
    /// large value can displace many small ones while a shrinking budget
    /// is caught up gradually). Victims come from this shard while it
    /// holds more than its share of the budget, else from other shards,
    /// so a value larger than a shard's share still finds room. With
    /// eviction off, only a write of a new key (`new_key`) is refused. A
    /// single entry larger than the whole budget is refused. Returns
    /// whether entries of this shard were evicted.
    fn make_room(
        &self,
        shard: &mut Locked<'_>,
        hash: u64,
        now: i64,
        grow: usize,
        new_key: bool,
        evicted: &mut Evicted,
    ) -> Result<bool, StoreError> {
        let budget = self.budget.load(Ordering::Relaxed);
        let low = self.low_memory.load(Ordering::Relaxed);
        if !low && !self.over_budget(shard, grow, budget) {
            return Ok(false);
        }
        if grow > budget {
            return Err(StoreError::OutOfMemory);
        }
        if !self.evict {
            return if new_key {
                Err(StoreError::OutOfMemory)
            } else {
                Ok(false)
            };
        }
        if let Some(a) = &self.arena {
            // Holes now cost items: compaction keeps them fewer.
            a.evicting.store(true, Ordering::Relaxed);
            // Over the RSS limit but within the budget: the bytes this
            // write adds are owed, and the compactor evicts them from an
            // old segment right after it (random victims would leave
            // holes all over the store, and holes are RSS). Unless the
            // debt could not be paid (no sealed segment to walk, or the
            // compactor is behind by `MAX_DEBT`).
            let owed = grow.max(1) as isize;
            let defer = a.sealed.load(Ordering::Relaxed) > 0
                && !self.over_budget(shard, grow, budget)
                && a.debt.load(Ordering::Relaxed) + owed <= MAX_DEBT;
            if defer {
                a.debt.fetch_add(owed, Ordering::Relaxed);
            }
            // The compactor evicts right after this write (the debt), or
            // ahead of the next ones (after this one's evictions below).
            // Set after the debt, so that a step that sees the flag sees
            // what is owed.
            a.want_room.store(true, Ordering::Release);
            if defer {
                return Ok(false);
            }
        }
        let share = budget / self.shards.len();
        let cap = EVICT_MAX + grow / 128;
        let mut local = false;
        for n in 0..cap {
            if n > 0 && !self.over_budget(shard, grow, budget) {
                break;
            }
            let e = if shard.bytes > share {
                shard.evict_one(hash, now, &self.hasher)
            } else {
                None
            };
            let e = match e {
                Some(e) => Some(e),
                None => match self.evict_elsewhere(hash, now) {
                    true => continue,
                    false => shard.evict_one(hash, now, &self.hasher),
                },
            };
            let Some(e) = e else { break };
            self.note_gone(&e);
            local = true;
            self.count_removed(&e, now);
            evicted.push(e);
        }
        Ok(local)
    }

    /// Counts a removed entry as an eviction (alive) or expiration (dead).
    #[inline]
    fn count_removed(&self, e: &Entry, now: i64) {
        if e.is_alive(now) {
            self.evictions.fetch_add(1, Ordering::Relaxed);
        } else {
            self.expired(1);
        }
    }

    /// Evicts one entry from another shard: a clock hand walks the
    /// occupied shards (see `occupied`) from where the last such eviction
    /// left off, skipping any whose lock is held, so victims spread evenly
    /// over the store, and a sparse store (a few large values in thousands
    /// of shards) finds its few victims without visiting the empty shards.
    /// Returns whether one was evicted (and freed).
    fn evict_elsewhere(&self, hash: u64, now: i64) -> bool {
        let own = self.shard_of(hash);
        let start = self.hand.load(Ordering::Relaxed) % self.shards.len();
        for (k, j) in self.occupied_from(start).enumerate() {
            if j == own {
                continue;
            }
            let Some(mut other) = self.try_lock_index(j) else {
                continue;
            };
            if let Some(e) = other.evict_one(hash.rotate_left(k as u32 % 64), now, &self.hasher) {
                self.note_gone(&e);
                drop(other);
                self.hand.store(j + 1, Ordering::Relaxed);
                self.count_removed(&e, now);
                drop(e);
                return true;
            }
        }
        false
    }

    /// Evicts entries too large to pack, which no walk meets, in
    /// proportion to the packed bytes the walks evict: `bytes` packed
    /// bytes just evicted earn `bytes` x unpacked / packed bytes of
    /// `credit`, and while the credit is positive, the best of up to five
    /// unpacked entries sampled near `hash` goes (unread first, then the
    /// least recently used, as `Shard::evict_one`). Why: with the walks
    /// making room ahead of the writes, the writes' own sampled evictions
    /// became rare, and large values, met by nothing else, stayed while
    /// the small ones cycled through (in a test where one write in ten
    /// was too large to pack, 80% of the entries held were large).
    /// Evicting each kind in proportion to what it holds gives both the
    /// same lifetime in writes, as when every eviction was sampled.
    fn evict_unpacked_share(
        &self,
        a: &seg::Arena,
        credit: &mut isize,
        bytes: usize,
        hash: u64,
        now: i64,
    ) {
        let packed = a.packed.load(Ordering::Relaxed).max(1);
        let unpacked = self.total.load(Ordering::Relaxed).saturating_sub(packed);
        *credit =
            (*credit + (bytes as u128 * unpacked as u128 / packed as u128) as isize).min(MAX_DEBT);
        // A few shards at most per packed eviction: where none is found
        // nearby the credit waits for the next one.
        for k in 0..4u32 {
            if *credit <= 0 {
                break;
            }
            let h = hash.rotate_left(17 + k * 11);
            let start = self.shard_of(h);
            let Some(j) = self.occupied_from(start).next() else {
                return;
            };
            let Some(mut g) = self.try_lock_index(j) else {
                continue;
            };
            if let Some(e) = g.evict_unpacked(h.rotate_left(29), now, &self.hasher) {
                self.note_gone(&e);
                drop(g);
                self.count_removed(&e, now);
                *credit -= e.size() as isize;
            }
        }
    }

    /// Indices of the shards whose occupancy bit is set, from `start`
    /// round to just before it. The bits are read word by word as the
    /// walk goes, so a shard that empties or fills meanwhile may be seen
    /// either way; [`Store::evict_elsewhere`] only needs a good guess.
    fn occupied_from(&self, start: usize) -> impl Iterator<Item = usize> + '_ {
        let words = self.occupied.len();
        let (w0, b0) = (start / 64, start % 64);
        (0..=words).flat_map(move |k| {
            let w = (w0 + k) % words;
            let mut bits = self.occupied[w].load(Ordering::Relaxed);
            if k == 0 {
                bits &= !0u64 << b0;
            } else if k == words {
                // The first word again: only the bits before `start`.
                bits &= (1u64 << b0) - 1;
            }
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    w * 64 + b
                })
            })
        })
    }

    /// Whether every shard's occupancy bit matches whether it holds
    /// entries (tests only: the invariant [`Locked`] keeps).
    #[cfg(test)]
    pub(crate) fn occupancy_is_exact(&self) -> bool {
        (0..self.shards.len()).all(|i| {
            let full = self.lock_index(i).bytes > 0;
            let bit = self.occupied[i / 64].load(Ordering::Relaxed) >> (i % 64) & 1 == 1;
            full == bit
        })
    }

    /// Whether no occupancy bit is set (tests only).
    #[cfg(test)]
    pub(crate) fn occupancy_is_empty(&self) -> bool {
        self.occupied.iter().all(|w| w.load(Ordering::Relaxed) == 0)
    }

    /// Deletes a live key. Returns whether one was deleted.
    pub fn delete(&self, key: &[u8], now: i64) -> bool {
        let (hash, mut shard) = self.lock(key);
        let Some(i) = shard.table.find(hash, |e| e.key() == key) else {
            return false;
        };
        let e = shard.remove_dead(i, &self.hasher);
        if shard.maybe_shrink(&self.hasher) {
            self.publish_for(hash, &shard);
        }
        self.note_gone(&e);
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
        let (found, dead) = self.find_live(shard, hash, key, now);
        let Some(i) = found else {
            drop(guard);
            drop(dead);
            return false;
        };
        let cas = self.new_token(shard, i);
        let mut replaced = None;
        let ex = expires.map(|t| t.max(1)).unwrap_or(0);
        let mut m = shard.table.entry_mut(i);
        if m.set_expiry(ex, cas) {
            m.set_access(secs(now));
        } else {
            // No room for an expiry in this entry: rebuild it with one
            // (keeping its token field, with a new value, if it had one).
            let old = shard.table.at(i);
            let meta = Meta {
                expires: ex,
                cas,
                with_cas: self.cas || old.cas_at().is_some(),
                access: secs(now),
                flags: old.flags(),
            };
            let new = self.entry(hash, old.key(), &[old.value()], meta);
            let size = new.size();
            let old = shard.table.replace(i, hash, new);
            shard.bytes = shard.bytes + size - old.size();
            replaced = Some(old);
        }
        let mut removed = None;
        if !shard.table.at(i).is_alive(now) {
            removed = Some(shard.remove_dead(i, &self.hasher));
            self.expired(1);
        }
        self.note(shard, hash, key, now);
        drop(guard);
        drop(replaced);
        drop(removed);
        true
    }

    /// Memcache meta invalidation: marks a live key stale (it is still
    /// served, flagged as stale) and re-arms its recache token; gives it a
    /// new CAS. Returns whether the key was alive.
    pub fn invalidate(&self, key: &[u8], now: i64) -> bool {
        let (hash, mut guard) = self.lock(key);
        let shard = &mut *guard;
        shard.cas += 1;
        let (found, dead) = self.find_live(shard, hash, key, now);
        let Some(i) = found else {
            drop(guard);
            drop(dead);
            return false;
        };
        let cas = self.new_token(shard, i);
        let expires = shard.table.at(i).expires();
        let mut m = shard.table.entry_mut(i);
        m.mark(entry::STALE, entry::WON);
        m.set_expiry(expires, cas);
        self.note(shard, hash, key, now);
        true
    }

    /// Hands out a live key's one recache token: `Some(true)` to the first
    /// caller (which should refill the item), `Some(false)` after that,
    /// `None` when the key is missing. Writing a new value re-arms it.
    pub fn claim_win(&self, key: &[u8], now: i64) -> Option<bool> {
        let (hash, mut guard) = self.lock(key);
        let shard = &mut *guard;
        let (found, dead) = self.find_live(shard, hash, key, now);
        let won = found.map(|i| {
            let first = shard.table.at(i).marks() & entry::WON == 0;
            shard.table.entry_mut(i).mark(entry::WON, 0);
            first
        });
        drop(guard);
        drop(dead);
        won
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
        let shard = &mut guard;
        shard.cas += 1;
        let cas = if self.cas { shard.cas } else { 0 };
        let (found, dead) = self.find_live(shard, hash, key, now);
        scratch.clear();
        let res = match found {
            Some(i) => f(Some(shard.table.at(i).value()), scratch),
            None => f(None, scratch),
        };
        let r = match res {
            Ok((_, true)) if scratch.len() > MAX_VALUE_LEN => {
                Err(UpdateError::Store(StoreError::TooLarge))
            }
            Ok((r, true)) => {
                let mut evicted = Evicted::default();
                match self.write_back(
                    shard,
                    found,
                    hash,
                    key,
                    now,
                    cas,
                    Edit::Whole(scratch),
                    &mut evicted,
                ) {
                    Ok(old) => {
                        self.note(&guard, hash, key, now);
                        drop(guard);
                        drop(old);
                        drop(evicted);
                        self.after_write(key.len() + scratch.len(), now, true);
                        Ok(r)
                    }
                    Err(e) => Err(UpdateError::Store(e)),
                }
            }
            Ok((r, false)) => Ok(r),
            Err(e) => Err(UpdateError::Op(e)),
        };
        drop(dead);
        r
    }

    /// The end of every read-modify-write: builds the new entry from
    /// `edit` applied to the live entry in bucket `found` (or to nothing),
    /// keeping its expiry and flags, and places it ([`Store::place`]).
    /// Returns the replaced entry, to free after the lock.
    #[allow(clippy::too_many_arguments)]
    fn write_back(
        &self,
        shard: &mut Locked<'_>,
        found: Option<usize>,
        hash: u64,
        key: &[u8],
        now: i64,
        cas: u64,
        edit: Edit<'_>,
        evicted: &mut Evicted,
    ) -> Result<Option<Entry>, StoreError> {
        let old = found.map(|i| shard.table.at(i));
        let (expires, flags) = old.map(|e| (e.expires(), e.flags())).unwrap_or((0, 0));
        let new = self.entry(
            hash,
            key,
            &edit.parts(old.map(|e| e.value()).unwrap_or_default()),
            Meta {
                expires,
                cas,
                with_cas: self.cas,
                access: secs(now),
                flags,
            },
        );
        self.place(shard, found, hash, key, new, now, evicted)
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
        let shard = &mut guard;
        let (found, dead) = self.find_live(shard, hash, key, now);
        let old_len = found.map(|i| shard.table.at(i).value().len());
        let len = old_len.unwrap_or(0) + data.len();
        let res = if old_len.is_none() && !create {
            Ok(None)
        } else if len > MAX_VALUE_LEN {
            Err(StoreError::TooLarge)
        } else {
            shard.cas += 1;
            let cas = if self.cas { shard.cas } else { 0 };
            let mut evicted = Evicted::default();
            let placed = self.write_back(
                shard,
                found,
                hash,
                key,
                now,
                cas,
                Edit::Add(side, data),
                &mut evicted,
            );
            placed.map(|old| {
                self.note(&guard, hash, key, now);
                drop(guard);
                drop(old);
                drop(evicted);
                self.after_write(key.len() + len, now, true);
                Some(len)
            })
        };
        drop(dead);
        res
    }

    /// Looks for holes in the packed entries' segments and, if they are
    /// over what the store tolerates, compacts about `work` bytes of them.
    /// Why: writers compact as they write, but holes that deletes, sweeps
    /// or expiry leave in a store that then takes no writes would stay
    /// resident for good; a server calls this from its timer (ours: 2 MiB
    /// ten times a second). Cheap when there is nothing to do: one pass
    /// over the list of sealed segments.
    pub fn compact(&self, work: usize, now: i64) {
        if let Some(a) = &self.arena {
            a.check(self.room());
            if a.needs.load(Ordering::Relaxed) || a.walking.load(Ordering::Relaxed) {
                self.compact_step(a, work, now, false);
            }
        }
    }

    /// The packed entries' segments (see [`Config::segment_bytes`]):
    /// `None` for a store that does not pack.
    pub fn segment_stats(&self) -> Option<SegmentStats> {
        self.arena.as_ref().map(|a| {
            let (segments, bytes, holes) = a.stats();
            SegmentStats {
                segments,
                bytes,
                holes,
            }
        })
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
        self.total.load(Ordering::Relaxed)
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
        let n = match self.journal.get() {
            Some(j) => self.clear_journaled(&**j),
            None => self.clear_quietly(),
        };
        if let Some(a) = &self.arena {
            // Nothing is left to evict: what writes over the limit owed is
            // paid (else the next writes would evict for it).
            a.debt.store(0, Ordering::Relaxed);
            a.want_room.store(false, Ordering::Relaxed);
            // Nothing is left to move: end the compactor's walk, so that
            // its segment goes back now rather than at the next compaction.
            if let Ok(mut c) = a.compactor.try_lock()
                && let Some(w) = c.walk.take()
            {
                a.walking.store(false, Ordering::Relaxed);
                a.unpin(w.base);
            }
        }
        n
    }

    fn clear_quietly(&self) -> usize {
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

    /// [`Store::clear`] with a journal installed: every shard is locked
    /// (in index order, the only order in which anything holds more than
    /// one shard lock), then, if journaling is on, [`Mutation::Clear`] is
    /// reported. So no write can land in an already-cleared shard ahead of
    /// the clear in the journal, and journaling switched on in the middle
    /// of a clear (a snapshot for a new replica) cannot miss it.
    fn clear_journaled(&self, j: &dyn Journal) -> usize {
        let mut locked: Vec<Locked<'_>> =
            (0..self.shards.len()).map(|i| self.lock_index(i)).collect();
        if self.journaling.load(Ordering::SeqCst) {
            j.record(Mutation::Clear);
        }
        let mut old = Vec::with_capacity(locked.len());
        for (i, s) in locked.iter_mut().enumerate() {
            s.bytes = 0;
            old.push(s.table.take());
            self.publish(i, s);
        }
        drop(locked);
        old.iter().map(|t| t.len()).sum()
    }

    /// Removes every live entry whose key `doomed` picks, one shard at a
    /// time (dead entries met are reaped as expirations). Returns how many
    /// live entries were removed. Why: a cluster node drops the keys of
    /// slots it no longer owns after a topology change, without pausing
    /// more than one shard at a time. Memory is freed outside the locks.
    pub fn remove_where(&self, now: i64, mut doomed: impl FnMut(&[u8]) -> bool) -> usize {
        let mut removed = 0;
        let mut dead = Vec::new();
        let mut gone = Vec::new();
        for i in 0..self.shards.len() {
            {
                let mut s = self.lock_index(i);
                s.sweep_into(now, &mut dead, &self.hasher);
                s.table
                    .extract_into(|e| doomed(e.key()), &mut gone, &self.hasher);
                for e in &gone {
                    s.bytes -= e.size();
                    self.note_gone(e);
                }
                s.maybe_shrink(&self.hasher);
                self.publish(i, &s);
            }
            self.expired(dead.len());
            removed += gone.len();
            dead.clear();
            gone.clear();
        }
        removed
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

/// Most entries one insert evicts when the shard is over its byte budget.
const EVICT_MAX: usize = 8;
/// Bytes of writes over the RSS limit that may wait for the compactor to
/// evict them (`Arena::debt`); past it writes evict for themselves, at
/// random. It is paid a write at a time unless the compactor is stuck,
/// so this only bounds how much a stuck one could be owed.
const MAX_DEBT: isize = 1 << 20;

/// Live entries one eviction compares (see `Shard::evict_one`). Five, as
/// Redis's default `maxmemory-samples`: with the hit mark, two samples
/// kept 0.83 of Zipf(0.99) reads in a simulation where five kept 0.85 and
/// eight 0.855; each sample is one entry header read.
const EVICT_SAMPLES: usize = 5;

/// Entries removed from the writer's own shard to make room for one
/// write, freed after its lock: the first few inline (no allocation on
/// the common path), any more in a vector.
#[derive(Default)]
struct Evicted {
    few: [Option<Entry>; EVICT_MAX],
    n: usize,
    more: Vec<Entry>,
}

impl Evicted {
    fn push(&mut self, e: Entry) {
        if self.n < EVICT_MAX {
            self.few[self.n] = Some(e);
            self.n += 1;
        } else {
            self.more.push(e);
        }
    }
}

/// A locked shard that publishes its byte delta to the store-wide total
/// when released, so every path that changes `bytes` (writes, sweeps,
/// evictions, clears) keeps [`Store::bytes`] exact without an atomic per
/// internal step, and the shard's occupancy bit with it.
struct Locked<'a> {
    guard: MutexGuard<'a, Shard>,
    before: usize,
    store: &'a Store,
}

impl<'a> Locked<'a> {
    #[inline]
    fn new(guard: MutexGuard<'a, Shard>, store: &'a Store) -> Locked<'a> {
        let before = guard.bytes;
        Locked {
            guard,
            before,
            store,
        }
    }

    /// This shard's index, from where it sits in the store's slot array
    /// (a `Shard` lies inside its 64-byte `Slot`). Worked out only when
    /// the occupancy bit changes, so every guard stays three words.
    #[inline]
    fn index(&self) -> usize {
        let base = self.store.shards.as_ptr() as usize;
        (&*self.guard as *const Shard as usize - base) / size_of::<Slot>()
    }

    /// Bytes changed under this guard, not yet in the total.
    #[inline]
    fn pending(&self) -> isize {
        self.guard.bytes as isize - self.before as isize
    }
}

impl Deref for Locked<'_> {
    type Target = Shard;
    #[inline]
    fn deref(&self) -> &Shard {
        &self.guard
    }
}

impl DerefMut for Locked<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Shard {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    #[inline]
    fn drop(&mut self) {
        let (before, after) = (self.before, self.guard.bytes);
        if after == before {
            return;
        }
        if after > before {
            self.store
                .total
                .fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.store
                .total
                .fetch_sub(before - after, Ordering::Relaxed);
        }
        if (before == 0) != (after == 0) {
            self.flip_occupied(after > 0);
        }
    }
}

impl Locked<'_> {
    /// Sets or clears this shard's occupancy bit. Runs before the guard
    /// is released (the guard field drops after `drop`'s body), so a
    /// shard's bit is only ever written by its lock holder. Out of line:
    /// inlined, it made every guard's drop too large to inline, 0.6% more
    /// instructions per request.
    #[cold]
    #[inline(never)]
    fn flip_occupied(&self, occupied: bool) {
        let i = self.index();
        let word = &self.store.occupied[i / 64];
        let bit = 1u64 << (i % 64);
        if occupied {
            word.fetch_or(bit, Ordering::Relaxed);
        } else {
            word.fetch_and(!bit, Ordering::Relaxed);
        }
    }
}

/// What shard methods need from the store's configuration.
struct Cx<'a> {
    hasher: &'a FixedState,
    load_factor: usize,
}

/// Reports `key`'s state in a locked shard: its live entry, or its
/// absence (missing or dead).
fn note_state(j: &dyn Journal, shard: &Shard, hash: u64, key: &[u8], now: i64) {
    match shard.table.find(hash, |e| e.key() == key) {
        Some(i) if shard.table.at(i).is_alive(now) => {
            let e = shard.table.at(i);
            j.record(Mutation::Set {
                key,
                value: e.value(),
                flags: e.flags(),
                expires: match e.expires() {
                    0 => None,
                    t => Some(t),
                },
                stale: e.marks() & entry::STALE != 0,
            });
        }
        _ => j.record(Mutation::Del { key }),
    }
}

/// Error from [`Store::update`]: the caller's own failure, or the store's.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateError<E> {
    Op(E),
    Store(StoreError),
}

impl Shard {
    /// Removes the entry in bucket `i` and takes its bytes off.
    #[inline]
    fn remove_dead(&mut self, i: usize, h: &FixedState) -> Entry {
        let e = self.table.remove(i, h);
        self.bytes -= e.size();
        e
    }

    fn insert(&mut self, e: Entry, hash: u64, cx: &Cx<'_>) {
        let len = self.table.len();
        let n = self.table.num_buckets();
        if (len + 1) * 100 > n * cx.load_factor {
            // Grow early so the table never runs fuller than --loadfactor,
            // by the smallest step that keeps it there (see `table.rs`).
            let want = ((len + 1) * 100).div_ceil(cx.load_factor);
            // The bucket array goes on the heap this entry does not use
            // (see `table.rs`, `Buckets`).
            self.table.grow(
                table::size_at_least(want.max(MIN_BUCKETS)),
                cx.hasher,
                !e.on_c_heap(),
            );
        }
        self.bytes += e.size();
        self.inserts += 1;
        self.table.insert(hash, e);
    }

    /// Shrinks after mass deletion (count ≤ 10% of buckets) to about half
    /// full, never below the minimum table size. Returns whether the table
    /// was rebuilt.
    fn maybe_shrink(&mut self, h: &FixedState) -> bool {
        let n = self.table.num_buckets();
        let len = self.table.len();
        if n > MIN_BUCKETS * 2 && len * 10 <= n {
            let to = table::size_at_least((len * 2).max(MIN_BUCKETS));
            if to < n {
                self.table.resize(to, h);
                return true;
            }
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

    /// Sampled eviction that protects entries read since they were
    /// written: scan from a pseudo-random bucket (derived from the new
    /// key's hash), skip the new key's own hash, remove the first dead
    /// entry met, else the best victim among the first [`EVICT_SAMPLES`]
    /// live ones: an entry never read before one that was (the hit
    /// mark), the least recently used within each group. When every
    /// candidate carries the mark, the survivors lose it: marks decay as
    /// the cache needs room, so entries read once long ago do not keep
    /// their place for good.
    ///
    /// Why not Pogocache's 2-random LRU: under Zipf-like popularity most
    /// insertions are keys read once and never again, and LRU keeps each
    /// of them for a full turn of the cache, pushing out keys read over
    /// and over. Telling the two apart costs one header bit (set by the
    /// read that already writes the access time) and three more samples
    /// per eviction. With a third of a Zipf(0.99) key space in memory the
    /// hit ratio went from 0.81 to 0.85 at the same item count
    /// (BENCHMARKS.md). A workload that never reads its items, or reads
    /// every one of them, sees plain sampled LRU.
    fn evict_one(&mut self, hash: u64, now: i64, h: &FixedState) -> Option<Entry> {
        let n = self.table.num_buckets();
        let start = (hash as usize).wrapping_add(1) % n.max(1);
        let s = self.sample(start, n, now, |i, _| !self.table.same_tag(i, hash))?;
        if s.all_hit {
            for &i in &s.seen[..s.count] {
                if i != s.victim {
                    self.table.entry_mut(i).clear_hit();
                }
            }
        }
        let e = self.table.remove(s.victim, h);
        self.bytes -= e.size();
        Some(e)
    }

    /// For [`Store::evict_unpacked_share`]: the best victim among up to
    /// five entries that are not packed, in the first 64 buckets from
    /// `hash`, goes. No demotion: it only ever sees the large entries,
    /// and those meet no other eviction to be demoted by.
    fn evict_unpacked(&mut self, hash: u64, now: i64, h: &FixedState) -> Option<Entry> {
        let n = self.table.num_buckets();
        let start = (hash as usize) % n.max(1);
        let s = self.sample(start, n.min(64), now, |_, e| !seg::contains(e.addr()))?;
        let e = self.table.remove(s.victim, h);
        self.bytes -= e.size();
        Some(e)
    }

    /// The sampling both evictions share: from bucket `start`, over at
    /// most `span` buckets, the entries `take` accepts. The first dead
    /// one is the victim at once; else the best of the first
    /// [`EVICT_SAMPLES`] live ones (unread before read, then the least
    /// recently used). `None` when none was accepted.
    fn sample(
        &self,
        start: usize,
        span: usize,
        now: i64,
        take: impl Fn(usize, EntryPtr<'_>) -> bool,
    ) -> Option<Sample> {
        let n = self.table.num_buckets();
        let mut s = Sample {
            victim: 0,
            seen: [0; EVICT_SAMPLES],
            count: 0,
            all_hit: true,
        };
        // (hit, access, bucket) of the best victim so far.
        let mut best: Option<(bool, u32, usize)> = None;
        for k in 0..span {
            let i = (start + k) % n;
            let Some(e) = self.table.get(i) else {
                continue;
            };
            if !take(i, e) {
                continue;
            }
            if !e.is_alive(now) {
                best = Some((false, 0, i));
                s.all_hit = false;
                break;
            }
            let cand = (e.was_hit(), e.access(), i);
            s.all_hit &= cand.0;
            if best.is_none_or(|b| (cand.0, cand.1) < (b.0, b.1)) {
                best = Some(cand);
            }
            s.seen[s.count] = i;
            s.count += 1;
            if s.count == EVICT_SAMPLES {
                break;
            }
        }
        s.victim = best?.2;
        Some(s)
    }
}

/// What [`Shard::sample`] found: the victim's bucket, the live candidates
/// compared, and whether every one of them had been read.
struct Sample {
    victim: usize,
    seen: [usize; EVICT_SAMPLES],
    count: usize,
    all_hit: bool,
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
