//! `punch demo`: a server and two peers (alice, bob) in this process, on loopback, over real UDP sockets.
//! First session: they punch and chat directly. Second session: the same with `--relay-only` semantics, so the
//! relay path is shown too. Prints what happened; exits 0 when every message arrived once, in order.
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use punch_core::{Path, Peer, PeerConfig, PeerEvent};
use punch_core::{Server, ServerConfig};

use crate::driver::{Input, Running, Runtime};
use crate::output::{demo_session_json, DemoPeer};
use crate::{secure_seed, seed};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// The async runtime that drives the sockets (both run the same core).
    #[arg(long, value_enum, default_value = "tokio")]
    runtime: Runtime,
    /// Print one JSON summary object per session instead of text.
    #[arg(long)]
    json: bool,
}

struct Side {
    name: &'static str,
    running: Running<Peer>,
    rx: mpsc::Receiver<Input<PeerEvent>>,
    received: Vec<String>,
    acked: usize,
    path: Option<(Path, Duration)>,
    log: Vec<(f64, String)>,
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let (stx, _srx) = mpsc::channel();
    let mut sc = ServerConfig::new("127.0.0.1:0".parse()?);
    sc.seed = seed();
    let server = Running::start(
        a.runtime,
        &["127.0.0.1:0".parse()?],
        move |locals| {
            sc.listen = locals[0];
            Server::new(sc, punch_tokio::now())
        },
        stx,
    )?;
    let server_addr = server.locals[0];
    if !a.json {
        println!(
            "server   listening on {server_addr} ({:?} runtime)",
            a.runtime
        );
    }
    let mut ok = true;
    for (i, relay_only) in [false, true].into_iter().enumerate() {
        ok &= session(&a, server_addr, &format!("{}", 100 + i), relay_only)?;
    }
    server.stop();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What each side says, in order (alice first).
const LINES: [[&str; 3]; 2] = [
    ["hello bob", "this went through punch", "bye"],
    ["hi alice", "got you loud and clear", "see you"],
];

/// One session: alice and bob join `pool`, exchange [`LINES`] (within 15 s) and report; whether every message
/// arrived once, in order.
fn session(a: &DemoArgs, server: SocketAddr, pool: &str, relay_only: bool) -> Result<bool> {
    let start = Instant::now();
    let mut sides = Vec::new();
    for name in ["alice", "bob"] {
        sides.push(Side::start(a.runtime, server, pool, name, relay_only)?);
    }
    exchange(&mut sides, start)?;
    let ok = sides[0].received == LINES[1] && sides[1].received == LINES[0];
    if a.json {
        let peers: Vec<DemoPeer> = sides
            .iter()
            .map(|s| DemoPeer {
                name: s.name,
                path: s.path,
                received: &s.received,
            })
            .collect();
        crate::output::emit(demo_session_json(relay_only, ok, start.elapsed(), &peers));
    } else {
        print_session(&sides, pool, relay_only, ok);
    }
    for s in sides {
        s.running.command(|p: &mut Peer, now| p.close(now));
        s.running.stop();
    }
    Ok(ok)
}

/// Sends [`LINES`] once both sides have a path, until everything arrived and was acknowledged or 15 s passed.
fn exchange(sides: &mut [Side], start: Instant) -> Result<()> {
    let mut sent = false;
    let deadline = start + Duration::from_secs(15);
    loop {
        for s in sides.iter_mut() {
            s.drain(start)?;
        }
        if !sent && sides.iter().all(|s| s.path.is_some()) {
            for (s, msgs) in sides.iter().zip(LINES) {
                for m in msgs {
                    s.running.command(move |p: &mut Peer, now| {
                        let _ = p.send_message(now, m);
                    });
                }
            }
            sent = true;
        }
        let done = sent
            && sides[0].received == LINES[1]
            && sides[1].received == LINES[0]
            && all_acked(sides);
        if done || Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every side had all its lines acknowledged.
fn all_acked(sides: &[Side]) -> bool {
    sides.iter().all(|s| s.acked == LINES[0].len())
}

/// The text report of a session: both sides' logs merged in time order, then the result.
fn print_session(sides: &[Side], pool: &str, relay_only: bool, ok: bool) {
    let mut log: Vec<(f64, String)> = sides.iter().flat_map(|s| s.log.clone()).collect();
    log.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!();
    println!(
        "session {pool}: {}",
        if relay_only {
            "relay only"
        } else {
            "punch a direct path"
        }
    );
    for (_, l) in log {
        println!("{l}");
    }
    println!(
        "result: {} ({} messages each way, all acknowledged: {})",
        if ok { "ok" } else { "FAILED" },
        LINES[0].len(),
        all_acked(sides)
    );
}

impl Side {
    /// Starts the peer `name` in `pool` on loopback.
    fn start(
        runtime: Runtime,
        server: SocketAddr,
        pool: &str,
        name: &'static str,
        relay_only: bool,
    ) -> Result<Side> {
        let (tx, rx) = mpsc::channel();
        let code = format!("{pool}-demo-secret");
        let mut c = PeerConfig::new(server, code.parse()?);
        c.name = name.into();
        c.relay_only = relay_only;
        c.seed = secure_seed();
        let running = Running::start(
            runtime,
            &["127.0.0.1:0".parse()?],
            move |locals| {
                c.local_addrs = locals.to_vec();
                Peer::new(c, punch_tokio::now())
            },
            tx,
        )?;
        Ok(Side {
            name,
            running,
            rx,
            received: Vec::new(),
            acked: 0,
            path: None,
            log: Vec::new(),
        })
    }

    /// Takes in the events so far, logging them with their time since `start`.
    fn drain(&mut self, start: Instant) -> Result<()> {
        while let Ok(Input::Event(e)) = self.rx.try_recv() {
            let t = start.elapsed().as_secs_f64() * 1000.0;
            match &e {
                PeerEvent::Path { path, rtt } => self.path = Some((*path, *rtt)),
                PeerEvent::Message { text, .. } => self.received.push(text.clone()),
                PeerEvent::Acked { .. } => self.acked += 1,
                PeerEvent::Error(err) => bail!("{}: {err}", self.name),
                _ => {}
            }
            if let Some(line) = crate::output::peer_event_text(&e) {
                self.log
                    .push((t, format!("{t:>8.2} ms  {:<5} {line}", self.name)));
            }
            if let PeerEvent::Message { text, .. } = &e {
                self.log.push((
                    t,
                    format!("{t:>8.2} ms  {:<5} received {text:?}", self.name),
                ));
            }
        }
        Ok(())
    }
}
