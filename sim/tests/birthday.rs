//! Birthday probing: a random-port symmetric NAT facing a NAT or firewall that only lets in ports it has sent
//! to. The symmetric (hard) side opens 256 extra sockets and sends a TTL-limited opener from each toward the
//! easy side; the easy side probes random ports of the hard side's IP at 100 per second; the first probe that
//! lands on an open mapping is answered and both sides go direct (docs/STRATEGY.md).
use punch_core::{nat::birthday_success, Peer, PeerConfig};
use punch_sim::{ms, secs, Nat, PathKind, Profile, Scenario};
use std::time::Duration;

/// The pairs of issue 10's target: symmetric against port-restricted (plain and Linux) and the APDF firewall.
fn easy_sides() -> [Profile; 4] {
    [
        Profile::from(Nat::PortRestricted),
        Profile::from(Nat::PortRestricted).linux(),
        Profile::from(Nat::PortRestricted).linux().firewall(),
        Profile::from(Nat::UdpFirewall),
    ]
}

#[test]
fn symmetric_against_port_filtering_sides_goes_direct_within_10_s_in_95_percent_of_runs() {
    const SEEDS: u64 = 60;
    for easy in easy_sides() {
        let mut within = 0;
        for seed in 1..=SEEDS {
            // Both orders: the hard side is `a` on odd seeds, `b` on even ones.
            let (a, b) = if seed % 2 == 1 {
                (Profile::from(Nat::Symmetric).linux(), easy)
            } else {
                (easy, Profile::from(Nat::Symmetric))
            };
            let o = Scenario::new(seed)
                .host("a", a)
                .host("b", b)
                .type_at("a", ms(0), "hello")
                .type_at("b", ms(0), "hi")
                .run();
            // The relay carries the chat from pairing on; the switch loses, duplicates and reorders nothing.
            o.exactly_once_in_order().unwrap();
            if o.path() == PathKind::Direct && o.pairing_to_direct().is_some_and(|d| d <= secs(10))
            {
                within += 1;
            }
            // Bounded cost: 256 sockets, at most 100 probes a second for at most 15 s plus a burst.
            let hard = if seed % 2 == 1 {
                o.peer("a")
            } else {
                o.peer("b")
            };
            let easy_peer = if seed % 2 == 1 {
                o.peer("b")
            } else {
                o.peer("a")
            };
            assert_eq!(hard.cost.sockets, 256, "{}", o.summary());
            assert_eq!(hard.cost.probes, 0);
            assert!(easy_peer.cost.probes <= 1_501, "{}", easy_peer.cost.probes);
            assert_eq!(easy_peer.cost.sockets, 0);
        }
        // The bound says 98 % for 1 000 probes; 95 % of 60 runs is 57.
        assert!(
            within >= 57,
            "{easy:?}: {within} of {SEEDS} direct within 10 s"
        );
    }
}

#[test]
fn the_hard_side_keeps_the_winning_socket_and_closes_the_others() {
    let o = Scenario::new(3)
        .host("a", Nat::Symmetric)
        .host("b", Nat::PortRestricted)
        .type_at("a", ms(0), "hello");
    let mut built = o.build();
    built.world.run_until(secs(20)).unwrap();
    let a = built.peers[0].2;
    let host = built.world.host_mut::<Peer>(a).unwrap();
    assert_eq!(
        host.addrs().len(),
        2,
        "main socket + the winner: {:?}",
        host.addrs()
    );
    assert!(matches!(
        host.machine().unwrap().path(),
        Some(punch_core::Path::Direct(_))
    ));
    // Its direct traffic leaves from the winning socket: the partner saw the data arrive (it acknowledged).
    assert!(host.machine().unwrap().all_acked());
}

#[test]
fn a_failed_attempt_closes_every_extra_socket_and_stays_on_the_relay() {
    // Two probes a second for 1 s: almost surely no hit; the chat still goes through the relay.
    let o = Scenario::new(1)
        .host("a", Nat::Symmetric)
        .host("b", Nat::PortRestricted)
        .type_at("a", ms(0), "hello")
        .type_at("b", secs(5), "still here?")
        .tweak_peers(|c: &mut PeerConfig| {
            c.birthday_rate = 2;
            c.birthday_timeout = Duration::from_secs(1);
        });
    let mut built = o.build();
    built.world.run_until(secs(10)).unwrap();
    for (name, _, id) in built.peers.clone() {
        let host = built.world.host_mut::<Peer>(id).unwrap();
        assert_eq!(host.addrs().len(), 1, "{name}: {:?}", host.addrs());
        assert_eq!(
            host.machine().unwrap().path(),
            Some(punch_core::Path::Relay)
        );
        assert!(!host.machine().unwrap().is_punching());
    }
    let o = o.run();
    o.exactly_once_in_order().unwrap();
    assert_eq!(o.path(), PathKind::Relay);
}

#[test]
fn birthday_probing_can_be_turned_off() {
    let o = Scenario::new(1)
        .host("a", Nat::Symmetric)
        .host("b", Nat::PortRestricted)
        .type_at("a", ms(0), "hello")
        .tweak_peers(|c: &mut PeerConfig| c.birthday_sockets = 0)
        .run();
    o.exactly_once_in_order().unwrap();
    assert_eq!(o.path(), PathKind::Relay);
    assert_eq!(o.peer("a").cost.sockets + o.peer("b").cost.sockets, 0);
}

#[test]
fn the_bound_in_docs_strategy() {
    let p = |probes| birthday_success(256, probes, 64_512);
    assert!((0.49..0.51).contains(&p(174)), "{}", p(174));
    assert!(p(1_000) > 0.98);
    assert!((0.97..0.99).contains(&p(1_024)) || p(1_024) > 0.98);
}

/// The measured curve of docs/STRATEGY.md: fraction of runs direct by time after pairing, against the bound
/// for the probes sent by then (100/s). `cargo test --release -p punch-sim --test birthday -- --ignored
/// --nocapture curve`.
#[test]
#[ignore = "prints the curve for docs/STRATEGY.md (1 000 runs)"]
fn curve() {
    const RUNS: u64 = 1_000;
    let mut times = Vec::new();
    for seed in 1..=RUNS {
        let o = Scenario::new(seed)
            .host("a", Profile::from(Nat::Symmetric).linux())
            .host("b", Profile::from(Nat::PortRestricted).linux())
            .type_at("a", ms(0), "hello")
            .run();
        o.exactly_once_in_order().unwrap();
        times.push(o.pairing_to_direct());
    }
    println!("| time after pairing | probes sent by then | bound | measured direct |");
    println!("|---|---|---|---|");
    for t in [1u64, 2, 3, 5, 7, 10, 15] {
        // The first probe leaves after the hold (half the server RTT, here 20 ms, + 20 ms), then 100 a second.
        let probes = (t * 100).saturating_sub(4) as u32;
        let got = times
            .iter()
            .filter(|d| d.is_some_and(|d| d <= secs(t)))
            .count();
        println!(
            "| {t} s | {probes} | {:.1} % | {:.1} % |",
            100.0 * birthday_success(257, probes, 64_512),
            100.0 * got as f64 / RUNS as f64
        );
    }
}
