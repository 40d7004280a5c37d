//! Scenarios: a rendezvous server and two (or more) chatting peers behind NATs, described in a few lines.
//!
//! ```no_run
//! use punch_sim::scenario::Scenario;
//! use punch_sim::{ms, secs, Nat, Profile};
//! let outcome = Scenario::new(7)
//!     .server_with_two_ips()
//!     .host("a", Nat::PortRestricted)
//!     .host("b", Profile::from(Nat::Symmetric).linux())
//!     .link(40, 0.05)
//!     .type_at("a", ms(0), "hello")
//!     .type_at("b", secs(2), "hi!")
//!     .run();
//! assert!(outcome.exactly_once_in_order().is_ok());
//! println!("{}", outcome.trace);
//! ```
//!
//! Topology: the server is on the public network at 198.51.100.1:3478 (and 198.51.100.2:3479 with
//! [`Scenario::server_with_two_ips`]). The i-th host (from 0) behind its own NAT has 192.168.(i+1).10 and
//! the NAT 203.0.113.(10(i+1)); an `open` or firewalled host has 198.51.100.(20+i). Hosts use local port
//! 5000 + 1000i. A dual-stack host ([`Scenario::ipv6`]) also has the global IPv6 address
//! 2001:db8:(i+1)::10 (hosts behind it: ::11, ::12, ...) on the same port, behind its own IPv6 gateway
//! (a stateful firewall or a plain router) next to its IPv4 NAT; the server then also listens on
//! `[2001:db8::1]:3478` and dual-stack peers register there (IPv6 first, RFC 8305). [`Scenario::link`]
//! sets every host's access link so that any host-to-host or host-to-server round trip is `rtt_ms` and each
//! one-way trip is lost with probability `loss`.
use crate::clock::{base_instant, Ms};
use crate::host::Host;
use crate::link::LinkConfig;
use crate::nat::NatConfig;
use crate::profile::Profile;
use crate::trace::{Detail, Trace};
use crate::world::{HostId, NatId, RealmId, SimError, Stats, World};
use punch_core::nat::{NatBehaviour, PortAllocation};
use punch_core::{Path, Peer, PeerConfig, PeerEvent};
use punch_core::{Server, ServerConfig};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The server's primary address in every scenario.
pub const SERVER_ADDR: &str = "198.51.100.1:3478";
/// Its alternate address with [`Scenario::server_with_two_ips`].
pub const SERVER_ALT_ADDR: &str = "198.51.100.2:3479";
/// Its IPv6 address when a host is dual-stack ([`Scenario::ipv6`]).
pub const SERVER6_ADDR: &str = "[2001:db8::1]:3478";

/// What the peers know about their own NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knowledge {
    /// Run NAT detection (needs the two-IP server).
    Detect,
    /// Announce the true behaviour of the simulated NAT without testing it (`punch sim --knowledge assume`).
    Assume,
    /// Announce nothing (unknown).
    Unknown,
}

/// The NAT behaviour a simulated NAT really has (`None`: open host).
pub fn behaviour_of(config: Option<&NatConfig>) -> NatBehaviour {
    match config {
        None => NatBehaviour {
            behind_nat: Some(false),
            mapping: Some(punch_core::nat::Mapping::EndpointIndependent),
            filtering: Some(punch_core::nat::Filtering::EndpointIndependent),
            allocation: Some(PortAllocation::Preserved),
        },
        Some(c) => NatBehaviour {
            behind_nat: Some(c.translate),
            mapping: Some(c.mapping),
            filtering: Some(c.filtering),
            allocation: Some(match c.allocation {
                crate::nat::PortAlloc::Preserve => PortAllocation::Preserved,
                crate::nat::PortAlloc::Sequential { step, .. } => {
                    PortAllocation::Sequential { step }
                }
                crate::nat::PortAlloc::Random => PortAllocation::Random,
            }),
        },
    }
}

#[derive(Debug, Clone)]
struct HostSpec {
    name: String,
    label: String,
    nat: Option<NatConfig>,
    /// Share the NAT of this earlier host.
    behind: Option<String>,
    start: Duration,
    relay_only: bool,
    /// Dual stack: the host also has a global IPv6 address, behind this IPv6 gateway (`Some(None)`: a router
    /// that filters nothing; `Some(Some(fw))`: a stateful firewall).
    ipv6: Option<Option<NatConfig>>,
    /// A dual-stack host that registers over IPv4 (its IPv6 to the server broken).
    server_over_ipv4: bool,
}

impl HostSpec {
    /// A host with its own NAT (`None`: open), starting at 0 and allowed to go direct.
    fn new(name: &str, label: String, nat: Option<NatConfig>) -> HostSpec {
        HostSpec {
            name: name.into(),
            label,
            nat,
            behind: None,
            start: Duration::ZERO,
            relay_only: false,
            ipv6: None,
            server_over_ipv4: false,
        }
    }
}

/// A peer added to the world while building: where it ended up.
struct PlacedPeer {
    name: String,
    label: String,
    id: HostId,
    nat: Option<NatId>,
    realm: RealmId,
    /// Its inside network's third octet (192.168.net.x); hosts behind it share it.
    net: u8,
    /// Its (first) IPv4 address.
    addr: SocketAddr,
}

fn server_addr() -> SocketAddr {
    SERVER_ADDR.parse().expect("valid")
}

/// A scenario under construction. Every method consumes and returns it, so it reads top to bottom.
#[derive(Debug, Clone)]
pub struct Scenario {
    seed: u64,
    two_ips: bool,
    hosts: Vec<HostSpec>,
    rtt: Duration,
    loss: f64,
    jitter: Duration,
    typed: Vec<(String, Duration, String)>,
    flushes: Vec<(String, Duration)>,
    rebinds: Vec<(String, Duration)>,
    isolated: Vec<(String, String)>,
    outages: Vec<(String, Duration, Duration)>,
    until: Duration,
    detail: Detail,
    knowledge: Option<Knowledge>,
    peer_tweaks: Vec<fn(&mut PeerConfig)>,
}

impl Scenario {
    /// An empty scenario: 40 ms round trips, no loss, at most 120 s of virtual time, full trace.
    pub fn new(seed: u64) -> Scenario {
        Scenario {
            seed,
            two_ips: false,
            hosts: Vec::new(),
            rtt: Duration::from_millis(40),
            loss: 0.0,
            jitter: Duration::ZERO,
            typed: Vec::new(),
            flushes: Vec::new(),
            rebinds: Vec::new(),
            isolated: Vec::new(),
            outages: Vec::new(),
            until: Duration::from_secs(120),
            detail: Detail::Full,
            knowledge: None,
            peer_tweaks: Vec::new(),
        }
    }

    /// The server gets an alternate IP and port (four sockets), so peers can run NAT detection; peers
    /// then detect their NAT unless [`Scenario::knowledge`] says otherwise.
    pub fn server_with_two_ips(mut self) -> Self {
        self.two_ips = true;
        self
    }

    /// A peer called `name` behind its own NAT of this profile.
    pub fn host(mut self, name: &str, profile: impl Into<Profile>) -> Self {
        let p: Profile = profile.into();
        self.hosts
            .push(HostSpec::new(name, p.to_string(), p.config()));
        self
    }

    /// A peer behind a NAT with a hand-made configuration, shown as `label`.
    pub fn host_with(mut self, name: &str, label: &str, nat: NatConfig) -> Self {
        self.hosts
            .push(HostSpec::new(name, label.into(), Some(nat)));
        self
    }

    /// A peer on the same inside network (behind the same NAT) as the earlier host `other`.
    pub fn host_behind(mut self, name: &str, other: &str) -> Self {
        let o = self.spec(other);
        let spec = HostSpec {
            behind: Some(other.into()),
            ipv6: o.ipv6.clone(),
            ..HostSpec::new(name, o.label.clone(), o.nat.clone())
        };
        self.hosts.push(spec);
        self
    }

    fn spec(&mut self, name: &str) -> &mut HostSpec {
        self.hosts
            .iter_mut()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// The peer on `name` starts at `t` instead of 0 (start skew).
    pub fn start_at(mut self, name: &str, t: Duration) -> Self {
        self.spec(name).start = t;
        self
    }

    /// The peer on `name` never tries a direct path.
    pub fn relay_only(mut self, name: &str) -> Self {
        self.spec(name).relay_only = true;
        self
    }

    /// The NAT in front of `name` forgets idle mappings after `lifetime`.
    pub fn nat_lifetime(mut self, name: &str, lifetime: Duration) -> Self {
        if let Some(n) = self.spec(name).nat.as_mut() {
            n.mapping_lifetime = lifetime;
        }
        self
    }

    /// `name` is dual-stack: besides its IPv4 address (behind its NAT) it has a global IPv6 address behind
    /// `firewall` (`None`: an IPv6 router that filters nothing), and it registers with the server over IPv6.
    /// It announces that address first and its IPv4 address second (as `punch chat` does) and, with
    /// [`Knowledge::Assume`], the IPv6 gateway's behaviour (the box on its path to the server). A host added
    /// later with [`Scenario::host_behind`] is dual-stack too. An `open` host (no NAT) can only have
    /// `firewall == None`.
    pub fn ipv6(mut self, name: &str, firewall: Option<NatConfig>) -> Self {
        let h = self.spec(name);
        assert!(
            h.nat.is_some() || firewall.is_none(),
            "an open host's IPv6 cannot sit behind a firewall in the simulator"
        );
        h.ipv6 = Some(firewall);
        self
    }

    /// The dual-stack host `name` registers with the server over IPv4, as `punch chat` falls back to when its
    /// IPv6 path to the server is broken (RFC 8305): it announces its IPv4 address first and, with
    /// [`Knowledge::Assume`], its IPv4 NAT's behaviour.
    pub fn server_over_ipv4(mut self, name: &str) -> Self {
        self.spec(name).server_over_ipv4 = true;
        self
    }

    /// The NAT in front of `name` turns datagrams to its own public address back inside (hairpinning,
    /// RFC 4787 REQ-9) or drops them (the default).
    pub fn hairpin(mut self, name: &str, on: bool) -> Self {
        if let Some(n) = self.spec(name).nat.as_mut() {
            n.hairpin = on;
        }
        self
    }

    /// The inside network does not carry datagrams between `a` and `b` (Wi-Fi client isolation, two VLANs
    /// behind one NAT): each can still reach the other through the NAT's public address if it hairpins.
    pub fn isolate(mut self, a: &str, b: &str) -> Self {
        self.isolated.push((a.into(), b.into()));
        self
    }

    /// The NAT in front of `name` gives `name`'s socket a new public port at `t` (rebinding: its mappings are
    /// taken away and its old port is not handed out again; other hosts' mappings stay).
    pub fn rebind_at(mut self, name: &str, t: Duration) -> Self {
        self.rebinds.push((name.into(), t));
        self
    }

    /// The NAT in front of `name` reboots (forgets every mapping) at `t`.
    pub fn flush_nat_at(mut self, name: &str, t: Duration) -> Self {
        self.flushes.push((name.into(), t));
        self
    }

    /// `name`'s access link is down during `[from, until)`.
    pub fn link_down(mut self, name: &str, from: Duration, until: Duration) -> Self {
        self.outages.push((name.into(), from, until));
        self
    }

    /// Every round trip is `rtt_ms`; every one-way trip is lost with probability `loss`.
    pub fn link(mut self, rtt_ms: u64, loss: f64) -> Self {
        self.rtt = Duration::from_millis(rtt_ms);
        self.loss = loss;
        self
    }

    /// Adds up to `jitter` per link crossing (which also reorders).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// The user on `name` types `text` at `t`.
    pub fn type_at(mut self, name: &str, t: Duration, text: &str) -> Self {
        self.typed.push((name.into(), t, text.into()));
        self
    }

    /// Stop at `t` at the latest (default 120 s).
    pub fn until(mut self, t: Duration) -> Self {
        self.until = t;
        self
    }

    /// Records the trace at `detail` (the default records nothing).
    pub fn detail(mut self, detail: Detail) -> Self {
        self.detail = detail;
        self
    }

    /// What the peers know about their own NAT.
    pub fn knowledge(mut self, k: Knowledge) -> Self {
        self.knowledge = Some(k);
        self
    }

    /// Adjusts every peer's configuration (e.g. shorter timeouts).
    pub fn tweak_peers(mut self, f: fn(&mut PeerConfig)) -> Self {
        self.peer_tweaks.push(f);
        self
    }

    /// Builds the world without running it.
    pub fn build(&self) -> Built {
        let mut w = World::new(self.seed, base_instant());
        w.set_detail(self.detail);
        w.set_describe(punch_core::wire::describe);
        let link = self.host_link();
        let server = self.add_server(&mut w, &link);
        let knowledge = self.effective_knowledge();
        let mut peers: Vec<PlacedPeer> = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let (nat, realm, addr) = self.place(&mut w, i, h, &peers);
            let addr6 = self.place_ipv6(&mut w, i, h, realm, &peers);
            let pc = self.peer_config(&w, h, addr, addr6, knowledge);
            let id = self.add_peer(&mut w, h, pc, realm, &link);
            let net = match &h.behind {
                Some(o) => peers.iter().find(|p| &p.name == o).map_or(0, |p| p.net),
                None => i as u8 + 1,
            };
            peers.push(PlacedPeer {
                name: h.name.clone(),
                label: h.label.clone(),
                id,
                nat,
                realm,
                net,
                addr,
            });
        }
        for (a, b) in &self.isolated {
            w.partition(&[a.as_str()], &[b.as_str()], Duration::ZERO, Duration::MAX);
        }
        self.schedule_typing(&mut w, &peers);
        self.schedule_flushes(&mut w, &peers);
        Built {
            world: w,
            server,
            peers: peers.into_iter().map(|p| (p.name, p.label, p.id)).collect(),
        }
    }

    /// Every host's access link. A trip crosses two host links (sender up, receiver down): each gets a
    /// quarter of the round trip and loses with q such that 1 - (1 - q)^2 = loss.
    fn host_link(&self) -> LinkConfig {
        let per_link_loss = 1.0 - (1.0 - self.loss.clamp(0.0, 1.0)).sqrt();
        LinkConfig::latency(self.rtt / 4)
            .with_jitter(self.jitter)
            .with_loss(per_link_loss)
    }

    /// The rendezvous server on the public network (with its alternate address if asked for).
    /// A dual-stack host among them: the server then also listens on [`SERVER6_ADDR`].
    fn any_ipv6(&self) -> bool {
        self.hosts.iter().any(|h| h.ipv6.is_some())
    }

    fn add_server(&self, w: &mut World, link: &LinkConfig) -> HostId {
        let mut sc = ServerConfig::new(server_addr());
        if self.two_ips {
            sc.alternate = Some(SERVER_ALT_ADDR.parse().expect("valid"));
        }
        sc.seed = w.seed_for("server");
        let server = Server::new(sc, w.clock().at(Duration::ZERO));
        let mut addrs = server.local_addrs();
        if self.any_ipv6() {
            // One more socket, as `punch server --listen` with a second address: the core answers each
            // request from the socket it came in on, and the simulator sends the relayed frames the core
            // sends from its primary (IPv4) socket from this one to IPv6 members.
            addrs.push(SERVER6_ADDR.parse().expect("valid"));
        }
        w.add_host(
            "server",
            RealmId::PUBLIC,
            link.clone(),
            Host::new(addrs, server),
        )
    }

    /// What the peers know: as set, else detection with a two-IP server and the truth without one.
    fn effective_knowledge(&self) -> Knowledge {
        self.knowledge.unwrap_or(if self.two_ips {
            Knowledge::Detect
        } else {
            Knowledge::Assume
        })
    }

    /// Where the i-th host `h` lives: its NAT (added to the world unless it shares an earlier host's), its
    /// realm and its address (see the module docs for the numbering).
    fn place(
        &self,
        w: &mut World,
        i: usize,
        h: &HostSpec,
        earlier: &[PlacedPeer],
    ) -> (Option<NatId>, RealmId, SocketAddr) {
        let port = 5000 + 1000 * i as u16;
        let public_host_ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20 + i as u8));
        if let Some(other) = &h.behind {
            let o = earlier
                .iter()
                .find(|p| &p.name == other)
                .expect("earlier host");
            let k = earlier
                .iter()
                .filter(|p| p.name == *other || p.net == o.net)
                .count() as u8;
            let ip = match h.nat.as_ref() {
                Some(c) if c.translate => IpAddr::V4(Ipv4Addr::new(192, 168, o.net, 10 + k)),
                _ => public_host_ip,
            };
            return (o.nat, o.realm, SocketAddr::new(ip, port));
        }
        let Some(cfg) = &h.nat else {
            return (None, RealmId::PUBLIC, SocketAddr::new(public_host_ip, port));
        };
        let public = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10 * (i as u8 + 1)));
        let prefix = if cfg.translate { "nat" } else { "fw" };
        let (n, r) = w.add_nat(
            &format!("{prefix}-{}", h.name),
            RealmId::PUBLIC,
            public,
            cfg.clone(),
            LinkConfig::ideal(),
        );
        let ip = if cfg.translate {
            IpAddr::V4(Ipv4Addr::new(192, 168, i as u8 + 1, 10))
        } else {
            public_host_ip
        };
        (Some(n), r, SocketAddr::new(ip, port))
    }

    /// The IPv6 address of the i-th host `h` if it is dual-stack, with its IPv6 gateway added to the world
    /// unless it shares an earlier host's network (see the module docs for the numbering).
    fn place_ipv6(
        &self,
        w: &mut World,
        i: usize,
        h: &HostSpec,
        realm: RealmId,
        earlier: &[PlacedPeer],
    ) -> Option<SocketAddr> {
        let firewall = h.ipv6.as_ref()?;
        let port = 5000 + 1000 * i as u16;
        let v6 = |net: u8, host: u16| {
            IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001, 0xdb8, net as u16, 0, 0, 0, 0, host,
            ))
        };
        if let Some(other) = &h.behind {
            let o = earlier
                .iter()
                .find(|p| &p.name == other)
                .expect("earlier host");
            let k = earlier.iter().filter(|p| p.net == o.net).count() as u16;
            return Some(SocketAddr::new(v6(o.net, 0x10 + k), port));
        }
        let net = i as u8 + 1;
        if realm != RealmId::PUBLIC {
            // A router that filters nothing, or the stateful firewall.
            let cfg = firewall.clone().unwrap_or(NatConfig {
                filtering: punch_core::nat::Filtering::EndpointIndependent,
                ..NatConfig::udp_firewall()
            });
            w.add_ipv6_gateway(
                &format!("fw6-{}", h.name),
                RealmId::PUBLIC,
                realm,
                v6(net, 1),
                cfg,
                LinkConfig::ideal(),
            );
        }
        Some(SocketAddr::new(v6(net, 0x10), port))
    }

    /// The peer configuration of host `h` at `addr` (and `addr6` if dual-stack; both peers share the join
    /// code [`SIM_CODE`]), with every tweak applied.
    fn peer_config(
        &self,
        w: &World,
        h: &HostSpec,
        addr: SocketAddr,
        addr6: Option<SocketAddr>,
        knowledge: Knowledge,
    ) -> PeerConfig {
        let over_ipv6 = addr6.is_some() && !h.server_over_ipv4;
        let server = if over_ipv6 {
            SERVER6_ADDR.parse().expect("valid")
        } else {
            server_addr()
        };
        let mut pc = PeerConfig::new(server, sim_code());
        pc.name = h.name.clone();
        // The server's family first, as `punch chat` announces them.
        pc.local_addrs = match addr6 {
            Some(a6) if over_ipv6 => vec![a6, addr],
            Some(a6) => vec![addr, a6],
            None => vec![addr],
        };
        // A dual-stack host asks the server over the other family too, as `punch chat` does.
        if addr6.is_some() {
            pc.server_other_family = Some(if over_ipv6 {
                server_addr()
            } else {
                SERVER6_ADDR.parse().expect("valid")
            });
        }
        pc.relay_only = h.relay_only;
        pc.detect_nat = knowledge == Knowledge::Detect;
        let toward_server = match &h.ipv6 {
            Some(fw6) if over_ipv6 => fw6.as_ref(),
            _ => h.nat.as_ref(),
        };
        pc.nat = match knowledge {
            Knowledge::Assume => behaviour_of(toward_server),
            _ => NatBehaviour::UNKNOWN,
        };
        pc.seed = seed32(w.seed_for(&h.name));
        for t in &self.peer_tweaks {
            t(&mut pc);
        }
        pc
    }

    /// Adds host `h` running a peer with `pc` in `realm`, on `link` plus its outages, started at its start
    /// time.
    fn add_peer(
        &self,
        w: &mut World,
        h: &HostSpec,
        pc: PeerConfig,
        realm: RealmId,
        link: &LinkConfig,
    ) -> HostId {
        let mut l = link.clone();
        for (n, from, until) in &self.outages {
            if *n == h.name {
                l = l.down_between(*from, *until);
            }
        }
        let addrs = pc.local_addrs.clone();
        let host = if h.start.is_zero() {
            Host::new(addrs, Peer::new(pc, w.clock().at(Duration::ZERO)))
        } else {
            Host::later(addrs, move |now| Peer::new(pc, now))
        };
        let id = w.add_host(&h.name, realm, l, host);
        if !h.start.is_zero() {
            w.schedule(h.start, id, "start", |p: &mut Host<Peer>, now| p.start(now));
        }
        id
    }

    /// Schedules every typed message on its peer.
    fn schedule_typing(&self, w: &mut World, peers: &[PlacedPeer]) {
        for (name, t, text) in &self.typed {
            let id = peers
                .iter()
                .find(|p| &p.name == name)
                .unwrap_or_else(|| panic!("no host {name}"))
                .id;
            let text2 = text.clone();
            w.schedule(
                *t,
                id,
                format!("user types {text:?}"),
                move |p: &mut Host<Peer>, now| {
                    p.type_message(now, &text2);
                },
            );
        }
    }

    /// Schedules every NAT reboot and rebinding (a host without a NAT has nothing to flush or rebind).
    fn schedule_flushes(&self, w: &mut World, peers: &[PlacedPeer]) {
        for (name, t) in &self.flushes {
            if let Some(nat) = peers.iter().find(|p| &p.name == name).and_then(|p| p.nat) {
                w.flush_nat_at(*t, nat);
            }
        }
        for (name, t) in &self.rebinds {
            let p = peers
                .iter()
                .find(|p| &p.name == name)
                .unwrap_or_else(|| panic!("no host {name}"));
            if let Some(nat) = p.nat {
                w.rebind_at(*t, nat, p.addr);
            }
        }
    }

    /// The time after which the run may stop as soon as everything is delivered.
    fn settle_after(&self) -> Duration {
        let typed = self.typed.iter().map(|t| t.1);
        let flushes = self.flushes.iter().chain(&self.rebinds).map(|f| f.1);
        let outages = self.outages.iter().map(|o| o.2);
        let starts = self.hosts.iter().map(|h| h.start);
        typed
            .chain(flushes)
            .chain(outages)
            .chain(starts)
            .max()
            .unwrap_or_default()
    }

    /// Builds and runs the scenario until every typed message is delivered and acknowledged and every peer
    /// has a settled path (no punch round running), after the last scheduled happening, or until the time
    /// limit.
    pub fn run(&self) -> Outcome {
        let mut b = self.build();
        let settle = self.settle_after();
        let ids: Vec<HostId> = b.peers.iter().map(|p| p.2).collect();
        let n_typed = self.typed.len();
        let result = b.world.run_until_or(self.until, |w| {
            if w.now() < settle {
                return false;
            }
            let mut typed = 0;
            let mut received = 0;
            for &id in &ids {
                let Some(p) = w.host_mut::<Peer>(id) else {
                    return false;
                };
                let Some(peer) = p.machine() else {
                    return false;
                };
                // Settled: a path, nothing unacknowledged, and no punch round that could still go direct.
                if peer.path().is_none() || !peer.all_acked() || peer.is_punching() {
                    return false;
                }
                typed += p.inputs.len();
                received += p.received_count();
            }
            typed == n_typed && received >= typed
        });
        b.outcome(self.seed, result.err())
    }
}

/// A built, not yet (fully) run scenario: the world plus which host is which.
pub struct Built {
    /// The world, with every host and NAT placed.
    pub world: World,
    /// The rendezvous server's host.
    pub server: HostId,
    /// `(name, NAT label, host)` per peer.
    pub peers: Vec<(String, String, HostId)>,
}

/// The final path of a peer or a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathKind {
    /// A direct path.
    Direct,
    /// The server's relay.
    Relay,
    /// No path: the run failed.
    None,
}

impl PathKind {
    /// The path a [`PeerEvent::Path`] reports; `None` for any other event.
    fn of(e: &PeerEvent) -> Option<PathKind> {
        match e {
            PeerEvent::Path { path, .. } => Some(match path {
                Path::Direct(_) => PathKind::Direct,
                Path::Relay => PathKind::Relay,
            }),
            _ => None,
        }
    }

    /// Lower-case name for tables: "direct", "relay" or "fail".
    pub fn label(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Relay => "relay",
            PathKind::None => "fail",
        }
    }
}

/// What happened to one peer.
#[derive(Debug, Clone)]
pub struct PeerOutcome {
    /// The host's name.
    pub name: String,
    /// The NAT profile label.
    pub nat: String,
    /// Every event the peer reported, with its virtual time since the start.
    pub events: Vec<(Duration, PeerEvent)>,
    /// Texts typed, in order.
    pub typed: Vec<String>,
    /// Texts received, in order of delivery.
    pub received: Vec<String>,
    /// The last path reported.
    pub path: PathKind,
    /// The partner's address on that path when it is direct.
    pub direct_addr: Option<SocketAddr>,
    /// When the peer learned it was paired.
    pub paired_at: Option<Duration>,
    /// First time any path was chosen.
    pub path_at: Option<Duration>,
    /// First time a direct path was proven.
    pub direct_at: Option<Duration>,
    /// When the peer got its first chat message.
    pub first_message_at: Option<Duration>,
    /// The errors the peer reported, in words.
    pub errors: Vec<String>,
    /// What punching cost this peer (pings, birthday probes, extra sockets).
    pub cost: punch_core::PunchCost,
}

/// What happened in a scenario.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seed the run used.
    pub seed: u64,
    /// One outcome per peer.
    pub peers: Vec<PeerOutcome>,
    /// What was recorded (see `Scenario::detail`).
    pub trace: Trace,
    /// The world's counters.
    pub stats: Stats,
    /// Set if the simulator stopped the run (runaway machine).
    pub error: Option<SimError>,
    /// Virtual time at the end of the run.
    pub ended_at: Duration,
}

impl Built {
    /// Collects the outcome (the world stays usable).
    pub fn outcome(&mut self, seed: u64, error: Option<SimError>) -> Outcome {
        let mut peers = Vec::new();
        for (name, nat, id) in &self.peers {
            let p = self.world.host_mut::<Peer>(*id).expect("peer host");
            let first = |f: &dyn Fn(&PeerEvent) -> bool| {
                p.events.iter().find(|(_, e)| f(e)).map(|(t, _)| *t)
            };
            let path = p
                .events
                .iter()
                .rev()
                .find_map(|(_, e)| PathKind::of(e))
                .unwrap_or(PathKind::None);
            let direct_addr = p.events.iter().rev().find_map(|(_, e)| match e {
                PeerEvent::Path { path, .. } => Some(match path {
                    Path::Direct(a) => Some(*a),
                    Path::Relay => None,
                }),
                _ => None,
            });
            peers.push(PeerOutcome {
                direct_addr: direct_addr.flatten(),
                name: name.clone(),
                nat: nat.clone(),
                typed: p.inputs.iter().map(|t| t.1.clone()).collect(),
                received: p.received().into_iter().map(String::from).collect(),
                path,
                paired_at: first(&|e| matches!(e, PeerEvent::Paired { .. })),
                path_at: first(&|e| PathKind::of(e).is_some()),
                direct_at: first(&|e| PathKind::of(e) == Some(PathKind::Direct)),
                first_message_at: first(&|e| matches!(e, PeerEvent::Message { .. })),
                errors: p
                    .events
                    .iter()
                    .filter_map(|(_, e)| match e {
                        PeerEvent::Error(e) => Some(e.to_string()),
                        _ => None,
                    })
                    .collect(),
                events: p.events.clone(),
                cost: p.machine().map(Peer::punch_cost).unwrap_or_default(),
            });
        }
        Outcome {
            seed,
            peers,
            trace: self.world.trace().clone(),
            stats: self.world.stats(),
            error,
            ended_at: self.world.now(),
        }
    }
}

impl Outcome {
    /// The peer called `name` (panics if there is none: a scenario names its peers).
    pub fn peer(&self, name: &str) -> &PeerOutcome {
        self.peers
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no peer {name}"))
    }

    /// Direct if every peer ended on a direct path, relay if every peer has a path, else fail.
    pub fn path(&self) -> PathKind {
        self.peers
            .iter()
            .map(|p| p.path)
            .max()
            .unwrap_or(PathKind::None)
    }

    /// When the first peer learned it was paired.
    pub fn paired_at(&self) -> Option<Duration> {
        self.peers.iter().filter_map(|p| p.paired_at).min()
    }

    /// When the first chat message was delivered (to anyone).
    pub fn first_delivery_at(&self) -> Option<Duration> {
        self.peers.iter().filter_map(|p| p.first_message_at).min()
    }

    /// When every peer had proven a direct path.
    pub fn direct_at(&self) -> Option<Duration> {
        self.peers
            .iter()
            .map(|p| p.direct_at)
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    }

    /// From the first pairing to the first message delivered.
    pub fn pairing_to_first_message(&self) -> Option<Duration> {
        Some(self.first_delivery_at()?.saturating_sub(self.paired_at()?))
    }

    /// From the first pairing to every peer having proven a direct path.
    pub fn pairing_to_direct(&self) -> Option<Duration> {
        Some(self.direct_at()?.saturating_sub(self.paired_at()?))
    }

    /// Every message typed on one side arrived exactly once, in order, on the other (two peers).
    pub fn exactly_once_in_order(&self) -> Result<(), String> {
        if let Some(e) = &self.error {
            return Err(e.to_string());
        }
        for p in &self.peers {
            let others: Vec<&PeerOutcome> =
                self.peers.iter().filter(|o| o.name != p.name).collect();
            let expected: Vec<String> = others
                .iter()
                .flat_map(|o| o.typed.iter().cloned())
                .collect();
            if others.len() == 1 && p.received != expected {
                return Err(format!(
                    "{} received {:?}, expected {:?}",
                    p.name, p.received, expected
                ));
            }
        }
        Ok(())
    }

    /// A few lines: per peer the NAT, final path and timings.
    pub fn summary(&self) -> String {
        let t = |d: Option<Duration>| d.map(|d| Ms(d).to_string()).unwrap_or_else(|| "-".into());
        let mut s = String::new();
        for p in &self.peers {
            let _ =
                writeln!(
                s,
                "{}: {} -> {} (paired {}, path {}, direct {}, first message {}, received {:?}{})",
                p.name,
                p.nat,
                p.path.label(),
                t(p.paired_at),
                t(p.path_at),
                t(p.direct_at),
                t(p.first_message_at),
                p.received,
                if p.errors.is_empty() { String::new() } else { format!(", errors {:?}", p.errors) }
            );
        }
        let _ = writeln!(
            s,
            "pair: {}, pairing->first message {}, pairing->direct {}, ended at {}",
            self.path().label(),
            t(self.pairing_to_first_message()),
            t(self.pairing_to_direct()),
            Ms(self.ended_at)
        );
        s
    }
}

/// The join code every simulated pair shares (nameplate 7: the server's pool is "7").
pub const SIM_CODE: &str = "7-sim-secret";

/// [`SIM_CODE`], parsed.
pub fn sim_code() -> punch_core::secure::Code {
    SIM_CODE.parse().expect("a valid code")
}

/// A 32-byte RNG seed from a 64-bit one (deterministic, for the simulator).
pub fn seed32(seed: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&seed.to_le_bytes());
    out
}
