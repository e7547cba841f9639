//! Every `sipgw-loader` subcommand, its success and its error paths, on a veth pair in network
//! namespaces of the test's own. Needs root.

mod common;

use std::process::Command;

use common::*;

#[test]
fn attach_status_detach_purge() {
    let net = Net::new();
    let st = net.attach(&[
        "--mode",
        "native",
        "--ports",
        "5080,5060,5060",
        "--flood-rate",
        "100",
    ]);
    assert_eq!(st["attached"], true, "{st}");
    assert_eq!(st["ours"], true);
    assert_eq!(st["mode"], "native");
    assert_eq!(st["prog_name"], "sipgw_xdp");
    assert_eq!(st["ports"], serde_json::json!([5060, 5080]));
    assert_eq!(st["config"]["flood_rate_pps"], 100);
    assert_eq!(
        st["config"]["flood_burst"], 100,
        "burst defaults to one second's worth"
    );
    assert_eq!(st["config"]["ban_scope"], "all");
    assert_eq!(st["bans_active"], 0);
    for p in st["pinned"].as_array().expect("pinned list") {
        assert_eq!(p["present"], true, "{p}");
    }

    // The human form says the same.
    let text = net.ok(&["status", "--iface", &net.gw_if]);
    assert!(text.contains("`sipgw_xdp` in native mode"), "{text}");
    assert!(text.contains("sip ports:  5060,5080"), "{text}");
    assert!(text.contains("100 packets/s per source"), "{text}");

    // Re-attaching replaces the configuration in place (same mode: no gap).
    let st = net.attach(&[
        "--ports",
        "5062",
        "--ban-scope",
        "sip",
        "--fragments-to-xsk",
    ]);
    assert_eq!(st["mode"], "native", "auto keeps the attached mode: {st}");
    assert_eq!(st["ports"], serde_json::json!([5062]));
    assert_eq!(st["config"]["ban_scope"], "sip");
    assert_eq!(st["config"]["flood_rate_pps"], 0);
    assert_eq!(st["config"]["fragments_to_xsk"], true);

    // The kernel agrees: bpftool sees our program on the interface.
    let id = st["prog_id"].as_u64().expect("prog id");
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show", "id", &id.to_string()])
        .output()
        .expect("bpftool");
    let prog: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    assert_eq!(prog["name"], "sipgw_xdp");
    assert_eq!(prog["type"], "xdp");

    let d = net.json(&["detach", "--iface", &net.gw_if]);
    assert_eq!(d["mode"], "native");
    assert_eq!(d["purged"], false);
    let st = net.json(&["status", "--iface", &net.gw_if]);
    assert_eq!(st["attached"], false, "{st}");
    let present = |st: &serde_json::Value, name: &str| {
        st["pinned"]
            .as_array()
            .expect("pinned")
            .iter()
            .find(|p| p["name"] == name)
            .expect("listed")["present"]
            .clone()
    };
    assert_eq!(present(&st, "prog"), false, "program pin removed");
    assert_eq!(present(&st, "bans"), true, "maps kept");

    // Generic mode, then detach --purge removes the maps and the directory.
    let st = net.attach(&["--mode", "generic"]);
    assert_eq!(st["mode"], "generic", "{st}");
    let text = net.ok(&["detach", "--iface", &net.gw_if, "--purge"]);
    assert!(text.contains("pinned maps removed"), "{text}");
    assert!(!net.pin_root.join(&net.gw_if).exists());
    let err = net.fails(&["ban", "list", "--iface", &net.gw_if]);
    assert!(err.contains("run `sipgw-loader attach --iface"), "{err}");
}

#[test]
fn ban_add_list_del() {
    let net = Net::new();
    net.attach(&[]);
    let iface = net.gw_if.clone();
    let b = net.json(&[
        "ban",
        "add",
        "--iface",
        &iface,
        "198.18.0.9",
        "--ttl",
        "100",
        "--reason",
        "lockout",
    ]);
    assert_eq!(b["addr"], "198.18.0.9");
    assert_eq!(b["cidr"], "198.18.0.9/32");
    assert_eq!(b["prefix"], 32);
    assert_eq!(b["reason"], "lockout");
    assert_eq!(b["expires_in_secs"], 100);
    let text = net.ok(&["ban", "add", "--iface", &iface, "2001:2::9"]);
    assert_eq!(text.trim(), "banned 2001:2::9/128 (manual, no expiry)");

    let list = net.json(&["ban", "list", "--iface", &iface]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    let v6 = list
        .iter()
        .find(|b| b["addr"] == "2001:2::9")
        .expect("v6 listed");
    assert!(v6["expires_in_secs"].is_null());
    let text = net.ok(&["ban", "list", "--iface", &iface]);
    assert!(text.starts_with("ADDRESS"), "{text}");
    assert!(
        text.contains("198.18.0.9") && text.contains("lockout"),
        "{text}"
    );
    assert!(text.contains("never"), "{text}");

    // bpftool sees the same entries in the pinned map.
    assert_eq!(net.bpftool_dump("bans").as_array().expect("array").len(), 2);

    let text = net.ok(&["ban", "del", "--iface", &iface, "198.18.0.9"]);
    assert_eq!(text.trim(), "removed the ban of 198.18.0.9/32");
    let err = net.fails(&["ban", "del", "--iface", &iface, "198.18.0.9"]);
    assert!(err.contains("198.18.0.9/32 is not banned on"), "{err}");
    let list = net.json(&["ban", "list", "--iface", &iface]);
    assert_eq!(list.as_array().expect("array").len(), 1);
    net.ok(&["ban", "del", "--iface", &iface, "2001:2::9"]);
    let text = net.ok(&["ban", "list", "--iface", &iface]);
    assert_eq!(text.trim(), "no bans in force");

    // Errors in JSON mode are JSON too (and on stderr in words).
    let out = net.loader(&["-j", "ban", "del", "--iface", &iface, "198.18.0.10"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert!(
        v["error"]
            .as_str()
            .expect("error text")
            .contains("not banned"),
        "{v}"
    );

    let err = net.fails(&["ban", "add", "--iface", &iface, "198.18.0.300"]);
    assert!(err.contains("invalid value '198.18.0.300'"), "{err}");
    let err = net.fails(&[
        "ban",
        "add",
        "--iface",
        &iface,
        "198.18.0.9",
        "--reason",
        "grumpy",
    ]);
    assert!(err.contains("unknown ban reason `grumpy`"), "{err}");
}

#[test]
fn ban_networks_in_cidr_notation() {
    let net = Net::new();
    net.attach(&[]);
    let iface = net.gw_if.clone();
    let text = net.ok(&[
        "ban",
        "add",
        "--iface",
        &iface,
        "198.18.5.0/24",
        "--ttl",
        "60",
    ]);
    assert_eq!(
        text.trim(),
        "banned 198.18.5.0/24 (manual, expires in 60 s)"
    );
    let b = net.json(&["ban", "add", "--iface", &iface, "2001:db8::/64"]);
    assert_eq!(b["cidr"], "2001:db8::/64");
    assert_eq!(b["addr"], "2001:db8::");
    assert_eq!(b["prefix"], 64);
    // /32 and /128 are single addresses: the exact map.
    net.ok(&["ban", "add", "--iface", &iface, "198.18.5.7/32"]);
    net.ok(&["ban", "add", "--iface", &iface, "2001:db8::7/128"]);
    assert_eq!(net.bpftool_dump("bans").as_array().expect("array").len(), 2);
    assert_eq!(
        net.bpftool_dump("ban_prefixes")
            .as_array()
            .expect("array")
            .len(),
        2
    );

    let list = net.json(&["ban", "list", "--iface", &iface]);
    let mut cidrs: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|b| b["cidr"].as_str().expect("cidr"))
        .collect();
    cidrs.sort_unstable();
    assert_eq!(
        cidrs,
        [
            "198.18.5.0/24",
            "198.18.5.7/32",
            "2001:db8::/64",
            "2001:db8::7/128"
        ]
    );
    let text = net.ok(&["ban", "list", "--iface", &iface]);
    assert!(
        text.contains("198.18.5.0/24") && text.contains("2001:db8::/64"),
        "{text}"
    );
    let st = net.json(&["status", "--iface", &iface]);
    assert_eq!(st["bans_active"], 4, "{st}");

    // del removes exactly the ban named: an address inside a banned network is not banned by
    // itself, and the network's ban stays.
    let err = net.fails(&["ban", "del", "--iface", &iface, "198.18.5.9"]);
    assert!(err.contains("198.18.5.9/32 is not banned on"), "{err}");
    let err = net.fails(&["ban", "del", "--iface", &iface, "198.18.0.0/16"]);
    assert!(err.contains("198.18.0.0/16 is not banned on"), "{err}");
    let text = net.ok(&["ban", "del", "--iface", &iface, "198.18.5.0/24"]);
    assert_eq!(text.trim(), "removed the ban of 198.18.5.0/24");
    let err = net.fails(&["ban", "del", "--iface", &iface, "198.18.5.0/24"]);
    assert!(err.contains("198.18.5.0/24 is not banned on"), "{err}");
    net.ok(&["ban", "del", "--iface", &iface, "2001:db8::/64"]);
    assert_eq!(
        net.json(&["ban", "list", "--iface", &iface])
            .as_array()
            .expect("array")
            .len(),
        2
    );

    // Bad networks are refused, naming the value and what is wrong.
    for (bad, says) in [
        (
            "198.18.5.1/24",
            "host bits are set past /24 (the network is 198.18.5.0/24)",
        ),
        ("2001:db8::1/64", "the network is 2001:db8::/64"),
        ("198.18.5.0/33", "must be 1 to 32 for IPv4"),
        ("2001:db8::/300", "must be 1 to 128 for IPv6"),
        (
            "2001:db8::/-1",
            "the prefix length after `/` must be a number",
        ),
        ("2001:db8::/129", "must be 1 to 128 for IPv6"),
        ("198.18.5.0/0", "must be 1 to 32"),
        ("198.18.5.0/", "must be a number"),
        ("example.com/24", "expected an IPv4 or IPv6 address"),
    ] {
        let err = net.fails(&["ban", "add", "--iface", &iface, bad]);
        assert!(
            err.contains(&format!("`{bad}` is not a valid ban")) && err.contains(says),
            "{bad}: {err}"
        );
        let err = net.fails(&["ban", "del", "--iface", &iface, bad]);
        assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
    }
}

#[test]
fn stats_once_and_watch() {
    let net = Net::new();
    net.attach(&[]);
    let iface = net.gw_if.clone();
    let s = net.json(&["stats", "--iface", &iface]);
    for name in [
        "packets",
        "passed",
        "dropped_banned",
        "dropped_flood",
        "parse_errors",
    ] {
        assert!(s["xdp"][name].is_u64(), "xdp.{name} missing: {s}");
    }
    for name in ["received", "challenged", "suspensions", "banned_dropped"] {
        assert!(s["gateway"][name].is_u64(), "gateway.{name} missing: {s}");
    }
    let text = net.ok(&["stats", "--iface", &iface, "--all"]);
    assert!(text.contains("XDP program (sum over CPUs):"), "{text}");
    assert!(text.contains("  dropped_banned"), "{text}");

    let out = net.ok(&[
        "-j", "stats", "--iface", &iface, "--watch", "0.1", "--count", "3",
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].get("xdp_per_sec").is_none());
    assert!(
        lines[2]["xdp_per_sec"]["packets"].is_number(),
        "{}",
        lines[2]
    );

    let err = net.fails(&["stats", "--iface", &iface, "--watch", "0"]);
    assert!(err.contains("interval must be between"), "{err}");
    let err = net.fails(&["stats", "--iface", &iface, "--watch", "1", "--count", "0"]);
    assert!(err.contains("--count must be at least 1"), "{err}");
}

#[test]
fn errors_name_the_problem() {
    let net = Net::new();
    let iface = net.gw_if.clone();

    let err = net.fails(&["attach", "--iface", "nosuch0", "--mount-bpffs"]);
    assert!(
        err.contains("no network interface named `nosuch0` in this network namespace"),
        "{err}"
    );
    for args in [
        vec!["status", "--iface", "nosuch0"],
        vec!["detach", "--iface", "nosuch0"],
    ] {
        let err = net.fails(&args);
        assert!(
            err.contains("no network interface named `nosuch0`"),
            "{err}"
        );
    }

    // Nothing attached yet.
    let err = net.fails(&["detach", "--iface", &iface]);
    assert!(
        err.contains(&format!("no XDP program is attached to {iface}")),
        "{err}"
    );
    for args in [
        vec!["stats", "--iface", &iface],
        vec!["ban", "list", "--iface", &iface],
        vec!["ban", "add", "--iface", &iface, "198.18.0.9"],
        vec!["ban", "del", "--iface", &iface, "198.18.0.9"],
    ] {
        let err = net.fails(&args);
        assert!(
            err.contains(&format!("run `sipgw-loader attach --iface {iface}` first")),
            "{args:?}: {err}"
        );
    }
    let st = net.json(&["status", "--iface", &iface]);
    assert_eq!(st["attached"], false);
    assert!(st["config"].is_null());

    // Bad option values.
    let err = net.fails(&["attach", "--iface", &iface, "--ports", "0"]);
    assert!(err.contains("port 0 is not a valid UDP port"), "{err}");
    let err = net.fails(&["attach", "--iface", &iface, "--ports", "70000"]);
    assert!(err.contains("invalid value '70000'"), "{err}");
    let err = net.fails(&["attach", "--iface", &iface, "--flood-burst", "5"]);
    assert!(err.contains("--flood-burst needs --flood-rate"), "{err}");
    let err = net.fails(&["attach", "--iface", &iface, "--mode", "turbo"]);
    assert!(err.contains("invalid value 'turbo'"), "{err}");

    // A pin root that is not on bpffs.
    let tmp = std::env::temp_dir().join(format!("sipgw-not-bpffs-{}", std::process::id()));
    let out = net.loader_with_root(&tmp, &["attach", "--iface", &iface]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not on a BPF filesystem"), "{err}");
    assert!(err.contains("mount -t bpf bpf /sys/fs/bpf"), "{err}");
    assert!(err.contains("--mount-bpffs"), "{err}");

    // Not root: as nobody, with no capabilities.
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", net.gw_ns))
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(env!("CARGO_BIN_EXE_sipgw-loader"))
        .args(["--pin-root"])
        .arg(&net.pin_root)
        .args(["attach", "--iface", &iface])
        .output()
        .expect("run setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("needs root (or CAP_BPF and CAP_NET_ADMIN) to attach"),
        "{err}"
    );

    // Another XDP program on the interface: one attached from another pin root is not ours.
    let other_root = net.pin_root.join("other");
    let out = net.loader_with_root(&other_root, &["attach", "--iface", &iface, "--mount-bpffs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = net.fails(&["attach", "--iface", &iface]);
    assert!(
        err.contains(&format!("interface {iface} already has XDP program")),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    let err = net.fails(&["detach", "--iface", &iface]);
    assert!(err.contains("already has XDP program"), "{err}");
    let st = net.attach(&["--force"]);
    assert_eq!(st["ours"], true, "--force replaces it: {st}");
    // Now the other root's program is gone from the interface: it cannot detach ours
    // without --force.
    let out = net.loader_with_root(&other_root, &["detach", "--iface", &iface]);
    assert!(!out.status.success());
    let out = net.loader_with_root(&other_root, &["detach", "--iface", &iface, "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = net.json(&["status", "--iface", &iface]);
    assert_eq!(st["attached"], false);
}

#[test]
fn help_lists_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_sipgw-loader"))
        .arg("--help")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["attach", "detach", "status", "stats", "ban"] {
        assert!(text.contains(sub), "{sub} missing from --help: {text}");
    }
    assert!(text.contains("bpftool map dump pinned"), "{text}");
}
