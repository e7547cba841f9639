//! The end-of-run report: one serde structure for `--json`, and a human-readable table.
//!
//! Layer: output. The JSON object always has `command`, `gateway` (absent for `softswitch`),
//! the section of the command (`register`, `bruteforce`, `flood`, `mixed` or
//! `softswitch_stand_in`), and `softswitch`: what reached the softswitch stand-in during the run
//! (`null` when it was not asked or did not answer: not a stand-in).

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Serialize;

use crate::bruteforce::BruteforceReport;
use crate::flood::FloodReport;
use crate::mixed::MixedReport;
use crate::msg::Transport;
use crate::register::RegisterReport;
use crate::softswitch::SoftswitchSnapshot;
use crate::stats::LatencySummary;

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `register`, `bruteforce`, `flood`, `mixed` or `softswitch`.
    pub command: &'static str,
    /// The gateway attacked or loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<SocketAddr>,
    /// `register`'s result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<RegisterReport>,
    /// `bruteforce`'s result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bruteforce: Option<BruteforceReport>,
    /// `flood`'s result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flood: Option<FloodReport>,
    /// `mixed`'s result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mixed: Option<MixedReport>,
    /// `softswitch`: what the stand-in counted over its whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub softswitch_stand_in: Option<SoftswitchSnapshot>,
    /// What reached the softswitch stand-in during the run (load commands).
    pub softswitch: Option<SoftswitchSnapshot>,
}

impl Report {
    /// An empty report for `command`.
    pub fn new(command: &'static str, gateway: Option<SocketAddr>) -> Report {
        Report {
            command,
            gateway,
            register: None,
            bruteforce: None,
            flood: None,
            mixed: None,
            softswitch_stand_in: None,
            softswitch: None,
        }
    }

    /// The human-readable table.
    pub fn render(&self) -> String {
        let mut t = Table::default();
        if let Some(g) = self.gateway {
            t.row("gateway", g);
        }
        if let Some(r) = &self.register {
            register_rows(&mut t, "", r);
        }
        if let Some(b) = &self.bruteforce {
            bruteforce_rows(&mut t, "", b);
        }
        if let Some(f) = &self.flood {
            flood_rows(&mut t, "", f);
        }
        if let Some(m) = &self.mixed {
            t.section(&format!("legitimate load under {:?} attack", m.attack).to_lowercase());
            t.row(
                "legitimate success rate",
                format!("{:.2} %", m.legitimate_success_rate * 100.0),
            );
            register_rows(&mut t, "legitimate ", &m.legitimate);
            if let Some(f) = &m.flood {
                flood_rows(&mut t, "attack ", f);
            }
            if let Some(b) = &m.bruteforce {
                bruteforce_rows(&mut t, "attack ", b);
            }
        }
        if let Some(s) = &self.softswitch_stand_in {
            t.section("softswitch stand-in (whole run)");
            softswitch_rows(&mut t, s);
        }
        match &self.softswitch {
            Some(s) => {
                t.section("reached the softswitch (stand-in) during the run");
                softswitch_rows(&mut t, s);
            }
            None if self.command != "softswitch" => {
                t.section("softswitch");
                t.row(
                    "what reached it",
                    "unknown (no stand-in answered the query)",
                );
            }
            None => {}
        }
        t.finish()
    }
}

#[derive(Default)]
struct Table {
    rows: Vec<(String, String)>,
}

impl Table {
    fn row(&mut self, k: impl Into<String>, v: impl std::fmt::Display) {
        self.rows.push((k.into(), v.to_string()));
    }

    fn section(&mut self, title: &str) {
        self.rows.push((String::new(), String::new()));
        self.rows.push((format!("== {title}"), String::new()));
    }

    fn finish(self) -> String {
        let width = self
            .rows
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v) in &self.rows {
            if v.is_empty() {
                let _ = writeln!(out, "{k}");
            } else {
                let _ = writeln!(out, "{k:<width$}  {v}");
            }
        }
        out
    }
}

fn latency_rows(t: &mut Table, p: &str, l: &LatencySummary) {
    t.row(
        format!("{p}latency p50 / p90 / p99 / p99.9"),
        format!(
            "{} / {} / {} / {} µs",
            l.p50_us, l.p90_us, l.p99_us, l.p999_us
        ),
    );
    t.row(
        format!("{p}latency min / mean / max"),
        format!("{} / {} / {} µs", l.min_us, l.mean_us, l.max_us),
    );
}

fn register_rows(t: &mut Table, p: &str, r: &RegisterReport) {
    t.section(&format!("{p}registrations"));
    t.row(format!("{p}attempted"), r.attempted);
    t.row(
        format!("{p}succeeded"),
        format!("{} ({:.2} %)", r.succeeded, r.success_rate * 100.0),
    );
    t.row(format!("{p}failed"), r.failed);
    if !r.failures.is_empty() {
        let list: Vec<String> = r
            .failures
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        t.row(format!("{p}failures by reason"), list.join(", "));
    }
    t.row(format!("{p}timed out"), r.timed_out);
    if r.unfinished > 0 {
        t.row(format!("{p}unfinished (interrupted)"), r.unfinished);
    }
    t.row(
        format!("{p}registrations/s"),
        format!("{:.0} over {:.2} s", r.registrations_per_s, r.elapsed_s),
    );
    latency_rows(t, p, &r.latency);
    t.row(
        format!("{p}sockets / in flight / target rate"),
        format!(
            "{} / {} / {}",
            r.sockets,
            r.concurrency,
            if r.target_rate > 0.0 {
                format!("{:.0}/s", r.target_rate)
            } else {
                "max".to_owned()
            }
        ),
    );
    let unit = match r.transport {
        Transport::Udp => "datagrams",
        Transport::Tcp => "messages",
    };
    if r.transport == Transport::Tcp {
        t.row(
            format!("{p}TCP connections opened / lost"),
            format!("{} / {}", r.connections, r.connections_lost),
        );
        if !r.connection_errors.is_empty() {
            let list: Vec<String> = r
                .connection_errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            t.row(format!("{p}connections lost by reason"), list.join(", "));
        }
    }
    t.row(
        format!("{p}{unit} sent / received / stray"),
        format!(
            "{} / {} / {}",
            r.datagrams_sent, r.datagrams_received, r.stray
        ),
    );
    if r.send_errors > 0 {
        t.row(format!("{p}send errors"), r.send_errors);
    }
}

fn bruteforce_rows(t: &mut Table, p: &str, b: &BruteforceReport) {
    t.section(&format!("{p}brute force"));
    t.row(format!("{p}flows (sockets)"), b.flows);
    t.row(
        format!("{p}terminals suspended"),
        format!("{} of {}", b.terminals_suspended, b.terminals),
    );
    t.row(format!("{p}guesses sent"), b.guesses_sent);
    t.row(format!("{p}guesses answered"), b.guesses_answered);
    t.row(format!("{p}guesses unanswered"), b.guesses_unanswered);
    t.row(
        format!("{p}guesses accepted (reached softswitch)"),
        b.guesses_accepted,
    );
    t.row(
        format!("{p}most answered before silence (one terminal)"),
        b.max_answered_before_silence,
    );
    t.row(
        format!("{p}probes sent / unanswered"),
        format!("{} / {}", b.probes_sent, b.probes_unanswered),
    );
    t.row(
        format!("{p}elapsed"),
        format!("{:.2} s ({:.0} guesses/s)", b.elapsed_s, b.guesses_per_s),
    );
    for term in b.per_terminal.iter().take(16) {
        t.row(
            format!("{p}  {}@{}", term.user, term.source),
            format!(
                "sent {} answered {} before silence {} suspended {} accepted {}",
                term.guesses_sent,
                term.guesses_answered,
                term.answered_before_silence
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                term.suspended,
                term.accepted
            ),
        );
    }
    if b.per_terminal.len() > 16 {
        t.row(
            format!("{p}  …"),
            format!("{} more terminals (see --json)", b.per_terminal.len() - 16),
        );
    }
}

fn flood_rows(t: &mut Table, p: &str, f: &FloodReport) {
    t.section(&format!("{p}flood ({:?})", f.mode).to_lowercase());
    if let Some(b) = &f.ban_phase {
        t.row(
            format!("{p}ban phase"),
            format!(
                "{} of {} sources silenced after {} guesses answered",
                b.terminals_suspended, b.terminals, b.guesses_answered
            ),
        );
    }
    t.row(format!("{p}sockets"), f.sockets);
    t.row(
        format!("{p}sent"),
        format!(
            "{} ({:.0}/s over {:.2} s)",
            f.sent, f.sent_per_s, f.elapsed_s
        ),
    );
    if f.send_errors > 0 {
        t.row(format!("{p}send errors"), f.send_errors);
    }
    t.row(
        format!("{p}answers received"),
        format!("{} ({:.0}/s)", f.received, f.received_per_s),
    );
    if !f.responses.is_empty() {
        let list: Vec<String> = f
            .responses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        t.row(format!("{p}answers by status"), list.join(", "));
    }
}

fn softswitch_rows(t: &mut Table, s: &SoftswitchSnapshot) {
    t.row("requests", s.requests);
    t.row(
        "REGISTER (authenticated by sipgw)",
        format!("{} ({})", s.register, s.register_asserted),
    );
    t.row(
        "INVITE / ACK / BYE / other",
        format!("{} / {} / {} / {}", s.invite, s.ack, s.bye, s.other_methods),
    );
    t.row(
        "by class: register / bruteforce / flood / other",
        format!(
            "{} / {} / {} / {}",
            s.class_register, s.class_bruteforce, s.class_flood, s.class_other
        ),
    );
    if s.with_credentials > 0 {
        t.row("still carrying credentials", s.with_credentials);
    }
    if s.responses + s.malformed > 0 {
        t.row(
            "responses / malformed",
            format!("{} / {}", s.responses, s.malformed),
        );
    }
}
