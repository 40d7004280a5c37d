//! Links: what happens to a datagram between a box and the network it is attached to.
//!
//! Every host and every NAT has one link to the network above it (its "uplink"); a datagram crosses it on
//! the way up and, at the receiving end, the receiver's link on the way down. So a datagram from host `a`
//! behind `nat-a` to host `b` behind `nat-b` crosses four links: a up, nat-a up, nat-b down, b down. Each
//! crossing can lose, delay, jitter, reorder or duplicate it, drawing from the link's own seeded generator.
use crate::rng::chance;
use rand::rngs::SmallRng;
use rand::Rng;
use std::time::Duration;

/// Properties of a link, applied independently in each direction and to each datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` per datagram (this alone reorders datagrams sent
    /// closer together than the jitter).
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice (the copy gets its own jitter).
    pub duplicate: f64,
    /// Probability that a datagram is held back by `reorder_delay` (so later ones overtake it).
    pub reorder: f64,
    /// How long a datagram chosen by `reorder` is held back.
    pub reorder_delay: Duration,
    /// Windows `[from, until)` of virtual time during which the link is down (everything is dropped).
    pub down: Vec<(Duration, Duration)>,
    /// Scripted loss: the datagrams entering the link upwards (sent by its element) with these indices,
    /// counted from 0, are lost whatever `loss` says. For tests that need one particular datagram lost.
    pub lose_up: Vec<u64>,
    /// The same for datagrams entering the link downwards (arriving at its element).
    pub lose_down: Vec<u64>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig::ideal()
    }
}

impl LinkConfig {
    /// No delay, no loss.
    pub fn ideal() -> LinkConfig {
        LinkConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            down: Vec::new(),
            lose_up: Vec::new(),
            lose_down: Vec::new(),
        }
    }
    /// A link with one-way `latency`.
    pub fn latency(latency: Duration) -> LinkConfig {
        LinkConfig {
            latency,
            ..LinkConfig::ideal()
        }
    }
    /// This link with per-datagram jitter drawn from `[0, jitter]`.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }
    /// This link with loss probability `loss` (0 to 1).
    pub fn with_loss(mut self, loss: f64) -> Self {
        self.loss = loss;
        self
    }
    /// This link with duplication probability `p` (0 to 1).
    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }
    /// This link holding back a datagram with probability `p` by `delay`, so later ones overtake it.
    pub fn with_reorder(mut self, p: f64, delay: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = delay;
        self
    }
    /// The link is down from `from` until `until` (virtual time), then comes back.
    pub fn down_between(mut self, from: Duration, until: Duration) -> Self {
        self.down.push((from, until));
        self
    }
    /// Loses the `up`-th datagrams sent over the link and the `down`-th ones arriving over it (indices from
    /// 0, see [`LinkConfig::lose_up`]).
    pub fn losing(mut self, up: &[u64], down: &[u64]) -> Self {
        self.lose_up.extend_from_slice(up);
        self.lose_down.extend_from_slice(down);
        self
    }
}

/// What a link crossing does to one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Crossing {
    /// Arrives after the first delay, and a second copy after the second one when the link duplicated it.
    Deliver(Duration, Option<Duration>),
    /// Lost, with the reason for the trace.
    Drop(&'static str),
}

/// A link with its own random stream.
#[derive(Debug, Clone)]
pub struct Link {
    /// Its properties, in both directions.
    pub config: LinkConfig,
    rng: SmallRng,
    /// Datagrams that entered the link so far, upwards and downwards (for scripted loss).
    entered: [u64; 2],
}

impl Link {
    /// A link with `config`, drawing its losses, jitter, duplicates and reordering from `rng`.
    pub fn new(config: LinkConfig, rng: SmallRng) -> Link {
        Link {
            config,
            rng,
            entered: [0; 2],
        }
    }

    fn delay(&mut self) -> Duration {
        let c = &self.config;
        let mut d = c.latency;
        if !c.jitter.is_zero() {
            let j = self.rng.gen_range(0..=c.jitter.as_micros() as u64);
            d += Duration::from_micros(j);
        }
        if c.reorder > 0.0 && chance(&mut self.rng, c.reorder) {
            d += self.config.reorder_delay;
        }
        d
    }

    /// Decides the fate of one datagram entering the link at virtual time `now`, upwards (sent by the
    /// link's element) or not (arriving at it).
    pub fn cross(&mut self, now: Duration, up: bool) -> Crossing {
        let (index, scripted) = if up {
            (&mut self.entered[0], &self.config.lose_up)
        } else {
            (&mut self.entered[1], &self.config.lose_down)
        };
        let lost = scripted.contains(index);
        *index += 1;
        if self
            .config
            .down
            .iter()
            .any(|&(from, until)| now >= from && now < until)
        {
            return Crossing::Drop("link down");
        }
        if lost {
            return Crossing::Drop("scripted loss");
        }
        if self.config.loss > 0.0 && chance(&mut self.rng, self.config.loss) {
            return Crossing::Drop("link loss");
        }
        let first = self.delay();
        let copy = if self.config.duplicate > 0.0 && chance(&mut self.rng, self.config.duplicate) {
            Some(self.delay())
        } else {
            None
        };
        Crossing::Deliver(first, copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive_rng;

    #[test]
    fn down_window_drops_then_recovers() {
        let cfg = LinkConfig::latency(Duration::from_millis(10))
            .down_between(Duration::from_secs(1), Duration::from_secs(2));
        let mut l = Link::new(cfg, derive_rng(1, "l"));
        assert_eq!(
            l.cross(Duration::from_millis(500), true),
            Crossing::Deliver(Duration::from_millis(10), None)
        );
        assert_eq!(
            l.cross(Duration::from_millis(1500), true),
            Crossing::Drop("link down")
        );
        assert_eq!(
            l.cross(Duration::from_millis(2000), true),
            Crossing::Deliver(Duration::from_millis(10), None)
        );
    }

    #[test]
    fn scripted_loss_counts_each_direction() {
        let mut l = Link::new(
            LinkConfig::ideal().losing(&[1], &[0, 2]),
            derive_rng(1, "l"),
        );
        let lost = |c: Crossing| c == Crossing::Drop("scripted loss");
        let got: Vec<bool> = [true, false, true, false, false, true]
            .into_iter()
            .map(|up| lost(l.cross(Duration::ZERO, up)))
            .collect();
        assert_eq!(got, [false, true, true, false, true, false]);
    }

    #[test]
    fn loss_rate_is_roughly_right() {
        let mut l = Link::new(LinkConfig::ideal().with_loss(0.2), derive_rng(7, "l"));
        let lost = (0..10_000)
            .filter(|_| matches!(l.cross(Duration::ZERO, true), Crossing::Drop(_)))
            .count();
        assert!((1800..2200).contains(&lost), "{lost}");
    }

    #[test]
    fn jitter_stays_in_range_and_duplicates_happen() {
        let cfg = LinkConfig::latency(Duration::from_millis(10))
            .with_jitter(Duration::from_millis(5))
            .with_duplicate(0.5);
        let mut l = Link::new(cfg, derive_rng(3, "l"));
        let mut dups = 0;
        for _ in 0..1000 {
            match l.cross(Duration::ZERO, true) {
                Crossing::Deliver(first, copy) => {
                    dups += usize::from(copy.is_some());
                    for x in std::iter::once(first).chain(copy) {
                        assert!(x >= Duration::from_millis(10) && x <= Duration::from_millis(15));
                    }
                }
                Crossing::Drop(r) => panic!("{r}"),
            }
        }
        assert!((400..600).contains(&dups), "{dups}");
    }
}
