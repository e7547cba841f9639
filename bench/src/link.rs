//! A load thread's path to the gateway: one UDP socket, or several TCP connections. The
//! registration state machine ([`crate::register`]) is written once against [`Link`] and
//! [`LinkTx`]; only sending and receiving differ.
//!
//! Layer: I/O. Every request is written by the caller straight into the link's own buffer
//! (a send ring slot over UDP, the connection's write buffer over TCP), so a message costs no
//! allocation; received messages are handed out as slices of the receive buffers.
//!
//! * UDP ([`UdpLink`]): batched `sendmmsg`/`recvmmsg` ([`crate::net`]); a receive waits at most
//!   [`RECV_WAIT`] for the first datagram.
//! * TCP ([`TcpLink`]): non-blocking connections (`TCP_NODELAY`) in one epoll set; a receive
//!   waits at most [`RECV_WAIT`] for any of them, then reads each ready one and frames what
//!   arrived by Content-Length with sipgw's own stream framer ([`sipgw::framing`]). A request is
//!   sent on connection `path % connections` (a slot always uses the same one, so its answers
//!   come back on it). Writes go into a fixed per-connection buffer flushed with `write`; what
//!   the kernel does not take is retried at the next flush. A connection the gateway closes,
//!   that fails to read or write, or whose bytes cannot be framed is dropped and counted
//!   ([`LinkStats::connections_lost`], by reason in [`LinkStats::connection_errors`]); it
//!   carries nothing more.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::epoll;
use sipgw::framing::{Frame, Framer, Limits, PONG};
use sipgw::runtime::udp::TX_SLOT;
use socket2::{Domain, Protocol, Socket, Type};

use crate::msg::TooLong;
use crate::net::{self, RxRing, Tx};

/// How long one receive call waits for the first message.
pub const RECV_WAIT: Duration = Duration::from_millis(1);

/// Write buffer of one TCP connection.
const TCP_OUT: usize = 256 * 1024;

/// Room a request may take in a TCP write buffer (the UDP send slot's size).
const TCP_ROOM: usize = TX_SLOT;

/// Read buffer of a TCP link (shared by its connections).
const TCP_IN: usize = 64 * 1024;

/// Most epoll events taken per wait.
const EVENTS: usize = 64;

/// What a link counted.
#[derive(Debug, Default, Clone)]
pub struct LinkStats {
    /// Messages handed to the kernel (UDP: datagrams it took; TCP: messages queued on an open
    /// connection).
    pub sent: u64,
    /// Messages not sent (UDP: refused by the kernel; TCP: the connection was gone or its
    /// write buffer full).
    pub send_errors: u64,
    /// TCP connections opened.
    pub connections: usize,
    /// TCP connections lost during the run.
    pub connections_lost: u64,
    /// Why they were lost (a short sentence naming what failed), with counts.
    pub connection_errors: BTreeMap<String, u64>,
}

/// The sending half of a link. `path` is the sender's slot: it chooses the connection over
/// TCP (the same one for a slot's whole life), and is ignored over UDP.
pub trait LinkTx {
    /// The local address of `path`'s socket (Via, Contact).
    fn local(&self, path: u32) -> SocketAddr;
    /// Whether `path` can still carry requests (false once its TCP connection was lost).
    fn usable(&self, path: u32) -> bool;
    /// Write one request for the gateway with `write` (which returns its length) and queue it.
    fn queue(
        &mut self,
        path: u32,
        write: impl FnOnce(&mut [u8]) -> Result<usize, TooLong>,
    ) -> Result<(), TooLong>;
    /// Send what is queued.
    fn flush(&mut self);
    /// TCP connections lost so far (0 over UDP); cheap, asked every loop.
    fn lost(&self) -> u64;
    /// What was counted so far.
    fn stats(&self) -> LinkStats;
}

/// A link: its sending half and a receive.
pub trait Link {
    /// The sending half.
    type Tx: LinkTx;
    /// The sending half, to start requests.
    fn tx(&mut self) -> &mut Self::Tx;
    /// Wait at most [`RECV_WAIT`] for messages; each one that arrived goes to `on`, with the
    /// time it was taken and the sending half (for the answer). Returns that time. An error
    /// of `on` ends the receive and is returned.
    fn recv<F>(&mut self, on: F) -> io::Result<Instant>
    where
        F: FnMut(&[u8], Instant, &mut Self::Tx) -> io::Result<()>;
}

/// One UDP socket.
#[derive(Debug)]
pub struct UdpLink {
    rx: RxRing,
    tx: UdpTx,
}

/// The sending half of a [`UdpLink`].
#[derive(Debug)]
pub struct UdpTx {
    socket: UdpSocket,
    local: SocketAddr,
    gateway: SocketAddr,
    queue: Tx,
}

impl UdpLink {
    /// A socket bound on `bind` (a free port) for `gateway`.
    pub fn bind(bind: IpAddr, gateway: SocketAddr) -> io::Result<UdpLink> {
        let socket = net::bind(bind, 0, Some(RECV_WAIT)).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot bind a UDP socket on {bind}: {e}"))
        })?;
        let local = socket.local_addr()?;
        Ok(UdpLink {
            rx: RxRing::default(),
            tx: UdpTx {
                socket,
                local,
                gateway,
                queue: Tx::default(),
            },
        })
    }
}

impl LinkTx for UdpTx {
    fn local(&self, _path: u32) -> SocketAddr {
        self.local
    }

    fn usable(&self, _path: u32) -> bool {
        true
    }

    fn queue(
        &mut self,
        _path: u32,
        write: impl FnOnce(&mut [u8]) -> Result<usize, TooLong>,
    ) -> Result<(), TooLong> {
        self.queue.queue(&self.socket, self.gateway, write)
    }

    fn flush(&mut self) {
        self.queue.flush(&self.socket);
    }

    fn lost(&self) -> u64 {
        0
    }

    fn stats(&self) -> LinkStats {
        LinkStats {
            sent: self.queue.sent,
            send_errors: self.queue.failed,
            ..LinkStats::default()
        }
    }
}

impl Link for UdpLink {
    type Tx = UdpTx;

    fn tx(&mut self) -> &mut UdpTx {
        &mut self.tx
    }

    fn recv<F>(&mut self, mut on: F) -> io::Result<Instant>
    where
        F: FnMut(&[u8], Instant, &mut UdpTx) -> io::Result<()>,
    {
        let n = self.rx.recv(&self.tx.socket).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot receive on the UDP socket {}: {e}", self.tx.local),
            )
        })?;
        let now = Instant::now();
        for i in 0..n {
            let (_, bytes, _) = self.rx.get(i);
            on(bytes, now, &mut self.tx)?;
        }
        Ok(now)
    }
}

/// One TCP connection's sending state.
#[derive(Debug)]
struct Conn {
    /// `None` once lost.
    stream: Option<TcpStream>,
    local: SocketAddr,
    /// Write buffer: bytes `start..end` are waiting for the kernel.
    out: Box<[u8]>,
    start: usize,
    end: usize,
}

/// Several TCP connections to the gateway, in one epoll set.
#[derive(Debug)]
pub struct TcpLink {
    epoll: OwnedFd,
    framers: Vec<Framer>,
    buf: Box<[u8]>,
    tx: TcpTx,
}

/// The sending half of a [`TcpLink`].
#[derive(Debug)]
pub struct TcpTx {
    conns: Vec<Conn>,
    stats: LinkStats,
}

/// A connected, non-blocking `TCP_NODELAY` stream from `bind` (a free port) to `gateway`.
fn connect(bind: IpAddr, gateway: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let name = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("cannot connect to the gateway {gateway} over TCP from {bind}: {e}"),
        )
    };
    let s = Socket::new(
        Domain::for_address(gateway),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(name)?;
    s.bind(&SocketAddr::new(bind, 0).into()).map_err(name)?;
    s.connect_timeout(&gateway.into(), timeout.max(Duration::from_millis(1)))
        .map_err(name)?;
    s.set_tcp_nodelay(true).map_err(name)?;
    s.set_nonblocking(true).map_err(name)?;
    Ok(s.into())
}

impl TcpLink {
    /// `connections` connections from `bind` to `gateway`, each established within
    /// `timeout`; an error names the one that failed.
    pub fn connect(
        bind: IpAddr,
        gateway: SocketAddr,
        connections: usize,
        timeout: Duration,
    ) -> io::Result<TcpLink> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)
            .map_err(|e| io::Error::other(format!("cannot create an epoll set: {e}")))?;
        let n = connections.max(1);
        let mut conns = Vec::with_capacity(n);
        for i in 0..n {
            let stream = connect(bind, gateway, timeout)?;
            let local = stream.local_addr()?;
            epoll::add(
                &epoll,
                &stream,
                epoll::EventData::new_u64(i as u64),
                epoll::EventFlags::IN,
            )
            .map_err(|e| io::Error::other(format!("cannot poll the connection {local}: {e}")))?;
            conns.push(Conn {
                stream: Some(stream),
                local,
                out: vec![0; TCP_OUT].into_boxed_slice(),
                start: 0,
                end: 0,
            });
        }
        Ok(TcpLink {
            epoll,
            framers: (0..n).map(|_| Framer::new(Limits::default())).collect(),
            buf: vec![0; TCP_IN].into_boxed_slice(),
            tx: TcpTx {
                conns,
                stats: LinkStats {
                    connections: n,
                    ..LinkStats::default()
                },
            },
        })
    }

    /// Read connection `i` until the kernel has nothing more; frame and hand out what came.
    fn read<F>(
        &mut self,
        i: usize,
        now: Instant,
        qnow: quanta::Instant,
        on: &mut F,
    ) -> io::Result<()>
    where
        F: FnMut(&[u8], Instant, &mut TcpTx) -> io::Result<()>,
    {
        loop {
            let Some(mut stream) = self.tx.conns.get(i).and_then(|c| c.stream.as_ref()) else {
                return Ok(());
            };
            let n = match stream.read(&mut self.buf) {
                Ok(0) => {
                    self.tx.lose(i, "closed by the gateway");
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.tx.lose(i, &format!("read failed: {e}"));
                    return Ok(());
                }
            };
            let tx = &mut self.tx;
            let mut failed = None;
            let framed = self.framers[i].feed(qnow, &self.buf[..n], |frame| {
                if failed.is_some() {
                    return;
                }
                match frame {
                    Frame::Message(m) => {
                        if let Err(e) = on(m, now, tx) {
                            failed = Some(e);
                        }
                    }
                    Frame::Ping => tx.queue_bytes(i, PONG),
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            if let Err(e) = framed {
                self.tx
                    .lose(i, &format!("the gateway's bytes cannot be framed: {e}"));
                return Ok(());
            }
            if n < self.buf.len() {
                return Ok(());
            }
        }
    }
}

impl TcpTx {
    /// Connection `i` is gone: drop it (which takes it out of the epoll set) and count why.
    fn lose(&mut self, i: usize, why: &str) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        if c.stream.take().is_none() {
            return;
        }
        c.start = 0;
        c.end = 0;
        self.stats.connections_lost += 1;
        *self
            .stats
            .connection_errors
            .entry(why.to_owned())
            .or_default() += 1;
    }

    /// Write what connection `i` has waiting, as far as the kernel takes it.
    fn flush_conn(&mut self, i: usize) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        let failure = loop {
            let Some(mut stream) = c.stream.as_ref() else {
                return;
            };
            if c.start >= c.end {
                c.start = 0;
                c.end = 0;
                return;
            }
            match stream.write(&c.out[c.start..c.end]) {
                Ok(0) => break "write failed: the connection takes no more bytes".to_owned(),
                Ok(n) => c.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break format!("write failed: {e}"),
            }
        };
        self.lose(i, &failure);
    }

    /// Make room for one message on connection `i`; false if there is none (the gateway does
    /// not read).
    fn room(&mut self, i: usize) -> bool {
        let Some(c) = self.conns.get(i) else {
            return false;
        };
        if c.out.len() - c.end >= TCP_ROOM {
            return true;
        }
        self.flush_conn(i);
        let c = &mut self.conns[i];
        if c.start > 0 {
            c.out.copy_within(c.start..c.end, 0);
            c.end -= c.start;
            c.start = 0;
        }
        c.stream.is_some() && c.out.len() - c.end >= TCP_ROOM
    }

    /// Queue raw bytes (a keep-alive answer) on connection `i`.
    fn queue_bytes(&mut self, i: usize, bytes: &[u8]) {
        if self.room(i) {
            let c = &mut self.conns[i];
            c.out[c.end..c.end + bytes.len()].copy_from_slice(bytes);
            c.end += bytes.len();
        }
    }

    fn index(&self, path: u32) -> usize {
        path as usize % self.conns.len().max(1)
    }
}

impl LinkTx for TcpTx {
    fn local(&self, path: u32) -> SocketAddr {
        self.conns[self.index(path)].local
    }

    fn usable(&self, path: u32) -> bool {
        self.conns[self.index(path)].stream.is_some()
    }

    fn queue(
        &mut self,
        path: u32,
        write: impl FnOnce(&mut [u8]) -> Result<usize, TooLong>,
    ) -> Result<(), TooLong> {
        let i = self.index(path);
        if self.conns[i].stream.is_none() || !self.room(i) {
            self.stats.send_errors += 1;
            return Ok(());
        }
        let c = &mut self.conns[i];
        let end = c.end;
        let len = write(&mut c.out[end..end + TCP_ROOM])?;
        c.end += len;
        self.stats.sent += 1;
        Ok(())
    }

    fn flush(&mut self) {
        for i in 0..self.conns.len() {
            if self.conns[i].end > self.conns[i].start {
                self.flush_conn(i);
            }
        }
    }

    fn lost(&self) -> u64 {
        self.stats.connections_lost
    }

    fn stats(&self) -> LinkStats {
        self.stats.clone()
    }
}

impl Link for TcpLink {
    type Tx = TcpTx;

    fn tx(&mut self) -> &mut TcpTx {
        &mut self.tx
    }

    fn recv<F>(&mut self, mut on: F) -> io::Result<Instant>
    where
        F: FnMut(&[u8], Instant, &mut TcpTx) -> io::Result<()>,
    {
        let ts = rustix::event::Timespec {
            tv_sec: RECV_WAIT.as_secs() as i64,
            tv_nsec: i64::from(RECV_WAIT.subsec_nanos()),
        };
        let mut events = [epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        }; EVENTS];
        let n = match epoll::wait(&self.epoll, &mut events[..], Some(&ts)) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => 0,
            Err(e) => {
                return Err(io::Error::other(format!(
                    "cannot wait for the TCP connections: {e}"
                )))
            }
        };
        let now = Instant::now();
        let qnow = quanta::Instant::now();
        for e in &events[..n] {
            let i = e.data.u64() as usize;
            self.read(i, now, qnow, &mut on)?;
        }
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn sip(n: u32) -> Vec<u8> {
        format!("SIP/2.0 200 OK\r\nCall-ID: {n}\r\nContent-Length: 0\r\n\r\n").into_bytes()
    }

    #[test]
    fn tcp_frames_split_messages_and_counts_a_closed_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut link = TcpLink::connect(ip, addr, 2, Duration::from_secs(2)).unwrap();
        let (mut a, _) = listener.accept().unwrap();
        let (b, _) = listener.accept().unwrap();
        // A request on path 0 reaches one of them.
        link.tx()
            .queue(0, |buf| {
                buf[..4].copy_from_slice(b"ping");
                Ok(4)
            })
            .unwrap();
        link.tx().flush();
        assert_eq!(link.tx().stats().sent, 1);
        // (Connections are accepted in the order they were opened: path 0 is `a`.)
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut four = [0u8; 4];
        a.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"ping");
        // Two messages, the second split, then the peer closes.
        let mut bytes = sip(1);
        bytes.extend_from_slice(&sip(2));
        let cut = bytes.len() - 10;
        a.write_all(&bytes[..cut]).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.is_empty() && Instant::now() < deadline {
            link.recv(|m, _, _| {
                got.push(m.to_vec());
                Ok(())
            })
            .unwrap();
        }
        a.write_all(&bytes[cut..]).unwrap();
        drop(a);
        while link.tx().stats().connections_lost == 0 && Instant::now() < deadline {
            link.recv(|m, _, _| {
                got.push(m.to_vec());
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(got, [sip(1), sip(2)]);
        let st = link.tx().stats();
        assert_eq!((st.connections, st.connections_lost), (2, 1));
        assert_eq!(st.connection_errors.get("closed by the gateway"), Some(&1));
        // One of the two paths is now unusable, and sending on it is a counted error.
        let usable: Vec<bool> = (0..2).map(|p| link.tx().usable(p)).collect();
        assert_eq!(usable.iter().filter(|u| **u).count(), 1);
        let dead = usable.iter().position(|u| !u).unwrap() as u32;
        link.tx().queue(dead, |_| Ok(0)).unwrap();
        assert_eq!(link.tx().stats().send_errors, 1);
        drop(b);
    }
}
