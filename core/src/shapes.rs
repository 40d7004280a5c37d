//! Serialized shapes (feature `serde`): the events and reports as `punch --json` prints them (schema version 1,
//! docs/JSON.md). Everything is derived; this module holds what a derive cannot say by itself: durations as
//! milliseconds, a NAT behaviour with its classic name and the port allocation in two flat fields, and the
//! three peer events whose JSON is not their Rust shape (`nat`, `path`, `error`).
//!
//! ```
//! use punch_core::PeerEvent;
//! let json = serde_json::to_string(&PeerEvent::Acked { seq: 3 }).unwrap();
//! assert_eq!(json, r#"{"event":"acked","seq":3}"#);
//! ```
use std::net::SocketAddr;
use std::time::Duration;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::detect::NatReport;
use crate::display::millis;
use crate::nat::{Filtering, Mapping, NatBehaviour, NatKind, PortAllocation};
use crate::peer::{Path, PeerError};

/// A duration as milliseconds rounded to two decimals (`12.35`).
pub(crate) fn ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(millis(*d))
}

/// The port allocation's name, without its step.
#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Allocation {
    Preserved,
    Sequential,
    Random,
}

/// The RFC 4787 fields of a behaviour, flat (shared by [`BehaviourShape`] and [`ReportShape`]).
#[derive(Serialize, Clone)]
struct Fields {
    behind_nat: Option<bool>,
    mapping: Option<Mapping>,
    filtering: Option<Filtering>,
    port_allocation: Option<Allocation>,
    port_step: Option<i32>,
}

impl From<&NatBehaviour> for Fields {
    fn from(b: &NatBehaviour) -> Self {
        let (port_allocation, port_step) = match b.allocation {
            Some(PortAllocation::Preserved) => (Some(Allocation::Preserved), None),
            Some(PortAllocation::Sequential { step }) => (Some(Allocation::Sequential), Some(step)),
            Some(PortAllocation::Random) => (Some(Allocation::Random), None),
            None => (None, None),
        };
        Fields {
            behind_nat: b.behind_nat,
            mapping: b.mapping,
            filtering: b.filtering,
            port_allocation,
            port_step,
        }
    }
}

/// How a [`NatBehaviour`] is serialized: its classic name and its fields.
#[derive(Serialize)]
pub(crate) struct BehaviourShape {
    kind: NatKind,
    #[serde(flatten)]
    fields: Fields,
}

impl From<NatBehaviour> for BehaviourShape {
    fn from(b: NatBehaviour) -> Self {
        BehaviourShape {
            kind: b.kind(),
            fields: Fields::from(&b),
        }
    }
}

/// One plain Binding answered: which server socket, which mapped address.
#[derive(Serialize)]
struct MappedShape {
    server: SocketAddr,
    mapped: SocketAddr,
}

/// How a [`NatReport`] is serialized (the cookie is left out: it is for the server only).
#[derive(Serialize)]
pub(crate) struct ReportShape {
    kind: NatKind,
    #[serde(flatten)]
    fields: Fields,
    public_addr: Option<SocketAddr>,
    server_rtt_ms: Option<f64>,
    behaviour_tests: bool,
    server_unreachable: bool,
    mappings: Vec<MappedShape>,
    notes: Vec<String>,
    hairpin: Option<bool>,
}

impl From<NatReport> for ReportShape {
    fn from(r: NatReport) -> Self {
        ReportShape {
            kind: r.kind,
            fields: Fields::from(&r.behaviour),
            public_addr: r.public_addr,
            server_rtt_ms: r.server_rtt.map(millis),
            behaviour_tests: r.behaviour_tests,
            server_unreachable: r.server_unreachable,
            mappings: r
                .mapped_addrs
                .iter()
                .map(|&(server, mapped)| MappedShape { server, mapped })
                .collect(),
            notes: r.notes,
            hairpin: r.hairpin,
        }
    }
}

/// `PeerEvent::NatDetected`: `{"event": "nat", "nat": REPORT}`.
pub(crate) fn nat_event<S: Serializer>(r: &NatReport, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(1))?;
    m.serialize_entry("nat", r)?;
    m.end()
}

/// `PeerEvent::Path`: `{"event": "path", "path": "direct"|"relay", "addr": ADDR|null, "rtt_ms": MS}`.
pub(crate) fn path_event<S: Serializer>(
    path: &Path,
    rtt: &Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    let (kind, addr) = match path {
        Path::Direct(a) => ("direct", Some(a)),
        Path::Relay => ("relay", None),
    };
    let mut m = s.serialize_map(Some(3))?;
    m.serialize_entry("path", kind)?;
    m.serialize_entry("addr", &addr)?;
    m.serialize_entry("rtt_ms", &millis(*rtt))?;
    m.end()
}

/// `PeerEvent::Error`: `{"event": "error", "code": CODE, "message": TEXT}`, and the server's `status` for a
/// rejection.
pub(crate) fn error_event<S: Serializer>(e: &PeerError, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("code", e.code())?;
    m.serialize_entry("message", &e.to_string())?;
    if let PeerError::Rejected { code, .. } = e {
        m.serialize_entry("status", code)?;
    }
    m.end()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::nat::{Filtering, Mapping, NatBehaviour, PortAllocation, Strategy};
    use crate::peer::{Path, PeerError, PeerEvent};
    use crate::server::ServerEvent;

    #[test]
    fn events_serialize_to_the_documented_shapes() {
        let b = NatBehaviour {
            behind_nat: Some(true),
            mapping: Some(Mapping::EndpointIndependent),
            filtering: Some(Filtering::AddressAndPortDependent),
            allocation: Some(PortAllocation::Sequential { step: 1 }),
        };
        let addr = "203.0.113.10:4000".parse().unwrap();
        let paired = PeerEvent::Paired {
            name: "bob".into(),
            public_addr: addr,
            local_addrs: vec![],
            nat: b,
            strategy: Strategy::Punch,
        };
        assert_eq!(
            serde_json::to_value(paired).unwrap(),
            json!({"event": "paired", "peer_name": "bob", "peer_public_addr": "203.0.113.10:4000",
                "peer_local_addrs": [], "strategy": "punch", "peer_nat": {"kind": "port_restricted_cone",
                "behind_nat": true, "mapping": "endpoint_independent",
                "filtering": "address_and_port_dependent", "port_allocation": "sequential", "port_step": 1}})
        );
        let relay = PeerEvent::Path {
            path: Path::Relay,
            rtt: std::time::Duration::from_micros(20_123),
        };
        assert_eq!(
            serde_json::to_value(relay).unwrap(),
            json!({"event": "path", "path": "relay", "addr": null, "rtt_ms": 20.12})
        );
        let refused = PeerEvent::Error(PeerError::Rejected {
            code: 410,
            reason: "burnt".into(),
        });
        assert_eq!(
            serde_json::to_value(refused).unwrap(),
            json!({"event": "error", "code": "rejected", "status": 410,
                "message": "server refused registration: 410 burnt"})
        );
        let dropped = ServerEvent::Dropped {
            from: addr,
            reason: "rate",
        };
        assert_eq!(
            serde_json::to_value(dropped).unwrap(),
            json!({"event": "dropped", "from": "203.0.113.10:4000", "reason": "rate"})
        );
    }
}
