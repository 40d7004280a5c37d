//! Prints the profile matrix until `punch sim matrix` is wired up:
//! `cargo run -p punch-sim --release --example matrix -- [SEEDS] [LOSS] [--json]`.
use punch_sim::matrix::{run_matrix, MatrixConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let nums: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let seeds = nums.first().and_then(|s| s.parse().ok()).unwrap_or(100);
    let loss = nums.get(1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let m = run_matrix(&MatrixConfig {
        seeds,
        loss,
        ..Default::default()
    });
    if json {
        print!("{}", m.to_json());
    } else {
        print!("{}", m.to_table());
        for f in m.failures().iter().take(20) {
            println!("FAIL {f}");
        }
    }
}
