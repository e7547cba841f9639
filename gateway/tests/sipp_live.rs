//! sipp, the real SIP client, against the engine over loopback UDP.
//!
//! A minimal test driver puts the engine behind one UDP socket on 127.0.0.1 and plays the
//! softswitch too (answers forwarded requests with 200 OK). What is tested here is that sipp's own
//! digest implementation interoperates with the engine's challenges, nonces and verification in
//! every challenge mode; the `sipgw` binary with sipp as phones and softswitch is tested in
//! `gateway_live.rs`.
//!
//! Needs `sipp` (Debian package sip-tester): `./scripts/install-deps` as root installs it. A
//! missing sipp fails the test with that message; it is never skipped.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sipgw::engine::{Verdict, WallClock};
use sipgw::event::Event;
use sipgw::sip::{self, HeaderName, Message};
use sipgw::{Config, CredentialStore, Engine, Secrets};
use support::{free_port, scenario, sipp_binary};

struct Live {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(Engine, Vec<Event>)>>,
}

impl Live {
    fn start(config: &str, credentials: &str) -> Live {
        let config = Config::parse(config, "live.toml", None).unwrap();
        let store =
            CredentialStore::parse(credentials, "live-creds.toml", &config.auth.realm).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let clock = quanta::Clock::new();
            let wall = WallClock {
                origin: clock.now(),
                origin_unix: SystemTime::now().duration_since(UNIX_EPOCH).unwrap(),
            };
            let mut random = [0u8; 64];
            for (i, b) in random.iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(31) ^ (wall.origin_unix.subsec_nanos() as u8);
            }
            let mut engine = Engine::new(
                &config,
                Arc::new(store),
                &Secrets::new(&config, random),
                wall,
            );
            let mut events = Vec::new();
            let mut buf = vec![0u8; 65535];
            let mut reply = vec![0u8; 65535];
            while !stop2.load(Ordering::Relaxed) {
                let now = clock.now();
                if engine.poll_timeout().is_some_and(|t| t <= now) {
                    engine.handle_timeout(now);
                }
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                match engine.handle(clock.now(), peer, &buf[..n], &mut reply) {
                    Verdict::Reply { len, .. } => {
                        sock.send_to(&reply[..len], peer).unwrap();
                    }
                    Verdict::Forward(_) => {
                        // The softswitch stand-in: 200 OK straight back.
                        let ok = ok_response(&buf[..n]);
                        sock.send_to(&ok, peer).unwrap();
                    }
                    Verdict::Pass(_) | Verdict::Drop(_) => {}
                }
                events.extend(std::iter::from_fn(|| engine.poll_event()));
            }
            (engine, events)
        });
        Live {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> (Engine, Vec<Event>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn ok_response(req: &[u8]) -> Vec<u8> {
    let msg = Message::parse(req).unwrap();
    let mut out = b"SIP/2.0 200 OK\r\n".to_vec();
    for h in msg.headers() {
        if matches!(
            h.name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::To
        ) {
            out.extend_from_slice(h.name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            if h.name == HeaderName::To && sip::header_param(h.value, b"tag").is_none() {
                out.extend_from_slice(b";tag=softswitch");
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// Runs sipp as a client for `user` with `password`; returns its exit code (0: every call
/// succeeded).
fn sipp(
    gw: SocketAddr,
    scenario_file: &str,
    user: &str,
    password: &str,
    calls: usize,
    timeout_s: u32,
) -> i32 {
    let dir =
        std::env::temp_dir().join(format!("sipgw-sipp-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    // SIPGW_KEEP_SIPP_LOGS=1 keeps sipp's message and error logs for debugging.
    let keep = std::env::var_os("SIPGW_KEEP_SIPP_LOGS").is_some();
    let out = Command::new(sipp_binary())
        .current_dir(&dir)
        .arg("-sf")
        .arg(scenario(scenario_file))
        .args(["-s", user, "-au", user, "-ap", password])
        // No -p: sipp binds a free port itself (no race with other tests' sockets).
        .args(["-i", "127.0.0.1"])
        .args(["-m", &calls.to_string(), "-r", "100", "-l", "10"])
        .args([
            "-timeout",
            &format!("{timeout_s}s"),
            "-timeout_error",
            "-nostdin",
        ])
        .args(if keep {
            &["-trace_msg", "-trace_err"][..]
        } else {
            &[][..]
        })
        .arg(gw.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run sipp");
    if keep {
        eprintln!("sipp logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    out.status.code().unwrap_or(-1)
}

fn users(n: usize) -> (Vec<(String, String)>, String) {
    let list: Vec<(String, String)> = (0..n)
        .map(|i| (format!("user{i:03}"), format!("pw-{i}-x")))
        .collect();
    let creds = list
        .iter()
        .map(|(u, p)| format!("[[account]]\nname = \"{u}\"\npassword = \"{p}\"\n"))
        .collect::<String>();
    (list, creds)
}

#[test]
fn sipp_registers_ten_users_with_its_own_digest() {
    let (list, creds) = users(10);
    for mode in ["1", "2", "3"] {
        let live = Live::start(&format!("[auth]\nchallenge_mode = {mode}\n"), &creds);
        // One sipp process per user (sipp's digest credentials are per process), all at once.
        let codes: Vec<i32> = std::thread::scope(|s| {
            let runs: Vec<_> = list
                .iter()
                .map(|(u, p)| s.spawn(|| sipp(live.addr, "register.xml", u, p, 3, 20)))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let (engine, _) = live.stop();
        let c = engine.counters();
        assert!(
            codes.iter().all(|&c| c == 0),
            "mode {mode}: sipp exit codes {codes:?}; counters: {c:?}"
        );
        assert_eq!(c.forwarded_digest, 30, "mode {mode}: {c:?}");
        assert!(c.challenged >= 30, "{c:?}");
        assert_eq!(
            c.wrong_password + c.unknown_user + c.forged_nonce + c.replayed_nonce,
            0,
            "{c:?}"
        );
    }
}

#[test]
fn sipp_brute_force_is_suspended_and_then_dropped() {
    let (_, creds) = users(1);
    let live = Live::start("", &creds);
    // Wrong passwords in one session: re-challenges, then 403 (the scenario checks both).
    assert_eq!(
        sipp(live.addr, "bruteforce.xml", "user000", "guess", 1, 20),
        0,
        "407s then 403"
    );
    // The right password from the same address now gets no answer at all: sipp times out.
    assert_ne!(
        sipp(live.addr, "register.xml", "user000", "pw-0-x", 1, 3),
        0,
        "suspended: must not register"
    );
    let (engine, events) = live.stop();
    let c = engine.counters();
    assert_eq!(c.wrong_password, 6, "{c:?}");
    assert_eq!(c.suspensions, 1, "{c:?}");
    assert_eq!(c.forwarded_digest, 0, "{c:?}");
    assert!(c.banned_dropped >= 1, "{c:?}");
    assert!(
        events.iter().any(|e| matches!(e, Event::TerminalSuspended { username, failures: 6, .. } if username.as_bytes() == b"user000")),
        "{events:?}"
    );
}
