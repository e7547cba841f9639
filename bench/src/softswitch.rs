//! The softswitch stand-in: answers every request the gateway forwards with `200 OK` and counts
//! what reaches it, so the whole chain (generator → sipgw → softswitch) runs without sipp and
//! at rates sipp cannot reach.
//!
//! Layer: load driver (the far end). `threads` threads each bind the listen address with
//! `SO_REUSEPORT` (sipgw's [`bind_reuseport`]) and answer in batches: one `recvmmsg`, one
//! `sendmmsg`. REGISTER, INVITE, BYE, OPTIONS and every other request but ACK get a 200 with
//! the request's Via, From, To (tagged), Call-ID and CSeq; responses and ACKs are only counted.
//!
//! What it counts ([`SoftswitchSnapshot`]): requests by method, REGISTERs carrying the
//! `P-Asserted-Identity` sipgw adds after a successful digest (`register_asserted`), requests
//! by the generator's traffic class (the `User-Agent: sipgw-bench/<class>` header), and
//! requests still carrying credentials (sipgw strips its own by default).
//!
//! A datagram that is exactly [`STATS_QUERY`] is answered with the counters as JSON, so a
//! generator run (or a test) can ask a stand-in in another process what reached it
//! ([`query`]).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sipgw::runtime::udp::bind_reuseport;
use sipgw::sip::{HeaderName, Message, Method};

use crate::msg::{Class, TooLong};
use crate::net::{RxRing, Tx};

/// The datagram that asks a stand-in for its counters.
pub const STATS_QUERY: &[u8] = b"SIPGW-BENCH-STATS";

/// How long a stand-in thread waits in `recvmmsg` before looking at its stop flag.
const RECV_WAIT: Duration = Duration::from_millis(5);

macro_rules! counts {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// What reached the stand-in, as plain numbers.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct SoftswitchSnapshot {
            $($(#[$doc])* #[serde(default)] pub $name: u64,)*
        }

        #[derive(Debug, Default)]
        struct Counts {
            $($name: AtomicU64,)*
        }

        impl Counts {
            fn snapshot(&self) -> SoftswitchSnapshot {
                SoftswitchSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }

            fn add(&self, d: &SoftswitchSnapshot) {
                $(if d.$name != 0 { self.$name.fetch_add(d.$name, Ordering::Relaxed); })*
            }
        }

        impl SoftswitchSnapshot {
            /// What was counted since `before`.
            pub fn since(&self, before: &SoftswitchSnapshot) -> SoftswitchSnapshot {
                SoftswitchSnapshot { $($name: self.$name.saturating_sub(before.$name),)* }
            }
        }
    };
}

counts! {
    /// Datagrams received (stats queries excluded).
    received,
    /// SIP requests.
    requests,
    /// SIP responses (e.g. to requests the softswitch would send; counted, not answered).
    responses,
    /// Datagrams that are not SIP.
    malformed,
    /// REGISTER requests.
    register,
    /// REGISTERs with a `P-Asserted-Identity`: authenticated by sipgw.
    register_asserted,
    /// INVITE requests.
    invite,
    /// ACK requests.
    ack,
    /// BYE requests.
    bye,
    /// Requests of other methods.
    other_methods,
    /// Requests still carrying `Authorization` or `Proxy-Authorization`.
    with_credentials,
    /// Requests of the generator's `register` class.
    class_register,
    /// Requests of the generator's `bruteforce` class: guesses that got through.
    class_bruteforce,
    /// Requests of the generator's `flood` class.
    class_flood,
    /// Requests not sent by the generator.
    class_other,
    /// 200 OK answers sent.
    replies_sent,
}

/// A running stand-in; stops (and joins its threads) on [`StandIn::stop`] or drop.
#[derive(Debug)]
pub struct StandIn {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    threads: Vec<JoinHandle<()>>,
}

impl StandIn {
    /// Listen on `listen` (port 0: a free one) with `threads` threads.
    pub fn start(listen: SocketAddr, threads: usize) -> io::Result<StandIn> {
        let first = bind_reuseport(listen, RECV_WAIT)?;
        let addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..threads.clamp(1, 64) {
            sockets.push(bind_reuseport(addr, RECV_WAIT)?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let threads = sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let stop = stop.clone();
                let counts = counts.clone();
                std::thread::Builder::new()
                    .name(format!("softswitch-{i}"))
                    .spawn(move || serve(&socket, &stop, &counts))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(StandIn {
            addr,
            stop,
            counts,
            threads,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What reached it so far.
    pub fn snapshot(&self) -> SoftswitchSnapshot {
        self.counts.snapshot()
    }

    /// Stop the threads; returns the final counters.
    pub fn stop(mut self) -> SoftswitchSnapshot {
        self.shutdown();
        self.counts.snapshot()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(socket: &UdpSocket, stop: &AtomicBool, counts: &Counts) {
    let mut rx = RxRing::default();
    let mut tx = Tx::default();
    while !stop.load(Ordering::Relaxed) {
        let n = match rx.recv(socket) {
            Ok(n) => n,
            Err(_) => {
                std::thread::sleep(RECV_WAIT);
                continue;
            }
        };
        let mut d = SoftswitchSnapshot::default();
        for i in 0..n {
            let (peer, bytes, _) = rx.get(i);
            if bytes == STATS_QUERY {
                tx.flush(socket);
                // The counters of this batch are not added yet: add them first.
                counts.add(&d);
                d = SoftswitchSnapshot::default();
                let json = serde_json::to_vec(&counts.snapshot()).unwrap_or_default();
                let _ = socket.send_to(&json, peer);
                continue;
            }
            d.received += 1;
            let Ok(msg) = Message::parse(bytes) else {
                d.malformed += 1;
                continue;
            };
            if !msg.is_request() {
                d.responses += 1;
                continue;
            }
            d.requests += 1;
            let method = msg.method().unwrap_or(Method::Other);
            match method {
                Method::Register => {
                    d.register += 1;
                    if msg.header_by_name(b"P-Asserted-Identity").is_some() {
                        d.register_asserted += 1;
                    }
                }
                Method::Invite => d.invite += 1,
                Method::Ack => d.ack += 1,
                Method::Bye => d.bye += 1,
                _ => d.other_methods += 1,
            }
            if msg.header(HeaderName::Authorization).is_some()
                || msg.header(HeaderName::ProxyAuthorization).is_some()
            {
                d.with_credentials += 1;
            }
            match msg
                .header(HeaderName::UserAgent)
                .and_then(Class::from_user_agent)
            {
                Some(Class::Register) => d.class_register += 1,
                Some(Class::Bruteforce) => d.class_bruteforce += 1,
                Some(Class::Flood) => d.class_flood += 1,
                None => d.class_other += 1,
            }
            if method != Method::Ack && tx.queue(socket, peer, |b| write_ok(b, &msg)).is_ok() {
                d.replies_sent += 1;
            }
        }
        tx.flush(socket);
        counts.add(&d);
    }
}

/// `200 OK` to `req` (Via, From, To with a tag, Call-ID, CSeq; Contact of a REGISTER).
pub fn write_ok(buf: &mut [u8], req: &Message<'_>) -> Result<usize, TooLong> {
    let cap = buf.len();
    let mut w: &mut [u8] = buf;
    let mut put = |parts: &[&[u8]]| -> Result<(), TooLong> {
        for p in parts {
            io::Write::write_all(&mut w, p).map_err(|_| TooLong)?;
        }
        Ok(())
    };
    put(&[b"SIP/2.0 200 OK\r\n"])?;
    for h in req.headers() {
        let keep = matches!(
            h.name,
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq
        ) || (h.name == HeaderName::Contact && req.method() == Some(Method::Register));
        if keep {
            put(&[h.name.as_str().as_bytes(), b": ", h.value, b"\r\n"])?;
        } else if h.name == HeaderName::To {
            let tagged = sipgw::sip::header_param(h.value, b"tag").is_some();
            let tag: &[u8] = if tagged { b"" } else { b";tag=standin" };
            put(&[b"To: ", h.value, tag, b"\r\n"])?;
        }
    }
    put(&[
        b"Server: ",
        crate::USER_AGENT.as_bytes(),
        b"/softswitch\r\nContent-Length: 0\r\n\r\n",
    ])?;
    Ok(cap - w.len())
}

/// Ask the stand-in at `addr` for its counters (None: no answer within `timeout`, e.g. the
/// softswitch there is not a stand-in).
pub fn query(addr: SocketAddr, timeout: Duration) -> Option<SoftswitchSnapshot> {
    let bind: SocketAddr = if addr.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let bind = if addr.ip().is_loopback() {
        bind
    } else if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).ok()?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 64 * 1024];
    // Two tries: a lost datagram should not lose the numbers.
    for _ in 0..2 {
        socket.send_to(STATS_QUERY, addr).ok()?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            socket
                .set_read_timeout(Some(left.min(timeout / 2).max(Duration::from_millis(1))))
                .ok()?;
            match socket.recv_from(&mut buf) {
                Ok((n, from)) if from == addr => {
                    if let Ok(s) = serde_json::from_slice(&buf[..n]) {
                        return Some(s);
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_register_with_200_and_counts_it() {
        let s = StandIn::start("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let req = "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
                   Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n\
                   From: <sip:1001@x>;tag=a\r\nTo: <sip:1001@x>\r\nCall-ID: c1\r\n\
                   CSeq: 1 REGISTER\r\nContact: <sip:1001@127.0.0.1:5070>\r\n\
                   P-Asserted-Identity: <sip:1001@x>\r\nUser-Agent: sipgw-bench/register\r\n\
                   Content-Length: 0\r\n\r\n";
        client.send_to(req.as_bytes(), s.addr()).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = client.recv_from(&mut buf).unwrap();
        let resp = Message::parse(&buf[..n]).unwrap();
        assert_eq!(resp.status_code(), Some(200));
        assert_eq!(resp.header(HeaderName::CallId), Some(&b"c1"[..]));
        assert!(resp
            .header(HeaderName::To)
            .unwrap()
            .ends_with(b";tag=standin"));
        let q = query(s.addr(), Duration::from_secs(2)).unwrap();
        assert_eq!(q.register, 1);
        assert_eq!(q.register_asserted, 1);
        assert_eq!(q.class_register, 1);
        assert_eq!(q.replies_sent, 1);
        let fin = s.stop();
        assert_eq!(fin.received, 1);
    }
}
