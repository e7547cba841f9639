//! Sharing policy state between the engines of a sharded runtime (see [`crate::shard`]):
//! what a worker tells the owners of a terminal or source it counted a failure or success
//! for, and what it does with what other workers tell it.
//!
//! Layer: protocol core, sans-IO. [`Sharing`] holds this worker's [`ShardId`] and its
//! [`Outbox`]; it acts on the engine's policy tables, events and counters, which the caller
//! lends it.
#![forbid(unsafe_code)]

use std::net::IpAddr;

use quanta::Instant;

use crate::counters::Counters;
use crate::event::{BanReason, Events, Name};
use crate::policy::{FailureOutcome, Policy, SourceKey, TerminalKey};
use crate::shard::{Dest, Outbox, ShardId, ShardMsg};

/// This worker's place among the shards, and the messages it has for the others.
#[derive(Debug)]
pub(crate) struct Sharing {
    shard: ShardId,
    outbox: Outbox,
}

impl Default for Sharing {
    /// The only worker.
    fn default() -> Sharing {
        Sharing {
            shard: ShardId::SINGLE,
            outbox: Outbox::default(),
        }
    }
}

impl Sharing {
    /// This worker is `shard.index` of `shard.count` (clamped to a valid pair).
    pub(crate) fn set_shard(&mut self, shard: ShardId) {
        self.shard = ShardId {
            index: shard.index.min(shard.count.saturating_sub(1)),
            count: shard.count.max(1),
        };
    }

    /// Which worker this is.
    pub(crate) fn shard(&self) -> ShardId {
        self.shard
    }

    /// Next message for other workers.
    pub(crate) fn poll(&mut self) -> Option<(Dest, ShardMsg)> {
        self.outbox.pop()
    }

    /// Messages dropped because the driver did not drain the outbox.
    pub(crate) fn dropped(&self) -> u64 {
        self.outbox.dropped()
    }

    /// Applies a message from another worker to this worker's tables.
    pub(crate) fn apply(
        &mut self,
        now: Instant,
        msg: ShardMsg,
        policy: &mut Policy,
        events: &mut Events,
        counters: &mut Counters,
    ) {
        match msg {
            ShardMsg::TerminalFailure {
                terminal,
                source,
                username,
            } => {
                let Some(until) =
                    policy.terminal_failure(now, terminal, source, username.as_bytes(), events)
                else {
                    return;
                };
                counters.suspensions += 1;
                self.outbox.push(
                    Dest::All,
                    ShardMsg::Suspended {
                        terminal,
                        source,
                        username,
                        until,
                    },
                );
                if policy.config().ban_source_on_suspend {
                    let key = policy.source_key(source);
                    let reason = BanReason::TerminalSuspended;
                    if let Some(until) = policy.ban_source(now, key, source, reason, until, events)
                    {
                        counters.source_bans += 1;
                        self.broadcast_ban(source, reason, until);
                    }
                }
            }
            ShardMsg::SourceFailure { source } => {
                let key = policy.source_key(source);
                if let Some(until) = policy.source_failure(now, key, source, false, events) {
                    counters.source_bans += 1;
                    self.broadcast_ban(source, BanReason::SourceLockout, until);
                }
            }
            ShardMsg::TerminalSuccess { terminal } => {
                if policy.reset_terminal(terminal) {
                    self.outbox.push(Dest::All, ShardMsg::Reset { terminal });
                }
            }
            ShardMsg::SourceSuccess { source } => {
                let key = policy.source_key(source);
                policy.reset_source(key);
            }
            ShardMsg::Suspended {
                terminal,
                source,
                username,
                until,
            } => {
                policy.mirror_suspension(now, terminal, source, username.as_bytes(), until);
            }
            ShardMsg::Banned { source, until, .. } => {
                let key = policy.source_key(source);
                policy.mirror_ban(now, key, source, until);
            }
            ShardMsg::Reset { terminal } => {
                let _had_count = policy.reset_terminal(terminal);
            }
        }
    }

    fn broadcast_ban(&mut self, source: IpAddr, reason: BanReason, until: Instant) {
        self.outbox.push(
            Dest::All,
            ShardMsg::Banned {
                source,
                reason,
                until,
            },
        );
    }

    /// Tells the owners (and, for a suspension or ban, everyone) about a failure counted here.
    pub(crate) fn failure(
        &mut self,
        policy: &Policy,
        terminal: TerminalKey,
        source: SourceKey,
        addr: IpAddr,
        username: &[u8],
        out: &FailureOutcome,
    ) {
        let shard = self.shard;
        let username = Name::new(username);
        let owner = terminal.owner(shard.count);
        // A failure that suspended the terminal here is announced to everyone below instead:
        // the owner must not count it and suspend a second time.
        if owner != shard.index && out.suspended_until.is_none() {
            self.outbox.push(
                Dest::Owner(owner),
                ShardMsg::TerminalFailure {
                    terminal,
                    source: addr,
                    username,
                },
            );
        }
        let owner = source.owner(shard.count);
        if policy.config().source_max_retry > 0
            && owner != shard.index
            && out.banned_until.is_none()
        {
            self.outbox
                .push(Dest::Owner(owner), ShardMsg::SourceFailure { source: addr });
        }
        if let Some(until) = out.suspended_until {
            self.outbox.push(
                Dest::All,
                ShardMsg::Suspended {
                    terminal,
                    source: addr,
                    username,
                    until,
                },
            );
        }
        if let Some(until) = out.banned_until {
            // The policy picked the reason by the same rule.
            let reason = if out.suspended && policy.config().ban_source_on_suspend {
                BanReason::TerminalSuspended
            } else {
                BanReason::SourceLockout
            };
            self.broadcast_ban(addr, reason, until);
        }
    }

    /// Tells the owners about a success seen here.
    pub(crate) fn success(
        &mut self,
        policy: &Policy,
        terminal: TerminalKey,
        source: SourceKey,
        addr: IpAddr,
    ) {
        let shard = self.shard;
        let owner = terminal.owner(shard.count);
        if owner != shard.index {
            self.outbox
                .push(Dest::Owner(owner), ShardMsg::TerminalSuccess { terminal });
        }
        let owner = source.owner(shard.count);
        if policy.config().source_max_retry > 0 && owner != shard.index {
            self.outbox
                .push(Dest::Owner(owner), ShardMsg::SourceSuccess { source: addr });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::policy::PolicyConfig;

    fn policy() -> Policy {
        let config = Config::default();
        Policy::new(PolicyConfig::new(&config.auth, &config.limits), [9; 16])
    }

    /// A terminal key owned by worker `want` of `workers`, and one not.
    fn terminal_owned_by(policy: &Policy, want: u16, workers: u16) -> TerminalKey {
        (0u32..)
            .map(|i| {
                policy.terminal_key(format!("user{i}").as_bytes(), "198.18.0.9".parse().unwrap())
            })
            .find(|k| k.owner(workers) == want)
            .unwrap()
    }

    #[test]
    fn a_failure_counted_by_a_non_owner_goes_to_the_owner_only() {
        let policy = policy();
        let mut s = Sharing::default();
        s.set_shard(ShardId { index: 0, count: 2 });
        let addr: IpAddr = "198.18.0.9".parse().unwrap();
        let terminal = terminal_owned_by(&policy, 1, 2);
        let source = policy.source_key(addr);
        s.failure(
            &policy,
            terminal,
            source,
            addr,
            b"alice",
            &FailureOutcome::default(),
        );
        let (dest, msg) = s.poll().unwrap();
        assert_eq!(dest, Dest::Owner(1));
        assert!(matches!(msg, ShardMsg::TerminalFailure { terminal: t, .. } if t == terminal));
        // Counted by its owner: nothing to tell anyone.
        let mine = terminal_owned_by(&policy, 0, 2);
        while s.poll().is_some() {}
        s.failure(
            &policy,
            mine,
            source,
            addr,
            b"bob",
            &FailureOutcome::default(),
        );
        let after: Vec<_> = std::iter::from_fn(|| s.poll()).collect();
        assert!(
            after
                .iter()
                .all(|(_, m)| !matches!(m, ShardMsg::TerminalFailure { .. })),
            "{after:?}"
        );
    }

    #[test]
    fn a_suspension_here_is_announced_to_everyone_not_counted_again() {
        let policy = policy();
        let mut s = Sharing::default();
        s.set_shard(ShardId { index: 0, count: 4 });
        let addr: IpAddr = "198.18.0.9".parse().unwrap();
        let terminal = terminal_owned_by(&policy, 3, 4);
        let until = Instant::recent();
        let out = FailureOutcome {
            suspended: true,
            suspended_until: Some(until),
            ..FailureOutcome::default()
        };
        s.failure(
            &policy,
            terminal,
            policy.source_key(addr),
            addr,
            b"alice",
            &out,
        );
        let msgs: Vec<_> = std::iter::from_fn(|| s.poll()).collect();
        assert!(msgs
            .iter()
            .all(|(_, m)| !matches!(m, ShardMsg::TerminalFailure { .. })));
        assert!(msgs.iter().any(|(d, m)| *d == Dest::All
            && matches!(m, ShardMsg::Suspended { until: u, .. } if *u == until)));
    }

    #[test]
    fn shard_is_clamped() {
        let mut s = Sharing::default();
        assert_eq!(s.shard(), ShardId::SINGLE);
        s.set_shard(ShardId { index: 9, count: 0 });
        assert_eq!(s.shard(), ShardId { index: 0, count: 1 });
    }
}
