//! The punch opener (`PeerConfig::opener_ttl`): at the start of a round each side sends one ping whose TTL
//! runs out between the NATs, opening its own NAT toward the partner, and both hold their first real ping
//! back a little. Two Linux port-restricted NATs (conntrack reserves the tuple of an unsolicited packet) with
//! start skew from jitter then go direct in the first round instead of losing the race.
use punch_sim::{ms, secs, Detail, Nat, Profile, Scenario};

/// Of 100 seeds, how many pairs of `a` and `b` are direct within the first round (3 s), over a 40 ms RTT
/// path with 15 ms of jitter per link.
fn direct_in_first_round(a: Profile, b: Profile, opener: bool) -> usize {
    (0..100u64)
        .filter(|&seed| {
            let mut s = Scenario::new(seed)
                .host("a", a)
                .host("b", b)
                .link(40, 0.0)
                .jitter(ms(15))
                .type_at("a", ms(0), "x")
                .until(secs(10));
            if !opener {
                s = s.tweak_peers(|c| c.opener_ttl = None);
            }
            s.run().pairing_to_direct().is_some_and(|d| d < secs(3))
        })
        .count()
}

#[test]
fn linux_port_restricted_pairs_win_the_conntrack_race_with_openers() {
    let linux = Profile::from(Nat::PortRestricted).linux();
    let with = direct_in_first_round(linux, linux, true);
    let without = direct_in_first_round(linux, linux, false);
    assert!(with >= 95, "with openers {with} of 100");
    assert!(
        without < 10,
        "without {without} of 100 (the race this fixes)"
    );
    let mixed = direct_in_first_round(linux.firewall(), linux, true);
    assert!(mixed >= 95, "one side firewalled: {mixed} of 100");
}

#[test]
fn the_opener_expires_between_the_nats() {
    let linux = Profile::from(Nat::PortRestricted).linux();
    let o = Scenario::new(1)
        .host("a", linux)
        .host("b", linux)
        .type_at("a", ms(0), "x")
        .detail(Detail::Full)
        .run();
    let trace = o.trace.to_string();
    assert!(trace.contains("TTL expired in transit"), "{trace}");
    assert!(
        !trace.contains("TTL expired (after translation)"),
        "{trace}"
    );
}
