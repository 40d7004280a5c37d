//! A read-mostly relay table for data-plane threads ([`RelayTable`]).
//!
//! The control plane stays one [`Server`](super::Server). A driver that runs the relay data plane on several
//! threads asks the server for its table ([`Server::relay_table`](super::Server::relay_table)); data threads
//! then forward canonical Relay indications ([`crate::wire::relay_view`]) whose source, PAIR-ID and size
//! match a route the server has already checked, and hand every other datagram (and every miss) to the
//! server. The server fills a route when it relays a datagram itself and removes it whenever the pair
//! changes (a member leaves, expires or moves), so a data thread never forwards what the server would drop
//! for want of a pair. What a data thread forwards it reports back with
//! [`Server::note_relayed`](super::Server::note_relayed) (liveness and counters).
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;

use crate::wire;

/// Where a paired member's relays go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The pair's PAIR-ID: relays claiming another are not forwarded here.
    pub pair_id: [u8; 8],
    /// The partner's address.
    pub partner: SocketAddr,
}

/// Routes of paired members by source address, shared (`Send + Sync`) between the server and data threads.
#[derive(Debug)]
pub struct RelayTable {
    routes: RwLock<HashMap<SocketAddr, Route>>,
    max_payload: usize,
}

impl RelayTable {
    /// An empty table; relays with more than `max_payload` bytes of DATA are never forwarded from it.
    pub fn new(max_payload: usize) -> Self {
        RelayTable {
            routes: RwLock::new(HashMap::new()),
            max_payload,
        }
    }

    /// Where `data` from `remote` goes, when it is a canonical Relay indication on a known route with the
    /// route's PAIR-ID and allowed size: the bytes are to be sent to that address as they are. `None`: hand
    /// the datagram to the server.
    pub fn forward(&self, remote: SocketAddr, data: &[u8]) -> Option<SocketAddr> {
        let view = wire::relay_view(data)?;
        if view.data_len > self.max_payload {
            return None;
        }
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let route = routes.get(&remote)?;
        (route.pair_id == view.pair_id).then_some(route.partner)
    }

    /// The route from `addr`, if any.
    pub fn get(&self, addr: SocketAddr) -> Option<Route> {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        routes.get(&addr).copied()
    }

    /// How many routes are known.
    pub fn len(&self) -> usize {
        self.routes.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no route is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn insert(&self, from: SocketAddr, route: Route) {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if routes.get(&from) != Some(&route) {
            routes.insert(from, route);
        }
    }

    pub(super) fn remove(&self, addr: SocketAddr) {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        routes.remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(pair_id: [u8; 8], data: &[u8]) -> Vec<u8> {
        wire::Msg::Relay {
            tid: [1; 12],
            pair_id: Some(pair_id),
            data: Some(data.to_vec()),
        }
        .encode()
    }

    #[test]
    fn forwards_only_known_routes_with_their_pair_id_and_size() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "192.0.2.1:1000".parse().unwrap(),
            "192.0.2.2:2000".parse().unwrap(),
        );
        let t = RelayTable::new(8);
        assert!(t.is_empty());
        assert_eq!(t.forward(a, &relay([7; 8], b"hi")), None, "no route yet");
        t.insert(
            a,
            Route {
                pair_id: [7; 8],
                partner: b,
            },
        );
        assert_eq!(t.forward(a, &relay([7; 8], b"hi")), Some(b));
        assert_eq!(
            t.forward(a, &relay([8; 8], b"hi")),
            None,
            "another pair's id"
        );
        assert_eq!(t.forward(b, &relay([7; 8], b"hi")), None, "another source");
        assert_eq!(t.forward(a, &relay([7; 8], b"too large")), None);
        assert_eq!(t.forward(a, b"not a relay at all"), None);
        t.remove(a);
        assert_eq!(t.forward(a, &relay([7; 8], b"hi")), None);
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RelayTable>();
    }
}
