//! Virtual time.
//!
//! The simulator never reads the wall clock. It takes ONE base [`Instant`] when a world is created and
//! expresses every moment as a [`Duration`] since that base ("virtual time"). Machines under test see
//! `base + elapsed`; traces print `elapsed` in milliseconds, so they are identical from run to run.
use std::time::{Duration, Instant};

/// The single place the simulator touches the real clock: a base instant for a new world.
///
/// Only the *identity* of this instant is used (everything is an offset from it), so its value never
/// influences a simulation's outcome or its trace.
#[allow(clippy::disallowed_methods)]
pub fn base_instant() -> Instant {
    Instant::now()
}

/// A virtual clock: a base instant plus how far the simulation has advanced.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    elapsed: Duration,
}

impl Clock {
    /// A clock at `base`, nothing elapsed yet.
    pub fn new(base: Instant) -> Clock {
        Clock {
            base,
            elapsed: Duration::ZERO,
        }
    }
    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
    /// Virtual time as the `Instant` machines see.
    pub fn instant(&self) -> Instant {
        self.at(self.elapsed)
    }
    /// The `Instant` for a virtual time.
    pub fn at(&self, elapsed: Duration) -> Instant {
        self.base + elapsed
    }
    /// The virtual time of an `Instant` (instants before the base map to zero).
    pub fn since_base(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.base)
    }
    /// Move forward to `t`; never backwards.
    pub fn advance_to(&mut self, t: Duration) {
        self.elapsed = self.elapsed.max(t);
    }
}

/// Virtual times print as milliseconds with microsecond precision (`12.500ms`): core's formatter.
pub use punch_core::Ms;

/// Milliseconds as a [`Duration`], for readable scenario code: `ms(250)`.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Seconds as a [`Duration`]: `secs(30)`.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
