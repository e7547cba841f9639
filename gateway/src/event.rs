//! Events the engine reports to its driver: suspensions, bans and rejected credentials.
//!
//! Layer: sans-IO output. The engine never logs or touches the XDP ban map itself; it queues
//! [`Event`]s and the I/O layer drains them with `Engine::poll_event` (logs one structured line
//! per event, writes bans into the XDP map, …).
//!
//! Invariants: the queues are allocated once and never grow. Security events (suspensions and
//! bans, which the driver must not miss) and rejected-credential notices (which are only logged,
//! rate-limited) have separate queues so a flood of rejections can never push out a ban; what
//! does not fit is counted in [`Events::dropped`], never silently lost.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use quanta::Instant;

use crate::config::SuspendScope;

/// Longest username kept in an event (longer ones are truncated and marked).
pub const NAME_CAP: usize = 32;

/// A username copied into a fixed buffer (no allocation), possibly truncated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    len: u8,
    truncated: bool,
    bytes: [u8; NAME_CAP],
}

impl Name {
    /// Copy (at most [`NAME_CAP`] bytes of) `raw`.
    pub fn new(raw: &[u8]) -> Name {
        let n = raw.len().min(NAME_CAP);
        let mut bytes = [0u8; NAME_CAP];
        bytes[..n].copy_from_slice(&raw[..n]);
        Name {
            len: n as u8,
            truncated: raw.len() > NAME_CAP,
            bytes,
        }
    }

    /// `raw` kept as is, marked truncated when `truncated` (a name that was cut shorter
    /// elsewhere, e.g. in the policy's compact terminal entry).
    pub fn with_truncation(raw: &[u8], truncated: bool) -> Name {
        let mut name = Name::new(raw);
        name.truncated |= truncated;
        name
    }

    /// The kept bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the original was longer than [`NAME_CAP`].
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl Default for Name {
    fn default() -> Self {
        Name::new(b"")
    }
}

/// Printable, log-injection-safe rendering: non-printable bytes and quotes are escaped, a
/// truncated name ends with `...`.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.as_bytes() {
            match b {
                b'"' | b'\\' => write!(f, "\\{}", b as char)?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Why a request's credentials were rejected (each is counted as a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// Known user, wrong digest response.
    WrongPassword,
    /// No password account with that username.
    UnknownUser,
    /// A nonce count (`nc`) that did not increase: a replayed request.
    ReplayedNonce,
    /// A nonce we did not issue (or issued to another address or realm).
    ForgedNonce,
    /// The Authorization / Proxy-Authorization header could not be parsed.
    MalformedCredentials,
    /// The digest `uri` differs from the Request-URI (with `check_digest_uri`).
    UriMismatch,
}

impl Failure {
    /// Stable lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::WrongPassword => "wrong_password",
            Failure::UnknownUser => "unknown_user",
            Failure::ReplayedNonce => "replayed_nonce",
            Failure::ForgedNonce => "forged_nonce",
            Failure::MalformedCredentials => "malformed_credentials",
            Failure::UriMismatch => "uri_mismatch",
        }
    }
}

/// Why a source address was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BanReason {
    /// It caused a terminal suspension (`auth.ban_source_on_suspend`).
    TerminalSuspended,
    /// It failed `auth.source_max_retry` times in a row across usernames (credential stuffing).
    SourceLockout,
}

impl BanReason {
    /// Stable lower-case name for logs and the XDP ban map.
    pub fn as_str(self) -> &'static str {
        match self {
            BanReason::TerminalSuspended => "terminal_suspended",
            BanReason::SourceLockout => "source_lockout",
        }
    }
}

/// Something the driver must act on or log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A terminal reached `max_retry` consecutive failures and is suspended until `until`.
    TerminalSuspended {
        /// Digest username (or To/From user).
        username: Name,
        /// The address whose failure crossed the threshold.
        source: IpAddr,
        /// Scope of the suspension key.
        scope: SuspendScope,
        /// Consecutive failures counted.
        failures: u16,
        /// End of the suspension.
        until: Instant,
    },
    /// A suspension ended; the terminal's counter is reset.
    TerminalUnsuspended {
        /// Digest username.
        username: Name,
        /// The address recorded with the suspension.
        source: IpAddr,
    },
    /// Drop everything from the network `source`/`prefix` until `until` (the XDP ban map
    /// entry).
    SourceBanned {
        /// The network address (the source masked to `prefix` bits).
        source: IpAddr,
        /// Prefix length (32 or 128 for one address; `auth.ipv4_prefix`/`ipv6_prefix`).
        prefix: u8,
        /// Why.
        reason: BanReason,
        /// End of the ban.
        until: Instant,
    },
    /// A source ban ended.
    SourceUnbanned {
        /// The network address.
        source: IpAddr,
        /// Prefix length.
        prefix: u8,
    },
    /// An account's budget of guesses from sources that are not known-good is used up for
    /// this period: such sources are not evaluated for it until `until` (UNIX seconds).
    AccountProtected {
        /// The username (an account, or an unknown name with its decoy budget).
        username: Name,
        /// The source whose guess took the last unit.
        source: IpAddr,
        /// End of the period, UNIX seconds.
        until_unix: u64,
    },
    /// Credentials were rejected (fail2ban-style line; the driver rate-limits logging).
    CredentialRejected {
        /// Who sent them.
        source: SocketAddr,
        /// Username claimed (empty when unparseable).
        username: Name,
        /// Why they were rejected.
        failure: Failure,
    },
}

/// Capacity of the security-event queue.
pub const SECURITY_QUEUE_CAP: usize = 16_384;
/// Capacity of the rejected-credential queue.
pub const REJECTION_QUEUE_CAP: usize = 4_096;

/// The bounded event queues.
#[derive(Debug)]
pub struct Events {
    security: VecDeque<Event>,
    rejections: VecDeque<Event>,
    dropped: u64,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            security: VecDeque::with_capacity(SECURITY_QUEUE_CAP),
            rejections: VecDeque::with_capacity(REJECTION_QUEUE_CAP),
            dropped: 0,
        }
    }
}

impl Events {
    /// Queue an event (never allocates: a full queue counts the event as dropped).
    pub fn push(&mut self, event: Event) {
        let (queue, cap) = match event {
            Event::CredentialRejected { .. } => (&mut self.rejections, REJECTION_QUEUE_CAP),
            _ => (&mut self.security, SECURITY_QUEUE_CAP),
        };
        if queue.len() < cap {
            queue.push_back(event);
        } else {
            self.dropped += 1;
        }
    }

    /// Next event, security events first.
    pub fn pop(&mut self) -> Option<Event> {
        self.security
            .pop_front()
            .or_else(|| self.rejections.pop_front())
    }

    /// Events that did not fit because the driver did not drain the queues.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.security.len() + self.rejections.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_truncates_and_escapes() {
        let n = Name::new(b"alice");
        assert_eq!(n.as_bytes(), b"alice");
        assert_eq!(n.to_string(), "alice");
        let long = [b'a'; 40];
        let n = Name::new(&long);
        assert!(n.is_truncated());
        assert_eq!(n.as_bytes().len(), NAME_CAP);
        assert!(n.to_string().ends_with("..."));
        assert_eq!(Name::new(b"a\"b\n\x00").to_string(), "a\\\"b\\x0a\\x00");
    }

    #[test]
    fn security_events_are_never_pushed_out_by_rejections() {
        let mut e = Events::default();
        let rej = Event::CredentialRejected {
            source: "198.18.0.1:5060".parse().unwrap(),
            username: Name::new(b"x"),
            failure: Failure::WrongPassword,
        };
        for _ in 0..REJECTION_QUEUE_CAP + 10 {
            e.push(rej);
        }
        assert_eq!(e.dropped(), 10);
        e.push(Event::SourceUnbanned {
            source: "198.18.0.1".parse().unwrap(),
            prefix: 32,
        });
        assert!(matches!(e.pop(), Some(Event::SourceUnbanned { .. })));
        assert_eq!(e.len(), REJECTION_QUEUE_CAP);
    }
}
