//! `sipgw-loader`: attach sipgw's XDP program, show its state and counters, manage bans.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};
use sipgw_ebpf::{BanPrefix, BanReason, DEFAULT_PIN_ROOT};
use sipgw_loader::{AttachOptions, BanEntry, BanScope, Counters, Detached, Error, Status, Target};

/// Attach sipgw's XDP program to an interface, pin its maps under
/// <PIN_ROOT>/<IFACE>/, show its counters and manage the sources it drops.
///
/// The attachment and the pinned maps outlive this command: bans and counters survive a
/// restart of the gateway and of the loader. Read the counters with bpftool too:
///   bpftool map dump pinned /sys/fs/bpf/sipgw/<IFACE>/counters
#[derive(Debug, Parser)]
#[command(name = "sipgw-loader", version)]
struct Cli {
    /// Print JSON (one object per result; one per line with `stats --watch`).
    #[arg(short = 'j', long, global = true)]
    json: bool,
    /// Print indented JSON (implies --json).
    #[arg(short = 'p', long, global = true)]
    pretty: bool,
    /// Directory under which each interface's objects are pinned.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_PIN_ROOT)]
    pin_root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the program (reusing pinned maps) and attach it to an interface.
    Attach {
        /// The interface.
        #[arg(long, short)]
        iface: String,
        #[command(flatten)]
        opts: AttachOptions,
    },
    /// Detach the program; the pinned maps (bans, counters) stay unless --purge.
    Detach {
        /// The interface.
        #[arg(long, short)]
        iface: String,
        /// Detach even if the attached program is not ours.
        #[arg(long)]
        force: bool,
        /// Remove the pinned maps too (bans are lost).
        #[arg(long)]
        purge: bool,
    },
    /// Show the attached program, its mode, the pinned maps and the configuration.
    Status {
        /// The interface.
        #[arg(long, short)]
        iface: String,
    },
    /// Show the XDP program's and the gateway's counters (sums over CPUs and workers).
    Stats {
        /// The interface.
        #[arg(long, short)]
        iface: String,
        /// Print again every SECS seconds, with rates.
        #[arg(long, short, value_name = "SECS", num_args = 0..=1, default_missing_value = "1")]
        watch: Option<f64>,
        /// With --watch: stop after this many samples [default: until interrupted].
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Also show counters that are zero.
        #[arg(long, short)]
        all: bool,
    },
    /// Manage banned sources (dropped by the XDP program).
    Ban {
        #[command(subcommand)]
        command: BanCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BanCommand {
    /// Ban a source address or a whole network (IPv4 or IPv6).
    ///
    /// A bare address is one source (/32, /128); ADDRESS/LENGTH bans every source inside the
    /// network (198.18.0.0/24, 2001:db8::/64). Host bits past the length are refused.
    Add {
        /// The interface.
        #[arg(long, short)]
        iface: String,
        /// The source: ADDRESS or ADDRESS/LENGTH.
        #[arg(value_name = "ADDR[/LEN]")]
        addr: BanPrefix,
        /// How long, in seconds [default: until `ban del`].
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// Why: manual, suspended or lockout.
        #[arg(long, default_value = "manual")]
        reason: BanReason,
    },
    /// Remove a ban: the one of exactly this address or network.
    Del {
        /// The interface.
        #[arg(long, short)]
        iface: String,
        /// The ban: ADDRESS or ADDRESS/LENGTH, as `ban list` shows it.
        #[arg(value_name = "ADDR[/LEN]")]
        addr: BanPrefix,
    },
    /// List the bans in force (addresses as /32 or /128, networks as CIDR).
    List {
        /// The interface.
        #[arg(long, short)]
        iface: String,
    },
}

struct Out {
    json: bool,
    pretty: bool,
}

impl Out {
    fn value(&self, v: &Value) {
        let s = if self.pretty {
            serde_json::to_string_pretty(v)
        } else {
            serde_json::to_string(v)
        }
        .expect("JSON values always serialize");
        println!("{s}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out {
        json: cli.json || cli.pretty,
        pretty: cli.pretty,
    };
    match run(cli, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if out.json {
                out.value(&json!({ "error": e.to_string() }));
            }
            eprintln!("sipgw-loader: {e}");
            ExitCode::FAILURE
        }
    }
}

fn target(pin_root: &std::path::Path, iface: String) -> Target {
    Target {
        iface,
        pin_root: pin_root.to_owned(),
    }
}

fn run(cli: Cli, out: &Out) -> Result<(), Error> {
    let root = cli.pin_root;
    match cli.command {
        Command::Attach { iface, opts } => {
            let s = sipgw_loader::attach(&target(&root, iface), &opts)?;
            print_status(out, &s);
        }
        Command::Detach {
            iface,
            force,
            purge,
        } => {
            let d = sipgw_loader::detach(&target(&root, iface), force, purge)?;
            print_detached(out, &d);
        }
        Command::Status { iface } => {
            let s = sipgw_loader::status(&target(&root, iface))?;
            print_status(out, &s);
        }
        Command::Stats {
            iface,
            watch,
            count,
            all,
        } => stats(out, &target(&root, iface), watch, count, all)?,
        Command::Ban { command } => match command {
            BanCommand::Add {
                iface,
                addr,
                ttl,
                reason,
            } => {
                let e = sipgw_loader::ban_add(
                    &target(&root, iface),
                    addr,
                    ttl.map(Duration::from_secs),
                    reason,
                )?;
                if out.json {
                    out.value(&serde_json::to_value(&e).expect("serializable"));
                } else {
                    println!("banned {} ({}, {})", e.cidr, e.reason, expiry(&e));
                }
            }
            BanCommand::Del { iface, addr } => {
                sipgw_loader::ban_del(&target(&root, iface), addr)?;
                if out.json {
                    out.value(&json!({ "removed": addr.to_string() }));
                } else {
                    println!("removed the ban of {addr}");
                }
            }
            BanCommand::List { iface } => {
                let list = sipgw_loader::ban_list(&target(&root, iface))?;
                if out.json {
                    out.value(&serde_json::to_value(&list).expect("serializable"));
                } else {
                    print_bans(&list);
                }
            }
        },
    }
    Ok(())
}

fn expiry(e: &BanEntry) -> String {
    match e.expires_in_secs {
        Some(s) => format!("expires in {s} s"),
        None => "no expiry".to_owned(),
    }
}

fn print_bans(list: &[BanEntry]) {
    if list.is_empty() {
        println!("no bans in force");
        return;
    }
    println!(
        "{:<44} {:<10} {:>12} {:>10} {:>12}",
        "ADDRESS", "REASON", "EXPIRES IN", "AGE", "DROPPED"
    );
    for e in list {
        let exp = e
            .expires_in_secs
            .map_or_else(|| "never".to_owned(), |s| format!("{s} s"));
        println!(
            "{:<44} {:<10} {:>12} {:>10} {:>12}",
            e.cidr,
            e.reason,
            exp,
            format!("{} s", e.age_secs),
            e.dropped
        );
    }
}

fn print_status(out: &Out, s: &Status) {
    if out.json {
        out.value(&serde_json::to_value(s).expect("serializable"));
        return;
    }
    println!("interface:  {} (ifindex {})", s.iface, s.ifindex);
    match (s.prog_id, s.prog_name.as_deref(), s.mode) {
        (Some(id), name, mode) => println!(
            "program:    id {id} `{}` in {} mode{}",
            name.unwrap_or("?"),
            mode.unwrap_or("?"),
            if s.ours {
                ""
            } else {
                " (NOT sipgw's pinned program)"
            }
        ),
        _ => println!("program:    none attached"),
    }
    println!("pinned in:  {}", s.pin_dir.display());
    for p in &s.pinned {
        println!(
            "  {:<12} {}{}",
            p.name,
            p.path.display(),
            if p.present { "" } else { " (missing)" }
        );
    }
    if let Some(c) = &s.config {
        let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
        println!("sip ports:  {}", ports.join(","));
        println!(
            "bans:       {} in force, scope {}",
            s.bans_active.unwrap_or(0),
            match c.ban_scope {
                BanScope::All => "all traffic",
                BanScope::Sip => "SIP ports only",
            }
        );
        if c.flood_rate_pps > 0 {
            println!(
                "flood:      {} packets/s per source and CPU, burst {}",
                c.flood_rate_pps, c.flood_burst
            );
        } else {
            println!("flood:      guard off");
        }
        println!(
            "fragments:  to {}",
            if c.fragments_to_xsk {
                "AF_XDP sockets"
            } else {
                "the kernel stack"
            }
        );
    }
}

fn print_detached(out: &Out, d: &Detached) {
    if out.json {
        out.value(&serde_json::to_value(d).expect("serializable"));
    } else {
        println!(
            "detached program {} ({} mode) from {}{}",
            d.prog_id,
            d.mode,
            d.iface,
            if d.purged {
                "; pinned maps removed"
            } else {
                "; pinned maps kept"
            }
        );
    }
}

fn counters_json(c: &[(String, u64)]) -> Value {
    Value::Object(
        c.iter()
            .map(|(n, v)| (n.clone(), Value::from(*v)))
            .collect::<Map<String, Value>>(),
    )
}

fn stats(
    out: &Out,
    t: &Target,
    watch: Option<f64>,
    count: Option<u64>,
    all: bool,
) -> Result<(), Error> {
    let interval = match watch {
        Some(s) if !(0.05..=3600.0).contains(&s) => {
            return Err(Error::Invalid(format!(
                "--watch {s}: the interval must be between 0.05 and 3600 seconds"
            )))
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let samples = match (interval, count) {
        (None, _) => 1,
        (Some(_), Some(0)) => {
            return Err(Error::Invalid("--count must be at least 1".to_owned()));
        }
        (Some(_), n) => n.unwrap_or(u64::MAX),
    };
    let mut prev: Option<(Instant, Counters)> = None;
    for i in 0..samples {
        if i > 0 {
            std::thread::sleep(interval.expect("several samples only with --watch"));
        }
        let now = Instant::now();
        let c = sipgw_loader::counters(t)?;
        let rates = prev.as_ref().map(|(t0, p)| {
            let dt = now.duration_since(*t0).as_secs_f64().max(1e-9);
            let rate = |a: &[(String, u64)], b: &[(String, u64)]| -> Vec<(String, f64)> {
                a.iter()
                    .zip(b)
                    .map(|((n, v), (_, pv))| (n.clone(), v.saturating_sub(*pv) as f64 / dt))
                    .collect()
            };
            (rate(&c.xdp, &p.xdp), rate(&c.gateway, &p.gateway))
        });
        if out.json {
            let mut v = json!({
                "iface": t.iface,
                "xdp": counters_json(&c.xdp),
                "gateway": counters_json(&c.gateway),
            });
            if let Some((xr, gr)) = &rates {
                let m = |r: &[(String, f64)]| {
                    Value::Object(r.iter().map(|(n, v)| (n.clone(), json!(v))).collect())
                };
                v["xdp_per_sec"] = m(xr);
                v["gateway_per_sec"] = m(gr);
            }
            out.value(&v);
        } else {
            print_counters(
                "XDP program (sum over CPUs)",
                &c.xdp,
                rates.as_ref().map(|r| &r.0),
                all,
            );
            print_counters(
                "gateway (sum over workers)",
                &c.gateway,
                rates.as_ref().map(|r| &r.1),
                all,
            );
        }
        let _ = std::io::stdout().flush();
        prev = Some((now, c));
    }
    Ok(())
}

fn print_counters(title: &str, c: &[(String, u64)], rates: Option<&Vec<(String, f64)>>, all: bool) {
    println!("{title}:");
    let mut shown = 0;
    for (i, (name, v)) in c.iter().enumerate() {
        if *v == 0 && !all {
            continue;
        }
        shown += 1;
        match rates {
            Some(r) => println!("  {name:<26} {v:>16} {:>12.1}/s", r[i].1),
            None => println!("  {name:<26} {v:>16}"),
        }
    }
    if shown == 0 {
        println!("  (all zero; --all shows them)");
    }
}
