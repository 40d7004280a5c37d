//! `punch demo`: a server and two peers (alice, bob) in this process, on loopback, over real UDP sockets.
//! First session: they punch and chat directly. Second session: the same with `--relay-only` semantics, so the
//! relay path is shown too. Prints what happened; exits 0 when every message arrived once, in order.
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use punch_core::peer::{Path, Peer, PeerConfig, PeerEvent};
use punch_core::server::{Server, ServerConfig};

use crate::driver::{Input, Running, Runtime};
use crate::output::{demo_session_json, DemoPeer};
use crate::seed;

#[derive(clap::Args)]
pub struct DemoArgs {
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
        ok &= session(&a, server_addr, &format!("demo-{i}"), relay_only)?;
    }
    server.stop();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn session(a: &DemoArgs, server: SocketAddr, pool: &str, relay_only: bool) -> Result<bool> {
    let start = Instant::now();
    let mut sides = Vec::new();
    for name in ["alice", "bob"] {
        let (tx, rx) = mpsc::channel();
        let mut c = PeerConfig::new(server, pool);
        c.name = name.into();
        c.relay_only = relay_only;
        c.seed = seed() ^ name.len() as u64;
        let running = Running::start(
            a.runtime,
            &["127.0.0.1:0".parse()?],
            move |locals| {
                c.local_addrs = locals.to_vec();
                Peer::new(c, punch_tokio::now())
            },
            tx,
        )?;
        sides.push(Side {
            name,
            running,
            rx,
            received: Vec::new(),
            acked: 0,
            path: None,
            log: Vec::new(),
        });
    }
    let lines: [Vec<String>; 2] = [
        vec![
            "hello bob".into(),
            "this went through punch".into(),
            "bye".into(),
        ],
        vec![
            "hi alice".into(),
            "got you loud and clear".into(),
            "see you".into(),
        ],
    ];
    let mut sent = false;
    let deadline = start + Duration::from_secs(15);
    loop {
        for s in sides.iter_mut() {
            while let Ok(Input::Event(e)) = s.rx.try_recv() {
                let t = start.elapsed().as_secs_f64() * 1000.0;
                match &e {
                    PeerEvent::Path { path, rtt } => s.path = Some((*path, *rtt)),
                    PeerEvent::Message { text, .. } => s.received.push(text.clone()),
                    PeerEvent::Acked { .. } => s.acked += 1,
                    PeerEvent::Error(err) => bail!("{}: {err}", s.name),
                    _ => {}
                }
                if let Some(line) = crate::output::peer_event_text(&e) {
                    s.log
                        .push((t, format!("{t:>8.2} ms  {:<5} {line}", s.name)));
                }
                if let PeerEvent::Message { text, .. } = &e {
                    s.log
                        .push((t, format!("{t:>8.2} ms  {:<5} received {text:?}", s.name)));
                }
            }
        }
        if !sent && sides.iter().all(|s| s.path.is_some()) {
            for (s, msgs) in sides.iter().zip(lines.iter()) {
                for m in msgs.clone() {
                    s.running.command(move |p: &mut Peer, now| {
                        let _ = p.send_message(now, &m);
                    });
                }
            }
            sent = true;
        }
        let done = sent
            && sides[0].received == lines[1]
            && sides[1].received == lines[0]
            && sides.iter().all(|s| s.acked == 3);
        if done || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let ok = sides[0].received == lines[1] && sides[1].received == lines[0];
    let mut log: Vec<(f64, String)> = sides.iter().flat_map(|s| s.log.clone()).collect();
    log.sort_by(|a, b| a.0.total_cmp(&b.0));
    if a.json {
        let peers: Vec<DemoPeer> = sides
            .iter()
            .map(|s| DemoPeer {
                name: s.name,
                path: s.path,
                received: &s.received,
            })
            .collect();
        let v = demo_session_json(relay_only, ok, start.elapsed(), &peers);
        println!("{v}");
    } else {
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
            lines[0].len(),
            sides.iter().all(|s| s.acked == 3)
        );
    }
    for s in sides {
        s.running.command(|p: &mut Peer, now| p.close(now));
        s.running.stop();
    }
    Ok(ok)
}
