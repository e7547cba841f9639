//! `xdp_frame`: parsing Ethernet frames as the AF_XDP path receives them, and rewriting the
//! ones that parse into the reply to their sender.

use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use sipgw::runtime::xdp::frame;

const UDP_HEADER: usize = 8;
const IPV4_HEADER: usize = 20;

/// Input: one mode byte (the reply payload's length class), then the frame.
///
/// Properties: no panic; a frame that parses locates a payload inside itself; its reply
/// (written in a buffer of [`frame::reply_len`] bytes or more) is refused only when the
/// payload is too large for one UDP datagram, and otherwise parses again with the MAC
/// addresses, IP addresses and ports swapped, the payload in place, the lengths right and
/// the IPv4 header and UDP checksums verifying.
pub fn xdp_frame(data: &[u8]) {
    let Some((&mode, frame_bytes)) = data.split_first() else {
        return;
    };
    let Ok(info) = frame::parse(frame_bytes) else {
        return;
    };
    assert!(info.l2_len >= 14 && info.l2_len <= info.payload_off);
    assert!(info.payload_off + info.payload_len <= frame_bytes.len());
    let request = &frame_bytes[info.payload_off..info.payload_off + info.payload_len];
    let len = match mode >> 6 {
        0 => usize::from(mode & 63) * 8,
        1 => info.payload_len,
        2 => 1400 + usize::from(mode & 63) * 40,
        _ => 65535 - UDP_HEADER - IPV4_HEADER - 32 + usize::from(mode & 63),
    };
    let payload: Vec<u8> = request.iter().copied().cycle().take(len).collect();
    let payload = if payload.len() == len {
        payload
    } else {
        vec![b'x'; len]
    };
    let total = frame::reply_len(&info, len);
    let mut buf = frame_bytes.to_vec();
    buf.resize(buf.len().max(total), 0);
    let v4 = info.peer.is_ipv4();
    let fits = if v4 {
        IPV4_HEADER + UDP_HEADER + len <= 65535
    } else {
        UDP_HEADER + len <= 65535
    };
    let Some(n) = frame::write_reply(&mut buf, &info, &payload) else {
        assert!(!fits, "a reply of {len} bytes refused");
        return;
    };
    assert!(
        fits,
        "a reply of {len} bytes over {}",
        if v4 { "IPv4" } else { "IPv6" }
    );
    assert_eq!(n, total);
    let reply = &buf[..n];

    // Re-parse with the gateway's parser: the addresses swapped, the payload in place.
    let back = frame::parse(reply).expect("the reply parses");
    assert_eq!(back.peer, info.local);
    assert_eq!(back.local, info.peer);
    assert_eq!(back.l2_len, info.l2_len);
    assert_eq!(back.payload_len, len);
    assert_eq!(
        &reply[back.payload_off..back.payload_off + len],
        &payload[..]
    );
    assert_eq!(&reply[..6], &frame_bytes[6..12], "to the sender's MAC");
    assert_eq!(&reply[6..12], &frame_bytes[..6], "from ours");
    assert_eq!(
        &reply[12..info.l2_len],
        &frame_bytes[12..info.l2_len],
        "VLAN tags kept"
    );

    // And with etherparse: lengths and checksums.
    let p = SlicedPacket::from_ethernet(reply).expect("etherparse reads the reply");
    assert!(matches!(p.link, Some(LinkSlice::Ethernet2(_))));
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        panic!("the reply is not UDP")
    };
    assert_eq!(usize::from(udp.length()), UDP_HEADER + len);
    assert_eq!(udp.payload(), &payload[..]);
    match p.net.as_ref().expect("an IP header") {
        NetSlice::Ipv4(ip) => {
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
            assert_eq!(usize::from(h.total_len), IPV4_HEADER + UDP_HEADER + len);
            assert!(!ip.is_payload_fragmented());
            let want = udp
                .to_header()
                .calc_checksum_ipv4(&h, udp.payload())
                .expect("checksum");
            assert_eq!(udp.checksum(), want, "UDP checksum over IPv4");
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header().to_header();
            assert_eq!(usize::from(h.payload_length), UDP_HEADER + len);
            let want = udp
                .to_header()
                .calc_checksum_ipv6(&h, udp.payload())
                .expect("checksum");
            assert_eq!(udp.checksum(), want, "UDP checksum over IPv6");
        }
        _ => panic!("the reply is not IP"),
    }
}
