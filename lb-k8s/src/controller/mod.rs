//! The controller's Kubernetes side: one reflector per kind (Services, the `metallb.io`
//! objects, Secrets, Namespaces, Nodes), a single worker ([`Engine`]) that feeds their changes
//! to the pure [`ControllerState`](lb_metallb::controller::ControllerState) one Service at a
//! time and writes what it decides, leader election, and the metrics and health endpoints.
//!
//! The worker waits until every reflector has listed its objects, and (with leader election)
//! until it leads; then it loads the configuration, restores every IP recorded in Service
//! status before allocating anything new, and afterwards handles changes as they come. When
//! leadership is lost it stops writing at once and starts over from the cache when it leads
//! again.

mod engine;
pub mod metrics;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use lb_metallb::controller::Settings;
use lb_metallb::input::Objects;
use lb_metallb::service::key_of;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use engine::Engine;
use metrics::Metrics;

use crate::http::Health;
use crate::lease::{Elector, LeaseSettings, Round};
use crate::reflect::{ConfigStores, Trigger, Watch, cloned, no_trim, reflect};
use crate::writer::Writer;

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
    pub async fn wait_until_ready(&self) -> Result<(), crate::Error> {
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
) -> Result<(), crate::Error> {
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
                    r = leading.changed() => r.map_err(|_| crate::Error::ElectionStopped)?,
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
                        r.map_err(|_| crate::Error::ElectionStopped)?;
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
                    () = grace_over(engine.grace_deadline()) => {
                        engine.process(vec![Trigger::Config]).await;
                    }
                }
            }
            metrics.leader.set(0);
            tracing::warn!("lost leadership: stopped writing");
        }
    };
    let result: Result<(), crate::Error> = tokio::select! {
        r = work => r,
        () = shutdown => Ok(()),
    };
    let _ = stop_tx.send(true);
    let _ = election.await;
    metrics.leader.set(0);
    result
}

/// Ends at `deadline`; never without one.
pub(crate) async fn grace_over(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
