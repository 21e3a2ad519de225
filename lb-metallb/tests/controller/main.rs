//! Tests of the controller's pure decision layer (`lb_metallb::controller`): golden scenarios
//! replayed step by step against a simulated API server, and property and unit tests of the
//! contract (configuration rejection, affected Services, idempotence, restart safety, pool
//! status counts).
//!
//! # Golden scenarios
//!
//! Every `tests/golden/controller/<case>.yaml` is one scenario: a list of steps, each applying
//! or deleting objects in the simulated cluster, then (in this order) optionally restarting
//! the controller, re-applying the configuration, running the restore pass and reconciling
//! Services. The writes of every update are applied to the cluster's copy of the Service as
//! the JSON merge patches `status_patch` / `pool_annotation_patch` produce, so the next step
//! sees what the API server would hold. What each step did is written to `<case>.json`;
//! `UPDATE_GOLDEN=1 cargo test -p lb-metallb --test controller` rewrites those files. Each step
//! may also carry `expect:` assertions that hold whatever the golden says, and every Service
//! converged in a step must afterwards record exactly what the allocator holds for it.
//!
//! Step fields: `note` (required), `apply` (objects, added or replacing the object of the same
//! kind, namespace and name), `patch` (JSON merge patches by `Kind/namespace/name`, as
//! `kubectl patch --type merge`), `delete` (`Kind/name` or `Kind/namespace/name`), `restart`
//! (a fresh controller state), `config` (`apply_config` on the cluster's objects), `restore`,
//! `reconcile` (Service keys), `reconcileAffected` (also reconcile what `apply_config`
//! named), `followRetry` (also reconcile what updates list in `retry`, as the runtime does),
//! and `expect` with `affected`, `rejected`, `pending`, `holds` (`"pool ip,ip"` or `"none"`),
//! `reasons` (event reasons per Service, over the step), `writes` (exactly the Services
//! written) and `retry` (per Service). After every write, no IP written for a Service may be
//! recorded by another Service of this controller unless both carry the same sharing key.
//!
//! # Properties
//!
//! `restart_property`: a restore of random Services (families, requested pools, sharing,
//! recorded IPs from the pools or from nowhere, unreadable ones) leaves no IP held twice,
//! every status in its annotated pool, and a second restore writes nothing. `loop_property`:
//! random Service edits, deletions, pool changes and restarts, each followed by the
//! reconciles the runtime would run, keep status, annotation and allocator in step.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use lb_core::ServiceKey;
use lb_metallb::controller::{
    ConfigOutcome, ControllerState, ReconcileError, ServiceUpdate, Settings, pool_annotation_patch,
    status_patch,
};
use lb_metallb::events::Event;
use lb_metallb::input::Objects;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[path = "../support/mod.rs"]
mod support;

use support::{check, root};

mod contract;
mod harness;
mod loop_property;
mod regressions;
mod restart_property;

use harness::*;

macro_rules! golden {
    ($($test:ident => $case:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            scenario($case);
        }
    )*};
}

golden! {
    golden_first_allocation => "first-allocation",
    golden_restart_restore => "restart-restore",
    golden_dual_stack => "dual-stack",
    golden_requested_ip => "requested-ip",
    golden_both_requested_forms => "both-requested-forms",
    golden_deprecated_annotation => "deprecated-annotation",
    golden_not_load_balancer => "not-load-balancer",
    golden_lb_class => "lb-class",
    golden_pool_deleted => "pool-deleted",
    golden_pool_shrunk => "pool-shrunk",
    golden_pool_renamed => "pool-renamed",
    golden_delete_unblocks_pending => "delete-unblocks-pending",
    golden_sharing => "sharing",
    golden_ip_from_no_pool => "ip-from-no-pool",
    golden_invalid_service_restore => "invalid-service-restore",
}
