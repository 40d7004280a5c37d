//! A fixed, fast hasher (the Fx hash of rustc) for the simulator's lookup tables keyed by socket addresses.
//!
//! `std`'s default hasher is randomly keyed (and SipHash costs more than a whole lookup here); a B-tree
//! compares `SocketAddr`s field by field at every level. These tables are only ever looked up, inserted into
//! and removed from, never iterated where the order could show (see the determinism rules in the crate docs),
//! and the hasher has no key, so a run does not depend on it at all.
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// The Fx hasher: one rotate, xor and multiply per word.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fx(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map with the [`Fx`] hasher.
pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
/// A hash set with the [`Fx`] hasher.
pub(crate) type FxSet<T> = HashSet<T, BuildHasherDefault<Fx>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn socket_addresses_hash_apart_and_are_found() {
        let mut s = FxSet::default();
        for port in 1000..3000u16 {
            assert!(s.insert(SocketAddr::from(([192, 0, 2, 1], port))));
            assert!(s.insert(SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], port))));
        }
        assert_eq!(s.len(), 4000);
        assert!(s.contains(&SocketAddr::from(([192, 0, 2, 1], 2999))));
        assert!(!s.contains(&SocketAddr::from(([192, 0, 2, 2], 2999))));
    }
}
