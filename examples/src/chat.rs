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
//!
//! When stdin and stdout are both a terminal (and without `--json`), the chat is interactive ([`crate::screen`]):
//! a prompt line that incoming messages never splice into, timestamps, your own lines with a delivery mark
//! (`…` sent, `✓` acknowledged, `✗` never), status in words, and the commands `/status`, `/quit`, `/help`.
//! Otherwise stdin is read line by line, as a script expects.
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use punch_core::secure::Code;
use punch_core::wire::MAX_NAME_BYTES;
use punch_core::{Peer, PeerConfig, PeerError, PeerEvent};

use crate::driver::{self, Input, Running, Runtime};
use crate::resolve::{self, ServerSpec};
use crate::screen::{self, Edit, Line, Mark, Screen};
use crate::{announce, output, parse_addr, secure_seed};

#[derive(clap::Args)]
pub struct ChatArgs {
    /// The join code, like 7-guitar-revenge (omit it to make a new one). The number is all the server sees;
    /// the words key the end-to-end encryption and never leave this machine.
    code: Option<String>,
    /// The punch server, `HOST[:PORT]` (port 3478 by default). A name with several addresses (A and AAAA)
    /// is raced happy-eyeballs style: IPv6 first, IPv4 250 ms later, the first to answer is used.
    #[arg(long, env = "PUNCH_SERVER", default_value = "127.0.0.1:3478", value_parser = resolve::parse_server)]
    server: ServerSpec,
    /// Your display name (default: USER@HOST, from $USER and the host name).
    #[arg(long)]
    name: Option<String>,
    /// Local address to bind (default: `[::]`, both IPv6 and IPv4 from one socket, or `0.0.0.0` on a host
    /// without IPv6; a random port).
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

/// What happened to your line number `id` once handed to the peer (sent back from the driver thread): its
/// sequence number, or why it was refused.
struct Local {
    id: u64,
    /// The start of the line, to name it in a notice.
    preview: String,
    result: Result<u64, String>,
}

/// A line sent and not acknowledged yet.
struct Sent {
    /// Your line number (the screen's mark).
    id: u64,
    preview: String,
    at: Instant,
    /// Whether the user was told it is late.
    late: bool,
}

/// After this long without an acknowledgement, a line is reported late (once; punch keeps trying).
const LATE: Duration = Duration::from_secs(10);

/// Our lines that are not known to be delivered: the CLI reports them when `--wait` runs out or the peer
/// leaves. (When the conversation is over is the peer's call: [`PeerEvent::ConversationDone`].)
#[derive(Default)]
struct Outbox {
    /// Lines handed to the peer whose fate (queued or refused) has not come back yet.
    pending: u64,
    /// Queued lines not acknowledged yet (the FIN is not one of them), by sequence number.
    unacked: BTreeMap<u64, Sent>,
    /// Lines that will never be delivered: refused (too long, queue full), or not UTF-8.
    lost: u64,
    /// Your lines so far (numbers the screen's delivery marks).
    lines: u64,
}

impl Outbox {
    /// Every line we read was sent and acknowledged.
    fn delivered(&self) -> bool {
        self.pending == 0 && self.unacked.is_empty() && self.lost == 0
    }
}

pub fn run(a: ChatArgs) -> Result<ExitCode> {
    let name = check_name(&a)?;
    let code = join_code(&a)?;
    let interactive = !a.json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (tx, rx) = driver::channel(ends_chat);
    let (running, server) = start_peer(&a, name.clone(), code.clone(), tx.clone())?;
    let mut chat = Chat::new(&a, running, name, interactive)?;
    let from = chat.running.locals[0];
    // The name as written, and the address that answered when they differ (a name, or several addresses).
    let at = if a.server.text == server.to_string() {
        a.server.text.clone()
    } else {
        format!("{} ({server})", a.server)
    };
    match &code {
        Some(code) if a.json => output::emit(output::code_json(code)),
        Some(code) => chat.status(&format!(
            "joining nameplate {} at {at} from {from}",
            code.nameplate(),
        )),
        None if a.json => {}
        None => chat.status(&format!("asking {at} for a nameplate, from {from}")),
    }
    if interactive {
        driver::read_keys(tx.clone());
    } else {
        driver::read_stdin(tx.clone());
    }
    driver::on_interrupt(tx);
    let code = chat.run(&rx);
    // Every way out (Ctrl-C, the peer gone, an error, --wait) tells the server (a Leave: the partner hears
    // at once and the nameplate is free again), and the driver sends it before the process ends.
    chat.close();
    chat.running.join();
    // A line refused after the end was decided still counts.
    while let Ok(l) = chat.local_rx.try_recv() {
        chat.local(l);
    }
    chat.end_screen();
    let code = code?;
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

/// The start of a line (up to 24 characters), escaped, to name it in a notice.
fn preview(line: &str) -> String {
    let mut p: String = line.chars().take(24).collect();
    if p.len() < line.len() {
        p.push('…');
    }
    output::escape_controls(&p).into_owned()
}

/// The display name (given, or USER@HOST), which must fit the wire format (core's limit).
fn check_name(a: &ChatArgs) -> Result<String> {
    match &a.name {
        Some(name) if name.len() > MAX_NAME_BYTES => {
            anyhow::bail!("the name must be at most {MAX_NAME_BYTES} bytes")
        }
        Some(name) => Ok(name.clone()),
        None => Ok(default_name()),
    }
}

/// `USER@HOST` (the short host name), cut to the wire format's limit; what is known if one is missing.
fn default_name() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let host = host_name();
    let mut name = match (user.is_empty(), host.is_empty()) {
        (false, false) => format!("{user}@{host}"),
        (false, true) => user,
        (true, _) => host,
    };
    while name.len() > MAX_NAME_BYTES {
        name.pop();
    }
    name
}

/// This host's name up to the first dot (empty if unknown).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let full = String::from_utf8_lossy(&buf[..end]);
    full.split('.').next().unwrap_or_default().to_string()
}

/// Starts the peer on the chosen runtime, its events going into `inputs`.
fn start_peer(
    a: &ChatArgs,
    name: String,
    code: Option<Code>,
    inputs: driver::Sender<PeerEvent>,
) -> Result<(Running<Peer>, SocketAddr)> {
    let bind = resolve::peer_bind(a.bind);
    let server = resolve::pick_server(&a.server, bind)?;
    let mut config = PeerConfig::joining(server, code);
    config.server_other_family = resolve::other_family(&a.server, bind, server);
    config.name = name;
    config.relay_only = a.relay_only;
    config.detect_nat = !a.no_detect;
    config.seed = secure_seed();
    let make = move |locals: &[SocketAddr]| {
        config.local_addrs = announce(locals[0], server);
        Peer::new(config, punch_tokio::now())
    };
    Ok((Running::start(a.runtime, &[bind], make, inputs)?, server))
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
    /// Our name, and the partner's once paired ("your partner" until then or if it has none).
    name: String,
    peer_name: String,
    /// The last status sentence of each kind, for `/status`: our NAT, the pairing, the path.
    nat: Option<String>,
    paired: Option<String>,
    path: Option<String>,
    /// The interactive screen, when stdin and stdout are a terminal.
    screen: Option<Screen<std::io::Stdout>>,
}

/// What `/help` prints.
const HELP: &str = "type a line and press Enter to send it; /status shows the path and the NATs; /quit (or \
                    Ctrl-D) finishes: your lines are delivered, then punch leaves; Ctrl-C leaves at once; a line \
                    starting with // sends it with one /";

impl<'a> Chat<'a> {
    fn new(
        a: &'a ChatArgs,
        running: Running<Peer>,
        name: String,
        interactive: bool,
    ) -> Result<Self> {
        let (local_tx, local_rx) = mpsc::channel();
        let screen = if interactive {
            let (w, h) = crossterm::terminal::size().unwrap_or((80, 24));
            let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            Some(Screen::new(std::io::stdout(), w, h, colour, true)?)
        } else {
            None
        };
        Ok(Chat {
            a,
            running,
            local_tx,
            local_rx,
            outbox: Outbox::default(),
            deadline: None,
            peer_finished: false,
            has_path: false,
            name,
            peer_name: String::from("your partner"),
            nat: None,
            paired: None,
            path: None,
            screen,
        })
    }

    /// Handles inputs until one ends the chat; the exit code.
    fn run(&mut self, rx: &driver::Receiver<PeerEvent>) -> Result<ExitCode> {
        loop {
            let input = self.next_input(rx);
            // Local results of commands run before this input happened are already in the channel.
            while let Ok(l) = self.local_rx.try_recv() {
                self.local(l);
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

    /// The next input, waiting at most until the deadline (once there is one). Lines late to be
    /// acknowledged are reported meanwhile (not in `--json`: `sent` and `acked` tell a script).
    fn next_input(
        &mut self,
        rx: &driver::Receiver<PeerEvent>,
    ) -> Result<Input<PeerEvent>, mpsc::RecvTimeoutError> {
        loop {
            let late = self
                .outbox
                .unacked
                .values()
                .filter(|s| !s.late && !self.a.json);
            let late = late.map(|s| s.at + LATE).min();
            let wake = [self.deadline, late].into_iter().flatten().min();
            let r = match wake {
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(t) if Instant::now() >= t => Err(mpsc::RecvTimeoutError::Timeout),
                Some(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
            };
            match r {
                Err(mpsc::RecvTimeoutError::Timeout)
                    if self.deadline.is_none_or(|d| Instant::now() < d) =>
                {
                    self.report_late()
                }
                r => return r,
            }
        }
    }

    /// Says which lines are not acknowledged after [`LATE`] (once each).
    fn report_late(&mut self) {
        let now = Instant::now();
        let mut notes = Vec::new();
        for s in self.outbox.unacked.values_mut() {
            if !s.late && now >= s.at + LATE {
                s.late = true;
                notes.push(s.preview.clone());
            }
        }
        let path = self.path.clone().unwrap_or_else(|| "no path yet".into());
        for p in notes {
            let secs = LATE.as_secs();
            self.status(&format!(
                "\u{201c}{p}\u{201d} is not acknowledged after {secs} s ({path}); still trying"
            ));
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
                    self.outbox.lost += 1;
                    self.error("not_utf8", &format!("line {n} is not UTF-8: skipped"));
                }
                None
            }
            Input::Note(note) => {
                self.note(&note);
                None
            }
            Input::Key(k) => self.key(k)?,
            Input::Resize(w, h) => {
                if let Some(s) = &mut self.screen {
                    s.resize(w, h)?;
                }
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

    /// A key on the interactive screen.
    fn key(&mut self, k: crossterm::event::KeyEvent) -> Result<Option<ExitCode>> {
        let Some(screen) = &mut self.screen else {
            return Ok(None);
        };
        Ok(match screen.key(k)? {
            Edit::Interrupt => Some(ExitCode::from(130)),
            Edit::Submit(line) => self.typed(line),
            Edit::Eof if self.deadline.is_none() => {
                self.eof();
                None
            }
            Edit::Redraw => {
                print!("\x1b[2J\x1b[H");
                screen.resize(
                    crossterm::terminal::size().map_or(80, |s| s.0),
                    crossterm::terminal::size().map_or(24, |s| s.1),
                )?;
                None
            }
            Edit::Eof | Edit::Nothing | Edit::Changed => None,
        })
    }

    /// A line typed on the interactive screen: a command, or a message.
    fn typed(&mut self, line: String) -> Option<ExitCode> {
        match line.trim() {
            "/quit" | "/exit" => {
                if self.deadline.is_none() {
                    self.eof();
                }
            }
            "/status" => self.show_status(),
            "/help" | "/?" => self.status(HELP),
            cmd if cmd.starts_with('/') && !cmd.starts_with("//") => {
                self.status(&format!("unknown command {cmd} (try /help)"))
            }
            _ => {
                let text = line.strip_prefix('/').filter(|t| t.starts_with('/'));
                self.line(text.map(str::to_string).unwrap_or(line));
            }
        }
        None
    }

    /// `/status`: the path, both NATs, what is waiting.
    fn show_status(&mut self) {
        let lines = [
            Some(format!("you are {}", self.name)),
            self.nat.clone(),
            Some(
                self.paired
                    .clone()
                    .unwrap_or_else(|| "not paired yet".into()),
            ),
            Some(self.path.clone().unwrap_or_else(|| "no path yet".into())),
            Some(format!(
                "{} line(s) waiting for an acknowledgement",
                self.outbox.unacked.len() as u64 + self.outbox.pending
            )),
        ];
        for l in lines.into_iter().flatten() {
            self.status(&l);
        }
    }

    fn event(&mut self, e: PeerEvent) -> Option<ExitCode> {
        if self.a.json {
            output::emit(output::peer_event_json(&e));
        } else if let PeerEvent::PeerFinished = e {
            let who = output::escape_controls(&self.peer_name).into_owned();
            self.status(&format!("{who} has finished sending"));
        } else if let Some(line) = output::peer_event_text(&e) {
            self.status(&output::escape_controls(&line));
        }
        match e {
            PeerEvent::Message { text, .. } if !self.a.json => {
                let who = output::escape_controls(&self.peer_name).into_owned();
                let text = output::escape_controls(&text);
                match &mut self.screen {
                    Some(s) => {
                        let line = Line::Message {
                            who: &who,
                            mark: None,
                            text: &text,
                        };
                        let _ = s.print(&screen::clock(), line, None);
                    }
                    None => println!("<{who}> {text}"),
                }
            }
            PeerEvent::Acked { seq } => {
                if let Some(sent) = self.outbox.unacked.remove(&seq) {
                    self.mark(sent.id, Mark::Delivered);
                    if sent.late && !self.a.json {
                        let after = sent.at.elapsed().as_secs();
                        self.status(&format!(
                            "\u{201c}{}\u{201d} delivered after {after} s",
                            sent.preview
                        ));
                    }
                }
            }
            PeerEvent::PeerFinished => self.peer_finished = true,
            PeerEvent::CodeAllocated { code } if !self.a.json => {
                self.status(&format!("your code is {code}"));
                self.status(&format!(
                    "on the other machine run:  punch chat {code} --server {}",
                    self.a.server
                ));
            }
            PeerEvent::NatDetected(_) => self.nat = output::peer_event_text(&e),
            PeerEvent::Paired { ref name, .. } => {
                if !name.is_empty() {
                    self.peer_name = name.clone();
                }
                self.paired = output::peer_event_text(&e);
            }
            PeerEvent::Path { .. } => {
                self.has_path = true;
                self.path = output::peer_event_text(&e);
            }
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

    /// A line to send: hand it to the peer (unless empty, or input already ended). On the screen it is
    /// shown at once, marked `…` until acknowledged.
    fn line(&mut self, line: String) {
        if line.is_empty() || self.deadline.is_some() {
            return;
        }
        self.outbox.lines += 1;
        let id = self.outbox.lines;
        if let Some(s) = &mut self.screen {
            let own = Line::Message {
                who: &self.name,
                mark: Some(Mark::Sending),
                text: &output::escape_controls(&line),
            };
            let _ = s.print(&screen::clock(), own, Some(id));
        }
        let ltx = self.local_tx.clone();
        let preview = preview(&line);
        let queued = self.running.try_command(move |p: &mut Peer, now| {
            let result = p.send_message(now, &line).map_err(|e| e.to_string());
            let _ = ltx.send(Local {
                id,
                preview,
                result,
            });
        });
        if queued {
            self.outbox.pending += 1;
        } else {
            let why = "too many lines waiting for the network loop".to_string();
            self.local_failed(id, "queue_full", &why);
        }
    }

    /// What became of a line handed to the peer.
    fn local(&mut self, l: Local) {
        self.outbox.pending -= 1;
        match l.result {
            Ok(seq) => {
                let sent = Sent {
                    id: l.id,
                    preview: l.preview,
                    at: Instant::now(),
                    late: false,
                };
                self.outbox.unacked.insert(seq, sent);
                if self.a.json {
                    output::emit(serde_json::json!({"event": "sent", "seq": seq}));
                }
            }
            Err(why) => self.local_failed(l.id, "not_sent", &why),
        }
    }

    /// Your line `id` will never be delivered: reported (in place on the screen), and the exit code is 1.
    fn local_failed(&mut self, id: u64, code: &str, why: &str) {
        self.outbox.lost += 1;
        self.mark(id, Mark::Failed);
        self.error(code, &format!("not sent: {why}"));
    }

    fn mark(&mut self, id: u64, mark: Mark) {
        if let Some(s) = &mut self.screen {
            let _ = s.mark(id, mark);
        }
    }

    /// Input ended (Ctrl-D, /quit, the end of stdin): send the FIN, start the `--wait` clock, and say what
    /// we wait for.
    fn eof(&mut self) {
        self.deadline = Some(Instant::now() + Duration::from_secs(self.a.wait));
        self.running.command(|p: &mut Peer, now| {
            p.finish(now);
        });
        if self.a.json {
            return;
        }
        let waiting = self.outbox.unacked.len() as u64 + self.outbox.pending;
        let who = self.peer_name.clone();
        let what = if !self.has_path {
            format!("for {who} to join")
        } else if waiting > 0 {
            format!("for {who} to get your last {waiting} line(s) and to finish")
        } else {
            format!("for {who} to finish")
        };
        let wait = self.a.wait;
        self.status(&format!(
            "you are done: waiting up to {wait} s {what} (Ctrl-C leaves now)"
        ));
        if let Some(s) = &mut self.screen {
            let _ = s.set_prompt("(done; Ctrl-C leaves) ");
        }
    }

    /// `--wait` ran out: success only if everything of ours was delivered over a path.
    fn wait_ran_out(&mut self) -> ExitCode {
        if self.outbox.delivered() && self.has_path {
            if !self.peer_finished {
                self.note("the peer is still sending; leaving (--wait ran out)");
            }
            return ExitCode::SUCCESS;
        }
        let wait = self.a.wait;
        let (code, why) = if self.has_path && self.outbox.unacked.is_empty() {
            ("not_sent", format!("{} line(s) not sent", self.outbox.lost))
        } else if self.has_path {
            let n = self.outbox.unacked.len();
            let why = format!("{n} message(s) not acknowledged after {wait} s");
            ("not_acked", why)
        } else {
            let why = format!("nobody joined with this code within {wait} s");
            ("nobody_joined", why)
        };
        self.error(code, &why);
        ExitCode::from(1)
    }

    /// Leaves the pool (once: a closed peer sends nothing more).
    fn close(&self) {
        self.running.command(|p: &mut Peer, now| p.close(now));
    }

    /// The chat is over: lines never acknowledged get their `✗`, and the terminal is given back.
    fn end_screen(&mut self) {
        let unacked: Vec<u64> = self.outbox.unacked.values().map(|s| s.id).collect();
        for id in unacked {
            self.mark(id, Mark::Failed);
        }
        if let Some(mut s) = self.screen.take() {
            s.close();
        }
    }

    /// A status line: on the screen, or on stderr.
    fn status(&mut self, text: &str) {
        match &mut self.screen {
            Some(s) => {
                let _ = s.print(&screen::clock(), Line::Status(text), None);
            }
            None => eprintln!("punch: {text}"),
        }
    }

    fn note(&mut self, what: &str) {
        if self.a.json {
            output::emit(serde_json::json!({"event": "note", "note": what}));
        } else {
            self.status(what);
        }
    }

    fn error(&mut self, code: &str, why: &str) {
        if self.a.json {
            output::emit(output::error_json(code, why));
        } else {
            self.status(why);
        }
    }
}
