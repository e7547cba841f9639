//! Stateless digest nonces (like SYN cookies) and the `nc` replay table.
//!
//! This is a sans-IO protocol layer: it never reads a clock, a socket or a
//! random source. Time is passed in as Unix seconds (`now_unix`), secrets are
//! passed in as 32-byte master keys, and every decision is a pure function of
//! those inputs plus the state held here.
//!
//! # Nonces
//!
//! A nonce is [`NONCE_LEN`] = 28 characters of base64url without padding,
//! encoding 21 bytes:
//!
//! ```text
//! issued_unix_secs: u32 big-endian || key_id: u8 || salt: u32 big-endian || tag: [u8; 12]
//! tag = first 12 bytes of SipHash-2-4-128(key, issued || key_id || salt || source_ip_16 || realm)
//! ```
//!
//! The salt is chosen by the caller (a per-engine counter starting at a random value) so that
//! two challenges sent to the same address in the same second get different nonces: clients
//! start every nonce at `nc=00000001`, and identical nonces would make the second client's
//! first request look like a replay. A 96-bit tag leaves a forger one chance in 2^96 per try.
//! 28 characters keep a typical `qop=auth` response input (HA1:nonce:nc:cnonce:qop:HA2) within
//! two MD5 blocks.
//!
//! where `source_ip_16` is the client's IP address as 16 bytes (IPv4 mapped to
//! `::ffff:a.b.c.d`, so a dual-stack socket and an IPv4 socket agree) and `key`
//! is a 128-bit key derived from the 32-byte master secret. The server keeps no
//! per-nonce state until a nonce is actually used with `qop` (then the replay
//! table records its `nc`). SipHash is a keyed PRF designed as a MAC for short
//! inputs, the same primitive Linux uses for SYN cookies; it computes millions
//! of tags per second per core, so minting a nonce for every challenge is
//! cheap even under a flood.
//!
//! Nodes sharing the same master secret mint and accept each other's nonces
//! (the key id and key are derived deterministically from the master). Keys
//! rotate with [`Nonces::rotate`]; the previous key is still accepted for a
//! grace period and afterwards still authenticates its nonces as
//! [`NonceStatus::Stale`], so clients are re-challenged rather than rejected.
//!
//! Timestamps are `u32` seconds compared with wrapping (serial-number)
//! arithmetic, so nothing breaks when `now_unix` passes `u32::MAX` (year 2106)
//! as long as nonce ages stay far below 68 years.
//!
//! The nonce alphabet (`A-Z a-z 0-9 - _`) never needs escaping, so callers
//! pass the raw bytes of the `nonce` parameter; an escaped nonce is
//! [`NonceStatus::Forged`].
//!
//! # Invariants
//!
//! * [`Nonces::mint`], [`Nonces::verify`] and [`ReplayTable::check`] do not
//!   allocate and never panic; [`Nonces::verify`] accepts any bytes.
//! * Tags are compared in constant time ([`subtle`]).
//! * [`ReplayTable`] never holds more than its capacity, never reallocates
//!   after construction, and never answers [`ReplayVerdict::Fresh`] to a
//!   replayed `(nonce, nc)`: entries it had to drop are covered by a floor
//!   below which unknown nonces are answered [`ReplayVerdict::Evicted`].
#![forbid(unsafe_code)]

use core::hash::Hasher;
use siphasher::sip128::{Hasher128, SipHasher24};
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// Length in bytes (ASCII characters) of a minted nonce.
pub const NONCE_LEN: usize = 28;

/// Length of the tag carried in a nonce.
const TAG_LEN: usize = 12;

/// Decoded length: issued (4) + key id (1) + salt (4) + tag (12).
const RAW_LEN: usize = 21;

/// Age in seconds of something issued at `issued` (wrapping `u32` seconds)
/// seen at `now_unix`; negative when `issued` is in the future.
fn age(now_unix: u64, issued: u32) -> i64 {
    // Serial-number arithmetic: truncation to u32 and reinterpretation as i32
    // are intended.
    i64::from((now_unix as u32).wrapping_sub(issued) as i32)
}

/// Nonce timing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceConfig {
    /// A nonce is [`NonceStatus::Valid`] while its age is at most this many
    /// seconds, [`NonceStatus::Stale`] afterwards. Default 30.
    pub lifetime_secs: u32,
    /// After [`Nonces::rotate`], nonces of the previous key are still
    /// [`NonceStatus::Valid`] (subject to their lifetime) for this many
    /// seconds, and [`NonceStatus::Stale`] afterwards. Default 30.
    pub grace_secs: u32,
    /// Nonces claiming to be issued up to this many seconds in the future are
    /// accepted (clock skew between nodes sharing a secret); further in the
    /// future they are [`NonceStatus::Forged`]. Default 5.
    pub max_future_skew_secs: u32,
}

impl Default for NonceConfig {
    fn default() -> NonceConfig {
        NonceConfig {
            lifetime_secs: 30,
            grace_secs: 30,
            max_future_skew_secs: 5,
        }
    }
}

/// One key of the keyring: the keyed SipHash state and its public id.
#[derive(Clone, Copy)]
struct Key {
    mac: SipHasher24,
    id: u8,
}

impl Key {
    /// Derives the 128-bit MAC key and the key id from a 32-byte master
    /// secret: both are SipHash-2-4-128 outputs keyed by the first half of the
    /// master over a domain label and the second half, so they depend on all
    /// 256 bits and the id reveals nothing usable about the key.
    fn derive(master: &[u8; 32]) -> Key {
        let (k0, k1) = master.split_at(16);
        let mut seed = [0u8; 16];
        seed.copy_from_slice(k0);
        let prf = |label: &[u8]| {
            let mut h = SipHasher24::new_with_key(&seed);
            h.write(label);
            h.write(k1);
            h.finish128().as_bytes()
        };
        let mac_key = prf(b"sipgw nonce tag key v1\0");
        let id = prf(b"sipgw nonce key id v1\0")[0];
        Key {
            mac: SipHasher24::new_with_key(&mac_key),
            id,
        }
    }

    fn tag(&self, issued: u32, salt: u32, source: IpAddr, realm: &[u8]) -> [u8; TAG_LEN] {
        let ip = match source {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let mut h = self.mac;
        h.write(&issued.to_be_bytes());
        h.write(&[self.id]);
        h.write(&salt.to_be_bytes());
        h.write(&ip);
        // Realm last: the fields before it have fixed lengths, so the
        // encoding is unambiguous.
        h.write(realm);
        let full = h.finish128().as_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }
}

/// Outcome of [`Nonces::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Authentic and within its lifetime.
    Valid {
        /// First 8 bytes of the tag (little-endian): the nonce's key in the
        /// [`ReplayTable`].
        id: u64,
        /// Issue time (wrapping Unix seconds) carried by the nonce.
        issued: u32,
        /// The salt the minter chose (the engine puts its worker index in the low bits).
        salt: u32,
    },
    /// Authentic but older than the lifetime, or minted with the previous key
    /// after its grace period: re-challenge with `stale=true`. Not a failure.
    Stale,
    /// Not a nonce we minted for this client and realm: wrong length or
    /// encoding, unknown key id, bad tag (other source IP, other realm, any
    /// altered byte), or issued further in the future than the allowed skew.
    Forged,
}

/// The nonce keyring: the current master key and, after a rotation, the
/// previous one with the end of its grace period.
#[derive(Clone)]
pub struct Nonces {
    config: NonceConfig,
    current: Key,
    /// Previous key and the last second (inclusive) its nonces are Valid.
    previous: Option<(Key, u64)>,
}

impl core::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.debug_struct("Nonces")
            .field("config", &self.config)
            .field("key_id", &self.current.id)
            .field("previous", &self.previous.map(|(k, until)| (k.id, until)))
            .finish()
    }
}

impl Nonces {
    /// A keyring whose current key is derived from `master`.
    #[must_use]
    pub fn new(master: [u8; 32], config: NonceConfig) -> Nonces {
        Nonces {
            config,
            current: Key::derive(&master),
            previous: None,
        }
    }

    /// The timing policy.
    #[must_use]
    pub fn config(&self) -> &NonceConfig {
        &self.config
    }

    /// Change the lifetime and grace (a reload); keys are kept.
    pub fn set_config(&mut self, config: NonceConfig) {
        self.config = config;
    }

    /// Makes `next` the current master. The old current key becomes the
    /// previous key: its nonces stay [`NonceStatus::Valid`] (within their
    /// lifetime) up to and including `now_unix + grace_secs`, and afterwards
    /// are [`NonceStatus::Stale`] as long as it remains the previous key. A
    /// key two rotations old is forgotten: its nonces are
    /// [`NonceStatus::Forged`].
    pub fn rotate(&mut self, next: [u8; 32], now_unix: u64) {
        let until = now_unix.saturating_add(u64::from(self.config.grace_secs));
        self.previous = Some((self.current, until));
        self.current = Key::derive(&next);
    }

    /// Id of the current key (derived from the master, so equal on every node
    /// with the same secret). When the current and previous ids collide
    /// (1 in 256), verification simply tries both keys.
    #[must_use]
    pub fn key_id(&self) -> u8 {
        self.current.id
    }

    /// Mints a nonce for a challenge sent to `source` for `realm` at
    /// `now_unix` (stored as wrapping `u32` seconds). `salt` must differ
    /// between nonces minted for one address within a second (a counter).
    #[must_use]
    pub fn mint(&self, now_unix: u64, source: IpAddr, realm: &[u8], salt: u32) -> [u8; NONCE_LEN] {
        // Truncation to u32 is intended (serial-number timestamps).
        let issued = now_unix as u32;
        let tag = self.current.tag(issued, salt, source, realm);
        let mut raw = [0u8; RAW_LEN];
        raw[..4].copy_from_slice(&issued.to_be_bytes());
        raw[4] = self.current.id;
        raw[5..9].copy_from_slice(&salt.to_be_bytes());
        raw[9..].copy_from_slice(&tag);
        encode(&raw)
    }

    /// Checks a nonce echoed by `source` for `realm` at `now_unix`. Accepts
    /// any bytes; see [`NonceStatus`] for the outcomes.
    #[must_use]
    pub fn verify(&self, now_unix: u64, source: IpAddr, realm: &[u8], nonce: &[u8]) -> NonceStatus {
        let Some((issued, key_id, salt, tag)) = decode(nonce) else {
            return NonceStatus::Forged;
        };
        let authentic = |key: &Key| {
            key.id == key_id && bool::from(key.tag(issued, salt, source, realm).ct_eq(&tag))
        };
        let grace_until = if authentic(&self.current) {
            None
        } else {
            match self.previous {
                Some((ref key, until)) if authentic(key) => Some(until),
                _ => return NonceStatus::Forged,
            }
        };
        let age = age(now_unix, issued);
        if age < -i64::from(self.config.max_future_skew_secs) {
            return NonceStatus::Forged;
        }
        if grace_until.is_some_and(|until| now_unix > until)
            || age > i64::from(self.config.lifetime_secs)
        {
            return NonceStatus::Stale;
        }
        let [t0, t1, t2, t3, t4, t5, t6, t7, ..] = tag;
        NonceStatus::Valid {
            id: u64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
            issued,
            salt,
        }
    }
}

/// Splits a nonce into (issued, key id, salt, tag); `None` unless it is
/// exactly 28 base64url characters.
fn decode(nonce: &[u8]) -> Option<(u32, u8, u32, [u8; TAG_LEN])> {
    let raw = decode_raw(nonce)?;
    let [i0, i1, i2, i3, key_id, s0, s1, s2, s3, tag @ ..] = raw;
    let salt = u32::from_be_bytes([s0, s1, s2, s3]);
    Some((u32::from_be_bytes([i0, i1, i2, i3]), key_id, salt, tag))
}

// Base64url (RFC 4648 §5, no padding) of exactly RAW_LEN = 21 bytes, i.e. seven
// 3-byte groups. The `base64` crate's general-purpose engine spends ~30
// instructions a byte on inputs this short (most of a challenge's cost); this
// fixed-size form is checked against it by the tests.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Sextet value of each base64url character, 0xff for any other byte.
static B64_VALUES: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 64 {
        t[B64[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn encode(raw: &[u8; RAW_LEN]) -> [u8; NONCE_LEN] {
    let mut out = [0u8; NONCE_LEN];
    for (group, chars) in raw.chunks_exact(3).zip(out.chunks_exact_mut(4)) {
        let n = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        for (k, c) in chars.iter_mut().enumerate() {
            *c = B64[((n >> (18 - 6 * k)) & 63) as usize];
        }
    }
    out
}

fn decode_raw(nonce: &[u8]) -> Option<[u8; RAW_LEN]> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    let mut raw = [0u8; RAW_LEN];
    let mut bad = 0u8;
    for (chars, group) in nonce.chunks_exact(4).zip(raw.chunks_exact_mut(3)) {
        let mut n = 0u32;
        for &c in chars {
            let v = B64_VALUES[usize::from(c)];
            bad |= v;
            n = n << 6 | u32::from(v & 63);
        }
        group.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    // Any invalid character (0xff) sets the top bits of `bad`.
    (bad < 64).then_some(raw)
}

/// Outcome of [`ReplayTable::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// First use of this `nc` (strictly greater than any seen for the nonce);
    /// it is now recorded.
    Fresh,
    /// `nc` is not greater than one already seen for this nonce, or is 0:
    /// reject the request.
    Replay,
    /// The same `nc` again with the same request fingerprint: a UDP
    /// retransmission of the request that used it (RFC 3261 §17.1.2.2, timer
    /// E), not a replay. Treat it like the original.
    Retransmission,
    /// The table cannot vouch for this nonce: it may have been dropped to
    /// bound memory (issued at or before the eviction floor) or is past its
    /// lifetime. Re-challenge with `stale=true`.
    Evicted,
}

/// Per-nonce replay state.
#[derive(Debug, Clone, Copy)]
struct Entry {
    last_nc: u32,
    issued: u32,
    /// Fingerprint of the request that used `last_nc`.
    fingerprint: u32,
}

/// Number of age buckets used to pick the oldest entries when evicting.
const BINS: usize = 64;

/// Bounded record of the highest `nc` seen per nonce (for `qop` requests).
///
/// Memory is fixed at construction: the map is allocated for twice the
/// capacity so that hashbrown can always reclaim tombstones by rehashing in
/// place instead of growing (see [`ReplayTable::memory_bytes`]).
///
/// Callers should [`sweep`](ReplayTable::sweep) periodically (e.g. every
/// second) and size the table for `request rate × lifetime`; when it is
/// nevertheless full of live entries, the oldest eighth is evicted and the
/// eviction floor raised (see [`ReplayTable::check`]). Use the same
/// `lifetime_secs` in every call, the one nonces are verified with.
pub struct ReplayTable {
    map: hashbrown::HashMap<u64, Entry>,
    capacity: usize,
    /// Newest `issued` among evicted live entries, until it expires.
    floor: Option<u32>,
}

impl core::fmt::Debug for ReplayTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayTable")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .field("floor", &self.floor)
            .finish()
    }
}

impl ReplayTable {
    /// A table holding at most `capacity` nonces (at least 1). Allocates once,
    /// here.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> ReplayTable {
        let capacity = capacity.max(1);
        ReplayTable {
            map: hashbrown::HashMap::with_capacity(capacity.saturating_mul(2)),
            capacity,
            floor: None,
        }
    }

    /// Number of nonces currently tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no nonce is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Maximum number of nonces tracked at once.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records use `nc` of the nonce `id` issued at `issued` (both from
    /// [`NonceStatus::Valid`]).
    ///
    /// * `nc == 0` → [`ReplayVerdict::Replay`].
    /// * Nonce past `lifetime_secs` → [`ReplayVerdict::Evicted`] (not recorded).
    /// * Known nonce: `nc` greater than the last recorded → `Fresh` (recorded),
    ///   otherwise `Replay`.
    /// * Unknown nonce issued at or before the eviction floor → `Evicted`.
    /// * Otherwise (first use: any `nc >= 1`) → `Fresh`, recorded; if the table
    ///   is full, expired entries are swept first and, if that frees less than
    ///   an eighth of the capacity, the oldest live entries are evicted down to
    ///   7/8 and the floor is raised to the newest evicted `issued`.
    pub fn check(
        &mut self,
        now_unix: u64,
        lifetime_secs: u32,
        id: u64,
        issued: u32,
        nc: u32,
        fingerprint: u32,
    ) -> ReplayVerdict {
        if nc == 0 {
            return ReplayVerdict::Replay;
        }
        let lifetime = i64::from(lifetime_secs);
        let nonce_age = age(now_unix, issued);
        if nonce_age > lifetime {
            return ReplayVerdict::Evicted;
        }
        if let Some(entry) = self.map.get_mut(&id) {
            return if nc > entry.last_nc {
                entry.last_nc = nc;
                entry.fingerprint = fingerprint;
                ReplayVerdict::Fresh
            } else if nc == entry.last_nc && fingerprint == entry.fingerprint {
                ReplayVerdict::Retransmission
            } else {
                ReplayVerdict::Replay
            };
        }
        self.expire_floor(now_unix, lifetime);
        if self
            .floor
            .is_some_and(|floor| nonce_age >= age(now_unix, floor))
        {
            return ReplayVerdict::Evicted;
        }
        if self.map.len() >= self.capacity {
            self.make_room(now_unix, lifetime);
        }
        self.map.insert(
            id,
            Entry {
                last_nc: nc,
                issued,
                fingerprint,
            },
        );
        ReplayVerdict::Fresh
    }

    /// Drops entries whose nonce is past its lifetime (and the eviction floor
    /// once everything below it has expired).
    pub fn sweep(&mut self, now_unix: u64, lifetime_secs: u32) {
        let lifetime = i64::from(lifetime_secs);
        self.map.retain(|_, e| age(now_unix, e.issued) <= lifetime);
        self.expire_floor(now_unix, lifetime);
    }

    /// Approximate upper bound of the memory held, in bytes: the table
    /// allocation (buckets of `(u64, Entry)` plus one control byte each, plus
    /// one SIMD group of trailing control bytes) and the struct itself. About
    /// 17 × next_power_of_two(capacity × 16/7) bytes, i.e. 39 to 78 bytes per
    /// unit of capacity.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of::<Self>() + self.map.allocation_size()
    }

    /// Forgets the floor once every nonce at or below it has expired (they are
    /// answered `Evicted` by the lifetime rule anyway).
    fn expire_floor(&mut self, now_unix: u64, lifetime: i64) {
        if self
            .floor
            .is_some_and(|floor| age(now_unix, floor) > lifetime)
        {
            self.floor = None;
        }
    }

    /// Sweeps expired entries; if that leaves less than 1/8 of the capacity
    /// free, evicts the oldest live entries down to 7/8 of the capacity and
    /// raises the floor. Two passes over the table, amortized over at least
    /// `capacity / 8` insertions.
    fn make_room(&mut self, now_unix: u64, lifetime: i64) {
        // Bucket 0 holds the oldest ages (== lifetime), BINS-1 the newest
        // (age <= 0, including nonces issued slightly in the future).
        let bin = |entry_age: i64| -> usize {
            let from_oldest = lifetime - entry_age.clamp(0, lifetime);
            let b = from_oldest.saturating_mul(BINS as i64) / (lifetime + 1);
            usize::try_from(b).map_or(BINS - 1, |b| b.min(BINS - 1))
        };
        let mut hist = [0usize; BINS];
        self.map.retain(|_, e| {
            let a = age(now_unix, e.issued);
            if a > lifetime {
                return false;
            }
            hist[bin(a)] += 1;
            true
        });
        self.expire_floor(now_unix, lifetime);

        let keep = self.capacity - self.capacity.div_ceil(8);
        let Some(mut excess) = self.map.len().checked_sub(keep).filter(|&n| n > 0) else {
            return;
        };
        // How many to evict from each bucket, oldest buckets first.
        let mut quota = [0usize; BINS];
        for (q, &h) in quota.iter_mut().zip(hist.iter()) {
            let take = h.min(excess);
            *q = take;
            excess -= take;
            if excess == 0 {
                break;
            }
        }
        let mut newest: Option<(i64, u32)> = self.floor.map(|floor| (age(now_unix, floor), floor));
        self.map.retain(|_, e| {
            let a = age(now_unix, e.issued);
            let q = &mut quota[bin(a)];
            if *q == 0 {
                return true;
            }
            *q -= 1;
            match newest {
                Some((newest_age, _)) if newest_age <= a => {}
                _ => newest = Some((a, e.issued)),
            }
            false
        });
        self.floor = newest.map(|(_, issued)| issued);
    }
}

#[cfg(test)]
mod tests {
    /// A fresh request fingerprint per call, so repeated `nc`s are replays, not
    /// retransmissions (those have their own test).
    fn next_fp() -> u32 {
        use std::sync::atomic::{AtomicU32, Ordering};
        static FP: AtomicU32 = AtomicU32::new(1);
        FP.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn base64url_matches_the_base64_crate() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let mut raw = [0u8; RAW_LEN];
        for seed in 0..2000u32 {
            for (i, b) in raw.iter_mut().enumerate() {
                *b = (seed.wrapping_mul(2_654_435_761).rotate_left(i as u32) >> 8) as u8 ^ i as u8;
            }
            let ours = encode(&raw);
            assert_eq!(ours.as_slice(), URL_SAFE_NO_PAD.encode(raw).as_bytes());
            assert_eq!(decode_raw(&ours), Some(raw));
        }
        let all_ff = encode(&[0xff; RAW_LEN]);
        assert_eq!(
            all_ff.as_slice(),
            URL_SAFE_NO_PAD.encode([0xff; RAW_LEN]).as_bytes()
        );
        for bad in [b'=', b'+', b'/', b' ', 0, 0x80] {
            let mut n = encode(&raw);
            n[5] = bad;
            assert_eq!(decode_raw(&n), None, "{bad:#x}");
        }
        assert_eq!(decode_raw(&[b'A'; NONCE_LEN - 1]), None);
    }

    #[test]
    fn retransmission_is_not_a_replay() {
        let mut t = ReplayTable::with_capacity(16);
        assert_eq!(t.check(T0, 30, 9, T0 as u32, 1, 77), ReplayVerdict::Fresh);
        assert_eq!(
            t.check(T0 + 1, 30, 9, T0 as u32, 1, 77),
            ReplayVerdict::Retransmission
        );
        // Same nc, another request: a replay.
        assert_eq!(
            t.check(T0 + 1, 30, 9, T0 as u32, 1, 78),
            ReplayVerdict::Replay
        );
        // The next request moves on; the old one retransmitted is now a replay.
        assert_eq!(
            t.check(T0 + 2, 30, 9, T0 as u32, 2, 79),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            t.check(T0 + 2, 30, 9, T0 as u32, 1, 77),
            ReplayVerdict::Replay
        );
        assert_eq!(
            t.check(T0 + 2, 30, 9, T0 as u32, 2, 79),
            ReplayVerdict::Retransmission
        );
    }

    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const T0: u64 = 1_700_000_000;
    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    const REALM: &[u8] = b"sip.example.com";

    fn nonces() -> Nonces {
        Nonces::new([0x11; 32], NonceConfig::default())
    }

    fn valid(status: NonceStatus) -> bool {
        matches!(status, NonceStatus::Valid { .. })
    }

    #[test]
    fn mint_then_verify() {
        let n = nonces();
        let nonce = n.mint(T0, IP, REALM, 1);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert!(nonce
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_'));
        match n.verify(T0 + 3, IP, REALM, &nonce) {
            NonceStatus::Valid { issued, id, .. } => {
                assert_eq!(issued, T0 as u32);
                assert_ne!(id, 0);
            }
            other => panic!("{other:?}"),
        }
        // Deterministic: same inputs, same nonce (and id).
        assert_eq!(nonce, n.mint(T0, IP, REALM, 1));
        assert_ne!(nonce, n.mint(T0 + 1, IP, REALM, 1));
        // Another salt (the next challenge in the same second): another nonce, valid too.
        let other = n.mint(T0, IP, REALM, 2);
        assert_ne!(nonce, other);
        assert!(valid(n.verify(T0, IP, REALM, &other)));
        // Lifetime boundary is inclusive.
        assert!(valid(n.verify(T0 + 30, IP, REALM, &nonce)));
        assert_eq!(n.verify(T0 + 31, IP, REALM, &nonce), NonceStatus::Stale);
        assert_eq!(n.verify(T0 + 10_000, IP, REALM, &nonce), NonceStatus::Stale);
    }

    #[test]
    fn bound_to_source_and_realm() {
        let n = nonces();
        let nonce = n.mint(T0, IP, REALM, 1);
        let other_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8));
        assert_eq!(n.verify(T0, other_ip, REALM, &nonce), NonceStatus::Forged);
        assert_eq!(
            n.verify(T0, IP, b"sip.example.org", &nonce),
            NonceStatus::Forged
        );
        assert_eq!(n.verify(T0, IP, b"", &nonce), NonceStatus::Forged);
        // IPv4 and its IPv4-mapped IPv6 form are the same client.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert!(valid(n.verify(T0, mapped, REALM, &nonce)));
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let nonce6 = n.mint(T0, v6, REALM, 1);
        assert!(valid(n.verify(T0, v6, REALM, &nonce6)));
        assert_eq!(n.verify(T0, IP, REALM, &nonce6), NonceStatus::Forged);
    }

    #[test]
    fn tampering_is_forged() {
        let n = nonces();
        let nonce = n.mint(T0, IP, REALM, 1);
        for i in 0..NONCE_LEN {
            let mut bad = nonce;
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            assert_eq!(
                n.verify(T0, IP, REALM, &bad),
                NonceStatus::Forged,
                "byte {i}"
            );
        }
        assert_eq!(n.verify(T0, IP, REALM, &nonce[..27]), NonceStatus::Forged);
        let mut long = nonce.to_vec();
        long.push(b'A');
        assert_eq!(n.verify(T0, IP, REALM, &long), NonceStatus::Forged);
        assert_eq!(n.verify(T0, IP, REALM, b""), NonceStatus::Forged);
        assert_eq!(
            n.verify(T0, IP, REALM, &[b'='; NONCE_LEN]),
            NonceStatus::Forged
        );
        assert_eq!(
            n.verify(T0, IP, REALM, &[b'+'; NONCE_LEN]),
            NonceStatus::Forged
        );
        assert_eq!(
            n.verify(T0, IP, REALM, &[b'A'; NONCE_LEN]),
            NonceStatus::Forged
        );
    }

    #[test]
    fn future_skew() {
        let n = nonces();
        let nonce = n.mint(T0 + 5, IP, REALM, 1);
        assert!(valid(n.verify(T0, IP, REALM, &nonce)));
        let nonce = n.mint(T0 + 6, IP, REALM, 1);
        assert_eq!(n.verify(T0, IP, REALM, &nonce), NonceStatus::Forged);
        let nonce = n.mint(T0 + 100_000, IP, REALM, 1);
        assert_eq!(n.verify(T0, IP, REALM, &nonce), NonceStatus::Forged);
    }

    #[test]
    fn wraps_past_2106() {
        let n = nonces();
        let t = u64::from(u32::MAX) - 2;
        let nonce = n.mint(t, IP, REALM, 1);
        assert!(valid(n.verify(t + 10, IP, REALM, &nonce)));
        assert_eq!(n.verify(t + 40, IP, REALM, &nonce), NonceStatus::Stale);
    }

    #[test]
    fn rotation() {
        let config = NonceConfig {
            lifetime_secs: 300,
            grace_secs: 30,
            max_future_skew_secs: 5,
        };
        let mut n = Nonces::new([1; 32], config);
        let old = n.mint(T0, IP, REALM, 1);
        let old_id = n.key_id();
        n.rotate([2; 32], T0 + 10);
        assert_ne!(n.key_id(), old_id, "test keys chosen not to collide");
        let new = n.mint(T0 + 10, IP, REALM, 1);
        assert!(valid(n.verify(T0 + 40, IP, REALM, &old)), "within grace");
        assert_eq!(
            n.verify(T0 + 41, IP, REALM, &old),
            NonceStatus::Stale,
            "after grace"
        );
        assert!(valid(n.verify(T0 + 41, IP, REALM, &new)));
        // Still authenticated: a forgery under the old key is Forged, not Stale.
        let mut bad = old;
        bad[27] = if bad[27] == b'A' { b'B' } else { b'A' };
        assert_eq!(n.verify(T0 + 41, IP, REALM, &bad), NonceStatus::Forged);
        // A second rotation forgets the oldest key.
        n.rotate([3; 32], T0 + 50);
        assert_eq!(n.verify(T0 + 51, IP, REALM, &old), NonceStatus::Forged);
        assert!(valid(n.verify(T0 + 51, IP, REALM, &new)));
    }

    #[test]
    fn unknown_key_is_forged() {
        let a = Nonces::new([1; 32], NonceConfig::default());
        let b = Nonces::new([9; 32], NonceConfig::default());
        let nonce = b.mint(T0, IP, REALM, 1);
        assert_eq!(a.verify(T0, IP, REALM, &nonce), NonceStatus::Forged);
    }

    #[test]
    fn colliding_key_ids_try_both() {
        let first = [0u8; 32];
        let id = Nonces::new(first, NonceConfig::default()).key_id();
        let second = (1u8..=255)
            .flat_map(|a| (0u8..=255).map(move |b| [a, b]))
            .map(|[a, b]| {
                let mut m = [0u8; 32];
                m[0] = a;
                m[31] = b;
                m
            })
            .find(|m| Nonces::new(*m, NonceConfig::default()).key_id() == id)
            .expect("a colliding id among 65k masters");
        let mut n = Nonces::new(first, NonceConfig::default());
        let old = n.mint(T0, IP, REALM, 1);
        n.rotate(second, T0);
        assert_eq!(n.key_id(), id);
        let new = n.mint(T0, IP, REALM, 1);
        assert!(valid(n.verify(T0 + 1, IP, REALM, &old)));
        assert!(valid(n.verify(T0 + 1, IP, REALM, &new)));
    }

    #[test]
    fn nodes_with_same_master_agree() {
        let a = Nonces::new([0x5a; 32], NonceConfig::default());
        let b = Nonces::new([0x5a; 32], NonceConfig::default());
        assert_eq!(a.key_id(), b.key_id());
        let nonce = a.mint(T0, IP, REALM, 1);
        assert_eq!(
            a.verify(T0 + 1, IP, REALM, &nonce),
            b.verify(T0 + 1, IP, REALM, &nonce)
        );
        assert!(valid(b.verify(T0 + 1, IP, REALM, &nonce)));
    }

    #[test]
    fn debug_hides_keys() {
        let n = Nonces::new([0x42; 32], NonceConfig::default());
        let s = format!("{n:?}");
        assert!(s.contains("key_id") && !s.contains("mac"), "{s}");
    }

    #[test]
    fn replay_basics() {
        let mut t = ReplayTable::with_capacity(8);
        let lt = 30;
        assert!(t.is_empty());
        assert_eq!(
            t.check(T0, lt, 1, T0 as u32, 0, next_fp()),
            ReplayVerdict::Replay
        );
        assert!(t.is_empty());
        assert_eq!(
            t.check(T0, lt, 1, T0 as u32, 1, next_fp()),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            t.check(T0, lt, 1, T0 as u32, 2, next_fp()),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            t.check(T0, lt, 1, T0 as u32, 2, next_fp()),
            ReplayVerdict::Replay
        );
        assert_eq!(
            t.check(T0, lt, 1, T0 as u32, 1, next_fp()),
            ReplayVerdict::Replay
        );
        assert_eq!(
            t.check(T0, lt, 1, T0 as u32, 0, next_fp()),
            ReplayVerdict::Replay
        );
        assert_eq!(
            t.check(T0, lt, 1, T0 as u32, 7, next_fp()),
            ReplayVerdict::Fresh
        );
        // First use may start at any nc >= 1.
        assert_eq!(
            t.check(T0, lt, 2, T0 as u32, 5, next_fp()),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            t.check(T0, lt, 2, T0 as u32, 5, next_fp()),
            ReplayVerdict::Replay
        );
        assert_eq!(t.len(), 2);
        // Expired nonce: never Fresh, not recorded.
        assert_eq!(
            t.check(T0 + 31, lt, 3, T0 as u32, 1, next_fp()),
            ReplayVerdict::Evicted
        );
        assert_eq!(
            t.check(T0 + 31, lt, 1, T0 as u32, 8, next_fp()),
            ReplayVerdict::Evicted
        );
        t.sweep(T0 + 30, lt);
        assert_eq!(t.len(), 2);
        t.sweep(T0 + 31, lt);
        assert!(t.is_empty());
        assert_eq!(t.capacity(), 8);
        assert!(t.memory_bytes() >= 8 * 16);
    }

    #[test]
    fn eviction_bounds_memory_and_never_lets_replays_through() {
        let cap = 64;
        let lt = 30;
        let mut t = ReplayTable::with_capacity(cap);
        let table_cap = t.map.capacity();
        let mem = t.memory_bytes();
        let mut seen: Vec<(u64, u32, u64)> = Vec::new();
        // 4 × capacity live nonces within one lifetime, one new per step.
        for i in 0..(4 * cap as u64) {
            let now = T0 + i / 16; // 16 per second: all live
            let issued = now as u32;
            let id = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            assert_eq!(
                t.check(now, lt, id, issued, 1, next_fp()),
                ReplayVerdict::Fresh
            );
            assert!(t.len() <= cap);
            seen.push((id, issued, now));
            // Replaying anything seen so far is never Fresh.
            for &(sid, sissued, _) in &seen {
                assert_ne!(
                    t.check(now, lt, sid, sissued, 1, next_fp()),
                    ReplayVerdict::Fresh
                );
            }
        }
        assert_eq!(t.map.capacity(), table_cap, "never reallocated");
        assert_eq!(t.memory_bytes(), mem);
        // The oldest entries were the ones evicted, and they now get Evicted.
        let now = T0 + (4 * cap as u64) / 16;
        let (oldest, oldest_issued, _) = seen[0];
        assert_eq!(
            t.check(now, lt, oldest, oldest_issued, 2, next_fp()),
            ReplayVerdict::Evicted
        );
        // The newest are still tracked normally.
        let &(newest, newest_issued, _) = seen.last().unwrap();
        assert_eq!(
            t.check(now, lt, newest, newest_issued, 2, next_fp()),
            ReplayVerdict::Fresh
        );
        // A brand-new nonce issued after the floor is accepted.
        assert_eq!(
            t.check(now, lt, 42, now as u32, 1, next_fp()),
            ReplayVerdict::Fresh
        );
        // Once everything below the floor has expired, the floor is forgotten.
        t.sweep(now + 60, lt);
        assert!(t.is_empty());
        assert_eq!(t.floor, None);
    }

    #[test]
    fn same_second_eviction_is_safe() {
        // All nonces issued in the same second: whichever are evicted, every
        // replay is still caught.
        let cap = 16;
        let mut t = ReplayTable::with_capacity(cap);
        let ids: Vec<u64> = (1..=100).collect();
        let mut fresh = 0;
        for &id in &ids {
            // Once the floor reached T0, unknown nonces of that second are
            // Evicted (re-challenged): safe, never Replay for a first use.
            match t.check(T0, 30, id, T0 as u32, 3, next_fp()) {
                ReplayVerdict::Fresh => fresh += 1,
                ReplayVerdict::Evicted => {}
                ReplayVerdict::Replay | ReplayVerdict::Retransmission => {
                    panic!("first use reported as replay or retransmission")
                }
            }
            assert!(t.len() <= cap);
        }
        assert!(fresh >= cap);
        for &id in &ids {
            for nc in 1..=3 {
                assert_ne!(
                    t.check(T0, 30, id, T0 as u32, nc, next_fp()),
                    ReplayVerdict::Fresh
                );
            }
        }
    }

    #[test]
    fn churn_never_reallocates() {
        let cap = 1000;
        let mut t = ReplayTable::with_capacity(cap);
        // hashbrown's capacity() can shrink with tombstones; the allocation must not change.
        let allocation = t.map.allocation_size();
        let mut id = 0u64;
        for sec in 0..200u64 {
            for _ in 0..50 {
                id = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let now = T0 + sec;
                assert_eq!(
                    t.check(now, 30, id, now as u32, 1, next_fp()),
                    ReplayVerdict::Fresh
                );
            }
            if sec % 3 == 0 {
                t.sweep(T0 + sec, 30);
            }
            assert!(t.len() <= cap);
        }
        assert_eq!(t.map.allocation_size(), allocation);
    }

    #[test]
    fn zero_capacity_is_one() {
        let mut t = ReplayTable::with_capacity(0);
        assert_eq!(t.capacity(), 1);
        assert_eq!(
            t.check(T0, 30, 1, T0 as u32, 1, next_fp()),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            t.check(T0 + 1, 30, 2, T0 as u32 + 1, 1, next_fp()),
            ReplayVerdict::Fresh
        );
        assert_eq!(t.len(), 1);
        assert_ne!(
            t.check(T0 + 1, 30, 1, T0 as u32, 2, next_fp()),
            ReplayVerdict::Fresh
        );
    }

    proptest! {
        #[test]
        fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), now in any::<u64>()) {
            let n = nonces();
            prop_assert_ne!(n.verify(now, IP, REALM, &bytes), NonceStatus::Stale);
        }

        #[test]
        fn random_wellformed_nonces_are_forged(s in "[A-Za-z0-9_-]{28}", now in any::<u64>()) {
            let n = nonces();
            prop_assert_eq!(n.verify(now, IP, REALM, s.as_bytes()), NonceStatus::Forged);
        }

        #[test]
        fn replay_never_fresh_twice(ops in proptest::collection::vec((0u64..40, 0u32..4, 0u64..100), 1..400)) {
            // (id, nc, seconds offset) — a given (id, nc) is Fresh at most once.
            let mut t = ReplayTable::with_capacity(8);
            let mut fresh = std::collections::HashSet::new();
            let mut now = T0;
            for (id, nc, dt) in ops {
                now += dt % 3;
                let issued = (T0 + id) as u32; // id determines issued, like a tag does
                if t.check(now, 30, id, issued, nc, next_fp()) == ReplayVerdict::Fresh {
                    prop_assert!(fresh.insert((id, nc)), "replayed {id} {nc}");
                }
                prop_assert!(t.len() <= 8);
            }
        }
    }
}
