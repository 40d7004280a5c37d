//! Fuzz targets for every decoder and every machine's `handle_input`, on stable Rust with `bolero`, plus the
//! original proptest cases (random and mutated datagrams into a fresh server and peer).
//!
//! Every `fuzz_*` test is a bolero target. Under a plain `cargo test` each runs for bolero's default budget
//! (1 s of random inputs). For a fixed number of inputs:
//!
//! * `PUNCH_FUZZ_INPUTS=N cargo test --release -p punch-core --test fuzz` splits `N` inputs over the targets by
//!   the weights in [`WEIGHTS`] (peer and server get the most);
//! * `BOLERO_RANDOM_ITERATIONS=N` (bolero's own variable, which wins) runs `N` inputs in every target;
//! * `BOLERO_RANDOM_SEED=S` replays the one input bolero printed for a failure.
//!
//! Machine targets start from a recorded state where input matters: a server with an alternate address, two
//! paired members and a third waiting one; a peer that registered, paired, keyed its channel and chats over a
//! direct path; a NAT detector mid-detection; a chat session with a path and messages in flight. The state is
//! reached by replaying a recorded trace into a fresh machine (machines are deterministic given their seed),
//! then the input is read as a script of operations: datagrams (raw bytes, or a captured valid datagram
//! mutated) from the server, the partner, the server's other sockets or a stranger, timer steps, application
//! calls. After every operation the machine is drained and checked:
//!
//! * no panic;
//! * `poll_deadline()` after `handle_timeout(t)` is later than `t`;
//! * transmits name a socket the machine owns (the server's `local_addrs`, `None` for the others);
//! * bounded output: the bytes sent in answer to one datagram from an unverified stranger are at most
//!   [`SERVER_STRANGER_BYTES`] for the server (one Binding/Register answer or error: no reflection, no
//!   amplification beyond one answer) and [`PEER_STRANGER_BYTES`] (nothing) for the peer and the detector;
//!   any one input or timer step sends at most [`MAX_STEP_BYTES`] and reports at most [`MAX_STEP_EVENTS`];
//! * the chat session acknowledges a data frame with one 17-byte ACK and nothing else.
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use punch_core::chat::{MAX_IN_FLIGHT, MAX_MESSAGE_BYTES};
use punch_core::rfc5780;
use punch_core::secure::{Code, Pake, Role, SecureChannel};
use punch_core::wire;
use punch_core::Machine;
use punch_core::{ChatSession, DetectorConfig, NatDetector};
use punch_core::{Path, Peer, PeerConfig};
use punch_core::{Server, ServerConfig};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The one clock read of this file: every instant is this base plus a virtual offset.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(epoch)
}

// ---------------------------------------------------------------------------------------------------------
// Budgets and bounds.

/// Share (per mille) of `PUNCH_FUZZ_INPUTS` each target runs.
const WEIGHTS: &[(&str, usize)] = &[
    ("server", 150),
    ("peer", 100),
    ("detector", 100),
    ("chat", 100),
    ("msg", 80),
    ("stun", 60),
    ("rfc5780", 60),
    ("classic", 60),
    ("inner", 50),
    ("direct", 50),
    ("addr", 50),
    ("code", 70),
    ("open", 50),
    ("pake", 20),
];

/// Bytes the server may send in answer to one datagram from a stranger (an address that is not a member):
/// one answer (a Binding success with XOR-MAPPED-ADDRESS and the RFC 5780 attributes, a Register success or
/// error, or an RFC 3489 answer, never bigger than the request allows plus its fixed attributes), plus the
/// PeerInfo requests a stranger's Register into a waiting pool legitimately triggers (two, each with one
/// member's name, addresses and PAKE message; they may also go out later, on the hold-back timer).
const SERVER_STRANGER_BYTES: usize = 1500;
/// Bytes a peer may send in answer to a datagram from a stranger that is not byte for byte a genuine datagram
/// (which it could only have seen on the path): nothing. Nothing a stranger makes up authenticates.
const PEER_STRANGER_BYTES: usize = 0;
/// Bytes a detector may send in answer to a datagram from a stranger. The detector matches answers by
/// transaction id, not by source (answers legitimately come from the server's other sockets), so a datagram
/// carrying a live transaction id (seen on the path) may move detection on: the next tests' Binding requests,
/// a few dozen bytes each, and only ever to the server's sockets (checked for every datagram it sends).
const DETECTOR_STRANGER_BYTES: usize = 256;
/// Bytes any machine may send after any one operation.
const MAX_STEP_BYTES: usize = 96 * 1024;
/// Events any machine may report after any one operation.
const MAX_STEP_EVENTS: usize = 256;

fn budget(target: &str) -> Option<usize> {
    let total: usize = std::env::var("PUNCH_FUZZ_INPUTS").ok()?.parse().ok()?;
    let weight = WEIGHTS.iter().find(|(n, _)| *n == target)?.1;
    Some((total * weight / 1000).max(1))
}

macro_rules! target {
    ($name:literal) => {{
        let t = bolero::check!();
        match budget($name) {
            Some(n) => t.with_iterations(n),
            None => t,
        }
    }};
}

// ---------------------------------------------------------------------------------------------------------
// Recorded scenarios.

/// One thing that happened to a machine, at an offset from [`base`].
#[derive(Debug, Clone)]
enum Step {
    Input {
        at: Duration,
        local: SocketAddr,
        remote: SocketAddr,
        data: Vec<u8>,
    },
    Timeout(Duration),
    Send(Duration, String),
}

const SRV: &str = "203.0.113.1:3478";
const SRV_ALT: &str = "203.0.113.2:3479";
const A: &str = "198.51.100.1:1000";
const A_LOCAL: &str = "10.0.0.1:1000";
const B: &str = "198.51.100.2:2000";
const B_LOCAL: &str = "10.0.0.2:2000";
const C: &str = "198.51.100.3:3000";
const DET: &str = "198.51.100.5:5000";
const STRANGER: &str = "192.0.2.66:6666";
const LATENCY: Duration = Duration::from_millis(10);

fn server_config() -> ServerConfig {
    let mut c = ServerConfig::new(addr(SRV));
    c.alternate = Some(addr(SRV_ALT));
    c.seed = 7;
    c
}

fn peer_config(code: &str, seed: u8, local: &str) -> PeerConfig {
    let mut c = PeerConfig::new(addr(SRV), code.parse().unwrap());
    c.seed = [seed; 32];
    c.name = format!("peer{seed}");
    c.local_addrs = vec![addr(local)];
    c
}

fn peer_a() -> Peer {
    Peer::new(peer_config("1-fuzz-code", 1, A_LOCAL), base())
}

fn detector_config() -> DetectorConfig {
    let mut c = DetectorConfig::new(addr(SRV));
    c.local_addrs = vec![addr("10.0.0.5:5000")];
    c.seed = 5;
    c
}

/// Everything a target needs: the trace that brings a fresh machine into the interesting state, and captured
/// datagrams (valid messages of every kind, some of them from after the snapshot, so still fresh) to mutate.
struct Recorded {
    steps: Vec<Step>,
    corpus: Vec<Vec<u8>>,
    /// Offset of the snapshot.
    at: Duration,
}

impl Recorded {
    /// A datagram delivered to the machine: always a corpus entry, a replay step while still recording.
    fn input(
        &mut self,
        recording: bool,
        at: Duration,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.corpus.push(data.to_vec());
        if recording {
            self.steps.push(Step::Input {
                at,
                local,
                remote,
                data: data.to_vec(),
            });
        }
    }
}

struct Scenarios {
    server: Recorded,
    peer: Recorded,
    detector: Recorded,
}

fn drain_to<M: Machine>(
    m: &mut M,
    default_src: SocketAddr,
) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(t) = m.poll_transmit() {
        out.push((t.source.unwrap_or(default_src), t.destination, t.payload));
    }
    while m.poll_event().is_some() {}
    out
}

fn due<M: Machine>(m: &M, now: Instant) -> bool {
    m.poll_timeout().is_some_and(|t| t <= now)
}

fn scenarios() -> &'static Scenarios {
    static S: OnceLock<Scenarios> = OnceLock::new();
    S.get_or_init(record)
}

/// Runs a server with an alternate address, peers A and B (pool 1) and C (pool 2, alone) for 800 ms of virtual
/// time with 10 ms links, A and B chatting; and, separately, a NAT detector against a second server. Records
/// the server's and A's steps up to 400 ms and the detector's up to 25 ms.
fn record() -> Scenarios {
    let t0 = base();
    let snap = Duration::from_millis(400);
    let end = Duration::from_millis(800);
    let mut server = Server::new(server_config(), t0);
    let srv_addrs = server.local_addrs();
    let mut a = peer_a();
    let mut b = Peer::new(peer_config("1-fuzz-code", 2, B_LOCAL), t0);
    let mut c = Peer::new(peer_config("2-other-code", 3, "10.0.0.3:3000"), t0);
    let mut rec_server = Recorded {
        steps: Vec::new(),
        corpus: Vec::new(),
        at: snap,
    };
    let mut rec_peer = Recorded {
        steps: Vec::new(),
        corpus: Vec::new(),
        at: snap,
    };
    let mut flight: Vec<(Duration, SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
    let push = |flight: &mut Vec<_>, at: Duration, out: Vec<(SocketAddr, SocketAddr, Vec<u8>)>| {
        for (from, to, data) in out {
            flight.push((at + LATENCY, from, to, data));
        }
    };
    push(
        &mut flight,
        Duration::ZERO,
        drain_to(&mut server, addr(SRV)),
    );
    push(&mut flight, Duration::ZERO, drain_to(&mut a, addr(A)));
    push(&mut flight, Duration::ZERO, drain_to(&mut b, addr(B)));
    push(&mut flight, Duration::ZERO, drain_to(&mut c, addr(C)));
    let mut off = Duration::ZERO;
    while off <= end {
        let now = t0 + off;
        let recording = off <= snap;
        // Deliver what is due.
        let (ready, later): (Vec<_>, Vec<_>) = flight.drain(..).partition(|p| p.0 <= off);
        flight = later;
        for (_, from, to, data) in ready {
            if srv_addrs.contains(&to) {
                rec_server.input(recording, off, to, from, &data);
                server.handle_input(now, to, from, &data);
                push(&mut flight, off, drain_to(&mut server, addr(SRV)));
            } else if to == addr(A) {
                rec_peer.input(recording, off, to, from, &data);
                a.handle_input(now, to, from, &data);
                push(&mut flight, off, drain_to(&mut a, addr(A)));
            } else if to == addr(B) {
                b.handle_input(now, to, from, &data);
                push(&mut flight, off, drain_to(&mut b, addr(B)));
            } else if to == addr(C) {
                c.handle_input(now, to, from, &data);
                push(&mut flight, off, drain_to(&mut c, addr(C)));
            }
        }
        // Chat: both sides say something now and then.
        let ms = off.as_millis();
        if ms % 100 == 50 && ms >= 150 {
            let text = format!("a says {ms}");
            if recording {
                rec_peer.steps.push(Step::Send(off, text.clone()));
            }
            let _ = a.send_message(now, &text);
            push(&mut flight, off, drain_to(&mut a, addr(A)));
            let _ = b.send_message(now, &format!("b says {ms}"));
            push(&mut flight, off, drain_to(&mut b, addr(B)));
        }
        // Timers.
        if due(&server, now) {
            if recording {
                rec_server.steps.push(Step::Timeout(off));
            }
            server.handle_timeout(now);
            push(&mut flight, off, drain_to(&mut server, addr(SRV)));
        }
        if due(&a, now) {
            if recording {
                rec_peer.steps.push(Step::Timeout(off));
            }
            a.handle_timeout(now);
            push(&mut flight, off, drain_to(&mut a, addr(A)));
        }
        if due(&b, now) {
            b.handle_timeout(now);
            push(&mut flight, off, drain_to(&mut b, addr(B)));
        }
        if due(&c, now) {
            c.handle_timeout(now);
            push(&mut flight, off, drain_to(&mut c, addr(C)));
        }
        if off == snap {
            assert!(
                matches!(a.path(), Some(Path::Direct(_))),
                "the recorded peer is on a direct path at the snapshot: {:?}",
                a.path()
            );
        }
        off += Duration::from_millis(1);
    }
    // Everything anyone sent is worth mutating, whoever it was for.
    for (_, _, _, data) in flight {
        rec_server.corpus.push(data.clone());
        rec_peer.corpus.push(data);
    }
    let all: Vec<Vec<u8>> = rec_server
        .corpus
        .iter()
        .chain(rec_peer.corpus.iter())
        .cloned()
        .collect();
    rec_server.corpus = dedup(all.clone());
    rec_peer.corpus = dedup(all);

    Scenarios {
        server: rec_server,
        peer: rec_peer,
        detector: record_detector(),
    }
}

fn dedup(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v.dedup();
    v
}

fn record_detector() -> Recorded {
    let t0 = base();
    let snap = Duration::from_millis(25);
    let mut server = Server::new(server_config(), t0);
    let srv_addrs = server.local_addrs();
    let mut det = NatDetector::new(detector_config(), t0);
    let mut rec = Recorded {
        steps: Vec::new(),
        corpus: Vec::new(),
        at: snap,
    };
    let mut flight: Vec<(Duration, SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
    for (from, to, data) in drain_to(&mut det, addr(DET)) {
        flight.push((LATENCY, from, to, data));
    }
    let mut off = Duration::ZERO;
    while off <= Duration::from_secs(4) {
        let now = t0 + off;
        let recording = off <= snap;
        let (ready, later): (Vec<_>, Vec<_>) = flight.drain(..).partition(|p| p.0 <= off);
        flight = later;
        for (_, from, to, data) in ready {
            rec.corpus.push(data.clone());
            if srv_addrs.contains(&to) {
                server.handle_input(now, to, from, &data);
                for (f, t, d) in drain_to(&mut server, addr(SRV)) {
                    flight.push((off + LATENCY, f, t, d));
                }
            } else if to == addr(DET) {
                if recording {
                    rec.steps.push(Step::Input {
                        at: off,
                        local: to,
                        remote: from,
                        data: data.clone(),
                    });
                }
                det.handle_input(now, to, from, &data);
                for (f, t, d) in drain_to(&mut det, addr(DET)) {
                    flight.push((off + LATENCY, f, t, d));
                }
            }
        }
        if due(&det, now) {
            if recording {
                rec.steps.push(Step::Timeout(off));
            }
            det.handle_timeout(now);
            for (f, t, d) in drain_to(&mut det, addr(DET)) {
                flight.push((off + LATENCY, f, t, d));
            }
        }
        if due(&server, now) {
            server.handle_timeout(now);
            for (f, t, d) in drain_to(&mut server, addr(SRV)) {
                flight.push((off + LATENCY, f, t, d));
            }
        }
        if off == snap {
            assert!(
                !det.is_done(),
                "the recorded detector is mid-detection at the snapshot"
            );
        }
        off += Duration::from_millis(1);
    }
    assert!(det.is_done(), "the recorded detection finishes");
    rec.corpus = dedup(rec.corpus);
    rec
}

/// Replays a recorded trace into a fresh machine (deterministic given its seed: the same state).
fn replay<M: Machine>(m: &mut M, steps: &[Step], send: impl Fn(&mut M, Instant, &str)) {
    let t0 = base();
    for s in steps {
        match s {
            Step::Input {
                at,
                local,
                remote,
                data,
            } => m.handle_input(t0 + *at, *local, *remote, data),
            Step::Timeout(at) => m.handle_timeout(t0 + *at),
            Step::Send(at, text) => send(m, t0 + *at, text),
        }
        while m.poll_transmit().is_some() {}
        while m.poll_event().is_some() {}
    }
}

// ---------------------------------------------------------------------------------------------------------
// The fuzz input, read as a script.

/// Reads the fuzz bytes as a script; every read past the end yields zeros, and [`Script::done`] says stop.
struct Script<'a> {
    data: &'a [u8],
}

impl<'a> Script<'a> {
    fn done(&self) -> bool {
        self.data.is_empty()
    }
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in b.iter_mut() {
            *x = self.u8();
        }
        u64::from_be_bytes(b)
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.u8() as usize % from.len()]
    }
    /// A datagram: raw bytes, or a captured one with a few bytes flipped and maybe cut short or extended.
    fn payload(&mut self, corpus: &[Vec<u8>]) -> Vec<u8> {
        let mode = self.u8();
        if mode & 1 == 0 || corpus.is_empty() {
            let len = self.u16() as usize % 1500;
            return self.bytes(len).to_vec();
        }
        let mut d = corpus[self.u16() as usize % corpus.len()].clone();
        for _ in 0..(mode >> 1) % 4 {
            let (at, x) = (self.u16() as usize, self.u8());
            if !d.is_empty() {
                let n = d.len();
                d[at % n] ^= x;
            }
        }
        if mode & 0x20 != 0 {
            let keep = self.u16() as usize % (d.len() + 1);
            d.truncate(keep);
        }
        if mode & 0x40 != 0 {
            let n = self.u8() as usize;
            d.extend_from_slice(self.bytes(n));
        }
        d
    }
    /// A timer step: mostly milliseconds, sometimes seconds (to reach expiries and give-ups).
    fn step(&mut self) -> Duration {
        let k = self.u8();
        if k & 0x80 != 0 {
            Duration::from_secs(u64::from(self.u8()))
        } else {
            Duration::from_millis(u64::from(self.u16() % 2000))
        }
    }
}

/// What one operation produced, after checking transmit sources.
struct Drained {
    bytes: usize,
}

fn drain_checked<M: Machine>(m: &mut M, sockets: &[SocketAddr]) -> Drained {
    drain_checked_to(m, sockets, None)
}

/// Drains and checks; with `dests`, every datagram must go to one of them.
fn drain_checked_to<M: Machine>(
    m: &mut M,
    sockets: &[SocketAddr],
    dests: Option<&[SocketAddr]>,
) -> Drained {
    let mut bytes = 0;
    let mut events = 0;
    while let Some(t) = m.poll_transmit() {
        if let Some(d) = dests {
            assert!(d.contains(&t.destination), "datagram to {}", t.destination);
        }
        match t.source {
            None => {}
            Some(s) => assert!(
                sockets.contains(&s),
                "transmit from a socket the machine does not own: {s}"
            ),
        }
        bytes += t.payload.len();
    }
    while m.poll_event().is_some() {
        events += 1;
    }
    assert!(
        bytes <= MAX_STEP_BYTES,
        "{bytes} bytes sent after one operation"
    );
    assert!(
        events <= MAX_STEP_EVENTS,
        "{events} events after one operation"
    );
    Drained { bytes }
}

fn timeout_checked<M: Machine>(m: &mut M, now: Instant, sockets: &[SocketAddr]) {
    timeout_checked_to(m, now, sockets, None)
}

fn timeout_checked_to<M: Machine>(
    m: &mut M,
    now: Instant,
    sockets: &[SocketAddr],
    dests: Option<&[SocketAddr]>,
) {
    m.handle_timeout(now);
    drain_checked_to(m, sockets, dests);
    if let Some(d) = m.poll_deadline() {
        assert!(
            d.at > now,
            "stale deadline after handle_timeout: {:?} ({})",
            d.at - now,
            d.reason
        );
    }
}

/// Where datagrams come from, and whether the machine may answer them.
#[derive(Clone, Copy)]
struct Source {
    addr: &'static str,
    stranger: bool,
}

/// What a machine target promises about its output.
struct Bounds<'a> {
    /// Bytes it may send in answer to one datagram from a stranger.
    stranger: usize,
    /// The stranger bound does not apply to a genuine datagram (byte for byte one the partner or server sent,
    /// forwarded by someone else): the peer authenticates content, not addresses (NAT rebinding).
    genuine_exempt: bool,
    /// Where it may send, if restricted.
    dests: Option<&'a [SocketAddr]>,
}

/// A machine target: its recorded run, its sockets, who may send to it and what it promises.
struct Target<'a> {
    rec: &'a Recorded,
    locals: &'a [SocketAddr],
    sources: Vec<Source>,
    bounds: Bounds<'a>,
}

impl<'a> Target<'a> {
    /// Datagrams come from `known` and `strangers`; at most `stranger` bytes go out in answer to a
    /// stranger's datagram.
    fn new(
        rec: &'a Recorded,
        locals: &'a [SocketAddr],
        [known, strangers]: [&[&'static str]; 2],
        stranger: usize,
    ) -> Self {
        let source = |stranger| move |&addr: &&'static str| Source { addr, stranger };
        let known = known.iter().map(source(false));
        let sources = known.chain(strangers.iter().map(source(true))).collect();
        let bounds = Bounds {
            stranger,
            genuine_exempt: false,
            dests: None,
        };
        Target {
            rec,
            locals,
            sources,
            bounds,
        }
    }

    /// See [`Bounds::genuine_exempt`].
    fn genuine_exempt(mut self) -> Self {
        self.bounds.genuine_exempt = true;
        self
    }

    /// Sends only to `dests`.
    fn only_to(mut self, dests: &'a [SocketAddr]) -> Self {
        self.bounds.dests = Some(dests);
        self
    }
}

/// Runs the fuzzer's `input` as a script against a machine in its recorded state.
fn run_script<M: Machine>(
    m: &mut M,
    target: &Target,
    input: &[u8],
    mut app: impl FnMut(&mut M, Instant, &mut Script),
) {
    let Target {
        rec,
        locals,
        sources,
        bounds,
    } = target;
    let script = &mut Script { data: input };
    let mut now = base() + rec.at;
    let owned: Vec<SocketAddr> = locals.to_vec();
    let dests = bounds.dests;
    let mut ops = 0;
    while !script.done() && ops < 64 {
        ops += 1;
        match script.u8() % 8 {
            0..=4 => {
                let src = script.pick(sources);
                let local = script.pick(locals);
                let data = script.payload(&rec.corpus);
                m.handle_input(now, local, addr(src.addr), &data);
                let d = drain_checked_to(m, &owned, dests);
                let genuine = rec.corpus.binary_search(&data).is_ok();
                if src.stranger && !(genuine && bounds.genuine_exempt) {
                    assert!(
                        d.bytes <= bounds.stranger,
                        "{} bytes sent in answer to {} bytes from stranger {}",
                        d.bytes,
                        data.len(),
                        src.addr
                    );
                }
            }
            5 | 6 => {
                now += script.step();
                timeout_checked_to(m, now, &owned, dests);
            }
            _ => {
                app(m, now, script);
                drain_checked_to(m, &owned, dests);
            }
        }
    }
    // Whatever state the script left, the machine's timers still behave.
    now += Duration::from_millis(1);
    timeout_checked_to(m, now, &owned, dests);
    now += Duration::from_secs(70);
    timeout_checked_to(m, now, &owned, dests);
}

// ---------------------------------------------------------------------------------------------------------
// Machine targets.

#[test]
fn fuzz_server_handle_input() {
    let rec = &scenarios().server;
    let sources = [&[A, B, C][..], &[STRANGER, "[2001:db8::9]:9999", A_LOCAL]];
    let locals = Server::new(server_config(), base()).local_addrs();
    let target = Target::new(rec, &locals, sources, SERVER_STRANGER_BYTES);
    target!("server").for_each(|input: &[u8]| {
        let mut server = Server::new(server_config(), base());
        replay(&mut server, &rec.steps, |_, _, _| {});
        assert_eq!(
            server.stats().pairs,
            1,
            "the recorded server has paired A and B"
        );
        run_script(&mut server, &target, input, |_, _, _| {});
    });
}

#[test]
fn fuzz_peer_handle_input() {
    let rec = &scenarios().peer;
    let sources = [&[SRV, SRV, B, B_LOCAL][..], &[SRV_ALT, STRANGER]];
    let locals = [addr(A), addr(A_LOCAL)];
    let target = Target::new(rec, &locals, sources, PEER_STRANGER_BYTES).genuine_exempt();
    target!("peer").for_each(|input: &[u8]| {
        let mut peer = peer_a();
        replay(&mut peer, &rec.steps, |p, now, text| {
            let _ = p.send_message(now, text);
        });
        assert!(matches!(peer.path(), Some(Path::Direct(_))));
        run_script(&mut peer, &target, input, |p, now, s| match s.u8() % 4 {
            0 | 1 => {
                let n = s.u16() as usize % (MAX_MESSAGE_BYTES + 8);
                let text = String::from_utf8_lossy(s.bytes(n)).into_owned();
                let _ = p.send_message(now, &text);
            }
            2 => {
                p.finish(now);
            }
            _ => p.close(now),
        });
    });
}

#[test]
fn fuzz_detector_handle_input() {
    let rec = &scenarios().detector;
    let sources = [
        &[SRV, SRV_ALT, "203.0.113.1:3479", "203.0.113.2:3478"][..],
        &[STRANGER],
    ];
    let locals = [addr(DET)];
    let server_sockets = Server::new(server_config(), base()).local_addrs();
    let target =
        Target::new(rec, &locals, sources, DETECTOR_STRANGER_BYTES).only_to(&server_sockets);
    target!("detector").for_each(|input: &[u8]| {
        let mut det = NatDetector::new(detector_config(), base());
        replay(&mut det, &rec.steps, |_, _, _| {});
        assert!(!det.is_done());
        run_script(&mut det, &target, input, |_, _, _| {});
    });
}

#[test]
fn fuzz_chat_handle_input() {
    let hop = addr(B);
    target!("chat").for_each(|input: &[u8]| {
        let t0 = base();
        let mut chat = ChatSession::new();
        chat.set_path(t0, Some(hop), Duration::from_millis(20));
        for i in 0..3 {
            chat.send(t0, &format!("message {i}")).unwrap();
        }
        while chat.poll_transmit().is_some() {}
        let mut s = Script { data: input };
        let mut now = t0;
        let mut ops = 0;
        while !s.done() && ops < 64 {
            ops += 1;
            match s.u8() % 8 {
                0..=3 => {
                    // A frame: raw, or a well-formed DATA/FIN/ACK with fuzzed numbers.
                    let frame = match s.u8() % 4 {
                        0 => {
                            let n = s.u16() as usize % 1200;
                            s.bytes(n).to_vec()
                        }
                        k @ (1 | 2) => {
                            // DATA (0) or FIN (2).
                            let mut f = vec![if k == 1 { 0 } else { 2 }];
                            f.extend((s.u64() % 600).to_be_bytes());
                            let n = s.u8() as usize;
                            f.extend_from_slice(s.bytes(n));
                            f
                        }
                        _ => {
                            // ACK (1): cumulative, then the one acknowledged.
                            let mut f = vec![1];
                            f.extend((s.u64() % 600).to_be_bytes());
                            f.extend((s.u64() % 600).to_be_bytes());
                            f
                        }
                    };
                    let is_ack = frame.first() == Some(&1);
                    chat.handle_input(now, addr(A), hop, &frame);
                    let mut sent = Vec::new();
                    while let Some(t) = chat.poll_transmit() {
                        assert_eq!(t.destination, hop);
                        sent.push(t.payload);
                    }
                    while chat.poll_event().is_some() {}
                    if is_ack {
                        // An ACK may release queued messages: at most a window of them.
                        assert!(sent.len() <= MAX_IN_FLIGHT);
                        assert!(sent.iter().all(|f| f.len() <= 9 + MAX_MESSAGE_BYTES));
                    } else {
                        // Anything else is answered by at most one 17-byte ACK.
                        assert!(
                            sent.len() <= 1,
                            "{} frames in answer to one frame",
                            sent.len()
                        );
                        assert!(sent.iter().all(|f| f.len() == 17 && f[0] == 1));
                    }
                }
                4 | 5 => {
                    now += s.step();
                    timeout_checked(&mut chat, now, &[]);
                }
                6 => {
                    let n = s.u16() as usize % (MAX_MESSAGE_BYTES + 8);
                    let text = String::from_utf8_lossy(s.bytes(n)).into_owned();
                    let _ = chat.send(now, &text);
                    drain_checked(&mut chat, &[]);
                }
                _ => match s.u8() % 3 {
                    0 => {
                        chat.finish(now);
                    }
                    1 => chat.set_path(now, None, Duration::from_millis(u64::from(s.u16()))),
                    _ => chat.set_path(now, Some(hop), Duration::from_millis(u64::from(s.u16()))),
                },
            }
            drain_checked(&mut chat, &[]);
        }
        now += Duration::from_secs(10);
        timeout_checked(&mut chat, now, &[]);
    });
}

// ---------------------------------------------------------------------------------------------------------
// Decoder targets.

/// The server's relay fast path forwards the received bytes as they are: whatever it accepts must be a Relay
/// the decoder reads the same way and whose canonical re-encoding (the slow path's output) is those bytes.
#[test]
fn fuzz_relay_fast_path_agrees_with_the_decoder() {
    target!("relay").for_each(|input: &[u8]| {
        let mut s = Script { data: input };
        let n = s.u16() as usize % 1300;
        let data = s.bytes(n).to_vec();
        let (t, p) = (s.u8(), s.u8());
        let relay = wire::Msg::Relay {
            tid: [t; 12],
            pair_id: Some([p; 8]),
            data: Some(data),
        };
        let mut b = relay.encode();
        assert!(
            wire::relay_view(&b).is_some(),
            "the encoder's form is canonical"
        );
        for _ in 0..s.u8() % 4 {
            let i = s.u16() as usize % b.len();
            b[i] = s.u8();
        }
        let Some(view) = wire::relay_view(&b) else {
            return;
        };
        let decoded = wire::Msg::decode(&b);
        let Some(wire::Msg::Relay {
            pair_id,
            data: Some(d),
            ..
        }) = &decoded
        else {
            panic!("the fast path accepted what the decoder reads as {decoded:?}");
        };
        assert_eq!(*pair_id, Some(view.pair_id));
        assert_eq!(d.len(), view.data_len);
        let again = decoded.as_ref().map(wire::Msg::encode);
        assert_eq!(
            again.as_ref(),
            Some(&b),
            "forwarding as-is differs from re-encoding"
        );
    });
}

#[test]
fn fuzz_wire_msg_decode() {
    target!("msg").for_each(|data: &[u8]| {
        if let Some(m) = wire::Msg::decode(data) {
            // What decodes re-encodes into something that decodes to the same message.
            let again = wire::Msg::decode(&m.encode());
            assert_eq!(again.as_ref(), Some(&m), "re-encoding changed the message");
        }
    });
}

#[test]
fn fuzz_wire_decode() {
    target!("stun").for_each(|data: &[u8]| {
        let _ = wire::kind(data);
        let _ = wire::describe(data);
        if let Some(m) = wire::decode(data) {
            let _ = wire::decode(&wire::encode(m));
        }
        let _ = wire::decode_as::<rfc5780::BindingAttribute>(data);
    });
}

#[test]
fn fuzz_rfc5780_decode() {
    target!("rfc5780").for_each(|data: &[u8]| {
        if let Some(m) = rfc5780::decode(data) {
            let _ = rfc5780::decode(&rfc5780::encode(m));
        }
        let _ = rfc5780::is_binding_request(data);
        let _ = rfc5780::transaction_id(data);
    });
}

#[test]
fn fuzz_rfc5780_classic_parse() {
    target!("classic").for_each(|data: &[u8]| {
        if let Some(m) = rfc5780::classic::parse(data) {
            let _ = m.change_request();
            let encoded = rfc5780::classic::encode(&m);
            assert!(
                rfc5780::classic::parse(&encoded).is_some(),
                "an encoded message parses"
            );
        }
    });
}

#[test]
fn fuzz_wire_inner_decode() {
    target!("inner").for_each(|data: &[u8]| {
        if let Some(inner) = wire::Inner::decode(data) {
            assert_eq!(wire::Inner::decode(&inner.encode()), Some(inner));
        }
    });
}

#[test]
fn fuzz_wire_decode_direct() {
    target!("direct").for_each(|data: &[u8]| {
        if let Some((id, sealed)) = wire::decode_direct(data) {
            assert_eq!(wire::encode_direct(&id, sealed), data);
        }
    });
}

#[test]
fn fuzz_wire_decode_addr() {
    target!("addr").for_each(|data: &[u8]| {
        if let Some(a) = wire::decode_addr(data) {
            assert_eq!(wire::decode_addr(&wire::encode_addr(a)), Some(a));
        }
    });
}

#[test]
fn fuzz_secure_code_parse() {
    target!("code").for_each(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        if let Ok(code) = Code::parse(&text) {
            let printed = code.to_string();
            assert_eq!(Code::parse(&printed).as_ref(), Ok(&code), "{printed}");
            let _ = code.password();
        }
    });
}

/// Associated data, plaintext, sealed datagram.
type Sealed = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A sender's sealed datagrams (some with another associated data), to open, replay and mutate.
fn sealed_corpus() -> &'static Vec<Sealed> {
    static S: OnceLock<Vec<Sealed>> = OnceLock::new();
    S.get_or_init(|| {
        let mut tx = SecureChannel::new(&[7; 32], Role::Low);
        (0..16u8)
            .map(|i| {
                let aad = if i % 4 == 3 {
                    b"pair 2".to_vec()
                } else {
                    b"pair 1".to_vec()
                };
                let plain = vec![i; usize::from(i) * 5];
                let sealed = tx.seal(&aad, &plain).unwrap();
                (aad, plain, sealed)
            })
            .collect()
    })
}

#[test]
fn fuzz_secure_channel_open() {
    let corpus = sealed_corpus();
    let sealed: Vec<Vec<u8>> = corpus.iter().map(|c| c.2.clone()).collect();
    target!("open").for_each(|input: &[u8]| {
        let mut rx = SecureChannel::new(&[7; 32], Role::High);
        let mut opened = std::collections::HashSet::new();
        let mut s = Script { data: input };
        while !s.done() {
            let aad: &[u8] = if s.u8() % 4 == 3 {
                b"pair 2"
            } else {
                b"pair 1"
            };
            let data = s.payload(&sealed);
            if let Ok(plain) = rx.open(aad, &data) {
                // Only a genuine datagram opens, once, under its own associated data, to its plaintext.
                let genuine = corpus
                    .iter()
                    .find(|c| c.2 == data)
                    .expect("a datagram the sender never sealed opened");
                assert_eq!(genuine.0, aad);
                assert_eq!(genuine.1, plain);
                assert!(opened.insert(data), "a replay opened");
            }
        }
    });
}

#[test]
fn fuzz_secure_pake_finish() {
    let code: Code = "1-fuzz-code".parse().unwrap();
    target!("pake").for_each(|input: &[u8]| {
        use rand_chacha::rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let (pake, ours) = Pake::start(&code, &mut rng);
        // Mostly well-formed lengths (a side byte and a 32-byte point), so that the curve code is reached.
        let msg: Vec<u8> = match input.split_first() {
            Some((k, rest)) if k % 4 == 0 => rest.to_vec(),
            Some((k, rest)) => {
                let mut m = vec![if k % 4 == 1 { b'S' } else { *k }];
                m.extend(rest.iter().copied().chain(std::iter::repeat(0)).take(32));
                m
            }
            None => ours.clone(),
        };
        let result = pake.finish(&msg);
        if msg == ours {
            assert!(result.is_err(), "our own message reflected back is refused");
        }
    });
}

// ---------------------------------------------------------------------------------------------------------
// The original proptest cases: random and mutated datagrams into a fresh server and peer, in every phase.

/// Valid messages of every kind, captured from a real exchange, to mutate.
fn corpus() -> Vec<Vec<u8>> {
    let t0 = base();
    let srv = addr("203.0.113.1:3478");
    let mut server = Server::new(ServerConfig::new(srv), t0);
    let mut out = Vec::new();
    let mut peers: Vec<(SocketAddr, Peer)> = ["198.51.100.1:1000", "198.51.100.2:2000"]
        .iter()
        .map(|a| {
            let mut c = PeerConfig::new(srv, "1-fuzz-code".parse().unwrap());
            c.seed = [a.len() as u8; 32];
            (addr(a), Peer::new(c, t0))
        })
        .collect();
    let mut now = t0;
    for _ in 0..50 {
        now += Duration::from_millis(5);
        let mut packets = Vec::new();
        for (a, p) in peers.iter_mut() {
            p.handle_timeout(now);
            let _ = p.send_message(now, "hello");
            while let Some(t) = p.poll_transmit() {
                packets.push((*a, t.destination, t.payload));
            }
        }
        server.handle_timeout(now);
        while let Some(t) = server.poll_transmit() {
            packets.push((srv, t.destination, t.payload));
        }
        for (from, to, payload) in packets {
            out.push(payload.clone());
            if to == srv {
                server.handle_input(now, srv, from, &payload);
            } else if let Some((_, p)) = peers.iter_mut().find(|(a, _)| *a == to) {
                p.handle_input(now, to, from, &payload);
            }
        }
    }
    out
}

fn check<M: Machine>(m: &mut M, now: Instant) {
    while m.poll_transmit().is_some() {}
    while m.poll_event().is_some() {}
    m.handle_timeout(now);
    while m.poll_transmit().is_some() {}
    if let Some(t) = m.poll_timeout() {
        assert!(t > now, "stale deadline");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1600), from_port in any::<u16>()) {
        let t0 = base();
        let srv = addr("203.0.113.1:3478");
        let from = SocketAddr::new("198.51.100.9".parse().unwrap(), from_port);
        let mut server = Server::new(ServerConfig::new(srv), t0);
        server.handle_input(t0, srv, from, &data);
        check(&mut server, t0);
        let mut peer = Peer::new(PeerConfig::new(srv, "1-fuzz-code".parse().unwrap()), t0);
        peer.handle_input(t0, addr("10.0.0.1:1"), srv, &data);
        peer.handle_input(t0, addr("10.0.0.1:1"), from, &data);
        check(&mut peer, t0);
    }

    #[test]
    fn mutated_valid_messages_never_panic(pick in any::<prop::sample::Index>(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let corpus = corpus();
        let mut data = corpus[pick.index(corpus.len())].clone();
        for (i, b) in flips {
            let n = data.len();
            data[i.index(n)] ^= b;
        }
        let keep = cut.index(data.len() + 1);
        let t0 = base();
        let srv = addr("203.0.113.1:3478");
        let from = addr("198.51.100.1:1000");
        for d in [&data[..], &data[..keep]] {
            let mut server = Server::new(ServerConfig::new(srv), t0);
            server.handle_input(t0, srv, from, d);
            check(&mut server, t0);
            let mut peer = Peer::new(PeerConfig::new(srv, "1-fuzz-code".parse().unwrap()), t0);
            peer.handle_input(t0, from, srv, d);
            check(&mut peer, t0);
        }
    }
}
