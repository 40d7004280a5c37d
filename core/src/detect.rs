//! NAT behaviour detection (RFC 5780) — STUB committed by the peer author so core compiles; the detector
//! owner replaces the body. Keep this API: `DetectorConfig::new(server)` with public fields `server`,
//! `local_addrs`, `seed`; `NatDetector::new(config, now)`; `handle_input(..) -> bool`; `DetectEvent::Done`;
//! `NatReport` fields used by peer.rs: `behaviour`, `server_rtt`, `public_addr`, `server_unreachable`.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::nat::{NatBehaviour, NatKind};
use crate::Transmit;

#[derive(Debug, Clone)]
pub struct DetectorConfig {
    pub server: SocketAddr,
    pub local_addrs: Vec<SocketAddr>,
    pub seed: u64,
}

impl DetectorConfig {
    pub fn new(server: SocketAddr) -> Self {
        DetectorConfig {
            server,
            local_addrs: Vec::new(),
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatReport {
    pub public_addr: Option<SocketAddr>,
    pub behaviour: NatBehaviour,
    pub kind: NatKind,
    pub server_rtt: Option<Duration>,
    pub behaviour_tests: bool,
    pub server_unreachable: bool,
    pub mapped_addrs: Vec<(SocketAddr, SocketAddr)>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectEvent {
    Progress(String),
    Done(NatReport),
}

#[derive(Debug)]
pub struct NatDetector {
    report: Option<NatReport>,
    done_event: bool,
}

impl NatDetector {
    pub fn new(_config: DetectorConfig, _now: Instant) -> Self {
        NatDetector {
            report: Some(NatReport {
                public_addr: None,
                behaviour: NatBehaviour::UNKNOWN,
                kind: NatKind::Unknown,
                server_rtt: None,
                behaviour_tests: false,
                server_unreachable: false,
                mapped_addrs: Vec::new(),
                notes: vec!["detection not implemented yet".into()],
            }),
            done_event: false,
        }
    }
    pub fn is_done(&self) -> bool {
        true
    }
    pub fn report(&self) -> Option<&NatReport> {
        self.report.as_ref()
    }
    pub fn handle_input(
        &mut self,
        _now: Instant,
        _local: SocketAddr,
        _remote: SocketAddr,
        _data: &[u8],
    ) -> bool {
        false
    }
    pub fn handle_timeout(&mut self, _now: Instant) {}
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn poll_event(&mut self) -> Option<DetectEvent> {
        if self.done_event {
            return None;
        }
        self.done_event = true;
        self.report.clone().map(DetectEvent::Done)
    }
}

impl crate::Machine for NatDetector {
    type Event = DetectEvent;
    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        NatDetector::handle_input(self, now, local, remote, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        NatDetector::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        NatDetector::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        NatDetector::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<DetectEvent> {
        NatDetector::poll_event(self)
    }
}
