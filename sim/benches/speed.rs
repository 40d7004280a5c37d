//! Simulator speed: full scenarios per second (NAT detection against a two-IP server, register, punch,
//! 10 messages each way), for a direct pair, a relayed pair and a birthday-probing pair.
//!
//! `cargo bench -p punch-sim --bench speed` (plain harness, no criterion: prints runs/s). `SPEED_ONLY=off`
//! skips the full-trace runs; `SPEED_N=n` runs `n` scenarios per case;
//! `SPEED_CASE=direct` (or `relay`, `birthday`) runs that case alone.
use punch_sim::{ms, Detail, Knowledge, Nat, Profile, Scenario};
use std::time::Instant;

fn scenario(seed: u64, a: Profile, b: Profile, detail: Detail) -> Scenario {
    let mut s = Scenario::new(seed)
        .server_with_two_ips()
        .knowledge(Knowledge::Detect)
        .host("a", a)
        .host("b", b)
        .link(40, 0.02)
        .detail(detail);
    for i in 0..10 {
        s = s.type_at("a", ms(10 * i), &format!("a{i}")).type_at(
            "b",
            ms(10 * i + 5),
            &format!("b{i}"),
        );
    }
    s
}

#[allow(clippy::disallowed_methods)] // a benchmark measures real time
fn main() {
    for (label, a, b) in [
        (
            "direct (port-restricted <-> full-cone)",
            Profile::from(Nat::PortRestricted),
            Profile::from(Nat::FullCone),
        ),
        (
            "relay (symmetric <-> symmetric)",
            Profile::from(Nat::Symmetric),
            Profile::from(Nat::Symmetric),
        ),
        // Since issue 10 this pair probes (256 sockets, ~500 pings): the costliest scenario there is.
        (
            "birthday (symmetric <-> port-restricted)",
            Profile::from(Nat::Symmetric),
            Profile::from(Nat::PortRestricted),
        ),
    ] {
        // SPEED_CASE=word runs only the cases whose label contains it (e.g. `direct`, for profiling).
        if std::env::var("SPEED_CASE").is_ok_and(|c| !label.contains(c.as_str())) {
            continue;
        }
        // SPEED_ONLY=off runs only the trace-off case (for profiling).
        let only_off = std::env::var("SPEED_ONLY").is_ok_and(|v| v == "off");
        let details: &[Detail] = if only_off {
            &[Detail::Off]
        } else {
            &[Detail::Off, Detail::Full]
        };
        for &detail in details {
            // SPEED_N=n runs n scenarios per case instead of 2000 (e.g. under valgrind, to count instructions).
            let n = std::env::var("SPEED_N")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2000);
            let start = Instant::now();
            let mut events = 0usize;
            for seed in 0..n {
                let o = scenario(seed, a, b, detail).run();
                assert!(o.exactly_once_in_order().is_ok(), "seed {seed}");
                events += o.stats.steps as usize;
            }
            let el = start.elapsed();
            println!(
                "{label:<42} trace {detail:?}: {n} scenarios in {:.2}s = {:.0} scenarios/s ({:.0} steps/scenario)",
                el.as_secs_f64(),
                n as f64 / el.as_secs_f64(),
                events as f64 / n as f64
            );
        }
    }
}
