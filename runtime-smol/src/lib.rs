//! Thin smol (async-io) driver for punch-core machines: sockets + one timer + a loop. No protocol logic.
//! Same shape as `punch-tokio`: [`bind`], [`run`] with a command channel in and an event channel out.
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::task::Poll;
use std::time::Instant;

use async_io::{Async, Timer};
use futures_lite::future;
use punch_core::Machine;

/// Something the application does to the machine, with the current time.
pub type Command<M> = Box<dyn FnOnce(&mut M, Instant) + Send>;

pub use async_channel::{unbounded, Receiver, Sender};

/// Binds one UDP socket per address, in order. Errors name the address.
pub fn bind(addrs: &[SocketAddr]) -> io::Result<Vec<Async<UdpSocket>>> {
    addrs
        .iter()
        .map(|a| {
            Async::<UdpSocket>::bind(*a)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {a}: {e}")))
        })
        .collect()
}

/// The clock the drivers read: the only place time enters a machine.
pub fn now() -> Instant {
    Instant::now()
}

enum Wake<M> {
    Datagram(usize, SocketAddr, usize),
    RecvError,
    Timeout,
    Command(Command<M>),
    Stop,
}

/// Runs `machine` over `sockets` until `commands` is closed; returns the machine.
pub async fn run<M>(
    mut machine: M,
    sockets: Vec<Async<UdpSocket>>,
    commands: Receiver<Command<M>>,
    events: Sender<M::Event>,
) -> io::Result<M>
where
    M: Machine,
{
    let locals: Vec<SocketAddr> = sockets
        .iter()
        .map(|s| s.get_ref().local_addr())
        .collect::<io::Result<_>>()?;
    let mut buf = vec![0u8; 4096];
    drain(&mut machine, &sockets, &locals, &events).await;
    loop {
        let deadline = machine.poll_timeout();
        let wake = {
            let recv = poll_fn(|cx| {
                for (i, s) in sockets.iter().enumerate() {
                    loop {
                        match s.get_ref().recv_from(&mut buf) {
                            Ok((n, from)) => return Poll::Ready(Wake::Datagram(i, from, n)),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                match s.poll_readable(cx) {
                                    Poll::Ready(Ok(())) => continue,
                                    Poll::Ready(Err(_)) => return Poll::Ready(Wake::RecvError),
                                    Poll::Pending => break,
                                }
                            }
                            Err(e) => {
                                tracing::debug!("recv error: {e}");
                                return Poll::Ready(Wake::RecvError);
                            }
                        }
                    }
                }
                Poll::Pending
            });
            let timer = async {
                match deadline {
                    Some(d) => {
                        Timer::at(d).await;
                    }
                    None => future::pending::<()>().await,
                }
                Wake::Timeout
            };
            let command = async {
                match commands.recv().await {
                    Ok(c) => Wake::Command(c),
                    Err(_) => Wake::Stop,
                }
            };
            future::or(recv, future::or(timer, command)).await
        };
        let now = now();
        match wake {
            Wake::Datagram(i, from, n) => machine.handle_input(now, locals[i], from, &buf[..n]),
            Wake::RecvError => continue,
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
    sockets: &[Async<UdpSocket>],
    locals: &[SocketAddr],
    events: &Sender<M::Event>,
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
        let _ = events.try_send(e);
    }
}
