//! The retry/suspend policy: VOS3000's authentication parameters, plus a source-level lockout.
//!
//! Layer: sans-IO protocol state. Time is always passed in (`now`); nothing here reads a clock,
//! allocates after construction, or does I/O.
//!
//! Three tables, each a [`crate::table::Table`] allocated once with a fixed capacity:
//!
//! | table     | key                                            | what it holds                                  |
//! |-----------|------------------------------------------------|------------------------------------------------|
//! | terminals | keyed hash of username, username+source IP, or source IP (`suspend_scope`) | consecutive failures, suspension end |
//! | sessions  | keyed hash of Call-ID + source IP              | first challenge time, failures, closed flag     |
//! | sources   | the source IP itself (IPv4 as IPv4-mapped IPv6) | consecutive failures across usernames, ban end  |
//!
//! Rules (see `docs/configuration.md` for the full table):
//! - `max_retry` consecutive failures of one terminal suspend it for `failed_suspend`; while
//!   suspended every request is refused, even with the right password; on expiry the terminal
//!   is re-enabled with its counter reset. A success resets the counter. `max_retry = 0`
//!   disables suspension.
//! - A session (Call-ID from one source) is re-challenged at most `session_retry` times after
//!   wrong credentials; the next failure closes it (403). A request more than `session_timeout`
//!   after the session's first challenge closes it too (403). Closed sessions answer 403 until
//!   they have been idle for [`SESSION_LINGER`].
//! - `source_max_retry` consecutive failures from one address, whatever the usernames, ban the
//!   address for `source_suspend` (credential stuffing). A success from it resets the count.
//!
//! Memory bound: every table holds at most its configured number of entries and is allocated
//! once, at construction (17 slots per 16 entries, at most 64 bytes per entry plus an 8-byte
//! tag); [`Policy::memory_bytes`] is the exact allocation. When a table holds its capacity, a
//! new key replaces an idle (untouched for `idle_timeout`) or else the least recently seen entry
//! of its own two buckets (O(1)); suspended and banned entries
//! are never evicted. If a table is full of suspended entries a new terminal cannot be tracked:
//! [`Policy::track`] says so before anything is evaluated and [`Policy::on_failure`] reports it
//! (`untracked`), so the engine fails closed (drops the request), and [`Policy::table_full`]
//! counts it. Sources count as their network ([`Policy::source_net`]: `ipv4_prefix`,
//! `ipv6_prefix`). Terminal and session keys are SipHash-1-3 of the identifying
//! bytes under a per-process secret, so an attacker cannot aim collisions at the tables; source
//! keys are the address itself (each table mixes its keys under its own secret seed).

#![forbid(unsafe_code)]

use std::hash::Hasher;
use std::net::IpAddr;
use std::time::Duration;

use quanta::Instant;
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::config::{AuthConfig, Limits, SuspendScope};
use crate::event::{BanReason, Event, Events, Name};
use crate::table::{Entry, Table};

/// How long a closed session keeps answering 403 after its last request (64 × T1, the
/// lifetime of a SIP transaction, RFC 3261 §17).
pub const SESSION_LINGER: Duration = Duration::from_secs(32);

/// How often [`Policy::handle_timeout`] wants to run.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Key of a terminal-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TerminalKey(u128);
/// Key of a session-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey(u128);
/// Key of a source-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey(u128);

impl TerminalKey {
    /// The worker (of `workers`) that owns this terminal's count. The key is already a keyed
    /// hash of the username (and address, by `suspend_scope`), so its bits are uniform.
    pub fn owner(self, workers: u16) -> u16 {
        let w = u64::from(workers.max(1));
        // The remainder is below `workers`, a u16.
        ((self.0 >> 64) as u64 % w) as u16
    }
}

impl SourceKey {
    /// The worker (of `workers`) that owns this address's count.
    pub fn owner(self, workers: u16) -> u16 {
        let w = u64::from(workers.max(1));
        let folded = (self.0 as u64) ^ ((self.0 >> 64) as u64);
        // Fibonacci hashing spreads neighbouring addresses; the remainder is below `workers`.
        ((folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % w) as u16
    }
}

/// The numbers the policy runs on (from [`AuthConfig`] and [`Limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Failures that suspend a terminal; 0 disables.
    pub max_retry: u16,
    /// Suspension length.
    pub failed_suspend: Duration,
    /// Re-challenges allowed per session after wrong credentials.
    pub session_retry: u16,
    /// Time allowed from a session's first challenge.
    pub session_timeout: Duration,
    /// What terminal keys are made of.
    pub suspend_scope: SuspendScope,
    /// A terminal suspension also bans the source that caused it.
    pub ban_source_on_suspend: bool,
    /// Failures from one source that ban it; 0 disables.
    pub source_max_retry: u16,
    /// Source ban length.
    pub source_suspend: Duration,
    /// Entries per table.
    pub max_terminals: usize,
    /// Entries per table.
    pub max_sessions: usize,
    /// Entries per table.
    pub max_sources: usize,
    /// Non-suspended entries idle this long are forgotten.
    pub idle_timeout: Duration,
    /// IPv4 sources are aggregated by this prefix length.
    pub ipv4_prefix: u8,
    /// IPv6 sources are aggregated by this prefix length.
    pub ipv6_prefix: u8,
    /// An address whose network is never banned (the softswitch's).
    pub never_ban: Option<IpAddr>,
}

impl PolicyConfig {
    /// Take the policy numbers from a checked configuration.
    pub fn new(auth: &AuthConfig, limits: &Limits) -> PolicyConfig {
        PolicyConfig {
            max_retry: auth.max_retry,
            failed_suspend: auth.failed_suspend,
            session_retry: auth.session_retry,
            session_timeout: auth.session_timeout,
            suspend_scope: auth.suspend_scope,
            ban_source_on_suspend: auth.ban_source_on_suspend,
            source_max_retry: auth.source_max_retry,
            source_suspend: auth.source_suspend,
            max_terminals: limits.max_terminals,
            max_sessions: limits.max_sessions,
            max_sources: limits.max_sources,
            idle_timeout: limits.idle_timeout,
            ipv4_prefix: auth.ipv4_prefix,
            ipv6_prefix: auth.ipv6_prefix,
            never_ban: None,
        }
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Never challenged (or forgotten).
    New,
    /// Challenged, still within its retries and time.
    Open,
    /// Closed: retries exhausted or timed out earlier; answer 403.
    Closed,
    /// Just ran past `session_timeout`: now closed; answer 403.
    TimedOut,
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureOutcome {
    /// This failure suspended the terminal.
    pub suspended: bool,
    /// This failure banned the source.
    pub source_banned: bool,
    /// This failure exhausted the session's retries (answer 403, session closed).
    pub session_exhausted: bool,
    /// The terminal or the source could not be tracked (its table is full of suspended or
    /// banned entries): the failure was not counted, so the request must not be answered as
    /// if it had been (fail closed: drop it).
    pub untracked: bool,
    /// End of the suspension, when `suspended`.
    pub suspended_until: Option<Instant>,
    /// End of the ban, when `source_banned`.
    pub banned_until: Option<Instant>,
}

/// Bytes of a username a terminal entry keeps for the event that ends its suspension (the
/// event that starts it has the whole name, up to [`crate::event::NAME_CAP`]).
const SHORT_NAME: usize = 26;

/// A username in [`SHORT_NAME`] bytes: its length, with bit 7 set when it was cut.
#[derive(Debug, Clone, Copy)]
struct ShortName {
    len: u8,
    bytes: [u8; SHORT_NAME],
}

impl ShortName {
    fn new(raw: &[u8]) -> ShortName {
        let n = raw.len().min(SHORT_NAME);
        let mut bytes = [0u8; SHORT_NAME];
        bytes[..n].copy_from_slice(&raw[..n]);
        ShortName {
            len: n as u8 | if raw.len() > SHORT_NAME { 0x80 } else { 0 },
            bytes,
        }
    }

    fn name(&self) -> Name {
        let n = usize::from(self.len & 0x7f).min(SHORT_NAME);
        Name::with_truncation(&self.bytes[..n], self.len & 0x80 != 0)
    }
}

/// One terminal's count: 64 bytes (asserted by a test), an `Option` of it too.
#[derive(Debug, Clone, Copy)]
struct Terminal {
    failures: u16,
    /// Suspended until `until`.
    suspended: bool,
    /// The suspension was decided by another worker (its end is not announced again here).
    mirror: bool,
    until: Instant,
    last_seen: Instant,
    source: IpAddr,
    name: ShortName,
}

impl Terminal {
    /// An entry for `username` seen from `source` with nothing counted.
    fn new(now: Instant, source: IpAddr, username: &[u8], mirror: bool) -> Terminal {
        Terminal {
            failures: 0,
            suspended: false,
            mirror,
            until: now,
            last_seen: now,
            source,
            name: ShortName::new(username),
        }
    }

    fn suspended_until(&self) -> Option<Instant> {
        self.suspended.then_some(self.until)
    }

    fn suspend_until(&mut self, until: Instant) {
        self.suspended = true;
        self.until = until;
    }
}

impl Entry for Terminal {
    fn pinned(&self) -> bool {
        self.suspended
    }
    fn last_seen(&self) -> Instant {
        self.last_seen
    }
}

#[derive(Debug, Clone, Copy)]
struct Session {
    first_challenge: Instant,
    failures: u16,
    closed: bool,
    last_seen: Instant,
}

impl Entry for Session {
    fn pinned(&self) -> bool {
        false
    }
    fn last_seen(&self) -> Instant {
        self.last_seen
    }
}

#[derive(Debug, Clone, Copy)]
struct Source {
    failures: u16,
    banned_until: Option<Instant>,
    last_seen: Instant,
    /// The network (the source address masked to its prefix).
    addr: IpAddr,
    prefix: u8,
    /// The ban was decided by another worker (its end is not announced again here).
    mirror: bool,
}

impl Source {
    /// An entry for the network `net`/`prefix` with nothing counted.
    fn new(now: Instant, (net, prefix): (IpAddr, u8), mirror: bool) -> Source {
        Source {
            failures: 0,
            banned_until: None,
            last_seen: now,
            addr: net,
            prefix,
            mirror,
        }
    }
}

impl Entry for Source {
    fn pinned(&self) -> bool {
        self.banned_until.is_some()
    }
    fn last_seen(&self) -> Instant {
        self.last_seen
    }
}

/// The policy state of one engine (one worker).
#[derive(Debug)]
pub struct Policy {
    cfg: PolicyConfig,
    hash_key: [u8; 16],
    terminals: Table<Terminal>,
    sessions: Table<Session>,
    sources: Table<Source>,
    next_sweep: Option<Instant>,
    /// Terminals currently marked suspended (expired ones included until lifted): when zero,
    /// a lookup is not even needed.
    suspended: usize,
}

impl Policy {
    /// Allocate the tables. `hash_key` keys the table hashes (random per process).
    pub fn new(cfg: PolicyConfig, hash_key: [u8; 16]) -> Policy {
        Policy {
            cfg,
            hash_key,
            terminals: Table::new(cfg.max_terminals, crate::table::seed(&hash_key, 1)),
            sessions: Table::new(cfg.max_sessions, crate::table::seed(&hash_key, 2)),
            sources: Table::new(cfg.max_sources, crate::table::seed(&hash_key, 3)),
            next_sweep: None,
            suspended: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// Change the rules (a reload), keeping every count, suspension and ban. Table capacities
    /// and the source prefixes (which every key is made of) are fixed at construction: the
    /// `max_*` and `ipv*_prefix` fields of `cfg` are ignored (a restart applies them).
    pub fn set_config(&mut self, cfg: PolicyConfig) {
        self.cfg = PolicyConfig {
            max_terminals: self.cfg.max_terminals,
            max_sessions: self.cfg.max_sessions,
            max_sources: self.cfg.max_sources,
            ipv4_prefix: self.cfg.ipv4_prefix,
            ipv6_prefix: self.cfg.ipv6_prefix,
            ..cfg
        };
    }

    fn hasher(&self, domain: u8) -> SipHasher13 {
        let mut h = SipHasher13::new_with_key(&self.hash_key);
        h.write_u8(domain);
        h
    }

    fn write_net(&self, h: &mut SipHasher13, ip: IpAddr) {
        match self.source_net(ip).0 {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
    }

    fn write_ip(h: &mut SipHasher13, ip: IpAddr) {
        match crate::addr::canonical(ip) {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
    }

    /// The network a source address counts as: the address masked to `ipv4_prefix` or
    /// `ipv6_prefix` bits (IPv4-mapped IPv6 is IPv4), and that prefix length. Source lockout,
    /// bans and the source part of terminal keys all use it, so rotating addresses inside one
    /// IPv6 /64 (by default) is one source.
    pub fn source_net(&self, ip: IpAddr) -> (IpAddr, u8) {
        crate::addr::network(ip, self.cfg.ipv4_prefix, self.cfg.ipv6_prefix)
    }

    /// The terminal key of `username` seen from `source`, according to `suspend_scope`.
    pub fn terminal_key(&self, username: &[u8], source: IpAddr) -> TerminalKey {
        let mut h = self.hasher(1);
        match self.cfg.suspend_scope {
            SuspendScope::Terminal => h.write(username),
            SuspendScope::TerminalSource => {
                h.write(username);
                h.write_u8(0xff);
                self.write_net(&mut h, source);
            }
            SuspendScope::Source => self.write_net(&mut h, source),
        }
        TerminalKey(h.finish128().as_u128())
    }

    /// The session key of a Call-ID from `source`.
    pub fn session_key(&self, call_id: &[u8], source: IpAddr) -> SessionKey {
        let mut h = self.hasher(2);
        h.write(call_id);
        h.write_u8(0xff);
        Self::write_ip(&mut h, source);
        SessionKey(h.finish128().as_u128())
    }

    /// The source key of an address: its network ([`Policy::source_net`]; IPv4 as its
    /// IPv4-mapped IPv6 form). No keyed hash is needed: the table's own hasher is randomly
    /// seeded.
    pub fn source_key(&self, source: IpAddr) -> SourceKey {
        SourceKey(match self.source_net(source).0 {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        })
    }

    /// Whether `source` is banned at `now` (an expired ban is lifted here, with its event).
    pub fn source_banned(
        &mut self,
        now: Instant,
        key: SourceKey,
        events: &mut Events,
    ) -> Option<Instant> {
        let s = self.sources.get_mut(key.0)?;
        let until = s.banned_until?;
        if now < until {
            return Some(until);
        }
        s.banned_until = None;
        s.failures = 0;
        if !std::mem::take(&mut s.mirror) {
            events.push(Event::SourceUnbanned {
                source: s.addr,
                prefix: s.prefix,
            });
        }
        None
    }

    /// Whether any terminal is (or was, until its suspension is lifted) suspended: when not,
    /// callers can skip computing terminal keys for [`Policy::terminal_suspended`].
    pub fn any_suspended(&self) -> bool {
        self.suspended > 0
    }

    /// Whether a terminal is suspended at `now` (an expired suspension is lifted here, with its
    /// event, and the counter reset).
    pub fn terminal_suspended(
        &mut self,
        now: Instant,
        key: TerminalKey,
        events: &mut Events,
    ) -> Option<Instant> {
        if self.suspended == 0 {
            return None;
        }
        let t = self.terminals.get_mut(key.0)?;
        let until = t.suspended_until()?;
        if now < until {
            return Some(until);
        }
        let (username, source, mirror) = (t.name.name(), t.source, t.mirror);
        self.terminals.remove(key.0);
        self.suspended -= 1;
        if !mirror {
            events.push(Event::TerminalUnsuspended { username, source });
        }
        None
    }

    /// Consecutive failures currently counted for a terminal.
    pub fn terminal_failures(&self, key: TerminalKey) -> u16 {
        self.terminals.get(key.0).map_or(0, |t| t.failures)
    }

    /// Where a session stands at `now`; a session past its timeout is closed here.
    pub fn session_state(&mut self, now: Instant, key: SessionKey) -> SessionState {
        let timeout = self.cfg.session_timeout;
        let Some(s) = self.sessions.get_mut(key.0) else {
            return SessionState::New;
        };
        if now.saturating_duration_since(s.last_seen) >= timeout + SESSION_LINGER {
            // Idle long enough to be forgotten: a fresh start.
            self.sessions.remove(key.0);
            return SessionState::New;
        }
        s.last_seen = now;
        if s.closed {
            SessionState::Closed
        } else if now.saturating_duration_since(s.first_challenge) > timeout {
            s.closed = true;
            SessionState::TimedOut
        } else {
            SessionState::Open
        }
    }

    /// A challenge was sent in this session: start its clock if it is new.
    pub fn on_challenge(&mut self, now: Instant, key: SessionKey) {
        let idle = self.cfg.session_timeout + SESSION_LINGER;
        if let Some(s) = self.sessions.upsert(key.0, now, idle, || Session {
            first_challenge: now,
            failures: 0,
            closed: false,
            last_seen: now,
        }) {
            s.last_seen = now;
        }
    }

    /// Make sure the terminal and the source have an entry (creating empty ones, evicting
    /// idle or unpinned entries when a table is full). False when either table is full of
    /// suspended or banned entries: the request cannot be tracked, so it must not be
    /// evaluated (fail closed; the refusal is counted in [`Policy::table_full`]).
    pub fn track(
        &mut self,
        now: Instant,
        terminal: TerminalKey,
        source: SourceKey,
        addr: IpAddr,
        username: &[u8],
    ) -> bool {
        let idle = self.cfg.idle_timeout;
        let net = self.source_net(addr);
        let source_ok = self
            .sources
            .upsert(source.0, now, idle, || Source::new(now, net, false))
            .is_some();
        source_ok
            && self
                .terminals
                .upsert(terminal.0, now, idle, || {
                    Terminal::new(now, addr, username, false)
                })
                .is_some()
    }

    /// Count a failure against the terminal, the session and the source. Fails closed: when
    /// the terminal or source cannot be tracked nothing is counted and the outcome says
    /// `untracked`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_failure(
        &mut self,
        now: Instant,
        terminal: TerminalKey,
        session: SessionKey,
        source: SourceKey,
        addr: IpAddr,
        username: &[u8],
        events: &mut Events,
    ) -> FailureOutcome {
        if !self.track(now, terminal, source, addr, username) {
            return FailureOutcome {
                untracked: true,
                ..FailureOutcome::default()
            };
        }
        let suspended_until = self.terminal_failure(now, terminal, addr, username, events);
        let mut out = FailureOutcome {
            suspended: suspended_until.is_some(),
            suspended_until,
            ..FailureOutcome::default()
        };

        let cfg = self.cfg;
        let idle = cfg.session_timeout + SESSION_LINGER;
        let s = self.sessions.upsert(session.0, now, idle, || Session {
            first_challenge: now,
            failures: 0,
            closed: false,
            last_seen: now,
        });
        if let Some(s) = s {
            s.failures = s.failures.saturating_add(1);
            s.last_seen = now;
            if s.failures > cfg.session_retry {
                s.closed = true;
                out.session_exhausted = true;
            }
        }

        out.banned_until = self.source_failure(now, source, addr, out.suspended, events);
        out.source_banned = out.banned_until.is_some();
        out
    }

    /// Count one failure against a terminal (this worker's own, or one another worker reported
    /// to this one, the terminal's owner). True when it suspended the terminal (with its
    /// [`Event::TerminalSuspended`]): the end of the suspension.
    pub fn terminal_failure(
        &mut self,
        now: Instant,
        terminal: TerminalKey,
        addr: IpAddr,
        username: &[u8],
        events: &mut Events,
    ) -> Option<Instant> {
        let cfg = self.cfg;
        let t = self
            .terminals
            .upsert(terminal.0, now, cfg.idle_timeout, || {
                Terminal::new(now, addr, username, false)
            })?;
        t.failures = t.failures.saturating_add(1);
        t.last_seen = now;
        t.source = addr;
        t.name = ShortName::new(username);
        if cfg.max_retry == 0 || t.failures < cfg.max_retry || t.suspended {
            return None;
        }
        let until = now + cfg.failed_suspend;
        t.suspend_until(until);
        self.suspended += 1;
        events.push(Event::TerminalSuspended {
            username: Name::new(username),
            source: addr,
            scope: cfg.suspend_scope,
            failures: t.failures,
            until,
        });
        self.note_expiry(until);
        Some(until)
    }

    /// Count one failure against a source address; `terminal_suspended` says whether the same
    /// failure suspended a terminal (`ban_source_on_suspend`). The end of the ban when it banned
    /// the source (with its [`Event::SourceBanned`]).
    pub fn source_failure(
        &mut self,
        now: Instant,
        source: SourceKey,
        addr: IpAddr,
        terminal_suspended: bool,
        events: &mut Events,
    ) -> Option<Instant> {
        let cfg = self.cfg;
        let net = self.source_net(addr);
        let src = self.sources.upsert(source.0, now, cfg.idle_timeout, || {
            Source::new(now, net, false)
        })?;
        src.failures = src.failures.saturating_add(1);
        src.last_seen = now;
        let lockout = cfg.source_max_retry > 0 && src.failures >= cfg.source_max_retry;
        let (len, reason) = if lockout {
            (cfg.source_suspend, BanReason::SourceLockout)
        } else if terminal_suspended && cfg.ban_source_on_suspend {
            (cfg.failed_suspend, BanReason::TerminalSuspended)
        } else {
            return None;
        };
        self.ban_source(now, source, addr, reason, now + len, events)
    }

    /// Ban a source until `until` (with its [`Event::SourceBanned`]) unless it is already
    /// banned at least as long; returns the new end.
    pub fn ban_source(
        &mut self,
        now: Instant,
        source: SourceKey,
        addr: IpAddr,
        reason: BanReason,
        until: Instant,
        events: &mut Events,
    ) -> Option<Instant> {
        let idle = self.cfg.idle_timeout;
        let net = self.source_net(addr);
        if self
            .cfg
            .never_ban
            .is_some_and(|a| self.source_net(a) == net)
        {
            // The softswitch's network: banning it would cut the gateway off its softswitch.
            return None;
        }
        let src = self
            .sources
            .upsert(source.0, now, idle, || Source::new(now, net, false))?;
        if src.banned_until.is_some_and(|u| u >= until) {
            return None;
        }
        src.banned_until = Some(until);
        src.mirror = false;
        events.push(Event::SourceBanned {
            source: net.0,
            prefix: net.1,
            reason,
            until,
        });
        self.note_expiry(until);
        Some(until)
    }

    /// Another worker suspended this terminal until `until`: drop it here too. No event (the
    /// deciding worker announced it, and announces nothing when it ends either).
    pub fn mirror_suspension(
        &mut self,
        now: Instant,
        terminal: TerminalKey,
        addr: IpAddr,
        username: &[u8],
        until: Instant,
    ) {
        let idle = self.cfg.idle_timeout;
        let Some(t) = self.terminals.upsert(terminal.0, now, idle, || {
            Terminal::new(now, addr, username, true)
        }) else {
            return;
        };
        t.last_seen = now;
        match t.suspended_until() {
            Some(u) if u >= until => {}
            Some(_) => t.suspend_until(until),
            None => {
                t.suspend_until(until);
                t.mirror = true;
                self.suspended += 1;
                self.note_expiry(until);
            }
        }
    }

    /// Another worker banned this source until `until`: drop it here too, without an event.
    pub fn mirror_ban(&mut self, now: Instant, source: SourceKey, addr: IpAddr, until: Instant) {
        let idle = self.cfg.idle_timeout;
        let net = self.source_net(addr);
        let Some(s) = self
            .sources
            .upsert(source.0, now, idle, || Source::new(now, net, true))
        else {
            return;
        };
        s.last_seen = now;
        if s.banned_until.is_none_or(|u| u < until) {
            if s.banned_until.is_none() {
                s.mirror = true;
            }
            s.banned_until = Some(until);
            self.note_expiry(until);
        }
    }

    /// Forget a terminal's failure count (a success seen by another worker); a suspension
    /// stands. True when there was a count to forget.
    pub fn reset_terminal(&mut self, terminal: TerminalKey) -> bool {
        match self.terminals.get(terminal.0) {
            Some(t) if !t.suspended => {
                let had = t.failures > 0;
                self.terminals.remove(terminal.0);
                had
            }
            _ => false,
        }
    }

    /// Forget a source's failure count (a success from it seen by another worker); a ban
    /// stands.
    pub fn reset_source(&mut self, source: SourceKey) {
        if let Some(s) = self.sources.get_mut(source.0) {
            s.failures = 0;
        }
    }

    /// A request authenticated: reset the terminal and source counters and end the session.
    pub fn on_success(&mut self, terminal: TerminalKey, session: SessionKey, source: SourceKey) {
        if let Some(t) = self.terminals.remove(terminal.0) {
            if t.suspended {
                self.suspended -= 1;
            }
        }
        self.sessions.remove(session.0);
        if let Some(s) = self.sources.get_mut(source.0) {
            s.failures = 0;
        }
    }

    fn note_expiry(&mut self, at: Instant) {
        self.next_sweep = Some(self.next_sweep.map_or(at, |n| n.min(at)));
    }

    /// When [`Policy::handle_timeout`] next wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// Lift expired suspensions and bans (with their events) and forget idle entries.
    pub fn handle_timeout(&mut self, now: Instant, events: &mut Events) {
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        let idle = self.cfg.idle_timeout;
        let mut next: Option<Instant> = None;
        let mut keep_next = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));

        let suspended = &mut self.suspended;
        self.terminals.retain(|t| match t.suspended_until() {
            Some(until) if now >= until => {
                if !t.mirror {
                    events.push(Event::TerminalUnsuspended {
                        username: t.name.name(),
                        source: t.source,
                    });
                }
                *suspended -= 1;
                false
            }
            Some(until) => {
                keep_next(until);
                true
            }
            None => now.saturating_duration_since(t.last_seen) < idle,
        });
        self.sources.retain(|s| match s.banned_until {
            Some(until) if now >= until => {
                if !s.mirror {
                    events.push(Event::SourceUnbanned {
                        source: s.addr,
                        prefix: s.prefix,
                    });
                }
                false
            }
            Some(until) => {
                keep_next(until);
                true
            }
            None => now.saturating_duration_since(s.last_seen) < idle,
        });
        let session_idle = self.cfg.session_timeout + SESSION_LINGER;
        self.sessions
            .retain(|s| now.saturating_duration_since(s.last_seen) < session_idle);

        // Idle entries are also dropped on demand when a table fills, so a slow idle sweep is
        // enough; pending expiries are honoured to the second.
        let idle_sweep = now + idle.min(Duration::from_secs(60));
        self.next_sweep = Some(
            next.map_or(idle_sweep, |n| n.min(idle_sweep))
                .max(now + SWEEP_INTERVAL),
        );
    }

    /// Entries in the (terminals, sessions, sources) tables.
    pub fn len(&self) -> (usize, usize, usize) {
        (
            self.terminals.len(),
            self.sessions.len(),
            self.sources.len(),
        )
    }

    /// Insertions refused because a table was full of suspended or banned entries.
    pub fn table_full(&self) -> u64 {
        self.terminals.full() + self.sessions.full() + self.sources.full()
    }

    /// Upper bound of the memory the three tables use, in bytes (allocated at construction,
    /// never grows).
    pub fn memory_bytes(&self) -> usize {
        self.terminals.memory_bytes() + self.sessions.memory_bytes() + self.sources.memory_bytes()
    }

    /// Bytes allocated by each of the (terminals, sessions, sources) tables: fixed at
    /// construction.
    pub fn allocations(&self) -> (usize, usize, usize) {
        (
            self.terminals.memory_bytes(),
            self.sessions.memory_bytes(),
            self.sources.memory_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::net::Ipv4Addr;

    fn policy(extra: &str) -> (Policy, quanta::Clock, std::sync::Arc<quanta::Mock>) {
        let c = Config::parse(extra, "t", None).unwrap();
        let (clock, mock) = quanta::Clock::mock();
        mock.increment(Duration::from_secs(100));
        (
            Policy::new(PolicyConfig::new(&c.auth, &c.limits), [9; 16]),
            clock,
            mock,
        )
    }

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xc612_0000 | (i & 0xffff)))
    }

    #[test]
    fn every_entry_is_at_most_64_bytes_and_a_slot_costs_a_tag_more() {
        use core::mem::size_of;
        assert!(
            size_of::<Option<Terminal>>() <= 64,
            "{}",
            size_of::<Option<Terminal>>()
        );
        assert!(
            size_of::<Option<Session>>() <= 64,
            "{}",
            size_of::<Option<Session>>()
        );
        assert!(
            size_of::<Option<Source>>() <= 64,
            "{}",
            size_of::<Option<Source>>()
        );
        let (p, _, _) = policy(
            "[limits]\nmax_terminals = 1000000\nmax_sessions = 1000000\nmax_sources = 1000000\n",
        );
        let (t, s, src) = p.allocations();
        // 17 slots per 16 entries, a slot is the entry and its 8-byte tag.
        for (bytes, entry) in [
            (t, size_of::<Option<Terminal>>()),
            (s, size_of::<Option<Session>>()),
            (src, size_of::<Option<Source>>()),
        ] {
            assert!(bytes <= (1_000_000 * 17 / 16 + 8) * (entry + 8), "{bytes}");
        }
        assert!(t <= 77_000_000, "{t}");
    }

    /// Ten million tracked terminals (each with a failure counted) in at most 1 GiB.
    #[test]
    fn ten_million_terminals_fit_in_one_gib() {
        const N: u32 = 10_000_000;
        let (mut p, clock, _) =
            policy("[limits]\nmax_terminals = 10000000\n[auth]\nsuspend_scope = \"terminal\"\n");
        let (terminals, _, _) = p.allocations();
        assert!(
            terminals <= 1 << 30,
            "{terminals} bytes for ten million terminals"
        );
        let mut ev = Events::default();
        let now = clock.now();
        for i in 0..N {
            let name = i.to_le_bytes();
            let key = p.terminal_key(&name, ip(i));
            assert!(p
                .terminal_failure(now, key, ip(i), &name, &mut ev)
                .is_none());
        }
        assert_eq!(p.len().0, N as usize);
        assert_eq!(p.table_full(), 0);
        assert_eq!(p.allocations().0, terminals, "allocated once");
        for i in (0..N).step_by(999_983) {
            let key = p.terminal_key(&i.to_le_bytes(), ip(i));
            assert_eq!(p.terminal_failures(key), 1, "terminal {i}");
        }
        let key = p.terminal_key(b"never seen", ip(1));
        assert_eq!(p.terminal_failures(key), 0);
    }

    #[test]
    fn a_million_usernames_do_not_grow_memory() {
        let (mut p, clock, mock) = policy(
            "[limits]\nmax_terminals = 4096\nmax_sessions = 4096\nmax_sources = 4096\n\
             [auth]\nsuspend_scope = \"terminal\"\nban_source_on_suspend = false\nsource_max_retry = 0\n",
        );
        let mut ev = Events::default();
        // One terminal suspended before the flood: it must survive it.
        let victim = p.terminal_key(b"victim", ip(1));
        for _ in 0..6 {
            let (s, src) = (p.session_key(b"v", ip(1)), p.source_key(ip(1)));
            p.on_failure(clock.now(), victim, s, src, ip(1), b"victim", &mut ev);
        }
        assert!(p.terminal_suspended(clock.now(), victim, &mut ev).is_some());
        let before = p.memory_bytes();
        let allocations = p.allocations();
        for i in 0..1_000_000u32 {
            let name = i.to_le_bytes();
            let t = p.terminal_key(&name, ip(i));
            let s = p.session_key(&name, ip(i));
            let src = p.source_key(ip(i));
            p.on_challenge(clock.now(), s);
            p.on_failure(clock.now(), t, s, src, ip(i), &name, &mut ev);
            if i % 100_000 == 0 {
                mock.increment(Duration::from_millis(100));
            }
            while ev.pop().is_some() {}
        }
        let (t, s, src) = p.len();
        assert!(t <= 4096 && s <= 4096 && src <= 4096, "{:?}", p.len());
        assert_eq!(p.allocations(), allocations, "no table ever reallocated");
        assert_eq!(p.memory_bytes(), before);
        assert!(
            p.terminal_suspended(clock.now(), victim, &mut ev).is_some(),
            "suspensions are never evicted"
        );
        assert_eq!(p.table_full(), 0);
    }

    #[test]
    fn a_table_full_of_suspensions_refuses_new_entries_and_counts_them() {
        let (mut p, clock, _mock) = policy(
            "[limits]\nmax_terminals = 1024\n[auth]\nmax_retry = 1\nsuspend_scope = \"terminal\"\n\
             ban_source_on_suspend = false\nsource_max_retry = 0\n",
        );
        let mut ev = Events::default();
        for i in 0..1024u32 {
            let name = i.to_le_bytes();
            let (t, s, src) = (
                p.terminal_key(&name, ip(0)),
                p.session_key(&name, ip(0)),
                p.source_key(ip(0)),
            );
            assert!(
                p.on_failure(clock.now(), t, s, src, ip(0), &name, &mut ev)
                    .suspended
            );
        }
        let (t, s, src) = (
            p.terminal_key(b"new", ip(0)),
            p.session_key(b"new", ip(0)),
            p.source_key(ip(0)),
        );
        assert!(
            !p.on_failure(clock.now(), t, s, src, ip(0), b"new", &mut ev)
                .suspended
        );
        assert_eq!(p.table_full(), 1);
        assert_eq!(p.len().0, 1024);
    }

    #[test]
    fn timers_lift_suspensions_and_forget_idle_entries() {
        let (mut p, clock, mock) = policy("[auth]\nmax_retry = 2\nsource_max_retry = 0\n");
        let mut ev = Events::default();
        let (t, s, src) = (
            p.terminal_key(b"a", ip(0)),
            p.session_key(b"c", ip(0)),
            p.source_key(ip(0)),
        );
        p.on_failure(clock.now(), t, s, src, ip(0), b"a", &mut ev);
        assert_eq!(p.terminal_failures(t), 1);
        p.on_failure(clock.now(), t, s, src, ip(0), b"a", &mut ev);
        let due = p.poll_timeout().expect("a suspension schedules a timer");
        assert_eq!(due, clock.now() + Duration::from_secs(180));
        while ev.pop().is_some() {}
        mock.increment(Duration::from_secs(180));
        p.handle_timeout(clock.now(), &mut ev);
        let mut got = Vec::new();
        while let Some(e) = ev.pop() {
            got.push(e);
        }
        assert!(
            got.iter()
                .any(|e| matches!(e, Event::TerminalUnsuspended { .. })),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|e| matches!(e, Event::SourceUnbanned { .. })),
            "{got:?}"
        );
        assert_eq!(p.terminal_failures(t), 0);
        // An idle counter is forgotten after idle_timeout.
        p.on_failure(clock.now(), t, s, src, ip(0), b"a", &mut ev);
        assert_eq!(p.terminal_failures(t), 1);
        mock.increment(Duration::from_secs(3601));
        p.handle_timeout(clock.now(), &mut ev);
        assert_eq!(p.terminal_failures(t), 0);
        assert_eq!(p.len(), (0, 0, 0));
    }

    #[test]
    fn keys_follow_the_scope() {
        let (t, _, _) = policy("[auth]\nsuspend_scope = \"terminal\"\n");
        assert_eq!(t.terminal_key(b"a", ip(1)), t.terminal_key(b"a", ip(2)));
        let (ts, _, _) = policy("[auth]\nsuspend_scope = \"terminal+source\"\n");
        assert_ne!(ts.terminal_key(b"a", ip(1)), ts.terminal_key(b"a", ip(2)));
        assert_ne!(ts.terminal_key(b"a", ip(1)), ts.terminal_key(b"b", ip(1)));
        let (s, _, _) = policy("[auth]\nsuspend_scope = \"source\"\n");
        assert_eq!(s.terminal_key(b"a", ip(1)), s.terminal_key(b"b", ip(1)));
        assert_ne!(s.terminal_key(b"a", ip(1)), s.terminal_key(b"a", ip(2)));
        // IPv4-mapped IPv6 is the same source.
        let mapped = IpAddr::V6(Ipv4Addr::from(0xc612_0001).to_ipv6_mapped());
        assert_eq!(s.source_key(ip(1)), s.source_key(mapped));
    }
}
