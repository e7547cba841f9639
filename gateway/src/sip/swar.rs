//! Word-at-a-time ("SWAR") scanning: 8 bytes as one little-endian `u64`, used by the
//! message parser's and [`super::values::header_param`]'s fast paths.
//!
//! Layer: wire parsing, sans-IO; private to [`crate::sip`].
#![forbid(unsafe_code)]

// The fast paths look at 8 bytes at a time as one little-endian `u64`. A
// byte "matches" when the high bit of its byte in a mask word is set; the
// lowest set bit gives the first match. `eq_mask` and `ctl_mask` are exact
// for every byte (no step carries from one byte into the next); the
// cheaper zero-byte test `(x - ONES) & !x` in `param_mask` is exact for the
// lowest zero byte of `x` but may also flag bytes above it (through the
// borrow), so only the lowest match is ever used. Scans never read out of
// bounds: the last partial word is zero-extended and the bits past the end
// are masked off.

pub(super) const ONES: u64 = 0x0101_0101_0101_0101;
pub(super) const HIGHS: u64 = 0x8080_8080_8080_8080;
pub(super) const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The 8 bytes of `s` at `at` as a little-endian word, if there are 8.
#[inline(always)]
pub(super) fn full_word(s: &[u8], at: usize) -> Option<u64> {
    let bytes = s.get(at..)?.first_chunk::<8>()?;
    Some(u64::from_le_bytes(*bytes))
}

/// Index of the first byte of `s` at or after `at` whose byte in
/// `mask(word)` has its high bit set; `mask` must flag the lowest match
/// exactly (see above).
#[inline(always)]
pub(super) fn find_by(s: &[u8], mut at: usize, mask: impl Fn(u64) -> u64) -> Option<usize> {
    while let Some(word) = full_word(s, at) {
        let m = mask(word) & HIGHS;
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    find_in_tail(s, at, mask)
}

/// [`find_by`] for the fewer than 8 bytes of `s` from `at` to its end
/// (none if `at` is past the end): the buffer's last word shifted down, or
/// a short buffer gathered, zero-extended; bits past the end are masked.
/// Kept out of line so that the word loop stays small.
#[inline(never)]
pub(super) fn find_in_tail(s: &[u8], at: usize, mask: impl Fn(u64) -> u64) -> Option<usize> {
    let left = s.len().saturating_sub(at).min(7);
    let valid = HIGHS & ((1u64 << (8 * left)) - 1);
    let word = match s.last_chunk::<8>() {
        Some(last) if left > 0 => u64::from_le_bytes(*last) >> (8 * (8 - left)),
        _ => s
            .get(at..)
            .unwrap_or(&[])
            .iter()
            .rev()
            .fold(0, |w, &b| (w << 8) | u64::from(b)),
    };
    let m = mask(word) & valid;
    if m != 0 {
        return Some(at + (m.trailing_zeros() / 8) as usize);
    }
    None
}

/// [`find_by`] for short slices (header values): the tail word is taken
/// in line.
#[inline(always)]
pub(super) fn find_short(s: &[u8], at: usize, mask: impl Fn(u64) -> u64) -> Option<usize> {
    let rest = s.get(at..)?;
    let words = rest.chunks_exact(8);
    // The tail is read before the loop, which keeps the loop plain.
    let tail = words.remainder();
    let tail_word = tail_of(s, tail);
    let tail_valid = HIGHS & !(u64::MAX << (8 * tail.len().min(7)));
    let tail_at = s.len() - tail.len();
    for (i, word) in words.enumerate() {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        let m = mask(word) & HIGHS;
        if m != 0 {
            return Some(at + 8 * i + (m.trailing_zeros() / 8) as usize);
        }
    }
    let m = mask(tail_word) & tail_valid;
    if tail.is_empty() || m == 0 {
        return None;
    }
    Some(tail_at + (m.trailing_zeros() / 8) as usize)
}

/// The bytes of `rest`, the last (fewer than 8) bytes of `s`, as a
/// zero-extended little-endian word: `s`'s last word shifted down, or
/// gathered when `s` is that short.
#[inline(always)]
pub(super) fn tail_of(s: &[u8], rest: &[u8]) -> u64 {
    match s.last_chunk::<8>() {
        Some(last) if !rest.is_empty() => {
            u64::from_le_bytes(*last) >> (8 * (8 - rest.len().min(8)))
        }
        _ => rest.iter().rev().fold(0, |w, &b| (w << 8) | u64::from(b)),
    }
}

/// The (up to) 8 bytes of `s` from `at` as a zero-extended little-endian
/// word.
#[inline(always)]
pub(super) fn word_or_tail(s: &[u8], at: usize) -> u64 {
    match s.get(at..) {
        Some(rest) => match rest.first_chunk::<8>() {
            Some(word) => u64::from_le_bytes(*word),
            None => tail_of(s, rest),
        },
        None => 0,
    }
}

/// For a `name` of 1 to 8 ASCII letters: its lower-cased bytes as a
/// little-endian word, and the mask of its bytes. Against a word `w` of
/// other bytes, `w & mask | (0x20 bytes & mask) == word` is then an exact
/// case-insensitive comparison (only the two cases of a letter fold onto
/// it).
#[inline(always)]
pub(super) fn letters_word(name: &[u8]) -> Option<(u64, u64)> {
    if name.is_empty() || name.len() > 8 {
        return None;
    }
    let mask = u64::MAX >> (8 * (8 - name.len()));
    let word = name.iter().rev().fold(0, |w, &b| (w << 8) | u64::from(b));
    let lower = word | ((ONES * 0x20) & mask);
    // Every byte in 'a'..='z' (so the original was a letter, below 0x80).
    let at_least_a = (lower & LOW7) + ONES * (0x80 - 0x61);
    let above_z = (lower & LOW7) + ONES * (0x80 - 0x7b);
    let letters = at_least_a & !above_z & !lower & HIGHS;
    (letters & mask == HIGHS & mask).then_some((lower, mask))
}

/// Flags exactly the bytes of `w` equal to `c`: `x` is zero in those, and
/// `(x & 0x7f) + 0x7f` sets the high bit of every byte whose low seven bits
/// are not all zero.
#[inline(always)]
pub(super) fn eq_mask(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * u64::from(c));
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Flags exactly the control characters of `w`, HT included: bytes
/// `0x00..=0x1f` and `0x7f`. Per byte, `z = (b & 0x7f) + 1` lies in `1..=0x80`
/// and its low seven bits are below `0x21` just for those bytes (`0x7f`
/// wraps to `0x80`); bytes from `0x80` up are excluded through `w` itself.
/// No step carries across bytes.
#[inline(always)]
pub(super) fn ctl_mask(w: u64) -> u64 {
    let z = (w & LOW7) + ONES;
    let ge21 = (z & LOW7) + 0x5f * ONES;
    !(ge21 | w | LOW7)
}

/// Position of the first `:` in `line`.
pub(super) fn find_colon(line: &[u8]) -> Option<usize> {
    find_by(line, 0, |w| eq_mask(w, b':'))
}

/// Whether a 16-byte block holds a control character (HT included). Written
/// as a plain fold so that it compiles to a few vector instructions.
#[inline(always)]
pub(super) fn block_has_ctl(block: &[u8; 16]) -> bool {
    block
        .iter()
        .fold(false, |acc, &b| acc | (b < 0x20) | (b == 0x7f))
}

/// Fast path: the first control character (HT included) in `buf` at or
/// after `at`: clean 16-byte blocks are skipped (a plain fold the compiler
/// turns into vector compares), then the byte is found a word at a time.
#[inline(always)]
pub(super) fn next_ctl(buf: &[u8], at: usize) -> Option<usize> {
    let mut rest = buf.get(at..)?;
    while let Some((block, tail)) = rest.split_first_chunk::<16>() {
        if block_has_ctl(block) {
            let (lo, hi) = block.split_first_chunk::<8>()?;
            let lo = ctl_mask(u64::from_le_bytes(*lo)) & HIGHS;
            let bit = if lo != 0 {
                lo.trailing_zeros()
            } else {
                let hi = ctl_mask(u64::from_le_bytes(hi.try_into().ok()?)) & HIGHS;
                64 + hi.trailing_zeros()
            };
            return Some(buf.len() - rest.len() + (bit / 8) as usize);
        }
        rest = tail;
    }
    find_by(buf, buf.len() - rest.len(), ctl_mask)
}
