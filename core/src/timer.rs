//! Enum-indexed timers (the quinn-proto pattern): one optional deadline per kind, the earliest wins.
use std::time::{Duration, Instant};

/// A fixed set of named deadlines, indexed by a small enum converted to `usize`.
#[derive(Debug, Clone)]
pub(crate) struct Timers<const N: usize> {
    deadlines: [Option<Instant>; N],
}

impl<const N: usize> Default for Timers<N> {
    fn default() -> Self {
        Self {
            deadlines: [None; N],
        }
    }
}

impl<const N: usize> Timers<N> {
    pub fn set(&mut self, index: usize, at: Instant) {
        self.deadlines[index] = Some(at);
    }
    pub fn stop(&mut self, index: usize) {
        self.deadlines[index] = None;
    }
    /// Deadlines that are due at `now`, cleared as they are returned.
    pub fn expire(&mut self, now: Instant) -> impl Iterator<Item = usize> + '_ {
        self.deadlines
            .iter_mut()
            .enumerate()
            .filter_map(move |(i, d)| match d {
                Some(t) if *t <= now => {
                    *d = None;
                    Some(i)
                }
                _ => None,
            })
    }
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}
