//! Anti-amplification (docs/configuration.md, `limits.amplification_limit`): no reply to an
//! unauthenticated request from a source that has not completed a round trip with us is larger
//! than the limit times the request; requests too small to be answered within it are dropped
//! and counted. Run with `--nocapture` to see the measured sizes and ratios.

mod common;

use common::{authorization, is_challenge, request, Gw};
use sipgw::engine::{DropReason, Verdict};

const SOURCE: &str = "198.18.0.77:5060";

/// The smallest request RFC 3261 lets a client send: the request line and the six headers
/// every request carries (§8.1.1).
fn minimal(method: &str) -> Vec<u8> {
    format!(
        "{method} sip:1001@198.18.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.18.0.77;branch=z9hG4bKm\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:1001@198.18.0.1>;tag=m\r\n\
         To: <sip:1001@198.18.0.1>\r\n\
         Call-ID: m\r\n\
         CSeq: 1 {method}\r\n\r\n"
    )
    .into_bytes()
}

/// The size of the reply sipgw would send without a limit (3.0 is the highest allowed).
fn unlimited_reply(msg: &[u8]) -> usize {
    let mut g = Gw::new("[limits]\namplification_limit = 3.0\n");
    match g.send(SOURCE, msg) {
        Verdict::Reply { len, .. } => len,
        v => panic!("{v:?}"),
    }
}

#[test]
fn minimal_requests_get_no_reply_larger_than_themselves() {
    println!("request   bytes  challenge  ratio  verdict (amplification_limit = 1.0)");
    for method in ["OPTIONS", "REGISTER", "INVITE"] {
        let msg = minimal(method);
        let would = unlimited_reply(&msg);
        let mut g = Gw::new("");
        let v = g.send(SOURCE, &msg);
        println!(
            "{method:9} {:5}  {would:9}  {:.2}   {v:?}",
            msg.len(),
            would as f64 / msg.len() as f64
        );
        match v {
            Verdict::Reply { len, .. } => assert!(len <= msg.len(), "{method}: {len}"),
            Verdict::Drop(DropReason::Amplification) => {
                assert!(would > msg.len());
                assert_eq!(g.engine.counters().amplification_dropped, 1);
            }
            v => panic!("{method}: {v:?}"),
        }
    }
}

#[test]
fn the_limit_is_the_ratio_allowed() {
    let msg = minimal("OPTIONS");
    let would = unlimited_reply(&msg);
    let ratio = would as f64 / msg.len() as f64;
    assert!(
        ratio > 1.0,
        "a minimal OPTIONS is smaller than its challenge"
    );
    // A limit just above the ratio answers it, one just below drops it.
    let above = format!("[limits]\namplification_limit = {:.3}\n", ratio + 0.01);
    assert!(is_challenge(Gw::new(&above).send(SOURCE, &msg)));
    let below = format!(
        "[limits]\namplification_limit = {:.3}\n",
        (ratio - 0.01).max(1.0)
    );
    assert_eq!(
        Gw::new(&below).send(SOURCE, &msg),
        Verdict::Drop(DropReason::Amplification)
    );
}

#[test]
fn requests_of_real_phones_are_challenged_within_the_limit() {
    // The test phone sends what phones send (User-Agent, Allow, Contact).
    for method in ["REGISTER", "INVITE"] {
        let msg = request(method, "alice", "real", 1, "");
        let mut g = Gw::new("");
        let v = g.send(SOURCE, &msg);
        let Verdict::Reply { len, .. } = v else {
            panic!("{method}: {v:?}")
        };
        println!(
            "{method} as a phone sends it: {} bytes, challenge {len} bytes, ratio {:.2}",
            msg.len(),
            len as f64 / msg.len() as f64
        );
        assert!(len <= msg.len());
    }
}

#[test]
fn a_wrong_password_is_rechallenged_and_a_forged_nonce_proves_no_round_trip() {
    // A source that echoed our nonce is exempt from the limit (it demonstrably receives what
    // we send it); in practice its request, credentials included, is larger than any reply
    // anyway, so what this checks is the re-challenge and that a forged nonce stays limited.
    let mut g = Gw::new("");
    let first = request("REGISTER", "alice", "p", 1, "");
    assert!(is_challenge(g.send(SOURCE, &first)));
    let ch = g.challenge();
    let wrong = request(
        "REGISTER",
        "alice",
        "p",
        2,
        &authorization(&ch, "alice", "nope", "REGISTER", 1),
    );
    assert!(is_challenge(g.send(SOURCE, &wrong)));
    // A forged nonce proves no round trip: a small request with it is limited.
    let forged = String::from_utf8(minimal("OPTIONS"))
        .unwrap()
        .replace(
            "\r\n\r\n",
            "\r\nProxy-Authorization: Digest username=\"a\",realm=\"sipgw\",nonce=\"x\",uri=\"sip:a\",response=\"0\"\r\n\r\n",
        );
    let v = g.send(SOURCE, forged.as_bytes());
    match v {
        Verdict::Reply { len, .. } => assert!(len <= forged.len()),
        Verdict::Drop(DropReason::Amplification) => {}
        v => panic!("{v:?}"),
    }
}
