//! Log lines in Pogocache's style: `*` information, `#` warnings and
//! errors, `.` detail, all on stdout.
//!
//! Owns: the line format and the `-vvv` per-command echo. Does not own:
//! deciding the verbosity (callers check `Settings::verbosity`).

use std::io::Write;

use pogocache_protocol::ArgView;

/// Prints one line to stdout (line-buffered, whole lines only).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// The `-vvv` command echo: `. [set] [a] [b c] `, with bytes outside
/// printable ASCII as `\xhh`.
pub fn command(args: ArgView<'_>) {
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
