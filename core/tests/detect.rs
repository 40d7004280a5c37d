//! NAT detection end to end in virtual time: the detector behind a tiny fake NAT (RFC 4787 mapping ×
//! filtering × port allocation, optionally with Linux conntrack's habit of letting a filtered unsolicited
//! datagram reserve its tuple), the real rendezvous `Server` with an alternate address behind it, links with a
//! fixed delay and scripted or seeded loss. No sleeps: time is stepped to the next packet or deadline.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use punch_core::detect::{DetectEvent, DetectorConfig, NatDetector, NatReport};
use punch_core::nat::{Filtering, Mapping, NatKind, PortAllocation};
use punch_core::server::{Server, ServerConfig};
use punch_core::Machine;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

const LOCAL: &str = "10.0.0.2:5000";
const PUBLIC_IP: &str = "203.0.113.7";
const P: &str = "198.51.100.1:3478";
const PA: &str = "198.51.100.1:3479";
const AP: &str = "198.51.100.2:3478";
const AA: &str = "198.51.100.2:3479";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alloc {
    Preserved,
    Sequential(i32),
    Random,
}

/// A NAT (or, with `translate: false`, a stateful firewall on a host with a public address).
#[derive(Debug)]
struct FakeNat {
    translate: bool,
    mapping: Mapping,
    filtering: Filtering,
    alloc: Alloc,
    /// Linux conntrack: a filtered unsolicited inbound datagram from R to public port X leaves an unreplied
    /// entry; a later new flow to exactly R cannot use X and gets another port.
    linux: bool,
    public_ip: IpAddr,
    /// (inside, mapping key) -> public port; key: None (EIM), remote IP (ADM), remote IP:port (APDM).
    mappings: BTreeMap<(SocketAddr, Option<SocketAddr>), u16>,
    /// (inside, remote) -> public port: every flow the inside host opened.
    flows: BTreeMap<(SocketAddr, SocketAddr), u16>,
    owners: BTreeMap<u16, SocketAddr>,
    reserved: BTreeSet<(SocketAddr, u16)>,
    next_seq: i32,
    rng: SmallRng,
}

impl FakeNat {
    fn new(mapping: Mapping, filtering: Filtering, alloc: Alloc, linux: bool) -> Self {
        FakeNat {
            translate: true,
            mapping,
            filtering,
            alloc,
            linux,
            public_ip: PUBLIC_IP.parse().unwrap(),
            mappings: BTreeMap::new(),
            flows: BTreeMap::new(),
            owners: BTreeMap::new(),
            reserved: BTreeSet::new(),
            next_seq: 40_000,
            rng: SmallRng::seed_from_u64(7),
        }
    }

    /// No NAT: the host's own address is public; only the filtering applies.
    fn firewall(filtering: Filtering) -> Self {
        let mut n = FakeNat::new(
            Mapping::EndpointIndependent,
            filtering,
            Alloc::Preserved,
            false,
        );
        n.translate = false;
        n.public_ip = a(LOCAL).ip();
        n
    }

    fn free(&self, port: u16, remote: SocketAddr) -> bool {
        port >= 1024
            && !self.owners.contains_key(&port)
            && !(self.linux && self.reserved.contains(&(remote, port)))
    }

    fn allocate(&mut self, local_port: u16, remote: SocketAddr) -> u16 {
        if self.alloc == Alloc::Preserved && self.free(local_port, remote) {
            return local_port;
        }
        if let Alloc::Sequential(step) = self.alloc {
            loop {
                let p = self.next_seq;
                self.next_seq += step;
                if (1024..=65535).contains(&p) && self.free(p as u16, remote) {
                    return p as u16;
                }
            }
        }
        loop {
            let p: u16 = self.rng.gen_range(1024..=65535);
            if self.free(p, remote) {
                return p;
            }
        }
    }

    fn outbound(&mut self, inside: SocketAddr, remote: SocketAddr) -> SocketAddr {
        if !self.translate {
            self.flows.insert((inside, remote), inside.port());
            return inside;
        }
        if let Some(&p) = self.flows.get(&(inside, remote)) {
            return SocketAddr::new(self.public_ip, p);
        }
        let key = match self.mapping {
            Mapping::EndpointIndependent => None,
            Mapping::AddressDependent => Some(SocketAddr::new(remote.ip(), 0)),
            Mapping::AddressAndPortDependent => Some(remote),
        };
        let existing = self
            .mappings
            .get(&(inside, key))
            .copied()
            .filter(|p| !(self.linux && self.reserved.contains(&(remote, *p))));
        let port = match existing {
            Some(p) => p,
            None => {
                let p = self.allocate(inside.port(), remote);
                self.mappings.entry((inside, key)).or_insert(p);
                p
            }
        };
        self.flows.insert((inside, remote), port);
        self.owners.insert(port, inside);
        SocketAddr::new(self.public_ip, port)
    }

    fn inbound(&mut self, remote: SocketAddr, public: SocketAddr) -> Option<SocketAddr> {
        let inside = if self.translate {
            *self.owners.get(&public.port())?
        } else {
            public
        };
        let port = public.port();
        let sent_to = |f: &dyn Fn(&SocketAddr) -> bool| {
            self.flows
                .iter()
                .any(|((i, r), p)| *i == inside && *p == port && f(r))
        };
        let pass = match self.filtering {
            Filtering::EndpointIndependent => sent_to(&|_| true),
            Filtering::AddressDependent => sent_to(&|r| r.ip() == remote.ip()),
            Filtering::AddressAndPortDependent => sent_to(&|r| *r == remote),
        };
        if !pass {
            if self.linux {
                self.reserved.insert((remote, port));
            }
            return None;
        }
        Some(inside)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToServer,
    ToClient,
}

type Tweak = Box<dyn Fn(&mut DetectorConfig)>;
/// (deliver at, sequence) -> (direction, from, to, payload)
type Queue = BTreeMap<(Instant, u64), (Dir, SocketAddr, SocketAddr, Vec<u8>)>;

struct Net {
    nat: FakeNat,
    alternate: bool,
    server_up: bool,
    delay: Duration,
    /// (direction, index of the datagram in that direction) -> drop?
    loss: Box<dyn FnMut(Dir, usize) -> bool>,
    local_addrs: Vec<SocketAddr>,
    config: Option<Tweak>,
}

impl Net {
    fn new(nat: FakeNat) -> Self {
        Net {
            nat,
            alternate: true,
            server_up: true,
            delay: Duration::from_millis(25),
            loss: Box::new(|_, _| false),
            local_addrs: vec![a(LOCAL)],
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

fn run(mut net: Net, seed: u64) -> Run {
    let t0 = epoch();
    let mut now = t0;
    let mut scfg = ServerConfig::new(a(P));
    if net.alternate {
        scfg.alternate = Some(a(AA));
    }
    let server_socks = punch_core::stun_server::socket_set(scfg.listen, scfg.alternate);
    let mut server = Server::new(scfg, t0);
    let mut dc = DetectorConfig::new(a(P));
    dc.local_addrs = net.local_addrs.clone();
    dc.seed = seed;
    if let Some(f) = &net.config {
        f(&mut dc);
    }
    let mut det = NatDetector::new(dc, t0);
    let mut queue = Queue::new();
    let mut seq = 0u64;
    let mut counts = [0usize; 2];
    let mut progress = Vec::new();
    let mut done = None;
    loop {
        while let Some(t) = Machine::poll_transmit(&mut det) {
            assert_eq!(t.source, None);
            let from = net.nat.outbound(a(LOCAL), t.destination);
            let i = counts[0];
            counts[0] += 1;
            if !(net.loss)(Dir::ToServer, i) {
                seq += 1;
                queue.insert(
                    (now + net.delay, seq),
                    (Dir::ToServer, from, t.destination, t.payload),
                );
            }
        }
        while let Some(t) = server.poll_transmit() {
            let from = t.source.expect("the server names its socket");
            assert!(
                server_socks.contains(&from),
                "{from} is not a server socket"
            );
            let i = counts[1];
            counts[1] += 1;
            if !(net.loss)(Dir::ToClient, i) {
                seq += 1;
                queue.insert(
                    (now + net.delay, seq),
                    (Dir::ToClient, from, t.destination, t.payload),
                );
            }
        }
        while let Some(e) = det.poll_event() {
            match e {
                DetectEvent::Progress(p) => progress.push(p),
                DetectEvent::Done(r) => {
                    assert!(done.is_none(), "one Done only");
                    done = Some(r);
                }
            }
        }
        if det.is_done() {
            break;
        }
        let next = [
            queue.keys().next().map(|k| k.0),
            det.poll_timeout(),
            server.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("the detector always has a deadline while running");
        assert!(next.duration_since(t0) < Duration::from_secs(30), "runaway");
        now = now.max(next);
        while let Some(entry) = queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (dir, from, to, payload) = entry.remove();
            match dir {
                Dir::ToServer => {
                    assert!(server_socks.contains(&to) || !net.alternate, "to {to}");
                    if net.server_up && server_socks.contains(&to) {
                        server.handle_input(now, to, from, &payload);
                    }
                }
                Dir::ToClient => {
                    if let Some(inside) = net.nat.inbound(from, to) {
                        assert!(
                            det.owns(&payload),
                            "an answer to the detector's request from {from}"
                        );
                        det.handle_input(now, inside, from, &payload);
                    }
                }
            }
        }
        if det.poll_timeout().is_some_and(|t| t <= now) {
            det.handle_timeout(now);
        }
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
    }
    assert!(det.poll_timeout().is_none());
    let report = done.expect("Done event");
    assert_eq!(det.report(), Some(&report));
    Run {
        report,
        elapsed: now.duration_since(t0),
        progress,
        to_server: counts[0],
    }
}

const MAPPINGS: [Mapping; 3] = [
    Mapping::EndpointIndependent,
    Mapping::AddressDependent,
    Mapping::AddressAndPortDependent,
];
const FILTERINGS: [Filtering; 3] = [
    Filtering::EndpointIndependent,
    Filtering::AddressDependent,
    Filtering::AddressAndPortDependent,
];

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
fn expected_alloc(m: Mapping, alloc: Alloc) -> Option<PortAllocation> {
    match (m, alloc) {
        (_, Alloc::Preserved) => Some(PortAllocation::Preserved),
        (Mapping::EndpointIndependent, _) => None,
        (_, Alloc::Sequential(step)) => Some(PortAllocation::Sequential { step }),
        (_, Alloc::Random) => Some(PortAllocation::Random),
    }
}

fn check(r: &Run, m: Mapping, f: Filtering, alloc: Alloc, what: &str) {
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
    assert!(
        r.elapsed <= Duration::from_secs(3),
        "{what}: {:?}",
        r.elapsed
    );
}

#[test]
fn every_nat_combination_is_detected() {
    let mut slowest = Duration::ZERO;
    let mut n = 0;
    for linux in [false, true] {
        for m in MAPPINGS {
            for f in FILTERINGS {
                for alloc in [
                    Alloc::Preserved,
                    Alloc::Sequential(1),
                    Alloc::Sequential(-2),
                    Alloc::Random,
                ] {
                    let what = format!("{m:?}/{f:?}/{alloc:?} linux={linux}");
                    let r = run(Net::new(FakeNat::new(m, f, alloc, linux)), 1);
                    check(&r, m, f, alloc, &what);
                    assert_eq!(r.report.server_rtt, Some(Duration::from_millis(50)));
                    println!(
                        "{what:<70} {:<22} {:>5} ms, {} requests",
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
    for m in MAPPINGS {
        for f in FILTERINGS {
            let r = run(Net::new(FakeNat::new(m, f, Alloc::Sequential(1), true)), 2);
            assert!(
                r.elapsed <= Duration::from_millis(1200),
                "{m:?}/{f:?}: {:?}",
                r.elapsed
            );
        }
    }
    // And with a lost packet or two in each direction.
    for drops in [[0usize, 3], [1, 4], [2, 5]] {
        let mut net = Net::new(FakeNat::new(
            Mapping::AddressAndPortDependent,
            Filtering::AddressAndPortDependent,
            Alloc::Sequential(1),
            true,
        ));
        net.loss = Box::new(move |dir, i| match dir {
            Dir::ToServer => drops.contains(&i),
            Dir::ToClient => i == drops[0],
        });
        let r = run(net, 3);
        check(
            &r,
            Mapping::AddressAndPortDependent,
            Filtering::AddressAndPortDependent,
            Alloc::Sequential(1),
            "lossy symmetric",
        );
        assert!(r.elapsed <= Duration::from_secs(3), "{:?}", r.elapsed);
    }
}

#[test]
fn linux_masquerade_is_port_restricted_cone_and_random_is_symmetric() {
    // nftables `masquerade` on a router without WAN input firewall: EIM (port kept), APDF, and filtered
    // answers from AA and PA reserve their tuples. The detector never sends to PA, and to AA only when the
    // mapping already differed, so the reservations cannot fake a symmetric NAT.
    let r = run(
        Net::new(FakeNat::new(
            Mapping::EndpointIndependent,
            Filtering::AddressAndPortDependent,
            Alloc::Preserved,
            true,
        )),
        4,
    );
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
        Net::new(FakeNat::new(
            Mapping::AddressAndPortDependent,
            Filtering::AddressAndPortDependent,
            Alloc::Random,
            true,
        )),
        5,
    );
    assert_eq!(r.report.kind, NatKind::Symmetric);
    assert_eq!(r.report.behaviour.allocation, Some(PortAllocation::Random));
}

#[test]
fn fake_nat_linux_reservation_is_what_the_order_avoids() {
    // The harness's conntrack model: after a filtered datagram from AA to public port 5000, a new flow to AA
    // leaves from another port (so a detector that sent mapping test 3 to AA after such an answer, under an
    // endpoint-independent mapping, would report a symmetric NAT).
    let mut nat = FakeNat::new(
        Mapping::EndpointIndependent,
        Filtering::AddressAndPortDependent,
        Alloc::Preserved,
        true,
    );
    assert_eq!(nat.outbound(a(LOCAL), a(P)).port(), 5000);
    assert_eq!(nat.inbound(a(AA), a("203.0.113.7:5000")), None);
    assert_eq!(nat.outbound(a(LOCAL), a(AP)).port(), 5000);
    assert_ne!(nat.outbound(a(LOCAL), a(AA)).port(), 5000);
    // Without the conntrack quirk the mapping stays.
    let mut nat = FakeNat::new(
        Mapping::EndpointIndependent,
        Filtering::AddressAndPortDependent,
        Alloc::Preserved,
        false,
    );
    nat.outbound(a(LOCAL), a(P));
    assert_eq!(nat.inbound(a(AA), a("203.0.113.7:5000")), None);
    assert_eq!(nat.outbound(a(LOCAL), a(AA)).port(), 5000);
    // The detector's own traffic never meets a reservation it would then run into: no request to PA at all,
    // and none to AA under an endpoint-independent mapping.
    let r = run(
        Net::new(FakeNat::new(
            Mapping::EndpointIndependent,
            Filtering::AddressAndPortDependent,
            Alloc::Preserved,
            true,
        )),
        6,
    );
    assert!(r
        .report
        .mapped_addrs
        .iter()
        .all(|(s, _)| *s != a(PA) && *s != a(AA)));
}

#[test]
fn open_internet_and_symmetric_udp_firewall() {
    let r = run(
        Net::new(FakeNat::firewall(Filtering::EndpointIndependent)),
        7,
    );
    assert_eq!(r.report.kind, NatKind::Open);
    assert_eq!(r.report.behaviour.behind_nat, Some(false));
    assert_eq!(r.report.public_addr, Some(a(LOCAL)));
    assert_eq!(
        r.report.behaviour.allocation,
        Some(PortAllocation::Preserved)
    );
    let r = run(
        Net::new(FakeNat::firewall(Filtering::AddressAndPortDependent)),
        8,
    );
    assert_eq!(r.report.kind, NatKind::SymmetricUdpFirewall);
    assert_eq!(r.report.behaviour.behind_nat, Some(false));
    // Local addresses unknown: the NAT question stays open, the rest is still detected.
    let mut net = Net::new(FakeNat::new(
        Mapping::EndpointIndependent,
        Filtering::AddressDependent,
        Alloc::Preserved,
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
    let mut net = Net::new(FakeNat::new(
        Mapping::EndpointIndependent,
        Filtering::AddressAndPortDependent,
        Alloc::Preserved,
        true,
    ));
    net.server_up = false;
    let r = run(net, 10);
    assert_eq!(r.report.kind, NatKind::Blocked);
    assert!(r.report.server_unreachable);
    assert_eq!(r.report.public_addr, None);
    assert_eq!(r.report.server_rtt, None);
    assert!(r.elapsed <= Duration::from_secs(3), "{:?}", r.elapsed);
    assert!(r.to_server <= 15, "{} requests", r.to_server);
    assert!(r.report.notes.iter().any(|n| n.contains("no answer")));
}

#[test]
fn server_without_alternate_reports_what_it_can() {
    let mut net = Net::new(FakeNat::new(
        Mapping::EndpointIndependent,
        Filtering::AddressAndPortDependent,
        Alloc::Preserved,
        true,
    ));
    net.alternate = false;
    let r = run(net, 11);
    let rep = &r.report;
    assert!(!rep.behaviour_tests);
    assert!(!rep.server_unreachable);
    assert_eq!(rep.kind, NatKind::Unknown);
    assert_eq!(rep.public_addr, Some(a("203.0.113.7:5000")));
    assert_eq!(rep.server_rtt, Some(Duration::from_millis(50)));
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
    // Answered as soon as the first Binding is: one round trip.
    assert_eq!(r.elapsed, Duration::from_millis(50));
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
    for m in MAPPINGS {
        for f in FILTERINGS {
            for seed in 0..seeds {
                let mut rng = SmallRng::seed_from_u64(seed * 31 + 1);
                let mut net = Net::new(FakeNat::new(m, f, Alloc::Sequential(1), true));
                net.loss = Box::new(move |_, _| rng.gen_bool(p));
                let r = run(net, seed);
                total += 1;
                assert!(r.elapsed <= Duration::from_millis(3100), "{:?}", r.elapsed);
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
    for f in FILTERINGS {
        let mut net = Net::new(FakeNat::new(
            Mapping::AddressAndPortDependent,
            f,
            Alloc::Sequential(1),
            true,
        ));
        net.delay = Duration::from_millis(300);
        let r = run(net, 12);
        assert_eq!(r.report.behaviour.filtering, Some(f));
        assert_eq!(
            r.report.behaviour.mapping,
            Some(Mapping::AddressAndPortDependent)
        );
        assert!(r.elapsed <= Duration::from_secs(5), "{:?}", r.elapsed);
    }
}

#[test]
fn progress_names_each_test() {
    let r = run(
        Net::new(FakeNat::new(
            Mapping::AddressDependent,
            Filtering::AddressDependent,
            Alloc::Random,
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
    let mut net = Net::new(FakeNat::new(
        Mapping::EndpointIndependent,
        Filtering::AddressAndPortDependent,
        Alloc::Preserved,
        false,
    ));
    net.config = Some(Box::new(|c: &mut DetectorConfig| {
        c.filter_timeout = Duration::from_millis(400);
    }));
    let r = run(net, 14);
    assert_eq!(r.report.kind, NatKind::PortRestrictedCone);
    assert!(r.elapsed <= Duration::from_millis(500), "{:?}", r.elapsed);
}

#[test]
fn the_server_answers_classic_and_rfc5780_clients_from_the_selected_socket() {
    use punch_core::rfc5780::{self, classic, ChangeRequest};
    let t0 = epoch();
    let mut server = Server::new(
        ServerConfig {
            alternate: Some(a(AA)),
            ..ServerConfig::new(a(P))
        },
        t0,
    );
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
