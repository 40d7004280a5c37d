//! Exit codes as the README documents them, for every command (chat's own paths are in cli.rs).
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

mod common;

fn punch(args: &[&str]) -> Option<i32> {
    common::punch()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .code()
}

#[test]
fn bad_usage_and_bad_input_exit_2() {
    let cases: &[&[&str]] = &[
        &[],
        &["no-such-command"],
        &["chat", "--no-such-flag"],
        &["chat", "--server", "no such host.invalid"],
        &["chat", "not a code!"],
        &["strategy", "open", "cgnat"],
        &["sim", "--nat-a", "bogus", "--nat-b", "full-cone"],
        &["server", "--listen", "127.0.0.1:0", "--alt-ip", "127.0.0.1"],
        &["bench", "relay", "--duration", "nonsense"],
    ];
    for args in cases {
        assert_eq!(punch(args), Some(2), "punch {}", args.join(" "));
    }
}

#[test]
fn help_and_version_exit_0() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["chat", "--help"],
        &["server", "--help"],
    ] {
        assert_eq!(punch(args), Some(0), "punch {}", args.join(" "));
    }
}

#[test]
fn strategy_exits_0() {
    assert_eq!(punch(&["strategy", "symmetric", "full-cone"]), Some(0));
}

#[test]
fn server_stopped_with_ctrl_c_exits_0() {
    let mut server = common::punch()
        .args(["server", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready once it printed how peers join.
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("Peers join with")));
    let st = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(server.wait().unwrap().code(), Some(0), "a clean stop");
}
