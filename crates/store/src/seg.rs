//! Packed entries: byte-exact placement of small entries in large shared
//! segments, and the bookkeeping that gives a segment back once nothing in
//! it is alive.
//!
//! Owns: the process-wide address range segments are carved from, each
//! store's open segments (one per allocation head), the per-segment live
//! byte count, the order segments were sealed in, and choosing which
//! segment to compact (the largest share of holes) or to evict from (the
//! oldest).
//! Does not own: entry layout (`entry.rs`), finding, moving and evicting
//! the live entries of a segment (`Store::compact_step` in `lib.rs`,
//! which holds the shard locks that needs) or the byte budget.
//!
//! Why: every entry its own allocation costs the allocator's rounding per
//! item: a 50-byte entry takes a 64-byte block, 14 of the 37 bytes of
//! overhead per item at 32-byte values (the store header in `lib.rs` has
//! the arithmetic). Here an entry takes exactly its size, appended at the
//! end of an open segment.
//!
//! How memory comes back: a segment counts the bytes of the entries in it
//! that have not been dropped (`state`, with a bias while it is still open
//! for appends and another while the compactor walks it). Dropping an
//! entry subtracts its size; the drop that takes the count to zero gives
//! the segment back. So a segment is reused only once every entry placed
//! in it is gone, whoever still held one (an entry moved out of a table is
//! read until its owner drops it), which is the whole safety argument.
//! Deletes and overwrites leave holes; `Store::compact_step` copies the
//! live entries of the segment with the largest share of holes into a
//! fresh one, under each entry's shard lock, and the segment then
//! empties. Evictions leave none: they take an old segment's entries
//! where they lie (moving only those read since), so it empties too.
//!
//! Why one reserved range: a dropped entry must find out cheaply whether
//! it lives in a segment, and which (the entry header has no bit left).
//! Segments are aligned slots of one range reserved at first use
//! (`PROT_NONE`, so it costs neither memory nor commit charge until a slot
//! is made writable), so the test is two compares and the segment header
//! is the address rounded down. If the range cannot be reserved (an
//! address-space limit), stores fall back to one allocation per entry.

use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

/// Bytes of address space per segment slot, and the largest segment.
pub(crate) const SEG: usize = 16 << 20;
/// Segment header bytes (the entries start after it).
pub(crate) const SEG_HEADER: usize = 64;
/// Largest entry placed in a segment. Larger entries stay allocations of
/// their own (their rounding is a small fraction of them), and a segment
/// never wastes more than this at its end.
pub(crate) const PACK_MAX: usize = 16 * 1024;
/// The smallest fill a segment is sealed at, unless configured smaller.
const MIN_LIMIT: usize = 1 << 20;
/// Allocation heads per store: writers pick one by hash, so two threads
/// seldom wait on the same one.
const HEADS: usize = 4;

/// `state` bias while a segment is some head's open segment.
const OPEN: u64 = 1 << 40;
/// `state` bias while the compactor walks a segment.
const PIN: u64 = 1 << 50;

/// Address range to reserve: 1 TiB (65,536 slots), else less (under
/// an address-space limit, or valgrind, which refuses the larger ones).
const RESERVE: [usize; 4] = [1 << 40, 64 << 30, 16 << 30, 4 << 30];

/// Start and length of the reserved range (0 and 0 until reserved).
static BASE: AtomicUsize = AtomicUsize::new(0);
static LEN: AtomicUsize = AtomicUsize::new(0);
static RESERVED: Once = Once::new();

/// Slots handed out so far (`bump`) and slots given back (`free`, made
/// writable once and emptied with `MADV_DONTNEED`).
struct Slots {
    bump: usize,
    free: Vec<usize>,
}

static SLOTS: Mutex<Slots> = Mutex::new(Slots {
    bump: 0,
    free: Vec::new(),
});

/// Set while every slot is in use, so that writers fall back to the heap
/// without taking the slot lock each time; cleared when one comes back.
static EXHAUSTED: AtomicBool = AtomicBool::new(false);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The largest range to reserve under the process's address-space limit:
/// a quarter of it, so the rest of the process (heaps, stacks, large
/// entries) keeps the other three quarters; no limit, no cap.
fn address_space_cap() -> usize {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } == 0;
    if !ok || r.rlim_cur == libc::RLIM_INFINITY {
        usize::MAX
    } else {
        (r.rlim_cur / 4) as usize
    }
}

fn reserve() {
    RESERVED.call_once(|| {
        let cap = address_space_cap();
        for len in RESERVE.into_iter().filter(|&len| len + SEG <= cap) {
            // SAFETY: an anonymous PROT_NONE mapping with no hint has no
            // preconditions; the result is checked.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len + SEG,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                // No transparent huge pages here, whatever the system's
                // setting: with `always`, the first write to a segment
                // (sealed at 1 MiB in a small store) would fault in 2 MiB.
                // SAFETY: advice on a range we just mapped; failure only
                // leaves the system's default.
                unsafe { libc::madvise(p, len + SEG, libc::MADV_NOHUGEPAGE) };
                let base = (p as usize).next_multiple_of(SEG);
                LEN.store(len, Ordering::Relaxed);
                BASE.store(base, Ordering::Relaxed);
                return;
            }
        }
    });
}

/// Whether `p` lies in a segment (so the entry there is packed).
#[inline]
pub(crate) fn contains(p: *const u8) -> bool {
    (p as usize).wrapping_sub(BASE.load(Ordering::Relaxed)) < LEN.load(Ordering::Relaxed)
}

/// The segment a packed address lies in.
#[inline]
fn base_of(p: usize) -> usize {
    p & !(SEG - 1)
}

/// The header at the start of every segment in use.
#[repr(C)]
struct Header {
    /// Live bytes once sealed (while open: [`OPEN`] less the bytes of the
    /// entries dropped so far), plus [`PIN`] while walked.
    state: AtomicU64,
    /// End of the last entry; final once the segment is sealed.
    fill: AtomicUsize,
    /// The owning [`Arena`].
    arena: AtomicUsize,
    /// Order of sealing (the arena's count at the time): the oldest
    /// segment is the one eviction walks.
    seq: AtomicU64,
    /// Sealed from the compactor's head (entries that survived a walk)
    /// rather than a writer's (entries as written).
    main: AtomicBool,
}

#[inline]
fn header<'a>(base: usize) -> &'a Header {
    // SAFETY: `base` is a segment in use: its first page is mapped
    // writable and `Arena::new_segment` initialised the header, which
    // stays valid until the segment is given back (when nothing can
    // reach it any more).
    unsafe { &*(base as *const Header) }
}

/// Bytes in a listed segment and the part of them that are holes, or
/// `None` for one whose seal has not yet turned its [`OPEN`] bias into a
/// live count (it is listed a moment before; its count means nothing yet).
fn holes(base: usize) -> Option<(usize, usize)> {
    let h = header(base);
    let st = h.state.load(Ordering::Relaxed) & !PIN;
    if st >= OPEN {
        return None;
    }
    let f = h.fill.load(Ordering::Relaxed);
    Some((f, (f - SEG_HEADER).saturating_sub(st as usize)))
}

/// A fresh slot made writable, or `None` when the range is used up (or
/// could not be reserved).
fn take_slot() -> Option<usize> {
    reserve();
    let (base, len) = (BASE.load(Ordering::Relaxed), LEN.load(Ordering::Relaxed));
    if len == 0 || EXHAUSTED.load(Ordering::Relaxed) {
        return None;
    }
    let mut s = lock(&SLOTS);
    if let Some(b) = s.free.pop() {
        return Some(b);
    }
    if s.bump + SEG > len {
        EXHAUSTED.store(true, Ordering::Relaxed);
        return None;
    }
    let b = base + s.bump;
    // SAFETY: `b..b+SEG` lies inside the reserved range, unused so far.
    let r = unsafe { libc::mprotect(b as *mut _, SEG, libc::PROT_READ | libc::PROT_WRITE) };
    if r != 0 {
        return None;
    }
    s.bump += SEG;
    Some(b)
}

/// Empties a slot (its pages go back to the kernel) and keeps it for the
/// next segment of any store.
fn give_slot(b: usize) {
    // SAFETY: `b` is a whole slot no entry refers to any more.
    unsafe { libc::madvise(b as *mut _, SEG, libc::MADV_DONTNEED) };
    lock(&SLOTS).free.push(b);
    EXHAUSTED.store(false, Ordering::Relaxed);
}

/// Where a head appends: its open segment (0: none yet) and the offset
/// of the next entry.
#[derive(Default)]
pub(crate) struct Head {
    base: usize,
    off: usize,
    /// The compactor's head: its segments hold entries that survived a
    /// walk (see [`Arena::pick_oldest`]).
    main: bool,
}

/// A store's segments.
#[derive(Default)]
struct Segs {
    /// Sealed segments that still hold entries.
    sealed: Vec<usize>,
}

/// The segment the compactor is walking, and where it has got to.
pub(crate) struct Walk {
    pub base: usize,
    pub off: usize,
    pub fill: usize,
    /// Picked to make room ([`Arena::pick_oldest`]) rather than for its
    /// holes: the walk pauses whenever the store has room again.
    pub evict: bool,
}

/// What the compactor keeps between steps: the segment it walks, and the
/// head it copies live entries to (apart from the writers' heads: its
/// segments are the survivors' queue of [`Arena::pick_oldest`]).
pub(crate) struct Compactor {
    pub walk: Option<Walk>,
    pub head: Head,
    /// Bytes of unpacked entries owed to eviction
    /// (`Store::evict_unpacked_share`).
    pub credit: isize,
}

impl Default for Compactor {
    fn default() -> Compactor {
        Compactor {
            walk: None,
            credit: 0,
            head: Head {
                main: true,
                ..Head::default()
            },
        }
    }
}

/// One store's packed-entry space.
pub(crate) struct Arena {
    heads: [Mutex<Head>; HEADS],
    /// The largest fill a segment is sealed at (≤ [`SEG`]).
    fill_limit: usize,
    /// The fill segments are sealed at now: a sixteenth of the sealed
    /// bytes, at least 1 MiB, at most `fill_limit`. Why it follows the
    /// store's size: a small store in 16 MiB segments would tolerate
    /// holes of a whole segment (the floor below which compacting does
    /// not pay), two fifths of 40 MB; a large one in small segments would
    /// waste more at segment ends (the rest of the page after the last
    /// entry, 2 KiB on average: at 4,000-byte values in 4 MiB segments
    /// that was 2.5 bytes per item, in 16 MiB ones 0.6; and while a store
    /// grows, segments sealed small add to that, hence a sixteenth, not
    /// less).
    limit: AtomicUsize,
    segs: Mutex<Segs>,
    pub compactor: Mutex<Compactor>,
    /// Compaction work (bytes to walk) writers asked for while another
    /// held the compactor: whoever gets it next does it too, so that two
    /// writers do twice the work of one, not the same.
    pub owed: AtomicUsize,
    /// Set when a check ([`Arena::check`], after a write that sealed a
    /// segment, or from the timer) finds more holes than the store
    /// tolerates; writers then run compaction steps until it clears.
    pub needs: AtomicBool,
    /// Set while the compactor has a segment pinned, so that writers keep
    /// stepping until the walk ends even once `needs` clears (a pinned
    /// segment, part moved out, would otherwise stay resident).
    pub walking: AtomicBool,
    /// Set by the store whenever it evicts to make room; read and cleared
    /// at each check.
    pub evicting: AtomicBool,
    /// Set when a segment is sealed: the store then runs [`Arena::check`]
    /// after the write.
    pub check_due: AtomicBool,
    /// Holes tolerated, as of the last check ([`Arena::tolerated`]).
    tolerated: AtomicUsize,
    /// Set by the store when a write had to evict to make room: the
    /// compactor then evicts from an old segment ([`Arena::pick_oldest`])
    /// until the store has room again (`Store::compact_step`), so that
    /// evictions empty whole segments instead of leaving holes all over
    /// the store.
    pub want_room: AtomicBool,
    /// Bytes writes over the RSS limit (the store's low-memory flag) left
    /// for the compactor to evict from an old segment. It evicts while
    /// this is positive; what an eviction frees beyond it is credit for
    /// the next write, so that over time as many bytes go as come.
    pub debt: AtomicIsize,
    /// Sealed segments listed now (the length of the list, readable
    /// without its lock).
    pub sealed: AtomicUsize,
    /// Set once the store holds an entry too large to pack: from then on
    /// eviction walks also sample those (`Store::evict_unpacked_share`).
    pub has_unpacked: AtomicBool,
    /// Bytes of packed entries as of the last check (sealed segments'
    /// live bytes, and what the writers' open segments hold): the store
    /// less this is what its unpacked entries hold.
    pub packed: AtomicUsize,
    /// Segments sealed so far (the next one's [`Header::seq`]).
    seq: AtomicU64,
}

impl Arena {
    /// An arena sealing segments at `segment_bytes` (clamped to 1 KiB ..=
    /// 16 MiB; segments that small only make sense in tests, where they
    /// seal and compact within a few writes).
    pub fn new(segment_bytes: usize) -> Arena {
        Arena {
            heads: Default::default(),
            fill_limit: segment_bytes.clamp(1 << 10, SEG),
            limit: AtomicUsize::new(segment_bytes.clamp(1 << 10, SEG).min(MIN_LIMIT)),
            segs: Mutex::default(),
            compactor: Mutex::default(),
            owed: AtomicUsize::new(0),
            needs: AtomicBool::new(false),
            walking: AtomicBool::new(false),
            evicting: AtomicBool::new(false),
            check_due: AtomicBool::new(false),
            tolerated: AtomicUsize::new(usize::MAX),
            want_room: AtomicBool::new(false),
            debt: AtomicIsize::new(0),
            sealed: AtomicUsize::new(0),
            has_unpacked: AtomicBool::new(false),
            packed: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
        }
    }

    /// Largest entry this arena places.
    #[inline]
    pub fn max_entry(&self) -> usize {
        PACK_MAX.min(self.fill_limit - SEG_HEADER)
    }

    /// Places `size` bytes in head `h`'s segment (`h` is any number; it is
    /// taken modulo the head count) and lets `write` fill them while the
    /// head is locked, so that once a segment is sealed every byte in it
    /// has been written (the compactor reads sealed segments without
    /// shard locks). `None` when no segment can be had.
    pub fn alloc(&self, h: usize, size: usize, write: impl FnOnce(*mut u8)) -> Option<*mut u8> {
        let mut head = lock(&self.heads[h % HEADS]);
        self.alloc_in(&mut head, size, write)
    }

    /// As [`Arena::alloc`], on a head the caller holds.
    pub fn alloc_in(
        &self,
        head: &mut Head,
        size: usize,
        write: impl FnOnce(*mut u8),
    ) -> Option<*mut u8> {
        debug_assert!(size <= self.max_entry() && size > 0);
        // A segment takes at least one entry, whatever the current limit:
        // an entry up to `max_entry` always fits in a slot.
        if head.base == 0
            || (head.off + size > self.limit.load(Ordering::Relaxed) && head.off > SEG_HEADER)
        {
            if head.base != 0 {
                self.seal(head.base, head.off, head.main);
                head.base = 0;
            }
            head.base = self.new_segment()?;
            head.off = SEG_HEADER;
        }
        let p = (head.base + head.off) as *mut u8;
        write(p);
        // The segment's count learns what was placed in it when it is
        // sealed (one atomic per segment, not per entry): until then its
        // [`OPEN`] bias keeps drops from taking it to zero.
        head.off += size;
        Some(p)
    }

    fn new_segment(&self) -> Option<usize> {
        let b = take_slot()?;
        let h = header(b);
        h.state.store(OPEN, Ordering::Relaxed);
        h.fill.store(SEG_HEADER, Ordering::Relaxed);
        h.arena
            .store(self as *const Arena as usize, Ordering::Relaxed);
        Some(b)
    }

    /// Closes an open segment for appends: it joins the sealed list (the
    /// compactor's candidates), or is given back at once if every entry
    /// in it is already gone. `main`: sealed from the compactor's head.
    /// Asks the store to check the holes after the write
    /// ([`Arena::check_due`]).
    fn seal(&self, base: usize, fill: usize, main: bool) {
        let h = header(base);
        h.fill.store(fill, Ordering::Relaxed);
        h.main.store(main, Ordering::Relaxed);
        h.seq
            .store(self.seq.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        // Listed before the bias goes, so that the drop that empties it
        // finds it in the list.
        {
            let mut s = lock(&self.segs);
            s.sealed.push(base);
            self.sealed.store(s.sealed.len(), Ordering::Relaxed);
        }
        // The count was OPEN less what was dropped; it becomes what was
        // placed less what was dropped.
        let delta = ((fill - SEG_HEADER) as u64).wrapping_sub(OPEN);
        if h.state
            .fetch_add(delta, Ordering::AcqRel)
            .wrapping_add(delta)
            == 0
        {
            self.release(base);
        }
        // The store checks after the write (it knows the room left under
        // its budget, see `Arena::check`).
        self.check_due.store(true, Ordering::Relaxed);
    }

    /// Sets [`Arena::needs`] when the sealed segments' holes exceed what
    /// is tolerated ([`Arena::tolerated`]), and the fill segments are
    /// sealed at. The store runs it after a write that sealed a segment,
    /// and from `Store::compact` (the server's ticker), so that holes
    /// deletes leave in a store nobody writes to are found too. `room`:
    /// entry bytes the store may still add under its budget.
    pub fn check(&self, room: usize) {
        let (fill, dead) = self.totals(&lock(&self.segs));
        // The segment lock is released: a writer takes its head's lock,
        // then the segment lock, never the other way.
        let open: usize = self
            .heads
            .iter()
            .map(|h| lock(h).off.saturating_sub(SEG_HEADER))
            .sum();
        self.packed.store(fill - dead + open, Ordering::Relaxed);
        let limit = (fill / 16).clamp(self.fill_limit.min(MIN_LIMIT), self.fill_limit);
        self.limit.store(limit, Ordering::Relaxed);
        let evicted = self.evicting.swap(false, Ordering::Relaxed);
        let tolerated = Self::tolerated(limit, fill, evicted, room);
        self.tolerated.store(tolerated, Ordering::Relaxed);
        self.needs.store(dead > tolerated, Ordering::Relaxed);
    }

    /// Bytes of holes tolerated in `fill` sealed bytes: a quarter, or a
    /// sixteenth while the store is evicting to make room (`evicted`), and
    /// never more than the `room` left under the store's budget; but at
    /// least one segment's worth (`limit`: compacting a segment that is
    /// nearly all live copies much to give back little).
    ///
    /// Why two settings: compaction's cost is the live entries it moves
    /// for each byte it gives back, and that grows quickly as the holes
    /// get fewer (the segment with the most holes is about as full as the
    /// rest when writes land at random: a fourth of holes overall means
    /// about one entry moved per entry freed, an eighth about five). With
    /// room to spare, holes cost nothing but memory the limit does not
    /// need, so they are let grow; at the limit every hole is an item
    /// evicted, so they are kept few.
    ///
    /// Why the room: the budget is what puts RSS at the limit, so holes
    /// beyond it take RSS over the limit before the first eviction. In a
    /// burst that fills a 128 MiB limit in a fraction of a second, holes
    /// a quarter of the fill at the first eviction took RSS 10% over,
    /// while compaction worked them down to a sixteenth.
    fn tolerated(limit: usize, fill: usize, evicted: bool, room: usize) -> usize {
        let div = if evicted { 16 } else { 4 };
        limit.max((fill / div).min(room))
    }

    /// Bytes in sealed segments, and the part of them no live entry uses.
    fn totals(&self, s: &Segs) -> (usize, usize) {
        let mut fill = 0;
        let mut dead = 0;
        for &b in &s.sealed {
            let Some((f, d)) = holes(b) else { continue };
            fill += f;
            dead += d;
        }
        (fill, dead)
    }

    /// Picks the sealed segment with the largest share of holes and pins
    /// it, or returns `None` (clearing [`Arena::needs`]) when the holes
    /// are back under the threshold. Only the compactor calls this.
    pub fn pick(&self) -> Option<Walk> {
        let s = lock(&self.segs);
        let (_, dead) = self.totals(&s);
        if dead <= self.tolerated.load(Ordering::Relaxed) / 2 {
            self.needs.store(false, Ordering::Relaxed);
            return None;
        }
        // The largest share of holes, not the most bytes of them: what a
        // walk gives back per byte it copies. (By bytes, the large young
        // segments won over small old ones with three times the share:
        // in the soak burst the walks copied nine bytes for each one they
        // gave back.)
        let mut best: Option<(usize, usize, usize)> = None;
        for &b in &s.sealed {
            let Some((f, d)) = holes(b) else { continue };
            if best.is_none_or(|(_, bf, bd)| d * bf > bd * f) {
                best = Some((b, f, d));
            }
        }
        let (base, _, _) = best?;
        Self::pin(base, false)
    }

    /// Picks the segment to evict from and pins it: the oldest of the
    /// segments writers sealed while they hold more than a tenth of the
    /// sealed bytes, else the oldest of those the compactor sealed (the
    /// entries that survived a walk). `None` when nothing is sealed.
    ///
    /// Why two queues (S3-FIFO's, with segments for queues): most new
    /// entries in a cache are never read again, and in a single FIFO each
    /// would hold its bytes for a whole turn of the cache before its
    /// segment came round. Here new entries get what the survivors leave
    /// (a tenth of the cache at least) to be read in; read, an entry is
    /// moved among the survivors, which stay while they are read once in
    /// each of their turns (FIFO with a second chance, as CLOCK). Under
    /// Zipf(0.99) with a third of the keys in memory this kept 0.877 of
    /// reads, against 0.842 for one FIFO with a second chance and 0.853
    /// for the sampled eviction (BENCHMARKS.md).
    pub fn pick_oldest(&self) -> Option<Walk> {
        let s = lock(&self.segs);
        let (mut new, mut all) = (0, 0);
        let mut oldest = [None::<(u64, usize)>; 2];
        for &b in &s.sealed {
            let Some((f, _)) = holes(b) else { continue };
            let h = header(b);
            let main = h.main.load(Ordering::Relaxed);
            all += f;
            if !main {
                new += f;
            }
            let seq = h.seq.load(Ordering::Relaxed);
            let o = &mut oldest[main as usize];
            if o.is_none_or(|(q, _)| seq < q) {
                *o = Some((seq, b));
            }
        }
        let (_, base) = if new * 10 > all {
            oldest[0].or(oldest[1])
        } else {
            oldest[1].or(oldest[0])
        }?;
        Self::pin(base, true)
    }

    /// Pins a listed segment for a walk (the segment lock held).
    fn pin(base: usize, evict: bool) -> Option<Walk> {
        let h = header(base);
        // A count already at zero means its last drop is about to give it
        // back: leave it alone.
        h.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |st| {
                (st != 0).then_some(st + PIN)
            })
            .ok()?;
        Some(Walk {
            base,
            off: SEG_HEADER,
            fill: h.fill.load(Ordering::Relaxed),
            evict,
        })
    }

    /// Ends a walk: the segment goes back once its remaining entries are
    /// dropped (now, if they already are).
    pub fn unpin(&self, base: usize) {
        if header(base).state.fetch_sub(PIN, Ordering::AcqRel) == PIN {
            self.release(base);
        }
    }

    /// Gives back a segment whose count reached zero.
    fn release(&self, base: usize) {
        let mut s = lock(&self.segs);
        if let Some(i) = s.sealed.iter().position(|&b| b == base) {
            s.sealed.swap_remove(i);
            self.sealed.store(s.sealed.len(), Ordering::Relaxed);
        }
        drop(s);
        // Straight back to the kernel: a segment kept resident for the
        // next head cost a thirty-second of a small store's memory (3% of
        // the items under a 37 MB limit), to save refaulting its pages.
        give_slot(base);
    }

    /// Sealed segments and their holes, for tests and statistics:
    /// (segments, bytes in them, bytes of holes).
    pub fn stats(&self) -> (usize, usize, usize) {
        let s = lock(&self.segs);
        let (fill, dead) = self.totals(&s);
        (s.sealed.len(), fill, dead)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // The store drops its tables first, so every entry is gone: open
        // segments hold only their bias, sealed ones were given back. A
        // segment with anything else left is leaked, never reused.
        let mut open: Vec<(usize, usize)> = self
            .heads
            .iter_mut()
            .map(|h| {
                let h = h.get_mut().unwrap_or_else(|e| e.into_inner());
                (h.base, h.off)
            })
            .collect();
        let c = self.compactor.get_mut().unwrap_or_else(|e| e.into_inner());
        open.push((c.head.base, c.head.off));
        let mut leaked = 0;
        let s = self.segs.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = c.walk.take() {
            let h = header(w.base);
            if h.state.load(Ordering::Relaxed) == PIN {
                s.sealed.retain(|&b| b != w.base);
                give_slot(w.base);
            } else {
                leaked += 1;
            }
        }
        for (b, off) in open.into_iter().filter(|&(b, _)| b != 0) {
            // Everything placed was dropped: OPEN less all of it.
            if header(b).state.load(Ordering::Relaxed) == OPEN - (off - SEG_HEADER) as u64 {
                give_slot(b);
            } else {
                leaked += 1;
            }
        }
        debug_assert!(
            s.sealed.is_empty(),
            "sealed segments outlived their entries"
        );
        debug_assert!(leaked == 0, "{leaked} segments not empty at the end");
    }
}

/// Takes a dropped packed entry's bytes off its segment's count, giving
/// the segment back when that was the last of them.
///
/// # Safety
/// `p` must be a packed entry of `size` bytes (from [`Arena::alloc`]),
/// dropped exactly once, and its arena must still exist.
#[inline]
pub(crate) unsafe fn free(p: *const u8, size: usize) {
    let base = base_of(p as usize);
    let h = header(base);
    if h.state.fetch_sub(size as u64, Ordering::AcqRel) == size as u64 {
        // SAFETY: the arena outlives every entry it placed (the caller's
        // contract), and `new_segment` stored its address here.
        let arena = unsafe { &*(h.arena.load(Ordering::Relaxed) as *const Arena) };
        arena.release(base);
    }
}
