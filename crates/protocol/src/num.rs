//! Decimal number parsing shared by every protocol and command.
//!
//! Owns: the one definition of "a number argument" — C `strtoll` /
//! `strtoull` over the whole token, as Pogocache's `parse_i64` and
//! `parse_u64` (`util.c`) apply them, including their length limit: a
//! token longer than [`MAX_LEN`] bytes is not a number, whatever it
//! spells (`0000000000000000000042` is refused although it is 42).
//! Does not own: framing lengths (`$`/`*` headers have their own bound in
//! `resp.rs`) or what a command does with a refused number.
//!
//! Hand-written rather than `str::parse`: the accepted spellings (leading
//! whitespace, a `+` sign, no trailing bytes) and the length limit are
//! Pogocache's, and the RESP hot path parses these per request.

/// Longest token accepted as a number (Pogocache refuses `len > 21`).
pub const MAX_LEN: usize = 21;

#[inline]
fn skip_space(s: &[u8]) -> usize {
    s.iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .unwrap_or(s.len())
}

/// C `strtoll` accepting the whole input, without the length limit:
/// optional leading whitespace, an optional sign, at least one digit,
/// nothing after. Overflow is refused.
#[inline]
pub(crate) fn i64_unbounded(s: &[u8]) -> Option<i64> {
    let mut i = skip_space(s);
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    if i >= s.len() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in &s[i..] {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

/// A signed number argument: C `strtoll` over the whole token (leading
/// whitespace, an optional sign, digits, no overflow) on at most
/// [`MAX_LEN`] bytes.
#[inline]
pub fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    if s.len() > MAX_LEN {
        return None;
    }
    i64_unbounded(s)
}

/// An unsigned number argument (C `strtoull` over the whole input, but a
/// leading `-` is refused): optional leading whitespace, an optional `+`,
/// digits, at most [`MAX_LEN`] bytes in all.
#[inline]
pub fn parse_u64_strict(s: &[u8]) -> Option<u64> {
    if s.len() > MAX_LEN {
        return None;
    }
    let mut i = skip_space(s);
    if s.get(i) == Some(&b'+') {
        i += 1;
    }
    if i >= s.len() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &s[i..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

/// C `atoi`: leading whitespace, an optional sign, digits up to the first
/// non-digit; anything else is 0 (saturating instead of overflowing).
/// Used where Pogocache is lenient: numeric flags, DEBUG ranges and
/// command-line counts.
pub fn atoi(s: &[u8]) -> i64 {
    let s = s.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for &c in digits.iter().take_while(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add((c - b'0') as i64);
    }
    if neg { -v } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_spellings() {
        assert_eq!(parse_i64_strict(b" +5"), Some(5));
        assert_eq!(parse_i64_strict(b"007"), Some(7));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64_strict(b"9223372036854775808"), None);
        assert_eq!(parse_i64_strict(b"5 "), None);
        assert_eq!(parse_i64_strict(b""), None);
        assert_eq!(parse_i64_strict(b"-"), None);
        assert_eq!(parse_u64_strict(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64_strict(b"18446744073709551616"), None);
        assert_eq!(parse_u64_strict(b"-1"), None);
        assert_eq!(parse_u64_strict(b"+1"), Some(1));
    }

    #[test]
    fn more_than_21_bytes_is_not_a_number() {
        // 21 bytes still parse, 22 never do (Pogocache's `len > 21`).
        assert_eq!(parse_i64_strict(b"000000000000000000042"), Some(42));
        assert_eq!(parse_i64_strict(b"0000000000000000000042"), None);
        assert_eq!(parse_u64_strict(b"000000000000000000042"), Some(42));
        assert_eq!(parse_u64_strict(b"0000000000000000000042"), None);
        assert_eq!(parse_i64_strict(b"                     1"), None);
        assert_eq!(i64_unbounded(b"0000000000000000000042"), Some(42));
    }

    #[test]
    fn atoi_is_c_lenient() {
        assert_eq!(atoi(b"  42abc"), 42);
        assert_eq!(atoi(b"-7"), -7);
        assert_eq!(atoi(b"+9"), 9);
        assert_eq!(atoi(b"x1"), 0);
        assert_eq!(atoi(b""), 0);
        assert_eq!(atoi(b"99999999999999999999999"), i64::MAX);
    }
}
