//! `punch server --threads N` (N > 1; the default is the number of cores): one control thread runs the
//! [`Server`] machine; N data threads each own a socket bound to the same address with SO_REUSEPORT (the
//! kernel spreads sources across them by their 4-tuple). A data thread forwards canonical relays on routes
//! the server already checked ([`RelayTable`](punch_core::RelayTable), through a [`RelayForwarder`]) itself
//! and hands every other datagram to the control thread, which sends its answers from one of the sockets
//! (all have the same local address). A data thread hands over the control datagrams of one received batch
//! together, and the control thread sends the answers to what it handled in one go (one `sendmmsg`).
//! Relay counts go back to the server every 200 ms
//! ([`Server::note_relayed`]). Data threads batch their I/O as the drivers do: one quinn-udp `recvmmsg`
//! (with GRO) per wake-up, and what it forwards grouped into GSO sends by [`forward_batch`] (sans-IO, in
//! `punch_core::drive`); they wait for their non-blocking socket with `poll(2)` (docs/SCALING.md).
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use punch_core::drive::{
    for_socket, forward_batch, send_groups, sent_group, sent_run, Gso, Received, RecvBatch, Run,
    RECV_BATCH, SEND_BATCH,
};
use punch_core::{Machine, RelayForwarder, Server, ServerEvent};
use quinn_udp::{RecvMeta, UdpSocketState};

use crate::driver::{Input, Inputs};

/// Hand-overs waiting for the control thread at most, each the control datagrams of one received batch (at
/// most [`RECV_BATCH`] datagrams, so at most 65,536 in all); more are dropped, as a full socket buffer would.
const CONTROL_QUEUE: usize = 65_536 / RECV_BATCH;
/// How often data threads report what they relayed, and check for a stop.
const TICK: Duration = Duration::from_millis(200);

enum Ctl {
    /// The datagrams of one received batch the data thread did not forward: (local, from, bytes) each.
    Datagrams(Vec<(SocketAddr, SocketAddr, Vec<u8>)>),
    Relayed(Vec<(SocketAddr, u64)>),
}

/// The running threads of a multi-threaded server.
pub struct Threaded {
    /// The local address every socket is bound to.
    pub local: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Threaded {
    /// Binds `threads` sockets to `addr` (SO_REUSEPORT; buffers of `buffer` bytes if given) and starts them
    /// with `make(local)` as the control machine; its events go into `inputs`. Every thread first runs
    /// `init` (the bench reads its CPU clock there).
    pub fn start(
        addr: SocketAddr,
        threads: usize,
        buffer: Option<usize>,
        make: impl FnOnce(SocketAddr) -> Server,
        inputs: Inputs<ServerEvent>,
        init: impl Fn() + Clone + Send + 'static,
    ) -> Result<Threaded> {
        let first = bind_shared(addr, buffer)?;
        let local = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..threads {
            sockets.push(bind_shared(local, buffer)?);
        }
        if let Some(bytes) = buffer {
            log_buffers(&sockets[0], bytes);
        }
        let mut server = make(local);
        let table = server.relay_table();
        let (packets, bytes) = (
            server.config().relay_packet_rate,
            server.config().relay_byte_rate,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel(CONTROL_QUEUE);
        let send = sockets[0].try_clone()?;
        let mut handles = Vec::new();
        for s in sockets {
            let (tx, stop, init) = (tx.clone(), stop.clone(), init.clone());
            let forwarder = RelayForwarder::new(
                table.clone(),
                packets,
                bytes,
                punch_tokio::now(),
                crate::seed(),
            );
            handles.push(thread::spawn(move || {
                init();
                data_loop(s, local, forwarder, &tx, &stop);
            }));
        }
        drop(tx);
        let control_stop = stop.clone();
        handles.push(thread::spawn(move || {
            init();
            control_loop(server, send, &rx, &inputs, &control_stop);
        }));
        Ok(Threaded {
            local,
            stop,
            threads: handles,
        })
    }

    /// Stops every thread and waits for them.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn bind_shared(a: SocketAddr, buffer: Option<usize>) -> Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(a), Type::DGRAM, Some(Protocol::UDP))?;
    if a.is_ipv6() {
        s.set_only_v6(!punch_core::drive::dual_stack(&[a], 0))?;
    }
    s.set_reuse_port(true)?;
    if let Some(bytes) = buffer {
        s.set_recv_buffer_size(bytes)?;
        s.set_send_buffer_size(bytes)?;
    }
    s.bind(&a.into())
        .with_context(|| format!("cannot bind UDP {a}"))?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Logs the socket buffers the kernel granted, as the single loop does (at warn when less than asked).
fn log_buffers(s: &UdpSocket, bytes: usize) {
    let sock = socket2::SockRef::from(s);
    if let (Ok(receive), Ok(send)) = (sock.recv_buffer_size(), sock.send_buffer_size()) {
        crate::driver::log_granted(bytes, receive, send);
    }
}

fn data_loop(
    s: UdpSocket,
    local: SocketAddr,
    mut forwarder: RelayForwarder,
    control: &mpsc::SyncSender<Ctl>,
    stop: &AtomicBool,
) {
    let state = match UdpSocketState::new((&s).into()) {
        Ok(state) => state,
        Err(e) => return tracing::warn!("data thread on {local}: {e}"),
    };
    let mut batch = RecvBatch::for_gro(state.gro_segments());
    let mut meta = [RecvMeta::default(); RECV_BATCH];
    let mut last_report = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let got = {
            let mut bufs = batch.buffers_mut();
            let mut iov: [IoSliceMut; RECV_BATCH] =
                std::array::from_fn(|_| IoSliceMut::new(bufs.next().unwrap_or_default()));
            state.recv((&s).into(), &mut iov, &mut meta)
        };
        match got {
            Ok(count) => {
                for (i, m) in meta[..count].iter().enumerate() {
                    let (from, len, stride) = (m.addr, m.len, m.stride);
                    batch.set(i, Received { from, len, stride });
                }
                let now = punch_tokio::now();
                // Per batch: a GSO failure lowers quinn-udp's segment limit for the next ones.
                let mut gso = Gso::new(state.max_gso_segments());
                let mut handed = Vec::new();
                forward_batch(
                    local,
                    &batch,
                    count,
                    &mut gso,
                    |from, data| forwarder.forward(now, from, data),
                    |from, data| handed.push((local, from, data.to_vec())),
                    |run| sent_run(&run, send_run(&s, &state, &run)),
                );
                // One hand-over (and at most one wake-up of the control thread) per batch.
                if !handed.is_empty() {
                    let sent = control.try_send(Ctl::Datagrams(handed));
                    if let Err(mpsc::TrySendError::Disconnected(_)) = sent {
                        return;
                    }
                }
            }
            Err(e) if is_timeout(&e) => {
                wait(&s, libc::POLLIN);
            }
            Err(e) => tracing::debug!("receive: {e}"),
        }
        if last_report.elapsed() >= TICK {
            last_report = Instant::now();
            let relayed = forwarder.take_relayed();
            if !relayed.is_empty() {
                let _ = control.try_send(Ctl::Relayed(relayed));
            }
        }
    }
}

/// Sends `run` on the non-blocking `s`: one GSO `sendmsg` for a run of several datagrams (one at a time if
/// that fails), as the drivers do. Data threads never send with a TTL.
fn send_run(s: &UdpSocket, state: &UdpSocketState, run: &Run) -> io::Result<()> {
    let transmit = quinn_udp::Transmit {
        destination: run.destination,
        ecn: None,
        contents: &run.payload,
        segment_size: (run.count > 1).then_some(run.segment),
        src_ip: None,
    };
    match writable(s, || state.try_send(s.into(), &transmit)) {
        Err(e) if run.count > 1 && !is_timeout(&e) => {
            tracing::debug!(
                "GSO send of {} datagrams failed ({e}): one at a time",
                run.count
            );
            let mut last = Ok(());
            for d in run.datagrams() {
                last = writable(s, || s.send_to(d, run.destination).map(drop));
            }
            last
        }
        r => r,
    }
}

/// Runs the send `op` on the non-blocking `s`; when the send buffer is full, waits (at most [`TICK`]) for
/// room and tries once more (then the datagram is dropped, as UDP may).
fn writable<T>(s: &UdpSocket, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match op() {
        Err(e) if is_timeout(&e) => {
            wait(s, libc::POLLOUT);
            op()
        }
        r => r,
    }
}

/// Waits at most [`TICK`] for `events` (`POLLIN`, `POLLOUT`) on `s`.
fn wait(s: &UdpSocket, events: libc::c_short) {
    let mut fd = libc::pollfd {
        fd: s.as_raw_fd(),
        events,
        revents: 0,
    };
    let ms = libc::c_int::try_from(TICK.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for the duration of the call.
    unsafe { libc::poll(&mut fd, 1, ms) };
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn control_loop(
    mut server: Server,
    send: UdpSocket,
    rx: &mpsc::Receiver<Ctl>,
    inputs: &Inputs<ServerEvent>,
    stop: &AtomicBool,
) {
    let local = send.local_addr().ok();
    let now = punch_tokio::now;
    while !stop.load(Ordering::Relaxed) {
        let wait = server
            .poll_deadline()
            .map_or(TICK, |d| d.at.saturating_duration_since(now()))
            .min(TICK);
        // The first hand-over waits; up to a batch of datagrams more that are already queued join it, so
        // their answers leave together (one `sendmmsg`).
        let mut next = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut handled = 0;
        while let Some(m) = next.take() {
            let t = now();
            match m {
                Ctl::Datagrams(datagrams) => {
                    handled += datagrams.len();
                    for (l, from, data) in datagrams {
                        server.handle_input(t, l, from, &data);
                    }
                }
                Ctl::Relayed(counts) => {
                    for (from, n) in counts {
                        server.note_relayed(t, from, n);
                    }
                }
            }
            if handled < RECV_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if server.poll_deadline().is_some_and(|d| d.at <= now()) {
            server.handle_timeout(now());
        }
        let mut gso = Gso::new(1);
        let mut runs = Vec::new();
        while let Some(mut t) = server.poll_transmit() {
            t.destination = local.map_or(t.destination, |l| for_socket(l, t.destination));
            runs.extend(gso.push(0, t));
        }
        runs.extend(gso.flush());
        for group in send_groups(&runs, SEND_BATCH) {
            let mut rest = group;
            while let Some(first) = rest.first() {
                let result = if rest.len() > 1 && cfg!(target_os = "linux") {
                    writable(&send, || punch_tokio::sendmmsg(&send, rest))
                } else {
                    writable(&send, || {
                        send.send_to(&first.payload, first.destination).map(|_| 1)
                    })
                };
                sent_group(&mut rest, result);
            }
        }
        while let Some(e) = server.poll_event() {
            inputs.send(Input::Event(e));
        }
    }
}
