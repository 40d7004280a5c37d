//! The PeerInfo retransmission schedule: a binary heap of `(when, member address, transaction id)`, earliest
//! first, ties by address (the order the sends of one instant go out in).
//!
//! A pushed entry costs one comparison in the common case (later than what is queued); removals are lazy: a
//! PeerInfo that is answered, replaced or whose member leaves or moves only marks the schedule as possibly
//! stale ([`Schedule::forget`]), and an entry is checked against the member's current PeerInfo when it reaches
//! the top ([`Schedule::tidy`], [`Schedule::pop_due`]). The top is kept current after every change, so the
//! deadline the server reports, and the sends and their order, are those of an exact set (the `BTreeSet` this
//! replaces). A stale entry lives until its time (at most [`super::INFO_MAX_RTO`] after it was queued), so the
//! heap holds at most the PeerInfos outstanding plus those answered in the last second.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::wire::Tid;

/// One queued send: when, to whom, and which PeerInfo (its transaction id).
pub(super) type Entry = (Instant, SocketAddr, Tid);

#[derive(Debug, Default)]
pub(super) struct Schedule {
    heap: BinaryHeap<Reverse<Entry>>,
    /// The top may be stale: check it before reporting it.
    unsure: bool,
}

impl Schedule {
    /// The PeerInfo `tid` to `addr` is (re)sent at `at`.
    pub fn push(&mut self, at: Instant, addr: SocketAddr, tid: Tid) {
        self.heap.push(Reverse((at, addr, tid)));
    }

    /// Some queued PeerInfo may no longer be current (answered, replaced, its member gone or moved).
    pub fn forget(&mut self) {
        self.unsure = true;
    }

    /// The earliest send (current once [`Schedule::tidy`] ran after the last change).
    pub fn first(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes the earliest entry if it is due at `now` (the caller checks that it is current).
    pub fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        if self.first()? > now {
            return None;
        }
        self.unsure = true;
        self.heap.pop().map(|Reverse(e)| e)
    }

    /// Drops entries from the top until the top is `current` (after a change that may have made it stale).
    pub fn tidy(&mut self, current: impl Fn(&Entry) -> bool) {
        if !self.unsure {
            return;
        }
        self.unsure = false;
        while let Some(Reverse(e)) = self.heap.peek() {
            if current(e) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<Reverse<Entry>>()
    }
}
