//! Per-pool capacity and usage, the numbers behind `metallb_allocator_*` metrics and
//! `IPAddressPool.status`.

use std::collections::BTreeMap;

use lb_core::IpFamily;
use serde::{Deserialize, Serialize};

use crate::allocator::Allocator;

/// Capacity and usage of one pool. A shared IP counts once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Allocatable IPv4 addresses (after `avoidBuggyIPs`).
    pub total_v4: u128,
    /// Allocatable IPv6 addresses (saturating at `u128::MAX`).
    pub total_v6: u128,
    /// IPv4 addresses in use.
    pub in_use_v4: u128,
    /// IPv6 addresses in use.
    pub in_use_v6: u128,
}

impl PoolStats {
    /// All allocatable addresses.
    pub fn total(&self) -> u128 {
        self.total_v4.saturating_add(self.total_v6)
    }

    /// All addresses in use.
    pub fn in_use(&self) -> u128 {
        self.in_use_v4 + self.in_use_v6
    }

    /// Free IPv4 addresses.
    pub fn available_v4(&self) -> u128 {
        self.total_v4 - self.in_use_v4
    }

    /// Free IPv6 addresses.
    pub fn available_v6(&self) -> u128 {
        self.total_v6 - self.in_use_v6
    }
}

impl Allocator {
    /// Capacity and usage of every pool, by pool name. O(pools × entries).
    pub fn stats(&self) -> BTreeMap<String, PoolStats> {
        self.pools
            .pools
            .iter()
            .zip(&self.blocks)
            .map(|(pool, blocks)| {
                let mut s = PoolStats::default();
                for b in blocks {
                    match b.range().family() {
                        IpFamily::V4 => {
                            s.total_v4 = s.total_v4.saturating_add(b.capacity());
                            s.in_use_v4 += b.in_use();
                        }
                        IpFamily::V6 => {
                            s.total_v6 = s.total_v6.saturating_add(b.capacity());
                            s.in_use_v6 += b.in_use();
                        }
                    }
                }
                (pool.name.clone(), s)
            })
            .collect()
    }
}
