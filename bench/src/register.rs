//! Legitimate registrations: every one is a full digest exchange, REGISTER → 401/407 challenge
//! → REGISTER with credentials → 200, as a phone does it.
//!
//! Layer: load driver. `sockets` threads each own one link to the gateway ([`crate::link`]):
//! over UDP one socket (its own source port), over TCP `connections` connections; and a share
//! of the in-flight slots, of the count and of the rate. A thread's loop: start new
//! registrations (as the rate and its free slots allow), send them together (one `sendmmsg`,
//! or one `write` per connection), take what arrived (one `recvmmsg`, or an epoll wait and a
//! read per ready connection, framed by Content-Length; waiting at most 1 ms), answer
//! challenges (queued and sent together), and every 10 ms expire slots whose registration took
//! longer than `timeout`. The loop and the slot state machine are the same for both
//! transports; only the link differs.
//!
//! Over TCP a slot always uses the same connection. When the gateway closes one (or it fails),
//! the registrations in flight on it fail at once (`connection_closed`), its slots are retired,
//! and the loss is counted in the report (`connections_lost`, `connection_errors`); when every
//! connection of a thread is gone the thread stops.
//!
//! A slot's Call-ID carries (thread, slot, attempt, run id), so a response finds its slot by
//! indexing and a late answer to an expired attempt is recognised and ignored. Latency is from
//! the first REGISTER to the 200, both legs included.
//!
//! Bounds: at most `count` registrations are started, none after `duration`; in-flight ones are
//! then given up to `timeout` to finish, so a run lasts at most `duration + timeout`.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sipgw::sip::{self, HeaderName};

use crate::link::{Link, LinkStats, LinkTx, TcpLink, UdpLink};
use crate::msg::{self, Answer, Challenge, Class, Register, Response, Transport, TxnId};
use crate::stats::{per_second, Latency, LatencySummary, Live};
use crate::users::Users;

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
    /// Threads, each with its own socket (UDP) or `connections` connections (TCP).
    pub sockets: usize,
    /// UDP or TCP.
    pub transport: Transport,
    /// TCP connections per thread (ignored over UDP).
    pub connections: usize,
    /// A registration not finished this long after its first REGISTER is a timeout.
    pub timeout: Duration,
    /// Source address of the sockets and connections.
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
    /// `bad_challenge` (401/407 without a usable challenge), `connection_closed` (over TCP:
    /// in flight on a connection that was lost).
    pub failures: BTreeMap<String, u64>,
    /// `udp` or `tcp`.
    pub transport: Transport,
    /// Datagrams (over TCP: messages) sent.
    pub datagrams_sent: u64,
    /// Datagrams (over TCP: messages) received.
    pub datagrams_received: u64,
    /// Datagrams the kernel refused to send (over TCP: messages not sent, their connection
    /// lost or not reading).
    pub send_errors: u64,
    /// Datagrams received that matched no registration in flight (late, duplicated, foreign).
    pub stray: u64,
    /// Sockets (threads) used.
    pub sockets: usize,
    /// TCP connections opened, all threads (0 over UDP).
    pub connections: usize,
    /// TCP connections lost during the run (closed by the gateway, failed, unframeable).
    pub connections_lost: u64,
    /// Why they were lost, with counts.
    pub connection_errors: BTreeMap<String, u64>,
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
        self.datagrams_sent += p.link.sent;
        self.send_errors += p.link.send_errors;
        self.connections += p.link.connections;
        self.connections_lost += p.link.connections_lost;
        for (k, v) in p.link.connection_errors {
            *self.connection_errors.entry(k).or_default() += v;
        }
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
    link: LinkStats,
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
    // Open every socket or connection first, so such an error is reported before any traffic.
    let (results, start) = match opts.transport {
        Transport::Udp => {
            let links = (0..threads)
                .map(|_| UdpLink::bind(opts.bind, opts.gateway))
                .collect::<io::Result<Vec<_>>>()?;
            drive(opts, links, live, stop)
        }
        Transport::Tcp => {
            let per_thread = opts.connections.clamp(1, 4096);
            let links = (0..threads)
                .map(|_| TcpLink::connect(opts.bind, opts.gateway, per_thread, opts.timeout))
                .collect::<io::Result<Vec<_>>>()?;
            drive(opts, links, live, stop)
        }
    };
    let per_thread_conc = opts.concurrency.max(1).div_ceil(threads);
    let mut report = RegisterReport {
        sockets: threads,
        concurrency: per_thread_conc * threads,
        target_rate: opts.rate,
        transport: opts.transport,
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

/// One worker thread per link; their partial results and the start time.
fn drive<L: Link + Send>(
    opts: &RegisterOptions,
    links: Vec<L>,
    live: &RegisterLive,
    stop: &AtomicBool,
) -> (Vec<io::Result<Partial>>, Instant) {
    let threads = links.len().max(1);
    let count = opts.count.min(crate::MAX_COUNT);
    let duration = opts.duration.min(crate::MAX_DURATION);
    let per_thread_conc = opts.concurrency.max(1).div_ceil(threads);
    let start = Instant::now();
    let end = start + duration;
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = links
            .into_iter()
            .enumerate()
            .map(|(t, link)| {
                let w = Worker {
                    t: t as u32,
                    threads: threads as u64,
                    opts,
                    count: crate::share(count, threads, t),
                    rate: opts.rate / threads as f64,
                    slots: per_thread_conc,
                    start,
                    end,
                };
                s.spawn(move || w.run(link, live, stop))
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
    (results, start)
}

struct Worker<'a> {
    t: u32,
    threads: u64,
    opts: &'a RegisterOptions,
    count: u64,
    rate: f64,
    slots: usize,
    start: Instant,
    end: Instant,
}

impl Worker<'_> {
    fn run<L: Link>(
        self,
        mut link: L,
        live: &RegisterLive,
        stop: &AtomicBool,
    ) -> io::Result<Partial> {
        let opts = self.opts;
        let mut p = Partial::default();
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
        // Slots whose connection was lost: never used again.
        let mut retired = 0usize;
        let mut lost_seen = 0u64;
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
                let tx = link.tx();
                while launched < allowed {
                    let Some(s) = free.pop() else { break };
                    if !tx.usable(s) {
                        retired += 1;
                        continue;
                    }
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
                        local: tx.local(s),
                        id: TxnId {
                            a: self.t,
                            b: s,
                            c: slot.attempt,
                            d: opts.run_id,
                        },
                        cseq: 1,
                        expires: opts.expires,
                        class: Class::Register,
                        transport: opts.transport,
                        answer: None,
                    };
                    tx.queue(s, |b| msg::write_register(b, &r))
                        .map_err(io::Error::other)?;
                    launched += 1;
                    p.attempted += 1;
                }
                tx.flush();
            }
            let in_flight = slots.len() - free.len() - retired;
            if in_flight == 0 && (launched >= self.count || now >= self.end || free.is_empty()) {
                // Done, or (every connection lost) nothing can be started any more.
                break;
            }
            // Receive and answer.
            let now = link.recv(|bytes, now, tx| {
                p.received += 1;
                self.handle(bytes, now, tx, &mut slots, &mut free, &mut p)
            })?;
            let tx = link.tx();
            tx.flush();
            // Registrations in flight on a connection that was just lost fail now.
            let lost = tx.lost();
            if lost != lost_seen {
                lost_seen = lost;
                for (i, slot) in slots.iter_mut().enumerate() {
                    if slot.state != State::Free && !tx.usable(i as u32) {
                        slot.state = State::Free;
                        p.failed += 1;
                        *p.failures.entry("connection_closed".into()).or_default() += 1;
                        p.last_answer = Some(now);
                        retired += 1;
                    }
                }
            }
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
        p.unfinished = (slots.len() - free.len() - retired) as u64;
        p.link = link.tx().stats();
        Ok(p)
    }

    fn handle<T: LinkTx>(
        &self,
        bytes: &[u8],
        now: Instant,
        tx: &mut T,
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
                    local: tx.local(id.b),
                    id,
                    cseq: 2,
                    expires: opts.expires,
                    class: Class::Register,
                    transport: opts.transport,
                    answer: Some(Answer {
                        challenge: &ch,
                        ha1: &user.ha1,
                        nc: 1,
                        cnonce: id.b ^ id.c.rotate_left(16),
                    }),
                };
                tx.queue(id.b, |b| msg::write_register(b, &r))
                    .map_err(io::Error::other)?;
            }
            (State::Final, 401 | 407) => finish(slot, p, Some("challenged_again".into())),
            (_, status) => finish(slot, p, Some(status.to_string())),
        }
        Ok(())
    }
}
