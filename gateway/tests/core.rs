//! The sans-IO core ([`sipgw::gateway::Gateway`]): one message and its flow in, one complete
//! action out, the same for every transport. Driven in memory on a mock clock.

mod common;

use std::net::SocketAddr;

use common::{authorization, request, Challenge, Gw};
use sipgw::flow::{ConnId, Flow, Transport};
use sipgw::gateway::{Action, Dropped, Gateway, Input};
use sipgw::proxy::{Proxy, ProxyConfig, VIA_FLOW_PARAM};
use sipgw::sip::{HeaderName, Message};

const GW: &str = "198.18.0.1:5060";
const SOFTSWITCH: &str = "198.18.1.1:5060";
const PHONE: &str = "198.18.0.2:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Core {
    gw: Gateway,
    harness: Gw,
    out: Vec<u8>,
}

impl Core {
    fn new(config: &str, cfg: impl FnOnce(&mut ProxyConfig)) -> Core {
        let mut harness = Gw::new(config);
        let mut pc = ProxyConfig::new(addr(GW), addr(SOFTSWITCH), "sipgw", [5; 32]);
        cfg(&mut pc);
        // The harness's engine moves into the core; the harness keeps the clock.
        let engine = std::mem::replace(&mut harness.engine, Gw::new(config).engine);
        Core {
            gw: Gateway::new(engine, Proxy::new(pc)),
            harness,
            out: vec![0; 8192],
        }
    }

    fn send(&mut self, flow: Flow, bytes: &[u8]) -> Action {
        let now = self.harness.now();
        self.gw.handle(now, Input { flow, bytes }, &mut self.out)
    }

    fn sent(&self, action: Action) -> (Flow, String) {
        let Action::Send { to, len, .. } = action else {
            panic!("expected a send, got {action:?}")
        };
        (to, String::from_utf8(self.out[..len].to_vec()).unwrap())
    }

    /// A REGISTER of alice from `flow`: challenged back on the same flow, then forwarded.
    fn register(&mut self, flow: Flow, call_id: &str) -> (Flow, String) {
        let bare = request("REGISTER", "alice", call_id, 1, "");
        let a = self.send(flow, &bare);
        let (to, text) = self.sent(a);
        assert_eq!(to, flow, "the challenge goes back on the flow it came on");
        assert!(
            matches!(
                a,
                Action::Send {
                    status: Some(401 | 407),
                    ..
                }
            ),
            "{a:?}"
        );
        let ch = Challenge::parse(text.as_bytes()).unwrap();
        let auth = authorization(&ch, "alice", "secret", "REGISTER", 1);
        let msg = request("REGISTER", "alice", call_id, 2, &auth);
        let a = self.send(flow, &msg);
        assert!(matches!(a, Action::Send { status: None, .. }), "{a:?}");
        self.sent(a)
    }
}

fn header<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .collect()
}

/// The softswitch's 200 for a forwarded request: our Via on top, as the softswitch echoes it.
fn ok_for(forwarded: &str) -> Vec<u8> {
    let msg = Message::parse(forwarded.as_bytes()).unwrap();
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for v in msg.headers_named(HeaderName::Via) {
        out.push_str(&format!("Via: {}\r\n", std::str::from_utf8(v).unwrap()));
    }
    for h in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        out.push_str(&format!(
            "{}: {}\r\n",
            h.as_str(),
            std::str::from_utf8(msg.header(h).unwrap()).unwrap()
        ));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

#[test]
fn udp_register_is_challenged_forwarded_and_its_response_routed_back() {
    let mut c = Core::new("", |_| {});
    let phone = Flow::udp(addr(PHONE));
    let (to, fwd) = c.register(phone, "core-udp");
    assert_eq!(to, Flow::udp(addr(SOFTSWITCH)));
    let via = header(&fwd, "Via");
    assert!(
        via[0].starts_with("SIP/2.0/UDP 198.18.0.1:5060;branch="),
        "{via:?}"
    );
    assert!(!via[0].contains(std::str::from_utf8(VIA_FLOW_PARAM).unwrap()));
    assert_eq!(header(&fwd, "P-Asserted-Identity"), ["<sip:alice@sipgw>"]);
    let (back, resp) = {
        let a = c.send(Flow::udp(addr(SOFTSWITCH)), &ok_for(&fwd));
        c.sent(a)
    };
    assert_eq!(back, phone);
    assert!(resp.starts_with("SIP/2.0 200 OK"));
    let r = c.gw.counters();
    assert_eq!((r.upstream_requests, r.responses_forwarded), (1, 1));
}

#[test]
fn the_verified_credentials_are_stripped_by_their_header_and_other_realms_kept() {
    let mut c = Core::new("", |_| {});
    let phone = Flow::udp(addr(PHONE));
    let bare = request("REGISTER", "alice", "core-strip", 1, "");
    let a = c.send(phone, &bare);
    let (_, text) = c.sent(a);
    let ch = Challenge::parse(text.as_bytes()).unwrap();
    let ours = authorization(&ch, "alice", "secret", "REGISTER", 1);
    // Credentials for another proxy's realm before and after ours, in both header names.
    let foreign = "Proxy-Authorization: Digest username=\"bob\", realm=\"other.example\", \
                   nonce=\"n\", uri=\"sip:x\", response=\"00000000000000000000000000000000\"\r\n";
    let foreign2 = foreign.replace("Proxy-Authorization", "Authorization");
    let msg = request(
        "REGISTER",
        "alice",
        "core-strip",
        2,
        &format!("{foreign}{ours}{foreign2}"),
    );
    let a = c.send(phone, &msg);
    let (to, fwd) = c.sent(a);
    assert_eq!(to, Flow::udp(addr(SOFTSWITCH)));
    let kept: Vec<&str> = header(&fwd, "Proxy-Authorization")
        .into_iter()
        .chain(header(&fwd, "Authorization"))
        .collect();
    assert_eq!(kept.len(), 2, "{fwd}");
    assert!(
        kept.iter().all(|v| v.contains("realm=\"other.example\"")),
        "{fwd}"
    );
    assert!(!fwd.contains("realm=\"sipgw\""), "ours stripped: {fwd}");
    assert_eq!(header(&fwd, "P-Asserted-Identity"), ["<sip:alice@sipgw>"]);
}

#[test]
fn a_phone_over_tcp_is_answered_on_its_connection_and_reached_through_its_flow_token() {
    let mut c = Core::new("", |_| {});
    let conn = ConnId(0x0003_0000_0000_0007);
    let phone = Flow::stream(Transport::Tcp, addr("198.18.0.2:40312"), conn);
    let (to, fwd) = c.register(phone, "core-tcp");
    // The softswitch leg stays UDP.
    assert_eq!(to, Flow::udp(addr(SOFTSWITCH)));
    let via = header(&fwd, "Via");
    assert!(
        via[0].starts_with("SIP/2.0/UDP 198.18.0.1:5060;branch="),
        "{via:?}"
    );
    assert!(via[0].contains(";sgwflow=sgw"), "{via:?}");
    // Path: reached over UDP from the softswitch, naming the phone's connection.
    let path = header(&fwd, "Path");
    assert_eq!(path.len(), 1);
    assert!(!path[0].contains("transport="), "{path:?}");
    let user = path[0]
        .strip_prefix("<sip:")
        .and_then(|p| p.split('@').next())
        .unwrap();
    assert_eq!(c.gw.proxy().decode_flow_token(user.as_bytes()), Some(phone));

    // The 200 goes back over the phone's connection.
    let a = c.send(Flow::udp(addr(SOFTSWITCH)), &ok_for(&fwd));
    assert_eq!(c.sent(a).0, phone);

    // An INVITE from the softswitch to the registered contact goes over that connection, with
    // our Via for TCP and a double Record-Route (UDP toward the softswitch, TCP toward the
    // phone).
    let invite = format!(
        "INVITE sip:alice@198.18.0.2:40312;transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.18.1.1:5060;branch=z9hG4bKss1\r\n\
         Route: <sip:{user}@198.18.0.1:5060;lr>\r\n\
         Record-Route: <sip:198.18.1.1:5060;lr>\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:bob@sipgw>;tag=ss\r\n\
         To: <sip:alice@sipgw>\r\n\
         Call-ID: core-tcp-invite\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let a = c.send(Flow::udp(addr(SOFTSWITCH)), invite.as_bytes());
    let (to, down) = c.sent(a);
    assert_eq!(to, phone);
    assert!(
        header(&down, "Via")[0].starts_with("SIP/2.0/TCP 198.18.0.1:5060;branch="),
        "{down}"
    );
    assert!(
        header(&down, "Route").is_empty(),
        "our Route entry is removed: {down}"
    );
    let rr = header(&down, "Record-Route");
    assert_eq!(rr.len(), 3, "{rr:?}");
    assert!(rr[0].contains(";transport=tcp;lr"), "{rr:?}");
    assert!(!rr[1].contains("transport="), "{rr:?}");
    assert_eq!(rr[2], "<sip:198.18.1.1:5060;lr>");

    // The phone's in-dialog BYE carries both entries of ours (its route set reversed): both
    // are removed and it reaches the softswitch.
    let bye = format!(
        "BYE sip:bob@198.18.1.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/TCP 198.18.0.2:40312;branch=z9hG4bKbye1\r\n\
         Route: {}, {}, {}\r\n\
         Max-Forwards: 70\r\n\
         User-Agent: test phone (sipgw)\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER\r\n\
         From: <sip:alice@sipgw>;tag=ph\r\n\
         To: <sip:bob@sipgw>;tag=ss\r\n\
         Call-ID: core-tcp-invite\r\n\
         CSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        rr[0], rr[1], rr[2]
    );
    let a = c.send(phone, bye.as_bytes());
    let (to, up) = c.sent(a);
    assert_eq!(to, Flow::udp(addr(SOFTSWITCH)), "{a:?}");
    assert_eq!(header(&up, "Route"), ["<sip:198.18.1.1:5060;lr>"], "{up}");
}

#[test]
fn a_large_request_switches_the_softswitch_leg_to_tcp() {
    let mut c = Core::new("", |pc| pc.tcp_above = Some(1300));
    let phone = Flow::udp(addr(PHONE));
    let (to, fwd) = c.register(phone, "core-small");
    assert_eq!(to.transport, Transport::Udp, "a small request stays on UDP");
    assert!(header(&fwd, "Via")[0].starts_with("SIP/2.0/UDP"));

    // An INVITE with 3 KB of SDP.
    let body = format!("v=0\r\n{}", "a=x-padding:0123456789abcdef\r\n".repeat(100));
    let bare = request("INVITE", "alice", "core-large", 1, "");
    let a = c.send(phone, &bare);
    let ch = Challenge::parse(c.sent(a).1.as_bytes()).unwrap();
    let auth = authorization(&ch, "alice", "secret", "INVITE", 1);
    let msg = String::from_utf8(request("INVITE", "alice", "core-large", 2, &auth))
        .unwrap()
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
    let a = c.send(phone, msg.as_bytes());
    let (to, fwd) = c.sent(a);
    assert_eq!(
        to,
        Flow {
            transport: Transport::Tcp,
            peer: addr(SOFTSWITCH),
            conn: None
        }
    );
    assert!(
        header(&fwd, "Via")[0].starts_with("SIP/2.0/TCP 198.18.0.1:5060;branch="),
        "{fwd}"
    );
    assert!(fwd.len() > 1300);
    assert_eq!(c.gw.counters().upstream_switched_to_tcp, 1);
    // The response over the softswitch's TCP connection goes back to the phone over UDP.
    let ss = Flow::stream(Transport::Tcp, addr("198.18.1.1:41000"), ConnId(9));
    let a = c.send(ss, &ok_for(&fwd));
    assert_eq!(c.sent(a).0, phone);
}

#[test]
fn a_banned_source_on_a_connection_is_closed_and_never_on_udp() {
    // One wrong password suspends the terminal and bans its source.
    let mut c = Core::new("[auth]\nmax_retry = 1\n", |_| {});
    let conn = ConnId(0x0001_0000_0000_0001);
    let phone = Flow::stream(Transport::Tcp, addr("198.18.0.9:40000"), conn);
    let bare = request("REGISTER", "alice", "core-ban", 1, "");
    let a = c.send(phone, &bare);
    let ch = Challenge::parse(c.sent(a).1.as_bytes()).unwrap();
    let auth = authorization(&ch, "alice", "wrong", "REGISTER", 1);
    let a = c.send(phone, &request("REGISTER", "alice", "core-ban", 2, &auth));
    assert!(
        matches!(
            a,
            Action::Send {
                status: Some(403),
                ..
            }
        ),
        "{a:?}"
    );
    let a = c.send(phone, &bare);
    assert!(matches!(a, Action::Close(Dropped::Engine(_))), "{a:?}");
    assert_eq!(c.gw.counters().connections_closed_by_policy, 1);
    let a = c.send(Flow::udp(addr("198.18.0.9:5060")), &bare);
    assert!(matches!(a, Action::Drop(Dropped::Engine(_))), "{a:?}");
}

#[test]
fn replies_over_a_connection_are_not_bounded_by_the_amplification_limit() {
    // A bare request without User-Agent/Allow: its challenge is larger than the request.
    let bare = b"REGISTER sip:198.18.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/TCP 198.18.0.2:40000;branch=z9hG4bKamp\r\n\
        From: <sip:a@s>;tag=1\r\nTo: <sip:a@s>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n\
        Content-Length: 0\r\n\r\n";
    let mut c = Core::new("", |_| {});
    let udp = c.send(Flow::udp(addr("198.18.0.2:40000")), bare);
    assert!(
        matches!(udp, Action::Drop(_)),
        "a spoofable datagram: {udp:?}"
    );
    let tcp = Flow::stream(Transport::Tcp, addr("198.18.0.2:40000"), ConnId(1));
    let a = c.send(tcp, bare);
    assert!(
        matches!(
            a,
            Action::Send {
                status: Some(401 | 407),
                ..
            }
        ),
        "{a:?}"
    );
}

#[test]
fn garbage_from_the_softswitch_is_dropped_and_counted() {
    let mut c = Core::new("", |_| {});
    let a = c.send(Flow::udp(addr(SOFTSWITCH)), b"\x00\x01 not sip");
    assert!(
        matches!(a, Action::Drop(Dropped::SoftswitchMalformed(_))),
        "{a:?}"
    );
    assert_eq!(c.gw.counters().softswitch_malformed, 1);
    // Over a stream the softswitch is recognised by its IP address alone.
    let ss = Flow::stream(Transport::Tcp, addr("198.18.1.1:45000"), ConnId(2));
    let a = c.send(ss, b"\x00\x01 not sip");
    assert!(
        matches!(a, Action::Drop(Dropped::SoftswitchMalformed(_))),
        "{a:?}"
    );
}
