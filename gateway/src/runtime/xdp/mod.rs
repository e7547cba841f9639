//! The AF_XDP backend (`gateway.backend = "xdp"`) and the gateway's use of the XDP program's
//! pinned maps (with either backend).
//!
//! Layer: driver. At start the runtime attaches sipgw's XDP program to `xdp.interface` (or
//! reuses the attachment `sipgw-loader attach` made, with its ports and flood settings), opens
//! the pinned maps, and gives each worker one AF_XDP socket on RX queue *i* (worker *i*),
//! registered in the `xsks` map. Workers parse frames in place ([`frame`]), run the same engine
//! and shards as the UDP backend, write challenges and 403s back into the received frame and
//! send them with XDP TX on the same socket ([`xsk`]). The softswitch leg (authenticated
//! requests forwarded, responses back to phones) leaves on the same socket too when its next
//! hop is on the interface and resolved ([`neigh`]: routes and neighbours from the kernel over
//! rtnetlink; `xdp.upstream`), and through the worker's kernel UDP socket otherwise — which
//! also receives what reaches the gateway on another interface. Bans and suspensions go into
//! the ban map ([`maps`]), so the program drops those sources in the driver from the next
//! packet on.

pub mod frame;
pub mod maps;
pub mod neigh;
pub mod xsk;

use std::path::PathBuf;
use std::sync::Arc;

use sipgw_loader::{AttachOptions, BanScope, ConfigView, Mode, Target};

use crate::config::{Config, XdpMode};

pub use maps::{MapError, PinnedMaps};
pub use xsk::XskPort;

/// What the runtime holds for the XDP program while it runs.
#[derive(Debug)]
pub struct XdpHandle {
    target: Target,
    /// The pinned maps (shared with the workers).
    pub maps: Arc<PinnedMaps>,
    /// Whether this process attached the program (and so may detach it at stop).
    attached_here: bool,
    keep_attached: bool,
    queues: Vec<u32>,
    /// The next hops of the interface, when the softswitch leg is sent on AF_XDP.
    resolver: Option<neigh::Resolver>,
}

/// The XDP program could not be attached or its maps opened.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// Attaching (or reading the attachment) failed.
    #[error("XDP program on {iface}: {source}")]
    Attach {
        /// The interface.
        iface: String,
        /// Why.
        source: sipgw_loader::Error,
    },
    /// A pinned map is missing or unusable.
    #[error(transparent)]
    Map(#[from] MapError),
    /// An AF_XDP socket could not be created.
    #[error(transparent)]
    Socket(#[from] xsk::XskError),
    /// The interface's routes and neighbours could not be read (`xdp.upstream`).
    #[error("next hops of {iface} (xdp.upstream): {what}")]
    NextHops {
        /// The interface.
        iface: String,
        /// Why.
        what: String,
    },
}

fn target(config: &Config, iface: &str) -> Target {
    Target {
        iface: iface.to_owned(),
        pin_root: config.xdp.pin_root.clone(),
    }
}

impl XdpHandle {
    /// `backend = "xdp"`: attach the program unless `sipgw-loader` already did, then open the
    /// maps.
    pub fn attach(config: &Config, iface: &str) -> Result<XdpHandle, XdpError> {
        let t = target(config, iface);
        let fail = |source| XdpError::Attach {
            iface: iface.to_owned(),
            source,
        };
        let status = sipgw_loader::status(&t).map_err(fail)?;
        let attached_here = !(status.attached && status.ours);
        if attached_here {
            let opts = AttachOptions {
                mode: match config.xdp.mode {
                    XdpMode::Native => Mode::Native,
                    XdpMode::Generic => Mode::Generic,
                    XdpMode::Auto => Mode::Auto,
                },
                ports: sip_ports(config),
                flood_rate: 0,
                flood_burst: None,
                ban_scope: BanScope::All,
                fragments_to_xsk: false,
                force: false,
                mount_bpffs: true,
            };
            sipgw_loader::attach(&t, &opts).map_err(fail)?;
        } else if !status.pinned.iter().all(|p| p.present) {
            // Ours, but pinned by an older version that lacks a map of this one (an upgrade
            // with `keep_attached`): replace the program in place with the settings in force
            // (its mode, ports, flood guard, ban scope); the pinned maps are reused.
            let c = status.config.clone().unwrap_or(ConfigView {
                ban_scope: BanScope::All,
                flood_rate_pps: 0,
                flood_burst: 0,
                fragments_to_xsk: false,
            });
            let opts = AttachOptions {
                mode: Mode::Auto,
                ports: if status.ports.is_empty() {
                    sip_ports(config)
                } else {
                    status.ports.clone()
                },
                flood_rate: c.flood_rate_pps,
                flood_burst: (c.flood_rate_pps > 0).then_some(c.flood_burst),
                ban_scope: c.ban_scope,
                fragments_to_xsk: c.fragments_to_xsk,
                force: false,
                mount_bpffs: true,
            };
            tracing::info!(
                iface,
                "replacing an older sipgw XDP program (a map is missing)"
            );
            sipgw_loader::attach(&t, &opts).map_err(fail)?;
        }
        Ok(XdpHandle {
            maps: Arc::new(PinnedMaps::open(&t.dir())?),
            target: t,
            attached_here,
            keep_attached: config.xdp.keep_attached,
            queues: Vec::new(),
            resolver: None,
        })
    }

    /// Start following the interface's next hops (`xdp.upstream`): what the workers need to
    /// send the softswitch leg on AF_XDP.
    pub fn next_hops(&mut self) -> Result<Arc<neigh::Published>, XdpError> {
        if let Some(r) = &self.resolver {
            return Ok(r.published.clone());
        }
        let iface = &self.target.iface;
        let fail = |e: String| XdpError::NextHops {
            iface: iface.clone(),
            what: e,
        };
        let sock = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::DGRAM,
            None,
        )
        .map_err(|e| fail(format!("socket: {e}")))?;
        let ifindex = rustix::net::netdevice::name_to_index(&sock, iface)
            .map_err(|e| fail(format!("interface index: {e}")))?;
        let r = neigh::Resolver::start(ifindex).map_err(|e| fail(e.to_string()))?;
        let p = r.published.clone();
        self.resolver = Some(r);
        Ok(p)
    }

    /// `backend = "udp"` with `xdp.interface`: use the maps `sipgw-loader attach` pinned.
    pub fn existing(config: &Config, iface: &str) -> Result<XdpHandle, XdpError> {
        let t = target(config, iface);
        Ok(XdpHandle {
            maps: Arc::new(PinnedMaps::open(&t.dir())?),
            target: t,
            attached_here: false,
            keep_attached: true,
            queues: Vec::new(),
            resolver: None,
        })
    }

    /// Open the AF_XDP socket of `queue` and register it in the `xsks` map.
    pub fn socket(&mut self, config: &Config, queue: u32) -> Result<XskPort, XdpError> {
        let port = XskPort::open(&self.target.iface, queue, &config.xdp)?;
        tracing::info!(
            iface = %self.target.iface,
            queue,
            mode = if port.zero_copy() { "zero-copy" } else { "copy" },
            "AF_XDP socket bound"
        );
        if config.xdp.busy_poll {
            if let Err(e) =
                port.set_busy_poll(config.xdp.busy_poll_usecs, config.xdp.busy_poll_budget)
            {
                tracing::warn!(queue, error = %e, "preferred busy polling not available");
            }
        }
        self.maps.register_socket(queue, port.fd())?;
        self.queues.push(queue);
        Ok(port)
    }

    /// The pin directory.
    pub fn pin_dir(&self) -> PathBuf {
        self.target.dir()
    }

    /// At stop: unregister the sockets, and detach the program if this process attached it
    /// and `xdp.keep_attached` is off. The pinned maps (bans) stay either way.
    pub fn shutdown(mut self) {
        drop(self.resolver.take());
        for q in &self.queues {
            self.maps.unregister_socket(*q);
        }
        if self.attached_here && !self.keep_attached {
            match sipgw_loader::detach(&self.target, false, false) {
                Ok(d) => tracing::info!(iface = %d.iface, "XDP program detached"),
                Err(e) => tracing::warn!(error = %e, "could not detach the XDP program"),
            }
        }
    }
}

/// The AF_XDP mode `xdp.zero_copy` gets on `iface`, found by binding a small socket to queue
/// 0 the way the workers do (`sipgw check`): `Ok(true)` zero-copy, `Ok(false)` copy mode. Needs
/// root (CAP_NET_RAW, CAP_BPF) and a queue no running gateway holds (EBUSY otherwise).
pub fn probe_mode(config: &Config, iface: &str) -> Result<bool, XdpError> {
    let mut s = config.xdp.clone();
    s.ring_size = 64;
    s.frames = 128;
    Ok(XskPort::open(iface, 0, &s)?.zero_copy())
}

/// The ports the XDP program treats as SIP: `gateway.listen`'s (UDP and TCP) and, with TLS,
/// `tls.listen`'s (a banned source's SYNs to them are dropped in ban scope "sip" too).
fn sip_ports(config: &Config) -> Vec<u16> {
    let mut ports = vec![config.gateway.listen.port()];
    if config.tls.enabled && !ports.contains(&config.tls.listen.port()) {
        ports.push(config.tls.listen.port());
    }
    ports
}
