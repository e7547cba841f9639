//! The operating-system checks around loading: privileges, the BPF filesystem, interface
//! lookup. Each returns an [`Error`] that says what is wrong and how to fix it.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::Error;

/// `BPF_FS_MAGIC` from `<linux/magic.h>`: `statfs` of a path on bpffs reports it.
const BPF_FS_MAGIC: u64 = 0xcafe_4a11;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Whether this process can load BPF programs and attach XDP: root, or `CAP_NET_ADMIN` with
/// `CAP_BPF` (or `CAP_SYS_ADMIN` on kernels before 5.8).
pub fn require_privileges(action: &'static str) -> Result<(), Error> {
    let status = fs::read_to_string("/proc/self/status").map_err(|source| Error::Io {
        what: "reading /proc/self/status".to_owned(),
        source,
    })?;
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |c: u32| caps & (1 << c) != 0;
    if has(CAP_NET_ADMIN) && (has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
        Ok(())
    } else {
        Err(Error::NotPrivileged { action })
    }
}

/// Make sure `pin_root` can be created on a BPF filesystem: its nearest existing ancestor must
/// be on bpffs. With `mount`, an unmounted `/sys/fs/bpf` is mounted first.
pub fn ensure_bpffs(pin_root: &Path, mount: bool) -> Result<(), Error> {
    let default_mount = Path::new("/sys/fs/bpf");
    // Several loaders (or gateways) starting at once must not each mount bpffs: a second mount
    // would hide the pins made under the first. The check and the mount happen under a lock.
    let _lock = if mount {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/run/sipgw-bpffs.lock")
            .map_err(|source| Error::Io {
                what: "opening /run/sipgw-bpffs.lock".to_owned(),
                source,
            })?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            Error::Io {
                what: "locking /run/sipgw-bpffs.lock".to_owned(),
                source: e.into(),
            }
        })?;
        Some(file)
    } else {
        None
    };
    if mount && pin_root.starts_with(default_mount) && !is_bpffs(default_mount) {
        fs::create_dir_all(default_mount).map_err(|source| Error::Io {
            what: format!("creating {}", default_mount.display()),
            source,
        })?;
        rustix::mount::mount(
            "bpf",
            default_mount,
            "bpf",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .map_err(|e| Error::Io {
            what: format!("mounting bpffs on {}", default_mount.display()),
            source: e.into(),
        })?;
    }
    let existing = nearest_existing(pin_root);
    if is_bpffs(&existing) {
        Ok(())
    } else {
        Err(Error::NoBpffs {
            path: pin_root.to_owned(),
            checked: existing,
        })
    }
}

fn nearest_existing(p: &Path) -> PathBuf {
    let mut cur = p;
    loop {
        if cur.exists() {
            return cur.to_owned();
        }
        match cur.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => cur = parent,
            _ => return PathBuf::from("."),
        }
    }
}

fn is_bpffs(p: &Path) -> bool {
    rustix::fs::statfs(p).is_ok_and(|s| s.f_type as u64 == BPF_FS_MAGIC)
}

/// A socket in the current network namespace, for interface lookups (and as the placeholder
/// descriptor libbpf-rs' `Xdp` wants for queries and detaching, which do not use it).
pub fn control_socket() -> Result<OwnedFd, Error> {
    rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .map_err(|e| Error::Io {
        what: "creating a control socket".to_owned(),
        source: e.into(),
    })
}

/// The index of interface `name` in this network namespace.
pub fn ifindex(sock: &OwnedFd, name: &str) -> Result<i32, Error> {
    if name.is_empty() || name.len() > 15 || name.contains('/') {
        return Err(Error::NoInterface {
            name: name.to_owned(),
        });
    }
    match rustix::net::netdevice::name_to_index(sock.as_fd(), name) {
        Ok(i) => Ok(i as i32),
        Err(e) if e == rustix::io::Errno::NODEV => Err(Error::NoInterface {
            name: name.to_owned(),
        }),
        Err(e) => Err(Error::Io {
            what: format!("looking up interface {name}"),
            source: io::Error::from(e),
        }),
    }
}
