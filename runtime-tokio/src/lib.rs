//! Thin tokio driver for punch-core machines: sockets + one timer + a loop. No protocol logic lives here.
//!
//! ```text
//! loop {
//!     wait for: a datagram on any socket | the machine's deadline | a command from the application
//!     feed it to the machine (handle_input / handle_timeout / the command closure)
//!     drain: poll_transmit -> send_to, poll_event -> events channel
//! }
//! ```
//! The loop ends, returning the machine, when the application drops its command sender.
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Instant;

use punch_core::Machine;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Something the application does to the machine, with the current time.
pub type Command<M> = Box<dyn FnOnce(&mut M, Instant) + Send>;

/// Binds one UDP socket per address, in order. Errors name the address ("address in use" etc.).
pub async fn bind(addrs: &[SocketAddr]) -> io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::new();
    for a in addrs {
        let s = UdpSocket::bind(a)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {a}: {e}")))?;
        sockets.push(s);
    }
    Ok(sockets)
}

/// The clock the drivers read: the only place time enters a machine.
pub fn now() -> Instant {
    Instant::now()
}

enum Wake<M> {
    Datagram(usize, SocketAddr, usize),
    Timeout,
    Command(Command<M>),
    Stop,
}

/// Runs `machine` over `sockets` until `commands` is closed. Events go to `events` (dropped if nobody
/// listens). The first socket is used for transmits whose `source` is `None` or unknown.
pub async fn run<M>(
    mut machine: M,
    sockets: Vec<UdpSocket>,
    mut commands: mpsc::UnboundedReceiver<Command<M>>,
    events: mpsc::UnboundedSender<M::Event>,
) -> io::Result<M>
where
    M: Machine,
{
    let locals: Vec<SocketAddr> = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<io::Result<_>>()?;
    let mut buf = vec![0u8; 4096];
    drain(&mut machine, &sockets, &locals, &events).await;
    loop {
        let deadline = machine.poll_timeout();
        let wake = {
            let recv = poll_fn(|cx| {
                for (i, s) in sockets.iter().enumerate() {
                    let mut rb = tokio::io::ReadBuf::new(&mut buf);
                    if let Poll::Ready(r) = s.poll_recv_from(cx, &mut rb) {
                        return Poll::Ready(r.map(|from| (i, from, rb.filled().len())));
                    }
                }
                Poll::Pending
            });
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = recv => match r {
                    Ok((i, from, n)) => Wake::Datagram(i, from, n),
                    Err(e) => {
                        // ICMP errors surface here on some platforms; they are not fatal for UDP.
                        tracing::debug!("recv error: {e}");
                        continue;
                    }
                },
                _ = timer => Wake::Timeout,
                c = commands.recv() => c.map_or(Wake::Stop, Wake::Command),
            }
        };
        let now = now();
        match wake {
            Wake::Datagram(i, from, n) => machine.handle_input(now, locals[i], from, &buf[..n]),
            Wake::Timeout => machine.handle_timeout(now),
            Wake::Command(c) => c(&mut machine, now),
            Wake::Stop => {
                drain(&mut machine, &sockets, &locals, &events).await;
                return Ok(machine);
            }
        }
        drain(&mut machine, &sockets, &locals, &events).await;
    }
}

async fn drain<M: Machine>(
    machine: &mut M,
    sockets: &[UdpSocket],
    locals: &[SocketAddr],
    events: &mpsc::UnboundedSender<M::Event>,
) {
    while let Some(t) = machine.poll_transmit() {
        let i = t
            .source
            .and_then(|s| locals.iter().position(|l| *l == s))
            .unwrap_or(0);
        if let Err(e) = sockets[i].send_to(&t.payload, t.destination).await {
            tracing::debug!(to = %t.destination, "send error: {e}");
        }
    }
    while let Some(e) = machine.poll_event() {
        let _ = events.send(e);
    }
}
