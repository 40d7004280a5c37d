//! The matrix: every pair of NAT profiles, over many seeds, with outcome and timing statistics.
//!
//! Used by `punch sim matrix` and by the property tests. Each run is one [`Scenario`]: a server (two IPs
//! if configured), peer `a` behind profile A, peer `b` behind profile B, each typing `messages` messages
//! at time 0 (queued until a path exists). A run *fails* if a peer ends without a path or a message is not
//! delivered exactly once in order. Runs are independent, so they are spread over threads; results are
//! sorted, so the output does not depend on the thread count.
use crate::clock::Ms;
use crate::profile::Profile;
use crate::scenario::{Knowledge, Outcome, PathKind, Scenario};
use crate::trace::Detail;
use std::fmt::Write as _;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct MatrixConfig {
    /// The NAT profiles to pair, every one with every other and itself.
    pub profiles: Vec<Profile>,
    /// Seeds `first_seed .. first_seed + seeds`.
    pub first_seed: u64,
    /// How many seeds each pair runs with.
    pub seeds: u64,
    /// Round trip between each peer and the server, in milliseconds.
    pub rtt_ms: u64,
    /// Loss per one-way trip. With `loss_varies`, seed `s` uses `loss * (s % 5) / 4` (0, 25, 50, 75, 100 %
    /// of it) so one sweep covers clean and lossy links.
    pub loss: f64,
    /// Vary the loss with the seed (see `loss`).
    pub loss_varies: bool,
    /// Messages each peer types.
    pub messages: usize,
    /// The server has a second IP, so it answers RFC 5780 behaviour tests.
    pub two_ips: bool,
    /// What the peers know about their own NAT.
    pub knowledge: Knowledge,
    /// Worker threads (0: as many as the machine has).
    pub threads: usize,
    /// Run only the pairs this keeps (`None`: every pair), e.g. by [`technique_of`].
    pub only: Option<fn(Profile, Profile) -> bool>,
}

impl Default for MatrixConfig {
    fn default() -> Self {
        MatrixConfig {
            profiles: Profile::matrix_default(),
            first_seed: 1,
            seeds: 20,
            rtt_ms: 40,
            loss: 0.0,
            loss_varies: false,
            messages: 3,
            two_ips: true,
            knowledge: Knowledge::Assume,
            threads: 0,
            only: None,
        }
    }
}

impl MatrixConfig {
    /// Every unordered pair of profiles (including a profile with itself).
    pub fn pairs(&self) -> Vec<(Profile, Profile)> {
        let mut v = Vec::new();
        for (i, &a) in self.profiles.iter().enumerate() {
            for &b in &self.profiles[i..] {
                if self.only.is_none_or(|keep| keep(a, b)) {
                    v.push((a, b));
                }
            }
        }
        v
    }

    /// The loss per one-way trip for `seed` (see `loss` and `loss_varies`).
    pub fn loss_for(&self, seed: u64) -> f64 {
        if self.loss_varies {
            self.loss * (seed % 5) as f64 / 4.0
        } else {
            self.loss
        }
    }

    /// The scenario for one pair and seed (replay it with `.detail(Detail::Full).run()` to see the trace).
    pub fn scenario(&self, a: Profile, b: Profile, seed: u64) -> Scenario {
        let mut s = Scenario::new(seed)
            .host("a", a)
            .host("b", b)
            .link(self.rtt_ms, self.loss_for(seed))
            .knowledge(self.knowledge);
        if self.two_ips {
            s = s.server_with_two_ips().knowledge(self.knowledge);
        }
        for i in 0..self.messages {
            s = s.type_at("a", Duration::ZERO, &format!("a{i}")).type_at(
                "b",
                Duration::ZERO,
                &format!("b{i}"),
            );
        }
        s
    }
}

/// One failed run, with what is needed to replay it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Profile of peer `a`.
    pub a: Profile,
    /// Profile of peer `b`.
    pub b: Profile,
    /// The seed that failed.
    pub seed: u64,
    /// The loss per one-way trip of that run.
    pub loss: f64,
    /// What went wrong, in words.
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} <-> {} seed {} loss {:.0}%: {}",
            self.a,
            self.b,
            self.seed,
            self.loss * 100.0,
            self.reason
        )
    }
}

/// Nearest-rank percentiles of durations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// How many durations there were.
    pub count: usize,
    /// The median (nearest rank), if any.
    pub p50: Option<Duration>,
    /// The 99th percentile (nearest rank), if any.
    pub p99: Option<Duration>,
}

impl Percentiles {
    /// The percentiles of `v`.
    pub fn of(mut v: Vec<Duration>) -> Percentiles {
        v.sort();
        let pick = |p: usize| -> Option<Duration> {
            if v.is_empty() {
                None
            } else {
                let rank = (p * v.len()).div_ceil(100).max(1);
                Some(v[rank - 1])
            }
        };
        Percentiles {
            count: v.len(),
            p50: pick(50),
            p99: pick(99),
        }
    }
}

/// Results for one pair of profiles.
#[derive(Debug, Clone)]
pub struct PairResult {
    /// Profile of peer `a`.
    pub a: Profile,
    /// Profile of peer `b`.
    pub b: Profile,
    /// Runs (one per seed).
    pub runs: usize,
    /// Runs that ended on a direct path.
    pub direct: usize,
    /// Runs that ended on the relay.
    pub relay: usize,
    /// Runs that failed (see `failures`).
    pub failed: usize,
    /// Pairing to first message delivered.
    pub first_message: Percentiles,
    /// Pairing to direct path (direct runs only).
    pub to_direct: Percentiles,
    /// Runs direct within 10 s of pairing (the birthday-probing target of docs/STRATEGY.md).
    pub direct_within_10s: usize,
    /// Punch cost per run, both peers together, averaged: pings (openers, round pings, keepalives, probes).
    pub pings_per_run: f64,
    /// Of those, birthday probes.
    pub probes_per_run: f64,
    /// Extra sockets opened per run (birthday probing's hard side).
    pub sockets_per_run: f64,
    /// Every failed run, for replay.
    pub failures: Vec<Failure>,
}

impl PairResult {
    /// How this pair goes direct, from the two profiles' real behaviours ([`punch_core::nat::technique`]).
    pub fn technique(&self) -> &'static str {
        technique_of(self.a, self.b)
    }

    /// The typical outcome: fail if any run failed, else direct if most runs ended direct, else relay.
    pub fn outcome(&self) -> PathKind {
        if self.failed > 0 {
            PathKind::None
        } else if self.direct * 2 > self.runs {
            PathKind::Direct
        } else {
            PathKind::Relay
        }
    }
}

/// The whole matrix.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// What was run.
    pub config: MatrixConfig,
    /// One result per pair of profiles.
    pub pairs: Vec<PairResult>,
}

/// Judges one outcome: `Ok(path)` or `Err(reason)`.
pub fn judge(o: &Outcome) -> Result<PathKind, String> {
    if let Some(e) = &o.error {
        return Err(format!("simulator stopped: {}", e.message));
    }
    if o.stats.unknown_source > 0 {
        return Err(format!(
            "{} transmits from an unknown source socket",
            o.stats.unknown_source
        ));
    }
    o.exactly_once_in_order()?;
    for p in &o.peers {
        if p.path == PathKind::None {
            return Err(format!("{} has no path (errors {:?})", p.name, p.errors));
        }
    }
    Ok(o.path())
}

struct Run {
    pair: usize,
    seed: u64,
    result: Result<PathKind, String>,
    first_message: Option<Duration>,
    to_direct: Option<Duration>,
    cost: punch_core::PunchCost,
}

fn run_one(cfg: &MatrixConfig, pair: usize, a: Profile, b: Profile, seed: u64) -> Run {
    let o = cfg.scenario(a, b, seed).detail(Detail::Off).run();
    let result = judge(&o);
    Run {
        pair,
        seed,
        first_message: o.pairing_to_first_message(),
        to_direct: o.pairing_to_direct(),
        cost: o
            .peers
            .iter()
            .fold(punch_core::PunchCost::default(), |mut c, p| {
                c.pings += p.cost.pings;
                c.probes += p.cost.probes;
                c.sockets += p.cost.sockets;
                c
            }),
        result,
    }
}

/// How a pair of profiles goes direct, from their real behaviours ([`punch_core::nat::technique`]).
pub fn technique_of(a: Profile, b: Profile) -> &'static str {
    let a = crate::scenario::behaviour_of(a.config().as_ref());
    let b = crate::scenario::behaviour_of(b.config().as_ref());
    punch_core::nat::technique(&a, &b)
}

/// The mean of one cost counter over `runs`.
fn average(runs: &[&Run], f: impl Fn(&punch_core::PunchCost) -> u64) -> f64 {
    if runs.is_empty() {
        return 0.0;
    }
    runs.iter().map(|r| f(&r.cost) as f64).sum::<f64>() / runs.len() as f64
}

/// How many worker threads a [`MatrixConfig::threads`] of `requested` means: that many, or with 0 as many
/// as the machine has ([`run_matrix`] then keeps it within 1..=64).
pub fn worker_threads(requested: usize) -> usize {
    if requested == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        requested
    }
}

/// `f` of every job, on `threads` worker threads ([`worker_threads`]; each takes the next job as it goes), in
/// no particular order (the caller sorts: the results do not depend on the threads).
pub(crate) fn on_workers<J: Sync, R: Send>(
    threads: usize,
    jobs: &[J],
    f: impl Fn(&J) -> R + Sync,
) -> Vec<R> {
    let threads = worker_threads(threads).clamp(1, 64);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        out.push(f(job));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a simulator worker panicked"))
            .collect()
    })
}

/// Runs every pair for every seed.
pub fn run_matrix(cfg: &MatrixConfig) -> Matrix {
    let pairs = cfg.pairs();
    let jobs: Vec<(usize, u64)> = (0..pairs.len())
        .flat_map(|p| (cfg.first_seed..cfg.first_seed + cfg.seeds).map(move |s| (p, s)))
        .collect();
    let mut runs: Vec<Run> = on_workers(cfg.threads, &jobs, |&(p, seed)| {
        let (a, b) = pairs[p];
        run_one(cfg, p, a, b, seed)
    });
    runs.sort_by_key(|r| (r.pair, r.seed));
    let mut results = Vec::new();
    for (p, &(a, b)) in pairs.iter().enumerate() {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.pair == p).collect();
        let count = |k: PathKind| {
            mine.iter()
                .filter(|r| r.result.as_ref().ok() == Some(&k))
                .count()
        };
        let failures: Vec<Failure> = mine
            .iter()
            .filter_map(|r| match &r.result {
                Err(reason) => Some(Failure {
                    a,
                    b,
                    seed: r.seed,
                    loss: cfg.loss_for(r.seed),
                    reason: reason.clone(),
                }),
                Ok(_) => None,
            })
            .collect();
        results.push(PairResult {
            a,
            b,
            runs: mine.len(),
            direct: count(PathKind::Direct),
            relay: count(PathKind::Relay),
            failed: failures.len(),
            first_message: Percentiles::of(mine.iter().filter_map(|r| r.first_message).collect()),
            to_direct: Percentiles::of(
                mine.iter()
                    .filter(|r| r.result == Ok(PathKind::Direct))
                    .filter_map(|r| r.to_direct)
                    .collect(),
            ),
            direct_within_10s: mine
                .iter()
                .filter(|r| r.result == Ok(PathKind::Direct))
                .filter(|r| r.to_direct.is_some_and(|d| d <= Duration::from_secs(10)))
                .count(),
            pings_per_run: average(&mine, |c| c.pings),
            probes_per_run: average(&mine, |c| c.probes),
            sockets_per_run: average(&mine, |c| c.sockets),
            failures,
        });
    }
    Matrix {
        config: cfg.clone(),
        pairs: results,
    }
}

impl Matrix {
    /// The round trip between each peer and the server (`config.rtt_ms`).
    pub fn rtt(&self) -> Duration {
        Duration::from_millis(self.config.rtt_ms)
    }

    /// All failures, for replay.
    pub fn failures(&self) -> Vec<&Failure> {
        self.pairs.iter().flat_map(|p| p.failures.iter()).collect()
    }

    fn rtts(&self, d: Option<Duration>) -> String {
        match d {
            Some(d) if self.config.rtt_ms > 0 => format!(
                "{:.1}",
                d.as_secs_f64() * 1000.0 / self.config.rtt_ms as f64
            ),
            _ => "-".into(),
        }
    }

    /// A fixed-width text table, one row per pair, then a summary line.
    pub fn to_table(&self) -> String {
        let ms = |d: Option<Duration>| d.map(|d| Ms(d).to_string()).unwrap_or_else(|| "-".into());
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<22} {:<22} {:>7} {:<11} {:>6} {:>5} {:>4}  {:>11} {:>11} {:>6} {:>6}  {:>11} {:>11} {:>6} {:>6}",
            "A", "B", "outcome", "technique", "direct", "relay", "fail", "msg p50", "msg p99", "RTTs", "RTTs", "direct p50", "direct p99", "RTTs", "RTTs"
        );
        for p in &self.pairs {
            let _ = writeln!(
                s,
                "{:<22} {:<22} {:>7} {:<11} {:>6} {:>5} {:>4}  {:>11} {:>11} {:>6} {:>6}  {:>11} {:>11} {:>6} {:>6}",
                p.a.to_string(),
                p.b.to_string(),
                p.outcome().label(),
                p.technique(),
                p.direct,
                p.relay,
                p.failed,
                ms(p.first_message.p50),
                ms(p.first_message.p99),
                self.rtts(p.first_message.p50),
                self.rtts(p.first_message.p99),
                ms(p.to_direct.p50),
                ms(p.to_direct.p99),
                self.rtts(p.to_direct.p50),
                self.rtts(p.to_direct.p99),
            );
        }
        let _ = writeln!(s, "{}", self.summary());
        s
    }

    /// One line: how many pairs and runs ended direct, relay, failed.
    pub fn summary(&self) -> String {
        let runs: usize = self.pairs.iter().map(|p| p.runs).sum();
        let direct: usize = self.pairs.iter().map(|p| p.direct).sum();
        let relay: usize = self.pairs.iter().map(|p| p.relay).sum();
        let failed: usize = self.pairs.iter().map(|p| p.failed).sum();
        let by = |k: PathKind| self.pairs.iter().filter(|p| p.outcome() == k).count();
        format!(
            "{} pairs x {} seeds (rtt {} ms, loss {:.0}%{}): pairs direct {}, relay {}, fail {}; runs {} = direct {} + relay {} + failed {}",
            self.pairs.len(),
            self.config.seeds,
            self.config.rtt_ms,
            self.config.loss * 100.0,
            if self.config.loss_varies { " max" } else { "" },
            by(PathKind::Direct),
            by(PathKind::Relay),
            by(PathKind::None),
            runs,
            direct,
            relay,
            failed
        )
    }

    /// The matrix as JSON (hand-written; durations in milliseconds, `null` when absent).
    pub fn to_json(&self) -> String {
        let num = json_ms;
        let rtts = |d: Option<Duration>| match (d, self.config.rtt_ms) {
            (Some(d), r) if r > 0 => format!("{:.2}", d.as_secs_f64() * 1000.0 / r as f64),
            _ => "null".into(),
        };
        let mut s = String::from("{\n");
        let _ = writeln!(
            s,
            "  \"seeds\": {}, \"first_seed\": {}, \"rtt_ms\": {}, \"loss\": {}, \"loss_varies\": {}, \"messages\": {},",
            self.config.seeds, self.config.first_seed, self.config.rtt_ms, self.config.loss, self.config.loss_varies, self.config.messages
        );
        s.push_str("  \"pairs\": [\n");
        for (i, p) in self.pairs.iter().enumerate() {
            let seeds: Vec<String> = p.failures.iter().map(|f| f.seed.to_string()).collect();
            let _ = write!(
                s,
                "    {{\"a\": \"{}\", \"b\": \"{}\", \"outcome\": \"{}\", \"technique\": \"{}\", \"runs\": {}, \"direct\": {}, \"relay\": {}, \"failed\": {}, \
\"first_message_ms\": {{\"p50\": {}, \"p99\": {}}}, \"first_message_rtts\": {{\"p50\": {}, \"p99\": {}}}, \
\"direct_ms\": {{\"p50\": {}, \"p99\": {}}}, \"direct_rtts\": {{\"p50\": {}, \"p99\": {}}}, \"direct_within_10s\": {}, \"cost_per_run\": {{\"pings\": {:.1}, \"probes\": {:.1}, \"sockets\": {:.1}}}, \"failing_seeds\": [{}]}}",
                p.a,
                p.b,
                p.outcome().label(),
                p.technique(),
                p.runs,
                p.direct,
                p.relay,
                p.failed,
                num(p.first_message.p50),
                num(p.first_message.p99),
                rtts(p.first_message.p50),
                rtts(p.first_message.p99),
                num(p.to_direct.p50),
                num(p.to_direct.p99),
                rtts(p.to_direct.p50),
                rtts(p.to_direct.p99),
                p.direct_within_10s,
                p.pings_per_run,
                p.probes_per_run,
                p.sockets_per_run,
                seeds.join(", ")
            );
            s.push_str(json_separator(i, self.pairs.len()));
        }
        let _ = writeln!(s, "  ],\n  \"summary\": \"{}\"\n}}", self.summary());
        s
    }
}

/// A duration in milliseconds for the hand-written JSON (`null` when absent).
pub(crate) fn json_ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.3}", d.as_secs_f64() * 1000.0),
        None => "null".into(),
    }
}

/// What follows element `i` of `len` in a hand-written JSON array, one element a line.
pub(crate) fn json_separator(i: usize, len: usize) -> &'static str {
    if i + 1 < len {
        ",\n"
    } else {
        "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(v);
        assert_eq!(p.p50, Some(Duration::from_millis(50)));
        assert_eq!(p.p99, Some(Duration::from_millis(99)));
        assert_eq!(Percentiles::of(vec![]).p50, None);
        assert_eq!(
            Percentiles::of(vec![Duration::from_millis(3)]).p99,
            Some(Duration::from_millis(3))
        );
    }
}
