//! # punch-core: sans-IO UDP NAT traversal
//!
//! Every state machine in this crate ([`Server`], [`Peer`], [`NatDetector`],
//! [`ChatSession`]) owns no socket, no clock and no global RNG. The caller feeds it datagrams and timer
//! ticks and sends what it asks to send. They all implement one trait, [`Machine`], with the same five verbs
//! (bring it into scope with `use punch_core::Machine`):
//!
//! | verb | what it does |
//! |---|---|
//! | `handle_input(now, local, remote, &[u8])` | a datagram arrived on local socket `local` from `remote` |
//! | `handle_timeout(now)` | the deadline returned by `poll_timeout` has passed (calling it early is harmless) |
//! | `poll_transmit() -> Option<Transmit>` | next datagram to send |
//! | `poll_deadline() -> Option<Deadline>` | when `handle_timeout` must be called next, and why (`poll_timeout()`: the instant alone) |
//! | `poll_event() -> Option<Event>` | next thing that happened, for the application |
//!
//! Drivers ([`drive`] holds their runtime-independent half) and the simulator are written once against the
//! trait. The machine split, who drains whom and where to add a message, a timer or a machine are in
//! `docs/ARCHITECTURE.md`.
//!
//! ## Call order and the drain rule
//!
//! 1. Construct the machine with a seed (all randomness derives from it) and the current `now`.
//! 2. After **every** mutation (construction, `handle_input`, `handle_timeout`, or an application call such as
//!    `Peer::send_message`) drain: call `poll_transmit` until `None` and send each datagram, then
//!    `poll_event` until `None`, then read `poll_timeout` and arm one timer for it.
//! 3. When the timer fires, call `handle_timeout(now)` and drain again.
//!
//! `poll_timeout` never returns a deadline that has already been handled: after `handle_timeout(t)` every
//! deadline it reports is strictly later than `t`, so a driver cannot busy-loop. If output is queued,
//! `poll_timeout` returns the earliest pending timer, but the caller must have drained `poll_transmit` anyway.
//! `now` must never go backwards; machines clamp if it does. Instant arithmetic is checked/saturating.
//!
//! Time is [`std::time::Instant`]; the simulator and tests create one base instant and step it forward.
//!
//! With the feature `serde`, [`PeerEvent`], [`ServerEvent`], [`NatReport`] and the NAT types implement
//! `serde::Serialize` in the JSON shapes `punch --json` prints (schema version 1, `docs/JSON.md`).
//!
//! ## Example: a whole chat in memory
//!
//! A server and two peers, with a "network" that hands every datagram to the machine that owns its
//! destination and a clock stepped by hand: the five verbs are all it takes (a real driver does the same
//! with sockets and a timer; see `core/examples/blocking_peer.rs`).
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use punch_core::{secure::Code, Machine, Peer, PeerConfig, PeerEvent, Server, ServerConfig};
//!
//! let server_addr: SocketAddr = "192.0.2.1:3478".parse()?;
//! let (a, b): (SocketAddr, SocketAddr) = ("198.51.100.7:4000".parse()?, "203.0.113.9:5000".parse()?);
//! let mut now = Instant::now();
//! let mut server = Server::new(ServerConfig::new(server_addr), now);
//! let code = Code::parse("7-guitar-revenge")?;
//! let mut configs = [PeerConfig::new(server_addr, code.clone()), PeerConfig::new(server_addr, code)];
//! configs[1].seed = [1; 32]; // in production: 32 bytes from the OS RNG, for every peer
//! let [ca, cb] = configs;
//! let (mut alice, mut bob) = (Peer::new(ca, now), Peer::new(cb, now));
//! alice.send_message(now, "hi bob")?; // queued until there is a path
//!
//! for _ in 0..500 {
//!     now += Duration::from_millis(10);
//!     let mut air = Vec::new(); // (from, datagram): every machine drained
//!     air.extend(std::iter::from_fn(|| server.poll_transmit()).map(|t| (server_addr, t)));
//!     air.extend(std::iter::from_fn(|| alice.poll_transmit()).map(|t| (a, t)));
//!     air.extend(std::iter::from_fn(|| bob.poll_transmit()).map(|t| (b, t)));
//!     for (from, t) in air {
//!         match t.destination {
//!             to if to == server_addr => server.handle_input(now, to, from, &t.payload),
//!             to if to == a => alice.handle_input(now, to, from, &t.payload),
//!             to => bob.handle_input(now, to, from, &t.payload),
//!         }
//!     }
//!     if server.poll_timeout().is_some_and(|at| at <= now) { server.handle_timeout(now) }
//!     if alice.poll_timeout().is_some_and(|at| at <= now) { alice.handle_timeout(now) }
//!     if bob.poll_timeout().is_some_and(|at| at <= now) { bob.handle_timeout(now) }
//!     while let Some(event) = bob.poll_event() {
//!         if let PeerEvent::Message { text, .. } = event {
//!             assert_eq!(text, "hi bob");
//!             return Ok(());
//!         }
//!     }
//! }
//! panic!("no message");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::disallowed_methods)]

// The machines live in private modules and are re-exported here, deliberately: `punch_core::Peer`,
// `punch_core::Server`, ... The public modules are namespaces of protocol vocabulary (`chat` limits, `nat`
// behaviour types, `wire` messages, `rfc5780` STUN codec, `secure` codes/PAKE/channel) and the driver helper
// (`drive`).
mod backoff;
pub mod chat;
mod detect;
mod display;
pub mod drive;
pub mod nat;
mod peer;
pub mod rfc5780;
pub mod secure;
mod server;
#[cfg(feature = "serde")]
mod shapes;
mod stun_server;
mod timer;
pub mod wire;

pub use backoff::{Backoff, Retransmit};
pub use chat::{ChatEvent, ChatSession, SendError};
pub use detect::{port_allocation, DetectEvent, DetectorConfig, NatDetector, NatReport};
pub use display::{millis, Ms};
pub use nat::{NatBehaviour, NatKind, Strategy};
pub use peer::{Path, Peer, PeerConfig, PeerError, PeerEvent, PunchCost};
pub use server::load;
pub use server::{
    round_holder, Rate, RelayForwarder, RelayTable, Route, Server, ServerConfig, ServerEvent,
    ServerStats, BURN_TIME, RETRY_MIN_INTERVAL,
};
pub use stun_server::{
    answer_binding, answer_classic, select_sockets, socket_set, usable_alternate,
};

use std::net::SocketAddr;

/// A datagram a state machine wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Which local socket to send from, for machines that own several (the STUN server with `--alt-ip`).
    /// `None` means "the one socket" (peers always use one socket for everything).
    pub source: Option<SocketAddr>,
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram.
    pub payload: Vec<u8>,
    /// The IPv4 TTL / IPv6 hop limit for this datagram only; `None` is the socket's default. A small value
    /// makes a packet that opens our own NAT's mapping but expires before it reaches the partner's NAT (the
    /// peer's punch opener, [`PeerConfig::opener_ttl`]).
    pub ttl: Option<u8>,
}

pub use std::time::{Duration, Instant};

/// A change to the set of sockets a machine sends from, asked of its driver through
/// [`Machine::poll_socket_request`]. Only birthday probing asks (a peer behind a random-port symmetric NAT opens
/// many sockets toward an easy partner, keeps the one that gets through and closes the rest); every other
/// machine uses the sockets it was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketRequest {
    /// Bind `count` more UDP sockets like the first one (same family and IP, any free port) and report them with
    /// [`Machine::handle_sockets`] (fewer, or none, if the system refuses some: the machine copes).
    Open {
        /// How many sockets.
        count: usize,
    },
    /// Close these sockets (ones opened on request; the machine never names its first socket).
    Close(Vec<SocketAddr>),
}

/// When a machine wants [`Machine::handle_timeout`] called next, and why (the snownet pattern: every deadline
/// carries a reason, so a trace can say what a timer was for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    /// The instant.
    pub at: Instant,
    /// What the deadline is for (a short, fixed phrase such as `"server transaction retransmit"`).
    pub reason: &'static str,
}

impl Deadline {
    /// The earlier of two optional deadlines (the first one wins a tie).
    pub fn earliest(a: Option<Deadline>, b: Option<Deadline>) -> Option<Deadline> {
        match (a, b) {
            (Some(x), Some(y)) => Some(if y.at < x.at { y } else { x }),
            (x, None) => x,
            (None, y) => y,
        }
    }
}

/// The five verbs, as a trait, so that drivers and the simulator are written once for every machine.
///
/// `poll_timeout` is provided: it is `poll_deadline` without the reason. Machines implement `poll_deadline`.
///
/// A driver is written once for every machine; here, its drain rule (transmits, then events, then the one
/// deadline to arm):
///
/// ```
/// use std::time::Instant;
/// use punch_core::{Machine, Server, ServerConfig, Transmit};
///
/// fn drain<M: Machine>(m: &mut M, send: &mut impl FnMut(Transmit)) -> Option<Instant> {
///     while let Some(t) = m.poll_transmit() {
///         send(t);
///     }
///     while let Some(event) = m.poll_event() {
///         println!("{event:?}");
///     }
///     m.poll_timeout()
/// }
///
/// let mut server = Server::new(ServerConfig::new("192.0.2.1:3478".parse().unwrap()), Instant::now());
/// let mut sent = Vec::new();
/// drain(&mut server, &mut |t| sent.push(t));
/// assert!(sent.is_empty()); // a server speaks only when spoken to
/// ```
pub trait Machine {
    /// What the machine reports to the application.
    type Event: std::fmt::Debug;
    /// A datagram arrived on local socket `local` from `remote`.
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]);
    /// The deadline from `poll_timeout` passed.
    fn handle_timeout(&mut self, now: Instant);
    /// Next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// When to call `handle_timeout` next, and why.
    fn poll_deadline(&self) -> Option<Deadline>;
    /// When to call `handle_timeout` next.
    fn poll_timeout(&self) -> Option<Instant> {
        self.poll_deadline().map(|d| d.at)
    }
    /// Next event.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// Next change to the machine's socket set (drained with the transmits; none for most machines). A driver
    /// that cannot open sockets may ignore `Open`: the machine then simply never hears back.
    fn poll_socket_request(&mut self) -> Option<SocketRequest> {
        None
    }
    /// The sockets opened for a [`SocketRequest::Open`], with their local addresses (datagrams to them arrive
    /// through `handle_input` with that `local`; a [`Transmit::source`] names one to send from).
    fn handle_sockets(&mut self, now: Instant, opened: &[SocketAddr]) {
        let _ = (now, opened);
    }
}

/// The one clock read in core's unit tests: a base instant that virtual time is stepped from.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> Instant {
    Instant::now()
}
