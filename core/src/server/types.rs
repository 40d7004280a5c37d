//! The server's public types: its settings, its counters and its events.
use std::net::SocketAddr;
use std::time::Duration;

use crate::nat::NatBehaviour;

/// Server settings; [`ServerConfig::new`] gives the documented defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The primary socket (the one clients are told about).
    pub listen: SocketAddr,
    /// Alternate IP and port for NAT behaviour discovery (RFC 5780). With it the server owns four sockets:
    /// primary/alternate IP x primary/alternate port.
    pub alternate: Option<SocketAddr>,
    /// A member not heard from for this long is removed (default 60 s).
    pub member_timeout: Duration,
    /// Most clients registered at once (default 10 000); more are refused with 503.
    pub max_clients: usize,
    /// Largest relayed DATA payload (default 1200 bytes).
    pub max_relay_payload: usize,
    /// Seed for pair ids and transaction ids.
    pub seed: u64,
}

impl ServerConfig {
    /// Listening on `listen` with no alternate address, 60 s member timeout, 10 000 clients, 1200-byte relay
    /// payloads and seed 0.
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            alternate: None,
            member_timeout: Duration::from_secs(60),
            max_clients: 10_000,
            max_relay_payload: 1200,
            seed: 0,
        }
    }
}

/// Counters, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Datagrams handed to [`Server::handle_input`](crate::Machine::handle_input), whatever they were.
    pub received: u64,
    /// Datagrams dropped as malformed, unexpected or from a stranger, plus Registers refused with 400 or 409.
    pub dropped: u64,
    /// Binding requests answered (RFC 5389 and RFC 3489).
    pub bindings: u64,
    /// Clients that joined a pool (a refresh by an existing member is not counted).
    pub registrations: u64,
    /// Pools that got two members and were paired.
    pub pairs: u64,
    /// Relay indications forwarded to a partner.
    pub relayed: u64,
    /// Members removed for silence ([`ServerConfig::member_timeout`]).
    pub expired: u64,
}

/// What the server reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A new client joined a pool.
    Registered {
        /// The pool joined.
        pool: String,
        /// The client's public address, as the server saw it.
        client: SocketAddr,
        /// The display name the client sent.
        name: String,
        /// The NAT behaviour the client reported.
        nat: NatBehaviour,
    },
    /// A pool's two members were paired; both are sent PeerInfo.
    Paired {
        /// The pool.
        pool: String,
        /// The first member to register.
        a: SocketAddr,
        /// The second member.
        b: SocketAddr,
    },
    /// A member left (a Register indication, or a Register for another pool); its partner was told.
    Left {
        /// The pool it left.
        pool: String,
        /// Its address.
        client: SocketAddr,
    },
    /// A member was not heard from for [`ServerConfig::member_timeout`] and was removed; its partner was told.
    Expired {
        /// The pool it was in.
        pool: String,
        /// Its address.
        client: SocketAddr,
    },
    /// A member re-registered from a new address (its NAT mapping changed).
    Moved {
        /// The member's pool.
        pool: String,
        /// Its old address.
        from: SocketAddr,
        /// Its new address.
        to: SocketAddr,
    },
    /// A paired member asked for a new punch round.
    Retry {
        /// The pair's pool.
        pool: String,
    },
    /// A datagram was dropped (also counted in [`ServerStats::dropped`]).
    Dropped {
        /// Its sender.
        from: SocketAddr,
        /// Why, as a short fixed phrase.
        reason: &'static str,
    },
}
