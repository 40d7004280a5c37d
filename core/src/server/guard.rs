//! The server's defences: stateless cookies (return routability) and per-source-IP token buckets in a map
//! whose size is bounded. See docs/SECURITY.md, "Server: amplification, spoofing and quotas".
use super::keyed::Keyed;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hashbrown::HashTable;
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
    /// HMAC-SHA256 keyed with the secret, cloned for each cookie (the key schedule is done once).
    keyed: Hmac<Sha256>,
    epoch: Instant,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookies { .. }")
    }
}

impl Cookies {
    pub fn new(secret: [u8; 32], epoch: Instant) -> Self {
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&secret).expect("any key length");
        Cookies { keyed, epoch }
    }

    fn bucket(&self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        (secs / COOKIE_BUCKET.as_secs()) as u32
    }

    fn mac(&self, bucket: u32, addr: SocketAddr) -> [u8; 8] {
        let mut mac = self.keyed.clone();
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
    pub fn issue(&self, now: Instant, addr: SocketAddr) -> [u8; COOKIE_LEN] {
        let bucket = self.bucket(now);
        let mut c = [0; COOKIE_LEN];
        c[..4].copy_from_slice(&bucket.to_be_bytes());
        c[4..].copy_from_slice(&self.mac(bucket, addr));
        c
    }

    /// Whether `cookie` was issued to `addr` in the current or the previous bucket.
    #[cfg(test)]
    pub fn verify(&self, now: Instant, addr: SocketAddr, cookie: &[u8]) -> bool {
        self.check(now, addr, cookie).is_some()
    }

    /// [`Cookies::verify`], and the fresh cookie for `addr`: when `cookie` is valid and of the current bucket,
    /// it is that same cookie (the same bucket and address give the same bytes), so no second HMAC is
    /// computed; when it is valid and of the previous bucket, a new one is issued. `None`: not valid.
    pub fn check(&self, now: Instant, addr: SocketAddr, cookie: &[u8]) -> Option<[u8; COOKIE_LEN]> {
        let cookie: &[u8; COOKIE_LEN] = cookie.try_into().ok()?;
        let bucket = u32::from_be_bytes([cookie[0], cookie[1], cookie[2], cookie[3]]);
        let current = self.bucket(now);
        if bucket != current && bucket.checked_add(1) != Some(current) {
            return None;
        }
        let want = self.mac(bucket, addr);
        // Constant time: fold the differences.
        let same = want
            .iter()
            .zip(&cookie[4..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if !same {
            return None;
        }
        Some(if bucket == current {
            *cookie
        } else {
            self.issue(now, addr)
        })
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

const BINDING: usize = 0;
const REGISTER: usize = 1;
const RELAY_PACKETS: usize = 2;
const RELAY_BYTES: usize = 3;

/// A token bucket kept as one number (GCRA): the instant, in nanoseconds since the table's epoch, at which it
/// is full again. Tokens at `now` = `burst - (tat - now) x rate`; taking `cost` tokens moves `tat` by
/// `cost / rate`. With rate 0 the number is the tokens used instead (they never come back).
pub(super) fn take(tat: &mut u64, rate: Rate, now: u64, cost: u64) -> bool {
    if rate.per_second == 0 {
        let used = tat.saturating_add(cost);
        let ok = used <= u64::from(rate.burst);
        if ok {
            *tat = used;
        }
        return ok;
    }
    let ns = |tokens: u64| -> u128 {
        (u128::from(tokens) * 1_000_000_000).div_ceil(u128::from(rate.per_second))
    };
    let next = u128::from((*tat).max(now)) + ns(cost);
    let ok = next <= u128::from(now) + ns(u64::from(rate.burst));
    if ok {
        *tat = next.min(u128::from(u64::MAX)) as u64;
    }
    ok
}

/// What the server remembers about one source IP: 4 (IPv4) or 16 (IPv6) key bytes, four token buckets, when
/// it was last seen and its member count (48 bytes for IPv4).
#[derive(Debug, Clone)]
struct Entry<K> {
    key: K,
    tat: [u64; 4],
    /// Last seen, nanoseconds since the epoch; in a free slot, the next free slot.
    last_used: u64,
    /// Members registered from this IP; `u32::MAX` marks a free slot.
    members: u32,
}

const FREE: u32 = u32::MAX;

/// Entries for one address family: a slab grown by an eighth at a time and a hash index of slots.
#[derive(Debug)]
struct Family<K> {
    slots: Vec<Entry<K>>,
    free: u64,
    index: HashTable<u32>,
}

/// A per-IP table key, hashed as one integer (see [`Keyed::ip4`]).
trait IpKey: Copy + Eq {
    fn hash_with(&self, h: &Keyed) -> u64;
}

impl IpKey for [u8; 4] {
    fn hash_with(&self, h: &Keyed) -> u64 {
        h.ip4(*self)
    }
}

impl IpKey for [u8; 16] {
    fn hash_with(&self, h: &Keyed) -> u64 {
        h.ip6(*self)
    }
}

impl<K: IpKey> Family<K> {
    fn new(reserve: usize) -> Self {
        Family {
            slots: Vec::with_capacity(reserve),
            free: u64::MAX,
            index: HashTable::with_capacity(reserve),
        }
    }

    fn find(&self, h: &Keyed, key: K) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(key.hash_with(h), |&i| slots[i as usize].key == key)
            .copied()
    }

    fn insert(&mut self, h: &Keyed, key: K, now: u64) -> u32 {
        let e = Entry {
            key,
            tat: [0; 4],
            last_used: now,
            members: 0,
        };
        let slot = if self.free != u64::MAX {
            let s = self.free as u32;
            self.free = self.slots[s as usize].last_used;
            self.slots[s as usize] = e;
            s
        } else {
            if self.slots.len() == self.slots.capacity() {
                let more = (self.slots.len() / 8).max(16);
                self.slots.reserve_exact(more);
            }
            self.slots.push(e);
            (self.slots.len() - 1) as u32
        };
        let slots = &self.slots;
        self.index.insert_unique(key.hash_with(h), slot, |&i| {
            slots[i as usize].key.hash_with(h)
        });
        slot
    }

    fn remove(&mut self, h: &Keyed, slot: u32) {
        let key = self.slots[slot as usize].key;
        if let Ok(e) = self.index.find_entry(key.hash_with(h), |&i| i == slot) {
            e.remove();
        }
        let e = &mut self.slots[slot as usize];
        e.members = FREE;
        e.last_used = self.free;
        self.free = u64::from(slot);
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Entry<K>>() + self.index.allocation_size()
    }
}

/// Per-source-IP state, at most `cap` entries: when full, the least recently seen entries without members are
/// forgotten, `cap / 2` of them at once (one pass over the table per `cap / 2` new IPs: amortised). Entries
/// with members are kept; there are at most [`super::ServerConfig::max_members`] of them and the server makes
/// `cap` at least twice that, so a pass always frees half the table. Memory is bounded by `cap` x (48 bytes
/// for IPv4, 64 for IPv6, plus 5 to 10 bytes of index) under any flood, spoofed sources included.
#[derive(Debug)]
pub(super) struct IpTable {
    v4: Family<[u8; 4]>,
    v6: Family<[u8; 16]>,
    hasher: Keyed,
    cap: usize,
    rates: Rates,
    epoch: Instant,
    /// The entry found or made last (a Register looks its IP up three times: rate, member cap, count);
    /// forgotten when an eviction pass removes entries (slots do not move otherwise).
    last: Option<(IpAddr, Slot)>,
}

/// Where an entry is.
#[derive(Debug, Clone, Copy)]
enum Slot {
    V4(u32),
    V6(u32),
}

impl IpTable {
    /// At most `cap` entries; room for `reserve` IPv4 ones made now (the server's `max_members`, at most
    /// `cap`: the entries of a server full of members that each have their own IP).
    pub fn new(rates: Rates, cap: usize, reserve: usize, epoch: Instant, hasher: Keyed) -> Self {
        IpTable {
            v4: Family::new(reserve.min(cap)),
            v6: Family::new(0),
            hasher,
            cap: cap.max(2),
            rates,
            epoch,
            last: None,
        }
    }

    pub fn len(&self) -> usize {
        self.v4.index.len() + self.v6.index.len()
    }

    /// Heap bytes held: both slabs and both indexes.
    pub fn heap_bytes(&self) -> usize {
        self.v4.heap_bytes() + self.v6.heap_bytes()
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch)
            .as_nanos()
            .min(u128::from(u64::MAX - 1)) as u64
    }

    fn find(&self, ip: IpAddr) -> Option<Slot> {
        if let Some((last, slot)) = self.last {
            if last == ip {
                return Some(slot);
            }
        }
        match ip {
            IpAddr::V4(a) => self.v4.find(&self.hasher, a.octets()).map(Slot::V4),
            IpAddr::V6(a) => self.v6.find(&self.hasher, a.octets()).map(Slot::V6),
        }
    }

    fn get(&mut self, slot: Slot) -> (&mut [u64; 4], &mut u64, &mut u32) {
        match slot {
            Slot::V4(i) => {
                let e = &mut self.v4.slots[i as usize];
                (&mut e.tat, &mut e.last_used, &mut e.members)
            }
            Slot::V6(i) => {
                let e = &mut self.v6.slots[i as usize];
                (&mut e.tat, &mut e.last_used, &mut e.members)
            }
        }
    }

    fn entry(&mut self, now: u64, ip: IpAddr) -> Slot {
        let slot = match self.find(ip) {
            Some(s) => s,
            None => {
                if self.len() >= self.cap {
                    self.evict();
                }
                match ip {
                    IpAddr::V4(a) => Slot::V4(self.v4.insert(&self.hasher, a.octets(), now)),
                    IpAddr::V6(a) => Slot::V6(self.v6.insert(&self.hasher, a.octets(), now)),
                }
            }
        };
        self.last = Some((ip, slot));
        let (_, last, _) = self.get(slot);
        *last = (*last).max(now);
        slot
    }

    /// Forgets the least recently seen half of the entries without members.
    fn evict(&mut self) {
        self.last = None;
        let v4 = self
            .v4
            .slots
            .iter()
            .enumerate()
            .filter(|(_, e)| e.members == 0);
        let v4 = v4.map(|(i, e)| (e.last_used, IpAddr::from(e.key), Slot::V4(i as u32)));
        let v6 = self
            .v6
            .slots
            .iter()
            .enumerate()
            .filter(|(_, e)| e.members == 0);
        let v6 = v6.map(|(i, e)| (e.last_used, IpAddr::from(e.key), Slot::V6(i as u32)));
        let mut idle: Vec<(u64, IpAddr, Slot)> = v4.chain(v6).collect();
        let n = (self.cap / 2).max(1).min(idle.len());
        if n < idle.len() {
            idle.select_nth_unstable_by_key(n, |&(t, ip, _)| (t, ip));
        }
        for &(_, _, slot) in &idle[..n] {
            match slot {
                Slot::V4(i) => self.v4.remove(&self.hasher, i),
                Slot::V6(i) => self.v6.remove(&self.hasher, i),
            }
        }
    }

    /// Charges one datagram from `ip` to `budget`; `false`: over the rate, drop it.
    pub fn allow(&mut self, now: Instant, ip: IpAddr, budget: Budget) -> bool {
        let rates = self.rates;
        let now = self.ns(now);
        let slot = self.entry(now, ip);
        let (tat, _, _) = self.get(slot);
        match budget {
            Budget::Binding => take(&mut tat[BINDING], rates.binding, now, 1),
            Budget::Register => take(&mut tat[REGISTER], rates.register, now, 1),
            Budget::Relay(bytes) => {
                // Check both before taking either.
                let (mut packets, mut octets) = (tat[RELAY_PACKETS], tat[RELAY_BYTES]);
                let ok = take(&mut packets, rates.relay_packets, now, 1)
                    && take(&mut octets, rates.relay_bytes, now, bytes as u64);
                if ok {
                    tat[RELAY_PACKETS] = packets;
                    tat[RELAY_BYTES] = octets;
                }
                ok
            }
        }
    }

    /// Members registered from `ip`.
    pub fn members(&self, ip: IpAddr) -> usize {
        self.find(ip).map_or(0, |s| match s {
            Slot::V4(i) => self.v4.slots[i as usize].members as usize,
            Slot::V6(i) => self.v6.slots[i as usize].members as usize,
        })
    }

    /// One more (`true`) or one fewer member from `ip`.
    pub fn count_member(&mut self, now: Instant, ip: IpAddr, add: bool) {
        let now = self.ns(now);
        let slot = self.entry(now, ip);
        let (_, _, members) = self.get(slot);
        *members = if add {
            members.saturating_add(1).min(FREE - 1)
        } else {
            members.saturating_sub(1)
        };
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
        let mut bad = k;
        bad[11] ^= 1;
        assert!(!c.verify(t0, a, &bad));
        assert!(!c.verify(t0, a, &k[..11]));
    }

    /// The fresh cookie `check` gives is what `issue` gives, whether it reuses the presented one (same bucket)
    /// or computes a new one (previous bucket); an invalid cookie gives none.
    #[test]
    fn check_gives_the_cookie_issue_would() {
        let t0 = crate::test_epoch();
        let c = Cookies::new([7; 32], t0);
        let a: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        let b: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        for who in [a, b] {
            let k = c.issue(t0, who);
            for later in [0, 30, 59, 60, 119] {
                let now = t0 + Duration::from_secs(later);
                assert_eq!(c.check(now, who, &k), Some(c.issue(now, who)), "{later} s");
            }
            assert_eq!(c.check(t0 + Duration::from_secs(120), who, &k), None);
            assert_eq!(
                c.check(t0, a, &c.issue(t0, "198.51.100.1:4001".parse().unwrap())),
                None
            );
        }
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
        let mut t = IpTable::new(rates, 100, 10, t0, Keyed::from_seed(0));
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
