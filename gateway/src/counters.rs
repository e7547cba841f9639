//! Decision counters of one engine, by reason.
//!
//! Layer: sans-IO output. Plain `u64` fields with stable names: the same names appear in the
//! Prometheus output, `sipgw stats`, and (with the XDP backend) the BPF counters map that
//! `bpftool map dump` prints. Workers keep their own copy; the runtime sums them.

#![forbid(unsafe_code)]

/// A `#[repr(C)]` struct of named `u64` counters with `NAMES`, `HELP` (the first doc line of
/// each), `iter`, `add` and `get`.
macro_rules! counters {
    ($(#[doc = $sdoc:literal])+ $struct:ident { $( $(#[doc = $doc:literal])+ $name:ident, )+ }) => {
        $(#[doc = $sdoc])+
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[repr(C)]
        pub struct $struct {
            $( $(#[doc = $doc])+ pub $name: u64, )+
        }

        impl $struct {
            /// Names of the counters, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name),)+];

            /// One line of help per counter (the first line of its doc, without the space a
            /// `///` comment leaves), in declaration order.
            pub const HELP: &'static [&'static str] =
                &[$(counters!(@first $($doc)+).trim_ascii_start(),)+];

            /// `(name, value)` pairs in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($name), self.$name),)+].into_iter()
            }

            /// Fields from values in declaration order (missing ones are 0).
            pub fn from_values(values: impl IntoIterator<Item = u64>) -> Self {
                let mut it = values.into_iter();
                $struct { $( $name: it.next().unwrap_or(0), )+ }
            }

            /// Add another set (aggregation over workers).
            pub fn add(&mut self, other: &$struct) {
                $( self.$name += other.$name; )+
            }

            /// A counter by name.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $( stringify!($name) => Some(self.$name), )+
                    _ => None,
                }
            }
        }
    };
    (@first $first:literal $($rest:literal)*) => { $first };
}
pub(crate) use counters;

counters! {
    /// Decision counters of one engine (see the module doc).
    Counters {
    /// Datagrams handed to the engine.
    received,
    /// Datagrams that are not a well-formed SIP message (dropped silently).
    malformed,
    /// Requests without Via, From, To, Call-ID or CSeq (dropped: no reply can be built).
    missing_headers,
    /// Responses passed through.
    responses_passed,
    /// ACK/CANCEL and `no_auth_methods` requests passed through without authentication.
    requests_passed,
    /// ACKs for our own 401/407/403 replies, absorbed.
    own_acks_absorbed,
    /// Requests forwarded after a valid digest.
    forwarded_digest,
    /// Of those, UDP retransmissions of an already forwarded request (same nonce count, same
    /// request), forwarded again rather than taken for a replay.
    retransmissions,
    /// Requests forwarded from `ip` / `ip+port` accounts.
    forwarded_address,
    /// Challenges sent (401 or 407), stale ones included.
    challenged,
    /// Of those, re-challenges for a stale nonce (`stale=true`, not a failure).
    stale_nonce,
    /// Failures: wrong digest response for a known user.
    wrong_password,
    /// Failures: unknown username.
    unknown_user,
    /// Requests carrying credentials only for other realms (challenged, not a failure).
    wrong_realm,
    /// Failures: replayed nonce count.
    replayed_nonce,
    /// Failures: nonce not issued by us (or for another address/realm).
    forged_nonce,
    /// Failures: unparseable or duplicated credentials.
    malformed_credentials,
    /// Failures: digest uri differs from the Request-URI (`check_digest_uri`).
    uri_mismatch,
    /// Terminals suspended.
    suspensions,
    /// Source addresses banned.
    source_bans,
    /// Requests dropped because their terminal is suspended.
    suspended_dropped,
    /// Datagrams dropped because their source is banned.
    banned_dropped,
    /// 403 sent because a session used up `session_retry`.
    session_retry_exhausted,
    /// 403 sent because a session ran past `session_timeout`.
    session_timeout,
    /// 403 Forbidden replies sent.
    forbidden_sent,
    /// Replies not sent because `reply_unauthorized` is off.
    silenced,
    /// Nonces whose replay state had been evicted (re-challenged as stale).
    nonce_evicted,
    /// Replies refused because they would exceed the request size plus the allowed growth.
    reply_too_large,
    /// Replies not built because the caller's buffer was too small.
    reply_buffer_too_small,
    /// Requests not evaluated: their account's budget of guesses from sources that are not
    /// known-good is used up for this period (dropped).
    account_protected,
    /// Requests from a known-good source of their account (evaluated without charging the
    /// account's budget).
    known_good_evaluated,
    /// Requests not evaluated because their terminal or source could not be tracked (table full
    /// of suspended or banned entries; fail closed, dropped).
    untracked_dropped,
    /// Datagrams not evaluated because the worker was overloaded and their source had not
    /// authenticated recently (known sources first, see `limits.known_sources`).
    overload_shed,
    /// Replies not sent because they would exceed `amplification_limit` times the request (to
    /// a source that has not completed a round trip).
    amplification_dropped,
    /// qop credentials answering a nonce another worker minted (re-challenged as stale: only
    /// the minter can tell a replay).
    foreign_nonce,
    /// Requests/responses with more than one Call-ID (400 Multiple Call-ID, or dropped).
    invalid_multiple_call_id,
    /// Requests/responses with more than one CSeq (400 Multiple CSeq, or dropped).
    invalid_multiple_cseq,
    /// Requests/responses with more than one From (400 Multiple From, or dropped).
    invalid_multiple_from,
    /// Requests/responses with more than one To (400 Multiple To, or dropped).
    invalid_multiple_to,
    /// Requests with more than one Max-Forwards (400 Multiple Max-Forwards, or dropped).
    invalid_multiple_max_forwards,
    /// Requests/responses with more than one Content-Length (400 Multiple Content-Length, or dropped).
    invalid_multiple_content_length,
    /// Requests/responses whose CSeq is not `number method` (400 Bad CSeq, or dropped).
    invalid_cseq,
    /// Requests/responses whose CSeq number exceeds 2^31-1 (400 CSeq Out Of Range, or dropped).
    invalid_cseq_range,
    /// Requests whose CSeq method differs from the request method (400 CSeq Method Mismatch, or dropped).
    invalid_cseq_method,
    /// Requests whose Max-Forwards is not decimal (400 Bad Max-Forwards, or dropped).
    invalid_max_forwards,
    /// Requests whose Max-Forwards exceeds 255 (400 Max-Forwards Out Of Range, or dropped).
    invalid_max_forwards_range,
    /// Requests whose From is not a name-addr/addr-spec (400 Bad From, or dropped).
    invalid_from,
    /// Requests whose To is not a name-addr/addr-spec (400 Bad To, or dropped).
    invalid_to,
    /// Requests with a Via (responses: a top Via) that does not parse strictly (400 Bad Via, or dropped).
    invalid_via,
    /// Requests/responses with an unbracketed IPv6 address in a Via or the Request-URI (400 Unbracketed IPv6, or dropped).
    invalid_unbracketed_ipv6,
    /// Requests whose sip:/sips: Request-URI host or port does not parse (400 Bad Request-URI, or dropped).
    invalid_request_uri,
    /// Requests with headers (`?`) in the Request-URI (400 Headers In Request-URI, or dropped).
    invalid_request_uri_headers,
    /// Requests with a Proxy-Require option that is not a token (400 Bad Proxy-Require, or dropped).
    invalid_proxy_require,
    /// Requests with a Proxy-Require extension (none is supported: 420 Bad Extension, or dropped).
    bad_extension,
    /// In-dialog requests of a dialog we record-routed (valid Route MAC), passed without a
    /// challenge (`auth.trust_dialogs`).
    dialog_passed,
    /// Failures without a round trip (forged nonce, malformed credentials): counted by type,
    /// not against terminals, sessions or sources (they may be spoofed); re-challenged.
    unproven_failures,
    /// Failures of known-good networks counted in their known-good slot because the policy
    /// tables were full of suspensions and bans (at `max_retry` the network loses the status).
    known_good_failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_iter_add_get() {
        let mut a = Counters {
            received: 2,
            challenged: 1,
            ..Counters::default()
        };
        let b = Counters {
            received: 3,
            ..Counters::default()
        };
        a.add(&b);
        assert_eq!(a.get("received"), Some(5));
        assert_eq!(a.get("challenged"), Some(1));
        assert_eq!(a.get("nope"), None);
        assert_eq!(a.iter().count(), Counters::NAMES.len());
        assert_eq!(Counters::NAMES[0], "received");
        assert_eq!(
            std::mem::size_of::<Counters>(),
            8 * Counters::NAMES.len(),
            "plain u64 fields, mirrored by the BPF side"
        );
    }
}
