//! The in-core pairing loop alone, for instruction counts and profiles (criterion's `server/pairing` measures
//! the same loop but also runs its own analysis in the same process, which a profiler would count).
//!
//! ```text
//! cargo bench -p punch-core --bench pairing_count                # ns per pairing, best of 5 rounds
//! valgrind --tool=callgrind --toggle-collect='*pair_all*' target/release/deps/pairing_count-<hash> 20000
//! ```
//! The argument is the number of pairings per round (default 200,000). Under callgrind, `Ir` divided by the
//! pairings of one round (callgrind collects only inside `pair_all`; run with one round: `PAIRING_ROUNDS=1`)
//! is the instructions per pairing.
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

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

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let rounds: u32 = std::env::var("PAIRING_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let listen: SocketAddr = "203.0.113.1:3478".parse().unwrap();
    let config = || {
        let mut config = ServerConfig::new(listen);
        let r = punch_core::Rate::new(u32::MAX, u32::MAX);
        config.register_rate = r;
        config.max_members = 2 * n as usize;
        config
    };
    // Encoded once: every round's server has the same secret (from the same seed) and runs in its first
    // cookie bucket, so the cookies stay valid (and a profile of the whole process is mostly the server's).
    let msgs = messages(&Server::new(config(), epoch()), n);
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let t0 = epoch();
        let mut server = Server::new(config(), t0);
        let start = epoch();
        pair_all(&mut server, t0, &msgs);
        best = best.min(start.elapsed());
        assert_eq!(server.stats().pairs, u64::from(n));
    }
    let ns = best.as_nanos() as f64 / f64::from(n);
    println!(
        "pairing_count: {n} pairings a round, best of {rounds}: {ns:.0} ns per pairing ({:.0} pairings/s)",
        1e9 / ns
    );
}
