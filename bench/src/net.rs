//! UDP endpoints with batched I/O: sockets bound on a chosen source address, and a send queue
//! flushed with one `sendmmsg` per batch.
//!
//! Layer: I/O. The batched syscalls are sipgw's own ([`sipgw::runtime::udp::RxRing`] and
//! [`sipgw::runtime::udp::TxRing`]: one `recvmmsg`/`sendmmsg` per [`BATCH`] datagrams, buffers
//! allocated once), so this module needs no `unsafe` (the crate's only `unsafe` is the raw
//! flood's UMEM in `xdp_tx`). A thread owns one receive ring and one [`Tx`] and may drive
//! several sockets with them: a ring is not tied to a socket.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use sipgw::runtime::udp::{SendReport, TxRing};
use socket2::{Domain, Protocol, Socket, Type};

use crate::msg::TooLong;

pub use sipgw::runtime::udp::{RxRing, BATCH};

/// Socket buffer size asked for (the kernel caps it at `net.core.{r,w}mem_max`).
pub const SOCKET_BUFFER: usize = 8 << 20;

/// A UDP socket bound to `ip` on a free port (`port` 0) or a given one. With `timeout` a
/// receive waits at most that long; without, the socket is non-blocking.
pub fn bind(ip: IpAddr, port: u16, timeout: Option<Duration>) -> io::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, port);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    match timeout {
        Some(t) => socket.set_read_timeout(Some(t.max(Duration::from_micros(1))))?,
        None => socket.set_nonblocking(true)?,
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The `i`-th address after `base` (`127.0.1.1` + 2 = `127.0.1.3`), for spreading attackers
/// over source addresses. IPv4 only; the last octet wraps into the third.
pub fn nth_address(base: IpAddr, i: u32) -> IpAddr {
    match base {
        IpAddr::V4(v4) => IpAddr::V4(u32::from(v4).wrapping_add(i).into()),
        IpAddr::V6(v6) => IpAddr::V6(u128::from(v6).wrapping_add(u128::from(i)).into()),
    }
}

/// A send queue: datagrams are written straight into the ring's slots and sent [`BATCH`] at a
/// time with one `sendmmsg`.
#[derive(Debug, Default)]
pub struct Tx {
    ring: TxRing,
    /// Datagrams the kernel took.
    pub sent: u64,
    /// Datagrams it refused (full buffer, unreachable, …).
    pub failed: u64,
    /// The errno of the last refusal.
    pub last_error: Option<i32>,
}

impl Tx {
    /// Write one datagram for `dest` with `write` (which returns its length) and queue it; a
    /// full queue is first flushed to `socket`. Use the same socket until [`Tx::flush`].
    pub fn queue(
        &mut self,
        socket: &UdpSocket,
        dest: SocketAddr,
        write: impl FnOnce(&mut [u8]) -> Result<usize, TooLong>,
    ) -> Result<(), TooLong> {
        if self.ring.queued() >= BATCH {
            self.flush(socket);
        }
        let i = self.ring.queued();
        let len = write(self.ring.slot(i))?;
        self.ring.push(i, dest, len);
        Ok(())
    }

    /// Datagrams queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.ring.queued()
    }

    /// The buffer of slot `i`, to fill once and resend many times with [`Tx::push`].
    pub fn slot(&mut self, i: usize) -> &mut [u8] {
        self.ring.slot(i)
    }

    /// Queue slot `i` as it is (its first `len` bytes) for `dest`; slots are sent in the order
    /// pushed, each at most once per batch.
    pub fn push(&mut self, i: usize, dest: SocketAddr, len: usize) {
        self.ring.push(i, dest, len);
    }

    /// Send everything queued with `sendmmsg`.
    pub fn flush(&mut self, socket: &UdpSocket) -> SendReport {
        let r = self.ring.send(socket);
        self.sent += r.sent as u64;
        self.failed += r.failed as u64;
        if r.last_error.is_some() {
            self.last_error = r.last_error;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_spread() {
        let base: IpAddr = "127.0.1.254".parse().unwrap();
        assert_eq!(nth_address(base, 0), base);
        assert_eq!(nth_address(base, 3), "127.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn queue_flushes_full_batches() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let rx = bind(ip, 0, Some(Duration::from_millis(500))).unwrap();
        let tx_sock = bind(ip, 0, None).unwrap();
        let dest = rx.local_addr().unwrap();
        let mut tx = Tx::default();
        for i in 0..(BATCH + 3) {
            tx.queue(&tx_sock, dest, |b| {
                b[0] = i as u8;
                Ok(1)
            })
            .unwrap();
        }
        assert_eq!(tx.sent, BATCH as u64);
        assert_eq!(tx.queued(), 3);
        tx.flush(&tx_sock);
        assert_eq!(tx.sent, BATCH as u64 + 3);
        let mut ring = RxRing::default();
        let mut got = 0;
        while got < BATCH + 3 {
            let n = ring.recv(&rx).unwrap();
            assert!(n > 0);
            got += n;
        }
    }
}
