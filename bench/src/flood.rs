//! Flood: requests the gateway must not pass, sent as fast as the sockets take them.
//!
//! Layer: load driver. `sockets` threads each own `spread` non-blocking sockets on their own
//! source addresses (`source_base + thread × spread + k`, the next one for every batch), fill the [`BATCH`] slots of their send ring once with
//! distinct REGISTERs, and from then on only rewrite a 10-digit counter inside each Call-ID and
//! branch before every `sendmmsg`: the cost per datagram is the syscall's share, not message
//! building. Answers are drained (`recvmmsg`, non-blocking) after every batch and counted by
//! status.
//!
//! Modes:
//! - [`FloodMode::Unauth`]: REGISTERs without credentials; the gateway answers each with a
//!   challenge (its path (a) in `docs/benchmarks.md`).
//! - [`FloodMode::Banned`]: the flood's source addresses first brute-force a user until the
//!   gateway goes silent (terminal suspended, source banned), then flood from those addresses:
//!   the traffic a suspended attacker keeps sending, dropped before parsing (path (d')).
//!
//! Bounds: at most `count` datagrams in all, nothing sent after `duration`.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bruteforce::{self, BruteforceLive, BruteforceOptions, BruteforceReport};
use crate::net::{self, RxRing, Tx, BATCH};
use crate::stats::{per_second, Live};

/// Width of the counter rewritten in every datagram.
const COUNTER_DIGITS: usize = 10;

/// What the flood sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FloodMode {
    /// REGISTERs without credentials (each one challenged).
    Unauth,
    /// REGISTERs from sources the gateway has banned (brute-forced first).
    Banned,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FloodOptions {
    /// The gateway's SIP address.
    pub gateway: SocketAddr,
    /// What to send.
    pub mode: FloodMode,
    /// Threads, each with `spread` sockets on their own source addresses.
    pub sockets: usize,
    /// Source addresses (sockets) per thread, used in turn batch by batch; with the raw
    /// mode, distinct source addresses of the frames per thread.
    pub spread: u32,
    /// The first source address.
    pub source_base: IpAddr,
    /// Usernames written in the REGISTERs (cycled); also the user brute-forced in banned mode.
    pub users: Vec<String>,
    /// Nothing is sent after this.
    pub duration: Duration,
    /// Most datagrams in all.
    pub count: u64,
    /// Datagrams per second, all threads together; 0: as fast as possible.
    pub rate: f64,
    /// Banned mode: how long the brute force that gets the sources banned may take.
    pub ban_timeout: Duration,
    /// Written into every Call-ID.
    pub run_id: u32,
    /// Transmit raw frames from AF_XDP sockets instead of UDP sockets (`--xdp-iface`).
    pub xdp: Option<crate::xdp_tx::XdpTxOptions>,
}

/// Counters the progress display reads.
#[derive(Debug, Default)]
pub struct FloodLive {
    /// Datagrams sent.
    pub sent: Live,
    /// Datagrams received.
    pub received: Live,
}

impl FloodLive {
    /// One progress line.
    pub fn line(&self, elapsed: Duration) -> String {
        let sent = self.sent.get();
        format!(
            "flood: sent {} ({:.0}/s) answers {}",
            sent,
            per_second(sent, elapsed),
            self.received.get()
        )
    }
}

/// The result of a flood.
#[derive(Debug, Clone, Serialize)]
pub struct FloodReport {
    /// What was sent.
    pub mode: FloodMode,
    /// Sockets (threads, source addresses).
    pub sockets: usize,
    /// Datagrams the kernel took.
    pub sent: u64,
    /// Datagrams it refused (socket buffer full, …).
    pub send_errors: u64,
    /// Datagrams received back.
    pub received: u64,
    /// Answers by status code (`"407"`, …; `"other"` for non-responses).
    pub responses: BTreeMap<String, u64>,
    /// Seconds spent sending.
    pub elapsed_s: f64,
    /// Datagrams sent per second.
    pub sent_per_s: f64,
    /// Answers received per second.
    pub received_per_s: f64,
    /// Banned mode: the brute force that got the sources banned.
    pub ban_phase: Option<BruteforceReport>,
}

/// Run a flood; `stop` ends it early.
pub fn run(opts: &FloodOptions, live: &FloodLive, stop: &AtomicBool) -> io::Result<FloodReport> {
    let threads = opts.sockets.clamp(1, 1024);
    let users: Vec<String> = if opts.users.is_empty() {
        vec!["flood".to_owned()]
    } else {
        opts.users.clone()
    };
    let ban_phase = match opts.mode {
        FloodMode::Unauth => None,
        FloodMode::Banned => {
            // One user per source: sipgw's account guard caps the guesses at one account
            // from all sources together, so sources sharing a user would not all reach their
            // own suspension (and ban).
            let targets = (0..threads)
                .map(|i| format!("{}-ban{i}", users[0]))
                .collect();
            let b = bruteforce::run(
                &BruteforceOptions {
                    gateway: opts.gateway,
                    targets,
                    sources: threads as u32,
                    ports: 1,
                    source_base: opts.source_base,
                    duration: opts.ban_timeout,
                    max_guesses: 100_000,
                    rate: 0.0,
                    timeout: Duration::from_millis(300),
                    stop_when_suspended: true,
                    run_id: opts.run_id ^ 0x5a5a,
                },
                &BruteforceLive::default(),
                stop,
            )?;
            Some(b)
        }
    };
    if let Some(x) = &opts.xdp {
        return xdp_flood(opts, x, &users, threads, live, stop, ban_phase);
    }
    let spread = opts.spread.max(1);
    let sockets = (0..threads)
        .map(|t| {
            (0..spread)
                .map(|k| {
                    let ip = net::nth_address(opts.source_base, t as u32 * spread + k);
                    net::bind(ip, 0, None).map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("flood: cannot bind a socket on {ip}: {e}"),
                        )
                    })
                })
                .collect::<io::Result<Vec<_>>>()
        })
        .collect::<io::Result<Vec<_>>>()?;
    let count = opts.count.min(crate::MAX_COUNT);
    let duration = opts.duration.min(crate::MAX_DURATION);
    let start = Instant::now();
    let end = start + duration;
    let results: Vec<io::Result<Partial>> = std::thread::scope(|s| {
        let handles: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(t, sockets)| {
                let share = crate::share(count, threads, t);
                let users = &users;
                s.spawn(move || {
                    flood_thread(
                        t,
                        sockets,
                        opts,
                        users,
                        share,
                        opts.rate / threads as f64,
                        start,
                        end,
                        live,
                        stop,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a flood thread panicked")))
            })
            .collect()
    });
    let mut report = FloodReport {
        mode: opts.mode,
        sockets: threads,
        sent: 0,
        send_errors: 0,
        received: 0,
        responses: BTreeMap::new(),
        elapsed_s: 0.0,
        sent_per_s: 0.0,
        received_per_s: 0.0,
        ban_phase,
    };
    let mut elapsed = Duration::ZERO;
    for r in results {
        let p = r?;
        report.sent += p.sent;
        report.send_errors += p.send_errors;
        report.received += p.received;
        for (k, v) in p.responses {
            *report.responses.entry(k).or_default() += v;
        }
        elapsed = elapsed.max(p.elapsed);
    }
    report.elapsed_s = elapsed.as_secs_f64();
    report.sent_per_s = per_second(report.sent, elapsed);
    report.received_per_s = per_second(report.received, elapsed);
    Ok(report)
}

/// The raw mode: the same REGISTERs from the same source addresses, as frames from AF_XDP
/// sockets (nothing is received: answers, if any, go to the kernel).
fn xdp_flood(
    opts: &FloodOptions,
    x: &crate::xdp_tx::XdpTxOptions,
    users: &[String],
    threads: usize,
    live: &FloodLive,
    stop: &AtomicBool,
    ban_phase: Option<BruteforceReport>,
) -> io::Result<FloodReport> {
    // 4096 distinct datagrams: every source address, many source ports each.
    let per_source = (4096 / threads).max(1);
    let mut payloads = Vec::with_capacity(threads * per_source);
    let spread = opts.spread.max(1);
    for t in 0..threads {
        for slot in 0..per_source {
            let k = t as u32 * spread + slot as u32 % spread;
            let ip = net::nth_address(opts.source_base, k);
            let local = SocketAddr::new(ip, 20_000 + slot as u16);
            let user = &users[(t * per_source + slot) % users.len()];
            let (mut bytes, off) = template(t, slot, user, opts.gateway, local, opts.run_id);
            for o in off {
                put_counter(&mut bytes, o, slot as u64);
            }
            payloads.push((local, bytes));
        }
    }
    let frames = crate::xdp_tx::frames(x, opts.gateway, &payloads)?;
    let count = opts.count.min(crate::MAX_COUNT);
    let end = Instant::now() + opts.duration.min(crate::MAX_DURATION);
    let sent = crate::xdp_tx::flood(x, &frames, count, end, stop, &|n| live.sent.add(n))?;
    Ok(FloodReport {
        mode: opts.mode,
        sockets: threads,
        sent: sent.sent,
        send_errors: 0,
        received: 0,
        responses: BTreeMap::new(),
        elapsed_s: sent.elapsed.as_secs_f64(),
        sent_per_s: per_second(sent.sent, sent.elapsed),
        received_per_s: 0.0,
        ban_phase,
    })
}

#[derive(Debug, Default)]
struct Partial {
    sent: u64,
    send_errors: u64,
    received: u64,
    responses: BTreeMap<String, u64>,
    elapsed: Duration,
}

/// The flood REGISTER of `slot` with a zero counter, and the offsets of its counters.
fn template(
    t: usize,
    slot: usize,
    user: &str,
    gateway: SocketAddr,
    local: SocketAddr,
    run_id: u32,
) -> (Vec<u8>, [usize; 2]) {
    let zero = "0".repeat(COUNTER_DIGITS);
    let tag = format!("fl{run_id}.{t}.{slot}.");
    let text = format!(
        "REGISTER sip:{gateway} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{tag}{zero};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{host}>;tag={tag}\r\n\
         To: <sip:{user}@{host}>\r\n\
         Call-ID: {tag}{zero}@sipgw-bench\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:{user}@{local}>\r\n\
         Expires: 60\r\n\
         User-Agent: {ua}/flood\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER\r\n\
         Content-Length: 0\r\n\r\n",
        host = gateway.ip(),
        ua = crate::USER_AGENT,
    );
    let pat = format!("{tag}{zero}");
    let mut offsets = [0usize; 2];
    let mut from = 0;
    for o in &mut offsets {
        let at = text[from..].find(&pat).map_or(0, |i| i + from);
        *o = at + tag.len();
        from = at + pat.len();
    }
    (text.into_bytes(), offsets)
}

fn put_counter(buf: &mut [u8], at: usize, mut n: u64) {
    if let Some(digits) = buf.get_mut(at..at + COUNTER_DIGITS) {
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn flood_thread(
    t: usize,
    sockets: Vec<UdpSocket>,
    opts: &FloodOptions,
    users: &[String],
    count: u64,
    rate: f64,
    start: Instant,
    end: Instant,
    live: &FloodLive,
    stop: &AtomicBool,
) -> io::Result<Partial> {
    let Some(first) = sockets.first() else {
        return Ok(Partial::default());
    };
    let local = first.local_addr()?;
    let mut tx = Tx::default();
    let mut lens = [0usize; BATCH];
    let mut offsets = [[0usize; 2]; BATCH];
    for slot in 0..BATCH {
        let user = &users[(t * BATCH + slot) % users.len()];
        let (bytes, off) = template(t, slot, user, opts.gateway, local, opts.run_id);
        let buf = tx.slot(slot);
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        lens[slot] = n;
        offsets[slot] = off;
    }
    let mut rx = RxRing::default();
    let mut p = Partial::default();
    let mut sent_total: u64 = 0;
    let mut round: u64 = 0;
    let (mut rep_sent, mut rep_recv) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || now >= end || sent_total >= count {
            break;
        }
        let mut batch = (count - sent_total).min(BATCH as u64) as usize;
        if rate > 0.0 {
            let due = (now.duration_since(start).as_secs_f64() * rate) as u64 + 1;
            let allowed = due.saturating_sub(sent_total) as usize;
            batch = batch.min(allowed);
        }
        if batch > 0 {
            round += 1;
            for slot in 0..batch {
                let buf = tx.slot(slot);
                for &at in &offsets[slot] {
                    put_counter(buf, at, round);
                }
                tx.push(slot, opts.gateway, lens[slot]);
            }
            let socket = &sockets[round as usize % sockets.len()];
            let r = tx.flush(socket);
            sent_total += batch as u64;
            p.sent += r.sent as u64;
            p.send_errors += r.failed as u64;
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
        let socket = &sockets[round as usize % sockets.len()];
        drain(&mut rx, socket, &mut p)?;
        live.sent.add(p.sent - rep_sent);
        live.received.add(p.received - rep_recv);
        (rep_sent, rep_recv) = (p.sent, p.received);
    }
    p.elapsed = start.elapsed();
    // Late answers.
    let until = Instant::now() + Duration::from_millis(50);
    while Instant::now() < until {
        let mut got = 0;
        for socket in &sockets {
            got += drain(&mut rx, socket, &mut p)?;
        }
        if got == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    live.received.add(p.received - rep_recv);
    Ok(p)
}

/// Take what is queued on the socket (a few batches at most), count it by status.
fn drain(rx: &mut RxRing, socket: &UdpSocket, p: &mut Partial) -> io::Result<usize> {
    let mut total = 0;
    for _ in 0..4 {
        let n = rx.recv(socket)?;
        if n == 0 {
            break;
        }
        total += n;
        for i in 0..n {
            let (_, bytes, _) = rx.get(i);
            let key = match bytes.get(..12) {
                Some(h)
                    if h.starts_with(b"SIP/2.0 ") && h[8..11].iter().all(u8::is_ascii_digit) =>
                {
                    String::from_utf8_lossy(&h[8..11]).into_owned()
                }
                _ => "other".to_owned(),
            };
            *p.responses.entry(key).or_default() += 1;
        }
    }
    p.received += total as u64;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_rewritten_in_place() {
        let gw: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let (mut bytes, off) = template(1, 2, "1001", gw, gw, 7);
        put_counter(&mut bytes, off[0], 42);
        put_counter(&mut bytes, off[1], 42);
        let msg = sipgw::sip::Message::parse(&bytes).unwrap();
        assert_eq!(
            msg.header(sipgw::sip::HeaderName::CallId),
            Some(&b"fl7.1.2.0000000042@sipgw-bench"[..])
        );
        assert!(msg
            .header(sipgw::sip::HeaderName::Via)
            .unwrap()
            .windows(19)
            .any(|w| w == b"fl7.1.2.0000000042;"));
    }
}
