//! End-to-end encryption building blocks: join codes, a PAKE, and an authenticated datagram channel.
//!
//! The flow, magic-wormhole style:
//!
//! 1. One side generates a [`Code`] such as `7-guitar-revenge` ([`Code::generate`]) and tells the other side
//!    out of band; the other side types it in ([`Code::parse`]). The number (the *nameplate*) lets a rendezvous
//!    server pair the two sides; the words are the secret and never need to reach the server.
//! 2. Both sides run SPAKE2 on the whole code ([`Pake::start`], exchange the 33-byte messages, [`Pake::finish`])
//!    and get the same 32-byte key if, and only if, they typed the same code. An eavesdropper or a
//!    man in the middle gets one online guess per attempt, nothing to attack offline.
//! 3. Each side derives its [`Role`] from the two messages ([`Role::from_messages`]) and builds a
//!    [`SecureChannel`], which seals and opens datagrams with ChaCha20-Poly1305 under per-direction keys,
//!    with a counter nonce and a replay window. [`SecureChannel::key_confirmation`] lets the sides tell "wrong
//!    code" from "network loss" by comparing a derived value ([`ct_eq`]).
//!
//! Everything here is sans-IO and deterministic given the caller's RNG: no RNG is created inside this module.
//!
//! ```
//! use punch_core::secure::{Code, Pake, Role, SecureChannel};
//! # use rand_core::SeedableRng;
//! // Any `rand_core::CryptoRngCore`; a driver would use an OS-seeded one, tests a seeded one.
//! let mut rng_a = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let mut rng_b = rand_chacha::ChaCha20Rng::seed_from_u64(2);
//! let code = Code::generate(7, 2, &mut rng_a).unwrap();
//! let typed = Code::parse(&code.to_string()).unwrap();
//!
//! let (pake_a, msg_a) = Pake::start(&code, &mut rng_a);
//! let (pake_b, msg_b) = Pake::start(&typed, &mut rng_b);
//! let role_a = Role::from_messages(&msg_a, &msg_b).unwrap();
//! let role_b = Role::from_messages(&msg_b, &msg_a).unwrap();
//! let mut a = SecureChannel::new(&pake_a.finish(&msg_b).unwrap(), role_a);
//! let mut b = SecureChannel::new(&pake_b.finish(&msg_a).unwrap(), role_b);
//!
//! let sealed = a.seal(b"pair 9", b"hello").unwrap();
//! assert_eq!(b.open(b"pair 9", &sealed).unwrap(), b"hello");
//! ```

pub mod channel;
pub mod code;
pub mod pake;
pub mod words;

pub use channel::{
    ct_eq, OpenError, Role, SealError, SecureChannel, MAX_MESSAGES, REPLAY_WINDOW, SEALED_OVERHEAD,
    TAG_LEN,
};
pub use code::{
    Code, CodeError, MAX_CODE_LEN, MAX_NAMEPLATE_DIGITS, MAX_WORD_LEN, MIN_GENERATED_WORDS,
};
pub use pake::{Pake, PakeError, PAKE_IDENTITY, PAKE_MESSAGE_LEN};
