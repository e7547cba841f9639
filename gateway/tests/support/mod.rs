//! Live-test support shared by the sipp tests on loopback (`gateway_live.rs`) and in network
//! namespaces (`xdp_live.rs`): scratch directories, child processes killed on drop, sipp and
//! its scenarios, test users.
#![allow(dead_code)]

pub mod live;
pub mod pg;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory, removed on drop (kept with SIPGW_KEEP_SIPP_LOGS=1).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "sipgw-it-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("SIPGW_KEEP_SIPP_LOGS").is_some() {
            eprintln!("logs kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process killed on drop.
pub struct Proc(pub Option<Child>);

impl Proc {
    /// Wait up to `limit` for the exit code; kill it past that (returns None).
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let child = self.0.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.0 = None;
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.0 = None;
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run a command that must succeed (iproute2, ethtool, sysctl…); panics with its stderr, or
/// with how to install it.
pub fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e} (run ./scripts/install-deps as root)"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run `f` on a thread inside network namespace `ns` (sockets it opens, and threads it
/// starts, live there).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::os::fd::AsFd;
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f()
    })
    .join()
    .expect("namespace thread")
}

pub fn sipp_binary() -> &'static str {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "sipp is not installed: it is the Debian package sip-tester; run ./scripts/install-deps \
         as root (or apt-get install sip-tester)"
    );
    "sipp"
}

/// A port for a test's listener (gateway, sipp, softswitch stand-in, metrics), free for UDP and
/// TCP on 127.0.0.1 when chosen and never handed out twice in this process.
///
/// Chosen *below* the kernel's ephemeral range (`net.ipv4.ip_local_port_range`): a port picked
/// with `bind(:0)` and released is an ephemeral port, and the thousands of connections the other
/// tests of this binary open in parallel (10,000 idle TCP connections, sipp's own sockets) can take
/// it before the listener binds it — sipp then exits 254. Each process starts at its own offset so
/// test binaries run at the same time rarely meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 10_000;
    let high = ephemeral_low().clamp(LOW + 1_000, 65_535);
    let span = high - LOW;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7_919)) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let port = (LOW + NEXT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {high} on 127.0.0.1");
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

pub fn user(i: usize) -> (String, String) {
    (format!("{}", 2000 + i), format!("pw-{i}-secret"))
}

pub fn credentials(n: usize) -> String {
    (0..n)
        .map(|i| {
            let (u, p) = user(i);
            format!("[[account]]\nname = \"{u}\"\npassword = \"{p}\"\n\n")
        })
        .collect()
}

/// The users the softswitch stand-in scenario logged as registered (`registered USER …` lines of
/// `softswitch_register.xml`).
pub fn registered_users(log: &str) -> std::collections::BTreeSet<String> {
    log.lines()
        .filter_map(|l| {
            l.strip_prefix("registered ")?
                .split(' ')
                .next()
                .map(str::to_owned)
        })
        .collect()
}
