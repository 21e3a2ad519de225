//! The speaker's entry points: a file source or the API server feeds the decision loop (the
//! `drive` module); in a cluster the status writer reports what it decided.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use lb_l2::ResponderConfig;
use lb_membership::Timers;
use lb_metallb::plan::PlanOptions;
use tokio::sync::{mpsc, watch};

use super::cluster::SpeakerStores;
use super::drive::drive;
use super::metrics::SpeakerMetrics;
use super::source::{follow_cluster, follow_file};
use super::status::{StatusWriter, write_statuses};
use crate::http::Health;

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
    /// Which datagram versions are written and read.
    pub wire: lb_membership::WireFormat,
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
) -> Result<(), crate::Error> {
    std::fs::metadata(&path).map_err(|cause| crate::Error::ReadFile {
        path: path.clone(),
        cause,
    })?;
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
) -> Result<(), crate::Error> {
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
