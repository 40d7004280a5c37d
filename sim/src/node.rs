//! The machines the simulator drives.
//!
//! [`Node`] is the five-verb sans-IO contract of `punch_core` (see its crate docs) as a trait, plus the two
//! things the world needs to know: which sockets the machine owns, and a way to reach the concrete type
//! again after a run ([`Node::as_any_mut`]). Adapters for the core machines live in [`crate::machines`];
//! [`EchoNode`] is a tiny machine for testing the network model itself.
use punch_core::Transmit;
use std::any::Any;
use std::net::SocketAddr;
use std::time::Instant;

/// A sans-IO machine on a simulated host.
pub trait Node: Any {
    /// The sockets this machine owns; the first is the default source (`Transmit::source == None`).
    fn local_addrs(&self) -> Vec<SocketAddr>;
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_timeout(&mut self) -> Option<Instant>;
    /// The next event, rendered for the trace. (Adapters keep the typed events for inspection.)
    fn poll_event(&mut self) -> Option<String>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A test machine with one socket: it echoes every datagram back to its sender (unless `echo` is off),
/// remembers what it received, and sends whatever is queued with [`EchoNode::send_to`].
#[derive(Debug, Clone)]
pub struct EchoNode {
    pub addr: SocketAddr,
    pub echo: bool,
    /// `(time, local, remote, payload)` of every datagram received.
    pub received: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    outbox: Vec<Transmit>,
    events: Vec<String>,
    /// Optional periodic send: `(every, destination, payload, next)`.
    periodic: Option<(std::time::Duration, SocketAddr, Vec<u8>, Instant)>,
}

impl EchoNode {
    pub fn new(addr: SocketAddr) -> EchoNode {
        EchoNode {
            addr,
            echo: true,
            received: Vec::new(),
            outbox: Vec::new(),
            events: Vec::new(),
            periodic: None,
        }
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
            source: None,
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
    /// Remote addresses datagrams came from, in order.
    pub fn senders(&self) -> Vec<SocketAddr> {
        self.received.iter().map(|r| r.2).collect()
    }
}

impl Node for EchoNode {
    fn local_addrs(&self) -> Vec<SocketAddr> {
        vec![self.addr]
    }
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.received.push((now, local, remote, data.to_vec()));
        self.events
            .push(format!("got {} B from {remote}", data.len()));
        if self.echo {
            self.outbox.push(Transmit {
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
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.periodic.as_ref().map(|p| p.3)
    }
    fn poll_event(&mut self) -> Option<String> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
