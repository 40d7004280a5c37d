//! The load generator: one client sends relay datagrams (a sequence number and a send time in the first 16
//! bytes of DATA) in `sendmmsg` batches at a paced or unlimited rate; its partner receives them with
//! `recvmmsg` and measures loss and latency. The system under test runs on another thread with a CPU clock.
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::net::{self, ThreadCpu, BATCH};

/// Two registered, paired clients and the relay datagram the sender sends.
pub struct Flow {
    /// Sends the load.
    pub sender: UdpSocket,
    /// Receives what the system under test forwards.
    pub receiver: UdpSocket,
    /// What the sender sends (a Relay indication, a TURN ChannelData); DATA is its last `payload` bytes.
    pub template: Vec<u8>,
    /// Bytes before DATA in what the receiver gets (the Relay indication's header and attributes when the
    /// server forwards it as received; 0 when the server strips its framing, as TURN does).
    pub overhead: usize,
    /// SO_RCVBUF the kernel granted the clients.
    pub rcvbuf: usize,
}

impl Flow {
    /// The receiver's address (where a forwarder must send).
    pub fn receiver_addr(&self) -> std::io::Result<SocketAddr> {
        self.receiver.local_addr()
    }
}

/// How to load a system.
pub struct Load {
    /// How long to send.
    pub duration: Duration,
    /// Datagrams per second (0: unlimited).
    pub rate: u64,
    /// DATA bytes per datagram.
    pub payload: usize,
    /// The CPU to pin the generator's threads to.
    pub pin: Option<usize>,
}

/// What one run measured.
pub struct Outcome {
    /// Datagrams the kernel accepted from the sender.
    pub sent: u64,
    /// Datagrams that arrived at the receiver.
    pub received: u64,
    /// Seconds of sending.
    pub seconds: f64,
    /// Median send-to-receive time.
    pub p50_us: u64,
    /// 99th percentile send-to-receive time.
    pub p99_us: u64,
    /// CPU time the system under test used during the run.
    pub cpu: Duration,
}

impl Outcome {
    /// Datagrams sent per second.
    pub fn sent_per_s(&self) -> f64 {
        self.sent as f64 / self.seconds
    }
    /// Datagrams received per second.
    pub fn received_per_s(&self) -> f64 {
        self.received as f64 / self.seconds
    }
    /// The share of sent datagrams that never arrived.
    pub fn loss(&self) -> f64 {
        1.0 - self.received as f64 / (self.sent.max(1)) as f64
    }
    /// Datagrams forwarded per CPU-second of the system under test.
    pub fn per_cpu_s(&self) -> f64 {
        self.received as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
    /// The JSON object documented in `punch bench relay --help`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "sent": self.sent,
            "received": self.received,
            "sent_per_s": self.sent_per_s(),
            "received_per_s": self.received_per_s(),
            "loss": self.loss(),
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "server_cpu_s": self.cpu.as_secs_f64(),
            "per_cpu_s": self.per_cpu_s(),
        })
    }
}

/// Most latency samples kept (a 1-in-N sample beyond that would bias nothing; we simply stop recording).
const MAX_SAMPLES: usize = 20_000_000;

impl Load {
    /// Sends through `target` (whose thread's CPU clock is `cpu`) for `self.duration`, then waits for
    /// stragglers, and returns the figures.
    pub fn run(&self, flow: &Flow, target: SocketAddr, cpu: ThreadCpu) -> Result<Outcome> {
        let origin = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = flow.receiver.try_clone()?;
        receiver.set_read_timeout(Some(Duration::from_millis(50)))?;
        let (payload, pin, overhead) = (self.payload, self.pin, flow.overhead);
        let done = stop.clone();
        let rx = thread::spawn(move || {
            if let Some(c) = pin {
                net::pin(c);
            }
            receive(&receiver, payload, overhead, origin, &done)
        });
        let cpu0 = cpu.read();
        let start = Instant::now();
        let sent = self.send(flow, target, origin)?;
        let seconds = start.elapsed().as_secs_f64();
        thread::sleep(Duration::from_millis(300));
        let used = cpu.read().saturating_sub(cpu0);
        stop.store(true, Ordering::Relaxed);
        let (received, mut lat) = rx
            .join()
            .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
        lat.sort_unstable();
        let pct =
            |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)));
        Ok(Outcome {
            sent,
            received,
            seconds,
            p50_us: pct(0.5).copied().unwrap_or(0).into(),
            p99_us: pct(0.99).copied().unwrap_or(0).into(),
            cpu: used,
        })
    }

    /// The sender, on the calling thread: paced batches of `sendmmsg`.
    fn send(&self, flow: &Flow, target: SocketAddr, origin: Instant) -> Result<u64> {
        if let Some(c) = self.pin {
            net::pin(c);
        }
        let mut bufs = vec![flow.template.clone(); BATCH];
        let off = flow.template.len() - self.payload;
        let start = Instant::now();
        let mut seq: u64 = 0;
        loop {
            let now = Instant::now();
            let elapsed = now - start;
            if elapsed >= self.duration {
                return Ok(seq);
            }
            let due = match self.rate {
                0 => u64::MAX,
                r => (r as f64 * elapsed.as_secs_f64()) as u64 + 1,
            };
            if seq >= due {
                thread::sleep(Duration::from_micros(50));
                continue;
            }
            let n = (due - seq).min(BATCH as u64) as usize;
            let stamp = (now - origin).as_nanos() as u64;
            for (i, b) in bufs[..n].iter_mut().enumerate() {
                b[off..off + 8].copy_from_slice(&(seq + i as u64).to_le_bytes());
                b[off + 8..off + 16].copy_from_slice(&stamp.to_le_bytes());
            }
            let views: Vec<&[u8]> = bufs[..n].iter().map(Vec::as_slice).collect();
            match net::send_batch(&flow.sender, target, &views) {
                Ok(k) => seq += k as u64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The receiver: counts datagrams of at least `overhead + payload` bytes (the relayed size) and records their
/// latency in µs (from the stamp in their last `payload` bytes) until `stop`.
fn receive(
    sock: &UdpSocket,
    payload: usize,
    overhead: usize,
    origin: Instant,
    stop: &AtomicBool,
) -> (u64, Vec<u32>) {
    let mut slots = Box::new([[0u8; net::SLOT]; BATCH]);
    let mut lens = [0usize; BATCH];
    let mut lat = Vec::with_capacity(1 << 20);
    let mut received = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = net::recv_batch(sock, &mut slots, &mut lens) else {
            break;
        };
        let now = (Instant::now() - origin).as_nanos() as u64;
        for i in 0..n {
            if lens[i] < overhead + payload {
                continue; // not a relay datagram (a late PeerInfo, say)
            }
            let off = lens[i] - payload;
            received += 1;
            let sent =
                u64::from_le_bytes(slots[i][off + 8..off + 16].try_into().unwrap_or_default());
            if lat.len() < MAX_SAMPLES {
                lat.push((now.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32);
            }
        }
    }
    (received, lat)
}
