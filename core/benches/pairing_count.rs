//! The in-core pairing loop alone, for instruction counts and profiles (criterion's `server/pairing` measures
//! the same loop but also runs its own analysis in the same process, which a profiler would count).
//!
//! ```text
//! cargo bench -p punch-core --bench pairing_count                # ns per pairing, best of 5 rounds, both servers
//! PAIRING_ROUNDS=1 PAIRING_MODE=steady valgrind --tool=callgrind --toggle-collect='*pair_all*' \
//!     target/release/deps/pairing_count-<hash> 20000
//! ```
//! The argument is the number of pairings per round (default 200,000). Two servers are measured:
//!
//! * **fresh**: a new server, empty tables: the round pays for growing every table (rehashing, slab copies,
//!   page faults) as well as for the pairings.
//! * **steady**: a server already at its size: it paired the same clients once (every PeerInfo acknowledged),
//!   they expired (`member_timeout` 1 s, a sweep at +1 s, outside the clock), and the measured round pairs
//!   them again at +1 s (same addresses, nameplates and cookies, the cookies still of the current bucket).
//!   Its tables keep their capacity, so the round measures the pairings and not the growth; it is the cost a
//!   long-running server pays. (The per-IP entries exist already, as they do for returning clients.)
//!
//! `PAIRING_MODE=fresh` or `steady` runs only one of them. Under callgrind, `Ir` divided by the pairings of
//! one round (callgrind collects only inside `pair_all`; run one mode with one round: `PAIRING_ROUNDS=1`) is
//! the instructions per pairing.
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use punch_core::wire::Msg;
use punch_core::{load, Machine, Server, ServerConfig};

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

/// Every Register of one round, encoded (with valid cookies) before the clock starts.
fn messages(server: &Server, n: u32) -> Vec<(SocketAddr, Vec<u8>)> {
    (0..2 * n)
        .map(|i| {
            let from = load::client(i);
            let pool = load::nameplate(i / 2);
            (from, load::register(i, &pool, server.cookie_for(from)))
        })
        .collect()
}

/// Hands every Register to the server and drains what it sends and reports: the measured part.
#[inline(never)]
fn pair_all(server: &mut Server, now: Instant, msgs: &[(SocketAddr, Vec<u8>)]) {
    let listen = server.config().listen;
    for (from, msg) in msgs {
        server.handle_input(now, listen, *from, msg);
        while let Some(t) = server.poll_transmit() {
            black_box(t);
        }
        while let Some(e) = server.poll_event() {
            black_box(e);
        }
    }
}

/// The steady server's first life (not measured): the same Registers, every PeerInfo acknowledged as a
/// peer would, then every member expired.
#[inline(never)]
fn warm_up(server: &mut Server, now: Instant, msgs: &[(SocketAddr, Vec<u8>)]) {
    let listen = server.config().listen;
    let mut acks = Vec::new();
    for (from, msg) in msgs {
        server.handle_input(now, listen, *from, msg);
        while let Some(t) = server.poll_transmit() {
            if t.payload.get(..2) == Some(&[0x00, 0x0E]) {
                let tid: [u8; 12] = t.payload[8..20].try_into().unwrap();
                acks.push((t.destination, Msg::PeerInfoAck { tid }.encode()));
            }
        }
        for (to, ack) in acks.drain(..) {
            server.handle_input(now, listen, to, &ack);
        }
        while server.poll_event().is_some() {}
    }
    let later = now + server.config().member_timeout;
    server.handle_timeout(later);
    while server.poll_transmit().is_some() {}
    while server.poll_event().is_some() {}
    assert_eq!(server.members(), 0, "every member expired");
}

/// The best of `rounds` rounds, in ns per pairing.
fn measure(rounds: u32, n: u32, steady: bool, config: impl Fn() -> ServerConfig) -> f64 {
    // Encoded once: every round's server has the same secret (from the same seed) and runs in its first
    // cookie bucket, so the cookies stay valid (and a profile of the whole process is mostly the server's).
    let msgs = messages(&Server::new(config(), epoch()), n);
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let t0 = epoch();
        let mut server = Server::new(config(), t0);
        let mut now = t0;
        if steady {
            warm_up(&mut server, t0, &msgs);
            now = t0 + server.config().member_timeout;
        }
        let before = server.stats().pairs;
        let start = epoch();
        pair_all(&mut server, now, &msgs);
        best = best.min(start.elapsed());
        assert_eq!(server.stats().pairs - before, u64::from(n));
    }
    best.as_nanos() as f64 / f64::from(n)
}

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let rounds: u32 = std::env::var("PAIRING_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let mode = std::env::var("PAIRING_MODE").unwrap_or_default();
    let listen: SocketAddr = "203.0.113.1:3478".parse().unwrap();
    let config = || {
        let mut config = ServerConfig::new(listen);
        let r = punch_core::Rate::new(u32::MAX, u32::MAX);
        config.register_rate = r;
        config.max_members = 2 * n as usize;
        // The steady server's warm-up members expire 1 s after they paired (still in the first cookie bucket).
        config.member_timeout = Duration::from_secs(1);
        config
    };
    for (name, steady) in [("fresh", false), ("steady", true)] {
        if !mode.is_empty() && mode != name {
            continue;
        }
        let ns = measure(rounds, n, steady, config);
        println!(
            "pairing_count {name:>6}: {n} pairings a round, best of {rounds}: {ns:.0} ns per pairing ({:.0} pairings/s)",
            1e9 / ns
        );
    }
}
