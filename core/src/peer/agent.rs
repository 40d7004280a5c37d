//! The path agent (shaped like str0m's `is::IceAgent`): the partner's candidates, punch rounds, the choice
//! between the direct path and the relay, and the direct path's liveness.
//!
//! From pairing on the chat rides the relay; a punch round pings every candidate (the partner's public and
//! local addresses, plus peer-reflexive ones learnt from its pings; every ping and pong is sealed with the
//! pair's key by the peer, so only the partner's count) every half server RTT (10 ms up to
//! [`PeerConfig::ping_interval`]) for the first [`FAST_PHASE`], then every `ping_interval`, until the first
//! pong proves a direct path or [`PeerConfig::punch_timeout`] passes. A ping from an unknown address is answered
//! and pinged back at once. While on the relay the agent asks the server every [`PeerConfig::retry_interval`]
//! for a new round (the server starts it for both sides at once).
//!
//! On the direct path one side (the keepalive leader) pings the idle path every learnt interval
//! ([`super::lifetime`]: from [`PeerConfig::path_keepalive`] up to [`PeerConfig::path_keepalive_max`]), and every
//! ping starts a liveness check: no word from the path within two round trips, ping again, twice more with
//! doubled waits ([`CHECK_TRIES`]); still nothing, the path is lost: back to the relay at once and punch again.
//! The peer also asks for a check ([`PathAgent::suspect`]) as soon as the chat has to retransmit on the direct
//! path, so a path that dies mid-conversation is left within a few round trips, not at the next keepalive.
//!
//! Liveness is counted per address: only what arrives from the direct path's own address keeps it alive. When
//! the partner's NAT gives it a new public port (a reboot, a conntrack flush, a mapping that timed out), its
//! authenticated datagrams arrive from the new address while ours still go to the old one. The agent then
//! pings the new address (at most every [`REBIND_PROBE_EVERY`]), and a pong from it moves the direct path there
//! once the current address has been silent for [`SWITCH_AFTER`]. A liveness check that gets no answer to its
//! first ping pings every other candidate with its second, so either side's rebinding is followed within a
//! few round trips, without a round through the server.
//!
//! Birthday probing ([`Strategy::Birthday`]: a random-port symmetric NAT facing a port-filtering one) is a round
//! of its own. The hard side asks its driver for [`PeerConfig::birthday_sockets`] extra sockets
//! ([`SocketRequest::Open`]) and sends a TTL-limited opener from each (and from its main socket) to the easy
//! side's public address: every one opens a mapping on its NAT that admits the easy side, and none reaches
//! the easy side's NAT. The easy side, after the same hold as a held first ping, pings random ports of the hard
//! side's IP at [`PeerConfig::birthday_rate`]; a ping that lands is answered from the socket that owns the
//! mapping, and the first pong makes the path direct on both sides. The hard side keeps that socket (its
//! direct traffic leaves from it, [`PathAgent::path_source`]) and closes the others; after
//! [`PeerConfig::birthday_timeout`] without a pong both give up and stay on the relay (no retry rounds: the
//! cost is bounded), until a direct path that was found is lost again.
//!
//! Path choice by RTT: a punch round pings every candidate (IPv6 and IPv4 alike) in one burst, so the first
//! pong is the candidate with the best round trip of that round. Every candidate that ever answered is
//! *proven*; while on the direct path, each keepalive also pings the proven others, and a pong whose round
//! trip beats the path's last one clearly ([`better_rtt`]) moves the direct path there (say a dual-stack
//! pair whose IPv4 pong won the round while IPv6 is the shorter way). Only proven candidates are re-pinged:
//! nothing is sent to an address that never answered.
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::lifetime::MappingLifetime;
use super::PeerRng;

use super::{Path, PeerConfig, FALLBACK_SERVER_RTT};
use crate::nat::{birthday_role, predicted_ports, BirthdayRole, Filtering, NatBehaviour, Strategy};
use crate::timer::{after, timers, Timers};
use crate::wire::{Inner, PairIdBytes, Tid};
use crate::{Deadline, SocketRequest, Transmit};

/// Most candidate addresses per partner.
const MAX_CANDIDATES: usize = 16;
/// How long a punch round pings at the fast rate.
pub const FAST_PHASE: Duration = Duration::from_millis(500);
/// Outstanding pings remembered (the oldest is forgotten first).
const MAX_PINGS: usize = 256;
/// The server RTT assumed for the first-ping hold when none was measured.
const HOLD_FALLBACK_RTT: Duration = Duration::from_millis(40);
/// A pong from another address moves the direct path there once the current address has been silent this long
/// (shorter silences are normal between keepalives; a proven, fresh address is never a bad choice).
pub const SWITCH_AFTER: Duration = Duration::from_secs(1);
/// Data from the partner at an address other than the direct path's is answered with a ping at most this often.
pub const REBIND_PROBE_EVERY: Duration = Duration::from_millis(500);
/// The lowest port birthday probes aim at (NATs allocate from 1024 up: Linux `masquerade random` uses
/// 1024-65535 for sources above 1023).
pub const PROBE_MIN_PORT: u16 = 1024;
/// Shortest interval between two birthday probe bursts.
const PROBE_TICK: Duration = Duration::from_millis(10);
/// What the hard side's sockets need before the first probe can land: time to bind them and send the openers.
const BIND_MARGIN: Duration = Duration::from_millis(20);
/// After a lost direct path, when to ask the server for a round again if none came (the server allows one
/// every 3 s, `server::RETRY_MIN_INTERVAL`).
pub const LOST_RETRY_AFTER: Duration = Duration::from_secs(4);
/// Pings a liveness check sends before it declares the direct path lost.
pub const CHECK_TRIES: u8 = 3;
/// The first wait of a liveness check: twice the path's round trip, within these bounds; each further try
/// waits twice as long (at 40 ms RTT: 100, 200 and 400 ms, so a dead path is left after 700 ms).
const CHECK_WAIT_MIN: Duration = Duration::from_millis(100);
const CHECK_WAIT_MAX: Duration = Duration::from_secs(1);

/// A liveness check of the direct path in progress: pings to it, waiting for any authenticated word from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Check {
    /// When the first ping left: anything from the path after this proves it alive.
    since: Instant,
    /// How long the path had been silent then.
    silence: Duration,
    /// Pings sent so far.
    tries: u8,
}

timers! {
    enum AgentTimer {
        Ping => "punch ping",
        PunchDeadline => "punch round ends",
        Keepalive => "direct path keepalive",
        Retry => "ask for a new punch round",
        Probe => "birthday probe burst",
        Check => "direct path liveness check",
    }
}

/// What the agent tells the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AgentEvent {
    /// The path changed.
    Path { path: Path, rtt: Duration },
    /// Ask the server for a new punch round.
    RequestRetry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// On the relay, not punching.
    Relay,
    /// On the relay while a punch round runs (from `round_start`, which is later than now while the first
    /// ping is held back).
    Punching { round_start: Instant },
    /// On the direct path to this address.
    Direct(SocketAddr),
}

#[derive(Debug)]
struct Pair {
    id: PairIdBytes,
    /// The partner's public address as the server last told it.
    public: SocketAddr,
    strategy: Strategy,
    candidates: BTreeSet<SocketAddr>,
    phase: Phase,
    /// The last authenticated datagram from the direct path's address (pairing time before there is one).
    path_rx: Instant,
    /// The last ping sent because the partner spoke from another address (rate limit).
    rebind_probe: Option<Instant>,
    /// The server says the partner pings first in the next round (see `start_round`).
    hold_first_ping: bool,
    /// Both NATs drop what they have not sent to (port-dependent or unknown filtering): our first ping must
    /// not arrive before the partner's opener left.
    both_filter_ports: bool,
    /// Our part when the strategy is [`Strategy::Birthday`].
    role: Option<BirthdayRole>,
    /// The local socket the direct path uses (`None`: the main socket; `Some`: a birthday socket).
    path_local: Option<SocketAddr>,
    /// Easy side: the ports probed this round (one bit per port).
    probed: Vec<u64>,
    /// Candidates that answered a ping of ours (at most the candidates').
    proven: BTreeSet<SocketAddr>,
    /// The direct path's last measured round trip.
    path_rtt: Option<Duration>,
    /// Our public address as the server saw it (the keepalive leader is the lower of the two).
    own_public: Option<SocketAddr>,
    /// The direct path's liveness check, while one runs.
    check: Option<Check>,
    /// The keepalive interval, learnt from the silences the path survived.
    lifetime: MappingLifetime,
    /// Our address as the partner sees it on the direct path (the last pong's mapped address).
    seen_as: Option<SocketAddr>,
    /// The last check's start and the silence before it, until the pong to one of its pings says whether
    /// the mappings survived that silence.
    proof: Option<Check>,
}

impl Pair {
    /// Whether we are the side that keeps the idle path open (the lower public address as the server saw
    /// both; the other side answers, and pings only when the path went quiet).
    fn follower(&self) -> bool {
        self.own_public.is_some_and(|o| o > self.public)
    }

    /// Whether the keepalive interval may grow: not where a lost path is expensive to find again (birthday
    /// probing; a path from an extra socket).
    fn may_grow(&self) -> bool {
        self.strategy == Strategy::Punch && self.path_local.is_none()
    }

    /// How long the follower waits for the leader's keepalive before it pings itself.
    fn patience(&self) -> Duration {
        let interval = self.lifetime.interval();
        interval + interval / 8 + self.path_rtt.unwrap_or(HOLD_FALLBACK_RTT) * 2
    }

    /// An authenticated datagram from the direct path at `now`: it is alive. Returns the check this ends.
    fn heard(&mut self, now: Instant) -> Option<Check> {
        self.path_rx = now;
        self.check.take_if(|c| now >= c.since)
    }
}

/// Whether a round trip of `rtt` is clearly better than the path's `path_rtt`: under three quarters of it,
/// and at least a millisecond shorter (so that equal paths never flap on jitter).
pub(crate) fn better_rtt(rtt: Duration, path_rtt: Duration) -> bool {
    rtt * 4 < path_rtt * 3 && rtt + Duration::from_millis(1) <= path_rtt
}

/// What punching has cost so far (all rounds of the current and earlier pairs): the sealed pings sent
/// (openers, round pings, keepalives and birthday probes) and the extra sockets opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PunchCost {
    /// Pings sent directly to the partner (not counting pongs).
    pub pings: u64,
    /// Of those, birthday probes to random ports.
    pub probes: u64,
    /// Extra sockets opened for birthday probing.
    pub sockets: u64,
}

/// Whether a NAT with this behaviour drops a packet from a port it has not sent to (port-dependent
/// filtering, or unknown: assume the worst).
fn drops_strangers(n: &NatBehaviour) -> bool {
    n.behind_nat != Some(false)
        && matches!(n.filtering, None | Some(Filtering::AddressAndPortDependent))
}

/// Outstanding pings: transaction id -> (sent at, destination, our socket: `None` = main), with an index by
/// `(sent at, tid)` so that forgetting the oldest (a birthday round keeps [`MAX_PINGS`] of them) takes a
/// lookup, not a scan of the table. The oldest is the earliest sent, the lowest tid among equals.
#[derive(Debug, Default)]
struct Pings {
    by_tid: BTreeMap<Tid, Ping>,
    by_age: BTreeSet<(Instant, Tid)>,
}

/// One outstanding ping: sent at, to, from our socket (`None`: the main one).
type Ping = (Instant, SocketAddr, Option<SocketAddr>);

impl Pings {
    fn len(&self) -> usize {
        self.by_tid.len()
    }

    fn insert(&mut self, tid: Tid, ping: Ping) {
        if let Some(old) = self.by_tid.insert(tid, ping) {
            self.by_age.remove(&(old.0, tid));
        }
        self.by_age.insert((ping.0, tid));
    }

    fn remove(&mut self, tid: &Tid) -> Option<Ping> {
        let ping = self.by_tid.remove(tid)?;
        self.by_age.remove(&(ping.0, *tid));
        Some(ping)
    }

    /// Forgets the earliest sent (the lowest tid among equal send times).
    fn forget_oldest(&mut self) {
        if let Some((_, tid)) = self.by_age.pop_first() {
            self.by_tid.remove(&tid);
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&Ping) -> bool) {
        let by_age = &mut self.by_age;
        self.by_tid.retain(|tid, ping| {
            let k = keep(ping);
            if !k {
                by_age.remove(&(ping.0, *tid));
            }
            k
        });
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct PathAgent {
    config: PeerConfig,
    pair: Option<Pair>,
    server_rtt: Option<Duration>,
    rng: PeerRng,
    now: Instant,
    timers: Timers<AgentTimer>,
    /// Outstanding pings (see [`Pings`]).
    pings: Pings,
    /// Extra sockets the driver opened for us and we have not closed.
    sockets: BTreeSet<SocketAddr>,
    /// Extra sockets asked for and not reported yet.
    sockets_pending: bool,
    requests: VecDeque<SocketRequest>,
    cost: PunchCost,
    out: VecDeque<Transmit>,
    events: VecDeque<AgentEvent>,
}

/// What the agent needs to know about a new partner.
#[derive(Debug)]
pub(crate) struct NewPair {
    pub id: PairIdBytes,
    pub public: SocketAddr,
    pub locals: Vec<SocketAddr>,
    pub strategy: Strategy,
    /// The partner's NAT behaviour (a sequential symmetric NAT's next ports are candidates too).
    pub nat: NatBehaviour,
    /// Ours, as registered.
    pub own_nat: NatBehaviour,
    pub hold: bool,
    /// Our own public address (never a candidate).
    pub own_public: Option<SocketAddr>,
    pub server_rtt: Option<Duration>,
}

impl PathAgent {
    pub fn new(config: PeerConfig, rng: &mut PeerRng, now: Instant) -> Self {
        PathAgent {
            config,
            pair: None,
            server_rtt: None,
            rng: PeerRng::from_seed(rng.gen()),
            now,
            timers: Timers::default(),
            pings: Pings::default(),
            sockets: BTreeSet::new(),
            sockets_pending: false,
            requests: VecDeque::new(),
            cost: PunchCost::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn pair_id(&self) -> Option<PairIdBytes> {
        self.pair.as_ref().map(|p| p.id)
    }

    pub fn is_punching(&self) -> bool {
        matches!(
            self.pair.as_ref().map(|p| p.phase),
            Some(Phase::Punching { .. })
        )
    }

    /// The relay's round trip (through the server, twice the server RTT).
    fn relay_rtt(&self) -> Duration {
        self.server_rtt.unwrap_or(FALLBACK_SERVER_RTT) * 2
    }

    /// A new partner: the relay carries chat from this moment, and a punch round starts if the strategy says
    /// direct is possible, or if the partner is behind our own NAT (the same public IP): then its LAN
    /// addresses may be reachable whatever the NAT kinds (two hosts behind one symmetric NAT), at the cost of
    /// one round of pings.
    pub fn pair(&mut self, now: Instant, p: NewPair) {
        self.advance(now);
        self.server_rtt = p.server_rtt;
        let same_nat = p.own_public.is_some_and(|o| o.ip() == p.public.ip());
        let birthday_off = self.config.birthday_sockets == 0 || self.config.birthday_rate == 0;
        let strategy = match p.strategy {
            Strategy::Relay | Strategy::Birthday
                if same_nat && !self.config.relay_only && !p.locals.is_empty() =>
            {
                Strategy::Punch
            }
            Strategy::Birthday if birthday_off => Strategy::Relay,
            // The hard side's openers go to the easy side's public address: useless across families (a
            // dual-stack peer registered over IPv6 facing an IPv4-only partner).
            Strategy::Birthday
                if p.own_public
                    .is_some_and(|o| o.is_ipv4() != p.public.is_ipv4()) =>
            {
                Strategy::Relay
            }
            s => s,
        };
        let role = match strategy {
            Strategy::Birthday => birthday_role(&p.own_nat, &p.nat),
            _ => None,
        };
        self.close_sockets(None);
        let mut candidates = BTreeSet::from([p.public]);
        for l in &p.locals {
            if *l != p.public && Some(*l) != p.own_public {
                candidates.insert(*l);
            }
        }
        if !same_nat {
            candidates.extend(predicted_ports(&p.nat, p.public));
        }
        self.pair = Some(Pair {
            id: p.id,
            public: p.public,
            strategy,
            candidates,
            phase: Phase::Relay,
            path_rx: self.now,
            rebind_probe: None,
            hold_first_ping: p.hold,
            // Only when both sides filter by port can the order of first pings lose the pair (a side that
            // lets any port of the partner's IP in answers whatever port the partner ends up on).
            both_filter_ports: drops_strangers(&p.nat) && drops_strangers(&p.own_nat),
            role,
            path_local: None,
            probed: Vec::new(),
            proven: BTreeSet::new(),
            path_rtt: None,
            own_public: p.own_public,
            check: None,
            seen_as: None,
            proof: None,
            lifetime: MappingLifetime::new(
                self.config.path_keepalive,
                self.config.path_keepalive_max,
            ),
        });
        let rtt = self.relay_rtt();
        self.events.push_back(AgentEvent::Path {
            path: Path::Relay,
            rtt,
        });
        if strategy != Strategy::Relay {
            self.start_round();
        }
    }

    /// The partner is gone: forget it, stop every timer, close the extra sockets.
    pub fn unpair(&mut self) {
        self.pair = None;
        self.timers.clear();
        self.close_sockets(None);
    }

    /// Where a datagram to the partner on the current path leaves from: `None` for the main socket, or the
    /// birthday socket that won.
    pub fn path_source(&self) -> Option<SocketAddr> {
        self.pair.as_ref().and_then(|p| p.path_local)
    }

    /// Whether `local` is one of the extra sockets (only the partner's pings, pongs and data count there).
    pub fn is_extra_socket(&self, local: SocketAddr) -> bool {
        self.sockets.contains(&local)
    }

    /// The longest silence the current direct path survived (zero without one): our NAT keeps idle mappings
    /// at least this long.
    pub fn proven_silence(&self) -> Duration {
        self.pair
            .as_ref()
            .map_or(Duration::ZERO, |p| p.lifetime.proven())
    }

    /// What punching has cost so far.
    pub fn cost(&self) -> PunchCost {
        self.cost
    }

    /// Next change to the socket set for the driver.
    pub fn poll_socket_request(&mut self) -> Option<SocketRequest> {
        self.requests.pop_front()
    }

    /// The driver opened `opened` for our request: send an opener from each toward the partner (birthday
    /// probing, hard side), or close them at once if the attempt is over.
    pub fn handle_sockets(&mut self, now: Instant, opened: &[SocketAddr]) {
        self.advance(now);
        let wanted = std::mem::take(&mut self.sockets_pending)
            && self.pair.as_ref().is_some_and(|p| {
                p.role == Some(BirthdayRole::Hard) && matches!(p.phase, Phase::Punching { .. })
            });
        if !wanted {
            if !opened.is_empty() {
                self.requests
                    .push_back(SocketRequest::Close(opened.to_vec()));
            }
            return;
        }
        let Some(public) = self.pair.as_ref().map(|p| p.public) else {
            return;
        };
        self.cost.sockets += opened.len() as u64;
        tracing::debug!(
            sockets = opened.len(),
            "birthday probing: openers from every socket"
        );
        for &local in opened {
            self.sockets.insert(local);
            self.open_toward(Some(local), public, self.config.opener_ttl);
        }
    }

    /// Closes every extra socket but `keep`.
    fn close_sockets(&mut self, keep: Option<SocketAddr>) {
        let close: Vec<SocketAddr> = self
            .sockets
            .iter()
            .copied()
            .filter(|s| Some(*s) != keep)
            .collect();
        if close.is_empty() {
            return;
        }
        self.sockets.retain(|s| Some(*s) == keep);
        self.pings
            .retain(|&(_, _, from)| from.is_none_or(|f| Some(f) == keep));
        self.requests.push_back(SocketRequest::Close(close));
    }

    /// The socket a datagram arrived on, as a transmit's source: `None` for the main socket.
    fn source_of(&self, local: SocketAddr) -> Option<SocketAddr> {
        self.sockets.contains(&local).then_some(local)
    }

    /// A fresh PeerInfo for the current pair: a new round (retry) or the partner moved.
    pub fn new_round(&mut self, now: Instant, public: SocketAddr, hold: bool) {
        self.advance(now);
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        let mut leave = false;
        if pair.public != public {
            let old = pair.public;
            pair.candidates.remove(&old);
            pair.candidates.insert(public);
            pair.public = public;
            leave = pair.phase == Phase::Direct(old);
        }
        // A partner whose direct path died asks for a round: ours has gone quiet too (we have not noticed
        // yet), and the round must start on both sides at once. (A path we heard from within the last second
        // stays: the round is someone's move, and the partner's pings get our pongs.)
        let quiet = now.saturating_duration_since(pair.path_rx) >= SWITCH_AFTER;
        leave |= matches!(pair.phase, Phase::Direct(_)) && quiet;
        if leave {
            self.leave_direct();
        }
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        if pair.phase == Phase::Relay {
            pair.hold_first_ping = hold;
            self.start_round();
        }
    }

    /// An authenticated ping or pong from `remote` (the peer opened it with the pair's key, so it is the
    /// partner's); anything else is not the agent's.
    /// `local` is the socket it arrived on.
    pub fn handle_inner(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        inner: Inner,
    ) {
        self.advance(now);
        if self.config.relay_only {
            return; // never let a direct path form
        }
        let from = self.source_of(local);
        match inner {
            Inner::Ping { tid } => self.on_ping(from, remote, tid),
            Inner::Pong { tid, mapped } => self.on_pong(from, remote, tid, mapped),
            _ => {}
        }
    }

    /// An authenticated datagram arrived straight from the partner at `remote`: the direct path is alive if
    /// that is its address; if not, the partner may have a new mapping: ping it (a pong moves the path).
    pub fn note_direct_rx(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        self.advance(now);
        let now = self.now;
        let from = self.source_of(local);
        let Some(p) = self.pair.as_mut() else {
            return;
        };
        match p.phase {
            Phase::Direct(addr) if addr == remote && from == p.path_local => {
                if let Some(check) = p.heard(now) {
                    self.on_check_passed(check);
                }
            }
            Phase::Direct(addr) if addr == remote => {}
            Phase::Direct(_) => {
                let due = p
                    .rebind_probe
                    .is_none_or(|t| now.saturating_duration_since(t) >= REBIND_PROBE_EVERY);
                if due {
                    p.rebind_probe = Some(now);
                    if p.candidates.len() < MAX_CANDIDATES {
                        p.candidates.insert(remote);
                    }
                    let own = p.path_local;
                    self.ping(own, remote);
                }
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        for t in self.timers.expire(self.now) {
            match t {
                AgentTimer::Ping => self.send_pings(),
                AgentTimer::PunchDeadline => self.on_punch_deadline(),
                AgentTimer::Keepalive => self.on_keepalive(),
                AgentTimer::Retry => self.on_retry(),
                AgentTimer::Probe => self.send_probes(),
                AgentTimer::Check => self.on_check(),
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_deadline(&self) -> Option<Deadline> {
        self.timers.next()
    }

    pub fn poll_event(&mut self) -> Option<AgentEvent> {
        self.events.pop_front()
    }

    // ---- internals ----

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn start_round(&mut self) {
        let now = self.now;
        let hold_rtt = self.server_rtt.unwrap_or(HOLD_FALLBACK_RTT);
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        if pair.strategy == Strategy::Relay || matches!(pair.phase, Phase::Direct(_)) {
            return;
        }
        if pair.strategy == Strategy::Birthday {
            return self.start_birthday();
        }
        let hold = std::mem::take(&mut pair.hold_first_ping);
        let public = pair.public;
        if let Some(ttl) = self.config.opener_ttl {
            self.open_toward(None, public, Some(ttl));
        }
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        tracing::debug!(
            candidates = pair.candidates.len(),
            hold,
            "punch round starts"
        );
        // With openers, hold the first ping back on both sides when the partner's NAT would drop it (and a Linux
        // one reserve the tuple): the partner's opener then leaves before our ping arrives, whatever the order.
        let hold = hold || (self.config.opener_ttl.is_some() && pair.both_filter_ports);
        if hold {
            // The partner's opener (or, without openers, its first ping: the server chose it to ping first this
            // round, see `server::round_holder`) must leave its NAT before our ping arrives there, or a Linux NAT
            // without a WAN firewall reserves the tuple. A partner's ping that reaches us meanwhile is answered
            // at once (`on_ping`). Half the server RTT, at least 30 ms: it covers the start skew (the two
            // PeerInfo copies' arrival difference plus jitter; sim/tests/opener.rs measures it).
            let hold = hold_time(hold_rtt);
            pair.phase = Phase::Punching {
                round_start: after(now, hold),
            };
            self.timers.set(AgentTimer::Ping, after(now, hold));
            self.timers.set(
                AgentTimer::PunchDeadline,
                after(now, hold + self.config.punch_timeout),
            );
            return;
        }
        pair.phase = Phase::Punching { round_start: now };
        self.timers.set(
            AgentTimer::PunchDeadline,
            after(now, self.config.punch_timeout),
        );
        self.send_pings();
    }

    /// A birthday round (see the module docs): the hard side asks for its sockets and opens its main
    /// socket's mapping at once; the easy side starts probing after the hold.
    fn start_birthday(&mut self) {
        let now = self.now;
        let hold = hold_time(self.server_rtt.unwrap_or(HOLD_FALLBACK_RTT)) + BIND_MARGIN;
        self.close_sockets(None);
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        pair.hold_first_ping = false;
        pair.path_local = None;
        match pair.role {
            Some(BirthdayRole::Hard) => {
                let public = pair.public;
                pair.phase = Phase::Punching { round_start: now };
                tracing::debug!(
                    sockets = self.config.birthday_sockets,
                    "birthday probing: hard side, asking for sockets"
                );
                self.sockets_pending = true;
                self.requests.push_back(SocketRequest::Open {
                    count: usize::from(self.config.birthday_sockets),
                });
                self.open_toward(None, public, self.config.opener_ttl);
                self.timers.set(
                    AgentTimer::PunchDeadline,
                    after(now, self.config.birthday_timeout),
                );
            }
            Some(BirthdayRole::Easy) => {
                pair.probed = vec![0; 1 << 10];
                pair.phase = Phase::Punching {
                    round_start: after(now, hold),
                };
                tracing::debug!(
                    rate = self.config.birthday_rate,
                    "birthday probing: easy side, probing after the hold"
                );
                // The first burst also pings every candidate once (a LAN address, the partner's public one).
                self.timers.set(AgentTimer::Ping, after(now, hold));
                self.timers.set(AgentTimer::Probe, after(now, hold));
                self.timers.set(
                    AgentTimer::PunchDeadline,
                    after(now, hold + self.config.birthday_timeout),
                );
            }
            None => {}
        }
    }

    /// One ping to every candidate while punching; re-armed every ping interval (a birthday round pings the
    /// candidates once: its probes do the rest).
    fn send_pings(&mut self) {
        let Some(pair) = self.pair.as_ref() else {
            return;
        };
        let Phase::Punching { round_start } = pair.phase else {
            return;
        };
        let targets: Vec<SocketAddr> = pair.candidates.iter().copied().collect();
        let birthday = pair.strategy == Strategy::Birthday;
        // Fast at first (half the server RTT, 10..=ping_interval), so that a lost ping or pong costs half a
        // round trip, not a whole ping interval; after FAST_PHASE, the configured interval.
        let fast = self.now.saturating_duration_since(round_start) < FAST_PHASE;
        let interval = match self.server_rtt {
            Some(rtt) if fast => {
                (rtt / 2).clamp(Duration::from_millis(10), self.config.ping_interval)
            }
            _ => self.config.ping_interval,
        };
        for t in targets {
            self.ping(None, t);
        }
        if !birthday {
            self.timers.set(AgentTimer::Ping, after(self.now, interval));
        }
    }

    /// Easy side of a birthday round: the probes due since the last burst, each to a port of the partner's IP
    /// not probed yet this round, at [`PeerConfig::birthday_rate`].
    fn send_probes(&mut self) {
        let rate = self.config.birthday_rate.max(1);
        let tick = (Duration::from_secs(1) / rate).max(PROBE_TICK);
        let burst = (u64::from(rate) * tick.as_nanos() as u64)
            .div_ceil(1_000_000_000)
            .max(1);
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        if !matches!(pair.phase, Phase::Punching { .. }) || pair.role != Some(BirthdayRole::Easy) {
            return;
        }
        let ip = pair.public.ip();
        let range = u32::from(u16::MAX - PROBE_MIN_PORT) + 1;
        let mut targets = Vec::with_capacity(burst as usize);
        for _ in 0..burst {
            // A random port not probed yet: draw, then walk up to the next free one (the set fills slowly: a
            // round probes at most rate x timeout ports of 64 512).
            let start = self.rng.gen_range(0..range);
            let free = (0..range)
                .map(|k| (start + k) % range)
                .find(|&i| pair.probed[(i / 64) as usize] & (1 << (i % 64)) == 0);
            let Some(i) = free else { break };
            pair.probed[(i / 64) as usize] |= 1 << (i % 64);
            let port = PROBE_MIN_PORT + i as u16;
            targets.push(SocketAddr::new(ip, port));
        }
        if targets.is_empty() {
            return;
        }
        for t in targets {
            self.cost.probes += 1;
            self.ping(None, t);
        }
        self.timers.set(AgentTimer::Probe, after(self.now, tick));
    }

    /// The round's opener: a ping from `from` to `to` that expires after `ttl` hops (see
    /// [`PeerConfig::opener_ttl`]; `None`: an ordinary ping).
    fn open_toward(&mut self, from: Option<SocketAddr>, to: SocketAddr, ttl: Option<u8>) {
        self.ping(from, to);
        if let Some(t) = self.out.back_mut() {
            t.ttl = ttl;
        }
    }

    fn ping(&mut self, from: Option<SocketAddr>, to: SocketAddr) {
        if self.pair.is_none() {
            return;
        }
        let tid: Tid = self.rng.gen();
        if self.pings.len() >= MAX_PINGS {
            self.pings.forget_oldest();
        }
        self.pings.insert(tid, (self.now, to, from));
        self.cost.pings += 1;
        tracing::trace!(%to, "ping");
        self.send(from, to, Inner::Ping { tid });
    }

    /// Queues an inner frame for `destination` from socket `source` (`None`: the main one); the peer seals it
    /// with the pair's key.
    fn send(&mut self, source: Option<SocketAddr>, destination: SocketAddr, inner: Inner) {
        self.out.push_back(Transmit {
            ttl: None,
            source,
            destination,
            payload: inner.encode(),
        });
    }

    fn on_ping(&mut self, from: Option<SocketAddr>, remote: SocketAddr, tid: Tid) {
        let now = self.now;
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        let mut passed = None;
        if pair.phase == Phase::Direct(remote) && pair.path_local == from {
            // The leader's keepalive after a whole interval of silence: both mappings lived that long. Not
            // while our own check waits for its pong: then this may be the partner following our new mapping
            // (the pong's mapped address tells).
            let silence = now.saturating_duration_since(pair.path_rx);
            if pair.check.is_none() && pair.proof.is_none() {
                let grow = pair.may_grow();
                pair.lifetime.survived(silence, grow);
            }
            passed = pair.heard(now);
            if pair.follower() {
                let wait = pair.patience();
                self.timers.set(AgentTimer::Keepalive, after(now, wait));
            }
        }
        if let Some(check) = passed {
            self.on_check_passed(check);
        }
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        let new = !pair.candidates.contains(&remote);
        if new && pair.candidates.len() < MAX_CANDIDATES {
            pair.candidates.insert(remote);
        }
        let on_relay = !matches!(pair.phase, Phase::Direct(_));
        self.send(
            from,
            remote,
            Inner::Pong {
                tid,
                mapped: remote,
            },
        );
        // A triggered check: ping back at once, so the path is proven in both directions (also when our own
        // punch round already ended and we are on the relay: the partner's round may have started later).
        if new || on_relay {
            self.ping(from, remote);
        }
    }

    fn on_pong(
        &mut self,
        from: Option<SocketAddr>,
        remote: SocketAddr,
        tid: Tid,
        mapped: SocketAddr,
    ) {
        let now = self.now;
        let Some((sent, to, sent_from)) = self.pings.remove(&tid) else {
            return;
        };
        if to != remote || sent_from != from {
            return;
        }
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        let rtt = now.saturating_duration_since(sent);
        if pair.candidates.len() < MAX_CANDIDATES {
            pair.candidates.insert(remote);
        }
        if pair.proven.len() < MAX_CANDIDATES {
            pair.proven.insert(remote);
        }
        match pair.phase {
            Phase::Direct(addr) if addr == remote && pair.path_local == from => {
                pair.path_rtt = Some(rtt);
                // The partner sees us at a new address: our NAT forgot the mapping and made a new one (a
                // symmetric NAT: a new port), so the silence before this check was too long for it.
                let rebound = pair.seen_as.is_some_and(|s| s != mapped);
                pair.seen_as = Some(mapped);
                // The answer to a check's ping proves (or, rebound, disproves) the silence before it.
                let proof = pair.proof.take_if(|p| sent >= p.since);
                if let Some(proof) = proof {
                    if rebound {
                        pair.lifetime.lost(proof.silence);
                    } else {
                        let grow = pair.may_grow();
                        pair.lifetime.survived(proof.silence, grow);
                    }
                }
                // (The check itself may have passed already, on a datagram that came before this pong.)
                if let Some(check) = pair.heard(now).or(proof) {
                    self.on_check_passed(check);
                }
                return;
            }
            // Keep the proven path while it is alive, unless this one is clearly shorter; move when it went
            // quiet and this one answers.
            Phase::Direct(_)
                if now.saturating_duration_since(pair.path_rx) < SWITCH_AFTER
                    && !pair.path_rtt.is_some_and(|p| better_rtt(rtt, p)) =>
            {
                return
            }
            _ => {}
        }
        if let Phase::Direct(old) = pair.phase {
            // The path moves because the partner now speaks from `remote`: its NAT forgot the old mapping
            // (a symmetric NAT gave it a new port), so the silence before was too long for that NAT.
            if old != remote && old.ip() == remote.ip() {
                let silence = now.saturating_duration_since(pair.path_rx);
                pair.lifetime.lost(silence);
            }
        }
        pair.path_rx = now;
        pair.path_rtt = Some(rtt);
        pair.phase = Phase::Direct(remote);
        pair.path_local = from;
        pair.seen_as = Some(mapped);
        pair.check = None;
        pair.proof = None;
        let keepalive = if pair.follower() {
            pair.patience()
        } else {
            pair.lifetime.interval()
        };
        self.timers.stop(AgentTimer::Check);
        let birthday = pair.strategy == Strategy::Birthday;
        self.timers.stop(AgentTimer::Ping);
        self.timers.stop(AgentTimer::Probe);
        self.timers.stop(AgentTimer::PunchDeadline);
        self.timers.stop(AgentTimer::Retry);
        if birthday {
            // The winning socket stays (the path leaves from it); the others go.
            self.close_sockets(from);
            self.sockets_pending = false;
        }
        self.events.push_back(AgentEvent::Path {
            path: Path::Direct(remote),
            rtt,
        });
        self.timers
            .set(AgentTimer::Keepalive, after(now, keepalive));
    }

    fn on_punch_deadline(&mut self) {
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        // The path was the relay all along (a direct pong stops this timer).
        pair.phase = Phase::Relay;
        let birthday = pair.strategy == Strategy::Birthday;
        self.timers.stop(AgentTimer::Ping);
        self.timers.stop(AgentTimer::Probe);
        if birthday {
            // Bounded cost: a birthday attempt that found nothing is not retried (a lost direct path is).
            tracing::debug!("birthday probing found no path: staying on the relay");
            self.close_sockets(None);
            self.sockets_pending = false;
            return;
        }
        self.timers.set(
            AgentTimer::Retry,
            after(self.now, self.config.retry_interval),
        );
    }

    /// The keepalive timer: the leader pings the idle path every learnt interval (and the proven other
    /// candidates, for path choice by RTT); the follower only when the leader's ping is overdue. Either way the
    /// ping starts a liveness check.
    fn on_keepalive(&mut self) {
        let now = self.now;
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        let Phase::Direct(addr) = pair.phase else {
            return;
        };
        let silent = now.saturating_duration_since(pair.path_rx);
        if pair.follower() {
            let patience = pair.patience();
            if silent < patience {
                let at = pair.path_rx + patience;
                self.timers.set(AgentTimer::Keepalive, at);
                return;
            }
        }
        let interval = pair.lifetime.interval();
        tracing::debug!(
            ?silent,
            ?interval,
            leader = !pair.follower(),
            "direct path keepalive"
        );
        let own = pair.path_local;
        let others: Vec<SocketAddr> = pair.proven.iter().copied().filter(|c| *c != addr).collect();
        self.start_check();
        for c in others {
            self.ping(own, c);
        }
        self.timers.set(AgentTimer::Keepalive, after(now, interval));
    }

    /// The chat had to retransmit on the direct path: check it now rather than at the next keepalive.
    pub fn suspect(&mut self, now: Instant) {
        self.advance(now);
        self.start_check();
    }

    /// Pings the direct path and waits a few round trips for a word from it (unless a check already runs).
    fn start_check(&mut self) {
        let now = self.now;
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        let Phase::Direct(addr) = pair.phase else {
            return;
        };
        if pair.check.is_some() {
            return;
        }
        let check = Check {
            since: now,
            silence: now.saturating_duration_since(pair.path_rx),
            tries: 1,
        };
        pair.check = Some(check);
        pair.proof = Some(check);
        let wait = check_wait(pair.path_rtt, 1);
        let own = pair.path_local;
        self.ping(own, addr);
        self.timers.set(AgentTimer::Check, after(now, wait));
    }

    /// A liveness check's wait ended without a word from the path: ping again (the second try also pings
    /// every other candidate: maybe our own mapping changed, or the partner's; a pong moves the path, see
    /// `on_pong`), or after [`CHECK_TRIES`] the path is lost.
    fn on_check(&mut self) {
        let now = self.now;
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        let Phase::Direct(addr) = pair.phase else {
            pair.check = None;
            pair.proof = None;
            return;
        };
        let Some(check) = pair.check.as_mut() else {
            // The check passed without the pong that would have proved the silence: that proof is gone.
            pair.proof = None;
            return;
        };
        if check.tries < CHECK_TRIES {
            check.tries += 1;
            let tries = check.tries;
            let wait = check_wait(pair.path_rtt, tries);
            let own = pair.path_local;
            let others: Vec<SocketAddr> = if tries == 2 {
                pair.candidates
                    .iter()
                    .copied()
                    .filter(|c| *c != addr)
                    .collect()
            } else {
                Vec::new()
            };
            self.ping(own, addr);
            for c in others {
                self.ping(own, c);
            }
            self.timers.set(AgentTimer::Check, after(now, wait));
            return;
        }
        let silence = check.silence;
        pair.check = None;
        pair.lifetime.lost(silence);
        tracing::debug!(
            ?silence,
            interval = ?pair.lifetime.interval(),
            "direct path lost: relay, and ask the server for a round"
        );
        self.path_lost();
    }

    /// A check passed: the leader's next keepalive is an interval (perhaps a longer one now) after the ping
    /// that passed it.
    fn on_check_passed(&mut self, check: Check) {
        let Some(pair) = self.pair.as_ref() else {
            return;
        };
        if pair.proof.is_none() {
            // Otherwise the timer still runs: its pong may come yet (see `on_check`).
            self.timers.stop(AgentTimer::Check);
        }
        let at = if pair.follower() {
            pair.path_rx + pair.patience()
        } else {
            check.since + pair.lifetime.interval()
        };
        self.timers.set(AgentTimer::Keepalive, at.max(self.now));
    }

    /// The direct path is dead: relay at once (the chat resends what was in flight), and ask the server for a
    /// new round, which starts on both sides at once (the partner may not have noticed yet; a round of our
    /// own would ping its NAT before its opener left). The request is a Register: the server also sees our
    /// public address, and follows it if it moved. Asked again after [`LOST_RETRY_AFTER`] if no round came
    /// (the server ignores requests within 3 s of the last round).
    fn path_lost(&mut self) {
        self.leave_direct();
        self.events.push_back(AgentEvent::RequestRetry);
        self.timers
            .set(AgentTimer::Retry, after(self.now, LOST_RETRY_AFTER));
    }

    /// The direct path ends: the relay carries the chat from now, and the path's check and keepalive stop.
    fn leave_direct(&mut self) {
        let relay_rtt = self.relay_rtt();
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        pair.phase = Phase::Relay;
        pair.check = None;
        pair.proof = None;
        self.timers.stop(AgentTimer::Check);
        self.timers.stop(AgentTimer::Keepalive);
        self.events.push_back(AgentEvent::Path {
            path: Path::Relay,
            rtt: relay_rtt,
        });
    }

    /// While on the relay: ask the server for a new punch round for both sides.
    fn on_retry(&mut self) {
        // (A round that runs re-arms this timer when it ends without a path.)
        let on_relay = self.pair.as_ref().is_some_and(|p| p.phase == Phase::Relay);
        if !on_relay {
            return;
        }
        self.events.push_back(AgentEvent::RequestRetry);
        self.timers.set(
            AgentTimer::Retry,
            after(self.now, self.config.retry_interval),
        );
    }
}

/// How long the `tries`-th ping of a liveness check waits: twice the path's round trip (or the fallback
/// hold RTT), 100 ms to 1 s, doubled for each earlier try.
fn check_wait(path_rtt: Option<Duration>, tries: u8) -> Duration {
    let base = (path_rtt.unwrap_or(HOLD_FALLBACK_RTT) * 2).clamp(CHECK_WAIT_MIN, CHECK_WAIT_MAX);
    base * (1 << (tries.saturating_sub(1)).min(4))
}

/// How long a held first ping (or the easy side's first birthday probe) waits: half the server RTT, 30 to
/// 250 ms (see `start_round`).
fn hold_time(server_rtt: Duration) -> Duration {
    (server_rtt / 2).clamp(Duration::from_millis(30), Duration::from_millis(250))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::Code;

    const V4: &str = "203.0.113.20:50000";
    const V6: &str = "[2001:db8:b::2]:50000";
    /// Our main socket.
    const MAIN: &str = "[::]:5000";

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// An agent paired with a partner at V4 (public) and V6 (local), punching at `t0` (no opener).
    fn paired() -> (PathAgent, Instant) {
        let t0 = crate::test_epoch();
        let code = Code::parse("7-guitar-revenge").unwrap();
        let mut config = PeerConfig::new(a("192.0.2.1:3478"), code);
        config.opener_ttl = None;
        let mut rng = PeerRng::seed_from_u64(7);
        let mut agent = PathAgent::new(config, &mut rng, t0);
        agent.pair(
            t0,
            NewPair {
                id: [1; 8],
                public: a(V4),
                locals: vec![a(V6)],
                strategy: Strategy::Punch,
                nat: NatBehaviour::UNKNOWN,
                own_nat: NatBehaviour::UNKNOWN,
                hold: false,
                own_public: None,
                server_rtt: Some(Duration::from_millis(40)),
            },
        );
        (agent, t0)
    }

    /// The pings sent since the last call, by destination.
    fn pings(agent: &mut PathAgent) -> BTreeMap<SocketAddr, Tid> {
        let mut out = BTreeMap::new();
        while let Some(t) = agent.poll_transmit() {
            if let Some(Inner::Ping { tid }) = Inner::decode(&t.payload) {
                out.insert(t.destination, tid);
            }
        }
        out
    }

    /// The last path the agent reported since the last call.
    fn last_path(agent: &mut PathAgent) -> Option<Path> {
        let mut last = None;
        while let Some(e) = agent.poll_event() {
            if let AgentEvent::Path { path, .. } = e {
                last = Some(path);
            }
        }
        last
    }

    fn pong(agent: &mut PathAgent, at: Instant, from: &str, tid: Tid) {
        let mapped = a("198.51.100.1:1");
        agent.handle_inner(at, a(MAIN), a(from), Inner::Pong { tid, mapped });
    }

    #[test]
    fn a_proven_candidate_with_a_clearly_shorter_round_trip_takes_over_the_direct_path() {
        let ms = Duration::from_millis;
        let (mut agent, t0) = paired();
        let round = pings(&mut agent);
        assert!(
            round.contains_key(&a(V4)) && round.contains_key(&a(V6)),
            "{round:?}"
        );
        // IPv4 answers first and becomes the path; IPv6's pong a moment later proves it, no switch.
        pong(&mut agent, t0 + ms(30), V4, round[&a(V4)]);
        assert_eq!(last_path(&mut agent), Some(Path::Direct(a(V4))));
        pong(&mut agent, t0 + ms(31), V6, round[&a(V6)]);
        assert_eq!(last_path(&mut agent), None);
        // The path is alive; the next keepalive pings it and the proven IPv6 candidate.
        agent.note_direct_rx(t0 + ms(2000), a(MAIN), a(V4));
        let keepalive = t0 + ms(30) + agent.config.path_keepalive;
        agent.handle_timeout(keepalive);
        let probes = pings(&mut agent);
        assert!(
            probes.contains_key(&a(V4)) && probes.contains_key(&a(V6)),
            "{probes:?}"
        );
        // Similar round trips: the path stays (no flapping on jitter).
        pong(&mut agent, keepalive + ms(30), V4, probes[&a(V4)]);
        pong(&mut agent, keepalive + ms(28), V6, probes[&a(V6)]);
        assert_eq!(last_path(&mut agent), None);
        // Next keepalive: IPv6 answers in 10 ms, IPv4 in 30: IPv6 takes over.
        agent.note_direct_rx(keepalive + ms(2000), a(MAIN), a(V4));
        let next = keepalive + agent.config.path_keepalive;
        agent.handle_timeout(next);
        let probes = pings(&mut agent);
        pong(&mut agent, next + ms(10), V6, probes[&a(V6)]);
        assert_eq!(last_path(&mut agent), Some(Path::Direct(a(V6))));
        pong(&mut agent, next + ms(30), V4, probes[&a(V4)]);
        assert_eq!(last_path(&mut agent), None);
    }

    /// The agent of `paired`, direct to V4 after a 30 ms pong; returns the time of the pong.
    fn direct() -> (PathAgent, Instant) {
        let (mut agent, t0) = paired();
        let round = pings(&mut agent);
        let at = t0 + Duration::from_millis(30);
        pong(&mut agent, at, V4, round[&a(V4)]);
        assert_eq!(last_path(&mut agent), Some(Path::Direct(a(V4))));
        (agent, at)
    }

    #[test]
    fn a_dead_direct_path_is_left_after_three_unanswered_pings_within_a_few_round_trips() {
        let ms = Duration::from_millis;
        let (mut agent, t) = direct();
        // The keepalive pings the path and starts a check: 2 x RTT (30 ms), at least 100 ms, doubling.
        let keepalive = t + agent.config.path_keepalive;
        agent.handle_timeout(keepalive);
        assert!(pings(&mut agent).contains_key(&a(V4)));
        agent.handle_timeout(keepalive + ms(100));
        let second = pings(&mut agent);
        assert!(
            second.contains_key(&a(V4)) && second.contains_key(&a(V6)),
            "the second try asks every candidate: {second:?}"
        );
        agent.handle_timeout(keepalive + ms(300));
        assert!(pings(&mut agent).contains_key(&a(V4)));
        assert_eq!(last_path(&mut agent), None, "still direct");
        agent.handle_timeout(keepalive + ms(700));
        let mut events = Vec::new();
        while let Some(e) = agent.poll_event() {
            events.push(e);
        }
        assert!(
            events.contains(&AgentEvent::RequestRetry),
            "a round through the server: {events:?}"
        );
        assert!(
            events.iter().any(|e| matches!(
                e,
                AgentEvent::Path {
                    path: Path::Relay,
                    ..
                }
            )),
            "on the relay 700 ms after the first unanswered ping: {events:?}"
        );
        assert!(!agent.is_punching(), "no round of its own");
        // The server's round starts it (on both sides at once).
        agent.new_round(keepalive + ms(750), a(V4), false);
        assert!(agent.is_punching(), "punching again");
    }

    #[test]
    fn a_round_from_the_server_while_the_path_is_quiet_leaves_it_and_punches() {
        let ms = Duration::from_millis;
        let (mut agent, t) = direct();
        // Heard within the last second: someone moved; the path stays.
        agent.new_round(t + ms(500), a(V4), false);
        assert_eq!(last_path(&mut agent), None);
        assert!(!agent.is_punching());
        // Quiet for 2 s: the partner lost the path and asked for this round.
        agent.new_round(t + ms(2500), a(V4), false);
        assert_eq!(last_path(&mut agent), Some(Path::Relay));
        assert!(agent.is_punching());
    }

    #[test]
    fn a_suspect_path_is_checked_at_once_and_an_answer_keeps_it() {
        let ms = Duration::from_millis;
        let (mut agent, t) = direct();
        agent.suspect(t + ms(500));
        let check = pings(&mut agent);
        assert_eq!(check.keys().copied().collect::<Vec<_>>(), [a(V4)]);
        pong(&mut agent, t + ms(530), V4, check[&a(V4)]);
        agent.handle_timeout(t + ms(2000));
        assert!(pings(&mut agent).is_empty(), "no more check pings");
        assert_eq!(last_path(&mut agent), None, "still direct");
    }

    #[test]
    fn the_keepalive_interval_grows_while_the_idle_path_survives() {
        let (mut agent, t) = direct();
        let mut at = t;
        let mut gaps = Vec::new();
        for _ in 0..5 {
            let next = agent.poll_deadline().expect("the keepalive").at;
            gaps.push(next.saturating_duration_since(at));
            agent.handle_timeout(next);
            let ping = pings(&mut agent);
            at = next + Duration::from_millis(30);
            pong(&mut agent, at, V4, ping[&a(V4)]);
        }
        let secs: Vec<f64> = gaps
            .iter()
            .map(|g| (g.as_secs_f64() * 10.0).round() / 10.0)
            .collect();
        assert_eq!(secs, [5.0, 7.5, 11.2, 16.7, 25.1], "{gaps:?}");
    }

    #[test]
    fn better_rtt_needs_a_clear_margin() {
        let ms = Duration::from_millis;
        assert!(better_rtt(ms(10), ms(30)));
        assert!(!better_rtt(ms(25), ms(30)));
        assert!(!better_rtt(ms(1), ms(1)));
        assert!(!better_rtt(
            Duration::from_micros(100),
            Duration::from_micros(500)
        ));
    }
}
