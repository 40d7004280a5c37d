//! The relay fast path: a Relay indication recognised by fixed offsets, without the STUN codec, so the
//! server can forward the received bytes as they are (one copy) instead of decoding and re-encoding them.
//!
//! Only the *canonical* form is recognised, the one [`Msg::Relay`](super::Msg::Relay)'s encoder writes:
//!
//! ```text
//!  0      2      4             8                 20        22     24        32       34    36
//!  0x0015 | len  | magic cookie | transaction id  | 0xC009  | 8    | pair id | 0xC00A | n   | data, zero padding to 4
//! ```
//!
//! Anything else (other attributes, another order, non-zero padding) returns `None` and takes the slow path,
//! which decodes it fully; the forwarded bytes are the same either way.
use super::{PairIdBytes, MAGIC_COOKIE};

/// The STUN message type of a Relay indication (method 0x005, class indication).
pub const RELAY_TYPE: u16 = 0x0015;
/// PAIR-ID's attribute type.
const PAIR_ID_TYPE: u16 = 0xC009;
/// DATA's attribute type (punch's own).
const DATA_TYPE: u16 = 0xC00A;
/// Header (20) + PAIR-ID (4 + 8) + DATA's header (4).
const DATA_OFFSET: usize = 36;

/// What the fast path needs of a canonical Relay indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayView {
    /// The PAIR-ID the sender claims.
    pub pair_id: PairIdBytes,
    /// The length of its DATA.
    pub data_len: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// `Some` if `b` is a canonical Relay indication (see the module docs); `None` for anything else.
pub fn relay_view(b: &[u8]) -> Option<RelayView> {
    if b.len() < DATA_OFFSET || !b.len().is_multiple_of(4) || u16_at(b, 0) != RELAY_TYPE {
        return None;
    }
    let canonical_header = usize::from(u16_at(b, 2)) == b.len() - 20
        && u32::from_be_bytes([b[4], b[5], b[6], b[7]]) == MAGIC_COOKIE
        && u16_at(b, 20) == PAIR_ID_TYPE
        && u16_at(b, 22) == 8
        && u16_at(b, 32) == DATA_TYPE;
    if !canonical_header {
        return None;
    }
    let data_len = usize::from(u16_at(b, 34));
    let end = DATA_OFFSET + data_len;
    let padded = end.div_ceil(4) * 4;
    if padded != b.len() || b[end..].iter().any(|&x| x != 0) {
        return None;
    }
    let pair_id = b[24..32].try_into().expect("8 bytes");
    Some(RelayView { pair_id, data_len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Msg;

    fn relay(data: &[u8]) -> Vec<u8> {
        Msg::Relay {
            tid: [7; 12],
            pair_id: Some([3; 8]),
            data: Some(data.to_vec()),
        }
        .encode()
    }

    #[test]
    fn the_encoders_relay_is_recognised_for_every_length() {
        for n in 0..70 {
            let data: Vec<u8> = (0..n as u8).collect();
            let b = relay(&data);
            assert_eq!(
                relay_view(&b),
                Some(RelayView {
                    pair_id: [3; 8],
                    data_len: n
                }),
                "{n} bytes"
            );
            assert_eq!(&b[DATA_OFFSET..DATA_OFFSET + n], &data[..]);
        }
    }

    #[test]
    fn anything_else_takes_the_slow_path() {
        let b = relay(b"hello");
        let mut bad = vec![];
        for (at, v) in [
            (0, 0x01),
            (3, 0x99),
            (4, 0),
            (20, 0),
            (23, 9),
            (33, 0x0B),
            (35, 9),
            (41, 1),
        ] {
            let mut c = b.clone();
            c[at] = v;
            bad.push(c);
        }
        bad.push(b[..b.len() - 4].to_vec());
        bad.push([&b[..], &[0, 0, 0, 0]].concat());
        let no_pair = Msg::Relay {
            tid: [7; 12],
            pair_id: None,
            data: Some(b"hello".to_vec()),
        };
        bad.push(no_pair.encode());
        let with_integrity = no_pair.encode_with_integrity(&[1; 16]);
        bad.push(with_integrity);
        for c in bad {
            assert_eq!(relay_view(&c), None, "{c:?}");
        }
        assert_eq!(relay_view(&[]), None);
    }
}
