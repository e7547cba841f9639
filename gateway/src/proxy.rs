//! Stateless-proxy message rewriting: what the gateway changes in a request or a response
//! before it forwards it (RFC 3261 §16 and §16.11, RFC 3581 `rport`, RFC 3327 `Path`, RFC 3325
//! `P-Asserted-Identity`, RFC 5626-style flow tokens for endpoints behind NAT).
//!
//! Layer: protocol core, sans-IO. The runtime decides *whether* a datagram may pass (the
//! [`crate::engine`] verdict); this module decides *where* it goes and *what* it looks like
//! then. [`Proxy`] is built once per worker from a [`ProxyConfig`] and is immutable
//! (`Send + Sync + Clone`); its functions take a checked [`Message`], the datagram's
//! source, and the caller's output buffer, and return a [`Route`]:
//!
//! * [`Proxy::request_upstream`]: a request from an endpoint, to the softswitch (and
//!   [`Proxy::request_upstream_verified`] when the engine verified its credentials and names
//!   the header that held them: stripped without parsing them again);
//! * [`Proxy::request_downstream`]: a request from the softswitch, to an endpoint;
//! * [`Proxy::response`]: a response from anyone, to the next Via.
//!
//! # Invariants
//!
//! * No clock, no socket, no heap: output is written into the caller's `&mut [u8]`; state
//!   needed later (the flow of an endpoint, the branch of a transaction) is carried in the
//!   message itself under a keyed MAC/hash, so the proxy is fully stateless.
//! * Every [`Route::Send`] / [`Route::Reply`] output parses again with [`Message::parse`],
//!   its body is byte-identical to the input's body and its `Content-Length` headers are
//!   copied unchanged. Output longer than [`MAX_MESSAGE_LEN`](crate::sip::MAX_MESSAGE_LEN) or with more than
//!   [`MAX_HEADERS`](crate::sip::MAX_HEADERS) headers is [`ProxyDrop::TooLarge`]; output that does not fit the
//!   caller's buffer is [`ProxyDrop::OutputTooSmall`].
//! * Headers the proxy does not touch are copied line for line as written (compact names,
//!   case, folding included); a header it edits keeps its name as written (`v:` stays `v:`).
//!
//! # No-panic contract
//!
//! Every public function accepts any [`Message`] and any address and returns a [`Route`];
//! nothing indexes out of bounds (slices are taken with `get`), arithmetic is checked or
//! saturating. Property tests feed generated and mutated messages.
//!
//! # Requests (both directions)
//!
//! Required: a request start line (else [`ProxyDrop::NotRequest`]), `Via`, `From`, `To`,
//! `Call-ID`, `CSeq` (else [`ProxyDrop::MissingHeaders`]), a top Via that parses as
//! `SIP/2.0/transport sent-by *(;param)` (else [`ProxyDrop::BadVia`]) and a decimal
//! `Max-Forwards` if there is one (else [`ProxyDrop::BadMaxForwards`]).
//!
//! * **Max-Forwards** 0 on arrival: ACK → [`ProxyDrop::Loop`]; any other request →
//!   [`Route::Reply`] with a `483 Too Many Hops` (its Via, From, To, Call-ID and CSeq lines
//!   copied as written, our deterministic To-tag added when the To has none, then
//!   `Content-Length: 0`) sent to the top Via's response address: the source IP, and the
//!   source port when the Via has `rport`, else the sent-by port, else 5060 (RFC 3261
//!   §18.2.2, RFC 3581 §4). An ACK whose To-tag is that tag is dropped
//!   ([`ProxyDrop::OwnAck`]): it ends at the gateway. Otherwise Max-Forwards is decremented
//!   in place (the first header; further Max-Forwards headers are removed), or
//!   `Max-Forwards: 70` is inserted when absent.
//! * **Our Via** `Via: SIP/2.0/UDP <advertised>;branch=z9hG4bK-sgw-<32 hex><16 hex>` is the
//!   first header. The first 32 hex digits (RFC 3261 §16.11) are a SipHash-1-3/128 (key:
//!   first half of [`ProxyConfig::key`]) over: the direction, the source address, the
//!   destination (the "routing decision" component), then — when the top Via branch starts with the
//!   magic cookie `z9hG4bK` — that branch and the Via's sent-by; otherwise (RFC 2543 peers)
//!   the whole top Via, the From-tag, the Call-ID, the CSeq *number* and the Request-URI.
//!   The method is never hashed, so a retransmission, the CANCEL and the ACK for a non-2xx
//!   get the branch of their INVITE. Unlike the list of §16.11, the To-tag is not hashed
//!   either: the ACK for a non-2xx carries the response's To-tag, which the INVITE did not
//!   have, and a stateless proxy cannot know it (an RFC 2543 ACK for a 2xx therefore shares
//!   its INVITE's branch, which RFC 2543 peers expect anyway). The last 16 hex digits are
//!   a MAC (SipHash-1-3/64, second half of the key) over that hash and the address the
//!   response will be sent back to (see *Responses*), so the gateway only routes responses
//!   to requests it forwarded itself.
//! * **Client Via** (the received top via-parm): `;received=<source IP>` is *always* set
//!   (an existing `received` is replaced in place, duplicates dropped; IPv6 without
//!   brackets, IPv4-mapped addresses written as IPv4), and an *empty* `rport` is filled with
//!   the source port (`rport` with a value is left alone). Other parameters are copied
//!   verbatim, in order; further via-parms of the same line follow unchanged.
//! * **Credentials** ([`ProxyConfig::strip_credentials`], both directions): `Authorization`
//!   and `Proxy-Authorization` headers that parse as Digest credentials whose realm equals
//!   [`ProxyConfig::realm`] (unescaped) are removed; others (other realms, unparseable) kept.
//! * **Identity** (upstream only): every `P-Asserted-Identity` and `P-Preferred-Identity`
//!   from the endpoint is removed, always (RFC 3325 §9.1); with
//!   [`ProxyConfig::assert_identity`] and an identity, `P-Asserted-Identity:
//!   <sip:USER@REALM>` is added (bytes other than alphanumerics and `-_.!~*'()&=+$`
//!   percent-encoded; an empty identity adds nothing). Downstream (the softswitch is
//!   trusted) they are copied as they are.
//! * **Flow tokens**: `sgw` + base64url (no padding) of `family (4|6) ‖ IP ‖ port (BE) ‖
//!   MAC`, MAC = SipHash-1-3/64 keyed by the second half of [`ProxyConfig::key`]: 23
//!   characters for IPv4, 39 for IPv6, all URI-user safe. See [`Proxy::flow_token`].
//! * **Path** (upstream REGISTER with [`ProxyConfig::add_path`]): `Path:
//!   <sip:TOKEN@<advertised>;lr>` with the source as flow. Always added when `add_path` is
//!   on, even without `Supported: path` from the UA (RFC 3327 §5.1 says a proxy should only
//!   add it then, but VOS3000/Asterisk/Kamailio accept it and the NAT'd endpoints need it);
//!   `Supported` is not touched.
//! * **Record-Route** (INVITE, SUBSCRIBE, REFER, also in-dialog ones, both directions, with
//!   [`ProxyConfig::record_route`]): `Record-Route: <sip:TOKEN@<advertised>;lr>`; the flow is
//!   the source upstream, the destination downstream.
//! * **Routing upstream**: always to [`ProxyConfig::softswitch`]. If the top Route entry's
//!   URI is ours (host is an IP equal to the advertised IP, port — default 5060 — equal to
//!   the advertised port; any user part), that entry is removed (loose routing, §16.4):
//!   the whole line when it was its only entry, else just that entry. The Request-URI and
//!   further Route entries are untouched.
//! * **Routing downstream**, first match wins: (1) the top Route entry is ours: removed as
//!   above; if its URI has a user part it must be a valid flow token (else
//!   [`ProxyDrop::BadFlowToken`]) and the token's flow is the destination; (2) the next
//!   Route entry (or the top one if it was not ours): its URI host must be an IP literal
//!   (port default 5060) else [`ProxyDrop::Unroutable`]; (3) the Request-URI user part is
//!   a well-formed flow token (`sgw` + 20 or 36 base64url characters decoding to a known
//!   family): its flow, or [`ProxyDrop::BadFlowToken`] when the MAC fails; (4) the
//!   Request-URI host (IP literal only, port default 5060, `maddr` ignored, no DNS; a
//!   hostname or a non-SIP URI is [`ProxyDrop::Unroutable`]). The Request-URI is never
//!   rewritten.
//! * A destination equal to the advertised address is [`ProxyDrop::Loop`]; an unspecified
//!   IP (`0.0.0.0`, `::`) or port 0 is [`ProxyDrop::Unroutable`].
//!
//! Header order of a forwarded request:
//!
//! ```text
//! METHOD Request-URI SIP/2.0                       (rebuilt from the parsed parts)
//! Via: SIP/2.0/UDP <advertised>;branch=z9hG4bK-sgw-<hash><mac>
//! Record-Route: <sip:TOKEN@<advertised>;lr>        (dialog-creating, record_route)
//! Path: <sip:TOKEN@<advertised>;lr>                (upstream REGISTER, add_path)
//! P-Asserted-Identity: <sip:USER@REALM>            (upstream, identity, assert_identity)
//! Max-Forwards: 70                                 (only when the request had none)
//! <the request's headers, in order, edited as above>
//! <empty line> <body, byte for byte>
//! ```
//!
//! Our Record-Route/Path therefore come before every existing Record-Route/Path, as RFC
//! 3261 §16.6 and RFC 3327 §5.1 require (the order between different header names carries
//! no meaning).
//!
//! # Responses
//!
//! The top Via must be ours: its branch is [`BRANCH_PREFIX`] and [`BRANCH_HASH_LEN`] hex
//! digits and its sent-by is an IP literal and port (default 5060) equal to the advertised
//! address, else [`ProxyDrop::NotOurVia`]. The destination is the next via-parm's `received`
//! IP (else its sent-by host, which must then be an IP literal: [`ProxyDrop::Unroutable`])
//! and its `rport` value (else its sent-by port, else 5060); no next Via is
//! [`ProxyDrop::NoNextVia`], a malformed `received`/`rport` [`ProxyDrop::BadVia`]. The
//! branch's MAC must match that destination, else [`ProxyDrop::ForgedVia`]: without it
//! anyone could make the gateway relay a response (with its trusted source address) to any
//! host, the softswitch included. Our via-parm is removed (only it, when its header line
//! holds several; else the line). Everything else (Record-Route included) is copied
//! unchanged.

#![forbid(unsafe_code)]

use core::fmt;
use std::hash::Hasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use siphasher::sip::SipHasher13;
use siphasher::sip128::{Hasher128, SipHasher13 as SipHasher13x128};
use subtle::ConstantTimeEq;

use crate::addr::{canonical, canonical_peer, same_peer};
use crate::digest::Credentials;
use crate::flow::{ConnId, Flow, Transport};
use crate::sip::num::{parse_u32, put_hex, HEX};
use crate::sip::values::{
    after_first, parse_ip, parse_port, parse_sip_uri, parse_via, split_param, trim_lws, uri_param,
    Params, SipUri, Via,
};
use crate::sip::write::{WriteError, Writer};
use crate::sip::{self, HeaderName, Message, Method, StartLine, SIP_VERSION};

/// Start of the branch of every Via the gateway inserts: the RFC 3261 magic cookie and a
/// fixed marker, by which [`Proxy::response`] recognises its own Via cheaply.
pub const BRANCH_PREFIX: &str = "z9hG4bK-sgw-";

/// Start of every flow token (the user part of our Path / Record-Route URIs).
pub const FLOW_TOKEN_PREFIX: &str = "sgw";

/// Longest flow token in bytes (IPv6 stream flow): prefix plus 48 base64url characters.
pub const MAX_FLOW_TOKEN_LEN: usize = FLOW_TOKEN_PREFIX.len() + 48;

/// Longest flow-token payload: kind, IPv6 address, port, connection and its zero pad byte,
/// MAC (a multiple of 3 bytes, as every payload: base64url without padding).
const MAX_TOKEN_PAYLOAD: usize = 1 + 16 + 2 + STREAM_TOKEN_EXTRA + 8;

/// Bytes a stream flow adds to a token: the connection (8) and a zero byte that keeps the
/// payload a multiple of 3.
const STREAM_TOKEN_EXTRA: usize = 9;

/// `Max-Forwards` inserted into a request that has none (RFC 3261 §8.1.1.6).
pub const DEFAULT_MAX_FORWARDS: u32 = 70;

/// Port assumed when a SIP URI or a Via sent-by has none.
pub const DEFAULT_SIP_PORT: u16 = 5060;

/// Hex digits of the dialog MAC in our Record-Route URIs (`;dlg=`, see
/// [`Proxy::dialog_mac`]).
pub const DIALOG_MAC_LEN: usize = 16;

/// Length of our branch after [`BRANCH_PREFIX`]: 32 hex digits of transaction hash and 16 of
/// MAC (see [`Proxy::response`]).
pub const BRANCH_HASH_LEN: usize = 48;

/// The parameter of our Via naming the connection a request came on (a flow token).
pub const VIA_FLOW_PARAM: &[u8] = b"sgwflow";

/// The RFC 3261 magic cookie of a branch.
const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

/// What the proxy is and what it does to messages.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Address the gateway's socket is bound to / advertised in Via, Path and Record-Route
    /// (IP literal and port; an IPv6 scope id is not written).
    pub advertised: SocketAddr,
    /// The softswitch: where requests from endpoints go; the only address whose requests
    /// bypass authentication.
    pub softswitch: SocketAddr,
    /// Remove Authorization / Proxy-Authorization headers whose realm is [`Self::realm`]
    /// before forwarding (default `true`). Credentials for other realms are kept.
    pub strip_credentials: bool,
    /// Add `P-Asserted-Identity: <sip:USER@REALM>` to authenticated upstream requests
    /// (default `true`). P-Asserted-Identity / P-Preferred-Identity sent by endpoints are
    /// removed whatever this says.
    pub assert_identity: bool,
    /// Add Path to upstream REGISTERs (default `true`).
    pub add_path: bool,
    /// Add Record-Route to INVITE, SUBSCRIBE and REFER in both directions (default `true`).
    pub record_route: bool,
    /// The gateway realm: the host of the asserted identity, and how our credentials are
    /// recognised.
    pub realm: Box<str>,
    /// Secret key (random per process): the first half keys the Via branch hash and our
    /// To-tag, the second half the flow-token and branch MACs. Every gateway process that
    /// must accept another's flow tokens and responses (restarts, several workers) needs the
    /// same key.
    pub key: [u8; 32],
    /// The transport of the softswitch leg (default UDP): the transport of our Via on
    /// upstream requests and of the softswitch-facing Path/Record-Route URIs.
    pub upstream: Transport,
    /// With a UDP softswitch leg: upstream requests longer than this many bytes (once
    /// rewritten) go over TCP instead (RFC 3261 §18.1.1: 1300 when the path MTU is unknown).
    /// `None` (the default): never; set it only when the softswitch listens on TCP.
    pub tcp_above: Option<usize>,
    /// The advertised TLS port, when the gateway listens for TLS (default `None`); our URIs
    /// and Via for TLS legs use it, and it is ours in Route headers too.
    pub tls_port: Option<u16>,
}

impl ProxyConfig {
    /// A configuration with every option at its default (`true`).
    pub fn new(
        advertised: SocketAddr,
        softswitch: SocketAddr,
        realm: &str,
        key: [u8; 32],
    ) -> ProxyConfig {
        ProxyConfig {
            advertised,
            softswitch,
            strip_credentials: true,
            assert_identity: true,
            add_path: true,
            record_route: true,
            realm: realm.into(),
            key,
            upstream: Transport::Udp,
            tcp_above: None,
            tls_port: None,
        }
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("advertised", &self.advertised)
            .field("softswitch", &self.softswitch)
            .field("strip_credentials", &self.strip_credentials)
            .field("assert_identity", &self.assert_identity)
            .field("add_path", &self.add_path)
            .field("record_route", &self.record_route)
            .field("realm", &self.realm)
            .field("key", &"..")
            .field("upstream", &self.upstream)
            .field("tcp_above", &self.tcp_above)
            .field("tls_port", &self.tls_port)
            .finish()
    }
}

/// What to do with a message after [`Proxy`] has rewritten it.
#[must_use = "a route says where the output goes"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Send the first `len` bytes of the output buffer to `to`.
    Send {
        /// Next hop: its transport, address and, for a stream flow of ours, connection.
        to: Flow,
        /// Bytes written.
        len: usize,
    },
    /// Send the first `len` bytes of the output buffer (a locally generated response, e.g.
    /// `483 Too Many Hops`) back to `to`.
    Reply {
        /// The response address of the request's top Via (over the flow it came on).
        to: Flow,
        /// Bytes written.
        len: usize,
        /// Status code of the response.
        status: u16,
    },
    /// Drop the message.
    Drop(ProxyDrop),
}

/// Why the proxy drops a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyDrop {
    /// A response given to a request function.
    NotRequest,
    /// A request given to [`Proxy::response`].
    NotResponse,
    /// A request lacking Via, From, To, Call-ID or CSeq.
    MissingHeaders,
    /// The top Via is missing or does not parse (`SIP/2.0/transport sent-by;params`), or
    /// the next Via of a response carries a malformed `received` / `rport`.
    BadVia,
    /// A response whose top Via is not the gateway's (marker and sent-by).
    NotOurVia,
    /// A response with our Via and no Via after it.
    NoNextVia,
    /// A response whose top Via looks like ours but whose branch MAC does not match the
    /// address of the next Via: a response we did not route the request of (e.g. someone
    /// trying to relay responses through the gateway), or a next Via altered on the way.
    ForgedVia,
    /// `Max-Forwards` is not a decimal number.
    BadMaxForwards,
    /// An ACK arrived with `Max-Forwards: 0`, or the destination is the gateway itself.
    Loop,
    /// The ACK for a `483` the gateway generated: it ends here.
    OwnAck,
    /// No destination: a hostname (no DNS here), a non-SIP URI, port 0 or an unspecified IP.
    Unroutable,
    /// A flow token of ours (Route, Request-URI) fails the MAC check or is malformed.
    BadFlowToken,
    /// The output does not fit the caller's buffer.
    OutputTooSmall,
    /// The output would exceed [`MAX_MESSAGE_LEN`](crate::sip::MAX_MESSAGE_LEN) bytes or [`MAX_HEADERS`](crate::sip::MAX_HEADERS) headers.
    TooLarge,
}

impl From<WriteError> for ProxyDrop {
    fn from(e: WriteError) -> ProxyDrop {
        match e {
            WriteError::TooLarge => ProxyDrop::TooLarge,
            WriteError::BufferTooSmall => ProxyDrop::OutputTooSmall,
        }
    }
}

/// A flow token: `sgw` followed by base64url characters (see [`Proxy::flow_token`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FlowToken {
    buf: [u8; MAX_FLOW_TOKEN_LEN],
    len: u8,
}

impl FlowToken {
    /// The token's bytes (ASCII, URI-user safe).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The token as text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl fmt::Debug for FlowToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a user part is not a flow token we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenError {
    /// Not shaped like one of our tokens at all.
    Malformed,
    /// Shaped like one, but the MAC does not match.
    Forged,
}

/// The advertised `host:port` as written in our URIs and Via (IPv6 in brackets).
#[derive(Clone, Copy)]
struct HostPort {
    buf: [u8; 64],
    len: u8,
}

impl HostPort {
    fn new(addr: SocketAddr) -> HostPort {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        w.hostport(addr);
        let len = w.len() as u8;
        HostPort { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// Request direction: part of the branch hash, and what the identity rules apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Upstream,
    Downstream,
}

/// The stateless proxy of one worker: immutable after [`Proxy::new`].
#[derive(Clone)]
pub struct Proxy {
    cfg: ProxyConfig,
    advertised: SocketAddr,
    adv_text: HostPort,
    /// The advertised TLS `host:port`, when TLS is configured.
    tls_text: Option<HostPort>,
    branch_key: [u8; 16],
    tag: crate::sip::tag::LocalTag,
    flow_key: [u8; 16],
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy").field("cfg", &self.cfg).finish()
    }
}

/// Everything decided about a request before it is written out.
struct Plan<'a> {
    dir: Dir,
    /// Where the request came from.
    from: Flow,
    /// The transport it leaves on.
    out: Transport,
    branch: [u8; BRANCH_HASH_LEN],
    /// New Max-Forwards value; `None`: insert the default.
    max_forwards: Option<u32>,
    /// Leading Route entries (ours) to remove: 0, 1 or 2.
    pop_route: u8,
    /// The endpoint's flow, for Record-Route (a second entry when the two legs' transports
    /// differ: RFC 3261 §16.6 step 4).
    record_route: Option<Flow>,
    path: Option<Flow>,
    identity: Option<&'a [u8]>,
    /// The header holding the credentials of our realm, when the engine verified them (the
    /// others are not ours: they are kept without parsing them).
    credentials_at: Option<u8>,
}

impl Proxy {
    /// Builds the proxy (precomputes the advertised `host:port` and the keys).
    pub fn new(cfg: ProxyConfig) -> Proxy {
        let mut branch_key = [0u8; 16];
        let mut flow_key = [0u8; 16];
        branch_key.copy_from_slice(cfg.key.get(..16).unwrap_or(&[0; 16]));
        flow_key.copy_from_slice(cfg.key.get(16..).unwrap_or(&[0; 16]));
        let mut tag_key = branch_key;
        tag_key[0] ^= 0x5a;
        tag_key[15] ^= 0xa5;
        let advertised = canonical_peer(cfg.advertised);
        Proxy {
            adv_text: HostPort::new(advertised),
            tls_text: cfg
                .tls_port
                .map(|p| HostPort::new(SocketAddr::new(advertised.ip(), p))),
            advertised,
            cfg,
            branch_key,
            tag: crate::sip::tag::LocalTag::new(tag_key),
            flow_key,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ProxyConfig {
        &self.cfg
    }

    /// Whether a message from `from` comes from the softswitch (requests from it bypass
    /// authentication). Over UDP the address and port must match; over a stream transport the
    /// IP address (the handshake proved it, and the softswitch connects from any port).
    /// IPv4-mapped IPv6 addresses compare equal to their IPv4 form.
    pub fn is_softswitch(&self, from: impl Into<Flow>) -> bool {
        let from: Flow = from.into();
        if from.transport.is_stream() {
            canonical(from.peer.ip()) == canonical(self.cfg.softswitch.ip())
        } else {
            same_peer(from.peer, self.cfg.softswitch)
        }
    }

    /// A request from an endpoint (authenticated, or passed: ACK, CANCEL, no-auth methods),
    /// rewritten into `out` for the softswitch. `identity`: `Some(username)` when
    /// authenticated (for P-Asserted-Identity), `None` when passed unauthenticated.
    pub fn request_upstream(
        &self,
        msg: &Message<'_>,
        from: impl Into<Flow>,
        identity: Option<&[u8]>,
        out: &mut [u8],
    ) -> Route {
        self.request(msg, from.into(), Dir::Upstream, identity, None, out)
            .unwrap_or_else(Route::Drop)
    }

    /// [`Proxy::request_upstream`] for a request whose credentials the engine verified:
    /// `credentials_at` is the index (in [`Message::headers`]) of the one header of our
    /// realm it carried (a request with two is never forwarded), so the credentials are
    /// stripped without being parsed a second time.
    pub fn request_upstream_verified(
        &self,
        msg: &Message<'_>,
        from: impl Into<Flow>,
        identity: Option<&[u8]>,
        credentials_at: u8,
        out: &mut [u8],
    ) -> Route {
        self.request(
            msg,
            from.into(),
            Dir::Upstream,
            identity,
            Some(credentials_at),
            out,
        )
        .unwrap_or_else(Route::Drop)
    }

    /// A request from the softswitch, rewritten into `out` for an endpoint (or the next
    /// Route).
    pub fn request_downstream(
        &self,
        msg: &Message<'_>,
        from: impl Into<Flow>,
        out: &mut [u8],
    ) -> Route {
        self.request(msg, from.into(), Dir::Downstream, None, None, out)
            .unwrap_or_else(Route::Drop)
    }

    /// A response from anyone: its top Via must be ours; it is removed and the response is
    /// rewritten into `out` for the next Via's address (over the connection our Via names,
    /// when the request came over a stream). `from` is not used (routing is by Via only).
    pub fn response(&self, msg: &Message<'_>, from: impl Into<Flow>, out: &mut [u8]) -> Route {
        let _ = from;
        self.response_inner(msg, out).unwrap_or_else(Route::Drop)
    }

    /// The flow token for `flow` (IPv4-mapped addresses are tokenised as IPv4): `sgw` and the
    /// base64url encoding (no padding) of `kind ‖ IP ‖ port ‖ [connection] ‖ MAC`, where
    /// `kind` is the address family (4 or 6) plus 16 × the transport's code, and a stream
    /// flow's [`ConnId`] follows the port (8 bytes, big-endian, then a zero byte): 23, 32,
    /// 39 or 51 characters for UDP/IPv4, stream/IPv4, UDP/IPv6, stream/IPv6. A UDP flow's
    /// token is the same as before stream transports existed.
    pub fn flow_token(&self, flow: impl Into<Flow>) -> FlowToken {
        let flow: Flow = flow.into();
        let ip = canonical(flow.peer.ip());
        let mut payload = [0u8; MAX_TOKEN_PAYLOAD];
        let kind = 16 * flow.transport.code();
        let mut n = match ip {
            IpAddr::V4(a) => {
                payload[0] = 4 + kind;
                payload[1..5].copy_from_slice(&a.octets());
                payload[5..7].copy_from_slice(&flow.peer.port().to_be_bytes());
                7
            }
            IpAddr::V6(a) => {
                payload[0] = 6 + kind;
                payload[1..17].copy_from_slice(&a.octets());
                payload[17..19].copy_from_slice(&flow.peer.port().to_be_bytes());
                19
            }
        };
        if flow.transport.is_stream() {
            let conn = flow.conn.map_or(0, |c| c.0);
            payload[n..n + 8].copy_from_slice(&conn.to_be_bytes());
            payload[n + 8] = 0;
            n += STREAM_TOKEN_EXTRA;
        }
        let mac = self.flow_mac(&payload[..n]);
        payload[n..n + 8].copy_from_slice(&mac);
        let mut buf = [0u8; MAX_FLOW_TOKEN_LEN];
        buf[..FLOW_TOKEN_PREFIX.len()].copy_from_slice(FLOW_TOKEN_PREFIX.as_bytes());
        let len = FLOW_TOKEN_PREFIX.len()
            + base64url_encode(&payload[..n + 8], &mut buf[FLOW_TOKEN_PREFIX.len()..]);
        FlowToken {
            buf,
            len: len as u8,
        }
    }

    /// The flow a token of ours stands for; `None` when it is not one (malformed, or the MAC
    /// does not match).
    pub fn decode_flow_token(&self, token: &[u8]) -> Option<Flow> {
        self.decode_token(token).ok()
    }

    /// The dialog MAC of our Record-Route URIs (`;dlg=` + 16 hex digits): SipHash-1-3/64
    /// (second half of the key) over the dialog's Call-ID, the From-tag of the request that
    /// created it and the endpoint's flow, so a Route to us names one dialog of one endpoint
    /// and nobody else can mint one.
    pub fn dialog_mac(
        &self,
        call_id: &[u8],
        from_tag: &[u8],
        flow: impl Into<Flow>,
    ) -> [u8; DIALOG_MAC_LEN] {
        let flow: Flow = flow.into();
        let mut h = SipHasher13::new_with_key(&self.flow_key);
        h.write(b"sipgw-dialog");
        h.write(self.flow_token(flow).as_bytes());
        h.write_u8(0xff);
        h.write(trim_lws(call_id));
        h.write_u8(0xff);
        h.write(trim_lws(from_tag));
        let mut out = [0u8; DIALOG_MAC_LEN];
        put_hex(&mut out, &h.finish().to_be_bytes());
        out
    }

    /// Whether `msg`, from `peer`, is an in-dialog request of a dialog the gateway
    /// record-routed for that endpoint: a To-tag, and a top Route entry that is ours, whose
    /// flow token is valid and names `peer`'s IP address (any port: NATs rebind), and whose
    /// `dlg` parameter is the [`Proxy::dialog_mac`] of the request's Call-ID, one of its tags
    /// (the From-tag when the endpoint created the dialog, the To-tag when the softswitch did)
    /// and that flow.
    /// Such a request belongs to a dialog whose creating request we forwarded (authenticated
    /// upstream, or from the softswitch downstream). Constant-time MAC comparison.
    pub fn in_dialog(&self, msg: &Message<'_>, peer: SocketAddr) -> bool {
        let has_to_tag = msg
            .header(HeaderName::To)
            .is_some_and(|to| sip::header_param(to, b"tag").is_some());
        if !has_to_tag {
            return false;
        }
        let Some(uri) = msg
            .headers_named(HeaderName::Route)
            .flat_map(sip::split_list)
            .next()
            .and_then(sip::name_addr_uri)
        else {
            return false;
        };
        let Some(flow) = parse_sip_uri(uri)
            .filter(|u| self.is_ours(u))
            .and_then(|u| u.user)
            .and_then(|t| self.decode_token(t).ok())
        else {
            return false;
        };
        if canonical(flow.peer.ip()) != canonical(peer.ip()) {
            return false;
        }
        let Some(mac) = uri_param(uri, b"dlg") else {
            return false;
        };
        let call_id = msg.header(HeaderName::CallId).unwrap_or_default();
        let tag = |h| {
            msg.header(h)
                .and_then(|v| sip::header_param(v, b"tag"))
                .unwrap_or_default()
        };
        [tag(HeaderName::From), tag(HeaderName::To)]
            .iter()
            .any(|t| bool::from(mac.ct_eq(&self.dialog_mac(call_id, t, flow)[..])))
    }

    fn flow_mac(&self, data: &[u8]) -> [u8; 8] {
        let mut h = SipHasher13::new_with_key(&self.flow_key);
        h.write(b"sipgw-flow");
        h.write(data);
        h.finish().to_be_bytes()
    }

    fn decode_token(&self, token: &[u8]) -> Result<Flow, TokenError> {
        let b64 = token
            .strip_prefix(FLOW_TOKEN_PREFIX.as_bytes())
            .ok_or(TokenError::Malformed)?;
        let mut payload = [0u8; MAX_TOKEN_PAYLOAD];
        // Payload lengths (address, port, [connection], MAC) and their base64url lengths.
        let n = match b64.len() {
            20 => 15,
            32 => 24,
            36 => 27,
            48 => 36,
            _ => return Err(TokenError::Malformed),
        };
        if !base64url_decode(b64, &mut payload[..n]) {
            return Err(TokenError::Malformed);
        }
        let transport = Transport::from_code(payload[0] >> 4).ok_or(TokenError::Malformed)?;
        let conn_len = if transport.is_stream() {
            STREAM_TOKEN_EXTRA
        } else {
            0
        };
        let (peer, addr_len) = match (payload[0] & 15, n - conn_len) {
            (4, 15) => {
                let o: [u8; 4] = payload[1..5]
                    .try_into()
                    .map_err(|_| TokenError::Malformed)?;
                let ip = IpAddr::V4(Ipv4Addr::from(o));
                (
                    SocketAddr::new(ip, u16::from_be_bytes([payload[5], payload[6]])),
                    7,
                )
            }
            (6, 27) => {
                let o: [u8; 16] = payload[1..17]
                    .try_into()
                    .map_err(|_| TokenError::Malformed)?;
                let ip = IpAddr::V6(Ipv6Addr::from(o));
                (
                    SocketAddr::new(ip, u16::from_be_bytes([payload[17], payload[18]])),
                    19,
                )
            }
            _ => return Err(TokenError::Malformed),
        };
        let body = addr_len + conn_len;
        let want = self.flow_mac(&payload[..body]);
        if !bool::from(want.ct_eq(&payload[body..body + 8])) {
            return Err(TokenError::Forged);
        }
        let conn = if transport.is_stream() {
            let id = payload
                .get(addr_len..addr_len + 8)
                .and_then(|c| <[u8; 8]>::try_from(c).ok())
                .ok_or(TokenError::Malformed)?;
            if payload[addr_len + 8] != 0 {
                return Err(TokenError::Malformed);
            }
            Some(ConnId(u64::from_be_bytes(id)))
        } else {
            None
        };
        Ok(Flow {
            transport,
            peer,
            conn,
        })
    }

    /// Whether a SIP URI points at the gateway (host IP equal to the advertised one, port
    /// the advertised port or the TLS port).
    fn is_ours(&self, uri: &SipUri<'_>) -> bool {
        parse_ip(uri.host).is_some_and(|ip| {
            self.is_own_address(SocketAddr::new(ip, uri.port.unwrap_or(DEFAULT_SIP_PORT)))
        })
    }

    /// The URI of a Route entry when it points at the gateway.
    fn our_route_uri<'u>(&self, entry: Option<&'u [u8]>) -> Option<SipUri<'u>> {
        entry
            .and_then(sip::name_addr_uri)
            .and_then(parse_sip_uri)
            .filter(|u| self.is_ours(u))
    }

    /// Whether `addr` is one of the gateway's advertised addresses (UDP/TCP, TLS).
    fn is_own_address(&self, addr: SocketAddr) -> bool {
        canonical(addr.ip()) == self.advertised.ip()
            && (addr.port() == self.advertised.port() || Some(addr.port()) == self.cfg.tls_port)
    }

    /// The advertised `host:port` of a transport (TLS has its own port).
    fn advertised_text(&self, transport: Transport) -> &[u8] {
        match (transport, &self.tls_text) {
            (Transport::Tls, Some(tls)) => tls.as_bytes(),
            _ => self.adv_text.as_bytes(),
        }
    }

    fn request<'m>(
        &self,
        msg: &Message<'m>,
        from: Flow,
        dir: Dir,
        identity: Option<&[u8]>,
        credentials_at: Option<u8>,
        out: &mut [u8],
    ) -> Result<Route, ProxyDrop> {
        let StartLine::Request { method, uri, .. } = msg.start_line() else {
            return Err(ProxyDrop::NotRequest);
        };
        if !msg.has_required_headers() {
            return Err(ProxyDrop::MissingHeaders);
        }
        let top = msg.via_values().next().ok_or(ProxyDrop::BadVia)?;
        let via = parse_via(top).ok_or(ProxyDrop::BadVia)?;
        if method == Method::Ack && self.tag.is_own_ack(msg) {
            return Err(ProxyDrop::OwnAck);
        }
        let max_forwards = match msg.header(HeaderName::MaxForwards) {
            None => None,
            Some(v) => Some(parse_u32(trim_lws(v)).ok_or(ProxyDrop::BadMaxForwards)?),
        };
        if max_forwards == Some(0) {
            if method == Method::Ack {
                return Err(ProxyDrop::Loop);
            }
            return self.too_many_hops(msg, top, &via, from, out);
        }

        let (dest, pop_route) = match dir {
            Dir::Upstream => (
                Flow {
                    transport: self.cfg.upstream,
                    peer: self.cfg.softswitch,
                    conn: None,
                },
                self.our_leading_routes(msg),
            ),
            Dir::Downstream => self.route_downstream(msg, uri)?,
        };
        let dest = Flow {
            peer: canonical_peer(dest.peer),
            ..dest
        };
        if dest.peer.ip().is_unspecified() || dest.peer.port() == 0 {
            return Err(ProxyDrop::Unroutable);
        }
        if self.is_own_address(dest.peer) {
            return Err(ProxyDrop::Loop);
        }
        let peer = from.peer;

        let dialog = matches!(method, Method::Invite | Method::Subscribe | Method::Refer);
        let upstream = dir == Dir::Upstream;
        let mut plan = Plan {
            dir,
            from,
            out: dest.transport,
            branch: self.branch(msg, top, &via, uri, dir, peer, dest.peer),
            max_forwards: max_forwards.map(|n| n - 1),
            pop_route,
            record_route: (self.cfg.record_route && dialog).then_some(if upstream {
                from
            } else {
                dest
            }),
            path: (upstream && self.cfg.add_path && method == Method::Register).then_some(from),
            identity: identity.filter(|i| upstream && self.cfg.assert_identity && !i.is_empty()),
            credentials_at,
        };
        let mut len = self.write_request(msg, &plan, out)?;
        let mut dest = dest;
        // RFC 3261 §18.1.1: a request too large for a datagram goes over TCP when the
        // softswitch takes it.
        if upstream
            && dest.transport == Transport::Udp
            && self.cfg.tcp_above.is_some_and(|limit| len > limit)
        {
            plan.out = Transport::Tcp;
            dest.transport = Transport::Tcp;
            len = self.write_request(msg, &plan, out)?;
        }
        Ok(Route::Send { to: dest, len })
    }

    /// How many of the leading Route entries are ours (0, 1, or 2 for a double
    /// Record-Route of ours, RFC 3261 §16.6 step 4 / §16.12.1.2): they are removed.
    fn our_leading_routes(&self, msg: &Message<'_>) -> u8 {
        let mut n = 0;
        for entry in msg
            .headers_named(HeaderName::Route)
            .flat_map(sip::split_list)
            .take(2)
        {
            let ours = sip::name_addr_uri(entry)
                .and_then(parse_sip_uri)
                .is_some_and(|u| self.is_ours(&u));
            if !ours {
                break;
            }
            n += 1;
        }
        n
    }

    /// Downstream destination, and how many leading Route entries (ours) are removed.
    fn route_downstream(&self, msg: &Message<'_>, uri: &[u8]) -> Result<(Flow, u8), ProxyDrop> {
        let mut routes = msg
            .headers_named(HeaderName::Route)
            .flat_map(sip::split_list);
        let ours = |entry| self.our_route_uri(entry);
        let first = routes.next();
        let mut next = first;
        let mut pop = 0;
        if let Some(u) = ours(first) {
            // A double Record-Route of ours (the two legs' transports differ): both go.
            let second = routes.next();
            (pop, next) = if ours(second).is_some() {
                (2, routes.next())
            } else {
                (1, second)
            };
            if let Some(user) = u.user {
                return match self.decode_token(user) {
                    Ok(flow) => Ok((flow, pop)),
                    Err(_) => Err(ProxyDrop::BadFlowToken),
                };
            }
        }
        if let Some(route) = next {
            let route = sip::name_addr_uri(route).ok_or(ProxyDrop::Unroutable)?;
            return Ok((uri_flow(route).ok_or(ProxyDrop::Unroutable)?, pop));
        }
        let u = parse_sip_uri(uri).ok_or(ProxyDrop::Unroutable)?;
        if let Some(user) = u.user {
            match self.decode_token(user) {
                Ok(flow) => return Ok((flow, pop)),
                Err(TokenError::Forged) => return Err(ProxyDrop::BadFlowToken),
                Err(TokenError::Malformed) => {}
            }
        }
        Ok((uri_flow(uri).ok_or(ProxyDrop::Unroutable)?, pop))
    }

    /// Our branch after [`BRANCH_PREFIX`]: 32 hex digits of transaction hash (RFC 3261
    /// §16.11) and 16 of MAC over the hash and the address the response will go back to.
    #[allow(clippy::too_many_arguments)]
    fn branch(
        &self,
        msg: &Message<'_>,
        top: &[u8],
        via: &Via<'_>,
        uri: &[u8],
        dir: Dir,
        peer: SocketAddr,
        dest: SocketAddr,
    ) -> [u8; BRANCH_HASH_LEN] {
        let mut h = SipHasher13x128::new_with_key(&self.branch_key);
        let field = |h: &mut SipHasher13x128, b: &[u8]| {
            h.write_usize(b.len());
            h.write(b);
        };
        h.write_u8(dir as u8);
        hash_addr(&mut h, peer);
        hash_addr(&mut h, dest);
        match sip::header_param(top, b"branch").filter(|b| b.starts_with(MAGIC_COOKIE)) {
            Some(b) => {
                h.write_u8(1);
                field(&mut h, b);
                field(&mut h, via.host);
                h.write_u32(via.port.map_or(0, u32::from));
            }
            None => {
                h.write_u8(2);
                field(&mut h, top);
                let from_tag = msg
                    .header(HeaderName::From)
                    .and_then(|f| sip::header_param(f, b"tag"))
                    .unwrap_or_default();
                field(&mut h, from_tag);
                field(
                    &mut h,
                    trim_lws(msg.header(HeaderName::CallId).unwrap_or_default()),
                );
                let n = msg
                    .header(HeaderName::CSeq)
                    .and_then(sip::cseq)
                    .map_or(u64::MAX, |(n, _)| u64::from(n));
                h.write_u64(n);
                field(&mut h, uri);
            }
        }
        let mut out = [0u8; BRANCH_HASH_LEN];
        let (hash, mac) = out.split_at_mut(32);
        put_hex(hash, &h.finish128().as_bytes());
        let back = client_response_addr(top, via, peer);
        put_hex(mac, &self.branch_mac(hash, back));
        out
    }

    /// The MAC binding a branch's hash to the address its response goes back to.
    fn branch_mac(&self, hash: &[u8], back: SocketAddr) -> [u8; 8] {
        let mut h = SipHasher13::new_with_key(&self.flow_key);
        h.write(b"sipgw-branch");
        h.write(hash);
        let back = canonical_peer(back);
        match back.ip() {
            IpAddr::V4(v) => h.write(&v.octets()),
            IpAddr::V6(v) => h.write(&v.octets()),
        }
        h.write_u16(back.port());
        h.finish().to_be_bytes()
    }

    /// Whether `branch` (after [`BRANCH_PREFIX`]) carries our MAC for `back`.
    fn branch_mac_ok(&self, branch: &[u8], back: SocketAddr) -> bool {
        let (Some(hash), Some(mac)) = (branch.get(..32), branch.get(32..)) else {
            return false;
        };
        let mut want = [0u8; 16];
        put_hex(&mut want, &self.branch_mac(hash, back));
        bool::from(want.ct_eq(mac))
    }

    /// `483 Too Many Hops` for a request that arrived with `Max-Forwards: 0`.
    fn too_many_hops(
        &self,
        msg: &Message<'_>,
        top: &[u8],
        via: &Via<'_>,
        from: Flow,
        out: &mut [u8],
    ) -> Result<Route, ProxyDrop> {
        let peer = from.peer;
        // Over a stream: back on the connection it came on (RFC 3261 §18.2.2).
        let port = if sip::header_param(top, b"rport").is_some() || from.conn.is_some() {
            peer.port()
        } else {
            via.port.unwrap_or(DEFAULT_SIP_PORT)
        };
        let to = Flow {
            peer: SocketAddr::new(canonical(peer.ip()), port),
            ..from
        };
        let mut w = Writer::new(out);
        w.reply_head(b"SIP/2.0 483 Too Many Hops\r\n", msg, &self.tag);
        w.end_without_body();
        let len = w.finish()?;
        // Never more bytes back than came in: the request may be spoofed (no amplification).
        if len > msg.as_bytes().len() {
            return Err(ProxyDrop::TooLarge);
        }
        Ok(Route::Reply {
            to,
            len,
            status: 483,
        })
    }

    fn write_request(
        &self,
        msg: &Message<'_>,
        plan: &Plan<'_>,
        out: &mut [u8],
    ) -> Result<usize, ProxyDrop> {
        let mut w = Writer::new(out);
        // Start line, rebuilt from its checked parts.
        w.put(msg.method_bytes().unwrap_or_default());
        w.put(b" ");
        w.put(msg.request_uri().unwrap_or_default());
        w.put(b" ");
        w.put(SIP_VERSION);
        w.put(b"\r\n");
        // Our Via, for the transport the request leaves on; with the flow it came on when
        // that is a connection (its response goes back over it).
        w.count_header();
        w.put(b"Via: SIP/2.0/");
        w.put(plan.out.via_token().as_bytes());
        w.put(b" ");
        w.put(self.advertised_text(plan.out));
        w.put(b";branch=");
        w.put(BRANCH_PREFIX.as_bytes());
        w.put(&plan.branch);
        if plan.from.conn.is_some() {
            w.put(b";");
            w.put(VIA_FLOW_PARAM);
            w.put(b"=");
            w.put(self.flow_token(plan.from).as_bytes());
        }
        w.put(b"\r\n");
        if let Some(flow) = plan.record_route {
            let call_id = msg.header(HeaderName::CallId).unwrap_or_default();
            let from_tag = msg
                .header(HeaderName::From)
                .and_then(|v| sip::header_param(v, b"tag"))
                .unwrap_or_default();
            let dialog = Some((call_id, from_tag));
            // Toward the next hop first (the leg the request leaves on), then, when the two
            // legs' transports differ, toward the hop it came from (RFC 3261 §16.6 step 4).
            self.write_flow_uri(&mut w, b"Record-Route", flow, plan.out, dialog);
            if plan.from.transport != plan.out {
                self.write_flow_uri(&mut w, b"Record-Route", flow, plan.from.transport, dialog);
            }
        }
        if let Some(flow) = plan.path {
            // The softswitch reaches the endpoint through us on the softswitch leg.
            self.write_flow_uri(&mut w, b"Path", flow, plan.out, None);
        }
        if let Some(user) = plan.identity {
            w.count_header();
            w.put(b"P-Asserted-Identity: <sip:");
            w.escaped(user);
            w.put(b"@");
            w.escaped(self.cfg.realm.as_bytes());
            w.put(b">\r\n");
        }
        if plan.max_forwards.is_none() {
            w.count_header();
            w.put(b"Max-Forwards: ");
            w.decimal(DEFAULT_MAX_FORWARDS);
            w.put(b"\r\n");
        }

        let upstream = plan.dir == Dir::Upstream;
        let peer = plan.from.peer;
        let mut via_done = false;
        let mut to_pop = plan.pop_route;
        let mut mf_done = false;
        for (at, (h, (_, line))) in msg.headers().zip(msg.lines_where(|_| true)).enumerate() {
            match h.name {
                HeaderName::Via if !via_done => {
                    let Some(first) = sip::split_list(h.value).next() else {
                        w.line(line);
                        continue;
                    };
                    via_done = true;
                    w.begin(h.raw_name);
                    match parse_via(first) {
                        Some(via) => write_client_via(&mut w, &via, peer),
                        None => w.put(first),
                    }
                    if let Some(rest) = after_first(h.value) {
                        w.put(b", ");
                        w.put(rest);
                    }
                    w.put(b"\r\n");
                }
                HeaderName::MaxForwards => {
                    if !mf_done {
                        mf_done = true;
                        w.begin(h.raw_name);
                        let n = plan.max_forwards.unwrap_or(DEFAULT_MAX_FORWARDS);
                        w.decimal(n);
                        w.put(b"\r\n");
                    }
                }
                HeaderName::Route if to_pop > 0 => {
                    // Remove our leading entries (one or two), possibly across lines.
                    let mut rest = Some(h.value);
                    let mut popped = false;
                    while to_pop > 0 {
                        let Some(v) = rest.filter(|v| sip::split_list(v).next().is_some()) else {
                            break;
                        };
                        to_pop -= 1;
                        popped = true;
                        rest = after_first(v);
                    }
                    if !popped {
                        w.line(line);
                    } else if let Some(v) = rest {
                        w.begin(h.raw_name);
                        w.put(v);
                        w.put(b"\r\n");
                    }
                }
                HeaderName::Authorization | HeaderName::ProxyAuthorization
                    if self.cfg.strip_credentials
                        && match plan.credentials_at {
                            Some(ours) => usize::from(ours) == at,
                            None => self.is_our_credential(h.value),
                        } => {}
                HeaderName::Other
                    if upstream
                        && (h.raw_name.eq_ignore_ascii_case(b"P-Asserted-Identity")
                            || h.raw_name.eq_ignore_ascii_case(b"P-Preferred-Identity")) => {}
                _ => w.line(line),
            }
        }
        w.put(b"\r\n");
        w.put(msg.body());
        Ok(w.finish()?)
    }

    /// `<sip:TOKEN@advertised;lr>` for a URI reached over `transport` (with
    /// `;transport=tcp|tls` and the TLS port when it is not UDP), with `;dlg=MAC` binding it
    /// to the dialog of `(Call-ID, From-tag)`.
    fn write_flow_uri(
        &self,
        w: &mut Writer<'_>,
        name: &[u8],
        flow: Flow,
        transport: Transport,
        dialog: Option<(&[u8], &[u8])>,
    ) {
        w.begin(name);
        w.put(b"<sip:");
        w.put(self.flow_token(flow).as_bytes());
        w.put(b"@");
        w.put(self.advertised_text(transport));
        if transport != Transport::Udp {
            w.put(b";transport=");
            w.put(transport.uri_param().as_bytes());
        }
        w.put(b";lr");
        if let Some((call_id, from_tag)) = dialog {
            w.put(b";dlg=");
            w.put(&self.dialog_mac(call_id, from_tag, flow));
        }
        w.put(b">\r\n");
    }

    fn is_our_credential(&self, value: &[u8]) -> bool {
        Credentials::parse(value).is_ok_and(|c| c.realm.eq_unescaped(self.cfg.realm.as_bytes()))
    }

    /// Whether a via-parm is one the gateway inserted.
    fn is_our_via(&self, value: &[u8]) -> bool {
        let marked = sip::header_param(value, b"branch").is_some_and(|b| {
            b.strip_prefix(BRANCH_PREFIX.as_bytes())
                .is_some_and(|h| h.len() == BRANCH_HASH_LEN && h.iter().all(|c| HEX.contains(c)))
        });
        marked
            && parse_via(value).is_some_and(|v| {
                parse_ip(v.host).is_some_and(|ip| {
                    self.is_own_address(SocketAddr::new(ip, v.port.unwrap_or(DEFAULT_SIP_PORT)))
                })
            })
    }

    fn response_inner(&self, msg: &Message<'_>, out: &mut [u8]) -> Result<Route, ProxyDrop> {
        let StartLine::Response { code, reason } = msg.start_line() else {
            return Err(ProxyDrop::NotResponse);
        };
        let mut vias = msg.via_values();
        let top = vias.next().ok_or(ProxyDrop::NotOurVia)?;
        if !self.is_our_via(top) {
            return Err(ProxyDrop::NotOurVia);
        }
        let next = vias.next().ok_or(ProxyDrop::NoNextVia)?;
        let to = via_destination(next)?;
        let to = Flow {
            peer: canonical_peer(to.peer),
            ..to
        };
        let branch = sip::header_param(top, b"branch")
            .and_then(|b| b.get(BRANCH_PREFIX.len()..))
            .unwrap_or_default();
        if !self.branch_mac_ok(branch, to.peer) {
            return Err(ProxyDrop::ForgedVia);
        }
        if to.peer.ip().is_unspecified() {
            return Err(ProxyDrop::Unroutable);
        }
        if self.is_own_address(to.peer) {
            return Err(ProxyDrop::Loop);
        }
        // The request came over a connection: the response goes back over it.
        let to = match sip::header_param(top, VIA_FLOW_PARAM) {
            None => to,
            Some(token) => self
                .decode_token(token)
                .map_err(|_| ProxyDrop::BadFlowToken)?,
        };

        let mut w = Writer::new(out);
        w.put(SIP_VERSION);
        w.put(b" ");
        w.decimal(u32::from(code));
        if !reason.is_empty() {
            w.put(b" ");
            w.put(reason);
        }
        w.put(b"\r\n");
        let mut via_done = false;
        for (h, (_, line)) in msg.headers().zip(msg.lines_where(|_| true)) {
            if h.name == HeaderName::Via && !via_done {
                if sip::split_list(h.value).next().is_none() {
                    w.line(line);
                    continue;
                }
                via_done = true;
                if let Some(rest) = after_first(h.value) {
                    w.begin(h.raw_name);
                    w.put(rest);
                    w.put(b"\r\n");
                }
                continue;
            }
            w.line(line);
        }
        w.put(b"\r\n");
        w.put(msg.body());
        let len = w.finish()?;
        Ok(Route::Send { to, len })
    }
}

/// Where a response goes by this via-parm: `received` (else the sent-by IP literal) and
/// `rport` (else the sent-by port, else 5060), over its transport (no connection: the
/// driver finds one to that address, or makes one).
fn via_destination(value: &[u8]) -> Result<Flow, ProxyDrop> {
    let via = parse_via(value).ok_or(ProxyDrop::BadVia)?;
    let ip = match sip::header_param(value, b"received") {
        Some(r) => parse_ip(r).ok_or(ProxyDrop::BadVia)?,
        None => parse_ip(via.host).ok_or(ProxyDrop::Unroutable)?,
    };
    let port = match sip::header_param(value, b"rport") {
        Some(p) if !p.is_empty() => parse_port(p).ok_or(ProxyDrop::BadVia)?,
        _ => via.port.unwrap_or(DEFAULT_SIP_PORT),
    };
    Ok(Flow {
        transport: Transport::from_token(via.transport).unwrap_or(Transport::Udp),
        peer: SocketAddr::new(ip, port),
        conn: None,
    })
}

/// The received top via-parm with `received` set and an empty `rport` filled.
fn write_client_via(w: &mut Writer<'_>, via: &Via<'_>, peer: SocketAddr) {
    let ip = canonical(peer.ip());
    w.put(via.head);
    let mut received = false;
    for seg in Params::new(via.params) {
        let (name, value) = split_param(seg);
        if name.eq_ignore_ascii_case(b"received") {
            if !received {
                received = true;
                w.put(b";received=");
                w.ip(ip);
            }
        } else if name.eq_ignore_ascii_case(b"rport") && value.is_none_or(<[u8]>::is_empty) {
            w.put(b";rport=");
            w.decimal(u32::from(peer.port()));
        } else {
            w.put(b";");
            w.put(seg);
        }
    }
    if !received {
        w.put(b";received=");
        w.ip(ip);
    }
}

fn hash_addr(h: &mut SipHasher13x128, a: SocketAddr) {
    match canonical(a.ip()) {
        IpAddr::V4(v) => {
            h.write_u8(4);
            h.write(&v.octets());
        }
        IpAddr::V6(v) => {
            h.write_u8(6);
            h.write(&v.octets());
        }
    }
    h.write_u16(a.port());
}

/// Where the response to a request goes back to, as [`Proxy::response`] will compute it
/// from the client Via once rewritten: the source IP (our `received`) and the `rport` value
/// (an empty one is the source port), else the sent-by port, else 5060. A malformed `rport`
/// gives port 0 (the response will be dropped anyway).
fn client_response_addr(top: &[u8], via: &Via<'_>, peer: SocketAddr) -> SocketAddr {
    let port = match sip::header_param(top, b"rport") {
        Some([]) => peer.port(),
        Some(v) => parse_port(v).unwrap_or(0),
        None => via.port.unwrap_or(DEFAULT_SIP_PORT),
    };
    SocketAddr::new(canonical(peer.ip()), port)
}

/// Where a SIP URI points: its host must be an IP literal (port default 5060); the
/// transport is its `transport` parameter (`sips:`: TLS; default UDP; an unknown one:
/// `None`). No connection: the driver finds or makes one for a stream transport.
fn uri_flow(uri: &[u8]) -> Option<Flow> {
    let u = parse_sip_uri(uri)?;
    let sips = trim_lws(uri)
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"sips:"));
    let transport = match uri_param(trim_lws(uri), b"transport") {
        Some(t) => Transport::from_token(t)?,
        None if sips => Transport::Tls,
        None => Transport::Udp,
    };
    Some(Flow {
        transport,
        peer: SocketAddr::new(parse_ip(u.host)?, u.port.unwrap_or(DEFAULT_SIP_PORT)),
        conn: None,
    })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding of `src` (a multiple of 3 bytes) into `dst`; returns the length.
fn base64url_encode(src: &[u8], dst: &mut [u8]) -> usize {
    let mut n = 0;
    for chunk in src.chunks_exact(3) {
        let v = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for k in 0..4 {
            if let Some(d) = dst.get_mut(n) {
                *d = B64[((v >> (18 - 6 * k)) & 63) as usize];
            }
            n += 1;
        }
    }
    n
}

fn b64_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes base64url (4 characters per 3 bytes, no padding) filling `dst` exactly.
fn base64url_decode(src: &[u8], dst: &mut [u8]) -> bool {
    if !src.len().is_multiple_of(4) || src.len() / 4 * 3 != dst.len() {
        return false;
    }
    for (chunk, out) in src.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
        let mut v = 0u32;
        for &c in chunk {
            match b64_value(c) {
                Some(x) => v = (v << 6) | x,
                None => return false,
            }
        }
        out.copy_from_slice(&v.to_be_bytes()[1..]);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{MAX_HEADERS, MAX_MESSAGE_LEN};
    use proptest::prelude::*;

    const REGISTER_AUTH: &[u8] = include_bytes!("../tests/vectors/sipp-register-auth.sip");
    const REGISTER_NOAUTH: &[u8] = include_bytes!("../tests/vectors/sipp-register-noauth.sip");
    const INVITE_AUTH: &[u8] = include_bytes!("../tests/vectors/sipp-invite-proxy-auth.sip");
    const INVITE_NOAUTH: &[u8] = include_bytes!("../tests/vectors/sipp-invite-noauth.sip");

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn gw() -> SocketAddr {
        addr("203.0.113.1:5060")
    }

    fn softswitch() -> SocketAddr {
        addr("10.0.0.5:5060")
    }

    /// The endpoint as seen from the gateway (behind NAT).
    fn peer() -> SocketAddr {
        addr("198.51.100.7:40000")
    }

    fn config() -> ProxyConfig {
        ProxyConfig::new(gw(), softswitch(), "sipgw", [7; 32])
    }

    fn proxy() -> Proxy {
        Proxy::new(config())
    }

    fn proxy_with(f: impl FnOnce(&mut ProxyConfig)) -> Proxy {
        let mut c = config();
        f(&mut c);
        Proxy::new(c)
    }

    /// `\n` → `\r\n`.
    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    fn run(route: Route, out: &[u8]) -> (SocketAddr, String) {
        match route {
            Route::Send { to, len } => (to.peer, String::from_utf8(out[..len].to_vec()).unwrap()),
            other => panic!("expected Send, got {other:?}"),
        }
    }

    fn up(p: &Proxy, buf: &[u8], from: SocketAddr, id: Option<&[u8]>) -> (SocketAddr, String) {
        let msg = Message::parse(buf).unwrap();
        let mut out = vec![0u8; 4096];
        let r = p.request_upstream(&msg, from, id, &mut out);
        let (to, text) = run(r, &out);
        check_output(buf, text.as_bytes());
        (to, text)
    }

    fn down(p: &Proxy, buf: &[u8]) -> (SocketAddr, String) {
        let msg = Message::parse(buf).unwrap();
        let mut out = vec![0u8; 4096];
        let r = p.request_downstream(&msg, softswitch(), &mut out);
        let (to, text) = run(r, &out);
        check_output(buf, text.as_bytes());
        (to, text)
    }

    fn up_route(p: &Proxy, buf: &[u8], from: SocketAddr) -> Route {
        let msg = Message::parse(buf).unwrap();
        p.request_upstream(&msg, from, None, &mut [0u8; 4096])
    }

    fn down_route(p: &Proxy, buf: &[u8]) -> Route {
        let msg = Message::parse(buf).unwrap();
        p.request_downstream(&msg, softswitch(), &mut [0u8; 4096])
    }

    fn resp(p: &Proxy, buf: &[u8]) -> Route {
        let msg = Message::parse(buf).unwrap();
        p.response(&msg, softswitch(), &mut [0u8; 4096])
    }

    /// Output parses, body and Content-Length are the input's.
    fn check_output(input: &[u8], output: &[u8]) {
        let i = Message::parse(input).unwrap();
        let o = Message::parse(output).unwrap_or_else(|e| {
            panic!("{e:?}: {}", String::from_utf8_lossy(output));
        });
        assert_eq!(o.body(), i.body());
        assert_eq!(o.content_length(), i.content_length());
        assert_eq!(
            o.headers_named(HeaderName::ContentLength)
                .collect::<Vec<_>>(),
            i.headers_named(HeaderName::ContentLength)
                .collect::<Vec<_>>()
        );
    }

    fn lines(text: &str) -> Vec<&str> {
        text.split("\r\n").collect()
    }

    /// Values of the headers called `name` (case-insensitive, long form only).
    fn values<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        lines(text)
            .into_iter()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
            })
            .collect()
    }

    /// Our branch in a forwarded request (the top Via).
    fn branch_of(text: &str) -> String {
        let top = values(text, "Via")[0];
        let b = top.split(";branch=").nth(1).unwrap();
        assert!(b.starts_with(BRANCH_PREFIX), "{b}");
        assert_eq!(b.len(), BRANCH_PREFIX.len() + BRANCH_HASH_LEN);
        b.to_string()
    }

    /// A branch of ours whose response goes back to `back`.
    fn our_branch(p: &Proxy, back: &str) -> String {
        let hash = [b'0'; 32];
        let mut mac = [0u8; 16];
        put_hex(&mut mac, &p.branch_mac(&hash, addr(back)));
        format!(
            "{BRANCH_PREFIX}{}{}",
            std::str::from_utf8(&hash).unwrap(),
            std::str::from_utf8(&mac).unwrap()
        )
    }

    /// The flow token in a `<sip:TOKEN@203.0.113.1:5060;lr>` value (a Record-Route's
    /// `;dlg=` MAC of 16 hex digits after `lr` is allowed).
    fn token_of(value: &str) -> &str {
        let rest = value.strip_prefix("<sip:").unwrap();
        let (token, host) = rest.split_once('@').unwrap();
        let host = match host.split_once(";dlg=") {
            Some((h, mac)) => {
                assert_eq!(mac.len(), DIALOG_MAC_LEN + 1, "{mac}");
                assert!(mac[..DIALOG_MAC_LEN].bytes().all(|b| b.is_ascii_hexdigit()));
                format!("{h}>")
            }
            None => host.to_owned(),
        };
        assert_eq!(host, "203.0.113.1:5060;lr>");
        token
    }

    fn tampered(token: &str) -> String {
        let mut t = token.as_bytes().to_vec();
        let i = t.len() - 3;
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(t).unwrap()
    }

    #[test]
    fn proxy_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Proxy>();
        check::<ProxyConfig>();
        assert!(!format!("{:?}", proxy()).contains("[7, 7"));
    }

    #[test]
    fn register_upstream_exact_output() {
        let p = proxy();
        let (to, text) = up(&p, REGISTER_AUTH, peer(), Some(b"alice"));
        assert_eq!(to, softswitch());
        let branch = branch_of(&text);
        let path = values(&text, "Path")[0];
        let token = token_of(path);
        assert_eq!(
            p.decode_flow_token(token.as_bytes()),
            Some(Flow::udp(peer()))
        );
        let want = format!(
            "REGISTER sip:127.0.0.1:15060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.1:5060;branch={branch}\r\n\
Path: <sip:{token}@203.0.113.1:5060;lr>\r\n\
P-Asserted-Identity: <sip:alice@sipgw>\r\n\
Via: SIP/2.0/UDP 127.0.0.1:15061;branch=z9hG4bK-4497-1-2;received=198.51.100.7\r\n\
Max-Forwards: 69\r\n\
From: <sip:alice@127.0.0.1>;tag=4497SIPpTag001\r\n\
To: <sip:alice@127.0.0.1>\r\n\
Call-ID: 1-4497@127.0.0.1\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:alice@127.0.0.1:15061>\r\n\
Expires: 3600\r\n\
Content-Length: 0\r\n\r\n"
        );
        assert_eq!(text, want);
        // No Record-Route on REGISTER.
        assert!(values(&text, "Record-Route").is_empty());
    }

    #[test]
    fn client_via_received_and_rport() {
        let p = proxy();
        let base = "REGISTER sip:sipgw SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;rport;branch=z9hG4bKabc\n\
From: <sip:alice@sipgw>;tag=1\nTo: <sip:alice@sipgw>\nCall-ID: c1\nCSeq: 1 REGISTER\n\
Content-Length: 0\n\n";
        let (_, text) = up(&p, &crlf(base), peer(), None);
        assert_eq!(
            values(&text, "Via")[1],
            "SIP/2.0/UDP 192.168.1.20:5062;rport=40000;branch=z9hG4bKabc;received=198.51.100.7"
        );
        // An existing received is replaced in place (and a duplicate dropped); an rport with
        // a value is kept as it is.
        let m = base.replace(
            ";rport;branch=z9hG4bKabc",
            ";received=10.9.9.9;rport=1234;branch=z9hG4bKabc;RECEIVED=1.1.1.1;x=\"a;b\"",
        );
        let (_, text) = up(&p, &crlf(&m), peer(), None);
        assert_eq!(
            values(&text, "Via")[1],
            "SIP/2.0/UDP 192.168.1.20:5062;received=198.51.100.7;rport=1234;branch=z9hG4bKabc;x=\"a;b\""
        );
        // `rport=` with an empty value is filled too; IPv6 sent-by; a second via-parm on
        // the same line is kept unchanged.
        let m = base.replace(
            "192.168.1.20:5062;rport;branch=z9hG4bKabc",
            "[2001:db8::5]:5062;rport=;branch=z9hG4bKabc , SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKold",
        );
        let (_, text) = up(&p, &crlf(&m), peer(), None);
        assert_eq!(
            values(&text, "Via")[1],
            "SIP/2.0/UDP [2001:db8::5]:5062;rport=40000;branch=z9hG4bKabc;received=198.51.100.7, \
             SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKold"
        );
        // IPv6 peer (and an IPv4-mapped one, written as IPv4).
        let (_, text) = up(&p, &crlf(base), addr("[2001:db8::9]:7000"), None);
        assert!(
            values(&text, "Via")[1].ends_with(";rport=7000;branch=z9hG4bKabc;received=2001:db8::9")
        );
        let (_, text) = up(&p, &crlf(base), addr("[::ffff:198.51.100.7]:7000"), None);
        assert!(values(&text, "Via")[1].ends_with(";received=198.51.100.7"));
    }

    #[test]
    fn max_forwards_decremented_or_inserted() {
        let p = proxy();
        let (_, text) = up(&p, REGISTER_NOAUTH, peer(), None);
        assert_eq!(values(&text, "Max-Forwards"), ["69"]);
        let without = String::from_utf8(REGISTER_NOAUTH.to_vec())
            .unwrap()
            .replace("Max-Forwards: 70\r\n", "");
        assert!(!without.contains("Max-Forwards"));
        let (_, text) = up(&p, without.as_bytes(), peer(), None);
        assert_eq!(values(&text, "Max-Forwards"), ["70"]);
        // Several: the first is decremented, the rest removed.
        let two = String::from_utf8(REGISTER_NOAUTH.to_vec())
            .unwrap()
            .replace(
                "Max-Forwards: 70\r\n",
                "max-forwards:  5 \r\nMax-Forwards: 9\r\n",
            );
        let (_, text) = up(&p, two.as_bytes(), peer(), None);
        assert!(text.contains("\r\nmax-forwards: 4\r\n"));
        assert_eq!(values(&text, "Max-Forwards"), ["4"]);
        let bad = two.replace("5 ", "x");
        assert_eq!(
            up_route(&p, bad.as_bytes(), peer()),
            Route::Drop(ProxyDrop::BadMaxForwards)
        );
    }

    const TWO_REALMS: &str = "INVITE sip:bob@10.0.0.5 SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;rport;branch=z9hG4bKinv1\n\
Max-Forwards: 70\n\
From: <sip:alice@sipgw>;tag=a1\nTo: <sip:bob@sipgw>\nCall-ID: call-1\nCSeq: 7 INVITE\n\
Proxy-Authorization: Digest username=\"alice\", realm=\"sipgw\", nonce=\"n\", uri=\"sip:bob@10.0.0.5\", response=\"0123456789abcdef0123456789abcdef\"\n\
Authorization: Digest username=\"alice\", realm=\"other.example\", nonce=\"n\", uri=\"sip:bob@10.0.0.5\", response=\"0123456789abcdef0123456789abcdef\"\n\
Authorization: Digest username=\"alice\", realm=\"sip\\gw\", nonce=\"n\", uri=\"sip:bob@10.0.0.5\", response=\"0123456789abcdef0123456789abcdef\"\n\
P-Asserted-Identity: <sip:boss@sipgw>\n\
p-preferred-identity: <sip:ceo@sipgw>\n\
Content-Type: application/sdp\n\
Content-Length: 5\n\nv=0\n";

    #[test]
    fn credentials_of_our_realm_stripped() {
        let (_, text) = up(&proxy(), &crlf(TWO_REALMS), peer(), Some(b"alice"));
        assert!(values(&text, "Proxy-Authorization").is_empty());
        let auth = values(&text, "Authorization");
        assert_eq!(auth.len(), 1, "{text}");
        assert!(auth[0].contains("realm=\"other.example\""));
        // Kept when strip_credentials is off.
        let p = proxy_with(|c| c.strip_credentials = false);
        let (_, text) = up(&p, &crlf(TWO_REALMS), peer(), Some(b"alice"));
        assert_eq!(values(&text, "Proxy-Authorization").len(), 1);
        assert_eq!(values(&text, "Authorization").len(), 2);
        // The sipp vectors lose theirs.
        let (_, text) = up(&proxy(), INVITE_AUTH, peer(), Some(b"alice"));
        assert!(!text.contains("Authorization"));
    }

    #[test]
    fn identity_asserted_and_client_identity_removed() {
        let p = proxy();
        let (_, text) = up(&p, &crlf(TWO_REALMS), peer(), Some(b"alice"));
        assert_eq!(values(&text, "P-Asserted-Identity"), ["<sip:alice@sipgw>"]);
        assert!(values(&text, "P-Preferred-Identity").is_empty());
        // Unauthenticated: nothing asserted, the client's still removed.
        let (_, text) = up(&p, &crlf(TWO_REALMS), peer(), None);
        assert!(values(&text, "P-Asserted-Identity").is_empty());
        assert!(values(&text, "P-Preferred-Identity").is_empty());
        // assert_identity off: nothing added, the client's still removed.
        let off = proxy_with(|c| c.assert_identity = false);
        let (_, text) = up(&off, &crlf(TWO_REALMS), peer(), Some(b"alice"));
        assert!(values(&text, "P-Asserted-Identity").is_empty());
        assert!(values(&text, "P-Preferred-Identity").is_empty());
        // Odd bytes in a username are percent-encoded; an empty one asserts nothing.
        let (_, text) = up(&p, &crlf(TWO_REALMS), peer(), Some(b"a b>\r\n@c"));
        assert_eq!(
            values(&text, "P-Asserted-Identity"),
            ["<sip:a%20b%3e%0d%0a%40c@sipgw>"]
        );
        let (_, text) = up(&p, &crlf(TWO_REALMS), peer(), Some(b""));
        assert!(values(&text, "P-Asserted-Identity").is_empty());
        // Downstream (trusted): kept, nothing added.
        let m = TWO_REALMS.replace("sip:bob@10.0.0.5", "sip:bob@192.0.2.50");
        let (_, text) = down(&p, &crlf(&m));
        assert_eq!(values(&text, "P-Asserted-Identity"), ["<sip:boss@sipgw>"]);
        assert_eq!(values(&text, "P-Preferred-Identity"), ["<sip:ceo@sipgw>"]);
    }

    #[test]
    fn invite_upstream_record_route_and_body() {
        let p = proxy();
        let (to, text) = up(&p, &crlf(TWO_REALMS), peer(), Some(b"alice"));
        assert_eq!(to, softswitch());
        let rr = values(&text, "Record-Route");
        assert_eq!(rr.len(), 1);
        assert_eq!(
            p.decode_flow_token(token_of(rr[0]).as_bytes()),
            Some(Flow::udp(peer()))
        );
        assert!(values(&text, "Path").is_empty());
        assert!(text.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
        // Our Record-Route comes before existing ones.
        let m = TWO_REALMS.replace(
            "Max-Forwards: 70\n",
            "Max-Forwards: 70\nRecord-Route: <sip:192.0.2.99;lr>\n",
        );
        let (_, text) = up(&p, &crlf(&m), peer(), None);
        let rr = values(&text, "Record-Route");
        assert_eq!(rr.len(), 2);
        assert!(rr[0].starts_with("<sip:sgw"));
        assert_eq!(rr[1], "<sip:192.0.2.99;lr>");
        // SUBSCRIBE and REFER are record-routed; MESSAGE is not; record_route off: none.
        for (method, rr) in [("SUBSCRIBE", 1), ("REFER", 1), ("MESSAGE", 0), ("BYE", 0)] {
            let m = TWO_REALMS.replace("INVITE", method);
            let (_, text) = up(&p, &crlf(&m), peer(), None);
            assert_eq!(values(&text, "Record-Route").len(), rr, "{method}");
        }
        let off = proxy_with(|c| c.record_route = false);
        let (_, text) = up(&off, INVITE_NOAUTH, peer(), None);
        assert!(values(&text, "Record-Route").is_empty());
        let nopath = proxy_with(|c| c.add_path = false);
        let (_, text) = up(&nopath, REGISTER_NOAUTH, peer(), None);
        assert!(values(&text, "Path").is_empty());
    }

    #[test]
    fn upstream_pops_our_route_only() {
        let p = proxy();
        let token = p.flow_token(peer());
        let base = format!(
            "BYE sip:bob@10.0.0.5:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKbye1\n\
Route: <sip:{}@203.0.113.1;lr>, <sip:10.0.0.5;lr>\n\
Max-Forwards: 70\nFrom: <sip:alice@sipgw>;tag=a1\nTo: <sip:bob@sipgw>;tag=b1\n\
Call-ID: call-1\nCSeq: 8 BYE\nContent-Length: 0\n\n",
            token.as_str()
        );
        let (to, text) = up(&p, &crlf(&base), peer(), None);
        assert_eq!(to, softswitch());
        assert_eq!(values(&text, "Route"), ["<sip:10.0.0.5;lr>"]);
        assert!(text.starts_with("BYE sip:bob@10.0.0.5:5060 SIP/2.0\r\n"));
        // Only entry, without a token: the line goes.
        let m = base.replace(
            &format!("<sip:{}@203.0.113.1;lr>, <sip:10.0.0.5;lr>", token.as_str()),
            "<sip:203.0.113.1:5060;lr>",
        );
        let (_, text) = up(&p, &crlf(&m), peer(), None);
        assert!(values(&text, "Route").is_empty());
        // Not ours (other port): untouched.
        let m = base.replace("203.0.113.1;lr", "203.0.113.1:5070;lr");
        let (_, text) = up(&p, &crlf(&m), peer(), None);
        assert_eq!(values(&text, "Route").len(), 1);
        assert!(values(&text, "Route")[0].contains("5070"));
        // Two Route lines: the first (ours) goes, the second stays.
        let m = base.replace(", <sip:10.0.0.5;lr>", "\nRoute: <sip:10.0.0.5;lr>");
        let (_, text) = up(&p, &crlf(&m), peer(), None);
        assert_eq!(values(&text, "Route"), ["<sip:10.0.0.5;lr>"]);
    }

    fn with(base: &[u8], from: &str, to: &str) -> Vec<u8> {
        let s = String::from_utf8(base.to_vec()).unwrap();
        assert!(s.contains(from), "{from}");
        s.replace(from, to).into_bytes()
    }

    #[test]
    fn branch_is_deterministic_and_shared_by_ack_and_cancel() {
        let p = proxy();
        let (_, invite) = up(&p, INVITE_AUTH, peer(), Some(b"alice"));
        let (_, again) = up(&p, INVITE_AUTH, peer(), Some(b"alice"));
        assert_eq!(branch_of(&invite), branch_of(&again));
        let cancel = with(INVITE_NOAUTH, "INVITE sip:", "CANCEL sip:");
        let cancel = with(&cancel, "CSeq: 1 INVITE", "CSeq: 1 CANCEL");
        let (_, c) = up(&p, &cancel, peer(), None);
        let (_, i) = up(&p, INVITE_NOAUTH, peer(), None);
        assert_eq!(branch_of(&c), branch_of(&i));
        let ack = with(INVITE_NOAUTH, "INVITE sip:", "ACK sip:");
        let ack = with(&ack, "CSeq: 1 INVITE", "CSeq: 1 ACK");
        let ack = with(
            &ack,
            "To: <sip:bob@127.0.0.1>",
            "To: <sip:bob@127.0.0.1>;tag=resp9",
        );
        let (_, a) = up(&p, &ack, peer(), None);
        assert_eq!(branch_of(&a), branch_of(&i));
        // Another transaction, another branch (and the authenticated INVITE is one).
        assert_ne!(branch_of(&invite), branch_of(&i));
        // Same branch from another client: another branch.
        let (_, other) = up(&p, INVITE_NOAUTH, addr("198.51.100.8:40000"), None);
        assert_ne!(branch_of(&other), branch_of(&i));
        // Another key: another branch.
        let (_, k) = up(
            &proxy_with(|c| c.key = [8; 32]),
            INVITE_NOAUTH,
            peer(),
            None,
        );
        assert_ne!(branch_of(&k), branch_of(&i));
    }

    #[test]
    fn branch_without_magic_cookie() {
        let p = proxy();
        let invite = with(INVITE_NOAUTH, "branch=z9hG4bK-4520-1-0", "branch=old77");
        let invite = with(&invite, "CSeq: 1 INVITE", "CSeq: 1 INVITE");
        let (_, i) = up(&p, &invite, peer(), None);
        let (_, i2) = up(&p, &invite, peer(), None);
        assert_eq!(branch_of(&i), branch_of(&i2));
        let cancel = with(&invite, "INVITE sip:", "CANCEL sip:");
        let (_, c) = up(
            &p,
            &with(&cancel, "CSeq: 1 INVITE", "CSeq: 1 CANCEL"),
            peer(),
            None,
        );
        assert_eq!(branch_of(&c), branch_of(&i));
        let ack = with(&invite, "INVITE sip:", "ACK sip:");
        let ack = with(&ack, "CSeq: 1 INVITE", "CSeq: 1 ACK");
        let ack = with(
            &ack,
            "To: <sip:bob@127.0.0.1>",
            "To: <sip:bob@127.0.0.1>;tag=r",
        );
        let (_, a) = up(&p, &ack, peer(), None);
        assert_eq!(branch_of(&a), branch_of(&i));
        // The next request (CSeq 2), or another Call-ID: another branch.
        let (_, n) = up(
            &p,
            &with(&invite, "CSeq: 1 INVITE", "CSeq: 2 INVITE"),
            peer(),
            None,
        );
        assert_ne!(branch_of(&n), branch_of(&i));
        let (_, n) = up(
            &p,
            &with(&invite, "Call-ID: 1-", "Call-ID: 2-"),
            peer(),
            None,
        );
        assert_ne!(branch_of(&n), branch_of(&i));
    }

    #[test]
    fn a_top_via_whose_protocol_is_no_token_is_bad() {
        let p = proxy();
        let m = crlf(
            "OPTIONS sip:10.0.0.5 SIP/2.0\n\
Via:\"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.2\";x=1\n\
Max-Forwards: 70\nFrom: <sip:a@sipgw>;tag=a\nTo: <sip:10.0.0.5>\nCall-ID: q\n\
CSeq: 1 OPTIONS\nContent-Length: 0\n\n",
        );
        let msg = Message::parse(&m).unwrap();
        let mut out = [0u8; 1024];
        assert_eq!(
            p.request_upstream(&msg, peer(), None, &mut out),
            Route::Drop(ProxyDrop::BadVia)
        );
    }

    #[test]
    fn a_483_is_never_larger_than_its_request() {
        // No Contact, no body: the reply (status line, To-tag) outgrows the request.
        let p = proxy();
        let m = crlf(
            "CANCEL sip:10.0.0.5 SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKc\nMax-Forwards: 0\n\
From: <sip:a@sipgw>;tag=a\nTo: <sip:10.0.0.5>\nCall-ID: c\nCSeq: 1 CANCEL\n\n",
        );
        let msg = Message::parse(&m).unwrap();
        let mut out = [0u8; 1024];
        assert_eq!(
            p.request_upstream(&msg, peer(), None, &mut out),
            Route::Drop(ProxyDrop::TooLarge)
        );
    }

    #[test]
    fn max_forwards_zero_replies_483() {
        let p = proxy();
        let base = "OPTIONS sip:10.0.0.5 SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;rport;branch=z9hG4bKopt\n\
Via: SIP/2.0/UDP 192.168.1.1;branch=z9hG4bKx\n\
Max-Forwards: 0\nFrom: <sip:alice@sipgw>;tag=a1\nTo: <sip:10.0.0.5>\nCall-ID: mf0\n\
CSeq: 3 OPTIONS\nContact: <sip:alice@192.168.1.20:5062>\nContent-Length: 0\n\n";
        let msg_bytes = crlf(base);
        let msg = Message::parse(&msg_bytes).unwrap();
        let mut out = [0u8; 1024];
        let Route::Reply { to, len, status } = p.request_upstream(&msg, peer(), None, &mut out)
        else {
            panic!()
        };
        assert_eq!((to, status), (Flow::udp(peer()), 483));
        let text = std::str::from_utf8(&out[..len]).unwrap();
        let reply = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(reply.status_code(), Some(483));
        let tag = {
            let t = reply.header(HeaderName::To).unwrap();
            let tag = sip::header_param(t, b"tag").unwrap();
            String::from_utf8(tag.to_vec()).unwrap()
        };
        assert_eq!(
            text,
            format!(
                "SIP/2.0 483 Too Many Hops\r\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;rport;branch=z9hG4bKopt\r\n\
Via: SIP/2.0/UDP 192.168.1.1;branch=z9hG4bKx\r\n\
From: <sip:alice@sipgw>;tag=a1\r\nTo: <sip:10.0.0.5>;tag={tag}\r\n\
Call-ID: mf0\r\nCSeq: 3 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
        );
        // Without rport: the sent-by port (or 5060) at the source IP.
        let norport = base.replace(";rport;", ";");
        let m = crlf(&norport);
        let msg = Message::parse(&m).unwrap();
        let r = p.request_downstream(&msg, peer(), &mut out);
        assert!(
            matches!(r, Route::Reply { to, status: 483, .. } if to.peer == addr("198.51.100.7:5062"))
        );
        let m = crlf(&norport.replace(":5062;", ";"));
        let msg = Message::parse(&m).unwrap();
        let r = p.request_upstream(&msg, peer(), None, &mut out);
        assert!(matches!(r, Route::Reply { to, .. } if to.peer == addr("198.51.100.7:5060")));
        // Too small a buffer.
        let msg = Message::parse(&msg_bytes).unwrap();
        assert_eq!(
            p.request_upstream(&msg, peer(), None, &mut out[..len - 1]),
            Route::Drop(ProxyDrop::OutputTooSmall)
        );
        // ACK with Max-Forwards 0: dropped.
        let ack = crlf(&base.replace("OPTIONS", "ACK"));
        assert_eq!(up_route(&p, &ack, peer()), Route::Drop(ProxyDrop::Loop));
        // The ACK for our 483 (our To-tag) ends here, whatever its Max-Forwards.
        let own = base
            .replace("OPTIONS", "ACK")
            .replace("Max-Forwards: 0", "Max-Forwards: 70")
            .replace(
                "To: <sip:10.0.0.5>",
                &format!("To: <sip:10.0.0.5>;tag={tag}"),
            );
        assert_eq!(
            up_route(&p, &crlf(&own), peer()),
            Route::Drop(ProxyDrop::OwnAck)
        );
        // Max-Forwards 1 is forwarded with 0.
        let (_, text) = up(
            &p,
            &crlf(&base.replace("Max-Forwards: 0", "Max-Forwards: 1")),
            peer(),
            None,
        );
        assert_eq!(values(&text, "Max-Forwards"), ["0"]);
    }

    /// A response to a forwarded request: the Via lines of `forwarded`, as the softswitch
    /// would send them back.
    fn response_to(forwarded: &str, status: &str) -> Vec<u8> {
        let msg = Message::parse(forwarded.as_bytes()).unwrap();
        let mut r = format!("SIP/2.0 {status}\r\n").into_bytes();
        let keep = |n| {
            matches!(
                n,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
                    | HeaderName::RecordRoute
            )
        };
        for (_, line) in msg.lines_where(keep) {
            r.extend_from_slice(line);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        r
    }

    #[test]
    fn response_routes_back_through_the_vias() {
        let p = proxy();
        // sipp: no rport → received IP, sent-by port.
        let (_, fwd) = up(&p, REGISTER_AUTH, peer(), Some(b"alice"));
        let ok = response_to(&fwd, "200 OK");
        let msg = Message::parse(&ok).unwrap();
        let mut out = [0u8; 2048];
        let (to, text) = run(p.response(&msg, softswitch(), &mut out), &out);
        assert_eq!(to, addr("198.51.100.7:15061"));
        check_output(&ok, text.as_bytes());
        assert_eq!(
            values(&text, "Via"),
            ["SIP/2.0/UDP 127.0.0.1:15061;branch=z9hG4bK-4497-1-2;received=198.51.100.7"]
        );
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        // With rport → the source port.
        let m = with(REGISTER_AUTH, "15061;branch", "15061;rport;branch");
        let (_, fwd) = up(&p, &m, peer(), None);
        let ok = response_to(&fwd, "180 Ringing");
        assert!(matches!(resp(&p, &ok), Route::Send { to, .. } if to.peer == peer()));
        // Record-Route in responses is untouched.
        let (_, fwd) = up(&p, INVITE_NOAUTH, peer(), None);
        let ok = response_to(&fwd, "200 OK");
        let msg = Message::parse(&ok).unwrap();
        let (_, text) = run(p.response(&msg, softswitch(), &mut out), &out);
        assert_eq!(values(&text, "Record-Route"), values(&fwd, "Record-Route"));
        // Downstream request, its response goes back to the softswitch.
        let inv = with(
            INVITE_NOAUTH,
            "sip:bob@127.0.0.1:15062",
            "sip:bob@192.0.2.50:5080",
        );
        let (_, fwd) = down(&p, &inv);
        let ok = response_to(&fwd, "200 OK");
        assert!(
            matches!(resp(&p, &ok), Route::Send { to, .. } if to.peer == addr("10.0.0.5:15063"))
        );
    }

    #[test]
    fn response_with_foreign_or_missing_vias() {
        let p = proxy();
        let base = "SIP/2.0 200 OK\n\
Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK-sgw-0123\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;received=198.51.100.7;rport=40001;branch=z9hG4bKa\n\
From: <sip:a@b>;tag=1\nTo: <sip:a@b>;tag=2\nCall-ID: x\nCSeq: 1 INVITE\nContent-Length: 0\n\n";
        let ours = our_branch(&p, "198.51.100.7:40001");
        let base = &base.replace("z9hG4bK-sgw-0123", &ours);
        assert!(
            matches!(resp(&p, &crlf(base)), Route::Send { to, .. } if to.peer == addr("198.51.100.7:40001"))
        );
        // Default port when the advertised one is 5060.
        let m = base.replace("203.0.113.1:5060;", "203.0.113.1;");
        assert!(matches!(resp(&p, &crlf(&m)), Route::Send { .. }));
        for (from, to) in [
            ("z9hG4bK-sgw-", "z9hG4bK-"),
            ("0000000000000000", "000000000000000"),
            ("203.0.113.1:5060;", "203.0.113.1:5070;"),
            ("203.0.113.1:5060;", "203.0.113.2:5060;"),
            ("203.0.113.1:5060;", "gw.example.com:5060;"),
        ] {
            let m = base.replace(from, to);
            assert_eq!(
                resp(&p, &crlf(&m)),
                Route::Drop(ProxyDrop::NotOurVia),
                "{to}"
            );
        }
        let only = base.replace(
            "Via: SIP/2.0/UDP 192.168.1.20:5062;received=198.51.100.7;rport=40001;branch=z9hG4bKa\n",
            "",
        );
        assert_eq!(resp(&p, &crlf(&only)), Route::Drop(ProxyDrop::NoNextVia));
        let novia = only.replace(
            &format!("Via: SIP/2.0/UDP 203.0.113.1:5060;branch={ours}\n"),
            "",
        );
        assert_eq!(resp(&p, &crlf(&novia)), Route::Drop(ProxyDrop::NotOurVia));
        // Next Via with a hostname and no received: unroutable; malformed received: bad Via.
        let m = base.replace(
            "192.168.1.20:5062;received=198.51.100.7;",
            "ua.example.com;",
        );
        assert_eq!(resp(&p, &crlf(&m)), Route::Drop(ProxyDrop::Unroutable));
        let m = base.replace("received=198.51.100.7", "received=nowhere");
        assert_eq!(resp(&p, &crlf(&m)), Route::Drop(ProxyDrop::BadVia));
        // The branch MAC binds the response address: another rport, another received, a
        // branch made for another address, or another key: forged.
        for (from, to) in [
            ("rport=40001", "rport=40002"),
            ("received=198.51.100.7", "received=198.51.100.8"),
            (ours.as_str(), our_branch(&p, "10.0.0.5:5060").as_str()),
        ] {
            let m = base.replace(from, to);
            assert_eq!(
                resp(&p, &crlf(&m)),
                Route::Drop(ProxyDrop::ForgedVia),
                "{to}"
            );
        }
        let other = proxy_with(|c| c.key[31] ^= 1);
        assert_eq!(resp(&other, &crlf(base)), Route::Drop(ProxyDrop::ForgedVia));
        // Requests are not responses and vice versa.
        assert_eq!(resp(&p, INVITE_NOAUTH), Route::Drop(ProxyDrop::NotResponse));
        assert_eq!(
            up_route(&p, &crlf(base), peer()),
            Route::Drop(ProxyDrop::NotRequest)
        );
        assert_eq!(
            down_route(&p, &crlf(base)),
            Route::Drop(ProxyDrop::NotRequest)
        );
    }

    #[test]
    fn response_with_several_vias_in_one_line() {
        let p = proxy();
        let base = "SIP/2.0 486 Busy Here\n\
v: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK-sgw-ab , SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKb;rport=7000, SIP/2.0/UDP 192.0.2.3;branch=z9hG4bKc\n\
Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKd\n\
f: <sip:a@b>;tag=1\nt: <sip:a@b>;tag=2\ni: x\nCSeq: 1 INVITE\nl: 0\n\n";
        let base = &base.replace("z9hG4bK-sgw-ab", &our_branch(&p, "192.0.2.4:7000"));
        let m = crlf(base);
        let msg = Message::parse(&m).unwrap();
        let mut out = [0u8; 1024];
        let (to, text) = run(p.response(&msg, peer(), &mut out), &out);
        assert_eq!(to, addr("192.0.2.4:7000"));
        check_output(&m, text.as_bytes());
        assert_eq!(
            text.as_bytes(),
            crlf(
                "SIP/2.0 486 Busy Here\n\
v: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKb;rport=7000, SIP/2.0/UDP 192.0.2.3;branch=z9hG4bKc\n\
Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKd\n\
f: <sip:a@b>;tag=1\nt: <sip:a@b>;tag=2\ni: x\nCSeq: 1 INVITE\nl: 0\n\n"
            )
        );
        // Our Via alone on its line, the next one on the next line: the line goes.
        let m = crlf(
            &base
                .replace(" , SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKb;rport=7000, SIP/2.0/UDP 192.0.2.3;branch=z9hG4bKc", "")
                .replace(&our_branch(&p, "192.0.2.4:7000"), &our_branch(&p, "192.0.2.2:5060")),
        );
        let msg = Message::parse(&m).unwrap();
        let (to, text) = run(p.response(&msg, peer(), &mut out), &out);
        assert_eq!(to, addr("192.0.2.2:5060"));
        assert!(text.starts_with("SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 192.0.2.2;"));
    }

    const DOWN_INVITE: &str = "INVITE sip:alice@192.168.1.20:5062 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKss1\n\
Route: ROUTE\n\
Max-Forwards: 69\n\
From: <sip:bob@sipgw>;tag=b1\nTo: <sip:alice@sipgw>\nCall-ID: dn-1\nCSeq: 1 INVITE\n\
Contact: <sip:bob@10.0.0.5>\n\
Content-Type: application/sdp\nContent-Length: 10\n\nv=0\r\no=x\r\n";

    fn down_invite(route: &str) -> Vec<u8> {
        let m = DOWN_INVITE.replace("Route: ROUTE\n", route);
        // The body keeps its own CRLFs.
        let (head, body) = m.split_once("\n\n").unwrap();
        let mut b = crlf(&format!("{head}\n\n"));
        b.extend_from_slice(body.as_bytes());
        b
    }

    #[test]
    fn downstream_follows_the_flow_token() {
        let p = proxy();
        let flow = addr("198.51.100.7:40000");
        let t = p.flow_token(flow);
        let m = down_invite(&format!(
            "Route: <sip:{}@203.0.113.1:5060;lr>\n",
            t.as_str()
        ));
        let (to, text) = down(&p, &m);
        assert_eq!(to, flow);
        assert!(values(&text, "Route").is_empty());
        assert!(text.starts_with("INVITE sip:alice@192.168.1.20:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK-sgw-"));
        assert_eq!(
            values(&text, "Via")[1],
            "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKss1;received=10.0.0.5"
        );
        assert_eq!(values(&text, "Max-Forwards"), ["68"]);
        // Record-Route toward the endpoint's flow.
        let rr = values(&text, "Record-Route");
        assert_eq!(
            p.decode_flow_token(token_of(rr[0]).as_bytes()),
            Some(Flow::udp(flow))
        );
        assert!(text.ends_with("Content-Length: 10\r\n\r\nv=0\r\no=x\r\n"));
        // Several entries in the line: only ours goes.
        let m = down_invite(&format!(
            "Route: <sip:{}@203.0.113.1:5060;lr>,<sip:192.0.2.77;lr>\n",
            t.as_str()
        ));
        let (to, text) = down(&p, &m);
        assert_eq!(to, flow);
        assert_eq!(values(&text, "Route"), ["<sip:192.0.2.77;lr>"]);
        // Tampered or foreign-key token: dropped.
        let m = down_invite(&format!(
            "Route: <sip:{}@203.0.113.1:5060;lr>\n",
            tampered(t.as_str())
        ));
        assert_eq!(down_route(&p, &m), Route::Drop(ProxyDrop::BadFlowToken));
        let other = proxy_with(|c| c.key = [9; 32]);
        let m = down_invite(&format!(
            "Route: <sip:{}@203.0.113.1:5060;lr>\n",
            t.as_str()
        ));
        assert_eq!(down_route(&other, &m), Route::Drop(ProxyDrop::BadFlowToken));
        let m = down_invite("Route: <sip:garbage@203.0.113.1:5060;lr>\n");
        assert_eq!(down_route(&p, &m), Route::Drop(ProxyDrop::BadFlowToken));
        // IPv6 flow.
        let v6 = addr("[2001:db8::7]:5070");
        let m = down_invite(&format!(
            "Route: <sip:{}@203.0.113.1;lr>\n",
            p.flow_token(v6).as_str()
        ));
        assert_eq!(down(&p, &m).0, v6);
    }

    #[test]
    fn downstream_routes_by_next_route_or_request_uri() {
        let p = proxy();
        // No Route: the Request-URI.
        let m = down_invite("");
        assert_eq!(down(&p, &m).0, addr("192.168.1.20:5062"));
        // Our Route without token, then another Route: that one (kept).
        let m = down_invite("Route: <sip:203.0.113.1;lr>\nRoute: <sip:192.0.2.77:5090;lr>\n");
        let (to, text) = down(&p, &m);
        assert_eq!(to, addr("192.0.2.77:5090"));
        assert_eq!(values(&text, "Route"), ["<sip:192.0.2.77:5090;lr>"]);
        // A Route that is not ours: followed and kept.
        let m = down_invite("Route: <sip:192.0.2.78;lr>\n");
        let (to, text) = down(&p, &m);
        assert_eq!(to, addr("192.0.2.78:5060"));
        assert_eq!(values(&text, "Route"), ["<sip:192.0.2.78;lr>"]);
        let m = down_invite("Route: <sip:proxy.example.com;lr>\n");
        assert_eq!(down_route(&p, &m), Route::Drop(ProxyDrop::Unroutable));
        // Request-URI forms.
        for (uri, want) in [
            ("sip:alice@192.0.2.50", Some("192.0.2.50:5060")),
            ("sip:192.0.2.50:5070;transport=udp", Some("192.0.2.50:5070")),
            (
                "sip:alice@192.0.2.50;maddr=192.0.2.99",
                Some("192.0.2.50:5060"),
            ),
            (
                "sips:alice:pw@[2001:db8::1]:5081",
                Some("[2001:db8::1]:5081"),
            ),
            ("sip:alice@ua.example.com", None),
            ("tel:+15551234", None),
            ("sip:alice@0.0.0.0", None),
            ("sip:alice@192.0.2.50:0", None),
        ] {
            let m = with(&down_invite(""), "sip:alice@192.168.1.20:5062", uri);
            match want {
                Some(a) => assert_eq!(down(&p, &m).0, addr(a), "{uri}"),
                None => assert_eq!(
                    down_route(&p, &m),
                    Route::Drop(ProxyDrop::Unroutable),
                    "{uri}"
                ),
            }
        }
        // Request-URI is ourselves: loop.
        let m = with(
            &down_invite(""),
            "sip:alice@192.168.1.20:5062",
            "sip:alice@203.0.113.1",
        );
        assert_eq!(down_route(&p, &m), Route::Drop(ProxyDrop::Loop));
        // Request-URI carrying a flow token (Path-derived contact).
        let t = p.flow_token(peer());
        let uri = format!("sip:{}@203.0.113.1:5060", t.as_str());
        let m = with(&down_invite(""), "sip:alice@192.168.1.20:5062", &uri);
        let (to, text) = down(&p, &m);
        assert_eq!(to, peer());
        assert!(text.starts_with(&format!("INVITE {uri} SIP/2.0\r\n")));
        let uri = format!("sip:{}@192.0.2.50", tampered(t.as_str()));
        let m = with(&down_invite(""), "sip:alice@192.168.1.20:5062", &uri);
        assert_eq!(down_route(&p, &m), Route::Drop(ProxyDrop::BadFlowToken));
        // A user that merely starts like a token is a user.
        let m = with(
            &down_invite(""),
            "sip:alice@192.168.1.20:5062",
            "sip:sgwuser@192.0.2.50",
        );
        assert_eq!(down(&p, &m).0, addr("192.0.2.50:5060"));
    }

    #[test]
    fn compact_forms() {
        let p = proxy();
        let m = crlf(
            "MESSAGE sip:bob@10.0.0.5 SIP/2.0\n\
v: SIP/2.0/UDP 192.168.1.20:5062;rport;branch=z9hG4bKm1\n\
f: <sip:alice@sipgw>;tag=a1\nt: <sip:bob@sipgw>\ni: cm-1\nCSeq: 4 MESSAGE\n\
c: text/plain\nl: 5\n\nhello",
        );
        let (_, text) = up(&p, &m, peer(), Some(b"alice"));
        assert!(text.contains(
            "\r\nv: SIP/2.0/UDP 192.168.1.20:5062;rport=40000;branch=z9hG4bKm1;received=198.51.100.7\r\n"
        ));
        assert!(
            text.contains("\r\nf: <sip:alice@sipgw>;tag=a1\r\nt: <sip:bob@sipgw>\r\ni: cm-1\r\n")
        );
        assert!(text.ends_with("\r\nl: 5\r\n\r\nhello"));
        assert_eq!(values(&text, "Max-Forwards"), ["70"]);
    }

    #[test]
    fn folded_headers_survive() {
        let p = proxy();
        let m = crlf("INVITE sip:bob@10.0.0.5 SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062\n ;rport;branch=z9hG4bKf1,\n SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKf0\n\
Route: <sip:203.0.113.1;lr>,\n\t<sip:10.0.0.5;lr>\n\
From: <sip:alice@sipgw>;tag=a1\nTo: <sip:bob@sipgw>\nCall-ID: f-1\nCSeq: 1 INVITE\n\
Subject: a\n b\nContent-Length: 0\n\n");
        let (_, text) = up(&p, &m, peer(), None);
        let o = Message::parse(text.as_bytes()).unwrap();
        let vias: Vec<_> = o.via_values().collect();
        assert_eq!(vias.len(), 3);
        assert_eq!(sip::header_param(vias[1], b"rport"), Some(&b"40000"[..]));
        assert_eq!(
            sip::header_param(vias[1], b"received"),
            Some(&b"198.51.100.7"[..])
        );
        assert_eq!(o.header(HeaderName::Route), Some(&b"<sip:10.0.0.5;lr>"[..]));
    }

    #[test]
    fn output_buffer_too_small() {
        let p = proxy();
        let msg = Message::parse(INVITE_AUTH).unwrap();
        let mut out = vec![0u8; 4096];
        let Route::Send { len, .. } = p.request_upstream(&msg, peer(), Some(b"alice"), &mut out)
        else {
            panic!()
        };
        let full = out[..len].to_vec();
        for n in [0, 1, len / 2, len - 1] {
            let mut small = vec![0u8; n];
            assert_eq!(
                p.request_upstream(&msg, peer(), Some(b"alice"), &mut small),
                Route::Drop(ProxyDrop::OutputTooSmall)
            );
        }
        let mut exact = vec![0u8; len];
        assert_eq!(
            p.request_upstream(&msg, peer(), Some(b"alice"), &mut exact),
            Route::Send {
                to: softswitch().into(),
                len
            }
        );
        assert_eq!(exact, full);
        let ok = response_to(std::str::from_utf8(&full).unwrap(), "200 OK");
        let msg = Message::parse(&ok).unwrap();
        let Route::Send { len, .. } = p.response(&msg, softswitch(), &mut out) else {
            panic!()
        };
        assert_eq!(
            p.response(&msg, softswitch(), &mut out[..len - 1]),
            Route::Drop(ProxyDrop::OutputTooSmall)
        );
    }

    #[test]
    fn too_many_headers_or_bytes() {
        let p = proxy();
        let mut m = String::from(
            "INVITE sip:bob@10.0.0.5 SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKh\n\
From: <sip:alice@sipgw>;tag=a1\nTo: <sip:bob@sipgw>\nCall-ID: h-1\nCSeq: 1 INVITE\n",
        );
        for i in 0..(MAX_HEADERS - 7) {
            m.push_str(&format!("X-{i}: y\n"));
        }
        m.push_str("Content-Length: 0\n\n");
        let b = crlf(&m);
        let msg = Message::parse(&b).unwrap();
        assert_eq!(msg.header_count(), MAX_HEADERS - 1);
        // + Via, Record-Route, Max-Forwards, P-Asserted-Identity: over the limit.
        let r = p.request_upstream(&msg, peer(), Some(b"alice"), &mut vec![0u8; 8192]);
        assert_eq!(r, Route::Drop(ProxyDrop::TooLarge));
        // A body near the limit: the added bytes do not fit in a datagram.
        let mut big = crlf(
            "MESSAGE sip:bob@10.0.0.5 SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKh\n\
From: <sip:alice@sipgw>;tag=a1\nTo: <sip:bob@sipgw>\nCall-ID: h-1\nCSeq: 1 MESSAGE\n\n",
        );
        big.resize(MAX_MESSAGE_LEN - 10, b'x');
        let msg = Message::parse(&big).unwrap();
        let r = p.request_upstream(&msg, peer(), None, &mut vec![0u8; 2 * MAX_MESSAGE_LEN]);
        assert_eq!(r, Route::Drop(ProxyDrop::TooLarge));
    }

    #[test]
    fn malformed_requests_dropped() {
        let p = proxy();
        let m = crlf(
            "OPTIONS sip:10.0.0.5 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\n\
From: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCSeq: 1 OPTIONS\n\n",
        );
        assert_eq!(
            up_route(&p, &m, peer()),
            Route::Drop(ProxyDrop::MissingHeaders)
        );
        for via in [
            "garbage",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host junk",
            "SIP/2.0/UDP [::1",
        ] {
            let m = crlf(&format!(
                "OPTIONS sip:10.0.0.5 SIP/2.0\nVia: {via}\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: c\nCSeq: 1 OPTIONS\n\n"
            ));
            assert_eq!(
                up_route(&p, &m, peer()),
                Route::Drop(ProxyDrop::BadVia),
                "{via}"
            );
        }
    }

    #[test]
    fn softswitch_recognised() {
        let p = proxy();
        assert!(p.is_softswitch(softswitch()));
        assert!(p.is_softswitch(addr("[::ffff:10.0.0.5]:5060")));
        assert!(!p.is_softswitch(addr("10.0.0.5:5061")));
        assert!(!p.is_softswitch(peer()));
        assert_eq!(p.config().realm.as_ref(), "sipgw");
    }

    #[test]
    fn flow_tokens_round_trip_and_resist_tampering() {
        let p = proxy();
        for a in [
            "198.51.100.7:40000",
            "[2001:db8::1]:5060",
            "[::ffff:192.0.2.1]:9",
        ] {
            let a = addr(a);
            let t = p.flow_token(a);
            assert!(t.as_str().starts_with(FLOW_TOKEN_PREFIX));
            assert!(t.len_ok());
            assert!(t
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
            let back = p.decode_flow_token(t.as_bytes()).unwrap();
            assert_eq!(back, Flow::udp(canonical_peer(a)));
            for i in FLOW_TOKEN_PREFIX.len()..t.as_bytes().len() {
                let mut bad = t.as_bytes().to_vec();
                bad[i] = if bad[i] == b'x' { b'y' } else { b'x' };
                assert_eq!(p.decode_flow_token(&bad), None);
            }
            assert_eq!(
                proxy_with(|c| c.key[20] ^= 1).decode_flow_token(t.as_bytes()),
                None
            );
        }
        assert_eq!(p.flow_token(peer()).as_str().len(), 23);
        assert_eq!(p.flow_token(addr("[2001:db8::1]:1")).as_str().len(), 39);
        // Stream flows carry their connection; a token of one never decodes as another.
        for (a, len) in [
            ("198.51.100.7:40001", 35),
            ("[2001:db8::1]:1", MAX_FLOW_TOKEN_LEN),
        ] {
            for t in [Transport::Tcp, Transport::Tls] {
                let flow = Flow::stream(t, addr(a), ConnId(0x0001_0000_0000_002a));
                let token = p.flow_token(flow);
                assert_eq!(token.as_str().len(), len);
                assert_eq!(p.decode_flow_token(token.as_bytes()), Some(flow));
                let other = Flow::stream(t, addr(a), ConnId(0x0001_0000_0000_002b));
                assert_ne!(p.flow_token(other), token);
                let mut bad = token.as_bytes().to_vec();
                let last = bad.len() - 1;
                bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
                assert_eq!(p.decode_flow_token(&bad), None);
            }
        }
        assert_eq!(p.decode_flow_token(b"sgw"), None);
        assert_eq!(p.decode_flow_token(b""), None);
    }

    impl FlowToken {
        fn len_ok(&self) -> bool {
            let n = self.as_bytes().len();
            n == FLOW_TOKEN_PREFIX.len() + 20 || n == FLOW_TOKEN_PREFIX.len() + 36
        }
    }

    #[test]
    fn ipv6_advertised_address() {
        let p = Proxy::new(ProxyConfig::new(
            addr("[2001:db8::100]:5070"),
            softswitch(),
            "sipgw",
            [1; 32],
        ));
        let (_, text) = up(&p, INVITE_NOAUTH, peer(), None);
        assert!(text.contains("\r\nVia: SIP/2.0/UDP [2001:db8::100]:5070;branch=z9hG4bK-sgw-"));
        let rr = values(&text, "Record-Route")[0];
        assert!(rr.contains("@[2001:db8::100]:5070;lr;dlg="), "{rr}");
        let ok = response_to(&text, "200 OK");
        assert!(
            matches!(resp(&p, &ok), Route::Send { to, .. } if to.peer == addr("198.51.100.7:15063"))
        );
    }

    // ---- property tests ----

    const SAMPLES: &[&[u8]] = &[REGISTER_AUTH, REGISTER_NOAUTH, INVITE_AUTH, INVITE_NOAUTH];

    #[test]
    fn top_via_with_an_unterminated_quote_or_an_angle_bracket_is_bad() {
        // Found by the `proxy` fuzz target: the `;received=` appended after the open quote
        // was inside it, so the response came back as ForgedVia (it could not be routed).
        let p = proxy();
        let m = crlf(
            "BYE sip:callee@198.18.0.1 SIP/2.0\n\
Via: SIP/2.0/UDP 198.18.0.2:5062;branch=z9hG4\"K-1-0\n\
From: <sip:alice@198.18.0.1>;tag=1\nTo: <sip:callee@198.18.0.1>\nCall-ID: q\n\
CSeq: 4 BYE\nContent-Length: 0\n\n",
        );
        assert_eq!(up_route(&p, &m, peer()), Route::Drop(ProxyDrop::BadVia));
        assert_eq!(down_route(&p, &m), Route::Drop(ProxyDrop::BadVia));
        let text = String::from_utf8(m.clone()).unwrap();
        let balanced = text.replace("4\"K", "4\"K\"");
        let (_, fwd) = up(&p, balanced.as_bytes(), peer(), None);
        assert!(
            fwd.contains(";branch=z9hG4\"K\"-1-0;received=198.51.100.7"),
            "{fwd}"
        );
        // Nor an unquoted angle bracket, nor a bracketed host that is no IPv6 address.
        for (from, to) in [
            (";branch=z9hG4\"K-1-0", ";branch=z9hG4<K-1-0"),
            (";branch=z9hG4\"K-1-0", ";branch=z9hG4>K"),
            (
                "198.18.0.2:5062;branch=z9hG4\"K-1-0",
                "[2001:db8::<:1];branch=z9hG4bK",
            ),
        ] {
            let bad = text.replace(from, to);
            assert_eq!(
                up_route(&p, bad.as_bytes(), peer()),
                Route::Drop(ProxyDrop::BadVia)
            );
        }
        let v6 = text.replace(
            "198.18.0.2:5062;branch=z9hG4\"K-1-0",
            "[2001:db8::1]:5062;branch=z9hG4bK",
        );
        up(&p, v6.as_bytes(), peer(), None);
    }

    fn samples() -> Vec<Vec<u8>> {
        let p = proxy();
        let t = p.flow_token(peer());
        let mut v: Vec<Vec<u8>> = SAMPLES.iter().map(|s| s.to_vec()).collect();
        v.push(crlf(TWO_REALMS));
        v.push(down_invite(&format!(
            "Route: <sip:{}@203.0.113.1:5060;lr>, <sip:10.0.0.9;lr>\n",
            t.as_str()
        )));
        v.push(crlf(&format!("SIP/2.0 200 OK\n\
v: SIP/2.0/UDP 203.0.113.1:5060;branch={} , SIP/2.0/UDP 192.0.2.4:5062;received=198.51.100.7;rport=7000\n\
Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKd\n\
Record-Route: <sip:x@203.0.113.1;lr>\n\
From: <sip:a@b>;tag=1\nTo: <sip:a@b>;tag=2\nCall-ID: x\nCSeq: 1 INVITE\nContent-Length: 3\n\nabc",
            our_branch(&p, "198.51.100.7:7000")
        )));
        v.push(crlf(
            "ACK sip:bob@192.0.2.50 SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062\n ;rport ;branch=z9hG4bK1;received=\"x;y\"\n\
Route: <sip:203.0.113.1;lr>\nMax-Forwards: 1\nf: <sip:a@b>;tag=1\nt: <sip:a@b>;tag=2\ni: x\n\
CSeq: 1 ACK\nP-Asserted-Identity: <sip:a@b>\n\n",
        ));
        v
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Set(usize, u8),
        Insert(usize, u8),
        Delete(usize),
        Splice(usize, &'static str),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (
                any::<usize>(),
                prop::sample::select(vec![
                    b'\r', b'\n', b' ', b'\t', b':', b',', b'"', b'<', b'>', b';', b'=', b'[',
                    b']', b'@', b'0', b'a'
                ])
            )
                .prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Delete),
            (
                any::<usize>(),
                prop::sample::select(vec![
                    ";rport",
                    ";received=1.2.3.4",
                    ";received=",
                    ";rport=",
                    ", SIP/2.0/UDP 1.2.3.4",
                    "\r\nRoute: <sip:203.0.113.1;lr>",
                    "\r\nv: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bK-sgw-1",
                    "\r\nMax-Forwards: 0",
                    "\r\nRecord-Route: <sip:a@b>",
                    "\r\nPath: <sip:p>",
                    "\r\n P-Asserted-Identity: <sip:x@y>",
                    "\r\n\tfold",
                    "z9hG4bK",
                    "sgw",
                    "\r\nAuthorization: Digest realm=\"sipgw\"",
                    "[2001:db8::1]",
                    "\r\n\r\n",
                ])
            )
                .prop_map(|(i, s)| Mutation::Splice(i, s)),
        ]
    }

    fn apply(buf: &mut Vec<u8>, m: &Mutation) {
        let n = buf.len();
        match *m {
            Mutation::Set(i, b) if n > 0 => buf[i % n] = b,
            Mutation::Insert(i, b) => buf.insert(i % (n + 1), b),
            Mutation::Delete(i) if n > 0 => {
                buf.remove(i % n);
            }
            Mutation::Splice(i, s) => {
                let at = i % (n + 1);
                buf.splice(at..at, s.bytes());
            }
            _ => {}
        }
    }

    fn peer_strategy() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            Just(peer()),
            Just(softswitch()),
            Just(gw()),
            Just(addr("[2001:db8::9]:7000")),
            Just(addr("[::ffff:198.51.100.7]:1")),
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
        ]
    }

    /// Runs all three functions and checks every output.
    fn exercise(
        p: &Proxy,
        buf: &[u8],
        from: SocketAddr,
        id: Option<&[u8]>,
        cap: usize,
    ) -> Result<(), TestCaseError> {
        let Ok(msg) = Message::parse(buf) else {
            return Ok(());
        };
        let mut out = vec![0u8; cap];
        let routes = [
            p.request_upstream(&msg, from, id, &mut out),
            p.request_downstream(&msg, from, &mut out),
            p.response(&msg, from, &mut out),
        ];
        for (k, r) in routes.into_iter().enumerate() {
            // Recompute the output of this route (the buffer is shared).
            let r2 = match k {
                0 => p.request_upstream(&msg, from, id, &mut out),
                1 => p.request_downstream(&msg, from, &mut out),
                _ => p.response(&msg, from, &mut out),
            };
            prop_assert_eq!(r, r2, "deterministic");
            match r {
                Route::Send { len, to } => {
                    prop_assert!(len <= cap);
                    prop_assert!(to.peer.port() != 0);
                    let o = Message::parse(&out[..len]);
                    prop_assert!(
                        o.is_ok(),
                        "{:?}: {}",
                        o.err(),
                        String::from_utf8_lossy(&out[..len])
                    );
                    let o = o.unwrap();
                    prop_assert_eq!(o.body(), msg.body());
                    prop_assert_eq!(o.content_length(), msg.content_length());
                    prop_assert_eq!(o.is_request(), msg.is_request());
                    prop_assert_eq!(o.request_uri(), msg.request_uri());
                    if o.is_request() {
                        let top = o.via_values().next().unwrap_or_default();
                        prop_assert!(p.is_our_via(top));
                        prop_assert_eq!(o.via_values().count(), msg.via_values().count() + 1);
                        prop_assert!(o.header(HeaderName::MaxForwards).is_some());
                    } else {
                        prop_assert_eq!(o.via_values().count() + 1, msg.via_values().count());
                        prop_assert_eq!(o.status_code(), msg.status_code());
                    }
                }
                Route::Reply { len, status, .. } => {
                    prop_assert_eq!(status, 483);
                    let o = Message::parse(&out[..len]);
                    prop_assert!(o.is_ok(), "{:?}", o.err());
                    prop_assert_eq!(o.unwrap().status_code(), Some(483));
                }
                Route::Drop(_) => {}
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn mutated_messages_never_panic_and_reparse(
            idx in 0..9usize,
            muts in prop::collection::vec(mutation(), 0..5),
            from in peer_strategy(),
            id in prop::option::of(prop::collection::vec(any::<u8>(), 0..12)),
            cap in prop_oneof![4 => Just(4096usize), 1 => 0..700usize],
            variant in 0..3u8,
        ) {
            let all = samples();
            let mut buf = all[idx % all.len()].clone();
            for m in &muts {
                apply(&mut buf, m);
            }
            let p = match variant {
                0 => proxy(),
                1 => proxy_with(|c| {
                    c.strip_credentials = false;
                    c.assert_identity = false;
                    c.add_path = false;
                    c.record_route = false;
                }),
                _ => proxy_with(|c| {
                    c.advertised = addr("[2001:db8::100]:5070");
                    c.softswitch = addr("[::ffff:10.0.0.5]:5060");
                    c.realm = "odd realm\r\n>".into();
                }),
            };
            exercise(&p, &buf, from, id.as_deref(), cap)?;
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            buf in prop::collection::vec(any::<u8>(), 0..600),
            from in peer_strategy(),
        ) {
            exercise(&proxy(), &buf, from, Some(b"u"), 2048)?;
        }

        #[test]
        fn upstream_then_response_returns_to_the_client(
            branch in "[a-zA-Z0-9.-]{1,20}",
            cookie in any::<bool>(),
            rport in any::<bool>(),
            port in 1u16..,
            sent_port in prop::option::of(1u16..),
            extra in prop::sample::select(vec![
                "", ";received=1.2.3.4", ";rport=9", ";RPORT", ";x=\"a;rport\"",
                ";received=1.2.3.4;received=5.6.7.8", ";received", ";maddr=10.0.0.5",
            ]),
            v6 in any::<bool>(),
        ) {
            let p = proxy();
            let ip = if v6 {
                IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7])
            } else {
                IpAddr::from([198, 51, 100, 7])
            };
            let from = SocketAddr::new(ip, port);
            let sent_by = match sent_port {
                Some(sp) => format!("192.168.1.20:{sp}"),
                None => "192.168.1.20".to_string(),
            };
            let m = crlf(&format!(
                "INVITE sip:bob@10.0.0.5 SIP/2.0\nVia: SIP/2.0/UDP {sent_by};branch={}{branch}{}{extra}\n\
    From: <sip:a@b>;tag=1\nTo: <sip:b@b>\nCall-ID: pc\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
                if cookie { "z9hG4bK" } else { "" },
                if rport { ";rport" } else { "" },
            ));
            let (to, fwd) = up(&p, &m, from, None);
            prop_assert_eq!(to, softswitch());
            let ok = response_to(&fwd, "200 OK");
            let want_port = if rport { port } else { sent_port.unwrap_or(5060) };
            let r = resp(&p, &ok);
            let back = match r {
                Route::Send { to, .. } if extra.is_empty() => to.peer == SocketAddr::new(from.ip(), want_port),
                Route::Send { to, .. } => to.peer.ip() == from.ip(),
                _ => false,
            };
            prop_assert!(back, "{:?}", r);
        }
    }
}
