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

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::chat::{ChatEvent, ChatSession, SendError};
use crate::detect::NatReport;
use crate::nat::{strategy, NatBehaviour, Strategy};
use crate::timer::{after, timers, Timers};
use crate::wire::{self, Msg};
use crate::Machine;
use crate::{Deadline, Transmit};

mod agent;
mod link;

use agent::{AgentEvent, NewPair, PathAgent};
use link::{LinkEvent, ServerLink};

/// The server RTT assumed where none was measured (the relay's RTT is then twice this).
const FALLBACK_SERVER_RTT: Duration = Duration::from_millis(100);
/// The chat session's RTT while it has no path.
const NO_PATH_RTT: Duration = Duration::from_millis(100);

/// Peer settings; [`PeerConfig::new`] gives the documented defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerConfig {
    /// The rendezvous server.
    pub server: SocketAddr,
    /// The pool to join: the first two peers in a pool are paired.
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
    /// Seed of every random choice the peer makes (transaction ids, the client id).
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
    /// Server keepalive while the server has not confirmed a new public address (default 1 s).
    pub rebind_keepalive: Duration,
    /// How often a registration waiting for a partner is refreshed (default 10 s).
    pub reregister_interval: Duration,
    /// Between punch rounds while on relay (default 35 s).
    pub retry_interval: Duration,
    /// After both sides finished and everything is acknowledged, how long to keep answering (so that a
    /// retransmitted FIN still gets its ACK) before [`PeerEvent::ConversationDone`] (default 300 ms).
    pub linger: Duration,
}

impl PeerConfig {
    /// The documented defaults for joining `pool` at `server`.
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
            rebind_keepalive: Duration::from_secs(1),
            reregister_interval: Duration::from_secs(10),
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
#[non_exhaustive]
pub enum PeerError {
    /// No answer from the server within [`PeerConfig::server_timeout`].
    ServerUnreachable,
    /// Two peers are already paired in this pool.
    PoolFull,
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
            PeerError::Rejected { code, reason } => {
                write!(f, "server refused registration: {code} {reason}")
            }
        }
    }
}

impl std::error::Error for PeerError {}

/// What the peer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// NAT detection finished (only with [`PeerConfig::detect_nat`]).
    NatDetected(NatReport),
    /// The server accepted the registration.
    Registered {
        /// How the server sees this socket.
        public_addr: SocketAddr,
        /// The measured round trip to the server.
        server_rtt: Duration,
    },
    /// The server paired us with a partner.
    Paired {
        /// The partner's display name.
        name: String,
        /// The partner's public address as the server sees it.
        public_addr: SocketAddr,
        /// The partner's local addresses.
        local_addrs: Vec<SocketAddr>,
        /// The partner's NAT behaviour.
        nat: NatBehaviour,
        /// What the decision table says for this pair.
        strategy: Strategy,
    },
    /// The path was chosen or changed.
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
    /// acknowledged, the partner's FIN arrived, and [`PeerConfig::linger`] has passed. The application can
    /// [`Peer::close`] now without losing anything in either direction.
    ConversationDone,
    /// The peer gave up.
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
        if self
            .link
            .handle_detector_input(self.now, local, remote, data)
        {
            return self.drain();
        }
        match wire::kind(data) {
            wire::Kind::Data => {
                if let Some((id, frame)) = wire::decode_direct(data) {
                    if self.agent.accept_direct(self.now, id) {
                        self.chat.handle_input(self.now, local, remote, frame);
                    }
                }
            }
            wire::Kind::Stun => match Msg::decode(data) {
                Some(m @ (Msg::Ping { .. } | Msg::Pong { .. })) => {
                    self.agent.handle_msg(self.now, remote, m)
                }
                Some(m) if remote == self.config.server => self.link.handle_msg(self.now, m),
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
}

impl Peer {
    /// A peer that starts at once: NAT detection or the Binding probe is queued.
    pub fn new(config: PeerConfig, now: Instant) -> Self {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let link = ServerLink::new(config.clone(), &mut rng, now);
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
        self.link.close(self.now);
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

    /// The NAT behaviour this peer announces.
    pub fn nat(&self) -> NatBehaviour {
        self.link.nat()
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
        while let Some(t) = self.link.poll_transmit() {
            self.out.push_back(t);
        }
        while let Some(t) = self.agent.poll_transmit() {
            self.out.push_back(t);
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
                    hold: info.hold,
                    own_public: self.link.public_addr(),
                    server_rtt: self.link.server_rtt(),
                };
                self.agent.pair(self.now, pair);
            }
            LinkEvent::NewRound { public, hold } => self.agent.new_round(self.now, public, hold),
            LinkEvent::PeerLeft => {
                self.agent.unpair();
                self.timers.clear();
                self.path = None;
                self.chat.set_path(self.now, None, NO_PATH_RTT);
                let reason = format!("peer {:?} left or timed out", self.partner_name);
                self.events.push_back(PeerEvent::Disconnected { reason });
            }
            LinkEvent::Relay(frame) => {
                let server = self.config.server;
                self.chat.handle_input(self.now, server, server, &frame);
            }
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
            AgentEvent::CheckServer => self.link.keepalive_now(),
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

    /// Chat frames onto the current path: direct data to the partner, or a Relay message to the server.
    fn pump_chat_transmits(&mut self) {
        let Some(pair_id) = self.agent.pair_id() else {
            return;
        };
        while let Some(t) = self.chat.poll_transmit() {
            if t.destination == self.config.server {
                if let Some(relayed) = self.link.relay(t.payload) {
                    self.out.push_back(relayed);
                }
            } else {
                let payload = wire::encode_direct(&pair_id, &t.payload);
                self.out.push_back(Transmit { payload, ..t });
            }
        }
    }
}
