//! STUN Binding answers for the server, RFC 5389 / RFC 5780 and RFC 3489 ("classic") alike.
//!
//! With an alternate address ([`ServerConfig::alternate`], alternate IP + alternate port) the server owns four
//! sockets ([`socket_set`]) and runs NAT behaviour discovery (RFC 5780 s6.1):
//!
//! * every answer carries XOR-MAPPED-ADDRESS and MAPPED-ADDRESS (the request's source), OTHER-ADDRESS (the
//!   socket that differs from the receiving one in both IP and port) and RESPONSE-ORIGIN (the socket the answer
//!   leaves from);
//! * CHANGE-REQUEST selects that socket: "change IP" swaps the IP, "change port" swaps the port, relative to the
//!   socket the request arrived on ([`Transmit::source`] names it);
//! * RESPONSE-PORT sends the answer to that port of the request's source IP.
//!
//! Without an alternate, a request carrying CHANGE-REQUEST gets error 420 (Unknown Attribute) with
//! UNKNOWN-ATTRIBUTES naming it, as RFC 5780 s6.1 requires, and no answer carries OTHER-ADDRESS: a client can
//! tell plainly that this server cannot run behaviour tests.
//!
//! RFC 3489 clients (Debian's `stun`, pystun3: 16-byte transaction id, no magic cookie) get an RFC 3489 answer:
//! MAPPED-ADDRESS, SOURCE-ADDRESS and CHANGED-ADDRESS, with CHANGE-REQUEST honoured the same way. They always
//! send a CHANGE-REQUEST, so without an alternate only one asking for an actual change gets the 420.
//! RESPONSE-ADDRESS is ignored: sending answers to a third party is a reflection attack vector (RFC 5389 dropped
//! it for that reason).
use std::net::SocketAddr;

use stun_codec::rfc5389::attributes::{ErrorCode, UnknownAttributes};
use stun_codec::{AttributeType, Message, MessageClass};

use crate::rfc5780::{self, classic, BindingMessage, ChangeRequest, ResponsePort};
use crate::server::ServerConfig;
use crate::wire::methods;
use crate::Transmit;

/// The sockets of a server: the primary, then with an alternate: primary IP + alternate port, alternate IP +
/// primary port, alternate IP + alternate port.
pub fn socket_set(primary: SocketAddr, alternate: Option<SocketAddr>) -> Vec<SocketAddr> {
    match alternate {
        None => vec![primary],
        Some(alt) => vec![
            primary,
            SocketAddr::new(primary.ip(), alt.port()),
            SocketAddr::new(alt.ip(), primary.port()),
            alt,
        ],
    }
}

/// The alternate, if it can serve behaviour discovery: it must differ from the primary in both IP and port.
pub fn usable_alternate(config: &ServerConfig) -> Option<SocketAddr> {
    config
        .alternate
        .filter(|a| a.ip() != config.listen.ip() && a.port() != config.listen.port())
}

/// The sockets an answer to a request received on `local` involves: (the socket CHANGE-REQUEST `change`
/// selects, OTHER-ADDRESS). `None` without a usable alternate.
///
/// `local` is mapped onto the socket set by IP and port separately, so a driver that reports a wildcard
/// address still gets primary-based answers. A request on a socket of the other address family (an IPv6
/// `--listen` next to an IPv4 primary and alternate) gets `None`: its client could not follow an
/// OTHER-ADDRESS of another family with the same socket, and its behaviour tests would mix families.
pub fn select_sockets(
    config: &ServerConfig,
    local: SocketAddr,
    change: ChangeRequest,
) -> Option<(SocketAddr, SocketAddr)> {
    let alt = usable_alternate(config)?;
    if local.is_ipv4() != alt.is_ipv4() {
        return None;
    }
    let primary = config.listen;
    let on_alt_ip = local.ip() == alt.ip();
    let on_alt_port = local.port() == alt.port();
    let ip = |alternate: bool| if alternate { alt.ip() } else { primary.ip() };
    let port = |alternate: bool| {
        if alternate {
            alt.port()
        } else {
            primary.port()
        }
    };
    let source = SocketAddr::new(ip(on_alt_ip ^ change.ip), port(on_alt_port ^ change.port));
    let other = SocketAddr::new(ip(!on_alt_ip), port(!on_alt_port));
    Some((source, other))
}

/// Answers an RFC 5389 Binding request; `None` if `data` is not one (or is malformed). A success carries
/// `cookie` (the server's return-routability cookie for `remote`) as a comprehension-optional COOKIE
/// attribute, after the standard ones.
pub fn answer_binding(
    config: &ServerConfig,
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
    cookie: Option<&[u8]>,
) -> Option<Transmit> {
    // The header says whether this is a Binding request at all: skip decoding everything else twice.
    if !rfc5780::is_binding_request(data) {
        return None;
    }
    let req = rfc5780::decode(data)?;
    if req.method() != methods::binding() || req.class() != MessageClass::Request {
        return None;
    }
    let change = rfc5780::get::<ChangeRequest>(&req).copied();
    let destination = match rfc5780::get::<ResponsePort>(&req) {
        Some(ResponsePort(p)) if *p != 0 => SocketAddr::new(remote.ip(), *p),
        _ => remote,
    };
    let sockets = select_sockets(config, local, change.unwrap_or_default());
    if let (Some(_), None) = (change, sockets) {
        // RFC 5780 s6.1: CHANGE-REQUEST without an alternate address and port: 420.
        let mut e: BindingMessage = Message::new(
            MessageClass::ErrorResponse,
            methods::binding(),
            req.transaction_id(),
        );
        if let Ok(code) = ErrorCode::new(420, "Unknown Attribute: no alternate address".into()) {
            e.add_attribute(code);
        }
        e.add_attribute(UnknownAttributes::new(vec![AttributeType::new(
            ChangeRequest::CODEPOINT,
        )]));
        return Some(Transmit {
            ttl: None,
            source: Some(local),
            destination: remote,
            payload: rfc5780::encode(e),
        });
    }
    Some(Transmit {
        ttl: None,
        source: Some(sockets.map_or(local, |(source, _)| source)),
        destination,
        payload: rfc5780::binding_success(
            *req.transaction_id().as_bytes(),
            remote,
            sockets,
            cookie,
        ),
    })
}

/// Answers an RFC 3489 ("classic") Binding request; `None` if `data` is not one (or is malformed).
pub fn answer_classic(
    config: &ServerConfig,
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
) -> Option<Transmit> {
    let req = classic::parse(data)?;
    if req.msg_type != classic::BINDING_REQUEST {
        return None;
    }
    let change = req.change_request()?;
    let sockets = select_sockets(config, local, change);
    if change.any() && sockets.is_none() {
        let mut e = classic::ClassicMessage::new(classic::BINDING_ERROR, req.tid);
        e.add(
            classic::ERROR_CODE,
            classic::error_code_value(420, "Unknown Attribute: no alternate address"),
        );
        e.add(
            classic::UNKNOWN_ATTRIBUTES,
            classic::unknown_attributes_value(&[classic::CHANGE_REQUEST]),
        );
        return Some(Transmit {
            ttl: None,
            source: Some(local),
            destination: remote,
            payload: classic::encode(&e),
        });
    }
    let mut res = classic::ClassicMessage::new(classic::BINDING_RESPONSE, req.tid);
    res.add_addr(classic::MAPPED_ADDRESS, remote);
    let source = match sockets {
        Some((source, other)) => {
            res.add_addr(classic::SOURCE_ADDRESS, source);
            res.add_addr(classic::CHANGED_ADDRESS, other);
            source
        }
        None => {
            res.add_addr(classic::SOURCE_ADDRESS, local);
            local
        }
    };
    Some(Transmit {
        ttl: None,
        source: Some(source),
        destination: remote,
        payload: classic::encode(&res),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc5780::{ChangedAddress, SourceAddress};
    use stun_codec::rfc5389::attributes::{MappedAddress, XorMappedAddress};
    use stun_codec::rfc5780::attributes::{OtherAddress, ResponseOrigin};
    use stun_codec::TransactionId;

    const CLIENT: &str = "203.0.113.9:40000";
    const P: &str = "192.0.2.1:3478";
    const PA: &str = "192.0.2.1:3479";
    const AP: &str = "192.0.2.2:3478";
    const AA: &str = "192.0.2.2:3479";

    /// The address in attribute `$t` of message `$m` (which must have it).
    macro_rules! addr {
        ($m:expr, $t:ty) => {
            rfc5780::get::<$t>(&$m).unwrap().address()
        };
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn with_alt() -> ServerConfig {
        ServerConfig {
            alternate: Some(a(AA)),
            ..ServerConfig::new(a(P))
        }
    }

    /// The answer of `cfg` on socket `on` to a Binding request from CLIENT.
    fn answer(
        cfg: &ServerConfig,
        on: &str,
        change: Option<(bool, bool)>,
        response_port: Option<u16>,
    ) -> Transmit {
        let req = request(change, response_port);
        answer_binding(cfg, a(on), a(CLIENT), &req, None).unwrap()
    }

    fn request(change: Option<(bool, bool)>, response_port: Option<u16>) -> Vec<u8> {
        let mut m: BindingMessage = Message::new(
            MessageClass::Request,
            methods::binding(),
            TransactionId::new([4; 12]),
        );
        if let Some((ip, port)) = change {
            m.add_attribute(ChangeRequest::new(ip, port));
        }
        if let Some(p) = response_port {
            m.add_attribute(ResponsePort(p));
        }
        rfc5780::encode(m)
    }

    fn decode(t: &Transmit) -> BindingMessage {
        rfc5780::decode(&t.payload).expect("valid STUN")
    }

    #[test]
    fn a_socket_of_the_other_family_answers_plainly() {
        // An IPv6 --listen next to an IPv4 primary and alternate: no OTHER-ADDRESS of the other family.
        let v6 = "[2001:db8::1]:3478";
        let t = answer(&with_alt(), v6, None, None);
        assert_eq!(t.source, Some(a(v6)));
        let m = decode(&t);
        assert_eq!(m.class(), MessageClass::SuccessResponse);
        assert!(rfc5780::get::<OtherAddress>(&m).is_none());
        assert!(rfc5780::get::<ResponseOrigin>(&m).is_none());
        let e = decode(&answer(&with_alt(), v6, Some((true, true)), None));
        assert_eq!(e.class(), MessageClass::ErrorResponse);
    }

    #[test]
    fn socket_set_order() {
        assert_eq!(
            socket_set(a(P), Some(a(AA))),
            vec![a(P), a(PA), a(AP), a(AA)]
        );
        assert_eq!(socket_set(a(P), None), vec![a(P)]);
    }

    #[test]
    fn plain_binding_carries_all_addresses() {
        let t = answer(&with_alt(), P, None, None);
        assert_eq!(t.source, Some(a(P)));
        assert_eq!(t.destination, a(CLIENT));
        let m = decode(&t);
        assert_eq!(m.class(), MessageClass::SuccessResponse);
        assert_eq!(m.transaction_id(), TransactionId::new([4; 12]));
        assert_eq!(addr!(m, XorMappedAddress), a(CLIENT));
        assert_eq!(addr!(m, MappedAddress), a(CLIENT));
        assert_eq!(addr!(m, OtherAddress), a(AA));
        assert_eq!(addr!(m, ResponseOrigin), a(P));
    }

    #[test]
    fn change_request_selects_the_source_socket_from_every_socket() {
        let cfg = with_alt();
        // (received on, change ip, change port) -> (answered from, OTHER-ADDRESS)
        let cases = [
            (P, false, false, P, AA),
            (P, true, false, AP, AA),
            (P, false, true, PA, AA),
            (P, true, true, AA, AA),
            (PA, false, false, PA, AP),
            (PA, true, false, AA, AP),
            (PA, false, true, P, AP),
            (PA, true, true, AP, AP),
            (AP, false, false, AP, PA),
            (AP, true, false, P, PA),
            (AP, false, true, AA, PA),
            (AP, true, true, PA, PA),
            (AA, false, false, AA, P),
            (AA, true, false, PA, P),
            (AA, false, true, AP, P),
            (AA, true, true, P, P),
        ];
        for (on, ip, port, from, other) in cases {
            let t = answer(&cfg, on, Some((ip, port)), None);
            assert_eq!(
                t.source,
                Some(a(from)),
                "on {on} change ip {ip} port {port}"
            );
            let m = decode(&t);
            assert_eq!(addr!(m, ResponseOrigin), a(from));
            assert_eq!(addr!(m, OtherAddress), a(other));
            // The same through the classic path.
            let c = answer_classic(&cfg, a(on), a(CLIENT), &classic_request(ip, port)).unwrap();
            assert_eq!(c.source, Some(a(from)));
            let cm = classic::parse(&c.payload).unwrap();
            assert_eq!(cm.addr(classic::SOURCE_ADDRESS), Some(a(from)));
            assert_eq!(cm.addr(classic::CHANGED_ADDRESS), Some(a(other)));
        }
    }

    #[test]
    fn response_port_redirects_to_that_port_of_the_source_ip() {
        let t = answer(&with_alt(), P, Some((false, true)), Some(40_123));
        assert_eq!(t.destination, a("203.0.113.9:40123"));
        assert_eq!(t.source, Some(a(PA)));
        // The mapped address is still the request's source.
        assert_eq!(
            rfc5780::get::<XorMappedAddress>(&decode(&t))
                .unwrap()
                .address(),
            a(CLIENT)
        );
        // Port 0 is ignored.
        let t = answer(&with_alt(), P, None, Some(0));
        assert_eq!(t.destination, a(CLIENT));
    }

    #[test]
    fn without_alternate_change_request_gets_420_and_no_other_address() {
        let cfg = ServerConfig::new(a(P));
        let t = answer(&cfg, P, None, None);
        let m = decode(&t);
        assert_eq!(m.class(), MessageClass::SuccessResponse);
        assert!(rfc5780::get::<OtherAddress>(&m).is_none());
        assert_eq!(addr!(m, XorMappedAddress), a(CLIENT));
        for change in [(true, true), (false, true), (false, false)] {
            let t = answer(&cfg, P, Some(change), None);
            assert_eq!(t.source, Some(a(P)));
            let m = decode(&t);
            assert_eq!(m.class(), MessageClass::ErrorResponse);
            assert_eq!(rfc5780::get::<ErrorCode>(&m).unwrap().code(), 420);
            let unknown = rfc5780::get::<UnknownAttributes>(&m).unwrap();
            assert_eq!(
                unknown.unknowns().to_vec(),
                vec![AttributeType::new(ChangeRequest::CODEPOINT)]
            );
        }
        // An alternate on the same IP cannot change IP: treated as none.
        let same_ip = ServerConfig {
            alternate: Some(a(PA)),
            ..ServerConfig::new(a(P))
        };
        let t = answer(&same_ip, P, Some((true, true)), None);
        assert_eq!(decode(&t).class(), MessageClass::ErrorResponse);
    }

    /// The bytes Debian's `stun` client (Vovida stund's client) sends: RFC 3489 header with a 16-byte
    /// transaction id (first byte = test number) and always a CHANGE-REQUEST.
    fn classic_request(ip: bool, port: bool) -> Vec<u8> {
        let flags = (ip as u8) << 2 | (port as u8) << 1;
        let mut b = vec![0x00, 0x01, 0x00, 0x08];
        b.extend_from_slice(&[
            2, 0, 0, 0, 0x1f, 0x5e, 0x93, 0x27, 0x41, 0x10, 0x6b, 0xc0, 0x0d, 0x77, 0x12, 0xe4,
        ]);
        b.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0, 0, 0, flags]);
        b
    }

    #[test]
    fn classic_request_like_debians_stun_gets_a_classic_answer() {
        let req = classic_request(false, false);
        assert_eq!(crate::wire::kind(&req), crate::wire::Kind::ClassicStun);
        let t = answer_classic(&with_alt(), a(P), a(CLIENT), &req).unwrap();
        assert_eq!(t.source, Some(a(P)));
        assert_eq!(t.destination, a(CLIENT));
        let m = classic::parse(&t.payload).unwrap();
        assert_eq!(m.msg_type, classic::BINDING_RESPONSE);
        assert_eq!(&m.tid[..], &req[4..20]);
        assert_eq!(m.addr(classic::MAPPED_ADDRESS), Some(a(CLIENT)));
        assert_eq!(m.addr(classic::SOURCE_ADDRESS), Some(a(P)));
        assert_eq!(m.addr(classic::CHANGED_ADDRESS), Some(a(AA)));
        // Every attribute is 4-byte aligned (stund-style parsers drop anything else).
        for (_, v) in &m.attributes {
            assert_eq!(v.len() % 4, 0);
        }
        // Exact bytes of the MAPPED-ADDRESS attribute: type 1, length 8, family 1, port, IP.
        assert_eq!(
            &t.payload[20..32],
            &[0, 1, 0, 8, 0, 1, 0x9c, 0x40, 203, 0, 113, 9]
        );
        // Test II (change IP and port) is answered from the alternate socket.
        let t = answer_classic(&with_alt(), a(P), a(CLIENT), &classic_request(true, true)).unwrap();
        assert_eq!(t.source, Some(a(AA)));
        // A RESPONSE-ADDRESS is not obeyed.
        let mut r = classic::parse(&classic_request(false, false)).unwrap();
        r.add_addr(classic::RESPONSE_ADDRESS, a("198.51.100.77:53"));
        let t = answer_classic(&with_alt(), a(P), a(CLIENT), &classic::encode(&r)).unwrap();
        assert_eq!(t.destination, a(CLIENT));
    }

    #[test]
    fn classic_without_alternate() {
        let cfg = ServerConfig::new(a(P));
        // The no-flag CHANGE-REQUEST every classic request carries is fine.
        let t = answer_classic(&cfg, a(P), a(CLIENT), &classic_request(false, false)).unwrap();
        let m = classic::parse(&t.payload).unwrap();
        assert_eq!(m.msg_type, classic::BINDING_RESPONSE);
        assert_eq!(m.addr(classic::MAPPED_ADDRESS), Some(a(CLIENT)));
        assert_eq!(m.addr(classic::CHANGED_ADDRESS), None);
        // An actual change: 420.
        let t = answer_classic(&cfg, a(P), a(CLIENT), &classic_request(true, false)).unwrap();
        let m = classic::parse(&t.payload).unwrap();
        assert_eq!(m.msg_type, classic::BINDING_ERROR);
        assert_eq!(
            classic::error_code(m.get(classic::ERROR_CODE).unwrap()),
            Some(420)
        );
        assert_eq!(m.get(classic::UNKNOWN_ATTRIBUTES), Some(&[0, 3, 0, 3][..]));
        // Every declared attribute length is a multiple of 4: Vovida-style parsers step by it.
        let mut rest = &t.payload[20..];
        while rest.len() >= 4 {
            let l = u16::from_be_bytes([rest[2], rest[3]]) as usize;
            assert_eq!(
                l % 4,
                0,
                "attribute {:#06x}",
                u16::from_be_bytes([rest[0], rest[1]])
            );
            rest = &rest[4 + l..];
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn classic_garbage_is_dropped() {
        let cfg = with_alt();
        let req = classic_request(false, false);
        // Not a request, truncated, wrong length, malformed CHANGE-REQUEST.
        let mut resp = req.clone();
        resp[1] = 0x01;
        resp[0] = 0x01;
        assert!(answer_classic(&cfg, a(P), a(CLIENT), &resp).is_none());
        assert!(answer_classic(&cfg, a(P), a(CLIENT), &req[..24]).is_none());
        let mut long = req.clone();
        long[3] = 12;
        assert!(answer_classic(&cfg, a(P), a(CLIENT), &long).is_none());
        let mut bad = req.clone();
        bad[23] = 3;
        assert!(answer_classic(&cfg, a(P), a(CLIENT), &bad).is_none());
        // RFC 5389 messages are not classic and vice versa.
        assert!(answer_binding(&cfg, a(P), a(CLIENT), &req, None).is_none());
    }

    #[test]
    fn rfc5389_answers_decode_with_the_classic_addresses_too() {
        // A client that reads CHANGED-ADDRESS/SOURCE-ADDRESS from an RFC 5389 answer finds nothing wrong.
        let t = answer(&with_alt(), P, None, None);
        let m = decode(&t);
        assert!(rfc5780::get::<ChangedAddress>(&m).is_none());
        assert!(rfc5780::get::<SourceAddress>(&m).is_none());
        assert_eq!(m.unknown_attributes().count(), 0);
    }

    #[test]
    fn garbage_never_panics_and_non_bindings_are_not_answered() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3489);
        let corpus = [
            request(Some((true, true)), Some(4000)),
            classic_request(true, true),
            crate::wire::encode(crate::wire::message(
                MessageClass::Request,
                methods::register(),
                TransactionId::new([1; 12]),
            )),
        ];
        for cfg in [with_alt(), ServerConfig::new(a(P))] {
            for i in 0..20_000 {
                let mut b = if i % 3 == 0 {
                    (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect()
                } else {
                    corpus[i % corpus.len()].clone()
                };
                if !b.is_empty() {
                    for _ in 0..rng.gen_range(0..3) {
                        let j = rng.gen_range(0..b.len());
                        b[j] = rng.gen();
                    }
                }
                let _ = answer_binding(&cfg, a(P), a(CLIENT), &b, None);
                let _ = answer_classic(&cfg, a(AA), a(CLIENT), &b);
            }
        }
        // A Register request is not a Binding.
        assert!(answer_binding(&with_alt(), a(P), a(CLIENT), &corpus[2], None).is_none());
    }
}
