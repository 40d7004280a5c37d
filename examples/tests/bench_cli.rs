//! `punch bench`: runs and prints what it documents (never a timed test: the figures are not checked).
use std::process::Command;

#[test]
fn bench_relay_runs_for_a_second_and_prints_one_valid_json_object() {
    let out = Command::new(env!("CARGO_BIN_EXE_punch"))
        .args(["bench", "relay", "--duration", "1", "--json", "--no-pin"])
        .output()
        .expect("punch runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
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
