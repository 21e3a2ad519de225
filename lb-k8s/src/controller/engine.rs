//! The controller's worker while it leads: it feeds each batch of triggers to the pure
//! [`ControllerState`] (in the order a [`Batch`] gives) and writes what it decides: Service
//! status and annotations, events, `IPAddressPool` status, the `ConfigurationState`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use lb_core::ServiceKey;
use lb_metallb::config::Config;
use lb_metallb::controller::{Batch, ConfigOutcome, ControllerState, ServiceUpdate, Settings};
use lb_metallb::crd::IPAddressPoolStatus;
use lb_metallb::grace::{DELETION_GRACE, DeletionGrace};
use lb_metallb::service::key_of;
use tokio::time::Instant;

use super::Stores;
use super::metrics::Metrics;
use crate::reflect::Trigger;
use crate::writer::Writer;

/// The worker's state while it leads: the pure state plus what it last wrote.
pub struct Engine {
    state: ControllerState,
    stores: Stores,
    writer: Writer,
    metrics: Arc<Metrics>,
    concurrency: usize,
    pool_statuses: BTreeMap<String, IPAddressPoolStatus>,
    configuration_state: Option<Option<String>>,
    /// Services whose write failed, retried later.
    failed: BTreeSet<ServiceKey>,
    /// Events of failed writes, emitted with the retry.
    unsent: BTreeMap<ServiceKey, Vec<lb_metallb::events::Event>>,
    /// Deleted configuration objects still in force, and when the next one expires.
    grace: DeletionGrace,
    grace_deadline: Option<Instant>,
    namespace: String,
}

impl Engine {
    /// A fresh engine (nothing known, nothing written).
    pub fn new(
        settings: Settings,
        stores: Stores,
        writer: Writer,
        metrics: Arc<Metrics>,
        concurrency: usize,
    ) -> Self {
        let namespace = settings.namespace.clone();
        Self {
            state: ControllerState::new(settings),
            stores,
            writer,
            metrics,
            concurrency: concurrency.max(1),
            pool_statuses: BTreeMap::new(),
            configuration_state: None,
            failed: BTreeSet::new(),
            unsent: BTreeMap::new(),
            grace: DeletionGrace::new(DELETION_GRACE),
            grace_deadline: None,
            namespace,
        }
    }

    /// Sets the deletion grace period ([`DELETION_GRACE`] by default; zero turns it off).
    pub fn set_deletion_grace(&mut self, grace: std::time::Duration) {
        self.grace = DeletionGrace::new(grace);
    }

    /// When a deleted configuration object's grace period ends: reload the configuration
    /// then ([`Engine::process`] with a config trigger).
    pub fn grace_deadline(&self) -> Option<Instant> {
        self.grace_deadline
    }

    /// The pure state.
    pub fn state(&self) -> &ControllerState {
        &self.state
    }

    /// Services whose last write failed.
    pub fn failed(&self) -> &BTreeSet<ServiceKey> {
        &self.failed
    }

    /// Loads the configuration and, when one is in force, runs the restore pass and writes
    /// its results.
    pub async fn start(&mut self) {
        self.load_config().await;
        self.restore_if_needed().await;
    }

    /// Handles a batch of triggers: configuration first, then every Service named (and the
    /// Services waiting for an IP that a release unblocks), one at a time.
    pub async fn process(&mut self, batch: Vec<Trigger>) {
        self.metrics.updates.inc_by(batch.len() as u64);
        let mut keys: BTreeSet<ServiceKey> = std::mem::take(&mut self.failed);
        let mut first: Vec<ServiceKey> = Vec::new();
        let mut config = false;
        for t in batch {
            match t {
                Trigger::Config => config = true,
                Trigger::AllServices => {
                    keys.extend(self.stores.services.state().iter().map(|s| key_of(s)));
                    keys.extend(self.state.allocator().allocations().map(|(k, _)| k.clone()));
                }
                Trigger::Service(k) => {
                    keys.insert(k);
                }
            }
        }
        if config {
            // In the order the state gives: Services losing IPs before those waiting for one.
            first = self.load_config().await;
        }
        if !self.state.is_restored() {
            self.restore_if_needed().await;
            return;
        }
        let mut batch = Batch::new(first.into_iter().chain(keys));
        while let Some(key) = batch.next(&self.state) {
            let retry = self.reconcile(&key).await;
            batch.retry(retry);
        }
        self.write_pool_statuses().await;
    }

    /// Reconciles one Service and writes the result; returns the Services to look at next.
    async fn reconcile(&mut self, key: &ServiceKey) -> Vec<ServiceKey> {
        let started = Instant::now();
        let svc = self
            .stores
            .services
            .get(&ObjectRef::new(&key.name).within(&key.namespace));
        let mut u = self.state.reconcile(key, svc.as_deref());
        if let Some(mut events) = self.unsent.remove(key) {
            events.append(&mut u.events);
            u.events = events;
        }
        if let Some(svc) = &svc {
            self.write(&u, svc).await;
        }
        self.metrics
            .reconcile_duration
            .observe(started.elapsed().as_secs_f64());
        u.retry
    }

    /// Writes one update; counts and remembers a failure for a later retry.
    async fn write(&mut self, u: &ServiceUpdate, svc: &Service) {
        if let Some(e) = u.error {
            self.metrics.reconcile_error(e.as_str());
        }
        if !u.writes() && u.events.is_empty() {
            return;
        }
        if let Err(e) = self.writer.service(u, svc).await {
            self.write_failed(u, &e);
        }
    }

    fn write_failed(&mut self, u: &ServiceUpdate, e: &kube::Error) {
        self.metrics.update_errors.inc();
        if matches!(e, kube::Error::Api(s) if s.code == 404) {
            return; // deleted meanwhile; its delete event follows
        }
        tracing::warn!(service = %u.key, error = %e, "cannot write the service; retrying later");
        self.metrics.reconcile_error("api_error");
        self.failed.insert(u.key.clone());
        if !u.events.is_empty() {
            self.unsent
                .entry(u.key.clone())
                .or_default()
                .extend(u.events.iter().cloned());
        }
    }

    /// Validates the configuration in the caches and applies it when valid; writes the
    /// `ConfigurationState` and the config metrics. Returns the Services it affects.
    async fn load_config(&mut self) -> Vec<ServiceKey> {
        let mut objects = self.stores.objects();
        let namespace = self.namespace.clone();
        let held = self
            .grace
            .hold(&mut objects, std::time::Instant::now(), |o| {
                Config::from_objects_in(o, &namespace).is_ok()
            });
        crate::log_grace(&held);
        self.grace_deadline = held.next.map(Instant::from_std);
        let (affected, errors) = match self.state.apply_config(&objects) {
            ConfigOutcome::Applied { affected, warnings } => {
                for w in warnings {
                    tracing::info!(warning = %w, "configuration accepted with a remark");
                }
                (affected, None)
            }
            ConfigOutcome::Rejected(errors) => {
                let summary = errors.to_string();
                tracing::error!(errors = %summary, "configuration rejected; the last valid one stays in force");
                (Vec::new(), Some(summary))
            }
        };
        self.metrics
            .config_loaded
            .set(i64::from(self.state.config().is_some()));
        self.metrics
            .config_stale
            .set(i64::from(self.state.rejected().is_some()));
        if self.configuration_state.as_ref() != Some(&errors) {
            match self
                .writer
                .configuration_state(errors.as_deref(), Timestamp::now())
                .await
            {
                Ok(()) => self.configuration_state = Some(errors),
                Err(e) => {
                    self.metrics.update_errors.inc();
                    tracing::warn!(error = %e, "cannot write ConfigurationState controller");
                }
            }
        }
        affected
    }

    /// The restore pass, when a configuration is in force and it has not run yet.
    async fn restore_if_needed(&mut self) {
        if self.state.config().is_none() || self.state.is_restored() {
            return;
        }
        let services = self.stores.services.state();
        let started = Instant::now();
        let updates = self.state.restore(services.iter().map(AsRef::as_ref));
        let by_key: BTreeMap<ServiceKey, &Arc<Service>> =
            services.iter().map(|s| (key_of(s), s)).collect();
        tracing::info!(
            services = services.len(),
            updates = updates.len(),
            allocations = self.state.allocator().len(),
            "restored the allocations recorded in Service status"
        );
        for u in &updates {
            if let Some(e) = u.error {
                self.metrics.reconcile_error(e.as_str());
            }
        }
        let writer = &self.writer;
        let results: Vec<(usize, Result<(), kube::Error>)> = stream::iter(
            updates
                .iter()
                .enumerate()
                .filter(|(_, u)| u.writes() || !u.events.is_empty())
                .filter_map(|(i, u)| by_key.get(&u.key).map(|s| (i, u, Arc::clone(s)))),
        )
        .map(|(i, u, svc)| async move { (i, writer.service(u, &svc).await) })
        .buffer_unordered(self.concurrency)
        .collect()
        .await;
        for (i, r) in results {
            if let (Err(e), Some(u)) = (r, updates.get(i)) {
                self.write_failed(u, &e);
            }
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis(),
            "restore pass written"
        );
        self.write_pool_statuses().await;
    }

    /// Writes `IPAddressPool.status` where it changed, and the allocator metrics.
    async fn write_pool_statuses(&mut self) {
        self.metrics.set_pools(&self.state.allocator().stats());
        self.metrics
            .pending
            .set(i64::try_from(self.state.pending().count()).unwrap_or(i64::MAX));
        let want = self.state.pool_statuses();
        self.pool_statuses.retain(|k, _| want.contains_key(k));
        for (pool, status) in want {
            if self.pool_statuses.get(&pool) == Some(&status) {
                continue;
            }
            match self.writer.pool_status(&pool, &status).await {
                Ok(()) => {
                    self.pool_statuses.insert(pool, status);
                }
                Err(e) => {
                    self.metrics.update_errors.inc();
                    tracing::warn!(pool, error = %e, "cannot write IPAddressPool status");
                }
            }
        }
    }
}
