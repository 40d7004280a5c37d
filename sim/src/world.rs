//! The world: hosts, NATs, links, and the event loop that moves datagrams between them in virtual time.
//!
//! ## Topology
//! The world is a tree of *realms* (address spaces). Realm 0 is the public network. Every NAT joins a
//! realm on its outside and creates a new realm (its inside network); every host joins exactly one realm.
//! Within a realm, a datagram goes to whichever host or NAT owns its destination IP; if no one does, it
//! goes to the realm's gateway NAT (outbound), and in the public realm it is dropped ("no route"). A realm
//! may have a second gateway for IPv6 ([`World::add_ipv6_gateway`]: a dual-stack network, typically an IPv4
//! NAT and an IPv6 stateful firewall); IPv6 destinations then leave through it. Every host and NAT has one
//! [`Link`] to its realm, crossed on the way up and on the way down.
//!
//! ## Sources and address families
//! A host's datagram leaves from the socket its transmit names (`None`: the first). When that address is not
//! of the destination's family, it leaves from the host's first address that is, as a dual-stack socket does
//! (and as `punch_core::drive::Drive::route` picks a server's socket); a host with no address of that family
//! cannot send there (dropped, "no route").
//!
//! ## Time
//! There are no ticks and no sleeps. The loop repeatedly takes the earliest of (a) the next queued
//! delivery or scheduled action, ordered by `(time, sequence number)`, and (b) the earliest
//! deadline of any machine (ties: lowest host index), jumps the clock there and processes it. Machines are
//! driven through [`punch_core::Machine`] (each on a [`Host`]); after every mutation of a machine it is
//! drained: transmits, then events, then its deadline is read again.
//! A step limit and a same-instant limit turn runaway loops into a [`SimError`] that carries the trace.
use crate::clock::{Clock, Ms};
use crate::host::{Host, Hosted};
use crate::link::{Crossing, Link, LinkConfig};
use crate::nat::{Inbound, NatBox, NatConfig, Outbound};
use crate::rng::{derive_rng, derive_seed};
use crate::trace::{describe_bytes, Detail, Kind, Trace};
use punch_core::Machine;
use std::any::Any;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// An address space: the public network or the inside of one NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RealmId(pub usize);

impl RealmId {
    /// The public network, where servers and NATs' outsides live.
    pub const PUBLIC: RealmId = RealmId(0);
}

/// A host (a machine with sockets) in the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub usize);

/// A NAT (or UDP firewall) in the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NatId(pub usize);

/// Why a run stopped early.
#[derive(Debug, Clone)]
pub struct SimError {
    /// What went wrong, in words.
    pub message: String,
    /// Virtual time of the failure.
    pub at: Duration,
    /// The last lines of the trace.
    pub trace_tail: String,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation error at {}: {}\nlast trace lines:\n{}",
            Ms(self.at),
            self.message,
            self.trace_tail
        )
    }
}

impl std::error::Error for SimError {}

/// Counters for a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events processed (deliveries and timers).
    pub steps: u64,
    /// Datagrams sent by machines.
    pub sent: u64,
    /// Datagrams delivered to machines.
    pub delivered: u64,
    /// Datagrams dropped (by a link, a NAT, or for want of a route).
    pub dropped: u64,
    /// Transmits whose `source` is not one of the host's sockets (not sent; a trace line of kind error).
    pub unknown_source: u64,
}

struct Packet {
    id: u64,
    src: SocketAddr,
    dst: SocketAddr,
    payload: Vec<u8>,
    /// IPv4 TTL / IPv6 hop limit: every NAT and the internet's router between them take one; at the last
    /// one the packet is dropped (a NAT drops it before translating, as Linux does: no mapping is made).
    ttl: u8,
}

/// The TTL a host's datagram leaves with unless the transmit sets one (`Transmit::ttl`).
pub const DEFAULT_TTL: u8 = 64;

/// Takes one hop off `pkt`'s TTL; `false` if it expires here (TTL 1 or 0 on arrival).
fn hop(pkt: &mut Packet) -> bool {
    if pkt.ttl <= 1 {
        return false;
    }
    pkt.ttl -= 1;
    true
}

impl Packet {
    fn copy(&self) -> Packet {
        Packet {
            id: self.id,
            src: self.src,
            dst: self.dst,
            payload: self.payload.clone(),
            ttl: self.ttl,
        }
    }
}

/// A queued [`Pending`]'s time and sequence number, and where it waits in [`Slots`]. Ordered by `(at, seq)`
/// only: `seq` is unique, so the order is total and the heap pops exactly what the ordered map it replaced
/// did. The heap holds only these 32 bytes, not the pending packet itself, so sifting moves little.
struct Queued {
    at: Duration,
    seq: u64,
    slot: u32,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Where queued [`Pending`]s wait: an arena of reusable slots, so a packet is moved into the queue and out
/// of it once, and the slots (and their storage) are reused step after step.
#[derive(Default)]
struct Slots {
    slots: Vec<Option<Pending>>,
    free: Vec<u32>,
}

impl Slots {
    fn put(&mut self, p: Pending) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(p);
                i
            }
            None => {
                self.slots.push(Some(p));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 queued")
            }
        }
    }

    fn take(&mut self, i: u32) -> Pending {
        self.free.push(i);
        self.slots[i as usize].take().expect("a queued slot")
    }
}

/// A scheduled change to a machine, e.g. "the user types hello".
type Action = Box<dyn FnOnce(&mut dyn Hosted, Instant)>;

enum Pending {
    /// The packet has crossed `from`'s uplink and is now in `realm`.
    ToRealm {
        realm: usize,
        from: usize,
        pkt: Packet,
    },
    /// The packet has crossed `elem`'s downlink and arrives at it.
    ToElement {
        elem: usize,
        pkt: Packet,
    },
    Action {
        host: usize,
        label: String,
        action: Action,
    },
    Flush {
        nat: usize,
    },
    Rebind {
        nat: usize,
        internal: SocketAddr,
    },
}

enum Body {
    Host {
        node: Box<dyn Hosted>,
        /// The machine's deadline (virtual time) and its reason, as of the last drain.
        timer: Option<(Duration, &'static str)>,
    },
    Nat {
        nat: Box<NatBox>,
        inside: usize,
    },
}

struct Element {
    name: String,
    realm: usize,
    link: Link,
    body: Body,
}

struct Realm {
    name: String,
    gateway: Option<usize>,
    /// The gateway for IPv6 destinations, when it is not `gateway` (a dual-stack network).
    gateway6: Option<usize>,
}

impl Realm {
    /// The gateway a datagram to `dst` leaves through.
    fn gateway_for(&self, dst: IpAddr) -> Option<usize> {
        match dst {
            IpAddr::V6(_) => self.gateway6.or(self.gateway),
            IpAddr::V4(_) => self.gateway,
        }
    }
}

struct Partition {
    a: Vec<usize>,
    b: Vec<usize>,
    from: Duration,
    until: Duration,
}

/// A simulated network with machines on it.
pub struct World {
    seed: u64,
    clock: Clock,
    elems: Vec<Element>,
    realms: Vec<Realm>,
    /// Who owns an IP in a realm. A handful of entries: a linear scan beats hashing them.
    routes: Vec<((usize, IpAddr), usize)>,
    partitions: Vec<Partition>,
    /// Deliveries and actions, earliest `(time, sequence number)` first.
    queue: BinaryHeap<Reverse<Queued>>,
    /// What the queue's entries stand for.
    slots: Slots,
    seq: u64,
    next_packet: u64,
    trace: Trace,
    describe: fn(&[u8]) -> String,
    stats: Stats,
    /// Maximum number of steps over the world's life (all `run_*` calls together).
    pub max_steps: u64,
    /// Maximum number of steps at one virtual instant (a machine that never lets time advance).
    pub max_steps_per_instant: u64,
}

impl World {
    /// An empty world. `base` is the only real instant the simulation uses (see [`crate::clock`]).
    pub fn new(seed: u64, base: Instant) -> World {
        World {
            seed,
            clock: Clock::new(base),
            elems: Vec::new(),
            realms: vec![Realm {
                name: "internet".into(),
                gateway: None,
                gateway6: None,
            }],
            routes: Vec::new(),
            partitions: Vec::new(),
            queue: BinaryHeap::new(),
            slots: Slots::default(),
            seq: 0,
            next_packet: 1,
            trace: Trace::default(),
            describe: describe_bytes,
            stats: Stats::default(),
            max_steps: 5_000_000,
            max_steps_per_instant: 100_000,
        }
    }

    /// The seed all randomness derives from.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        self.clock.elapsed()
    }
    /// Virtual time as the machines see it.
    pub fn instant(&self) -> Instant {
        self.clock.instant()
    }
    /// The virtual clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
    /// What was recorded so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }
    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }
    /// How much the trace records (default: everything).
    pub fn set_detail(&mut self, detail: Detail) {
        self.trace.detail = detail;
    }
    /// How payloads are described in the trace.
    pub fn set_describe(&mut self, describe: fn(&[u8]) -> String) {
        self.describe = describe;
    }
    /// Adds a line of kind [`Kind::Action`] (for scenario annotations).
    pub fn note(&mut self, who: &str, text: impl FnOnce() -> String) {
        let now = self.now();
        self.trace.push(now, Kind::Action, who, text);
    }

    fn new_link(&self, name: &str, config: LinkConfig) -> Link {
        Link::new(config, derive_rng(self.seed, &format!("link:{name}")))
    }

    /// Adds a NAT called `name` whose outside is in realm `outside` with address `public_ip` (for a
    /// non-translating firewall `public_ip` is unused). Returns the NAT and its inside realm.
    pub fn add_nat(
        &mut self,
        name: &str,
        outside: RealmId,
        public_ip: IpAddr,
        config: NatConfig,
        link: LinkConfig,
    ) -> (NatId, RealmId) {
        let idx = self.elems.len();
        let inside = self.realms.len();
        self.realms.push(Realm {
            name: format!("{name}-lan"),
            gateway: Some(idx),
            gateway6: None,
        });
        (
            self.push_gateway(name, outside, inside, public_ip, config, link),
            RealmId(inside),
        )
    }

    /// The NAT element of [`World::add_nat`] and [`World::add_ipv6_gateway`]: its route (if it translates),
    /// its state, its link.
    fn push_gateway(
        &mut self,
        name: &str,
        outside: RealmId,
        inside: usize,
        public_ip: IpAddr,
        config: NatConfig,
        link: LinkConfig,
    ) -> NatId {
        let idx = self.elems.len();
        if config.translate {
            self.set_route((outside.0, public_ip), idx);
        }
        let nat = NatBox::new(
            config,
            public_ip,
            derive_rng(self.seed, &format!("nat:{name}")),
        );
        let link = self.new_link(name, link);
        self.elems.push(Element {
            name: name.into(),
            realm: outside.0,
            link,
            body: Body::Nat {
                nat: Box::new(nat),
                inside,
            },
        });
        NatId(idx)
    }

    /// Adds a second gateway called `name` to the existing inside realm `inside` (made by [`World::add_nat`]):
    /// IPv6 destinations from `inside` leave through it, into `outside`, and it carries what comes back. It
    /// is usually a stateful firewall ([`NatConfig::udp_firewall`]: the inside hosts' global IPv6 addresses
    /// pass unchanged); a translating one (NAT66) needs an IPv6 `public_ip`. Add it before the hosts.
    pub fn add_ipv6_gateway(
        &mut self,
        name: &str,
        outside: RealmId,
        inside: RealmId,
        public_ip: IpAddr,
        config: NatConfig,
        link: LinkConfig,
    ) -> NatId {
        self.realms[inside.0].gateway6 = Some(self.elems.len());
        self.push_gateway(name, outside, inside.0, public_ip, config, link)
    }

    /// Adds a host called `name` in `realm`, on the host's addresses ([`Host::addrs`]). Its machine is
    /// drained at once (construction may already want to send).
    pub fn add_host<M: Machine + 'static>(
        &mut self,
        name: &str,
        realm: RealmId,
        link: LinkConfig,
        host: Host<M>,
    ) -> HostId {
        let idx = self.elems.len();
        let mut node: Box<dyn Hosted> = Box::new(host);
        node.attach(self.clock.at(Duration::ZERO));
        for a in node.addrs() {
            self.set_route((realm.0, a.ip()), idx);
            // Behind a non-translating firewall the host's address is also reachable from outside.
            if let Some(g) = self.realms[realm.0].gateway_for(a.ip()) {
                if let Body::Nat { nat, .. } = &self.elems[g].body {
                    if !nat.config.translate {
                        let outer = self.elems[g].realm;
                        self.set_route((outer, a.ip()), g);
                    }
                }
            }
        }
        let link = self.new_link(name, link);
        self.elems.push(Element {
            name: name.into(),
            realm: realm.0,
            link,
            body: Body::Host { node, timer: None },
        });
        self.drain(idx);
        HostId(idx)
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<HostId> {
        self.elems
            .iter()
            .position(|e| e.name == name && matches!(e.body, Body::Host { .. }))
            .map(HostId)
    }

    /// The name `host` was given.
    pub fn name(&self, host: HostId) -> &str {
        &self.elems[host.0].name
    }

    /// A seed for a machine on a host, derived from the world seed and the host's name.
    pub fn seed_for(&self, name: &str) -> u64 {
        derive_seed(self.seed, &format!("node:{name}"))
    }

    /// The [`Host`] of `host`, if it runs an `M`.
    pub fn host_mut<M: Machine + 'static>(&mut self, host: HostId) -> Option<&mut Host<M>> {
        match &mut self.elems[host.0].body {
            Body::Host { node, .. } => (node.as_mut() as &mut dyn Any).downcast_mut(),
            Body::Nat { .. } => None,
        }
    }

    /// The machine on `host`, if it runs an `M` and has started.
    pub fn machine_mut<M: Machine + 'static>(&mut self, host: HostId) -> Option<&mut M> {
        self.host_mut::<M>(host)?.machine_mut()
    }

    /// The NAT box (to inspect mappings in tests).
    pub fn nat_mut(&mut self, nat: NatId) -> &mut NatBox {
        match &mut self.elems[nat.0].body {
            Body::Nat { nat, .. } => nat,
            Body::Host { .. } => panic!("not a NAT"),
        }
    }

    /// Changes an element's link (for example to take it down later).
    pub fn link_mut(&mut self, name: &str) -> Option<&mut LinkConfig> {
        self.elems
            .iter_mut()
            .find(|e| e.name == name)
            .map(|e| &mut e.link.config)
    }

    /// `key`'s IP in `key`'s realm belongs to element `to` (replacing an earlier owner).
    fn set_route(&mut self, key: (usize, IpAddr), to: usize) {
        match self.routes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, t)) => *t = to,
            None => self.routes.push((key, to)),
        }
    }

    /// The element that owns `ip` in `realm`.
    fn route_to(&self, realm: usize, ip: IpAddr) -> Option<usize> {
        self.routes
            .iter()
            .find(|((r, i), _)| *r == realm && *i == ip)
            .map(|&(_, to)| to)
    }

    fn push(&mut self, at: Duration, p: Pending) {
        self.seq += 1;
        let slot = self.slots.put(p);
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            slot,
        }));
    }

    /// Runs `action` on `host` (which must run an `M`) at virtual time `at`, then drains it. `label` goes in
    /// the trace.
    pub fn schedule<M: Machine + 'static>(
        &mut self,
        at: Duration,
        host: HostId,
        label: impl Into<String>,
        action: impl FnOnce(&mut Host<M>, Instant) + 'static,
    ) {
        let action: Action = Box::new(move |node, now| {
            let host = (node as &mut dyn Any)
                .downcast_mut::<Host<M>>()
                .expect("an action for the machine type the host runs");
            action(host, now);
        });
        self.push(
            at.max(self.now()),
            Pending::Action {
                host: host.0,
                label: label.into(),
                action,
            },
        );
    }

    /// The NAT forgets all its state at `at` (a router reboot).
    pub fn flush_nat_at(&mut self, at: Duration, nat: NatId) {
        self.push(at.max(self.now()), Pending::Flush { nat: nat.0 });
    }

    /// At `at`, the NAT takes the mappings of the inside socket `internal` away and gives it a new public port
    /// on its next datagram ([`NatBox::rebind`]).
    pub fn rebind_at(&mut self, at: Duration, nat: NatId, internal: SocketAddr) {
        self.push(
            at.max(self.now()),
            Pending::Rebind {
                nat: nat.0,
                internal,
            },
        );
    }

    /// No datagram passes between any element named in `a` and any named in `b` during `[from, until)`.
    /// Names are host or NAT names; the check happens wherever a datagram moves between two elements in a
    /// realm (so to cut off a host behind a NAT from the internet, name its NAT).
    pub fn partition(&mut self, a: &[&str], b: &[&str], from: Duration, until: Duration) {
        let ids = |names: &[&str]| -> Vec<usize> {
            names
                .iter()
                .map(|n| {
                    self.elems
                        .iter()
                        .position(|e| e.name == *n)
                        .unwrap_or_else(|| panic!("no element {n}"))
                })
                .collect()
        };
        let (a, b) = (ids(a), ids(b));
        self.partitions.push(Partition { a, b, from, until });
    }

    fn partitioned(&self, x: usize, y: usize, now: Duration) -> bool {
        self.partitions.iter().any(|p| {
            now >= p.from
                && now < p.until
                && ((p.a.contains(&x) && p.b.contains(&y))
                    || (p.a.contains(&y) && p.b.contains(&x)))
        })
    }

    fn drop_packet(&mut self, who: usize, id: u64, reason: impl FnOnce() -> String) {
        self.stats.dropped += 1;
        let now = self.now();
        let name = &self.elems[who].name;
        self.trace
            .push(now, Kind::Drop, name, || format!("#{id} {}", reason()));
    }

    /// Whether the trace would drop a NAT's notes and drop reasons anyway (so the NAT need not write them).
    fn nat_quiet(&self) -> bool {
        !self.trace.wants(Kind::Nat) && !self.trace.wants(Kind::Drop)
    }

    fn nat_notes(&mut self, elem: usize) {
        let notes = match &mut self.elems[elem].body {
            Body::Nat { nat, .. } => nat.take_notes(),
            Body::Host { .. } => return,
        };
        let now = self.now();
        for n in notes {
            self.trace
                .push(now, Kind::Nat, &self.elems[elem].name, || n);
        }
    }

    /// Sends `pkt` across `elem`'s link, up into its realm or down into `elem`.
    fn cross(&mut self, elem: usize, pkt: Packet, up: bool) {
        let now = self.now();
        match self.elems[elem].link.cross(now, up) {
            Crossing::Drop(reason) => {
                let dir = if up { "up" } else { "down" };
                // Only for the trace line (not built when the trace is off).
                let name = if self.trace.wants(Kind::Drop) {
                    self.elems[elem].name.clone()
                } else {
                    String::new()
                };
                self.drop_packet(elem, pkt.id, || format!("{reason} ({name} {dir})"));
            }
            Crossing::Deliver(first, copy) => {
                let next = |pkt: Packet, realm: usize| {
                    if up {
                        Pending::ToRealm {
                            realm,
                            from: elem,
                            pkt,
                        }
                    } else {
                        Pending::ToElement { elem, pkt }
                    }
                };
                let realm = self.elems[elem].realm;
                match copy {
                    None => self.push(now + first, next(pkt, realm)),
                    Some(second) => {
                        let dup = pkt.copy();
                        self.push(now + first, next(pkt, realm));
                        let id = dup.id;
                        self.trace.push(now, Kind::Dup, &self.elems[elem].name, || {
                            format!("#{id} duplicated")
                        });
                        self.push(now + second, next(dup, realm));
                    }
                }
            }
        }
    }

    fn route(&mut self, realm: usize, from: usize, mut pkt: Packet) {
        let now = self.now();
        // The internet (the realm with no gateway) is one router between the NATs.
        if self.realms[realm].gateway.is_none() && !hop(&mut pkt) {
            self.stats.dropped += 1;
            let (name, id) = (self.realms[realm].name.clone(), pkt.id);
            self.trace.push(now, Kind::Drop, &name, || {
                format!("#{id} TTL expired in transit")
            });
            return;
        }
        if let Some(to) = self.route_to(realm, pkt.dst.ip()) {
            if self.partitioned(from, to, now) {
                let (a, b) = (self.elems[from].name.clone(), self.elems[to].name.clone());
                self.drop_packet(from, pkt.id, || format!("partition between {a} and {b}"));
                return;
            }
            self.cross(to, pkt, false);
        } else if let Some(g) = self.realms[realm]
            .gateway_for(pkt.dst.ip())
            .filter(|&g| g != from)
        {
            self.outbound(g, pkt);
        } else {
            self.stats.dropped += 1;
            let name = self.realms[realm].name.clone();
            let (id, dst) = (pkt.id, pkt.dst);
            self.trace.push(now, Kind::Drop, &name, || {
                format!("#{id} no route to {dst}")
            });
        }
    }

    fn outbound(&mut self, g: usize, mut pkt: Packet) {
        let now = self.now();
        let quiet = self.nat_quiet();
        if !hop(&mut pkt) {
            self.drop_packet(g, pkt.id, || "TTL expired (before translation)".into());
            return;
        }
        let (verdict, inside) = match &mut self.elems[g].body {
            Body::Nat { nat, inside } => {
                nat.set_quiet(quiet);
                (nat.outbound(now, pkt.src, pkt.dst), *inside)
            }
            Body::Host { .. } => unreachable!("gateways are NATs"),
        };
        self.nat_notes(g);
        match verdict {
            Outbound::Forward { src } => {
                pkt.src = src;
                self.cross(g, pkt, true);
            }
            Outbound::Hairpin { src, dst } => {
                pkt.src = src;
                pkt.dst = dst;
                self.route(inside, g, pkt);
            }
            Outbound::Drop(reason) => self.drop_packet(g, pkt.id, || reason),
        }
    }

    fn arrive(&mut self, elem: usize, mut pkt: Packet) {
        let now = self.now();
        let quiet = self.nat_quiet();
        let instant = self.instant();
        let describe = self.describe;
        match &mut self.elems[elem].body {
            Body::Nat { nat, inside } => {
                let inside = *inside;
                nat.set_quiet(quiet);
                let verdict = nat.inbound(now, pkt.src, pkt.dst);
                self.nat_notes(elem);
                match verdict {
                    Inbound::Forward { dst } if !hop(&mut pkt) => {
                        let _ = dst;
                        self.drop_packet(elem, pkt.id, || "TTL expired (after translation)".into());
                    }
                    Inbound::Forward { dst } => {
                        pkt.dst = dst;
                        self.route(inside, elem, pkt);
                    }
                    Inbound::Drop(reason) => self.drop_packet(elem, pkt.id, || reason),
                }
            }
            Body::Host { node, .. } => {
                if !node.owns(&pkt.dst) {
                    let dst = pkt.dst;
                    self.drop_packet(elem, pkt.id, || format!("no socket at {dst}"));
                    return;
                }
                node.handle_input(instant, pkt.dst, pkt.src, &pkt.payload);
                self.stats.delivered += 1;
                let (id, src, dst) = (pkt.id, pkt.src, pkt.dst);
                let payload = pkt.payload;
                self.trace
                    .push(now, Kind::Recv, &self.elems[elem].name, || {
                        format!("#{id} {src} -> {dst}  {}", describe(&payload))
                    });
                self.drain(elem);
            }
        }
    }

    /// Sends everything the machine on `elem` wants to send, records its events, re-reads its timer.
    fn drain(&mut self, elem: usize) {
        let now = self.now();
        loop {
            let (t, src) = match &mut self.elems[elem].body {
                Body::Host { node, .. } => {
                    let Some(t) = node.poll_transmit() else { break };
                    let addrs = node.addrs();
                    let src = match t.source {
                        None => addrs.first().copied(),
                        Some(s) => node.owns(&s).then_some(s),
                    };
                    // The other family: the host's first address of the destination's family, if any.
                    let dst = t.destination;
                    let src = src.map(|s| {
                        if s.is_ipv4() == dst.is_ipv4() {
                            Ok(s)
                        } else {
                            addrs
                                .iter()
                                .find(|a| a.is_ipv4() == dst.is_ipv4())
                                .copied()
                                .ok_or(s)
                        }
                    });
                    (t, src)
                }
                Body::Nat { .. } => return,
            };
            let src =
                match src {
                    Some(Ok(s)) => Some(s),
                    Some(Err(s)) => {
                        self.stats.dropped += 1;
                        let dst = t.destination;
                        self.trace.push(now, Kind::Drop, &self.elems[elem].name, || {
                        format!("no route: {s} -> {dst} (the host has no address of that family)")
                    });
                        continue;
                    }
                    None => None,
                };
            let Some(src) = src else {
                // Production would send it on socket 0; here it is a bug in the machine (or the scenario).
                self.stats.unknown_source += 1;
                let (s, dst) = (t.source, t.destination);
                self.trace
                    .push(now, Kind::Error, &self.elems[elem].name, || {
                        let s = s.map_or("none".to_string(), |s| s.to_string());
                        format!("transmit to {dst} from unknown source socket {s}: not sent")
                    });
                continue;
            };
            let id = self.next_packet;
            self.next_packet += 1;
            self.stats.sent += 1;
            let describe = self.describe;
            let pkt = Packet {
                id,
                src,
                dst: t.destination,
                payload: t.payload,
                ttl: t.ttl.unwrap_or(DEFAULT_TTL),
            };
            self.trace
                .push(now, Kind::Send, &self.elems[elem].name, || {
                    format!(
                        "#{id} {} -> {}  {}",
                        pkt.src,
                        pkt.dst,
                        describe(&pkt.payload)
                    )
                });
            self.cross(elem, pkt, true);
        }
        if self.trace.wants(Kind::Event) {
            loop {
                let ev = match &mut self.elems[elem].body {
                    Body::Host { node, .. } => node.poll_event(),
                    Body::Nat { .. } => return,
                };
                let Some(ev) = ev else { break };
                self.trace
                    .push(now, Kind::Event, &self.elems[elem].name, || ev);
            }
        } else if let Body::Host { node, .. } = &mut self.elems[elem].body {
            // Nobody reads the lines: keep the typed events, skip rendering them.
            while node.take_event() {}
        }
        let clock = self.clock;
        if let Body::Host { node, timer, .. } = &mut self.elems[elem].body {
            *timer = node
                .poll_deadline()
                .map(|d| (clock.since_base(d.at), d.reason));
        }
    }

    fn next_timer(&self) -> Option<(Duration, usize)> {
        self.elems
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.body {
                Body::Host {
                    timer: Some((t, _)),
                    ..
                } => Some((*t, i)),
                _ => None,
            })
            .min()
    }

    fn error(&self, message: String) -> SimError {
        SimError {
            message,
            at: self.now(),
            trace_tail: self.trace.tail(60),
        }
    }

    /// Runs until virtual time `end` (inclusive); the clock then reads `end`.
    pub fn run_until(&mut self, end: Duration) -> Result<(), SimError> {
        self.run_until_or(end, |_| false).map(|_| ())
    }

    /// Runs until virtual time `end` or until `stop` returns true (checked before every step).
    /// Returns whether `stop` ended the run.
    pub fn run_until_or(
        &mut self,
        end: Duration,
        mut stop: impl FnMut(&mut World) -> bool,
    ) -> Result<bool, SimError> {
        let mut last = None;
        let mut same_instant = 0u64;
        loop {
            if stop(self) {
                return Ok(true);
            }
            let queued = self.queue.peek().map(|q| q.0.at);
            let timer = self.next_timer();
            let when = match (queued, timer) {
                (None, None) => None,
                (Some(q), None) => Some(q),
                (None, Some((t, _))) => Some(t),
                (Some(q), Some((t, _))) => Some(q.min(t)),
            };
            let when = when.map(|w| w.max(self.now()));
            let Some(when) = when.filter(|&w| w <= end) else {
                self.clock.advance_to(end);
                return Ok(false);
            };
            self.stats.steps += 1;
            if self.stats.steps > self.max_steps {
                return Err(self.error(format!("step limit {} reached", self.max_steps)));
            }
            if last == Some(when) {
                same_instant += 1;
                if same_instant > self.max_steps_per_instant {
                    return Err(self.error(format!(
                        "{} steps without virtual time advancing (a machine's timeout never moves forward?)",
                        self.max_steps_per_instant
                    )));
                }
            } else {
                last = Some(when);
                same_instant = 0;
            }
            self.clock.advance_to(when);
            // Queue first on ties: a datagram and a timer at the same instant see the datagram first.
            if queued.is_some_and(|q| q.max(when) <= when) {
                let Reverse(q) = self.queue.pop().expect("non-empty");
                let p = self.slots.take(q.slot);
                self.process(p);
            } else if let Some((_, host)) = timer {
                let instant = self.instant();
                let now = self.now();
                if let Body::Host { node, timer } = &mut self.elems[host].body {
                    let reason = timer.map_or("", |t| t.1);
                    node.handle_timeout(instant);
                    self.trace
                        .push(now, Kind::Timer, &self.elems[host].name, || reason.into());
                }
                self.drain(host);
            }
        }
    }

    fn process(&mut self, p: Pending) {
        match p {
            Pending::ToRealm { realm, from, pkt } => self.route(realm, from, pkt),
            Pending::ToElement { elem, pkt } => self.arrive(elem, pkt),
            Pending::Action {
                host,
                label,
                action,
            } => {
                let now = self.now();
                let instant = self.instant();
                self.trace
                    .push(now, Kind::Action, &self.elems[host].name, || label);
                if let Body::Host { node, .. } = &mut self.elems[host].body {
                    action(node.as_mut(), instant);
                }
                self.drain(host);
            }
            Pending::Flush { nat } => {
                let quiet = self.nat_quiet();
                if let Body::Nat { nat: n, .. } = &mut self.elems[nat].body {
                    n.set_quiet(quiet);
                    n.flush();
                }
                self.nat_notes(nat);
            }
            Pending::Rebind { nat, internal } => {
                let quiet = self.nat_quiet();
                if let Body::Nat { nat: n, .. } = &mut self.elems[nat].body {
                    n.set_quiet(quiet);
                    n.rebind(internal);
                }
                self.nat_notes(nat);
            }
        }
    }
}
