//! The XDP program's pinned maps as the gateway uses them: writing its bans into the ban map
//! (so the program drops those sources from the next packet on), registering AF_XDP sockets in
//! the `xsks` map, and publishing the workers' decision counters in the mmapped `gw_counters`
//! array (so `bpftool map dump` shows them live).
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
use sipgw_ebpf::{monotonic_ns, Ban, BanReason, Layout, SourceKey, GATEWAY_COUNTERS, MAX_WORKERS};

use crate::counters::Counters;

/// A pinned map could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct MapError {
    /// What was being done.
    pub what: String,
    /// Why it failed.
    pub message: String,
}

fn err(what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> MapError {
    let what = what.into();
    move |e| MapError {
        what,
        message: e.to_string(),
    }
}

/// The pinned maps of one interface.
#[derive(Debug)]
pub struct PinnedMaps {
    dir: PathBuf,
    bans: MapHandle,
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
                    message: "not pinned: attach the XDP program first (`sipgw-loader attach \
                              --iface IF`, or gateway.backend = \"xdp\")"
                        .to_owned(),
                });
            }
            MapHandle::from_pinned_path(&path).map_err(err(format!("opening {}", path.display())))
        };
        let counters = open("gw_counters")?;
        Ok(PinnedMaps {
            dir: dir.to_owned(),
            bans: open("bans")?,
            xsks: open("xsks")?,
            counters: CountersArea::map(&counters)?,
        })
    }

    /// The pin directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ban `source` in the XDP program for `remaining` (from now). A syscall: called per ban
    /// event, never per packet.
    pub fn ban(
        &self,
        source: IpAddr,
        remaining: Duration,
        reason: BanReason,
    ) -> Result<(), MapError> {
        let now = monotonic_ns();
        let ban = Ban {
            expires_ns: now.saturating_add(remaining.as_nanos().max(1) as u64),
            created_ns: now,
            dropped: 0,
            reason,
        };
        self.bans
            .update(&SourceKey::from(source).0, &ban.to_bytes(), MapFlags::ANY)
            .map_err(err(format!("banning {source} in the XDP ban map")))
    }

    /// Lift the gateway's ban of `source` early (an operator's manual ban is left alone).
    pub fn unban(&self, source: IpAddr) -> Result<(), MapError> {
        let key = SourceKey::from(source);
        let current = self
            .bans
            .lookup(&key.0, MapFlags::ANY)
            .map_err(err(format!("reading the ban of {source}")))?;
        match current.map(|v| Ban::from_bytes(&v)) {
            Some(Ok(b)) if b.reason != BanReason::Manual => self
                .bans
                .delete(&key.0)
                .map_err(err(format!("removing the ban of {source}"))),
            _ => Ok(()),
        }
    }

    /// The ban of `source` in the map, if any.
    pub fn ban_of(&self, source: IpAddr) -> Option<Ban> {
        let v = self
            .bans
            .lookup(&SourceKey::from(source).0, MapFlags::ANY)
            .ok()??;
        Ban::from_bytes(&v).ok()
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
            message: e.to_string(),
        })?;
        let names: Vec<&str> = layout.names().collect();
        if names != Counters::NAMES || layout.size != 8 * names.len() {
            return Err(MapError {
                what: "checking struct sipgw_gateway_counters".to_owned(),
                message: "its fields differ from the engine's counters (rebuild both)".to_owned(),
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
            message: e.to_string(),
        })?;
        Ok(CountersArea {
            base: NonNull::new(ptr.cast()).ok_or_else(|| MapError {
                what: "mmap of gw_counters".to_owned(),
                message: "null mapping".to_owned(),
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
