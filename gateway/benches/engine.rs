//! Criterion benchmarks of the sans-IO core: parse, digest verify, the four engine decisions
//! the issue sets targets for, and the whole core (`Gateway`: engine, then the proxy's rewrite
//! of the same parsed message). Run: `cargo bench -p sipgw --bench engine`.
//! Results and the machine they were measured on: `docs/benchmarks.md`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use quanta::Clock;
use sipgw::digest::{self, Credentials};
use sipgw::engine::{Verdict, WallClock};
use sipgw::md5x;
use sipgw::sip::Message;
use sipgw::{Config, CredentialStore, Engine, Secrets};

#[path = "support/register.rs"]
mod support;
use support::{auth_header_of, register};

const CREDS: &str = "[[account]]\nname = \"alice\"\npassword = \"secret\"\n";
const PEER: &str = "198.18.0.2:5060";

struct Setup {
    engine: Engine,
    clock: Clock,
    peer: SocketAddr,
    reply: Vec<u8>,
}

fn setup(config: &str) -> Setup {
    setup_with(config, CREDS)
}

fn setup_with(config: &str, creds: &str) -> Setup {
    let config = Config::parse(config, "bench.toml", None).unwrap();
    let store = CredentialStore::parse(creds, "creds", &config.auth.realm).unwrap();
    let (clock, mock) = Clock::mock();
    mock.increment(Duration::from_secs(1000));
    let wall = WallClock {
        origin: clock.now(),
        origin_unix: Duration::from_secs(1_700_000_000),
    };
    let engine = Engine::new(
        &config,
        Arc::new(store),
        &Secrets::new(&config, [3; 64]),
        wall,
    );
    Setup {
        engine,
        clock,
        peer: PEER.parse().unwrap(),
        reply: vec![0; 2048],
    }
}

impl Setup {
    fn send(&mut self, msg: &[u8]) -> Verdict {
        let now = self.clock.now();
        self.engine.handle(now, self.peer, msg, &mut self.reply)
    }

    /// Challenge, and return (realm, nonce) from the reply.
    fn nonce(&mut self) -> String {
        let v = self.send(&register("seed", 1, ""));
        let Verdict::Reply { len, .. } = v else {
            panic!("{v:?}")
        };
        let text = String::from_utf8_lossy(&self.reply[..len]).into_owned();
        let start = text.find("nonce=\"").unwrap() + 7;
        text[start..start + sipgw::nonce::NONCE_LEN].to_owned()
    }
}

fn auth_header(nonce: &str, password: &str, qop: Option<u32>) -> String {
    auth_header_of("alice", nonce, password, qop)
}

fn bench_parse(c: &mut Criterion) {
    let mut s = setup("");
    let nonce = s.nonce();
    let msg = register("parse", 2, &auth_header(&nonce, "secret", Some(1)));
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sip_register_with_auth", |b| {
        b.iter(|| Message::parse(black_box(&msg)).is_ok())
    });
    let m = Message::parse(&msg).unwrap();
    let value = m.header(sipgw::sip::HeaderName::Authorization).unwrap();
    g.bench_function("digest_credentials", |b| {
        b.iter(|| Credentials::parse(black_box(value)).is_ok())
    });
    g.bench_function("validate_register", |b| {
        b.iter(|| sipgw::validate::message(black_box(&m)).is_ok())
    });
    g.finish();
}

fn bench_digest(c: &mut Criterion) {
    let hv = b"Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    let creds = Credentials::parse(hv).unwrap();
    let ha1 = digest::ha1(b"Mufasa", b"testrealm@host.com", b"Circle Of Life");
    let job = digest::Job {
        ha1: &ha1,
        method: b"GET",
        credentials: &creds,
        body: b"",
    };
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_md5_qop_auth", |b| {
        b.iter(|| digest::verify(black_box(&job)))
    });
    let jobs = [job; 32];
    let mut out = [false; 32];
    g.throughput(Throughput::Elements(32));
    g.bench_function("verify_batch_32", |b| {
        b.iter(|| {
            digest::verify_batch(black_box(&jobs), &mut out);
            out[31]
        })
    });
    // The verifier the engine holds (HA2 cache), on every multi-buffer path this CPU offers.
    for path in md5x::Path::available() {
        let mut v = digest::Verifier::with_path(path);
        let name = format!("verifier_batch_32_{path:?}").to_lowercase();
        g.bench_function(name.as_str(), |b| {
            b.iter(|| {
                v.verify_batch(black_box(&jobs), &mut out);
                out[31]
            })
        });
    }
    // The MD5s alone: 16 messages of 150 bytes (three blocks, the size of a response input).
    let mut lanes = [md5x::Lane::default(); 16];
    let mut digests = [[0u8; 16]; 16];
    g.throughput(Throughput::Elements(16));
    for path in md5x::Path::available() {
        let name = format!("md5x_16x150_bytes_{path:?}").to_lowercase();
        g.bench_function(name.as_str(), |b| {
            b.iter(|| {
                for (i, lane) in lanes.iter_mut().enumerate() {
                    lane.clear();
                    lane.put(&[i as u8; 150]);
                }
                md5x::digest(path, black_box(&mut lanes), &mut digests);
                digests[15]
            })
        });
    }
    g.finish();
}

fn bench_engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));

    // (a) REGISTER without credentials → challenge.
    {
        let mut s = setup("");
        let msg = register("a-call", 1, "");
        assert!(matches!(s.send(&msg), Verdict::Reply { status: 407, .. }));
        g.bench_function("a_register_no_credentials_challenge", |b| {
            b.iter(|| s.send(black_box(&msg)))
        });
    }

    // (b) valid credentials → forward. qop=auth with a fresh nc per request (built outside
    // the timing), as a phone refreshing with a cached nonce does.
    {
        let mut s = setup("");
        let nonce = s.nonce();
        let mut nc = 0u32;
        let mut make = || {
            nc += 1;
            register("b-call", nc + 1, &auth_header(&nonce, "secret", Some(nc)))
        };
        let first = make();
        assert!(matches!(s.send(&first), Verdict::Forward(_)));
        g.bench_function("b_valid_credentials_forward", |b| {
            b.iter_batched(
                &mut make,
                |m| assert!(matches!(s.send(&m), Verdict::Forward(_))),
                BatchSize::SmallInput,
            )
        });
        // Without qop the same datagram can be sent again and again.
        let no_qop = register("b2-call", 2, &auth_header(&nonce, "secret", None));
        assert!(matches!(s.send(&no_qop), Verdict::Forward(_)));
        g.bench_function("b_valid_credentials_forward_no_qop", |b| {
            b.iter(|| s.send(black_box(&no_qop)))
        });
    }

    // (c) wrong password → counted, re-challenged (suspension and the account guard disabled
    // so the path stays the same; every iteration is a new session).
    {
        let mut s = setup("[auth]\nmax_retry = 0\nsource_max_retry = 0\naccount_budget = 0\n");
        let nonce = s.nonce();
        let auth = auth_header(&nonce, "wrong", None);
        let mut i = 0u64;
        let mut make = || {
            i += 1;
            register(&format!("c-{i}"), 1, &auth)
        };
        assert!(matches!(
            s.send(&make()),
            Verdict::Reply { status: 407, .. }
        ));
        g.bench_function("c_wrong_password_rechallenge", |b| {
            b.iter_batched(&mut make, |m| s.send(&m), BatchSize::SmallInput)
        });
    }

    // (d'') the account's budget is used up → a new source's guess is dropped unevaluated.
    {
        let mut s = setup("[auth]\nmax_retry = 0\nsource_max_retry = 0\n");
        let nonce = s.nonce();
        let auth = auth_header(&nonce, "wrong", None);
        let mut i = 0u64;
        let mut make = || {
            i += 1;
            register(&format!("p-{i}"), 1, &auth)
        };
        for _ in 0..6 {
            let _ = s.send(&make());
        }
        assert_eq!(
            s.send(&make()),
            Verdict::Drop(sipgw::engine::DropReason::AccountProtected)
        );
        g.bench_function("d_account_protected_drop", |b| {
            b.iter_batched(&mut make, |m| s.send(&m), BatchSize::SmallInput)
        });
    }

    // (d) suspended terminal → drop (terminal suspension, the source itself not banned).
    {
        let mut s = setup("[auth]\nban_source_on_suspend = false\nsource_max_retry = 0\n");
        let nonce = s.nonce();
        let auth = auth_header(&nonce, "wrong", None);
        for i in 0..6 {
            let _ = s.send(&register(&format!("d-{i}"), 1, &auth));
        }
        let msg = register("d-call", 1, "");
        assert!(matches!(
            s.send(&msg),
            Verdict::Drop(sipgw::engine::DropReason::TerminalSuspended)
        ));
        g.bench_function("d_suspended_terminal_drop", |b| {
            b.iter(|| s.send(black_box(&msg)))
        });
    }

    // (d') banned source → drop (before parsing).
    {
        let mut s = setup("");
        let nonce = s.nonce();
        let auth = auth_header(&nonce, "wrong", None);
        for i in 0..6 {
            let _ = s.send(&register(&format!("e-{i}"), 1, &auth));
        }
        let msg = register("e-call", 1, "");
        assert!(matches!(
            s.send(&msg),
            Verdict::Drop(sipgw::engine::DropReason::SourceBanned)
        ));
        g.bench_function("d_banned_source_drop", |b| {
            b.iter(|| s.send(black_box(&msg)))
        });
    }

    // Batch form: 32 phones' valid requests per call (no qop, so the same datagrams verify
    // every time), their digests computed together by the multi-buffer MD5.
    {
        let creds: String = (0..32)
            .map(|i| format!("[[account]]\nname = \"phone{i}\"\npassword = \"secret\"\n"))
            .collect();
        let mut s = setup_with("", &creds);
        let nonce = s.nonce();
        let msgs: Vec<Vec<u8>> = (0..32)
            .map(|i| {
                let user = format!("phone{i}");
                let auth = auth_header_of(&user, &nonce, "secret", None);
                register(&format!("fwd-batch-{i}"), 2, &auth)
            })
            .collect();
        batch32(
            &mut g,
            "b_batch32_valid_credentials_forward",
            &mut s,
            &msgs,
            |v| matches!(v, Verdict::Forward(_)),
        );
    }

    // Batch form: 32 challenges per call.
    {
        let mut s = setup("");
        let msgs: Vec<Vec<u8>> = (0..32)
            .map(|i| register(&format!("batch-{i}"), 1, ""))
            .collect();
        batch32(&mut g, "a_batch32_challenge", &mut s, &msgs, |v| {
            matches!(v, Verdict::Reply { status: 407, .. })
        });
    }
    g.finish();
}

/// `msgs` (32 datagrams from the setup's peer) through `handle_batch` per iteration, after
/// checking once that every verdict is the expected one.
fn batch32(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    s: &mut Setup,
    msgs: &[Vec<u8>],
    expected: impl Fn(&Verdict) -> bool,
) {
    let peer = s.peer;
    let dgs: Vec<sipgw::Datagram<'_>> =
        msgs.iter().map(|m| sipgw::Datagram::new(peer, m)).collect();
    let mut replies = vec![vec![0u8; 2048]; dgs.len()];
    let mut verdicts = vec![Verdict::default(); dgs.len()];
    let now = s.clock.now();
    s.engine
        .handle_batch(now, &dgs, &mut replies, &mut verdicts);
    assert!(verdicts.iter().all(&expected), "{name}: {verdicts:?}");
    g.throughput(Throughput::Elements(dgs.len() as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            let now = s.clock.now();
            s.engine
                .handle_batch(now, &dgs, &mut replies, &mut verdicts)
        })
    });
    g.throughput(Throughput::Elements(1));
}

/// The whole core: the engine's decision and the proxy's rewrite (Via, Path, identity) of the
/// message it parsed once, as every transport's worker calls it.
fn bench_core(c: &mut Criterion) {
    use sipgw::flow::Flow;
    use sipgw::gateway::{Action, Gateway, Input};
    use sipgw::proxy::{Proxy, ProxyConfig};

    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    let mut s = setup("");
    let nonce = s.nonce();
    let Setup {
        engine,
        clock,
        peer,
        ..
    } = s;
    let pc = ProxyConfig::new(
        "198.18.0.1:5060".parse().unwrap(),
        "198.18.1.1:5060".parse().unwrap(),
        "sipgw",
        [5; 32],
    );
    let mut gw = Gateway::new(engine, Proxy::new(pc));
    let mut out = vec![0u8; 4096];
    let flow = Flow::udp(peer);
    let no_qop = register("core-b", 2, &auth_header(&nonce, "secret", None));
    let send = |gw: &mut Gateway, bytes: &[u8], out: &mut [u8]| {
        gw.handle(clock.now(), Input { flow, bytes }, out)
    };
    let a = send(&mut gw, &no_qop, &mut out);
    assert!(
        matches!(a, Action::Send { status: None, to, .. } if to.peer.port() == 5060 && to != flow),
        "{a:?}"
    );
    g.bench_function("b_valid_credentials_forward_rewritten", |b| {
        b.iter(|| send(&mut gw, black_box(&no_qop), &mut out))
    });
    let challenge = register("core-a", 1, "");
    let a = send(&mut gw, &challenge, &mut out);
    assert!(
        matches!(
            a,
            Action::Send {
                status: Some(407),
                ..
            }
        ),
        "{a:?}"
    );
    g.bench_function("a_challenge", |b| {
        b.iter(|| send(&mut gw, black_box(&challenge), &mut out))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_parse, bench_digest, bench_engine, bench_core
}
criterion_main!(benches);
