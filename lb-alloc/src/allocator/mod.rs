//! The allocator: which service holds which IPs, and every rule deciding what it may get.
//!
//! All paths that give a service IPs end in [`Allocator::assign`], the one place that decides
//! whether a set of IPs is legal for a service (MetalLB's `Assign`): the IPs lie in one pool,
//! the pool admits the service, at most one IP per family, and each IP is free or shareable.
//!
//! - [`choice`]: which pool and which free IPs a request gets;
//! - [`sharing`]: when a used IP may be shared (sharing keys, ports);
//! - [`hashing`]: the fast hasher of the allocator's indexes.

mod choice;
mod hashing;
mod sharing;

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasherDefault;
use std::net::IpAddr;

use lb_core::{IpFamily, ServiceKey};
use serde::{Deserialize, Serialize};

use crate::block::Block;
use crate::error::AllocError;
use crate::pool::PoolSet;
use crate::request::{AllocationRequest, SharingKey};
pub(crate) use hashing::FastHasher;
use sharing::unindex;

/// The IPs a service holds and the pool they come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// Pool name (written to the `metallb.io/ip-allocated-from-pool` annotation).
    pub pool: String,
    /// One IP, or one per family (IPv4 first for a fresh dual-stack allocation).
    pub ips: Vec<IpAddr>,
}

/// A service's allocation and the request it was made for.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) request: AllocationRequest,
    pub(crate) allocation: Allocation,
}

/// Who uses one IP. Their ports are read from their requests in `Allocator::services`.
#[derive(Debug, Clone)]
struct IpUse {
    /// Sharing identity of the holders (all equal, or a single holder).
    key: SharingKey,
    /// The holders, sorted (almost always one or two).
    holders: Vec<ServiceKey>,
}

/// The allocation state of a cluster. Pure and synchronous; see the crate documentation for
/// the rules it applies.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pub(crate) pools: PoolSet,
    /// Per pool (same index as `pools.pools`), per address entry.
    pub(crate) blocks: Vec<Vec<Block>>,
    /// Hashed, not ordered: lookups dominate; ordered views sort on demand.
    pub(crate) services: HashMap<ServiceKey, Box<Held>, BuildHasherDefault<FastHasher>>,
    ips: HashMap<IpAddr, IpUse, BuildHasherDefault<FastHasher>>,
    /// IPs with a non-empty sharing key, by sharing identity, for finding shareable IPs.
    shareable: HashMap<SharingKey, BTreeSet<IpAddr>>,
}

impl Allocator {
    /// An allocator over `pools`, with nothing allocated.
    pub fn new(pools: PoolSet) -> Self {
        let blocks = build_blocks(&pools);
        Self {
            pools,
            blocks,
            ..Self::default()
        }
    }

    /// The current pools.
    pub fn pools(&self) -> &PoolSet {
        &self.pools
    }

    /// The allocation of `service`, if it holds IPs.
    pub fn allocation(&self, service: &ServiceKey) -> Option<&Allocation> {
        self.services.get(service).map(|h| &h.allocation)
    }

    /// The request `service`'s allocation was made for (families, ports, sharing key), if it
    /// holds IPs.
    pub fn request(&self, service: &ServiceKey) -> Option<&AllocationRequest> {
        self.services.get(service).map(|h| &h.request)
    }

    /// Every allocation with its request, in no particular order. O(n), no sorting.
    pub fn held(&self) -> impl Iterator<Item = (&AllocationRequest, &Allocation)> {
        self.services.values().map(|h| (&h.request, &h.allocation))
    }

    /// Every allocation, ordered by service. O(n log n): it sorts.
    pub fn allocations(&self) -> impl Iterator<Item = (&ServiceKey, &Allocation)> {
        self.held_in_order()
            .into_iter()
            .map(|(k, h)| (k, &h.allocation))
    }

    /// Every held allocation, ordered by service (O(n log n)).
    pub(crate) fn held_in_order(&self) -> Vec<(&ServiceKey, &Held)> {
        let mut all: Vec<(&ServiceKey, &Held)> =
            self.services.iter().map(|(k, h)| (k, h.as_ref())).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// Number of services holding IPs.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when no service holds an IP.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The services using `ip`, ordered.
    pub fn services_on(&self, ip: &IpAddr) -> Vec<&ServiceKey> {
        self.ips
            .get(ip)
            .map(|u| u.holders.iter().collect())
            .unwrap_or_default()
    }

    /// Pool index and block index of `ip` (counting `avoidBuggyIPs`).
    pub(crate) fn locate(&self, ip: &IpAddr) -> Option<(usize, usize)> {
        locate_in(&self.blocks, ip)
    }

    fn pool_name(&self, pool: usize) -> String {
        self.pools
            .pools
            .get(pool)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    }

    /// Gives `request.service` exactly `ips` (MetalLB's `Assign`), replacing what it held.
    ///
    /// Fails, leaving the service's previous allocation untouched, when the IPs are in no pool
    /// or in two pools, are avoided as buggy, the pool's `serviceAllocation` refuses the
    /// service, there are more than two IPs or two of one family, or an IP is used by a
    /// service that does not share with this one or holds one of its ports. Re-assigning the
    /// IPs a service already holds succeeds and updates its ports and sharing key.
    pub fn assign(
        &mut self,
        request: &AllocationRequest,
        ips: &[IpAddr],
    ) -> Result<Allocation, AllocError> {
        let service = &request.service;
        let pool = self.pool_of(service, ips)?;
        self.check_admission(request, pool)?;
        let bad_set = match ips {
            [_, _, _, ..] => Some("at most two IPs, one per family"),
            [a, b] if IpFamily::of(a) == IpFamily::of(b) => Some("two IPs of the same family"),
            _ => None,
        };
        if let Some(reason) = bad_set {
            return Err(AllocError::InvalidRequestedIps {
                service: service.clone(),
                ips: ips.to_vec(),
                reason: reason.into(),
            });
        }
        for ip in ips {
            self.check_sharing(request, ip)?;
        }
        Ok(self.record(request, pool, ips.to_vec()))
    }

    /// Records an allocation known to be legal.
    fn record(&mut self, request: &AllocationRequest, pool: usize, ips: Vec<IpAddr>) -> Allocation {
        let allocation = Allocation {
            pool: self.pool_name(pool),
            ips,
        };
        let held = Box::new(Held {
            request: request.clone(),
            allocation: allocation.clone(),
        });
        // One map traversal for both the old and the new allocation.
        if let Some(previous) = self.services.insert(request.service.clone(), held) {
            self.unhold(&request.service, &previous.allocation.ips);
        }
        for ip in &allocation.ips {
            let usage = match self.ips.entry(*ip) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    if let Some((p, b)) = locate_in(&self.blocks, ip)
                        && let Some(block) = self.blocks.get_mut(p).and_then(|v| v.get_mut(b))
                    {
                        block.mark_used(ip);
                    }
                    e.insert(IpUse {
                        key: request.sharing.clone(),
                        holders: Vec::with_capacity(1),
                    })
                }
            };
            if usage.key != request.sharing {
                unindex(&mut self.shareable, &usage.key, ip);
                usage.key = request.sharing.clone();
            }
            if usage.key.sharing.is_some() {
                self.shareable
                    .entry(usage.key.clone())
                    .or_default()
                    .insert(*ip);
            }
            if let Err(at) = usage.holders.binary_search(&request.service) {
                usage.holders.insert(at, request.service.clone());
            }
        }
        allocation
    }

    /// Frees everything `service` holds and returns it; `None` when it held nothing.
    pub fn release(&mut self, service: &ServiceKey) -> Option<Allocation> {
        let held = self.services.remove(service)?;
        self.unhold(service, &held.allocation.ips);
        Some(held.allocation)
    }

    /// Removes `service` from the holders of `ips`, freeing the IPs nobody else holds.
    fn unhold(&mut self, service: &ServiceKey, ips: &[IpAddr]) {
        for ip in ips {
            let Some(usage) = self.ips.get_mut(ip) else {
                continue;
            };
            usage.holders.retain(|h| h != service);
            if usage.holders.is_empty() {
                let key = usage.key.clone();
                self.ips.remove(ip);
                unindex(&mut self.shareable, &key, ip);
                if let Some((p, b)) = locate_in(&self.blocks, ip)
                    && let Some(block) = self.blocks.get_mut(p).and_then(|v| v.get_mut(b))
                {
                    block.mark_free(ip);
                }
            }
        }
    }

    /// Allocates automatically (MetalLB's `Allocate`). A service that already holds IPs keeps
    /// them (they are re-checked with [`Allocator::assign`]).
    ///
    /// Fails with [`AllocError::NoAvailableIps`] when no usable pool has room, or with the
    /// re-check's error.
    pub fn allocate_auto(&mut self, request: &AllocationRequest) -> Result<Allocation, AllocError> {
        if let Some(current) = self.allocation(&request.service).map(|a| a.ips.clone()) {
            return self.assign(request, &current);
        }
        self.allocate_fresh(request)
    }

    /// Automatic allocation for a service known to hold nothing.
    pub(crate) fn allocate_fresh(
        &mut self,
        request: &AllocationRequest,
    ) -> Result<Allocation, AllocError> {
        let (pinned, open) = self.automatic_pools(request);
        for pools in [pinned, open] {
            if let Some((_, ips)) = self.pick(&pools, request)
                && let Ok(allocation) = self.assign(request, &ips)
            {
                return Ok(allocation);
            }
        }
        Err(AllocError::NoAvailableIps {
            service: request.service.clone(),
        })
    }

    /// Allocates from the pool `pool` (the `address-pool` annotation), ignoring `autoAssign`
    /// but not `serviceAllocation`. A service already holding IPs of that pool keeps them; one
    /// holding IPs of another pool moves, and keeps its old IPs if the move fails.
    ///
    /// Fails when the pool is unknown, refuses the service, or has no free IP of a needed
    /// family.
    pub fn allocate_from_pool(
        &mut self,
        request: &AllocationRequest,
        pool: &str,
    ) -> Result<Allocation, AllocError> {
        let service = &request.service;
        let Some(index) = self.pools.index_of(pool) else {
            return Err(AllocError::UnknownPool {
                service: service.clone(),
                pool: pool.into(),
            });
        };
        if let Some(current) = self.allocation(service).filter(|a| a.pool == pool).cloned() {
            return self.assign(request, &current.ips);
        }
        self.replace(service, true, |a| a.take_from_pool(request, index))
    }

    /// Releases what `service` holds, runs `attempt`, and when it fails gives the service its
    /// previous IPs back if `keep_on_failure` (nothing else changed in between: every
    /// allocation step either succeeds or leaves the state as it was).
    pub(crate) fn replace<T, E>(
        &mut self,
        service: &ServiceKey,
        keep_on_failure: bool,
        attempt: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        let previous = self.services.get(service).map(|h| h.request.clone());
        let released = self.release(service);
        let result = attempt(self);
        if result.is_err()
            && keep_on_failure
            && let (Some(request), Some(old)) = (previous, released)
            && let Some(pool) = self.pool_index_for_all(&old.ips)
        {
            self.record(&request, pool, old.ips);
        }
        result
    }

    /// The pool holding every IP of `ips`, if one does (counting `avoidBuggyIPs`).
    pub(crate) fn pool_index_for_all(&self, ips: &[IpAddr]) -> Option<usize> {
        let mut pools = ips.iter().map(|ip| self.locate(ip).map(|(p, _)| p));
        let first = pools.next()??;
        pools.all(|p| p == Some(first)).then_some(first)
    }

    /// Name of the pool holding every IP of `ips`, or `""`.
    pub(crate) fn pool_name_for_all(&self, ips: &[IpAddr]) -> String {
        self.pool_index_for_all(ips)
            .map(|p| self.pool_name(p))
            .unwrap_or_default()
    }

    /// For a `PreferDualStack` service holding one IP, adds an IP of the missing family from
    /// the same pool (MetalLB's `AllocateFromPoolForAdditionalFamily`) and returns it.
    ///
    /// Returns `Ok(None)` when there is nothing to add (not dual-stack, nothing held, or both
    /// families held); fails when the pool has no free IP of the missing family.
    pub fn add_missing_family(
        &mut self,
        request: &AllocationRequest,
    ) -> Result<Option<IpAddr>, AllocError> {
        let Some(current) = self.allocation(&request.service).cloned() else {
            return Ok(None);
        };
        let [existing] = current.ips.as_slice() else {
            return Ok(None);
        };
        if !request.families.prefers_dual() {
            return Ok(None);
        }
        let Some(pool) = self.pools.index_of(&current.pool) else {
            return Ok(None);
        };
        let missing = IpFamily::of(existing).other();
        let ip =
            self.free_ips(pool, request)
                .get(missing)
                .ok_or_else(|| AllocError::PoolExhausted {
                    service: request.service.clone(),
                    pool: current.pool.clone(),
                    family: missing,
                })?;
        self.assign(request, &[*existing, ip])?;
        Ok(Some(ip))
    }
}

/// Pool index and block index of `ip` among `blocks`.
fn locate_in(blocks: &[Vec<Block>], ip: &IpAddr) -> Option<(usize, usize)> {
    blocks.iter().enumerate().find_map(|(p, bs)| {
        bs.iter()
            .position(|b| b.slot_of(ip).is_some())
            .map(|b| (p, b))
    })
}

/// One block per address entry of every pool.
pub(crate) fn build_blocks(pools: &PoolSet) -> Vec<Vec<Block>> {
    pools
        .pools
        .iter()
        .map(|p| {
            p.ranges()
                .map(|r| Block::new(*r, p.avoid_buggy_ips))
                .collect()
        })
        .collect()
}
