//! `punch bench`: runs and prints what it documents (never a timed test: the figures are not checked).
use std::process::Command;

/// Runs `punch args`, which must succeed and print one JSON object.
fn punch_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_punch"))
        .args(args)
        .output()
        .expect("punch runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn bench_relay_runs_for_a_second_and_prints_one_valid_json_object() {
    let v = punch_json(&["bench", "relay", "--duration", "1", "--json", "--no-pin"]);
    for system in ["punch", "forwarder"] {
        let r = &v[system];
        for field in [
            "sent",
            "received",
            "loss",
            "p50_us",
            "p99_us",
            "server_cpu_s",
            "per_cpu_s",
        ] {
            assert!(r[field].is_number(), "{system}.{field} missing in {v}");
        }
        assert!(r["sent"].as_u64() > Some(0), "{system} sent nothing: {v}");
        assert!(
            r["received"].as_u64() > Some(0),
            "{system} forwarded nothing: {v}"
        );
    }
    assert!(v["ratio"].is_number() && v["datagram"].is_number(), "{v}");
}

#[test]
fn bench_server_runs_small_counts_and_prints_one_valid_json_object() {
    let v = punch_json(&[
        "bench",
        "server",
        "--members",
        "2000",
        "--pairs",
        "500",
        "--clients",
        "8",
        "--duration",
        "0.3",
        "--no-pin",
        "--json",
    ]);
    let core = &v["in_core"];
    assert_eq!(core["members"], 2000, "{v}");
    assert_eq!(core["pairings"], 500, "{v}");
    let per = core["heap_bytes_per_member"].as_u64().expect("a number");
    assert!(
        per > 0 && per <= 256,
        "{per} heap bytes per waiting member: {v}"
    );
    for field in ["registrations_per_s", "refreshes_per_s", "pairings_per_s"] {
        assert!(core[field].as_f64() > Some(0.0), "in_core.{field}: {v}");
    }
    let lo = &v["loopback"];
    assert_eq!(lo["clients"], 8, "{v}");
    for field in ["registrations", "pairings", "rounds", "in_flight"] {
        assert!(lo[field].as_u64() > Some(0), "loopback.{field}: {v}");
    }
    for field in [
        "duration_s",
        "registrations_per_s",
        "pairings_per_s",
        "lost",
        "server_cpu_s",
        "pairings_per_cpu_s",
    ] {
        assert!(lo[field].is_number(), "loopback.{field} missing: {v}");
    }
    // The floor responder answers the same generator: it pairs too, and the ratio is a number.
    assert!(v["floor"]["pairings"].as_u64() > Some(0), "floor: {v}");
    assert!(v["floor_ratio"].is_number(), "{v}");
}
