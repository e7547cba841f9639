//! Ethernet frames in the UMEM: finding the SIP datagram in a received frame, and turning the
//! frame into the reply to its sender.
//!
//! Layer: wire format (safe code, no allocation). [`parse`] reads Ethernet (with up to two
//! VLAN tags), IPv4 (options allowed) or IPv6 (extension headers allowed) and UDP with
//! etherparse's zero-copy slices, and checks the frame as the kernel would before a socket saw
//! it: lengths within the frame (padding after the datagram is ignored), the IPv4 header
//! checksum, and the UDP checksum (over IPv4 a zero checksum means "none"; over IPv6 it is
//! mandatory, so zero is invalid). Anything else is a [`Reject`], never a panic. [`write_reply`]
//! rewrites a frame in place into a datagram going back to where the request came from: MAC
//! addresses swapped, VLAN tags kept, a fresh IP header (no options or extension headers) with
//! the addresses swapped, UDP ports swapped, lengths and checksums (IPv4 header, UDP over the
//! pseudo-header, for IPv4 and IPv6) computed. [`write_headers`] does the same around a reply
//! the core already wrote at [`reply_len`]`(info, 0)` of another frame (the worker's path: the
//! reply is never copied).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use etherparse::checksum::Sum16BitWords;
use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};

/// Where the SIP datagram is in a frame, and what a reply needs from the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Ethernet header length, VLAN tags included.
    pub l2_len: usize,
    /// The sender.
    pub peer: SocketAddr,
    /// The address the datagram was sent to.
    pub local: SocketAddr,
    /// Offset of the UDP payload in the frame.
    pub payload_off: usize,
    /// Length of the UDP payload.
    pub payload_len: usize,
}

const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const TTL: u8 = 64;

/// Why a frame is not handed to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not a complete, unfragmented UDP datagram over IPv4 or IPv6 (counted in
    /// `xsk_not_udp`).
    NotUdp,
    /// A complete UDP datagram whose IPv4 header checksum or UDP checksum is wrong, or an IPv6
    /// datagram with no UDP checksum: the kernel would discard it (counted in
    /// `xsk_bad_checksum`).
    BadChecksum,
}

/// Locate the UDP payload of an Ethernet frame and check it as the kernel would.
pub fn parse(frame: &[u8]) -> Result<FrameInfo, Reject> {
    use Reject::NotUdp;
    let offset = |p: *const u8| {
        (p as usize)
            .checked_sub(frame.as_ptr() as usize)
            .ok_or(NotUdp)
    };
    let p = SlicedPacket::from_ethernet(frame).map_err(|_| NotUdp)?;
    let Some(LinkSlice::Ethernet2(_)) = p.link else {
        return Err(NotUdp);
    };
    // VLAN tags only: a MACsec SecTAG (which etherparse reads too) carries the length of what
    // follows, so a reply rewritten behind it would be malformed, and the XDP program never
    // steers MACsec frames here anyway (found by the `xdp_frame` fuzz target).
    if p.link_exts
        .iter()
        .any(|e| !matches!(e, etherparse::LinkExtSlice::Vlan(_)))
    {
        return Err(NotUdp);
    }
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        return Err(NotUdp);
    };
    // etherparse takes a zero UDP length as "up to the end of the IP payload" (jumbograms);
    // the kernel (and the XDP program) call it malformed.
    if usize::from(udp.length()) < UDP_HEADER {
        return Err(NotUdp);
    }
    let pseudo_tail = |sum: Sum16BitWords| {
        sum.add_2bytes([0, 17])
            .add_2bytes(udp.length().to_be_bytes())
            .add_slice(udp.slice())
            .ones_complement()
    };
    let (src, dst, l2_len) = match p.net.as_ref().ok_or(NotUdp)? {
        NetSlice::Ipv4(v4) => {
            if v4.is_payload_fragmented() {
                return Err(NotUdp);
            }
            let h = v4.header();
            // Summed with its checksum field, a correct header (and datagram) sums to zero.
            if Sum16BitWords::new().add_slice(h.slice()).ones_complement() != 0 {
                return Err(Reject::BadChecksum);
            }
            let (s, d) = (h.source_addr(), h.destination_addr());
            // Zero: the sender computed no checksum (allowed over IPv4, RFC 768).
            if udp.checksum() != 0
                && pseudo_tail(
                    Sum16BitWords::new()
                        .add_4bytes(s.octets())
                        .add_4bytes(d.octets()),
                ) != 0
            {
                return Err(Reject::BadChecksum);
            }
            (IpAddr::V4(s), IpAddr::V4(d), offset(h.slice().as_ptr())?)
        }
        NetSlice::Ipv6(v6) => {
            if v6.is_payload_fragmented() {
                return Err(NotUdp);
            }
            let h = v6.header();
            // etherparse reads a zero payload length as a jumbogram's (to the end of the
            // frame); without the hop-by-hop jumbo option the kernel finds no UDP header there.
            if h.payload_length() == 0 {
                return Err(NotUdp);
            }
            let (s, d) = (h.source_addr(), h.destination_addr());
            // Mandatory over IPv6 (RFC 8200 8.1): zero is invalid.
            if udp.checksum() == 0
                || pseudo_tail(
                    Sum16BitWords::new()
                        .add_16bytes(s.octets())
                        .add_16bytes(d.octets()),
                ) != 0
            {
                return Err(Reject::BadChecksum);
            }
            (IpAddr::V6(s), IpAddr::V6(d), offset(h.slice().as_ptr())?)
        }
        _ => return Err(NotUdp),
    };
    let payload = udp.payload();
    Ok(FrameInfo {
        l2_len,
        peer: SocketAddr::new(src, udp.source_port()),
        local: SocketAddr::new(dst, udp.destination_port()),
        payload_off: offset(payload.as_ptr())?,
        payload_len: payload.len(),
    })
}

/// The length of the reply frame for a payload of `len` bytes.
pub fn reply_len(info: &FrameInfo, len: usize) -> usize {
    let ip = if info.peer.is_ipv4() {
        IPV4_HEADER
    } else {
        IPV6_HEADER
    };
    info.l2_len + ip + UDP_HEADER + len
}

/// Rewrite `frame` (the received frame `info` describes, at least [`reply_len`] bytes long)
/// into a datagram carrying `payload` from `info.local` back to `info.peer`. Returns the frame
/// length, or `None` if it does not fit or the payload is too large for UDP.
pub fn write_reply(frame: &mut [u8], info: &FrameInfo, payload: &[u8]) -> Option<usize> {
    let at = reply_len(info, 0);
    frame
        .get_mut(at..at.checked_add(payload.len())?)?
        .copy_from_slice(payload);
    write_headers(frame, info, payload.len())
}

/// Complete the reply frame in `frame` whose payload (`len` bytes) is already in place at
/// `reply_len(info, 0)`, and whose first `info.l2_len` bytes are the received frame's Ethernet
/// header (VLAN tags included): MAC addresses swapped, fresh IP and UDP headers written,
/// checksums computed. The payload is written straight into the frame it leaves in (no copy).
/// Returns the frame length, or `None` if it does not fit or the payload is too large for UDP.
pub fn write_headers(frame: &mut [u8], info: &FrameInfo, len: usize) -> Option<usize> {
    if frame.len() < reply_len(info, len) || info.l2_len < 14 {
        return None;
    }
    // Ethernet: back to the sender's MAC, from ours; VLAN tags and the EtherType stay.
    let (dst, src) = frame[..12].split_at_mut(6);
    dst.swap_with_slice(src);
    write_ip_udp(frame, info.l2_len, info.local, info.peer, len)
}

/// The length of the Ethernet + IP + UDP headers in front of a datagram to `to` sent with
/// [`write_upstream`].
pub fn upstream_room(to: SocketAddr) -> usize {
    14 + if to.is_ipv4() {
        IPV4_HEADER
    } else {
        IPV6_HEADER
    } + UDP_HEADER
}

/// Turn `frame`, whose first `at` bytes are free and whose payload (`len` bytes) follows them,
/// into a datagram from `from` to `to` behind the Ethernet header `eth` (no VLAN tag: the
/// header the kernel would write on the interface itself). The payload moves when `at` is not
/// [`upstream_room`]`(to)` (a request received over IPv4 forwarded over IPv6, a VLAN-tagged
/// request). Returns the frame length, or `None` if it does not fit, the families differ or
/// the payload is too large for UDP.
pub fn write_upstream(
    frame: &mut [u8],
    at: usize,
    eth: &[u8; 14],
    from: SocketAddr,
    to: SocketAddr,
    len: usize,
) -> Option<usize> {
    let room = upstream_room(to);
    if from.is_ipv4() != to.is_ipv4() || frame.len() < room.max(at).checked_add(len)? {
        return None;
    }
    if at != room {
        frame.copy_within(at..at + len, room);
    }
    frame[..14].copy_from_slice(eth);
    write_ip_udp(frame, 14, from, to, len)
}

/// Write the IP header at `ip_at` and the UDP header after it, for `len` payload bytes that
/// follow them, with their checksums. The caller checked that the frame holds it all.
fn write_ip_udp(
    frame: &mut [u8],
    ip_at: usize,
    local: SocketAddr,
    peer: SocketAddr,
    len: usize,
) -> Option<usize> {
    let udp_len = u16::try_from(UDP_HEADER + len).ok()?;
    let ip = if peer.is_ipv4() {
        IPV4_HEADER
    } else {
        IPV6_HEADER
    };
    let total = ip_at + ip + UDP_HEADER + len;
    if frame.len() < total {
        return None;
    }
    let (udp_at, pseudo) = match (local.ip(), peer.ip()) {
        (IpAddr::V4(from), IpAddr::V4(to)) => {
            // Checked: a payload that fits UDP may still not fit IPv4's total length (found by
            // the `xdp_frame` fuzz target).
            let tot = u16::try_from(IPV4_HEADER + usize::from(udp_len)).ok()?;
            let h = &mut frame[ip_at..ip_at + IPV4_HEADER];
            h[0] = 0x45;
            h[1] = 0;
            h[2..4].copy_from_slice(&tot.to_be_bytes());
            h[4..6].copy_from_slice(&[0, 0]);
            h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // Don't Fragment
            h[8] = TTL;
            h[9] = 17; // UDP
            h[10..12].copy_from_slice(&[0, 0]);
            h[12..16].copy_from_slice(&from.octets());
            h[16..20].copy_from_slice(&to.octets());
            // etherparse sums native-endian words: its result goes out in native byte order.
            let sum = Sum16BitWords::new().add_slice(h).ones_complement();
            h[10..12].copy_from_slice(&sum.to_ne_bytes());
            (ip_at + IPV4_HEADER, Pseudo::V4(from, to))
        }
        (IpAddr::V6(from), IpAddr::V6(to)) => {
            let h = &mut frame[ip_at..ip_at + IPV6_HEADER];
            h[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
            h[4..6].copy_from_slice(&udp_len.to_be_bytes());
            h[6] = 17; // UDP
            h[7] = TTL;
            h[8..24].copy_from_slice(&from.octets());
            h[24..40].copy_from_slice(&to.octets());
            (ip_at + IPV6_HEADER, Pseudo::V6(from, to))
        }
        _ => return None,
    };
    let u = &mut frame[udp_at..udp_at + UDP_HEADER];
    u[0..2].copy_from_slice(&local.port().to_be_bytes());
    u[2..4].copy_from_slice(&peer.port().to_be_bytes());
    u[4..6].copy_from_slice(&udp_len.to_be_bytes());
    u[6..8].copy_from_slice(&[0, 0]);
    let sum = match pseudo {
        Pseudo::V4(from, to) => Sum16BitWords::new()
            .add_4bytes(from.octets())
            .add_4bytes(to.octets())
            .add_2bytes([0, 17]),
        Pseudo::V6(from, to) => Sum16BitWords::new()
            .add_16bytes(from.octets())
            .add_16bytes(to.octets())
            .add_2bytes([0, 17]),
    }
    .add_2bytes(udp_len.to_be_bytes())
    .add_slice(&frame[udp_at..total])
    // RFC 768: a computed 0 is sent as 0xffff (0 means "no checksum", forbidden over IPv6).
    .to_ones_complement_with_no_zero();
    frame[udp_at + 6..udp_at + 8].copy_from_slice(&sum.to_ne_bytes());
    Some(total)
}

enum Pseudo {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, VlanId};

    const MAC_PHONE: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const MAC_GW: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn request_v4(vlan: bool) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(MAC_PHONE, MAC_GW);
        let mut out = Vec::new();
        let payload = b"REGISTER sip:gw SIP/2.0\r\n\r\n";
        if vlan {
            b.single_vlan(VlanId::try_new(7).unwrap())
                .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 60)
                .udp(5062, 5060)
                .write(&mut out, payload)
                .unwrap();
        } else {
            b.ipv4([198, 18, 0, 2], [198, 18, 0, 1], 60)
                .udp(5062, 5060)
                .write(&mut out, payload)
                .unwrap();
        }
        out
    }

    fn request_v6() -> Vec<u8> {
        let mut out = Vec::new();
        let from: Ipv6Addr = "2001:2::2".parse().unwrap();
        let to: Ipv6Addr = "2001:2::1".parse().unwrap();
        PacketBuilder::ethernet2(MAC_PHONE, MAC_GW)
            .ipv6(from.octets(), to.octets(), 60)
            .udp(5062, 5060)
            .write(&mut out, b"INVITE sip:x SIP/2.0\r\n\r\n")
            .unwrap();
        out
    }

    /// Check a reply frame with etherparse: addresses swapped, lengths and checksums right.
    fn check_reply(frame: &[u8], req: &FrameInfo, payload: &[u8]) {
        let p = SlicedPacket::from_ethernet(frame).expect("reply parses");
        let Some(LinkSlice::Ethernet2(eth)) = &p.link else {
            panic!("not Ethernet")
        };
        assert_eq!(eth.destination(), MAC_PHONE);
        assert_eq!(eth.source(), MAC_GW);
        let Some(TransportSlice::Udp(udp)) = &p.transport else {
            panic!("not UDP")
        };
        assert_eq!(udp.payload(), payload);
        let back = parse(frame).expect("reply parses as a datagram");
        assert_eq!(back.peer, req.local);
        assert_eq!(back.local, req.peer);
        match p.net.as_ref().unwrap() {
            NetSlice::Ipv4(v4) => {
                let h = v4.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
                let want = udp
                    .to_header()
                    .calc_checksum_ipv4(&h, udp.payload())
                    .unwrap();
                assert_eq!(udp.checksum(), want, "UDP checksum over IPv4");
            }
            NetSlice::Ipv6(v6) => {
                let h = v6.header().to_header();
                let want = udp
                    .to_header()
                    .calc_checksum_ipv6(&h, udp.payload())
                    .unwrap();
                assert_eq!(udp.checksum(), want, "UDP checksum over IPv6");
            }
            _ => panic!("not IP"),
        }
    }

    #[test]
    fn macsec_frames_are_not_ours() {
        // The fuzz finding: a MACsec SecTAG, two 802.1ad tags, IPv6, UDP.
        let frame = [
            0x02, 0x00, 0x00, 0xdf, 0xff, 0xff, 0xf7, 0xff, 0xfc, 0x00, 0x34, 0xa8, 0x88, 0xe5,
            0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x38, 0xa8,
            0x88, 0xe5, 0x20, 0x76, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x00, 0x00, 0x00,
            0x00, 0x02, 0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x09, 0x11, 0x40, 0x20, 0x59,
            0x45, 0x0d, 0x0a, 0x4d, 0x61, 0x78, 0x2d, 0x0d, 0x0a, 0x43, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x3a, 0x20, 0x3a, 0x20, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00,
            0x13, 0x6c, 0x69, 0x7e, 0x65, 0x40, 0x00, 0x00, 0x00, 0xff, 0xff, 0x45, 0x0a, 0x0d,
            0x00, 0x00, 0xdb,
        ];
        assert_eq!(parse(&frame).err(), Some(Reject::NotUdp));
    }

    #[test]
    fn parse_finds_the_datagram() {
        let f = request_v4(false);
        let i = parse(&f).unwrap();
        assert_eq!(i.l2_len, 14);
        assert_eq!(i.peer, "198.18.0.2:5062".parse().unwrap());
        assert_eq!(i.local, "198.18.0.1:5060".parse().unwrap());
        assert_eq!(
            &f[i.payload_off..i.payload_off + i.payload_len],
            b"REGISTER sip:gw SIP/2.0\r\n\r\n"
        );
        let f = request_v4(true);
        assert_eq!(parse(&f).unwrap().l2_len, 18);
        let f = request_v6();
        let i = parse(&f).unwrap();
        assert_eq!(i.peer, "[2001:2::2]:5062".parse().unwrap());
        assert_eq!(i.payload_off, 14 + 40 + 8);
    }

    #[test]
    fn replies_in_place_for_ipv4_vlan_and_ipv6() {
        let reply = b"SIP/2.0 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n";
        for mut f in [request_v4(false), request_v4(true), request_v6()] {
            let info = parse(&f).unwrap();
            f.resize(2048, 0);
            let n = write_reply(&mut f, &info, reply).unwrap();
            assert_eq!(n, reply_len(&info, reply.len()));
            check_reply(&f[..n], &info, reply);
        }
    }

    #[test]
    fn reply_written_into_another_frame_equals_the_in_place_one() {
        let reply = b"SIP/2.0 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
        for req in [request_v4(false), request_v4(true), request_v6()] {
            let info = parse(&req).unwrap();
            let mut in_place = req.clone();
            in_place.resize(2048, 0);
            let n = write_reply(&mut in_place, &info, reply).unwrap();
            // A spare frame full of old bytes: the received L2 header copied in, the reply at
            // its offset, then the headers.
            let mut spare = vec![0xee; 2048];
            spare[..info.l2_len].copy_from_slice(&req[..info.l2_len]);
            let at = reply_len(&info, 0);
            spare[at..at + reply.len()].copy_from_slice(reply);
            assert_eq!(write_headers(&mut spare, &info, reply.len()), Some(n));
            assert_eq!(&spare[..n], &in_place[..n]);
            check_reply(&spare[..n], &info, reply);
            assert_eq!(write_headers(&mut spare[..n - 1], &info, reply.len()), None);
        }
    }

    #[test]
    fn reply_that_does_not_fit_is_refused() {
        let mut f = request_v4(false);
        let info = parse(&f).unwrap();
        let big = vec![b'x'; 100];
        assert!(write_reply(&mut f, &info, &big).is_none());
    }

    #[test]
    fn payload_too_large_for_ipv4_is_refused() {
        // Found by the `xdp_frame` fuzz target: UDP length fits 16 bits, IPv4 total length
        // (20 more) did not, and the sum overflowed.
        let f = request_v4(false);
        let info = parse(&f).unwrap();
        let big = vec![b'x'; 65535 - 8 - 10];
        let mut buf = vec![0u8; reply_len(&info, big.len())];
        assert!(write_reply(&mut buf, &info, &big).is_none());
        let fits = vec![b'x'; 65535 - 28];
        let mut buf = vec![0u8; reply_len(&info, fits.len())];
        assert_eq!(write_reply(&mut buf, &info, &fits), Some(buf.len()));
    }

    #[test]
    fn not_udp_or_truncated_is_none() {
        let f = request_v4(false);
        for n in 0..f.len() - 27 {
            // Cut anywhere before the payload: never a panic, and no datagram claimed beyond
            // the frame.
            if let Ok(i) = parse(&f[..n]) {
                assert!(i.payload_off + i.payload_len <= n);
            }
        }
        let mut tcp = Vec::new();
        PacketBuilder::ethernet2(MAC_PHONE, MAC_GW)
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 60)
            .tcp(1, 5060, 0, 100)
            .write(&mut tcp, b"")
            .unwrap();
        assert_eq!(parse(&tcp), Err(Reject::NotUdp));
        let mut frag = request_v4(false);
        frag[14 + 6] |= 0x20;
        assert_eq!(
            parse(&frag),
            Err(Reject::NotUdp),
            "fragments are not datagrams"
        );
    }

    /// The frame with the 16-bit field at `at` replaced.
    fn set16(mut f: Vec<u8>, at: usize, v: u16) -> Vec<u8> {
        f[at..at + 2].copy_from_slice(&v.to_be_bytes());
        f
    }

    /// The frame with its UDP checksum moved by one (still nonzero).
    fn bad_udp_checksum(f: Vec<u8>, udp_at: usize) -> Vec<u8> {
        let c = u16::from_be_bytes([f[udp_at + 6], f[udp_at + 7]]);
        set16(
            f,
            udp_at + 6,
            if c == 1 { 2 } else { c.wrapping_sub(1).max(1) },
        )
    }

    #[test]
    fn udp_checksums_are_checked_like_the_kernel() {
        let v4_udp = 14 + 20;
        let v6_udp = 14 + 40;
        let good4 = request_v4(false);
        assert!(parse(&good4).is_ok(), "good IPv4 checksum");
        assert!(
            parse(&request_v4(true)).is_ok(),
            "good IPv4 checksum behind a VLAN tag"
        );
        assert!(
            parse(&set16(good4.clone(), v4_udp + 6, 0)).is_ok(),
            "zero over IPv4: no checksum, accepted"
        );
        assert_eq!(
            parse(&bad_udp_checksum(good4.clone(), v4_udp)),
            Err(Reject::BadChecksum),
            "bad IPv4 UDP checksum"
        );
        let mut flipped = good4.clone();
        *flipped.last_mut().unwrap() ^= 0x20; // one payload bit
        assert_eq!(
            parse(&flipped),
            Err(Reject::BadChecksum),
            "payload changed in flight"
        );
        assert_eq!(
            parse(&set16(good4.clone(), 14 + 10, 0x1234)),
            Err(Reject::BadChecksum),
            "bad IPv4 header checksum"
        );

        let good6 = request_v6();
        assert!(parse(&good6).is_ok(), "good IPv6 checksum");
        assert_eq!(
            parse(&set16(good6.clone(), v6_udp + 6, 0)),
            Err(Reject::BadChecksum),
            "zero over IPv6 is invalid"
        );
        assert_eq!(
            parse(&bad_udp_checksum(good6.clone(), v6_udp)),
            Err(Reject::BadChecksum),
            "bad IPv6 UDP checksum"
        );
        // A computed zero goes out as 0xffff and is valid.
        let reply = b"x";
        for mut f in [request_v4(false), request_v6()] {
            let info = parse(&f).unwrap();
            f.resize(2048, 0);
            let n = write_reply(&mut f, &info, reply).unwrap();
            assert!(parse(&f[..n]).is_ok());
        }
    }

    #[test]
    fn lengths_are_checked_against_the_frame() {
        let f = request_v4(false);
        // Link-layer padding after the datagram is not part of it.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 6]);
        let i = parse(&padded).unwrap();
        assert_eq!(i.payload_off + i.payload_len, f.len());
        let mut padded6 = request_v6();
        let len6 = padded6.len();
        padded6.extend_from_slice(&[0; 3]);
        let i = parse(&padded6).unwrap();
        assert_eq!(i.payload_off + i.payload_len, len6);
        // Lengths beyond the frame or the datagram, or a UDP length below 8, are malformed.
        let tot = u16::from_be_bytes([f[16], f[17]]);
        let ulen = u16::from_be_bytes([f[38], f[39]]);
        for (what, bad) in [
            (
                "IPv4 total length beyond the frame",
                set16(f.clone(), 16, tot + 1),
            ),
            (
                "UDP length beyond the datagram",
                set16(f.clone(), 38, ulen + 1),
            ),
            ("UDP length 0", set16(f.clone(), 38, 0)),
            ("UDP length 4", set16(f.clone(), 38, 4)),
        ] {
            assert_eq!(parse(&bad), Err(Reject::NotUdp), "{what}");
        }
        let f6 = request_v6();
        let plen = u16::from_be_bytes([f6[18], f6[19]]);
        assert_eq!(parse(&set16(f6.clone(), 18, plen + 1)), Err(Reject::NotUdp));
        assert_eq!(parse(&set16(f6, 18, 0)), Err(Reject::NotUdp));
    }

    /// Check an upstream frame: the Ethernet header given, the addresses, the payload, and the
    /// checksums (with etherparse's own arithmetic, and by `parse`, which refuses bad ones).
    fn check_upstream(
        frame: &[u8],
        eth: &[u8; 14],
        from: SocketAddr,
        to: SocketAddr,
        payload: &[u8],
    ) {
        assert_eq!(&frame[..14], eth);
        let back = parse(frame).expect("upstream frame parses with good checksums");
        assert_eq!((back.peer, back.local), (from, to));
        assert_eq!(
            &frame[back.payload_off..back.payload_off + back.payload_len],
            payload
        );
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(TransportSlice::Udp(udp)) = &p.transport else {
            panic!("not UDP")
        };
        let want = match p.net.as_ref().unwrap() {
            NetSlice::Ipv4(v4) => {
                let h = v4.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
                assert_eq!(h.time_to_live, TTL);
                udp.to_header()
                    .calc_checksum_ipv4(&h, udp.payload())
                    .unwrap()
            }
            NetSlice::Ipv6(v6) => {
                let h = v6.header().to_header();
                udp.to_header()
                    .calc_checksum_ipv6(&h, udp.payload())
                    .unwrap()
            }
            _ => panic!("not IP"),
        };
        assert_eq!(udp.checksum(), want);
    }

    fn eth(ethertype: u16) -> [u8; 14] {
        let mut e = [0u8; 14];
        e[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        e[6..12].copy_from_slice(&MAC_GW);
        e[12..].copy_from_slice(&ethertype.to_be_bytes());
        e
    }

    #[test]
    fn upstream_frames_for_every_header_size() {
        let payload = b"REGISTER sip:softswitch SIP/2.0\r\nVia: x\r\n\r\n";
        let v4 = |a: &str| -> SocketAddr { a.parse().unwrap() };
        let cases = [
            (v4("198.18.1.1:5060"), v4("198.18.2.2:5070"), 0x0800),
            (v4("[2001:2:1::1]:5060"), v4("[2001:2:2::2]:5060"), 0x86dd),
        ];
        for (from, to, et) in cases {
            let room = upstream_room(to);
            // The payload where the core wrote it: exactly the room, after a longer header
            // (VLAN-tagged IPv6 request), after a shorter one (IPv4 request, IPv6 forward).
            for at in [room, room + 24, room.saturating_sub(20)] {
                let mut frame = vec![0xeeu8; 2048];
                frame[at..at + payload.len()].copy_from_slice(payload);
                let n = write_upstream(&mut frame, at, &eth(et), from, to, payload.len())
                    .expect("fits");
                assert_eq!(n, room + payload.len());
                check_upstream(&frame[..n], &eth(et), from, to, payload);
            }
        }
    }

    #[test]
    fn upstream_frame_that_does_not_fit_or_mixes_families_is_refused() {
        let from: SocketAddr = "198.18.1.1:5060".parse().unwrap();
        let to: SocketAddr = "198.18.2.2:5060".parse().unwrap();
        let to6: SocketAddr = "[2001:2::2]:5060".parse().unwrap();
        let mut frame = vec![0u8; 100];
        assert_eq!(
            write_upstream(&mut frame, 42, &eth(0x0800), from, to, 59),
            None
        );
        assert!(write_upstream(&mut frame, 42, &eth(0x0800), from, to, 58).is_some());
        assert_eq!(
            write_upstream(&mut frame, 62, &eth(0x86dd), from, to6, 10),
            None
        );
        let mut big = vec![0u8; 70_000];
        assert_eq!(
            write_upstream(&mut big, 42, &eth(0x0800), from, to, 65_508),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(i) = parse(&bytes) {
                proptest::prop_assert!(i.payload_off + i.payload_len <= bytes.len());
            }
        }
    }
}
