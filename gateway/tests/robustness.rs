//! Nasty inputs: a corpus with the expected outcome of each, and property tests that the parser
//! and the engine never panic, never reply with more than the allowed growth, and only ever
//! reply with well-formed 401/407/403 responses (or 400/420 for an invalid request).

mod common;

use common::{authorization, request, Gw, Phone};
use proptest::prelude::*;
use sipgw::engine::{DropReason, Verdict, MAX_REPLY_GROWTH};
use sipgw::sip::{Message, ParseError};

#[derive(Debug, Clone, Copy)]
enum Expect {
    Malformed(ParseError),
    Challenge,
    /// A re-challenge, counted under this counter name (a failure, or for another realm a
    /// diagnostic count).
    Failure(&'static str),
    Missing,
    Pass,
    /// Answered with this status by the validation (docs/validation.md).
    Invalid(u16),
}

fn with_header(extra: &str) -> Vec<u8> {
    request("REGISTER", "alice", "corpus", 1, extra)
}

fn replace(msg: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(msg)
        .unwrap()
        .replacen(from, to, 1)
        .into_bytes()
}

#[test]
fn corpus_of_nasty_messages() {
    let base = with_header("");
    let cut = base[..base.len() / 2].to_vec();
    let huge_ua = with_header(&format!("User-Agent: {}\r\n", "x".repeat(60_000)));
    let too_big = with_header(&format!("User-Agent: {}\r\n", "x".repeat(70_000)));
    let nul_header = replace(base.clone(), "Max-Forwards: 70", "Max-Forwards: 7\x000");
    let mut nul_body = replace(base.clone(), "Content-Length: 0", "Content-Length: 4");
    nul_body.extend_from_slice(b"\0\0\x01\xff");
    let long_cl = replace(base.clone(), "Content-Length: 0", "Content-Length: 10");
    let mut short_cl = replace(base.clone(), "Content-Length: 0", "Content-Length: 2");
    short_cl.extend_from_slice(b"abcdef");
    let two_cl = replace(
        base.clone(),
        "Content-Length: 0",
        "Content-Length: 0\r\nl: 3",
    );
    let no_call_id = replace(base.clone(), "Call-ID: corpus\r\n", "");
    let no_via = replace(
        base.clone(),
        "Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bKcorpus1\r\n",
        "",
    );
    assert!(!String::from_utf8_lossy(&no_via).contains("Via:"));
    let folded_via = replace(base.clone(), "Via: SIP/2.0/UDP", "Via:\r\n   SIP/2.0/UDP");
    let unterminated =
        with_header("Authorization: Digest username=\"alice, realm=\"sipgw\", nonce=\"x\"\r\n");
    let basic = with_header("Authorization: Basic YWxpY2U6c2VjcmV0\r\n");
    let long_user = with_header(&format!(
        "Authorization: Digest username=\"{}\", realm=\"sipgw\", nonce=\"n\", uri=\"sip:x\", response=\"00000000000000000000000000000000\"\r\n",
        "u".repeat(200)
    ));
    let dup_param = with_header(
        "Authorization: Digest username=\"alice\", username=\"bob\", realm=\"sipgw\", nonce=\"n\", uri=\"sip:x\", response=\"00000000000000000000000000000000\"\r\n",
    );
    let bad_hex = with_header(
        "Authorization: Digest username=\"alice\", realm=\"sipgw\", nonce=\"n\", uri=\"sip:x\", response=\"zz000000000000000000000000000000\"\r\n",
    );
    let forged = with_header(
        "Authorization: Digest username=\"alice\", realm=\"sipgw\", nonce=\"AAAAAAECAwQFBgcICQoLDA0ODxAREhMUFR\", uri=\"sip:x\", response=\"00000000000000000000000000000000\"\r\n",
    );
    let other_realm = with_header(
        "Proxy-Authorization: Digest username=\"alice\", realm=\"other\", nonce=\"n\", uri=\"sip:x\", response=\"00000000000000000000000000000000\"\r\n",
    );

    let corpus: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "empty datagram",
            vec![],
            Expect::Malformed(ParseError::Empty),
        ),
        (
            "CRLF keep-alive",
            b"\r\n\r\n".to_vec(),
            Expect::Malformed(ParseError::Empty),
        ),
        (
            "binary garbage (a TLS hello)",
            vec![0x16, 0x03, 0x01, 0x00, 0xff, 0x00, b'\n'],
            Expect::Malformed(ParseError::ControlChar),
        ),
        (
            "truncated in the headers",
            cut,
            Expect::Malformed(ParseError::NoHeaderEnd),
        ),
        (
            "wrong version",
            replace(base.clone(), "SIP/2.0\r\n", "SIP/3.0\r\n"),
            Expect::Malformed(ParseError::Version),
        ),
        (
            "status 999",
            b"SIP/2.0 999 What\r\n\r\n".to_vec(),
            Expect::Malformed(ParseError::StatusCode),
        ),
        ("60 KB header", huge_ua, Expect::Challenge),
        (
            "70 KB datagram",
            too_big,
            Expect::Malformed(ParseError::TooLarge),
        ),
        (
            "NUL in a header",
            nul_header,
            Expect::Malformed(ParseError::ControlChar),
        ),
        ("NUL bytes in the body", nul_body, Expect::Challenge),
        (
            "Content-Length beyond the datagram",
            long_cl,
            Expect::Malformed(ParseError::BodyTruncated),
        ),
        (
            "Content-Length shorter than the datagram",
            short_cl,
            Expect::Challenge,
        ),
        (
            "two conflicting Content-Lengths",
            two_cl,
            Expect::Malformed(ParseError::ConflictingContentLength),
        ),
        ("no Call-ID", no_call_id, Expect::Missing),
        ("no Via", no_via, Expect::Missing),
        ("folded Via", folded_via, Expect::Challenge),
        (
            // Methods are case-sensitive: `register` is not the CSeq's `REGISTER`.
            "lower-case method",
            replace(base.clone(), "REGISTER sip:", "register sip:"),
            Expect::Invalid(400),
        ),
        (
            "unterminated quote in credentials",
            unterminated,
            Expect::Failure("malformed_credentials"),
        ),
        (
            "Basic credentials",
            basic,
            Expect::Failure("malformed_credentials"),
        ),
        (
            "200-byte username",
            long_user,
            Expect::Failure("malformed_credentials"),
        ),
        (
            "duplicated parameter",
            dup_param,
            Expect::Failure("malformed_credentials"),
        ),
        (
            "response not hex",
            bad_hex,
            Expect::Failure("malformed_credentials"),
        ),
        (
            "nonce we never issued",
            forged,
            Expect::Failure("forged_nonce"),
        ),
        (
            "credentials for another realm",
            other_realm,
            Expect::Failure("wrong_realm"),
        ),
        (
            "response to nobody",
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 198.18.0.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
            Expect::Pass,
        ),
    ];

    for (what, msg, expect) in corpus {
        let mut gw = Gw::new("");
        let v = gw.send("198.18.0.2:5060", &msg);
        let counters = *gw.engine.counters();
        match expect {
            Expect::Malformed(e) => {
                assert_eq!(v, Verdict::Drop(DropReason::Malformed(e)), "{what}");
                assert_eq!(counters.malformed, 1, "{what}");
            }
            Expect::Challenge => {
                assert!(common::is_challenge(v), "{what}: {v:?}");
                assert_eq!(counters.challenged, 1, "{what}");
            }
            Expect::Failure(name) => {
                assert!(common::is_challenge(v), "{what}: {v:?}");
                assert_eq!(counters.get(name), Some(1), "{what}: {counters:?}");
            }
            Expect::Missing => assert_eq!(v, Verdict::Drop(DropReason::MissingHeaders), "{what}"),
            Expect::Pass => assert!(matches!(v, Verdict::Pass(_)), "{what}: {v:?}"),
            Expect::Invalid(status) => {
                assert!(
                    matches!(v, Verdict::Reply { status: s, .. } if s == status),
                    "{what}: {v:?}"
                );
            }
        }
        if let Verdict::Reply { len, .. } = v {
            assert!(
                len <= msg.len() + MAX_REPLY_GROWTH,
                "{what}: reply of {len} for {}",
                msg.len()
            );
            Message::parse(gw.reply_bytes())
                .unwrap_or_else(|e| panic!("{what}: our reply does not parse: {e}"));
        }
    }
}

/// Valid-looking messages to mutate: the sipp captures, and our own client's requests with and
/// without credentials.
fn seeds() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
    let mut v: Vec<Vec<u8>> = [
        "sipp-register-noauth.sip",
        "sipp-register-auth.sip",
        "sipp-invite-noauth.sip",
        "sipp-invite-proxy-auth.sip",
    ]
    .iter()
    .map(|f| std::fs::read(format!("{dir}/{f}")).unwrap())
    .collect();
    let mut gw = Gw::new("");
    let mut p = Phone::new("198.18.0.2:5060", "alice", "seed");
    let _ = p.bare(&mut gw);
    let ch = gw.challenge();
    v.push(request(
        "REGISTER",
        "alice",
        "seed",
        2,
        &authorization(&ch, "alice", "secret", "REGISTER", 1),
    ));
    v.push(request(
        "INVITE",
        "bob",
        "seed2",
        1,
        &authorization(&ch, "bob", "x", "INVITE", 3),
    ));
    v.push(request("ACK", "bob", "seed3", 1, ""));
    v
}

fn check_verdict(msg: &[u8], v: Verdict, reply: &[u8]) {
    if let Verdict::Reply { len, status } = v {
        assert!(matches!(status, 400 | 401 | 403 | 407 | 420));
        assert!(
            len <= msg.len() + MAX_REPLY_GROWTH,
            "reply {len} for request {}",
            msg.len()
        );
        let m = Message::parse(&reply[..len]).expect("our reply parses");
        assert_eq!(m.status_code(), Some(status));
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![
                    Just(b'\r'),
                    Just(b'\n'),
                    Just(b'"'),
                    Just(b','),
                    Just(b'\\'),
                    Just(b' '),
                    Just(b':'),
                    Just(b'='),
                    Just(0u8),
                    any::<u8>()
                ],
                1..8
            )
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..20).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut msg: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if msg.is_empty() {
            break;
        }
        let n = msg.len();
        match m {
            Mutation::Flip(i, b) => msg[i % n] = *b,
            Mutation::Insert(i, v) => {
                let at = i % (n + 1);
                msg.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(i, k) => {
                let at = i % n;
                let end = (at + k).min(n);
                msg.drain(at..end);
            }
            Mutation::Truncate(i) => msg.truncate(i % (n + 1)),
        }
    }
    msg
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn engine_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        let mut gw = Gw::new("[auth]\nmax_retry = 2\nsource_max_retry = 3\n");
        for _ in 0..3 {
            let v = gw.send("198.18.0.7:5060", &bytes);
            check_verdict(&bytes, v, &gw.reply);
        }
    }

    #[test]
    fn engine_never_panics_on_mutated_real_messages(seed in 0usize..7, muts in prop::collection::vec(mutation(), 1..6), mode in 1u8..=3) {
        let seeds = seeds();
        let msg = apply(seeds[seed % seeds.len()].clone(), &muts);
        let _ = Message::parse(&msg);
        let mut gw = Gw::new(&format!("[auth]\nchallenge_mode = {mode}\nmax_retry = 2\n"));
        for peer in ["198.18.0.2:5060", "198.18.9.1:5060", "[2001:db8::1]:5060"] {
            let v = gw.send(peer, &msg);
            check_verdict(&msg, v, &gw.reply);
        }
        // And the batch form, mixed with the unmutated seed.
        let original = &seeds[seed % seeds.len()];
        let dgs = [
            sipgw::Datagram::new("198.18.0.3:5060".parse().unwrap(), &msg),
            sipgw::Datagram::new("198.18.0.3:5060".parse().unwrap(), original),
            sipgw::Datagram::new("198.18.0.3:5060".parse().unwrap(), &msg),
        ];
        let mut replies = vec![vec![0u8; 4096]; 3];
        let mut verdicts = [Verdict::default(); 3];
        let now = gw.now();
        prop_assert_eq!(gw.engine.handle_batch(now, &dgs, &mut replies, &mut verdicts), 3);
        for (i, v) in verdicts.iter().enumerate() {
            prop_assert_ne!(*v, Verdict::default());
            check_verdict(dgs[i].bytes, *v, &replies[i]);
        }
    }
}
