//! What one node announces, computed from data alone: the configuration, the Services with
//! their IPs, their endpoints, the Nodes and which speakers are alive. MetalLB's speaker
//! rules (reference c.1 and c.2), every "not announced" with MetalLB's reason.
//!
//! Every speaker that sees the same inputs computes the same answer for every node, which is
//! what makes the stateless layer-2 election work.

mod bgp;
mod l2;
mod reason;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use lb_alloc::Labels;
use lb_core::{
    Announcement, BgpAttributes, Community, L2Attributes, LargeCommunity, ServiceKey, TrafficPolicy,
};
use serde::Serialize;

pub use reason::NotAnnouncedReason;

use crate::config::{Config, labels_of};
use crate::service::ServiceView;

/// The label that keeps a node from announcing (unless `--ignore-exclude-lb`).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// A node as the announcement rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// Node name.
    pub name: String,
    /// Node labels.
    pub labels: Labels,
    /// The `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
}

impl NodeState {
    /// Reads a Node object.
    pub fn from_node(node: &Node) -> Self {
        let network_unavailable = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True")
            });
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: labels_of(&node.metadata),
            network_unavailable,
        }
    }

    /// A node the inputs do not list: no labels, network available.
    pub fn unknown(name: &str) -> Self {
        Self {
            name: name.to_string(),
            labels: Labels::new(),
            network_unavailable: false,
        }
    }

    fn excluded(&self, ignore_exclude_lb: bool) -> bool {
        !ignore_exclude_lb && self.labels.contains_key(EXCLUDE_LABEL)
    }
}

/// One endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointState {
    /// The node it runs on.
    pub node: Option<String>,
    /// Ready (or unset), or serving: MetalLB's "can serve".
    pub usable: bool,
    /// It has at least one address.
    pub has_addresses: bool,
}

/// The Service an EndpointSlice belongs to (its `kubernetes.io/service-name` label, in its
/// namespace).
pub fn slice_service(slice: &EndpointSlice) -> Option<ServiceKey> {
    let name = slice
        .metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/service-name")?;
    Some(ServiceKey::new(
        slice.metadata.namespace.as_deref().unwrap_or("default"),
        name.as_str(),
    ))
}

/// The endpoints one EndpointSlice lists.
pub fn slice_endpoints(slice: &EndpointSlice) -> impl Iterator<Item = EndpointState> + '_ {
    slice.endpoints.iter().flatten().map(|e| {
        let c = e.conditions.as_ref();
        let ready = c.and_then(|c| c.ready);
        let serving = c.and_then(|c| c.serving);
        EndpointState {
            node: e.node_name.clone(),
            usable: ready.unwrap_or(true) || serving == Some(true),
            has_addresses: !e.addresses.is_empty(),
        }
    })
}

/// The endpoints of every Service, from all EndpointSlices in one pass (a slice belongs to
/// the Service its `kubernetes.io/service-name` label names, in its namespace).
pub fn endpoint_index<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> HashMap<ServiceKey, Vec<EndpointState>> {
    let mut index: HashMap<ServiceKey, Vec<EndpointState>> = HashMap::new();
    for slice in slices {
        if let Some(key) = slice_service(slice) {
            index.entry(key).or_default().extend(slice_endpoints(slice));
        }
    }
    index
}

/// Makes Services of one namespace share one allocation of the namespace's name (each key
/// is read with its own copy), and drops growth slack: a speaker keeps its Services for as
/// long as they stand, thousands of them in one or a few namespaces.
pub fn compact_services(services: &mut Vec<ServiceState>) {
    let mut names: HashSet<std::sync::Arc<str>> = HashSet::new();
    for s in services.iter_mut() {
        s.view.ingress_ips.shrink_to_fit();
        s.endpoints.shrink_to_fit();
        let key = &mut s.view.key;
        match names.get(&key.namespace) {
            Some(shared) => key.namespace = std::sync::Arc::clone(shared),
            None => {
                names.insert(std::sync::Arc::clone(&key.namespace));
            }
        }
    }
    services.shrink_to_fit();
}

/// What the announcement rules read of a Service: less than half of a [`ServiceView`], since
/// a speaker holds one for every LoadBalancer Service of the cluster for as long as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFacts {
    /// Namespace and name.
    pub key: ServiceKey,
    /// `spec.type == LoadBalancer`.
    pub is_load_balancer: bool,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// Its IPs: the ones recorded in its status, or the ones `plan` gives it.
    pub ingress_ips: Vec<IpAddr>,
    /// Labels (advertisements select Services by them).
    pub labels: Labels,
    /// The sharing key annotation.
    pub sharing_key: Option<Box<str>>,
}

impl From<ServiceView> for ServiceFacts {
    fn from(v: ServiceView) -> Self {
        Self {
            key: v.key,
            is_load_balancer: v.is_load_balancer,
            traffic_policy: v.traffic_policy,
            ingress_ips: v.ingress_ips,
            labels: v.labels,
            sharing_key: v.sharing_key.map(String::into_boxed_str),
        }
    }
}

/// A service as the announcement rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceState {
    /// Identity, labels, traffic policy, sharing key, IPs (`ingress_ips`).
    pub view: ServiceFacts,
    /// Its endpoints.
    pub endpoints: Vec<EndpointState>,
}

impl ServiceState {
    fn has_usable_endpoint(&self) -> bool {
        self.endpoints.iter().any(|e| e.usable)
    }

    fn has_usable_endpoint_on(&self, node: &str) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.usable && e.has_addresses && e.node.as_deref() == Some(node))
    }

    fn is_local(&self) -> bool {
        self.view.traffic_policy == TrafficPolicy::Local
    }
}

/// Everything the rules need.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    /// The validated configuration.
    pub config: &'a Config,
    /// Services (only LoadBalancer Services with IPs are considered).
    pub services: &'a [ServiceState],
    /// All nodes.
    pub nodes: &'a [NodeState],
    /// Nodes whose speaker is alive.
    pub live_speakers: &'a BTreeSet<String>,
    /// Announce from nodes labelled [`EXCLUDE_LABEL`] anyway (`--ignore-exclude-lb`).
    pub ignore_exclude_lb: bool,
}

/// Protocol of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnounceProtocol {
    /// ARP / NDP.
    Layer2,
    /// BGP.
    Bgp,
}

/// A layer-2 announcement of one IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct L2Entry {
    /// The Service (`namespace/name` in JSON).
    #[serde(serialize_with = "as_string")]
    pub service: ServiceKey,
    /// The IP.
    pub ip: IpAddr,
    /// Interfaces to announce on; empty means all eligible interfaces.
    pub interfaces: Vec<String>,
}

/// A BGP advertisement of one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BgpEntry {
    /// The Service (`namespace/name` in JSON).
    #[serde(serialize_with = "as_string")]
    pub service: ServiceKey,
    /// The prefix (IP masked to the aggregation length).
    pub prefix: ipnet::IpNet,
    /// Peers it goes to.
    pub peers: Vec<String>,
    /// Standard communities (`a:b` in JSON).
    #[serde(serialize_with = "as_strings")]
    pub communities: Vec<Community>,
    /// Large communities (`large:a:b:c` in JSON).
    #[serde(serialize_with = "as_strings")]
    pub large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF (iBGP sessions only), when set.
    pub local_pref: Option<u32>,
}

/// Serialises a value by its `Display` form (a Service key as `namespace/name`).
fn as_string<T: std::fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Serialises values by their `Display` form (communities as users write them).
fn as_strings<T: std::fmt::Display, S: serde::Serializer>(
    values: &[T],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(values.iter().map(ToString::to_string))
}

/// A service this node does not announce over a protocol, and MetalLB's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotAnnounced {
    /// The Service (`namespace/name` in JSON).
    #[serde(serialize_with = "as_string")]
    pub service: ServiceKey,
    /// The protocol.
    pub protocol: AnnounceProtocol,
    /// Why, with MetalLB's spelling in JSON.
    pub reason: NotAnnouncedReason,
}

/// What one node announces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeAnnouncements {
    /// Node name.
    pub name: String,
    /// Layer-2 announcements.
    pub l2: Vec<L2Entry>,
    /// BGP advertisements.
    pub bgp: Vec<BgpEntry>,
    /// Services not announced, per protocol, with the reason.
    pub not_announced: Vec<NotAnnounced>,
}

impl NodeAnnouncements {
    /// The same, as the per-service [`Announcement`]s the backends take.
    pub fn to_announcements(&self, services: &[ServiceState]) -> Vec<Announcement> {
        // Entries by service, in one pass over each list (not one pass per service).
        let mut by_service: HashMap<&ServiceKey, (Vec<&L2Entry>, Vec<&BgpEntry>)> = HashMap::new();
        for e in &self.l2 {
            by_service.entry(&e.service).or_default().0.push(e);
        }
        for e in &self.bgp {
            by_service.entry(&e.service).or_default().1.push(e);
        }
        let mut out = Vec::with_capacity(by_service.len());
        for s in services {
            if by_service.is_empty() {
                break;
            }
            let Some((l2, bgp)) = by_service.remove(&s.view.key) else {
                continue;
            };
            out.push(Announcement {
                service: s.view.key.clone(),
                ips: s.view.ingress_ips.clone(),
                l2: l2.first().map(|e| L2Attributes {
                    interfaces: e.interfaces.clone(),
                }),
                bgp: (!bgp.is_empty()).then(|| BgpAttributes {
                    advertisements: bgp
                        .iter()
                        .map(|e| lb_core::BgpAdvertisement {
                            prefix: e.prefix,
                            local_pref: e.local_pref,
                            communities: e.communities.clone(),
                            large_communities: e.large_communities.clone(),
                            peers: e.peers.clone(),
                        })
                        .collect(),
                }),
            });
        }
        out
    }
}

/// Computes what `node` announces.
///
/// A node unknown to `cluster.nodes` is treated as a node without labels. A node whose
/// speaker is not alive announces nothing (reason `speakerDown`).
pub fn for_node(cluster: Cluster<'_>, node: &str) -> NodeAnnouncements {
    let me = cluster
        .nodes
        .iter()
        .find(|n| n.name == node)
        .cloned()
        .unwrap_or_else(|| NodeState::unknown(node));
    let mut out = NodeAnnouncements {
        name: node.to_string(),
        ..Default::default()
    };
    let alive = cluster.live_speakers.contains(node);
    let mut services: Vec<&ServiceState> = cluster
        .services
        .iter()
        .filter(|s| s.view.is_load_balancer && !s.view.ingress_ips.is_empty())
        .collect();
    services.sort_by(|a, b| a.view.key.cmp(&b.view.key));
    for service in services {
        let key = &service.view.key;
        let mut not = |protocol, reason| {
            out.not_announced.push(NotAnnounced {
                service: key.clone(),
                protocol,
                reason,
            });
        };
        let pool = cluster.config.pools.pool_for_all(&service.view.ingress_ips);
        let Some(pool) = pool else {
            not(AnnounceProtocol::Layer2, NotAnnouncedReason::IpNotAllowed);
            not(AnnounceProtocol::Bgp, NotAnnouncedReason::IpNotAllowed);
            continue;
        };
        let has_l2 = cluster
            .config
            .l2_advertisements_for(pool.name())
            .next()
            .is_some();
        let has_bgp = cluster
            .config
            .bgp_advertisements_for(pool.name())
            .next()
            .is_some();
        let (check_l2, check_bgp) = if has_l2 || has_bgp {
            (has_l2, has_bgp)
        } else {
            (true, true)
        };
        if !alive {
            if check_l2 {
                not(AnnounceProtocol::Layer2, NotAnnouncedReason::SpeakerDown);
            }
            if check_bgp {
                not(AnnounceProtocol::Bgp, NotAnnouncedReason::SpeakerDown);
            }
            continue;
        }
        if check_l2 {
            match l2::decide(cluster, &me, service, pool.name()) {
                Ok(entries) => out.l2.extend(entries),
                Err(reason) => not(AnnounceProtocol::Layer2, reason),
            }
        }
        if check_bgp {
            match bgp::decide(cluster, &me, service, pool.name()) {
                Ok(entries) => out.bgp.extend(entries),
                Err(reason) => not(AnnounceProtocol::Bgp, reason),
            }
        }
    }
    // A speaker keeps its decision until the next one: no growth slack.
    out.l2.shrink_to_fit();
    out.bgp.shrink_to_fit();
    out.not_announced.shrink_to_fit();
    out
}

/// Entries for tests, here and in crates that render decisions (feature `fixtures`).
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::unwrap_used)]
pub mod fixtures {
    use super::{BgpEntry, L2Entry};

    /// A layer-2 entry of `service` (`namespace/name`) for `ip` on `interfaces`.
    ///
    /// Panics when `ip` is not an IP address.
    pub fn l2(service: &str, ip: &str, interfaces: &[&str]) -> L2Entry {
        L2Entry {
            service: service.parse().unwrap(),
            ip: ip.parse().unwrap(),
            interfaces: interfaces.iter().map(|i| (*i).to_string()).collect(),
        }
    }

    /// A BGP entry of `service` for `prefix` to `peer`, LOCAL_PREF 100.
    ///
    /// Panics when `prefix` is not a CIDR.
    pub fn bgp(service: &str, prefix: &str, peer: &str) -> BgpEntry {
        BgpEntry {
            service: service.parse().unwrap(),
            prefix: prefix.parse().unwrap(),
            peers: vec![peer.into()],
            communities: Vec::new(),
            large_communities: Vec::new(),
            local_pref: Some(100),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::fixtures::{bgp, l2};
    use super::*;

    fn state(ns: &str, name: &str, ips: &[&str]) -> ServiceState {
        ServiceState {
            view: ServiceFacts {
                key: ServiceKey::new(ns, name),
                is_load_balancer: true,
                traffic_policy: TrafficPolicy::Cluster,
                ingress_ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
                labels: Labels::new(),
                sharing_key: None,
            },
            endpoints: Vec::new(),
        }
    }

    #[test]
    fn announcements_gather_each_services_entries_in_service_order() {
        let services = [
            state("a", "web", &["192.0.2.1", "2001:db8::1"]),
            state("a", "quiet", &["192.0.2.2"]),
            state("b", "web", &["198.51.100.3"]),
            state("b", "both", &["203.0.113.4"]),
        ];
        let node = NodeAnnouncements {
            name: "n1".into(),
            // Entries in another order than the Services: each lands on its own Service.
            l2: vec![
                l2("b/both", "203.0.113.4", &[]),
                l2("a/web", "192.0.2.1", &["eth1"]),
                l2("a/web", "2001:db8::1", &["eth1"]),
            ],
            bgp: vec![
                bgp("b/web", "198.51.100.3/32", "p1"),
                bgp("b/both", "203.0.113.0/24", "p1"),
                bgp("b/both", "203.0.113.4/32", "p2"),
            ],
            not_announced: Vec::new(),
        };
        let all = node.to_announcements(&services);
        let keys: Vec<String> = all.iter().map(|a| a.service.to_string()).collect();
        assert_eq!(
            keys,
            ["a/web", "b/web", "b/both"],
            "a/quiet announces nothing"
        );

        assert_eq!(all[0].ips, services[0].view.ingress_ips);
        assert_eq!(all[0].l2.as_ref().unwrap().interfaces, ["eth1"]);
        assert!(all[0].bgp.is_none());

        assert!(all[1].l2.is_none());
        let ads = &all[1].bgp.as_ref().unwrap().advertisements;
        assert_eq!(ads.len(), 1);
        assert_eq!(ads[0].prefix, "198.51.100.3/32".parse().unwrap());

        assert!(all[2].l2.as_ref().unwrap().interfaces.is_empty());
        let ads = &all[2].bgp.as_ref().unwrap().advertisements;
        let prefixes: Vec<String> = ads.iter().map(|a| a.prefix.to_string()).collect();
        assert_eq!(prefixes, ["203.0.113.0/24", "203.0.113.4/32"]);
        assert_eq!(ads[1].peers, ["p2"]);
        assert_eq!(ads[1].local_pref, Some(100));
    }

    #[test]
    fn compacting_shares_one_namespace_name_and_keeps_every_service() {
        let mut services = vec![
            state("team", "a", &["192.0.2.1"]),
            state("team", "b", &["192.0.2.2"]),
            state("other", "c", &["192.0.2.3"]),
        ];
        let before = services.clone();
        compact_services(&mut services);
        assert_eq!(services, before);
        assert!(std::sync::Arc::ptr_eq(
            &services[0].view.key.namespace,
            &services[1].view.key.namespace
        ));
        assert!(!std::sync::Arc::ptr_eq(
            &services[0].view.key.namespace,
            &services[2].view.key.namespace
        ));
    }
}
