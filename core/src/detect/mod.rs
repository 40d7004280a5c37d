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
//!
//! ## Driving it
//!
//! The detector speaks the five verbs of [`crate::Machine`]. On a shared socket the caller asks
//! [`NatDetector::owns`] first and hands over only the datagrams it owns (answers to its transaction ids, also
//! late ones); everything else belongs to the caller. Every probe is repeated by a
//! [`Retransmit`], and every deadline from [`NatDetector::poll_deadline`](crate::Machine::poll_deadline) names its
//! probe and whether it is a retransmission or the decision that the probe went unanswered.
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use stun_codec::rfc5389::attributes::{ErrorCode, MappedAddress, XorMappedAddress};
use stun_codec::rfc5780::attributes::{OtherAddress, ResponseOrigin};
use stun_codec::MessageClass;

use crate::backoff::{Backoff, Retransmit};
use crate::nat::{NatBehaviour, NatKind};
use crate::rfc5780::{self, BindingMessage, ChangedAddress, SourceAddress};
use crate::timer::after;
use crate::wire::methods;
use crate::{Deadline, Transmit};

mod classify;
mod probe;
#[cfg(test)]
mod tests;

pub use classify::port_allocation;
use probe::{Answer, Outcome, Probe, Txn, PROBES};

/// Detector settings; [`DetectorConfig::new`] gives the documented defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// The defaults for a detection against the server's primary socket `server`, with no local addresses
    /// and seed 0.
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(into = "crate::shapes::ReportShape"))]
pub struct NatReport {
    /// The public (server-reflexive) address of the socket.
    pub public_addr: Option<SocketAddr>,
    /// Mapping, filtering, port allocation and whether there is a NAT at all.
    pub behaviour: NatBehaviour,
    /// The classic name: `behaviour.kind()`, or `Blocked` when the server never answered.
    pub kind: NatKind,
    /// Round trip to the server: mapping test 1/3 (to P), else 2/3 (to AP). A lower bound when the test was
    /// retransmitted (Karn: measured from the last send).
    pub server_rtt: Option<Duration>,
    /// The server announced an alternate address (OTHER-ADDRESS), so behaviour tests could run.
    pub behaviour_tests: bool,
    /// No answer at all from the server.
    pub server_unreachable: bool,
    /// (server socket, mapped address) for each plain Binding answered.
    pub mapped_addrs: Vec<(SocketAddr, SocketAddr)>,
    /// Human-readable remarks (why something is unknown, surprises).
    pub notes: Vec<String>,
    /// The server's COOKIE from an answer to a test sent to its primary address (punch servers only): the
    /// peer echoes it in its first Register.
    pub cookie: Option<Vec<u8>>,
    /// Hairpinning (RFC 5780 section 4.5): a Binding request sent to our own public address came back to us
    /// through the NAT (`Some(true)`), or did not within the reply window (`Some(false)`); `None` when not
    /// tested (no NAT, no public address, or the detection ended first).
    pub hairpin: Option<bool>,
}

/// The hairpin test's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hairpin {
    /// Not started (no public address yet, or none to test).
    Idle,
    /// A Binding request with this transaction id went to our public address at this instant.
    Sent([u8; 12], Instant),
    /// Decided: it came back (true) or not (false).
    Decided(bool),
}

/// What the detector reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DetectEvent {
    /// A step, for people ("mapping test 2/3: 203.0.113.2:3478").
    Progress(String),
    /// Finished; the same report as [`NatDetector::report`].
    Done(NatReport),
}

/// How the detection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    Complete,
    Blocked,
    NoBehaviourTests,
    Deadline,
}

/// Why the overall limit is the next deadline.
const OVERALL_REASON: &str = "detector: overall deadline";

/// The NAT detector. See the module docs for the tests and the crate docs for the call order.
///
/// With no answer at all (every request lost), in virtual time, it gives up and says so:
///
/// ```
/// use std::time::Instant;
/// use punch_core::{DetectorConfig, Machine, NatDetector, NatKind};
///
/// let mut now = Instant::now();
/// let mut detector = NatDetector::new(DetectorConfig::new("192.0.2.1:3478".parse().unwrap()), now);
/// while !detector.is_done() {
///     while let Some(request) = detector.poll_transmit() {
///         assert_eq!(request.destination.port(), 3478); // lost on the way
///     }
///     now = detector.poll_timeout().expect("a deadline while it runs");
///     detector.handle_timeout(now);
/// }
/// let report = detector.report().unwrap();
/// assert!(report.server_unreachable);
/// assert_eq!(report.kind, NatKind::Blocked);
/// ```
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
    /// The latest COOKIE the server's primary address sent.
    cookie: Option<Vec<u8>>,
    hairpin: Hairpin,
}

impl crate::Machine for NatDetector {
    type Event = DetectEvent;

    /// A datagram arrived on local socket `local` from `remote`. Anything the detector does not
    /// [own](NatDetector::owns) is ignored.
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        if self.is_hairpin(data) {
            self.clamp(now);
            self.hairpin = Hairpin::Decided(true);
            self.progress("hairpin test: our request came back through the NAT".into());
            let now = self.now;
            self.advance(now);
            return;
        }
        let Some(tid) = self.own_tid(data) else {
            return;
        };
        self.clamp(now);
        if local.port() != 0 {
            self.local = Some(local);
        }
        if self.report.is_some() {
            return;
        }
        let Some(msg) = rfc5780::decode(data).filter(|m| m.method() == methods::binding()) else {
            return;
        };
        let now = self.now;
        let Some(probe) = PROBES
            .into_iter()
            .find(|p| self.txn(*p).is_some_and(|t| t.tid == tid))
        else {
            return;
        };
        let Some(txn) = self.txn(probe).filter(|t| t.outcome.is_none()) else {
            return;
        };
        let (rtt, exact_rtt) = txn.retx.rtt_sample(now).unwrap_or_default();
        let Some(outcome) = self.outcome_of(probe, &msg, remote, rtt, exact_rtt) else {
            return;
        };
        if let Some(t) = self.txns[probe.index()].as_mut() {
            t.outcome = Some(outcome);
        }
        self.advance(now);
    }

    /// Retransmits, decides timed-out tests, starts the next ones.
    fn handle_timeout(&mut self, now: Instant) {
        self.clamp(now);
        let now = self.now;
        self.advance(now);
    }

    /// Next datagram to send (all go out of the one socket: `source` is `None`).
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// When to call [`NatDetector::handle_timeout`](crate::Machine::handle_timeout) next, and why: the earliest retransmission, decision of an
    /// unanswered test, or the overall limit; `None` once done.
    fn poll_deadline(&self) -> Option<Deadline> {
        if self.report.is_some() {
            return None;
        }
        let wait = self.reply_wait();
        let mut next = None;
        for p in PROBES {
            let Some(t) = self.txn(p).filter(|t| t.outcome.is_none()) else {
                continue;
            };
            let retransmit = t.next_send().map(|at| Deadline {
                at,
                reason: p.retransmit_reason(),
            });
            let decide = t.decide_at(wait).map(|at| Deadline {
                at,
                reason: p.decide_reason(),
            });
            next = Deadline::earliest(Deadline::earliest(next, retransmit), decide);
        }
        if let Hairpin::Sent(_, at) = self.hairpin {
            let decide = Deadline {
                at: after(at, wait),
                reason: "detector: decide the hairpin test",
            };
            next = Deadline::earliest(next, Some(decide));
        }
        let overall = Deadline {
            at: self.deadline(),
            reason: OVERALL_REASON,
        };
        Deadline::earliest(next, Some(overall))
    }

    /// Next event: progress for people, then one [`DetectEvent::Done`].
    fn poll_event(&mut self) -> Option<DetectEvent> {
        self.events.pop_front()
    }
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
            cookie: None,
            hairpin: Hairpin::Idle,
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

    /// Whether `data` is the detector's: a STUN response to one of its transaction ids (also a late one, after
    /// the detection finished). A caller sharing the socket hands only these to [`NatDetector::handle_input`](crate::Machine::handle_input);
    /// the detector ignores anything else.
    pub fn owns(&self, data: &[u8]) -> bool {
        self.own_tid(data).is_some() || self.is_hairpin(data)
    }

    /// Whether `data` is our own hairpin test request, come back through the NAT.
    fn is_hairpin(&self, data: &[u8]) -> bool {
        let Hairpin::Sent(tid, _) = self.hairpin else {
            return false;
        };
        // A request (class bits clear in the first byte) with the hairpin test's transaction id.
        rfc5780::transaction_id(data) == Some(tid) && data.first().is_some_and(|b| b & 0x01 == 0)
    }

    /// Starts the hairpin test once our public address is known and differs from the local one (behind a
    /// NAT); decides it when its reply window is over. True once it is decided (or not to be run).
    fn hairpin_over(&mut self, now: Instant) -> bool {
        match self.hairpin {
            Hairpin::Decided(_) => true,
            Hairpin::Sent(_, at) => {
                if now >= after(at, self.reply_wait()) {
                    self.hairpin = Hairpin::Decided(false);
                    self.progress("hairpin test: no answer: the NAT does not hairpin".into());
                    return true;
                }
                false
            }
            Hairpin::Idle => {
                let Some(public) = self.primary_mapped() else {
                    return true; // nothing to test
                };
                if classify::behind_nat(&self.config.local_addrs, self.local, public) == Some(false)
                {
                    return true; // no NAT: nothing to hairpin
                }
                let mut tid: [u8; 12] = self.rng.gen();
                while self.tids.contains(&tid) {
                    tid = self.rng.gen();
                }
                self.hairpin = Hairpin::Sent(tid, now);
                self.progress(format!("hairpin test: to our public address {public}"));
                self.out.push_back(Transmit {
                    ttl: None,
                    source: None,
                    destination: public,
                    payload: rfc5780::binding_request(
                        tid,
                        crate::rfc5780::ChangeRequest::default(),
                    ),
                });
                false
            }
        }
    }

    // ---- internals ----

    /// The transaction id of `data` if it is a response to one of the detector's requests.
    fn own_tid(&self, data: &[u8]) -> Option<[u8; 12]> {
        let tid = rfc5780::transaction_id(data).filter(|t| self.tids.contains(t))?;
        // Only responses are answers (class bit C1, 0x0100 of the message type, is set for both kinds).
        data.first().is_some_and(|b| b & 0x01 != 0).then_some(tid)
    }

    /// What an answer to `probe` from `remote` means; `None` for a message that is neither a success nor an
    /// error response.
    fn outcome_of(
        &mut self,
        probe: Probe,
        msg: &BindingMessage,
        remote: SocketAddr,
        rtt: Duration,
        exact_rtt: bool,
    ) -> Option<Outcome> {
        match msg.class() {
            MessageClass::SuccessResponse => {}
            MessageClass::ErrorResponse => {
                let (code, reason) = rfc5780::get::<ErrorCode>(msg)
                    .map(|e| (e.code(), e.reason_phrase().to_owned()))
                    .unwrap_or((0, String::new()));
                self.progress(format!("{}: error {code} {reason}", probe.label()));
                return Some(Outcome::Error(code, reason));
            }
            _ => return None,
        }
        let mapped = rfc5780::get::<XorMappedAddress>(msg)
            .map(|a| a.address())
            .or_else(|| rfc5780::get::<MappedAddress>(msg).map(|a| a.address()));
        let other = rfc5780::get::<OtherAddress>(msg)
            .map(|a| a.address())
            .or_else(|| rfc5780::get::<ChangedAddress>(msg).map(|a| a.0));
        let origin = rfc5780::get::<ResponseOrigin>(msg)
            .map(|a| a.address())
            .or_else(|| rfc5780::get::<SourceAddress>(msg).map(|a| a.0));
        if let Some(origin) = origin.filter(|o| *o != remote) {
            self.note(format!(
                "{}: answer claims to come from {origin} but came from {remote} (a NAT in front of the \
                 server?); the datagram's source counts",
                probe.label(),
            ));
        }
        let mut text = match mapped {
            Some(m) => format!("{}: mapped to {m} (answer from {remote}", probe.label()),
            None => format!(
                "{}: answer from {remote} without a mapped address (",
                probe.label()
            ),
        };
        text.push_str(&format!(", rtt {:.1} ms)", rtt.as_secs_f64() * 1000.0));
        self.progress(text);
        if !probe.is_filter() {
            self.rtt = Some(rtt);
        }
        if remote == self.config.server {
            if let Some(c) = rfc5780::get::<crate::wire::Cookie>(msg) {
                self.cookie = Some(c.0.clone());
            }
        }
        Some(Outcome::Answered(Answer {
            from: remote,
            mapped,
            other,
            rtt,
            exact_rtt,
        }))
    }

    fn clamp(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn progress(&mut self, s: String) {
        tracing::debug!("{s}");
        self.events.push_back(DetectEvent::Progress(s));
    }

    fn note(&mut self, s: String) {
        classify::note(&mut self.notes, s);
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

    /// Starts `probe` towards `dest`: a fresh transaction id, the probe's retransmission policy and deadline,
    /// and the first send.
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
        let max_rto = if probe.is_filter() {
            self.config.filter_max_rto
        } else {
            self.config.max_rto
        };
        let policy = Backoff::new(
            self.config.initial_rto.max(Duration::from_millis(1)),
            max_rto,
        );
        self.txns[probe.index()] = Some(Txn {
            tid,
            dest,
            retx: Retransmit::new(policy, now).with_deadline(deadline),
            outcome: None,
        });
        let what = if probe.is_filter() {
            format!("{}: via {dest}", probe.label())
        } else {
            format!("{}: {dest}", probe.label())
        };
        self.progress(what);
        self.send(probe);
    }

    /// Sends `probe`'s request (again) and schedules its next retransmission.
    fn send(&mut self, probe: Probe) {
        let now = self.now;
        let Some(t) = self.txns[probe.index()].as_mut() else {
            return;
        };
        t.retx.on_send(now);
        self.out.push_back(Transmit {
            ttl: None,
            source: None,
            destination: t.dest,
            payload: rfc5780::binding_request(t.tid, probe.change()),
        });
    }

    /// Sends what is due, times out what is over, and moves the sequence on; finishes when all is known.
    fn advance(&mut self, now: Instant) {
        if self.report.is_some() {
            return;
        }
        let wait = self.reply_wait();
        for p in PROBES {
            let Some(t) = self.txn(p).filter(|t| t.outcome.is_none()) else {
                continue;
            };
            if t.retx.is_due(now) {
                self.send(p);
            }
            let Some(t) = self.txns[p.index()].as_mut() else {
                continue;
            };
            if t.decide_at(wait).is_some_and(|at| now >= at) {
                t.outcome = Some(Outcome::TimedOut);
                let s = if p.is_filter() {
                    format!("{}: no answer: filtered", p.label())
                } else {
                    format!("{}: no answer", p.label())
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

    /// The server's usable alternate address (OTHER-ADDRESS, or CHANGED-ADDRESS from old servers): another
    /// IP and port of the server's own address family (tests across families would compare an IPv4 mapping
    /// with an IPv6 one).
    fn other_address(&self) -> Option<SocketAddr> {
        let server = self.config.server;
        self.raw_other_address().filter(|o| {
            o.ip() != server.ip() && o.port() != server.port() && o.is_ipv4() == server.is_ipv4()
        })
    }

    /// The first alternate address any answer announced, usable or not.
    fn raw_other_address(&self) -> Option<SocketAddr> {
        PROBES
            .iter()
            .filter_map(|p| self.answer(*p))
            .find_map(|a| a.other)
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
        if self.blocked() {
            let server = self.config.server;
            self.note(format!(
                "no answer from {server}: UDP to the server is blocked or the server is down"
            ));
            self.finish(Finish::Blocked);
            return true;
        }
        let Some(other) = self.other_address() else {
            return self.hairpin_over(self.now) && self.check_no_behaviour_tests();
        };
        // EIF decided: the change-port test no longer matters.
        if self.filter_ip_port_passed() && self.started(Probe::FilterPort) {
            if let Some(t) = self.txns[Probe::FilterPort.index()].as_mut() {
                t.outcome.get_or_insert(Outcome::Cancelled);
            }
        }
        let Some(m1) = self.primary_mapped() else {
            // Only error answers so far; wait for the rest (or the deadline).
            return false;
        };
        if !self.started(Probe::MapAltIp) && self.decided(Probe::FilterIpPort) {
            let ap = SocketAddr::new(other.ip(), self.config.server.port());
            self.begin(Probe::MapAltIp, ap);
            return true;
        }
        let m2 = self.answer(Probe::MapAltIp).and_then(|a| a.mapped);
        if !self.started(Probe::MapAltBoth) && m2.is_some_and(|m2| m2 != m1) {
            self.begin(Probe::MapAltBoth, other);
            return true;
        }
        // Over when test 2 is decided and either needs no test 3 (same mapping, or no mapping to compare) or
        // test 3 is decided too.
        let mapping_over = self.decided(Probe::MapAltIp)
            && (m2.is_none_or(|m2| m2 == m1) || self.decided(Probe::MapAltBoth));
        let filtering_over = self.decided(Probe::FilterIpPort)
            && (self.filter_ip_port_passed() || self.decided(Probe::FilterPort));
        // The hairpin test waits for the mapping tests (its request is one more destination: a symmetric NAT
        // would spend a port on it and spoil the allocation measurement), then runs beside the filtering ones.
        let hairpin_over = mapping_over && self.hairpin_over(self.now);
        if mapping_over && filtering_over && hairpin_over {
            self.finish(Finish::Complete);
            return true;
        }
        false
    }

    /// Nothing ever came back and the first Binding is decided: UDP to the server is blocked (or the server is
    /// down).
    fn blocked(&self) -> bool {
        let any_response = PROBES.iter().any(|p| {
            matches!(
                self.outcome(*p),
                Some(Outcome::Answered(_) | Outcome::Error(..))
            )
        });
        if !self.decided(Probe::Binding) || any_response {
            return false;
        }
        let all_over = PROBES
            .iter()
            .filter(|p| self.started(**p))
            .all(|p| self.decided(*p));
        all_over || matches!(self.outcome(Probe::Binding), Some(Outcome::TimedOut))
    }

    /// With no usable alternate address: finishes (true) once the first Binding is answered, or once it and
    /// the filtering tests are decided; the server cannot run behaviour tests.
    fn check_no_behaviour_tests(&mut self) -> bool {
        let binding_over = self.decided(Probe::Binding);
        let filters_over = self.decided(Probe::FilterIpPort) && self.decided(Probe::FilterPort);
        if self.answer(Probe::Binding).is_none() && !(binding_over && filters_over) {
            return false;
        }
        let server = self.config.server;
        match self.raw_other_address() {
            Some(o) => self.note(format!(
                "the server's OTHER-ADDRESS {o} shares its IP or port with {server}, or is of the other \
                 address family: it cannot run behaviour tests"
            )),
            None => self.note(format!(
                "server {server} has no alternate address (no OTHER-ADDRESS): it cannot run behaviour \
                 tests; start it with --alt-ip"
            )),
        }
        self.finish(Finish::NoBehaviourTests);
        true
    }

    /// The change-IP-and-port answer arrived, from a socket that differs from P in IP and port.
    fn filter_ip_port_passed(&self) -> bool {
        let server = self.config.server;
        self.answer(Probe::FilterIpPort)
            .is_some_and(|a| a.from.ip() != server.ip() && a.from.port() != server.port())
    }

    /// Cancels the undecided tests, builds the report and queues the last events.
    fn finish(&mut self, how: Finish) {
        for t in self.txns.iter_mut().flatten() {
            t.outcome.get_or_insert(Outcome::Cancelled);
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
}
