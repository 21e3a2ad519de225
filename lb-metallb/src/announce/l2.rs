//! Layer-2 ownership (reference c.1): one elected node per service IP set, chosen among the
//! live, eligible speakers by preferred-node weight, then by `sha256(node#ip)`.

use lb_core::{RankCandidate, rank_nodes};

use super::{Cluster, L2Entry, NodeState, NotAnnouncedReason, ServiceState};
use crate::config::L2Advertisement;
use crate::config::selector::any_matches;

/// The entries `me` announces for `service`, or MetalLB's reason for not announcing.
pub(super) fn decide(
    cluster: Cluster<'_>,
    me: &NodeState,
    service: &ServiceState,
    pool: &str,
) -> Result<Vec<L2Entry>, NotAnnouncedReason> {
    if !service.has_usable_endpoint() {
        return Err(NotAnnouncedReason::NotOwner);
    }
    let ads: Vec<&L2Advertisement> = cluster
        .config
        .l2_advertisements_for(pool)
        .filter(|a| any_matches(&a.service_selectors, &service.view.labels))
        .collect();
    if service.view.sharing_key.is_some() && ads.iter().any(|a| !a.service_selectors.is_empty()) {
        return Err(NotAnnouncedReason::SharedIpWithServiceSelector);
    }
    if !ads
        .iter()
        .any(|a| any_matches(&a.node_selectors, &me.labels))
    {
        return Err(NotAnnouncedReason::NoMatchingAdvertisement);
    }
    let candidates: Vec<RankCandidate> = cluster
        .nodes
        .iter()
        .filter(|n| cluster.live_speakers.contains(&n.name))
        .filter(|n| !n.network_unavailable && !n.excluded(cluster.ignore_exclude_lb))
        .filter(|n| !service.is_local() || service.has_usable_endpoint_on(&n.name))
        .filter_map(|n| {
            let selecting: Vec<&&L2Advertisement> = ads
                .iter()
                .filter(|a| any_matches(&a.node_selectors, &n.labels))
                .collect();
            if selecting.is_empty() {
                return None;
            }
            let weight = selecting
                .iter()
                .flat_map(|a| a.preferred_nodes.iter())
                .filter(|p| p.preference.matches(&n.labels))
                .map(|p| p.weight)
                .sum();
            Some(RankCandidate::new(n.name.as_str(), weight))
        })
        .collect();
    let first_ip = service
        .view
        .ingress_ips
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    let ranked = rank_nodes(&candidates, &first_ip);
    if ranked.first().map(|n| n.as_str()) != Some(me.name.as_str()) {
        return Err(NotAnnouncedReason::NotOwner);
    }
    let mine: Vec<&&L2Advertisement> = ads
        .iter()
        .filter(|a| any_matches(&a.node_selectors, &me.labels))
        .collect();
    let interfaces = if mine.iter().any(|a| a.interfaces.is_empty()) {
        Vec::new()
    } else {
        let mut all: Vec<String> = mine
            .iter()
            .flat_map(|a| a.interfaces.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    };
    Ok(service
        .view
        .ingress_ips
        .iter()
        .map(|ip| L2Entry {
            service: service.view.key.clone(),
            ip: *ip,
            interfaces: interfaces.clone(),
        })
        .collect())
}
