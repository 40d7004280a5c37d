//! The network model on its own, driven by tiny echo machines.
use punch_core::{Deadline, Machine};
use punch_sim::clock::{base_instant, ms, secs};
use punch_sim::nat::{NatConfig, PortAlloc};
use punch_sim::trace::Kind;
use punch_sim::{Detail, EchoNode, Host, HostId, LinkConfig, Nat, NatId, Profile, RealmId, World};
use std::net::SocketAddr;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const SERVER: &str = "198.51.100.1:3478";
const SERVER2: &str = "198.51.100.2:3478";

/// The 5 ms one-way link most of these worlds use.
fn link_5ms() -> LinkConfig {
    LinkConfig::latency(ms(5))
}

/// Adds an echo server `name` at the public address `addr`.
fn echo_server(w: &mut World, name: &str, addr: &str, link: LinkConfig) -> HostId {
    w.add_host(
        name,
        RealmId::PUBLIC,
        link,
        EchoNode::new(sa(addr)).hosted(),
    )
}

/// Adds a host `name` at `addr` in `realm` that sends only when told to.
fn silent_host(w: &mut World, name: &str, realm: RealmId, addr: &str, link: LinkConfig) -> HostId {
    w.add_host(name, realm, link, EchoNode::silent(sa(addr)).hosted())
}

/// Adds a NAT `name` on the public network with the public IP `ip`: the NAT and its inside realm.
fn add_nat(
    w: &mut World,
    name: &str,
    ip: &str,
    cfg: NatConfig,
    link: LinkConfig,
) -> (NatId, RealmId) {
    w.add_nat(name, RealmId::PUBLIC, ip.parse().unwrap(), cfg, link)
}

/// A world with two public echo servers and one host `a` behind a NAT with `profile`.
fn one_nat(seed: u64, profile: Profile) -> (World, HostId, Option<NatId>) {
    let mut w = World::new(seed, base_instant());
    echo_server(&mut w, "s1", SERVER, link_5ms());
    echo_server(&mut w, "s2", SERVER2, link_5ms());
    let (nat, realm) = match profile.config() {
        Some(cfg) => {
            let (n, r) = add_nat(&mut w, "nat-a", "203.0.113.10", cfg, link_5ms());
            (Some(n), r)
        }
        None => (None, RealmId::PUBLIC),
    };
    let addr = if profile.config().is_some_and(|c| c.translate) {
        "192.168.1.10:5000"
    } else {
        "198.51.100.50:5000"
    };
    let a = silent_host(&mut w, "a", realm, addr, link_5ms());
    (w, a, nat)
}

/// Who the echo node on `host` has heard from, in order.
fn senders(w: &mut World, host: HostId) -> Vec<SocketAddr> {
    w.machine_mut::<EchoNode>(host).unwrap().senders()
}

/// The same for the host called `name`.
fn senders_of(w: &mut World, name: &str) -> Vec<SocketAddr> {
    let host = w.host(name).unwrap();
    senders(w, host)
}

/// The trace lines of one kind, rendered.
fn lines_of(w: &World, kind: Kind) -> Vec<String> {
    w.trace()
        .lines()
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.to_string())
        .collect()
}

fn send(w: &mut World, host: HostId, at: std::time::Duration, to: &str) {
    let to = sa(to);
    w.schedule(
        at,
        host,
        format!("send to {to}"),
        move |h: &mut Host<EchoNode>, _| h.machine_mut().unwrap().send_to(to, b"hi"),
    );
}

#[test]
fn round_trip_through_a_cone_nat_takes_the_sum_of_link_latencies() {
    let (mut w, a, _) = one_nat(1, Nat::PortRestricted.into());
    send(&mut w, a, ms(0), SERVER);
    w.run_until(secs(1)).unwrap();
    let s1 = w.host("s1").unwrap();
    assert_eq!(senders(&mut w, s1), vec![sa("203.0.113.10:5000")]);
    let base = w.clock().at(ms(0));
    let node = w.machine_mut::<EchoNode>(a).unwrap();
    assert_eq!(node.received.len(), 1);
    // a up, nat up, s1 down = 15 ms; and back = 30 ms.
    assert_eq!(node.received[0].0 - base, ms(30));
    let trace = w.trace().to_string();
    assert!(
        trace.contains("new mapping 192.168.1.10:5000 -> 203.0.113.10:5000"),
        "{trace}"
    );
}

#[test]
fn symmetric_nat_uses_a_new_port_per_destination_cone_does_not() {
    for (profile, same) in [
        (Profile::from(Nat::FullCone), true),
        (Nat::Symmetric.into(), false),
        (Nat::SymmetricSeq.into(), false),
    ] {
        let (mut w, a, _) = one_nat(2, profile);
        send(&mut w, a, ms(0), SERVER);
        send(&mut w, a, ms(1), SERVER2);
        w.run_until(secs(1)).unwrap();
        let p1 = senders_of(&mut w, "s1")[0];
        let p2 = senders_of(&mut w, "s2")[0];
        assert_eq!(p1 == p2, same, "{profile}: {p1} {p2}");
        if profile.nat == Nat::SymmetricSeq {
            assert_eq!(p2.port(), p1.port() + 1);
        }
    }
}

#[test]
fn unsolicited_inbound_is_dropped_with_a_reason() {
    let (mut w, a, _) = one_nat(3, Nat::PortRestricted.into());
    send(&mut w, a, ms(0), SERVER);
    // s2 was never contacted: its packet to a's mapping is filtered.
    let s2 = w.host("s2").unwrap();
    send(&mut w, s2, ms(100), "203.0.113.10:5000");
    send(&mut w, s2, ms(100), "203.0.113.10:6000");
    w.run_until(secs(1)).unwrap();
    let drops: Vec<String> = lines_of(&w, Kind::Drop);
    assert_eq!(drops.len(), 2, "{drops:?}");
    assert!(
        drops[0].contains("nat-a")
            && drops[0]
                .contains("filtered (APDF): 192.168.1.10:5000 has not sent to 198.51.100.2:3478"),
        "{}",
        drops[0]
    );
    assert!(
        drops[1].contains("no mapping for 203.0.113.10:6000"),
        "{}",
        drops[1]
    );
    // The echo server's reply to s2's packet never happens, but a itself got nothing from s2.
    assert_eq!(senders(&mut w, a), vec![sa(SERVER)]);
}

#[test]
fn public_and_firewalled_hosts() {
    let (mut w, a, _) = one_nat(4, Nat::Open.into());
    let s2 = w.host("s2").unwrap();
    send(&mut w, s2, ms(0), "198.51.100.50:5000");
    w.run_until(secs(1)).unwrap();
    assert_eq!(senders(&mut w, a), vec![sa(SERVER2)]);

    let (mut w, a, _) = one_nat(4, Nat::UdpFirewall.into());
    send(&mut w, a, ms(0), SERVER);
    let s2 = w.host("s2").unwrap();
    send(&mut w, s2, ms(100), "198.51.100.50:5000");
    w.run_until(secs(1)).unwrap();
    assert_eq!(senders_of(&mut w, "s1"), vec![sa("198.51.100.50:5000")]);
    assert_eq!(senders(&mut w, a), vec![sa(SERVER)]);
    assert!(w.trace().to_string().contains("filtered (APDF)"));
}

#[test]
fn linux_conntrack_with_start_skew_moves_the_late_side_to_a_new_port() {
    // Two peers behind port-restricted Linux routers. b probes a's public address before a has sent
    // anything to b: a's router records an unreplied entry, so a's first packet to b leaves from a new port.
    let mut w = World::new(5, base_instant());
    echo_server(&mut w, "s1", SERVER, link_5ms());
    let cfg = Profile::from(Nat::PortRestricted).linux().config().unwrap();
    let (_, ra) = add_nat(&mut w, "nat-a", "203.0.113.10", cfg.clone(), link_5ms());
    let (_, rb) = add_nat(&mut w, "nat-b", "203.0.113.20", cfg, link_5ms());
    let a = silent_host(&mut w, "a", ra, "192.168.1.10:5000", link_5ms());
    let b = silent_host(&mut w, "b", rb, "192.168.2.10:6000", link_5ms());
    send(&mut w, a, ms(0), SERVER);
    send(&mut w, b, ms(0), SERVER);
    send(&mut w, b, ms(100), "203.0.113.10:5000"); // early probe, filtered at nat-a
    send(&mut w, a, ms(300), "203.0.113.20:6000"); // a's first packet to b: from a new port, so nat-b filters it
    send(&mut w, b, ms(500), "203.0.113.10:5000"); // still the reserved tuple: dropped
    w.run_until(secs(1)).unwrap();
    assert_eq!(senders(&mut w, b), vec![sa(SERVER)]);
    let t = w.trace().to_string();
    let new_port = w
        .nat_mut(punch_sim::NatId(1))
        .mapping_for(sa("192.168.1.10:5000"), sa("203.0.113.20:6000"))
        .unwrap();
    assert_ne!(new_port, sa("203.0.113.10:5000"));
    assert!(
        t.contains(&format!("192.168.2.10:6000 has not sent to {new_port}")),
        "{t}"
    );
    assert!(
        t.contains("conntrack: unreplied entry 203.0.113.20:6000 -> 203.0.113.10:5000"),
        "{t}"
    );
    assert!(t.contains("conntrack clash"), "{t}");
    assert_eq!(senders(&mut w, a), vec![sa(SERVER)]);
}

#[test]
fn hairpinning_on_and_off() {
    for hairpin in [true, false] {
        let mut w = World::new(6, base_instant());
        echo_server(&mut w, "s1", SERVER, link_5ms());
        let cfg = Profile::from(Nat::FullCone)
            .config()
            .unwrap()
            .with_hairpin(hairpin);
        let (_, r) = add_nat(&mut w, "nat", "203.0.113.10", cfg, LinkConfig::ideal());
        let a = silent_host(
            &mut w,
            "a",
            r,
            "192.168.1.10:5000",
            LinkConfig::latency(ms(1)),
        );
        let b = silent_host(
            &mut w,
            "b",
            r,
            "192.168.1.11:6000",
            LinkConfig::latency(ms(1)),
        );
        send(&mut w, b, ms(0), SERVER);
        send(&mut w, a, ms(100), "203.0.113.10:6000");
        send(&mut w, a, ms(100), "192.168.1.11:6000"); // LAN: always works
        w.run_until(secs(1)).unwrap();
        let got = senders(&mut w, b);
        let expect = if hairpin {
            vec![sa(SERVER), sa("203.0.113.10:5000"), sa("192.168.1.10:5000")]
        } else {
            vec![sa(SERVER), sa("192.168.1.10:5000")]
        };
        assert_eq!(got, expect, "hairpin {hairpin}");
    }
}

#[test]
fn mapping_expires_without_keepalives_and_survives_with_them() {
    for keepalive in [None, Some(secs(10))] {
        let mut w = World::new(7, base_instant());
        echo_server(&mut w, "s1", SERVER, LinkConfig::ideal());
        let cfg = NatConfig::new(
            punch_core::nat::Mapping::EndpointIndependent,
            punch_core::nat::Filtering::AddressAndPortDependent,
            PortAlloc::Random,
        )
        .with_lifetime(secs(30));
        let (_, r) = add_nat(&mut w, "nat", "203.0.113.10", cfg, LinkConfig::ideal());
        let mut node = EchoNode::silent(sa("192.168.1.10:5000"));
        if let Some(every) = keepalive {
            node.send_every(w.clock().at(ms(0)), every, sa(SERVER), b"ka");
        }
        let a = w.add_host("a", r, LinkConfig::ideal(), node.hosted());
        send(&mut w, a, ms(0), SERVER);
        w.run_until(secs(100)).unwrap();
        let s1 = w.host("s1").unwrap();
        send(&mut w, a, secs(100), SERVER);
        w.run_until(secs(101)).unwrap();
        let ports: std::collections::BTreeSet<u16> =
            senders(&mut w, s1).iter().map(|s| s.port()).collect();
        assert_eq!(
            ports.len(),
            if keepalive.is_some() { 1 } else { 2 },
            "{keepalive:?}"
        );
        if keepalive.is_none() {
            assert!(w.trace().to_string().contains("expired at 30000.000ms"));
        }
    }
}

#[test]
fn link_down_window_partition_and_no_route() {
    let (mut w, a, _) = one_nat(8, Nat::FullCone.into());
    w.link_mut("a").unwrap().down.push((ms(0), ms(50)));
    w.partition(&["nat-a"], &["s2"], ms(0), secs(10));
    send(&mut w, a, ms(10), SERVER); // link down
    send(&mut w, a, ms(60), SERVER); // ok
    send(&mut w, a, ms(70), SERVER2); // partition
    send(&mut w, a, ms(80), "198.51.100.99:1"); // nobody there
    w.run_until(secs(1)).unwrap();
    let t = w.trace().to_string();
    assert!(t.contains("link down (a up)"), "{t}");
    assert!(t.contains("partition between nat-a and s2"), "{t}");
    assert!(
        t.contains("internet") && t.contains("no route to 198.51.100.99:1"),
        "{t}"
    );
    assert_eq!(senders(&mut w, a), vec![sa(SERVER)]);
}

#[test]
fn nat_flush_forgets_mappings() {
    let (mut w, a, nat) = one_nat(9, Nat::Symmetric.into());
    send(&mut w, a, ms(0), SERVER);
    w.flush_nat_at(ms(100), nat.unwrap());
    send(&mut w, a, ms(200), SERVER);
    w.run_until(secs(1)).unwrap();
    let s = senders_of(&mut w, "s1");
    assert_eq!(s.len(), 2);
    assert_ne!(s[0], s[1]);
    assert!(w
        .trace()
        .to_string()
        .contains("flushed: 1 mappings forgotten"));
}

fn lossy_run(seed: u64) -> String {
    let mut w = World::new(seed, base_instant());
    let link = LinkConfig::latency(ms(10))
        .with_jitter(ms(8))
        .with_loss(0.2)
        .with_duplicate(0.1)
        .with_reorder(0.1, ms(30));
    echo_server(&mut w, "s1", SERVER, link.clone());
    let (_, r) = add_nat(
        &mut w,
        "nat",
        "203.0.113.10",
        Profile::from(Nat::Symmetric).config().unwrap(),
        link.clone(),
    );
    let mut node = EchoNode::silent(sa("192.168.1.10:5000"));
    node.send_every(w.clock().at(ms(0)), ms(7), sa(SERVER), b"x");
    w.add_host("a", r, link, node.hosted());
    w.run_until(secs(2)).unwrap();
    w.trace().to_string()
}

/// An echo server `s1` and a silent host `a` (198.51.100.9:1), both public, on ideal links.
fn two_public_hosts(detail: Detail) -> (World, HostId, HostId) {
    let mut w = World::new(1, base_instant());
    w.set_detail(detail);
    let s1 = echo_server(&mut w, "s1", SERVER, LinkConfig::ideal());
    let a = silent_host(
        &mut w,
        "a",
        RealmId::PUBLIC,
        "198.51.100.9:1",
        LinkConfig::ideal(),
    );
    (w, s1, a)
}

/// Production sends a transmit with an unknown `source` on socket 0; in the simulator it is an error: not
/// sent, counted, and a trace line of kind error (kept at every detail level but `Off`).
#[test]
fn a_transmit_from_a_socket_the_host_does_not_own_is_an_error() {
    let (mut w, s1, a) = two_public_hosts(Detail::Events);
    w.schedule(
        ms(1),
        a,
        "send from a foreign socket",
        move |h: &mut Host<EchoNode>, _| {
            h.machine_mut()
                .unwrap()
                .send_from(sa("198.51.100.9:2"), sa(SERVER), b"hi")
        },
    );
    send(&mut w, a, ms(2), SERVER);
    w.run_until(secs(1)).unwrap();
    let stats = w.stats();
    assert_eq!((stats.unknown_source, stats.sent, stats.dropped), (1, 2, 0));
    let errors: Vec<String> = lines_of(&w, Kind::Error);
    assert_eq!(
        errors,
        ["     1.000ms  error  a      transmit to 198.51.100.1:3478 from unknown source socket 198.51.100.9:2: not sent"]
    );
    // Only the well-addressed datagram arrived (and was echoed).
    assert_eq!(senders(&mut w, s1), vec![sa("198.51.100.9:1")]);
}

#[test]
fn timer_lines_carry_the_deadline_reason() {
    let t = lossy_run(7);
    assert!(t.contains("timer  a      periodic send"), "{t}");
}

#[test]
fn same_seed_same_trace_different_seed_different_trace() {
    let a = lossy_run(42);
    assert_eq!(a, lossy_run(42));
    assert_ne!(a, lossy_run(43));
    for needle in ["link loss", "duplicated", "recv"] {
        assert!(a.contains(needle), "{needle}");
    }
}

#[test]
fn detail_levels_filter_lines() {
    let (mut w, _, a) = two_public_hosts(Detail::Events);
    send(&mut w, a, ms(0), SERVER);
    w.run_until(secs(1)).unwrap();
    let t = w.trace().to_string();
    assert!(
        w.trace().lines().iter().all(|l| l.kind != Kind::Send),
        "{t}"
    );
    assert!(t.contains("event"), "{t}");
}

/// A machine whose timeout never moves forward.
struct Stuck(std::time::Instant);
impl Machine for Stuck {
    type Event = String;
    fn handle_input(&mut self, _: std::time::Instant, _: SocketAddr, _: SocketAddr, _: &[u8]) {}
    fn handle_timeout(&mut self, _: std::time::Instant) {}
    fn poll_transmit(&mut self) -> Option<punch_core::Transmit> {
        None
    }
    fn poll_deadline(&self) -> Option<Deadline> {
        Some(Deadline {
            at: self.0,
            reason: "stuck",
        })
    }
    fn poll_event(&mut self) -> Option<String> {
        None
    }
}

#[test]
fn a_machine_that_never_lets_time_advance_is_an_error_not_a_hang() {
    let mut w = World::new(1, base_instant());
    let t = w.clock().at(ms(5));
    w.add_host(
        "stuck",
        RealmId::PUBLIC,
        LinkConfig::ideal(),
        Host::new(vec![sa("198.51.100.9:1")], Stuck(t)),
    );
    let e = w.run_until(secs(1)).unwrap_err();
    assert!(e.message.contains("without virtual time advancing"), "{e}");
    assert_eq!(e.at, ms(5));
}
