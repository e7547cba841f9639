//! SIP over TCP end to end: the `sipgw` binary with `[tcp] enabled`, sipp phones and softswitch
//! stand-ins over TCP (`-t t1`), and raw TCP clients for framing, keep-alives, slowloris, the
//! connection caps and 10,000 idle connections.
//!
//! Over TCP the softswitch is recognised by its IP address alone (its source ports are
//! ephemeral), so the stand-in runs on 127.0.0.2 and the phones on 127.0.0.1.
//!
//! Needs `sipp` (Debian package sip-tester): `./scripts/install-deps` as root installs it.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::live::Gateway;
use support::*;

const TCP: &str = "[tcp]\nenabled = true\n";

fn start(name: &str, workers: usize, extra: &str, softswitch_transport: &str) -> Gateway {
    let mut gw = Gateway::start_at(
        name,
        workers,
        &format!("[auth]\nrealm = \"sipgw.test\"\n{extra}"),
        "127.0.0.2",
        &format!("softswitch_transport = \"{softswitch_transport}\"\n"),
    );
    gw.phone_transport = "t1";
    gw.softswitch_transport = if softswitch_transport == "tcp" {
        "t1"
    } else {
        "u1"
    };
    gw
}

fn gauge(gw: &Gateway, name: &str) -> u64 {
    *gw.stats()
        .get(&format!("sipgw_{name}"))
        .unwrap_or_else(|| panic!("no gauge {name}"))
}

fn register_many(gw: &Gateway, users: usize) {
    let codes: Vec<(usize, Option<i32>)> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..users)
            .map(|i| {
                s.spawn(move || {
                    let (u, p) = user(i);
                    (i, gw.phone("register.xml", &u, &p, 1, 20))
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let failed: Vec<_> = codes.iter().filter(|(_, c)| *c != Some(0)).collect();
    assert!(failed.is_empty(), "phones failed: {failed:?}\n{}", gw.log());
}

#[test]
fn phones_register_over_tcp_with_the_softswitch_over_udp_and_over_tcp() {
    const N: usize = 20;
    for leg in ["udp", "tcp"] {
        let gw = start(&format!("tcp-register-{leg}"), 2, TCP, leg);
        let mut softswitch = gw.softswitch("softswitch_register.xml", N);
        register_many(&gw, N);
        assert_eq!(
            softswitch.wait(Duration::from_secs(20)),
            Some(0),
            "the softswitch ({leg}) saw {N} REGISTERs with the asserted identity; its log:\n{}",
            gw.softswitch_log()
        );
        let registered = registered_users(&gw.softswitch_log());
        assert_eq!(registered.len(), N, "{leg}: {registered:?}");
        assert_eq!(gw.stat("forwarded_digest"), N as u64, "{leg}");
        assert_eq!(gw.stat("responses_forwarded"), N as u64, "{leg}");
        assert_eq!(
            gw.stat("tcp_accepted"),
            N as u64,
            "{leg}: one connection per phone"
        );
        // Every 407 and every 200 went back over the phone's own connection.
        assert!(gw.stat("stream_messages_out") >= 2 * N as u64, "{leg}");
        if leg == "tcp" {
            assert!(
                gw.stat("stream_connects") >= 1,
                "sipgw connected to the softswitch"
            );
            // Path names TCP for the softswitch leg.
            assert!(
                gw.softswitch_log().contains(";transport=tcp;lr"),
                "{}",
                gw.softswitch_log()
            );
        } else {
            assert_eq!(gw.stat("stream_connects"), 0);
        }
    }
}

#[test]
fn a_call_over_tcp_completes_in_both_directions() {
    let gw = start("tcp-call", 2, TCP, "tcp");
    let (u, p) = user(7);
    // The phone calls and hangs up.
    let mut softswitch = gw.softswitch("softswitch_call.xml", 1);
    assert_eq!(
        gw.phone("phone_call_caller.xml", &u, &p, 1, 20),
        Some(0),
        "caller: {}",
        gw.log()
    );
    assert_eq!(softswitch.wait(Duration::from_secs(10)), Some(0));
    assert_eq!(gw.stat("dialog_passed"), 1, "the BYE passed on our Route");
    drop(softswitch);
    // The softswitch hangs up: its BYE follows the Record-Route (transport=tcp) to sipgw and
    // goes down the phone's connection, named by the flow token.
    let mut softswitch = gw.softswitch("softswitch_call_hangup.xml", 1);
    assert_eq!(
        gw.phone("phone_call_callee.xml", &u, &p, 1, 20),
        Some(0),
        "phone: {}",
        gw.log()
    );
    assert_eq!(softswitch.wait(Duration::from_secs(10)), Some(0));
    assert!(
        gw.stat("downstream_requests") >= 1,
        "the BYE went downstream"
    );
    assert_eq!(
        gw.stat("proxy_not_our_via") + gw.stat("proxy_unroutable") + gw.stat("stream_unavailable"),
        0,
        "{}",
        gw.log()
    );
}

#[test]
fn the_softswitch_calls_a_phone_registered_over_tcp_down_its_connection() {
    for softswitch_transport in ["udp", "tcp"] {
        let gw = start(
            &format!("tcp-callee-{softswitch_transport}"),
            2,
            TCP,
            softswitch_transport,
        );
        let (u, p) = user(4);
        // The softswitch answers the REGISTER, then sends an INVITE to the registered Contact
        // routed by the REGISTER's Path: sipgw takes it down the phone's TCP connection (the
        // phone listens on nothing else), and the ACK and BYE follow.
        let mut softswitch = gw.softswitch("softswitch_register_then_call.xml", 1);
        assert_eq!(
            gw.phone("phone_register_then_answer.xml", &u, &p, 1, 20),
            Some(0),
            "phone (softswitch over {softswitch_transport}): {}",
            gw.log()
        );
        assert_eq!(
            softswitch.wait(Duration::from_secs(10)),
            Some(0),
            "softswitch: {}",
            gw.softswitch_log()
        );
        // INVITE, ACK and BYE went downstream; the phone's 200s went back upstream.
        assert!(gw.stat("downstream_requests") >= 3, "{}", gw.log());
        assert!(gw.stat("responses_forwarded") >= 2, "{}", gw.log());
        assert_eq!(gw.stat("tcp_accepted"), 1, "one connection, used both ways");
        assert_eq!(
            gw.stat("proxy_not_our_via")
                + gw.stat("proxy_unroutable")
                + gw.stat("stream_unavailable"),
            0,
            "{}",
            gw.log()
        );
    }
}

#[test]
fn brute_force_over_tcp_is_suspended_and_its_connection_closed() {
    let gw = start(
        "tcp-bruteforce",
        2,
        &format!("max_retry = 6\nfailed_suspend = 60\n{TCP}"),
        "udp",
    );
    let (u, p) = user(3);
    assert_eq!(
        gw.phone("bruteforce.xml", &u, "guess", 1, 20),
        Some(0),
        "407s then 403: {}",
        gw.log()
    );
    assert_eq!(gw.stat("suspensions"), 1);
    assert_eq!(gw.stat("wrong_password"), 6);
    // The ban that comes with the suspension closed the attacker's connection...
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.stat("stream_closed_by_ban") == 0 {
        assert!(
            Instant::now() < deadline,
            "connection not closed: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...and a new connection with the right password is closed at its first message.
    assert_ne!(gw.phone("register.xml", &u, &p, 1, 3), Some(0), "suspended");
    assert!(gw.stat("connections_closed_by_policy") >= 1, "{}", gw.log());
    assert_eq!(
        gw.stat("upstream_requests"),
        0,
        "the softswitch got nothing"
    );
    assert_eq!(gauge(&gw, "connections"), 0);
}

#[test]
fn a_large_invite_over_udp_reaches_the_softswitch_over_tcp() {
    let mut gw = start("tcp-large", 1, TCP, "udp");
    gw.phone_transport = "u1";
    // The stand-in listens on TCP only: the INVITE can only reach it over TCP.
    gw.softswitch_transport = "t1";
    let mut softswitch = gw.softswitch("softswitch_large_invite.xml", 1);
    let (u, p) = user(1);
    assert_eq!(
        gw.phone("phone_large_invite.xml", &u, &p, 1, 20),
        Some(0),
        "the phone got the 486 back over UDP: {}",
        gw.log()
    );
    assert_eq!(
        softswitch.wait(Duration::from_secs(10)),
        Some(0),
        "the softswitch got the whole INVITE over TCP: {}",
        gw.softswitch_log()
    );
    assert!(gw.softswitch_log().contains("large invite via=SIP/2.0/TCP"));
    assert_eq!(gw.stat("upstream_switched_to_tcp"), 1);
    assert_eq!(gw.stat("stream_connects"), 1);
}

/// A REGISTER without credentials from `local` (answered 407 by sipgw).
fn register(local: SocketAddr, call: u32) -> String {
    format!(
        "REGISTER sip:sipgw.test SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-raw-{call}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:2000@sipgw.test>;tag=raw{call}\r\nTo: \
         <sip:2000@sipgw.test>\r\nCall-ID: raw-{call}@{local}\r\nCSeq: 1 REGISTER\r\nContact: \
         <sip:2000@{local};transport=tcp>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Read until `count` complete responses (by Content-Length: 0 ends) or the timeout.
fn read_responses(s: &mut TcpStream, count: usize, timeout: Duration) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        let text = String::from_utf8_lossy(&got).to_string();
        if text.matches("SIP/2.0 ").count() >= count && text.ends_with("\r\n\r\n") {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn connect(gw: &Gateway) -> TcpStream {
    let s = TcpStream::connect(gw.sip).expect("connect to sipgw over TCP");
    s.set_nodelay(true).unwrap();
    s
}

#[test]
fn framing_on_a_real_connection_split_coalesced_and_keep_alive() {
    let gw = start("tcp-framing", 2, TCP, "udp");
    let mut s = connect(&gw);
    let local = s.local_addr().unwrap();
    // One request in 40 segments, 10 ms apart.
    let req = register(local, 1);
    for chunk in req.as_bytes().chunks(req.len().div_ceil(40)) {
        s.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let first = read_responses(&mut s, 1, Duration::from_secs(5));
    assert!(first.starts_with("SIP/2.0 407 "), "{first:?}");
    assert!(first.contains("branch=z9hG4bK-raw-1"), "{first:?}");
    // Two requests in one segment: two answers, in order.
    let two = format!("{}{}", register(local, 2), register(local, 3));
    s.write_all(two.as_bytes()).unwrap();
    let both = read_responses(&mut s, 2, Duration::from_secs(5));
    assert_eq!(both.matches("SIP/2.0 407 ").count(), 2, "{both:?}");
    let (a, b) = (
        both.find("z9hG4bK-raw-2").unwrap(),
        both.find("z9hG4bK-raw-3").unwrap(),
    );
    assert!(a < b, "in order: {both:?}");
    // RFC 5626 keep-alive: CRLFCRLF is answered with CRLF.
    s.write_all(b"\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).expect("pong");
    assert_eq!(&pong, b"\r\n");
    assert_eq!(gw.stat("stream_keepalives"), 1);
    assert_eq!(gw.stat("stream_messages_in"), 3);
    assert_eq!(gw.stat("challenged"), 3);
    // A message without Content-Length closes the connection (RFC 3261 §18.3).
    let bad = register(local, 4).replace("Content-Length: 0\r\n", "");
    s.write_all(bad.as_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert_eq!(gw.stat("stream_framing_errors"), 1);
}

#[test]
fn a_slowloris_client_is_cut_at_the_message_deadline() {
    let gw = start(
        "tcp-slowloris",
        1,
        "[tcp]\nenabled = true\nmessage_deadline = 2\n",
        "udp",
    );
    let mut s = connect(&gw);
    let local = s.local_addr().unwrap();
    let req = register(local, 1);
    let started = Instant::now();
    // One byte every 100 ms: the connection stays busy but never completes a message.
    let mut closed_after = None;
    for b in req.as_bytes().iter().take(60) {
        if s.write_all(&[*b]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        s.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 1];
        let eof = matches!(s.read(&mut probe), Ok(0));
        s.set_nonblocking(false).unwrap();
        if eof {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let after = closed_after.expect("the connection was not closed within 6 s");
    assert!(
        after >= Duration::from_millis(1900) && after < Duration::from_secs(4),
        "closed after {after:?}, deadline 2 s"
    );
    assert_eq!(gw.stat("stream_deadline_closed"), 1);
    assert_eq!(gw.stat("stream_messages_in"), 0);
}

#[test]
fn connection_caps_refuse_the_excess_per_source() {
    let gw = start(
        "tcp-caps",
        2,
        "[tcp]\nenabled = true\nmax_per_source = 3\n",
        "udp",
    );
    let mut kept: Vec<TcpStream> = (0..3).map(|_| connect(&gw)).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gauge(&gw, "connections") < 3 {
        assert!(Instant::now() < deadline, "3 connections accepted");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The fourth is accepted by the kernel and closed by sipgw at once.
    let mut fourth = connect(&gw);
    fourth
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(matches!(fourth.read(&mut b), Ok(0) | Err(_)), "closed");
    assert_eq!(gw.stat("stream_refused_per_source"), 1);
    // The three still work.
    let local = kept[0].local_addr().unwrap();
    kept[0].write_all(register(local, 9).as_bytes()).unwrap();
    let r = read_responses(&mut kept[0], 1, Duration::from_secs(5));
    assert!(r.starts_with("SIP/2.0 407 "), "{r:?}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn ten_thousand_idle_connections_stay_open_and_cheap() {
    const N: usize = 10_000;
    // This process holds the client ends: raise its descriptor limit to the hard one.
    let mut limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current = limit.maximum;
    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    assert!(
        hard >= N as u64 + 512,
        "the open-file limit ({hard}) is below {N} connections: raise it (ulimit -Hn)"
    );
    let gw = start(
        "tcp-10k",
        2,
        "[tcp]\nenabled = true\nmax_per_source = 20000\n",
        "udp",
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(gw.proc.pid());
    let mut conns = Vec::with_capacity(N);
    for _ in 0..N {
        conns.push(TcpStream::connect(gw.sip).expect("connect"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while gauge(&gw, "connections") < N as u64 {
        assert!(
            Instant::now() < deadline,
            "{} of {N} connections open",
            gauge(&gw, "connections")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(600));
    let after = rss_kib(gw.proc.pid());
    let heap = gauge(&gw, "connection_heap_bytes");
    let rss_per = (after.saturating_sub(before) * 1024) / N as u64;
    let heap_per = heap / N as u64;
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    println!(
        "{N} idle TCP connections: sipgw RSS {before} KiB -> {after} KiB ({rss_per} bytes per \
         connection), connection heap {heap} bytes ({heap_per} per connection); kernel: {}",
        sockstat
            .lines()
            .find(|l| l.starts_with("TCP:"))
            .unwrap_or("")
    );
    assert!(
        heap_per <= 1024,
        "{heap_per} heap bytes per idle connection"
    );
    assert!(rss_per <= 4096, "{rss_per} RSS bytes per idle connection");
    // They all still work: a request on the last one is answered on it.
    let last = conns.last_mut().unwrap();
    let local = last.local_addr().unwrap();
    last.write_all(register(local, 1).as_bytes()).unwrap();
    let r = read_responses(last, 1, Duration::from_secs(5));
    assert!(r.starts_with("SIP/2.0 407 "), "{r:?}");
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gauge(&gw, "connections") > 0 {
        assert!(Instant::now() < deadline, "connections not released");
        std::thread::sleep(Duration::from_millis(100));
    }
}
