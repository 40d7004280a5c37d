use super::*;
use crate::nat::PortAllocation;
use crate::rfc5780::ChangeRequest;
use crate::Machine;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn allocation_rules() {
    use PortAllocation::*;
    assert_eq!(port_allocation(Some(5000), &[5000]).0, Some(Preserved));
    assert_eq!(port_allocation(Some(5000), &[40000]).0, None);
    assert!(port_allocation(Some(5000), &[40000]).1.is_some());
    assert_eq!(
        port_allocation(Some(5000), &[40000, 40001, 40002]).0,
        Some(Sequential { step: 1 })
    );
    assert_eq!(
        port_allocation(Some(5000), &[40000, 39998, 39996]).0,
        Some(Sequential { step: -2 })
    );
    assert_eq!(
        port_allocation(Some(5000), &[40000, 40001]).0,
        Some(Sequential { step: 1 })
    );
    assert_eq!(
        port_allocation(Some(5000), &[5000, 40001, 40002]).0,
        Some(Sequential { step: 1 })
    );
    assert_eq!(
        port_allocation(Some(5000), &[5000, 31234, 1777]).0,
        Some(Preserved)
    );
    assert_eq!(
        port_allocation(Some(5000), &[5000, 31234]).0,
        Some(Preserved)
    );
    assert_eq!(port_allocation(None, &[31234, 1777, 60000]).0, Some(Random));
    assert_eq!(port_allocation(Some(1), &[31234, 1777]).0, Some(Random));
    let (alloc, note) = port_allocation(Some(1), &[100, 101, 104]);
    assert_eq!(alloc, Some(Sequential { step: 1 }));
    assert!(note.is_some());
    assert_eq!(port_allocation(Some(1), &[]), (None, None));
}

/// A detector against a server at 192.0.2.1:3478, started at the epoch.
fn detector() -> (Instant, SocketAddr, NatDetector) {
    let t0 = crate::test_epoch();
    let server = a("192.0.2.1:3478");
    (
        t0,
        server,
        NatDetector::new(DetectorConfig::new(server), t0),
    )
}

#[test]
fn foreign_datagrams_are_not_taken() {
    let (t0, server, mut d) = detector();
    let mut sent = Vec::new();
    while let Some(t) = d.poll_transmit() {
        assert_eq!(t.source, None);
        assert_eq!(t.destination, server);
        sent.push(t.payload);
    }
    assert_eq!(sent.len(), 3);
    let local = a("10.0.0.2:5000");
    // What the peer does: hand the datagram over only if the detector owns it.
    let take = |d: &mut NatDetector, data: &[u8]| {
        let owned = d.owns(data);
        d.handle_input(t0, local, server, data);
        owned
    };
    // Another transaction id, garbage, punch data, a classic STUN message.
    let other = rfc5780::binding_request([0xEE; 12], ChangeRequest::default());
    let mut resp = other.clone();
    resp[0] = 0x01; // success response
    assert!(!take(&mut d, &resp));
    assert!(!take(&mut d, b"hello"));
    assert!(!take(&mut d, &[0xD0; 30]));
    assert!(!take(&mut d, &[0; 20]));
    // Its own request echoed back (a request, not a response) is not an answer.
    assert!(!take(&mut d, &sent[0]));
    // A malformed response with its own transaction id is its own (and ignored).
    let mut bad = sent[0].clone();
    bad[0] = 0x01;
    bad.extend_from_slice(&[0, 0x20, 0, 1]);
    bad[3] = 4;
    assert!(take(&mut d, &bad));
    assert!(!d.is_done());
}

#[test]
fn unreachable_server_is_blocked_in_bounded_time() {
    let (t0, _, mut d) = detector();
    let mut now = t0;
    let mut sends = 0;
    let mut last = t0;
    while !d.is_done() {
        while d.poll_transmit().is_some() {
            sends += 1;
        }
        let next = d.poll_timeout().expect("a deadline while running");
        assert!(next > last || now == t0, "deadline must move on");
        last = next;
        now = next;
        d.handle_timeout(now);
    }
    let r = d.report().unwrap();
    assert_eq!(r.kind, NatKind::Blocked);
    assert!(r.server_unreachable);
    assert!(now.duration_since(t0) <= Duration::from_secs(3));
    assert!(sends <= 15, "{sends} sends");
    assert!(matches!(d.poll_event(), Some(DetectEvent::Progress(_))));
    assert!(d.poll_timeout().is_none());
}

#[test]
fn garbage_never_panics() {
    use rand::{Rng, SeedableRng};
    let t0 = crate::test_epoch();
    let server = a("192.0.2.1:3478");
    let mut rng = SmallRng::seed_from_u64(99);
    let mut d = NatDetector::new(DetectorConfig::new(server), t0);
    let mut reqs = Vec::new();
    while let Some(t) = d.poll_transmit() {
        reqs.push(t.payload);
    }
    for i in 0..20_000u32 {
        let mut b: Vec<u8> = if i % 2 == 0 {
            let mut r = reqs[i as usize % reqs.len()].clone();
            r[0] = 0x01;
            r
        } else {
            (0..rng.gen_range(0..60)).map(|_| rng.gen()).collect()
        };
        if !b.is_empty() {
            for _ in 0..rng.gen_range(0..3) {
                let j = rng.gen_range(0..b.len());
                b[j] = rng.gen();
            }
        }
        let now = t0 + Duration::from_micros(i as u64 * 50);
        d.handle_input(now, a("10.0.0.2:5000"), server, &b);
        d.handle_timeout(now);
        while d.poll_transmit().is_some() {}
    }
}

#[test]
fn every_deadline_names_its_reason() {
    let (_, _, mut d) = detector();
    let mut reasons = Vec::new();
    while let Some(dl) = d.poll_deadline() {
        assert_eq!(d.poll_timeout(), Some(dl.at));
        reasons.push(dl.reason);
        d.handle_timeout(dl.at);
        while d.poll_transmit().is_some() {}
    }
    // The three first tests start together, so mapping test 1/3 (the lowest) names the ties: 150 ms; then the
    // filtering tests' RTO is capped at 250 ms: 400 (filtering), 450 (mapping), 650, 900, both filtering tests
    // decided at 1 s; mapping test 1/3 retransmits at 1.05 and 1.85 s and is decided at 2.5 s: Blocked.
    assert_eq!(
        reasons,
        [
            "detector: mapping test 1/3 retransmit",
            "detector: filtering test 1/2 retransmit",
            "detector: mapping test 1/3 retransmit",
            "detector: filtering test 1/2 retransmit",
            "detector: filtering test 1/2 retransmit",
            "detector: decide filtering test 1/2",
            "detector: mapping test 1/3 retransmit",
            "detector: mapping test 1/3 retransmit",
            "detector: decide mapping test 1/3",
        ]
    );
}
