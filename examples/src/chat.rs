//! `punch chat POOL`: lines on stdin are sent, messages go to stdout, status to stderr (or everything as JSON
//! lines on stdout with `--json`). When stdin ends, punch says so to the peer (a FIN after the last line) and
//! waits (bounded by `--wait`) until the peer reports the conversation over (`PeerEvent::ConversationDone`:
//! every line acknowledged and the peer finished too), then leaves the pool and exits 0.
use std::collections::BTreeSet;
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
}

/// What happened to a line handed to the peer (sent back from the driver thread).
enum Local {
    Queued(u64),
    Refused(String),
}

/// Our lines that are not known to be delivered: the CLI reports them when `--wait` runs out or the peer
/// leaves. (When the conversation is over is the peer's call: [`PeerEvent::ConversationDone`].)
#[derive(Default)]
struct Outbox {
    /// Lines handed to the peer whose fate (queued or refused) has not come back yet.
    pending: u64,
    /// Sequence numbers of queued lines not acknowledged yet (the FIN is not one of them).
    unacked: BTreeSet<u64>,
}

impl Outbox {
    fn local(&mut self, l: Local, json: bool) {
        self.pending -= 1;
        match l {
            Local::Queued(seq) => {
                self.unacked.insert(seq);
            }
            Local::Refused(why) => report_error(json, &format!("not sent: {why}")),
        }
    }
    /// Every line we read was sent and acknowledged.
    fn delivered(&self) -> bool {
        self.pending == 0 && self.unacked.is_empty()
    }
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

    // When stdin ends we send a FIN after our lines (Peer::finish). We leave when the peer says the
    // conversation is over (ConversationDone), or the peer left after getting everything of ours, or --wait
    // runs out.
    let mut outbox = Outbox::default();
    let mut deadline: Option<Instant> = None;
    let mut peer_finished = false;
    let mut has_path = false;
    let mut peer_name = String::from("peer");
    let code = loop {
        let input = match deadline {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(t) if Instant::now() >= t => Err(mpsc::RecvTimeoutError::Timeout),
            Some(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
        };
        // Local results of commands run before this input happened are already in the channel.
        while let Ok(l) = lrx.try_recv() {
            outbox.local(l, a.json);
        }
        let input = match input {
            Ok(i) => i,
            Err(mpsc::RecvTimeoutError::Disconnected) => break ExitCode::from(1),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                running.command(|p: &mut Peer, now| p.close(now));
                if outbox.delivered() && has_path {
                    if !peer_finished {
                        report_note(
                            a.json,
                            "the peer is still sending; leaving (--wait ran out)",
                        );
                    }
                    break ExitCode::SUCCESS;
                }
                let why = if has_path {
                    format!(
                        "{} message(s) not acknowledged after {} s",
                        outbox.unacked.len(),
                        a.wait
                    )
                } else {
                    format!("no peer joined pool {:?} within {} s", a.pool, a.wait)
                };
                report_error(a.json, &why);
                break ExitCode::from(1);
            }
        };
        match input {
            Input::Event(e) => {
                if a.json {
                    println!("{}", output::peer_event_json(&e));
                } else if let Some(line) = output::peer_event_text(&e) {
                    eprintln!("punch: {line}");
                }
                match e {
                    PeerEvent::Message { text, .. } if !a.json => println!("<{peer_name}> {text}"),
                    PeerEvent::Acked { seq } => {
                        outbox.unacked.remove(&seq);
                    }
                    PeerEvent::PeerFinished => peer_finished = true,
                    PeerEvent::Paired { name, .. } if !name.is_empty() => peer_name = name,
                    PeerEvent::Path { .. } => has_path = true,
                    PeerEvent::ConversationDone => {
                        running.command(|p: &mut Peer, now| p.close(now));
                        break ExitCode::SUCCESS;
                    }
                    PeerEvent::Error(PeerError::ServerUnreachable) => break ExitCode::from(2),
                    PeerEvent::Error(_) => break ExitCode::from(3),
                    PeerEvent::Disconnected { .. } => {
                        // The peer left: fine if it had everything of ours (and we finished too).
                        break if deadline.is_some() && outbox.delivered() {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(1)
                        };
                    }
                    _ => {}
                }
            }
            Input::Line(line) => {
                if line.is_empty() || deadline.is_some() {
                    continue;
                }
                outbox.pending += 1;
                let ltx = ltx.clone();
                running.command(move |p: &mut Peer, now| {
                    let _ = ltx.send(match p.send_message(now, &line) {
                        Ok(seq) => Local::Queued(seq),
                        Err(e) => Local::Refused(e.to_string()),
                    });
                });
            }
            Input::Eof => {
                deadline = Some(Instant::now() + Duration::from_secs(a.wait));
                running.command(|p: &mut Peer, now| {
                    p.finish(now);
                });
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

fn report_note(json: bool, what: &str) {
    if json {
        println!("{}", serde_json::json!({"event": "note", "note": what}));
    } else {
        eprintln!("punch: {what}");
    }
}

fn report_error(json: bool, why: &str) {
    if json {
        println!("{}", serde_json::json!({"event": "error", "error": why}));
    } else {
        eprintln!("punch: {why}");
    }
}
