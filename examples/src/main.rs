//! `punch`: UDP NAT traversal and peer-to-peer chat.
//!
//! Exit codes: 0 success; 1 messages not delivered / peer gone / runtime failure; 2 bad usage, bad address,
//! port in use or server unreachable; 3 the server refused us (pool full); 130 interrupted.
mod bench;
mod chat;
mod demo;
mod driver;
mod output;
mod resolve;
mod screen;
mod sim_cmd;
mod strategy_cmd;
mod threads;

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
    /// Address to listen on; repeat for several sockets (the first is the primary). Default: `[::]:3478`,
    /// one dual-stack socket for IPv4 and IPv6 (`0.0.0.0:3478` on a host without IPv6).
    #[arg(long, value_parser = parse_addr)]
    listen: Vec<SocketAddr>,
    /// Alternate IP for NAT behaviour tests (RFC 5780): the server then listens on 4 sockets.
    #[arg(long)]
    alt_ip: Option<std::net::IpAddr>,
    /// Alternate port (default: the primary port + 1).
    #[arg(long, requires = "alt_ip")]
    alt_port: Option<u16>,
    /// Print events as JSON lines on stdout.
    #[arg(long)]
    json: bool,
    /// The async runtime that drives the sockets (both run the same core) in the single driver loop
    /// (`--threads 1`, which naming a runtime makes the default). Default: tokio.
    #[arg(long, value_enum)]
    runtime: Option<Runtime>,
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
    /// SO_RCVBUF and SO_SNDBUF to ask for on every socket, in bytes (`K`/`M` suffixes: KiB/MiB); 0 keeps the
    /// system default. The kernel doubles the request and caps it at net.core.rmem_max/wmem_max; what it
    /// granted is logged at start.
    #[arg(long, default_value = "4M", value_parser = parse_bytes)]
    socket_buffer: usize,
    /// Threads (sockets on the port, SO_REUSEPORT): one control thread runs the server; each socket's thread
    /// forwards relays on routes the server checked, with batched I/O (recvmmsg, GRO, GSO), and hands it
    /// everything else. 1 = the single driver loop (the only one --runtime applies to). Default: the number
    /// of cores (the data threads forward at least as much per CPU-second as the single loop,
    /// docs/SCALING.md), but 1 with several sockets (several --listen, --alt-ip) or a --runtime named.
    #[arg(long, value_parser = parse_threads)]
    threads: Option<usize>,
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("not a number of threads: {s:?}")),
    }
}

/// The threads to run: `--threads`, else `cores` on a single socket with no `--runtime` named, else 1 (see
/// the flag's help); several threads need a single socket.
fn server_threads(
    asked: Option<usize>,
    sockets: usize,
    runtime_named: bool,
    cores: usize,
) -> anyhow::Result<usize> {
    match asked {
        Some(n) if n > 1 && sockets > 1 => anyhow::bail!(
            "--threads {n} needs a single socket: one --listen address and no --alt-ip"
        ),
        Some(n) => Ok(n),
        None if sockets > 1 || runtime_named => Ok(1),
        None => Ok(cores.max(1)),
    }
}

/// The number of cores this process may run on (1 if unknown): `punch server`'s default threads, and what
/// the benches pin to.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[derive(clap::Args)]
struct NatTypeArgs {
    /// The punch (or any RFC 5780 STUN) server, `HOST[:PORT]` (port 3478 by default). A name with IPv4 and
    /// IPv6 addresses is tested over both families.
    #[arg(long, env = "PUNCH_SERVER", default_value = "127.0.0.1:3478", value_parser = resolve::parse_server)]
    server: resolve::ServerSpec,
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

/// Most a `--socket-buffer` may ask for (1 GiB): beyond that it is surely a typo.
const MAX_SOCKET_BUFFER: usize = 1 << 30;

/// A byte count: digits with an optional `K` (KiB) or `M` (MiB) suffix, 0 or 4096..=1 GiB.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1),
        Some((i, _)) => match t[i..].to_ascii_uppercase().as_str() {
            "K" | "KB" | "KIB" => (&t[..i], 1 << 10),
            "M" | "MB" | "MIB" => (&t[..i], 1 << 20),
            _ => return Err(format!("'{s}': expected bytes, e.g. 4194304, 512K or 4M")),
        },
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("'{s}': expected bytes, e.g. 4194304, 512K or 4M"))?;
    match n.checked_mul(unit) {
        Some(0) => Ok(0),
        Some(b) if (4096..=MAX_SOCKET_BUFFER).contains(&b) => Ok(b),
        _ => Err(format!(
            "'{s}': a socket buffer is 0 (system default) or 4096 bytes to 1G"
        )),
    }
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

/// The addresses to announce for a socket bound to `local`: a specific address as it is; for a wildcard, the
/// IP this host uses toward `server`, and on a dual-stack socket (`[::]`) the IP of the other family too
/// (the global IPv6 address the host would use, or its IPv4 one), with the socket's port.
pub fn announce(local: SocketAddr, server: SocketAddr) -> Vec<SocketAddr> {
    if !local.ip().is_unspecified() {
        return vec![local];
    }
    let mut out: Vec<SocketAddr> = driver::route_ip(server)
        .map(|ip| SocketAddr::new(ip, local.port()))
        .into_iter()
        .collect();
    if punch_core::drive::dual_stack(&[local], 0) {
        let other: SocketAddr = if server.is_ipv4() {
            "[2001:db8::1]:3478".parse().expect("an address")
        } else {
            "192.0.2.1:3478".parse().expect("an address")
        };
        if let Some(ip) = driver::route_ip(other).filter(|ip| worth_announcing(*ip)) {
            out.push(SocketAddr::new(ip, local.port()));
        }
    }
    if local.is_ipv6() {
        // Every other global IPv6 address of the host's interfaces (a stable and a temporary one, or one per
        // uplink): the partner pings them all in a punch round, and the best round trip wins.
        let interfaces = if_addrs::get_if_addrs().unwrap_or_default();
        let ips = interfaces.iter().map(|i| i.ip());
        out = with_global_ipv6(out, ips, local.port());
    }
    out
}

/// Most IPv6 addresses announced (each is a candidate the partner pings every punch round).
const MAX_IPV6_ANNOUNCED: usize = 4;

/// `out` and the global unicast IPv6 addresses (2000::/3) among `ips` with `port`, without duplicates, at
/// most [`MAX_IPV6_ANNOUNCED`] IPv6 addresses in all.
fn with_global_ipv6(
    mut out: Vec<SocketAddr>,
    ips: impl IntoIterator<Item = std::net::IpAddr>,
    port: u16,
) -> Vec<SocketAddr> {
    for ip in ips {
        let std::net::IpAddr::V6(v6) = ip else {
            continue;
        };
        let global = (v6.segments()[0] & 0xe000) == 0x2000;
        let a = SocketAddr::new(ip, port);
        if !global || out.contains(&a) {
            continue;
        }
        if out.iter().filter(|a| a.is_ipv6()).count() >= MAX_IPV6_ANNOUNCED {
            break;
        }
        out.push(a);
    }
    out
}

/// Whether a partner could reach this host at `ip`: not loopback, unspecified or IPv6 link-local.
fn worth_announcing(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
        std::net::IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// Starts the machine `make(addresses to announce)` on `runtime`, on one socket bound to `bind`, its events
/// going into `inputs`.
pub fn start_announced<M>(
    runtime: Runtime,
    bind: SocketAddr,
    server: SocketAddr,
    inputs: std::sync::mpsc::Sender<driver::Input<M::Event>>,
    make: impl FnOnce(Vec<SocketAddr>) -> M + Send + 'static,
) -> anyhow::Result<driver::Running<M>>
where
    M: punch_core::Machine + Send + 'static,
    M::Event: Send + 'static,
{
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
    use driver::Running;
    use punch_core::Rate;
    use punch_core::{Server, ServerConfig, ServerEvent};
    use rand::RngCore;
    let listens = listen_addrs(&a.listen)?;
    let primary = listens[0];
    let mut config = ServerConfig::new(primary);
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
        if primary.ip().is_unspecified() {
            anyhow::bail!("--alt-ip needs --listen with a specific IP (the two IPs must differ), e.g. --listen 203.0.113.1:3478");
        }
        if ip == primary.ip() {
            anyhow::bail!("--alt-ip must differ from the --listen IP");
        }
        if ip.is_ipv4() != primary.is_ipv4() {
            anyhow::bail!("--alt-ip must be of the same family as the first --listen address");
        }
        let port = a.alt_port.unwrap_or(primary.port().wrapping_add(1));
        config.alternate = Some(SocketAddr::new(ip, port));
        if punch_core::usable_alternate(&config).is_none() {
            anyhow::bail!("--alt-port must differ from the --listen port");
        }
    }
    // The behaviour-test sockets of the primary, then every other --listen address.
    let mut addrs = punch_core::socket_set(config.listen, config.alternate);
    for l in &listens[1..] {
        if addrs.contains(l) {
            anyhow::bail!("--listen {l} is given twice (or is one of the --alt-ip sockets)");
        }
        addrs.push(*l);
    }
    let max_members = config.max_members;
    let threads = server_threads(a.threads, addrs.len(), a.runtime.is_some(), cores())?;
    let (tx, rx) = driver::channel(|e| !matches!(e, ServerEvent::Dropped { .. }));
    driver::on_interrupt(tx.clone());
    let now = punch_tokio::now;
    let buffer = (a.socket_buffer > 0).then_some(a.socket_buffer);
    if threads > 1 {
        let make = move |local| {
            config.listen = local;
            Server::new(config, now())
        };
        let running = threads::Threaded::start(addrs[0], threads, buffer, make, tx.into(), || {})?;
        tracing::info!(
            "punch server listening on {} with {threads} threads, at most {max_members} members",
            running.local
        );
        let stopped = log_server(&rx, a.json, &[running.local]);
        running.stop();
        stopped?;
        return Ok(ExitCode::SUCCESS);
    }
    let make = move |_: &[SocketAddr]| Server::new(config, now());
    let runtime = a.runtime.unwrap_or(Runtime::Tokio);
    let running = Running::start_with_buffers(runtime, &addrs, buffer, make, tx)?;
    if a.alt_ip.is_none() {
        tracing::info!(
            "no --alt-ip: answering Binding requests, but clients cannot run NAT behaviour tests"
        );
    }
    tracing::info!(
        "punch server listening on {:?}, at most {max_members} members",
        running.locals
    );
    let stopped = log_server(&rx, a.json, &running.locals);
    running.stop();
    stopped?;
    Ok(ExitCode::SUCCESS)
}

/// Prints how peers join (unless `json`), then logs the server's events until an interrupt or the driver
/// stops (its error, if it failed).
fn log_server(
    rx: &driver::Receiver<punch_core::ServerEvent>,
    json: bool,
    locals: &[SocketAddr],
) -> anyhow::Result<()> {
    use driver::Input;
    if !json {
        eprintln!("{}", join_hint(locals[0]));
        if let Some(v6) = ipv6_hint(locals) {
            eprintln!("{v6}");
        }
    }
    let mut log = output::ServerLog::new(json);
    loop {
        match rx.recv() {
            Ok(Input::Event(e)) => log.event(&e),
            Ok(Input::Note(n)) => tracing::warn!("{n}"),
            Ok(Input::Interrupt) | Err(_) => return Ok(()),
            Ok(Input::DriverStopped(r)) => return r,
            Ok(_) => {}
        }
    }
}

fn nat_type(a: NatTypeArgs) -> anyhow::Result<ExitCode> {
    use driver::Input;
    use punch_core::{DetectEvent, DetectorConfig, NatDetector};
    // Both families when the server has both and the host can use both (and no --bind picks one).
    let (v6, v4) = (a.server.family(true), a.server.family(false));
    let targets: Vec<(&str, SocketAddr, SocketAddr)> =
        if a.bind.is_none() && !v6.is_empty() && !v4.is_empty() && resolve::has_ipv6() {
            vec![
                ("IPv4", v4[0], SocketAddr::from(([0, 0, 0, 0], 0))),
                ("IPv6", v6[0], SocketAddr::from(([0u16; 8], 0))),
            ]
        } else {
            let bind = a.bind.unwrap_or_else(|| {
                // One family: a socket of the server's first address's family (as before dual stack).
                match a
                    .server
                    .addrs
                    .iter()
                    .find(|s| resolve::has_ipv6() || s.is_ipv4())
                {
                    Some(SocketAddr::V6(_)) => SocketAddr::from(([0u16; 8], 0)),
                    _ => SocketAddr::from(([0, 0, 0, 0], 0)),
                }
            });
            let server = resolve::pick_server(&a.server, bind)?;
            vec![("", server, bind)]
        };
    let both = targets.len() == 2;
    let mut runs = Vec::new();
    for (family, server, bind) in &targets {
        let (tx, rx) = std::sync::mpsc::channel();
        if runs.is_empty() {
            driver::on_interrupt(tx.clone());
        }
        let mut config = DetectorConfig::new(*server);
        config.seed = seed();
        let running = start_announced(a.runtime, *bind, *server, tx, move |addrs| {
            config.local_addrs = addrs;
            NatDetector::new(config, punch_tokio::now())
        })?;
        runs.push(Detection {
            family,
            server: *server,
            rx,
            running: Some(running),
            report: None,
        });
    }
    let limit = detection_limit(&DetectorConfig::new(targets[0].1));
    let deadline = std::time::Instant::now() + limit;
    let mut interrupted = false;
    while runs.iter().any(|r| r.running.is_some()) && !interrupted {
        if std::time::Instant::now() >= deadline {
            eprintln!("punch: detection did not finish in {} s", limit.as_secs());
            return Ok(ExitCode::from(1));
        }
        let mut idle = true;
        for r in runs.iter_mut().filter(|r| r.running.is_some()) {
            let wait = if both {
                std::time::Duration::ZERO
            } else {
                deadline.saturating_duration_since(std::time::Instant::now())
            };
            match r.rx.recv_timeout(wait) {
                Ok(Input::Event(DetectEvent::Progress(p))) => {
                    idle = false;
                    if !a.json {
                        match both {
                            true => eprintln!("{}: {p}", r.family),
                            false => eprintln!("{p}"),
                        }
                    }
                }
                Ok(Input::Event(DetectEvent::Done(rep))) => {
                    idle = false;
                    r.report = Some(rep);
                    if let Some(run) = r.running.take() {
                        run.stop();
                    }
                }
                Ok(Input::Interrupt) => interrupted = true,
                Ok(Input::DriverStopped(res)) => {
                    res?;
                    return Ok(ExitCode::from(1));
                }
                Ok(_) => idle = false,
                Err(_) => {}
            }
        }
        if both && idle {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    if interrupted {
        return Ok(ExitCode::from(130));
    }
    let answered = |r: &&Detection| r.report.as_ref().is_some_and(|x| !x.server_unreachable);
    if !both {
        let r = &runs[0];
        let rep = r.report.as_ref().expect("finished");
        if a.json {
            output::emit(output::report_json(rep));
        } else if !rep.server_unreachable {
            print!("{rep}");
        }
        if rep.server_unreachable {
            // Not a NAT verdict: nothing at all came back.
            eprintln!(
                "punch: no answer from the server {} (down, wrong address, or UDP blocked)",
                r.server
            );
            return Ok(ExitCode::from(2));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.json {
        // The first family that answered (IPv4 first) at the top level, as with one family; both by name.
        let mut top = runs
            .iter()
            .find(answered)
            .and_then(|r| r.report.as_ref())
            .map(output::report_json)
            .unwrap_or_else(|| output::report_json(runs[0].report.as_ref().expect("finished")));
        for r in &runs {
            let key = r.family.to_ascii_lowercase();
            top[key] = r
                .report
                .as_ref()
                .filter(|x| !x.server_unreachable)
                .map(output::report_json)
                .unwrap_or(serde_json::Value::Null);
        }
        output::emit(top);
    } else {
        for r in &runs {
            match r.report.as_ref().filter(|x| !x.server_unreachable) {
                Some(rep) => print!("{}:\n{rep}", r.family),
                None => println!(
                    "{}: no answer from the server at {} (no route, or UDP blocked)",
                    r.family, r.server
                ),
            }
        }
    }
    if runs.iter().any(|r| answered(&r)) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "punch: no answer from the server {} over IPv4 or IPv6 (down, wrong address, or UDP blocked)",
            a.server
        );
        Ok(ExitCode::from(2))
    }
}

/// One family's detection in `punch nat-type`.
struct Detection<'a> {
    family: &'a str,
    server: SocketAddr,
    rx: std::sync::mpsc::Receiver<driver::Input<punch_core::DetectEvent>>,
    running: Option<driver::Running<punch_core::NatDetector>>,
    report: Option<punch_core::NatReport>,
}

/// The server's sockets: the `--listen` addresses given, or by default one dual-stack socket on `[::]:3478`
/// (IPv4 and IPv6), or `0.0.0.0:3478` when the host has no IPv6 (said in a log line).
fn listen_addrs(given: &[SocketAddr]) -> anyhow::Result<Vec<SocketAddr>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    if resolve::has_ipv6() {
        Ok(vec![SocketAddr::from(([0u16; 8], DEFAULT_PORT))])
    } else {
        tracing::info!("no IPv6 on this host: listening on IPv4 only (0.0.0.0:{DEFAULT_PORT})");
        Ok(vec![SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))])
    }
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

/// The IPv6 way in, when the server also listens on IPv6 (a dual-stack `[::]` or a specific IPv6 socket) and
/// the host has an IPv6 address worth telling; `None` too when the first hint already names an IPv6 address.
fn ipv6_hint(locals: &[SocketAddr]) -> Option<String> {
    if locals
        .first()
        .is_some_and(|l| l.is_ipv6() && !l.ip().is_unspecified())
    {
        return None;
    }
    let l = locals.iter().find(|l| l.is_ipv6())?;
    let ip = if l.ip().is_unspecified() {
        driver::route_ip("[2001:db8::1]:3478".parse().expect("an address"))
            .filter(|ip| worth_announcing(*ip))?
    } else {
        l.ip()
    };
    let server = match l.port() {
        DEFAULT_PORT => format!("[{ip}]"),
        port => format!("[{ip}]:{port}"),
    };
    Some(format!("over IPv6:  punch chat --server {server}"))
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
    fn every_global_ipv6_address_is_announced_up_to_four_and_no_other() {
        let ips = [
            "192.168.1.10",
            "::1",
            "fe80::1",
            "fd00::5",
            "2001:db8:a::2",
            "2001:db8:a::77",
            "2001:db8:a::2",
            "2a02::3",
            "2a02::4",
            "2a02::5",
        ]
        .map(|s| s.parse().unwrap());
        let route: SocketAddr = "[2001:db8:a::2]:5000".parse().unwrap();
        let out = with_global_ipv6(vec!["10.0.0.2:5000".parse().unwrap(), route], ips, 5000);
        let want: Vec<SocketAddr> = [
            "10.0.0.2:5000",
            "[2001:db8:a::2]:5000",
            "[2001:db8:a::77]:5000",
            "[2a02::3]:5000",
            "[2a02::4]:5000",
        ]
        .map(|s| s.parse().unwrap())
        .to_vec();
        assert_eq!(out, want);
    }

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
    fn socket_buffer_sizes_parse_with_suffixes_and_bad_ones_are_refused() {
        assert_eq!(parse_bytes("4M"), Ok(4 << 20));
        assert_eq!(parse_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("0"), Ok(0));
        for bad in ["", "abc", "4X", "-1", "100", "2G", "99999999999999999999M"] {
            let e = parse_bytes(bad).unwrap_err();
            assert!(
                e.contains("bytes") || e.contains("socket buffer"),
                "{bad}: {e}"
            );
        }
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
    fn the_server_runs_a_thread_per_core_unless_told_or_it_cannot() {
        let t = |asked, sockets, runtime_named| server_threads(asked, sockets, runtime_named, 4);
        assert_eq!(
            t(None, 1, false).unwrap(),
            4,
            "the default: the number of cores"
        );
        assert_eq!(t(None, 4, false).unwrap(), 1, "--alt-ip: several sockets");
        assert_eq!(
            t(None, 1, true).unwrap(),
            1,
            "a --runtime named: the single loop"
        );
        assert_eq!(t(Some(2), 1, true).unwrap(), 2);
        assert_eq!(t(Some(1), 1, false).unwrap(), 1);
        assert!(t(Some(2), 2, false).is_err());
        assert_eq!(server_threads(None, 1, false, 0).unwrap(), 1);
        assert!(cores() >= 1);
    }

    #[test]
    fn nat_type_waits_for_the_detectors_worst_case() {
        let c = punch_core::DetectorConfig::new("127.0.0.1:3478".parse().unwrap());
        // 1 s filter timeout + 5 x 2.5 s binding timeout + 1 s, rounded up: the 15 s it always was.
        assert_eq!(detection_limit(&c), std::time::Duration::from_secs(15));
    }
}
