//! The server link: everything the peer says to the rendezvous server, as one machine.
//!
//! States: `Detecting` (the [`NatDetector`] runs on the peer's socket) or `Probing` (one Binding measures the
//! round trip and the public address) → (`AwaitingOther`: with [`PeerConfig::server_other_family`], until the
//! Binding over the other IP family answered or gave up) → `Registering` → `Waiting` for a partner (the Register
//! is refreshed every [`PeerConfig::reregister_interval`]) → `Paired` → `Closed`, or `Failed` when the server
//! never answers or refuses. Probe and Register are retransmitted with the shared [`Retransmit`] (RTO 250 ms, or twice the
//! measured RTT within 50..=250 ms, doubling up to 2 s) until [`PeerConfig::server_timeout`].
//!
//! Every Register carries the server's COOKIE (return routability, docs/SECURITY.md): the first one from the
//! probe's Binding answer (or the detector's), later ones from the last Register success. A 401 answer brings
//! a fresh cookie (the old one expired, or the NAT gave us a new address): the Register goes out again at once.
//!
//! While registered, a Register refresh goes out every [`PeerConfig::server_keepalive`] as the keepalive (the
//! server does not count Bindings as a sign of life: anyone can send one from a spoofed address). When the NAT
//! mapping expired or changed, the refresh arrives from a new address: the server answers 401 with a cookie for
//! it, the peer registers again with its CLIENT-ID (now every [`PeerConfig::rebind_keepalive`], *rebinding*)
//! and the server moves the member; the Register success's XOR-MAPPED-ADDRESS shows the new public address.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::PeerRng;

use super::{PeerConfig, PeerError, FALLBACK_SERVER_RTT};
use crate::backoff::{Backoff, Retransmit};
use crate::detect::{DetectEvent, DetectorConfig, NatDetector, NatReport};
use crate::nat::NatBehaviour;
use crate::timer::{after, timers, Timers};
use crate::wire::{self, ClientIdBytes, LinkKeyBytes, Msg, PairIdBytes, PeerInfo, Register, Tid};
use crate::Machine;
use crate::{Deadline, Transmit};

/// Server requests wait this long before the first retransmission until the server's RTT is known.
const INITIAL_RTO: Duration = Duration::from_millis(250);
/// Retransmissions of server requests double up to this.
const MAX_RTO: Duration = Duration::from_secs(2);

timers! {
    enum LinkTimer {
        Txn => "server request retransmit",
        Keepalive => "server keepalive",
        Reregister => "refresh registration",
        Other => "binding over the other IP family",
    }
}

/// The Binding request to the server's address in the other IP family: sent this often, this many times,
/// before registering without its answer.
const OTHER_RTO: Duration = Duration::from_millis(200);
const OTHER_SENDS: u32 = 3;
/// Most addresses announced in a Register.
const MAX_ANNOUNCED: usize = 8;

/// The Binding request to [`PeerConfig::server_other_family`] while unanswered.
#[derive(Debug, Clone, Copy)]
struct OtherProbe {
    tid: Tid,
    to: SocketAddr,
    sends: u32,
}

/// What the link tells the peer.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    NatDetected(NatReport),
    Registered {
        public_addr: SocketAddr,
        server_rtt: Duration,
    },
    /// The server allocated our nameplate (we registered without a code).
    Allocated(String),
    /// A partner, for a new pair id.
    Paired(PeerInfo),
    /// A fresh PeerInfo for the current pair: a new punch round, perhaps with the partner's new address.
    NewRound {
        public: SocketAddr,
        hold: bool,
    },
    PeerLeft,
    /// A chat frame relayed by the server.
    Relay(Vec<u8>),
    Failed(PeerError),
}

/// A request to the server, retransmitted until answered or the deadline.
#[derive(Debug)]
struct Txn {
    tid: Tid,
    payload: Vec<u8>,
    retransmit: Retransmit,
}

#[derive(Debug)]
enum State {
    Detecting(Box<NatDetector>),
    Probing(Txn),
    /// The server answered; the Binding over the other family has not yet (registration waits for it, at
    /// most [`OTHER_RTO`] x [`OTHER_SENDS`]).
    AwaitingOther,
    Registering(Txn),
    Waiting,
    Paired(PairIdBytes),
    Failed,
    Closed,
}

/// The longest server keepalive interval however long our NAT keeps idle mappings: the server expires a
/// member after 60 s of silence (`ServerConfig::member_timeout`), and one lost keepalive must not cost the
/// registration.
pub const SERVER_KEEPALIVE_MAX: Duration = Duration::from_secs(25);

/// See the module docs.
#[derive(Debug)]
pub(crate) struct ServerLink {
    config: PeerConfig,
    state: State,
    rng: PeerRng,
    now: Instant,
    timers: Timers<LinkTimer>,
    nat: NatBehaviour,
    server_rtt: Option<Duration>,
    public_addr: Option<SocketAddr>,
    /// Names this peer instance to the server across address changes.
    client_id: ClientIdBytes,
    /// The public address changed and the server has not confirmed the new one yet.
    rebinding: bool,
    /// The transaction id of the last PeerInfo (its retransmissions are answered, not acted on again).
    last_info: Option<Tid>,
    /// The Binding over the other IP family, while unanswered.
    other: Option<OtherProbe>,
    /// The keepalive interval: [`PeerConfig::server_keepalive`], or longer once the direct path proved our
    /// NAT keeps idle mappings longer (see [`ServerLink::set_keepalive`]).
    keepalive: Duration,
    /// Our SPAKE2 message, sent in every Register (the server passes it to the partner); `None` until we know
    /// our code (the server is allocating our nameplate).
    pake: Option<Vec<u8>>,
    /// The key of the MESSAGE-INTEGRITY on what the server tells us and on our Registers and Leave.
    link_key: LinkKeyBytes,
    /// Server messages whose integrity did not check (dropped).
    forged: u64,
    /// The server's latest cookie for our address, echoed in every Register.
    cookie: Option<Vec<u8>>,
    /// 401 answers to the current Register transaction (a few are normal, many a broken server).
    cookie_retries: u32,
    out: VecDeque<Transmit>,
    events: VecDeque<LinkEvent>,
}

impl ServerLink {
    pub fn new(config: PeerConfig, pake: Option<Vec<u8>>, rng: &mut PeerRng, now: Instant) -> Self {
        let mut link = ServerLink {
            rng: PeerRng::from_seed(rng.gen()),
            nat: config.nat,
            state: State::Closed,
            now,
            timers: Timers::default(),
            server_rtt: None,
            public_addr: None,
            keepalive: config.server_keepalive,
            last_info: None,
            other: None,
            client_id: rng.gen(),
            link_key: rng.gen(),
            forged: 0,
            rebinding: false,
            pake,
            cookie: None,
            cookie_retries: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            config,
        };
        if link.config.detect_nat {
            let mut dc = DetectorConfig::new(link.config.server);
            dc.local_addrs = link.config.local_addrs.clone();
            dc.seed = link.rng.gen();
            link.state = State::Detecting(Box::new(NatDetector::new(dc, now)));
            link.pump_detector();
        } else {
            let tid = link.rng.gen();
            let txn = link.start_txn(Msg::BindingRequest { tid });
            link.state = State::Probing(txn);
        }
        if let Some(to) = link.config.server_other_family {
            let tid = link.rng.gen();
            link.other = Some(OtherProbe { tid, to, sends: 0 });
            link.send_other();
        }
        link
    }

    /// (Re)sends the Binding over the other family.
    fn send_other(&mut self) {
        let Some(o) = self.other.as_mut() else {
            return;
        };
        o.sends += 1;
        let (tid, to) = (o.tid, o.to);
        self.out.push_back(Transmit {
            ttl: None,
            source: None,
            destination: to,
            payload: Msg::BindingRequest { tid }.encode(),
        });
        self.timers
            .set(LinkTimer::Other, after(self.now, OTHER_RTO));
    }

    fn on_other_timer(&mut self) {
        let Some(o) = self.other else {
            return;
        };
        if o.sends < OTHER_SENDS {
            return self.send_other();
        }
        tracing::debug!(server = %o.to, "no answer over the other IP family: registering without it");
        self.other = None;
        if matches!(self.state, State::AwaitingOther) {
            self.start_registering();
        }
    }

    /// The server told us our public address in the other IP family: announce it (a partner in that family
    /// can ping it), then register if that waited for it.
    fn on_other_binding(&mut self, mapped: Option<SocketAddr>) {
        self.other = None;
        self.timers.stop(LinkTimer::Other);
        if let Some(m) = mapped {
            let locals = &mut self.config.local_addrs;
            if !locals.contains(&m) && locals.len() < MAX_ANNOUNCED {
                locals.push(m);
            }
        }
        if matches!(self.state, State::AwaitingOther) {
            self.start_registering();
        }
    }

    /// The first Register, once the server answered (and the other family's Binding did, or gave up).
    fn start_registering(&mut self) {
        if self.other.is_some() {
            self.state = State::AwaitingOther;
            return;
        }
        let register = Msg::Register(self.register(false));
        let txn = self.start_txn(register);
        self.state = State::Registering(txn);
    }

    /// The behaviour this peer announces.
    pub fn nat(&self) -> NatBehaviour {
        self.nat
    }

    pub fn server_rtt(&self) -> Option<Duration> {
        self.server_rtt
    }

    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public_addr
    }

    /// Gave up (server unreachable or refused) or closed.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Failed | State::Closed)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    fn registered_or_paired(&self) -> bool {
        matches!(self.state, State::Waiting | State::Paired(_))
    }

    /// Whether a datagram belongs to the NAT detector (only while detecting); if so it is handled.
    pub fn handle_detector_input(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> bool {
        self.advance(now);
        let State::Detecting(d) = &mut self.state else {
            return false;
        };
        if !d.owns(data) {
            return false;
        }
        d.handle_input(now, local, remote, data);
        self.pump_detector();
        true
    }

    /// Server messages from the server's address whose integrity did not check (dropped, never acted on).
    pub fn forged(&self) -> u64 {
        self.forged
    }

    /// A message from the server's address (`data`: its bytes). PeerInfo and PeerLeft act only with a valid
    /// MESSAGE-INTEGRITY under our link key: an off-path attacker cannot re-pair or disconnect us.
    pub fn handle_msg(&mut self, now: Instant, msg: Msg, data: &[u8]) {
        self.advance(now);
        if matches!(msg, Msg::PeerInfo(_) | Msg::PeerLeft { .. })
            && !wire::check_integrity(data, &self.link_key)
        {
            self.forged += 1;
            return;
        }
        match msg {
            Msg::BindingOk { tid, mapped, .. } if self.other.is_some_and(|o| o.tid == tid) => {
                self.on_other_binding(mapped)
            }
            Msg::BindingOk {
                tid,
                mapped,
                cookie,
            } => self.on_binding_ok(tid, mapped, cookie),
            Msg::RegisterOk {
                tid,
                mapped,
                cookie,
                pool: allocated,
            } => {
                if cookie.is_some() {
                    self.cookie = cookie;
                }
                let allocated = allocated.filter(|_| self.config.pool.is_empty());
                self.on_register_ok(tid, mapped);
                if let Some(nameplate) = allocated {
                    self.config.pool = nameplate.clone();
                    self.events.push_back(LinkEvent::Allocated(nameplate));
                }
            }
            Msg::RegisterError {
                code: 401,
                cookie: Some(cookie),
                ..
            } => self.on_cookie_required(cookie),
            Msg::RegisterError {
                tid, code, reason, ..
            } => self.on_register_error(tid, code, reason),
            Msg::PeerInfo(info) => self.on_peer_info(info),
            Msg::PeerLeft { pair_id, .. } if self.is_pair(pair_id) => {
                // Leave too, at once: the nameplate is free for the next pair right away, not after the
                // server's member timeout.
                self.events.push_back(LinkEvent::PeerLeft);
                let now = self.now;
                self.close(now, false);
            }
            Msg::Relay {
                pair_id,
                data: Some(frame),
                ..
            } if self.is_pair(pair_id) => self.events.push_back(LinkEvent::Relay(frame)),
            _ => {}
        }
    }

    fn is_pair(&self, id: Option<PairIdBytes>) -> bool {
        matches!(self.state, State::Paired(p) if Some(p) == id)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if let State::Detecting(d) = &mut self.state {
            d.handle_timeout(self.now);
            self.pump_detector();
        }
        for t in self.timers.expire(self.now) {
            match t {
                LinkTimer::Txn => self.on_txn_timer(),
                LinkTimer::Other => self.on_other_timer(),
                LinkTimer::Keepalive => self.keepalive_now(),
                LinkTimer::Reregister => {
                    if matches!(self.state, State::Waiting) {
                        self.send_register(false);
                        self.timers.set(
                            LinkTimer::Reregister,
                            after(self.now, self.config.reregister_interval),
                        );
                    }
                }
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_deadline(&self) -> Option<Deadline> {
        let detector = match &self.state {
            State::Detecting(d) => d.poll_deadline(),
            _ => None,
        };
        Deadline::earliest(self.timers.next(), detector)
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// Leaves the pool (tells the server) and stops. With `burn`, the server is told the code was wrong, so
    /// that the nameplate is not handed out again for a while.
    pub fn close(&mut self, now: Instant, burn: bool) {
        self.advance(now);
        if matches!(
            self.state,
            State::Waiting | State::Paired(_) | State::Registering(_)
        ) {
            let tid = self.rng.gen();
            let pool = self.config.pool.clone();
            let key = self.link_key;
            self.send(Msg::Leave { tid, pool, burn }.encode_with_integrity(&key));
        }
        self.state = State::Closed;
        self.timers.clear();
    }

    /// A Register refresh to the server now (keepalive, and a check whether our public address changed: the
    /// success carries it); re-arms the keepalive timer.
    fn keepalive_now(&mut self) {
        if !self.registered_or_paired() {
            return;
        }
        self.send_register(false);
        let every = if self.rebinding {
            self.config.rebind_keepalive
        } else {
            self.keepalive
        };
        self.timers
            .set(LinkTimer::Keepalive, after(self.now, every));
    }

    /// Our SPAKE2 message, once our code is known (after the server allocated the nameplate): stored for every
    /// later Register, and sent to the server at once.
    pub fn set_pake(&mut self, message: Vec<u8>) {
        self.pake = Some(message);
        if self.registered_or_paired() {
            self.send_register(false);
        }
    }

    /// While paired on the relay: ask the server for a new punch round for both sides.
    pub fn request_retry(&mut self) {
        if matches!(self.state, State::Paired(_)) {
            self.send_register(true);
        }
    }

    /// A chat frame for the partner, through the server.
    pub fn relay(&mut self, frame: Vec<u8>) -> Option<Transmit> {
        let State::Paired(id) = self.state else {
            return None;
        };
        let msg = Msg::Relay {
            tid: self.rng.gen(),
            pair_id: Some(id),
            data: Some(frame),
        };
        Some(Transmit {
            ttl: None,
            source: None,
            destination: self.config.server,
            payload: msg.encode(),
        })
    }

    // ---- internals ----

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn send(&mut self, payload: Vec<u8>) {
        self.out.push_back(Transmit {
            ttl: None,
            source: None,
            destination: self.config.server,
            payload,
        });
    }

    fn fail(&mut self, e: PeerError) {
        self.events.push_back(LinkEvent::Failed(e));
        self.state = State::Failed;
        self.timers.clear();
    }

    fn pump_detector(&mut self) {
        let State::Detecting(d) = &mut self.state else {
            return;
        };
        let mut report = None;
        while let Some(t) = d.poll_transmit() {
            self.out.push_back(t);
        }
        while let Some(e) = d.poll_event() {
            if let DetectEvent::Done(r) = e {
                report = Some(r);
            }
        }
        let Some(r) = report else {
            return;
        };
        self.state = State::Closed;
        self.events.push_back(LinkEvent::NatDetected(r.clone()));
        if r.server_unreachable {
            return self.fail(PeerError::ServerUnreachable);
        }
        self.nat = r.behaviour;
        self.server_rtt = r.server_rtt;
        self.public_addr = r.public_addr;
        self.cookie = r.cookie;
        self.start_registering();
    }

    fn register(&mut self, retry: bool) -> Register {
        Register {
            tid: self.rng.gen(),
            pool: self.config.pool.clone(),
            name: self.config.name.clone(),
            nat: self.nat,
            client_id: Some(self.client_id),
            locals: self.config.local_addrs.clone(),
            rtt: self.server_rtt,
            retry,
            pake: self.pake.clone(),
            cookie: self.cookie.clone(),
            link_key: Some(self.link_key),
            allocate: self.config.pool.is_empty(),
        }
    }

    fn send_register(&mut self, retry: bool) {
        let r = self.register(retry);
        let key = self.link_key;
        self.send(Msg::Register(r).encode_with_integrity(&key));
    }

    /// Sends `msg` now and retransmits it until answered or [`PeerConfig::server_timeout`].
    fn start_txn(&mut self, msg: Msg) -> Txn {
        let now = self.now;
        let tid = match &msg {
            Msg::BindingRequest { tid } => *tid,
            Msg::Register(r) => r.tid,
            _ => self.rng.gen(),
        };
        let payload = msg.encode_with_integrity(&self.link_key);
        self.send(payload.clone());
        // 250 ms until the server's RTT is known, then twice that (50..=250 ms).
        let rto = self.server_rtt.map_or(INITIAL_RTO, |r| {
            (r * 2).clamp(Duration::from_millis(50), INITIAL_RTO)
        });
        let deadline = after(now, self.config.server_timeout);
        let mut retransmit =
            Retransmit::new(Backoff::new(rto, MAX_RTO), now).with_deadline(deadline);
        retransmit.on_send(now);
        self.arm_txn(&retransmit);
        Txn {
            tid,
            payload,
            retransmit,
        }
    }

    fn arm_txn(&mut self, r: &Retransmit) {
        let at = match (r.next_send(), r.deadline()) {
            (Some(n), _) => n,
            (None, Some(d)) => d,
            (None, None) => return,
        };
        self.timers.set(LinkTimer::Txn, at);
    }

    fn txn_mut(&mut self) -> Option<&mut Txn> {
        match &mut self.state {
            State::Probing(t) | State::Registering(t) => Some(t),
            _ => None,
        }
    }

    fn on_txn_timer(&mut self) {
        let now = self.now;
        let Some(txn) = self.txn_mut() else {
            return;
        };
        if txn.retransmit.deadline().is_some_and(|d| now >= d) {
            return self.fail(PeerError::ServerUnreachable);
        }
        txn.retransmit.on_send(now);
        let (payload, r) = (txn.payload.clone(), txn.retransmit.clone());
        self.arm_txn(&r);
        self.send(payload);
    }

    /// The round trip measured by the answer `tid` to the outstanding request, if it is that answer.
    fn answers_txn(&self, tid: Tid) -> Option<Duration> {
        match &self.state {
            State::Probing(t) | State::Registering(t) if t.tid == tid => {
                t.retransmit.rtt_sample(self.now).map(|(rtt, _exact)| rtt)
            }
            _ => None,
        }
    }

    fn on_binding_ok(&mut self, tid: Tid, mapped: Option<SocketAddr>, cookie: Option<Vec<u8>>) {
        if !matches!(self.state, State::Probing(_)) {
            return;
        }
        let Some(rtt) = self.answers_txn(tid) else {
            return;
        };
        self.timers.stop(LinkTimer::Txn);
        self.server_rtt = Some(rtt);
        self.public_addr = mapped;
        self.cookie = cookie;
        if self.nat.behind_nat.is_none() {
            if let Some(p) = self.public_addr {
                self.nat.behind_nat = Some(!self.config.local_addrs.contains(&p));
            }
        }
        self.start_registering();
    }

    /// 401: the server wants a (fresh) cookie for the address it sees, and sent one: register again at once.
    /// While registered this is how a changed NAT mapping shows (the cookie was for the old address): keep
    /// re-registering every [`PeerConfig::rebind_keepalive`] until a Register success confirms the address.
    fn on_cookie_required(&mut self, cookie: Vec<u8>) {
        if self.cookie.as_ref() == Some(&cookie) {
            return; // the cookie we sent was refused as it is: do not loop
        }
        self.cookie = Some(cookie);
        match self.state {
            State::Registering(_) => {
                self.cookie_retries += 1;
                if self.cookie_retries > 3 {
                    let reason = "cookie required".to_owned();
                    return self.fail(PeerError::Rejected { code: 401, reason });
                }
                let register = Msg::Register(self.register(false));
                let txn = self.start_txn(register);
                self.state = State::Registering(txn);
            }
            State::Waiting | State::Paired(_) => {
                self.rebinding = true;
                self.send_register(false);
                self.timers.set(
                    LinkTimer::Keepalive,
                    after(self.now, self.config.rebind_keepalive),
                );
            }
            _ => {}
        }
    }

    fn on_register_ok(&mut self, tid: Tid, mapped: Option<SocketAddr>) {
        if !matches!(self.state, State::Registering(_)) {
            // The answer to a refresh, a retry request or a re-registration from a new address: the server
            // now sees us at `mapped`.
            if let Some(m) = mapped {
                self.public_addr = Some(m);
                self.rebinding = false;
            }
            return;
        }
        let Some(rtt) = self.answers_txn(tid) else {
            return;
        };
        self.timers.stop(LinkTimer::Txn);
        self.server_rtt.get_or_insert(rtt);
        self.state = State::Waiting;
        self.registered(mapped);
        self.timers.set(
            LinkTimer::Reregister,
            after(self.now, self.config.reregister_interval),
        );
    }

    fn on_register_error(&mut self, tid: Tid, code: u16, reason: String) {
        if !matches!(self.state, State::Registering(_)) {
            return;
        }
        let Some(rtt) = self.answers_txn(tid) else {
            return;
        };
        self.server_rtt.get_or_insert(rtt);
        if code == 409 {
            self.fail(PeerError::PoolFull)
        } else {
            self.fail(PeerError::Rejected { code, reason })
        }
    }

    /// The server has us: from the Register success, or from a PeerInfo that overtook it (the server sends
    /// both at once when we complete a pair). Either way the server keepalive starts here, or the server
    /// would expire us while we chat on a direct path.
    fn registered(&mut self, mapped: Option<SocketAddr>) {
        let public = mapped.or(self.public_addr).unwrap_or(self.config.server);
        self.public_addr = Some(public);
        let server_rtt = self.server_rtt.unwrap_or(FALLBACK_SERVER_RTT);
        self.events.push_back(LinkEvent::Registered {
            public_addr: public,
            server_rtt,
        });
        self.timers
            .set(LinkTimer::Keepalive, after(self.now, self.keepalive));
    }

    /// Our NAT kept an idle mapping (the direct path's) for `proven`: the server keepalive may wait that long
    /// too, within [`PeerConfig::server_keepalive`] and [`SERVER_KEEPALIVE_MAX`]. Takes effect from the next
    /// keepalive.
    pub fn set_keepalive(&mut self, proven: Duration) {
        let base = self.config.server_keepalive;
        self.keepalive = proven.clamp(base, SERVER_KEEPALIVE_MAX.max(base));
    }

    fn on_peer_info(&mut self, info: PeerInfo) {
        // Always answer, so the server stops retransmitting.
        self.send(Msg::PeerInfoAck { tid: info.tid }.encode());
        // A retransmission (our answer was lost) is not a new round.
        let repeat = self.last_info == Some(info.tid);
        self.last_info = Some(info.tid);
        match self.state {
            State::Paired(_) if repeat => {}
            State::Paired(id) if id == info.pair_id => {
                let (public, hold) = (info.public, info.hold);
                self.events.push_back(LinkEvent::NewRound { public, hold });
            }
            State::Registering(_) => {
                // The PeerInfo overtook the Register success: it answers the Register too.
                self.timers.stop(LinkTimer::Txn);
                self.registered(info.mapped);
                self.paired(info);
            }
            State::Waiting | State::Paired(_) => self.paired(info),
            _ => {}
        }
    }

    fn paired(&mut self, info: PeerInfo) {
        self.state = State::Paired(info.pair_id);
        self.timers.stop(LinkTimer::Reregister);
        self.events.push_back(LinkEvent::Paired(info));
    }
}
