//! The XDP program's pinned maps as the gateway uses them: writing its bans into the ban maps
//! (single addresses in `bans`, shorter prefixes in `ban_prefixes`, so the program drops those
//! networks from the next packet on), registering AF_XDP sockets in the `xsks` map, and
//! publishing the workers' decision counters in the mmapped `gw_counters` array (so
//! `bpftool map dump` shows them live).
//!
//! Layer: I/O. `unsafe` is limited to mapping the counters array and storing into it.

#![allow(unsafe_code)]

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libbpf_rs::{MapCore, MapFlags, MapHandle};
use sipgw_ebpf::{
    monotonic_ns, Ban, BanMaps, BanPrefix, BanReason, Layout, GATEWAY_COUNTERS, MAX_WORKERS,
};

use crate::counters::Counters;

/// A pinned map could not be used: what was being done, and the failed call's error (libbpf's,
/// with the OS error, or the reason in words).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct MapError {
    /// What was being done.
    pub what: String,
    /// Why it failed.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn err(what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> MapError {
    let what = what.into();
    move |e| MapError {
        what,
        source: Box::new(e),
    }
}

/// A ban-map call of `sipgw_ebpf` failed: its words and its source (the OS error) kept.
fn ban_err(e: sipgw_ebpf::Error) -> MapError {
    match e {
        sipgw_ebpf::Error::Map { what, source } => MapError {
            what,
            source: Box::new(source),
        },
        e => MapError {
            what: "using the XDP ban maps".to_owned(),
            source: Box::new(e),
        },
    }
}

/// The pinned maps of one interface.
#[derive(Debug)]
pub struct PinnedMaps {
    dir: PathBuf,
    bans: BanMaps<MapHandle>,
    xsks: MapHandle,
    counters: CountersArea,
}

impl PinnedMaps {
    /// Open the maps pinned in `dir` (`<pin_root>/<interface>`).
    pub fn open(dir: &Path) -> Result<PinnedMaps, MapError> {
        let open = |name: &str| {
            let path = dir.join(name);
            if !path.exists() {
                return Err(MapError {
                    what: format!("opening {}", path.display()),
                    source: "not pinned: attach the XDP program first (`sipgw-loader attach \
                             --iface IF`, or gateway.backend = \"xdp\"; after an upgrade \
                             that added a map, attach again)"
                        .into(),
                });
            }
            MapHandle::from_pinned_path(&path).map_err(err(format!("opening {}", path.display())))
        };
        let counters = open("gw_counters")?;
        Ok(PinnedMaps {
            dir: dir.to_owned(),
            bans: BanMaps::new(open("bans")?, open("ban_prefixes")?),
            xsks: open("xsks")?,
            counters: CountersArea::map(&counters)?,
        })
    }

    /// The pin directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ban the network `source`/`prefix` (one address at /32 or /128) in the XDP program for
    /// `remaining` (from now): single addresses go into the exact `bans` map, shorter prefixes
    /// into the `ban_prefixes` trie. A syscall: called per ban event, never per packet.
    pub fn ban(
        &self,
        source: IpAddr,
        prefix: u8,
        remaining: Duration,
        reason: BanReason,
    ) -> Result<(), MapError> {
        let network = BanPrefix::new(BanPrefix::mask(source, prefix), prefix).map_err(ban_err)?;
        let now = monotonic_ns();
        let ban = Ban {
            expires_ns: now.saturating_add(remaining.as_nanos().max(1) as u64),
            created_ns: now,
            dropped: 0,
            reason,
        };
        self.bans.put(&network, &ban).map_err(ban_err)
    }

    /// Lift the gateway's ban of `source`/`prefix` early (an operator's manual ban is left
    /// alone).
    pub fn unban(&self, source: IpAddr, prefix: u8) -> Result<(), MapError> {
        let network = BanPrefix::new(BanPrefix::mask(source, prefix), prefix).map_err(ban_err)?;
        match self.bans.get(&network).map_err(ban_err)? {
            Some(b) if b.reason != BanReason::Manual => {
                self.bans.remove(&network).map_err(ban_err).map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// The ban of exactly `source`/`prefix` in the maps, if any.
    pub fn ban_of(&self, source: IpAddr, prefix: u8) -> Option<Ban> {
        let network = BanPrefix::new(BanPrefix::mask(source, prefix), prefix).ok()?;
        self.bans.get(&network).ok()?
    }

    /// Point RX queue `queue`'s redirect at the AF_XDP socket `fd`.
    pub fn register_socket(&self, queue: u32, fd: RawFd) -> Result<(), MapError> {
        self.xsks
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(err(format!(
                "registering the AF_XDP socket of queue {queue}"
            )))
    }

    /// Remove queue `queue`'s socket: its SIP packets go to the kernel stack again.
    pub fn unregister_socket(&self, queue: u32) {
        let _ = self.xsks.delete(&queue.to_ne_bytes());
    }

    /// Publish worker `slot`'s counters (relaxed stores into the mmapped array).
    pub fn publish(&self, slot: usize, counters: &Counters) {
        self.counters.store(slot, counters);
    }
}

/// The mmapped `gw_counters` array: [`MAX_WORKERS`] slots of `struct sipgw_gateway_counters`,
/// whose fields are the engine's [`Counters`] in order (checked against the BTF at open).
#[derive(Debug)]
struct CountersArea {
    base: NonNull<AtomicU64>,
    len: usize,
    stride: usize,
}

// SAFETY: the area is plain shared memory accessed only through atomics.
unsafe impl Send for CountersArea {}
// SAFETY: as above.
unsafe impl Sync for CountersArea {}

impl CountersArea {
    fn map(map: &MapHandle) -> Result<CountersArea, MapError> {
        let layout = Layout::of(GATEWAY_COUNTERS).map_err(|e| MapError {
            what: "reading the gw_counters layout".to_owned(),
            source: Box::new(e),
        })?;
        let names: Vec<&str> = layout.names().collect();
        if names != Counters::NAMES || layout.size != 8 * names.len() {
            return Err(MapError {
                what: "checking struct sipgw_gateway_counters".to_owned(),
                source: "its fields differ from the engine's counters (rebuild both)".into(),
            });
        }
        let stride = layout.size; // a multiple of 8: array values are not padded further
        let len = stride * MAX_WORKERS as usize;
        // SAFETY: mapping a BPF_F_MMAPABLE array map's fd shared and read-write at offset 0
        // for its whole value area is what the kernel supports for such maps; the fd is valid
        // for the call, and the kernel keeps the map alive as long as the mapping exists.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                map.as_fd(),
                0,
            )
        }
        .map_err(|e| MapError {
            what: format!("mmap of gw_counters (fd {})", map.as_fd().as_raw_fd()),
            source: Box::new(std::io::Error::from(e)),
        })?;
        Ok(CountersArea {
            base: NonNull::new(ptr.cast()).ok_or_else(|| MapError {
                what: "mmap of gw_counters".to_owned(),
                source: "null mapping".into(),
            })?,
            len,
            stride,
        })
    }

    fn store(&self, slot: usize, counters: &Counters) {
        if slot >= MAX_WORKERS as usize {
            return;
        }
        for (i, (_, v)) in counters.iter().enumerate() {
            let off = slot * self.stride + i * 8;
            debug_assert!(off + 8 <= self.len);
            // SAFETY: `off` is within the mapping (slot < MAX_WORKERS, i < the struct's field
            // count, checked at map time) and 8-aligned (the mapping is page-aligned, stride and
            // field offsets are multiples of 8); the memory is only ever accessed atomically by
            // us and by the kernel's 8-byte copies.
            let cell = unsafe { &*self.base.as_ptr().cast::<u8>().add(off).cast::<AtomicU64>() };
            cell.store(v, Ordering::Relaxed);
        }
    }
}

impl Drop for CountersArea {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `map`, unmapped once.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
