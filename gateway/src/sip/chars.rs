//! Character classes of the SIP grammar (RFC 3261 §25.1), as lookup tables: the one place they
//! are written. The digest parser's wider `token` (RFC 7230 `tchar`) lives here too.

/// RFC 3261 §25.1 `token` marks besides alphanumerics.
const TOKEN_MARKS: &[u8] = b"-.!%*_+`'~";

/// The extra `tchar`s of RFC 7230 that the digest parser accepts on top of [`TOKEN_MARKS`].
const HTTP_EXTRA: &[u8] = b"#$&^|";

/// A lookup table (a branch chain costs several times more per byte): alphanumerics and the
/// bytes of every set in `marks`.
const fn table(marks: &[&[u8]]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let mut m = 0;
    while m < marks.len() {
        let mut j = 0;
        while j < marks[m].len() {
            t[marks[m][j] as usize] = true;
            j += 1;
        }
        m += 1;
    }
    t
}

/// Token characters of RFC 3261 §25.1: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" /
/// "`" / "'" / "~".
static TOKEN: [bool; 256] = table(&[TOKEN_MARKS]);

/// Digest `token` characters (credentials parameters): RFC 3261 `token` plus the extra `tchar`s
/// of RFC 7230 (`#`, `$`, `&`, `^`, `|`), so that HTTP-style values are accepted too.
static HTTP_TOKEN: [bool; 256] = table(&[TOKEN_MARKS, HTTP_EXTRA]);

/// A `token` character (RFC 3261 §25.1).
pub fn is_token_char(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Only `token` characters (empty included: callers check emptiness).
pub fn is_token(s: &[u8]) -> bool {
    s.iter().all(|&b| is_token_char(b))
}

/// A digest `token` character (the `HTTP_TOKEN` table).
pub fn is_http_token_char(b: u8) -> bool {
    HTTP_TOKEN[usize::from(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_and_http_tokens() {
        for b in b"azAZ09-.!%*_+`'~" {
            assert!(is_token_char(*b), "{}", *b as char);
            assert!(is_http_token_char(*b), "{}", *b as char);
        }
        for b in b"#$&^|" {
            assert!(!is_token_char(*b), "{}", *b as char);
            assert!(is_http_token_char(*b), "{}", *b as char);
        }
        for b in b" \t\r\n\"(),/:;<=>?@[]{}\x7f\x80" {
            assert!(!is_token_char(*b) && !is_http_token_char(*b), "{b}");
        }
        assert!(is_token(b"z9hG4bK-1"));
        assert!(!is_token(b"a b"));
    }
}
