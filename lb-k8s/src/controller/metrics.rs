//! The controller's Prometheus metrics, with MetalLB's names where MetalLB has one
//! (`metallb_allocator_*`, `metallb_k8s_client_*`) and `lb_controller_*` for what it lacks
//! (reconcile duration and errors by reason, leadership, pending Services).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use lb_alloc::PoolStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `pool` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    /// Pool name.
    pub pool: String,
}

/// The `reason` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the controller exports, in one registry.
pub struct Metrics {
    registry: Registry,
    addresses: Family<PoolLabel, FloatGauge>,
    addresses_v4: Family<PoolLabel, FloatGauge>,
    addresses_v6: Family<PoolLabel, FloatGauge>,
    in_use: Family<PoolLabel, FloatGauge>,
    in_use_v4: Family<PoolLabel, FloatGauge>,
    in_use_v6: Family<PoolLabel, FloatGauge>,
    pools: Mutex<BTreeSet<String>>,
    /// `metallb_k8s_client_updates_total`: object changes processed.
    pub updates: Counter,
    /// `metallb_k8s_client_update_errors_total`: writes to the API server that failed.
    pub update_errors: Counter,
    /// `metallb_k8s_client_config_loaded_bool`: a valid configuration is in force.
    pub config_loaded: Gauge,
    /// `metallb_k8s_client_config_stale_bool`: the latest configuration was rejected.
    pub config_stale: Gauge,
    /// `lb_controller_reconcile_duration_seconds`.
    pub reconcile_duration: Histogram,
    /// `lb_controller_reconcile_errors_total{reason}`.
    pub reconcile_errors: Family<ReasonLabel, Counter>,
    /// `lb_controller_leader`: 1 while this replica writes.
    pub leader: Gauge,
    /// `lb_controller_pending_services`: Services waiting for an IP.
    pub pending: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            registry: Registry::default(),
            addresses: Family::default(),
            addresses_v4: Family::default(),
            addresses_v6: Family::default(),
            in_use: Family::default(),
            in_use_v4: Family::default(),
            in_use_v6: Family::default(),
            pools: Mutex::new(BTreeSet::new()),
            updates: Counter::default(),
            update_errors: Counter::default(),
            config_loaded: Gauge::default(),
            config_stale: Gauge::default(),
            reconcile_duration: Histogram::new([
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
            ]),
            reconcile_errors: Family::default(),
            leader: Gauge::default(),
            pending: Gauge::default(),
        };
        let pool_gauges = [
            (
                "metallb_allocator_addresses_total",
                "Number of usable IP addresses, per pool",
                &m.addresses,
            ),
            (
                "metallb_allocator_ipv4_addresses_total",
                "Number of usable IPv4 addresses, per pool",
                &m.addresses_v4,
            ),
            (
                "metallb_allocator_ipv6_addresses_total",
                "Number of usable IPv6 addresses, per pool",
                &m.addresses_v6,
            ),
            (
                "metallb_allocator_addresses_in_use_total",
                "Number of IP addresses in use, per pool",
                &m.in_use,
            ),
            (
                "metallb_allocator_ipv4_addresses_in_use_total",
                "Number of IPv4 addresses in use, per pool",
                &m.in_use_v4,
            ),
            (
                "metallb_allocator_ipv6_addresses_in_use_total",
                "Number of IPv6 addresses in use, per pool",
                &m.in_use_v6,
            ),
        ];
        for (name, help, family) in pool_gauges {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "metallb_k8s_client_updates",
            "Number of k8s object updates that have been processed",
            m.updates.clone(),
        );
        registry.register(
            "metallb_k8s_client_update_errors",
            "Number of k8s object updates that failed for some reason",
            m.update_errors.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_loaded_bool",
            "1 if the MetalLB configuration was successfully loaded at least once",
            m.config_loaded.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_stale_bool",
            "1 if running on a stale configuration, because the latest config failed to load",
            m.config_stale.clone(),
        );
        registry.register(
            "lb_controller_reconcile_duration_seconds",
            "Time to reconcile one Service, writes included",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "lb_controller_reconcile_errors",
            "Reconciles that did not reach the desired state, by reason",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "lb_controller_leader",
            "1 while this replica is the leader and writes",
            m.leader.clone(),
        );
        registry.register(
            "lb_controller_pending_services",
            "LoadBalancer Services waiting for an IP",
            m.pending.clone(),
        );
        Self { registry, ..m }
    }

    /// Sets the allocator gauges from the pools' stats and removes the series of pools that
    /// are gone.
    pub fn set_pools(&self, stats: &BTreeMap<String, PoolStats>) {
        #[allow(clippy::cast_precision_loss)] // gauges are floats; IPv6 sizes are approximate
        let f = |v: u128| v as f64;
        let mut known = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for gone in known.iter().filter(|p| !stats.contains_key(*p)) {
            let l = PoolLabel { pool: gone.clone() };
            for family in self.pool_families() {
                family.remove(&l);
            }
        }
        *known = stats.keys().cloned().collect();
        for (pool, s) in stats {
            let l = PoolLabel { pool: pool.clone() };
            let values = [
                s.total(),
                s.total_v4,
                s.total_v6,
                s.in_use(),
                s.in_use_v4,
                s.in_use_v6,
            ];
            for (family, value) in self.pool_families().into_iter().zip(values) {
                family.get_or_create(&l).set(f(value));
            }
        }
    }

    fn pool_families(&self) -> [&Family<PoolLabel, FloatGauge>; 6] {
        [
            &self.addresses,
            &self.addresses_v4,
            &self.addresses_v6,
            &self.in_use,
            &self.in_use_v4,
            &self.in_use_v6,
        ]
    }

    /// Counts a reconcile error.
    pub fn reconcile_error(&self, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }
}

impl crate::http::Encode for Metrics {
    fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
