//! sipgw's XDP program and what userspace needs to drive it.
//!
//! The program is C (`src/bpf/sipgw.bpf.c`, headers by concern beside it), compiled by
//! `build.rs` with clang into a BPF object and a libbpf-rs skeleton ([`SipgwSkelBuilder`]).
//! This crate is the one place that knows the program's maps and the byte layout of their keys
//! and values:
//!
//! - [`SourceKey`]: the ban and flood maps' key (IPv4 as an IPv4-mapped IPv6 address);
//! - [`Ban`], [`BanReason`]: the ban map's value;
//! - [`XdpConfig`]: the `config` map's single entry (flags, flood-guard rate);
//! - [`Layout`]: the named `u64` fields of a counters struct, read from the object's BTF, so
//!   the counters' names exist once, in `sipgw_shared.h`, exactly as `bpftool` prints them.
//!
//! The sizes the Rust encoders assume are checked against the BTF by the tests.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use std::mem::MaybeUninit;

use libbpf_rs::btf::types::{MemberAttr, Struct};
use libbpf_rs::btf::Btf;
use libbpf_rs::skel::SkelBuilder as _;
use libbpf_rs::{AsRawLibbpf as _, MapCore, MapFlags, OpenObject};

/// The generated skeleton. It is libbpf-cargo's output: it calls libbpf's C API.
#[allow(
    unsafe_code,
    missing_docs,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/sipgw.skel.rs"));
}
pub use skel::*;

/// The compiled BPF object (what the skeleton embeds), for BTF queries.
pub const OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sipgw.bpf.o"));

/// The program's name (its function name in `sipgw.bpf.c`).
pub const PROGRAM_NAME: &str = "sipgw_xdp";

/// Every map of the program, as pinned by name in the pin directory.
pub const MAP_NAMES: [&str; 7] = [
    "bans",
    "flood",
    "sip_ports",
    "config",
    "xsks",
    "counters",
    "gw_counters",
];

/// Where the program itself is pinned in the pin directory (beside the maps).
pub const PROGRAM_PIN: &str = "prog";

/// The default root under which each interface gets its pin directory.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/sipgw";

/// Slots of the `gw_counters` map (one per gateway worker); `SIPGW_MAX_WORKERS` in `consts.h`.
pub const MAX_WORKERS: u32 = 64;

/// Slots of the `xsks` map (one per RX queue); `SIPGW_MAX_QUEUES` in `consts.h`.
pub const MAX_QUEUES: u32 = 64;

/// Entries of the `sip_ports` map; `SIPGW_MAX_PORTS` in `consts.h`.
pub const MAX_PORTS: usize = 64;

/// The pin directory of one interface: `<root>/<ifname>`.
pub fn pin_dir(root: &Path, ifname: &str) -> PathBuf {
    root.join(ifname)
}

/// `SIPGW_F_*` bits of [`XdpConfig::flags`] (`sipgw_shared.h`).
pub mod config_flags {
    /// Per-source token bucket on the SIP ports.
    pub const FLOOD_GUARD: u32 = 1 << 0;
    /// Bans drop only SIP-port traffic (default: every packet from a banned source).
    pub const BAN_SIP_ONLY: u32 = 1 << 1;
    /// IP fragments go to the AF_XDP sockets too (default: to the kernel stack).
    pub const FRAGMENTS_TO_XSK: u32 = 1 << 2;
}

/// Errors of this crate's decoders and BTF queries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A map value had an unexpected size.
    #[error("{what}: expected {expected} bytes, got {got}")]
    Size {
        /// What was decoded.
        what: &'static str,
        /// The size the layout says.
        expected: usize,
        /// The size found.
        got: usize,
    },
    /// The BPF object has no BTF, or not the struct asked for.
    #[error("the BPF object's BTF has no struct `{0}`")]
    NoStruct(String),
    /// The struct has a member that is not a plain `__u64`.
    #[error("struct `{strukt}`: member `{member}` is not a plain __u64 field")]
    NotU64 {
        /// The struct.
        strukt: String,
        /// The member.
        member: String,
    },
    /// libbpf failed to read the object.
    #[error("reading the BPF object's BTF failed")]
    Btf(#[source] libbpf_rs::Error),
    /// A map operation failed.
    #[error("{what} failed")]
    Map {
        /// The operation and the map.
        what: String,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// A ban reason that is not one of the known names.
    #[error("unknown ban reason `{0}` (expected manual, suspended, lockout or flood)")]
    Reason(String),
}

/// The key of the `bans` and `flood` maps (`struct sipgw_addr`): 16 bytes, IPv4 as
/// `::ffff:a.b.c.d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey(pub [u8; 16]);

impl SourceKey {
    /// Size of the key in the map.
    pub const SIZE: usize = 16;

    /// The address back (IPv4-mapped addresses as IPv4).
    pub fn addr(&self) -> IpAddr {
        Ipv6Addr::from(self.0).to_canonical()
    }

    /// From the raw key bytes.
    pub fn from_bytes(b: &[u8]) -> Result<SourceKey, Error> {
        let a: [u8; 16] = b.try_into().map_err(|_| Error::Size {
            what: "struct sipgw_addr",
            expected: Self::SIZE,
            got: b.len(),
        })?;
        Ok(SourceKey(a))
    }
}

impl From<IpAddr> for SourceKey {
    fn from(a: IpAddr) -> SourceKey {
        SourceKey(match a {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        })
    }
}

/// Why a source is banned (`enum sipgw_ban_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanReason {
    /// `sipgw-loader ban add`.
    Manual,
    /// The gateway suspended the terminal this source used.
    Suspended,
    /// The gateway locked the source out.
    Lockout,
    /// A flood detected by the gateway.
    Flood,
    /// A number this version does not know (written by a newer version).
    Other(u32),
}

impl BanReason {
    /// The number stored in the map.
    pub fn code(self) -> u32 {
        match self {
            BanReason::Manual => 1,
            BanReason::Suspended => 2,
            BanReason::Lockout => 3,
            BanReason::Flood => 4,
            BanReason::Other(n) => n,
        }
    }

    /// From the number stored in the map.
    pub fn from_code(n: u32) -> BanReason {
        match n {
            1 => BanReason::Manual,
            2 => BanReason::Suspended,
            3 => BanReason::Lockout,
            4 => BanReason::Flood,
            n => BanReason::Other(n),
        }
    }
}

impl std::fmt::Display for BanReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BanReason::Manual => f.write_str("manual"),
            BanReason::Suspended => f.write_str("suspended"),
            BanReason::Lockout => f.write_str("lockout"),
            BanReason::Flood => f.write_str("flood"),
            BanReason::Other(n) => write!(f, "reason-{n}"),
        }
    }
}

impl FromStr for BanReason {
    type Err = Error;
    fn from_str(s: &str) -> Result<BanReason, Error> {
        match s {
            "manual" => Ok(BanReason::Manual),
            "suspended" => Ok(BanReason::Suspended),
            "lockout" => Ok(BanReason::Lockout),
            "flood" => Ok(BanReason::Flood),
            _ => Err(Error::Reason(s.to_owned())),
        }
    }
}

/// The value of the `bans` map (`struct sipgw_ban`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// `CLOCK_MONOTONIC` nanoseconds when the ban ends; 0 = never.
    pub expires_ns: u64,
    /// `CLOCK_MONOTONIC` nanoseconds when it was written.
    pub created_ns: u64,
    /// Packets the XDP program dropped because of it.
    pub dropped: u64,
    /// Why.
    pub reason: BanReason,
}

impl Ban {
    /// Size of the value in the map.
    pub const SIZE: usize = 32;

    /// The map value's bytes.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.expires_ns.to_ne_bytes());
        b[8..16].copy_from_slice(&self.created_ns.to_ne_bytes());
        b[16..24].copy_from_slice(&self.dropped.to_ne_bytes());
        b[24..28].copy_from_slice(&self.reason.code().to_ne_bytes());
        b
    }

    /// From the map value's bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Ban, Error> {
        if b.len() != Self::SIZE {
            return Err(Error::Size {
                what: "struct sipgw_ban",
                expected: Self::SIZE,
                got: b.len(),
            });
        }
        let u64_at = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Ok(Ban {
            expires_ns: u64_at(0),
            created_ns: u64_at(8),
            dropped: u64_at(16),
            reason: BanReason::from_code(u32::from_ne_bytes(
                b[24..28].try_into().expect("4 bytes"),
            )),
        })
    }

    /// Whether the XDP program would still drop with this ban at monotonic time `now_ns`.
    pub fn active_at(&self, now_ns: u64) -> bool {
        self.expires_ns == 0 || self.expires_ns > now_ns
    }
}

/// The `config` map's single entry (`struct sipgw_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XdpConfig {
    /// [`config_flags`] bits.
    pub flags: u32,
    /// Flood guard: packets per second per source (and per CPU).
    pub flood_rate_pps: u32,
    /// Flood guard: bucket size in packets.
    pub flood_burst: u32,
}

impl XdpConfig {
    /// Size of the value in the map.
    pub const SIZE: usize = 24;

    /// The map value's bytes (with `flood_refill_ns` derived from rate and burst).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let refill_ns = if self.flood_rate_pps == 0 {
            0
        } else {
            u64::from(self.flood_burst) * 1_000_000_000 / u64::from(self.flood_rate_pps)
        };
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.flags.to_ne_bytes());
        b[4..8].copy_from_slice(&self.flood_rate_pps.to_ne_bytes());
        b[8..12].copy_from_slice(&self.flood_burst.to_ne_bytes());
        b[16..24].copy_from_slice(&refill_ns.to_ne_bytes());
        b
    }

    /// From the map value's bytes.
    pub fn from_bytes(b: &[u8]) -> Result<XdpConfig, Error> {
        if b.len() != Self::SIZE {
            return Err(Error::Size {
                what: "struct sipgw_config",
                expected: Self::SIZE,
                got: b.len(),
            });
        }
        let u32_at = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Ok(XdpConfig {
            flags: u32_at(0),
            flood_rate_pps: u32_at(4),
            flood_burst: u32_at(8),
        })
    }
}

/// Open the skeleton. With `pin_dir`, every map is pinned by name in it (existing pins are
/// reused, so bans and counters survive a reload); with `None`, nothing is pinned (tests).
pub fn open_skel<'obj>(
    object: &'obj mut MaybeUninit<OpenObject>,
    pin_dir: Option<&Path>,
) -> Result<OpenSipgwSkel<'obj>, Error> {
    let map_err = |what: String| move |source| Error::Map { what, source };
    let mut open = SipgwSkelBuilder::default()
        .open(object)
        .map_err(map_err("opening the BPF object".to_owned()))?;
    let maps = [
        &mut open.maps.bans,
        &mut open.maps.flood,
        &mut open.maps.sip_ports,
        &mut open.maps.config,
        &mut open.maps.xsks,
        &mut open.maps.counters,
        &mut open.maps.gw_counters,
    ];
    for map in maps {
        match pin_dir {
            Some(dir) => {
                let path = dir.join(map.name());
                map.set_pin_path(&path)
                    .map_err(map_err(format!("setting pin path {}", path.display())))?;
            }
            None => unpin(map),
        }
    }
    Ok(open)
}

/// Clear a map's pin path so that loading neither reuses nor creates a pin.
fn unpin(map: &mut libbpf_rs::OpenMapMut<'_>) {
    #[allow(unsafe_code)]
    // SAFETY: the pointer is the live `struct bpf_map` of an opened, not yet loaded object
    // (borrowed mutably here); libbpf documents a NULL path as "no pinning" and frees the old
    // path itself.
    unsafe {
        libbpf_sys::bpf_map__set_pin_path(map.as_libbpf_object().as_ptr(), std::ptr::null());
    }
}

/// Sum a per-CPU counters map's entry 0 over every CPU, field by field.
pub fn read_percpu(map: &impl MapCore, layout: &Layout) -> Result<Vec<u64>, Error> {
    let values = map
        .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
        .map_err(|source| Error::Map {
            what: format!("reading {}", map.name().to_string_lossy()),
            source,
        })?
        .unwrap_or_default();
    let mut sums = vec![0; layout.fields.len()];
    for v in &values {
        layout.accumulate(v, &mut sums)?;
    }
    Ok(sums)
}

/// Sum the first `slots` entries of an array counters map, field by field.
pub fn read_slots(map: &impl MapCore, layout: &Layout, slots: u32) -> Result<Vec<u64>, Error> {
    let mut sums = vec![0; layout.fields.len()];
    for i in 0..slots {
        let v = map
            .lookup(&i.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| Error::Map {
                what: format!("reading {}[{i}]", map.name().to_string_lossy()),
                source,
            })?;
        if let Some(v) = v {
            layout.accumulate(&v, &mut sums)?;
        }
    }
    Ok(sums)
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `bpf_ktime_get_ns`, hence of ban expiries.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// The `u64` fields of a counters struct, by name and byte offset, read from BTF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The struct's name.
    pub name: String,
    /// `(field name, byte offset)` in declaration order.
    pub fields: Vec<(String, usize)>,
    /// The struct's size in bytes.
    pub size: usize,
}

/// The struct of the XDP program's counters (the `counters` map).
pub const XDP_COUNTERS: &str = "sipgw_xdp_counters";
/// The struct of the gateway's counters (the `gw_counters` map).
pub const GATEWAY_COUNTERS: &str = "sipgw_gateway_counters";

impl Layout {
    /// The layout of struct `name` in the program's BTF; every member must be a `__u64`.
    pub fn of(name: &str) -> Result<Layout, Error> {
        let btf = Btf::from_raw("sipgw", OBJECT)
            .map_err(Error::Btf)?
            .ok_or_else(|| Error::NoStruct(name.to_owned()))?;
        let s: Struct<'_> = btf
            .type_by_name(name)
            .ok_or_else(|| Error::NoStruct(name.to_owned()))?;
        let size = libbpf_rs::btf::HasSize::size(&s);
        let mut fields = Vec::with_capacity(s.len());
        for m in s.iter() {
            let member = m
                .name
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ty = btf.type_by_id::<libbpf_rs::btf::BtfType<'_>>(m.ty);
            let is_u64 = ty
                .map(|t| t.skip_mods_and_typedefs())
                .and_then(|t| libbpf_rs::btf::types::Int::try_from(t).ok())
                .is_some_and(|i| libbpf_rs::btf::HasSize::size(&i) == 8);
            match m.attr {
                MemberAttr::Normal { offset } if is_u64 && offset % 64 == 0 => {
                    fields.push((member, offset as usize / 8));
                }
                _ => {
                    return Err(Error::NotU64 {
                        strukt: name.to_owned(),
                        member,
                    })
                }
            }
        }
        Ok(Layout {
            name: name.to_owned(),
            fields,
            size,
        })
    }

    /// The field names in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(n, _)| n.as_str())
    }

    /// Add the fields of one map value (`bytes`) to `sums` (one per field).
    pub fn accumulate(&self, bytes: &[u8], sums: &mut [u64]) -> Result<(), Error> {
        if bytes.len() < self.size || sums.len() != self.fields.len() {
            return Err(Error::Size {
                what: "counters value",
                expected: self.size,
                got: bytes.len(),
            });
        }
        for ((_, off), sum) in self.fields.iter().zip(sums.iter_mut()) {
            let v = u64::from_ne_bytes(bytes[*off..*off + 8].try_into().expect("8 bytes"));
            *sum = sum.wrapping_add(v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_key_round_trips() {
        for a in ["198.18.0.1", "2001:db8::1", "::1", "0.0.0.0"] {
            let addr: IpAddr = a.parse().unwrap();
            let k = SourceKey::from(addr);
            assert_eq!(k.addr(), addr, "{a}");
            assert_eq!(SourceKey::from_bytes(&k.0).unwrap(), k);
        }
        let v4 = SourceKey::from("198.18.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(&v4.0[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&v4.0[12..], &[198, 18, 0, 1]);
        assert!(SourceKey::from_bytes(&[0; 4]).is_err());
    }

    #[test]
    fn ban_round_trips_and_expires() {
        let b = Ban {
            expires_ns: 100,
            created_ns: 7,
            dropped: 3,
            reason: BanReason::Lockout,
        };
        assert_eq!(Ban::from_bytes(&b.to_bytes()).unwrap(), b);
        assert!(b.active_at(99));
        assert!(!b.active_at(100));
        let never = Ban { expires_ns: 0, ..b };
        assert!(never.active_at(u64::MAX));
        assert!(Ban::from_bytes(&[0; 31]).is_err());
    }

    #[test]
    fn reasons_parse_and_print() {
        for r in ["manual", "suspended", "lockout", "flood"] {
            let reason: BanReason = r.parse().unwrap();
            assert_eq!(reason.to_string(), r);
            assert_eq!(BanReason::from_code(reason.code()), reason);
        }
        assert_eq!(BanReason::from_code(99).to_string(), "reason-99");
        let e = "angry".parse::<BanReason>().unwrap_err().to_string();
        assert!(e.contains("`angry`"), "{e}");
    }

    #[test]
    fn config_encodes_refill_time() {
        let c = XdpConfig {
            flags: config_flags::FLOOD_GUARD,
            flood_rate_pps: 50,
            flood_burst: 100,
        };
        let b = c.to_bytes();
        assert_eq!(XdpConfig::from_bytes(&b).unwrap(), c);
        assert_eq!(
            u64::from_ne_bytes(b[16..24].try_into().unwrap()),
            2_000_000_000
        );
        assert_eq!(XdpConfig::default().to_bytes(), [0; XdpConfig::SIZE]);
    }
}
