//! The speaker's API-server source: reflectors on Services, EndpointSlices, Nodes and the
//! `metallb.io` objects, turned into [`Inputs`] after every relevant change.
//!
//! Unlike the file source, nothing is allocated here: a Service's IPs are the ones the
//! controller recorded in its status. The caches keep only what the decision reads (a
//! Node's labels, addresses and `NetworkUnavailable` condition; an EndpointSlice's endpoints
//! without their targets; nothing but the type of a Service that is not a LoadBalancer), and
//! an update that changes none of it wakes nobody: Node heartbeats and ClusterIP Services
//! never cause a recomputation.

use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use tokio::sync::mpsc;

use lb_metallb::announce::{NodeState, slice_endpoints, slice_service};
use lb_metallb::config::Config;
use lb_metallb::config::ConfigErrors;
use lb_metallb::grace::{DeletionGrace, Held};
use lb_metallb::input::Objects;
use lb_metallb::plan::PlanOptions;
use lb_metallb::service;
use lb_metallb::speaker::{Inputs, inputs_from_cluster, node_addresses};

use crate::reflect::{ConfigStores, Trigger, Watch, cloned, config_trigger, labels_hash, reflect};

/// The speaker's caches.
#[derive(Clone)]
pub struct SpeakerStores {
    /// Services, all namespaces (only the type of those that are not LoadBalancers).
    pub services: Store<Service>,
    /// EndpointSlices, all namespaces, without their targets and ports.
    pub endpoint_slices: Store<EndpointSlice>,
    /// Nodes: labels, addresses, the `NetworkUnavailable` condition.
    pub nodes: Store<Node>,
    /// The configuration kinds in MetalLB's namespace.
    pub config: ConfigStores,
}

impl SpeakerStores {
    /// Starts one reflector per kind, each sending a [`Trigger`] to `tx` when something the
    /// decision reads changed.
    pub fn start(client: &Client, namespace: &str, tx: &mpsc::UnboundedSender<Trigger>) -> Self {
        let c = || client.clone();
        Self {
            services: reflect(
                Api::all(c()),
                tx.clone(),
                Watch {
                    map: config_trigger,
                    relevant: Some(service_relevance),
                    trim: trim_service,
                },
            ),
            endpoint_slices: reflect(
                Api::all(c()),
                tx.clone(),
                Watch {
                    map: config_trigger,
                    relevant: Some(slice_relevance),
                    trim: trim_slice,
                },
            ),
            nodes: reflect(
                Api::all(c()),
                tx.clone(),
                Watch {
                    map: config_trigger,
                    relevant: Some(node_relevance),
                    trim: trim_node,
                },
            ),
            config: ConfigStores::start(client, namespace, tx),
        }
    }

    /// Waits until every reflector has listed its objects once.
    ///
    /// Fails when a reflector stopped.
    pub async fn wait_until_ready(&self) -> Result<(), crate::Error> {
        self.services.wait_until_ready().await?;
        self.endpoint_slices.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        self.config.wait_until_ready().await
    }

    /// The inputs the caches hold now.
    ///
    /// Fails when the configuration is invalid.
    /// Deleted configuration objects are kept in force by `grace` ([`DeletionGrace`]); what
    /// it did comes back too.
    pub fn inputs(
        &self,
        options: &PlanOptions,
        grace: &mut DeletionGrace,
    ) -> (Result<Inputs, ConfigErrors>, Held) {
        let mut objects = Objects {
            nodes: cloned(&self.nodes),
            ..self.config.objects()
        };
        let held = grace.hold(&mut objects, std::time::Instant::now(), |o| {
            Config::from_objects_in(o, &options.namespace).is_ok()
        });
        let services = self.services.state();
        let slices = self.endpoint_slices.state();
        let inputs = inputs_from_cluster(
            &objects,
            services.iter().map(AsRef::as_ref),
            slices.iter().map(AsRef::as_ref),
            options,
        );
        (inputs, held)
    }
}

fn hash_of(value: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// A Service that is not a LoadBalancer keeps only its identity and type; a LoadBalancer
/// loses the `kubectl apply` copy of itself.
fn trim_service(svc: &mut Service) {
    if is_load_balancer(svc) {
        if let Some(a) = svc.metadata.annotations.as_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
        return;
    }
    svc.metadata.annotations = None;
    svc.metadata.labels = None;
    svc.metadata.owner_references = None;
    svc.metadata.finalizers = None;
    svc.spec = Some(ServiceSpec {
        type_: svc.spec.as_ref().and_then(|s| s.type_.clone()),
        ..ServiceSpec::default()
    });
    svc.status = None;
}

/// What the decision reads of a Service; every non-LoadBalancer Service reads the same.
fn service_relevance(svc: &Service) -> u64 {
    if !is_load_balancer(svc) {
        return 0;
    }
    let view = service::view(svc);
    // `ServiceView` holds no hashable IP set of its own; its debug form covers every field.
    hash_of(&format!("{view:?}"))
}

/// Keeps what [`slice_endpoints`] reads.
fn trim_slice(slice: &mut EndpointSlice) {
    slice.metadata.annotations = None;
    slice.metadata.owner_references = None;
    slice.ports = None;
    for e in slice.endpoints.iter_mut().flatten() {
        e.target_ref = None;
        e.hostname = None;
        e.hints = None;
        e.zone = None;
        e.deprecated_topology = None;
    }
}

fn slice_relevance(slice: &EndpointSlice) -> u64 {
    let endpoints: Vec<(Option<String>, bool, bool)> = slice_endpoints(slice)
        .map(|e| (e.node, e.usable, e.has_addresses))
        .collect();
    hash_of(&(slice_service(slice), endpoints))
}

/// Keeps a Node's labels, addresses and `NetworkUnavailable` condition (without its
/// timestamps, which move with every heartbeat).
fn trim_node(node: &mut Node) {
    node.metadata.annotations = None;
    node.spec = None;
    let Some(status) = node.status.take() else {
        return;
    };
    let conditions = status.conditions.map(|c| {
        c.into_iter()
            .filter(|c| c.type_ == "NetworkUnavailable")
            .map(|c| NodeCondition {
                type_: c.type_,
                status: c.status,
                ..NodeCondition::default()
            })
            .collect()
    });
    node.status = Some(NodeStatus {
        addresses: status.addresses,
        conditions,
        ..NodeStatus::default()
    });
}

fn node_relevance(node: &Node) -> u64 {
    hash_of(&(
        labels_hash(node),
        NodeState::from_node(node).network_unavailable,
        node_addresses(node),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, ServiceStatus};

    fn lb(name: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn cluster_ip_services_are_trimmed_and_never_relevant() {
        let mut svc = lb("a");
        if let Some(s) = svc.spec.as_mut() {
            s.type_ = Some("ClusterIP".into());
            s.cluster_ip = Some("203.0.113.1".into());
        }
        let before = service_relevance(&svc);
        trim_service(&mut svc);
        assert_eq!(before, 0);
        assert_eq!(service_relevance(&svc), 0);
        assert!(svc.metadata.annotations.is_none());
        assert_eq!(
            svc.spec.as_ref().and_then(|s| s.cluster_ip.clone()),
            None,
            "only the type is kept"
        );
    }

    #[test]
    fn a_load_balancer_ip_change_is_relevant_and_the_apply_copy_goes() {
        let mut a = lb("a");
        trim_service(&mut a);
        assert!(
            a.metadata
                .annotations
                .as_ref()
                .is_some_and(|x| x.is_empty())
        );
        let mut b = a.clone();
        b.status = Some(ServiceStatus::default());
        assert_ne!(service_relevance(&a), service_relevance(&b));
        let mut c = a.clone();
        c.metadata.resource_version = Some("42".into());
        assert_eq!(service_relevance(&a), service_relevance(&c));
    }

    #[test]
    fn node_heartbeats_are_not_relevant_but_network_unavailable_is() {
        let mut node = Node::default();
        node.metadata.name = Some("n1".into());
        node.status = Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                address: "192.0.2.1".into(),
                type_: "InternalIP".into(),
            }]),
            conditions: Some(vec![
                NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..NodeCondition::default()
                },
                NodeCondition {
                    type_: "NetworkUnavailable".into(),
                    status: "False".into(),
                    message: Some("ok".into()),
                    ..NodeCondition::default()
                },
            ]),
            ..NodeStatus::default()
        });
        let base = node_relevance(&node);
        let mut heartbeat = node.clone();
        if let Some(c) = heartbeat
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .and_then(|c| c.first_mut())
        {
            c.status = "False".into();
        }
        assert_eq!(node_relevance(&heartbeat), base);
        let mut down = node.clone();
        if let Some(c) = down
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .and_then(|c| c.get_mut(1))
        {
            c.status = "True".into();
        }
        assert_ne!(node_relevance(&down), base);
        trim_node(&mut node);
        let conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions.first().map(|c| c.message.clone()), Some(None));
        assert_eq!(node_addresses(&node).len(), 1);
    }
}
