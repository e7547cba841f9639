//! The UDP runtime: `sipgw run`.
//!
//! Layer: driver (I/O, threads, time). It owns everything the sans-IO core does not: sockets,
//! the clock, threads, signals, logs and metrics.
//!
//! - **Workers**: `gateway.workers` threads (default: one per core), each pinned to a core with
//!   `core_affinity`, each with its own `SO_REUSEPORT` socket on `gateway.listen`, its own
//!   [`Engine`] and [`Proxy`]. A loop iteration is: one `recvmmsg` (up to [`udp::BATCH`]
//!   datagrams, waiting at most [`RECV_TIMEOUT`]), the inbox of shard messages, the engine's
//!   timers, one `handle_batch`, forwarding, one `sendmmsg`, events to the log, shard messages
//!   out (batched, one channel send per destination). Nothing on that path allocates, locks or
//!   makes a syscall per packet.
//! - **Shards**: see [`crate::shard`]; the channels are bounded crossbeam channels of
//!   fixed-size batches, and a full channel drops the batch (counted) rather than block.
//! - **Reload**: [`Runtime::reload`] checks the new configuration and credential file
//!   completely before anything changes, then publishes them; each worker picks them up at its
//!   next iteration (an atomic generation number is all the hot path reads). Sockets stay open,
//!   so no datagram is lost. Keys that need new sockets or tables (`gateway.listen`,
//!   `gateway.workers`, `[limits]`, …) are reported and keep their running value.
//! - **Counters**: each worker publishes its engine's [`crate::Counters`] and its own
//!   [`RuntimeCounters`] into relaxed atomics after every iteration; [`Runtime::snapshot`]
//!   sums them, [`metrics`] renders them for Prometheus and `sipgw stats`.

pub mod database;
pub mod metrics;
mod shared;
mod stream;
pub mod tls;
pub mod udp;
mod worker;
pub mod xdp;

use shared::{proxy_config, Shared, WorkerStats};
pub use shared::{Gauges, Loaded, RuntimeCounters, Snapshot, RECV_TIMEOUT};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::config::{Backend, Config, ConfigError};

use crate::credentials::{CredentialStore, CredentialsError};
use crate::engine::Engine;
use crate::engine::{Secrets, WallClock};
use crate::gateway::Gateway;
use crate::proxy::Proxy;
use crate::shard::ShardId;

/// A configuration or credential file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The credential file is invalid.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The TLS certificate, key or CA cannot be used.
    #[error("{file}: {source}")]
    Tls {
        /// The configuration file.
        file: String,
        /// What is wrong with which file.
        #[source]
        source: tls::TlsError,
    },
    /// The accounts could not be read from the database (and there is no cache file).
    #[error("accounts from the database: {0} (and no database.cache file to start from)")]
    Database(#[from] database::DatabaseError),
    /// The configuration names no credential file.
    #[error("{file}: `credentials` is not set: name the credential file (TOML, see docs/configuration.md), e.g. credentials = \"users.toml\", or configure [database]")]
    NoCredentials {
        /// The configuration file.
        file: String,
    },
    /// The configuration names no softswitch.
    #[error("{file}: gateway.softswitch is not set: give the softswitch's address, e.g. softswitch = \"198.18.0.10:5060\"")]
    NoSoftswitch {
        /// The configuration file.
        file: String,
    },
}

/// Load and check a configuration and the credential file it names.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let config = Config::from_file(path)?;
    let file = path.display().to_string();
    if config.credentials.is_none() && config.database.is_none() {
        return Err(LoadError::NoCredentials { file });
    }
    if config.gateway.softswitch.is_none() {
        return Err(LoadError::NoSoftswitch { file });
    }
    let (credentials, rows) = match (&config.credentials, &config.database) {
        (Some(creds), _) => (
            CredentialStore::load_for(creds, &config.auth.realm, &config.auth.hashes())?,
            None,
        ),
        (None, Some(db)) => load_database(db, &config)?,
        (None, None) => unreachable!("checked above"),
    };
    let credentials = Arc::new(credentials);
    let guard = Arc::new(crate::guard::AccountGuard::new(
        &credentials,
        config.limits.known_good_per_account,
        config.limits.max_terminals,
    ));
    let tls = tls::load(&config).map_err(|source| LoadError::Tls {
        file: file.clone(),
        source,
    })?;
    Ok(Loaded {
        config,
        credentials,
        guard,
        path: path.to_owned(),
        tls,
        rows,
    })
}

/// The accounts of `[database]`: read now; if the database cannot be read, the cache file
/// (the last good snapshot) if there is one, else the error naming the server.
/// The rows a database read returned (kept to compare the next read with).
type Rows = Option<Arc<Vec<crate::credentials::AccountRow>>>;

fn load_database(
    db: &crate::config::DatabaseSettings,
    config: &Config,
) -> Result<(CredentialStore, Rows), LoadError> {
    let hashes = config.auth.hashes();
    match database::fetch(db, &config.auth.realm, &hashes) {
        Ok((rows, store)) => {
            if let Some(cache) = &db.cache {
                if let Err(e) = database::write_cache(cache, &rows) {
                    tracing::warn!(cache = %cache.display(), error = %e, "database cache not written");
                }
            }
            Ok((store, Some(Arc::new(rows))))
        }
        Err(e) => match &db.cache {
            Some(cache) if cache.exists() => {
                let store = CredentialStore::load_for(cache, &config.auth.realm, &hashes)?;
                tracing::warn!(
                    error = %e,
                    cache = %cache.display(),
                    accounts = store.len(),
                    "database unreadable at start: starting from the cache (the last good snapshot)"
                );
                Ok((store, Some(Arc::new(Vec::new()))))
            }
            _ => Err(LoadError::Database(e)),
        },
    }
}

/// Put a new credential store in force (a database refresh): budgets and known-good sources
/// carry over by account name, as on a reload; the workers take it on their next iteration.
fn swap_credentials(shared: &Shared, store: CredentialStore) {
    let mut current = shared
        .current
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut next = (**current).clone();
    let store = Arc::new(store);
    next.guard = Arc::new(current.guard.rebuild(
        &current.credentials,
        &store,
        current.config.limits.known_good_per_account,
    ));
    next.credentials = store;
    *current = Arc::new(next);
    drop(current);
    shared.generation.fetch_add(1, Ordering::Release);
}

/// The runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A worker socket could not be bound.
    #[error("cannot bind UDP {addr} (worker {worker}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which worker.
        worker: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker's TCP or TLS listener could not be bound.
    #[error("cannot listen on {transport} {addr} (worker {worker}): {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// TCP or TLS.
        transport: crate::flow::Transport,
        /// Which worker.
        worker: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics endpoint could not be bound.
    #[error("cannot serve metrics on {addr}: {message}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// No randomness for the secrets.
    #[error("cannot read random bytes for the secrets: {0}")]
    Random(String),
    /// The XDP program, its maps or an AF_XDP socket could not be set up.
    #[error(transparent)]
    Xdp(#[from] xdp::XdpError),
    /// A thread could not be spawned.
    #[error("cannot start worker thread {worker}: {source}")]
    Spawn {
        /// Which worker.
        worker: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Accounts in the new credential file.
    pub accounts: usize,
    /// Keys whose new value needs a restart (they keep their running value).
    pub needs_restart: Vec<&'static str>,
}

/// A running gateway.
#[derive(Debug)]
pub struct Runtime {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    metrics: Option<metrics::Server>,
    listen: SocketAddr,
    xdp: Option<xdp::XdpHandle>,
    /// With `[database]`: keeps the accounts current.
    database: Option<database::Refresher>,
}

/// Number of workers a configuration asks for.
pub fn worker_count(config: &Config) -> usize {
    match config.gateway.workers {
        // At most 1024: nonces name their worker in 10 bits (`engine`'s shard bits).
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(1024)),
        n => n,
    }
}

/// The engine configuration of one of `workers` workers: table sizes are totals, divided.
fn per_worker(config: &Config, workers: usize) -> Config {
    let mut c = config.clone();
    let div = |n: usize| n.div_ceil(workers).max(1024);
    c.limits.max_terminals = div(c.limits.max_terminals);
    c.limits.max_sessions = div(c.limits.max_sessions);
    c.limits.max_sources = div(c.limits.max_sources);
    c.nonce.replay_table_size = div(c.nonce.replay_table_size);
    if c.limits.known_sources > 0 {
        c.limits.known_sources = div(c.limits.known_sources);
    }
    c
}

/// Each worker's listeners, wake-up eventfd and handover channel, when a stream transport is
/// configured (`None` otherwise: the workers keep their UDP-only loop).
fn stream_setups(
    config: &Config,
    n: usize,
    tls: Option<tls::TlsContext>,
) -> Result<Option<Vec<stream::StreamSetup>>, StartError> {
    if !config.tcp.enabled && !config.tls.enabled {
        return Ok(None);
    }
    raise_fd_limit();
    let bind = |addr: SocketAddr, transport, worker| {
        stream::listen_reuseport(addr).map_err(|source| StartError::Listen {
            addr,
            transport,
            worker,
            source,
        })
    };
    let budget = std::sync::Arc::new(stream::ConnBudget::new(config));
    let mut wakers = Vec::with_capacity(n);
    for worker in 0..n {
        wakers.push(Arc::new(
            stream::waker().map_err(|source| StartError::Spawn { worker, source })?,
        ));
    }
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| crossbeam_channel::bounded(stream::HANDOFF_QUEUE))
        .unzip();
    let peers = stream::Peers {
        senders,
        wakers: wakers.clone(),
    };
    let mut setups = Vec::with_capacity(n);
    for (worker, inbox) in inboxes.into_iter().enumerate() {
        let tcp = config
            .tcp
            .enabled
            .then(|| bind(config.gateway.listen, crate::flow::Transport::Tcp, worker))
            .transpose()?;
        let tls_listener = config
            .tls
            .enabled
            .then(|| bind(config.tls.listen, crate::flow::Transport::Tls, worker))
            .transpose()?;
        setups.push(stream::StreamSetup {
            worker,
            tcp,
            tls_listener,
            tls: tls.clone(),
            wake: wakers[worker].clone(),
            inbox,
            peers: peers.clone(),
            budget: budget.clone(),
        });
    }
    Ok(Some(setups))
}

/// Connections need descriptors: raise the soft limit to the hard one.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
}

impl Runtime {
    /// Bind every worker's socket and start the workers (and the metrics endpoint).
    pub fn start(loaded: Loaded) -> Result<Runtime, StartError> {
        let config = &loaded.config;
        let n = worker_count(config);
        let listen = config.gateway.listen;
        let mut random = [0u8; 96];
        getrandom::fill(&mut random).map_err(|e| StartError::Random(e.to_string()))?;
        let mut secret_bytes = [0u8; 64];
        secret_bytes.copy_from_slice(&random[..64]);
        let secrets = Secrets::new(config, secret_bytes);
        let mut proxy_key = [0u8; 32];
        proxy_key.copy_from_slice(&random[64..]);

        let sockets = (0..n)
            .map(|worker| {
                udp::bind_reuseport(listen, RECV_TIMEOUT).map_err(|source| StartError::Bind {
                    addr: listen,
                    worker,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let mut streams = stream_setups(config, n, loaded.tls.clone())?;

        let mut xdp = match (config.gateway.backend, &config.xdp.interface) {
            (Backend::Xdp, Some(iface)) => Some(xdp::XdpHandle::attach(config, iface)?),
            (Backend::Udp, Some(iface)) => Some(xdp::XdpHandle::existing(config, iface)?),
            (_, None) => None,
        };
        let mut ports = Vec::with_capacity(n);
        if let (Backend::Xdp, Some(handle)) = (config.gateway.backend, xdp.as_mut()) {
            for queue in 0..n {
                match handle.socket(config, queue as u32) {
                    Ok(p) => ports.push(Some(p)),
                    Err(e) => {
                        drop(ports);
                        if let Some(h) = xdp.take() {
                            h.shutdown();
                        }
                        return Err(e.into());
                    }
                }
            }
        }
        ports.resize_with(n, || None);
        let next_hops = match (config.gateway.backend, xdp.as_mut()) {
            (Backend::Xdp, Some(handle)) if config.xdp.upstream => match handle.next_hops() {
                Ok(p) => Some(p),
                Err(e) => {
                    drop(ports);
                    if let Some(h) = xdp.take() {
                        h.shutdown();
                    }
                    return Err(e.into());
                }
            },
            _ => None,
        };

        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            current: Mutex::new(Arc::new(loaded.clone())),
            stats: (0..n).map(|_| WorkerStats::new()).collect(),
            database: Arc::default(),
        });
        let database = config.database.clone().map(|db| {
            let (read, write) = (shared.clone(), shared.clone());
            database::Refresher::start(
                db,
                loaded.rows.as_deref().cloned().unwrap_or_default(),
                move || {
                    let c = read
                        .current
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    (c.config.auth.realm.clone(), c.config.auth.hashes())
                },
                move |store| swap_credentials(&write, store),
                shared.database.clone(),
            )
        });
        let metrics = match config.gateway.metrics {
            Some(addr) => Some(
                metrics::Server::start(addr, shared.clone())
                    .map_err(|message| StartError::Metrics { addr, message })?,
            ),
            None => None,
        };

        let (senders, receivers): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| crossbeam_channel::bounded(worker::INBOX_BATCHES))
            .unzip();
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let clock = quanta::Clock::new();
        let wall = WallClock {
            origin: clock.now(),
            origin_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        };
        let engine_config = per_worker(config, n);
        let mut workers = Vec::with_capacity(n);
        for (index, ((socket, inbox), xsk)) in
            sockets.into_iter().zip(receivers).zip(ports).enumerate()
        {
            let mut engine =
                Engine::new(&engine_config, loaded.credentials.clone(), &secrets, wall);
            // One guard for every worker: the account budget is exact across them.
            engine.set_credentials(loaded.credentials.clone(), loaded.guard.clone());
            engine.set_shard(ShardId {
                index: index as u16,
                count: n as u16,
            });
            let proxy = Proxy::new(proxy_config(config, proxy_key));
            let w = worker::Worker {
                index,
                socket,
                gateway: Gateway::new(engine, proxy),
                proxy_key,
                inbox,
                peers: senders.clone(),
                shared: shared.clone(),
                generation: 0,
                config: loaded.config.clone(),
                clock: clock.clone(),
                core: (!cores.is_empty()).then(|| cores[index % cores.len()]),
                xsk,
                next_hops: next_hops.clone().map(xdp::neigh::View::new),
                maps: xdp.as_ref().map(|h| h.maps.clone()),
                streams: streams.as_mut().map(|s| s.remove(0)),
                live: None,
            };
            let handle = std::thread::Builder::new()
                .name(format!("sipgw-worker-{index}"))
                .spawn(move || w.run())
                .map_err(|source| StartError::Spawn {
                    worker: index,
                    source,
                })?;
            workers.push(handle);
        }
        tracing::info!(
            listen = %listen,
            advertise = %config.gateway.advertise,
            softswitch = %config
                .gateway
                .softswitch
                .map_or_else(|| "none".to_owned(), |a| a.to_string()),
            workers = n,
            accounts = loaded.credentials.len(),
            backend = match config.gateway.backend {
                Backend::Udp => "udp",
                Backend::Xdp => "xdp",
            },
            tcp = config.tcp.enabled,
            tls = %if config.tls.enabled {
                config.tls.listen.to_string()
            } else {
                "off".to_owned()
            },
            softswitch_transport = %config.gateway.softswitch_transport,
            xdp_pins = %xdp
                .as_ref()
                .map_or_else(|| "none".to_owned(), |h| h.pin_dir().display().to_string()),
            "sipgw running"
        );
        Ok(Runtime {
            shared,
            workers,
            metrics,
            listen,
            xdp,
            database,
        })
    }

    /// The address the workers listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The metrics endpoint's address, if it runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr())
    }

    /// Counters summed over workers.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// Check the configuration at `path` (and its credential file) and, if it is valid, make
    /// every worker use it from its next iteration. An invalid one changes nothing.
    pub fn reload(&self, path: &Path) -> Result<ReloadReport, LoadError> {
        let mut new = load(path)?;
        let mut current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Budgets and known-good sources carry over, by account name.
        new.guard = Arc::new(current.guard.rebuild(
            &current.credentials,
            &new.credentials,
            current.config.limits.known_good_per_account,
        ));
        let old = &current.config;
        let mut needs_restart = Vec::new();
        let g = (&old.gateway, &new.config.gateway);
        if g.0.listen != g.1.listen {
            needs_restart.push("gateway.listen");
        }
        if g.0.workers != g.1.workers {
            needs_restart.push("gateway.workers");
        }
        if g.0.backend != g.1.backend {
            needs_restart.push("gateway.backend");
        }
        if g.0.metrics != g.1.metrics {
            needs_restart.push("gateway.metrics");
        }
        if (
            old.tcp.enabled,
            old.tcp.max_connections,
            old.tcp.max_per_source,
        ) != (
            new.config.tcp.enabled,
            new.config.tcp.max_connections,
            new.config.tcp.max_per_source,
        ) {
            needs_restart.push("tcp.enabled/max_connections/max_per_source");
        }
        if (old.tls.enabled, old.tls.listen) != (new.config.tls.enabled, new.config.tls.listen) {
            needs_restart.push("tls.enabled/listen");
        }
        if old.xdp != new.config.xdp {
            needs_restart.push("xdp");
        }
        if old.limits != new.config.limits {
            needs_restart.push("limits");
        }
        if old.database != new.config.database {
            // The refresher keeps the settings it started with; the accounts themselves were
            // just read with the new ones.
            needs_restart.push("database");
        }
        if old.nonce.replay_table_size != new.config.nonce.replay_table_size {
            needs_restart.push("nonce.replay_table_size");
        }
        // Every source, terminal and known-good key is made of the prefixes.
        if (old.auth.ipv4_prefix, old.auth.ipv6_prefix)
            != (new.config.auth.ipv4_prefix, new.config.auth.ipv6_prefix)
        {
            needs_restart.push("auth.ipv4_prefix/ipv6_prefix");
        }
        let report = ReloadReport {
            accounts: new.credentials.len(),
            needs_restart,
        };
        *current = Arc::new(new);
        drop(current);
        self.shared.generation.fetch_add(1, Ordering::Release);
        Ok(report)
    }

    /// Ask the workers to stop, and wait for them (at most one receive timeout each).
    pub fn stop(mut self) {
        drop(self.database.take());
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(m) = self.metrics.take() {
            m.stop();
        }
        if let Some(x) = self.xdp.take() {
            x.shutdown();
        }
    }
}
