//! The runtime-independent half of a driver loop, shared by `punch-tokio` and `punch-smol`.
//!
//! A driver owns sockets, one timer and a command channel; everything it decides about them lives here, sans-IO
//! (no socket, no clock, no future), so that the two drivers differ only in their socket and timer types:
//!
//! ```text
//! let mut drive = Drive::new(locals);
//! loop {
//!     for out in drive.drain(&mut machine) {          // poll_transmit*, poll_event*, then the deadline
//!         match out {
//!             Output::Transmit { socket, transmit } => sockets[socket].send_to(..).await,
//!             Output::Event(e) => events.send(e),
//!             Output::Timer(update) => reset the one timer if update says so,
//!         }
//!     }
//!     let wake = select(recv on drive.poll_order(), timer, command).await;
//!     if drive.apply(&mut machine, now(), wake, &buf).is_break() { return machine }
//! }
//! ```
//!
//! [`Drive`] maps a [`Transmit::source`] to a socket index (`None` is socket 0; an address the driver does not
//! own is an error: the datagram is dropped, counted and logged, never sent from another socket), rotates
//! the socket poll order so that a busy socket cannot starve the others, and tracks the deadline the timer
//! is armed for so that the timer is reset only when it changes.
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;

use crate::{Instant, Machine, Transmit};

/// Something the application does to the machine, in the driver loop, with the current time.
pub type Command<M> = Box<dyn FnOnce(&mut M, Instant) + Send>;

/// The receive buffer size drivers use (longer datagrams are truncated by the socket).
pub const RECV_BUFFER: usize = 4096;

/// The address to bind a peer's socket to for talking to `server`: the unspecified address of its family,
/// any port (`0.0.0.0:0` or `[::]:0`).
pub fn any_addr_for(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

/// Whether socket number `i` of a driver bound to `addrs` is dual-stack (IPV6_V6ONLY off): an unspecified
/// IPv6 address (`[::]:port`) is, unless an IPv4 address of the set has the same (non-zero) port, which
/// then serves IPv4 itself (a dual-stack `[::]:3478` and `0.0.0.0:3478` cannot both be bound). Drivers bind
/// by this rule, and [`Drive`] routes by it: an IPv4 destination can go out of a dual-stack socket
/// (IPv4-mapped, see [`for_socket`]).
pub fn dual_stack(addrs: &[SocketAddr], i: usize) -> bool {
    let Some(SocketAddr::V6(a)) = addrs.get(i) else {
        return false;
    };
    a.ip().is_unspecified()
        && !addrs
            .iter()
            .any(|b| b.is_ipv4() && b.port() != 0 && b.port() == a.port())
}

/// Whether socket number `i` of a driver bound to `locals` can send to `destination` at all (an IPv4
/// socket reaches IPv4 only; an IPv6 one IPv6, and IPv4 too when [`dual_stack`]).
pub fn reaches(locals: &[SocketAddr], i: usize, destination: SocketAddr) -> bool {
    match (locals.get(i), destination) {
        (Some(SocketAddr::V4(_)), SocketAddr::V4(_)) => true,
        (Some(SocketAddr::V6(_)), SocketAddr::V6(d)) => d.ip().to_ipv4_mapped().is_none(),
        (Some(SocketAddr::V6(_)), SocketAddr::V4(_)) => dual_stack(locals, i),
        _ => false,
    }
}

/// What woke a driver loop: the driver builds one from whichever of its sources was ready.
pub enum Wake<M> {
    /// `len` bytes arrived on socket number `socket` (an index into the driver's sockets) from `from`.
    Datagram {
        /// Index of the socket it arrived on.
        socket: usize,
        /// Who sent it.
        from: SocketAddr,
        /// Its length, at the start of the receive buffer.
        len: usize,
    },
    /// Receiving on socket `socket` failed. ICMP errors surface this way on some platforms; it is not fatal
    /// for UDP, so it is logged and the loop goes on.
    RecvError {
        /// Index of the socket.
        socket: usize,
        /// The error.
        error: io::Error,
    },
    /// The timer armed by the last [`TimerUpdate::Set`] fired.
    Timeout,
    /// The application sent a command.
    Command(Command<M>),
    /// The application closed its command channel: the loop ends.
    Stop,
}

/// What a driver must do with its one timer after a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerUpdate {
    /// The deadline is unchanged and the timer has not fired yet: leave it alone.
    Keep,
    /// Reset the timer to fire at this instant (it may already be past: then it fires at once).
    Set(Instant),
    /// The machine has no deadline: disarm the timer.
    Clear,
}

/// One thing a drain asks of the driver, in the order of the drain rule: transmits, then events, then
/// exactly one [`Output::Timer`], last.
#[derive(Debug)]
pub enum Output<E> {
    /// Send `transmit.payload` to `transmit.destination` from socket number `socket`.
    Transmit {
        /// Index of the socket to send from (already checked against the driver's sockets).
        socket: usize,
        /// The datagram.
        transmit: Transmit,
    },
    /// Hand this event to the application.
    Event(E),
    /// What to do with the timer; always the last output of a drain.
    Timer(TimerUpdate),
}

/// Logs a failed send at debug, and the loop goes on: UDP send errors (no route, a full buffer, an ICMP error
/// reported late) are not fatal to a driver.
pub fn sent(transmit: &Transmit, result: io::Result<usize>) {
    if let Err(e) = result {
        tracing::debug!(to = %transmit.destination, "send error: {e}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Armed {
    /// The timer is disarmed.
    Off,
    /// The timer is set for this instant and has not fired.
    At(Instant),
    /// The timer fired; it must be set (or cleared) again whatever the next deadline is.
    Spent,
}

/// The bookkeeping of one driver loop over a fixed set of sockets (see the [module](self) docs).
///
/// ```
/// use std::time::Instant;
/// use punch_core::drive::{Drive, Output, TimerUpdate};
/// use punch_core::{secure::Code, Peer, PeerConfig};
///
/// let server = "192.0.2.1:3478".parse().unwrap();
/// let mut peer = Peer::new(PeerConfig::new(server, Code::parse("7-guitar-revenge").unwrap()), Instant::now());
/// let mut drive = Drive::new(vec!["0.0.0.0:4000".parse().unwrap()]);
/// let outputs: Vec<_> = drive.drain(&mut peer).collect();
/// assert!(matches!(&outputs[0], Output::Transmit { socket: 0, transmit } if transmit.destination == server));
/// assert!(matches!(outputs.last(), Some(Output::Timer(TimerUpdate::Set(_))))); // always last
/// // Nothing changed since: the timer is left alone.
/// let again: Vec<_> = drive.drain(&mut peer).collect();
/// assert!(matches!(again[..], [Output::Timer(TimerUpdate::Keep)]));
/// ```
#[derive(Debug)]
pub struct Drive {
    locals: Vec<SocketAddr>,
    /// The socket the next receive poll starts at.
    start: usize,
    armed: Armed,
    dropped: u64,
}

impl Drive {
    /// A loop over sockets bound to `locals`, in the driver's socket order (socket 0 is the default source).
    pub fn new(locals: Vec<SocketAddr>) -> Drive {
        Drive {
            locals,
            start: 0,
            armed: Armed::Off,
            dropped: 0,
        }
    }

    /// The local addresses of the sockets, by index.
    pub fn locals(&self) -> &[SocketAddr] {
        &self.locals
    }

    /// The index of the socket a transmit with this `source` goes out on: `None` is socket 0, `Some(a)` the
    /// socket bound to `a`. `None` is returned when there is no such socket (the transmit must be dropped).
    pub fn socket_for(&self, source: Option<SocketAddr>) -> Option<usize> {
        match source {
            None if self.locals.is_empty() => None,
            None => Some(0),
            Some(a) => self.locals.iter().position(|l| *l == a),
        }
    }

    /// [`socket_for`](Self::socket_for), then, when that socket cannot reach `destination` (the other
    /// address family: a server with one IPv4 and one IPv6 socket answering a member of the other family),
    /// the first socket that can. `None`: no socket at all can send there.
    pub fn route(&self, source: Option<SocketAddr>, destination: SocketAddr) -> Option<usize> {
        let named = self.socket_for(source)?;
        if reaches(&self.locals, named, destination) {
            return Some(named);
        }
        (0..self.locals.len()).find(|&i| reaches(&self.locals, i, destination))
    }

    /// The order to poll the sockets for a datagram in: every socket once, starting after the one that was
    /// served last, so that a socket that always has data cannot starve the others.
    pub fn poll_order(&self) -> impl Iterator<Item = usize> {
        let (start, n) = (self.start, self.locals.len());
        (0..n).map(move |k| (start + k) % n)
    }

    /// How many transmits were dropped so far because their `source` is not one of the sockets, or no socket
    /// can reach their destination.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Feeds what woke the loop to `machine` at `now` (`buf` is the receive buffer a [`Wake::Datagram`] was
    /// read into). Returns `Break` on [`Wake::Stop`]: the loop ends (the machine was drained after its last
    /// mutation, so there is nothing left to drain). After `Continue` the driver must [`drain`](Self::drain).
    pub fn apply<M: Machine>(
        &mut self,
        machine: &mut M,
        now: Instant,
        wake: Wake<M>,
        buf: &[u8],
    ) -> ControlFlow<()> {
        match wake {
            Wake::Datagram { socket, from, len } => {
                self.served(socket);
                if let Some(&local) = self.locals.get(socket) {
                    let from = canonical(from);
                    machine.handle_input(now, local, from, &buf[..len.min(buf.len())]);
                }
            }
            Wake::RecvError { socket, error } => {
                self.served(socket);
                tracing::debug!(socket, "recv error: {error}");
            }
            Wake::Timeout => {
                self.armed = Armed::Spent;
                machine.handle_timeout(now);
            }
            Wake::Command(c) => c(machine, now),
            Wake::Stop => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// Drains `machine`: every transmit (routed to a socket, see [`route`](Self::route); those with an
    /// unknown source, or a destination no socket can reach, are dropped,
    /// counted in [`dropped`](Self::dropped) and logged at warn, once per drain), then every event, then one
    /// [`TimerUpdate`] for its deadline.
    pub fn drain<'a, M: Machine>(&'a mut self, machine: &'a mut M) -> Drain<'a, M> {
        Drain {
            drive: self,
            machine,
            stage: Stage::Transmits,
            dropped: 0,
            first_dropped: None,
        }
    }

    fn served(&mut self, socket: usize) {
        if !self.locals.is_empty() {
            self.start = (socket + 1) % self.locals.len();
        }
    }

    fn timer(&mut self, deadline: Option<Instant>) -> TimerUpdate {
        let update = match (self.armed, deadline) {
            (Armed::At(a), Some(d)) if a == d => TimerUpdate::Keep,
            (Armed::Off, None) => TimerUpdate::Keep,
            (_, Some(d)) => TimerUpdate::Set(d),
            (_, None) => TimerUpdate::Clear,
        };
        self.armed = deadline.map_or(Armed::Off, Armed::At);
        update
    }
}

/// `addr` with an IPv4-mapped IPv6 address (`[::ffff:192.0.2.1]:5`, what a dual-stack socket reports for an
/// IPv4 sender) written as the IPv4 address it is. Machines only ever see canonical addresses: the drivers
/// pass every sender through this.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => addr,
        },
        v4 => v4,
    }
}

/// `destination` in the form a socket bound to `local` can send to: an IPv4 destination from an IPv6
/// (dual-stack) socket becomes IPv4-mapped; everything else is unchanged.
pub fn for_socket(local: SocketAddr, destination: SocketAddr) -> SocketAddr {
    match (local, destination) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port()))
        }
        _ => destination,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Transmits,
    Events,
    Done,
}

/// The iterator returned by [`Drive::drain`].
pub struct Drain<'a, M: Machine> {
    drive: &'a mut Drive,
    machine: &'a mut M,
    stage: Stage,
    dropped: u64,
    first_dropped: Option<SocketAddr>,
}

impl<M: Machine> Iterator for Drain<'_, M> {
    type Item = Output<M::Event>;

    fn next(&mut self) -> Option<Output<M::Event>> {
        while self.stage == Stage::Transmits {
            let Some(transmit) = self.machine.poll_transmit() else {
                self.stage = Stage::Events;
                if self.dropped > 0 {
                    tracing::warn!(
                        dropped = self.dropped,
                        source = ?self.first_dropped,
                        locals = ?self.drive.locals,
                        "dropped transmits whose source is not one of this driver's sockets"
                    );
                }
                break;
            };
            match self.drive.route(transmit.source, transmit.destination) {
                Some(socket) => {
                    let mut transmit = transmit;
                    let local = self.drive.locals[socket];
                    transmit.destination = for_socket(local, transmit.destination);
                    return Some(Output::Transmit { socket, transmit });
                }
                // A known source, but no socket of the destination's family (an IPv6 candidate of the
                // partner's on an IPv4-only host, say): expected, so counted and logged at debug only.
                None if self.drive.socket_for(transmit.source).is_some() => {
                    self.drive.dropped += 1;
                    tracing::debug!(to = %transmit.destination, "no socket of this address family");
                }
                None => {
                    self.drive.dropped += 1;
                    self.dropped += 1;
                    self.first_dropped = self.first_dropped.or(transmit.source);
                }
            }
        }
        if self.stage == Stage::Events {
            if let Some(e) = self.machine.poll_event() {
                return Some(Output::Event(e));
            }
            self.stage = Stage::Done;
            let deadline = self.machine.poll_timeout();
            return Some(Output::Timer(self.drive.timer(deadline)));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Deadline, Duration};
    use std::collections::VecDeque;

    #[test]
    fn ipv4_mapped_senders_are_seen_as_ipv4_and_answered_through_the_v6_socket() {
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:5000".parse().unwrap();
        let v4: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        assert_eq!(canonical(mapped), v4);
        assert_eq!(canonical(v6), v6);
        assert_eq!(canonical(v4), v4);
        let dual: SocketAddr = "[::]:3478".parse().unwrap();
        assert_eq!(for_socket(dual, v4), mapped);
        assert_eq!(for_socket(dual, v6), v6);
        assert_eq!(for_socket(addr(1), v4), v4);

        let mut d = Drive::new(vec![dual]);
        let mut m = Script::default();
        let wake = Wake::Datagram {
            socket: 0,
            from: mapped,
            len: 2,
        };
        let _ = d.apply(&mut m, crate::test_epoch(), wake, b"hi");
        assert!(m.events[0].contains("192.0.2.1:5000"), "{:?}", m.events);
        assert!(!m.events[0].contains("ffff"), "{:?}", m.events);
        m.transmits.push_back(Transmit {
            ttl: None,
            source: None,
            destination: v4,
            payload: vec![1],
        });
        let sent = d.drain(&mut m).find_map(|o| match o {
            Output::Transmit { transmit, .. } => Some(transmit.destination),
            _ => None,
        });
        assert_eq!(sent, Some(mapped));
    }

    #[test]
    fn transmits_go_out_of_a_socket_of_the_destinations_family() {
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        // [::]:3478 next to 0.0.0.0:3478 is IPv6-only; alone (or next to another port) it is dual-stack.
        let split = [a("0.0.0.0:3478"), a("[::]:3478")];
        assert!(!dual_stack(&split, 1) && !dual_stack(&split, 0));
        assert!(dual_stack(&[a("[::]:3478")], 0));
        assert!(dual_stack(&[a("[::]:0"), a("0.0.0.0:0")], 0));
        assert!(!dual_stack(&[a("[2001:db8::1]:3478")], 0));
        let (v4, v6) = (a("192.0.2.9:5"), a("[2001:db8::9]:5"));
        let d = Drive::new(split.to_vec());
        assert_eq!(d.route(Some(split[0]), v6), Some(1));
        assert_eq!(d.route(Some(split[1]), v4), Some(0));
        assert_eq!(d.route(None, v4), Some(0));
        assert_eq!(d.route(Some(a("192.0.2.1:1")), v4), None);
        let v4_only = Drive::new(vec![a("0.0.0.0:3478")]);
        assert_eq!(v4_only.route(None, v6), None);
        let dual = Drive::new(vec![a("[::]:3478")]);
        assert_eq!(dual.route(None, v4), Some(0));
        assert_eq!(dual.route(None, v6), Some(0));

        // A transmit no socket can send is dropped and counted, the others go.
        let mut d = v4_only;
        let mut m = Script::default();
        for destination in [v6, v4] {
            m.transmits.push_back(Transmit {
                ttl: None,
                source: None,
                destination,
                payload: vec![1],
            });
        }
        let sent: Vec<SocketAddr> = d
            .drain(&mut m)
            .filter_map(|o| match o {
                Output::Transmit { transmit, .. } => Some(transmit.destination),
                _ => None,
            })
            .collect();
        assert_eq!(sent, [v4]);
        assert_eq!(d.dropped(), 1);
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Records its inputs as events, sends what it is told to, and has a settable deadline.
    #[derive(Default)]
    struct Script {
        transmits: VecDeque<Transmit>,
        events: VecDeque<String>,
        deadline: Option<Instant>,
    }

    impl Script {
        fn send(&mut self, source: Option<SocketAddr>, payload: &str) {
            self.transmits.push_back(Transmit {
                ttl: None,
                source,
                destination: addr(9),
                payload: payload.as_bytes().to_vec(),
            });
        }
    }

    impl Machine for Script {
        type Event = String;
        fn handle_input(&mut self, _: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
            let data = String::from_utf8_lossy(data);
            self.events
                .push_back(format!("{local} <- {remote}: {data}"));
        }
        fn handle_timeout(&mut self, _: Instant) {
            self.events.push_back("timeout".into());
            self.deadline = None;
        }
        fn poll_transmit(&mut self) -> Option<Transmit> {
            self.transmits.pop_front()
        }
        fn poll_deadline(&self) -> Option<Deadline> {
            self.deadline.map(|at| Deadline { at, reason: "test" })
        }
        fn poll_event(&mut self) -> Option<String> {
            self.events.pop_front()
        }
    }

    /// A drain, written as (socket, payload) for transmits, the event text, and the timer update.
    fn drain(
        drive: &mut Drive,
        m: &mut Script,
    ) -> (Vec<(usize, String)>, Vec<String>, TimerUpdate) {
        let (mut sent, mut events, mut timer) = (Vec::new(), Vec::new(), None);
        for out in drive.drain(m) {
            assert!(timer.is_none(), "the timer update is the last output");
            match out {
                Output::Transmit { socket, transmit } => {
                    assert!(events.is_empty(), "transmits come before events");
                    sent.push((socket, String::from_utf8(transmit.payload).unwrap()));
                }
                Output::Event(e) => events.push(e),
                Output::Timer(t) => timer = Some(t),
            }
        }
        (
            sent,
            events,
            timer.expect("a drain ends with a timer update"),
        )
    }

    #[test]
    fn sources_map_to_sockets_and_unknown_ones_are_dropped_and_counted() {
        let mut drive = Drive::new(vec![addr(1), addr(2)]);
        let mut m = Script::default();
        m.send(None, "default");
        m.send(Some(addr(2)), "second");
        m.send(Some(addr(3)), "unknown");
        m.send(Some(addr(1)), "first");
        m.send(Some(addr(4)), "unknown too");
        m.events.push_back("ev".into());
        let (sent, events, timer) = drain(&mut drive, &mut m);
        assert_eq!(
            sent,
            [
                (0, "default".into()),
                (1, "second".into()),
                (0, "first".into())
            ]
        );
        assert_eq!(events, ["ev"]);
        assert_eq!(timer, TimerUpdate::Keep);
        assert_eq!(drive.dropped(), 2);
        assert_eq!(drive.socket_for(None), Some(0));
        assert_eq!(drive.socket_for(Some(addr(3))), None);
    }

    #[test]
    fn without_sockets_every_transmit_is_dropped() {
        let mut drive = Drive::new(Vec::new());
        let mut m = Script::default();
        m.send(None, "x");
        let (sent, _, _) = drain(&mut drive, &mut m);
        assert!(sent.is_empty());
        assert_eq!(drive.dropped(), 1);
        assert_eq!(drive.poll_order().count(), 0);
    }

    #[test]
    fn poll_order_starts_after_the_socket_served_last() {
        let t0 = crate::test_epoch();
        let mut drive = Drive::new(vec![addr(1), addr(2), addr(3)]);
        let mut m = Script::default();
        let order = |d: &Drive| d.poll_order().collect::<Vec<_>>();
        assert_eq!(order(&drive), [0, 1, 2]);
        let datagram = |socket| Wake::Datagram {
            socket,
            from: addr(9),
            len: 2,
        };
        assert!(drive.apply(&mut m, t0, datagram(0), b"hi").is_continue());
        assert_eq!(order(&drive), [1, 2, 0]);
        assert!(drive.apply(&mut m, t0, datagram(2), b"hi").is_continue());
        assert_eq!(order(&drive), [0, 1, 2]);
        let error = Wake::RecvError {
            socket: 1,
            error: io::ErrorKind::ConnectionRefused.into(),
        };
        assert!(drive.apply(&mut m, t0, error, b"").is_continue());
        assert_eq!(order(&drive), [2, 0, 1]);
        let (_, events, _) = drain(&mut drive, &mut m);
        assert_eq!(
            events,
            [
                "127.0.0.1:1 <- 127.0.0.1:9: hi",
                "127.0.0.1:3 <- 127.0.0.1:9: hi"
            ]
        );
    }

    #[test]
    fn a_socket_that_always_has_data_does_not_starve_the_others() {
        // Sockets 0 and 1 both always have a datagram: polling in `poll_order` and serving the first ready
        // socket alternates between them.
        let t0 = crate::test_epoch();
        let mut drive = Drive::new(vec![addr(1), addr(2)]);
        let mut m = Script::default();
        let mut served = Vec::new();
        for _ in 0..4 {
            let socket = drive.poll_order().next().unwrap();
            served.push(socket);
            let wake = Wake::Datagram {
                socket,
                from: addr(9),
                len: 0,
            };
            assert!(drive.apply(&mut m, t0, wake, b"").is_continue());
        }
        assert_eq!(served, [0, 1, 0, 1]);
    }

    #[test]
    fn the_timer_is_reset_only_when_the_deadline_changes_or_it_fired() {
        let t0 = crate::test_epoch();
        let mut drive = Drive::new(vec![addr(1)]);
        let mut m = Script::default();
        assert_eq!(drain(&mut drive, &mut m).2, TimerUpdate::Keep);
        let d1 = t0 + Duration::from_secs(1);
        m.deadline = Some(d1);
        assert_eq!(drain(&mut drive, &mut m).2, TimerUpdate::Set(d1));
        assert_eq!(drain(&mut drive, &mut m).2, TimerUpdate::Keep);
        let cmd: Command<Script> = Box::new(|m, now| m.send(None, &format!("{:?}", now - now)));
        assert!(drive
            .apply(&mut m, t0, Wake::Command(cmd), b"")
            .is_continue());
        let (sent, _, timer) = drain(&mut drive, &mut m);
        assert_eq!(sent, [(0, "0ns".into())]);
        assert_eq!(timer, TimerUpdate::Keep);
        let d2 = t0 + Duration::from_secs(2);
        m.deadline = Some(d2);
        assert_eq!(drain(&mut drive, &mut m).2, TimerUpdate::Set(d2));
        m.deadline = None;
        assert_eq!(drain(&mut drive, &mut m).2, TimerUpdate::Clear);
        assert_eq!(drain(&mut drive, &mut m).2, TimerUpdate::Keep);
        // A fired timer is spent: even an unchanged deadline (or none) must be set (cleared) again.
        m.deadline = Some(d2);
        assert_eq!(drain(&mut drive, &mut m).2, TimerUpdate::Set(d2));
        assert!(drive.apply(&mut m, d2, Wake::Timeout, b"").is_continue());
        let (_, events, timer) = drain(&mut drive, &mut m);
        assert_eq!(events, ["timeout"]);
        assert_eq!(timer, TimerUpdate::Clear);
        m.deadline = Some(d2);
        assert!(drive.apply(&mut m, d2, Wake::Timeout, b"").is_continue());
        m.deadline = Some(d2);
        assert_eq!(drain(&mut drive, &mut m).2, TimerUpdate::Set(d2));
    }

    #[test]
    fn stop_breaks_and_touches_nothing() {
        let t0 = crate::test_epoch();
        let mut drive = Drive::new(vec![addr(1)]);
        let mut m = Script::default();
        assert!(drive.apply(&mut m, t0, Wake::Stop, b"").is_break());
        assert!(m.events.is_empty());
    }
}
