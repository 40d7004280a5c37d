//! Runs a core machine on the chosen runtime in a background thread, and gives the (synchronous) CLI one
//! channel of [`Input`]s: machine events, stdin lines, Ctrl-C.
//!
//! The set-up (bind, make the machine, signal ready, forward events, report [`Input::DriverStopped`]) is
//! written once, in `serve`, over the few things that differ between the runtimes ([`Driver`]).
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result};
use punch_core::drive::Command;
use punch_core::Machine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    Tokio,
    Smol,
}

/// Everything the CLI loop reacts to.
pub enum Input<E> {
    Event(E),
    Line(String),
    /// Stdin line `n` (from 1) was not UTF-8: it is skipped and reported.
    BadLine(u64),
    Eof,
    Interrupt,
    DriverStopped(Result<()>),
}

/// Sends a command into the driver loop; dropping it ends the loop.
type CommandTx<M> = Box<dyn Fn(Command<M>) + Send>;

/// What the driver thread answers once the sockets are bound and the machine is made.
type Ready<M> = mpsc::Sender<Result<(CommandTx<M>, Vec<SocketAddr>)>>;

/// A blocking `recv` on a driver's event channel: `None` once the loop has ended.
type NextEvent<E> = Box<dyn FnMut() -> Option<E> + Send>;

/// A started driver loop (to await) and its two channel ends for the application.
type Started<M, F> = (F, CommandTx<M>, NextEvent<<M as Machine>::Event>);

/// The local addresses of bound sockets, and the sockets.
type Bound<S> = (Vec<SocketAddr>, Vec<S>);

/// What differs between the two runtimes: their sockets and channels.
trait Driver {
    type Socket;
    /// Binds `addrs`, with the local addresses that got (the ports the system chose).
    fn bind(addrs: &[SocketAddr]) -> impl Future<Output = io::Result<Bound<Self::Socket>>>;
    /// The driver loop over `sockets`, with its channels.
    fn start<M: Machine<Event: Send + 'static> + 'static>(
        machine: M,
        sockets: Vec<Self::Socket>,
    ) -> Started<M, impl Future<Output = io::Result<M>>>;
}

struct Tokio;

impl Driver for Tokio {
    type Socket = tokio::net::UdpSocket;
    async fn bind(addrs: &[SocketAddr]) -> io::Result<Bound<Self::Socket>> {
        let sockets = punch_tokio::bind(addrs).await?;
        Ok((punch_tokio::locals(&sockets)?, sockets))
    }
    fn start<M: Machine<Event: Send + 'static> + 'static>(
        machine: M,
        sockets: Vec<Self::Socket>,
    ) -> Started<M, impl Future<Output = io::Result<M>>> {
        use tokio::sync::mpsc::unbounded_channel;
        let ((command_tx, commands), (events, mut event_rx)) =
            (unbounded_channel(), unbounded_channel());
        (
            punch_tokio::run(machine, sockets, commands, events),
            Box::new(move |c| drop(command_tx.send(c))),
            Box::new(move || event_rx.blocking_recv()),
        )
    }
}

struct Smol;

impl Driver for Smol {
    type Socket = async_io::Async<std::net::UdpSocket>;
    async fn bind(addrs: &[SocketAddr]) -> io::Result<Bound<Self::Socket>> {
        let sockets = punch_smol::bind(addrs)?;
        Ok((punch_smol::locals(&sockets)?, sockets))
    }
    fn start<M: Machine<Event: Send + 'static> + 'static>(
        machine: M,
        sockets: Vec<Self::Socket>,
    ) -> Started<M, impl Future<Output = io::Result<M>>> {
        let ((command_tx, commands), (events, event_rx)) =
            (punch_smol::unbounded(), punch_smol::unbounded());
        (
            punch_smol::run(machine, sockets, commands, events),
            Box::new(move |c| drop(command_tx.try_send(c))),
            Box::new(move || event_rx.recv_blocking().ok()),
        )
    }
}

/// The body of the driver thread, for either runtime: binds `addrs`, makes the machine, answers `ready`,
/// runs the loop with its events forwarded into `inputs`, and reports how the loop ended.
async fn serve<D: Driver, M>(
    addrs: Vec<SocketAddr>,
    make: impl FnOnce(&[SocketAddr]) -> M,
    ready: Ready<M>,
    inputs: mpsc::Sender<Input<M::Event>>,
) where
    M: Machine + 'static,
    M::Event: Send + 'static,
{
    let (locals, sockets) = match D::bind(&addrs).await {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let machine = make(&locals);
    let (run, command_tx, mut next_event) = D::start(machine, sockets);
    let _ = ready.send(Ok((command_tx, locals)));
    let forward_to = inputs.clone();
    let forward = thread::spawn(move || {
        while let Some(e) = next_event() {
            let _ = forward_to.send(Input::Event(e));
        }
    });
    let r = run.await;
    let _ = forward.join();
    let _ = inputs.send(Input::DriverStopped(r.map(|_| ()).map_err(Into::into)));
}

/// A machine running in the background.
pub struct Running<M: Machine> {
    commands: Option<CommandTx<M>>,
    thread: Option<thread::JoinHandle<()>>,
    /// The local addresses of the bound sockets.
    pub locals: Vec<SocketAddr>,
}

impl<M: Machine + Send + 'static> Running<M>
where
    M::Event: Send + 'static,
{
    /// Binds `addrs` on `runtime`, starts `make(locals)` there, and forwards its events into `inputs`.
    pub fn start(
        runtime: Runtime,
        addrs: &[SocketAddr],
        make: impl FnOnce(&[SocketAddr]) -> M + Send + 'static,
        inputs: mpsc::Sender<Input<M::Event>>,
    ) -> Result<Running<M>> {
        let addrs = addrs.to_vec();
        let (ready, ready_rx) = mpsc::channel();
        let thread = thread::spawn(move || match runtime {
            Runtime::Tokio => match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(serve::<Tokio, M>(addrs, make, ready, inputs)),
                Err(e) => {
                    let _ = ready.send(Err(e.into()));
                }
            },
            Runtime::Smol => {
                futures_lite::future::block_on(serve::<Smol, M>(addrs, make, ready, inputs))
            }
        });
        let (commands, locals) = ready_rx.recv().context("driver thread died")??;
        Ok(Running {
            commands: Some(commands),
            thread: Some(thread),
            locals,
        })
    }

    /// Runs `f` on the machine in the driver loop (which then drains it).
    pub fn command(&self, f: impl FnOnce(&mut M, Instant) + Send + 'static) {
        if let Some(send) = &self.commands {
            send(Box::new(f));
        }
    }

    /// Stops the loop (after the commands already sent) and waits for it.
    pub fn stop(mut self) {
        self.commands = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Feeds stdin lines (then `Eof`) into `inputs` from a background thread.
pub fn read_stdin<E: Send + 'static>(inputs: mpsc::Sender<Input<E>>) {
    thread::spawn(move || {
        use std::io::BufRead;
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        let mut buf = Vec::new();
        for n in 1u64.. {
            buf.clear();
            match lock.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            // Bytes, not `lines()`: an invalid line is reported and skipped instead of ending stdin.
            let input = match std::str::from_utf8(&buf) {
                Ok(l) => Input::Line(l.to_owned()),
                Err(_) => Input::BadLine(n),
            };
            if inputs.send(input).is_err() {
                return;
            }
        }
        let _ = inputs.send(Input::Eof);
    });
}

/// Sends `Interrupt` on Ctrl-C (once per process; later calls keep the first handler).
pub fn on_interrupt<E: Send + 'static>(inputs: mpsc::Sender<Input<E>>) {
    let inputs = std::sync::Mutex::new(inputs);
    let _ = ctrlc::set_handler(move || {
        if let Ok(i) = inputs.lock() {
            let _ = i.send(Input::Interrupt);
        }
    });
}

/// The local IP this host would use to reach `server` (no packet is sent).
pub fn route_ip(server: SocketAddr) -> Option<std::net::IpAddr> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(server).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    //! Both drivers over loopback sockets, through `Running`: routing by `Transmit::source`, fair polling,
    //! the timer. Every wait is bounded. The machine is the simulator's [`EchoNode`], silent (it only records
    //! what arrives, and sends what it is told).
    use std::net::UdpSocket;
    use std::time::Duration;

    use punch_sim::EchoNode;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn next_event(inputs: &mpsc::Receiver<Input<String>>) -> String {
        match inputs.recv_timeout(WAIT).expect("an event within 5 s") {
            Input::Event(e) => e,
            _ => panic!("expected an event"),
        }
    }

    fn check(runtime: Runtime) {
        let (tx, inputs) = mpsc::channel();
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let echo = EchoNode::silent(loopback);
        let running = Running::start(runtime, &[loopback, loopback], |_| echo, tx).unwrap();
        let [a, b] = running.locals[..] else {
            panic!("two sockets")
        };
        let client = UdpSocket::bind(loopback).unwrap();
        client.set_read_timeout(Some(WAIT)).unwrap();
        let to = client.local_addr().unwrap();
        let recv = || {
            let mut buf = [0; 64];
            let (n, from) = client.recv_from(&mut buf).expect("a datagram within 5 s");
            (from, String::from_utf8_lossy(&buf[..n]).into_owned())
        };

        // Routing: `None` is the first socket, `Some` the named one, an unknown source is not sent at all.
        running.command(move |m: &mut EchoNode, _| {
            m.send_from("192.0.2.1:9".parse().unwrap(), to, b"unknown source");
            m.send_from(b, to, b"from b");
            m.send_to(to, b"from a");
        });
        assert_eq!(recv(), (b, "from b".into()));
        assert_eq!(recv(), (a, "from a".into()));

        // Fairness: with socket a flooded, a datagram waiting on socket b is read at most one datagram later.
        let (blocked_tx, blocked) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        running.command(move |_, _| {
            let _ = blocked_tx.send(());
            let _ = go_rx.recv_timeout(WAIT);
        });
        blocked.recv_timeout(WAIT).unwrap();
        for _ in 0..32 {
            client.send_to(b"flood", a).unwrap();
        }
        client.send_to(b"late", b).unwrap();
        go.send(()).unwrap();
        for _ in 0..33 {
            next_event(&inputs);
        }
        let (order_tx, order) = mpsc::channel();
        running.command(move |m: &mut EchoNode, _| {
            let _ = order_tx.send(m.received.iter().map(|r| (r.1, r.3.clone())).collect());
        });
        let order: Vec<(SocketAddr, Vec<u8>)> = order.recv_timeout(WAIT).unwrap();
        let position = order
            .iter()
            .position(|r| *r == (b, b"late".to_vec()))
            .expect("b read");
        assert!(
            position <= 1,
            "{runtime:?}: b read after {position} datagrams on a"
        );

        // The timer fires (once: the next send would be an hour later), sending from the first socket.
        running.command(move |m: &mut EchoNode, now| {
            m.send_every(
                now + Duration::from_millis(20),
                Duration::from_secs(3600),
                to,
                b"tick",
            )
        });
        assert_eq!(recv(), (a, "tick".into()));
        running.stop();
        match inputs.recv_timeout(WAIT) {
            Ok(Input::DriverStopped(Ok(()))) => {}
            _ => panic!("{runtime:?}: expected DriverStopped(Ok) and no other event"),
        }
    }

    #[test]
    fn tokio_driver_routes_by_source_polls_fairly_and_fires_the_timer() {
        check(Runtime::Tokio);
    }

    #[test]
    fn smol_driver_routes_by_source_polls_fairly_and_fires_the_timer() {
        check(Runtime::Smol);
    }
}
