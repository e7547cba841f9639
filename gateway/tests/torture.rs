//! The RFC 4475 and RFC 5118 torture corpora (`tests/torture/`, see its README for where each
//! file comes from) through a real [`Engine`], bare and with valid credentials inserted, and
//! what the engine forwards through the proxy rewriting.
//!
//! [`CASES`] is the manifest: each message, its RFC section, the RFC's own verdict and the
//! outcome sipgw must have. The outcome is asserted, never recorded: a change of behaviour
//! fails here.

mod common;

use std::net::SocketAddr;

use common::{Challenge, Gw};
use sipgw::digest::{self, Algorithm, Qop};
use sipgw::engine::{DropReason, PassReason, Verdict, MAX_REPLY_GROWTH};
use sipgw::proxy::{Proxy, ProxyConfig, ProxyDrop, Route};
use sipgw::sip::{HeaderName, Message, ParseError};
use sipgw::validate::{self, Invalid};

/// What the RFC says of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rfc {
    /// Well formed; to be processed.
    Valid,
    /// Invalid; to be rejected (400/420/...) or dropped.
    Invalid,
    /// Invalid, but the RFC allows a liberal element to accept it.
    InvalidMayAccept,
}

/// What sipgw does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A request processed like any other: challenged bare, forwarded with credentials, and
    /// then rewritten by the proxy into a message that parses and validates again.
    Processed,
    /// Like `Processed`, but the proxy answers it itself with this status (Max-Forwards: 0).
    ProcessedProxyReplies(u16),
    /// A request answered `400`/`420` by the validation, bare and with credentials.
    Rejected(Invalid),
    /// A request without the headers a reply needs: dropped, bare and with credentials.
    Missing,
    /// Not a SIP message the parser accepts (framing, start line): dropped.
    Malformed(ParseError),
    /// A valid response: passed to the proxy.
    ResponsePassed,
    /// An invalid response: dropped and counted, never passed.
    ResponseDropped(Invalid),
}

#[derive(Debug, Clone, Copy)]
struct Case {
    file: &'static str,
    section: &'static str,
    rfc: Rfc,
    expect: Expect,
}

const fn case(file: &'static str, section: &'static str, rfc: Rfc, expect: Expect) -> Case {
    Case {
        file,
        section,
        rfc,
        expect,
    }
}

use Expect::*;
use Rfc::*;

/// The manifest. `file` is relative to `tests/torture/`.
const CASES: &[Case] = &[
    // RFC 4475 §3.1.1: valid messages.
    case("rfc4475/wsinv.dat", "4475 3.1.1.1", Valid, Processed),
    case("rfc4475/intmeth.dat", "4475 3.1.1.2", Valid, Processed),
    case("rfc4475/esc01.dat", "4475 3.1.1.3", Valid, Processed),
    case("rfc4475/escnull.dat", "4475 3.1.1.4", Valid, Processed),
    case("rfc4475/esc02.dat", "4475 3.1.1.5", Valid, Processed),
    case("rfc4475/lwsdisp.dat", "4475 3.1.1.6", Valid, Processed),
    case("rfc4475/longreq.dat", "4475 3.1.1.7", Valid, Processed),
    case("rfc4475/dblreq.dat", "4475 3.1.1.8", Valid, Processed),
    case("rfc4475/semiuri.dat", "4475 3.1.1.9", Valid, Processed),
    case("rfc4475/transports.dat", "4475 3.1.1.10", Valid, Processed),
    case("rfc4475/mpart01.dat", "4475 3.1.1.11", Valid, Processed),
    case(
        "rfc4475/unreason.dat",
        "4475 3.1.1.12",
        Valid,
        ResponsePassed,
    ),
    case(
        "rfc4475/noreason.dat",
        "4475 3.1.1.13",
        Valid,
        ResponsePassed,
    ),
    // RFC 4475 §3.1.2: invalid messages.
    case(
        "rfc4475/badinv01.dat",
        "4475 3.1.2.1",
        Invalid,
        Rejected(Invalid::BadVia),
    ),
    case(
        "rfc4475/clerr.dat",
        "4475 3.1.2.2",
        Invalid,
        Malformed(ParseError::BodyTruncated),
    ),
    case(
        "rfc4475/ncl.dat",
        "4475 3.1.2.3",
        Invalid,
        Malformed(ParseError::ContentLength),
    ),
    case(
        "rfc4475/scalar02.dat",
        "4475 3.1.2.4",
        Invalid,
        Rejected(Invalid::CSeqOutOfRange),
    ),
    case(
        "rfc4475/scalarlg.dat",
        "4475 3.1.2.5",
        Invalid,
        ResponseDropped(Invalid::CSeqOutOfRange),
    ),
    case(
        "rfc4475/quotbal.dat",
        "4475 3.1.2.6",
        Invalid,
        Rejected(Invalid::BadTo),
    ),
    case(
        "rfc4475/ltgtruri.dat",
        "4475 3.1.2.7",
        Invalid,
        Malformed(ParseError::RequestUri),
    ),
    case(
        "rfc4475/lwsruri.dat",
        "4475 3.1.2.8",
        Invalid,
        Malformed(ParseError::StartLine),
    ),
    case(
        "rfc4475/lwsstart.dat",
        "4475 3.1.2.9",
        Invalid,
        Malformed(ParseError::StartLine),
    ),
    case(
        "rfc4475/trws.dat",
        "4475 3.1.2.10",
        Invalid,
        Malformed(ParseError::StartLine),
    ),
    case(
        "rfc4475/escruri.dat",
        "4475 3.1.2.11",
        Invalid,
        Rejected(Invalid::RequestUriHeaders),
    ),
    // The Date header is not ours to check (the RFC lets a liberal element ignore it).
    case(
        "rfc4475/baddate.dat",
        "4475 3.1.2.12",
        InvalidMayAccept,
        Processed,
    ),
    // Contact is the registrar's (the RFC lets a liberal element infer the brackets).
    case(
        "rfc4475/regbadct.dat",
        "4475 3.1.2.13",
        InvalidMayAccept,
        Processed,
    ),
    // Spaces inside <> around the To URI (the RFC lets a liberal element ignore them).
    case(
        "rfc4475/badaspec.dat",
        "4475 3.1.2.14",
        InvalidMayAccept,
        Processed,
    ),
    // The archive's file ends after its last header line, without the empty line: an
    // unterminated header section (terminated, it is `400 Multiple From`, tested below).
    case(
        "rfc4475/baddn.dat",
        "4475 3.1.2.15",
        Invalid,
        Malformed(ParseError::NoHeaderEnd),
    ),
    case(
        "rfc4475/badvers.dat",
        "4475 3.1.2.16",
        Invalid,
        Malformed(ParseError::Version),
    ),
    case(
        "rfc4475/mismatch01.dat",
        "4475 3.1.2.17",
        Invalid,
        Rejected(Invalid::CSeqMethodMismatch),
    ),
    case(
        "rfc4475/mismatch02.dat",
        "4475 3.1.2.18",
        Invalid,
        Rejected(Invalid::CSeqMethodMismatch),
    ),
    case(
        "rfc4475/bigcode.dat",
        "4475 3.1.2.19",
        Invalid,
        Malformed(ParseError::StatusCode),
    ),
    // RFC 4475 §3.2: transaction layer.
    case("rfc4475/badbranch.dat", "4475 3.2.1", Valid, Processed),
    // RFC 4475 §3.3: application layer.
    case("rfc4475/insuf.dat", "4475 3.3.1", Invalid, Missing),
    // 416 is the UAS's answer (we route every request to the softswitch, not by its URI).
    case("rfc4475/unkscm.dat", "4475 3.3.2", Valid, Processed),
    case("rfc4475/novelsc.dat", "4475 3.3.3", Valid, Processed),
    case("rfc4475/unksm2.dat", "4475 3.3.4", Valid, Processed),
    case(
        "rfc4475/bext01.dat",
        "4475 3.3.5",
        Invalid,
        Rejected(Invalid::BadExtension),
    ),
    case("rfc4475/invut.dat", "4475 3.3.6", Valid, Processed),
    case("rfc4475/regaut01.dat", "4475 3.3.7", Valid, Processed),
    case(
        "rfc4475/multi01.dat",
        "4475 3.3.8",
        Invalid,
        Rejected(Invalid::MultipleCallId),
    ),
    case(
        "rfc4475/mcl01.dat",
        "4475 3.3.9",
        Invalid,
        Malformed(ParseError::ConflictingContentLength),
    ),
    // The engine passes it; the proxy drops it (its top Via is not ours), see below.
    case("rfc4475/bcast.dat", "4475 3.3.10", Valid, ResponsePassed),
    case(
        "rfc4475/zeromf.dat",
        "4475 3.3.11",
        Valid,
        ProcessedProxyReplies(483),
    ),
    case("rfc4475/cparam01.dat", "4475 3.3.12", Valid, Processed),
    case("rfc4475/cparam02.dat", "4475 3.3.13", Valid, Processed),
    case("rfc4475/regescrt.dat", "4475 3.3.14", Valid, Processed),
    case("rfc4475/sdp01.dat", "4475 3.3.15", Valid, Processed),
    case("rfc4475/inv2543.dat", "4475 3.4.1", Valid, Processed),
    // RFC 5118 §4 (Content-Length corrected where the RFC's is wrong: see the README).
    case("rfc5118/ipv6-good.dat", "5118 4.1", Valid, Processed),
    case(
        "rfc5118/ipv6-bad.dat",
        "5118 4.2",
        Invalid,
        Rejected(Invalid::UnbracketedIpv6),
    ),
    case("rfc5118/port-ambiguous.dat", "5118 4.3", Valid, Processed),
    case("rfc5118/port-unambiguous.dat", "5118 4.4", Valid, Processed),
    case(
        "rfc5118/via-received-param-with-delim.dat",
        "5118 4.5",
        Valid,
        Processed,
    ),
    case(
        "rfc5118/via-received-param-no-delim.dat",
        "5118 4.5",
        Valid,
        Processed,
    ),
    case("rfc5118/ipv6-in-sdp.dat", "5118 4.6", Valid, Processed),
    case(
        "rfc5118/mult-ip-in-header.dat",
        "5118 4.7",
        Valid,
        Processed,
    ),
    case("rfc5118/mult-ip-in-sdp.dat", "5118 4.8", Valid, Processed),
    case("rfc5118/ipv4-mapped-ipv6.dat", "5118 4.9", Valid, Processed),
    case(
        "rfc5118/ipv6-bug-abnf-3-colons.dat",
        "5118 4.10",
        Valid,
        Processed,
    ),
    case(
        "rfc5118/ipv6-correct-abnf-2-colons.dat",
        "5118 4.10",
        Valid,
        Processed,
    ),
];

const PEER: &str = "198.18.0.2:5060";
const GW: &str = "203.0.113.1:5060";
const SOFTSWITCH: &str = "10.0.0.5:5060";

/// These tests are about validation, not amplification: the small torture messages would
/// otherwise have their replies dropped by the default `amplification_limit` of 1.0
/// (`default_amplification_limit_holds_over_the_corpus` checks that separately).
macro_rules! limits {
    () => {
        "[limits]\namplification_limit = 3.0\n"
    };
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn read(file: &str) -> Vec<u8> {
    let path = format!("{}/tests/torture/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn proxy() -> Proxy {
    Proxy::new(ProxyConfig::new(
        addr(GW),
        addr(SOFTSWITCH),
        "sipgw",
        [0x42; 32],
    ))
}

/// `msg` with a credentials line for alice answering `ch` inserted after the start line:
/// the digest covers the message's own method and Request-URI, as written.
fn with_credentials(msg: &[u8], ch: &Challenge) -> Vec<u8> {
    let parsed = Message::parse(msg).expect("only parsed messages get credentials");
    let method = parsed.method_bytes().expect("a request");
    let uri = parsed.request_uri().expect("a request");
    let ha1 = digest::ha1(b"alice", ch.realm.as_bytes(), b"secret");
    let qop = if ch.qop { Qop::Auth } else { Qop::None };
    let resp = digest::client_response(
        &ha1,
        method,
        uri,
        ch.nonce.as_bytes(),
        qop,
        b"00000001",
        b"0a4f113b",
        Algorithm::Md5,
        b"",
    );
    let resp = std::str::from_utf8(&resp).expect("hex");
    let qop_part = if ch.qop {
        ", qop=auth, nc=00000001, cnonce=\"0a4f113b\""
    } else {
        ""
    };
    let line = format!(
        "{}: Digest username=\"alice\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{resp}\", algorithm=MD5{qop_part}\r\n",
        ch.header,
        ch.realm,
        ch.nonce,
        String::from_utf8_lossy(uri),
    );
    let start_end = msg.iter().position(|&b| b == b'\n').expect("a start line") + 1;
    let mut out = msg[..start_end].to_vec();
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(&msg[start_end..]);
    out
}

/// A challenge for `PEER` from an ordinary request (for messages that are not challenged
/// themselves).
fn fresh_challenge(gw: &mut Gw) -> Challenge {
    let v = gw.send(PEER, &common::request("OPTIONS", "alice", "tc", 1, ""));
    assert!(common::is_challenge(v), "{v:?}");
    gw.challenge()
}

/// Our reply is a well-formed response with `status` and the reason phrase, no larger than
/// allowed, carrying the request's Call-ID lines.
fn check_reply(what: &str, request: &[u8], gw: &Gw, invalid: Invalid) {
    let reply = gw.reply_bytes();
    assert!(
        reply.len() <= request.len() + MAX_REPLY_GROWTH,
        "{what}: reply too large"
    );
    let m = Message::parse(reply).unwrap_or_else(|e| panic!("{what}: reply {e}"));
    assert_eq!(m.status_code(), Some(invalid.status()), "{what}");
    assert_eq!(m.reason(), Some(invalid.reason().as_bytes()), "{what}");
    let req = Message::parse(request).expect("parsed");
    assert_eq!(
        m.headers_named(HeaderName::CallId).collect::<Vec<_>>(),
        req.headers_named(HeaderName::CallId).collect::<Vec<_>>(),
        "{what}"
    );
    if invalid == Invalid::BadExtension {
        let text = gw.reply_text();
        let line = text
            .lines()
            .find(|l| l.starts_with("Unsupported: "))
            .unwrap_or_else(|| panic!("{what}: no Unsupported in\n{text}"));
        assert_eq!(
            line,
            "Unsupported: noProxiesSupportThis, norDoAnyProxiesSupportThis"
        );
    }
}

/// The forwarded request through the proxy: it parses again, validates again (so no
/// `;;;`-style Via), keeps the body, and carries our Via on top and the client's below.
fn check_forwarded(what: &str, msg: &[u8], expect: Expect) {
    let p = proxy();
    let m = Message::parse(msg).expect("forwarded messages parse");
    let mut out = vec![0u8; 70_000];
    let route = p.request_upstream(&m, addr(PEER), Some(b"alice"), &mut out);
    match (route, expect) {
        (Route::Send { to, len }, Processed) => {
            assert_eq!(to, addr(SOFTSWITCH).into(), "{what}");
            let fwd = Message::parse(&out[..len]).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(validate::message(&fwd), Ok(()), "{what}: forwarded");
            assert_eq!(fwd.body(), m.body(), "{what}");
            let vias: Vec<&[u8]> = fwd.via_values().collect();
            assert!(vias[0].starts_with(b"SIP/2.0/UDP 203.0.113.1:5060;branch="));
            let received = sipgw::sip::header_param(vias[1], b"received");
            assert_eq!(received, Some(&b"198.18.0.2"[..]), "{what}");
            for via in fwd.headers_named(HeaderName::Via) {
                assert!(
                    !via.windows(2).any(|w| w == b";;"),
                    "{what}: broken Via {}",
                    String::from_utf8_lossy(via)
                );
            }
            let mf = fwd.header(HeaderName::MaxForwards).expect("Max-Forwards");
            let mf: u32 = std::str::from_utf8(mf).unwrap().trim().parse().unwrap();
            let before = m.header(HeaderName::MaxForwards).map_or(71, |v| {
                std::str::from_utf8(v).unwrap().trim().parse().unwrap()
            });
            assert_eq!(mf + 1, before, "{what}: Max-Forwards decremented");
        }
        (Route::Reply { status, len, .. }, ProcessedProxyReplies(want)) => {
            assert_eq!(status, want, "{what}");
            let r = Message::parse(&out[..len]).expect("proxy reply parses");
            assert_eq!(r.status_code(), Some(want));
        }
        (other, _) => panic!("{what}: proxy gave {other:?}"),
    }
}

fn run(c: &Case) {
    let what = format!("{} (RFC {}, {:?})", c.file, c.section, c.rfc);
    let msg = read(c.file);
    let mut gw = Gw::new(limits!());
    let bare = gw.send(PEER, &msg);
    let counters = *gw.engine.counters();
    match c.expect {
        Processed | ProcessedProxyReplies(_) => {
            assert!(common::is_challenge(bare), "{what}: bare {bare:?}");
            let ch = gw.challenge();
            let authed = with_credentials(&msg, &ch);
            let v = gw.send(PEER, &authed);
            assert!(
                matches!(v, Verdict::Forward(_)),
                "{what}: with credentials {v:?}"
            );
            check_forwarded(&what, &authed, c.expect);
        }
        Rejected(invalid) => {
            assert!(
                matches!(bare, Verdict::Reply { status, .. } if status == invalid.status()),
                "{what}: bare {bare:?}"
            );
            check_reply(&what, &msg, &gw, invalid);
            assert_eq!(counters.get(invalid.counter()), Some(1), "{what}");
            let ch = fresh_challenge(&mut gw);
            let authed = with_credentials(&msg, &ch);
            let v = gw.send(PEER, &authed);
            assert!(
                matches!(v, Verdict::Reply { status, .. } if status == invalid.status()),
                "{what}: with credentials {v:?}"
            );
            check_reply(&what, &authed, &gw, invalid);
            assert_eq!(gw.engine.counters().forwarded_digest, 0, "{what}");
        }
        Missing => {
            assert_eq!(bare, Verdict::Drop(DropReason::MissingHeaders), "{what}");
            let ch = fresh_challenge(&mut gw);
            let v = gw.send(PEER, &with_credentials(&msg, &ch));
            assert_eq!(v, Verdict::Drop(DropReason::MissingHeaders), "{what}");
        }
        Malformed(e) => {
            assert_eq!(bare, Verdict::Drop(DropReason::Malformed(e)), "{what}");
            // Unparseable: no credentials can be inserted that would make it evaluated; a
            // credentials line after the start line changes nothing the parser objects to.
            if msg.starts_with(b"SIP/") {
                return;
            }
            let ch = fresh_challenge(&mut gw);
            let start_end = msg.iter().position(|&b| b == b'\n').unwrap() + 1;
            let line = format!(
                "{}: Digest username=\"alice\", realm=\"{}\", nonce=\"{}\", uri=\"sip:x\", response=\"00000000000000000000000000000000\"\r\n",
                ch.header, ch.realm, ch.nonce
            );
            let mut authed = msg[..start_end].to_vec();
            authed.extend_from_slice(line.as_bytes());
            authed.extend_from_slice(&msg[start_end..]);
            let v = gw.send(PEER, &authed);
            assert!(
                matches!(v, Verdict::Drop(DropReason::Malformed(_))),
                "{what}: {v:?}"
            );
        }
        ResponsePassed => {
            assert_eq!(bare, Verdict::Pass(PassReason::Response), "{what}");
        }
        ResponseDropped(invalid) => {
            assert_eq!(bare, Verdict::Drop(DropReason::Invalid(invalid)), "{what}");
            assert_eq!(counters.get(invalid.counter()), Some(1), "{what}");
            assert_eq!(counters.responses_passed, 0, "{what}");
        }
    }
}

#[test]
fn corpus_through_the_engine() {
    for c in CASES {
        run(c);
    }
}

#[test]
fn manifest_is_consistent_with_the_rfc_verdicts() {
    for c in CASES {
        let ok = match c.rfc {
            Rfc::Valid => matches!(
                c.expect,
                Processed | ProcessedProxyReplies(_) | ResponsePassed
            ),
            Rfc::Invalid => !matches!(
                c.expect,
                Processed | ProcessedProxyReplies(_) | ResponsePassed
            ),
            Rfc::InvalidMayAccept => true,
        };
        assert!(ok, "{c:?}");
    }
}

#[test]
fn every_corpus_file_is_in_the_manifest() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torture");
    let mut files = Vec::new();
    for dir in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(format!("{root}/{dir}")).expect("corpus dir") {
            let name = e.expect("entry").file_name().into_string().expect("utf-8");
            files.push(format!("{dir}/{name}"));
        }
    }
    files.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| c.file.to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed);
    assert_eq!(files.len(), 49 + 12);
}

/// What the RFC measurements of issue 10 saw reach the softswitch, one assertion each.
#[test]
fn measured_before_are_not_forwarded_now() {
    for (file, invalid) in [
        ("rfc4475/multi01.dat", Invalid::MultipleCallId),
        ("rfc4475/scalar02.dat", Invalid::CSeqOutOfRange),
        ("rfc4475/badinv01.dat", Invalid::BadVia),
        ("rfc4475/mismatch01.dat", Invalid::CSeqMethodMismatch),
        ("rfc4475/mismatch02.dat", Invalid::CSeqMethodMismatch),
        ("rfc5118/ipv6-bad.dat", Invalid::UnbracketedIpv6),
        ("rfc4475/bext01.dat", Invalid::BadExtension),
    ] {
        let msg = read(file);
        let m = Message::parse(&msg).expect("parses");
        assert_eq!(validate::message(&m), Err(invalid), "{file}");
    }
    // scalar02's Max-Forwards alone is out of range too.
    let msg = String::from_utf8(read("rfc4475/scalar02.dat"))
        .unwrap()
        .replace("36893488147419103232", "1");
    let m = Message::parse(msg.as_bytes()).unwrap();
    assert_eq!(validate::message(&m), Err(Invalid::MaxForwardsOutOfRange));
    // baddn's unquoted display names with a comma, once its header section is terminated.
    let mut msg = read("rfc4475/baddn.dat");
    msg.extend_from_slice(b"\r\n");
    let m = Message::parse(&msg).expect("terminated baddn parses");
    assert_eq!(validate::message(&m), Err(Invalid::MultipleFrom));
    // intmeth (escaped NUL, BEL, DEL in a quoted display name) parses.
    let msg = read("rfc4475/intmeth.dat");
    assert!(Message::parse(&msg).is_ok());
}

/// An invalid ACK is dropped, never answered and never passed; an invalid CANCEL or a
/// `no_auth_methods` request is answered, not passed; address-authenticated sources get no
/// forward for an invalid request either.
#[test]
fn invalid_is_checked_before_every_pass() {
    let base = String::from_utf8(read("rfc4475/mismatch01.dat")).unwrap();
    // mismatch01 as an ACK: its CSeq says INVITE.
    let ack = base.replacen("OPTIONS sip:", "ACK sip:", 1);
    let mut gw = Gw::new(limits!());
    let v = gw.send(PEER, ack.as_bytes());
    assert_eq!(
        v,
        Verdict::Drop(DropReason::Invalid(Invalid::CSeqMethodMismatch))
    );
    assert_eq!(gw.engine.counters().invalid_cseq_method, 1);
    assert_eq!(gw.engine.counters().requests_passed, 0);
    // The same ACK with CSeq ACK passes.
    let ok_ack = ack.replace("CSeq: 8 INVITE", "CSeq: 8 ACK");
    assert_eq!(
        gw.send(PEER, ok_ack.as_bytes()),
        Verdict::Pass(PassReason::Ack)
    );

    let cancel = base.replacen("OPTIONS sip:", "CANCEL sip:", 1);
    let v = gw.send(PEER, cancel.as_bytes());
    assert!(matches!(v, Verdict::Reply { status: 400, .. }), "{v:?}");

    let mut gw = Gw::new(concat!(
        "[auth]\nno_auth_methods = [\"OPTIONS\"]\n",
        limits!()
    ));
    let bext = read("rfc4475/bext01.dat");
    let v = gw.send(PEER, &bext);
    assert!(matches!(v, Verdict::Reply { status: 420, .. }), "{v:?}");
    let v = gw.send(PEER, base.as_bytes());
    assert!(matches!(v, Verdict::Reply { status: 400, .. }), "{v:?}");

    // An ip-authenticated trunk (198.18.9.0/24 in the test credentials).
    let mut gw = Gw::new(limits!());
    let v = gw.send("198.18.9.7:5060", &read("rfc4475/multi01.dat"));
    assert!(matches!(v, Verdict::Reply { status: 400, .. }), "{v:?}");
    let v = gw.send("198.18.9.7:5060", &read("rfc4475/wsinv.dat"));
    assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
}

/// With `reply_unauthorized` off an invalid request is dropped (counted), not answered; from
/// a banned source it is dropped before anything.
#[test]
fn silenced_when_replies_are_off() {
    let mut gw = Gw::new(concat!("[auth]\nreply_unauthorized = false\n", limits!()));
    let v = gw.send(PEER, &read("rfc4475/multi01.dat"));
    assert_eq!(v, Verdict::Drop(DropReason::Silenced { status: 400 }));
    let v = gw.send(PEER, &read("rfc4475/bext01.dat"));
    assert_eq!(v, Verdict::Drop(DropReason::Silenced { status: 420 }));
    let c = gw.engine.counters();
    assert_eq!(
        (c.invalid_multiple_call_id, c.bad_extension, c.silenced),
        (1, 1, 2)
    );
}

/// RFC 5118's own Content-Length values (268, 181, 236) against the bodies as transcribed
/// with CR LF (251, 189, 245): too large is a truncated message (dropped); too small frames a
/// shorter body, the rest of the datagram being ignored (RFC 3261 §18.3).
#[test]
fn rfc5118_wrong_content_lengths_are_detected() {
    for (file, declared, actual) in [
        ("rfc5118/ipv6-in-sdp.dat", 268usize, 251usize),
        ("rfc5118/mult-ip-in-sdp.dat", 181, 189),
        ("rfc5118/ipv4-mapped-ipv6.dat", 236, 245),
    ] {
        let fixed = read(file);
        let m = Message::parse(&fixed).expect("corrected file parses");
        assert_eq!(
            m.body().len(),
            actual,
            "{file}: corrected length is the body"
        );
        assert_eq!(m.content_length(), Some(actual as u32));
        let text = String::from_utf8(fixed.clone()).unwrap().replace(
            &format!("Content-Length: {actual}\r\n"),
            &format!("Content-Length: {declared}\r\n"),
        );
        let mut gw = Gw::new(limits!());
        let v = gw.send(PEER, text.as_bytes());
        if declared > actual {
            assert_eq!(
                v,
                Verdict::Drop(DropReason::Malformed(ParseError::BodyTruncated)),
                "{file}"
            );
        } else {
            let m = Message::parse(text.as_bytes()).expect("parses");
            assert_eq!(m.body().len(), declared, "{file}");
            assert!(common::is_challenge(v), "{file}: {v:?}");
        }
    }
}

/// The proxy never emits an empty via-param (`;;`): a badinv01-style Via cannot reach it
/// through the engine, and on its own the proxy output for it is exactly what validation
/// rejects.
#[test]
fn broken_via_never_reaches_the_proxy() {
    let msg = read("rfc4475/badinv01.dat");
    let m = Message::parse(&msg).unwrap();
    assert_eq!(validate::message(&m), Err(Invalid::BadVia));
    let mut out = vec![0u8; 4096];
    // Called directly (bypassing the engine), the proxy would write `;;;received=`.
    if let Route::Send { len, .. } = proxy().request_upstream(&m, addr(PEER), None, &mut out) {
        let fwd = Message::parse(&out[..len]).unwrap();
        assert!(validate::message(&fwd).is_err());
    }
    // bcast: passed by the engine as a response, dropped by the proxy (not our Via).
    let msg = read("rfc4475/bcast.dat");
    let m = Message::parse(&msg).unwrap();
    assert_eq!(
        proxy().response(&m, addr(PEER), &mut out),
        Route::Drop(ProxyDrop::NotOurVia)
    );
}

#[test]
fn default_amplification_limit_holds_over_the_corpus() {
    let mut checked = 0;
    for dir in ["rfc4475", "rfc5118"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/torture")
            .join(dir);
        for entry in std::fs::read_dir(&path).unwrap() {
            let file = entry.unwrap().path();
            let msg = std::fs::read(&file).unwrap();
            let mut gw = Gw::new("");
            match gw.send(PEER, &msg) {
                Verdict::Reply { len, .. } => assert!(
                    len <= msg.len(),
                    "{}: {len}-byte reply to {} bytes",
                    file.display(),
                    msg.len()
                ),
                Verdict::Forward(_) => panic!("{}: forwarded bare", file.display()),
                _ => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 60, "{checked}");
}
