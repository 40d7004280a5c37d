//! The bench's raw socket tools: batched send/receive (`sendmmsg`/`recvmmsg`), socket buffer sizes, per-thread
//! CPU clocks and CPU pinning. Linux only; everything here is measurement plumbing, no protocol.
use std::io;
use std::mem::zeroed;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

/// Datagrams per `sendmmsg`/`recvmmsg` call.
pub const BATCH: usize = 64;
/// Receive buffer per datagram.
pub const SLOT: usize = 2048;

/// Sends `request` to `server` from `s` (a socket with a read timeout: it paces the re-sends) until `answer`
/// takes a datagram (`Some`: the result), for at most 2 s; `what` names the server in the error.
pub fn exchange<T>(
    s: &UdpSocket,
    server: SocketAddr,
    request: &[u8],
    what: &str,
    mut answer: impl FnMut(&[u8]) -> Option<anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; SLOT];
    while std::time::Instant::now() < deadline {
        s.send_to(request, server)?;
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            continue;
        };
        if let Some(r) = answer(&buf[..n]) {
            return r;
        }
    }
    anyhow::bail!("no answer from the {what} at {server}")
}

/// A UDP socket bound to `addr` with SO_RCVBUF/SO_SNDBUF asked to be `buf` bytes; returns the socket and the
/// receive buffer size the kernel granted (it doubles the request, and clamps it to `net.core.rmem_max`).
pub fn udp(addr: SocketAddr, buf: usize) -> io::Result<(UdpSocket, usize)> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_recv_buffer_size(buf)?;
    s.set_send_buffer_size(buf)?;
    s.bind(&addr.into())?;
    let got = s.recv_buffer_size()?;
    Ok((s.into(), got))
}

/// Sends every buffer in `bufs` to `dest` in one `sendmmsg` call; returns how many the kernel took.
pub fn send_batch(sock: &UdpSocket, dest: SocketAddr, bufs: &[&[u8]]) -> io::Result<usize> {
    let dest = SockAddr::from(dest);
    sendmmsg(sock, bufs.iter().map(|b| (&dest, *b)))
}

/// Sends each `(destination, bytes)` of `out` (at most [`BATCH`]) in one `sendmmsg` call, whatever their
/// destinations; returns how many the kernel took.
pub fn send_each<B: AsRef<[u8]>>(sock: &UdpSocket, out: &[(SockAddr, B)]) -> io::Result<usize> {
    sendmmsg(sock, out.iter().map(|(d, b)| (d, b.as_ref())))
}

/// One `sendmmsg` of the first [`BATCH`] `(destination, bytes)` of `out`.
fn sendmmsg<'a>(
    sock: &UdpSocket,
    out: impl Iterator<Item = (&'a SockAddr, &'a [u8])>,
) -> io::Result<usize> {
    // SAFETY: zeroed iovec/mmsghdr are valid "empty" values; every pointer set below outlives the call.
    let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut hdr: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut n = 0;
    for (i, (dest, bytes)) in out.take(BATCH).enumerate() {
        iov[i].iov_base = bytes.as_ptr() as *mut libc::c_void;
        iov[i].iov_len = bytes.len();
        hdr[i].msg_hdr.msg_name = dest.as_ptr() as *mut libc::c_void;
        hdr[i].msg_hdr.msg_namelen = dest.len();
        hdr[i].msg_hdr.msg_iov = &mut iov[i];
        hdr[i].msg_hdr.msg_iovlen = 1;
        n = i + 1;
    }
    // SAFETY: `hdr[..n]` is initialised above and points into live buffers.
    let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), hdr.as_mut_ptr(), n as u32, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// Receives up to [`BATCH`] datagrams into `slots` (waiting for the first, up to the socket's read timeout);
/// their lengths go into `lens`. Returns how many arrived (0 on timeout).
pub fn recv_batch(
    sock: &UdpSocket,
    slots: &mut [[u8; SLOT]; BATCH],
    lens: &mut [usize; BATCH],
) -> io::Result<usize> {
    recv_mmsg(sock, slots, lens, None)
}

/// [`recv_batch`], also telling where each datagram came from (`froms`).
pub fn recv_batch_from(
    sock: &UdpSocket,
    slots: &mut [[u8; SLOT]; BATCH],
    lens: &mut [usize; BATCH],
    froms: &mut [Option<SocketAddr>; BATCH],
) -> io::Result<usize> {
    recv_mmsg(sock, slots, lens, Some(froms))
}

fn recv_mmsg(
    sock: &UdpSocket,
    slots: &mut [[u8; SLOT]; BATCH],
    lens: &mut [usize; BATCH],
    froms: Option<&mut [Option<SocketAddr>; BATCH]>,
) -> io::Result<usize> {
    // SAFETY: as in `send_batch`; the slots outlive the call.
    let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut hdr: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut names: [SockAddrStorage; BATCH] = std::array::from_fn(|_| SockAddrStorage::zeroed());
    let named = froms.is_some();
    for i in 0..BATCH {
        iov[i].iov_base = slots[i].as_mut_ptr() as *mut libc::c_void;
        iov[i].iov_len = SLOT;
        hdr[i].msg_hdr.msg_iov = &mut iov[i];
        hdr[i].msg_hdr.msg_iovlen = 1;
        if named {
            hdr[i].msg_hdr.msg_namelen = names[i].size_of();
            hdr[i].msg_hdr.msg_name = (&mut names[i] as *mut SockAddrStorage).cast();
        }
    }
    let fd = sock.as_raw_fd();
    // SAFETY: `hdr` is initialised above and points into live buffers.
    let r = unsafe {
        libc::recvmmsg(
            fd,
            hdr.as_mut_ptr(),
            BATCH as u32,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(0)
            }
            _ => Err(e),
        };
    }
    for i in 0..r as usize {
        lens[i] = hdr[i].msg_len as usize;
    }
    if let Some(froms) = froms {
        for (i, name) in names.into_iter().take(r as usize).enumerate() {
            // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into `name`.
            froms[i] = unsafe { SockAddr::new(name, hdr[i].msg_hdr.msg_namelen) }.as_socket();
        }
    }
    Ok(r as usize)
}

/// The CPU-time clock of one thread (or the sum of up to 16), readable from any thread while they live.
#[derive(Clone, Copy)]
pub struct ThreadCpu {
    ids: [libc::clockid_t; 16],
    n: usize,
}

impl ThreadCpu {
    fn one(id: libc::clockid_t) -> Self {
        let mut ids = [0; 16];
        ids[0] = id;
        ThreadCpu { ids, n: 1 }
    }

    /// The sum of `clocks` (the first 16 clocks in all).
    pub fn sum(clocks: &[ThreadCpu]) -> Self {
        let mut out = ThreadCpu { ids: [0; 16], n: 0 };
        for c in clocks {
            for &id in &c.ids[..c.n] {
                if out.n < out.ids.len() {
                    out.ids[out.n] = id;
                    out.n += 1;
                }
            }
        }
        out
    }
}

impl ThreadCpu {
    /// The calling thread's clock.
    pub fn current() -> Self {
        let mut id: libc::clockid_t = 0;
        // SAFETY: plain FFI call on the current thread with a valid out-pointer.
        unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        ThreadCpu::one(id)
    }

    /// The CPU-time clock of process `pid` (all its threads).
    pub fn process(pid: i32) -> io::Result<Self> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: plain FFI call with a valid out-pointer.
        match unsafe { libc::clock_getcpuclockid(pid, &mut id) } {
            0 => Ok(ThreadCpu::one(id)),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// CPU time (user + system) the thread(s) used so far.
    pub fn read(self) -> Duration {
        self.ids[..self.n]
            .iter()
            .map(|&id| {
                // SAFETY: a zeroed timespec is valid; clock_gettime fills it.
                let mut ts: libc::timespec = unsafe { zeroed() };
                // SAFETY: valid out-pointer.
                unsafe { libc::clock_gettime(id, &mut ts) };
                Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
            })
            .sum()
    }
}

/// Pins the calling thread to `cpu` (ignored when the system refuses).
pub fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
