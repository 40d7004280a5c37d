//! Runs a core machine on the chosen runtime in a background thread, and gives the (synchronous) CLI one
//! channel of [`Input`]s: machine events, stdin lines, Ctrl-C.
//!
//! The set-up (bind, make the machine, signal ready, forward events, report [`Input::DriverStopped`]) is
//! written once, in `serve`, over the few things that differ between the runtimes ([`Driver`]).
//!
//! Nothing here grows without bound: the input queue ([`channel`]) holds at most [`QUEUE`] events (more are
//! dropped and counted, the count reported as an [`Input::Note`] at most once per [`REPORT_EVERY`]), and at
//! most [`QUEUE`] commands wait for the driver loop ([`Running::try_command`] refuses more). The drivers'
//! own channels are unbounded (`punch_tokio::run` takes unbounded tokio channels), so the forwarding thread
//! empties the event channel at once, whatever the reader does, and commands are counted on the CLI side.
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use punch_core::drive::Command;
use punch_core::Machine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    Tokio,
    Smol,
}

/// Most events (and stdin lines, and commands) waiting at once.
pub const QUEUE: usize = 1024;

/// Drop counts are reported at most this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Everything the CLI loop reacts to.
pub enum Input<E> {
    Event(E),
    Line(String),
    /// Line number `n` (from 1) on stdin is not UTF-8: it was skipped.
    BadLine(u64),
    Eof,
    Interrupt,
    DriverStopped(Result<()>),
    /// Something to tell the user (events dropped because the reader was too slow).
    Note(String),
    /// A key pressed on the interactive screen ([`read_keys`]).
    Key(crossterm::event::KeyEvent),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
}

/// The queue state shared by the ends of a [`channel`].
struct State<E> {
    queue: VecDeque<Input<E>>,
    /// Events dropped since the last report.
    dropped: u64,
    last_report: Option<Instant>,
    senders: usize,
    receiver: bool,
}

struct Shared<E> {
    state: Mutex<State<E>>,
    /// Signalled when something is queued (or the last sender goes).
    ready: Condvar,
    /// Signalled when something is taken (or the receiver goes).
    space: Condvar,
    cap: usize,
    every: Duration,
    /// Events that may use a second `cap` of room before being dropped (the ones that end a session, say).
    critical: fn(&E) -> bool,
}

/// The sending end of a bounded input queue: events never block (dropped and counted when `cap` are
/// waiting), stdin lines wait for room, the rest (Ctrl-C, end of stdin, the driver's end) is always queued.
pub struct Sender<E>(Arc<Shared<E>>);

/// The receiving end: like `std::sync::mpsc::Receiver`.
pub struct Receiver<E>(Arc<Shared<E>>);

/// A bounded input queue ([`QUEUE`] events, drops reported every [`REPORT_EVERY`]); `critical` events get a
/// second [`QUEUE`] of room, so that a flood of others cannot crowd them out.
pub fn channel<E>(critical: fn(&E) -> bool) -> (Sender<E>, Receiver<E>) {
    channel_with(QUEUE, REPORT_EVERY, critical)
}

fn channel_with<E>(
    cap: usize,
    every: Duration,
    critical: fn(&E) -> bool,
) -> (Sender<E>, Receiver<E>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            dropped: 0,
            last_report: None,
            senders: 1,
            receiver: true,
        }),
        ready: Condvar::new(),
        space: Condvar::new(),
        cap,
        every,
        critical,
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<E> Shared<E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<E>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<E> Sender<E> {
    /// Queues `input`; `false` once the receiver is gone.
    pub fn send(&self, input: Input<E>) -> bool {
        let sh = &self.0;
        let mut st = sh.lock();
        if !st.receiver {
            return false;
        }
        match input {
            Input::Event(e) => {
                let room = if (sh.critical)(&e) {
                    2 * sh.cap
                } else {
                    sh.cap
                };
                if st.queue.len() >= room {
                    st.dropped += 1;
                } else {
                    st.queue.push_back(Input::Event(e));
                }
            }
            Input::Line(_) | Input::BadLine(_) | Input::Key(_) => {
                while st.receiver && st.queue.len() >= sh.cap {
                    st = sh.space.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                if !st.receiver {
                    return false;
                }
                st.queue.push_back(input);
            }
            Input::Interrupt if st.queue.iter().any(|i| matches!(i, Input::Interrupt)) => {}
            other => st.queue.push_back(other),
        }
        sh.ready.notify_one();
        true
    }
}

impl<E> Clone for Sender<E> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Sender(self.0.clone())
    }
}

impl<E> Drop for Sender<E> {
    fn drop(&mut self) {
        self.0.lock().senders -= 1;
        self.0.ready.notify_all();
    }
}

impl<E> Drop for Receiver<E> {
    fn drop(&mut self) {
        self.0.lock().receiver = false;
        self.0.space.notify_all();
    }
}

impl<E> Receiver<E> {
    pub fn recv(&self) -> Result<Input<E>, mpsc::RecvError> {
        self.recv_until(None).map_err(|_| mpsc::RecvError)
    }

    pub fn recv_timeout(&self, d: Duration) -> Result<Input<E>, mpsc::RecvTimeoutError> {
        self.recv_until(Some(Instant::now() + d))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<Input<E>, mpsc::RecvTimeoutError> {
        let sh = &self.0;
        let mut st = sh.lock();
        loop {
            let now = Instant::now();
            let report_at = (st.dropped > 0).then(|| st.last_report.map_or(now, |t| t + sh.every));
            if report_at.is_some_and(|t| t <= now) {
                let n = std::mem::take(&mut st.dropped);
                st.last_report = Some(now);
                return Ok(Input::Note(format!(
                    "{n} event(s) dropped: the output is read too slowly"
                )));
            }
            if let Some(i) = st.queue.pop_front() {
                sh.space.notify_one();
                return Ok(i);
            }
            if st.senders == 0 {
                return Err(mpsc::RecvTimeoutError::Disconnected);
            }
            if deadline.is_some_and(|t| t <= now) {
                return Err(mpsc::RecvTimeoutError::Timeout);
            }
            let until = match (deadline, report_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            st = match until {
                None => sh.ready.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(t) => {
                    sh.ready
                        .wait_timeout(st, t.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// Where inputs go: a bounded [`Sender`], or (unbounded) a `std::sync::mpsc::Sender`.
pub enum Inputs<E> {
    Bounded(Sender<E>),
    Std(mpsc::Sender<Input<E>>),
}

impl<E> Inputs<E> {
    /// Queues `input`; `false` once the receiver is gone.
    pub fn send(&self, input: Input<E>) -> bool {
        match self {
            Inputs::Bounded(s) => s.send(input),
            Inputs::Std(s) => s.send(input).is_ok(),
        }
    }
}

impl<E> Clone for Inputs<E> {
    fn clone(&self) -> Self {
        match self {
            Inputs::Bounded(s) => Inputs::Bounded(s.clone()),
            Inputs::Std(s) => Inputs::Std(s.clone()),
        }
    }
}

impl<E> From<Sender<E>> for Inputs<E> {
    fn from(s: Sender<E>) -> Self {
        Inputs::Bounded(s)
    }
}

impl<E> From<mpsc::Sender<Input<E>>> for Inputs<E> {
    fn from(s: mpsc::Sender<Input<E>>) -> Self {
        Inputs::Std(s)
    }
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
    /// Asks for `bytes` of SO_RCVBUF/SO_SNDBUF; returns what the kernel granted (receive, send).
    fn buffers(socket: &Self::Socket, bytes: usize) -> io::Result<(usize, usize)>;
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
    fn buffers(socket: &Self::Socket, bytes: usize) -> io::Result<(usize, usize)> {
        punch_tokio::socket_buffers(socket, bytes)
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
    fn buffers(socket: &Self::Socket, bytes: usize) -> io::Result<(usize, usize)> {
        punch_smol::socket_buffers(socket, bytes)
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

/// Sets every socket's SO_RCVBUF/SO_SNDBUF to `bytes` and logs what the kernel granted (once, at info; at
/// warn when it granted less than asked: `net.core.rmem_max` / `wmem_max` cap it).
fn set_buffers<D: Driver>(sockets: &[D::Socket], bytes: usize) -> io::Result<()> {
    let mut granted = None;
    for s in sockets {
        let got = D::buffers(s, bytes)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot set socket buffers: {e}")))?;
        granted = granted.or(Some(got));
    }
    if let Some((receive, send)) = granted {
        log_granted(bytes, receive, send);
    }
    Ok(())
}

/// Logs the socket buffers the kernel granted for `bytes` asked: at info, or at warn when it granted less
/// (`net.core.rmem_max` / `wmem_max` cap it).
pub fn log_granted(bytes: usize, receive: usize, send: usize) {
    if receive < bytes || send < bytes {
        tracing::warn!(
            "socket buffers: asked {bytes} bytes, the kernel granted receive {receive} / send {send} \
             (raise net.core.rmem_max / wmem_max for more)"
        );
    } else {
        tracing::info!(
            "socket buffers: asked {bytes} bytes, the kernel granted receive {receive} / send {send}"
        );
    }
}

/// The body of the driver thread, for either runtime: binds `addrs` (with socket buffers of `buffer` bytes,
/// if given), makes the machine, answers `ready`, runs the loop with its events forwarded into `inputs`, and
/// reports how the loop ended.
async fn serve<D: Driver, M>(
    addrs: Vec<SocketAddr>,
    buffer: Option<usize>,
    make: impl FnOnce(&[SocketAddr]) -> M,
    ready: Ready<M>,
    inputs: Inputs<M::Event>,
) where
    M: Machine + 'static,
    M::Event: Send + 'static,
{
    let bound = D::bind(&addrs).await.and_then(|(locals, sockets)| {
        buffer.map_or(Ok(()), |bytes| set_buffers::<D>(&sockets, bytes))?;
        Ok((locals, sockets))
    });
    let (locals, sockets) = match bound {
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
    // Empties the driver's (unbounded) event channel at once: a full input queue drops, never blocks.
    let forward = thread::spawn(move || {
        while let Some(e) = next_event() {
            forward_to.send(Input::Event(e));
        }
    });
    let r = run.await;
    let _ = forward.join();
    inputs.send(Input::DriverStopped(r.map(|_| ()).map_err(Into::into)));
}

/// A machine running in the background.
pub struct Running<M: Machine> {
    commands: Option<CommandTx<M>>,
    /// Commands sent and not yet run by the driver loop.
    in_flight: Arc<AtomicUsize>,
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
        inputs: impl Into<Inputs<M::Event>>,
    ) -> Result<Running<M>> {
        Running::start_with_buffers(runtime, addrs, None, make, inputs)
    }

    /// [`Running::start`], with SO_RCVBUF/SO_SNDBUF of `buffer` bytes asked for on every socket (`None`: the
    /// system default).
    pub fn start_with_buffers(
        runtime: Runtime,
        addrs: &[SocketAddr],
        buffer: Option<usize>,
        make: impl FnOnce(&[SocketAddr]) -> M + Send + 'static,
        inputs: impl Into<Inputs<M::Event>>,
    ) -> Result<Running<M>> {
        let inputs = inputs.into();
        let addrs = addrs.to_vec();
        let (ready, ready_rx) = mpsc::channel();
        let thread = thread::spawn(move || match runtime {
            Runtime::Tokio => match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(serve::<Tokio, M>(addrs, buffer, make, ready, inputs)),
                Err(e) => {
                    let _ = ready.send(Err(e.into()));
                }
            },
            Runtime::Smol => {
                futures_lite::future::block_on(serve::<Smol, M>(addrs, buffer, make, ready, inputs))
            }
        });
        let (commands, locals) = ready_rx.recv().context("driver thread died")??;
        Ok(Running {
            commands: Some(commands),
            in_flight: Arc::new(AtomicUsize::new(0)),
            thread: Some(thread),
            locals,
        })
    }

    /// Runs `f` on the machine in the driver loop (which then drains it), however many commands wait: for
    /// the few that control the session (finish, close). Use [`Running::try_command`] for anything a user
    /// or a peer can repeat at will.
    pub fn command(&self, f: impl FnOnce(&mut M, Instant) + Send + 'static) {
        if let Some(send) = &self.commands {
            let in_flight = self.in_flight.clone();
            in_flight.fetch_add(1, Ordering::SeqCst);
            send(Box::new(move |m: &mut M, now| {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                f(m, now)
            }));
        }
    }

    /// Like [`Running::command`], unless [`QUEUE`] commands are already waiting: then `f` is dropped and
    /// `false` returned (never blocks, never grows the driver's command channel further).
    pub fn try_command(&self, f: impl FnOnce(&mut M, Instant) + Send + 'static) -> bool {
        if self.in_flight.load(Ordering::SeqCst) >= QUEUE || self.commands.is_none() {
            return false;
        }
        self.command(f);
        true
    }

    /// Stops the loop after the commands already sent (their datagrams are sent: the loop drains the
    /// machine after each command, and ends only once the command channel is empty) and waits for it.
    pub fn stop(mut self) {
        self.join();
    }
}

impl<M: Machine> Running<M> {
    /// [`Running::stop`] in place (for an owner that still has work to do after the loop ended); later
    /// commands are ignored.
    pub fn join(&mut self) {
        self.commands = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<M: Machine> Drop for Running<M> {
    /// Also on early returns: the loop gets to send what the last commands produced (a Leave, say).
    fn drop(&mut self) {
        self.join();
    }
}

/// Feeds stdin lines (then `Eof`) into `inputs` from a background thread. Lines are read as bytes: one
/// that is not UTF-8 becomes [`Input::BadLine`] (its number) and reading goes on.
pub fn read_stdin<E: Send + 'static>(inputs: impl Into<Inputs<E>>) {
    let inputs = inputs.into();
    thread::spawn(move || {
        let stdin = std::io::stdin();
        read_lines(stdin.lock(), &inputs);
    });
}

/// The lines of `r` (without `\n` or `\r\n`) into `inputs`, then `Eof` (also on a read error).
fn read_lines<E>(mut r: impl io::BufRead, inputs: &Inputs<E>) {
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        n += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let input = match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(l) => Input::Line(l),
            Err(_) => Input::BadLine(n),
        };
        if !inputs.send(input) {
            return;
        }
    }
    inputs.send(Input::Eof);
}

/// Keys and resizes from the terminal (in raw mode: see `screen::Screen`) into `inputs`, then `Eof` if the
/// terminal goes away.
pub fn read_keys<E: Send + 'static>(inputs: impl Into<Inputs<E>>) {
    use crossterm::event::Event;
    let inputs = inputs.into();
    thread::spawn(move || loop {
        let input = match crossterm::event::read() {
            Ok(Event::Key(k)) => Input::Key(k),
            Ok(Event::Resize(w, h)) => Input::Resize(w, h),
            Ok(_) => continue,
            Err(_) => {
                inputs.send(Input::Eof);
                return;
            }
        };
        if !inputs.send(input) {
            return;
        }
    });
}

/// Sends `Interrupt` on Ctrl-C (once per process; later calls keep the first handler).
pub fn on_interrupt<E: Send + 'static>(inputs: impl Into<Inputs<E>>) {
    let inputs = std::sync::Mutex::new(inputs.into());
    let _ = ctrlc::set_handler(move || {
        if let Ok(i) = inputs.lock() {
            i.send(Input::Interrupt);
        }
    });
}

/// A blocking std socket bound to `a` (an unspecified IPv6 address dual-stack, like the drivers' sockets).
pub fn bind_std(a: SocketAddr) -> Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(a), Type::DGRAM, Some(Protocol::UDP))?;
    if a.is_ipv6() {
        s.set_only_v6(!punch_core::drive::dual_stack(&[a], 0))?;
    }
    s.bind(&a.into())
        .with_context(|| format!("cannot bind UDP {a}"))?;
    Ok(s.into())
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

        // Fairness: with socket a flooded (three receive batches' worth), a datagram waiting on socket b is read
        // at most one batch later.
        let flood = 3 * punch_core::drive::RECV_BATCH;
        let (blocked_tx, blocked) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        running.command(move |_, _| {
            let _ = blocked_tx.send(());
            let _ = go_rx.recv_timeout(WAIT);
        });
        blocked.recv_timeout(WAIT).unwrap();
        for _ in 0..flood {
            client.send_to(b"flood", a).unwrap();
        }
        client.send_to(b"late", b).unwrap();
        go.send(()).unwrap();
        for _ in 0..=flood {
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
            position <= punch_core::drive::RECV_BATCH,
            "{runtime:?}: b read after {position} datagrams on a"
        );

        // A run of same-size datagrams and a shorter last one (one GSO send where the system has it) arrives
        // as separate datagrams, whole and in order; then a datagram to another destination.
        running.command(move |m: &mut EchoNode, _| {
            for i in 0..10u8 {
                m.send_to(to, &[b'0' + i; 40]);
            }
            m.send_to(to, b"short");
            m.send_from(b, to, b"after");
        });
        for i in 0..10u8 {
            let want = String::from_utf8(vec![b'0' + i; 40]).unwrap();
            assert_eq!(recv(), (a, want), "{runtime:?}: datagram {i} of the run");
        }
        assert_eq!(recv(), (a, "short".into()));
        assert_eq!(recv(), (b, "after".into()));

        // Extra sockets on request (birthday probing): opened like socket 0, usable as sources, closed again.
        running.command(|m: &mut EchoNode, _| m.ask(punch_core::SocketRequest::Open { count: 3 }));
        assert_eq!(next_event(&inputs), "opened 3 sockets");
        let (opened_tx, opened) = mpsc::channel();
        running.command(move |m: &mut EchoNode, _| {
            let _ = opened_tx.send(m.opened.clone());
        });
        let extra: Vec<SocketAddr> = opened.recv_timeout(WAIT).unwrap();
        assert_eq!(extra.len(), 3);
        assert!(extra
            .iter()
            .all(|e| e.ip() == a.ip() && ![a, b].contains(e)));
        let (e0, e2) = (extra[0], extra[2]);
        running.command(move |m: &mut EchoNode, _| m.send_from(e2, to, b"from an extra socket"));
        assert_eq!(recv(), (e2, "from an extra socket".into()));
        client.send_to(b"to an extra socket", e0).unwrap();
        assert_eq!(
            next_event(&inputs),
            "got 18 B from ".to_string() + &to.to_string()
        );
        let close = vec![e0, extra[1]];
        running.command(move |m: &mut EchoNode, _| {
            m.ask(punch_core::SocketRequest::Close(close));
            m.send_from(e2, to, b"still open");
        });
        assert_eq!(recv(), (e2, "still open".into()));
        running.command(move |m: &mut EchoNode, _| {
            m.send_from(e0, to, b"closed: not sent");
            m.send_from(b, to, b"b still there");
        });
        assert_eq!(recv(), (b, "b still there".into()));

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
    fn the_input_queue_drops_and_counts_events_beyond_its_room_and_reports_them() {
        let (tx, rx) = channel_with::<u32>(4, Duration::from_secs(3600), |e| *e == 99);
        for i in 0..10 {
            tx.send(Input::Event(i));
        }
        tx.send(Input::Event(99)); // critical: room for 4 more
        tx.send(Input::Eof); // never dropped
        let Ok(Input::Note(n)) = rx.recv() else {
            panic!("the drop count first")
        };
        assert!(n.starts_with("6 event(s) dropped"), "{n}");
        let mut got = vec![];
        while let Ok(Input::Event(e)) = rx.recv_timeout(Duration::ZERO) {
            got.push(e);
        }
        assert_eq!(got, [0, 1, 2, 3, 99]);
        // More drops are reported only after the interval.
        for i in 0..10 {
            tx.send(Input::Event(i));
        }
        let mut notes = 0;
        while let Ok(i) = rx.recv_timeout(Duration::from_millis(10)) {
            notes += matches!(i, Input::Note(_)) as u32;
        }
        assert_eq!(notes, 0);
        drop(tx);
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(10)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ));
    }

    #[test]
    fn stdin_lines_that_are_not_utf8_are_skipped_by_number() {
        let (tx, rx) = channel::<()>(|_| false);
        let data: &[u8] = b"one\r\n\xff\xfe two\nthree\n\x1b[31mred";
        read_lines(data, &Inputs::from(tx));
        let mut got = vec![];
        while let Ok(i) = rx.recv_timeout(Duration::ZERO) {
            got.push(match i {
                Input::Line(l) => l,
                Input::BadLine(n) => format!("bad {n}"),
                Input::Eof => "eof".into(),
                _ => "other".into(),
            });
        }
        assert_eq!(got, ["one", "bad 2", "three", "\u{1b}[31mred", "eof"]);
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
