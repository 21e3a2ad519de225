//! What the speaker's decision reads ([`Inputs`]), from a file the way `plan` reads it
//! ([`Inputs::from_objects`]) or from the cluster's objects with the IPs the controller recorded
//! ([`inputs_from_cluster`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::announce::{NodeState, ServiceState, endpoint_index};
use crate::config::{Config, ConfigErrors};
use crate::input::{LoadError, Objects, load};
use crate::plan::{PlanOptions, Prepared, prepare};
use crate::service;

/// Why the speaker's inputs could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InputsError {
    /// A text could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The configuration is invalid (every error, on one line).
    #[error("{}", .0.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(#[from] ConfigErrors),
}

/// Everything the decision needs except the live speakers.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The validated configuration.
    pub config: Config,
    /// LoadBalancer Services with their IPs.
    pub services: Vec<ServiceState>,
    /// Every Node, in name order.
    pub nodes: Vec<NodeState>,
    /// Addresses of each node (`status.addresses`, InternalIP first), by name.
    pub addresses: BTreeMap<String, Vec<IpAddr>>,
    /// Announce from nodes labelled to be excluded anyway.
    pub ignore_exclude_lb: bool,
    /// Accepted but worth telling the operator.
    pub warnings: Vec<String>,
}

/// The addresses of a Node, InternalIP ones first, each once.
pub fn node_addresses(node: &Node) -> Vec<IpAddr> {
    let mut all: Vec<(bool, IpAddr)> = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| {
            a.address
                .parse::<IpAddr>()
                .ok()
                .map(|ip| (a.type_ != "InternalIP", ip))
        })
        .collect();
    all.sort_by_key(|(external, _)| *external);
    let mut seen = BTreeSet::new();
    all.into_iter()
        .filter(|(_, ip)| seen.insert(*ip))
        .map(|(_, ip)| ip)
        .collect()
}

/// Every Node's addresses ([`node_addresses`]), by name.
pub fn address_map(nodes: &[Node]) -> BTreeMap<String, Vec<IpAddr>> {
    nodes
        .iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                node_addresses(n),
            )
        })
        .collect()
}

impl Inputs {
    /// Reads the inputs from objects the way `plan` does: Services without IPs get the IPs
    /// the controller would give them, so every speaker fed the same file agrees with `plan`.
    ///
    /// Fails when the configuration is invalid.
    pub fn from_objects(
        objects: &Objects,
        options: &PlanOptions,
    ) -> Result<Self, crate::config::ConfigErrors> {
        let Prepared {
            config,
            services,
            nodes,
            warnings,
            ..
        } = prepare(objects, options)?;
        let addresses = address_map(&objects.nodes);
        Ok(Self {
            config,
            services,
            nodes,
            addresses,
            ignore_exclude_lb: options.ignore_exclude_lb,
            warnings,
        })
    }

    /// Loads the inputs from YAML texts ([`crate::input::load`], legacy ConfigMaps converted)
    /// and reads them as [`Inputs::from_objects`] does: what the file-source speaker runs on.
    ///
    /// Fails when a text cannot be loaded or the configuration is invalid.
    pub fn load<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
        options: &PlanOptions,
    ) -> Result<Self, InputsError> {
        let objects = load(sources)?;
        Ok(Self::from_objects(&objects, options)?)
    }

    /// The node `name` as the rules see it (a node without labels when unknown).
    pub fn node(&self, name: &str) -> NodeState {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .cloned()
            .unwrap_or_else(|| NodeState::unknown(name))
    }
}

/// Builds the inputs from the cluster's objects: the configuration (and Nodes) in `objects`,
/// the Services with the IPs their status records, their endpoints from `slices`.
///
/// Services that are not LoadBalancers, belong to another class or hold no IP are left out
/// (there is nothing to announce for them). Fails when the configuration is invalid.
pub fn inputs_from_cluster<'a>(
    objects: &Objects,
    services: impl Iterator<Item = &'a Service>,
    slices: impl Iterator<Item = &'a EndpointSlice>,
    options: &PlanOptions,
) -> Result<Inputs, ConfigErrors> {
    let config = Config::from_objects_in(objects, &options.namespace)?;
    let mut warnings = objects.warnings.clone();
    warnings.extend(config.warnings.iter().cloned());
    let mut endpoints = endpoint_index(slices);
    let mut states: Vec<ServiceState> = services
        .filter(|s| service::handled_by(s, options.lb_class.as_deref()))
        .map(service::view)
        .filter(|v| v.is_load_balancer && !v.ingress_ips.is_empty())
        .map(|view| ServiceState {
            endpoints: endpoints.remove(&view.key).unwrap_or_default(),
            view: view.into(),
        })
        .collect();
    // The order the stores hold is arbitrary; the decision must not depend on it.
    states.sort_by(|a, b| a.view.key.cmp(&b.view.key));
    crate::announce::compact_services(&mut states);
    let mut nodes: Vec<NodeState> = objects.nodes.iter().map(NodeState::from_node).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let addresses = address_map(&objects.nodes);
    Ok(Inputs {
        config,
        services: states,
        nodes,
        addresses,
        ignore_exclude_lb: options.ignore_exclude_lb,
        warnings,
    })
}
