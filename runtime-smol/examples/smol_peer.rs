//! A chat peer on the smol (async-io) driver: pairs through a punch server, sends one line, prints what the
//! partner says, and finishes. It pairs with `punch chat` and with itself.
//!
//! ```text
//! cargo run -p punch-smol --example smol_peer -- SERVER_IP:PORT                 # prints a code to share
//! cargo run -p punch-smol --example smol_peer -- SERVER_IP:PORT CODE "a line"   # joins with it
//! ```
use std::io;
use std::net::SocketAddr;

use futures_lite::future;
use punch_core::drive::any_addr_for;
use punch_core::{secure::Code, Peer, PeerConfig, PeerEvent};
use rand::RngCore;

/// Pairs at `server` (joining with `code`, or asking for one and handing it to `on_code`), sends `line` and
/// says it has finished, and returns the partner's lines when the conversation is over.
pub async fn pair_and_send(
    server: SocketAddr,
    code: Option<Code>,
    line: &str,
    mut on_code: impl FnMut(&str),
) -> io::Result<Vec<String>> {
    let sockets = punch_smol::bind(&[any_addr_for(server)])?;
    let mut config = PeerConfig::joining(server, code);
    config.name = "smol_peer".into();
    rand::rngs::OsRng.fill_bytes(&mut config.seed); // every secret of the peer derives from this seed
    let (mut peer, now) = (Peer::new(config, punch_smol::now()), punch_smol::now());
    let _ = peer.send_message(now, line); // queued until the peer has a path
    peer.finish(now); // "that was all": the FIN follows the line, reliably
    let (commands, command_rx) = punch_smol::unbounded::<punch_smol::Command<Peer>>();
    let (event_tx, events) = punch_smol::unbounded();
    let app = async move {
        let mut got = Vec::new();
        loop {
            match events.recv().await {
                Ok(PeerEvent::CodeAllocated { code }) => on_code(&code),
                Ok(PeerEvent::Message { text, .. }) => got.push(text),
                Ok(PeerEvent::ConversationDone) | Err(_) => break, // done, or the driver stopped
                Ok(PeerEvent::Error(e)) => return Err(io::Error::other(e)),
                Ok(PeerEvent::Disconnected { reason }) => return Err(io::Error::other(reason)),
                Ok(_) => {}
            }
        }
        let _ = commands.try_send(Box::new(|peer, now| peer.close(now))); // leave the nameplate
        Ok(got) // dropping `commands` ends the loop once it ran the close
    };
    let driver = punch_smol::run(peer, sockets, command_rx, event_tx);
    let (driven, got) = future::zip(driver, app).await;
    driven?;
    got
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: smol_peer SERVER_IP:PORT [CODE] [LINE]";
    let server: SocketAddr = args.next().ok_or(usage)?.parse()?; // IP:PORT
    let code = args.next().map(|c| Code::parse(&c)).transpose()?;
    let line = args.next().unwrap_or_else(|| "hello from smol".into());
    let got = async_io::block_on(pair_and_send(server, code, &line, |code| {
        println!("code: {code}  (the partner runs: punch chat {code} --server {server})")
    }))?;
    got.iter().for_each(|text| println!("> {text}"));
    Ok(())
}
