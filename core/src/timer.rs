//! Typed timers (the quinn-proto `connection/timer.rs` pattern): one optional deadline per variant of a small
//! enum, the earliest wins, and every variant names its reason (shown in traces through [`crate::Deadline`]).
//!
//! Declare a machine's timers with [`timers!`](crate::timer::timers):
//! ```ignore
//! timers! {
//!     /// The peer's timers.
//!     pub(crate) enum PeerTimer {
//!         /// Retransmit the outstanding server request.
//!         ServerTxn => "server transaction retransmit",
//!     }
//! }
//! ```
//! and keep a `Timers<PeerTimer>` in the machine.
use std::time::{Duration, Instant};

use crate::Deadline;

/// A machine's timer enum: a fixed list of variants, each with an index and a reason.
pub(crate) trait TimerKind: Copy + Eq + std::fmt::Debug + 'static {
    /// Every variant, in index order.
    const ALL: &'static [Self];
    /// Position in [`TimerKind::ALL`].
    fn index(self) -> usize;
    /// Why this deadline exists (for traces).
    fn reason(self) -> &'static str;
}

/// Declares a timer enum and its [`TimerKind`] implementation.
macro_rules! timers {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $reason:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name { $($(#[$vmeta])* $variant,)+ }
        impl $crate::timer::TimerKind for $name {
            const ALL: &'static [Self] = &[$($name::$variant,)+];
            fn index(self) -> usize {
                self as usize
            }
            fn reason(self) -> &'static str {
                match self { $($name::$variant => $reason,)+ }
            }
        }
    };
}
pub(crate) use timers;

/// Up to this many timers per machine.
const MAX_TIMERS: usize = 12;

/// One optional deadline per timer of `T`.
#[derive(Debug, Clone)]
pub(crate) struct Timers<T: TimerKind> {
    deadlines: [Option<Instant>; MAX_TIMERS],
    _kind: std::marker::PhantomData<T>,
}

impl<T: TimerKind> Default for Timers<T> {
    fn default() -> Self {
        debug_assert!(T::ALL.len() <= MAX_TIMERS);
        Self {
            deadlines: [None; MAX_TIMERS],
            _kind: std::marker::PhantomData,
        }
    }
}

impl<T: TimerKind> Timers<T> {
    /// Arms (or re-arms) `timer` for `at`.
    pub fn set(&mut self, timer: T, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }
    /// Disarms `timer`.
    pub fn stop(&mut self, timer: T) {
        self.deadlines[timer.index()] = None;
    }
    /// Whether `timer` is armed.
    pub fn is_armed(&self, timer: T) -> bool {
        self.deadlines[timer.index()].is_some()
    }
    /// Disarms every timer.
    pub fn clear(&mut self) {
        self.deadlines = [None; MAX_TIMERS];
    }
    /// The timers due at `now`, in index order, disarmed as they are returned.
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        let mut due = Vec::new();
        for &t in T::ALL {
            let d = &mut self.deadlines[t.index()];
            if d.is_some_and(|at| at <= now) {
                *d = None;
                due.push(t);
            }
        }
        due
    }
    /// The earliest armed timer, with its reason (the lowest index wins a tie).
    pub fn next(&self) -> Option<Deadline> {
        let mut best: Option<Deadline> = None;
        for &t in T::ALL {
            if let Some(at) = self.deadlines[t.index()] {
                if best.is_none_or(|b| at < b.at) {
                    best = Some(Deadline {
                        at,
                        reason: t.reason(),
                    });
                }
            }
        }
        best
    }
}

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    timers! {
        enum T {
            A => "a",
            B => "b",
        }
    }

    #[test]
    fn earliest_wins_and_expired_timers_are_cleared() {
        let t0 = crate::test_epoch();
        let mut t: Timers<T> = Timers::default();
        assert_eq!(t.next(), None);
        t.set(T::B, t0 + Duration::from_millis(5));
        t.set(T::A, t0 + Duration::from_millis(10));
        assert_eq!(t.next().map(|d| d.reason), Some("b"));
        assert_eq!(t.expire(t0 + Duration::from_millis(5)), vec![T::B]);
        assert_eq!(
            t.next().map(|d| (d.at, d.reason)),
            Some((t0 + Duration::from_millis(10), "a"))
        );
        t.stop(T::A);
        assert_eq!(t.next(), None);
    }
}
