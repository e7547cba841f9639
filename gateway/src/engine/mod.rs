//! The sans-IO authentication engine: one datagram and its source in, one verdict out.
//!
//! Layer: protocol core. Every I/O path (AF_XDP rings, UDP sockets, in-memory replay in tests
//! and benchmarks) drives the same [`Engine`]: it never reads a clock (time is the `now`
//! argument, a [`quanta::Instant`]), never touches a socket, and never allocates after
//! construction. Its outputs are values:
//!
//! - a [`Verdict`] per datagram (`#[must_use]`): forward (with the authenticated identity),
//!   reply (a 401/407/403, or a 400/420 for an invalid request, written into the caller's
//!   buffer), drop (with a reason) or pass;
//! - [`Event`]s for the driver (`poll_event`): suspensions, source bans for the XDP ban map,
//!   rejected credentials for fail2ban-style logs;
//! - [`Counters`] by reason;
//! - timers: `poll_timeout` says when `handle_timeout(now)` wants to run (lifting suspensions
//!   and bans, forgetting idle entries).
//!
//! The decision for a request (see `docs/architecture.md` for the diagram):
//! banned source → drop; unparseable → drop; invalid ([`crate::validate`], before anything
//! else looks at the message) → `400 <reason>` / `420 Bad Extension` (an ACK or a response:
//! drop; replies off: drop); response → pass; ACK for our own reply → absorb;
//! ACK/CANCEL/`no_auth_methods` → pass; an in-dialog BYE with our dialog MAC → pass;
//! address-authenticated account → forward; no credentials for our realm → challenge (unless
//! suspended, session closed, or silenced); credentials → nonce check (stale, or minted by
//! another worker → re-challenge without counting; forged → counted by type only, as the
//! source proved no round trip), tracking (fail closed: untracked → drop, unless a known-good
//! network tracked in the [`crate::guard`]), the account budget for sources that are not
//! known-good (used up → drop, unevaluated), digest check (batched), replay check (a
//! retransmission of the same request from the same port is not a replay), then forward or
//! count the failure and re-challenge / 403 / suspend.
//!
//! Replies copy every Via, From, To (adding our To-tag), Call-ID and CSeq line as the request
//! wrote them, add only the challenge header and `Content-Length: 0`, and are never more than
//! [`MAX_REPLY_GROWTH`] bytes larger than the request — nor, to a source that has not echoed a
//! nonce we minted for its address, larger than `limits.amplification_limit` times the
//! request (dropped instead: no reflection amplification).

//!
//! # Modules
//!
//! This module decides; [`verdict`] holds the types that go in and out, `reply` writes the
//! replies the engine answers itself, `share` shares policy state between the engines of a
//! sharded runtime. Neither child imports this module.

#![forbid(unsafe_code)]

mod reply;
mod share;
pub mod verdict;

pub use verdict::{
    Datagram, DropReason, Identity, PassReason, Secrets, Verdict, WallClock, BATCH,
    MAX_REPLY_GROWTH, MAX_USERNAME,
};

use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quanta::Instant;
use siphasher::sip128::{Hasher128, SipHasher13 as SipHasher13x128};

use crate::addr::canonical;
use crate::admission::Admission;
use crate::config::Config;
use crate::counters::Counters;
use crate::credentials::{AccountId, AuthMode, CredentialStore};
use crate::digest::{self, Credentials, Ha1, Hash, Hashed, Qop};
use crate::event::{Event, Events, Failure, Name};
use crate::guard::{AccountGuard, Charge, Reserve};
use crate::nonce::{NonceConfig, NonceStatus, Nonces, ReplayTable, ReplayVerdict};
use crate::policy::{Policy, PolicyConfig, SessionKey, SessionState, SourceKey, TerminalKey};
use crate::shard::{Dest, ShardId, ShardMsg};
use crate::sip::{self, HeaderName, Message, Method, StartLine};
use crate::validate;
use reply::Replies;
use share::Sharing;

/// Where a request that needs a digest check stands between the batch phases.
#[derive(Debug, Clone)]
struct Pending<'a> {
    index: usize,
    /// The request's method and body (the parsed message itself stays in the caller's
    /// `parsed` slot: not copied into the batch).
    method: &'a [u8],
    body: &'a [u8],
    credentials: Credentials<'a>,
    /// Which header (index in `Message::headers`) held them.
    credentials_at: u8,
    ha1: Ha1,
    account: Option<AccountId>,
    nonce_id: u64,
    nonce_issued: u32,
    name: Name,
    peer: SocketAddr,
    terminal: TerminalKey,
    session: SessionKey,
    source: SourceKey,
    /// The budget unit reserved for this guess (and its period), if one was.
    charge: Option<(Charge, u32)>,
    /// The source network's tag for the known-good slots.
    net_tag: u64,
    /// A known-good network the policy tables could not track: its failures are counted in
    /// its known-good slot instead (still tracked, never untracked).
    in_guard: bool,
}

impl Pending<'_> {
    fn job(&self) -> digest::Job<'_> {
        digest::Job {
            ha1: self.ha1.as_bytes(),
            method: self.method,
            credentials: &self.credentials,
            body: self.body,
        }
    }
}

// Boxing the large variant would allocate per datagram; it is moved once, into the batch array.
#[allow(clippy::large_enum_variant)]
enum Step<'a> {
    Done(Verdict),
    Verify(Pending<'a>),
}

/// The authentication engine of one worker.
#[derive(Debug)]
pub struct Engine {
    /// The replies it answers itself (realm, challenge mode, qop, amplification bound).
    replies: Replies,
    check_digest_uri: bool,
    no_auth: u32,
    nonce_lifetime: u32,
    credentials: Arc<CredentialStore>,
    nonces: Nonces,
    replay: ReplayTable,
    next_replay_sweep: Option<Instant>,
    policy: Policy,
    events: Events,
    counters: Counters,
    clock: WallClock,
    decoy_key: [u8; 16],
    nonce_salt: u32,
    verifier: digest::Verifier,
    fingerprint_hasher: hashbrown::DefaultHashBuilder,
    sharing: Sharing,
    guard: Arc<AccountGuard>,
    account_budget: u16,
    period_secs: u32,
    known_good_secs: u64,
    /// Known sources first under overload.
    admission: Admission,
    trust_dialogs: bool,
    /// The proxy whose Record-Route MACs recognise our dialogs (set by the driver).
    dialogs: Option<crate::proxy::Proxy>,
    /// The datagram being decided proved a round trip: it echoed a nonce we minted for its
    /// address. Set by `prepare` (and for every `finish`), read by `emit`.
    proven: bool,
}

/// Bits of a nonce's salt that name the worker that minted it (`gateway.workers` ≤ 1024).
const SHARD_BITS: u32 = 10;

/// The policy's numbers, with the softswitch's network exempt from bans.
fn policy_config(config: &Config) -> PolicyConfig {
    PolicyConfig {
        never_ban: config.gateway.softswitch.map(|s| canonical(s.ip())),
        ..PolicyConfig::new(&config.auth, &config.limits)
    }
}

fn method_bit(m: Method) -> u32 {
    1 << (m as u32)
}

fn split_key(k: &[u8; 32]) -> ([u8; 16], [u8; 16]) {
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    a.copy_from_slice(&k[..16]);
    b.copy_from_slice(&k[16..]);
    (a, b)
}

impl Engine {
    /// Build an engine (allocates every table now; nothing is allocated per packet).
    pub fn new(
        config: &Config,
        credentials: Arc<CredentialStore>,
        secrets: &Secrets,
        clock: WallClock,
    ) -> Engine {
        let auth = &config.auth;
        let lifetime = u32::try_from(config.nonce.lifetime.as_secs()).unwrap_or(u32::MAX);
        let nonce_cfg = NonceConfig {
            lifetime_secs: lifetime,
            grace_secs: u32::try_from(config.nonce.grace.as_secs()).unwrap_or(u32::MAX),
            ..NonceConfig::default()
        };
        let now_unix = clock.origin_unix.as_secs();
        let nonces = match secrets.previous_nonce {
            Some(prev) => {
                let mut n = Nonces::new(prev, nonce_cfg);
                n.rotate(secrets.nonce, now_unix);
                n
            }
            None => Nonces::new(secrets.nonce, nonce_cfg),
        };
        let guard = Arc::new(AccountGuard::new(
            &credentials,
            config.limits.known_good_per_account,
            config.limits.max_terminals,
        ));
        let (table_key, rest) = split_key(&secrets.local);
        let mut tag_key = rest;
        tag_key[0] ^= 0x5a;
        let mut decoy_key = rest;
        decoy_key[0] ^= 0xa5;
        Engine {
            replies: Replies::new(auth, &config.limits, tag_key),
            check_digest_uri: auth.check_digest_uri,
            no_auth: auth
                .no_auth_methods
                .iter()
                .fold(0, |acc, &m| acc | method_bit(m)),
            nonce_lifetime: lifetime,
            credentials,
            nonces,
            replay: ReplayTable::with_capacity(config.nonce.replay_table_size),
            next_replay_sweep: Some(clock.origin + config.nonce.lifetime),
            policy: Policy::new(policy_config(config), table_key),
            events: Events::default(),
            counters: Counters::default(),
            clock,
            decoy_key,
            verifier: digest::Verifier::default(),
            fingerprint_hasher: hashbrown::DefaultHashBuilder::default(),
            nonce_salt: u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]),
            sharing: Sharing::default(),
            guard,
            account_budget: auth.account_budget,
            period_secs: u32::try_from(auth.failed_suspend.as_secs()).unwrap_or(u32::MAX),
            known_good_secs: auth.known_good_window.as_secs(),
            admission: Admission::new(
                config.limits.known_sources,
                auth.known_good_window,
                BATCH,
                crate::table::seed(&rest, 0xad),
            ),
            trust_dialogs: auth.trust_dialogs,
            dialogs: None,
            proven: false,
        }
    }

    /// Make this engine worker `shard.index` of `shard.count` (see [`crate::shard`]). Every
    /// engine of a runtime must be built from the same [`Secrets`] so that they agree on
    /// terminal keys.
    pub fn set_shard(&mut self, shard: ShardId) {
        self.sharing.set_shard(shard);
    }

    /// Which worker this engine is.
    pub fn shard(&self) -> ShardId {
        self.sharing.shard()
    }

    /// Next message for other workers' engines ([`Engine::handle_shard_message`]).
    pub fn poll_shard_message(&mut self) -> Option<(Dest, ShardMsg)> {
        self.sharing.poll()
    }

    /// Shard messages dropped because the driver did not drain the outbox.
    pub fn shard_dropped(&self) -> u64 {
        self.sharing.dropped()
    }

    /// Apply a message from another worker's engine.
    pub fn handle_shard_message(&mut self, now: Instant, msg: ShardMsg) {
        self.sharing.apply(
            now,
            msg,
            &mut self.policy,
            &mut self.events,
            &mut self.counters,
        );
    }

    /// Apply a reloaded configuration: the `[auth]` rules and `[nonce]` settings change at
    /// once, every count, suspension and ban is kept. A new `nonce.secret` is rotated in (the
    /// old one stays valid for `nonce.grace`). Table sizes (`[limits]`,
    /// `nonce.replay_table_size`) are fixed at construction and need a restart.
    pub fn reconfigure(&mut self, now: Instant, config: &Config, previous: &Config) {
        let auth = &config.auth;
        self.replies.reconfigure(auth, &config.limits);
        self.check_digest_uri = auth.check_digest_uri;
        self.no_auth = auth
            .no_auth_methods
            .iter()
            .fold(0, |acc, &m| acc | method_bit(m));
        let lifetime = u32::try_from(config.nonce.lifetime.as_secs()).unwrap_or(u32::MAX);
        self.nonce_lifetime = lifetime;
        self.nonces.set_config(NonceConfig {
            lifetime_secs: lifetime,
            grace_secs: u32::try_from(config.nonce.grace.as_secs()).unwrap_or(u32::MAX),
            ..*self.nonces.config()
        });
        if let Some(secret) = config.nonce.secret {
            if previous.nonce.secret != Some(secret) {
                self.rotate_nonce_secret(now, secret);
            }
        }
        self.policy.set_config(policy_config(config));
        self.account_budget = auth.account_budget;
        self.period_secs = u32::try_from(auth.failed_suspend.as_secs()).unwrap_or(u32::MAX);
        self.known_good_secs = auth.known_good_window.as_secs();
        self.admission.set_window(auth.known_good_window);
        self.trust_dialogs = auth.trust_dialogs;
    }

    /// The driver's load signal before it hands over a batch: `backlog` when its receive queue
    /// held more than the batch (see [`crate::admission`]).
    pub fn load(&mut self, now: Instant, backlog: bool) {
        self.admission.load(now, backlog);
    }

    /// Known sources first under overload: its state.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The proxy that writes this runtime's Record-Route entries: with it (and
    /// `auth.trust_dialogs`), in-dialog requests carrying a Route to one of our dialogs pass
    /// without a challenge. Without it every request is authenticated. Set it again after a
    /// reload rebuilt the proxy.
    pub fn set_dialog_proxy(&mut self, proxy: crate::proxy::Proxy) {
        self.dialogs = Some(proxy);
    }

    /// Replace the credential store and its account guard (a reload, or the runtime giving
    /// every worker the same guard); policy state is kept. The guard must have been built for
    /// this store ([`AccountGuard::new`] or [`AccountGuard::rebuild`]) and be shared by every
    /// engine of the runtime, so the account budget holds across workers.
    pub fn set_credentials(&mut self, credentials: Arc<CredentialStore>, guard: Arc<AccountGuard>) {
        self.credentials = credentials;
        self.guard = guard;
    }

    /// The account guard in use.
    pub fn guard(&self) -> &Arc<AccountGuard> {
        &self.guard
    }

    /// Rotate the nonce secret: nonces of the old one stay valid for `nonce.grace`.
    pub fn rotate_nonce_secret(&mut self, now: Instant, next: [u8; 32]) {
        self.nonces.rotate(next, self.clock.unix_secs(now));
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The policy state (table sizes, memory bound, failure counts).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The credential store in use.
    pub fn credentials(&self) -> &Arc<CredentialStore> {
        &self.credentials
    }

    /// Events dropped because the driver did not drain them.
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped()
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// When [`Engine::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.policy.poll_timeout(), self.next_replay_sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run due timers: lift expired suspensions and bans, forget idle state.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.policy.handle_timeout(now, &mut self.events);
        if self.next_replay_sweep.is_none_or(|t| now >= t) {
            self.replay
                .sweep(self.clock.unix_secs(now), self.nonce_lifetime);
            self.next_replay_sweep =
                Some(now + Duration::from_secs(u64::from(self.nonce_lifetime)));
        }
    }

    /// Decide on one datagram from `peer`; a reply is written into `reply`.
    pub fn handle(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        datagram: &[u8],
        reply: &mut [u8],
    ) -> Verdict {
        let mut parsed = None;
        match self.prepare(now, 0, Datagram::new(peer, datagram), reply, &mut parsed) {
            Step::Done(v) => v,
            Step::Verify(p) => {
                let ok = self.verifier.verify(&p.job());
                match parsed {
                    Some(msg) => self.finish(now, &p, &msg, ok, reply),
                    // `prepare` leaves the message it parsed before it asks for a check.
                    None => Verdict::Drop(DropReason::NotProcessed),
                }
            }
        }
    }

    /// Decide on a batch: `verdicts[i]` and `replies[i]` belong to `datagrams[i]`. Processes
    /// `min` of the three lengths and returns that count. The digests of up to [`BATCH`]
    /// datagrams are verified together.
    pub fn handle_batch<B: AsMut<[u8]>>(
        &mut self,
        now: Instant,
        datagrams: &[Datagram<'_>],
        replies: &mut [B],
        verdicts: &mut [Verdict],
    ) -> usize {
        let mut parsed = [None; BATCH];
        let n = datagrams.len().min(replies.len()).min(verdicts.len());
        let mut start = 0;
        while start < n {
            let end = (start + BATCH).min(n);
            self.batch_chunk(
                now,
                &datagrams[start..end],
                &mut replies[start..end],
                &mut verdicts[start..end],
                &mut parsed[..end - start],
            );
            start = end;
        }
        n
    }

    /// [`Engine::handle_batch`] for at most [`BATCH`] messages that also hands back each
    /// message's parsed view (`parsed[i]`, `None` when it was dropped before or by parsing),
    /// so that the caller routes a forwarded or passed message without parsing it again.
    /// Processes `min` of the four lengths (and at most [`BATCH`]) and returns that count.
    pub fn handle_batch_parsed<'a, B: AsMut<[u8]>>(
        &mut self,
        now: Instant,
        datagrams: &[Datagram<'a>],
        replies: &mut [B],
        verdicts: &mut [Verdict],
        parsed: &mut [Option<Message<'a>>],
    ) -> usize {
        let n = datagrams
            .len()
            .min(replies.len())
            .min(verdicts.len())
            .min(parsed.len())
            .min(BATCH);
        self.batch_chunk(
            now,
            &datagrams[..n],
            &mut replies[..n],
            &mut verdicts[..n],
            &mut parsed[..n],
        );
        n
    }

    fn batch_chunk<'a, B: AsMut<[u8]>>(
        &mut self,
        now: Instant,
        dgs: &[Datagram<'a>],
        replies: &mut [B],
        verdicts: &mut [Verdict],
        parsed: &mut [Option<Message<'a>>],
    ) {
        let mut pending: [Option<Pending<'_>>; BATCH] = std::array::from_fn(|_| None);
        let mut np = 0;
        for (i, d) in dgs.iter().enumerate() {
            match self.prepare(now, i, *d, replies[i].as_mut(), &mut parsed[i]) {
                Step::Done(v) => verdicts[i] = v,
                Step::Verify(p) => {
                    pending[np] = Some(p);
                    np += 1;
                }
            }
        }
        if np == 0 {
            return;
        }
        let mut ok = [false; BATCH];
        if let Some(first) = pending[0].as_ref() {
            // pending[..np] are filled; a multi-buffer MD5 computes these jobs as lanes.
            let lanes: [digest::Job<'_>; BATCH] =
                std::array::from_fn(|i| pending[i].as_ref().unwrap_or(first).job());
            self.verifier.verify_batch(&lanes[..np], &mut ok[..np]);
        }
        for (p, &ok) in pending.iter().take(np).flatten().zip(&ok) {
            // `prepare` left the message it parsed in `parsed` before it asked for a check.
            verdicts[p.index] = match parsed[p.index].as_ref() {
                Some(msg) => self.finish(now, p, msg, ok, replies[p.index].as_mut()),
                None => Verdict::Drop(DropReason::NotProcessed),
            };
        }
    }

    /// The first phase of a decision; the parsed message is left in `parsed` for the caller.
    fn prepare<'a>(
        &mut self,
        now: Instant,
        index: usize,
        dg: Datagram<'a>,
        reply: &mut [u8],
        parsed: &mut Option<Message<'a>>,
    ) -> Step<'a> {
        self.counters.received += 1;
        let peer = dg.peer;
        self.proven = dg.connected;
        let ip = canonical(peer.ip());
        let source = self.policy.source_key(ip);
        if self
            .policy
            .source_banned(now, source, &mut self.events)
            .is_some()
        {
            self.counters.banned_dropped += 1;
            return Step::Done(Verdict::Drop(DropReason::SourceBanned));
        }
        // Under overload, unknown sources only within the batch's budget (before parsing);
        // connections and address accounts are always served.
        if !dg.connected
            && !self.admission.admit(now, ip)
            && self.credentials.by_address(peer).is_none()
        {
            self.counters.overload_shed += 1;
            return Step::Done(Verdict::Drop(DropReason::Overloaded));
        }
        let msg = match Message::parse(dg.bytes) {
            Ok(m) => m,
            Err(e) => {
                self.counters.malformed += 1;
                return Step::Done(Verdict::Drop(DropReason::Malformed(e)));
            }
        };
        *parsed = Some(msg);
        // Before any pass, evaluation or forward decision (docs/validation.md).
        if let Err(invalid) = validate::message(&msg) {
            return Step::Done(self.replies.reject_invalid(
                &mut self.counters,
                self.proven,
                &msg,
                invalid,
                reply,
            ));
        }
        let method = match msg.start_line() {
            StartLine::Response { .. } => {
                self.counters.responses_passed += 1;
                return Step::Done(Verdict::Pass(PassReason::Response));
            }
            StartLine::Request { method, .. } => method,
        };
        match method {
            Method::Ack if self.replies.is_own_ack(&msg) => {
                self.counters.own_acks_absorbed += 1;
                return Step::Done(Verdict::Drop(DropReason::OwnAck));
            }
            Method::Ack | Method::Cancel => {
                self.counters.requests_passed += 1;
                let r = if method == Method::Ack {
                    PassReason::Ack
                } else {
                    PassReason::Cancel
                };
                return Step::Done(Verdict::Pass(r));
            }
            m if m != Method::Other && self.no_auth & method_bit(m) != 0 => {
                self.counters.requests_passed += 1;
                return Step::Done(Verdict::Pass(PassReason::NoAuthMethod));
            }
            _ => {}
        }
        // Via, From, To, Call-ID and CSeq are present (exactly once): `validate` checked it.
        // BYE only: it ends a call (sipp and many phones never answer a challenge on it), and
        // nothing else may ride on a dialog's Route without authentication.
        if self.trust_dialogs
            && method == Method::Bye
            && self
                .dialogs
                .as_ref()
                .is_some_and(|p| p.in_dialog(&msg, peer))
        {
            self.counters.dialog_passed += 1;
            return Step::Done(Verdict::Pass(PassReason::InDialog));
        }
        if let Some((account, mode)) = self.credentials.by_address(peer) {
            self.counters.forwarded_address += 1;
            return Step::Done(Verdict::Forward(Identity {
                account,
                mode,
                credentials_at: None,
            }));
        }
        let creds = match self.select_credentials(&msg) {
            Selected::None => {
                return Step::Done(self.challenge_unauthenticated(now, &msg, method, ip, reply))
            }
            Selected::OtherRealm => {
                // Credentials for another realm may be meant for another proxy (RFC 3261
                // §22.3): not a failure. Challenge for ours; the counter shows realm mismatches.
                self.counters.wrong_realm += 1;
                return Step::Done(self.challenge_unauthenticated(now, &msg, method, ip, reply));
            }
            Selected::Malformed => None,
            Selected::Ours(c, at) => Some((c, at)),
        };
        let session = self.session_key(&msg, ip);

        let mut buf = [0u8; MAX_USERNAME];
        let Some(((creds, credentials_at), username)) =
            creds.and_then(|c| c.0.username.unescape_into(&mut buf).map(|u| (c, u)))
        else {
            // Unparseable, duplicated, or a username too long to be one of ours.
            let user = fallback_user(&msg, method);
            let terminal = self.policy.terminal_key(user, ip);
            return Step::Done(self.fail(
                now,
                &msg,
                Failure::MalformedCredentials,
                user,
                peer,
                terminal,
                session,
                source,
                reply,
            ));
        };
        let terminal = self.policy.terminal_key(username, ip);
        if self
            .policy
            .terminal_suspended(now, terminal, &mut self.events)
            .is_some()
        {
            self.counters.suspended_dropped += 1;
            return Step::Done(Verdict::Drop(DropReason::TerminalSuspended));
        }
        match self.policy.session_state(now, session) {
            SessionState::Closed => {
                return Step::Done(self.replies.forbid(
                    &mut self.counters,
                    self.proven,
                    &msg,
                    reply,
                ))
            }
            SessionState::TimedOut => {
                self.counters.session_timeout += 1;
                return Step::Done(self.replies.forbid(
                    &mut self.counters,
                    self.proven,
                    &msg,
                    reply,
                ));
            }
            SessionState::New | SessionState::Open => {}
        }
        let name = Name::new(username);
        let unix = self.clock.unix_secs(now);
        let (nonce_id, nonce_issued) =
            match self
                .nonces
                .verify(unix, ip, &self.replies.realm, creds.nonce.raw())
            {
                NonceStatus::Valid { id, issued, salt } => {
                    self.proven = true;
                    if creds.qop != Qop::None
                        && self.sharing.shard().is_sharded()
                        && salt & ((1 << SHARD_BITS) - 1) != u32::from(self.sharing.shard().index)
                    {
                        // Another worker minted it and holds its nonce counts: only it can
                        // tell a replay (another port of the same address lands elsewhere).
                        // A fresh nonce of ours costs the client one round trip.
                        self.counters.foreign_nonce += 1;
                        self.counters.stale_nonce += 1;
                        return Step::Done(
                            self.challenge(now, &msg, method, ip, session, true, reply),
                        );
                    }
                    (id, issued)
                }
                NonceStatus::Stale => {
                    self.proven = true;
                    self.counters.stale_nonce += 1;
                    return Step::Done(self.challenge(now, &msg, method, ip, session, true, reply));
                }
                NonceStatus::Forged => {
                    return Step::Done(self.fail(
                        now,
                        &msg,
                        Failure::ForgedNonce,
                        name.as_bytes(),
                        peer,
                        terminal,
                        session,
                        source,
                        reply,
                    ))
                }
            };
        if self.check_digest_uri
            && !creds
                .uri
                .eq_unescaped(msg.request_uri().unwrap_or_default())
        {
            return Step::Done(self.fail(
                now,
                &msg,
                Failure::UriMismatch,
                name.as_bytes(),
                peer,
                terminal,
                session,
                source,
                reply,
            ));
        }
        // The client's hash is one `auth.algorithms` offers (select_credentials), so every
        // account has its HA1; an unknown user gets a decoy of the same length.
        let hash = creds.algorithm.hash();
        let (account, ha1) = match self.credentials.by_username(username) {
            Some((id, ha1s)) => (
                Some(id),
                ha1s.get(hash)
                    .copied()
                    .unwrap_or_else(|| self.decoy_ha1(username, hash)),
            ),
            None => (None, self.decoy_ha1(username, hash)),
        };
        let (net, prefix) = self.policy.source_net(ip);
        let net_tag = self.guard.network_tag(net, prefix);
        let known_good = account.is_some_and(|id| {
            self.guard
                .is_known_good(id, net_tag, unix, self.known_good_secs)
        });
        // Fail closed: a guess is evaluated only if its failure can be counted — in the policy
        // tables, or, for a known-good network when those are full of suspensions and bans, in
        // its known-good slot (so filling the tables cannot lock the real phone out).
        let in_guard = !self.policy.track(now, terminal, source, ip, username);
        if in_guard && !known_good {
            self.counters.untracked_dropped += 1;
            return Step::Done(Verdict::Drop(DropReason::Untracked));
        }
        let charge = if known_good {
            self.counters.known_good_evaluated += 1;
            None
        } else {
            let period = AccountGuard::period(unix, self.period_secs);
            let charge = self.guard.charge(account, username);
            match self.guard.reserve(charge, period, self.account_budget) {
                Reserve::Granted { last } => {
                    if last {
                        self.events.push(Event::AccountProtected {
                            username: Name::new(username),
                            source: ip,
                            until_unix: (u64::from(period) + 1) * u64::from(self.period_secs),
                        });
                    }
                    Some((charge, period))
                }
                Reserve::Unlimited => None,
                Reserve::Exhausted => {
                    self.counters.account_protected += 1;
                    return Step::Done(Verdict::Drop(DropReason::AccountProtected));
                }
            }
        };
        Step::Verify(Pending {
            index,
            method: msg.method_bytes().unwrap_or_default(),
            body: msg.body(),
            credentials: creds,
            credentials_at,
            ha1,
            account,
            nonce_id,
            nonce_issued,
            name,
            peer,
            terminal,
            session,
            source,
            charge,
            net_tag,
            in_guard,
        })
    }

    /// Give back the budget unit of a guess that was right or not evaluated after all.
    fn refund(&self, p: &Pending<'_>) {
        if let Some((charge, period)) = p.charge {
            self.guard.refund(charge, period);
        }
    }

    fn finish(
        &mut self,
        now: Instant,
        p: &Pending<'_>,
        msg: &Message<'_>,
        digest_ok: bool,
        reply: &mut [u8],
    ) -> Verdict {
        // Every pending request echoed a nonce we minted for its address.
        self.proven = true;
        // An earlier datagram of the same batch may have banned this source or suspended this
        // terminal.
        if self
            .policy
            .source_banned(now, p.source, &mut self.events)
            .is_some()
        {
            self.refund(p);
            self.counters.banned_dropped += 1;
            return Verdict::Drop(DropReason::SourceBanned);
        }
        if self
            .policy
            .terminal_suspended(now, p.terminal, &mut self.events)
            .is_some()
        {
            self.refund(p);
            self.counters.suspended_dropped += 1;
            return Verdict::Drop(DropReason::TerminalSuspended);
        }
        if digest_ok {
            // Only wrong guesses use the account's budget.
            self.refund(p);
        }
        let user = p.name;
        let failure = match (p.account, digest_ok) {
            (None, _) => Some(Failure::UnknownUser),
            (Some(_), false) => Some(Failure::WrongPassword),
            (Some(_), true) => None,
        };
        if let (Some(f), true) = (failure, p.in_guard) {
            return self.fail_known_good(now, p, msg, f, reply);
        }
        if let Some(f) = failure {
            return self.fail(
                now,
                msg,
                f,
                user.as_bytes(),
                p.peer,
                p.terminal,
                p.session,
                p.source,
                reply,
            );
        }
        if p.credentials.qop != Qop::None {
            let unix = self.clock.unix_secs(now);
            let fingerprint = self.fingerprint(msg, p.peer.port());
            match self.replay.check(
                unix,
                self.nonce_lifetime,
                p.nonce_id,
                p.nonce_issued,
                p.credentials.nc.unwrap_or(0),
                fingerprint,
            ) {
                ReplayVerdict::Fresh => {}
                ReplayVerdict::Retransmission => self.counters.retransmissions += 1,
                ReplayVerdict::Replay if p.in_guard => {
                    return self.fail_known_good(now, p, msg, Failure::ReplayedNonce, reply)
                }
                ReplayVerdict::Replay => {
                    return self.fail(
                        now,
                        msg,
                        Failure::ReplayedNonce,
                        user.as_bytes(),
                        p.peer,
                        p.terminal,
                        p.session,
                        p.source,
                        reply,
                    )
                }
                ReplayVerdict::Evicted => {
                    self.counters.nonce_evicted += 1;
                    self.counters.stale_nonce += 1;
                    let method = msg.method().unwrap_or(Method::Other);
                    return self.challenge(
                        now,
                        msg,
                        method,
                        canonical(p.peer.ip()),
                        p.session,
                        true,
                        reply,
                    );
                }
            }
        }
        self.policy.on_success(p.terminal, p.session, p.source);
        self.admission.note_success(now, canonical(p.peer.ip()));
        if let Some(id) = p.account {
            self.guard
                .remember(id, p.net_tag, self.clock.unix_secs(now));
        }
        if self.sharing.shard().is_sharded() {
            self.sharing
                .success(&self.policy, p.terminal, p.source, canonical(p.peer.ip()));
        }
        self.counters.forwarded_digest += 1;
        Verdict::Forward(Identity {
            account: p.account.unwrap_or(AccountId(u32::MAX)),
            mode: AuthMode::Password,
            credentials_at: Some(p.credentials_at),
        })
    }

    /// Count a failure under its type.
    fn count_failure(&mut self, failure: Failure) {
        let c = &mut self.counters;
        match failure {
            Failure::WrongPassword => c.wrong_password += 1,
            Failure::UnknownUser => c.unknown_user += 1,
            Failure::ReplayedNonce => c.replayed_nonce += 1,
            Failure::ForgedNonce => c.forged_nonce += 1,
            Failure::MalformedCredentials => c.malformed_credentials += 1,
            Failure::UriMismatch => c.uri_mismatch += 1,
        }
    }

    /// A failure of a known-good network the policy tables could not track: counted in its
    /// known-good slot; at `max_retry` the network stops being known-good and is answered 403
    /// (its next requests then need a table entry, or are dropped untracked), else
    /// re-challenged.
    fn fail_known_good(
        &mut self,
        now: Instant,
        p: &Pending<'_>,
        msg: &Message<'_>,
        failure: Failure,
        reply: &mut [u8],
    ) -> Verdict {
        self.count_failure(failure);
        self.counters.known_good_failures += 1;
        self.events.push(Event::CredentialRejected {
            source: p.peer,
            username: p.name,
            failure,
        });
        let revoked = p.account.is_none_or(|id| {
            self.guard
                .known_good_failure(id, p.net_tag, self.policy.config().max_retry)
        });
        if revoked {
            return self
                .replies
                .forbid(&mut self.counters, self.proven, msg, reply);
        }
        let method = msg.method().unwrap_or(Method::Other);
        self.challenge(
            now,
            msg,
            method,
            canonical(p.peer.ip()),
            p.session,
            false,
            reply,
        )
    }

    /// A request without credentials: challenge it, unless its terminal is suspended, its
    /// session is closed, or it is for an unknown user while replies are off.
    fn challenge_unauthenticated(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        method: Method,
        ip: IpAddr,
        reply: &mut [u8],
    ) -> Verdict {
        // Computing the terminal key is skipped while nothing is suspended (the common case).
        if self.policy.any_suspended() {
            let terminal = self.policy.terminal_key(fallback_user(msg, method), ip);
            if self
                .policy
                .terminal_suspended(now, terminal, &mut self.events)
                .is_some()
            {
                self.counters.suspended_dropped += 1;
                return Verdict::Drop(DropReason::TerminalSuspended);
            }
        }
        let session = self.session_key(msg, ip);
        match self.policy.session_state(now, session) {
            SessionState::Closed => {
                return self
                    .replies
                    .forbid(&mut self.counters, self.proven, msg, reply)
            }
            SessionState::TimedOut => {
                self.counters.session_timeout += 1;
                return self
                    .replies
                    .forbid(&mut self.counters, self.proven, msg, reply);
            }
            SessionState::New | SessionState::Open => {}
        }
        if !self.replies.reply_unauthorized
            && !self.credentials.knows_username(fallback_user(msg, method))
        {
            self.counters.silenced += 1;
            return Verdict::Drop(DropReason::Silenced {
                status: self.replies.challenge_status(method),
            });
        }
        self.challenge(now, msg, method, ip, session, false, reply)
    }

    /// Count a failure and answer it: re-challenge, or 403 when it suspended the terminal,
    /// banned the source or exhausted the session (silence instead when replies are off).
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        failure: Failure,
        username: &[u8],
        peer: SocketAddr,
        terminal: TerminalKey,
        session: SessionKey,
        source: SourceKey,
        reply: &mut [u8],
    ) -> Verdict {
        self.count_failure(failure);
        let ip = canonical(peer.ip());
        // A failure from a source that has not echoed a nonce we minted for it (forged nonce,
        // malformed credentials) may come from a spoofed address: it is counted by type, but
        // never against a terminal, session or source, and not logged as a rejection (a
        // fail2ban reading the log would ban the spoofed address), so nobody can get another
        // network suspended or banned (the softswitch's, a victim's) with spoofed datagrams.
        // No guess is evaluated without such a nonce, so this costs the lockout nothing.
        if !self.proven {
            self.counters.unproven_failures += 1;
            let method = msg.method().unwrap_or(Method::Other);
            if !self.replies.reply_unauthorized && !self.credentials.knows_username(username) {
                self.counters.silenced += 1;
                return Verdict::Drop(DropReason::Silenced {
                    status: self.replies.challenge_status(method),
                });
            }
            return self.challenge(now, msg, method, ip, session, false, reply);
        }
        self.events.push(Event::CredentialRejected {
            source: peer,
            username: Name::new(username),
            failure,
        });
        let out = self.policy.on_failure(
            now,
            terminal,
            session,
            source,
            ip,
            username,
            &mut self.events,
        );
        if out.untracked {
            self.counters.untracked_dropped += 1;
            return Verdict::Drop(DropReason::Untracked);
        }
        if self.sharing.shard().is_sharded() {
            self.sharing
                .failure(&self.policy, terminal, source, ip, username, &out);
        }
        if out.suspended {
            self.counters.suspensions += 1;
        }
        if out.source_banned {
            self.counters.source_bans += 1;
        }
        if out.session_exhausted {
            self.counters.session_retry_exhausted += 1;
        }
        if out.suspended || out.source_banned || out.session_exhausted {
            return self
                .replies
                .forbid(&mut self.counters, self.proven, msg, reply);
        }
        let method = msg.method().unwrap_or(Method::Other);
        if !self.replies.reply_unauthorized && failure == Failure::UnknownUser {
            self.counters.silenced += 1;
            return Verdict::Drop(DropReason::Silenced {
                status: self.replies.challenge_status(method),
            });
        }
        self.challenge(now, msg, method, ip, session, false, reply)
    }

    #[allow(clippy::too_many_arguments)]
    fn challenge(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        method: Method,
        ip: IpAddr,
        session: SessionKey,
        stale: bool,
        reply: &mut [u8],
    ) -> Verdict {
        self.policy.on_challenge(now, session);
        self.nonce_salt = self.nonce_salt.wrapping_add(1 << SHARD_BITS);
        // The low bits name this worker: credentials answering the nonce are checked for
        // replays here only.
        let salt =
            (self.nonce_salt & !((1 << SHARD_BITS) - 1)) | u32::from(self.sharing.shard().index);
        let nonce = self
            .nonces
            .mint(self.clock.unix_secs(now), ip, &self.replies.realm, salt);
        self.replies.challenge(
            &mut self.counters,
            self.proven,
            msg,
            method,
            &nonce,
            stale,
            reply,
        )
    }

    /// Fingerprint of a request for telling a retransmission (same top Via, CSeq and
    /// Call-ID, from the same port: a UDP retransmission comes from the socket that sent the
    /// original) from a replay of its nonce count.
    fn fingerprint(&self, msg: &Message<'_>, port: u16) -> u32 {
        use std::hash::BuildHasher;
        let h = self.fingerprint_hasher.hash_one((
            msg.header(HeaderName::Via),
            msg.header(HeaderName::CSeq),
            msg.header(HeaderName::CallId),
            port,
        ));
        h as u32
    }

    /// The session of a request: its Call-ID from its source address.
    fn session_key(&self, msg: &Message<'_>, ip: IpAddr) -> SessionKey {
        let call_id = msg.header(HeaderName::CallId).unwrap_or_default();
        self.policy.session_key(call_id, ip)
    }

    /// A secret HA1 for a username no account has (the same work as a real one, never a
    /// match), of `hash`'s length.
    fn decoy_ha1(&self, username: &[u8], hash: Hash) -> Ha1 {
        let mut out = [0u8; 32];
        for (i, half) in out.chunks_exact_mut(16).enumerate() {
            let mut h = SipHasher13x128::new_with_key(&self.decoy_key);
            h.write(username);
            h.write_u8(i as u8);
            half.copy_from_slice(&h.finish128().as_bytes());
        }
        Hashed::from_slice(&out[..hash.size()])
    }

    fn select_credentials<'a>(&self, msg: &Message<'a>) -> Selected<'a> {
        let mut ours: Option<(Credentials<'a>, u8)> = None;
        let mut other = false;
        let mut present = false;
        let mut duplicate = false;
        // By index in the header table: the proxy strips the one that was ours by it.
        let values = msg.headers().enumerate().filter(|(_, h)| {
            matches!(
                h.name,
                HeaderName::Authorization | HeaderName::ProxyAuthorization
            )
        });
        for (at, h) in values {
            present = true;
            match Credentials::parse(h.value) {
                // Our realm, but a hash no algorithm of ours uses: not credentials we can
                // check (malformed, unless others are ours).
                Ok(c)
                    if c.realm.eq_unescaped(&self.replies.realm)
                        && !self.replies.offers(c.algorithm.hash()) => {}
                Ok(c) if c.realm.eq_unescaped(&self.replies.realm) => {
                    duplicate |= ours.is_some();
                    // At most MAX_HEADERS (64) rows: the index fits.
                    ours = Some((c, at as u8));
                }
                Ok(_) => other = true,
                Err(_) => {}
            }
        }
        match (ours, other) {
            _ if duplicate => Selected::Malformed,
            (Some((c, at)), _) => Selected::Ours(c, at),
            (None, true) => Selected::OtherRealm,
            (None, false) if present => Selected::Malformed,
            (None, false) => Selected::None,
        }
    }
}

// Returned by value and matched at once; boxing would allocate per request.
#[allow(clippy::large_enum_variant)]
enum Selected<'a> {
    None,
    Malformed,
    OtherRealm,
    Ours(Credentials<'a>, u8),
}

/// The terminal of a request without (usable) credentials: the To user for REGISTER, the From
/// user otherwise.
fn fallback_user<'a>(msg: &Message<'a>, method: Method) -> &'a [u8] {
    let h = if method == Method::Register {
        HeaderName::To
    } else {
        HeaderName::From
    };
    msg.header(h)
        .and_then(sip::name_addr_uri)
        .and_then(sip::uri_user)
        .unwrap_or_default()
}
