//! End-to-end encryption building blocks: join codes (this step), then a PAKE and an authenticated datagram
//! channel.
//!
//! One side generates a [`Code`] such as `7-guitar-revenge` ([`Code::generate`]) and tells the other side out
//! of band; the other side types it in ([`Code::parse`]). The number (the *nameplate*) lets a rendezvous
//! server pair the two sides; the words are the secret and never need to reach the server.

pub mod code;
pub mod words;

pub use code::{
    Code, CodeError, MAX_CODE_LEN, MAX_NAMEPLATE_DIGITS, MAX_WORD_LEN, MIN_GENERATED_WORDS,
};
