//! Character classes of the SIP grammar (RFC 3261 §25.1), as lookup tables: the one place they
//! are written. The digest parser's wider `token` (RFC 7230 `tchar`) lives here too.

/// Token characters of RFC 3261 §25.1:
/// alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// A `token` character (RFC 3261 §25.1).
pub fn is_token_char(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Only `token` characters (empty included: callers check emptiness).
pub fn is_token(s: &[u8]) -> bool {
    s.iter().all(|&b| is_token_char(b))
}

/// Digest `token` characters (credentials parameters): RFC 3261 `token` plus the extra `tchar`s of RFC 7230
/// (`#`, `$`, `&`, `^`, `|`), so that HTTP-style values are accepted too.
pub fn is_http_token_char(b: u8) -> bool {
    HTTP_TOKEN[usize::from(b)]
}

/// Lookup table behind [`is_http_token_char`] (a branch chain costs several times more per byte).
static HTTP_TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

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
