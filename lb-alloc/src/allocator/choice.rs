//! Which pool and which IPs a request gets: the pools that admit it (namespaces, selectors,
//! `autoAssign`, priority), the first free (or shareable) IP of each family in a block.

use std::net::IpAddr;

use lb_core::{IpFamily, ServiceKey};

use super::{Allocation, Allocator};
use crate::block::Block;
use crate::error::AllocError;
use crate::request::{AllocationRequest, Families};

impl Allocator {
    /// Fails when the pool's `serviceAllocation` does not admit the service.
    pub(super) fn check_admission(
        &self,
        request: &AllocationRequest,
        pool: usize,
    ) -> Result<(), AllocError> {
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
    pub(super) fn pool_of(
        &self,
        service: &ServiceKey,
        ips: &[IpAddr],
    ) -> Result<usize, AllocError> {
        let mut found: Option<(usize, IpAddr)> = None;
        for ip in ips {
            let Some((pool, _)) = self.locate(ip) else {
                if ip.is_unspecified() {
                    return Err(AllocError::UnspecifiedIp {
                        service: service.clone(),
                        ip: *ip,
                    });
                }
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

    /// The address this service would get from one block: the lowest address that is unused
    /// or shareable with it (MetalLB scans the entry from its start and takes the first address
    /// `checkSharing` accepts; a shareable used address below the first unused one wins).
    pub(super) fn candidate_in_block(
        &self,
        block: &Block,
        request: &AllocationRequest,
    ) -> Option<IpAddr> {
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
    pub(super) fn free_ips(&self, pool: usize, request: &AllocationRequest) -> FreeIps {
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
    pub(super) fn pick(
        &self,
        pools: &[usize],
        request: &AllocationRequest,
    ) -> Option<(usize, Vec<IpAddr>)> {
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
    pub(super) fn automatic_pools(&self, request: &AllocationRequest) -> (Vec<usize>, Vec<usize>) {
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

    pub(super) fn take_from_pool(
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
}

/// The first free address of each family found in a pool.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FreeIps {
    pub(super) v4: Option<IpAddr>,
    pub(super) v6: Option<IpAddr>,
}

impl FreeIps {
    pub(super) fn get(self, family: IpFamily) -> Option<IpAddr> {
        match family {
            IpFamily::V4 => self.v4,
            IpFamily::V6 => self.v6,
        }
    }

    pub(super) fn set(&mut self, family: IpFamily, ip: IpAddr) {
        match family {
            IpFamily::V4 => self.v4 = Some(ip),
            IpFamily::V6 => self.v6 = Some(ip),
        }
    }
}
