//! The wire format (see `docs/PROTOCOL.md`).
//!
//! Control traffic is STUN (RFC 5389 header, magic cookie, 96-bit transaction ids), encoded and decoded with
//! `stun_codec`: the standard Binding method plus punch's own methods and comprehension-optional attributes.
//! Peer-to-peer chat data uses punch's own framing, told apart from STUN by the first byte (STUN's first two
//! bits are always zero; punch data starts with [`DATA_TAG`]).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

mod fast;
mod inner;
mod label;
mod msg;
mod pairing;
pub use fast::{relay_view, RelayView, RELAY_TYPE};

/// A plain Register request decoded without the STUN codec (the same [`Register`] as [`Msg::decode`]);
/// `None` for anything else, which the codec path then reads.
pub fn fast_register(data: &[u8]) -> Option<Register> {
    pairing::decode_register(data)
}
pub use inner::*;
pub use label::{Label, LABEL_BYTES};
pub use msg::*;
pub(crate) use pairing::{
    decode_register_ref, encode_peer_info_ref, encode_register_ok, PeerInfoRef, RegisterRef,
    UNSPECIFIED,
};

use bytecodec::{DecodeExt, EncodeExt};
use stun_codec::rfc5389::attributes::{
    ErrorCode, MappedAddress, MessageIntegrity, Software, XorMappedAddress,
};
use stun_codec::rfc5780::attributes::{OtherAddress, ResponseOrigin};
use stun_codec::{
    define_attribute_enums, Attribute, Message, MessageClass, MessageDecoder, MessageEncoder,
    Method, TransactionId,
};

/// Largest datagram any punch machine looks at; longer input is dropped unparsed.
pub const MAX_DATAGRAM: usize = 2048;
/// First byte of a peer-to-peer data datagram: `[DATA_TAG][pair id: 8 bytes][chat frame]`.
pub const DATA_TAG: u8 = 0xD0;
/// The STUN magic cookie.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// punch's STUN methods.
///
/// stun_codec 0.4.0 encodes the message type wrongly for methods above 0x00F (bits 4..11 are shifted by 5 and
/// 9 instead of 1 and 2), so punch uses free codepoints below 0x010: 0x005 and 0x00D..0x00F are unassigned by
/// IANA (0x003..0x00C are TURN's). Leaving a pool is the Register method's indication class.
pub mod methods {
    use stun_codec::Method;
    fn m(code: u16) -> Method {
        Method::new(code).expect("below 0x1000")
    }
    /// RFC 5389 Binding.
    pub fn binding() -> Method {
        m(0x001)
    }
    /// Peer → server request: join a pool (success carries XOR-MAPPED-ADDRESS). As an indication: leave it.
    pub fn register() -> Method {
        m(0x00D)
    }
    /// Server → peer request: the other side of the pair. The peer answers with a success response.
    /// As an indication from the server: your peer left or expired.
    pub fn peer_info() -> Method {
        m(0x00E)
    }
    /// Peer ↔ peer connectivity check: request = ping, success response = pong.
    pub fn ping() -> Method {
        m(0x00F)
    }
    /// Peer → server indication carrying DATA for the paired peer; server → peer indication delivering it.
    pub fn relay() -> Method {
        m(0x005)
    }
}

/// Implements a stun_codec [`Attribute`] whose value is a byte string converted by `$from`
/// (`Vec<u8> -> Option<Self>`, `None` rejects the attribute) and `$into` (`Self -> Vec<u8>`). The type must have
/// a `CODEPOINT` constant. Shared by punch's attributes here and the RFC 3489/5780 ones in `rfc5780.rs`
/// (stun_codec 0.4.0 gets CHANGE-REQUEST and RESPONSE-PORT wrong).
macro_rules! value_attribute {
    // A type with `from_value(&[u8]) -> Option<Self>` and `to_value(&self) -> Vec<u8>`.
    ($name:ident, $decoder:ident, $encoder:ident) => {
        value_attribute!(
            $name,
            $decoder,
            $encoder,
            |b: Vec<u8>| $name::from_value(&b),
            |a: $name| a.to_value()
        );
    };
    ($name:ident, $decoder:ident, $encoder:ident, $from:expr, $into:expr) => {
        impl ::stun_codec::Attribute for $name {
            type Decoder = $decoder;
            type Encoder = $encoder;
            fn get_type(&self) -> ::stun_codec::AttributeType {
                ::stun_codec::AttributeType::new(Self::CODEPOINT)
            }
        }
        #[doc = concat!("[`", stringify!($name), "`] decoder.")]
        #[derive(Debug, Default)]
        pub struct $decoder(::bytecodec::bytes::RemainingBytesDecoder);
        impl ::bytecodec::Decode for $decoder {
            type Item = $name;
            fn decode(&mut self, buf: &[u8], eos: ::bytecodec::Eos) -> ::bytecodec::Result<usize> {
                ::bytecodec::Decode::decode(&mut self.0, buf, eos)
            }
            fn finish_decoding(&mut self) -> ::bytecodec::Result<$name> {
                let bytes = ::bytecodec::Decode::finish_decoding(&mut self.0)?;
                ($from)(bytes).ok_or_else(|| ::bytecodec::ErrorKind::InvalidInput.into())
            }
            fn requiring_bytes(&self) -> ::bytecodec::ByteCount {
                ::bytecodec::Decode::requiring_bytes(&self.0)
            }
            fn is_idle(&self) -> bool {
                ::bytecodec::Decode::is_idle(&self.0)
            }
        }
        impl ::bytecodec::TryTaggedDecode for $decoder {
            type Tag = ::stun_codec::AttributeType;
            fn try_start_decoding(
                &mut self,
                tag: ::stun_codec::AttributeType,
            ) -> ::bytecodec::Result<bool> {
                Ok(tag.as_u16() == $name::CODEPOINT)
            }
        }
        #[doc = concat!("[`", stringify!($name), "`] encoder.")]
        #[derive(Debug, Default)]
        pub struct $encoder(::bytecodec::bytes::BytesEncoder<Vec<u8>>);
        impl ::bytecodec::Encode for $encoder {
            type Item = $name;
            fn encode(
                &mut self,
                buf: &mut [u8],
                eos: ::bytecodec::Eos,
            ) -> ::bytecodec::Result<usize> {
                ::bytecodec::Encode::encode(&mut self.0, buf, eos)
            }
            fn start_encoding(&mut self, item: $name) -> ::bytecodec::Result<()> {
                ::bytecodec::Encode::start_encoding(&mut self.0, ($into)(item))
            }
            fn requiring_bytes(&self) -> ::bytecodec::ByteCount {
                ::bytecodec::Encode::requiring_bytes(&self.0)
            }
            fn is_idle(&self) -> bool {
                ::bytecodec::Encode::is_idle(&self.0)
            }
        }
        impl ::bytecodec::SizedEncode for $encoder {
            fn exact_requiring_bytes(&self) -> u64 {
                ::bytecodec::SizedEncode::exact_requiring_bytes(&self.0)
            }
        }
    };
}
pub(crate) use value_attribute;

/// Defines an attribute whose value is opaque bytes, interpreted by punch (not by the codec).
macro_rules! opaque_attribute {
    ($name:ident, $decoder:ident, $encoder:ident, $codepoint:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(pub Vec<u8>);
        impl $name {
            /// The attribute type, in the comprehension-optional range 0x8000..=0xFFFF (punch's own codepoints).
            pub const CODEPOINT: u16 = $codepoint;
        }
        value_attribute!(
            $name,
            $decoder,
            $encoder,
            |b: Vec<u8>| Some($name(b)),
            |a: $name| a.0
        );
    };
}

opaque_attribute!(
    Pool,
    PoolDecoder,
    PoolEncoder,
    0xC001,
    "POOL: UTF-8 pool name (1..=64 bytes)."
);
opaque_attribute!(
    Name,
    NameDecoder,
    NameEncoder,
    0xC002,
    "NAME: UTF-8 display name (0..=64 bytes)."
);
opaque_attribute!(
    Nat,
    NatDecoder,
    NatEncoder,
    0xC003,
    "NAT: 6-byte NAT behaviour ([`crate::nat::NatBehaviour::encode`])."
);
opaque_attribute!(
    LocalAddr,
    LocalAddrDecoder,
    LocalAddrEncoder,
    0xC004,
    "LOCAL-ADDRESS: one local address of the sender (may repeat)."
);
opaque_attribute!(
    PeerPublic,
    PeerPublicDecoder,
    PeerPublicEncoder,
    0xC005,
    "PEER-PUBLIC: the peer's public address as the server saw it."
);
opaque_attribute!(
    PeerLocal,
    PeerLocalDecoder,
    PeerLocalEncoder,
    0xC006,
    "PEER-LOCAL: one of the peer's local addresses (may repeat)."
);
opaque_attribute!(
    PeerNat,
    PeerNatDecoder,
    PeerNatEncoder,
    0xC007,
    "PEER-NAT: the peer's NAT behaviour (6 bytes)."
);
opaque_attribute!(
    PeerName,
    PeerNameDecoder,
    PeerNameEncoder,
    0xC008,
    "PEER-NAME: the peer's display name."
);
opaque_attribute!(
    PairId,
    PairIdDecoder,
    PairIdEncoder,
    0xC009,
    "PAIR-ID: 8 random bytes naming one pairing."
);
opaque_attribute!(
    Data,
    DataDecoder,
    DataEncoder,
    0xC00A,
    "DATA: a relayed chat frame."
);
opaque_attribute!(
    Rtt,
    RttDecoder,
    RttEncoder,
    0xC00B,
    "RTT: the sender's measured round trip to the server, u32 microseconds."
);
opaque_attribute!(
    ClientId,
    ClientIdDecoder,
    ClientIdEncoder,
    0xC00C,
    "CLIENT-ID: 8 random bytes naming one peer instance, so the server can follow it to a new address."
);
opaque_attribute!(
    Retry,
    RetryDecoder,
    RetryEncoder,
    0xC00D,
    "RETRY: (empty) in a Register from a paired peer: start a new punch round for both peers now."
);
opaque_attribute!(
    Hold,
    HoldDecoder,
    HoldEncoder,
    0xC00E,
    "HOLD: (empty) in a PeerInfo: this round the partner pings first; hold the first ping back a little."
);
opaque_attribute!(
    Cookie,
    CookieDecoder,
    CookieEncoder,
    0xC00F,
    "COOKIE: the server's stateless return-routability proof for the sender's address, echoed in Register."
);
opaque_attribute!(
    Pake,
    PakeDecoder,
    PakeEncoder,
    0xC010,
    "PAKE: the sender's SPAKE2 message (in Register), passed on to the partner unread."
);
opaque_attribute!(
    PeerPake,
    PeerPakeDecoder,
    PeerPakeEncoder,
    0xC011,
    "PEER-PAKE: the partner's SPAKE2 message (in PeerInfo)."
);
opaque_attribute!(
    Burn,
    BurnDecoder,
    BurnEncoder,
    0xC012,
    "BURN: (empty) in a Leave: the code was wrong (or guessed); the nameplate must not be reused for a while."
);
opaque_attribute!(
    Allocate,
    AllocateDecoder,
    AllocateEncoder,
    0xC014,
    "ALLOCATE: (empty) in a Register without a POOL: pick a free nameplate for me (the success names it in POOL)."
);
opaque_attribute!(
    LinkKey,
    LinkKeyDecoder,
    LinkKeyEncoder,
    0xC013,
    "LINK-KEY: 16 random bytes in Register: the key of the MESSAGE-INTEGRITY on what the server says to this peer."
);

opaque_attribute!(
    Padding,
    PaddingDecoder,
    PaddingEncoder,
    0xC020,
    "PADDING: ignored bytes that make a peer's Binding request at least as large as the server's answer \
     ([`BINDING_REQUEST_LEN`]), so that the server never answers punch with more bytes than it received."
);

/// Size of a peer's Binding request (header + [`Padding`]): the largest Binding success the server sends
/// (IPv6: XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, OTHER-ADDRESS, RESPONSE-ORIGIN of 24 bytes each, plus a
/// 16-byte COOKIE) is 20 + 4 x 24 + 16 = 132 bytes.
pub const BINDING_REQUEST_LEN: usize = 132;

define_attribute_enums!(
    PunchAttribute,
    PunchAttributeDecoder,
    PunchAttributeEncoder,
    [
        XorMappedAddress,
        MappedAddress,
        OtherAddress,
        ResponseOrigin,
        ErrorCode,
        Software,
        Pool,
        Name,
        Nat,
        LocalAddr,
        PeerPublic,
        PeerLocal,
        PeerNat,
        PeerName,
        PairId,
        Data,
        Rtt,
        ClientId,
        Retry,
        Hold,
        Cookie,
        Padding,
        Pake,
        PeerPake,
        Burn,
        LinkKey,
        Allocate,
        MessageIntegrity
    ]
);

/// A STUN message carrying punch's attribute set.
pub type StunMessage = Message<PunchAttribute>;

/// What a datagram looks like, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// RFC 5389 STUN (magic cookie present).
    Stun,
    /// RFC 3489 STUN: STUN header without the magic cookie.
    ClassicStun,
    /// Peer-to-peer data.
    Data,
    /// Anything else.
    Unknown,
}

/// The key of a peer's server link (LINK-KEY): what the server says to that peer, and what the peer says to
/// move or leave, carries a MESSAGE-INTEGRITY (RFC 5389 HMAC-SHA1, short-term credential) under it.
pub type LinkKeyBytes = [u8; 16];

/// The key in lower-case hex (the short-term credential password), without a `format!` per byte.
fn integrity_password(key: &LinkKeyBytes) -> String {
    String::from_utf8(integrity_password_bytes(key).to_vec()).expect("hex is ASCII")
}

/// [`integrity_password`] on the stack (no allocation per MESSAGE-INTEGRITY).
fn integrity_password_bytes(key: &LinkKeyBytes) -> [u8; 32] {
    // Lower-case hex, without `format!` per byte (it was a tenth of a pairing's cost).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = [0; 32];
    for (i, b) in key.iter().enumerate() {
        s[2 * i] = HEX[usize::from(b >> 4)];
        s[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    s
}

/// Adds a MESSAGE-INTEGRITY under `key` as the message's last attribute.
pub fn add_integrity(m: &mut StunMessage, key: &LinkKeyBytes) {
    if let Ok(mi) = MessageIntegrity::new_short_term_credential(m, &integrity_password(key)) {
        m.add_attribute(mi);
    }
}

/// Appends a MESSAGE-INTEGRITY under `key` to an encoded STUN message (RFC 5389 15.4: HMAC-SHA1 over the
/// message with its length already counting the attribute): the same bytes as [`add_integrity`] before
/// encoding, without encoding the message twice (stun_codec encodes it once to compute the HMAC).
pub fn append_integrity(bytes: &mut Vec<u8>, key: &LinkKeyBytes) {
    use hmac::Mac;
    if bytes.len() < 20 {
        return;
    }
    let len = u16::from_be_bytes([bytes[2], bytes[3]]).saturating_add(24);
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
    let password = integrity_password_bytes(key);
    let mut mac =
        <hmac::Hmac<sha1::Sha1> as Mac>::new_from_slice(&password).expect("any key length");
    mac.update(bytes);
    bytes.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
    bytes.extend_from_slice(&mac.finalize().into_bytes());
}

/// Whether the datagram is a STUN message whose MESSAGE-INTEGRITY checks under `key` (never panics).
pub fn check_integrity(data: &[u8], key: &LinkKeyBytes) -> bool {
    decode(data)
        .and_then(|m| {
            get::<MessageIntegrity>(&m).map(|mi| {
                mi.check_short_term_credential(&integrity_password(key))
                    .is_ok()
            })
        })
        .unwrap_or(false)
}

/// Classifies a datagram without parsing it.
pub fn kind(data: &[u8]) -> Kind {
    if data.len() > MAX_DATAGRAM {
        return Kind::Unknown;
    }
    match data.first() {
        Some(&DATA_TAG) if data.len() >= 10 => Kind::Data,
        Some(b) if b & 0xC0 == 0 && data.len() >= 20 => {
            if data[4..8] == MAGIC_COOKIE.to_be_bytes() {
                Kind::Stun
            } else {
                Kind::ClassicStun
            }
        }
        _ => Kind::Unknown,
    }
}

/// Decodes an RFC 5389 STUN message; `None` for anything malformed (never panics).
pub fn decode(data: &[u8]) -> Option<StunMessage> {
    decode_as::<PunchAttribute>(data)
}

/// Decodes an RFC 5389 STUN message with any attribute set `A` (punch's, or the Binding set of
/// [`crate::rfc5780`]); `None` for anything malformed (never panics).
pub fn decode_as<A: Attribute>(data: &[u8]) -> Option<Message<A>> {
    if kind(data) != Kind::Stun {
        return None;
    }
    // The STUN length field must match the datagram exactly and be a multiple of 4.
    let len = u16::from_be_bytes([data[2], data[3]]) as usize;
    if len + 20 != data.len() || !len.is_multiple_of(4) {
        return None;
    }
    let mut decoder = MessageDecoder::<A>::new();
    match decoder.decode_from_bytes(data) {
        Ok(Ok(m)) => Some(m),
        _ => None,
    }
}

/// Encodes a STUN message (empty on the impossible failure of encoding punch's own messages).
pub fn encode(message: StunMessage) -> Vec<u8> {
    encode_as(message)
}

/// Encodes a STUN message with any attribute set.
pub fn encode_as<A: Attribute>(message: Message<A>) -> Vec<u8> {
    let mut encoder = MessageEncoder::<A>::new();
    encoder.encode_into_bytes(message).unwrap_or_default()
}

/// Builds a message with the given class, method and transaction id.
pub fn message(class: MessageClass, method: Method, tid: TransactionId) -> StunMessage {
    Message::new(class, method, tid)
}

/// Encodes a socket address: `[0, family (1 = IPv4, 2 = IPv6), port ^ 0x2112, ip ^ cookie-repeated]` (XORed,
/// like XOR-MAPPED-ADDRESS, so address-rewriting middleboxes leave it alone).
pub fn encode_addr(addr: SocketAddr) -> Vec<u8> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = (addr.port() ^ 0x2112).to_be_bytes();
    let (family, octets) = match addr.ip() {
        IpAddr::V4(ip) => (1, ip.octets().to_vec()),
        IpAddr::V6(ip) => (2, ip.octets().to_vec()),
    };
    let mut out = vec![0, family, port[0], port[1]];
    out.extend(octets.iter().zip(cookie.iter().cycle()).map(|(a, b)| a ^ b));
    out
}

/// Inverse of [`encode_addr`]; `None` if malformed.
pub fn decode_addr(bytes: &[u8]) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    if bytes.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([bytes[2], bytes[3]]) ^ 0x2112;
    // XORed on the stack (no allocation: every LOCAL-ADDRESS of every Register goes through here).
    let raw = &bytes[4..];
    let ip = match (bytes[1], raw.len()) {
        (1, 4) => {
            let o: [u8; 4] = std::array::from_fn(|i| raw[i] ^ cookie[i]);
            IpAddr::V4(Ipv4Addr::from(o))
        }
        (2, 16) => {
            let o: [u8; 16] = std::array::from_fn(|i| raw[i] ^ cookie[i % 4]);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The first attribute of type `T`.
pub fn get<T>(m: &StunMessage) -> Option<&T>
where
    T: Attribute,
    PunchAttribute: stun_codec::convert::TryAsRef<T>,
{
    m.get_attribute::<T>()
}

/// Reads a UTF-8 attribute value with a length limit.
pub fn text(bytes: &[u8], max: usize) -> Option<String> {
    if bytes.len() > max {
        return None;
    }
    String::from_utf8(bytes.to_vec()).ok()
}

/// The method name, for traces and logs.
pub fn method_name(m: Method) -> &'static str {
    match m.as_u16() {
        0x001 => "Binding",
        0x00D => "Register",
        0x00E => "PeerInfo",
        0x00F => "Ping",
        0x005 => "Relay",
        _ => "Unknown",
    }
}

/// One line describing a datagram, for traces ("STUN Register request", "data 42 bytes").
pub fn describe(data: &[u8]) -> String {
    match kind(data) {
        Kind::Stun => match decode(data) {
            Some(m) => {
                let class = match m.class() {
                    MessageClass::Request => "request",
                    MessageClass::Indication => "indication",
                    MessageClass::SuccessResponse => "success",
                    MessageClass::ErrorResponse => "error",
                };
                let name = method_name(m.method());
                let name = match (name, m.class()) {
                    ("Ping", MessageClass::SuccessResponse) => "Pong",
                    ("Register", MessageClass::Indication) => "Leave",
                    ("PeerInfo", MessageClass::Indication) => "PeerLeft",
                    (n, _) => n,
                };
                let mut s = format!("STUN {name} {class}");
                if let Some(d) = get::<Data>(&m) {
                    s.push_str(&format!(" [sealed {} B]", d.0.len()));
                }
                if let Some(e) = get::<ErrorCode>(&m) {
                    s.push_str(&format!(" {} {}", e.code(), e.reason_phrase()));
                }
                s
            }
            None => format!("malformed STUN ({} bytes)", data.len()),
        },
        Kind::ClassicStun => format!("RFC 3489 STUN ({} bytes)", data.len()),
        Kind::Data => format!("data [sealed {} B]", data.len() - DIRECT_HEADER),
        Kind::Unknown => format!("unknown ({} bytes)", data.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_password_is_lower_case_hex() {
        let key: LinkKeyBytes = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xA5);
        let want: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(integrity_password(&key), want);
        assert_eq!(integrity_password(&[0xFF; 16]), "ff".repeat(16));
    }

    #[test]
    fn custom_attributes_round_trip() {
        let mut m = message(
            MessageClass::Request,
            methods::register(),
            TransactionId::new([7; 12]),
        );
        m.add_attribute(Pool(b"lobby".to_vec()));
        m.add_attribute(LocalAddr(encode_addr("10.0.0.2:4000".parse().unwrap())));
        m.add_attribute(LocalAddr(encode_addr("[fe80::1]:4001".parse().unwrap())));
        m.add_attribute(Nat(vec![2, 1, 3, 1, 0, 0]));
        let bytes = encode(m);
        assert_eq!(kind(&bytes), Kind::Stun);
        let d = decode(&bytes).unwrap();
        assert_eq!(d.method(), methods::register());
        assert_eq!(get::<Pool>(&d).unwrap().0, b"lobby");
        for m in [
            methods::binding(),
            methods::register(),
            methods::peer_info(),
            methods::ping(),
            methods::relay(),
        ] {
            let b = encode(message(
                MessageClass::Indication,
                m,
                TransactionId::new([0; 12]),
            ));
            assert_eq!(
                decode(&b).unwrap().method(),
                m,
                "method {m:?} must round-trip"
            );
        }
        let locals: Vec<_> = d
            .attributes()
            .filter_map(|a| match a {
                PunchAttribute::LocalAddr(l) => decode_addr(&l.0),
                _ => None,
            })
            .collect();
        assert_eq!(
            locals,
            vec![
                "10.0.0.2:4000".parse().unwrap(),
                "[fe80::1]:4001".parse().unwrap()
            ]
        );
        // Odd-length attribute values are padded to 4 bytes.
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        assert!(decode(&[]).is_none());
        assert!(decode(&[0; 19]).is_none());
        let mut b = encode(message(
            MessageClass::Request,
            methods::binding(),
            TransactionId::new([1; 12]),
        ));
        b[3] = 4; // length says 4, datagram has 0 attribute bytes
        assert!(decode(&b).is_none());
        assert_eq!(decode_addr(&[0, 1, 0]), None);
        assert_eq!(decode_addr(&[0, 9, 0, 0, 1, 2, 3, 4]), None);
    }
}
