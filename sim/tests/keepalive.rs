//! The idle cost of a direct path: one side pings every `path_keepalive` (5 s) and the other answers, so both
//! NATs' mappings stay fresh with 12 pings and 12 pongs a minute per pair (plus each side's server keepalive,
//! 4 a minute); the other side pings only when the path goes quiet.
use punch_sim::{secs, Detail, Nat, PathKind, Scenario};
use std::time::Duration;

/// Datagrams each peer sent in virtual time `[from, to)`, to anyone: (a, b).
fn sent_between(o: &punch_sim::Outcome, from: Duration, to: Duration) -> (usize, usize) {
    let mut n = (0, 0);
    for line in o.trace.to_string().lines() {
        let mut words = line.split_whitespace();
        let (Some(t), Some(kind), Some(who)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Ok(ms) = t.trim_end_matches("ms").parse::<f64>() else {
            continue;
        };
        let t = Duration::from_secs_f64(ms / 1000.0);
        if kind != "send" || t < from || t >= to {
            continue;
        }
        match who {
            "a" => n.0 += 1,
            "b" => n.1 += 1,
            _ => {}
        }
    }
    n
}

#[test]
fn an_idle_direct_path_costs_one_ping_and_one_pong_per_interval() {
    for (a, b) in [
        (Nat::PortRestricted, Nat::PortRestricted),
        (Nat::FullCone, Nat::Symmetric),
    ] {
        let o = Scenario::new(1)
            .host("a", a)
            .host("b", b)
            .type_at("a", secs(0), "hello")
            .type_at("b", secs(75), "still there?")
            .detail(Detail::Full)
            .until(secs(80))
            .run();
        o.exactly_once_in_order().unwrap();
        assert_eq!(o.path(), PathKind::Direct, "{}", o.summary());
        let (sa, sb) = sent_between(&o, secs(10), secs(70));
        // Per side and minute: 4 server keepalives; between the two, 12 pings and 12 pongs (one side pings,
        // the other answers). Both pinging would be 2 x 24 + 8 = 56.
        assert!(
            (30..=34).contains(&(sa + sb)),
            "{a:?} x {b:?}: a sent {sa}, b sent {sb} in an idle minute"
        );
        assert!(
            sa.abs_diff(sb) <= 2,
            "a {sa}, b {sb}: pings and pongs match"
        );
    }
}
