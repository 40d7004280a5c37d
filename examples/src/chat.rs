//! `punch chat POOL`: lines on stdin are sent, messages go to stdout, status to stderr (or everything as JSON
//! lines on stdout with `--json`). When stdin ends, punch waits (bounded by `--wait`) until every sent message
//! is acknowledged and the peer has been quiet for a moment, then leaves the pool and exits 0.
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use punch_core::peer::{Peer, PeerConfig, PeerError, PeerEvent};

use crate::driver::{self, Input, Running, Runtime};
use crate::{announce, any_addr, output, parse_addr, seed};

#[derive(clap::Args)]
pub struct ChatArgs {
    /// The pool to join: the first two peers in a pool are paired.
    pool: String,
    /// The punch server.
    #[arg(long, default_value = "127.0.0.1:3478", value_parser = parse_addr)]
    server: SocketAddr,
    /// Your display name.
    #[arg(long, default_value = "")]
    name: String,
    /// Local address to bind (default: any address, a random port).
    #[arg(long, value_parser = parse_addr)]
    bind: Option<SocketAddr>,
    #[arg(long, value_enum, default_value = "tokio")]
    runtime: Runtime,
    /// Never try a direct path: chat through the server's relay.
    #[arg(long)]
    relay_only: bool,
    /// Skip NAT behaviour detection (register with an unknown behaviour).
    #[arg(long)]
    no_detect: bool,
    /// One JSON object per line on stdout for every event.
    #[arg(long)]
    json: bool,
    /// After stdin ends, how long to wait at most for the peer and the acknowledgements (seconds).
    #[arg(long, default_value_t = 60)]
    wait: u64,
    /// After everything is acknowledged, stay until the peer has been quiet this long (milliseconds).
    #[arg(long, default_value_t = 1000)]
    linger: u64,
}

enum Local {
    Queued,
    Refused(String),
}

pub fn run(a: ChatArgs) -> Result<ExitCode> {
    if a.pool.is_empty() || a.pool.len() > 64 {
        anyhow::bail!("the pool name must be 1 to 64 bytes");
    }
    if a.name.len() > 64 {
        anyhow::bail!("the name must be at most 64 bytes");
    }
    let server = a.server;
    let bind = a.bind.unwrap_or_else(|| any_addr(server));
    let (tx, rx) = mpsc::channel::<Input<PeerEvent>>();
    let (ltx, lrx) = mpsc::channel::<Local>();
    let mut config = PeerConfig::new(server, a.pool.clone());
    config.name = a.name.clone();
    config.relay_only = a.relay_only;
    config.detect_nat = !a.no_detect;
    config.seed = seed();
    let running = Running::start(
        a.runtime,
        &[bind],
        move |locals| {
            config.local_addrs = announce(locals[0], server);
            Peer::new(config, punch_tokio::now())
        },
        tx.clone(),
    )?;
    if !a.json {
        eprintln!(
            "punch: joining pool {:?} at {server} from {}",
            a.pool, running.locals[0]
        );
    }
    driver::read_stdin(tx.clone());
    driver::on_interrupt(tx);

    let mut submitted = 0u64;
    let mut settled = 0u64;
    let mut queued = 0u64;
    let mut acked = 0u64;
    let mut eof_at: Option<Instant> = None;
    let mut last_rx = Instant::now();
    let mut has_path = false;
    let mut peer_name = String::from("peer");
    let code = loop {
        while let Ok(l) = lrx.try_recv() {
            match l {
                Local::Queued => {
                    settled += 1;
                    queued += 1;
                }
                Local::Refused(why) => {
                    settled += 1;
                    if a.json {
                        println!("{}", serde_json::json!({"event": "error", "error": why}));
                    } else {
                        eprintln!("punch: not sent: {why}");
                    }
                }
            }
        }
        let now = Instant::now();
        if let Some(t) = eof_at {
            if has_path
                && settled == submitted
                && queued == acked
                && now.duration_since(last_rx) >= Duration::from_millis(a.linger)
            {
                running.command(|p: &mut Peer, now| p.close(now));
                break ExitCode::SUCCESS;
            }
            if now.duration_since(t) >= Duration::from_secs(a.wait) {
                let why = if has_path {
                    format!(
                        "{} message(s) not acknowledged after {} s",
                        queued - acked,
                        a.wait
                    )
                } else {
                    format!("no peer joined pool {:?} within {} s", a.pool, a.wait)
                };
                report_error(a.json, &why);
                running.command(|p: &mut Peer, now| p.close(now));
                break ExitCode::from(1);
            }
        }
        let input = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(i) => i,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break ExitCode::from(1),
        };
        match input {
            Input::Event(e) => {
                if a.json {
                    println!("{}", output::peer_event_json(&e));
                } else if let Some(line) = output::peer_event_text(&e) {
                    eprintln!("punch: {line}");
                }
                match e {
                    PeerEvent::Message { text, .. } => {
                        last_rx = Instant::now();
                        if !a.json {
                            println!("<{peer_name}> {text}");
                        }
                    }
                    PeerEvent::Acked { .. } => acked += 1,
                    PeerEvent::Paired { name, .. } if !name.is_empty() => peer_name = name,
                    PeerEvent::Path { .. } => has_path = true,
                    PeerEvent::Error(PeerError::ServerUnreachable) => break ExitCode::from(2),
                    PeerEvent::Error(_) => break ExitCode::from(3),
                    PeerEvent::Disconnected { .. } => {
                        break if eof_at.is_some() && queued == acked {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(1)
                        };
                    }
                    _ => {}
                }
            }
            Input::Line(line) => {
                if line.is_empty() {
                    continue;
                }
                submitted += 1;
                let ltx = ltx.clone();
                running.command(move |p: &mut Peer, now| {
                    let _ = ltx.send(match p.send_message(now, &line) {
                        Ok(_) => Local::Queued,
                        Err(e) => Local::Refused(e.to_string()),
                    });
                });
            }
            Input::Eof => {
                eof_at = Some(Instant::now());
                last_rx = Instant::now();
            }
            Input::Interrupt => {
                running.command(|p: &mut Peer, now| p.close(now));
                break ExitCode::from(130);
            }
            Input::DriverStopped(r) => {
                r?;
                break ExitCode::from(1);
            }
        }
    };
    running.stop();
    Ok(code)
}

fn report_error(json: bool, why: &str) {
    if json {
        println!("{}", serde_json::json!({"event": "error", "error": why}));
    } else {
        eprintln!("punch: {why}");
    }
}
