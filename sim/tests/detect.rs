//! NAT detection end to end on the simulator: the real `NatDetector` on a host behind a simulated NAT
//! (RFC 4787 mapping × filtering × port allocation, optionally with Linux conntrack's habit of letting a
//! filtered unsolicited datagram reserve its tuple), the real rendezvous `Server` with an alternate address
//! on the public network, links with a fixed delay and scripted or seeded loss. Both machines are driven
//! through `punch_core::Machine` by the world, in virtual time.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use punch_core::nat::{Filtering, Mapping, NatKind, PortAllocation};
use punch_core::Machine;
use punch_core::{DetectEvent, DetectorConfig, NatDetector, NatReport};
use punch_core::{Server, ServerConfig};
use punch_sim::clock::{base_instant, ms, secs};
use punch_sim::nat::{Inbound, NatBox, NatConfig, Outbound, PortAlloc};
use punch_sim::trace::Kind;
use punch_sim::{Host, LinkConfig, RealmId, World};

/// The detector's socket behind a NAT.
const LOCAL: &str = "10.0.0.2:5000";
/// Its socket on a host with a public address (behind a UDP firewall at most).
const OPEN: &str = "198.51.100.50:5000";
const PUBLIC_IP: &str = "203.0.113.7";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// The server's four sockets (primary and alternate IP, primary and alternate port).
const P: &str = "198.51.100.1:3478";
const PA: &str = "198.51.100.1:3479";
const AP: &str = "198.51.100.2:3478";
const AA: &str = "198.51.100.2:3479";

/// A translating NAT; sequential allocation starts at port 40000.
fn nat(mapping: Mapping, filtering: Filtering, alloc: PortAlloc, linux: bool) -> NatConfig {
    let c = NatConfig::new(mapping, filtering, alloc).with_first_port(40_000);
    if linux {
        c.linux()
    } else {
        c
    }
}

/// The common home router: endpoint-independent mapping, address-and-port-dependent filtering, ports kept.
fn port_restricted(linux: bool) -> NatConfig {
    nat(
        Mapping::EndpointIndependent,
        Filtering::AddressAndPortDependent,
        PortAlloc::Preserve,
        linux,
    )
}

/// No NAT: the host's own address is public; only the filtering applies.
fn firewall(filtering: Filtering) -> NatConfig {
    NatConfig {
        filtering,
        ..NatConfig::udp_firewall()
    }
}

fn seq(step: i32) -> PortAlloc {
    PortAlloc::Sequential {
        step,
        other_traffic: 0,
    }
}

type Tweak = Box<dyn Fn(&mut DetectorConfig)>;

struct Net {
    nat: NatConfig,
    alternate: bool,
    server_up: bool,
    /// One-way delay between the detector and the server.
    delay: Duration,
    /// Probability that a one-way trip is lost.
    loss: f64,
    /// Scripted loss: indices (from 0) of the detector's datagrams and of the server's that are lost.
    lose_to_server: Vec<u64>,
    lose_to_client: Vec<u64>,
    local_addrs: Vec<SocketAddr>,
    config: Option<Tweak>,
}

impl Net {
    fn new(nat: NatConfig) -> Self {
        let local = if nat.translate { LOCAL } else { OPEN };
        Net {
            nat,
            alternate: true,
            server_up: true,
            delay: ms(25),
            loss: 0.0,
            lose_to_server: Vec::new(),
            lose_to_client: Vec::new(),
            local_addrs: vec![a(local)],
            config: None,
        }
    }
}

struct Run {
    report: NatReport,
    elapsed: Duration,
    progress: Vec<String>,
    to_server: usize,
}

fn render(e: &DetectEvent) -> String {
    match e {
        DetectEvent::Progress(p) => p.clone(),
        DetectEvent::Done(r) => format!("report: {} ({})", r.kind, r.behaviour),
        other => format!("{other:?}"),
    }
}

fn run(net: Net, seed: u64) -> Run {
    let mut w = World::new(seed, base_instant());
    w.set_describe(punch_core::wire::describe);
    let t0 = w.clock().at(Duration::ZERO);
    let mut scfg = ServerConfig::new(a(P));
    if net.alternate {
        scfg.alternate = Some(a(AA));
    }
    if net.server_up {
        let server = Server::new(scfg, t0);
        let link = LinkConfig::ideal().losing(&net.lose_to_client, &[]);
        w.add_host(
            "server",
            RealmId::PUBLIC,
            link,
            Host::new(server.local_addrs(), server),
        );
    }
    let local = if net.nat.translate { LOCAL } else { OPEN };
    let (_, realm) = w.add_nat(
        "nat",
        RealmId::PUBLIC,
        PUBLIC_IP.parse().unwrap(),
        net.nat,
        LinkConfig::ideal(),
    );
    let mut dc = DetectorConfig::new(a(P));
    dc.local_addrs = net.local_addrs.clone();
    dc.seed = seed;
    if let Some(f) = &net.config {
        f(&mut dc);
    }
    let link = LinkConfig::latency(net.delay)
        .with_loss(net.loss)
        .losing(&net.lose_to_server, &[]);
    let detector = Host::with_render(vec![a(local)], NatDetector::new(dc, t0), render);
    let client = w.add_host("client", realm, link, detector);
    let done = w
        .run_until_or(secs(30), |w| {
            w.machine_mut::<NatDetector>(client)
                .is_some_and(|d| d.is_done())
        })
        .unwrap();
    assert!(done, "runaway:\n{}", w.trace().tail(40));
    // Every datagram left from a socket its host owns and went to a socket that exists.
    assert_eq!(w.stats().unknown_source, 0, "{}", w.trace());
    let trace = w.trace();
    assert!(
        !trace.to_string().contains("no socket at"),
        "the detector sent to a socket the server does not have:\n{trace}"
    );
    let to_server = trace
        .lines()
        .iter()
        .filter(|l| l.kind == Kind::Send && l.who == "client")
        .count();
    let elapsed = w.now();
    let host = w.host_mut::<NatDetector>(client).unwrap();
    let mut progress = Vec::new();
    let mut done = None;
    for (_, e) in &host.events {
        match e {
            DetectEvent::Progress(p) => progress.push(p.clone()),
            DetectEvent::Done(r) => {
                assert!(done.is_none(), "one Done only");
                done = Some(r.clone());
            }
            other => panic!("unexpected detector event {other:?}"),
        }
    }
    let report = done.expect("Done event");
    let det = host.machine().unwrap();
    assert!(det.poll_timeout().is_none());
    assert_eq!(det.report(), Some(&report));
    Run {
        report,
        elapsed,
        progress,
        to_server,
    }
}

fn classic(m: Mapping, f: Filtering) -> NatKind {
    match (m, f) {
        (Mapping::EndpointIndependent, Filtering::EndpointIndependent) => NatKind::FullCone,
        (Mapping::EndpointIndependent, Filtering::AddressDependent) => NatKind::RestrictedCone,
        (Mapping::EndpointIndependent, Filtering::AddressAndPortDependent) => {
            NatKind::PortRestrictedCone
        }
        _ => NatKind::Symmetric,
    }
}

/// What the detector can know about port allocation: with endpoint-independent mapping there is only one
/// mapping, so only "preserved" is observable.
fn expected_alloc(m: Mapping, alloc: PortAlloc) -> Option<PortAllocation> {
    match (m, alloc) {
        (_, PortAlloc::Preserve) => Some(PortAllocation::Preserved),
        (Mapping::EndpointIndependent, _) => None,
        (_, PortAlloc::Sequential { step, .. }) => Some(PortAllocation::Sequential { step }),
        (_, PortAlloc::Random) => Some(PortAllocation::Random),
    }
}

fn check(r: &Run, m: Mapping, f: Filtering, alloc: PortAlloc, what: &str) {
    let rep = &r.report;
    assert_eq!(rep.behaviour.mapping, Some(m), "{what}: {rep:#?}");
    assert_eq!(rep.behaviour.filtering, Some(f), "{what}: {rep:#?}");
    assert_eq!(rep.kind, classic(m, f), "{what}");
    assert_eq!(rep.behaviour.kind(), rep.kind, "{what}");
    assert_eq!(
        rep.behaviour.allocation,
        expected_alloc(m, alloc),
        "{what}: {rep:#?}"
    );
    assert_eq!(rep.behaviour.behind_nat, Some(true), "{what}");
    assert!(rep.behaviour_tests && !rep.server_unreachable, "{what}");
    let public = rep.public_addr.expect("public address");
    assert_eq!(public.ip(), PUBLIC_IP.parse::<IpAddr>().unwrap(), "{what}");
    assert_eq!(rep.mapped_addrs[0], (a(P), public), "{what}");
    let expect_mappings = if m == Mapping::EndpointIndependent {
        2
    } else {
        3
    };
    assert_eq!(rep.mapped_addrs.len(), expect_mappings, "{what}");
    assert!(r.elapsed <= secs(3), "{what}: {:?}", r.elapsed);
}

#[test]
fn every_nat_combination_is_detected() {
    let mut slowest = Duration::ZERO;
    let mut n = 0;
    for linux in [false, true] {
        for m in Mapping::ALL {
            for f in Filtering::ALL {
                for alloc in [PortAlloc::Preserve, seq(1), seq(-2), PortAlloc::Random] {
                    let what = format!("{m:?}/{f:?}/{alloc:?} linux={linux}");
                    let r = run(Net::new(nat(m, f, alloc, linux)), 1);
                    check(&r, m, f, alloc, &what);
                    assert_eq!(r.report.server_rtt, Some(ms(50)));
                    println!(
                        "{what:<80} {:<22} {:>5} ms, {} requests",
                        r.report.kind.to_string(),
                        r.elapsed.as_millis(),
                        r.to_server
                    );
                    slowest = slowest.max(r.elapsed);
                    n += 1;
                }
            }
        }
    }
    println!("{n} combinations, slowest {slowest:?}");
}

#[test]
fn detection_completes_within_3s_at_50ms_rtt() {
    // Every kind, lossless: well inside the budget; the slowest (non-EIF filtering, symmetric) is the filter
    // window plus two round trips.
    for m in Mapping::ALL {
        for f in Filtering::ALL {
            let r = run(Net::new(nat(m, f, seq(1), true)), 2);
            assert!(r.elapsed <= ms(1200), "{m:?}/{f:?}: {:?}", r.elapsed);
        }
    }
    // And with a lost packet or two in each direction.
    for drops in [[0, 3], [1, 4], [2, 5]] {
        let mut net = Net::new(nat(
            Mapping::AddressAndPortDependent,
            Filtering::AddressAndPortDependent,
            seq(1),
            true,
        ));
        net.lose_to_server = drops.to_vec();
        net.lose_to_client = vec![drops[0]];
        let r = run(net, 3);
        check(
            &r,
            Mapping::AddressAndPortDependent,
            Filtering::AddressAndPortDependent,
            seq(1),
            "lossy symmetric",
        );
        assert!(r.elapsed <= secs(3), "{:?}", r.elapsed);
    }
}

#[test]
fn linux_masquerade_is_port_restricted_cone_and_random_is_symmetric() {
    // nftables `masquerade` on a router without WAN input firewall: EIM (port kept), APDF, and filtered
    // answers from AA and PA reserve their tuples. The detector never sends to PA, and to AA only when the
    // mapping already differed, so the reservations cannot fake a symmetric NAT.
    let r = run(Net::new(port_restricted(true)), 4);
    assert_eq!(r.report.kind, NatKind::PortRestrictedCone);
    assert_eq!(
        r.report.behaviour.allocation,
        Some(PortAllocation::Preserved)
    );
    assert_eq!(
        r.report.mapped_addrs,
        vec![
            (a(P), a("203.0.113.7:5000")),
            (a(AP), a("203.0.113.7:5000"))
        ]
    );
    // `masquerade random`.
    let r = run(
        Net::new(nat(
            Mapping::AddressAndPortDependent,
            Filtering::AddressAndPortDependent,
            PortAlloc::Random,
            true,
        )),
        5,
    );
    assert_eq!(r.report.kind, NatKind::Symmetric);
    assert_eq!(r.report.behaviour.allocation, Some(PortAllocation::Random));
}

/// The port a datagram from `LOCAL` to `to` leaves from.
fn out_port(nat: &mut NatBox, t: Duration, to: &str) -> u16 {
    match nat.outbound(t, a(LOCAL), a(to)) {
        Outbound::Forward { src } => src.port(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn linux_reservation_is_what_the_order_avoids() {
    // The simulated conntrack: after a filtered datagram from AA to public port 5000, a new flow to AA
    // leaves from another port (so a detector that sent mapping test 3 to AA after such an answer, under an
    // endpoint-independent mapping, would report a symmetric NAT).
    let cone = |linux| {
        NatBox::new(
            port_restricted(linux),
            PUBLIC_IP.parse().unwrap(),
            punch_sim::rng::derive_rng(1, "nat"),
        )
    };
    let t = ms(1);
    let mut n = cone(true);
    assert_eq!(out_port(&mut n, t, P), 5000);
    assert!(matches!(
        n.inbound(t, a(AA), a("203.0.113.7:5000")),
        Inbound::Drop(_)
    ));
    assert_eq!(out_port(&mut n, t, AP), 5000);
    assert_ne!(out_port(&mut n, t, AA), 5000);
    // Without the conntrack quirk the mapping stays.
    let mut n = cone(false);
    out_port(&mut n, t, P);
    assert!(matches!(
        n.inbound(t, a(AA), a("203.0.113.7:5000")),
        Inbound::Drop(_)
    ));
    assert_eq!(out_port(&mut n, t, AA), 5000);
    // The detector's own traffic never meets a reservation it would then run into: no request to PA at all,
    // and none to AA under an endpoint-independent mapping.
    let r = run(Net::new(port_restricted(true)), 6);
    assert!(r
        .report
        .mapped_addrs
        .iter()
        .all(|(s, _)| *s != a(PA) && *s != a(AA)));
}

#[test]
fn open_internet_and_symmetric_udp_firewall() {
    let r = run(Net::new(firewall(Filtering::EndpointIndependent)), 7);
    assert_eq!(r.report.kind, NatKind::Open);
    assert_eq!(r.report.behaviour.behind_nat, Some(false));
    assert_eq!(r.report.public_addr, Some(a(OPEN)));
    assert_eq!(
        r.report.behaviour.allocation,
        Some(PortAllocation::Preserved)
    );
    let r = run(Net::new(firewall(Filtering::AddressAndPortDependent)), 8);
    assert_eq!(r.report.kind, NatKind::SymmetricUdpFirewall);
    assert_eq!(r.report.behaviour.behind_nat, Some(false));
    // Local addresses unknown: the NAT question stays open, the rest is still detected.
    let mut net = Net::new(nat(
        Mapping::EndpointIndependent,
        Filtering::AddressDependent,
        PortAlloc::Preserve,
        false,
    ));
    net.local_addrs.clear();
    let r = run(net, 9);
    // The driver still reports the local socket on input, which is enough.
    assert_eq!(r.report.behaviour.behind_nat, Some(true));
    assert_eq!(r.report.kind, NatKind::RestrictedCone);
}

#[test]
fn unreachable_server_is_blocked_within_3s() {
    let mut net = Net::new(port_restricted(true));
    net.server_up = false;
    let r = run(net, 10);
    assert_eq!(r.report.kind, NatKind::Blocked);
    assert!(r.report.server_unreachable);
    assert_eq!(r.report.public_addr, None);
    assert_eq!(r.report.server_rtt, None);
    assert!(r.elapsed <= secs(3), "{:?}", r.elapsed);
    assert!(r.to_server <= 15, "{} requests", r.to_server);
    assert!(r.report.notes.iter().any(|n| n.contains("no answer")));
}

#[test]
fn server_without_alternate_reports_what_it_can() {
    let mut net = Net::new(port_restricted(true));
    net.alternate = false;
    let r = run(net, 11);
    let rep = &r.report;
    assert!(!rep.behaviour_tests);
    assert!(!rep.server_unreachable);
    assert_eq!(rep.kind, NatKind::Unknown);
    assert_eq!(rep.public_addr, Some(a("203.0.113.7:5000")));
    assert_eq!(rep.server_rtt, Some(ms(50)));
    assert_eq!(rep.behaviour.behind_nat, Some(true));
    assert_eq!(rep.behaviour.mapping, None);
    assert_eq!(rep.behaviour.filtering, None);
    assert!(
        rep.notes
            .iter()
            .any(|n| n.contains("cannot run behaviour tests")),
        "{:?}",
        rep.notes
    );
    // Answered as soon as the first Binding is (one round trip), plus the hairpin test's reply window.
    assert_eq!(r.elapsed, ms(150));
    assert_eq!(rep.hairpin, Some(false));
}

#[test]
fn random_loss_never_hangs_and_rarely_misleads() {
    // 10% loss each way, every kind, 20 seeds. Detection always ends within its limit; a wrong answer needs
    // every copy of one test's answer lost, and then errs on the restrictive side.
    let (wrong, total) = lossy_matrix(0.1, 20);
    println!("{wrong} of {total} wrong at 10% loss");
    assert!(wrong * 20 <= total, "{wrong} of {total} wrong");
    // At 30% loss results degrade, still never hang, never err towards the permissive side.
    let (wrong, total) = lossy_matrix(0.3, 20);
    println!("{wrong} of {total} wrong at 30% loss");
}

fn lossy_matrix(p: f64, seeds: u64) -> (usize, usize) {
    let mut wrong = 0;
    let mut total = 0;
    for m in Mapping::ALL {
        for f in Filtering::ALL {
            for seed in 0..seeds {
                let mut net = Net::new(nat(m, f, seq(1), true));
                net.loss = p;
                let r = run(net, seed);
                total += 1;
                assert!(r.elapsed <= ms(3100), "{:?}", r.elapsed);
                let rep = &r.report;
                if rep.kind != classic(m, f) {
                    wrong += 1;
                    println!("{m:?}/{f:?} seed {seed}: {} ({})", rep.kind, rep.behaviour);
                    // Never a less restrictive filtering than the real one.
                    if let Some(got) = rep.behaviour.filtering {
                        assert!(got >= f, "{m:?}/{f:?} seed {seed}: {got:?}");
                    }
                }
            }
        }
    }
    (wrong, total)
}

#[test]
fn slow_path_stretches_the_windows() {
    // 600 ms RTT: the filtering windows grow with the RTT, so late answers are not taken for filtering.
    for f in Filtering::ALL {
        let mut net = Net::new(nat(Mapping::AddressAndPortDependent, f, seq(1), true));
        net.delay = ms(300);
        let r = run(net, 12);
        assert_eq!(r.report.behaviour.filtering, Some(f));
        assert_eq!(
            r.report.behaviour.mapping,
            Some(Mapping::AddressAndPortDependent)
        );
        assert!(r.elapsed <= secs(5), "{:?}", r.elapsed);
    }
}

#[test]
fn progress_names_each_test() {
    let r = run(
        Net::new(nat(
            Mapping::AddressDependent,
            Filtering::AddressDependent,
            PortAlloc::Random,
            false,
        )),
        13,
    );
    let joined = r.progress.join("\n");
    for want in [
        "mapping test 1/3: 198.51.100.1:3478",
        "filtering test 1/2 (change IP and port): via 198.51.100.1:3478",
        "filtering test 2/2 (change port): via 198.51.100.1:3478",
        "mapping test 2/3: 198.51.100.2:3478",
        "mapping test 3/3: 198.51.100.2:3479",
        "done: Symmetric",
    ] {
        assert!(joined.contains(want), "missing {want:?} in\n{joined}");
    }
}

#[test]
fn shorter_timeouts_are_honoured() {
    let mut net = Net::new(port_restricted(false));
    net.config = Some(Box::new(|c: &mut DetectorConfig| {
        c.filter_timeout = ms(400);
    }));
    let r = run(net, 14);
    assert_eq!(r.report.kind, NatKind::PortRestrictedCone);
    // The filter window, the mapping test after it, and the hairpin test's 100 ms reply window.
    assert!(r.elapsed <= ms(600), "{:?}", r.elapsed);
}

#[test]
fn the_server_answers_classic_and_rfc5780_clients_from_the_selected_socket() {
    use punch_core::rfc5780::{self, classic, ChangeRequest};
    let t0 = base_instant();
    let mut config = ServerConfig::new(a(P));
    config.alternate = Some(a(AA));
    let mut server = Server::new(config, t0);
    let client = a("203.0.113.7:5000");
    // Debian's `stun` test II: RFC 3489 framing, CHANGE-REQUEST(IP, port).
    let mut req = vec![0x00, 0x01, 0x00, 0x08];
    req.extend_from_slice(&[2, 0, 0, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2]);
    req.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 6]);
    server.handle_input(t0, a(P), client, &req);
    let t = server.poll_transmit().expect("answered");
    assert_eq!(t.source, Some(a(AA)));
    let m = classic::parse(&t.payload).unwrap();
    assert_eq!(m.msg_type, classic::BINDING_RESPONSE);
    assert_eq!(m.addr(classic::MAPPED_ADDRESS), Some(client));
    assert_eq!(m.addr(classic::SOURCE_ADDRESS), Some(a(AA)));
    assert_eq!(m.addr(classic::CHANGED_ADDRESS), Some(a(AA)));
    // RFC 5780 change-port, received on AP: answered from AA.
    let req = rfc5780::binding_request([5; 12], ChangeRequest::new(false, true));
    server.handle_input(t0, a(AP), client, &req);
    let t = server.poll_transmit().expect("answered");
    assert_eq!(t.source, Some(a(AA)));
    assert_eq!(server.stats().bindings, 2);
    assert!(server.poll_transmit().is_none());
}

/// Hairpinning (RFC 5780 section 4.5): a Binding request to our own public address comes back through a NAT
/// that hairpins, and is reported; a NAT that does not is reported as such; an open host is not tested.
#[test]
fn hairpinning_is_detected_and_reported() {
    for hairpin in [true, false] {
        let r = run(Net::new(port_restricted(false).with_hairpin(hairpin)), 1);
        assert_eq!(r.report.hairpin, Some(hairpin), "{:?}", r.progress);
        assert!(r.progress.iter().any(|p| p.starts_with("hairpin test")));
        assert_eq!(r.report.kind, NatKind::PortRestrictedCone);
    }
    let open = run(Net::new(firewall(Filtering::EndpointIndependent)), 1);
    assert_eq!(open.report.hairpin, None, "no NAT: nothing to hairpin");
    let no_alt = Net {
        alternate: false,
        ..Net::new(port_restricted(false).with_hairpin(true))
    };
    assert_eq!(
        run(no_alt, 1).report.hairpin,
        Some(true),
        "also without behaviour tests"
    );
}
