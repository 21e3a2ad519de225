//! The speaker's runtime: it feeds the pure decision ([`lb_metallb::speaker`]) its inputs (a
//! file or the API server, and the membership view) and carries out what it returns through
//! `lb_l2` and `lb_bgp`, the status objects and the metrics.

pub mod cluster;
pub mod metrics;
pub mod run;
pub mod status;
