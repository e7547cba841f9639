//! Runs one engine decision in a loop, for profilers:
//!
//! ```sh
//! cargo build --release -p sipgw --example decide
//! valgrind --tool=callgrind target/release/examples/decide challenge 20000
//! ```
//!
//! Decisions: `challenge` (REGISTER without credentials), `forward` (valid credentials, no
//! qop, so the same datagram can be repeated), `batch-forward` (32 phones' valid requests per
//! `handle_batch`, their digests hashed together), `suspended` (terminal suspended), `parse`, and
//! `core-forward` (the same forward through the whole core, `Gateway`: the engine's decision
//! and the proxy's rewrite of the message parsed once).
//! Prints the number of iterations that had the expected outcome.

use std::sync::Arc;
use std::time::Duration;

use quanta::Clock;
use sipgw::engine::{DropReason, Verdict, WallClock};
use sipgw::{Config, CredentialStore, Engine, Secrets};

#[path = "../benches/support/register.rs"]
mod support;
use support::{auth_header_of, register};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "challenge".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let config = Config::parse(
        "[auth]\nban_source_on_suspend = false\nsource_max_retry = 0\n",
        "decide",
        None,
    )
    .unwrap();
    // alice, and 32 phones for `batch-forward`.
    let accounts: String = std::iter::once("alice".to_owned())
        .chain((0..32).map(|i| format!("phone{i}")))
        .map(|name| format!("[[account]]\nname = \"{name}\"\npassword = \"secret\"\n"))
        .collect();
    let store = CredentialStore::parse(&accounts, "creds", "sipgw").unwrap();
    let (clock, mock) = Clock::mock();
    mock.increment(Duration::from_secs(1000));
    let wall = WallClock {
        origin: clock.now(),
        origin_unix: Duration::from_secs(1_700_000_000),
    };
    let mut engine = Engine::new(
        &config,
        Arc::new(store),
        &Secrets::new(&config, [3; 64]),
        wall,
    );
    let peer = "198.18.0.2:5060".parse().unwrap();
    let mut reply = vec![0u8; 2048];
    let bare = register("call", 1, "");
    let Verdict::Reply { len, .. } = engine.handle(clock.now(), peer, &bare, &mut reply) else {
        panic!("no challenge")
    };
    let text = String::from_utf8_lossy(&reply[..len]).into_owned();
    let at = text.find("nonce=\"").unwrap() + 7;
    let nonce = &text[at..at + sipgw::nonce::NONCE_LEN];
    let auth_of = |user: &str, password: &str| auth_header_of(user, nonce, password, None);
    let auth = |password: &str| auth_of("alice", password);
    let good = register("fwd", 2, &auth("secret"));
    let mut ok = 0usize;
    match which.as_str() {
        "challenge" => {
            for _ in 0..n {
                ok += usize::from(matches!(
                    engine.handle(clock.now(), peer, &bare, &mut reply),
                    Verdict::Reply { .. }
                ));
            }
        }
        "forward" => {
            for _ in 0..n {
                ok += usize::from(matches!(
                    engine.handle(clock.now(), peer, &good, &mut reply),
                    Verdict::Forward(_)
                ));
            }
        }
        "batch-forward" => {
            // 32 phones' valid requests per batch; `n` counts requests (n / 32 batches).
            let msgs: Vec<Vec<u8>> = (0..32)
                .map(|i| register(&format!("fwd-{i}"), 2, &auth_of(&format!("phone{i}"), "secret")))
                .collect();
            let dgs: Vec<sipgw::Datagram<'_>> =
                msgs.iter().map(|m| sipgw::Datagram::new(peer, m)).collect();
            let mut replies = vec![vec![0u8; 2048]; 32];
            let mut verdicts = vec![Verdict::default(); 32];
            for _ in 0..n / 32 {
                engine.handle_batch(clock.now(), &dgs, &mut replies, &mut verdicts);
                ok += verdicts
                    .iter()
                    .filter(|v| matches!(v, Verdict::Forward(_)))
                    .count();
            }
        }
        "suspended" => {
            for i in 0..6 {
                let _ = engine.handle(
                    clock.now(),
                    peer,
                    &register(&format!("s{i}"), 1, &auth("wrong")),
                    &mut reply,
                );
            }
            for _ in 0..n {
                let v = engine.handle(clock.now(), peer, &bare, &mut reply);
                ok += usize::from(v == Verdict::Drop(DropReason::TerminalSuspended));
            }
        }
        "parse" => {
            for _ in 0..n {
                ok += usize::from(sipgw::sip::Message::parse(std::hint::black_box(&good)).is_ok());
            }
        }
        "core-forward" => {
            use sipgw::flow::Flow;
            use sipgw::gateway::{Action, Gateway, Input};
            use sipgw::proxy::{Proxy, ProxyConfig};
            let pc = ProxyConfig::new(
                "198.18.0.1:5060".parse().unwrap(),
                "198.18.1.1:5060".parse().unwrap(),
                "sipgw",
                [5; 32],
            );
            let mut gw = Gateway::new(engine, Proxy::new(pc));
            let mut out = vec![0u8; 4096];
            let flow = Flow::udp(peer);
            for _ in 0..n {
                let a = gw.handle(clock.now(), Input { flow, bytes: &good }, &mut out);
                ok += usize::from(matches!(a, Action::Send { status: None, .. }));
            }
        }
        other => panic!(
            "unknown decision {other:?}: challenge, forward, batch-forward, suspended, parse or core-forward"
        ),
    }
    println!("{ok}/{n}");
}
