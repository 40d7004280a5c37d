//! `punch strategy KIND_A KIND_B [--fw-a yes|no] [--fw-b yes|no] [--stay SECS] [--json]`: what the decision
//! table (`punch_core::nat::strategy`) says for two NAT kinds, and the path the pair should end on behind
//! real Linux routers (`punch_core::nat::expected_path`). The real-NAT lab asks this for every chat scenario.
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use punch_core::nat::{expected_path, strategy, NatBehaviour, NatKind};

#[derive(clap::Args)]
#[command(
    after_help = "Prints the expected path on stdout: direct, relay, or either (a race decides: two \
port-restricted Linux routers, one without a WAN firewall; see docs/STRATEGY.md). With --json: \
{\"strategy\": \"punch\"|\"relay\", \"path\": \"direct\"|\"relay\"|\"either\"}.\n\n\
Example: punch strategy port-restricted port-restricted --fw-a yes --fw-b no --stay 95"
)]
pub struct StrategyArgs {
    /// NAT kind of peer A (the lab's names).
    #[arg(value_enum)]
    kind_a: Kind,
    /// NAT kind of peer B.
    #[arg(value_enum)]
    kind_b: Kind,
    /// Whether A's router drops unsolicited WAN input (a home-router firewall).
    #[arg(long, value_enum, default_value = "no")]
    fw_a: YesNo,
    /// Whether B's router drops unsolicited WAN input.
    #[arg(long, value_enum, default_value = "no")]
    fw_b: YesNo,
    /// How long both peers stay after their lines, in seconds (long runs live through the retry rounds).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    stay: u64,
    /// Print one JSON object with the strategy and the path.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Open,
    FullCone,
    Restricted,
    PortRestricted,
    Symmetric,
    /// No NAT, a UDP firewall that filters by address and port.
    Firewall,
    Unknown,
}

impl From<Kind> for NatKind {
    fn from(k: Kind) -> NatKind {
        match k {
            Kind::Open => NatKind::Open,
            Kind::FullCone => NatKind::FullCone,
            Kind::Restricted => NatKind::RestrictedCone,
            Kind::PortRestricted => NatKind::PortRestrictedCone,
            Kind::Symmetric => NatKind::Symmetric,
            Kind::Firewall => NatKind::SymmetricUdpFirewall,
            Kind::Unknown => NatKind::Unknown,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum YesNo {
    Yes,
    No,
}

pub fn run(a: StrategyArgs) -> anyhow::Result<ExitCode> {
    let na = NatBehaviour::from_kind(a.kind_a.into());
    let nb = NatBehaviour::from_kind(a.kind_b.into());
    let s = strategy(&na, &nb);
    let path = expected_path(
        &na,
        &nb,
        a.fw_a == YesNo::Yes,
        a.fw_b == YesNo::Yes,
        Duration::from_secs(a.stay),
    );
    if a.json {
        crate::output::emit(crate::output::strategy_json(s, path));
    } else {
        println!("{}", path.label());
    }
    Ok(ExitCode::SUCCESS)
}
