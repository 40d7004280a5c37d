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
//!
//! The peers use the same layout both ways: [`encode_relay`] writes the canonical form byte for byte as the
//! STUN codec does, and [`decode_relay`] reads it into the [`Msg::Relay`](super::Msg::Relay) the codec would
//! give (tests compare both with the codec for every length and random contents).
use super::{Msg, PairIdBytes, Tid, MAGIC_COOKIE, MAX_DATAGRAM};

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

/// The canonical Relay indication for `tid`, `pair_id` and `data`, as the STUN codec encodes it; `None`
/// when the datagram would exceed [`MAX_DATAGRAM`] (the codec's path handles that case).
pub(super) fn encode_relay(tid: &Tid, pair_id: &PairIdBytes, data: &[u8]) -> Option<Vec<u8>> {
    let padded = (DATA_OFFSET + data.len()).div_ceil(4) * 4;
    if padded > MAX_DATAGRAM {
        return None;
    }
    let mut b = Vec::with_capacity(padded);
    b.extend_from_slice(&RELAY_TYPE.to_be_bytes());
    b.extend_from_slice(&((padded - 20) as u16).to_be_bytes());
    b.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    b.extend_from_slice(tid);
    b.extend_from_slice(&PAIR_ID_TYPE.to_be_bytes());
    b.extend_from_slice(&8u16.to_be_bytes());
    b.extend_from_slice(pair_id);
    b.extend_from_slice(&DATA_TYPE.to_be_bytes());
    b.extend_from_slice(&(data.len() as u16).to_be_bytes());
    b.extend_from_slice(data);
    b.resize(padded, 0);
    Some(b)
}

/// The [`Msg::Relay`] a canonical Relay indication decodes to (`None`: not canonical, or longer than
/// [`MAX_DATAGRAM`], which the full decoder rejects).
pub(super) fn decode_relay(b: &[u8]) -> Option<Msg> {
    if b.len() > MAX_DATAGRAM {
        return None;
    }
    let v = relay_view(b)?;
    Some(Msg::Relay {
        tid: b[8..20].try_into().expect("12 bytes"),
        pair_id: Some(v.pair_id),
        data: Some(b[DATA_OFFSET..DATA_OFFSET + v.data_len].to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    /// The codec's encoding of a Relay (the path the fast one replaces).
    fn codec_relay(tid: Tid, pair_id: Option<PairIdBytes>, data: Option<Vec<u8>>) -> Vec<u8> {
        let mut m = crate::wire::message(
            stun_codec::MessageClass::Indication,
            crate::wire::methods::relay(),
            stun_codec::TransactionId::new(tid),
        );
        if let Some(id) = pair_id {
            m.add_attribute(crate::wire::PairId(id.to_vec()));
        }
        if let Some(d) = data {
            m.add_attribute(crate::wire::Data(d));
        }
        crate::wire::encode(m)
    }

    /// The codec's decoding (the path the fast one replaces).
    fn codec_decode(b: &[u8]) -> Option<Msg> {
        let m = crate::wire::decode(b)?;
        (m.method().as_u16() == 0x005 && m.class() == stun_codec::MessageClass::Indication).then(
            || Msg::Relay {
                tid: *m.transaction_id().as_bytes(),
                pair_id: crate::wire::get::<crate::wire::PairId>(&m)
                    .and_then(|p| <[u8; 8]>::try_from(&p.0[..]).ok()),
                data: crate::wire::get::<crate::wire::Data>(&m).map(|d| d.0.clone()),
            },
        )
    }

    #[test]
    fn fast_relay_is_the_codecs_for_every_length_up_to_the_limit() {
        for n in 0..=MAX_DATAGRAM {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            let (tid, id) = ([n as u8; 12], [(n >> 3) as u8; 8]);
            let codec = codec_relay(tid, Some(id), Some(data.clone()));
            match encode_relay(&tid, &id, &data) {
                Some(fast) => {
                    assert_eq!(fast, codec, "{n} bytes");
                    assert_eq!(decode_relay(&fast), codec_decode(&codec), "{n} bytes");
                    assert!(decode_relay(&fast).is_some());
                }
                None => assert!(codec.len() > MAX_DATAGRAM, "{n} bytes"),
            }
        }
    }

    proptest! {
        #[test]
        fn fast_relay_matches_the_codec(
            tid in any::<[u8; 12]>(),
            id in any::<[u8; 8]>(),
            data in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let fast = encode_relay(&tid, &id, &data).expect("short");
            prop_assert_eq!(&fast, &codec_relay(tid, Some(id), Some(data)));
        }

        /// Whatever the bytes, the fast decoder either declines or agrees with the codec.
        #[test]
        fn fast_decode_never_disagrees(
            tid in any::<[u8; 12]>(),
            id in any::<[u8; 8]>(),
            data in proptest::collection::vec(any::<u8>(), 0..80),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
            cut in any::<prop::sample::Index>(),
            shorten in any::<bool>(),
        ) {
            let mut b = encode_relay(&tid, &id, &data).expect("short");
            for (at, v) in flips {
                let i = at.index(b.len());
                b[i] = v;
            }
            if shorten {
                b.truncate(cut.index(b.len() + 1));
            }
            if let Some(m) = decode_relay(&b) {
                prop_assert_eq!(Some(m), codec_decode(&b));
            }
        }
    }

    #[test]
    fn longer_than_a_datagram_is_left_to_the_codec() {
        let data = vec![1u8; MAX_DATAGRAM];
        assert_eq!(encode_relay(&[0; 12], &[0; 8], &data), None);
        let mut b = encode_relay(&[0; 12], &[0; 8], &data[..MAX_DATAGRAM - 40]).expect("fits");
        let len = b.len();
        b.extend_from_slice(&[0; 8]);
        b[2..4].copy_from_slice(&((len + 8 - 20) as u16).to_be_bytes());
        b[34..36].copy_from_slice(&((MAX_DATAGRAM - 40 + 8) as u16).to_be_bytes());
        assert!(b.len() > MAX_DATAGRAM);
        assert_eq!(decode_relay(&b), None);
        assert_eq!(codec_decode(&b), None);
    }
}
