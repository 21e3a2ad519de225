//! `L2Advertisement`, `BGPAdvertisement` and `Community` objects: pools resolved, selectors
//! and communities checked, MetalLB's per-pool rules (aggregation length, LOCAL_PREF
//! conflicts) applied.

use std::collections::{BTreeMap, BTreeSet};

use lb_alloc::{LabelSelector, Labels, PoolSet};
use lb_core::{Community, IpFamily, LargeCommunity};
use serde::Serialize;

use super::peers::Peer;
use super::selector::{At, convert, convert_list, duplicates};
use super::{ConfigError, name_of, node_sets_meet};
use crate::crd;

/// A validated `L2Advertisement`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct L2Advertisement {
    /// Object name.
    pub name: String,
    /// Names of the pools it covers.
    pub pools: BTreeSet<String>,
    /// Nodes that may announce (empty: all).
    pub node_selectors: Vec<LabelSelector>,
    /// Services it applies to (empty: all).
    pub service_selectors: Vec<LabelSelector>,
    /// Interfaces to announce on (empty: all eligible).
    pub interfaces: Vec<String>,
    /// Election preferences.
    pub preferred_nodes: Vec<PreferredNode>,
}

/// One `preferredNodeSelectors` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreferredNode {
    /// Weight, 1 to 100.
    pub weight: i64,
    /// Nodes it applies to.
    pub preference: LabelSelector,
}

/// A validated `BGPAdvertisement`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BgpAdvertisement {
    /// Object name.
    pub name: String,
    /// Names of the pools it covers.
    pub pools: BTreeSet<String>,
    /// Prefix length of IPv4 announcements.
    pub aggregation_length: u8,
    /// Prefix length of IPv6 announcements.
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF (0: not set).
    pub local_pref: u32,
    /// Standard communities, aliases resolved, sorted.
    pub communities: Vec<Community>,
    /// Large communities, aliases resolved, sorted.
    pub large_communities: Vec<LargeCommunity>,
    /// Nodes that announce (empty: all).
    pub node_selectors: Vec<LabelSelector>,
    /// Peer names (empty: all peers).
    pub peers: Vec<String>,
    /// Services it applies to (empty: all).
    pub service_selectors: Vec<LabelSelector>,
}

impl BgpAdvertisement {
    /// The prefix length for an address of `family`.
    pub fn aggregation_for(&self, family: IpFamily) -> u8 {
        match family {
            IpFamily::V4 => self.aggregation_length,
            IpFamily::V6 => self.aggregation_length_v6,
        }
    }

    /// True when both advertisements would send routers the same prefix of an address of
    /// one of `families` with different LOCAL_PREF: the values differ, the prefix lengths
    /// for such a family agree, and they share a peer (an empty list is every peer).
    pub fn local_pref_conflicts_with(&self, other: &Self, families: &BTreeSet<IpFamily>) -> bool {
        self.local_pref != other.local_pref
            && families
                .iter()
                .any(|f| self.aggregation_for(*f) == other.aggregation_for(*f))
            && (self.peers.is_empty()
                || other.peers.is_empty()
                || self.peers.iter().any(|p| other.peers.contains(p)))
    }
}

/// A community value: standard or large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AnyCommunity {
    Standard(Community),
    Large(LargeCommunity),
}

fn parse_community(value: &str) -> Result<AnyCommunity, String> {
    if value.starts_with("large:") {
        value
            .parse::<LargeCommunity>()
            .map(AnyCommunity::Large)
            .map_err(|e| e.to_string())
    } else {
        value
            .parse::<Community>()
            .map(AnyCommunity::Standard)
            .map_err(|e| e.to_string())
    }
}

/// The aliases of every `Community` object. Reports invalid values, empty names and aliases
/// defined twice (across objects too).
pub(super) fn aliases(
    objects: &[crd::Community],
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, AnyCommunity> {
    let mut out = BTreeMap::new();
    let mut defined_in: BTreeMap<String, String> = BTreeMap::new();
    for object in objects {
        let name = name_of(&object.metadata);
        for (i, alias) in object.spec.communities.iter().enumerate() {
            let field = |f: &str| format!("spec.communities[{i}].{f}");
            if alias.name.is_empty() {
                errors.push(ConfigError::new(
                    "Community",
                    name,
                    field("name"),
                    "alias name is empty",
                ));
                continue;
            }
            if let Some(first) = defined_in.get(&alias.name) {
                errors.push(ConfigError::new(
                    "Community",
                    name,
                    field("name"),
                    format!(
                        "alias {:?} is already defined in Community/{first}",
                        alias.name
                    ),
                ));
                continue;
            }
            defined_in.insert(alias.name.clone(), name.to_string());
            match parse_community(&alias.value) {
                Ok(c) => {
                    out.insert(alias.name.clone(), c);
                }
                Err(reason) => {
                    errors.push(ConfigError::new("Community", name, field("value"), reason));
                }
            }
        }
    }
    out
}

/// The pools an advertisement covers: named ones plus those whose labels match a selector;
/// every pool when both are empty.
fn covered_pools(
    names: &[String],
    selectors: &[LabelSelector],
    pools: Option<&PoolSet>,
    pool_labels: &BTreeMap<String, Labels>,
) -> BTreeSet<String> {
    if names.is_empty() && selectors.is_empty() {
        return pool_labels.keys().cloned().collect();
    }
    let mut out: BTreeSet<String> = names
        .iter()
        .filter(|n| pools.is_none_or(|p| p.get(n).is_some()))
        .cloned()
        .collect();
    for (pool, labels) in pool_labels {
        if selectors.iter().any(|s| s.matches(labels)) {
            out.insert(pool.clone());
        }
    }
    out
}

/// Validates and translates the L2 advertisements (sorted by name).
pub(super) fn l2(
    objects: &[crd::L2Advertisement],
    pools: &Option<PoolSet>,
    pool_labels: &BTreeMap<String, Labels>,
    errors: &mut Vec<ConfigError>,
) -> Vec<L2Advertisement> {
    const KIND: &str = "L2Advertisement";
    let mut out = Vec::new();
    for object in objects {
        let name = name_of(&object.metadata);
        let s = &object.spec;
        let at = |field| At {
            kind: KIND,
            name,
            field,
        };
        duplicates(&at("spec.ipAddressPools"), &s.ip_address_pools, errors);
        duplicates(&at("spec.interfaces"), &s.interfaces, errors);
        let pool_selectors = convert_list(
            &at("spec.ipAddressPoolSelectors"),
            &s.ip_address_pool_selectors,
            errors,
        );
        let node_selectors = convert_list(&at("spec.nodeSelectors"), &s.node_selectors, errors);
        let service_selectors =
            convert_list(&at("spec.serviceSelectors"), &s.service_selectors, errors);
        let mut preferred_nodes = Vec::new();
        for (i, p) in s.preferred_node_selectors.iter().enumerate() {
            let field = format!("spec.preferredNodeSelectors[{i}]");
            if !(1..=100).contains(&p.weight) {
                errors.push(ConfigError::new(
                    KIND,
                    name,
                    format!("{field}.weight"),
                    format!("weight {} is outside 1..=100", p.weight),
                ));
            }
            match convert(&p.preference) {
                Ok(preference) => preferred_nodes.push(PreferredNode {
                    weight: i64::from(p.weight),
                    preference,
                }),
                Err(reason) => {
                    errors.push(ConfigError::new(
                        KIND,
                        name,
                        format!("{field}.preference"),
                        reason,
                    ));
                }
            }
        }
        out.push(L2Advertisement {
            name: name.to_string(),
            pools: covered_pools(
                &s.ip_address_pools,
                &pool_selectors,
                pools.as_ref(),
                pool_labels,
            ),
            node_selectors,
            service_selectors,
            interfaces: s.interfaces.clone(),
            preferred_nodes,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What the BGP checks need besides the advertisements.
#[derive(Clone, Copy)]
pub(super) struct BgpContext<'a> {
    pub(super) pools: &'a Option<PoolSet>,
    pub(super) pool_labels: &'a BTreeMap<String, Labels>,
    pub(super) aliases: &'a BTreeMap<String, AnyCommunity>,
    pub(super) peers: &'a [Peer],
    pub(super) node_labels: &'a [Labels],
}

/// Validates and translates the BGP advertisements (sorted by name).
pub(super) fn bgp(
    objects: &[crd::BGPAdvertisement],
    cx: BgpContext<'_>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<BgpAdvertisement> {
    const KIND: &str = "BGPAdvertisement";
    let mut out: Vec<BgpAdvertisement> = Vec::new();
    for object in objects {
        let name = name_of(&object.metadata);
        let s = &object.spec;
        let at = |field| At {
            kind: KIND,
            name,
            field,
        };
        let err = |field: &str, reason: String| ConfigError::new(KIND, name, field, reason);
        duplicates(&at("spec.ipAddressPools"), &s.ip_address_pools, errors);
        duplicates(&at("spec.communities"), &s.communities, errors);
        duplicates(&at("spec.peers"), &s.peers, errors);
        let pool_selectors = convert_list(
            &at("spec.ipAddressPoolSelectors"),
            &s.ip_address_pool_selectors,
            errors,
        );
        let node_selectors = convert_list(&at("spec.nodeSelectors"), &s.node_selectors, errors);
        let service_selectors =
            convert_list(&at("spec.serviceSelectors"), &s.service_selectors, errors);

        let v4 = s.aggregation_length.unwrap_or(32);
        let v6 = s.aggregation_length_v6.unwrap_or(128);
        if !(1..=32).contains(&v4) {
            errors.push(err(
                "spec.aggregationLength",
                format!("{v4} is outside 1..=32"),
            ));
        }
        if !(1..=128).contains(&v6) {
            errors.push(err(
                "spec.aggregationLengthV6",
                format!("{v6} is outside 1..=128"),
            ));
        }
        if !service_selectors.is_empty() && (v4 != 32 || v6 != 128) {
            errors.push(err(
                "spec.serviceSelectors",
                "serviceSelectors can only be used with the default aggregation lengths (32 and 128)"
                    .into(),
            ));
        }

        let mut communities = BTreeSet::new();
        let mut large_communities = BTreeSet::new();
        for (i, value) in s.communities.iter().enumerate() {
            let field = format!("spec.communities[{i}]");
            let parsed = if value.contains(':') {
                parse_community(value).map_err(|reason| err(&field, reason))
            } else {
                cx.aliases.get(value).copied().ok_or_else(|| {
                    ConfigError::transient(
                        KIND,
                        name,
                        field.clone(),
                        format!(
                            "{value:?} is neither a:b, large:a:b:c nor a known Community alias"
                        ),
                    )
                })
            };
            match parsed {
                Ok(AnyCommunity::Standard(c)) => {
                    communities.insert(c);
                }
                Ok(AnyCommunity::Large(c)) => {
                    large_communities.insert(c);
                }
                Err(e) => errors.push(e),
            }
        }
        for (i, peer) in s.peers.iter().enumerate() {
            if !cx.peers.iter().any(|p| &p.name == peer) {
                // MetalLB accepts this (the peer may come later); say so, do not reject.
                warnings.push(format!(
                    "{KIND}/{name}: spec.peers[{i}]: no BGPPeer named {peer:?} (yet); nothing is advertised to it"
                ));
            }
        }

        let ad = BgpAdvertisement {
            name: name.to_string(),
            pools: covered_pools(
                &s.ip_address_pools,
                &pool_selectors,
                cx.pools.as_ref(),
                cx.pool_labels,
            ),
            aggregation_length: u8::try_from(v4.clamp(0, 32)).unwrap_or(32),
            aggregation_length_v6: u8::try_from(v6.clamp(0, 128)).unwrap_or(128),
            local_pref: s.local_pref,
            communities: communities.into_iter().collect(),
            large_communities: large_communities.into_iter().collect(),
            node_selectors,
            peers: s.peers.clone(),
            service_selectors,
        };
        if let Some(same) = out.iter().find(|o| same_advertisement(o, &ad)) {
            errors.push(ConfigError::new(
                KIND,
                name,
                "spec",
                format!("identical to BGPAdvertisement/{}", same.name),
            ));
        }
        if let Some(pools) = cx.pools {
            check_aggregation(&ad, pools, errors);
        }
        out.push(ad);
    }
    if let Some(pools) = cx.pools {
        check_local_pref(&out, pools, cx.node_labels, errors);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn same_advertisement(a: &BgpAdvertisement, b: &BgpAdvertisement) -> bool {
    BgpAdvertisement {
        name: String::new(),
        ..a.clone()
    } == BgpAdvertisement {
        name: String::new(),
        ..b.clone()
    }
}

/// An aggregation length shorter than a pool entry's shortest prefix would announce addresses
/// outside the pool (MetalLB: "prefix N in this pool is more specific than the aggregation
/// length").
fn check_aggregation(ad: &BgpAdvertisement, pools: &PoolSet, errors: &mut Vec<ConfigError>) {
    for pool in pools.pools().iter().filter(|p| ad.pools.contains(p.name())) {
        for range in pool.ranges() {
            let family = range.family();
            let length = ad.aggregation_for(family);
            let shortest = range.shortest_prefix_len();
            if length < shortest {
                let field = match family {
                    IpFamily::V4 => "spec.aggregationLength",
                    IpFamily::V6 => "spec.aggregationLengthV6",
                };
                errors.push(ConfigError::new(
                    "BGPAdvertisement",
                    &ad.name,
                    field,
                    format!(
                        "{length} is shorter than /{shortest} of {}-{} in IPAddressPool/{}: it would announce addresses outside the pool",
                        range.first(),
                        range.last(),
                        pool.name()
                    ),
                ));
            }
        }
    }
}

/// Two advertisements of one pool with different LOCAL_PREF conflict unless a service
/// selector, the aggregation length, disjoint peer lists or disjoint node sets tell them
/// apart.
fn check_local_pref(
    ads: &[BgpAdvertisement],
    pools: &PoolSet,
    nodes: &[Labels],
    errors: &mut Vec<ConfigError>,
) {
    for (i, a) in ads.iter().enumerate() {
        for b in ads.iter().skip(i + 1) {
            // Service selectors split the services between them; disjoint node sets never
            // announce side by side.
            if !a.service_selectors.is_empty()
                || !b.service_selectors.is_empty()
                || !node_sets_meet(&a.node_selectors, &b.node_selectors, nodes)
            {
                continue;
            }
            let shared = pools
                .pools()
                .iter()
                .filter(|p| a.pools.contains(p.name()) && b.pools.contains(p.name()));
            for pool in shared {
                let families: BTreeSet<IpFamily> = pool.ranges().map(|r| r.family()).collect();
                if a.local_pref_conflicts_with(b, &families) {
                    errors.push(ConfigError::new(
                        "BGPAdvertisement",
                        &b.name,
                        "spec.localPref",
                        format!(
                            "LOCAL_PREF {} conflicts with {} of BGPAdvertisement/{} for IPAddressPool/{}",
                            b.local_pref,
                            a.local_pref,
                            a.name,
                            pool.name()
                        ),
                    ));
                }
            }
        }
    }
}
