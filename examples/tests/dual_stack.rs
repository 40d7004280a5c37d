//! A server on a dual-stack socket (`--listen [::]:PORT`) serving IPv4 clients: they are seen, reported and
//! answered as IPv4 addresses (`127.0.0.1`), never as IPv4-mapped IPv6 (`[::ffff:127.0.0.1]`), which once made
//! `nat-type` report a NAT on loopback. Skipped where the host has no IPv6.
use std::io::Write;
use std::process::Stdio;

mod common;
use common::{free_port, punch, server_on, spawn_piped};

/// A free port on `[::]`, or `None` without IPv6.
fn v6_port() -> Option<u16> {
    let port = free_port();
    std::net::UdpSocket::bind(("::", port)).ok().map(|_| port)
}

#[test]
fn ipv4_clients_of_a_dual_stack_server_are_ipv4_everywhere() {
    let Some(port) = v6_port() else {
        eprintln!("no IPv6 here: skipped");
        return;
    };
    for runtime in ["tokio", "smol"] {
        let s = server_on(
            &format!("[::]:{port}"),
            &format!("127.0.0.1:{port}"),
            runtime,
        );
        let out = punch()
            .args(["nat-type", "--server", &s.1, "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let public = v["public_addr"].as_str().unwrap();
        assert!(public.starts_with("127.0.0.1:"), "{runtime}: {v}");
        assert_eq!(v["behind_nat"], false, "{runtime}: loopback is no NAT: {v}");

        // Two IPv4 peers chat through the relay of the dual-stack server.
        let chat = |name| {
            let args = [
                "chat",
                "5-dual-stack",
                "--server",
                &s.1,
                "--relay-only",
                "--name",
                name,
            ];
            spawn_piped(&args, Stdio::null())
        };
        let (alice, mut alice_in) = chat("alice");
        let (bob, mut bob_in) = chat("bob");
        writeln!(alice_in, "hello over v4").unwrap();
        writeln!(bob_in, "hi back").unwrap();
        drop((alice_in, bob_in));
        let (a, b) = (
            alice.wait_with_output().unwrap(),
            bob.wait_with_output().unwrap(),
        );
        let (a_out, b_out) = (
            String::from_utf8_lossy(&a.stdout),
            String::from_utf8_lossy(&b.stdout),
        );
        assert!(
            a.status.success() && a_out.contains("<bob> hi back"),
            "{runtime}: {a_out}"
        );
        assert!(
            b.status.success() && b_out.contains("<alice> hello over v4"),
            "{runtime}: {b_out}"
        );
    }
}

/// A server on two sockets, `127.0.0.1:P` and `[::1]:P` (`--listen` twice), relays between a peer that
/// registered over IPv6 and one over IPv4: everything the server sends a member goes out of a socket of the
/// member's family (`Drive::route`), whichever socket the server machine names. Skipped without IPv6.
#[test]
fn a_server_on_an_ipv4_and_an_ipv6_socket_relays_between_the_families() {
    let port = free_port();
    if std::net::UdpSocket::bind(("::1", port)).is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    let (v4, v6) = (format!("127.0.0.1:{port}"), format!("[::1]:{port}"));
    let mut server = punch()
        .args(["server", "--listen", &v4, "--listen", &v6])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_answering(&v4);
    let chat = |name, server: &str| {
        let args = [
            "chat",
            "6-two-sockets",
            "--server",
            server,
            "--relay-only",
            "--no-detect",
            "--name",
            name,
        ];
        spawn_piped(&args, Stdio::null())
    };
    let (alice, mut alice_in) = chat("alice", &v6);
    let (bob, mut bob_in) = chat("bob", &v4);
    writeln!(alice_in, "hello over v6").unwrap();
    writeln!(bob_in, "hi over v4").unwrap();
    drop((alice_in, bob_in));
    let (a, b) = (
        alice.wait_with_output().unwrap(),
        bob.wait_with_output().unwrap(),
    );
    let _ = server.kill();
    let _ = server.wait();
    let (a_out, b_out) = (
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout),
    );
    assert!(
        a.status.success() && a_out.contains("<bob> hi over v4"),
        "{a_out}"
    );
    assert!(
        b.status.success() && b_out.contains("<alice> hello over v6"),
        "{b_out}"
    );
}
