//! The idle cost of a direct path. One side pings (the keepalive leader) and the other answers; the
//! interval starts at `path_keepalive` (5 s) and grows by half each time the path survives a whole one, up
//! to `path_keepalive_max` (100 s); a NAT that forgets sooner kills the path once, the chat carries on over
//! the relay, a new round brings the path back, and the interval settles on the longest silence the path
//! survived. The server keepalive follows, between 15 and 25 s.
use punch_sim::{secs, Detail, Nat, Outcome, PathKind, Scenario};
use std::time::Duration;

/// Datagrams each peer sent in virtual time `[from, to)`, to anyone: (a, b).
fn sent_between(o: &Outcome, from: Duration, to: Duration) -> (usize, usize) {
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

/// How often either peer's path went back to the relay after it was first direct.
fn path_losses(o: &Outcome) -> usize {
    let trace = o.trace.to_string();
    let mut direct = false;
    let mut losses = 0;
    for l in trace.lines() {
        if l.contains(" path: direct") {
            direct = true;
        } else if direct && l.contains(" path: relay") {
            losses += 1;
        }
    }
    losses
}

/// `a` says hello, both stay silent until `late`, then `b` asks; the run ends 5 s later.
fn idle(a: Nat, b: Nat, late: Duration, nat_lifetime: Option<Duration>) -> Outcome {
    let mut s = Scenario::new(1)
        .host("a", a)
        .host("b", b)
        .type_at("a", secs(0), "hello")
        .type_at("b", late, "still there?")
        .detail(Detail::Full)
        .until(late + secs(5));
    if let Some(l) = nat_lifetime {
        s = s.nat_lifetime("a", l).nat_lifetime("b", l);
    }
    s.run()
}

#[test]
fn an_idle_direct_path_backs_off_to_a_ping_and_a_pong_every_100_s() {
    for (a, b) in [
        (Nat::PortRestricted, Nat::PortRestricted),
        (Nat::FullCone, Nat::Symmetric),
    ] {
        let o = idle(a, b, secs(600), None);
        o.exactly_once_in_order().unwrap();
        assert_eq!(o.path(), PathKind::Direct, "{}", o.summary());
        assert_eq!(
            path_losses(&o),
            0,
            "{a:?} x {b:?}: the NATs keep 120 s\n{}",
            o.summary()
        );
        // The first idle minute: pings after 5, 7.5, 11.25, 16.9 and 25.3 s of silence, one side pinging,
        // the other answering, and 8 server keepalives; with a fixed 5 s it was 30-34 (56 with both sides
        // pinging).
        let (fa, fb) = sent_between(&o, secs(10), secs(70));
        // Once settled (from 300 s: 100 s intervals), per minute, both peers together: 1.2 path datagrams
        // and 2 x 2.4 server keepalives (25 s).
        let (la, lb) = sent_between(&o, secs(300), secs(600));
        let late = (la + lb) as f64 / 5.0;
        eprintln!("{a:?} x {b:?}: first minute a {fa} b {fb}; settled {late:.1} datagrams/minute");
        assert!(
            late <= 7.0,
            "{a:?} x {b:?}: {late} datagrams a minute once settled"
        );
        assert!(
            fa + fb <= 20,
            "{a:?} x {b:?}: a {fa}, b {fb} in the first minute"
        );
        assert!(
            la.abs_diff(lb) <= 2,
            "a {la}, b {lb}: pings and pongs match"
        );
    }
}

#[test]
fn a_nat_that_forgets_after_20_s_costs_one_path_loss_and_the_path_stays() {
    for (a, b) in [
        (Nat::PortRestricted, Nat::PortRestricted),
        (Nat::FullCone, Nat::Symmetric),
    ] {
        let o = idle(a, b, secs(300), Some(secs(20)));
        let label = format!("{a:?} x {b:?}");
        o.exactly_once_in_order()
            .unwrap_or_else(|e| panic!("{label}: {e}\n{}", o.summary()));
        assert_eq!(o.path(), PathKind::Direct, "{label}\n{}", o.summary());
        // 25.3 s of silence kills it once; the interval settles on 16.9 s, which the NATs survive.
        let losses = path_losses(&o);
        assert!(
            (1..=2).contains(&losses),
            "{label}: {losses} losses\n{}",
            o.summary()
        );
        let (la, lb) = sent_between(&o, secs(120), secs(300));
        let per_minute = (la + lb) as f64 / 3.0;
        eprintln!("{label}: {losses} path losses; settled {per_minute:.1} datagrams/minute");
        assert!(per_minute <= 20.0, "{label}: {per_minute} a minute");
    }
}
