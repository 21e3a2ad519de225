//! When a used IP may be given to another service too (MetalLB's sharing rules): the same
//! sharing key and backend key (or MetalLB's automatic sharing), and no port in common.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use lb_core::{ServiceKey, ServicePort};

use super::Allocator;
use crate::error::AllocError;
use crate::request::{AllocationRequest, SharingKey};

impl Allocator {
    /// What stops `request.service` from using `ip`, if anything (MetalLB's `checkSharing`):
    /// the IP is usable when unused, used only by this service, or used by services that share
    /// with it and hold none of its ports. Allocation-free, for the candidate scan.
    pub(super) fn sharing_conflict<'a>(
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
    pub(super) fn check_sharing(
        &self,
        request: &AllocationRequest,
        ip: &IpAddr,
    ) -> Result<(), AllocError> {
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
}

/// Why a used IP cannot be given to a service.
pub(super) enum SharingConflict<'a> {
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

/// Removes `ip` from the shareable index under `key`.
pub(super) fn unindex(
    shareable: &mut HashMap<SharingKey, BTreeSet<IpAddr>>,
    key: &SharingKey,
    ip: &IpAddr,
) {
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
