//! NAT behaviour detection (RFC 5780), sans-IO, on the peer's one socket.
//!
//! The server must have an alternate address (`punch server --alt-ip`): four sockets P (primary IP, primary
//! port), PA (primary IP, alternate port), AP (alternate IP, primary port) and AA (alternate IP, alternate port),
//! with OTHER-ADDRESS = AA in the answer to a Binding sent to P.
//!
//! ## The test sequence (see `docs/DETECTION.md`)
//!
//! At once, all three to P:
//! 1. **mapping test 1/3**: plain Binding to P: public address, RTT, OTHER-ADDRESS.
//! 2. **filtering test 1/2**: Binding to P with CHANGE-REQUEST(IP, port): answered from AA. The client has sent
//!    to no alternate-IP socket yet, so the answer gets in only with endpoint-independent filtering.
//! 3. **filtering test 2/2**: Binding to P with CHANGE-REQUEST(port): answered from PA, same IP as P but a port
//!    the client never sends to: it gets in with address-dependent (or endpoint-independent) filtering only.
//!
//! A filtering test with no answer after its retransmissions (about 1 s) counts as filtered. Then:
//!
//! 4. **mapping test 2/3**: plain Binding to AP, only once filtering test 1/2 is decided (sending to the
//!    alternate IP earlier would open an address-dependent filter to AA's late answers). Same mapped address as
//!    test 1 → endpoint-independent mapping; done.
//! 5. **mapping test 3/3** (only if 4 differed): plain Binding to AA. Same as test 4 → address-dependent,
//!    else address-and-port-dependent mapping.
//!
//! Why this order survives Linux conntrack: a filtered answer from AA or PA leaves an unreplied conntrack entry
//! that reserves (that server socket ↔ public port X) on a router without WAN input firewall, and a later
//! Binding from the client to that exact socket leaves from a different port. The client never sends to PA,
//! sends to AP (which never answers unsolicited), and sends to AA only when the mapping already differed for
//! AP — then the NAT does not reuse X for AA anyway, so the reservation changes nothing.
//!
//! Port allocation comes from the distinct mapped ports (up to three): the first equal to the local port is
//! "preserved"; a run with one small step is "sequential"; anything else "random".
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use stun_codec::rfc5389::attributes::{ErrorCode, MappedAddress, XorMappedAddress};
use stun_codec::rfc5780::attributes::{OtherAddress, ResponseOrigin};
use stun_codec::MessageClass;

use crate::nat::{Filtering, Mapping, NatBehaviour, NatKind, PortAllocation};
use crate::rfc5780::{self, ChangeRequest, ChangedAddress, SourceAddress};
use crate::timer::after;
use crate::wire::methods;
use crate::Transmit;

/// Detector settings; [`DetectorConfig::new`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// The server's primary socket (P).
    pub server: SocketAddr,
    /// The local addresses of the socket (interface IP + bound port), to tell "no NAT" from "NAT".
    pub local_addrs: Vec<SocketAddr>,
    /// Seed for transaction ids.
    pub seed: u64,
    /// First retransmission timeout (default 150 ms); it doubles per retransmission up to `max_rto`.
    pub initial_rto: Duration,
    /// Largest retransmission timeout (default 800 ms).
    pub max_rto: Duration,
    /// Largest retransmission timeout of the filtering tests (default 250 ms): five tries in their window, so
    /// that a lost answer is not mistaken for a filter.
    pub filter_max_rto: Duration,
    /// How long the first Binding to the server is retried before the server counts as unreachable
    /// (default 2.5 s).
    pub binding_timeout: Duration,
    /// How long a mapping test to the alternate IP is retried at least (default 1.5 s; it goes on while the
    /// overall limit allows).
    pub mapping_timeout: Duration,
    /// How long a filtering test waits for its answer before it counts as filtered (default 1 s; stretched to
    /// two RTTs after the last retransmission on slow paths).
    pub filter_timeout: Duration,
    /// Hard limit on the whole detection (default 3 s, stretched on slow paths to `filter_timeout` + 5 RTT):
    /// whatever is undecided then is reported unknown.
    pub max_duration: Duration,
}

impl DetectorConfig {
    pub fn new(server: SocketAddr) -> Self {
        DetectorConfig {
            server,
            local_addrs: Vec::new(),
            seed: 0,
            initial_rto: Duration::from_millis(150),
            max_rto: Duration::from_millis(800),
            filter_max_rto: Duration::from_millis(250),
            binding_timeout: Duration::from_millis(2500),
            mapping_timeout: Duration::from_millis(1500),
            filter_timeout: Duration::from_millis(1000),
            max_duration: Duration::from_secs(3),
        }
    }
}

/// The result of a detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatReport {
    /// The public (server-reflexive) address of the socket.
    pub public_addr: Option<SocketAddr>,
    /// Mapping, filtering, port allocation and whether there is a NAT at all.
    pub behaviour: NatBehaviour,
    /// The classic name: `behaviour.kind()`, or `Blocked` when the server never answered.
    pub kind: NatKind,
    /// Round trip to the server's primary socket (a lower bound if only a retransmission was answered).
    pub server_rtt: Option<Duration>,
    /// The server announced an alternate address (OTHER-ADDRESS), so behaviour tests could run.
    pub behaviour_tests: bool,
    /// No answer at all from the server.
    pub server_unreachable: bool,
    /// (server socket, mapped address) for each plain Binding answered.
    pub mapped_addrs: Vec<(SocketAddr, SocketAddr)>,
    /// Human-readable remarks (why something is unknown, surprises).
    pub notes: Vec<String>,
}

/// What the detector reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectEvent {
    /// A step, for people ("mapping test 2/3: 203.0.113.2:3478").
    Progress(String),
    /// Finished; the same report as [`NatDetector::report`].
    Done(NatReport),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Mapping test 1/3: plain Binding to P.
    Binding,
    /// Filtering test 1/2: to P, change IP and port (answer from AA).
    FilterIpPort,
    /// Filtering test 2/2: to P, change port (answer from PA).
    FilterPort,
    /// Mapping test 2/3: plain Binding to AP.
    MapAltIp,
    /// Mapping test 3/3: plain Binding to AA.
    MapAltBoth,
}

const PROBES: [Probe; 5] = [
    Probe::Binding,
    Probe::FilterIpPort,
    Probe::FilterPort,
    Probe::MapAltIp,
    Probe::MapAltBoth,
];

impl Probe {
    fn index(self) -> usize {
        self as usize
    }
    fn change(self) -> ChangeRequest {
        match self {
            Probe::FilterIpPort => ChangeRequest::new(true, true),
            Probe::FilterPort => ChangeRequest::new(false, true),
            _ => ChangeRequest::default(),
        }
    }
    fn label(self) -> &'static str {
        match self {
            Probe::Binding => "mapping test 1/3",
            Probe::FilterIpPort => "filtering test 1/2 (change IP and port)",
            Probe::FilterPort => "filtering test 2/2 (change port)",
            Probe::MapAltIp => "mapping test 2/3",
            Probe::MapAltBoth => "mapping test 3/3",
        }
    }
}

#[derive(Debug, Clone)]
struct Answer {
    /// Where the answer came from (the datagram's source, not what it claims).
    from: SocketAddr,
    mapped: Option<SocketAddr>,
    other: Option<SocketAddr>,
    rtt: Duration,
    /// Only one request was sent, so `rtt` is exact (Karn).
    exact_rtt: bool,
}

#[derive(Debug, Clone)]
enum Outcome {
    Answered(Answer),
    Error(u16, String),
    TimedOut,
    Cancelled,
}

#[derive(Debug, Clone)]
struct Txn {
    tid: [u8; 12],
    dest: SocketAddr,
    first_sent: Instant,
    last_sent: Instant,
    sends: u32,
    rto: Duration,
    next_send: Option<Instant>,
    /// No retransmission at or after this; the test is decided at `max(deadline, last_sent + reply wait)`.
    deadline: Instant,
    outcome: Option<Outcome>,
}

impl Txn {
    fn answer(&self) -> Option<&Answer> {
        match &self.outcome {
            Some(Outcome::Answered(a)) => Some(a),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    Complete,
    Blocked,
    NoBehaviourTests,
    Deadline,
}

/// The NAT detector. See the module docs for the tests and the crate docs for the call order.
#[derive(Debug)]
pub struct NatDetector {
    config: DetectorConfig,
    rng: SmallRng,
    start: Instant,
    now: Instant,
    txns: [Option<Txn>; 5],
    /// Every transaction id sent: late answers are still recognised as the detector's.
    tids: BTreeSet<[u8; 12]>,
    /// The local socket, as the driver reports it on input.
    local: Option<SocketAddr>,
    /// Latest RTT sample, for the reply windows.
    rtt: Option<Duration>,
    out: VecDeque<Transmit>,
    events: VecDeque<DetectEvent>,
    notes: Vec<String>,
    report: Option<NatReport>,
}

impl NatDetector {
    /// Starts detecting: the first three requests are queued at once.
    pub fn new(config: DetectorConfig, now: Instant) -> Self {
        let mut d = NatDetector {
            rng: SmallRng::seed_from_u64(config.seed),
            config,
            start: now,
            now,
            txns: Default::default(),
            tids: BTreeSet::new(),
            local: None,
            rtt: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            notes: Vec::new(),
            report: None,
        };
        let server = d.config.server;
        d.begin(Probe::Binding, server);
        d.begin(Probe::FilterIpPort, server);
        d.begin(Probe::FilterPort, server);
        d
    }

    /// Whether the report is ready.
    pub fn is_done(&self) -> bool {
        self.report.is_some()
    }

    /// The report, once done.
    pub fn report(&self) -> Option<&NatReport> {
        self.report.as_ref()
    }

    /// A datagram arrived. Returns true if it was an answer to one of the detector's requests (also a late
    /// one); anything else is left to the caller.
    pub fn handle_input(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Some(tid) = rfc5780::transaction_id(data) else {
            return false;
        };
        if !self.tids.contains(&tid) {
            return false;
        }
        // Only responses are answers (class bit C1, 0x0100 of the message type, is set for both kinds).
        if data[0] & 0x01 == 0 {
            return false;
        }
        self.clamp(now);
        if local.port() != 0 {
            self.local = Some(local);
        }
        if self.report.is_some() {
            return true;
        }
        let Some(msg) = rfc5780::decode(data) else {
            return true;
        };
        if msg.method() != methods::binding() {
            return true;
        }
        let now = self.now;
        let Some((probe, txn)) = PROBES
            .iter()
            .filter_map(|p| self.txns[p.index()].as_ref().map(|t| (*p, t)))
            .find(|(_, t)| t.tid == tid)
        else {
            return true;
        };
        if txn.outcome.is_some() {
            return true;
        }
        let rtt = now.saturating_duration_since(if txn.sends == 1 {
            txn.first_sent
        } else {
            txn.last_sent
        });
        let exact_rtt = txn.sends == 1;
        let outcome = match msg.class() {
            MessageClass::SuccessResponse => {
                let mapped = rfc5780::get::<XorMappedAddress>(&msg)
                    .map(|a| a.address())
                    .or_else(|| rfc5780::get::<MappedAddress>(&msg).map(|a| a.address()));
                let other = rfc5780::get::<OtherAddress>(&msg)
                    .map(|a| a.address())
                    .or_else(|| rfc5780::get::<ChangedAddress>(&msg).map(|a| a.0));
                let origin = rfc5780::get::<ResponseOrigin>(&msg)
                    .map(|a| a.address())
                    .or_else(|| rfc5780::get::<SourceAddress>(&msg).map(|a| a.0));
                if origin.is_some_and(|o| o != remote) {
                    self.note(format!(
                        "{}: answer claims to come from {} but came from {remote} (a NAT in front of the \
                         server?); the datagram's source counts",
                        probe.label(),
                        origin.unwrap_or(remote)
                    ));
                }
                let mut msg = match mapped {
                    Some(m) => format!("{}: mapped to {m} (answer from {remote}", probe.label()),
                    None => format!(
                        "{}: answer from {remote} without a mapped address (",
                        probe.label()
                    ),
                };
                msg.push_str(&format!(", rtt {:.1} ms)", rtt.as_secs_f64() * 1000.0));
                self.progress(msg);
                if matches!(probe, Probe::Binding | Probe::MapAltIp | Probe::MapAltBoth) {
                    self.rtt = Some(rtt);
                }
                Outcome::Answered(Answer {
                    from: remote,
                    mapped,
                    other,
                    rtt,
                    exact_rtt,
                })
            }
            MessageClass::ErrorResponse => {
                let (code, reason) = rfc5780::get::<ErrorCode>(&msg)
                    .map(|e| (e.code(), e.reason_phrase().to_owned()))
                    .unwrap_or((0, String::new()));
                self.progress(format!("{}: error {code} {reason}", probe.label()));
                Outcome::Error(code, reason)
            }
            _ => return true,
        };
        if let Some(t) = self.txns[probe.index()].as_mut() {
            t.outcome = Some(outcome);
            t.next_send = None;
        }
        self.advance(now);
        true
    }

    /// Retransmits, decides timed-out tests, starts the next ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clamp(now);
        let now = self.now;
        self.advance(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_deadline(&self) -> Option<crate::Deadline> {
        self.poll_timeout().map(|at| crate::Deadline {
            at,
            reason: "detector probe",
        })
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.report.is_some() {
            return None;
        }
        let wait = self.reply_wait();
        let txn_times = self
            .txns
            .iter()
            .flatten()
            .filter(|t| t.outcome.is_none())
            .flat_map(|t| [t.next_send, Some(decide_at(t, wait))])
            .flatten();
        txn_times.chain([self.deadline()]).min()
    }

    pub fn poll_event(&mut self) -> Option<DetectEvent> {
        self.events.pop_front()
    }

    // ---- internals ----

    fn clamp(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    fn progress(&mut self, s: String) {
        tracing::debug!("{s}");
        self.events.push_back(DetectEvent::Progress(s));
    }

    fn note(&mut self, s: String) {
        if !self.notes.contains(&s) {
            self.notes.push(s);
        }
    }

    /// How long to wait for an answer after the last send.
    fn reply_wait(&self) -> Duration {
        self.rtt
            .map_or(Duration::ZERO, |r| r.saturating_mul(2))
            .max(Duration::from_millis(100))
    }

    /// The hard limit of the whole detection.
    fn deadline(&self) -> Instant {
        let slow = self.config.filter_timeout + self.rtt.unwrap_or_default().saturating_mul(5);
        after(self.start, self.config.max_duration.max(slow))
    }

    fn txn(&self, p: Probe) -> Option<&Txn> {
        self.txns[p.index()].as_ref()
    }

    fn outcome(&self, p: Probe) -> Option<&Outcome> {
        self.txn(p).and_then(|t| t.outcome.as_ref())
    }

    fn started(&self, p: Probe) -> bool {
        self.txn(p).is_some()
    }

    /// Started and finished (answered, failed, timed out or cancelled).
    fn decided(&self, p: Probe) -> bool {
        self.outcome(p).is_some()
    }

    fn answer(&self, p: Probe) -> Option<&Answer> {
        self.txn(p).and_then(Txn::answer)
    }

    fn begin(&mut self, probe: Probe, dest: SocketAddr) {
        let now = self.now;
        let mut tid: [u8; 12] = self.rng.gen();
        while self.tids.contains(&tid) {
            tid = self.rng.gen();
        }
        self.tids.insert(tid);
        let timeout = match probe {
            Probe::Binding => self.config.binding_timeout,
            Probe::FilterIpPort | Probe::FilterPort => self.config.filter_timeout,
            Probe::MapAltIp | Probe::MapAltBoth => self.config.mapping_timeout,
        };
        let mut deadline = after(now, timeout);
        if matches!(probe, Probe::MapAltIp | Probe::MapAltBoth) {
            // Nothing else is left to wait for: use the rest of the overall budget.
            let limit = self
                .deadline()
                .checked_sub(self.reply_wait())
                .unwrap_or(now);
            deadline = deadline.max(limit);
        }
        self.txns[probe.index()] = Some(Txn {
            tid,
            dest,
            first_sent: now,
            last_sent: now,
            sends: 0,
            rto: self.config.initial_rto.max(Duration::from_millis(1)),
            next_send: Some(now),
            deadline,
            outcome: None,
        });
        let what = match probe {
            Probe::FilterIpPort | Probe::FilterPort => format!("{}: via {dest}", probe.label()),
            _ => format!("{}: {dest}", probe.label()),
        };
        self.progress(what);
        self.send(probe);
    }

    fn send(&mut self, probe: Probe) {
        let now = self.now;
        let max_rto = match probe {
            Probe::FilterIpPort | Probe::FilterPort => self.config.filter_max_rto,
            _ => self.config.max_rto,
        };
        let Some(t) = self.txns[probe.index()].as_mut() else {
            return;
        };
        t.sends += 1;
        t.last_sent = now;
        let next = after(now, t.rto);
        t.rto = t.rto.saturating_mul(2).min(max_rto.max(t.rto));
        t.next_send = (next < t.deadline).then_some(next);
        let payload = rfc5780::binding_request(t.tid, probe.change());
        let destination = t.dest;
        self.out.push_back(Transmit {
            source: None,
            destination,
            payload,
        });
    }

    /// Sends what is due, times out what is over, and moves the sequence on; finishes when all is known.
    fn advance(&mut self, now: Instant) {
        if self.report.is_some() {
            return;
        }
        let wait = self.reply_wait();
        for p in PROBES {
            let Some(t) = self.txns[p.index()].as_mut() else {
                continue;
            };
            if t.outcome.is_some() {
                continue;
            }
            if t.next_send.is_some_and(|s| s <= now) {
                self.send(p);
            }
            let Some(t) = self.txns[p.index()].as_mut() else {
                continue;
            };
            if now >= decide_at(t, wait) {
                t.outcome = Some(Outcome::TimedOut);
                t.next_send = None;
                let s = match p {
                    Probe::FilterIpPort | Probe::FilterPort => {
                        format!("{}: no answer: filtered", p.label())
                    }
                    _ => format!("{}: no answer", p.label()),
                };
                self.progress(s);
            }
        }
        // Each step may start a test or finish; a few rounds settle everything that follows from `now`.
        for _ in 0..PROBES.len() + 1 {
            if self.report.is_some() || !self.step() {
                break;
            }
        }
        if self.report.is_none() && now >= self.deadline() {
            let secs = self.deadline().saturating_duration_since(self.start);
            self.note(format!(
                "detection stopped at its {:.1} s limit; undecided tests count as unknown",
                secs.as_secs_f64()
            ));
            self.finish(Finish::Deadline);
        }
    }

    /// The server's usable alternate address (OTHER-ADDRESS, or CHANGED-ADDRESS from old servers).
    fn other_address(&self) -> Option<SocketAddr> {
        let server = self.config.server;
        PROBES
            .iter()
            .filter_map(|p| self.answer(*p))
            .find_map(|a| a.other)
            .filter(|o| o.ip() != server.ip() && o.port() != server.port())
    }

    /// The mapping the server's primary socket saw (all three first tests go there).
    fn primary_mapped(&self) -> Option<SocketAddr> {
        [Probe::Binding, Probe::FilterIpPort, Probe::FilterPort]
            .iter()
            .filter_map(|p| self.answer(*p))
            .find_map(|a| a.mapped)
    }

    /// One step of the sequence; true if something changed (a test started, the detection finished).
    fn step(&mut self) -> bool {
        let server = self.config.server;
        let any_response = PROBES.iter().any(|p| {
            matches!(
                self.outcome(*p),
                Some(Outcome::Answered(_) | Outcome::Error(..))
            )
        });
        // Nothing ever came back: UDP to the server is blocked (or the server is down).
        if self.decided(Probe::Binding) && !any_response {
            let all_over = PROBES
                .iter()
                .filter(|p| self.started(**p))
                .all(|p| self.decided(*p));
            if all_over || matches!(self.outcome(Probe::Binding), Some(Outcome::TimedOut)) {
                self.note(format!(
                    "no answer from {server}: UDP to the server is blocked or the server is down"
                ));
                self.finish(Finish::Blocked);
                return true;
            }
        }
        let other = self.other_address();
        if other.is_none() {
            let raw_other = PROBES
                .iter()
                .filter_map(|p| self.answer(*p))
                .find_map(|a| a.other);
            let binding_over = self.decided(Probe::Binding);
            let filters_over = self.decided(Probe::FilterIpPort) && self.decided(Probe::FilterPort);
            if self.answer(Probe::Binding).is_some() || (binding_over && filters_over) {
                match raw_other {
                    Some(o) => self.note(format!(
                        "the server's OTHER-ADDRESS {o} shares its IP or port with {server}: it cannot run \
                         behaviour tests"
                    )),
                    None => self.note(format!(
                        "server {server} has no alternate address (no OTHER-ADDRESS): it cannot run behaviour \
                         tests; start it with --alt-ip"
                    )),
                }
                self.finish(Finish::NoBehaviourTests);
                return true;
            }
            return false;
        }
        let other = other.expect("checked");
        // EIF decided: the change-port test no longer matters.
        if self.filter_ip_port_passed()
            && !self.decided(Probe::FilterPort)
            && self.started(Probe::FilterPort)
        {
            if let Some(t) = self.txns[Probe::FilterPort.index()].as_mut() {
                t.outcome = Some(Outcome::Cancelled);
                t.next_send = None;
            }
        }
        let Some(m1) = self.primary_mapped() else {
            // Only error answers so far; wait for the rest (or the deadline).
            return false;
        };
        if !self.started(Probe::MapAltIp) && self.decided(Probe::FilterIpPort) {
            self.begin(Probe::MapAltIp, SocketAddr::new(other.ip(), server.port()));
            return true;
        }
        if !self.started(Probe::MapAltBoth) {
            if let Some(m2) = self.answer(Probe::MapAltIp).and_then(|a| a.mapped) {
                if m2 != m1 {
                    self.begin(Probe::MapAltBoth, other);
                    return true;
                }
            }
        }
        // Over when test 2 is decided and either needs no test 3 (same mapping, or no mapping to compare) or
        // test 3 is decided too.
        let m2 = self.answer(Probe::MapAltIp).and_then(|a| a.mapped);
        let mapping_over = self.decided(Probe::MapAltIp)
            && (m2.is_none_or(|m2| m2 == m1) || self.decided(Probe::MapAltBoth));
        let filtering_over = self.decided(Probe::FilterIpPort)
            && (self.filter_ip_port_passed() || self.decided(Probe::FilterPort));
        if mapping_over && filtering_over {
            self.finish(Finish::Complete);
            return true;
        }
        false
    }

    /// The change-IP-and-port answer arrived, from a socket that differs from P in IP and port.
    fn filter_ip_port_passed(&self) -> bool {
        let server = self.config.server;
        self.answer(Probe::FilterIpPort)
            .is_some_and(|a| a.from.ip() != server.ip() && a.from.port() != server.port())
    }

    fn finish(&mut self, how: Finish) {
        for t in self.txns.iter_mut().flatten() {
            t.next_send = None;
            if t.outcome.is_none() {
                t.outcome = Some(Outcome::Cancelled);
            }
        }
        let report = self.build_report(how);
        let summary = match report.kind {
            NatKind::Blocked => "Blocked".to_owned(),
            _ => report.behaviour.to_string(),
        };
        self.progress(format!("done: {summary}"));
        self.events.push_back(DetectEvent::Done(report.clone()));
        self.report = Some(report);
    }

    fn build_report(&mut self, how: Finish) -> NatReport {
        let public = self.primary_mapped();
        let other = self.other_address();
        let mapped_addrs: Vec<(SocketAddr, SocketAddr)> =
            [Probe::Binding, Probe::MapAltIp, Probe::MapAltBoth]
                .iter()
                .filter_map(|p| {
                    let t = self.txn(*p)?;
                    Some((t.dest, t.answer()?.mapped?))
                })
                .collect();
        let behind_nat = public.and_then(|p| self.behind_nat(p));
        if behind_nat == Some(false) {
            self.note("no NAT: the public address is a local address".into());
        }
        let (mapping, filtering) = if other.is_some() && public.is_some() {
            (self.mapping_result(), self.filtering_result())
        } else {
            (None, None)
        };
        let allocation = if how == Finish::Blocked {
            None
        } else {
            self.allocation_result(&mapped_addrs)
        };
        let behaviour = NatBehaviour {
            behind_nat,
            mapping,
            filtering,
            allocation,
        };
        let kind = match how {
            Finish::Blocked => NatKind::Blocked,
            _ => behaviour.kind(),
        };
        let rtt_answer = self
            .answer(Probe::Binding)
            .or_else(|| self.answer(Probe::MapAltIp))
            .map(|a| (a.rtt, a.exact_rtt));
        if let Some((_, false)) = rtt_answer {
            self.note("the server RTT is measured from a retransmission: a lower bound".into());
        }
        NatReport {
            public_addr: public,
            behaviour,
            kind,
            server_rtt: rtt_answer.map(|(r, _)| r),
            behaviour_tests: other.is_some(),
            server_unreachable: how == Finish::Blocked,
            mapped_addrs,
            notes: self.notes.clone(),
        }
    }

    /// Whether `public` is none of the local addresses; `None` if the local addresses are unknown.
    fn behind_nat(&self, public: SocketAddr) -> Option<bool> {
        let mut known: Vec<SocketAddr> = self
            .config
            .local_addrs
            .iter()
            .copied()
            .filter(|a| !a.ip().is_unspecified())
            .collect();
        if let Some(l) = self.local.filter(|l| !l.ip().is_unspecified()) {
            known.push(l);
        }
        if known.is_empty() {
            return None;
        }
        let local = known
            .iter()
            .any(|l| l.ip() == public.ip() && (l.port() == public.port() || l.port() == 0));
        Some(!local)
    }

    fn mapping_result(&mut self) -> Option<Mapping> {
        let m1 = self.primary_mapped()?;
        let m2 = self.answer(Probe::MapAltIp).and_then(|a| a.mapped);
        let m3 = self.answer(Probe::MapAltBoth).and_then(|a| a.mapped);
        match (m2, m3) {
            (Some(m2), _) if m2 == m1 => Some(Mapping::EndpointIndependent),
            (Some(m2), Some(m3)) if m3 == m2 => Some(Mapping::AddressDependent),
            (Some(_), Some(_)) => Some(Mapping::AddressAndPortDependent),
            (Some(_), None) => {
                self.note(
                    "mapping test 3/3 got no answer: the mapping is endpoint-dependent, but whether by address \
                     only or by address and port is unknown; assuming address-and-port-dependent"
                        .into(),
                );
                Some(Mapping::AddressAndPortDependent)
            }
            (None, _) => {
                self.note(
                    "mapping test 2/3 (the server's alternate IP) got no answer: mapping unknown"
                        .into(),
                );
                None
            }
        }
    }

    fn filtering_result(&mut self) -> Option<Filtering> {
        let server = self.config.server;
        let both = self.outcome(Probe::FilterIpPort).cloned();
        let port = self.outcome(Probe::FilterPort).cloned();
        match both {
            Some(Outcome::Answered(a)) => {
                if a.from.ip() != server.ip() && a.from.port() != server.port() {
                    Some(Filtering::EndpointIndependent)
                } else {
                    self.note(format!(
                        "the server answered the change-IP-and-port request from {} instead of its alternate \
                         address: filtering unknown",
                        a.from
                    ));
                    None
                }
            }
            Some(Outcome::Error(code, reason)) => {
                self.note(format!(
                    "the server refused CHANGE-REQUEST ({code} {reason}): it cannot run filtering tests"
                ));
                None
            }
            Some(Outcome::TimedOut) => match port {
                Some(Outcome::Answered(a)) => {
                    if a.from.ip() == server.ip() && a.from.port() != server.port() {
                        Some(Filtering::AddressDependent)
                    } else {
                        self.note(format!(
                            "the server answered the change-port request from {} instead of {}:<alternate \
                             port>: filtering unknown",
                            a.from,
                            server.ip()
                        ));
                        None
                    }
                }
                Some(Outcome::TimedOut) => Some(Filtering::AddressAndPortDependent),
                Some(Outcome::Error(code, reason)) => {
                    self.note(format!(
                        "the server refused CHANGE-REQUEST ({code} {reason}): it cannot run filtering tests"
                    ));
                    None
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn allocation_result(&mut self, mapped: &[(SocketAddr, SocketAddr)]) -> Option<PortAllocation> {
        let mut ports: Vec<u16> = Vec::new();
        for (_, m) in mapped {
            if !ports.contains(&m.port()) {
                ports.push(m.port());
            }
        }
        let local_port = self
            .config
            .local_addrs
            .iter()
            .map(|a| a.port())
            .find(|p| *p != 0)
            .or(self.local.map(|l| l.port()).filter(|p| *p != 0));
        let (allocation, note) = port_allocation(local_port, &ports);
        if let Some(n) = note {
            self.note(n);
        }
        allocation
    }
}

/// When a test with no answer counts as failed: its deadline, but never before one reply wait after its last
/// send.
fn decide_at(t: &Txn, wait: Duration) -> Instant {
    t.deadline.max(after(t.last_sent, wait))
}

/// Largest step between consecutive mapped ports that still counts as sequential allocation.
const MAX_SEQUENTIAL_STEP: i32 = 32;

/// Port allocation from the distinct mapped ports, in the order the mappings were made.
///
/// * the first equals the local port: preserved (unless the later ones form a sequence);
/// * two or more (after a preserved first one) with steps of one sign and at most [`MAX_SEQUENTIAL_STEP`]:
///   sequential, the step being the common one (or the smallest, with a note, when they differ);
/// * two or more otherwise: random;
/// * a single non-preserved mapping (endpoint-independent mapping): not observable on one socket.
pub fn port_allocation(
    local_port: Option<u16>,
    ports: &[u16],
) -> (Option<PortAllocation>, Option<String>) {
    let Some(&first) = ports.first() else {
        return (None, None);
    };
    let preserved = local_port == Some(first);
    let rest = if preserved { &ports[1..] } else { ports };
    if rest.len() >= 2 {
        let steps: Vec<i32> = rest.windows(2).map(|w| w[1] as i32 - w[0] as i32).collect();
        let same_sign = steps.iter().all(|s| *s > 0) || steps.iter().all(|s| *s < 0);
        if same_sign && steps.iter().all(|s| s.abs() <= MAX_SEQUENTIAL_STEP) {
            let step = *steps.iter().min_by_key(|s| s.abs()).expect("non-empty");
            let note = (!steps.iter().all(|s| *s == step)).then(|| {
                format!("mapped ports step unevenly ({steps:?}): other traffic through the NAT?")
            });
            return (Some(PortAllocation::Sequential { step }), note);
        }
        if !preserved {
            return (Some(PortAllocation::Random), None);
        }
    }
    if preserved {
        return (Some(PortAllocation::Preserved), None);
    }
    let note = match local_port {
        Some(l) => format!(
            "one mapping only (public port {first}, local port {l}): port allocation is not observable"
        ),
        None => format!("one mapping only (public port {first}): port allocation is not observable"),
    };
    (None, Some(note))
}

/// The [`crate::Machine`] verbs. `impl_machine!` cannot be used as is: the inherent `handle_input` returns
/// whether the datagram was the detector's, which the trait's unit-returning verb ignores.
impl crate::Machine for NatDetector {
    type Event = DetectEvent;
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let _ = NatDetector::handle_input(self, now, local, remote, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        NatDetector::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        NatDetector::poll_transmit(self)
    }
    fn poll_deadline(&self) -> Option<crate::Deadline> {
        NatDetector::poll_deadline(self)
    }
    fn poll_event(&mut self) -> Option<DetectEvent> {
        NatDetector::poll_event(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allocation_rules() {
        use PortAllocation::*;
        assert_eq!(port_allocation(Some(5000), &[5000]).0, Some(Preserved));
        assert_eq!(port_allocation(Some(5000), &[40000]).0, None);
        assert!(port_allocation(Some(5000), &[40000]).1.is_some());
        assert_eq!(
            port_allocation(Some(5000), &[40000, 40001, 40002]).0,
            Some(Sequential { step: 1 })
        );
        assert_eq!(
            port_allocation(Some(5000), &[40000, 39998, 39996]).0,
            Some(Sequential { step: -2 })
        );
        assert_eq!(
            port_allocation(Some(5000), &[40000, 40001]).0,
            Some(Sequential { step: 1 })
        );
        assert_eq!(
            port_allocation(Some(5000), &[5000, 40001, 40002]).0,
            Some(Sequential { step: 1 })
        );
        assert_eq!(
            port_allocation(Some(5000), &[5000, 31234, 1777]).0,
            Some(Preserved)
        );
        assert_eq!(
            port_allocation(Some(5000), &[5000, 31234]).0,
            Some(Preserved)
        );
        assert_eq!(port_allocation(None, &[31234, 1777, 60000]).0, Some(Random));
        assert_eq!(port_allocation(Some(1), &[31234, 1777]).0, Some(Random));
        let (alloc, note) = port_allocation(Some(1), &[100, 101, 104]);
        assert_eq!(alloc, Some(Sequential { step: 1 }));
        assert!(note.is_some());
        assert_eq!(port_allocation(Some(1), &[]), (None, None));
    }

    #[test]
    fn foreign_datagrams_are_not_taken() {
        let t0 = crate::test_epoch();
        let server = a("192.0.2.1:3478");
        let mut d = NatDetector::new(DetectorConfig::new(server), t0);
        let mut sent = Vec::new();
        while let Some(t) = d.poll_transmit() {
            assert_eq!(t.source, None);
            assert_eq!(t.destination, server);
            sent.push(t.payload);
        }
        assert_eq!(sent.len(), 3);
        let local = a("10.0.0.2:5000");
        // Another transaction id, garbage, punch data, a classic STUN message.
        let other = rfc5780::binding_request([0xEE; 12], ChangeRequest::default());
        let mut resp = other.clone();
        resp[0] = 0x01; // success response
        assert!(!d.handle_input(t0, local, server, &resp));
        assert!(!d.handle_input(t0, local, server, b"hello"));
        assert!(!d.handle_input(t0, local, server, &[0xD0; 30]));
        assert!(!d.handle_input(t0, local, server, &[0; 20]));
        // Its own request echoed back (a request, not a response) is not an answer.
        assert!(!d.handle_input(t0, local, server, &sent[0]));
        // A malformed response with its own transaction id is its own (and ignored).
        let mut bad = sent[0].clone();
        bad[0] = 0x01;
        bad.extend_from_slice(&[0, 0x20, 0, 1]);
        bad[3] = 4;
        assert!(d.handle_input(t0, local, server, &bad));
        assert!(!d.is_done());
    }

    #[test]
    fn unreachable_server_is_blocked_in_bounded_time() {
        let t0 = crate::test_epoch();
        let server = a("192.0.2.1:3478");
        let mut d = NatDetector::new(DetectorConfig::new(server), t0);
        let mut now = t0;
        let mut sends = 0;
        let mut last = t0;
        while !d.is_done() {
            while d.poll_transmit().is_some() {
                sends += 1;
            }
            let next = d.poll_timeout().expect("a deadline while running");
            assert!(next > last || now == t0, "deadline must move on");
            last = next;
            now = next;
            d.handle_timeout(now);
        }
        let r = d.report().unwrap();
        assert_eq!(r.kind, NatKind::Blocked);
        assert!(r.server_unreachable);
        assert!(now.duration_since(t0) <= Duration::from_secs(3));
        assert!(sends <= 15, "{sends} sends");
        assert!(matches!(d.poll_event(), Some(DetectEvent::Progress(_))));
        assert!(d.poll_timeout().is_none());
    }

    #[test]
    fn garbage_never_panics() {
        use rand::{Rng, SeedableRng};
        let t0 = crate::test_epoch();
        let server = a("192.0.2.1:3478");
        let mut rng = SmallRng::seed_from_u64(99);
        let mut d = NatDetector::new(DetectorConfig::new(server), t0);
        let mut reqs = Vec::new();
        while let Some(t) = d.poll_transmit() {
            reqs.push(t.payload);
        }
        for i in 0..20_000u32 {
            let mut b: Vec<u8> = if i % 2 == 0 {
                let mut r = reqs[i as usize % reqs.len()].clone();
                r[0] = 0x01;
                r
            } else {
                (0..rng.gen_range(0..60)).map(|_| rng.gen()).collect()
            };
            if !b.is_empty() {
                for _ in 0..rng.gen_range(0..3) {
                    let j = rng.gen_range(0..b.len());
                    b[j] = rng.gen();
                }
            }
            let now = t0 + Duration::from_micros(i as u64 * 50);
            let _ = d.handle_input(now, a("10.0.0.2:5000"), server, &b);
            d.handle_timeout(now);
            while d.poll_transmit().is_some() {}
        }
    }
}
