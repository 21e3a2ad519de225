//! MetalLB's configuration model and every decision made from it, as plain data in and data
//! out: no tokio, no Kubernetes client, no sockets, no clock (time is an argument).
//!
//! - [`crd`]: the `metallb.io` custom resources (types and schemas only);
//! - [`input`]: the objects a decision reads, loaded from YAML; [`legacy`]: the pre-v0.13
//!   ConfigMap, converted to those objects;
//! - [`config`]: the one validator, and its translation into [`lb_alloc`] pools and the
//!   announcement rules; [`service`]: a Service as the rules see it (annotations, families,
//!   ports); [`duration`]: Go durations as MetalLB writes them;
//! - [`announce`]: what each node announces (layer-2 election, BGP) and why not;
//! - [`controller`]: the controller's decisions (IPs, status patches, events, which Services
//!   a change affects); [`events`]: MetalLB's Service events;
//! - [`speaker`]: the speaker's decisions, its status report and its loop as a pure step;
//! - [`plan`]: the offline engine behind `lb-k8s plan`, built from the same pieces.
//!
//! A controller that wants to embed the validator, the election or the allocation rules takes
//! this crate without the runtime of `lb-k8s`.

pub mod announce;
pub mod config;
pub mod controller;
pub mod crd;
pub mod duration;
pub mod events;
pub mod grace;
pub mod input;
pub mod legacy;
pub mod plan;
pub mod service;
pub mod speaker;
