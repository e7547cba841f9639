//! Legitimate registrations: every one is a full digest exchange, REGISTER → 401/407 challenge
//! → REGISTER with credentials → 200, as a phone does it.
//!
//! Layer: load driver. `sockets` threads each own one UDP socket (its own source port), a
//! share of the in-flight slots, of the count and of the rate. A thread's loop: start new
//! registrations (as the rate and its free slots allow), send them with one `sendmmsg`, take
//! what arrived with one `recvmmsg` (waiting at most 1 ms), answer challenges (queued and sent
//! together), and every 10 ms expire slots whose registration took longer than `timeout`.
//!
//! A slot's Call-ID carries (thread, slot, attempt, run id), so a response finds its slot by
//! indexing and a late answer to an expired attempt is recognised and ignored. Latency is from
//! the first REGISTER to the 200, both legs included.
//!
//! Bounds: at most `count` registrations are started, none after `duration`; in-flight ones are
//! then given up to `timeout` to finish, so a run lasts at most `duration + timeout`.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sipgw::sip::{self, HeaderName};

use crate::msg::{self, Answer, Challenge, Class, Register, Response, TxnId};
use crate::net::{self, RxRing, Tx};
use crate::stats::{per_second, Latency, LatencySummary, Live};
use crate::users::Users;

/// How long one receive call waits for the first datagram.
const RECV_WAIT: Duration = Duration::from_millis(1);

/// How often in-flight slots are checked for timeouts.
const SCAN_EVERY: Duration = Duration::from_millis(10);

/// What to run.
#[derive(Debug, Clone)]
pub struct RegisterOptions {
    /// The gateway's SIP address.
    pub gateway: SocketAddr,
    /// Who registers (registration `k` is user `k mod len`).
    pub users: Arc<Users>,
    /// Registrations to start (at most).
    pub count: u64,
    /// No registration starts after this.
    pub duration: Duration,
    /// Registrations started per second, all threads together; 0: as fast as slots free up.
    pub rate: f64,
    /// Registrations in flight at once, all threads together.
    pub concurrency: usize,
    /// Threads, each with its own socket.
    pub sockets: usize,
    /// A registration not finished this long after its first REGISTER is a timeout.
    pub timeout: Duration,
    /// Source address of the sockets.
    pub bind: IpAddr,
    /// `Expires` of the REGISTERs.
    pub expires: u32,
    /// Written into every Call-ID, so responses to another run are not taken for ours.
    pub run_id: u32,
}

/// Counters the progress display reads while a run goes on.
#[derive(Debug, Default)]
pub struct RegisterLive {
    /// Registrations started.
    pub started: Live,
    /// 200 received.
    pub succeeded: Live,
    /// Final failure received.
    pub failed: Live,
    /// No final answer in time.
    pub timed_out: Live,
}

impl RegisterLive {
    /// One progress line.
    pub fn line(&self, elapsed: Duration) -> String {
        let ok = self.succeeded.get();
        format!(
            "register: started {} ok {} ({:.0}/s) failed {} timeout {}",
            self.started.get(),
            ok,
            per_second(ok, elapsed),
            self.failed.get(),
            self.timed_out.get()
        )
    }
}

/// The result of a registration run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegisterReport {
    /// Registrations started.
    pub attempted: u64,
    /// Answered 2xx after the digest exchange.
    pub succeeded: u64,
    /// Answered with a failure (see `failures`).
    pub failed: u64,
    /// Not finished within the timeout.
    pub timed_out: u64,
    /// Still in flight when the run was interrupted (Ctrl-C); 0 otherwise.
    pub unfinished: u64,
    /// `succeeded / (succeeded + failed + timed_out)`; 0 when none finished.
    pub success_rate: f64,
    /// Seconds from the first REGISTER to the last answer.
    pub elapsed_s: f64,
    /// Successful registrations per second over `elapsed_s`.
    pub registrations_per_s: f64,
    /// First REGISTER → 200, successful registrations only.
    pub latency: LatencySummary,
    /// Challenges received (one per registration when all goes well).
    pub challenges: u64,
    /// Failures by reason: a status code (`"403"`), `challenged_again` (401/407 to our
    /// credentials), `realm_mismatch` (the challenge's realm is not the users' realm),
    /// `bad_challenge` (401/407 without a usable challenge).
    pub failures: BTreeMap<String, u64>,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Datagrams the kernel refused to send.
    pub send_errors: u64,
    /// Datagrams received that matched no registration in flight (late, duplicated, foreign).
    pub stray: u64,
    /// Sockets (threads) used.
    pub sockets: usize,
    /// In-flight limit.
    pub concurrency: usize,
    /// Target rate (0: as fast as possible).
    pub target_rate: f64,
}

impl RegisterReport {
    fn merge(&mut self, p: Partial) {
        self.attempted += p.attempted;
        self.succeeded += p.succeeded;
        self.failed += p.failed;
        self.timed_out += p.timed_out;
        self.unfinished += p.unfinished;
        self.challenges += p.challenges;
        for (k, v) in p.failures {
            *self.failures.entry(k).or_default() += v;
        }
        self.datagrams_sent += p.tx.sent;
        self.send_errors += p.tx.failed;
        self.datagrams_received += p.received;
        self.stray += p.stray;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Challenge,
    Final,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: State,
    user: usize,
    attempt: u32,
    cseq: u32,
    started: Instant,
}

#[derive(Debug, Default)]
struct Partial {
    attempted: u64,
    succeeded: u64,
    failed: u64,
    timed_out: u64,
    unfinished: u64,
    challenges: u64,
    failures: BTreeMap<String, u64>,
    tx: Tx,
    received: u64,
    stray: u64,
    latency: Latency,
    last_answer: Option<Instant>,
}

/// Run registrations; `stop` ends the run early (in-flight ones are counted as unfinished).
pub fn run(
    opts: &RegisterOptions,
    live: &RegisterLive,
    stop: &AtomicBool,
) -> io::Result<RegisterReport> {
    let threads = opts.sockets.clamp(1, 1024);
    let count = opts.count.min(crate::MAX_COUNT);
    let duration = opts.duration.min(crate::MAX_DURATION);
    let per_thread_conc = opts.concurrency.max(1).div_ceil(threads);
    // Bind every socket first, so a bind error is reported before any traffic.
    let sockets = (0..threads)
        .map(|_| net::bind(opts.bind, 0, Some(RECV_WAIT)))
        .collect::<io::Result<Vec<_>>>()?;
    let start = Instant::now();
    let end = start + duration;
    let results: Vec<io::Result<Partial>> = std::thread::scope(|s| {
        let handles: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(t, socket)| {
                let share = crate::share(count, threads, t);
                let w = Worker {
                    t: t as u32,
                    threads: threads as u64,
                    opts,
                    socket,
                    count: share,
                    rate: opts.rate / threads as f64,
                    slots: per_thread_conc,
                    start,
                    end,
                };
                s.spawn(move || w.run(live, stop))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a register thread panicked")))
            })
            .collect()
    });
    let mut report = RegisterReport {
        sockets: threads,
        concurrency: per_thread_conc * threads,
        target_rate: opts.rate,
        ..RegisterReport::default()
    };
    let mut latency = Latency::default();
    let mut last = start;
    for r in results {
        let mut p = r?;
        latency.merge(&p.latency);
        if let Some(l) = p.last_answer {
            last = last.max(l);
        }
        p.latency = Latency::default();
        report.merge(p);
    }
    let elapsed = last.duration_since(start);
    report.elapsed_s = elapsed.as_secs_f64();
    report.registrations_per_s = per_second(report.succeeded, elapsed);
    let finished = report.succeeded + report.failed + report.timed_out;
    report.success_rate = if finished == 0 {
        0.0
    } else {
        report.succeeded as f64 / finished as f64
    };
    report.latency = latency.summary();
    Ok(report)
}

struct Worker<'a> {
    t: u32,
    threads: u64,
    opts: &'a RegisterOptions,
    socket: UdpSocket,
    count: u64,
    rate: f64,
    slots: usize,
    start: Instant,
    end: Instant,
}

impl Worker<'_> {
    fn run(self, live: &RegisterLive, stop: &AtomicBool) -> io::Result<Partial> {
        let opts = self.opts;
        let local = self.socket.local_addr()?;
        let mut p = Partial::default();
        let mut rx = RxRing::default();
        let mut slots = vec![
            Slot {
                state: State::Free,
                user: 0,
                attempt: 0,
                cseq: 0,
                started: self.start,
            };
            self.slots
        ];
        let mut free: Vec<u32> = (0..self.slots as u32).rev().collect();
        let mut launched: u64 = 0;
        let mut next_scan = self.start + SCAN_EVERY;
        let hard_end = self.end + opts.timeout;
        let mut reported = [0u64; 4];
        let n_users = opts.users.len().max(1) as u64;
        loop {
            let now = Instant::now();
            if stop.load(Ordering::Relaxed) || now >= hard_end {
                break;
            }
            // Start registrations.
            if now < self.end {
                let allowed = if self.rate > 0.0 {
                    let due = (now.duration_since(self.start).as_secs_f64() * self.rate) as u64 + 1;
                    due.min(self.count)
                } else {
                    self.count
                };
                while launched < allowed {
                    let Some(s) = free.pop() else { break };
                    let user = ((launched * self.threads + u64::from(self.t)) % n_users) as usize;
                    let slot = &mut slots[s as usize];
                    slot.state = State::Challenge;
                    slot.user = user;
                    slot.attempt = slot.attempt.wrapping_add(1);
                    slot.cseq = 1;
                    slot.started = now;
                    let r = Register {
                        user: &opts.users.list[user].name,
                        gateway: opts.gateway,
                        local,
                        id: TxnId {
                            a: self.t,
                            b: s,
                            c: slot.attempt,
                            d: opts.run_id,
                        },
                        cseq: 1,
                        expires: opts.expires,
                        class: Class::Register,
                        answer: None,
                    };
                    p.tx.queue(&self.socket, opts.gateway, |b| msg::write_register(b, &r))
                        .map_err(io::Error::other)?;
                    launched += 1;
                    p.attempted += 1;
                }
                p.tx.flush(&self.socket);
            }
            if (launched >= self.count || now >= self.end) && free.len() == slots.len() {
                break;
            }
            // Receive and answer.
            let n = rx.recv(&self.socket)?;
            let now = Instant::now();
            p.received += n as u64;
            for i in 0..n {
                let (_, bytes, _) = rx.get(i);
                self.handle(bytes, now, local, &mut slots, &mut free, &mut p)?;
            }
            p.tx.flush(&self.socket);
            // Timeouts.
            if now >= next_scan {
                next_scan = now + SCAN_EVERY;
                for (i, slot) in slots.iter_mut().enumerate() {
                    if slot.state != State::Free && now.duration_since(slot.started) >= opts.timeout
                    {
                        slot.state = State::Free;
                        free.push(i as u32);
                        p.timed_out += 1;
                    }
                }
            }
            let current = [p.attempted, p.succeeded, p.failed, p.timed_out];
            live.started.add(current[0] - reported[0]);
            live.succeeded.add(current[1] - reported[1]);
            live.failed.add(current[2] - reported[2]);
            live.timed_out.add(current[3] - reported[3]);
            reported = current;
        }
        p.unfinished = (slots.len() - free.len()) as u64;
        Ok(p)
    }

    fn handle(
        &self,
        bytes: &[u8],
        now: Instant,
        local: SocketAddr,
        slots: &mut [Slot],
        free: &mut Vec<u32>,
        p: &mut Partial,
    ) -> io::Result<()> {
        let opts = self.opts;
        let Some(resp) = Response::parse(bytes) else {
            p.stray += 1;
            return Ok(());
        };
        let Some(id) = resp.id.filter(|id| id.a == self.t && id.d == opts.run_id) else {
            p.stray += 1;
            return Ok(());
        };
        let Some(slot) = slots.get_mut(id.b as usize) else {
            p.stray += 1;
            return Ok(());
        };
        let cseq = resp
            .msg
            .header(HeaderName::CSeq)
            .and_then(sip::cseq)
            .map(|(n, _)| n);
        if slot.state == State::Free || slot.attempt != id.c || cseq != Some(slot.cseq) {
            p.stray += 1;
            return Ok(());
        }
        let mut finish = |slot: &mut Slot, p: &mut Partial, reason: Option<String>| {
            match reason {
                None => {
                    p.succeeded += 1;
                    p.latency.record(now.duration_since(slot.started));
                }
                Some(r) => {
                    p.failed += 1;
                    *p.failures.entry(r).or_default() += 1;
                }
            }
            p.last_answer = Some(now);
            slot.state = State::Free;
            free.push(id.b);
        };
        match (slot.state, resp.status) {
            (_, 100..=199) => {}
            (_, 200..=299) => finish(slot, p, None),
            (State::Challenge, 401 | 407) => {
                p.challenges += 1;
                let Some(ch) = Challenge::from_response(&resp.msg) else {
                    finish(slot, p, Some("bad_challenge".into()));
                    return Ok(());
                };
                if ch.realm != opts.users.realm {
                    finish(slot, p, Some("realm_mismatch".into()));
                    return Ok(());
                }
                slot.state = State::Final;
                slot.cseq = 2;
                let user = &opts.users.list[slot.user];
                let r = Register {
                    user: &user.name,
                    gateway: opts.gateway,
                    local,
                    id,
                    cseq: 2,
                    expires: opts.expires,
                    class: Class::Register,
                    answer: Some(Answer {
                        challenge: &ch,
                        ha1: &user.ha1,
                        nc: 1,
                        cnonce: id.b ^ id.c.rotate_left(16),
                    }),
                };
                p.tx.queue(&self.socket, opts.gateway, |b| msg::write_register(b, &r))
                    .map_err(io::Error::other)?;
            }
            (State::Final, 401 | 407) => finish(slot, p, Some("challenged_again".into())),
            (_, status) => finish(slot, p, Some(status.to_string())),
        }
        Ok(())
    }
}
