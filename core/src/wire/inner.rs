//! What travels between the two peers: sealed payloads, straight (`[DATA_TAG][pair id][sealed]`) or inside a
//! Relay message, and the inner frames they carry once opened.
use std::net::SocketAddr;

use super::{decode_addr, encode_addr, PairIdBytes, Tid, DATA_TAG, DIRECT_HEADER};

/// What travels inside a sealed payload between the two peers (direct, or through the relay): the first
/// byte names it. Nothing of it is visible to the server or on the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inner {
    /// A chat frame (`[0][frame]`), for the chat session.
    Chat(Vec<u8>),
    /// A connectivity check (`[1][tid]`).
    Ping {
        /// Names the check; the pong echoes it.
        tid: Tid,
    },
    /// The answer to a ping (`[2][tid][address]`).
    Pong {
        /// The ping's id.
        tid: Tid,
        /// Where the ping came from, as the answering peer saw it.
        mapped: SocketAddr,
    },
    /// Key confirmation (`[3][32 bytes]`), sent through the relay at pairing: a partner that cannot open it
    /// used another code.
    Confirm([u8; 32]),
}

impl Inner {
    /// The plaintext bytes (sealed by the caller).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Inner::Chat(frame) => {
                out.push(0);
                out.extend_from_slice(frame);
            }
            Inner::Ping { tid } => {
                out.push(1);
                out.extend_from_slice(tid);
            }
            Inner::Pong { tid, mapped } => {
                out.push(2);
                out.extend_from_slice(tid);
                out.extend(encode_addr(*mapped));
            }
            Inner::Confirm(value) => {
                out.push(3);
                out.extend_from_slice(value);
            }
        }
        out
    }

    /// Parses opened plaintext; `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<Inner> {
        let (&kind, rest) = bytes.split_first()?;
        match kind {
            0 => Some(Inner::Chat(rest.to_vec())),
            1 => Some(Inner::Ping {
                tid: rest.try_into().ok()?,
            }),
            2 if rest.len() > 12 => Some(Inner::Pong {
                tid: rest[..12].try_into().ok()?,
                mapped: decode_addr(&rest[12..])?,
            }),
            3 => Some(Inner::Confirm(rest.try_into().ok()?)),
            _ => None,
        }
    }
}

/// A sealed payload sent straight to the partner: `[DATA_TAG][pair id][sealed]`.
pub fn encode_direct(pair_id: &PairIdBytes, frame: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(DIRECT_HEADER + frame.len());
    d.push(DATA_TAG);
    d.extend_from_slice(pair_id);
    d.extend_from_slice(frame);
    d
}

/// Splits a direct data datagram into its pair id and sealed payload.
pub fn decode_direct(data: &[u8]) -> Option<(PairIdBytes, &[u8])> {
    if data.len() < DIRECT_HEADER || data[0] != DATA_TAG {
        return None;
    }
    let id = data[1..DIRECT_HEADER].try_into().ok()?;
    Some((id, &data[DIRECT_HEADER..]))
}
