//! From the probes' outcomes to a [`NatReport`]: mapping, filtering, port allocation, behind-NAT, and the notes
//! that explain what stayed unknown. The decisions are the tables of `docs/DETECTION.md`.
use std::net::SocketAddr;

use super::probe::{Outcome, Probe};
use super::{Finish, NatDetector, NatReport};
use crate::nat::{Filtering, Mapping, NatBehaviour, NatKind, PortAllocation};

/// Adds `s` to `notes` unless it is there already.
pub(super) fn note(notes: &mut Vec<String>, s: String) {
    if !notes.contains(&s) {
        notes.push(s);
    }
}

impl NatDetector {
    /// The report of a detection that ended `how`; adds its notes to the detector's.
    pub(super) fn build_report(&mut self, how: Finish) -> NatReport {
        let public = self.primary_mapped();
        let other = self.other_address();
        let mapped_addrs: Vec<(SocketAddr, SocketAddr)> =
            [Probe::Binding, Probe::MapAltIp, Probe::MapAltBoth]
                .iter()
                .filter_map(|p| {
                    let t = self.txn(*p)?;
                    Some((t.dest, t.answer()?.mapped?))
                })
                .collect();
        let behind_nat = public.and_then(|p| behind_nat(&self.config.local_addrs, self.local, p));
        if behind_nat == Some(false) {
            self.note("no NAT: the public address is a local address".into());
        }
        let (mapping, filtering) = match (public, other) {
            (Some(m1), Some(_)) => {
                let m2 = self.answer(Probe::MapAltIp).and_then(|a| a.mapped);
                let m3 = self.answer(Probe::MapAltBoth).and_then(|a| a.mapped);
                let both = self.outcome(Probe::FilterIpPort).cloned();
                let port = self.outcome(Probe::FilterPort).cloned();
                let server = self.config.server;
                (
                    mapping(m1, m2, m3, &mut self.notes),
                    filtering(server, both.as_ref(), port.as_ref(), &mut self.notes),
                )
            }
            _ => (None, None),
        };
        let allocation = if how == Finish::Blocked {
            None
        } else {
            let local_port = local_port(&self.config.local_addrs, self.local);
            let (allocation, note) = port_allocation(local_port, &distinct_ports(&mapped_addrs));
            if let Some(n) = note {
                self.note(n);
            }
            allocation
        };
        let behaviour = NatBehaviour {
            behind_nat,
            mapping,
            filtering,
            allocation,
        };
        let kind = match how {
            Finish::Blocked => NatKind::Blocked,
            _ => behaviour.kind(),
        };
        let rtt_answer = self
            .answer(Probe::Binding)
            .or_else(|| self.answer(Probe::MapAltIp))
            .map(|a| (a.rtt, a.exact_rtt));
        if let Some((_, false)) = rtt_answer {
            self.note("the server RTT is measured from a retransmission: a lower bound".into());
        }
        NatReport {
            public_addr: public,
            behaviour,
            kind,
            server_rtt: rtt_answer.map(|(r, _)| r),
            behaviour_tests: other.is_some(),
            server_unreachable: how == Finish::Blocked,
            mapped_addrs,
            notes: self.notes.clone(),
            cookie: self.cookie.clone(),
            hairpin: match self.hairpin {
                super::Hairpin::Decided(h) => Some(h),
                _ => None,
            },
        }
    }
}

/// Whether `public` is none of the local addresses (`local_addrs` and the socket the driver reported);
/// `None` if the local addresses are unknown.
pub(super) fn behind_nat(
    local_addrs: &[SocketAddr],
    local: Option<SocketAddr>,
    public: SocketAddr,
) -> Option<bool> {
    let mut known: Vec<SocketAddr> = local_addrs
        .iter()
        .copied()
        .filter(|a| !a.ip().is_unspecified())
        .collect();
    if let Some(l) = local.filter(|l| !l.ip().is_unspecified()) {
        known.push(l);
    }
    if known.is_empty() {
        return None;
    }
    let local = known
        .iter()
        .any(|l| l.ip() == public.ip() && (l.port() == public.port() || l.port() == 0));
    Some(!local)
}

/// The mapping from the addresses mapped by P (`m1`), AP (`m2`) and AA (`m3`).
fn mapping(
    m1: SocketAddr,
    m2: Option<SocketAddr>,
    m3: Option<SocketAddr>,
    notes: &mut Vec<String>,
) -> Option<Mapping> {
    match (m2, m3) {
        (Some(m2), _) if m2 == m1 => Some(Mapping::EndpointIndependent),
        (Some(m2), Some(m3)) if m3 == m2 => Some(Mapping::AddressDependent),
        (Some(_), Some(_)) => Some(Mapping::AddressAndPortDependent),
        (Some(_), None) => {
            note(
                notes,
                "mapping test 3/3 got no answer: the mapping is endpoint-dependent, but whether by address \
                 only or by address and port is unknown; assuming address-and-port-dependent"
                    .into(),
            );
            Some(Mapping::AddressAndPortDependent)
        }
        (None, _) => {
            note(
                notes,
                "mapping test 2/3 (the server's alternate IP) got no answer: mapping unknown"
                    .into(),
            );
            None
        }
    }
}

/// The filtering from the outcomes of filtering test 1/2 (`both`) and 2/2 (`port`) sent to `server`.
fn filtering(
    server: SocketAddr,
    both: Option<&Outcome>,
    port: Option<&Outcome>,
    notes: &mut Vec<String>,
) -> Option<Filtering> {
    let refused = |notes: &mut Vec<String>, code: u16, reason: &str| {
        note(
            notes,
            format!(
                "the server refused CHANGE-REQUEST ({code} {reason}): it cannot run filtering tests"
            ),
        );
        None
    };
    match both {
        Some(Outcome::Answered(a)) => {
            if a.from.ip() != server.ip() && a.from.port() != server.port() {
                return Some(Filtering::EndpointIndependent);
            }
            note(
                notes,
                format!(
                    "the server answered the change-IP-and-port request from {} instead of its alternate \
                     address: filtering unknown",
                    a.from
                ),
            );
            None
        }
        Some(Outcome::Error(code, reason)) => refused(notes, *code, reason),
        Some(Outcome::TimedOut) => match port {
            Some(Outcome::Answered(a)) => {
                if a.from.ip() == server.ip() && a.from.port() != server.port() {
                    return Some(Filtering::AddressDependent);
                }
                note(
                    notes,
                    format!(
                        "the server answered the change-port request from {} instead of {}:<alternate \
                         port>: filtering unknown",
                        a.from,
                        server.ip()
                    ),
                );
                None
            }
            Some(Outcome::TimedOut) => Some(Filtering::AddressAndPortDependent),
            Some(Outcome::Error(code, reason)) => refused(notes, *code, reason),
            _ => None,
        },
        _ => None,
    }
}

/// The local port: the first non-zero one of `local_addrs`, else the reported socket's.
fn local_port(local_addrs: &[SocketAddr], local: Option<SocketAddr>) -> Option<u16> {
    local_addrs
        .iter()
        .map(|a| a.port())
        .find(|p| *p != 0)
        .or(local.map(|l| l.port()).filter(|p| *p != 0))
}

/// The distinct mapped ports, in order.
fn distinct_ports(mapped: &[(SocketAddr, SocketAddr)]) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    for (_, m) in mapped {
        if !ports.contains(&m.port()) {
            ports.push(m.port());
        }
    }
    ports
}

/// Largest step between consecutive mapped ports that still counts as sequential allocation.
const MAX_SEQUENTIAL_STEP: i32 = 32;

/// Port allocation from the distinct mapped ports, in the order the mappings were made, and a note when it
/// is not observable or the steps are uneven.
///
/// * the first equals the local port: preserved (unless the later ones form a sequence);
/// * two or more (after a preserved first one) with steps of one sign and at most 32: sequential, the step
///   being the common one (or the smallest, with a note, when they differ);
/// * two or more otherwise: random;
/// * a single non-preserved mapping (endpoint-independent mapping): not observable on one socket.
pub fn port_allocation(
    local_port: Option<u16>,
    ports: &[u16],
) -> (Option<PortAllocation>, Option<String>) {
    let Some(&first) = ports.first() else {
        return (None, None);
    };
    let preserved = local_port == Some(first);
    let rest = if preserved { &ports[1..] } else { ports };
    if rest.len() >= 2 {
        let steps: Vec<i32> = rest.windows(2).map(|w| w[1] as i32 - w[0] as i32).collect();
        let same_sign = steps.iter().all(|s| *s > 0) || steps.iter().all(|s| *s < 0);
        if same_sign && steps.iter().all(|s| s.abs() <= MAX_SEQUENTIAL_STEP) {
            let step = *steps.iter().min_by_key(|s| s.abs()).expect("non-empty");
            let note = (!steps.iter().all(|s| *s == step)).then(|| {
                format!("mapped ports step unevenly ({steps:?}): other traffic through the NAT?")
            });
            return (Some(PortAllocation::Sequential { step }), note);
        }
        if !preserved {
            return (Some(PortAllocation::Random), None);
        }
    }
    if preserved {
        return (Some(PortAllocation::Preserved), None);
    }
    let note = match local_port {
        Some(l) => format!(
            "one mapping only (public port {first}, local port {l}): port allocation is not observable"
        ),
        None => format!("one mapping only (public port {first}): port allocation is not observable"),
    };
    (None, Some(note))
}
