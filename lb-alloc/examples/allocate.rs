//! Reads pools and services from a YAML file and prints what the allocator gives each service.
//!
//! `cargo run -p lb-alloc --example allocate -- examples/allocate.yaml`
//!
//! Services with a `status` list are restored first (as after a controller restart), then the
//! others are allocated in name order. The exit code is 1 when the file is unreadable or the
//! pools are invalid; services that get no IP are reported and do not fail the run.
#![allow(clippy::print_stdout, missing_docs)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use lb_alloc::{
    AllocationRequest, Allocator, Families, IpAddressPool, Labels, NamespaceLabels, PoolSet,
    SharingKey,
};
use lb_core::{IpFamily, IpFamilyPolicy, ServiceKey, ServicePort, TrafficPolicy};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    namespaces: NamespaceLabels,
    pools: Vec<IpAddressPool>,
    #[serde(default)]
    services: Vec<Service>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Service {
    namespace: String,
    name: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    ports: Vec<ServicePort>,
    #[serde(default)]
    ip_family_policy: IpFamilyPolicy,
    #[serde(default)]
    ip_families: Vec<IpFamily>,
    #[serde(default)]
    external_traffic_policy: TrafficPolicy,
    #[serde(default)]
    selector: Labels,
    allow_shared_ip: Option<String>,
    pool: Option<String>,
    #[serde(default, rename = "loadBalancerIPs")]
    load_balancer_ips: Vec<IpAddr>,
    #[serde(default)]
    status: Vec<IpAddr>,
}

impl Service {
    fn request(&self) -> anyhow::Result<AllocationRequest> {
        let key = ServiceKey::new(self.namespace.as_str(), self.name.as_str());
        let families = if self.ip_families.is_empty() {
            vec![IpFamily::V4]
        } else {
            self.ip_families.clone()
        };
        let families = Families::from_service(&key, self.ip_family_policy, &families)?;
        let mut r = AllocationRequest::new(key, families.primary())
            .with_families(families)
            .with_ports(self.ports.iter().copied())
            .with_sharing(SharingKey::new(
                self.allow_shared_ip.as_deref(),
                self.external_traffic_policy,
                &self.selector,
            ))
            .with_requested_ips(self.load_balancer_ips.iter().copied());
        r.labels = self.labels.clone();
        r.pool = self.pool.clone();
        Ok(r)
    }
}

fn run() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow!("usage: allocate FILE.yaml"))?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let input: Input = serde_saphyr::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let pools = PoolSet::new(&input.pools, &input.namespaces)
        .map_err(|e| anyhow!("invalid pools in {path}: {e}"))?;
    let mut allocator = Allocator::new(pools);

    let mut requests = Vec::new();
    let mut rejected = BTreeMap::new();
    for s in &input.services {
        match s.request() {
            Ok(r) => requests.push((r, s.status.clone())),
            Err(e) => {
                rejected.insert(
                    ServiceKey::new(s.namespace.as_str(), s.name.as_str()),
                    e.to_string(),
                );
            }
        }
    }
    let report = allocator.restore(requests);
    for (key, e) in report.failed {
        rejected.insert(key, e.to_string());
    }
    for (key, cleared) in &report.cleared {
        println!(
            "# {key}: recorded {:?} cleared: {}",
            cleared.previous.ips, cleared.reason
        );
    }

    println!("{:<24} {:<10} IPS", "SERVICE", "POOL");
    for (key, a) in allocator.allocations() {
        let ips: Vec<String> = a.ips.iter().map(ToString::to_string).collect();
        println!("{:<24} {:<10} {}", key.to_string(), a.pool, ips.join(","));
    }
    for (key, why) in &rejected {
        println!("{:<24} {:<10} <none>: {why}", key.to_string(), "-");
    }
    println!();
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>22}",
        "POOL", "V4-USED", "V4-SIZE", "V6-USED", "V6-SIZE"
    );
    for (name, s) in allocator.stats() {
        println!(
            "{name:<10} {:>8} {:>8} {:>8} {:>22}",
            s.in_use_v4, s.total_v4, s.in_use_v6, s.total_v6
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
