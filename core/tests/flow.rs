//! End-to-end core tests over an in-memory network stepped in virtual time (no sockets, no sleeps).
//! The network is deliberately simple (fixed one-way latency, optional drop filter, no NAT); the `sim` crate
//! has the RFC 4787 NATs.
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use punch_core::{wire, Machine, Transmit};
use punch_core::{Path, Peer, PeerConfig, PeerError, PeerEvent};
use punch_core::{Server, ServerConfig};

type DropFilter = Box<dyn Fn(SocketAddr, SocketAddr, &[u8]) -> bool>;

enum Node {
    Server(Box<Server>),
    Peer(Box<Peer>),
}

struct Net {
    start: Instant,
    now: Instant,
    latency: Duration,
    nodes: BTreeMap<SocketAddr, Node>,
    /// (deliver at, seq, from, to, payload)
    in_flight: VecDeque<(Instant, u64, SocketAddr, SocketAddr, Vec<u8>)>,
    seq: u64,
    trace: Vec<String>,
    events: BTreeMap<SocketAddr, Vec<PeerEvent>>,
    /// Drop datagrams for which this returns true.
    drop: DropFilter,
}

const SERVER: &str = "203.0.113.1:3478";
const A: &str = "198.51.100.10:40000";
const B: &str = "198.51.100.20:50000";
/// The code both peers type unless a test says otherwise.
const CODE: &str = "42-lobby-secret";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Net {
    fn new(latency_ms: u64) -> Net {
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        let mut net = Net {
            start,
            now: start,
            latency: Duration::from_millis(latency_ms),
            nodes: BTreeMap::new(),
            in_flight: VecDeque::new(),
            seq: 0,
            trace: Vec::new(),
            events: BTreeMap::new(),
            drop: Box::new(|_, _, _| false),
        };
        let s = Server::new(ServerConfig::new(addr(SERVER)), start);
        net.nodes.insert(addr(SERVER), Node::Server(Box::new(s)));
        net
    }

    fn add_peer(&mut self, at: &str, code: &str, relay_only: bool, seed: u8) {
        let mut c = PeerConfig::new(addr(SERVER), code.parse().expect("a valid code"));
        c.name = at.to_string();
        c.relay_only = relay_only;
        self.start_peer(at, c, seed);
    }

    /// Starts a peer with config `c` on socket `at`.
    fn start_peer(&mut self, at: &str, mut c: PeerConfig, seed: u8) {
        c.local_addrs = vec![addr(at)];
        c.seed = [seed; 32];
        let p = Peer::new(c, self.now);
        self.nodes.insert(addr(at), Node::Peer(Box::new(p)));
        self.drain(addr(at));
    }

    /// A and B with the same code (seeds 1 and 2), both relay-only or both not.
    fn add_pair(&mut self, relay_only: bool) {
        self.add_peer(A, CODE, relay_only, 1);
        self.add_peer(B, CODE, relay_only, 2);
    }

    /// A with the right code, B with a wrong guess.
    fn add_mismatched_pair(&mut self) {
        self.add_peer(A, CODE, false, 1);
        self.add_peer(B, "42-lobby-guess", false, 2);
    }

    /// Whether the peer at `at` has had an event matching `pred`.
    fn saw(&self, at: &str, pred: impl Fn(&PeerEvent) -> bool) -> bool {
        self.events.get(&addr(at)).into_iter().flatten().any(pred)
    }

    fn peer(&mut self, at: &str) -> &mut Peer {
        match self.nodes.get_mut(&addr(at)) {
            Some(Node::Peer(p)) => p,
            _ => panic!("no peer at {at}"),
        }
    }

    fn ms(&self) -> f64 {
        self.now.duration_since(self.start).as_secs_f64() * 1000.0
    }

    fn drain(&mut self, at: SocketAddr) {
        let mut sends: Vec<Transmit> = Vec::new();
        let mut evs = Vec::new();
        match self.nodes.get_mut(&at).unwrap() {
            Node::Server(s) => {
                while let Some(t) = s.poll_transmit() {
                    sends.push(t);
                }
                while s.poll_event().is_some() {}
            }
            Node::Peer(p) => {
                while let Some(t) = p.poll_transmit() {
                    sends.push(t);
                }
                while let Some(e) = p.poll_event() {
                    evs.push(e);
                }
            }
        }
        for e in evs {
            self.trace
                .push(format!("{:>8.1}ms {at} event {e:?}", self.ms()));
            self.events.entry(at).or_default().push(e);
        }
        for t in sends {
            let from = t.source.unwrap_or(at);
            if (self.drop)(from, t.destination, &t.payload) {
                self.trace.push(format!(
                    "{:>8.1}ms {from} -> {} DROPPED {}",
                    self.ms(),
                    t.destination,
                    wire::describe(&t.payload)
                ));
                continue;
            }
            self.seq += 1;
            self.in_flight.push_back((
                self.now + self.latency,
                self.seq,
                from,
                t.destination,
                t.payload,
            ));
        }
    }

    /// Runs until `until` of virtual time has passed.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..1_000_000 {
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|(a, n)| {
                    match n {
                        Node::Server(s) => s.poll_timeout(),
                        Node::Peer(p) => p.poll_timeout(),
                    }
                    .map(|t| (t, *a))
                })
                .min();
            let next_packet = self.in_flight.iter().map(|p| (p.0, p.1)).min();
            let t_timer = next_timer.map(|t| t.0);
            let t_pkt = next_packet.map(|p| p.0);
            let next = [t_timer, t_pkt].into_iter().flatten().min();
            let Some(next) = next.filter(|t| *t <= end) else {
                self.now = end;
                return;
            };
            assert!(next >= self.now, "time went backwards");
            self.now = next;
            if t_pkt == Some(next) {
                let (_, seq) = next_packet.unwrap();
                let i = self.in_flight.iter().position(|p| p.1 == seq).unwrap();
                let (_, _, from, to, payload) = self.in_flight.remove(i).unwrap();
                self.trace.push(format!(
                    "{:>8.1}ms {from} -> {to} {}",
                    self.ms(),
                    wire::describe(&payload)
                ));
                let now = self.now;
                match self.nodes.get_mut(&to) {
                    Some(Node::Server(s)) => s.handle_input(now, to, from, &payload),
                    Some(Node::Peer(p)) => p.handle_input(now, to, from, &payload),
                    None => continue,
                }
                self.drain(to);
            } else {
                let (_, at) = next_timer.unwrap();
                let now = self.now;
                match self.nodes.get_mut(&at).unwrap() {
                    Node::Server(s) => s.handle_timeout(now),
                    Node::Peer(p) => p.handle_timeout(now),
                }
                self.drain(at);
                // No busy loop: after handling, the deadline must have moved past now.
                let again = match self.nodes.get(&at).unwrap() {
                    Node::Server(s) => s.poll_timeout(),
                    Node::Peer(p) => p.poll_timeout(),
                };
                assert!(again.is_none_or(|t| t > now), "stale deadline at {at}");
            }
        }
        panic!("runaway simulation");
    }

    fn type_line(&mut self, at: &str, text: &str) {
        let now = self.now;
        self.peer(at).send_message(now, text).unwrap();
        self.drain(addr(at));
    }

    /// What `pick` takes from the events of the peer at `at`, in order.
    fn picked<T>(&self, at: &str, pick: impl FnMut(&PeerEvent) -> Option<T>) -> Vec<T> {
        let events = self.events.get(&addr(at));
        events.into_iter().flatten().filter_map(pick).collect()
    }

    fn messages(&self, at: &str) -> Vec<String> {
        self.picked(at, |e| match e {
            PeerEvent::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
    }

    fn paths(&self, at: &str) -> Vec<Path> {
        self.picked(at, |e| match e {
            PeerEvent::Path { path, .. } => Some(*path),
            _ => None,
        })
    }

    fn last_path(&self, at: &str) -> Option<Path> {
        self.paths(at).pop()
    }
}

fn chat(net: &mut Net) {
    net.run_for(Duration::from_secs(1));
    for i in 0..3 {
        net.type_line(A, &format!("a{i}"));
        net.type_line(B, &format!("b{i}"));
    }
    net.run_for(Duration::from_secs(5));
}

#[test]
fn two_peers_pair_punch_and_chat_directly() {
    let mut net = Net::new(10);
    net.add_peer(A, CODE, false, 1);
    net.run_for(Duration::from_millis(500));
    net.add_peer(B, CODE, false, 2);
    chat(&mut net);
    assert_eq!(net.messages(A), vec!["b0", "b1", "b2"]);
    assert_eq!(net.messages(B), vec!["a0", "a1", "a2"]);
    assert_eq!(net.last_path(A), Some(Path::Direct(addr(B))));
    assert_eq!(net.last_path(B), Some(Path::Direct(addr(A))));
    assert!(net.peer(A).all_acked() && net.peer(B).all_acked());
    insta::assert_snapshot!("register_pair_punch_chat", net.trace.join("\n"));
}

#[test]
fn relay_only_peers_chat_through_the_server() {
    let mut net = Net::new(10);
    net.add_pair(true);
    chat(&mut net);
    assert_eq!(net.messages(A), vec!["b0", "b1", "b2"]);
    assert_eq!(net.messages(B), vec!["a0", "a1", "a2"]);
    assert_eq!(net.last_path(A), Some(Path::Relay));
    assert!(net.peer(A).all_acked() && net.peer(B).all_acked());
}

#[test]
fn blocked_direct_path_falls_back_to_relay() {
    let mut net = Net::new(10);
    // Drop everything between the peers: only the server is reachable.
    net.drop = Box::new(|from, to, _| from != addr(SERVER) && to != addr(SERVER));
    net.add_pair(false);
    net.run_for(Duration::from_secs(4));
    for i in 0..3 {
        net.type_line(A, &format!("a{i}"));
    }
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.last_path(A), Some(Path::Relay));
    assert_eq!(net.messages(B), vec!["a0", "a1", "a2"]);
}

#[test]
fn lossy_network_delivers_every_message_once_in_order() {
    let mut net = Net::new(20);
    // Drop every third datagram (deterministic), whatever it is.
    let counter = std::cell::Cell::new(0u32);
    net.drop = Box::new(move |_, _, _| {
        counter.set(counter.get() + 1);
        counter.get().is_multiple_of(3)
    });
    net.add_pair(false);
    net.run_for(Duration::from_secs(2));
    let sent: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    for m in &sent {
        net.type_line(A, m);
    }
    net.run_for(Duration::from_secs(20));
    assert_eq!(net.messages(B), sent);
    assert!(net.peer(A).all_acked());
}

#[test]
fn third_client_gets_pool_full_and_silent_server_is_reported() {
    let mut net = Net::new(5);
    net.add_pair(false);
    net.add_peer("198.51.100.30:1234", CODE, false, 3);
    net.run_for(Duration::from_secs(1));
    let evs = &net.events[&addr("198.51.100.30:1234")];
    assert!(
        evs.contains(&PeerEvent::Error(PeerError::PoolFull)),
        "{evs:?}"
    );

    let mut net = Net::new(5);
    net.drop = Box::new(|_, to, _| to == addr(SERVER));
    net.add_peer(A, CODE, false, 1);
    net.run_for(Duration::from_secs(9));
    assert!(!net.peer(A).is_finished());
    net.run_for(Duration::from_secs(1));
    assert!(net.peer(A).is_finished());
    assert!(net.errors(A).contains(&PeerError::ServerUnreachable));
}

#[test]
fn peer_leaving_disconnects_the_other() {
    let mut net = Net::new(5);
    net.add_pair(false);
    net.run_for(Duration::from_secs(1));
    let now = net.now;
    net.peer(A).close(now);
    net.drain(addr(A));
    net.run_for(Duration::from_secs(1));
    assert!(net.saw(B, |e| matches!(e, PeerEvent::Disconnected { .. })));
}

#[test]
fn a_partner_leaving_after_both_finished_ends_the_conversation_cleanly() {
    let mut net = Net::new(10);
    let mut slow = PeerConfig::new(addr(SERVER), CODE.parse().unwrap());
    slow.linger = Duration::from_secs(5);
    net.start_peer(A, slow, 1);
    net.add_peer(B, CODE, false, 2);
    net.run_for(Duration::from_secs(1));
    net.type_line(A, "bye");
    let now = net.now;
    net.peer(A).finish(now);
    net.peer(B).finish(now);
    net.drain(addr(A));
    net.drain(addr(B));
    net.run_for(Duration::from_secs(1));
    let done = |net: &Net, at| net.saw(at, |e| *e == PeerEvent::ConversationDone);
    assert!(done(&net, B) && !done(&net, A), "B lingers 300 ms, A 5 s");
    // B leaves as soon as it is done: A learns it long before its own linger ends.
    let now = net.now;
    net.peer(B).close(now);
    net.drain(addr(B));
    net.run_for(Duration::from_secs(1));
    assert!(done(&net, A), "{:?}", net.events[&addr(A)]);
    assert!(!net.saw(A, |e| matches!(e, PeerEvent::Disconnected { .. })));
    assert_eq!(net.messages(B), vec!["bye"]);
}

#[test]
fn late_partner_upgrades_both_sides_from_relay_to_direct() {
    let mut net = Net::new(10);
    // B's PeerInfo copies are lost for the first 4 s: A punches alone, gives up and uses the relay; when B
    // finally punches, A must answer *and* ping back so that both end up direct.
    let start = net.now;
    let clock = std::rc::Rc::new(std::cell::Cell::new(start));
    let c = clock.clone();
    net.drop = Box::new(move |_, to, payload| {
        to == addr(B)
            && wire::describe(payload).contains("PeerInfo request")
            && c.get() < start + Duration::from_secs(4)
    });
    net.add_pair(false);
    for _ in 0..80 {
        clock.set(net.now);
        net.run_for(Duration::from_millis(100));
    }
    assert_eq!(net.paths(A), vec![Path::Relay, Path::Direct(addr(B))]);
    assert_eq!(net.paths(B), vec![Path::Relay, Path::Direct(addr(A))]);
}

/// The server answers the Register that completes a pair and sends PeerInfo at the same instant. When the
/// PeerInfo overtakes the answer (here: the answer is lost), the peer must still count itself registered and
/// keep the server informed, or the server expires it after a minute of direct chat and its partner is told
/// "peer left" (found by the simulator).
#[test]
fn peer_info_overtaking_the_register_answer_still_starts_server_keepalives() {
    let mut net = Net::new(10);
    let dropped = std::rc::Rc::new(std::cell::Cell::new(false));
    let d = dropped.clone();
    net.drop = Box::new(move |_, to, payload| {
        let hit = to == addr(B) && !d.get() && wire::describe(payload).contains("Register success");
        if hit {
            d.set(true);
        }
        hit
    });
    net.add_pair(false);
    net.run_for(Duration::from_secs(180));
    assert!(dropped.get(), "the Register answer to B was never sent");
    assert!(net.saw(B, |e| matches!(e, PeerEvent::Registered { .. })));
    for at in [A, B] {
        assert!(
            !net.saw(at, |e| matches!(e, PeerEvent::Disconnected { .. })),
            "{at} was disconnected:\n{}",
            net.trace.join("\n")
        );
    }
    assert!(matches!(net.last_path(A), Some(Path::Direct(_))));
    net.type_line(A, "still here");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.messages(B), vec!["still here".to_string()]);
}

// ---- end-to-end protection (the security issue's attacks, each failing on the plaintext protocol) ----

impl Net {
    /// Puts a datagram on the wire as if `from` had sent it now.
    fn inject(&mut self, from: SocketAddr, to: &str, payload: Vec<u8>) {
        self.seq += 1;
        let at = self.now + self.latency;
        self.in_flight
            .push_back((at, self.seq, from, addr(to), payload));
    }

    fn errors(&self, at: &str) -> Vec<PeerError> {
        self.picked(at, |e| match e {
            PeerEvent::Error(err) => Some(err.clone()),
            _ => None,
        })
    }
}

#[test]
fn plaintext_never_reaches_the_wire() {
    let mut net = Net::new(10);
    let secret = b"4111 1111 1111 1111".to_vec();
    let words = b"lobby-secret".to_vec();
    let seen = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let seen_in = seen.clone();
    net.drop = Box::new(move |_, _, payload| {
        seen_in.set(seen_in.get() + 1);
        for needle in [&secret, &words] {
            assert!(
                !payload
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice()),
                "plaintext on the wire: {}",
                String::from_utf8_lossy(needle)
            );
        }
        false
    });
    net.add_pair(false);
    net.run_for(Duration::from_secs(1));
    net.type_line(A, "4111 1111 1111 1111");
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.messages(B), vec!["4111 1111 1111 1111"]);
    assert!(seen.get() > 10, "every datagram was checked");
}

#[test]
fn wrong_code_fails_both_sides_delivers_nothing_and_burns_the_nameplate() {
    let mut net = Net::new(10);
    net.add_mismatched_pair();
    net.run_for(Duration::from_millis(300));
    net.type_line(A, "for bob only");
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.errors(A), vec![PeerError::WrongCode]);
    assert_eq!(net.errors(B), vec![PeerError::WrongCode]);
    assert!(net.messages(A).is_empty() && net.messages(B).is_empty());
    assert!(net.peer(A).is_finished() && net.peer(B).is_finished());
    let leaves = net
        .trace
        .iter()
        .filter(|l| l.contains("STUN Leave indication"))
        .count();
    assert!(
        leaves >= 2,
        "both sides leave (with BURN):\n{}",
        net.trace.join("\n")
    );
}

#[test]
fn forged_data_with_a_sniffed_pair_id_is_dropped_and_counted() {
    let mut net = Net::new(10);
    net.add_pair(false);
    net.run_for(Duration::from_secs(1));
    // An eavesdropper copies a real direct datagram's header (the pair id is in the clear) and forges the
    // rest: a chat DATA frame #0 and an ACK, unsealed, and then a replay of a real sealed datagram.
    let sniffed = std::rc::Rc::new(std::cell::RefCell::new(None::<Vec<u8>>));
    let sniff = sniffed.clone();
    net.drop = Box::new(move |from, to, payload| {
        if from == addr(A) && to == addr(B) && payload.first() == Some(&wire::DATA_TAG) {
            sniff.borrow_mut().get_or_insert_with(|| payload.to_vec());
        }
        false
    });
    net.type_line(A, "real");
    net.run_for(Duration::from_millis(100));
    let real = sniffed.borrow().clone().expect("a direct datagram");
    let mut forged = real[..wire::DIRECT_HEADER].to_vec();
    forged.extend([0u8; 8]); // counter 0
    forged.extend(b"\x00\x00\x00\x00\x00\x00\x00\x00\x00evil");
    let attacker: SocketAddr = "192.0.2.66:4444".parse().unwrap();
    let before = net.peer(B).rejected();
    net.inject(attacker, B, forged);
    net.inject(attacker, B, real.clone());
    net.inject(addr(A), B, real);
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        net.messages(B),
        vec!["real"],
        "nothing forged or replayed is delivered"
    );
    assert!(
        net.peer(B).rejected() >= before + 3,
        "the forgeries were counted"
    );
    assert_eq!(
        net.last_path(B),
        Some(Path::Direct(addr(A))),
        "the path was not hijacked"
    );
}

#[test]
fn forged_server_messages_from_an_off_path_attacker_change_nothing() {
    let mut net = Net::new(10);
    net.add_pair(false);
    net.run_for(Duration::from_secs(1));
    // The attacker spoofs the server's address but does not know the link key: a PeerLeft (unsigned, and
    // signed under a guessed key), and a PeerInfo that would re-pair A with the attacker.
    let left = wire::Msg::PeerLeft {
        tid: [9; 12],
        pair_id: None,
    };
    let attacker: SocketAddr = "192.0.2.66:4444".parse().unwrap();
    let info = wire::Msg::PeerInfo(wire::PeerInfo {
        tid: [8; 12],
        pair_id: [6; 8],
        public: attacker,
        locals: vec![],
        nat: Default::default(),
        name: "mallory".into(),
        mapped: None,
        hold: false,
        pake: Some(vec![1; 33]),
    });
    let before = net.peer(A).rejected();
    net.inject(addr(SERVER), A, left.encode());
    net.inject(addr(SERVER), A, left.encode_with_integrity(&[0; 16]));
    net.inject(addr(SERVER), A, info.encode());
    net.run_for(Duration::from_millis(200));
    net.type_line(A, "still here");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.peer(A).rejected(), before + 3, "all three were counted");
    assert!(net.errors(A).is_empty());
    assert!(!net.saw(A, |e| matches!(e, PeerEvent::Disconnected { .. })));
    assert_eq!(net.messages(B), vec!["still here"]);
}

#[test]
fn a_burnt_nameplate_is_refused_for_the_next_pair() {
    let mut net = Net::new(10);
    net.add_mismatched_pair();
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.errors(A), vec![PeerError::WrongCode]);
    let late = "198.51.100.40:7000";
    net.add_peer(late, CODE, false, 3);
    net.run_for(Duration::from_secs(1));
    assert!(
        matches!(
            net.errors(late).as_slice(),
            [PeerError::Rejected { code: 410, .. }]
        ),
        "{:?}",
        net.errors(late)
    );
}

#[test]
fn a_peer_without_a_code_gets_a_nameplate_from_the_server_and_its_partner_joins_with_the_code() {
    let mut net = Net::new(10);
    let mut c = PeerConfig::allocating(addr(SERVER));
    c.name = A.into();
    net.start_peer(A, c, 1);
    net.run_for(Duration::from_millis(500));
    let code = net
        .picked(A, |e| match e {
            PeerEvent::CodeAllocated { code } => Some(code.clone()),
            _ => None,
        })
        .pop()
        .expect("a code");
    assert!(
        code.starts_with("1-"),
        "the first free nameplate is 1: {code}"
    );
    assert_eq!(
        code.split('-').count(),
        3,
        "a nameplate and two words: {code}"
    );
    net.add_peer(B, &code, false, 2);
    net.run_for(Duration::from_secs(1));
    net.type_line(B, "found you");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.messages(A), vec!["found you"]);
    // A second creator gets the next free nameplate.
    let c2 = "198.51.100.50:5000";
    net.start_peer(c2, PeerConfig::allocating(addr(SERVER)), 3);
    net.run_for(Duration::from_millis(500));
    assert!(net.saw(
        c2,
        |e| matches!(e, PeerEvent::CodeAllocated { code } if code.starts_with("2-"))
    ));
}
