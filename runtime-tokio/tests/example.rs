//! `examples/tokio_peer.rs` over loopback: two of its peers pair through a server on the same driver, each
//! sends its line and gets the other's.
use std::net::SocketAddr;

use punch_core::secure::Code;
use punch_core::{Server, ServerConfig};
use tokio::sync::mpsc;

#[allow(dead_code)] // its `main` is the example's, not the test's
#[path = "../examples/tokio_peer.rs"]
mod tokio_peer;

#[tokio::test]
async fn two_tokio_peers_pair_and_exchange_a_line() {
    let sockets = punch_tokio::bind(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let addr: SocketAddr = punch_tokio::locals(&sockets).unwrap()[0];
    let server = Server::new(ServerConfig::new(addr), punch_tokio::now());
    let (stop, stopped) = mpsc::unbounded_channel();
    let (events, _) = mpsc::unbounded_channel();
    let server = tokio::spawn(punch_tokio::run(server, sockets, stopped, events));

    let (code_tx, mut code_rx) = mpsc::unbounded_channel();
    let first = tokio::spawn(tokio_peer::pair_and_send(
        addr,
        None,
        "from 0",
        move |code| {
            let _ = code_tx.send(code.to_string());
        },
    ));
    let code = Code::parse(&code_rx.recv().await.expect("a code")).unwrap();
    let second = tokio_peer::pair_and_send(addr, Some(code), "from 1", |_| {});
    let within = std::time::Duration::from_secs(20);
    let second = tokio::time::timeout(within, second).await.expect("in time");
    let first = tokio::time::timeout(within, first).await.expect("in time");
    assert_eq!(first.unwrap().unwrap(), ["from 1"]);
    assert_eq!(second.unwrap(), ["from 0"]);
    drop(stop);
    server.await.unwrap().unwrap();
}

#[test]
fn the_readme_embed_section_shows_this_example_verbatim() {
    let readme = include_str!("../../README.md");
    let example = include_str!("../examples/tokio_peer.rs");
    let section = readme
        .split("## Embed punch")
        .nth(1)
        .expect("README has \"## Embed punch\"");
    assert!(
        section.contains(&format!("```rust\n{example}```")),
        "README's Embed section must hold runtime-tokio/examples/tokio_peer.rs verbatim: copy the file there"
    );
}
