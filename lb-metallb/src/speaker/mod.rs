//! The speaker's decisions: what this node announces and the sessions it keeps, from the
//! cluster's objects and the live speakers ([`desired`]); what it reports about its node
//! ([`status`]); and its loop as a pure step ([`step`]). Data in, data out: the runtime in
//! `lb-k8s` feeds inputs (a file or the API server, and the membership view) and carries out
//! what these return.

pub mod inputs;
pub mod status;
pub mod step;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use lb_bgp::PeerConfig;
use lb_bgp::wire::Family;
use lb_core::Announcement;

pub use inputs::{Inputs, address_map, inputs_from_cluster, node_addresses};

use crate::announce::{self, Cluster, NodeAnnouncements, NodeState};
use crate::config::Config;
use crate::config::selector::any_matches;

/// Graceful-restart time offered when a peer enables graceful restart (FRR's default).
pub const GRACEFUL_RESTART_TIME: u16 = 120;

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
    /// BFD sessions this node runs, one per BGP session whose peer names a BFD profile.
    pub bfd: Vec<lb_bfd::PeerSpec>,
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
    let bfd = bfd_sessions(&inputs.config, &me_state);
    Desired {
        node: Arc::new(node),
        peers,
        bfd,
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

/// The BFD sessions node `me` runs: one for every BGP session it keeps whose peer names a
/// BFD profile, with the profile's timers; multihop (RFC 5883) when the peer is eBGP
/// multihop, from the peer's source address when it sets one. BFD's verdict applies to a
/// peer address: two peers on the same address (other ports or source addresses) share one
/// session, the first one's (by name).
pub fn bfd_sessions(config: &Config, me: &NodeState) -> Vec<lb_bfd::PeerSpec> {
    let ms = |v: u32| std::time::Duration::from_millis(u64::from(v));
    let mut out: BTreeMap<std::net::IpAddr, lb_bfd::PeerSpec> = BTreeMap::new();
    for p in config
        .peers
        .iter()
        .filter(|p| any_matches(&p.node_selectors, &me.labels))
    {
        let Some(profile) = p
            .bfd_profile
            .as_ref()
            .and_then(|n| config.bfd_profiles.get(n))
        else {
            continue;
        };
        let key = lb_bfd::PeerKey {
            peer: p.address,
            local: p.source_address,
            multihop: p.ebgp_multi_hop,
        };
        out.entry(p.address).or_insert(lb_bfd::PeerSpec {
            key,
            config: lb_bfd::SessionConfig {
                desired_min_tx: ms(profile.transmit_interval),
                required_min_rx: ms(profile.receive_interval),
                detect_mult: u8::try_from(profile.detect_multiplier).unwrap_or(u8::MAX),
                passive: profile.passive_mode,
            },
            minimum_ttl: profile
                .minimum_ttl
                .and_then(|t| u8::try_from(t).ok())
                .unwrap_or(254),
        });
    }
    out.into_values().collect()
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
