//! The AF_XDP backend end to end in network namespaces: phones ↔ gateway ↔ softswitch, joined
//! by veth pairs, with sipp as phones and as the softswitch, and the XDP program on the
//! gateway's phone-facing interface (native mode, AF_XDP in copy mode as veth allows).
//!
//! Each test builds its own namespaces with unique names and addresses from 198.18.0.0/15 and
//! 2001:2::/48, pins its maps under its own directory, and removes all of it on drop (pass or
//! fail). Needs root, sipp, iproute2 and bpftool (`./scripts/install-deps`); a missing one fails
//! the test with that message.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sipgw::runtime::metrics;
use support::*;

static NEXT: AtomicU32 = AtomicU32::new(0);

const GW4: &str = "198.18.1.1";
const PHONE4: &str = "198.18.1.2";
const ATTACKER4: &str = "198.18.1.3";
const GW6: &str = "2001:2:1::1";
const PHONE6: &str = "2001:2:1::2";
/// Another address of the phones' /64 (a brute-forcer next to the IPv6 phone).
const ATTACKER6: &str = "2001:2:1::3";
const SOFTSWITCH4: &str = "198.18.2.2";

/// Three namespaces: phones (P), gateway (G), softswitch (S).
struct Topo {
    p: String,
    g: String,
    s: String,
    /// The gateway's phone-facing interface (XDP attached here).
    g_phones: String,
    pin_root: PathBuf,
}

/// Where the softswitch is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Behind the gateway's second interface (G ↔ S): the softswitch leg uses the kernel.
    SecondInterface,
    /// Behind the phones' side (P routes between the phones' link and S): the softswitch leg
    /// leaves through the AF_XDP interface, to P's MAC.
    BehindRouter,
}

impl Topo {
    fn new() -> Topo {
        Topo::with(Layout::SecondInterface)
    }

    fn with(layout: Layout) -> Topo {
        assert!(
            rustix::process::geteuid().is_root(),
            "the AF_XDP tests build network namespaces and attach XDP programs: run them as root \
             (`sudo ./scripts/test`)"
        );
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let t = Topo {
            p: format!("sipgw-x{id}-p"),
            g: format!("sipgw-x{id}-g"),
            s: format!("sipgw-x{id}-s"),
            g_phones: format!("x{id}gp"),
            pin_root: PathBuf::from(format!("/sys/fs/bpf/sipgw-xt-{id}")),
        };
        let (gp, pp, gs, ss) = (
            t.g_phones.clone(),
            format!("x{id}pp"),
            format!("x{id}gs"),
            format!("x{id}ss"),
        );
        for ns in [&t.p, &t.g, &t.s] {
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        run(&[
            "ip", "link", "add", &gp, "netns", &t.g, "type", "veth", "peer", "name", &pp, "netns",
            &t.p,
        ]);
        // The softswitch's link: from the gateway (gs), or from the phones' router (P).
        let s_side = if layout == Layout::BehindRouter {
            &t.p
        } else {
            &t.g
        };
        run(&[
            "ip", "link", "add", &gs, "netns", s_side, "type", "veth", "peer", "name", &ss,
            "netns", &t.s,
        ]);
        let addrs: [(&str, &str, &str); 8] = [
            (&t.p, &pp, "198.18.1.2/24"),
            (&t.p, &pp, "198.18.1.3/24"),
            (&t.p, &pp, "2001:2:1::2/64"),
            (&t.p, &pp, "2001:2:1::3/64"),
            (&t.g, &gp, "198.18.1.1/24"),
            (&t.g, &gp, "2001:2:1::1/64"),
            (s_side, &gs, "198.18.2.1/24"),
            (&t.s, &ss, "198.18.2.2/24"),
        ];
        for (ns, dev, a) in addrs {
            run(&["ip", "-n", ns, "addr", "add", a, "dev", dev, "nodad"]);
        }
        for (ns, dev) in [(&t.p, &pp), (&t.g, &gp), (s_side, &gs), (&t.s, &ss)] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        if layout == Layout::BehindRouter {
            run(&[
                "ip",
                "netns",
                "exec",
                &t.p,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]);
            run(&[
                "ip",
                "-n",
                &t.g,
                "route",
                "add",
                "198.18.2.0/24",
                "via",
                PHONE4,
            ]);
            // The softswitch's datagrams cross P into the AF_XDP interface: full checksums,
            // as from the phones (below).
            run(&[
                "ip", "netns", "exec", &t.s, "ethtool", "-K", &ss, "tx", "off",
            ]);
        }
        // The phones' sockets are local to this host: with TX checksum offload on, veth hands
        // their frames over with partial UDP checksums (the kernel trusts those; AF_XDP sees
        // raw frames and drops them as bad, like a NIC's wire would never deliver them). Off,
        // the phones' kernel computes full checksums, as a real sender's NIC does.
        run(&[
            "ip", "netns", "exec", &t.p, "ethtool", "-K", &pp, "tx", "off",
        ]);
        // The softswitch answers the gateway's advertised address (on the phone side).
        run(&[
            "ip",
            "-n",
            &t.s,
            "route",
            "add",
            "default",
            "via",
            "198.18.2.1",
        ]);
        t
    }

    /// `bpftool -j map dump pinned <pins>/<map>`.
    fn dump(&self, map: &str) -> serde_json::Value {
        let path = self.pin_root.join(&self.g_phones).join(map);
        let out = run(&[
            "bpftool",
            "-j",
            "map",
            "dump",
            "pinned",
            path.to_str().expect("path"),
        ]);
        serde_json::from_slice(&out.stdout).expect("bpftool JSON")
    }

    /// A field of the XDP program's per-CPU counters, summed, read with bpftool by name.
    fn xdp_counter(&self, field: &str) -> u64 {
        let dump = self.dump("counters");
        dump[0]["formatted"]["values"]
            .as_array()
            .expect("per-CPU values")
            .iter()
            .map(|v| v["value"][field].as_u64().expect("named field"))
            .sum()
    }

    /// The networks in the pinned `ban_prefixes` trie, as CIDR.
    fn banned_prefixes(&self) -> BTreeSet<String> {
        let dump = self.dump("ban_prefixes");
        dump.as_array()
            .expect("array")
            .iter()
            .map(|e| {
                let key = &e["formatted"]["key"];
                let b: Vec<u8> = key["addr"]["addr"]
                    .as_array()
                    .expect("addr bytes")
                    .iter()
                    .map(|v| v.as_u64().expect("byte") as u8)
                    .collect();
                let a: [u8; 16] = b.try_into().expect("16 bytes");
                let bits = key["prefixlen"].as_u64().expect("prefixlen");
                let addr = std::net::Ipv6Addr::from(a);
                match addr.to_ipv4_mapped() {
                    Some(v4) => format!("{v4}/{}", bits - 96),
                    None => format!("{addr}/{bits}"),
                }
            })
            .collect()
    }

    /// The sources in the pinned ban map.
    fn banned(&self) -> BTreeSet<String> {
        let dump = self.dump("bans");
        dump.as_array()
            .expect("array")
            .iter()
            .map(|e| {
                let b: Vec<u8> = e["formatted"]["key"]["addr"]
                    .as_array()
                    .expect("addr bytes")
                    .iter()
                    .map(|v| v.as_u64().expect("byte") as u8)
                    .collect();
                let a: [u8; 16] = b.try_into().expect("16 bytes");
                std::net::Ipv6Addr::from(a).to_canonical().to_string()
            })
            .collect()
    }

    /// Whether an XDP program is attached to the gateway's phone-facing interface.
    fn xdp_attached(&self) -> bool {
        let out = run(&[
            "ip",
            "-n",
            &self.g,
            "-j",
            "link",
            "show",
            "dev",
            &self.g_phones,
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j");
        v[0].get("xdp").is_some()
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for ns in [&self.p, &self.g, &self.s] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.pin_root);
    }
}

/// `sipgw run` in the gateway namespace with the AF_XDP backend.
struct Gw<'t> {
    topo: &'t Topo,
    proc: Proc,
    dir: Scratch,
    metrics: SocketAddr,
}

const USERS: usize = 20;

impl<'t> Gw<'t> {
    fn config(topo: &Topo, metrics: SocketAddr, extra: &str) -> String {
        format!(
            "credentials = \"users.toml\"\n\n[auth]\nrealm = \"sipgw.test\"\n{extra}\n\
             [gateway]\nbackend = \"xdp\"\nlisten = \"[::]:5060\"\nadvertise = \"{GW4}:5060\"\n\
             softswitch = \"{SOFTSWITCH4}:5060\"\nworkers = 1\nmetrics = \"{metrics}\"\n\n\
             [xdp]\ninterface = \"{}\"\nmode = \"native\"\nzero_copy = \"off\"\n\
             pin_root = \"{}\"\n",
            topo.g_phones,
            topo.pin_root.display()
        )
    }

    fn start(topo: &'t Topo, name: &str, auth: &str) -> Gw<'t> {
        let dir = Scratch::new(name);
        std::fs::write(dir.0.join("users.toml"), credentials(USERS)).unwrap();
        let metrics: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        std::fs::write(dir.0.join("sipgw.toml"), Self::config(topo, metrics, auth)).unwrap();
        let mut gw = Gw {
            topo,
            proc: Proc(None),
            dir,
            metrics,
        };
        gw.launch();
        gw
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join("sipgw.log"))
            .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.topo.g))
            .arg(env!("CARGO_BIN_EXE_sipgw"))
            .args(["--log", "info", "run", "--config"])
            .arg(self.dir.0.join("sipgw.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sipgw");
        self.proc = Proc(Some(child));
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.try_stats().is_none() {
            assert!(
                Instant::now() < deadline,
                "sipgw did not start; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(&mut self) {
        self.proc.signal("-TERM");
        assert_eq!(
            self.proc.wait(Duration::from_secs(10)),
            Some(0),
            "sipgw exits cleanly on SIGTERM: {}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("sipgw.log")).unwrap_or_default()
    }

    fn try_stats(&self) -> Option<HashMap<String, u64>> {
        let (ns, addr) = (self.topo.g.clone(), self.metrics);
        in_ns(&ns, move || {
            metrics::fetch(addr, Duration::from_millis(500)).ok()
        })
        .map(|text| metrics::parse(&text).into_iter().collect())
    }

    fn stat(&self, name: &str) -> u64 {
        let key = format!("sipgw_{name}_total");
        *self
            .try_stats()
            .expect("metrics")
            .get(&key)
            .unwrap_or_else(|| panic!("no metric {key}"))
    }

    /// A sipp UAS softswitch stand-in for `calls` calls.
    fn softswitch(&self, scenario_file: &str, calls: usize) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.topo.s, sipp_binary()])
            .current_dir(&self.dir.0)
            .arg("-sf")
            .arg(scenario(scenario_file))
            .args(["-i", SOFTSWITCH4, "-p", "5060", "-m", &calls.to_string()])
            .args(["-nostdin", "-trace_logs", "-log_file", "softswitch.log"])
            .args(["-timeout", "60s", "-timeout_error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp UAS");
        std::thread::sleep(Duration::from_millis(300));
        Proc(Some(child))
    }

    /// One call from an IPv4 phone to the softswitch: 407, authenticated INVITE,
    /// 200/ACK/BYE; both sipp sides must pass.
    fn call_through(&self) {
        let mut softswitch = self.softswitch("softswitch_call.xml", 1);
        let (u, p) = user(3);
        assert_eq!(
            self.phone(
                "phone_call_caller.xml",
                (&u, &p),
                PHONE4,
                &remote4(),
                1,
                10,
                20
            ),
            Some(0),
            "call: {}",
            self.log()
        );
        assert_eq!(softswitch.wait(Duration::from_secs(10)), Some(0));
    }

    fn softswitch_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("softswitch.log")).unwrap_or_default()
    }

    /// A sipp UAC in the phones namespace from `local` to the gateway at `remote`; its exit code.
    #[allow(clippy::too_many_arguments)]
    fn phone(
        &self,
        scenario_file: &str,
        (user, password): (&str, &str),
        local: &str,
        remote: &str,
        calls: usize,
        rate: u32,
        timeout_s: u32,
    ) -> Option<i32> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.topo.p, sipp_binary()])
            .current_dir(&self.dir.0)
            .arg("-sf")
            .arg(scenario(scenario_file))
            .args(["-s", user, "-au", user, "-ap", password])
            .args(["-i", local, "-p", "0"])
            .args(["-m", &calls.to_string(), "-r", &rate.to_string(), "-l", "1"])
            .args([
                "-timeout",
                &format!("{timeout_s}s"),
                "-timeout_error",
                "-nostdin",
            ])
            .arg(remote)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp UAC");
        Proc(Some(child)).wait(Duration::from_secs(u64::from(timeout_s) + 5))
    }
}

fn remote4() -> String {
    format!("{GW4}:5060")
}

#[test]
fn phones_register_and_call_through_af_xdp_over_ipv4_and_ipv6() {
    let topo = Topo::new();
    let gw = Gw::start(&topo, "xdp-register", "");
    let mut softswitch = gw.softswitch("softswitch_register.xml", USERS + 1);
    for i in 0..USERS {
        let (u, p) = user(i);
        assert_eq!(
            gw.phone("register.xml", (&u, &p), PHONE4, &remote4(), 1, 10, 10),
            Some(0),
            "user {u}: {}",
            gw.log()
        );
    }
    // IPv6: the same program, socket and engine; the answer leaves in the IPv6 frame.
    let (u, p) = user(USERS - 1);
    assert_eq!(
        gw.phone(
            "register.xml",
            (&u, &p),
            PHONE6,
            &format!("[{GW6}]:5060"),
            1,
            10,
            10
        ),
        Some(0),
        "IPv6 phone: {}",
        gw.log()
    );
    assert_eq!(
        softswitch.wait(Duration::from_secs(10)),
        Some(0),
        "the softswitch got {} authenticated REGISTERs: {}",
        USERS + 1,
        gw.softswitch_log()
    );
    let registered: BTreeSet<String> = registered_users(&gw.softswitch_log());
    assert_eq!(registered, (0..USERS).map(|i| user(i).0).collect());

    // Datagrams that are not SIP, of every length, reach the engine through the socket and are
    // counted, never fatal.
    let malformed = gw.stat("malformed");
    in_ns(&topo.p, || {
        let s = std::net::UdpSocket::bind(format!("{PHONE4}:0")).expect("bind");
        let mut x: u32 = 0x2545_f491;
        for len in 1..=64usize {
            let junk: Vec<u8> = (0..len * 20)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            s.send_to(&junk, remote4()).expect("send");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.stat("malformed") < malformed + 64 {
        assert!(Instant::now() < deadline, "junk not counted: {}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }

    // A call: 407, authenticated INVITE, 200/ACK/BYE.
    gw.call_through();

    // The challenges left as XDP TX, written by the core straight into free UMEM frames (none
    // copied: 4 KiB frames have room); the rest through the kernel.
    let challenged = gw.stat("challenged");
    assert_eq!(gw.stat("xsk_reply_copied"), 0);
    assert_eq!(gw.stat("xsk_reply_too_large"), 0);
    assert!(challenged > USERS as u64, "{challenged}");
    assert_eq!(
        gw.stat("xsk_tx_frames"),
        gw.stat("challenged") + gw.stat("forbidden_sent")
    );
    // The softswitch is behind the second interface: its leg stays on the kernel socket.
    assert_eq!(gw.stat("xsk_upstream_frames"), 0);
    assert!(gw.stat("xsk_upstream_elsewhere") >= USERS as u64);
    assert!(gw.stat("xsk_rx_frames") >= 2 * USERS as u64);
    assert_eq!(
        gw.stat("xsk_not_udp") + gw.stat("xsk_tx_ring_full") + gw.stat("xsk_fill_starved"),
        0,
        "no frame lost to ring pressure at this load"
    );
    assert!(gw.stat("forwarded_digest") >= USERS as u64 + 2);
    // bpftool reads both programs' view by name.
    assert!(topo.xdp_counter("redirected") >= 2 * USERS as u64);
    let gw_dump = topo.dump("gw_counters");
    assert_eq!(
        gw_dump[0]["formatted"]["value"]["challenged"].as_u64(),
        Some(challenged),
        "the gateway's counters in the mmapped map: {gw_dump}"
    );
}

#[test]
fn the_softswitch_leg_leaves_on_af_xdp_when_its_next_hop_is_on_the_interface() {
    let topo = Topo::with(Layout::BehindRouter);
    let gw = Gw::start(&topo, "xdp-upstream", "");
    let mut softswitch = gw.softswitch("softswitch_register.xml", USERS);
    for i in 0..USERS {
        let (u, p) = user(i);
        assert_eq!(
            gw.phone("register.xml", (&u, &p), PHONE4, &remote4(), 1, 10, 10),
            Some(0),
            "user {u}: {}",
            gw.log()
        );
    }
    assert_eq!(
        softswitch.wait(Duration::from_secs(10)),
        Some(0),
        "the softswitch got the authenticated REGISTERs over the phones' link: {}",
        gw.softswitch_log()
    );
    let registered: BTreeSet<String> = registered_users(&gw.softswitch_log());
    assert_eq!(registered, (0..USERS).map(|i| user(i).0).collect());
    // A call: the INVITE, ACK and BYE go up, the softswitch's 180/200 and the BYE's 200 come
    // back through the same interface and go down to the phone.
    gw.call_through();

    let up = gw.stat("xsk_upstream_frames");
    let unresolved = gw.stat("xsk_upstream_unresolved");
    let leg = gw.stat("upstream_requests") + gw.stat("responses_forwarded");
    assert!(leg >= USERS as u64 + 4, "{leg}");
    // Every datagram of the leg went on AF_XDP but those sent before the kernel had resolved
    // P's MAC (the kernel socket's first datagram makes it resolve); none took another path.
    assert_eq!(up + unresolved, leg, "{}", gw.log());
    assert!(
        unresolved <= 3,
        "{unresolved} datagrams waited for the neighbour"
    );
    assert_eq!(gw.stat("xsk_upstream_elsewhere"), 0);
    assert_eq!(
        gw.stat("tx_datagrams"),
        unresolved,
        "the kernel socket sent only those"
    );
    assert_eq!(
        gw.stat("xsk_tx_frames"),
        gw.stat("challenged") + gw.stat("forbidden_sent") + up
    );
    // The softswitch's answers came in on AF_XDP too (nothing reached the kernel socket).
    assert_eq!(gw.stat("rx_datagrams"), 0);
    // Each request challenged, each request forwarded and each response forwarded came in as
    // one frame.
    let rx = gw.stat("xsk_rx_frames");
    assert!(rx >= gw.stat("challenged") + leg, "{rx}");
}

#[test]
fn a_brute_force_is_dropped_in_xdp_while_a_phone_keeps_registering_and_after_a_restart() {
    let topo = Topo::new();
    let mut gw = Gw::start(
        &topo,
        "xdp-bruteforce",
        "max_retry = 3\nfailed_suspend = 60\n",
    );
    const LEGIT: usize = 15;
    let mut softswitch = gw.softswitch("softswitch_register.xml", LEGIT);
    let (victim, _) = user(1);
    let legit = user(0);
    let attack = std::thread::scope(|s| {
        // The legitimate phone registers 15 times, 5 per second, during the attack.
        let phone = s.spawn(|| {
            gw.phone(
                "register.xml",
                (&legit.0, &legit.1),
                PHONE4,
                &remote4(),
                LEGIT,
                5,
                30,
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        let attack = gw.phone(
            "bruteforce.xml",
            (&victim, "guess"),
            ATTACKER4,
            &remote4(),
            1,
            10,
            20,
        );
        assert_eq!(
            phone.join().unwrap(),
            Some(0),
            "legitimate phone: {}",
            gw.log()
        );
        attack
    });
    assert_eq!(attack, Some(0), "re-challenged, then 403: {}", gw.log());
    assert_eq!(gw.stat("suspensions"), 1);
    assert_eq!(gw.stat("wrong_password"), 3);
    assert!(gw.stat("xdp_bans_written") >= 1);
    assert!(
        topo.banned().contains(ATTACKER4),
        "the attacker is in the pinned ban map: {:?}",
        topo.banned()
    );
    assert_eq!(softswitch.wait(Duration::from_secs(10)), Some(0));
    let users: BTreeSet<String> = registered_users(&gw.softswitch_log());
    assert_eq!(
        users,
        BTreeSet::from([legit.0.clone()]),
        "only the legitimate phone reached the softswitch: {}",
        gw.softswitch_log()
    );

    // Now even the right password from the attacker's address is dropped in the driver: the
    // gateway never sees it.
    let (_, victim_pw) = user(1);
    let dropped_in_xdp = |gw: &Gw<'_>, received: u64, what: &str| {
        let dropped = topo.xdp_counter("dropped_banned");
        assert_ne!(
            gw.phone(
                "register.xml",
                (&victim, &victim_pw),
                ATTACKER4,
                &remote4(),
                1,
                10,
                2
            ),
            Some(0),
            "{what}"
        );
        assert!(topo.xdp_counter("dropped_banned") > dropped, "{what}");
        assert_eq!(
            gw.stat("received"),
            received,
            "{what}: nothing reached the gateway"
        );
    };
    dropped_in_xdp(&gw, gw.stat("received"), "suspended");

    // A restart: SIGTERM detaches the program; the pinned ban stays and is enforced again.
    gw.stop();
    assert!(!topo.xdp_attached(), "detached on SIGTERM");
    assert!(
        topo.banned().contains(ATTACKER4),
        "the ban survives the restart"
    );
    gw.launch();
    dropped_in_xdp(&gw, 0, "after the restart");
}

#[test]
fn the_udp_backend_enforces_its_bans_through_a_loader_attachment() {
    let topo = Topo::new();
    // What `sipgw-loader attach --iface IF --flood-rate 1000` does, done in the namespace.
    let (ns, target) = (
        topo.g.clone(),
        sipgw_loader::Target {
            iface: topo.g_phones.clone(),
            pin_root: topo.pin_root.clone(),
        },
    );
    let t = target.clone();
    in_ns(&ns, move || {
        sipgw_loader::attach(
            &t,
            &sipgw_loader::AttachOptions {
                mode: sipgw_loader::Mode::Native,
                ports: vec![5060],
                flood_rate: 1000,
                flood_burst: None,
                ban_scope: sipgw_loader::BanScope::All,
                fragments_to_xsk: false,
                force: false,
                mount_bpffs: true,
            },
        )
        .expect("loader attach")
    });
    // The UDP backend, with xdp.interface: kernel sockets, bans in the XDP map.
    let dir = Scratch::new("xdp-udp");
    std::fs::write(dir.0.join("users.toml"), credentials(USERS)).unwrap();
    let metrics: SocketAddr = "127.0.0.1:9464".parse().unwrap();
    let config = Gw::config(&topo, metrics, "max_retry = 3\nfailed_suspend = 60\n")
        .replace("backend = \"xdp\"", "backend = \"udp\"");
    std::fs::write(dir.0.join("sipgw.toml"), config).unwrap();
    let mut gw = Gw {
        topo: &topo,
        proc: Proc(None),
        dir,
        metrics,
    };
    gw.launch();
    let mut softswitch = gw.softswitch("softswitch_register.xml", 1);
    let (u, p) = user(0);
    assert_eq!(
        gw.phone("register.xml", (&u, &p), PHONE4, &remote4(), 1, 10, 10),
        Some(0),
        "{}",
        gw.log()
    );
    assert_eq!(softswitch.wait(Duration::from_secs(10)), Some(0));
    assert_eq!(
        gw.stat("xsk_rx_frames"),
        0,
        "no AF_XDP socket with the UDP backend"
    );
    assert!(
        topo.xdp_counter("sip_to_stack") >= 2,
        "SIP passed to the kernel socket"
    );

    let (victim, _) = user(1);
    assert_eq!(
        gw.phone(
            "bruteforce.xml",
            (&victim, "guess"),
            ATTACKER4,
            &remote4(),
            1,
            10,
            20
        ),
        Some(0),
        "{}",
        gw.log()
    );
    assert!(topo.banned().contains(ATTACKER4), "{:?}", topo.banned());
    let received = gw.stat("received");
    let dropped = topo.xdp_counter("dropped_banned");
    assert_ne!(
        gw.phone(
            "register.xml",
            (&victim, &user(1).1),
            ATTACKER4,
            &remote4(),
            1,
            10,
            2
        ),
        Some(0)
    );
    assert!(topo.xdp_counter("dropped_banned") > dropped);
    assert_eq!(gw.stat("received"), received);
    // The loader's flood guard is untouched by the gateway, and its attachment stays when the
    // gateway stops (the gateway did not make it).
    let cfg = topo.dump("config");
    assert_eq!(
        cfg[0]["formatted"]["value"]["flood_rate_pps"], 1000,
        "{cfg}"
    );
    gw.stop();
    assert!(
        topo.xdp_attached(),
        "the loader's attachment outlives the gateway"
    );
}

#[test]
fn sipgw_check_reports_the_af_xdp_mode_the_driver_gives() {
    let topo = Topo::new();
    let dir = Scratch::new("xdp-check");
    std::fs::write(dir.0.join("users.toml"), credentials(1)).unwrap();
    let metrics: SocketAddr = "127.0.0.1:9464".parse().unwrap();
    let check = |zero_copy: &str| -> String {
        let config = Gw::config(&topo, metrics, "").replace(
            "zero_copy = \"off\"",
            &format!("zero_copy = \"{zero_copy}\""),
        );
        std::fs::write(dir.0.join("sipgw.toml"), config).unwrap();
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", topo.g))
            .arg(env!("CARGO_BIN_EXE_sipgw"))
            .args(["check", "--config"])
            .arg(dir.0.join("sipgw.toml"))
            .output()
            .expect("sipgw check");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    // veth has no AF_XDP zero-copy: auto falls back to copy mode, on cannot bind.
    let auto = check("auto");
    assert!(
        auto.contains(&format!(
            "af_xdp           copy mode on {} (xdp.zero_copy = auto: the driver offers no \
             zero-copy)",
            topo.g_phones
        )),
        "{auto}"
    );
    assert!(
        auto.contains("softswitch leg   AF_XDP when its next hop"),
        "{auto}"
    );
    let off = check("off");
    assert!(
        off.contains("copy mode on") && off.contains("(xdp.zero_copy = off)"),
        "{off}"
    );
    let on = check("on");
    assert!(
        on.contains("mode not probed (xdp.zero_copy = on): AF_XDP socket on")
            && on.contains("not supported"),
        "{on}"
    );
}

#[test]
fn keep_attached_leaves_the_program_on_the_interface() {
    let topo = Topo::new();
    let mut gw = Gw::start(&topo, "xdp-keep", "");
    let path = gw.dir.0.join("sipgw.toml");
    let config = std::fs::read_to_string(&path).unwrap() + "keep_attached = true\n";
    gw.stop();
    assert!(!topo.xdp_attached(), "detached by default");
    std::fs::write(&path, config).unwrap();
    gw.launch();
    gw.stop();
    assert!(topo.xdp_attached(), "xdp.keep_attached = true keeps it");
    // Its socket is unregistered: SIP now goes to the kernel stack (nobody listens there).
    let before = topo.xdp_counter("sip_to_stack");
    in_ns(&topo.p, || {
        let s = std::net::UdpSocket::bind(format!("{PHONE4}:0")).expect("bind");
        s.send_to(b"OPTIONS sip:x SIP/2.0\r\n\r\n", remote4())
            .expect("send");
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while topo.xdp_counter("sip_to_stack") == before {
        assert!(
            Instant::now() < deadline,
            "the datagram was not passed to the stack"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A REGISTER from `PHONE4:port` to the gateway, as the UDP header and payload a raw IPv4
/// socket sends (the kernel adds the IP header and leaves the UDP checksum as given).
fn register_datagram(port: u16, call: &str, checksum_ok: bool) -> Vec<u8> {
    let (u, _) = user(0);
    let payload = format!(
        "REGISTER sip:{GW4} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE4}:{port};branch=z9hG4bK-{call};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{u}@sipgw.test>;tag={call}\r\nTo: <sip:{u}@sipgw.test>\r\n\
         Call-ID: {call}@{PHONE4}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{u}@{PHONE4}:{port}>\r\n\
         Expires: 60\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY, \
         MESSAGE, SUBSCRIBE, PRACK\r\nSupported: path, gruu, outbound, replaces, timer\r\n\
         User-Agent: sipgw-test-phone/1.0 (a raw socket, so that the checksum is ours)\r\n\
         X-Padding: {pad}\r\nContent-Length: 0\r\n\r\n",
        // The challenge may not be larger than the request (limits.amplification_limit).
        pad = "x".repeat(200)
    );
    let gw: std::net::Ipv4Addr = GW4.parse().unwrap();
    let phone: std::net::Ipv4Addr = PHONE4.parse().unwrap();
    let header = etherparse::UdpHeader::without_ipv4_checksum(port, 5060, payload.len())
        .expect("UDP length");
    let sum = header
        .calc_checksum_ipv4_raw(phone.octets(), gw.octets(), payload.as_bytes())
        .expect("checksum");
    let mut header = header;
    // Off by one (never 0, which over IPv4 would mean "no checksum").
    header.checksum = if checksum_ok {
        sum
    } else if sum == 1 {
        2
    } else {
        sum - 1
    };
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(payload.as_bytes());
    out
}

#[test]
fn a_register_with_a_bad_udp_checksum_is_dropped_and_counted() {
    let topo = Topo::new();
    let gw = Gw::start(&topo, "xdp-checksum", "");
    let replies = in_ns(&topo.p, || {
        use rustix::net::{bind, ipproto, sendto, socket, AddressFamily, SendFlags, SocketType};
        let phone: std::net::Ipv4Addr = PHONE4.parse().unwrap();
        let to = SocketAddr::new(GW4.parse().unwrap(), 0);
        let sock = std::net::UdpSocket::bind((phone, 0)).expect("bind the phone's socket");
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let port = sock.local_addr().expect("port").port();
        let raw = socket(AddressFamily::INET, SocketType::RAW, Some(ipproto::UDP))
            .expect("raw IPv4 socket (needs root)");
        bind(&raw, &SocketAddr::new(phone.into(), 0)).expect("bind the raw socket");
        let mut buf = [0u8; 2048];
        let mut answer = |call: &str, ok: bool| {
            let d = register_datagram(port, call, ok);
            sendto(&raw, &d, SendFlags::empty(), &to).expect("send");
            sock.recv_from(&mut buf)
                .ok()
                .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
        };
        // Bad first (nothing may come back), then the same REGISTER intact (challenged: the
        // path works, so the silence was the checksum).
        (answer("badsum1", false), answer("goodsum1", true))
    });
    assert_eq!(
        replies.0,
        None,
        "a bad checksum got an answer: {}",
        gw.log()
    );
    let good = replies.1.unwrap_or_else(|| {
        let mut st: Vec<(String, u64)> = gw
            .try_stats()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect();
        st.sort();
        panic!("no challenge: {st:?} {}", gw.log())
    });
    assert!(
        good.starts_with("SIP/2.0 401") || good.starts_with("SIP/2.0 407"),
        "{good}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.stat("xsk_bad_checksum") < 1 {
        assert!(Instant::now() < deadline, "not counted: {}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gw.stat("xsk_bad_checksum"), 1);
    assert_eq!(gw.stat("xsk_not_udp"), 0);
    assert_eq!(
        gw.stat("challenged"),
        1,
        "only the intact REGISTER reached the engine"
    );
    assert_eq!(
        topo.xdp_counter("redirected"),
        2,
        "both went to the AF_XDP socket"
    );
}

#[test]
fn an_ipv6_brute_force_bans_its_whole_64_in_xdp() {
    let topo = Topo::new();
    // The engine aggregates IPv6 sources by /64: the ban it decides covers the network.
    let gw = Gw::start(
        &topo,
        "xdp-prefix",
        "max_retry = 3\nfailed_suspend = 60\nipv6_prefix = 64\n",
    );
    let remote6 = format!("[{GW6}]:5060");
    let (victim, _) = user(1);
    assert_eq!(
        gw.phone(
            "bruteforce.xml",
            (&victim, "guess"),
            ATTACKER6,
            &remote6,
            1,
            10,
            20
        ),
        Some(0),
        "re-challenged, then 403: {}",
        gw.log()
    );
    assert_eq!(gw.stat("suspensions"), 1, "{}", gw.log());
    assert!(gw.stat("xdp_bans_written") >= 1, "{}", gw.log());
    assert_eq!(gw.stat("xdp_map_errors"), 0, "{}", gw.log());
    assert_eq!(
        topo.banned_prefixes(),
        BTreeSet::from(["2001:2:1::/64".to_owned()]),
        "the /64 is in the trie, not one address in the exact map"
    );
    assert!(topo.banned().is_empty(), "{:?}", topo.banned());

    // Another address of the /64 (the IPv6 phone, which did nothing wrong) is dropped in the
    // driver too; IPv4 from the same host is another network and still served.
    let received = gw.stat("received");
    let dropped = topo.xdp_counter("dropped_banned");
    let (u, p) = user(0);
    assert_ne!(
        gw.phone("register.xml", (&u, &p), PHONE6, &remote6, 1, 10, 2),
        Some(0),
        "a phone inside the banned /64 got through"
    );
    assert!(topo.xdp_counter("dropped_banned") > dropped);
    assert_eq!(gw.stat("received"), received, "nothing reached the gateway");
    let _softswitch = gw.softswitch("softswitch_register.xml", 1);
    assert_eq!(
        gw.phone("register.xml", (&u, &p), PHONE4, &remote4(), 1, 10, 10),
        Some(0),
        "IPv4 is outside the ban: {}",
        gw.log()
    );
}
