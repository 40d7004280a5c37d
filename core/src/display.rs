//! Human rendering of the machines' events, in one place: the simulator's traces and the CLI's text output
//! both use these [`Display`](std::fmt::Display) implementations. (JSON rendering lives with the CLI.)
use std::fmt;
use std::time::Duration;

use crate::peer::{Path, PeerEvent};
use crate::server::ServerEvent;

/// A duration as milliseconds with microsecond precision: `12.500ms`. Honours width and alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ms(pub Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        f.pad(&format!("{}.{:03}ms", us / 1000, us % 1000))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Direct(a) => write!(f, "direct to {a}"),
            Path::Relay => f.write_str("relay"),
        }
    }
}

impl fmt::Display for PeerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerEvent::NatDetected(r) => write!(f, "NAT detected: {}", r.behaviour),
            PeerEvent::Registered {
                public_addr,
                server_rtt,
            } => write!(
                f,
                "registered as {public_addr} (server rtt {})",
                Ms(*server_rtt)
            ),
            PeerEvent::Paired {
                name,
                public_addr,
                nat,
                strategy,
                ..
            } => write!(
                f,
                "paired with {name} at {public_addr}, {nat}, strategy {}",
                strategy.label()
            ),
            PeerEvent::Path { path, rtt } => write!(f, "path: {path} (rtt {})", Ms(*rtt)),
            PeerEvent::Message { seq, text } => write!(f, "message #{seq} {text:?}"),
            PeerEvent::Acked { seq } => write!(f, "acked #{seq}"),
            PeerEvent::PeerFinished => f.write_str("peer finished sending"),
            PeerEvent::ConversationDone => f.write_str("conversation done"),
            PeerEvent::Error(e) => write!(f, "error: {e}"),
            PeerEvent::Disconnected { reason } => write!(f, "disconnected: {reason}"),
        }
    }
}

impl fmt::Display for ServerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerEvent::Registered {
                pool,
                client,
                name,
                nat,
            } => write!(f, "{pool}: registered {name} at {client}, {nat}"),
            ServerEvent::Paired { pool, a, b } => write!(f, "{pool}: paired {a} with {b}"),
            ServerEvent::Left { pool, client } => write!(f, "{pool}: {client} left"),
            ServerEvent::Expired { pool, client } => write!(f, "{pool}: {client} expired"),
            ServerEvent::Dropped { from, reason } => write!(f, "dropped from {from}: {reason}"),
            ServerEvent::Moved { pool, from, to } => write!(f, "{pool}: {from} moved to {to}"),
            ServerEvent::Retry { pool } => write!(f, "{pool}: new punch round requested"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_pads() {
        assert_eq!(Ms(Duration::from_micros(12_500)).to_string(), "12.500ms");
        assert_eq!(format!("{:>10}", Ms(Duration::ZERO)), "   0.000ms");
    }
}
