//! Strict validation of a parsed message before any pass, evaluation or forward decision.
//!
//! Layer: protocol core, sans-IO. [`Message::parse`] checks framing (start line, header lines,
//! `Content-Length`); this module checks what a proxy relies on once a message is framed
//! (RFC 3261 §16.3 request validation). [`crate::engine::Engine`] calls [`message`] right after
//! parsing, before anything else looks at the message: a request that fails is never
//! evaluated (no digest check, no ACK/CANCEL/`no_auth_methods` pass, no address-authenticated
//! forward) and never forwarded; see `docs/validation.md` for what the engine then does.
//!
//! # Checks (requests), in this order; the first failure is the result
//!
//! | check | RFC | result |
//! | --- | --- | --- |
//! | Via, From, To, Call-ID, CSeq present | 3261 §8.1.1 | [`Invalid::MissingHeaders`] |
//! | one Call-ID, CSeq, From, To, Max-Forwards, Content-Length line (From/To: one element) | 3261 §7.3.1, §20; 4475 §3.3.8, §3.1.2.15 | `400 Multiple <name>` |
//! | CSeq is `number LWS token` | 3261 §20.16 | `400 Bad CSeq` |
//! | CSeq number ≤ 2³¹−1 | 3261 §8.1.1.5; 4475 §3.1.2.4 | `400 CSeq Out Of Range` |
//! | CSeq method = request method (byte for byte; ACK and CANCEL included) | 3261 §8.1.1.5, §17.1.1.3, §9.1; 4475 §3.1.2.17/18 | `400 CSeq Method Mismatch` |
//! | Max-Forwards is decimal | 3261 §20.22 | `400 Bad Max-Forwards` |
//! | Max-Forwards ≤ 255 | 3261 §20.22; 4475 §3.1.2.4 | `400 Max-Forwards Out Of Range` |
//! | From, To hold a name-addr / addr-spec (balanced quotes and `<>`) | 3261 §20.20, §20.39; 4475 §3.1.2.6 | `400 Bad From` / `400 Bad To` |
//! | every via-parm of every Via: `SIP/2.0/transport sent-by` then `;token[=value]` params, no empty element | 3261 §20.42; 4475 §3.1.2.1 | `400 Bad Via` |
//! | sent-by, and the host of a `sip:`/`sips:` Request-URI, not an unbracketed IPv6 address | 3261 §19.1.1, 5118 §4.2 | `400 Unbracketed IPv6` |
//! | a `sip:`/`sips:` Request-URI parses (host, port) | 3261 §19.1.1 | `400 Bad Request-URI` |
//! | no headers (`?`) in a `sip:`/`sips:` Request-URI | 3261 §19.1.5; 4475 §3.1.2.11 | `400 Headers In Request-URI` |
//! | Proxy-Require options are tokens | 3261 §20.29 | `400 Bad Proxy-Require` |
//! | no Proxy-Require option (we support no extension) | 3261 §16.3 step 4; 4475 §3.3.5 | `420 Bad Extension` |
//!
//! `Require` is for the UAS and is not looked at.
//!
//! # Checks (responses)
//!
//! The same multiple-header checks (Call-ID, CSeq, From, To, Content-Length), the CSeq syntax
//! and range, and the top Via (syntax, unbracketed IPv6): a response failing them is dropped
//! by the engine, never passed.
//!
//! # No-panic contract
//!
//! [`message`] accepts any [`Message`] and returns; nothing indexes (slices are taken with
//! `get`), nothing allocates, arithmetic saturates. The helpers it uses (`sip::split_list`,
//! `sip::name_addr_uri`, the proxy's Via and URI parsers) have the same contract.

#![forbid(unsafe_code)]

use crate::counters::Counters;
use crate::sip::values::{self, ViaError};
use crate::sip::{self, HeaderName, Message, StartLine};

/// Largest CSeq sequence number (RFC 3261 §8.1.1.5: less than 2³¹).
pub const MAX_CSEQ: u32 = (1 << 31) - 1;

/// Largest Max-Forwards value (RFC 3261 §20.22: 0-255).
pub const MAX_MAX_FORWARDS: u32 = 255;

/// Why a message fails validation. Each variant has a status ([`Invalid::status`]), a reason
/// phrase ([`Invalid::reason`]) and a counter ([`Invalid::counter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// A request without Via, From, To, Call-ID or CSeq (counted as `missing_headers`; no
    /// reply can be built).
    MissingHeaders,
    /// More than one Call-ID.
    MultipleCallId,
    /// More than one CSeq.
    MultipleCSeq,
    /// More than one From (lines or comma-separated elements).
    MultipleFrom,
    /// More than one To (lines or comma-separated elements).
    MultipleTo,
    /// More than one Max-Forwards.
    MultipleMaxForwards,
    /// More than one Content-Length (conflicting values are already a parse error).
    MultipleContentLength,
    /// CSeq is not `number LWS method`.
    BadCSeq,
    /// CSeq number above 2³¹−1.
    CSeqOutOfRange,
    /// CSeq method differs from the request method.
    CSeqMethodMismatch,
    /// Max-Forwards is not decimal.
    BadMaxForwards,
    /// Max-Forwards above 255.
    MaxForwardsOutOfRange,
    /// From is not a name-addr / addr-spec.
    BadFrom,
    /// To is not a name-addr / addr-spec.
    BadTo,
    /// A via-parm does not parse strictly.
    BadVia,
    /// An IPv6 address without brackets in a Via sent-by or the Request-URI host.
    UnbracketedIpv6,
    /// A `sip:`/`sips:` Request-URI whose host or port does not parse.
    BadRequestUri,
    /// Headers (`?...`) in the Request-URI.
    RequestUriHeaders,
    /// A Proxy-Require option is not a token.
    BadProxyRequire,
    /// Proxy-Require names an extension (we support none): `420 Bad Extension`.
    BadExtension,
}

impl Invalid {
    /// Every variant, in declaration order.
    pub const ALL: [Invalid; 20] = [
        Invalid::MissingHeaders,
        Invalid::MultipleCallId,
        Invalid::MultipleCSeq,
        Invalid::MultipleFrom,
        Invalid::MultipleTo,
        Invalid::MultipleMaxForwards,
        Invalid::MultipleContentLength,
        Invalid::BadCSeq,
        Invalid::CSeqOutOfRange,
        Invalid::CSeqMethodMismatch,
        Invalid::BadMaxForwards,
        Invalid::MaxForwardsOutOfRange,
        Invalid::BadFrom,
        Invalid::BadTo,
        Invalid::BadVia,
        Invalid::UnbracketedIpv6,
        Invalid::BadRequestUri,
        Invalid::RequestUriHeaders,
        Invalid::BadProxyRequire,
        Invalid::BadExtension,
    ];

    /// The status of the reply to a request failing this way: 420 for
    /// [`Invalid::BadExtension`], else 400.
    pub const fn status(self) -> u16 {
        match self {
            Invalid::BadExtension => 420,
            _ => 400,
        }
    }

    /// The reason phrase of that reply, naming the problem.
    pub const fn reason(self) -> &'static str {
        match self {
            Invalid::MissingHeaders => "Missing Headers",
            Invalid::MultipleCallId => "Multiple Call-ID",
            Invalid::MultipleCSeq => "Multiple CSeq",
            Invalid::MultipleFrom => "Multiple From",
            Invalid::MultipleTo => "Multiple To",
            Invalid::MultipleMaxForwards => "Multiple Max-Forwards",
            Invalid::MultipleContentLength => "Multiple Content-Length",
            Invalid::BadCSeq => "Bad CSeq",
            Invalid::CSeqOutOfRange => "CSeq Out Of Range",
            Invalid::CSeqMethodMismatch => "CSeq Method Mismatch",
            Invalid::BadMaxForwards => "Bad Max-Forwards",
            Invalid::MaxForwardsOutOfRange => "Max-Forwards Out Of Range",
            Invalid::BadFrom => "Bad From",
            Invalid::BadTo => "Bad To",
            Invalid::BadVia => "Bad Via",
            Invalid::UnbracketedIpv6 => "Unbracketed IPv6",
            Invalid::BadRequestUri => "Bad Request-URI",
            Invalid::RequestUriHeaders => "Headers In Request-URI",
            Invalid::BadProxyRequire => "Bad Proxy-Require",
            Invalid::BadExtension => "Bad Extension",
        }
    }

    /// The whole status line of the reply, CR LF included.
    pub const fn status_line(self) -> &'static [u8] {
        match self {
            Invalid::MissingHeaders => b"SIP/2.0 400 Missing Headers\r\n",
            Invalid::MultipleCallId => b"SIP/2.0 400 Multiple Call-ID\r\n",
            Invalid::MultipleCSeq => b"SIP/2.0 400 Multiple CSeq\r\n",
            Invalid::MultipleFrom => b"SIP/2.0 400 Multiple From\r\n",
            Invalid::MultipleTo => b"SIP/2.0 400 Multiple To\r\n",
            Invalid::MultipleMaxForwards => b"SIP/2.0 400 Multiple Max-Forwards\r\n",
            Invalid::MultipleContentLength => b"SIP/2.0 400 Multiple Content-Length\r\n",
            Invalid::BadCSeq => b"SIP/2.0 400 Bad CSeq\r\n",
            Invalid::CSeqOutOfRange => b"SIP/2.0 400 CSeq Out Of Range\r\n",
            Invalid::CSeqMethodMismatch => b"SIP/2.0 400 CSeq Method Mismatch\r\n",
            Invalid::BadMaxForwards => b"SIP/2.0 400 Bad Max-Forwards\r\n",
            Invalid::MaxForwardsOutOfRange => b"SIP/2.0 400 Max-Forwards Out Of Range\r\n",
            Invalid::BadFrom => b"SIP/2.0 400 Bad From\r\n",
            Invalid::BadTo => b"SIP/2.0 400 Bad To\r\n",
            Invalid::BadVia => b"SIP/2.0 400 Bad Via\r\n",
            Invalid::UnbracketedIpv6 => b"SIP/2.0 400 Unbracketed IPv6\r\n",
            Invalid::BadRequestUri => b"SIP/2.0 400 Bad Request-URI\r\n",
            Invalid::RequestUriHeaders => b"SIP/2.0 400 Headers In Request-URI\r\n",
            Invalid::BadProxyRequire => b"SIP/2.0 400 Bad Proxy-Require\r\n",
            Invalid::BadExtension => b"SIP/2.0 420 Bad Extension\r\n",
        }
    }

    /// The name of the [`Counters`] field counting this reason.
    pub const fn counter(self) -> &'static str {
        match self {
            Invalid::MissingHeaders => "missing_headers",
            Invalid::MultipleCallId => "invalid_multiple_call_id",
            Invalid::MultipleCSeq => "invalid_multiple_cseq",
            Invalid::MultipleFrom => "invalid_multiple_from",
            Invalid::MultipleTo => "invalid_multiple_to",
            Invalid::MultipleMaxForwards => "invalid_multiple_max_forwards",
            Invalid::MultipleContentLength => "invalid_multiple_content_length",
            Invalid::BadCSeq => "invalid_cseq",
            Invalid::CSeqOutOfRange => "invalid_cseq_range",
            Invalid::CSeqMethodMismatch => "invalid_cseq_method",
            Invalid::BadMaxForwards => "invalid_max_forwards",
            Invalid::MaxForwardsOutOfRange => "invalid_max_forwards_range",
            Invalid::BadFrom => "invalid_from",
            Invalid::BadTo => "invalid_to",
            Invalid::BadVia => "invalid_via",
            Invalid::UnbracketedIpv6 => "invalid_unbracketed_ipv6",
            Invalid::BadRequestUri => "invalid_request_uri",
            Invalid::RequestUriHeaders => "invalid_request_uri_headers",
            Invalid::BadProxyRequire => "invalid_proxy_require",
            Invalid::BadExtension => "bad_extension",
        }
    }

    /// Add one to this reason's counter.
    pub fn count(self, c: &mut Counters) {
        let field = match self {
            Invalid::MissingHeaders => &mut c.missing_headers,
            Invalid::MultipleCallId => &mut c.invalid_multiple_call_id,
            Invalid::MultipleCSeq => &mut c.invalid_multiple_cseq,
            Invalid::MultipleFrom => &mut c.invalid_multiple_from,
            Invalid::MultipleTo => &mut c.invalid_multiple_to,
            Invalid::MultipleMaxForwards => &mut c.invalid_multiple_max_forwards,
            Invalid::MultipleContentLength => &mut c.invalid_multiple_content_length,
            Invalid::BadCSeq => &mut c.invalid_cseq,
            Invalid::CSeqOutOfRange => &mut c.invalid_cseq_range,
            Invalid::CSeqMethodMismatch => &mut c.invalid_cseq_method,
            Invalid::BadMaxForwards => &mut c.invalid_max_forwards,
            Invalid::MaxForwardsOutOfRange => &mut c.invalid_max_forwards_range,
            Invalid::BadFrom => &mut c.invalid_from,
            Invalid::BadTo => &mut c.invalid_to,
            Invalid::BadVia => &mut c.invalid_via,
            Invalid::UnbracketedIpv6 => &mut c.invalid_unbracketed_ipv6,
            Invalid::BadRequestUri => &mut c.invalid_request_uri,
            Invalid::RequestUriHeaders => &mut c.invalid_request_uri_headers,
            Invalid::BadProxyRequire => &mut c.invalid_proxy_require,
            Invalid::BadExtension => &mut c.bad_extension,
        };
        *field = field.saturating_add(1);
    }
}

impl core::fmt::Display for Invalid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {}", self.status(), self.reason())
    }
}

/// Validate a parsed message: [`request`] or [`response`] by its start line.
pub fn message(msg: &Message<'_>) -> Result<(), Invalid> {
    if msg.is_request() {
        request(msg)
    } else {
        response(msg)
    }
}

/// Validate a request (see the module doc for the checks and their order).
pub fn request(msg: &Message<'_>) -> Result<(), Invalid> {
    let StartLine::Request {
        method_bytes, uri, ..
    } = msg.start_line()
    else {
        return response(msg);
    };
    if !msg.has_required_headers() {
        return Err(Invalid::MissingHeaders);
    }
    single_headers(msg, true)?;
    let (_, cseq_method) = cseq(msg)?;
    if cseq_method != method_bytes {
        return Err(Invalid::CSeqMethodMismatch);
    }
    if let Some(v) = msg.header(HeaderName::MaxForwards) {
        max_forwards(v)?;
    }
    for (name, err) in [
        (HeaderName::From, Invalid::BadFrom),
        (HeaderName::To, Invalid::BadTo),
    ] {
        if msg.header(name).and_then(sip::name_addr_uri).is_none() {
            return Err(err);
        }
    }
    for value in msg.headers_named(HeaderName::Via) {
        via_header(value)?;
    }
    request_uri(uri)?;
    proxy_require(msg)
}

/// Validate a response: one Call-ID, CSeq, From, To and Content-Length; a well-formed CSeq
/// when there is one; a strictly parsing top Via when there is one.
pub fn response(msg: &Message<'_>) -> Result<(), Invalid> {
    single_headers(msg, false)?;
    if msg.header(HeaderName::CSeq).is_some() {
        cseq(msg)?;
    }
    if let Some(top) = msg.via_values().next() {
        via_parm(top)?;
    }
    Ok(())
}

/// The headers a message may carry once.
fn single_headers(msg: &Message<'_>, request: bool) -> Result<(), Invalid> {
    let once = [
        (HeaderName::CallId, Invalid::MultipleCallId),
        (HeaderName::CSeq, Invalid::MultipleCSeq),
        (HeaderName::From, Invalid::MultipleFrom),
        (HeaderName::To, Invalid::MultipleTo),
        (HeaderName::MaxForwards, Invalid::MultipleMaxForwards),
        (HeaderName::ContentLength, Invalid::MultipleContentLength),
    ];
    for (name, err) in once {
        if name == HeaderName::MaxForwards && !request {
            continue;
        }
        if msg.count(name) > 1 {
            return Err(err);
        }
        // From and To are single name-addrs: a top-level comma (outside quotes and `<>`)
        // makes two, as in an unquoted display name with a comma (RFC 4475 §3.1.2.15).
        if matches!(name, HeaderName::From | HeaderName::To)
            && msg
                .header(name)
                .is_some_and(|v| sip::split_list(v).nth(1).is_some())
        {
            return Err(err);
        }
    }
    Ok(())
}

/// The CSeq (number, method) of a message that has one.
fn cseq<'a>(msg: &Message<'a>) -> Result<(u32, &'a [u8]), Invalid> {
    let value = msg
        .header(HeaderName::CSeq)
        .ok_or(Invalid::MissingHeaders)?;
    match sip::cseq(value) {
        Some((n, _)) if n > MAX_CSEQ => Err(Invalid::CSeqOutOfRange),
        Some(parsed) => Ok(parsed),
        None => {
            // A number too large for u32 is out of range rather than malformed.
            let v = sip::trim_lws(value);
            let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0
                && v.get(..digits)
                    .is_some_and(|d| sip::num::parse_u32(d).is_none())
            {
                Err(Invalid::CSeqOutOfRange)
            } else {
                Err(Invalid::BadCSeq)
            }
        }
    }
}

fn max_forwards(value: &[u8]) -> Result<u32, Invalid> {
    let v = sip::trim_lws(value);
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(Invalid::BadMaxForwards);
    }
    match sip::num::parse_u32(v) {
        Some(n) if n <= MAX_MAX_FORWARDS => Ok(n),
        _ => Err(Invalid::MaxForwardsOutOfRange),
    }
}

/// One Via header value: one or more via-parms, no empty element.
fn via_header(value: &[u8]) -> Result<(), Invalid> {
    if sip::has_empty_list_element(value) {
        return Err(Invalid::BadVia);
    }
    sip::split_list(value).try_for_each(via_parm)
}

/// One via-parm, strictly: `SIP/2.0/transport` (LWS allowed around the slashes), sent-by
/// (hostname, IPv4 or bracketed IPv6, optional port), then `;token[=value]` parameters with
/// a value that is a token, a host (IPv6 reference included) or a quoted string.
fn via_parm(value: &[u8]) -> Result<(), Invalid> {
    let via = values::parse_via_checked(value).map_err(|e| match e {
        ViaError::UnbracketedIpv6 => Invalid::UnbracketedIpv6,
        ViaError::Syntax => Invalid::BadVia,
    })?;
    let (name, version) = via.protocol;
    if !name.eq_ignore_ascii_case(b"SIP") || version != b"2.0" {
        return Err(Invalid::BadVia);
    }
    if !host_ok(via.host) {
        return Err(Invalid::BadVia);
    }
    for seg in values::Params::new(via.params) {
        let (pname, pvalue) = values::split_param(seg);
        if pname.is_empty() || !sip::is_token(pname) {
            return Err(Invalid::BadVia);
        }
        if let Some(v) = pvalue {
            if !param_value_ok(v) {
                return Err(Invalid::BadVia);
            }
        }
    }
    Ok(())
}

/// A sent-by host: hostname or IPv4 (alphanumerics, `-`, `.`), or `[IPv6]`.
fn host_ok(host: &[u8]) -> bool {
    match host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
        Some(inner) => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => {
            !host.is_empty()
                && host
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    }
}

/// gen-value: token / host / quoted-string (an empty value, `branch=`, is not one).
fn param_value_ok(v: &[u8]) -> bool {
    if let Some(inner) = v.strip_prefix(b"\"") {
        // A quoted string: ends at the last byte, with no unescaped quote inside.
        let mut escaped = false;
        let mut closed = false;
        for &b in inner {
            if closed {
                return false;
            }
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => closed = true,
                _ => {}
            }
        }
        return closed;
    }
    !v.is_empty()
        && v.iter()
            .all(|&b| sip::chars::is_token_char(b) || matches!(b, b':' | b'[' | b']'))
}

/// A `sip:`/`sips:` Request-URI: a bracketed IPv6 host, a host and port that parse, no
/// headers. Other schemes are the UAS's business (RFC 4475 §3.3.2, §3.3.3).
fn request_uri(uri: &[u8]) -> Result<(), Invalid> {
    let Some((_, hostport)) = values::sip_uri_split(uri) else {
        return Ok(());
    };
    if hostport.first() != Some(&b'[') {
        let host_end = hostport
            .iter()
            .position(|&b| matches!(b, b';' | b'?' | b'>'))
            .unwrap_or(hostport.len());
        let host = hostport.get(..host_end).unwrap_or_default();
        if host.iter().filter(|&&b| b == b':').count() > 1 {
            return Err(Invalid::UnbracketedIpv6);
        }
    }
    if values::parse_sip_uri(uri).is_none() {
        return Err(Invalid::BadRequestUri);
    }
    if hostport.contains(&b'?') {
        return Err(Invalid::RequestUriHeaders);
    }
    Ok(())
}

/// Proxy-Require: every option a token (else 400), and none at all (else 420).
fn proxy_require(msg: &Message<'_>) -> Result<(), Invalid> {
    let mut any = false;
    for value in proxy_require_values(msg) {
        for option in sip::split_list(value) {
            if !sip::is_token(option) {
                return Err(Invalid::BadProxyRequire);
            }
            any = true;
        }
    }
    if any {
        Err(Invalid::BadExtension)
    } else {
        Ok(())
    }
}

/// The values of every `Proxy-Require` header, in order (for the `Unsupported` header of a
/// 420: each value's options, as written).
pub fn proxy_require_values<'m, 'a>(msg: &'m Message<'a>) -> impl Iterator<Item = &'a [u8]> + 'm {
    msg.headers_by_name(b"Proxy-Require")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid request with `edit` applied to its header lines (CR LF added).
    fn req(start: &str, headers: &[&str]) -> Vec<u8> {
        let mut s = format!("{start}\r\n");
        for h in headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    const BASE: [&str; 7] = [
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1;rport",
        "Max-Forwards: 70",
        "From: \"Alice\" <sip:alice@example.com>;tag=1",
        "To: <sip:bob@example.com>",
        "Call-ID: c1@192.0.2.1",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ];

    /// BASE with the header starting with `name:` replaced by `line` (or added if absent;
    /// an empty `line` removes it).
    fn with(name: &str, line: &str) -> Vec<&'static str> {
        let line: &'static str = Box::leak(line.to_owned().into_boxed_str());
        let mut v: Vec<&'static str> = BASE.to_vec();
        match v.iter().position(|h| h.starts_with(&format!("{name}:"))) {
            Some(i) if line.is_empty() => {
                v.remove(i);
            }
            Some(i) => v[i] = line,
            None => v.push(line),
        }
        v
    }

    fn check(start: &str, headers: &[&str]) -> Result<(), Invalid> {
        let buf = req(start, headers);
        let msg = Message::parse(&buf).unwrap_or_else(|e| panic!("{e}: {buf:?}"));
        message(&msg)
    }

    const OPT: &str = "OPTIONS sip:bob@example.com SIP/2.0";

    #[test]
    fn base_is_valid() {
        assert_eq!(check(OPT, &BASE), Ok(()));
    }

    #[test]
    fn missing_headers() {
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            assert_eq!(
                check(OPT, &with(name, "")),
                Err(Invalid::MissingHeaders),
                "{name}"
            );
        }
        // Max-Forwards and Content-Length are optional.
        assert_eq!(check(OPT, &with("Max-Forwards", "")), Ok(()));
        assert_eq!(check(OPT, &with("Content-Length", "")), Ok(()));
    }

    #[test]
    fn multiple_single_headers() {
        let cases = [
            ("i: c2@192.0.2.1", Invalid::MultipleCallId),
            ("CSeq: 2 OPTIONS", Invalid::MultipleCSeq),
            ("f: <sip:carol@example.com>;tag=2", Invalid::MultipleFrom),
            ("t: <sip:dave@example.com>", Invalid::MultipleTo),
            ("Max-Forwards: 70", Invalid::MultipleMaxForwards),
            ("l: 0", Invalid::MultipleContentLength),
        ];
        for (extra, want) in cases {
            let mut h = BASE.to_vec();
            h.push(extra);
            assert_eq!(check(OPT, &h), Err(want), "{extra}");
        }
        // Two From elements in one line (an unquoted display name with a comma).
        assert_eq!(
            check(
                OPT,
                &with("From", "From: Bell, Alexander <sip:a@example.com>;tag=1")
            ),
            Err(Invalid::MultipleFrom)
        );
        assert_eq!(
            check(
                OPT,
                &with("To", "To: <sip:a@example.com>, <sip:b@example.com>")
            ),
            Err(Invalid::MultipleTo)
        );
        // A comma inside quotes or <> is not a second element.
        assert_eq!(
            check(OPT, &with("To", "To: \"Watson, T\" <sip:t,w@example.org>")),
            Ok(())
        );
    }

    #[test]
    fn cseq_checks() {
        assert_eq!(
            check(OPT, &with("CSeq", "CSeq: 2147483647 OPTIONS")),
            Ok(())
        );
        assert_eq!(check(OPT, &with("CSeq", "CSeq: 0009\r\n  OPTIONS")), Ok(()));
        assert_eq!(
            check(OPT, &with("CSeq", "CSeq: 2147483648 OPTIONS")),
            Err(Invalid::CSeqOutOfRange)
        );
        assert_eq!(
            check(OPT, &with("CSeq", "CSeq: 36893488147419103232 OPTIONS")),
            Err(Invalid::CSeqOutOfRange)
        );
        assert_eq!(
            check(OPT, &with("CSeq", "CSeq: 1 INVITE")),
            Err(Invalid::CSeqMethodMismatch)
        );
        // Methods are case-sensitive.
        assert_eq!(
            check(OPT, &with("CSeq", "CSeq: 1 options")),
            Err(Invalid::CSeqMethodMismatch)
        );
        for bad in [
            "CSeq: OPTIONS",
            "CSeq: 1",
            "CSeq: -1 OPTIONS",
            "CSeq: 1OPTIONS",
        ] {
            assert_eq!(
                check(OPT, &with("CSeq", bad)),
                Err(Invalid::BadCSeq),
                "{bad}"
            );
        }
    }

    #[test]
    fn ack_and_cancel_cseq_rules() {
        // RFC 3261 §17.1.1.3 / §9.1: the CSeq method of an ACK is ACK, of a CANCEL is CANCEL.
        let ack = "ACK sip:bob@example.com SIP/2.0";
        assert_eq!(check(ack, &with("CSeq", "CSeq: 1 ACK")), Ok(()));
        assert_eq!(
            check(ack, &with("CSeq", "CSeq: 1 INVITE")),
            Err(Invalid::CSeqMethodMismatch)
        );
        let cancel = "CANCEL sip:bob@example.com SIP/2.0";
        assert_eq!(check(cancel, &with("CSeq", "CSeq: 1 CANCEL")), Ok(()));
        assert_eq!(
            check(cancel, &with("CSeq", "CSeq: 1 INVITE")),
            Err(Invalid::CSeqMethodMismatch)
        );
    }

    #[test]
    fn max_forwards_checks() {
        for ok in ["Max-Forwards: 0", "Max-Forwards: 255", "Max-Forwards: 0068"] {
            assert_eq!(check(OPT, &with("Max-Forwards", ok)), Ok(()), "{ok}");
        }
        for (bad, want) in [
            ("Max-Forwards: 256", Invalid::MaxForwardsOutOfRange),
            ("Max-Forwards: 300", Invalid::MaxForwardsOutOfRange),
            ("Max-Forwards: 99999999999", Invalid::MaxForwardsOutOfRange),
            ("Max-Forwards: -1", Invalid::BadMaxForwards),
            ("Max-Forwards: 7a", Invalid::BadMaxForwards),
            ("Max-Forwards:", Invalid::BadMaxForwards),
        ] {
            assert_eq!(check(OPT, &with("Max-Forwards", bad)), Err(want), "{bad}");
        }
    }

    #[test]
    fn from_to_syntax() {
        assert_eq!(
            check(
                OPT,
                &with("To", "To: \"Mr. J. User <sip:j.user@example.com>")
            ),
            Err(Invalid::BadTo)
        );
        assert_eq!(
            check(OPT, &with("From", "From: <sip:alice@example.com;tag=1")),
            Err(Invalid::BadFrom)
        );
        assert_eq!(check(OPT, &with("To", "To: sip:bob@example.com")), Ok(()));
        assert_eq!(
            check(
                OPT,
                &with("To", "To: \"BEL:\\\x07 q\" <sip:bob@example.com>")
            ),
            Ok(())
        );
    }

    #[test]
    fn via_checks() {
        let ok = [
            "Via: SIP/2.0/UDP host.example.com",
            "Via: SIP/2.0/TCP [2001:db8::9:1]:6050;branch=z9hG4bK1",
            "Via: SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;rport;branch=390skdjuw",
            "Via: SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bK2",
            "Via: SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bK3",
            "Via: SIP/2.0/UDP h ; branch = x , SIP/2.0/TCP h2;maddr=\"a b\"",
        ];
        for v in ok {
            assert_eq!(check(OPT, &with("Via", v)), Ok(()), "{v}");
        }
        let bad = [
            ("Via: SIP/2.0/UDP 192.0.2.15;;,;,,", Invalid::BadVia),
            ("Via: SIP/2.0/UDP 192.0.2.15;branch=1,", Invalid::BadVia),
            (
                "Via: SIP/2.0/UDP a;branch=1, ,SIP/2.0/UDP b",
                Invalid::BadVia,
            ),
            ("Via: SIP/2.0/UDP 192.0.2.15;branch=", Invalid::BadVia),
            ("Via: SIP/2.0/UDP 192.0.2.15;bra nch=1", Invalid::BadVia),
            ("Via: SIP/2.0/UDP 192.0.2.15;branch=\"x", Invalid::BadVia),
            ("Via: SIP/3.0/UDP 192.0.2.15", Invalid::BadVia),
            ("Via: XIP/2.0/UDP 192.0.2.15", Invalid::BadVia),
            ("Via: SIP/2.0/UDP", Invalid::BadVia),
            ("Via: SIP/2.0/UDP h%st", Invalid::BadVia),
            ("Via: SIP/2.0/UDP h:0", Invalid::BadVia),
            ("Via: SIP/2.0/UDP h:70000", Invalid::BadVia),
            ("Via: SIP/2.0/UDP [zz::1]", Invalid::BadVia),
            (
                "Via: SIP/2.0/UDP 2001:db8::1;branch=z9hG4bK1",
                Invalid::UnbracketedIpv6,
            ),
            ("Via: SIP/2.0/UDP ::1", Invalid::UnbracketedIpv6),
            ("Via: SIP/2.0/UDP fe80::1:5060", Invalid::UnbracketedIpv6),
        ];
        for (v, want) in bad {
            assert_eq!(check(OPT, &with("Via", v)), Err(want), "{v}");
        }
        // A later Via is checked too.
        let mut h = BASE.to_vec();
        h.push("Via: SIP/2.0/UDP 192.0.2.15;;");
        assert_eq!(check(OPT, &h), Err(Invalid::BadVia));
    }

    #[test]
    fn request_uri_checks() {
        let ok = [
            "REGISTER sip:[2001:db8::10] SIP/2.0",
            "REGISTER sip:[2001:db8::10]:5070 SIP/2.0",
            "REGISTER sip:[2001:db8::10:5070] SIP/2.0",
            "OPTIONS sip:user@[2001:db8:::192.0.2.1] SIP/2.0",
            "OPTIONS sip:a?b:c@example.com SIP/2.0",
            "OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0",
            "OPTIONS tel:+1234;x=y?z SIP/2.0",
        ];
        for start in ok {
            let method = start.split(' ').next().unwrap_or_default();
            let cseq = format!("CSeq: 1 {method}");
            assert_eq!(check(start, &with("CSeq", &cseq)), Ok(()), "{start}");
        }
        let bad = [
            (
                "REGISTER sip:2001:db8::10 SIP/2.0",
                Invalid::UnbracketedIpv6,
            ),
            (
                "REGISTER sip:user@2001:db8::10;x SIP/2.0",
                Invalid::UnbracketedIpv6,
            ),
            (
                "REGISTER sip:user@host:99999 SIP/2.0",
                Invalid::BadRequestUri,
            ),
            ("REGISTER sip:user@ SIP/2.0", Invalid::BadRequestUri),
            (
                "REGISTER sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
                Invalid::RequestUriHeaders,
            ),
        ];
        for (start, want) in bad {
            assert_eq!(
                check(start, &with("CSeq", "CSeq: 1 REGISTER")),
                Err(want),
                "{start}"
            );
        }
    }

    #[test]
    fn proxy_require() {
        let mut h = BASE.to_vec();
        h.push("Proxy-Require: noProxiesSupportThis, nor-this");
        assert_eq!(check(OPT, &h), Err(Invalid::BadExtension));
        let buf = req(OPT, &h);
        let msg = Message::parse(&buf).expect("parses");
        let values: Vec<&[u8]> = proxy_require_values(&msg).collect();
        assert_eq!(values, [&b"noProxiesSupportThis, nor-this"[..]]);
        let mut h = BASE.to_vec();
        h.push("Proxy-Require: \"quoted\"");
        assert_eq!(check(OPT, &h), Err(Invalid::BadProxyRequire));
        // An empty Proxy-Require names nothing; Require is not ours.
        let mut h = BASE.to_vec();
        h.push("Proxy-Require:");
        h.push("Require: 100rel");
        assert_eq!(check(OPT, &h), Ok(()));
        // A 400 problem wins over the 420.
        let mut h = with("CSeq", "CSeq: 1 INVITE");
        h.push("Proxy-Require: x");
        assert_eq!(check(OPT, &h), Err(Invalid::CSeqMethodMismatch));
    }

    #[test]
    fn responses() {
        let ok = "SIP/2.0 200 OK";
        let base: Vec<&str> = BASE
            .iter()
            .copied()
            .filter(|h| !h.starts_with("Max-Forwards"))
            .collect();
        assert_eq!(check(ok, &base), Ok(()));
        // Missing headers and Max-Forwards are not a response's problem here.
        assert_eq!(check(ok, &["Content-Length: 0"]), Ok(()));
        let mut h = base.clone();
        h.push("Max-Forwards: 1");
        h.push("Max-Forwards: 300");
        assert_eq!(check(ok, &h), Ok(()));
        let mut h = base.clone();
        h.push("Call-ID: other");
        assert_eq!(check(ok, &h), Err(Invalid::MultipleCallId));
        let h: Vec<&str> = base
            .iter()
            .map(|l| {
                if l.starts_with("CSeq") {
                    "CSeq: 9292394834772304023312 OPTIONS"
                } else {
                    l
                }
            })
            .collect();
        assert_eq!(check(ok, &h), Err(Invalid::CSeqOutOfRange));
        let h: Vec<&str> = base
            .iter()
            .map(|l| {
                if l.starts_with("Via") {
                    "Via: SIP/2.0/UDP 192.0.2.15;;"
                } else {
                    l
                }
            })
            .collect();
        assert_eq!(check(ok, &h), Err(Invalid::BadVia));
        // Only the top Via of a response is ours to check.
        let mut h = base.clone();
        h.push("Via: SIP/2.0/UDP 192.0.2.15;;");
        assert_eq!(check(ok, &h), Ok(()));
    }

    #[test]
    fn names_and_counters() {
        let mut c = Counters::default();
        for (i, inv) in Invalid::ALL.into_iter().enumerate() {
            let line = core::str::from_utf8(inv.status_line()).expect("ascii");
            assert_eq!(
                line,
                format!("SIP/2.0 {} {}\r\n", inv.status(), inv.reason())
            );
            assert!(
                Counters::NAMES.contains(&inv.counter()),
                "{}",
                inv.counter()
            );
            inv.count(&mut c);
            assert_eq!(c.get(inv.counter()), Some(1), "{inv:?}");
            assert!(Invalid::ALL[..i]
                .iter()
                .all(|o| o.counter() != inv.counter()));
        }
        assert_eq!(Invalid::BadExtension.status(), 420);
        assert_eq!(Invalid::MultipleCallId.to_string(), "400 Multiple Call-ID");
    }

    #[test]
    fn never_panics_on_truncations() {
        let full = req(OPT, &BASE);
        for n in 0..full.len() {
            if let Ok(msg) = Message::parse(&full[..n]) {
                let _ = message(&msg);
            }
        }
    }
}
