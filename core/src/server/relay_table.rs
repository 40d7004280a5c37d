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
use std::net::SocketAddr;
use std::sync::RwLock;

use super::keyed::{Keyed, KeyedMap};
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
    routes: RwLock<KeyedMap<SocketAddr, Route>>,
    max_payload: usize,
}

impl RelayTable {
    /// An empty table; relays with more than `max_payload` bytes of DATA are never forwarded from it. `seed`
    /// keys its hash (a random number of the caller's: core draws none); the server's own table is keyed from
    /// the server's seed.
    pub fn new(max_payload: usize, seed: u64) -> Self {
        RelayTable::with_hasher(max_payload, Keyed::from_seed(seed))
    }

    pub(super) fn with_hasher(max_payload: usize, hasher: Keyed) -> Self {
        RelayTable {
            routes: RwLock::new(KeyedMap::with_hasher(hasher)),
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

/// Source IPs whose relay budgets one [`RelayForwarder`] keeps at most (then it starts afresh).
pub const MAX_FORWARDER_SOURCES: usize = 65_536;

/// A data thread's side of a [`RelayTable`] (sans-IO, one per thread): forwards on the table's routes within
/// per-source-IP budgets (the server's relay rates, the same token buckets; each forwarder keeps its own, so a
/// source whose ports land on k threads gets up to k times the rate before the server's own quota applies to
/// what they hand over), and counts what it forwarded for [`Server::note_relayed`](super::Server::note_relayed).
#[derive(Debug)]
pub struct RelayForwarder {
    table: std::sync::Arc<RelayTable>,
    packets: crate::Rate,
    bytes: crate::Rate,
    /// Per source IP: the packet and byte buckets (see `guard::take`).
    budgets: KeyedMap<std::net::IpAddr, [u64; 2]>,
    relayed: KeyedMap<SocketAddr, u64>,
    epoch: std::time::Instant,
}

impl RelayForwarder {
    /// A forwarder over `table` with the server's relay rates (`packets` per second and `bytes` of DATA per
    /// second, as in [`super::ServerConfig`]); `seed` keys its hash.
    pub fn new(
        table: std::sync::Arc<RelayTable>,
        packets: crate::Rate,
        bytes: crate::Rate,
        now: std::time::Instant,
        seed: u64,
    ) -> Self {
        let hasher = Keyed::from_seed(seed);
        RelayForwarder {
            table,
            packets,
            bytes,
            budgets: KeyedMap::with_hasher(hasher),
            relayed: KeyedMap::with_hasher(hasher),
            epoch: now,
        }
    }

    /// Where `data` from `remote` goes ([`RelayTable::forward`]) if its source IP is within budget; `None`:
    /// hand the datagram to the server (which applies, and counts, its own quota).
    pub fn forward(
        &mut self,
        now: std::time::Instant,
        remote: SocketAddr,
        data: &[u8],
    ) -> Option<SocketAddr> {
        let to = self.table.forward(remote, data)?;
        let n = wire::relay_view(data)?.data_len as u64;
        if self.budgets.len() >= MAX_FORWARDER_SOURCES && !self.budgets.contains_key(&remote.ip()) {
            self.budgets.clear();
        }
        let t =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let [p, b] = self.budgets.entry(remote.ip()).or_insert([0, 0]);
        let ok =
            super::guard::take(p, self.packets, t, 1) && super::guard::take(b, self.bytes, t, n);
        if ok {
            *self.relayed.entry(remote).or_default() += 1;
        }
        ok.then_some(to)
    }

    /// What was forwarded since the last call, per source (for [`Server::note_relayed`](super::Server::note_relayed)).
    pub fn take_relayed(&mut self) -> Vec<(SocketAddr, u64)> {
        self.relayed.drain().collect()
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
        let t = RelayTable::new(8, 1);
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

    #[test]
    fn a_forwarder_keeps_to_the_relay_rates_per_source_ip_and_counts_what_it_forwarded() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "192.0.2.1:1000".parse().unwrap(),
            "192.0.2.2:2000".parse().unwrap(),
        );
        let t = std::sync::Arc::new(RelayTable::new(8, 1));
        t.insert(
            a,
            Route {
                pair_id: [7; 8],
                partner: b,
            },
        );
        let t0 = crate::test_epoch();
        // Two packets at once, then one a second; bytes are not the limit here.
        let mut f = RelayForwarder::new(
            t,
            crate::Rate::new(1, 2),
            crate::Rate::new(1000, 1000),
            t0,
            3,
        );
        let hi = relay([7; 8], b"hi");
        assert_eq!(f.forward(t0, a, &hi), Some(b));
        assert_eq!(f.forward(t0, a, &hi), Some(b));
        assert_eq!(
            f.forward(t0, a, &hi),
            None,
            "over budget: the server decides"
        );
        assert_eq!(
            f.forward(t0 + std::time::Duration::from_secs(1), a, &hi),
            Some(b)
        );
        assert_eq!(f.take_relayed(), [(a, 3)]);
        assert!(f.take_relayed().is_empty());
    }
}
