//! Runs a core machine on the chosen runtime in a background thread, and gives the (synchronous) CLI one
//! channel of [`Input`]s: machine events, stdin lines, Ctrl-C.
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result};
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
    Eof,
    Interrupt,
    DriverStopped(Result<()>),
}

type Cmd<M> = Box<dyn FnOnce(&mut M, Instant) + Send>;

enum CmdTx<M> {
    Tokio(tokio::sync::mpsc::UnboundedSender<Cmd<M>>),
    Smol(punch_smol::Sender<Cmd<M>>),
}

/// A machine running in the background.
pub struct Running<M: Machine> {
    commands: Option<CmdTx<M>>,
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
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(CmdTx<M>, Vec<SocketAddr>)>>();
        let thread = thread::spawn(move || match runtime {
            Runtime::Tokio => {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let sockets = match punch_tokio::bind(&addrs).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let locals: Vec<SocketAddr> =
                        sockets.iter().filter_map(|s| s.local_addr().ok()).collect();
                    let (ctx, crx) = tokio::sync::mpsc::unbounded_channel();
                    let (etx, mut erx) = tokio::sync::mpsc::unbounded_channel();
                    let machine = make(&locals);
                    let _ = ready_tx.send(Ok((CmdTx::Tokio(ctx), locals)));
                    let fwd = inputs.clone();
                    let forward = tokio::spawn(async move {
                        while let Some(e) = erx.recv().await {
                            let _ = fwd.send(Input::Event(e));
                        }
                    });
                    let r = punch_tokio::run(machine, sockets, crx, etx).await;
                    let _ = forward.await;
                    let _ = inputs.send(Input::DriverStopped(r.map(|_| ()).map_err(Into::into)));
                });
            }
            Runtime::Smol => {
                let sockets = match punch_smol::bind(&addrs) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let locals: Vec<SocketAddr> = sockets
                    .iter()
                    .filter_map(|s| s.get_ref().local_addr().ok())
                    .collect();
                let (ctx, crx) = punch_smol::unbounded();
                let (etx, erx) = punch_smol::unbounded();
                let machine = make(&locals);
                let _ = ready_tx.send(Ok((CmdTx::Smol(ctx), locals)));
                let fwd = inputs.clone();
                let forward = thread::spawn(move || {
                    while let Ok(e) = erx.recv_blocking() {
                        let _ = fwd.send(Input::Event(e));
                    }
                });
                let r = futures_lite::future::block_on(punch_smol::run(machine, sockets, crx, etx));
                let _ = forward.join();
                let _ = inputs.send(Input::DriverStopped(r.map(|_| ()).map_err(Into::into)));
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
        match &self.commands {
            Some(CmdTx::Tokio(t)) => {
                let _ = t.send(Box::new(f));
            }
            Some(CmdTx::Smol(s)) => {
                let _ = s.try_send(Box::new(f));
            }
            None => {}
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
        for line in stdin.lock().lines() {
            match line {
                Ok(l) => {
                    if inputs.send(Input::Line(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
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
