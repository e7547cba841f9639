//! Known sources first under overload (docs/operations.md, "Overload"): while the driver
//! reports a backlog, requests from sources that authenticated recently are all evaluated and
//! unknown sources only within the shrinking per-batch budget; the rest are dropped unparsed. A
//! burst shorter than `ENTER_AFTER` sheds nothing.
//! Address accounts and connections are always served; with `limits.known_sources = 0` nothing
//! is shed.

mod common;

use common::{is_challenge, request, Gw, Phone};
use sipgw::engine::{DropReason, Verdict};
use sipgw::{Config, Datagram};

const KNOWN: &str = "198.18.0.2:5060";

fn unknown(i: u32) -> String {
    format!("198.19.{}.{}:5060", i >> 8, i & 0xff)
}

/// One batch of 32 bare REGISTERs from fresh unknown sources; how many were evaluated
/// (challenged), checking that every other one was shed.
fn flood_batch(gw: &mut Gw, batch: u32) -> usize {
    let mut evaluated = 0;
    for k in 0..32 {
        let i = batch * 32 + k;
        let msg = request("REGISTER", "alice", &format!("flood-{i}"), 1, "");
        match gw.send(&unknown(i), &msg) {
            v if is_challenge(v) => evaluated += 1,
            Verdict::Drop(DropReason::Overloaded) => {}
            v => panic!("flood request {i}: {v:?}"),
        }
    }
    evaluated
}

#[test]
fn under_backlog_a_known_source_is_served_while_unknown_ones_get_the_budget() {
    let mut gw = Gw::new("");
    let mut phone = Phone::new(KNOWN, "alice", "known-1");
    assert!(matches!(
        phone.login(&mut gw, "secret"),
        Verdict::Forward(_)
    ));
    assert!(gw.engine.admission().is_known(
        gw.now(),
        KNOWN.parse::<std::net::SocketAddr>().unwrap().ip()
    ));

    // A backlog held for ENTER_AFTER makes the worker overloaded.
    let now = gw.now();
    gw.engine.load(now, true);
    gw.mock.increment(sipgw::admission::ENTER_AFTER);
    let mut admitted = Vec::new();
    for batch in 0..8 {
        let now = gw.now();
        gw.engine.load(now, true);
        admitted.push(flood_batch(&mut gw, batch));
        // The phone re-registers in the middle of the flood: challenged and forwarded.
        let mut p = Phone::new(KNOWN, "alice", &format!("known-{}", batch + 2));
        let v = p.login(&mut gw, "secret");
        assert!(matches!(v, Verdict::Forward(_)), "batch {batch}: {v:?}");
    }
    assert_eq!(admitted, [16, 8, 4, 2, 2, 2, 2, 2]);
    let shed: usize = admitted.iter().map(|a| 32 - a).sum();
    assert_eq!(gw.engine.counters().overload_shed, shed as u64);

    // The queue drains: the budget doubles back to a whole batch; LEAVE_AFTER later the overload
    // is over.
    for _ in 0..4 {
        let now = gw.now();
        gw.engine.load(now, false);
    }
    assert_eq!(flood_batch(&mut gw, 100), 32);
    gw.mock.increment(sipgw::admission::LEAVE_AFTER);
    let now = gw.now();
    gw.engine.load(now, false);
    assert!(!gw.engine.admission().overloaded());
}

#[test]
fn address_accounts_and_connections_are_served_during_an_overload() {
    let mut gw = Gw::new("");
    let now = gw.now();
    gw.engine.load(now, true);
    gw.mock.increment(sipgw::admission::ENTER_AFTER);
    let now = gw.now();
    for _ in 0..4 {
        gw.engine.load(now, true); // 16, 8, 4, 2
    }
    assert_eq!(flood_batch(&mut gw, 0), 2);
    // The budget is spent; an ip+port account still gets in (forwarded without a challenge).
    let msg = request("INVITE", "pbx", "pbx-call", 1, "");
    assert!(matches!(
        gw.send("198.18.8.1:5060", &msg),
        Verdict::Forward(_)
    ));
    // A request on a connection (TCP/TLS) too.
    let msg = request("REGISTER", "alice", "tcp-call", 1, "");
    let mut verdicts = [Verdict::default()];
    let mut replies = [vec![0u8; 4096]];
    let now = gw.now();
    gw.engine.handle_batch(
        now,
        &[Datagram {
            peer: unknown(5000).parse().unwrap(),
            bytes: &msg,
            connected: true,
        }],
        &mut replies,
        &mut verdicts,
    );
    assert!(is_challenge(verdicts[0]), "{:?}", verdicts[0]);
}

#[test]
fn with_known_sources_zero_nothing_is_shed() {
    let mut gw = Gw::new("[limits]\nknown_sources = 0\n");
    for batch in 0..6 {
        let now = gw.now();
        gw.engine.load(now, true);
        gw.mock.increment(sipgw::admission::ENTER_AFTER);
        assert_eq!(flood_batch(&mut gw, batch), 32);
    }
    assert_eq!(gw.engine.counters().overload_shed, 0);
}

#[test]
fn a_bad_known_sources_value_is_refused_by_name() {
    let e = Config::parse("[limits]\nknown_sources = 100\n", "sipgw.toml", None).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("limits.known_sources") && text.contains("100"),
        "{text}"
    );
    assert!(Config::parse("[limits]\nknown_sources = 1024\n", "sipgw.toml", None).is_ok());
}
