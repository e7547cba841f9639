//! sipgw-bench end to end: the real sipgw runtime on loopback (started in-process through
//! `sipgw::runtime`, with free ports and a scratch configuration), the softswitch stand-in as
//! its softswitch, and the `sipgw-bench` binary as phones and attackers, its `--json` report
//! parsed and checked against what the stand-in counted.
//!
//! Tests run one at a time (a lock): they share two cores, and a flood next to a latency
//! measurement would make both meaningless. Every run is bounded by `--duration`/`--count`.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use sipgw::runtime::{self, Runtime};
use sipgw_bench::softswitch::StandIn;

static SERIAL: Mutex<()> = Mutex::new(());
static NEXT: AtomicUsize = AtomicUsize::new(0);

const REALM: &str = "bench.test";

fn user(i: usize) -> (String, String) {
    (format!("{}", 4000 + i), format!("pw-{i}-secret"))
}

/// A gateway in front of a stand-in, in a scratch directory removed on drop.
struct Chain {
    _serial: MutexGuard<'static, ()>,
    dir: PathBuf,
    config: PathBuf,
    gateway: Option<Runtime>,
    standin: StandIn,
}

impl Chain {
    fn start(name: &str, users: usize, workers: usize, auth: &str) -> Chain {
        Chain::start_with(name, users, workers, auth, "")
    }

    /// As [`Chain::start`], with `sections` (whole TOML sections, e.g. `[tcp]`) appended to the
    /// configuration.
    fn start_with(name: &str, users: usize, workers: usize, auth: &str, sections: &str) -> Chain {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let dir = std::env::temp_dir().join(format!(
            "sipgw-bench-it-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let creds: String = (0..users)
            .map(|i| {
                let (u, p) = user(i);
                format!("[[account]]\nname = \"{u}\"\npassword = \"{p}\"\n\n")
            })
            .collect();
        std::fs::write(dir.join("users.toml"), creds).unwrap();
        let standin = StandIn::start("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let listen = free_udp_port();
        let config = dir.join("sipgw.toml");
        std::fs::write(
            &config,
            format!(
                "credentials = \"users.toml\"\n\n[gateway]\nlisten = \"{listen}\"\n\
                 softswitch = \"{}\"\nworkers = {workers}\n\n[auth]\nrealm = \"{REALM}\"\n{auth}\n\n\
                 {sections}\n",
                standin.addr()
            ),
        )
        .unwrap();
        let loaded = runtime::load(&config).expect("test configuration");
        let gateway = Runtime::start(loaded).expect("start the gateway");
        Chain {
            _serial: serial,
            dir,
            config,
            gateway: Some(gateway),
            standin,
        }
    }

    /// Run sipgw-bench with `args` against this chain (`--config` added); its output.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sipgw-bench"));
        cmd.args(["--progress", "never"]).args(args);
        cmd.arg("--config").arg(&self.config);
        cmd.output().expect("run sipgw-bench")
    }

    /// Run with `--json`; the parsed report (the run must succeed).
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "sipgw-bench {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "--json output does not parse ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_udp_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no unsigned {path} in {v:#}"))
}

fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number {path} in {v:#}"))
}

#[test]
fn register_200_users_every_one_succeeds_and_reaches_the_softswitch_authenticated() {
    let users = 200;
    let chain = Chain::start("register", users, 2, "");
    let report = chain.json(&["register", "-n", "200", "--timeout-ms", "10000"]);
    assert_eq!(report["command"], "register");
    assert_eq!(u(&report, "/register/attempted"), users as u64);
    assert_eq!(
        u(&report, "/register/succeeded"),
        users as u64,
        "{report:#}"
    );
    assert_eq!(u(&report, "/register/failed"), 0);
    assert_eq!(u(&report, "/register/timed_out"), 0);
    // Each registration was challenged once and answered once.
    assert_eq!(u(&report, "/register/challenges"), users as u64);
    assert_eq!(u(&report, "/register/datagrams_sent"), 2 * users as u64);
    assert_eq!(f(&report, "/register/success_rate"), 1.0);
    let lat = &report["register"]["latency"];
    assert_eq!(u(lat, "/samples"), users as u64);
    assert!(u(lat, "/min_us") <= u(lat, "/p50_us") && u(lat, "/p50_us") <= u(lat, "/max_us"));
    // The stand-in saw exactly one authenticated REGISTER per user, without our credentials;
    // the generator's own query of it agrees.
    let seen = chain.standin.snapshot();
    assert_eq!(seen.register, users as u64);
    assert_eq!(seen.register_asserted, users as u64);
    assert_eq!(seen.class_register, users as u64);
    assert_eq!(seen.with_credentials, 0);
    assert_eq!(u(&report, "/softswitch/register_asserted"), users as u64);
}

#[test]
fn register_over_tcp_every_one_succeeds_and_reaches_the_softswitch_authenticated() {
    let users = 200;
    let chain = Chain::start_with("register-tcp", users, 2, "", "[tcp]\nenabled = true\n");
    // Over TCP the gateway knows its softswitch by IP address alone (docs/configuration.md):
    // the stand-in is on 127.0.0.1, so the phones come from another loopback address.
    let report = chain.json(&[
        "register",
        "--bind",
        "127.0.0.5",
        "-n",
        "200",
        "--transport",
        "tcp",
        "--sockets",
        "2",
        "--connections",
        "3",
        "--timeout-ms",
        "10000",
        "--duration",
        "30",
    ]);
    let r = &report["register"];
    assert_eq!(r["transport"], "tcp", "{report:#}");
    assert_eq!(u(r, "/attempted"), users as u64);
    assert_eq!(u(r, "/succeeded"), users as u64, "{report:#}");
    assert_eq!(u(r, "/failed"), 0, "{report:#}");
    assert_eq!(u(r, "/timed_out"), 0, "{report:#}");
    assert_eq!(u(r, "/challenges"), users as u64);
    // Two requests and two responses per registration, over 2 × 3 connections kept open.
    assert_eq!(u(r, "/datagrams_sent"), 2 * users as u64);
    assert_eq!(u(r, "/datagrams_received"), 2 * users as u64);
    assert_eq!(u(r, "/send_errors"), 0);
    assert_eq!(u(r, "/stray"), 0);
    assert_eq!(u(r, "/connections"), 6);
    assert_eq!(u(r, "/connections_lost"), 0, "{report:#}");
    assert_eq!(f(r, "/success_rate"), 1.0);
    assert_eq!(u(&r["latency"], "/samples"), users as u64);
    let seen = chain.standin.snapshot();
    assert_eq!(seen.register_asserted, users as u64);
    assert_eq!(seen.class_register, users as u64);
    assert_eq!(seen.with_credentials, 0);
}

#[test]
fn a_tcp_connection_the_gateway_closes_is_counted_and_ends_the_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir =
        std::env::temp_dir().join(format!("sipgw-bench-it-tcp-closed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.toml");
    std::fs::write(&users, "[[account]]\nname = \"4000\"\npassword = \"pw\"\n").unwrap();
    // A "gateway" that accepts the 2 × 2 connections and closes each at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = std::thread::spawn(move || {
        for _ in 0..4 {
            drop(listener.accept().unwrap());
        }
    });
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sipgw-bench"))
        .args([
            "--progress",
            "never",
            "--json",
            "register",
            "--transport",
            "tcp",
        ])
        .args([
            "--sockets",
            "2",
            "--connections",
            "2",
            "-n",
            "1000",
            "--duration",
            "20",
        ])
        .args([
            "--timeout-ms",
            "20000",
            "--gateway",
            &addr.to_string(),
            "--users",
        ])
        .arg(&users)
        .output()
        .unwrap();
    closer.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Well before the duration or the timeout: no connection left, nothing more to wait for.
    assert!(started.elapsed() < Duration::from_secs(10));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["register"];
    assert_eq!(u(r, "/connections"), 4);
    assert_eq!(u(r, "/connections_lost"), 4, "{report:#}");
    let reasons: u64 = r["connection_errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(reasons, 4, "{report:#}");
    assert_eq!(u(r, "/succeeded"), 0);
    assert_eq!(u(r, "/timed_out"), 0, "{report:#}");
    assert_eq!(u(r, "/failed"), u(r, "/attempted"), "{report:#}");
}

#[test]
fn bruteforce_is_suspended_within_max_retry_and_no_guess_reaches_the_softswitch() {
    let max_retry = 4u64;
    let chain = Chain::start(
        "bruteforce",
        10,
        2,
        // The account budget runs per aligned period of failed_suspend seconds: the longest
        // one, so that the end of the attack and the checks below fall into the same period.
        &format!("max_retry = {max_retry}\nfailed_suspend = 3600\n"),
    );
    let period = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 3600
    };
    let started_in = period();
    let (victim, _) = user(0);
    // The victim's phone registered from 127.0.0.1 before the attack: a known-good source.
    let before = chain.json(&["register", "-n", "1", "--bind", "127.0.0.1"]);
    assert_eq!(u(&before, "/register/succeeded"), 1);
    let registered = chain.standin.snapshot().requests;
    let report = chain.json(&[
        "bruteforce",
        "--user",
        &victim,
        "--sources",
        "2",
        "--ports",
        "4",
        "--source-base",
        "127.0.1.1",
        "--answer-timeout-ms",
        "1000",
        "--duration",
        "20",
    ]);
    let b = &report["bruteforce"];
    assert_eq!(u(b, "/terminals"), 2);
    assert_eq!(u(b, "/terminals_suspended"), 2, "{report:#}");
    // The account guarantee (docs/configuration.md): from both sources and all their ports
    // together, at most account_budget (= max_retry) guesses are evaluated before the account
    // goes silent for new sources, whatever the workers.
    let mut evaluated = 0;
    for t in b["per_terminal"].as_array().unwrap() {
        evaluated += u(t, "/answered_before_silence");
        assert_eq!(u(t, "/accepted"), 0);
    }
    assert!((1..=max_retry).contains(&evaluated), "{report:#}");
    assert_eq!(u(b, "/guesses_accepted"), 0);
    assert!(u(b, "/guesses_unanswered") + u(b, "/probes_unanswered") > 0);
    // Nothing of the attack reached the softswitch.
    assert_eq!(chain.standin.snapshot().requests, registered);
    assert_eq!(u(&report, "/softswitch/class_bruteforce"), 0);

    // The protection is real: the victim's right password from the attacker's address is
    // dropped too (banned, or the account's budget is used up), while the phone's known-good
    // address still registers.
    let from_attacker = chain.json(&[
        "register",
        "-n",
        "1",
        "--bind",
        "127.0.1.1",
        "--timeout-ms",
        "1000",
    ]);
    // (Unless the hour turned during the test: then a fresh period's budget lets the right
    // password in, as documented; the test cannot tell that from a fault, so it says so.)
    if period() == started_in {
        assert_eq!(u(&from_attacker, "/register/succeeded"), 0);
        assert_eq!(u(&from_attacker, "/register/timed_out"), 1);
    } else {
        eprintln!("the budget period turned during the test: the attacker-address check is void");
    }
    let elsewhere = chain.json(&["register", "-n", "1", "--bind", "127.0.0.1"]);
    assert_eq!(u(&elsewhere, "/register/succeeded"), 1);
}

#[test]
fn flood_is_bounded_in_time_and_count_and_never_reaches_the_softswitch() {
    let chain = Chain::start("flood", 10, 2, "");
    let started = Instant::now();
    let report = chain.json(&[
        "flood",
        "--duration",
        "1",
        "--flood-rate",
        "50000",
        "--flood-source-base",
        "127.0.2.1",
    ]);
    assert!(started.elapsed() < Duration::from_secs(10));
    let fl = &report["flood"];
    assert!(u(fl, "/sent") > 0, "{report:#}");
    assert!(f(fl, "/elapsed_s") < 1.5, "{report:#}");
    // The gateway challenged what it had time for; none of it was forwarded.
    assert!(u(fl, "/responses/407") > 0, "{report:#}");
    assert_eq!(chain.standin.snapshot().class_flood, 0);

    let report = chain.json(&[
        "flood",
        "--duration",
        "30",
        "--flood-count",
        "1000",
        "--flood-source-base",
        "127.0.2.1",
    ]);
    assert_eq!(
        u(&report, "/flood/sent") + u(&report, "/flood/send_errors"),
        1000
    );
}

#[test]
fn banned_flood_is_dropped_by_the_gateway() {
    let chain = Chain::start("flood-banned", 10, 1, "max_retry = 3\n");
    let report = chain.json(&[
        "flood",
        "--mode",
        "banned",
        "--duration",
        "1",
        "--flood-rate",
        "20000",
        "--flood-source-base",
        "127.0.3.1",
    ]);
    let fl = &report["flood"];
    assert_eq!(u(fl, "/ban_phase/terminals_suspended"), u(fl, "/sockets"));
    assert!(u(fl, "/sent") > 0);
    assert_eq!(
        u(fl, "/received"),
        0,
        "a banned source got answers: {report:#}"
    );
    assert_eq!(chain.standin.snapshot().requests, 0);
}

#[test]
fn mixed_reports_the_legitimate_success_rate_under_attack() {
    let chain = Chain::start("mixed", 50, 2, "");
    for attack in ["flood", "bruteforce"] {
        let report = chain.json(&[
            "mixed",
            "--attack",
            attack,
            "--duration",
            "2",
            "--rate",
            "100",
            "--flood-rate",
            "20000",
            "--source-base",
            "127.0.5.1",
            "--flood-source-base",
            "127.0.4.1",
        ]);
        let m = &report["mixed"];
        assert_eq!(m["attack"], attack);
        let legit = &m["legitimate"];
        let attempted = u(legit, "/attempted");
        let ok = u(legit, "/succeeded");
        let finished = ok + u(legit, "/failed") + u(legit, "/timed_out");
        assert!(attempted > 0);
        assert_eq!(finished + u(legit, "/unfinished"), attempted);
        let rate = f(m, "/legitimate_success_rate");
        assert!(
            (rate - ok as f64 / finished as f64).abs() < 1e-9,
            "{report:#}"
        );
        // Every registration that succeeded went through the softswitch.
        assert!(u(&report, "/softswitch/class_register") >= ok);
        match attack {
            "flood" => assert!(u(m, "/flood/sent") > 0),
            _ => {
                assert!(u(m, "/bruteforce/guesses_sent") > 0);
                assert_eq!(u(m, "/bruteforce/guesses_accepted"), 0);
                assert_eq!(u(&report, "/softswitch/class_bruteforce"), 0);
            }
        }
    }
}

#[test]
fn the_table_report_and_errors_are_readable() {
    let chain = Chain::start("table", 20, 1, "");
    let out = chain.run(&["register"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for row in [
        "succeeded",
        "registrations/s",
        "latency p50",
        "reached the softswitch",
    ] {
        assert!(text.contains(row), "no {row:?} in:\n{text}");
    }
    // Without a gateway address the command says what is missing.
    let out = Command::new(env!("CARGO_BIN_EXE_sipgw-bench"))
        .args(["register", "--users"])
        .arg(Path::new(&chain.dir).join("users.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--gateway"));
}
