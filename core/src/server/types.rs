//! The server's public types: its settings, its counters and its events.
use std::net::SocketAddr;
use std::time::Duration;

use crate::nat::NatBehaviour;
use crate::wire::Label;

/// Server settings; [`ServerConfig::new`] gives the documented defaults.
///
/// ```
/// use punch_core::{Rate, Server, ServerConfig};
///
/// let mut config = ServerConfig::new("192.0.2.1:3478".parse().unwrap());
/// config.alternate = Some("192.0.2.2:3479".parse().unwrap()); // RFC 5780 behaviour tests
/// config.max_members = 1_000;
/// config.register_rate = Rate::new(5, 10);
/// config.secret = Some([42; 32]); // in production: 32 bytes from the OS RNG
/// let server = Server::new(config, std::time::Instant::now());
/// assert_eq!(server.local_addrs().len(), 4); // primary/alternate IP x primary/alternate port
/// ```
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
    /// Most members registered at once (default 10 000); more are refused with 503 "server full". The member
    /// tables and the per-IP table are reserved for this many at construction (up to 4,194,304; about 72 + 48
    /// bytes of slabs and 20 of indexes each, of which only the indexes' control bytes are written before
    /// use: the pages of a slab cost memory once members fill them), so a server at its size never grows them.
    pub max_members: usize,
    /// Most members registered from one source IP (default 64); more are refused with 486.
    pub max_members_per_ip: usize,
    /// Register requests per source IP, answered or not (default 20/s, burst 40); more are dropped.
    pub register_rate: Rate,
    /// RFC 5389 and RFC 3489 Binding requests per source IP (default 10/s, burst 40); more are dropped.
    pub binding_rate: Rate,
    /// Relay indications per source IP (default 200/s, burst 400); more are dropped.
    pub relay_packet_rate: Rate,
    /// Relayed DATA bytes per source IP (default 128 KiB/s, burst 256 KiB); more are dropped.
    pub relay_byte_rate: Rate,
    /// Most source IPs whose rate-limit state is kept (default 65 536; at least `2 x max_members`): the least
    /// recently seen IPs without members are forgotten first, half the table at once (48 bytes an IPv4 entry,
    /// 64 an IPv6 one, plus the index: bounded under any flood, spoofed sources included).
    pub max_ip_entries: usize,
    /// Largest relayed DATA payload (default 1200 bytes).
    pub max_relay_payload: usize,
    /// Seed for pair ids and transaction ids.
    pub seed: u64,
    /// Key of the stateless cookies (return routability). `None` (the default): derived from `seed`, which is
    /// right for tests and the simulator only; a real server sets 32 bytes from the OS RNG (the CLI does).
    pub secret: Option<[u8; 32]>,
}

/// A token-bucket rate: `per_second` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained rate.
    pub per_second: u32,
    /// Largest burst.
    pub burst: u32,
}

impl Rate {
    /// `per_second`, with bursts of `burst`.
    pub const fn new(per_second: u32, burst: u32) -> Self {
        Rate { per_second, burst }
    }
}

impl ServerConfig {
    /// Listening on `listen` with no alternate address, 60 s member timeout, 10 000 members (64 per IP),
    /// the rates documented on each field, 1200-byte relay payloads, seed 0 and a secret derived from it.
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            alternate: None,
            member_timeout: Duration::from_secs(60),
            max_members: 10_000,
            max_members_per_ip: 64,
            register_rate: Rate::new(20, 40),
            binding_rate: Rate::new(10, 40),
            relay_packet_rate: Rate::new(200, 400),
            relay_byte_rate: Rate::new(128 * 1024, 256 * 1024),
            max_ip_entries: 65_536,
            max_relay_payload: 1200,
            seed: 0,
            secret: None,
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
    /// Datagrams dropped because their source IP was over a rate ([`ServerConfig::register_rate`] ...).
    pub rate_limited: u64,
    /// Registers without a valid cookie: answered with 401 and a fresh cookie (or dropped if the answer
    /// would be larger than the request); no state is created.
    pub cookie_challenges: u64,
    /// Relay indications from a member whose PAIR-ID is not its pair's (dropped).
    pub bad_pair_id: u64,
}

/// What the server reports. Pools and names are [`Label`]s (inline text, up to 64 bytes: making an event
/// allocates nothing); they dereference to `str` and compare with one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "event", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ServerEvent {
    /// A new client joined a pool.
    Registered {
        /// The pool joined.
        pool: Label,
        /// The client's public address, as the server saw it.
        client: SocketAddr,
        /// The display name the client sent.
        name: Label,
        /// The NAT behaviour the client reported.
        nat: NatBehaviour,
    },
    /// A pool's two members were paired; both are sent PeerInfo.
    Paired {
        /// The pool.
        pool: Label,
        /// The first member to register.
        a: SocketAddr,
        /// The second member.
        b: SocketAddr,
    },
    /// A member left (a Register indication, or a Register for another pool); its partner was told.
    Left {
        /// The pool it left.
        pool: Label,
        /// Its address.
        client: SocketAddr,
    },
    /// A member was not heard from for [`ServerConfig::member_timeout`] and was removed; its partner was told.
    Expired {
        /// The pool it was in.
        pool: Label,
        /// Its address.
        client: SocketAddr,
    },
    /// A member re-registered from a new address (its NAT mapping changed).
    Moved {
        /// The member's pool.
        pool: Label,
        /// Its old address.
        from: SocketAddr,
        /// Its new address.
        to: SocketAddr,
    },
    /// A paired member asked for a new punch round.
    Retry {
        /// The pair's pool.
        pool: Label,
    },
    /// A datagram was dropped (also counted in [`ServerStats::dropped`]).
    Dropped {
        /// Its sender.
        from: SocketAddr,
        /// Why, as a short fixed phrase.
        reason: &'static str,
    },
}
