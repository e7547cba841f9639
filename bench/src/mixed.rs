//! Mixed: a legitimate registration load while a flood or a brute force runs, from other
//! source addresses — the legitimate success rate and latency under attack, the number
//! operators care about most.
//!
//! Layer: load driver; it only runs [`register`](crate::register) and
//! [`flood`](crate::flood) or [`bruteforce`](crate::bruteforce) side by side, for the same
//! duration. The attack starts with the legitimate load (a banned-mode flood first brute-forces
//! its way into the ban, so that phase overlaps the start of the load).

use std::io;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

use crate::bruteforce::{self, BruteforceLive, BruteforceOptions, BruteforceReport};
use crate::flood::{self, FloodLive, FloodOptions, FloodReport};
use crate::register::{self, RegisterLive, RegisterOptions, RegisterReport};

/// The attack run beside the legitimate load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Attack {
    /// [`flood`](crate::flood).
    Flood,
    /// [`bruteforce`](crate::bruteforce), running for the whole duration.
    Bruteforce,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct MixedOptions {
    /// The legitimate load.
    pub register: RegisterOptions,
    /// Which attack.
    pub attack: Attack,
    /// The flood, when `attack` is [`Attack::Flood`].
    pub flood: FloodOptions,
    /// The brute force, when `attack` is [`Attack::Bruteforce`].
    pub bruteforce: BruteforceOptions,
}

/// Counters the progress display reads.
#[derive(Debug, Default)]
pub struct MixedLive {
    /// The legitimate load.
    pub register: RegisterLive,
    /// The flood.
    pub flood: FloodLive,
    /// The brute force.
    pub bruteforce: BruteforceLive,
}

impl MixedLive {
    /// One progress line.
    pub fn line(&self, attack: Attack, elapsed: Duration) -> String {
        let a = match attack {
            Attack::Flood => self.flood.line(elapsed),
            Attack::Bruteforce => self.bruteforce.line(elapsed),
        };
        format!("{} | {a}", self.register.line(elapsed))
    }
}

/// The result of a mixed run.
#[derive(Debug, Clone, Serialize)]
pub struct MixedReport {
    /// Which attack ran.
    pub attack: Attack,
    /// Legitimate registrations that succeeded, of those that finished (0 to 1).
    pub legitimate_success_rate: f64,
    /// The legitimate load in full.
    pub legitimate: RegisterReport,
    /// The flood, if that was the attack.
    pub flood: Option<FloodReport>,
    /// The brute force, if that was the attack.
    pub bruteforce: Option<BruteforceReport>,
}

/// Run the legitimate load and the attack together; `stop` ends both.
pub fn run(opts: &MixedOptions, live: &MixedLive, stop: &AtomicBool) -> io::Result<MixedReport> {
    let (legit, attack) = std::thread::scope(|s| {
        let attack = s.spawn(|| match opts.attack {
            Attack::Flood => flood::run(&opts.flood, &live.flood, stop).map(|f| (Some(f), None)),
            Attack::Bruteforce => {
                bruteforce::run(&opts.bruteforce, &live.bruteforce, stop).map(|b| (None, Some(b)))
            }
        });
        let legit = register::run(&opts.register, &live.register, stop);
        let attack = attack
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the attack thread panicked")));
        (legit, attack)
    });
    let legitimate = legit?;
    let (flood, bruteforce) = attack?;
    Ok(MixedReport {
        attack: opts.attack,
        legitimate_success_rate: legitimate.success_rate,
        legitimate,
        flood,
        bruteforce,
    })
}
