//! `punch chat POOL`: lines on stdin are sent, messages go to stdout, status to stderr (or everything as JSON
//! lines on stdout with `--json`). When stdin ends, punch says so to the peer (a FIN after the last line) and
//! waits (bounded by `--wait`) until every sent line is acknowledged and the peer has finished too, then
//! leaves the pool and exits 0.
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

enum Local {
    Queued,
    Refused(String),
    FinQueued(u64),
}

/// How long to keep answering after both sides are done, so a retransmitted FIN still gets its ACK.
const GRACE: Duration = Duration::from_millis(300);

/// What this side knows about the end of the conversation.
#[derive(Default)]
struct Progress {
    submitted: u64,
    settled: u64,
    queued: u64,
    acked: u64,
    fin_seq: Option<u64>,
    fin_acked: bool,
    peer_finished: bool,
    has_path: bool,
}

impl Progress {
    fn local(&mut self, l: Local, json: bool) {
        match l {
            Local::Queued => {
                self.settled += 1;
                self.queued += 1;
            }
            Local::Refused(why) => {
                self.settled += 1;
                report_error(json, &format!("not sent: {why}"));
            }
            Local::FinQueued(seq) => self.fin_seq = Some(seq),
        }
    }
    /// Every line we read was sent and acknowledged.
    fn ours_delivered(&self) -> bool {
        self.settled == self.submitted && self.queued == self.acked
    }
    /// Both sides said everything and heard everything.
    fn done(&self) -> bool {
        self.ours_delivered() && self.fin_acked && self.peer_finished
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

    // The rule: when stdin ends we send a FIN after our lines. We leave once our lines and FIN are
    // acknowledged and the peer's FIN has arrived (so we have all its lines too), or the peer left after
    // getting everything of ours, or --wait runs out.
    let mut p = Progress::default();
    let mut eof_at: Option<Instant> = None;
    let mut done_at: Option<Instant> = None;
    let mut peer_name = String::from("peer");
    let code = loop {
        while let Ok(l) = lrx.try_recv() {
            p.local(l, a.json);
        }
        let now = Instant::now();
        if eof_at.is_some() && p.done() {
            let t = *done_at.get_or_insert(now);
            if now.duration_since(t) >= GRACE {
                running.command(|p: &mut Peer, now| p.close(now));
                break ExitCode::SUCCESS;
            }
        }
        if let Some(t) = eof_at {
            if now.duration_since(t) >= Duration::from_secs(a.wait) {
                running.command(|p: &mut Peer, now| p.close(now));
                if p.ours_delivered() && p.has_path {
                    if !p.peer_finished {
                        report_note(
                            a.json,
                            "the peer is still sending; leaving (--wait ran out)",
                        );
                    }
                    break ExitCode::SUCCESS;
                }
                let why = if p.has_path {
                    format!(
                        "{} message(s) not acknowledged after {} s",
                        p.queued - p.acked,
                        a.wait
                    )
                } else {
                    format!("no peer joined pool {:?} within {} s", a.pool, a.wait)
                };
                report_error(a.json, &why);
                break ExitCode::from(1);
            }
        }
        let input = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(i) => i,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break ExitCode::from(1),
        };
        // Local results of commands run before this event happened are already in the channel.
        while let Ok(l) = lrx.try_recv() {
            p.local(l, a.json);
        }
        match input {
            Input::Event(e) => {
                if a.json {
                    println!("{}", output::peer_event_json(&e));
                } else if let Some(line) = output::peer_event_text(&e) {
                    eprintln!("punch: {line}");
                }
                match e {
                    PeerEvent::Message { text, .. } if !a.json => println!("<{peer_name}> {text}"),
                    PeerEvent::Acked { seq } if Some(seq) == p.fin_seq => p.fin_acked = true,
                    PeerEvent::Acked { .. } => p.acked += 1,
                    PeerEvent::PeerFinished => p.peer_finished = true,
                    PeerEvent::Paired { name, .. } if !name.is_empty() => peer_name = name,
                    PeerEvent::Path { .. } => p.has_path = true,
                    PeerEvent::Error(PeerError::ServerUnreachable) => break ExitCode::from(2),
                    PeerEvent::Error(_) => break ExitCode::from(3),
                    PeerEvent::Disconnected { .. } => {
                        // The peer left: fine if it had everything of ours (and we finished too).
                        break if eof_at.is_some() && p.ours_delivered() {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(1)
                        };
                    }
                    _ => {}
                }
            }
            Input::Line(line) => {
                if line.is_empty() || eof_at.is_some() {
                    continue;
                }
                p.submitted += 1;
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
                let ltx = ltx.clone();
                running.command(move |p: &mut Peer, now| {
                    let _ = ltx.send(Local::FinQueued(p.finish(now)));
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
