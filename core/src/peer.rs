//! The peer: one socket for everything — Binding (or full NAT detection), registration, punching, relay and
//! chat.
//!
//! Phases:
//! 1. **Probe**: a Binding request to the server measures the round trip and the public address (or, with
//!    [`PeerConfig::detect_nat`], the [`NatDetector`] runs its behaviour tests on this same socket).
//! 2. **Register** with the pool, the NAT behaviour, the local addresses and the measured RTT. Both requests
//!    are retransmitted RFC 5389-style (RTO 250 ms doubling, capped at 2 s) for at most
//!    [`PeerConfig::server_timeout`] (default 9.5 s), then [`PeerError::ServerUnreachable`].
//!    While waiting for a partner the Register is refreshed every 10 s.
//! 3. **Punch**: on PeerInfo both sides ping (STUN request, pair id) the partner's public and local addresses
//!    every half server RTT (10..100 ms) for the first 500 ms, then every 100 ms. A ping from an address not yet known (a peer-reflexive address, e.g. a symmetric NAT's new
//!    port) is answered and pinged back at once. The first pong proves a direct path.
//! 4. **Path**: chat rides the server's relay from the moment of pairing, and moves to the direct path as soon
//!    as a pong proves it. Punching stops after [`PeerConfig::punch_timeout`] (default 3 s); it is not tried
//!    at all when the decision table says direct is impossible, or with [`PeerConfig::relay_only`] (a relay-only peer also ignores the partner's pings). While on relay,
//!    the peer asks the server every 35 s for a new punch round (after the 30 s Linux conntrack timeout has
//!    freed any tuple a stray packet reserved); the server starts it for both sides at the same instant.
//! 6. **Address change**: a keepalive answer showing a new public address (the NAT mapping expired or
//!    changed) makes the peer register again with its CLIENT-ID; the server moves it and both sides punch anew.
//! 5. **Keepalive**: a ping every 5 s on the direct path (the path is declared lost after 12 s of silence:
//!    back to relay and punch again), a Binding to the server every 15 s.
//!
//! Chat data rides on whichever path is current, in a [`ChatSession`].
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use stun_codec::rfc5389::attributes::{ErrorCode, XorMappedAddress};
use stun_codec::{MessageClass, TransactionId};

use crate::chat::{ChatEvent, ChatSession, SendError};
use crate::detect::{DetectEvent, DetectorConfig, NatDetector, NatReport};
use crate::nat::{strategy, NatBehaviour, Strategy};
use crate::timer::{after, Timers};
use crate::wire::{self, methods, PunchAttribute, StunMessage};
use crate::Transmit;

/// Peer settings; [`PeerConfig::new`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub server: SocketAddr,
    pub pool: String,
    pub name: String,
    /// This socket's local addresses, sent to the partner (useful when both are behind the same NAT).
    pub local_addrs: Vec<SocketAddr>,
    /// Never try a direct path.
    pub relay_only: bool,
    /// Run the NAT behaviour tests (needs a server with an alternate address) before registering.
    pub detect_nat: bool,
    /// The behaviour to announce when detection is off.
    pub nat: NatBehaviour,
    pub seed: u64,
    /// How long the server may stay silent before [`PeerError::ServerUnreachable`] (default 9.5 s).
    pub server_timeout: Duration,
    /// How long to punch before falling back to the relay (default 3 s).
    pub punch_timeout: Duration,
    /// Interval between pings while punching (default 100 ms).
    pub ping_interval: Duration,
    /// Keepalive on the direct path (default 5 s).
    pub path_keepalive: Duration,
    /// Silence after which the direct path is lost (default 12 s).
    pub path_timeout: Duration,
    /// Keepalive to the server (default 15 s; the server expires members after 60 s).
    pub server_keepalive: Duration,
    /// Between punch rounds while on relay (default 35 s).
    pub retry_interval: Duration,
    /// After both sides finished and everything is acknowledged, how long to keep answering (so that a
    /// retransmitted FIN still gets its ACK) before [`PeerEvent::ConversationDone`] (default 300 ms).
    pub linger: Duration,
}

impl PeerConfig {
    pub fn new(server: SocketAddr, pool: impl Into<String>) -> Self {
        PeerConfig {
            server,
            pool: pool.into(),
            name: String::new(),
            local_addrs: Vec::new(),
            relay_only: false,
            detect_nat: false,
            nat: NatBehaviour::UNKNOWN,
            seed: 0,
            server_timeout: Duration::from_millis(9_500),
            punch_timeout: Duration::from_secs(3),
            ping_interval: Duration::from_millis(100),
            path_keepalive: Duration::from_secs(5),
            path_timeout: Duration::from_secs(12),
            server_keepalive: Duration::from_secs(15),
            retry_interval: Duration::from_secs(35),
            linger: Duration::from_millis(300),
        }
    }
}

/// Which way chat data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Path {
    /// Straight to the partner at this address.
    Direct(SocketAddr),
    /// Through the server.
    Relay,
}

/// Errors the application can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    /// No answer from the server within [`PeerConfig::server_timeout`].
    ServerUnreachable,
    /// Two peers are already paired in this pool.
    PoolFull,
    /// The server refused the registration.
    Rejected { code: u16, reason: String },
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::ServerUnreachable => write!(f, "server unreachable: no answer"),
            PeerError::PoolFull => write!(f, "pool full: two peers are already chatting in it"),
            PeerError::Rejected { code, reason } => {
                write!(f, "server refused registration: {code} {reason}")
            }
        }
    }
}

/// What the peer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// NAT detection finished (only with [`PeerConfig::detect_nat`]).
    NatDetected(NatReport),
    /// The server accepted the registration; `public_addr` is how it sees this socket.
    Registered {
        public_addr: SocketAddr,
        server_rtt: Duration,
    },
    /// The server paired us with a partner.
    Paired {
        name: String,
        public_addr: SocketAddr,
        local_addrs: Vec<SocketAddr>,
        nat: NatBehaviour,
        strategy: Strategy,
    },
    /// The path was chosen or changed.
    Path {
        path: Path,
        rtt: Duration,
    },
    /// A chat message from the partner (once, in order).
    Message {
        seq: u64,
        text: String,
    },
    /// The partner acknowledged our message.
    Acked {
        seq: u64,
    },
    /// The partner has finished sending (see [`Peer::finish`]); all its messages were delivered before this.
    PeerFinished,
    /// The conversation is over: this side called [`Peer::finish`], every message and the FIN were
    /// acknowledged, the partner's FIN arrived, and [`PeerConfig::linger`] has passed. The application can
    /// [`Peer::close`] now without losing anything in either direction.
    ConversationDone,
    Error(PeerError),
    /// The partner left or the server expired it.
    Disconnected {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Detecting,
    Probing,
    Registering,
    Waiting,
    Paired,
    Failed,
    Closed,
}

/// A request to the server, retransmitted until answered or the deadline.
#[derive(Debug)]
struct ServerTxn {
    tid: TransactionId,
    payload: Vec<u8>,
    first_sent: Instant,
    last_sent: Instant,
    rto: Duration,
    attempts: u32,
    deadline: Instant,
}

#[derive(Debug)]
struct Pair {
    id: [u8; 8],
    name: String,
    /// The partner's public address as the server last told it.
    public: SocketAddr,
    strategy: Strategy,
    /// Addresses to ping: the partner's public and local addresses, plus peer-reflexive ones.
    candidates: BTreeMap<SocketAddr, Candidate>,
    path: Option<Path>,
    last_direct_rx: Instant,
    punching: bool,
    /// When the current punch round started.
    round_start: Instant,
    /// The server says the partner pings first this round: our first ping waits (see `start_punch_round`).
    hold_first_ping: bool,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    proven: bool,
}

crate::timer::timers! {
    enum PeerTimer {
        ServerTxn => "server request retransmit",
        Ping => "punch ping",
        PunchDeadline => "punch round ends",
        PathKeepalive => "direct path keepalive",
        ServerKeepalive => "server keepalive",
        Reregister => "refresh registration",
        Retry => "ask for a new punch round",
        Linger => "linger before the conversation is done",
    }
}

const MAX_CANDIDATES: usize = 16;
/// How long a punch round pings at the fast rate.
const FAST_PHASE: Duration = Duration::from_millis(500);
const MAX_PINGS: usize = 256;

/// The peer state machine. See the module and crate docs.
#[derive(Debug)]
pub struct Peer {
    config: PeerConfig,
    phase: Phase,
    rng: SmallRng,
    now: Instant,
    timers: Timers<PeerTimer>,
    txn: Option<ServerTxn>,
    detector: Option<NatDetector>,
    nat: NatBehaviour,
    server_rtt: Option<Duration>,
    public_addr: Option<SocketAddr>,
    /// Names this peer instance to the server across address changes.
    token: [u8; 8],
    /// The public address changed and the server has not confirmed the new one yet.
    rebinding: bool,
    pair: Option<Pair>,
    /// Outstanding pings: transaction id -> (sent at, destination).
    pings: BTreeMap<[u8; 12], (Instant, SocketAddr)>,
    chat: ChatSession,
    /// The partner's FIN arrived.
    peer_finished: bool,
    conversation_done: bool,
    out: VecDeque<Transmit>,
    events: VecDeque<PeerEvent>,
}

crate::impl_machine!(Peer, PeerEvent);

impl Peer {
    pub fn new(config: PeerConfig, now: Instant) -> Self {
        let mut peer = Peer {
            rng: SmallRng::seed_from_u64(config.seed),
            nat: config.nat,
            phase: Phase::Probing,
            now,
            timers: Timers::default(),
            txn: None,
            detector: None,
            server_rtt: None,
            public_addr: None,
            token: [0; 8],
            rebinding: false,
            pair: None,
            pings: BTreeMap::new(),
            chat: ChatSession::new(),
            peer_finished: false,
            conversation_done: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
            config,
        };
        peer.token = peer.rng.gen();
        if peer.config.detect_nat {
            peer.phase = Phase::Detecting;
            let mut dc = DetectorConfig::new(peer.config.server);
            dc.local_addrs = peer.config.local_addrs.clone();
            dc.seed = peer.rng.gen();
            peer.detector = Some(NatDetector::new(dc, now));
            peer.pump_detector();
        } else {
            let m = wire::message(MessageClass::Request, methods::binding(), peer.new_tid());
            peer.start_txn(m);
        }
        peer
    }

    /// Queues a chat message; it is sent once a path exists and retransmitted until acknowledged.
    pub fn send_message(&mut self, now: Instant, text: &str) -> Result<u64, SendError> {
        self.advance(now);
        let r = self.chat.send(self.now, text);
        self.pump_chat();
        r
    }

    /// Says "I have finished sending": a FIN follows the queued messages, reliably and in order, and the
    /// partner gets [`PeerEvent::PeerFinished`] after all of them. Returns the FIN's sequence number (it is
    /// acknowledged like a message). An application can leave once its own FIN is acknowledged and the
    /// partner's has arrived: then nothing is lost in either direction.
    pub fn finish(&mut self, now: Instant) -> u64 {
        self.advance(now);
        let seq = self.chat.finish(self.now);
        self.pump_chat();
        seq
    }

    /// Leaves the pool (tells the server) and stops.
    pub fn close(&mut self, now: Instant) {
        self.advance(now);
        if matches!(
            self.phase,
            Phase::Waiting | Phase::Paired | Phase::Registering
        ) {
            let mut m = wire::message(
                MessageClass::Indication,
                methods::register(),
                self.new_tid(),
            );
            m.add_attribute(wire::Pool(self.config.pool.as_bytes().to_vec()));
            self.send_to(self.config.server, wire::encode(m));
        }
        self.phase = Phase::Closed;
        self.timers.clear();
        self.txn = None;
    }

    /// The conversation is over (see [`PeerEvent::ConversationDone`]).
    pub fn conversation_done(&self) -> bool {
        self.conversation_done
    }

    /// Every message handed to `send_message` was acknowledged.
    pub fn all_acked(&self) -> bool {
        self.chat.all_acked()
    }

    /// Messages not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.chat.unacked()
    }

    /// The current path, if paired.
    pub fn path(&self) -> Option<Path> {
        self.pair.as_ref().and_then(|p| p.path)
    }

    /// A punch round is running (the path may still change to direct).
    pub fn is_punching(&self) -> bool {
        self.pair.as_ref().is_some_and(|p| p.punching)
    }

    /// The NAT behaviour this peer announces.
    pub fn nat(&self) -> NatBehaviour {
        self.nat
    }

    /// The peer gave up (server unreachable, pool full) or was closed.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Failed | Phase::Closed)
    }

    pub fn handle_input(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.advance(now);
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        if let Some(d) = self.detector.as_mut() {
            if d.handle_input(self.now, local, remote, data) {
                self.pump_detector();
                return;
            }
        }
        match wire::kind(data) {
            wire::Kind::Data => self.on_direct_data(remote, data),
            wire::Kind::Stun => {
                if let Some(m) = wire::decode(data) {
                    self.on_stun(remote, m);
                }
            }
            _ => {}
        }
        self.pump_chat();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.now;
        if let Some(d) = self.detector.as_mut() {
            d.handle_timeout(now);
            self.pump_detector();
        }
        let due = self.timers.expire(now);
        for t in due {
            match t {
                PeerTimer::ServerTxn => self.on_txn_timer(),
                PeerTimer::Ping => self.send_pings(),
                PeerTimer::PunchDeadline => self.on_punch_deadline(),
                PeerTimer::PathKeepalive => self.on_path_keepalive(),
                PeerTimer::ServerKeepalive => self.on_server_keepalive(),
                PeerTimer::Reregister if self.phase == Phase::Waiting => {
                    let m = self.register_message();
                    self.send_to(self.config.server, wire::encode(m));
                    self.timers
                        .set(PeerTimer::Reregister, after(now, Duration::from_secs(10)));
                }
                PeerTimer::Retry => self.request_retry(),
                PeerTimer::Linger => {
                    self.conversation_done = true;
                    self.events.push_back(PeerEvent::ConversationDone);
                }
                PeerTimer::Reregister => {}
            }
        }
        self.chat.handle_timeout(now);
        self.pump_chat();
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_deadline(&self) -> Option<crate::Deadline> {
        let d = self.detector.as_ref().and_then(|d| d.poll_deadline());
        let chat = self.chat.poll_timeout().map(|at| crate::Deadline {
            at,
            reason: "chat retransmit",
        });
        crate::Deadline::earliest(crate::Deadline::earliest(self.timers.next(), chat), d)
    }

    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    // ---- internals ----

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    fn new_tid(&mut self) -> TransactionId {
        TransactionId::new(self.rng.gen())
    }

    fn send_to(&mut self, destination: SocketAddr, payload: Vec<u8>) {
        self.out.push_back(Transmit {
            source: None,
            destination,
            payload,
        });
    }

    fn fail(&mut self, e: PeerError) {
        self.events.push_back(PeerEvent::Error(e));
        self.phase = Phase::Failed;
        self.timers.clear();
        self.txn = None;
    }

    fn pump_detector(&mut self) {
        let Some(d) = self.detector.as_mut() else {
            return;
        };
        let mut sends = Vec::new();
        while let Some(t) = d.poll_transmit() {
            sends.push(t);
        }
        let mut report = None;
        while let Some(e) = d.poll_event() {
            if let DetectEvent::Done(r) = e {
                report = Some(r);
            }
        }
        self.out.extend(sends);
        if let Some(r) = report {
            self.detector = None;
            self.events.push_back(PeerEvent::NatDetected(r.clone()));
            if r.server_unreachable {
                return self.fail(PeerError::ServerUnreachable);
            }
            self.nat = r.behaviour;
            self.server_rtt = r.server_rtt;
            self.public_addr = r.public_addr;
            self.phase = Phase::Registering;
            let m = self.register_message();
            self.start_txn(m);
        }
    }

    fn register_message(&mut self) -> StunMessage {
        let mut m = wire::message(MessageClass::Request, methods::register(), self.new_tid());
        m.add_attribute(wire::Pool(self.config.pool.as_bytes().to_vec()));
        m.add_attribute(wire::Name(self.config.name.as_bytes().to_vec()));
        m.add_attribute(wire::Nat(self.nat.encode().to_vec()));
        m.add_attribute(wire::ClientId(self.token.to_vec()));
        for l in self.config.local_addrs.iter().take(8) {
            m.add_attribute(wire::LocalAddr(wire::encode_addr(*l)));
        }
        if let Some(rtt) = self.server_rtt {
            let us = rtt.as_micros().min(u32::MAX as u128) as u32;
            m.add_attribute(wire::Rtt(us.to_be_bytes().to_vec()));
        }
        m
    }

    fn start_txn(&mut self, m: StunMessage) {
        let now = self.now;
        let tid = m.transaction_id();
        let payload = wire::encode(m);
        self.send_to(self.config.server, payload.clone());
        // 250 ms until the server's RTT is known, then twice that (50..=250 ms).
        let rto = self.server_rtt.map_or(Duration::from_millis(250), |r| {
            (r * 2).clamp(Duration::from_millis(50), Duration::from_millis(250))
        });
        self.txn = Some(ServerTxn {
            tid,
            payload,
            first_sent: now,
            last_sent: now,
            rto,
            attempts: 1,
            deadline: after(now, self.config.server_timeout),
        });
        self.timers.set(PeerTimer::ServerTxn, after(now, rto));
    }

    fn on_txn_timer(&mut self) {
        let now = self.now;
        let Some(txn) = self.txn.as_mut() else {
            return;
        };
        if now >= txn.deadline {
            return self.fail(PeerError::ServerUnreachable);
        }
        txn.attempts += 1;
        txn.rto = (txn.rto * 2).min(Duration::from_secs(2));
        let next = after(now, txn.rto).min(txn.deadline);
        txn.last_sent = now;
        let payload = txn.payload.clone();
        self.timers.set(PeerTimer::ServerTxn, next);
        self.send_to(self.config.server, payload);
    }

    /// Takes the answer to the outstanding server transaction, with the measured RTT. After a
    /// retransmission the answer is ambiguous (Karn); the time since the *last* send is then a lower bound that
    /// is right whenever the last copy was the one answered, which is what a lost first copy means.
    fn take_txn(&mut self, m: &StunMessage) -> Option<Option<Duration>> {
        let txn = self.txn.as_ref()?;
        if txn.tid != m.transaction_id() {
            return None;
        }
        let txn = self.txn.take().expect("checked");
        self.timers.stop(PeerTimer::ServerTxn);
        let from = if txn.attempts == 1 {
            txn.first_sent
        } else {
            txn.last_sent
        };
        Some(Some(self.now.saturating_duration_since(from)))
    }

    fn on_stun(&mut self, remote: SocketAddr, m: StunMessage) {
        let method = m.method();
        let class = m.class();
        if remote == self.config.server {
            if method == methods::binding() && class == MessageClass::SuccessResponse {
                return self.on_binding_response(&m);
            }
            if method == methods::register() {
                return self.on_register_response(&m);
            }
            if method == methods::peer_info() && class == MessageClass::Request {
                return self.on_peer_info(&m);
            }
            if method == methods::peer_info() && class == MessageClass::Indication {
                return self.on_peer_left(&m);
            }
            if method == methods::relay() && class == MessageClass::Indication {
                return self.on_relay(&m);
            }
        }
        if method == methods::ping() {
            match class {
                MessageClass::Request => self.on_ping(remote, &m),
                MessageClass::SuccessResponse => self.on_pong(remote, &m),
                _ => {}
            }
        }
    }

    fn on_binding_response(&mut self, m: &StunMessage) {
        if self.phase != Phase::Probing {
            return self.on_keepalive_answer(m);
        }
        let Some(rtt) = self.take_txn(m) else {
            return;
        };
        self.server_rtt = rtt;
        self.public_addr = wire::get::<XorMappedAddress>(m).map(|a| a.address());
        if self.nat.behind_nat.is_none() {
            if let Some(p) = self.public_addr {
                self.nat.behind_nat = Some(!self.config.local_addrs.contains(&p));
            }
        }
        self.phase = Phase::Registering;
        let r = self.register_message();
        self.start_txn(r);
    }

    fn on_register_response(&mut self, m: &StunMessage) {
        if self.phase != Phase::Registering {
            // The answer to a refresh, a retry request or a re-registration from a new address.
            if m.class() == MessageClass::SuccessResponse
                && wire::get::<XorMappedAddress>(m).map(|a| a.address()) == self.public_addr
            {
                self.rebinding = false;
            }
            return;
        }
        let Some(rtt) = self.take_txn(m) else {
            return;
        };
        if self.server_rtt.is_none() {
            self.server_rtt = rtt;
        }
        match m.class() {
            MessageClass::SuccessResponse => {
                self.phase = Phase::Waiting;
                self.registered(m);
                self.timers.set(
                    PeerTimer::Reregister,
                    after(self.now, Duration::from_secs(10)),
                );
            }
            MessageClass::ErrorResponse => {
                let (code, reason) = wire::get::<ErrorCode>(m)
                    .map(|e| (e.code(), e.reason_phrase().to_owned()))
                    .unwrap_or((500, "no reason given".into()));
                if code == 409 {
                    self.fail(PeerError::PoolFull)
                } else {
                    self.fail(PeerError::Rejected { code, reason })
                }
            }
            _ => {}
        }
    }

    /// The server has us: from the Register success, or from a PeerInfo that overtook it (the server sends
    /// both at once when we complete a pair). Either way the server keepalive starts here, or the server
    /// would expire us while we chat on a direct path.
    fn registered(&mut self, m: &StunMessage) {
        let public = wire::get::<XorMappedAddress>(m).map(|a| a.address());
        let public = public.or(self.public_addr).unwrap_or(self.config.server);
        self.public_addr = Some(public);
        let server_rtt = self.server_rtt.unwrap_or(Duration::from_millis(100));
        self.events.push_back(PeerEvent::Registered {
            public_addr: public,
            server_rtt,
        });
        self.timers.set(
            PeerTimer::ServerKeepalive,
            after(self.now, self.config.server_keepalive),
        );
    }

    fn pair_id(m: &StunMessage) -> Option<[u8; 8]> {
        wire::get::<wire::PairId>(m).and_then(|p| <[u8; 8]>::try_from(p.0.as_slice()).ok())
    }

    fn on_peer_info(&mut self, m: &StunMessage) {
        // Always answer, so the server stops retransmitting.
        let ack = wire::message(
            MessageClass::SuccessResponse,
            methods::peer_info(),
            m.transaction_id(),
        );
        self.send_to(self.config.server, wire::encode(ack));
        if !matches!(
            self.phase,
            Phase::Waiting | Phase::Registering | Phase::Paired
        ) {
            return;
        }
        let (Some(id), Some(public)) = (
            Self::pair_id(m),
            wire::get::<wire::PeerPublic>(m).and_then(|a| wire::decode_addr(&a.0)),
        ) else {
            return;
        };
        let hold = wire::get::<wire::Hold>(m).is_some();
        if self.pair.as_ref().is_some_and(|p| p.id == id) {
            return self.on_new_round(public, hold);
        }
        if self.phase == Phase::Registering {
            // The PeerInfo overtook the Register success: it answers the Register too.
            self.txn = None;
            self.timers.stop(PeerTimer::ServerTxn);
            self.registered(m);
        }
        let locals: Vec<SocketAddr> = m
            .attributes()
            .filter_map(|a| match a {
                PunchAttribute::PeerLocal(l) => wire::decode_addr(&l.0),
                _ => None,
            })
            .take(8)
            .collect();
        let nat = wire::get::<wire::PeerNat>(m)
            .and_then(|n| NatBehaviour::decode(&n.0))
            .unwrap_or_default();
        let name = wire::get::<wire::PeerName>(m)
            .and_then(|n| wire::text(&n.0, 64))
            .unwrap_or_default();
        let strategy = if self.config.relay_only {
            Strategy::Relay
        } else {
            strategy(&self.nat, &nat)
        };
        let mut candidates = BTreeMap::new();
        candidates.insert(public, Candidate { proven: false });
        for l in &locals {
            if *l != public && Some(*l) != self.public_addr {
                candidates.insert(*l, Candidate { proven: false });
            }
        }
        self.phase = Phase::Paired;
        self.timers.stop(PeerTimer::Reregister);
        self.pair = Some(Pair {
            id,
            name: name.clone(),
            public,
            strategy,
            candidates,
            path: None,
            last_direct_rx: self.now,
            punching: false,
            round_start: self.now,
            hold_first_ping: hold,
        });
        self.events.push_back(PeerEvent::Paired {
            name,
            public_addr: public,
            local_addrs: locals,
            nat,
            strategy,
        });
        // The relay carries chat from the first moment; a punch round upgrades to direct when a pong proves it.
        let relay_rtt = self.server_rtt.unwrap_or(Duration::from_millis(100)) * 2;
        self.choose_path(Path::Relay, relay_rtt);
        if strategy == Strategy::Punch {
            self.start_punch_round();
        }
    }

    fn on_peer_left(&mut self, m: &StunMessage) {
        let Some(pair) = self.pair.as_ref() else {
            return;
        };
        if Self::pair_id(m) != Some(pair.id) {
            return;
        }
        let name = pair.name.clone();
        self.pair = None;
        self.phase = Phase::Closed;
        self.timers.clear();
        self.chat
            .set_active(self.now, false, Duration::from_millis(100));
        self.events.push_back(PeerEvent::Disconnected {
            reason: format!("peer {name:?} left or timed out"),
        });
    }

    fn start_punch_round(&mut self) {
        let now = self.now;
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        if pair.strategy == Strategy::Relay || matches!(pair.path, Some(Path::Direct(_))) {
            return;
        }
        pair.punching = true;
        pair.round_start = now;
        let hold = std::mem::take(&mut pair.hold_first_ping);
        tracing::debug!(
            candidates = pair.candidates.len(),
            hold,
            "punch round starts"
        );
        if hold {
            // The server chose the partner to ping first this round (rounds alternate the order, see
            // `server::round_holder`): its ping must leave its NAT before ours arrives there, or a Linux NAT
            // without a WAN firewall reserves the tuple. A partner's ping that reaches us meanwhile is answered
            // at once (`on_ping`). The hold covers the start skew on fast paths (a LAN-fast lab: skew of a few
            // ms, one-way delay of microseconds) and stays under the one-way delay on slow ones (a quarter of
            // the server RTT), where both first pings still cross between the NATs as in a "together" round.
            let hold = (self.server_rtt.unwrap_or(Duration::from_millis(40)) / 4)
                .clamp(Duration::from_millis(10), Duration::from_millis(250));
            pair.round_start = after(now, hold);
            self.timers.set(PeerTimer::Ping, after(now, hold));
            self.timers.set(
                PeerTimer::PunchDeadline,
                after(now, hold + self.config.punch_timeout),
            );
            return;
        }
        self.timers.set(
            PeerTimer::PunchDeadline,
            after(now, self.config.punch_timeout),
        );
        self.send_pings();
    }

    /// One ping to every candidate while punching; re-armed every `ping_interval`.
    fn send_pings(&mut self) {
        let Some(pair) = self.pair.as_ref() else {
            return;
        };
        if !pair.punching {
            return;
        }
        let targets: Vec<SocketAddr> = pair.candidates.keys().copied().collect();
        // Fast at first (half the server RTT, 10..=ping_interval), so that a lost ping or pong costs half a
        // round trip, not a whole ping interval; after FAST_PHASE, the configured interval.
        let fast = self.now.saturating_duration_since(pair.round_start) < FAST_PHASE;
        let interval = match self.server_rtt {
            Some(rtt) if fast => {
                (rtt / 2).clamp(Duration::from_millis(10), self.config.ping_interval)
            }
            _ => self.config.ping_interval,
        };
        for t in targets {
            self.ping(t);
        }
        self.timers.set(PeerTimer::Ping, after(self.now, interval));
    }

    fn ping(&mut self, to: SocketAddr) {
        let Some(pair) = self.pair.as_ref() else {
            return;
        };
        let id = pair.id;
        let tid = self.new_tid();
        let mut m = wire::message(MessageClass::Request, methods::ping(), tid);
        m.add_attribute(wire::PairId(id.to_vec()));
        if self.pings.len() >= MAX_PINGS {
            self.pings.pop_first();
        }
        self.pings.insert(*tid.as_bytes(), (self.now, to));
        tracing::trace!(%to, "ping");
        self.send_to(to, wire::encode(m));
    }

    fn on_ping(&mut self, remote: SocketAddr, m: &StunMessage) {
        if self.config.relay_only {
            return; // never let a direct path form
        }
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        if Self::pair_id(m) != Some(pair.id) {
            return;
        }
        let id = pair.id;
        pair.last_direct_rx = self.now;
        let new = !pair.candidates.contains_key(&remote);
        if new && pair.candidates.len() < MAX_CANDIDATES {
            pair.candidates.insert(remote, Candidate { proven: false });
        }
        let mut pong = wire::message(
            MessageClass::SuccessResponse,
            methods::ping(),
            m.transaction_id(),
        );
        pong.add_attribute(wire::PairId(id.to_vec()));
        pong.add_attribute(XorMappedAddress::new(remote));
        self.send_to(remote, wire::encode(pong));
        // A triggered check: ping back at once, so the path is proven in both directions (also when our own
        // punch round already ended and we are on the relay: the partner's round may have started later).
        if new || self.path().is_none_or(|p| p == Path::Relay) {
            self.ping(remote);
        }
    }

    fn on_pong(&mut self, remote: SocketAddr, m: &StunMessage) {
        if self.config.relay_only {
            return;
        }
        let Some((sent, to)) = self.pings.remove(m.transaction_id().as_bytes()) else {
            return;
        };
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        if Self::pair_id(m) != Some(pair.id) || to != remote {
            return;
        }
        let rtt = self.now.saturating_duration_since(sent);
        pair.last_direct_rx = self.now;
        pair.candidates.insert(remote, Candidate { proven: true });
        match pair.path {
            Some(Path::Direct(a)) if a == remote => {}
            Some(Path::Direct(_)) => {} // keep the first proven path
            _ => {
                pair.punching = false;
                self.timers.stop(PeerTimer::Ping);
                self.timers.stop(PeerTimer::PunchDeadline);
                self.timers.stop(PeerTimer::Retry);
                self.choose_path(Path::Direct(remote), rtt);
                self.timers.set(
                    PeerTimer::PathKeepalive,
                    after(self.now, self.config.path_keepalive),
                );
            }
        }
    }

    fn choose_path(&mut self, path: Path, rtt: Duration) {
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        let old = pair.path.replace(path);
        if matches!(old, Some(Path::Direct(_))) {
            // The old path was lost: what was in flight on it goes again on the new one, at once.
            self.chat.set_active(self.now, false, rtt);
        }
        // An upgrade (relay -> direct) keeps in-flight frames: their relayed copies are still arriving.
        self.chat.set_active(self.now, true, rtt);
        self.events.push_back(PeerEvent::Path { path, rtt });
    }

    fn on_punch_deadline(&mut self) {
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        pair.punching = false;
        self.timers.stop(PeerTimer::Ping);
        if pair.path != Some(Path::Relay) {
            let rtt = self.server_rtt.unwrap_or(Duration::from_millis(100)) * 2;
            self.choose_path(Path::Relay, rtt);
        }
        self.timers.set(
            PeerTimer::Retry,
            after(self.now, self.config.retry_interval),
        );
    }

    fn on_path_keepalive(&mut self) {
        let now = self.now;
        let timeout = self.config.path_timeout;
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        let Some(Path::Direct(addr)) = pair.path else {
            return;
        };
        if now.saturating_duration_since(pair.last_direct_rx) >= timeout {
            // The direct path went silent (e.g. a NAT mapping expired): relay, and punch again; ask the server
            // at once whether our public address changed.
            pair.candidates.values_mut().for_each(|c| c.proven = false);
            self.on_server_keepalive();
            let rtt = self.server_rtt.unwrap_or(Duration::from_millis(100)) * 2;
            self.choose_path(Path::Relay, rtt);
            self.start_punch_round();
            return;
        }
        self.ping(addr);
        self.timers.set(
            PeerTimer::PathKeepalive,
            after(now, self.config.path_keepalive),
        );
    }

    fn on_server_keepalive(&mut self) {
        if matches!(self.phase, Phase::Waiting | Phase::Paired) {
            let m = wire::message(MessageClass::Request, methods::binding(), self.new_tid());
            self.send_to(self.config.server, wire::encode(m));
            if self.rebinding {
                // Until the server confirms our new address, re-register with every (fast) keepalive.
                let r = self.register_message();
                self.send_to(self.config.server, wire::encode(r));
            }
            let every = if self.rebinding {
                Duration::from_secs(1)
            } else {
                self.config.server_keepalive
            };
            self.timers
                .set(PeerTimer::ServerKeepalive, after(self.now, every));
        }
    }

    /// A keepalive Binding answer: if the server now sees another public address, our NAT mapping changed
    /// (it expired, or the NAT restarted): register again so that the server follows us.
    fn on_keepalive_answer(&mut self, m: &StunMessage) {
        let Some(mapped) = wire::get::<XorMappedAddress>(m).map(|a| a.address()) else {
            return;
        };
        if !matches!(self.phase, Phase::Waiting | Phase::Paired) || Some(mapped) == self.public_addr
        {
            return;
        }
        self.public_addr = Some(mapped);
        self.rebinding = true;
        let r = self.register_message();
        self.send_to(self.config.server, wire::encode(r));
        self.timers.set(
            PeerTimer::ServerKeepalive,
            after(self.now, Duration::from_secs(1)),
        );
    }

    /// While on the relay: ask the server for a new punch round for both sides.
    fn request_retry(&mut self) {
        if self.phase != Phase::Paired || matches!(self.path(), Some(Path::Direct(_))) {
            return;
        }
        let mut r = self.register_message();
        r.add_attribute(wire::Retry(Vec::new()));
        self.send_to(self.config.server, wire::encode(r));
        self.timers.set(
            PeerTimer::Retry,
            after(self.now, self.config.retry_interval),
        );
    }

    /// A fresh PeerInfo for the current pair: a new round (retry) or the partner moved.
    fn on_new_round(&mut self, public: SocketAddr, hold: bool) {
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        if pair.public != public {
            let old = pair.public;
            pair.candidates.remove(&old);
            pair.candidates.insert(public, Candidate { proven: false });
            pair.public = public;
            if pair.path == Some(Path::Direct(old)) {
                let rtt = self.server_rtt.unwrap_or(Duration::from_millis(100)) * 2;
                self.choose_path(Path::Relay, rtt);
            }
        }
        let Some(pair) = self.pair.as_ref() else {
            return;
        };
        if !pair.punching && !matches!(pair.path, Some(Path::Direct(_))) {
            if let Some(p) = self.pair.as_mut() {
                p.hold_first_ping = hold;
            }
            self.start_punch_round();
        }
    }

    fn on_relay(&mut self, m: &StunMessage) {
        let Some(pair) = self.pair.as_ref() else {
            return;
        };
        if Self::pair_id(m) != Some(pair.id) {
            return;
        }
        if let Some(d) = wire::get::<wire::Data>(m) {
            let frame = d.0.clone();
            self.chat.handle_input(self.now, &frame);
        }
    }

    fn on_direct_data(&mut self, _remote: SocketAddr, data: &[u8]) {
        let Some(pair) = self.pair.as_mut() else {
            return;
        };
        if data.len() < 9 || data[1..9] != pair.id {
            return;
        }
        pair.last_direct_rx = self.now;
        self.chat.handle_input(self.now, &data[9..]);
    }

    /// Moves chat frames onto the current path and chat events into peer events.
    fn pump_chat(&mut self) {
        while let Some(e) = self.chat.poll_event() {
            self.events.push_back(match e {
                ChatEvent::Message { seq, text } => PeerEvent::Message { seq, text },
                ChatEvent::Acked { seq } => PeerEvent::Acked { seq },
                ChatEvent::Finished => {
                    self.peer_finished = true;
                    PeerEvent::PeerFinished
                }
            });
        }
        if self.peer_finished
            && self.chat.is_finished()
            && self.chat.all_acked()
            && !self.conversation_done
            && !self.timers.is_armed(PeerTimer::Linger)
        {
            self.timers
                .set(PeerTimer::Linger, after(self.now, self.config.linger));
        }
        let Some(pair) = self.pair.as_ref() else {
            return;
        };
        let (id, path) = (pair.id, pair.path);
        while let Some(frame) = self.chat.poll_transmit() {
            match path {
                Some(Path::Direct(addr)) => {
                    let mut d = Vec::with_capacity(frame.len() + 9);
                    d.push(wire::DATA_TAG);
                    d.extend(id);
                    d.extend(frame);
                    self.send_to(addr, d);
                }
                Some(Path::Relay) => {
                    let mut m =
                        wire::message(MessageClass::Indication, methods::relay(), self.new_tid());
                    m.add_attribute(wire::PairId(id.to_vec()));
                    m.add_attribute(wire::Data(frame));
                    self.send_to(self.config.server, wire::encode(m));
                }
                None => {}
            }
        }
    }
}
