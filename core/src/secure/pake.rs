//! SPAKE2 over a join code: both sides get the same 32-byte key if, and only if, they used the same code.
//!
//! This is SPAKE2 in **symmetric** mode on the Ed25519 group, the way magic-wormhole uses it, byte for byte
//! the RustCrypto `spake2` crate's (`Spake2::<Ed25519Group>::start_symmetric`: same messages, same keys; the
//! tests check it against that crate): neither side needs to know whether it is "A" or "B", which suits two
//! peers that join a nameplate in either order. The identity string is [`PAKE_IDENTITY`] and the password is
//! the whole canonical code ([`Code::password`]). Written here on `curve25519-dalek` for speed: `x·B` and
//! `pw·S` come from precomputed tables (constant time, like the crate's multiplications), `pw·S` is computed
//! once instead of twice, and `S` is decompressed once per process, so a side costs one variable-base
//! multiplication instead of four.
//!
//! Each side sends one [`PAKE_MESSAGE_LEN`]-byte message. A passive observer learns nothing about the code;
//! an active attacker who runs the exchange with a guessed code learns only whether that one guess was right,
//! so a 16-bit code gives 1 chance in 65,536 per attempt. The key is only *implicitly* authenticated: a wrong
//! code yields a different key without any error here, which the channel detects (authentication failures,
//! [`super::SecureChannel::key_confirmation`]).

use std::fmt;

use std::sync::LazyLock;

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::BasepointTable;
use hkdf::Hkdf;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};

use super::code::Code;

/// The SPAKE2 identity both sides use: it separates punch's exchanges from any other protocol's.
pub const PAKE_IDENTITY: &[u8] = b"punch/v1";
/// The length of a PAKE message: a side byte (`'S'` for symmetric) and a 32-byte Ed25519 point.
pub const PAKE_MESSAGE_LEN: usize = 33;

/// SPAKE2's blinding point for the symmetric mode on Ed25519 (`S`, as in python-spake2 and the `spake2`
/// crate), compressed.
const S_POINT: [u8; 32] = [
    0x6f, 0x00, 0xda, 0xe8, 0x7c, 0x1b, 0xe1, 0xa7, 0x3b, 0x59, 0x22, 0xef, 0x43, 0x1c, 0xd8, 0xf5,
    0x78, 0x79, 0x56, 0x9c, 0x22, 0x2d, 0x22, 0xb1, 0xcd, 0x71, 0xe8, 0x54, 0x6a, 0xb8, 0xe6, 0xf1,
];
/// The side byte of a symmetric-mode message.
const SYMMETRIC: u8 = b'S';

/// Multiples of `S`, computed once per process (a constant of the protocol, not a secret).
static S_TABLE: LazyLock<EdwardsBasepointTable> = LazyLock::new(|| {
    let s = CompressedEdwardsY(S_POINT)
        .decompress()
        .expect("S is a curve point");
    EdwardsBasepointTable::create(&s)
});

/// One side of a SPAKE2 exchange, between sending our message and receiving theirs.
pub struct Pake {
    /// Our ephemeral secret scalar.
    x: Scalar,
    /// `pw·S`, the blinding of our message and the unblinding of theirs.
    pw_s: EdwardsPoint,
    /// SHA-256 of the password (the transcript's first field; the password itself is not kept).
    pw_hash: [u8; 32],
    /// Our message: the side byte and the point `x·B + pw·S`.
    ours: Vec<u8>,
}

impl Drop for Pake {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.x);
    }
}

/// The password scalar: HKDF-SHA256 (empty salt, info "SPAKE2 pw") to 48 bytes, read big-endian and reduced
/// (the `spake2` crate's `ed25519_hash_to_scalar`).
fn password_scalar(password: &[u8]) -> Scalar {
    let mut okm = [0u8; 48];
    Hkdf::<Sha256>::new(Some(b""), password)
        .expand(b"SPAKE2 pw", &mut okm)
        .expect("48 bytes is a valid HKDF-SHA256 length");
    let mut wide = [0u8; 64];
    for (i, b) in okm.iter().enumerate() {
        wide[47 - i] = *b;
    }
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// Why [`Pake::finish`] failed. None of these says whether the code was right: a wrong code is only noticed
/// later, as a key that does not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PakeError {
    /// Their message is not [`PAKE_MESSAGE_LEN`] bytes long.
    WrongLength {
        /// The length received.
        len: usize,
    },
    /// Their message is not a symmetric-mode message (its first byte is not `'S'`).
    BadSide,
    /// Their message is not a valid Ed25519 point.
    CorruptMessage,
    /// Their message is byte for byte our own: it was reflected back to us, not sent by a peer.
    Reflected,
}

impl std::error::Error for PakeError {}

impl fmt::Display for PakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PakeError::WrongLength { len } => {
                write!(
                    f,
                    "the peer's key-exchange message is {len} bytes, expected {PAKE_MESSAGE_LEN}"
                )
            }
            PakeError::BadSide => {
                f.write_str("the peer's key-exchange message is not a symmetric SPAKE2 message")
            }
            PakeError::CorruptMessage => f.write_str("the peer's key-exchange message is corrupt"),
            PakeError::Reflected => {
                f.write_str("the peer's key-exchange message is our own, reflected back")
            }
        }
    }
}

impl Pake {
    /// Starts the exchange for `code`, drawing the ephemeral secret from the caller's RNG. Returns the state to
    /// keep and our message ([`PAKE_MESSAGE_LEN`] bytes) to send to the peer.
    pub fn start(code: &Code, rng: &mut impl CryptoRngCore) -> (Pake, Vec<u8>) {
        let password = code.password();
        let pw = password_scalar(&password);
        let x = Scalar::random(rng);
        let pw_s = &pw * &*S_TABLE;
        let element = &x * ED25519_BASEPOINT_TABLE + pw_s;
        let mut ours = Vec::with_capacity(PAKE_MESSAGE_LEN);
        ours.push(SYMMETRIC);
        ours.extend_from_slice(element.compress().as_bytes());
        let pw_hash = Sha256::digest(&password).into();
        (
            Pake {
                x,
                pw_s,
                pw_hash,
                ours: ours.clone(),
            },
            ours,
        )
    }

    /// Our message, as returned by [`Pake::start`] (for resending, or for [`super::Role::from_messages`]).
    pub fn message(&self) -> &[u8] {
        &self.ours
    }

    /// Finishes the exchange with the peer's message and returns the shared 32-byte key. Both sides get the
    /// same key if they used the same code; otherwise the keys differ (and no error is reported here).
    pub fn finish(self, their_message: &[u8]) -> Result<[u8; 32], PakeError> {
        if their_message.len() != PAKE_MESSAGE_LEN {
            return Err(PakeError::WrongLength {
                len: their_message.len(),
            });
        }
        if their_message == self.ours.as_slice() {
            return Err(PakeError::Reflected);
        }
        if their_message[0] != SYMMETRIC {
            return Err(PakeError::BadSide);
        }
        let theirs: [u8; 32] = their_message[1..]
            .try_into()
            .map_err(|_| PakeError::CorruptMessage)?;
        let y = CompressedEdwardsY(theirs)
            .decompress()
            .ok_or(PakeError::CorruptMessage)?;
        // K = x·(Y − pw·S); the key hashes the transcript with the two messages in sorted order (either side
        // computes the same).
        let k = self.x * (y - self.pw_s);
        let ours = &self.ours[1..];
        let (first, second) = if ours < &theirs[..] {
            (ours, &theirs[..])
        } else {
            (&theirs[..], ours)
        };
        let mut transcript = Sha256::new();
        transcript.update(self.pw_hash);
        transcript.update(Sha256::digest(PAKE_IDENTITY));
        transcript.update(first);
        transcript.update(second);
        transcript.update(k.compress().as_bytes());
        Ok(transcript.finalize().into())
    }
}

/// Shows only our (public) message, never the secret scalar or the password.
impl fmt::Debug for Pake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pake")
            .field("message_len", &self.ours.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn code(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    fn exchange(a: &str, b: &str, seed: u64) -> ([u8; 32], [u8; 32]) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (pa, ma) = Pake::start(&code(a), &mut rng);
        let (pb, mb) = Pake::start(&code(b), &mut rng);
        assert_eq!(ma.len(), PAKE_MESSAGE_LEN);
        assert_eq!(mb.len(), PAKE_MESSAGE_LEN);
        assert_eq!(pa.message(), ma.as_slice());
        (pa.finish(&mb).unwrap(), pb.finish(&ma).unwrap())
    }

    #[test]
    fn same_code_same_key_on_both_sides() {
        let (ka, kb) = exchange("7-guitar-revenge", "7-guitar-revenge", 1);
        assert_eq!(ka, kb);
        assert_ne!(ka, [0; 32]);
        // Typed differently, same canonical code.
        let (ka, kb) = exchange("7-guitar-revenge", " 7-GUITAR-Revenge ", 2);
        assert_eq!(ka, kb);
    }

    #[test]
    fn fresh_randomness_gives_a_fresh_key() {
        let (k1, _) = exchange("7-guitar-revenge", "7-guitar-revenge", 1);
        let (k2, _) = exchange("7-guitar-revenge", "7-guitar-revenge", 2);
        assert_ne!(k1, k2);
        // And the same seed replays the same exchange (deterministic, sans-IO).
        assert_eq!(exchange("7-guitar-revenge", "7-guitar-revenge", 1).0, k1);
    }

    #[test]
    fn wrong_code_gives_different_keys() {
        let (ka, kb) = exchange("7-guitar-revenge", "7-guitar-revenue", 3);
        assert_ne!(ka, kb);
        // The nameplate is part of the password too.
        let (ka, kb) = exchange("7-guitar-revenge", "8-guitar-revenge", 4);
        assert_ne!(ka, kb);
    }

    #[test]
    fn malformed_messages_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let c = code("7-guitar-revenge");
        let (p, _) = Pake::start(&c, &mut rng);
        assert_eq!(
            p.finish(&[0x53; 10]),
            Err(PakeError::WrongLength { len: 10 })
        );

        let (_, theirs) = Pake::start(&c, &mut rng);
        let (p, _) = Pake::start(&c, &mut rng);
        let mut asym = theirs.clone();
        asym[0] = b'A';
        assert_eq!(p.finish(&asym), Err(PakeError::BadSide));

        let (p, ours) = Pake::start(&c, &mut rng);
        assert_eq!(p.finish(&ours), Err(PakeError::Reflected));
        assert!(PakeError::Reflected.to_string().contains("reflected"));

        // A y coordinate that is not on the curve (2 is not a valid y for Ed25519).
        let (p, _) = Pake::start(&c, &mut rng);
        let mut bad = vec![b'S'];
        bad.extend_from_slice(&{
            let mut y = [0u8; 32];
            y[0] = 2;
            y
        });
        assert_eq!(p.finish(&bad), Err(PakeError::CorruptMessage));
    }

    #[test]
    fn debug_hides_secrets() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let (p, _) = Pake::start(&code("7-guitar-revenge"), &mut rng);
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("guitar"), "{dbg}");
    }

    /// The `spake2` crate's symmetric exchange for `code` with the same RNG: its message, and its state.
    fn crate_start(
        code: &Code,
        rng: &mut ChaCha20Rng,
    ) -> (spake2::Spake2<spake2::Ed25519Group>, Vec<u8>) {
        spake2::Spake2::<spake2::Ed25519Group>::start_symmetric_with_rng(
            &spake2::Password::new(code.password()),
            &spake2::Identity::new(PAKE_IDENTITY),
            &mut *rng,
        )
    }

    #[test]
    fn messages_and_keys_are_the_spake2_crates_byte_for_byte() {
        for (i, (a, b)) in [
            ("7-guitar-revenge", "7-guitar-revenge"),
            ("7-guitar-revenge", "7-guitar-revenue"),
            ("123-zulu-alpha", "123-zulu-alpha"),
        ]
        .into_iter()
        .enumerate()
        {
            let (a, b) = (code(a), code(b));
            let seed = 100 + i as u64;
            // Ours and the crate's, from the same RNG state: the same message.
            let (ours_a, msg_a) = Pake::start(&a, &mut ChaCha20Rng::seed_from_u64(seed));
            let (crate_a, crate_msg_a) = crate_start(&a, &mut ChaCha20Rng::seed_from_u64(seed));
            assert_eq!(msg_a, crate_msg_a);
            // The partner runs the crate: both get the crate's keys.
            let (crate_b, msg_b) = crate_start(&b, &mut ChaCha20Rng::seed_from_u64(seed + 1000));
            let key_b = crate_b.finish(&msg_a).unwrap();
            let ours = ours_a.finish(&msg_b).unwrap();
            let theirs = crate_a.finish(&msg_b).unwrap();
            assert_eq!(ours.as_slice(), theirs.as_slice());
            assert_eq!(ours.as_slice() == key_b.as_slice(), a == b);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn agrees_with_the_spake2_crate(seed in any::<u64>(), other in any::<u64>(), words in 0usize..3) {
            let c = code(["7-guitar-revenge", "1-a-b", "42-zulu-yankee"][words]);
            let (p, msg) = Pake::start(&c, &mut ChaCha20Rng::seed_from_u64(seed));
            let (q, crate_msg) = crate_start(&c, &mut ChaCha20Rng::seed_from_u64(seed));
            prop_assert_eq!(&msg, &crate_msg);
            let (_, theirs) = crate_start(&c, &mut ChaCha20Rng::seed_from_u64(other ^ 1));
            prop_assume!(theirs != msg);
            let ours = p.finish(&theirs).unwrap();
            let crates = q.finish(&theirs).unwrap();
            prop_assert_eq!(ours.as_slice(), crates.as_slice());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn finish_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40), seed in any::<u64>()) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let (p, _) = Pake::start(&code("7-guitar-revenge"), &mut rng);
            let _ = p.finish(&bytes);
        }
    }
}
