//! `proxy`: the stateless-proxy rewriting of arbitrary messages, in both directions, and the
//! responses coming back through the Via the proxy added.

use std::net::{IpAddr, SocketAddr};

use sipgw::addr::canonical;
use sipgw::digest::Credentials;
use sipgw::flow::Flow;
use sipgw::proxy::{Proxy, ProxyConfig, ProxyDrop, Route, BRANCH_PREFIX, DEFAULT_MAX_FORWARDS};
use sipgw::sip::{HeaderName, Message};

use crate::input::Reader;

/// Peers a message may come from: endpoints (IPv4, IPv6, IPv4-mapped), the softswitch and
/// the gateway itself.
const PEERS: &[&str] = &[
    "198.51.100.7:40000",
    "198.51.100.7:5060",
    "[2001:db8::9]:7000",
    "[::ffff:198.51.100.8]:1",
    "10.0.0.5:5060",
    "203.0.113.1:5060",
    "[2001:db8::100]:5070",
];

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// The proxies of the tests (`gateway/tests/proxy.rs`): the default one, one with every
/// option off, one on IPv6 with an IPv4-mapped softswitch and an odd realm.
fn proxy_variant(v: usize) -> Proxy {
    let mut c = ProxyConfig::new(
        addr("203.0.113.1:5060"),
        addr("10.0.0.5:5060"),
        "sipgw",
        [0x42; 32],
    );
    match v {
        0 => {}
        1 => {
            c.strip_credentials = false;
            c.assert_identity = false;
            c.add_path = false;
            c.record_route = false;
        }
        _ => {
            c.advertised = addr("[2001:db8::100]:5070");
            c.softswitch = addr("[::ffff:10.0.0.5]:5060");
            c.realm = "odd realm\r\n>".into();
        }
    }
    Proxy::new(c)
}

/// Input: a flags byte (proxy variant, direction), the peer, the identity, the output
/// capacity, the status of the response sent back, then the message.
///
/// Properties: no panic; every output parses, keeps the body, the Request-URI and the dialog
/// headers; a forwarded request has exactly one Via more (ours, on top) and its Max-Forwards
/// decremented (or 70 inserted), upstream no endpoint identity and none of our credentials;
/// a `483` only for `Max-Forwards: 0`; a response built from a forwarded request comes back
/// through [`Proxy::response`] to the request's source with exactly our Via removed.
pub fn proxy(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    let p = proxy_variant(usize::from(flags & 3) % 3);
    let dir = (flags >> 2) % 3;
    let peer = addr(PEERS[r.pick(PEERS.len())]);
    let id_choice = r.u8();
    let cap = match r.u8() {
        0..=15 => usize::from(r.u16()) % 1024,
        _ => 8192,
    };
    let status = 100 + r.u16() % 600;
    let identity: Option<&[u8]> = match id_choice % 4 {
        0 => None,
        1 => Some(b"alice"),
        2 => Some(b""),
        _ => Some(r.short()),
    };
    let Ok(msg) = Message::parse(r.rest()) else {
        return;
    };
    let mut out = vec![0u8; cap];
    let route = match dir {
        0 => p.request_upstream(&msg, peer, identity, &mut out),
        1 => p.request_downstream(&msg, peer, &mut out),
        _ => p.response(&msg, peer, &mut out),
    };
    let again = match dir {
        0 => p.request_upstream(&msg, peer, identity, &mut vec![0u8; cap]),
        1 => p.request_downstream(&msg, peer, &mut vec![0u8; cap]),
        _ => p.response(&msg, peer, &mut vec![0u8; cap]),
    };
    assert_eq!(route, again, "deterministic");
    match route {
        Route::Send { to, len } => {
            assert!(len <= cap);
            assert!(
                to.peer.port() != 0 && !to.peer.ip().is_unspecified(),
                "{to}"
            );
            let o = Message::parse(&out[..len]).unwrap_or_else(|e| {
                panic!(
                    "output does not parse ({e}):\n{}",
                    String::from_utf8_lossy(&out[..len])
                )
            });
            same_dialog(&msg, &o);
            if dir == 2 {
                assert!(!msg.is_request() && !o.is_request());
                assert_eq!(o.status_code(), msg.status_code());
                assert_eq!(o.via_values().count() + 1, msg.via_values().count());
            } else {
                forwarded(&p, &msg, &o, dir == 0, to, identity);
                let strict = msg.via_values().next().is_some_and(well_formed_via);
                round_trip(&p, &o, peer, status, dir == 0, strict);
            }
        }
        Route::Reply { to, len, status } => {
            assert!(dir != 2 && msg.is_request());
            assert_eq!(status, 483);
            assert_eq!(max_forwards(&msg), Some(0));
            assert!(to.peer.port() != 0);
            let o = Message::parse(&out[..len]).expect("the 483 parses");
            assert_eq!(o.status_code(), Some(483));
            assert_eq!(o.header(HeaderName::CallId), msg.header(HeaderName::CallId));
            assert_eq!(o.header(HeaderName::CSeq), msg.header(HeaderName::CSeq));
        }
        Route::Drop(_) => {}
    }
}

/// What every output keeps from its input.
fn same_dialog(msg: &Message<'_>, o: &Message<'_>) {
    assert_eq!(o.body(), msg.body());
    assert_eq!(o.content_length(), msg.content_length());
    assert_eq!(o.request_uri(), msg.request_uri());
    assert_eq!(o.method_bytes(), msg.method_bytes());
    for h in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::ContentLength,
    ] {
        assert!(o.headers_named(h).eq(msg.headers_named(h)), "{h:?} changed");
    }
}

/// The first Max-Forwards as a number (`Some(u64::MAX)` when not decimal).
fn max_forwards(msg: &Message<'_>) -> Option<u64> {
    let v = msg.header(HeaderName::MaxForwards)?;
    Some(
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u64::MAX),
    )
}

fn headers_called<'a>(msg: &'a Message<'_>, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    msg.headers()
        .filter(move |h| h.raw_name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| h.value)
}

/// A request the proxy forwarded.
fn forwarded(
    p: &Proxy,
    msg: &Message<'_>,
    o: &Message<'_>,
    upstream: bool,
    flow: Flow,
    identity: Option<&[u8]>,
) {
    let to = flow.peer;
    let cfg = p.config();
    assert!(msg.is_request() && o.is_request());
    assert_ne!(to, cfg.advertised, "a loop");
    assert_eq!(
        o.via_values().count(),
        msg.via_values().count() + 1,
        "one Via added"
    );
    let top = o.via_values().next().expect("our Via");
    let adv = match cfg.advertised.ip() {
        IpAddr::V4(_) => cfg.advertised.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]:{}", cfg.advertised.port()),
    };
    // Our Via names the transport the request leaves on (a `sips:` or `;transport=` target
    // downstream, the softswitch leg's upstream).
    let ours = format!(
        "SIP/2.0/{} {adv};branch={BRANCH_PREFIX}",
        flow.transport.via_token()
    );
    assert!(
        top.starts_with(ours.as_bytes()),
        "top Via {:?}",
        String::from_utf8_lossy(top)
    );
    assert_eq!(o.count(HeaderName::MaxForwards), 1);
    let want = match max_forwards(msg) {
        None => u64::from(DEFAULT_MAX_FORWARDS),
        Some(n) => {
            assert!(n > 0 && n != u64::MAX, "forwarded with Max-Forwards {n}");
            n - 1
        }
    };
    assert_eq!(max_forwards(o), Some(want), "Max-Forwards decremented");
    if cfg.strip_credentials {
        for v in o
            .headers_named(HeaderName::Authorization)
            .chain(o.headers_named(HeaderName::ProxyAuthorization))
        {
            if let Ok(c) = Credentials::parse(v) {
                assert!(
                    !c.realm.eq_unescaped(cfg.realm.as_bytes()),
                    "our credentials kept"
                );
            }
        }
    }
    if upstream {
        assert!(p.is_softswitch(to) || to == cfg.softswitch);
        assert_eq!(headers_called(o, "P-Preferred-Identity").count(), 0);
        let asserted = headers_called(o, "P-Asserted-Identity").count();
        let expected = usize::from(cfg.assert_identity && identity.is_some_and(|i| !i.is_empty()));
        assert_eq!(asserted, expected, "P-Asserted-Identity");
    }
}

/// A response to the forwarded request `o` (its Via, Record-Route, From, To with a tag,
/// Call-ID and CSeq lines), given back to the proxy: it goes to where the request came from,
/// with exactly our Via removed.
///
/// With a client Via the proxy reads loosely (`strict` false: a sent-by that is no host, an
/// odd parameter), the response may also be refused as not ours (`ForgedVia`).
/// (From endpoints such a Via never reaches the proxy: `validate` answers it `400 Bad Via`;
/// the proxy itself stays lenient for what the trusted softswitch sends.)
fn round_trip(
    p: &Proxy,
    o: &Message<'_>,
    peer: SocketAddr,
    status: u16,
    upstream: bool,
    strict: bool,
) {
    let keep = |n| {
        matches!(
            n,
            HeaderName::Via
                | HeaderName::RecordRoute
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        )
    };
    let mut resp = format!("SIP/2.0 {status} Fuzz\r\n").into_bytes();
    for (name, line) in o.lines_where(keep) {
        resp.extend_from_slice(line);
        if name == HeaderName::To {
            resp.extend_from_slice(b";tag=uas1");
        }
        resp.extend_from_slice(b"\r\n");
    }
    resp.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let Ok(r) = Message::parse(&resp) else {
        // Adding the tag and dropping the other headers can only fail on header counts.
        return;
    };
    let mut out = vec![0u8; 8192];
    let from = if upstream {
        p.config().softswitch
    } else {
        peer
    };
    match p.response(&r, from, &mut out) {
        Route::Send { to, len } => {
            let back = Message::parse(&out[..len]).expect("the response parses");
            assert_eq!(back.via_values().count() + 1, r.via_values().count());
            assert_eq!(back.status_code(), Some(status));
            assert_eq!(
                to.peer.ip(),
                canonical(peer.ip()),
                "back to the request's source"
            );
        }
        // An rport or received the client sent with a value is kept as it was.
        Route::Drop(ProxyDrop::BadVia | ProxyDrop::Unroutable | ProxyDrop::Loop) => {}
        Route::Drop(ProxyDrop::ForgedVia) if !strict => {}
        other => panic!(
            "response to a forwarded request: {other:?}\n{}",
            String::from_utf8_lossy(&resp)
        ),
    }
}

/// `SIP/2.0/UDP host[:port]` then `;name[=value]` parameters of token characters only, the
/// host a name or a bracketed IPv6 address: a Via read the same way by anyone.
fn well_formed_via(v: &[u8]) -> bool {
    let Ok(v) = std::str::from_utf8(v) else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~:".contains(&b))
    };
    let Some(rest) = v.strip_prefix("SIP/2.0/UDP ") else {
        return false;
    };
    let mut parts = rest.split(';');
    let sent_by = parts.next().unwrap_or_default();
    let host_ok = match sent_by.strip_prefix('[') {
        Some(r) => r.split_once(']').is_some_and(|(ip, port)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok()
                && (port.is_empty()
                    || port
                        .strip_prefix(':')
                        .is_some_and(|p| p.parse::<u16>().is_ok()))
        }),
        None => {
            let (host, port) = sent_by.split_once(':').unwrap_or((sent_by, ""));
            token(host)
                && !host.contains(':')
                && (port.is_empty() || port.parse::<u16>().is_ok())
                && !sent_by.ends_with(':')
        }
    };
    host_ok
        && parts.all(|p| match p.split_once('=') {
            Some((n, v)) => token(n) && token(v),
            None => token(p),
        })
}
