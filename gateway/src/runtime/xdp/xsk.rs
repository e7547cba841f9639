//! One AF_XDP socket (xsk-rs over libxdp) bound to one RX queue, with its UMEM and the
//! bookkeeping of its frames.
//!
//! Layer: I/O, `unsafe` fenced here. Frame ownership is the invariant every `unsafe` call
//! relies on: each UMEM frame is in exactly one place at a time — the free list, the fill ring,
//! the RX ring (kernel), the batch in the worker's hands, or the TX ring until its completion.
//! A frame handed to the kernel (fill or TX) is never touched until the kernel gives it back
//! (RX or completion).
//!
//! A batch costs at most: one `poll` when idle, one TX wakeup (`sendto`) when the kernel asks
//! for it (`need_wakeup` is always on), one fill wakeup when asked. Nothing allocates after
//! [`XskPort::open`].

#![allow(unsafe_code)]

use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use arrayvec::ArrayVec;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::umem::frame::DataMut;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::config::{XdpSettings, ZeroCopy};

/// How long [`XskPort::open`] waits for a queue that is busy (EBUSY) to be released.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Frames taken from the RX ring per batch.
pub const RX_BATCH: usize = 32;

/// An AF_XDP socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("AF_XDP socket on {iface} queue {queue}: {what}")]
pub struct XskError {
    iface: String,
    queue: u32,
    what: String,
}

/// Counters of one socket (what the worker adds to its runtime counters).
#[derive(Debug, Default, Clone, Copy)]
pub struct XskCounters {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames sent with XDP TX (in-place replies).
    pub tx_frames: u64,
    /// Replies dropped because the TX ring was full.
    pub tx_ring_full: u64,
    /// Times the free list was empty when the fill ring wanted frames.
    pub fill_starved: u64,
}

/// The socket, its rings and its frames.
pub struct XskPort {
    umem: Umem,
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    /// Frames owned by us and idle.
    free: Vec<FrameDesc>,
    /// The current RX batch (valid up to `rx_len`).
    batch: Vec<FrameDesc>,
    rx_len: usize,
    /// Free frames lent to the current batch as output buffers ([`XskPort::batch`]).
    spare: Vec<FrameDesc>,
    /// Frames of the batch to transmit.
    to_send: Vec<FrameDesc>,
    /// Completion scratch.
    done: Vec<FrameDesc>,
    fd: RawFd,
    zero_copy: bool,
    /// Counters.
    pub counters: XskCounters,
}

impl std::fmt::Debug for XskPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskPort")
            .field("fd", &self.fd)
            .field("zero_copy", &self.zero_copy)
            .field("free", &self.free.len())
            .finish()
    }
}

impl XskPort {
    /// Create the UMEM and the socket on `iface` queue `queue`, and give half of the frames to
    /// the fill ring. The XDP program must already be attached (libxdp's own is never loaded).
    pub fn open(iface: &str, queue: u32, s: &XdpSettings) -> Result<XskPort, XskError> {
        let fail = |what: String| XskError {
            iface: iface.to_owned(),
            queue,
            what,
        };
        let ring = QueueSize::new(s.ring_size).map_err(|e| fail(format!("ring size: {e}")))?;
        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(s.frame_size).map_err(|e| fail(format!("frame size: {e}")))?)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .build()
            .map_err(|e| fail(format!("UMEM configuration: {e}")))?;
        let frames = NonZeroU32::new(s.frames).ok_or_else(|| fail("0 frames".to_owned()))?;
        let (umem, descs) = Umem::new(umem_config, frames, false)
            .map_err(|e| fail(format!("creating the UMEM ({} frames): {e}", s.frames)))?;
        let name: Interface = iface
            .parse()
            .map_err(|_| fail("interface name".to_owned()))?;
        let attempts: &[(BindFlags, bool)] = match s.zero_copy {
            ZeroCopy::On => &[(BindFlags::XDP_ZEROCOPY, true)],
            ZeroCopy::Off => &[(BindFlags::XDP_COPY, false)],
            ZeroCopy::Auto => &[
                (BindFlags::XDP_ZEROCOPY, true),
                (BindFlags::XDP_COPY, false),
            ],
        };
        let mut last = String::new();
        // A queue a socket closed a moment ago (another process, `sipgw check`'s probe, the
        // previous run) stays busy until the kernel's deferred release of its pool has run.
        let busy_until = std::time::Instant::now() + BUSY_WAIT;
        let mut attempt = 0;
        while let Some((mode, zero_copy)) = attempts.get(attempt) {
            let config = SocketConfig::builder()
                .rx_queue_size(ring)
                .tx_queue_size(ring)
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .bind_flags(*mode | BindFlags::XDP_USE_NEED_WAKEUP)
                .build();
            // SAFETY: the UMEM is not shared with another socket and the (interface, queue)
            // pair is bound once per process (one worker per queue), so the shared-UMEM
            // double-free hazard xsk-rs documents cannot arise; libxdp's program load is
            // inhibited (ours is attached).
            match unsafe { Socket::new(config, &umem, &name, queue) } {
                Ok((tx, rx, Some((fill, comp)))) => {
                    let fd = rx.fd().as_raw_fd();
                    let mut port = XskPort {
                        umem,
                        rx,
                        tx,
                        fill,
                        comp,
                        free: descs,
                        batch: Vec::with_capacity(RX_BATCH),
                        rx_len: 0,
                        spare: Vec::with_capacity(RX_BATCH),
                        to_send: Vec::with_capacity(RX_BATCH),
                        done: Vec::with_capacity(RX_BATCH),
                        fd,
                        zero_copy: *zero_copy,
                        counters: XskCounters::default(),
                    };
                    // Descriptors for the RX and completion scratch come from the same UMEM
                    // (their contents are overwritten by each consume).
                    let template = port.free[0];
                    port.batch.resize(RX_BATCH, template);
                    port.done.resize(RX_BATCH, template);
                    let half = (s.frames / 2).min(s.ring_size) as usize;
                    port.refill(half);
                    return Ok(port);
                }
                Ok(_) => return Err(fail("no fill/completion rings returned".to_owned())),
                Err(e) => {
                    let os = std::error::Error::source(&e)
                        .and_then(|s| s.downcast_ref::<std::io::Error>())
                        .and_then(std::io::Error::raw_os_error);
                    last = match std::error::Error::source(&e) {
                        Some(why) => format!("{e}: {why}"),
                        None => e.to_string(),
                    };
                    if os == Some(libc::EBUSY) && std::time::Instant::now() < busy_until {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                    attempt += 1;
                }
            }
        }
        Err(fail(format!(
            "{last} (does the interface have queue {queue}? `ethtool -l {iface}`)"
        )))
    }

    /// The socket's file descriptor (for the `xsks` map and `poll`).
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The socket's descriptor, borrowed for as long as the port lives.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` is the descriptor of the socket the rings hold open; it is closed only
        // when the last queue is dropped, which cannot happen while `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }

    /// Whether the driver runs it in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Preferred busy polling on this socket.
    pub fn set_busy_poll(&self, usecs: u32, budget: u32) -> std::io::Result<()> {
        for (opt, value) in [
            (libc::SO_PREFER_BUSY_POLL, 1i32),
            (libc::SO_BUSY_POLL, usecs as i32),
            (libc::SO_BUSY_POLL_BUDGET, budget as i32),
        ] {
            // SAFETY: `fd` is this socket's open descriptor; the option value is a live c_int
            // whose size is passed.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&value as *const i32).cast(),
                    std::mem::size_of::<i32>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Take the frames the kernel has received (up to [`RX_BATCH`]); returns how many.
    pub fn receive(&mut self) -> usize {
        // SAFETY: `batch` holds descriptors we own (scratch values); consume overwrites them with
        // the frames the kernel hands over, which are ours until we give them back.
        let n = unsafe { self.rx.consume(&mut self.batch[..RX_BATCH]) };
        self.rx_len = n;
        self.counters.rx_frames += n as u64;
        n
    }

    /// The bytes of frame `i` of the current batch.
    pub fn frame(&self, i: usize) -> &[u8] {
        debug_assert!(i < self.rx_len);
        // SAFETY: frame `i` of the batch was handed to us by the RX ring and is not in any
        // ring; the descriptor belongs to this UMEM.
        unsafe { self.umem.data(&self.batch[i]) }.contents()
    }

    /// Lend up to `n` free frames to the batch as output buffers (fewer when the free list is
    /// short; the rest of the frames stay free for the fill ring). Returns how many.
    pub fn lend_spares(&mut self, n: usize) -> usize {
        debug_assert!(
            self.spare.is_empty(),
            "spares of the last batch not returned"
        );
        let keep = self.free.len().saturating_sub(n.min(RX_BATCH));
        self.spare.extend(self.free.drain(keep..));
        self.spare.len()
    }

    /// The received frames of the batch (read-only) and the lent spare frames (writable, each
    /// its whole data area), at once: the core reads a request from one while it writes the
    /// answer into the other.
    pub fn batch(
        &mut self,
    ) -> (
        ArrayVec<&[u8], RX_BATCH>,
        ArrayVec<SpareFrame<'_>, RX_BATCH>,
    ) {
        let XskPort {
            umem,
            batch,
            rx_len,
            spare,
            ..
        } = self;
        let umem: &Umem = umem;
        let frames = batch[..*rx_len]
            .iter()
            // SAFETY: as in `frame`: each frame of the batch was handed over by the RX ring
            // and is in no ring; nothing writes to it while these shared slices live (the
            // spares are other frames).
            .map(|d| unsafe { umem.data(d) }.contents())
            .collect();
        let spares = spare
            .iter_mut()
            .map(|d| {
                // SAFETY: a spare frame came from the free list: it is ours, in no ring, and
                // this is the only reference to it (the descriptors are distinct and borrowed
                // mutably one each).
                let mut data = unsafe { umem.data_mut(d) };
                let room = data.cursor().buf_len();
                data.cursor().set_pos(room);
                SpareFrame { data }
            })
            .collect();
        (frames, spares)
    }

    /// Take the spare frames back: those with `send[k]` set (their length set with
    /// [`SpareFrame::set_len`]) are queued for XDP TX, the others return to the free list.
    pub fn return_spares(&mut self, send: &[bool]) {
        for (k, desc) in self.spare.drain(..).enumerate() {
            if send.get(k).copied().unwrap_or(false) {
                self.to_send.push(desc);
            } else {
                self.free.push(desc);
            }
        }
    }

    /// Rewrite frame `i` of the batch with `f` (given the whole data area, returning the new
    /// length) and queue it for XDP TX; `None` from `f` recycles the frame instead.
    pub fn reply_with(&mut self, i: usize, f: impl FnOnce(&mut [u8]) -> Option<usize>) {
        debug_assert!(i < self.rx_len);
        let mut desc = self.batch[i];
        let len = {
            // SAFETY: as in `frame`: the frame is ours, and no other reference to it is alive
            // (`&mut self`).
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            let mut cursor = data.cursor();
            let room = cursor.buf_len();
            cursor.set_pos(room);
            f(data.contents_mut())
        };
        match len {
            Some(n) => {
                // SAFETY: as above; only the length is set.
                let mut data = unsafe { self.umem.data_mut(&mut desc) };
                data.cursor().set_pos(n);
                self.to_send.push(desc);
            }
            None => self.free.push(desc),
        }
        // The batch slot no longer owns the frame.
        self.batch[i] = desc;
    }

    /// Give frame `i` of the batch back (dropped, forwarded through the kernel, or answered
    /// elsewhere).
    pub fn recycle(&mut self, i: usize) {
        self.free.push(self.batch[i]);
    }

    /// End of a batch: transmit the queued replies, collect completions, refill the fill ring.
    pub fn flush(&mut self) {
        if !self.to_send.is_empty() {
            let n = self.to_send.len();
            let room = (self.tx.nb_free(n as u32) as usize).min(n);
            // SAFETY: every queued frame is ours (taken from RX, rewritten) and no reference to
            // it is kept; the kernel owns the first `room` until they come back on the
            // completion ring (produce takes all it is given when there is room for them).
            let sent = unsafe { self.tx.produce(&self.to_send[..room]) };
            self.counters.tx_frames += sent as u64;
            self.counters.tx_ring_full += (n - sent) as u64;
            // What did not fit is dropped (counted): its frames are ours again.
            self.free.extend_from_slice(&self.to_send[sent..]);
            self.to_send.clear();
            if sent > 0 && self.tx.needs_wakeup() {
                let _ = self.tx.wakeup();
            }
        }
        loop {
            // SAFETY: `done` holds scratch descriptors; consume overwrites them with frames the
            // kernel finished sending, which are ours again.
            let n = unsafe { self.comp.consume(&mut self.done[..]) };
            self.free.extend_from_slice(&self.done[..n]);
            if n < self.done.len() {
                break;
            }
        }
        self.refill(usize::MAX);
    }

    fn refill(&mut self, want: usize) {
        if self.free.is_empty() {
            // Every frame is in a ring or in flight: if the fill ring has room, the kernel may
            // run out of buffers to receive into.
            if self.fill.nb_free(1) > 0 {
                self.counters.fill_starved += 1;
            }
            return;
        }
        let free_slots = self.fill.nb_free(self.free.len().min(want) as u32) as usize;
        let n = free_slots.min(self.free.len()).min(want);
        if n == 0 {
            return;
        }
        let start = self.free.len() - n;
        // SAFETY: the frames are ours and idle (free list); after produce the kernel owns them
        // and they leave the free list.
        let produced = unsafe { self.fill.produce(&self.free[start..]) };
        self.free.truncate(self.free.len() - produced);
        if self.fill.needs_wakeup() {
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
    }
}

/// A free UMEM frame lent to one batch as an output buffer ([`XskPort::batch`]).
pub struct SpareFrame<'a> {
    data: DataMut<'a>,
}

impl SpareFrame<'_> {
    /// Its whole data area (up to the length set last).
    pub fn buf(&mut self) -> &mut [u8] {
        self.data.contents_mut()
    }

    /// [`SpareFrame::buf`], read-only.
    pub fn bytes(&self) -> &[u8] {
        self.data.contents()
    }

    /// The frame's length when it is transmitted.
    pub fn set_len(&mut self, len: usize) {
        self.data.cursor().set_pos(len);
    }
}
