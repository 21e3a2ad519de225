//! `IPAddressPool` objects into an [`lb_alloc::PoolSet`], with `lb_alloc`'s errors placed on
//! the object and field they come from.

use std::collections::BTreeMap;

use lb_alloc::{AllocError, Labels, NamespaceLabels, PoolSet};

use super::selector::{At, convert_list};
use super::{ConfigError, labels_of, name_of};
use crate::crd::IPAddressPool;

const KIND: &str = "IPAddressPool";

/// Builds the pool set. Returns `None` (and the errors) when any pool is wrong.
pub(super) fn build(
    objects: &[IPAddressPool],
    namespaces: &NamespaceLabels,
    errors: &mut Vec<ConfigError>,
) -> (Option<PoolSet>, BTreeMap<String, Labels>) {
    let mut specs = Vec::new();
    let mut labels = BTreeMap::new();
    let mut selector_errors = Vec::new();
    for pool in objects {
        let name = name_of(&pool.metadata);
        let s = &pool.spec;
        let service_allocation = s.service_allocation.as_ref().map(|sa| {
            let at = |field| At {
                kind: KIND,
                name,
                field,
            };
            lb_alloc::ServiceAllocation {
                priority: sa.priority,
                namespaces: sa.namespaces.clone(),
                namespace_selectors: convert_list(
                    &at("spec.serviceAllocation.namespaceSelectors"),
                    &sa.namespace_selectors,
                    &mut selector_errors,
                ),
                service_selectors: convert_list(
                    &at("spec.serviceAllocation.serviceSelectors"),
                    &sa.service_selectors,
                    &mut selector_errors,
                ),
            }
        });
        labels.insert(name.to_string(), labels_of(&pool.metadata));
        specs.push(lb_alloc::IpAddressPool {
            name: name.to_string(),
            addresses: s.addresses.clone(),
            auto_assign: s.auto_assign.unwrap_or(true),
            avoid_buggy_ips: s.avoid_buggy_ips,
            service_allocation,
        });
    }
    let had_selector_errors = !selector_errors.is_empty();
    errors.append(&mut selector_errors);
    match PoolSet::new(&specs, namespaces) {
        Ok(set) if !had_selector_errors => (Some(set), labels),
        Ok(_) => (None, labels),
        Err(e) => {
            errors.extend(e.0.iter().map(|err| place(err, &specs)));
            (None, labels)
        }
    }
}

/// Index of `entry` in pool `pool`'s addresses, for the field path.
fn entry_field(specs: &[lb_alloc::IpAddressPool], pool: &str, entry: &str) -> String {
    let index = specs
        .iter()
        .find(|p| p.name == pool)
        .and_then(|p| p.addresses.iter().position(|a| a.trim() == entry));
    match index {
        Some(i) => format!("spec.addresses[{i}]"),
        None => "spec.addresses".into(),
    }
}

fn place(err: &AllocError, specs: &[lb_alloc::IpAddressPool]) -> ConfigError {
    match err {
        AllocError::EmptyPoolName { .. } => {
            ConfigError::new(KIND, "", "metadata.name", "name is empty")
        }
        AllocError::DuplicatePool { pool } => ConfigError::new(
            KIND,
            pool,
            "metadata.name",
            "another IPAddressPool has the same name",
        ),
        AllocError::NoAddresses { pool } => {
            ConfigError::new(KIND, pool, "spec.addresses", "pool has no addresses")
        }
        AllocError::InvalidAddress {
            pool,
            index,
            entry,
            reason,
        } => ConfigError::new(
            KIND,
            pool,
            format!("spec.addresses[{index}]"),
            format!("{entry}: {reason}"),
        ),
        AllocError::Overlap {
            pool,
            entry,
            other_pool,
            other_entry,
        } => ConfigError::new(
            KIND,
            pool,
            entry_field(specs, pool, entry),
            if pool == other_pool {
                format!("{entry} overlaps with {other_entry} of the same pool")
            } else {
                format!("{entry} overlaps with {other_entry} of IPAddressPool/{other_pool}")
            },
        ),
        AllocError::DuplicateNamespace { pool, namespace } => ConfigError::new(
            KIND,
            pool,
            "spec.serviceAllocation.namespaces",
            format!("{namespace:?} is listed more than once"),
        ),
        AllocError::InvalidSelector {
            pool,
            field,
            index,
            reason,
        } => ConfigError::new(
            KIND,
            pool,
            format!("spec.serviceAllocation.{field}[{index}]"),
            reason.clone(),
        ),
        other => ConfigError::new(KIND, "", "", other.to_string()),
    }
}
