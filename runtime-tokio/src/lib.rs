//! Thin tokio driver for punch-core machines: sockets + one timer + a loop. No protocol logic lives here, and
//! no loop logic either: that is [`punch_core::drive`], shared with `punch-smol`.
//!
//! ```text
//! loop {
//!     drain: poll_transmit -> GSO runs -> sendmsg (single datagrams to many destinations: one sendmmsg),
//!            poll_event -> events channel, deadline -> reset the timer only if it changed
//!     wait for: datagrams on any socket (fair order; one recvmmsg of up to 32, GRO) | the timer | a command
//!     feed them to the machine (handle_input per datagram / handle_timeout / the command closure)
//! }
//! ```
//! Batched I/O is `quinn-udp` (`recvmmsg`, GRO, GSO); the grouping and splitting is sans-IO in
//! [`punch_core::drive`] ([`Gso`], [`RecvBatch`]).
//! The loop ends, returning the machine, when the application drops its command sender.
#![warn(missing_docs)]

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::task::Poll;
use std::time::Instant;

use std::io::IoSliceMut;

use punch_core::drive::{
    send_groups, sent_group, Drive, Gso, Output, Received, RecvBatch, Run, TimerUpdate, Wake,
    RECV_BATCH, SEND_BATCH,
};
use punch_core::Machine;
use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub use punch_core::drive::Command;

/// Binds one UDP socket per address, in order. Errors name the address ("address in use" etc.). An
/// unspecified IPv6 address is bound dual-stack (IPV6_V6ONLY off) unless an IPv4 address of `addrs` has its
/// port ([`punch_core::drive::dual_stack`]); other IPv6 addresses are IPv6-only.
pub async fn bind(addrs: &[SocketAddr]) -> io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let s = std_socket(addrs, i)
            .and_then(UdpSocket::from_std)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {a}: {e}")))?;
        sockets.push(s);
    }
    Ok(sockets)
}

/// A non-blocking std socket bound to `addrs[i]`, dual-stack by [`punch_core::drive::dual_stack`].
fn std_socket(addrs: &[SocketAddr], i: usize) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let a = addrs[i];
    let s = Socket::new(Domain::for_address(a), Type::DGRAM, Some(Protocol::UDP))?;
    if a.is_ipv6() {
        s.set_only_v6(!punch_core::drive::dual_stack(addrs, i))?;
    }
    s.bind(&a.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The local addresses of `sockets`, in order.
pub fn locals(sockets: &[UdpSocket]) -> io::Result<Vec<SocketAddr>> {
    sockets.iter().map(UdpSocket::local_addr).collect()
}

/// Asks for `bytes` of SO_RCVBUF and SO_SNDBUF on `s`; returns what the kernel granted (receive, send): Linux
/// doubles the request and caps it at `net.core.rmem_max` / `wmem_max`.
pub fn socket_buffers(s: &UdpSocket, bytes: usize) -> io::Result<(usize, usize)> {
    let sock = socket2::SockRef::from(s);
    sock.set_recv_buffer_size(bytes)?;
    sock.set_send_buffer_size(bytes)?;
    Ok((sock.recv_buffer_size()?, sock.send_buffer_size()?))
}

/// Sends `run` on `s`: one GSO `sendmsg` for a run of several datagrams (one at a time if that fails), and a
/// run with a TTL as one datagram with that IPv4 TTL / IPv6 hop limit (the socket's own is restored after).
async fn send(s: &UdpSocket, state: &UdpSocketState, run: &Run) -> io::Result<()> {
    if let Some(ttl) = run.ttl.map(u32::from) {
        let sock = socket2::SockRef::from(s);
        let (v4, v6) = (sock.ttl_v4().ok(), sock.unicast_hops_v6().ok());
        let _ = (sock.set_ttl_v4(ttl), sock.set_unicast_hops_v6(ttl));
        let sent = s.send_to(&run.payload, run.destination).await;
        let _ = v4.map(|v| sock.set_ttl_v4(v));
        let _ = v6.map(|v| sock.set_unicast_hops_v6(v));
        return sent.map(drop);
    }
    let transmit = quinn_udp::Transmit {
        destination: run.destination,
        ecn: None,
        contents: &run.payload,
        segment_size: (run.count > 1).then_some(run.segment),
        src_ip: None,
    };
    let gso = s
        .async_io(Interest::WRITABLE, || state.try_send(s.into(), &transmit))
        .await;
    match gso {
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

/// Sends a group of [`send_groups`]: a run alone as [`send`] does, several single datagrams (any
/// destinations) with `sendmmsg` where there is one (one at a time elsewhere, or after a failure).
async fn send_group(s: &UdpSocket, state: &UdpSocketState, group: &[Run]) {
    let mut rest = group;
    while let Some(first) = rest.first() {
        let result = if rest.len() > 1 && cfg!(target_os = "linux") {
            s.async_io(Interest::WRITABLE, || sendmmsg(s, rest)).await
        } else {
            send(s, state, first).await.map(|()| 1)
        };
        sent_group(&mut rest, result);
    }
}

/// One `sendmmsg` of the single datagrams `runs` (at most [`SEND_BATCH`]; each to its own destination) on
/// `s`: how many the kernel took, or the first one's error.
#[cfg(target_os = "linux")]
pub fn sendmmsg(s: &impl std::os::fd::AsRawFd, runs: &[Run]) -> io::Result<usize> {
    let runs = &runs[..runs.len().min(SEND_BATCH)];
    let names: Vec<socket2::SockAddr> = runs.iter().map(|r| r.destination.into()).collect();
    let mut iov: Vec<libc::iovec> = runs
        .iter()
        .map(|r| libc::iovec {
            iov_base: r.payload.as_ptr() as *mut libc::c_void,
            iov_len: r.payload.len(),
        })
        .collect();
    let mut hdr: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .zip(&names)
        .map(|(iov, name)| {
            // SAFETY: a zeroed mmsghdr is a valid empty header; the pointers set here outlive the call.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = name.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = name.len();
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let n = u32::try_from(hdr.len()).unwrap_or(u32::MAX);
    // SAFETY: `hdr` points into `iov`, `names` and the runs' payloads, all alive for the call.
    let r = unsafe { libc::sendmmsg(s.as_raw_fd(), hdr.as_mut_ptr(), n, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// Elsewhere: not available (the drivers send one datagram at a time).
#[cfg(not(target_os = "linux"))]
pub fn sendmmsg<S>(_: &S, _: &[Run]) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The clock the drivers read: the only place time enters a machine.
pub fn now() -> Instant {
    Instant::now()
}

/// Runs `machine` over `sockets` until `commands` is closed. Events go to `events` (dropped if nobody
/// listens). A transmit whose `source` is `None` goes out on the first socket; one whose `source` is not
/// among the sockets is dropped (logged at warn).
///
/// The application talks to the machine through commands, which run in the loop with the current time; a whole
/// peer is in `examples/tokio_peer.rs`. A server on loopback:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use punch_core::{Server, ServerConfig};
/// use tokio::sync::mpsc;
///
/// let sockets = punch_tokio::bind(&["127.0.0.1:0".parse().unwrap()]).await?;
/// let listen = punch_tokio::locals(&sockets)?[0];
/// let server = Server::new(ServerConfig::new(listen), punch_tokio::now());
/// let (commands, command_rx) = mpsc::unbounded_channel::<punch_tokio::Command<Server>>();
/// let (events, _events) = mpsc::unbounded_channel();
/// let running = tokio::spawn(punch_tokio::run(server, sockets, command_rx, events));
/// commands.send(Box::new(|server, _now| assert_eq!(server.members(), 0))).unwrap();
/// drop(commands); // closing the channel ends the loop, which hands the machine back
/// let server = running.await.unwrap()?;
/// assert_eq!(server.stats().received, 0);
/// # Ok(())
/// # }
/// ```
pub async fn run<M>(
    mut machine: M,
    sockets: Vec<UdpSocket>,
    mut commands: mpsc::UnboundedReceiver<Command<M>>,
    events: mpsc::UnboundedSender<M::Event>,
) -> io::Result<M>
where
    M: Machine,
{
    let mut drive = Drive::new(locals(&sockets)?);
    // Each socket with its quinn-udp state, by socket number (birthday probing adds and removes some).
    let mut socks = sockets
        .into_iter()
        .map(|s| Ok((UdpSocketState::new((&s).into())?, s)))
        .collect::<io::Result<Vec<_>>>()?;
    let gro = socks.iter().map(|(st, _)| st.gro_segments()).max();
    let mut batch = RecvBatch::for_gro(gro.unwrap_or(1));
    let mut meta = [RecvMeta::default(); RECV_BATCH];
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed = false;
    loop {
        // Per drain: a GSO failure lowers quinn-udp's segment limit for the next ones.
        let mut gso = Gso::new(
            socks
                .iter()
                .map(|(st, _)| st.max_gso_segments())
                .min()
                .unwrap_or(1),
        );
        let mut requests = Vec::new();
        let mut runs = Vec::new();
        for out in drive.drain(&mut machine) {
            match out {
                Output::Sockets(r) => requests.push(r),
                Output::Timer(TimerUpdate::Set(at)) => {
                    timer.as_mut().reset(at.into());
                    armed = true;
                }
                Output::Timer(TimerUpdate::Clear) => armed = false,
                Output::Timer(TimerUpdate::Keep) => {}
                Output::Event(e) => {
                    let _ = events.send(e);
                }
                Output::Transmit { socket, transmit } => runs.extend(gso.push(socket, transmit)),
            }
        }
        runs.extend(gso.flush());
        for group in send_groups(&runs, SEND_BATCH) {
            let (state, s) = &socks[group[0].socket];
            send_group(s, state, group).await;
        }
        if !requests.is_empty() {
            for r in requests {
                drive.serve(&mut machine, now(), r, &mut socks, |at| {
                    let s = std::net::UdpSocket::bind(at)?;
                    s.set_nonblocking(true)?;
                    let s = UdpSocket::from_std(s)?;
                    Ok((s.local_addr()?, (UdpSocketState::new((&s).into())?, s)))
                });
            }
            continue; // drain what the machine does with its new sockets
        }
        let recv = poll_fn(|cx| {
            for socket in drive.poll_order() {
                let (state, s) = &socks[socket];
                loop {
                    match s.poll_recv_ready(cx) {
                        Poll::Pending => break,
                        Poll::Ready(Err(error)) => {
                            return Poll::Ready(Wake::RecvError { socket, error })
                        }
                        Poll::Ready(Ok(())) => {}
                    }
                    let mut bufs = batch.buffers_mut();
                    let mut iov: [IoSliceMut; RECV_BATCH] =
                        std::array::from_fn(|_| IoSliceMut::new(bufs.next().unwrap_or_default()));
                    let got = s.try_io(Interest::READABLE, || {
                        state.recv(s.into(), &mut iov, &mut meta)
                    });
                    match got {
                        Ok(count) => {
                            for (i, m) in meta[..count].iter().enumerate() {
                                let (from, len, stride) = (m.addr, m.len, m.stride);
                                batch.set(i, Received { from, len, stride });
                            }
                            return Poll::Ready(Wake::Received { socket, count });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(error) => return Poll::Ready(Wake::RecvError { socket, error }),
                    }
                }
            }
            Poll::Pending
        });
        let wake = tokio::select! {
            w = recv => w,
            () = &mut timer, if armed => Wake::Timeout,
            c = commands.recv() => c.map_or(Wake::Stop, Wake::Command),
        };
        if let ControlFlow::Break(()) = drive.apply(&mut machine, now(), wake, &batch) {
            return Ok(machine);
        }
    }
}
