//! Address pools: their specification (the fields of MetalLB's `IPAddressPool.spec`) and the
//! validated [`PoolSet`] the allocator works on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::address::AddressRange;
use crate::error::{AllocError, ConfigErrors};
use crate::selector::{LabelSelector, Labels};

/// Labels of every namespace of the cluster, to resolve `namespaceSelectors`.
pub type NamespaceLabels = BTreeMap<String, Labels>;

fn default_true() -> bool {
    true
}

/// An address pool as configured (`IPAddressPool`: name and spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAddressPool {
    /// Pool name; services name it in the `address-pool` annotation.
    pub name: String,
    /// CIDRs and `a-b` ranges, IPv4 and IPv6 mixed.
    pub addresses: Vec<String>,
    /// Whether automatic allocation may use the pool (default true).
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    /// Never hand out IPv4 addresses ending in `.0` or `.255`.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Restricts and prioritises which services use the pool.
    #[serde(default)]
    pub service_allocation: Option<ServiceAllocation>,
}

impl IpAddressPool {
    /// A pool with the given addresses, `autoAssign: true`, nothing else set.
    pub fn new<'a>(name: &str, addresses: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            name: name.into(),
            addresses: addresses.into_iter().map(String::from).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }
}

/// `spec.serviceAllocation` of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Lower number = tried earlier; 0 (unset) = tried last.
    #[serde(default)]
    pub priority: i32,
    /// Namespaces whose services may use the pool.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespaces, by label, whose services may use the pool.
    #[serde(default)]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services, by label, that may use the pool (any selector matching is enough).
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
}

/// A pool's `serviceAllocation` after namespace selectors were resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admission {
    pub(crate) priority: i32,
    /// `None`: any namespace. `Some(set)`: only these (possibly none).
    pub(crate) namespaces: Option<BTreeSet<String>>,
    /// `None`: any service. `Some(list)`: services matching one of them.
    pub(crate) service_selectors: Option<Vec<LabelSelector>>,
}

/// A validated pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub(crate) name: String,
    /// Entries in configured order, with their text.
    pub(crate) entries: Vec<(String, AddressRange)>,
    pub(crate) auto_assign: bool,
    pub(crate) avoid_buggy_ips: bool,
    pub(crate) admission: Option<Admission>,
}

impl Pool {
    /// Pool name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Address entries in configured order.
    pub fn ranges(&self) -> impl Iterator<Item = &AddressRange> {
        self.entries.iter().map(|(_, r)| r)
    }

    /// Whether automatic allocation may use the pool.
    pub fn auto_assign(&self) -> bool {
        self.auto_assign
    }

    /// Whether `.0`/`.255` IPv4 addresses are skipped.
    pub fn avoid_buggy_ips(&self) -> bool {
        self.avoid_buggy_ips
    }

    /// `serviceAllocation.priority` (0 when unset).
    pub fn priority(&self) -> i32 {
        self.admission.as_ref().map_or(0, |a| a.priority)
    }

    /// True when the pool has a `serviceAllocation`.
    pub fn has_service_allocation(&self) -> bool {
        self.admission.is_some()
    }

    /// True when `ip` belongs to the pool (counting `avoidBuggyIPs`).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        !(self.avoid_buggy_ips && crate::address::is_buggy_ip(ip))
            && self.ranges().any(|r| r.contains(ip))
    }

    /// Why a service in `namespace` with `labels` may not use this pool, or `None` when it may.
    pub(crate) fn refusal(&self, namespace: &str, labels: &Labels) -> Option<String> {
        let admission = self.admission.as_ref()?;
        if let Some(namespaces) = &admission.namespaces
            && !namespaces.contains(namespace)
        {
            return Some(format!(
                "namespace {namespace:?} is not in its serviceAllocation"
            ));
        }
        if let Some(selectors) = &admission.service_selectors
            && !selectors.iter().any(|s| s.matches(labels))
        {
            return Some("service labels match none of its serviceSelectors".into());
        }
        None
    }

    /// True when the pool is pinned to this service: its namespace is listed, or the pool
    /// selects services by label (or sets only a priority).
    pub(crate) fn pins(&self, namespace: &str) -> bool {
        self.admission.as_ref().is_some_and(|a| {
            a.namespaces.as_ref().is_some_and(|n| n.contains(namespace))
                || a.service_selectors.is_some()
        })
    }
}

/// A validated, non-overlapping set of pools, ordered by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSet {
    pub(crate) pools: Vec<Pool>,
}

impl PoolSet {
    /// Validates `specs` and resolves namespace selectors against `namespaces`.
    ///
    /// Fails with every problem found: empty or repeated names, pools without addresses,
    /// unparsable entries, any overlap between entries (within a pool or across pools),
    /// repeated namespaces, malformed or repeated selectors.
    pub fn new(
        specs: &[IpAddressPool],
        namespaces: &NamespaceLabels,
    ) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut pools: BTreeMap<String, Pool> = BTreeMap::new();
        for (index, spec) in specs.iter().enumerate() {
            if spec.name.is_empty() {
                errors.push(AllocError::EmptyPoolName { index });
                continue;
            }
            if pools.contains_key(&spec.name) {
                errors.push(AllocError::DuplicatePool {
                    pool: spec.name.clone(),
                });
                continue;
            }
            match build_pool(spec, namespaces) {
                Ok(pool) => {
                    pools.insert(spec.name.clone(), pool);
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        errors.extend(overlaps(pools.values()));
        if errors.is_empty() {
            Ok(Self {
                pools: pools.into_values().collect(),
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The pools, ordered by name.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// The pool named `name`.
    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.index_of(name).and_then(|i| self.pools.get(i))
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.pools
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
    }

    /// The pool containing `ip` (pools never overlap, so there is at most one).
    pub fn pool_for(&self, ip: &IpAddr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.contains(ip))
    }

    /// The one pool containing every IP of `ips` (`None` for no IPs, or IPs in no pool or in
    /// different pools).
    pub fn pool_for_all(&self, ips: &[IpAddr]) -> Option<&Pool> {
        let pool = self.pool_for(ips.first()?)?;
        ips.iter().all(|ip| pool.contains(ip)).then_some(pool)
    }

    /// True when there are no pools.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }
}

fn build_pool(spec: &IpAddressPool, namespaces: &NamespaceLabels) -> Result<Pool, Vec<AllocError>> {
    let pool = spec.name.clone();
    let mut errors = Vec::new();
    if spec.addresses.is_empty() {
        errors.push(AllocError::NoAddresses { pool: pool.clone() });
    }
    let mut entries = Vec::new();
    for (index, entry) in spec.addresses.iter().enumerate() {
        match AddressRange::parse(entry) {
            Ok(range) => entries.push((entry.trim().to_string(), range)),
            Err(reason) => errors.push(AllocError::InvalidAddress {
                pool: pool.clone(),
                index,
                entry: entry.clone(),
                reason,
            }),
        }
    }
    let admission = match &spec.service_allocation {
        None => None,
        Some(sa) => match admission(&pool, sa, namespaces) {
            Ok(a) => Some(a),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Pool {
        name: pool,
        entries,
        auto_assign: spec.auto_assign,
        avoid_buggy_ips: spec.avoid_buggy_ips,
        admission,
    })
}

fn check_selectors(pool: &str, field: &'static str, list: &[LabelSelector]) -> Vec<AllocError> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, s) in list.iter().enumerate() {
        if let Err(reason) = s.validate() {
            errors.push(AllocError::InvalidSelector {
                pool: pool.into(),
                field,
                index,
                reason: reason.to_string(),
            });
        } else if !seen.insert(s.to_string()) {
            errors.push(AllocError::InvalidSelector {
                pool: pool.into(),
                field,
                index,
                reason: format!("duplicate selector {:?}", s.to_string()),
            });
        }
    }
    errors
}

fn admission(
    pool: &str,
    sa: &ServiceAllocation,
    namespaces: &NamespaceLabels,
) -> Result<Admission, Vec<AllocError>> {
    let mut errors = Vec::new();
    let mut listed = BTreeSet::new();
    for ns in &sa.namespaces {
        if !listed.insert(ns.clone()) {
            errors.push(AllocError::DuplicateNamespace {
                pool: pool.into(),
                namespace: ns.clone(),
            });
        }
    }
    errors.extend(check_selectors(
        pool,
        "namespaceSelectors",
        &sa.namespace_selectors,
    ));
    errors.extend(check_selectors(
        pool,
        "serviceSelectors",
        &sa.service_selectors,
    ));
    if !errors.is_empty() {
        return Err(errors);
    }
    let restricts_namespaces = !sa.namespaces.is_empty() || !sa.namespace_selectors.is_empty();
    if !restricts_namespaces && sa.service_selectors.is_empty() {
        // Only a priority: the pool is pinned to every service (MetalLB: labels.Everything()).
        return Ok(Admission {
            priority: sa.priority,
            namespaces: None,
            service_selectors: Some(vec![LabelSelector::default()]),
        });
    }
    let namespaces = restricts_namespaces.then(|| {
        let mut set = listed;
        for (name, labels) in namespaces {
            if sa.namespace_selectors.iter().any(|s| s.matches(labels)) {
                set.insert(name.clone());
            }
        }
        set
    });
    let service_selectors =
        (!sa.service_selectors.is_empty()).then(|| sa.service_selectors.clone());
    Ok(Admission {
        priority: sa.priority,
        namespaces,
        service_selectors,
    })
}

/// Every overlap between entries, found by sorting entries by first address: an entry
/// overlaps an earlier one exactly when it starts at or before the furthest end seen so far.
fn overlaps<'a>(pools: impl Iterator<Item = &'a Pool>) -> Vec<AllocError> {
    let mut all: Vec<(&AddressRange, &str, &str)> = pools
        .flat_map(|p| {
            p.entries
                .iter()
                .map(move |(text, r)| (r, text.as_str(), p.name.as_str()))
        })
        .collect();
    all.sort_by_key(|(r, _, _)| (r.first(), r.last()));
    let mut errors = Vec::new();
    let mut furthest: Option<(&AddressRange, &str, &str)> = None;
    for (range, entry, pool) in all {
        if let Some((other, other_entry, other_pool)) = furthest {
            if other.overlaps(range) {
                errors.push(AllocError::Overlap {
                    pool: pool.into(),
                    entry: entry.into(),
                    other_pool: other_pool.into(),
                    other_entry: other_entry.into(),
                });
            }
            if range.last() <= other.last() {
                continue;
            }
        }
        furthest = Some((range, entry, pool));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(specs: &[IpAddressPool]) -> Result<PoolSet, ConfigErrors> {
        PoolSet::new(specs, &NamespaceLabels::new())
    }

    #[test]
    fn pools_are_ordered_by_name_and_found_by_ip() {
        let s = set(&[
            IpAddressPool::new("b", ["198.51.100.0/24"]),
            IpAddressPool::new("a", ["192.0.2.0/24", "2001:db8::/64"]),
        ])
        .unwrap();
        let names: Vec<&str> = s.pools().iter().map(Pool::name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            s.pool_for(&"2001:db8::5".parse().unwrap()).map(Pool::name),
            Some("a")
        );
        assert!(s.pool_for(&"203.0.113.1".parse().unwrap()).is_none());
    }

    #[test]
    fn overlap_across_pools_names_both_entries_and_pools() {
        let err = set(&[
            IpAddressPool::new("first", ["192.0.2.0/24"]),
            IpAddressPool::new("second", ["192.0.2.100-192.0.2.110"]),
        ])
        .unwrap_err();
        assert_eq!(
            err.0,
            [AllocError::Overlap {
                pool: "second".into(),
                entry: "192.0.2.100-192.0.2.110".into(),
                other_pool: "first".into(),
                other_entry: "192.0.2.0/24".into(),
            }]
        );
        let text = err.to_string();
        assert!(text.contains("second") && text.contains("first"), "{text}");
    }

    #[test]
    fn overlap_within_one_pool_and_identical_entries_are_rejected() {
        assert!(set(&[IpAddressPool::new("p", ["192.0.2.0/24", "192.0.2.0/25"])]).is_err());
        assert!(set(&[IpAddressPool::new("p", ["2001:db8::/64", "2001:db8::/64"])]).is_err());
        // A small range inside a big one that ends later than a third entry.
        let err = set(&[IpAddressPool::new(
            "p",
            ["192.0.2.0/24", "192.0.2.10-192.0.2.20", "192.0.2.200/29"],
        )])
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn adjacent_entries_do_not_overlap() {
        assert!(set(&[IpAddressPool::new("p", ["192.0.2.0/25", "192.0.2.128/25"])]).is_ok());
    }

    #[test]
    fn bad_entries_name_pool_index_and_text() {
        let err = set(&[IpAddressPool::new(
            "first-pool",
            ["192.0.2.0/24", "192.0.2.9-192.0.2.1"],
        )])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "pool \"first-pool\": spec.addresses[1]: \"192.0.2.9-192.0.2.1\": start is after end"
        );
    }

    #[test]
    fn empty_duplicate_and_addressless_pools_are_rejected() {
        let err = set(&[
            IpAddressPool::new("", ["192.0.2.0/24"]),
            IpAddressPool::new("a", ["198.51.100.0/24"]),
            IpAddressPool::new("a", ["203.0.113.0/24"]),
            IpAddressPool::new("empty", []),
        ])
        .unwrap_err();
        assert!(matches!(
            err.0.first(),
            Some(AllocError::EmptyPoolName { index: 0 })
        ));
        assert!(
            err.0
                .contains(&AllocError::DuplicatePool { pool: "a".into() })
        );
        assert!(err.0.contains(&AllocError::NoAddresses {
            pool: "empty".into()
        }));
    }

    #[test]
    fn namespace_selectors_resolve_against_namespace_labels() {
        let mut spec = IpAddressPool::new("p", ["192.0.2.0/24"]);
        spec.service_allocation = Some(ServiceAllocation {
            namespaces: vec!["listed".into()],
            namespace_selectors: vec![LabelSelector::from_labels([("team", "web")])],
            ..Default::default()
        });
        let mut ns = NamespaceLabels::new();
        ns.insert(
            "web-1".into(),
            [("team".to_string(), "web".to_string())].into(),
        );
        ns.insert("db".into(), [("team".to_string(), "db".to_string())].into());
        let s = PoolSet::new(&[spec], &ns).unwrap();
        let pool = s.get("p").unwrap();
        assert!(pool.refusal("listed", &Labels::new()).is_none());
        assert!(pool.refusal("web-1", &Labels::new()).is_none());
        assert!(pool.refusal("db", &Labels::new()).is_some());
        assert!(pool.pins("web-1") && !pool.pins("db"));
    }

    #[test]
    fn namespace_selector_matching_nothing_admits_no_namespace() {
        // Deliberate deviation from MetalLB, which then admits every namespace.
        let mut spec = IpAddressPool::new("p", ["192.0.2.0/24"]);
        spec.service_allocation = Some(ServiceAllocation {
            namespace_selectors: vec![LabelSelector::from_labels([("team", "none")])],
            ..Default::default()
        });
        let s = set(&[spec]).unwrap();
        assert!(
            s.get("p")
                .unwrap()
                .refusal("default", &Labels::new())
                .is_some()
        );
    }

    #[test]
    fn priority_only_allocation_pins_every_service() {
        let mut spec = IpAddressPool::new("p", ["192.0.2.0/24"]);
        spec.service_allocation = Some(ServiceAllocation {
            priority: 5,
            ..Default::default()
        });
        let s = set(&[spec]).unwrap();
        let pool = s.get("p").unwrap();
        assert!(pool.pins("anything") && pool.refusal("anything", &Labels::new()).is_none());
        assert_eq!(pool.priority(), 5);
    }

    #[test]
    fn duplicate_namespaces_and_selectors_are_rejected() {
        let mut spec = IpAddressPool::new("p", ["192.0.2.0/24"]);
        spec.service_allocation = Some(ServiceAllocation {
            namespaces: vec!["a".into(), "a".into()],
            service_selectors: vec![
                LabelSelector::from_labels([("x", "1")]),
                LabelSelector::from_labels([("x", "1")]),
            ],
            ..Default::default()
        });
        let err = set(&[spec]).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn yaml_spec_uses_metallb_field_names_and_defaults() {
        let yaml = "name: p\naddresses: [192.0.2.0/24]\navoidBuggyIPs: true\nserviceAllocation:\n  priority: 1\n  namespaces: [a]\n";
        let spec: IpAddressPool = serde_saphyr::from_str(yaml).unwrap();
        assert!(spec.auto_assign && spec.avoid_buggy_ips);
        assert_eq!(spec.service_allocation.unwrap().priority, 1);
    }
}
