//! One retransmission primitive for every request punch repeats until it is answered: the peer's server
//! transactions, the NAT detector's probes, the server's PeerInfo, and chat frames.
//!
//! A [`Retransmit`] remembers the first and last send, the number of sends and the current RTO, and schedules
//! the next send RFC 5389-style: after a send at `t` the next one is due at `t + rto`, and the RTO then doubles
//! up to [`Backoff::max`]. Sends stop at an optional overall deadline (no send is scheduled at or after it) and
//! after an optional number of sends. The round-trip sample follows Karn's rule ([`Retransmit::rtt_sample`]).
//! Jitter, when a policy asks for it, comes from the caller's injected RNG: this module draws nothing itself.
use std::time::{Duration, Instant};

use rand::Rng;

use crate::timer::after;

/// How a request is repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first send.
    pub initial: Duration,
    /// The RTO doubles up to this.
    pub max: Duration,
    /// At most this many sends in all (`None`: unbounded).
    pub max_sends: Option<u32>,
    /// Each wait is stretched by a random fraction of up to `jitter_permille / 1000` of itself (0: none).
    pub jitter_permille: u16,
}

impl Backoff {
    /// Doubling from `initial` up to `max`, unbounded sends, no jitter.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            max_sends: None,
            jitter_permille: 0,
        }
    }

    /// The same policy with at most `n` sends.
    pub const fn with_max_sends(mut self, n: u32) -> Self {
        self.max_sends = Some(n);
        self
    }
}

/// The retransmission state of one request; see the module docs.
///
/// ```rust
/// use std::time::{Duration, Instant};
/// use punch_core::{Backoff, Retransmit};
///
/// let ms = Duration::from_millis;
/// let t0 = Instant::now();
/// // RTO 100 ms doubling up to 400 ms, at most 4 sends.
/// let mut r = Retransmit::new(Backoff::new(ms(100), ms(400)).with_max_sends(4), t0);
/// let mut sent_at = Vec::new();
/// while let Some(at) = r.next_send() {
///     sent_at.push(at - t0);
///     r.on_send(at); // the driver sends the request here
/// }
/// assert_eq!(sent_at, [ms(0), ms(100), ms(300), ms(700)]);
/// assert_eq!(r.sends(), 4);
/// ```
#[derive(Debug, Clone)]
pub struct Retransmit {
    policy: Backoff,
    first_sent: Option<Instant>,
    last_sent: Option<Instant>,
    sends: u32,
    rto: Duration,
    next: Option<Instant>,
    deadline: Option<Instant>,
}

impl Retransmit {
    /// A request whose first send is due at `first`.
    pub fn new(policy: Backoff, first: Instant) -> Self {
        Retransmit {
            policy,
            first_sent: None,
            last_sent: None,
            sends: 0,
            rto: policy.initial.max(Duration::from_micros(1)),
            next: Some(first),
            deadline: None,
        }
    }

    /// No send is scheduled at or after `deadline`.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// When the next send is due; `None` once no further send is allowed.
    pub fn next_send(&self) -> Option<Instant> {
        self.next
    }

    /// A send is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.next.is_some_and(|t| t <= now)
    }

    /// The overall deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Sends so far.
    pub fn sends(&self) -> u32 {
        self.sends
    }

    /// When the last send happened.
    pub fn last_sent(&self) -> Option<Instant> {
        self.last_sent
    }

    /// Records a send at `now` and schedules the next one (see the module docs).
    pub fn on_send(&mut self, now: Instant) {
        self.record(now, Duration::ZERO);
    }

    /// [`Retransmit::on_send`] with the policy's jitter drawn from `rng`.
    pub fn on_send_jittered(&mut self, now: Instant, rng: &mut impl Rng) {
        let extra = if self.policy.jitter_permille == 0 {
            Duration::ZERO
        } else {
            let permille = rng.gen_range(0..=u32::from(self.policy.jitter_permille));
            self.rto * permille / 1000
        };
        self.record(now, extra);
    }

    fn record(&mut self, now: Instant, extra: Duration) {
        self.sends = self.sends.saturating_add(1);
        self.first_sent.get_or_insert(now);
        self.last_sent = Some(now);
        let next = after(now, self.rto + extra);
        self.rto = self
            .rto
            .saturating_mul(2)
            .min(self.policy.max.max(self.rto));
        let exhausted = self.policy.max_sends.is_some_and(|m| self.sends >= m);
        let too_late = self.deadline.is_some_and(|d| next >= d);
        self.next = (!exhausted && !too_late).then_some(next);
    }

    /// Starts over on a new path: the next send is due at `now`, with the RTO back at `initial`.
    pub fn restart(&mut self, now: Instant, initial: Duration) {
        self.rto = initial.max(Duration::from_micros(1));
        self.next = Some(now);
    }

    /// The round trip measured by an answer at `now`, and whether it is exact. After one send it is exact.
    /// After a retransmission the answer is ambiguous (Karn): the time since the *last* send is a lower bound
    /// that is right whenever the last copy was the one answered, which is what a lost first copy means.
    pub fn rtt_sample(&self, now: Instant) -> Option<(Duration, bool)> {
        let exact = self.sends == 1;
        let from = if exact {
            self.first_sent?
        } else {
            self.last_sent?
        };
        Some((now.saturating_duration_since(from), exact))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_the_cap_and_stops_at_the_deadline() {
        let t0 = crate::test_epoch();
        let mut r =
            Retransmit::new(Backoff::new(ms(100), ms(300)), t0).with_deadline(t0 + ms(1000));
        assert!(r.is_due(t0));
        let mut sends = Vec::new();
        while let Some(at) = r.next_send() {
            sends.push(at.duration_since(t0).as_millis());
            r.on_send(at);
        }
        // Waits 100, 200, 300 (capped), 300: the send after 900 would be at 1200, past the deadline.
        assert_eq!(sends, vec![0, 100, 300, 600, 900]);
        assert_eq!(r.sends(), 5);
    }

    #[test]
    fn max_sends_and_karn() {
        let t0 = crate::test_epoch();
        let mut r = Retransmit::new(Backoff::new(ms(50), ms(1000)).with_max_sends(2), t0);
        r.on_send(t0);
        assert_eq!(r.rtt_sample(t0 + ms(30)), Some((ms(30), true)));
        r.on_send(t0 + ms(50));
        assert_eq!(r.next_send(), None);
        // Ambiguous after a retransmission: measured from the last send.
        assert_eq!(r.rtt_sample(t0 + ms(80)), Some((ms(30), false)));
        r.restart(t0 + ms(90), ms(20));
        assert!(r.is_due(t0 + ms(90)));
    }

    #[test]
    fn jitter_comes_from_the_callers_rng_and_stays_in_bounds() {
        use rand::SeedableRng;
        let t0 = crate::test_epoch();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut policy = Backoff::new(ms(100), ms(100));
        policy.jitter_permille = 500;
        let mut r = Retransmit::new(policy, t0);
        r.on_send_jittered(t0, &mut rng);
        let wait = r.next_send().unwrap().duration_since(t0);
        assert!(wait >= ms(100) && wait <= ms(150), "{wait:?}");
    }
}
