//! The STUN pieces NAT behaviour discovery needs (RFC 5780, and the RFC 3489 "classic" framing), where
//! stun_codec 0.4.0 is wrong or silent:
//!
//! * **CHANGE-REQUEST** (0x0003): stun_codec *decodes* the flags swapped (it reads "change IP" from bit 0x2 and
//!   "change port" from bit 0x1; RFC 5780 s7.2 puts them at 0x4 and 0x2). [`ChangeRequest`] here is right.
//! * **RESPONSE-PORT** (0x0027): stun_codec always encodes port 0. [`ResponsePort`] here is right.
//! * **SOURCE-ADDRESS** (0x0004), **CHANGED-ADDRESS** (0x0005), **RESPONSE-ADDRESS** (0x0002): RFC 3489
//!   attributes that stun_codec does not define (old servers still send CHANGED-ADDRESS in place of
//!   OTHER-ADDRESS).
//! * **RFC 3489 messages** (16-byte transaction id, no magic cookie), which stun_codec's decoder rejects but
//!   Debian's `stun` client and pystun3 send: [`classic`] parses and encodes them by hand.
//!
//! [`BindingAttribute`] is the attribute set of Binding requests and responses in behaviour discovery;
//! [`decode`] and [`encode`] work on RFC 5389 messages with it. Nothing here panics on any input.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use stun_codec::rfc5389::attributes::{
    ErrorCode, MappedAddress, Software, UnknownAttributes, XorMappedAddress,
};
use stun_codec::rfc5780::attributes::{OtherAddress, ResponseOrigin};
use stun_codec::{define_attribute_enums, Attribute, Message};
#[cfg(test)]
use stun_codec::{MessageClass, TransactionId};

#[cfg(test)]
use crate::wire::methods;
use crate::wire::{self, value_attribute, Cookie, Padding};

/// CHANGE-REQUEST flag: answer from the other IP (RFC 5780 s7.2, RFC 3489 s11.2.4).
pub const CHANGE_IP: u32 = 0x4;
/// CHANGE-REQUEST flag: answer from the other port.
pub const CHANGE_PORT: u32 = 0x2;

/// CHANGE-REQUEST (0x0003): ask the server to answer from its other IP and/or port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChangeRequest {
    /// Answer from the server's other IP (flag [`CHANGE_IP`], 0x4).
    pub ip: bool,
    /// Answer from the server's other port (flag [`CHANGE_PORT`], 0x2).
    pub port: bool,
}

impl ChangeRequest {
    /// Attribute type 0x0003 (RFC 5780 s7.2, RFC 3489 s11.2.4).
    pub const CODEPOINT: u16 = 0x0003;

    /// A request to change the IP and/or the port.
    pub fn new(ip: bool, port: bool) -> Self {
        ChangeRequest { ip, port }
    }
    /// Whether a change is asked for at all (a CHANGE-REQUEST with no flag set asks for nothing).
    pub fn any(&self) -> bool {
        self.ip || self.port
    }
    /// From the 32-bit flags word; other bits are ignored.
    pub fn from_flags(flags: u32) -> Self {
        ChangeRequest {
            ip: flags & CHANGE_IP != 0,
            port: flags & CHANGE_PORT != 0,
        }
    }
    /// The 32-bit flags word: [`CHANGE_IP`] and/or [`CHANGE_PORT`].
    pub fn flags(&self) -> u32 {
        (if self.ip { CHANGE_IP } else { 0 }) | (if self.port { CHANGE_PORT } else { 0 })
    }
    /// From an attribute value (exactly 4 bytes).
    pub fn from_value(v: &[u8]) -> Option<Self> {
        let b: [u8; 4] = v.try_into().ok()?;
        Some(Self::from_flags(u32::from_be_bytes(b)))
    }
    /// The 4-byte attribute value (the flags word, big-endian).
    pub fn to_value(&self) -> Vec<u8> {
        self.flags().to_be_bytes().to_vec()
    }
}
value_attribute!(ChangeRequest, ChangeRequestDecoder, ChangeRequestEncoder);

/// RESPONSE-PORT (0x0027, RFC 5780 s7.5): send the response to this port (same IP as the request's source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponsePort(pub u16);

impl ResponsePort {
    /// Attribute type 0x0027 (RFC 5780 s7.5).
    pub const CODEPOINT: u16 = 0x0027;
    /// From an attribute value: the port, then two bytes of padding (a 2-byte value is accepted too).
    pub fn from_value(v: &[u8]) -> Option<Self> {
        match v.len() {
            2 | 4 => Some(ResponsePort(u16::from_be_bytes([v[0], v[1]]))),
            _ => None,
        }
    }
    /// The 4-byte attribute value: the port, big-endian, then two zero bytes of padding.
    pub fn to_value(&self) -> Vec<u8> {
        let p = self.0.to_be_bytes();
        vec![p[0], p[1], 0, 0]
    }
}
value_attribute!(ResponsePort, ResponsePortDecoder, ResponsePortEncoder);

macro_rules! address_attribute {
    ($name:ident, $decoder:ident, $encoder:ident, $codepoint:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub SocketAddr);
        impl $name {
            /// The RFC 3489 attribute type.
            pub const CODEPOINT: u16 = $codepoint;
            /// From an attribute value in the plain (not XORed) address format ([`decode_plain_addr`]).
            pub fn from_value(v: &[u8]) -> Option<Self> {
                decode_plain_addr(v).map($name)
            }
            /// The attribute value in the plain (not XORed) address format ([`encode_plain_addr`]).
            pub fn to_value(&self) -> Vec<u8> {
                encode_plain_addr(self.0)
            }
        }
        value_attribute!($name, $decoder, $encoder);
    };
}

address_attribute!(
    ResponseAddress,
    ResponseAddressDecoder,
    ResponseAddressEncoder,
    0x0002,
    "RESPONSE-ADDRESS (RFC 3489): where to send the response. punch's server ignores it (a reflection vector)."
);
address_attribute!(
    SourceAddress,
    SourceAddressDecoder,
    SourceAddressEncoder,
    0x0004,
    "SOURCE-ADDRESS (RFC 3489): the address the response was sent from (RFC 5780's RESPONSE-ORIGIN)."
);
address_attribute!(
    ChangedAddress,
    ChangedAddressDecoder,
    ChangedAddressEncoder,
    0x0005,
    "CHANGED-ADDRESS (RFC 3489): the server's alternate IP and port (RFC 5780's OTHER-ADDRESS)."
);

/// Encodes an address the RFC 3489 / MAPPED-ADDRESS way: `[0, family, port, ip]`, not XORed.
pub fn encode_plain_addr(addr: SocketAddr) -> Vec<u8> {
    let p = addr.port().to_be_bytes();
    let mut out = vec![0, 0, p[0], p[1]];
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = 1;
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out[1] = 2;
            out.extend_from_slice(&ip.octets());
        }
    }
    out
}

/// Inverse of [`encode_plain_addr`]; `None` if malformed.
pub fn decode_plain_addr(v: &[u8]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([v[2], v[3]]);
    let ip = match (v[1], &v[4..]) {
        (1, &[a, b, c, d]) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        (2, rest) if rest.len() == 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(rest);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

define_attribute_enums!(
    BindingAttribute,
    BindingAttributeDecoder,
    BindingAttributeEncoder,
    [
        XorMappedAddress,
        MappedAddress,
        OtherAddress,
        ResponseOrigin,
        ChangeRequest,
        ResponsePort,
        ResponseAddress,
        SourceAddress,
        ChangedAddress,
        Software,
        ErrorCode,
        UnknownAttributes,
        Cookie,
        Padding
    ]
);

/// An RFC 5389 Binding message with the behaviour-discovery attribute set.
pub type BindingMessage = Message<BindingAttribute>;

/// Whether `data` is an RFC 5389 Binding request, from its header alone (cheap; does not validate the rest).
pub fn is_binding_request(data: &[u8]) -> bool {
    wire::kind(data) == wire::Kind::Stun && data[0..2] == [0x00, 0x01]
}

/// The 96-bit transaction id of an RFC 5389 message, from its header alone.
pub fn transaction_id(data: &[u8]) -> Option<[u8; 12]> {
    if wire::kind(data) != wire::Kind::Stun {
        return None;
    }
    data.get(8..20)?.try_into().ok()
}

/// Decodes an RFC 5389 message with [`BindingAttribute`]s; `None` for anything malformed (never panics).
/// Attributes outside the set are kept as unknown attributes (see `Message::unknown_attributes`).
pub fn decode(data: &[u8]) -> Option<BindingMessage> {
    wire::decode_as(data)
}

/// Encodes a Binding message (empty on the impossible encoding failure).
pub fn encode(message: BindingMessage) -> Vec<u8> {
    wire::encode_as(message)
}

/// A Binding request, with a CHANGE-REQUEST if `change` asks for a change.
///
/// Written directly (the header and at most one 8-byte attribute), byte for byte what the STUN codec writes
/// for the same message (`codec_binding_request`; a test compares the two for every flag combination).
pub fn binding_request(tid: [u8; 12], change: ChangeRequest) -> Vec<u8> {
    let len: u16 = if change.any() { 8 } else { 0 };
    let mut b = Vec::with_capacity(20 + usize::from(len));
    b.extend_from_slice(&0x0001u16.to_be_bytes());
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&wire::MAGIC_COOKIE.to_be_bytes());
    b.extend_from_slice(&tid);
    if change.any() {
        b.extend_from_slice(&ChangeRequest::CODEPOINT.to_be_bytes());
        b.extend_from_slice(&4u16.to_be_bytes());
        b.extend_from_slice(&change.flags().to_be_bytes());
    }
    b
}

/// [`binding_request`] through the STUN codec (the reference the direct encoding is tested against).
#[cfg(test)]
fn codec_binding_request(tid: [u8; 12], change: ChangeRequest) -> Vec<u8> {
    let mut m = Message::new(
        MessageClass::Request,
        methods::binding(),
        TransactionId::new(tid),
    );
    if change.any() {
        m.add_attribute(change);
    }
    encode(m)
}

/// A Binding success response to `tid`: XOR-MAPPED-ADDRESS and MAPPED-ADDRESS (`remote`), then, with
/// `sockets = Some((source, other))`, OTHER-ADDRESS (`other`) and RESPONSE-ORIGIN (`source`), then COOKIE if
/// given. Written directly, byte for byte what the STUN codec writes for the same message
/// (`codec_binding_success`; a property test compares the two).
pub fn binding_success(
    tid: [u8; 12],
    remote: SocketAddr,
    sockets: Option<(SocketAddr, SocketAddr)>,
    cookie: Option<&[u8]>,
) -> Vec<u8> {
    fn addr_attr(b: &mut Vec<u8>, t: u16, addr: SocketAddr, xor: Option<&[u8; 12]>) {
        let cookie = wire::MAGIC_COOKIE.to_be_bytes();
        let (family, len): (u8, u16) = if addr.is_ipv4() { (1, 8) } else { (2, 20) };
        b.extend_from_slice(&t.to_be_bytes());
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&[0, family]);
        let port = match xor {
            Some(_) => addr.port() ^ (wire::MAGIC_COOKIE >> 16) as u16,
            None => addr.port(),
        };
        b.extend_from_slice(&port.to_be_bytes());
        let mask = |i: usize| match xor {
            None => 0,
            Some(_) if i < 4 => cookie[i],
            Some(tid) => tid[i - 4],
        };
        match addr.ip() {
            IpAddr::V4(ip) => {
                b.extend(ip.octets().iter().enumerate().map(|(i, o)| o ^ mask(i)));
            }
            IpAddr::V6(ip) => {
                b.extend(ip.octets().iter().enumerate().map(|(i, o)| o ^ mask(i)));
            }
        }
    }
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(&0x0101u16.to_be_bytes());
    b.extend_from_slice(&[0, 0]); // length, set below
    b.extend_from_slice(&wire::MAGIC_COOKIE.to_be_bytes());
    b.extend_from_slice(&tid);
    addr_attr(&mut b, 0x0020, remote, Some(&tid));
    addr_attr(&mut b, 0x0001, remote, None);
    if let Some((source, other)) = sockets {
        addr_attr(&mut b, 0x802C, other, None);
        addr_attr(&mut b, 0x802B, source, None);
    }
    if let Some(c) = cookie {
        b.extend_from_slice(&Cookie::CODEPOINT.to_be_bytes());
        b.extend_from_slice(&(c.len() as u16).to_be_bytes());
        b.extend_from_slice(c);
        b.resize(b.len().div_ceil(4) * 4, 0);
    }
    let len = (b.len() - 20) as u16;
    b[2..4].copy_from_slice(&len.to_be_bytes());
    b
}

/// [`binding_success`] through the STUN codec (the reference the direct encoding is tested against).
#[cfg(test)]
pub(crate) fn codec_binding_success(
    tid: [u8; 12],
    remote: SocketAddr,
    sockets: Option<(SocketAddr, SocketAddr)>,
    cookie: Option<&[u8]>,
) -> Vec<u8> {
    let mut res: BindingMessage = Message::new(
        MessageClass::SuccessResponse,
        methods::binding(),
        TransactionId::new(tid),
    );
    res.add_attribute(XorMappedAddress::new(remote));
    res.add_attribute(MappedAddress::new(remote));
    if let Some((source, other)) = sockets {
        res.add_attribute(OtherAddress::new(other));
        res.add_attribute(ResponseOrigin::new(source));
    }
    if let Some(c) = cookie {
        res.add_attribute(Cookie(c.to_vec()));
    }
    encode(res)
}

/// The first attribute of type `T`.
pub fn get<T>(m: &BindingMessage) -> Option<&T>
where
    T: Attribute,
    BindingAttribute: stun_codec::convert::TryAsRef<T>,
{
    m.get_attribute::<T>()
}

/// RFC 3489 ("classic") STUN: 20-byte header (type, length, 16-byte transaction id), attribute TLVs padded to
/// 4 bytes. Parsed and encoded by hand because stun_codec insists on the RFC 5389 magic cookie.
pub mod classic {
    use super::{decode_plain_addr, encode_plain_addr, ChangeRequest};
    use std::net::SocketAddr;

    /// Message type of a Binding Request (RFC 3489 s11.1).
    pub const BINDING_REQUEST: u16 = 0x0001;
    /// Message type of a Binding Response.
    pub const BINDING_RESPONSE: u16 = 0x0101;
    /// Message type of a Binding Error Response.
    pub const BINDING_ERROR: u16 = 0x0111;

    /// MAPPED-ADDRESS attribute (RFC 3489 s11.2.1): the request's source address as the server saw it.
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// RESPONSE-ADDRESS attribute (RFC 3489 s11.2.2): where the client asks the response to be sent.
    pub const RESPONSE_ADDRESS: u16 = 0x0002;
    /// CHANGE-REQUEST attribute (RFC 3489 s11.2.4): flags asking for an answer from the other IP and/or port.
    pub const CHANGE_REQUEST: u16 = 0x0003;
    /// SOURCE-ADDRESS attribute (RFC 3489 s11.2.5): the address the response was sent from.
    pub const SOURCE_ADDRESS: u16 = 0x0004;
    /// CHANGED-ADDRESS attribute (RFC 3489 s11.2.3): the server's alternate IP and port.
    pub const CHANGED_ADDRESS: u16 = 0x0005;
    /// ERROR-CODE attribute (RFC 3489 s11.2.9).
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES attribute (RFC 3489 s11.2.10): the comprehension-required types not understood.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;

    /// One RFC 3489 message.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ClassicMessage {
        /// Message type, e.g. [`BINDING_REQUEST`].
        pub msg_type: u16,
        /// The 128-bit transaction id (RFC 3489 has no magic cookie).
        pub tid: [u8; 16],
        /// (type, value) in order; values unpadded.
        pub attributes: Vec<(u16, Vec<u8>)>,
    }

    impl ClassicMessage {
        /// A message of type `msg_type` with no attributes.
        pub fn new(msg_type: u16, tid: [u8; 16]) -> Self {
            ClassicMessage {
                msg_type,
                tid,
                attributes: Vec::new(),
            }
        }
        /// The first attribute of type `t`.
        pub fn get(&self, t: u16) -> Option<&[u8]> {
            self.attributes
                .iter()
                .find(|(k, _)| *k == t)
                .map(|(_, v)| v.as_slice())
        }
        /// Appends an attribute of type `t` with an unpadded `value`.
        pub fn add(&mut self, t: u16, value: Vec<u8>) {
            self.attributes.push((t, value));
        }
        /// Appends an address attribute of type `t` in the plain (not XORed) format.
        pub fn add_addr(&mut self, t: u16, addr: SocketAddr) {
            self.add(t, encode_plain_addr(addr));
        }
        /// The first attribute of type `t` decoded as a plain address; `None` if absent or malformed.
        pub fn addr(&self, t: u16) -> Option<SocketAddr> {
            self.get(t).and_then(decode_plain_addr)
        }
        /// The CHANGE-REQUEST flags: `Some(default)` if absent, `None` if present but malformed.
        pub fn change_request(&self) -> Option<ChangeRequest> {
            match self.get(CHANGE_REQUEST) {
                None => Some(ChangeRequest::default()),
                Some(v) => ChangeRequest::from_value(v),
            }
        }
    }

    /// Parses an RFC 3489 message. The length field must match the datagram; every attribute must fit. `None`
    /// for anything else (never panics).
    pub fn parse(data: &[u8]) -> Option<ClassicMessage> {
        if data.len() < 20 || data.len() > crate::wire::MAX_DATAGRAM || data[0] & 0xC0 != 0 {
            return None;
        }
        let msg_type = u16::from_be_bytes([data[0], data[1]]);
        let len = u16::from_be_bytes([data[2], data[3]]) as usize;
        if len + 20 != data.len() {
            return None;
        }
        let tid: [u8; 16] = data[4..20].try_into().ok()?;
        let mut attributes = Vec::new();
        let mut rest = &data[20..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return None;
            }
            let t = u16::from_be_bytes([rest[0], rest[1]]);
            let l = u16::from_be_bytes([rest[2], rest[3]]) as usize;
            let value = rest.get(4..4 + l)?;
            attributes.push((t, value.to_vec()));
            // Values are padded to 4 bytes; a last attribute may omit its padding.
            let padded = 4 + l.div_ceil(4) * 4;
            rest = rest.get(padded..).unwrap_or(&[]);
        }
        Some(ClassicMessage {
            msg_type,
            tid,
            attributes,
        })
    }

    /// Encodes an RFC 3489 message. RFC 3489 has no padding outside attribute values: every value length is
    /// a multiple of 4 (stund-style parsers step by the declared length, and drop anything else), so a value
    /// of another length is zero-filled and its declared length rounded up.
    pub fn encode(m: &ClassicMessage) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in &m.attributes {
            let l = v.len().min(u16::MAX as usize - 3);
            let padded = l.div_ceil(4) * 4;
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(padded as u16).to_be_bytes());
            body.extend_from_slice(&v[..l]);
            body.resize(body.len() + padded - l, 0);
        }
        let mut out = Vec::with_capacity(20 + body.len());
        out.extend_from_slice(&m.msg_type.to_be_bytes());
        out.extend_from_slice(&(body.len().min(u16::MAX as usize) as u16).to_be_bytes());
        out.extend_from_slice(&m.tid);
        out.extend_from_slice(&body);
        out
    }

    /// An ERROR-CODE value: two zero bytes, class (hundreds), number, reason phrase padded with spaces to a
    /// multiple of 4 bytes (RFC 3489 s11.2.9).
    pub fn error_code_value(code: u16, reason: &str) -> Vec<u8> {
        let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
        v.extend_from_slice(reason.as_bytes());
        v.resize(v.len().div_ceil(4) * 4, b' ');
        v
    }

    /// An UNKNOWN-ATTRIBUTES value; an odd count repeats the last one, as RFC 3489 s11.2.10 asks.
    pub fn unknown_attributes_value(types: &[u16]) -> Vec<u8> {
        let mut v: Vec<u8> = types.iter().flat_map(|t| t.to_be_bytes()).collect();
        if types.len() % 2 == 1 {
            if let Some(last) = types.last() {
                v.extend_from_slice(&last.to_be_bytes());
            }
        }
        v
    }

    /// The error code of an ERROR-CODE value.
    pub fn error_code(v: &[u8]) -> Option<u16> {
        if v.len() < 4 {
            return None;
        }
        Some((v[2] & 0x07) as u16 * 100 + v[3] as u16)
    }
}

#[cfg(test)]
mod tests {
    fn any_addr() -> impl proptest::strategy::Strategy<Value = SocketAddr> {
        use proptest::prelude::*;
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        ]
    }

    proptest::proptest! {
        #[test]
        fn direct_binding_success_is_the_codecs(
            tid in proptest::prelude::any::<[u8; 12]>(),
            remote in any_addr(),
            sockets in proptest::option::of((any_addr(), any_addr())),
            cookie in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)),
        ) {
            let fast = binding_success(tid, remote, sockets, cookie.as_deref());
            proptest::prop_assert_eq!(&fast, &codec_binding_success(tid, remote, sockets, cookie.as_deref()));
            let m = decode(&fast).expect("decodes");
            proptest::prop_assert_eq!(get::<XorMappedAddress>(&m).map(|a| a.address()), Some(remote));
        }
    }

    #[test]
    fn direct_binding_request_is_the_codecs() {
        for flags in 0..8u32 {
            let change = ChangeRequest::from_flags(flags);
            for seed in 0..64u8 {
                let tid: [u8; 12] =
                    std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8));
                let fast = binding_request(tid, change);
                assert_eq!(fast, codec_binding_request(tid, change), "{flags} {seed}");
                let m = decode(&fast).expect("decodes");
                assert_eq!(
                    get::<ChangeRequest>(&m).copied().filter(|c| c.any()),
                    Some(change).filter(|c| c.any())
                );
            }
        }
    }

    use super::*;

    #[test]
    fn change_request_flags_are_rfc5780s_not_stun_codecs() {
        // RFC 5780 s7.2: change IP is 0x4, change port is 0x2.
        let req = binding_request([9; 12], ChangeRequest::new(true, false));
        assert_eq!(&req[20..28], &[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 4]);
        let m = decode(&req).unwrap();
        assert_eq!(
            get::<ChangeRequest>(&m),
            Some(&ChangeRequest::new(true, false))
        );
        let req = binding_request([9; 12], ChangeRequest::new(false, true));
        assert_eq!(&req[24..28], &[0, 0, 0, 2]);
        assert_eq!(
            get::<ChangeRequest>(&decode(&req).unwrap()),
            Some(&ChangeRequest::new(false, true))
        );
        // stun_codec's own decoder gets this wrong; ours does not.
        let both = binding_request([9; 12], ChangeRequest::new(true, true));
        assert_eq!(&both[24..28], &[0, 0, 0, 6]);
        assert_eq!(
            get::<ChangeRequest>(&decode(&both).unwrap()),
            Some(&ChangeRequest::new(true, true))
        );
        // No change asked for: no attribute.
        assert_eq!(binding_request([9; 12], ChangeRequest::default()).len(), 20);
    }

    fn message(class: MessageClass) -> BindingMessage {
        Message::new(class, methods::binding(), TransactionId::new([1; 12]))
    }

    #[test]
    fn response_port_encodes_the_port() {
        let mut m = message(MessageClass::Request);
        m.add_attribute(ResponsePort(40_001));
        let b = encode(m);
        assert_eq!(&b[20..28], &[0x00, 0x27, 0x00, 0x04, 0x9C, 0x41, 0, 0]);
        assert_eq!(
            get::<ResponsePort>(&decode(&b).unwrap()),
            Some(&ResponsePort(40_001))
        );
    }

    #[test]
    fn classic_addresses_round_trip() {
        let mut m = message(MessageClass::SuccessResponse);
        let a: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let b: SocketAddr = "[2001:db8::2]:3479".parse().unwrap();
        m.add_attribute(SourceAddress(a));
        m.add_attribute(ChangedAddress(b));
        m.add_attribute(UnknownAttributes::new(vec![
            stun_codec::AttributeType::new(3),
        ]));
        let d = decode(&encode(m)).unwrap();
        assert_eq!(get::<SourceAddress>(&d), Some(&SourceAddress(a)));
        assert_eq!(get::<ChangedAddress>(&d), Some(&ChangedAddress(b)));
        assert_eq!(decode_plain_addr(&[0, 1, 0, 1, 2, 3]), None);
        assert_eq!(decode_plain_addr(&[0, 3, 0, 1, 2, 3, 4, 5]), None);
    }

    #[test]
    fn classic_parse_and_encode() {
        // What Debian's `stun` client sends for its test I: Binding request, CHANGE-REQUEST with no flag.
        let mut req = vec![0x00, 0x01, 0x00, 0x08];
        req.extend_from_slice(&[
            1, 0, 0, 0, 0x5a, 0x17, 0x03, 0x99, 8, 9, 10, 11, 12, 13, 14, 15,
        ]);
        req.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0]);
        let m = classic::parse(&req).unwrap();
        assert_eq!(m.msg_type, classic::BINDING_REQUEST);
        assert_eq!(m.change_request(), Some(ChangeRequest::default()));
        assert_eq!(classic::encode(&m), req);
        // The reason phrase is padded with spaces; every declared length is a multiple of 4.
        let mut err = classic::ClassicMessage::new(classic::BINDING_ERROR, [3; 16]);
        err.add(classic::ERROR_CODE, classic::error_code_value(420, "x"));
        assert_eq!(
            err.get(classic::ERROR_CODE),
            Some(&[0, 0, 4, 20, b'x', b' ', b' ', b' '][..])
        );
        let b = classic::encode(&err);
        assert_eq!(&b[20..24], &[0, 9, 0, 8]);
        assert_eq!(classic::parse(&b).unwrap(), err);
        assert_eq!(
            classic::error_code(err.get(classic::ERROR_CODE).unwrap()),
            Some(420)
        );
        // Other odd values are zero-filled, with the declared length rounded up.
        let mut odd = classic::ClassicMessage::new(classic::BINDING_RESPONSE, [3; 16]);
        odd.add(0x8022, b"punch".to_vec());
        let b = classic::encode(&odd);
        assert_eq!(&b[20..24], &[0x80, 0x22, 0, 8]);
        assert_eq!(
            classic::parse(&b).unwrap().get(0x8022),
            Some(&b"punch\0\0\0"[..])
        );
        // A last attribute without its padding is tolerated on parse.
        let mut short = b.clone();
        short[23] = 5;
        short.truncate(29);
        short[3] = 9;
        assert_eq!(
            classic::parse(&short).unwrap().get(0x8022),
            Some(&b"punch"[..])
        );
        // Garbage.
        assert!(classic::parse(&req[..27]).is_none());
        let mut bad = req.clone();
        bad[23] = 9; // attribute longer than the message
        assert!(classic::parse(&bad).is_none());
        bad[3] = 0x0c;
        assert!(classic::parse(&bad).is_none());
        let mut malformed = req.clone();
        malformed[23] = 2; // CHANGE-REQUEST of two bytes
        malformed[26..28].copy_from_slice(&[0, 0]);
        assert_eq!(classic::parse(&malformed).unwrap().change_request(), None);
        assert_eq!(classic::unknown_attributes_value(&[3]), vec![0, 3, 0, 3]);
    }

    #[test]
    fn garbage_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5780);
        let seed = binding_request([7; 12], ChangeRequest::new(true, true));
        for i in 0..20_000 {
            let mut b = if i % 2 == 0 {
                seed.clone()
            } else {
                let n = rng.gen_range(0..80);
                (0..n).map(|_| rng.gen()).collect()
            };
            if !b.is_empty() {
                for _ in 0..rng.gen_range(0..4) {
                    let j = rng.gen_range(0..b.len());
                    b[j] = rng.gen();
                }
            }
            let _ = decode(&b);
            let _ = classic::parse(&b);
            let _ = transaction_id(&b);
        }
    }
}
