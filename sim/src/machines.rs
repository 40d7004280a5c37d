//! Adapters that put the core machines on simulated hosts: [`PeerNode`] and [`ServerNode`].
//!
//! Each adapter forwards the five verbs, keeps every typed event with its virtual time (for the scenario's
//! outcome) and renders it as one trace line. A [`PeerNode`] can start late (start skew): until
//! [`PeerNode::start`] it owns its socket but ignores datagrams.
use crate::node::Node;
use punch_core::peer::{Peer, PeerConfig, PeerEvent};
use punch_core::server::{Server, ServerConfig, ServerEvent};
use punch_core::{Machine, Transmit};
use std::any::Any;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A peer on a simulated host.
pub struct PeerNode {
    pub config: PeerConfig,
    pub peer: Option<Peer>,
    /// Every event with its virtual time.
    pub events: Vec<(Duration, PeerEvent)>,
    /// Texts handed to `send_message`, in order, with the sequence number it returned.
    pub typed: Vec<(Duration, u64, String)>,
    base: Instant,
    now: Instant,
}

impl PeerNode {
    /// A peer that starts at once (when `start_now`) or waits for [`PeerNode::start`].
    pub fn new(config: PeerConfig, base: Instant, start_now: bool) -> PeerNode {
        let mut n = PeerNode {
            config,
            peer: None,
            events: Vec::new(),
            typed: Vec::new(),
            base,
            now: base,
        };
        if start_now {
            n.start(base);
        }
        n
    }
    /// Creates the peer machine (it starts probing the server at once).
    pub fn start(&mut self, now: Instant) {
        self.now = now;
        if self.peer.is_none() {
            self.peer = Some(Peer::new(self.config.clone(), now));
        }
    }
    /// The user types `text`. Returns the sequence number, or `None` if the peer refused (not started...).
    pub fn type_message(&mut self, now: Instant, text: &str) -> Option<u64> {
        self.now = now;
        let seq = self.peer.as_mut()?.send_message(now, text).ok()?;
        self.typed.push((
            now.saturating_duration_since(self.base),
            seq,
            text.to_string(),
        ));
        Some(seq)
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

impl Node for PeerNode {
    fn local_addrs(&self) -> Vec<SocketAddr> {
        self.config.local_addrs.clone()
    }
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.now = now;
        if let Some(p) = self.peer.as_mut() {
            p.handle_input(now, local, remote, data);
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if let Some(p) = self.peer.as_mut() {
            p.handle_timeout(now);
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.peer.as_mut()?.poll_transmit()
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.peer.as_ref()?.poll_timeout()
    }
    fn poll_event(&mut self) -> Option<String> {
        let e = self.peer.as_mut()?.poll_event()?;
        let line = e.to_string();
        self.events
            .push((self.now.saturating_duration_since(self.base), e));
        Some(line)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The rendezvous server on a simulated host (with all its sockets).
pub struct ServerNode {
    pub server: Server,
    pub events: Vec<(Duration, ServerEvent)>,
    base: Instant,
    now: Instant,
}

impl ServerNode {
    pub fn new(config: ServerConfig, base: Instant) -> ServerNode {
        ServerNode {
            server: Server::new(config, base),
            events: Vec::new(),
            base,
            now: base,
        }
    }
}

impl Node for ServerNode {
    fn local_addrs(&self) -> Vec<SocketAddr> {
        self.server.local_addrs()
    }
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.now = now;
        self.server.handle_input(now, local, remote, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.server.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.server.poll_transmit()
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.server.poll_timeout()
    }
    fn poll_event(&mut self) -> Option<String> {
        let e = self.server.poll_event()?;
        let line = e.to_string();
        self.events
            .push((self.now.saturating_duration_since(self.base), e));
        Some(line)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
