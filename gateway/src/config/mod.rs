//! Gateway configuration: TOML in, a checked [`Config`] out.
//!
//! Layer: configuration (load time only, never on the packet path).
//!
//! The file is parsed with serde into raw structs that deny unknown keys, then every value is
//! range-checked into [`Config`]. An error always names the file, the key (as a dotted TOML path),
//! the offending value and the allowed range, e.g.
//! `sipgw.toml: auth.max_retry = 1000 is out of range (allowed: 0-999)`.
//!
//! VOS3000's parameter names (`SS_AUTHENTICATION_MAX_RETRY`, …) are accepted as aliases of the
//! keys in `[auth]`, so an operator can paste them from a VOS3000 softswitch. Giving both
//! `challenge_mode` (`SS_AUTHCHALLENGEMODE`) and `challenge_code` (`SS_SIP_AUTHENTICATION_CODE`)
//! with values that disagree is an error, never a silent choice. Every parameter is documented in
//! `docs/configuration.md`.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::digest::Algorithm;
use crate::flow::Transport;
use crate::sip::Method;

mod checker;
mod streams;
use checker::Checker;
pub use checker::ConfigError;
pub use streams::{TcpSettings, TlsSettings, LARGE_REQUEST_DEFAULT};

/// Where a configuration came from, for error messages.
const INLINE_ORIGIN: &str = "<inline>";

/// Who is challenged with which status code (`SS_AUTHCHALLENGEMODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeMode {
    /// Mode 1: `401 Unauthorized` + `WWW-Authenticate` (UAS role).
    Www,
    /// Mode 2: `407 Proxy Authentication Required` + `Proxy-Authenticate` (proxy role).
    Proxy,
    /// Mode 3: by method, REGISTER gets 401 and every other method 407.
    ByMethod,
}

impl ChallengeMode {
    /// The VOS3000 number of this mode.
    pub fn number(self) -> u8 {
        match self {
            ChallengeMode::Www => 1,
            ChallengeMode::Proxy => 2,
            ChallengeMode::ByMethod => 3,
        }
    }

    /// Whether a request of `method` is challenged with 401 (true) or 407 (false).
    pub fn uses_401(self, method: Method) -> bool {
        match self {
            ChallengeMode::Www => true,
            ChallengeMode::Proxy => false,
            ChallengeMode::ByMethod => method == Method::Register,
        }
    }
}

/// What a failure counter and a suspension are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendScope {
    /// The digest username alone (VOS3000's behaviour): failures from any address count, and a
    /// suspension locks the account out everywhere. An attacker can lock a real phone out.
    Terminal,
    /// The username together with the source IP address (default): an attacker only locks out
    /// their own address for that username.
    TerminalSource,
    /// The source IP address alone, whatever the username.
    Source,
}

impl SuspendScope {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SuspendScope::Terminal => "terminal",
            SuspendScope::TerminalSource => "terminal+source",
            SuspendScope::Source => "source",
        }
    }
}

/// Which `qop` the challenges offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QopMode {
    /// Offer `qop="auth"` (default); clients that answer without qop are still accepted.
    Auth,
    /// Offer no qop (RFC 2069 style digests, for very old devices).
    None,
}

/// The `[auth]` section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Realm sent in challenges and required in credentials.
    pub realm: String,
    /// `SS_AUTHENTICATION_MAX_RETRY`: consecutive failures that suspend a terminal; 0 disables.
    pub max_retry: u16,
    /// `SS_AUTHENTICATION_FAILED_SUSPEND`: how long a suspension lasts.
    pub failed_suspend: Duration,
    /// `SS_AUTHCHALLENGEMODE` / `SS_SIP_AUTHENTICATION_CODE`.
    pub challenge_mode: ChallengeMode,
    /// `SS_SIP_AUTHENTICATION_RETRY`: re-challenges a session gets after wrong credentials.
    pub session_retry: u16,
    /// `SS_SIP_AUTHENTICATION_TIMEOUT`: time allowed from a session's first challenge.
    pub session_timeout: Duration,
    /// `SS_REPLY_UNAUTHORIZED`: answer (true) or silently drop (false) unauthorized requests.
    pub reply_unauthorized: bool,
    /// What failure counters and suspensions are keyed by.
    pub suspend_scope: SuspendScope,
    /// Whether a terminal suspension also bans the source address that caused it.
    pub ban_source_on_suspend: bool,
    /// Consecutive failures from one source address (any username) that ban it; 0 disables.
    pub source_max_retry: u16,
    /// How long a source ban lasts.
    pub source_suspend: Duration,
    /// Per account and `failed_suspend` period: wrong guesses evaluated from sources that are
    /// not known-good for the account; 0 disables the account guard.
    pub account_budget: u16,
    /// A source that authenticated an account this recently is known-good for it (keeps
    /// access while the account's budget is exhausted); zero disables.
    pub known_good_window: Duration,
    /// IPv4 sources are aggregated by this prefix length (source lockout, bans, scopes).
    pub ipv4_prefix: u8,
    /// IPv6 sources are aggregated by this prefix length.
    pub ipv6_prefix: u8,
    /// In-dialog requests whose top Route is our Record-Route of that dialog (MAC-checked)
    /// pass without a challenge.
    pub trust_dialogs: bool,
    /// The qop offered in challenges.
    pub qop: QopMode,
    /// Require the digest `uri` to equal the Request-URI byte for byte.
    pub check_digest_uri: bool,
    /// Methods forwarded without authentication besides ACK and CANCEL (which can never be
    /// challenged, RFC 3261 §22.1).
    pub no_auth_methods: Vec<Method>,
    /// The digest algorithms offered, one challenge header each in this order (RFC 8760
    /// §2.4, RFC 7616 §3.7); credentials with the hash of any of them are verified.
    pub algorithms: Vec<Algorithm>,
}

impl AuthConfig {
    /// The hashes of the offered algorithms (each once): the HA1s every password account needs.
    pub fn hashes(&self) -> Vec<crate::digest::Hash> {
        let mut out = Vec::new();
        for a in &self.algorithms {
            if !out.contains(&a.hash()) {
                out.push(a.hash());
            }
        }
        out
    }
}

/// The `[nonce]` section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceSettings {
    /// How long a nonce is valid; afterwards it is stale (re-challenged with `stale=true`).
    pub lifetime: Duration,
    /// Shared secret (so several nodes accept each other's nonces); random per process if absent.
    pub secret: Option<[u8; 32]>,
    /// The secret before the last rotation, accepted for `grace` after a reload.
    pub previous_secret: Option<[u8; 32]>,
    /// How long nonces made with the previous secret stay valid after a rotation.
    pub grace: Duration,
    /// Bound of the nonce-count replay table (entries).
    pub replay_table_size: usize,
}

/// The `[limits]` section, checked: memory bounds of the policy tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries in the terminal table (failure counters and suspensions).
    pub max_terminals: usize,
    /// Entries in the session table (Call-ID + source).
    pub max_sessions: usize,
    /// Entries in the source table (per-address counters and bans).
    pub max_sources: usize,
    /// A non-suspended entry idle for this long is forgotten.
    pub idle_timeout: Duration,
    /// Known-good sources remembered per account (the oldest is replaced).
    pub known_good_per_account: usize,
    /// Largest reply to an unauthenticated request from a source that has not completed a
    /// round trip, as a multiple of the request's size, in thousandths (1000 = 1.0).
    pub amplification_limit_milli: u32,
    /// Sources that authenticated recently, remembered to be served first when a worker is
    /// overloaded (0: overload admission off).
    pub known_sources: usize,
}

/// How the gateway receives and sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Plain UDP sockets (`SO_REUSEPORT`, `recvmmsg`/`sendmmsg`): no root, any NIC.
    Udp,
    /// AF_XDP sockets fed by sipgw's XDP program on `xdp.interface`, one per RX queue.
    Xdp,
}

/// Where the XDP program runs (`xdp.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver.
    Native,
    /// In the kernel's generic path.
    Generic,
    /// Native when the driver supports it (or the mode of an attached program).
    Auto,
}

/// AF_XDP zero-copy (`xdp.zero_copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Required: fail if the driver cannot.
    On,
    /// Copy mode (works on every driver, veth included).
    Off,
    /// Zero-copy if the driver supports it, copy otherwise.
    Auto,
}

/// The `[xdp]` section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpSettings {
    /// The interface facing phones and the internet. Required by `backend = "xdp"`; with
    /// `backend = "udp"` it is optional and makes the gateway write its bans into the XDP ban
    /// map and its counters into the counters map that `sipgw-loader attach` pinned.
    pub interface: Option<String>,
    /// Attach mode when sipgw attaches the program itself.
    pub mode: XdpMode,
    /// AF_XDP zero-copy.
    pub zero_copy: ZeroCopy,
    /// UMEM frame size in bytes (2048 or 4096).
    pub frame_size: u32,
    /// UMEM frames per queue.
    pub frames: u32,
    /// Entries of each ring (RX, TX, fill, completion).
    pub ring_size: u32,
    /// Preferred busy polling (`SO_PREFER_BUSY_POLL`).
    pub busy_poll: bool,
    /// `SO_BUSY_POLL` in microseconds.
    pub busy_poll_usecs: u32,
    /// `SO_BUSY_POLL_BUDGET` in packets.
    pub busy_poll_budget: u32,
    /// Directory of the pin directories (`<pin_root>/<interface>/`).
    pub pin_root: PathBuf,
    /// Leave the program attached when sipgw stops (bans keep being enforced).
    pub keep_attached: bool,
    /// Send the softswitch leg (forwarded requests, responses to phones) on the AF_XDP socket
    /// too when its next hop is on `interface` and resolved (`xdp.upstream`).
    pub upstream: bool,
}

/// The `[gateway]` section, checked: the runtime around the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// How packets come in and go out.
    pub backend: Backend,
    /// The address the workers' sockets bind to.
    pub listen: SocketAddr,
    /// The address written in Via, Path and Record-Route (`listen` unless it is a wildcard).
    pub advertise: SocketAddr,
    /// The softswitch authenticated requests are forwarded to (required by `sipgw run`).
    pub softswitch: Option<SocketAddr>,
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Where the Prometheus text endpoint (`/metrics`) listens, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Most rejected-credential log lines per second and worker (more are counted, not
    /// logged).
    pub log_rejections_per_sec: u32,
    /// The transport of the softswitch leg.
    pub softswitch_transport: Transport,
}

/// The `[proxy]` section, checked: how requests are rewritten on their way through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxySettings {
    /// Remove our realm's Authorization/Proxy-Authorization before forwarding.
    pub strip_credentials: bool,
    /// Add `P-Asserted-Identity` with the authenticated username.
    pub assert_identity: bool,
    /// Add a `Path` header to forwarded REGISTERs (RFC 3327).
    pub add_path: bool,
    /// Add `Record-Route` to dialog-creating requests.
    pub record_route: bool,
}

/// A complete, checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[nonce]`.
    pub nonce: NonceSettings,
    /// `[limits]`.
    pub limits: Limits,
    /// The credential file, resolved against the configuration file's directory.
    pub credentials: Option<PathBuf>,
    /// `[gateway]`.
    pub gateway: GatewaySettings,
    /// `[proxy]`.
    pub proxy: ProxySettings,
    /// `[xdp]`.
    pub xdp: XdpSettings,
    /// `[tcp]` (its limits apply to TLS too).
    pub tcp: TcpSettings,
    /// `[tls]`.
    pub tls: TlsSettings,
    /// `[database]`: accounts from a database instead of the credential file.
    pub database: Option<DatabaseSettings>,
}

/// The database kinds a credential backend reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// PostgreSQL.
    Postgres,
}

/// The `[database]` section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// Which server.
    pub kind: DatabaseKind,
    /// The connection string (`postgres://user:password@host:port/db` or `host=... user=...`).
    pub url: String,
    /// The operator's query; its columns are named like the credential file's keys.
    pub query: String,
    /// Accounts are read again this often.
    pub refresh: Duration,
    /// PostgreSQL: a `LISTEN` channel whose notifications trigger a refresh at once.
    pub notify: Option<String>,
    /// The last good snapshot, written after each successful read and used at start when the
    /// database cannot be reached.
    pub cache: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        RawConfig::default()
            .check(INLINE_ORIGIN, None)
            .expect("the built-in defaults are in range")
    }
}

impl Config {
    /// Load and check a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file, path.parent())
    }

    /// Parse and check TOML text; `origin` names it in errors, relative paths resolve
    /// against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        raw.check(origin, base_dir)
    }
}

/// `SS_REPLY_UNAUTHORIZED` style switch: a TOML boolean or "on"/"off".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Switch(bool);

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Switch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true/false or \"on\"/\"off\"")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Switch, E> {
                Ok(Switch(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Switch, E> {
                match v.to_ascii_lowercase().as_str() {
                    "on" | "true" | "yes" => Ok(Switch(true)),
                    "off" | "false" | "no" => Ok(Switch(false)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    auth: RawAuth,
    nonce: RawNonce,
    limits: RawLimits,
    credentials: Option<PathBuf>,
    gateway: RawGateway,
    proxy: RawProxy,
    xdp: RawXdp,
    tcp: streams::RawTcp,
    tls: streams::RawTls,
    database: Option<RawDatabase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    kind: String,
    url: String,
    query: String,
    #[serde(default = "default_refresh")]
    refresh: i64,
    notify: Option<String>,
    cache: Option<PathBuf>,
}

fn default_refresh() -> i64 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawGateway {
    backend: String,
    listen: String,
    advertise: Option<String>,
    softswitch: Option<String>,
    workers: i64,
    metrics: Option<String>,
    log_rejections_per_sec: i64,
    softswitch_transport: String,
}

impl Default for RawGateway {
    fn default() -> Self {
        RawGateway {
            backend: "udp".to_owned(),
            listen: "127.0.0.1:5060".to_owned(),
            advertise: None,
            softswitch: None,
            workers: 0,
            metrics: None,
            log_rejections_per_sec: 20,
            softswitch_transport: "udp".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawXdp {
    interface: Option<String>,
    mode: String,
    zero_copy: String,
    frame_size: i64,
    frames: i64,
    ring_size: i64,
    busy_poll: bool,
    busy_poll_usecs: i64,
    busy_poll_budget: i64,
    pin_root: PathBuf,
    keep_attached: bool,
    upstream: bool,
}

impl Default for RawXdp {
    fn default() -> Self {
        RawXdp {
            interface: None,
            mode: "auto".to_owned(),
            zero_copy: "auto".to_owned(),
            frame_size: 4096,
            frames: 4096,
            ring_size: 2048,
            busy_poll: false,
            busy_poll_usecs: 20,
            busy_poll_budget: 64,
            pin_root: PathBuf::from("/sys/fs/bpf/sipgw"),
            keep_attached: false,
            upstream: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawProxy {
    strip_credentials: bool,
    assert_identity: bool,
    add_path: bool,
    record_route: bool,
}

impl Default for RawProxy {
    fn default() -> Self {
        RawProxy {
            strip_credentials: true,
            assert_identity: true,
            add_path: true,
            record_route: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawAuth {
    realm: String,
    #[serde(alias = "SS_AUTHENTICATION_MAX_RETRY")]
    max_retry: i64,
    #[serde(alias = "SS_AUTHENTICATION_FAILED_SUSPEND")]
    failed_suspend: i64,
    #[serde(alias = "SS_AUTHCHALLENGEMODE")]
    challenge_mode: Option<i64>,
    #[serde(alias = "SS_SIP_AUTHENTICATION_CODE")]
    challenge_code: Option<i64>,
    #[serde(alias = "SS_SIP_AUTHENTICATION_RETRY")]
    session_retry: i64,
    #[serde(alias = "SS_SIP_AUTHENTICATION_TIMEOUT")]
    session_timeout: i64,
    #[serde(alias = "SS_REPLY_UNAUTHORIZED")]
    reply_unauthorized: Switch,
    suspend_scope: String,
    ban_source_on_suspend: bool,
    source_max_retry: i64,
    source_suspend: i64,
    account_budget: Option<i64>,
    known_good_window: i64,
    ipv4_prefix: i64,
    ipv6_prefix: i64,
    trust_dialogs: bool,
    qop: String,
    check_digest_uri: bool,
    no_auth_methods: Vec<String>,
    algorithms: Vec<String>,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            realm: "sipgw".to_owned(),
            max_retry: 6,
            failed_suspend: 180,
            challenge_mode: None,
            challenge_code: None,
            session_retry: 6,
            session_timeout: 10,
            reply_unauthorized: Switch(true),
            suspend_scope: "terminal+source".to_owned(),
            ban_source_on_suspend: true,
            source_max_retry: 30,
            source_suspend: 600,
            account_budget: None,
            known_good_window: 2_592_000,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            trust_dialogs: true,
            qop: "auth".to_owned(),
            check_digest_uri: false,
            no_auth_methods: Vec::new(),
            algorithms: vec!["MD5".to_owned()],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawNonce {
    lifetime: i64,
    secret: Option<String>,
    previous_secret: Option<String>,
    grace: i64,
    replay_table_size: i64,
}

impl Default for RawNonce {
    fn default() -> Self {
        RawNonce {
            lifetime: 30,
            secret: None,
            previous_secret: None,
            grace: 30,
            replay_table_size: 262_144,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLimits {
    max_terminals: i64,
    max_sessions: i64,
    max_sources: i64,
    idle_timeout: i64,
    known_good_per_account: i64,
    amplification_limit: f64,
    known_sources: i64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_terminals: 65_536,
            max_sessions: 65_536,
            max_sources: 65_536,
            idle_timeout: 3600,
            known_good_per_account: 4,
            amplification_limit: 1.0,
            known_sources: 65_536,
        }
    }
}

impl RawConfig {
    /// Check every section, each by its own function (`check_auth`, `check_nonce`,
    /// `check_limits`, `check_gateway` with `[tcp]`/`[tls]`, `check_xdp`), in this order: the
    /// first bad value is the error.
    fn check(self, file: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let c = Checker { file };
        let auth = check_auth(&c, &self.auth)?;
        let nonce = check_nonce(&c, &self.nonce)?;
        let limits = check_limits(&c, &self.limits)?;
        let resolve = |p: PathBuf| match base_dir {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        };
        let credentials = self.credentials.map(resolve);
        let database = match self.database {
            None => None,
            Some(d) => Some(check_database(&c, d, credentials.is_some(), resolve)?),
        };

        let (gateway, streams) = check_gateway(&c, &self.gateway, &self.tcp, &self.tls, base_dir)?;
        let xdp = check_xdp(&c, &self.xdp, gateway.backend)?;
        let p = &self.proxy;
        let proxy = ProxySettings {
            strip_credentials: p.strip_credentials,
            assert_identity: p.assert_identity,
            add_path: p.add_path,
            record_route: p.record_route,
        };

        Ok(Config {
            auth,
            nonce,
            limits,
            credentials,
            gateway,
            proxy,
            xdp,
            tcp: streams.tcp,
            tls: streams.tls,
            database,
        })
    }
}

fn check_database(
    c: &Checker<'_>,
    d: RawDatabase,
    has_file: bool,
    resolve: impl Fn(PathBuf) -> PathBuf,
) -> Result<DatabaseSettings, ConfigError> {
    if has_file {
        return Err(c.bad(
            "database",
            "together with credentials".to_owned(),
            "either a credential file (credentials = ...) or [database], not both",
        ));
    }
    let kind = match d.kind.as_str() {
        "postgres" | "postgresql" => DatabaseKind::Postgres,
        other => return Err(c.bad("database.kind", format!("{other:?}"), "\"postgres\"")),
    };
    if d.url.trim().is_empty() {
        return Err(c.bad(
            "database.url",
            "\"\"".to_owned(),
            "a connection string, e.g. \"postgres://sipgw@127.0.0.1:5432/voip\"",
        ));
    }
    if d.query.trim().is_empty() {
        return Err(c.bad(
            "database.query",
            "\"\"".to_owned(),
            "a query returning the columns name and password or ha1 (docs/configuration.md)",
        ));
    }
    let notify = match d.notify {
        Some(n)
            if n.is_empty()
                || n.len() > 63
                || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            return Err(c.bad(
                "database.notify",
                format!("{n:?}"),
                "a channel name: 1-63 letters, digits or _",
            ))
        }
        n => n,
    };
    Ok(DatabaseSettings {
        kind,
        url: d.url,
        query: d.query,
        refresh: c.secs("database.refresh", d.refresh, 1, 86_400, "1-86400 seconds")?,
        notify,
        cache: d.cache.map(resolve),
    })
}

fn check_auth(c: &Checker<'_>, a: &RawAuth) -> Result<AuthConfig, ConfigError> {
    let realm = a.realm.trim().to_owned();
    let realm_ok = !realm.is_empty()
        && realm.len() <= 128
        && realm
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if !realm_ok {
        return Err(c.bad(
            "auth.realm",
            format!("{:?}", a.realm),
            "1-128 printable ASCII characters without spaces, quotes or backslashes",
        ));
    }

    let mode = match a.challenge_mode {
        None => None,
        Some(1) => Some(ChallengeMode::Www),
        Some(2) => Some(ChallengeMode::Proxy),
        Some(3) => Some(ChallengeMode::ByMethod),
        Some(v) => return Err(c.bad("auth.challenge_mode", v.to_string(), "1, 2 or 3")),
    };
    let code_mode = match a.challenge_code {
        None => None,
        Some(401) => Some(ChallengeMode::Www),
        Some(407) => Some(ChallengeMode::Proxy),
        Some(v) => return Err(c.bad("auth.challenge_code", v.to_string(), "401 or 407")),
    };
    let challenge_mode = match (mode, code_mode) {
        (Some(m), Some(cm)) if m != cm => {
            return Err(ConfigError::Conflict {
                file: c.file.to_owned(),
                message: format!(
                    "auth.challenge_mode (SS_AUTHCHALLENGEMODE) = {} conflicts with \
                         auth.challenge_code (SS_SIP_AUTHENTICATION_CODE) = {}: code 401 means \
                         mode 1, 407 means mode 2; give one of them, or both agreeing",
                    m.number(),
                    a.challenge_code.unwrap_or_default()
                ),
            })
        }
        (Some(m), _) | (None, Some(m)) => m,
        (None, None) => ChallengeMode::Proxy,
    };

    let suspend_scope = match a.suspend_scope.as_str() {
        "terminal" => SuspendScope::Terminal,
        "terminal+source" => SuspendScope::TerminalSource,
        "source" => SuspendScope::Source,
        other => {
            return Err(c.bad(
                "auth.suspend_scope",
                format!("{other:?}"),
                "\"terminal\", \"terminal+source\" or \"source\"",
            ))
        }
    };
    let qop = match a.qop.as_str() {
        "auth" => QopMode::Auth,
        "none" => QopMode::None,
        other => return Err(c.bad("auth.qop", format!("{other:?}"), "\"auth\" or \"none\"")),
    };

    let mut no_auth_methods = Vec::with_capacity(a.no_auth_methods.len());
    for m in &a.no_auth_methods {
        let method = Method::from_bytes(m.as_bytes());
        if method == Method::Other || method == Method::Ack || method == Method::Cancel {
            return Err(c.bad(
                "auth.no_auth_methods",
                format!("{m:?}"),
                "known SIP method names in upper case (ACK and CANCEL are never challenged \
                     and need not be listed): REGISTER, INVITE, BYE, OPTIONS, SUBSCRIBE, NOTIFY, \
                     REFER, MESSAGE, INFO, PRACK, UPDATE, PUBLISH",
            ));
        }
        if !no_auth_methods.contains(&method) {
            no_auth_methods.push(method);
        }
    }

    let mut algorithms = Vec::with_capacity(a.algorithms.len());
    for name in &a.algorithms {
        let expected = "a list of MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256, \
                        SHA-512-256-sess, each once (e.g. [\"SHA-256\", \"MD5\"])";
        let alg = Algorithm::from_name(name.as_bytes())
            .ok_or_else(|| c.bad("auth.algorithms", format!("{name:?}"), expected))?;
        if algorithms.contains(&alg) {
            return Err(c.bad("auth.algorithms", format!("{name:?} twice"), expected));
        }
        if alg.is_sess() && qop == QopMode::None {
            return Err(c.bad(
                "auth.algorithms",
                format!("{name:?} with auth.qop = \"none\""),
                "no -sess algorithm without qop (its session key hashes the client's cnonce, \
                 which only comes with qop)",
            ));
        }
        algorithms.push(alg);
    }
    if algorithms.is_empty() {
        return Err(c.bad(
            "auth.algorithms",
            "[]".to_owned(),
            "at least one algorithm (default [\"MD5\"])",
        ));
    }

    let max_retry = c.int(
        "auth.max_retry",
        a.max_retry,
        0,
        999,
        "0-999 (0 disables suspension)",
    )?;
    let auth = AuthConfig {
        realm,
        max_retry,
        failed_suspend: c.secs(
            "auth.failed_suspend",
            a.failed_suspend,
            60,
            3600,
            "60-3600 seconds",
        )?,
        challenge_mode,
        session_retry: c.int("auth.session_retry", a.session_retry, 1, 999, "1-999")?,
        session_timeout: c.secs(
            "auth.session_timeout",
            a.session_timeout,
            1,
            3600,
            "1-3600 seconds",
        )?,
        reply_unauthorized: a.reply_unauthorized.0,
        suspend_scope,
        ban_source_on_suspend: a.ban_source_on_suspend,
        source_max_retry: c.int(
            "auth.source_max_retry",
            a.source_max_retry,
            0,
            9999,
            "0-9999 (0 disables the source lockout)",
        )?,
        source_suspend: c.secs(
            "auth.source_suspend",
            a.source_suspend,
            60,
            86_400,
            "60-86400 seconds",
        )?,
        account_budget: match a.account_budget {
            // max_retry = 0 turns suspension off, not the account guard.
            None if max_retry == 0 => 6,
            None => max_retry,
            Some(v) => c.int(
                "auth.account_budget",
                v,
                0,
                999,
                "0-999 (default: max_retry; 0 disables the account guard)",
            )?,
        },
        known_good_window: c.secs(
            "auth.known_good_window",
            a.known_good_window,
            0,
            31_536_000,
            "0-31536000 seconds (0: no source is known-good)",
        )?,
        ipv4_prefix: c.int("auth.ipv4_prefix", a.ipv4_prefix, 8, 32, "8-32 bits")?,
        ipv6_prefix: c.int("auth.ipv6_prefix", a.ipv6_prefix, 16, 128, "16-128 bits")?,
        trust_dialogs: a.trust_dialogs,
        qop,
        check_digest_uri: a.check_digest_uri,
        no_auth_methods,
        algorithms,
    };
    Ok(auth)
}

fn check_nonce(c: &Checker<'_>, n: &RawNonce) -> Result<NonceSettings, ConfigError> {
    let lifetime = c.secs("nonce.lifetime", n.lifetime, 5, 300, "5-300 seconds")?;
    let grace = c.secs("nonce.grace", n.grace, 0, 3600, "0-3600 seconds")?;
    let secret = c.secret("nonce.secret", &n.secret)?;
    let previous_secret = c.secret("nonce.previous_secret", &n.previous_secret)?;
    if previous_secret.is_some() && secret.is_none() {
        return Err(ConfigError::Conflict {
            file: c.file.to_owned(),
            message: "nonce.previous_secret is set but nonce.secret is not: a previous \
                          secret only makes sense after a rotation to a new nonce.secret"
                .to_owned(),
        });
    }
    let nonce = NonceSettings {
        lifetime,
        secret,
        previous_secret,
        grace,
        replay_table_size: c.size(
            "nonce.replay_table_size",
            n.replay_table_size,
            "1024-67108864 entries",
        )?,
    };
    Ok(nonce)
}

fn check_limits(c: &Checker<'_>, l: &RawLimits) -> Result<Limits, ConfigError> {
    let limits = Limits {
        max_terminals: c.size(
            "limits.max_terminals",
            l.max_terminals,
            "1024-67108864 entries",
        )?,
        max_sessions: c.size(
            "limits.max_sessions",
            l.max_sessions,
            "1024-67108864 entries",
        )?,
        max_sources: c.size("limits.max_sources", l.max_sources, "1024-67108864 entries")?,
        idle_timeout: c.secs(
            "limits.idle_timeout",
            l.idle_timeout,
            60,
            86_400,
            "60-86400 seconds",
        )?,
        known_good_per_account: usize::from(c.int::<u8>(
            "limits.known_good_per_account",
            l.known_good_per_account,
            1,
            64,
            "1-64 sources",
        )?),
        amplification_limit_milli: if (1.0..=3.0).contains(&l.amplification_limit) {
            (l.amplification_limit * 1000.0).round() as u32
        } else {
            return Err(c.bad(
                "limits.amplification_limit",
                l.amplification_limit.to_string(),
                "1.0-3.0 (times the request's size)",
            ));
        },
        known_sources: if l.known_sources == 0 {
            0
        } else {
            c.size(
                "limits.known_sources",
                l.known_sources,
                "0 (off) or 1024-67108864 entries",
            )?
        },
    };
    Ok(limits)
}

/// `[gateway]` with the stream sections it depends on (`[tcp]`, `[tls]`).
fn check_gateway(
    c: &Checker<'_>,
    g: &RawGateway,
    tcp: &streams::RawTcp,
    tls: &streams::RawTls,
    base_dir: Option<&Path>,
) -> Result<(GatewaySettings, streams::Streams), ConfigError> {
    let backend = match g.backend.as_str() {
        "udp" => Backend::Udp,
        "xdp" => Backend::Xdp,
        other => {
            return Err(c.bad(
                "gateway.backend",
                format!("{other:?}"),
                "\"udp\" (kernel sockets, no root) or \"xdp\" (AF_XDP, needs xdp.interface)",
            ))
        }
    };
    let listen = c.addr("gateway.listen", &g.listen)?;
    let advertise = match &g.advertise {
        Some(a) => c.addr("gateway.advertise", a)?,
        None if listen.ip().is_unspecified() => {
            return Err(ConfigError::Conflict {
                file: c.file.to_owned(),
                message: format!(
                    "gateway.listen = {:?} is a wildcard address: set gateway.advertise to \
                         the address phones and the softswitch reach sipgw at (it goes into \
                         Via, Path and Record-Route)",
                    g.listen
                ),
            })
        }
        None => listen,
    };
    if advertise.ip().is_unspecified() || advertise.port() == 0 {
        return Err(c.bad(
            "gateway.advertise",
            advertise.to_string(),
            "a concrete address and port (not 0.0.0.0, [::] or port 0)",
        ));
    }
    let softswitch = match &g.softswitch {
        Some(a) => {
            let addr = c.addr("gateway.softswitch", a)?;
            if addr.ip().is_unspecified() || addr.port() == 0 {
                return Err(c.bad(
                    "gateway.softswitch",
                    addr.to_string(),
                    "a concrete address and port",
                ));
            }
            Some(addr)
        }
        None => None,
    };
    let streams = streams::check(c, tcp, tls, &g.softswitch_transport, listen, base_dir)?;
    let gateway = GatewaySettings {
        softswitch_transport: streams.softswitch_transport,
        backend,
        listen,
        advertise,
        softswitch,
        workers: usize::try_from(c.range(
            "gateway.workers",
            g.workers,
            0,
            1024,
            "0-1024 (0: one per CPU core)",
        )?)
        .unwrap_or(0),
        metrics: g
            .metrics
            .as_deref()
            .map(|m| c.addr("gateway.metrics", m))
            .transpose()?,
        log_rejections_per_sec: u32::try_from(c.range(
            "gateway.log_rejections_per_sec",
            g.log_rejections_per_sec,
            0,
            100_000,
            "0-100000 lines per second and worker",
        )?)
        .unwrap_or(0),
    };
    Ok((gateway, streams))
}

fn check_xdp(c: &Checker<'_>, x: &RawXdp, backend: Backend) -> Result<XdpSettings, ConfigError> {
    let interface = match &x.interface {
        Some(i) if i.is_empty() || i.len() > 15 || i.contains(['/', ' ']) => {
            return Err(c.bad(
                "xdp.interface",
                format!("{i:?}"),
                "a network interface name (1-15 characters, no '/' or space)",
            ))
        }
        i => i.clone(),
    };
    if backend == Backend::Xdp && interface.is_none() {
        return Err(ConfigError::Conflict {
            file: c.file.to_owned(),
            message: "gateway.backend = \"xdp\" needs xdp.interface: the interface facing \
                          the phones, e.g. [xdp] interface = \"eth1\""
                .to_owned(),
        });
    }
    let ring_size = c.range(
        "xdp.ring_size",
        x.ring_size,
        64,
        16384,
        "a power of two from 64 to 16384",
    )?;
    if !(ring_size as u64).is_power_of_two() {
        return Err(c.bad(
            "xdp.ring_size",
            ring_size.to_string(),
            "a power of two from 64 to 16384",
        ));
    }
    let frames = c.range(
        "xdp.frames",
        x.frames,
        2 * ring_size,
        1 << 20,
        "at least 2 x xdp.ring_size, at most 1048576",
    )?;
    let frame_size = match x.frame_size {
        2048 | 4096 => x.frame_size,
        other => return Err(c.bad("xdp.frame_size", other.to_string(), "2048 or 4096")),
    };
    let xdp = XdpSettings {
        interface,
        mode: match x.mode.as_str() {
            "native" => XdpMode::Native,
            "generic" => XdpMode::Generic,
            "auto" => XdpMode::Auto,
            other => {
                return Err(c.bad(
                    "xdp.mode",
                    format!("{other:?}"),
                    "\"native\", \"generic\" or \"auto\"",
                ))
            }
        },
        zero_copy: match x.zero_copy.as_str() {
            "on" => ZeroCopy::On,
            "off" => ZeroCopy::Off,
            "auto" => ZeroCopy::Auto,
            other => {
                return Err(c.bad(
                    "xdp.zero_copy",
                    format!("{other:?}"),
                    "\"on\", \"off\" or \"auto\"",
                ))
            }
        },
        frame_size: frame_size as u32,
        frames: frames as u32,
        ring_size: ring_size as u32,
        busy_poll: x.busy_poll,
        busy_poll_usecs: c.range(
            "xdp.busy_poll_usecs",
            x.busy_poll_usecs,
            1,
            10_000,
            "1-10000 microseconds",
        )? as u32,
        busy_poll_budget: c.range(
            "xdp.busy_poll_budget",
            x.busy_poll_budget,
            1,
            1024,
            "1-1024 packets",
        )? as u32,
        pin_root: x.pin_root.clone(),
        keep_attached: x.keep_attached,
        upstream: x.upstream,
    };
    Ok(xdp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", None)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_match_vos3000() {
        let c = Config::default();
        assert_eq!(c.auth.max_retry, 6);
        assert_eq!(c.auth.failed_suspend, Duration::from_secs(180));
        assert_eq!(c.auth.challenge_mode, ChallengeMode::Proxy);
        assert_eq!(c.auth.session_retry, 6);
        assert_eq!(c.auth.session_timeout, Duration::from_secs(10));
        assert!(c.auth.reply_unauthorized);
        assert_eq!(c.auth.suspend_scope, SuspendScope::TerminalSource);
        assert_eq!(c.nonce.lifetime, Duration::from_secs(30));
        assert_eq!(parse("").unwrap(), c);
    }

    #[test]
    fn vos3000_aliases() {
        let c = parse(
            "[auth]\nSS_AUTHENTICATION_MAX_RETRY = 3\nSS_AUTHENTICATION_FAILED_SUSPEND = 60\n\
             SS_AUTHCHALLENGEMODE = 3\nSS_SIP_AUTHENTICATION_RETRY = 2\n\
             SS_SIP_AUTHENTICATION_TIMEOUT = 5\nSS_REPLY_UNAUTHORIZED = \"Off\"\n",
        )
        .unwrap();
        assert_eq!(c.auth.max_retry, 3);
        assert_eq!(c.auth.failed_suspend, Duration::from_secs(60));
        assert_eq!(c.auth.challenge_mode, ChallengeMode::ByMethod);
        assert_eq!(c.auth.session_retry, 2);
        assert_eq!(c.auth.session_timeout, Duration::from_secs(5));
        assert!(!c.auth.reply_unauthorized);
    }

    #[test]
    fn challenge_code_alias_and_conflict() {
        let c = parse("[auth]\nSS_SIP_AUTHENTICATION_CODE = 401\n").unwrap();
        assert_eq!(c.auth.challenge_mode, ChallengeMode::Www);
        let c = parse("[auth]\nchallenge_code = 407\n").unwrap();
        assert_eq!(c.auth.challenge_mode, ChallengeMode::Proxy);
        let c = parse("[auth]\nchallenge_mode = 1\nchallenge_code = 401\n").unwrap();
        assert_eq!(c.auth.challenge_mode, ChallengeMode::Www);
        for (mode, code) in [(1, 407), (2, 401), (3, 401), (3, 407)] {
            let e = err(&format!(
                "[auth]\nchallenge_mode = {mode}\nchallenge_code = {code}\n"
            ));
            assert!(e.contains("conflicts"), "{e}");
            assert!(e.contains("test.toml"), "{e}");
        }
        let e = err("[auth]\nchallenge_code = 403\n");
        assert_eq!(
            e,
            "test.toml: auth.challenge_code = 403 is out of range (allowed: 401 or 407)"
        );
        let e = err("[auth]\nSS_AUTHCHALLENGEMODE = 4\n");
        assert_eq!(
            e,
            "test.toml: auth.challenge_mode = 4 is out of range (allowed: 1, 2 or 3)"
        );
    }

    #[test]
    fn both_name_and_alias_is_an_error() {
        let e = err("[auth]\nmax_retry = 3\nSS_AUTHENTICATION_MAX_RETRY = 4\n");
        assert!(e.contains("duplicate") && e.contains("max_retry"), "{e}");
    }

    #[test]
    fn ranges_name_file_key_value_and_range() {
        let cases = [
            ("max_retry = 1000", "auth.max_retry = 1000", "0-999"),
            ("max_retry = -1", "auth.max_retry = -1", "0-999"),
            (
                "failed_suspend = 59",
                "auth.failed_suspend = 59",
                "60-3600 seconds",
            ),
            (
                "failed_suspend = 3601",
                "auth.failed_suspend = 3601",
                "60-3600 seconds",
            ),
            ("session_retry = 0", "auth.session_retry = 0", "1-999"),
            ("session_retry = 1000", "auth.session_retry = 1000", "1-999"),
            (
                "session_timeout = 0",
                "auth.session_timeout = 0",
                "1-3600 seconds",
            ),
            (
                "session_timeout = 3601",
                "auth.session_timeout = 3601",
                "1-3600 seconds",
            ),
            (
                "source_max_retry = 10000",
                "auth.source_max_retry = 10000",
                "0-9999",
            ),
            (
                "suspend_scope = \"user\"",
                "auth.suspend_scope = \"user\"",
                "\"terminal\"",
            ),
            (
                "qop = \"auth-int\"",
                "auth.qop = \"auth-int\"",
                "\"auth\" or \"none\"",
            ),
            ("realm = \"a b\"", "auth.realm = \"a b\"", "printable ASCII"),
            (
                "account_budget = 1000",
                "auth.account_budget = 1000",
                "0-999",
            ),
            (
                "known_good_window = -1",
                "auth.known_good_window = -1",
                "0-31536000 seconds",
            ),
            ("ipv4_prefix = 7", "auth.ipv4_prefix = 7", "8-32 bits"),
            ("ipv6_prefix = 129", "auth.ipv6_prefix = 129", "16-128 bits"),
            (
                "no_auth_methods = [\"FOO\"]",
                "auth.no_auth_methods = \"FOO\"",
                "REGISTER",
            ),
        ];
        for (line, key_value, allowed) in cases {
            let e = err(&format!("[auth]\n{line}\n"));
            assert!(e.starts_with("test.toml: "), "{e}");
            assert!(e.contains(key_value), "{line}: {e}");
            assert!(e.contains(allowed), "{line}: {e}");
        }
        let e = err("[nonce]\nlifetime = 4\n");
        assert!(
            e.contains("nonce.lifetime = 4") && e.contains("5-300"),
            "{e}"
        );
        let e = err("[limits]\namplification_limit = 0.5\n");
        assert!(
            e.contains("limits.amplification_limit = 0.5") && e.contains("1.0-3.0"),
            "{e}"
        );
        let e = err("[limits]\nknown_good_per_account = 0\n");
        assert!(
            e.contains("limits.known_good_per_account = 0") && e.contains("1-64"),
            "{e}"
        );
        // The account budget follows max_retry unless given (6 when max_retry is 0).
        let c = Config::parse("[auth]\nmax_retry = 0\n", "t", None).unwrap();
        assert_eq!(c.auth.account_budget, 6);
        let c = Config::parse("[auth]\nmax_retry = 9\n", "t", None).unwrap();
        assert_eq!(c.auth.account_budget, 9);
        let c = Config::parse("[auth]\nmax_retry = 9\naccount_budget = 2\n", "t", None).unwrap();
        assert_eq!(c.auth.account_budget, 2);
        let e = err("[limits]\nmax_terminals = 10\n");
        assert!(e.contains("limits.max_terminals = 10"), "{e}");
    }

    #[test]
    fn max_retry_zero_disables() {
        assert_eq!(parse("[auth]\nmax_retry = 0\n").unwrap().auth.max_retry, 0);
    }

    #[test]
    fn unknown_keys_and_types_are_rejected_with_the_key() {
        let e = err("[auth]\nmax_retries = 3\n");
        assert!(
            e.starts_with("test.toml: ") && e.contains("max_retries"),
            "{e}"
        );
        let e = err("[nope]\n");
        assert!(e.contains("nope"), "{e}");
        let e = err("[auth]\nmax_retry = \"six\"\n");
        assert!(e.contains("max_retry") || e.contains("six"), "{e}");
        let e = err("[auth]\nreply_unauthorized = \"maybe\"\n");
        assert!(e.contains("maybe"), "{e}");
    }

    #[test]
    fn secrets_are_checked_and_never_echoed() {
        let good = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let c = parse(&format!("[nonce]\nsecret = \"{good}\"\n")).unwrap();
        assert_eq!(c.nonce.secret.unwrap()[1], 0x11);
        let e = err("[nonce]\nsecret = \"hunter2\"\n");
        assert!(e.contains("nonce.secret") && !e.contains("hunter2"), "{e}");
        let e = err(&format!("[nonce]\nprevious_secret = \"{good}\"\n"));
        assert!(e.contains("previous_secret"), "{e}");
    }

    #[test]
    fn database_section() {
        let ok = "[database]\nkind = \"postgres\"\nurl = \"postgres://u@127.0.0.1/voip\"\n\
                  query = \"SELECT name, password FROM a\"\nnotify = \"acc_changed\"\n\
                  cache = \"cache.toml\"\n";
        let c = Config::parse(ok, "sipgw.toml", Some(Path::new("/etc/sipgw"))).unwrap();
        let d = c.database.unwrap();
        assert_eq!(d.kind, DatabaseKind::Postgres);
        assert_eq!(d.refresh, Duration::from_secs(60));
        assert_eq!(d.notify.as_deref(), Some("acc_changed"));
        assert_eq!(d.cache.unwrap(), Path::new("/etc/sipgw/cache.toml"));
        for (text, want) in [
            (
                ok.replace("postgres\"\nurl", "oracle\"\nurl"),
                "database.kind = \"oracle\"",
            ),
            (
                ok.replace("notify = \"acc_changed\"", "notify = \"a-b\""),
                "database.notify",
            ),
            (format!("{ok}refresh = 0\n"), "database.refresh = 0"),
            (
                ok.replace("SELECT name, password FROM a", " "),
                "database.query",
            ),
            (format!("credentials = \"u.toml\"\n{ok}"), "not both"),
            (format!("{ok}user = \"x\"\n"), "user"),
        ] {
            let e = Config::parse(&text, "sipgw.toml", None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}\nwanted {want}");
        }
    }

    #[test]
    fn credentials_path_is_relative_to_the_config() {
        let c = Config::parse(
            "credentials = \"users.toml\"\n",
            "x",
            Some(Path::new("/etc/sipgw")),
        )
        .unwrap();
        assert_eq!(c.credentials.unwrap(), Path::new("/etc/sipgw/users.toml"));
        let c = Config::parse(
            "credentials = \"/abs/users.toml\"\n",
            "x",
            Some(Path::new("/etc")),
        )
        .unwrap();
        assert_eq!(c.credentials.unwrap(), Path::new("/abs/users.toml"));
    }

    #[test]
    fn no_auth_methods() {
        let c = parse("[auth]\nno_auth_methods = [\"OPTIONS\", \"OPTIONS\"]\n").unwrap();
        assert_eq!(c.auth.no_auth_methods, vec![Method::Options]);
        assert!(err("[auth]\nno_auth_methods = [\"ACK\"]\n").contains("ACK"));
    }

    #[test]
    fn file_errors_name_the_file() {
        let e = Config::from_file(Path::new("/nonexistent/sipgw.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/sipgw.toml: cannot read"), "{e}");
    }

    #[test]
    fn gateway_section() {
        let c = parse("").unwrap();
        assert_eq!(c.gateway.listen, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(c.gateway.advertise, c.gateway.listen);
        assert_eq!(c.gateway.softswitch, None);
        assert_eq!(c.gateway.workers, 0);
        assert!(c.proxy.strip_credentials && c.proxy.assert_identity);
        assert!(c.proxy.add_path && c.proxy.record_route);

        let c = parse(
            "[gateway]\nlisten = \"0.0.0.0:5060\"\nadvertise = \"198.18.0.1:5060\"\n\
             softswitch = \"198.18.0.9:5070\"\nworkers = 4\nmetrics = \"127.0.0.1:9465\"\n",
        )
        .unwrap();
        assert_eq!(c.gateway.advertise, "198.18.0.1:5060".parse().unwrap());
        assert_eq!(
            c.gateway.softswitch,
            Some("198.18.0.9:5070".parse().unwrap())
        );
        assert_eq!(c.gateway.workers, 4);

        let e = err("[gateway]\nlisten = \"0.0.0.0:5060\"\n");
        assert!(
            e.contains("gateway.advertise") && e.contains("wildcard"),
            "{e}"
        );
        let e = err("[gateway]\nsoftswitch = \"pbx.example:5060\"\n");
        assert!(
            e.contains("gateway.softswitch = \"pbx.example:5060\""),
            "{e}"
        );
        let e = err("[gateway]\nbackend = \"dpdk\"\n");
        assert!(e.contains("gateway.backend") && e.contains("udp"), "{e}");
        let e = err("[gateway]\nworkers = 5000\n");
        assert!(e.contains("gateway.workers = 5000"), "{e}");
        let e = err("[gateway]\nsoftswitch = \"198.18.0.9:0\"\n");
        assert!(e.contains("gateway.softswitch"), "{e}");
        let e = err("[proxy]\nrecord_rout = false\n");
        assert!(e.contains("record_rout"), "{e}");
    }

    #[test]
    fn xdp_section() {
        let c = Config::default();
        assert_eq!(c.gateway.backend, Backend::Udp);
        assert_eq!(c.xdp.interface, None);
        assert_eq!(
            (c.xdp.frame_size, c.xdp.frames, c.xdp.ring_size),
            (4096, 4096, 2048)
        );
        assert_eq!(c.xdp.mode, XdpMode::Auto);
        assert_eq!(c.xdp.zero_copy, ZeroCopy::Auto);
        assert!(!c.xdp.keep_attached && !c.xdp.busy_poll);
        assert!(c.xdp.upstream, "the softswitch leg on AF_XDP by default");
        let c = parse(
            "[gateway]\nbackend = \"xdp\"\n[xdp]\ninterface = \"eth1\"\nmode = \"native\"\n\
             zero_copy = \"off\"\nframe_size = 2048\nframes = 8192\nring_size = 4096\n\
             busy_poll = true\nkeep_attached = true\nupstream = false\npin_root = \"/sys/fs/bpf/x\"\n",
        )
        .unwrap();
        assert_eq!(c.gateway.backend, Backend::Xdp);
        assert_eq!(c.xdp.interface.as_deref(), Some("eth1"));
        assert_eq!(
            (c.xdp.mode, c.xdp.zero_copy),
            (XdpMode::Native, ZeroCopy::Off)
        );
        assert_eq!(
            (c.xdp.frame_size, c.xdp.frames, c.xdp.ring_size),
            (2048, 8192, 4096)
        );
        assert!(c.xdp.busy_poll && c.xdp.keep_attached && !c.xdp.upstream);
        assert_eq!(c.xdp.pin_root, PathBuf::from("/sys/fs/bpf/x"));

        let e = err("[gateway]\nbackend = \"xdp\"\n");
        assert!(e.contains("needs xdp.interface"), "{e}");
        for (text, key) in [
            ("[xdp]\ninterface = \"a/b\"\n", "xdp.interface = \"a/b\""),
            (
                "[xdp]\ninterface = \"averyveryverylongname\"\n",
                "xdp.interface",
            ),
            ("[xdp]\nring_size = 1000\n", "xdp.ring_size = 1000"),
            ("[xdp]\nring_size = 32\n", "xdp.ring_size = 32"),
            ("[xdp]\nframes = 1024\n", "xdp.frames = 1024"),
            ("[xdp]\nframe_size = 3000\n", "xdp.frame_size = 3000"),
            ("[xdp]\nmode = \"turbo\"\n", "xdp.mode = \"turbo\""),
            (
                "[xdp]\nzero_copy = \"maybe\"\n",
                "xdp.zero_copy = \"maybe\"",
            ),
            ("[xdp]\nbusy_poll_budget = 0\n", "xdp.busy_poll_budget = 0"),
            ("[xdp]\nqueues = 2\n", "queues"),
        ] {
            let e = err(text);
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
