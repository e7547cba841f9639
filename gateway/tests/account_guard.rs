//! The account guarantee (docs/configuration.md, "The account guarantee"): per account, wrong
//! guesses evaluated from sources that are not known-good are at most `account_budget` per
//! `failed_suspend` period — under every `suspend_scope`, from one source, from many, rotating
//! inside an IPv6 /64, and after the tables were filled first (fail closed) — while a
//! known-good source keeps access.

mod common;

use std::time::Duration;

use common::{is_challenge, request, Gw, Phone};
use sipgw::engine::{DropReason, Verdict};
use sipgw::Event;

const SCOPES: [&str; 3] = ["terminal", "terminal+source", "source"];
const PHONE: &str = "198.18.0.2:5060";

fn gw(scope: &str, extra: &str) -> Gw {
    Gw::new(&format!("[auth]\nsuspend_scope = \"{scope}\"\n{extra}"))
}

/// Guesses whose digest was computed and found wrong (known and unknown users).
fn evaluated(gw: &Gw) -> u64 {
    let c = gw.engine.counters();
    c.wrong_password + c.unknown_user
}

/// One attempt: a bare request, then the answer to its challenge with `password`. The bare
/// request's verdict when it is not challenged.
fn attempt(gw: &mut Gw, addr: &str, user: &str, password: &str) -> Verdict {
    let call = format!("a{}", gw.engine.counters().received);
    let mut p = Phone::new(addr, user, &call);
    let v = p.bare(gw);
    if !is_challenge(v) {
        return v;
    }
    let ch = gw.challenge();
    p.answer(gw, &ch, password)
}

fn v4(i: u32) -> String {
    format!("198.18.{}.{}:5060", 16 + (i >> 8), i & 0xff)
}

fn v6(i: u32) -> String {
    format!("[2001:2::{:x}:{:x}]:5060", i >> 16, (i & 0xffff) | 1)
}

#[test]
fn one_source_gets_the_budget_under_every_scope() {
    for scope in SCOPES {
        let mut g = gw(scope, "");
        for _ in 0..100 {
            let v = attempt(&mut g, "198.18.0.66:5060", "alice", "wrong");
            assert!(!matches!(v, Verdict::Forward(_)), "{scope}: {v:?}");
        }
        assert_eq!(evaluated(&g), 6, "{scope}");
    }
}

#[test]
fn many_sources_share_one_budget_and_the_right_password_is_refused_after_it() {
    for scope in SCOPES {
        let mut g = gw(scope, "");
        // 60 addresses, 5 wrong passwords each: under every per-source limit.
        for i in 0..60 {
            for _ in 0..5 {
                let v = attempt(&mut g, &v4(i), "alice", "wrong");
                assert!(!matches!(v, Verdict::Forward(_)), "{scope}: {v:?}");
            }
        }
        assert_eq!(
            evaluated(&g),
            6,
            "{scope}: at most account_budget guesses evaluated"
        );
        // The right password from a fresh address is not evaluated either.
        let v = attempt(&mut g, &v4(200), "alice", "secret");
        assert!(
            matches!(
                v,
                Verdict::Drop(DropReason::AccountProtected | DropReason::TerminalSuspended)
            ),
            "{scope}: {v:?}"
        );
        assert_eq!(evaluated(&g), 6, "{scope}");
        if scope != "terminal" {
            assert!(g.engine.counters().account_protected > 0, "{scope}");
        }
    }
}

#[test]
fn ipv6_rotation_inside_a_64_is_one_source() {
    for scope in SCOPES {
        let mut g = gw(scope, "");
        for i in 0..300 {
            let v = attempt(&mut g, &v6(i), "alice", "wrong");
            assert!(!matches!(v, Verdict::Forward(_)), "{scope}: {v:?}");
        }
        assert_eq!(evaluated(&g), 6, "{scope}");
        // The /64 is banned as one network (ban_source_on_suspend), not address by address.
        let bans: Vec<_> = g
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::SourceBanned { source, prefix, .. } => Some((source, prefix)),
                _ => None,
            })
            .collect();
        assert_eq!(bans, [("2001:2::".parse().unwrap(), 64)], "{scope}");
        assert_eq!(
            Phone::new("[2001:2::dead:beef]:5060", "bob", "x").bare(&mut g),
            Verdict::Drop(DropReason::SourceBanned),
            "{scope}: another address of the /64"
        );
        assert!(
            is_challenge(Phone::new("[2001:2:0:1::1]:5060", "bob", "y").bare(&mut g)),
            "{scope}: the next /64 is another source"
        );
    }
}

#[test]
fn the_ipv6_prefix_is_configurable() {
    let mut g = gw("terminal+source", "ipv6_prefix = 128\n");
    for i in 0..20 {
        let _ = attempt(&mut g, &v6(i), "alice", "wrong");
    }
    // Every address is its own source now: only the account budget holds.
    assert_eq!(evaluated(&g), 6);
    assert_eq!(g.engine.counters().source_bans, 0);
    assert!(g.engine.counters().account_protected > 0);
}

#[test]
fn tables_filled_first_fail_closed_and_nothing_is_evaluated_untracked() {
    for scope in SCOPES {
        // max_retry = 1: every wrong guess suspends its terminal; no source bans, so the
        // terminal table fills with suspensions (which are never evicted).
        let mut g = gw(
            scope,
            "max_retry = 1\nban_source_on_suspend = false\nsource_max_retry = 0\n\
             [limits]\nmax_terminals = 1024\nmax_sources = 1024\n",
        );
        for i in 0..1100 {
            let _ = attempt(&mut g, &v4(i), &format!("u{i}"), "wrong");
        }
        assert_eq!(
            g.engine.policy().len().0,
            1024,
            "{scope}: terminal table full"
        );
        let before = evaluated(&g);
        // The fill itself already ran into the full table (1100 terminals for 1024 entries).
        let untracked = g.engine.counters().untracked_dropped;
        assert_eq!(untracked, 1100 - 1024, "{scope}");
        for i in 0..100 {
            let v = attempt(&mut g, &v4(2000 + i), "alice", "wrong");
            assert_eq!(v, Verdict::Drop(DropReason::Untracked), "{scope}");
        }
        // Not even the right password is evaluated untracked.
        let v = attempt(&mut g, &v4(3000), "alice", "secret");
        assert_eq!(v, Verdict::Drop(DropReason::Untracked), "{scope}");
        assert_eq!(
            evaluated(&g),
            before,
            "{scope}: no guess evaluated untracked"
        );
        assert_eq!(g.engine.counters().wrong_password, 0, "{scope}");
        assert_eq!(
            g.engine.counters().untracked_dropped - untracked,
            101,
            "{scope}"
        );
        assert!(g.engine.policy().table_full() >= 101, "{scope}");
    }
}

#[test]
fn a_known_good_source_keeps_access_while_the_account_is_under_attack() {
    for scope in ["terminal+source", "source"] {
        let mut g = gw(scope, "");
        assert!(matches!(
            Phone::new(PHONE, "alice", "before").login(&mut g, "secret"),
            Verdict::Forward(_)
        ));
        for i in 0..60 {
            for _ in 0..5 {
                let _ = attempt(&mut g, &v4(i), "alice", "wrong");
            }
        }
        assert_eq!(evaluated(&g), 6, "{scope}");
        let protected = g
            .events()
            .into_iter()
            .filter(|e| matches!(e, Event::AccountProtected { .. }))
            .count();
        assert_eq!(
            protected, 1,
            "{scope}: one log line when the budget runs out"
        );
        // The real phone, from the network it authenticated from, is still evaluated ...
        assert!(
            matches!(
                attempt(&mut g, PHONE, "alice", "secret"),
                Verdict::Forward(_)
            ),
            "{scope}"
        );
        // ... and so is another port of it (a NAT rebinding).
        assert!(
            matches!(
                attempt(&mut g, "198.18.0.2:40000", "alice", "secret"),
                Verdict::Forward(_)
            ),
            "{scope}"
        );
        assert!(g.engine.counters().known_good_evaluated >= 2, "{scope}");
        // A new address is not, until the period ends.
        assert_eq!(
            attempt(&mut g, "198.18.5.5:5060", "alice", "secret"),
            Verdict::Drop(DropReason::AccountProtected),
            "{scope}"
        );
        g.advance(Duration::from_secs(181));
        assert!(
            matches!(
                attempt(&mut g, "198.18.5.5:5060", "alice", "secret"),
                Verdict::Forward(_)
            ),
            "{scope}: the next period has a fresh budget"
        );
    }
}

#[test]
fn without_known_good_sources_the_account_locks_like_vos3000() {
    let mut g = gw("terminal+source", "known_good_window = 0\n");
    assert!(matches!(
        Phone::new(PHONE, "alice", "before").login(&mut g, "secret"),
        Verdict::Forward(_)
    ));
    for i in 0..10 {
        let _ = attempt(&mut g, &v4(i), "alice", "wrong");
    }
    assert_eq!(
        attempt(&mut g, PHONE, "alice", "secret"),
        Verdict::Drop(DropReason::AccountProtected)
    );
}

#[test]
fn known_good_sources_expire_after_the_window() {
    let mut g = gw("terminal+source", "known_good_window = 600\n");
    assert!(matches!(
        Phone::new(PHONE, "alice", "before").login(&mut g, "secret"),
        Verdict::Forward(_)
    ));
    g.advance(Duration::from_secs(601));
    for i in 0..10 {
        let _ = attempt(&mut g, &v4(i), "alice", "wrong");
    }
    assert_eq!(
        attempt(&mut g, PHONE, "alice", "secret"),
        Verdict::Drop(DropReason::AccountProtected)
    );
}

#[test]
fn unknown_usernames_are_guarded_like_accounts() {
    // With replies on, a scanner must not tell a real account from an unknown name by when
    // its guesses stop being answered.
    let mut g = gw("terminal+source", "");
    let mut answered = |user: &str| {
        (0..10u32)
            .filter(|&i| {
                let v = attempt(&mut g, &v4(100 + i), user, "wrong");
                matches!(v, Verdict::Reply { .. })
            })
            .count()
    };
    assert_eq!(answered("alice"), 6);
    assert_eq!(answered("nobody"), 6);
}

#[test]
fn a_zero_budget_turns_the_guard_off() {
    let mut g = gw("terminal+source", "account_budget = 0\n");
    for i in 0..20 {
        for _ in 0..5 {
            let _ = attempt(&mut g, &v4(i), "alice", "wrong");
        }
    }
    assert_eq!(evaluated(&g), 100);
    assert_eq!(g.engine.counters().account_protected, 0);
}

#[test]
fn the_batch_form_keeps_the_budget() {
    let mut g = gw("terminal+source", "");
    // 32 wrong answers from 32 addresses in one batch.
    let mut msgs = Vec::new();
    for i in 0..32u32 {
        let addr = v4(i);
        let call = format!("b{i}");
        let mut p = Phone::new(&addr, "alice", &call);
        assert!(is_challenge(p.bare(&mut g)));
        let ch = g.challenge();
        let auth = common::authorization(&ch, "alice", "wrong", "REGISTER", 1);
        msgs.push((addr, request("REGISTER", "alice", &call, 2, &auth)));
    }
    let dgs: Vec<sipgw::Datagram<'_>> = msgs
        .iter()
        .map(|(a, m)| sipgw::Datagram::new(a.parse().unwrap(), m))
        .collect();
    let mut replies = vec![vec![0u8; 2048]; dgs.len()];
    let mut verdicts = vec![Verdict::default(); dgs.len()];
    let now = g.now();
    let _ = g
        .engine
        .handle_batch(now, &dgs, &mut replies, &mut verdicts);
    assert_eq!(evaluated(&g), 6);
    let protected = verdicts
        .iter()
        .filter(|v| **v == Verdict::Drop(DropReason::AccountProtected))
        .count();
    assert_eq!(protected, 26);
}

#[test]
fn spoofed_failures_never_suspend_or_ban_anyone() {
    // Forged nonces and malformed credentials prove no round trip: they may carry any source
    // address. Counted, re-challenged, never counted against the victim's terminal or network.
    let mut g = gw("terminal+source", "");
    let forged = |i: u32| {
        request(
            "REGISTER",
            "alice",
            &format!("f{i}"),
            1,
            "Authorization: Digest username=\"alice\", realm=\"sipgw\", \
             nonce=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA\", uri=\"sip:198.18.0.1\", \
             response=\"00000000000000000000000000000000\"\r\n",
        )
    };
    for i in 0..50 {
        let v = g.send(PHONE, &forged(i));
        assert!(
            is_challenge(v) || v == Verdict::Drop(DropReason::Amplification),
            "{v:?}"
        );
    }
    assert_eq!(g.engine.counters().forged_nonce, 50);
    assert_eq!(g.engine.counters().unproven_failures, 50);
    assert_eq!(g.engine.counters().suspensions, 0);
    assert_eq!(g.engine.counters().source_bans, 0);
    // Not logged as rejections either: a fail2ban reading the log would ban the victim.
    assert!(!g
        .events()
        .iter()
        .any(|e| matches!(e, Event::CredentialRejected { .. })));
    assert!(matches!(
        Phone::new(PHONE, "alice", "real").login(&mut g, "secret"),
        Verdict::Forward(_)
    ));
}

#[test]
fn the_softswitch_network_is_never_banned() {
    let mut g = gw(
        "terminal+source",
        "[gateway]\nsoftswitch = \"198.18.7.1:5060\"\n",
    );
    // A host in the softswitch's network (here its own address, another port) fails for real.
    for _ in 0..10 {
        let _ = attempt(&mut g, "198.18.7.1:6000", "alice", "wrong");
    }
    assert!(
        g.engine.counters().suspensions >= 1,
        "the terminal is suspended"
    );
    assert_eq!(
        g.engine.counters().source_bans,
        0,
        "its network is not banned"
    );
    assert!(is_challenge(
        Phone::new("198.18.7.1:6001", "bob", "x").bare(&mut g)
    ));
}

#[test]
fn a_known_good_phone_keeps_access_when_the_tables_are_full() {
    // The tables are full of suspensions: new terminals are refused (fail closed), but the
    // phone's known-good network is tracked in its known-good slot instead, so filling the
    // tables cannot lock the real phone out.
    let mut g = gw(
        "terminal+source",
        "max_retry = 3\nban_source_on_suspend = false\nsource_max_retry = 0\n\
         [limits]\nmax_terminals = 1024\nmax_sources = 1024\n",
    );
    assert!(matches!(
        Phone::new(PHONE, "alice", "before").login(&mut g, "secret"),
        Verdict::Forward(_)
    ));
    for i in 0..1100 {
        for _ in 0..3 {
            let _ = attempt(&mut g, &v4(i), &format!("u{i}"), "wrong");
        }
    }
    assert_eq!(g.engine.policy().len().0, 1024, "terminal table full");
    // A stranger with alice's password: untracked, not evaluated.
    assert_eq!(
        attempt(&mut g, "198.18.5.5:5060", "alice", "secret"),
        Verdict::Drop(DropReason::Untracked)
    );
    // Alice's phone: evaluated, forwarded.
    assert!(matches!(
        attempt(&mut g, PHONE, "alice", "secret"),
        Verdict::Forward(_)
    ));
    // Its failures are still counted (in the slot): max_retry of them end its status.
    let before = g.engine.counters().wrong_password;
    let v: Vec<Verdict> = (0..4)
        .map(|_| attempt(&mut g, PHONE, "alice", "wrong"))
        .collect();
    assert!(is_challenge(v[0]) && is_challenge(v[1]), "{v:?}");
    assert!(matches!(v[2], Verdict::Reply { status: 403, .. }), "{v:?}");
    assert_eq!(
        v[3],
        Verdict::Drop(DropReason::Untracked),
        "no longer known-good"
    );
    assert_eq!(g.engine.counters().wrong_password - before, 3);
    assert_eq!(g.engine.counters().known_good_failures, 3);
}
