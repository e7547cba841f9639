//! A `sipgw run` process with sipp phones and a sipp softswitch stand-in, on loopback
//! (`gateway_live.rs`, `streams_live.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sipgw::runtime::metrics;

use super::*;

/// A `sipgw run` process on loopback with its scratch directory.
pub struct Gateway {
    pub proc: Proc,
    pub sip: SocketAddr,
    pub softswitch: SocketAddr,
    pub metrics: SocketAddr,
    pub dir: Scratch,
    /// sipp's transport for phones and the softswitch stand-in (`u1`, `t1`).
    pub phone_transport: &'static str,
    pub softswitch_transport: &'static str,
}

pub const USERS: usize = 100;

impl Gateway {
    /// Start `sipgw run` with `[gateway]` filled in and `extra` appended.
    pub fn start(name: &str, workers: usize, extra: &str) -> Gateway {
        Gateway::start_at(name, workers, extra, "127.0.0.1", "")
    }

    /// `start` with the softswitch stand-in on `softswitch_ip` and `gateway_keys` added to
    /// `[gateway]`. Over TCP the softswitch is recognised by its IP address alone (its source
    /// ports are ephemeral), so stream tests put it on 127.0.0.2, apart from the phones.
    pub fn start_at(
        name: &str,
        workers: usize,
        extra: &str,
        softswitch_ip: &str,
        gateway_keys: &str,
    ) -> Gateway {
        Gateway::start_full(
            name,
            workers,
            "credentials = \"users.toml\"",
            extra,
            softswitch_ip,
            gateway_keys,
        )
    }

    /// `start` with `accounts` (the credential-file line, or nothing with `[database]` in
    /// `extra`) at the top of the configuration.
    pub fn start_with_accounts(name: &str, workers: usize, accounts: &str, extra: &str) -> Gateway {
        Gateway::start_full(name, workers, accounts, extra, "127.0.0.1", "")
    }

    fn start_full(
        name: &str,
        workers: usize,
        accounts: &str,
        extra: &str,
        softswitch_ip: &str,
        gateway_keys: &str,
    ) -> Gateway {
        let dir = Scratch::new(name);
        let sip: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // "IP" (a free port is chosen) or "IP:PORT".
        let softswitch: SocketAddr = softswitch_ip
            .parse()
            .unwrap_or_else(|_| format!("{softswitch_ip}:{}", free_port()).parse().unwrap());
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        std::fs::write(dir.0.join("users.toml"), credentials(USERS)).unwrap();
        let config = format!(
            "{accounts}\n\n[gateway]\nlisten = \"{sip}\"\nsoftswitch = \
             \"{softswitch}\"\nworkers = {workers}\nmetrics = \"{metrics}\"\n{gateway_keys}\n\n{extra}"
        );
        std::fs::write(dir.0.join("sipgw.toml"), config).unwrap();
        let log = std::fs::File::create(dir.0.join("sipgw.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sipgw"))
            .args(["--log", "info", "run", "--config"])
            .arg(dir.0.join("sipgw.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sipgw");
        let gw = Gateway {
            proc: Proc(Some(child)),
            sip,
            softswitch,
            metrics,
            dir,
            phone_transport: "u1",
            softswitch_transport: "u1",
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while metrics::fetch(metrics, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sipgw did not start; its log:\n{}",
                gw.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gw
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("sipgw.log")).unwrap_or_default()
    }

    pub fn stats(&self) -> HashMap<String, u64> {
        let text = metrics::fetch(self.metrics, Duration::from_secs(2)).expect("metrics");
        metrics::parse(&text).into_iter().collect()
    }

    pub fn stat(&self, name: &str) -> u64 {
        let key = format!("sipgw_{name}_total");
        *self
            .stats()
            .get(&key)
            .unwrap_or_else(|| panic!("no metric {key}"))
    }

    /// A sipp UAS on the softswitch address running `scenario_file` for `calls` calls.
    pub fn softswitch(&self, scenario_file: &str, calls: usize) -> Proc {
        let child = Command::new(sipp_binary())
            .current_dir(&self.dir.0)
            .arg("-sf")
            .arg(scenario(scenario_file))
            .args(["-t", self.softswitch_transport])
            .args([
                "-i",
                &self.softswitch.ip().to_string(),
                "-p",
                &self.softswitch.port().to_string(),
            ])
            .args([
                "-m",
                &calls.to_string(),
                "-nostdin",
                "-trace_logs",
                "-trace_err",
            ])
            .args([
                "-log_file",
                "softswitch.log",
                "-error_file",
                "softswitch.err",
            ])
            .args(["-timeout", "120s", "-timeout_error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp UAS");
        // sipp binds its socket at once; give it a moment before phones send.
        std::thread::sleep(Duration::from_millis(300));
        Proc(Some(child))
    }

    pub fn softswitch_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("softswitch.log")).unwrap_or_default()
    }

    /// A sipp UAC phone for `user`/`password`; returns its exit code (0: every call passed;
    /// None: killed after `timeout_s` + 5 s).
    pub fn phone(
        &self,
        scenario_file: &str,
        user: &str,
        password: &str,
        calls: usize,
        timeout_s: u32,
    ) -> Option<i32> {
        let keep = std::env::var_os("SIPGW_KEEP_SIPP_LOGS").is_some();
        let child = Command::new(sipp_binary())
            .current_dir(&self.dir.0)
            .arg("-sf")
            .arg(scenario(scenario_file))
            .args(["-s", user, "-au", user, "-ap", password])
            .args(["-t", self.phone_transport])
            // sipp over TCP listens on its local port (5060 unless told): one each.
            .args(if self.phone_transport == "u1" {
                Vec::new()
            } else {
                vec!["-p".to_owned(), free_port().to_string()]
            })
            // No -p: sipp binds a free port itself (choosing one here and handing it over races
            // with the other phones started at the same time).
            .args(["-i", "127.0.0.1"])
            .args(["-m", &calls.to_string(), "-r", "50", "-l", "10"])
            .args([
                "-timeout",
                &format!("{timeout_s}s"),
                "-timeout_error",
                "-nostdin",
            ])
            .args(if keep {
                &["-trace_msg", "-trace_err"][..]
            } else {
                &[][..]
            })
            .arg(self.sip.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp UAC");
        Proc(Some(child)).wait(Duration::from_secs(u64::from(timeout_s) + 5))
    }
}
