//! `punch bench`: measurements over real loopback sockets (docs/BENCHMARKS.md, "punch bench").
//!
//! `punch bench relay` starts a real punch server (the `Server` machine on the tokio driver, on its own thread,
//! pinned to CPU 0 when there are two or more), registers two clients with the real protocol (Binding for a
//! cookie, Register, PeerInfo + ack), and has a load generator send Relay indications carrying `--payload`
//! bytes of DATA from one client to the server, which forwards them to the other. The same generator then
//! drives a plain `recvmmsg`/`sendmmsg` forwarder written here, and the two are compared per server CPU-second.
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use punch_core::wire::{Msg, PairIdBytes, Register};
use punch_core::ServerConfig;

mod load;
mod net;
mod server;
mod turn;

use load::{Flow, Load, Outcome};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Relay throughput: punch server vs a plain recvmmsg/sendmmsg forwarder, same generator, same run.
    ///
    /// JSON (--json), one object: {"payload": DATA bytes, "datagram": bytes on the wire, "duration_s",
    /// "rate_offered": datagrams/s asked (0 = as fast as possible), "cpus", "pinned": server on CPU 0,
    /// "rcvbuf": SO_RCVBUF granted, "punch": RESULT, "forwarder": RESULT, "ratio": punch per_cpu_s /
    /// forwarder per_cpu_s}. RESULT = {"sent", "received", "sent_per_s", "received_per_s", "loss" (0..1),
    /// "p50_us", "p99_us" (send to receive, through the server), "server_cpu_s", "per_cpu_s" (datagrams
    /// forwarded per server CPU-second)}; with --coturn, also "coturn": RESULT and "ratio_coturn" (punch
    /// per_cpu_s / coturn per_cpu_s), else both null; "threads", "threaded" (the threaded server ran: --threads
    /// above 1 or --threaded), then also "single": RESULT (the single driver loop, same run) and
    /// "ratio_single" (punch per_cpu_s / single per_cpu_s), else both null.
    Relay(RelayArgs),
    /// Server registrations and pairings: in-core (heap bytes per waiting member at --members, pairings/s) and
    /// over loopback sockets (registrations/s, pairings/s).
    ///
    /// JSON (--json), one object: {"cpus", "pinned", "in_core": {"members", "heap_bytes",
    /// "heap_bytes_per_member", "registrations_per_s", "pairings", "pairings_per_s"}, "loopback": {"clients",
    /// "generators", "duration_s", "rounds", "in_flight", "registrations", "registrations_per_s", "pairings",
    /// "pairings_per_s", "lost", "server_cpu_s", "pairings_per_cpu_s", "server_cpu_us_per_pairing",
    /// "generator_cpu_s", "generator_cpu_us_per_pairing"}} (docs/JSON.md).
    Server(server::ServerBenchArgs),
}

#[derive(clap::Args)]
struct RelayArgs {
    /// Seconds of load for each of the two systems.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Datagrams per second to offer (0: as fast as the generator can).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// DATA bytes per relayed datagram (at most the server's 1200).
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u64).range(16..=1200))]
    payload: u64,
    /// SO_RCVBUF/SO_SNDBUF asked for on every bench socket, the server's included.
    #[arg(long, default_value_t = 4 << 20)]
    buf: usize,
    /// Do not pin the server to CPU 0 and the generator to the other CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Run the punch server as `punch server --threads N` does (N > 1: SO_REUSEPORT data threads and a
    /// control thread, not pinned; the CPU measured is the sum of all of them), and the single driver loop
    /// too, in the same run. 1: the single driver loop only (unless --threaded).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=15))]
    threads: u64,
    /// Run the threaded server (data threads and a control thread) even with --threads 1: one data thread.
    #[arg(long)]
    threaded: bool,
    /// Print one JSON object (fields: see `punch bench relay --help`).
    #[arg(long)]
    json: bool,
    /// Also load a TURN server at this address (coturn without authentication: lab/bench-coturn.sh): Allocate,
    /// CreatePermission and ChannelBind to the receiver, then ChannelData through it (one hop).
    #[arg(long, requires = "coturn_pid")]
    coturn: Option<SocketAddr>,
    /// The TURN server's process id: its CPU clock (every thread) is the one measured.
    #[arg(long, requires = "coturn")]
    coturn_pid: Option<i32>,
}

pub fn run(a: BenchArgs) -> Result<ExitCode> {
    match a.what {
        What::Relay(r) => relay(r),
        What::Server(s) => server::run(s),
    }
}

fn relay(a: RelayArgs) -> Result<ExitCode> {
    let cpus = crate::cores();
    let pinned = !a.no_pin && cpus >= 2;
    let duration = Duration::from_secs_f64(a.duration.max(0.1));
    let unlimited = |c: &mut ServerConfig| {
        let unlimited = punch_core::Rate::new(u32::MAX, u32::MAX);
        c.relay_packet_rate = unlimited;
        c.relay_byte_rate = unlimited;
    };
    let threaded = a.threads > 1 || a.threaded;
    let server = if threaded {
        ServerThread::start_threaded(a.buf, a.threads as usize, unlimited)?
    } else {
        ServerThread::start(a.buf, pinned, unlimited)?
    };
    let (flow, datagram) = pair_through(server.addr, a.payload as usize, a.buf)?;
    let load = Load {
        duration,
        rate: a.rate,
        payload: a.payload as usize,
        pin: pinned.then_some(1),
    };
    let punch = load.run(&flow, server.addr, server.cpu)?;
    drop(server);
    // The threaded server's baseline: the single driver loop, same generator, same run.
    let single = if threaded {
        let server = ServerThread::start(a.buf, pinned, unlimited)?;
        let (flow, _) = pair_through(server.addr, a.payload as usize, a.buf)?;
        Some(load.run(&flow, server.addr, server.cpu)?)
    } else {
        None
    };
    let fwd = Forwarder::start(flow.receiver_addr()?, a.buf, pinned)?;
    let forwarder = load.run(&flow, fwd.addr, fwd.cpu)?;
    drop(fwd);
    let coturn = match (a.coturn, a.coturn_pid) {
        (Some(addr), Some(pid)) => {
            let turn = turn::channel_flow(addr, &flow, a.payload as usize, a.buf)?;
            Some(load.run(&turn, addr, net::ThreadCpu::process(pid)?)?)
        }
        _ => None,
    };
    let per = |o: &Outcome| o.per_cpu_s().max(f64::MIN_POSITIVE);
    let ratio = punch.per_cpu_s() / per(&forwarder);
    let ratio_coturn = coturn.as_ref().map(|c| punch.per_cpu_s() / per(c));
    let ratio_single = single.as_ref().map(|o| punch.per_cpu_s() / per(o));
    let report = serde_json::json!({
        "payload": a.payload,
        "datagram": datagram,
        "duration_s": duration.as_secs_f64(),
        "rate_offered": a.rate,
        "cpus": cpus,
        "pinned": pinned,
        "threads": a.threads,
        "threaded": threaded,
        "single": single.as_ref().map(Outcome::json),
        "ratio_single": ratio_single,
        "rcvbuf": flow.rcvbuf,
        "punch": punch.json(),
        "forwarder": forwarder.json(),
        "ratio": ratio,
        "coturn": coturn.as_ref().map(Outcome::json),
        "ratio_coturn": ratio_coturn,
    });
    if a.json {
        crate::output::emit(report);
    } else {
        print_relay(
            &punch,
            single.as_ref(),
            &forwarder,
            coturn.as_ref(),
            ratio,
            datagram,
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_relay(
    punch: &Outcome,
    single: Option<&Outcome>,
    fwd: &Outcome,
    coturn: Option<&Outcome>,
    ratio: f64,
    datagram: usize,
) {
    println!("relay bench, {datagram}-byte datagrams over loopback");
    let turn = coturn.map(|c| ("coturn (ChannelData)", c));
    let name = if single.is_some() {
        "punch server (threads)"
    } else {
        "punch server"
    };
    let single = single.map(|o| ("punch server (single loop)", o));
    let rows = [(name, punch)]
        .into_iter()
        .chain(single)
        .chain([("recvmmsg/sendmmsg forwarder", fwd)]);
    for (name, o) in rows.chain(turn) {
        println!(
            "  {name:28} sent {:>10.0}/s  forwarded {:>10.0}/s  loss {:>5.1}%  p50 {:>6} µs  p99 {:>6} µs  \
             server CPU {:.2} s  {:.0} datagrams per CPU-second",
            o.sent_per_s(),
            o.received_per_s(),
            o.loss() * 100.0,
            o.p50_us,
            o.p99_us,
            o.cpu.as_secs_f64(),
            o.per_cpu_s()
        );
    }
    println!("  punch / forwarder per CPU-second: {ratio:.2}x");
    if let Some((_, o)) = single {
        let r = punch.per_cpu_s() / o.per_cpu_s().max(f64::MIN_POSITIVE);
        println!("  threads / single loop per CPU-second: {r:.2}x");
    }
    if let Some(c) = coturn {
        let r = punch.per_cpu_s() / c.per_cpu_s().max(f64::MIN_POSITIVE);
        println!("  punch / coturn per CPU-second: {r:.2}x");
    }
}

/// The punch server on its own thread (pinned to CPU 0 when asked), with its thread CPU clock.
struct ServerThread {
    addr: SocketAddr,
    cpu: net::ThreadCpu,
    stop: Option<tokio::sync::mpsc::UnboundedSender<punch_tokio::Command<punch_core::Server>>>,
    thread: Option<thread::JoinHandle<()>>,
    threaded: Option<crate::threads::Threaded>,
}

impl ServerThread {
    /// The server as `punch server --threads N` runs it: N data threads and a control thread, unpinned.
    fn start_threaded(
        buf: usize,
        threads: usize,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Result<Self> {
        let mut config = ServerConfig::new("127.0.0.1:0".parse()?);
        config.seed = crate::seed();
        configure(&mut config);
        let (clocks, clocks_rx) = std::sync::mpsc::channel();
        let clocks = std::sync::Mutex::new(clocks);
        let clocks = std::sync::Arc::new(clocks);
        let init = move || {
            let _ = clocks.lock().map(|c| c.send(net::ThreadCpu::current()));
        };
        let listen = config.listen;
        let (events, _) = std::sync::mpsc::channel();
        let make = move |local| {
            config.listen = local;
            punch_core::Server::new(config, punch_tokio::now())
        };
        let running = crate::threads::Threaded::start(
            listen,
            threads,
            Some(buf),
            make,
            crate::driver::Inputs::Std(events),
            init,
        )?;
        let cpus: Vec<net::ThreadCpu> = (0..=threads)
            .map(|_| clocks_rx.recv().context("server thread died"))
            .collect::<Result<_>>()?;
        Ok(ServerThread {
            addr: running.local,
            cpu: net::ThreadCpu::sum(&cpus),
            stop: None,
            thread: None,
            threaded: Some(running),
        })
    }

    fn start(buf: usize, pin: bool, configure: impl FnOnce(&mut ServerConfig)) -> Result<Self> {
        use punch_core::Server;
        let (sock, _) = net::udp("127.0.0.1:0".parse()?, buf)?;
        sock.set_nonblocking(true)?;
        let addr = sock.local_addr()?;
        let mut config = ServerConfig::new(addr);
        config.seed = crate::seed();
        configure(&mut config);
        let (stop, commands) = tokio::sync::mpsc::unbounded_channel();
        let (ready, ready_rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            if pin {
                net::pin(0);
            }
            let _ = ready.send(net::ThreadCpu::current());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let Ok(rt) = rt else { return };
            let _ = rt.block_on(async move {
                let sock = tokio::net::UdpSocket::from_std(sock)?;
                // Nobody reads the events: a send to a closed channel is dropped.
                let (events, _) = tokio::sync::mpsc::unbounded_channel();
                let server = Server::new(config, punch_tokio::now());
                punch_tokio::run(server, vec![sock], commands, events).await
            });
        });
        let cpu = ready_rx.recv().context("server thread died")?;
        Ok(ServerThread {
            addr,
            cpu,
            stop: Some(stop),
            thread: Some(thread),
            threaded: None,
        })
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.threaded.take() {
            t.stop();
        }
    }
}

/// The baseline: receives batches with `recvmmsg` and sends them on unchanged to one address with `sendmmsg`.
struct Forwarder {
    addr: SocketAddr,
    cpu: net::ThreadCpu,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Forwarder {
    fn start(to: SocketAddr, buf: usize, pin: bool) -> Result<Self> {
        let (sock, _) = net::udp("127.0.0.1:0".parse()?, buf)?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let (ready, ready_rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            if pin {
                net::pin(0);
            }
            let _ = ready.send(net::ThreadCpu::current());
            let mut slots = Box::new([[0u8; net::SLOT]; net::BATCH]);
            let mut lens = [0usize; net::BATCH];
            while !done.load(Ordering::Relaxed) {
                let Ok(n) = net::recv_batch(&sock, &mut slots, &mut lens) else {
                    break;
                };
                let bufs: Vec<&[u8]> = (0..n).map(|i| &slots[i][..lens[i]]).collect();
                let _ = net::send_batch(&sock, to, &bufs);
            }
        });
        let cpu = ready_rx.recv().context("forwarder thread died")?;
        Ok(Forwarder {
            addr,
            cpu,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Registers two clients in one pool with the real protocol and waits for both PeerInfos; returns the flow
/// (sockets + the relay datagram to send) and the datagram's size.
fn pair_through(server: SocketAddr, payload: usize, buf: usize) -> Result<(Flow, usize)> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let (a, rcvbuf) = net::udp(any, buf)?;
    let (b, _) = net::udp(any, buf)?;
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
    }
    let pool = format!("bench-{}", crate::seed() % 1_000_000);
    register(&a, server, &pool, "a")?;
    register(&b, server, &pool, "b")?;
    let pair_id = peer_info(&a, server)?;
    if peer_info(&b, server)? != pair_id {
        bail!("the two clients got different PAIR-IDs");
    }
    let template = Msg::Relay {
        tid: [7; 12],
        pair_id: Some(pair_id),
        data: Some(vec![0; payload]),
    }
    .encode();
    let len = template.len();
    Ok((
        Flow {
            sender: a,
            receiver: b,
            overhead: len - payload,
            template,
            rcvbuf,
        },
        len,
    ))
}

/// Sends `msg` to `server` and waits (≤ 2 s, re-sending every 200 ms) for an answer `pick` accepts.
fn ask<T>(
    s: &UdpSocket,
    server: SocketAddr,
    msg: &Msg,
    pick: impl Fn(Msg) -> Option<T>,
) -> Result<T> {
    net::exchange(s, server, &msg.encode(), "server", |m| {
        Msg::decode(m).and_then(&pick).map(Ok)
    })
}

/// A Binding for `s`'s cookie (return routability).
fn cookie(s: &UdpSocket, server: SocketAddr) -> Result<Vec<u8>> {
    let cookie = ask(
        s,
        server,
        &Msg::BindingRequest { tid: tid() },
        |m| match m {
            Msg::BindingOk { cookie, .. } => Some(cookie),
            _ => None,
        },
    )?;
    cookie.context("the Binding answer carried no cookie")
}

fn register(s: &UdpSocket, server: SocketAddr, pool: &str, name: &str) -> Result<()> {
    let cookie = Some(cookie(s, server)?);
    let register = Msg::Register(Register {
        name: name.into(),
        cookie,
        ..Register::new(tid(), pool)
    });
    ask(s, server, &register, |m| match m {
        Msg::RegisterOk { .. } => Some(Ok(())),
        Msg::RegisterError { code, reason, .. } => Some(Err(anyhow::anyhow!("{code} {reason}"))),
        _ => None,
    })?
}

/// Waits for the server's PeerInfo, acknowledges it, and returns the PAIR-ID.
fn peer_info(s: &UdpSocket, server: SocketAddr) -> Result<PairIdBytes> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; net::SLOT];
    while Instant::now() < deadline {
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            continue;
        };
        if let Some(Msg::PeerInfo(p)) = Msg::decode(&buf[..n]) {
            s.send_to(&Msg::PeerInfoAck { tid: p.tid }.encode(), server)?;
            return Ok(p.pair_id);
        }
    }
    bail!("no PeerInfo from the server at {server}")
}

fn tid() -> [u8; 12] {
    let mut t = [0u8; 12];
    t[..8].copy_from_slice(&crate::seed().to_le_bytes());
    t
}
