//! The speaker's runtime: inputs (a file, or the API server) and the membership view in,
//! `lb_l2` and `lb_bgp` driven through `lb_core::Announcer`, metrics out.
//!
//! One loop owns the decision. Its rules are the pure [`SpeakerLoop`]: whenever the inputs or
//! the live speakers change it recomputes the decision and hands the whole result to both
//! backends (they diff it themselves), so a missed event can never leave a stale announcement
//! behind. This module only waits, feeds it what changed and carries out its actions.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::reflector::ObjectRef;
use lb_bgp::{Speaker, SpeakerConfig};
use lb_core::Announcer;
use lb_l2::{Responder, ResponderConfig};
use tokio::sync::{mpsc, watch};

use super::cluster::SpeakerStores;
use super::metrics::{L2Counters, PeerFigures, Snapshot, SpeakerMetrics};
use super::status::StatusWriter;
use crate::runtime::Trigger;
use crate::runtime::http::Health;
use crate::runtime::memory;
use crate::runtime::writer::configuration_state;
use lb_membership::{Membership, MembershipConfig, Sealer, Timers, View};
use lb_metallb::plan::PlanOptions;
use lb_metallb::speaker::inputs::InputsError;
use lb_metallb::speaker::status::Report;
use lb_metallb::speaker::step::{Action, Event, LoopSettings, SeedSettings, SpeakerLoop, seeds};
use lb_metallb::speaker::{Desired, Inputs, Liveness, default_router_id};

/// Membership settings.
#[derive(Debug, Clone)]
pub struct MembershipSettings {
    /// Address to bind and advertise; the node's first address when `None`.
    pub bind_addr: Option<IpAddr>,
    /// UDP port (7946).
    pub port: u16,
    /// The shared secret the datagram key is derived from.
    pub secret: Vec<u8>,
    /// Extra addresses to join through, besides every node's first address.
    pub join: Vec<SocketAddr>,
    /// SWIM timers.
    pub timers: Timers,
}

/// How the speaker runs.
#[derive(Debug, Clone)]
pub struct SpeakerSettings {
    /// This node's name.
    pub node: String,
    /// Plan options: namespace of MetalLB's objects, load-balancer class, exclude label.
    pub plan: PlanOptions,
    /// Membership; `None` counts every node as alive (MetalLB without memberlist).
    pub membership: Option<MembershipSettings>,
    /// BGP router ID when a peer sets none; the node's first IPv4 address when `None`.
    pub router_id: Option<Ipv4Addr>,
    /// Layer-2 responder settings.
    pub layer2: ResponderConfig,
    /// How often the file source looks for changes.
    pub poll: Duration,
}

/// Why the file source could not read its file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Its objects could not be loaded, or the configuration is invalid.
    #[error(transparent)]
    Inputs(#[from] InputsError),
}

/// Reads the inputs from a file (multi-document YAML) through the loader `plan` and `validate`
/// use ([`Inputs::load`]: legacy ConfigMaps converted).
///
/// Fails with an error naming the file and the problem.
pub fn read_file(path: &std::path::Path, options: &PlanOptions) -> Result<Inputs, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    Ok(Inputs::load([(name.as_str(), text.as_str())], options)?)
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Follows a file: publishes its inputs at start and after every change. A change that does
/// not parse or validate is logged and the last good inputs stay in use (`stale` is set).
fn follow_file(
    path: PathBuf,
    options: PlanOptions,
    poll: Duration,
    tx: watch::Sender<Option<Arc<Inputs>>>,
    stale: watch::Sender<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_stamp = None;
        // A hash of the last content read, not a copy: the file can be megabytes.
        let mut last_hash: Option<u64> = None;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = stamp(&path);
            if s.is_some() && s == last_stamp {
                continue;
            }
            last_stamp = s;
            let hash = std::fs::read(&path).ok().map(|bytes| {
                use std::hash::{DefaultHasher, Hash, Hasher};
                let mut h = DefaultHasher::new();
                bytes.hash(&mut h);
                h.finish()
            });
            if hash.is_some() && hash == last_hash {
                continue;
            }
            last_hash = hash;
            let p = path.clone();
            let o = options.clone();
            let result = tokio::task::spawn_blocking(move || {
                let inputs = read_file(&p, &o);
                memory::release_free_memory();
                inputs
            })
            .await;
            match result {
                Ok(Ok(inputs)) => {
                    for w in &inputs.warnings {
                        tracing::warn!(file = %path.display(), warning = %w, "configuration warning");
                    }
                    tracing::info!(file = %path.display(), services = inputs.services.len(), nodes = inputs.nodes.len(), "inputs loaded");
                    let _ = stale.send(false);
                    if tx.send(Some(Arc::new(inputs))).is_err() {
                        return;
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(file = %path.display(), error = %e, "inputs rejected; the last good ones stay in use");
                    let _ = stale.send(true);
                }
                Err(e) => tracing::error!(error = %e, "reading the inputs failed"),
            }
        }
    })
}

/// The backends, started once the first inputs are known (the router ID comes from them).
struct Backends {
    l2: Responder,
    bgp: Speaker,
}

/// Runs the speaker on a file source until `shutdown` completes.
///
/// Fails when the file cannot be read at start, or a backend cannot start (no `CAP_NET_RAW`,
/// no netlink, membership port in use).
pub async fn run_from_file(
    settings: SpeakerSettings,
    path: PathBuf,
    metrics: Arc<SpeakerMetrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
    let (tx, inputs) = watch::channel(None);
    let (stale_tx, stale) = watch::channel(false);
    let follower = follow_file(path, settings.plan.clone(), settings.poll, tx, stale_tx);
    let result = drive(settings, inputs, stale, metrics, health, shutdown, None).await;
    follower.abort();
    result
}

/// Runs the speaker on the API server until `shutdown` completes: reflectors feed the
/// decision; its outcome goes to `ServiceL2Status` / `ServiceBGPStatus` objects and events;
/// the configuration's validity to the `ConfigurationState` named `speaker-NODE`.
///
/// Fails when the caches can never sync or a backend cannot start.
pub async fn run_from_cluster(
    client: Client,
    settings: SpeakerSettings,
    metrics: Arc<SpeakerMetrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let namespace = settings.plan.namespace.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    let stores = SpeakerStores::start(&client, &namespace, &tx);
    let (inputs_tx, inputs) = watch::channel(None);
    let (stale_tx, stale) = watch::channel(false);
    let source = tokio::spawn(follow_cluster(
        client.clone(),
        stores.clone(),
        settings.plan.clone(),
        settings.node.clone(),
        rx,
        inputs_tx,
        stale_tx,
    ));
    let (report_tx, reports) = watch::channel(None);
    let writer = StatusWriter::new(client, &namespace, &settings.node, &settings.node);
    let status = tokio::spawn(write_statuses(
        writer,
        stores,
        settings.node.clone(),
        reports,
    ));
    let result = drive(
        settings,
        inputs,
        stale,
        metrics,
        health,
        shutdown,
        Some(report_tx),
    )
    .await;
    // The report sender is gone: the status task deletes this node's objects, within bounds.
    if tokio::time::timeout(STATUS_CLEANUP, status).await.is_err() {
        tracing::warn!("status objects not all deleted before the deadline");
    }
    source.abort();
    result
}

/// How long a stopping speaker spends deleting its status objects.
const STATUS_CLEANUP: Duration = Duration::from_secs(2);
/// How long the sources wait for more changes before recomputing.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How often a failed API write is retried.
const RETRY: Duration = Duration::from_secs(5);

/// Publishes the cluster's inputs after every relevant change (changes within
/// [`DEBOUNCE`] are taken together) and writes the `ConfigurationState` `speaker-NODE`.
async fn follow_cluster(
    client: Client,
    stores: SpeakerStores,
    options: PlanOptions,
    node: String,
    mut triggers: mpsc::UnboundedReceiver<Trigger>,
    tx: watch::Sender<Option<Arc<Inputs>>>,
    stale: watch::Sender<bool>,
) {
    if let Err(e) = stores.wait_until_ready().await {
        tracing::error!(error = %e, "the caches cannot sync");
        return;
    }
    tracing::info!("caches synced");
    let name = format!("speaker-{node}");
    let labels = BTreeMap::from([
        (
            "metallb.io/component-type".to_string(),
            "speaker".to_string(),
        ),
        ("metallb.io/node-name".to_string(), node.clone()),
    ]);
    let mut written: Option<Option<String>> = None;
    let mut errors: Option<String> = None;
    let mut last_warnings: Vec<String> = Vec::new();
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Rebuild on a change; a retry tick only writes the ConfigurationState again.
    let mut rebuild = true;
    loop {
        if rebuild {
            let (s, o) = (stores.clone(), options.clone());
            let built = tokio::task::spawn_blocking(move || {
                let inputs = s.inputs(&o);
                memory::release_free_memory();
                inputs
            });
            errors = match built.await {
                Ok(Ok(inputs)) => {
                    if inputs.warnings != last_warnings {
                        for w in &inputs.warnings {
                            tracing::warn!(warning = %w, "configuration warning");
                        }
                        last_warnings.clone_from(&inputs.warnings);
                    }
                    tracing::info!(
                        services = inputs.services.len(),
                        nodes = inputs.nodes.len(),
                        "inputs loaded"
                    );
                    let _ = stale.send(false);
                    if tx.send(Some(Arc::new(inputs))).is_err() {
                        return;
                    }
                    None
                }
                Ok(Err(errors)) => {
                    let summary = errors.to_string();
                    tracing::error!(errors = %summary, "configuration rejected; the last valid one stays in force");
                    let _ = stale.send(true);
                    Some(summary)
                }
                Err(e) => Some(format!("reading the inputs failed: {e}")),
            };
        }
        if written.as_ref() != Some(&errors) {
            match configuration_state(
                &client,
                &options.namespace,
                &name,
                labels.clone(),
                errors.as_deref(),
                Timestamp::now(),
            )
            .await
            {
                Ok(()) => written = Some(errors.clone()),
                Err(e) => tracing::warn!(name, error = %e, "cannot write the ConfigurationState"),
            }
        }
        let pending = written.as_ref() != Some(&errors);
        rebuild = tokio::select! {
            t = triggers.recv() => if t.is_none() { return } else { true },
            _ = retry.tick(), if pending => false,
        };
        if rebuild {
            tokio::time::sleep(DEBOUNCE).await;
            while triggers.try_recv().is_ok() {}
        }
    }
}

/// Writes every report the decision loop publishes; retries failed writes; when the loop is
/// gone, deletes this node's objects.
async fn write_statuses(
    mut writer: StatusWriter,
    stores: SpeakerStores,
    node: String,
    mut reports: watch::Receiver<Option<Report>>,
) {
    let mut adopted = false;
    // The newest report, and whether it is fully written.
    let mut want: Option<Report> = None;
    let mut done = true;
    let mut stopping = false;
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !adopted {
            match writer.adopt().await {
                Ok(()) => adopted = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list this node's status objects; retrying");
                }
            }
        }
        if adopted && !done {
            done = match &want {
                Some(report) => {
                    let owner = stores.nodes.get(&ObjectRef::new(&node));
                    writer
                        .sync(report, &stores.services, owner.as_deref())
                        .await
                }
                None => true,
            };
        }
        if stopping {
            return;
        }
        tokio::select! {
            r = reports.changed() => {
                want = if r.is_err() {
                    stopping = true;
                    Some(Report::default())
                } else {
                    reports.borrow_and_update().clone()
                };
                done = false;
            }
            _ = retry.tick(), if !done || !adopted => {}
        }
    }
}

/// The decision loop shared by every source: waits, feeds what changed to the pure
/// [`SpeakerLoop`] and carries out what it returns.
async fn drive(
    settings: SpeakerSettings,
    mut inputs: watch::Receiver<Option<Arc<Inputs>>>,
    mut stale: watch::Receiver<bool>,
    metrics: Arc<SpeakerMetrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
    reports: Option<watch::Sender<Option<Report>>>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    // Wait for the first good inputs.
    let first = loop {
        if let Some(i) = inputs.borrow_and_update().clone() {
            break i;
        }
        tokio::select! {
            changed = inputs.changed() => changed.context("the input source stopped")?,
            () = &mut shutdown => return Ok(()),
        }
    };
    let router_id = settings
        .router_id
        .or_else(|| default_router_id(&first, &settings.node));
    let l2 = Responder::start(settings.layer2.clone())
        .await
        .context("starting the layer-2 responder")?;
    let bgp = Speaker::start(SpeakerConfig {
        router_id,
        listen_port: None,
    })
    .context("starting the BGP speaker")?;
    // The source holds a responder handle: the guard takes it back out of the metrics however
    // this function returns, so the responder stops with the backends.
    let _layer2_source = Layer2SourceGuard(Arc::clone(&metrics));
    let counters = l2.clone();
    metrics.set_layer2_source(Some(Box::new(move || {
        counters
            .counters()
            .into_iter()
            .map(|(ip, c)| L2Counters {
                ip,
                requests: c.requests_received,
                responses: c.responses_sent,
                gratuitous: c.gratuitous_sent,
            })
            .collect()
    })));
    let backends = Backends { l2, bgp };
    let membership = match &settings.membership {
        Some(m) => Some(start_membership(&settings.node, m, &first).await?),
        None => None,
    };
    let mut view = membership.as_ref().map(Membership::view);
    let mut state = SpeakerLoop::new(LoopSettings {
        node: settings.node.clone(),
        membership: settings.membership.as_ref().map(seed_settings),
        reports: reports.is_some(),
    });
    let run = Run {
        node: &settings.node,
        backends: &backends,
        membership: membership.as_ref(),
        metrics: &metrics,
        health: &health,
        reports: reports.as_ref(),
    };
    // The first pass feeds everything as it stands; later ones only what changed. `changed()`
    // marks what it reports as seen, so the select's branches record what they saw.
    let mut first_pass = true;
    let (mut inputs_woke, mut view_woke, mut stale_woke) = (false, false, false);
    loop {
        // Whatever woke us, feed every change not yet seen (the branch that won the select is
        // not always the one that changed). The check and the read are one step: a change
        // arriving between a separate check and the read would be marked seen and never fed.
        let new_inputs = {
            let latest = inputs.borrow_and_update();
            (first_pass || inputs_woke || latest.has_changed())
                .then(|| latest.clone())
                .flatten()
        };
        let new_liveness = view.as_mut().and_then(|v| {
            let latest = v.borrow_and_update();
            (first_pass || view_woke || latest.has_changed()).then(|| {
                let View { alive, settled, .. } = latest.clone();
                Liveness {
                    alive: Some(alive),
                    settled,
                }
            })
        });
        let is_stale = {
            let latest = stale.borrow_and_update();
            (first_pass || stale_woke || latest.has_changed()).then_some(*latest)
        };
        first_pass = false;
        (inputs_woke, view_woke, stale_woke) = (false, false, false);
        let now = std::time::Instant::now();
        let mut actions = Vec::new();
        if let Some(s) = is_stale {
            actions.extend(state.step(Event::Stale(s), now));
        }
        actions.extend(state.step(
            Event::Changed {
                inputs: new_inputs,
                liveness: new_liveness,
            },
            now,
        ));
        run.execute(&state, actions).await;
        if reports.is_some() {
            let actions = state.step(Event::Interfaces(run.active_interfaces()), now);
            run.execute(&state, actions).await;
        }
        let deadline = state.deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            changed = inputs.changed() => {
                changed.context("the input source stopped")?;
                inputs_woke = true;
            }
            changed = changed_view(&mut view) => {
                if changed.is_err() {
                    anyhow::bail!("membership stopped");
                }
                view_woke = true;
            }
            _ = stale.changed() => stale_woke = true,
            () = sleep_until(deadline) => {}
            () = &mut shutdown => break,
        }
    }
    tracing::info!("stopping: leaving the cluster, withdrawing announcements");
    let actions = state.step(Event::Shutdown, std::time::Instant::now());
    run.execute(&state, actions).await;
    if let Some(m) = membership {
        m.leave().await;
    }
    backends.l2.shutdown().await;
    backends
        .bgp
        .shutdown("speaker stopping", Duration::from_secs(1))
        .await;
    Ok(())
}

/// What the decision loop's actions are carried out on.
struct Run<'a> {
    node: &'a str,
    backends: &'a Backends,
    membership: Option<&'a Membership>,
    metrics: &'a SpeakerMetrics,
    health: &'a Health,
    reports: Option<&'a watch::Sender<Option<Report>>>,
}

impl Run<'_> {
    /// Carries out `actions` in order; `state` is the loop they came from (for the metrics).
    async fn execute(&self, state: &SpeakerLoop, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Apply(d, inputs) => {
                    apply(self.backends, &d, &inputs).await;
                    // The previous decision and inputs are gone: return their pages.
                    memory::release_free_memory();
                }
                Action::Reannounce => {
                    tracing::info!("a speaker joined: sending takeover announcements again");
                    if let Err(e) = self.backends.l2.reannounce().await {
                        tracing::warn!(error = %e, "re-announcing layer-2 IPs");
                    }
                }
                Action::SetSeeds(seeds) => {
                    if let Some(m) = self.membership {
                        m.set_seeds(seeds).await;
                    }
                }
                Action::SetReady(ready) => self.health.ready.store(ready, Ordering::Relaxed),
                Action::Report(r) => {
                    if let Some(tx) = self.reports {
                        let _ = tx.send(Some(r));
                    }
                }
                Action::Publish => publish(
                    self.metrics,
                    self.node,
                    state,
                    self.backends,
                    self.membership,
                ),
                Action::Stop => {
                    // Leaving the membership and stopping the backends take ownership of
                    // them: the caller does that once the loop is done. Withdraw here.
                    if let Err(e) = self.backends.l2.resync(&[]).await {
                        tracing::warn!(error = %e, "withdrawing layer-2 announcements");
                    }
                }
            }
        }
    }

    /// The interfaces the layer-2 responder answers on now.
    fn active_interfaces(&self) -> BTreeSet<String> {
        self.backends
            .l2
            .interfaces()
            .into_iter()
            .filter(|i| i.active)
            .map(|i| i.name)
            .collect()
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn seed_settings(m: &MembershipSettings) -> SeedSettings {
    SeedSettings {
        port: m.port,
        join: m.join.clone(),
    }
}

/// Clears the metrics' layer-2 source when dropped.
struct Layer2SourceGuard(Arc<SpeakerMetrics>);

impl Drop for Layer2SourceGuard {
    fn drop(&mut self) {
        self.0.set_layer2_source(None);
    }
}

async fn changed_view(
    view: &mut Option<watch::Receiver<View>>,
) -> Result<(), watch::error::RecvError> {
    match view {
        Some(v) => v.changed().await,
        None => std::future::pending().await,
    }
}

async fn start_membership(
    node: &str,
    m: &MembershipSettings,
    inputs: &Inputs,
) -> anyhow::Result<Membership> {
    let ip = match m.bind_addr {
        Some(ip) => ip,
        None => inputs
            .addresses
            .get(node)
            .and_then(|a| a.first().copied())
            .with_context(|| {
                format!("membership: Node {node} has no address in its status; give --ml-bindaddr")
            })?,
    };
    let addr = SocketAddr::new(ip, m.port);
    let sealer = Sealer::from_secret(&m.secret).context("membership key")?;
    let membership = Membership::start(
        MembershipConfig {
            node: node.to_string(),
            bind: addr,
            advertise: addr,
            seeds: seeds(inputs, &seed_settings(m)),
            timers: m.timers,
        },
        sealer,
    )
    .await?;
    tracing::info!(%addr, "membership started");
    Ok(membership)
}

async fn apply(backends: &Backends, d: &Desired, inputs: &Inputs) {
    if d.l2_held {
        tracing::info!("layer-2 announcements held until the membership view settles");
    }
    // Built for this call only: each backend keeps what it needs of it.
    let mut all = d.announcements(inputs);
    if let Err(e) = backends.l2.resync(&all).await {
        tracing::error!(error = %e, "layer-2 announcements failed");
    }
    if let Err(e) = backends.bgp.set_peers(d.peers.clone()) {
        tracing::error!(error = %e, "BGP peers rejected");
    }
    // Only what BGP advertises: the BGP table would otherwise keep a copy of every layer-2
    // announcement too (a sixth of the heap with thousands of layer-2 Services).
    all.retain(|a| a.bgp.is_some());
    if let Err(e) = backends.bgp.resync(&all).await {
        tracing::error!(error = %e, "BGP announcements failed");
    }
    tracing::info!(
        layer2 = d.node.l2.len(),
        bgp = d.node.bgp.len(),
        peers = d.peers.len(),
        "announcements applied"
    );
}

/// Publishes the metrics: the decision as it stands (shared, not copied), the BGP peers'
/// figures and the membership's. The layer-2 counters are read at scrape time instead.
fn publish(
    metrics: &SpeakerMetrics,
    node: &str,
    state: &SpeakerLoop,
    backends: &Backends,
    membership: Option<&Membership>,
) {
    let d = state.decision();
    let liveness = state.liveness();
    let ports: std::collections::BTreeMap<&str, u16> = d
        .map(|d| d.peers.iter().map(|p| (p.name.as_str(), p.port)).collect())
        .unwrap_or_default();
    let peers = backends
        .bgp
        .peers()
        .into_iter()
        .map(|p| PeerFigures {
            peer: SocketAddr::new(
                p.address,
                ports.get(p.name.as_str()).copied().unwrap_or(179),
            )
            .to_string(),
            up: p.state == lb_bgp::fsm::State::Established,
            updates: p.updates_sent,
            announced: u64::try_from(p.prefixes_announced).unwrap_or(u64::MAX),
        })
        .collect();
    metrics.publish(Snapshot {
        node: node.to_string(),
        announced: d.map(|d| Arc::clone(&d.node)).unwrap_or_default(),
        peers,
        members: liveness
            .alive
            .as_ref()
            .map_or(1, |a| u64::try_from(a.len()).unwrap_or(u64::MAX)),
        membership_refused: membership.map_or(0, |m| m.counters().refused),
        config_loaded: d.is_some(),
        config_stale: state.stale(),
    });
}
