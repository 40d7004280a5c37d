//! `punch sim`: runs the built binary (virtual time, so these are fast and deterministic).
use std::process::{Command, Output};

fn punch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_punch"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run punch")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs punch, which must exit 0; its stdout.
fn punch_ok(args: &[&str]) -> String {
    let o = punch(args);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    out
}

/// Runs punch, which must exit 0 and print one JSON object.
fn punch_json(args: &[&str]) -> serde_json::Value {
    let o = punch(args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

fn assert_contains(out: &str, needles: &[&str]) {
    for needle in needles {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
}

#[test]
fn full_cone_to_port_restricted_prints_a_timeline_and_goes_direct() {
    let out = punch_ok(&["sim", "--nat-a", "full-cone", "--nat-b", "port-restricted"]);
    // The timeline: sends, deliveries, NAT notes and peer events, with virtual times.
    assert_contains(
        &out,
        &[
            "timeline",
            "send   a",
            "recv   b",
            "nat    nat-a  new mapping",
            "drop   internet",
            "event  a      paired with b",
            "event  b      message #0 \"a0\"",
            "outcome: direct",
            "pairing -> direct path: 40.000ms (1.0 RTTs)",
            "messages delivered exactly once in order: yes",
        ],
    );
}

#[test]
fn symmetric_to_symmetric_is_relayed() {
    let out = punch_ok(&[
        "sim",
        "--nat-a",
        "symmetric",
        "--nat-b",
        "symmetric",
        "--rtt",
        "60",
        "--loss",
        "0.05",
        "--seed",
        "7",
    ]);
    assert_contains(
        &out,
        &[
            "outcome: relay",
            "pairing -> direct path: -",
            "Relay indication",
            "messages delivered exactly once in order: yes",
        ],
    );
}

#[test]
fn relay_only_keeps_cones_on_the_relay() {
    let v = punch_json(&[
        "sim",
        "--nat-a",
        "full-cone",
        "--nat-b",
        "full-cone",
        "--relay-only",
        "--json",
    ]);
    assert_eq!(v["outcome"], "relay");
    assert_eq!(v["relay_only"], true);
}

#[test]
fn json_is_one_object_with_summary_and_trace() {
    let v = punch_json(&[
        "sim",
        "--nat-a",
        "full-cone",
        "--nat-b",
        "port-restricted",
        "--json",
    ]);
    assert_eq!(v["outcome"], "direct");
    assert_eq!(v["nat_a"], "full-cone");
    assert_eq!(v["nat_b"], "port-restricted");
    assert_eq!(v["exactly_once_in_order"], true);
    assert_eq!(v["pairing_to_direct_ms"], 40.0);
    assert_eq!(v["pairing_to_direct_rtts"], 1.0);
    assert!(v["pairing_to_first_message_ms"].is_number());
    let trace = v["trace"].as_array().expect("trace array");
    assert!(trace.len() > 10);
    assert!(trace.iter().all(|l| l.is_string()));
    assert_eq!(
        v["peers"][1]["received"],
        serde_json::json!(["a0", "a1", "a2"])
    );
}

#[test]
fn same_seed_same_output() {
    let args = [
        "sim",
        "--nat-a",
        "restricted-linux",
        "--nat-b",
        "symmetric",
        "--loss",
        "0.2",
        "--seed",
        "42",
    ];
    assert_eq!(punch(&args).stdout, punch(&args).stdout);
}

#[test]
fn bad_kind_exits_2_listing_valid_names() {
    let o = punch(&["sim", "--nat-a", "cone", "--nat-b", "symmetric"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("unknown NAT profile `cone`"), "{err}");
    for name in ["full-cone", "port-restricted-linux", "symmetric-seq"] {
        assert!(err.contains(name), "{name} not listed in {err}");
    }
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["sim"][..],
        &["sim", "--nat-a", "open"],
        &["sim", "--nat-a", "open", "--nat-b", "open", "--loss", "0.6"],
        &["sim", "--nat-a", "open", "--nat-b", "open", "--rtt", "0"],
        &["sim", "matrix", "--seeds", "0"],
    ] {
        let o = punch(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    let err = stderr(&punch(&["sim", "--nat-a", "open"]));
    assert!(err.contains("--nat-b"), "{err}");
    assert!(err.contains("matrix"), "{err}");
}

#[test]
fn matrix_json_parses_and_has_no_failed_pair() {
    let o = punch(&["sim", "matrix", "--seeds", "3", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("matrix JSON");
    let pairs = v["pairs"].as_array().expect("pairs");
    // 11 default profiles: 66 unordered pairs.
    assert_eq!(pairs.len(), 66);
    for p in pairs {
        assert_eq!(p["failed"], 0, "{p}");
        assert_eq!(p["runs"], 3, "{p}");
        assert_ne!(p["outcome"], "fail", "{p}");
    }
    let find = |a: &str, b: &str| {
        pairs
            .iter()
            .find(|p| p["a"] == a && p["b"] == b)
            .unwrap_or_else(|| panic!("no pair {a} {b}"))
    };
    assert_eq!(find("full-cone", "port-restricted")["outcome"], "direct");
    assert_eq!(find("symmetric", "symmetric")["outcome"], "relay");
    let birthday = find("port-restricted", "symmetric");
    assert_eq!(birthday["technique"], "birthday", "{birthday}");
    assert_eq!(birthday["cost_per_run"]["sockets"], 256.0, "{birthday}");
    assert!(
        birthday["direct_within_10s"].as_u64().is_some(),
        "{birthday}"
    );
    assert!(v["summary"].as_str().unwrap().contains("fail 0"));
    // Timing goes to stderr, never into the JSON on stdout.
    assert!(stderr(&o).contains("scenarios/s"), "{}", stderr(&o));
}

#[test]
fn matrix_table_has_rows_and_summary() {
    let out = punch_ok(&["sim", "matrix", "--seeds", "2", "--threads", "1"]);
    assert!(out.lines().next().unwrap().contains("outcome"), "{out}");
    assert_contains(
        &out,
        &[
            "symmetric-linux",
            "66 pairs x 2 seeds (rtt 40 ms, loss 0%): pairs direct",
        ],
    );
    assert!(!out.contains("scenarios/s"), "timing belongs on stderr");
}

#[test]
fn matrix_paths_adds_the_path_suite_in_text_and_json() {
    let o = punch(&["sim", "matrix", "--seeds", "2", "--paths", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("matrix JSON");
    let cases = v["paths"].as_array().expect("paths");
    assert_eq!(cases.len(), 19);
    for c in cases {
        assert_eq!(c["runs"], 2, "{c}");
        assert_eq!(c["exactly_once"], 2, "{c}");
        let expected = c["expected"].as_array().expect("expected classes");
        assert!(expected.contains(&c["path"]), "{c}");
    }
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c["case"] == name)
            .unwrap_or_else(|| panic!("no case {name}"))
    };
    assert_eq!(case("dual-stack-symmetric-v4")["path"], "ipv6");
    assert_eq!(case("hairpin-off-lan-isolated")["path"], "relay");
    assert_eq!(case("rebind-symmetric-side")["disruption_ms"], 4000.0);
    assert!(case("same-nat-symmetric")["to_direct_ms"]["p50"].is_number());
    let out = punch_ok(&["sim", "matrix", "--seeds", "1", "--paths", "--threads", "1"]);
    assert_contains(
        &out,
        &[
            "path case",
            "same-nat-symmetric",
            "path suite: 19 cases x 1 seeds",
        ],
    );
    assert!(stderr(&punch(&["sim", "matrix", "--seeds", "1", "--paths"])).contains("path suite:"));
}
