//! `punch sim`: simulated scenarios (filled in when the simulator lands).
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct SimArgs {}

pub fn run(_a: SimArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the simulator is not built yet")
}
