//! `examples/smol_peer.rs` over loopback: two of its peers pair through a server on the same driver, each
//! sends its line and gets the other's.
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use futures_lite::future;
use punch_core::secure::Code;
use punch_core::{Server, ServerConfig};

#[allow(dead_code)] // its `main` is the example's, not the test's
#[path = "../examples/smol_peer.rs"]
mod smol_peer;

/// `f`, or a panic after 20 s.
fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    let late = async {
        async_io::Timer::after(Duration::from_secs(20)).await;
        panic!("not done in 20 s")
    };
    async_io::block_on(future::or(f, late))
}

#[test]
fn two_smol_peers_pair_and_exchange_a_line() {
    let sockets = punch_smol::bind(&["127.0.0.1:0".parse().unwrap()]).unwrap();
    let addr: SocketAddr = punch_smol::locals(&sockets).unwrap()[0];
    let server = Server::new(ServerConfig::new(addr), punch_smol::now());
    let (stop, stopped) = punch_smol::unbounded();
    let (events, _) = punch_smol::unbounded();
    let server = thread::spawn(move || {
        async_io::block_on(punch_smol::run(server, sockets, stopped, events))
    });

    let (code_tx, code_rx) = mpsc::channel();
    let first = thread::spawn(move || {
        within(smol_peer::pair_and_send(addr, None, "from 0", |code| {
            let _ = code_tx.send(code.to_string());
        }))
    });
    let code = code_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a code");
    let code = Code::parse(&code).unwrap();
    let second = within(smol_peer::pair_and_send(addr, Some(code), "from 1", |_| {}));
    assert_eq!(second.unwrap(), ["from 0"]);
    assert_eq!(first.join().unwrap().unwrap(), ["from 1"]);
    drop(stop);
    server.join().unwrap().unwrap();
}
