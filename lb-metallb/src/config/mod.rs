//! The one validator and translator: `metallb.io` objects (plus Namespaces, Nodes and
//! Secrets) in, a checked [`Config`] out, or every problem found as [`ConfigError`]s.
//!
//! The CLI (`validate`, `plan`), a future admission webhook and the reconcilers all call
//! [`Config::from_objects`]; there is no second code path that accepts or rejects
//! configuration. The rules are MetalLB's (reference section d), plus the checks our own BGP
//! speaker needs: features it does not implement are rejected instead of silently ignored.

mod advertisements;
mod error;
mod peers;
mod pools;
pub(crate) mod selector;

use std::collections::BTreeMap;

use lb_alloc::{LabelSelector, Labels, PoolSet};

pub use advertisements::{BgpAdvertisement, L2Advertisement, PreferredNode};
pub use error::{ConfigError, ConfigErrors};
pub use peers::{BfdProfile, DEFAULT_HOLD_TIME, DEFAULT_PORT, Peer};

use crate::input::{DEFAULT_NAMESPACE, Objects};

/// A configuration that passed validation, in the form the allocator and the announcers use.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address pools, validated (no overlaps), namespace selectors resolved.
    pub pools: PoolSet,
    /// Labels of each pool object (for `ipAddressPoolSelectors`), by pool name.
    pub pool_labels: BTreeMap<String, Labels>,
    /// Layer-2 advertisements, pools resolved to names, in name order.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// BGP advertisements, pools resolved, communities resolved, in name order.
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// BGP peers in name order, durations parsed, passwords resolved from Secrets.
    pub peers: Vec<Peer>,
    /// BFD profiles by name.
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    /// Accepted but worth telling the operator (deprecated fields, settings with no effect).
    pub warnings: Vec<String>,
}

impl Config {
    /// Validates every object and builds the configuration, with objects expected in
    /// [`DEFAULT_NAMESPACE`].
    ///
    /// Fails with every problem found (never only the first), sorted.
    pub fn from_objects(objects: &Objects) -> Result<Self, ConfigErrors> {
        Self::from_objects_in(objects, DEFAULT_NAMESPACE)
    }

    /// Like [`Config::from_objects`], with MetalLB's objects expected in `namespace` (objects
    /// without a namespace are taken to be in it).
    ///
    /// Fails with every problem found, sorted.
    pub fn from_objects_in(objects: &Objects, namespace: &str) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        check_namespaces(objects, namespace, &mut errors);
        let namespace_labels = objects
            .namespaces
            .iter()
            .filter_map(|n| Some((n.metadata.name.clone()?, labels_of(&n.metadata))))
            .collect();
        let node_labels: Vec<Labels> = objects
            .nodes
            .iter()
            .map(|n| labels_of(&n.metadata))
            .collect();

        let (pools, pool_labels) = pools::build(&objects.pools, &namespace_labels, &mut errors);
        let aliases = advertisements::aliases(&objects.communities, &mut errors);
        let bfd_profiles = peers::bfd_profiles(&objects.bfd_profiles, &mut errors);
        let mut warnings = Vec::new();
        let peers = peers::build(
            &objects.peers,
            &objects.secrets,
            &bfd_profiles,
            namespace,
            &mut errors,
            &mut warnings,
        );
        let l2_advertisements = advertisements::l2(
            &objects.l2_advertisements,
            &pools,
            &pool_labels,
            &mut errors,
        );
        let bgp_advertisements = advertisements::bgp(
            &objects.bgp_advertisements,
            advertisements::BgpContext {
                pools: &pools,
                pool_labels: &pool_labels,
                aliases: &aliases,
                peers: &peers,
                node_labels: &node_labels,
            },
            &mut errors,
            &mut warnings,
        );

        if !errors.is_empty() {
            errors.sort();
            errors.dedup();
            return Err(ConfigErrors(errors));
        }
        Ok(Self {
            pools: pools.unwrap_or_default(),
            pool_labels,
            l2_advertisements,
            bgp_advertisements,
            peers,
            bfd_profiles,
            warnings,
        })
    }

    /// The L2 advertisements that cover pool `pool`.
    pub fn l2_advertisements_for<'a>(
        &'a self,
        pool: &'a str,
    ) -> impl Iterator<Item = &'a L2Advertisement> + 'a {
        self.l2_advertisements
            .iter()
            .filter(move |a| a.pools.contains(pool))
    }

    /// The BGP advertisements that cover pool `pool`.
    pub fn bgp_advertisements_for<'a>(
        &'a self,
        pool: &'a str,
    ) -> impl Iterator<Item = &'a BgpAdvertisement> + 'a {
        self.bgp_advertisements
            .iter()
            .filter(move |a| a.pools.contains(pool))
    }
}

/// Validates without keeping the result: the errors, or none.
pub fn validate(objects: &Objects) -> Vec<ConfigError> {
    match Config::from_objects(objects) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    }
}

/// The labels of an object.
pub fn labels_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Labels {
    meta.labels.clone().unwrap_or_default()
}

fn check_namespaces(objects: &Objects, namespace: &str, errors: &mut Vec<ConfigError>) {
    let metas = objects
        .pools
        .iter()
        .map(|o| ("IPAddressPool", &o.metadata))
        .chain(
            objects
                .l2_advertisements
                .iter()
                .map(|o| ("L2Advertisement", &o.metadata)),
        )
        .chain(
            objects
                .bgp_advertisements
                .iter()
                .map(|o| ("BGPAdvertisement", &o.metadata)),
        )
        .chain(
            objects
                .communities
                .iter()
                .map(|o| ("Community", &o.metadata)),
        )
        .chain(
            objects
                .bfd_profiles
                .iter()
                .map(|o| ("BFDProfile", &o.metadata)),
        )
        .chain(objects.peers.iter().map(|o| ("BGPPeer", &o.metadata)));
    for (kind, meta) in metas {
        let name = meta.name.as_deref().unwrap_or("");
        if name.is_empty() {
            errors.push(ConfigError::new(kind, "", "metadata.name", "name is empty"));
        }
        if let Some(ns) = meta.namespace.as_deref()
            && ns != namespace
        {
            errors.push(ConfigError::new(
                kind,
                name,
                "metadata.namespace",
                format!("resource must be created in the {namespace} namespace, not {ns}"),
            ));
        }
    }
}

/// Name of an object, empty when unset.
pub(crate) fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// True when `selectors` (empty = all) select some node of `nodes` that `other` also selects,
/// or when no nodes are known (then any two selections may meet).
pub(crate) fn node_sets_meet(a: &[LabelSelector], b: &[LabelSelector], nodes: &[Labels]) -> bool {
    nodes.is_empty()
        || nodes
            .iter()
            .any(|n| selector::any_matches(a, n) && selector::any_matches(b, n))
}
