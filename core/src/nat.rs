//! NAT behaviour in RFC 4787 terms, the classic names derived from it, and the decision table that maps the
//! two peers' behaviours to a connection strategy (documented in `docs/STRATEGY.md`).
use std::fmt;
use std::time::Duration;

/// How the NAT chooses the public mapping for a new destination (RFC 4787 s4.1, RFC 5780 s4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Mapping {
    /// Same public address and port whatever the destination ("cone").
    EndpointIndependent,
    /// A new mapping per destination IP.
    AddressDependent,
    /// A new mapping per destination IP and port ("symmetric").
    AddressAndPortDependent,
}

impl Mapping {
    /// Every mapping behaviour, from the most to the least permissive (also their wire order).
    pub const ALL: [Mapping; 3] = [
        Mapping::EndpointIndependent,
        Mapping::AddressDependent,
        Mapping::AddressAndPortDependent,
    ];
}

/// Which inbound packets the NAT lets through to an existing mapping (RFC 4787 s5, RFC 5780 s4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Filtering {
    /// Anyone may send to the mapping ("full cone").
    EndpointIndependent,
    /// Only IPs the inside host has sent to ("restricted cone").
    AddressDependent,
    /// Only IP:port pairs the inside host has sent to ("port-restricted cone").
    AddressAndPortDependent,
}

impl Filtering {
    /// Every filtering behaviour, from the most to the least permissive (also their wire order).
    pub const ALL: [Filtering; 3] = [
        Filtering::EndpointIndependent,
        Filtering::AddressDependent,
        Filtering::AddressAndPortDependent,
    ];
}

/// How the NAT picks public ports (RFC 4787 s4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortAllocation {
    /// The public port equals the local port.
    Preserved,
    /// Each new mapping is the previous public port plus `step` (may be negative).
    Sequential {
        /// Difference between consecutive public ports.
        step: i32,
    },
    /// No pattern.
    Random,
}

/// The classic (RFC 3489) name, derived from mapping and filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum NatKind {
    /// No NAT: the public address is the local one and unsolicited traffic arrives.
    Open,
    /// EIM + EIF.
    FullCone,
    /// EIM + ADF.
    RestrictedCone,
    /// EIM + APDF.
    PortRestrictedCone,
    /// Endpoint-dependent mapping.
    Symmetric,
    /// No NAT, but a firewall that filters unsolicited traffic.
    SymmetricUdpFirewall,
    /// No STUN answer at all: UDP is blocked.
    Blocked,
    /// Not (yet) known, e.g. the server cannot run behaviour tests.
    Unknown,
}

impl NatKind {
    /// Human-readable name, e.g. "Port-restricted cone" (also the `Display` form).
    pub fn label(self) -> &'static str {
        match self {
            NatKind::Open => "Open",
            NatKind::FullCone => "Full cone",
            NatKind::RestrictedCone => "Restricted cone",
            NatKind::PortRestrictedCone => "Port-restricted cone",
            NatKind::Symmetric => "Symmetric",
            NatKind::SymmetricUdpFirewall => "Symmetric UDP firewall",
            NatKind::Blocked => "Blocked",
            NatKind::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What is known about one side's NAT. Every field is optional: a peer whose server cannot run behaviour
/// tests still registers, with `Unknown` behaviour, and the strategy plans for the worst case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(into = "crate::shapes::BehaviourShape"))]
pub struct NatBehaviour {
    /// Whether the public address differs from every local address. `None`: unknown.
    pub behind_nat: Option<bool>,
    /// How public mappings are reused (RFC 4787 s4.1). `None`: unknown.
    pub mapping: Option<Mapping>,
    /// Which inbound traffic is let through (RFC 4787 s5). `None`: unknown.
    pub filtering: Option<Filtering>,
    /// How public ports are chosen (RFC 4787 s4.2). `None`: unknown.
    pub allocation: Option<PortAllocation>,
}

impl NatBehaviour {
    /// Nothing known.
    pub const UNKNOWN: NatBehaviour = NatBehaviour {
        behind_nat: None,
        mapping: None,
        filtering: None,
        allocation: None,
    };

    /// The classic name derived from mapping and filtering.
    pub fn kind(&self) -> NatKind {
        match (self.behind_nat, self.mapping, self.filtering) {
            (Some(false), _, Some(Filtering::EndpointIndependent)) => NatKind::Open,
            (Some(false), _, Some(_)) => NatKind::SymmetricUdpFirewall,
            (_, Some(Mapping::AddressDependent | Mapping::AddressAndPortDependent), _) => {
                NatKind::Symmetric
            }
            (_, Some(Mapping::EndpointIndependent), Some(Filtering::EndpointIndependent)) => {
                NatKind::FullCone
            }
            (_, Some(Mapping::EndpointIndependent), Some(Filtering::AddressDependent)) => {
                NatKind::RestrictedCone
            }
            (_, Some(Mapping::EndpointIndependent), Some(Filtering::AddressAndPortDependent)) => {
                NatKind::PortRestrictedCone
            }
            _ => NatKind::Unknown,
        }
    }

    /// A behaviour for a classic kind (used by tests, the simulator's `--knowledge assume` and `punch strategy`).
    pub fn from_kind(kind: NatKind) -> NatBehaviour {
        use NatKind::*;
        if matches!(kind, Blocked | Unknown) {
            return NatBehaviour::UNKNOWN;
        }
        let filtering = match kind {
            Open | FullCone => Filtering::EndpointIndependent,
            RestrictedCone => Filtering::AddressDependent,
            _ => Filtering::AddressAndPortDependent,
        };
        let mapping = if kind == Symmetric {
            Mapping::AddressAndPortDependent
        } else {
            Mapping::EndpointIndependent
        };
        NatBehaviour {
            behind_nat: Some(!matches!(kind, Open | SymmetricUdpFirewall)),
            mapping: Some(mapping),
            filtering: Some(filtering),
            allocation: None,
        }
    }

    /// Six bytes on the wire: behind_nat, mapping, filtering, allocation kind, then the sequential step as a
    /// big-endian i16 in bytes 4..6. 0 means unknown in every position.
    pub fn encode(&self) -> [u8; 6] {
        let (a, step) = match self.allocation {
            None => (0, 0i16),
            Some(PortAllocation::Preserved) => (1, 0),
            Some(PortAllocation::Sequential { step }) => {
                (2, step.clamp(i16::MIN as i32, i16::MAX as i32) as i16)
            }
            Some(PortAllocation::Random) => (3, 0),
        };
        let s = step.to_be_bytes();
        let b = code_of(&[false, true], self.behind_nat);
        [
            b,
            code_of(&Mapping::ALL, self.mapping),
            code_of(&Filtering::ALL, self.filtering),
            a,
            s[0],
            s[1],
        ]
    }

    /// Inverse of [`NatBehaviour::encode`]; unknown codes decode as unknown, short input as `None`.
    pub fn decode(bytes: &[u8]) -> Option<NatBehaviour> {
        if bytes.len() < 6 {
            return None;
        }
        let behind_nat = from_code(&[false, true], bytes[0]);
        let mapping = from_code(&Mapping::ALL, bytes[1]);
        let filtering = from_code(&Filtering::ALL, bytes[2]);
        let step = i16::from_be_bytes([bytes[4], bytes[5]]) as i32;
        let allocation = match bytes[3] {
            1 => Some(PortAllocation::Preserved),
            2 => Some(PortAllocation::Sequential { step }),
            3 => Some(PortAllocation::Random),
            _ => None,
        };
        Some(NatBehaviour {
            behind_nat,
            mapping,
            filtering,
            allocation,
        })
    }
}

/// The one-byte wire code of `value` in `table` (0: unknown).
fn code_of<T: PartialEq>(table: &[T], value: Option<T>) -> u8 {
    value
        .and_then(|v| table.iter().position(|t| *t == v))
        .map_or(0, |i| i as u8 + 1)
}

/// Inverse of [`code_of`]; unknown codes are `None`.
fn from_code<T: Copy>(table: &[T], code: u8) -> Option<T> {
    table.get(usize::from(code).checked_sub(1)?).copied()
}

impl fmt::Display for NatBehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mapping.is_none() && self.filtering.is_none() {
            return f.write_str("unknown (not measured)");
        }
        let m = ["?", "EIM", "ADM", "APDM"][code_of(&Mapping::ALL, self.mapping) as usize];
        let fl = ["?", "EIF", "ADF", "APDF"][code_of(&Filtering::ALL, self.filtering) as usize];
        write!(f, "{} ({m}/{fl}", self.kind())?;
        match self.allocation {
            Some(PortAllocation::Preserved) => write!(f, ", port-preserving)"),
            Some(PortAllocation::Sequential { step }) => write!(f, ", sequential {step:+})"),
            Some(PortAllocation::Random) => write!(f, ", random ports)"),
            None => write!(f, ")"),
        }
    }
}

/// What the two peers do once paired. Both sides compute it from the same two behaviours, so they agree
/// without negotiating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Strategy {
    /// Both punch at once (ping/pong to each other's public and local addresses); pongs to peer-reflexive
    /// addresses are answered, so a symmetric side facing a cone side still gets through.
    Punch,
    /// Birthday probing: one side's NAT gives every destination a new random port and the other side drops
    /// what comes from ports it has not sent to, so neither can simply ping the other. The hard (symmetric)
    /// side opens many extra sockets ([`crate::PeerConfig::birthday_sockets`]) and sends a TTL-limited opener
    /// from each toward the easy side's public address; the easy side pings random ports of the hard side's IP
    /// at a bounded rate until one lands on an open mapping ([`birthday_role`], docs/STRATEGY.md). The relay
    /// carries the chat meanwhile.
    Birthday,
    /// No direct path is possible for the strategy implemented: use the server's relay from the start.
    Relay,
}

impl Strategy {
    /// Lower-case name for logs and the UI: "punch", "birthday" or "relay".
    pub fn label(self) -> &'static str {
        match self {
            Strategy::Punch => "punch",
            Strategy::Birthday => "birthday",
            Strategy::Relay => "relay",
        }
    }
}

/// The decision table (see `docs/STRATEGY.md`).
///
/// A direct path needs at least one side whose mapping is stable (EIM or no NAT), so that the other side's
/// packets go to an address that reaches it; and if the other side's mapping is unstable (symmetric), the
/// stable side must let the symmetric side's *new* port in: its filtering must not be port-dependent.
/// Unknown behaviour is treated as "try": punching costs a few packets and relay remains the fallback.
///
/// ```
/// use punch_core::{nat::strategy, NatBehaviour, NatKind, Strategy};
///
/// let symmetric = NatBehaviour::from_kind(NatKind::Symmetric);
/// let full_cone = NatBehaviour::from_kind(NatKind::FullCone);
/// let port_restricted = NatBehaviour::from_kind(NatKind::PortRestrictedCone);
/// assert_eq!(strategy(&symmetric, &full_cone), Strategy::Punch); // the cone lets the new port in
/// assert_eq!(strategy(&symmetric, &port_restricted), Strategy::Birthday); // it would not: probe for the port
/// assert_eq!(strategy(&symmetric, &symmetric), Strategy::Relay);
/// assert_eq!(strategy(&symmetric, &NatBehaviour::UNKNOWN), Strategy::Punch); // unknown: try
/// assert_eq!(strategy(&full_cone, &symmetric), strategy(&symmetric, &full_cone)); // both sides agree
/// ```
pub fn strategy(a: &NatBehaviour, b: &NatBehaviour) -> Strategy {
    let unstable = |n: &NatBehaviour| {
        n.behind_nat != Some(false)
            && matches!(
                n.mapping,
                Some(Mapping::AddressDependent | Mapping::AddressAndPortDependent)
            )
    };
    // A side whose filtering admits a new port from an IP it already sent to.
    // (Unknown filtering: assume it might, and try.)
    let admits_new_port = |n: &NatBehaviour| {
        matches!(
            n.filtering,
            None | Some(Filtering::EndpointIndependent | Filtering::AddressDependent)
        )
    };
    // A symmetric side whose ports come in sequence: the stable side predicts its next ports and opens
    // its own filter toward a window of them (see `predicted_ports`).
    let predictable =
        |n: &NatBehaviour| matches!(n.allocation, Some(PortAllocation::Sequential { .. }));
    match (unstable(a), unstable(b)) {
        (false, false) => Strategy::Punch,
        (true, false) if admits_new_port(b) || predictable(a) => Strategy::Punch,
        (false, true) if admits_new_port(a) || predictable(b) => Strategy::Punch,
        // The stable side drops the unstable side's new ports and they cannot be predicted: birthday probing.
        (true, false) | (false, true) => Strategy::Birthday,
        (true, true) => Strategy::Relay,
    }
}

/// A peer's part in birthday probing ([`Strategy::Birthday`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BirthdayRole {
    /// Behind the symmetric NAT: open many sockets, send an opener from each, answer the probe that lands.
    Hard,
    /// Behind the stable NAT (or firewall): probe random ports of the hard side's IP.
    Easy,
}

/// This side's role when [`strategy`] says [`Strategy::Birthday`] (`None` for any other strategy): the side
/// whose mapping changes per destination is the hard one.
///
/// ```
/// use punch_core::nat::{birthday_role, BirthdayRole, NatBehaviour, NatKind};
/// let symmetric = NatBehaviour::from_kind(NatKind::Symmetric);
/// let firewall = NatBehaviour::from_kind(NatKind::SymmetricUdpFirewall);
/// assert_eq!(birthday_role(&symmetric, &firewall), Some(BirthdayRole::Hard));
/// assert_eq!(birthday_role(&firewall, &symmetric), Some(BirthdayRole::Easy));
/// assert_eq!(birthday_role(&firewall, &firewall), None);
/// ```
pub fn birthday_role(own: &NatBehaviour, partner: &NatBehaviour) -> Option<BirthdayRole> {
    if strategy(own, partner) != Strategy::Birthday {
        return None;
    }
    let unstable = own.behind_nat != Some(false)
        && matches!(
            own.mapping,
            Some(Mapping::AddressDependent | Mapping::AddressAndPortDependent)
        );
    Some(if unstable {
        BirthdayRole::Hard
    } else {
        BirthdayRole::Easy
    })
}

/// The chance that `probes` distinct random ports of a NAT with `open` mappings among `range` ports hit at
/// least one (the birthday bound of docs/STRATEGY.md): `1 - C(range - open, probes) / C(range, probes)`.
///
/// ```
/// use punch_core::nat::birthday_success;
/// let p = |probes| birthday_success(256, probes, 64_512);
/// assert!((p(174) - 0.50).abs() < 0.01);
/// assert!((p(1_024) - 0.98).abs() < 0.01);
/// ```
pub fn birthday_success(open: u32, probes: u32, range: u32) -> f64 {
    let mut miss = 1.0_f64;
    for k in 0..probes.min(range) {
        let left = f64::from(range - k);
        miss *= (left - f64::from(open)).max(0.0) / left;
    }
    1.0 - miss
}

/// How a pair gets its direct path, in words for tables (`punch sim matrix`, docs/STRATEGY.md): `relay` (no
/// direct path is tried), `birthday` (the hard side opens many sockets, the easy side probes random ports),
/// `prediction` (the stable side pings the sequential symmetric side's next ports),
/// `opener+hold` (both NATs filter by port: TTL-limited openers and held first pings), or `punch` (plain
/// simultaneous pings; every round also sends an opener).
///
/// ```
/// use punch_core::nat::{technique, NatBehaviour, NatKind};
/// let pr = NatBehaviour::from_kind(NatKind::PortRestrictedCone);
/// assert_eq!(technique(&pr, &pr), "opener+hold");
/// assert_eq!(technique(&pr, &NatBehaviour::from_kind(NatKind::Symmetric)), "birthday");
/// let sym = NatBehaviour::from_kind(NatKind::Symmetric);
/// assert_eq!(technique(&sym, &sym), "relay");
/// assert_eq!(technique(&pr, &NatBehaviour::from_kind(NatKind::FullCone)), "punch");
/// ```
pub fn technique(a: &NatBehaviour, b: &NatBehaviour) -> &'static str {
    match strategy(a, b) {
        Strategy::Relay => return "relay",
        Strategy::Birthday => return "birthday",
        Strategy::Punch => {}
    }
    let filters_ports = |n: &NatBehaviour| {
        n.behind_nat != Some(false)
            && matches!(n.filtering, None | Some(Filtering::AddressAndPortDependent))
    };
    let probe = "203.0.113.1:40000".parse().expect("a socket address");
    if !predicted_ports(a, probe).is_empty() || !predicted_ports(b, probe).is_empty() {
        let other_admits = |n: &NatBehaviour| {
            matches!(
                n.filtering,
                Some(Filtering::EndpointIndependent | Filtering::AddressDependent)
            )
        };
        if !(other_admits(a) || other_admits(b)) {
            return "prediction";
        }
    }
    if filters_ports(a) && filters_ports(b) {
        "opener+hold"
    } else {
        "punch"
    }
}

/// How many of a sequential symmetric NAT's next ports the stable side pings ([`predicted_ports`]).
pub const PREDICTION_WINDOW: i32 = 8;

/// Port prediction: the partner's next public addresses if its NAT is symmetric with sequential ports
/// (`public` is where the server saw it; each new destination it sends to gets the next port, `step` apart,
/// other hosts' traffic permitting), for the stable side to ping. Empty for any other NAT.
///
/// ```
/// use punch_core::nat::{predicted_ports, NatBehaviour, NatKind, PortAllocation};
/// let mut seq = NatBehaviour::from_kind(NatKind::Symmetric);
/// seq.allocation = Some(PortAllocation::Sequential { step: 2 });
/// let next = predicted_ports(&seq, "203.0.113.10:40000".parse().unwrap());
/// assert_eq!(next[..2], ["203.0.113.10:40002".parse().unwrap(), "203.0.113.10:40004".parse().unwrap()]);
/// assert!(predicted_ports(&NatBehaviour::from_kind(NatKind::FullCone), "203.0.113.10:1".parse().unwrap()).is_empty());
/// ```
pub fn predicted_ports(
    nat: &NatBehaviour,
    public: std::net::SocketAddr,
) -> Vec<std::net::SocketAddr> {
    let symmetric = matches!(
        nat.mapping,
        Some(Mapping::AddressDependent | Mapping::AddressAndPortDependent)
    );
    let Some(PortAllocation::Sequential { step }) = nat.allocation else {
        return Vec::new();
    };
    if !symmetric || step == 0 {
        return Vec::new();
    }
    (1..=PREDICTION_WINDOW)
        .filter_map(|k| u16::try_from(i32::from(public.port()) + step * k).ok())
        .filter(|p| *p != 0)
        .map(|p| std::net::SocketAddr::new(public.ip(), p))
        .collect()
}

/// The path a pair of peers ends on behind real Linux routers, where the strategy alone does not decide it
/// (`docs/STRATEGY.md`, "Linux conntrack and start skew"; the real-NAT lab checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExpectedPath {
    /// The pair ends on a direct path.
    Direct,
    /// The pair stays on the relay.
    Relay,
    /// Either is right: a race decides.
    Either,
}

impl ExpectedPath {
    /// The lowercase name (`direct`, `relay`, `either`), as `punch strategy` prints it.
    pub fn label(self) -> &'static str {
        match self {
            ExpectedPath::Direct => "direct",
            ExpectedPath::Relay => "relay",
            ExpectedPath::Either => "either",
        }
    }
}

/// How long two peers must stay for the alternating retry rounds to have tried both ping orders (the third
/// round starts 70 s after the first).
pub const RETRY_ROUNDS_SETTLE: Duration = Duration::from_secs(80);

/// The path [`strategy`] leads to between two Linux routers. `firewall_*`: the router drops unsolicited WAN
/// input (else an unsolicited punch packet reserves a conntrack tuple); `stay`: how long both peers stay.
///
/// Relay where the strategy says so; everything else direct in the first round, with or without WAN
/// firewalls, however long the peers stay. Two port-restricted (masquerade) routers without a firewall used to
/// race (an unsolicited first ping reserves a conntrack tuple): the round's TTL-limited opener
/// ([`crate::PeerConfig::opener_ttl`]) and the held first pings settle it, given at least one router between
/// the NATs, as on the internet and in the lab. ([`ExpectedPath::Either`] remains for callers that model
/// peers without openers; `firewall_*` and `stay` no longer change the answer.)
pub fn expected_path(
    a: &NatBehaviour,
    b: &NatBehaviour,
    _firewall_a: bool,
    _firewall_b: bool,
    _stay: Duration,
) -> ExpectedPath {
    if strategy(a, b) == Strategy::Relay {
        return ExpectedPath::Relay;
    }
    ExpectedPath::Direct
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_round_trips_on_the_wire() {
        for kind in [
            NatKind::Open,
            NatKind::FullCone,
            NatKind::RestrictedCone,
            NatKind::PortRestrictedCone,
            NatKind::Symmetric,
            NatKind::SymmetricUdpFirewall,
            NatKind::Unknown,
        ] {
            let mut b = NatBehaviour::from_kind(kind);
            b.allocation = Some(PortAllocation::Sequential { step: -2 });
            assert_eq!(NatBehaviour::decode(&b.encode()), Some(b));
            assert_eq!(b.kind(), kind);
        }
        assert_eq!(NatBehaviour::decode(&[1, 2]), None);
    }

    #[test]
    fn decision_table() {
        use NatKind::*;
        let s = |a, b| strategy(&NatBehaviour::from_kind(a), &NatBehaviour::from_kind(b));
        assert_eq!(s(Symmetric, FullCone), Strategy::Punch);
        assert_eq!(s(RestrictedCone, Symmetric), Strategy::Punch);
        assert_eq!(s(Symmetric, PortRestrictedCone), Strategy::Birthday);
        assert_eq!(s(PortRestrictedCone, Symmetric), Strategy::Birthday);
        assert_eq!(s(Symmetric, Symmetric), Strategy::Relay);
        assert_eq!(s(PortRestrictedCone, PortRestrictedCone), Strategy::Punch);
        assert_eq!(s(Open, Symmetric), Strategy::Punch);
        assert_eq!(s(SymmetricUdpFirewall, Symmetric), Strategy::Birthday);
        assert_eq!(s(Unknown, Unknown), Strategy::Punch);
        assert_eq!(s(Unknown, Symmetric), Strategy::Punch);
        assert_eq!(s(SymmetricUdpFirewall, PortRestrictedCone), Strategy::Punch);
    }
}
