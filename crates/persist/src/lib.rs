//! # pogocache-persist
//!
//! Snapshot files in Pogocache's own format, so
//! a user migrating either way keeps the cache: a concatenation of blocks,
//! each a 16-byte header (`POGO`, CRC-32 of the payload, uncompressed and
//! compressed lengths, little-endian) and an LZ4 *block* payload holding
//! a Unix timestamp and `kind key value ttl flags cas` records as LEB128
//! varints.
//!
//! Owns: encoding and decoding that format, the crash-safe save procedure
//! (work file, fsync, atomic rename, directory fsync), verified loading
//! with offsets in every error, recovery modes, and stale work-file
//! cleanup. Does not own: when to save (the server: shutdown, `SAVE`, the
//! periodic timer) or the store itself.
//!
//! Saves walk the store one shard at a time, holding only that shard's
//! lock while its records are copied out, so a snapshot never pauses the
//! whole cache.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pogocache_store::{Expiry, SetOptions, Store, clock};

const MAGIC: &[u8; 4] = b"POGO";
const HEADER: usize = 16;
/// Records are flushed into a block once a shard's payload reaches this
/// size, so one huge shard never needs one huge buffer.
const BLOCK_TARGET: usize = 4 << 20;
/// Largest uncompressed block we accept on load (a 512 MiB value plus
/// slack); anything larger is treated as corruption rather than
/// allocated.
const MAX_BLOCK: usize = 1 << 30;

/// What a save or load did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records written, or stored on load.
    pub entries: u64,
    /// Records skipped on load because they expired while saved.
    pub expired: u64,
    /// File bytes written or read.
    pub bytes: u64,
    /// Bad blocks skipped (load with [`Recovery::Skip`]).
    pub skipped_blocks: u64,
}

/// What to do when a snapshot is damaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recovery {
    /// Stop at the first problem and report it (the safe default).
    #[default]
    Strict,
    /// Skip damaged blocks (resynchronising on the next `POGO` header),
    /// keep everything readable, and report what was skipped.
    Skip,
}

/// A damaged or unreadable snapshot, with the file and byte offset.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub offset: u64,
    pub kind: LoadErrorKind,
}

#[derive(Debug)]
pub enum LoadErrorKind {
    Io(io::Error),
    /// Fewer than 16 header bytes at the end of the file.
    BadHeadSize,
    MissingMagic,
    ShortRead,
    BadCrc {
        expected: u32,
        actual: u32,
    },
    BadCompressedBlock,
    BadBlock(&'static str),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: at offset {}: ", self.path.display(), self.offset)?;
        match &self.kind {
            LoadErrorKind::Io(e) => write!(f, "{e}"),
            LoadErrorKind::BadHeadSize => f.write_str("bad head size (truncated block header)"),
            LoadErrorKind::MissingMagic => f.write_str("missing 'POGO' block header"),
            LoadErrorKind::ShortRead => f.write_str("short read (file truncated inside a block)"),
            LoadErrorKind::BadCrc { expected, actual } => {
                write!(
                    f,
                    "bad crc (header says {expected:08x}, payload has {actual:08x})"
                )
            }
            LoadErrorKind::BadCompressedBlock => f.write_str("bad compressed block"),
            LoadErrorKind::BadBlock(why) => write!(f, "bad block ({why})"),
        }
    }
}

impl std::error::Error for LoadError {}

// ---------------------------------------------------------------- encoding

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64).checked_shl(7 * i)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Appends one block (header + LZ4 payload) for `payload` to `out`.
pub fn encode_block(payload: &[u8], out: &mut Vec<u8>) {
    let compressed = lz4_flex::block::compress(payload);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
    out.extend_from_slice(&compressed);
}

/// Appends one record to a block payload.
pub fn encode_record(
    out: &mut Vec<u8>,
    key: &[u8],
    value: &[u8],
    ttl_ns: u64,
    flags: u32,
    cas: u64,
) {
    out.push(0);
    put_varint(out, key.len() as u64);
    out.extend_from_slice(key);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
    put_varint(out, ttl_ns);
    put_varint(out, flags as u64);
    put_varint(out, cas);
}

/// Starts a block payload with its Unix timestamp.
pub fn begin_payload(out: &mut Vec<u8>, unix_ns: i64) {
    out.clear();
    put_varint(out, unix_ns.max(0) as u64);
}

// ---------------------------------------------------------------- save

/// The work-file name for `path`: `<path>.<8 hex>.pogocache.work`.
fn work_path(path: &Path) -> PathBuf {
    let mut b = [0u8; 4];
    // SAFETY: b is a valid 4-byte buffer.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, 0) };
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{:08x}.pogocache.work", u32::from_ne_bytes(b)));
    PathBuf::from(name)
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes a snapshot of `store` to `path`, crash-safely: records go to a
/// fresh work file (mode 0600) in the same directory, which is fsynced and
/// then renamed over `path`, and the directory is fsynced. A crash at any
/// moment leaves either the old snapshot or the new one, never a mix. On
/// error the work file is removed and `path` is untouched.
pub fn save(store: &Store, path: &Path) -> io::Result<Stats> {
    let work = work_path(path);
    let result = save_to(store, &work).and_then(|st| {
        fs::rename(&work, path)?;
        File::open(dir_of(path))?.sync_all()?;
        Ok(st)
    });
    if result.is_err() {
        let _ = fs::remove_file(&work);
    }
    result
}

fn save_to(store: &Store, work: &Path) -> io::Result<Stats> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(work)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let st = write_to(store, &mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(st)
}

/// Writes a snapshot of `store` to any writer, in the file format, one
/// shard at a time (each shard is locked only while its records are
/// copied out). Why public: a primary streams its full-sync snapshot to a
/// replica with this, and embedders can keep snapshots anywhere.
pub fn write_to(store: &Store, w: &mut impl Write) -> io::Result<Stats> {
    let mut st = Stats::default();
    let mut payload = Vec::new();
    let mut block = Vec::new();
    let mut pending = 0usize;
    for shard in 0..store.shard_count() {
        let now = clock::monotonic_ns();
        begin_payload(&mut payload, clock::wall_ns());
        let base = payload.len();
        store.for_each_in_shard(shard, now, |e| {
            let ttl = e.expires().map(|x| (x - now).max(1) as u64).unwrap_or(0);
            encode_record(&mut payload, e.key(), e.value(), ttl, e.flags(), e.cas());
            pending += 1;
        });
        if payload.len() == base {
            continue;
        }
        // Very large shards are split after the fact: blocks may hold any
        // grouping of records, each with its own timestamp.
        for chunk in split_payload(&payload, base) {
            block.clear();
            encode_block(&chunk, &mut block);
            w.write_all(&block)?;
            st.bytes += block.len() as u64;
        }
        st.entries += pending as u64;
        pending = 0;
    }
    Ok(st)
}

/// Splits a payload (timestamp prefix of `base` bytes, then records) into
/// payloads of about [`BLOCK_TARGET`] bytes, each with the timestamp.
fn split_payload(payload: &[u8], base: usize) -> Vec<std::borrow::Cow<'_, [u8]>> {
    if payload.len() <= BLOCK_TARGET {
        return vec![std::borrow::Cow::Borrowed(payload)];
    }
    let stamp = &payload[..base];
    let mut out = Vec::new();
    let mut pos = base;
    let mut start = base;
    while pos < payload.len() {
        let rec = pos;
        pos += 1;
        for field in 0..5 {
            let v = get_varint(payload, &mut pos).unwrap_or(0);
            if field < 2 {
                pos += v as usize;
            }
        }
        if pos - start > BLOCK_TARGET && rec > start {
            out.push(std::borrow::Cow::Owned(
                [stamp, &payload[start..rec]].concat(),
            ));
            start = rec;
        }
    }
    out.push(std::borrow::Cow::Owned([stamp, &payload[start..]].concat()));
    out
}

/// Deletes this path's stale work files (`<name>.*.pogocache.work`) left
/// by a crash. Pogocache deletes every `*.pogocache.work` in the
/// directory, other instances' included (gap H3); we only touch ours.
/// Returns the deleted paths.
pub fn remove_stale_work_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir_of(path))? {
        let entry = entry?;
        let fname = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = fname.strip_prefix(&prefix)
            && let Some(hex) = rest.strip_suffix(".pogocache.work")
            && hex.len() == 8
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

// ---------------------------------------------------------------- load

/// Loads the snapshot at `path` into `store`, merging: each record
/// replaces a key of the same name, other keys stay. Records that expired
/// while saved are skipped. `progress` is called about once a second
/// with the entries stored so far (for the operator's log).
///
/// With [`Recovery::Strict`] the first problem stops the load (records
/// already stored stay, as in Pogocache). With [`Recovery::Skip`] damaged
/// blocks are skipped and listed in the returned errors.
pub fn load(
    store: &Store,
    path: &Path,
    mode: Recovery,
    progress: impl FnMut(u64),
) -> Result<(Stats, Vec<LoadError>), LoadError> {
    let file = File::open(path).map_err(|e| LoadError {
        path: path.to_path_buf(),
        offset: 0,
        kind: LoadErrorKind::Io(e),
    })?;
    // Streamed block by block: memory stays at one block, whatever the
    // file size.
    let r = io::BufReader::with_capacity(1 << 20, file);
    load_from(store, r, path, mode, progress)
}

/// [`load`] from any reader (`origin` names it in errors). Embedders that
/// keep snapshots somewhere other than a file use this, and so does the
/// fuzz target.
pub fn load_from(
    store: &Store,
    r: impl Read,
    origin: &Path,
    mode: Recovery,
    progress: impl FnMut(u64),
) -> Result<(Stats, Vec<LoadError>), LoadError> {
    let sink = Sink {
        store,
        wall_offset: 0,
        replica: false,
    };
    load_into(&sink, r, origin, mode, progress)
}

/// Loads a primary's full-sync snapshot into a replica's store (strict):
/// expiry times are read on the primary's clock (`wall_offset` = primary
/// wall ns − local wall ns), and entries go in with
/// [`Store::restore`], which never evicts or refuses, so the replica
/// mirrors the primary whatever its own memory state.
pub fn load_from_primary(
    store: &Store,
    r: impl Read,
    wall_offset: i64,
) -> Result<Stats, LoadError> {
    let sink = Sink {
        store,
        wall_offset,
        replica: true,
    };
    load_into(&sink, r, Path::new("<primary>"), Recovery::Strict, |_| {}).map(|(st, _)| st)
}

/// Where loaded records go, and how.
struct Sink<'a> {
    store: &'a Store,
    wall_offset: i64,
    replica: bool,
}

fn load_into(
    sink: &Sink<'_>,
    mut r: impl Read,
    origin: &Path,
    mode: Recovery,
    mut progress: impl FnMut(u64),
) -> Result<(Stats, Vec<LoadError>), LoadError> {
    let path = origin;
    let err = |offset: u64, kind| LoadError {
        path: path.to_path_buf(),
        offset,
        kind,
    };
    let mut st = Stats::default();
    let mut skipped = Vec::new();
    let mut offset = 0u64;
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    let mut out = Vec::new();
    let mut last_tick = Instant::now();
    loop {
        let n = read_full(&mut r, &mut header).map_err(|e| err(offset, LoadErrorKind::Io(e)))?;
        if n == 0 {
            break;
        }
        let at = offset;
        let result = if n < HEADER {
            Err(LoadErrorKind::BadHeadSize)
        } else if &header[..4] != MAGIC {
            Err(LoadErrorKind::MissingMagic)
        } else {
            let le = |i: usize| {
                u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]])
            };
            let clen = le(12) as usize;
            payload.clear();
            let got = (&mut r)
                .take(clen as u64)
                .read_to_end(&mut payload)
                .map_err(|e| err(at, LoadErrorKind::Io(e)))?;
            offset += (HEADER + got) as u64;
            if got < clen {
                Err(LoadErrorKind::ShortRead)
            } else {
                decode_block(&header, &payload, &mut out)
            }
        };
        match result {
            Ok(()) => {
                st.bytes = offset;
                load_payload(sink, &out, &mut st)
                    .map_err(|why| err(at, LoadErrorKind::BadBlock(why)))?;
            }
            Err(kind) => {
                let truncated =
                    matches!(kind, LoadErrorKind::BadHeadSize | LoadErrorKind::ShortRead);
                if mode == Recovery::Strict {
                    return Err(err(at, kind));
                }
                st.skipped_blocks += 1;
                skipped.push(err(at, kind));
                if truncated {
                    break;
                }
                if n == HEADER && &header[..4] != MAGIC {
                    // Resynchronise on the next `POGO`.
                    offset = at + 1;
                    let carry = header[1..].to_vec();
                    match find_magic(&mut r, &carry)
                        .map_err(|e| err(offset, LoadErrorKind::Io(e)))?
                    {
                        None => break,
                        Some((skip, rest)) => {
                            // The rest of a damaged file is read whole:
                            // this path only runs in skip mode, after
                            // corruption.
                            offset += skip;
                            let mut tail = rest;
                            r.read_to_end(&mut tail)
                                .map_err(|e| err(offset, LoadErrorKind::Io(e)))?;
                            return load_rest(
                                sink, path, mode, tail, offset, st, skipped, progress,
                            );
                        }
                    }
                }
            }
        }
        if last_tick.elapsed().as_secs() >= 1 {
            progress(st.entries);
            last_tick = Instant::now();
        }
    }
    Ok((st, skipped))
}

/// Continues a [`Recovery::Skip`] load from an in-memory remainder (used
/// after resynchronising on a damaged header).
#[allow(clippy::too_many_arguments)]
fn load_rest(
    sink: &Sink<'_>,
    path: &Path,
    mode: Recovery,
    data: Vec<u8>,
    base: u64,
    mut st: Stats,
    mut skipped: Vec<LoadError>,
    mut progress: impl FnMut(u64),
) -> Result<(Stats, Vec<LoadError>), LoadError> {
    let err = |offset: u64, kind| LoadError {
        path: path.to_path_buf(),
        offset,
        kind,
    };
    let mut pos = 0usize;
    let mut out = Vec::new();
    let mut last_tick = Instant::now();
    while pos < data.len() {
        let at = base + pos as u64;
        let b = &data[pos..];
        let result = if b.len() < HEADER {
            Err(LoadErrorKind::BadHeadSize)
        } else if &b[..4] != MAGIC {
            Err(LoadErrorKind::MissingMagic)
        } else {
            let clen = u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize;
            match b.get(HEADER..HEADER + clen) {
                None => Err(LoadErrorKind::ShortRead),
                Some(p) => decode_block(&b[..HEADER], p, &mut out).map(|()| HEADER + clen),
            }
        };
        match result {
            Ok(len) => {
                load_payload(sink, &out, &mut st)
                    .map_err(|why| err(at, LoadErrorKind::BadBlock(why)))?;
                pos += len;
            }
            Err(kind) => {
                let _ = mode;
                let truncated =
                    matches!(kind, LoadErrorKind::BadHeadSize | LoadErrorKind::ShortRead);
                st.skipped_blocks += 1;
                skipped.push(err(at, kind));
                if truncated {
                    break;
                }
                pos = b[1..]
                    .windows(4)
                    .position(|w| w == MAGIC)
                    .map(|p| pos + 1 + p)
                    .unwrap_or(data.len());
            }
        }
        if last_tick.elapsed().as_secs() >= 1 {
            progress(st.entries);
            last_tick = Instant::now();
        }
    }
    st.bytes = base + data.len() as u64;
    Ok((st, skipped))
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Scans `carry` then the stream for `POGO`. Returns how many bytes were
/// skipped before it and the bytes from the magic on that were already
/// consumed from the stream (to be re-read), or `None` at EOF.
fn find_magic(r: &mut impl Read, carry: &[u8]) -> io::Result<Option<(u64, Vec<u8>)>> {
    let mut window: Vec<u8> = carry.to_vec();
    let mut skipped = 0u64;
    let mut byte = [0u8; 1];
    loop {
        if let Some(p) = window.windows(4).position(|w| w == MAGIC) {
            skipped += p as u64;
            return Ok(Some((skipped, window[p..].to_vec())));
        }
        let keep = window.len().saturating_sub(3);
        skipped += keep as u64;
        window.drain(..keep);
        if r.read(&mut byte)? == 0 {
            return Ok(None);
        }
        window.push(byte[0]);
    }
}

/// Verifies and decompresses one block (its 16-byte header and
/// compressed payload) into `out`.
fn decode_block(header: &[u8], payload: &[u8], out: &mut Vec<u8>) -> Result<(), LoadErrorKind> {
    let le =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (crc, ulen) = (le(4), le(8) as usize);
    let actual = crc32fast::hash(payload);
    if actual != crc {
        return Err(LoadErrorKind::BadCrc {
            expected: crc,
            actual,
        });
    }
    // LZ4 expands at most ~255:1, so a declared size beyond that is a lie:
    // refuse it before allocating, so a file can never make us allocate
    // much more than its own size.
    if ulen > MAX_BLOCK || ulen > payload.len().saturating_mul(255) + 64 {
        return Err(LoadErrorKind::BadCompressedBlock);
    }
    out.clear();
    out.resize(ulen, 0);
    match lz4_flex::block::decompress_into(payload, out) {
        Ok(n) if n == ulen => Ok(()),
        _ => Err(LoadErrorKind::BadCompressedBlock),
    }
}

fn load_payload(sink: &Sink<'_>, p: &[u8], st: &mut Stats) -> Result<(), &'static str> {
    let store = sink.store;
    let mut pos = 0;
    let unix = get_varint(p, &mut pos).ok_or("bad unix time")?;
    if unix >= 1 << 63 {
        return Err("bad unix time");
    }
    let wall = clock::wall_ns().saturating_add(sink.wall_offset);
    let now = clock::monotonic_ns();
    while pos < p.len() {
        if p[pos] != 0 {
            return Err("unknown kind");
        }
        pos += 1;
        let klen = get_varint(p, &mut pos).ok_or("bad key length")? as usize;
        let key = p
            .get(pos..pos.checked_add(klen).ok_or("bad key length")?)
            .ok_or("bad key")?;
        pos += klen;
        let vlen = get_varint(p, &mut pos).ok_or("bad value length")? as usize;
        let value = p
            .get(pos..pos.checked_add(vlen).ok_or("bad value length")?)
            .ok_or("bad value")?;
        pos += vlen;
        let ttl = get_varint(p, &mut pos).ok_or("bad ttl")?;
        let flags = get_varint(p, &mut pos).ok_or("bad flags")?;
        let _cas = get_varint(p, &mut pos).ok_or("bad cas")?;
        if ttl >= 1 << 63 || flags > u32::MAX as u64 {
            return Err("bad record");
        }
        let expiry = if ttl == 0 {
            Expiry::Never
        } else {
            let unix_expiry = (unix as i64).saturating_add(ttl as i64);
            let left = unix_expiry - wall;
            // Expired while saved. An expiry landing exactly now is
            // expired too (Pogocache loaded it as non-expiring, gap H9).
            if left <= 0 {
                st.expired += 1;
                continue;
            }
            Expiry::At(now.saturating_add(left))
        };
        if sink.replica {
            let at = match expiry {
                Expiry::At(t) => Some(t),
                _ => None,
            };
            if store
                .restore(key, value, flags as u32, at, false, now)
                .is_ok()
            {
                st.entries += 1;
            }
            continue;
        }
        let opts = SetOptions {
            expiry,
            flags: flags as u32,
            ..Default::default()
        };
        if store.set(key, value, &opts, now).is_ok() {
            st.entries += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
