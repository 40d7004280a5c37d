//! The path suite: a fixed list of neighbourhood and disruption cases (two hosts behind one NAT, hairpinning
//! on and off, a NAT flush or rebinding mid-chat, mappings timing out during an idle chat, dual stack), each
//! run over many seeds, with the path each ends on and how fast it gets (back) there.
//!
//! Used by `punch sim matrix --paths` (an extra section after the profile matrix, in text and in `--json`
//! under `"paths"`) and documented in docs/STRATEGY.md ("Which path each case takes"). In every case both
//! users type a line a second (b half a second after a); a run *fails* if a line is not delivered exactly once
//! in order, a peer ends without a path, or the simulator stops it.
//!
//! Per case: the final path, as a *class* ([`PathClass`]: over the LAN, through the NAT's hairpin, over IPv6,
//! over public IPv4, or the relay), and the time to (re)direct: from pairing to both peers direct, or, for a
//! case with a disruption at `T` (a flush, a rebinding), from `T` to the last direct path either peer chose
//! after it (0 when neither had to change path).
use crate::clock::Ms;
use crate::matrix::{json_ms, json_separator, judge, on_workers, Percentiles};
use crate::nat::NatConfig;
use crate::profile::{Nat, Profile};
use crate::scenario::{Outcome, PathKind, Scenario};
use crate::trace::Detail;
use crate::{ms, secs};
use punch_core::{Path, PeerEvent};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Where a pair's final path goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathClass {
    /// Direct, to the partner's private (LAN) address.
    Lan,
    /// Direct, both to the one public IPv4 address of the NAT they share (hairpinning).
    Hairpin,
    /// Direct, over IPv6.
    Ipv6,
    /// Direct, to the partner's public IPv4 address.
    Ipv4,
    /// The peers disagree on the class (e.g. one on IPv4, one on IPv6).
    Mixed,
    /// The server's relay.
    Relay,
    /// No path (the run failed).
    None,
}

impl PathClass {
    /// Lower-case name for tables and JSON.
    pub fn label(self) -> &'static str {
        match self {
            PathClass::Lan => "lan",
            PathClass::Hairpin => "hairpin",
            PathClass::Ipv6 => "ipv6",
            PathClass::Ipv4 => "ipv4",
            PathClass::Mixed => "mixed",
            PathClass::Relay => "relay",
            PathClass::None => "fail",
        }
    }

    /// The class of a run's final path.
    pub fn of(o: &Outcome) -> PathClass {
        match o.path() {
            PathKind::Relay => return PathClass::Relay,
            PathKind::None => return PathClass::None,
            PathKind::Direct => {}
        }
        let addrs: Vec<SocketAddr> = o.peers.iter().filter_map(|p| p.direct_addr).collect();
        let one = |a: SocketAddr| match a.ip() {
            IpAddr::V6(_) => PathClass::Ipv6,
            IpAddr::V4(v4) if v4.is_private() => PathClass::Lan,
            IpAddr::V4(_) => PathClass::Ipv4,
        };
        let classes: Vec<PathClass> = addrs.iter().map(|&a| one(a)).collect();
        match classes.as_slice() {
            [PathClass::Ipv4, PathClass::Ipv4] if addrs[0].ip() == addrs[1].ip() => {
                PathClass::Hairpin
            }
            [a, b] if a == b => *a,
            [a] => *a,
            _ => PathClass::Mixed,
        }
    }
}

/// One case of the suite.
#[derive(Clone)]
pub struct PathCase {
    /// Short name (a JSON key, no spaces).
    pub name: &'static str,
    /// What is set up, in words.
    pub what: &'static str,
    /// The path classes the case may end on (the first is the usual one).
    pub expected: &'static [PathClass],
    /// When the disruption happens (`None`: no disruption; time to direct is from pairing).
    pub disruption: Option<Duration>,
    /// How long the users type (a line a second each); a case with an idle gap types again later.
    build: fn(Scenario) -> Scenario,
    /// The users' lines: `(when, who)`.
    lines: fn() -> Vec<(Duration, &'static str)>,
}

/// Ten lines each, one a second, b half a second after a.
fn ten_seconds() -> Vec<(Duration, &'static str)> {
    (0..10)
        .flat_map(|i| [(secs(i), "a"), (secs(i) + ms(500), "b")])
        .collect()
}

/// Two lines each, 50 s of silence, two more each.
fn idle_gap() -> Vec<(Duration, &'static str)> {
    [0, 1, 52, 53]
        .into_iter()
        .flat_map(|i| [(secs(i), "a"), (secs(i) + ms(500), "b")])
        .collect()
}

/// When the flush and the rebinding happen.
const DISRUPTION: Duration = Duration::from_secs(4);

fn firewall6() -> Option<NatConfig> {
    Some(NatConfig::udp_firewall())
}

/// The fixed list of cases (in report order).
pub fn cases() -> Vec<PathCase> {
    let case = |name, what, expected, build| PathCase {
        name,
        what,
        expected,
        disruption: None,
        build,
        lines: ten_seconds,
    };
    vec![
        case(
            "same-nat-port-restricted",
            "a and b behind one port-restricted NAT, no hairpinning",
            &[PathClass::Lan],
            |s| s.host("a", Nat::PortRestricted).host_behind("b", "a"),
        ),
        case(
            "same-nat-firewalled",
            "a and b behind one port-restricted-linux-fw NAT (Linux conntrack, WAN firewall)",
            &[PathClass::Lan],
            |s| {
                s.host("a", Profile::from(Nat::PortRestricted).linux().firewall())
                    .host_behind("b", "a")
            },
        ),
        case(
            "same-nat-symmetric",
            "a and b behind one symmetric NAT (the table says relay; same public IP says neighbours)",
            &[PathClass::Lan],
            |s| s.host("a", Nat::Symmetric).host_behind("b", "a"),
        ),
        case(
            "hairpin-on-lan-isolated",
            "one port-restricted NAT that hairpins; the LAN does not carry a <-> b (client isolation)",
            &[PathClass::Hairpin],
            |s| {
                s.host("a", Nat::PortRestricted)
                    .hairpin("a", true)
                    .host_behind("b", "a")
                    .isolate("a", "b")
            },
        ),
        case(
            "hairpin-off-lan-isolated",
            "one port-restricted NAT that does not hairpin; client isolation",
            &[PathClass::Relay],
            |s| {
                s.host("a", Nat::PortRestricted)
                    .host_behind("b", "a")
                    .isolate("a", "b")
            },
        ),
        case(
            "hairpin-on-lan-open",
            "one port-restricted NAT that hairpins; the LAN carries a <-> b too (the first pong wins)",
            &[PathClass::Hairpin, PathClass::Lan, PathClass::Mixed],
            |s| {
                s.host("a", Nat::PortRestricted)
                    .hairpin("a", true)
                    .host_behind("b", "a")
            },
        ),
        case(
            "hairpin-on-symmetric-isolated",
            "one symmetric NAT that hairpins; client isolation",
            &[PathClass::Relay],
            |s| {
                s.host("a", Nat::Symmetric)
                    .hairpin("a", true)
                    .host_behind("b", "a")
                    .isolate("a", "b")
            },
        ),
        PathCase {
            disruption: Some(DISRUPTION),
            ..case(
                "flush-port-restricted",
                "port-restricted x port-restricted, both NATs flushed (reboot) at 4 s",
                &[PathClass::Ipv4],
                |s| {
                    s.host("a", Nat::PortRestricted)
                        .host("b", Nat::PortRestricted)
                        .flush_nat_at("a", DISRUPTION)
                        .flush_nat_at("b", DISRUPTION)
                },
            )
        },
        PathCase {
            disruption: Some(DISRUPTION),
            ..case(
                "flush-symmetric-full-cone",
                "symmetric x full-cone, both NATs flushed at 4 s",
                &[PathClass::Ipv4],
                |s| {
                    s.host("a", Nat::Symmetric)
                        .host("b", Nat::FullCone)
                        .flush_nat_at("a", DISRUPTION)
                        .flush_nat_at("b", DISRUPTION)
                },
            )
        },
        PathCase {
            disruption: Some(DISRUPTION),
            ..case(
                "rebind-port-restricted",
                "port-restricted x port-restricted, a's NAT gives a a new public port at 4 s",
                &[PathClass::Ipv4],
                |s| {
                    s.host("a", Nat::PortRestricted)
                        .host("b", Nat::PortRestricted)
                        .rebind_at("a", DISRUPTION)
                },
            )
        },
        PathCase {
            disruption: Some(DISRUPTION),
            ..case(
                "rebind-symmetric-side",
                "symmetric x full-cone, the symmetric side (a) rebinds at 4 s",
                &[PathClass::Ipv4],
                |s| {
                    s.host("a", Nat::Symmetric)
                        .host("b", Nat::FullCone)
                        .rebind_at("a", DISRUPTION)
                },
            )
        },
        PathCase {
            disruption: Some(DISRUPTION),
            ..case(
                "rebind-full-cone-side",
                "symmetric x full-cone, the full-cone side (b) rebinds at 4 s",
                &[PathClass::Ipv4],
                |s| {
                    s.host("a", Nat::Symmetric)
                        .host("b", Nat::FullCone)
                        .rebind_at("b", DISRUPTION)
                },
            )
        },
        PathCase {
            lines: idle_gap,
            ..case(
                "mapping-timeout-idle",
                "port-restricted-linux x port-restricted-linux, mappings expire after 20 s idle; 50 s without a line",
                &[PathClass::Ipv4],
                |s| {
                    s.host("a", Profile::from(Nat::PortRestricted).linux())
                        .host("b", Profile::from(Nat::PortRestricted).linux())
                        .nat_lifetime("a", secs(20))
                        .nat_lifetime("b", secs(20))
                },
            )
        },
        PathCase {
            lines: idle_gap,
            ..case(
                "mapping-timeout-idle-symmetric",
                "symmetric x full-cone, mappings expire after 20 s idle; 50 s without a line",
                &[PathClass::Ipv4],
                |s| {
                    s.host("a", Nat::Symmetric)
                        .host("b", Nat::FullCone)
                        .nat_lifetime("a", secs(20))
                        .nat_lifetime("b", secs(20))
                },
            )
        },
        case(
            "dual-stack-symmetric-v4",
            "dual stack x dual stack: symmetric IPv4 NATs, global IPv6 behind stateful firewalls",
            &[PathClass::Ipv6],
            |s| {
                s.host("a", Nat::Symmetric)
                    .ipv6("a", firewall6())
                    .host("b", Nat::Symmetric)
                    .ipv6("b", firewall6())
            },
        ),
        case(
            "dual-stack-x-v4-only-symmetric",
            "dual stack (symmetric IPv4 NAT, IPv6 firewall) x IPv4-only behind a symmetric NAT",
            &[PathClass::Relay],
            |s| {
                s.host("a", Nat::Symmetric)
                    .ipv6("a", firewall6())
                    .host("b", Nat::Symmetric)
            },
        ),
        case(
            "dual-stack-x-v4-only-port-restricted",
            "dual stack (port-restricted IPv4 NAT, IPv6 firewall) x IPv4-only behind a port-restricted NAT",
            &[PathClass::Ipv4],
            |s| {
                s.host("a", Nat::PortRestricted)
                    .ipv6("a", firewall6())
                    .host("b", Nat::PortRestricted)
            },
        ),
        case(
            "dual-stack-over-v4-x-v4-only-port-restricted",
            "as dual-stack-x-v4-only-port-restricted, but the dual-stack peer registers over IPv4 (IPv6 to the server broken)",
            &[PathClass::Ipv4],
            |s| {
                s.host("a", Nat::PortRestricted)
                    .ipv6("a", firewall6())
                    .server_over_ipv4("a")
                    .host("b", Nat::PortRestricted)
            },
        ),
        case(
            "dual-stack-x-v4-only-full-cone",
            "dual stack (port-restricted IPv4 NAT, IPv6 firewall) x IPv4-only behind a full-cone NAT",
            &[PathClass::Ipv4],
            |s| {
                s.host("a", Nat::PortRestricted)
                    .ipv6("a", firewall6())
                    .host("b", Nat::FullCone)
            },
        ),
    ]
}

impl PathCase {
    /// The scenario of this case for `seed`, with round trip `rtt_ms` and one-way loss `loss`.
    pub fn scenario(&self, seed: u64, rtt_ms: u64, loss: f64) -> Scenario {
        let mut s = (self.build)(Scenario::new(seed))
            .link(rtt_ms, loss)
            .until(secs(120));
        let mut n = BTreeMap::new();
        for (t, who) in (self.lines)() {
            let i = n.entry(who).or_insert(0);
            s = s.type_at(who, t, &format!("{who}{i}"));
            *i += 1;
        }
        s
    }

    /// The time to (re)direct of one run (see the module docs).
    fn to_direct(&self, o: &Outcome) -> Option<Duration> {
        if o.path() != PathKind::Direct {
            return None;
        }
        let Some(t) = self.disruption else {
            return o.pairing_to_direct();
        };
        let mut worst = Duration::ZERO;
        for p in &o.peers {
            let last = p.events.iter().rev().find_map(|(at, e)| match e {
                PeerEvent::Path { path, .. } => Some((*at, path)),
                _ => None,
            });
            if let Some((at, Path::Direct(_))) = last {
                if at > t {
                    worst = worst.max(at - t);
                }
            }
        }
        Some(worst)
    }
}

/// The longest a line took from being typed to being delivered, over every line of the run (`None` if a
/// line was not delivered).
fn worst_line_delay(case: &PathCase, o: &Outcome) -> Option<Duration> {
    let mut typed: BTreeMap<String, Duration> = BTreeMap::new();
    let mut n = BTreeMap::new();
    for (t, who) in (case.lines)() {
        let i = n.entry(who).or_insert(0);
        typed.insert(format!("{who}{i}"), t);
        *i += 1;
    }
    let mut worst = Duration::ZERO;
    let mut delivered = 0;
    for p in &o.peers {
        for (at, e) in &p.events {
            if let PeerEvent::Message { text, .. } = e {
                if let Some(t) = typed.get(text) {
                    worst = worst.max(at.saturating_sub(*t));
                    delivered += 1;
                }
            }
        }
    }
    (delivered == typed.len()).then_some(worst)
}

/// Whether a peer went from a direct path back to the relay at some point.
fn fell_back(o: &Outcome) -> bool {
    o.peers.iter().any(|p| {
        let mut direct = false;
        p.events.iter().any(|(_, e)| match e {
            PeerEvent::Path {
                path: Path::Direct(_),
                ..
            } => {
                direct = true;
                false
            }
            PeerEvent::Path {
                path: Path::Relay, ..
            } => direct,
            _ => false,
        })
    })
}

/// What to run: seeds, link, threads (as the profile matrix's).
#[derive(Debug, Clone)]
pub struct PathsConfig {
    /// Seeds `first_seed .. first_seed + seeds`.
    pub first_seed: u64,
    /// How many seeds each case runs with.
    pub seeds: u64,
    /// Round trip between each peer and the server (and between the peers), in milliseconds.
    pub rtt_ms: u64,
    /// Loss per one-way trip.
    pub loss: f64,
    /// Worker threads (0: as many as the machine has).
    pub threads: usize,
}

/// One case's results over every seed.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's name.
    pub name: &'static str,
    /// What it sets up.
    pub what: &'static str,
    /// The path classes it may end on.
    pub expected: &'static [PathClass],
    /// Runs (one per seed).
    pub runs: usize,
    /// Runs per final path class.
    pub classes: BTreeMap<PathClass, usize>,
    /// Runs that ended direct.
    pub direct: usize,
    /// Runs where every line arrived exactly once, in order (and nothing else failed).
    pub exactly_once: usize,
    /// Runs where a peer fell back from a direct path to the relay at some point.
    pub fell_back: usize,
    /// Time to (re)direct, direct runs only (see the module docs).
    pub to_direct: Percentiles,
    /// Pairing to the first line delivered.
    pub first_message: Percentiles,
    /// Per run, the longest a line took from being typed to being delivered (what a disruption costs the
    /// users); runs that delivered every line.
    pub worst_line_delay: Percentiles,
    /// Failed runs: `(seed, reason)`.
    pub failures: Vec<(u64, String)>,
}

impl CaseResult {
    /// The expected classes, `|`-separated.
    pub fn expected_label(&self) -> String {
        self.expected
            .iter()
            .map(|e| e.label())
            .collect::<Vec<_>>()
            .join("|")
    }

    /// Runs that ended on one of the expected classes.
    pub fn as_expected(&self) -> usize {
        self.expected
            .iter()
            .map(|e| self.classes.get(e).copied().unwrap_or(0))
            .sum()
    }

    /// The most frequent final class (ties: the first in [`PathClass`] order).
    pub fn path(&self) -> PathClass {
        let best = self.classes.values().copied().max().unwrap_or(0);
        self.classes
            .iter()
            .find(|(_, &n)| n == best)
            .map_or(PathClass::None, |(&c, _)| c)
    }
}

/// The suite's results.
#[derive(Debug, Clone)]
pub struct PathSuite {
    /// What was run.
    pub config: PathsConfig,
    /// One result per case, in [`cases`] order.
    pub cases: Vec<CaseResult>,
}

struct Run {
    case: usize,
    seed: u64,
    class: PathClass,
    result: Result<PathKind, String>,
    to_direct: Option<Duration>,
    first_message: Option<Duration>,
    worst_line_delay: Option<Duration>,
    fell_back: bool,
}

/// Runs every case for every seed, spread over worker threads (the results do not depend on them).
pub fn run_paths(cfg: &PathsConfig) -> PathSuite {
    let all = cases();
    let jobs: Vec<(usize, u64)> = (0..all.len())
        .flat_map(|c| (cfg.first_seed..cfg.first_seed + cfg.seeds).map(move |s| (c, s)))
        .collect();
    let mut runs: Vec<Run> = on_workers(cfg.threads, &jobs, |&(c, seed)| {
        let case = &all[c];
        let o = case
            .scenario(seed, cfg.rtt_ms, cfg.loss)
            .detail(Detail::Off)
            .run();
        Run {
            case: c,
            seed,
            class: PathClass::of(&o),
            result: judge(&o),
            to_direct: case.to_direct(&o),
            first_message: o.pairing_to_first_message(),
            worst_line_delay: worst_line_delay(case, &o),
            fell_back: fell_back(&o),
        }
    });
    runs.sort_by_key(|r| (r.case, r.seed));
    let results = all
        .iter()
        .enumerate()
        .map(|(c, case)| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.case == c).collect();
            let mut classes = BTreeMap::new();
            for r in &mine {
                let class = if r.result.is_err() {
                    PathClass::None
                } else {
                    r.class
                };
                *classes.entry(class).or_insert(0) += 1;
            }
            let ok = |r: &&&Run| r.result.is_ok();
            CaseResult {
                name: case.name,
                what: case.what,
                expected: case.expected,
                runs: mine.len(),
                classes,
                direct: mine
                    .iter()
                    .filter(|r| r.result == Ok(PathKind::Direct))
                    .count(),
                exactly_once: mine.iter().filter(ok).count(),
                fell_back: mine.iter().filter(|r| r.fell_back).count(),
                to_direct: Percentiles::of(
                    mine.iter()
                        .filter(|r| r.result == Ok(PathKind::Direct))
                        .filter_map(|r| r.to_direct)
                        .collect(),
                ),
                first_message: Percentiles::of(
                    mine.iter().filter_map(|r| r.first_message).collect(),
                ),
                worst_line_delay: Percentiles::of(
                    mine.iter().filter_map(|r| r.worst_line_delay).collect(),
                ),
                failures: mine
                    .iter()
                    .filter_map(|r| r.result.as_ref().err().map(|e| (r.seed, e.clone())))
                    .collect(),
            }
        })
        .collect();
    PathSuite {
        config: cfg.clone(),
        cases: results,
    }
}

impl PathSuite {
    /// Every failed run: `(case, seed, reason)`.
    pub fn failures(&self) -> Vec<(&'static str, u64, &str)> {
        self.cases
            .iter()
            .flat_map(|c| c.failures.iter().map(|(s, r)| (c.name, *s, r.as_str())))
            .collect()
    }

    /// Cases whose most frequent path is not the expected one.
    pub fn unexpected(&self) -> Vec<&CaseResult> {
        self.cases
            .iter()
            .filter(|c| !c.expected.contains(&c.path()))
            .collect()
    }

    /// A fixed-width text table, one row per case, then a summary line.
    pub fn to_table(&self) -> String {
        let ms = |d: Option<Duration>| d.map(|d| Ms(d).to_string()).unwrap_or_else(|| "-".into());
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<45} {:<8} {:<17} {:>7} {:>10} {:>11} {:>11} {:>11} {:>11} {:>9}",
            "path case",
            "path",
            "expected",
            "direct",
            "(re)direct",
            "p50",
            "p99",
            "max delay50",
            "max delay99",
            "exactly1"
        );
        for c in &self.cases {
            let classes: Vec<String> = c
                .classes
                .iter()
                .map(|(k, n)| format!("{}:{n}", k.label()))
                .collect();
            let _ = writeln!(
                s,
                "{:<45} {:<8} {:<17} {:>3}/{:<3} {:>10} {:>11} {:>11} {:>11} {:>11} {:>5}/{:<3}  {}{}",
                c.name,
                c.path().label(),
                c.expected_label(),
                c.direct,
                c.runs,
                if c.expected == [PathClass::Relay] {
                    "-"
                } else if self.disrupted(c) {
                    "since T"
                } else {
                    "since pair"
                },
                ms(c.to_direct.p50),
                ms(c.to_direct.p99),
                ms(c.worst_line_delay.p50),
                ms(c.worst_line_delay.p99),
                c.exactly_once,
                c.runs,
                classes.join(" "),
                if c.fell_back > 0 {
                    format!(", fell back to the relay in {}", c.fell_back)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(s, "{}", self.summary());
        s
    }

    fn disrupted(&self, c: &CaseResult) -> bool {
        cases()
            .iter()
            .any(|k| k.name == c.name && k.disruption.is_some())
    }

    /// One line: cases, runs, how many ended as expected, failures.
    pub fn summary(&self) -> String {
        let runs: usize = self.cases.iter().map(|c| c.runs).sum();
        let once: usize = self.cases.iter().map(|c| c.exactly_once).sum();
        format!(
            "path suite: {} cases x {} seeds (rtt {} ms, loss {:.0}%): {} of {} cases on their expected path; runs {}, every line exactly once in {}",
            self.cases.len(),
            self.config.seeds,
            self.config.rtt_ms,
            self.config.loss * 100.0,
            self.cases.len() - self.unexpected().len(),
            self.cases.len(),
            runs,
            once
        )
    }

    /// The suite as a JSON array (hand-written; durations in milliseconds, `null` when absent).
    pub fn to_json(&self) -> String {
        let num = json_ms;
        let mut s = String::from("[\n");
        for (i, c) in self.cases.iter().enumerate() {
            let classes: Vec<String> = c
                .classes
                .iter()
                .map(|(k, n)| format!("\"{}\": {n}", k.label()))
                .collect();
            let seeds: Vec<String> = c.failures.iter().map(|f| f.0.to_string()).collect();
            let _ = write!(
                s,
                "    {{\"case\": \"{}\", \"what\": \"{}\", \"path\": \"{}\", \"expected\": [{}], \"runs\": {}, \"direct\": {}, \
\"direct_rate\": {:.3}, \"paths\": {{{}}}, \"disruption_ms\": {}, \"to_direct_ms\": {{\"p50\": {}, \"p99\": {}}}, \
\"first_message_ms\": {{\"p50\": {}, \"p99\": {}}}, \"worst_line_delay_ms\": {{\"p50\": {}, \"p99\": {}}}, \"exactly_once\": {}, \"fell_back\": {}, \"failing_seeds\": [{}]}}",
                c.name,
                c.what,
                c.path().label(),
                c.expected
                    .iter()
                    .map(|e| format!("\"{}\"", e.label()))
                    .collect::<Vec<_>>()
                    .join(", "),
                c.runs,
                c.direct,
                c.direct as f64 / c.runs.max(1) as f64,
                classes.join(", "),
                num(cases()
                    .iter()
                    .find(|k| k.name == c.name)
                    .and_then(|k| k.disruption)),
                num(c.to_direct.p50),
                num(c.to_direct.p99),
                num(c.first_message.p50),
                num(c.first_message.p99),
                num(c.worst_line_delay.p50),
                num(c.worst_line_delay.p99),
                c.exactly_once,
                c.fell_back,
                seeds.join(", ")
            );
            s.push_str(json_separator(i, self.cases.len()));
        }
        s.push_str("  ]");
        s
    }
}
