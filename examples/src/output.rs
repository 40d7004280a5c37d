//! How events look. Every JSON object the CLI prints is built here; the human text comes from the `Display`
//! impls in `punch_core::display` (status lines are the `{:#}` form of a [`PeerEvent`]).
use std::time::Duration;

use punch_core::millis as ms;
use punch_core::nat::{ExpectedPath, Strategy};
use punch_core::NatReport;
use punch_core::ServerEvent;
use punch_core::{Path, PeerEvent};
use punch_sim::matrix::MatrixConfig;
use punch_sim::{Outcome, PathKind, Profile};
use serde_json::{json, Value};

/// The version of the JSON schema in docs/JSON.md: every line carries it as `"v"`. It changes only when a
/// field changes meaning or goes away (new fields and events do not change it).
pub const SCHEMA_VERSION: u32 = 1;

/// Prints one JSON line on stdout, stamped with the schema version (`"v"`) and the time (`"ts"`, Unix
/// milliseconds).
pub fn emit(mut v: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert("v".into(), json!(SCHEMA_VERSION));
        o.insert("ts".into(), json!(unix_ms()));
    }
    println!("{v}");
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An error line: `{"event": "error", "code": CODE, "message": TEXT}`.
pub fn error_json(code: &str, message: &str) -> Value {
    json!({"event": "error", "code": code, "message": message})
}

/// A value of one of core's serializable types (feature `serde`) as JSON. Core's shapes cannot fail to
/// serialize (string keys, finite numbers), so a failure is a bug.
fn value(v: impl serde::Serialize) -> Value {
    serde_json::to_value(v).expect("core's shapes serialize")
}

/// A NAT detection report (`punch nat-type --json`; the `nat` of a chat's `nat` event).
pub fn report_json(r: &NatReport) -> Value {
    value(r)
}

fn path_str(p: &Path) -> (&'static str, Option<String>) {
    match p {
        Path::Direct(a) => ("direct", Some(a.to_string())),
        Path::Relay => ("relay", None),
    }
}

/// The first JSON line of `punch chat CODE --json`: the nameplate joined (the words are never printed).
pub fn code_json(code: &punch_core::secure::Code) -> Value {
    json!({"event": "code", "nameplate": code.nameplate()})
}

/// The JSON line for a peer event: core's serde shape (docs/JSON.md).
pub fn peer_event_json(e: &PeerEvent) -> Value {
    value(e)
}

/// The human line for a peer status event (`None` for events that are not status).
pub fn peer_event_text(e: &PeerEvent) -> Option<String> {
    e.is_status().then(|| format!("{e:#}"))
}

/// The JSON line for a server event (`punch server --json`): core's serde shape.
pub fn server_event_json(e: &ServerEvent) -> Value {
    value(e)
}

/// `text` safe to print on a terminal: control characters (C0 but the tab, DEL, C1) become `\xHH` and the
/// bidirectional overrides and isolates `\u{HHHH}`, so that a peer cannot move the cursor, recolour, retitle
/// or reorder the terminal. Everything else, backslashes included, is left as it is.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    fn escaped(c: char) -> bool {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(escaped) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !escaped(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        }
    }
    out.into()
}

/// Counts the datagrams the server drops, by reason, instead of a line for each (an attacker could
/// otherwise write the logs full): at most one line per `every`, `{"event": "dropped", "counts": {reason:
/// n}, "total": n, "seconds": s}` with `--json`, a warning otherwise. Other events pass through as before.
/// (The interval's line is written with the first event after it, or when the log is dropped.)
pub struct ServerLog {
    json: bool,
    every: Duration,
    since: std::time::Instant,
    counts: std::collections::BTreeMap<String, u64>,
}

impl ServerLog {
    pub fn new(json: bool) -> Self {
        Self::every(json, Duration::from_secs(10))
    }

    pub fn every(json: bool, every: Duration) -> Self {
        ServerLog {
            json,
            every,
            since: std::time::Instant::now(),
            counts: Default::default(),
        }
    }

    /// Logs `e` (a drop only as a count; the counts once `every` has passed since the last line).
    pub fn event(&mut self, e: &ServerEvent) {
        match e {
            ServerEvent::Dropped { from, reason } => {
                tracing::trace!(%from, reason, "dropped");
                *self.counts.entry(reason.to_string()).or_default() += 1;
            }
            e => {
                if self.json {
                    emit(server_event_json(e));
                }
                tracing::info!("{e}");
            }
        }
        if self.since.elapsed() >= self.every {
            self.flush();
        }
    }

    /// The summary line, if anything was dropped since the last one.
    pub fn summary(&self) -> Option<Value> {
        if self.counts.is_empty() {
            return None;
        }
        Some(json!({
            "event": "dropped",
            "counts": self.counts,
            "total": self.counts.values().sum::<u64>(),
            "seconds": self.since.elapsed().as_secs_f64().round(),
        }))
    }

    /// Prints the summary (if any) and starts a new interval.
    pub fn flush(&mut self) {
        if let Some(v) = self.summary() {
            if self.json {
                emit(v);
            } else {
                let why: Vec<String> = self
                    .counts
                    .iter()
                    .map(|(r, n)| format!("{n} {r}"))
                    .collect();
                tracing::warn!(
                    "dropped {} datagram(s) in the last {} s: {}",
                    v["total"],
                    v["seconds"],
                    why.join(", ")
                );
            }
        }
        self.counts.clear();
        self.since = std::time::Instant::now();
    }
}

impl Drop for ServerLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// One peer of a `punch demo` session.
pub struct DemoPeer<'a> {
    pub name: &'a str,
    pub path: Option<(Path, Duration)>,
    pub received: &'a [String],
}

/// The JSON summary of one `punch demo` session.
pub fn demo_session_json(
    relay_only: bool,
    ok: bool,
    elapsed: Duration,
    peers: &[DemoPeer],
) -> Value {
    json!({
        "session": if relay_only { "relay-only" } else { "direct" },
        "ok": ok,
        "elapsed_ms": ms(elapsed),
        "peers": peers.iter().map(|p| json!({
            "name": p.name,
            "path": p.path.map(|(path, _)| path_str(&path).0),
            "rtt_ms": p.path.map(|(_, r)| ms(r)),
            "received": p.received,
        })).collect::<Vec<_>>(),
    })
}

/// The JSON answer of `punch strategy`.
pub fn strategy_json(s: Strategy, path: ExpectedPath) -> Value {
    json!({"strategy": s.label(), "path": path.label()})
}

/// One `punch sim` scenario and its result.
pub struct SimOne<'a> {
    pub nat_a: Profile,
    pub nat_b: Profile,
    pub seed: u64,
    pub relay_only: bool,
    pub full_trace: bool,
    pub cfg: &'a MatrixConfig,
    pub outcome: &'a Outcome,
    pub kind: PathKind,
    pub verdict: &'a Result<PathKind, String>,
    pub delivered: &'a Result<(), String>,
    pub timeline: &'a [String],
}

/// The JSON object of one `punch sim` scenario: the summary plus the timeline.
pub fn sim_one_json(x: &SimOne) -> Value {
    use crate::sim_cmd::{ms_f, rtts};
    let dur = |d: Option<Duration>| d.map(ms_f);
    let inr = |d: Option<Duration>| d.map(|d| rtts(d, x.cfg.rtt_ms));
    let peers: Vec<serde_json::Value> = x
        .outcome
        .peers
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "nat": p.nat,
                "path": p.path.label(),
                "paired_at_ms": dur(p.paired_at),
                "path_at_ms": dur(p.path_at),
                "direct_at_ms": dur(p.direct_at),
                "first_message_at_ms": dur(p.first_message_at),
                "typed": p.typed,
                "received": p.received,
                "errors": p.errors,
            })
        })
        .collect();
    serde_json::json!({
        "nat_a": x.nat_a.to_string(),
        "nat_b": x.nat_b.to_string(),
        "seed": x.seed,
        "rtt_ms": x.cfg.rtt_ms,
        "loss": x.cfg.loss,
        "relay_only": x.relay_only,
        "knowledge": format!("{:?}", x.cfg.knowledge).to_lowercase(),
        "outcome": x.kind.label(),
        "failure": x.verdict.as_ref().err(),
        "pairing_to_first_message_ms": dur(x.outcome.pairing_to_first_message()),
        "pairing_to_first_message_rtts": inr(x.outcome.pairing_to_first_message()),
        "pairing_to_direct_ms": dur(x.outcome.pairing_to_direct()),
        "pairing_to_direct_rtts": inr(x.outcome.pairing_to_direct()),
        "exactly_once_in_order": x.delivered.is_ok(),
        "delivery_error": x.delivered.as_ref().err(),
        "ended_at_ms": ms_f(x.outcome.ended_at),
        "steps": x.outcome.stats.steps,
        "peers": peers,
        "trace_condensed": !x.full_trace,
        "trace": x.timeline,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use punch_core::nat::{NatBehaviour, NatKind, Strategy};
    use punch_core::NatReport;
    use punch_core::{Path, PeerError, PeerEvent};

    use super::peer_event_text;

    /// The CLI's status lines, word for word as `punch chat` always printed them.
    #[test]
    fn status_lines_keep_their_wording() {
        let addr = "203.0.113.10:4000".parse().unwrap();
        let nat = NatBehaviour::from_kind(NatKind::PortRestrictedCone);
        let cases = [
            (
                PeerEvent::Registered {
                    public_addr: addr,
                    server_rtt: Duration::from_micros(12_300),
                },
                Some("registered; the server sees us as 203.0.113.10:4000 (rtt 12.3 ms); waiting for a peer"),
            ),
            (
                PeerEvent::Paired {
                    name: "bob".into(),
                    public_addr: addr,
                    local_addrs: vec![],
                    nat,
                    strategy: Strategy::Punch,
                },
                Some("paired with bob at 203.0.113.10:4000, NAT Port-restricted cone (EIM/APDF); strategy: punch"),
            ),
            (
                PeerEvent::Path {
                    path: Path::Direct(addr),
                    rtt: Duration::from_micros(1_234),
                },
                Some("path: direct to 203.0.113.10:4000 (rtt 1.23 ms)"),
            ),
            (
                PeerEvent::Path {
                    path: Path::Relay,
                    rtt: Duration::from_micros(42_000),
                },
                Some("path: relay through the server (rtt ~42.0 ms)"),
            ),
            (
                PeerEvent::Error(PeerError::PoolFull),
                Some("error: pool full: two peers are already chatting in it"),
            ),
            (
                PeerEvent::Disconnected {
                    reason: "left".into(),
                },
                Some("disconnected: left"),
            ),
            (PeerEvent::PeerFinished, Some("the peer has finished sending")),
            (
                PeerEvent::NatDetected(NatReport {
                    public_addr: Some(addr),
                    behaviour: nat,
                    kind: NatKind::PortRestrictedCone,
                    server_rtt: None,
                    behaviour_tests: true,
                    server_unreachable: false,
                    mapped_addrs: vec![],
                    notes: vec![],
                    cookie: None,
                    hairpin: None,
                }),
                Some("NAT: Port-restricted cone (EIM/APDF); public address 203.0.113.10:4000"),
            ),
            (PeerEvent::Acked { seq: 1 }, None),
            (
                PeerEvent::Message {
                    seq: 0,
                    text: "hi".into(),
                },
                None,
            ),
            (PeerEvent::ConversationDone, None),
        ];
        for (e, want) in cases {
            assert_eq!(peer_event_text(&e).as_deref(), want, "{e:?}");
        }
    }

    #[test]
    fn peer_text_is_escaped_for_the_terminal() {
        use super::escape_controls as esc;
        assert_eq!(
            esc("plain\ttext, ünïcode \\ too"),
            "plain\ttext, ünïcode \\ too"
        );
        assert_eq!(esc("\u{1b}[31mred"), "\\x1b[31mred");
        assert_eq!(esc("a\nb\rc\u{7f}\u{9b}2J"), "a\\x0ab\\x0dc\\x7f\\x9b2J");
        assert_eq!(esc("abc\u{202e}fed\u{2066}"), "abc\\u{202e}fed\\u{2066}");
    }

    #[test]
    fn server_drops_are_counted_by_reason() {
        use punch_core::ServerEvent;
        let mut log = super::ServerLog::every(true, Duration::from_secs(3600));
        let from = "192.0.2.1:9".parse().unwrap();
        for reason in ["rate", "rate", "bad cookie"] {
            log.event(&ServerEvent::Dropped { from, reason });
        }
        let v = log.summary().unwrap();
        assert_eq!(v["total"], 3);
        assert_eq!(v["counts"], serde_json::json!({"rate": 2, "bad cookie": 1}));
        log.flush();
        assert!(log.summary().is_none());
    }

    #[test]
    fn nat_type_report_keeps_its_layout() {
        let r = NatReport {
            public_addr: Some("203.0.113.10:4000".parse().unwrap()),
            behaviour: NatBehaviour::from_kind(NatKind::Symmetric),
            kind: NatKind::Symmetric,
            server_rtt: Some(Duration::from_micros(2_346)),
            behaviour_tests: true,
            server_unreachable: false,
            mapped_addrs: vec![(
                "203.0.113.1:3478".parse().unwrap(),
                "203.0.113.10:4000".parse().unwrap(),
            )],
            notes: vec!["a note".into()],
            cookie: None,
            hairpin: Some(false),
        };
        let want = "NAT type:        Symmetric\n\
                    Public address:  203.0.113.10:4000\n\
                    Mapping:         address- and port-dependent (APDM)\n\
                    Filtering:       address- and port-dependent (APDF)\n\
                    Port allocation: unknown\n\
                    Server RTT:      2.35 ms\n\
                    Hairpinning:     no\n  \
                    via 203.0.113.1:3478         mapped to 203.0.113.10:4000\n\
                    note: a note\n";
        assert_eq!(r.to_string(), want);
    }

    /// Pins the JSON schema of every event the CLI prints (docs/JSON.md documents these shapes; `emit` adds
    /// `"v"` and `"ts"`). A change here is a schema change: update docs/JSON.md, and SCHEMA_VERSION when a
    /// field changes meaning or goes away.
    #[test]
    fn json_schema_of_every_event() {
        use super::{code_json, demo_session_json, error_json, peer_event_json, report_json};
        use super::{server_event_json, strategy_json, DemoPeer};
        use punch_core::nat::{ExpectedPath, PortAllocation};
        use punch_core::ServerEvent;
        let addr: std::net::SocketAddr = "203.0.113.10:4000".parse().unwrap();
        let nat = NatBehaviour {
            allocation: Some(PortAllocation::Sequential { step: 1 }),
            ..NatBehaviour::from_kind(NatKind::PortRestrictedCone)
        };
        let report = NatReport {
            public_addr: Some(addr),
            behaviour: nat,
            kind: NatKind::PortRestrictedCone,
            server_rtt: Some(Duration::from_micros(2_346)),
            behaviour_tests: true,
            server_unreachable: false,
            mapped_addrs: vec![("203.0.113.1:3478".parse().unwrap(), addr)],
            notes: vec![],
            cookie: None,
            hairpin: Some(true),
        };
        let rtt = Duration::from_micros(20_123);
        let peer = [
            PeerEvent::CodeAllocated {
                code: "7-guitar-revenge".into(),
            },
            PeerEvent::NatDetected(report.clone()),
            PeerEvent::Registered {
                public_addr: addr,
                server_rtt: rtt,
            },
            PeerEvent::Paired {
                name: "bob".into(),
                public_addr: addr,
                local_addrs: vec!["10.0.0.2:4000".parse().unwrap()],
                nat,
                strategy: Strategy::Punch,
            },
            PeerEvent::Path {
                path: Path::Direct(addr),
                rtt,
            },
            PeerEvent::Path {
                path: Path::Relay,
                rtt,
            },
            PeerEvent::Message {
                seq: 0,
                text: "hi".into(),
            },
            PeerEvent::Acked { seq: 0 },
            PeerEvent::PeerFinished,
            PeerEvent::ConversationDone,
            PeerEvent::Error(PeerError::WrongCode),
            PeerEvent::Error(PeerError::Rejected {
                code: 410,
                reason: "burnt".into(),
            }),
            PeerEvent::Disconnected {
                reason: "peer left".into(),
            },
        ];
        let server = [
            ServerEvent::Registered {
                pool: "7".into(),
                client: addr,
                name: "bob".into(),
                nat,
            },
            ServerEvent::Paired {
                pool: "7".into(),
                a: addr,
                b: addr,
            },
            ServerEvent::Left {
                pool: "7".into(),
                client: addr,
            },
            ServerEvent::Expired {
                pool: "7".into(),
                client: addr,
            },
            ServerEvent::Moved {
                pool: "7".into(),
                from: addr,
                to: addr,
            },
            ServerEvent::Retry { pool: "7".into() },
        ];
        let mut lines: Vec<String> = peer
            .iter()
            .map(|e| peer_event_json(e).to_string())
            .collect();
        lines.push(code_json(&"7-guitar-revenge".parse().unwrap()).to_string());
        lines.push(error_json("not_acked", "1 message(s) not acknowledged after 60 s").to_string());
        lines.extend(server.iter().map(|e| server_event_json(e).to_string()));
        lines.push(report_json(&report).to_string());
        lines.push(strategy_json(Strategy::Punch, ExpectedPath::Direct).to_string());
        let peers = [DemoPeer {
            name: "a",
            path: Some((Path::Direct(addr), rtt)),
            received: &[],
        }];
        lines.push(
            demo_session_json(false, true, Duration::from_micros(9_001_952), &peers).to_string(),
        );
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn enum_values_are_stable_snake_case() {
        use punch_core::nat::{Mapping, NatKind};
        let names = |v: &[serde_json::Value]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let kinds = [NatKind::PortRestrictedCone, NatKind::SymmetricUdpFirewall];
        let kinds: Vec<_> = kinds
            .iter()
            .map(|k| serde_json::to_value(k).unwrap())
            .collect();
        assert_eq!(
            names(&kinds),
            ["\"port_restricted_cone\"", "\"symmetric_udp_firewall\""]
        );
        let m = serde_json::to_value(Mapping::AddressAndPortDependent).unwrap();
        assert_eq!(m, "address_and_port_dependent");
    }
}
