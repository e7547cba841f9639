//! The `sipgw-bench` command line (clap derive) and how each command is run.
//!
//! Layer: the top of the binary. Commands read the gateway's address, realm, credential file
//! and softswitch from the gateway's own configuration (`--config`, read by sipgw's loader) or
//! from flags; every load command asks the softswitch stand-in what reached it before and after
//! the run, and prints a table or, with `--json`, one JSON object ([`crate::report::Report`]).

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bruteforce::{self, BruteforceLive, BruteforceOptions};
use crate::flood::{self, FloodLive, FloodMode, FloodOptions};
use crate::mixed::{self, Attack, MixedLive, MixedOptions};
use crate::msg::Transport;
use crate::register::{self, RegisterLive, RegisterOptions};
use crate::report::Report;
use crate::softswitch::{self, StandIn};
use crate::stats::Progress;
use crate::users::Users;

/// How long to wait for the softswitch stand-in's answer to a counters query.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// Load generator for sipgw: real SIP digest clients, attackers and a softswitch stand-in.
#[derive(Debug, Parser)]
#[command(name = "sipgw-bench", version, about, long_about = None)]
pub struct Cli {
    /// Print the report as one JSON object instead of a table.
    #[arg(short, long, global = true)]
    pub json: bool,
    /// Pretty-print the JSON.
    #[arg(short, long, global = true)]
    pub pretty: bool,
    /// Progress lines on standard error, once a second.
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// When to print progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// When standard error is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ProgressMode {
    fn enabled(self) -> bool {
        match self {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Always => true,
            ProgressMode::Never => false,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register users: challenge → digest → authenticated REGISTER, many in flight.
    Register(RegisterArgs),
    /// Guess wrong passwords from many sources until the gateway suspends them.
    Bruteforce(BruteforceArgs),
    /// Send unauthenticated or banned-source REGISTERs as fast as possible.
    Flood(FloodArgs),
    /// A legitimate registration load while a flood or a brute force runs.
    Mixed(MixedArgs),
    /// The softswitch stand-in: answer every request with 200 and count what arrives.
    Softswitch(SoftswitchArgs),
}

/// Where the gateway is and who may register.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The gateway's configuration (sipgw.toml): its advertised address, realm, credential file
    /// and softswitch are used unless given below.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// The gateway's SIP address.
    #[arg(short, long)]
    pub gateway: Option<SocketAddr>,
    /// The realm (default: the configuration's, else "sipgw").
    #[arg(long)]
    pub realm: Option<String>,
    /// Credential file in sipgw's format: the accounts to register as.
    #[arg(short, long)]
    pub users: Option<PathBuf>,
    /// The softswitch stand-in to ask what reached it (default: the configuration's
    /// softswitch).
    #[arg(long)]
    pub softswitch: Option<SocketAddr>,
    /// Do not ask the softswitch what reached it.
    #[arg(long)]
    pub no_softswitch_query: bool,
}

/// The target with the configuration applied.
#[derive(Debug, Clone)]
struct Target {
    gateway: SocketAddr,
    realm: String,
    users: Option<PathBuf>,
    softswitch: Option<SocketAddr>,
}

impl TargetArgs {
    fn resolve(&self) -> anyhow::Result<Target> {
        let config = match &self.config {
            Some(path) => Some(sipgw::Config::from_file(path)?),
            None => None,
        };
        let gateway = match (self.gateway, &config) {
            (Some(g), _) => g,
            (None, Some(c)) => c.gateway.advertise,
            (None, None) => bail!("give the gateway's address (--gateway IP:PORT) or its configuration (--config FILE)"),
        };
        let realm = self
            .realm
            .clone()
            .or_else(|| config.as_ref().map(|c| c.auth.realm.to_string()))
            .unwrap_or_else(|| "sipgw".to_owned());
        let users = self
            .users
            .clone()
            .or_else(|| config.as_ref().and_then(|c| c.credentials.clone()));
        let softswitch = if self.no_softswitch_query {
            None
        } else {
            self.softswitch
                .or_else(|| config.as_ref().and_then(|c| c.gateway.softswitch))
        };
        Ok(Target {
            gateway,
            realm,
            users,
            softswitch,
        })
    }

    fn load_users(target: &Target) -> anyhow::Result<Users> {
        let Some(path) = &target.users else {
            bail!("give the credential file (--users FILE) or the gateway's configuration (--config FILE)");
        };
        Ok(Users::load(path, &target.realm)?)
    }
}

/// Options of a registration load.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Registrations started per second, all sockets together (0: as fast as possible; default
    /// 0 for `register`, 200 for `mixed`).
    #[arg(short, long)]
    pub rate: Option<f64>,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Sockets (source ports), one thread each (`register --transport tcp`: threads, each
    /// with --connections connections).
    #[arg(long, default_value_t = 2)]
    pub sockets: usize,
    /// A registration not finished after this many milliseconds is a timeout.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Source address of the legitimate load.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Expires of the REGISTERs.
    #[arg(long, default_value_t = 3600)]
    pub expires: u32,
}

/// `register`.
#[derive(Debug, Clone, Args)]
pub struct RegisterArgs {
    /// Where and who.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Load shape.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Registrations (default: one per user of the credential file).
    #[arg(short = 'n', long)]
    pub count: Option<u64>,
    /// Stop starting registrations after this many seconds (at most 3600).
    #[arg(short, long, default_value_t = 60.0)]
    pub duration: f64,
    /// Transport to the gateway: udp (one socket per --sockets thread), or tcp (each thread
    /// opens --connections connections, messages framed by Content-Length; Via says
    /// SIP/2.0/TCP and Contact ;transport=tcp). The gateway must accept TCP on its SIP port
    /// (sipgw: [tcp] enabled = true).
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    pub transport: Transport,
    /// With --transport tcp: connections per thread (--sockets threads), opened before the
    /// load starts; the in-flight slots are spread over them. All of them come from --bind:
    /// keep sockets × connections within the gateway's per-source limit (sipgw's
    /// tcp.max_per_source, default 64). A connection the gateway closes is counted in the
    /// report (connections_lost) and its registrations in flight fail.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
}

/// Options of a brute force.
#[derive(Debug, Clone, Args)]
pub struct AttackArgs {
    /// Users to attack (repeatable; default: the first `--targets` of the credential file).
    #[arg(long = "user")]
    pub user: Vec<String>,
    /// How many users of the credential file to attack when no --user is given.
    #[arg(long, default_value_t = 1)]
    pub targets: usize,
    /// Source addresses, consecutive from --source-base.
    #[arg(long, default_value_t = 1)]
    pub sources: u32,
    /// Sockets (source ports) per source address.
    #[arg(long, default_value_t = 4)]
    pub ports: u32,
    /// First source address of the attack (on loopback any 127.x.y.z works).
    #[arg(long)]
    pub source_base: Option<IpAddr>,
    /// Most guesses in all.
    #[arg(long, default_value_t = 100_000)]
    pub max_guesses: u64,
    /// A request not answered within this many milliseconds counts as dropped.
    #[arg(long, default_value_t = 300)]
    pub answer_timeout_ms: u64,
}

/// `bruteforce`.
#[derive(Debug, Clone, Args)]
pub struct BruteforceArgs {
    /// Where and who.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The attack.
    #[command(flatten)]
    pub attack: AttackArgs,
    /// Guesses per second, all flows together (0: as fast as answers come).
    #[arg(short, long, default_value_t = 0.0)]
    pub rate: f64,
    /// Stop after this many seconds (at most 3600).
    #[arg(short, long, default_value_t = 30.0)]
    pub duration: f64,
    /// Keep attacking for the whole duration after every terminal went silent.
    #[arg(long)]
    pub keep_going: bool,
}

/// Options of a flood.
#[derive(Debug, Clone, Args)]
pub struct FloodShape {
    /// What to send.
    #[arg(long, value_enum, default_value_t = FloodMode::Unauth)]
    pub mode: FloodMode,
    /// Flood sockets (one thread and one source address each).
    #[arg(long, default_value_t = 2)]
    pub flood_sockets: usize,
    /// First source address of the flood.
    #[arg(long, default_value = "127.0.2.1")]
    pub flood_source_base: IpAddr,
    /// Source addresses per flood socket thread (consecutive from --flood-source-base; each
    /// batch leaves from the next one): `--flood-spread 2048 --flood-sockets 2` is an
    /// unauthenticated flood from 4096 addresses that cannot be banned address by address.
    /// With --xdp-iface, the frames' source addresses.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub flood_spread: u32,
    /// Flood datagrams per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub flood_rate: f64,
    /// Most flood datagrams in all.
    #[arg(long, default_value_t = crate::MAX_COUNT)]
    pub flood_count: u64,
    /// Usernames in the flood's REGISTERs (repeatable; default: from the credential file, or
    /// "flood"). Banned mode brute-forces the first one.
    #[arg(long = "flood-user")]
    pub flood_user: Vec<String>,
    /// Send the flood as raw frames from AF_XDP sockets on this interface (root; far above
    /// what UDP sockets reach). The brute force of `--mode banned` still uses sockets.
    #[arg(long, value_name = "IFACE", requires = "xdp_dst_mac")]
    pub xdp_iface: Option<String>,
    /// With --xdp-iface: the gateway's (next hop's) MAC address.
    #[arg(long, value_name = "MAC", value_parser = crate::xdp_tx::parse_mac)]
    pub xdp_dst_mac: Option<[u8; 6]>,
    /// With --xdp-iface: TX queues to send from (one thread each).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub xdp_queues: u32,
}

/// `flood`.
#[derive(Debug, Clone, Args)]
pub struct FloodArgs {
    /// Where.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The flood.
    #[command(flatten)]
    pub flood: FloodShape,
    /// Stop after this many seconds (at most 3600).
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
}

/// `mixed`.
#[derive(Debug, Clone, Args)]
pub struct MixedArgs {
    /// Where and who.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The legitimate load.
    #[command(flatten)]
    pub load: LoadArgs,
    /// The attack.
    #[arg(long, value_enum, default_value_t = Attack::Flood)]
    pub attack: Attack,
    /// The flood (with --attack flood).
    #[command(flatten)]
    pub flood: FloodShape,
    /// The brute force (with --attack bruteforce).
    #[command(flatten)]
    pub bruteforce: AttackArgs,
    /// Run this many seconds (at most 3600).
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
}

/// `softswitch`.
#[derive(Debug, Clone, Args)]
pub struct SoftswitchArgs {
    /// Address to listen on.
    #[arg(short, long, default_value = "127.0.0.1:5070")]
    pub listen: SocketAddr,
    /// Threads (each with its own SO_REUSEPORT socket).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Stop after this many seconds (at most 3600); Ctrl-C or SIGTERM stop it earlier.
    #[arg(short, long, default_value_t = 3600.0)]
    pub duration: f64,
}

fn seconds(s: f64, what: &str) -> anyhow::Result<Duration> {
    if !(s.is_finite() && s > 0.0) {
        bail!("{what} must be a positive number of seconds, not {s}");
    }
    Ok(Duration::from_secs_f64(s).min(crate::MAX_DURATION))
}

fn run_id() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() ^ std::process::id().rotate_left(16)) % 1_000_000_000
}

fn register_options(
    target: &Target,
    users: Users,
    load: &LoadArgs,
    default_rate: f64,
    count: u64,
    duration: Duration,
) -> RegisterOptions {
    RegisterOptions {
        gateway: target.gateway,
        users: Arc::new(users),
        count,
        duration,
        rate: load.rate.unwrap_or(default_rate).max(0.0),
        concurrency: load.concurrency.max(1),
        sockets: load.sockets.max(1),
        transport: Transport::Udp,
        connections: 1,
        timeout: Duration::from_millis(load.timeout_ms.max(1)),
        bind: load.bind,
        expires: load.expires,
        run_id: run_id(),
    }
}

fn attack_targets(a: &AttackArgs, target: &Target) -> anyhow::Result<Vec<String>> {
    if !a.user.is_empty() {
        return Ok(a.user.clone());
    }
    let users = TargetArgs::load_users(target)
        .context("the users to attack: give --user NAME or a credential file")?;
    Ok(users
        .list
        .iter()
        .take(a.targets.max(1))
        .map(|u| u.name.clone())
        .collect())
}

fn bruteforce_options(
    a: &AttackArgs,
    target: &Target,
    rate: f64,
    duration: Duration,
    stop_when_suspended: bool,
    default_base: IpAddr,
) -> anyhow::Result<BruteforceOptions> {
    Ok(BruteforceOptions {
        gateway: target.gateway,
        targets: attack_targets(a, target)?,
        sources: a.sources.max(1),
        ports: a.ports.max(1),
        source_base: a.source_base.unwrap_or(default_base),
        duration,
        max_guesses: a.max_guesses,
        rate: rate.max(0.0),
        timeout: Duration::from_millis(a.answer_timeout_ms.max(1)),
        stop_when_suspended,
        run_id: run_id(),
    })
}

fn flood_options(f: &FloodShape, target: &Target, duration: Duration) -> FloodOptions {
    let users = if !f.flood_user.is_empty() {
        f.flood_user.clone()
    } else {
        TargetArgs::load_users(target)
            .map(|u| u.list.iter().take(100).map(|u| u.name.clone()).collect())
            .unwrap_or_default()
    };
    FloodOptions {
        gateway: target.gateway,
        mode: f.mode,
        sockets: f.flood_sockets.max(1),
        spread: f.flood_spread.max(1),
        source_base: f.flood_source_base,
        users,
        duration,
        count: f.flood_count,
        rate: f.flood_rate.max(0.0),
        ban_timeout: Duration::from_secs(10),
        run_id: run_id(),
        xdp: f
            .xdp_iface
            .as_ref()
            .map(|iface| crate::xdp_tx::XdpTxOptions {
                iface: iface.clone(),
                dst_mac: f.xdp_dst_mac.unwrap_or([0xff; 6]),
                queues: f.xdp_queues,
            }),
    }
}

/// Run the command line; returns the report.
pub fn run(cli: &Cli, stop: &Arc<AtomicBool>) -> anyhow::Result<Report> {
    let progress = cli.progress.enabled();
    let every = Duration::from_secs(1);
    match &cli.command {
        Command::Register(a) => {
            let target = a.target.resolve()?;
            let users = TargetArgs::load_users(&target)?;
            let count = a.count.unwrap_or(users.len() as u64);
            let opts = RegisterOptions {
                transport: a.transport,
                connections: a.connections.max(1),
                ..register_options(
                    &target,
                    users,
                    &a.load,
                    0.0,
                    count,
                    seconds(a.duration, "--duration")?,
                )
            };
            let live = Arc::new(RegisterLive::default());
            let l = live.clone();
            let before = query(&target);
            let p = Progress::start(progress, every, move |e| l.line(e));
            let r = register::run(&opts, &live, stop);
            p.finish();
            let mut report = Report::new("register", Some(target.gateway));
            report.register = Some(r?);
            report.softswitch = after(&target, before);
            Ok(report)
        }
        Command::Bruteforce(a) => {
            let target = a.target.resolve()?;
            let opts = bruteforce_options(
                &a.attack,
                &target,
                a.rate,
                seconds(a.duration, "--duration")?,
                !a.keep_going,
                "127.0.1.1".parse()?,
            )?;
            let live = Arc::new(BruteforceLive::default());
            let l = live.clone();
            let before = query(&target);
            let p = Progress::start(progress, every, move |e| l.line(e));
            let r = bruteforce::run(&opts, &live, stop);
            p.finish();
            let mut report = Report::new("bruteforce", Some(target.gateway));
            report.bruteforce = Some(r?);
            report.softswitch = after(&target, before);
            Ok(report)
        }
        Command::Flood(a) => {
            let target = a.target.resolve()?;
            let opts = flood_options(&a.flood, &target, seconds(a.duration, "--duration")?);
            let live = Arc::new(FloodLive::default());
            let l = live.clone();
            let before = query(&target);
            let p = Progress::start(progress, every, move |e| l.line(e));
            let r = flood::run(&opts, &live, stop);
            p.finish();
            let mut report = Report::new("flood", Some(target.gateway));
            report.flood = Some(r?);
            report.softswitch = after(&target, before);
            Ok(report)
        }
        Command::Mixed(a) => {
            let target = a.target.resolve()?;
            let duration = seconds(a.duration, "--duration")?;
            let users = TargetArgs::load_users(&target)?;
            let register =
                register_options(&target, users, &a.load, 200.0, crate::MAX_COUNT, duration);
            let opts = MixedOptions {
                register,
                attack: a.attack,
                flood: flood_options(&a.flood, &target, duration),
                bruteforce: match a.attack {
                    Attack::Bruteforce => bruteforce_options(
                        &a.bruteforce,
                        &target,
                        0.0,
                        duration,
                        false,
                        "127.0.1.1".parse()?,
                    )?,
                    Attack::Flood => BruteforceOptions {
                        gateway: target.gateway,
                        targets: Vec::new(),
                        sources: 1,
                        ports: 1,
                        source_base: "127.0.1.1".parse()?,
                        duration,
                        max_guesses: 0,
                        rate: 0.0,
                        timeout: Duration::from_millis(300),
                        stop_when_suspended: false,
                        run_id: 0,
                    },
                },
            };
            let live = Arc::new(MixedLive::default());
            let l = live.clone();
            let attack = a.attack;
            let before = query(&target);
            let p = Progress::start(progress, every, move |e| l.line(attack, e));
            let r = mixed::run(&opts, &live, stop);
            p.finish();
            let mut report = Report::new("mixed", Some(target.gateway));
            report.mixed = Some(r?);
            report.softswitch = after(&target, before);
            Ok(report)
        }
        Command::Softswitch(a) => {
            let duration = seconds(a.duration, "--duration")?;
            let s = StandIn::start(a.listen, a.threads)
                .with_context(|| format!("cannot listen on {}", a.listen))?;
            eprintln!(
                "sipgw-bench softswitch: listening on {} ({} thread(s)); Ctrl-C to stop",
                s.addr(),
                a.threads.max(1)
            );
            let start = std::time::Instant::now();
            let mut last = 0;
            while start.elapsed() < duration && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let secs = start.elapsed().as_secs();
                if progress && secs != last {
                    last = secs;
                    let c = s.snapshot();
                    eprintln!(
                        "[{secs:>6}s] softswitch: requests {} REGISTER {} (authenticated {})",
                        c.requests, c.register, c.register_asserted
                    );
                }
            }
            let mut report = Report::new("softswitch", None);
            report.softswitch_stand_in = Some(s.stop());
            Ok(report)
        }
    }
}

fn query(target: &Target) -> Option<softswitch::SoftswitchSnapshot> {
    softswitch::query(target.softswitch?, QUERY_TIMEOUT)
}

fn after(
    target: &Target,
    before: Option<softswitch::SoftswitchSnapshot>,
) -> Option<softswitch::SoftswitchSnapshot> {
    let before = before?;
    // Let the last forwarded requests arrive.
    std::thread::sleep(Duration::from_millis(100));
    Some(query(target)?.since(&before))
}
