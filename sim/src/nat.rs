//! NAT boxes, modelled on RFC 4787 (and on what Linux conntrack actually does).
//!
//! A [`NatBox`] sits between an inside network and the network above it. It is a pure state machine over
//! virtual time: the world calls [`NatBox::outbound`] when a datagram leaves the inside and
//! [`NatBox::inbound`] when one arrives at its public address, and forwards or drops the datagram as told.
//!
//! * **Mapping** ([`Mapping`], RFC 4787 s4.1): which public port an inside socket gets for a destination:
//!   one for every destination (EIM), one per destination IP (ADM), or one per destination IP and port (APDM).
//! * **Port allocation** ([`PortAlloc`], s4.2): the public port equals the inside port (preserved), follows
//!   the previous one (sequential, optionally with other hosts' traffic consuming ports in between), or is
//!   random.
//! * **Filtering** ([`Filtering`], s5): which inbound datagrams a mapping admits: from anyone (EIF), from IPs
//!   the inside socket sent to (ADF), or from exactly the IP:port pairs it sent to (APDF).
//! * **Lifetime** (s4.3): a mapping idle for `mapping_lifetime` is forgotten; outbound traffic refreshes it,
//!   inbound traffic only if `inbound_refresh`. Filtering permissions age the same way, one by one.
//! * **Rebinding** ([`NatBox::rebind`]): one inside socket loses its mappings and gets a new public port on
//!   its next datagram, without a reboot; every other socket keeps its mappings.
//! * **Address family**: a translating NAT carries only its public address's family (an IPv4 NAT drops
//!   IPv6); a dual-stack inside network has a second gateway for IPv6 (`World::add_ipv6_gateway`).
//! * **Hairpinning** (s6): an inside host sending to the NAT's own public address reaches the inside host
//!   owning that mapping, with its source translated, or is dropped.
//! * **Linux conntrack** (`linux_conntrack`): an unsolicited inbound datagram that filtering rejects still
//!   creates an *unreplied* conntrack entry `remote -> public:port`, which lives for `unreplied_timeout`
//!   (30 s; refreshed by further such datagrams). While it lives, that tuple is taken: when an inside socket
//!   later sends to that same remote for the first time and would use that public port, masquerading picks a
//!   different, random free port for that destination. This is why two port-restricted Linux routers punch
//!   badly when one side's first probe arrives before the other side has sent anything. Also as in Linux, an
//!   outbound entry that never saw a reply lives only `unreplied_timeout`, not `mapping_lifetime`.
//! * **WAN firewall** (`wan_firewall`, typical home router): unsolicited inbound datagrams are dropped at the
//!   input firewall before conntrack sees them; nothing is reserved.
//! * **UDP firewall** (`translate == false`): no translation at all (inside hosts have public addresses),
//!   only filtering.
use crate::fx::{FxMap, FxSet};
use punch_core::nat::{Filtering, Mapping};
use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The lowest public port a NAT hands out.
pub const MIN_PORT: u16 = 1024;

/// How a NAT picks the public port for a new mapping (RFC 4787 s4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PortAlloc {
    /// Keep the inside port if it is free, else a random free one.
    Preserve,
    /// Previous public port plus `step`. Before each new mapping, up to `other_traffic` ports (a uniform
    /// draw in `0..=other_traffic`) are consumed by other hosts' connections.
    Sequential {
        /// Added to the previous public port.
        step: i32,
        /// The most ports other hosts take between two mappings.
        other_traffic: u16,
    },
    /// A random free port.
    Random,
}

/// Everything that defines a NAT's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct NatConfig {
    /// `false` for a pure UDP firewall: addresses pass unchanged, only filtering applies.
    pub translate: bool,
    /// How the public mapping is chosen for a new destination.
    pub mapping: Mapping,
    /// Which inbound datagrams pass to an existing mapping.
    pub filtering: Filtering,
    /// How public ports are picked.
    pub allocation: PortAlloc,
    /// The first port of a sequential allocator; `None`: drawn from the NAT's generator.
    pub first_port: Option<u16>,
    /// Idle time after which a mapping (and each filtering permission) is forgotten.
    pub mapping_lifetime: Duration,
    /// Whether inbound datagrams refresh the mapping (RFC 4787 REQ-6 says outbound must, inbound may).
    pub inbound_refresh: bool,
    /// Whether a datagram from inside to the NAT's own public address is turned back inside.
    pub hairpin: bool,
    /// Linux conntrack's unreplied-entry port reservation (see the module docs).
    pub linux_conntrack: bool,
    /// How long an unreplied conntrack entry lives (Linux: `nf_conntrack_udp_timeout`, 30 s).
    pub unreplied_timeout: Duration,
    /// A WAN input firewall drops unsolicited inbound datagrams silently: no conntrack entry is made.
    pub wan_firewall: bool,
}

impl NatConfig {
    /// A translating NAT with the given mapping, filtering and allocation and common defaults: 120 s
    /// lifetime refreshed by outbound traffic only, no hairpinning, no conntrack quirk, no WAN firewall.
    pub fn new(mapping: Mapping, filtering: Filtering, allocation: PortAlloc) -> NatConfig {
        NatConfig {
            translate: true,
            mapping,
            filtering,
            allocation,
            first_port: None,
            mapping_lifetime: Duration::from_secs(120),
            inbound_refresh: false,
            hairpin: false,
            linux_conntrack: false,
            unreplied_timeout: Duration::from_secs(30),
            wan_firewall: false,
        }
    }
    /// A stateful UDP firewall: no translation, address-and-port-dependent filtering.
    pub fn udp_firewall() -> NatConfig {
        NatConfig {
            translate: false,
            ..NatConfig::new(
                Mapping::EndpointIndependent,
                Filtering::AddressAndPortDependent,
                PortAlloc::Preserve,
            )
        }
    }
    /// Adds the Linux conntrack unreplied-entry behaviour.
    pub fn linux(mut self) -> Self {
        self.linux_conntrack = true;
        self
    }
    /// Adds a WAN input firewall (unsolicited inbound dropped without state).
    pub fn with_wan_firewall(mut self) -> Self {
        self.wan_firewall = true;
        self
    }
    /// This NAT with hairpinning on or off.
    pub fn with_hairpin(mut self, on: bool) -> Self {
        self.hairpin = on;
        self
    }
    /// This NAT forgetting idle mappings after `lifetime`.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.mapping_lifetime = lifetime;
        self
    }
    /// This NAT with inbound datagrams refreshing mappings or not.
    pub fn with_inbound_refresh(mut self, on: bool) -> Self {
        self.inbound_refresh = on;
        self
    }
    /// This NAT starting a sequential allocator at `port`.
    pub fn with_first_port(mut self, port: u16) -> Self {
        self.first_port = Some(port);
        self
    }

    fn filter_label(&self) -> &'static str {
        match self.filtering {
            Filtering::EndpointIndependent => "EIF",
            Filtering::AddressDependent => "ADF",
            Filtering::AddressAndPortDependent => "APDF",
        }
    }
}

/// The part of the destination a mapping is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Dest {
    Any,
    Ip(IpAddr),
    Addr(SocketAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    internal: SocketAddr,
    dest: Dest,
}

#[derive(Debug, Clone)]
struct Entry {
    public: SocketAddr,
    last_active: Duration,
    /// Remote endpoints the inside socket sent to through this mapping, with when it last did.
    perms: BTreeMap<SocketAddr, Duration>,
    /// Whether an inbound datagram was ever admitted (Linux: an unreplied entry only lives 30 s).
    replied: bool,
}

/// What to do with an outbound datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Send it on with this source address.
    Forward {
        /// The translated source address.
        src: SocketAddr,
    },
    /// Hairpin: deliver it back inside, from `src` (translated) to `dst` (an inside socket).
    Hairpin {
        /// The translated source address.
        src: SocketAddr,
        /// The inside socket it goes to.
        dst: SocketAddr,
    },
    /// Drop it, for this reason.
    Drop(String),
}

/// What to do with an inbound datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Deliver it inside, to this address.
    Forward {
        /// The inside address.
        dst: SocketAddr,
    },
    /// Drop it, for this reason.
    Drop(String),
}

/// One NAT (or UDP firewall) with its state.
#[derive(Debug, Clone)]
pub struct NatBox {
    /// Its behaviour.
    pub config: NatConfig,
    /// The public address (unused by a non-translating firewall).
    pub public_ip: IpAddr,
    rng: SmallRng,
    /// The mappings. Hashed (looked up for every datagram): where their order shows (expiry notes) they
    /// are sorted first.
    mappings: FxMap<Key, Entry>,
    by_public: FxMap<SocketAddr, Key>,
    /// Public addresses whose mapping expired, with when (for the drop reason).
    expired: FxMap<SocketAddr, Duration>,
    /// Linux unreplied conntrack entries `(remote, public) -> expiry`.
    unreplied: FxMap<(SocketAddr, SocketAddr), Duration>,
    /// Public addresses taken from a socket by [`NatBox::rebind`]: never handed out again (until a flush).
    retired: FxSet<SocketAddr>,
    last_port: Option<u16>,
    /// No mapping expires before this (a lower bound, exact after a purge), so that a datagram need not
    /// walk every mapping (a birthday round makes hundreds) to find none expired.
    next_expiry: Duration,
    /// The lifetimes `next_expiry` was computed with (`config` is public: a change forces a full purge).
    expiry_config: (Duration, Duration, bool),
    /// No unreplied conntrack entry expires before this (a lower bound, exact after a purge).
    next_unreplied_expiry: Duration,
    notes: Vec<String>,
    /// Nobody reads the notes or the drop reasons (the world's trace is off): skip building them.
    quiet: bool,
}

impl NatBox {
    /// A NAT with `config` on public address `public_ip`, drawing ports from `rng`.
    pub fn new(config: NatConfig, public_ip: IpAddr, rng: SmallRng) -> NatBox {
        let expiry_config = (
            config.mapping_lifetime,
            config.unreplied_timeout,
            config.linux_conntrack,
        );
        NatBox {
            config,
            public_ip,
            rng,
            mappings: FxMap::default(),
            by_public: FxMap::default(),
            expired: FxMap::default(),
            unreplied: FxMap::default(),
            retired: FxSet::default(),
            last_port: None,
            next_expiry: Duration::MAX,
            expiry_config,
            next_unreplied_expiry: Duration::MAX,
            notes: Vec::new(),
            quiet: false,
        }
    }

    /// Stops (or resumes) writing notes and drop reasons: with `quiet` set, [`NatBox::take_notes`] stays
    /// empty and the reasons in [`Outbound::Drop`] and [`Inbound::Drop`] are empty. Behaviour is unchanged.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    fn note(&mut self, text: impl FnOnce() -> String) {
        if !self.quiet {
            self.notes.push(text());
        }
    }

    /// A drop reason, built only when someone reads it.
    fn why(&self, text: impl FnOnce() -> String) -> String {
        if self.quiet {
            String::new()
        } else {
            text()
        }
    }

    /// Notes about state changes since the last call (new mappings, expiries, conntrack entries).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The public address currently mapped for `internal` towards `remote`, if any (for tests).
    pub fn mapping_for(&self, internal: SocketAddr, remote: SocketAddr) -> Option<SocketAddr> {
        let exc = Key {
            internal,
            dest: Dest::Addr(remote),
        };
        self.mappings
            .get(&exc)
            .or_else(|| self.mappings.get(&self.key(internal, remote)))
            .map(|e| e.public)
    }

    /// Number of live mappings.
    pub fn mapping_count(&self) -> usize {
        self.mappings.len()
    }

    /// Forgets all state (a router reboot).
    pub fn flush(&mut self) {
        let n = self.mappings.len();
        self.mappings.clear();
        self.by_public.clear();
        self.expired.clear();
        self.unreplied.clear();
        self.retired.clear();
        self.note(|| format!("flushed: {n} mappings forgotten"));
    }

    /// Rebinding: the NAT takes every mapping of the inside socket `internal` away (a port reassignment, a
    /// carrier NAT moving the flow, one table entry evicted), and never hands those public ports out again,
    /// so the socket's next datagram gets a new public port. Other sockets' mappings are untouched. A
    /// non-translating firewall only forgets the socket's filter state.
    pub fn rebind(&mut self, internal: SocketAddr) {
        let gone: Vec<Key> = self
            .mappings
            .keys()
            .filter(|k| k.internal == internal)
            .copied()
            .collect();
        for k in &gone {
            if let Some(e) = self.mappings.remove(k) {
                self.by_public.remove(&e.public);
                if self.config.translate {
                    self.retired.insert(e.public);
                }
            }
        }
        let n = gone.len();
        self.note(|| format!("rebinding: {n} mappings of {internal} taken away"));
    }

    fn key(&self, internal: SocketAddr, remote: SocketAddr) -> Key {
        let dest = match (self.config.translate, self.config.mapping) {
            (false, _) | (true, Mapping::EndpointIndependent) => Dest::Any,
            (true, Mapping::AddressDependent) => Dest::Ip(remote.ip()),
            (true, Mapping::AddressAndPortDependent) => Dest::Addr(remote),
        };
        Key { internal, dest }
    }

    /// How long an entry survives idle: Linux conntrack keeps a never-answered entry only
    /// `unreplied_timeout` (30 s); otherwise `mapping_lifetime`.
    fn lifetime(&self, e: &Entry) -> Duration {
        lifetime(&self.config, e.replied)
    }

    fn alive(&self, last: Duration, now: Duration) -> bool {
        now < last + self.config.mapping_lifetime
    }

    fn unreplied_alive(&self, remote: SocketAddr, public: SocketAddr, now: Duration) -> bool {
        self.unreplied
            .get(&(remote, public))
            .is_some_and(|&exp| now < exp)
    }

    /// The lifetimes that decide expiry, as configured now.
    fn lifetimes(&self) -> (Duration, Duration, bool) {
        (
            self.config.mapping_lifetime,
            self.config.unreplied_timeout,
            self.config.linux_conntrack,
        )
    }

    /// Forgets idle mappings and dead conntrack entries.
    fn purge(&mut self, now: Duration) {
        if now >= self.next_expiry || self.expiry_config != self.lifetimes() {
            self.purge_mappings(now);
        }
        if now >= self.next_unreplied_expiry {
            self.unreplied.retain(|_, exp| now < *exp);
            self.next_unreplied_expiry = self
                .unreplied
                .values()
                .copied()
                .min()
                .unwrap_or(Duration::MAX);
        }
    }

    /// The mapping part of [`NatBox::purge`]: walks every mapping, forgets the expired ones (in key order,
    /// as the notes show them), and sets the exact `next_expiry` of the others.
    fn purge_mappings(&mut self, now: Duration) {
        let mut next = Duration::MAX;
        let mut dead = Vec::new();
        for (k, e) in &self.mappings {
            let at = e.last_active + self.lifetime(e);
            if now >= at {
                dead.push(*k);
            } else {
                next = next.min(at);
            }
        }
        self.next_expiry = next;
        self.expiry_config = self.lifetimes();
        dead.sort_unstable();
        for k in dead {
            if let Some(e) = self.mappings.remove(&k) {
                self.by_public.remove(&e.public);
                let at = e.last_active + self.lifetime(&e);
                self.expired.insert(e.public, at);
                self.note(|| {
                    format!(
                        "mapping {} -> {} expired at {}",
                        k.internal,
                        e.public,
                        crate::clock::Ms(at)
                    )
                });
            }
        }
    }

    fn public(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.public_ip, port)
    }

    fn port_free(&self, port: u16, remote: SocketAddr, now: Duration) -> bool {
        let p = self.public(port);
        port >= MIN_PORT
            && !self.by_public.contains_key(&p)
            && !self.retired.contains(&p)
            && !self.unreplied_alive(remote, p, now)
    }

    fn random_free(&mut self, remote: SocketAddr, now: Duration) -> Option<u16> {
        for _ in 0..64 {
            let p = self.rng.gen_range(MIN_PORT..=u16::MAX);
            if self.port_free(p, remote, now) {
                return Some(p);
            }
        }
        let start = self.rng.gen_range(MIN_PORT..=u16::MAX);
        (0..=(u16::MAX - MIN_PORT))
            .map(|i| advance(start, i as i32))
            .find(|&p| self.port_free(p, remote, now))
    }

    fn allocate(&mut self, internal: SocketAddr, remote: SocketAddr, now: Duration) -> Option<u16> {
        match self.config.allocation {
            PortAlloc::Preserve => {
                if self.port_free(internal.port(), remote, now) {
                    Some(internal.port())
                } else {
                    self.random_free(remote, now)
                }
            }
            PortAlloc::Random => self.random_free(remote, now),
            PortAlloc::Sequential {
                step,
                other_traffic,
            } => {
                let step = if step == 0 { 1 } else { step };
                let mut p = match self.last_port {
                    None => match self.config.first_port {
                        Some(p) => p.max(MIN_PORT),
                        None => self.rng.gen_range(20_000..60_000),
                    },
                    Some(last) => {
                        let others = if other_traffic > 0 {
                            self.rng.gen_range(0..=other_traffic) as i32
                        } else {
                            0
                        };
                        advance(last, step * (1 + others))
                    }
                };
                for _ in 0..=(u16::MAX - MIN_PORT) {
                    if self.port_free(p, remote, now) {
                        self.last_port = Some(p);
                        return Some(p);
                    }
                    p = advance(p, step);
                }
                None
            }
        }
    }

    fn insert(&mut self, key: Key, public: SocketAddr, remote: SocketAddr, now: Duration) {
        let mut perms = BTreeMap::new();
        perms.insert(remote, now);
        self.mappings.insert(
            key,
            Entry {
                public,
                last_active: now,
                perms,
                replied: false,
            },
        );
        self.by_public.insert(public, key);
        self.expired.remove(&public);
        self.next_expiry = self.next_expiry.min(now + lifetime(&self.config, false));
    }

    /// A datagram from inside socket `src` to `dst` is leaving at virtual time `now`.
    pub fn outbound(&mut self, now: Duration, src: SocketAddr, dst: SocketAddr) -> Outbound {
        self.purge(now);
        if self.config.translate && dst.is_ipv4() != self.public_ip.is_ipv4() {
            // An IPv4 NAT does not carry IPv6 (nor the other way round): no route for that family.
            return Outbound::Drop(
                self.why(|| format!("no route: {dst} is not of the NAT's family")),
            );
        }
        if !self.config.translate {
            let key = self.key(src, dst);
            match self.mappings.get_mut(&key) {
                Some(e) => {
                    e.last_active = now;
                    e.perms.insert(dst, now);
                    let at = now + lifetime(&self.config, e.replied);
                    self.next_expiry = self.next_expiry.min(at);
                }
                None => self.insert(key, src, dst, now),
            }
            return Outbound::Forward { src };
        }
        let exception = Key {
            internal: src,
            dest: Dest::Addr(dst),
        };
        let key = self.key(src, dst);
        let conntrack = self.config.linux_conntrack;
        let use_key = if key != exception && conntrack && self.mappings.contains_key(&exception) {
            Some(exception)
        } else if let Some(e) = self.mappings.get(&key) {
            let already_talking = e.perms.get(&dst).is_some_and(|&t| self.alive(t, now));
            if conntrack
                && key != exception
                && !already_talking
                && self.unreplied_alive(dst, e.public, now)
            {
                // Linux: the reply tuple dst -> public is taken by an unreplied entry; masquerade picks a
                // random free port for this new connection instead.
                let taken = e.public;
                let Some(port) = self.random_free(dst, now) else {
                    return Outbound::Drop("no free public port".into());
                };
                let public = self.public(port);
                self.insert(exception, public, dst, now);
                self.note(|| format!(
                    "conntrack clash: {dst} -> {taken} is an unreplied entry, so {src} -> {dst} gets {public}"
                ));
                None
            } else {
                Some(key)
            }
        } else {
            let Some(port) = self.allocate(src, dst, now) else {
                return Outbound::Drop("no free public port".into());
            };
            let public = self.public(port);
            self.insert(key, public, dst, now);
            self.note(|| format!("new mapping {src} -> {public} (first sent to {dst})"));
            None
        };
        let mut refreshed = None;
        if let Some(k) = use_key {
            if let Some(e) = self.mappings.get_mut(&k) {
                e.last_active = now;
                e.perms.insert(dst, now);
                let at = now + lifetime(&self.config, e.replied);
                self.next_expiry = self.next_expiry.min(at);
                refreshed = Some((k, e.public));
            }
        }
        // What `mapping_for` answers (the exception first), without looking up the entry just refreshed again.
        let public = match refreshed {
            Some((k, public)) if k == exception => public,
            Some((_, public)) => self.mappings.get(&exception).map_or(public, |e| e.public),
            None => self.mapping_for(src, dst).expect("mapping just ensured"),
        };
        if dst.ip() == self.public_ip {
            if !self.config.hairpin {
                return Outbound::Drop(
                    self.why(|| format!("no hairpinning: {src} -> {dst} (own public address)")),
                );
            }
            return match self.inbound(now, public, dst) {
                Inbound::Forward { dst: inside } => Outbound::Hairpin {
                    src: public,
                    dst: inside,
                },
                Inbound::Drop(r) => Outbound::Drop(self.why(|| format!("hairpin: {r}"))),
            };
        }
        Outbound::Forward { src: public }
    }

    /// A datagram from `src` to the public address `dst` arrives at virtual time `now`.
    pub fn inbound(&mut self, now: Duration, src: SocketAddr, dst: SocketAddr) -> Inbound {
        self.purge(now);
        let reason = match self.by_public.get(&dst).copied() {
            Some(key) => {
                let e = &self.mappings[&key];
                let admitted = match self.config.filtering {
                    Filtering::EndpointIndependent => true,
                    Filtering::AddressDependent => e
                        .perms
                        .iter()
                        .any(|(a, &t)| a.ip() == src.ip() && self.alive(t, now)),
                    Filtering::AddressAndPortDependent => {
                        e.perms.get(&src).is_some_and(|&t| self.alive(t, now))
                    }
                };
                if admitted {
                    let e = self.mappings.get_mut(&key).expect("present");
                    e.replied = true;
                    if self.config.inbound_refresh {
                        e.last_active = now;
                        let at = now + lifetime(&self.config, true);
                        self.next_expiry = self.next_expiry.min(at);
                        if let Some(t) = e.perms.get_mut(&src) {
                            *t = now;
                        }
                    }
                    return Inbound::Forward { dst: key.internal };
                }
                self.why(|| {
                    let what = match self.config.filtering {
                        Filtering::AddressDependent => src.ip().to_string(),
                        _ => src.to_string(),
                    };
                    format!(
                        "filtered ({}): {} has not sent to {what} (from {src})",
                        self.config.filter_label(),
                        key.internal
                    )
                })
            }
            None => self.why(|| match self.expired.get(&dst) {
                Some(&at) => format!(
                    "mapping expired: {dst} (at {}) (from {src})",
                    crate::clock::Ms(at)
                ),
                None => format!("no mapping for {dst} (from {src})"),
            }),
        };
        if self.config.wan_firewall {
            return Inbound::Drop(self.why(|| format!("firewall: unsolicited; {reason}")));
        }
        if self.config.linux_conntrack && self.config.translate {
            let expiry = now + self.config.unreplied_timeout;
            let fresh = self.unreplied.insert((src, dst), expiry).is_none();
            self.next_unreplied_expiry = self.next_unreplied_expiry.min(expiry);
            if fresh {
                let secs = self.config.unreplied_timeout.as_secs();
                self.note(|| {
                    format!(
                        "conntrack: unreplied entry {src} -> {dst} reserves that tuple for {secs}s"
                    )
                });
            }
            return Inbound::Drop(self.why(|| format!("{reason}; conntrack unreplied entry")));
        }
        Inbound::Drop(reason)
    }
}

/// How long an entry (answered or not) survives idle under `config` (see [`NatBox::lifetime`]).
fn lifetime(config: &NatConfig, replied: bool) -> Duration {
    if config.linux_conntrack && !replied {
        config.unreplied_timeout.min(config.mapping_lifetime)
    } else {
        config.mapping_lifetime
    }
}

/// `port + delta`, wrapping inside `MIN_PORT..=65535`.
fn advance(port: u16, delta: i32) -> u16 {
    let span = (u16::MAX - MIN_PORT) as i64 + 1;
    let off = (port.max(MIN_PORT) - MIN_PORT) as i64 + delta as i64;
    (MIN_PORT as i64 + off.rem_euclid(span)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive_rng;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    fn nat(cfg: NatConfig) -> NatBox {
        NatBox::new(cfg, "203.0.113.10".parse().unwrap(), derive_rng(1, "nat"))
    }
    const T: Duration = Duration::from_millis(1);
    const INSIDE: SocketAddr = v4([192, 168, 1, 10], 5000);
    const PUBLIC: SocketAddr = v4([203, 0, 113, 10], 5000);
    const SERVER: SocketAddr = v4([198, 51, 100, 1], 3478);
    const PEER: SocketAddr = v4([198, 51, 100, 7], 6000);

    const fn v4([a, b, c, d]: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::V4(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::new(a, b, c, d),
            port,
        ))
    }
    /// Whether the NAT let an inbound datagram in.
    fn admitted(r: Inbound) -> bool {
        matches!(r, Inbound::Forward { .. })
    }
    /// The usual port-restricted cone: EIM, APDF, port preserving.
    fn port_restricted() -> NatConfig {
        NatConfig::new(
            Mapping::EndpointIndependent,
            Filtering::AddressAndPortDependent,
            PortAlloc::Preserve,
        )
    }

    #[test]
    fn advance_wraps() {
        assert_eq!(advance(65535, 1), MIN_PORT);
        assert_eq!(advance(MIN_PORT, -1), 65535);
        assert_eq!(advance(40000, 2), 40002);
    }

    #[test]
    fn eim_keeps_port_apdm_changes_it() {
        let mut n = nat(NatConfig::new(
            Mapping::EndpointIndependent,
            Filtering::EndpointIndependent,
            PortAlloc::Preserve,
        ));
        let a = n.outbound(T, INSIDE, SERVER);
        let b = n.outbound(T, INSIDE, sa("198.51.100.2:9000"));
        assert_eq!(a, Outbound::Forward { src: PUBLIC });
        assert_eq!(a, b);

        let mut n = nat(NatConfig::new(
            Mapping::AddressAndPortDependent,
            Filtering::AddressAndPortDependent,
            PortAlloc::Sequential {
                step: 1,
                other_traffic: 0,
            },
        )
        .with_first_port(40000));
        assert_eq!(
            n.outbound(T, INSIDE, SERVER),
            Outbound::Forward {
                src: sa("203.0.113.10:40000")
            }
        );
        assert_eq!(
            n.outbound(T, INSIDE, sa("198.51.100.1:3479")),
            Outbound::Forward {
                src: sa("203.0.113.10:40001")
            }
        );
        assert_eq!(
            n.outbound(T, INSIDE, SERVER),
            Outbound::Forward {
                src: sa("203.0.113.10:40000")
            }
        );
    }

    #[test]
    fn adm_keys_on_ip_only() {
        let mut n = nat(NatConfig::new(
            Mapping::AddressDependent,
            Filtering::AddressDependent,
            PortAlloc::Random,
        ));
        let a = n.outbound(T, INSIDE, sa("198.51.100.1:1"));
        let b = n.outbound(T, INSIDE, sa("198.51.100.1:2"));
        let c = n.outbound(T, INSIDE, sa("198.51.100.2:1"));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn filtering_levels() {
        for (f, same_port, other_port, other_ip) in [
            (Filtering::EndpointIndependent, true, true, true),
            (Filtering::AddressDependent, true, true, false),
            (Filtering::AddressAndPortDependent, true, false, false),
        ] {
            let mut n = nat(NatConfig::new(
                Mapping::EndpointIndependent,
                f,
                PortAlloc::Preserve,
            ));
            n.outbound(T, INSIDE, SERVER);
            assert_eq!(admitted(n.inbound(T, SERVER, PUBLIC)), same_port, "{f:?}");
            assert_eq!(
                admitted(n.inbound(T, sa("198.51.100.1:3479"), PUBLIC)),
                other_port,
                "{f:?}"
            );
            assert_eq!(
                admitted(n.inbound(T, sa("198.51.100.9:3478"), PUBLIC)),
                other_ip,
                "{f:?}"
            );
        }
    }

    #[test]
    fn mapping_expires_unless_refreshed() {
        let cfg = port_restricted().with_lifetime(Duration::from_secs(30));
        let mut n = nat(cfg.clone());
        n.outbound(T, INSIDE, SERVER);
        // Inbound traffic does not refresh by default.
        assert!(admitted(n.inbound(Duration::from_secs(20), SERVER, PUBLIC)));
        match n.inbound(Duration::from_secs(31), SERVER, PUBLIC) {
            Inbound::Drop(r) => assert!(r.starts_with("mapping expired"), "{r}"),
            other => panic!("{other:?}"),
        }
        // With inbound refresh the same pattern keeps it alive.
        let mut n = nat(cfg.with_inbound_refresh(true));
        n.outbound(T, INSIDE, SERVER);
        assert!(admitted(n.inbound(Duration::from_secs(20), SERVER, PUBLIC)));
        assert!(admitted(n.inbound(Duration::from_secs(31), SERVER, PUBLIC)));
    }

    #[test]
    fn preserved_port_collision_gets_another_port() {
        let mut n = nat(port_restricted());
        let a = n.outbound(T, INSIDE, SERVER);
        let b = n.outbound(T, sa("192.168.1.11:5000"), SERVER);
        assert_eq!(a, Outbound::Forward { src: PUBLIC });
        assert_ne!(a, b);
    }

    #[test]
    fn sequential_with_other_traffic_skips_ports() {
        let mut n = nat(NatConfig::new(
            Mapping::AddressAndPortDependent,
            Filtering::AddressAndPortDependent,
            PortAlloc::Sequential {
                step: 2,
                other_traffic: 3,
            },
        )
        .with_first_port(40000));
        let mut last = 40000 - 2;
        let mut skipped = false;
        for i in 0..20 {
            let Outbound::Forward { src } = n.outbound(
                T,
                INSIDE,
                SocketAddr::new("198.51.100.1".parse().unwrap(), 1000 + i),
            ) else {
                panic!()
            };
            let d = src.port() - last;
            assert!(d % 2 == 0 && (2..=8).contains(&d), "{d}");
            skipped |= d > 2;
            last = src.port();
        }
        assert!(skipped);
    }

    #[test]
    fn linux_unreplied_entry_diverts_first_outbound_to_that_remote() {
        let mut n = nat(port_restricted().linux());
        n.outbound(T, INSIDE, SERVER);
        // The peer's probe arrives first: filtered, but conntrack remembers it.
        match n.inbound(T * 2, PEER, PUBLIC) {
            Inbound::Drop(r) => assert!(
                r.contains("filtered (APDF)") && r.contains("conntrack"),
                "{r}"
            ),
            other => panic!("{other:?}"),
        }
        // Our first packet to the peer leaves from a different port; the server still sees the old one.
        let Outbound::Forward { src } = n.outbound(T * 3, INSIDE, PEER) else {
            panic!()
        };
        assert_ne!(src, PUBLIC);
        assert_eq!(
            n.outbound(T * 4, INSIDE, SERVER),
            Outbound::Forward { src: PUBLIC }
        );
        assert_eq!(n.outbound(T * 5, INSIDE, PEER), Outbound::Forward { src });
        // Replies to the new port pass; the peer's packets to the old port still hit the unreplied entry.
        assert_eq!(
            n.inbound(T * 6, PEER, src),
            Inbound::Forward { dst: INSIDE }
        );
        assert!(!admitted(n.inbound(T * 7, PEER, PUBLIC)));
        let notes = n.take_notes().join("\n");
        assert!(notes.contains("conntrack clash"), "{notes}");
    }

    #[test]
    fn linux_reservation_times_out() {
        let mut n = nat(port_restricted().linux());
        n.outbound(T, INSIDE, SERVER);
        n.inbound(T, PEER, PUBLIC);
        n.inbound(Duration::from_secs(20), PEER, PUBLIC); // refreshes to 50 s
        assert_ne!(
            n.outbound(Duration::from_secs(45), INSIDE, PEER),
            Outbound::Forward { src: PUBLIC }
        );

        let mut n = nat(port_restricted().linux());
        n.outbound(T, INSIDE, SERVER);
        n.inbound(T, PEER, PUBLIC);
        assert_eq!(
            n.outbound(Duration::from_secs(31), INSIDE, PEER),
            Outbound::Forward { src: PUBLIC }
        );
    }

    #[test]
    fn linux_unreplied_outbound_entries_live_30s_replied_ones_the_full_lifetime() {
        let cfg = NatConfig::new(
            Mapping::AddressAndPortDependent,
            Filtering::AddressAndPortDependent,
            PortAlloc::Random,
        )
        .linux();
        let mut n = nat(cfg.clone());
        let Outbound::Forward { src } = n.outbound(T, INSIDE, SERVER) else {
            panic!()
        };
        assert!(!admitted(n.inbound(Duration::from_secs(31), SERVER, src)));
        let mut n = nat(cfg);
        let Outbound::Forward { src } = n.outbound(T, INSIDE, SERVER) else {
            panic!()
        };
        assert!(admitted(n.inbound(T * 2, SERVER, src)));
        assert!(admitted(n.inbound(Duration::from_secs(100), SERVER, src)));
    }

    #[test]
    fn outbound_first_means_no_clash_under_linux() {
        let mut n = nat(port_restricted().linux());
        assert_eq!(
            n.outbound(T, INSIDE, PEER),
            Outbound::Forward { src: PUBLIC }
        );
        assert_eq!(n.inbound(T, PEER, PUBLIC), Inbound::Forward { dst: INSIDE });
    }

    #[test]
    fn wan_firewall_reserves_nothing() {
        let mut n = nat(port_restricted().linux().with_wan_firewall());
        n.outbound(T, INSIDE, SERVER);
        match n.inbound(T, PEER, PUBLIC) {
            Inbound::Drop(r) => assert!(r.starts_with("firewall"), "{r}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            n.outbound(T, INSIDE, PEER),
            Outbound::Forward { src: PUBLIC }
        );
    }

    #[test]
    fn hairpin_translates_source() {
        let a = INSIDE;
        let b = sa("192.168.1.11:6000");
        let cfg = NatConfig::new(
            Mapping::EndpointIndependent,
            Filtering::EndpointIndependent,
            PortAlloc::Preserve,
        );
        let mut n = nat(cfg.clone().with_hairpin(true));
        n.outbound(T, b, SERVER);
        assert_eq!(
            n.outbound(T, a, sa("203.0.113.10:6000")),
            Outbound::Hairpin {
                src: PUBLIC,
                dst: b
            }
        );
        let mut n = nat(cfg);
        n.outbound(T, b, SERVER);
        assert!(matches!(
            n.outbound(T, a, sa("203.0.113.10:6000")),
            Outbound::Drop(_)
        ));
    }

    #[test]
    fn rebind_gives_the_socket_a_new_port_and_leaves_others_alone() {
        let other = sa("192.168.1.11:6000");
        let mut n = nat(port_restricted());
        assert_eq!(
            n.outbound(T, INSIDE, SERVER),
            Outbound::Forward { src: PUBLIC }
        );
        let Outbound::Forward { src: theirs } = n.outbound(T, other, SERVER) else {
            panic!()
        };
        n.rebind(INSIDE);
        // The old public port is gone: inbound to it is dropped, and the socket's next datagram gets another.
        assert!(!admitted(n.inbound(T * 2, SERVER, PUBLIC)));
        let Outbound::Forward { src } = n.outbound(T * 3, INSIDE, SERVER) else {
            panic!()
        };
        assert_ne!(src, PUBLIC);
        assert_eq!(
            n.outbound(T * 3, other, SERVER),
            Outbound::Forward { src: theirs }
        );
        // A flush frees the retired port again.
        n.flush();
        assert_eq!(
            n.outbound(T * 4, INSIDE, SERVER),
            Outbound::Forward { src: PUBLIC }
        );
    }

    #[test]
    fn an_ipv4_nat_does_not_carry_ipv6() {
        let mut n = nat(port_restricted());
        assert!(matches!(
            n.outbound(T, INSIDE, sa("[2001:db8::1]:3478")),
            Outbound::Drop(_)
        ));
    }

    #[test]
    fn udp_firewall_does_not_translate_but_filters() {
        let inside = sa("198.51.100.50:5000");
        let mut n = nat(NatConfig::udp_firewall());
        assert_eq!(
            n.outbound(T, inside, SERVER),
            Outbound::Forward { src: inside }
        );
        assert_eq!(
            n.inbound(T, SERVER, inside),
            Inbound::Forward { dst: inside }
        );
        assert!(!admitted(n.inbound(T, sa("198.51.100.1:3479"), inside)));
    }
}
