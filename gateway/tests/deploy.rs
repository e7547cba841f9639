//! The files in `deploy/`: the production example passes `sipgw check`, the tuning script plans
//! without changing anything unless asked and names bad arguments, the systemd unit grants the
//! same capabilities it bounds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deploy(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(p)
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn the_production_example_is_a_valid_xdp_configuration() {
    let o = Command::new(env!("CARGO_BIN_EXE_sipgw"))
        .args(["check", "--config"])
        .arg(deploy("examples/sipgw-production.toml"))
        .output()
        .expect("run sipgw check");
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    let config = sipgw::Config::from_file(&deploy("examples/sipgw-production.toml")).unwrap();
    assert_eq!(config.gateway.backend, sipgw::config::Backend::Xdp);
    assert_eq!(config.xdp.interface.as_deref(), Some("eth1"));
    assert!(config.xdp.keep_attached);
}

#[test]
fn tune_prints_its_plan_and_changes_nothing_without_apply() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test creates a network namespace: run it as root (`sudo ./scripts/test`)"
    );
    let ns = format!("sipgw-tune-{}", std::process::id());
    let run = |args: &[&str]| Command::new("ip").args(args).output().expect("ip");
    assert!(run(&["netns", "add", &ns]).status.success());
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
        }
    }
    let _cleanup = Cleanup(ns.clone());
    assert!(run(&[
        "-n",
        &ns,
        "link",
        "add",
        "tq0",
        "numrxqueues",
        "2",
        "numtxqueues",
        "2",
        "type",
        "veth",
        "peer",
        "name",
        "tq1"
    ])
    .status
    .success());
    let gro = || {
        let o = run(&[
            "netns",
            "exec",
            &ns,
            "cat",
            "/sys/class/net/tq0/gro_flush_timeout",
        ]);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let before = gro();
    let tune = deploy("tune");
    let tune = tune.to_str().unwrap();
    let o = run(&[
        "netns", "exec", &ns, tune, "--iface", "tq0", "--queues", "2",
    ]);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("planned changes for tq0 (2 queues"),
        "{stdout}"
    );
    assert!(
        stdout.contains("echo 200000 > /sys/class/net/tq0/gro_flush_timeout"),
        "{stdout}"
    );
    assert!(stdout.contains("nothing changed"), "{stdout}");
    assert_eq!(gro(), before, "a dry run changes nothing");

    let o = run(&["netns", "exec", &ns, tune, "--iface", "nope0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).1.contains("no interface 'nope0'"), "{:?}", out(&o));
    let o = run(&[
        "netns", "exec", &ns, tune, "--iface", "tq0", "--queues", "many",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out(&o).1.contains("--queues must be a number"),
        "{:?}",
        out(&o)
    );
    let o = run(&["netns", "exec", &ns, tune, "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("unknown argument '--bogus'"));

    // With --apply the per-interface settings change (inside the test's namespace).
    let o = run(&[
        "netns", "exec", &ns, tune, "--iface", "tq0", "--queues", "2", "--apply",
    ]);
    assert!(o.status.success(), "{:?}", out(&o));
    assert_eq!(gro(), "200000");
}

#[test]
fn the_unit_grants_exactly_the_capabilities_it_bounds() {
    let unit = std::fs::read_to_string(deploy("systemd/sipgw.service")).unwrap();
    let caps = |key: &str| -> Vec<String> {
        let line = unit
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} missing"));
        let mut v: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        v.sort();
        v
    };
    let ambient = caps("AmbientCapabilities=");
    assert_eq!(ambient, caps("CapabilityBoundingSet="));
    assert_eq!(
        ambient,
        ["CAP_BPF", "CAP_IPC_LOCK", "CAP_NET_ADMIN", "CAP_NET_RAW"]
    );
    assert!(unit.contains("ExecStart=/usr/local/bin/sipgw run --config /etc/sipgw/sipgw.toml"));
}
