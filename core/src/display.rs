//! Human rendering of the machines' events and results, in one place: the simulator's traces and the CLI's
//! text output both use these [`Display`](std::fmt::Display) implementations. (JSON rendering lives with the
//! CLI.)
//!
//! [`PeerEvent`] has two forms: the plain one (`{}`) is the simulator's compact trace line; the alternate one
//! (`{:#}`) is the sentence `punch chat` and `punch demo` print for a person.
use std::fmt;
use std::time::Duration;

use crate::detect::NatReport;
use crate::nat::{Filtering, Mapping, PortAllocation, Strategy};
use crate::peer::{Path, PeerEvent};
use crate::server::ServerEvent;

/// A duration in milliseconds, rounded to two decimals (the CLI's text and JSON use this value).
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

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

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

impl fmt::Display for PeerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sentence = f.alternate();
        match self {
            PeerEvent::NatDetected(r) if sentence => match r.public_addr {
                Some(a) => write!(f, "NAT: {}; public address {a}", r.behaviour),
                None => write!(f, "NAT: {}; public address unknown", r.behaviour),
            },
            PeerEvent::NatDetected(r) => write!(f, "NAT detected: {}", r.behaviour),
            PeerEvent::CodeAllocated { code } => write!(f, "your code is {code}"),
            PeerEvent::Registered {
                public_addr,
                server_rtt,
            } => match sentence {
                true => write!(
                    f,
                    "registered; the server sees us as {public_addr} (rtt {:.1} ms); waiting for a peer",
                    millis(*server_rtt)
                ),
                false => write!(
                    f,
                    "registered as {public_addr} (server rtt {})",
                    Ms(*server_rtt)
                ),
            },
            PeerEvent::Paired {
                name,
                public_addr,
                nat,
                strategy,
                ..
            } => match sentence {
                true => write!(
                    f,
                    "paired with {} at {public_addr}, NAT {nat}; strategy: {strategy}",
                    if name.is_empty() { "your partner" } else { name }
                ),
                false => write!(
                    f,
                    "paired with {name} at {public_addr}, {nat}, strategy {strategy}"
                ),
            },
            PeerEvent::Path { path, rtt } => match (sentence, path) {
                (true, Path::Direct(a)) => {
                    write!(f, "path: direct to {a} (rtt {:.2} ms)", millis(*rtt))
                }
                (true, Path::Relay) => write!(
                    f,
                    "path: relay through the server (rtt ~{:.1} ms)",
                    millis(*rtt)
                ),
                (false, _) => write!(f, "path: {path} (rtt {})", Ms(*rtt)),
            },
            PeerEvent::Message { seq, text } => write!(f, "message #{seq} {text:?}"),
            PeerEvent::Acked { seq } => write!(f, "acked #{seq}"),
            PeerEvent::PeerFinished if sentence => f.write_str("the peer has finished sending"),
            PeerEvent::PeerFinished => f.write_str("peer finished sending"),
            PeerEvent::ConversationDone => f.write_str("conversation done"),
            PeerEvent::Error(e) => write!(f, "error: {e}"),
            PeerEvent::Disconnected { reason } => write!(f, "disconnected: {reason}"),
        }
    }
}

impl PeerEvent {
    /// Whether the event is status a person wants to see (messages and acknowledgements are not).
    pub fn is_status(&self) -> bool {
        !matches!(
            self,
            PeerEvent::Message { .. }
                | PeerEvent::Acked { .. }
                | PeerEvent::ConversationDone
                | PeerEvent::CodeAllocated { .. }
        )
    }
}

/// The `punch nat-type` report: one "Label: value" line each, then the mappings seen and the notes.
impl fmt::Display for NatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn or_unknown(o: Option<String>) -> String {
            o.unwrap_or_else(|| "unknown".into())
        }
        let b = &self.behaviour;
        writeln!(f, "NAT type:        {}", self.kind)?;
        let p = self.public_addr.map(|a| a.to_string());
        writeln!(f, "Public address:  {}", or_unknown(p))?;
        let m = b.mapping.map(|m| m.to_string());
        writeln!(f, "Mapping:         {}", or_unknown(m))?;
        let fl = b.filtering.map(|x| x.to_string());
        writeln!(f, "Filtering:       {}", or_unknown(fl))?;
        let al = b.allocation.map(|a| a.to_string());
        writeln!(f, "Port allocation: {}", or_unknown(al))?;
        let rtt = self.server_rtt.map(|d| format!("{:.2} ms", millis(d)));
        writeln!(f, "Server RTT:      {}", or_unknown(rtt))?;
        let hairpin = match self.hairpin {
            Some(true) => "yes (a packet to our public address comes back)",
            Some(false) => "no",
            None => "not tested",
        };
        writeln!(f, "Hairpinning:     {hairpin}")?;
        for (srv, mapped) in &self.mapped_addrs {
            writeln!(f, "  via {:<24} mapped to {mapped}", srv.to_string())?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// In words, e.g. "endpoint-independent (EIM)".
impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mapping::EndpointIndependent => "endpoint-independent (EIM)",
            Mapping::AddressDependent => "address-dependent (ADM)",
            Mapping::AddressAndPortDependent => "address- and port-dependent (APDM)",
        })
    }
}

/// In words, e.g. "address- and port-dependent (APDF)".
impl fmt::Display for Filtering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Filtering::EndpointIndependent => "endpoint-independent (EIF)",
            Filtering::AddressDependent => "address-dependent (ADF)",
            Filtering::AddressAndPortDependent => "address- and port-dependent (APDF)",
        })
    }
}

/// In words, e.g. "sequential, step +1".
impl fmt::Display for PortAllocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortAllocation::Preserved => f.write_str("port-preserving"),
            PortAllocation::Sequential { step } => write!(f, "sequential, step {step:+}"),
            PortAllocation::Random => f.write_str("random"),
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
            } => {
                let who = if name.is_empty() { "a peer" } else { name };
                write!(f, "{pool}: registered {who} at {client}, {nat}")
            }
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
