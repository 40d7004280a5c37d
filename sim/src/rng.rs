//! Seeded randomness.
//!
//! A scenario has one `u64` seed. Each random thing in the network (every link, every NAT) gets its own
//! generator derived from the seed and its name, so adding a host or changing one link's loss does not
//! change the random draws of the others. No generator is ever seeded from entropy.
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// One step of SplitMix64: a good bit mixer for deriving independent seeds.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// FNV-1a of a name (stable across platforms and Rust versions, unlike `std::hash`).
pub fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The seed for the sub-generator called `name` of the scenario seeded `seed`.
pub fn derive_seed(seed: u64, name: &str) -> u64 {
    splitmix64(seed ^ splitmix64(name_hash(name)))
}

/// A generator for `name`, derived from the scenario seed.
pub fn derive_rng(seed: u64, name: &str) -> SmallRng {
    SmallRng::seed_from_u64(derive_seed(seed, name))
}

/// Uniform draw in `[0, 1)` compared with a probability; `p <= 0` never, `p >= 1` always. Always consumes
/// exactly one draw so the stream stays aligned whatever `p` is.
pub fn chance(rng: &mut SmallRng, p: f64) -> bool {
    use rand::Rng;
    let x: f64 = rng.gen();
    x < p
}
