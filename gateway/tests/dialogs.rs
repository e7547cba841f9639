//! In-dialog requests (`auth.trust_dialogs`): a request whose top Route is the Record-Route
//! entry sipgw wrote for that dialog (flow token + dialog MAC over the Call-ID and the flow)
//! passes without a challenge; anything else that looks in-dialog is challenged as before.

mod common;

use std::net::SocketAddr;

use common::{authorization, is_challenge, request, Gw};
use sipgw::engine::{PassReason, Verdict};
use sipgw::proxy::{Proxy, ProxyConfig, Route};
use sipgw::sip::{HeaderName, Message};

const PHONE: &str = "198.18.0.2:5060";

fn proxy() -> Proxy {
    Proxy::new(ProxyConfig::new(
        "198.18.0.1:5060".parse().unwrap(),
        "198.18.1.1:5060".parse().unwrap(),
        "sipgw",
        [3; 32],
    ))
}

fn gw(config: &str) -> (Gw, Proxy) {
    let mut g = Gw::new(config);
    let p = proxy();
    g.engine.set_dialog_proxy(p.clone());
    (g, p)
}

/// An authenticated INVITE forwarded by the proxy: the Record-Route value it wrote.
fn record_route(g: &mut Gw, p: &Proxy, call_id: &str) -> String {
    let bare = request("INVITE", "alice", call_id, 1, "");
    assert!(is_challenge(g.send(PHONE, &bare)));
    let ch = g.challenge();
    let invite = request(
        "INVITE",
        "alice",
        call_id,
        2,
        &authorization(&ch, "alice", "secret", "INVITE", 1),
    );
    assert!(matches!(g.send(PHONE, &invite), Verdict::Forward(_)));
    let msg = Message::parse(&invite).unwrap();
    let mut out = vec![0u8; 4096];
    let peer: SocketAddr = PHONE.parse().unwrap();
    let Route::Send { len, .. } = p.request_upstream(&msg, peer, Some(b"alice"), &mut out) else {
        panic!("not forwarded")
    };
    let fwd = Message::parse(&out[..len]).unwrap();
    let rr = fwd.header(HeaderName::RecordRoute).expect("a Record-Route");
    assert!(std::str::from_utf8(rr).unwrap().contains(";dlg="), "{rr:?}");
    String::from_utf8(rr.to_vec()).unwrap()
}

/// A BYE of the dialog `call_id` with `route` as its Route and a To-tag.
fn bye(call_id: &str, route: &str) -> Vec<u8> {
    let extra = format!("Route: {route}\r\n");
    String::from_utf8(request("BYE", "alice", call_id, 3, &extra))
        .unwrap()
        .replace(
            "To: <sip:alice@198.18.0.1>",
            "To: <sip:alice@198.18.0.1>;tag=callee-1",
        )
        .into_bytes()
}

#[test]
fn a_bye_of_an_authenticated_dialog_passes_without_a_challenge() {
    let (mut g, p) = gw("");
    let rr = record_route(&mut g, &p, "call-1");
    assert_eq!(
        g.send(PHONE, &bye("call-1", &rr)),
        Verdict::Pass(PassReason::InDialog)
    );
    // From another port of the phone's address too (a NAT rebinding).
    assert_eq!(
        g.send("198.18.0.2:40000", &bye("call-1", &rr)),
        Verdict::Pass(PassReason::InDialog)
    );
    assert_eq!(g.engine.counters().dialog_passed, 2);
}

#[test]
fn forged_or_foreign_routes_are_challenged() {
    let (mut g, p) = gw("");
    let rr = record_route(&mut g, &p, "call-1");
    // Another dialog's Call-ID with this Route.
    assert!(is_challenge(g.send(PHONE, &bye("call-2", &rr))));
    // The Route replayed from another address.
    assert!(is_challenge(
        g.send("198.18.0.66:5060", &bye("call-1", &rr))
    ));
    // A minted MAC.
    let i = rr.find(";dlg=").unwrap() + 5;
    let mut forged = rr.clone();
    forged.replace_range(i..i + 16, "0123456789abcdef");
    assert!(is_challenge(g.send(PHONE, &bye("call-1", &forged))));
    // No MAC at all (a Path-style URI of ours).
    let bare_route = format!("{}>", &rr[..rr.find(";dlg=").unwrap()]);
    assert!(is_challenge(g.send(PHONE, &bye("call-1", &bare_route))));
    // Another proxy's key.
    let other = Proxy::new(ProxyConfig::new(
        "198.18.0.1:5060".parse().unwrap(),
        "198.18.1.1:5060".parse().unwrap(),
        "sipgw",
        [4; 32],
    ));
    let flow: SocketAddr = PHONE.parse().unwrap();
    let minted = format!(
        "<sip:{}@198.18.0.1:5060;lr;dlg={}>",
        other.flow_token(flow).as_str(),
        std::str::from_utf8(&other.dialog_mac(b"call-1", b"ftcall-1", flow)).unwrap()
    );
    assert!(is_challenge(g.send(PHONE, &bye("call-1", &minted))));
    // Without a To-tag it is not in-dialog.
    let no_tag = String::from_utf8(request(
        "BYE",
        "alice",
        "call-1",
        3,
        &format!("Route: {rr}\r\n"),
    ))
    .unwrap();
    assert!(is_challenge(g.send(PHONE, no_tag.as_bytes())));
    // The right Call-ID and Route, but neither tag is the dialog's.
    let other_tags = String::from_utf8(bye("call-1", &rr))
        .unwrap()
        .replace(";tag=ftcall-1", ";tag=someone-else");
    assert!(is_challenge(g.send(PHONE, other_tags.as_bytes())));
    // Only a BYE passes: an in-dialog re-INVITE with the same Route is challenged.
    let reinvite = String::from_utf8(bye("call-1", &rr))
        .unwrap()
        .replacen("BYE sip:", "INVITE sip:", 1)
        .replace("CSeq: 3 BYE", "CSeq: 3 INVITE");
    assert!(is_challenge(g.send(PHONE, reinvite.as_bytes())));
    assert_eq!(g.engine.counters().dialog_passed, 0);
}

#[test]
fn trust_dialogs_off_challenges_every_in_dialog_request() {
    let (mut g, p) = gw("[auth]\ntrust_dialogs = false\n");
    let rr = record_route(&mut g, &p, "call-1");
    assert!(is_challenge(g.send(PHONE, &bye("call-1", &rr))));
}

#[test]
fn a_dialog_the_softswitch_opened_is_recognised_too() {
    // Downstream INVITE: the Record-Route names the destination phone.
    let (mut g, p) = gw("");
    let invite = b"INVITE sip:alice@198.18.0.2:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 198.18.1.1:5060;branch=z9hG4bKss1\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:1002@198.18.1.1>;tag=ss\r\n\
        To: <sip:alice@198.18.0.1>\r\n\
        Call-ID: down-1\r\n\
        CSeq: 1 INVITE\r\n\
        Content-Length: 0\r\n\r\n";
    let msg = Message::parse(invite).unwrap();
    let mut out = vec![0u8; 4096];
    let Route::Send { len, .. } = p.request_downstream(
        &msg,
        "198.18.1.1:5060".parse::<SocketAddr>().unwrap(),
        &mut out,
    ) else {
        panic!("not routed")
    };
    let fwd = Message::parse(&out[..len]).unwrap();
    let rr = std::str::from_utf8(fwd.header(HeaderName::RecordRoute).unwrap())
        .unwrap()
        .to_owned();
    // The phone (UAS) hangs up through the route set it learnt from that INVITE.
    let bye = format!(
        "BYE sip:1002@198.18.1.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bKb1\r\n\
         Route: {rr}\r\n\
         Max-Forwards: 70\r\n\
         User-Agent: test phone (sipgw)\r\n\
         From: <sip:alice@198.18.0.1>;tag=phone\r\n\
         To: <sip:1002@198.18.1.1>;tag=ss\r\n\
         Call-ID: down-1\r\n\
         CSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    assert_eq!(
        g.send(PHONE, bye.as_bytes()),
        Verdict::Pass(PassReason::InDialog)
    );
}
