//! What goes into the engine and what comes out: a message with its source ([`Datagram`]),
//! the [`Verdict`] on it and the reasons it carries, and the secrets and clock mapping the
//! driver supplies ([`Secrets`], [`WallClock`]).
//!
//! Layer: protocol core, sans-IO; plain data.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use quanta::Instant;

use crate::config::Config;
use crate::credentials::{AccountId, AuthMode};
use crate::sip;
use crate::validate;

/// A reply is never more than this many bytes larger than the request that caused it.
pub const MAX_REPLY_GROWTH: usize = 256;

/// Datagrams processed together by [`crate::Engine::handle_batch`] (digests of one batch are
/// verified together).
pub const BATCH: usize = 32;

/// Longest username accepted in credentials (longer: malformed).
pub const MAX_USERNAME: usize = 128;

/// Who a forwarded request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The account in the credential store.
    pub account: AccountId,
    /// How it proved it.
    pub mode: AuthMode,
    /// The header (index in [`sip::Message::headers`]) that held the credentials it proved
    /// itself with, for the proxy to strip without parsing them again; `None` for an account
    /// by address.
    pub credentials_at: Option<u8>,
}

/// Why a datagram is dropped without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not a well-formed SIP message.
    Malformed(sip::ParseError),
    /// A request lacking Via, From, To, Call-ID or CSeq.
    MissingHeaders,
    /// Its source address is banned.
    SourceBanned,
    /// Its terminal is suspended.
    TerminalSuspended,
    /// `reply_unauthorized` is off: the reply with this status was not sent.
    Silenced {
        /// The status that would have been sent.
        status: u16,
    },
    /// The ACK for one of our own non-2xx replies (hop-by-hop, ends here).
    OwnAck,
    /// The reply would have exceeded [`MAX_REPLY_GROWTH`].
    ReplyTooLarge,
    /// The caller's reply buffer was too small.
    ReplyBufferTooSmall,
    /// The account's budget of guesses from sources that are not known-good is used up for
    /// this period: the request was not evaluated (see [`crate::guard`]).
    AccountProtected,
    /// The terminal or source could not be tracked (its table is full of suspended or banned
    /// entries): fail closed, not evaluated.
    Untracked,
    /// The reply to a source that has not completed a round trip with us would be larger
    /// than `limits.amplification_limit` times the request.
    Amplification,
    /// Failed [`validate`]: an ACK or a response (never answered), counted by reason. A
    /// request is answered instead (`Verdict::Reply` with 400/420), or dropped as
    /// [`DropReason::Silenced`] when `reply_unauthorized` is off.
    Invalid(validate::Invalid),
    /// The worker was overloaded and the source is not known to have authenticated recently:
    /// not evaluated (see [`crate::admission`]).
    Overloaded,
    /// Placeholder of [`Verdict::default`]: the datagram was not processed.
    NotProcessed,
}

/// Why a datagram passes without authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassReason {
    /// A response (routed by its Via).
    Response,
    /// ACK (cannot be challenged, RFC 3261 §22.1).
    Ack,
    /// CANCEL (cannot be challenged, RFC 3261 §22.1).
    Cancel,
    /// A method listed in `auth.no_auth_methods`.
    NoAuthMethod,
    /// An in-dialog BYE of a dialog the gateway record-routed for this endpoint
    /// (`auth.trust_dialogs`; see [`crate::proxy::Proxy::in_dialog`]).
    InDialog,
}

/// What to do with a datagram.
#[must_use = "a verdict says what to do with the datagram"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated request: forward it to the softswitch.
    Forward(Identity),
    /// Send the first `len` bytes of the reply buffer back to the source.
    Reply {
        /// Bytes written.
        len: usize,
        /// Status code of the reply (401, 407, 403, or 400/420 for an invalid request).
        status: u16,
    },
    /// Drop it silently.
    Drop(DropReason),
    /// Pass it on without authentication.
    Pass(PassReason),
}

impl Default for Verdict {
    /// `Drop(NotProcessed)`: the initial value of a verdict slot.
    fn default() -> Self {
        Verdict::Drop(DropReason::NotProcessed)
    }
}

/// One message of a batch: a datagram, or a message framed from a stream.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Its source.
    pub peer: SocketAddr,
    /// The message (a UDP payload, or one framed stream message).
    pub bytes: &'a [u8],
    /// It came over a connection (TCP, TLS): the handshake proved the source address, so
    /// replies to it are not bounded by `limits.amplification_limit`.
    pub connected: bool,
}

impl<'a> Datagram<'a> {
    /// A UDP datagram from `peer`.
    pub const fn new(peer: SocketAddr, bytes: &'a [u8]) -> Datagram<'a> {
        Datagram {
            peer,
            bytes,
            connected: false,
        }
    }
}

/// Maps `quanta` instants (monotonic) to UNIX time, which nonces carry so that several nodes
/// sharing a secret accept each other's nonces.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    /// An instant.
    pub origin: Instant,
    /// UNIX time at `origin`.
    pub origin_unix: Duration,
}

impl WallClock {
    /// UNIX seconds at `now`.
    pub fn unix_secs(&self, now: Instant) -> u64 {
        (self.origin_unix + now.saturating_duration_since(self.origin)).as_secs()
    }
}

/// The secrets an engine needs; the driver supplies them (random per process, or the nonce
/// secret from the configuration so several nodes agree).
#[derive(Clone)]
pub struct Secrets {
    /// Nonce MAC secret.
    pub nonce: [u8; 32],
    /// The nonce secret before the last rotation (accepted for `nonce.grace`).
    pub previous_nonce: Option<[u8; 32]>,
    /// Keys the policy-table hashes, the To-tags and the decoy HA1s of unknown users.
    pub local: [u8; 32],
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    /// Secrets from 64 random bytes, with the configured nonce secrets taking precedence.
    pub fn new(config: &Config, random: [u8; 64]) -> Secrets {
        let mut nonce = [0u8; 32];
        let mut local = [0u8; 32];
        nonce.copy_from_slice(&random[..32]);
        local.copy_from_slice(&random[32..]);
        Secrets {
            nonce: config.nonce.secret.unwrap_or(nonce),
            previous_nonce: config.nonce.previous_secret,
            local,
        }
    }
}
