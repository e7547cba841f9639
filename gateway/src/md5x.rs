//! Multi-buffer MD5: up to 16 independent messages hashed at once, one per SIMD lane.
//!
//! The digest layer ([`crate::digest::Verifier::verify_batch`]) writes the input of each
//! response check (`hex(HA1):nonce:nc:cnonce:qop:hex(HA2)`, two or three MD5 blocks) into a
//! [`Lane`], and [`digest`] hashes the lanes together: 16 lanes in the 512-bit registers of
//! AVX-512 (rotations and the round functions are single instructions there), 8 lanes with
//! AVX2, one at a time with the scalar `md-5` (assembly) path otherwise. The path is chosen at
//! run time ([`Path::best`]); every path gives the same digests as `md-5` (property-tested over
//! every message length a lane holds, on every path the CPU offers).
//!
//! Lanes of different lengths share a batch: a lane whose last block is done keeps its state
//! while the longer ones go on (a per-lane mask).
//!
//! This module holds the `unsafe` the SIMD intrinsics need (gathers read through a raw pointer;
//! a `target_feature` function may only be called once the feature was detected). Each use has
//! its `// SAFETY:` comment; the safe entry point [`digest`] checks the feature before it calls.

#![allow(unsafe_code)]

use md5::{Digest, Md5};

/// One MD5 block.
pub const BLOCK: usize = 64;
/// Blocks a [`Lane`] holds, padding included.
pub const MAX_BLOCKS: usize = 5;
/// Longest message a [`Lane`] holds: five blocks less the padding (one `0x80` byte and the
/// 8-byte bit length).
pub const MAX_LEN: usize = MAX_BLOCKS * BLOCK - 9;
/// Most lanes one call hashes together ([`Path::Avx512`]).
pub const MAX_LANES: usize = 16;

/// A message being written for one lane: a fixed buffer, filled with [`Lane::put`], no
/// allocation. A message longer than [`MAX_LEN`] marks the lane as overflowed; [`digest`]
/// leaves its output at zero and the caller hashes it another way.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Lane {
    buf: [u8; MAX_BLOCKS * BLOCK],
    len: u16,
    overflowed: bool,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            buf: [0; MAX_BLOCKS * BLOCK],
            len: 0,
            overflowed: false,
        }
    }
}

impl core::fmt::Debug for Lane {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Lane")
            .field("len", &self.len)
            .field("overflowed", &self.overflowed)
            .finish()
    }
}

impl Lane {
    /// Empties the lane for a new message.
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }

    /// Appends `bytes` to the message.
    pub fn put(&mut self, bytes: &[u8]) {
        let len = usize::from(self.len);
        match self.buf.get_mut(len..len + bytes.len()) {
            Some(dst) if len + bytes.len() <= MAX_LEN && !self.overflowed => {
                dst.copy_from_slice(bytes);
                self.len = (len + bytes.len()) as u16;
            }
            _ => self.overflowed = true,
        }
    }

    /// The message written so far, or `None` once it outgrew [`MAX_LEN`].
    pub fn message(&self) -> Option<&[u8]> {
        if self.overflowed {
            None
        } else {
            self.buf.get(..usize::from(self.len))
        }
    }

    /// Whether the message outgrew [`MAX_LEN`].
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Writes the MD5 padding after the message; returns the number of blocks (0 for an
    /// overflowed lane, which is then not hashed).
    fn pad(&mut self) -> usize {
        if self.overflowed {
            return 0;
        }
        let len = usize::from(self.len);
        let blocks = (len + 9).div_ceil(BLOCK);
        let end = blocks * BLOCK;
        self.buf[len] = 0x80;
        self.buf[len + 1..end - 8].fill(0);
        self.buf[end - 8..end].copy_from_slice(&((len as u64) * 8).to_le_bytes());
        blocks
    }
}

/// How [`digest`] computes: the instruction set and hence the lanes per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// One message at a time with `md-5` (its assembly block function).
    Scalar,
    /// Eight lanes in 256-bit AVX2 registers.
    Avx2,
    /// Sixteen lanes in 512-bit AVX-512F registers.
    Avx512,
}

impl Path {
    /// Every path, widest first.
    pub const ALL: [Path; 3] = [Path::Avx512, Path::Avx2, Path::Scalar];

    /// Messages hashed together per step.
    pub fn lanes(self) -> usize {
        match self {
            Path::Scalar => 1,
            Path::Avx2 => 8,
            Path::Avx512 => 16,
        }
    }

    /// Whether this CPU runs the path.
    pub fn is_available(self) -> bool {
        match self {
            Path::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest path this CPU runs.
    pub fn best() -> Path {
        Path::ALL
            .into_iter()
            .find(|p| p.is_available())
            .unwrap_or(Path::Scalar)
    }

    /// The paths this CPU runs, widest first.
    pub fn available() -> impl Iterator<Item = Path> {
        Path::ALL.into_iter().filter(|p| p.is_available())
    }

    /// The name `sipgw check` and the logs print.
    pub fn name(self) -> &'static str {
        match self {
            Path::Scalar => "scalar",
            Path::Avx2 => "avx2 (8 lanes)",
            Path::Avx512 => "avx-512 (16 lanes)",
        }
    }
}

/// `out[i] = MD5(lanes[i].message())` for `min(lanes.len(), out.len())` lanes, on `path` (the
/// scalar path if the CPU does not run it); an overflowed lane's output is all zeros. The
/// lanes' buffers are padded in place (their messages are unchanged).
pub fn digest(path: Path, lanes: &mut [Lane], out: &mut [[u8; 16]]) {
    let n = lanes.len().min(out.len());
    let (lanes, out) = (&mut lanes[..n], &mut out[..n]);
    let path = if path.is_available() {
        path
    } else {
        Path::Scalar
    };
    let width = path.lanes();
    for (lanes, out) in lanes.chunks_mut(width).zip(out.chunks_mut(width)) {
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2 was detected on this CPU (`is_available` above); the chunk holds at
            // most 8 lanes.
            Path::Avx2 => unsafe { x86::avx2(lanes, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F was detected on this CPU; the chunk holds at most 16 lanes.
            Path::Avx512 => unsafe { x86::avx512(lanes, out) },
            _ => scalar(lanes, out),
        }
    }
}

fn scalar(lanes: &[Lane], out: &mut [[u8; 16]]) {
    for (lane, out) in lanes.iter().zip(out.iter_mut()) {
        *out = match lane.message() {
            Some(m) => Md5::digest(m).into(),
            None => [0; 16],
        };
    }
}

/// The 64 steps of MD5 over one block `$m` (16 words), for any lane width: `$step` is the
/// width's step macro, called with the round function's name.
#[cfg(target_arch = "x86_64")]
macro_rules! md5_rounds {
    ($step:ident, $a:ident, $b:ident, $c:ident, $d:ident, $m:ident) => {
        $step!(F, $a, $b, $c, $d, $m[0], 0xd76aa478, 7);
        $step!(F, $d, $a, $b, $c, $m[1], 0xe8c7b756, 12);
        $step!(F, $c, $d, $a, $b, $m[2], 0x242070db, 17);
        $step!(F, $b, $c, $d, $a, $m[3], 0xc1bdceee, 22);
        $step!(F, $a, $b, $c, $d, $m[4], 0xf57c0faf, 7);
        $step!(F, $d, $a, $b, $c, $m[5], 0x4787c62a, 12);
        $step!(F, $c, $d, $a, $b, $m[6], 0xa8304613, 17);
        $step!(F, $b, $c, $d, $a, $m[7], 0xfd469501, 22);
        $step!(F, $a, $b, $c, $d, $m[8], 0x698098d8, 7);
        $step!(F, $d, $a, $b, $c, $m[9], 0x8b44f7af, 12);
        $step!(F, $c, $d, $a, $b, $m[10], 0xffff5bb1, 17);
        $step!(F, $b, $c, $d, $a, $m[11], 0x895cd7be, 22);
        $step!(F, $a, $b, $c, $d, $m[12], 0x6b901122, 7);
        $step!(F, $d, $a, $b, $c, $m[13], 0xfd987193, 12);
        $step!(F, $c, $d, $a, $b, $m[14], 0xa679438e, 17);
        $step!(F, $b, $c, $d, $a, $m[15], 0x49b40821, 22);
        $step!(G, $a, $b, $c, $d, $m[1], 0xf61e2562, 5);
        $step!(G, $d, $a, $b, $c, $m[6], 0xc040b340, 9);
        $step!(G, $c, $d, $a, $b, $m[11], 0x265e5a51, 14);
        $step!(G, $b, $c, $d, $a, $m[0], 0xe9b6c7aa, 20);
        $step!(G, $a, $b, $c, $d, $m[5], 0xd62f105d, 5);
        $step!(G, $d, $a, $b, $c, $m[10], 0x02441453, 9);
        $step!(G, $c, $d, $a, $b, $m[15], 0xd8a1e681, 14);
        $step!(G, $b, $c, $d, $a, $m[4], 0xe7d3fbc8, 20);
        $step!(G, $a, $b, $c, $d, $m[9], 0x21e1cde6, 5);
        $step!(G, $d, $a, $b, $c, $m[14], 0xc33707d6, 9);
        $step!(G, $c, $d, $a, $b, $m[3], 0xf4d50d87, 14);
        $step!(G, $b, $c, $d, $a, $m[8], 0x455a14ed, 20);
        $step!(G, $a, $b, $c, $d, $m[13], 0xa9e3e905, 5);
        $step!(G, $d, $a, $b, $c, $m[2], 0xfcefa3f8, 9);
        $step!(G, $c, $d, $a, $b, $m[7], 0x676f02d9, 14);
        $step!(G, $b, $c, $d, $a, $m[12], 0x8d2a4c8a, 20);
        $step!(H, $a, $b, $c, $d, $m[5], 0xfffa3942, 4);
        $step!(H, $d, $a, $b, $c, $m[8], 0x8771f681, 11);
        $step!(H, $c, $d, $a, $b, $m[11], 0x6d9d6122, 16);
        $step!(H, $b, $c, $d, $a, $m[14], 0xfde5380c, 23);
        $step!(H, $a, $b, $c, $d, $m[1], 0xa4beea44, 4);
        $step!(H, $d, $a, $b, $c, $m[4], 0x4bdecfa9, 11);
        $step!(H, $c, $d, $a, $b, $m[7], 0xf6bb4b60, 16);
        $step!(H, $b, $c, $d, $a, $m[10], 0xbebfbc70, 23);
        $step!(H, $a, $b, $c, $d, $m[13], 0x289b7ec6, 4);
        $step!(H, $d, $a, $b, $c, $m[0], 0xeaa127fa, 11);
        $step!(H, $c, $d, $a, $b, $m[3], 0xd4ef3085, 16);
        $step!(H, $b, $c, $d, $a, $m[6], 0x04881d05, 23);
        $step!(H, $a, $b, $c, $d, $m[9], 0xd9d4d039, 4);
        $step!(H, $d, $a, $b, $c, $m[12], 0xe6db99e5, 11);
        $step!(H, $c, $d, $a, $b, $m[15], 0x1fa27cf8, 16);
        $step!(H, $b, $c, $d, $a, $m[2], 0xc4ac5665, 23);
        $step!(I, $a, $b, $c, $d, $m[0], 0xf4292244, 6);
        $step!(I, $d, $a, $b, $c, $m[7], 0x432aff97, 10);
        $step!(I, $c, $d, $a, $b, $m[14], 0xab9423a7, 15);
        $step!(I, $b, $c, $d, $a, $m[5], 0xfc93a039, 21);
        $step!(I, $a, $b, $c, $d, $m[12], 0x655b59c3, 6);
        $step!(I, $d, $a, $b, $c, $m[3], 0x8f0ccc92, 10);
        $step!(I, $c, $d, $a, $b, $m[10], 0xffeff47d, 15);
        $step!(I, $b, $c, $d, $a, $m[1], 0x85845dd1, 21);
        $step!(I, $a, $b, $c, $d, $m[8], 0x6fa87e4f, 6);
        $step!(I, $d, $a, $b, $c, $m[15], 0xfe2ce6e0, 10);
        $step!(I, $c, $d, $a, $b, $m[6], 0xa3014314, 15);
        $step!(I, $b, $c, $d, $a, $m[13], 0x4e0811a1, 21);
        $step!(I, $a, $b, $c, $d, $m[4], 0xf7537e82, 6);
        $step!(I, $d, $a, $b, $c, $m[11], 0xbd3af235, 10);
        $step!(I, $c, $d, $a, $b, $m[2], 0x2ad7d2bb, 15);
        $step!(I, $b, $c, $d, $a, $m[9], 0xeb86d391, 21);
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Lane, BLOCK};
    use core::arch::x86_64::*;

    const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

    /// Pads the lanes; returns each lane's block count (0 past `lanes.len()`), the largest,
    /// and each lane's byte offset from the first lane (lanes past the end read lane 0).
    fn prepare<const W: usize>(lanes: &mut [Lane]) -> ([i32; W], usize, [i32; W]) {
        let mut blocks = [0i32; W];
        let mut offsets = [0i32; W];
        for (i, lane) in lanes.iter_mut().enumerate().take(W) {
            blocks[i] = lane.pad() as i32;
            offsets[i] = (i * core::mem::size_of::<Lane>()) as i32;
        }
        let max = blocks.iter().copied().max().unwrap_or(0) as usize;
        (blocks, max, offsets)
    }

    fn store<const W: usize>(lanes: &[Lane], state: [[u32; W]; 4], out: &mut [[u8; 16]]) {
        for (i, (lane, out)) in lanes.iter().zip(out.iter_mut()).enumerate() {
            if lane.overflowed() {
                *out = [0; 16];
                continue;
            }
            for (w, word) in state.iter().enumerate() {
                out[w * 4..w * 4 + 4].copy_from_slice(&word[i].to_le_bytes());
            }
        }
    }

    macro_rules! step256 {
        ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:literal) => {
            let t = _mm256_add_epi32(
                _mm256_add_epi32($a, f256!($f, $b, $c, $d)),
                _mm256_add_epi32($m, _mm256_set1_epi32($k as u32 as i32)),
            );
            $a = _mm256_add_epi32(
                _mm256_or_si256(
                    _mm256_slli_epi32::<$s>(t),
                    _mm256_srli_epi32::<{ 32 - $s }>(t),
                ),
                $b,
            );
        };
    }

    macro_rules! f256 {
        (F, $b:ident, $c:ident, $d:ident) => {
            _mm256_xor_si256($d, _mm256_and_si256($b, _mm256_xor_si256($c, $d)))
        };
        (G, $b:ident, $c:ident, $d:ident) => {
            _mm256_xor_si256($c, _mm256_and_si256($d, _mm256_xor_si256($b, $c)))
        };
        (H, $b:ident, $c:ident, $d:ident) => {
            _mm256_xor_si256(_mm256_xor_si256($b, $c), $d)
        };
        (I, $b:ident, $c:ident, $d:ident) => {
            _mm256_xor_si256(
                $c,
                _mm256_or_si256($b, _mm256_xor_si256($d, _mm256_set1_epi32(-1))),
            )
        };
    }

    /// Eight lanes (at most) with AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2; `lanes.len() <= 8`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(lanes: &mut [Lane], out: &mut [[u8; 16]]) {
        let (blocks, max, offsets) = prepare::<8>(lanes);
        let blocks = _mm256_loadu_si256(blocks.as_ptr().cast());
        let offsets = _mm256_loadu_si256(offsets.as_ptr().cast());
        let base = lanes.as_ptr().cast::<i32>();
        let mut s = [
            _mm256_set1_epi32(INIT[0] as i32),
            _mm256_set1_epi32(INIT[1] as i32),
            _mm256_set1_epi32(INIT[2] as i32),
            _mm256_set1_epi32(INIT[3] as i32),
        ];
        for b in 0..max {
            let mut m = [_mm256_setzero_si256(); 16];
            for (w, word) in m.iter_mut().enumerate() {
                let at = _mm256_add_epi32(offsets, _mm256_set1_epi32((b * BLOCK + w * 4) as i32));
                // SAFETY: every offset is `lane * size_of::<Lane>() + b * 64 + w * 4` with
                // `lane < lanes.len()` and `b < MAX_BLOCKS`, i.e. a 4-byte word inside a
                // lane's buffer of the `lanes` slice `base` points to.
                *word = unsafe { _mm256_i32gather_epi32::<1>(base, at) };
            }
            let (mut a, mut bb, mut c, mut d) = (s[0], s[1], s[2], s[3]);
            md5_rounds!(step256, a, bb, c, d, m);
            let active = _mm256_cmpgt_epi32(blocks, _mm256_set1_epi32(b as i32));
            for (x, y) in s.iter_mut().zip([a, bb, c, d]) {
                *x = _mm256_blendv_epi8(*x, _mm256_add_epi32(*x, y), active);
            }
        }
        let mut state = [[0u32; 8]; 4];
        for (dst, v) in state.iter_mut().zip(s) {
            // SAFETY: `dst` is 32 bytes, the size of one 256-bit vector.
            unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) };
        }
        store(lanes, state, out);
    }

    macro_rules! step512 {
        ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:literal) => {
            let t = _mm512_add_epi32(
                _mm512_add_epi32($a, f512!($f, $b, $c, $d)),
                _mm512_add_epi32($m, _mm512_set1_epi32($k as u32 as i32)),
            );
            $a = _mm512_add_epi32(_mm512_rol_epi32::<$s>(t), $b);
        };
    }

    // The round functions as ternary-logic truth tables of (b, c, d) = (0xF0, 0xCC, 0xAA).
    macro_rules! f512 {
        (F, $b:ident, $c:ident, $d:ident) => {
            _mm512_ternarylogic_epi32::<0xCA>($b, $c, $d)
        };
        (G, $b:ident, $c:ident, $d:ident) => {
            _mm512_ternarylogic_epi32::<0xE4>($b, $c, $d)
        };
        (H, $b:ident, $c:ident, $d:ident) => {
            _mm512_ternarylogic_epi32::<0x96>($b, $c, $d)
        };
        (I, $b:ident, $c:ident, $d:ident) => {
            _mm512_ternarylogic_epi32::<0x39>($b, $c, $d)
        };
    }

    /// Sixteen lanes (at most) with AVX-512F.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `lanes.len() <= 16`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(lanes: &mut [Lane], out: &mut [[u8; 16]]) {
        let (blocks, max, offsets) = prepare::<16>(lanes);
        // SAFETY: both arrays are 64 bytes, the size of one 512-bit vector.
        let (blocks, offsets) = unsafe {
            (
                _mm512_loadu_si512(blocks.as_ptr().cast()),
                _mm512_loadu_si512(offsets.as_ptr().cast()),
            )
        };
        let base = lanes.as_ptr().cast::<i32>();
        let mut s = [
            _mm512_set1_epi32(INIT[0] as i32),
            _mm512_set1_epi32(INIT[1] as i32),
            _mm512_set1_epi32(INIT[2] as i32),
            _mm512_set1_epi32(INIT[3] as i32),
        ];
        for b in 0..max {
            let mut m = [_mm512_setzero_si512(); 16];
            for (w, word) in m.iter_mut().enumerate() {
                let at = _mm512_add_epi32(offsets, _mm512_set1_epi32((b * BLOCK + w * 4) as i32));
                // SAFETY: as in `avx2`: each offset names a word inside one of the lanes.
                *word = unsafe { _mm512_i32gather_epi32::<1>(at, base) };
            }
            let (mut a, mut bb, mut c, mut d) = (s[0], s[1], s[2], s[3]);
            md5_rounds!(step512, a, bb, c, d, m);
            let active = _mm512_cmpgt_epi32_mask(blocks, _mm512_set1_epi32(b as i32));
            for (x, y) in s.iter_mut().zip([a, bb, c, d]) {
                *x = _mm512_mask_add_epi32(*x, active, *x, y);
            }
        }
        let mut state = [[0u32; 16]; 4];
        for (dst, v) in state.iter_mut().zip(s) {
            // SAFETY: `dst` is 64 bytes, the size of one 512-bit vector.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), v) };
        }
        store(lanes, state, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(m: &[u8]) -> [u8; 16] {
        Md5::digest(m).into()
    }

    #[test]
    fn the_widest_path_this_cpu_runs_is_chosen_and_scalar_is_always_there() {
        assert!(Path::Scalar.is_available());
        let best = Path::best();
        assert!(best.is_available());
        assert!(Path::ALL
            .iter()
            .filter(|p| p.lanes() > best.lanes())
            .all(|p| !p.is_available()));
        assert_eq!(Path::available().next(), Some(best));
    }

    /// Every message length a lane holds (0 ..= MAX_LEN, i.e. up to five blocks with the
    /// padding), on every path the CPU offers; lanes in one call have different lengths, so
    /// the per-lane masks are exercised at every block boundary.
    #[test]
    fn every_length_up_to_five_blocks_matches_md5_on_every_path() {
        let data: Vec<u8> = (0..MAX_LEN as u32).map(|i| (i * 131 + 7) as u8).collect();
        for path in Path::available() {
            let mut lanes = [Lane::default(); MAX_LANES];
            let mut out = [[0u8; 16]; MAX_LANES];
            for start in (0..=MAX_LEN).step_by(MAX_LANES) {
                let lens: Vec<usize> = (start..(start + MAX_LANES).min(MAX_LEN + 1)).collect();
                for (lane, &len) in lanes.iter_mut().zip(&lens) {
                    lane.clear();
                    lane.put(&data[..len]);
                }
                // Reverse the order in every other call: long and short lanes side by side.
                let k = lens.len();
                if start % (2 * MAX_LANES) != 0 {
                    lanes[..k].reverse();
                }
                digest(path, &mut lanes[..k], &mut out[..k]);
                for (lane, out) in lanes[..k].iter().zip(&out[..k]) {
                    let m = lane.message().unwrap();
                    assert_eq!(*out, reference(m), "{path:?}, length {}", m.len());
                }
            }
        }
    }

    #[test]
    fn an_overflowed_lane_is_reported_and_left_at_zero_while_its_neighbours_are_hashed() {
        for path in Path::available() {
            let mut lanes = [Lane::default(); 3];
            lanes[0].put(b"abc");
            lanes[1].put(&[b'x'; MAX_LEN]);
            lanes[1].put(b"y");
            lanes[2].put(&[b'z'; MAX_LEN]);
            assert!(lanes[1].overflowed());
            assert_eq!(lanes[1].message(), None);
            let mut out = [[1u8; 16]; 3];
            digest(path, &mut lanes, &mut out);
            assert_eq!(out[0], reference(b"abc"), "{path:?}");
            assert_eq!(out[1], [0; 16], "{path:?}");
            assert_eq!(out[2], reference(&[b'z'; MAX_LEN]), "{path:?}");
        }
    }

    #[test]
    fn a_lane_reused_after_clear_hashes_only_its_new_message() {
        let mut lanes = [Lane::default(); 1];
        lanes[0].put(&[7; 200]);
        let mut out = [[0u8; 16]; 1];
        digest(Path::best(), &mut lanes, &mut out);
        lanes[0].clear();
        lanes[0].put(b"a:b");
        lanes[0].put(b":c");
        digest(Path::best(), &mut lanes, &mut out);
        assert_eq!(out[0], reference(b"a:b:c"));
    }

    proptest! {
        /// Random messages of random lengths (up to five blocks), random batch sizes, built
        /// from random pieces, on every path.
        #[test]
        fn random_batches_match_md5_on_every_path(
            msgs in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::collection::vec(any::<u8>(), 0..80), 0..6), 1..40),
        ) {
            for path in Path::available() {
                let mut lanes = vec![Lane::default(); msgs.len()];
                let mut out = vec![[0u8; 16]; msgs.len()];
                for (lane, pieces) in lanes.iter_mut().zip(&msgs) {
                    for p in pieces {
                        lane.put(p);
                    }
                }
                digest(path, &mut lanes, &mut out);
                for ((lane, pieces), out) in lanes.iter().zip(&msgs).zip(&out) {
                    let whole: Vec<u8> = pieces.concat();
                    if whole.len() > MAX_LEN {
                        prop_assert!(lane.overflowed());
                        prop_assert_eq!(*out, [0; 16]);
                    } else {
                        prop_assert_eq!(*out, reference(&whole), "{:?} length {}", path, whole.len());
                    }
                }
            }
        }
    }
}
