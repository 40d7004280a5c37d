//! A chat peer on a blocking `std::net::UdpSocket`, written from the five verbs alone (no async runtime).
//! It pairs with `punch chat`: lines from stdin go to the partner, the partner's lines go to stdout.
//!
//! ```text
//! cargo run -p punch-core --example blocking_peer -- SERVER:PORT          # prints a code to share
//! cargo run -p punch-core --example blocking_peer -- SERVER:PORT 7-guitar-revenge   # joins with it
//! ```
use std::io::{self, BufRead};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use punch_core::drive::{any_addr_for, RECV_BUFFER};
use punch_core::{secure::Code, Machine, Peer, PeerConfig, PeerEvent, Server, ServerConfig};
use rand::RngCore;

/// The clock: core never reads one, a driver does.
#[allow(clippy::disallowed_methods)]
fn clock() -> Instant {
    Instant::now()
}

/// Drives any machine on one socket until `app` returns false. `app` sees every event (`Some`) and an idle
/// call (`None`) at least every 50 ms, where it may feed the machine (here: lines typed on stdin).
pub fn run<M: Machine>(
    socket: &UdpSocket,
    m: &mut M,
    mut app: impl FnMut(&mut M, Instant, Option<M::Event>) -> bool,
) -> io::Result<()> {
    let (local, mut buf) = (socket.local_addr()?, [0u8; RECV_BUFFER]);
    loop {
        let now = clock();
        if m.poll_timeout().is_some_and(|at| at <= now) {
            m.handle_timeout(now);
        }
        let mut go_on = app(m, now, None);
        while let Some(event) = m.poll_event() {
            go_on &= app(m, now, Some(event));
        }
        while let Some(t) = m.poll_transmit() {
            let _ = socket.send_to(&t.payload, t.destination); // UDP: a failed send is a lost datagram
        }
        if !go_on {
            return Ok(());
        }
        let wait = m
            .poll_timeout()
            .map_or(Duration::MAX, |at| at.saturating_duration_since(now));
        socket.set_read_timeout(Some(
            wait.clamp(Duration::from_millis(1), Duration::from_millis(50)),
        ))?;
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            m.handle_input(clock(), local, from, &buf[..n]);
        }
    }
}

/// A rendezvous server on a new socket bound to `at`, in a thread of its own, until the returned flag is set:
/// the same loop drives a server (the tests pair peers through it). Returns the server's address too.
pub fn spawn_server(at: &str) -> io::Result<(SocketAddr, Arc<AtomicBool>, ServerThread)> {
    let socket = UdpSocket::bind(at)?;
    let addr = socket.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = thread::spawn(move || {
        let mut server = Server::new(ServerConfig::new(addr), clock());
        run(&socket, &mut server, |_, _, _| {
            !flag.load(Ordering::Relaxed)
        })
    });
    Ok((addr, stop, handle))
}

/// What [`spawn_server`]'s thread returns when it stops.
pub type ServerThread = thread::JoinHandle<io::Result<()>>;

/// Chats until both sides have finished (`lines` closed on this side): `show` sees every event.
pub fn chat(
    server: SocketAddr,
    code: Option<Code>,
    lines: Receiver<String>,
    mut show: impl FnMut(&PeerEvent),
) -> io::Result<()> {
    let socket = UdpSocket::bind(any_addr_for(server))?;
    let mut config = PeerConfig::joining(server, code);
    config.name = "blocking_peer".into(); // what the partner sees
    rand::rngs::OsRng.fill_bytes(&mut config.seed); // every secret of the peer derives from this seed
    let mut peer = Peer::new(config, clock());
    let mut finished = false;
    run(&socket, &mut peer, |peer, now, event| match event {
        None => {
            match lines.try_recv() {
                Ok(line) => drop(peer.send_message(now, &line)),
                Err(TryRecvError::Disconnected) if !finished => {
                    peer.finish(now); // stdin closed: a FIN follows the queued lines
                    finished = true;
                }
                Err(_) => {}
            }
            true
        }
        Some(e) => {
            show(&e);
            let over = matches!(
                e,
                PeerEvent::ConversationDone | PeerEvent::Error(_) | PeerEvent::Disconnected { .. }
            );
            if over {
                peer.close(now);
            }
            !over
        }
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: blocking_peer SERVER:PORT [CODE]";
    let server = args
        .next()
        .ok_or(usage)?
        .to_socket_addrs()?
        .next()
        .ok_or(usage)?;
    let code = args.next().map(|c| Code::parse(&c)).transpose()?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .try_for_each(|l| tx.send(l))
    });
    chat(server, code, lines, |event| match event {
        PeerEvent::CodeAllocated { code } => {
            println!("code: {code}  (the partner runs: punch chat {code} --server {server})")
        }
        PeerEvent::Message { text, .. } => println!("> {text}"),
        other => eprintln!("{other:?}"),
    })?;
    Ok(())
}
