//! `punch bench server`: how fast the rendezvous server registers and pairs, and what a waiting member costs
//! (issue 12; docs/BENCHMARKS.md, "Issue 12").
//!
//! * **In-core** (no sockets, one thread): `--members` synthetic clients (`punch_core::load`: one per IPv4
//!   address, the Register `punch chat` sends, cookie included) register and wait, each alone in its own
//!   nameplate; the figure is the server's heap bytes divided by the members (`Server::heap_bytes`, what it
//!   asked of the allocator) and registrations per second. Then `--pairs` pairs register in a fresh server:
//!   pairings per second (two Registers in; two RegisterOks and two PeerInfos out).
//! * **Loopback**: a real server on its own thread (tokio driver, pinned to CPU 0 when there are two CPUs or
//!   more) and `--clients` UDP sockets. Each socket gets a cookie with a Binding; then sockets 2j and 2j+1
//!   run rounds of their own: both register in the same new pool (leaving the previous round's pool) and wait
//!   for their RegisterOk and PeerInfo (acknowledged, as a peer does), and the pair starts its next round as
//!   soon as it has all four (pipelined: `clients / 2` pairings in flight; a round not done in 1 s counts
//!   its missing answers as lost and starts over). Registrations and pairings per second of wall
//!   time and per server CPU-second.
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use punch_core::wire::{Msg, Register};
use punch_core::{load, Machine, Server, ServerConfig};

use super::{net, ServerThread};

#[derive(clap::Args)]
pub struct ServerBenchArgs {
    /// Waiting members registered in-core for the heap-bytes figure.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..=16_000_000))]
    members: u32,
    /// Pairs registered in-core for the pairings/s figure.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..=8_000_000))]
    pairs: u32,
    /// UDP client sockets of the loopback generator (an even number; two per pool).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(2..=20_000))]
    clients: u32,
    /// Seconds of loopback load.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// SO_RCVBUF/SO_SNDBUF asked for on the server's socket and on every client socket.
    #[arg(long, default_value_t = 4 << 20)]
    buf: usize,
    /// Do not pin the server to CPU 0 and the generator to the other CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Print one JSON object (fields: docs/JSON.md, "punch bench server").
    #[arg(long)]
    json: bool,
}

pub fn run(a: ServerBenchArgs) -> Result<std::process::ExitCode> {
    let core = in_core(a.members, a.pairs);
    let cpus = net::cpus();
    let pinned = !a.no_pin && cpus >= 2;
    let lo = loopback(&a, pinned)?;
    let report = serde_json::json!({
        "cpus": cpus,
        "pinned": pinned,
        "in_core": core,
        "loopback": lo,
    });
    if a.json {
        crate::output::emit(report);
    } else {
        let c = &report["in_core"];
        let l = &report["loopback"];
        println!("server bench");
        println!(
            "  in-core   {} waiting members: {} heap bytes each; {:.0} registrations/s",
            c["members"],
            c["heap_bytes_per_member"],
            c["registrations_per_s"].as_f64().unwrap_or(0.0)
        );
        println!(
            "  in-core   {} pairings: {:.0} pairings/s",
            c["pairings"],
            c["pairings_per_s"].as_f64().unwrap_or(0.0)
        );
        println!(
            "  loopback  {} clients, {:.1} s: {:.0} registrations/s, {:.0} pairings/s, server CPU {:.2} s \
             ({:.0} pairings per CPU-second), {} answers lost",
            l["clients"],
            l["duration_s"].as_f64().unwrap_or(0.0),
            l["registrations_per_s"].as_f64().unwrap_or(0.0),
            l["pairings_per_s"].as_f64().unwrap_or(0.0),
            l["server_cpu_s"].as_f64().unwrap_or(0.0),
            l["pairings_per_cpu_s"].as_f64().unwrap_or(0.0),
            l["lost"],
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn in_core(members: u32, pairs: u32) -> serde_json::Value {
    let listen: SocketAddr = "203.0.113.1:3478".parse().expect("an address");
    let t0 = Instant::now();
    let mut config = ServerConfig::new(listen);
    config.max_members = members as usize;
    let mut server = Server::new(config, t0);
    // Registers are encoded (client work) in chunks before the clock runs; only the server's work is timed.
    let mut reg_s = 0.0;
    for chunk in (0..members).step_by(10_000) {
        let end = (chunk + 10_000).min(members);
        let msgs: Vec<(SocketAddr, Vec<u8>)> = (chunk..end)
            .map(|i| {
                let from = load::client(i);
                let msg = load::register(i, &load::nameplate(i), server.cookie_for(from));
                (from, msg)
            })
            .collect();
        let start = Instant::now();
        for (from, msg) in &msgs {
            server.handle_input(t0, listen, *from, msg);
            while server.poll_transmit().is_some() {}
            while server.poll_event().is_some() {}
        }
        reg_s += start.elapsed().as_secs_f64();
    }
    let n = server.members();
    let heap = server.heap_bytes();
    drop(server);

    let mut config = ServerConfig::new(listen);
    config.max_members = 2 * pairs as usize;
    let mut server = Server::new(config, t0);
    let msgs: Vec<(SocketAddr, Vec<u8>)> = (0..2 * pairs)
        .map(|i| {
            let from = load::client(i);
            (
                from,
                load::register(i, &load::nameplate(i / 2), server.cookie_for(from)),
            )
        })
        .collect();
    let start = Instant::now();
    for (from, msg) in &msgs {
        server.handle_input(t0, listen, *from, msg);
        while server.poll_transmit().is_some() {}
        while server.poll_event().is_some() {}
    }
    let pair_s = start.elapsed().as_secs_f64();
    serde_json::json!({
        "members": n,
        "heap_bytes": heap,
        "heap_bytes_per_member": heap / n.max(1),
        "registrations_per_s": n as f64 / reg_s.max(1e-9),
        "pairings": server.stats().pairs,
        "pairings_per_s": server.stats().pairs as f64 / pair_s.max(1e-9),
    })
}

fn loopback(a: &ServerBenchArgs, pinned: bool) -> Result<serde_json::Value> {
    let server = ServerThread::start(a.buf, pinned, |c| {
        let unlimited = punch_core::Rate::new(u32::MAX, u32::MAX);
        c.register_rate = unlimited;
        c.binding_rate = unlimited;
        c.max_members_per_ip = usize::MAX;
        c.max_members = 1_000_000;
    })?;
    if pinned {
        net::pin(1);
    }
    let k = (a.clients & !1) as usize;
    let mut clients = Vec::with_capacity(k);
    for _ in 0..k {
        let (s, _) = net::udp("127.0.0.1:0".parse()?, a.buf.min(256 << 10))?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        let cookie = super::cookie(&s, server.addr)?;
        s.set_nonblocking(true)?;
        clients.push(Client { sock: s, cookie });
    }
    let duration = Duration::from_secs_f64(a.duration.max(0.05));
    let cpu0 = server.cpu.read();
    let start = Instant::now();
    let (mut registrations, mut pairings, mut lost) = (0u64, 0u64, 0u64);
    let mut buf = [0u8; net::SLOT];
    // Pipelined: every pair of sockets runs its own rounds, starting the next one as soon as both of its
    // sockets have their RegisterOk and PeerInfo, so all `clients / 2` pairings are in flight at once and
    // nobody waits for the slowest pair of a round.
    let mut pairs: Vec<PairState> = Vec::with_capacity(k / 2);
    for j in 0..k / 2 {
        let mut p = PairState {
            round: 0,
            started: Instant::now(),
            state: [(false, false); 2],
        };
        p.begin(j, &clients, server.addr)?;
        pairs.push(p);
    }
    while start.elapsed() < duration {
        let mut idle = true;
        for (i, c) in clients.iter_mut().enumerate() {
            let j = i / 2;
            while let Ok((n, _)) = c.sock.recv_from(&mut buf) {
                idle = false;
                let p = &mut pairs[j];
                let st = &mut p.state[i % 2];
                let b = &buf[..n];
                // A PeerInfo request (type 0x000E) is recognised and acknowledged from its header alone: the
                // generator's decoding was the bottleneck, not the server.
                if n >= 20 && b[..2] == [0x00, 0x0E] {
                    if st.0 {
                        let mut ack = [0u8; 20];
                        ack[..2].copy_from_slice(&[0x01, 0x0E]);
                        ack[4..].copy_from_slice(&b[4..20]);
                        debug_assert_eq!(
                            &ack[..],
                            &Msg::PeerInfoAck {
                                tid: b[8..20].try_into()?
                            }
                            .encode()[..]
                        );
                        c.sock.send_to(&ack, server.addr)?;
                        st.1 = true;
                    }
                    continue;
                }
                match Msg::decode(b) {
                    Some(Msg::RegisterOk { tid: t, cookie, .. }) if t == tid(p.round, i) => {
                        if let Some(k) = cookie {
                            c.cookie = k;
                        }
                        if !st.0 {
                            registrations += 1;
                        }
                        st.0 = true;
                    }
                    // Only after this round's RegisterOk (the server sends it first).
                    Some(Msg::PeerInfo(info)) if st.0 => {
                        let ack = Msg::PeerInfoAck { tid: info.tid }.encode();
                        c.sock.send_to(&ack, server.addr)?;
                        st.1 = true;
                    }
                    Some(Msg::RegisterError { code, reason, .. }) => {
                        bail!("the server refused a Register: {code} {reason}")
                    }
                    _ => {}
                }
            }
        }
        let now = Instant::now();
        for (j, p) in pairs.iter_mut().enumerate() {
            let done = p.state.iter().all(|s| s.0 && s.1);
            if done {
                pairings += 1;
            } else if now.duration_since(p.started) > Duration::from_secs(1) {
                lost += p.state.iter().filter(|s| !(s.0 && s.1)).count() as u64;
            } else {
                continue;
            }
            p.round += 1;
            p.begin(j, &clients, server.addr)?;
        }
        if idle {
            std::thread::yield_now();
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = (server.cpu.read() - cpu0).as_secs_f64();
    drop(server);
    Ok(serde_json::json!({
        "clients": k,
        "duration_s": wall,
        "rounds": pairs.iter().map(|p| p.round).sum::<u64>(),
        "in_flight": k / 2,
        "registrations": registrations,
        "registrations_per_s": registrations as f64 / wall,
        "pairings": pairings,
        "pairings_per_s": pairings as f64 / wall,
        "lost": lost,
        "server_cpu_s": cpu,
        "pairings_per_cpu_s": pairings as f64 / cpu.max(1e-9),
    }))
}

/// One pair of sockets: its round, when that round started, and per socket (RegisterOk, PeerInfo) seen.
struct PairState {
    round: u64,
    started: Instant,
    state: [(bool, bool); 2],
}

impl PairState {
    /// Starts this pair's current round: both sockets register in a new pool.
    fn begin(&mut self, j: usize, clients: &[Client], server: SocketAddr) -> Result<()> {
        self.state = [(false, false); 2];
        self.started = Instant::now();
        for i in [2 * j, 2 * j + 1] {
            let c = &clients[i];
            let r = Register {
                name: "bench".into(),
                cookie: Some(c.cookie.clone()),
                ..Register::new(tid(self.round, i), format!("{}-{j}", self.round))
            };
            c.sock.send_to(&Msg::Register(r).encode(), server)?;
        }
        Ok(())
    }
}

struct Client {
    sock: UdpSocket,
    cookie: Vec<u8>,
}

fn tid(round: u64, j: usize) -> [u8; 12] {
    let mut t = [0u8; 12];
    t[..8].copy_from_slice(&round.to_le_bytes());
    t[8..].copy_from_slice(&(j as u32).to_le_bytes());
    t
}
