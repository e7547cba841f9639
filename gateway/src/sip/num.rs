//! Numbers on the wire: decimal digits (ports, CSeq, Content-Length, Max-Forwards) and
//! lowercase hexadecimal (digests, branch hashes, tags). The one place both are written.

/// Lowercase hexadecimal digits.
pub const HEX: &[u8; 16] = b"0123456789abcdef";

/// Non-empty decimal digits only (`1*DIGIT`), fitting in `u32`.
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
        } else {
            None
        }
    })
}

/// `src` in lowercase hexadecimal into `dst`, two digits per byte, as far as `dst` reaches.
pub fn put_hex(dst: &mut [u8], src: &[u8]) {
    for (pair, b) in dst.chunks_exact_mut(2).zip(src) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
}

/// A percent-escape (`%xx`, lowercase) of `b`.
pub fn percent(b: u8) -> [u8; 3] {
    [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"5060"), Some(5060));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"12a"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b" 1"), None);
    }

    #[test]
    fn hex_and_percent() {
        let mut out = [0u8; 6];
        put_hex(&mut out, &[0x00, 0xab, 0x7f]);
        assert_eq!(&out, b"00ab7f");
        let mut short = [b'.'; 3];
        put_hex(&mut short, &[0x12, 0x34]);
        assert_eq!(&short, b"12.");
        assert_eq!(&percent(b' '), b"%20");
        assert_eq!(&percent(0xfe), b"%fe");
    }
}
