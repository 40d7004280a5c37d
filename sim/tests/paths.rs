//! Which path each neighbourhood case takes (docs/STRATEGY.md, "Which path each case takes"): dual-stack
//! hosts, two hosts behind one NAT with hairpinning on and off, and a NAT rebinding one socket mid-chat.
//! Every line arrives exactly once and in order in every case; the path is the one the case allows.
//! `punch sim matrix --paths` runs the same cases over many seeds (`punch_sim::paths`).
use std::net::SocketAddr;

use punch_sim::{ms, secs, Detail, Nat, NatConfig, Outcome, PathKind, Profile, Scenario};

/// Both users type a line a second for 10 s (b half a second after a).
fn chat(mut s: Scenario) -> Scenario {
    for i in 0..10 {
        s = s.type_at("a", secs(i), &format!("a{i}")).type_at(
            "b",
            secs(i) + ms(500),
            &format!("b{i}"),
        );
    }
    s.until(secs(90)).detail(Detail::Events)
}

fn delivered(o: &Outcome, label: &str) {
    o.exactly_once_in_order()
        .unwrap_or_else(|e| panic!("{label}: {e}\n{}", o.summary()));
}

/// Both peers' direct addresses at the end (panics on the relay).
fn direct(o: &Outcome, label: &str) -> [SocketAddr; 2] {
    assert_eq!(o.path(), PathKind::Direct, "{label}\n{}", o.summary());
    [o.peer("a"), o.peer("b")].map(|p| p.direct_addr.expect("a direct address"))
}

fn fw6() -> [(&'static str, Option<NatConfig>); 3] {
    [
        ("no IPv6 firewall", None),
        ("IPv6 stateful firewall", Some(NatConfig::udp_firewall())),
        (
            "IPv6 Linux conntrack firewall",
            Some(NatConfig::udp_firewall().linux()),
        ),
    ]
}

/// The lab's `up6`: symmetric IPv4 NATs (no IPv4 path but the relay) and global IPv6 behind firewalls.
#[test]
fn dual_stack_hosts_behind_symmetric_ipv4_nats_go_direct_over_ipv6() {
    for (fw_label, fw) in fw6() {
        for nat in [Nat::Symmetric, Nat::SymmetricSeq] {
            for seed in 0..10 {
                let label = format!("{fw_label}, {nat:?}, seed {seed}");
                let o = chat(
                    Scenario::new(seed)
                        .host("a", Profile::from(nat).linux())
                        .ipv6("a", fw.clone())
                        .host("b", nat)
                        .ipv6("b", fw.clone()),
                )
                .run();
                delivered(&o, &label);
                let [a, b] = direct(&o, &label);
                assert_eq!(a, "[2001:db8:2::10]:6000".parse().unwrap(), "{label}");
                assert_eq!(b, "[2001:db8:1::10]:5000".parse().unwrap(), "{label}");
            }
        }
    }
}

/// A dual-stack peer registers over IPv6 and asks the server over IPv4 too (`server_other_family`): it
/// announces its public IPv4 address, so an IPv4-only partner pings it, and the pair goes direct over IPv4
/// wherever the IPv4 NATs allow: a symmetric IPv4 NAT on the dual-stack side maps the partner elsewhere than
/// the server, which only a port-restricted partner's filter refuses, and a symmetric IPv4-only partner is
/// out of reach; the relay carries those chats (across the server's two families). Without the second Binding, only partners behind a full cone
/// or no NAT went direct.
#[test]
fn dual_stack_with_an_ipv4_only_partner() {
    for (v4only, cone_expected) in [
        (Nat::Open, PathKind::Direct),
        (Nat::FullCone, PathKind::Direct),
        (Nat::Restricted, PathKind::Direct),
        (Nat::PortRestricted, PathKind::Direct),
        (Nat::Symmetric, PathKind::Relay),
    ] {
        for ds in [Nat::FullCone, Nat::PortRestricted, Nat::Symmetric] {
            let expected = match ds {
                Nat::Symmetric if v4only == Nat::PortRestricted => PathKind::Relay,
                _ => cone_expected,
            };
            for seed in 0..5 {
                let label = format!("dual-stack {ds:?} x IPv4-only {v4only:?}, seed {seed}");
                let o = chat(
                    Scenario::new(seed)
                        .host("a", ds)
                        .ipv6("a", Some(NatConfig::udp_firewall()))
                        .host("b", v4only),
                )
                .run();
                delivered(&o, &label);
                assert_eq!(o.path(), expected, "{label}\n{}", o.summary());
                if expected == PathKind::Direct {
                    let [a, b] = direct(&o, &label);
                    assert!(a.is_ipv4() && b.is_ipv4(), "{label}: {a} {b}");
                }
            }
        }
    }
}

/// Two hosts behind one NAT: over the LAN when it carries their datagrams (whatever the NAT), through the
/// NAT's public address when the LAN does not (client isolation) and the NAT hairpins, else the relay. With
/// both, the first pong wins: the hairpin and the LAN are equally fast in the simulator.
#[test]
fn same_nat_with_hairpinning_on_and_off() {
    let public = |a: SocketAddr| a.ip() == "203.0.113.10".parse::<std::net::IpAddr>().unwrap();
    for nat in [
        Profile::from(Nat::PortRestricted),
        Profile::from(Nat::PortRestricted).linux().firewall(),
        Profile::from(Nat::FullCone),
    ] {
        for seed in 0..5 {
            for (hairpin, isolated) in [(false, false), (true, false), (true, true), (false, true)]
            {
                let label = format!("{nat}, hairpin {hairpin}, isolated {isolated}, seed {seed}");
                let mut s = Scenario::new(seed)
                    .host("a", nat)
                    .hairpin("a", hairpin)
                    .host_behind("b", "a");
                if isolated {
                    s = s.isolate("a", "b");
                }
                let o = chat(s).run();
                delivered(&o, &label);
                match (hairpin, isolated) {
                    (_, false) => {
                        direct(&o, &label);
                    }
                    (true, true) => {
                        let [a, b] = direct(&o, &label);
                        assert!(public(a) && public(b), "{label}: {a} {b}");
                    }
                    (false, true) => assert_eq!(o.path(), PathKind::Relay, "{label}"),
                }
                if !hairpin && !isolated {
                    let [a, b] = direct(&o, &label);
                    assert!(!public(a) && !public(b), "{label}: {a} {b}");
                }
            }
        }
    }
    // A symmetric NAT's hairpin does not help: each side's ping to the other's public port leaves from a
    // fresh mapping the other's mapping never sent to.
    for hairpin in [false, true] {
        let o = chat(
            Scenario::new(1)
                .host("a", Nat::Symmetric)
                .hairpin("a", hairpin)
                .host_behind("b", "a")
                .isolate("a", "b"),
        )
        .run();
        delivered(&o, "symmetric, isolated");
        assert_eq!(o.path(), PathKind::Relay, "{}", o.summary());
    }
}

/// The NAT gives one peer's socket a new public port 4 s into the chat (no reboot: the other mappings
/// stay). Every line arrives once; the pair is direct again, at the new port.
#[test]
fn rebinding_mid_chat_loses_nothing_and_returns_direct() {
    for (a, b) in [
        (
            Profile::from(Nat::PortRestricted),
            Profile::from(Nat::PortRestricted),
        ),
        (
            Profile::from(Nat::FullCone),
            Profile::from(Nat::PortRestricted),
        ),
        (Profile::from(Nat::Symmetric), Profile::from(Nat::FullCone)),
        (Profile::from(Nat::FullCone), Profile::from(Nat::Symmetric)),
    ] {
        for seed in 0..5 {
            let label = format!("{a} x {b}, a rebinds, seed {seed}");
            let o = chat(
                Scenario::new(seed)
                    .host("a", a)
                    .host("b", b)
                    .rebind_at("a", secs(4)),
            )
            .run();
            delivered(&o, &label);
            let [_, b_to_a] = direct(&o, &label);
            assert_eq!(b_to_a.ip().to_string(), "203.0.113.10", "{label}");
            // Not the port a had before (preserved: 5000; symmetric: whatever it was at 4 s).
            let before = o
                .peer("b")
                .events
                .iter()
                .rev()
                .filter(|(t, _)| *t < secs(4))
                .filter_map(|(_, e)| match e {
                    punch_core::PeerEvent::Path {
                        path: punch_core::Path::Direct(x),
                        ..
                    } => Some(*x),
                    _ => None,
                })
                .next();
            assert_ne!(Some(b_to_a), before, "{label}\n{}", o.summary());
        }
    }
}

/// The suite `punch sim matrix --paths` reports: every case ends on its expected path in every seed, with
/// every line exactly once and in order.
#[test]
fn the_path_suite_ends_every_case_on_its_expected_path() {
    let suite = punch_sim::paths::run_paths(&punch_sim::paths::PathsConfig {
        first_seed: 1,
        seeds: 5,
        rtt_ms: 40,
        loss: 0.0,
        threads: 0,
    });
    println!("{}", suite.to_table());
    assert!(suite.failures().is_empty(), "{}", suite.to_table());
    for c in &suite.cases {
        assert_eq!(c.as_expected(), c.runs, "{}: {}", c.name, suite.to_table());
    }
}

/// A dual-stack peer whose IPv6 to the server is broken registers over IPv4: the IPv4-only partner then gets its
/// public IPv4 address, and the IPv4 decision table decides (direct for port-restricted pairs, relay for
/// symmetric x symmetric).
#[test]
fn dual_stack_registered_over_ipv4_follows_the_ipv4_table() {
    for (ds, v4only, expected) in [
        (Nat::PortRestricted, Nat::PortRestricted, PathKind::Direct),
        (Nat::Restricted, Nat::PortRestricted, PathKind::Direct),
        (Nat::PortRestricted, Nat::Symmetric, PathKind::Direct),
        (Nat::Symmetric, Nat::Symmetric, PathKind::Relay),
    ] {
        for seed in 0..5 {
            let label = format!("dual-stack {ds:?} over IPv4 x IPv4-only {v4only:?}, seed {seed}");
            let o = chat(
                Scenario::new(seed)
                    .host("a", ds)
                    .ipv6("a", Some(NatConfig::udp_firewall()))
                    .server_over_ipv4("a")
                    .host("b", v4only),
            )
            .run();
            delivered(&o, &label);
            assert_eq!(o.path(), expected, "{label}\n{}", o.summary());
        }
    }
}
