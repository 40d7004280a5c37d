//! Random and mutated datagrams into the server and the peer, in every phase: never a panic, and the
//! machines keep their promises (no stale deadline).
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use punch_core::Machine;
use punch_core::{Peer, PeerConfig};
use punch_core::{Server, ServerConfig};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

/// Valid messages of every kind, captured from a real exchange, to mutate.
fn corpus() -> Vec<Vec<u8>> {
    let t0 = epoch();
    let srv = addr("203.0.113.1:3478");
    let mut server = Server::new(ServerConfig::new(srv), t0);
    let mut out = Vec::new();
    let mut peers: Vec<(SocketAddr, Peer)> = ["198.51.100.1:1000", "198.51.100.2:2000"]
        .iter()
        .map(|a| {
            let mut c = PeerConfig::new(srv, "1-fuzz-code".parse().unwrap());
            c.seed = [a.len() as u8; 32];
            (addr(a), Peer::new(c, t0))
        })
        .collect();
    let mut now = t0;
    for _ in 0..50 {
        now += Duration::from_millis(5);
        let mut packets = Vec::new();
        for (a, p) in peers.iter_mut() {
            p.handle_timeout(now);
            let _ = p.send_message(now, "hello");
            while let Some(t) = p.poll_transmit() {
                packets.push((*a, t.destination, t.payload));
            }
        }
        server.handle_timeout(now);
        while let Some(t) = server.poll_transmit() {
            packets.push((srv, t.destination, t.payload));
        }
        for (from, to, payload) in packets {
            out.push(payload.clone());
            if to == srv {
                server.handle_input(now, srv, from, &payload);
            } else if let Some((_, p)) = peers.iter_mut().find(|(a, _)| *a == to) {
                p.handle_input(now, to, from, &payload);
            }
        }
    }
    out
}

fn check<M: Machine>(m: &mut M, now: Instant) {
    while m.poll_transmit().is_some() {}
    while m.poll_event().is_some() {}
    m.handle_timeout(now);
    while m.poll_transmit().is_some() {}
    if let Some(t) = m.poll_timeout() {
        assert!(t > now, "stale deadline");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1600), from_port in any::<u16>()) {
        let t0 = epoch();
        let srv = addr("203.0.113.1:3478");
        let from = SocketAddr::new("198.51.100.9".parse().unwrap(), from_port);
        let mut server = Server::new(ServerConfig::new(srv), t0);
        server.handle_input(t0, srv, from, &data);
        check(&mut server, t0);
        let mut peer = Peer::new(PeerConfig::new(srv, "1-fuzz-code".parse().unwrap()), t0);
        peer.handle_input(t0, addr("10.0.0.1:1"), srv, &data);
        peer.handle_input(t0, addr("10.0.0.1:1"), from, &data);
        check(&mut peer, t0);
    }

    #[test]
    fn mutated_valid_messages_never_panic(pick in any::<prop::sample::Index>(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let corpus = corpus();
        let mut data = corpus[pick.index(corpus.len())].clone();
        for (i, b) in flips {
            let n = data.len();
            data[i.index(n)] ^= b;
        }
        let keep = cut.index(data.len() + 1);
        let t0 = epoch();
        let srv = addr("203.0.113.1:3478");
        let from = addr("198.51.100.1:1000");
        for d in [&data[..], &data[..keep]] {
            let mut server = Server::new(ServerConfig::new(srv), t0);
            server.handle_input(t0, srv, from, d);
            check(&mut server, t0);
            let mut peer = Peer::new(PeerConfig::new(srv, "1-fuzz-code".parse().unwrap()), t0);
            peer.handle_input(t0, from, srv, d);
            check(&mut peer, t0);
        }
    }
}
