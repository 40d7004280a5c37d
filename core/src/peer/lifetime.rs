//! How often an idle direct path needs a keepalive, learnt from the path itself.
//!
//! A NAT forgets an idle UDP mapping after a lifetime nobody announces: 30 s for an unreplied Linux conntrack
//! entry, 120 s once replies were seen, 20 to 30 s on some carrier NATs, minutes on others. A keepalive
//! interval safe for the shortest wastes packets on all the others, so the interval backs off while the
//! path survives and settles when it stops surviving (RFC 5780 §4.6 measures the same lifetime with a second
//! socket; punch measures it on the path it keeps open, with no extra socket and no extra packet):
//!
//! * it starts at [`PeerConfig::path_keepalive`](super::PeerConfig::path_keepalive), the documented safe
//!   default;
//! * each time the path answers a keepalive sent after a whole interval of silence, the mappings on both
//!   sides are known to live at least that long, and the interval grows by half, up to
//!   [`PeerConfig::path_keepalive_max`](super::PeerConfig::path_keepalive_max);
//! * when the path is found dead after a silence longer than any it survived, the lifetime lies between the
//!   two: the interval drops back to the longest survived silence (half the fatal one if none was
//!   survived yet) and stops growing. A path lost after a silence it already survived says nothing about
//!   the lifetime (a flush, a reboot, an outage) and changes nothing.
//!
//! A growth step that overshoots costs one path loss: the chat moves to the relay within a few round trips
//! (the liveness check) and a new punch round brings the path back. Where a new round is expensive
//! (birthday probing: hundreds of sockets and probes) the agent does not let the interval grow.
use std::time::Duration;

/// The shortest interval ever used, however short a NAT's lifetime looks.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The learnt keepalive interval of one direct path; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MappingLifetime {
    interval: Duration,
    max: Duration,
    /// The longest silence the path survived.
    survived: Duration,
    /// The shortest silence after which it was found dead (always above `survived`).
    fatal: Option<Duration>,
}

impl MappingLifetime {
    /// Starts at `initial`, grows up to `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let interval = initial.max(MIN_INTERVAL);
        MappingLifetime {
            interval,
            max: max.max(interval),
            survived: Duration::ZERO,
            fatal: None,
        }
    }

    /// The current keepalive interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The longest silence the path survived.
    pub fn proven(&self) -> Duration {
        self.survived
    }

    /// The path answered after `silence` without a word from it; `grow`: whether the interval may grow.
    pub fn survived(&mut self, silence: Duration, grow: bool) {
        if silence > self.survived {
            self.survived = silence;
        }
        // Half again the longest silence survived: a silence of a whole interval (two thirds of it: the leader
        // measures from the last pong, a round trip after its last ping) grows it, shorter ones (a busy path)
        // do not, and the same proof seen twice (the leader's pong, the follower's ping) grows it once.
        if grow && self.fatal.is_none() {
            let next = (self.survived * 3 / 2).min(self.max);
            self.interval = self.interval.max(next);
        }
    }

    /// The path was found dead after `silence`.
    pub fn lost(&mut self, silence: Duration) {
        if silence <= self.survived || silence * 3 < self.interval * 2 {
            // It lived that long before, or it died mid-conversation (a flush, a reboot, an outage): not
            // the mapping's lifetime. Only an idle interval's keepalive finding it dead says something.
            return;
        }
        self.fatal = Some(self.fatal.map_or(silence, |f| f.min(silence)));
        let settle = if self.survived.is_zero() {
            silence / 2
        } else {
            self.survived
        };
        self.interval = settle.clamp(MIN_INTERVAL, self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn backs_off_by_half_while_the_path_survives_whole_intervals() {
        let mut l = MappingLifetime::new(s(5), s(120));
        let mut seen = vec![l.interval()];
        for _ in 0..12 {
            l.survived(l.interval(), true);
            seen.push(l.interval());
        }
        assert_eq!(
            seen[..4],
            [
                s(5),
                Duration::from_millis(7_500),
                Duration::from_millis(11_250),
                Duration::from_millis(16_875)
            ]
        );
        assert_eq!(l.interval(), s(120), "capped at the maximum");
    }

    #[test]
    fn busy_paths_and_birthday_paths_do_not_grow() {
        let mut l = MappingLifetime::new(s(5), s(120));
        l.survived(s(1), true); // traffic a second ago: says nothing about 5 s
        assert_eq!(l.interval(), s(5));
        l.survived(s(5), false);
        assert_eq!(l.interval(), s(5));
    }

    #[test]
    fn a_death_after_a_longer_silence_settles_on_the_longest_survived() {
        let mut l = MappingLifetime::new(s(5), s(120));
        for _ in 0..4 {
            l.survived(l.interval(), true);
        }
        // 5, 7.5, 11.25 and 16.875 s survived; 25.3 s of silence is fatal (a 20 s conntrack timeout).
        assert_eq!(l.interval(), Duration::from_micros(25_312_500));
        l.lost(l.interval());
        assert_eq!(l.interval(), Duration::from_millis(16_875));
        // It stays there.
        l.survived(l.interval(), true);
        assert_eq!(l.interval(), Duration::from_millis(16_875));
    }

    #[test]
    fn a_death_after_a_survived_silence_changes_nothing() {
        let mut l = MappingLifetime::new(s(5), s(120));
        l.survived(s(5), true);
        l.lost(s(4)); // a flush or an outage, not the lifetime
        assert_eq!(l.interval(), Duration::from_millis(7_500));
        l.survived(l.interval(), true);
        assert_eq!(l.interval(), Duration::from_millis(11_250));
    }

    #[test]
    fn a_death_mid_conversation_changes_nothing() {
        let mut l = MappingLifetime::new(s(5), s(120));
        l.lost(s(1)); // a flush a second after the last word: not a lifetime
        assert_eq!(l.interval(), s(5));
        l.survived(s(5), true);
        assert_eq!(l.interval(), Duration::from_millis(7_500));
    }

    #[test]
    fn a_nat_shorter_than_the_default_halves_the_interval_down_to_a_second() {
        let mut l = MappingLifetime::new(s(5), s(120));
        l.lost(s(5));
        assert_eq!(l.interval(), Duration::from_millis(2_500));
        l.lost(Duration::from_millis(2_500));
        assert_eq!(l.interval(), Duration::from_millis(1_250));
        l.lost(Duration::from_millis(1_250));
        assert_eq!(l.interval(), MIN_INTERVAL);
    }
}
