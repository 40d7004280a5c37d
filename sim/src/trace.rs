//! The readable record of a simulation.
//!
//! Every datagram sent, delivered, or dropped (with the reason), every NAT state change, every timer that
//! fires (with the reason the machine gave for its deadline) and every event a machine reports becomes one
//! line, stamped with virtual milliseconds since the start:
//!
//! ```text
//!     12.500ms  timer  a      server request retransmit
//!     12.500ms  send   a      #3 192.168.1.10:5000 -> 198.51.100.1:3478  [0x00, 20 B]
//!     17.500ms  nat    nat-a  new mapping 192.168.1.10:5000 -> 203.0.113.10:5000 (for 198.51.100.1:3478)
//!     25.000ms  drop   nat-b  #3 filtered (APDF): no permission for 203.0.113.10:5000 at 203.0.113.20:40000
//!     31.000ms  recv   srv    #3 203.0.113.10:5000 -> 198.51.100.1:3478  [0x00, 20 B]
//!     31.000ms  event  srv    registered a
//! ```
//!
//! Traces contain only virtual times, addresses and deterministic descriptions, so the same seed gives a
//! byte-identical trace.
use crate::clock::Ms;
use std::fmt;
use std::time::Duration;

/// What a trace line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A machine handed a datagram to the network.
    Send,
    /// A datagram reached a machine's socket.
    Recv,
    /// A datagram was lost, with the reason.
    Drop,
    /// A second copy of a datagram was made by a link.
    Dup,
    /// A NAT created, expired or reserved something.
    Nat,
    /// A machine reported an event.
    Event,
    /// The scenario did something (a user typed, a link went down, ...).
    Action,
    /// A machine's deadline passed; the text is the reason from `Machine::poll_deadline`.
    Timer,
    /// Something that should not happen, e.g. a transmit from a socket the host does not own.
    Error,
}

impl Kind {
    /// Short lower-case name, the column printed in a trace line ("send", "drop", ...).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Send => "send",
            Kind::Recv => "recv",
            Kind::Drop => "drop",
            Kind::Dup => "dup",
            Kind::Nat => "nat",
            Kind::Event => "event",
            Kind::Action => "action",
            Kind::Timer => "timer",
            Kind::Error => "error",
        }
    }
}

/// One line of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Virtual time since the start.
    pub at: Duration,
    /// What kind of line it is.
    pub kind: Kind,
    /// The host, NAT or link the line is about.
    pub who: String,
    /// What happened, in words.
    pub text: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>12}  {:<6} {:<6} {}",
            Ms(self.at),
            self.kind.label(),
            self.who,
            self.text
        )
    }
}

/// How much to record. Packet-level lines dominate the cost of a run; the matrix and property tests
/// switch them off and re-run a failing seed with [`Detail::Full`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Detail {
    /// Nothing.
    Off,
    /// Machine events, NAT notes, actions, drops and errors.
    Events,
    /// Everything, including every send and delivery and every timer.
    Full,
}

/// An append-only list of [`Line`]s.
#[derive(Debug, Clone)]
pub struct Trace {
    /// How much is recorded.
    pub detail: Detail,
    lines: Vec<Line>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            detail: Detail::Full,
            lines: Vec::new(),
        }
    }
}

impl Trace {
    /// An empty trace recording at `detail`.
    pub fn new(detail: Detail) -> Trace {
        Trace {
            detail,
            lines: Vec::new(),
        }
    }

    /// Whether lines of this kind are kept at the current detail level.
    pub fn wants(&self, kind: Kind) -> bool {
        match self.detail {
            Detail::Off => false,
            Detail::Events => !matches!(kind, Kind::Send | Kind::Recv | Kind::Dup | Kind::Timer),
            Detail::Full => true,
        }
    }

    /// Appends a line (if the detail level keeps that kind). `text` is only built when needed.
    pub fn push(&mut self, at: Duration, kind: Kind, who: &str, text: impl FnOnce() -> String) {
        if self.wants(kind) {
            self.lines.push(Line {
                at,
                kind,
                who: who.to_string(),
                text: text(),
            });
        }
    }

    /// Every line recorded, oldest first.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The trace with repetitions folded: a line whose kind, host and text (ignoring `#id`s) already
    /// appeared less than `window` earlier is not printed again; the first one gets `(xN until T)`.
    /// Retransmissions and punch pings collapse into one line each, which keeps snapshots short. Timer lines
    /// are left out (the sends they cause are shown; the full trace has them).
    pub fn condensed(&self, window: Duration) -> String {
        struct Row {
            text: String,
            count: usize,
            last: Duration,
        }
        let mut rows: Vec<Row> = Vec::new();
        let mut active: std::collections::BTreeMap<(Kind, String, String), usize> =
            std::collections::BTreeMap::new();
        for l in self.lines.iter().filter(|l| l.kind != Kind::Timer) {
            let key = (l.kind, l.who.clone(), strip_ids(&l.text));
            if let Some(&i) = active.get(&key) {
                if l.at.saturating_sub(rows[i].last) < window {
                    rows[i].count += 1;
                    rows[i].last = l.at;
                    continue;
                }
            }
            active.insert(key, rows.len());
            rows.push(Row {
                text: l.to_string(),
                count: 1,
                last: l.at,
            });
        }
        let mut s = String::new();
        for r in rows {
            s.push_str(&r.text);
            if r.count > 1 {
                s.push_str(&format!("  (x{} until {})", r.count, Ms(r.last)));
            }
            s.push('\n');
        }
        s
    }

    /// The last `n` lines, rendered (for error messages).
    pub fn tail(&self, n: usize) -> String {
        let start = self.lines.len().saturating_sub(n);
        let mut s = String::new();
        for l in &self.lines[start..] {
            s.push_str(&l.to_string());
            s.push('\n');
        }
        s
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

/// `text` without `#123` packet ids.
fn strip_ids(text: &str) -> String {
    text.split(' ')
        .filter(|w| {
            !(w.starts_with('#') && w.len() > 1 && w[1..].bytes().all(|b| b.is_ascii_digit()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The default payload description (first byte and length); scenarios use `punch_core::wire::describe`.
pub fn describe_bytes(data: &[u8]) -> String {
    match data.first() {
        Some(b) => format!("[0x{b:02x}, {} B]", data.len()),
        None => "[empty]".to_string(),
    }
}
