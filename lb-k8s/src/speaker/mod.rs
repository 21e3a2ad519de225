//! The speaker's runtime: it feeds the pure decision ([`lb_metallb::speaker`]) its inputs (a
//! file or the API server, and the membership view) and carries out what it returns through
//! `lb_l2` and `lb_bgp`, the status objects and the metrics.

pub mod cluster;
mod drive;
pub mod metrics;
pub mod run;
pub mod source;
pub mod status;

/// How often a failed API write is retried.
const RETRY: std::time::Duration = std::time::Duration::from_secs(5);
