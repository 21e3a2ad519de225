//! The speaker: what this node announces and the sessions it keeps, from the cluster's
//! objects and the live speakers, and the runtime that hands it to `lb_l2` and `lb_bgp`.
//!
//! The decision is pure ([`desired`]); the runtime ([`run`]) only feeds it inputs (a file or
//! the API server, and the membership view) and applies its output.

pub mod cluster;
pub mod metrics;
pub mod run;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use lb_bgp::PeerConfig;
use lb_bgp::wire::Family;
use lb_core::Announcement;

use crate::announce::{self, Cluster, NodeAnnouncements, NodeState, ServiceState};
use crate::config::Config;
use crate::config::selector::any_matches;
use crate::input::Objects;
use crate::plan::{PlanOptions, Prepared, prepare};

/// Graceful-restart time offered when a peer enables graceful restart (FRR's default).
pub const GRACEFUL_RESTART_TIME: u16 = 120;

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

    /// The node `name` as the rules see it (a node without labels when unknown).
    pub fn node(&self, name: &str) -> NodeState {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .cloned()
            .unwrap_or_else(|| NodeState::unknown(name))
    }
}

/// The live speakers as the decision sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness {
    /// Nodes whose speaker is alive; `None` when membership is off (every node counts as
    /// alive, as in MetalLB without memberlist).
    pub alive: Option<BTreeSet<String>>,
    /// False while a starting speaker has not heard from the cluster yet: it then makes no
    /// layer-2 announcement, so it cannot claim IPs another node owns.
    pub settled: bool,
}

/// What this node should do now.
///
/// The speaker keeps its last decision for as long as it stands, so the decision is kept in
/// one form only: the per-service [`Announcement`]s the backends take are derived from it on
/// demand ([`Desired::announcements`]), and the metrics share it.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// What it announces and why not, per service and protocol.
    pub node: Arc<NodeAnnouncements>,
    /// BGP sessions this node keeps.
    pub peers: Vec<PeerConfig>,
    /// Layer-2 announcements held back because the view is not settled.
    pub l2_held: bool,
}

/// Computes what node `me` announces and which sessions it keeps.
pub fn desired(inputs: &Inputs, me: &str, liveness: &Liveness) -> Desired {
    let mut live: BTreeSet<String> = match &liveness.alive {
        Some(alive) => alive.clone(),
        None => inputs.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    live.insert(me.to_string());
    let cluster = Cluster {
        config: &inputs.config,
        services: &inputs.services,
        nodes: &inputs.nodes,
        live_speakers: &live,
        ignore_exclude_lb: inputs.ignore_exclude_lb,
    };
    let mut node = announce::for_node(cluster, me);
    let l2_held = !liveness.settled && !node.l2.is_empty();
    if l2_held {
        node.l2.clear();
    }
    let me_state = inputs.node(me);
    let peers = session_peers(&inputs.config, &me_state);
    Desired {
        node: Arc::new(node),
        peers,
        l2_held,
    }
}

impl Desired {
    /// The decision as the per-service [`Announcement`]s the backends take (IPs from
    /// `inputs`, which must be the inputs it was made from).
    pub fn announcements(&self, inputs: &Inputs) -> Vec<Announcement> {
        self.node.to_announcements(&inputs.services)
    }
}

/// The BGP sessions node `me` keeps: every peer whose node selectors match it, as `lb_bgp`
/// peer settings.
pub fn session_peers(config: &Config, me: &NodeState) -> Vec<PeerConfig> {
    config
        .peers
        .iter()
        .filter(|p| any_matches(&p.node_selectors, &me.labels))
        .map(|p| {
            let mut c = PeerConfig::new(p.name.clone(), p.address, p.my_asn, p.peer_asn);
            c.port = p.port;
            c.router_id = p.router_id;
            c.source = p.source_address;
            c.hold_time = u16::try_from(p.hold_time.as_secs()).unwrap_or(u16::MAX);
            c.ebgp_multihop = p.ebgp_multi_hop.then_some(255);
            c.password.clone_from(&p.password);
            c.graceful_restart = p.graceful_restart.then_some(GRACEFUL_RESTART_TIME);
            if let Some(t) = p.connect_time {
                c.connect_timeout = t;
            }
            c.families = if p.dual_stack_address_family {
                vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
            } else if p.address.is_ipv4() {
                vec![Family::IPV4_UNICAST]
            } else {
                vec![Family::IPV6_UNICAST]
            };
            c
        })
        .collect()
}

/// The router ID to use when a peer sets none: the node's first IPv4 address.
pub fn default_router_id(inputs: &Inputs, me: &str) -> Option<Ipv4Addr> {
    inputs.addresses.get(me).and_then(|a| {
        a.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
    })
}
