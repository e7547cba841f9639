//! State the runtime's threads share: the loaded configuration, the counters each worker
//! publishes, the stop flag and the reload generation.
//!
//! Layer: driver. The workers ([`super::worker`]), the metrics server ([`super::metrics`])
//! and the control thread ([`super::Runtime`]) all import from here and never from each other
//! or from their parent module.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Config;
use crate::counters::{counters, Counters};
use crate::credentials::CredentialStore;
use crate::gateway::RouteCounters;
use crate::proxy::ProxyConfig;

/// How long a worker waits in `recvmmsg` before looking at its inbox and timers again.
pub const RECV_TIMEOUT: Duration = Duration::from_millis(5);

counters! {
    /// Counters of the runtime around the engines (sockets, forwarding, shards, logs).
    RuntimeCounters {
    /// Datagrams received from the socket.
    rx_datagrams,
    /// Datagrams longer than the receive slot (16 KiB), truncated by the kernel and dropped.
    rx_truncated,
    /// `recvmmsg` errors.
    rx_errors,
    /// Datagrams sent.
    tx_datagrams,
    /// Datagrams the kernel refused to send.
    tx_errors,
    /// Shard messages sent to other workers.
    shard_sent,
    /// Shard messages dropped (outbox or channel full).
    shard_dropped,
    /// Engine events dropped (not drained in time).
    events_dropped,
    /// Rejected-credential log lines not written (rate limit).
    rejections_not_logged,
    /// Configuration reloads accepted (once per reload, not per worker).
    reloads,
    /// Frames received on the AF_XDP sockets.
    xsk_rx_frames,
    /// Frames sent back with XDP TX (in-place challenges and 403s).
    xsk_tx_frames,
    /// In-place replies dropped because the TX ring was full.
    xsk_tx_ring_full,
    /// Times the fill ring could not be refilled (every frame in use).
    xsk_fill_starved,
    /// AF_XDP frames that were not a complete UDP datagram (dropped).
    xsk_not_udp,
    /// AF_XDP replies that did not fit in the frame (dropped).
    xsk_reply_too_large,
    /// AF_XDP replies copied into the received frame because the request found no free UMEM
    /// frame large enough to be written into directly (see `docs/operations.md`).
    xsk_reply_copied,
    /// Datagrams of the softswitch leg (forwarded requests, responses to phones) sent on the
    /// AF_XDP socket with the next hop's MAC from the kernel's neighbour table.
    xsk_upstream_frames,
    /// Datagrams of the softswitch leg sent through the kernel socket because their next hop
    /// on the AF_XDP interface had no usable neighbour entry yet (the kernel resolves it).
    xsk_upstream_unresolved,
    /// Datagrams of the softswitch leg sent through the kernel socket because their route is
    /// not out of the AF_XDP interface (another interface, a local address, a reject route).
    xsk_upstream_elsewhere,
    /// AF_XDP frames with a wrong IPv4 header or UDP checksum, or no UDP checksum over IPv6
    /// (dropped, as the kernel would).
    xsk_bad_checksum,
    /// Database reads that put a new snapshot of the accounts in force (`[database]`).
    database_swaps,
    /// Database reads that failed (server down, bad rows): the last good snapshot stayed.
    database_failures,
    /// Bans written into the XDP ban map.
    xdp_bans_written,
    /// Failed updates of the XDP maps.
    xdp_map_errors,
    /// Outputs for a stream flow this worker cannot reach (no such connection, or no stream
    /// transport configured), dropped.
    stream_unavailable,
    /// TCP connections accepted.
    tcp_accepted,
    /// TLS connections accepted.
    tls_accepted,
    /// Connections refused at accept: `tcp.max_connections` reached.
    stream_refused_global,
    /// Connections refused at accept: `tcp.max_per_source` reached for the source.
    stream_refused_per_source,
    /// Connections closed (for any reason).
    stream_closed,
    /// Connections closed because a message was not complete at its deadline (slowloris).
    stream_deadline_closed,
    /// Connections closed after `tcp.idle_timeout` without a byte.
    stream_idle_closed,
    /// Connections closed for a framing error (no or bad Content-Length, over the size
    /// limits).
    stream_framing_errors,
    /// Connections closed because their peer did not read (`tcp.max_pending`).
    stream_pending_overflow,
    /// Connections closed because their network was banned.
    stream_closed_by_ban,
    /// TLS handshakes or records that failed.
    tls_handshake_failed,
    /// Bytes read from connections.
    stream_rx_bytes,
    /// Messages framed from connections.
    stream_messages_in,
    /// Messages written on connections.
    stream_messages_out,
    /// CRLF keep-alives answered (RFC 5626).
    stream_keepalives,
    /// Messages handed over to the worker owning the connection.
    stream_handoffs,
    /// Handovers dropped (the owner's queue was full).
    stream_handoffs_dropped,
    /// Connections opened to the softswitch (or another next hop).
    stream_connects,
    /// Outgoing connections that failed.
    stream_connect_failed,
    /// Other socket errors on connections.
    stream_errors,
    }
}

/// Current sizes of the policy tables, summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Worker threads.
    pub workers: u64,
    /// Terminal-table entries (counts and suspensions).
    pub terminals: u64,
    /// Session-table entries.
    pub sessions: u64,
    /// Source-table entries (counts and bans).
    pub sources: u64,
    /// Open TCP and TLS connections.
    pub connections: u64,
    /// Heap bytes the connections hold (entries, buffers of incomplete messages and pending
    /// writes, TLS state; the kernel's socket buffers are not counted), at the last sweep.
    pub connection_heap_bytes: u64,
}

/// One worker's published counters.
#[derive(Debug)]
pub(crate) struct WorkerStats {
    engine: Box<[AtomicU64]>,
    route: Box<[AtomicU64]>,
    runtime: Box<[AtomicU64]>,
    tables: [AtomicU64; 5],
}

impl WorkerStats {
    pub(crate) fn new() -> WorkerStats {
        WorkerStats {
            engine: Counters::NAMES.iter().map(|_| AtomicU64::new(0)).collect(),
            route: RouteCounters::NAMES
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            runtime: RuntimeCounters::NAMES
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            tables: Default::default(),
        }
    }

    pub(crate) fn publish(
        &self,
        engine: &Counters,
        route: &RouteCounters,
        runtime: &RuntimeCounters,
        tables: (usize, usize, usize),
        connections: (usize, usize),
    ) {
        for (slot, (_, v)) in self.engine.iter().zip(engine.iter()) {
            slot.store(v, Ordering::Relaxed);
        }
        for (slot, (_, v)) in self.route.iter().zip(route.iter()) {
            slot.store(v, Ordering::Relaxed);
        }
        for (slot, (_, v)) in self.runtime.iter().zip(runtime.iter()) {
            slot.store(v, Ordering::Relaxed);
        }
        self.tables[0].store(tables.0 as u64, Ordering::Relaxed);
        self.tables[1].store(tables.1 as u64, Ordering::Relaxed);
        self.tables[2].store(tables.2 as u64, Ordering::Relaxed);
        self.tables[3].store(connections.0 as u64, Ordering::Relaxed);
        self.tables[4].store(connections.1 as u64, Ordering::Relaxed);
    }
}

/// State shared by the workers and the control thread.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Set once: every thread stops.
    pub(crate) stop: AtomicBool,
    /// Moves once per accepted reload.
    pub(crate) generation: AtomicU64,
    /// What the last reload (or the start) loaded.
    pub(crate) current: Mutex<Arc<Loaded>>,
    /// One per worker.
    pub(crate) stats: Vec<WorkerStats>,
    /// What the database refresher did (`[database]`).
    pub(crate) database: Arc<super::database::DatabaseStats>,
}

/// Counters and gauges at one moment, summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Engine decisions.
    pub engine: Counters,
    /// The core's routing.
    pub route: RouteCounters,
    /// Runtime counters.
    pub runtime: RuntimeCounters,
    /// Table sizes.
    pub gauges: Gauges,
    /// Datagrams received by each worker (how evenly the kernel spreads the load).
    pub per_worker_rx: Vec<u64>,
}

impl Shared {
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot {
            gauges: Gauges {
                workers: self.stats.len() as u64,
                ..Gauges::default()
            },
            ..Snapshot::default()
        };
        for w in &self.stats {
            let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
            s.engine
                .add(&Counters::from_values(w.engine.iter().map(load)));
            s.route
                .add(&RouteCounters::from_values(w.route.iter().map(load)));
            s.runtime
                .add(&RuntimeCounters::from_values(w.runtime.iter().map(load)));
            s.gauges.terminals += w.tables[0].load(Ordering::Relaxed);
            s.gauges.sessions += w.tables[1].load(Ordering::Relaxed);
            s.gauges.sources += w.tables[2].load(Ordering::Relaxed);
            s.gauges.connections += w.tables[3].load(Ordering::Relaxed);
            s.gauges.connection_heap_bytes += w.tables[4].load(Ordering::Relaxed);
            s.per_worker_rx.push(w.runtime[0].load(Ordering::Relaxed));
        }
        // One per accepted reload, not one per worker that applied it: the generation moves
        // once per `Runtime::reload` that succeeded.
        // A database refresh moves the generation too (the workers take the new accounts
        // the same way): not a reload.
        let swaps = self.database.swaps.load(Ordering::Relaxed);
        s.runtime.reloads = self
            .generation
            .load(Ordering::Acquire)
            .saturating_sub(swaps);
        s.runtime.database_swaps = swaps;
        s.runtime.database_failures = self.database.failures.load(Ordering::Relaxed);
        s
    }
}

/// The proxy settings of a loaded configuration.
pub(crate) fn proxy_config(config: &Config, key: [u8; 32]) -> ProxyConfig {
    ProxyConfig {
        advertised: config.gateway.advertise,
        // `load` refused a configuration without one.
        softswitch: config
            .gateway
            .softswitch
            .unwrap_or(config.gateway.advertise),
        strip_credentials: config.proxy.strip_credentials,
        assert_identity: config.proxy.assert_identity,
        add_path: config.proxy.add_path,
        record_route: config.proxy.record_route,
        realm: config.auth.realm.clone().into(),
        key,
        upstream: config.gateway.softswitch_transport,
        tcp_above: if config.tcp.enabled {
            config.tcp.large_requests_over
        } else {
            None
        },
        tls_port: config.tls.enabled.then_some(config.tls.advertise_port),
    }
}

/// Everything a configuration reload or start needs, checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The credentials it names.
    pub credentials: Arc<CredentialStore>,
    /// The account guard of those credentials, shared by every worker.
    pub guard: Arc<crate::guard::AccountGuard>,
    /// Where the configuration came from.
    pub path: PathBuf,
    /// Its TLS material, if it asks for TLS.
    pub tls: Option<super::tls::TlsContext>,
    /// With `[database]`: the rows the accounts were built from (the refresher compares the
    /// next read with them).
    pub rows: Option<Arc<Vec<crate::credentials::AccountRow>>>,
}
