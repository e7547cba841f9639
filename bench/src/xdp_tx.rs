//! The flood's raw mode: the same REGISTERs as Ethernet frames written once into an AF_XDP
//! socket's UMEM and transmitted from its TX ring (xsk-rs), one thread per queue — far more
//! datagrams per second than `sendmmsg` gets through the kernel's UDP stack, so the generator
//! stops being the limit when a gateway drops floods in its XDP program.
//!
//! `unsafe` is fenced here: each UMEM frame is either in the free list (ours) or in the TX ring
//! (the kernel's) until the completion ring gives it back; frames are written only while they
//! are ours, before the loop starts, and never again (every send reuses their bytes).

#![allow(unsafe_code)]

use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{Socket, Umem};

/// Where and how to transmit.
#[derive(Debug, Clone)]
pub struct XdpTxOptions {
    /// The interface (facing the gateway).
    pub iface: String,
    /// The gateway's (or next hop's) MAC address.
    pub dst_mac: [u8; 6],
    /// TX queues, one thread each.
    pub queues: u32,
}

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!(
            "MAC address `{s}`: expected six hex bytes like 02:00:00:00:00:01"
        ));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16)
            .map_err(|_| format!("MAC address `{s}`: `{p}` is not a hex byte"))?;
    }
    Ok(mac)
}

/// The interface's own MAC address (from sysfs of the current network namespace).
fn own_mac(iface: &str) -> io::Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("xdp flood: no interface `{iface}` here: {e}"),
        )
    })?;
    parse_mac(text.trim()).map_err(io::Error::other)
}

/// One UDP datagram `payload` from `src` to `dst` as an Ethernet frame.
pub fn frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(payload.len() + 62);
    let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
    let r = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth
            .ipv4(s.octets(), d.octets(), 64)
            .udp(src.port(), dst.port())
            .write(&mut out, payload),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth
            .ipv6(s.octets(), d.octets(), 64)
            .udp(src.port(), dst.port())
            .write(&mut out, payload),
        _ => {
            return Err(io::Error::other(
                "xdp flood: source and gateway differ in IP version",
            ))
        }
    };
    r.map_err(|e| io::Error::other(format!("xdp flood: building a frame: {e}")))?;
    Ok(out)
}

/// What the transmit threads did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Frames the kernel completed.
    pub sent: u64,
    /// Time spent.
    pub elapsed: Duration,
}

const FRAMES: u32 = 4096;
const FRAME_SIZE: u32 = 2048;
const RING: u32 = 2048;
const BATCH: usize = 64;

/// Transmit `frames` (cycled) from every queue until `count` frames, `end` or `stop`.
pub fn flood(
    opts: &XdpTxOptions,
    frames: &[Vec<u8>],
    count: u64,
    end: Instant,
    stop: &AtomicBool,
    on_sent: &(dyn Fn(u64) + Sync),
) -> io::Result<Sent> {
    let queues = opts.queues.clamp(1, 64);
    let results: Vec<io::Result<Sent>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..queues)
            .map(|q| {
                let share = crate::share(count, queues as usize, q as usize);
                s.spawn(move || queue_thread(opts, q, frames, share, end, stop, on_sent))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("an xdp thread panicked")))
            })
            .collect()
    });
    let mut total = Sent::default();
    for r in results {
        let r = r?;
        total.sent += r.sent;
        total.elapsed = total.elapsed.max(r.elapsed);
    }
    Ok(total)
}

fn queue_thread(
    opts: &XdpTxOptions,
    queue: u32,
    frames: &[Vec<u8>],
    count: u64,
    end: Instant,
    stop: &AtomicBool,
    on_sent: &(dyn Fn(u64) + Sync),
) -> io::Result<Sent> {
    let fail = |what: String| {
        io::Error::other(format!("xdp flood on {} queue {queue}: {what}", opts.iface))
    };
    let ring = QueueSize::new(RING).map_err(|e| fail(e.to_string()))?;
    let umem_config = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| fail(e.to_string()))?)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let (umem, mut descs) = Umem::new(
        umem_config,
        NonZeroU32::new(FRAMES).expect("non-zero"),
        false,
    )
    .map_err(|e| fail(format!("UMEM: {e}")))?;
    let name: Interface = opts
        .iface
        .parse()
        .map_err(|_| fail("interface name".to_owned()))?;
    let config = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    // SAFETY: the UMEM is this thread's alone and the (interface, queue) pair is bound once
    // (one thread per queue); no XDP program is loaded (inhibited): the socket only transmits.
    let (mut tx, _rx, rings) = unsafe { Socket::new(config, &umem, &name, queue) }
        .map_err(|e| fail(format!("{e} (does the interface have TX queue {queue}?)")))?;
    let (_fill, mut comp) = rings.ok_or_else(|| fail("no completion ring".to_owned()))?;
    for (i, d) in descs.iter_mut().enumerate() {
        let bytes = &frames[(queue as usize * FRAMES as usize + i) % frames.len()];
        // SAFETY: the frame is ours (nothing was handed to the kernel yet) and belongs to
        // this UMEM.
        let mut data = unsafe { umem.data_mut(d) };
        data.cursor()
            .write_all(bytes)
            .map_err(|e| fail(format!("frame of {} bytes: {e}", bytes.len())))?;
    }
    // The completion ring gives back addresses only (lengths zeroed): a completed frame goes
    // back to the free list as its original descriptor, found by its index in the UMEM.
    let originals = descs.clone();
    let mut free = descs;
    let mut done = free.clone();
    done.truncate(BATCH);
    // Take what the kernel finished sending back into the free list; returns how many.
    let complete = |comp: &mut xsk_rs::CompQueue,
                    done: &mut [xsk_rs::FrameDesc],
                    free: &mut Vec<xsk_rs::FrameDesc>| {
        // SAFETY: `done` holds scratch descriptors; consume overwrites them with frames the
        // kernel finished sending, which are ours again.
        let c = unsafe { comp.consume(done) };
        for d in &done[..c] {
            free.push(originals[d.addr() / FRAME_SIZE as usize]);
        }
        if c > 0 {
            on_sent(c as u64);
        }
        c as u64
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let mut queued = 0u64;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) && sent < count {
        let want = (count - queued).min(BATCH as u64) as usize;
        let n = want.min(free.len()).min(tx.nb_free(want as u32) as usize);
        if n > 0 {
            let at = free.len() - n;
            // SAFETY: these frames are ours (free list) and are not touched again until the
            // completion ring returns them.
            let k = unsafe { tx.produce(&free[at..]) };
            free.truncate(free.len() - k);
            queued += k as u64;
        }
        if tx.needs_wakeup() {
            let _ = tx.wakeup();
        }
        sent += complete(&mut comp, &mut done, &mut free);
    }
    // Let the frames in flight finish (bounded): they count as sent when completed.
    let drain_until = Instant::now() + Duration::from_millis(200);
    while sent < queued && Instant::now() < drain_until {
        let _ = tx.wakeup();
        sent += complete(&mut comp, &mut done, &mut free);
    }
    Ok(Sent {
        sent,
        elapsed: start.elapsed(),
    })
}

/// The frames of a flood: `payloads[i]` from `sources[i % len]`.
pub fn frames(
    opts: &XdpTxOptions,
    gateway: SocketAddr,
    payloads: &[(SocketAddr, Vec<u8>)],
) -> io::Result<Vec<Vec<u8>>> {
    let src_mac = own_mac(&opts.iface)?;
    payloads
        .iter()
        .map(|(src, p)| frame(src_mac, opts.dst_mac, *src, gateway, p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_with_clear_errors() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01").unwrap(),
            [2, 0, 10, 255, 0, 1]
        );
        assert!(parse_mac("02:00").unwrap_err().contains("six hex bytes"));
        assert!(parse_mac("02:00:0a:zz:00:01").unwrap_err().contains("`zz`"));
    }

    #[test]
    fn frames_carry_the_datagram() {
        let f = frame(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            "198.18.1.10:40000".parse().unwrap(),
            "198.18.1.1:5060".parse().unwrap(),
            b"REGISTER sip:x SIP/2.0\r\n\r\n",
        )
        .unwrap();
        let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
            panic!("UDP")
        };
        assert_eq!(u.destination_port(), 5060);
        assert_eq!(u.payload(), b"REGISTER sip:x SIP/2.0\r\n\r\n");
        assert!(frame(
            [0; 6],
            [0; 6],
            "198.18.1.10:1".parse().unwrap(),
            "[2001:2::1]:5060".parse().unwrap(),
            b"x"
        )
        .is_err());
    }
}
