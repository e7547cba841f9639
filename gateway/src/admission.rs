//! Known sources first under overload: when a worker cannot keep up, datagrams from sources
//! that authenticated recently are all evaluated, and those from unknown sources only within a
//! budget that the load sets; the rest are dropped before parsing (not evaluated, not
//! forwarded), which costs a table lookup instead of a decision.
//!
//! Layer: sans-IO protocol state. The driver says, for every batch it hands the engine, whether
//! its receive queue held more than that batch ([`Admission::load`]); nothing here reads a
//! clock or a socket.
//!
//! A worker is overloaded when its queue has held more than a batch for [`ENTER_AFTER`] without
//! a break (a burst, such as two hundred phones registering at once, drains long before). Then
//! the budget follows the load, per batch: a batch received while more was waiting halves the
//! number of unknown sources' datagrams the batch evaluates (down to [`MIN_UNKNOWN`]); a batch
//! that emptied the queue doubles it, up to a whole batch (nothing shed). The overload ends when
//! no batch has found more waiting for [`LEAVE_AFTER`]; until then a returning flood meets the
//! budget at once.
//!
//! Known sources: the addresses (whole, not their network) whose request authenticated within
//! `auth.known_good_window`, in a fixed-size [`Table`] of `limits.known_sources` entries (the
//! least recently authenticated is replaced when it is full). A datagram from a known source is
//! still evaluated like any other: admission only orders the work, it never skips a check.

#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::time::Duration;

use quanta::Instant;

use crate::table::{Entry, Table};

/// Unknown sources' datagrams evaluated per batch at the worst of an overload (new phones
/// still get in, slowly).
pub const MIN_UNKNOWN: u16 = 2;

/// How long the queue must hold more than a batch, without a break, before a worker sheds.
pub const ENTER_AFTER: Duration = Duration::from_millis(20);

/// How long without a backlog ends an overload.
pub const LEAVE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Known {
    last: Instant,
}

impl Entry for Known {
    fn pinned(&self) -> bool {
        false
    }
    fn last_seen(&self) -> Instant {
        self.last
    }
}

/// The admission state of one engine (see the module documentation).
#[derive(Debug)]
pub struct Admission {
    /// `None`: admission is off (`limits.known_sources = 0`).
    known: Option<Table<Known>>,
    window: Duration,
    /// Unknown datagrams one batch may evaluate while overloaded; `left` of them remain.
    budget: u16,
    left: u16,
    batch: u16,
    overloaded: bool,
    /// Since when every batch found more waiting (`None`: the last one emptied the queue).
    backlog_since: Option<Instant>,
    /// When a batch last found more waiting.
    last_backlog: Option<Instant>,
}

fn key(ip: IpAddr) -> u128 {
    match crate::addr::canonical(ip) {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Admission {
    /// Room for `known_sources` sources (0: admission off), remembered for `window`;
    /// `batch` is the largest batch the driver hands over.
    pub fn new(known_sources: usize, window: Duration, batch: usize, seed: [u64; 3]) -> Self {
        let batch = batch.clamp(usize::from(MIN_UNKNOWN), usize::from(u16::MAX)) as u16;
        Admission {
            known: (known_sources > 0).then(|| Table::new(known_sources, seed)),
            window,
            budget: batch,
            left: batch,
            batch,
            overloaded: false,
            backlog_since: None,
            last_backlog: None,
        }
    }

    /// A new window (a reload); the table's size is fixed at start.
    pub fn set_window(&mut self, window: Duration) {
        self.window = window;
    }

    /// The driver's load signal before a batch: `backlog` when its receive queue held more than
    /// this batch (it came back full).
    pub fn load(&mut self, now: Instant, backlog: bool) {
        if self.known.is_none() {
            return;
        }
        if backlog {
            self.last_backlog = Some(now);
            let since = *self.backlog_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= ENTER_AFTER {
                self.overloaded = true;
            }
            if self.overloaded {
                self.budget = (self.budget / 2).max(MIN_UNKNOWN);
            }
        } else {
            self.backlog_since = None;
            if self.overloaded {
                self.budget = self.budget.saturating_mul(2).min(self.batch);
                let calm = self
                    .last_backlog
                    .is_none_or(|t| now.saturating_duration_since(t) >= LEAVE_AFTER);
                if self.budget == self.batch && calm {
                    self.overloaded = false;
                }
            }
        }
        self.left = self.budget;
    }

    /// Whether the worker is shedding unknown sources now.
    pub fn overloaded(&self) -> bool {
        self.overloaded
    }

    /// Unknown sources' datagrams the current batch may still evaluate.
    pub fn budget_left(&self) -> u16 {
        self.left
    }

    /// Whether a datagram from `ip` is evaluated: always when not overloaded; from a known
    /// source always; from an unknown one while the batch's budget lasts.
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        if !self.overloaded {
            return true;
        }
        if self.is_known(now, ip) {
            return true;
        }
        if self.left > 0 {
            self.left -= 1;
            return true;
        }
        false
    }

    /// Whether `ip` authenticated within the window.
    pub fn is_known(&self, now: Instant, ip: IpAddr) -> bool {
        self.known.as_ref().is_some_and(|t| {
            t.get(key(ip))
                .is_some_and(|k| now.saturating_duration_since(k.last) < self.window)
        })
    }

    /// A request from `ip` authenticated.
    pub fn note_success(&mut self, now: Instant, ip: IpAddr) {
        let window = self.window;
        if let Some(t) = self.known.as_mut() {
            if let Some(k) = t.upsert(key(ip), now, window, || Known { last: now }) {
                k.last = now;
            }
        }
    }

    /// Sources remembered.
    pub fn known_len(&self) -> usize {
        self.known.as_ref().map_or(0, Table::len)
    }

    /// Bytes allocated for the known sources (at start).
    pub fn memory_bytes(&self) -> usize {
        self.known.as_ref().map_or(0, Table::memory_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i))
    }

    fn setup() -> (Admission, quanta::Clock, std::sync::Arc<quanta::Mock>) {
        let (c, m) = quanta::Clock::mock();
        m.increment(Duration::from_secs(100));
        (
            Admission::new(1024, Duration::from_secs(3600), 32, [1, 2, 3]),
            c,
            m,
        )
    }

    /// A sustained backlog: batches that all find more waiting, ENTER_AFTER apart.
    fn overload(a: &mut Admission, m: &quanta::Mock, c: &quanta::Clock) {
        a.load(c.now(), true);
        m.increment(ENTER_AFTER);
    }

    #[test]
    fn without_backlog_everything_is_admitted() {
        let (mut a, c, _) = setup();
        for _ in 0..10 {
            a.load(c.now(), false);
            for i in 0..32 {
                assert!(a.admit(c.now(), ip(i)));
            }
        }
        assert!(!a.overloaded());
    }

    #[test]
    fn a_burst_that_drains_within_the_entry_time_is_never_shed() {
        let (mut a, c, m) = setup();
        for _ in 0..100 {
            a.load(c.now(), true);
            assert!((0..32).all(|i| a.admit(c.now(), ip(1000 + i))));
            m.increment(ENTER_AFTER / 200);
        }
        // The queue emptied: the next backlog starts its own clock.
        a.load(c.now(), false);
        m.increment(ENTER_AFTER / 2);
        a.load(c.now(), true);
        assert!(!a.overloaded());
    }

    #[test]
    fn under_backlog_known_sources_pass_and_unknown_ones_get_the_shrinking_budget() {
        let (mut a, c, m) = setup();
        a.note_success(c.now(), ip(7));
        overload(&mut a, &m, &c);
        let now = c.now();
        let mut budgets = Vec::new();
        for _ in 0..6 {
            a.load(now, true);
            let admitted_unknown = (100..132).filter(|&i| a.admit(now, ip(i))).count();
            budgets.push(admitted_unknown);
            // The known source is admitted even after the budget is spent.
            assert!(a.admit(now, ip(7)));
        }
        assert_eq!(budgets, [16, 8, 4, 2, 2, 2]);
        // The queue drained: the budget doubles back to a whole batch (nothing shed) ...
        let mut back = Vec::new();
        for _ in 0..4 {
            a.load(now, false);
            back.push(a.budget_left());
        }
        assert_eq!(back, [4, 8, 16, 32]);
        // ... but a flood coming back within LEAVE_AFTER meets the budget at once ...
        assert!(a.overloaded());
        a.load(now, true);
        assert_eq!(a.budget_left(), 16);
        // ... and LEAVE_AFTER without a backlog ends the overload.
        m.increment(LEAVE_AFTER);
        for _ in 0..4 {
            a.load(c.now(), false);
        }
        assert!(!a.overloaded());
        a.load(c.now(), true);
        assert!(
            !a.overloaded(),
            "a new backlog starts the entry clock again"
        );
    }

    #[test]
    fn a_source_is_known_for_the_window_only_and_ipv4_mapped_is_the_same_source() {
        let (mut a, c, m) = setup();
        a.note_success(c.now(), ip(1));
        let mapped = IpAddr::V6(Ipv4Addr::from(0xc612_0001).to_ipv6_mapped());
        assert!(a.is_known(c.now(), mapped));
        m.increment(Duration::from_secs(3599));
        assert!(a.is_known(c.now(), ip(1)));
        m.increment(Duration::from_secs(1));
        assert!(!a.is_known(c.now(), ip(1)));
        // A new success renews it.
        a.note_success(c.now(), ip(1));
        assert!(a.is_known(c.now(), ip(1)));
        assert_eq!(a.known_len(), 1);
    }

    #[test]
    fn with_no_table_admission_is_off() {
        let (c, _) = quanta::Clock::mock();
        let mut a = Admission::new(0, Duration::from_secs(1), 32, [0; 3]);
        for _ in 0..5 {
            a.load(c.now(), true);
        }
        assert!(!a.overloaded());
        assert!((0..100).all(|i| a.admit(c.now(), ip(i))));
        assert_eq!(a.memory_bytes(), 0);
    }
}
