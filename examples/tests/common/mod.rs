//! What the CLI tests share: the binary, started the same way.
#![allow(dead_code)] // each test file uses part of it
use std::process::{Child, ChildStdin, Command, Stdio};

/// The `punch` binary, logging only warnings, with no server from the environment.
pub fn punch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_punch"));
    c.env("RUST_LOG", "warn").env_remove("PUNCH_SERVER");
    c
}

/// Spawns `punch ARGS` with piped stdin and stdout and the given stderr; returns it and its stdin.
pub fn spawn_piped(args: &[&str], stderr: Stdio) -> (Child, ChildStdin) {
    let mut c = punch();
    c.args(args).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.stderr(stderr).spawn().expect("punch starts");
    let stdin = child.stdin.take().expect("piped");
    (child, stdin)
}
