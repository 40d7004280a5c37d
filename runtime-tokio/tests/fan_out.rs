//! The driver sends every transmit of a drain, whatever their number and destinations: single datagrams to
//! many destinations leave together (one `sendmmsg` on Linux, `punch_core::drive::send_groups`), a GSO run
//! and a datagram with a TTL alone, and each destination gets its datagrams once, in order.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use punch_core::{Deadline, Machine, Transmit};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// On every datagram it receives, sends `copies` datagrams to each of `to` (numbered, in order), plus one
/// with a TTL to the first.
struct FanOut {
    to: Vec<SocketAddr>,
    copies: u8,
    out: VecDeque<Transmit>,
}

impl Machine for FanOut {
    type Event = ();

    fn handle_input(&mut self, _: Instant, _: SocketAddr, _: SocketAddr, _: &[u8]) {
        for copy in 0..self.copies {
            for (i, &destination) in self.to.iter().enumerate() {
                self.out.push_back(Transmit {
                    source: None,
                    destination,
                    payload: vec![i as u8, copy],
                    ttl: None,
                });
            }
        }
        self.out.push_back(Transmit {
            source: None,
            destination: self.to[0],
            payload: vec![0, 255],
            ttl: Some(64),
        });
    }

    fn handle_timeout(&mut self, _: Instant) {}

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_deadline(&self) -> Option<Deadline> {
        None
    }

    fn poll_event(&mut self) -> Option<()> {
        None
    }
}

#[tokio::test]
async fn one_drain_reaches_many_destinations_once_each_in_order() {
    let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut receivers = Vec::new();
    for _ in 0..100 {
        receivers.push(UdpSocket::bind(lo).await.unwrap());
    }
    let to: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
    let sockets = punch_tokio::bind(&[lo]).await.unwrap();
    let machine_addr = punch_tokio::locals(&sockets).unwrap()[0];
    let (_commands, command_rx) = mpsc::unbounded_channel::<punch_tokio::Command<FanOut>>();
    let (events, _events) = mpsc::unbounded_channel();
    let machine = FanOut {
        to: to.clone(),
        copies: 3,
        out: VecDeque::new(),
    };
    let running = tokio::spawn(punch_tokio::run(machine, sockets, command_rx, events));
    // 300 datagrams (3 to each of 100 destinations) and one with a TTL, from one input.
    receivers[0].send_to(b"go", machine_addr).await.unwrap();
    let mut buf = [0u8; 16];
    for (i, r) in receivers.iter().enumerate() {
        let expected: Vec<[u8; 2]> = if i == 0 {
            vec![[0, 0], [0, 1], [0, 2], [0, 255]]
        } else {
            (0..3).map(|c| [i as u8, c]).collect()
        };
        for want in expected {
            let (n, from) = tokio::time::timeout(Duration::from_secs(5), r.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("receiver {i} waited for {want:?}"))
                .unwrap();
            assert_eq!((&buf[..n], from), (&want[..], machine_addr), "receiver {i}");
        }
    }
    // Nothing more arrives anywhere.
    for (i, r) in receivers.iter().enumerate() {
        let more = tokio::time::timeout(Duration::from_millis(5), r.recv_from(&mut buf)).await;
        assert!(more.is_err(), "receiver {i} got an extra datagram");
    }
    running.abort();
}
