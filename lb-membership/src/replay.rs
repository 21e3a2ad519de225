//! Refusing captured datagrams played again.
//!
//! Every version-2 datagram carries a [`Stamp`] sealed with it: the sender's random
//! incarnation id, a counter that grows with each datagram, and the sender's clock. A
//! receiver accepts a stamp only
//!
//! - when its clock reading is within [`MAX_AGE`] of the receiver's clock, either way: a
//!   datagram captured longer ago than that is refused by every receiver, also one that has
//!   just started and remembers nothing;
//! - and when its counter was not seen before from that incarnation and is not more than
//!   [`WINDOW`] behind the highest seen (a sliding window, as IPsec's anti-replay window):
//!   within the age limit a duplicate is refused too.
//!
//! A receiver remembers [`SENDERS_MAX`] incarnations, the least recently heard ones going
//! first. Only authenticated datagrams reach this check, so only a key holder can make it
//! remember an incarnation.

use std::collections::HashMap;
use std::time::Duration;

use crate::seal::Stamp;

/// How far a stamp's clock may be from the receiver's, either way. It bounds how long a
/// captured datagram can be used at all, and the clock difference that nodes may have.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// How far behind the highest counter seen from an incarnation a datagram may arrive (it
/// was reordered on the way).
pub const WINDOW: u64 = 128;
/// Incarnations remembered at most.
pub const SENDERS_MAX: usize = 4096;

/// Why a stamped datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its clock reading is more than [`MAX_AGE`] from ours: `ahead_ms` is how far the stamp
    /// is ahead of our clock (negative: behind).
    Stale {
        /// The stamp's clock minus ours, in milliseconds.
        ahead_ms: i64,
    },
    /// Seen before, or more than [`WINDOW`] behind the newest of its incarnation.
    Replayed,
}

/// What one incarnation has sent: the highest counter and which of the [`WINDOW`] below it
/// arrived (bit `n`: counter `top - n`).
#[derive(Debug, Clone, Copy)]
struct Seen {
    top: u64,
    bits: u128,
    /// When it was last heard (an order, not a time), to forget the least recent first.
    heard: u64,
}

/// The receiver's memory of the incarnations it heard.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    senders: HashMap<u64, Seen>,
    clock: u64,
}

impl ReplayGuard {
    /// Checks an authenticated `stamp` at the receiver's clock `now_ms` (milliseconds since
    /// the epoch) and, when it is accepted, remembers it.
    pub fn accept(&mut self, stamp: &Stamp, now_ms: u64) -> Result<(), Refusal> {
        let ahead = i128::from(stamp.sent_at_ms) - i128::from(now_ms);
        let limit = i128::try_from(MAX_AGE.as_millis()).unwrap_or(i128::MAX);
        if ahead.abs() > limit {
            let ahead_ms =
                i64::try_from(ahead).unwrap_or(if ahead < 0 { i64::MIN } else { i64::MAX });
            return Err(Refusal::Stale { ahead_ms });
        }
        self.clock += 1;
        let heard = self.clock;
        if let Some(seen) = self.senders.get_mut(&stamp.sender) {
            if stamp.counter > seen.top {
                let shift = stamp.counter - seen.top;
                seen.bits = if shift >= WINDOW {
                    0
                } else {
                    seen.bits << shift
                };
                seen.bits |= 1;
                seen.top = stamp.counter;
            } else {
                let back = seen.top - stamp.counter;
                let bit = 1u128.checked_shl(u32::try_from(back).unwrap_or(u32::MAX));
                match bit {
                    Some(bit) if back < WINDOW && seen.bits & bit == 0 => seen.bits |= bit,
                    _ => return Err(Refusal::Replayed),
                }
            }
            seen.heard = heard;
            return Ok(());
        }
        if self.senders.len() >= SENDERS_MAX {
            let oldest = self
                .senders
                .iter()
                .min_by_key(|(_, s)| s.heard)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.senders.remove(&id);
            }
        }
        self.senders.insert(
            stamp.sender,
            Seen {
                top: stamp.counter,
                bits: 1,
                heard,
            },
        );
        Ok(())
    }

    /// How many incarnations are remembered.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// True when no incarnation is remembered.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn stamp(sender: u64, counter: u64) -> Stamp {
        Stamp {
            sender,
            counter,
            sent_at_ms: NOW,
        }
    }

    #[test]
    fn duplicates_and_counters_behind_the_window_are_refused() {
        let mut g = ReplayGuard::default();
        assert_eq!(g.accept(&stamp(1, 10), NOW), Ok(()));
        assert_eq!(g.accept(&stamp(1, 10), NOW), Err(Refusal::Replayed));
        // Reordered: 8 and 9 arrive after 10, once each.
        assert_eq!(g.accept(&stamp(1, 8), NOW), Ok(()));
        assert_eq!(g.accept(&stamp(1, 9), NOW), Ok(()));
        assert_eq!(g.accept(&stamp(1, 8), NOW), Err(Refusal::Replayed));
        // Jump far ahead: everything at or below top - WINDOW is refused, the rest once.
        let top = 10 + 500;
        assert_eq!(g.accept(&stamp(1, top), NOW), Ok(()));
        assert_eq!(
            g.accept(&stamp(1, top - WINDOW), NOW),
            Err(Refusal::Replayed)
        );
        assert_eq!(g.accept(&stamp(1, top - WINDOW + 1), NOW), Ok(()));
        assert_eq!(
            g.accept(&stamp(1, top - WINDOW + 1), NOW),
            Err(Refusal::Replayed)
        );
        assert_eq!(g.accept(&stamp(1, 9), NOW), Err(Refusal::Replayed));
        // Another incarnation has its own sequence.
        assert_eq!(g.accept(&stamp(2, 9), NOW), Ok(()));
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn stamps_older_or_newer_than_the_age_limit_are_refused_whoever_sent_them() {
        let mut g = ReplayGuard::default();
        let limit = u64::try_from(MAX_AGE.as_millis()).unwrap();
        let at = |ms| Stamp {
            sender: 7,
            counter: ms,
            sent_at_ms: ms,
        };
        assert_eq!(g.accept(&at(NOW - limit), NOW), Ok(()));
        assert_eq!(g.accept(&at(NOW + limit), NOW), Ok(()));
        assert_eq!(
            g.accept(&at(NOW - limit - 1), NOW),
            Err(Refusal::Stale {
                ahead_ms: -i64::try_from(limit).unwrap() - 1
            })
        );
        assert!(matches!(
            g.accept(&at(NOW + limit + 1), NOW),
            Err(Refusal::Stale { ahead_ms }) if ahead_ms > 0
        ));
        // Extreme values neither overflow nor panic.
        assert!(g.accept(&at(u64::MAX), 0).is_err());
        assert!(g.accept(&at(0), u64::MAX).is_err());
    }

    #[test]
    fn the_least_recently_heard_incarnation_is_forgotten_first() {
        let mut g = ReplayGuard::default();
        let senders = u64::try_from(SENDERS_MAX).unwrap();
        for id in 0..senders {
            assert_eq!(g.accept(&stamp(id, 1), NOW), Ok(()));
        }
        // Incarnation 0 is heard again, so 1 is now the least recent.
        assert_eq!(g.accept(&stamp(0, 2), NOW), Ok(()));
        assert_eq!(g.accept(&stamp(senders, 1), NOW), Ok(()));
        assert_eq!(g.len(), SENDERS_MAX);
        assert_eq!(g.accept(&stamp(0, 2), NOW), Err(Refusal::Replayed));
        // 1 was forgotten: its old counter is new again (the age limit still bounds this).
        assert_eq!(g.accept(&stamp(1, 1), NOW), Ok(()));
    }
}
