//! The peer's end-to-end protection: the code (allocated or given), the SPAKE2 exchange at pairing, the sealed
//! channel, key confirmation through the relay, and what happens on a wrong code. See `docs/SECURITY.md`.
use std::net::SocketAddr;

use super::{Peer, PeerError, PeerEvent, NO_PATH_RTT};
use crate::secure::{Code, OpenError, Pake, Role, SecureChannel};
use crate::wire::{self, Inner, PairIdBytes};
use crate::Machine;

/// The end-to-end key: waiting for the partner's PAKE message, then a channel.
#[derive(Debug)]
pub(super) enum Secure {
    /// The server is allocating our nameplate; the code (and so the PAKE) comes after.
    NoCode,
    Waiting(Box<Pake>),
    Established {
        pair_id: PairIdBytes,
        channel: Box<SecureChannel>,
        /// Something from the partner authenticated.
        confirmed: bool,
    },
    Failed,
}

impl Peer {
    /// The server gave us a nameplate: make the code's words, start the PAKE, and tell the application.
    pub(super) fn on_allocated(&mut self, nameplate: &str) {
        if !matches!(self.secure, Secure::NoCode) {
            return;
        }
        let Some(code) = nameplate
            .parse()
            .ok()
            .and_then(|n| Code::generate(n, 2, &mut self.rng).ok())
        else {
            let reason = format!("the server allocated an unusable nameplate {nameplate:?}");
            self.link.close(self.now, false);
            return self
                .events
                .push_back(PeerEvent::Error(PeerError::Rejected { code: 500, reason }));
        };
        let (pake, message) = Pake::start(&code, &mut self.rng);
        self.secure = Secure::Waiting(Box::new(pake));
        self.link.set_pake(message);
        self.events.push_back(PeerEvent::CodeAllocated {
            code: code.to_string(),
        });
    }

    /// Finishes the PAKE with the partner's message and keys the channel; `false` if that is impossible (no
    /// or a malformed message: not a punch peer with a code, or a reflection).
    pub(super) fn establish(&mut self, pair_id: PairIdBytes, theirs: Option<&[u8]>) -> bool {
        let Secure::Waiting(pake) = std::mem::replace(&mut self.secure, Secure::Failed) else {
            return matches!(self.secure, Secure::Established { .. });
        };
        let Some(theirs) = theirs else {
            return false;
        };
        let ours = pake.message().to_vec();
        let (Ok(key), Some(role)) = (pake.finish(theirs), Role::from_messages(&ours, theirs))
        else {
            return false;
        };
        let channel = Box::new(SecureChannel::new(&key, role));
        let confirm = Inner::Confirm(channel.key_confirmation()).encode();
        self.secure = Secure::Established {
            pair_id,
            channel,
            confirmed: false,
        };
        // Key confirmation through the relay, first of all: a partner with another code learns it at once.
        self.relay_sealed(&confirm);
        true
    }

    fn seal(&mut self, plaintext: &[u8]) -> Option<(PairIdBytes, Vec<u8>)> {
        let Secure::Established {
            pair_id, channel, ..
        } = &mut self.secure
        else {
            return None;
        };
        let sealed = channel.seal(pair_id, plaintext).ok()?;
        Some((*pair_id, sealed))
    }

    pub(super) fn seal_direct(&mut self, plaintext: &[u8]) -> Option<Vec<u8>> {
        let (pair_id, sealed) = self.seal(plaintext)?;
        Some(wire::encode_direct(&pair_id, &sealed))
    }

    pub(super) fn relay_sealed(&mut self, plaintext: &[u8]) {
        if let Some((_, sealed)) = self.seal(plaintext) {
            if let Some(t) = self.link.relay(sealed) {
                self.out.push_back(t);
            }
        }
    }

    /// Opens a sealed payload for pair `id`. A failure is counted; the caller learns whether anything from
    /// the partner had authenticated before.
    pub(super) fn open(
        &mut self,
        id: PairIdBytes,
        sealed: &[u8],
    ) -> Result<Inner, (OpenError, bool)> {
        let Secure::Established {
            pair_id,
            channel,
            confirmed,
        } = &mut self.secure
        else {
            return Err((OpenError::Auth, false));
        };
        let was_confirmed = *confirmed;
        let opened = if id == *pair_id {
            channel.open(pair_id, sealed)
        } else {
            Err(OpenError::Auth)
        };
        match opened.map(|p| Inner::decode(&p)) {
            Ok(Some(inner)) => {
                *confirmed = true;
                Ok(inner)
            }
            Ok(None) => Err((OpenError::Auth, was_confirmed)),
            Err(e) => {
                self.rejected += 1;
                Err((e, was_confirmed))
            }
        }
    }

    /// A sealed payload the server relayed from the partner. Before anything from the partner authenticated,
    /// one that does not means the partner used another code: the server only relays our pair's frames.
    pub(super) fn on_relayed(&mut self, sealed: &[u8]) {
        let Secure::Established { pair_id, .. } = &self.secure else {
            return;
        };
        let server = self.config.server;
        match self.open(*pair_id, sealed) {
            Ok(inner) => self.dispatch(server, server, inner),
            Err((OpenError::Auth | OpenError::TooShort { .. }, false)) => self.wrong_code(),
            Err(_) => {}
        }
    }

    /// Routes an authenticated inner frame.
    pub(super) fn dispatch(&mut self, local: SocketAddr, remote: SocketAddr, inner: Inner) {
        match inner {
            Inner::Chat(frame) => self.chat.handle_input(self.now, local, remote, &frame),
            Inner::Confirm(_) => {} // it authenticated: that is the confirmation
            ping_or_pong => {
                if remote != self.config.server {
                    self.agent
                        .handle_inner(self.now, local, remote, ping_or_pong);
                }
            }
        }
    }

    /// The partner's key confirmation failed: report it, deliver nothing more, and burn the nameplate.
    pub(super) fn wrong_code(&mut self) {
        self.secure = Secure::Failed;
        self.agent.unpair();
        self.timers.clear();
        self.path = None;
        self.chat.set_path(self.now, None, NO_PATH_RTT);
        self.link.close(self.now, true);
        self.events
            .push_back(PeerEvent::Error(PeerError::WrongCode));
    }
}
