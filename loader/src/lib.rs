//! `sipgw-loader`'s operations: attach sipgw's XDP program to an interface with its maps pinned
//! under `<pin root>/<ifname>/`, detach it, show its status and counters, manage the ban map.
//!
//! Every operation works on the pinned objects, so it can run in a different process (or after
//! a restart) from the one that attached the program; the attachment itself is made through
//! netlink and outlives the loader. Errors say what failed and how to fix it.

use std::fs;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use libbpf_rs::query::ProgInfoIter;
use libbpf_rs::skel::OpenSkel as _;
use libbpf_rs::{MapCore, MapFlags, MapHandle, Program, Xdp, XdpFlags};
use serde::Serialize;
use sipgw_ebpf::{
    config_flags, monotonic_ns, open_skel, pin_dir, read_percpu, read_slots, Ban, BanMaps,
    BanPrefix, BanReason, Layout, XdpConfig, GATEWAY_COUNTERS, MAP_NAMES, MAX_PORTS, MAX_WORKERS,
    PROGRAM_PIN, XDP_COUNTERS,
};

pub mod sys;

/// What can go wrong; every message names the object and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing privileges.
    #[error(
        "sipgw-loader needs root (or CAP_BPF and CAP_NET_ADMIN) to {action}; run it with sudo"
    )]
    NotPrivileged {
        /// What was attempted.
        action: &'static str,
    },
    /// The pin root is not on a BPF filesystem.
    #[error(
        "{} is not on a BPF filesystem ({} is not bpffs): mount it with \
         `mount -t bpf bpf /sys/fs/bpf`, or pass --mount-bpffs to let sipgw-loader do it",
        path.display(), checked.display()
    )]
    NoBpffs {
        /// The pin root asked for.
        path: PathBuf,
        /// The directory whose filesystem was checked.
        checked: PathBuf,
    },
    /// No such interface.
    #[error("no network interface named `{name}` in this network namespace (see `ip link`)")]
    NoInterface {
        /// The name given.
        name: String,
    },
    /// Another XDP program is attached.
    #[error(
        "interface {iface} already has XDP program {id} (`{name}`, {mode} mode) attached, and it \
         is not the one pinned at {}; detach it first (`ip link set dev {iface} xdp off`) or pass \
         --force to replace it",
        pin.display()
    )]
    OtherProgram {
        /// The interface.
        iface: String,
        /// The attached program's id.
        id: u32,
        /// Its name.
        name: String,
        /// Its attach mode.
        mode: &'static str,
        /// Where our program would be pinned.
        pin: PathBuf,
    },
    /// Nothing of ours is pinned for the interface.
    #[error(
        "no sipgw maps pinned for {iface} under {}: run `sipgw-loader attach --iface {iface}` \
         first (with the same --pin-root)",
        dir.display()
    )]
    NotAttached {
        /// The interface.
        iface: String,
        /// The pin directory looked at.
        dir: PathBuf,
    },
    /// No XDP program on the interface.
    #[error("no XDP program is attached to {iface}")]
    NothingAttached {
        /// The interface.
        iface: String,
    },
    /// The address or network has no ban of its own.
    #[error("{ban} is not banned on {iface}")]
    NotBanned {
        /// The address or network.
        ban: BanPrefix,
        /// The interface.
        iface: String,
    },
    /// A bad option value.
    #[error("{0}")]
    Invalid(String),
    /// The driver refused native mode.
    #[error(
        "the driver of {iface} refused XDP in native mode ({source}); use --mode generic \
         (slower, works everywhere) or --mode auto"
    )]
    NativeUnsupported {
        /// The interface.
        iface: String,
        /// The kernel's answer.
        source: libbpf_rs::Error,
    },
    /// A BPF operation failed.
    #[error("{what}: {source}")]
    Bpf {
        /// What was being done.
        what: String,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// A map layout or BTF problem in the program object.
    #[error(transparent)]
    Ebpf(sipgw_ebpf::Error),
    /// A file-system or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
}

impl From<sipgw_ebpf::Error> for Error {
    /// A failed map call keeps its words and the OS error in the message.
    fn from(e: sipgw_ebpf::Error) -> Error {
        match e {
            sipgw_ebpf::Error::Map { what, source } => Error::Bpf { what, source },
            e => Error::Ebpf(e),
        }
    }
}

fn bpf(what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> Error {
    let what = what.into();
    move |source| Error::Bpf { what, source }
}

/// Which interface, and where its objects are pinned.
#[derive(Debug, Clone)]
pub struct Target {
    /// The interface name.
    pub iface: String,
    /// The directory holding one pin directory per interface.
    pub pin_root: PathBuf,
}

impl Target {
    /// `<pin root>/<iface>`.
    pub fn dir(&self) -> PathBuf {
        pin_dir(&self.pin_root, &self.iface)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Open one pinned map, or say that nothing is attached.
    fn map(&self, name: &str) -> Result<MapHandle, Error> {
        let path = self.path(name);
        if !path.exists() {
            return Err(Error::NotAttached {
                iface: self.iface.clone(),
                dir: self.dir(),
            });
        }
        MapHandle::from_pinned_path(&path).map_err(bpf(format!("opening {}", path.display())))
    }

    /// The two ban maps (`bans`, `ban_prefixes`).
    fn bans(&self) -> Result<BanMaps<MapHandle>, Error> {
        Ok(BanMaps::new(self.map("bans")?, self.map("ban_prefixes")?))
    }
}

/// XDP attach mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// In the driver (fastest; the NIC driver must support XDP).
    Native,
    /// In the kernel's generic path, after the driver (works on every interface).
    Generic,
    /// Native if the driver supports it, generic otherwise.
    Auto,
}

/// Which traffic a ban drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BanScope {
    /// Every packet from a banned source.
    All,
    /// Only its packets to the SIP ports.
    Sip,
}

/// Options of `attach` (also its command-line arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct AttachOptions {
    /// Where the program runs: in the driver, in the generic path, or native when the driver
    /// supports it (an attached program's mode is kept).
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// UDP ports steered to the gateway (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "5060")]
    pub ports: Vec<u16>,
    /// Flood guard: packets per second allowed per source on the SIP ports (per CPU); 0 = off.
    #[arg(long, default_value_t = 0, value_name = "PPS")]
    pub flood_rate: u32,
    /// Flood guard: burst size in packets [default: one second's worth of --flood-rate].
    #[arg(long, value_name = "PACKETS")]
    pub flood_burst: Option<u32>,
    /// What a ban drops: every packet of the source, or only its SIP-port packets.
    #[arg(long, value_enum, default_value_t = BanScope::All)]
    pub ban_scope: BanScope,
    /// Send IP fragments to the AF_XDP sockets instead of the kernel stack.
    #[arg(long)]
    pub fragments_to_xsk: bool,
    /// Replace an XDP program that is not ours.
    #[arg(long)]
    pub force: bool,
    /// Mount the BPF filesystem on /sys/fs/bpf if it is not mounted.
    #[arg(long)]
    pub mount_bpffs: bool,
}

impl AttachOptions {
    fn config(&self) -> Result<XdpConfig, Error> {
        let mut flags = 0;
        if self.ban_scope == BanScope::Sip {
            flags |= config_flags::BAN_SIP_ONLY;
        }
        if self.fragments_to_xsk {
            flags |= config_flags::FRAGMENTS_TO_XSK;
        }
        let burst = self.flood_burst.unwrap_or(self.flood_rate);
        if self.flood_rate > 0 {
            flags |= config_flags::FLOOD_GUARD;
            if burst == 0 {
                return Err(Error::Invalid(
                    "--flood-burst must be at least 1 when --flood-rate is set".to_owned(),
                ));
            }
        } else if self.flood_burst.is_some() {
            return Err(Error::Invalid(
                "--flood-burst needs --flood-rate (the flood guard is off without a rate)"
                    .to_owned(),
            ));
        }
        Ok(XdpConfig {
            flags,
            flood_rate_pps: self.flood_rate,
            flood_burst: if self.flood_rate > 0 { burst } else { 0 },
        })
    }

    fn ports(&self) -> Result<Vec<u16>, Error> {
        let mut ports = self.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            return Err(Error::Invalid("--ports needs at least one port".to_owned()));
        }
        if ports.contains(&0) {
            return Err(Error::Invalid(
                "--ports: port 0 is not a valid UDP port".to_owned(),
            ));
        }
        if ports.len() > MAX_PORTS {
            return Err(Error::Invalid(format!(
                "--ports: {} ports given, at most {MAX_PORTS} are supported",
                ports.len()
            )));
        }
        Ok(ports)
    }
}

/// The flood guard and ban settings in force.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConfigView {
    /// What bans drop.
    pub ban_scope: BanScope,
    /// Flood guard rate, 0 = off.
    pub flood_rate_pps: u32,
    /// Flood guard burst.
    pub flood_burst: u32,
    /// Fragments go to the AF_XDP sockets.
    pub fragments_to_xsk: bool,
}

impl From<XdpConfig> for ConfigView {
    fn from(c: XdpConfig) -> ConfigView {
        ConfigView {
            ban_scope: if c.flags & config_flags::BAN_SIP_ONLY != 0 {
                BanScope::Sip
            } else {
                BanScope::All
            },
            flood_rate_pps: if c.flags & config_flags::FLOOD_GUARD != 0 {
                c.flood_rate_pps
            } else {
                0
            },
            flood_burst: if c.flags & config_flags::FLOOD_GUARD != 0 {
                c.flood_burst
            } else {
                0
            },
            fragments_to_xsk: c.flags & config_flags::FRAGMENTS_TO_XSK != 0,
        }
    }
}

/// One pinned object.
#[derive(Debug, Clone, Serialize)]
pub struct Pinned {
    /// Map or program name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Whether it exists.
    pub present: bool,
}

/// What `status` (and `attach`) report.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The interface.
    pub iface: String,
    /// Its index.
    pub ifindex: i32,
    /// Whether an XDP program is attached.
    pub attached: bool,
    /// Whether the attached program is the one pinned in our pin directory.
    pub ours: bool,
    /// The attached program's id.
    pub prog_id: Option<u32>,
    /// The attached program's name.
    pub prog_name: Option<String>,
    /// `native`, `generic`, `offload` or `multi`.
    pub mode: Option<&'static str>,
    /// The pin directory.
    pub pin_dir: PathBuf,
    /// The pinned program and maps.
    pub pinned: Vec<Pinned>,
    /// SIP ports (from the pinned map).
    pub ports: Vec<u16>,
    /// Configuration (from the pinned map).
    pub config: Option<ConfigView>,
    /// Bans in force (from the pinned map).
    pub bans_active: Option<usize>,
}

struct Attached {
    id: u32,
    mode: u8,
}

fn mode_name(m: u8) -> &'static str {
    match u32::from(m) {
        libbpf_sys::XDP_ATTACHED_DRV => "native",
        libbpf_sys::XDP_ATTACHED_SKB => "generic",
        libbpf_sys::XDP_ATTACHED_HW => "offload",
        libbpf_sys::XDP_ATTACHED_MULTI => "multi",
        _ => "none",
    }
}

fn mode_flags(m: u8) -> XdpFlags {
    match u32::from(m) {
        libbpf_sys::XDP_ATTACHED_SKB => XdpFlags::SKB_MODE,
        libbpf_sys::XDP_ATTACHED_HW => XdpFlags::HW_MODE,
        _ => XdpFlags::DRV_MODE,
    }
}

fn query(sock: &OwnedFd, iface: &str, ifindex: i32) -> Result<Option<Attached>, Error> {
    let opts = Xdp::new(sock.as_fd())
        .query(ifindex, XdpFlags::NONE)
        .map_err(bpf(format!("querying the XDP program of {iface}")))?;
    Ok((opts.prog_id != 0).then_some(Attached {
        id: opts.prog_id,
        mode: opts.attach_mode,
    }))
}

fn program_name(id: u32) -> String {
    ProgInfoIter::default()
        .find(|p| p.id == id)
        .map(|p| p.name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "?".to_owned())
}

/// The id of the program pinned in our pin directory, if any.
fn pinned_program_id(t: &Target) -> Option<u32> {
    let path = t.path(PROGRAM_PIN);
    let fd = Program::fd_from_pinned_path(&path).ok()?;
    Program::id_from_fd(fd.as_fd()).ok()
}

fn remove_pin(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            what: format!("removing {}", path.display()),
            source,
        }),
    }
}

/// Load the program (reusing pinned maps), configure it and attach it to the interface.
pub fn attach(t: &Target, o: &AttachOptions) -> Result<Status, Error> {
    sys::require_privileges("attach an XDP program")?;
    let config = o.config()?;
    let ports = o.ports()?;
    let sock = sys::control_socket()?;
    let ifindex = sys::ifindex(&sock, &t.iface)?;
    sys::ensure_bpffs(&t.pin_root, o.mount_bpffs)?;

    let current = query(&sock, &t.iface, ifindex)?;
    let ours = pinned_program_id(t);
    if let Some(cur) = &current {
        if Some(cur.id) != ours && !o.force {
            return Err(Error::OtherProgram {
                iface: t.iface.clone(),
                id: cur.id,
                name: program_name(cur.id),
                mode: mode_name(cur.mode),
                pin: t.path(PROGRAM_PIN),
            });
        }
    }

    let dir = t.dir();
    fs::create_dir_all(&dir).map_err(|source| Error::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    let mut obj = MaybeUninit::uninit();
    let open = open_skel(&mut obj, Some(&dir))?;
    let mut skel = open.load().map_err(bpf(format!(
        "loading the XDP program and creating or reusing its maps in {} (a map pinned by an \
         incompatible version is refused: `sipgw-loader detach --purge` removes them)",
        dir.display()
    )))?;

    skel.maps
        .config
        .update(&0u32.to_ne_bytes(), &config.to_bytes(), MapFlags::ANY)
        .map_err(bpf("writing the config map"))?;
    let old_ports: Vec<Vec<u8>> = skel.maps.sip_ports.keys().collect();
    for k in old_ports {
        let port = u16::from_ne_bytes([k[0], k[1]]);
        if !ports.contains(&port) {
            skel.maps
                .sip_ports
                .delete(&k)
                .map_err(bpf("updating the sip_ports map"))?;
        }
    }
    for p in &ports {
        skel.maps
            .sip_ports
            .update(&p.to_ne_bytes(), &[1], MapFlags::ANY)
            .map_err(bpf("updating the sip_ports map"))?;
    }

    let prog = &mut skel.progs.sipgw_xdp;
    let xdp = Xdp::new(prog.as_fd());
    let want = match o.mode {
        Mode::Native => Some(XdpFlags::DRV_MODE.bits()),
        Mode::Generic => Some(XdpFlags::SKB_MODE.bits()),
        // Auto keeps the mode of a program already attached (no gap, no mode change).
        Mode::Auto => current.as_ref().map(|c| mode_flags(c.mode).bits()),
    };
    // A program attached in another mode must go first: the kernel keeps one per mode.
    if let Some(cur) = &current {
        let cur_flags = mode_flags(cur.mode);
        if want != Some(cur_flags.bits()) {
            xdp.detach(ifindex, cur_flags).map_err(bpf(format!(
                "detaching program {} from {}",
                cur.id, t.iface
            )))?;
        }
    }
    match want {
        Some(bits) if bits == XdpFlags::DRV_MODE.bits() => xdp
            .attach(ifindex, XdpFlags::DRV_MODE)
            .map_err(|source| Error::NativeUnsupported {
                iface: t.iface.clone(),
                source,
            })?,
        Some(_) => xdp
            .attach(ifindex, XdpFlags::SKB_MODE)
            .map_err(bpf(format!("attaching to {} in generic mode", t.iface)))?,
        None => {
            if xdp.attach(ifindex, XdpFlags::DRV_MODE).is_err() {
                xdp.attach(ifindex, XdpFlags::SKB_MODE)
                    .map_err(bpf(format!(
                        "attaching to {} (native and generic)",
                        t.iface
                    )))?;
            }
        }
    }
    let prog_path = t.path(PROGRAM_PIN);
    remove_pin(&prog_path)?;
    prog.pin(&prog_path).map_err(bpf(format!(
        "pinning the program at {}",
        prog_path.display()
    )))?;
    drop(skel);
    status(t)
}

/// What `detach` did.
#[derive(Debug, Clone, Serialize)]
pub struct Detached {
    /// The interface.
    pub iface: String,
    /// The program detached.
    pub prog_id: u32,
    /// Its mode.
    pub mode: &'static str,
    /// Whether the maps (bans, counters) were removed too.
    pub purged: bool,
}

/// Detach the program; keep the pinned maps (bans survive) unless `purge`.
pub fn detach(t: &Target, force: bool, purge: bool) -> Result<Detached, Error> {
    sys::require_privileges("detach an XDP program")?;
    let sock = sys::control_socket()?;
    let ifindex = sys::ifindex(&sock, &t.iface)?;
    let current = query(&sock, &t.iface, ifindex)?.ok_or_else(|| Error::NothingAttached {
        iface: t.iface.clone(),
    })?;
    if Some(current.id) != pinned_program_id(t) && !force {
        return Err(Error::OtherProgram {
            iface: t.iface.clone(),
            id: current.id,
            name: program_name(current.id),
            mode: mode_name(current.mode),
            pin: t.path(PROGRAM_PIN),
        });
    }
    Xdp::new(sock.as_fd())
        .detach(ifindex, mode_flags(current.mode))
        .map_err(bpf(format!("detaching from {}", t.iface)))?;
    remove_pin(&t.path(PROGRAM_PIN))?;
    if purge {
        for m in MAP_NAMES {
            remove_pin(&t.path(m))?;
        }
        match fs::remove_dir(t.dir()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    what: format!("removing {}", t.dir().display()),
                    source,
                })
            }
        }
    }
    Ok(Detached {
        iface: t.iface.clone(),
        prog_id: current.id,
        mode: mode_name(current.mode),
        purged: purge,
    })
}

/// The attachment, the pinned objects and what the maps say.
pub fn status(t: &Target) -> Result<Status, Error> {
    sys::require_privileges("read XDP programs and pinned maps")?;
    let sock = sys::control_socket()?;
    let ifindex = sys::ifindex(&sock, &t.iface)?;
    let current = query(&sock, &t.iface, ifindex)?;
    let ours_id = pinned_program_id(t);
    let pinned = std::iter::once(PROGRAM_PIN)
        .chain(MAP_NAMES)
        .map(|n| Pinned {
            name: n.to_owned(),
            path: t.path(n),
            present: t.path(n).exists(),
        })
        .collect();
    let mut ports = Vec::new();
    let mut config = None;
    let mut bans_active = None;
    if t.path("config").exists() {
        let m = t.map("config")?;
        if let Some(v) = m
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf("reading the config map"))?
        {
            config = Some(XdpConfig::from_bytes(&v)?.into());
        }
        let m = t.map("sip_ports")?;
        ports = m
            .keys()
            .filter_map(|k| k.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])))
            .collect();
        ports.sort_unstable();
        // Pins of an older version may lack a map (attach creates it): no count then.
        if MAP_NAMES.iter().all(|m| t.path(m).exists()) {
            bans_active = Some(ban_list(t)?.len());
        }
    }
    Ok(Status {
        iface: t.iface.clone(),
        ifindex,
        attached: current.is_some(),
        ours: current.as_ref().is_some_and(|c| Some(c.id) == ours_id),
        prog_id: current.as_ref().map(|c| c.id),
        prog_name: current.as_ref().map(|c| program_name(c.id)),
        mode: current.as_ref().map(|c| mode_name(c.mode)),
        pin_dir: t.dir(),
        pinned,
        ports,
        config,
        bans_active,
    })
}

/// A sample of both counter sets, summed over CPUs (XDP) and workers (gateway).
#[derive(Debug, Clone)]
pub struct Counters {
    /// `(name, value)` of `struct sipgw_xdp_counters`.
    pub xdp: Vec<(String, u64)>,
    /// `(name, value)` of `struct sipgw_gateway_counters`.
    pub gateway: Vec<(String, u64)>,
}

/// Read the counters maps.
pub fn counters(t: &Target) -> Result<Counters, Error> {
    sys::require_privileges("read pinned maps")?;
    let xl = Layout::of(XDP_COUNTERS)?;
    let gl = Layout::of(GATEWAY_COUNTERS)?;
    let x = read_percpu(&t.map("counters")?, &xl)?;
    let g = read_slots(&t.map("gw_counters")?, &gl, MAX_WORKERS)?;
    let zip = |l: &Layout, v: Vec<u64>| l.names().map(str::to_owned).zip(v).collect();
    Ok(Counters {
        xdp: zip(&xl, x),
        gateway: zip(&gl, g),
    })
}

/// One ban, as `ban list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BanEntry {
    /// The banned address or network, in CIDR notation (`198.18.0.0/24`, `2001:db8::9/128`).
    pub cidr: String,
    /// The network address (the address itself for a single address).
    pub addr: std::net::IpAddr,
    /// The prefix length (32 or 128 for a single address).
    pub prefix: u8,
    /// Why.
    pub reason: String,
    /// Seconds until it ends; `None` = never.
    pub expires_in_secs: Option<u64>,
    /// Seconds since it was written.
    pub age_secs: u64,
    /// Packets the XDP program dropped because of it.
    pub dropped: u64,
}

fn entry(prefix: BanPrefix, ban: &Ban, now: u64) -> BanEntry {
    BanEntry {
        cidr: prefix.to_string(),
        addr: prefix.addr(),
        prefix: prefix.prefix_len(),
        reason: ban.reason.to_string(),
        expires_in_secs: (ban.expires_ns != 0)
            .then(|| (ban.expires_ns.saturating_sub(now)).div_ceil(1_000_000_000)),
        age_secs: now.saturating_sub(ban.created_ns) / 1_000_000_000,
        dropped: ban.dropped,
    }
}

/// Ban `prefix` (one address, or a network: the XDP program drops every source inside it) for
/// `ttl` (`None` = until removed).
pub fn ban_add(
    t: &Target,
    prefix: BanPrefix,
    ttl: Option<Duration>,
    reason: BanReason,
) -> Result<BanEntry, Error> {
    sys::require_privileges("write the ban map")?;
    let maps = t.bans()?;
    let now = monotonic_ns();
    let ban = Ban {
        expires_ns: ttl.map_or(0, |d| now + d.as_nanos() as u64),
        created_ns: now,
        dropped: 0,
        reason,
    };
    maps.put(&prefix, &ban)?;
    Ok(entry(prefix, &ban, now))
}

/// Remove the ban of exactly `prefix` (a ban of a network containing it stays).
pub fn ban_del(t: &Target, prefix: BanPrefix) -> Result<(), Error> {
    sys::require_privileges("write the ban map")?;
    let maps = t.bans()?;
    let now = monotonic_ns();
    match maps.get(&prefix)? {
        Some(b) if b.active_at(now) => {
            maps.remove(&prefix)?;
            Ok(())
        }
        _ => Err(Error::NotBanned {
            ban: prefix,
            iface: t.iface.clone(),
        }),
    }
}

/// The bans in force (addresses and networks), oldest first (expired entries, which the XDP
/// program ignores, are left out).
pub fn ban_list(t: &Target) -> Result<Vec<BanEntry>, Error> {
    sys::require_privileges("read the ban map")?;
    let maps = t.bans()?;
    let now = monotonic_ns();
    let mut out: Vec<BanEntry> = maps
        .entries()?
        .into_iter()
        .filter(|(_, b)| b.active_at(now))
        .map(|(p, b)| entry(p, &b, now))
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.age_secs));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> AttachOptions {
        AttachOptions {
            mode: Mode::Auto,
            ports: vec![5060],
            flood_rate: 0,
            flood_burst: None,
            ban_scope: BanScope::All,
            fragments_to_xsk: false,
            force: false,
            mount_bpffs: false,
        }
    }

    #[test]
    fn config_from_options() {
        assert_eq!(opts().config().unwrap(), XdpConfig::default());
        let c = AttachOptions {
            flood_rate: 50,
            ban_scope: BanScope::Sip,
            fragments_to_xsk: true,
            ..opts()
        }
        .config()
        .unwrap();
        assert_eq!(
            c.flags,
            config_flags::FLOOD_GUARD | config_flags::BAN_SIP_ONLY | config_flags::FRAGMENTS_TO_XSK
        );
        assert_eq!((c.flood_rate_pps, c.flood_burst), (50, 50));
        let v = ConfigView::from(c);
        assert_eq!(v.ban_scope, BanScope::Sip);
        assert_eq!((v.flood_rate_pps, v.flood_burst), (50, 50));
        let c = AttachOptions {
            flood_rate: 50,
            flood_burst: Some(7),
            ..opts()
        }
        .config()
        .unwrap();
        assert_eq!(c.flood_burst, 7);
        for (bad, msg) in [
            (
                AttachOptions {
                    flood_rate: 5,
                    flood_burst: Some(0),
                    ..opts()
                },
                "at least 1",
            ),
            (
                AttachOptions {
                    flood_burst: Some(3),
                    ..opts()
                },
                "needs --flood-rate",
            ),
        ] {
            let e = bad.config().unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
        }
    }

    #[test]
    fn ports_are_deduplicated_and_checked() {
        let o = AttachOptions {
            ports: vec![5080, 5060, 5080],
            ..opts()
        };
        assert_eq!(o.ports().unwrap(), vec![5060, 5080]);
        let too_many = AttachOptions {
            ports: (1..=65).collect(),
            ..opts()
        };
        assert!(too_many
            .ports()
            .unwrap_err()
            .to_string()
            .contains("at most 64"));
        let none = AttachOptions {
            ports: vec![],
            ..opts()
        };
        assert!(none.ports().is_err());
    }
}
