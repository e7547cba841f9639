//! One worker thread: a socket, an engine, a proxy, an inbox.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrayvec::ArrayVec;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use quanta::{Clock, Instant};

use super::shared::{proxy_config, RuntimeCounters, Shared, RECV_TIMEOUT};
use super::stream::{StreamSetup, Streams};
use super::udp::{self, RxRing, TxRing, BATCH};
use super::xdp::frame::{self, FrameInfo, Reject};
use super::xdp::neigh::{Hop, View};
use super::xdp::xsk::{SpareFrame, RX_BATCH};
use super::xdp::{PinnedMaps, XskPort};
use crate::config::Config;
use crate::event::{BanReason, Event};
use crate::flow::{Flow, Transport};
use crate::gateway::{Action, Gateway, Input};
use crate::proxy::Proxy;
use crate::shard::{Dest, ShardMsg};

/// Shard messages per channel send.
pub const SHARD_BATCH: usize = 32;

/// Batches a worker's inbox holds before senders drop (and count) theirs.
pub const INBOX_BATCHES: usize = 1024;

/// A batch of shard messages (fixed size: sending it never allocates).
pub type ShardBatch = ArrayVec<ShardMsg, SHARD_BATCH>;

pub(super) struct Worker {
    pub index: usize,
    pub socket: UdpSocket,
    pub gateway: Gateway,
    pub proxy_key: [u8; 32],
    pub inbox: Receiver<ShardBatch>,
    pub peers: Vec<Sender<ShardBatch>>,
    pub shared: Arc<Shared>,
    pub generation: u64,
    pub config: Config,
    pub clock: Clock,
    pub core: Option<core_affinity::CoreId>,
    /// The AF_XDP socket of RX queue `index` (`backend = "xdp"`).
    pub xsk: Option<XskPort>,
    /// The interface's next hops, when the softswitch leg is sent on AF_XDP (`xdp.upstream`).
    pub next_hops: Option<View>,
    /// The XDP program's pinned maps (bans, counters), when an interface is configured.
    pub maps: Option<Arc<PinnedMaps>>,
    /// Listeners and channels of the stream transports, when TCP or TLS is configured.
    pub streams: Option<StreamSetup>,
    /// The stream transports, once running (built from `streams` by [`Worker::run`]).
    pub live: Option<Streams>,
}

/// Token bucket for the rejected-credential log lines.
struct LogBudget {
    per_sec: u32,
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl LogBudget {
    fn take(&mut self, now: Instant) -> bool {
        let per_sec = f64::from(self.per_sec);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * per_sec).min(per_sec);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Worker {
    pub fn run(mut self) {
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core) {
                tracing::debug!(worker = self.index, "could not pin to a core");
            }
        }
        let mut rx = RxRing::default();
        let mut tx = TxRing::default();
        let mut rt = RuntimeCounters::default();
        let mut outgoing: Vec<ShardBatch> =
            (0..self.peers.len()).map(|_| ArrayVec::new()).collect();
        let mut budget = LogBudget {
            per_sec: self.config.gateway.log_rejections_per_sec,
            tokens: f64::from(self.config.gateway.log_rejections_per_sec),
            last: self.clock.now(),
            suppressed: 0,
        };
        let mut events_dropped_seen = 0;
        let mut xsk = self.xsk.take();
        // With AF_XDP the kernel socket (softswitch traffic, fallback) must not block: one
        // `poll` over both sockets waits when neither had anything last time.
        let mut frames_tx = xsk.as_ref().map(|_| TxRing::default());
        let mut idle = false;
        if let Some(setup) = self.streams.take() {
            let fd = xsk.as_ref().map(|p| p.as_fd());
            match Streams::new(setup, &self.config, &self.socket, fd, self.clock.now()) {
                Ok(s) => self.live = Some(s),
                Err(e) => {
                    tracing::error!(worker = self.index, error = %e, "no epoll set: TCP and TLS are off on this worker")
                }
            }
        }
        if xsk.is_some() || self.live.is_some() {
            if let Err(e) = self.socket.set_nonblocking(true) {
                tracing::warn!(worker = self.index, error = %e, "socket stays blocking");
            }
        }

        while !self.shared.stop.load(Ordering::Relaxed) {
            let generation = self.shared.generation.load(Ordering::Acquire);
            if generation != self.generation {
                self.apply_reload(generation, &mut budget);
            }
            // With streams, one epoll set waits for every socket of the worker.
            let mut streams_ready = false;
            if let Some(st) = self.live.as_mut() {
                let timeout = if idle {
                    RECV_TIMEOUT
                } else {
                    std::time::Duration::ZERO
                };
                streams_ready = st.wait(timeout);
            } else if let (Some(port), true) = (&xsk, idle) {
                wait_readable(self.socket.as_fd(), port.as_fd());
            }
            let n = match rx.recv(&self.socket) {
                Ok(n) => n,
                Err(e) => {
                    rt.rx_errors += 1;
                    tracing::warn!(worker = self.index, error = %e, "recvmmsg failed");
                    0
                }
            };
            let now = self.clock.now();
            // Suspensions decided elsewhere apply before this batch is judged.
            while let Ok(batch) = self.inbox.try_recv() {
                for msg in batch {
                    self.gateway.handle_shard_message(now, msg);
                }
            }
            if self.gateway.poll_timeout().is_some_and(|t| now >= t) {
                self.gateway.handle_timeout(now);
            }
            if n > 0 {
                rt.rx_datagrams += n as u64;
                // The load signal for known-sources-first admission comes from the queue the
                // phones arrive on: this socket, or the AF_XDP socket when there is one.
                if xsk.is_none() {
                    self.gateway.engine_mut().load(now, n == udp::BATCH);
                }
                self.handle(now, &rx, &mut tx, &mut rt);
                self.send(&mut tx, &mut rt);
            }
            idle = n == 0;
            if let (Some(port), Some(ftx)) = (xsk.as_mut(), frames_tx.as_mut()) {
                let before = port.counters.rx_frames;
                self.handle_frames(now, port, ftx, &mut rt);
                idle &= port.counters.rx_frames == before;
                rt.xsk_rx_frames = port.counters.rx_frames;
                rt.xsk_tx_frames = port.counters.tx_frames;
                rt.xsk_tx_ring_full = port.counters.tx_ring_full;
                rt.xsk_fill_starved = port.counters.fill_starved;
            }
            if let Some(st) = self.live.as_mut() {
                st.process(now, &mut self.gateway, &self.socket, &mut rt);
                idle &= !streams_ready;
            }
            while let Some(event) = self.gateway.poll_event() {
                if let Some(maps) = &self.maps {
                    enforce_in_xdp(now, &event, maps, &mut rt);
                }
                if let (Some(st), Event::SourceBanned { source, prefix, .. }) =
                    (self.live.as_mut(), &event)
                {
                    st.close_network(*source, *prefix, &mut rt);
                }
                log_event(now, event, &mut budget, &mut rt);
            }
            let dropped = self.gateway.engine().events_dropped();
            rt.events_dropped += dropped - events_dropped_seen;
            events_dropped_seen = dropped;
            self.send_shard_messages(&mut outgoing, &mut rt);
            rt.shard_dropped = rt.shard_dropped.max(self.gateway.engine().shard_dropped());
            let engine = self.gateway.engine();
            self.shared.stats[self.index].publish(
                engine.counters(),
                self.gateway.counters(),
                &rt,
                engine.policy().len(),
                self.live
                    .as_ref()
                    .map_or((0, 0), |s| (s.len(), s.heap_bytes())),
            );
            if let Some(maps) = &self.maps {
                maps.publish(self.index, engine.counters());
            }
        }
        if let Some(st) = self.live.as_mut() {
            st.shutdown(&mut rt);
        }
        tracing::debug!(worker = self.index, "worker stopped");
    }

    /// One `sendmmsg` of what `tx` holds.
    fn send(&self, tx: &mut TxRing, rt: &mut RuntimeCounters) {
        if tx.queued() == 0 {
            return;
        }
        let report = tx.send(&self.socket);
        self.account(report, rt);
    }

    /// Counts what one `sendmmsg` did.
    fn account(&self, report: udp::SendReport, rt: &mut RuntimeCounters) {
        rt.tx_datagrams += report.sent as u64;
        if report.failed > 0 {
            rt.tx_errors += report.failed as u64;
            tracing::debug!(
                worker = self.index,
                failed = report.failed,
                errno = report.last_error,
                "sendmmsg refused datagrams"
            );
        }
    }

    fn apply_reload(&mut self, generation: u64, budget: &mut LogBudget) {
        let loaded = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let now = self.clock.now();
        let engine = self.gateway.engine_mut();
        engine.set_credentials(loaded.credentials.clone(), loaded.guard.clone());
        engine.reconfigure(now, &loaded.config, &self.config);
        self.gateway
            .set_proxy(Proxy::new(proxy_config(&loaded.config, self.proxy_key)));
        if let Some(st) = self.live.as_mut() {
            st.reconfigure(&loaded.config, loaded.tls.clone());
        }
        budget.per_sec = loaded.config.gateway.log_rejections_per_sec;
        self.config = loaded.config.clone();
        self.generation = generation;
        // `reloads` is counted once per reload by the runtime (not here: every worker applies
        // each one).
    }

    /// Judge one batch of UDP datagrams through the core. Outputs for UDP flows are queued in
    /// `tx`; replies to a datagram's own sender are returned as `(input index, tx slot,
    /// length)` for the caller to queue.
    fn judge(
        &mut self,
        now: Instant,
        input: &[Option<(SocketAddr, &[u8])>],
        tx: &mut TxRing,
        rt: &mut RuntimeCounters,
    ) -> ArrayVec<(usize, usize, usize), BATCH> {
        let mut inputs: ArrayVec<Input<'_>, BATCH> = ArrayVec::new();
        let mut index: ArrayVec<usize, BATCH> = ArrayVec::new();
        for (i, item) in input.iter().enumerate() {
            if let Some((peer, bytes)) = item {
                inputs.push(Input {
                    flow: Flow::udp(*peer),
                    bytes,
                });
                index.push(i);
            }
        }
        let m = inputs.len();
        let mut actions = [Action::default(); BATCH];
        {
            let mut out: ArrayVec<&mut [u8], BATCH> = tx.slots().take(m).collect();
            let _ = self
                .gateway
                .handle_batch(now, &inputs, &mut out, &mut actions[..m]);
        }
        let mut replies = ArrayVec::new();
        for (k, action) in actions[..m].iter().enumerate() {
            if let Action::Send { to, len, .. } = *action {
                if to == inputs[k].flow {
                    replies.push((index[k], k, len));
                } else if to.transport == Transport::Udp {
                    tx.push(k, to.peer, len);
                } else if let Some(st) = self.live.as_mut() {
                    st.send(now, to, &tx.slot(k)[..len], &self.socket, rt);
                } else {
                    rt.stream_unavailable += 1;
                }
            }
        }
        replies
    }

    /// A batch from the UDP socket.
    fn handle(&mut self, now: Instant, rx: &RxRing, tx: &mut TxRing, rt: &mut RuntimeCounters) {
        let mut input: ArrayVec<Option<(SocketAddr, &[u8])>, BATCH> = ArrayVec::new();
        for i in 0..rx.len() {
            let (peer, bytes, truncated) = rx.get(i);
            if truncated {
                rt.rx_truncated += 1;
                input.push(None);
            } else {
                input.push(Some((peer, bytes)));
            }
        }
        for (i, slot, len) in self.judge(now, &input, tx, rt) {
            if let Some((peer, _)) = input[i] {
                tx.push(slot, peer, len);
            }
        }
    }

    /// A batch from the AF_XDP socket. Each request gets a free UMEM frame as its output
    /// buffer, after room for the reply's Ethernet, IP and UDP headers: a reply to its sender
    /// is written by the core straight into the frame it leaves in (XDP TX, no copy); what goes
    /// elsewhere leaves from there through the kernel socket (one `sendmmsg`) or a connection.
    /// A request too large for a frame's room, or one that finds no free frame, writes into
    /// the TX ring's slot instead, and its reply is copied into the received frame
    /// (`xsk_reply_copied`).
    fn handle_frames(
        &mut self,
        now: Instant,
        port: &mut XskPort,
        tx: &mut TxRing,
        rt: &mut RuntimeCounters,
    ) {
        let n = port.receive();
        if n == 0 {
            port.flush();
            return;
        }
        self.gateway.engine_mut().load(now, n == RX_BATCH);
        let lent = port.lend_spares(n);
        let mut send_spare = [false; RX_BATCH];
        // Replies written in a TX ring slot: (received frame, its info, slot, length).
        let mut copied: ArrayVec<(usize, FrameInfo, usize, usize), RX_BATCH> = ArrayVec::new();
        {
            let (frames, mut spares) = port.batch();
            let mut infos: ArrayVec<(usize, FrameInfo), RX_BATCH> = ArrayVec::new();
            let mut inputs: ArrayVec<Input<'_>, RX_BATCH> = ArrayVec::new();
            for (i, bytes) in frames.iter().enumerate() {
                match frame::parse(bytes) {
                    Ok(f) => {
                        inputs.push(Input {
                            flow: Flow::udp(f.peer),
                            bytes: &bytes[f.payload_off..f.payload_off + f.payload_len],
                        });
                        infos.push((i, f));
                    }
                    Err(Reject::NotUdp) => rt.xsk_not_udp += 1,
                    Err(Reject::BadChecksum) => rt.xsk_bad_checksum += 1,
                }
            }
            let m = inputs.len();
            // Output k: spare k (spare indices follow the inputs), or slot k.
            let mut outs: ArrayVec<Out<'_, '_>, RX_BATCH> = ArrayVec::new();
            let mut free_spares = spares.iter_mut().enumerate();
            for ((_, info), slot) in infos.iter().zip(tx.slots()) {
                let room = frame::reply_len(info, 0);
                // The same guarantee as a TX ring slot: the input and 2 KiB more.
                let fits = |s: &SpareFrame<'_>| s.bytes().len() >= room + info.payload_len + 2048;
                let out = match free_spares.next() {
                    Some((k, s)) if fits(s) => Out::Frame {
                        spare: k,
                        frame: s,
                        room,
                    },
                    _ => Out::Slot(slot),
                };
                outs.push(out);
            }
            let mut actions = [Action::default(); RX_BATCH];
            let _ = self
                .gateway
                .handle_batch(now, &inputs, &mut outs, &mut actions[..m]);
            let mut kernel: ArrayVec<(SocketAddr, &[u8]), RX_BATCH> = ArrayVec::new();
            for (k, out) in outs.iter_mut().enumerate() {
                let Action::Send { to, len, .. } = actions[k] else {
                    continue;
                };
                let (i, info) = infos[k];
                if to == inputs[k].flow {
                    match out {
                        Out::Frame {
                            spare, frame: s, ..
                        } => {
                            // The received Ethernet header (MACs, VLAN tags), then the new
                            // IP and UDP headers in front of the reply already in place.
                            let buf = s.buf();
                            buf[..info.l2_len].copy_from_slice(&frames[i][..info.l2_len]);
                            match frame::write_headers(buf, &info, len) {
                                Some(total) => {
                                    s.set_len(total);
                                    send_spare[*spare] = true;
                                }
                                None => rt.xsk_reply_too_large += 1,
                            }
                        }
                        Out::Slot(_) => copied.push((i, info, k, len)),
                    }
                }
            }
            // The softswitch leg: on AF_XDP from the frame the core wrote it into when its next
            // hop is resolved on this interface, through the kernel otherwise.
            let mut elsewhere: ArrayVec<usize, RX_BATCH> = ArrayVec::new();
            if let Some(view) = self.next_hops.as_mut() {
                view.refresh();
            }
            let bound = self.config.gateway.listen;
            for (k, out) in outs.iter_mut().enumerate() {
                let Action::Send { to, len, .. } = actions[k] else {
                    continue;
                };
                if to == inputs[k].flow {
                    continue;
                }
                if let (
                    Transport::Udp,
                    Some(view),
                    Out::Frame {
                        spare,
                        frame: s,
                        room,
                    },
                ) = (to.transport, self.next_hops.as_ref(), &mut *out)
                {
                    let dst = SocketAddr::new(to.peer.ip().to_canonical(), to.peer.port());
                    match view.hops().lookup(dst.ip(), bound.ip()) {
                        Hop::Frame { eth, from } => {
                            let from = SocketAddr::new(from, bound.port());
                            if let Some(total) =
                                frame::write_upstream(s.buf(), *room, &eth, from, dst, len)
                            {
                                s.set_len(total);
                                send_spare[*spare] = true;
                                rt.xsk_upstream_frames += 1;
                                continue;
                            }
                        }
                        Hop::Unresolved => rt.xsk_upstream_unresolved += 1,
                        Hop::Elsewhere => rt.xsk_upstream_elsewhere += 1,
                    }
                }
                elsewhere.push(k);
            }
            for k in elsewhere {
                let Action::Send { to, len, .. } = actions[k] else {
                    continue;
                };
                let bytes = &outs[k].bytes()[..len];
                if to.transport == Transport::Udp {
                    kernel.push((to.peer, bytes));
                } else if let Some(st) = self.live.as_mut() {
                    st.send(now, to, bytes, &self.socket, rt);
                } else {
                    rt.stream_unavailable += 1;
                }
            }
            let report = udp::send_batch(&self.socket, &kernel);
            self.account(report, rt);
        }
        port.return_spares(&send_spare[..lent]);
        let mut answered = [false; RX_BATCH];
        for (i, info, slot, len) in copied {
            let payload = &tx.slot(slot)[..len];
            let mut ok = false;
            port.reply_with(i, |buf| {
                let r = frame::write_reply(buf, &info, payload);
                ok = r.is_some();
                r
            });
            if ok {
                rt.xsk_reply_copied += 1;
            } else {
                rt.xsk_reply_too_large += 1;
            }
            answered[i] = true;
        }
        for (i, done) in answered.iter().enumerate().take(n) {
            if !done {
                port.recycle(i);
            }
        }
        port.flush();
    }

    fn send_shard_messages(&mut self, outgoing: &mut [ShardBatch], rt: &mut RuntimeCounters) {
        let me = self.index;
        let flush = |dest: usize, batch: &mut ShardBatch, rt: &mut RuntimeCounters| {
            let full = std::mem::take(batch);
            let len = full.len() as u64;
            match self.peers[dest].try_send(full) {
                Ok(()) => rt.shard_sent += len,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    rt.shard_dropped += len
                }
            }
        };
        while let Some((dest, msg)) = self.gateway.poll_shard_message() {
            let targets = match dest {
                Dest::Owner(o) => usize::from(o)..usize::from(o) + 1,
                Dest::All => 0..outgoing.len(),
            };
            for t in targets {
                if t == me || t >= outgoing.len() {
                    continue;
                }
                if outgoing[t].is_full() {
                    flush(t, &mut outgoing[t], rt);
                }
                outgoing[t].push(msg);
            }
        }
        for (t, batch) in outgoing.iter_mut().enumerate() {
            if !batch.is_empty() {
                flush(t, batch, rt);
            }
        }
    }
}

/// Wait until the kernel socket or the AF_XDP socket has something (at most [`RECV_TIMEOUT`]).
fn wait_readable(socket: BorrowedFd<'_>, xsk: BorrowedFd<'_>) {
    let mut fds = [
        rustix::event::PollFd::new(&socket, rustix::event::PollFlags::IN),
        rustix::event::PollFd::new(&xsk, rustix::event::PollFlags::IN),
    ];
    let timeout = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: RECV_TIMEOUT.as_nanos() as i64,
    };
    let _ = rustix::event::poll(&mut fds, Some(&timeout));
}

/// Write a ban decided by the engine into the XDP ban maps (a syscall per ban event, never per
/// packet), so the program drops the source's network from its next packet on.
fn enforce_in_xdp(now: Instant, event: &Event, maps: &PinnedMaps, rt: &mut RuntimeCounters) {
    let result = match event {
        Event::SourceBanned {
            source,
            prefix,
            reason,
            until,
        } => {
            // The whole network the engine banned (`auth.ipv4_prefix`/`ipv6_prefix`): one
            // address in the exact map, a shorter prefix in the trie.
            let reason = match reason {
                BanReason::TerminalSuspended => sipgw_ebpf::BanReason::Suspended,
                BanReason::SourceLockout => sipgw_ebpf::BanReason::Lockout,
            };
            maps.ban(
                *source,
                *prefix,
                until.saturating_duration_since(now),
                reason,
            )
            .map(|()| rt.xdp_bans_written += 1)
        }
        Event::SourceUnbanned { source, prefix } => maps.unban(*source, *prefix),
        _ => Ok(()),
    };
    if let Err(e) = result {
        rt.xdp_map_errors += 1;
        tracing::warn!(error = %e, "XDP ban map not updated");
    }
}

/// One structured line per security event (target `sipgw::security`): fail2ban-friendly
/// `source=ADDRESS` fields.
fn log_event(now: Instant, event: Event, budget: &mut LogBudget, rt: &mut RuntimeCounters) {
    let secs = |until: Instant| until.saturating_duration_since(now).as_secs();
    match event {
        Event::TerminalSuspended {
            username,
            source,
            scope,
            failures,
            until,
        } => tracing::warn!(
            target: "sipgw::security",
            event = "suspended",
            user = %username,
            source = %source,
            failures,
            scope = scope.as_str(),
            seconds = secs(until),
            "terminal suspended"
        ),
        Event::TerminalUnsuspended { username, source } => tracing::info!(
            target: "sipgw::security",
            event = "unsuspended",
            user = %username,
            source = %source,
            "terminal re-enabled"
        ),
        Event::SourceBanned {
            source,
            prefix,
            reason,
            until,
        } => tracing::warn!(
            target: "sipgw::security",
            event = "banned",
            source = %source,
            prefix,
            reason = reason.as_str(),
            seconds = secs(until),
            "source banned"
        ),
        Event::SourceUnbanned { source, prefix } => tracing::info!(
            target: "sipgw::security",
            event = "unbanned",
            source = %source,
            prefix,
            "source ban lifted"
        ),
        Event::AccountProtected {
            username,
            source,
            until_unix,
        } => tracing::warn!(
            target: "sipgw::security",
            event = "account_protected",
            user = %username,
            source = %source,
            until_unix,
            "account protected: its budget of guesses from new sources is used up; \
             only known-good sources are evaluated until the period ends"
        ),
        Event::CredentialRejected {
            source,
            username,
            failure,
        } => {
            if budget.per_sec == 0 || !budget.take(now) {
                budget.suppressed += 1;
                rt.rejections_not_logged += 1;
                return;
            }
            let suppressed = std::mem::take(&mut budget.suppressed);
            tracing::info!(
                target: "sipgw::security",
                event = "rejected",
                user = %username,
                source = %source.ip(),
                port = source.port(),
                reason = failure.as_str(),
                suppressed,
                "credentials rejected"
            );
        }
    }
}

// Every frame of an AF_XDP batch may fall back to a TX ring slot.
const _: () = assert!(RX_BATCH <= BATCH);

/// The output buffer of one AF_XDP request: a spare UMEM frame after `room` bytes of headers,
/// or a TX ring slot.
enum Out<'f, 's> {
    Frame {
        spare: usize,
        frame: &'s mut SpareFrame<'f>,
        room: usize,
    },
    Slot(&'s mut [u8]),
}

impl Out<'_, '_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Out::Frame { frame, room, .. } => frame.bytes().get(*room..).unwrap_or_default(),
            Out::Slot(s) => s,
        }
    }
}

impl AsMut<[u8]> for Out<'_, '_> {
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            Out::Frame { frame, room, .. } => frame.buf().get_mut(*room..).unwrap_or_default(),
            Out::Slot(s) => s,
        }
    }
}
