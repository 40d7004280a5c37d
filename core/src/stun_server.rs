//! STUN Binding answers for the server: RFC 5389 (XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, and with an alternate
//! address OTHER-ADDRESS and RESPONSE-ORIGIN).
use std::net::SocketAddr;

use stun_codec::rfc5389::attributes::{MappedAddress, XorMappedAddress};
use stun_codec::rfc5780::attributes::{OtherAddress, ResponseOrigin};
use stun_codec::MessageClass;

use crate::server::ServerConfig;
use crate::wire::{self, methods};
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

/// Answers an RFC 5389 Binding request; `None` if `data` is not one.
pub fn answer_binding(
    config: &ServerConfig,
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
) -> Option<Transmit> {
    let req = wire::decode(data)?;
    if req.method() != methods::binding() || req.class() != MessageClass::Request {
        return None;
    }
    let mut res = wire::message(
        MessageClass::SuccessResponse,
        methods::binding(),
        req.transaction_id(),
    );
    res.add_attribute(XorMappedAddress::new(remote));
    res.add_attribute(MappedAddress::new(remote));
    if let Some(alt) = config.alternate {
        let other = socket_set(config.listen, Some(alt))
            .into_iter()
            .find(|s| s.ip() != local.ip() && s.port() != local.port())
            .unwrap_or(alt);
        res.add_attribute(OtherAddress::new(other));
        res.add_attribute(ResponseOrigin::new(local));
    }
    Some(Transmit {
        source: Some(local),
        destination: remote,
        payload: wire::encode(res),
    })
}

/// Answers an RFC 3489 ("classic") Binding request. Not yet supported.
pub fn answer_classic(
    _config: &ServerConfig,
    _local: SocketAddr,
    _remote: SocketAddr,
    _data: &[u8],
) -> Option<Transmit> {
    None
}
