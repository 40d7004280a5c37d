//! The hash the server's tables use: SipHash-1-3 with per-server keys drawn from the server's seeded RNG
//! ([`super::ServerConfig::seed`], which a deployment takes from the OS). Keyed, so that clients cannot choose
//! addresses or pool names that collide; drawn from the seed, so that core reads no global RNG (std's
//! `RandomState` would) and a seed gives the same server every time.
use std::collections::HashMap;
use std::hash::BuildHasher;

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
