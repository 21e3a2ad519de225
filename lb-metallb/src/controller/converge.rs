//! One Service's allocation step, shared by the controller and the offline plan: taking back
//! the IPs a Service records after a restart, and converging it (MetalLB's
//! `convergeBalancer`), with the events each step emits.

use std::net::IpAddr;

use lb_alloc::{AllocationRequest, Allocator, ClearReason};

use crate::events::{self, Event};

/// Takes back the IPs `ips` a Service records in its status (the first pass after a restart).
///
/// Returns the `ClearAssignment` event when they cannot be kept: they no longer fit the
/// Service's families, or the rules no longer allow them (pool gone or shrunk,
/// `serviceAllocation`, sharing), or another Service took them back first.
pub fn take_back(
    allocator: &mut Allocator,
    request: &AllocationRequest,
    ips: &[IpAddr],
) -> Option<Event> {
    let reason = if request.families.accepts(ips) {
        allocator
            .assign(request, ips)
            .err()
            .map(ClearReason::NoLongerAllowed)
    } else {
        Some(ClearReason::FamilyChanged)
    };
    reason.map(|r| events::cleared(ips, &r))
}

/// What converging one Service produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converged {
    /// The IPs it holds now (what `status.loadBalancer.ingress` must say).
    pub ips: Vec<IpAddr>,
    /// Their pool (the `metallb.io/ip-allocated-from-pool` annotation).
    pub pool: Option<String>,
    /// Why it has no (new) IPs, when the allocation failed.
    pub error: Option<String>,
    /// Events to emit.
    pub events: Vec<Event>,
}

/// Brings the Service of `request` to a correct allocation ([`Allocator::ensure`]) and says
/// what it holds and which events to emit.
///
/// A failure is reported in [`Converged::error`]; a still-valid allocation the failure kept
/// stays in [`Converged::ips`].
pub fn converge(allocator: &mut Allocator, request: &AllocationRequest) -> Converged {
    let mut out = Converged::default();
    match allocator.ensure(request) {
        Ok(e) => {
            if let Some(c) = &e.cleared {
                out.events.push(events::cleared(&c.previous.ips, &c.reason));
            }
            if e.newly_allocated {
                out.events.push(events::allocated(&e.allocation.ips));
            }
            match &e.additional_family {
                Some(Ok(ip)) => out.events.push(events::allocated_additional(ip)),
                Some(Err(err)) => out.events.push(events::additional_failed(err)),
                None => {}
            }
            out.ips = e.allocation.ips;
            out.pool = Some(e.allocation.pool);
        }
        Err(e) => {
            if let Some(c) = &e.cleared {
                out.events.push(events::cleared(&c.previous.ips, &c.reason));
            }
            if let Some(kept) = e.kept {
                out.ips = kept.ips;
                out.pool = Some(kept.pool);
            } else if let Some(held) = allocator.allocation(&request.service).cloned() {
                // The request was refused before the held allocation was looked at (e.g.
                // requested IPs of the wrong family). The Service keeps what its current
                // families, pool rules and sharing key still allow, and the status says so;
                // the rest is cleared.
                let current = AllocationRequest {
                    requested_ips: Vec::new(),
                    ..request.clone()
                };
                match take_back(allocator, &current, &held.ips) {
                    None => {
                        out.ips = held.ips;
                        out.pool = Some(held.pool);
                    }
                    Some(event) => {
                        allocator.release(&request.service);
                        out.events.push(event);
                    }
                }
            }
            let service = &request.service;
            out.events.push(events::allocation_failed(
                &service.namespace,
                &service.name,
                &e.error,
            ));
            out.error = Some(e.error.to_string());
        }
    }
    out
}
