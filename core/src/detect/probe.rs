//! The detector's five probes and the state of one probe's transaction.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::backoff::Retransmit;
use crate::rfc5780::ChangeRequest;
use crate::timer::after;

/// One of the five Binding requests of the test sequence (see the module docs of [`super`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
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

/// Every probe, in index order.
pub(super) const PROBES: [Probe; 5] = [
    Probe::Binding,
    Probe::FilterIpPort,
    Probe::FilterPort,
    Probe::MapAltIp,
    Probe::MapAltBoth,
];

impl Probe {
    /// Position in [`PROBES`].
    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// One of the two filtering tests.
    pub(super) fn is_filter(self) -> bool {
        matches!(self, Probe::FilterIpPort | Probe::FilterPort)
    }

    /// The CHANGE-REQUEST the probe carries (none for the mapping tests).
    pub(super) fn change(self) -> ChangeRequest {
        match self {
            Probe::FilterIpPort => ChangeRequest::new(true, true),
            Probe::FilterPort => ChangeRequest::new(false, true),
            _ => ChangeRequest::default(),
        }
    }

    /// The name in progress messages and notes.
    pub(super) fn label(self) -> &'static str {
        match self {
            Probe::Binding => "mapping test 1/3",
            Probe::FilterIpPort => "filtering test 1/2 (change IP and port)",
            Probe::FilterPort => "filtering test 2/2 (change port)",
            Probe::MapAltIp => "mapping test 2/3",
            Probe::MapAltBoth => "mapping test 3/3",
        }
    }

    /// The reason of the deadline for the probe's next retransmission.
    pub(super) fn retransmit_reason(self) -> &'static str {
        match self {
            Probe::Binding => "detector: mapping test 1/3 retransmit",
            Probe::FilterIpPort => "detector: filtering test 1/2 retransmit",
            Probe::FilterPort => "detector: filtering test 2/2 retransmit",
            Probe::MapAltIp => "detector: mapping test 2/3 retransmit",
            Probe::MapAltBoth => "detector: mapping test 3/3 retransmit",
        }
    }

    /// The reason of the deadline at which the unanswered probe is decided.
    pub(super) fn decide_reason(self) -> &'static str {
        match self {
            Probe::Binding => "detector: decide mapping test 1/3",
            Probe::FilterIpPort => "detector: decide filtering test 1/2",
            Probe::FilterPort => "detector: decide filtering test 2/2",
            Probe::MapAltIp => "detector: decide mapping test 2/3",
            Probe::MapAltBoth => "detector: decide mapping test 3/3",
        }
    }
}

/// A success response to a probe.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    /// Where the answer came from (the datagram's source, not what it claims).
    pub(super) from: SocketAddr,
    /// XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS).
    pub(super) mapped: Option<SocketAddr>,
    /// OTHER-ADDRESS (or CHANGED-ADDRESS).
    pub(super) other: Option<SocketAddr>,
    /// The round trip (Karn: from the last send after a retransmission).
    pub(super) rtt: Duration,
    /// Only one request was sent, so `rtt` is exact (Karn).
    pub(super) exact_rtt: bool,
}

/// How a probe ended.
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    Answered(Answer),
    Error(u16, String),
    TimedOut,
    Cancelled,
}

/// One probe's transaction: its id, destination, retransmission state and outcome.
#[derive(Debug, Clone)]
pub(super) struct Txn {
    pub(super) tid: [u8; 12],
    pub(super) dest: SocketAddr,
    /// Sends and retransmissions; its deadline is the probe's: no retransmission at or after it.
    pub(super) retx: Retransmit,
    pub(super) outcome: Option<Outcome>,
}

impl Txn {
    /// The success response, if that is how the probe ended.
    pub(super) fn answer(&self) -> Option<&Answer> {
        match &self.outcome {
            Some(Outcome::Answered(a)) => Some(a),
            _ => None,
        }
    }

    /// When the next retransmission is due; `None` once the probe is decided.
    pub(super) fn next_send(&self) -> Option<Instant> {
        self.outcome.is_none().then(|| self.retx.next_send())?
    }

    /// When the probe, unanswered, counts as failed: its deadline, but never before one reply wait (`wait`)
    /// after its last send.
    pub(super) fn decide_at(&self, wait: Duration) -> Option<Instant> {
        let last = self.retx.last_sent().map(|l| after(l, wait));
        self.retx.deadline().into_iter().chain(last).max()
    }
}
