//! `punch`: UDP NAT traversal and peer-to-peer chat.
//!
//! Exit codes: 0 success; 1 messages not delivered / peer gone / runtime failure; 2 bad usage, bad address,
//! port in use or server unreachable; 3 the server refused us (pool full); 130 interrupted.
mod bench;
mod chat;
mod demo;
mod driver;
mod output;
mod screen;
mod sim_cmd;
mod strategy_cmd;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use driver::Runtime;
use rand::RngCore;

#[derive(Parser)]
#[command(
    name = "punch",
    version,
    about = "UDP NAT traversal and peer-to-peer chat"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log lines on stderr (-v: debug, -vv: trace); RUST_LOG, when set, wins.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Fewer log lines on stderr (-q: warnings and errors only, -qq: errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    quiet: u8,
}

/// The log level the -v/-q counts ask for (`info` by default).
fn log_level(verbose: u8, quiet: u8) -> &'static str {
    match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v > 1 => "trace",
        (_, 1) => "warn",
        _ => "error",
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the rendezvous + STUN server.
    Server(ServerArgs),
    /// Detect this host's NAT behaviour (RFC 4787 terms and the classic name).
    NatType(NatTypeArgs),
    /// Chat with whoever joins the same pool: lines on stdin are sent, messages arrive on stdout.
    Chat(chat::ChatArgs),
    /// In one process: a server and two peers on loopback chat directly, then through the relay.
    Demo(demo::DemoArgs),
    /// Run simulated scenarios (virtual time, simulated NATs).
    Sim(sim_cmd::SimArgs),
    /// The decision table for two NAT kinds: the expected path (direct, relay, either) behind Linux routers.
    Strategy(strategy_cmd::StrategyArgs),
    /// Benchmarks over loopback sockets: `punch bench relay` (punch vs a plain forwarder).
    Bench(bench::BenchArgs),
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Primary address to listen on.
    #[arg(long, default_value = "0.0.0.0:3478", value_parser = parse_addr)]
    listen: SocketAddr,
    /// Alternate IP for NAT behaviour tests (RFC 5780): the server then listens on 4 sockets.
    #[arg(long)]
    alt_ip: Option<std::net::IpAddr>,
    /// Alternate port (default: the primary port + 1).
    #[arg(long, requires = "alt_ip")]
    alt_port: Option<u16>,
    /// Print events as JSON lines on stdout.
    #[arg(long)]
    json: bool,
    /// The async runtime that drives the sockets (both run the same core).
    #[arg(long, value_enum, default_value = "tokio")]
    runtime: Runtime,
    /// Most members registered at once (more get 503 "server full"); a waiting member costs at most 256 bytes.
    /// Default: what a quarter of the available memory holds at 256 bytes a member, at least 1,000,000.
    #[arg(long, value_parser = parse_max_members)]
    max_members: Option<usize>,
    /// Most members registered from one source IP (more get 486).
    #[arg(long, default_value_t = 64)]
    max_members_per_ip: usize,
    /// Register requests per second and source IP (token bucket rate).
    #[arg(long, default_value_t = 20)]
    register_rate: u32,
    /// Register requests a source IP may send in a burst.
    #[arg(long, default_value_t = 40)]
    register_burst: u32,
    /// Binding requests (RFC 5389 and RFC 3489) per second and source IP.
    #[arg(long, default_value_t = 10)]
    binding_rate: u32,
    /// Binding requests a source IP may send in a burst.
    #[arg(long, default_value_t = 40)]
    binding_burst: u32,
    /// Relayed packets per second and source IP.
    #[arg(long, default_value_t = 200)]
    relay_rate: u32,
    /// Relayed packets a source IP may send in a burst.
    #[arg(long, default_value_t = 400)]
    relay_burst: u32,
    /// Relayed DATA bytes per second and source IP.
    #[arg(long, default_value_t = 131_072)]
    relay_bytes_rate: u32,
    /// Relayed DATA bytes a source IP may send in a burst.
    #[arg(long, default_value_t = 262_144)]
    relay_bytes_burst: u32,
    /// Most source IPs whose rate-limit state is kept (least recently seen IPs without members go first).
    #[arg(long, default_value_t = 65_536)]
    max_ip_entries: usize,
}

#[derive(clap::Args)]
struct NatTypeArgs {
    /// The punch (or any RFC 5780 STUN) server, `HOST[:PORT]` (port 3478 by default).
    #[arg(long, env = "PUNCH_SERVER", default_value = "127.0.0.1:3478", value_parser = parse_addr)]
    server: SocketAddr,
    /// Local address to bind (the socket you later use is the one that matters).
    #[arg(long, value_parser = parse_addr)]
    bind: Option<SocketAddr>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    /// The async runtime that drives the socket (both run the same core).
    #[arg(long, value_enum, default_value = "tokio")]
    runtime: Runtime,
}

/// The port punch servers listen on unless told otherwise (the STUN port).
pub const DEFAULT_PORT: u16 = 3478;

/// Parses `HOST[:PORT]` (port 3478 when omitted; names are resolved, the first address wins). IPv6 literals
/// go in brackets when a port follows: `[2001:db8::1]:3478`.
/// `--max-members`: a whole number, at least 1.
fn parse_max_members(s: &str) -> Result<usize, String> {
    match s.trim().replace('_', "").parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 would refuse every client)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number of members")),
    }
}

/// The default member cap: a quarter of the available memory (Linux: `MemAvailable`) at 256 bytes a member
/// (docs/BENCHMARKS.md, "Issue 12"), never below 1,000,000.
fn default_max_members() -> usize {
    const FLOOR: usize = 1_000_000;
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    });
    available.map_or(FLOOR, |bytes| (bytes / 4 / 256).max(FLOOR))
}

pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let with_port = if s.contains(':') {
        s.to_string()
    } else {
        format!("{s}:{DEFAULT_PORT}")
    };
    match with_port.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("'{s}' resolves to no address")),
        Err(e) => Err(format!(
            "invalid address '{s}': expected HOST or HOST:PORT ({e})"
        )),
    }
}

/// A seed for the machines' RNGs, from the operating system's cryptographic RNG (core never reads one).
pub fn seed() -> u64 {
    rand::rngs::OsRng.next_u64()
}

/// 32 bytes from the operating system's cryptographic RNG: the seed of a peer's ChaCha20 RNG (its PAKE
/// secret and ids derive from it).
pub fn secure_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

/// The unspecified bind address of the server's family.
pub use punch_core::drive::any_addr_for as any_addr;

/// The addresses to announce for a socket bound to `local`.
pub fn announce(local: SocketAddr, server: SocketAddr) -> Vec<SocketAddr> {
    if local.ip().is_unspecified() {
        driver::route_ip(server)
            .map(|ip| vec![SocketAddr::new(ip, local.port())])
            .unwrap_or_default()
    } else {
        vec![local]
    }
}

/// Starts the machine `make(addresses to announce)` on `runtime`, on one socket bound to `bind` (default: any
/// address of the server's family, a random port), its events going into `inputs`.
pub fn start_announced<M>(
    runtime: Runtime,
    bind: Option<SocketAddr>,
    server: SocketAddr,
    inputs: std::sync::mpsc::Sender<driver::Input<M::Event>>,
    make: impl FnOnce(Vec<SocketAddr>) -> M + Send + 'static,
) -> anyhow::Result<driver::Running<M>>
where
    M: punch_core::Machine + Send + 'static,
    M::Event: Send + 'static,
{
    let bind = bind.unwrap_or_else(|| any_addr(server));
    let make = move |locals: &[SocketAddr]| make(announce(locals[0], server));
    driver::Running::start(runtime, &[bind], make, inputs)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| log_level(cli.verbose, cli.quiet).into());
    // Colour only on a terminal, and never with NO_COLOR set (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(|| screen::LogWriter)
        .init();
    let r = match cli.command {
        Command::Server(a) => server(a),
        Command::NatType(a) => nat_type(a),
        Command::Chat(a) => chat::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Sim(a) => sim_cmd::run(a),
        Command::Strategy(a) => strategy_cmd::run(a),
        Command::Bench(a) => bench::run(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("punch: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn server(a: ServerArgs) -> anyhow::Result<ExitCode> {
    use driver::{Input, Running};
    use punch_core::Rate;
    use punch_core::{Server, ServerConfig, ServerEvent};
    use rand::RngCore;
    let mut config = ServerConfig::new(a.listen);
    config.seed = seed();
    // The cookie key: from the OS, never derived from the seed.
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    config.secret = Some(secret);
    config.max_members = a.max_members.unwrap_or_else(default_max_members);
    config.max_members_per_ip = a.max_members_per_ip;
    config.register_rate = Rate::new(a.register_rate, a.register_burst);
    config.binding_rate = Rate::new(a.binding_rate, a.binding_burst);
    config.relay_packet_rate = Rate::new(a.relay_rate, a.relay_burst);
    config.relay_byte_rate = Rate::new(a.relay_bytes_rate, a.relay_bytes_burst);
    config.max_ip_entries = a.max_ip_entries;
    if let Some(ip) = a.alt_ip {
        if a.listen.ip().is_unspecified() {
            anyhow::bail!("--alt-ip needs --listen with a specific IP (the two IPs must differ), e.g. --listen 203.0.113.1:3478");
        }
        if ip == a.listen.ip() {
            anyhow::bail!("--alt-ip must differ from the --listen IP");
        }
        let port = a.alt_port.unwrap_or(a.listen.port().wrapping_add(1));
        config.alternate = Some(SocketAddr::new(ip, port));
        if punch_core::usable_alternate(&config).is_none() {
            anyhow::bail!("--alt-port must differ from the --listen port");
        }
    }
    let addrs = punch_core::socket_set(config.listen, config.alternate);
    let max_members = config.max_members;
    let (tx, rx) = driver::channel(|e| !matches!(e, ServerEvent::Dropped { .. }));
    driver::on_interrupt(tx.clone());
    let now = punch_tokio::now;
    let running = Running::start(a.runtime, &addrs, move |_| Server::new(config, now()), tx)?;
    if a.alt_ip.is_none() {
        tracing::info!(
            "no --alt-ip: answering Binding requests, but clients cannot run NAT behaviour tests"
        );
    }
    tracing::info!(
        "punch server listening on {:?}, at most {max_members} members",
        running.locals
    );
    if !a.json {
        eprintln!("{}", join_hint(running.locals[0]));
    }
    let mut log = output::ServerLog::new(a.json);
    loop {
        match rx.recv() {
            Ok(Input::Event(e)) => log.event(&e),
            Ok(Input::Note(n)) => tracing::warn!("{n}"),
            Ok(Input::Interrupt) | Err(_) => break,
            Ok(Input::DriverStopped(r)) => {
                r?;
                break;
            }
            Ok(_) => {}
        }
    }
    running.stop();
    Ok(ExitCode::SUCCESS)
}

fn nat_type(a: NatTypeArgs) -> anyhow::Result<ExitCode> {
    use driver::Input;
    use punch_core::{DetectEvent, DetectorConfig, NatDetector};
    let server = a.server;
    let (tx, rx) = std::sync::mpsc::channel();
    driver::on_interrupt(tx.clone());
    let mut config = DetectorConfig::new(server);
    config.seed = seed();
    let limit = detection_limit(&config);
    let running = start_announced(a.runtime, a.bind, server, tx, move |addrs| {
        config.local_addrs = addrs;
        NatDetector::new(config, punch_tokio::now())
    })?;
    let deadline = std::time::Instant::now() + limit;
    let code = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Input::Event(DetectEvent::Progress(p))) => {
                if !a.json {
                    eprintln!("{p}");
                }
            }
            Ok(Input::Event(DetectEvent::Done(r))) => {
                if a.json {
                    output::emit(output::report_json(&r));
                } else if !r.server_unreachable {
                    print!("{r}");
                }
                if r.server_unreachable {
                    // Not a NAT verdict: nothing at all came back.
                    eprintln!("punch: no answer from the server {server} (down, wrong address, or UDP blocked)");
                    break ExitCode::from(2);
                }
                break ExitCode::SUCCESS;
            }
            Ok(Input::Interrupt) => break ExitCode::from(130),
            Ok(Input::DriverStopped(r)) => {
                r?;
                break ExitCode::from(1);
            }
            Ok(_) => {}
            Err(_) => {
                eprintln!("punch: detection did not finish in {} s", limit.as_secs());
                break ExitCode::from(1);
            }
        }
    };
    running.stop();
    Ok(code)
}

/// What a deployer tells the peers: the command that joins this server. A wildcard listen address is shown
/// as the IP this host uses toward the internet (behind a cloud's 1:1 NAT, use the public IP instead).
fn join_hint(listen: SocketAddr) -> String {
    let ip = if listen.ip().is_unspecified() {
        driver::route_ip(SocketAddr::new(
            "192.0.2.1".parse().expect("an IP"),
            DEFAULT_PORT,
        ))
        .unwrap_or(listen.ip())
    } else {
        listen.ip()
    };
    let at = SocketAddr::new(ip, listen.port());
    let server = if listen.port() == DEFAULT_PORT {
        match at {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        }
    } else {
        at.to_string()
    };
    format!(
        "punch server ready. Peers join with:  punch chat --server {server}   (open UDP port {} to this host; \
         with PUNCH_SERVER={server} set, just: punch chat)",
        listen.port()
    )
}

/// How long `punch nat-type` waits for the detector: its own hard limit in the worst case, plus a second for
/// the last answer, in whole seconds. The detector stops at `max_duration`, stretched on slow paths to
/// `filter_timeout` + 5 server RTTs; the RTT is at most `binding_timeout` (a later answer counts as none).
fn detection_limit(c: &punch_core::DetectorConfig) -> std::time::Duration {
    let worst = c
        .max_duration
        .max(c.filter_timeout + c.binding_timeout.saturating_mul(5));
    let secs = (worst + std::time::Duration::from_secs(1))
        .as_secs_f64()
        .ceil();
    std::time::Duration::from_secs(secs as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_flags_pick_the_log_level() {
        assert_eq!(log_level(0, 0), "info");
        assert_eq!(log_level(1, 0), "debug");
        assert_eq!(log_level(3, 0), "trace");
        assert_eq!(log_level(0, 1), "warn");
        assert_eq!(log_level(0, 2), "error");
        assert!(Cli::try_parse_from(["punch", "-v", "-q", "demo"]).is_err());
        assert!(Cli::try_parse_from(["punch", "demo", "-vv"]).is_ok());
    }

    #[test]
    fn server_addresses_default_to_port_3478() {
        let p = |s| parse_addr(s).unwrap().to_string();
        assert_eq!(p("192.0.2.7"), "192.0.2.7:3478");
        assert_eq!(p("192.0.2.7:4000"), "192.0.2.7:4000");
        assert_eq!(p("[2001:db8::1]"), "[2001:db8::1]:3478");
        assert_eq!(p("2001:db8::1"), "[2001:db8::1]:3478");
        assert_eq!(p("[2001:db8::1]:9"), "[2001:db8::1]:9");
        assert!(p("localhost").ends_with(":3478"));
        assert!(parse_addr("no such host.invalid").is_err());
    }

    #[test]
    fn the_server_tells_peers_how_to_join() {
        let h = join_hint("203.0.113.5:3478".parse().unwrap());
        assert!(h.contains("punch chat --server 203.0.113.5 "), "{h}");
        let h = join_hint("203.0.113.5:4000".parse().unwrap());
        assert!(h.contains("punch chat --server 203.0.113.5:4000 "), "{h}");
    }

    #[test]
    fn nat_type_waits_for_the_detectors_worst_case() {
        let c = punch_core::DetectorConfig::new("127.0.0.1:3478".parse().unwrap());
        // 1 s filter timeout + 5 x 2.5 s binding timeout + 1 s, rounded up: the 15 s it always was.
        assert_eq!(detection_limit(&c), std::time::Duration::from_secs(15));
    }
}
