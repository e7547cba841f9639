//! Several engines as per-core shards: failures reach the owner, suspensions reach everyone,
//! and the documented bound on guesses holds whatever the message delays.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{authorization, is_challenge, request, Challenge, CREDENTIALS};
use quanta::{Clock, Instant, Mock};
use sipgw::engine::{DropReason, Verdict, WallClock};
use sipgw::shard::{Dest, ShardId, ShardMsg};
use sipgw::{Config, CredentialStore, Engine, Event, Secrets};

struct Cluster {
    engines: Vec<Engine>,
    clock: Clock,
    mock: Arc<Mock>,
    reply: Vec<u8>,
    /// Messages in flight, per destination worker.
    inflight: Vec<Vec<ShardMsg>>,
}

impl Cluster {
    fn new(workers: u16, config: &str) -> Cluster {
        let config = Config::parse(config, "test.toml", None).expect("test config");
        let store = Arc::new(
            CredentialStore::parse(CREDENTIALS, "creds.toml", &config.auth.realm)
                .expect("credentials"),
        );
        let (clock, mock) = Clock::mock();
        mock.increment(Duration::from_secs(1000));
        let wall = WallClock {
            origin: clock.now(),
            origin_unix: Duration::from_secs(1_700_000_000),
        };
        let secrets = Secrets::new(&config, [9u8; 64]);
        let engines: Vec<Engine> = (0..workers)
            .map(|index| {
                let mut e = Engine::new(&config, store.clone(), &secrets, wall);
                e.set_shard(ShardId {
                    index,
                    count: workers,
                });
                e
            })
            .collect();
        Cluster {
            engines,
            clock,
            mock,
            reply: vec![0; 4096],
            inflight: vec![Vec::new(); usize::from(workers)],
        }
    }

    /// The runtime's arrangement: one account guard shared by every worker.
    fn shared(workers: u16, config: &str) -> Cluster {
        let mut c = Cluster::new(workers, config);
        let guard = c.engines[0].guard().clone();
        let store = c.engines[0].credentials().clone();
        for e in &mut c.engines {
            e.set_credentials(store.clone(), guard.clone());
        }
        c
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn send(&mut self, worker: usize, peer: &str, msg: &[u8]) -> Verdict {
        let peer: SocketAddr = peer.parse().unwrap();
        let now = self.now();
        let v = self.engines[worker].handle(now, peer, msg, &mut self.reply);
        self.collect();
        v
    }

    /// Move every engine's outbox into the in-flight queues.
    fn collect(&mut self) {
        let n = self.engines.len();
        for i in 0..n {
            while let Some((dest, msg)) = self.engines[i].poll_shard_message() {
                match dest {
                    Dest::Owner(o) => {
                        assert_ne!(usize::from(o), i, "a worker never messages itself");
                        self.inflight[usize::from(o)].push(msg);
                    }
                    Dest::All => {
                        for (j, q) in self.inflight.iter_mut().enumerate() {
                            if j != i {
                                q.push(msg);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Deliver everything in flight (and what that causes) until quiet.
    fn deliver(&mut self) {
        loop {
            let now = self.now();
            let mut any = false;
            for (i, q) in self.inflight.iter_mut().enumerate() {
                for msg in q.drain(..) {
                    any = true;
                    self.engines[i].handle_shard_message(now, msg);
                }
            }
            self.collect();
            if !any {
                return;
            }
        }
    }

    fn challenge(&self) -> Challenge {
        Challenge::parse(&self.reply).expect("a challenge")
    }

    fn events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        for e in &mut self.engines {
            out.extend(std::iter::from_fn(|| e.poll_event()));
        }
        out
    }

    /// One REGISTER attempt for `user` with `password` on `worker`, answering a challenge the
    /// same worker gives; None when the bare request is not challenged (dropped).
    fn attempt(
        &mut self,
        worker: usize,
        peer: &str,
        user: &str,
        password: &str,
        call: u32,
    ) -> Option<Verdict> {
        let call_id = format!("c{call}");
        let bare = request("REGISTER", user, &call_id, 1, "");
        let v = self.send(worker, peer, &bare);
        if !is_challenge(v) {
            return None;
        }
        let ch = self.challenge();
        let auth = authorization(&ch, user, password, "REGISTER", 1);
        let msg = request("REGISTER", user, &call_id, 2, &auth);
        Some(self.send(worker, peer, &msg))
    }
}

const CONFIG: &str = r#"
[auth]
realm = "sipgw.test"
max_retry = 6
failed_suspend = 60
session_retry = 6
source_max_retry = 0
"#;

fn is_suspended_drop(v: Option<Verdict>) -> bool {
    matches!(
        v,
        None | Some(Verdict::Drop(
            DropReason::TerminalSuspended | DropReason::SourceBanned
        ))
    )
}

#[test]
fn owner_counts_failures_from_every_worker() {
    let mut c = Cluster::new(4, CONFIG);
    // Each guess lands on the next worker (the kernel spreads source ports); messages are
    // delivered between guesses.
    let mut evaluated = 0;
    for guess in 0..20u32 {
        let w = (guess % 4) as usize;
        let v = c.attempt(w, "198.18.0.2:5060", "alice", "wrong", guess);
        c.deliver();
        match v {
            Some(Verdict::Reply { status, .. }) => {
                evaluated += 1;
                assert!(status == 407 || status == 403, "{status}");
            }
            v => assert!(is_suspended_drop(v), "{v:?}"),
        }
    }
    assert_eq!(evaluated, 6, "exactly max_retry guesses in total");
    // Every worker now refuses the right password.
    for w in 0..4 {
        let v = c.attempt(w, "198.18.0.2:5060", "alice", "secret", 100 + w as u32);
        assert!(is_suspended_drop(v), "worker {w}: {v:?}");
    }
    let suspensions = c
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::TerminalSuspended { .. }))
        .count();
    assert_eq!(suspensions, 1, "one suspension line, not one per worker");
    let total: u64 = c.engines.iter().map(|e| e.counters().suspensions).sum();
    assert_eq!(total, 1);

    // The suspension ends everywhere at the same time; then alice logs in on any worker.
    c.mock.increment(Duration::from_secs(61));
    let now = c.now();
    for e in &mut c.engines {
        e.handle_timeout(now);
    }
    let unsuspended = c
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::TerminalUnsuspended { .. }))
        .count();
    assert_eq!(unsuspended, 1, "the end is announced once");
    for w in 0..4 {
        let v = c.attempt(w, "198.18.0.2:5060", "alice", "secret", 200 + w as u32);
        assert!(matches!(v, Some(Verdict::Forward(_))), "worker {w}: {v:?}");
    }
}

#[test]
fn no_worker_evaluates_more_than_max_retry_even_if_messages_never_arrive() {
    let workers = 4;
    let mut c = Cluster::new(workers, CONFIG);
    let mut evaluated = 0;
    for guess in 0..100u32 {
        let w = (guess % u32::from(workers)) as usize;
        let v = c.attempt(w, "198.18.0.2:5060", "alice", "wrong", guess);
        // Nothing is delivered: the worst case of the bound.
        if matches!(v, Some(Verdict::Reply { .. })) {
            evaluated += 1;
        } else {
            assert!(is_suspended_drop(v), "{v:?}");
        }
    }
    assert_eq!(
        evaluated,
        usize::from(workers) * 6,
        "the documented bound: workers × max_retry"
    );
}

#[test]
fn bound_with_late_delivery_is_between_max_retry_and_workers_times_max_retry() {
    let workers = 4;
    let mut c = Cluster::new(workers, CONFIG);
    let mut evaluated = 0;
    for guess in 0..100u32 {
        let w = (guess % u32::from(workers)) as usize;
        let v = c.attempt(w, "198.18.0.2:5060", "alice", "wrong", guess);
        // Messages arrive after every second round of guesses over all workers.
        if guess % 8 == 7 {
            c.deliver();
        }
        if matches!(v, Some(Verdict::Reply { .. })) {
            evaluated += 1;
        }
    }
    assert!((6..=24).contains(&evaluated), "{evaluated}");
    // At most one round of delay (8 guesses) past the global threshold.
    assert!(evaluated <= 6 + 8, "{evaluated}");
}

#[test]
fn a_success_on_another_worker_resets_the_owners_count() {
    let mut c = Cluster::new(3, CONFIG);
    for guess in 0..5u32 {
        let v = c.attempt(
            (guess % 3) as usize,
            "198.18.0.2:5060",
            "alice",
            "wrong",
            guess,
        );
        c.deliver();
        assert!(
            matches!(v, Some(Verdict::Reply { status: 407, .. })),
            "{v:?}"
        );
    }
    for w in 0..3 {
        let v = c.attempt(w, "198.18.0.2:5060", "alice", "secret", 50 + w as u32);
        c.deliver();
        assert!(matches!(v, Some(Verdict::Forward(_))), "{v:?}");
    }
    // Five more failures: not six in a row, so no suspension.
    for guess in 10..15u32 {
        let v = c.attempt(
            (guess % 3) as usize,
            "198.18.0.2:5060",
            "alice",
            "wrong",
            guess,
        );
        c.deliver();
        assert!(
            matches!(v, Some(Verdict::Reply { status: 407, .. })),
            "{v:?}"
        );
    }
    assert!(c
        .events()
        .iter()
        .all(|e| !matches!(e, Event::TerminalSuspended { .. })));
}

#[test]
fn source_lockout_counts_across_workers() {
    let config = r#"
[auth]
realm = "sipgw.test"
max_retry = 0
source_max_retry = 8
session_retry = 6
"#;
    let mut c = Cluster::new(4, config);
    let mut evaluated = 0;
    for guess in 0..40u32 {
        // A different username each time: credential stuffing from one address.
        let user = format!("user{guess}");
        let v = c.attempt((guess % 4) as usize, "198.18.0.7:5060", &user, "x", guess);
        c.deliver();
        if matches!(v, Some(Verdict::Reply { .. })) {
            evaluated += 1;
        } else {
            assert!(
                matches!(v, Some(Verdict::Drop(DropReason::SourceBanned)) | None),
                "{v:?}"
            );
        }
    }
    assert_eq!(evaluated, 8);
    let bans = c
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::SourceBanned { .. }))
        .count();
    assert_eq!(bans, 1);
    // Another address is not affected.
    let v = c.attempt(1, "198.18.0.8:5060", "alice", "secret", 99);
    assert!(matches!(v, Some(Verdict::Forward(_))), "{v:?}");
}

#[test]
fn a_shared_guard_bounds_the_account_across_workers_even_if_messages_never_arrive() {
    let workers = 4;
    let mut c = Cluster::shared(workers, CONFIG);
    let mut evaluated = 0;
    for guess in 0..100u32 {
        let w = (guess % u32::from(workers)) as usize;
        // A new address every time: no per-terminal or per-source limit applies.
        let peer = format!("198.18.{}.{}:5060", 16 + guess / 200, guess % 200 + 1);
        let v = c.attempt(w, &peer, "alice", "wrong", guess);
        if matches!(v, Some(Verdict::Reply { .. })) {
            evaluated += 1;
        } else {
            assert!(
                matches!(v, Some(Verdict::Drop(DropReason::AccountProtected))),
                "{v:?}"
            );
        }
    }
    assert_eq!(
        evaluated, 6,
        "account_budget, whatever the number of workers"
    );
}

#[test]
fn credentials_replayed_from_other_ports_are_never_forwarded() {
    let workers = 8;
    let mut c = Cluster::shared(workers, CONFIG);
    // alice registers through worker 0 (the kernel's choice for her port).
    let bare = request("REGISTER", "alice", "r1", 1, "");
    assert!(is_challenge(c.send(0, "198.18.0.2:5060", &bare)));
    let ch = c.challenge();
    assert!(ch.qop);
    let auth = authorization(&ch, "alice", "secret", "REGISTER", 1);
    let answer = request("REGISTER", "alice", "r1", 2, &auth);
    assert!(matches!(
        c.send(0, "198.18.0.2:5060", &answer),
        Verdict::Forward(_)
    ));
    // A retransmission from the same socket is forwarded again (the softswitch absorbs it) ...
    assert!(matches!(
        c.send(0, "198.18.0.2:5060", &answer),
        Verdict::Forward(_)
    ));
    // ... but the same bytes from 8 other ports of the address, whichever worker each lands on,
    // are not.
    let mut forwarded = 0;
    for port in 0..8u16 {
        for w in [0, usize::from(port % workers)] {
            let peer = format!("198.18.0.2:{}", 41000 + port);
            if matches!(c.send(w, &peer, &answer), Verdict::Forward(_)) {
                forwarded += 1;
            }
        }
    }
    assert_eq!(forwarded, 0);
    let foreign: u64 = c.engines.iter().map(|e| e.counters().foreign_nonce).sum();
    let replayed: u64 = c.engines.iter().map(|e| e.counters().replayed_nonce).sum();
    assert_eq!(
        foreign, 7,
        "workers 1..7 re-challenge: they cannot see worker 0's counts"
    );
    // Worker 0 gets 9 of them: 6 are counted as replays (then max_retry and session_retry
    // refuse the rest before they are evaluated).
    assert_eq!(replayed, 6, "worker 0 sees the replays");
}
