//! Same seed, same everything.
use punch_sim::matrix::{run_matrix, MatrixConfig};
use punch_sim::{ms, Nat, Profile, Scenario};

fn lossy(seed: u64) -> Scenario {
    Scenario::new(seed)
        .server_with_two_ips()
        .host("a", Profile::from(Nat::PortRestricted).linux())
        .host("b", Nat::Symmetric)
        .link(50, 0.15)
        .jitter(ms(10))
        .type_at("a", ms(0), "one")
        .type_at("b", ms(500), "two")
        .type_at("a", ms(900), "three")
}

#[test]
fn same_seed_gives_byte_identical_full_traces() {
    for seed in [1, 2, 99] {
        let a = lossy(seed).run().trace.to_string();
        let b = lossy(seed).run().trace.to_string();
        assert!(a.len() > 1000);
        assert_eq!(a, b, "seed {seed}");
    }
    assert_ne!(
        lossy(1).run().trace.to_string(),
        lossy(2).run().trace.to_string()
    );
}

#[test]
fn matrix_results_do_not_depend_on_thread_count() {
    let cfg = |threads| MatrixConfig {
        profiles: vec![
            Nat::FullCone.into(),
            Nat::Symmetric.into(),
            Profile::from(Nat::PortRestricted).linux(),
        ],
        seeds: 10,
        loss: 0.2,
        loss_varies: true,
        threads,
        ..Default::default()
    };
    assert_eq!(run_matrix(&cfg(1)).to_json(), run_matrix(&cfg(2)).to_json());
}
