//! The comparison harness (bench/compare) end to end, briefly: Kamailio, sipgw (UDP) and sipgw
//! (AF_XDP) each get a one-second load of every kind, Kamailio and sipgw with the phones over
//! TCP the registration loads, and the report must hold together (every system completed
//! registrations, nothing of a banned flood reached the softswitch, the softswitch got one
//! authenticated REGISTER per success, no TCP connection was lost, the random-source flood and
//! the equal-rate CPU were measured, the processes were pinned, the gateways' counters were read). Needs root and Kamailio
//! (`./scripts/install-deps --bench`, which `./scripts/test` runs).

use std::path::Path;
use std::process::Command;

#[test]
fn the_comparison_harness_runs_and_its_numbers_hold_together() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the comparison builds network namespaces and attaches XDP: run it as root"
    );
    let found = Command::new("kamailio").arg("-v").output().is_ok();
    assert!(
        found,
        "kamailio is not installed: run ./scripts/install-deps --bench as root"
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_sipgw-bench"))
        .parent()
        .expect("binary directory")
        .to_owned();
    assert!(
        bin_dir.join("sipgw").exists(),
        "{}/sipgw is missing: build it with `cargo build -p sipgw` (cargo test --workspace does)",
        bin_dir.display()
    );
    let out_dir = std::env::temp_dir().join(format!("sipgw-compare-test-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compare/compare.py");
    let o = Command::new("python3")
        .arg(&script)
        .args(["--duration", "1", "--offered", "500,0", "--users", "20"])
        .arg("--out")
        .arg(&out_dir)
        .env("SIPGW_BIN_DIR", &bin_dir)
        .output()
        .expect("run compare.py");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("ratios against kamailio"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("compare.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().expect("rows");
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        assert_eq!(json["pin"]["load"], 0, "the load generator pinned to CPU 0");
        assert_eq!(
            json["pin"]["system"], 1,
            "the system under test pinned to CPU 1"
        );
    }
    let names: Vec<&str> = rows.iter().map(|r| r["system"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "kamailio",
            "sipgw-udp",
            "sipgw-xdp",
            "kamailio-tcp",
            "sipgw-tcp"
        ]
    );
    for (row, run) in rows.iter().zip(json["runs"].as_array().unwrap()) {
        let name = row["system"].as_str().unwrap();
        assert!(row["reg_per_s"].as_f64().unwrap() > 0.0, "{name}: {row}");
        // One authenticated REGISTER at the softswitch per success; under load a registration
        // the client gave up on (timed out, unfinished) may have reached it too.
        let reg = &run["max"]["register"];
        let n = |k: &str| reg[k].as_u64().unwrap_or(0);
        let reached = row["reg_reached_softswitch"].as_u64().unwrap();
        assert!(
            (n("succeeded")..=n("succeeded") + n("timed_out") + n("unfinished")).contains(&reached),
            "{name}: {reached} REGISTERs at the softswitch for {reg}"
        );
        assert_eq!(
            reg["transport"],
            if name.ends_with("-tcp") { "tcp" } else { "udp" },
            "{name}"
        );
        if name.ends_with("-tcp") {
            // The UDP attacks are measured on the UDP systems only.
            assert_eq!(reg["connections"], 16, "{name}: {reg}");
            assert_eq!(row["connections_lost"], 0, "{name}: {row}");
            assert!(row["flood_absorbed_per_s"].is_null(), "{name}: {row}");
            continue;
        }
        assert!(
            row["equal_cpu_s_per_1000"].as_f64().is_some()
                && row["baseline_p99_ms"].as_f64().unwrap() > 0.0,
            "{name}: {row}"
        );
        assert_eq!(row["flood_reached_softswitch"], 0, "{name}: {row}");
        // The gateway's own counters say where its datagrams went: with the softswitch behind
        // the second interface (the default side), the AF_XDP backend's softswitch leg uses the
        // kernel socket, and says so.
        let k = &run["counters_max"];
        let c = |key: &str| k[format!("sipgw_{key}_total")].as_u64();
        match name {
            "sipgw-xdp" => {
                assert_eq!(c("xsk_upstream_frames"), Some(0), "{name}: {k}");
                assert!(
                    c("xsk_upstream_elsewhere").unwrap() >= n("succeeded"),
                    "{name}: {k}"
                );
                assert!(c("xsk_rx_frames").unwrap() > 0, "{name}: {k}");
            }
            "sipgw-udp" => assert!(c("rx_datagrams").unwrap() > 0, "{name}: {k}"),
            _ => {}
        }
        // The unauthenticated flood from spoofed random sources ran, and legitimate
        // registrations were measured under it.
        assert!(
            row["random_flood_sent_per_s"].as_f64().unwrap() > 0.0
                && row["random_legit_success_pct"].as_f64().is_some(),
            "{name}: {row}"
        );
        assert!(
            row["flood_absorbed_per_s"].as_f64().unwrap() > 0.0,
            "{name}: {row}"
        );
    }
    for chart in ["compare-throughput.svg", "compare-flood.svg"] {
        let svg = std::fs::read_to_string(out_dir.join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("sipgw-xdp"),
            "{chart}"
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
