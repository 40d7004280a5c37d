//! An authenticated, encrypted datagram channel keyed by the PAKE.
//!
//! From the 32-byte PAKE key, HKDF-SHA256 derives one ChaCha20-Poly1305 key per direction (info strings
//! `punch/v1 channel low->high` and `punch/v1 channel high->low`) and a key-confirmation value
//! (`punch/v1 key confirmation`). The two sides take opposite [`Role`]s, so each one's sending key is the
//! other's receiving key and the two directions never share a (key, nonce) pair.
//!
//! ## Wire form
//!
//! ```text
//! [counter: u64 big-endian][ciphertext (as long as the plaintext)][Poly1305 tag: 16 bytes]
//! ```
//!
//! The nonce is 4 zero bytes followed by the 8 counter bytes. The counter starts at 0 and increases by one per
//! sealed datagram; [`SecureChannel::seal`] refuses after [`MAX_MESSAGES`] datagrams rather than reuse one. The
//! associated data (not sent; both sides must supply the same bytes) binds the datagram to its context, such
//! as the pair id and a message-type byte. Changing the counter changes the nonce, so a tampered counter
//! fails authentication like a tampered ciphertext.
//!
//! ## Replay window
//!
//! [`SecureChannel::open`] remembers which of the last [`REPLAY_WINDOW`] counters (below the highest one
//! accepted) it has accepted. A counter seen before, or older than the window, is refused without decrypting;
//! any other counter is accepted in any order. The window only moves after a datagram authenticates, so
//! forged datagrams cannot push it forward.

use std::fmt;

use hkdf::Hkdf;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// The Poly1305 tag length in bytes.
pub const TAG_LEN: usize = 16;
/// The counter prefix length in bytes.
const COUNTER_LEN: usize = 8;
/// How many bytes sealing adds to a plaintext: the counter and the tag.
pub const SEALED_OVERHEAD: usize = COUNTER_LEN + TAG_LEN;
/// The most datagrams one side may seal (2^48); counters at or above this are never sent nor accepted.
pub const MAX_MESSAGES: u64 = 1 << 48;
/// Blocks of 64 counters in the replay bitmap; one more than the window needs, as in RFC 6479.
const WINDOW_BLOCKS: usize = 33;
/// How many counters below the highest accepted one are still accepted if not seen before (2,048).
pub const REPLAY_WINDOW: u64 = (WINDOW_BLOCKS as u64 - 1) * 64;

const INFO_LOW_TO_HIGH: &[u8] = b"punch/v1 channel low->high";
const INFO_HIGH_TO_LOW: &[u8] = b"punch/v1 channel high->low";
const INFO_CONFIRM: &[u8] = b"punch/v1 key confirmation";

/// Which end of the channel this side is. The two sides must take opposite roles; both derive them from the
/// two PAKE messages with [`Role::from_messages`], so no extra negotiation is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Our PAKE message sorts lower (bytewise) than theirs. We send with the low->high key.
    Low,
    /// Our PAKE message sorts higher than theirs. We send with the high->low key.
    High,
}

impl Role {
    /// Our role given our PAKE message and theirs: [`Role::Low`] if ours sorts lower bytewise. The peer, calling
    /// it with the arguments swapped, gets the opposite role. `None` if the messages are equal (a reflected
    /// message; [`super::Pake::finish`] refuses it too).
    pub fn from_messages(ours: &[u8], theirs: &[u8]) -> Option<Role> {
        match ours.cmp(theirs) {
            std::cmp::Ordering::Less => Some(Role::Low),
            std::cmp::Ordering::Greater => Some(Role::High),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// The other role.
    pub fn opposite(self) -> Role {
        match self {
            Role::Low => Role::High,
            Role::High => Role::Low,
        }
    }
}

/// Why [`SecureChannel::seal`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// [`MAX_MESSAGES`] datagrams have been sealed with this key; sealing more would reuse a nonce. Run a new
    /// PAKE for a new key.
    Exhausted,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Exhausted => {
                f.write_str("this secure channel has sealed its maximum number of messages")
            }
        }
    }
}

impl std::error::Error for SealError {}

/// Why [`SecureChannel::open`] refused a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than [`SEALED_OVERHEAD`] bytes (counted in [`SecureChannel::rejected`]).
    TooShort {
        /// The length received.
        len: usize,
    },
    /// The counter is at or above [`MAX_MESSAGES`], which no honest sender uses (counted in
    /// [`SecureChannel::rejected`]).
    CounterOutOfRange,
    /// Authentication failed: wrong key (wrong code), wrong associated data, or a modified counter, ciphertext
    /// or tag (counted in [`SecureChannel::rejected`]).
    Auth,
    /// This counter was already accepted (counted in [`SecureChannel::replays`]).
    Replay,
    /// This counter is more than [`REPLAY_WINDOW`] below the highest accepted one, so it can no longer be told
    /// apart from a replay (counted in [`SecureChannel::replays`]).
    TooOld,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::TooShort { len } => {
                write!(f, "sealed datagram is {len} bytes, shorter than the {SEALED_OVERHEAD}-byte overhead")
            }
            OpenError::CounterOutOfRange => {
                f.write_str("sealed datagram has an out-of-range counter")
            }
            OpenError::Auth => {
                f.write_str("sealed datagram failed authentication (wrong code or tampered)")
            }
            OpenError::Replay => f.write_str("sealed datagram is a replay"),
            OpenError::TooOld => f.write_str("sealed datagram is older than the replay window"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Seals datagrams for the peer and opens the peer's datagrams; see the [module documentation](self).
pub struct SecureChannel {
    role: Role,
    /// Our sending key (ChaCha20-Poly1305, RFC 8439); wiped on drop.
    send: [u8; 32],
    /// The partner's sending key, which opens what it sends us; wiped on drop.
    recv: [u8; 32],
    confirmation: [u8; 32],
    next_send: u64,
    window: ReplayWindow,
    opened: u64,
    rejected: u64,
    replays: u64,
}

impl SecureChannel {
    /// Derives the channel keys from the PAKE key ([`super::Pake::finish`]) for our `role`.
    pub fn new(pake_key: &[u8; 32], role: Role) -> SecureChannel {
        let hk = Hkdf::<Sha256>::new(None, pake_key);
        let derive = |info: &[u8]| {
            let mut out = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so expand cannot fail.
            hk.expand(info, &mut out)
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            out
        };
        let (send, recv) = match role {
            Role::Low => (INFO_LOW_TO_HIGH, INFO_HIGH_TO_LOW),
            Role::High => (INFO_HIGH_TO_LOW, INFO_LOW_TO_HIGH),
        };
        SecureChannel {
            role,
            send: derive(send),
            recv: derive(recv),
            confirmation: derive(INFO_CONFIRM),
            next_send: 0,
            window: ReplayWindow::new(),
            opened: 0,
            rejected: 0,
            replays: 0,
        }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Encrypts and authenticates `plaintext` with associated data `aad` (not sent; the peer must pass the same
    /// bytes to [`SecureChannel::open`]). Returns `[counter][ciphertext][tag]`, [`SEALED_OVERHEAD`] bytes longer
    /// than the plaintext. Each call uses the next counter; fails once [`MAX_MESSAGES`] have been sealed.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let counter = self.next_send;
        if counter >= MAX_MESSAGES {
            return Err(SealError::Exhausted);
        }
        self.next_send = counter + 1;
        let mut out = Vec::with_capacity(SEALED_OVERHEAD + plaintext.len());
        out.extend_from_slice(&counter.to_be_bytes());
        out.extend_from_slice(plaintext);
        let tag = aead_key(&self.send)
            .seal_in_place_separate_tag(nonce(counter), Aad::from(aad), &mut out[COUNTER_LEN..])
            .expect("ChaCha20-Poly1305 accepts any datagram-sized plaintext");
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Checks and decrypts a datagram from [`SecureChannel::seal`] on the other side, with the same associated
    /// data. Refuses (and counts) short datagrams, authentication failures, replays and counters older than the
    /// window; see [`OpenError`]. The replay window advances only when the datagram authenticates.
    pub fn open(&mut self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let result = self.open_inner(aad, sealed);
        match result {
            Ok(_) => self.opened += 1,
            Err(OpenError::Replay | OpenError::TooOld) => self.replays += 1,
            Err(OpenError::TooShort { .. } | OpenError::CounterOutOfRange | OpenError::Auth) => {
                self.rejected += 1
            }
        }
        result
    }

    fn open_inner(&mut self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < SEALED_OVERHEAD {
            return Err(OpenError::TooShort { len: sealed.len() });
        }
        let (counter_bytes, rest) = sealed.split_at(COUNTER_LEN);
        let counter = u64::from_be_bytes(counter_bytes.try_into().map_err(|_| OpenError::Auth)?);
        if counter >= MAX_MESSAGES {
            return Err(OpenError::CounterOutOfRange);
        }
        self.window.check(counter)?;
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let tag = Tag::try_from(tag).map_err(|_| OpenError::Auth)?;
        let mut plaintext = ciphertext.to_vec();
        aead_key(&self.recv)
            .open_in_place_separate_tag(nonce(counter), Aad::from(aad), tag, &mut plaintext, 0..)
            .map_err(|_| OpenError::Auth)?;
        self.window.accept(counter);
        Ok(plaintext)
    }

    /// A value both sides derive identically from the shared key (independent of the role). Exchanging it (or
    /// a hash of it) tells "wrong code" apart from "packets lost": if the codes differed, the values differ.
    /// Compare with [`ct_eq`].
    pub fn key_confirmation(&self) -> [u8; 32] {
        self.confirmation
    }

    /// How many datagrams [`SecureChannel::seal`] has produced (the next counter).
    pub fn sealed(&self) -> u64 {
        self.next_send
    }

    /// How many datagrams [`SecureChannel::open`] accepted.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// How many datagrams [`SecureChannel::open`] refused as malformed or unauthentic (too short, counter out of
    /// range, failed authentication).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// How many datagrams [`SecureChannel::open`] refused as replays or as older than the window.
    pub fn replays(&self) -> u64 {
        self.replays
    }
}

/// The keys are wiped when the channel goes (the `ring` key built per datagram from them is a stack copy that
/// `ring` does not wipe).
impl Drop for SecureChannel {
    fn drop(&mut self) {
        self.send.zeroize();
        self.recv.zeroize();
    }
}

/// Shows the role and counters, never keys.
impl fmt::Debug for SecureChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureChannel")
            .field("role", &self.role)
            .field("sealed", &self.next_send)
            .field("opened", &self.opened)
            .field("rejected", &self.rejected)
            .field("replays", &self.replays)
            .finish_non_exhaustive()
    }
}

/// Compares two byte strings in time that depends only on their lengths (lengths are not secret), e.g. for
/// [`SecureChannel::key_confirmation`] values.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The 96-bit nonce for `counter`: 4 zero bytes then the counter, big-endian.
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    // Unique per key: `seal` never reuses a counter, and each direction has its own key.
    Nonce::assume_unique_for_key(n)
}

/// The AEAD for one datagram: `ring`'s ChaCha20-Poly1305 (RFC 8439, the same bytes as the `chacha20poly1305`
/// crate, which the tests compare against; several times faster on datagram-sized messages, whose cost is
/// mostly the per-message Poly1305 setup). Building the key is a 32-byte copy, so the channel keeps only the
/// raw keys, which it can wipe.
fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key).expect("32 bytes is a ChaCha20-Poly1305 key"),
    )
}

/// Which recent counters have been accepted: a ring of 64-bit blocks (RFC 6479), so moving forward clears
/// whole blocks instead of shifting bits.
#[derive(Clone)]
struct ReplayWindow {
    /// One more than the highest accepted counter; 0 when nothing has been accepted yet.
    next: u64,
    bitmap: [u64; WINDOW_BLOCKS],
}

impl ReplayWindow {
    fn new() -> ReplayWindow {
        ReplayWindow {
            next: 0,
            bitmap: [0; WINDOW_BLOCKS],
        }
    }

    fn slot(counter: u64) -> (usize, u64) {
        let block = (counter / 64) % WINDOW_BLOCKS as u64;
        (block as usize, 1 << (counter % 64))
    }

    /// Whether `counter` may be accepted: newer than everything, or inside the window and not yet seen.
    fn check(&self, counter: u64) -> Result<(), OpenError> {
        if counter >= self.next {
            return Ok(());
        }
        if self.next - 1 - counter >= REPLAY_WINDOW {
            return Err(OpenError::TooOld);
        }
        let (block, bit) = Self::slot(counter);
        if self.bitmap[block] & bit != 0 {
            Err(OpenError::Replay)
        } else {
            Ok(())
        }
    }

    /// Records `counter` as accepted (after [`ReplayWindow::check`] passed and it authenticated).
    fn accept(&mut self, counter: u64) {
        if counter >= self.next {
            let new_block = counter / 64;
            // Blocks after the current highest one's, up to the new one's, hold stale bits from a lap ago.
            let first_fresh = if self.next == 0 {
                0
            } else {
                (self.next - 1) / 64 + 1
            };
            let fresh = (new_block + 1)
                .saturating_sub(first_fresh)
                .min(WINDOW_BLOCKS as u64);
            for i in 0..fresh {
                let (block, _) = Self::slot((new_block - i) * 64);
                self.bitmap[block] = 0;
            }
            self.next = counter + 1;
        }
        let (block, bit) = Self::slot(counter);
        self.bitmap[block] |= bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::{Code, Pake};
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use std::collections::HashSet;

    const AAD: &[u8] = b"pair-1\x01";

    /// Runs the PAKE for two codes and builds both channels, roles from the messages.
    fn pair(code_a: &str, code_b: &str, seed: u64) -> (SecureChannel, SecureChannel) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (pa, ma) = Pake::start(&Code::parse(code_a).unwrap(), &mut rng);
        let (pb, mb) = Pake::start(&Code::parse(code_b).unwrap(), &mut rng);
        let ra = Role::from_messages(&ma, &mb).unwrap();
        let rb = Role::from_messages(&mb, &ma).unwrap();
        let a = SecureChannel::new(&pa.finish(&mb).unwrap(), ra);
        let b = SecureChannel::new(&pb.finish(&ma).unwrap(), rb);
        (a, b)
    }

    fn good_pair() -> (SecureChannel, SecureChannel) {
        pair("7-guitar-revenge", "7-guitar-revenge", 11)
    }

    #[test]
    fn roles_are_opposite() {
        for seed in 0..20 {
            let (a, b) = good_pair_seeded(seed);
            assert_eq!(a.role().opposite(), b.role());
            assert_ne!(a.role(), b.role());
        }
        assert_eq!(Role::from_messages(b"a", b"b"), Some(Role::Low));
        assert_eq!(Role::from_messages(b"b", b"a"), Some(Role::High));
        assert_eq!(Role::from_messages(b"a", b"a"), None);
        assert_eq!(Role::Low.opposite(), Role::High);
    }

    fn good_pair_seeded(seed: u64) -> (SecureChannel, SecureChannel) {
        pair("7-guitar-revenge", "7-guitar-revenge", seed)
    }

    #[test]
    fn round_trip_both_directions() {
        let (mut a, mut b) = good_pair();
        for i in 0..5u8 {
            let msg = vec![i; usize::from(i) * 10 + 1];
            let s = a.seal(AAD, &msg).unwrap();
            assert_eq!(s.len(), msg.len() + SEALED_OVERHEAD);
            assert_eq!(&s[..8], &u64::from(i).to_be_bytes());
            assert_ne!(&s[8..8 + msg.len()], msg.as_slice(), "encrypted");
            assert_eq!(b.open(AAD, &s).unwrap(), msg);

            let s = b.seal(AAD, b"pong").unwrap();
            assert_eq!(a.open(AAD, &s).unwrap(), b"pong");
        }
        assert_eq!(
            (a.sealed(), a.opened(), a.rejected(), a.replays()),
            (5, 5, 0, 0)
        );
        assert_eq!(
            (b.sealed(), b.opened(), b.rejected(), b.replays()),
            (5, 5, 0, 0)
        );
    }

    #[test]
    fn a_side_cannot_open_its_own_datagrams() {
        // Directional keys: a reflected datagram does not authenticate.
        let (mut a, _) = good_pair();
        let s = a.seal(AAD, b"hi").unwrap();
        assert_eq!(a.open(AAD, &s), Err(OpenError::Auth));
        assert_eq!(a.rejected(), 1);
    }

    #[test]
    fn key_confirmation_matches_only_with_the_same_code() {
        let (a, b) = good_pair();
        assert!(ct_eq(&a.key_confirmation(), &b.key_confirmation()));
        let (a, b) = pair("7-guitar-revenge", "7-guitar-revenue", 11);
        assert!(!ct_eq(&a.key_confirmation(), &b.key_confirmation()));
    }

    #[test]
    fn wrong_code_cannot_open() {
        let (mut a, mut b) = pair("7-guitar-revenge", "7-guitar-revenue", 12);
        let s = a.seal(AAD, b"secret").unwrap();
        assert_eq!(b.open(AAD, &s), Err(OpenError::Auth));
        let s = b.seal(AAD, b"secret").unwrap();
        assert_eq!(a.open(AAD, &s), Err(OpenError::Auth));
        assert_eq!(
            (a.rejected(), b.rejected(), a.opened(), b.opened()),
            (1, 1, 0, 0)
        );
    }

    #[test]
    fn tampering_is_rejected_and_counted() {
        let (mut a, mut b) = good_pair();
        let s = a.seal(AAD, b"hello, world").unwrap();
        let last = s.len() - 1;
        // Counter, ciphertext, tag.
        for (i, what) in [
            (7, "counter"),
            (0, "counter high byte"),
            (8, "ciphertext"),
            (last, "tag"),
        ] {
            let mut t = s.clone();
            t[i] ^= 0x01;
            let err = b.open(AAD, &t).unwrap_err();
            assert!(
                matches!(err, OpenError::Auth | OpenError::CounterOutOfRange),
                "{what}: {err:?}"
            );
        }
        // Associated data.
        assert_eq!(b.open(b"pair-2\x01", &s), Err(OpenError::Auth));
        assert_eq!(b.open(b"", &s), Err(OpenError::Auth));
        // Truncated, extended, too short.
        assert_eq!(b.open(AAD, &s[..s.len() - 1]), Err(OpenError::Auth));
        let mut longer = s.clone();
        longer.push(0);
        assert_eq!(b.open(AAD, &longer), Err(OpenError::Auth));
        assert_eq!(b.open(AAD, &s[..23]), Err(OpenError::TooShort { len: 23 }));
        assert_eq!(b.open(AAD, &[]), Err(OpenError::TooShort { len: 0 }));
        assert_eq!(b.rejected(), 10);
        assert_eq!(b.opened(), 0);
        // The rejects did not poison the window: the genuine datagram still opens.
        assert_eq!(b.open(AAD, &s).unwrap(), b"hello, world");
        assert_eq!((b.opened(), b.rejected(), b.replays()), (1, 10, 0));
    }

    #[test]
    fn counter_out_of_range_is_rejected() {
        let (_, mut b) = good_pair();
        let mut t = vec![0u8; SEALED_OVERHEAD];
        t[..8].copy_from_slice(&MAX_MESSAGES.to_be_bytes());
        assert_eq!(b.open(AAD, &t), Err(OpenError::CounterOutOfRange));
        assert_eq!(b.rejected(), 1);
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let (mut a, mut b) = good_pair();
        let s = a.seal(AAD, b"").unwrap();
        assert_eq!(s.len(), SEALED_OVERHEAD);
        assert_eq!(b.open(AAD, &s).unwrap(), b"");
    }

    #[test]
    fn replay_is_rejected_and_counted() {
        let (mut a, mut b) = good_pair();
        let s = a.seal(AAD, b"once").unwrap();
        assert!(b.open(AAD, &s).is_ok());
        assert_eq!(b.open(AAD, &s), Err(OpenError::Replay));
        assert_eq!(b.open(AAD, &s), Err(OpenError::Replay));
        assert_eq!((b.opened(), b.rejected(), b.replays()), (1, 0, 2));
    }

    #[test]
    fn reordering_inside_the_window_is_accepted() {
        let (mut a, mut b) = good_pair();
        let sealed: Vec<Vec<u8>> = (0..100u32)
            .map(|i| a.seal(AAD, &i.to_be_bytes()).unwrap())
            .collect();
        // Deliver in reverse, then everything again.
        for (i, s) in sealed.iter().enumerate().rev() {
            assert_eq!(b.open(AAD, s).unwrap(), (i as u32).to_be_bytes());
        }
        for s in &sealed {
            assert_eq!(b.open(AAD, s), Err(OpenError::Replay));
        }
        assert_eq!((b.opened(), b.replays()), (100, 100));
    }

    #[test]
    fn the_window_is_at_least_1024_and_older_is_refused() {
        const { assert!(REPLAY_WINDOW >= 1024) };
        let (mut a, mut b) = good_pair();
        let total = REPLAY_WINDOW + 10;
        let sealed: Vec<Vec<u8>> = (0..=total).map(|_| a.seal(AAD, b"x").unwrap()).collect();
        // Highest first.
        assert!(b.open(AAD, &sealed[total as usize]).is_ok());
        // Exactly the window's oldest counter is still accepted...
        let oldest_ok = (total - (REPLAY_WINDOW - 1)) as usize;
        assert!(b.open(AAD, &sealed[oldest_ok]).is_ok());
        // ... one older is not.
        assert_eq!(b.open(AAD, &sealed[oldest_ok - 1]), Err(OpenError::TooOld));
        assert_eq!(b.open(AAD, &sealed[0]), Err(OpenError::TooOld));
        assert_eq!((b.opened(), b.replays(), b.rejected()), (2, 2, 0));
    }

    #[test]
    fn forged_datagrams_do_not_move_the_window() {
        let (mut a, mut b) = good_pair();
        let first = a.seal(AAD, b"first").unwrap();
        // A forgery with a huge counter fails authentication and must not make `first` too old.
        let mut forged = vec![0u8; 40];
        forged[..8].copy_from_slice(&(MAX_MESSAGES - 1).to_be_bytes());
        assert_eq!(b.open(AAD, &forged), Err(OpenError::Auth));
        assert_eq!(b.open(AAD, &first).unwrap(), b"first");
    }

    #[test]
    fn seal_refuses_past_the_limit() {
        let (mut a, mut b) = good_pair();
        a.next_send = MAX_MESSAGES - 1;
        let last = a.seal(AAD, b"last").unwrap();
        assert_eq!(a.seal(AAD, b"one too many"), Err(SealError::Exhausted));
        assert_eq!(a.seal(AAD, b"still no"), Err(SealError::Exhausted));
        assert_eq!(a.sealed(), MAX_MESSAGES);
        assert_eq!(b.open(AAD, &last).unwrap(), b"last");
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn debug_hides_keys() {
        let (a, _) = good_pair();
        let dbg = format!("{a:?}");
        assert!(
            dbg.contains("SecureChannel") && dbg.contains("role"),
            "{dbg}"
        );
    }

    #[test]
    fn window_jumps_clear_stale_bits() {
        let mut w = ReplayWindow::new();
        w.accept(5);
        // A jump of exactly one lap lands on the same ring slot: bit 5 must not look "seen" for 5 + 33*64.
        let lap = WINDOW_BLOCKS as u64 * 64;
        assert_eq!(w.check(5 + lap), Ok(()));
        w.accept(5 + lap);
        assert_eq!(w.check(5 + lap), Err(OpenError::Replay));
        assert_eq!(w.check(6 + lap - 64), Ok(()));
        assert_eq!(w.check(5), Err(OpenError::TooOld));
        // Huge jumps are fine.
        w.accept(MAX_MESSAGES - 1);
        assert_eq!(w.check(MAX_MESSAGES - 2), Ok(()));
        assert_eq!(w.check(MAX_MESSAGES - 1), Err(OpenError::Replay));
    }

    /// What the `chacha20poly1305` crate (the RustCrypto implementation the channel used before `ring`) seals
    /// with `key` at `counter`: the channel's wire form, `[counter][ciphertext][tag]`.
    fn crate_seal(key: &[u8; 32], counter: u64, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&counter.to_be_bytes());
        let mut out = counter.to_be_bytes().to_vec();
        out.extend_from_slice(plaintext);
        let tag = chacha20poly1305::ChaCha20Poly1305::new(key.into())
            .encrypt_in_place_detached(&n.into(), aad, &mut out[COUNTER_LEN..])
            .unwrap();
        out.extend_from_slice(&tag);
        out
    }

    #[test]
    fn the_aead_is_rfc_8439() {
        // RFC 8439 section 2.8.2: the AEAD test vector (its nonce is not of the channel's form, so this calls
        // `ring` directly, as the channel does).
        let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let nonce = [
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ];
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let mut text =
            b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for \
                         the future, sunscreen would be it."
                .to_vec();
        let tag = aead_key(&key)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut text,
            )
            .unwrap();
        assert_eq!(
            &text[..16],
            &[
                0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb, 0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef,
                0x7e, 0xc2
            ]
        );
        assert_eq!(&text[text.len() - 2..], &[0x61, 0x16]);
        assert_eq!(
            tag.as_ref(),
            &[
                0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60,
                0x06, 0x91
            ]
        );
    }

    #[test]
    fn seals_what_the_chacha20poly1305_crate_seals() {
        let (mut a, mut b) = good_pair();
        for len in [
            0, 1, 15, 16, 17, 40, 63, 64, 65, 100, 200, 255, 256, 257, 1200, 1500,
        ] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let counter = a.sealed();
            let sealed = a.seal(AAD, &plaintext).unwrap();
            assert_eq!(
                sealed,
                crate_seal(&a.send, counter, AAD, &plaintext),
                "length {len}"
            );
            assert_eq!(b.open(AAD, &sealed).unwrap(), plaintext);
        }
    }

    /// The reference model: remember every accepted counter; accept iff new and within the window.
    fn model_check(seen: &HashSet<u64>, highest: Option<u64>, c: u64) -> Result<(), OpenError> {
        match highest {
            Some(h) if c <= h && h - c >= REPLAY_WINDOW => Err(OpenError::TooOld),
            _ if seen.contains(&c) => Err(OpenError::Replay),
            _ => Ok(()),
        }
    }

    proptest! {
        #[test]
        fn open_never_panics_on_random_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            aad in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let (_, mut b) = good_pair();
            prop_assert!(b.open(&aad, &bytes).is_err());
            prop_assert_eq!(b.opened(), 0);
        }

        #[test]
        fn open_never_panics_on_random_bytes_with_a_plausible_counter(
            counter in 0u64..5000,
            body in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let (_, mut b) = good_pair();
            let mut t = counter.to_be_bytes().to_vec();
            t.extend_from_slice(&body);
            prop_assert!(b.open(AAD, &t).is_err());
        }

        #[test]
        fn agrees_with_the_chacha20poly1305_crate(
            key in any::<[u8; 32]>(),
            counter in prop_oneof![0u64..4, 0..MAX_MESSAGES],
            aad in proptest::collection::vec(any::<u8>(), 0..40),
            plaintext in proptest::collection::vec(any::<u8>(), 0..1300),
            flip in any::<prop::sample::Index>(),
        ) {
            let mut a = SecureChannel::new(&key, Role::Low);
            let mut b = SecureChannel::new(&key, Role::High);
            a.next_send = counter;
            let sealed = a.seal(&aad, &plaintext).unwrap();
            let expected = crate_seal(&a.send, counter, &aad, &plaintext);
            prop_assert_eq!(&sealed, &expected);
            // What the crate seals, the channel opens; one flipped bit anywhere and it does not.
            let mut forged = expected.clone();
            let i = flip.index(forged.len());
            forged[i] ^= 1;
            let refused = b.open(&aad, &forged);
            prop_assert!(refused.is_err(), "bit {} accepted", i);
            prop_assert_eq!(b.open(&aad, &expected).unwrap(), plaintext);
        }

        #[test]
        fn window_matches_the_model(ops in proptest::collection::vec(
            prop_oneof![0u64..300, 0u64..5000, 0u64..20_000], 1..300)
        ) {
            let mut w = ReplayWindow::new();
            let mut seen = HashSet::new();
            let mut highest = None;
            for c in ops {
                let got = w.check(c);
                prop_assert_eq!(got, model_check(&seen, highest, c), "counter {}", c);
                if got.is_ok() {
                    w.accept(c);
                    seen.insert(c);
                    highest = highest.max(Some(c));
                }
            }
        }
    }
}
