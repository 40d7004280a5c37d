//! The pairing fast path: the Register request decoded, and the RegisterOk and PeerInfo encoded, without the
//! STUN codec (they were most of a pairing's cost: ~10 attributes decoded per Register, allocations per
//! attribute on both sides).
//!
//! The encoders write byte for byte what stun_codec writes for the same message (tests compare them for many
//! messages). The decoder reads only the plain form, a Register request whose attributes are all punch's
//! Register attributes (POOL, NAME, NAT, CLIENT-ID, LOCAL-ADDRESS, RTT, RETRY, PAKE, COOKIE, LINK-KEY,
//! ALLOCATE), each zero-padded, optionally followed by a 20-byte MESSAGE-INTEGRITY as the very last attribute;
//! for that input it gives the [`Register`] the codec path gives (the first of a repeated attribute counts, as
//! with [`get`](super::get)). Anything else returns `None` and takes the codec path.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{
    decode_addr, ClientId, ClientIdBytes, Cookie, LinkKey, LinkKeyBytes, LocalAddr, Name, Nat,
    PairId, Pake, PeerInfo, PeerLocal, PeerName, PeerNat, PeerPake, PeerPublic, Pool, Register,
    Rtt, Tid, MAGIC_COOKIE, MAX_DATAGRAM, MAX_LOCAL_ADDRS, MAX_NAME_BYTES, MAX_POOL_BYTES,
};
use crate::nat::NatBehaviour;

/// Register request (method 0x00D, class request).
const REGISTER_REQUEST: u16 = 0x000D;
/// Register success response.
const REGISTER_OK: u16 = 0x010D;
/// PeerInfo request (method 0x00E, class request).
const PEER_INFO_REQUEST: u16 = 0x000E;
/// XOR-MAPPED-ADDRESS.
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// MESSAGE-INTEGRITY.
const MESSAGE_INTEGRITY: u16 = 0x0008;
/// HOLD (empty).
const HOLD: u16 = super::Hold::CODEPOINT;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// A Register request, borrowed from the datagram (the server reads it without allocating): the fields of
/// [`Register`], with the strings and byte strings as slices of the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegisterRef<'a> {
    pub tid: Tid,
    /// Empty when the request had none or an invalid one.
    pub pool: &'a str,
    pub name: &'a str,
    pub nat: NatBehaviour,
    pub client_id: Option<ClientIdBytes>,
    /// At most [`MAX_LOCAL_ADDRS`].
    pub locals: &'a [SocketAddr],
    pub rtt: Option<Duration>,
    pub retry: bool,
    pub pake: Option<&'a [u8]>,
    pub cookie: Option<&'a [u8]>,
    pub link_key: Option<LinkKeyBytes>,
    pub allocate: bool,
}

impl Register {
    /// This Register, borrowed.
    pub(crate) fn borrowed(&self) -> RegisterRef<'_> {
        RegisterRef {
            tid: self.tid,
            pool: &self.pool,
            name: &self.name,
            nat: self.nat,
            client_id: self.client_id,
            locals: &self.locals,
            rtt: self.rtt,
            retry: self.retry,
            pake: self.pake.as_deref(),
            cookie: self.cookie.as_deref(),
            link_key: self.link_key,
            allocate: self.allocate,
        }
    }
}

impl RegisterRef<'_> {
    /// The owned [`Register`].
    pub(crate) fn to_owned(&self) -> Register {
        Register {
            tid: self.tid,
            pool: self.pool.to_owned(),
            name: self.name.to_owned(),
            nat: self.nat,
            client_id: self.client_id,
            locals: self.locals.to_vec(),
            rtt: self.rtt,
            retry: self.retry,
            pake: self.pake.map(<[u8]>::to_vec),
            cookie: self.cookie.map(<[u8]>::to_vec),
            link_key: self.link_key,
            allocate: self.allocate,
        }
    }
}

/// UTF-8 of at most `max` bytes, borrowed (what [`super::text`] reads, without the copy).
fn text_ref(bytes: &[u8], max: usize) -> Option<&str> {
    if bytes.len() > max {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// The [`Register`] a plain Register request decodes to; `None`: not one (see the module docs).
pub(super) fn decode_register(b: &[u8]) -> Option<Register> {
    let mut locals = [UNSPECIFIED; MAX_LOCAL_ADDRS];
    decode_register_ref(b, &mut locals).map(|r| r.to_owned())
}

/// A placeholder for the local addresses' storage.
pub(crate) const UNSPECIFIED: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// [`decode_register`], borrowed from `b`, the local addresses stored in `locals`.
pub(crate) fn decode_register_ref<'a>(
    b: &'a [u8],
    locals: &'a mut [SocketAddr; MAX_LOCAL_ADDRS],
) -> Option<RegisterRef<'a>> {
    if b.len() < 20 || b.len() > MAX_DATAGRAM || !b.len().is_multiple_of(4) {
        return None;
    }
    if u16_at(b, 0) != REGISTER_REQUEST
        || usize::from(u16_at(b, 2)) != b.len() - 20
        || b[4..8] != MAGIC_COOKIE.to_be_bytes()
    {
        return None;
    }
    // The first value of each attribute, in the order of `field`'s indexes.
    let mut first: [Option<&[u8]>; 10] = [None; 10];
    let mut n_locals = 0;
    let mut at = 20;
    while at < b.len() {
        if b.len() - at < 4 {
            return None;
        }
        let (ty, len) = (u16_at(b, at), usize::from(u16_at(b, at + 2)));
        let start = at + 4;
        let padded = len.div_ceil(4) * 4;
        if b.len() - start < padded || b[start + len..start + padded].iter().any(|&x| x != 0) {
            return None;
        }
        let value = &b[start..start + len];
        at = start + padded;
        if ty == MESSAGE_INTEGRITY {
            if len != 20 || at != b.len() {
                return None;
            }
            break;
        }
        if ty == LocalAddr::CODEPOINT {
            if n_locals < MAX_LOCAL_ADDRS {
                if let Some(a) = decode_addr(value) {
                    locals[n_locals] = a;
                    n_locals += 1;
                }
            }
            continue;
        }
        first[field(ty)?].get_or_insert(value);
    }
    let [pool, name, nat, client_id, rtt, retry, pake, cookie, link_key, allocate] = first;
    Some(RegisterRef {
        tid: b[8..20].try_into().expect("12 bytes"),
        pool: pool
            .and_then(|p| text_ref(p, MAX_POOL_BYTES))
            .unwrap_or_default(),
        name: name
            .and_then(|n| text_ref(n, MAX_NAME_BYTES))
            .unwrap_or_default(),
        nat: nat.and_then(NatBehaviour::decode).unwrap_or_default(),
        client_id: client_id.and_then(|t| t.try_into().ok()),
        locals: &locals[..n_locals],
        rtt: rtt
            .and_then(|r| <[u8; 4]>::try_from(r).ok())
            .map(|b| Duration::from_micros(u64::from(u32::from_be_bytes(b)))),
        retry: retry.is_some(),
        pake,
        cookie,
        link_key: link_key.and_then(|k| k.try_into().ok()),
        allocate: allocate.is_some(),
    })
}

/// Where a Register attribute's first value goes in `decode_register_ref` (`None`: not one of them).
fn field(ty: u16) -> Option<usize> {
    Some(match ty {
        Pool::CODEPOINT => 0,
        Name::CODEPOINT => 1,
        Nat::CODEPOINT => 2,
        ClientId::CODEPOINT => 3,
        Rtt::CODEPOINT => 4,
        super::Retry::CODEPOINT => 5,
        Pake::CODEPOINT => 6,
        Cookie::CODEPOINT => 7,
        LinkKey::CODEPOINT => 8,
        super::Allocate::CODEPOINT => 9,
        _ => return None,
    })
}

/// A STUN message being written: header first, attributes appended, the length fixed at the end.
struct Writer(Vec<u8>);

impl Writer {
    fn new(ty: u16, tid: &Tid, capacity: usize) -> Writer {
        // Room for a MESSAGE-INTEGRITY too (24 bytes), so appending it does not reallocate.
        let mut b = Vec::with_capacity(capacity + 24);
        b.extend_from_slice(&ty.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        b.extend_from_slice(tid);
        Writer(b)
    }

    fn attr(&mut self, ty: u16, value: &[u8]) {
        self.header(ty, value.len());
        self.0.extend_from_slice(value);
        self.pad();
    }

    fn header(&mut self, ty: u16, len: usize) {
        self.0.extend_from_slice(&ty.to_be_bytes());
        self.0.extend_from_slice(&(len as u16).to_be_bytes());
    }

    fn pad(&mut self) {
        let n = self.0.len().div_ceil(4) * 4;
        self.0.resize(n, 0);
    }

    /// The address as [`super::encode_addr`] writes it (`[0, family, port ^ 0x2112, ip ^ cookie repeated]`).
    fn addr(&mut self, ty: u16, a: SocketAddr) {
        let c = MAGIC_COOKIE.to_be_bytes();
        let repeated = [
            c[0], c[1], c[2], c[3], c[0], c[1], c[2], c[3], c[0], c[1], c[2], c[3],
        ];
        self.xor_addr(ty, a, &repeated);
    }

    /// XOR-MAPPED-ADDRESS (RFC 5389 15.2): like [`Writer::addr`], with an IPv6 address also XORed with the
    /// transaction id.
    fn xor_addr(&mut self, ty: u16, a: SocketAddr, tid: &[u8; 12]) {
        let cookie = MAGIC_COOKIE.to_be_bytes();
        let port = (a.port() ^ 0x2112).to_be_bytes();
        match a.ip() {
            IpAddr::V4(ip) => {
                self.header(ty, 8);
                self.0.extend_from_slice(&[0, 1, port[0], port[1]]);
                let o = ip.octets();
                self.0.extend((0..4).map(|i| o[i] ^ cookie[i]));
            }
            IpAddr::V6(ip) => {
                self.header(ty, 20);
                self.0.extend_from_slice(&[0, 2, port[0], port[1]]);
                let o = ip.octets();
                let key = |i: usize| if i < 4 { cookie[i] } else { tid[i - 4] };
                self.0.extend((0..16).map(|i| o[i] ^ key(i)));
            }
        }
    }

    /// The finished message; `None` if it outgrew a STUN length (the codec path handles that case).
    fn finish(mut self) -> Option<Vec<u8>> {
        let len = u16::try_from(self.0.len() - 20).ok()?;
        self.0[2..4].copy_from_slice(&len.to_be_bytes());
        Some(self.0)
    }
}

/// Whether every value fits a STUN attribute length (the codec refuses longer ones).
fn short(values: &[&[u8]]) -> bool {
    values.iter().all(|v| v.len() <= usize::from(u16::MAX))
}

/// The RegisterOk as the codec encodes it (`None`: a value too long for the fast path).
pub(crate) fn encode_register_ok(
    tid: &Tid,
    mapped: Option<SocketAddr>,
    cookie: Option<&[u8]>,
    pool: Option<&str>,
) -> Option<Vec<u8>> {
    let (c, p) = (cookie.unwrap_or_default(), pool.unwrap_or_default());
    if !short(&[c, p.as_bytes()]) {
        return None;
    }
    let mut w = Writer::new(REGISTER_OK, tid, 20 + 24 + 8 + c.len() + 8 + p.len());
    if let Some(a) = mapped {
        w.xor_addr(XOR_MAPPED_ADDRESS, a, tid);
    }
    if let Some(c) = cookie {
        w.attr(Cookie::CODEPOINT, c);
    }
    if let Some(p) = pool {
        w.attr(Pool::CODEPOINT, p.as_bytes());
    }
    w.finish()
}

/// The PeerInfo request as the codec encodes it (`None`: a value too long for the fast path).
pub(super) fn encode_peer_info(p: &PeerInfo) -> Option<Vec<u8>> {
    encode_peer_info_ref(&PeerInfoRef {
        tid: &p.tid,
        pair_id: &p.pair_id,
        public: p.public,
        locals: p.locals.iter().copied(),
        nat: p.nat.encode(),
        name: &p.name,
        mapped: p.mapped,
        hold: p.hold,
        pake: p.pake.as_deref(),
    })
}

/// A [`PeerInfo`]'s fields, borrowed (the server writes one from a member's packed fields without building
/// the owned message); `nat` is [`NatBehaviour::encode`]'s form.
pub(crate) struct PeerInfoRef<'a, L> {
    pub tid: &'a Tid,
    pub pair_id: &'a [u8; 8],
    pub public: SocketAddr,
    pub locals: L,
    pub nat: [u8; 6],
    pub name: &'a str,
    pub mapped: Option<SocketAddr>,
    pub hold: bool,
    pub pake: Option<&'a [u8]>,
}

/// [`encode_peer_info`] from borrowed fields.
pub(crate) fn encode_peer_info_ref<L>(p: &PeerInfoRef<'_, L>) -> Option<Vec<u8>>
where
    L: Iterator<Item = SocketAddr> + Clone,
{
    let pake = p.pake.unwrap_or_default();
    if !short(&[pake, p.name.as_bytes()]) {
        return None;
    }
    let n_locals = p.locals.clone().count();
    let capacity = 20 + 12 + 24 * (2 + n_locals) + 12 + 4 + 8 + p.name.len() + 8 + pake.len();
    let mut w = Writer::new(PEER_INFO_REQUEST, p.tid, capacity);
    w.attr(PairId::CODEPOINT, p.pair_id);
    w.addr(PeerPublic::CODEPOINT, p.public);
    for l in p.locals.clone() {
        w.addr(PeerLocal::CODEPOINT, l);
    }
    w.attr(PeerNat::CODEPOINT, &p.nat);
    w.attr(PeerName::CODEPOINT, p.name.as_bytes());
    if let Some(a) = p.mapped {
        w.xor_addr(XOR_MAPPED_ADDRESS, a, p.tid);
    }
    if p.hold {
        w.attr(HOLD, &[]);
    }
    if let Some(k) = p.pake {
        w.attr(PeerPake::CODEPOINT, k);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Msg;
    use proptest::prelude::*;

    /// What the codec path gives for these bytes, as a Register.
    fn codec_register(b: &[u8]) -> Option<Register> {
        match Msg::from_stun(&crate::wire::decode(b)?) {
            Some(Msg::Register(r)) => Some(r),
            _ => None,
        }
    }

    fn any_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(o, p)| SocketAddr::from((o, p))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(o, p)| SocketAddr::from((o, p))),
        ]
    }

    fn any_nat() -> impl Strategy<Value = NatBehaviour> {
        any::<[u8; 6]>().prop_map(|b| NatBehaviour::decode(&b).unwrap_or_default())
    }

    fn any_bytes(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max))
    }

    prop_compose! {
        fn any_register()(
            tid in any::<[u8; 12]>(),
            pool in "[0-9a-z-]{0,70}",
            name in "\\PC{0,20}",
            nat in any_nat(),
            client_id in proptest::option::of(any::<[u8; 8]>()),
            locals in proptest::collection::vec(any_addr(), 0..11),
            rtt in proptest::option::of(0u64..5_000_000_000),
            retry in any::<bool>(),
            pake in any_bytes(40),
            cookie in any_bytes(20),
            link_key in proptest::option::of(any::<[u8; 16]>()),
            allocate in any::<bool>(),
        ) -> Register {
            Register {
                tid, pool, name, nat, client_id, locals,
                rtt: rtt.map(Duration::from_micros),
                retry, pake, cookie, link_key, allocate,
            }
        }
    }

    prop_compose! {
        fn any_peer_info()(
            tid in any::<[u8; 12]>(),
            pair_id in any::<[u8; 8]>(),
            public in any_addr(),
            locals in proptest::collection::vec(any_addr(), 0..9),
            nat in any_nat(),
            name in "\\PC{0,20}",
            mapped in proptest::option::of(any_addr()),
            hold in any::<bool>(),
            pake in any_bytes(40),
        ) -> PeerInfo {
            PeerInfo { tid, pair_id, public, locals, nat, name, mapped, hold, pake }
        }
    }

    #[test]
    fn the_load_register_takes_the_fast_path() {
        let b = crate::load::register(7, "17", vec![3; 16]);
        let fast = decode_register(&b).expect("the plain form");
        assert_eq!(Some(fast), codec_register(&b));
    }

    #[test]
    fn anything_unusual_is_declined() {
        let r = Register::new([1; 12], "lobby");
        let b = Msg::Register(r.clone()).encode();
        assert!(decode_register(&b).is_some());
        // Another method or class, a bad length, an unknown attribute, MESSAGE-INTEGRITY not last or of
        // another length, non-zero padding.
        let mut other = b.clone();
        other[1] = 0x0E;
        let mut long = b.clone();
        long[3] += 4;
        let mut unknown = b.clone();
        unknown[20..22].copy_from_slice(&0xC0FFu16.to_be_bytes());
        let mut padding = b.clone();
        padding[20 + 4 + 5] = 1;
        let signed = Msg::Register(r).encode_with_integrity(&[4; 16]);
        assert!(decode_register(&signed).is_some());
        let mut not_last = signed.clone();
        not_last.extend_from_slice(&[0xC0, 0x0D, 0, 0]);
        let n = not_last.len() - 20;
        not_last[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        for bad in [other, long, unknown, padding, not_last, b[..19].to_vec()] {
            assert_eq!(decode_register(&bad), None, "{bad:?}");
        }
    }

    proptest! {
        /// Every Register the encoder writes (with and without MESSAGE-INTEGRITY) decodes as the codec reads it.
        #[test]
        fn fast_register_decode_is_the_codecs(r in any_register(), key in proptest::option::of(any::<[u8; 16]>())) {
            let m = Msg::Register(r);
            let b = match key {
                Some(k) => m.encode_with_integrity(&k),
                None => m.encode(),
            };
            let fast = decode_register(&b);
            prop_assert!(fast.is_some());
            prop_assert_eq!(fast, codec_register(&b));
        }

        /// Whatever the bytes, the fast decoder either declines or agrees with the codec (never panics).
        #[test]
        fn fast_register_decode_never_disagrees(
            r in any_register(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            shorten in any::<bool>(),
        ) {
            let mut b = Msg::Register(r).encode_with_integrity(&[9; 16]);
            for (at, v) in flips {
                let i = at.index(b.len());
                b[i] = v;
            }
            if shorten {
                b.truncate(cut.index(b.len() + 1));
            }
            if let Some(fast) = decode_register(&b) {
                prop_assert_eq!(Some(fast), codec_register(&b));
            }
        }

        /// Random bytes behind a Register header: declined or agreed.
        #[test]
        fn random_attributes_never_disagree(tid in any::<[u8; 12]>(), body in proptest::collection::vec(any::<u8>(), 0..120)) {
            let mut b = vec![0x00, 0x0D, 0, 0];
            b.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
            b.extend_from_slice(&tid);
            b.extend_from_slice(&body[..body.len() / 4 * 4]);
            let n = b.len() - 20;
            b[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            if let Some(fast) = decode_register(&b) {
                prop_assert_eq!(Some(fast), codec_register(&b));
            }
        }

        #[test]
        fn fast_register_ok_is_the_codecs(
            tid in any::<[u8; 12]>(),
            mapped in proptest::option::of(any_addr()),
            cookie in any_bytes(40),
            pool in proptest::option::of("[0-9a-z]{0,70}"),
        ) {
            let m = Msg::RegisterOk { tid, mapped, cookie: cookie.clone(), pool: pool.clone() };
            let fast = encode_register_ok(&tid, mapped, cookie.as_deref(), pool.as_deref());
            prop_assert_eq!(fast, Some(super::super::encode(m.to_stun())));
        }

        #[test]
        fn fast_peer_info_is_the_codecs(p in any_peer_info(), key in any::<[u8; 16]>()) {
            let m = Msg::PeerInfo(p.clone());
            prop_assert_eq!(encode_peer_info(&p), Some(super::super::encode(m.to_stun())));
            let mut reference = m.to_stun();
            super::super::add_integrity(&mut reference, &key);
            prop_assert_eq!(m.encode_with_integrity(&key), super::super::encode(reference));
        }
    }
}
