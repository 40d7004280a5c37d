//! Synthetic clients for measuring the server: `punch bench server`, `core/tests/memory.rs` and the criterion
//! bench `server/pairing` (docs/BENCHMARKS.md, "Issue 12").
//!
//! ```
//! use punch_core::{load, Machine, Server, ServerConfig};
//!
//! let listen = "203.0.113.1:3478".parse().unwrap();
//! let t0 = std::time::Instant::now();
//! let mut config = ServerConfig::new(listen);
//! config.max_members = 1000; // the tables are reserved for this many
//! let mut server = Server::new(config, t0);
//! assert_eq!(load::register_waiting(&mut server, t0, 0..1000), 1000);
//! assert_eq!(server.members(), 1000);
//! assert!(server.heap_bytes() / 1000 <= 256);
//! ```
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::nat::{Filtering, Mapping, NatBehaviour, PortAllocation};
use crate::wire::{Msg, Register};
use crate::{Machine, Server};

/// The `i`-th synthetic client: one per IPv4 address (10.0.0.1 on), port 40000, so no two share a source IP
/// (the worst case for the per-IP table: every client behind its own NAT).
pub fn client(i: u32) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(0x0A00_0001 + i).into(), 40_000)
}

/// The nameplate synthetic client `i` registers in when every client waits alone: `i + 1` in decimal.
pub fn nameplate(i: u32) -> String {
    (i + 1).to_string()
}

/// A Register as `punch chat` sends it for a code: pool `pool`, a display name, a NAT behaviour, a CLIENT-ID, one
/// local IPv4 address, an RTT, a 33-byte SPAKE2 message, a LINK-KEY, `cookie`, and a MESSAGE-INTEGRITY.
pub fn register(i: u32, pool: &str, cookie: Vec<u8>) -> Vec<u8> {
    let tag = i.to_be_bytes();
    let link_key = [
        tag[0], tag[1], tag[2], tag[3], 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    let mut pake = vec![0x41; 33];
    pake[..4].copy_from_slice(&tag);
    let r = Register {
        name: "alice".into(),
        nat: NatBehaviour {
            behind_nat: Some(true),
            mapping: Some(Mapping::EndpointIndependent),
            filtering: Some(Filtering::AddressAndPortDependent),
            allocation: Some(PortAllocation::Preserved),
        },
        client_id: Some([tag[0], tag[1], tag[2], tag[3], 9, 9, 9, 9]),
        locals: vec![SocketAddr::new(
            Ipv4Addr::new(192, 168, 1, 23).into(),
            40_000,
        )],
        rtt: Some(Duration::from_micros(23_456)),
        pake: Some(pake),
        cookie: Some(cookie),
        link_key: Some(link_key),
        ..Register::new(
            [tag[0], tag[1], tag[2], tag[3], 7, 7, 7, 7, 7, 7, 7, 7],
            pool,
        )
    };
    Msg::Register(r).encode_with_integrity(&link_key)
}

/// Registers synthetic clients `range`, each alone in its own nameplate ([`nameplate`]), at `now`; drains what
/// the server sends and reports. Returns how many became members.
pub fn register_waiting(server: &mut Server, now: Instant, range: Range<u32>) -> usize {
    let listen = server.config().listen;
    let before = server.members();
    for i in range {
        let from = client(i);
        let cookie = server.cookie_for(from);
        server.handle_input(now, listen, from, &register(i, &nameplate(i), cookie));
        while server.poll_transmit().is_some() {}
        while server.poll_event().is_some() {}
    }
    server.members() - before
}
