//! `examples/blocking_peer.rs` over real loopback sockets: its `run` loop drives an in-process server, two of
//! its `chat` peers pair through it (one allocates the code, the other joins with it), exchange a line each
//! on a direct path and finish cleanly.
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use punch_core::secure::Code;
use punch_core::{Path, PeerEvent};

#[allow(dead_code)] // its `main` is the example's, not the test's
#[path = "../examples/blocking_peer.rs"]
mod blocking_peer;

/// Runs a chat peer in a thread: it sends `line`, then closes its input; every event goes to `events`.
fn peer(
    server: std::net::SocketAddr,
    code: Option<Code>,
    line: &str,
    events: mpsc::Sender<(usize, PeerEvent)>,
    who: usize,
) -> thread::JoinHandle<std::io::Result<()>> {
    let (tx, lines) = mpsc::channel();
    tx.send(line.to_string()).unwrap();
    drop(tx);
    thread::spawn(move || {
        blocking_peer::chat(server, code, lines, |e| {
            let _ = events.send((who, e.clone()));
        })
    })
}

#[test]
fn two_blocking_peers_pair_through_a_server_and_chat() {
    let (addr, stop, server) = blocking_peer::spawn_server("127.0.0.1:0").unwrap();

    let (events, seen) = mpsc::channel();
    let first = peer(addr, None, "hello from 0", events.clone(), 0);
    let code = loop {
        match seen.recv_timeout(Duration::from_secs(10)).expect("a code") {
            (0, PeerEvent::CodeAllocated { code }) => break Code::parse(&code).unwrap(),
            (_, PeerEvent::Error(e)) => panic!("{e}"),
            _ => {}
        }
    };
    let second = peer(addr, Some(code), "hello from 1", events, 1);

    let mut got = [Vec::new(), Vec::new()];
    let mut done = [false, false];
    let mut direct = [false, false];
    while done != [true, true] {
        let (who, e) = seen
            .recv_timeout(Duration::from_secs(20))
            .expect("both peers finish");
        match e {
            PeerEvent::Message { text, .. } => got[who].push(text),
            PeerEvent::ConversationDone => done[who] = true,
            PeerEvent::Path {
                path: Path::Direct(_),
                ..
            } => direct[who] = true,
            PeerEvent::Error(_) | PeerEvent::Disconnected { .. } => panic!("peer {who}: {e:?}"),
            _ => {}
        }
    }
    assert_eq!(got, [vec!["hello from 1"], vec!["hello from 0"]]);
    assert_eq!(direct, [true, true], "loopback peers go direct");
    first.join().unwrap().unwrap();
    second.join().unwrap().unwrap();
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap().unwrap();
}
