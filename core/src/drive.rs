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
//!             Output::Transmit { socket, transmit } => if let Some(run) = gso.push(socket, transmit) {
//!                 send run (one GSO send) on sockets[run.socket]
//!             },
//!             Output::Event(e) => events.send(e),
//!             Output::Timer(update) => reset the one timer if update says so,
//!         }
//!     }
//!     if let Some(run) = gso.flush() { send it }
//!     let wake = select(batched recv into `batch` on drive.poll_order(), timer, command).await;
//!     if drive.apply(&mut machine, now(), wake, &batch).is_break() { return machine }
//! }
//! ```
//!
//! [`Drive`] maps a [`Transmit::source`] to a socket index (`None` is socket 0; an address the driver does not
//! own is an error: the datagram is dropped, counted and logged, never sent from another socket), rotates
//! the socket poll order so that a busy socket cannot starve the others, and tracks the deadline the timer
//! is armed for so that the timer is reset only when it changes.
//!
//! Batched I/O is sans-IO too: [`RecvBatch`] holds the slots one `recvmmsg` fills and splits GRO-coalesced
//! slots back into datagrams; [`Gso`] groups consecutive transmits into [`Run`]s that one GSO send can carry
//! (same socket, same destination, same size but a shorter last one, no TTL). The drivers only move bytes.
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;

use crate::{Instant, Machine, SocketRequest, Transmit};

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
    /// The first `count` slots of the driver's [`RecvBatch`] were filled by one batched receive on socket
    /// number `socket` (an index into the driver's sockets).
    Received {
        /// Index of the socket they arrived on.
        socket: usize,
        /// How many slots were filled (each may hold several GRO-coalesced datagrams).
        count: usize,
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
    /// Open or close sockets as the machine asks ([`Machine::poll_socket_request`], birthday probing). The
    /// driver serves it after the drain: for `Open`, it binds that many sockets like socket 0 (same IP, port 0)
    /// and reports their addresses with [`Drive::opened`]; for `Close`, [`Drive::close`] says which of its
    /// sockets to drop.
    Sockets(SocketRequest),
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

/// Logs a failed send of a [`Run`] at debug, like [`sent`].
pub fn sent_run(run: &Run, result: io::Result<()>) {
    if let Err(e) = result {
        tracing::debug!(to = %run.destination, datagrams = run.count, "send error: {e}");
    }
}

/// After a send of the start of `rest` (a group of [`send_groups`]) returned `result`, how many datagrams
/// went out, or the first one's error (logged like [`sent_run`]): moves `rest` past them, and always past at
/// least one, so a loop sending until `rest` is empty ends.
pub fn sent_group(rest: &mut &[Run], result: io::Result<usize>) {
    let Some(first) = rest.first() else {
        return;
    };
    let n = match result {
        Ok(n) => n,
        Err(e) => {
            sent_run(first, Err(e));
            1
        }
    };
    *rest = &rest[n.clamp(1, rest.len())..];
}

/// Slots a batched receive fills at most per wake-up (one `recvmmsg`): also the most datagrams a socket is
/// served before the others get their turn, unless GRO coalesced several into one slot.
pub const RECV_BATCH: usize = 32;

/// Most segments one GSO send carries (Linux's `UDP_MAX_SEGMENTS`).
pub const GSO_MAX_SEGMENTS: usize = 64;

/// Most payload bytes one GSO send carries: a UDP datagram's limit (65,507 over IPv4), with room to spare.
pub const GSO_MAX_BYTES: usize = 64_000;

/// What one receive slot got: `len` bytes from `from`; with GRO, `len / stride` datagrams of `stride` bytes
/// and a shorter last one when `stride` does not divide `len` (`stride >= len` or 0: one datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Who sent it.
    pub from: SocketAddr,
    /// Bytes in the slot.
    pub len: usize,
    /// The size of each coalesced datagram (the last may be shorter).
    pub stride: usize,
}

/// The buffers of one batched receive: `slots` slots of `slot_len` bytes each, in one allocation, and what
/// each got. A driver lends [`RecvBatch::buffers_mut`] to `recvmmsg` (with GRO, a slot must be large enough
/// for a coalesced run, 64 KiB), records each filled slot with [`RecvBatch::set`], and hands the batch to
/// [`Drive::apply`] with [`Wake::Received`].
///
/// ```
/// use punch_core::drive::{Received, RecvBatch};
///
/// let from = "192.0.2.1:5000".parse().unwrap();
/// let mut batch = RecvBatch::new(2, 16);
/// batch.buffers_mut().next().unwrap()[..7].copy_from_slice(b"aaabbbc"); // GRO: 3 + 3 + 1 bytes
/// batch.set(0, Received { from, len: 7, stride: 3 });
/// let got: Vec<&[u8]> = batch.datagrams(1).map(|(_, d)| d).collect();
/// assert_eq!(got, [&b"aaa"[..], b"bbb", b"c"]);
/// ```
#[derive(Debug, Clone)]
pub struct RecvBatch {
    buf: Vec<u8>,
    slot_len: usize,
    got: Vec<Received>,
}

impl RecvBatch {
    /// `slots` slots (at least one) of `slot_len` bytes (at least one).
    pub fn new(slots: usize, slot_len: usize) -> RecvBatch {
        let (slots, slot_len) = (slots.max(1), slot_len.max(1));
        let nobody = Received {
            from: SocketAddr::from(([0, 0, 0, 0], 0)),
            len: 0,
            stride: 0,
        };
        RecvBatch {
            buf: vec![0; slots * slot_len],
            slot_len,
            got: vec![nobody; slots],
        }
    }

    /// The batch a driver receives into: [`RECV_BATCH`] slots, each with room for a whole GRO run (64 KiB) when
    /// its sockets coalesce (`gro_segments`, quinn-udp's `UdpSocketState::gro_segments`, above 1), else for one
    /// datagram of [`RECV_BUFFER`] bytes.
    pub fn for_gro(gro_segments: usize) -> RecvBatch {
        let slot_len = if gro_segments > 1 {
            u16::MAX as usize
        } else {
            RECV_BUFFER
        };
        RecvBatch::new(RECV_BATCH, slot_len)
    }

    /// One filled slot, for tests and single-datagram receivers: `data` from `from` in slot 0.
    pub fn one(from: SocketAddr, data: &[u8]) -> RecvBatch {
        let mut b = RecvBatch::new(1, data.len());
        b.buf[..data.len()].copy_from_slice(data);
        b.set(
            0,
            Received {
                from,
                len: data.len(),
                stride: 0,
            },
        );
        b
    }

    /// How many slots there are.
    pub fn slots(&self) -> usize {
        self.got.len()
    }

    /// The bytes of each slot, in order, to receive into.
    pub fn buffers_mut(&mut self) -> std::slice::ChunksExactMut<'_, u8> {
        self.buf.chunks_exact_mut(self.slot_len)
    }

    /// Records what slot `i` got (ignored past the last slot; `len` is clamped to the slot).
    pub fn set(&mut self, i: usize, got: Received) {
        let len = got.len.min(self.slot_len);
        if let Some(g) = self.got.get_mut(i) {
            *g = Received { len, ..got };
        }
    }

    /// The datagrams in the first `count` slots, in order: each slot split into its GRO segments.
    pub fn datagrams(&self, count: usize) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.got
            .iter()
            .zip(self.buf.chunks_exact(self.slot_len))
            .take(count)
            .flat_map(|(g, slot)| segments(&slot[..g.len], g.stride).map(move |d| (g.from, d)))
    }
}

/// `data` split into datagrams of `stride` bytes, the last possibly shorter (a GRO-coalesced receive, or a
/// GSO run); `stride` 0 means one datagram. Empty `data` is one empty datagram.
pub fn segments(data: &[u8], stride: usize) -> impl Iterator<Item = &[u8]> {
    let stride = if stride == 0 {
        data.len().max(1)
    } else {
        stride
    };
    let empty = data.is_empty().then_some(data);
    data.chunks(stride).chain(empty)
}

/// Consecutive transmits that one GSO send carries: the same socket and destination, `count` datagrams
/// of `segment` bytes back to back in `payload`, the last possibly shorter. A transmit with a TTL is always a
/// run of its own (`count` 1), sent with that TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Index of the socket to send from.
    pub socket: usize,
    /// Where every datagram of the run goes.
    pub destination: SocketAddr,
    /// The TTL / hop limit of a run of one ([`Transmit::ttl`]); always `None` when `count > 1`.
    pub ttl: Option<u8>,
    /// The size of each datagram but the last (the GSO segment size).
    pub segment: usize,
    /// How many datagrams.
    pub count: usize,
    /// The datagrams, back to back.
    pub payload: Vec<u8>,
}

impl Run {
    /// The run's datagrams, one by one (to send without GSO).
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        segments(&self.payload, self.segment)
    }
}

/// Groups the transmits of a drain into [`Run`]s: feed every [`Output::Transmit`] to [`Gso::push`] and send
/// what it returns, then send [`Gso::flush`]'s last run. Order is kept: a run is returned as soon as a
/// transmit cannot join it.
///
/// ```
/// use punch_core::drive::Gso;
/// use punch_core::Transmit;
///
/// let to = "192.0.2.1:5000".parse().unwrap();
/// let t = |n: usize| Transmit { source: None, destination: to, payload: vec![0; n], ttl: None };
/// let mut gso = Gso::new(64);
/// assert_eq!(gso.push(0, t(1200)), None);
/// assert_eq!(gso.push(0, t(1200)), None);
/// assert_eq!(gso.push(0, t(500)), None); // a shorter one ends the run...
/// let run = gso.push(0, t(1200)).unwrap(); // ...so the next starts a new one
/// assert_eq!((run.count, run.segment, run.payload.len()), (3, 1200, 2900));
/// assert_eq!(gso.flush().unwrap().count, 1);
/// ```
#[derive(Debug, Clone)]
pub struct Gso {
    max_segments: usize,
    run: Option<Run>,
}

impl Gso {
    /// Runs of at most `max_segments` datagrams (clamped to 1..=[`GSO_MAX_SEGMENTS`]; 1 turns GSO off) and
    /// [`GSO_MAX_BYTES`].
    pub fn new(max_segments: usize) -> Gso {
        Gso {
            max_segments: max_segments.clamp(1, GSO_MAX_SEGMENTS),
            run: None,
        }
    }

    /// Adds `transmit`, to go out on socket `socket`: returns the previous run if it cannot join it.
    pub fn push(&mut self, socket: usize, transmit: Transmit) -> Option<Run> {
        let len = transmit.payload.len();
        if self.join(
            socket,
            transmit.destination,
            transmit.ttl,
            &transmit.payload,
        ) {
            return None;
        }
        let next = Run {
            socket,
            destination: transmit.destination,
            ttl: transmit.ttl,
            segment: len,
            count: 1,
            payload: transmit.payload,
        };
        self.run.replace(next)
    }

    /// [`push`](Self::push) for a datagram the caller only borrows (a relay forwarded from a receive buffer):
    /// `data`, no TTL, to `destination` on socket `socket`. The bytes are copied into the run, which is
    /// allocated once for as many datagrams of this size as a run can carry.
    pub fn push_datagram(
        &mut self,
        socket: usize,
        destination: SocketAddr,
        data: &[u8],
    ) -> Option<Run> {
        if self.join(socket, destination, None, data) {
            return None;
        }
        let room =
            (data.len() * self.max_segments).clamp(data.len(), GSO_MAX_BYTES.max(data.len()));
        let mut payload = Vec::with_capacity(room);
        payload.extend_from_slice(data);
        let next = Run {
            socket,
            destination,
            ttl: None,
            segment: data.len(),
            count: 1,
            payload,
        };
        self.run.replace(next)
    }

    /// Appends `data` to the run in progress if it can join it (see [`Run`]); whether it did.
    fn join(
        &mut self,
        socket: usize,
        destination: SocketAddr,
        ttl: Option<u8>,
        data: &[u8],
    ) -> bool {
        let Some(run) = &mut self.run else {
            return false;
        };
        let len = data.len();
        let joins = run.socket == socket
            && run.destination == destination
            && run.ttl.is_none()
            && ttl.is_none()
            && len > 0
            && len <= run.segment
            && run.payload.len() == run.count * run.segment // no shorter last datagram yet
            && run.count < self.max_segments
            && run.payload.len() + len <= GSO_MAX_BYTES;
        if joins {
            run.payload.extend_from_slice(data);
            run.count += 1;
        }
        joins
    }

    /// The run in progress, if any (call after the drain's last transmit).
    pub fn flush(&mut self) -> Option<Run> {
        self.run.take()
    }
}

/// Most datagrams the drivers hand the kernel in one `sendmmsg` ([`send_groups`]).
pub const SEND_BATCH: usize = 64;

/// Splits the runs of a drain, in order, into the groups a driver sends with one system call each: consecutive
/// runs of one datagram without a TTL from the same socket, whatever their destinations (one `sendmmsg`;
/// at most `max` of them, at least 1), and every other run alone (a GSO run of several datagrams, a
/// datagram with a TTL). A server's answers go to many clients, one datagram each: GSO cannot join them,
/// `sendmmsg` can.
///
/// ```
/// use punch_core::drive::{send_groups, Gso};
/// use punch_core::Transmit;
///
/// let t = |port: u16, ttl| Transmit {
///     source: None,
///     destination: ([192, 0, 2, 1], port).into(),
///     payload: vec![0; 100],
///     ttl,
/// };
/// let mut gso = Gso::new(64);
/// let mut runs = Vec::new();
/// for transmit in [t(1, None), t(2, None), t(3, Some(2)), t(4, None), t(5, None), t(6, None)] {
///     runs.extend(gso.push(0, transmit));
/// }
/// runs.extend(gso.flush());
/// let sizes: Vec<usize> = send_groups(&runs, 2).map(<[_]>::len).collect();
/// assert_eq!(sizes, [2, 1, 2, 1]); // the TTL'd one alone; at most 2 a group here
/// ```
pub fn send_groups(runs: &[Run], max: usize) -> impl Iterator<Item = &[Run]> {
    let max = max.max(1);
    let single = |r: &Run| r.count == 1 && r.ttl.is_none();
    let mut rest = runs;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let mut n = 1;
        if single(first) {
            while n < max
                && rest
                    .get(n)
                    .is_some_and(|r| single(r) && r.socket == first.socket)
            {
                n += 1;
            }
        }
        let (group, tail) = rest.split_at(n);
        rest = tail;
        Some(group)
    })
}

/// A relay data plane's step over one batched receive, sans-IO: every datagram in the first `count` slots
/// of `batch` (GRO-coalesced slots split), with its sender [`canonical`], goes to `forward`. A datagram it
/// routes (`Some(destination)`) is sent on as it is, from the same socket: consecutive ones to the same
/// destination join one [`Run`] (grouped by `gso`, see [`Gso::push_datagram`]), handed to `send` as soon
/// as it is complete, the last one before this returns; `local` is the socket's address, for
/// [`for_socket`]. Every other datagram goes to `hand_over`, in order.
///
/// ```
/// use punch_core::drive::{forward_batch, Gso, RecvBatch};
///
/// let (local, from, to) = ("192.0.2.9:3478".parse().unwrap(), "192.0.2.1:5000".parse().unwrap(), "192.0.2.2:6000".parse().unwrap());
/// let batch = RecvBatch::one(from, b"relay me");
/// let (mut runs, mut handed) = (Vec::new(), Vec::new());
/// forward_batch(local, &batch, 1, &mut Gso::new(64), |_, d| (d == b"relay me").then_some(to),
///     |from, d| handed.push((from, d.to_vec())), |run| runs.push(run));
/// assert_eq!((runs[0].destination, runs[0].count, handed.len()), (to, 1, 0));
/// ```
pub fn forward_batch(
    local: SocketAddr,
    batch: &RecvBatch,
    count: usize,
    gso: &mut Gso,
    mut forward: impl FnMut(SocketAddr, &[u8]) -> Option<SocketAddr>,
    mut hand_over: impl FnMut(SocketAddr, &[u8]),
    mut send: impl FnMut(Run),
) {
    for (from, data) in batch.datagrams(count) {
        let from = canonical(from);
        match forward(from, data) {
            Some(to) => {
                if let Some(run) = gso.push_datagram(0, for_socket(local, to), data) {
                    send(run);
                }
            }
            None => hand_over(from, data),
        }
    }
    if let Some(run) = gso.flush() {
        send(run);
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

    /// The driver bound these sockets for a [`SocketRequest::Open`] (appended to its socket list, in this
    /// order): tells the machine. Drain afterwards.
    pub fn opened<M: Machine>(&mut self, machine: &mut M, now: Instant, locals: &[SocketAddr]) {
        self.locals.extend_from_slice(locals);
        machine.handle_sockets(now, locals);
    }

    /// Serves a socket request of the machine (birthday probing) over the driver's socket list `sockets`
    /// (index = socket number, in [`locals`](Self::locals) order): `Open` calls `bind` with the address to bind
    /// (socket 0's IP, port 0) up to `count` times, stopping at the first error (out of file descriptors, say),
    /// appends what it returns and tells the machine; `Close` removes the named sockets. Drain afterwards.
    pub fn serve<M: Machine, S>(
        &mut self,
        machine: &mut M,
        now: Instant,
        request: SocketRequest,
        sockets: &mut Vec<S>,
        mut bind: impl FnMut(SocketAddr) -> io::Result<(SocketAddr, S)>,
    ) {
        match request {
            SocketRequest::Open { count } => {
                let Some(&first) = self.locals.first() else {
                    return self.opened(machine, now, &[]);
                };
                let mut opened = Vec::with_capacity(count);
                for _ in 0..count {
                    match bind(SocketAddr::new(first.ip(), 0)) {
                        Ok((local, socket)) => {
                            sockets.push(socket);
                            opened.push(local);
                        }
                        Err(e) => {
                            tracing::warn!("opened {} of {count} sockets: {e}", opened.len());
                            break;
                        }
                    }
                }
                self.opened(machine, now, &opened);
            }
            SocketRequest::Close(addrs) => {
                for i in self.close(&addrs) {
                    if i < sockets.len() {
                        sockets.remove(i);
                    }
                }
            }
        }
    }

    /// A [`SocketRequest::Close`] for `addrs`: forgets them and returns the indices the driver must remove
    /// from its socket list, highest first (so that removing them in order keeps the others' indices right).
    /// Socket 0 is never closed.
    pub fn close(&mut self, addrs: &[SocketAddr]) -> Vec<usize> {
        let mut gone: Vec<usize> = (1..self.locals.len())
            .filter(|&i| addrs.contains(&self.locals[i]))
            .collect();
        gone.reverse();
        for &i in &gone {
            self.locals.remove(i);
        }
        if self.start >= self.locals.len() {
            self.start = 0;
        }
        gone
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

    /// Feeds what woke the loop to `machine` at `now` (`batch` is the receive batch a [`Wake::Received`] was
    /// read into: every datagram in it goes to [`Machine::handle_input`], GRO-coalesced ones one by one). Returns `Break` on [`Wake::Stop`]: the loop ends (the machine was drained after its last
    /// mutation, so there is nothing left to drain). After `Continue` the driver must [`drain`](Self::drain).
    pub fn apply<M: Machine>(
        &mut self,
        machine: &mut M,
        now: Instant,
        wake: Wake<M>,
        batch: &RecvBatch,
    ) -> ControlFlow<()> {
        match wake {
            Wake::Received { socket, count } => {
                self.served(socket);
                if let Some(&local) = self.locals.get(socket) {
                    for (from, datagram) in batch.datagrams(count) {
                        machine.handle_input(now, local, canonical(from), datagram);
                    }
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
    /// unknown source, or a destination no socket can reach, are dropped, counted in
    /// [`dropped`](Self::dropped) and logged at warn, once per drain), then every socket request, then every
    /// event, then one [`TimerUpdate`] for its deadline.
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
    Sockets,
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
                self.stage = Stage::Sockets;
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
        if self.stage == Stage::Sockets {
            if let Some(r) = self.machine.poll_socket_request() {
                return Some(Output::Sockets(r));
            }
            self.stage = Stage::Events;
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
        let wake = Wake::Received {
            socket: 0,
            count: 1,
        };
        let _ = d.apply(
            &mut m,
            crate::test_epoch(),
            wake,
            &RecvBatch::one(mapped, b"hi"),
        );
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

    fn nothing() -> RecvBatch {
        RecvBatch::one(addr(9), b"")
    }

    #[test]
    fn send_groups_join_single_datagrams_of_one_socket_in_order() {
        let run = |socket, port, count, ttl| Run {
            socket,
            destination: addr(port),
            ttl,
            segment: 10,
            count,
            payload: vec![0; 10 * count],
        };
        let runs = [
            run(0, 1, 1, None),
            run(0, 2, 1, None),
            run(1, 3, 1, None), // another socket ends the group
            run(1, 4, 1, None),
            run(1, 4, 3, None), // a GSO run goes alone
            run(1, 5, 1, None),
            run(1, 6, 1, Some(2)), // so does a datagram with a TTL
        ];
        let groups: Vec<Vec<u16>> = send_groups(&runs, 64)
            .map(|g| g.iter().map(|r| r.destination.port()).collect())
            .collect();
        assert_eq!(groups, [vec![1, 2], vec![3, 4], vec![4], vec![5], vec![6]]);
        assert_eq!(send_groups(&runs, 0).count(), runs.len(), "max 0 acts as 1");
        assert_eq!(send_groups(&[], 64).count(), 0);
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
                Output::Sockets(r) => panic!("the script asks for no sockets: {r:?}"),
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
        let datagram = |socket| Wake::Received { socket, count: 1 };
        let hi = RecvBatch::one(addr(9), b"hi");
        assert!(drive.apply(&mut m, t0, datagram(0), &hi).is_continue());
        assert_eq!(order(&drive), [1, 2, 0]);
        assert!(drive.apply(&mut m, t0, datagram(2), &hi).is_continue());
        assert_eq!(order(&drive), [0, 1, 2]);
        let error = Wake::RecvError {
            socket: 1,
            error: io::ErrorKind::ConnectionRefused.into(),
        };
        assert!(drive.apply(&mut m, t0, error, &nothing()).is_continue());
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
            let wake = Wake::Received { socket, count: 1 };
            assert!(drive.apply(&mut m, t0, wake, &nothing()).is_continue());
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
            .apply(&mut m, t0, Wake::Command(cmd), &nothing())
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
        assert!(drive
            .apply(&mut m, d2, Wake::Timeout, &nothing())
            .is_continue());
        let (_, events, timer) = drain(&mut drive, &mut m);
        assert_eq!(events, ["timeout"]);
        assert_eq!(timer, TimerUpdate::Clear);
        m.deadline = Some(d2);
        assert!(drive
            .apply(&mut m, d2, Wake::Timeout, &nothing())
            .is_continue());
        m.deadline = Some(d2);
        assert_eq!(drain(&mut drive, &mut m).2, TimerUpdate::Set(d2));
    }

    #[test]
    fn stop_breaks_and_touches_nothing() {
        let t0 = crate::test_epoch();
        let mut drive = Drive::new(vec![addr(1)]);
        let mut m = Script::default();
        assert!(drive.apply(&mut m, t0, Wake::Stop, &nothing()).is_break());
        assert!(m.events.is_empty());
    }

    fn to(port: u16, n: usize, ttl: Option<u8>) -> Transmit {
        Transmit {
            source: None,
            destination: addr(port),
            payload: vec![n as u8; n],
            ttl,
        }
    }

    /// Every run a sequence of (socket, transmit) makes, flushed at the end.
    fn runs(max: usize, ts: Vec<(usize, Transmit)>) -> Vec<Run> {
        let mut gso = Gso::new(max);
        let mut out: Vec<Run> = ts.into_iter().filter_map(|(s, t)| gso.push(s, t)).collect();
        out.extend(gso.flush());
        out
    }

    /// A run as (socket, destination port, count, segment, bytes).
    fn shape(r: &Run) -> (usize, u16, usize, usize, usize) {
        (
            r.socket,
            r.destination.port(),
            r.count,
            r.segment,
            r.payload.len(),
        )
    }

    #[test]
    fn gso_groups_same_socket_destination_and_size_and_ends_a_run_at_a_shorter_datagram() {
        let got = runs(
            64,
            vec![
                (0, to(1, 100, None)),
                (0, to(1, 100, None)),
                (0, to(1, 40, None)), // shorter: joins as the last one
                (0, to(1, 40, None)), // a run ends at its shorter datagram
                (0, to(2, 40, None)), // another destination
                (1, to(2, 40, None)), // another socket
                (1, to(2, 80, None)), // longer than the segment
            ],
        );
        let shapes: Vec<_> = got.iter().map(shape).collect();
        assert_eq!(
            shapes,
            [
                (0, 1, 3, 100, 240),
                (0, 1, 1, 40, 40),
                (0, 2, 1, 40, 40),
                (1, 2, 1, 40, 40),
                (1, 2, 1, 80, 80)
            ]
        );
        let sizes: Vec<usize> = got[0].datagrams().map(<[u8]>::len).collect();
        assert_eq!(sizes, [100, 100, 40]);
    }

    #[test]
    fn gso_sends_a_transmit_with_a_ttl_alone_and_keeps_its_ttl() {
        let got = runs(
            64,
            vec![
                (0, to(1, 10, None)),
                (0, to(1, 10, Some(3))),
                (0, to(1, 10, None)),
                (0, to(1, 10, None)),
            ],
        );
        let shapes: Vec<_> = got.iter().map(|r| (r.count, r.ttl)).collect();
        assert_eq!(shapes, [(1, None), (1, Some(3)), (2, None)]);
    }

    #[test]
    fn gso_runs_are_bounded_by_segments_and_bytes_and_one_segment_turns_it_off() {
        let many = |n, size| (0..n).map(|_| (0, to(1, size, None))).collect::<Vec<_>>();
        let counts = |rs: Vec<Run>| rs.iter().map(|r| r.count).collect::<Vec<_>>();
        assert_eq!(counts(runs(64, many(130, 10))), [64, 64, 2]);
        assert_eq!(counts(runs(5, many(12, 10))), [5, 5, 2]);
        assert_eq!(counts(runs(1, many(3, 10))), [1, 1, 1]);
        assert_eq!(counts(runs(1000, many(65, 10))), [64, 1]); // clamped to GSO_MAX_SEGMENTS
                                                               // 1236-byte datagrams: 51 fit in GSO_MAX_BYTES.
        let big = runs(64, many(60, 1236));
        assert_eq!(counts(big.clone()), [51, 9]);
        assert!(big.iter().all(|r| r.payload.len() <= GSO_MAX_BYTES));
        // Empty datagrams never join (a zero segment size means nothing to the kernel).
        assert_eq!(counts(runs(64, many(2, 0))), [1, 1]);
        assert_eq!(runs(64, many(1, 0))[0].datagrams().count(), 1);
    }

    proptest::proptest! {
        #[test]
        fn gso_runs_carry_every_transmit_in_order_and_within_the_limits(
            ts in proptest::collection::vec((0usize..2, 0u16..2, 0usize..40, proptest::option::weighted(0.1, 1u8..3)), 0..200),
            max in 1usize..10,
        ) {
            let input: Vec<(usize, Transmit)> = ts
                .iter()
                .map(|&(s, port, n, ttl)| (s, to(port, if n < 30 { 1000 } else { n }, ttl)))
                .collect();
            let expect: Vec<_> = input
                .iter()
                .map(|(s, t)| (*s, t.destination, t.ttl, t.payload.clone()))
                .collect();
            let got = runs(max, input);
            let mut flat = Vec::new();
            for r in &got {
                proptest::prop_assert!(r.count >= 1 && r.count <= max);
                proptest::prop_assert!(r.count == 1 || r.ttl.is_none());
                proptest::prop_assert!(r.payload.len() <= GSO_MAX_BYTES.max(r.segment));
                let ds: Vec<&[u8]> = r.datagrams().collect();
                proptest::prop_assert_eq!(ds.len(), r.count);
                for d in ds {
                    flat.push((r.socket, r.destination, r.ttl, d.to_vec()));
                }
            }
            proptest::prop_assert_eq!(flat, expect);
        }
    }

    #[test]
    fn forward_batch_sends_consecutive_relays_to_one_destination_as_one_run_and_hands_over_the_rest(
    ) {
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let (x, y) = (a("192.0.2.2:6000"), a("192.0.2.3:7000"));
        let (sender, other) = (a("[::ffff:192.0.2.1]:5000"), a("[::ffff:192.0.2.4]:5000"));
        let mut batch = RecvBatch::new(4, 16);
        let slots: [&[u8]; 4] = [b"aaaaaaaaaaaa", b"bbbb", b"aaaaaa", b"cccc"];
        for (slot, data) in batch.buffers_mut().zip(slots) {
            slot[..data.len()].copy_from_slice(data);
        }
        let got = |from, len, stride| Received { from, len, stride };
        batch.set(0, got(sender, 12, 4)); // GRO: three datagrams of 4 bytes
        batch.set(1, got(other, 4, 0));
        batch.set(2, got(sender, 6, 4)); // GRO: 4 bytes, then 2
        batch.set(3, got(sender, 4, 0));
        let (mut runs, mut handed, mut asked) = (Vec::new(), Vec::new(), Vec::new());
        forward_batch(
            a("[::]:3478"),
            &batch,
            4,
            &mut Gso::new(64),
            |from, d| {
                asked.push(from);
                match d[0] {
                    b'a' => Some(x),
                    b'c' => Some(y),
                    _ => None,
                }
            },
            |from, d| handed.push((from, d.to_vec())),
            |run| runs.push(run),
        );
        assert!(
            asked.iter().all(SocketAddr::is_ipv4),
            "canonical senders: {asked:?}"
        );
        assert_eq!(handed, [(a("192.0.2.4:5000"), b"bbbb".to_vec())]);
        // Five relays to x in one GSO run (the datagram handed over in between does not end it), one to y.
        let shapes: Vec<_> = runs
            .iter()
            .map(|r| (r.destination, r.count, r.segment, r.payload.len()))
            .collect();
        assert_eq!(
            shapes,
            [
                (for_socket(a("[::]:0"), x), 5, 4, 18),
                (for_socket(a("[::]:0"), y), 1, 4, 4)
            ]
        );
        assert_eq!(runs[0].payload, b"aaaaaaaaaaaaaaaaaa");
        // One datagram per run when the socket cannot do GSO.
        runs.clear();
        forward_batch(
            a("0.0.0.0:3478"),
            &batch,
            4,
            &mut Gso::new(1),
            |_, d| (d[0] != b'b').then_some(x),
            |_, _| {},
            |run| runs.push(run),
        );
        assert_eq!(runs.len(), 6);
        assert!(runs.iter().all(|r| r.count == 1 && r.destination == x));
    }

    #[test]
    fn push_datagram_groups_as_push_does() {
        let many = [(1, 100), (1, 100), (1, 40), (1, 40), (2, 40), (2, 80)];
        let mut by_push = Gso::new(64);
        let mut by_datagram = Gso::new(64);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (port, n) in many {
            a.extend(by_push.push(0, to(port, n, None)));
            b.extend(by_datagram.push_datagram(0, addr(port), &vec![n as u8; n]));
        }
        a.extend(by_push.flush());
        b.extend(by_datagram.flush());
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn a_gro_batch_is_fed_datagram_by_datagram_in_order_with_canonical_senders() {
        let t0 = crate::test_epoch();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:5000".parse().unwrap();
        let mut drive = Drive::new(vec!["[::]:3478".parse().unwrap(), addr(2)]);
        let mut m = Script::default();
        let mut batch = RecvBatch::new(3, 8);
        for (slot, data) in batch.buffers_mut().zip([&b"aabbc"[..], b"xyz", b"unused"]) {
            slot[..data.len()].copy_from_slice(data);
        }
        let got = |from, len, stride| Received { from, len, stride };
        batch.set(0, got(mapped, 5, 2)); // GRO: "aa" "bb" "c"
        batch.set(1, got(addr(9), 3, 0));
        batch.set(2, got(addr(9), 6, 0)); // not counted below
        batch.set(3, got(addr(9), 1, 0)); // past the last slot: ignored
        let wake = Wake::Received {
            socket: 0,
            count: 2,
        };
        assert!(drive.apply(&mut m, t0, wake, &batch).is_continue());
        assert_eq!(
            Vec::from(m.events.clone()),
            [
                "[::]:3478 <- 192.0.2.1:5000: aa",
                "[::]:3478 <- 192.0.2.1:5000: bb",
                "[::]:3478 <- 192.0.2.1:5000: c",
                "[::]:3478 <- 127.0.0.1:9: xyz"
            ]
        );
        assert_eq!(
            drive.poll_order().next(),
            Some(1),
            "one batch, then the next socket"
        );
        // A length past the slot is clamped to it; stride 0 or >= len is one datagram.
        batch.set(0, got(addr(9), 100, 0));
        assert_eq!(batch.datagrams(1).next().unwrap().1.len(), 8);
        assert_eq!(segments(b"abc", 3).count(), 1);
        assert_eq!(segments(b"abc", 7).count(), 1);
        assert_eq!(segments(b"", 0).collect::<Vec<_>>(), [b""]);
        assert_eq!(RecvBatch::new(0, 0).slots(), 1);
    }

    #[test]
    fn opened_sockets_are_told_to_the_machine_and_closed_ones_leave_the_index_order_right() {
        struct Asks {
            requests: VecDeque<SocketRequest>,
            told: Vec<SocketAddr>,
        }
        impl Machine for Asks {
            type Event = ();
            fn handle_input(&mut self, _: Instant, _: SocketAddr, _: SocketAddr, _: &[u8]) {}
            fn handle_timeout(&mut self, _: Instant) {}
            fn poll_transmit(&mut self) -> Option<Transmit> {
                None
            }
            fn poll_deadline(&self) -> Option<Deadline> {
                None
            }
            fn poll_event(&mut self) -> Option<()> {
                None
            }
            fn poll_socket_request(&mut self) -> Option<SocketRequest> {
                self.requests.pop_front()
            }
            fn handle_sockets(&mut self, _: Instant, opened: &[SocketAddr]) {
                self.told.extend_from_slice(opened);
            }
        }
        let mut m = Asks {
            requests: VecDeque::from([SocketRequest::Open { count: 3 }]),
            told: Vec::new(),
        };
        let mut drive = Drive::new(vec![addr(1)]);
        let outs: Vec<_> = drive.drain(&mut m).collect();
        assert!(matches!(
            outs[0],
            Output::Sockets(SocketRequest::Open { count: 3 })
        ));
        assert!(matches!(outs.last(), Some(Output::Timer(_))));
        drive.opened(&mut m, crate::test_epoch(), &[addr(2), addr(3), addr(4)]);
        assert_eq!(m.told, [addr(2), addr(3), addr(4)]);
        assert_eq!(drive.locals(), [addr(1), addr(2), addr(3), addr(4)]);
        assert_eq!(drive.socket_for(Some(addr(3))), Some(2));
        // Socket 0 is never closed; the others go highest index first.
        assert_eq!(drive.close(&[addr(1), addr(2), addr(4)]), [3, 1]);
        assert_eq!(drive.locals(), [addr(1), addr(3)]);
        assert_eq!(drive.poll_order().collect::<Vec<_>>(), [0, 1]);
    }
}
