//! The AF_XDP next-hop resolver against the real kernel: two network namespaces joined by a
//! veth pair (plus a second interface and a blackhole route), read over rtnetlink, followed as
//! neighbours appear, and a used STALE neighbour revalidated by the kernel.
//!
//! Needs root and iproute2 (`./scripts/install-deps`); a missing one fails the test with that
//! message. Unique names per test; the namespaces are removed on drop, pass or fail.

use std::net::{IpAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sipgw::runtime::xdp::neigh::{self, Hop, Resolver};

mod support;
use support::{in_ns, run};

struct Pair {
    a: String,
    b: String,
    dev_a: String,
    dev_b: String,
}

impl Pair {
    fn new() -> Pair {
        assert!(
            rustix::process::geteuid().is_root(),
            "the next-hop resolver test builds network namespaces: run it as root \
             (`sudo ./scripts/test`)"
        );
        let id = std::process::id() % 100_000;
        let p = Pair {
            a: format!("sipgw-n{id}-a"),
            b: format!("sipgw-n{id}-b"),
            dev_a: format!("n{id}a"),
            dev_b: format!("n{id}b"),
        };
        let dev_b = p.dev_b.clone();
        for ns in [&p.a, &p.b] {
            run(&["ip", "netns", "add", ns]);
        }
        run(&[
            "ip", "link", "add", &p.dev_a, "netns", &p.a, "type", "veth", "peer", "name", &dev_b,
            "netns", &p.b,
        ]);
        run(&[
            "ip", "-n", &p.a, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
        ]);
        for (ns, dev, addr) in [
            (&p.a, p.dev_a.as_str(), "198.18.3.1/24"),
            (&p.a, p.dev_a.as_str(), "2001:2:3::1/64"),
            (&p.a, "d0", "198.18.4.1/24"),
            (&p.b, dev_b.as_str(), "198.18.3.2/24"),
            (&p.b, dev_b.as_str(), "2001:2:3::2/64"),
        ] {
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev, "nodad"]);
        }
        for (ns, dev) in [
            (&p.a, p.dev_a.as_str()),
            (&p.a, "d0"),
            (&p.b, dev_b.as_str()),
        ] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        // Revalidation goes STALE -> DELAY -> PROBE -> REACHABLE; the DELAY step is 5 s by
        // default.
        run(&[
            "ip",
            "netns",
            "exec",
            &p.a,
            "sysctl",
            "-qw",
            &format!("net.ipv4.neigh.{}.delay_first_probe_time=1", p.dev_a),
        ]);
        run(&[
            "ip",
            "-n",
            &p.a,
            "route",
            "add",
            "198.18.50.0/24",
            "via",
            "198.18.3.2",
        ]);
        run(&[
            "ip",
            "-n",
            &p.a,
            "route",
            "add",
            "blackhole",
            "198.18.66.0/24",
        ]);
        p
    }

    fn ifindex(&self, ns: &str, dev: &str) -> u32 {
        let out = run(&["ip", "-n", ns, "-j", "link", "show", "dev", dev]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["ifindex"].as_u64().unwrap() as u32
    }

    fn mac(&self, ns: &str, dev: &str) -> [u8; 6] {
        let out = run(&["ip", "-n", ns, "-j", "link", "show", "dev", dev]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let s = v[0]["address"].as_str().unwrap();
        let b: Vec<u8> = s
            .split(':')
            .map(|x| u8::from_str_radix(x, 16).unwrap())
            .collect();
        b.try_into().unwrap()
    }

    fn neigh_state(&self, ip: &str) -> String {
        let out = run(&[
            "ip",
            "-n",
            &self.a,
            "-j",
            "neigh",
            "show",
            ip,
            "dev",
            &self.dev_a,
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["state"][0].as_str().unwrap_or("NONE").to_owned()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn next_hops_follow_the_kernel_and_used_stale_neighbours_are_revalidated() {
    let pair = Pair::new();
    let mac_a = pair.mac(&pair.a, &pair.dev_a);
    let mac_b = pair.mac(&pair.b, &pair.dev_b);
    let ifindex = pair.ifindex(&pair.a, &pair.dev_a);
    let resolver = in_ns(&pair.a, move || {
        let hops = neigh::read(ifindex).expect("rtnetlink dump");
        assert_eq!(hops.ifindex, ifindex);
        assert_eq!(hops.mac, mac_a);
        assert!(hops.addrs.contains(&ip("198.18.3.1")), "{:?}", hops.addrs);
        assert!(hops.addrs.contains(&ip("2001:2:3::1")), "{:?}", hops.addrs);
        assert!(
            !hops.addrs.contains(&ip("198.18.4.1")),
            "not the other interface's"
        );
        // Nothing has been sent yet: the next hop is unknown, the rest is elsewhere.
        assert_eq!(
            hops.lookup(ip("198.18.50.7"), ip("0.0.0.0")),
            Hop::Unresolved
        );
        assert_eq!(
            hops.lookup(ip("198.18.3.2"), ip("0.0.0.0")),
            Hop::Unresolved
        );
        assert_eq!(hops.lookup(ip("198.18.4.9"), ip("0.0.0.0")), Hop::Elsewhere);
        assert_eq!(
            hops.lookup(ip("198.18.66.1"), ip("0.0.0.0")),
            Hop::Elsewhere
        );
        assert_eq!(hops.lookup(ip("198.18.3.1"), ip("0.0.0.0")), Hop::Elsewhere);
        assert_eq!(
            hops.lookup(ip("203.0.113.1"), ip("0.0.0.0")),
            Hop::Elsewhere
        );
        let r = Resolver::start(ifindex).expect("resolver");
        // A datagram through the kernel resolves the neighbour (what the fallback does).
        let s = UdpSocket::bind("198.18.3.1:0").unwrap();
        s.send_to(b"x", "198.18.3.2:9").unwrap();
        r
    });
    let published = resolver.published.clone();
    until(
        "the neighbour in a new snapshot",
        Duration::from_secs(3),
        || {
            matches!(
                published.current().lookup(ip("198.18.50.7"), ip("0.0.0.0")),
                Hop::Frame { .. }
            )
        },
    );
    let Hop::Frame { eth, from } = published.current().lookup(ip("198.18.50.7"), ip("0.0.0.0"))
    else {
        unreachable!()
    };
    assert_eq!(&eth[..6], &mac_b, "the gateway's MAC");
    assert_eq!(&eth[6..12], &mac_a, "ours");
    assert_eq!(from, ip("198.18.3.1"));

    // Gone STALE (as it does after reachable_time without traffic through the kernel): used
    // by a lookup, it is revalidated, and the peer answers.
    let mac_b_s = mac_b
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    run(&[
        "ip",
        "-n",
        &pair.a,
        "neigh",
        "replace",
        "198.18.3.2",
        "dev",
        &pair.dev_a,
        "lladdr",
        &mac_b_s,
        "nud",
        "stale",
    ]);
    assert_eq!(pair.neigh_state("198.18.3.2"), "STALE");
    until(
        "the STALE state in a snapshot",
        Duration::from_secs(3),
        || {
            published
                .current()
                .neighbours
                .get(&ip("198.18.3.2"))
                .map(|n| n.state)
                == Some(netlink_packet_route::neighbour::NeighbourState::Stale)
        },
    );
    assert!(matches!(
        published.current().lookup(ip("198.18.50.7"), ip("0.0.0.0")),
        Hop::Frame { .. }
    ));
    until("a revalidation", Duration::from_secs(4), || {
        resolver.stats.revalidated.load(Ordering::Relaxed) >= 1
    });
    until(
        "the kernel to confirm the neighbour",
        Duration::from_secs(5),
        || pair.neigh_state("198.18.3.2") == "REACHABLE",
    );
    // A neighbour that is not used is left alone.
    let before = resolver.stats.revalidated.load(Ordering::Relaxed);
    run(&[
        "ip",
        "-n",
        &pair.a,
        "neigh",
        "replace",
        "198.18.3.77",
        "dev",
        &pair.dev_a,
        "lladdr",
        "02:00:00:00:00:77",
        "nud",
        "stale",
    ]);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(pair.neigh_state("198.18.3.77"), "STALE");
    assert!(resolver.stats.revalidated.load(Ordering::Relaxed) <= before + 1);
    assert_eq!(resolver.stats.errors.load(Ordering::Relaxed), 0);
    drop(resolver);
}
