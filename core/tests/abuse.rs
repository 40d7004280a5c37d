//! The server under attack, in virtual time: amplification by spoofed Registers, lock-out by one address,
//! Binding floods, relay abuse, memory (docs/SECURITY.md, "Server: amplification, spoofing and quotas").
//! Every test drives the server alone: datagrams in, datagrams out, counted in bytes.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use punch_core::wire::{self, Msg, Register};
use punch_core::{Machine, Server, ServerConfig, ServerEvent, Transmit};

const SERVER: &str = "203.0.113.1:3478";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn t0() -> Instant {
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn server_with(f: impl FnOnce(&mut ServerConfig)) -> (Server, Instant) {
    let start = t0();
    let mut c = ServerConfig::new(a(SERVER));
    c.seed = 7;
    f(&mut c);
    (Server::new(c, start), start)
}

fn server() -> (Server, Instant) {
    server_with(|_| {})
}

fn register(tid: u8, pool: &str, cookie: Option<Vec<u8>>) -> Vec<u8> {
    Msg::Register(Register {
        cookie,
        ..Register::new([tid; 12], pool)
    })
    .encode()
}

/// The smallest Register: a header and a one-byte POOL (28 bytes), the request of the original measurement.
fn tiny_register(pool: &str) -> Vec<u8> {
    let mut m = wire::message(
        stun_codec::MessageClass::Request,
        wire::methods::register(),
        stun_codec::TransactionId::new([9; 12]),
    );
    m.add_attribute(wire::Pool(pool.as_bytes().to_vec()));
    wire::encode(m)
}

fn drain(s: &mut Server) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

fn events(s: &mut Server) -> Vec<ServerEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Runs the server's timers from `from` to `to` in 10 ms steps, collecting what it sends.
fn run(s: &mut Server, from: Instant, to: Instant) -> Vec<Transmit> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        s.handle_timeout(t);
        out.extend(drain(s));
        t += ms(10);
    }
    out
}

fn peer_infos_to(out: &[Transmit], to: SocketAddr) -> Vec<wire::PeerInfo> {
    out.iter()
        .filter(|t| t.destination == to)
        .filter_map(|t| match Msg::decode(&t.payload) {
            Some(Msg::PeerInfo(p)) => Some(p),
            _ => None,
        })
        .collect()
}

/// Registers `who` in `pool` the way a peer does: with the cookie of its Binding answer.
fn join(s: &mut Server, now: Instant, who: SocketAddr, pool: &str) -> Vec<Transmit> {
    let cookie = s.cookie_for(who);
    s.handle_input(now, a(SERVER), who, &register(1, pool, Some(cookie)));
    drain(s)
}

#[test]
fn spoofed_registers_create_no_state_and_get_no_more_bytes_than_they_sent() {
    let (mut s, start) = server();
    let victim = a("192.0.2.77:53");
    let mut sent_in = 0;
    let mut sent_out = 0;
    let requests = [
        tiny_register("p"),
        register(2, "lobby", None),
        register(3, "lobby", Some(vec![0; 12])), // a forged cookie
        register(4, "", None),                   // 400 before: no pool
    ];
    for (i, r) in requests.iter().enumerate() {
        s.handle_input(start + ms(i as u64), a(SERVER), victim, r);
        sent_in += r.len();
        for t in drain(&mut s) {
            assert_eq!(t.destination, victim);
            assert!(
                t.payload.len() <= r.len(),
                "{} > {}",
                t.payload.len(),
                r.len()
            );
            sent_out += t.payload.len();
        }
    }
    sent_out += run(&mut s, start, start + Duration::from_secs(20))
        .iter()
        .map(|t| t.payload.len())
        .sum::<usize>();
    eprintln!("spoofed Registers: {sent_in} B in, {sent_out} B out");
    assert!(sent_out <= sent_in);
    assert_eq!(s.members(), 0);
    assert!(!events(&mut s)
        .iter()
        .any(|e| matches!(e, ServerEvent::Registered { .. })));
    assert_eq!(s.stats().cookie_challenges, requests.len() as u64);
}

#[test]
fn a_paired_spoofed_register_does_not_produce_peer_infos() {
    let (mut s, start) = server();
    let victim = a("192.0.2.77:53");
    let accomplice = a("192.0.2.78:53");
    let mut bytes_in = 0;
    for (i, who) in [victim, accomplice, victim, victim].into_iter().enumerate() {
        let r = tiny_register("p");
        bytes_in += r.len();
        s.handle_input(start + ms(100 * i as u64), a(SERVER), who, &r);
    }
    let mut out = drain(&mut s);
    out.extend(run(&mut s, start, start + Duration::from_secs(20)));
    let infos = peer_infos_to(&out, victim).len();
    let bytes_out: usize = out.iter().map(|t| t.payload.len()).sum();
    eprintln!("paired spoofed Registers: {infos} PeerInfos, {bytes_in} B in, {bytes_out} B out");
    assert_eq!(infos, 0);
    assert!(bytes_out <= bytes_in);
    assert_eq!(s.stats().pairs, 0);
}

#[test]
fn repeated_registers_do_not_restart_peer_info() {
    let (mut s, start) = server();
    let (pa, pb) = (a("198.51.100.1:4000"), a("198.51.100.2:5000"));
    join(&mut s, start, pa, "room");
    let mut out = join(&mut s, start, pb, "room");
    // A never acknowledges and re-registers every 100 ms for 10 s.
    let mut t = start;
    while t < start + Duration::from_secs(10) {
        t += ms(100);
        let cookie = s.cookie_for(pa);
        s.handle_input(t, a(SERVER), pa, &register(5, "room", Some(cookie)));
        out.extend(drain(&mut s));
        out.extend(run(&mut s, t - ms(90), t));
    }
    let infos = peer_infos_to(&out, pa);
    eprintln!(
        "100 Registers in 10 s while a PeerInfo is pending: {} PeerInfos",
        infos.len()
    );
    assert!(!infos.is_empty());
    assert!(infos.len() <= 16, "{} PeerInfos", infos.len());
    assert!(
        infos.iter().all(|i| i.tid == infos[0].tid),
        "one PeerInfo transaction, never restarted"
    );
}

#[test]
fn a_register_flood_from_one_ip_does_not_lock_out_another_pair() {
    let (mut s, start) = server();
    let mut t = start;
    let (pa, pb) = (a("198.51.100.1:4000"), a("198.51.100.2:5000"));
    let mut paired = false;
    for i in 0..100_000u32 {
        t = start + Duration::from_micros(10 * u64::from(i));
        let who = SocketAddr::new(a("203.0.113.66:1").ip(), 1024 + (i % 60_000) as u16);
        let cookie = s.cookie_for(who);
        let r = register(6, &format!("flood-{i}"), Some(cookie));
        s.handle_input(t, a(SERVER), who, &r);
        drain(&mut s);
        if i == 50_000 {
            join(&mut s, t, pa, "victims");
            join(&mut s, t, pb, "victims");
        }
        paired |= events(&mut s)
            .into_iter()
            .any(|e| matches!(e, ServerEvent::Paired { pool, .. } if pool == "victims"));
    }
    eprintln!(
        "100 000 Registers from one IP in {:?}: {} members, {} rate-limited",
        t - start,
        s.members(),
        s.stats().rate_limited
    );
    assert!(t - start <= Duration::from_secs(1));
    assert!(paired, "the other pair paired");
    assert!(s.members() <= 64 + 2);
}

#[test]
fn members_per_ip_are_capped() {
    let (mut s, start) = server_with(|c| c.register_rate = punch_core::Rate::new(100_000, 100_000));
    let mut refused = 0;
    for i in 0..1000u16 {
        let who = SocketAddr::new(a("203.0.113.66:1").ip(), 2000 + i);
        for t in join(&mut s, start, who, &format!("pool-{i}")) {
            if let Some(Msg::RegisterError { code: 486, .. }) = Msg::decode(&t.payload) {
                refused += 1;
            }
        }
    }
    eprintln!("1000 pools from one IP: {} members", s.members());
    assert_eq!(s.members(), 64);
    assert_eq!(refused, 1000 - 64);
    // Another IP is unaffected.
    join(&mut s, start, a("198.51.100.1:4000"), "mine");
    assert_eq!(s.members(), 65);
}

#[test]
fn binding_floods_do_not_keep_members_alive() {
    let (mut s, start) = server();
    let who = a("198.51.100.1:4000");
    join(&mut s, start, who, "room");
    assert_eq!(s.members(), 1);
    let binding = Msg::BindingRequest { tid: [1; 12] }.encode();
    let mut t = start;
    while t < start + Duration::from_secs(70) {
        t += Duration::from_secs(1);
        s.handle_input(t, a(SERVER), who, &binding);
        s.handle_timeout(t);
        drain(&mut s);
    }
    assert_eq!(s.members(), 0, "expired despite a Binding every second");
    assert_eq!(s.stats().expired, 1);
}

/// Two pairs, "one" (198.51.100.1/.2) and "two" (198.51.100.3/.4); returns (server, start, pair ids).
fn two_pairs() -> (Server, Instant, [wire::PairIdBytes; 2]) {
    let (mut s, start) = server();
    let mut ids = Vec::new();
    for (pool, x, y) in [
        ("one", "198.51.100.1:4000", "198.51.100.2:4000"),
        ("two", "198.51.100.3:4000", "198.51.100.4:4000"),
    ] {
        join(&mut s, start, a(x), pool);
        let out = join(&mut s, start, a(y), pool);
        let info = peer_infos_to(&out, a(y)).pop().expect("a PeerInfo");
        ids.push(info.pair_id);
        for who in [a(x), a(y)] {
            s.handle_input(
                start,
                a(SERVER),
                who,
                &Msg::PeerInfoAck { tid: info.tid }.encode(),
            );
        }
        drain(&mut s);
    }
    (s, start, [ids[0], ids[1]])
}

fn relay(pair: wire::PairIdBytes, n: usize) -> Vec<u8> {
    Msg::Relay {
        tid: [3; 12],
        pair_id: Some(pair),
        data: Some(vec![0; n]),
    }
    .encode()
}

#[test]
fn a_relay_with_another_pairs_id_is_dropped() {
    let (mut s, start, [one, two]) = two_pairs();
    s.handle_input(start, a(SERVER), a("198.51.100.1:4000"), &relay(two, 10));
    assert!(drain(&mut s).is_empty());
    s.handle_input(start, a(SERVER), a("198.51.100.1:4000"), &relay([0; 8], 10));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.stats().bad_pair_id, 2);
    s.handle_input(start, a(SERVER), a("198.51.100.1:4000"), &relay(one, 10));
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].destination, a("198.51.100.2:4000"));
}

#[test]
fn a_relay_flood_is_rate_limited_while_another_pair_relays() {
    let (mut s, start, [one, two]) = two_pairs();
    let (mut flood, mut other) = (0, 0);
    for i in 0..10_000u64 {
        let t = start + Duration::from_micros(100 * i);
        s.handle_input(t, a(SERVER), a("198.51.100.1:4000"), &relay(one, 1200));
        flood += drain(&mut s).len();
        if i % 100 == 0 {
            s.handle_input(t, a(SERVER), a("198.51.100.3:4000"), &relay(two, 200));
            other += drain(&mut s).len();
        }
    }
    eprintln!("10 000 relays of 1200 B in 1 s from one member: {flood} forwarded; the other pair: {other}/100");
    // 256 KiB burst + 128 KiB/s for 1 s, in 1200-byte frames.
    assert!(flood <= (384 * 1024) / 1200 + 1, "{flood}");
    assert_eq!(other, 100);
}

#[test]
fn memory_stays_bounded_under_spoofed_floods() {
    let (mut s, start) = server_with(|c| {
        c.max_ip_entries = 4096;
        c.max_members = 1000;
    });
    let binding = Msg::BindingRequest { tid: [1; 12] }.encode();
    for i in 0..200_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0A00_0000 + i);
        let who = SocketAddr::new(ip.into(), 4000);
        let t = start + Duration::from_micros(u64::from(i));
        s.handle_input(t, a(SERVER), who, &binding);
        s.handle_input(t, a(SERVER), who, &register(1, &format!("p{i}"), None));
        drain(&mut s);
        assert!(s.ip_entries() <= 4096);
    }
    events(&mut s);
    assert_eq!(s.members(), 0);
    eprintln!(
        "200 000 spoofed sources: {} per-IP entries, {} members",
        s.ip_entries(),
        s.members()
    );
}

/// Two peers and the server over a 5 ms network; peer A sits behind a NAT whose public port can change.
struct Net {
    now: Instant,
    server: Server,
    peers: Vec<(SocketAddr, punch_core::Peer)>,
    /// A's public address now (the NAT's mapping).
    a_public: SocketAddr,
    in_flight: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
}

const A_LOCAL: &str = "10.0.0.1:4000";
const B_ADDR: &str = "198.51.100.2:5000";

impl Net {
    fn new(detect: bool) -> Net {
        let (server, now) = server();
        let mut peers = Vec::new();
        for (i, at) in [A_LOCAL, B_ADDR].into_iter().enumerate() {
            let mut c = punch_core::PeerConfig::new(a(SERVER), "9-room-code".parse().unwrap());
            c.local_addrs = vec![a(at)];
            c.seed = [i as u8 + 1; 32];
            c.detect_nat = detect;
            peers.push((a(at), punch_core::Peer::new(c, now)));
        }
        let mut net = Net {
            now,
            server,
            peers,
            a_public: a("198.51.100.1:40000"),
            in_flight: Vec::new(),
        };
        for i in 0..2 {
            net.drain_peer(i);
        }
        net
    }

    fn send(&mut self, from: SocketAddr, t: Transmit) {
        let from = if from == a(A_LOCAL) {
            self.a_public
        } else {
            from
        };
        let at = self.now + ms(5);
        self.in_flight.push((at, from, t.destination, t.payload));
    }

    fn drain_peer(&mut self, i: usize) {
        let (at, _) = self.peers[i];
        let out: Vec<Transmit> = std::iter::from_fn(|| self.peers[i].1.poll_transmit()).collect();
        for t in out {
            self.send(at, t);
        }
        while self.peers[i].1.poll_event().is_some() {}
    }

    fn drain_server(&mut self) {
        for t in drain(&mut self.server) {
            self.send(a(SERVER), t);
        }
    }

    fn run_until(&mut self, end: Instant, events: &mut Vec<ServerEvent>) {
        while self.now < end {
            self.now += ms(1);
            let now = self.now;
            let due: Vec<_> = {
                let (due, rest) = self.in_flight.drain(..).partition(|p| p.0 <= now);
                self.in_flight = rest;
                due
            };
            for (_, from, to, payload) in due {
                if to == a(SERVER) {
                    self.server.handle_input(now, a(SERVER), from, &payload);
                    self.drain_server();
                } else if to == self.a_public {
                    self.peers[0]
                        .1
                        .handle_input(now, a(A_LOCAL), from, &payload);
                    self.drain_peer(0);
                } else if to == a(B_ADDR) {
                    self.peers[1].1.handle_input(now, a(B_ADDR), from, &payload);
                    self.drain_peer(1);
                }
            }
            self.server.handle_timeout(now);
            self.drain_server();
            for i in 0..2 {
                self.peers[i].1.handle_timeout(now);
                self.drain_peer(i);
            }
            events.extend(std::iter::from_fn(|| self.server.poll_event()));
        }
    }
}

#[test]
fn peers_register_with_the_cookie_at_once_keep_alive_with_registers_and_follow_a_new_mapping() {
    for detect in [false, true] {
        let mut net = Net::new(detect);
        let start = net.now;
        let mut ev = Vec::new();
        net.run_until(start + Duration::from_secs(1), &mut ev);
        assert!(
            ev.iter().any(|e| matches!(e, ServerEvent::Paired { .. })),
            "paired (detect {detect}): {ev:?}"
        );
        assert_eq!(
            net.server.stats().cookie_challenges,
            0,
            "the first Register carries the cookie (detect {detect})"
        );
        // The NAT gives A a new public port; A's keepalive Register meets a 401, A registers again with the
        // new cookie and the server follows it.
        net.a_public = a("198.51.100.1:40001");
        net.run_until(start + Duration::from_secs(40), &mut ev);
        assert!(
            ev.iter().any(
                |e| matches!(e, ServerEvent::Moved { to, .. } if *to == a("198.51.100.1:40001"))
            ),
            "moved (detect {detect}): {ev:?}"
        );
        // Register keepalives keep both members (Bindings no longer would).
        net.run_until(start + Duration::from_secs(150), &mut ev);
        assert_eq!(net.server.members(), 2, "detect {detect}");
        assert_eq!(net.server.stats().expired, 0);
    }
}

/// The data-plane relay table (`punch server --threads N`): a route appears once the server relayed on it
/// itself, forwards only that pair's relays, and is gone once the pair is (here: both expired).
#[test]
fn the_relay_table_holds_only_routes_the_server_checked_and_loses_them_with_the_pair() {
    let (mut s, start, [one, two]) = two_pairs();
    let table = s.relay_table();
    let (x, y) = (a("198.51.100.1:4000"), a("198.51.100.2:4000"));
    assert_eq!(
        table.forward(x, &relay(one, 10)),
        None,
        "nothing relayed yet"
    );
    s.handle_input(start, a(SERVER), x, &relay(one, 10));
    assert_eq!(drain(&mut s).len(), 1);
    assert_eq!(table.forward(x, &relay(one, 10)), Some(y));
    assert_eq!(table.forward(x, &relay(two, 10)), None, "another pair's id");
    assert_eq!(
        table.forward(y, &relay(one, 10)),
        None,
        "y has not relayed yet"
    );
    let relayed = s.stats().relayed;
    s.note_relayed(start, x, 5);
    assert_eq!(s.stats().relayed, relayed + 5);
    let t = start + Duration::from_secs(70);
    s.handle_timeout(t);
    drain(&mut s);
    assert_eq!(s.members(), 0);
    assert!(table.is_empty(), "the routes went with the members");
}
