//! UDP sockets for the workers: one `SO_REUSEPORT` socket per worker, batched `recvmmsg` /
//! `sendmmsg`.
//!
//! Layer: I/O (the only module of the UDP backend with `unsafe`: the two batched syscalls and
//! the `sockaddr` conversions they need). Every buffer is allocated once, by [`RxRing`] and
//! [`TxRing`]; a call builds its `mmsghdr`/`iovec` arrays on the stack, so a batch costs one
//! syscall and no allocation.

#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use arrayvec::ArrayVec;
use socket2::{Domain, Protocol, Socket, Type};

/// Datagrams per batch (one `recvmmsg`, one `sendmmsg`).
pub const BATCH: usize = 32;

/// Largest datagram received; longer ones are truncated by the kernel, counted and dropped.
pub const RX_SLOT: usize = 16 * 1024;

/// Room for one outgoing datagram: a request plus what forwarding adds.
pub const TX_SLOT: usize = RX_SLOT + 2048;

/// Bind a UDP socket to `addr` with `SO_REUSEPORT` (so every worker binds the same address and
/// the kernel spreads datagrams over them) and a receive timeout (so an idle worker still
/// looks at its inbox and timers).
pub fn bind_reuseport(addr: SocketAddr, recv_timeout: Duration) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // [::] also receives IPv4 (as IPv4-mapped addresses, canonicalised by the engine).
        socket.set_only_v6(false)?;
    }
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    socket.set_read_timeout(Some(recv_timeout))?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Receive buffers for one batch, allocated once.
#[derive(Debug)]
pub struct RxRing {
    buf: Vec<u8>,
    peers: [SocketAddr; BATCH],
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    count: usize,
}

impl Default for RxRing {
    fn default() -> Self {
        RxRing {
            buf: vec![0; BATCH * RX_SLOT],
            peers: [SocketAddr::from(([0, 0, 0, 0], 0)); BATCH],
            lens: [0; BATCH],
            truncated: [false; BATCH],
            count: 0,
        }
    }
}

impl RxRing {
    /// Datagrams received by the last [`RxRing::recv`].
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the last receive returned nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagram `i`: its source, its bytes, and whether the kernel truncated it.
    pub fn get(&self, i: usize) -> (SocketAddr, &[u8], bool) {
        let start = i * RX_SLOT;
        (
            self.peers[i],
            &self.buf[start..start + self.lens[i].min(RX_SLOT)],
            self.truncated[i],
        )
    }

    /// One `recvmmsg(MSG_WAITFORONE)`: waits up to the socket's receive timeout for the first
    /// datagram, then takes whatever else is queued, up to [`BATCH`]. Returns the count (0 on
    /// timeout or signal).
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        // SAFETY: all-zero bytes are a valid value for these plain C structs.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, chunk) in self.buf.chunks_exact_mut(RX_SLOT).enumerate() {
            iovs[i].iov_base = chunk.as_mut_ptr().cast();
            iovs[i].iov_len = RX_SLOT;
            hdrs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `hdrs` holds BATCH valid headers whose name and iovec pointers point into
        // `names`, `iovs` and `self.buf`, all alive and exclusively borrowed for the call; the
        // kernel writes at most `iov_len` bytes per buffer and `msg_namelen` per name.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for i in 0..n {
            let h = &hdrs[i];
            self.lens[i] = h.msg_len as usize;
            self.truncated[i] = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.peers[i] = from_storage(&names[i], h.msg_hdr.msg_namelen)
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        }
        self.count = n;
        Ok(n)
    }
}

/// Send buffers for one batch, allocated once. Fill slots with [`TxRing::slot`] and
/// [`TxRing::push`], then [`TxRing::send`].
#[derive(Debug)]
pub struct TxRing {
    buf: Vec<u8>,
    dests: [SocketAddr; BATCH],
    /// Queue position `j` sends slot `order[j]` to `dests[j]`, `lens[j]` bytes.
    order: [usize; BATCH],
    lens: [usize; BATCH],
    queued: usize,
}

impl Default for TxRing {
    fn default() -> Self {
        TxRing {
            buf: vec![0; BATCH * TX_SLOT],
            dests: [SocketAddr::from(([0, 0, 0, 0], 0)); BATCH],
            order: [0; BATCH],
            lens: [0; BATCH],
            queued: 0,
        }
    }
}

/// What one [`TxRing::send`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams refused (the error of the last one is logged by the caller).
    pub failed: usize,
    /// The last error, if any.
    pub last_error: Option<i32>,
}

impl TxRing {
    /// The buffer of slot `i` (write a datagram into it, then [`TxRing::push`] it).
    pub fn slot(&mut self, i: usize) -> &mut [u8] {
        let start = i * TX_SLOT;
        &mut self.buf[start..start + TX_SLOT]
    }

    /// All slots, for the engine's batch call (`replies[i]` is slot `i`).
    pub fn slots(&mut self) -> std::slice::ChunksExactMut<'_, u8> {
        self.buf.chunks_exact_mut(TX_SLOT)
    }

    /// Queue the first `len` bytes of slot `i` for `dest`. Slots are sent in the order pushed;
    /// a slot may be pushed once per batch.
    pub fn push(&mut self, i: usize, dest: SocketAddr, len: usize) {
        if self.queued < BATCH && i < BATCH {
            self.order[self.queued] = i;
            self.dests[self.queued] = dest;
            self.lens[self.queued] = len.min(TX_SLOT);
            self.queued += 1;
        }
    }

    /// Datagrams queued.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Send everything queued with one [`send_batch`] and empty the queue.
    pub fn send(&mut self, socket: &UdpSocket) -> SendReport {
        let n = self.queued;
        self.queued = 0;
        let mut datagrams: ArrayVec<(SocketAddr, &[u8]), BATCH> = ArrayVec::new();
        for j in 0..n {
            let start = self.order[j] * TX_SLOT;
            datagrams.push((self.dests[j], &self.buf[start..start + self.lens[j]]));
        }
        send_batch(socket, &datagrams)
    }
}

/// Send `datagrams` (at most [`BATCH`]; the rest are not sent) with `sendmmsg`, repeating
/// after partial sends; a datagram the kernel refuses is skipped and counted.
pub fn send_batch(socket: &UdpSocket, datagrams: &[(SocketAddr, &[u8])]) -> SendReport {
    let mut report = SendReport::default();
    let n = datagrams.len().min(BATCH);
    if n == 0 {
        return report;
    }
    // SAFETY: all-zero bytes are a valid value for these plain C structs.
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    for (j, (dest, bytes)) in datagrams[..n].iter().enumerate() {
        let name_len = to_storage(*dest, &mut names[j]);
        // The kernel only reads through this pointer (sendmmsg), so the shared borrow holds.
        iovs[j].iov_base = bytes.as_ptr().cast_mut().cast();
        iovs[j].iov_len = bytes.len();
        hdrs[j].msg_hdr.msg_name = (&mut names[j] as *mut libc::sockaddr_storage).cast();
        hdrs[j].msg_hdr.msg_namelen = name_len;
        hdrs[j].msg_hdr.msg_iov = &mut iovs[j];
        hdrs[j].msg_hdr.msg_iovlen = 1;
    }
    let mut done = 0;
    while done < n {
        // SAFETY: hdrs[done..n] are valid headers pointing into `names`, `iovs` and the
        // borrowed datagrams, all alive for the call; the kernel only reads them.
        let r = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr().add(done),
                (n - done) as libc::c_uint,
                0,
            )
        };
        if r > 0 {
            done += r as usize;
            report.sent += r as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // The first remaining datagram was refused (unreachable, no buffer, ...): skip it.
        report.failed += 1;
        report.last_error = e.raw_os_error();
        done += 1;
    }
    report
}

fn from_storage(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_storage(addr: SocketAddr, s: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sin =
                unsafe { &mut *(s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for a in [
            "198.18.0.1:5060",
            "[2001:db8::1]:5070",
            "[::ffff:198.18.0.1]:1",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut s: libc::sockaddr_storage = unsafe { zeroed() };
            let len = to_storage(addr, &mut s);
            assert_eq!(from_storage(&s, len), Some(addr));
        }
    }

    #[test]
    fn batch_round_trip_over_loopback() {
        let rx =
            bind_reuseport("127.0.0.1:0".parse().unwrap(), Duration::from_millis(200)).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = rx.local_addr().unwrap();
        let mut ring = TxRing::default();
        for i in 0..5 {
            let msg = format!("datagram {i}");
            ring.slot(i)[..msg.len()].copy_from_slice(msg.as_bytes());
            ring.push(i, dest, msg.len());
        }
        let report = ring.send(&tx);
        assert_eq!(report.sent, 5);
        let mut rxr = RxRing::default();
        let mut got = Vec::new();
        while got.len() < 5 {
            let n = rxr.recv(&rx).unwrap();
            assert!(n > 0, "timed out after {} datagrams", got.len());
            for i in 0..n {
                let (peer, bytes, truncated) = rxr.get(i);
                assert_eq!(peer, tx.local_addr().unwrap());
                assert!(!truncated);
                got.push(String::from_utf8(bytes.to_vec()).unwrap());
            }
        }
        assert_eq!(
            got,
            (0..5).map(|i| format!("datagram {i}")).collect::<Vec<_>>()
        );
        // Nothing more: the receive timeout returns an empty batch, not an error.
        assert_eq!(rxr.recv(&rx).unwrap(), 0);
    }

    #[test]
    fn oversized_datagrams_are_flagged_truncated() {
        let rx =
            bind_reuseport("127.0.0.1:0".parse().unwrap(), Duration::from_millis(200)).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&vec![b'x'; RX_SLOT + 10], rx.local_addr().unwrap())
            .unwrap();
        let mut r = RxRing::default();
        assert_eq!(r.recv(&rx).unwrap(), 1);
        let (_, bytes, truncated) = r.get(0);
        assert!(truncated);
        assert_eq!(bytes.len(), RX_SLOT);
    }
}
