//! Named NAT profiles, as used by scenarios and by `punch sim --nat-a KIND --nat-b KIND`.
//!
//! | name | what it is |
//! |---|---|
//! | `open` | no NAT: the host has a public address |
//! | `firewall` | no translation, address-and-port-dependent filtering (a "symmetric UDP firewall") |
//! | `full-cone` | EIM + EIF, ports preserved |
//! | `restricted` | EIM + ADF, ports preserved |
//! | `port-restricted` | EIM + APDF, ports preserved |
//! | `symmetric-adm` | ADM + ADF, random ports |
//! | `symmetric` | APDM + APDF, random ports |
//! | `symmetric-seq` | APDM + APDF, sequential ports (step 1) |
//!
//! Every NAT kind also comes with suffixes: `-linux` adds the Linux conntrack unreplied-entry behaviour
//! (e.g. `port-restricted-linux`), `-fw` adds a home-router WAN firewall that drops unsolicited inbound
//! datagrams without a trace (e.g. `symmetric-fw`).
use crate::nat::{NatConfig, PortAlloc};
use punch_core::nat::{Filtering, Mapping};
use std::fmt;
use std::str::FromStr;

/// The basic kinds of box in front of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Nat {
    /// No box: the host is on the public network.
    Open,
    /// No translation, only a filter for unsolicited inbound datagrams (address and port dependent).
    UdpFirewall,
    /// EIM + EIF, ports preserved.
    FullCone,
    /// EIM + ADF, ports preserved.
    Restricted,
    /// EIM + APDF, ports preserved (Linux `masquerade`).
    PortRestricted,
    /// Address-dependent mapping and filtering, random ports.
    SymmetricAdm,
    /// Address-and-port-dependent mapping and filtering, random ports (`masquerade random`).
    Symmetric,
    /// Address-and-port-dependent mapping and filtering, sequential ports.
    SymmetricSeq,
}

impl Nat {
    /// Every kind, in matrix order.
    pub const ALL: [Nat; 8] = [
        Nat::Open,
        Nat::UdpFirewall,
        Nat::FullCone,
        Nat::Restricted,
        Nat::PortRestricted,
        Nat::SymmetricAdm,
        Nat::Symmetric,
        Nat::SymmetricSeq,
    ];

    /// The profile name (`port-restricted`, `symmetric-seq`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Nat::Open => "open",
            Nat::UdpFirewall => "firewall",
            Nat::FullCone => "full-cone",
            Nat::Restricted => "restricted",
            Nat::PortRestricted => "port-restricted",
            Nat::SymmetricAdm => "symmetric-adm",
            Nat::Symmetric => "symmetric",
            Nat::SymmetricSeq => "symmetric-seq",
        }
    }

    /// Whether the box translates addresses (so `-linux` and `-fw` variants make sense).
    pub fn translates(self) -> bool {
        !matches!(self, Nat::Open | Nat::UdpFirewall)
    }
}

/// A NAT kind plus the Linux-conntrack and WAN-firewall flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Profile {
    /// The kind of box.
    pub nat: Nat,
    /// The Linux conntrack unreplied-entry port reservation (`-linux`).
    pub linux: bool,
    /// A WAN input firewall that drops unsolicited inbound datagrams without state (`-fw`).
    pub firewall: bool,
}

impl From<Nat> for Profile {
    fn from(nat: Nat) -> Profile {
        Profile {
            nat,
            linux: false,
            firewall: false,
        }
    }
}

impl Profile {
    /// The same profile with the Linux conntrack behaviour (`-linux`).
    pub fn linux(self) -> Profile {
        Profile {
            linux: true,
            ..self
        }
    }
    /// The same profile with a WAN input firewall (`-fw`).
    pub fn firewall(self) -> Profile {
        Profile {
            firewall: true,
            ..self
        }
    }

    /// The NAT box configuration, or `None` for a host directly on the public network.
    pub fn config(&self) -> Option<NatConfig> {
        let cone = |f| NatConfig::new(Mapping::EndpointIndependent, f, PortAlloc::Preserve);
        let mut cfg = match self.nat {
            Nat::Open => return None,
            Nat::UdpFirewall => NatConfig::udp_firewall(),
            Nat::FullCone => cone(Filtering::EndpointIndependent),
            Nat::Restricted => cone(Filtering::AddressDependent),
            Nat::PortRestricted => cone(Filtering::AddressAndPortDependent),
            Nat::SymmetricAdm => NatConfig::new(
                Mapping::AddressDependent,
                Filtering::AddressDependent,
                PortAlloc::Random,
            ),
            Nat::Symmetric => NatConfig::new(
                Mapping::AddressAndPortDependent,
                Filtering::AddressAndPortDependent,
                PortAlloc::Random,
            ),
            Nat::SymmetricSeq => NatConfig::new(
                Mapping::AddressAndPortDependent,
                Filtering::AddressAndPortDependent,
                PortAlloc::Sequential {
                    step: 1,
                    other_traffic: 0,
                },
            ),
        };
        cfg.linux_conntrack = self.linux;
        cfg.wan_firewall = self.firewall;
        Some(cfg)
    }

    /// Every valid profile: each kind, and for translating kinds also `-linux`, `-fw` and `-linux-fw`.
    pub fn all() -> Vec<Profile> {
        let mut v = Vec::new();
        for nat in Nat::ALL {
            let p = Profile::from(nat);
            v.push(p);
            if nat.translates() {
                v.push(p.linux());
                v.push(p.firewall());
                v.push(p.linux().firewall());
            }
        }
        v
    }

    /// The profiles the matrix runs by default: the eight kinds plus the Linux variants of the cones and
    /// symmetric NATs that differ from the plain ones in practice.
    pub fn matrix_default() -> Vec<Profile> {
        let mut v: Vec<Profile> = Nat::ALL.iter().map(|&n| Profile::from(n)).collect();
        v.push(Profile::from(Nat::PortRestricted).linux());
        v.push(Profile::from(Nat::Restricted).linux());
        v.push(Profile::from(Nat::Symmetric).linux());
        v
    }

    /// All valid names, comma-separated (for error messages and `--help`).
    pub fn valid_names() -> String {
        Profile::all()
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.nat.name().to_string();
        if self.linux {
            s.push_str("-linux");
        }
        if self.firewall {
            s.push_str("-fw");
        }
        f.pad(&s)
    }
}

/// A profile name that is not one of [`Profile::all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProfile(pub String);

impl fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown NAT profile `{}`; valid profiles: {}",
            self.0,
            Profile::valid_names()
        )
    }
}

impl std::error::Error for UnknownProfile {}

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Profile, UnknownProfile> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let aliases = [
            ("none", "open"),
            ("public", "open"),
            ("udp-firewall", "firewall"),
            ("restricted-cone", "restricted"),
            ("port-restricted-cone", "port-restricted"),
            ("fullcone", "full-cone"),
        ];
        let norm = aliases
            .iter()
            .find(|(a, _)| *a == norm)
            .map(|(_, n)| n.to_string())
            .unwrap_or(norm);
        Profile::all()
            .into_iter()
            .find(|p| p.to_string() == norm)
            .ok_or_else(|| UnknownProfile(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Profile::all() {
            assert_eq!(p.to_string().parse::<Profile>(), Ok(p));
        }
        assert_eq!(
            "Port_Restricted_Cone".parse::<Profile>(),
            Ok(Profile::from(Nat::PortRestricted))
        );
        assert_eq!(
            "symmetric-linux".parse::<Profile>(),
            Ok(Profile::from(Nat::Symmetric).linux())
        );
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let e = "cone".parse::<Profile>().unwrap_err().to_string();
        assert!(e.contains("unknown NAT profile `cone`"), "{e}");
        assert!(e.contains("port-restricted-linux"), "{e}");
        assert!(e.contains("symmetric-seq"), "{e}");
    }
}
