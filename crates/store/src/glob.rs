//! Byte-wise glob matching for KEYS and SCAN MATCH.
//!
//! Owns: Pogocache's pattern language: `*` (any run, including none), `?`
//! (one byte) and `\` (next byte literal). There are no character classes:
//! `[` is an ordinary byte, as in Pogocache (kept deliberately: a superset
//! would match keys Pogocache does not).

/// Returns true when `key` matches `pattern`.
///
/// Iterative with single-star backtracking, so it runs in
/// O(len(key) × len(pattern)) worst case and never recurses: a hostile
/// pattern like `*a*a*a*...b` cannot blow the stack.
pub fn matches(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0usize, 0usize);
    // Position after the last `*` seen and the key position it matched to.
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, k));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    k += 1;
                    continue;
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == key[k] {
                        p += 2;
                        k += 1;
                        continue;
                    }
                }
                c => {
                    if c == key[k] {
                        p += 1;
                        k += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sk)) => {
                p = sp;
                k = sk + 1;
                star = Some((sp, sk + 1));
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn basics() {
        assert!(matches(b"*", b""));
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"user:?", b"user:1"));
        assert!(!matches(b"user:?", b"user:10"));
        assert!(matches(b"a*c", b"abbbc"));
        assert!(matches(b"a*c", b"ac"));
        assert!(!matches(b"a*c", b"acb"));
        assert!(matches(b"ap2", b"ap2"));
        assert!(!matches(b"nomatch*", b"ap2"));
    }

    #[test]
    fn no_character_classes() {
        assert!(!matches(b"h[ae]llo", b"hello"));
        assert!(matches(b"h[ae]llo", b"h[ae]llo"));
        assert!(!matches(b"a[p]2", b"ap2"));
    }

    #[test]
    fn escapes() {
        assert!(matches(b"a\\*b", b"a*b"));
        assert!(!matches(b"a\\*b", b"axb"));
        assert!(matches(b"a\\?", b"a?"));
        assert!(matches(b"\\", b"\\"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let key = vec![b'a'; 4000];
        let mut pat = b"*a".repeat(50);
        pat.push(b'b');
        assert!(!matches(&pat, &key));
    }
}
