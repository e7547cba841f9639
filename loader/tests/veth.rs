//! The XDP program on a real veth pair between two network namespaces, attached with
//! `sipgw-loader`: a banned source's UDP never reaches a socket in the gateway namespace while
//! other sources' does, the ban expires, and `bpftool` reads the counters by name.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A UDP receiver on the gateway side counting datagrams per source address.
struct Receiver {
    counts: Arc<Mutex<HashMap<IpAddr, u64>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(net: &Net, binds: &[&str]) -> Receiver {
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for b in binds {
            let addr: SocketAddr = b.parse().expect("bind address");
            let (ready_tx, ready_rx) = mpsc::channel();
            let (counts, stop) = (counts.clone(), stop.clone());
            threads.push(net.in_ns(&net.gw_ns, move || {
                let sock = UdpSocket::bind(addr).expect("bind in the gateway namespace");
                sock.set_read_timeout(Some(Duration::from_millis(50)))
                    .expect("timeout");
                ready_tx.send(()).expect("ready");
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = sock.recv_from(&mut buf) {
                        *counts.lock().expect("lock").entry(from.ip()).or_insert(0) += 1;
                    }
                }
            }));
            ready_rx
                .recv_timeout(Duration::from_secs(5))
                .expect("receiver bound");
        }
        Receiver {
            counts,
            stop,
            threads,
        }
    }

    fn count(&self, from: &str) -> u64 {
        let ip: IpAddr = from.parse().expect("address");
        self.counts
            .lock()
            .expect("lock")
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }

    /// Wait (bounded) until `from` has delivered at least `n` datagrams.
    fn wait_for(&self, from: &str, n: u64, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.count(from) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Send `n` datagrams from `from` to `to`, from the client namespace.
fn send(net: &Net, from: &str, to: &str, n: usize) {
    let from: SocketAddr = SocketAddr::new(from.parse().expect("source"), 0);
    let to: SocketAddr = to.parse().expect("destination");
    net.in_ns(&net.client_ns, move || {
        let s = UdpSocket::bind(from).expect("bind in the client namespace");
        for i in 0..n {
            s.send_to(format!("OPTIONS sip:{i} SIP/2.0\r\n\r\n").as_bytes(), to)
                .expect("send");
        }
    })
    .join()
    .expect("sender");
}

#[test]
fn a_banned_source_never_reaches_the_socket_until_its_ban_expires() {
    let net = Net::new();
    let st = net.attach(&["--mode", "native"]);
    assert_eq!(st["mode"], "native", "{st}");
    assert_eq!(st["ours"], true, "{st}");

    let rx = Receiver::start(
        &net,
        &["198.18.0.1:5060", "198.18.0.1:9999", "[2001:2::1]:5060"],
    );
    let ban_start = Instant::now();
    for a in [ATTACKER4, ATTACKER6] {
        net.json(&[
            "ban", "add", "--iface", &net.gw_if, a, "--ttl", "3", "--reason", "lockout",
        ]);
    }

    const N: usize = 20;
    send(&net, CLIENT4, "198.18.0.1:5060", N);
    send(&net, CLIENT6, "[2001:2::1]:5060", N);
    send(&net, ATTACKER4, "198.18.0.1:5060", N);
    send(&net, ATTACKER6, "[2001:2::1]:5060", N);
    // A ban covers every port of the source, not only SIP.
    send(&net, ATTACKER4, "198.18.0.1:9999", N);
    assert!(
        rx.wait_for(CLIENT4, N as u64, Duration::from_secs(5)),
        "IPv4 client traffic arrives"
    );
    assert!(
        rx.wait_for(CLIENT6, N as u64, Duration::from_secs(5)),
        "IPv6 client traffic arrives"
    );
    // Everything the client sent arrived; the attacker's datagrams were sent before those
    // checks finished, and not one reached a socket.
    assert_eq!(
        rx.count(ATTACKER4),
        0,
        "banned IPv4 source reached the socket"
    );
    assert_eq!(
        rx.count(ATTACKER6),
        0,
        "banned IPv6 source reached the socket"
    );

    // The counters by name, with bpftool and with the loader.
    let dump = net.bpftool_dump("counters");
    let dropped = bpftool_percpu_sum(&dump, "dropped_banned");
    assert!(
        dropped >= 3 * N as u64,
        "bpftool dropped_banned = {dropped}: {dump}"
    );
    assert!(bpftool_percpu_sum(&dump, "sip_to_stack") >= 2 * N as u64);
    assert_eq!(
        bpftool_percpu_sum(&dump, "redirected"),
        0,
        "no AF_XDP socket yet"
    );
    let stats = net.json(&["stats", "--iface", &net.gw_if]);
    assert_eq!(
        stats["xdp"]["dropped_banned"].as_u64(),
        Some(bpftool_percpu_sum(
            &net.bpftool_dump("counters"),
            "dropped_banned"
        )),
        "sipgw-loader stats and bpftool agree: {stats}"
    );
    let bans = net.json(&["ban", "list", "--iface", &net.gw_if]);
    let list = bans.as_array().expect("ban list is an array");
    assert_eq!(list.len(), 2, "{bans}");
    let v4 = list
        .iter()
        .find(|b| b["addr"] == ATTACKER4)
        .expect("IPv4 ban listed");
    assert_eq!(v4["reason"], "lockout");
    assert!(
        v4["dropped"].as_u64().expect("dropped") >= 2 * N as u64,
        "{v4}"
    );

    // The ban expires after 3 s: the attacker's datagrams arrive again (probe every 250 ms,
    // at most 10 s).
    let end = Instant::now() + Duration::from_secs(10);
    let mut delivered = false;
    while Instant::now() < end {
        send(&net, ATTACKER4, "198.18.0.1:5060", 1);
        if rx.wait_for(ATTACKER4, 1, Duration::from_millis(250)) {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "the IPv4 ban did not expire");
    assert!(
        ban_start.elapsed() >= Duration::from_secs(3),
        "the ban ended before its TTL"
    );
    let bans = net.json(&["ban", "list", "--iface", &net.gw_if]);
    assert!(
        !bans
            .as_array()
            .expect("array")
            .iter()
            .any(|b| b["addr"] == ATTACKER4),
        "expired ban still listed: {bans}"
    );
    assert!(bpftool_percpu_sum(&net.bpftool_dump("counters"), "bans_expired") >= 1);
}

#[test]
fn bans_survive_detach_and_reattach() {
    let net = Net::new();
    net.attach(&["--mode", "generic"]);
    let rx = Receiver::start(&net, &["198.18.0.1:5060"]);
    net.json(&["ban", "add", "--iface", &net.gw_if, ATTACKER4]);
    net.ok(&["detach", "--iface", &net.gw_if]);
    // Detached: nothing drops the attacker.
    send(&net, ATTACKER4, "198.18.0.1:5060", 5);
    assert!(
        rx.wait_for(ATTACKER4, 5, Duration::from_secs(5)),
        "no program, no drop"
    );
    // Attached again (another mode): the pinned ban map is reused.
    let st = net.attach(&["--mode", "native"]);
    assert_eq!(st["bans_active"], 1, "{st}");
    send(&net, ATTACKER4, "198.18.0.1:5060", 5);
    send(&net, CLIENT4, "198.18.0.1:5060", 5);
    assert!(rx.wait_for(CLIENT4, 5, Duration::from_secs(5)));
    assert_eq!(
        rx.count(ATTACKER4),
        5,
        "the ban works again after re-attaching"
    );
}

#[test]
fn a_prefix_ban_drops_every_address_of_the_network() {
    let net = Net::new();
    net.attach(&["--mode", "native"]);
    // Two sources of one /64 (not the clean client's).
    const A: &str = "2001:2:0:66::a";
    const B: &str = "2001:2:0:66:ffff::b";
    net.add_client_addr(&format!("{A}/64"));
    net.add_client_addr(&format!("{B}/64"));
    let rx = Receiver::start(&net, &["[2001:2::1]:5060"]);
    let b = net.json(&[
        "ban",
        "add",
        "--iface",
        &net.gw_if,
        "2001:2:0:66::/64",
        "--reason",
        "lockout",
    ]);
    assert_eq!(b["cidr"], "2001:2:0:66::/64", "{b}");
    assert_eq!(b["prefix"], 64, "{b}");

    const N: usize = 20;
    send(&net, A, "[2001:2::1]:5060", N);
    send(&net, B, "[2001:2::1]:5060", N);
    send(&net, CLIENT6, "[2001:2::1]:5060", N);
    assert!(
        rx.wait_for(CLIENT6, N as u64, Duration::from_secs(5)),
        "the clean source outside the /64 arrives"
    );
    assert_eq!(rx.count(A), 0, "{A} is inside the banned /64");
    assert_eq!(rx.count(B), 0, "{B} is inside the banned /64");

    let list = net.json(&["ban", "list", "--iface", &net.gw_if]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["cidr"], "2001:2:0:66::/64");
    assert!(list[0]["dropped"].as_u64().expect("dropped") >= 2 * N as u64);
    // bpftool prints the trie's key and value by name.
    let dump = net.bpftool_dump("ban_prefixes");
    let e = &dump.as_array().expect("array")[0];
    assert_eq!(e["formatted"]["key"]["prefixlen"], 64, "{e}");
    assert_eq!(
        e["formatted"]["value"]["reason"], "SIPGW_BAN_LOCKOUT",
        "{e}"
    );

    net.ok(&["ban", "del", "--iface", &net.gw_if, "2001:2:0:66::/64"]);
    send(&net, A, "[2001:2::1]:5060", N);
    assert!(
        rx.wait_for(A, N as u64, Duration::from_secs(5)),
        "the ban is lifted"
    );
}
