//! The XDP program in the kernel's verifier and `BPF_PROG_TEST_RUN`, no NIC needed: each row is
//! a description, an input frame, the expected XDP action and the expected counter deltas (every
//! counter not named must stay unchanged). Needs root.

mod common;

use std::mem::MaybeUninit;
use std::net::IpAddr;

use common::*;
use libbpf_rs::skel::OpenSkel as _;
use libbpf_rs::MapHandle;
use libbpf_rs::{MapCore, MapFlags, ProgramInput};
use sipgw_ebpf::{
    config_flags, monotonic_ns, open_skel, read_percpu, Ban, BanPrefix, BanReason, Layout,
    PrefixBans, SipgwSkel, SourceKey, XdpConfig, XDP_COUNTERS,
};

const PASS: u32 = 2; // XDP_PASS
const DROP: u32 = 1; // XDP_DROP

struct Row {
    what: &'static str,
    frame: Vec<u8>,
    action: u32,
    deltas: &'static [(&'static str, u64)],
}

fn row(
    what: &'static str,
    frame: Vec<u8>,
    action: u32,
    deltas: &'static [(&'static str, u64)],
) -> Row {
    Row {
        what,
        frame,
        action,
        deltas,
    }
}

/// Pin this thread to one CPU: per-CPU maps (counters, flood buckets) then add up predictably.
fn pin_to_one_cpu() {
    let mut set = rustix::thread::CpuSet::new();
    set.set(0);
    rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
}

fn load<'o>(obj: &'o mut MaybeUninit<libbpf_rs::OpenObject>) -> SipgwSkel<'o> {
    require_root();
    let open = open_skel(obj, None).expect("open the BPF object");
    open.load()
        .expect("the verifier accepts the program and the maps are created")
}

/// Pinned to one CPU, loaded, configured with `cfg`, port 5060 steered.
fn setup<'o>(obj: &'o mut MaybeUninit<libbpf_rs::OpenObject>, cfg: XdpConfig) -> SipgwSkel<'o> {
    pin_to_one_cpu();
    let skel = load(obj);
    set_config(&skel, cfg);
    add_port(&skel, 5060);
    skel
}

fn set_config(skel: &SipgwSkel<'_>, cfg: XdpConfig) {
    skel.maps
        .config
        .update(&0u32.to_ne_bytes(), &cfg.to_bytes(), MapFlags::ANY)
        .expect("write config");
}

fn add_port(skel: &SipgwSkel<'_>, port: u16) {
    skel.maps
        .sip_ports
        .update(&port.to_ne_bytes(), &[1], MapFlags::ANY)
        .expect("add port");
}

fn ban(skel: &SipgwSkel<'_>, addr: &str, expires_ns: u64) {
    let key = SourceKey::from(addr.parse::<IpAddr>().expect("address"));
    let value = Ban {
        expires_ns,
        created_ns: monotonic_ns(),
        dropped: 0,
        reason: BanReason::Manual,
    };
    skel.maps
        .bans
        .update(&key.0, &value.to_bytes(), MapFlags::ANY)
        .expect("add ban");
}

fn ban_of(skel: &SipgwSkel<'_>, addr: &str) -> Option<Ban> {
    let key = SourceKey::from(addr.parse::<IpAddr>().expect("address"));
    skel.maps
        .bans
        .lookup(&key.0, MapFlags::ANY)
        .expect("lookup ban")
        .map(|v| Ban::from_bytes(&v).expect("ban value"))
}

fn prefixes(skel: &SipgwSkel<'_>) -> PrefixBans<MapHandle> {
    PrefixBans(MapHandle::try_from(&skel.maps.ban_prefixes).expect("dup the trie's fd"))
}

fn ban_prefix(skel: &SipgwSkel<'_>, cidr: &str, expires_ns: u64) {
    let p: BanPrefix = cidr.parse().expect("CIDR");
    assert!(!p.is_host(), "{cidr} belongs in the exact map");
    let value = Ban {
        expires_ns,
        created_ns: monotonic_ns(),
        dropped: 0,
        reason: BanReason::Lockout,
    };
    prefixes(skel).put(&p, &value).expect("add prefix ban");
}

fn prefix_ban_of(skel: &SipgwSkel<'_>, cidr: &str) -> Option<Ban> {
    prefixes(skel)
        .get(&cidr.parse().expect("CIDR"))
        .expect("read the trie")
}

/// Run one frame; returns the action.
fn run(skel: &SipgwSkel<'_>, frame: &[u8]) -> u32 {
    let input = ProgramInput {
        data_in: Some(frame),
        ..ProgramInput::default()
    };
    skel.progs
        .sipgw_xdp
        .test_run(input)
        .expect("BPF_PROG_TEST_RUN")
        .return_value
}

/// Run the rows, checking the action and that exactly the named counters moved by the given
/// amounts.
fn check_rows(skel: &SipgwSkel<'_>, rows: Vec<Row>) {
    let layout = Layout::of(XDP_COUNTERS).expect("counters layout");
    let names: Vec<&str> = layout.names().collect();
    for d in rows.iter().flat_map(|r| r.deltas) {
        assert!(names.contains(&d.0), "row names unknown counter {}", d.0);
    }
    let mut failures = Vec::new();
    for r in rows {
        let before = read_percpu(&skel.maps.counters, &layout).expect("read counters");
        let action = run(skel, &r.frame);
        let after = read_percpu(&skel.maps.counters, &layout).expect("read counters");
        if action != r.action {
            failures.push(format!(
                "{}: action {action}, expected {}",
                r.what, r.action
            ));
        }
        for (i, name) in names.iter().enumerate() {
            let got = after[i] - before[i];
            let want = r
                .deltas
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, d)| *d);
            if got != want {
                failures.push(format!(
                    "{}: {name} moved by {got}, expected {want}",
                    r.what
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const SIP_PASS4: &[(&str, u64)] = &[
    ("packets", 1),
    ("passed", 1),
    ("ipv4", 1),
    ("sip", 1),
    ("sip_to_stack", 1),
];
const SIP_PASS6: &[(&str, u64)] = &[
    ("packets", 1),
    ("passed", 1),
    ("ipv6", 1),
    ("sip", 1),
    ("sip_to_stack", 1),
];
const BANNED4: &[(&str, u64)] = &[
    ("packets", 1),
    ("dropped", 1),
    ("ipv4", 1),
    ("dropped_banned", 1),
];
const BANNED6: &[(&str, u64)] = &[
    ("packets", 1),
    ("dropped", 1),
    ("ipv6", 1),
    ("dropped_banned", 1),
];
const PARSE4: &[(&str, u64)] = &[
    ("packets", 1),
    ("passed", 1),
    ("ipv4", 1),
    ("parse_errors", 1),
];
const PARSE6: &[(&str, u64)] = &[
    ("packets", 1),
    ("passed", 1),
    ("ipv6", 1),
    ("parse_errors", 1),
];

#[test]
fn verdicts_and_counters() {
    let mut obj = MaybeUninit::uninit();
    let skel = setup(&mut obj, XdpConfig::default());
    add_port(&skel, 5080);
    let now = monotonic_ns();
    ban(&skel, "198.18.0.66", now + 3600 * 1_000_000_000);
    ban(&skel, "2001:db8::66", now + 3600 * 1_000_000_000);
    ban(&skel, "198.18.0.88", 0);
    ban(&skel, "198.18.0.77", now - 1);
    ban(&skel, "2001:db8::77", 1);

    let clean = "198.18.0.2";
    let rows = vec![
        row("IPv4 UDP to 5060", udp4(clean, 5060), PASS, SIP_PASS4),
        row(
            "IPv4 UDP to the second SIP port",
            udp4(clean, 5080),
            PASS,
            SIP_PASS4,
        ),
        row(
            "IPv4 UDP to another port",
            udp4(clean, 53),
            PASS,
            &[
                ("packets", 1),
                ("passed", 1),
                ("ipv4", 1),
                ("udp_other_port", 1),
            ],
        ),
        row(
            "IPv4 TCP to 5060 is not SIP over UDP",
            tcp4(clean, 5060),
            PASS,
            &[("packets", 1), ("passed", 1), ("ipv4", 1), ("non_udp", 1)],
        ),
        row(
            "ARP",
            arp(),
            PASS,
            &[("packets", 1), ("passed", 1), ("non_ip", 1)],
        ),
        row(
            "IPv6 UDP to 5060",
            udp6("2001:db8::2", 5060),
            PASS,
            SIP_PASS6,
        ),
        row(
            "IPv6 with two extension headers",
            with_ipv6_ext(udp6("2001:db8::2", 5060), 2),
            PASS,
            SIP_PASS6,
        ),
        row(
            "802.1Q IPv4",
            udp4_vlan(clean, 5060),
            PASS,
            &[
                ("packets", 1),
                ("passed", 1),
                ("vlan", 1),
                ("ipv4", 1),
                ("sip", 1),
                ("sip_to_stack", 1),
            ],
        ),
        row(
            "802.1ad + 802.1Q IPv6",
            udp6_qinq("2001:db8::2", 5060),
            PASS,
            &[
                ("packets", 1),
                ("passed", 1),
                ("vlan", 1),
                ("ipv6", 1),
                ("sip", 1),
                ("sip_to_stack", 1),
            ],
        ),
        row(
            "IPv4 with options",
            with_ipv4_options(udp4(clean, 5060), 3),
            PASS,
            SIP_PASS4,
        ),
        row(
            "IPv4 with the longest options (ihl 15)",
            with_ipv4_options(udp4(clean, 5060), 10),
            PASS,
            SIP_PASS4,
        ),
        row(
            "banned IPv4 source to 5060",
            udp4("198.18.0.66", 5060),
            DROP,
            BANNED4,
        ),
        row(
            "banned IPv4 source, any port (bans cover all traffic by default)",
            tcp4("198.18.0.66", 22),
            DROP,
            BANNED4,
        ),
        row(
            "banned IPv4 source behind a VLAN tag",
            udp4_vlan("198.18.0.66", 5060),
            DROP,
            &[
                ("packets", 1),
                ("dropped", 1),
                ("vlan", 1),
                ("ipv4", 1),
                ("dropped_banned", 1),
            ],
        ),
        row(
            "banned IPv6 source",
            udp6("2001:db8::66", 5060),
            DROP,
            &[
                ("packets", 1),
                ("dropped", 1),
                ("ipv6", 1),
                ("dropped_banned", 1),
            ],
        ),
        row(
            "permanent ban (expiry 0)",
            udp4("198.18.0.88", 5060),
            DROP,
            BANNED4,
        ),
        row(
            "banned source's fragments",
            ipv4_fragment(udp4("198.18.0.66", 5060)),
            DROP,
            BANNED4,
        ),
        row(
            "expired IPv4 ban: passes, entry deleted",
            udp4("198.18.0.77", 5060),
            PASS,
            &[
                ("packets", 1),
                ("passed", 1),
                ("ipv4", 1),
                ("bans_expired", 1),
                ("sip", 1),
                ("sip_to_stack", 1),
            ],
        ),
        row(
            "expired IPv6 ban: passes, entry deleted",
            udp6("2001:db8::77", 5060),
            PASS,
            &[
                ("packets", 1),
                ("passed", 1),
                ("ipv6", 1),
                ("bans_expired", 1),
                ("sip", 1),
                ("sip_to_stack", 1),
            ],
        ),
        row(
            "IPv4 fragment goes to the stack",
            ipv4_fragment(udp4(clean, 5060)),
            PASS,
            &[("packets", 1), ("passed", 1), ("ipv4", 1), ("fragments", 1)],
        ),
        row(
            "IPv6 fragment goes to the stack",
            ipv6_fragment(udp6("2001:db8::2", 5060)),
            PASS,
            &[("packets", 1), ("passed", 1), ("ipv6", 1), ("fragments", 1)],
        ),
        // Truncated and malformed headers at every layer: passed to the stack, counted.
        // (Frames shorter than an Ethernet header never reach XDP: the kernel refuses them in
        // BPF_PROG_TEST_RUN and drivers drop runts, so there is no row for them.)
        row(
            "IPv4 ethertype with nothing after the Ethernet header",
            cut(udp4(clean, 5060), ETH),
            PASS,
            PARSE4,
        ),
        row(
            "VLAN tag cut short",
            cut(udp4_vlan(clean, 5060), ETH + 2),
            PASS,
            &[("packets", 1), ("passed", 1), ("parse_errors", 1)],
        ),
        row(
            "second VLAN tag cut short",
            cut(udp6_qinq("2001:db8::2", 5060), ETH + 4 + 2),
            PASS,
            &[
                ("packets", 1),
                ("passed", 1),
                ("vlan", 1),
                ("parse_errors", 1),
            ],
        ),
        row(
            "IPv4 header cut short",
            cut(udp4(clean, 5060), ETH + 12),
            PASS,
            PARSE4,
        ),
        row(
            "IPv4 ihl below 5",
            poke(udp4(clean, 5060), ETH, 0x44),
            PASS,
            PARSE4,
        ),
        row(
            "IPv4 version 6 in an IPv4 frame",
            poke(udp4(clean, 5060), ETH, 0x65),
            PASS,
            PARSE4,
        ),
        row(
            "IPv4 total length below header length",
            poke(poke(udp4(clean, 5060), ETH + 2, 0), ETH + 3, 12),
            PASS,
            PARSE4,
        ),
        row(
            "IPv4 options longer than the frame",
            cut(with_ipv4_options(udp4(clean, 5060), 10), ETH + 40),
            PASS,
            PARSE4,
        ),
        row(
            "UDP header cut short",
            cut(udp4(clean, 5060), ETH + IP4 + 4),
            PASS,
            PARSE4,
        ),
        row(
            "UDP length below 8",
            poke(poke(udp4(clean, 5060), ETH + IP4 + 4, 0), ETH + IP4 + 5, 4),
            PASS,
            PARSE4,
        ),
        row(
            "IPv6 header cut short",
            cut(udp6("2001:db8::2", 5060), ETH + 30),
            PASS,
            PARSE6,
        ),
        row(
            "IPv6 extension header cut short",
            cut(with_ipv6_ext(udp6("2001:db8::2", 5060), 1), ETH + IP6 + 1),
            PASS,
            PARSE6,
        ),
        row(
            "IPv6 with more extension headers than we walk",
            with_ipv6_ext(udp6("2001:db8::2", 5060), 5),
            PASS,
            PARSE6,
        ),
        row(
            "IPv6 version 4 in an IPv6 frame",
            poke(udp6("2001:db8::2", 5060), ETH, 0x45),
            PASS,
            PARSE6,
        ),
        // Lengths checked as the kernel checks them (ip_rcv, ipv6_rcv, udp_rcv): beyond what
        // carries them is malformed; short of it leaves padding, which the kernel trims.
        row(
            "IPv4 total length beyond the frame",
            adjust16(udp4(clean, 5060), ETH + 2, 1),
            PASS,
            PARSE4,
        ),
        row(
            "IPv4 with link-layer padding after the datagram",
            padded(udp4(clean, 5060), 6),
            PASS,
            SIP_PASS4,
        ),
        row(
            "UDP length beyond the IPv4 datagram",
            adjust16(udp4(clean, 5060), ETH + IP4 + 4, 1),
            PASS,
            PARSE4,
        ),
        row(
            "UDP length beyond the IPv4 datagram, frame padded to cover it",
            padded(adjust16(udp4(clean, 5060), ETH + IP4 + 4, 4), 4),
            PASS,
            PARSE4,
        ),
        row(
            "IPv6 payload length beyond the frame",
            adjust16(udp6("2001:db8::2", 5060), ETH + 4, 1),
            PASS,
            PARSE6,
        ),
        row(
            "IPv6 payload length 0 (no jumbogram)",
            poke(poke(udp6("2001:db8::2", 5060), ETH + 4, 0), ETH + 5, 0),
            PASS,
            PARSE6,
        ),
        row(
            "UDP length beyond the IPv6 payload",
            adjust16(udp6("2001:db8::2", 5060), ETH + IP6 + 4, 1),
            PASS,
            PARSE6,
        ),
        row(
            "IPv6 with padding after the packet",
            padded(udp6("2001:db8::2", 5060), 3),
            PASS,
            SIP_PASS6,
        ),
    ];
    check_rows(&skel, rows);

    assert!(
        ban_of(&skel, "198.18.0.77").is_none(),
        "expired ban deleted"
    );
    assert!(
        ban_of(&skel, "2001:db8::77").is_none(),
        "expired ban deleted"
    );
    let b = ban_of(&skel, "198.18.0.66").expect("active ban kept");
    assert_eq!(b.dropped, 4, "per-ban drop count");
}

#[test]
fn prefix_bans() {
    let mut obj = MaybeUninit::uninit();
    let skel = setup(&mut obj, XdpConfig::default());
    let now = monotonic_ns();
    let hour = now + 3600 * 1_000_000_000;
    ban_prefix(&skel, "2001:db8:1::/64", hour);
    ban_prefix(&skel, "198.18.7.0/24", 0);
    ban_prefix(&skel, "2001:db8:2::/64", now - 1);
    // An expired /24 inside an active /20: the /24 goes, the /20 still drops.
    ban_prefix(&skel, "198.18.16.0/20", hour);
    ban_prefix(&skel, "198.18.17.0/24", 1);
    // An exact ban and a prefix ban of the same source: the exact one counts the drop.
    ban_prefix(&skel, "198.18.32.0/24", hour);
    ban(&skel, "198.18.32.1", hour);

    let expired_then_dropped4: &[(&str, u64)] = &[
        ("packets", 1),
        ("dropped", 1),
        ("ipv4", 1),
        ("dropped_banned", 1),
        ("bans_expired", 1),
    ];
    let rows = vec![
        row(
            "an address inside the banned /64",
            udp6("2001:db8:1::5", 5060),
            DROP,
            BANNED6,
        ),
        row(
            "another address of the /64, any port",
            udp6("2001:db8:1::ffff:1234", 22),
            DROP,
            BANNED6,
        ),
        row(
            "the next /64 passes",
            udp6("2001:db8:1:1::5", 5060),
            PASS,
            SIP_PASS6,
        ),
        row(
            "an address inside the banned IPv4 /24",
            udp4("198.18.7.200", 5060),
            DROP,
            BANNED4,
        ),
        row(
            "the next IPv4 /24 passes",
            udp4("198.18.8.200", 5060),
            PASS,
            SIP_PASS4,
        ),
        row(
            "an IPv4 /24 does not cover the IPv6 address with the same bits",
            udp6("::c612:701", 5060),
            PASS,
            SIP_PASS6,
        ),
        row(
            "expired prefix ban: passes, entry deleted",
            udp6("2001:db8:2::1", 5060),
            PASS,
            &[
                ("packets", 1),
                ("passed", 1),
                ("ipv6", 1),
                ("bans_expired", 1),
                ("sip", 1),
                ("sip_to_stack", 1),
            ],
        ),
        row(
            "expired /24 inside an active /20: deleted, the /20 drops",
            udp4("198.18.17.3", 5060),
            DROP,
            expired_then_dropped4,
        ),
        row(
            "the /20 alone now",
            udp4("198.18.17.4", 5060),
            DROP,
            BANNED4,
        ),
        row(
            "exact and prefix ban of one source",
            udp4("198.18.32.1", 5060),
            DROP,
            BANNED4,
        ),
        row(
            "the prefix covers the neighbours",
            udp4("198.18.32.2", 5060),
            DROP,
            BANNED4,
        ),
    ];
    check_rows(&skel, rows);

    assert_eq!(
        prefix_ban_of(&skel, "2001:db8:1::/64")
            .expect("kept")
            .dropped,
        2,
        "per-prefix drop count"
    );
    assert_eq!(
        prefix_ban_of(&skel, "198.18.7.0/24").expect("kept").dropped,
        1
    );
    assert_eq!(
        prefix_ban_of(&skel, "198.18.16.0/20")
            .expect("kept")
            .dropped,
        2
    );
    assert_eq!(
        prefix_ban_of(&skel, "198.18.32.0/24")
            .expect("kept")
            .dropped,
        1
    );
    assert_eq!(ban_of(&skel, "198.18.32.1").expect("kept").dropped, 1);
    assert!(
        prefix_ban_of(&skel, "2001:db8:2::/64").is_none(),
        "expired deleted"
    );
    assert!(
        prefix_ban_of(&skel, "198.18.17.0/24").is_none(),
        "expired deleted"
    );

    // Pruning removes expired entries the program has not met.
    ban_prefix(&skel, "198.18.64.0/24", 1);
    assert_eq!(prefixes(&skel).prune(monotonic_ns()).expect("prune"), 1);
    assert!(prefix_ban_of(&skel, "198.18.64.0/24").is_none());
    // The longest match, and exact gets that a shorter match does not fool.
    let (p, _) = prefixes(&skel)
        .matching("198.18.17.9".parse().unwrap())
        .expect("read")
        .expect("inside the /20");
    assert_eq!(p.to_string(), "198.18.16.0/20");
    ban_prefix(&skel, "198.18.17.0/24", 0);
    let (p, _) = prefixes(&skel)
        .matching("198.18.17.9".parse().unwrap())
        .expect("read")
        .expect("inside the /24");
    assert_eq!(p.to_string(), "198.18.17.0/24");
    let (p, _) = prefixes(&skel)
        .matching("2001:db8:1::77".parse().unwrap())
        .expect("read")
        .expect("inside the /64");
    assert_eq!(p.to_string(), "2001:db8:1::/64");
    assert!(prefixes(&skel)
        .matching("198.19.0.1".parse().unwrap())
        .expect("read")
        .is_none());
    assert!(
        prefix_ban_of(&skel, "198.18.17.0/25").is_none(),
        "inside a ban, not one"
    );
    assert!(
        prefix_ban_of(&skel, "198.18.16.0/21").is_none(),
        "inside a ban, not one"
    );
    assert!(prefix_ban_of(&skel, "198.18.17.0/24").is_some());
    assert!(prefix_ban_of(&skel, "198.18.16.0/20").is_some());
}

#[test]
fn ban_scope_sip_only() {
    let mut obj = MaybeUninit::uninit();
    let skel = setup(
        &mut obj,
        XdpConfig {
            flags: config_flags::BAN_SIP_ONLY,
            ..XdpConfig::default()
        },
    );
    ban(&skel, "198.18.0.66", 0);
    check_rows(
        &skel,
        vec![
            row(
                "banned source, SIP port: dropped",
                udp4("198.18.0.66", 5060),
                DROP,
                &[
                    ("packets", 1),
                    ("dropped", 1),
                    ("ipv4", 1),
                    ("sip", 1),
                    ("dropped_banned", 1),
                ],
            ),
            row(
                "banned source, SSH: passes",
                tcp4("198.18.0.66", 22),
                PASS,
                &[("packets", 1), ("passed", 1), ("ipv4", 1), ("non_udp", 1)],
            ),
            row(
                "banned source, TCP (a SYN) to the SIP port: dropped",
                tcp4("198.18.0.66", 5060),
                DROP,
                &[
                    ("packets", 1),
                    ("dropped", 1),
                    ("ipv4", 1),
                    ("non_udp", 1),
                    ("dropped_banned", 1),
                ],
            ),
            row(
                "clean source, TCP to the SIP port: passes to the kernel",
                tcp4("198.18.0.1", 5060),
                PASS,
                &[("packets", 1), ("passed", 1), ("ipv4", 1), ("non_udp", 1)],
            ),
        ],
    );
}

#[test]
fn fragments_to_sockets_when_asked() {
    let mut obj = MaybeUninit::uninit();
    let skel = setup(
        &mut obj,
        XdpConfig {
            flags: config_flags::FRAGMENTS_TO_XSK,
            ..XdpConfig::default()
        },
    );
    check_rows(
        &skel,
        vec![row(
            "IPv4 UDP fragment steered (no socket on the queue: to the stack)",
            ipv4_fragment(udp4("198.18.0.2", 5060)),
            PASS,
            &[
                ("packets", 1),
                ("passed", 1),
                ("ipv4", 1),
                ("fragments", 1),
                ("sip_to_stack", 1),
            ],
        )],
    );
}

#[test]
fn flood_guard_limits_each_source() {
    let mut obj = MaybeUninit::uninit();
    // 1 packet per second, bursts of 3: within one test the 4th packet is over the rate.
    let skel = setup(
        &mut obj,
        XdpConfig {
            flags: config_flags::FLOOD_GUARD,
            flood_rate_pps: 1,
            flood_burst: 3,
        },
    );
    let flood: &[(&str, u64)] = &[
        ("packets", 1),
        ("dropped", 1),
        ("ipv4", 1),
        ("sip", 1),
        ("dropped_flood", 1),
    ];
    let mut rows = Vec::new();
    for _ in 0..3 {
        rows.push(row(
            "within the burst",
            udp4("198.18.0.5", 5060),
            PASS,
            SIP_PASS4,
        ));
    }
    rows.push(row("over the rate", udp4("198.18.0.5", 5060), DROP, flood));
    rows.push(row("still over", udp4("198.18.0.5", 5060), DROP, flood));
    rows.push(row(
        "another source has its own bucket",
        udp4("198.18.0.6", 5060),
        PASS,
        SIP_PASS4,
    ));
    rows.push(row(
        "the flooding source's non-SIP traffic is not limited",
        udp4("198.18.0.5", 53),
        PASS,
        &[
            ("packets", 1),
            ("passed", 1),
            ("ipv4", 1),
            ("udp_other_port", 1),
        ],
    ));
    check_rows(&skel, rows);

    // Off again: the same source passes.
    set_config(&skel, XdpConfig::default());
    check_rows(
        &skel,
        vec![row("guard off", udp4("198.18.0.5", 5060), PASS, SIP_PASS4)],
    );
}

#[test]
fn flood_guard_refills() {
    let mut obj = MaybeUninit::uninit();
    // 20 per second, burst 1: a second packet right away is over, one after 100 ms is not.
    let skel = setup(
        &mut obj,
        XdpConfig {
            flags: config_flags::FLOOD_GUARD,
            flood_rate_pps: 20,
            flood_burst: 1,
        },
    );
    let f = udp4("198.18.0.9", 5060);
    assert_eq!(run(&skel, &f), PASS);
    assert_eq!(run(&skel, &f), DROP);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        run(&skel, &f),
        PASS,
        "the bucket refilled after 100 ms at 20/s"
    );
}
