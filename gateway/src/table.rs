//! A fixed-size table for the policy's per-terminal, per-session and per-source state: allocated
//! once, never grows, O(1) per operation, a few bytes of overhead per entry.
//!
//! Layout: `n` buckets of [`WAYS`] slots. Each slot has a 64-bit tag (0 = empty) in a tag array
//! (one cache line per bucket) and its value in a value array; the key itself is not stored.
//! A key has two candidate buckets (bucketized cuckoo hashing: `b1` from the key, `b2 =
//! alt(b1, tag)`, an involution, so an entry can always find its other bucket from its tag). A
//! lookup compares the tags of the two buckets. An insertion takes an empty slot of either
//! bucket, else moves entries to their other bucket along a short path found breadth-first
//! (bounded), so the table fills to its capacity (about 94 % of its slots) before it refuses.
//!
//! Identity: the tag and the bucket pair stand for the key. Keys are mixed with a per-table
//! secret seed, so two different keys share a tag and a bucket pair with probability about
//! 2⁻⁶³ per pair, and an attacker, who does not know the seed, cannot search for such a pair or
//! aim keys at one bucket.
//!
//! When the table holds its capacity, a new key replaces an entry of its own two buckets: an
//! idle one first (untouched for the idle time the caller gives), else the least recently seen;
//! pinned entries (suspended, banned) are never replaced: if all sixteen candidates are pinned
//! the key is refused and counted ([`Table::full`]).

#![forbid(unsafe_code)]

use std::hash::Hasher;
use std::time::Duration;

use quanta::Instant;
use siphasher::sip::SipHasher13;

/// Slots per bucket: eight 64-bit tags fill one cache line.
pub const WAYS: usize = 8;

/// Slots allocated per entry of capacity, as a fraction: 17/16 (cuckoo hashing with two
/// buckets of eight reaches this load without refusing).
const SLOTS_NUM: usize = 17;
const SLOTS_DEN: usize = 16;

/// Most slots the breadth-first search for a free slot visits in one insertion.
const SEARCH: usize = 128;

/// What the table needs to know about a value.
pub trait Entry: Copy {
    /// Suspended or banned: never replaced by a new key (only removed by its owner).
    fn pinned(&self) -> bool;
    /// When the entry was last used.
    fn last_seen(&self) -> Instant;
}

/// The table (see the module documentation).
#[derive(Debug)]
pub struct Table<V> {
    tags: Box<[[u64; WAYS]]>,
    /// `Some` exactly where the tag is not 0 (an entry type with a niche, e.g. a `bool`, makes
    /// the `Option` free).
    values: Box<[Option<V>]>,
    seed: [u64; 3],
    len: usize,
    cap: usize,
    /// Insertions refused because every candidate slot was pinned.
    full: u64,
}

/// A table's seed from a secret `key`, distinct per `domain` (one domain per table).
pub fn seed(key: &[u8; 16], domain: u8) -> [u64; 3] {
    let mut seed = [0u64; 3];
    for (i, s) in seed.iter_mut().enumerate() {
        let mut h = SipHasher13::new_with_key(key);
        h.write_u8(0x7a);
        h.write_u8(domain);
        h.write_u8(i as u8);
        *s = h.finish();
    }
    seed
}

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// `x` scaled into `0..n` (Lemire's multiply-shift; `n` needs not be a power of two).
#[inline]
fn scale(x: u64, n: usize) -> usize {
    ((u128::from(x) * n as u128) >> 64) as usize
}

impl<V: Entry> Table<V> {
    /// A table for `cap` entries (at least one bucket), keys mixed under `seed`.
    pub fn new(cap: usize, seed: [u64; 3]) -> Self {
        let buckets = (cap.max(1) * SLOTS_NUM)
            .div_ceil(SLOTS_DEN)
            .div_ceil(WAYS)
            .max(2);
        Table {
            tags: vec![[0u64; WAYS]; buckets].into_boxed_slice(),
            values: vec![None; buckets * WAYS].into_boxed_slice(),
            seed,
            len: 0,
            cap,
            full: 0,
        }
    }

    fn buckets(&self) -> usize {
        self.tags.len()
    }

    /// The key's tag (never 0) and first bucket.
    #[inline]
    fn locate(&self, key: u128) -> (u64, usize) {
        // wyhash-style folded multiplications; the constants keep small keys and seeds from
        // folding to small products.
        let (lo, hi) = (key as u64, (key >> 64) as u64);
        let a = fold(
            lo ^ self.seed[0] ^ 0x243F_6A88_85A3_08D3,
            hi ^ self.seed[1] ^ 0x1319_8A2E_0370_7344,
        );
        let h = fold(
            a ^ 0xA409_3822_299F_31D0,
            self.seed[2] ^ 0x082E_FA98_EC4E_6C89,
        );
        let tag = fold(
            h ^ 0x4528_21E6_38D0_1377,
            lo.rotate_left(29) ^ hi ^ 0xBE54_66CF_34E9_0C6C,
        );
        (tag | 1, scale(h, self.buckets()))
    }

    /// The other bucket of an entry with `tag` in bucket `b` (an involution:
    /// `alt(alt(b, t), t) == b`).
    #[inline]
    fn alt(&self, b: usize, tag: u64) -> usize {
        let n = self.buckets();
        let h = scale(tag.wrapping_mul(0x9E37_79B9_7F4A_7C15), n);
        (h + n - b) % n
    }

    #[inline]
    fn find(&self, key: u128) -> Option<usize> {
        let (tag, b1) = self.locate(key);
        let b2 = self.alt(b1, tag);
        for b in [b1, b2] {
            if let Some(w) = self.tags[b].iter().position(|&t| t == tag) {
                return Some(b * WAYS + w);
            }
        }
        None
    }

    /// The value of `key`.
    pub fn get(&self, key: u128) -> Option<&V> {
        self.find(key).and_then(|i| self.values[i].as_ref())
    }

    /// The value of `key`, to change.
    pub fn get_mut(&mut self, key: u128) -> Option<&mut V> {
        self.find(key).and_then(|i| self.values[i].as_mut())
    }

    /// Removes `key`; its value if it was there.
    pub fn remove(&mut self, key: u128) -> Option<V> {
        let i = self.find(key)?;
        self.tags[i / WAYS][i % WAYS] = 0;
        self.len -= 1;
        self.values[i].take()
    }

    /// The entry for `key`, inserting `make()` if absent. When the table holds its capacity
    /// (or, rarely, no free slot is reachable), an idle or else the least recently seen
    /// unpinned entry of the key's two buckets is replaced; `None` when all of them are pinned.
    pub fn upsert(
        &mut self,
        key: u128,
        now: Instant,
        idle: Duration,
        make: impl FnOnce() -> V,
    ) -> Option<&mut V> {
        if let Some(i) = self.find(key) {
            return self.values[i].as_mut();
        }
        let (tag, b1) = self.locate(key);
        let b2 = self.alt(b1, tag);
        let slot = if self.len < self.cap {
            self.free_slot(b1, b2)
        } else {
            None
        };
        let i = match slot {
            Some(i) => {
                self.len += 1;
                i
            }
            None => match self.victim(b1, b2, now, idle) {
                Some(i) => i,
                None => {
                    self.full += 1;
                    return None;
                }
            },
        };
        self.tags[i / WAYS][i % WAYS] = tag;
        Some(self.values[i].insert(make()))
    }

    /// An empty slot of `b1` or `b2`, made by moving entries to their other buckets if needed.
    fn free_slot(&mut self, b1: usize, b2: usize) -> Option<usize> {
        for b in [b1, b2] {
            if let Some(w) = self.tags[b].iter().position(|&t| t == 0) {
                return Some(b * WAYS + w);
            }
        }
        // Breadth-first over slots: node = (slot, parent node). A node's entry can move to its
        // other bucket; the first such bucket with an empty slot ends the search.
        let mut nodes = [(0usize, usize::MAX); SEARCH];
        let mut len = 0;
        for b in [b1, b2] {
            for w in 0..WAYS {
                nodes[len] = (b * WAYS + w, usize::MAX);
                len += 1;
            }
        }
        let mut next = 0;
        while next < len {
            let (slot, _) = nodes[next];
            let tag = self.tags[slot / WAYS][slot % WAYS];
            let to = self.alt(slot / WAYS, tag);
            if let Some(w) = self.tags[to].iter().position(|&t| t == 0) {
                // Move along the path, from the free end back to the root.
                let mut free = to * WAYS + w;
                let mut at = next;
                loop {
                    let (s, parent) = nodes[at];
                    self.tags[free / WAYS][free % WAYS] = self.tags[s / WAYS][s % WAYS];
                    self.values[free] = self.values[s].take();
                    self.tags[s / WAYS][s % WAYS] = 0;
                    free = s;
                    if parent == usize::MAX {
                        return Some(free);
                    }
                    at = parent;
                }
            }
            // A bucket is expanded once: a path never passes the same slot twice.
            if !nodes[..len].iter().any(|&(s, _)| s / WAYS == to) {
                for w in 0..WAYS {
                    if len == SEARCH {
                        break;
                    }
                    nodes[len] = (to * WAYS + w, next);
                    len += 1;
                }
            }
            next += 1;
        }
        None
    }

    /// The unpinned slot of `b1`/`b2` to replace: idle first, else the least recently seen.
    fn victim(&self, b1: usize, b2: usize, now: Instant, idle: Duration) -> Option<usize> {
        let mut best: Option<(usize, Instant)> = None;
        for b in [b1, b2] {
            for w in 0..WAYS {
                let i = b * WAYS + w;
                if self.tags[b][w] == 0 {
                    // Only when the table holds its capacity: free slots are not ours to take.
                    continue;
                }
                let Some(v) = &self.values[i] else { continue };
                if v.pinned() {
                    continue;
                }
                if now.saturating_duration_since(v.last_seen()) >= idle {
                    return Some(i);
                }
                if best.is_none_or(|(_, seen)| v.last_seen() < seen) {
                    best = Some((i, v.last_seen()));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// Keeps the entries for which `keep` says true (it may change them).
    pub fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        for (b, tags) in self.tags.iter_mut().enumerate() {
            for (w, tag) in tags.iter_mut().enumerate() {
                let slot = &mut self.values[b * WAYS + w];
                if let Some(v) = slot {
                    if !keep(v) {
                        *tag = 0;
                        *slot = None;
                        self.len -= 1;
                    }
                }
            }
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Insertions refused because every candidate slot was pinned.
    pub fn full(&self) -> u64 {
        self.full
    }

    /// Bytes allocated (at construction; never changes).
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.tags) + core::mem::size_of_val(&*self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct V {
        id: u64,
        pinned: bool,
        seen: Instant,
    }

    impl Entry for V {
        fn pinned(&self) -> bool {
            self.pinned
        }
        fn last_seen(&self) -> Instant {
            self.seen
        }
    }

    const IDLE: Duration = Duration::from_secs(60);

    fn clock() -> (quanta::Clock, std::sync::Arc<quanta::Mock>) {
        let (c, m) = quanta::Clock::mock();
        m.increment(Duration::from_secs(1000));
        (c, m)
    }

    #[test]
    fn the_table_fills_to_its_capacity_before_it_refuses_a_pinned_key() {
        for cap in [1, 7, 8, 100, 1024, 4096, 50_000] {
            let (c, _) = clock();
            let now = c.now();
            let mut t: Table<V> = Table::new(cap, [1, 2, 3]);
            for id in 0..cap as u64 {
                let key = u128::from(id) * 0x1_0000_0001;
                let v = t.upsert(key, now, IDLE, || V {
                    id,
                    pinned: true,
                    seen: now,
                });
                assert!(v.is_some(), "cap {cap}: entry {id} refused at {}", t.len());
            }
            assert_eq!(t.len(), cap);
            assert_eq!(t.full(), 0);
            for id in 0..cap as u64 {
                assert_eq!(
                    t.get(u128::from(id) * 0x1_0000_0001).map(|v| v.id),
                    Some(id)
                );
            }
            // Full of pinned entries: a new key is refused and counted, nothing is lost.
            assert!(t
                .upsert(u128::MAX, now, IDLE, || V {
                    id: 0,
                    pinned: false,
                    seen: now
                })
                .is_none());
            assert_eq!(t.full(), 1);
            assert_eq!(t.len(), cap);
        }
    }

    #[test]
    fn at_capacity_a_new_key_replaces_the_least_recently_seen_of_its_buckets_never_a_pinned_one() {
        let (c, m) = clock();
        let mut t: Table<V> = Table::new(64, [9, 9, 9]);
        let start = c.now();
        for id in 0..64u64 {
            m.increment(Duration::from_millis(1));
            let now = c.now();
            t.upsert(u128::from(id), now, IDLE, || V {
                id,
                pinned: false,
                seen: now,
            })
            .unwrap();
        }
        m.increment(Duration::from_secs(1));
        let now = c.now();
        for new in 1000..1040u64 {
            let (tag, b1) = t.locate(u128::from(new));
            let b2 = t.alt(b1, tag);
            let mut candidates: Vec<V> = Vec::new();
            for b in [b1, b2] {
                for w in 0..WAYS {
                    if t.tags[b][w] != 0 {
                        candidates.extend(t.values[b * WAYS + w]);
                    }
                }
            }
            let oldest = candidates
                .iter()
                .filter(|v| !v.pinned)
                .min_by_key(|v| v.seen)
                .copied();
            let got = t.upsert(u128::from(new), now, IDLE, || V {
                id: new,
                pinned: true,
                seen: now,
            });
            assert_eq!(got.is_some(), oldest.is_some());
            if let Some(old) = oldest {
                assert!(
                    t.get(u128::from(old.id)).is_none(),
                    "{new} should have replaced {}",
                    old.id
                );
            }
            assert_eq!(t.len(), 64);
        }
        // Idle entries go first, whatever their age order.
        m.increment(IDLE);
        let now = c.now();
        let idle_before = (0..64u64)
            .filter(|&id| t.get(u128::from(id)).is_some())
            .count();
        assert!(
            t.upsert(u128::from(5000u64), now, IDLE, || V {
                id: 5000,
                pinned: false,
                seen: now
            })
            .is_some()
                || idle_before == 0
        );
        // All pinned now: nothing is replaced.
        t.retain(|v| {
            v.pinned = true;
            true
        });
        let full = t.full();
        assert!(t
            .upsert(u128::from(9999u64), now, IDLE, || V {
                id: 0,
                pinned: false,
                seen: now
            })
            .is_none());
        assert_eq!(t.full(), full + 1);
        assert_eq!(t.len(), 64);
        let _ = start;
    }

    #[test]
    fn retain_and_remove_keep_the_count() {
        let (c, _) = clock();
        let now = c.now();
        let mut t: Table<V> = Table::new(1000, [5, 6, 7]);
        for id in 0..1000u64 {
            t.upsert(u128::from(id), now, IDLE, || V {
                id,
                pinned: false,
                seen: now,
            });
        }
        t.retain(|v| v.id % 3 != 0);
        assert_eq!(t.len(), 666);
        assert_eq!(t.remove(1).map(|v| v.id), Some(1));
        assert_eq!(t.remove(1), None);
        assert_eq!(t.len(), 665);
        assert!(t.get(3).is_none() && t.get(2).is_some());
    }

    #[test]
    fn memory_is_at_most_seventeen_sixteenths_of_the_capacity_plus_a_bucket() {
        let t: Table<V> = Table::new(1_000_000, [1, 1, 1]);
        let per_slot = 8 + core::mem::size_of::<Option<V>>();
        assert!(t.memory_bytes() <= (1_000_000 * 17 / 16 + WAYS) * per_slot);
    }

    proptest! {
        /// Random operations agree with a `HashMap` model as long as nothing is evicted (the
        /// capacity is never reached).
        #[test]
        fn operations_agree_with_a_map(
            ops in proptest::collection::vec((0u8..3, 0u64..300), 1..2000),
            seed in any::<[u64; 3]>(),
        ) {
            let (c, _) = clock();
            let now = c.now();
            let mut t: Table<V> = Table::new(300, seed);
            let mut model: HashMap<u64, u64> = HashMap::new();
            for (step, (op, k)) in ops.into_iter().enumerate() {
                let key = u128::from(k) << 64 | u128::from(k);
                match op {
                    0 => {
                        let v = t.upsert(key, now, IDLE, || V { id: step as u64, pinned: true, seen: now });
                        prop_assert!(v.is_some());
                        model.entry(k).or_insert(step as u64);
                    }
                    1 => prop_assert_eq!(t.remove(key).map(|v| v.id), model.remove(&k)),
                    _ => prop_assert_eq!(t.get(key).map(|v| v.id), model.get(&k).copied()),
                }
                prop_assert_eq!(t.len(), model.len());
            }
        }
    }
}
