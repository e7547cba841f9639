//! Network namespaces joined by a veth pair, made and removed by each test, and a way to run
//! `sipgw-loader` inside them.
//!
//! Names are unique per process and test (tests run in parallel), addresses come from
//! 198.18.0.0/15 and 2001:2::/48 (the benchmarking ranges) and exist only inside the
//! namespaces, which are deleted (with their links) and whose pin directories are removed on
//! drop, also when the test fails. The loader runs under `nsenter --net=` so that it sees the
//! namespace's interfaces but the host's /sys/fs/bpf (`ip netns exec` would remount /sys).

#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const GW4: &str = "198.18.0.1";
pub const CLIENT4: &str = "198.18.0.2";
pub const ATTACKER4: &str = "198.18.0.3";
pub const GW6: &str = "2001:2::1";
pub const CLIENT6: &str = "2001:2::2";
pub const ATTACKER6: &str = "2001:2::3";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Fails (never skips) without root: these tests attach XDP programs.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test creates network namespaces and attaches XDP programs: run it as root \
         (`sudo ./scripts/test`)"
    );
    for tool in ["ip", "nsenter", "bpftool"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "`{tool}` is missing: run scripts/install-deps as root (iproute2, util-linux, bpftool)"
        );
    }
}

fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two namespaces, `gw` and `client`, joined by a veth pair.
pub struct Net {
    pub gw_ns: String,
    pub client_ns: String,
    /// The gateway-side interface (where XDP is attached).
    pub gw_if: String,
    pub client_if: String,
    /// The pin root this test uses (on the host's bpffs).
    pub pin_root: PathBuf,
}

impl Net {
    pub fn new() -> Net {
        require_root();
        let id = format!(
            "{}{}",
            std::process::id() % 1_000_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let net = Net {
            gw_ns: format!("sipgw-t{id}-gw"),
            client_ns: format!("sipgw-t{id}-cl"),
            gw_if: format!("sg{id}g"),
            client_if: format!("sg{id}c"),
            pin_root: PathBuf::from(format!("/sys/fs/bpf/sipgw-test-{id}")),
        };
        // From here on, Drop cleans up whatever was made.
        sh(&["ip", "netns", "add", &net.gw_ns]);
        sh(&["ip", "netns", "add", &net.client_ns]);
        sh(&[
            "ip",
            "link",
            "add",
            &net.gw_if,
            "netns",
            &net.gw_ns,
            "type",
            "veth",
            "peer",
            "name",
            &net.client_if,
            "netns",
            &net.client_ns,
        ]);
        for (ns, ifname, addrs) in [
            (
                &net.gw_ns,
                &net.gw_if,
                vec![format!("{GW4}/24"), format!("{GW6}/64")],
            ),
            (
                &net.client_ns,
                &net.client_if,
                vec![
                    format!("{CLIENT4}/24"),
                    format!("{ATTACKER4}/24"),
                    format!("{CLIENT6}/64"),
                    format!("{ATTACKER6}/64"),
                ],
            ),
        ] {
            for a in &addrs {
                sh(&["ip", "-n", ns, "addr", "add", a, "dev", ifname, "nodad"]);
            }
            sh(&["ip", "-n", ns, "link", "set", "dev", ifname, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "dev", "lo", "up"]);
        }
        // Static neighbours: no ARP or neighbour discovery races (a banned source's
        // solicitations are dropped too).
        let mac = |ns: &str, ifname: &str| -> String {
            let out = sh(&["ip", "-n", ns, "-j", "link", "show", "dev", ifname]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j");
            v[0]["address"].as_str().expect("MAC address").to_owned()
        };
        let gw_mac = mac(&net.gw_ns, &net.gw_if);
        let client_mac = mac(&net.client_ns, &net.client_if);
        for gw in [GW4, GW6] {
            sh(&[
                "ip",
                "-n",
                &net.client_ns,
                "neigh",
                "replace",
                gw,
                "lladdr",
                &gw_mac,
                "dev",
                &net.client_if,
                "nud",
                "permanent",
            ]);
        }
        for c in [CLIENT4, ATTACKER4, CLIENT6, ATTACKER6] {
            sh(&[
                "ip",
                "-n",
                &net.gw_ns,
                "neigh",
                "replace",
                c,
                "lladdr",
                &client_mac,
                "dev",
                &net.gw_if,
                "nud",
                "permanent",
            ]);
        }
        net
    }

    /// One more source address on the client side (`ADDR/64` or `/24`, no duplicate address
    /// detection), for tests that need sources outside the usual ones.
    pub fn add_client_addr(&self, cidr: &str) {
        sh(&[
            "ip",
            "-n",
            &self.client_ns,
            "addr",
            "add",
            cidr,
            "dev",
            &self.client_if,
            "nodad",
        ]);
    }

    /// Run `sipgw-loader --pin-root <ours> ARGS` inside the gateway namespace.
    pub fn loader(&self, args: &[&str]) -> Output {
        self.loader_with_root(&self.pin_root, args)
    }

    /// The same with another pin root.
    pub fn loader_with_root(&self, root: &Path, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.gw_ns))
            .arg(env!("CARGO_BIN_EXE_sipgw-loader"))
            .arg("--pin-root")
            .arg(root)
            .args(args)
            .output()
            .expect("run sipgw-loader")
    }

    /// `loader` that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.loader(args);
        assert!(
            out.status.success(),
            "sipgw-loader {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// `loader` that must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.loader(args);
        assert!(
            !out.status.success(),
            "sipgw-loader {args:?} succeeded but should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("UTF-8 output")
    }

    /// `ok` with `-j`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).expect("JSON output")
    }

    /// Attach on the gateway interface (mounting bpffs if needed).
    pub fn attach(&self, extra: &[&str]) -> serde_json::Value {
        let mut a = vec!["attach", "--iface", &self.gw_if, "--mount-bpffs"];
        a.extend_from_slice(extra);
        self.json(&a)
    }

    /// Run `f` on a thread that has entered namespace `ns` (sockets it makes live there).
    pub fn in_ns<T: Send + 'static>(
        &self,
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns into the test namespace");
            f()
        })
    }

    /// `bpftool -j map dump pinned <pin dir>/<map>`, parsed.
    pub fn bpftool_dump(&self, map: &str) -> serde_json::Value {
        let path = self.pin_root.join(&self.gw_if).join(map);
        let out = sh(&[
            "bpftool",
            "-j",
            "map",
            "dump",
            "pinned",
            path.to_str().expect("UTF-8"),
        ]);
        serde_json::from_slice(&out.stdout).expect("bpftool JSON")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting the namespaces deletes the veth pair and detaches the program.
        for ns in [&self.gw_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.pin_root);
    }
}

/// Sum a named field over every CPU in `bpftool -j map dump` output of a per-CPU array.
pub fn bpftool_percpu_sum(dump: &serde_json::Value, field: &str) -> u64 {
    let entries = dump.as_array().expect("bpftool dump is an array");
    let mut sum = 0;
    for e in entries {
        let values = e["formatted"]["values"]
            .as_array()
            .unwrap_or_else(|| panic!("no formatted per-CPU values in {e}"));
        for v in values {
            sum += v["value"][field]
                .as_u64()
                .unwrap_or_else(|| panic!("no field {field} in {v}"));
        }
    }
    sum
}
