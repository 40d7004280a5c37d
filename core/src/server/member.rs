//! Compact member records: what the server keeps for each registered client, sized for a million of them
//! (issue 12; docs/BENCHMARKS.md, "Issue 12").
//!
//! * A member is one fixed-size record in a slab (`Vec` grown by an eighth at a time, freed slots reused):
//!   address, last-seen time (nanoseconds since the server's start), RTT (microseconds, what the wire carries),
//!   NAT behaviour, the slot of its partner and a few flags.
//! * Everything else it sent — pool, display name, CLIENT-ID, LINK-KEY, SPAKE2 message and local addresses — is
//!   packed in one exactly-sized byte string (one allocation, no `Vec` per field). Local addresses take 7 bytes
//!   (IPv4) or 19 bytes (IPv6) each instead of 32.
//! * There is no pool record: a pool is its first member (indexed by pool name) and that member's partner.
//!   The pool name is stored once per member, in its packed bytes.
//! * Two hash indexes hold only `u32` slots (5 bytes a bucket): by address, and by pool name for the first
//!   member of each pool. Their hashes are keyed per server (`Keyed`, from the server's seed), so chosen names or ports cannot
//!   make them degenerate; they are never iterated, so the server's behaviour does not depend on the keys.
use super::keyed::Keyed;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use crate::nat::NatBehaviour;
use crate::wire::{ClientIdBytes, LinkKeyBytes};

/// "No slot": a member without a partner, the end of the free list.
pub(super) const NONE: u32 = u32::MAX;

const LIVE: u8 = 1;
const HAS_RTT: u8 = 2;
const INFO_ACKED: u8 = 4;
/// The first member of its pool (the one `Members::by_pool` indexes): kept with the index, so a member's
/// pool is found from its slot without hashing the pool's name.
const FIRST: u8 = 8;

const HAS_TOKEN: u8 = 1;
const HAS_KEY: u8 = 2;
const HAS_PAKE: u8 = 4;

/// One registered client (see the module docs for the layout).
#[derive(Debug)]
pub(super) struct Member {
    /// Its public address, as the server sees it.
    pub addr: SocketAddr,
    /// Last heard from, in nanoseconds since [`Members::epoch`].
    last_seen: u64,
    /// Pool, name, CLIENT-ID, LINK-KEY, PAKE and local addresses, packed (see [`Packed`]).
    packed: Box<[u8]>,
    rtt_us: u32,
    /// The other member of its pool, or [`NONE`]; in a free slot, the next free slot.
    partner: u32,
    /// The NAT behaviour it reported last ([`NatBehaviour::encode`]: lossless for what the wire carries).
    nat: [u8; 6],
    flags: u8,
}

/// What a new member registers with.
pub(super) struct NewMember<'a> {
    pub addr: SocketAddr,
    pub pool: &'a str,
    pub name: &'a str,
    pub nat: NatBehaviour,
    pub locals: &'a [SocketAddr],
    pub rtt: Option<Duration>,
    pub token: Option<ClientIdBytes>,
    pub link_key: Option<LinkKeyBytes>,
    pub pake: Option<&'a [u8]>,
}

/// A member's packed fields, borrowed.
pub(super) struct Packed<'a> {
    pub name: &'a str,
    pub token: Option<ClientIdBytes>,
    pub link_key: Option<LinkKeyBytes>,
    pub pake: Option<&'a [u8]>,
    locals: &'a [u8],
}

impl Packed<'_> {
    /// The local addresses it announced, in order.
    pub fn locals(&self) -> Vec<SocketAddr> {
        self.locals_iter().collect()
    }

    /// [`Packed::locals`] without collecting them.
    pub fn locals_iter(&self) -> Locals<'_> {
        Locals(self.locals)
    }
}

/// The packed local addresses, decoded one by one.
#[derive(Clone)]
pub(super) struct Locals<'a>(&'a [u8]);

impl Iterator for Locals<'_> {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        let b = self.0;
        {
            let (&tag, rest) = b.split_first()?;
            let (addr, rest) = match tag {
                4 => {
                    let ip = Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
                    let port = u16::from_be_bytes([rest[4], rest[5]]);
                    (SocketAddr::new(IpAddr::V4(ip), port), &rest[6..])
                }
                _ => {
                    let mut o = [0; 16];
                    o.copy_from_slice(&rest[..16]);
                    let port = u16::from_be_bytes([rest[16], rest[17]]);
                    let (flow, scope, rest) = if tag == 7 {
                        let f = u32::from_be_bytes([rest[18], rest[19], rest[20], rest[21]]);
                        let s = u32::from_be_bytes([rest[22], rest[23], rest[24], rest[25]]);
                        (f, s, &rest[26..])
                    } else {
                        (0, 0, &rest[18..])
                    };
                    let v6 = SocketAddrV6::new(Ipv6Addr::from(o), port, flow, scope);
                    (SocketAddr::V6(v6), rest)
                }
            };
            self.0 = rest;
            Some(addr)
        }
    }
}

fn pack(m: &NewMember<'_>) -> Box<[u8]> {
    let mut b = Vec::with_capacity(packed_len(m));
    put_str(&mut b, m.pool);
    put_str(&mut b, m.name);
    let bits = (u8::from(m.token.is_some()) * HAS_TOKEN)
        | (u8::from(m.link_key.is_some()) * HAS_KEY)
        | (u8::from(m.pake.is_some()) * HAS_PAKE);
    b.push(bits);
    if let Some(t) = m.token {
        b.extend_from_slice(&t);
    }
    if let Some(k) = m.link_key {
        b.extend_from_slice(&k);
    }
    if let Some(p) = m.pake {
        let n = u16::try_from(p.len()).unwrap_or(u16::MAX);
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&p[..usize::from(n)]);
    }
    for l in m.locals {
        match l {
            SocketAddr::V4(a) => {
                b.push(4);
                b.extend_from_slice(&a.ip().octets());
                b.extend_from_slice(&a.port().to_be_bytes());
            }
            SocketAddr::V6(a) => {
                let plain = a.flowinfo() == 0 && a.scope_id() == 0;
                b.push(if plain { 6 } else { 7 });
                b.extend_from_slice(&a.ip().octets());
                b.extend_from_slice(&a.port().to_be_bytes());
                if !plain {
                    b.extend_from_slice(&a.flowinfo().to_be_bytes());
                    b.extend_from_slice(&a.scope_id().to_be_bytes());
                }
            }
        }
    }
    debug_assert_eq!(b.len(), packed_len(m));
    b.into_boxed_slice()
}

fn packed_len(m: &NewMember<'_>) -> usize {
    let locals: usize = m
        .locals
        .iter()
        .map(|l| match l {
            SocketAddr::V4(_) => 7,
            SocketAddr::V6(a) if a.flowinfo() == 0 && a.scope_id() == 0 => 19,
            SocketAddr::V6(_) => 27,
        })
        .sum();
    2 + m.pool.len().min(255)
        + m.name.len().min(255)
        + 1
        + m.token.map_or(0, |_| 8)
        + m.link_key.map_or(0, |_| 16)
        + m.pake.map_or(0, |p| 2 + p.len().min(usize::from(u16::MAX)))
        + locals
}

/// Strings are at most 64 bytes on the wire (`wire::MAX_POOL_BYTES`, `MAX_NAME_BYTES`): a length byte.
fn put_str(b: &mut Vec<u8>, s: &str) {
    let mut n = s.len().min(255);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    b.push(n as u8);
    b.extend_from_slice(&s.as_bytes()[..n]);
}

fn take_str(b: &[u8]) -> (&str, &[u8]) {
    let n = usize::from(b[0]);
    let s = std::str::from_utf8(&b[1..1 + n]).expect("packed from a str");
    (s, &b[1 + n..])
}

impl Member {
    /// Its packed fields.
    pub fn packed(&self) -> Packed<'_> {
        // The pool is skipped unchecked ([`Member::pool`] reads it).
        let b = &self.packed[1 + usize::from(self.packed[0])..];
        let (name, b) = take_str(b);
        let bits = b[0];
        let mut b = &b[1..];
        let token = (bits & HAS_TOKEN != 0).then(|| {
            let mut t = [0; 8];
            t.copy_from_slice(&b[..8]);
            b = &b[8..];
            t
        });
        let link_key = (bits & HAS_KEY != 0).then(|| {
            let mut k = [0; 16];
            k.copy_from_slice(&b[..16]);
            b = &b[16..];
            k
        });
        let pake = (bits & HAS_PAKE != 0).then(|| {
            let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
            let p = &b[2..2 + n];
            b = &b[2 + n..];
            p
        });
        Packed {
            name,
            token,
            link_key,
            pake,
            locals: b,
        }
    }

    /// Its pool's name.
    pub fn pool(&self) -> &str {
        take_str(&self.packed).0
    }

    /// Its pool's name as bytes (no UTF-8 check: for comparing with a name).
    fn pool_bytes(&self) -> &[u8] {
        let n = usize::from(self.packed[0]);
        &self.packed[1..1 + n]
    }

    /// Its LINK-KEY, if it gave one.
    pub fn link_key(&self) -> Option<LinkKeyBytes> {
        self.packed().link_key
    }

    /// The RTT it reported last.
    pub fn rtt(&self) -> Option<Duration> {
        (self.flags & HAS_RTT != 0).then(|| Duration::from_micros(u64::from(self.rtt_us)))
    }

    /// Sets the RTT (the wire carries whole microseconds, at most `u32::MAX`).
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt_us = rtt.as_micros().min(u128::from(u32::MAX)) as u32;
        self.flags |= HAS_RTT;
    }

    /// Whether it acknowledged the PeerInfo of the current round.
    pub fn info_acked(&self) -> bool {
        self.flags & INFO_ACKED != 0
    }

    /// Sets [`Member::info_acked`].
    pub fn set_info_acked(&mut self, acked: bool) {
        if acked {
            self.flags |= INFO_ACKED;
        } else {
            self.flags &= !INFO_ACKED;
        }
    }

    /// Sets its SPAKE2 message (repacks its fields; see [`Members::set_pake`]).
    fn set_pake(&mut self, pake: &[u8]) {
        let p = self.packed();
        let locals = p.locals();
        let m = NewMember {
            addr: self.addr,
            pool: self.pool(),
            name: p.name,
            nat: self.nat(),
            locals: &locals,
            rtt: None,
            token: p.token,
            link_key: p.link_key,
            pake: Some(pake),
        };
        self.packed = pack(&m);
    }

    /// The NAT behaviour it reported last.
    pub fn nat(&self) -> NatBehaviour {
        NatBehaviour::decode(&self.nat).unwrap_or_default()
    }

    /// Sets its NAT behaviour.
    pub fn set_nat(&mut self, nat: NatBehaviour) {
        self.nat = nat.encode();
    }

    /// Its partner's slot, if it has one.
    pub fn partner(&self) -> Option<u32> {
        (self.partner != NONE).then_some(self.partner)
    }
}

/// The registered members, their pools and the indexes over them.
pub(super) struct Members {
    slots: Vec<Member>,
    /// Head of the free-slot list (through [`Member::partner`]).
    free: u32,
    len: usize,
    /// Slot of each member, by address.
    by_addr: HashTable<u32>,
    /// Slot of the first member of each pool, by pool name.
    by_pool: HashTable<u32>,
    hasher: Keyed,
    /// Time zero of the compact timestamps.
    epoch: Instant,
    /// Bytes of all members' packed fields.
    packed_bytes: usize,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Members")
            .field("len", &self.len)
            .field("pools", &self.by_pool.len())
            .finish_non_exhaustive()
    }
}

impl Members {
    /// No members yet; the slab and both indexes reserved for `reserve` of them (the server's
    /// `max_members`: a server at its size never grows them, and pages not yet written cost no memory).
    pub fn new(epoch: Instant, hasher: Keyed, reserve: usize) -> Self {
        Members {
            slots: Vec::with_capacity(reserve),
            free: NONE,
            len: 0,
            by_addr: HashTable::with_capacity(reserve),
            by_pool: HashTable::with_capacity(reserve),
            hasher,
            epoch,
            packed_bytes: 0,
        }
    }

    /// Members registered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Heap bytes held: the slab, the packed fields and both indexes (what was asked of the allocator).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Member>()
            + self.packed_bytes
            + self.by_addr.allocation_size()
            + self.by_pool.allocation_size()
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch)
            .as_nanos()
            .min(u128::from(u64::MAX)) as u64
    }

    /// When `m` was last heard from.
    pub fn last_seen(&self, m: &Member) -> Instant {
        self.epoch + Duration::from_nanos(m.last_seen)
    }

    /// `m` was heard from at `now`.
    pub fn touch(&mut self, slot: u32, now: Instant) {
        let t = self.ns(now);
        self.slots[slot as usize].last_seen = t;
    }

    /// The slot of the member at `addr`.
    pub fn find(&self, addr: SocketAddr) -> Option<u32> {
        let h = self.hasher.addr(addr);
        self.by_addr
            .find(h, |&i| self.slots[i as usize].addr == addr)
            .copied()
    }

    /// The pool's members in registration order: its first member and that one's partner.
    pub fn pool(&self, name: &str) -> Option<(u32, Option<u32>)> {
        let h = self.hasher.bytes(name.as_bytes());
        let first = *self.by_pool.find(h, |&i| {
            self.slots[i as usize].pool_bytes() == name.as_bytes()
        })?;
        Some((first, self.slots[first as usize].partner()))
    }

    /// The member in `slot`.
    pub fn get(&self, slot: u32) -> &Member {
        &self.slots[slot as usize]
    }

    /// The member in `slot`.
    pub fn get_mut(&mut self, slot: u32) -> &mut Member {
        &mut self.slots[slot as usize]
    }

    /// Adds a member to its pool (as the first one, or as the partner of the pool's only member); the caller
    /// has checked that it is not registered and that its pool has room.
    /// The caller passes the pool's members as [`Members::pool`] gives them (looked up once).
    pub fn insert_in(
        &mut self,
        m: NewMember<'_>,
        now: Instant,
        existing: Option<(u32, Option<u32>)>,
    ) -> u32 {
        debug_assert!(existing.is_none_or(|(_, second)| second.is_none()));
        let mut rec = Member {
            addr: m.addr,
            last_seen: self.ns(now),
            packed: pack(&m),
            rtt_us: 0,
            partner: NONE,
            nat: m.nat.encode(),
            flags: LIVE,
        };
        if let Some(r) = m.rtt {
            rec.set_rtt(r);
        }
        self.packed_bytes += rec.packed.len();
        let slot = if self.free != NONE {
            let s = self.free;
            self.free = self.slots[s as usize].partner;
            self.slots[s as usize] = rec;
            s
        } else {
            if self.slots.len() == self.slots.capacity() {
                // Grow by an eighth, not double: at a million members a doubling wastes up to half.
                let more = (self.slots.len() / 8).max(16);
                self.slots.reserve_exact(more);
            }
            self.slots.push(rec);
            (self.slots.len() - 1) as u32
        };
        self.len += 1;
        let Self {
            slots,
            by_addr,
            by_pool,
            hasher,
            ..
        } = self;
        by_addr.insert_unique(hasher.addr(m.addr), slot, |&i| {
            hasher.addr(slots[i as usize].addr)
        });
        match existing {
            Some((first, _)) => {
                slots[first as usize].partner = slot;
                slots[slot as usize].partner = first;
            }
            None => {
                slots[slot as usize].flags |= FIRST;
                by_pool.insert_unique(hasher.bytes(m.pool.as_bytes()), slot, |&i| {
                    hasher.bytes(slots[i as usize].pool_bytes())
                });
            }
        }
        slot
    }

    /// Removes the member in `slot`; its partner, if any, becomes its pool's first (and only) member.
    pub fn remove(&mut self, slot: u32) -> Member {
        let Self {
            slots,
            by_addr,
            by_pool,
            hasher,
            ..
        } = self;
        let m = &slots[slot as usize];
        let (addr, partner) = (m.addr, m.partner);
        let h = hasher.addr(addr);
        if let Ok(e) = by_addr.find_entry(h, |&i| i == slot) {
            e.remove();
        }
        let ph = hasher.bytes(m.pool_bytes());
        let first = by_pool.find_entry(ph, |&i| i == slot);
        let was_first = first.is_ok();
        if let Ok(e) = first {
            e.remove();
        }
        if partner != NONE {
            slots[partner as usize].partner = NONE;
            if was_first {
                slots[partner as usize].flags |= FIRST;
                by_pool.insert_unique(ph, partner, |&i| {
                    hasher.bytes(slots[i as usize].pool_bytes())
                });
            }
        }
        let free = Member {
            addr,
            last_seen: 0,
            packed: Box::default(),
            rtt_us: 0,
            partner: self.free,
            nat: [0; 6],
            flags: 0,
        };
        self.free = slot;
        self.len -= 1;
        self.packed_bytes -= self.slots[slot as usize].packed.len();
        std::mem::replace(&mut self.slots[slot as usize], free)
    }

    /// Sets the SPAKE2 message of the member in `slot`.
    pub fn set_pake(&mut self, slot: u32, pake: &[u8]) {
        let m = &mut self.slots[slot as usize];
        self.packed_bytes -= m.packed.len();
        m.set_pake(pake);
        self.packed_bytes += m.packed.len();
    }

    /// The member in `slot` is now at `to` (its NAT mapping changed).
    pub fn set_addr(&mut self, slot: u32, to: SocketAddr) {
        let Self {
            slots,
            by_addr,
            hasher,
            ..
        } = self;
        let from = slots[slot as usize].addr;
        if let Ok(e) = by_addr.find_entry(hasher.addr(from), |&i| i == slot) {
            e.remove();
        }
        slots[slot as usize].addr = to;
        by_addr.insert_unique(hasher.addr(to), slot, |&i| {
            hasher.addr(slots[i as usize].addr)
        });
    }

    /// Every member, with its slot (in slot order).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Member)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, m)| m.flags & LIVE != 0)
            .map(|(i, m)| (i as u32, m))
    }

    /// Whether `slot` is the first member of its pool.
    pub fn is_first(&self, slot: u32) -> bool {
        self.get(slot).flags & FIRST != 0
    }

    /// The members of the pool of the member in `slot`, as [`Members::pool`] gives them (without hashing
    /// the pool's name).
    pub fn pool_of_slot(&self, slot: u32) -> (u32, Option<u32>) {
        let m = self.get(slot);
        let found = match m.partner() {
            Some(p) if !self.is_first(slot) => (p, Some(slot)),
            partner => (slot, partner),
        };
        debug_assert_eq!(Some(found), self.pool(m.pool()));
        found
    }
}
