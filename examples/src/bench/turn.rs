//! A TURN client just big enough to load a TURN server (coturn, started with `--no-auth`: lab/bench-coturn.sh)
//! with the same generator: Allocate, CreatePermission and ChannelBind towards the receiver (RFC 8656), then
//! ChannelData, which the server forwards to the receiver as plain UDP (one hop). Measurement plumbing only.
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Result};

use super::load::Flow;
use super::net;

const MAGIC: u32 = 0x2112_A442;
const ALLOCATE: u16 = 0x0003;
const CREATE_PERMISSION: u16 = 0x0008;
const CHANNEL_BIND: u16 = 0x0009;
const REQUESTED_TRANSPORT: u16 = 0x0019;
const XOR_PEER_ADDRESS: u16 = 0x0012;
const CHANNEL_NUMBER: u16 = 0x000C;
const ERROR_CODE: u16 = 0x0009;
/// The channel the sender binds to the receiver.
const CHANNEL: u16 = 0x4000;

/// A STUN request of method `method` with `attrs` (each padded to 4 bytes).
fn request(method: u16, tid: [u8; 12], attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in attrs {
        body.extend_from_slice(&t.to_be_bytes());
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut m = Vec::with_capacity(20 + body.len());
    m.extend_from_slice(&method.to_be_bytes());
    m.extend_from_slice(&(body.len() as u16).to_be_bytes());
    m.extend_from_slice(&MAGIC.to_be_bytes());
    m.extend_from_slice(&tid);
    m.extend_from_slice(&body);
    m
}

/// XOR-PEER-ADDRESS for an IPv4 `peer`.
fn xor_address(peer: SocketAddr) -> Result<Vec<u8>> {
    let SocketAddr::V4(v4) = peer else {
        bail!("the TURN bench is IPv4 only")
    };
    let mut v = vec![0, 1];
    v.extend_from_slice(&(v4.port() ^ (MAGIC >> 16) as u16).to_be_bytes());
    v.extend_from_slice(&(u32::from(*v4.ip()) ^ MAGIC).to_be_bytes());
    Ok(v)
}

/// The ERROR-CODE of a STUN error response, as "code reason".
fn error_code(m: &[u8]) -> Option<String> {
    let mut at = 20;
    while at + 4 <= m.len() {
        let t = u16::from_be_bytes([m[at], m[at + 1]]);
        let len = u16::from_be_bytes([m[at + 2], m[at + 3]]) as usize;
        let v = m.get(at + 4..at + 4 + len)?;
        if t == ERROR_CODE && len >= 4 {
            let code = u16::from(v[2] & 7) * 100 + u16::from(v[3]);
            return Some(format!("{code} {}", String::from_utf8_lossy(&v[4..])));
        }
        at += 4 + len.next_multiple_of(4);
    }
    None
}

/// Sends a `method` request and waits (≤ 2 s, re-sending every 200 ms) for its success response.
fn transact(
    s: &UdpSocket,
    server: SocketAddr,
    method: u16,
    attrs: &[(u16, Vec<u8>)],
) -> Result<()> {
    let mut tid = [0u8; 12];
    tid[..8].copy_from_slice(&crate::seed().to_le_bytes());
    let bytes = request(method, tid, attrs);
    net::exchange(s, server, &bytes, "TURN server", |m| {
        if m.len() < 20 || m[8..20] != tid {
            return None;
        }
        let kind = u16::from_be_bytes([m[0], m[1]]);
        if kind == method | 0x0100 {
            return Some(Ok(()));
        }
        if kind == method | 0x0110 {
            let why = error_code(m).unwrap_or_default();
            let refused =
                format!("the TURN server at {server} refused method {method:#06x}: {why}");
            return Some(Err(anyhow::anyhow!(refused)));
        }
        None
    })
}

/// A flow through the TURN server at `server`: a new sender allocates, permits and binds a channel to `to`
/// (the receiver of `flow`), and sends ChannelData with `payload` bytes of DATA.
pub fn channel_flow(server: SocketAddr, flow: &Flow, payload: usize, buf: usize) -> Result<Flow> {
    let (sender, _) = net::udp("127.0.0.1:0".parse()?, buf)?;
    sender.set_read_timeout(Some(Duration::from_millis(200)))?;
    let to = flow.receiver_addr()?;
    transact(
        &sender,
        server,
        ALLOCATE,
        &[(REQUESTED_TRANSPORT, vec![17, 0, 0, 0])],
    )?;
    let peer = (XOR_PEER_ADDRESS, xor_address(to)?);
    transact(
        &sender,
        server,
        CREATE_PERMISSION,
        std::slice::from_ref(&peer),
    )?;
    let channel = (CHANNEL_NUMBER, [CHANNEL.to_be_bytes(), [0, 0]].concat());
    transact(&sender, server, CHANNEL_BIND, &[channel, peer])?;
    let mut template = Vec::with_capacity(4 + payload);
    template.extend_from_slice(&CHANNEL.to_be_bytes());
    template.extend_from_slice(&(payload as u16).to_be_bytes());
    template.resize(4 + payload, 0);
    template.resize(template.len().next_multiple_of(4), 0); // padding (RFC 8656 12.5)
    if template.len() != 4 + payload {
        bail!("--payload must be a multiple of 4 for the TURN bench (ChannelData padding)");
    }
    Ok(Flow {
        sender,
        receiver: flow.receiver.try_clone()?,
        template,
        overhead: 0,
        rcvbuf: flow.rcvbuf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_stun_and_peer_addresses_are_xored() {
        let peer = xor_address("192.0.2.1:32853".parse().unwrap()).unwrap();
        assert_eq!(peer, [0, 1, 0xA1, 0x47, 0xE1, 0x12, 0xA6, 0x43]); // RFC 5769 2.2's mapped address
        let m = request(
            CHANNEL_BIND,
            [1; 12],
            &[
                (CHANNEL_NUMBER, vec![0x40, 0, 0, 0]),
                (XOR_PEER_ADDRESS, peer),
            ],
        );
        assert_eq!(&m[..4], [0x00, 0x09, 0, 20]);
        assert_eq!(&m[4..8], MAGIC.to_be_bytes());
        let mut error = request(
            CHANNEL_BIND | 0x0110,
            [1; 12],
            &[(ERROR_CODE, b"\0\0\x04\x03Forbidden".to_vec())],
        );
        assert_eq!(error_code(&error).as_deref(), Some("403 Forbidden"));
        error.truncate(25);
        assert_eq!(error_code(&error), None);
    }
}
