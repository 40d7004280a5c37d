//! Register handling: return routability, per-IP caps, admission, refresh, moves and pairing.
use std::net::SocketAddr;

use rand::Rng;

use super::member::NewMember;
use super::{Budget, Pair, Server, ServerEvent, RETRY_MIN_INTERVAL, SWEEP_INTERVAL};
use crate::timer::after;
use crate::wire::{self, Msg, RegisterRef};
use crate::{Machine, Transmit};

/// How many nameplates an allocation looks at, at most (the server holds far fewer pools than this at once,
/// see `ServerConfig::max_members`).
const MAX_NAMEPLATE_TRIES: u32 = 999_999;

impl Server {
    pub(super) fn on_register(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        req: RegisterRef<'_>,
        data: &[u8],
    ) {
        let len = data.len();
        let (tid, retry) = (req.tid, req.retry);
        if !self.allow(remote, Budget::Register) {
            return;
        }
        let now = self.now;
        // The fresh cookie of the answer: the presented one when it is of the current bucket (the same bytes
        // `issue` would compute), so a valid Register costs one HMAC, not two.
        let checked = req.cookie.and_then(|c| self.cookies.check(now, remote, c));
        let Some(fresh) = checked else {
            // Return routability: no state for a source that has not shown it receives our answers; the
            // challenge is never larger than the request, so a spoofed Register amplifies nothing.
            self.stats.cookie_challenges += 1;
            let msg = Msg::RegisterError {
                tid,
                code: 401,
                reason: "cookie".into(),
                cookie: Some(self.cookies.issue(now, remote).to_vec()),
            };
            let payload = msg.encode();
            if payload.len() > len {
                return self.drop_packet(remote, "Register without a cookie, too short to answer");
            }
            let source = Some(local);
            self.out.push_back(Transmit {
                ttl: None,
                source,
                destination: remote,
                payload,
            });
            return;
        };
        let allocated = req.allocate && req.pool.is_empty();
        let allocated_name: String;
        let pool: &str = if allocated {
            // A retransmitted allocation keeps the nameplate it got; otherwise the lowest free one.
            allocated_name = match self.pool_of(remote) {
                Some(pool) => pool.to_owned(),
                None => match self.free_nameplate() {
                    Some(n) => n,
                    None => return self.error(local, remote, tid, 503, "no free nameplate"),
                },
            };
            &allocated_name
        } else {
            req.pool
        };
        if pool.is_empty() {
            self.stats.dropped += 1;
            return self.error(local, remote, tid, 400, "missing or invalid pool name");
        }
        // A member of another pool moves; a member of this pool is refreshed (idempotent).
        let mut slot = self.members.find(remote);
        if slot.is_some_and(|s| self.members.get(s).pool() != pool) {
            self.remove_member(remote, false);
            slot = self.members.find(remote);
        }
        let newcomer = slot.is_none();
        if newcomer && self.ips.members(remote.ip()) >= self.config.max_members_per_ip {
            return self.error(local, remote, tid, 486, "too many members from this IP");
        }
        // The pool's members, looked up once for a newcomer (a move and an admission both need them).
        let existing = if newcomer {
            self.members.pool(pool)
        } else {
            None
        };
        let moved = newcomer
            && req.client_id.is_some()
            && self.rebind(existing, pool, req.client_id, remote, data);
        // A member of this pool now: it was one, or it has just moved here.
        let is_member = !newcomer || moved;
        let mut admitted = None;
        if let Some(s) = slot {
            self.refresh(s, &req);
        } else if moved {
            if let Some(s) = self.members.find(remote) {
                self.refresh(s, &req);
            }
        } else {
            match self.admit(remote, &req, pool, existing) {
                Ok(s) => admitted = Some(s),
                Err((code, reason)) => return self.error(local, remote, tid, code, reason),
            }
        }
        let name = allocated.then_some(pool);
        let payload = wire::encode_register_ok(&tid, Some(remote), Some(&fresh), name)
            .unwrap_or_else(|| {
                Msg::RegisterOk {
                    tid,
                    mapped: Some(remote),
                    cookie: Some(fresh.to_vec()),
                    pool: name.map(str::to_owned),
                }
                .encode()
            });
        self.out.push_back(Transmit {
            ttl: None,
            source: Some(local),
            destination: remote,
            payload,
        });
        // The pool's members: known without a lookup for a member just admitted (a second member's partner
        // is the pool's first).
        let members = match admitted {
            Some(s) => match self.members.get(s).partner() {
                Some(first) => Some((first, Some(s))),
                None => Some((s, None)),
            },
            None => self.members.pool(pool),
        };
        self.after_register(members, pool, remote, is_member, retry, moved);
    }

    /// A member (in `slot`) registering again: it is alive, and its NAT and RTT may have changed.
    fn refresh(&mut self, slot: u32, req: &RegisterRef<'_>) {
        let now = self.now;
        self.members.touch(slot, now);
        let m = self.members.get_mut(slot);
        m.set_nat(req.nat);
        if let Some(rtt) = req.rtt {
            m.set_rtt(rtt);
        }
        // The creator of an allocated nameplate sends its PAKE message once it knows the number.
        if let (None, Some(pake)) = (m.packed().pake, req.pake) {
            self.members.set_pake(slot, pake);
        }
    }

    /// The lowest nameplate (a decimal number from 1) that is neither in use nor burnt; `None` after
    /// [`MAX_NAMEPLATE_TRIES`] taken ones in a row (bounded work per request).
    fn free_nameplate(&mut self) -> Option<String> {
        (1..=MAX_NAMEPLATE_TRIES)
            .map(|n| n.to_string())
            .find(|n| self.members.pool(n).is_none() && !self.is_burned(n))
    }

    /// A new member joins its pool `pool` (whose members are `existing`, as [`super::Members::pool`] gives
    /// them), unless the server or the pool is full; its slot.
    fn admit(
        &mut self,
        remote: SocketAddr,
        req: &RegisterRef<'_>,
        pool: &str,
        existing: Option<(u32, Option<u32>)>,
    ) -> Result<u32, (u16, &'static str)> {
        let now = self.now;
        if self.members.len() >= self.config.max_members {
            return Err((503, "server full"));
        }
        if self.is_burned(pool) {
            return Err((
                410,
                "nameplate burnt: a wrong code was tried on it; make a new code",
            ));
        }
        if existing.is_some_and(|(_, second)| second.is_some()) {
            self.stats.dropped += 1;
            return Err((409, "pool full: two peers are already paired in it"));
        }
        let slot = self.members.insert_in(
            NewMember {
                addr: remote,
                pool,
                name: req.name,
                nat: req.nat,
                locals: req.locals,
                rtt: req.rtt,
                token: req.client_id,
                link_key: req.link_key,
                pake: req.pake,
            },
            now,
            existing,
        );
        self.ips.count_member(now, remote.ip(), true);
        self.stats.registrations += 1;
        self.event(ServerEvent::Registered {
            pool: pool.into(),
            client: remote,
            name: req.name.into(),
            nat: req.nat,
        });
        if self.next_sweep.is_none() {
            self.next_sweep = Some(after(now, SWEEP_INTERVAL));
        }
        Ok(slot)
    }

    /// After a Register was answered: pair a full pool, start a requested retry round, or resend the PeerInfo
    /// a paired member has evidently not seen.
    fn after_register(
        &mut self,
        members: Option<(u32, Option<u32>)>,
        pool: &str,
        remote: SocketAddr,
        is_member: bool,
        retry: bool,
        moved: bool,
    ) {
        let now = self.now;
        let Some((first, Some(second))) = members else {
            return;
        };
        let paired = self.pairs.get(&first).copied();
        match paired {
            None => {
                self.pairs.insert(
                    first,
                    Pair {
                        pair_id: self.rng.gen(),
                        last_round: now,
                        rounds: 0,
                    },
                );
                let (a, b) = (self.members.get(first).addr, self.members.get(second).addr);
                self.stats.pairs += 1;
                self.event(ServerEvent::Paired {
                    pool: pool.into(),
                    a,
                    b,
                });
                self.schedule_pair_infos_of(first, second);
            }
            Some(p) if is_member && retry => {
                let due = now.saturating_duration_since(p.last_round) >= RETRY_MIN_INTERVAL;
                if due {
                    self.event(ServerEvent::Retry { pool: pool.into() });
                    self.schedule_pair_infos(pool);
                }
            }
            Some(_) if is_member && !moved => {
                // A paired member registering again may not have seen its PeerInfo: if the server gave up
                // retransmitting it unanswered, send it again. An outstanding one keeps its schedule, and an
                // acknowledged one is not repeated (a Register is the peer's keepalive).
                let lost = self.members.find(remote).is_some_and(|slot| {
                    !self.infos.contains_key(&slot) && !self.members.get(slot).info_acked()
                });
                if lost {
                    self.schedule_info(remote, now);
                    self.handle_timeout(now);
                }
            }
            Some(_) => {}
        }
    }

    /// The member of `pool` (whose members are `existing`) with this CLIENT-ID moved to `to`: follow it, and
    /// start a new round if paired. Changes nothing when it returns `false`.
    fn rebind(
        &mut self,
        existing: Option<(u32, Option<u32>)>,
        pool: &str,
        token: Option<[u8; 8]>,
        to: SocketAddr,
        data: &[u8],
    ) -> bool {
        let now = self.now;
        let Some((first, second)) = existing else {
            return false;
        };
        let Some(slot) = std::iter::once(first)
            .chain(second)
            .find(|&s| token.is_some() && self.members.get(s).packed().token == token)
        else {
            return false;
        };
        // A move must be signed with the member's link key: a sniffed CLIENT-ID alone moves nobody.
        let key = self.members.get(slot).link_key();
        if key.is_some_and(|k| !wire::check_integrity(data, &k)) {
            self.stats.dropped += 1;
            return false;
        }
        let from = self.members.get(slot).addr;
        if self.infos.remove(&slot).is_some() {
            self.info_schedule.forget();
        }
        self.unroute(from);
        self.members.set_addr(slot, to);
        self.members.touch(slot, now);
        let paired = self.pairs.contains_key(&first);
        self.ips.count_member(now, from.ip(), false);
        self.ips.count_member(now, to.ip(), true);
        self.event(ServerEvent::Moved {
            pool: pool.into(),
            from,
            to,
        });
        if paired {
            self.schedule_pair_infos(pool);
        }
        true
    }
}
