//! Next hops for the frames the workers send themselves on AF_XDP: the softswitch leg
//! (forwarded requests, responses back to phones) leaves through the AF_XDP socket like the
//! challenges do, with the Ethernet header the kernel would have written.
//!
//! Layer: driver (safe code). A resolver thread reads the kernel's view over rtnetlink — the
//! interface's MAC and addresses, the routes of the main and local tables, the interface's
//! neighbour (ARP/NDP) entries — into an immutable [`NextHops`] snapshot that the workers swap
//! in when its generation changes (one atomic load per loop; never a syscall per packet). The
//! snapshot is rebuilt when the kernel announces a change of a link, an address, a route or a
//! neighbour (multicast groups), and every [`REFRESH`] in any case.
//!
//! A worker asks [`NextHops::lookup`] per frame: the longest matching route (a reject route
//! wins as the kernel's would) must leave through the AF_XDP interface, and its next hop (the
//! route's gateway, or the destination itself on a connected network) must have a neighbour
//! entry with a MAC. Otherwise the frame goes through the worker's kernel socket, which is
//! also what makes the kernel resolve a missing neighbour: the next snapshot has it, and the
//! frames after it leave on AF_XDP. Both fallbacks are counted (`xsk_upstream_unresolved`,
//! `xsk_upstream_elsewhere`).
//!
//! Kept fresh: the kernel only revalidates a neighbour it sends to, and frames sent on AF_XDP
//! bypass it. A lookup marks the entry it used; the resolver asks the kernel to revalidate every
//! used entry that has gone STALE (an `RTM_NEWNEIGH` with `NTF_USE`: what a transmit through
//! the kernel does), so a neighbour that disappears turns FAILED and its frames fall back to
//! the kernel socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// The snapshot is rebuilt at least this often, and used STALE neighbours are revalidated.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Routes read from the kernel at most (a full internet table belongs on a router, not on the
/// gateway: past this the snapshot keeps the first ones and says so in the log).
pub const MAX_ROUTES: usize = 4096;

const RT_TABLE_MAIN: u32 = 254;
const RT_TABLE_LOCAL: u32 = 255;

/// A route of the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The destination network.
    pub net: IpNet,
    /// What the kernel does with it.
    pub kind: RouteKind,
    /// The next hop, for a route through a gateway.
    pub gateway: Option<IpAddr>,
    /// The interface it leaves through.
    pub oif: u32,
    /// The preferred source address.
    pub src: Option<IpAddr>,
    /// Its metric (lower wins among routes of the same prefix).
    pub metric: u32,
}

/// The kinds of route the lookup tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A unicast route (through a gateway or to a connected network).
    Unicast,
    /// One of this host's addresses, a broadcast, a multipath or any route the lookup does not
    /// follow itself: the kernel socket handles those destinations.
    Kernel,
    /// Blackhole, unreachable, prohibit: the kernel refuses them (and so the socket does).
    Reject,
}

/// A neighbour entry of the AF_XDP interface.
#[derive(Debug)]
pub struct Neighbour {
    /// Its link-layer address.
    pub mac: [u8; 6],
    /// Its NUD state.
    pub state: NeighbourState,
    used: AtomicBool,
}

impl Neighbour {
    /// An entry (for snapshots built by hand: tests, benchmarks).
    pub fn new(mac: [u8; 6], state: NeighbourState) -> Neighbour {
        Neighbour {
            mac,
            state,
            used: AtomicBool::new(false),
        }
    }

    fn usable(&self) -> bool {
        matches!(
            self.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
                | NeighbourState::Noarp
        )
    }
}

/// Where a frame to one destination goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// Out of the AF_XDP interface: this Ethernet header (destination MAC, our MAC, the
    /// EtherType of `from`'s family), from this source address.
    Frame {
        /// The Ethernet header.
        eth: [u8; 14],
        /// The source address the kernel would have used.
        from: IpAddr,
    },
    /// Out of the AF_XDP interface, but its next hop has no usable neighbour entry yet.
    Unresolved,
    /// Not out of the AF_XDP interface (another interface, a local address, no route, a reject
    /// route, no source address of the family).
    Elsewhere,
}

/// The kernel's view of the AF_XDP interface, as the workers use it.
#[derive(Debug, Default)]
pub struct NextHops {
    /// The interface's index.
    pub ifindex: u32,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its addresses (primary first, as the kernel lists them).
    pub addrs: Vec<IpAddr>,
    /// Routes, longest prefix first, then lowest metric.
    routes: Vec<Route>,
    /// Neighbour entries of the interface.
    pub neighbours: HashMap<IpAddr, Neighbour>,
}

impl NextHops {
    /// A snapshot of interface `ifindex` (MAC `mac`, addresses `addrs`) with these routes and
    /// neighbours.
    pub fn new(
        ifindex: u32,
        mac: [u8; 6],
        addrs: Vec<IpAddr>,
        mut routes: Vec<Route>,
        neighbours: HashMap<IpAddr, Neighbour>,
    ) -> NextHops {
        routes.sort_by_key(|r| (std::cmp::Reverse(r.net.prefix_len()), r.metric));
        NextHops {
            ifindex,
            mac,
            addrs,
            routes,
            neighbours,
        }
    }

    /// The routes, longest prefix first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Where a datagram to `to`, sent by a socket bound to `bound` (unspecified: the route's
    /// or the interface's address), goes. Marks the neighbour it uses (see the module docs).
    pub fn lookup(&self, to: IpAddr, bound: IpAddr) -> Hop {
        let to = to.to_canonical();
        let bound = bound.to_canonical();
        let Some(route) = self.routes.iter().find(|r| r.net.contains(&to)) else {
            return Hop::Elsewhere;
        };
        if route.kind != RouteKind::Unicast || route.oif != self.ifindex {
            return Hop::Elsewhere;
        }
        let from = if !bound.is_unspecified() {
            bound
        } else if let Some(src) = route.src {
            src
        } else {
            match self
                .addrs
                .iter()
                .find(|a| a.is_ipv4() == to.is_ipv4() && is_link_local(a) == is_link_local(&to))
            {
                Some(a) => *a,
                None => return Hop::Elsewhere,
            }
        };
        if from.is_ipv4() != to.is_ipv4() {
            return Hop::Elsewhere;
        }
        let hop = route.gateway.unwrap_or(to);
        let Some(n) = self.neighbours.get(&hop) else {
            return Hop::Unresolved;
        };
        if !n.usable() {
            return Hop::Unresolved;
        }
        if !n.used.load(Ordering::Relaxed) {
            n.used.store(true, Ordering::Relaxed);
        }
        let mut eth = [0u8; 14];
        eth[..6].copy_from_slice(&n.mac);
        eth[6..12].copy_from_slice(&self.mac);
        let ethertype: u16 = if to.is_ipv4() { 0x0800 } else { 0x86dd };
        eth[12..].copy_from_slice(&ethertype.to_be_bytes());
        Hop::Frame { eth, from }
    }

    /// Whether two snapshots say the same (the `used` marks aside).
    fn same(&self, other: &NextHops) -> bool {
        self.ifindex == other.ifindex
            && self.mac == other.mac
            && self.addrs == other.addrs
            && self.routes == other.routes
            && self.neighbours.len() == other.neighbours.len()
            && self.neighbours.iter().all(|(ip, n)| {
                other
                    .neighbours
                    .get(ip)
                    .is_some_and(|o| o.mac == n.mac && o.state == n.state)
            })
    }

    /// The used entries that have gone STALE (and forget the marks).
    fn take_stale_used(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (ip, n) in &self.neighbours {
            if n.used.swap(false, Ordering::Relaxed) && n.state == NeighbourState::Stale {
                out.push(*ip);
            }
        }
        out
    }
}

fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

/// The current snapshot, shared by the resolver and the workers.
#[derive(Debug)]
pub struct Published {
    generation: AtomicU64,
    current: Mutex<Arc<NextHops>>,
}

impl Published {
    /// Start from `hops` (generation 1).
    pub fn new(hops: NextHops) -> Published {
        Published {
            generation: AtomicU64::new(1),
            current: Mutex::new(Arc::new(hops)),
        }
    }

    /// The generation of the current snapshot.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<NextHops> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn publish(&self, hops: NextHops) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(hops);
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// A worker's view: its snapshot, swapped when the generation moves.
#[derive(Debug)]
pub struct View {
    published: Arc<Published>,
    seen: u64,
    hops: Arc<NextHops>,
}

impl View {
    /// The view of `published`.
    pub fn new(published: Arc<Published>) -> View {
        let seen = published.generation();
        let hops = published.current();
        View {
            published,
            seen,
            hops,
        }
    }

    /// Take the newest snapshot if there is one (one atomic load otherwise).
    pub fn refresh(&mut self) {
        let g = self.published.generation();
        if g != self.seen {
            self.hops = self.published.current();
            self.seen = g;
        }
    }

    /// The snapshot in use.
    pub fn hops(&self) -> &NextHops {
        &self.hops
    }
}

/// Reading the kernel's tables failed.
#[derive(Debug, thiserror::Error)]
#[error("rtnetlink ({what}): {source}")]
pub struct NetlinkError {
    what: &'static str,
    source: std::io::Error,
}

fn nl_err(what: &'static str) -> impl FnOnce(std::io::Error) -> NetlinkError {
    move |source| NetlinkError { what, source }
}

/// An rtnetlink socket for requests (dumps, neighbour revalidation).
struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    fn open() -> Result<Netlink, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(nl_err("socket"))?;
        socket.bind_auto().map_err(nl_err("bind"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(nl_err("connect"))?;
        Ok(Netlink {
            socket,
            seq: 0,
            buf: vec![0; 1 << 16],
        })
    }

    /// Send `msg` with `flags` and collect the answers until DONE (dumps) or the ACK.
    fn request(
        &mut self,
        what: &'static str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.buffer_len()];
        req.serialize(&mut out);
        self.socket.send(&out, 0).map_err(nl_err(what))?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut answers = Vec::new();
        loop {
            let n = self
                .socket
                .recv(&mut &mut self.buf[..], 0)
                .map_err(nl_err(what))?;
            let mut at = 0;
            while at < n {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&self.buf[at..n]).map_err(|e| NetlinkError {
                        what,
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
                    })?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(answers),
                                Some(code) => Err(NetlinkError {
                                    what,
                                    source: std::io::Error::from_raw_os_error(-code.get()),
                                }),
                            };
                        }
                        NetlinkPayload::InnerMessage(m) => {
                            answers.push(m);
                            if !dump && flags & NLM_F_ACK == 0 {
                                return Ok(answers);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                at += len;
            }
        }
    }
}

/// Read interface `ifindex`'s snapshot from the kernel.
pub fn read(ifindex: u32) -> Result<NextHops, NetlinkError> {
    let mut nl = Netlink::open()?;
    read_with(&mut nl, ifindex)
}

fn read_with(nl: &mut Netlink, ifindex: u32) -> Result<NextHops, NetlinkError> {
    let dump = NLM_F_REQUEST | NLM_F_DUMP;
    let mut mac = [0u8; 6];
    for m in nl.request(
        "links",
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        dump,
    )? {
        if let RouteNetlinkMessage::NewLink(l) = m {
            if l.header.index == ifindex {
                for a in l.attributes {
                    if let LinkAttribute::Address(bytes) = a {
                        if let Ok(m) = <[u8; 6]>::try_from(bytes.as_slice()) {
                            mac = m;
                        }
                    }
                }
            }
        }
    }
    let mut addrs = Vec::new();
    for m in nl.request(
        "addresses",
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        dump,
    )? {
        if let RouteNetlinkMessage::NewAddress(a) = m {
            if a.header.index != ifindex {
                continue;
            }
            // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on
            // point-to-point links); IPv6 gives only IFA_ADDRESS.
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(address) {
                addrs.push(ip);
            }
        }
    }
    let mut routes = Vec::new();
    let mut dropped = 0usize;
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut q = RouteMessage::default();
        q.header.address_family = family;
        for m in nl.request("routes", RouteNetlinkMessage::GetRoute(q), dump)? {
            if let RouteNetlinkMessage::NewRoute(r) = m {
                match route_of(&r) {
                    Some(route) if routes.len() < MAX_ROUTES => routes.push(route),
                    Some(_) => dropped += 1,
                    None => {}
                }
            }
        }
    }
    if dropped > 0 {
        tracing::warn!(
            dropped,
            kept = MAX_ROUTES,
            "more routes than the AF_XDP next-hop table keeps: frames to the rest use the \
             kernel socket"
        );
    }
    let mut neighbours = HashMap::new();
    for m in nl.request(
        "neighbours",
        RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
        dump,
    )? {
        if let RouteNetlinkMessage::NewNeighbour(n) = m {
            if n.header.ifindex != ifindex {
                continue;
            }
            let mut ip = None;
            let mut mac = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                        ip = Some(IpAddr::V4(*v4))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                        ip = Some(IpAddr::V6(*v6))
                    }
                    NeighbourAttribute::LinkLayerAddress(l) => {
                        mac = <[u8; 6]>::try_from(l.as_slice()).ok()
                    }
                    _ => {}
                }
            }
            if let (Some(ip), Some(mac)) = (ip, mac) {
                neighbours.insert(ip, Neighbour::new(mac, n.header.state));
            }
        }
    }
    Ok(NextHops::new(ifindex, mac, addrs, routes, neighbours))
}

/// The route of an `RTM_NEWROUTE` of the main or local table, if it is one.
fn route_of(r: &RouteMessage) -> Option<Route> {
    let mut table = u32::from(r.header.table);
    let mut dst = None;
    let mut gateway = None;
    let mut oif = 0;
    let mut src = None;
    let mut metric = 0;
    let mut multipath = false;
    for a in &r.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Gateway(g) => gateway = ip_of(g),
            RouteAttribute::Oif(o) => oif = *o,
            RouteAttribute::PrefSource(s) => src = ip_of(s),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(_) | RouteAttribute::Via(_) => multipath = true,
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN && table != RT_TABLE_LOCAL {
        return None;
    }
    let len = r.header.destination_prefix_length;
    let dst = match (dst, r.header.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let net = IpNet::new(dst, len).ok()?.trunc();
    let kind = match r.header.kind {
        RouteType::Unicast if !multipath && r.header.source_prefix_length == 0 => {
            RouteKind::Unicast
        }
        RouteType::BlackHole | RouteType::Unreachable | RouteType::Prohibit => RouteKind::Reject,
        _ => RouteKind::Kernel,
    };
    Some(Route {
        net,
        kind,
        gateway,
        oif,
        src,
        metric,
    })
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Ask the kernel to revalidate the neighbour `ip` of `ifindex` (`NTF_USE`: as if it sent to
/// it).
fn revalidate(nl: &mut Netlink, ifindex: u32, ip: IpAddr) -> Result<(), NetlinkError> {
    let mut m = NeighbourMessage::default();
    m.header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.ifindex = ifindex;
    m.header.state = NeighbourState::Stale;
    m.header.flags = NeighbourFlags::Use;
    m.attributes.push(NeighbourAttribute::Destination(match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }));
    nl.request(
        "neighbour revalidation",
        RouteNetlinkMessage::NewNeighbour(m),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE,
    )
    .map(|_| ())
}

// Multicast groups (linux/rtnetlink.h).
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// The resolver: reads the snapshot at start and keeps it current on its own thread, until it
/// is dropped.
#[derive(Debug)]
pub struct Resolver {
    /// What the workers read.
    pub published: Arc<Published>,
    /// What the resolver thread did (for the log and the tests).
    pub stats: Arc<ResolverStats>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the resolver thread did.
#[derive(Debug, Default)]
pub struct ResolverStats {
    /// Snapshots published (changes seen).
    pub published: AtomicU64,
    /// Neighbours the kernel was asked to revalidate.
    pub revalidated: AtomicU64,
    /// Reads or revalidations that failed.
    pub errors: AtomicU64,
}

impl Resolver {
    /// Read interface `ifindex` now (an error here fails the start, naming rtnetlink), then
    /// follow its changes on a thread.
    pub fn start(ifindex: u32) -> Result<Resolver, NetlinkError> {
        let mut nl = Netlink::open()?;
        let first = read_with(&mut nl, ifindex)?;
        let mut events = Socket::new(NETLINK_ROUTE).map_err(nl_err("socket"))?;
        events.bind_auto().map_err(nl_err("bind"))?;
        for g in [
            RTNLGRP_LINK,
            RTNLGRP_NEIGH,
            RTNLGRP_IPV4_IFADDR,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV6_IFADDR,
            RTNLGRP_IPV6_ROUTE,
        ] {
            events
                .add_membership(g)
                .map_err(nl_err("multicast membership"))?;
        }
        events
            .set_non_blocking(true)
            .map_err(nl_err("non-blocking"))?;
        let published = Arc::new(Published::new(first));
        let stats = Arc::new(ResolverStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, st) = (published.clone(), stats.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("sipgw-neigh".into())
            .spawn(move || follow(nl, events, ifindex, &p, &s, &st))
            .map_err(nl_err("thread"))?;
        Ok(Resolver {
            published,
            stats,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn follow(
    mut nl: Netlink,
    events: Socket,
    ifindex: u32,
    published: &Published,
    stats: &ResolverStats,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 1 << 16];
    let mut last = Instant::now();
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        // Wait for a change (at most 100 ms, to see `stop`), then take every queued message:
        // one rebuild covers them all.
        let mut fds = [rustix::event::PollFd::new(
            &events,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
        let mut changed = false;
        loop {
            match events.recv(&mut &mut buf[..], 0) {
                Ok(0) => break,
                Ok(_) => changed = true,
                // ENOBUFS: notifications were lost; a rebuild reads everything anyway.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => changed = true,
                Err(_) => break,
            }
        }
        if !changed && last.elapsed() < REFRESH {
            continue;
        }
        if last.elapsed() >= REFRESH {
            let current = published.current();
            for ip in current.take_stale_used() {
                match revalidate(&mut nl, ifindex, ip) {
                    Ok(()) => {
                        stats.revalidated.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(neighbour = %ip, error = %e, "revalidation refused");
                    }
                }
            }
        }
        last = Instant::now();
        match read_with(&mut nl, ifindex) {
            Ok(hops) => {
                if failing {
                    tracing::info!("AF_XDP next hops readable again");
                    failing = false;
                }
                if !hops.same(&published.current()) {
                    published.publish(hops);
                    stats.published.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::warn!(error = %e, "AF_XDP next hops not refreshed (the last snapshot stays)");
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IF: u32 = 7;
    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const ROUTER: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
    const PHONE: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn route(net: &str, gateway: Option<&str>, oif: u32, kind: RouteKind) -> Route {
        Route {
            net: net.parse().unwrap(),
            kind,
            gateway: gateway.map(ip),
            oif,
            src: None,
            metric: 0,
        }
    }

    fn hops() -> NextHops {
        let mut n = HashMap::new();
        n.insert(
            ip("198.18.1.254"),
            Neighbour::new(ROUTER, NeighbourState::Stale),
        );
        n.insert(
            ip("198.18.1.2"),
            Neighbour::new(PHONE, NeighbourState::Reachable),
        );
        n.insert(
            ip("198.18.1.3"),
            Neighbour::new(PHONE, NeighbourState::Failed),
        );
        n.insert(
            ip("2001:2:1::2"),
            Neighbour::new(PHONE, NeighbourState::Permanent),
        );
        NextHops::new(
            IF,
            OURS,
            vec![ip("198.18.1.1"), ip("fe80::1"), ip("2001:2:1::1")],
            vec![
                route("0.0.0.0/0", Some("198.18.1.254"), IF, RouteKind::Unicast),
                route("198.18.1.0/24", None, IF, RouteKind::Unicast),
                route("198.18.9.0/24", None, 3, RouteKind::Unicast),
                route("198.18.66.0/24", None, 0, RouteKind::Reject),
                route("198.18.1.1/32", None, IF, RouteKind::Kernel),
                route("2001:2:1::/64", None, IF, RouteKind::Unicast),
            ],
            n,
        )
    }

    fn frame_to(h: &NextHops, to: &str, bound: &str) -> ([u8; 6], IpAddr) {
        match h.lookup(ip(to), ip(bound)) {
            Hop::Frame { eth, from } => (eth[..6].try_into().unwrap(), from),
            other => panic!("{to}: {other:?}"),
        }
    }

    #[test]
    fn longest_prefix_and_next_hop() {
        let h = hops();
        // Through the default gateway: the router's MAC, the interface's address.
        assert_eq!(
            frame_to(&h, "203.0.113.9", "0.0.0.0"),
            (ROUTER, ip("198.18.1.1"))
        );
        // On the connected network: the phone's own MAC; a bound address is kept.
        assert_eq!(
            frame_to(&h, "198.18.1.2", "198.18.1.1"),
            (PHONE, ip("198.18.1.1"))
        );
        // IPv6 (an unspecified [::] socket): not the link-local address.
        assert_eq!(
            frame_to(&h, "2001:2:1::2", "::"),
            (PHONE, ip("2001:2:1::1"))
        );
        // An IPv4-mapped destination is IPv4.
        assert_eq!(
            frame_to(&h, "::ffff:198.18.1.2", "::"),
            (PHONE, ip("198.18.1.1"))
        );
        let Hop::Frame { eth, .. } = h.lookup(ip("198.18.1.2"), ip("0.0.0.0")) else {
            panic!()
        };
        assert_eq!(&eth[6..12], &OURS);
        assert_eq!(&eth[12..], &[0x08, 0x00]);
        let Hop::Frame { eth, .. } = h.lookup(ip("2001:2:1::2"), ip("::")) else {
            panic!()
        };
        assert_eq!(&eth[12..], &[0x86, 0xdd]);
    }

    #[test]
    fn what_the_kernel_socket_keeps() {
        let h = hops();
        // Another interface, a reject route, a local address, no route at all (IPv6 outside
        // the /64), no neighbour entry, a FAILED one.
        assert_eq!(h.lookup(ip("198.18.9.5"), ip("0.0.0.0")), Hop::Elsewhere);
        assert_eq!(h.lookup(ip("198.18.66.5"), ip("0.0.0.0")), Hop::Elsewhere);
        assert_eq!(h.lookup(ip("198.18.1.1"), ip("0.0.0.0")), Hop::Elsewhere);
        assert_eq!(h.lookup(ip("2001:2:9::1"), ip("::")), Hop::Elsewhere);
        assert_eq!(h.lookup(ip("198.18.1.4"), ip("0.0.0.0")), Hop::Unresolved);
        assert_eq!(h.lookup(ip("198.18.1.3"), ip("0.0.0.0")), Hop::Unresolved);
        // A socket bound to an IPv6 address cannot send to an IPv4 destination.
        assert_eq!(
            h.lookup(ip("198.18.1.2"), ip("2001:2:1::1")),
            Hop::Elsewhere
        );
    }

    #[test]
    fn route_metric_breaks_ties_and_preferred_source_wins() {
        let mut a = route("198.18.5.0/24", Some("198.18.1.2"), IF, RouteKind::Unicast);
        a.metric = 200;
        let mut b = route(
            "198.18.5.0/24",
            Some("198.18.1.254"),
            IF,
            RouteKind::Unicast,
        );
        b.metric = 100;
        b.src = Some(ip("198.18.1.100"));
        let mut h = hops();
        let n = std::mem::take(&mut h.neighbours);
        let h = NextHops::new(IF, OURS, h.addrs.clone(), vec![a, b], n);
        assert_eq!(
            frame_to(&h, "198.18.5.1", "0.0.0.0"),
            (ROUTER, ip("198.18.1.100"))
        );
    }

    #[test]
    fn used_stale_entries_are_revalidated_once() {
        let h = hops();
        assert!(h.take_stale_used().is_empty(), "nothing used yet");
        frame_to(&h, "203.0.113.9", "0.0.0.0"); // the STALE router
        frame_to(&h, "198.18.1.2", "0.0.0.0"); // a REACHABLE phone
        assert_eq!(h.take_stale_used(), vec![ip("198.18.1.254")]);
        assert!(h.take_stale_used().is_empty(), "marks are cleared");
    }

    #[test]
    fn snapshots_compare_by_content() {
        let (a, b) = (hops(), hops());
        assert!(a.same(&b));
        frame_to(&a, "203.0.113.9", "0.0.0.0");
        assert!(a.same(&b), "a use mark is not a change");
        let mut c = hops();
        c.neighbours.insert(
            ip("198.18.1.2"),
            Neighbour::new(ROUTER, NeighbourState::Reachable),
        );
        assert!(!a.same(&c));
        let p = Published::new(hops());
        let mut v = View::new(Arc::new(p));
        let g = v.seen;
        v.refresh();
        assert_eq!(v.seen, g);
        v.published.publish(c);
        v.refresh();
        assert_eq!(v.seen, g + 1);
        assert_eq!(v.hops().neighbours[&ip("198.18.1.2")].mac, ROUTER);
    }
}
