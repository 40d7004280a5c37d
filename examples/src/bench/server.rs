//! `punch bench server`: how fast the rendezvous server registers and pairs, and what a waiting member costs
//! (issue 12; docs/BENCHMARKS.md, "Issue 12").
//!
//! * **In-core** (no sockets, one thread): `--members` synthetic clients (`punch_core::load`: one per IPv4
//!   address, the Register `punch chat` sends, cookie included) register and wait, each alone in its own
//!   nameplate; the figure is the server's heap bytes divided by the members (`Server::heap_bytes`, what it
//!   asked of the allocator) and registrations per second; then the same clients send their Register again
//!   15 s later, the refresh a waiting peer sends as its server keepalive (refreshes per second). Then `--pairs` pairs register in a fresh server:
//!   pairings per second (two Registers in; two RegisterOks and two PeerInfos out).
//! * **Loopback**: a real server on its own thread (tokio driver, pinned to CPU 0 when there are two CPUs or
//!   more) and `--clients` UDP sockets. Each socket gets a cookie with a Binding; then sockets 2j and 2j+1
//!   run rounds of their own: both register in the same new pool (leaving the previous round's pool) and wait
//!   for their RegisterOk and PeerInfo (acknowledged, as a peer does), and the pair starts its next round as
//!   soon as it has all four (pipelined: `clients / 2` pairings in flight; a round not done in 1 s counts
//!   its missing answers as lost and starts over). The pairs are shared among `--generators` threads
//!   (default: one per CPU the server does not use), each waiting on its sockets with one epoll set and
//!   writing Registers and reading RegisterOks by hand. Registrations and pairings per second of wall
//!   time, and the CPU time of the server thread and of the generator threads (their thread CPU clocks:
//!   what /proc reports as their utime + stime) per pairing, so the server's own capacity per CPU-second
//!   shows even when the machine's cores cap the wall figure.
//! * **Floor**: the same generator against [`Floor`], a responder that sends the same datagrams with no
//!   state machine (one `recvmmsg` in, one `sendmmsg` out per batch): the kernel's cost per pairing on this
//!   machine, which bounds what any one-threaded server reaches; `floor_ratio` = punch / floor per server
//!   CPU-second.
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
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
    /// Loopback generator threads (each drives its share of the client sockets through one epoll set);
    /// 0: one per CPU left to the generator (the CPUs but the server's when pinned), at least one.
    #[arg(long, default_value_t = 0)]
    generators: u32,
    /// Load the server as `punch server --threads N` runs it (N > 1: SO_REUSEPORT data threads hand every
    /// Register to one control thread; unpinned; the CPU measured is all its threads'); 1: the single
    /// driver loop (tokio), pinned to CPU 0.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,
    /// Print one JSON object (fields: docs/JSON.md, "punch bench server").
    #[arg(long)]
    json: bool,
}

pub fn run(a: ServerBenchArgs) -> Result<std::process::ExitCode> {
    let core = in_core(a.members, a.pairs);
    let cpus = crate::cores();
    let pinned = !a.no_pin && cpus >= 2;
    let lo = loopback(&a, pinned, false)?;
    let floor = loopback(&a, pinned, true)?;
    let per_cpu = |v: &serde_json::Value| v["pairings_per_cpu_s"].as_f64().unwrap_or(0.0);
    let floor_ratio = per_cpu(&lo) / per_cpu(&floor).max(1e-9);
    let report = serde_json::json!({
        "cpus": cpus,
        "pinned": pinned,
        "threads": a.threads,
        "in_core": core,
        "loopback": lo,
        "floor": floor,
        "floor_ratio": floor_ratio,
    });
    if a.json {
        crate::output::emit(report);
    } else {
        let c = &report["in_core"];
        let l = &report["loopback"];
        println!("server bench");
        println!(
            "  in-core   {} waiting members: {} heap bytes each; {:.0} registrations/s, {:.0} keepalive refreshes/s",
            c["members"],
            c["heap_bytes_per_member"],
            c["registrations_per_s"].as_f64().unwrap_or(0.0),
            c["refreshes_per_s"].as_f64().unwrap_or(0.0)
        );
        println!(
            "  in-core   {} pairings: {:.0} pairings/s",
            c["pairings"],
            c["pairings_per_s"].as_f64().unwrap_or(0.0)
        );
        for (label, l) in [("loopback", l), ("floor   ", &report["floor"])] {
            println!(
                "  {label}  {} clients, {} generator threads, {:.1} s: {:.0} registrations/s, {:.0} pairings/s, \
                 server CPU {:.2} s ({:.0} pairings per CPU-second, {:.1} µs a pairing), generator CPU {:.2} s \
                 ({:.1} µs a pairing), {} answers lost",
                l["clients"],
                l["generators"],
                l["duration_s"].as_f64().unwrap_or(0.0),
                l["registrations_per_s"].as_f64().unwrap_or(0.0),
                l["pairings_per_s"].as_f64().unwrap_or(0.0),
                l["server_cpu_s"].as_f64().unwrap_or(0.0),
                l["pairings_per_cpu_s"].as_f64().unwrap_or(0.0),
                l["server_cpu_us_per_pairing"].as_f64().unwrap_or(0.0),
                l["generator_cpu_s"].as_f64().unwrap_or(0.0),
                l["generator_cpu_us_per_pairing"].as_f64().unwrap_or(0.0),
                l["lost"],
            );
        }
        println!(
            "  punch / floor per server CPU-second: {floor_ratio:.2}x (the floor answers the same datagrams with \
             no state machine: recvmmsg in, sendmmsg out)"
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Hands `msgs` to `server` in order at `t0`, draining what it answers; the seconds it took.
fn feed(
    server: &mut Server,
    t0: Instant,
    listen: SocketAddr,
    msgs: &[(SocketAddr, Vec<u8>)],
) -> f64 {
    let start = Instant::now();
    for (from, msg) in msgs {
        server.handle_input(t0, listen, *from, msg);
        while server.poll_transmit().is_some() {}
        while server.poll_event().is_some() {}
    }
    start.elapsed().as_secs_f64()
}
fn in_core(members: u32, pairs: u32) -> serde_json::Value {
    let listen: SocketAddr = "203.0.113.1:3478".parse().expect("an address");
    let t0 = Instant::now();
    let mut config = ServerConfig::new(listen);
    config.max_members = members as usize;
    let mut server = Server::new(config, t0);
    // Registers are encoded (client work) in chunks before the clock runs; only the server's work is timed.
    let pass = |server: &mut Server, at: Instant| {
        let mut seconds = 0.0;
        for chunk in (0..members).step_by(10_000) {
            let end = (chunk + 10_000).min(members);
            let msgs: Vec<(SocketAddr, Vec<u8>)> = (chunk..end)
                .map(|i| {
                    let from = load::client(i);
                    let msg = load::register(i, &load::nameplate(i), server.cookie_for(from));
                    (from, msg)
                })
                .collect();
            seconds += feed(server, at, listen, &msgs);
        }
        seconds
    };
    let reg_s = pass(&mut server, t0);
    let n = server.members();
    let heap = server.heap_bytes();
    // The same clients again 15 s later: the Register refresh every waiting peer sends as its server
    // keepalive (PeerConfig::server_keepalive), what a million idle users cost the control thread.
    let refresh_s = pass(&mut server, t0 + Duration::from_secs(15));
    assert_eq!(server.members(), n, "a refresh made or lost members");
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
    let pair_s = feed(&mut server, t0, listen, &msgs);
    serde_json::json!({
        "members": n,
        "heap_bytes": heap,
        "heap_bytes_per_member": heap / n.max(1),
        "registrations_per_s": n as f64 / reg_s.max(1e-9),
        "refreshes_per_s": n as f64 / refresh_s.max(1e-9),
        "pairings": server.stats().pairs,
        "pairings_per_s": server.stats().pairs as f64 / pair_s.max(1e-9),
    })
}

/// What the loopback generator loads: the punch server, or the floor responder.
enum Target {
    Punch(ServerThread),
    Floor(Floor),
}

impl Target {
    fn addr(&self) -> SocketAddr {
        match self {
            Target::Punch(s) => s.addr,
            Target::Floor(f) => f.addr,
        }
    }

    fn cpu(&self) -> net::ThreadCpu {
        match self {
            Target::Punch(s) => s.cpu,
            Target::Floor(f) => f.cpu,
        }
    }
}

/// The loopback load against the punch server, or (`floor`) against the [`Floor`] responder.
fn loopback(a: &ServerBenchArgs, pinned: bool, floor: bool) -> Result<serde_json::Value> {
    let server = if floor {
        Target::Floor(Floor::start(a.buf, pinned)?)
    } else {
        let configure = |c: &mut ServerConfig| {
            let unlimited = punch_core::Rate::new(u32::MAX, u32::MAX);
            c.register_rate = unlimited;
            c.binding_rate = unlimited;
            c.max_members_per_ip = usize::MAX;
            c.max_members = 1_000_000;
        };
        Target::Punch(if a.threads > 1 {
            ServerThread::start_threaded(a.buf, a.threads as usize, configure)?
        } else {
            ServerThread::start(a.buf, pinned, configure)?
        })
    };
    let addr = server.addr();
    let k = (a.clients & !1) as usize;
    let threads = generator_threads(a.generators, pinned).min(k / 2).max(1);
    let mut clients = Vec::with_capacity(k);
    for _ in 0..k {
        let (s, _) = net::udp("127.0.0.1:0".parse()?, a.buf.min(256 << 10))?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        // The floor checks no cookie.
        let cookie = if floor {
            Vec::new()
        } else {
            super::cookie(&s, addr)?
        };
        s.set_nonblocking(true)?;
        clients.push(Client { sock: s, cookie });
    }
    let duration = Duration::from_secs_f64(a.duration.max(0.05));
    // Each generator thread owns a contiguous run of whole pairs of sockets.
    let per = (k / 2).div_ceil(threads) * 2;
    let mut shares: Vec<Vec<Client>> = Vec::with_capacity(threads);
    let mut rest = clients.into_iter().peekable();
    while rest.peek().is_some() {
        shares.push(rest.by_ref().take(per).collect());
    }
    // Whole pairs per thread can leave a thread without a share (e.g. 5 pairs on 4 threads: 2, 2, 1).
    let threads = shares.len();
    let cpus = crate::cores();
    let barrier = std::sync::Barrier::new(threads + 1);
    let (cpu0, start, results) = std::thread::scope(|scope| -> Result<_> {
        let handles: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(t, share)| {
                let barrier = &barrier;
                let first_pair = t * per / 2;
                scope.spawn(move || {
                    if pinned {
                        // CPU 0 is the server's; the generators share the others.
                        net::pin(1 + t % (cpus - 1));
                    }
                    barrier.wait();
                    generate(share, first_pair, addr, Instant::now() + duration)
                })
            })
            .collect();
        barrier.wait();
        let cpu0 = server.cpu().read();
        let start = Instant::now();
        let results: Vec<Result<Counts>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a generator thread panicked"))
            })
            .collect();
        Ok((cpu0, start, results))
    })?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = (server.cpu().read() - cpu0).as_secs_f64();
    drop(server);
    let mut total = Counts::default();
    for r in results {
        let c = r?;
        total.registrations += c.registrations;
        total.pairings += c.pairings;
        total.lost += c.lost;
        total.rounds += c.rounds;
        total.cpu += c.cpu;
    }
    let gen_cpu = total.cpu.as_secs_f64();
    Ok(serde_json::json!({
        "clients": k,
        "generators": threads,
        "duration_s": wall,
        "rounds": total.rounds,
        "in_flight": k / 2,
        "registrations": total.registrations,
        "registrations_per_s": total.registrations as f64 / wall,
        "pairings": total.pairings,
        "pairings_per_s": total.pairings as f64 / wall,
        "lost": total.lost,
        "server_cpu_s": cpu,
        "pairings_per_cpu_s": total.pairings as f64 / cpu.max(1e-9),
        "server_cpu_us_per_pairing": cpu * 1e6 / (total.pairings as f64).max(1.0),
        "generator_cpu_s": gen_cpu,
        "generator_cpu_us_per_pairing": gen_cpu * 1e6 / (total.pairings as f64).max(1.0),
    }))
}

/// Generator threads: `--generators`, or by default one per CPU the server does not use (at least one).
fn generator_threads(asked: u32, pinned: bool) -> usize {
    match asked {
        0 => crate::cores().saturating_sub(usize::from(pinned)).max(1),
        n => n as usize,
    }
}

/// What one generator thread counted.
#[derive(Default)]
struct Counts {
    registrations: u64,
    pairings: u64,
    lost: u64,
    rounds: u64,
    /// CPU time of the generator thread during the load.
    cpu: Duration,
}

/// One generator thread: its pairs of sockets (pair `j` of the whole run is `first_pair + j`) run pipelined
/// rounds until `until`. Readiness comes from one epoll set (level-triggered, one `recv` per ready socket per
/// wakeup), so no `recv` is spent on a socket with nothing to read; Registers are written and RegisterOks
/// read by hand (the codec's encoding and decoding were the generator's bottleneck, not the server).
fn generate(
    clients: Vec<Client>,
    first_pair: usize,
    server: SocketAddr,
    until: Instant,
) -> Result<Counts> {
    use std::os::fd::AsRawFd;
    let mut counts = Counts::default();
    let clock = net::ThreadCpu::current();
    let cpu0 = clock.read();
    let mut buf = [0u8; net::SLOT];
    let epoll = Epoll::new()?;
    for (i, c) in clients.iter().enumerate() {
        epoll.add(c.sock.as_raw_fd(), i as u64)?;
    }
    let mut clients = clients;
    let mut pairs: Vec<PairState> = Vec::with_capacity(clients.len() / 2);
    for j in 0..clients.len() / 2 {
        let mut p = PairState {
            round: 0,
            started: Instant::now(),
            state: [(false, false); 2],
        };
        p.begin(j, first_pair + j, &clients, server)?;
        pairs.push(p);
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut last_sweep = Instant::now();
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        let ready = epoll.wait(&mut events, 10)?;
        for e in &events[..ready] {
            let i = e.u64 as usize;
            let c = &mut clients[i];
            let Ok((n, _)) = c.sock.recv_from(&mut buf) else {
                continue;
            };
            let j = i / 2;
            let p = &mut pairs[j];
            let b = &buf[..n];
            let tid_now = tid(p.round, first_pair * 2 + i);
            let st = &mut p.state[i % 2];
            if n >= 20 && b[..2] == [0x00, 0x0E] {
                // A PeerInfo request, acknowledged from its header alone (only after this round's RegisterOk:
                // the server sends that first).
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
                    c.sock.send_to(&ack, server)?;
                    st.1 = true;
                }
            } else if n >= 20 && b[..2] == [0x01, 0x0D] && b[8..20] == tid_now {
                if let Some(k) = attribute(b, COOKIE) {
                    c.cookie.clear();
                    c.cookie.extend_from_slice(k);
                }
                if !st.0 {
                    counts.registrations += 1;
                }
                st.0 = true;
            } else if n >= 20 && b[..2] == [0x01, 0x1D] {
                if let Some(Msg::RegisterError { code, reason, .. }) = Msg::decode(b) {
                    bail!("the server refused a Register: {code} {reason}");
                }
            }
            if p.state.iter().all(|s| s.0 && s.1) {
                counts.pairings += 1;
                p.round += 1;
                p.begin(j, first_pair + j, &clients, server)?;
            }
        }
        // Rounds not done within a second count their missing answers as lost and start over.
        if now.duration_since(last_sweep) > Duration::from_millis(100) {
            last_sweep = now;
            for (j, p) in pairs.iter_mut().enumerate() {
                if now.duration_since(p.started) > Duration::from_secs(1) {
                    counts.lost += p.state.iter().filter(|s| !(s.0 && s.1)).count() as u64;
                    p.round += 1;
                    p.begin(j, first_pair + j, &clients, server)?;
                }
            }
        }
    }
    counts.rounds = pairs.iter().map(|p| p.round).sum();
    counts.cpu = clock.read() - cpu0;
    Ok(counts)
}

/// COOKIE.
const COOKIE: u16 = 0xC00F;

/// The value of the first attribute of type `ty` in a STUN message (a plain TLV walk).
fn attribute(b: &[u8], ty: u16) -> Option<&[u8]> {
    let mut at = 20;
    while b.len() >= at + 4 {
        let t = u16::from_be_bytes([b[at], b[at + 1]]);
        let len = usize::from(u16::from_be_bytes([b[at + 2], b[at + 3]]));
        let value = b.get(at + 4..at + 4 + len)?;
        if t == ty {
            return Some(value);
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// The Register the generator sends (POOL, NAME "bench", NAT unknown, COOKIE), written by hand: the bytes
/// `Msg::Register` encodes for it (checked in debug builds).
fn register_bytes(tid: [u8; 12], pool: &str, cookie: &[u8]) -> Vec<u8> {
    fn attr(b: &mut Vec<u8>, ty: u16, v: &[u8]) {
        b.extend_from_slice(&ty.to_be_bytes());
        b.extend_from_slice(&(v.len() as u16).to_be_bytes());
        b.extend_from_slice(v);
        b.resize(b.len().div_ceil(4) * 4, 0);
    }
    let mut b = Vec::with_capacity(20 + 8 + pool.len() + 12 + 12 + 4 + cookie.len() + 3);
    b.extend_from_slice(&[0x00, 0x0D, 0, 0, 0x21, 0x12, 0xA4, 0x42]);
    b.extend_from_slice(&tid);
    attr(&mut b, 0xC001, pool.as_bytes());
    attr(&mut b, 0xC002, b"bench");
    attr(
        &mut b,
        0xC003,
        &punch_core::NatBehaviour::default().encode(),
    );
    attr(&mut b, COOKIE, cookie);
    let len = (b.len() - 20) as u16;
    b[2..4].copy_from_slice(&len.to_be_bytes());
    debug_assert_eq!(b, {
        let r = Register {
            name: "bench".into(),
            cookie: Some(cookie.to_vec()),
            ..Register::new(tid, pool)
        };
        Msg::Register(r).encode()
    });
    b
}

/// A level-triggered epoll set of sockets.
struct Epoll(std::os::fd::OwnedFd);

impl Epoll {
    fn new() -> Result<Epoll> {
        use std::os::fd::FromRawFd;
        // SAFETY: epoll_create1 has no memory arguments; a valid descriptor is owned from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            bail!("epoll_create1: {}", std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Epoll(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input; `data` comes back with its events.
    fn add(&self, fd: std::os::fd::RawFd, data: u64) -> Result<()> {
        use std::os::fd::AsRawFd;
        let mut e = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: data,
        };
        // SAFETY: `e` is a valid epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut e) };
        if r < 0 {
            bail!("epoll_ctl: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` for ready sockets; how many of `events` were filled.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> Result<usize> {
        use std::os::fd::AsRawFd;
        let max = events.len().min(i32::MAX as usize) as i32;
        // SAFETY: the kernel writes at most `max` events into `events`.
        let r =
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(0);
            }
            bail!("epoll_wait: {e}");
        }
        Ok(r as usize)
    }
}

/// One pair of sockets: its round, when that round started, and per socket (RegisterOk, PeerInfo) seen.
struct PairState {
    round: u64,
    started: Instant,
    state: [(bool, bool); 2],
}

impl PairState {
    /// Starts this pair's current round: both sockets (2j and 2j + 1 of its thread; pair `global` of the
    /// run) register in a new pool.
    fn begin(
        &mut self,
        j: usize,
        global: usize,
        clients: &[Client],
        server: SocketAddr,
    ) -> Result<()> {
        self.state = [(false, false); 2];
        self.started = Instant::now();
        for i in [2 * j, 2 * j + 1] {
            let c = &clients[i];
            let pool = format!("{}-{global}", self.round);
            let msg = register_bytes(tid(self.round, 2 * global + i - 2 * j), &pool, &c.cookie);
            c.sock.send_to(&msg, server)?;
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

/// The floor of the loopback figure: a responder that answers the generator datagram for datagram as the
/// server does (a RegisterOk to every Register, then a PeerInfo to both members of a pool once its second
/// member registered; PeerInfo acknowledgements are read and dropped), with no state machine, no cookies and
/// no integrity, one `recvmmsg` in and one `sendmmsg` (to any destinations) out per batch. Its CPU time per
/// pairing is the kernel's share that no single-threaded server on this machine can avoid.
struct Floor {
    addr: SocketAddr,
    cpu: net::ThreadCpu,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Floor {
    fn start(buf: usize, pin: bool) -> Result<Self> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (sock, _) = net::udp("127.0.0.1:0".parse()?, buf)?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = sock.local_addr()?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let (ready, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            if pin {
                net::pin(0);
            }
            let _ = ready.send(net::ThreadCpu::current());
            let mut slots = Box::new([[0u8; net::SLOT]; net::BATCH]);
            let mut lens = [0usize; net::BATCH];
            let mut froms = [None; net::BATCH];
            let mut waiting: std::collections::HashMap<Vec<u8>, SocketAddr> =
                std::collections::HashMap::new();
            let mut out: Vec<(socket2::SockAddr, [u8; 20])> = Vec::with_capacity(3 * net::BATCH);
            let mut serial = 0u64;
            while !done.load(Ordering::Relaxed) {
                let Ok(n) = net::recv_batch_from(&sock, &mut slots, &mut lens, &mut froms) else {
                    continue;
                };
                out.clear();
                for i in 0..n {
                    let (b, Some(from)) = (&slots[i][..lens[i]], froms[i]) else {
                        continue;
                    };
                    if b.len() < 20 || b[..2] != [0x00, 0x0D] {
                        continue;
                    }
                    let mut ok = [0u8; 20];
                    ok[..2].copy_from_slice(&[0x01, 0x0D]);
                    ok[4..].copy_from_slice(&b[4..20]);
                    out.push((from.into(), ok));
                    let Some(pool) = attribute(b, 0xC001) else {
                        continue;
                    };
                    match waiting.remove(pool) {
                        Some(first) if first != from => {
                            for to in [first, from] {
                                serial += 1;
                                let mut info = [0u8; 20];
                                info[..2].copy_from_slice(&[0x00, 0x0E]);
                                info[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
                                info[8..16].copy_from_slice(&serial.to_le_bytes());
                                out.push((to.into(), info));
                            }
                        }
                        _ => {
                            waiting.insert(pool.to_vec(), from);
                        }
                    }
                }
                for chunk in out.chunks(net::BATCH) {
                    let _ = net::send_each(&sock, chunk);
                }
            }
        });
        let cpu = ready_rx.recv().context("the floor responder died")?;
        Ok(Floor {
            addr,
            cpu,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
