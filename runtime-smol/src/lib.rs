//! Thin smol (async-io) driver for punch-core machines: sockets + one timer + a loop. No protocol logic, and
//! no loop logic either: that is [`punch_core::drive`], shared with `punch-tokio`.
//! Same shape as `punch-tokio`: [`bind`], [`run`] with a command channel in and an event channel out, and the
//! same batched I/O (`quinn-udp`: one `recvmmsg` of up to 32 datagrams per socket per wake-up with GRO, GSO
//! sends of the runs [`punch_core::drive::Gso`] groups); unlike `punch-tokio` it sends single datagrams to
//! different destinations one by one, not in one `sendmmsg`.
#![warn(missing_docs)]

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::task::Poll;
use std::time::Instant;

use async_io::{Async, Timer};
use futures_lite::future;
use std::io::IoSliceMut;

use punch_core::drive::{
    sent_run, Drive, Gso, Output, Received, RecvBatch, Run, TimerUpdate, Wake, RECV_BATCH,
};
use punch_core::Machine;
use quinn_udp::{RecvMeta, UdpSocketState};

pub use async_channel::{unbounded, Receiver, Sender};
pub use punch_core::drive::Command;

/// Binds one UDP socket per address, in order. Errors name the address. An unspecified IPv6 address is
/// bound dual-stack (IPV6_V6ONLY off) unless an IPv4 address of `addrs` has its port
/// ([`punch_core::drive::dual_stack`]); other IPv6 addresses are IPv6-only.
pub fn bind(addrs: &[SocketAddr]) -> io::Result<Vec<Async<UdpSocket>>> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            std_socket(addrs, i)
                .and_then(Async::new)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {a}: {e}")))
        })
        .collect()
}

/// A std socket bound to `addrs[i]`, dual-stack by [`punch_core::drive::dual_stack`].
fn std_socket(addrs: &[SocketAddr], i: usize) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let a = addrs[i];
    let s = Socket::new(Domain::for_address(a), Type::DGRAM, Some(Protocol::UDP))?;
    if a.is_ipv6() {
        s.set_only_v6(!punch_core::drive::dual_stack(addrs, i))?;
    }
    s.bind(&a.into())?;
    Ok(s.into())
}

/// The local addresses of `sockets`, in order.
pub fn locals(sockets: &[Async<UdpSocket>]) -> io::Result<Vec<SocketAddr>> {
    sockets.iter().map(|s| s.get_ref().local_addr()).collect()
}

/// The clock the drivers read: the only place time enters a machine.
pub fn now() -> Instant {
    Instant::now()
}

/// Asks for `bytes` of SO_RCVBUF and SO_SNDBUF on `s`; returns what the kernel granted (receive, send): Linux
/// doubles the request and caps it at `net.core.rmem_max` / `wmem_max`.
pub fn socket_buffers(s: &Async<UdpSocket>, bytes: usize) -> io::Result<(usize, usize)> {
    let sock = socket2::SockRef::from(s.get_ref());
    sock.set_recv_buffer_size(bytes)?;
    sock.set_send_buffer_size(bytes)?;
    Ok((sock.recv_buffer_size()?, sock.send_buffer_size()?))
}

/// Sends `run` on `s`: one GSO `sendmsg` for a run of several datagrams (one at a time if that fails), and a
/// run with a TTL as one datagram with that IPv4 TTL / IPv6 hop limit (the socket's own is restored after).
async fn send(s: &Async<UdpSocket>, state: &UdpSocketState, run: &Run) -> io::Result<()> {
    if let Some(hops) = run.ttl.map(u32::from) {
        let sock = socket2::SockRef::from(s.get_ref());
        let before = (sock.ttl_v4(), sock.unicast_hops_v6());
        let _ = sock.set_ttl_v4(hops);
        let _ = sock.set_unicast_hops_v6(hops);
        let result = s.send_to(&run.payload, run.destination).await;
        if let Ok(v4) = before.0 {
            let _ = sock.set_ttl_v4(v4);
        }
        if let Ok(v6) = before.1 {
            let _ = sock.set_unicast_hops_v6(v6);
        }
        return result.map(drop);
    }
    let transmit = quinn_udp::Transmit {
        destination: run.destination,
        ecn: None,
        contents: &run.payload,
        segment_size: (run.count > 1).then_some(run.segment),
        src_ip: None,
    };
    match s.write_with(|u| state.try_send(u.into(), &transmit)).await {
        Err(e) if run.count > 1 => {
            tracing::debug!(
                "GSO send of {} datagrams failed ({e}): one at a time",
                run.count
            );
            let mut last = Ok(());
            for d in run.datagrams() {
                last = s.send_to(d, run.destination).await.map(drop);
            }
            last
        }
        r => r,
    }
}

/// Runs `machine` over `sockets` until `commands` is closed; returns the machine. Events go to `events`
/// (dropped if nobody listens). A transmit whose `source` is `None` goes out on the first socket; one whose
/// `source` is not among the sockets is dropped (logged at warn).
///
/// The application talks to the machine through commands, which run in the loop with the current time; a whole
/// peer is in `examples/smol_peer.rs`. A server on loopback:
///
/// ```
/// use punch_core::{Server, ServerConfig};
///
/// let sockets = punch_smol::bind(&["127.0.0.1:0".parse().unwrap()])?;
/// let listen = punch_smol::locals(&sockets)?[0];
/// let server = Server::new(ServerConfig::new(listen), punch_smol::now());
/// let (commands, command_rx) = punch_smol::unbounded::<punch_smol::Command<Server>>();
/// let (events, _events) = punch_smol::unbounded();
/// commands.try_send(Box::new(|server, _now| assert_eq!(server.members(), 0))).unwrap();
/// drop(commands); // closing the channel ends the loop (after the queued command), which hands the machine back
/// let server = async_io::block_on(punch_smol::run(server, sockets, command_rx, events))?;
/// assert_eq!(server.stats().received, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn run<M>(
    mut machine: M,
    sockets: Vec<Async<UdpSocket>>,
    commands: Receiver<Command<M>>,
    events: Sender<M::Event>,
) -> io::Result<M>
where
    M: Machine,
{
    let mut drive = Drive::new(locals(&sockets)?);
    // Each socket with its quinn-udp state, by socket number (birthday probing adds and removes some).
    let mut socks = sockets
        .into_iter()
        .map(|s| Ok((UdpSocketState::new(s.get_ref().into())?, s)))
        .collect::<io::Result<Vec<_>>>()?;
    let gro = socks.iter().map(|(st, _)| st.gro_segments()).max();
    let mut batch = RecvBatch::for_gro(gro.unwrap_or(1));
    let mut meta = [RecvMeta::default(); RECV_BATCH];
    let mut timer = Timer::never();
    loop {
        // Per drain: a GSO failure lowers quinn-udp's segment limit for the next ones.
        let max_segments = socks.iter().map(|(st, _)| st.max_gso_segments()).min();
        let mut gso = Gso::new(max_segments.unwrap_or(1));
        let mut requests = Vec::new();
        for out in drive.drain(&mut machine) {
            match out {
                Output::Sockets(r) => requests.push(r),
                Output::Timer(TimerUpdate::Set(at)) => timer.set_at(at),
                Output::Timer(TimerUpdate::Clear) => timer = Timer::never(),
                Output::Timer(TimerUpdate::Keep) => {}
                Output::Event(e) => {
                    let _ = events.try_send(e);
                }
                Output::Transmit { socket, transmit } => {
                    if let Some(run) = gso.push(socket, transmit) {
                        let (state, s) = &socks[run.socket];
                        sent_run(&run, send(s, state, &run).await);
                    }
                }
            }
        }
        if let Some(run) = gso.flush() {
            let (state, s) = &socks[run.socket];
            sent_run(&run, send(s, state, &run).await);
        }
        if !requests.is_empty() {
            for r in requests {
                drive.serve(&mut machine, now(), r, &mut socks, |at| {
                    let s = Async::<UdpSocket>::bind(at)?;
                    let state = UdpSocketState::new(s.get_ref().into())?;
                    Ok((s.get_ref().local_addr()?, (state, s)))
                });
            }
            continue; // drain what the machine does with its new sockets
        }
        let recv = poll_fn(|cx| {
            for socket in drive.poll_order() {
                let (state, s) = &socks[socket];
                loop {
                    let mut bufs = batch.buffers_mut();
                    let mut iov: [IoSliceMut; RECV_BATCH] =
                        std::array::from_fn(|_| IoSliceMut::new(bufs.next().unwrap_or_default()));
                    match state.recv(s.get_ref().into(), &mut iov, &mut meta) {
                        Ok(count) => {
                            for (i, m) in meta[..count].iter().enumerate() {
                                let (from, len, stride) = (m.addr, m.len, m.stride);
                                batch.set(i, Received { from, len, stride });
                            }
                            return Poll::Ready(Wake::Received { socket, count });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            match s.poll_readable(cx) {
                                Poll::Ready(Ok(())) => continue,
                                Poll::Ready(Err(error)) => {
                                    return Poll::Ready(Wake::RecvError { socket, error })
                                }
                                Poll::Pending => break,
                            }
                        }
                        Err(error) => return Poll::Ready(Wake::RecvError { socket, error }),
                    }
                }
            }
            Poll::Pending
        });
        let fired = async {
            (&mut timer).await;
            Wake::Timeout
        };
        let command = async {
            match commands.recv().await {
                Ok(c) => Wake::Command(c),
                Err(_) => Wake::Stop,
            }
        };
        // `race` polls in a random order, so that no source (a flooded socket, say) starves the others.
        let wake = future::race(recv, future::race(fired, command)).await;
        if let ControlFlow::Break(()) = drive.apply(&mut machine, now(), wake, &batch) {
            return Ok(machine);
        }
    }
}
