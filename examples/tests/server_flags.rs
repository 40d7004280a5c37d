//! `punch server --max-members`: a clear usage error (exit 2) for 0 or a non-number, before any socket is bound.
use std::process::Command;

#[test]
fn max_members_zero_or_not_a_number_is_a_clear_usage_error() {
    for (value, says) in [
        ("0", "must be at least 1"),
        ("lots", "is not a whole number of members"),
        ("1.5", "is not a whole number of members"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_punch"))
            .args(["server", "--listen", "127.0.0.1:0", "--max-members", value])
            .output()
            .expect("punch runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--max-members {value}: {err}");
        assert!(
            err.contains("--max-members") && err.contains(says),
            "--max-members {value}: {err}"
        );
    }
}
