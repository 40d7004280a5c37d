//! IPv6 in the simulator: the network model routes by address, whatever the family, so an IPv6 world is the
//! IPv4 one with other addresses. Two hosts with global IPv6 addresses behind stateful firewalls (no
//! translation, new inbound dropped: `NatConfig::udp_firewall`, plain or with Linux conntrack) and a server
//! on IPv6 go direct, to each other's IPv6 address (docs/STRATEGY.md, "IPv6 and dual stack").
//!
//! Dual-stack hosts (an IPv4 address behind an IPv4 NAT and a global IPv6 address behind a firewall, the
//! source chosen by the destination's family) are built by `Scenario::ipv6` and tested in `paths.rs`.
use std::net::SocketAddr;

use punch_core::secure::Code;
use punch_core::{Path, Peer, PeerConfig, PeerEvent, Server, ServerConfig};
use punch_sim::clock::{base_instant, ms, secs};
use punch_sim::{Host, LinkConfig, NatConfig, RealmId, World};

const SERVER: &str = "[2001:db8::1]:3478";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The direct address each side ends on (`None`: relay), after `secs(10)`.
fn run(seed: u64, firewall: NatConfig) -> [Option<SocketAddr>; 2] {
    let mut w = World::new(seed, base_instant());
    let link = LinkConfig::latency(ms(10));
    let t0 = w.clock().at(std::time::Duration::ZERO);
    let mut sc = ServerConfig::new(sa(SERVER));
    sc.seed = seed;
    let server = Server::new(sc, t0);
    w.add_host(
        "server",
        RealmId::PUBLIC,
        link.clone(),
        Host::new(server.local_addrs(), server),
    );
    let mut ids = vec![];
    for (i, (name, gw, addr)) in [
        ("a", "2001:db8:a::1", "[2001:db8:a::2]:5000"),
        ("b", "2001:db8:b::1", "[2001:db8:b::2]:6000"),
    ]
    .into_iter()
    .enumerate()
    {
        let (_, realm) = w.add_nat(
            &format!("fw-{name}"),
            RealmId::PUBLIC,
            gw.parse().unwrap(),
            firewall.clone(),
            link.clone(),
        );
        let mut pc = PeerConfig::new(sa(SERVER), Code::parse("7-guitar-revenge").unwrap());
        pc.name = name.into();
        pc.local_addrs = vec![sa(addr)];
        pc.seed = [seed as u8 ^ (i as u8 + 1); 32];
        let peer = Peer::new(pc, t0);
        ids.push(w.add_host(name, realm, link.clone(), Host::new(vec![sa(addr)], peer)));
    }
    w.run_until(secs(10)).expect("the world runs");
    [last_direct(&mut w, ids[0]), last_direct(&mut w, ids[1])]
}

/// The last path host `id` reported: its direct address, `None` on the relay (or no path at all).
fn last_direct(w: &mut World, id: punch_sim::HostId) -> Option<SocketAddr> {
    let host = w.host_mut::<Peer>(id).expect("a peer host");
    host.events.iter().rev().find_map(|(_, e)| match e {
        PeerEvent::Path { path, .. } => Some(match path {
            Path::Direct(a) => Some(*a),
            Path::Relay => None,
        }),
        _ => None,
    })?
}

#[test]
fn ipv6_hosts_behind_stateful_firewalls_go_direct() {
    for (label, fw) in [
        ("firewall", NatConfig::udp_firewall()),
        (
            "linux conntrack firewall",
            NatConfig::udp_firewall().linux(),
        ),
    ] {
        for seed in 0..10 {
            let [a, b] = run(seed, fw.clone());
            assert_eq!(a, Some(sa("[2001:db8:b::2]:6000")), "{label}, seed {seed}");
            assert_eq!(b, Some(sa("[2001:db8:a::2]:5000")), "{label}, seed {seed}");
        }
    }
}
