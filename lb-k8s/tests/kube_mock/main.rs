//! Tests of the controller's Kubernetes I/O (`lb_k8s::controller`) against kube's mocked API
//! service (`tower-test`): the [`Writer`], the lease [`Elector`], the [`Engine`] and the
//! reflectors of [`Stores::start`] talk to a scripted API server that checks every request
//! (method, path, query, content type, JSON body) in order and answers the way the real one
//! would (the object, or a `Status` with the HTTP code). A missing, extra or different request
//! fails the test; every wait is bounded.
//!
//! The same scenarios, replayed into one shared log, feed the RBAC checks: every
//! (verb, group, resource) the controller uses must be granted to its ServiceAccount by
//! `deploy/rbac.yaml`, and every grant of its ClusterRole and Role must be used (least
//! privilege).
//!
//! The speaker's side is tested the same way, with scenarios and an RBAC log of its own: its
//! [`StatusWriter`] (adopting, creating, patching and deleting its `ServiceL2Status` /
//! `ServiceBGPStatus` objects, the `nodeAssigned` / `announceFailed` events; the writes of one
//! sync run concurrently, so the script accepts them in any order), its `ConfigurationState`
//! `speaker-NODE`, and the reflectors of [`SpeakerStores::start`].
//!
//! Only documentation prefixes are used for IPs (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, Store, store::Writer as StoreWriter};
use kube::runtime::watcher;
use lb_core::ServiceKey;
use lb_k8s::controller::metrics::Metrics;
use lb_k8s::controller::{Engine, Stores};
use lb_k8s::http::Encode;
use lb_k8s::lease::{Elector, LeaseSettings, Round};
use lb_k8s::reflect::{ConfigStores, Trigger};
use lb_k8s::speaker::cluster::SpeakerStores;
use lb_k8s::speaker::status::StatusWriter;
use lb_k8s::writer::{Writer, configuration_state};
use lb_metallb::announce::EndpointState;
use lb_metallb::controller::{ServiceUpdate, Settings};
use lb_metallb::crd::{IPAddressPool, IPAddressPoolStatus};
use lb_metallb::events;
use lb_metallb::plan::PlanOptions;
use lb_metallb::speaker::status::{Kind, Owned, Report};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tower_test::mock;

/// MetalLB's namespace.
const NS: &str = "metallb-system";
/// The longest wait for one request or one answer.
const WAIT: Duration = Duration::from_secs(10);
/// How long a test listens for a request that must not come.
const QUIET: Duration = Duration::from_millis(200);
/// The wall time the lease tests write, and its `MicroTime` form.
const WALL: &str = "2024-05-06T07:08:09.123456Z";
/// A later wall time.
const WALL_LATER: &str = "2024-05-06T07:08:14.654321Z";

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/metallb-system/leases";
const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/metallb-system/leases/lb-k8s-controller";
const CONFIGURATION_STATES: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates";
const CONFIGURATION_STATE: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/controller";
const CONFIGURATION_STATE_STATUS: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/controller/status";
const POOLS: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools";
const MERGE_PATCH: &str = "application/merge-patch+json";
/// The note of the `ClearAssignment` of Service default/a when pool `default` shrinks from
/// 203.0.113.0/28 to 203.0.113.8/29.
const CLEARED_BY_SHRINK: &str = "current IP [\"203.0.113.5\"] cleared: the current IPs are no longer allowed: service default/a: 203.0.113.5 is not in any address pool";

/// Declares one test per scenario and a function that runs them all into one log (for RBAC).
macro_rules! scenario_tests {
    ($run_all:ident: $($module:ident::$name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                $module::$name(&Log::default()).await;
            }
        )*

        /// Every scenario, one after the other, logging into `log`.
        async fn $run_all(log: &Log) {
            $( $module::$name(log).await; )*
        }
    };
}

mod api;
mod engine;
mod lease;
mod objects;
mod rbac;
mod regressions;
mod speaker_reflectors;
mod speaker_status;
mod speaker_support;
mod writer;

use api::*;
use objects::*;
use speaker_support::*;

scenario_tests!(
    run_all:
    writer::writer_service_writes_status_annotation_then_event,
    writer::writer_service_clears_status_and_annotation,
    writer::writer_service_stops_at_a_failed_status_patch,
    writer::writer_service_stops_at_a_failed_annotation_patch,
    writer::writer_service_ignores_a_refused_event,
    writer::writer_service_every_event_is_created,
    writer::writer_pool_status_patches_the_status_subresource,
    writer::writer_configuration_state_created_then_valid,
    writer::writer_configuration_state_invalid_when_present,
    writer::writer_configuration_state_conflict_and_failure,
    writer::writer_memberlist_secret,
    lease::lease_created_when_missing,
    lease::lease_renewed_by_its_holder,
    lease::lease_taken_over_after_a_duration_unchanged,
    lease::lease_of_a_renewing_holder_is_not_taken,
    lease::lease_released_is_taken_at_once,
    lease::lease_conflict_is_follower,
    lease::lease_release,
    lease::lease_release_after_losing_it_writes_nothing,
    engine::engine_start_delete_pool_change_and_invalid_config,
    engine::engine_retries_a_failed_service_write,
    engine::engine_pool_replace_moves_nothing,
    // Last: its reflector tasks outlive it.
    engine::reflectors_list_then_watch_every_kind,
);

scenario_tests!(
    run_all_speaker:
    speaker_status::status_adopt_keeps_one_object_per_service,
    speaker_status::status_sync_creates_patches_and_deletes,
    speaker_status::status_sync_recreates_an_object_deleted_behind_its_back,
    speaker_status::status_sync_retries_failed_writes,
    speaker_status::status_announce_failed_event_without_l2_status,
    speaker_status::status_sync_bounds_writes_in_flight,
    speaker_status::speaker_configuration_state_created_then_valid,
    // Last: its reflector tasks outlive it.
    speaker_status::speaker_reflectors_list_then_watch_every_kind,
);
