//! The stateless proxy through its public API: one endpoint behind NAT registers, receives a
//! call from the softswitch and hangs up, each message passing through [`Proxy`] as the
//! runtime would drive it.

use std::net::SocketAddr;

use sipgw::proxy::{Proxy, ProxyConfig, ProxyDrop, Route, BRANCH_PREFIX};
use sipgw::sip::{self, HeaderName, Message};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const GW: &str = "203.0.113.1:5060";
const SOFTSWITCH: &str = "10.0.0.5:5060";
/// The endpoint's public (NAT) address; it believes it is 192.168.1.20:5062.
const NAT: &str = "198.51.100.7:40000";

fn proxy() -> Proxy {
    Proxy::new(ProxyConfig::new(
        addr(GW),
        addr(SOFTSWITCH),
        "sipgw",
        [0x42; 32],
    ))
}

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

/// Sends `route`'s output: the destination and the message text.
fn sent(route: Route, out: &[u8]) -> (SocketAddr, String) {
    match route {
        Route::Send { to, len } => {
            let text = String::from_utf8(out[..len].to_vec()).unwrap();
            Message::parse(text.as_bytes()).expect("output parses");
            (to.peer, text)
        }
        other => panic!("expected Send, got {other:?}"),
    }
}

fn header(text: &str, name: HeaderName) -> Vec<&str> {
    let msg = Message::parse(text.as_bytes()).unwrap();
    msg.headers_named(name)
        .map(|v| {
            // Re-borrow from `text` (same bytes).
            let start = v.as_ptr() as usize - text.as_ptr() as usize;
            &text[start..start + v.len()]
        })
        .collect()
}

/// The response a UA sends to `request`: its Via, Record-Route, From, To (with a tag),
/// Call-ID and CSeq lines.
fn respond(request: &str, status: &str) -> Vec<u8> {
    let msg = Message::parse(request.as_bytes()).unwrap();
    let mut r = format!("SIP/2.0 {status}\r\n").into_bytes();
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
    for (name, line) in msg.lines_where(keep) {
        r.extend_from_slice(line);
        if name == HeaderName::To && !line.windows(5).any(|w| w == b";tag=") {
            r.extend_from_slice(b";tag=uas1");
        }
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    r
}

#[test]
fn register_call_and_hang_up_through_nat() {
    let p = proxy();
    let mut out = vec![0u8; 4096];
    assert!(p.is_softswitch(addr(SOFTSWITCH)));
    assert!(!p.is_softswitch(addr(NAT)));

    // 1. REGISTER from the endpoint: to the softswitch, with Path and P-Asserted-Identity.
    let register = crlf(
        "REGISTER sip:sipgw SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;rport;branch=z9hG4bKreg1\n\
Max-Forwards: 70\n\
From: <sip:alice@sipgw>;tag=r1\nTo: <sip:alice@sipgw>\nCall-ID: reg-1@192.168.1.20\n\
CSeq: 1 REGISTER\nContact: <sip:alice@192.168.1.20:5062>\nExpires: 600\n\
P-Asserted-Identity: <sip:admin@sipgw>\nContent-Length: 0\n\n",
    );
    let msg = Message::parse(&register).unwrap();
    let (to, fwd) = sent(
        p.request_upstream(&msg, addr(NAT), Some(b"alice"), &mut out),
        &out,
    );
    assert_eq!(to, addr(SOFTSWITCH));
    let path = header(&fwd, HeaderName::Path);
    assert_eq!(path.len(), 1);
    assert!(path[0].starts_with("<sip:sgw") && path[0].ends_with("@203.0.113.1:5060;lr>"));
    assert_eq!(
        header(&fwd, HeaderName::Other)
            .iter()
            .filter(|v| v.contains("sip:"))
            .copied()
            .collect::<Vec<_>>(),
        ["<sip:alice@sipgw>"],
        "only our P-Asserted-Identity"
    );
    let vias = header(&fwd, HeaderName::Via);
    assert!(vias[0].starts_with(&format!("SIP/2.0/UDP {GW};branch={BRANCH_PREFIX}")));
    assert_eq!(
        vias[1],
        "SIP/2.0/UDP 192.168.1.20:5062;rport=40000;branch=z9hG4bKreg1;received=198.51.100.7"
    );

    // 2. The softswitch's 200 OK goes back to the NAT address.
    let ok = respond(&fwd, "200 OK");
    let msg = Message::parse(&ok).unwrap();
    let (to, back) = sent(p.response(&msg, addr(SOFTSWITCH), &mut out), &out);
    assert_eq!(to, addr(NAT));
    assert_eq!(header(&back, HeaderName::Via), [vias[1]]);

    // 3. A call from the softswitch to the registered contact, routed by the Path.
    let invite = crlf(&format!(
        "INVITE sip:alice@192.168.1.20:5062 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKss-inv\n\
Route: {}\n\
Max-Forwards: 70\n\
From: <sip:bob@sipgw>;tag=b1\nTo: <sip:alice@sipgw>\nCall-ID: call-1@10.0.0.5\n\
CSeq: 10 INVITE\nContact: <sip:bob@10.0.0.5>\nContent-Length: 0\n\n",
        path[0]
    ));
    let msg = Message::parse(&invite).unwrap();
    let (to, fwd) = sent(p.request_downstream(&msg, addr(SOFTSWITCH), &mut out), &out);
    assert_eq!(to, addr(NAT), "the Path's flow token");
    assert!(header(&fwd, HeaderName::Route).is_empty());
    let rr = header(&fwd, HeaderName::RecordRoute);
    assert_eq!(rr.len(), 1);
    let rr = rr[0].to_string();
    let token = sip::uri_user(sip::name_addr_uri(rr.as_bytes()).unwrap()).unwrap();
    assert_eq!(p.decode_flow_token(token), Some(addr(NAT).into()));

    // 4. The endpoint's 200 OK goes back to the softswitch.
    let ok = respond(&fwd, "200 OK");
    let msg = Message::parse(&ok).unwrap();
    let (to, back) = sent(p.response(&msg, addr(NAT), &mut out), &out);
    assert_eq!(to, addr(SOFTSWITCH));
    assert_eq!(header(&back, HeaderName::RecordRoute), [rr.as_str()]);

    // 5. The endpoint hangs up inside the dialog: Route is our Record-Route.
    let bye = crlf(&format!(
        "BYE sip:bob@10.0.0.5 SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;rport;branch=z9hG4bKbye1\n\
Route: {rr}\nMax-Forwards: 70\n\
From: <sip:alice@sipgw>;tag=uas1\nTo: <sip:bob@sipgw>;tag=b1\nCall-ID: call-1@10.0.0.5\n\
CSeq: 1 BYE\nContent-Length: 0\n\n"
    ));
    let msg = Message::parse(&bye).unwrap();
    let (to, fwd) = sent(p.request_upstream(&msg, addr(NAT), None, &mut out), &out);
    assert_eq!(to, addr(SOFTSWITCH));
    assert!(header(&fwd, HeaderName::Route).is_empty());
    assert!(header(&fwd, HeaderName::RecordRoute).is_empty());

    // 6. Or the softswitch hangs up: Route is our Record-Route, the flow is the NAT address.
    let bye = crlf(&format!(
        "BYE sip:alice@192.168.1.20:5062 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKss-bye\n\
Route: {rr}\nMax-Forwards: 70\n\
From: <sip:bob@sipgw>;tag=b1\nTo: <sip:alice@sipgw>;tag=uas1\nCall-ID: call-1@10.0.0.5\n\
CSeq: 11 BYE\nContent-Length: 0\n\n"
    ));
    let msg = Message::parse(&bye).unwrap();
    let (to, _) = sent(p.request_downstream(&msg, addr(SOFTSWITCH), &mut out), &out);
    assert_eq!(to, addr(NAT));

    // 7. A token from another gateway process (another key) is refused.
    let other = Proxy::new(ProxyConfig::new(
        addr(GW),
        addr(SOFTSWITCH),
        "sipgw",
        [0x43; 32],
    ));
    assert_eq!(
        other.request_downstream(&msg, addr(SOFTSWITCH), &mut out),
        Route::Drop(ProxyDrop::BadFlowToken)
    );
}

#[test]
fn cancel_follows_its_invite() {
    let p = proxy();
    let mut out = vec![0u8; 4096];
    let invite = "INVITE sip:bob@10.0.0.5 SIP/2.0\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;rport;branch=z9hG4bKinv7\n\
Max-Forwards: 70\n\
From: <sip:alice@sipgw>;tag=a7\nTo: <sip:bob@sipgw>\nCall-ID: c7\nCSeq: 7 INVITE\n\
Content-Length: 0\n\n";
    let cancel = invite
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("7 INVITE", "7 CANCEL");
    let mut branch = |m: &str, id: Option<&[u8]>| {
        let b = crlf(m);
        let msg = Message::parse(&b).unwrap();
        let (_, text) = sent(p.request_upstream(&msg, addr(NAT), id, &mut out), &out);
        let msg = Message::parse(text.as_bytes()).unwrap();
        let top = msg.via_values().next().unwrap();
        sip::header_param(top, b"branch").unwrap().to_vec()
    };
    let i = branch(invite, Some(b"alice"));
    assert_eq!(branch(&cancel, None), i);
    assert_eq!(branch(invite, Some(b"alice")), i, "retransmission");
}
