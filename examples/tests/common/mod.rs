//! What the CLI tests share: the binary, started the same way.
#![allow(dead_code)] // each test file uses part of it
use std::net::UdpSocket;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

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

pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `punch server` (killed on drop) and its address.
pub struct Server(pub Child, pub String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `punch server` on a free loopback port with `runtime`, and waits until it answers.
pub fn server(runtime: &str) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    server_on(&addr, &addr, runtime)
}

/// Starts `punch server --listen LISTEN` with `runtime` and waits until it answers at `reach` (the address
/// clients use, kept in the returned [`Server`]).
pub fn server_on(listen: &str, reach: &str, runtime: &str) -> Server {
    server_with(listen, reach, runtime, &[])
}

/// [`server_on`] with more `punch server` arguments.
pub fn server_with(listen: &str, reach: &str, runtime: &str, extra: &[&str]) -> Server {
    let server = Server(
        punch()
            .args(["server", "--listen", listen, "--runtime", runtime])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        reach.to_string(),
    );
    wait_answering(reach);
    server
}

/// Waits until a server at `addr` answers (a Register for an empty pool name gets an error response).
pub fn wait_answering(addr: &str) {
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let req = [
        0u8, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    for _ in 0..100 {
        probe.send_to(&req, addr).unwrap();
        if probe.recv_from(&mut [0u8; 512]).is_ok() {
            return;
        }
    }
    panic!("server did not start");
}
