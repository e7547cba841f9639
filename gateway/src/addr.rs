//! Address helpers shared by the core and the runtime: one spelling of an address (an
//! IPv4-mapped IPv6 address is its IPv4 address), networks by prefix length, and the bit form the
//! credential store keys its networks by.
//!
//! Every comparison of a peer with a configured address, a ban or an account goes through
//! [`canonical`]: a dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`, and such a peer is
//! the same terminal as `a.b.c.d`.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};

/// `ip` in its canonical form: an IPv4-mapped IPv6 address becomes the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `addr` with its IP in canonical form.
pub fn canonical_peer(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(addr.ip()), addr.port())
}

/// The same IP (canonical forms) and the same port.
pub fn same_peer(a: SocketAddr, b: SocketAddr) -> bool {
    canonical(a.ip()) == canonical(b.ip()) && a.port() == b.port()
}

/// Whether the address is IPv6 (after [`canonical`]), and its bits right-aligned in a `u128`.
pub fn bits(ip: IpAddr) -> (bool, u128) {
    match canonical(ip) {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// `bits` with everything after the first `len` bits of the family's width cleared.
pub fn masked(v6: bool, bits: u128, len: u8) -> u128 {
    let width: u32 = if v6 { 128 } else { 32 };
    let len = u32::from(len).min(width);
    if len == 0 {
        0
    } else {
        let shift = width - len;
        (bits >> shift) << shift
    }
}

/// The network of `ip` with prefix length `prefix` (capped at the family's width): the address
/// with its host bits cleared, and the prefix length used.
pub fn network(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> (IpAddr, u8) {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let len = v4_prefix.min(32);
            let net = masked(false, u128::from(u32::from(a)), len);
            (IpAddr::V4((net as u32).into()), len)
        }
        IpAddr::V6(a) => {
            let len = v6_prefix.min(128);
            (IpAddr::V6(masked(true, u128::from(a), len).into()), len)
        }
    }
}

/// Whether `ip` lies in `net/prefix` (same family after [`canonical`]).
pub fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ((v6, a), (net_v6, n)) = (bits(ip), bits(net));
    v6 == net_v6 && masked(v6, a, prefix) == masked(v6, n, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_address() {
        assert_eq!(canonical(ip("::ffff:198.18.0.7")), ip("198.18.0.7"));
        assert_eq!(canonical(ip("2001:2::7")), ip("2001:2::7"));
        assert!(same_peer(
            "[::ffff:198.18.0.7]:5060".parse().unwrap(),
            "198.18.0.7:5060".parse().unwrap()
        ));
        assert!(!same_peer(
            "198.18.0.7:5061".parse().unwrap(),
            "198.18.0.7:5060".parse().unwrap()
        ));
    }

    #[test]
    fn networks_by_prefix() {
        assert_eq!(network(ip("198.18.7.9"), 24, 64), (ip("198.18.7.0"), 24));
        assert_eq!(network(ip("198.18.7.9"), 40, 64), (ip("198.18.7.9"), 32));
        assert_eq!(network(ip("198.18.7.9"), 0, 64), (ip("0.0.0.0"), 0));
        assert_eq!(network(ip("2001:2::1:2"), 24, 64), (ip("2001:2::"), 64));
        assert_eq!(
            network(ip("2001:2::1:2"), 24, 200),
            (ip("2001:2::1:2"), 128)
        );
        assert!(in_network(ip("198.18.7.9"), ip("198.18.0.0"), 15));
        assert!(in_network(ip("198.19.255.1"), ip("198.18.0.0"), 15));
        assert!(!in_network(ip("198.20.0.1"), ip("198.18.0.0"), 15));
        assert!(in_network(ip("::ffff:198.18.0.1"), ip("198.18.0.0"), 16));
        assert!(!in_network(ip("2001:2::1"), ip("198.18.0.0"), 0));
        assert!(in_network(ip("2001:2::1"), ip("2001:2::"), 48));
        assert!(!in_network(ip("2001:3::1"), ip("2001:2::"), 48));
        assert!(in_network(ip("198.18.0.1"), ip("198.18.0.1"), 32));
    }
}
