//! `sip_parse`: the message parser, every accessor of a parsed message, and the header helpers.

use sipgw::digest::Credentials;
use sipgw::sip::{
    self, HeaderName, Message, Method, StartLine, MAX_HEADERS, MAX_MESSAGE_LEN, MAX_STATUS_CODE,
    MIN_STATUS_CODE,
};

use crate::within;

/// Parameters looked up in every header value.
const PARAMS: &[&[u8]] = &[
    b"tag",
    b"branch",
    b"rport",
    b"received",
    b"lr",
    b"expires",
    b"",
];

/// Parses `data` as a SIP message; on success, reads it through every accessor and checks
/// that they agree. Every header helper also runs on the raw input and on every value.
pub fn sip_parse(data: &[u8]) {
    helpers(data);
    let _ = Method::from_bytes(data);
    let _ = HeaderName::from_bytes(data);
    let msg = match Message::parse(data) {
        Ok(m) => m,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(data.len() <= MAX_MESSAGE_LEN);
    assert_eq!(msg.as_bytes(), data);
    let _ = format!("{msg:?}");

    // Start line: one view, whichever way it is read.
    match msg.start_line() {
        StartLine::Request {
            method,
            method_bytes,
            uri,
        } => {
            assert!(msg.is_request());
            assert_eq!(msg.method(), Some(method));
            assert_eq!(msg.method_bytes(), Some(method_bytes));
            assert_eq!(Method::from_bytes(method_bytes), method);
            if method != Method::Other {
                assert!(method
                    .as_str()
                    .as_bytes()
                    .eq_ignore_ascii_case(method_bytes));
            }
            assert_eq!(msg.request_uri(), Some(uri));
            assert!(!uri.is_empty() && within(data, uri) && within(data, method_bytes));
            assert_eq!((msg.status_code(), msg.reason()), (None, None));
        }
        StartLine::Response { code, reason } => {
            assert!(!msg.is_request());
            assert!((MIN_STATUS_CODE..=MAX_STATUS_CODE).contains(&code));
            assert_eq!(msg.status_code(), Some(code));
            assert_eq!(msg.reason(), Some(reason));
            assert!(within(data, reason));
            assert_eq!(
                (msg.method(), msg.method_bytes(), msg.request_uri()),
                (None, None, None)
            );
        }
    }

    // Headers: the table, the lookups and the lines agree.
    let n = msg.header_count();
    assert!(n <= MAX_HEADERS);
    assert_eq!(msg.headers().count(), n);
    assert_eq!(msg.lines_where(|_| true).count(), n);
    for (h, (name, line)) in msg.headers().zip(msg.lines_where(|_| true)) {
        assert_eq!(h.name, name);
        assert!(within(data, h.raw_name) && within(data, h.value) && within(data, line));
        assert!(!h.raw_name.is_empty());
        assert!(line.starts_with(h.raw_name));
        assert_eq!(HeaderName::from_bytes(h.raw_name), h.name);
        if h.name != HeaderName::Other {
            assert_eq!(HeaderName::from_bytes(h.name.as_str().as_bytes()), h.name);
        }
        assert!(msg.count(h.name) >= 1);
        assert!(msg.headers_named(h.name).any(|v| v == h.value));
        assert!(msg.header(h.name).is_some());
        assert!(msg.header_by_name(h.raw_name).is_some());
        helpers(h.value);
        if matches!(
            h.name,
            HeaderName::Authorization | HeaderName::ProxyAuthorization
        ) {
            crate::credentials::check(h.value);
        }
    }
    let vias: usize = msg
        .headers_named(HeaderName::Via)
        .map(|v| sip::split_list(v).count())
        .sum();
    assert_eq!(msg.via_values().count(), vias);
    for v in msg.via_values() {
        assert!(!v.is_empty() && within(data, v));
    }

    // Body and Content-Length.
    let body = msg.body();
    assert!(within(data, body));
    let hlen = msg.header_section_len();
    assert!(hlen <= data.len());
    assert_eq!(body.as_ptr() as usize - data.as_ptr() as usize, hlen);
    match msg.content_length() {
        Some(cl) => {
            assert_eq!(body.len(), cl as usize);
            let v = msg
                .header(HeaderName::ContentLength)
                .expect("Content-Length header");
            assert_eq!(v.trim_ascii().parse_u32(), Some(cl));
        }
        None => {
            assert_eq!(msg.count(HeaderName::ContentLength), 0);
            assert_eq!(hlen + body.len(), data.len());
        }
    }
    // The header section (and the body) alone parse again to the same message.
    let again = Message::parse(&data[..hlen + body.len()]).expect("a prefix that parsed");
    assert_eq!(again.header_count(), n);
    assert_eq!(again.body(), body);
    assert_eq!(again.start_line(), msg.start_line());
    let _ = Credentials::parse(data);
}

trait ParseU32 {
    fn parse_u32(&self) -> Option<u32>;
}

impl ParseU32 for [u8] {
    fn parse_u32(&self) -> Option<u32> {
        std::str::from_utf8(self).ok()?.parse().ok()
    }
}

/// The free helpers on one value: never a panic, every slice borrowed from the value.
fn helpers(value: &[u8]) {
    for item in sip::split_list(value).take(64) {
        assert!(!item.is_empty() && within(value, item));
        let lws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        assert!(!item.first().is_some_and(lws) && !item.last().is_some_and(lws));
        one(item);
    }
    one(value);
}

fn one(value: &[u8]) {
    if let Some(uri) = sip::name_addr_uri(value) {
        assert!(!uri.is_empty() && within(value, uri));
        if let Some(user) = sip::uri_user(uri) {
            assert!(!user.is_empty() && within(uri, user));
        }
    }
    if let Some(user) = sip::uri_user(value) {
        assert!(!user.is_empty() && within(value, user));
    }
    for p in PARAMS {
        if let Some(v) = sip::header_param(value, p) {
            assert!(within(value, v));
        }
    }
    if let Some((_, method)) = sip::cseq(value) {
        assert!(!method.is_empty() && within(value, method));
    }
}
