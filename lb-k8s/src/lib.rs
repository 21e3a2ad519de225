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
