//! The stream transports' sections: `[tcp]`, `[tls]`, and the softswitch leg's transport
//! (`gateway.softswitch_transport`).

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::checker::{Checker, ConfigError};
use crate::flow::Transport;

/// RFC 3261 §18.1.1: a request within 200 bytes of the path MTU, or over 1300 bytes when the
/// MTU is unknown, must go over a congestion-controlled transport.
pub const LARGE_REQUEST_DEFAULT: usize = 1300;

/// The `[tcp]` section, checked. Its limits apply to TLS connections too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSettings {
    /// Accept SIP over TCP on `gateway.listen` (and connect to the softswitch over TCP).
    pub enabled: bool,
    /// A connection without a byte received for this long is closed (CRLF keep-alives count).
    pub idle_timeout: Duration,
    /// A message must be complete this long after its first byte (slowloris).
    pub message_deadline: Duration,
    /// Largest message (header and body).
    pub max_message: usize,
    /// Largest header section.
    pub max_header: usize,
    /// Connections at most, over every worker and both stream transports.
    pub max_connections: usize,
    /// Connections at most from one IP address.
    pub max_per_source: u32,
    /// Bytes at most waiting to be written on one connection (a peer that does not read is
    /// closed beyond it).
    pub max_pending: usize,
    /// Requests from UDP larger than this go to the softswitch over TCP (RFC 3261 §18.1.1);
    /// `None`: never.
    pub large_requests_over: Option<usize>,
}

/// The `[tls]` section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Accept SIP over TLS on `listen`.
    pub enabled: bool,
    /// The TLS listener's address.
    pub listen: SocketAddr,
    /// The port written in Via, Path and Record-Route for TLS.
    pub advertise_port: u16,
    /// The certificate chain (PEM), reloaded on SIGHUP.
    pub certificate: Option<PathBuf>,
    /// The certificate's private key (PEM), reloaded on SIGHUP.
    pub private_key: Option<PathBuf>,
    /// The CA certificates (PEM) that the softswitch's certificate must chain to, when
    /// `gateway.softswitch_transport = "tls"`.
    pub softswitch_ca: Option<PathBuf>,
    /// The name the softswitch's certificate must carry (SNI); default: its IP address.
    pub softswitch_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawTcp {
    enabled: bool,
    idle_timeout: i64,
    message_deadline: i64,
    max_message: i64,
    max_header: i64,
    max_connections: i64,
    max_per_source: i64,
    max_pending: i64,
    large_requests_over: i64,
}

impl Default for RawTcp {
    fn default() -> Self {
        RawTcp {
            enabled: false,
            idle_timeout: 600,
            message_deadline: 10,
            max_message: 65_535,
            max_header: 16_384,
            max_connections: 100_000,
            max_per_source: 64,
            max_pending: 1 << 20,
            large_requests_over: LARGE_REQUEST_DEFAULT as i64,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawTls {
    enabled: bool,
    listen: Option<String>,
    advertise_port: Option<i64>,
    certificate: Option<PathBuf>,
    private_key: Option<PathBuf>,
    softswitch_ca: Option<PathBuf>,
    softswitch_name: Option<String>,
}

/// The stream sections and the softswitch leg, checked together (they refer to each other).
pub(super) struct Streams {
    pub tcp: TcpSettings,
    pub tls: TlsSettings,
    pub softswitch_transport: Transport,
}

fn resolve(p: &Option<PathBuf>, base_dir: Option<&Path>) -> Option<PathBuf> {
    p.as_ref().map(|p| match base_dir {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.clone(),
    })
}

pub(super) fn check(
    c: &Checker<'_>,
    tcp: &RawTcp,
    tls: &RawTls,
    softswitch_transport: &str,
    listen: SocketAddr,
    base_dir: Option<&Path>,
) -> Result<Streams, ConfigError> {
    let conflict = |message: String| ConfigError::Conflict {
        file: c.file.to_owned(),
        message,
    };
    let max_message: usize = c.int(
        "tcp.max_message",
        tcp.max_message,
        1024,
        1 << 20,
        "1024-1048576 bytes",
    )?;
    let max_header: usize = c.int(
        "tcp.max_header",
        tcp.max_header,
        512,
        1 << 20,
        "512-1048576 bytes (at most tcp.max_message)",
    )?;
    if max_header > max_message {
        return Err(c.bad(
            "tcp.max_header",
            max_header.to_string(),
            "512-1048576 bytes (at most tcp.max_message)",
        ));
    }
    let over: usize = c.int(
        "tcp.large_requests_over",
        tcp.large_requests_over,
        0,
        65_535,
        "0-65535 bytes (0: never switch to TCP)",
    )?;
    let tcp = TcpSettings {
        enabled: tcp.enabled,
        idle_timeout: c.secs(
            "tcp.idle_timeout",
            tcp.idle_timeout,
            10,
            86_400,
            "10-86400 seconds",
        )?,
        message_deadline: c.secs(
            "tcp.message_deadline",
            tcp.message_deadline,
            1,
            300,
            "1-300 seconds",
        )?,
        max_message,
        max_header,
        max_connections: c.int(
            "tcp.max_connections",
            tcp.max_connections,
            1,
            10_000_000,
            "1-10000000 connections",
        )?,
        max_per_source: c.int(
            "tcp.max_per_source",
            tcp.max_per_source,
            1,
            1_000_000,
            "1-1000000 connections",
        )?,
        max_pending: c.int(
            "tcp.max_pending",
            tcp.max_pending,
            65_536,
            1 << 30,
            "65536-1073741824 bytes",
        )?,
        large_requests_over: (over > 0).then_some(over),
    };

    let tls_listen = match &tls.listen {
        Some(a) => c.addr("tls.listen", a)?,
        None => SocketAddr::new(listen.ip(), 5061),
    };
    let advertise_port = match tls.advertise_port {
        Some(p) => c.int("tls.advertise_port", p, 1, 65_535, "1-65535")?,
        None => tls_listen.port(),
    };
    let tls = TlsSettings {
        enabled: tls.enabled,
        listen: tls_listen,
        advertise_port,
        certificate: resolve(&tls.certificate, base_dir),
        private_key: resolve(&tls.private_key, base_dir),
        softswitch_ca: resolve(&tls.softswitch_ca, base_dir),
        softswitch_name: tls.softswitch_name.clone(),
    };
    if tls.enabled && (tls.certificate.is_none() || tls.private_key.is_none()) {
        return Err(conflict(
            "tls.enabled = true needs tls.certificate and tls.private_key (PEM files), e.g. \
             certificate = \"/etc/sipgw/tls/cert.pem\", private_key = \"/etc/sipgw/tls/key.pem\""
                .to_owned(),
        ));
    }
    if tls.enabled && tcp.enabled && tls.listen == listen {
        return Err(conflict(format!(
            "tls.listen = {} is gateway.listen, where SIP over TCP listens: give TLS its own \
             port, e.g. 5061",
            tls.listen
        )));
    }

    let softswitch_transport = match softswitch_transport {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        other => {
            return Err(c.bad(
                "gateway.softswitch_transport",
                format!("{other:?}"),
                "\"udp\", \"tcp\" or \"tls\"",
            ))
        }
    };
    match softswitch_transport {
        // The softswitch sends its requests to the transport our Record-Route and Path name:
        // the listener must exist.
        Transport::Tcp if !tcp.enabled => {
            return Err(conflict(
                "gateway.softswitch_transport = \"tcp\" needs [tcp] enabled = true: the \
                 softswitch reaches phones through sipgw over the same transport"
                    .to_owned(),
            ))
        }
        Transport::Tls if !tls.enabled => {
            return Err(conflict(
                "gateway.softswitch_transport = \"tls\" needs [tls] enabled = true (with its \
                 certificate and key)"
                    .to_owned(),
            ))
        }
        Transport::Tls if tls.softswitch_ca.is_none() => {
            return Err(conflict(
                "gateway.softswitch_transport = \"tls\" needs tls.softswitch_ca: the CA \
                 certificates (PEM) the softswitch's certificate is verified against"
                    .to_owned(),
            ))
        }
        _ => {}
    }
    Ok(Streams {
        tcp,
        tls,
        softswitch_transport,
    })
}
