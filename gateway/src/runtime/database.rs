//! Accounts from a database (`[database]`): the operator's query read into the same immutable
//! credential store the engine reads, refreshed on an interval (and, with PostgreSQL, on
//! `LISTEN/NOTIFY`), on a thread of its own — never a query on the packet path, and the
//! database client's runtime never in a worker.
//!
//! Layer: driver. [`fetch`] runs the query once and checks every row
//! ([`CredentialStore::from_rows`]: a duplicate username, a bad HA1 or a bad network refuses the
//! whole result, naming the row). [`Refresher`] keeps the last good snapshot in force while the
//! database is down or returns garbage: each failure is counted, logged once per change of state
//! (failing / recovered), and the read retried with backoff (1 s doubling up to the refresh
//! interval). Each good read is written to `database.cache` (a credential file: write to a
//! temporary file, then rename), which the gateway starts from when the database cannot be
//! reached at start.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use crate::config::{DatabaseKind, DatabaseSettings};
use crate::credentials::{AccountRow, CredentialStore};
use crate::digest::Hash;

/// Reading the accounts failed.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The server could not be reached or refused the query.
    #[error("{origin}: {message}")]
    Server {
        /// The server (kind, host, port, database; never the password).
        origin: String,
        /// What happened.
        message: String,
    },
    /// The query returned rows that are not valid accounts (the row is named).
    #[error(transparent)]
    Rows(#[from] crate::credentials::CredentialsError),
}

/// How the database is named in errors and logs: kind, host, port and database (never the
/// user's password).
pub fn origin(s: &DatabaseSettings) -> String {
    match s.kind {
        DatabaseKind::Postgres => match s.url.parse::<postgres::Config>() {
            Ok(c) => {
                let hosts: Vec<String> = c
                    .get_hosts()
                    .iter()
                    .zip(c.get_ports().iter().chain(std::iter::repeat(&5432)))
                    .map(|(h, p)| match h {
                        postgres::config::Host::Tcp(h) => format!("{h}:{p}"),
                        postgres::config::Host::Unix(d) => format!("{}:{p}", d.display()),
                    })
                    .collect();
                format!(
                    "postgres {}/{}",
                    hosts.join(","),
                    c.get_dbname().unwrap_or_default()
                )
            }
            Err(_) => "postgres (unparseable database.url)".to_owned(),
        },
    }
}

fn connect(s: &DatabaseSettings) -> Result<postgres::Client, String> {
    let mut config: postgres::Config = s.url.parse().map_err(|e| format!("database.url: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config
        .connect(postgres::NoTls)
        .map_err(|e| format!("cannot connect: {e}"))
}

/// The accounts of one query's result, by column name (the credential file's keys). An unknown
/// column is an error naming it (a typo must not drop data silently); NULL is an absent value;
/// `allow` is a text array or a text of addresses separated by commas or spaces.
fn rows_of(client: &mut postgres::Client, query: &str) -> Result<Vec<AccountRow>, String> {
    let rows = client
        .query(query, &[])
        .map_err(|e| format!("query: {e}"))?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let mut acc = AccountRow::default();
        for (k, col) in row.columns().iter().enumerate() {
            let bad = |e: postgres::Error| {
                format!("row #{}: column {}: {e} (expected text)", i + 1, col.name())
            };
            let text = || -> Result<Option<String>, String> { row.try_get(k).map_err(bad) };
            match col.name() {
                "name" | "username" => acc.name = text()?.unwrap_or_default(),
                "password" => acc.password = text()?,
                "ha1" => acc.ha1 = text()?,
                "ha1_sha256" => acc.ha1_sha256 = text()?,
                "ha1_sha512_256" => acc.ha1_sha512_256 = text()?,
                "realm" => acc.realm = text()?,
                "mode" => acc.mode = text()?,
                "allow" => {
                    acc.allow = match row.try_get::<_, Option<Vec<String>>>(k) {
                        Ok(v) => v.unwrap_or_default(),
                        Err(_) => text()?
                            .unwrap_or_default()
                            .split([',', ' '])
                            .filter(|a| !a.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    }
                }
                other => {
                    return Err(format!(
                        "column {other:?} is not one of name, password, ha1, ha1_sha256, \
                         ha1_sha512_256, realm, mode, allow (rename it with AS)"
                    ))
                }
            }
        }
        out.push(acc);
    }
    Ok(out)
}

/// Run the query once and build the store (HA1s for `realm` and `hashes`).
pub fn fetch(
    s: &DatabaseSettings,
    realm: &str,
    hashes: &[Hash],
) -> Result<(Vec<AccountRow>, CredentialStore), DatabaseError> {
    let rows = read_rows(s)?;
    let store = CredentialStore::from_rows(&rows, &origin(s), realm, hashes)?;
    Ok((rows, store))
}

/// Run the query once: the rows, not yet checked.
fn read_rows(s: &DatabaseSettings) -> Result<Vec<AccountRow>, DatabaseError> {
    let server = |message: String| DatabaseError::Server {
        origin: origin(s),
        message,
    };
    let mut client = connect(s).map_err(server)?;
    rows_of(&mut client, &s.query).map_err(server)
}

/// Write `rows` to the cache file (a credential file), atomically.
pub fn write_cache(path: &Path, rows: &[AccountRow]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, CredentialStore::rows_to_toml(rows))?;
    std::fs::rename(&tmp, path)
}

/// What the refresher did (exposed as metrics).
#[derive(Debug, Default)]
pub struct DatabaseStats {
    /// Reads that produced a new snapshot (the accounts changed).
    pub swaps: AtomicU64,
    /// Reads that found the accounts unchanged.
    pub unchanged: AtomicU64,
    /// Reads that failed (server or rows): the last good snapshot stayed in force.
    pub failures: AtomicU64,
}

/// Keeps the accounts current on its own thread until dropped.
#[derive(Debug)]
pub struct Refresher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Refresher {
    /// Start refreshing: `current` gives the realm and hashes in force, `publish` swaps a new
    /// store in. `last` is what the start loaded.
    pub fn start(
        settings: DatabaseSettings,
        last: Vec<AccountRow>,
        current: impl Fn() -> (String, Vec<Hash>) + Send + 'static,
        publish: impl Fn(CredentialStore) + Send + 'static,
        stats: Arc<DatabaseStats>,
    ) -> Refresher {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sipgw-database".into())
            .spawn(move || follow(&settings, last, &current, &publish, &stats, &st))
            .ok();
        Refresher { stop, thread }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sleep until `until` or a stop, in small steps; with a LISTEN connection, wake up on a
/// notification. Returns early (true) on a notification.
fn wait(until: Instant, listen: &mut Option<postgres::Client>, stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            return false;
        }
        let step = (until - now).min(Duration::from_millis(200));
        match listen {
            Some(client) => {
                let got = {
                    let mut n = client.notifications();
                    let got = n.timeout_iter(step).next();
                    if let Ok(Some(_)) = got {
                        // Take every queued notification: one read covers them.
                        while let Ok(Some(_)) = n.iter().next() {}
                    }
                    got
                };
                match got {
                    Ok(Some(_)) => return true,
                    Ok(None) => {}
                    // The LISTEN connection is gone: reopened after the next good read.
                    Err(_) => *listen = None,
                }
            }
            None => std::thread::sleep(step),
        }
    }
    false
}

fn open_listen(s: &DatabaseSettings) -> Option<postgres::Client> {
    let channel = s.notify.as_ref()?;
    let mut client = connect(s).ok()?;
    client.batch_execute(&format!("LISTEN {channel}")).ok()?;
    Some(client)
}

fn follow(
    s: &DatabaseSettings,
    mut last: Vec<AccountRow>,
    current: &dyn Fn() -> (String, Vec<Hash>),
    publish: &dyn Fn(CredentialStore),
    stats: &DatabaseStats,
    stop: &AtomicBool,
) {
    let origin = origin(s);
    let mut listen = open_listen(s);
    let mut failing = false;
    let mut backoff = Duration::from_secs(1);
    let mut next = Instant::now() + s.refresh;
    while !stop.load(Ordering::Relaxed) {
        wait(next, &mut listen, stop);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (realm, hashes) = current();
        // An unchanged result costs the query and a comparison: the store (an HA1 per hash
        // and account) is only built for a result that differs.
        let read = read_rows(s).and_then(|rows| {
            if rows == last {
                Ok((rows, None))
            } else {
                let store = CredentialStore::from_rows(&rows, &origin, &realm, &hashes)?;
                Ok((rows, Some(store)))
            }
        });
        match read {
            Ok((rows, store)) => {
                if failing {
                    tracing::info!(database = %origin, accounts = rows.len(), "database readable again");
                    failing = false;
                }
                backoff = Duration::from_secs(1);
                next = Instant::now() + s.refresh;
                if let Some(store) = store {
                    tracing::info!(database = %origin, accounts = rows.len(), "accounts changed: new snapshot in force");
                    publish(store);
                    stats.swaps.fetch_add(1, Ordering::Relaxed);
                    if let Some(cache) = &s.cache {
                        if let Err(e) = write_cache(cache, &rows) {
                            tracing::warn!(cache = %cache.display(), error = %e, "database cache not written");
                        }
                    }
                    last = rows;
                } else {
                    stats.unchanged.fetch_add(1, Ordering::Relaxed);
                }
                if listen.is_none() {
                    listen = open_listen(s);
                }
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::warn!(error = %e, "accounts not refreshed: the last good snapshot stays in force; retrying with backoff");
                    failing = true;
                }
                next = Instant::now() + backoff.min(s.refresh);
                backoff = (backoff * 2).min(s.refresh);
            }
        }
    }
}
