//! The Kubernetes shell of the load balancer: reflectors, the writer (status, events), Lease
//! election, the controller and speaker runtimes that feed events to the pure decisions of
//! [`lb_metallb`] and carry out what they return, the metrics and health endpoints, and the
//! `lb-k8s` binary.
//!
//! Every decision lives in [`lb_metallb`]; the speakers' membership in [`lb_membership`]; this
//! crate only waits, reads and writes.

pub mod runtime;
pub mod speaker;
