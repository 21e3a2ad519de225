//! What one reconcile asks the Kubernetes side to do for a Service: the status and annotation
//! writes (only when they differ from what the Service says), the events, and the Services to
//! look at next. Also the exact JSON merge-patch bodies of the writes.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use lb_core::ServiceKey;
use serde_json::{Value, json};

use crate::events::{self, Event};
use crate::service::{IP_ALLOCATED_FROM_POOL, PREFIX, ServiceView};

/// Why a reconcile did not reach the desired state (the `reason` label of
/// `lb_controller_reconcile_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReconcileError {
    /// No IP could be allocated.
    AllocationFailed,
    /// The Service's annotations or spec cannot be read (requested IPs, families).
    InvalidService,
}

impl ReconcileError {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllocationFailed => "allocation_failed",
            Self::InvalidService => "invalid_service",
        }
    }
}

/// The outcome of reconciling one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUpdate {
    /// The Service.
    pub key: ServiceKey,
    /// `status.loadBalancer.ingress` to write, when it differs from the Service's.
    pub status: Option<Vec<IpAddr>>,
    /// The `metallb.io/ip-allocated-from-pool` annotation to write (`Some(None)`: remove),
    /// when it differs from the Service's.
    pub pool_annotation: Option<Option<String>>,
    /// Events to emit on the Service.
    pub events: Vec<Event>,
    /// Services to reconcile next (waiting for an IP this one gave up).
    pub retry: Vec<ServiceKey>,
    /// Why the desired state was not reached.
    pub error: Option<ReconcileError>,
}

impl ServiceUpdate {
    /// An update that does nothing.
    pub fn new(key: ServiceKey) -> Self {
        Self {
            key,
            status: None,
            pool_annotation: None,
            events: Vec::new(),
            retry: Vec::new(),
            error: None,
        }
    }

    /// True when there is nothing to write, emit, retry or count.
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.pool_annotation.is_none()
            && self.events.is_empty()
            && self.retry.is_empty()
            && self.error.is_none()
    }

    /// True when the Service object must be written.
    pub fn writes(&self) -> bool {
        self.status.is_some() || self.pool_annotation.is_some()
    }

    /// Sets the writes that bring `svc` to `ips` from `pool`; adds a `deprecatedAnnotation`
    /// event per deprecated annotation when something is written (as MetalLB does).
    pub(crate) fn set_writes(
        &mut self,
        svc: &Service,
        view: &ServiceView,
        ips: &[IpAddr],
        pool: Option<&str>,
    ) {
        let current: Vec<(Option<&str>, bool)> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|list| {
                list.iter()
                    .map(|i| {
                        let extra =
                            i.hostname.is_some() || i.ip_mode.is_some() || i.ports.is_some();
                        (i.ip.as_deref(), extra)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let same = current.len() == ips.len()
            && current
                .iter()
                .zip(ips)
                .all(|((text, extra), ip)| !extra && *text == Some(ip.to_string().as_str()));
        if !same {
            self.status = Some(ips.to_vec());
        }
        let want = if ips.is_empty() { None } else { pool };
        let have = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(&format!("{PREFIX}{IP_ALLOCATED_FROM_POOL}")))
            .map(String::as_str);
        if want != have {
            self.pool_annotation = Some(want.map(String::from));
        }
        if self.writes() {
            self.events.extend(
                view.deprecated_annotations
                    .iter()
                    .map(|a| events::deprecated_annotation(a)),
            );
        }
    }
}

/// The JSON merge patch of the `status` subresource that sets
/// `status.loadBalancer.ingress` to `ips` (`{ip}` entries, as MetalLB writes them); an empty
/// list removes the field.
pub fn status_patch(ips: &[IpAddr]) -> Value {
    let ingress = if ips.is_empty() {
        Value::Null
    } else {
        Value::Array(
            ips.iter()
                .map(|ip| json!({ "ip": ip.to_string() }))
                .collect(),
        )
    };
    json!({ "status": { "loadBalancer": { "ingress": ingress } } })
}

/// The JSON merge patch of the Service that sets (or, for `None`, removes) the
/// `metallb.io/ip-allocated-from-pool` annotation.
pub fn pool_annotation_patch(pool: Option<&str>) -> Value {
    json!({
        "metadata": {
            "annotations": { format!("{PREFIX}{IP_ALLOCATED_FROM_POOL}"): pool }
        }
    })
}
