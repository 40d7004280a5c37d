//! Machines on simulated hosts.
//!
//! The world drives every machine through [`punch_core::Machine`], the five-verb contract the real drivers
//! use, via one adapter written once for all of them: [`Host`]. A host owns the machine's sockets, keeps
//! every typed event the machine reports with its virtual time (for inspection after a run), and hands each
//! event to the world rendered as one trace line (through `Display`, or a render function for event types
//! that have none). A host can start late (start skew): until [`Host::start`] it owns its sockets but
//! ignores datagrams and has no deadline.
//!
//! A host also serves the machine's socket requests ([`punch_core::SocketRequest`], birthday probing) the way
//! a driver does: it opens sockets on its first address's IP at free ports from [`EXTRA_PORT_BASE`] up, in
//! order, and closes them on request.
use crate::fx::FxSet;
use punch_core::{Deadline, Machine, SocketRequest, Transmit};
use punch_core::{Peer, PeerEvent};
use std::any::Any;
use std::fmt::Display;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a host's extra sockets start (the first free port from here up, deterministically).
pub const EXTRA_PORT_BASE: u16 = 50_000;

/// A [`Machine`] on a simulated host. It is itself a machine, whose events are the trace lines.
pub struct Host<M: Machine> {
    addrs: Vec<SocketAddr>,
    /// The same addresses as a set: a birthday-probing host owns hundreds, and every datagram it sends or
    /// receives asks whether it owns one.
    owned: FxSet<SocketAddr>,
    machine: Option<M>,
    /// Builds the machine at [`Host::start`] (delayed start).
    make: Option<Box<dyn FnOnce(Instant) -> M>>,
    render: fn(&M::Event) -> String,
    /// Every event with its virtual time.
    pub events: Vec<(Duration, M::Event)>,
    /// Application inputs the machine accepted ([`Host::apply`]), with their virtual time: for a peer, the
    /// texts its user typed.
    pub inputs: Vec<(Duration, String)>,
    /// Virtual time zero (set by the world) and the latest `now` the machine was given.
    base: Option<Instant>,
    now: Option<Instant>,
}

fn display<E: Display>(e: &E) -> String {
    e.to_string()
}

impl<M: Machine> Host<M> {
    /// `machine`, running from the start, on sockets `addrs` (the first is the default source).
    pub fn new(addrs: Vec<SocketAddr>, machine: M) -> Host<M>
    where
        M::Event: Display,
    {
        Host::with_render(addrs, machine, display::<M::Event>)
    }

    /// Like [`Host::new`], rendering events for the trace with `render`.
    pub fn with_render(
        addrs: Vec<SocketAddr>,
        machine: M,
        render: fn(&M::Event) -> String,
    ) -> Host<M> {
        Host::build(addrs, Some(machine), None, render)
    }

    /// A host that owns `addrs` from the start but whose machine is built by `make` at [`Host::start`].
    pub fn later(addrs: Vec<SocketAddr>, make: impl FnOnce(Instant) -> M + 'static) -> Host<M>
    where
        M::Event: Display,
    {
        Host::build(addrs, None, Some(Box::new(make)), display::<M::Event>)
    }

    fn build(
        addrs: Vec<SocketAddr>,
        machine: Option<M>,
        make: Option<Box<dyn FnOnce(Instant) -> M>>,
        render: fn(&M::Event) -> String,
    ) -> Host<M> {
        Host {
            owned: addrs.iter().copied().collect(),
            addrs,
            machine,
            make,
            render,
            events: Vec::new(),
            inputs: Vec::new(),
            base: None,
            now: None,
        }
    }

    /// Builds the machine if it is not running yet.
    pub fn start(&mut self, now: Instant) {
        self.now = Some(now);
        if let Some(make) = self.make.take() {
            self.machine = Some(make(now));
        }
    }

    /// The sockets this host owns.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The machine, once started.
    pub fn machine(&self) -> Option<&M> {
        self.machine.as_ref()
    }

    /// The machine, once started, to call it (e.g. `Peer::send_message`) from a scenario.
    pub fn machine_mut(&mut self) -> Option<&mut M> {
        self.machine.as_mut()
    }

    /// An application call on the machine at `now` (the world drains the host afterwards). If the machine
    /// runs and accepts (`call` returns `Some`), `input` is recorded in [`Host::inputs`].
    pub fn apply<R>(
        &mut self,
        now: Instant,
        input: &str,
        call: impl FnOnce(&mut M, Instant) -> Option<R>,
    ) -> Option<R> {
        self.now = Some(now);
        let r = call(self.machine.as_mut()?, now)?;
        self.inputs.push((self.elapsed(), input.to_string()));
        Some(r)
    }

    /// Opens and closes sockets as the machine asks (see the module docs).
    fn serve_socket_requests(&mut self) {
        let (Some(m), Some(now)) = (self.machine.as_mut(), self.now) else {
            return;
        };
        while let Some(request) = m.poll_socket_request() {
            match request {
                SocketRequest::Open { count } => {
                    let Some(first) = self.addrs.first().copied() else {
                        m.handle_sockets(now, &[]);
                        continue;
                    };
                    let mut opened = Vec::with_capacity(count);
                    let mut port = EXTRA_PORT_BASE;
                    while opened.len() < count && port < u16::MAX {
                        let a = SocketAddr::new(first.ip(), port);
                        if self.owned.insert(a) {
                            opened.push(a);
                            self.addrs.push(a);
                        }
                        port += 1;
                    }
                    m.handle_sockets(now, &opened);
                }
                SocketRequest::Close(list) => {
                    let first = self.addrs.first().copied();
                    let mut closed = FxSet::default();
                    for a in list {
                        if Some(a) != first && self.owned.remove(&a) {
                            closed.insert(a);
                        }
                    }
                    if !closed.is_empty() {
                        self.addrs.retain(|a| !closed.contains(a));
                    }
                }
            }
        }
    }

    /// Virtual time of the latest `now` the machine was given.
    fn elapsed(&self) -> Duration {
        match (self.base, self.now) {
            (Some(base), Some(now)) => now.saturating_duration_since(base),
            _ => Duration::ZERO,
        }
    }
}

impl<M: Machine> Machine for Host<M> {
    type Event = String;
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.now = Some(now);
        if let Some(m) = self.machine.as_mut() {
            m.handle_input(now, local, remote, data);
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        if let Some(m) = self.machine.as_mut() {
            m.handle_timeout(now);
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.serve_socket_requests();
        self.machine.as_mut()?.poll_transmit()
    }
    fn poll_deadline(&self) -> Option<Deadline> {
        self.machine.as_ref()?.poll_deadline()
    }
    fn poll_event(&mut self) -> Option<String> {
        let e = self.machine.as_mut()?.poll_event()?;
        let line = (self.render)(&e);
        self.events.push((self.elapsed(), e));
        Some(line)
    }
}

impl<M: Machine> Host<M> {
    /// Like `poll_event`, without rendering the trace line; `false` when there was no event.
    fn take_event_unrendered(&mut self) -> bool {
        let Some(e) = self.machine.as_mut().and_then(|m| m.poll_event()) else {
            return false;
        };
        self.events.push((self.elapsed(), e));
        true
    }
}

/// What the world holds: any [`Host`], type-erased.
pub(crate) trait Hosted: Machine<Event = String> + Any {
    fn addrs(&self) -> &[SocketAddr];
    /// Whether `addr` is one of [`Hosted::addrs`].
    fn owns(&self, addr: &SocketAddr) -> bool;
    /// Sets virtual time zero (once, when the host joins the world).
    fn attach(&mut self, base: Instant);
    /// Takes the next event without rendering its line (the trace is off); `false` when there was none.
    fn take_event(&mut self) -> bool;
}

impl<M: Machine + 'static> Hosted for Host<M> {
    fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
    fn owns(&self, addr: &SocketAddr) -> bool {
        self.owned.contains(addr)
    }
    fn attach(&mut self, base: Instant) {
        self.base = Some(base);
        self.now = self.now.or(Some(base));
    }
    fn take_event(&mut self) -> bool {
        self.take_event_unrendered()
    }
}

/// The chat user's side of a peer.
impl Host<Peer> {
    /// The user types `text`. Returns the sequence number, or `None` if the peer refused (not started...).
    pub fn type_message(&mut self, now: Instant, text: &str) -> Option<u64> {
        self.apply(now, text, |p, now| p.send_message(now, text).ok())
    }

    /// How many messages were received (without collecting them: [`Host::received`]).
    pub fn received_count(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, PeerEvent::Message { .. }))
            .count()
    }

    /// Messages received, in order of delivery.
    pub fn received(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                PeerEvent::Message { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}
