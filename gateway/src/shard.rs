//! Messages between the engines of several workers (per-core shards).
//!
//! Layer: sans-IO protocol state. The runtime carries these messages between worker threads
//! (over crossbeam channels, batched); tests and replays can carry them by hand.
//!
//! Every worker runs its own [`crate::Engine`], and a terminal's packets may reach any worker
//! (the kernel spreads a `SO_REUSEPORT` group by source address *and port*). The rules:
//!
//! - **Owner**: each terminal key is owned by one worker ([`crate::policy::TerminalKey::owner`],
//!   a keyed hash of the username — with the source address under `suspend_scope =
//!   "terminal+source"`), each source address by one worker. The owner's failure count is the
//!   global one: every other worker reports each failure it sees to the owner
//!   ([`ShardMsg::TerminalFailure`], [`ShardMsg::SourceFailure`]) and each success
//!   ([`ShardMsg::TerminalSuccess`], [`ShardMsg::SourceSuccess`]: "consecutive" failures).
//! - **Local count**: every worker also counts the failures it sees itself, and suspends on its
//!   own when they reach `max_retry`. So, whatever the message delays (or a full queue), no
//!   worker evaluates more than `max_retry` wrong guesses for one terminal: an attacker spread
//!   over `N` workers gets at most `N × max_retry` guesses per suspension. In practice the
//!   owner's count reaches `max_retry` first and its suspension reaches every worker within one
//!   loop iteration of each (see `docs/operations.md`, "Consistency across workers").
//! - **Broadcast**: whoever suspends a terminal or bans a source tells every other worker
//!   ([`ShardMsg::Suspended`], [`ShardMsg::Banned`]); they drop it locally until the same end
//!   time, without logging the suspension a second time. When an owner forgets a count because
//!   of a success reported by another worker, it tells the others to forget theirs
//!   ([`ShardMsg::Reset`]).
//!
//! Nothing here allocates after construction: the outbox is a bounded queue; a full outbox
//! counts the message as dropped (the local count above still bounds the guesses).

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::IpAddr;

use quanta::Instant;

use crate::event::{BanReason, Name};
use crate::policy::TerminalKey;

/// Capacity of an engine's outbox (messages).
pub const OUTBOX_CAP: usize = 8192;

/// Which worker an engine is, of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardId {
    /// This worker's index, `0..count`.
    pub index: u16,
    /// Number of workers (at least 1).
    pub count: u16,
}

impl ShardId {
    /// The only worker.
    pub const SINGLE: ShardId = ShardId { index: 0, count: 1 };

    /// Whether there are other workers to talk to.
    pub fn is_sharded(self) -> bool {
        self.count > 1
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The worker with this index (the owner of a key).
    Owner(u16),
    /// Every other worker.
    All,
}

/// A message from one worker's engine to another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardMsg {
    /// To the owner: a failure of this terminal was seen.
    TerminalFailure {
        /// The terminal.
        terminal: TerminalKey,
        /// The address that failed.
        source: IpAddr,
        /// The username it claimed.
        username: Name,
    },
    /// To the owner: a failure from this address was seen (`source_max_retry`).
    SourceFailure {
        /// The address.
        source: IpAddr,
    },
    /// To the owner: this terminal authenticated.
    TerminalSuccess {
        /// The terminal.
        terminal: TerminalKey,
    },
    /// To the owner: this address authenticated.
    SourceSuccess {
        /// The address.
        source: IpAddr,
    },
    /// To all: this terminal is suspended until `until`.
    Suspended {
        /// The terminal.
        terminal: TerminalKey,
        /// The address whose failure suspended it.
        source: IpAddr,
        /// Its username.
        username: Name,
        /// End of the suspension.
        until: Instant,
    },
    /// To all: this address is banned until `until`.
    Banned {
        /// The address.
        source: IpAddr,
        /// Why.
        reason: BanReason,
        /// End of the ban.
        until: Instant,
    },
    /// To all: forget this terminal's failure count (it authenticated).
    Reset {
        /// The terminal.
        terminal: TerminalKey,
    },
}

/// The bounded queue of messages an engine wants sent.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<(Dest, ShardMsg)>,
    dropped: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            queue: VecDeque::with_capacity(OUTBOX_CAP),
            dropped: 0,
        }
    }
}

impl Outbox {
    /// Queue a message (never allocates: a full queue counts it as dropped).
    pub fn push(&mut self, dest: Dest, msg: ShardMsg) {
        if self.queue.len() < OUTBOX_CAP {
            self.queue.push_back((dest, msg));
        } else {
            self.dropped += 1;
        }
    }

    /// Next message to send.
    pub fn pop(&mut self) -> Option<(Dest, ShardMsg)> {
        self.queue.pop_front()
    }

    /// Messages dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
