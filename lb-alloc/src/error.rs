//! The one error type of the allocation layer. Every variant names what an operator needs to
//! find the problem (pool, entry, service, IP, port); the texts become Kubernetes events.

use std::fmt;
use std::net::IpAddr;

use lb_core::{IpFamily, ServiceKey, ServicePort};

use crate::address::AddressError;

/// An allocation or pool-configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    // --- pool configuration -------------------------------------------------------------
    /// A pool without a name.
    #[error("pool #{index}: name is empty")]
    EmptyPoolName {
        /// Position of the pool in the input.
        index: usize,
    },
    /// Two pools with one name.
    #[error("pool {pool:?}: defined more than once")]
    DuplicatePool {
        /// The repeated name.
        pool: String,
    },
    /// A pool without any address entry.
    #[error("pool {pool:?}: spec.addresses: pool has no addresses")]
    NoAddresses {
        /// The pool.
        pool: String,
    },
    /// An address entry that cannot be parsed.
    #[error("pool {pool:?}: spec.addresses[{index}]: {entry:?}: {reason}")]
    InvalidAddress {
        /// The pool.
        pool: String,
        /// Position of the entry in `spec.addresses`.
        index: usize,
        /// The entry as written.
        entry: String,
        /// Why it was rejected.
        reason: AddressError,
    },
    /// Two address entries (of one pool or of two pools) share addresses.
    #[error(
        "pool {pool:?}: address {entry:?} overlaps with {other_entry:?} of pool {other_pool:?}"
    )]
    Overlap {
        /// The pool of the entry reported.
        pool: String,
        /// The entry reported.
        entry: String,
        /// The pool of the entry it overlaps with (may be the same pool).
        other_pool: String,
        /// The entry it overlaps with.
        other_entry: String,
    },
    /// A namespace listed twice in `serviceAllocation.namespaces`.
    #[error(
        "pool {pool:?}: spec.serviceAllocation.namespaces: {namespace:?} listed more than once"
    )]
    DuplicateNamespace {
        /// The pool.
        pool: String,
        /// The repeated namespace.
        namespace: String,
    },
    /// A malformed or repeated label selector.
    #[error("pool {pool:?}: spec.serviceAllocation.{field}[{index}]: {reason}")]
    InvalidSelector {
        /// The pool.
        pool: String,
        /// `namespaceSelectors` or `serviceSelectors`.
        field: &'static str,
        /// Position of the selector.
        index: usize,
        /// What is wrong.
        reason: String,
    },

    // --- the request itself --------------------------------------------------------------
    /// The service's families do not make sense (for example `RequireDualStack` with one
    /// family).
    #[error("service {service}: {reason}")]
    InvalidFamilies {
        /// The service.
        service: ServiceKey,
        /// What is wrong.
        reason: String,
    },
    /// The requested IPs cannot be used as a set (too many, two of a family, wrong family).
    #[error("service {service}: requested IPs {}: {reason}", ShowIps(ips))]
    InvalidRequestedIps {
        /// The service.
        service: ServiceKey,
        /// The requested IPs.
        ips: Vec<IpAddr>,
        /// What is wrong.
        reason: String,
    },

    // --- pool choice ---------------------------------------------------------------------
    /// A requested IP lies in no pool.
    #[error("service {service}: {ip} is not in any address pool")]
    NotInAnyPool {
        /// The service.
        service: ServiceKey,
        /// The IP.
        ip: IpAddr,
    },
    /// A requested IP is the unspecified address (`0.0.0.0`, `::`), which is never handed out.
    #[error("service {service}: {ip} is the unspecified address and is never allocated")]
    UnspecifiedIp {
        /// The service.
        service: ServiceKey,
        /// The IP.
        ip: IpAddr,
    },
    /// A requested IP is `.0`/`.255` in a pool with `avoidBuggyIPs`.
    #[error("service {service}: {ip} is avoided by pool {pool:?} (avoidBuggyIPs)")]
    BuggyIpAvoided {
        /// The service.
        service: ServiceKey,
        /// The IP.
        ip: IpAddr,
        /// The pool.
        pool: String,
    },
    /// The requested IPs lie in two different pools.
    #[error(
        "service {service}: {first} (pool {first_pool:?}) and {second} (pool {second_pool:?}) are in different pools"
    )]
    IpsInDifferentPools {
        /// The service.
        service: ServiceKey,
        /// First IP.
        first: IpAddr,
        /// Its pool.
        first_pool: String,
        /// Second IP.
        second: IpAddr,
        /// Its pool.
        second_pool: String,
    },
    /// The pool named by the annotation does not exist.
    #[error("service {service}: unknown pool {pool:?}")]
    UnknownPool {
        /// The service.
        service: ServiceKey,
        /// The pool name.
        pool: String,
    },
    /// The pool's `serviceAllocation` does not admit this service.
    #[error("service {service}: pool {pool:?} is not allowed: {reason}")]
    PoolNotAllowed {
        /// The service.
        service: ServiceKey,
        /// The pool.
        pool: String,
        /// Namespace or selector mismatch.
        reason: String,
    },
    /// The requested IPs are in another pool than the one the pool annotation asks for.
    #[error(
        "service {service}: requested IPs are in pool {ip_pool:?}, not in the requested pool {requested_pool:?}"
    )]
    PoolMismatch {
        /// The service.
        service: ServiceKey,
        /// The pool from the annotation.
        requested_pool: String,
        /// The pool holding the requested IPs.
        ip_pool: String,
    },
    /// The named pool has no free address of the needed family.
    #[error("service {service}: no available {family} IPs in pool {pool:?}")]
    PoolExhausted {
        /// The service.
        service: ServiceKey,
        /// The pool.
        pool: String,
        /// The family that ran out.
        family: IpFamily,
    },
    /// No pool the service may use automatically has room.
    #[error("service {service}: no available IPs")]
    NoAvailableIps {
        /// The service.
        service: ServiceKey,
    },

    // --- sharing -------------------------------------------------------------------------
    /// The IP is used by services that do not share with this one.
    #[error("service {service}: {ip} is in use by {other} and cannot be shared: {reason}")]
    SharingNotAllowed {
        /// The service asking.
        service: ServiceKey,
        /// The IP.
        ip: IpAddr,
        /// One of the services holding it.
        other: ServiceKey,
        /// Missing or different sharing key, or different backend key.
        reason: String,
    },
    /// The IP is shareable but a port is already taken on it.
    #[error("service {service}: port {port} on {ip} is already used by {other}")]
    PortInUse {
        /// The service asking.
        service: ServiceKey,
        /// The IP.
        ip: IpAddr,
        /// The colliding port.
        port: ServicePort,
        /// The service holding that port.
        other: ServiceKey,
    },
}

/// Prints a list of IPs as `[a, b]`.
struct ShowIps<'a>(&'a [IpAddr]);

impl fmt::Display for ShowIps<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "[{}]", parts.join(", "))
    }
}

/// All errors found in a pool configuration; a pool set is accepted only without any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<AllocError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for ConfigErrors {}
