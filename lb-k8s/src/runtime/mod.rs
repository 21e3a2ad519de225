//! The controller's Kubernetes side: one reflector per kind (Services, the `metallb.io`
//! objects, Secrets, Namespaces, Nodes), a single worker that feeds their changes to the pure
//! [`ControllerState`] one Service at a time and writes what it decides, leader election, and
//! the metrics and health endpoints.
//!
//! The worker waits until every reflector has listed its objects, and (with leader election)
//! until it leads; then it loads the configuration, restores every IP recorded in Service
//! status before allocating anything new, and afterwards handles changes as they come. When
//! leadership is lost it stops writing at once and starts over from the cache when it leads
//! again.

pub mod http;
pub mod lease;
pub mod memory;
pub mod metrics;
pub mod writer;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use lb_core::ServiceKey;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use http::Health;
use lb_metallb::controller::{Batch, ConfigOutcome, ControllerState, ServiceUpdate, Settings};
use lb_metallb::crd::{
    BFDProfile, BGPAdvertisement, Community, IPAddressPool, IPAddressPoolStatus, L2Advertisement,
    v1beta2,
};
use lb_metallb::input::Objects;
use lb_metallb::service::key_of;
use lease::{Elector, LeaseSettings, Round};
use metrics::Metrics;
use writer::Writer;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespace and `--lb-class`.
    pub settings: Settings,
    /// This replica's identity (pod name): event reporter instance and Lease holder.
    pub identity: String,
    /// Leader election, when enabled.
    pub lease: Option<LeaseSettings>,
    /// The memberlist Secret to create when missing.
    pub memberlist_secret: Option<String>,
    /// Writes to the API server in flight at once during the restore pass.
    pub write_concurrency: usize,
}

/// Why the worker has to look at something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A Service changed or was deleted.
    Service(ServiceKey),
    /// The Services were listed again (a watch restarted): look at all of them.
    AllServices,
    /// A configuration object, Secret, Namespace or Node changed.
    Config,
}

/// Caches of MetalLB's configuration kinds in its namespace: what both daemons validate.
#[derive(Clone)]
pub struct ConfigStores {
    /// `IPAddressPool`s.
    pub pools: Store<IPAddressPool>,
    /// `L2Advertisement`s.
    pub l2_advertisements: Store<L2Advertisement>,
    /// `BGPAdvertisement`s.
    pub bgp_advertisements: Store<BGPAdvertisement>,
    /// `Community` lists.
    pub communities: Store<Community>,
    /// `BFDProfile`s.
    pub bfd_profiles: Store<BFDProfile>,
    /// `BGPPeer`s (v1beta2).
    pub peers: Store<v1beta2::BGPPeer>,
    /// Secrets of the namespace (BGP passwords).
    pub secrets: Store<Secret>,
}

impl ConfigStores {
    /// Starts one reflector per kind in `namespace`; every change sends [`Trigger::Config`].
    pub fn start(client: &Client, namespace: &str, tx: &mpsc::UnboundedSender<Trigger>) -> Self {
        fn namespaced<K>(
            client: &Client,
            namespace: &str,
            tx: &mpsc::UnboundedSender<Trigger>,
        ) -> Store<K>
        where
            K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
                + Clone
                + DeserializeOwned
                + Debug
                + Send
                + Sync
                + 'static,
            K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
        {
            reflect(
                Api::namespaced(client.clone(), namespace),
                tx.clone(),
                Watch::config(),
            )
        }
        Self {
            pools: namespaced(client, namespace, tx),
            l2_advertisements: namespaced(client, namespace, tx),
            bgp_advertisements: namespaced(client, namespace, tx),
            communities: namespaced(client, namespace, tx),
            bfd_profiles: namespaced(client, namespace, tx),
            peers: namespaced(client, namespace, tx),
            secrets: namespaced(client, namespace, tx),
        }
    }

    /// The configuration objects (nothing else) as the validator reads them.
    pub fn objects(&self) -> Objects {
        Objects {
            pools: cloned(&self.pools),
            l2_advertisements: cloned(&self.l2_advertisements),
            bgp_advertisements: cloned(&self.bgp_advertisements),
            communities: cloned(&self.communities),
            bfd_profiles: cloned(&self.bfd_profiles),
            peers: cloned(&self.peers),
            secrets: cloned(&self.secrets),
            ..Objects::default()
        }
    }

    /// Waits until every reflector has listed its objects once.
    ///
    /// Fails when a reflector stopped.
    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        self.pools.wait_until_ready().await?;
        self.l2_advertisements.wait_until_ready().await?;
        self.bgp_advertisements.wait_until_ready().await?;
        self.communities.wait_until_ready().await?;
        self.bfd_profiles.wait_until_ready().await?;
        self.peers.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        Ok(())
    }
}

/// The controller's caches.
#[derive(Clone)]
pub struct Stores {
    /// Services, all namespaces.
    pub services: Store<Service>,
    /// The configuration kinds.
    pub config: ConfigStores,
    /// Namespaces (labels for `serviceAllocation.namespaceSelectors`).
    pub namespaces: Store<Namespace>,
    /// Nodes (labels for the advertisement checks).
    pub nodes: Store<Node>,
}

pub(crate) fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let mut list: Vec<K> = store.state().iter().map(|o| (**o).clone()).collect();
    // Input order matters for some messages; make it deterministic.
    list.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    list
}

impl Stores {
    /// The configuration objects as the validator reads them.
    pub fn objects(&self) -> Objects {
        Objects {
            namespaces: cloned(&self.namespaces),
            nodes: cloned(&self.nodes),
            ..self.config.objects()
        }
    }

    /// Waits until every reflector has listed its objects once.
    ///
    /// Fails when a reflector stopped.
    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        self.services.wait_until_ready().await?;
        self.config.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        Ok(())
    }

    /// Starts one reflector per kind, each sending [`Trigger`]s to `tx`. Nodes and Namespaces
    /// wake the worker only when their labels change (a Node's status changes every few
    /// seconds and is not kept).
    pub fn start(client: &Client, namespace: &str, tx: &mpsc::UnboundedSender<Trigger>) -> Self {
        let c = || client.clone();
        Self {
            services: reflect(
                Api::all(c()),
                tx.clone(),
                Watch {
                    map: service_trigger,
                    relevant: None,
                    trim: no_trim,
                },
            ),
            config: ConfigStores::start(client, namespace, tx),
            namespaces: reflect(Api::all(c()), tx.clone(), Watch::labels(no_trim)),
            nodes: reflect(
                Api::all(c()),
                tx.clone(),
                Watch::labels(|n: &mut Node| n.status = None),
            ),
        }
    }
}

fn service_trigger(e: &watcher::Event<Service>) -> Option<Trigger> {
    match e {
        watcher::Event::Apply(s) | watcher::Event::Delete(s) => Some(Trigger::Service(key_of(s))),
        watcher::Event::InitDone => Some(Trigger::AllServices),
        watcher::Event::Init | watcher::Event::InitApply(_) => None,
    }
}

pub(crate) fn config_trigger<K>(e: &watcher::Event<K>) -> Option<Trigger> {
    match e {
        watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone => {
            Some(Trigger::Config)
        }
        watcher::Event::Init | watcher::Event::InitApply(_) => None,
    }
}

/// What a reflector keeps and when it wakes the worker.
pub(crate) struct Watch<K> {
    /// Turns an event into a trigger.
    pub(crate) map: fn(&watcher::Event<K>) -> Option<Trigger>,
    /// The part of an object that matters (e.g. a Node's labels): an update that leaves it
    /// unchanged wakes nobody. `None`: every update matters.
    pub(crate) relevant: Option<fn(&K) -> u64>,
    /// Drops what is not needed from cached objects (e.g. a Node's status).
    pub(crate) trim: fn(&mut K),
}

impl<K> Clone for Watch<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Watch<K> {}

pub(crate) fn no_trim<K>(_: &mut K) {}

/// A hash of an object's labels.
pub(crate) fn labels_hash<K: Resource>(o: &K) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    o.meta().labels.hash(&mut h);
    h.finish()
}

impl<K: Resource> Watch<K> {
    /// Wakes the worker only when the labels change.
    fn labels(trim: fn(&mut K)) -> Self {
        Self {
            map: config_trigger,
            relevant: Some(labels_hash),
            trim,
        }
    }

    pub(crate) fn config() -> Self {
        Self {
            map: config_trigger,
            relevant: None,
            trim: no_trim,
        }
    }
}

/// Starts a reflector on `api`; its events become triggers as `watch` says.
pub(crate) fn reflect<K>(
    api: Api<K>,
    tx: mpsc::UnboundedSender<Trigger>,
    watch: Watch<K>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let trim = watch.trim;
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(move |o: &mut K| {
            o.managed_fields_mut().clear();
            trim(o);
        })
        .reflect(writer);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        let mut seen: std::collections::HashMap<(Option<String>, Option<String>), u64> =
            std::collections::HashMap::new();
        while let Some(e) = events.next().await {
            match e {
                Ok(e) => {
                    if let Some(relevant) = watch.relevant {
                        let unchanged = match &e {
                            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                                let id = (o.meta().namespace.clone(), o.meta().name.clone());
                                let now = relevant(o);
                                seen.insert(id, now) == Some(now)
                            }
                            watcher::Event::Delete(o) => {
                                seen.remove(&(o.meta().namespace.clone(), o.meta().name.clone()));
                                false
                            }
                            // A new list: what was seen before may be gone now, so an
                            // object that comes back must count as a change.
                            watcher::Event::Init => {
                                seen.clear();
                                false
                            }
                            watcher::Event::InitDone => false,
                        };
                        if unchanged {
                            continue;
                        }
                    }
                    if let Some(t) = (watch.map)(&e)
                        && tx.send(t).is_err()
                    {
                        return;
                    }
                }
                Err(err) => tracing::warn!(kind, error = %err, "watch failed; retrying"),
            }
        }
    });
    reader
}

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
        }
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
        let objects = self.stores.objects();
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

/// Runs leader election (or none) and publishes whether this replica leads.
async fn elect(
    mut elector: Option<Elector>,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(e) = elector.as_mut() else {
        let _ = leading.send(true);
        let _ = stop.changed().await;
        return;
    };
    let period = e.settings().retry_period();
    loop {
        let now = Instant::now();
        let lead = match e.round(Timestamp::now(), now).await {
            Ok(Round::Leader) => true,
            Ok(Round::Follower) => false,
            Err(err) => {
                tracing::warn!(error = %err, "lease round failed");
                e.is_leader(Instant::now())
            }
        };
        leading.send_if_modified(|l| {
            let changed = *l != lead;
            if changed {
                tracing::info!(leader = lead, "leadership changed");
            }
            *l = lead;
            changed
        });
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => break,
        }
    }
    let _ = leading.send(false);
    if let Err(err) = e.release(Timestamp::now()).await {
        tracing::warn!(error = %err, "cannot release the lease");
    }
}

/// Runs the controller until `shutdown` completes: reflectors, leader election, the worker.
/// `health.ready` turns true once the caches are synced.
///
/// Fails when the caches can never sync (a reflector stopped).
pub async fn run(
    client: Client,
    options: Options,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stores = Stores::start(&client, &options.settings.namespace, &tx);
    let (leading_tx, mut leading) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let elector = options
        .lease
        .clone()
        .map(|l| Elector::new(client.clone(), l));
    let election = tokio::spawn(elect(elector, leading_tx, stop_rx));

    let work = async {
        stores.wait_until_ready().await?;
        health.ready.store(true, Ordering::Relaxed);
        tracing::info!("caches synced");
        loop {
            // Wait for leadership; triggers meanwhile are moot (the restore reads the cache).
            while !*leading.borrow_and_update() {
                tokio::select! {
                    r = leading.changed() => r?,
                    t = rx.recv() => if t.is_none() { return Ok(()) },
                }
            }
            metrics.leader.set(1);
            tracing::info!("leading: restoring and reconciling");
            let writer = Writer::new(
                client.clone(),
                &options.settings.namespace,
                &options.identity,
            );
            if let Some(name) = &options.memberlist_secret {
                match writer.memberlist_secret(name).await {
                    Ok(true) => tracing::info!(secret = %name, "created the memberlist secret"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(secret = %name, error = %e, "cannot create the memberlist secret");
                    }
                }
            }
            while rx.try_recv().is_ok() {}
            let mut engine = Engine::new(
                options.settings.clone(),
                stores.clone(),
                writer,
                Arc::clone(&metrics),
                options.write_concurrency,
            );
            engine.start().await;
            let mut retry = tokio::time::interval(Duration::from_secs(5));
            retry.tick().await;
            loop {
                tokio::select! {
                    r = leading.changed() => {
                        r?;
                        if !*leading.borrow_and_update() { break; }
                    }
                    t = rx.recv() => {
                        let Some(t) = t else { return Ok(()) };
                        let mut batch = vec![t];
                        while let Ok(t) = rx.try_recv() { batch.push(t); }
                        engine.process(batch).await;
                    }
                    _ = retry.tick(), if !engine.failed().is_empty() => {
                        engine.process(Vec::new()).await;
                    }
                }
            }
            metrics.leader.set(0);
            tracing::warn!("lost leadership: stopped writing");
        }
    };
    let result: anyhow::Result<()> = tokio::select! {
        r = work => r,
        () = shutdown => Ok(()),
    };
    let _ = stop_tx.send(true);
    let _ = election.await;
    metrics.leader.set(0);
    result
}
