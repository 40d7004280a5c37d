//! The server's addresses and the peer's socket on a dual-stack host.
//!
//! `--server NAME[:PORT]` keeps every A and AAAA record ([`ServerSpec`]). A peer's socket is bound to `[::]`
//! with IPV6_V6ONLY off when the host has IPv6 ([`peer_bind`]), so one socket reaches both families (IPv4
//! partners and servers as IPv4-mapped addresses, which the drivers canonicalise). When the name has
//! several addresses the socket can reach, [`pick_server`] races them the RFC 8305 way: a Binding request to
//! the first IPv6 address, then every [`ATTEMPT_DELAY`] one to the next address, the families alternating;
//! every address tried is asked again every second, and the first that answers is the server. When one
//! family is unreachable (no route, a firewall, no AAAA) the other answers a moment later.
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use punch_core::drive::{canonical, for_socket, reaches};
use punch_core::wire::Msg;
use rand::Rng;

use crate::DEFAULT_PORT;

/// RFC 8305's "Connection Attempt Delay": how long one address has to answer before the next is tried too.
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);
/// How long [`pick_server`] waits for any address to answer.
pub const PICK_TIMEOUT: Duration = Duration::from_secs(5);
/// Every address tried is asked again this often (a lost request or answer costs one interval).
const RETRY: Duration = Duration::from_secs(1);

/// A server as the user wrote it, with every address it resolved to (IPv6 and IPv4, deduplicated, in
/// happy-eyeballs order: see [`interleave`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// What was written (`server.example:3478`, `[2001:db8::1]`, `192.0.2.1`).
    pub text: String,
    /// Every address, IPv6 first, the families alternating.
    pub addrs: Vec<SocketAddr>,
}

impl std::fmt::Display for ServerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl ServerSpec {
    /// The addresses of one family (`v6`: IPv6), in order.
    pub fn family(&self, v6: bool) -> Vec<SocketAddr> {
        self.addrs
            .iter()
            .copied()
            .filter(|a| a.is_ipv6() == v6)
            .collect()
    }
}

/// Parses `HOST[:PORT]` (port 3478 when omitted; IPv6 literals in brackets when a port follows) and
/// resolves it to every address it has.
pub fn parse_server(s: &str) -> Result<ServerSpec, String> {
    let addrs = resolve_all(s)?;
    Ok(ServerSpec {
        text: s.to_string(),
        addrs: interleave(addrs),
    })
}

/// Every address of `HOST[:PORT]`, in the resolver's order (IPv4-mapped ones as IPv4).
pub fn resolve_all(s: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(vec![canonical(a)]);
    }
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![canonical(SocketAddr::new(ip, DEFAULT_PORT))]);
    }
    let with_port = if s.contains(':') {
        s.to_string()
    } else {
        format!("{s}:{DEFAULT_PORT}")
    };
    match with_port.to_socket_addrs() {
        Ok(it) => {
            let mut out: Vec<SocketAddr> = Vec::new();
            for a in it.map(canonical) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            if out.is_empty() {
                return Err(format!("'{s}' resolves to no address"));
            }
            Ok(out)
        }
        Err(e) => Err(format!(
            "invalid address '{s}': expected HOST or HOST:PORT ({e})"
        )),
    }
}

/// RFC 8305 section 4: IPv6 first, then the families alternate (each family keeps the resolver's order).
pub fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let (v6, v4): (Vec<_>, Vec<_>) = addrs.into_iter().partition(SocketAddr::is_ipv6);
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// Whether this host can open an IPv6 socket at all.
pub fn has_ipv6() -> bool {
    UdpSocket::bind("[::]:0").is_ok()
}

/// The address a peer binds: `bind` when given, else `[::]:0` (dual-stack: both families from one socket)
/// when the host has IPv6, else `0.0.0.0:0`.
pub fn peer_bind(bind: Option<SocketAddr>) -> SocketAddr {
    bind.unwrap_or_else(|| {
        if has_ipv6() {
            SocketAddr::from(([0u16; 8], 0))
        } else {
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    })
}

/// The server's first address in the other family than `server`'s that a socket bound to `bind` reaches (a
/// dual-stack socket and a server with A and AAAA records): the peer learns its public address in that
/// family there ([`punch_core::PeerConfig::server_other_family`]).
pub fn other_family(spec: &ServerSpec, bind: SocketAddr, server: SocketAddr) -> Option<SocketAddr> {
    spec.addrs
        .iter()
        .copied()
        .find(|a| a.is_ipv6() != server.is_ipv6() && reaches(&[bind], 0, *a))
}

/// The server address a socket bound to `bind` talks to: the only one it can reach, or the first of
/// `spec`'s addresses to answer a Binding request (RFC 8305 racing, see the module docs). Errors say what
/// was tried.
pub fn pick_server(spec: &ServerSpec, bind: SocketAddr) -> Result<SocketAddr> {
    let usable: Vec<SocketAddr> = spec
        .addrs
        .iter()
        .copied()
        .filter(|a| reaches(&[bind], 0, *a))
        .collect();
    match usable[..] {
        [] => bail!(
            "the server {spec} has only {} address(es) ({}), and the local socket ({bind}) cannot reach that family",
            if spec.addrs.iter().all(SocketAddr::is_ipv6) { "IPv6" } else { "IPv4" },
            list(&spec.addrs),
        ),
        [one] => return Ok(one),
        _ => {}
    }
    let probe_bind = SocketAddr::new(bind.ip(), 0);
    let socket = crate::driver::bind_std(probe_bind)?;
    race(&socket, &usable, PICK_TIMEOUT).ok_or_else(|| {
        anyhow::anyhow!(
            "no answer from the server {spec} at any of its addresses ({}) within {} s (down, wrong \
             address, or UDP blocked)",
            list(&usable),
            PICK_TIMEOUT.as_secs()
        )
    })
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Races Binding requests to `addrs` (in order, [`ATTEMPT_DELAY`] apart, each repeated every [`RETRY`])
/// from `socket`: the first address to answer, or `None` after `timeout`.
pub fn race(socket: &UdpSocket, addrs: &[SocketAddr], timeout: Duration) -> Option<SocketAddr> {
    let local = socket.local_addr().ok()?;
    let start = Instant::now();
    let mut rng = rand::rngs::OsRng;
    // (address, transaction id, next send)
    let mut attempts: Vec<(SocketAddr, [u8; 12], Instant)> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, rng.gen(), start + ATTEMPT_DELAY * i as u32))
        .collect();
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= start + timeout {
            return None;
        }
        for (addr, tid, next) in attempts.iter_mut() {
            if *next <= now {
                let request = Msg::BindingRequest { tid: *tid }.encode();
                if let Err(e) = socket.send_to(&request, for_socket(local, *addr)) {
                    tracing::debug!(to = %addr, "server probe: {e}");
                }
                tracing::debug!(to = %addr, "server probe sent");
                *next = now + RETRY;
            }
        }
        let wake = attempts
            .iter()
            .map(|a| a.2)
            .min()
            .unwrap_or(now)
            .min(start + timeout);
        let wait = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        let _ = socket.set_read_timeout(Some(wait));
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let from = canonical(from);
        if let Some(Msg::BindingOk { tid, .. }) = Msg::decode(&buf[..n]) {
            if attempts.iter().any(|(a, t, _)| *a == from && *t == tid) {
                tracing::debug!(server = %from, "server answered first");
                return Some(from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_goes_first_then_the_families_alternate() {
        let got = interleave(vec![
            a("192.0.2.1:1"),
            a("192.0.2.2:1"),
            a("192.0.2.3:1"),
            a("[2001:db8::1]:1"),
        ]);
        assert_eq!(
            got,
            [
                a("[2001:db8::1]:1"),
                a("192.0.2.1:1"),
                a("192.0.2.2:1"),
                a("192.0.2.3:1")
            ]
        );
        let spec = parse_server("[::ffff:192.0.2.7]:9").unwrap();
        assert_eq!(spec.addrs, [a("192.0.2.7:9")]);
        assert!(parse_server("no such host.invalid").is_err());
    }

    #[test]
    fn a_socket_only_picks_among_what_it_can_reach() {
        let spec = ServerSpec {
            text: "s".into(),
            addrs: vec![a("[2001:db8::1]:3478")],
        };
        let e = pick_server(&spec, a("0.0.0.0:0")).unwrap_err().to_string();
        assert!(e.contains("only IPv6"), "{e}");
        let spec = ServerSpec {
            text: "s".into(),
            addrs: vec![a("[2001:db8::1]:3478"), a("192.0.2.1:3478")],
        };
        // One usable address: taken without a probe.
        assert_eq!(
            pick_server(&spec, a("0.0.0.0:0")).unwrap(),
            a("192.0.2.1:3478")
        );
    }

    #[test]
    fn the_address_that_answers_wins_the_race() {
        // A fake server on IPv4 loopback answers; the IPv6 address before it never does.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let at = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                if let Some(Msg::BindingRequest { tid }) = Msg::decode(&buf[..n]) {
                    let ok = Msg::BindingOk {
                        tid,
                        mapped: Some(from),
                        cookie: None,
                    };
                    let _ = server.send_to(&ok.encode(), from);
                }
            }
        });
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent = quiet.local_addr().unwrap();
        let t0 = Instant::now();
        let won = race(&client, &[silent, at], Duration::from_secs(3));
        assert_eq!(won, Some(at));
        // The second address is tried one attempt delay after the first.
        assert!(t0.elapsed() >= ATTEMPT_DELAY, "{:?}", t0.elapsed());
        assert_eq!(race(&client, &[silent], Duration::from_millis(300)), None);
    }
}
