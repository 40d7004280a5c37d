//! SPAKE2 over a join code: both sides get the same 32-byte key if, and only if, they used the same code.
//!
//! This is the RustCrypto `spake2` crate in **symmetric** mode on the Ed25519 group, the way magic-wormhole
//! uses it: neither side needs to know whether it is "A" or "B", which suits two peers that join a
//! nameplate in either order. The identity string is [`PAKE_IDENTITY`] and the password is the whole
//! canonical code ([`Code::password`]).
//!
//! Each side sends one [`PAKE_MESSAGE_LEN`]-byte message. A passive observer learns nothing about the code;
//! an active attacker who runs the exchange with a guessed code learns only whether that one guess was right,
//! so a 16-bit code gives 1 chance in 65,536 per attempt. The key is only *implicitly* authenticated: a wrong
//! code yields a different key without any error here, which the channel detects (authentication failures,
//! [`super::SecureChannel::key_confirmation`]).

use std::fmt;

use rand_core::CryptoRngCore;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use super::code::Code;

/// The SPAKE2 identity both sides use: it separates punch's exchanges from any other protocol's.
pub const PAKE_IDENTITY: &[u8] = b"punch/v1";
/// The length of a PAKE message: a side byte (`'S'` for symmetric) and a 32-byte Ed25519 point.
pub const PAKE_MESSAGE_LEN: usize = 33;

/// One side of a SPAKE2 exchange, between sending our message and receiving theirs.
pub struct Pake {
    inner: Spake2<Ed25519Group>,
    ours: Vec<u8>,
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
        let password = Password::new(code.password());
        let identity = Identity::new(PAKE_IDENTITY);
        let (inner, ours) =
            Spake2::<Ed25519Group>::start_symmetric_with_rng(&password, &identity, &mut *rng);
        debug_assert_eq!(ours.len(), PAKE_MESSAGE_LEN);
        (
            Pake {
                inner,
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
        let key = self.inner.finish(their_message).map_err(|e| match e {
            spake2::Error::WrongLength => PakeError::WrongLength {
                len: their_message.len(),
            },
            spake2::Error::BadSide => PakeError::BadSide,
            spake2::Error::CorruptMessage => PakeError::CorruptMessage,
        })?;
        <[u8; 32]>::try_from(key.as_slice()).map_err(|_| PakeError::CorruptMessage)
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
