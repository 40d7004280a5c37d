//! Port prediction: a symmetric NAT that hands out ports in sequence, facing a NAT or firewall that only
//! lets in ports it has sent to (port-restricted, APDF). The stable side pings the partner's next
//! `PREDICTION_WINDOW` ports; the symmetric side's first ping to it lands on one of them.
use punch_core::nat::{Filtering, Mapping};
use punch_sim::nat::{NatConfig, PortAlloc};
use punch_sim::{ms, Nat, PathKind, Profile, Scenario};

/// A sequential symmetric NAT where up to `other_traffic` ports go to other hosts between two mappings.
fn busy_sequential(other_traffic: u16) -> NatConfig {
    NatConfig::new(
        Mapping::AddressAndPortDependent,
        Filtering::AddressAndPortDependent,
        PortAlloc::Sequential {
            step: 1,
            other_traffic,
        },
    )
}

#[test]
fn sequential_symmetric_against_port_restricted_and_firewalls_goes_direct() {
    for easy in [Nat::PortRestricted, Nat::UdpFirewall] {
        for easy in [
            Profile::from(easy),
            Profile::from(easy).linux(),
            Profile::from(easy).firewall(),
        ] {
            let o = Scenario::new(1)
                .host("a", Nat::SymmetricSeq)
                .host("b", easy)
                .type_at("a", ms(0), "hello")
                .run();
            o.exactly_once_in_order().unwrap();
            assert_eq!(o.path(), PathKind::Direct, "{easy:?}: {}", o.summary());
        }
    }
}

/// Other hosts behind the sequential NAT take ports between ours: the window still catches the mapping
/// almost always (and the relay carries the chat when it does not).
#[test]
fn other_traffic_behind_the_sequential_nat_rarely_defeats_the_window() {
    let runs = 100;
    let direct = (0..runs)
        .filter(|&seed| {
            let o = Scenario::new(seed)
                .host_with("a", "symmetric-seq-busy", busy_sequential(2))
                .host("b", Nat::PortRestricted)
                .type_at("a", ms(0), "hello")
                .run();
            o.exactly_once_in_order().unwrap();
            o.path() == PathKind::Direct
        })
        .count();
    println!("{direct} of {runs} direct");
    assert!(direct >= 95, "{direct} of {runs} direct");
}
