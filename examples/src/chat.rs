//! `punch chat [CODE]`: without a code, punch makes one (a nameplate and two words) and prints the command to
//! share; with one, it joins. Lines on stdin are sent, messages go to stdout, status to stderr (or everything as JSON
//! lines on stdout with `--json`). When stdin ends, punch says so to the peer (a FIN after the last line) and
//! waits (bounded by `--wait`) until the peer reports the conversation over (`PeerEvent::ConversationDone`:
//! every line acknowledged and the peer finished too), then leaves the pool and exits 0.
//!
//! Every way out (the conversation over, the peer gone, Ctrl-C, an error, `--wait` running out) leaves the
//! pool (`Peer::close`: a Leave to the server, which tells the partner) and stops the driver only after it
//! has sent that datagram. The exit code is 1 whenever a line was not delivered: unacknowledged, refused
//! (too long, too many waiting) or not UTF-8 (skipped, by line number). The peer's text and name are printed
//! with control characters and bidi overrides escaped (`output::escape_controls`).
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use punch_core::secure::Code;
use punch_core::wire::MAX_NAME_BYTES;
use punch_core::{Peer, PeerConfig, PeerError, PeerEvent};

use crate::driver::{self, Input, Running, Runtime};
use crate::{announce, any_addr, output, parse_addr, secure_seed};

#[derive(clap::Args)]
pub struct ChatArgs {
    /// The join code, like 7-guitar-revenge (omit it to make a new one). The number is all the server sees;
    /// the words key the end-to-end encryption and never leave this machine.
    code: Option<String>,
    /// The punch server, `HOST[:PORT]` (port 3478 by default).
    #[arg(long, env = "PUNCH_SERVER", default_value = "127.0.0.1:3478", value_parser = parse_addr)]
    server: SocketAddr,
    /// Your display name.
    #[arg(long, default_value = "")]
    name: String,
    /// Local address to bind (default: any address, a random port).
    #[arg(long, value_parser = parse_addr)]
    bind: Option<SocketAddr>,
    /// The async runtime that drives the socket (both run the same core).
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
    /// Lines that will never be delivered: refused (too long, queue full), or not UTF-8.
    lost: u64,
}

impl Outbox {
    fn local(&mut self, l: Local, json: bool) {
        self.pending -= 1;
        match l {
            Local::Queued(seq) => {
                self.unacked.insert(seq);
                if json {
                    output::emit(serde_json::json!({"event": "sent", "seq": seq}));
                }
            }
            Local::Refused(why) => self.lose(json, "not_sent", &format!("not sent: {why}")),
        }
    }
    /// A line that will never be delivered: reported, and the exit code is 1.
    fn lose(&mut self, json: bool, code: &str, why: &str) {
        self.lost += 1;
        report_error(json, code, why);
    }
    /// Every line we read was sent and acknowledged.
    fn delivered(&self) -> bool {
        self.pending == 0 && self.unacked.is_empty() && self.lost == 0
    }
}

pub fn run(a: ChatArgs) -> Result<ExitCode> {
    check_names(&a)?;
    let code = join_code(&a)?;
    let (tx, rx) = driver::channel(ends_chat);
    let running = start_peer(&a, code.clone(), tx.clone())?;
    match (&code, a.json) {
        (Some(code), true) => output::emit(output::code_json(code)),
        (Some(code), false) => eprintln!(
            "punch: joining nameplate {} at {} from {}",
            code.nameplate(),
            a.server,
            running.locals[0]
        ),
        (None, false) => eprintln!(
            "punch: asking {} for a nameplate, from {}",
            a.server, running.locals[0]
        ),
        (None, true) => {}
    }
    driver::read_stdin(tx.clone());
    driver::on_interrupt(tx);
    let mut chat = Chat::new(&a, running);
    let code = chat.run(&rx);
    // Every way out (Ctrl-C, the peer gone, an error, --wait) tells the server (a Leave: the partner hears
    // at once and the nameplate is free again), and the driver sends it before the process ends.
    chat.close();
    chat.running.stop();
    let code = code?;
    // A line refused after the end was decided still counts.
    while let Ok(l) = chat.local_rx.try_recv() {
        chat.outbox.local(l, a.json);
    }
    Ok(if code == ExitCode::SUCCESS && chat.outbox.lost > 0 {
        ExitCode::from(1)
    } else {
        code
    })
}

/// Events the chat cannot do without (they end it, or decide its exit code): they get extra room in the
/// input queue.
fn ends_chat(e: &PeerEvent) -> bool {
    matches!(
        e,
        PeerEvent::Acked { .. }
            | PeerEvent::PeerFinished
            | PeerEvent::ConversationDone
            | PeerEvent::Error(_)
            | PeerEvent::Disconnected { .. }
            | PeerEvent::Path { .. }
            | PeerEvent::CodeAllocated { .. }
    )
}

/// The code given (checked), or `None`: the server allocates a nameplate and the peer makes the words.
fn join_code(a: &ChatArgs) -> Result<Option<Code>> {
    a.code
        .as_ref()
        .map(|text| {
            text.parse()
                .map_err(|e| anyhow::anyhow!("invalid code {text:?}: {e}"))
        })
        .transpose()
}

/// The display name must fit the wire format (core's limit).
fn check_names(a: &ChatArgs) -> Result<()> {
    if a.name.len() > MAX_NAME_BYTES {
        anyhow::bail!("the name must be at most {MAX_NAME_BYTES} bytes");
    }
    Ok(())
}

/// Starts the peer on the chosen runtime, its events going into `inputs`.
fn start_peer(
    a: &ChatArgs,
    code: Option<Code>,
    inputs: driver::Sender<PeerEvent>,
) -> Result<Running<Peer>> {
    let mut config = PeerConfig::joining(a.server, code);
    config.name = a.name.clone();
    config.relay_only = a.relay_only;
    config.detect_nat = !a.no_detect;
    config.seed = secure_seed();
    let bind = a.bind.unwrap_or_else(|| any_addr(a.server));
    let server = a.server;
    let make = move |locals: &[SocketAddr]| {
        config.local_addrs = announce(locals[0], server);
        Peer::new(config, punch_tokio::now())
    };
    Running::start(a.runtime, &[bind], make, inputs)
}

/// The chat loop's state: one method per kind of input.
///
/// When stdin ends we send a FIN after our lines (Peer::finish). We leave when the peer says the conversation
/// is over (ConversationDone), or the peer left after getting everything of ours, or --wait runs out.
struct Chat<'a> {
    a: &'a ChatArgs,
    running: Running<Peer>,
    /// Where the driver thread reports what became of each line handed to the peer.
    local_tx: mpsc::Sender<Local>,
    local_rx: mpsc::Receiver<Local>,
    outbox: Outbox,
    /// Set when stdin ends: how long we still wait for the peer.
    deadline: Option<Instant>,
    peer_finished: bool,
    has_path: bool,
    peer_name: String,
}

impl<'a> Chat<'a> {
    fn new(a: &'a ChatArgs, running: Running<Peer>) -> Self {
        let (local_tx, local_rx) = mpsc::channel();
        Chat {
            a,
            running,
            local_tx,
            local_rx,
            outbox: Outbox::default(),
            deadline: None,
            peer_finished: false,
            has_path: false,
            peer_name: String::from("peer"),
        }
    }

    /// Handles inputs until one ends the chat; the exit code.
    fn run(&mut self, rx: &driver::Receiver<PeerEvent>) -> Result<ExitCode> {
        loop {
            let input = self.next_input(rx);
            // Local results of commands run before this input happened are already in the channel.
            while let Ok(l) = self.local_rx.try_recv() {
                self.outbox.local(l, self.a.json);
            }
            let end = match input {
                Ok(i) => self.input(i)?,
                Err(mpsc::RecvTimeoutError::Disconnected) => Some(ExitCode::from(1)),
                Err(mpsc::RecvTimeoutError::Timeout) => Some(self.wait_ran_out()),
            };
            if let Some(code) = end {
                return Ok(code);
            }
        }
    }

    /// The next input, waiting at most until the deadline (once there is one).
    fn next_input(
        &self,
        rx: &driver::Receiver<PeerEvent>,
    ) -> Result<Input<PeerEvent>, mpsc::RecvTimeoutError> {
        match self.deadline {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(t) if Instant::now() >= t => Err(mpsc::RecvTimeoutError::Timeout),
            Some(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
        }
    }

    /// Handles one input; `Some(exit code)` when the chat is over.
    fn input(&mut self, input: Input<PeerEvent>) -> Result<Option<ExitCode>> {
        Ok(match input {
            Input::Event(e) => self.event(e),
            Input::Line(line) => {
                self.line(line);
                None
            }
            Input::BadLine(n) => {
                if self.deadline.is_none() {
                    self.outbox.lose(
                        self.a.json,
                        "not_utf8",
                        &format!("line {n} is not UTF-8: skipped"),
                    );
                }
                None
            }
            Input::Note(note) => {
                report_note(self.a.json, &note);
                None
            }
            Input::Eof => {
                self.eof();
                None
            }
            Input::Interrupt => Some(ExitCode::from(130)),
            Input::DriverStopped(r) => {
                r?;
                Some(ExitCode::from(1))
            }
        })
    }

    fn event(&mut self, e: PeerEvent) -> Option<ExitCode> {
        if self.a.json {
            output::emit(output::peer_event_json(&e));
        } else if let Some(line) = output::peer_event_text(&e) {
            eprintln!("punch: {}", output::escape_controls(&line));
        }
        match e {
            PeerEvent::Message { text, .. } if !self.a.json => {
                println!(
                    "<{}> {}",
                    output::escape_controls(&self.peer_name),
                    output::escape_controls(&text)
                )
            }
            PeerEvent::Acked { seq } => {
                self.outbox.unacked.remove(&seq);
            }
            PeerEvent::PeerFinished => self.peer_finished = true,
            PeerEvent::CodeAllocated { code } if !self.a.json => {
                eprintln!("punch: your code is {code}");
                eprintln!(
                    "punch: on the other machine run:  punch chat {code} --server {}",
                    self.a.server
                );
            }
            PeerEvent::Paired { name, .. } if !name.is_empty() => self.peer_name = name,
            PeerEvent::Path { .. } => self.has_path = true,
            PeerEvent::ConversationDone => return Some(ExitCode::SUCCESS),
            PeerEvent::Error(PeerError::ServerUnreachable) => return Some(ExitCode::from(2)),
            PeerEvent::Error(PeerError::WrongCode) => return Some(ExitCode::from(4)),
            PeerEvent::Error(_) => return Some(ExitCode::from(3)),
            PeerEvent::Disconnected { .. } => {
                // The peer left: fine if it had everything of ours (and we finished too).
                return Some(if self.deadline.is_some() && self.outbox.delivered() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            _ => {}
        }
        None
    }

    /// A line on stdin: hand it to the peer (unless empty, or stdin already ended).
    fn line(&mut self, line: String) {
        if line.is_empty() || self.deadline.is_some() {
            return;
        }
        let ltx = self.local_tx.clone();
        let queued = self.running.try_command(move |p: &mut Peer, now| {
            let _ = ltx.send(match p.send_message(now, &line) {
                Ok(seq) => Local::Queued(seq),
                Err(e) => Local::Refused(e.to_string()),
            });
        });
        if queued {
            self.outbox.pending += 1;
        } else {
            let why = "not sent: too many lines waiting for the network loop";
            self.outbox.lose(self.a.json, "queue_full", why);
        }
    }

    /// Stdin ended: send the FIN and start the `--wait` clock.
    fn eof(&mut self) {
        self.deadline = Some(Instant::now() + Duration::from_secs(self.a.wait));
        self.running.command(|p: &mut Peer, now| {
            p.finish(now);
        });
    }

    /// `--wait` ran out: success only if everything of ours was delivered over a path.
    fn wait_ran_out(&self) -> ExitCode {
        if self.outbox.delivered() && self.has_path {
            if !self.peer_finished {
                report_note(
                    self.a.json,
                    "the peer is still sending; leaving (--wait ran out)",
                );
            }
            return ExitCode::SUCCESS;
        }
        let (code, why) = if self.has_path && self.outbox.unacked.is_empty() {
            ("not_sent", format!("{} line(s) not sent", self.outbox.lost))
        } else if self.has_path {
            let n = self.outbox.unacked.len();
            let wait = self.a.wait;
            (
                "not_acked",
                format!("{n} message(s) not acknowledged after {wait} s"),
            )
        } else {
            let wait = self.a.wait;
            (
                "nobody_joined",
                format!("nobody joined with this code within {wait} s"),
            )
        };
        report_error(self.a.json, code, &why);
        ExitCode::from(1)
    }

    /// Leaves the pool (once: a closed peer sends nothing more).
    fn close(&self) {
        self.running.command(|p: &mut Peer, now| p.close(now));
    }
}

fn report_note(json: bool, what: &str) {
    if json {
        output::emit(serde_json::json!({"event": "note", "note": what}));
    } else {
        eprintln!("punch: {what}");
    }
}

fn report_error(json: bool, code: &str, why: &str) {
    if json {
        output::emit(output::error_json(code, why));
    } else {
        eprintln!("punch: {why}");
    }
}
