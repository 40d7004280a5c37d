//! Reliable, ordered chat messages over an unreliable path (the peer's direct path or the server's relay).
//!
//! [`ChatSession`] is a [`Machine`] over chat frames and path-agnostic: its `handle_input` takes
//! a chat frame (whatever path it came on) and `poll_transmit` yields chat frames addressed to the path's next
//! hop (set with [`ChatSession::set_path`]), which the peer wraps for that path (direct data or a relay
//! message). Messages carry sequence numbers (from 0), are acknowledged, retransmitted with the shared
//! [`Retransmit`] backoff until acknowledged, de-duplicated and delivered in order.
//!
//! Frames: `DATA = [0][seq: u64][UTF-8 text]`, `ACK = [1][next expected seq: u64][acked seq: u64]`,
//! `FIN = [2][seq: u64]`. FIN ("I have sent everything") takes the next sequence number, so it is
//! retransmitted, acknowledged and delivered in order like a message: when the receiver sees it, it has every
//! message that came before.
//!
//! Memory is bounded: at most [`MAX_IN_FLIGHT`] unacknowledged messages, [`MAX_QUEUED`] waiting to be sent, and
//! [`MAX_REORDER`] received out of order; anything beyond is refused (sending) or dropped (receiving, the
//! sender retransmits).
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::backoff::{Backoff, Retransmit};
use crate::Machine;
use crate::{Deadline, Transmit};

/// Largest message text in bytes: keeps every datagram under a 1280-byte IPv6 minimum MTU with headers.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Messages sent but not yet acknowledged.
pub const MAX_IN_FLIGHT: usize = 64;
/// Messages accepted by `send` but not yet sent.
pub const MAX_QUEUED: usize = 4096;
/// Received messages held while waiting for an earlier one.
pub const MAX_REORDER: u64 = 256;

/// The first byte of a chat frame.
mod frame {
    pub const DATA: u8 = 0;
    pub const ACK: u8 = 1;
    pub const FIN: u8 = 2;
}
/// Retransmissions double up to this.
const MAX_RTO: Duration = Duration::from_secs(3);

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The text is longer than [`MAX_MESSAGE_BYTES`]; it is never truncated.
    TooLong {
        /// Length of the refused text, in bytes.
        len: usize,
        /// The limit, [`MAX_MESSAGE_BYTES`].
        max: usize,
    },
    /// [`MAX_QUEUED`] messages are already waiting.
    QueueFull,
    /// [`ChatSession::finish`] was called: nothing more can be sent.
    Finished,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::TooLong { len, max } => {
                write!(f, "message is {len} bytes, the limit is {max}")
            }
            SendError::QueueFull => write!(f, "too many messages waiting to be sent"),
            SendError::Finished => write!(f, "this side already said it has finished sending"),
        }
    }
}

impl std::error::Error for SendError {}

/// What the chat session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatEvent {
    /// A message from the peer, delivered once and in order.
    Message {
        /// Its sequence number.
        seq: u64,
        /// Its text.
        text: String,
    },
    /// The peer acknowledged our message `seq`.
    Acked {
        /// The acknowledged sequence number.
        seq: u64,
    },
    /// The peer has finished sending; every message it sent was delivered before this.
    Finished,
}

#[derive(Debug)]
struct InFlight {
    frame: Vec<u8>,
    retransmit: Retransmit,
}

/// Reliable ordered message delivery; see the module docs.
///
/// Two sessions back to back, in virtual time (a frame handed over is a frame delivered):
///
/// ```
/// use std::time::{Duration, Instant};
/// use punch_core::{ChatEvent, ChatSession, Machine};
///
/// let (a, b) = ("192.0.2.1:1000".parse().unwrap(), "192.0.2.2:2000".parse().unwrap());
/// let now = Instant::now();
/// let (mut alice, mut bob) = (ChatSession::new(), ChatSession::new());
/// alice.set_path(now, Some(b), Duration::from_millis(20)); // frames go to b
/// bob.set_path(now, Some(a), Duration::from_millis(20));
/// assert_eq!(alice.send(now, "hello")?, 0); // its sequence number
///
/// let data = alice.poll_transmit().expect("the DATA frame");
/// assert_eq!(data.destination, b);
/// bob.handle_input(now, b, a, &data.payload);
/// assert_eq!(bob.poll_event(), Some(ChatEvent::Message { seq: 0, text: "hello".into() }));
/// let ack = bob.poll_transmit().expect("the ACK");
/// alice.handle_input(now, a, b, &ack.payload);
/// assert_eq!(alice.poll_event(), Some(ChatEvent::Acked { seq: 0 }));
/// assert!(alice.all_acked());
/// # Ok::<(), punch_core::SendError>(())
/// ```
#[derive(Debug)]
pub struct ChatSession {
    next_seq: u64,
    /// Waiting to be sent: text, or `None` for the FIN.
    queued: VecDeque<(u64, Option<String>)>,
    finished: bool,
    in_flight: BTreeMap<u64, InFlight>,
    recv_next: u64,
    reorder: BTreeMap<u64, Option<String>>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ChatEvent>,
    initial_rto: Duration,
    /// Where frames go (the path's next hop); `None` while there is no path: queued data waits.
    next_hop: Option<SocketAddr>,
    now: Option<Instant>,
    /// Frames sent again because no acknowledgement came in time.
    retransmissions: u64,
}

impl crate::Machine for ChatSession {
    type Event = ChatEvent;

    /// A chat frame arrived (on any path: `local` and `remote` are where it came over, and do not matter).
    fn handle_input(
        &mut self,
        now: Instant,
        _local: SocketAddr,
        _remote: SocketAddr,
        frame: &[u8],
    ) {
        self.now = Some(now);
        match frame.split_first() {
            Some((&kind @ (frame::DATA | frame::FIN), rest)) if rest.len() >= 8 => {
                let seq = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
                let text = if kind == frame::FIN {
                    None
                } else {
                    let Ok(text) = std::str::from_utf8(&rest[8..]) else {
                        return;
                    };
                    if text.len() > MAX_MESSAGE_BYTES {
                        return;
                    }
                    Some(text.to_owned())
                };
                if seq >= self.recv_next.saturating_add(MAX_REORDER) {
                    return; // too far ahead: drop, the sender retransmits
                }
                if seq >= self.recv_next {
                    self.reorder.entry(seq).or_insert(text);
                    while let Some(item) = self.reorder.remove(&self.recv_next) {
                        self.events.push_back(match item {
                            Some(text) => ChatEvent::Message {
                                seq: self.recv_next,
                                text,
                            },
                            None => ChatEvent::Finished,
                        });
                        self.recv_next += 1;
                    }
                }
                // Always acknowledge, duplicates too: the earlier ack may have been lost.
                let mut ack = vec![frame::ACK];
                ack.extend(self.recv_next.to_be_bytes());
                ack.extend(seq.to_be_bytes());
                self.out.push_back(ack);
            }
            Some((&frame::ACK, rest)) if rest.len() >= 16 => {
                let cumulative = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
                let seq = u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes"));
                let mut acked: Vec<u64> = self
                    .in_flight
                    .range(..cumulative)
                    .map(|(s, _)| *s)
                    .collect();
                if self.in_flight.contains_key(&seq) && seq >= cumulative {
                    acked.push(seq);
                }
                for s in acked {
                    self.in_flight.remove(&s);
                    self.events.push_back(ChatEvent::Acked { seq: s });
                }
                self.handle_timeout(now);
            }
            _ => {}
        }
    }

    /// Sends what is due: new messages while the window allows, retransmissions whose timer expired.
    fn handle_timeout(&mut self, now: Instant) {
        let now = match self.now {
            Some(prev) if prev > now => prev,
            _ => now,
        };
        self.now = Some(now);
        if self.next_hop.is_none() {
            return;
        }
        while self.in_flight.len() < MAX_IN_FLIGHT {
            let Some((seq, text)) = self.queued.pop_front() else {
                break;
            };
            let mut frame = vec![if text.is_some() {
                frame::DATA
            } else {
                frame::FIN
            }];
            frame.extend(seq.to_be_bytes());
            frame.extend(text.unwrap_or_default().as_bytes());
            let retransmit = Retransmit::new(Backoff::new(self.initial_rto, MAX_RTO), now);
            self.in_flight.insert(seq, InFlight { frame, retransmit });
        }
        for f in self.in_flight.values_mut() {
            if f.retransmit.is_due(now) {
                self.out.push_back(f.frame.clone());
                if f.retransmit.sends() > 0 {
                    self.retransmissions += 1;
                }
                f.retransmit.on_send(now);
            }
        }
    }

    /// Next chat frame, addressed to the current path's next hop.
    fn poll_transmit(&mut self) -> Option<Transmit> {
        let destination = self.next_hop?;
        let payload = self.out.pop_front()?;
        Some(Transmit {
            ttl: None,
            source: None,
            destination,
            payload,
        })
    }

    /// Next retransmission deadline (only while a path exists).
    fn poll_deadline(&self) -> Option<Deadline> {
        self.next_hop?;
        let at = self
            .in_flight
            .values()
            .filter_map(|f| f.retransmit.next_send())
            .min()?;
        Some(Deadline {
            at,
            reason: "chat retransmit",
        })
    }

    /// Next event.
    fn poll_event(&mut self) -> Option<ChatEvent> {
        self.events.pop_front()
    }
}

impl ChatSession {
    /// A new session; nothing is sent until [`ChatSession::set_path`] gives it a path.
    pub fn new() -> Self {
        ChatSession {
            next_seq: 0,
            queued: VecDeque::new(),
            finished: false,
            in_flight: BTreeMap::new(),
            recv_next: 0,
            reorder: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            initial_rto: Duration::from_millis(300),
            next_hop: None,
            now: None,
            retransmissions: 0,
        }
    }

    /// Tells the session where frames go now (`None`: no path) and the path's round-trip time; the
    /// retransmission timeout is derived from it (2 x RTT, at least 50 ms, at most 3 s). Getting a path after
    /// having none resends everything unacknowledged at once; moving from one path to another keeps the
    /// retransmission schedule (the copies sent on the old path may still arrive).
    pub fn set_path(&mut self, now: Instant, next_hop: Option<SocketAddr>, rtt: Duration) {
        self.initial_rto = (rtt * 2).clamp(Duration::from_millis(50), MAX_RTO);
        let had_path = self.next_hop.is_some();
        self.next_hop = next_hop;
        if next_hop.is_some() && !had_path {
            for f in self.in_flight.values_mut() {
                f.retransmit.restart(now, self.initial_rto);
            }
        }
        self.handle_timeout(now);
    }

    /// Queues a message; returns its sequence number.
    pub fn send(&mut self, now: Instant, text: &str) -> Result<u64, SendError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(SendError::TooLong {
                len: text.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        if self.finished {
            return Err(SendError::Finished);
        }
        if self.queued.len() >= MAX_QUEUED {
            return Err(SendError::QueueFull);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queued.push_back((seq, Some(text.to_owned())));
        self.handle_timeout(now);
        Ok(seq)
    }

    /// Says "I have sent everything" (once): a FIN after the queued messages. Returns its sequence number.
    pub fn finish(&mut self, now: Instant) -> u64 {
        if !self.finished {
            self.finished = true;
            self.queued.push_back((self.next_seq, None));
            self.next_seq += 1;
            self.handle_timeout(now);
        }
        self.next_seq - 1
    }

    /// [`ChatSession::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// How many frames were sent again because no acknowledgement came in time (a sign that the path may
    /// be dead: the peer then checks its direct path at once).
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// Every message handed to `send` has been acknowledged.
    pub fn all_acked(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_empty()
    }
}

impl Default for ChatSession {
    fn default() -> Self {
        Self::new()
    }
}

/// One line describing a chat frame, for traces.
pub fn describe_frame(frame: &[u8]) -> String {
    match frame.split_first() {
        Some((&frame::DATA, rest)) if rest.len() >= 8 => {
            let seq = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
            format!("DATA #{seq} {:?}", String::from_utf8_lossy(&rest[8..]))
        }
        Some((&frame::ACK, rest)) if rest.len() >= 16 => {
            let cum = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
            let seq = u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes"));
            format!("ACK #{seq} (next {cum})")
        }
        Some((&frame::FIN, rest)) if rest.len() >= 8 => {
            let seq = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
            format!("FIN #{seq}")
        }
        _ => format!("invalid chat frame ({} bytes)", frame.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Machine;

    fn hop() -> SocketAddr {
        "192.0.2.1:1".parse().unwrap()
    }

    /// Two sessions with a 20 ms path to each other, at the epoch.
    fn pair() -> (Instant, ChatSession, ChatSession) {
        let t0 = crate::test_epoch();
        let (mut a, mut b) = (ChatSession::new(), ChatSession::new());
        a.set_path(t0, Some(hop()), Duration::from_millis(20));
        b.set_path(t0, Some(hop()), Duration::from_millis(20));
        (t0, a, b)
    }

    fn drain(s: &mut ChatSession) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| s.poll_transmit().map(|t| t.payload)).collect()
    }

    #[test]
    fn delivers_in_order_once_despite_loss_duplication_and_reordering() {
        let (t0, mut a, mut b) = pair();
        for i in 0..5 {
            a.send(t0, &format!("m{i}")).unwrap();
        }
        let frames = drain(&mut a);
        assert_eq!(frames.len(), 5);
        // Lose #1, deliver the rest reversed and #3 twice.
        for i in [4usize, 3, 3, 2, 0] {
            b.handle_input(t0, hop(), hop(), &frames[i]);
        }
        let got: Vec<_> = std::iter::from_fn(|| b.poll_event()).collect();
        assert_eq!(
            got,
            vec![ChatEvent::Message {
                seq: 0,
                text: "m0".into()
            }]
        );
        for ack in drain(&mut b) {
            a.handle_input(t0, hop(), hop(), &ack);
        }
        // #1 is retransmitted after the RTO and fills the gap.
        let t1 = a.poll_timeout().unwrap();
        assert!(t1 > t0);
        a.handle_timeout(t1);
        let re = drain(&mut a);
        assert_eq!(re.len(), 1);
        b.handle_input(t1, hop(), hop(), &re[0]);
        let texts: Vec<_> = std::iter::from_fn(|| b.poll_event())
            .map(|e| match e {
                ChatEvent::Message { text, .. } => text,
                e => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(texts, vec!["m1", "m2", "m3", "m4"]);
        for ack in drain(&mut b) {
            a.handle_input(t1, hop(), hop(), &ack);
        }
        assert!(a.all_acked());
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn fin_is_delivered_after_every_earlier_message() {
        let (t0, mut a, mut b) = pair();
        a.send(t0, "one").unwrap();
        a.send(t0, "two").unwrap();
        assert_eq!(a.finish(t0), 2);
        assert_eq!(a.send(t0, "late"), Err(SendError::Finished));
        let frames = drain(&mut a);
        assert_eq!(frames.len(), 3);
        // FIN first, then the messages: FIN still comes out last.
        for i in [2usize, 1, 0] {
            b.handle_input(t0, hop(), hop(), &frames[i]);
        }
        let got: Vec<_> = std::iter::from_fn(|| b.poll_event()).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], ChatEvent::Finished);
        for ack in drain(&mut b) {
            a.handle_input(t0, hop(), hop(), &ack);
        }
        assert!(a.all_acked());
    }

    #[test]
    fn oversized_message_is_refused_not_truncated() {
        let t0 = crate::test_epoch();
        let mut a = ChatSession::new();
        let long = "x".repeat(MAX_MESSAGE_BYTES + 1);
        assert_eq!(
            a.send(t0, &long),
            Err(SendError::TooLong {
                len: MAX_MESSAGE_BYTES + 1,
                max: MAX_MESSAGE_BYTES
            })
        );
        assert!(a.all_acked());
    }

    #[test]
    fn nothing_is_sent_without_a_path() {
        let t0 = crate::test_epoch();
        let mut a = ChatSession::new();
        a.send(t0, "hi").unwrap();
        assert!(drain(&mut a).is_empty());
        assert_eq!(a.poll_timeout(), None);
        a.set_path(t0, Some(hop()), Duration::from_millis(10));
        assert_eq!(drain(&mut a).len(), 1);
    }
}
