//! Known sources first under overload, end to end (docs/operations.md, "Overload"): `sipgw
//! run` with one worker, a sipp phone that registered once, then a flood of unauthenticated
//! REGISTERs from 1,024 loopback addresses at more than the worker can challenge. The worker
//! sheds the unknown sources (`overload_shed`) and the known phone's registrations all go
//! through to the sipp softswitch.
//!
//! The flood is bounded (200,000 datagrams/s, at most 15 s, stopped when the phone is done).
//! Needs `sipp` (Debian package sip-tester; `./scripts/install-deps`).

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::live::Gateway;
use support::*;

const FLOOD_RATE: u64 = 200_000;
const FLOOD_THREADS: u32 = 2;
const ADDRESSES_PER_THREAD: u32 = 512;

fn flood(gw: SocketAddr, thread: u32, stop: &AtomicBool, sent: &AtomicU64) {
    let sockets: Vec<UdpSocket> = (0..ADDRESSES_PER_THREAD)
        .map(|k| {
            let ip = format!("127.3.{}.{}", thread * 3 + k / 250, k % 250 + 1);
            UdpSocket::bind((ip.as_str(), 0)).expect("bind a flood socket on loopback")
        })
        .collect();
    let per_thread = FLOOD_RATE / u64::from(FLOOD_THREADS);
    let start = Instant::now();
    let end = start + Duration::from_secs(15);
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let due = (start.elapsed().as_secs_f64() * per_thread as f64) as u64;
        if n >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let s = &sockets[(n % u64::from(ADDRESSES_PER_THREAD)) as usize];
        let local = s.local_addr().unwrap();
        let msg = format!(
            "REGISTER sip:{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-fl{thread}-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:flood@{gw}>;tag=f{n}\r\nTo: <sip:flood@{gw}>\r\n\
             Call-ID: flood-{thread}-{n}\r\nCSeq: 1 REGISTER\r\nContact: <sip:flood@{local}>\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let _ = s.send_to(msg.as_bytes(), gw);
        n += 1;
        sent.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_known_phone_registers_through_a_flood_from_a_thousand_addresses() {
    let gw = Gateway::start("overload", 1, "");
    let (user, password) = user(0);
    let mut softswitch = gw.softswitch("softswitch_register.xml", 21);
    // Known: one registration before the flood.
    assert_eq!(
        gw.phone("register.xml", &user, &password, 1, 20),
        Some(0),
        "{}",
        gw.log()
    );
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let (code, shed) = std::thread::scope(|s| {
        let floods: Vec<_> = (0..FLOOD_THREADS)
            .map(|t| {
                let (stop, sent) = (&stop, &sent);
                let to = gw.sip;
                s.spawn(move || flood(to, t, stop, sent))
            })
            .collect();
        // Until the worker sheds (a backlog built up), at most 5 s.
        let deadline = Instant::now() + Duration::from_secs(5);
        while gw.stat("overload_shed") == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let code = gw.phone("register.xml", &user, &password, 20, 20);
        let shed = gw.stat("overload_shed");
        stop.store(true, Ordering::Relaxed);
        for f in floods {
            f.join().unwrap();
        }
        (code, shed)
    });
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        shed > 0,
        "the worker never shed under {sent} flood datagrams: was it overloaded? {:?}",
        gw.stats()
    );
    assert_eq!(
        code,
        Some(0),
        "the known phone's 20 registrations during the flood ({sent} sent, {shed} shed): {}",
        gw.log()
    );
    assert_eq!(
        softswitch.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        gw.softswitch_log()
    );
    assert_eq!(gw.stat("forwarded_digest"), 21);
    assert!(
        gw.stat("challenged") > 21,
        "the flood was challenged within the budget"
    );
}
