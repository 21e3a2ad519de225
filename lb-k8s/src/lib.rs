//! The Kubernetes shell of the load balancer: the reflectors both daemons share
//! ([`reflect`]), the writer of statuses and events ([`writer`]), Lease election ([`lease`]),
//! the controller's and the speaker's runtimes ([`controller`], [`speaker`]) that feed events
//! to the pure decisions of [`lb_metallb`] and carry out what they return, the metrics and
//! health endpoints ([`http`]), allocator tuning ([`sys`]) and the `lb-k8s` binary.
//!
//! Every decision lives in [`lb_metallb`]; the speakers' membership in [`lb_membership`]; this
//! crate only waits, reads and writes.

pub use error::Error;

pub mod controller;
pub mod error;
pub mod http;
pub mod lease;
pub mod reflect;
pub mod speaker;
pub mod sys;
pub mod writer;

/// Logs what the deletion grace period did.
pub(crate) fn log_grace(held: &lb_metallb::grace::Held) {
    for o in &held.kept {
        tracing::info!(object = %o, grace_s = lb_metallb::grace::DELETION_GRACE.as_secs(), "deleted; kept in force for the grace period (created again meanwhile, nothing moves)");
    }
    for o in &held.recreated {
        tracing::info!(object = %o, "created again within the grace period: the new object is in force");
    }
    for o in &held.expired {
        tracing::info!(object = %o, "deleted and not created again: removed");
    }
    for o in &held.dropped {
        tracing::info!(object = %o, "deleted; dropped at once (the objects in force conflict with it)");
    }
}
