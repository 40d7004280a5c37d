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

/// The hash of the side maps keyed by member slot (pairs, outstanding PeerInfos): two rounds of a keyed
/// folded multiply (the 128-bit product of the value XOR one key with the other key, its halves XORed),
/// about 10 instructions where SipHash-1-3 takes ~80. Slots are not chosen by clients: the server hands them out, densely from 0
/// (freed ones reused first), so they are at most [`super::ServerConfig::max_members`] small numbers whose
/// set a client can steer only by joining and leaving. Under a secret key, whose product mixes every bit
/// of the slot into both halves, such a set does not gather in a few buckets; the keys clients do choose
/// (addresses, pool names) keep SipHash ([`Keyed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotKeyed {
    k0: u64,
    /// Odd, so the multiplication loses no bit.
    k1: u64,
}

impl SlotKeyed {
    /// Keys derived from the table keys `k` (one SipHash of a constant each: independent of `k` as far as
    /// anyone without `k` can tell).
    pub(crate) fn from_keyed(k: &Keyed) -> SlotKeyed {
        SlotKeyed {
            k0: k.bytes(b"slot key 0"),
            k1: k.bytes(b"slot key 1") | 1,
        }
    }
}

fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The [`Hasher`] of [`SlotKeyed`]: a slot is one `write_u32`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotHasher {
    keys: SlotKeyed,
    h: u64,
}

impl Hasher for SlotHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `u32` keys; any other key is folded in byte by byte.
        for &b in bytes {
            self.write_u32(u32::from(b));
        }
    }

    fn write_u32(&mut self, x: u32) {
        let k = self.keys;
        self.h = fold(fold(self.h ^ u64::from(x) ^ k.k0, k.k1) ^ k.k0, k.k1);
    }

    fn finish(&self) -> u64 {
        self.h
    }
}

impl BuildHasher for SlotKeyed {
    type Hasher = SlotHasher;
    fn build_hasher(&self) -> SlotHasher {
        SlotHasher { keys: *self, h: 0 }
    }
}

/// A `HashMap` keyed by member slot, hashed with [`SlotKeyed`].
pub(crate) type SlotMap<V> = HashMap<u32, V, SlotKeyed>;

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
        let (sa, sc) = (SlotKeyed::from_keyed(&a), SlotKeyed::from_keyed(&c));
        assert_eq!(sa.hash_one(7u32), SlotKeyed::from_keyed(&b).hash_one(7u32));
        assert_ne!(sa.hash_one(7u32), sc.hash_one(7u32));
    }

    /// Dense slots spread over a table's buckets and tags (the low bits pick the bucket, the top 7 the tag).
    #[test]
    fn dense_slots_spread_over_buckets_and_tags() {
        let h = SlotKeyed::from_keyed(&Keyed::from_seed(3));
        let mut buckets = [0u32; 1024];
        let mut tags = [0u32; 128];
        for slot in 0..65_536u32 {
            let x = h.hash_one(slot);
            buckets[(x & 1023) as usize] += 1;
            tags[(x >> 57) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (32..=100).contains(&n)),
            "{buckets:?}"
        );
        assert!(tags.iter().all(|&n| (384..=640).contains(&n)), "{tags:?}");
    }
}
