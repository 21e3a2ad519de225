//! MetalLB-compatible IP address allocation for `type: LoadBalancer` Services.
//!
//! Pure and synchronous: no I/O, no async runtime, no Kubernetes client. The caller turns
//! Kubernetes objects into an [`IpAddressPool`] list (validated into a [`PoolSet`]) and an
//! [`AllocationRequest`] per Service, and writes back what the [`Allocator`] decides.
//!
//! The rules are MetalLB's (see `docs/allocation.md` for each rule and every deliberate
//! deviation):
//! - pools hold CIDRs and `a-b` ranges of both families; network and broadcast addresses are
//!   allocatable, `avoidBuggyIPs` skips IPv4 `.0`/`.255` only; pools never overlap;
//! - a service gets its requested IPs, or IPs from the pool it names (even with
//!   `autoAssign: false`), or automatic IPs: pinned pools by priority first, then the pools
//!   without `serviceAllocation`; within a pool, the lowest address that is free or shareable;
//! - IPs are shared only between services with the same non-empty sharing key and backend key
//!   and no common (protocol, port);
//! - both IPs of a dual-stack service come from one pool.
//!
//! Cost: no structure grows with pool size (an IPv6 `/48` is as cheap as a `/30`); each
//! operation is O(log n) in the number of allocations, plus the shareable IPs of the same
//! sharing key that are skipped for a port collision.
//!
//! ```
//! use lb_alloc::{Allocator, AllocationRequest, IpAddressPool, PoolSet, NamespaceLabels};
//! use lb_core::{IpFamily, ServiceKey};
//!
//! let pools = PoolSet::new(&[IpAddressPool::new("default", ["192.0.2.0/30"])], &NamespaceLabels::new())?;
//! let mut allocator = Allocator::new(pools);
//! let web = AllocationRequest::new(ServiceKey::new("default", "web"), IpFamily::V4);
//! let got = allocator.ensure(&web)?;
//! assert_eq!(got.allocation.ips, ["192.0.2.0".parse::<std::net::IpAddr>()?]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod allocator;
mod block;
mod ensure;
mod error;
mod lifecycle;
mod pool;
mod request;
mod selector;
mod stats;

pub use address::{AddressError, AddressRange, is_buggy_ip};
pub use allocator::{Allocation, Allocator};
pub use ensure::{ClearReason, Cleared, EnsureError, Ensured};
pub use error::{AllocError, ConfigErrors};
pub use lifecycle::{PoolChange, RestoreReport, Snapshot, SnapshotEntry};
pub use pool::{IpAddressPool, NamespaceLabels, Pool, PoolSet, ServiceAllocation};
pub use request::{AllocationRequest, Families, SharingKey};
pub use selector::{
    LabelSelector, Labels, SelectorError, SelectorOperator, SelectorRequirement, render_labels,
};
pub use stats::PoolStats;
