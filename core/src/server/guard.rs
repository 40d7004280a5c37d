//! The server's defences: stateless cookies (return routability) and per-source-IP token buckets in a map
//! whose size is bounded. See docs/SECURITY.md, "Server: amplification, spoofing and quotas".
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::types::Rate;

/// A cookie is valid in the time bucket it was issued in and the next one: 60..120 s.
pub const COOKIE_BUCKET: Duration = Duration::from_secs(60);
/// Bytes of a cookie: a 4-byte time bucket and 8 bytes of HMAC-SHA256.
pub const COOKIE_LEN: usize = 12;

/// Issues and checks cookies: `bucket (u32 BE) ‖ HMAC-SHA256(secret, bucket ‖ IP ‖ port)[..8]`.
#[derive(Clone)]
pub(super) struct Cookies {
    secret: [u8; 32],
    epoch: Instant,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookies { .. }")
    }
}

impl Cookies {
    pub fn new(secret: [u8; 32], epoch: Instant) -> Self {
        Cookies { secret, epoch }
    }

    fn bucket(&self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        (secs / COOKIE_BUCKET.as_secs()) as u32
    }

    fn mac(&self, bucket: u32, addr: SocketAddr) -> [u8; 8] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("any key length");
        mac.update(&bucket.to_be_bytes());
        match addr.ip() {
            IpAddr::V4(ip) => {
                mac.update(&[4]);
                mac.update(&ip.octets());
            }
            IpAddr::V6(ip) => {
                mac.update(&[6]);
                mac.update(&ip.octets());
            }
        }
        mac.update(&addr.port().to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0; 8];
        out.copy_from_slice(&full[..8]);
        out
    }

    /// A fresh cookie for `addr`.
    pub fn issue(&self, now: Instant, addr: SocketAddr) -> Vec<u8> {
        let bucket = self.bucket(now);
        let mut c = bucket.to_be_bytes().to_vec();
        c.extend_from_slice(&self.mac(bucket, addr));
        c
    }

    /// Whether `cookie` was issued to `addr` in the current or the previous bucket.
    pub fn verify(&self, now: Instant, addr: SocketAddr, cookie: &[u8]) -> bool {
        if cookie.len() != COOKIE_LEN {
            return false;
        }
        let bucket = u32::from_be_bytes([cookie[0], cookie[1], cookie[2], cookie[3]]);
        let current = self.bucket(now);
        if bucket != current && bucket.checked_add(1) != Some(current) {
            return false;
        }
        let want = self.mac(bucket, addr);
        // Constant time: fold the differences.
        want.iter()
            .zip(&cookie[4..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// A token bucket: `rate.per_second` tokens a second, at most `rate.burst`.
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: Rate, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(rate.burst),
            last: now,
        }
    }

    /// Takes `cost` tokens if there are that many.
    fn take(&mut self, rate: Rate, now: Instant, cost: f64) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * f64::from(rate.per_second)).min(f64::from(rate.burst));
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// Which budget a datagram is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Budget {
    /// RFC 5389 / RFC 3489 Binding requests.
    Binding,
    /// Register requests (with or without a valid cookie).
    Register,
    /// Relay indications: one packet and this many bytes.
    Relay(usize),
}

/// The rates, from [`super::ServerConfig`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Rates {
    pub binding: Rate,
    pub register: Rate,
    pub relay_packets: Rate,
    pub relay_bytes: Rate,
}

/// What the server remembers about one source IP.
#[derive(Debug, Clone)]
pub(super) struct IpState {
    binding: Bucket,
    register: Bucket,
    relay_packets: Bucket,
    relay_bytes: Bucket,
    /// Members registered from this IP.
    pub members: usize,
    last_used: Instant,
}

/// Per-source-IP state, at most `cap` entries: when full, the least recently used entries without members
/// are forgotten (half of the table at once, so the cost is amortised). Entries with members are kept; there
/// are at most [`super::ServerConfig::max_members`] of them and `cap` is larger.
#[derive(Debug)]
pub(super) struct IpTable {
    map: BTreeMap<IpAddr, IpState>,
    cap: usize,
    rates: Rates,
}

impl IpTable {
    pub fn new(rates: Rates, cap: usize) -> Self {
        IpTable {
            map: BTreeMap::new(),
            cap: cap.max(2),
            rates,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn entry(&mut self, now: Instant, ip: IpAddr) -> &mut IpState {
        if !self.map.contains_key(&ip) && self.map.len() >= self.cap {
            self.evict();
        }
        let rates = self.rates;
        let e = self.map.entry(ip).or_insert_with(|| IpState {
            binding: Bucket::new(rates.binding, now),
            register: Bucket::new(rates.register, now),
            relay_packets: Bucket::new(rates.relay_packets, now),
            relay_bytes: Bucket::new(rates.relay_bytes, now),
            members: 0,
            last_used: now,
        });
        e.last_used = e.last_used.max(now);
        e
    }

    fn evict(&mut self) {
        let mut idle: Vec<(Instant, IpAddr)> = self
            .map
            .iter()
            .filter(|(_, s)| s.members == 0)
            .map(|(ip, s)| (s.last_used, *ip))
            .collect();
        idle.sort_unstable();
        let n = (self.cap / 2).max(1).min(idle.len());
        for (_, ip) in &idle[..n] {
            self.map.remove(ip);
        }
    }

    /// Charges one datagram from `ip` to `budget`; `false`: over the rate, drop it.
    pub fn allow(&mut self, now: Instant, ip: IpAddr, budget: Budget) -> bool {
        let rates = self.rates;
        let e = self.entry(now, ip);
        match budget {
            Budget::Binding => e.binding.take(rates.binding, now, 1.0),
            Budget::Register => e.register.take(rates.register, now, 1.0),
            Budget::Relay(bytes) => {
                // Check both before taking either.
                let mut packets = e.relay_packets.clone();
                let mut octets = e.relay_bytes.clone();
                let ok = packets.take(rates.relay_packets, now, 1.0)
                    && octets.take(rates.relay_bytes, now, bytes as f64);
                if ok {
                    e.relay_packets = packets;
                    e.relay_bytes = octets;
                }
                ok
            }
        }
    }

    /// Members registered from `ip`.
    pub fn members(&self, ip: IpAddr) -> usize {
        self.map.get(&ip).map_or(0, |e| e.members)
    }

    /// One more (`true`) or one fewer member from `ip`.
    pub fn count_member(&mut self, now: Instant, ip: IpAddr, add: bool) {
        let e = self.entry(now, ip);
        if add {
            e.members += 1;
        } else {
            e.members = e.members.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_bind_address_and_time() {
        let t0 = crate::test_epoch();
        let c = Cookies::new([7; 32], t0);
        let a: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        let b: SocketAddr = "198.51.100.1:4001".parse().unwrap();
        let k = c.issue(t0, a);
        assert_eq!(k.len(), COOKIE_LEN);
        assert!(c.verify(t0, a, &k));
        assert!(!c.verify(t0, b, &k));
        assert!(c.verify(t0 + Duration::from_secs(119), a, &k));
        assert!(!c.verify(t0 + Duration::from_secs(120), a, &k));
        assert!(!Cookies::new([8; 32], t0).verify(t0, a, &k));
        let mut bad = k.clone();
        bad[11] ^= 1;
        assert!(!c.verify(t0, a, &bad));
        assert!(!c.verify(t0, a, &k[..11]));
    }

    #[test]
    fn buckets_refill_and_the_table_stays_bounded() {
        let t0 = crate::test_epoch();
        let r = Rate::new(10, 20);
        let rates = Rates {
            binding: r,
            register: r,
            relay_packets: r,
            relay_bytes: Rate::new(1000, 1000),
        };
        let mut t = IpTable::new(rates, 100);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let n = (0..100)
            .filter(|_| t.allow(t0, ip, Budget::Binding))
            .count();
        assert_eq!(n, 20);
        assert!(t.allow(t0 + Duration::from_millis(100), ip, Budget::Binding));
        assert!(!t.allow(t0 + Duration::from_millis(100), ip, Budget::Binding));
        assert!(!t.allow(t0, ip, Budget::Relay(1001)));
        t.count_member(t0, ip, true);
        for i in 0..10_000u32 {
            t.allow(t0, IpAddr::from(i.to_be_bytes()), Budget::Binding);
            assert!(t.len() <= 100);
        }
        assert_eq!(t.members(ip), 1, "entries with members are kept");
    }
}
