//! Property: over many seeds and every pair of NAT profiles, at up to 20 % loss, every pair connects
//! (direct or relay) and every message is delivered exactly once, in order.
//!
//! Default (`cargo test -p punch-sim --test property`): 1000 seeds x the 66 pairs of
//! `Profile::matrix_default()` (200 seeds for the 9 birthday-probing pairs, whose runs are long). The heavy variant over *all* profiles (26: every kind with `-linux`,
//! `-fw`, `-linux-fw`) is ignored by default:
//! `cargo test -p punch-sim --release --test property -- --ignored`.
//! Seeds can be changed with `PUNCH_SIM_SEEDS=N`. A failing seed is printed with the command to replay it.
use punch_sim::matrix::{run_matrix, technique_of, MatrixConfig};
use punch_sim::Profile;

fn seeds(default: u64) -> u64 {
    std::env::var("PUNCH_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn check(cfg: MatrixConfig) {
    let m = run_matrix(&cfg);
    let failures = m.failures();
    if !failures.is_empty() {
        let mut msg = format!(
            "{} of {} runs failed:\n",
            failures.len(),
            m.pairs.iter().map(|p| p.runs).sum::<usize>()
        );
        for f in failures.iter().take(30) {
            msg.push_str(&format!("  {f}\n"));
        }
        let f = failures[0];
        msg.push_str(&format!(
            "replay: MatrixConfig {{ loss: {}, loss_varies: {}, rtt_ms: {}, messages: {}, .. }}.scenario(\"{}\".parse()?, \"{}\".parse()?, {}).detail(Detail::Full).run()\n",
            cfg.loss, cfg.loss_varies, cfg.rtt_ms, cfg.messages, f.a, f.b, f.seed
        ));
        panic!("{msg}");
    }
    println!("{}", m.summary());
}

#[test]
fn every_pair_connects_and_delivers_exactly_once_in_order() {
    check(MatrixConfig {
        seeds: seeds(1000),
        loss: 0.2,
        loss_varies: true,
        messages: 3,
        only: Some(|a, b| technique_of(a, b) != "birthday"),
        ..Default::default()
    });
}

/// The birthday-probing pairs (a random-port symmetric NAT against a port-filtering one) on fewer seeds: each
/// run sends up to ~1 800 datagrams (256 openers, 100 probes/s for up to 15 s).
#[test]
fn birthday_pairs_connect_and_deliver_exactly_once_in_order() {
    check(MatrixConfig {
        seeds: seeds(1000) / 5,
        loss: 0.2,
        loss_varies: true,
        messages: 3,
        only: Some(|a, b| technique_of(a, b) == "birthday"),
        ..Default::default()
    });
}

#[test]
#[ignore = "heavy: all 26 profiles (351 pairs) x 1000 seeds; run with --release -- --ignored"]
fn every_pair_of_all_profiles_connects_and_delivers_exactly_once_in_order() {
    check(MatrixConfig {
        profiles: Profile::all(),
        seeds: seeds(1000),
        loss: 0.2,
        loss_varies: true,
        messages: 3,
        ..Default::default()
    });
}
