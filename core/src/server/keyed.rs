//! The hash the server's tables use: SipHash-1-3 with per-server keys drawn from the server's seeded RNG
//! ([`super::ServerConfig::seed`], which a deployment takes from the OS). Keyed, so that clients cannot choose
//! addresses or pool names that collide; drawn from the seed, so that core reads no global RNG (std's
//! `RandomState` would) and a seed gives the same server every time.
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;

use rand::Rng;
use siphasher::sip::SipHasher13;

/// A [`BuildHasher`] with fixed SipHash keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyed {
    k0: u64,
    k1: u64,
}

impl Keyed {
    /// Keys drawn from `rng`.
    pub(crate) fn from_rng(rng: &mut impl Rng) -> Keyed {
        Keyed {
            k0: rng.gen(),
            k1: rng.gen(),
        }
    }

    /// Keys derived from `seed` (a caller's random number: see [`super::RelayTable::new`]).
    pub(crate) fn from_seed(seed: u64) -> Keyed {
        use rand::SeedableRng;
        Keyed::from_rng(&mut rand::rngs::SmallRng::seed_from_u64(seed))
    }
}

impl Keyed {
    /// The hash of an address as the member index keys it: one `u64` for IPv4 (IP and port), the IP as a
    /// `u128` and the port for IPv6; addresses that are equal hash alike (derived `Hash` writes the
    /// enum's and the array's lengths too: twice the work for the same keyed guarantee).
    pub(crate) fn addr(&self, a: SocketAddr) -> u64 {
        let mut h = self.build_hasher();
        match a {
            SocketAddr::V4(v4) => {
                h.write_u64((u64::from(v4.ip().to_bits()) << 16) | u64::from(v4.port()))
            }
            SocketAddr::V6(v6) => {
                h.write_u128(v6.ip().to_bits());
                h.write_u16(v6.port());
            }
        }
        h.finish()
    }

    /// The hash of a byte string (a pool's name) in one write.
    pub(crate) fn bytes(&self, b: &[u8]) -> u64 {
        let mut h = self.build_hasher();
        h.write(b);
        h.finish()
    }

    /// The hash of an IPv4 address's octets (the per-IP table's key) as one `u32`.
    pub(crate) fn ip4(&self, o: [u8; 4]) -> u64 {
        let mut h = self.build_hasher();
        h.write_u32(u32::from_be_bytes(o));
        h.finish()
    }

    /// The hash of an IPv6 address's octets as one `u128`.
    pub(crate) fn ip6(&self, o: [u8; 16]) -> u64 {
        let mut h = self.build_hasher();
        h.write_u128(u128::from_be_bytes(o));
        h.finish()
    }
}

impl BuildHasher for Keyed {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// A `HashMap` hashed with [`Keyed`].
pub(crate) type KeyedMap<K, V> = HashMap<K, V, Keyed>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_hashes_alike_and_another_seed_does_not() {
        let (a, b, c) = (
            Keyed::from_seed(1),
            Keyed::from_seed(1),
            Keyed::from_seed(2),
        );
        assert_eq!(a.hash_one("7"), b.hash_one("7"));
        assert_ne!(a.hash_one("7"), c.hash_one("7"));
    }
}
