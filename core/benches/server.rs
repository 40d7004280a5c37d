//! Server hot paths: answering Binding requests, forwarding relay data between a paired couple, and pairing two
//! registrations.
//! Run: `cargo bench -p punch-core --bench server`.
use punch_core::Machine;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use punch_core::{Peer, PeerConfig};
use punch_core::{Server, ServerConfig};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

/// A server whose per-IP rates do not apply: the benches send everything from one or two addresses, and a
/// rate-limited datagram is only a cheap drop (the binding bench measured that drop, and the relay bench
/// panicked once the relay burst was spent).
fn unlimited(srv: SocketAddr) -> ServerConfig {
    let mut c = ServerConfig::new(srv);
    let r = punch_core::Rate::new(u32::MAX, u32::MAX);
    c.binding_rate = r;
    c.register_rate = r;
    c.relay_packet_rate = r;
    c.relay_byte_rate = r;
    c
}

fn binding(c: &mut Criterion) {
    let srv = addr("203.0.113.1:3478");
    let t0 = epoch();
    let mut server = Server::new(unlimited(srv), t0);
    // A real Binding request, as the peer sends it.
    let mut peer = Peer::new(PeerConfig::new(srv, "1-fuzz-code".parse().unwrap()), t0);
    let req = peer.poll_transmit().unwrap().payload;
    let from = addr("198.51.100.1:4000");
    let mut g = c.benchmark_group("server");
    g.throughput(Throughput::Elements(1));
    g.bench_function("binding_request", |b| {
        b.iter(|| {
            server.handle_input(t0, srv, from, black_box(&req));
            black_box(server.poll_transmit());
            while server.poll_event().is_some() {}
        })
    });
    g.finish();
}

fn relay(c: &mut Criterion) {
    let srv = addr("203.0.113.1:3478");
    let t0 = epoch();
    let mut server = Server::new(unlimited(srv), t0);
    let (a, b) = (addr("198.51.100.1:4000"), addr("198.51.100.2:4000"));
    let mut peers: Vec<(SocketAddr, Peer)> = [a, b]
        .into_iter()
        .enumerate()
        .map(|(i, at)| {
            let mut c = PeerConfig::new(srv, "1-fuzz-code".parse().unwrap());
            c.relay_only = true;
            // Distinct seeds: the same seed gives the same CLIENT-ID, and the server takes the second peer
            // for the first one moving (the bench panicked with "A relayed a message").
            c.seed = [i as u8 + 1; 32];
            (at, Peer::new(c, t0))
        })
        .collect();
    // Run the exchange until both are paired on the relay, capturing one relayed DATA datagram from A.
    let mut now = t0;
    let mut relayed = None;
    for i in 0..200 {
        now += Duration::from_millis(1);
        if i == 100 {
            peers[0]
                .1
                .send_message(now, "a message of typical length, say sixty bytes..")
                .unwrap();
        }
        let mut packets = Vec::new();
        for (at, p) in peers.iter_mut() {
            p.handle_timeout(now);
            while let Some(t) = p.poll_transmit() {
                // The chat frame A relays once the message is queued (sealed since end-to-end encryption:
                // `describe` no longer shows DATA, and the bench panicked looking for it).
                if *at == a
                    && i >= 100
                    && t.destination == srv
                    && punch_core::wire::describe(&t.payload).contains("Relay indication")
                {
                    relayed.get_or_insert(t.payload.clone());
                }
                packets.push((*at, t.destination, t.payload));
            }
        }
        server.handle_timeout(now);
        while let Some(t) = server.poll_transmit() {
            packets.push((srv, t.destination, t.payload));
        }
        for (from, to, payload) in packets {
            if to == srv {
                server.handle_input(now, srv, from, &payload);
            } else if let Some((_, p)) = peers.iter_mut().find(|(x, _)| *x == to) {
                p.handle_input(now, to, from, &payload);
            }
        }
    }
    let data = relayed.expect("A relayed a message");
    while server.poll_transmit().is_some() {}
    let mut g = c.benchmark_group("server");
    g.throughput(Throughput::Elements(1));
    g.bench_function("relay_forward", |bch| {
        bch.iter(|| {
            server.handle_input(now, srv, a, black_box(&data));
            black_box(server.poll_transmit().expect("forwarded"));
        })
    });
    g.finish();
}

/// In-core pairing: two clients register in the same nameplate (with cookies, as `punch chat` sends its
/// Register: `punch_core::load::register`), and both are sent PeerInfo. One element = one pairing = two
/// Registers in, two RegisterOks and two PeerInfos out; the Registers are encoded before the clock starts.
///
/// * `server/pairing`: each sample starts from a fresh server (the sample also pays for growing its tables).
/// * `server/pairing_steady`: each sample's server paired the same clients once before (PeerInfos
///   acknowledged), they expired, and the measured pass pairs them again: tables at their size, as in a
///   long-running server (see `benches/pairing_count.rs`).
fn pairing(c: &mut Criterion) {
    let mut g = c.benchmark_group("server");
    g.throughput(Throughput::Elements(1));
    for (name, steady) in [("pairing", false), ("pairing_steady", true)] {
        g.bench_function(name, |b| b.iter_custom(|iters| pair_round(iters, steady)));
    }
    g.finish();
}

/// One sample of [`pairing`]: `iters` pairings, on a fresh or a warmed-up server.
fn pair_round(iters: u64, steady: bool) -> Duration {
    use punch_core::{load, wire::Msg};
    let srv = addr("203.0.113.1:3478");
    let t0 = epoch();
    let mut config = unlimited(srv);
    config.max_members = (2 * iters as usize).max(1);
    config.member_timeout = Duration::from_secs(1);
    let mut server = Server::new(config, t0);
    let n = iters as u32;
    let msgs: Vec<(SocketAddr, Vec<u8>)> = (0..2 * n)
        .map(|i| {
            let from = load::client(i);
            let pool = load::nameplate(i / 2);
            (from, load::register(i, &pool, server.cookie_for(from)))
        })
        .collect();
    let mut now = t0;
    if steady {
        // The first life: every PeerInfo acknowledged, then every member expired.
        for (from, msg) in &msgs {
            server.handle_input(t0, srv, *from, msg);
            let mut acks = Vec::new();
            while let Some(t) = server.poll_transmit() {
                if t.payload.get(..2) == Some(&[0x00, 0x0E]) {
                    let tid: [u8; 12] = t.payload[8..20].try_into().unwrap();
                    acks.push((t.destination, Msg::PeerInfoAck { tid }.encode()));
                }
            }
            for (to, ack) in acks {
                server.handle_input(t0, srv, to, &ack);
            }
            while server.poll_event().is_some() {}
        }
        now = t0 + Duration::from_secs(1);
        server.handle_timeout(now);
        while server.poll_transmit().is_some() {}
        while server.poll_event().is_some() {}
        assert_eq!(server.members(), 0);
    }
    let before = server.stats().pairs;
    let start = epoch();
    for (from, msg) in &msgs {
        server.handle_input(now, srv, *from, msg);
        while let Some(t) = server.poll_transmit() {
            black_box(t);
        }
        while server.poll_event().is_some() {}
    }
    let spent = start.elapsed();
    assert_eq!(server.stats().pairs - before, iters);
    spent
}

criterion_group!(benches, binding, relay, pairing);
criterion_main!(benches);
