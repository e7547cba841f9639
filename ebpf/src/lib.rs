//! sipgw's XDP program and what userspace needs to drive it.
//!
//! The program is C (`src/bpf/sipgw.bpf.c`, headers by concern beside it), compiled by
//! `build.rs` with clang into a BPF object and a libbpf-rs skeleton ([`SipgwSkelBuilder`]).
//! This crate is the one place that knows the program's maps and the byte layout of their keys
//! and values:
//!
//! - [`SourceKey`]: the ban and flood maps' key (IPv4 as an IPv4-mapped IPv6 address);
//! - [`BanPrefix`]: a banned network (`198.18.0.0/24`, `2001:db8::/64`, or one address), the
//!   key of the `ban_prefixes` LPM trie;
//! - [`Ban`], [`BanReason`]: the value of both ban maps;
//! - [`ExactBans`], [`PrefixBans`], [`BanMaps`]: typed wrappers of the `bans` hash, the
//!   `ban_prefixes` trie, and of both as one table of bans by prefix (what `sipgw-loader ban`
//!   and the gateway use);
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
pub const MAP_NAMES: [&str; 8] = [
    "bans",
    "ban_prefixes",
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

/// Entries of the `ban_prefixes` trie; `SIPGW_MAX_BAN_PREFIXES` in `consts.h`.
pub const MAX_BAN_PREFIXES: u32 = 65536;

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
    #[error("unknown ban reason `{0}` (expected manual, suspended or lockout)")]
    Reason(String),
    /// Not an address or a network in CIDR notation, or one with host bits set.
    #[error("`{value}` is not a valid ban: {why}")]
    Prefix {
        /// What was given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
}

impl Error {
    fn map(what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> Error {
        let what = what.into();
        move |source| Error::Map { what, source }
    }
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
            BanReason::Other(n) => n,
        }
    }

    /// From the number stored in the map.
    pub fn from_code(n: u32) -> BanReason {
        match n {
            1 => BanReason::Manual,
            2 => BanReason::Suspended,
            3 => BanReason::Lockout,
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
            _ => Err(Error::Reason(s.to_owned())),
        }
    }
}

/// A banned network: an address and a prefix length in its own family (`/24` of IPv4 is 24),
/// host bits zero. A whole-address prefix (/32, /128) is one address: it lives in the exact
/// `bans` hash; shorter ones in the `ban_prefixes` trie. IPv4-mapped IPv6 addresses are taken
/// as IPv4 (`::ffff:198.18.0.0/120` is `198.18.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BanPrefix {
    addr: IpAddr,
    len: u8,
}

/// Size of `struct sipgw_prefix`.
const PREFIX_KEY_SIZE: usize = 20;

impl BanPrefix {
    /// The network `addr`/`len`; refuses a length beyond the family's width, a length of 0
    /// (it would ban the whole internet) and host bits set.
    pub fn new(addr: IpAddr, len: u8) -> Result<BanPrefix, Error> {
        let value = format!("{addr}/{len}");
        let (addr, len) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if len >= 96 => (IpAddr::V4(v4), len - 96),
                _ => (addr, len),
            },
            v4 => (v4, len),
        };
        let width = Self::width(addr);
        let bad = |why: String| Error::Prefix {
            value: value.clone(),
            why,
        };
        if len == 0 || len > width {
            return Err(bad(format!(
                "the prefix length must be 1 to {width} for {} (a bare address is /{width})",
                if addr.is_ipv4() { "IPv4" } else { "IPv6" }
            )));
        }
        let masked = Self::mask(addr, len);
        if masked != addr {
            return Err(bad(format!(
                "host bits are set past /{len} (the network is {masked}/{len})"
            )));
        }
        Ok(BanPrefix { addr, len })
    }

    /// One address (/32 or /128).
    pub fn host(addr: IpAddr) -> BanPrefix {
        let addr = addr.to_canonical();
        BanPrefix {
            addr,
            len: Self::width(addr),
        }
    }

    fn width(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// `addr` with the bits past `len` cleared.
    pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
        match addr {
            IpAddr::V4(a) => {
                let m = u32::MAX
                    .checked_shl(32 - u32::from(len.min(32)))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(len.min(128)))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & m).into())
            }
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length, in the address's family.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is one address (it lives in the exact `bans` map).
    pub fn is_host(&self) -> bool {
        self.len == Self::width(self.addr)
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && Self::mask(ip, self.len) == self.addr
    }

    /// The prefix length in the 16-byte key (IPv4 counts the 96 bits of `::ffff:0:0/96`).
    pub fn key_bits(&self) -> u32 {
        u32::from(self.len) + if self.addr.is_ipv4() { 96 } else { 0 }
    }

    /// The `struct sipgw_prefix` key: `prefixlen` (native endian, as the trie wants it), then
    /// the 16-byte address.
    pub fn to_key(&self) -> [u8; PREFIX_KEY_SIZE] {
        let mut k = [0u8; PREFIX_KEY_SIZE];
        k[0..4].copy_from_slice(&self.key_bits().to_ne_bytes());
        k[4..].copy_from_slice(&SourceKey::from(self.addr).0);
        k
    }

    /// From a `struct sipgw_prefix` key.
    pub fn from_key(b: &[u8]) -> Result<BanPrefix, Error> {
        if b.len() != PREFIX_KEY_SIZE {
            return Err(Error::Size {
                what: "struct sipgw_prefix",
                expected: PREFIX_KEY_SIZE,
                got: b.len(),
            });
        }
        let bits = u32::from_ne_bytes(b[0..4].try_into().expect("4 bytes"));
        let addr = SourceKey::from_bytes(&b[4..])?.addr();
        let len = match addr {
            IpAddr::V4(_) => bits.saturating_sub(96),
            IpAddr::V6(_) => bits,
        };
        BanPrefix::new(addr, u8::try_from(len).unwrap_or(u8::MAX))
    }
}

impl std::fmt::Display for BanPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for BanPrefix {
    type Err = Error;
    /// `ADDRESS` (one address) or `ADDRESS/LENGTH`.
    fn from_str(s: &str) -> Result<BanPrefix, Error> {
        let bad = |why: &str| Error::Prefix {
            value: s.to_owned(),
            why: why.to_owned(),
        };
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| bad("expected an IPv4 or IPv6 address, or ADDRESS/LENGTH"))?;
        match len {
            None => Ok(BanPrefix::host(addr)),
            Some(l) => {
                let len: u32 = l
                    .parse()
                    .map_err(|_| bad("the prefix length after `/` must be a number"))?;
                BanPrefix::new(addr, u8::try_from(len).unwrap_or(u8::MAX)).map_err(|e| match e {
                    Error::Prefix { why, .. } => Error::Prefix {
                        value: s.to_owned(),
                        why,
                    },
                    e => e,
                })
            }
        }
    }
}

/// Whether a libbpf error is the kernel's ENOENT (no such key).
fn not_found(e: &libbpf_rs::Error) -> bool {
    e.kind() == libbpf_rs::ErrorKind::NotFound
}

/// The `bans` map: single addresses (LRU hash keyed by [`SourceKey`]).
#[derive(Debug)]
pub struct ExactBans<M>(pub M);

impl<M: MapCore> ExactBans<M> {
    /// The ban of `addr`, if any (expired or not).
    pub fn get(&self, addr: IpAddr) -> Result<Option<Ban>, Error> {
        self.0
            .lookup(&SourceKey::from(addr).0, MapFlags::ANY)
            .map_err(Error::map(format!("looking up {addr} in the bans map")))?
            .map(|v| Ban::from_bytes(&v))
            .transpose()
    }

    /// Write the ban of `addr`.
    pub fn put(&self, addr: IpAddr, ban: &Ban) -> Result<(), Error> {
        self.0
            .update(
                &SourceKey::from(addr).0,
                &ban.to_bytes_with(128),
                MapFlags::ANY,
            )
            .map_err(Error::map(format!("banning {addr} in the bans map")))
    }

    /// Remove the ban of `addr`; `false` if there was none.
    pub fn remove(&self, addr: IpAddr) -> Result<bool, Error> {
        match self.0.delete(&SourceKey::from(addr).0) {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(Error::map(format!("removing {addr} from the bans map"))(e)),
        }
    }

    /// Every entry (an entry that vanishes while listing is skipped).
    pub fn entries(&self) -> Result<Vec<(IpAddr, Ban)>, Error> {
        let mut out = Vec::new();
        for k in self.0.keys() {
            let Some(v) = self
                .0
                .lookup(&k, MapFlags::ANY)
                .map_err(Error::map("reading the bans map"))?
            else {
                continue;
            };
            out.push((SourceKey::from_bytes(&k)?.addr(), Ban::from_bytes(&v)?));
        }
        Ok(out)
    }
}

/// The `ban_prefixes` map: networks shorter than one address (LPM trie keyed by
/// `struct sipgw_prefix`).
#[derive(Debug)]
pub struct PrefixBans<M>(pub M);

impl<M: MapCore> PrefixBans<M> {
    /// The longest-prefix match of `key` (its value and the matched entry's `prefixlen`, which
    /// the value carries: the kernel returns no key).
    fn longest(&self, key: &[u8], what: &str) -> Result<Option<(u32, Ban)>, Error> {
        let Some(v) = self
            .0
            .lookup(key, MapFlags::ANY)
            .map_err(Error::map(format!(
                "looking up {what} in the ban_prefixes map"
            )))?
        else {
            return Ok(None);
        };
        let ban = Ban::from_bytes(&v)?;
        Ok(Some((Ban::prefixlen_of(&v)?, ban)))
    }

    /// The longest banned prefix containing `ip` and its ban, if any.
    pub fn matching(&self, ip: IpAddr) -> Result<Option<(BanPrefix, Ban)>, Error> {
        let host = BanPrefix::host(ip);
        let mut key = host.to_key();
        key[0..4].copy_from_slice(&128u32.to_ne_bytes());
        let Some((bits, ban)) = self.longest(&key, &ip.to_string())? else {
            return Ok(None);
        };
        let len = if host.addr().is_ipv4() {
            bits.saturating_sub(96)
        } else {
            bits
        };
        let len = u8::try_from(len).unwrap_or(u8::MAX);
        let prefix = BanPrefix::new(BanPrefix::mask(host.addr(), len), len)?;
        Ok(Some((prefix, ban)))
    }

    /// The ban of exactly `prefix`, if any: one lookup. The longest match of `prefix` is
    /// `prefix` itself exactly when its entry exists; the value's `prefixlen` says which
    /// entry matched.
    pub fn get(&self, prefix: &BanPrefix) -> Result<Option<Ban>, Error> {
        Ok(self
            .longest(&prefix.to_key(), &prefix.to_string())?
            .filter(|(bits, _)| *bits == prefix.key_bits())
            .map(|(_, b)| b))
    }

    /// Write the ban of `prefix`. A full trie is pruned of expired entries once before giving
    /// up.
    pub fn put(&self, prefix: &BanPrefix, ban: &Ban) -> Result<(), Error> {
        let write = || {
            self.0.update(
                &prefix.to_key(),
                &ban.to_bytes_with(prefix.key_bits()),
                MapFlags::ANY,
            )
        };
        match write() {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::OutOfMemory || is_full(&e) => {
                if self.prune(monotonic_ns())? == 0 {
                    return Err(Error::map(format!(
                        "banning {prefix} in the ban_prefixes map (full: {MAX_BAN_PREFIXES}                          prefixes in force)"
                    ))(e));
                }
                write().map_err(Error::map(format!(
                    "banning {prefix} in the ban_prefixes map"
                )))
            }
            Err(e) => Err(Error::map(format!(
                "banning {prefix} in the ban_prefixes map"
            ))(e)),
        }
    }

    /// Remove the ban of exactly `prefix`; `false` if there was none.
    pub fn remove(&self, prefix: &BanPrefix) -> Result<bool, Error> {
        match self.0.delete(&prefix.to_key()) {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(Error::map(format!(
                "removing {prefix} from the ban_prefixes map"
            ))(e)),
        }
    }

    /// Every entry.
    pub fn entries(&self) -> Result<Vec<(BanPrefix, Ban)>, Error> {
        let mut out = Vec::new();
        for k in self.0.keys() {
            // The key exists, so the longest match of the key is the key's own entry.
            let Some(v) = self
                .0
                .lookup(&k, MapFlags::ANY)
                .map_err(Error::map("reading the ban_prefixes map"))?
            else {
                continue;
            };
            out.push((BanPrefix::from_key(&k)?, Ban::from_bytes(&v)?));
        }
        Ok(out)
    }

    /// Delete the entries expired at `now_ns`; returns how many.
    pub fn prune(&self, now_ns: u64) -> Result<usize, Error> {
        let mut n = 0;
        for (p, b) in self.entries()? {
            if !b.active_at(now_ns) && self.remove(&p)? {
                n += 1;
            }
        }
        Ok(n)
    }
}

fn is_full(e: &libbpf_rs::Error) -> bool {
    // The trie says ENOSPC when it holds max_entries.
    e.to_string().contains("No space left") || e.to_string().contains("os error 28")
}

/// Both ban maps as one table keyed by [`BanPrefix`]: single addresses in the exact hash, the
/// rest in the trie (the XDP program checks the hash first, then the trie).
#[derive(Debug)]
pub struct BanMaps<M> {
    /// The `bans` map.
    pub exact: ExactBans<M>,
    /// The `ban_prefixes` map.
    pub prefixes: PrefixBans<M>,
}

impl<M: MapCore> BanMaps<M> {
    /// From the `bans` and `ban_prefixes` maps.
    pub fn new(bans: M, ban_prefixes: M) -> BanMaps<M> {
        BanMaps {
            exact: ExactBans(bans),
            prefixes: PrefixBans(ban_prefixes),
        }
    }

    /// The ban of exactly `prefix`.
    pub fn get(&self, prefix: &BanPrefix) -> Result<Option<Ban>, Error> {
        if prefix.is_host() {
            self.exact.get(prefix.addr())
        } else {
            self.prefixes.get(prefix)
        }
    }

    /// Write the ban of `prefix`.
    pub fn put(&self, prefix: &BanPrefix, ban: &Ban) -> Result<(), Error> {
        if prefix.is_host() {
            self.exact.put(prefix.addr(), ban)
        } else {
            self.prefixes.put(prefix, ban)
        }
    }

    /// Remove the ban of exactly `prefix`; `false` if there was none.
    pub fn remove(&self, prefix: &BanPrefix) -> Result<bool, Error> {
        if prefix.is_host() {
            self.exact.remove(prefix.addr())
        } else {
            self.prefixes.remove(prefix)
        }
    }

    /// Every entry of both maps (expired ones too).
    pub fn entries(&self) -> Result<Vec<(BanPrefix, Ban)>, Error> {
        let mut out: Vec<(BanPrefix, Ban)> = self
            .exact
            .entries()?
            .into_iter()
            .map(|(a, b)| (BanPrefix::host(a), b))
            .collect();
        out.extend(self.prefixes.entries()?);
        Ok(out)
    }
}

/// The value of the `bans` and `ban_prefixes` maps (`struct sipgw_ban`).
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

    /// The map value's bytes for the exact `bans` map (`prefixlen` 128).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        self.to_bytes_with(128)
    }

    /// The map value's bytes with `prefixlen` (the key's, in the 16-byte address: what the
    /// program needs to delete an expired trie entry it matched).
    pub fn to_bytes_with(&self, prefixlen: u32) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.expires_ns.to_ne_bytes());
        b[8..16].copy_from_slice(&self.created_ns.to_ne_bytes());
        b[16..24].copy_from_slice(&self.dropped.to_ne_bytes());
        b[24..28].copy_from_slice(&self.reason.code().to_ne_bytes());
        b[28..32].copy_from_slice(&prefixlen.to_ne_bytes());
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

    /// The `prefixlen` field of a map value (the key's prefix length in the trie; 128 in the
    /// exact map).
    pub fn prefixlen_of(b: &[u8]) -> Result<u32, Error> {
        let f = b.get(28..32).ok_or(Error::Size {
            what: "struct sipgw_ban",
            expected: Self::SIZE,
            got: b.len(),
        })?;
        Ok(u32::from_ne_bytes(f.try_into().expect("4 bytes")))
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
        &mut open.maps.ban_prefixes,
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
        for r in ["manual", "suspended", "lockout"] {
            let reason: BanReason = r.parse().unwrap();
            assert_eq!(reason.to_string(), r);
            assert_eq!(BanReason::from_code(reason.code()), reason);
        }
        assert_eq!(BanReason::from_code(99).to_string(), "reason-99");
        // 4 was a flood reason nothing produced: reserved, shown by number.
        assert_eq!(BanReason::from_code(4).to_string(), "reason-4");
        assert!("flood".parse::<BanReason>().is_err());
        let e = "angry".parse::<BanReason>().unwrap_err().to_string();
        assert!(e.contains("`angry`"), "{e}");
    }

    #[test]
    fn prefixes_parse_check_and_encode() {
        let p: BanPrefix = "198.18.0.0/24".parse().unwrap();
        assert_eq!(
            (p.to_string(), p.prefix_len(), p.key_bits()),
            ("198.18.0.0/24".into(), 24, 120)
        );
        assert!(!p.is_host());
        assert!(p.contains("198.18.0.200".parse().unwrap()));
        assert!(!p.contains("198.18.1.1".parse().unwrap()));
        assert!(!p.contains("2001:2::1".parse().unwrap()));
        assert_eq!(BanPrefix::from_key(&p.to_key()).unwrap(), p);
        let k = p.to_key();
        assert_eq!(
            &k[4..20],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 0]
        );

        let p: BanPrefix = "2001:db8::/64".parse().unwrap();
        assert_eq!((p.prefix_len(), p.key_bits()), (64, 64));
        assert!(p.contains("2001:db8::1:2:3:4".parse().unwrap()));
        assert!(!p.contains("2001:db8:0:1::1".parse().unwrap()));
        assert_eq!(BanPrefix::from_key(&p.to_key()).unwrap(), p);

        let h: BanPrefix = "198.18.0.9".parse().unwrap();
        assert_eq!(h.to_string(), "198.18.0.9/32");
        assert!(h.is_host());
        assert_eq!(
            "2001:db8::9".parse::<BanPrefix>().unwrap().prefix_len(),
            128
        );
        assert_eq!("198.18.0.9/32".parse::<BanPrefix>().unwrap(), h);
        let m: BanPrefix = "::ffff:198.18.0.0/120".parse().unwrap();
        assert_eq!(m, "198.18.0.0/24".parse().unwrap());

        for (bad, says) in [
            (
                "198.18.0.1/24",
                "host bits are set past /24 (the network is 198.18.0.0/24)",
            ),
            ("2001:db8::1/64", "the network is 2001:db8::/64"),
            ("198.18.0.0/33", "1 to 32 for IPv4"),
            ("2001:db8::/129", "1 to 128 for IPv6"),
            ("198.18.0.0/0", "1 to 32"),
            ("198.18.0.0/x", "must be a number"),
            ("198.18.0.300", "expected an IPv4 or IPv6 address"),
            ("", "expected an IPv4 or IPv6 address"),
        ] {
            let e = bad.parse::<BanPrefix>().unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{bad}`")) && e.contains(says),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn ban_value_carries_the_prefix_length() {
        let b = Ban {
            expires_ns: 1,
            created_ns: 2,
            dropped: 0,
            reason: BanReason::Manual,
        };
        assert_eq!(&b.to_bytes()[28..], &128u32.to_ne_bytes());
        assert_eq!(&b.to_bytes_with(120)[28..], &120u32.to_ne_bytes());
        assert_eq!(Ban::from_bytes(&b.to_bytes_with(120)).unwrap(), b);
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
