//! The Kubernetes side of the load balancer: MetalLB-compatible custom resources, the one
//! configuration validator, translation into the pure allocation and announcement configs,
//! the per-node desired announcements, the legacy ConfigMap converter, and the offline
//! `plan` engine behind the `lb-k8s` binary.
//!
//! Everything in this library is pure: it takes objects and returns data. The binary adds
//! file reading and printing.

pub mod announce;
pub mod config;
pub mod controller;
pub mod crd;
pub mod duration;
pub mod events;
pub mod input;
pub mod legacy;
pub mod membership;
pub mod plan;
pub mod runtime;
pub mod service;
pub mod speaker;
