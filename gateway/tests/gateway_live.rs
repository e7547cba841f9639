//! The `sipgw` binary end to end, with real sipp processes as phones and as the softswitch.
//!
//! Every test starts its own gateway (`sipgw run`) on loopback with free ports, a sipp UAS as the
//! softswitch stand-in, and sipp UACs as phones, and reads the gateway's counters from its
//! metrics endpoint. Processes are killed when a test ends, pass or fail.
//!
//! Needs `sipp` (Debian package sip-tester): `./scripts/install-deps` as root installs it. A
//! missing sipp fails the tests with that message; they are never skipped.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::live::{Gateway, USERS};
use support::*;

#[test]
fn a_hundred_users_register_through_the_gateway() {
    let gw = Gateway::start("register", 2, "[auth]\nrealm = \"sipgw.test\"\n");
    let mut softswitch = gw.softswitch("softswitch_register.xml", USERS);
    // One sipp per user (sipp's digest credentials are per process), twenty at a time.
    let codes: Vec<(usize, Option<i32>)> = (0..USERS)
        .collect::<Vec<_>>()
        .chunks(20)
        .flat_map(|chunk| {
            std::thread::scope(|s| {
                let runs: Vec<_> = chunk
                    .iter()
                    .map(|&i| {
                        let gw = &gw;
                        s.spawn(move || {
                            let (u, p) = user(i);
                            (i, gw.phone("register.xml", &u, &p, 1, 20))
                        })
                    })
                    .collect();
                runs.into_iter()
                    .map(|r| r.join().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let failed: Vec<_> = codes.iter().filter(|(_, c)| *c != Some(0)).collect();
    assert!(failed.is_empty(), "phones failed: {failed:?}\n{}", gw.log());
    assert_eq!(
        softswitch.wait(Duration::from_secs(20)),
        Some(0),
        "the softswitch saw exactly {USERS} REGISTERs, each with the asserted identity and \
         without our credentials; its log:\n{}",
        gw.softswitch_log()
    );
    let registered: BTreeSet<String> = registered_users(&gw.softswitch_log());
    let expected: BTreeSet<String> = (0..USERS).map(|i| user(i).0).collect();
    assert_eq!(registered, expected);
    assert_eq!(gw.stat("forwarded_digest"), USERS as u64);
    assert_eq!(gw.stat("upstream_requests"), USERS as u64);
    assert!(gw.stat("challenged") >= USERS as u64);
    assert_eq!(gw.stat("responses_forwarded"), USERS as u64);
    assert_eq!(gw.stat("wrong_password") + gw.stat("unknown_user"), 0);
}

#[test]
fn a_call_completes_through_the_gateway_in_both_directions() {
    let gw = Gateway::start("call", 1, "[auth]\nrealm = \"sipgw.test\"\n");
    let (u, p) = user(7);

    // The phone hangs up.
    let mut softswitch = gw.softswitch("softswitch_call.xml", 1);
    assert_eq!(
        gw.phone("phone_call_caller.xml", &u, &p, 1, 20),
        Some(0),
        "caller: {}",
        gw.log()
    );
    assert_eq!(
        softswitch.wait(Duration::from_secs(10)),
        Some(0),
        "softswitch"
    );
    assert!(gw.softswitch_log().contains(&format!("call from {u} ")));
    // The BYE reached the softswitch unchallenged: its Route carried our dialog MAC.
    assert_eq!(gw.stat("dialog_passed"), 1, "{}", gw.log());
    drop(softswitch);
    // A forged in-dialog BYE (made-up Route and MAC) is challenged, not passed.
    let upstream = gw.stat("upstream_requests");
    assert_eq!(
        gw.phone("forged_bye.xml", &u, &p, 1, 10),
        Some(0),
        "forged BYE: {}",
        gw.log()
    );
    assert_eq!(gw.stat("dialog_passed"), 1);
    assert_eq!(
        gw.stat("upstream_requests"),
        upstream,
        "nothing reached the softswitch"
    );

    // The softswitch hangs up: its BYE follows the Record-Route through sipgw to the phone.
    let mut softswitch = gw.softswitch("softswitch_call_hangup.xml", 1);
    assert_eq!(
        gw.phone("phone_call_callee.xml", &u, &p, 1, 20),
        Some(0),
        "phone: {}",
        gw.log()
    );
    assert_eq!(
        softswitch.wait(Duration::from_secs(10)),
        Some(0),
        "softswitch"
    );
    assert!(
        gw.stat("downstream_requests") >= 1,
        "the BYE went downstream"
    );
    assert!(gw.stat("forwarded_digest") >= 2);
    assert_eq!(
        gw.stat("proxy_not_our_via") + gw.stat("proxy_unroutable"),
        0
    );
}

#[test]
fn brute_force_is_suspended_then_the_terminal_registers_again() {
    let gw = Gateway::start(
        "bruteforce",
        1,
        "[auth]\nrealm = \"sipgw.test\"\nmax_retry = 6\nfailed_suspend = 60\n",
    );
    let mut softswitch = gw.softswitch("softswitch_register.xml", 1);
    let (u, p) = user(3);
    let started = Instant::now();
    // Wrong passwords: 407 re-challenges, then 403 when suspended (the scenario checks both).
    assert_eq!(
        gw.phone("bruteforce.xml", &u, "guess", 1, 20),
        Some(0),
        "{}",
        gw.log()
    );
    // The right password is now refused: no answer at all.
    assert_ne!(gw.phone("register.xml", &u, &p, 1, 3), Some(0), "suspended");
    assert_eq!(gw.stat("suspensions"), 1);
    assert_eq!(gw.stat("wrong_password"), 6);
    assert_eq!(
        gw.stat("upstream_requests"),
        0,
        "the softswitch got nothing"
    );
    assert!(gw.log().contains("terminal suspended"), "{}", gw.log());
    // After the suspension (60 s, the VOS3000 minimum) the terminal registers again.
    let wait = Duration::from_secs(61).saturating_sub(started.elapsed());
    std::thread::sleep(wait);
    assert_eq!(
        gw.phone("register.xml", &u, &p, 1, 10),
        Some(0),
        "{}",
        gw.log()
    );
    assert_eq!(softswitch.wait(Duration::from_secs(10)), Some(0));
    assert_eq!(gw.stat("upstream_requests"), 1);
    assert!(gw.log().contains("terminal re-enabled"), "{}", gw.log());
}

#[test]
fn reply_unauthorized_off_leaves_unknown_users_unanswered() {
    let gw = Gateway::start(
        "silent",
        1,
        "[auth]\nrealm = \"sipgw.test\"\nreply_unauthorized = \"off\"\n",
    );
    let mut softswitch = gw.softswitch("softswitch_register.xml", 1);
    assert_ne!(gw.phone("register.xml", "nobody", "x", 1, 3), Some(0));
    assert!(gw.stat("silenced") >= 1);
    assert_eq!(
        gw.stat("challenged"),
        0,
        "not a single reply to the unknown user"
    );
    // Known users are still challenged and get through.
    let (u, p) = user(1);
    assert_eq!(gw.phone("register.xml", &u, &p, 1, 10), Some(0));
    assert_eq!(softswitch.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn brute_force_spread_over_workers_stays_within_the_bound() {
    let workers = 4;
    let max_retry = 6;
    let gw = Gateway::start(
        "spread",
        workers,
        &format!("[auth]\nrealm = \"sipgw.test\"\nmax_retry = {max_retry}\nsession_retry = 999\n"),
    );
    let (u, _) = user(5);
    // Eight attackers on eight source ports at once; the kernel spreads them over workers.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| gw.phone("bruteforce.xml", &u, "guess", 1, 5));
        }
    });
    let stats = gw.stats();
    let busy = (0..workers)
        .filter(|w| stats[&format!("sipgw_worker_rx_datagrams_total{{worker=\"{w}\"}}")] > 0)
        .count();
    assert!(busy >= 2, "the attack reached {busy} worker(s): {stats:?}");
    let guesses = gw.stat("wrong_password");
    eprintln!(
        "spread: {guesses} wrong guesses evaluated by {busy} busy workers of {workers}; \
         suspensions {}, shard messages sent {}",
        gw.stat("suspensions"),
        gw.stat("shard_sent")
    );
    assert!(gw.stat("suspensions") >= 1);
    assert!(
        guesses <= (workers * max_retry) as u64,
        "{guesses} guesses evaluated: the bound is workers × max_retry"
    );
    assert_eq!(gw.stat("upstream_requests"), 0);
}

#[test]
fn sighup_reloads_credentials_and_keeps_the_old_config_when_the_new_one_is_bad() {
    let mut gw = Gateway::start("reload", 2, "[auth]\nrealm = \"sipgw.test\"\n");
    let mut softswitch = gw.softswitch("softswitch_register.xml", 1);
    // A user that is not in the file yet.
    let newcomer = ("9999", "brand-new-secret");
    assert_ne!(
        gw.phone("register.xml", newcomer.0, newcomer.1, 1, 3),
        Some(0)
    );
    let mut creds = credentials(USERS);
    creds.push_str(&format!(
        "[[account]]\nname = \"{}\"\npassword = \"{}\"\n",
        newcomer.0, newcomer.1
    ));
    std::fs::write(gw.dir.0.join("users.toml"), creds).unwrap();
    gw.proc.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.stat("reloads") < 1 {
        assert!(Instant::now() < deadline, "not reloaded: {}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        gw.phone("register.xml", newcomer.0, newcomer.1, 1, 10),
        Some(0)
    );
    // One SIGHUP is one reload, however many workers (two here) applied it.
    assert_eq!(gw.stat("reloads"), 1);
    assert_eq!(softswitch.wait(Duration::from_secs(10)), Some(0));

    // A broken configuration is refused with the key named, and the gateway keeps working.
    let config = gw.dir.0.join("sipgw.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replace("realm = \"sipgw.test\"", "max_retry = 1000"),
    )
    .unwrap();
    gw.proc.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.log().contains("reload refused") {
        assert!(Instant::now() < deadline, "no refusal logged: {}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gw.log().contains("auth.max_retry = 1000"), "{}", gw.log());
    assert_eq!(gw.stat("reloads"), 1, "nothing applied");
    let _softswitch = gw.softswitch("softswitch_register.xml", 1);
    let (u, p) = user(0);
    assert_eq!(gw.phone("register.xml", &u, &p, 1, 10), Some(0));

    // SIGTERM stops it cleanly.
    gw.proc.signal("-TERM");
    assert_eq!(
        gw.proc.wait(Duration::from_secs(5)),
        Some(0),
        "{}",
        gw.log()
    );
    assert!(gw.log().contains("stopped"));
}

/// A REGISTER of `user` from `local` to the gateway, with `auth` (a header line or "").
fn register_from(local: SocketAddr, gw: SocketAddr, user: &str, cseq: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{gw} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-replay-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{gw}>;tag=replay\r\n\
         To: <sip:{user}@{gw}>\r\n\
         Call-ID: replay-1@test\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{local}>\r\n\
         User-Agent: replay test (sipgw)\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER\r\n\
         Expires: 3600\r\n\
         {auth}Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn credentials_replayed_from_eight_ports_are_never_forwarded() {
    use sipgw::digest::{self, Algorithm, Qop};
    use std::net::UdpSocket;

    let gw = Gateway::start("replay", 4, "[auth]\nrealm = \"sipgw.test\"\n");
    let (user, password) = user(3);
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = phone.local_addr().unwrap();
    phone
        .send_to(
            register_from(local, gw.sip, &user, 1, "").as_bytes(),
            gw.sip,
        )
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = phone.recv_from(&mut buf).expect("a challenge");
    let reply = std::str::from_utf8(&buf[..n]).unwrap().to_owned();
    let param = |name: &str| {
        let key = format!("{name}=\"");
        let start = reply.find(&key).expect(&key) + key.len();
        reply[start..start + reply[start..].find('"').unwrap()].to_owned()
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    assert!(reply.contains("qop=\"auth\""), "{reply}");
    let uri = format!("sip:{}", gw.sip);
    let ha1 = digest::ha1(user.as_bytes(), realm.as_bytes(), password.as_bytes());
    let response = digest::client_response(
        &ha1,
        b"REGISTER",
        uri.as_bytes(),
        nonce.as_bytes(),
        Qop::Auth,
        b"00000001",
        b"c0ffee",
        Algorithm::Md5,
        b"",
    );
    let header = if reply.starts_with("SIP/2.0 401") {
        "Authorization"
    } else {
        "Proxy-Authorization"
    };
    let auth = format!(
        "{header}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{}\", qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n",
        std::str::from_utf8(&response).unwrap()
    );
    let answer = register_from(local, gw.sip, &user, 2, &auth);
    phone.send_to(answer.as_bytes(), gw.sip).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.stat("forwarded_digest") < 1 {
        assert!(Instant::now() < deadline, "not forwarded: {}", gw.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The same datagram from 8 other ports of the address: the kernel spreads them over the
    // 4 workers; none may be forwarded.
    let attackers: Vec<UdpSocket> = (0..8)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for a in &attackers {
        a.send_to(answer.as_bytes(), gw.sip).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.stat("received") < 10 {
        assert!(
            Instant::now() < deadline,
            "replays not received: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(gw.stat("forwarded_digest"), 1, "{}", gw.log());
    assert_eq!(
        gw.stat("replayed_nonce") + gw.stat("foreign_nonce"),
        8,
        "every replay refused: counted as a replay by the minting worker, re-challenged by \
         the others"
    );
}
