//! Log lines in Pogocache's style: `*` information, `#` warnings and
//! errors, `.` detail, all on stdout; or, with `--logformat json` (an
//! extension for containers), one JSON object per line with a UTC
//! timestamp, a level (`*` info, `#` warn, `.` debug) and the message.
//!
//! Owns: both line formats, the `-vvv` per-command echo and its sampling
//! (`--logsample N`: one command in N). Does not own: deciding the
//! verbosity (callers check `Settings::verbosity`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use pogocache_protocol::ArgView;

static JSON: AtomicBool = AtomicBool::new(false);
static SAMPLE: AtomicU64 = AtomicU64::new(1);
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Switches every log line to JSON (set once at start).
pub fn set_json(on: bool) {
    JSON.store(on, Relaxed);
}

/// Logs one command in `n` at `-vvv` (set once at start; 1 logs all, as
/// Pogocache does).
pub fn set_command_sample(n: u64) {
    SAMPLE.store(n.max(1), Relaxed);
}

/// Appends `s` as a JSON string body (without quotes).
fn escape(out: &mut Vec<u8>, s: &[u8]) {
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(c),
            _ => {
                let _ = write!(out, "\\u{c:04x}");
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in nanoseconds.
fn timestamp(out: &mut Vec<u8>, unix_ns: i64) {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let ms = unix_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

fn json_head(out: &mut Vec<u8>, level: &str) {
    out.extend_from_slice(b"{\"time\":\"");
    timestamp(out, pogocache_store::clock::wall_ns());
    let _ = write!(out, "\",\"level\":\"{level}\"");
}

/// Formats one log line (text or JSON) into `out`, with the newline.
pub fn format_line(out: &mut Vec<u8>, msg: &str) {
    if !JSON.load(Relaxed) {
        out.extend_from_slice(msg.as_bytes());
        out.push(b'\n');
        return;
    }
    let (level, text) = match msg.as_bytes().first() {
        Some(b'*') => ("info", &msg[1..]),
        Some(b'#') => ("warn", &msg[1..]),
        Some(b'.') => ("debug", &msg[1..]),
        _ => ("info", msg),
    };
    json_head(out, level);
    out.extend_from_slice(b",\"msg\":\"");
    escape(out, text.trim().as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// Prints one line to stdout (line-buffered, whole lines only).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut buf = Vec::with_capacity(128);
    format_line(&mut buf, &args.to_string());
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&buf);
    let _ = out.flush();
}

/// Prints one line to stderr (fatal errors), in the chosen format.
pub fn eline(args: std::fmt::Arguments<'_>) {
    let mut buf = Vec::with_capacity(128);
    format_line(&mut buf, &args.to_string());
    let _ = std::io::stderr().lock().write_all(&buf);
}

/// The `-vvv` command echo: `. [set] [a] [b c] `, with bytes outside
/// printable ASCII as `\xhh`.
pub fn command(args: ArgView<'_>) {
    let n = SAMPLE.load(Relaxed);
    if n > 1 && !SEEN.fetch_add(1, Relaxed).is_multiple_of(n) {
        return;
    }
    if JSON.load(Relaxed) {
        let mut s = Vec::with_capacity(96);
        json_head(&mut s, "debug");
        s.extend_from_slice(b",\"cmd\":[");
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                s.push(b',');
            }
            s.push(b'"');
            escape(&mut s, a);
            s.push(b'"');
        }
        s.extend_from_slice(b"]}\n");
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&s);
        let _ = out.flush();
        return;
    }
    let mut s = Vec::with_capacity(64);
    s.extend_from_slice(b". ");
    for a in args.iter() {
        s.push(b'[');
        for &c in a {
            if (0x20..0x7f).contains(&c) {
                s.push(c);
            } else {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
        s.extend_from_slice(b"] ");
    }
    s.push(b'\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&s);
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_escapes() {
        let mut t = Vec::new();
        timestamp(&mut t, 1_795_567_191_988_264_000);
        assert_eq!(t, b"2026-11-25T00:39:51.988Z");
        let mut t = Vec::new();
        timestamp(&mut t, 951_782_400_000_000_000); // leap day 2000
        assert_eq!(t, b"2000-02-29T00:00:00.000Z");
        let mut e = Vec::new();
        escape(&mut e, b"a\"b\\c\n\xff");
        assert_eq!(e, b"a\\\"b\\\\c\\u000a\\u00ff");
    }
}
