//! State that outlives one call: replacing the pool set, restoring allocations after a
//! restart, and snapshots.

use std::net::IpAddr;

use lb_core::ServiceKey;
use serde::{Deserialize, Serialize};

use crate::allocator::{Allocation, Allocator};
use crate::ensure::{ClearReason, Cleared, requested_change};
use crate::error::AllocError;
use crate::pool::PoolSet;
use crate::request::AllocationRequest;

/// What a pool-set replacement did to existing allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolChange {
    /// Services whose IPs now lie in a pool of another name: (service, old pool, new pool).
    pub rehomed: Vec<(ServiceKey, String, String)>,
    /// Services whose IPs lie in no pool any more; they hold nothing now.
    pub dropped: Vec<(ServiceKey, Allocation)>,
}

/// What [`Allocator::restore`] did with each service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Services whose recorded IPs were kept.
    pub kept: Vec<ServiceKey>,
    /// Services whose recorded IPs could not be kept.
    pub cleared: Vec<(ServiceKey, Cleared)>,
    /// Services that received new IPs (pending ones and cleared ones).
    pub allocated: Vec<(ServiceKey, Allocation)>,
    /// Services whose allocation could not be made, with the reason; a service whose
    /// still-valid recorded IPs could not be changed as requested keeps them.
    pub failed: Vec<(ServiceKey, AllocError)>,
}

/// A serialisable copy of every allocation with the request it was made for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// One entry per service, ordered by service.
    pub entries: Vec<SnapshotEntry>,
}

/// One service of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// The request the allocation was made for.
    pub request: AllocationRequest,
    /// The allocation.
    pub allocation: Allocation,
}

impl Allocator {
    /// Replaces the pool set (MetalLB's `SetPools`). Every allocation whose IPs still lie in a
    /// pool stays with its service, re-homed to that pool if its name changed (rename or
    /// split); the others are dropped and reported. Nothing moves to another service.
    ///
    /// Allocations are replayed through [`Allocator::assign`], so one the new pools no longer
    /// admit (`serviceAllocation`) is dropped too; MetalLB keeps it until the service's next
    /// sync clears it, which ends in the same state.
    pub fn set_pools(&mut self, pools: PoolSet) -> PoolChange {
        let mut held: Vec<(ServiceKey, Box<crate::allocator::Held>)> =
            std::mem::take(&mut self.services).into_iter().collect();
        held.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        *self = Self::new(pools);
        let mut change = PoolChange::default();
        for (service, h) in held {
            match self.assign(&h.request, &h.allocation.ips) {
                Ok(now) if now.pool != h.allocation.pool => {
                    change.rehomed.push((service, h.allocation.pool, now.pool));
                }
                Ok(_) => {}
                Err(_) => change.dropped.push((service, h.allocation)),
            }
        }
        change
    }

    /// Rebuilds the state after a restart from what the services record (their
    /// `status.loadBalancer.ingress` IPs) and allocates for the rest.
    ///
    /// First every recorded allocation that is still legal is taken back, most IPs first, then
    /// by service key, so a pending service never takes an IP another service already has and
    /// the result does not depend on the input order; recorded IPs that no longer fit the
    /// service's families or the rules are cleared. Then every service, in key order, goes
    /// through [`Allocator::ensure`]: pending and cleared services get IPs, and services whose
    /// request changed (another pool, other IPs) move. A service listed twice counts once
    /// (the last entry).
    pub fn restore(
        &mut self,
        services: impl IntoIterator<Item = (AllocationRequest, Vec<IpAddr>)>,
    ) -> RestoreReport {
        // By service key; for a key listed twice the last entry wins.
        let mut unique: Vec<(AllocationRequest, Vec<IpAddr>)> = services.into_iter().collect();
        unique.reverse();
        unique.sort_by(|a, b| a.0.service.cmp(&b.0.service));
        unique.dedup_by(|later, kept| later.0.service == kept.0.service);
        // Most IPs first; the stable sort keeps key order among equals.
        let mut recorded: Vec<&(AllocationRequest, Vec<IpAddr>)> =
            unique.iter().filter(|(_, ips)| !ips.is_empty()).collect();
        recorded.sort_by_key(|r| std::cmp::Reverse(r.1.len()));

        let mut report = RestoreReport::default();
        let mut taken_back = Vec::with_capacity(recorded.len());
        for (request, ips) in recorded {
            let reason = if request.families.accepts(ips) {
                self.assign(request, ips)
                    .err()
                    .map(ClearReason::NoLongerAllowed)
            } else {
                Some(ClearReason::FamilyChanged)
            };
            match reason {
                None => taken_back.push(&request.service),
                Some(reason) => {
                    let previous = Allocation {
                        pool: self.pool_name_for_all(ips),
                        ips: ips.clone(),
                    };
                    report
                        .cleared
                        .push((request.service.clone(), Cleared { previous, reason }));
                }
            }
        }
        taken_back.sort();
        for (request, ips) in &unique {
            let service = &request.service;
            // A recorded allocation taken back as is needs no second look unless the request
            // asks for something else (pool, IPs) or for its missing family.
            let settled = taken_back.binary_search(&service).is_ok()
                && self
                    .allocation(service)
                    .is_some_and(|a| requested_change(request, a).is_none())
                && !(request.families.prefers_dual() && ips.len() == 1);
            if settled {
                report.kept.push(service.clone());
                continue;
            }
            match self.ensure(request) {
                Ok(e) if e.newly_allocated => {
                    if let Some(c) = e.cleared {
                        report.cleared.push((service.clone(), c));
                    }
                    report.allocated.push((service.clone(), e.allocation));
                }
                Ok(_) => report.kept.push(service.clone()),
                Err(e) => report.failed.push((service.clone(), e.error)),
            }
        }
        report
    }

    /// Every allocation with its request, ordered by service.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            entries: self
                .held_in_order()
                .into_iter()
                .map(|(_, h)| SnapshotEntry {
                    request: h.request.clone(),
                    allocation: h.allocation.clone(),
                })
                .collect(),
        }
    }

    /// An allocator over `pools` restored from `snapshot` (see [`Allocator::restore`]).
    pub fn from_snapshot(pools: PoolSet, snapshot: &Snapshot) -> (Self, RestoreReport) {
        let mut allocator = Self::new(pools);
        let report = allocator.restore(
            snapshot
                .entries
                .iter()
                .map(|e| (e.request.clone(), e.allocation.ips.clone())),
        );
        (allocator, report)
    }
}
