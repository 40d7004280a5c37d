//! Scenario snapshots: short, readable traces of the interesting cases.
//!
//! Each snapshot is the outcome summary plus the trace with repetitions folded
//! ([`punch_sim::Trace::condensed`]). Update with `INSTA_UPDATE=always cargo test -p punch-sim --test scenarios`
//! (or `cargo insta review`) after an intended behaviour change, and read the diff.
use punch_core::nat::{Filtering, Mapping};
use punch_sim::nat::{NatConfig, PortAlloc};
use punch_sim::{ms, secs, Detail, Nat, Outcome, PathKind, Profile, Scenario};

fn render(o: &Outcome) -> String {
    format!("{}\n{}", o.summary(), o.trace.condensed(secs(5)))
}

/// Peers `a` and `b` behind NATs of these profiles (seed 1); the user on `a` types "hello" at once.
fn pair(a: impl Into<Profile>, b: impl Into<Profile>) -> Scenario {
    Scenario::new(1)
        .host("a", a)
        .host("b", b)
        .type_at("a", ms(0), "hello")
}

/// The same, and the user on `b` answers "hi" at once; events-only trace.
fn chat(a: impl Into<Profile>, b: impl Into<Profile>) -> Scenario {
    pair(a, b).type_at("b", ms(0), "hi").detail(Detail::Events)
}

/// Every message arrived exactly once in order, and the pair ended on `path`.
fn assert_delivered(o: &Outcome, path: PathKind) {
    o.exactly_once_in_order().unwrap();
    assert_eq!(o.path(), path, "{}", o.summary());
}

/// [`assert_delivered`], then the snapshot of the outcome (named after the test).
macro_rules! assert_delivered_snapshot {
    ($o:expr, $path:expr) => {{
        assert_delivered(&$o, $path);
        insta::assert_snapshot!(render(&$o));
    }};
}

#[test]
fn cone_to_cone_punch() {
    let o = pair(Nat::FullCone, Nat::FullCone).run();
    assert_delivered_snapshot!(o, PathKind::Direct);
}

/// b's pings reach a's Linux router before a (whose PeerInfo was lost) has sent anything to b: a's router
/// records an unreplied conntrack entry, so a's pings leave from a new port that b's router filters.
/// Core falls back to the relay; 35 s later (the conntrack entries have expired) a peer asks the server for a
/// new round, which the server starts for both sides at the same instant: this time both go direct.
#[test]
fn port_restricted_linux_with_start_skew() {
    let p = Profile::from(Nat::PortRestricted).linux();
    let o = chat(p, p)
        .link_down("a", ms(70), ms(90)) // loses the PeerInfo to a: a starts punching 250 ms late
        .type_at("a", secs(45), "direct again?")
        .run();
    assert_delivered(&o, PathKind::Direct);
    assert!(o.trace.to_string().contains("conntrack clash"));
    insta::assert_snapshot!(render(&o));
}

#[test]
fn port_restricted_linux_without_skew_goes_direct() {
    let p = Profile::from(Nat::PortRestricted).linux();
    let o = pair(p, p).detail(Detail::Events).run();
    assert_delivered(&o, PathKind::Direct);
}

/// A symmetric NAT goes direct to a full cone (which accepts pings from any port); against a port-restricted
/// cone (which filters the symmetric side's new ports) it goes direct by birthday probing (256 extra sockets on
/// the symmetric side, random-port probes from the cone side); two symmetric NATs stay on the relay.
#[test]
fn symmetric_to_full_cone_punches_to_port_restricted_probes_and_to_symmetric_relays() {
    let cases = [
        (
            Nat::FullCone,
            PathKind::Direct,
            "symmetric_to_full_cone_goes_direct",
        ),
        (
            Nat::PortRestricted,
            PathKind::Direct,
            "symmetric_to_port_restricted_birthday_probing",
        ),
        (
            Nat::Symmetric,
            PathKind::Relay,
            "symmetric_to_symmetric_stays_on_the_relay",
        ),
    ];
    for (other, path, snapshot) in cases {
        let o = chat(Nat::Symmetric, other).run();
        assert_delivered(&o, path);
        insta::assert_snapshot!(snapshot, render(&o));
    }
}

/// a's link is down for 30 s; its NAT (random ports, 20 s lifetime) forgets the mapping, so when the link
/// comes back a appears from a new public port. a's next keepalive answer shows the new address, a registers
/// again with its CLIENT-ID, the server moves it and starts a new round for both: the chat recovers.
#[test]
fn mapping_expiry_during_chat() {
    let nat = NatConfig::new(
        Mapping::EndpointIndependent,
        Filtering::AddressAndPortDependent,
        PortAlloc::Random,
    )
    .with_lifetime(secs(20));
    let o = Scenario::new(1)
        .host_with("a", "port-restricted-random-20s", nat)
        .host("b", Nat::PortRestricted)
        .link_down("a", secs(10), secs(40))
        .type_at("a", ms(0), "hello")
        .type_at("b", secs(20), "are you there?")
        .type_at("a", secs(45), "back")
        .until(secs(70))
        .detail(Detail::Events)
        .run();
    assert!(o.trace.to_string().contains("expired at"));
    o.exactly_once_in_order().unwrap();
    assert!(
        o.trace.to_string().contains("moved to"),
        "the server followed a"
    );
    assert_ne!(o.path(), PathKind::None);
    insta::assert_snapshot!(render(&o));
}

/// The same outage with a port-preserving NAT: the new mapping gets the same public port, and the chat
/// recovers.
#[test]
fn mapping_expiry_with_port_preservation_recovers() {
    let o = pair(Nat::PortRestricted, Nat::PortRestricted)
        .nat_lifetime("a", secs(20))
        .link_down("a", secs(10), secs(40))
        .type_at("b", secs(20), "are you there?")
        .type_at("a", secs(45), "back")
        .detail(Detail::Events)
        .run();
    o.exactly_once_in_order().unwrap();
    assert_ne!(o.path(), PathKind::None);
}

#[test]
fn chat_over_20_percent_loss() {
    let mut s = Scenario::new(3)
        .host("a", Nat::PortRestricted)
        .host("b", Nat::Restricted)
        .link(60, 0.2)
        .detail(Detail::Events);
    for i in 0..5 {
        s = s.type_at("a", ms(200 * i), &format!("a{i}")).type_at(
            "b",
            ms(200 * i + 100),
            &format!("b{i}"),
        );
    }
    let o = s.run();
    o.exactly_once_in_order().unwrap();
    assert!(o.trace.to_string().contains("link loss"));
    insta::assert_snapshot!(render(&o));
}

#[test]
fn two_hosts_behind_one_nat() {
    let o = Scenario::new(1)
        .host("a", Profile::from(Nat::PortRestricted))
        .host_behind("b", "a")
        .type_at("a", ms(0), "hello neighbour")
        .detail(Detail::Events)
        .run();
    // Their LAN addresses are candidates too: no hairpin needed.
    assert_delivered(&o, PathKind::Direct);
}

/// Behind one symmetric NAT the decision table says relay (symmetric x symmetric), but the same public IP
/// says "neighbours": their LAN addresses are tried anyway, and answer.
#[test]
fn two_hosts_behind_one_symmetric_nat_go_direct_over_the_lan() {
    for nat in [Nat::Symmetric, Nat::SymmetricSeq, Nat::SymmetricAdm] {
        let o = Scenario::new(1)
            .host("a", Profile::from(nat))
            .host_behind("b", "a")
            .type_at("a", ms(0), "hello neighbour")
            .detail(Detail::Events)
            .run();
        assert_delivered(&o, PathKind::Direct);
        assert!(
            o.trace.to_string().contains("direct to 192.168."),
            "{nat:?}: {}",
            o.trace
        );
    }
}

#[test]
fn relay_only_peers_never_go_direct() {
    let o = pair(Nat::FullCone, Nat::FullCone)
        .relay_only("a")
        .relay_only("b")
        .detail(Detail::Events)
        .run();
    assert_delivered(&o, PathKind::Relay);
}

#[test]
fn nat_detection_runs_with_a_two_ip_server() {
    let o = pair(Nat::PortRestricted, Nat::FullCone)
        .server_with_two_ips()
        .detail(Detail::Events)
        .run();
    o.exactly_once_in_order().unwrap();
    assert!(o
        .peer("a")
        .events
        .iter()
        .any(|(_, e)| matches!(e, punch_core::PeerEvent::NatDetected(_))));
}

/// When only `a` is relay-only, `b` punches anyway; `a` ignores the pings and stays on the relay (and so does
/// `b`, after its punch deadline).
#[test]
fn one_sided_relay_only_stays_on_relay() {
    let o = pair(Nat::FullCone, Nat::FullCone)
        .relay_only("a")
        .detail(Detail::Events)
        .run();
    assert_eq!(o.peer("a").path, PathKind::Relay, "{}", o.summary());
}

/// A LAN-fast path (0.5 ms one way) with a few ms of jitter: the two first pings of a "together" round do not
/// reliably cross between the NATs, and one router (a, Linux without a WAN firewall) reserves the tuple when
/// b's ping gets there first; b's router (WAN firewall) drops a's early ping without a trace. Only the order
/// "a pings first" works, and no peer can learn that safely, so the server's retry rounds alternate which side
/// pings first: every seed ends direct within two retries (by ~80 s), whichever member a is. That is the
/// fallback without openers; with them (the default) every first round goes direct.
#[test]
fn mixed_firewall_pair_goes_direct_by_alternating_the_first_pinger() {
    assert_eq!(mixed_firewall_first_rounds(true), 40, "with openers");
    let without = mixed_firewall_first_rounds(false);
    // The "together" round is a coin toss at this latency (that is why the ordered rounds exist).
    assert!(
        without < 40,
        "every first round went direct without openers: the test no longer exercises the retries"
    );
}

/// Runs the mixed pair for 40 seeds (with or without openers); how many went direct in the first round.
fn mixed_firewall_first_rounds(openers: bool) -> usize {
    let reserving = Profile::from(Nat::PortRestricted).linux();
    let firewalled = Profile::from(Nat::PortRestricted).linux().firewall();
    let mut first_round = 0;
    for seed in 1..=40 {
        // Even seeds register the reserving side first, odd seeds second.
        let (first, second) = if seed % 2 == 0 {
            (("a", reserving), ("b", firewalled))
        } else {
            (("b", firewalled), ("a", reserving))
        };
        let mut s = Scenario::new(seed)
            .link(1, 0.0)
            .jitter(ms(4))
            .host(first.0, first.1)
            .host(second.0, second.1)
            .type_at("a", ms(0), "hello")
            .type_at("b", secs(100), "still there?")
            .until(secs(120));
        if !openers {
            s = s.tweak_peers(|c| c.opener_ttl = None);
        }
        let o = s.run();
        o.exactly_once_in_order()
            .map_err(|e| {
                format!(
                    "seed {seed}: {e}\n{}\n{}",
                    o.summary(),
                    o.trace.condensed(secs(5))
                )
            })
            .unwrap();
        assert_eq!(o.path(), PathKind::Direct, "seed {seed}: {}", o.summary());
        let direct = o.pairing_to_direct().expect("direct");
        assert!(direct < secs(85), "seed {seed}: direct after {direct:?}");
        if direct < secs(5) {
            first_round += 1;
        }
    }
    first_round
}

/// The full trace says why each timer fired (the reason from `Machine::poll_deadline`); the condensed
/// timeline and the events-only trace leave timer lines out.
#[test]
fn full_trace_shows_deadline_reasons() {
    let s = pair(Nat::PortRestricted, Nat::Symmetric).server_with_two_ips();
    let o = s.clone().run();
    let full = o.trace.to_string();
    for want in [
        "timer  a      detector: filtering test 1/2 retransmit",
        "timer  b      detector: decide filtering test 1/2",
    ] {
        assert!(full.contains(want), "missing {want:?} in\n{full}");
    }
    assert!(!o.trace.condensed(secs(5)).contains(" timer "));
    let events = s.detail(Detail::Events).run().trace.to_string();
    assert!(!events.contains(" timer "), "{events}");
}
