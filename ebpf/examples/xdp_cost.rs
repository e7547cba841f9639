//! What one frame costs the XDP program, per verdict path, measured in the kernel with
//! `BPF_PROG_TEST_RUN` (`repeat` runs, the kernel's own average). Needs root.
//!
//! ```sh
//! cargo run --release -p sipgw-ebpf --example xdp_cost [REPEAT]
//! ```

use std::mem::MaybeUninit;
use std::net::IpAddr;

use etherparse::PacketBuilder;
use libbpf_rs::skel::OpenSkel as _;
use libbpf_rs::{MapCore, MapFlags, ProgramInput};
use sipgw_ebpf::{config_flags, monotonic_ns, open_skel, Ban, BanReason, SourceKey, XdpConfig};

fn udp4(src: [u8; 4], dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, [198, 18, 0, 1], 64)
        .udp(40000, dport)
        .write(&mut out, &[b'x'; 400])
        .expect("frame");
    out
}

fn main() {
    let repeat: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("REPEAT is a number"))
        .unwrap_or(1_000_000);
    assert!(
        rustix::process::geteuid().is_root(),
        "xdp_cost loads the program into the kernel: run it as root"
    );
    let mut obj = MaybeUninit::uninit();
    let skel = open_skel(&mut obj, None)
        .expect("open")
        .load()
        .expect("load (verifier)");
    skel.maps
        .sip_ports
        .update(&5060u16.to_ne_bytes(), &[1], MapFlags::ANY)
        .expect("port");
    let banned = [198, 18, 0, 66];
    let ban = Ban {
        expires_ns: monotonic_ns() + 3_600_000_000_000,
        created_ns: monotonic_ns(),
        dropped: 0,
        reason: BanReason::Manual,
    };
    skel.maps
        .bans
        .update(
            &SourceKey::from(IpAddr::from(banned)).0,
            &ban.to_bytes(),
            MapFlags::ANY,
        )
        .expect("ban");
    let set = |c: XdpConfig| {
        skel.maps
            .config
            .update(&0u32.to_ne_bytes(), &c.to_bytes(), MapFlags::ANY)
            .expect("config")
    };
    let run = |what: &str, frame: &[u8]| {
        let input = ProgramInput {
            data_in: Some(frame),
            repeat,
            ..ProgramInput::default()
        };
        let out = skel.progs.sipgw_xdp.test_run(input).expect("test run");
        let ns = out.duration.as_nanos();
        println!(
            "{what:<52} {ns:>5} ns/frame  ({:.1} M frames/s per core)",
            1000.0 / ns.max(1) as f64
        );
    };
    println!("BPF_PROG_TEST_RUN, {repeat} repetitions each, 442-byte frames:");
    set(XdpConfig::default());
    run("banned source → XDP_DROP", &udp4(banned, 5060));
    run(
        "SIP from a clean source → steered (no socket: pass)",
        &udp4([198, 18, 0, 2], 5060),
    );
    run("other UDP port → pass", &udp4([198, 18, 0, 2], 53));
    set(XdpConfig {
        flags: config_flags::FLOOD_GUARD,
        flood_rate_pps: 10,
        flood_burst: 10,
    });
    run(
        "flood guard on, source over its rate → XDP_DROP",
        &udp4([198, 18, 0, 9], 5060),
    );
}
