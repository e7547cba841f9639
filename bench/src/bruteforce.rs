//! Brute force: wrong passwords for a set of users from many source addresses and ports, the
//! way sipvicious' `svcrack` does it — and what the gateway lets through.
//!
//! Layer: load driver. One thread drives every flow; a flow is one non-blocking socket (one
//! source address and port) attacking one user: REGISTER → challenge → REGISTER with a wrong
//! digest → re-challenge → next guess on the same Call-ID …; after a 403 it starts over with a
//! new Call-ID, after silence (no answer within `timeout`) it probes again with a bare
//! REGISTER. Flow `f` uses source address `source_base + f / ports` and attacks
//! `targets[f mod len]`.
//!
//! A *terminal* here is what sipgw suspends by default (`suspend_scope = "terminal+source"`):
//! one user attacked from one source address. For each one the report says how many guesses
//! were answered (re-challenged or refused: those the gateway evaluated), how many were
//! answered before the first silence (the suspension), and whether any was accepted (a 2xx:
//! the guess reached the softswitch).
//!
//! Bounds: at most `max_guesses` guesses in all, nothing sent after `duration`; by default the
//! run ends as soon as every terminal has gone silent.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use sipgw::digest;
use sipgw::sip::{self, HeaderName};

use crate::msg::{self, Answer, Challenge, Class, Register, Response, Transport, TxnId};
use crate::net::{self, RxRing, Tx};
use crate::stats::{per_second, Live};

/// What to run.
#[derive(Debug, Clone)]
pub struct BruteforceOptions {
    /// The gateway's SIP address.
    pub gateway: SocketAddr,
    /// Usernames attacked.
    pub targets: Vec<String>,
    /// Source addresses (consecutive from `source_base`).
    pub sources: u32,
    /// Sockets (source ports) per source address.
    pub ports: u32,
    /// The first source address (any of 127.0.0.0/8 works on loopback).
    pub source_base: IpAddr,
    /// Nothing is sent after this.
    pub duration: Duration,
    /// Most guesses in all.
    pub max_guesses: u64,
    /// Guesses per second, all flows together; 0: each flow guesses as soon as it is answered.
    pub rate: f64,
    /// A request not answered this long is taken as dropped.
    pub timeout: Duration,
    /// End as soon as every terminal has gone silent (otherwise: run for `duration`).
    pub stop_when_suspended: bool,
    /// Written into every Call-ID.
    pub run_id: u32,
}

/// Counters the progress display reads.
#[derive(Debug, Default)]
pub struct BruteforceLive {
    /// Guesses sent.
    pub guesses: Live,
    /// Guesses answered.
    pub answered: Live,
    /// Terminals gone silent.
    pub silenced: Live,
}

impl BruteforceLive {
    /// One progress line.
    pub fn line(&self, _elapsed: Duration) -> String {
        format!(
            "bruteforce: guesses {} answered {} terminals silenced {}",
            self.guesses.get(),
            self.answered.get(),
            self.silenced.get()
        )
    }
}

/// One attacked terminal (user from one source address).
#[derive(Debug, Clone, Serialize)]
pub struct TerminalReport {
    /// Username.
    pub user: String,
    /// Source address.
    pub source: IpAddr,
    /// Guesses sent.
    pub guesses_sent: u64,
    /// Guesses answered (re-challenged, refused or accepted): those the gateway evaluated.
    pub guesses_answered: u64,
    /// Guesses answered before the first request went unanswered (None: never silent).
    pub answered_before_silence: Option<u64>,
    /// Whether the terminal went silent after guessing (suspended, or its source banned).
    pub suspended: bool,
    /// Guesses answered 2xx: they reached the softswitch.
    pub accepted: u64,
    /// 403 answers.
    pub forbidden: u64,
}

/// The result of a brute-force run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BruteforceReport {
    /// Flows (sockets).
    pub flows: u32,
    /// Guesses sent.
    pub guesses_sent: u64,
    /// Guesses answered (re-challenged, refused or accepted).
    pub guesses_answered: u64,
    /// Guesses never answered (dropped by the gateway).
    pub guesses_unanswered: u64,
    /// Guesses answered 2xx: reached the softswitch through the gateway.
    pub guesses_accepted: u64,
    /// Bare REGISTERs sent to get a challenge (including probes after silence).
    pub probes_sent: u64,
    /// Probes never answered.
    pub probes_unanswered: u64,
    /// Terminals attacked.
    pub terminals: usize,
    /// Terminals that went silent (suspended or banned).
    pub terminals_suspended: usize,
    /// Most guesses any terminal had answered.
    pub max_answered_per_terminal: u64,
    /// Most guesses any terminal had answered before its first silence.
    pub max_answered_before_silence: u64,
    /// Seconds the run took.
    pub elapsed_s: f64,
    /// Guesses sent per second.
    pub guesses_per_s: f64,
    /// Per terminal.
    pub per_terminal: Vec<TerminalReport>,
    /// Datagrams the kernel refused to send.
    pub send_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Challenge,
    Verdict,
}

struct Flow {
    socket: UdpSocket,
    local: SocketAddr,
    terminal: usize,
    state: State,
    attempt: u32,
    cseq: u32,
    sent_at: Instant,
    next_at: Instant,
}

/// Run a brute force; `stop` ends it early.
pub fn run(
    opts: &BruteforceOptions,
    live: &BruteforceLive,
    stop: &AtomicBool,
) -> io::Result<BruteforceReport> {
    if opts.targets.is_empty() {
        return Err(io::Error::other("bruteforce: no target user"));
    }
    let sources = opts.sources.clamp(1, 65_536);
    let ports = opts.ports.clamp(1, 1024);
    let max_guesses = opts.max_guesses.min(crate::MAX_COUNT);
    let duration = opts.duration.min(crate::MAX_DURATION);
    let start = Instant::now();
    let mut terminals: Vec<TerminalReport> = Vec::new();
    let mut index: BTreeMap<(usize, u32), usize> = BTreeMap::new();
    let mut flows = Vec::new();
    for src in 0..sources {
        let ip = net::nth_address(opts.source_base, src);
        for port in 0..ports {
            let f = (src * ports + port) as usize;
            let target = f % opts.targets.len();
            let socket = net::bind(ip, 0, None).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("bruteforce: cannot bind a socket on {ip}: {e}"),
                )
            })?;
            let terminal = *index.entry((target, src)).or_insert_with(|| {
                terminals.push(TerminalReport {
                    user: opts.targets[target].clone(),
                    source: ip,
                    guesses_sent: 0,
                    guesses_answered: 0,
                    answered_before_silence: None,
                    suspended: false,
                    accepted: 0,
                    forbidden: 0,
                });
                terminals.len() - 1
            });
            flows.push(Flow {
                local: socket.local_addr()?,
                socket,
                terminal,
                state: State::Idle,
                attempt: 0,
                cseq: 0,
                sent_at: start,
                next_at: start,
            });
        }
    }
    let mut report = BruteforceReport {
        flows: sources * ports,
        terminals: terminals.len(),
        ..BruteforceReport::default()
    };
    let mut rx = RxRing::default();
    let mut tx = Tx::default();
    let end = start + duration;
    let hard_end = end + opts.timeout;
    let mut guess_no: u64 = 0;
    let mut silenced = 0usize;
    let mut reported = [0u64; 2];
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || now >= hard_end {
            break;
        }
        if opts.stop_when_suspended && silenced == terminals.len() {
            break;
        }
        let sending = now < end;
        let waiting = flows.iter().any(|f| f.state != State::Idle);
        if (!sending || guess_no >= max_guesses) && !waiting {
            break;
        }
        // Probes from idle flows (a challenge is needed before guessing).
        for (fi, flow) in flows.iter_mut().enumerate() {
            if sending && flow.state == State::Idle && now >= flow.next_at && guess_no < max_guesses
            {
                flow.attempt = flow.attempt.wrapping_add(1);
                flow.cseq += 1;
                flow.state = State::Challenge;
                flow.sent_at = now;
                let r = Register {
                    user: &terminals[flow.terminal].user,
                    gateway: opts.gateway,
                    local: flow.local,
                    id: TxnId {
                        a: 0,
                        b: fi as u32,
                        c: flow.attempt,
                        d: opts.run_id,
                    },
                    cseq: flow.cseq,
                    expires: 60,
                    class: Class::Bruteforce,
                    transport: Transport::Udp,
                    answer: None,
                };
                tx.queue(&flow.socket, opts.gateway, |b| msg::write_register(b, &r))
                    .map_err(io::Error::other)?;
                tx.flush(&flow.socket);
                report.probes_sent += 1;
            }
            // Timeouts.
            if flow.state != State::Idle && now.duration_since(flow.sent_at) >= opts.timeout {
                let t = &mut terminals[flow.terminal];
                if flow.state == State::Verdict {
                    report.guesses_unanswered += 1;
                } else {
                    report.probes_unanswered += 1;
                }
                if !t.suspended && t.guesses_sent > 0 {
                    t.suspended = true;
                    t.answered_before_silence = Some(t.guesses_answered);
                    silenced += 1;
                }
                flow.state = State::Idle;
                flow.next_at = now;
            }
        }
        // Answers.
        let mut got = 0;
        for (fi, flow) in flows.iter_mut().enumerate() {
            let n = rx.recv(&flow.socket)?;
            got += n;
            for i in 0..n {
                let (_, bytes, _) = rx.get(i);
                let Some(resp) = Response::parse(bytes) else {
                    continue;
                };
                let Some(id) = resp
                    .id
                    .filter(|id| id.d == opts.run_id && id.b as usize == fi)
                else {
                    continue;
                };
                let cseq = resp
                    .msg
                    .header(HeaderName::CSeq)
                    .and_then(sip::cseq)
                    .map(|(n, _)| n);
                if flow.state == State::Idle || id.c != flow.attempt || cseq != Some(flow.cseq) {
                    continue;
                }
                if (100..200).contains(&resp.status) {
                    continue;
                }
                let t = &mut terminals[flow.terminal];
                if flow.state == State::Verdict {
                    t.guesses_answered += 1;
                    report.guesses_answered += 1;
                }
                match resp.status {
                    401 | 407 => {
                        let Some(ch) = Challenge::from_response(&resp.msg) else {
                            flow.state = State::Idle;
                            continue;
                        };
                        let due = if opts.rate > 0.0 {
                            (now.duration_since(start).as_secs_f64() * opts.rate) as u64 + 1
                        } else {
                            u64::MAX
                        };
                        if now >= end || guess_no >= max_guesses || guess_no >= due {
                            // No guess now: start over later with a fresh challenge.
                            flow.state = State::Idle;
                            flow.next_at = now + Duration::from_millis(1);
                            continue;
                        }
                        guess_no += 1;
                        let wrong = digest::ha1(
                            t.user.as_bytes(),
                            ch.realm.as_bytes(),
                            format!("wrong-{guess_no}").as_bytes(),
                        );
                        flow.cseq += 1;
                        flow.state = State::Verdict;
                        flow.sent_at = Instant::now();
                        t.guesses_sent += 1;
                        report.guesses_sent += 1;
                        let r = Register {
                            user: &t.user,
                            gateway: opts.gateway,
                            local: flow.local,
                            id,
                            cseq: flow.cseq,
                            expires: 60,
                            class: Class::Bruteforce,
                            transport: Transport::Udp,
                            answer: Some(Answer {
                                challenge: &ch,
                                ha1: &wrong,
                                nc: 1,
                                cnonce: guess_no as u32,
                            }),
                        };
                        tx.queue(&flow.socket, opts.gateway, |b| msg::write_register(b, &r))
                            .map_err(io::Error::other)?;
                        tx.flush(&flow.socket);
                    }
                    200..=299 => {
                        if flow.state == State::Verdict {
                            t.accepted += 1;
                            report.guesses_accepted += 1;
                        }
                        flow.state = State::Idle;
                        flow.next_at = now;
                    }
                    status => {
                        if status == 403 {
                            t.forbidden += 1;
                        }
                        flow.state = State::Idle;
                        flow.next_at = now;
                    }
                }
            }
        }
        let current = [report.guesses_sent, report.guesses_answered];
        live.guesses.add(current[0] - reported[0]);
        live.answered.add(current[1] - reported[1]);
        reported = current;
        live.silenced
            .add((silenced as u64).saturating_sub(live.silenced.get()));
        if got == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let elapsed = start.elapsed();
    report.elapsed_s = elapsed.as_secs_f64();
    report.guesses_per_s = per_second(report.guesses_sent, elapsed);
    report.terminals_suspended = terminals.iter().filter(|t| t.suspended).count();
    report.max_answered_per_terminal = terminals
        .iter()
        .map(|t| t.guesses_answered)
        .max()
        .unwrap_or(0);
    report.max_answered_before_silence = terminals
        .iter()
        .filter_map(|t| t.answered_before_silence)
        .max()
        .unwrap_or(0);
    report.send_errors = tx.failed;
    report.per_terminal = terminals;
    Ok(report)
}
