//! SIP over TCP and TLS for one worker (RFC 3261 §18, RFC 5626 keep-alives).
//!
//! Layer: driver. Each worker owns a `SO_REUSEPORT` TCP listener on `gateway.listen` (and one
//! on `tls.listen`), the connections the kernel hands it, and the connections it opens to the
//! softswitch. One epoll set per worker holds them with the worker's UDP socket, its AF_XDP
//! socket and a wake-up eventfd, so one `epoll_wait` waits for all of them (without any
//! stream transport configured, the worker keeps its blocking `recvmmsg` loop).
//!
//! - **Framing**: every connection has a [`Framer`]; complete messages go to the core as
//!   `(now, flow, bytes)` with the flow naming the connection, CRLF keep-alives are answered
//!   with CRLF. A message over the size limits, without Content-Length, or not complete at its
//!   deadline (slowloris) closes the connection.
//! - **Limits**: connections over `tcp.max_connections` (all workers) or `tcp.max_per_source`
//!   (one IP address; counted in a shared count-min table of atomics, which can only
//!   over-count) are closed at accept. A connection silent for `tcp.idle_timeout` is closed;
//!   one whose peer does not read is closed when `tcp.max_pending` bytes wait for it.
//! - **Policy**: the core answers a banned source or a suspended terminal on a connection with
//!   [`Action::Close`]; a ban event closes every connection from the banned network on every
//!   worker.
//! - **Other workers' connections**: a [`ConnId`] names its worker in its top 16 bits. An
//!   output for a connection of another worker (a softswitch request arriving on this
//!   worker's UDP socket for a phone connected to another) is handed over on that worker's
//!   channel and its eventfd rung once per loop iteration.
//! - **The softswitch leg**: an output for a stream flow without a connection (the softswitch
//!   over TCP or TLS, or a large request switched to TCP) goes on a connection this worker
//!   opens to that address (non-blocking connect; bytes wait until it is up).
//!
//! Writes are one `write` per message and connection (a stream has no `sendmmsg`); reads
//! are one `read` of up to 64 KiB per readable connection and iteration, into one scratch
//! buffer per worker. Idle connections hold no buffer: only their [`Conn`] entry and the
//! kernel's socket.

#![forbid(unsafe_code)]

use std::hash::{BuildHasher, Hash};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use hashbrown::HashMap;
use quanta::Instant;
use rustix::event::epoll;
use socket2::{Domain, Protocol, Socket, Type};

use super::shared::RuntimeCounters;
use super::tls::TlsContext;
use crate::addr::{canonical_peer, in_network};
use crate::config::Config;
use crate::flow::{ConnId, Flow, Transport};
use crate::framing::{Frame, Framer, Limits, PONG};
use crate::gateway::{Action, Gateway, Input};

/// epoll token of the worker's UDP socket.
pub const TOKEN_UDP: u64 = 0;
/// epoll token of the worker's AF_XDP socket.
pub const TOKEN_XSK: u64 = 1;
const TOKEN_TCP: u64 = 2;
const TOKEN_TLS: u64 = 3;
const TOKEN_WAKE: u64 = 4;
/// Connection numbers start above the fixed tokens.
const FIRST_CONN: u64 = 16;
const WORKER_SHIFT: u32 = 48;

/// Largest read per connection and iteration.
const SCRATCH: usize = 64 * 1024;
/// Most connections accepted per listener and iteration.
const ACCEPT_BATCH: usize = 64;
/// How often idle connections and message deadlines are looked at.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// Handovers a worker's channel holds before senders drop (and count) theirs.
pub const HANDOFF_QUEUE: usize = 8192;
/// Spare handover buffers kept per worker.
const POOL: usize = 256;
/// Slots per row of the per-source connection counts.
const SOURCE_SLOTS: usize = 1 << 16;

/// The worker a connection belongs to.
pub fn owner(conn: ConnId) -> usize {
    (conn.0 >> WORKER_SHIFT) as usize
}

/// Something for another worker's connections.
#[derive(Debug)]
pub enum Handoff {
    /// Write these bytes on this connection.
    Deliver {
        /// The connection.
        conn: ConnId,
        /// The message.
        bytes: Vec<u8>,
    },
    /// Close every connection from this network (a ban decided on another worker).
    CloseNetwork {
        /// The network address.
        source: IpAddr,
        /// Its prefix length.
        prefix: u8,
    },
}

/// Connection counts every worker shares.
#[derive(Debug)]
pub struct ConnBudget {
    open: AtomicUsize,
    max: usize,
    max_per_source: u32,
    /// Two rows of a count-min table: a source's count is the smaller of its two slots.
    per_source: Box<[AtomicU32]>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl ConnBudget {
    /// Budget for `config`'s `[tcp]` limits.
    pub fn new(config: &Config) -> ConnBudget {
        ConnBudget {
            open: AtomicUsize::new(0),
            max: config.tcp.max_connections,
            max_per_source: config.tcp.max_per_source,
            per_source: (0..2 * SOURCE_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    fn slots(&self, ip: IpAddr) -> [usize; 2] {
        let mut h = self.hasher.build_hasher();
        ip.hash(&mut h);
        let v = std::hash::Hasher::finish(&h);
        [
            (v as usize) % SOURCE_SLOTS,
            SOURCE_SLOTS + ((v >> 32) as usize) % SOURCE_SLOTS,
        ]
    }

    /// Take a connection for `ip`; `Err` names the limit that refused it.
    fn take(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::Global);
        }
        let s = self.slots(ip);
        let a = self.per_source[s[0]].fetch_add(1, Ordering::Relaxed);
        let b = self.per_source[s[1]].fetch_add(1, Ordering::Relaxed);
        if a.min(b) >= self.max_per_source {
            self.give(ip);
            return Err(Refused::PerSource);
        }
        Ok(())
    }

    fn give(&self, ip: IpAddr) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        for s in self.slots(ip) {
            self.per_source[s].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Connections open now, over every worker.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy)]
enum Refused {
    Global,
    PerSource,
}

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    PeerClosed,
    Error,
    Framing,
    Deadline,
    Idle,
    Policy,
    Pending,
    Tls,
    Shutdown,
}

/// One connection.
#[derive(Debug)]
struct Conn {
    sock: TcpStream,
    flow: Flow,
    tls: Option<Box<rustls::Connection>>,
    framer: Framer,
    /// Bytes not yet taken by the kernel (plain TCP; TLS keeps its own).
    pending: Vec<u8>,
    last_rx: Instant,
    /// A connect in progress (outbound).
    connecting: bool,
    /// Registered for EPOLLOUT.
    want_out: bool,
    /// Opened by us (to the softswitch), not accepted.
    outbound: bool,
}

/// A message queued for sending once the frames of a read are judged.
#[derive(Debug, Clone, Copy)]
struct Queued {
    to: Flow,
    start: usize,
    end: usize,
    /// Close the source connection instead (a [`Action::Close`]).
    close: bool,
}

/// The other workers' stream inboxes.
#[derive(Debug, Clone)]
pub struct Peers {
    /// One per worker, by index.
    pub senders: Vec<Sender<Handoff>>,
    /// One eventfd per worker, rung after a handover.
    pub wakers: Vec<Arc<OwnedFd>>,
}

/// The stream transports of one worker.
#[derive(Debug)]
pub struct Streams {
    worker: usize,
    epoll: OwnedFd,
    /// The last wait's events: (token, flags).
    events: Vec<(u64, epoll::EventFlags)>,
    tcp: Option<TcpListener>,
    tls_listener: Option<TcpListener>,
    tls: Option<TlsContext>,
    wake: Arc<OwnedFd>,
    inbox: Receiver<Handoff>,
    peers: Peers,
    ring: Vec<bool>,
    conns: HashMap<u64, Conn>,
    /// The newest connection to or from each (transport, address).
    by_peer: HashMap<(Transport, SocketAddr), u64>,
    budget: Arc<ConnBudget>,
    next: u64,
    limits: Limits,
    idle_timeout: Duration,
    max_pending: usize,
    scratch: Box<[u8]>,
    plain: Box<[u8]>,
    out: Box<[u8]>,
    queue_bytes: Vec<u8>,
    queue: Vec<Queued>,
    pool: Vec<Vec<u8>>,
    doomed: Vec<(u64, Why)>,
    last_sweep: Instant,
    heap: usize,
}

/// A listening socket with `SO_REUSEPORT` (one per worker; the kernel spreads connections).
pub fn listen_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// A worker's wake-up eventfd.
pub fn waker() -> io::Result<OwnedFd> {
    rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::NONBLOCK | rustix::event::EventfdFlags::CLOEXEC,
    )
    .map_err(io::Error::from)
}

/// Everything a worker's [`Streams`] is built from.
#[derive(Debug)]
pub struct StreamSetup {
    /// The worker's index.
    pub worker: usize,
    /// Its TCP listener (`[tcp] enabled`).
    pub tcp: Option<TcpListener>,
    /// Its TLS listener (`[tls] enabled`).
    pub tls_listener: Option<TcpListener>,
    /// The TLS configurations.
    pub tls: Option<TlsContext>,
    /// Its eventfd (also in `peers.wakers[worker]`).
    pub wake: Arc<OwnedFd>,
    /// Its handover inbox.
    pub inbox: Receiver<Handoff>,
    /// Every worker's handover channel.
    pub peers: Peers,
    /// The shared connection counts.
    pub budget: Arc<ConnBudget>,
}

impl Streams {
    /// The streams of one worker, with its UDP socket (and AF_XDP socket) in the same epoll
    /// set.
    pub fn new(
        setup: StreamSetup,
        config: &Config,
        udp: &UdpSocket,
        xsk: Option<std::os::fd::BorrowedFd<'_>>,
        now: Instant,
    ) -> io::Result<Streams> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let add = |fd: std::os::fd::BorrowedFd<'_>, token: u64| {
            epoll::add(
                &epoll,
                fd,
                epoll::EventData::new_u64(token),
                epoll::EventFlags::IN,
            )
        };
        add(udp.as_fd(), TOKEN_UDP)?;
        if let Some(x) = xsk {
            add(x, TOKEN_XSK)?;
        }
        if let Some(l) = &setup.tcp {
            add(l.as_fd(), TOKEN_TCP)?;
        }
        if let Some(l) = &setup.tls_listener {
            add(l.as_fd(), TOKEN_TLS)?;
        }
        add(setup.wake.as_fd(), TOKEN_WAKE)?;
        let n = setup.peers.senders.len();
        Ok(Streams {
            worker: setup.worker,
            epoll,
            events: Vec::with_capacity(256),
            tcp: setup.tcp,
            tls_listener: setup.tls_listener,
            tls: setup.tls,
            wake: setup.wake,
            inbox: setup.inbox,
            peers: setup.peers,
            ring: vec![false; n],
            conns: HashMap::new(),
            by_peer: HashMap::new(),
            budget: setup.budget,
            next: FIRST_CONN,
            limits: limits(config),
            idle_timeout: config.tcp.idle_timeout,
            max_pending: config.tcp.max_pending,
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            plain: vec![0; SCRATCH].into_boxed_slice(),
            out: vec![0; config.tcp.max_message + 4096].into_boxed_slice(),
            queue_bytes: Vec::with_capacity(2 * SCRATCH),
            queue: Vec::with_capacity(64),
            pool: Vec::new(),
            doomed: Vec::new(),
            last_sweep: now,
            heap: 0,
        })
    }

    /// A reload: new limits for new messages, new TLS material for new connections.
    pub fn reconfigure(&mut self, config: &Config, tls: Option<TlsContext>) {
        self.limits = limits(config);
        self.idle_timeout = config.tcp.idle_timeout;
        self.max_pending = config.tcp.max_pending;
        self.tls = tls;
    }

    /// Connections this worker holds.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Heap bytes held by this worker's connections at the last sweep.
    pub fn heap_bytes(&self) -> usize {
        self.heap
    }

    /// Heap bytes held by this worker's connections (entries, framer buffers, pending
    /// writes, TLS state; not the kernel's socket buffers).
    fn measure_heap(&self) -> usize {
        let table = self.conns.allocation_size() + self.by_peer.allocation_size();
        let per: usize = self
            .conns
            .values()
            .map(|c| {
                c.framer.heap_bytes()
                    + c.pending.capacity()
                    + c.tls
                        .as_ref()
                        .map_or(0, |_| std::mem::size_of::<rustls::Connection>())
            })
            .sum();
        table + per
    }

    /// Wait for any of the worker's sockets (at most `timeout`); the stream events are kept
    /// for [`Streams::process`]. Returns whether anything was ready.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        self.events.clear();
        let ts = rustix::event::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut buf = [epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        }; 256];
        match epoll::wait(&self.epoll, &mut buf[..], Some(&ts)) {
            Ok(n) => {
                self.events
                    .extend(buf[..n].iter().map(|e| (e.data.u64(), e.flags)));
                n > 0
            }
            Err(_) => false,
        }
    }

    /// Handle the stream events of the last [`Streams::wait`], the handovers, and (every
    /// 250 ms) idle connections and message deadlines.
    pub fn process(
        &mut self,
        now: Instant,
        gw: &mut Gateway,
        udp: &UdpSocket,
        rt: &mut RuntimeCounters,
    ) {
        for i in 0..self.events.len() {
            let (token, flags) = self.events[i];
            match token {
                TOKEN_UDP | TOKEN_XSK => {}
                TOKEN_TCP => self.accept(now, Transport::Tcp, rt),
                TOKEN_TLS => self.accept(now, Transport::Tls, rt),
                TOKEN_WAKE => {
                    let mut b = [0u8; 8];
                    let _ = rustix::io::read(&*self.wake, &mut b);
                }
                id => {
                    if flags.contains(epoll::EventFlags::OUT) {
                        self.writable(id, rt);
                    }
                    if flags.intersects(
                        epoll::EventFlags::IN | epoll::EventFlags::HUP | epoll::EventFlags::ERR,
                    ) {
                        self.readable(now, id, gw, udp, rt);
                    }
                }
            }
        }
        self.events.clear();
        self.drain_inbox(rt);
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            self.sweep(now, rt);
        }
        self.ring_peers();
    }

    fn accept(&mut self, now: Instant, transport: Transport, rt: &mut RuntimeCounters) {
        for _ in 0..ACCEPT_BATCH {
            let listener = match transport {
                Transport::Tls => self.tls_listener.as_ref(),
                _ => self.tcp.as_ref(),
            };
            let Some(listener) = listener else { return };
            let (sock, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    rt.stream_errors += 1;
                    tracing::debug!(error = %e, "accept failed");
                    return;
                }
            };
            let peer = canonical_peer(peer);
            match self.budget.take(peer.ip()) {
                Ok(()) => {}
                Err(Refused::Global) => {
                    rt.stream_refused_global += 1;
                    continue;
                }
                Err(Refused::PerSource) => {
                    rt.stream_refused_per_source += 1;
                    continue;
                }
            }
            let tls = match transport {
                Transport::Tls => {
                    let server = self.tls.as_ref().and_then(|t| t.server.clone());
                    match server.map(rustls::ServerConnection::new) {
                        Some(Ok(mut c)) => {
                            c.set_buffer_limit(Some(self.max_pending));
                            Some(Box::new(rustls::Connection::Server(c)))
                        }
                        _ => {
                            rt.tls_handshake_failed += 1;
                            self.budget.give(peer.ip());
                            continue;
                        }
                    }
                }
                _ => None,
            };
            match transport {
                Transport::Tls => rt.tls_accepted += 1,
                _ => rt.tcp_accepted += 1,
            }
            let _ = sock.set_nodelay(true);
            if sock.set_nonblocking(true).is_err() {
                self.budget.give(peer.ip());
                continue;
            }
            self.insert(now, sock, transport, peer, tls, false, false);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        now: Instant,
        sock: TcpStream,
        transport: Transport,
        peer: SocketAddr,
        tls: Option<Box<rustls::Connection>>,
        outbound: bool,
        connecting: bool,
    ) -> Option<u64> {
        let id = ((self.worker as u64) << WORKER_SHIFT) | self.next;
        self.next += 1;
        let flags = if connecting {
            epoll::EventFlags::IN | epoll::EventFlags::OUT
        } else {
            epoll::EventFlags::IN
        };
        if epoll::add(&self.epoll, &sock, epoll::EventData::new_u64(id), flags).is_err() {
            self.budget.give(peer.ip());
            return None;
        }
        self.conns.insert(
            id,
            Conn {
                sock,
                flow: Flow::stream(transport, peer, ConnId(id)),
                tls,
                framer: Framer::new(self.limits),
                pending: Vec::new(),
                last_rx: now,
                connecting,
                want_out: connecting,
                outbound,
            },
        );
        self.by_peer.insert((transport, peer), id);
        Some(id)
    }

    fn close(&mut self, id: u64, why: Why, rt: &mut RuntimeCounters) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        let _ = epoll::delete(&self.epoll, &conn.sock);
        let key = (conn.flow.transport, conn.flow.peer);
        if self.by_peer.get(&key) == Some(&id) {
            self.by_peer.remove(&key);
        }
        self.budget.give(conn.flow.peer.ip());
        rt.stream_closed += 1;
        match why {
            Why::Deadline => rt.stream_deadline_closed += 1,
            Why::Idle => rt.stream_idle_closed += 1,
            Why::Framing => rt.stream_framing_errors += 1,
            Why::Pending => rt.stream_pending_overflow += 1,
            Why::Tls => rt.tls_handshake_failed += 1,
            Why::Policy | Why::PeerClosed | Why::Error | Why::Shutdown => {}
        }
        tracing::debug!(flow = %conn.flow, why = ?why, "connection closed");
    }

    /// Read what a connection has, frame it, judge each message.
    fn readable(
        &mut self,
        now: Instant,
        id: u64,
        gw: &mut Gateway,
        udp: &UdpSocket,
        rt: &mut RuntimeCounters,
    ) {
        // Readable before writable: the connect failed (or the peer spoke first, which also
        // means it is up).
        if !self.connected(id, rt) {
            return;
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let n = match conn.sock.read(&mut self.scratch) {
            Ok(0) => {
                self.close(id, Why::PeerClosed, rt);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return
            }
            Err(_) => {
                self.close(id, Why::Error, rt);
                return;
            }
        };
        conn.last_rx = now;
        rt.stream_rx_bytes += n as u64;
        self.queue.clear();
        self.queue_bytes.clear();
        let Conn {
            sock,
            flow,
            tls,
            framer,
            ..
        } = conn;
        let flow = *flow;
        let result = match tls.as_deref_mut() {
            None => feed_framer(
                now,
                framer,
                flow,
                &self.scratch[..n],
                gw,
                &mut self.out,
                &mut self.queue_bytes,
                &mut self.queue,
                rt,
            ),
            Some(tls) => {
                let mut rd = &self.scratch[..n];
                let mut ok = Ok(());
                'records: while !rd.is_empty() {
                    if tls.read_tls(&mut rd).is_err() {
                        ok = Err(Why::Tls);
                        break;
                    }
                    if let Err(e) = tls.process_new_packets() {
                        tracing::debug!(flow = %flow, error = %e, "TLS error");
                        // Best effort: tell the peer (rustls queued the alert).
                        let _ = tls.write_tls(sock);
                        ok = Err(Why::Tls);
                        break;
                    }
                    loop {
                        match tls.reader().read(&mut self.plain) {
                            Ok(0) => break,
                            Ok(m) => {
                                let r = feed_framer(
                                    now,
                                    framer,
                                    flow,
                                    &self.plain[..m],
                                    gw,
                                    &mut self.out,
                                    &mut self.queue_bytes,
                                    &mut self.queue,
                                    rt,
                                );
                                if r.is_err() {
                                    ok = r;
                                    break 'records;
                                }
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(_) => {
                                ok = Err(Why::PeerClosed);
                                break 'records;
                            }
                        }
                    }
                }
                ok
            }
        };
        // Handshake records (and anything the peer is owed) go out now.
        if let Some(conn) = self.conns.get_mut(&id) {
            if conn.tls.is_some() {
                if let Err(why) = flush(conn, &self.epoll) {
                    self.close(id, why, rt);
                    return;
                }
            }
        }
        self.send_queue(now, id, udp, rt);
        if let Err(why) = result {
            self.close(id, why, rt);
        }
    }

    /// Send what the frames of one read produced.
    fn send_queue(&mut self, now: Instant, from: u64, udp: &UdpSocket, rt: &mut RuntimeCounters) {
        let queue = std::mem::take(&mut self.queue);
        let bytes = std::mem::take(&mut self.queue_bytes);
        for q in &queue {
            if q.close {
                self.close(from, Why::Policy, rt);
            } else {
                self.send(now, q.to, &bytes[q.start..q.end], udp, rt);
            }
        }
        self.queue = queue;
        self.queue_bytes = bytes;
    }

    /// Send `bytes` to `to`: a datagram, a write on a connection of this worker, a handover
    /// to the worker that owns the connection, or a connection opened to the address.
    pub fn send(
        &mut self,
        now: Instant,
        to: Flow,
        bytes: &[u8],
        udp: &UdpSocket,
        rt: &mut RuntimeCounters,
    ) {
        if to.transport == Transport::Udp {
            match udp.send_to(bytes, to.peer) {
                Ok(_) => rt.tx_datagrams += 1,
                Err(_) => rt.tx_errors += 1,
            }
            return;
        }
        let id = match to.conn {
            Some(c) if owner(c) != self.worker => {
                self.hand_over(c, bytes, rt);
                return;
            }
            Some(c) => c.0,
            None => match self.by_peer.get(&(to.transport, canonical_peer(to.peer))) {
                Some(&id) => id,
                None => match self.connect(now, to.transport, canonical_peer(to.peer), rt) {
                    Some(id) => id,
                    None => return,
                },
            },
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            rt.stream_unavailable += 1;
            return;
        };
        rt.stream_messages_out += 1;
        if let Err(why) = write(conn, bytes, &self.epoll, self.max_pending) {
            self.close(id, why, rt);
        }
    }

    fn hand_over(&mut self, conn: ConnId, bytes: &[u8], rt: &mut RuntimeCounters) {
        let w = owner(conn);
        let Some(tx) = self.peers.senders.get(w) else {
            rt.stream_unavailable += 1;
            return;
        };
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        match tx.try_send(Handoff::Deliver { conn, bytes: buf }) {
            Ok(()) => {
                rt.stream_handoffs += 1;
                self.ring[w] = true;
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                rt.stream_handoffs_dropped += 1
            }
        }
    }

    fn ring_peers(&mut self) {
        for (w, ring) in self.ring.iter_mut().enumerate() {
            if std::mem::take(ring) {
                if let Some(fd) = self.peers.wakers.get(w) {
                    let _ = rustix::io::write(&**fd, &1u64.to_ne_bytes());
                }
            }
        }
    }

    fn drain_inbox(&mut self, rt: &mut RuntimeCounters) {
        while let Ok(h) = self.inbox.try_recv() {
            match h {
                Handoff::Deliver { conn, bytes } => {
                    match self.conns.get_mut(&conn.0) {
                        Some(c) => {
                            rt.stream_messages_out += 1;
                            if let Err(why) = write(c, &bytes, &self.epoll, self.max_pending) {
                                self.close(conn.0, why, rt);
                            }
                        }
                        None => rt.stream_unavailable += 1,
                    }
                    if self.pool.len() < POOL && bytes.capacity() <= 2 * SCRATCH {
                        self.pool.push(bytes);
                    }
                }
                Handoff::CloseNetwork { source, prefix } => {
                    self.close_network_here(source, prefix, rt)
                }
            }
        }
    }

    /// Close every connection from `source/prefix`, on this worker and on the others.
    pub fn close_network(&mut self, source: IpAddr, prefix: u8, rt: &mut RuntimeCounters) {
        self.close_network_here(source, prefix, rt);
        for (w, tx) in self.peers.senders.iter().enumerate() {
            if w != self.worker
                && tx
                    .try_send(Handoff::CloseNetwork { source, prefix })
                    .is_ok()
            {
                self.ring[w] = true;
            }
        }
    }

    fn close_network_here(&mut self, source: IpAddr, prefix: u8, rt: &mut RuntimeCounters) {
        self.doomed.clear();
        for (&id, c) in &self.conns {
            if !c.outbound && in_network(c.flow.peer.ip(), source, prefix) {
                self.doomed.push((id, Why::Policy));
            }
        }
        let doomed = std::mem::take(&mut self.doomed);
        for &(id, why) in &doomed {
            rt.stream_closed_by_ban += 1;
            self.close(id, why, rt);
        }
        self.doomed = doomed;
    }

    fn sweep(&mut self, now: Instant, rt: &mut RuntimeCounters) {
        self.doomed.clear();
        for (&id, c) in &self.conns {
            if c.framer.expired(now) {
                self.doomed.push((id, Why::Deadline));
            } else if now.saturating_duration_since(c.last_rx) >= self.idle_timeout {
                self.doomed.push((id, Why::Idle));
            }
        }
        let doomed = std::mem::take(&mut self.doomed);
        for &(id, why) in &doomed {
            self.close(id, why, rt);
        }
        self.doomed = doomed;
        self.heap = self.measure_heap();
    }

    /// Open a connection to `peer` (non-blocking; what is written waits until it is up).
    fn connect(
        &mut self,
        now: Instant,
        transport: Transport,
        peer: SocketAddr,
        rt: &mut RuntimeCounters,
    ) -> Option<u64> {
        let tls = match transport {
            Transport::Tls => {
                let ctx = self.tls.as_ref();
                let client = ctx.and_then(|t| t.client.clone());
                let name = ctx.map(|t| t.softswitch_name.clone());
                match (client, name) {
                    (Some(client), Some(name)) => {
                        match rustls::ClientConnection::new(client, name) {
                            Ok(mut c) => {
                                c.set_buffer_limit(Some(self.max_pending));
                                Some(Box::new(rustls::Connection::Client(c)))
                            }
                            Err(_) => {
                                rt.stream_connect_failed += 1;
                                return None;
                            }
                        }
                    }
                    _ => {
                        rt.stream_unavailable += 1;
                        return None;
                    }
                }
            }
            _ => None,
        };
        let sock = match Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                s.set_tcp_nodelay(true)?;
                match s.connect(&peer.into()) {
                    Ok(()) => Ok(s),
                    Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(s),
                    Err(e) => Err(e),
                }
            }) {
            Ok(s) => TcpStream::from(s),
            Err(e) => {
                rt.stream_connect_failed += 1;
                tracing::debug!(peer = %peer, error = %e, "connect failed");
                return None;
            }
        };
        if self.budget.take(peer.ip()).is_err() {
            rt.stream_refused_global += 1;
            return None;
        }
        rt.stream_connects += 1;
        self.insert(now, sock, transport, peer, tls, true, true)
    }

    /// Whether connection `id` exists and is up: a connect in progress is finished here (a
    /// failed one is closed and counted).
    fn connected(&mut self, id: u64, rt: &mut RuntimeCounters) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        if conn.connecting {
            if let Ok(Some(_)) | Err(_) = conn.sock.take_error() {
                rt.stream_connect_failed += 1;
                self.close(id, Why::Error, rt);
                return false;
            }
            conn.connecting = false;
        }
        true
    }

    fn writable(&mut self, id: u64, rt: &mut RuntimeCounters) {
        if !self.connected(id, rt) {
            return;
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let Err(why) = flush(conn, &self.epoll) {
            self.close(id, why, rt);
        }
    }

    /// Close every connection (the worker stops).
    pub fn shutdown(&mut self, rt: &mut RuntimeCounters) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, Why::Shutdown, rt);
        }
    }
}

fn limits(config: &Config) -> Limits {
    Limits {
        max_message: config.tcp.max_message,
        max_header: config.tcp.max_header,
        message_deadline: config.tcp.message_deadline,
    }
}

/// Frame `data` and judge every complete message; the outputs are queued.
#[allow(clippy::too_many_arguments)]
fn feed_framer(
    now: Instant,
    framer: &mut Framer,
    flow: Flow,
    data: &[u8],
    gw: &mut Gateway,
    out: &mut [u8],
    queue_bytes: &mut Vec<u8>,
    queue: &mut Vec<Queued>,
    rt: &mut RuntimeCounters,
) -> Result<(), Why> {
    let mut push = |to: Flow, bytes: &[u8], close: bool| {
        let start = queue_bytes.len();
        queue_bytes.extend_from_slice(bytes);
        queue.push(Queued {
            to,
            start,
            end: queue_bytes.len(),
            close,
        });
    };
    let r = framer.feed(now, data, |frame| match frame {
        Frame::Ping => {
            rt.stream_keepalives += 1;
            push(flow, PONG, false);
        }
        Frame::Message(bytes) => {
            rt.stream_messages_in += 1;
            match gw.handle(now, Input { flow, bytes }, out) {
                Action::Send { to, len, .. } => push(to, &out[..len], false),
                Action::Close(_) => push(flow, &[], true),
                Action::Drop(_) => {}
            }
        }
    });
    r.map_err(|e| {
        tracing::debug!(flow = %flow, error = %e, "stream framing");
        Why::Framing
    })
}

/// Write `bytes` on a connection (what the kernel does not take waits, bounded).
fn write(conn: &mut Conn, bytes: &[u8], ep: &OwnedFd, max_pending: usize) -> Result<(), Why> {
    if let Some(tls) = conn.tls.as_deref_mut() {
        // The connection's buffer limit (`tcp.max_pending`) refuses what does not fit.
        tls.writer().write_all(bytes).map_err(|_| Why::Pending)?;
        return flush(conn, ep);
    }
    let mut rest = bytes;
    if conn.pending.is_empty() && !conn.connecting {
        match conn.sock.write(bytes) {
            Ok(n) => rest = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(Why::Error),
        }
    }
    if !rest.is_empty() {
        if conn.pending.len() + rest.len() > max_pending {
            return Err(Why::Pending);
        }
        conn.pending.extend_from_slice(rest);
    }
    interest(conn, ep);
    Ok(())
}

/// Write what waits (plain bytes, or TLS records).
fn flush(conn: &mut Conn, ep: &OwnedFd) -> Result<(), Why> {
    if conn.connecting {
        interest(conn, ep);
        return Ok(());
    }
    if let Some(tls) = conn.tls.as_deref_mut() {
        while tls.wants_write() {
            match tls.write_tls(&mut conn.sock) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Err(Why::Error),
            }
        }
    } else {
        while !conn.pending.is_empty() {
            match conn.sock.write(&conn.pending) {
                Ok(0) => return Err(Why::Error),
                Ok(n) => {
                    conn.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(Why::Error),
            }
        }
        if conn.pending.is_empty() && conn.pending.capacity() > 0 {
            conn.pending = Vec::new();
        }
    }
    interest(conn, ep);
    Ok(())
}

/// Ask for EPOLLOUT exactly while something waits to be written.
fn interest(conn: &mut Conn, ep: &OwnedFd) {
    let wants = conn.connecting
        || !conn.pending.is_empty()
        || conn.tls.as_ref().is_some_and(|t| t.wants_write());
    if wants != conn.want_out {
        let flags = if wants {
            epoll::EventFlags::IN | epoll::EventFlags::OUT
        } else {
            epoll::EventFlags::IN
        };
        let id = conn.flow.conn.map_or(0, |c| c.0);
        if epoll::modify(ep, &conn.sock, epoll::EventData::new_u64(id), flags).is_ok() {
            conn.want_out = wants;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_caps_sources_and_the_total() {
        let mut config = Config::default();
        config.tcp.max_connections = 5;
        config.tcp.max_per_source = 2;
        let b = ConnBudget::new(&config);
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let c: IpAddr = "198.18.0.2".parse().unwrap();
        assert!(b.take(a).is_ok());
        assert!(b.take(a).is_ok());
        assert!(matches!(b.take(a), Err(Refused::PerSource)));
        assert!(b.take(c).is_ok());
        assert!(b.take(c).is_ok());
        assert_eq!(b.open(), 4);
        b.give(a);
        assert!(b.take(a).is_ok());
        let d: IpAddr = "198.18.0.3".parse().unwrap();
        assert!(b.take(d).is_ok());
        assert!(matches!(b.take(d), Err(Refused::Global)));
        assert_eq!(b.open(), 5);
    }

    #[test]
    fn connection_ids_name_their_worker() {
        let id = ConnId((7u64 << WORKER_SHIFT) | 123);
        assert_eq!(owner(id), 7);
        assert_eq!(owner(ConnId(FIRST_CONN)), 0);
    }
}
