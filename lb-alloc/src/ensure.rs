//! The whole decision for one service, as the controller runs it on every sync (MetalLB's
//! `convergeBalancer` and `allocateIPs`): keep a still-valid allocation, clear one that is no
//! longer allowed, honour requested IPs and the pool annotation, allocate automatically
//! otherwise, and complete a `PreferDualStack` service with its missing family.

use std::fmt;
use std::net::IpAddr;

use crate::allocator::{Allocation, Allocator};
use crate::error::AllocError;
use crate::request::AllocationRequest;

/// Why a service's previous allocation was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearReason {
    /// The held IPs no longer match the service's families.
    FamilyChanged,
    /// The held IPs are no longer allowed (pool gone or shrunk, `serviceAllocation` no longer
    /// admits the service, sharing no longer possible).
    NoLongerAllowed(AllocError),
    /// The `address-pool` annotation names another pool.
    PoolChanged {
        /// The pool now requested.
        requested: String,
    },
    /// The requested IPs differ from the held ones.
    RequestedIpsChanged,
}

impl fmt::Display for ClearReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FamilyChanged => f.write_str("the service's IP families changed"),
            Self::NoLongerAllowed(e) => write!(f, "the current IPs are no longer allowed: {e}"),
            Self::PoolChanged { requested } => write!(f, "pool {requested:?} is requested"),
            Self::RequestedIpsChanged => f.write_str("other IPs are requested"),
        }
    }
}

/// A previous allocation that was dropped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    /// What the service held.
    pub previous: Allocation,
    /// Why it was dropped.
    pub reason: ClearReason,
}

/// The result of a successful [`Allocator::ensure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    /// What the service holds now.
    pub allocation: Allocation,
    /// True when the service got new IPs in this call (first allocation or after a clear).
    pub newly_allocated: bool,
    /// The previous allocation, when it was replaced.
    pub cleared: Option<Cleared>,
    /// For a `PreferDualStack` service holding one family: the IP added for the other family,
    /// or why none could be added (not an error of the whole call).
    pub additional_family: Option<Result<IpAddr, AllocError>>,
}

/// A failed [`Allocator::ensure`]: the error, and what happened to the previous allocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct EnsureError {
    /// Why the service has no (new) allocation.
    pub error: AllocError,
    /// The previous allocation, when it was dropped because it is no longer valid.
    pub cleared: Option<Cleared>,
    /// The previous allocation, when it is still valid and was kept although the request
    /// asked for a change (another pool or other IPs) that could not be made.
    pub kept: Option<Allocation>,
}

impl EnsureError {
    fn new(error: AllocError) -> Self {
        Self {
            error,
            cleared: None,
            kept: None,
        }
    }
}

impl Allocator {
    /// Brings `request.service` to a correct allocation and reports what changed.
    ///
    /// In order: the request's families and requested IPs are checked; a held allocation is
    /// re-checked and dropped when its families changed or it is no longer allowed; it is
    /// replaced when the request names another pool or other IPs; otherwise it is kept, and a
    /// `PreferDualStack` service holding one IP gets the other family from the same pool when
    /// one is free. A service without IPs gets its requested IPs, or IPs from its requested
    /// pool, or automatic IPs.
    ///
    /// Fails when the request is invalid or nothing can be allocated. A still-valid previous
    /// allocation is kept when a requested change fails (MetalLB drops it; see
    /// `docs/allocation.md`).
    pub fn ensure(&mut self, request: &AllocationRequest) -> Result<Ensured, EnsureError> {
        request.check_requested_ips().map_err(EnsureError::new)?;
        let Some((previous, unchanged)) = self
            .services
            .get(&request.service)
            .map(|h| (h.allocation.clone(), h.request == *request))
        else {
            return self.allocate_new(request).map(|allocation| Ensured {
                allocation,
                newly_allocated: true,
                cleared: None,
                additional_family: None,
            });
        };
        // An allocation stays legal while its request is unchanged: pool changes re-check
        // every allocation (`set_pools`), and other services are checked against this one.
        let reason = if !request.families.accepts(&previous.ips) {
            Some(ClearReason::FamilyChanged)
        } else if !unchanged && let Err(e) = self.assign(request, &previous.ips) {
            Some(ClearReason::NoLongerAllowed(e))
        } else {
            requested_change(request, &previous)
        };
        let Some(reason) = reason else {
            let additional_family = match self.add_missing_family(request) {
                Ok(None) => None,
                Ok(Some(ip)) => Some(Ok(ip)),
                Err(e) => Some(Err(e)),
            };
            let allocation = self
                .allocation(&request.service)
                .cloned()
                .unwrap_or(previous);
            return Ok(Ensured {
                allocation,
                newly_allocated: false,
                cleared: None,
                additional_family,
            });
        };
        let still_valid = matches!(
            reason,
            ClearReason::PoolChanged { .. } | ClearReason::RequestedIpsChanged
        );
        match self.replace(&request.service, still_valid, |a| a.allocate_new(request)) {
            Ok(allocation) => Ok(Ensured {
                allocation,
                newly_allocated: true,
                cleared: Some(Cleared { previous, reason }),
                additional_family: None,
            }),
            Err(mut failure) if still_valid => {
                failure.kept = Some(previous);
                Err(failure)
            }
            Err(mut failure) => {
                failure.cleared = Some(Cleared { previous, reason });
                Err(failure)
            }
        }
    }

    /// Allocation for a service holding nothing (MetalLB's `allocateIPs`).
    fn allocate_new(&mut self, request: &AllocationRequest) -> Result<Allocation, EnsureError> {
        if !request.requested_ips.is_empty() {
            if let Some(wanted) = &request.pool {
                let in_pool = Some(self.pool_name_for_all(&request.requested_ips))
                    .filter(|p| !p.is_empty() && p != wanted);
                if let Some(ip_pool) = in_pool {
                    return Err(EnsureError::new(AllocError::PoolMismatch {
                        service: request.service.clone(),
                        requested_pool: wanted.clone(),
                        ip_pool,
                    }));
                }
            }
            return self
                .assign(request, &request.requested_ips)
                .map_err(EnsureError::new);
        }
        match &request.pool {
            Some(pool) => self.allocate_from_pool(request, pool),
            None => self.allocate_fresh(request),
        }
        .map_err(EnsureError::new)
    }
}

/// What the request asks to change in a held allocation: another pool (the annotation) or
/// other IPs (`loadBalancerIPs` / `spec.loadBalancerIP`); `None` when it asks for nothing new.
pub(crate) fn requested_change(
    request: &AllocationRequest,
    held: &Allocation,
) -> Option<ClearReason> {
    if let Some(pool) = request.pool.as_ref().filter(|p| **p != held.pool) {
        return Some(ClearReason::PoolChanged {
            requested: pool.clone(),
        });
    }
    let ips = &request.requested_ips;
    let same = ips.len() == held.ips.len() && ips.iter().all(|ip| held.ips.contains(ip));
    (!ips.is_empty() && !same).then_some(ClearReason::RequestedIpsChanged)
}
