//! The peer: one socket for everything — NAT detection or a Binding probe, registration, punching, relay and
//! chat — as a thin composer of three smaller machines, each in its own file with its state as an enum:
//!
//! * [`link`](self) — the server link: detect/probe → register → keepalive/refresh → rebind → leave;
//! * [`agent`](self) — the path agent: candidates, punch rounds, direct/relay choice, liveness;
//! * [`ChatSession`] — reliable, ordered messages on whichever path is current.
//!
//! The peer routes each datagram to the machine it belongs to (server messages to the link, pings and pongs
//! and direct data to the agent, chat frames to the chat session), then drains the children: their events
//! become calls on the other children and [`PeerEvent`]s, their transmits are sent in the order link, agent,
//! chat. Chat frames go to the path's next hop: straight to the partner (`[DATA_TAG][pair id][frame]`) or to the
//! server in a Relay message. See `docs/ARCHITECTURE.md`.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::chat::{ChatEvent, ChatSession, SendError};
use crate::detect::NatReport;
use crate::nat::{strategy, NatBehaviour, Strategy};
use crate::secure::{Code, Pake};
use crate::timer::{after, timers, Timers};
use crate::wire::{self, Inner, Msg};
use crate::Machine;
use crate::{Deadline, Transmit};

mod agent;
mod lifetime;
mod link;
mod secure;

use secure::Secure;

pub use agent::PunchCost;
use agent::{AgentEvent, NewPair, PathAgent};
use link::{LinkEvent, ServerLink};

/// The peer's random number generator: ChaCha20, seeded from [`PeerConfig::seed`] (32 bytes the application
/// draws from the OS), so that the PAKE's secrets and every id are cryptographically random.
type PeerRng = ChaCha20Rng;

/// The server RTT assumed where none was measured (the relay's RTT is then twice this).
const FALLBACK_SERVER_RTT: Duration = Duration::from_millis(100);
/// The chat session's RTT while it has no path.
const NO_PATH_RTT: Duration = Duration::from_millis(100);

/// Peer settings; [`PeerConfig::new`] gives the documented defaults.
///
/// ```
/// use punch_core::{secure::Code, PeerConfig};
///
/// let server = "192.0.2.1:3478".parse().unwrap();
/// // Joining with the code the partner shared:
/// let mut config = PeerConfig::new(server, Code::parse("7-guitar-revenge").unwrap());
/// config.name = "alice".into();
/// config.seed = [7; 32]; // in production: 32 bytes from the OS RNG, every secret derives from them
/// assert_eq!(config.pool, "7"); // the server sees the nameplate, never the words
/// // Or asking the server for a nameplate: the peer reports the code in `PeerEvent::CodeAllocated`.
/// let config = PeerConfig::allocating(server);
/// assert!(config.code.is_none());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerConfig {
    /// The rendezvous server.
    pub server: SocketAddr,
    /// The same server's address in the other IP family (its other A or AAAA record), where this host can
    /// reach both: before registering, one Binding request there tells our public address in that family,
    /// which is announced with the local addresses, so a partner that has only that family can ping it
    /// (`None`, the default: one family).
    pub server_other_family: Option<SocketAddr>,
    /// The join code: its nameplate is what the server sees (the pool), its words never leave the peer (they
    /// key the SPAKE2 exchange). `None` ([`PeerConfig::allocating`]): the server picks a free nameplate and the
    /// peer makes the words ([`PeerEvent::CodeAllocated`]).
    pub code: Option<Code>,
    /// The pool the server pairs in: the code's nameplate (empty while the server allocates one).
    pub pool: String,
    /// Display name sent to the partner (at most [`wire::MAX_NAME_BYTES`]).
    pub name: String,
    /// This socket's local addresses, sent to the partner (useful when both are behind the same NAT; at most
    /// [`wire::MAX_LOCAL_ADDRS`] are sent).
    pub local_addrs: Vec<SocketAddr>,
    /// Never try a direct path.
    pub relay_only: bool,
    /// Run the NAT behaviour tests (needs a server with an alternate address) before registering.
    pub detect_nat: bool,
    /// The behaviour to announce when detection is off.
    pub nat: NatBehaviour,
    /// Seed of every random choice the peer makes (the PAKE's secret scalar, transaction ids, the client
    /// id): 32 bytes from the OS RNG in production, anything fixed in tests and the simulator.
    pub seed: [u8; 32],
    /// How long the server may stay silent before [`PeerError::ServerUnreachable`] (default 9.5 s).
    pub server_timeout: Duration,
    /// How long to punch before falling back to the relay (default 3 s).
    pub punch_timeout: Duration,
    /// Interval between pings while punching (default 100 ms).
    pub ping_interval: Duration,
    /// The first keepalive interval of an idle direct path, the safe default (5 s): well under the shortest
    /// UDP mapping lifetimes seen in practice (20 to 30 s). The interval then grows by half each time the path
    /// survives a whole one, and settles when a longer one kills it (docs/STRATEGY.md, "Keepalive").
    pub path_keepalive: Duration,
    /// The longest keepalive interval the direct path may grow to (default 100 s: under the 2 minutes RFC 4787
    /// asks NATs to keep an idle mapping; set it to `path_keepalive` for a fixed interval).
    pub path_keepalive_max: Duration,
    /// Keepalive to the server (default 15 s; the server expires members after 60 s).
    pub server_keepalive: Duration,
    /// Server keepalive while the server has not confirmed a new public address (default 1 s).
    pub rebind_keepalive: Duration,
    /// How often a registration waiting for a partner is refreshed (default 10 s).
    pub reregister_interval: Duration,
    /// Between punch rounds while on relay (default 35 s).
    pub retry_interval: Duration,
    /// The TTL of the opener: at the start of every punch round, before any ping that may be held back, one
    /// ping to the partner's public address leaves with this TTL (default `Some(2)`; `None`: no opener). It
    /// passes our own NAT, so our mapping and filter toward the partner open, and expires in the internet
    /// before the partner's NAT, so that NAT sees nothing unsolicited. The partner's first ping then arrives as
    /// a reply: no Linux conntrack reservation, no race (docs/STRATEGY.md). Two hops: the host's router, then
    /// the first router past it. Behind two NATs (CGNAT) the outer one is not opened; if the partner's NAT is
    /// within two hops the opener arrives and counts as an ordinary ping.
    pub opener_ttl: Option<u8>,
    /// Birthday probing ([`Strategy::Birthday`]), hard side: how many extra sockets to ask the driver for
    /// (default 256; 0 turns birthday probing off: such pairs stay on the relay). Each sends one TTL-limited
    /// opener; all but the one that gets through are closed when the path is found or the attempt ends.
    pub birthday_sockets: u16,
    /// Birthday probing, easy side: probes per second to random ports of the hard side's IP (default 100).
    pub birthday_rate: u32,
    /// How long a birthday attempt lasts before both sides give up and stay on the relay (default 15 s). With
    /// the defaults, 1 000 probes in 10 s find one of 256 mappings among 64 512 ports with 98 % probability.
    pub birthday_timeout: Duration,
    /// After both sides finished and everything is acknowledged, how long to keep answering (so that a
    /// retransmitted FIN still gets its ACK) before [`PeerEvent::ConversationDone`] (default 300 ms).
    pub linger: Duration,
}

impl PeerConfig {
    /// The documented defaults for joining with `code` at `server`.
    pub fn new(server: SocketAddr, code: Code) -> Self {
        PeerConfig {
            server,
            server_other_family: None,
            pool: code.nameplate().to_string(),
            code: Some(code),
            name: String::new(),
            local_addrs: Vec::new(),
            relay_only: false,
            detect_nat: false,
            nat: NatBehaviour::UNKNOWN,
            seed: [0; 32],
            server_timeout: Duration::from_millis(9_500),
            punch_timeout: Duration::from_secs(3),
            ping_interval: Duration::from_millis(100),
            path_keepalive: Duration::from_secs(5),
            path_keepalive_max: Duration::from_secs(100),
            server_keepalive: Duration::from_secs(15),
            rebind_keepalive: Duration::from_secs(1),
            reregister_interval: Duration::from_secs(10),
            retry_interval: Duration::from_secs(35),
            opener_ttl: Some(2),
            birthday_sockets: 256,
            birthday_rate: 100,
            birthday_timeout: Duration::from_secs(15),
            linger: Duration::from_millis(300),
        }
    }
}

impl PeerConfig {
    /// [`PeerConfig::new`] with `code`, or [`PeerConfig::allocating`] without one: what a chat program does
    /// with a code the user may or may not have typed.
    pub fn joining(server: SocketAddr, code: Option<Code>) -> Self {
        match code {
            Some(code) => PeerConfig::new(server, code),
            None => PeerConfig::allocating(server),
        }
    }

    /// The documented defaults for a peer that asks `server` for a free nameplate and makes its code from it
    /// (two words from the built-in list: 16 bits of secret), to share with the partner.
    pub fn allocating(server: SocketAddr) -> Self {
        let mut config = PeerConfig::new(server, Code::parse("0-x").expect("a valid code"));
        config.code = None;
        config.pool = String::new();
        config
    }
}

/// Which way chat data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Path {
    /// Straight to the partner at this address.
    Direct(SocketAddr),
    /// Through the server.
    Relay,
}

/// Errors the application can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerError {
    /// No answer from the server within [`PeerConfig::server_timeout`].
    ServerUnreachable,
    /// Two peers are already paired in this pool.
    PoolFull,
    /// The partner used another code (or someone tried to guess it): its key confirmation did not
    /// authenticate. Nothing was delivered, and the nameplate is burnt.
    WrongCode,
    /// The server refused the registration.
    Rejected {
        /// The STUN error code.
        code: u16,
        /// The server's reason phrase.
        reason: String,
    },
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::ServerUnreachable => write!(f, "server unreachable: no answer"),
            PeerError::PoolFull => write!(f, "pool full: two peers are already chatting in it"),
            PeerError::WrongCode => write!(f, "wrong code, or someone tried to guess it"),
            PeerError::Rejected { code, reason } => {
                write!(f, "server refused registration: {code} {reason}")
            }
        }
    }
}

impl std::error::Error for PeerError {}

impl PeerError {
    /// A stable machine-readable name: `server_unreachable`, `pool_full`, `wrong_code`, `rejected` (the JSON
    /// `code` of an error event, docs/JSON.md).
    pub fn code(&self) -> &'static str {
        match self {
            PeerError::ServerUnreachable => "server_unreachable",
            PeerError::PoolFull => "pool_full",
            PeerError::WrongCode => "wrong_code",
            PeerError::Rejected { .. } => "rejected",
        }
    }
}

/// What the peer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "event", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum PeerEvent {
    /// NAT detection finished (only with [`PeerConfig::detect_nat`]).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "nat", serialize_with = "crate::shapes::nat_event")
    )]
    NatDetected(NatReport),
    /// The server allocated a nameplate and the peer made its code: show it to the user, who shares it with the
    /// partner (only with [`PeerConfig::allocating`]).
    CodeAllocated {
        /// The code, like `7-guitar-revenge`.
        code: String,
    },
    /// The server accepted the registration.
    Registered {
        /// How the server sees this socket.
        public_addr: SocketAddr,
        /// The measured round trip to the server.
        #[cfg_attr(
            feature = "serde",
            serde(rename = "server_rtt_ms", serialize_with = "crate::shapes::ms")
        )]
        server_rtt: Duration,
    },
    /// The server paired us with a partner.
    Paired {
        /// The partner's display name.
        #[cfg_attr(feature = "serde", serde(rename = "peer_name"))]
        name: String,
        /// The partner's public address as the server sees it.
        #[cfg_attr(feature = "serde", serde(rename = "peer_public_addr"))]
        public_addr: SocketAddr,
        /// The partner's local addresses.
        #[cfg_attr(feature = "serde", serde(rename = "peer_local_addrs"))]
        local_addrs: Vec<SocketAddr>,
        /// The partner's NAT behaviour.
        #[cfg_attr(feature = "serde", serde(rename = "peer_nat"))]
        nat: NatBehaviour,
        /// What the decision table says for this pair.
        strategy: Strategy,
    },
    /// The path was chosen or changed.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::shapes::path_event"))]
    Path {
        /// The new path.
        path: Path,
        /// Its round trip (measured on a direct path; twice the server RTT on the relay).
        rtt: Duration,
    },
    /// A chat message from the partner (once, in order).
    Message {
        /// Its sequence number.
        seq: u64,
        /// Its text.
        text: String,
    },
    /// The partner acknowledged our message.
    Acked {
        /// The sequence number [`Peer::send_message`] returned.
        seq: u64,
    },
    /// The partner has finished sending (see [`Peer::finish`]); all its messages were delivered before this.
    PeerFinished,
    /// The conversation is over: this side called [`Peer::finish`], every message and the FIN were
    /// acknowledged, the partner's FIN arrived, and [`PeerConfig::linger`] has passed (or the partner left
    /// first, its own linger over). The application can [`Peer::close`] now without losing anything in
    /// either direction.
    ConversationDone,
    /// The peer gave up.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::shapes::error_event")
    )]
    Error(PeerError),
    /// The partner left or the server expired it.
    Disconnected {
        /// What happened, in words.
        reason: String,
    },
}

timers! {
    enum PeerTimer {
        Linger => "linger before the conversation is done",
    }
}

/// The peer state machine. See the module and crate docs.
///
/// The crate docs run a whole chat in memory; here, the first thing a new peer does: ask its server.
///
/// ```
/// use std::time::Instant;
/// use punch_core::{secure::Code, Machine, Peer, PeerConfig};
///
/// let server = "192.0.2.1:3478".parse().unwrap();
/// let now = Instant::now();
/// let mut peer = Peer::new(PeerConfig::new(server, Code::parse("7-guitar-revenge").unwrap()), now);
/// let first = peer.poll_transmit().expect("a request to the server");
/// assert_eq!(first.destination, server);
/// let wake = peer.poll_deadline().expect("a retransmission is scheduled");
/// assert!(wake.at > now);
/// println!("wake at +{:?} for {}", wake.at - now, wake.reason);
/// ```
#[derive(Debug)]
pub struct Peer {
    config: PeerConfig,
    now: Instant,
    link: ServerLink,
    agent: PathAgent,
    chat: ChatSession,
    timers: Timers<PeerTimer>,
    /// The current path (`None` until paired and after the partner left).
    path: Option<Path>,
    partner_name: String,
    /// The partner's FIN arrived.
    peer_finished: bool,
    conversation_done: bool,
    /// The chat's retransmissions already looked at (see `drain`).
    chat_resent: u64,
    secure: Secure,
    /// For the code's words when the server allocated the nameplate.
    rng: PeerRng,
    /// Datagrams from the partner's direction that did not authenticate (dropped, never acted on).
    rejected: u64,
    out: VecDeque<Transmit>,
    events: VecDeque<PeerEvent>,
}

impl crate::Machine for Peer {
    type Event = PeerEvent;

    /// A datagram arrived on the peer's socket.
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.advance(now);
        if self.link.is_closed() {
            return;
        }
        let extra = self.agent.is_extra_socket(local);
        if !extra
            && self
                .link
                .handle_detector_input(self.now, local, remote, data)
        {
            return self.drain();
        }
        match wire::kind(data) {
            wire::Kind::Data => {
                if let Some((id, sealed)) = wire::decode_direct(data) {
                    if let Ok(inner) = self.open(id, sealed) {
                        // The agent sees a ping or pong before it notes the datagram as a sign of life, so
                        // it can tell how long the path was silent before it.
                        self.dispatch(local, remote, inner);
                        self.agent.note_direct_rx(self.now, local, remote);
                    }
                }
            }
            // The extra (birthday) sockets carry only the partner's sealed datagrams.
            wire::Kind::Stun if extra => {}
            wire::Kind::Stun => match Msg::decode(data) {
                Some(m)
                    if remote == self.config.server
                        || Some(remote) == self.config.server_other_family =>
                {
                    self.link.handle_msg(self.now, m, data)
                }
                _ => {}
            },
            _ => {}
        }
        self.drain();
    }

    /// Runs whatever is due.
    fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.link.handle_timeout(self.now);
        self.agent.handle_timeout(self.now);
        for t in self.timers.expire(self.now) {
            match t {
                PeerTimer::Linger => {
                    self.conversation_done = true;
                    self.events.push_back(PeerEvent::ConversationDone);
                }
            }
        }
        self.chat.handle_timeout(self.now);
        self.drain();
    }

    /// Next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// When `handle_timeout` must be called next, and why.
    fn poll_deadline(&self) -> Option<Deadline> {
        [
            self.link.poll_deadline(),
            self.agent.poll_deadline(),
            self.timers.next(),
            self.chat.poll_deadline(),
        ]
        .into_iter()
        .fold(None, Deadline::earliest)
    }

    /// Next event.
    fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Birthday probing's extra sockets (see [`Strategy::Birthday`]).
    fn poll_socket_request(&mut self) -> Option<crate::SocketRequest> {
        self.agent.poll_socket_request()
    }

    /// The extra sockets the driver opened.
    fn handle_sockets(&mut self, now: Instant, opened: &[SocketAddr]) {
        self.advance(now);
        self.agent.handle_sockets(self.now, opened);
        self.drain();
    }
}

impl Peer {
    /// A peer that starts at once: NAT detection or the Binding probe is queued.
    pub fn new(config: PeerConfig, now: Instant) -> Self {
        let mut rng = PeerRng::from_seed(config.seed);
        let (secure, message) = match &config.code {
            Some(code) => {
                let (pake, message) = Pake::start(code, &mut rng);
                (Secure::Waiting(Box::new(pake)), Some(message))
            }
            None => (Secure::NoCode, None),
        };
        let link = ServerLink::new(config.clone(), message, &mut rng, now);
        let agent = PathAgent::new(config.clone(), &mut rng, now);
        let mut peer = Peer {
            config,
            now,
            link,
            agent,
            chat: ChatSession::new(),
            timers: Timers::default(),
            path: None,
            partner_name: String::new(),
            peer_finished: false,
            conversation_done: false,
            chat_resent: 0,
            secure,
            rng,
            rejected: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        peer.drain();
        peer
    }

    /// Queues a chat message; it is sent once a path exists and retransmitted until acknowledged.
    pub fn send_message(&mut self, now: Instant, text: &str) -> Result<u64, SendError> {
        self.advance(now);
        let r = self.chat.send(self.now, text);
        self.drain();
        r
    }

    /// Says "I have finished sending": a FIN follows the queued messages, reliably and in order, and the
    /// partner gets [`PeerEvent::PeerFinished`] after all of them. Returns the FIN's sequence number (it is
    /// acknowledged like a message). Once the partner has finished too and everything is acknowledged, the
    /// peer reports [`PeerEvent::ConversationDone`].
    pub fn finish(&mut self, now: Instant) -> u64 {
        self.advance(now);
        let seq = self.chat.finish(self.now);
        self.drain();
        seq
    }

    /// Leaves the pool (tells the server) and stops.
    pub fn close(&mut self, now: Instant) {
        self.advance(now);
        self.link.close(self.now, false);
        self.agent.unpair();
        self.timers.clear();
        self.drain();
    }

    /// The conversation is over (see [`PeerEvent::ConversationDone`]).
    pub fn conversation_done(&self) -> bool {
        self.conversation_done
    }

    /// Every message handed to `send_message` was acknowledged.
    pub fn all_acked(&self) -> bool {
        self.chat.all_acked()
    }

    /// The current path, if paired.
    pub fn path(&self) -> Option<Path> {
        self.path
    }

    /// A punch round is running (the path may still change to direct).
    pub fn is_punching(&self) -> bool {
        self.agent.is_punching()
    }

    /// What punching has cost this peer so far: pings (openers, round pings, keepalives, birthday probes)
    /// and extra sockets opened.
    pub fn punch_cost(&self) -> PunchCost {
        self.agent.cost()
    }

    /// The NAT behaviour this peer announces.
    pub fn nat(&self) -> NatBehaviour {
        self.link.nat()
    }

    /// Datagrams that claimed to be the partner's or the server's but did not authenticate (dropped, never
    /// acted on).
    pub fn rejected(&self) -> u64 {
        self.rejected + self.link.forged()
    }

    /// The peer gave up (server unreachable, pool full) or was closed.
    pub fn is_finished(&self) -> bool {
        self.link.is_finished()
    }

    // ---- internals ----

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Drains the children: events first (they call into the other children), then transmits.
    fn drain(&mut self) {
        // The chat resent a frame on the direct path: it may be dead; check it now.
        let resent = self.chat.retransmissions();
        if resent > self.chat_resent {
            self.chat_resent = resent;
            if matches!(self.path, Some(Path::Direct(_))) {
                self.agent.suspect(self.now);
            }
        }
        loop {
            if let Some(e) = self.link.poll_event() {
                self.on_link_event(e);
            } else if let Some(e) = self.agent.poll_event() {
                self.on_agent_event(e);
            } else if let Some(e) = self.chat.poll_event() {
                self.on_chat_event(e);
            } else {
                break;
            }
        }
        self.check_conversation_done();
        self.link.set_keepalive(self.agent.proven_silence());
        while let Some(t) = self.link.poll_transmit() {
            self.out.push_back(t);
        }
        while let Some(t) = self.agent.poll_transmit() {
            if let Some(payload) = self.seal_direct(&t.payload) {
                self.out.push_back(Transmit { payload, ..t });
            }
        }
        self.pump_chat_transmits();
    }

    fn on_link_event(&mut self, e: LinkEvent) {
        match e {
            LinkEvent::NatDetected(r) => self.events.push_back(PeerEvent::NatDetected(r)),
            LinkEvent::Registered {
                public_addr,
                server_rtt,
            } => self.events.push_back(PeerEvent::Registered {
                public_addr,
                server_rtt,
            }),
            LinkEvent::Paired(info) => {
                if !self.establish(info.pair_id, info.pake.as_deref()) {
                    return self.wrong_code();
                }
                let strategy = if self.config.relay_only {
                    Strategy::Relay
                } else {
                    strategy(&self.link.nat(), &info.nat)
                };
                self.partner_name = info.name.clone();
                self.events.push_back(PeerEvent::Paired {
                    name: info.name,
                    public_addr: info.public,
                    local_addrs: info.locals.clone(),
                    nat: info.nat,
                    strategy,
                });
                let pair = NewPair {
                    id: info.pair_id,
                    public: info.public,
                    locals: info.locals,
                    strategy,
                    nat: info.nat,
                    own_nat: self.link.nat(),
                    hold: info.hold,
                    own_public: self.link.public_addr(),
                    server_rtt: self.link.server_rtt(),
                };
                self.agent.pair(self.now, pair);
            }
            LinkEvent::NewRound { public, hold } => self.agent.new_round(self.now, public, hold),
            LinkEvent::Allocated(nameplate) => self.on_allocated(&nameplate),
            LinkEvent::PeerLeft => {
                self.agent.unpair();
                self.timers.clear();
                self.path = None;
                self.chat.set_path(self.now, None, NO_PATH_RTT);
                if self.peer_finished && self.chat.is_finished() && self.chat.all_acked() {
                    // Its linger ended before ours: nothing is lost, the conversation is simply over.
                    if !self.conversation_done {
                        self.conversation_done = true;
                        self.events.push_back(PeerEvent::ConversationDone);
                    }
                } else {
                    let reason = format!("peer {:?} left or timed out", self.partner_name);
                    self.events.push_back(PeerEvent::Disconnected { reason });
                }
            }
            LinkEvent::Relay(sealed) => self.on_relayed(&sealed),
            LinkEvent::Failed(e) => {
                self.agent.unpair();
                self.events.push_back(PeerEvent::Error(e));
            }
        }
    }

    fn on_agent_event(&mut self, e: AgentEvent) {
        match e {
            AgentEvent::Path { path, rtt } => {
                if matches!(self.path, Some(Path::Direct(_))) {
                    // The old path was lost: what was in flight on it goes again on the new one, at once.
                    self.chat.set_path(self.now, None, rtt);
                }
                // An upgrade (relay -> direct) keeps in-flight frames: their relayed copies are still arriving.
                self.path = Some(path);
                let hop = match path {
                    Path::Direct(a) => a,
                    Path::Relay => self.config.server,
                };
                self.chat.set_path(self.now, Some(hop), rtt);
                self.events.push_back(PeerEvent::Path { path, rtt });
            }
            AgentEvent::RequestRetry => self.link.request_retry(),
        }
    }

    fn on_chat_event(&mut self, e: ChatEvent) {
        self.events.push_back(match e {
            ChatEvent::Message { seq, text } => PeerEvent::Message { seq, text },
            ChatEvent::Acked { seq } => PeerEvent::Acked { seq },
            ChatEvent::Finished => {
                self.peer_finished = true;
                PeerEvent::PeerFinished
            }
        });
    }

    /// Both sides finished and everything is acknowledged: linger, then report the conversation done.
    fn check_conversation_done(&mut self) {
        if self.peer_finished
            && self.chat.is_finished()
            && self.chat.all_acked()
            && !self.conversation_done
            && !self.timers.is_armed(PeerTimer::Linger)
        {
            self.timers
                .set(PeerTimer::Linger, after(self.now, self.config.linger));
        }
    }

    /// Chat frames onto the current path, sealed: direct data to the partner, or a Relay message to the
    /// server.
    fn pump_chat_transmits(&mut self) {
        if self.agent.pair_id().is_none() {
            return;
        }
        while let Some(t) = self.chat.poll_transmit() {
            let inner = Inner::Chat(t.payload).encode();
            if t.destination == self.config.server {
                self.relay_sealed(&inner);
            } else if let Some(payload) = self.seal_direct(&inner) {
                let source = self.agent.path_source();
                self.out.push_back(Transmit {
                    payload,
                    source,
                    ..t
                });
            }
        }
    }
}
