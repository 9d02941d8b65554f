//! # pogocache-protocol
//!
//! Wire codecs for pogocache-rs, bytes in and bytes out. Each protocol
//! module parses requests from a borrowed buffer into argument ranges and
//! composes replies into a caller-owned output `Vec<u8>`.
//!
//! Owns: framing, tokenising, limits, number syntax ([`num`]), protocol
//! error kinds, reply and request byte encodings (`resp`,
//! `memcache::compose`, `http::response`, the `postgres` messages), and
//! the one-per-connection protocol sniffer.
//! Does not own: sockets, buffering policy, the command table or the
//! store. That is why every parser here can be unit-tested, benchmarked
//! and fuzzed alone.
//!
//! ## The parser contract
//!
//! Every parser (`resp::parse`, `memcache::parse`, `http::parse`,
//! `postgres::frame`) takes the input and the one [`Limits`] struct and
//! returns a [`Parsed`]: `Complete(n, request)` (a request occupied
//! exactly `n` bytes; RESP's request is `()` because its arguments were
//! written to an [`Args`]), `Incomplete { need }` (read more; `need` is a
//! lower bound on the total buffered bytes before another attempt can
//! succeed, so a connection receiving a 100 MiB value does not re-parse
//! the prefix on every read), or `Invalid(e)` (a framing error; the
//! connection replies and closes). Parsers never allocate per request:
//! requests borrow keys and values from the input, and RESP arguments
//! are `(start, end)` ranges into the input buffer, or into the reused
//! `Args` scratch buffer when the wire form needs unescaping (inline
//! RESP). Number fields are parsed by [`num`], the same way everywhere.
//!
//! Each protocol module also composes: reply encoders for the server, and
//! request encoders (`resp::request`, `memcache::compose::request` ...)
//! for clients, the load generator and tests.

pub mod http;
pub mod memcache;
pub mod num;
pub mod postgres;
pub mod resp;
pub mod sniff;

/// Largest value (or argument) any protocol accepts: 512 MiB, as in
/// Pogocache. The store enforces the same bound on what it holds
/// (`pogocache_store::MAX_VALUE_LEN`; a test keeps the two equal).
pub const MAX_VALUE: usize = 536_870_912;

/// Size limits of every parser, in one place. Fields rather than
/// constants so tests and fuzzers can shrink them; [`Limits::DEFAULT`]
/// is what the server uses.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most arguments one RESP command may carry (Pogocache: 100000).
    pub max_args: usize,
    /// Largest single argument or value, in every protocol: a RESP bulk
    /// string, a memcache data block, an HTTP body (Pogocache: 512 MiB).
    pub max_arg_len: usize,
    /// Longest inline/telnet line before it is refused. Pogocache has no
    /// limit (gap B3); we refuse like Redis does at 64 KiB.
    pub max_inline_len: usize,
    /// Longest memcache command line (memcached refuses long lines too;
    /// Pogocache buffers without limit, gap B3).
    pub max_line: usize,
    /// Largest HTTP request head (request line and headers).
    pub max_head: usize,
    /// Largest Postgres startup-type packet (Pogocache's limit).
    pub max_startup: usize,
    /// Largest regular Postgres message: a value at the limit plus
    /// framing.
    pub max_message: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_args: 100_000,
        max_arg_len: MAX_VALUE,
        max_inline_len: 64 * 1024,
        max_line: 1 << 20,
        max_head: 64 * 1024,
        max_startup: 65_536,
        max_message: MAX_VALUE + 65_536,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Outcome of one parse attempt, the same for every protocol (see the
/// crate docs): `T` is the parsed request, `E` the framing error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<E, T = ()> {
    Complete(usize, T),
    Incomplete { need: usize },
    Invalid(E),
}

/// The arguments of one parsed request, as byte ranges.
///
/// Reused across requests: `clear` keeps the allocations, so the steady
/// state allocates nothing. Ranges index either the caller's input buffer
/// or this struct's own `scratch` (see [`Args::in_scratch`]).
#[derive(Default, Debug)]
pub struct Args {
    ranges: Vec<(u32, u32)>,
    scratch: Vec<u8>,
    in_scratch: bool,
}

impl Args {
    pub fn new() -> Args {
        Args::default()
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
        self.scratch.clear();
        self.in_scratch = false;
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// True when the ranges point into `scratch` rather than the input.
    pub fn in_scratch(&self) -> bool {
        self.in_scratch
    }

    pub fn push(&mut self, start: usize, end: usize) {
        self.ranges.push((start as u32, end as u32));
    }

    /// Appends an owned argument (copied into scratch). Used by the
    /// translating protocols (memcache, HTTP) to synthesise arguments.
    pub fn push_owned(&mut self, bytes: &[u8]) {
        self.in_scratch = true;
        let s = self.scratch.len();
        self.scratch.extend_from_slice(bytes);
        self.ranges.push((s as u32, self.scratch.len() as u32));
    }

    /// Resolves the ranges against `input` (or scratch) into a view.
    pub fn view<'a>(&'a self, input: &'a [u8]) -> ArgView<'a> {
        ArgView {
            base: if self.in_scratch {
                &self.scratch
            } else {
                input
            },
            ranges: &self.ranges,
        }
    }
}

/// A borrowed, indexable list of arguments. `Copy`, so handlers pass it
/// around freely.
#[derive(Clone, Copy)]
pub struct ArgView<'a> {
    base: &'a [u8],
    ranges: &'a [(u32, u32)],
}

impl<'a> ArgView<'a> {
    /// Builds a view from explicit parts (tests, embedding).
    pub fn from_parts(base: &'a [u8], ranges: &'a [(u32, u32)]) -> ArgView<'a> {
        ArgView { base, ranges }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The `i`th argument. Panics if out of range, like slice indexing:
    /// handlers check arity first.
    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        let (s, e) = self.ranges[i];
        &self.base[s as usize..e as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let base = self.base;
        self.ranges
            .iter()
            .map(move |&(s, e)| &base[s as usize..e as usize])
    }
}

impl std::fmt::Debug for ArgView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|a| String::from_utf8_lossy(a).into_owned()))
            .finish()
    }
}
