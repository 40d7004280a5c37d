//! Typed punch messages: one struct per message, each with its encoder and decoder side by side, shared by the
//! server and the peer. The byte layout is in `docs/PROTOCOL.md`; the limits are named here once.
//!
//! Decoding is lenient exactly where the protocol says so: an optional attribute that is malformed reads as
//! absent (a name that is not UTF-8 is empty, an unknown NAT behaviour is unknown), and repeated addresses are
//! capped at [`MAX_LOCAL_ADDRS`]. A message missing what it cannot do without decodes to `None`.
use std::net::SocketAddr;
use std::time::Duration;

use stun_codec::rfc5389::attributes::{ErrorCode, XorMappedAddress};
use stun_codec::{MessageClass, TransactionId};

use super::{
    decode, decode_addr, encode, encode_addr, get, message, methods, text, Burn,
    ClientId as ClientIdAttr, Cookie, Data, Hold, LocalAddr, Name, Nat, Padding,
    PairId as PairIdAttr, Pake, PeerLocal, PeerName, PeerNat, PeerPake, PeerPublic, Pool,
    PunchAttribute, Retry, Rtt, StunMessage,
};
use crate::nat::NatBehaviour;

/// Longest pool name in bytes (at least one byte is required).
pub const MAX_POOL_BYTES: usize = 64;
/// Longest display name in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Most local addresses a peer announces (and a PeerInfo carries).
pub const MAX_LOCAL_ADDRS: usize = 8;
/// Bytes before the chat frame in a direct data datagram: [`DATA_TAG`](super::DATA_TAG) and the pair id.
pub const DIRECT_HEADER: usize = 9;

/// A STUN transaction id.
pub type Tid = [u8; 12];
/// Eight random bytes naming one pairing.
pub type PairIdBytes = [u8; 8];
/// Eight random bytes naming one peer instance across address changes.
pub type ClientIdBytes = [u8; 8];

/// Peer → server: join a pool, refresh the registration, or (with `retry`) ask for a new punch round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// Transaction id.
    pub tid: Tid,
    /// The pool; empty when the request had none or an invalid one (the server answers 400).
    pub pool: String,
    /// Display name (may be empty).
    pub name: String,
    /// The sender's NAT behaviour.
    pub nat: NatBehaviour,
    /// Names this peer instance across address changes.
    pub client_id: Option<ClientIdBytes>,
    /// The sender's local addresses (at most [`MAX_LOCAL_ADDRS`]).
    pub locals: Vec<SocketAddr>,
    /// The sender's measured round trip to the server.
    pub rtt: Option<Duration>,
    /// Start a new punch round for both members now.
    pub retry: bool,
    /// The sender's SPAKE2 message, passed to the partner in its PeerInfo.
    pub pake: Option<Vec<u8>>,
    /// The server's cookie from a Binding answer (return routability).
    pub cookie: Option<Vec<u8>>,
    /// The key for MESSAGE-INTEGRITY between this peer and the server (LINK-KEY).
    pub link_key: Option<super::LinkKeyBytes>,
    /// With an empty `pool`: the server picks a free nameplate and names it in the success.
    pub allocate: bool,
}

/// Server → peer: the other side of the pair (a request: the peer answers with [`Msg::PeerInfoAck`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Transaction id.
    pub tid: Tid,
    /// Names this pairing.
    pub pair_id: PairIdBytes,
    /// The partner's public address as the server sees it.
    pub public: SocketAddr,
    /// The partner's local addresses.
    pub locals: Vec<SocketAddr>,
    /// The partner's NAT behaviour.
    pub nat: NatBehaviour,
    /// The partner's display name.
    pub name: String,
    /// The receiver's own public address, as the server sees it.
    pub mapped: Option<SocketAddr>,
    /// This round the partner pings first: hold the first ping back a little.
    pub hold: bool,
    /// The partner's SPAKE2 message.
    pub pake: Option<Vec<u8>>,
}

/// Every message punch's machines exchange, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// RFC 5389 Binding request (plain: the detector builds its RFC 5780 ones itself), padded with PADDING to
    /// [`super::BINDING_REQUEST_LEN`] bytes so that the answer is never larger.
    BindingRequest {
        /// Transaction id.
        tid: Tid,
    },
    /// RFC 5389 Binding success.
    BindingOk {
        /// Transaction id.
        tid: Tid,
        /// XOR-MAPPED-ADDRESS, if present.
        mapped: Option<SocketAddr>,
        /// The server's COOKIE for the address the request came from, to echo in [`Register::cookie`].
        cookie: Option<Vec<u8>>,
    },
    /// See [`Register`].
    Register(Register),
    /// Server → peer: registered; `mapped` is the peer's public address.
    RegisterOk {
        /// Transaction id.
        tid: Tid,
        /// XOR-MAPPED-ADDRESS, if present.
        mapped: Option<SocketAddr>,
        /// A fresh COOKIE for the next Register.
        cookie: Option<Vec<u8>>,
        /// The nameplate the server allocated (answer to [`Register::allocate`]), in POOL.
        pool: Option<String>,
    },
    /// Server → peer: the Register was refused.
    RegisterError {
        /// Transaction id.
        tid: Tid,
        /// STUN error code (409 pool full, 400 bad request, 503 server full...).
        code: u16,
        /// Reason phrase.
        reason: String,
        /// With 401 "cookie required": a fresh COOKIE; register again with it.
        cookie: Option<Vec<u8>>,
    },
    /// Peer → server: leave the pool (a Register indication).
    Leave {
        /// Transaction id.
        tid: Tid,
        /// The pool.
        pool: String,
        /// The code was wrong: the nameplate must not be reused for a while.
        burn: bool,
    },
    /// See [`PeerInfo`].
    PeerInfo(PeerInfo),
    /// Peer → server: PeerInfo received.
    PeerInfoAck {
        /// Transaction id (the PeerInfo's).
        tid: Tid,
    },
    /// Server → peer: the partner left or expired (a PeerInfo indication).
    PeerLeft {
        /// Transaction id.
        tid: Tid,
        /// The pairing that ended.
        pair_id: Option<PairIdBytes>,
    },
    /// A chat frame through the server: peer → server and server → peer.
    Relay {
        /// Transaction id.
        tid: Tid,
        /// The pairing.
        pair_id: Option<PairIdBytes>,
        /// The chat frame, if present.
        data: Option<Vec<u8>>,
    },
}

/// A STUN message of punch's attribute set with this class, method and transaction id.
fn stun(class: MessageClass, method: stun_codec::Method, tid: Tid) -> StunMessage {
    message(class, method, TransactionId::new(tid))
}

/// A success response carrying the requester's address (XOR-MAPPED-ADDRESS) and a fresh COOKIE.
fn success(
    method: stun_codec::Method,
    tid: Tid,
    mapped: &Option<SocketAddr>,
    cookie: &Option<Vec<u8>>,
) -> StunMessage {
    let mut m = stun(MessageClass::SuccessResponse, method, tid);
    if let Some(a) = mapped {
        m.add_attribute(XorMappedAddress::new(*a));
    }
    add_cookie(&mut m, cookie);
    m
}

fn id8(bytes: &[u8]) -> Option<[u8; 8]> {
    <[u8; 8]>::try_from(bytes).ok()
}

fn addrs<'a>(
    m: &'a StunMessage,
    pick: fn(&'a PunchAttribute) -> Option<&'a [u8]>,
) -> Vec<SocketAddr> {
    m.attributes()
        .filter_map(pick)
        .filter_map(decode_addr)
        .take(MAX_LOCAL_ADDRS)
        .collect()
}

fn mapped(m: &StunMessage) -> Option<SocketAddr> {
    get::<XorMappedAddress>(m).map(|a| a.address())
}

fn pair_id(m: &StunMessage) -> Option<PairIdBytes> {
    get::<PairIdAttr>(m).and_then(|p| id8(&p.0))
}

impl Msg {
    /// Decodes a STUN datagram into a typed message; `None` for anything else (never panics).
    pub fn decode(data: &[u8]) -> Option<Msg> {
        if let Some(relay) = super::fast::decode_relay(data) {
            return Some(relay);
        }
        if let Some(r) = super::pairing::decode_register(data) {
            return Some(Msg::Register(r));
        }
        Msg::from_stun(&decode(data)?)
    }

    /// A decoded STUN message as a typed message; `None` for an unknown method or class.
    pub fn from_stun(m: &StunMessage) -> Option<Msg> {
        let tid = *m.transaction_id().as_bytes();
        let class = m.class();
        let method = m.method();
        Some(match (method.as_u16(), class) {
            (0x001, MessageClass::Request) => Msg::BindingRequest { tid },
            (0x001, MessageClass::SuccessResponse) => Msg::BindingOk {
                tid,
                mapped: mapped(m),
                cookie: cookie(m),
            },
            (0x00D, MessageClass::Request) => Msg::Register(Register::from_stun(m)),
            (0x00D, MessageClass::SuccessResponse) => Msg::RegisterOk {
                tid,
                mapped: mapped(m),
                cookie: cookie(m),
                pool: get::<Pool>(m).and_then(|p| text(&p.0, MAX_POOL_BYTES)),
            },
            (0x00D, MessageClass::ErrorResponse) => {
                let (code, reason) = get::<ErrorCode>(m)
                    .map(|e| (e.code(), e.reason_phrase().to_owned()))
                    .unwrap_or((500, "no reason given".into()));
                Msg::RegisterError {
                    tid,
                    code,
                    reason,
                    cookie: cookie(m),
                }
            }
            (0x00D, MessageClass::Indication) => Msg::Leave {
                tid,
                pool: get::<Pool>(m)
                    .and_then(|p| text(&p.0, MAX_POOL_BYTES))
                    .unwrap_or_default(),
                burn: get::<Burn>(m).is_some(),
            },
            (0x00E, MessageClass::Request) => Msg::PeerInfo(PeerInfo::from_stun(m)?),
            (0x00E, MessageClass::SuccessResponse) => Msg::PeerInfoAck { tid },
            (0x00E, MessageClass::Indication) => Msg::PeerLeft {
                tid,
                pair_id: pair_id(m),
            },
            (0x005, MessageClass::Indication) => Msg::Relay {
                tid,
                pair_id: pair_id(m),
                data: get::<Data>(m).map(|d| d.0.clone()),
            },
            _ => return None,
        })
    }

    /// Encodes the message as a STUN datagram.
    pub fn encode(&self) -> Vec<u8> {
        if let Msg::Relay {
            tid,
            pair_id: Some(id),
            data: Some(d),
        } = self
        {
            if let Some(b) = super::fast::encode_relay(tid, id, d) {
                return b;
            }
        }
        self.fast_encode().unwrap_or_else(|| encode(self.to_stun()))
    }

    /// The pairing messages written directly (byte for byte the codec's encoding); `None` for the others.
    fn fast_encode(&self) -> Option<Vec<u8>> {
        use super::pairing::{encode_peer_info, encode_register_ok};
        match self {
            Msg::RegisterOk {
                tid,
                mapped,
                cookie,
                pool,
            } => encode_register_ok(tid, *mapped, cookie.as_deref(), pool.as_deref()),
            Msg::PeerInfo(p) => encode_peer_info(p),
            _ => None,
        }
    }

    /// Encodes the message with a MESSAGE-INTEGRITY under `key` (see [`super::LinkKeyBytes`]).
    pub fn encode_with_integrity(&self, key: &super::LinkKeyBytes) -> Vec<u8> {
        let mut bytes = self.fast_encode().unwrap_or_else(|| encode(self.to_stun()));
        super::append_integrity(&mut bytes, key);
        bytes
    }

    pub(super) fn to_stun(&self) -> StunMessage {
        match self {
            Msg::BindingRequest { tid } => {
                let mut m = stun(MessageClass::Request, methods::binding(), *tid);
                let pad = super::BINDING_REQUEST_LEN - 20 - 4;
                m.add_attribute(Padding(vec![0; pad]));
                m
            }
            Msg::BindingOk {
                tid,
                mapped,
                cookie,
            } => success(methods::binding(), *tid, mapped, cookie),
            Msg::Register(r) => r.to_stun(),
            Msg::RegisterOk {
                tid,
                mapped,
                cookie,
                pool,
            } => {
                let mut m = success(methods::register(), *tid, mapped, cookie);
                if let Some(p) = pool {
                    m.add_attribute(Pool(p.as_bytes().to_vec()));
                }
                m
            }
            Msg::RegisterError {
                tid,
                code,
                reason,
                cookie,
            } => {
                let mut m = stun(MessageClass::ErrorResponse, methods::register(), *tid);
                if let Ok(e) = ErrorCode::new(*code, reason.clone()) {
                    m.add_attribute(e);
                }
                add_cookie(&mut m, cookie);
                m
            }
            Msg::Leave { tid, pool, burn } => {
                let mut m = stun(MessageClass::Indication, methods::register(), *tid);
                m.add_attribute(Pool(pool.as_bytes().to_vec()));
                if *burn {
                    m.add_attribute(Burn(Vec::new()));
                }
                m
            }
            Msg::PeerInfo(p) => p.to_stun(),
            Msg::PeerInfoAck { tid } => {
                stun(MessageClass::SuccessResponse, methods::peer_info(), *tid)
            }
            Msg::PeerLeft { tid, pair_id } => {
                let mut m = stun(MessageClass::Indication, methods::peer_info(), *tid);
                add_pair_id(&mut m, pair_id);
                m
            }
            Msg::Relay { tid, pair_id, data } => {
                let mut m = stun(MessageClass::Indication, methods::relay(), *tid);
                add_pair_id(&mut m, pair_id);
                if let Some(d) = data {
                    m.add_attribute(Data(d.clone()));
                }
                m
            }
        }
    }
}

fn add_cookie(m: &mut StunMessage, cookie: &Option<Vec<u8>>) {
    if let Some(c) = cookie {
        m.add_attribute(Cookie(c.clone()));
    }
}

fn cookie(m: &StunMessage) -> Option<Vec<u8>> {
    get::<Cookie>(m).map(|c| c.0.clone())
}

fn add_pair_id(m: &mut StunMessage, id: &Option<PairIdBytes>) {
    if let Some(id) = id {
        m.add_attribute(PairIdAttr(id.to_vec()));
    }
}

impl Register {
    /// A plain join of `pool`: no name, unknown NAT, no cookie, key or PAKE message (set the fields you need:
    /// `Register { cookie, ..Register::new(tid, pool) }`).
    pub fn new(tid: Tid, pool: impl Into<String>) -> Register {
        Register {
            tid,
            pool: pool.into(),
            name: String::new(),
            nat: NatBehaviour::UNKNOWN,
            client_id: None,
            locals: Vec::new(),
            rtt: None,
            retry: false,
            pake: None,
            cookie: None,
            link_key: None,
            allocate: false,
        }
    }

    fn from_stun(m: &StunMessage) -> Register {
        Register {
            tid: *m.transaction_id().as_bytes(),
            pool: get::<Pool>(m)
                .and_then(|p| text(&p.0, MAX_POOL_BYTES))
                .unwrap_or_default(),
            name: get::<Name>(m)
                .and_then(|n| text(&n.0, MAX_NAME_BYTES))
                .unwrap_or_default(),
            nat: get::<Nat>(m)
                .and_then(|n| NatBehaviour::decode(&n.0))
                .unwrap_or_default(),
            client_id: get::<ClientIdAttr>(m).and_then(|t| id8(&t.0)),
            locals: addrs(m, |a| match a {
                PunchAttribute::LocalAddr(l) => Some(&l.0),
                _ => None,
            }),
            rtt: get::<Rtt>(m)
                .and_then(|r| <[u8; 4]>::try_from(r.0.as_slice()).ok())
                .map(|b| Duration::from_micros(u64::from(u32::from_be_bytes(b)))),
            retry: get::<Retry>(m).is_some(),
            pake: get::<Pake>(m).map(|p| p.0.clone()),
            cookie: get::<Cookie>(m).map(|c| c.0.clone()),
            link_key: get::<super::LinkKey>(m).and_then(|k| k.0.as_slice().try_into().ok()),
            allocate: get::<super::Allocate>(m).is_some(),
        }
    }

    fn to_stun(&self) -> StunMessage {
        let mut m = stun(MessageClass::Request, methods::register(), self.tid);
        m.add_attribute(Pool(self.pool.as_bytes().to_vec()));
        m.add_attribute(Name(self.name.as_bytes().to_vec()));
        m.add_attribute(Nat(self.nat.encode().to_vec()));
        if let Some(id) = self.client_id {
            m.add_attribute(ClientIdAttr(id.to_vec()));
        }
        for l in self.locals.iter().take(MAX_LOCAL_ADDRS) {
            m.add_attribute(LocalAddr(encode_addr(*l)));
        }
        if let Some(rtt) = self.rtt {
            let us = rtt.as_micros().min(u128::from(u32::MAX)) as u32;
            m.add_attribute(Rtt(us.to_be_bytes().to_vec()));
        }
        if self.retry {
            m.add_attribute(Retry(Vec::new()));
        }
        if let Some(p) = &self.pake {
            m.add_attribute(Pake(p.clone()));
        }
        if let Some(c) = &self.cookie {
            m.add_attribute(Cookie(c.clone()));
        }
        if let Some(k) = &self.link_key {
            m.add_attribute(super::LinkKey(k.to_vec()));
        }
        if self.allocate {
            m.add_attribute(super::Allocate(Vec::new()));
        }
        m
    }
}

impl PeerInfo {
    fn from_stun(m: &StunMessage) -> Option<PeerInfo> {
        Some(PeerInfo {
            tid: *m.transaction_id().as_bytes(),
            pair_id: pair_id(m)?,
            public: get::<PeerPublic>(m).and_then(|a| decode_addr(&a.0))?,
            locals: addrs(m, |a| match a {
                PunchAttribute::PeerLocal(l) => Some(&l.0),
                _ => None,
            }),
            nat: get::<PeerNat>(m)
                .and_then(|n| NatBehaviour::decode(&n.0))
                .unwrap_or_default(),
            name: get::<PeerName>(m)
                .and_then(|n| text(&n.0, MAX_NAME_BYTES))
                .unwrap_or_default(),
            mapped: mapped(m),
            hold: get::<Hold>(m).is_some(),
            pake: get::<PeerPake>(m).map(|p| p.0.clone()),
        })
    }

    fn to_stun(&self) -> StunMessage {
        let mut m = stun(MessageClass::Request, methods::peer_info(), self.tid);
        m.add_attribute(PairIdAttr(self.pair_id.to_vec()));
        m.add_attribute(PeerPublic(encode_addr(self.public)));
        for l in &self.locals {
            m.add_attribute(PeerLocal(encode_addr(*l)));
        }
        m.add_attribute(PeerNat(self.nat.encode().to_vec()));
        m.add_attribute(PeerName(self.name.as_bytes().to_vec()));
        if let Some(a) = self.mapped {
            m.add_attribute(XorMappedAddress::new(a));
        }
        if self.hold {
            m.add_attribute(Hold(Vec::new()));
        }
        if let Some(p) = &self.pake {
            m.add_attribute(PeerPake(p.clone()));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_direct, encode_direct, Inner, DATA_TAG};

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The appended MESSAGE-INTEGRITY is byte for byte the one stun_codec computes (and checks).
    #[test]
    fn appended_integrity_is_stun_codecs() {
        let key = [0xA7; 16];
        let msgs = [
            Msg::PeerInfo(PeerInfo {
                tid: [6; 12],
                pair_id: [7; 8],
                public: a("198.51.100.1:4000"),
                locals: vec![a("10.0.0.2:4000"), a("[fe80::1]:4001")],
                nat: NatBehaviour::UNKNOWN,
                name: "bob".into(),
                mapped: Some(a("198.51.100.2:4000")),
                hold: true,
                pake: Some(vec![1; 33]),
            }),
            Msg::PeerLeft {
                tid: [8; 12],
                pair_id: Some([1; 8]),
            },
            Msg::Register(Register::new([3; 12], "lobby")),
        ];
        for m in msgs {
            let mut stun = m.to_stun();
            super::super::add_integrity(&mut stun, &key);
            let reference = encode(stun);
            let fast = m.encode_with_integrity(&key);
            assert_eq!(fast, reference, "{m:?}");
            assert!(super::super::check_integrity(&fast, &key));
            assert!(!super::super::check_integrity(&fast, &[0; 16]));
        }
    }

    #[test]
    fn every_message_round_trips() {
        let nat = NatBehaviour::decode(&[2, 1, 3, 1, 0, 0]).unwrap_or_default();
        let msgs = vec![
            Msg::BindingRequest { tid: [1; 12] },
            Msg::BindingOk {
                tid: [2; 12],
                mapped: Some(a("1.2.3.4:5")),
                cookie: Some(vec![5; 12]),
            },
            Msg::Register(Register {
                tid: [3; 12],
                pool: "lobby".into(),
                name: "ann".into(),
                nat,
                client_id: Some([9; 8]),
                locals: vec![a("10.0.0.2:4000"), a("[fe80::1]:4001")],
                rtt: Some(Duration::from_micros(1234)),
                retry: true,
                pake: Some(vec![1; 33]),
                cookie: Some(vec![2; 16]),
                link_key: Some([3; 16]),
                allocate: true,
            }),
            Msg::RegisterOk {
                tid: [4; 12],
                mapped: Some(a("[2001:db8::1]:9")),
                cookie: None,
                pool: Some("17".into()),
            },
            Msg::RegisterError {
                tid: [5; 12],
                code: 409,
                reason: "pool full".into(),
                cookie: None,
            },
            Msg::RegisterError {
                tid: [5; 12],
                code: 401,
                reason: "cookie".into(),
                cookie: Some(vec![6; 12]),
            },
            Msg::Leave {
                tid: [6; 12],
                pool: "lobby".into(),
                burn: true,
            },
            Msg::PeerInfo(PeerInfo {
                tid: [7; 12],
                pair_id: [8; 8],
                public: a("5.6.7.8:9"),
                locals: vec![a("192.168.1.2:3")],
                nat,
                name: "bob".into(),
                mapped: Some(a("1.1.1.1:1")),
                hold: true,
                pake: Some(vec![3; 33]),
            }),
            Msg::PeerInfoAck { tid: [8; 12] },
            Msg::PeerLeft {
                tid: [9; 12],
                pair_id: Some([1; 8]),
            },
            Msg::Relay {
                tid: [12; 12],
                pair_id: Some([4; 8]),
                data: Some(vec![0, 1, 2]),
            },
        ];
        for m in msgs {
            assert_eq!(Msg::decode(&m.encode()).as_ref(), Some(&m), "{m:?}");
        }
    }

    #[test]
    fn inner_frames_round_trip_and_garbage_is_refused() {
        for i in [
            Inner::Chat(vec![0, 1, 2]),
            Inner::Ping { tid: [5; 12] },
            Inner::Pong {
                tid: [6; 12],
                mapped: a("[2001:db8::7]:9"),
            },
            Inner::Confirm([7; 32]),
        ] {
            assert_eq!(Inner::decode(&i.encode()), Some(i));
        }
        for bad in [&[][..], &[1, 2], &[2; 13], &[3; 5], &[9, 0]] {
            assert_eq!(Inner::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn integrity_checks_under_the_right_key_only() {
        let m = Msg::PeerLeft {
            tid: [1; 12],
            pair_id: Some([2; 8]),
        };
        let signed = m.encode_with_integrity(&[7; 16]);
        assert!(super::super::check_integrity(&signed, &[7; 16]));
        assert!(!super::super::check_integrity(&signed, &[8; 16]));
        assert!(!super::super::check_integrity(&m.encode(), &[7; 16]));
        assert_eq!(
            Msg::decode(&signed),
            Some(m),
            "the typed message reads the same"
        );
        let mut tampered = signed.clone();
        tampered[25] ^= 1;
        assert!(!super::super::check_integrity(&tampered, &[7; 16]));
    }

    #[test]
    fn limits_and_leniency() {
        let r = Register {
            name: "n".into(),
            locals: (0..12).map(|i| a(&format!("10.0.0.{i}:1"))).collect(),
            ..Register::new([0; 12], "x".repeat(MAX_POOL_BYTES + 1))
        };
        let Some(Msg::Register(d)) = Msg::decode(&Msg::Register(r).encode()) else {
            panic!("a register");
        };
        assert_eq!(d.pool, "", "an over-long pool reads as missing");
        assert_eq!(d.locals.len(), MAX_LOCAL_ADDRS);
        // A PeerInfo without its pair id is not a PeerInfo.
        let mut m = message(
            MessageClass::Request,
            methods::peer_info(),
            TransactionId::new([0; 12]),
        );
        m.add_attribute(PeerPublic(encode_addr(a("1.2.3.4:5"))));
        assert_eq!(Msg::decode(&encode(m)), None);
        assert_eq!(
            decode_direct(&encode_direct(&[7; 8], b"hi")),
            Some(([7; 8], &b"hi"[..]))
        );
        assert_eq!(decode_direct(&[DATA_TAG, 1, 2]), None);
        assert_eq!(
            Msg::BindingRequest { tid: [0; 12] }.encode().len(),
            super::super::BINDING_REQUEST_LEN
        );
    }
}
