//! Paths that survive a NAT losing its mappings mid-chat (a router reboot, a conntrack flush, a table
//! overflow): every line arrives exactly once and in order, and a pair that was direct is direct again soon,
//! at the addresses the NATs gave the peers after the flush.
use std::time::Duration;

use punch_sim::{ms, secs, Detail, Nat, Outcome, PathKind, Profile, Scenario};

/// When both NATs forget every mapping.
const FLUSH: Duration = Duration::from_secs(6);

/// Both NATs flushed at [`FLUSH`] while both users type a line a second for 20 s.
fn flushed_mid_chat(a: impl Into<Profile>, b: impl Into<Profile>) -> Outcome {
    let mut s = Scenario::new(1)
        .host("a", a)
        .host("b", b)
        .flush_nat_at("a", FLUSH)
        .flush_nat_at("b", FLUSH)
        .until(secs(40))
        .detail(Detail::Events);
    for i in 0..20 {
        s = s.type_at("a", secs(i), &format!("a{i}")).type_at(
            "b",
            secs(i) + ms(500),
            &format!("b{i}"),
        );
    }
    s.run()
}

/// The last `path:` event of each peer after the flush, and when it came.
fn last_path_change_after_flush(o: &Outcome) -> Option<Duration> {
    o.trace
        .to_string()
        .lines()
        .filter(|l| l.contains(" path: direct"))
        .filter_map(|l| {
            let ms: f64 = l
                .split_whitespace()
                .next()?
                .trim_end_matches("ms")
                .parse()
                .ok()?;
            Some(Duration::from_micros((ms * 1000.0) as u64))
        })
        .filter(|t| *t > FLUSH)
        .max()
}

#[test]
fn a_flush_on_both_nats_loses_nothing_and_direct_pairs_stay_direct() {
    for a in Nat::ALL {
        for b in Nat::ALL {
            let o = flushed_mid_chat(a, b);
            let label = format!("{a:?} x {b:?}");
            o.exactly_once_in_order()
                .unwrap_or_else(|e| panic!("{label}: {e}\n{}", o.summary()));
            if o.direct_at().is_some() {
                assert_eq!(o.path(), PathKind::Direct, "{label}\n{}", o.summary());
            }
        }
    }
}

/// Symmetric x full cone: the symmetric side's new mapping is a new address; the full-cone side hears the
/// partner from it and moves its direct path there within a second (it used to keep sending to the dead
/// mapping: the lab lost 20 of 30 lines).
#[test]
fn the_partner_at_a_new_address_is_followed_within_a_second() {
    let o = flushed_mid_chat(Nat::Symmetric, Nat::FullCone);
    o.exactly_once_in_order().unwrap();
    let moved = last_path_change_after_flush(&o).expect("b moved its direct path");
    assert!(moved < FLUSH + secs(1), "moved at {moved:?}\n{}", o.trace);
}
