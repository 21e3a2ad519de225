//! The decision loop shared by every source: it waits for new inputs, a new membership view,
//! a rejected change or the loop's deadline, feeds what happened to the pure
//! [`SpeakerLoop`] and carries out its actions on the backends (`lb_l2`, `lb_bgp`), the
//! membership, `/readyz`, the status writer and the metrics.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lb_bgp::{Speaker, SpeakerConfig};
use lb_core::Announcer;
use lb_l2::Responder;
use lb_membership::{Membership, MembershipConfig, Sealer, View};
use lb_metallb::speaker::status::Report;
use lb_metallb::speaker::step::{Action, Event, LoopSettings, SeedSettings, SpeakerLoop, seeds};
use lb_metallb::speaker::{Desired, Inputs, Liveness, default_router_id};
use tokio::sync::watch;

use super::metrics::{BfdFigures, L2Counters, PeerFigures, Snapshot, SpeakerMetrics};
use super::run::{MembershipSettings, SpeakerSettings};
use crate::http::Health;
use crate::sys;

/// The backends, started once the first inputs are known (the router ID comes from them).
struct Backends {
    l2: Responder,
    bgp: Speaker,
    bfd: BfdBackend,
}

/// BFD, started when the first BGP peer with a BFD profile appears (a node without one binds
/// no BFD port). A session that was Up and goes down holds its BGP session down
/// ([`Speaker::set_path_down`]) until it is Up again.
struct BfdBackend {
    runtime: tokio::sync::OnceCell<Option<lb_bfd::runtime::Bfd>>,
    /// The BGP peer addresses that have a BFD session now (shared with the task that
    /// follows the sessions' states, which ignores any other address).
    watched: Arc<std::sync::Mutex<BTreeSet<std::net::IpAddr>>>,
}

impl BfdBackend {
    fn new() -> Self {
        Self {
            runtime: tokio::sync::OnceCell::new(),
            watched: Arc::new(std::sync::Mutex::new(BTreeSet::new())),
        }
    }

    /// Runs the sessions `wanted`; the BGP peers of sessions that go away run unheld.
    async fn apply(&self, wanted: &[lb_bfd::PeerSpec], bgp: &Speaker) {
        let addresses: BTreeSet<std::net::IpAddr> = wanted.iter().map(|s| s.key.peer).collect();
        let gone: Vec<std::net::IpAddr> = {
            let mut watched = self
                .watched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let gone = watched.difference(&addresses).copied().collect();
            watched.clone_from(&addresses);
            gone
        };
        for address in gone {
            bgp.set_path_down(address, false);
        }
        if wanted.is_empty() && self.runtime.get().is_none() {
            return;
        }
        let runtime = self
            .runtime
            .get_or_init(|| async {
                match lb_bfd::runtime::Bfd::start(lb_bfd::runtime::BfdOptions::default()).await {
                    Ok(bfd) => {
                        tracing::info!("BFD started (UDP 3784 single-hop, 4784 multihop)");
                        follow_bfd(
                            bfd.subscribe(),
                            bfd.status_reader(),
                            Arc::clone(&self.watched),
                            bgp.clone(),
                        );
                        Some(bfd)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "BFD cannot start: the BGP sessions with a BFD profile run without it");
                        None
                    }
                }
            })
            .await;
        if let Some(bfd) = runtime
            && let Err(e) = bfd.set_peers(wanted.to_vec())
        {
            tracing::error!(error = %e, "BFD sessions rejected");
        }
    }

    /// The figures of every session, for the metrics.
    fn figures(&self) -> Vec<BfdFigures> {
        let Some(Some(bfd)) = self.runtime.get() else {
            return Vec::new();
        };
        bfd.peers()
            .into_iter()
            .map(|p| BfdFigures {
                peer: p.key.peer.to_string(),
                up: p.state == lb_bfd::State::Up,
                control_in: p.counters.control_in,
                control_out: p.counters.control_out,
                up_events: p.counters.up_events,
                down_events: p.counters.down_events,
            })
            .collect()
    }
}

/// What a BFD state change means for the BGP session to `peer`: `Some(true)` hold it down,
/// `Some(false)` release it, `None` leave it as it is.
///
/// Up releases. Leaving Up holds, unless the remote system took the session down on purpose
/// (AdminDown: RFC 5882 §3.2, not a forwarding failure, so it releases) or we did (AdminDown
/// here only comes from removing the session, whose peer is released by the removal).
fn path_verdict(from: lb_bfd::State, to: lb_bfd::State, remote: lb_bfd::State) -> Option<bool> {
    use lb_bfd::State::{AdminDown, Up};
    match (from, to, remote) {
        (_, Up, _) => Some(false),
        (_, AdminDown, _) => None,
        (_, _, AdminDown) => Some(false),
        (Up, _, _) => Some(true),
        _ => None,
    }
}

/// Follows the BFD state changes of the watched peers ([`path_verdict`]). After missed
/// events (a slow reader), every session's state is read again.
fn follow_bfd(
    mut events: tokio::sync::broadcast::Receiver<lb_bfd::runtime::BfdEvent>,
    status: lb_bfd::runtime::StatusReader,
    watched: Arc<std::sync::Mutex<BTreeSet<std::net::IpAddr>>>,
    bgp: Speaker,
) {
    use tokio::sync::broadcast::error::RecvError;
    let watching = move |peer: &std::net::IpAddr| {
        watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(peer)
    };
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(down) = path_verdict(e.from, e.to, e.remote)
                        && watching(&e.key.peer)
                    {
                        bgp.set_path_down(e.key.peer, down);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    for p in status.peers() {
                        let up = p.state == lb_bfd::State::Up;
                        let failed = !up
                            && p.counters.up_events > 0
                            && p.state == lb_bfd::State::Down
                            && p.remote_state != lb_bfd::State::AdminDown;
                        if (up || failed) && watching(&p.key.peer) {
                            bgp.set_path_down(p.key.peer, failed);
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// The decision loop shared by every source: waits, feeds what changed to the pure
/// [`SpeakerLoop`] and carries out what it returns.
pub(crate) async fn drive(
    settings: SpeakerSettings,
    mut inputs: watch::Receiver<Option<Arc<Inputs>>>,
    mut stale: watch::Receiver<bool>,
    metrics: Arc<SpeakerMetrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
    reports: Option<watch::Sender<Option<Report>>>,
) -> Result<(), crate::Error> {
    tokio::pin!(shutdown);
    // Wait for the first good inputs.
    let first = loop {
        if let Some(i) = inputs.borrow_and_update().clone() {
            break i;
        }
        tokio::select! {
            changed = inputs.changed() => changed.map_err(|_| crate::Error::SourceStopped)?,
            () = &mut shutdown => return Ok(()),
        }
    };
    let router_id = settings
        .router_id
        .or_else(|| default_router_id(&first, &settings.node));
    let l2 = Responder::start(settings.layer2.clone())
        .await
        .map_err(crate::Error::Layer2)?;
    let bgp = Speaker::start(SpeakerConfig {
        router_id,
        listen_port: None,
    })
    .map_err(crate::Error::Bgp)?;
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
    let backends = Backends {
        l2,
        bgp,
        bfd: BfdBackend::new(),
    };
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
    // What a select branch saw change (`changed()` marks it seen); the first pass feeds
    // everything as it stands.
    let (mut inputs_woke, mut view_woke, mut stale_woke) = (true, true, true);
    loop {
        // Whatever woke us, feed every change not yet seen (the branch that won the select is
        // not always the one that changed). The check and the read are one step: a change
        // arriving between a separate check and the read would be marked seen and never fed.
        let new_inputs = {
            let latest = inputs.borrow_and_update();
            (inputs_woke || latest.has_changed())
                .then(|| latest.clone())
                .flatten()
        };
        let new_liveness = view.as_mut().and_then(|v| {
            let latest = v.borrow_and_update();
            (view_woke || latest.has_changed()).then(|| {
                let View { alive, settled, .. } = latest.clone();
                Liveness {
                    alive: Some(alive),
                    settled,
                }
            })
        });
        let new_stale = {
            let latest = stale.borrow_and_update();
            (stale_woke || latest.has_changed()).then_some(*latest)
        };
        (inputs_woke, view_woke, stale_woke) = (false, false, false);
        let now = std::time::Instant::now();
        let event = if new_inputs.is_none() && new_liveness.is_none() && new_stale.is_none() {
            Event::Tick
        } else {
            Event::Changed {
                inputs: new_inputs,
                liveness: new_liveness,
                stale: new_stale,
            }
        };
        let actions = state.step(event, now);
        run.execute(&state, actions).await;
        if reports.is_some() {
            let actions = state.step(Event::Interfaces(run.active_interfaces()), now);
            run.execute(&state, actions).await;
        }
        let deadline = state.deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            changed = inputs.changed() => {
                changed.map_err(|_| crate::Error::SourceStopped)?;
                inputs_woke = true;
            }
            changed = changed_view(&mut view) => {
                if changed.is_err() {
                    return Err(crate::Error::MembershipStopped);
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
    let stop = actions.contains(&Action::Stop);
    run.execute(&state, actions).await;
    if stop {
        // Leave first, so the others take our layer-2 IPs over at once; only then stop
        // answering for them.
        if let Some(m) = membership {
            m.leave().await;
        }
        if let Err(e) = backends.l2.resync(&[]).await {
            tracing::warn!(error = %e, "withdrawing layer-2 announcements");
        }
    }
    backends.l2.shutdown().await;
    // BGP first (Cease / Administrative Shutdown), then AdminDown to every BFD peer, so
    // routers drop us at once and for the right reason.
    backends
        .bgp
        .shutdown("speaker stopping", Duration::from_secs(1))
        .await;
    if let Some(Some(bfd)) = backends.bfd.runtime.into_inner() {
        bfd.shutdown().await;
    }
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
                    sys::release_free_memory();
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
                // Leaving the membership and stopping the backends consume them: `drive` does
                // it once the loop is done.
                Action::Stop => {}
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
) -> Result<Membership, crate::Error> {
    let ip = match m.bind_addr {
        Some(ip) => ip,
        None => inputs
            .addresses
            .get(node)
            .and_then(|a| a.first().copied())
            .ok_or_else(|| crate::Error::NoNodeAddress {
                node: node.to_string(),
            })?,
    };
    let addr = SocketAddr::new(ip, m.port);
    let sealer = Sealer::from_secret(&m.secret).map_err(crate::Error::MembershipKey)?;
    let membership = Membership::start(
        MembershipConfig {
            node: node.to_string(),
            bind: addr,
            advertise: addr,
            seeds: seeds(inputs, &seed_settings(m)),
            timers: m.timers,
            wire: m.wire,
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
    backends.bfd.apply(&d.bfd, &backends.bgp).await;
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
        bfd: backends.bfd.figures(),
        members: liveness
            .alive
            .as_ref()
            .map_or(1, |a| u64::try_from(a.len()).unwrap_or(u64::MAX)),
        membership: membership.map(Membership::counters).unwrap_or_default(),
        config_loaded: d.is_some(),
        config_stale: state.stale(),
    });
}

#[cfg(test)]
mod tests {
    use super::path_verdict;
    use lb_bfd::State::{AdminDown, Down, Init, Up};

    #[test]
    fn only_a_failure_of_an_up_session_holds_bgp_down() {
        // Up releases, whatever came before.
        assert_eq!(path_verdict(Down, Up, Up), Some(false));
        assert_eq!(path_verdict(Init, Up, Up), Some(false));
        // Up to Down: a failure (detection time, or the remote said Down).
        assert_eq!(path_verdict(Up, Down, Down), Some(true));
        assert_eq!(path_verdict(Up, Down, Up), Some(true));
        // The remote took it down on purpose: released, not held.
        assert_eq!(path_verdict(Up, Down, AdminDown), Some(false));
        // Our own AdminDown (the session is being removed): the removal releases the peer.
        assert_eq!(path_verdict(Up, AdminDown, Up), None);
        // Coming up, or never up: nothing to do.
        assert_eq!(path_verdict(Down, Init, Down), None);
        assert_eq!(path_verdict(Init, Down, Down), None);
    }
}
