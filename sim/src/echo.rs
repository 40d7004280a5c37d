//! A tiny machine for testing the network model itself: [`EchoNode`].
use crate::host::Host;
use punch_core::{Deadline, Machine, Transmit};
use std::net::SocketAddr;
use std::time::Instant;

/// A test machine with one socket: it echoes every datagram back to its sender (unless `echo` is off),
/// remembers what it received, and sends whatever is queued with [`EchoNode::send_to`].
#[derive(Debug, Clone)]
pub struct EchoNode {
    /// Its one socket's address.
    pub addr: SocketAddr,
    /// Whether every datagram received is sent back to its sender (default on).
    pub echo: bool,
    /// `(time, local, remote, payload)` of every datagram received.
    pub received: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    outbox: Vec<Transmit>,
    events: Vec<String>,
    /// Optional periodic send: `(every, destination, payload, next)`.
    periodic: Option<(std::time::Duration, SocketAddr, Vec<u8>, Instant)>,
    /// Socket requests not yet handed to the driver ([`EchoNode::ask`]).
    requests: Vec<punch_core::SocketRequest>,
    /// Every socket the driver opened for it, in order.
    pub opened: Vec<SocketAddr>,
}

impl EchoNode {
    /// An echoing node on `addr` with nothing received or queued.
    pub fn new(addr: SocketAddr) -> EchoNode {
        EchoNode {
            addr,
            echo: true,
            received: Vec::new(),
            outbox: Vec::new(),
            events: Vec::new(),
            periodic: None,
            requests: Vec::new(),
            opened: Vec::new(),
        }
    }

    /// Asks the driver to open or close sockets (a driver test of [`Machine::poll_socket_request`]).
    pub fn ask(&mut self, request: punch_core::SocketRequest) {
        self.requests.push(request);
    }
    /// A node that only records (never answers).
    pub fn silent(addr: SocketAddr) -> EchoNode {
        EchoNode {
            echo: false,
            ..EchoNode::new(addr)
        }
    }
    /// Queues a datagram (call from a scheduled action; the world drains it afterwards).
    pub fn send_to(&mut self, destination: SocketAddr, payload: &[u8]) {
        self.outbox.push(Transmit {
            ttl: None,
            source: None,
            destination,
            payload: payload.to_vec(),
        });
    }
    /// Queues a datagram from the local socket `source` (which may be one the host does not own).
    pub fn send_from(&mut self, source: SocketAddr, destination: SocketAddr, payload: &[u8]) {
        self.outbox.push(Transmit {
            ttl: None,
            source: Some(source),
            destination,
            payload: payload.to_vec(),
        });
    }
    /// Sends `payload` to `destination` every `every`, starting at `first`.
    pub fn send_every(
        &mut self,
        first: Instant,
        every: std::time::Duration,
        destination: SocketAddr,
        payload: &[u8],
    ) {
        self.periodic = Some((every, destination, payload.to_vec(), first));
    }
    /// This machine on a host with its one socket.
    pub fn hosted(self) -> Host<EchoNode> {
        Host::new(vec![self.addr], self)
    }
    /// Remote addresses datagrams came from, in order.
    pub fn senders(&self) -> Vec<SocketAddr> {
        self.received.iter().map(|r| r.2).collect()
    }
}

impl Machine for EchoNode {
    type Event = String;
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.received.push((now, local, remote, data.to_vec()));
        self.events
            .push(format!("got {} B from {remote}", data.len()));
        if self.echo {
            self.outbox.push(Transmit {
                ttl: None,
                source: Some(local),
                destination: remote,
                payload: data.to_vec(),
            });
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        if let Some((every, dst, payload, next)) = &mut self.periodic {
            if now >= *next {
                self.outbox.push(Transmit {
                    ttl: None,
                    source: None,
                    destination: *dst,
                    payload: payload.clone(),
                });
                *next = now + *every;
            }
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.outbox.is_empty() {
            None
        } else {
            Some(self.outbox.remove(0))
        }
    }
    fn poll_socket_request(&mut self) -> Option<punch_core::SocketRequest> {
        (!self.requests.is_empty()).then(|| self.requests.remove(0))
    }
    fn handle_sockets(&mut self, _: Instant, opened: &[SocketAddr]) {
        self.events.push(format!("opened {} sockets", opened.len()));
        self.opened.extend_from_slice(opened);
    }
    fn poll_deadline(&self) -> Option<Deadline> {
        self.periodic.as_ref().map(|p| Deadline {
            at: p.3,
            reason: "periodic send",
        })
    }
    fn poll_event(&mut self) -> Option<String> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }
}
