//! The rendezvous server: STUN Binding, pools of two, peer-info, relay.
//!
//! * **Binding** requests are answered from the socket they arrived on with XOR-MAPPED-ADDRESS (and the
//!   behaviour-discovery attributes when the server has an alternate address: see [`crate::stun_server`]).
//! * **Register** (pool, name, NAT behaviour, local addresses, RTT) joins a pool. The first two distinct clients
//!   of a pool are paired: each is sent the other's info in a PeerInfo request, retransmitted until answered.
//!   Both are sent at the same instant, except that the nearer client's copy is held back by half the
//!   difference of the round trips both reported, so both start punching together. A re-sent Register from a
//!   member is idempotent; a third client gets error 409 "pool full".
//! * **Relay** indications from a paired client are forwarded to its partner, and to nobody else.
//! * A Register *indication* means "leaving"; the partner is told with a PeerInfo indication.
//! * A Register carrying the CLIENT-ID of a member but coming from a new address (the member's NAT mapping
//!   changed) moves the member: both sides get a fresh PeerInfo with the new address and punch again.
//! * A Register with RETRY from a paired member starts a new punch round: both members get a fresh PeerInfo at
//!   the same (RTT-compensated) instant, at most once per [`RETRY_MIN_INTERVAL`]. Each peer retrying on its own
//!   clock would repeat the skew that made the first round fail.
//! * Members not heard from for [`ServerConfig::member_timeout`] (default 60 s; peers send a keepalive every
//!   15 s) are expired, waiting or paired alike; the partner is told.
//!
//! Any datagram that is not one of these — truncated, garbage, oversized, unknown method, from a stranger — is
//! dropped and counted in [`ServerStats`], never a panic.
//!
//! Defences (docs/SECURITY.md, "Server: amplification, spoofing and quotas"):
//!
//! * **Return routability.** Every RFC 5389 Binding success carries a stateless COOKIE (a time bucket and a
//!   truncated HMAC-SHA256 of the bucket and the client's IP and port under [`ServerConfig::secret`], valid
//!   60..120 s). A Register without a valid cookie creates no state: it is answered with a 401 that carries a
//!   fresh cookie and is never larger than the request (else it is dropped). Every other answer the server
//!   sends goes to a verified member.
//! * **No restarts.** A Register from a member never restarts an outstanding PeerInfo; it re-sends one only
//!   when the previous one was neither acknowledged nor is still being retransmitted.
//! * **Quotas.** Token buckets per source IP on Binding, Register and relay (packets and bytes), a member cap
//!   per source IP and in all ([`ServerConfig::max_members_per_ip`], [`ServerConfig::max_members`]), and a
//!   bounded per-IP table ([`ServerConfig::max_ip_entries`]). Only Register, PeerInfo answers and relay
//!   traffic with the right PAIR-ID keep a member alive, never a Binding. A relay with another pair's id is
//!   dropped and counted.
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::backoff::{Backoff, Retransmit};
use crate::timer::after;
use crate::wire::{self, Msg, PeerInfo};
use crate::Machine;
use crate::Transmit;

mod guard;
mod keyed;
pub mod load;
mod member;
mod register;
pub mod relay_table;
mod schedule;
mod types;
use guard::{Budget, Cookies, IpTable, Rates};
use keyed::{Keyed, SlotKeyed, SlotMap};
use member::{Member, Members};
pub use relay_table::{RelayForwarder, RelayTable, Route};
use schedule::Schedule;
use std::sync::Arc;
pub use types::{Rate, ServerConfig, ServerEvent, ServerStats};

#[derive(Debug, Clone)]
struct PendingInfo {
    tid: wire::Tid,
    retransmit: Retransmit,
}

/// The state of a paired pool, kept under its first member's slot.
#[derive(Debug, Clone, Copy)]
struct Pair {
    pair_id: [u8; 8],
    /// When both members were last sent PeerInfo together.
    last_round: Instant,
    /// Punch rounds started for the current pair (first PeerInfo, retries, moves).
    rounds: u32,
}

/// Which member of a pair holds its first ping back in a round: rounds cycle "together", "member 0 pings
/// first", "member 1 pings first". Together is right whenever the two first pings cross between the NATs; when
/// skew defeats that on a router that reserves tuples (Linux conntrack without a WAN firewall), only the order
/// "the reserving side sends first" works, and punch cannot learn which side that is without disturbing the
/// NAT (docs/STRATEGY.md), so the retries try both orders.
pub fn round_holder(round: u32) -> Option<usize> {
    match round % 3 {
        0 => None,
        1 => Some(1),
        _ => Some(0),
    }
}

/// The least time between two punch rounds of one pair (requests in between are ignored): a round lasts 3 s
/// (`PeerConfig::punch_timeout`), so rounds never overlap, and a pair costs at most two PeerInfos every 3 s.
pub const RETRY_MIN_INTERVAL: Duration = Duration::from_secs(3);

/// PeerInfo retransmissions: RTO 2 x the member's RTT (50..500 ms), doubling up to 1 s, 16 sends (about 12 s).
const MAX_INFO_SENDS: u32 = 16;
const INFO_MAX_RTO: Duration = Duration::from_secs(1);
const MAX_EVENTS: usize = 4096;
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Most members the tables are reserved for at construction (a larger `max_members` grows them beyond).
const MAX_RESERVED: usize = 1 << 22;
/// How long a nameplate stays refused after a Leave with BURN.
pub const BURN_TIME: Duration = Duration::from_secs(600);

impl crate::Machine for Server {
    type Event = ServerEvent;

    /// A datagram arrived on local socket `local` from `remote`.
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.input(local, remote, now, data);
        self.tidy_schedule();
    }

    /// Sends PeerInfo requests that are due and expires silent members.
    fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.now;
        while let Some((at, addr, tid)) = self.info_schedule.pop_due(now) {
            if self.is_current(&(at, addr, tid)) {
                self.send_info(addr);
            }
        }
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.sweep();
        }
        self.tidy_schedule();
    }

    /// Next datagram to send, from the local socket in [`Transmit::source`].
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// When to call [`Server::handle_timeout`](crate::Machine::handle_timeout) next: the earliest PeerInfo retransmission or member sweep.
    fn poll_deadline(&self) -> Option<crate::Deadline> {
        let info = self.info_schedule.first().map(|at| crate::Deadline {
            at,
            reason: "PeerInfo retransmit",
        });
        let sweep = self.next_sweep.map(|at| crate::Deadline {
            at,
            reason: "expire silent members",
        });
        crate::Deadline::earliest(info, sweep)
    }

    /// Next event, oldest first (at most 4096 are kept; later ones are discarded until the queue is drained).
    fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }
}

impl Server {
    /// [`Machine::handle_input`] but for tidying the schedule.
    fn input(&mut self, local: SocketAddr, remote: SocketAddr, now: Instant, data: &[u8]) {
        self.advance(now);
        self.stats.received += 1;
        match wire::kind(data) {
            wire::Kind::Stun => {}
            wire::Kind::ClassicStun => {
                if !self.allow(remote, Budget::Binding) {
                    return;
                }
                match crate::stun_server::answer_classic(&self.config, local, remote, data) {
                    Some(t) => {
                        self.stats.bindings += 1;
                        self.out.push_back(t);
                    }
                    None => self.drop_packet(remote, "malformed RFC 3489 message"),
                }
                return;
            }
            _ => return self.drop_packet(remote, "not STUN"),
        }
        if let Some(view) = wire::relay_view(data) {
            return self.on_relay_fast(remote, data, view);
        }
        if crate::rfc5780::is_binding_request(data) {
            if !self.allow(remote, Budget::Binding) {
                return;
            }
            // A Binding does not refresh membership: anyone can send one from a spoofed address.
            let cookie = self.cookies.issue(self.now, remote);
            let answer = crate::stun_server::answer_binding(
                &self.config,
                local,
                remote,
                data,
                Some(&cookie),
            );
            if let Some(t) = answer {
                self.stats.bindings += 1;
                self.out.push_back(t);
                return;
            }
        }
        let mut locals = [wire::UNSPECIFIED; wire::MAX_LOCAL_ADDRS];
        if let Some(r) = wire::decode_register_ref(data, &mut locals) {
            return self.on_register(local, remote, r, data);
        }
        // Decoded once (stun_codec is most of a Register's cost).
        let Some(stun) = wire::decode(data) else {
            return self.drop_packet(remote, "malformed STUN");
        };
        match Msg::from_stun(&stun) {
            Some(Msg::Register(r)) => self.on_register(local, remote, r.borrowed(), data),
            Some(Msg::Leave { pool, burn, .. }) => self.on_leave(remote, data, pool, burn),
            Some(Msg::PeerInfoAck { tid }) => self.on_info_ack(remote, tid),
            Some(Msg::Relay { tid, pair_id, data }) => self.on_relay(remote, tid, pair_id, data),
            _ => self.drop_packet(remote, "unexpected method or class"),
        }
    }
}

/// The rendezvous server state machine. See the crate docs for the call order.
///
/// A Binding request answered in virtual time (no socket: the datagram is handed in, the answer handed out):
///
/// ```rust
/// use std::time::{Duration, Instant};
/// use punch_core::rfc5780::{self, ChangeRequest};
/// use punch_core::{Server, ServerConfig};
/// use punch_core::Machine;
/// use stun_codec::rfc5389::attributes::XorMappedAddress;
///
/// let listen = "192.0.2.1:3478".parse().unwrap();
/// let client = "198.51.100.7:40000".parse().unwrap();
/// let t0 = Instant::now(); // the only clock read; virtual time steps from it
/// let mut server = Server::new(ServerConfig::new(listen), t0);
///
/// let request = rfc5780::binding_request([7; 12], ChangeRequest::default());
/// server.handle_input(t0 + Duration::from_millis(5), listen, client, &request);
///
/// let reply = server.poll_transmit().expect("a Binding response");
/// assert_eq!((reply.source, reply.destination), (Some(listen), client));
/// let response = rfc5780::decode(&reply.payload).unwrap();
/// let mapped = rfc5780::get::<XorMappedAddress>(&response).unwrap();
/// assert_eq!(mapped.address(), client);
/// assert_eq!(server.stats().bindings, 1);
/// assert!(server.poll_transmit().is_none());
/// ```
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// The members, their pools and the indexes over them (compact: see `member.rs`).
    members: Members,
    /// Paired pools, by their first member's slot.
    pairs: SlotMap<Pair>,
    /// Outstanding PeerInfo requests, by member slot.
    infos: SlotMap<PendingInfo>,
    /// (when, member, transaction) for PeerInfo requests to (re)send (see `schedule.rs`).
    info_schedule: Schedule,
    /// The tables' keyed hash (see `keyed.rs`).
    hasher: Keyed,
    next_sweep: Option<Instant>,
    out: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
    stats: ServerStats,
    rng: SmallRng,
    now: Instant,
    cookies: Cookies,
    ips: IpTable,
    /// Nameplates a Leave with BURN closed (a wrong code was tried), until when they stay refused.
    burned: BTreeMap<String, Instant>,
    /// Routes shared with data-plane threads, once a driver asked for them ([`Server::relay_table`]).
    table: Option<Arc<RelayTable>>,
}

impl Server {
    /// A server with no clients; `now` is the starting point of its clock.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let secret = config
            .secret
            .unwrap_or_else(|| SmallRng::seed_from_u64(config.seed ^ 0xC00C_1E5E_C2E7).gen());
        // The tables' hash keys: from the seed, apart from the RNG the protocol draws from.
        let mut keys = SmallRng::seed_from_u64(config.seed ^ 0x4A54_AB1E_5EED);
        let hasher = Keyed::from_rng(&mut keys);
        let rates = Rates {
            binding: config.binding_rate,
            register: config.register_rate,
            relay_packets: config.relay_packet_rate,
            relay_bytes: config.relay_byte_rate,
        };
        // Tables reserved for `max_members` (up to `MAX_RESERVED`): a server at its size never grows them.
        let reserve = config.max_members.min(MAX_RESERVED);
        Server {
            cookies: Cookies::new(secret, now),
            ips: IpTable::new(
                rates,
                // Twice the members: an eviction pass always frees half the table (guard.rs).
                config
                    .max_ip_entries
                    .max(config.max_members.saturating_mul(2)),
                reserve,
                now,
                hasher,
            ),
            burned: BTreeMap::new(),
            table: None,
            rng: SmallRng::seed_from_u64(config.seed),
            config,
            members: Members::new(now, hasher, reserve),
            pairs: SlotMap::with_hasher(SlotKeyed::from_keyed(&hasher)),
            infos: SlotMap::with_hasher(SlotKeyed::from_keyed(&hasher)),
            hasher,
            info_schedule: Schedule::default(),
            next_sweep: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: ServerStats::default(),
            now,
        }
    }

    /// The sockets the driver must bind: the primary first, then (with an alternate) primary IP + alternate
    /// port, alternate IP + primary port, alternate IP + alternate port.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        crate::stun_server::socket_set(self.config.listen, self.config.alternate)
    }

    /// The settings it was built with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// The relay table data-plane threads forward from (created on the first call; the same table after):
    /// from then on the server records the route of every relay it forwards and removes the routes of a
    /// pair that changes. See [`RelayTable`].
    pub fn relay_table(&mut self) -> Arc<RelayTable> {
        let max = self.config.max_relay_payload;
        self.table
            .get_or_insert_with(|| Arc::new(RelayTable::with_hasher(max, self.hasher)))
            .clone()
    }

    /// A data thread forwarded `packets` relays from `remote` through the [`RelayTable`]: the member stays
    /// alive and the relays are counted in [`ServerStats::relayed`].
    pub fn note_relayed(&mut self, now: Instant, remote: SocketAddr, packets: u64) {
        self.advance(now);
        if let Some(slot) = self.members.find(remote) {
            let now = self.now;
            self.members.touch(slot, now);
            self.stats.relayed += packets;
        }
    }

    /// Forgets the relay routes from and to `addr` (its pair changed).
    fn unroute(&mut self, addr: SocketAddr) {
        let Some(t) = &self.table else { return };
        if let Some(r) = t.get(addr) {
            t.remove(r.partner);
        }
        t.remove(addr);
        let partner = self
            .members
            .find(addr)
            .and_then(|s| self.members.get(s).partner());
        if let Some(p) = partner {
            t.remove(self.members.get(p).addr);
        }
    }

    /// The cookie a Binding answer to `addr` would carry now (for tests and tools: cookies are not secret
    /// from the address they are issued to).
    pub fn cookie_for(&self, addr: SocketAddr) -> Vec<u8> {
        self.cookies.issue(self.now, addr).to_vec()
    }

    /// Members registered now.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Heap bytes the server holds for its members, pools, pairs and per-IP state, from the capacities of its
    /// tables (what it asked of the allocator, not the allocator's own overhead). Queued datagrams and events
    /// are not counted: a driver drains them.
    pub fn heap_bytes(&self) -> usize {
        fn map<V>(m: &SlotMap<V>) -> usize {
            // hashbrown: a control byte per bucket, buckets a power of two at most 7/8 full.
            let buckets = (m.capacity() * 8 / 7).next_power_of_two();
            buckets * (std::mem::size_of::<(u32, V)>() + 1)
        }
        let schedule = self.info_schedule.heap_bytes();
        let burned = self.burned.len() * (std::mem::size_of::<(String, Instant)>() + 8)
            + self.burned.keys().map(String::len).sum::<usize>();
        self.members.heap_bytes()
            + map(&self.pairs)
            + map(&self.infos)
            + schedule
            + burned
            + self.ips.heap_bytes()
    }

    /// Source IPs whose rate-limit state the server keeps now (at most [`ServerConfig::max_ip_entries`]).
    pub fn ip_entries(&self) -> usize {
        self.ips.len()
    }

    /// Charges a datagram from `remote` to `budget`; drops and counts it when over the rate.
    fn allow(&mut self, remote: SocketAddr, budget: Budget) -> bool {
        if self.ips.allow(self.now, remote.ip(), budget) {
            return true;
        }
        self.stats.rate_limited += 1;
        self.drop_packet(remote, "rate limited");
        false
    }

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn event(&mut self, e: ServerEvent) {
        if self.events.len() < MAX_EVENTS {
            self.events.push_back(e);
        }
    }

    fn drop_packet(&mut self, from: SocketAddr, reason: &'static str) {
        self.stats.dropped += 1;
        tracing::debug!(%from, reason, "dropped datagram");
        self.event(ServerEvent::Dropped { from, reason });
    }

    fn member_mut(&mut self, addr: SocketAddr) -> Option<&mut Member> {
        let slot = self.members.find(addr)?;
        Some(self.members.get_mut(slot))
    }

    /// The pool of the member at `addr`.
    fn pool_of(&self, addr: SocketAddr) -> Option<&str> {
        let slot = self.members.find(addr)?;
        Some(self.members.get(slot).pool())
    }

    fn reply(&mut self, local: SocketAddr, remote: SocketAddr, msg: Msg) {
        self.out.push_back(Transmit {
            ttl: None,
            source: Some(local),
            destination: remote,
            payload: msg.encode(),
        });
    }

    fn error(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        tid: wire::Tid,
        code: u16,
        reason: &str,
    ) {
        let reason = reason.to_owned();
        let cookie = None;
        let msg = Msg::RegisterError {
            tid,
            code,
            reason,
            cookie,
        };
        self.reply(local, remote, msg);
    }

    /// Both members get their PeerInfo at once, except that the nearer one's copy is held back by half the
    /// difference of the reported round trips, so that both copies arrive together.
    fn schedule_pair_infos(&mut self, pool: &str) {
        if let Some((first, Some(second))) = self.members.pool(pool) {
            self.schedule_pair_infos_of(first, second);
        }
    }

    /// [`Server::schedule_pair_infos`] for the pool whose members are in slots `first` and `second`.
    fn schedule_pair_infos_of(&mut self, first: u32, second: u32) {
        let now = self.now;
        if let Some(p) = self.pairs.get_mut(&first) {
            p.last_round = now;
            p.rounds = p.rounds.saturating_add(1);
        }
        let (a, b) = (self.members.get(first), self.members.get(second));
        let (da, db) = match (a.rtt(), b.rtt()) {
            (Some(ra), Some(rb)) => {
                let cap = Duration::from_millis(500);
                if ra > rb {
                    (Duration::ZERO, ((ra - rb) / 2).min(cap))
                } else {
                    (((rb - ra) / 2).min(cap), Duration::ZERO)
                }
            }
            _ => (Duration::ZERO, Duration::ZERO),
        };
        let (aa, ba) = (a.addr, b.addr);
        let (ta, tb) = (after(now, da), after(now, db));
        // Copies due now go out now, not at the next timer tick. When nothing else in the schedule is due,
        // they are sent without passing through it: the same sends in the same order (by address, as the
        // schedule orders one instant) as inserting them and popping what is due.
        self.tidy_schedule();
        let direct = self.info_schedule.first().is_none_or(|t| t > now);
        let tid_a: wire::Tid = self.rng.gen();
        self.schedule_info_with(first, aa, ta, tid_a, !(direct && ta <= now));
        let tid_b: wire::Tid = self.rng.gen();
        self.schedule_info_with(second, ba, tb, tid_b, !(direct && tb <= now));
        if direct {
            let (lo, hi) = if aa < ba {
                ((first, aa, ta), (second, ba, tb))
            } else {
                ((second, ba, tb), (first, aa, ta))
            };
            for (slot, addr, at) in [lo, hi] {
                if at <= now {
                    self.send_info_to(slot, addr);
                }
            }
        }
        self.handle_timeout(now);
    }

    /// Whether a queued send is still due (see [`is_current`]).
    fn is_current(&self, e: &schedule::Entry) -> bool {
        is_current(&self.members, &self.infos, e)
    }

    /// Drops stale sends from the top of the schedule, so that its first entry is a current one.
    fn tidy_schedule(&mut self) {
        let Server {
            info_schedule,
            members,
            infos,
            ..
        } = self;
        info_schedule.tidy(|e| is_current(members, infos, e));
    }

    fn schedule_info(&mut self, addr: SocketAddr, at: Instant) {
        let tid: wire::Tid = self.rng.gen();
        if let Some(slot) = self.members.find(addr) {
            self.schedule_info_with(slot, addr, at, tid, true);
        }
    }

    /// A PeerInfo (transaction `tid`) for the member in `slot`, at `addr`, first sent at `at`; `queue`:
    /// through the schedule (else the caller sends it now).
    fn schedule_info_with(
        &mut self,
        slot: u32,
        addr: SocketAddr,
        at: Instant,
        tid: wire::Tid,
        queue: bool,
    ) {
        let m = self.members.get_mut(slot);
        // Retransmit after twice the member's reported RTT: a lost PeerInfo delays that side's punch by
        // one RTO, so a fixed 250 ms would dominate the pairing latency on fast paths.
        let rto = m.rtt().map_or(Duration::from_millis(250), |r| {
            (r * 2).clamp(Duration::from_millis(50), Duration::from_millis(500))
        });
        let policy = Backoff::new(rto, INFO_MAX_RTO).with_max_sends(MAX_INFO_SENDS);
        m.set_info_acked(false);
        let info = PendingInfo {
            tid,
            retransmit: Retransmit::new(policy, at),
        };
        if self.infos.insert(slot, info).is_some() {
            self.info_schedule.forget();
        }
        if queue {
            self.info_schedule.push(at, addr, tid);
        }
    }

    fn send_info(&mut self, addr: SocketAddr) {
        if let Some(slot) = self.members.find(addr) {
            self.send_info_to(slot, addr);
        }
    }

    /// [`Server::send_info`] to the member in `slot`, at `addr`.
    fn send_info_to(&mut self, slot: u32, addr: SocketAddr) {
        let now = self.now;
        let listen = self.config.listen;
        let me = self.members.get(slot);
        let (first, _) = self.members.pool_of_slot(slot);
        let Some(pair) = self.pairs.get(&first).copied() else {
            return;
        };
        let Some(other) = me.partner() else {
            return;
        };
        let key = me.link_key();
        let hold = round_holder(pair.rounds.saturating_sub(1))
            .is_some_and(|i| (i == 0) == (slot == first));
        let Some(info) = self.infos.get_mut(&slot) else {
            return;
        };
        info.retransmit.on_send(now);
        let tid = info.tid;
        match info.retransmit.next_send() {
            Some(next) => self.info_schedule.push(next, addr, tid),
            None => {
                // The member's own Register retransmission will ask again.
                self.infos.remove(&slot);
            }
        }
        // Written from the partner's packed fields (no owned PeerInfo).
        let other = self.members.get(other);
        let packed = other.packed();
        let info = wire::PeerInfoRef {
            tid: &tid,
            pair_id: &pair.pair_id,
            public: other.addr,
            locals: packed.locals_iter(),
            nat: other.nat().encode(),
            name: packed.name,
            mapped: Some(addr),
            hold,
            pake: packed.pake,
        };
        let mut payload = match wire::encode_peer_info_ref(&info) {
            Some(b) => b,
            None => Msg::PeerInfo(PeerInfo {
                tid,
                pair_id: pair.pair_id,
                public: other.addr,
                locals: packed.locals(),
                nat: other.nat(),
                name: packed.name.to_owned(),
                mapped: Some(addr),
                hold,
                pake: packed.pake.map(<[u8]>::to_vec),
            })
            .encode(),
        };
        if let Some(k) = key {
            wire::append_integrity(&mut payload, &k);
        }
        self.out.push_back(Transmit {
            ttl: None,
            source: Some(listen),
            destination: addr,
            payload,
        });
    }

    fn on_info_ack(&mut self, remote: SocketAddr, tid: wire::Tid) {
        let now = self.now;
        let Some(slot) = self.members.find(remote) else {
            return self.drop_packet(remote, "PeerInfo answer from a stranger");
        };
        self.members.touch(slot, now);
        if self.infos.get(&slot).is_some_and(|i| i.tid == tid) {
            self.infos.remove(&slot);
            self.members.get_mut(slot).set_info_acked(true);
            self.info_schedule.forget();
        }
    }

    /// A canonical Relay indication ([`wire::relay_view`]): the received bytes go to the partner as they are.
    fn on_relay_fast(&mut self, remote: SocketAddr, data: &[u8], view: wire::RelayView) {
        if let Some(other) = self.relay_target(remote, Some(view.pair_id), Some(view.data_len)) {
            self.out.push_back(Transmit {
                ttl: None,
                source: Some(self.config.listen),
                destination: other,
                payload: data.to_vec(),
            });
        }
    }

    /// Any other Relay indication: decoded, checked the same way and re-encoded canonically.
    fn on_relay(
        &mut self,
        remote: SocketAddr,
        tid: wire::Tid,
        claimed: Option<wire::PairIdBytes>,
        data: Option<Vec<u8>>,
    ) {
        let len = data.as_ref().map(Vec::len);
        if let Some(other) = self.relay_target(remote, claimed, len) {
            let fwd = Msg::Relay {
                tid,
                pair_id: claimed,
                data,
            };
            let listen = self.config.listen;
            self.reply(listen, other, fwd);
        }
    }

    /// Where a relay from `remote` claiming `claimed` with `data_len` bytes of DATA goes: its partner, if
    /// every check passes (counted and refreshed as relayed), or `None` (dropped, with the reason).
    fn relay_target(
        &mut self,
        remote: SocketAddr,
        claimed: Option<wire::PairIdBytes>,
        data_len: Option<usize>,
    ) -> Option<SocketAddr> {
        let Some(slot) = self.members.find(remote) else {
            self.drop_packet(remote, "relay from a client that is not registered");
            return None;
        };
        let m = self.members.get(slot);
        let (first, _) = self.members.pool_of_slot(slot);
        let pair_id = self.pairs.get(&first).map(|p| p.pair_id);
        let other = m.partner().map(|o| self.members.get(o).addr);
        let why = match (pair_id, other, data_len) {
            (None, _, _) => "relay before pairing",
            (_, None, _) => "relay: no partner",
            (_, _, None) => "relay without DATA",
            (_, _, Some(n)) if n > self.config.max_relay_payload => "relay DATA too large",
            (Some(id), _, _) if claimed != Some(id) => {
                self.stats.bad_pair_id += 1;
                "relay with another pair's PAIR-ID"
            }
            (_, Some(other), Some(n)) => {
                if !self.allow(remote, Budget::Relay(n)) {
                    return None;
                }
                let now = self.now;
                self.members.touch(slot, now);
                self.stats.relayed += 1;
                if let (Some(t), Some(pair_id)) = (&self.table, claimed) {
                    t.insert(
                        remote,
                        Route {
                            pair_id,
                            partner: other,
                        },
                    );
                }
                return Some(other);
            }
        };
        self.drop_packet(remote, why);
        None
    }

    /// A Leave from a member: accepted only with a valid MESSAGE-INTEGRITY under the member's link key (if it
    /// gave one), so a spoofed Leave removes nobody. With BURN the nameplate stays refused for
    /// [`BURN_TIME`]: one wrong code is one online guess.
    fn on_leave(&mut self, remote: SocketAddr, data: &[u8], pool: String, burn: bool) {
        let Some(key) = self.member_mut(remote).map(|m| m.link_key()) else {
            return self.drop_packet(remote, "leave from a client that is not registered");
        };
        if key.is_some_and(|k| !wire::check_integrity(data, &k)) {
            return self.drop_packet(remote, "leave without a valid integrity");
        }
        if burn && self.pool_of(remote) == Some(pool.as_str()) {
            if self.burned.len() >= self.config.max_members {
                self.burned.pop_first();
            }
            self.burned.insert(pool, after(self.now, BURN_TIME));
        }
        self.remove_member(remote, false);
    }

    /// Whether `pool` is burnt now (expired entries are forgotten).
    fn is_burned(&mut self, pool: &str) -> bool {
        match self.burned.get(pool) {
            Some(until) if *until > self.now => true,
            Some(_) => {
                self.burned.remove(pool);
                false
            }
            None => false,
        }
    }

    /// Sends `msg` to a member, with a MESSAGE-INTEGRITY under its link key when it has one.
    fn reply_to_member(&mut self, local: SocketAddr, member: SocketAddr, msg: Msg) {
        let key = self.member_mut(member).and_then(|m| m.link_key());
        let payload = match key {
            Some(k) => msg.encode_with_integrity(&k),
            None => msg.encode(),
        };
        self.out.push_back(Transmit {
            ttl: None,
            source: Some(local),
            destination: member,
            payload,
        });
    }

    /// Removes a member; its partner (if any) is told and goes back to waiting.
    fn remove_member(&mut self, addr: SocketAddr, expired: bool) {
        let Some(slot) = self.members.find(addr) else {
            return;
        };
        let (first, _) = self.members.pool_of_slot(slot);
        self.ips.count_member(self.now, addr.ip(), false);
        self.unroute(addr);
        if self.infos.remove(&slot).is_some() {
            self.info_schedule.forget();
        }
        let pair_id = self.pairs.remove(&first).map(|p| p.pair_id);
        let m = self.members.remove(slot);
        let pool_name = crate::wire::Label::from(m.pool());
        let partner = m.partner();
        if let Some(p) = partner {
            if self.infos.remove(&p).is_some() {
                self.info_schedule.forget();
            }
        }
        if let (Some(partner), Some(pair_id)) = (partner, pair_id) {
            let partner = self.members.get(partner).addr;
            let tid: wire::Tid = self.rng.gen();
            let pair_id = Some(pair_id);
            let listen = self.config.listen;
            self.reply_to_member(listen, partner, Msg::PeerLeft { tid, pair_id });
        }
        if expired {
            self.stats.expired += 1;
            self.event(ServerEvent::Expired {
                pool: pool_name,
                client: addr,
            });
        } else {
            self.event(ServerEvent::Left {
                pool: pool_name,
                client: addr,
            });
        }
    }

    fn sweep(&mut self) {
        let now = self.now;
        let timeout = self.config.member_timeout;
        // Silent members, in the order of the pools' names and then of registration (the order events and
        // PeerLefts go out in does not depend on where members sit in memory).
        let mut stale: Vec<(&str, bool, SocketAddr)> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(self.members.last_seen(m)) >= timeout)
            .map(|(slot, m)| (m.pool(), !self.members.is_first(slot), m.addr))
            .collect();
        stale.sort_unstable();
        let stale: Vec<SocketAddr> = stale.into_iter().map(|(_, _, a)| a).collect();
        for addr in stale {
            self.remove_member(addr, true);
        }
        self.next_sweep = if self.members.len() == 0 {
            None
        } else {
            Some(after(now, SWEEP_INTERVAL))
        };
    }
}

/// Whether a queued send is the next one of its member's current PeerInfo (else it went stale: answered,
/// replaced, or its member left or moved).
fn is_current(
    members: &Members,
    infos: &SlotMap<PendingInfo>,
    &(at, addr, tid): &schedule::Entry,
) -> bool {
    let info = members.find(addr).and_then(|s| infos.get(&s));
    info.is_some_and(|i| i.tid == tid && i.retransmit.next_send() == Some(at))
}
