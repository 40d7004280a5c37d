//! Thin tokio driver for punch-core machines: sockets + one timer + a loop. No protocol logic lives here, and
//! no loop logic either: that is [`punch_core::drive`], shared with `punch-smol`.
//!
//! ```text
//! loop {
//!     drain: poll_transmit -> send_to, poll_event -> events channel, deadline -> reset the timer if it changed
//!     wait for: a datagram on any socket (fair order) | the timer | a command from the application
//!     feed it to the machine (handle_input / handle_timeout / the command closure)
//! }
//! ```
//! The loop ends, returning the machine, when the application drops its command sender.
#![warn(missing_docs)]

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::task::Poll;
use std::time::Instant;

use punch_core::drive::{sent, Drive, Output, TimerUpdate, Wake, RECV_BUFFER};
use punch_core::Machine;
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

/// Sends `t` on `s`; with `t.ttl`, as the IPv4 TTL and IPv6 hop limit of this datagram only.
async fn send(s: &UdpSocket, t: &punch_core::Transmit) -> io::Result<usize> {
    let Some(ttl) = t.ttl.map(u32::from) else {
        return s.send_to(&t.payload, t.destination).await;
    };
    let sock = socket2::SockRef::from(s);
    let (v4, v6) = (sock.ttl_v4().ok(), sock.unicast_hops_v6().ok());
    let _ = (sock.set_ttl_v4(ttl), sock.set_unicast_hops_v6(ttl));
    let sent = s.send_to(&t.payload, t.destination).await;
    let _ = v4.map(|v| sock.set_ttl_v4(v));
    let _ = v6.map(|v| sock.set_unicast_hops_v6(v));
    sent
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
    let mut buf = vec![0u8; RECV_BUFFER];
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed = false;
    loop {
        for out in drive.drain(&mut machine) {
            match out {
                Output::Timer(TimerUpdate::Set(at)) => {
                    timer.as_mut().reset(at.into());
                    armed = true;
                }
                Output::Timer(TimerUpdate::Clear) => armed = false,
                Output::Timer(TimerUpdate::Keep) => {}
                Output::Event(e) => {
                    let _ = events.send(e);
                }
                Output::Transmit {
                    socket,
                    transmit: t,
                } => {
                    sent(&t, send(&sockets[socket], &t).await);
                }
            }
        }
        let recv = poll_fn(|cx| {
            for socket in drive.poll_order() {
                let mut rb = tokio::io::ReadBuf::new(&mut buf);
                if let Poll::Ready(r) = sockets[socket].poll_recv_from(cx, &mut rb) {
                    return Poll::Ready(match r {
                        Ok(from) => Wake::Datagram {
                            socket,
                            from,
                            len: rb.filled().len(),
                        },
                        Err(error) => Wake::RecvError { socket, error },
                    });
                }
            }
            Poll::Pending
        });
        let wake = tokio::select! {
            w = recv => w,
            () = &mut timer, if armed => Wake::Timeout,
            c = commands.recv() => c.map_or(Wake::Stop, Wake::Command),
        };
        if let ControlFlow::Break(()) = drive.apply(&mut machine, now(), wake, &buf) {
            return Ok(machine);
        }
    }
}
