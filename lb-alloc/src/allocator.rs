//! The allocator: which service holds which IPs, and every rule deciding what it may get.
//!
//! All paths that give a service IPs end in [`Allocator::assign`], the one place that decides
//! whether a set of IPs is legal for a service (MetalLB's `Assign`): the IPs lie in one pool,
//! the pool admits the service, at most one IP per family, and each IP is free or shareable.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use lb_core::{IpFamily, ServiceKey, ServicePort};
use serde::{Deserialize, Serialize};

use crate::block::Block;
use crate::error::AllocError;
use crate::pool::PoolSet;
use crate::request::{AllocationRequest, Families, SharingKey};

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

    /// What stops `request.service` from using `ip`, if anything (MetalLB's `checkSharing`):
    /// the IP is usable when unused, used only by this service, or used by services that share
    /// with it and hold none of its ports. Allocation-free, for the candidate scan.
    fn sharing_conflict<'a>(
        &'a self,
        request: &AllocationRequest,
        ip: &IpAddr,
    ) -> Option<SharingConflict<'a>> {
        let usage = self.ips.get(ip)?;
        let me = &request.service;
        let mut others = usage.holders.iter().filter(|s| *s != me).peekable();
        let first_other = others.peek().copied()?;
        if usage.key.refusal(&request.sharing).is_some() {
            return Some(SharingConflict::Key {
                key: &usage.key,
                other: first_other,
            });
        }
        others.find_map(|other| {
            let theirs = &self.services.get(other)?.request.ports;
            let port = request.ports.iter().find(|p| theirs.contains(p))?;
            Some(SharingConflict::Port { port: *port, other })
        })
    }

    /// [`Allocator::sharing_conflict`] as an error naming the service, IP, port and holder.
    fn check_sharing(&self, request: &AllocationRequest, ip: &IpAddr) -> Result<(), AllocError> {
        match self.sharing_conflict(request, ip) {
            None => Ok(()),
            Some(SharingConflict::Key { key, other }) => Err(AllocError::SharingNotAllowed {
                service: request.service.clone(),
                ip: *ip,
                other: other.clone(),
                reason: key.refusal(&request.sharing).unwrap_or_default(),
            }),
            Some(SharingConflict::Port { port, other }) => Err(AllocError::PortInUse {
                service: request.service.clone(),
                ip: *ip,
                port,
                other: other.clone(),
            }),
        }
    }

    /// Fails when the pool's `serviceAllocation` does not admit the service.
    fn check_admission(&self, request: &AllocationRequest, pool: usize) -> Result<(), AllocError> {
        let service = &request.service;
        let refusal = self
            .pools
            .pools
            .get(pool)
            .and_then(|p| p.refusal(&service.namespace, &request.labels));
        match refusal {
            None => Ok(()),
            Some(reason) => Err(AllocError::PoolNotAllowed {
                service: service.clone(),
                pool: self.pool_name(pool),
                reason,
            }),
        }
    }

    /// The pool holding every IP of `ips`, or the error naming why there is none.
    fn pool_of(&self, service: &ServiceKey, ips: &[IpAddr]) -> Result<usize, AllocError> {
        let mut found: Option<(usize, IpAddr)> = None;
        for ip in ips {
            let Some((pool, _)) = self.locate(ip) else {
                return Err(
                    match self
                        .pools
                        .pools
                        .iter()
                        .find(|p| p.ranges().any(|r| r.contains(ip)))
                    {
                        Some(p) => AllocError::BuggyIpAvoided {
                            service: service.clone(),
                            ip: *ip,
                            pool: p.name.clone(),
                        },
                        None => AllocError::NotInAnyPool {
                            service: service.clone(),
                            ip: *ip,
                        },
                    },
                );
            };
            match found {
                Some((first_pool, first)) if first_pool != pool => {
                    return Err(AllocError::IpsInDifferentPools {
                        service: service.clone(),
                        first,
                        first_pool: self.pool_name(first_pool),
                        second: *ip,
                        second_pool: self.pool_name(pool),
                    });
                }
                Some(_) => {}
                None => found = Some((pool, *ip)),
            }
        }
        found
            .map(|(p, _)| p)
            .ok_or_else(|| AllocError::InvalidRequestedIps {
                service: service.clone(),
                ips: Vec::new(),
                reason: "no IP given".into(),
            })
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

    /// The address this service would get from one block: the lowest address that is unused
    /// or shareable with it (MetalLB scans the entry from its start and takes the first address
    /// `checkSharing` accepts; a shareable used address below the first unused one wins).
    fn candidate_in_block(&self, block: &Block, request: &AllocationRequest) -> Option<IpAddr> {
        let unused = block.lowest_free();
        let shared = request.sharing.sharing.as_ref().and_then(|_| {
            let ips = self.shareable.get(&request.sharing)?;
            let upper = unused.unwrap_or(block.range().last());
            ips.range(block.range().first()..=upper)
                .find(|ip| {
                    block.slot_of(ip).is_some() && self.sharing_conflict(request, ip).is_none()
                })
                .copied()
        });
        match (shared, unused) {
            (Some(s), Some(u)) => Some(s.min(u)),
            (s, u) => s.or(u),
        }
    }

    /// The first free IPv4 and IPv6 address of a pool for this service, entries scanned in
    /// configured order (MetalLB's `getFreeIPsFromPool`).
    fn free_ips(&self, pool: usize, request: &AllocationRequest) -> FreeIps {
        let mut free = FreeIps::default();
        for block in self.blocks.get(pool).into_iter().flatten() {
            let family = block.range().family();
            if free.get(family).is_none()
                && let Some(ip) = self.candidate_in_block(block, request)
            {
                free.set(family, ip);
            }
        }
        free
    }

    /// The IPs to take from the first suitable pool of `pools` (MetalLB's
    /// `findBestPoolForService` then `selectIPsForFamilyAndPolicy`).
    fn pick(&self, pools: &[usize], request: &AllocationRequest) -> Option<(usize, Vec<IpAddr>)> {
        let mut primary_only = None;
        let mut secondary_only = None;
        for &pool in pools {
            let free = self.free_ips(pool, request);
            match request.families {
                Families::Single(f) => {
                    if let Some(ip) = free.get(f) {
                        return Some((pool, vec![ip]));
                    }
                }
                Families::Dual { primary, required } => {
                    if let (Some(v4), Some(v6)) = (free.v4, free.v6) {
                        return Some((pool, vec![v4, v6]));
                    }
                    if required {
                        continue;
                    }
                    if primary_only.is_none() {
                        primary_only = free.get(primary).map(|ip| (pool, vec![ip]));
                    }
                    if secondary_only.is_none() {
                        secondary_only = free.get(primary.other()).map(|ip| (pool, vec![ip]));
                    }
                }
            }
        }
        primary_only.or(secondary_only)
    }

    /// Pools tried for automatic allocation, in order: first the pools pinned to the service
    /// (by namespace, service selector or priority alone) that auto-assign and admit it, by
    /// priority (lower first, 0 last) then name; then the auto-assign pools without any
    /// `serviceAllocation`, by name.
    fn automatic_pools(&self, request: &AllocationRequest) -> (Vec<usize>, Vec<usize>) {
        let ns = &request.service.namespace;
        let mut pinned: Vec<usize> = (0..self.pools.pools.len())
            .filter(|&i| {
                self.pools.pools.get(i).is_some_and(|p| {
                    p.auto_assign && p.pins(ns) && p.refusal(ns, &request.labels).is_none()
                })
            })
            .collect();
        pinned.sort_by_key(|&i| {
            let prio = self.pools.pools.get(i).map_or(0, |p| p.priority());
            (prio == 0, prio, i)
        });
        let open = (0..self.pools.pools.len())
            .filter(|&i| {
                self.pools
                    .pools
                    .get(i)
                    .is_some_and(|p| p.auto_assign && p.admission.is_none())
            })
            .collect();
        (pinned, open)
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

    fn take_from_pool(
        &mut self,
        request: &AllocationRequest,
        pool: usize,
    ) -> Result<Allocation, AllocError> {
        let service = &request.service;
        self.check_admission(request, pool)?;
        let name = self.pool_name(pool);
        let free = self.free_ips(pool, request);
        let exhausted = |family| AllocError::PoolExhausted {
            service: service.clone(),
            pool: name.clone(),
            family,
        };
        let ips = match request.families {
            Families::Single(f) => vec![free.get(f).ok_or_else(|| exhausted(f))?],
            Families::Dual { primary, required } => match (free.v4, free.v6) {
                (Some(v4), Some(v6)) => vec![v4, v6],
                _ if required => {
                    let missing = if free.v4.is_none() {
                        IpFamily::V4
                    } else {
                        IpFamily::V6
                    };
                    return Err(exhausted(missing));
                }
                _ => vec![
                    free.get(primary)
                        .or_else(|| free.get(primary.other()))
                        .ok_or_else(|| exhausted(primary))?,
                ],
            },
        };
        self.assign(request, &ips)
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

/// A fast hasher for the allocator's indexes (multiply-rotate over 8-byte words, then a
/// finaliser). Keys are IPs of the operator's pools and Service names; whoever can create
/// enough Services to force collisions can already exhaust the pools, so the indexes favour
/// speed over resistance to chosen keys.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // splitmix64's finaliser: spreads every input bit over the whole word, so the table's
        // low (bucket) and high (tag) bits both vary between neighbouring addresses.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word.iter_mut().zip(chunk).for_each(|(w, b)| *w = *b);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// Removes `ip` from the shareable index under `key`.
fn unindex(shareable: &mut HashMap<SharingKey, BTreeSet<IpAddr>>, key: &SharingKey, ip: &IpAddr) {
    if key.sharing.is_none() {
        return; // never indexed
    }
    if let Some(set) = shareable.get_mut(key) {
        set.remove(ip);
        if set.is_empty() {
            shareable.remove(key);
        }
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

/// Why a used IP cannot be given to a service.
enum SharingConflict<'a> {
    /// The holders' sharing identity refuses the service.
    Key {
        key: &'a SharingKey,
        other: &'a ServiceKey,
    },
    /// A holder uses one of the service's ports.
    Port {
        port: ServicePort,
        other: &'a ServiceKey,
    },
}

/// The first free address of each family found in a pool.
#[derive(Debug, Default, Clone, Copy)]
struct FreeIps {
    v4: Option<IpAddr>,
    v6: Option<IpAddr>,
}

impl FreeIps {
    fn get(self, family: IpFamily) -> Option<IpAddr> {
        match family {
            IpFamily::V4 => self.v4,
            IpFamily::V6 => self.v6,
        }
    }

    fn set(&mut self, family: IpFamily, ip: IpAddr) {
        match family {
            IpFamily::V4 => self.v4 = Some(ip),
            IpFamily::V6 => self.v6 = Some(ip),
        }
    }
}
