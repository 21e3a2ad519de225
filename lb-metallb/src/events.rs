//! The Kubernetes events the controller and the speaker emit on Services, with MetalLB's
//! reasons and messages (reference f), built in one place for the daemons and the offline plan.

use std::net::IpAddr;

use lb_alloc::ClearReason;
use serde::Serialize;

use crate::service;

/// A Kubernetes event about a Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// MetalLB's reason (`IPAllocated`, `AllocationFailed`, ...).
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

impl Event {
    /// A `Normal` event.
    pub fn normal(reason: &'static str, message: String) -> Self {
        Self {
            kind: "Normal",
            reason,
            message,
        }
    }

    /// A `Warning` event.
    pub fn warning(reason: &'static str, message: String) -> Self {
        Self {
            kind: "Warning",
            reason,
            message,
        }
    }

    /// True for a `Warning`.
    pub fn is_warning(&self) -> bool {
        self.kind == "Warning"
    }
}

/// `IPAllocated`: the Service got `ips`.
pub fn allocated(ips: &[IpAddr]) -> Event {
    Event::normal("IPAllocated", format!("Assigned IP {}", show(ips)))
}

/// `IPAllocated`: a `PreferDualStack` Service got its second family.
pub fn allocated_additional(ip: &IpAddr) -> Event {
    Event::normal("IPAllocated", format!("Assigned additional IP {ip}"))
}

/// `AdditionalAssignFailed`: the second family of a `PreferDualStack` Service is unavailable.
pub fn additional_failed(error: &dyn std::fmt::Display) -> Event {
    Event::normal(
        "AdditionalAssignFailed",
        format!("Failed to assign the additional family: {error}"),
    )
}

/// `AllocationFailed`: nothing could be allocated for `namespace/name`.
pub fn allocation_failed(namespace: &str, name: &str, error: &dyn std::fmt::Display) -> Event {
    Event::warning(
        "AllocationFailed",
        format!("Failed to allocate IP for \"{namespace}/{name}\": {error}"),
    )
}

/// `ClearAssignment`: the Service loses `ips`.
pub fn cleared(ips: &[IpAddr], reason: &ClearReason) -> Event {
    Event::normal(
        "ClearAssignment",
        format!("current IP {} cleared: {reason}", show(ips)),
    )
}

/// `ClearAssignment`: the Service stopped being a LoadBalancer this controller handles.
pub fn cleared_not_load_balancer(ips: &[IpAddr]) -> Event {
    Event::normal(
        "ClearAssignment",
        format!(
            "current IP {} cleared: the service is no longer a LoadBalancer handled here",
            show(ips)
        ),
    )
}

/// The Warning for a Service the controller cannot read (reason from
/// [`service::ServiceError::event_reason`]).
pub fn invalid_service(error: &service::ServiceError) -> Event {
    Event::warning(error.event_reason(), error.to_string())
}

/// `deprecatedAnnotation`, one per deprecated `metallb.universe.tf/*` key.
pub fn deprecated_annotation(key: &str) -> Event {
    Event::warning(
        "deprecatedAnnotation",
        format!(
            "annotation {key} is deprecated, use {}",
            key.replace(service::DEPRECATED_PREFIX, service::PREFIX)
        ),
    )
}

/// IPs as MetalLB prints them: `["192.0.2.1", "2001:db8::1"]`.
pub fn show(ips: &[IpAddr]) -> String {
    let parts: Vec<String> = ips
        .iter()
        .map(|ip| format!("{:?}", ip.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// `nodeAssigned` (speaker): node `node` announces the Service over `protocol` (`layer2` or
/// `bgp`).
pub fn node_assigned(node: &str, protocol: &str) -> Event {
    Event::normal(
        "nodeAssigned",
        format!("announcing from node {node:?} with protocol {protocol:?}"),
    )
}

/// `announceFailed` (speaker): node `node` is elected for the Service over layer 2, but none
/// of the interfaces its L2Advertisements name exists there.
pub fn announce_failed(node: &str, interfaces: &[String]) -> Event {
    Event::warning(
        "announceFailed",
        format!(
            "node {node:?} has none of the interfaces the L2Advertisements allow ({}): not announced",
            interfaces.join(", ")
        ),
    )
}
