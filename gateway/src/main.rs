//! `sipgw`: the gateway command (`run`, `check`, `stats`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use sipgw::runtime::{self, metrics, Runtime};
use sipgw::Config;

/// SIP digest-authentication gateway: challenges, verifies and rate-limits SIP authentication
/// in front of a softswitch, and forwards authenticated requests to it.
#[derive(Debug, Parser)]
#[command(name = "sipgw", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing-subscriber EnvFilter syntax); default "warn,sipgw=info": startup,
    /// reloads, and one line per suspension, ban and (rate-limited) rejected credential.
    /// The SIPGW_LOG environment variable is used when this is not given.
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (gateway.backend: "udp" kernel sockets, or "xdp" AF_XDP on
    /// xdp.interface, as root). SIGHUP reloads the configuration and credentials (an invalid one
    /// is refused and the running one kept); SIGTERM or SIGINT stops (and detaches the XDP
    /// program sipgw attached, unless xdp.keep_attached).
    Run {
        /// The configuration file (TOML, see docs/configuration.md).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a configuration and its credential file, print what would run, and exit.
    Check {
        /// The configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print a running gateway's counters (read from its metrics endpoint).
    Stats {
        /// Read the metrics address (gateway.metrics) from this configuration file.
        #[arg(short, long, value_name = "FILE", conflicts_with = "metrics")]
        config: Option<PathBuf>,
        /// The metrics address, e.g. 127.0.0.1:9465.
        #[arg(short, long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
        /// Print JSON (one object: metric name → value).
        #[arg(short, long)]
        json: bool,
        /// Include counters that are zero.
        #[arg(short, long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("SIPGW_LOG").ok())
        .unwrap_or_else(|| "warn,sipgw=info".to_owned());
    let filter = match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("sipgw: bad log filter {filter:?}: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config } => check(&config),
        Command::Stats {
            config,
            metrics,
            json,
            all,
        } => stats(config.as_deref(), metrics, json, all),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipgw: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &Path) -> Result<()> {
    let loaded = runtime::load(path)?;
    // Signals are blocked into the iterator before the workers start, so none is missed.
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])
        .context("cannot install signal handlers")?;
    let rt = Runtime::start(loaded)?;
    for signal in signals.forever() {
        match signal {
            SIGHUP => match rt.reload(path) {
                Ok(report) if report.needs_restart.is_empty() => {
                    tracing::info!(accounts = report.accounts, "configuration reloaded")
                }
                Ok(report) => tracing::warn!(
                    accounts = report.accounts,
                    needs_restart = ?report.needs_restart,
                    "configuration reloaded; these keys keep their running value until a restart"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "reload refused: the running configuration is kept"
                ),
            },
            _ => break,
        }
    }
    tracing::info!("stopping");
    let snapshot = rt.snapshot();
    rt.stop();
    tracing::info!(
        received = snapshot.engine.received,
        challenged = snapshot.engine.challenged,
        forwarded = snapshot.engine.forwarded_digest + snapshot.engine.forwarded_address,
        suspensions = snapshot.engine.suspensions,
        "stopped"
    );
    Ok(())
}

fn check(path: &Path) -> Result<()> {
    let loaded = runtime::load(path)?;
    let c = &loaded.config;
    println!("{}: OK", path.display());
    println!("  realm            {}", c.auth.realm);
    println!("  accounts         {}", loaded.credentials.len());
    if let Some(db) = &c.database {
        println!(
            "  database         {} (read every {} s{}{})",
            sipgw::runtime::database::origin(db),
            db.refresh.as_secs(),
            db.notify
                .as_ref()
                .map(|n| format!(", at once on NOTIFY {n}"))
                .unwrap_or_default(),
            db.cache
                .as_ref()
                .map(|p| format!(", cache {}", p.display()))
                .unwrap_or_default()
        );
    }
    println!(
        "  listen           {} (advertised as {})",
        c.gateway.listen, c.gateway.advertise
    );
    if let Some(s) = c.gateway.softswitch {
        println!("  softswitch       {s}");
    }
    println!("  workers          {}", runtime::worker_count(c));
    match (c.gateway.backend, &c.xdp.interface) {
        (sipgw::config::Backend::Xdp, Some(i)) => println!(
            "  backend          xdp: AF_XDP on {i}, one socket per RX queue (queues 0-{}), pins \
             in {}",
            runtime::worker_count(c).saturating_sub(1),
            c.xdp.pin_root.join(i).display()
        ),
        (_, Some(i)) => println!(
            "  backend          udp, bans enforced by the XDP program pinned in {}",
            c.xdp.pin_root.join(i).display()
        ),
        (_, None) => println!("  backend          udp (kernel sockets, no root needed)"),
    }
    if let (sipgw::config::Backend::Xdp, Some(i)) = (c.gateway.backend, &c.xdp.interface) {
        let setting = match c.xdp.zero_copy {
            sipgw::config::ZeroCopy::On => "on",
            sipgw::config::ZeroCopy::Off => "off",
            sipgw::config::ZeroCopy::Auto => "auto",
        };
        match runtime::xdp::probe_mode(c, i) {
            Ok(true) => println!("  af_xdp           zero-copy on {i} (xdp.zero_copy = {setting})"),
            Ok(false) => println!(
                "  af_xdp           copy mode on {i} (xdp.zero_copy = {setting}{})",
                if c.xdp.zero_copy == sipgw::config::ZeroCopy::Auto {
                    ": the driver offers no zero-copy"
                } else {
                    ""
                }
            ),
            Err(e) => println!(
                "  af_xdp           mode not probed (xdp.zero_copy = {setting}): {e} (the probe \
                 binds queue 0: it needs root and a queue no running sipgw holds; a running \
                 gateway logs each socket's mode)"
            ),
        }
        println!(
            "  softswitch leg   {}",
            if c.xdp.upstream {
                "AF_XDP when its next hop is on the interface and resolved, else the kernel \
                 socket (xdp.upstream)"
            } else {
                "kernel socket (xdp.upstream = false)"
            }
        );
    }
    println!(
        "  max_retry        {} (suspend {} s), challenge mode {}",
        c.auth.max_retry,
        c.auth.failed_suspend.as_secs(),
        c.auth.challenge_mode.number()
    );
    println!(
        "  digest           multi-buffer MD5 on {} (this CPU)",
        sipgw::md5x::Path::best().name()
    );
    let names: Vec<&str> = c.auth.algorithms.iter().map(|a| a.as_str()).collect();
    println!(
        "  algorithms       {} (one challenge header each, in this order)",
        names.join(", ")
    );
    if c.auth.algorithms.len() > 1 && c.limits.amplification_limit_milli < 2000 {
        println!(
            "  warning          {} challenge headers are about twice a phone's first REGISTER; \
             with limits.amplification_limit = {:.1} the challenges to sources that have not \
             completed a round trip carry only the first algorithms that fit (set it to 2.0 to \
             offer all)",
            c.auth.algorithms.len(),
            f64::from(c.limits.amplification_limit_milli) / 1000.0
        );
    }
    match c.limits.known_sources {
        0 => println!("  overload         known-sources-first admission off"),
        n => println!("  overload         known sources first ({n} remembered in all)"),
    }
    match c.gateway.metrics {
        Some(m) => println!("  metrics          http://{m}/metrics"),
        None => println!("  metrics          off (set gateway.metrics to enable, and sipgw stats)"),
    }
    Ok(())
}

fn stats(
    config: Option<&Path>,
    metrics_addr: Option<SocketAddr>,
    json: bool,
    all: bool,
) -> Result<()> {
    let addr = match (metrics_addr, config) {
        (Some(a), _) => a,
        (None, Some(path)) => {
            let c = Config::from_file(path)?;
            match c.gateway.metrics {
                Some(a) => a,
                None => bail!(
                    "{}: gateway.metrics is not set: sipgw stats reads the metrics endpoint; \
                     set e.g. metrics = \"127.0.0.1:9465\" in [gateway] and restart sipgw",
                    path.display()
                ),
            }
        }
        (None, None) => bail!("give --config FILE (to read gateway.metrics) or --metrics ADDR"),
    };
    let text = metrics::fetch(addr, Duration::from_secs(3))
        .with_context(|| format!("cannot read metrics from http://{addr}/metrics (is sipgw running with gateway.metrics = \"{addr}\"?)"))?;
    let samples: Vec<(String, u64)> = metrics::parse(&text)
        .into_iter()
        .filter(|(_, v)| all || *v != 0)
        .collect();
    if json {
        let map: serde_json::Map<String, serde_json::Value> = samples
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::from(v)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    } else {
        let width = samples.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in samples {
            println!("{k:<width$}  {v}");
        }
    }
    Ok(())
}
