//! BGP (reference c.2): every eligible node advertises, so routers get one path per node
//! (ECMP); `externalTrafficPolicy: Local` limits that to nodes with a local endpoint.

use std::collections::BTreeSet;

use ipnet::IpNet;
use lb_core::IpFamily;

use super::{BgpEntry, Cluster, NodeState, NotAnnouncedReason, ServiceState};
use crate::config::BgpAdvertisement;
use crate::config::selector::any_matches;

/// The entries `me` advertises for `service`, or MetalLB's reason for not advertising.
pub(super) fn decide(
    cluster: Cluster<'_>,
    me: &NodeState,
    service: &ServiceState,
    pool: &str,
) -> Result<Vec<BgpEntry>, NotAnnouncedReason> {
    let pool_ads: Vec<&BgpAdvertisement> = cluster.config.bgp_advertisements_for(pool).collect();
    if !pool_ads
        .iter()
        .any(|a| any_matches(&a.node_selectors, &me.labels))
    {
        return Err(NotAnnouncedReason::NotOwner);
    }
    let ads: Vec<&BgpAdvertisement> = pool_ads
        .into_iter()
        .filter(|a| any_matches(&a.node_selectors, &me.labels))
        .filter(|a| any_matches(&a.service_selectors, &service.view.labels))
        .collect();
    if ads.is_empty() {
        return Err(NotAnnouncedReason::NoMatchingAdvertisement);
    }
    if conflicting(&ads, service) {
        return Err(NotAnnouncedReason::ConflictingAdvertisements);
    }
    if me.network_unavailable {
        return Err(NotAnnouncedReason::NodeNetworkUnavailable);
    }
    if me.excluded(cluster.ignore_exclude_lb) {
        return Err(NotAnnouncedReason::NodeLabeledExcludeBalancers);
    }
    if service.is_local() && !service.has_usable_endpoint_on(&me.name) {
        return Err(NotAnnouncedReason::NoLocalEndpoints);
    }
    if !service.has_usable_endpoint() {
        return Err(NotAnnouncedReason::NoEndpoints);
    }
    // The peers this node has sessions with.
    let my_peers: BTreeSet<&str> = cluster
        .config
        .peers
        .iter()
        .filter(|p| any_matches(&p.node_selectors, &me.labels))
        .map(|p| p.name.as_str())
        .collect();
    let mut out = Vec::new();
    for ip in &service.view.ingress_ips {
        for ad in &ads {
            let length = ad.aggregation_for(IpFamily::of(ip));
            let Ok(prefix) = IpNet::new(*ip, length).map(|n| n.trunc()) else {
                continue;
            };
            let peers: Vec<String> = my_peers
                .iter()
                .filter(|p| ad.peers.is_empty() || ad.peers.iter().any(|x| x == *p))
                .map(|p| (*p).to_string())
                .collect();
            if peers.is_empty() {
                // No session of this node takes this advertisement.
                continue;
            }
            out.push(BgpEntry {
                service: service.view.key.clone(),
                prefix,
                peers,
                communities: ad.communities.clone(),
                large_communities: ad.large_communities.clone(),
                local_pref: (ad.local_pref != 0).then_some(ad.local_pref),
            });
        }
    }
    if out.is_empty() {
        // Not a MetalLB reason: MetalLB "announces" to no session at all and says nothing.
        return Err(NotAnnouncedReason::NoPeers);
    }
    Ok(out)
}

/// Two advertisements of the service that give routers contradictory LOCAL_PREF for one
/// prefix: MetalLB announces neither.
fn conflicting(ads: &[&BgpAdvertisement], service: &ServiceState) -> bool {
    let families: BTreeSet<IpFamily> = service.view.ingress_ips.iter().map(IpFamily::of).collect();
    ads.iter().enumerate().any(|(i, a)| {
        ads.iter()
            .skip(i + 1)
            .any(|b| a.local_pref_conflicts_with(b, &families))
    })
}
