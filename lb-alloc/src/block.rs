//! The allocation engine for one address entry of a pool.
//!
//! Addresses are numbered in a *slot space*: slot 0 is the entry's first allocatable
//! address, and so on. For a pool with `avoidBuggyIPs` the IPv4 `.0` and `.255` addresses have
//! no slot at all, so "the lowest free address" never has to step over them; nor has the
//! unspecified address (`0.0.0.0`, `::`), which no pool ever hands out. Used slots are
//! kept as a set of maximal intervals, so finding the lowest free slot, marking a slot used and
//! freeing it are all O(log n) in the number of allocations, whatever the entry's size.

use std::collections::BTreeMap;
use std::net::IpAddr;

use lb_core::IpFamily;

use crate::address::{AddressRange, from_u128, is_buggy_ip, to_u128};

/// Allocatable IPv4 addresses (last octet 1..=254) below `a`.
fn allocatable_below(a: u128) -> u128 {
    let low = a & 0xff;
    (a >> 8) * 254 + if low == 0 { 0 } else { low - 1 }
}

/// The `i`-th allocatable IPv4 address (inverse of [`allocatable_below`]).
fn nth_allocatable(i: u128) -> u128 {
    ((i / 254) << 8) | (i % 254 + 1)
}

/// A set of `u128` stored as maximal, non-adjacent inclusive intervals.
#[derive(Debug, Clone, Default)]
pub(crate) struct IntervalSet {
    /// start -> end (inclusive); intervals neither overlap nor touch.
    intervals: BTreeMap<u128, u128>,
    count: u128,
}

impl IntervalSet {
    /// The interval holding `x`, if any.
    fn interval_of(&self, x: u128) -> Option<(u128, u128)> {
        self.intervals
            .range(..=x)
            .next_back()
            .filter(|(_, end)| **end >= x)
            .map(|(s, e)| (*s, *e))
    }

    /// True when `x` is in the set.
    pub(crate) fn contains(&self, x: u128) -> bool {
        self.interval_of(x).is_some()
    }

    /// Number of members.
    pub(crate) fn len(&self) -> u128 {
        self.count
    }

    /// Adds `x`; returns false when it was already present.
    pub(crate) fn insert(&mut self, x: u128) -> bool {
        if self.contains(x) {
            return false;
        }
        let left = x.checked_sub(1).and_then(|l| self.interval_of(l));
        let right = x
            .checked_add(1)
            .and_then(|r| self.intervals.get(&r).map(|e| (r, *e)));
        let (start, end) = match (left, right) {
            (Some((ls, _)), Some((rs, re))) => {
                self.intervals.remove(&rs);
                (ls, re)
            }
            (Some((ls, _)), None) => (ls, x),
            (None, Some((rs, re))) => {
                self.intervals.remove(&rs);
                (x, re)
            }
            (None, None) => (x, x),
        };
        self.intervals.insert(start, end);
        self.count += 1;
        true
    }

    /// Removes `x`; returns false when it was absent.
    pub(crate) fn remove(&mut self, x: u128) -> bool {
        let Some((start, end)) = self.interval_of(x) else {
            return false;
        };
        self.intervals.remove(&start);
        if start < x {
            self.intervals.insert(start, x - 1);
        }
        if x < end {
            self.intervals.insert(x + 1, end);
        }
        self.count -= 1;
        true
    }

    /// The lowest value `>= from` not in the set, or `None` past `u128::MAX`.
    pub(crate) fn first_absent_from(&self, from: u128) -> Option<u128> {
        match self.interval_of(from) {
            Some((_, end)) => end.checked_add(1),
            None => Some(from),
        }
    }
}

/// One address entry of a pool with its used addresses.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    range: AddressRange,
    /// True when `.0`/`.255` are skipped (IPv4 entry of an `avoidBuggyIPs` pool).
    skip_buggy: bool,
    /// Rank of the first slot in the rank space (address, or allocatable count for skip_buggy).
    base: u128,
    /// Index of the last slot; `None` when the entry has no allocatable address.
    last_slot: Option<u128>,
    used: IntervalSet,
}

impl Block {
    /// A block for `range`; `avoid_buggy_ips` takes effect on IPv4 entries only.
    pub(crate) fn new(range: AddressRange, avoid_buggy_ips: bool) -> Self {
        let skip_buggy = avoid_buggy_ips && range.family() == IpFamily::V4;
        // The unspecified address is the lowest of its family: it can only be an entry's
        // first address, and then the entry starts one above it. (With `avoidBuggyIPs` it is
        // a `.0` and has no slot anyway.)
        let first = to_u128(range.first()).max(1);
        let last = to_u128(range.last());
        if last < first {
            return Self {
                range,
                skip_buggy,
                base: first,
                last_slot: None,
                used: IntervalSet::default(),
            };
        }
        let (base, last_slot) = if skip_buggy {
            let base = allocatable_below(first);
            let end = allocatable_below(last + 1);
            (base, end.checked_sub(base).and_then(|n| n.checked_sub(1)))
        } else {
            (first, Some(last - first))
        };
        Self {
            range,
            skip_buggy,
            base,
            last_slot,
            used: IntervalSet::default(),
        }
    }

    /// The address entry.
    pub(crate) fn range(&self) -> &AddressRange {
        &self.range
    }

    /// The slot of `ip`, or `None` when `ip` is outside the entry or skipped as buggy.
    pub(crate) fn slot_of(&self, ip: &IpAddr) -> Option<u128> {
        if !self.range.contains(ip) || (self.skip_buggy && is_buggy_ip(ip)) || ip.is_unspecified() {
            return None;
        }
        let n = to_u128(*ip);
        Some(if self.skip_buggy {
            allocatable_below(n) - self.base
        } else {
            n - self.base
        })
    }

    /// The address of `slot` (which must be within the block).
    fn address_of(&self, slot: u128) -> IpAddr {
        let rank = self.base + slot;
        let n = if self.skip_buggy {
            nth_allocatable(rank)
        } else {
            rank
        };
        from_u128(self.range.family(), n)
    }

    /// Number of allocatable addresses (saturating at `u128::MAX` for `::/0`).
    pub(crate) fn capacity(&self) -> u128 {
        self.last_slot.map_or(0, |l| l.saturating_add(1))
    }

    /// Number of used addresses.
    pub(crate) fn in_use(&self) -> u128 {
        self.used.len()
    }

    /// The lowest unused allocatable address.
    pub(crate) fn lowest_free(&self) -> Option<IpAddr> {
        let last = self.last_slot?;
        let slot = self.used.first_absent_from(0)?;
        (slot <= last).then(|| self.address_of(slot))
    }

    /// Marks `ip` used; returns false when it is not allocatable here or already used.
    pub(crate) fn mark_used(&mut self, ip: &IpAddr) -> bool {
        self.slot_of(ip).is_some_and(|s| self.used.insert(s))
    }

    /// Marks `ip` free; returns false when it was not used.
    pub(crate) fn mark_free(&mut self, ip: &IpAddr) -> bool {
        self.slot_of(ip).is_some_and(|s| self.used.remove(s))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn block(text: &str, avoid: bool) -> Block {
        Block::new(AddressRange::parse(text).unwrap(), avoid)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn network_address_is_handed_out_first_without_avoid_buggy() {
        let b = block("192.0.2.0/24", false);
        assert_eq!(b.lowest_free(), Some(ip("192.0.2.0")));
        assert_eq!(b.capacity(), 256);
    }

    #[test]
    fn avoid_buggy_skips_dot_zero_and_dot_255() {
        let mut b = block("192.0.2.254-192.0.3.1", true);
        assert_eq!(b.capacity(), 2);
        assert_eq!(b.lowest_free(), Some(ip("192.0.2.254")));
        assert!(b.mark_used(&ip("192.0.2.254")));
        assert_eq!(b.lowest_free(), Some(ip("192.0.3.1")));
        assert!(
            !b.mark_used(&ip("192.0.2.255")),
            "a buggy address has no slot"
        );
        assert!(b.mark_used(&ip("192.0.3.1")));
        assert_eq!(b.lowest_free(), None);
    }

    #[test]
    fn avoid_buggy_counts_match_metallb_pool_count() {
        // MetalLB: a /24 or shorter loses 2 addresses per /24.
        assert_eq!(block("192.0.2.0/24", true).capacity(), 254);
        assert_eq!(block("198.51.0.0/16", true).capacity(), 65536 - 512);
        // Longer than /24: one for each end that is .0 or .255.
        assert_eq!(block("192.0.2.0/25", true).capacity(), 127);
        assert_eq!(block("192.0.2.64/26", true).capacity(), 64);
        assert_eq!(block("192.0.2.255/32", true).capacity(), 0);
        assert_eq!(block("192.0.2.255/32", true).lowest_free(), None);
    }

    #[test]
    fn avoid_buggy_does_not_touch_ipv6() {
        let b = block("2001:db8::/120", true);
        assert_eq!(b.capacity(), 256);
        assert_eq!(b.lowest_free(), Some(ip("2001:db8::")));
    }

    #[test]
    fn freed_address_is_reused_lowest_first() {
        let mut b = block("198.51.100.0/29", false);
        for i in 0..8 {
            let next = b.lowest_free().unwrap();
            assert_eq!(next, ip(&format!("198.51.100.{i}")));
            assert!(b.mark_used(&next));
        }
        assert_eq!(b.lowest_free(), None);
        assert!(b.mark_free(&ip("198.51.100.3")));
        assert!(!b.mark_free(&ip("198.51.100.3")));
        assert_eq!(b.lowest_free(), Some(ip("198.51.100.3")));
        assert_eq!(b.in_use(), 7);
    }

    #[test]
    fn huge_ipv6_block_is_cheap() {
        let mut b = block("2001:db8::/48", false);
        assert_eq!(b.capacity(), 1u128 << 80);
        for _ in 0..1000 {
            let next = b.lowest_free().unwrap();
            assert!(b.mark_used(&next));
        }
        assert_eq!(b.lowest_free(), Some(ip("2001:db8::3e8")));
    }

    proptest! {
        #[test]
        fn interval_set_behaves_like_a_set(ops in proptest::collection::vec((any::<bool>(), 0u128..64), 0..200)) {
            let mut set = IntervalSet::default();
            let mut model = std::collections::BTreeSet::new();
            for (add, x) in ops {
                if add {
                    prop_assert_eq!(set.insert(x), model.insert(x));
                } else {
                    prop_assert_eq!(set.remove(x), model.remove(&x));
                }
                prop_assert_eq!(set.len(), model.len() as u128);
                let lowest = (0u128..).find(|v| !model.contains(v));
                prop_assert_eq!(set.first_absent_from(0), lowest);
                // Intervals stay maximal: no two touch.
                let mut prev: Option<u128> = None;
                for (s, e) in &set.intervals {
                    prop_assert!(s <= e);
                    if let Some(p) = prev { prop_assert!(p + 1 < *s); }
                    prev = Some(*e);
                }
            }
        }

        #[test]
        fn slot_mapping_round_trips_with_avoid_buggy(first in 0u32..0xffff_ff00, len in 0u32..2000) {
            let last = first.saturating_add(len);
            let range = AddressRange::new(
                IpAddr::V4(first.into()), IpAddr::V4(last.into())).unwrap();
            let b = Block::new(range, true);
            let mut expected = 0u128;
            for n in first..=last {
                let a = IpAddr::V4(n.into());
                match b.slot_of(&a) {
                    Some(s) => {
                        prop_assert!(!is_buggy_ip(&a));
                        prop_assert_eq!(s, expected);
                        prop_assert_eq!(b.address_of(s), a);
                        expected += 1;
                    }
                    None => prop_assert!(is_buggy_ip(&a)),
                }
            }
            prop_assert_eq!(b.capacity(), expected);
        }
    }
}
