//! The library example `core/examples/blocking_peer.rs` pairs with the `punch chat` binary: the example
//! allocates a code through an in-process server (driven by the example's own loop), `punch chat` joins with
//! it, and each side gets the other's line.
use std::io::Write;
use std::process::Stdio;

mod common;
use common::spawn_piped;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use punch_core::PeerEvent;

#[allow(dead_code)] // its `main` is the example's, not the test's
#[path = "../../core/examples/blocking_peer.rs"]
mod blocking_peer;

#[test]
fn the_blocking_example_chats_with_punch_chat() {
    let (addr, stop, server) = blocking_peer::spawn_server("127.0.0.1:0").unwrap();

    let (line, lines) = mpsc::channel();
    line.send("hello from the example".to_string()).unwrap();
    let (events, seen) = mpsc::channel();
    let example = thread::spawn(move || {
        blocking_peer::chat(addr, None, lines, |e| drop(events.send(e.clone())))
    });
    let code = loop {
        match seen.recv_timeout(Duration::from_secs(10)).expect("a code") {
            PeerEvent::CodeAllocated { code } => break code,
            e @ PeerEvent::Error(_) => panic!("{e:?}"),
            _ => {}
        }
    };
    let args = [
        "chat",
        &code,
        "--server",
        &addr.to_string(),
        "--name",
        "cli",
    ];
    let (cli, mut stdin) = spawn_piped(&args, Stdio::piped());
    stdin.write_all(b"hello from the cli\n").unwrap();
    drop(stdin); // the CLI finishes after its line
    drop(line); // and so does the example

    // The conversation ends with ConversationDone (also when the CLI's linger ends first and it leaves).
    let mut got = Vec::new();
    loop {
        match seen
            .recv_timeout(Duration::from_secs(30))
            .expect("the example finishes")
        {
            PeerEvent::Message { text, .. } => got.push(text),
            PeerEvent::ConversationDone => break,
            e @ (PeerEvent::Error(_) | PeerEvent::Disconnected { .. }) => panic!("{e:?}"),
            _ => {}
        }
    }
    assert_eq!(got, ["hello from the cli"]);
    example.join().unwrap().unwrap();
    let out = cli.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "punch chat: {:?}\n{stdout}",
        out.status
    );
    assert!(stdout.contains("hello from the example"), "{stdout}");
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap().unwrap();
}
