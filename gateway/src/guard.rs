//! The account guard: a per-account budget of evaluated guesses from sources that are not
//! known-good, and the known-good sources of each account. Shared by every worker.
//!
//! Layer: sans-IO protocol state. Time is passed in (UNIX seconds, the clock nonces carry, so
//! workers and later nodes agree on the periods); nothing here reads a clock, allocates after
//! construction, takes a lock or does I/O. The state is atomics in arrays allocated once, so one
//! `Arc<AccountGuard>` serves every worker lock-free and the budget is exact across them.
//!
//! The guarantee (`docs/configuration.md`, "The account guarantee"): per account, guesses
//! *evaluated* (a digest computed) from sources that are not known-good for it number at most
//! `B = auth.account_budget` per period `[k·T, (k+1)·T)` of UNIX time, `T = auth.failed_suspend`,
//! whatever the number of sources, ports or workers. A guess reserves one unit of the budget
//! *before* it is evaluated ([`AccountGuard::reserve`], a compare-and-swap on the account's
//! slot, so two workers can never both take the last unit); a guess that turns out right gives
//! it back ([`AccountGuard::refund`]), so only wrong guesses use the budget. When the budget is
//! used up, requests of such sources are not evaluated until the period ends (even with the
//! right password).
//!
//! A source (its network, `auth.ipv4_prefix`/`ipv6_prefix`) that authenticated the account
//! within `auth.known_good_window` is **known-good**: its guesses are not charged to the
//! budget, so an attacker who exhausts it cannot lock the real phone out. Each account
//! remembers its `limits.known_good_per_account` most recent known-good networks; a new one
//! replaces the least recently seen. A known-good source's own failures still count against
//! its terminal (and, by `suspend_scope`, suspend it); when the policy tables are full of
//! suspensions and bans and cannot track it, they are counted in its slot instead
//! ([`AccountGuard::known_good_failure`]: `max_retry` of them end the known-good status).
//!
//! Usernames that are not accounts get the same treatment from a direct-mapped table of
//! decoy budgets (`limits.max_terminals` slots), so a scanner cannot tell a real account from
//! an unknown name by when its guesses stop being answered. A decoy slot is taken over by a
//! colliding name (no password is at stake there, so an approximate count is harmless).
//!
//! Memory: `8 + 24 × known_good_per_account` bytes per password account plus 8 bytes per
//! decoy slot ([`AccountGuard::memory_bytes`]), fixed at construction; a reload builds a new
//! guard for the new accounts and copies each kept account's state by name
//! ([`AccountGuard::rebuild`]).

#![forbid(unsafe_code)]

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::credentials::{AccountId, CredentialStore};

/// Whose budget a guess is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// A password account.
    Account(AccountId),
    /// A username that is no account: its decoy slot, by a keyed tag of the name.
    Decoy(u64),
}

/// Outcome of [`AccountGuard::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an exhausted budget means the guess must not be evaluated"]
pub enum Reserve {
    /// One unit reserved: evaluate the guess, then [`AccountGuard::refund`] it if it was right.
    Granted {
        /// It was the last unit of the period: the account is protected from now on.
        last: bool,
    },
    /// The guard is off (`account_budget = 0`): evaluate, nothing to refund.
    Unlimited,
    /// The budget of this period is used up: do not evaluate.
    Exhausted,
}

/// A known-good network of an account: a keyed tag of the network and when it last
/// authenticated.
#[derive(Debug, Default)]
struct KnownSlot {
    tag: AtomicU64,
    at: AtomicU64,
    /// Consecutive failures counted here while the policy tables could not track this
    /// network (see [`AccountGuard::known_good_failure`]).
    fails: AtomicU64,
}

/// Budgets and known-good sources of every account (see the module doc).
#[derive(Debug)]
pub struct AccountGuard {
    /// Per account: `period << 32 | wrong guesses charged in that period`.
    budgets: Box<[AtomicU64]>,
    /// `per_account` slots per account.
    known: Box<[KnownSlot]>,
    per_account: usize,
    /// Decoy budgets: `tag (32) << 32 | period (16) << 16 | count (16)`.
    decoys: Box<[AtomicU64]>,
    hasher: hashbrown::DefaultHashBuilder,
}

fn pack(period: u32, count: u32) -> u64 {
    (u64::from(period) << 32) | u64::from(count)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

impl AccountGuard {
    /// A guard for the accounts of `store`: `per_account` known-good slots each (at least
    /// 1), `decoys` decoy slots (at least 1). Allocates everything now.
    pub fn new(store: &CredentialStore, per_account: usize, decoys: usize) -> AccountGuard {
        let per_account = per_account.max(1);
        let accounts = store.len();
        AccountGuard {
            budgets: (0..accounts).map(|_| AtomicU64::new(0)).collect(),
            known: (0..accounts * per_account)
                .map(|_| KnownSlot::default())
                .collect(),
            per_account,
            decoys: (0..decoys.max(1)).map(|_| AtomicU64::new(0)).collect(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    /// The guard for a reloaded credential store: the same tags, and the budget and known-good
    /// sources of every account that `old` also has, found by name.
    pub fn rebuild(
        &self,
        old: &CredentialStore,
        new: &CredentialStore,
        per_account: usize,
    ) -> AccountGuard {
        let mut next = AccountGuard::new(new, per_account, self.decoys.len());
        next.hasher = self.hasher.clone();
        for (i, budget) in next.budgets.iter().enumerate() {
            let Some(name) = new.account(AccountId(i as u32)).map(|a| a.name.as_bytes()) else {
                continue;
            };
            let Some((old_id, _)) = old.by_username(name) else {
                continue;
            };
            let o = old_id.0 as usize;
            if let Some(b) = self.budgets.get(o) {
                budget.store(b.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            let keep = self.per_account.min(next.per_account);
            for k in 0..keep {
                let (Some(src), Some(dst)) = (
                    self.known.get(o * self.per_account + k),
                    next.known.get(i * next.per_account + k),
                ) else {
                    continue;
                };
                dst.tag
                    .store(src.tag.load(Ordering::Relaxed), Ordering::Relaxed);
                dst.at
                    .store(src.at.load(Ordering::Relaxed), Ordering::Relaxed);
                dst.fails
                    .store(src.fails.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        for (d, s) in next.decoys.iter().zip(self.decoys.iter()) {
            d.store(s.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        next
    }

    fn tag<T: Hash>(&self, domain: u8, v: T) -> u64 {
        // Never 0: 0 marks an empty slot.
        self.hasher.hash_one((domain, v)) | 1
    }

    /// The keyed tag of a network (from `Policy::source_net`), for the known-good slots.
    pub fn network_tag(&self, net: std::net::IpAddr, prefix: u8) -> u64 {
        self.tag(1, (net, prefix))
    }

    /// The decoy slot of a tag (its low bit is always set: index by the others).
    fn decoy_slot(&self, tag: u64) -> &AtomicU64 {
        &self.decoys[((tag >> 1) % self.decoys.len() as u64) as usize]
    }

    /// Whom a guess for `username` is charged to.
    pub fn charge(&self, account: Option<AccountId>, username: &[u8]) -> Charge {
        match account {
            Some(id) => Charge::Account(id),
            None => Charge::Decoy(self.tag(2, username)),
        }
    }

    /// The period (of `period_secs`) that UNIX time `unix` falls in.
    pub fn period(unix: u64, period_secs: u32) -> u32 {
        (unix / u64::from(period_secs.max(1))) as u32
    }

    /// Reserve one guess of `budget` in `period` for `charge`. `budget == 0`: unlimited.
    pub fn reserve(&self, charge: Charge, period: u32, budget: u16) -> Reserve {
        if budget == 0 {
            return Reserve::Unlimited;
        }
        let budget = u32::from(budget);
        match charge {
            Charge::Account(id) => {
                let Some(slot) = self.budgets.get(id.0 as usize) else {
                    // An account id from another store (a reload in progress): not trackable.
                    return Reserve::Exhausted;
                };
                let r = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                    let (p, n) = unpack(v);
                    match (p == period, n) {
                        (false, _) => Some(pack(period, 1)),
                        (true, n) if n < budget => Some(pack(period, n + 1)),
                        (true, _) => None,
                    }
                });
                match r {
                    Ok(prev) => {
                        let (p, n) = unpack(prev);
                        let taken = if p == period { n + 1 } else { 1 };
                        Reserve::Granted {
                            last: taken >= budget,
                        }
                    }
                    Err(_) => Reserve::Exhausted,
                }
            }
            Charge::Decoy(tag) => {
                let slot = self.decoy_slot(tag);
                let (t, p) = ((tag >> 32) as u32, period as u16);
                let r = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                    let (vt, vp, n) = ((v >> 32) as u32, (v >> 16) as u16, v as u16);
                    let fresh = (u64::from(t) << 32) | (u64::from(p) << 16) | 1;
                    if vt != t || vp != p {
                        Some(fresh)
                    } else if u32::from(n) < budget {
                        Some(v + 1)
                    } else {
                        None
                    }
                });
                match r {
                    Ok(prev) => {
                        let same = (prev >> 32) as u32 == t && (prev >> 16) as u16 == p;
                        let taken = if same { u32::from(prev as u16) + 1 } else { 1 };
                        Reserve::Granted {
                            last: taken >= budget,
                        }
                    }
                    Err(_) => Reserve::Exhausted,
                }
            }
        }
    }

    /// Give back a unit reserved in `period` (the guess was right, or was not evaluated after
    /// all).
    pub fn refund(&self, charge: Charge, period: u32) {
        match charge {
            Charge::Account(id) => {
                if let Some(slot) = self.budgets.get(id.0 as usize) {
                    let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                        let (p, n) = unpack(v);
                        (p == period && n > 0).then(|| pack(p, n - 1))
                    });
                }
            }
            Charge::Decoy(tag) => {
                let slot = self.decoy_slot(tag);
                let (t, p) = ((tag >> 32) as u32, period as u16);
                let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                    let (vt, vp, n) = ((v >> 32) as u32, (v >> 16) as u16, v as u16);
                    (vt == t && vp == p && n > 0).then(|| v - 1)
                });
            }
        }
    }

    /// Wrong guesses charged to `charge` in `period` so far.
    pub fn charged(&self, charge: Charge, period: u32) -> u32 {
        match charge {
            Charge::Account(id) => self.budgets.get(id.0 as usize).map_or(0, |s| {
                let (p, n) = unpack(s.load(Ordering::Acquire));
                if p == period {
                    n
                } else {
                    0
                }
            }),
            Charge::Decoy(tag) => {
                let v = self.decoy_slot(tag).load(Ordering::Acquire);
                let same =
                    (v >> 32) as u32 == (tag >> 32) as u32 && (v >> 16) as u16 == period as u16;
                if same {
                    u32::from(v as u16)
                } else {
                    0
                }
            }
        }
    }

    fn slots(&self, id: AccountId) -> &[KnownSlot] {
        let start = (id.0 as usize).saturating_mul(self.per_account);
        self.known
            .get(start..start.saturating_add(self.per_account))
            .unwrap_or_default()
    }

    /// Whether the network `tag` authenticated `account` at most `window_secs` before `unix`.
    pub fn is_known_good(&self, account: AccountId, tag: u64, unix: u64, window_secs: u64) -> bool {
        window_secs > 0
            && self.slots(account).iter().any(|s| {
                s.tag.load(Ordering::Acquire) == tag
                    && unix.saturating_sub(s.at.load(Ordering::Acquire)) <= window_secs
            })
    }

    /// The network `tag` authenticated `account` at `unix`: remember it (replacing the least
    /// recently seen network of the account when all slots are taken).
    pub fn remember(&self, account: AccountId, tag: u64, unix: u64) {
        let slots = self.slots(account);
        if let Some(s) = slots.iter().find(|s| s.tag.load(Ordering::Acquire) == tag) {
            s.at.fetch_max(unix, Ordering::AcqRel);
            s.fails.store(0, Ordering::Release);
            return;
        }
        // The least recently seen (an empty slot has `at == 0`). Two workers replacing at once
        // may pick the same slot: one network is then not remembered, which only fails closed.
        if let Some(s) = slots.iter().min_by_key(|s| s.at.load(Ordering::Acquire)) {
            s.tag.store(tag, Ordering::Release);
            s.at.store(unix, Ordering::Release);
            s.fails.store(0, Ordering::Release);
        }
    }

    /// A failure of the known-good network `tag` of `account`, counted in its slot (when the
    /// policy tables are full and cannot track it: the slot is its tracking). At `limit`
    /// consecutive failures (0: never) the network stops being known-good; true then.
    pub fn known_good_failure(&self, account: AccountId, tag: u64, limit: u16) -> bool {
        let Some(s) = self
            .slots(account)
            .iter()
            .find(|s| s.tag.load(Ordering::Acquire) == tag)
        else {
            return true;
        };
        let fails = s.fails.fetch_add(1, Ordering::AcqRel) + 1;
        if limit > 0 && fails >= u64::from(limit) {
            s.tag.store(0, Ordering::Release);
            s.fails.store(0, Ordering::Release);
            return true;
        }
        false
    }

    /// Bytes allocated (fixed at construction).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.budgets)
            + std::mem::size_of_val(&*self.known)
            + std::mem::size_of_val(&*self.decoys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(n: usize) -> CredentialStore {
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!("[[account]]\nname = \"u{i}\"\npassword = \"p\"\n"));
        }
        CredentialStore::parse(&text, "users.toml", "sipgw").unwrap()
    }

    #[test]
    fn the_budget_is_exact_and_refunds_right_guesses() {
        let g = AccountGuard::new(&store(2), 4, 1024);
        let a = Charge::Account(AccountId(0));
        for i in 0..6 {
            assert_eq!(g.reserve(a, 7, 6), Reserve::Granted { last: i == 5 });
        }
        assert_eq!(g.reserve(a, 7, 6), Reserve::Exhausted);
        g.refund(a, 7);
        assert_eq!(g.charged(a, 7), 5);
        assert_eq!(g.reserve(a, 7, 6), Reserve::Granted { last: true });
        assert_eq!(g.reserve(a, 7, 6), Reserve::Exhausted);
        // The other account and the next period are untouched.
        assert_eq!(
            g.reserve(Charge::Account(AccountId(1)), 7, 6),
            Reserve::Granted { last: false }
        );
        assert_eq!(g.reserve(a, 8, 6), Reserve::Granted { last: false });
        assert_eq!(g.charged(a, 8), 1);
        // A refund for a past period changes nothing.
        g.refund(a, 7);
        assert_eq!(g.charged(a, 8), 1);
        assert_eq!(g.reserve(a, 8, 0), Reserve::Unlimited);
    }

    #[test]
    fn threads_never_take_more_than_the_budget() {
        let g = std::sync::Arc::new(AccountGuard::new(&store(1), 4, 1024));
        let a = Charge::Account(AccountId(0));
        let granted: u32 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let g = &g;
                    s.spawn(move || {
                        (0..10_000)
                            .filter(|_| matches!(g.reserve(a, 1, 6), Reserve::Granted { .. }))
                            .count() as u32
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, 6);
    }

    #[test]
    fn decoys_behave_like_accounts() {
        let g = AccountGuard::new(&store(1), 4, 1024);
        let d = g.charge(None, b"nobody");
        assert!(matches!(d, Charge::Decoy(_)));
        for i in 0..6 {
            assert_eq!(g.reserve(d, 3, 6), Reserve::Granted { last: i == 5 });
        }
        assert_eq!(g.reserve(d, 3, 6), Reserve::Exhausted);
        assert_eq!(g.reserve(d, 4, 6), Reserve::Granted { last: false });
    }

    #[test]
    fn known_good_networks_expire_and_the_oldest_is_replaced() {
        let g = AccountGuard::new(&store(1), 2, 1024);
        let id = AccountId(0);
        let (n1, n2, n3) = (
            g.network_tag("198.18.0.1".parse().unwrap(), 32),
            g.network_tag("198.18.0.2".parse().unwrap(), 32),
            g.network_tag("198.18.0.3".parse().unwrap(), 32),
        );
        assert!(!g.is_known_good(id, n1, 1000, 100));
        g.remember(id, n1, 1000);
        assert!(g.is_known_good(id, n1, 1100, 100));
        assert!(!g.is_known_good(id, n1, 1101, 100), "window passed");
        assert!(
            !g.is_known_good(id, n1, 1000, 0),
            "window 0: nobody is known-good"
        );
        g.remember(id, n2, 1010);
        g.remember(id, n1, 1020);
        g.remember(id, n3, 1030); // replaces n2, the least recently seen
        assert!(g.is_known_good(id, n1, 1030, 100));
        assert!(!g.is_known_good(id, n2, 1030, 100));
        assert!(g.is_known_good(id, n3, 1030, 100));
        assert_eq!(g.memory_bytes(), 8 + 2 * 24 + 1024 * 8);
    }

    #[test]
    fn rebuild_keeps_state_by_name() {
        let old = store(3);
        let g = AccountGuard::new(&old, 4, 1024);
        let tag = g.network_tag("198.18.0.1".parse().unwrap(), 32);
        let (u2, _) = old.by_username(b"u2").unwrap();
        for _ in 0..3 {
            let _ = g.reserve(Charge::Account(u2), 5, 6);
        }
        g.remember(u2, tag, 1000);
        // u0 is gone: u2 moves from id 2 to id 1.
        let text = "[[account]]\nname = \"u1\"\npassword = \"p\"\n\
                    [[account]]\nname = \"u2\"\npassword = \"p\"\n";
        let new = CredentialStore::parse(text, "users.toml", "sipgw").unwrap();
        let next = g.rebuild(&old, &new, 4);
        let (n2, _) = new.by_username(b"u2").unwrap();
        assert_eq!(next.charged(Charge::Account(n2), 5), 3);
        assert!(next.is_known_good(
            n2,
            next.network_tag("198.18.0.1".parse().unwrap(), 32),
            1000,
            10
        ));
        let (n1, _) = new.by_username(b"u1").unwrap();
        assert_eq!(next.charged(Charge::Account(n1), 5), 0);
    }
}
