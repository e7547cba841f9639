//! Frames for the XDP tests, built with etherparse and then bent where a row needs a malformed
//! or unusual header. Addresses are in 198.18.0.0/15 and 2001:db8::/32.

#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{PacketBuilder, VlanId};

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
pub const GW4: [u8; 4] = [198, 18, 0, 1];
pub const ETH: usize = 14;
pub const IP4: usize = 20;
pub const IP6: usize = 40;
pub const SIP: &[u8] = b"OPTIONS sip:gw SIP/2.0\r\n\r\n";

pub fn v4(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().expect("IPv4 literal").octets()
}

pub fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().expect("IPv6 literal").octets()
}

/// Ethernet + IPv4 + UDP to `dport`.
pub fn udp4(src: &str, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(v4(src), GW4, 64)
        .udp(40000, dport);
    let mut out = Vec::new();
    b.write(&mut out, SIP).expect("write frame");
    out
}

/// Ethernet + IPv4 + TCP to `dport`.
pub fn tcp4(src: &str, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(v4(src), GW4, 64)
        .tcp(40000, dport, 1, 1024);
    let mut out = Vec::new();
    b.write(&mut out, &[]).expect("write frame");
    out
}

/// Ethernet + IPv6 + UDP to `dport`.
pub fn udp6(src: &str, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(v6(src), v6("2001:db8::1"), 64)
        .udp(40000, dport);
    let mut out = Vec::new();
    b.write(&mut out, SIP).expect("write frame");
    out
}

/// Ethernet + one 802.1Q tag + IPv4 + UDP.
pub fn udp4_vlan(src: &str, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(VlanId::try_new(100).expect("vlan id"))
        .ipv4(v4(src), GW4, 64)
        .udp(40000, dport);
    let mut out = Vec::new();
    b.write(&mut out, SIP).expect("write frame");
    out
}

/// Ethernet + two tags (802.1ad outer, 802.1Q inner) + IPv6 + UDP.
pub fn udp6_qinq(src: &str, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(
            VlanId::try_new(200).expect("vlan id"),
            VlanId::try_new(100).expect("vlan id"),
        )
        .ipv6(v6(src), v6("2001:db8::1"), 64)
        .udp(40000, dport);
    let mut out = Vec::new();
    b.write(&mut out, SIP).expect("write frame");
    // Outer tag as 802.1ad, whatever the builder chose.
    out[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
    out
}

/// An ARP request.
pub fn arp() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&v4("198.18.0.2"));
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&GW4);
    f
}

/// IPv4 frame with `words` 32-bit words of options (NOPs) inserted.
pub fn with_ipv4_options(mut f: Vec<u8>, words: u8) -> Vec<u8> {
    let at = ETH + IP4;
    for _ in 0..words * 4 {
        f.insert(at, 1); // NOP
    }
    f[ETH] = 0x40 | (5 + words);
    let tot = u16::from_be_bytes([f[ETH + 2], f[ETH + 3]]) + u16::from(words) * 4;
    f[ETH + 2..ETH + 4].copy_from_slice(&tot.to_be_bytes());
    f
}

/// IPv4 frame marked as a fragment (More Fragments set).
pub fn ipv4_fragment(mut f: Vec<u8>) -> Vec<u8> {
    f[ETH + 6] |= 0x20;
    f
}

/// IPv6 frame with `n` hop-by-hop/destination-options headers (8 bytes each) before UDP.
pub fn with_ipv6_ext(mut f: Vec<u8>, n: usize) -> Vec<u8> {
    let at = ETH + IP6;
    let mut next = f[ETH + 6];
    for i in 0..n {
        // Destination options, then (outermost) hop-by-hop: [next, len 0, PadN of 4].
        let this = if i + 1 == n { 0u8 } else { 60u8 };
        let ext = [next, 0, 1, 4, 0, 0, 0, 0];
        for (j, b) in ext.iter().enumerate() {
            f.insert(at + j, *b);
        }
        next = this;
    }
    f[ETH + 6] = next;
    let plen = u16::from_be_bytes([f[ETH + 4], f[ETH + 5]]) + (n as u16) * 8;
    f[ETH + 4..ETH + 6].copy_from_slice(&plen.to_be_bytes());
    f
}

/// IPv6 frame with a fragment header before UDP.
pub fn ipv6_fragment(mut f: Vec<u8>) -> Vec<u8> {
    let at = ETH + IP6;
    let ext = [f[ETH + 6], 0, 0, 1, 0, 0, 0, 42];
    for (j, b) in ext.iter().enumerate() {
        f.insert(at + j, *b);
    }
    f[ETH + 6] = 44;
    let plen = u16::from_be_bytes([f[ETH + 4], f[ETH + 5]]) + 8;
    f[ETH + 4..ETH + 6].copy_from_slice(&plen.to_be_bytes());
    f
}

/// The first `n` bytes of a frame.
pub fn cut(mut f: Vec<u8>, n: usize) -> Vec<u8> {
    f.truncate(n);
    f
}

/// A frame with byte `at` replaced.
pub fn poke(mut f: Vec<u8>, at: usize, v: u8) -> Vec<u8> {
    f[at] = v;
    f
}

/// Fails the test (does not skip it) when not root: the kernel tests need CAP_BPF and
/// CAP_NET_ADMIN.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test loads BPF programs into the kernel and must run as root \
         (CI does: `sudo ./scripts/test`, or `sudo -E cargo test -p sipgw-ebpf`)"
    );
}

/// A frame with the big-endian 16-bit field at `at` moved by `delta`.
pub fn adjust16(mut f: Vec<u8>, at: usize, delta: i32) -> Vec<u8> {
    let v = i32::from(u16::from_be_bytes([f[at], f[at + 1]])) + delta;
    let v = u16::try_from(v).expect("field stays in range");
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
    f
}

/// A frame with `n` zero bytes of link-layer padding after the IP datagram.
pub fn padded(mut f: Vec<u8>, n: usize) -> Vec<u8> {
    f.resize(f.len() + n, 0);
    f
}
