//! A chat peer on the tokio driver: pairs through a punch server, sends one line, prints what the partner
//! says, and finishes. It pairs with `punch chat` and with itself.
//!
//! ```text
//! cargo run -p punch-tokio --example tokio_peer -- SERVER_IP:PORT                 # prints a code to share
//! cargo run -p punch-tokio --example tokio_peer -- SERVER_IP:PORT CODE "a line"   # joins with it
//! ```
use std::io;
use std::net::SocketAddr;

use punch_core::drive::any_addr_for;
use punch_core::{secure::Code, Peer, PeerConfig, PeerEvent};
use rand::RngCore;
use tokio::sync::mpsc;

/// Pairs at `server` (joining with `code`, or asking for one and handing it to `on_code`), sends `line` and
/// says it has finished, and returns the partner's lines when the conversation is over.
pub async fn pair_and_send(
    server: SocketAddr,
    code: Option<Code>,
    line: &str,
    mut on_code: impl FnMut(&str),
) -> io::Result<Vec<String>> {
    let sockets = punch_tokio::bind(&[any_addr_for(server)]).await?;
    let mut config = PeerConfig::joining(server, code);
    config.name = "tokio_peer".into();
    rand::rngs::OsRng.fill_bytes(&mut config.seed); // every secret of the peer derives from this seed
    let (mut peer, now) = (Peer::new(config, punch_tokio::now()), punch_tokio::now());
    let _ = peer.send_message(now, line); // queued until the peer has a path
    peer.finish(now); // "that was all": the FIN follows the line, reliably
    let (commands, command_rx) = mpsc::unbounded_channel::<punch_tokio::Command<Peer>>();
    let (event_tx, mut events) = mpsc::unbounded_channel();
    let driver = tokio::spawn(punch_tokio::run(peer, sockets, command_rx, event_tx));
    let mut got = Vec::new();
    while let Some(event) = events.recv().await {
        match event {
            PeerEvent::CodeAllocated { code } => on_code(&code),
            PeerEvent::Message { text, .. } => got.push(text),
            PeerEvent::ConversationDone => break,
            PeerEvent::Error(e) => return Err(io::Error::other(e)),
            PeerEvent::Disconnected { reason } => return Err(io::Error::other(reason)),
            _ => {}
        }
    }
    let _ = commands.send(Box::new(|peer, now| peer.close(now))); // leave the nameplate
    drop(commands); // the loop ends once it ran the close
    driver.await.map_err(io::Error::other)??;
    Ok(got)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: tokio_peer SERVER_IP:PORT [CODE] [LINE]";
    let server: SocketAddr = args.next().ok_or(usage)?.parse()?; // IP:PORT
    let code = args.next().map(|c| Code::parse(&c)).transpose()?;
    let line = args.next().unwrap_or_else(|| "hello from tokio".into());
    let got = pair_and_send(server, code, &line, |code| {
        println!("code: {code}  (the partner runs: punch chat {code} --server {server})")
    })
    .await?;
    got.iter().for_each(|text| println!("> {text}"));
    Ok(())
}
