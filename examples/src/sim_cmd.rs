//! `punch sim`: simulated scenarios in virtual time (the `punch-sim` crate drives the real core machines).
//!
//! * `punch sim --nat-a KIND --nat-b KIND [--rtt MS] [--loss P] [--seed N] [--relay-only] [--json]`: one
//!   scenario (a server with two IPs, peer `a` behind KIND-a, peer `b` behind KIND-b, each typing a few
//!   messages), printed as a condensed timeline plus a summary.
//! * `punch sim matrix [--rtt MS] [--loss P] [--seeds N] [--all] [--paths] [--threads N] [--json]`: every pair
//!   of NAT profiles over many seeds, as a table (or JSON); with `--paths`, then the path suite
//!   (`punch_sim::paths`: same NAT, hairpinning, flush, rebinding, mapping timeout, dual stack) over the same
//!   seeds, as a second table (or the JSON's `paths` array); exits 1 if any run failed.
//!
//! A single scenario is exactly the matrix's run for that pair and seed, so a failing matrix seed can be
//! replayed with `punch sim --nat-a A --nat-b B --seed S` (the matrix prints that command).
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use punch_sim::matrix::{judge, run_matrix, MatrixConfig};
use punch_sim::paths::{run_paths, PathsConfig};
use punch_sim::{Detail, Knowledge, Ms, Outcome, PathKind, Profile};

/// Messages each peer types (at time 0, queued until a path exists), as in the matrix.
const MESSAGES: usize = 3;
/// Repetitions of a trace line within this window fold into one line of the timeline.
const CONDENSE_WINDOW: Duration = Duration::from_secs(5);

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    cmd: Option<SimCmd>,
    #[command(flatten)]
    one: OneArgs,
}

#[derive(Subcommand)]
enum SimCmd {
    /// Every pair of NAT profiles over many seeds: outcome counts and timing percentiles per pair.
    Matrix(MatrixArgs),
}

/// Link and knowledge settings shared by both forms.
#[derive(Args, Clone)]
struct LinkArgs {
    /// Round-trip time of every path (host to host, host to server), in milliseconds (> 0).
    #[arg(long, value_name = "MS", default_value_t = 40, value_parser = parse_rtt)]
    rtt: u64,
    /// Probability that a one-way trip is lost, in [0, 0.5].
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_loss)]
    loss: f64,
    /// What peers know about their own NAT: assume (announce the simulated NAT's true behaviour without
    /// testing), detect (run the behaviour tests against the two-IP server), or unknown (announce nothing).
    #[arg(long, value_enum, default_value = "assume")]
    knowledge: KnowledgeArg,
}

#[derive(Args)]
struct OneArgs {
    /// NAT profile of peer a (e.g. full-cone, port-restricted, symmetric, port-restricted-linux).
    #[arg(long, value_name = "KIND", value_parser = parse_profile)]
    nat_a: Option<Profile>,
    /// NAT profile of peer b.
    #[arg(long, value_name = "KIND", value_parser = parse_profile)]
    nat_b: Option<Profile>,
    /// Seed of the run (same seed, same run, same trace).
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Both peers use the server's relay only (never try a direct path).
    #[arg(long)]
    relay_only: bool,
    /// Print every trace line instead of folding repetitions (retransmissions, punch pings).
    #[arg(long)]
    full_trace: bool,
    /// Print one JSON object: the summary plus the timeline lines as an array.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    link: LinkArgs,
}

#[derive(Args)]
struct MatrixArgs {
    /// Seeds per pair (>= 1).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = parse_seeds)]
    seeds: u64,
    /// Run all profiles (every kind with its -linux, -fw and -linux-fw variants), not just the default set.
    #[arg(long)]
    all: bool,
    /// Worker threads (0: one per CPU). The results do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Also run the path suite (same NAT, hairpin on/off, NAT flush, rebinding, mapping timeout, dual stack)
    /// over the same seeds: a second table, or `paths` in the JSON (docs/JSON.md).
    #[arg(long)]
    paths: bool,
    /// Print the matrix as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    link: LinkArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum KnowledgeArg {
    Assume,
    Detect,
    Unknown,
}

impl From<KnowledgeArg> for Knowledge {
    fn from(k: KnowledgeArg) -> Knowledge {
        match k {
            KnowledgeArg::Assume => Knowledge::Assume,
            KnowledgeArg::Detect => Knowledge::Detect,
            KnowledgeArg::Unknown => Knowledge::Unknown,
        }
    }
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse::<Profile>().map_err(|e| e.to_string())
}

fn parse_rtt(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("the round-trip time must be > 0 ms".into()),
        Ok(v) if v > 600_000 => Err("the round-trip time must be at most 600000 ms".into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("'{s}' is not a whole number of milliseconds")),
    }
}

fn parse_loss(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=0.5).contains(&p) => Ok(p),
        Ok(_) => Err(format!("the loss must be in [0, 0.5], got {s}")),
        Err(_) => Err(format!("'{s}' is not a number (e.g. 0.05 for 5 %)")),
    }
}

fn parse_seeds(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("--seeds must be >= 1".into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

pub fn run(a: SimArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        Some(SimCmd::Matrix(m)) => matrix(m),
        None => one(a.one),
    }
}

fn config(link: &LinkArgs) -> MatrixConfig {
    MatrixConfig {
        rtt_ms: link.rtt,
        loss: link.loss,
        knowledge: link.knowledge.into(),
        messages: MESSAGES,
        two_ips: true,
        ..MatrixConfig::default()
    }
}

/// `d` in round trips, one decimal.
pub fn rtts(d: Duration, rtt_ms: u64) -> f64 {
    (d.as_secs_f64() * 1000.0 / rtt_ms as f64 * 10.0).round() / 10.0
}

pub fn ms_f(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn one(a: OneArgs) -> anyhow::Result<ExitCode> {
    let (nat_a, nat_b) = match (a.nat_a, a.nat_b) {
        (Some(x), Some(y)) => (x, y),
        (x, y) => {
            let missing: Vec<&str> = [("--nat-a", x.is_none()), ("--nat-b", y.is_none())]
                .iter()
                .filter(|m| m.1)
                .map(|m| m.0)
                .collect();
            anyhow::bail!(
                "`punch sim` needs {} (one scenario), or the `matrix` subcommand. \
                 Example: punch sim --nat-a full-cone --nat-b symmetric. Valid profiles: {}",
                missing.join(" and "),
                Profile::valid_names()
            );
        }
    };
    let cfg = config(&a.link);
    let mut s = cfg.scenario(nat_a, nat_b, a.seed).detail(Detail::Full);
    if a.relay_only {
        s = s.relay_only("a").relay_only("b");
    }
    let o = s.run();
    let verdict = judge(&o);
    let timeline: Vec<String> = if a.full_trace {
        o.trace.lines().iter().map(|l| l.to_string()).collect()
    } else {
        o.trace
            .condensed(CONDENSE_WINDOW)
            .lines()
            .map(String::from)
            .collect()
    };
    let outcome = match &verdict {
        Ok(k) => *k,
        Err(_) => PathKind::None,
    };
    let delivered = o.exactly_once_in_order();
    if a.json {
        let v = crate::output::sim_one_json(&crate::output::SimOne {
            nat_a,
            nat_b,
            seed: a.seed,
            relay_only: a.relay_only,
            full_trace: a.full_trace,
            cfg: &cfg,
            outcome: &o,
            kind: outcome,
            verdict: &verdict,
            delivered: &delivered,
            timeline: &timeline,
        });
        crate::output::emit(v);
    } else {
        print_one(
            &a, nat_a, nat_b, &cfg, &o, &timeline, outcome, &verdict, &delivered,
        );
    }
    Ok(if verdict.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[allow(clippy::too_many_arguments)]
fn print_one(
    a: &OneArgs,
    nat_a: Profile,
    nat_b: Profile,
    cfg: &MatrixConfig,
    o: &Outcome,
    timeline: &[String],
    outcome: PathKind,
    verdict: &Result<PathKind, String>,
    delivered: &Result<(), String>,
) {
    let rtt = cfg.rtt_ms;
    println!(
        "scenario: a behind {nat_a}, b behind {nat_b}; server 198.51.100.1:3478 + 198.51.100.2:3479; \
         rtt {rtt} ms, loss {}%, seed {}{}; each peer types {MESSAGES} messages at 0 ms",
        cfg.loss * 100.0,
        a.seed,
        if a.relay_only { ", relay only" } else { "" }
    );
    println!(
        "timeline ({}virtual time since start):",
        if a.full_trace {
            ""
        } else {
            "repeats within 5 s folded into one line, "
        }
    );
    for l in timeline {
        println!("{l}");
    }
    println!();
    println!("summary:");
    for p in &o.peers {
        println!(
            "  {}: {} -> {}, received {:?}{}",
            p.name,
            p.nat,
            p.path.label(),
            p.received,
            if p.errors.is_empty() {
                String::new()
            } else {
                format!(", errors {:?}", p.errors)
            }
        );
    }
    println!("  outcome: {}", outcome.label());
    if let Err(reason) = verdict {
        println!("  failure: {reason}");
    }
    let t = |d: Option<Duration>| match d {
        Some(d) => format!("{} ({:.1} RTTs)", Ms(d), rtts(d, rtt)),
        None => "-".into(),
    };
    println!(
        "  paired at: {}",
        o.paired_at()
            .map(|d| Ms(d).to_string())
            .unwrap_or_else(|| "never".into())
    );
    println!(
        "  pairing -> first message delivered: {}",
        t(o.pairing_to_first_message())
    );
    println!("  pairing -> direct path: {}", t(o.pairing_to_direct()));
    match delivered {
        Ok(()) => println!("  messages delivered exactly once in order: yes"),
        Err(e) => println!("  messages delivered exactly once in order: NO ({e})"),
    }
    println!(
        "  run ended at {} virtual ({} simulator steps)",
        Ms(o.ended_at),
        o.stats.steps
    );
}

fn matrix(m: MatrixArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = config(&m.link);
    cfg.seeds = m.seeds;
    cfg.threads = m.threads;
    if m.all {
        cfg.profiles = Profile::all();
    }
    // The worker threads `run_matrix` uses (it clamps them to 1..=64).
    let threads = punch_sim::worker_threads(m.threads).clamp(1, 64);
    let runs = cfg.pairs().len() as u64 * cfg.seeds;
    let start = Instant::now();
    let mx = run_matrix(&cfg);
    let took = start.elapsed();
    let failures = mx.failures();
    let suite_start = Instant::now();
    let suite = m.paths.then(|| {
        run_paths(&PathsConfig {
            first_seed: cfg.first_seed,
            seeds: cfg.seeds,
            rtt_ms: cfg.rtt_ms,
            loss: cfg.loss,
            threads: cfg.threads,
        })
    });
    let suite_took = suite_start.elapsed();
    let path_failures = suite.as_ref().map_or(0, |s| s.failures().len());
    if m.json {
        let mut v: serde_json::Value =
            serde_json::from_str(&mx.to_json()).expect("the matrix is JSON");
        if let Some(s) = &suite {
            v["paths"] = serde_json::from_str(&s.to_json()).expect("the path suite is JSON");
        }
        crate::output::emit(v);
    } else {
        print!("{}", mx.to_table());
        for f in failures.iter().take(20) {
            println!(
                "FAIL {f}\n     replay: punch sim --nat-a {} --nat-b {} --seed {} --rtt {} --loss {}",
                f.a, f.b, f.seed, cfg.rtt_ms, f.loss
            );
        }
        if failures.len() > 20 {
            println!("... and {} more failed runs", failures.len() - 20);
        }
        if let Some(s) = &suite {
            println!();
            print!("{}", s.to_table());
            for c in s.unexpected() {
                println!(
                    "UNEXPECTED {}: ended {} (expected {})",
                    c.name,
                    c.path().label(),
                    c.expected_label()
                );
            }
            for (case, seed, reason) in s.failures().iter().take(20) {
                println!("FAIL path case {case} seed {seed}: {reason}");
            }
        }
    }
    eprintln!(
        "matrix: {runs} scenarios in {:.2} s = {:.0} scenarios/s ({} threads)",
        took.as_secs_f64(),
        runs as f64 / took.as_secs_f64().max(1e-9),
        threads
    );
    if let Some(s) = &suite {
        let runs: usize = s.cases.iter().map(|c| c.runs).sum();
        eprintln!(
            "path suite: {runs} scenarios in {:.2} s",
            suite_took.as_secs_f64()
        );
    }
    Ok(if failures.is_empty() && path_failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
