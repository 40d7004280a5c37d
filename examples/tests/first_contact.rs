//! First contact: what a new user sees before any chat (issue 13, item 1).
use std::io::{BufRead, BufReader};
use std::process::Stdio;

mod common;
use common::punch;

/// Runs punch with `args` (and `env`) until a line of its stderr contains `wanted`, then stops it; returns that
/// line (or everything it printed, if it never came).
fn first_line_with(args: &[&str], env: Option<(&str, &str)>, wanted: &str) -> String {
    let mut cmd = punch();
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains(wanted) {
            seen = line;
            break;
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

#[test]
fn nat_type_without_a_server_says_no_answer_instead_of_a_nat_verdict() {
    // Port 9 (discard) on loopback: nothing answers.
    let out = punch()
        .args(["nat-type", "--server", "127.0.0.1:9"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stdout.contains("NAT type"),
        "no verdict on stdout: {stdout}"
    );
    assert!(
        stderr.contains(
            "no answer from the server 127.0.0.1:9 (down, wrong address, or UDP blocked)"
        ),
        "{stderr}"
    );
}

#[test]
fn punch_server_environment_variable_and_default_port_pick_the_server() {
    // The chat says which server it asks (as written, and the address used); HOST without a port means 3478.
    let line = first_line_with(&["chat"], Some(("PUNCH_SERVER", "127.0.0.1")), "asking");
    assert!(line.contains("asking 127.0.0.1 (127.0.0.1:3478)"), "{line}");
}

#[test]
fn the_server_prints_the_command_peers_join_with() {
    let line = first_line_with(&["server", "--listen", "127.0.0.1:0"], None, "join");
    assert!(
        line.contains("Peers join with:  punch chat --server 127.0.0.1:"),
        "{line}"
    );
    assert!(
        !line.contains("127.0.0.1:0 "),
        "the bound port, not 0: {line}"
    );
}

#[test]
fn logs_have_no_colour_codes_when_not_on_a_terminal() {
    let line = first_line_with(
        &["server", "--listen", "127.0.0.1:0"],
        Some(("RUST_LOG", "info")),
        "listening",
    );
    assert!(line.contains("listening on"), "{line}");
    assert!(
        !line.contains('\u{1b}'),
        "no ANSI escapes in a pipe: {line:?}"
    );
}
