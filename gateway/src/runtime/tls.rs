//! TLS material: the listener's certificate and key, the CA the softswitch is verified
//! against (rustls, ring provider). Loaded at start and on every reload (SIGHUP), so a renewed
//! certificate takes effect for new connections without a restart.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::Config;
use crate::flow::Transport;

/// TLS material that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read.
    #[error("{key} = {path}: cannot read: {source}")]
    Io {
        /// The configuration key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds nothing of the expected kind.
    #[error("{key} = {path}: {what}")]
    Content {
        /// The configuration key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the combination (e.g. a key that does not match the certificate).
    #[error("{key}: {message}")]
    Rustls {
        /// The configuration key.
        key: &'static str,
        /// rustls's message.
        message: String,
    },
}

/// The TLS side of a loaded configuration.
#[derive(Debug, Clone)]
pub struct TlsContext {
    /// For accepted connections (`[tls] enabled`).
    pub server: Option<Arc<ServerConfig>>,
    /// For the connections to the softswitch (`gateway.softswitch_transport = "tls"`).
    pub client: Option<Arc<ClientConfig>>,
    /// The name the softswitch's certificate is checked for.
    pub softswitch_name: ServerName<'static>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open(key: &'static str, path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Io {
            key,
            path: path.to_owned(),
            source,
        })
}

fn certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |what: String| TlsError::Content {
        key,
        path: path.to_owned(),
        what,
    };
    let list = rustls_pemfile::certs(&mut open(key, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM: {e}")))?;
    if list.is_empty() {
        return Err(bad("no CERTIFICATE block in the file".to_owned()));
    }
    Ok(list)
}

/// Load the TLS material `config` asks for; `None` when it asks for none.
pub fn load(config: &Config) -> Result<Option<TlsContext>, TlsError> {
    let t = &config.tls;
    let wants_client = config.gateway.softswitch_transport == Transport::Tls;
    if !t.enabled && !wants_client {
        return Ok(None);
    }
    let rustls_err = |key: &'static str| {
        move |e: rustls::Error| TlsError::Rustls {
            key,
            message: e.to_string(),
        }
    };
    let server = match (&t.certificate, &t.private_key) {
        (Some(cert), Some(key_path)) if t.enabled => {
            let chain = certs("tls.certificate", cert)?;
            let key: PrivateKeyDer<'static> =
                rustls_pemfile::private_key(&mut open("tls.private_key", key_path)?)
                    .map_err(|e| TlsError::Content {
                        key: "tls.private_key",
                        path: key_path.clone(),
                        what: format!("not PEM: {e}"),
                    })?
                    .ok_or_else(|| TlsError::Content {
                        key: "tls.private_key",
                        path: key_path.clone(),
                        what: "no PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1) in the file"
                            .to_owned(),
                    })?;
            let server = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(rustls_err("tls"))?
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .map_err(rustls_err("tls.certificate/tls.private_key"))?;
            Some(Arc::new(server))
        }
        _ => None,
    };
    let softswitch: Option<SocketAddr> = config.gateway.softswitch;
    let softswitch_name = match (&t.softswitch_name, softswitch) {
        (Some(name), _) => ServerName::try_from(name.clone()).map_err(|e| TlsError::Rustls {
            key: "tls.softswitch_name",
            message: format!("{name:?} is not a DNS name or IP address: {e}"),
        })?,
        (None, Some(addr)) => ServerName::IpAddress(addr.ip().into()),
        (None, None) => ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into()),
    };
    let client = match (&t.softswitch_ca, wants_client) {
        (Some(ca), true) => {
            let mut roots = RootCertStore::empty();
            for cert in certs("tls.softswitch_ca", ca)? {
                roots.add(cert).map_err(rustls_err("tls.softswitch_ca"))?;
            }
            let client = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(rustls_err("tls"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(Arc::new(client))
        }
        _ => None,
    };
    Ok(Some(TlsContext {
        server,
        client,
        softswitch_name,
    }))
}
