//! The tokio speaker: many peers, one desired route table, [`lb_core::Announcer`].
//!
//! Every peer runs in its own task with its state machine ([`crate::fsm`]), its connections
//! and its Adj-RIB-Out ([`crate::rib`]). The desired routes live in one table shared through a
//! `watch` channel; a change reaches every established session as the minimal UPDATE stream.
//! The speaker both dials its peers and, when given a listen port, accepts their connections
//! (collisions are resolved by the state machine).

mod conn;
mod log_limit;
mod peer;
mod sys;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ipnet::IpNet;
use lb_core::{Announcement, AnnouncementTable, Announcer, ServiceKey};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::SessionConfig;
use crate::fsm::State;
use crate::rib::{RouteAttributes, RouteSet};
use crate::wire::{Notification, cease};
use peer::{PeerCommand, PeerTask};

pub use crate::config::{MD5_MAX_KEY_LEN, PeerConfig};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PeerConfig {
    fn ttl(&self) -> Option<u32> {
        if self.local_asn == self.peer_asn {
            None
        } else {
            Some(u32::from(self.ebgp_multihop.unwrap_or(1)))
        }
    }

    fn validate(&self, default_router_id: Option<Ipv4Addr>) -> Result<Ipv4Addr, SpeakerError> {
        let err = |field: &'static str, reason: String| SpeakerError::InvalidPeer {
            peer: self.name.clone(),
            field,
            reason,
        };
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(err("holdTime", "must be 0 or at least 3 seconds".into()));
        }
        if self
            .password
            .as_ref()
            .is_some_and(|p| p.len() > MD5_MAX_KEY_LEN)
        {
            return Err(err(
                "password",
                format!("longer than {MD5_MAX_KEY_LEN} bytes"),
            ));
        }
        if self.graceful_restart.is_some_and(|t| t > 0x0fff) {
            return Err(err(
                "gracefulRestart",
                "restart time above 4095 seconds".into(),
            ));
        }
        if self.ebgp_multihop == Some(0) {
            return Err(err("ebgpMultiHop", "TTL must be at least 1".into()));
        }
        if self.families.is_empty() {
            return Err(err("families", "no address family".into()));
        }
        if let Some(source) = self.source
            && source.is_ipv4() != self.address.is_ipv4()
        {
            {
                return Err(err(
                    "source",
                    format!("{source} is not of the peer's family"),
                ));
            }
        }
        let source_v4 = match self.source {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        self.router_id
            .or(default_router_id)
            .or(source_v4)
            .ok_or_else(|| {
                err(
                    "routerID",
                    "no router ID: set one, or an IPv4 source address".into(),
                )
            })
    }
}

/// Speaker-wide settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Default BGP Identifier for peers that do not set one.
    pub router_id: Option<Ipv4Addr>,
    /// Accept connections from configured peers on this port (IPv4 and IPv6 wildcard);
    /// `None` only dials out.
    pub listen_port: Option<u16>,
}

/// A session state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEvent {
    /// Peer name.
    pub peer: String,
    /// Peer address.
    pub address: IpAddr,
    /// Previous state.
    pub from: State,
    /// New state.
    pub to: State,
}

/// The state and counters of one peer, for status and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    /// Peer name.
    pub name: String,
    /// Peer address.
    pub address: IpAddr,
    /// Session state.
    pub state: State,
    /// Since when the session is Established.
    pub established_at: Option<SystemTime>,
    /// How many times the session reached Established.
    pub established_count: u64,
    /// Negotiated hold time of the last session.
    pub hold_time: Option<Duration>,
    /// The peer's BGP Identifier from its last OPEN.
    pub peer_router_id: Option<Ipv4Addr>,
    /// TCP connect attempts.
    pub connect_attempts: u64,
    /// Messages written.
    pub messages_sent: u64,
    /// Messages read.
    pub messages_received: u64,
    /// UPDATE messages written (including End-of-RIB).
    pub updates_sent: u64,
    /// Prefixes currently advertised to the peer.
    pub prefixes_announced: usize,
    /// NOTIFICATIONs sent.
    pub notifications_sent: u64,
    /// NOTIFICATIONs received.
    pub notifications_received: u64,
    /// The last error (NOTIFICATION, connect failure), cleared when the session comes up.
    pub last_error: Option<String>,
    /// Held down because the forwarding path is down ([`Speaker::set_path_down`]).
    pub path_down: bool,
}

impl PeerStatus {
    fn new(config: &PeerConfig) -> Self {
        Self {
            name: config.name.clone(),
            address: config.address,
            state: State::Idle,
            established_at: None,
            established_count: 0,
            hold_time: None,
            peer_router_id: None,
            connect_attempts: 0,
            messages_sent: 0,
            messages_received: 0,
            updates_sent: 0,
            prefixes_announced: 0,
            notifications_sent: 0,
            notifications_received: 0,
            last_error: None,
            path_down: false,
        }
    }
}

/// Errors of the speaker's API.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// A peer configuration is not usable.
    #[error("BGP peer {peer}: {field}: {reason}")]
    InvalidPeer {
        /// Peer name.
        peer: String,
        /// Offending field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Two peers share an address.
    #[error("BGP peers {first} and {second} have the same address {address}")]
    DuplicatePeer {
        /// One peer.
        first: String,
        /// The other.
        second: String,
        /// Their address.
        address: IpAddr,
    },
    /// The listener could not be set up.
    #[error("cannot listen on port {port}: {source}")]
    Listen {
        /// Port.
        port: u16,
        /// Cause.
        source: std::io::Error,
    },
    /// A TCP MD5 key could not be installed on the listener.
    #[error("BGP peer {peer}: cannot set the TCP MD5 password on the listener: {source}")]
    Md5 {
        /// Peer name.
        peer: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// One route of the desired table, with the peers it is restricted to (empty: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The prefix.
    pub prefix: IpNet,
    /// Its attributes.
    pub attributes: RouteAttributes,
    /// Names of the peers to advertise to; empty means every peer.
    pub peers: Vec<String>,
}

/// The desired routes of the whole speaker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// A table of these routes; prefixes are truncated to their length and community lists
    /// sorted, once, here.
    pub fn new(mut routes: Vec<Route>) -> Self {
        for r in &mut routes {
            r.prefix = r.prefix.trunc();
            r.attributes.normalize();
        }
        Self { routes }
    }

    /// The routes.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The routes for the peer named `peer`: one entry per prefix, duplicates merged with
    /// [`RouteAttributes::merge`].
    pub fn for_peer(&self, peer: &str) -> RouteSet {
        let mut set = RouteSet::new();
        for r in &self.routes {
            if !r.peers.is_empty() && !r.peers.iter().any(|p| p == peer) {
                continue;
            }
            set.entry(r.prefix)
                .and_modify(|a| a.merge(&r.attributes))
                .or_insert_with(|| r.attributes.clone());
        }
        set
    }

    /// The table that announces `announcements` (their BGP parts).
    pub fn from_announcements<'a>(
        announcements: impl IntoIterator<Item = &'a Announcement>,
    ) -> Self {
        let mut routes = Vec::new();
        for a in announcements {
            let Some(bgp) = &a.bgp else { continue };
            for ad in &bgp.advertisements {
                let attributes = RouteAttributes {
                    local_pref: ad.local_pref,
                    communities: ad.communities.clone(),
                    large_communities: ad.large_communities.clone(),
                    ..RouteAttributes::default()
                };
                routes.push(Route {
                    prefix: ad.prefix,
                    attributes,
                    peers: ad.peers.clone(),
                });
            }
        }
        Self::new(routes)
    }
}

struct PeerHandle {
    config: PeerConfig,
    status: Arc<Mutex<PeerStatus>>,
    commands: mpsc::Sender<PeerCommand>,
    /// Whether the forwarding path is down ([`Speaker::set_path_down`]).
    path: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Shared {
    config: SpeakerConfig,
    peers: Mutex<HashMap<IpAddr, PeerHandle>>,
    routes: watch::Sender<Arc<RouteTable>>,
    announcements: Mutex<AnnouncementTable>,
    /// Peers whose forwarding path is down (BFD), by address.
    path_down: Mutex<std::collections::HashSet<IpAddr>>,
    events: broadcast::Sender<PeerEvent>,
    listeners: Vec<Arc<TcpListener>>,
}

/// A BGP speaker. Cheap to clone; all clones drive the same sessions.
#[derive(Clone)]
pub struct Speaker {
    shared: Arc<Shared>,
    accept_tasks: Arc<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(64)?;
    TcpListener::from_std(socket.into())
}

impl Speaker {
    /// Starts a speaker with no peers and no routes. Must run inside a tokio runtime.
    ///
    /// Fails when the listen port cannot be bound (neither IPv4 nor IPv6).
    pub fn start(config: SpeakerConfig) -> Result<Self, SpeakerError> {
        let mut listeners = Vec::new();
        if let Some(port) = config.listen_port {
            let mut last = None;
            for ip in [
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ] {
                match bind(SocketAddr::new(ip, port)) {
                    Ok(l) => listeners.push(Arc::new(l)),
                    Err(err) => last = Some(err),
                }
            }
            if let (true, Some(source)) = (listeners.is_empty(), last) {
                return Err(SpeakerError::Listen { port, source });
            }
        }
        let (routes, _) = watch::channel(Arc::new(RouteTable::default()));
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            config,
            peers: Mutex::new(HashMap::new()),
            routes,
            announcements: Mutex::new(AnnouncementTable::new()),
            path_down: Mutex::new(std::collections::HashSet::new()),
            events,
            listeners,
        });
        let accept_tasks = shared
            .listeners
            .iter()
            .map(|l| {
                let listener = Arc::clone(l);
                let weak = Arc::downgrade(&shared);
                tokio::spawn(async move {
                    loop {
                        let Ok((stream, from)) = listener.accept().await else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        };
                        let Some(shared) = weak.upgrade() else { return };
                        let ip = match from.ip() {
                            IpAddr::V6(v6) => {
                                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
                            }
                            v4 => v4,
                        };
                        let sender = lock(&shared.peers).get(&ip).map(|p| p.commands.clone());
                        match sender {
                            Some(tx) => {
                                if let Err(
                                    mpsc::error::TrySendError::Full(PeerCommand::Inbound(s))
                                    | mpsc::error::TrySendError::Closed(PeerCommand::Inbound(s)),
                                ) = tx.try_send(PeerCommand::Inbound(stream))
                                {
                                    peer::reject(s);
                                }
                            }
                            None => {
                                tracing::debug!(%from, "connection from an unknown peer refused");
                                peer::reject(stream);
                            }
                        }
                    }
                })
            })
            .collect();
        Ok(Self {
            shared,
            accept_tasks: Arc::new(accept_tasks),
        })
    }

    /// The local addresses the speaker listens on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.shared
            .listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// State changes of every peer, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PeerEvent> {
        self.shared.events.subscribe()
    }

    /// Adds a peer, or replaces one with the same address whose configuration changed (its
    /// session restarts with Cease / Other Configuration Change). An unchanged peer is left
    /// alone.
    pub fn add_peer(&self, config: PeerConfig) -> Result<(), SpeakerError> {
        let router_id = config.validate(self.shared.config.router_id)?;
        let mut peers = lock(&self.shared.peers);
        if peers
            .get(&config.address)
            .is_some_and(|existing| existing.config == config)
        {
            return Ok(());
        }
        if let Some(old) = peers.remove(&config.address) {
            let _ = old.commands.try_send(PeerCommand::Stop(Notification::new(
                crate::wire::ErrorCode::Cease,
                cease::OTHER_CONFIGURATION_CHANGE,
                vec![],
            )));
        }
        for listener in &self.shared.listeners {
            let family_matches = listener
                .local_addr()
                .is_ok_and(|a| a.is_ipv4() == config.address.is_ipv4());
            if !family_matches {
                continue;
            }
            let key = config.password.as_deref().unwrap_or_default();
            if let Err(source) = sys::set_tcp_md5(listener.as_ref(), config.address, key.as_bytes())
            {
                // Removing a key that was never set fails with ENOENT; that is fine.
                if !key.is_empty() {
                    return Err(SpeakerError::Md5 {
                        peer: config.name.clone(),
                        source,
                    });
                }
            }
        }
        let mut session = SessionConfig::new(config.local_asn, config.peer_asn, router_id);
        session.hold_time = config.hold_time;
        session.families = config.families.clone();
        session.graceful_restart = config.graceful_restart;
        session.backoff = config.backoff;
        let status = Arc::new(Mutex::new(PeerStatus::new(&config)));
        let (tx, rx) = mpsc::channel(16);
        let (path, path_rx) =
            watch::channel(lock(&self.shared.path_down).contains(&config.address));
        let task = PeerTask {
            config: config.clone(),
            session,
            status: Arc::clone(&status),
            events: self.shared.events.clone(),
            routes: self.shared.routes.subscribe(),
            commands: rx,
            path: path_rx,
            path_down: false,
        };
        let handle = tokio::spawn(task.run());
        peers.insert(
            config.address,
            PeerHandle {
                config,
                status,
                commands: tx,
                path,
                task: handle,
            },
        );
        Ok(())
    }

    /// Removes the peer at `address`, closing its session with Cease / Peer De-configured.
    pub fn remove_peer(&self, address: IpAddr) -> bool {
        let Some(old) = lock(&self.shared.peers).remove(&address) else {
            return false;
        };
        let _ = old.commands.try_send(PeerCommand::Stop(Notification::new(
            crate::wire::ErrorCode::Cease,
            cease::PEER_DECONFIGURED,
            vec![],
        )));
        for listener in &self.shared.listeners {
            let _ = sys::set_tcp_md5(listener.as_ref(), address, &[]);
        }
        true
    }

    /// Converges the peer set to `configs`: new peers are added, changed ones restarted,
    /// missing ones removed. Every configuration is checked before anything changes.
    pub fn set_peers(&self, configs: Vec<PeerConfig>) -> Result<(), SpeakerError> {
        let mut seen: HashMap<IpAddr, &str> = HashMap::new();
        for c in &configs {
            c.validate(self.shared.config.router_id)?;
            if let Some(first) = seen.insert(c.address, &c.name) {
                return Err(SpeakerError::DuplicatePeer {
                    first: first.to_owned(),
                    second: c.name.clone(),
                    address: c.address,
                });
            }
        }
        let current: Vec<IpAddr> = lock(&self.shared.peers).keys().copied().collect();
        for address in current {
            if !seen.contains_key(&address) {
                self.remove_peer(address);
            }
        }
        for c in configs {
            self.add_peer(c)?;
        }
        Ok(())
    }

    /// Says whether the forwarding path to the peer at `address` is down, as an outside
    /// liveness check (BFD) sees it. Down: its session is reset at once with Cease / BFD Down
    /// (RFC 9384) and is not re-established, nor accepted, until the path is up again. The
    /// state is kept for the address across configuration changes (and before the peer is
    /// added); a peer never said down runs as usual.
    pub fn set_path_down(&self, address: IpAddr, down: bool) {
        let changed = {
            let mut set = lock(&self.shared.path_down);
            if down {
                set.insert(address)
            } else {
                set.remove(&address)
            }
        };
        if !changed {
            return;
        }
        if let Some(peer) = lock(&self.shared.peers).get(&address) {
            peer.path.send_replace(down);
        }
    }

    /// Replaces the desired routes. Every established session receives the difference.
    pub fn set_routes(&self, routes: Vec<Route>) {
        self.shared
            .routes
            .send_replace(Arc::new(RouteTable::new(routes)));
    }

    /// The desired routes.
    pub fn routes(&self) -> Arc<RouteTable> {
        Arc::clone(&self.shared.routes.borrow())
    }

    /// State and counters of every peer, by name.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let mut out: Vec<PeerStatus> = lock(&self.shared.peers)
            .values()
            .map(|p| lock(&p.status).clone())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Closes every session with Cease / Administrative Shutdown carrying `message`, and
    /// waits (at most `grace`) for the NOTIFICATIONs to be written.
    pub async fn shutdown(&self, message: &str, grace: Duration) {
        let handles: Vec<PeerHandle> = lock(&self.shared.peers).drain().map(|(_, h)| h).collect();
        for h in &handles {
            let _ = h
                .commands
                .send(PeerCommand::Stop(Notification::shutdown(message)))
                .await;
        }
        let _ = tokio::time::timeout(grace, async {
            for h in handles {
                let _ = h.task.await;
            }
            // Let the writers flush the NOTIFICATIONs they were handed.
            tokio::time::sleep(Duration::from_millis(100)).await;
        })
        .await;
        for t in self.accept_tasks.iter() {
            t.abort();
        }
    }

    fn publish(&self, table: &AnnouncementTable) {
        self.shared
            .routes
            .send_replace(Arc::new(RouteTable::from_announcements(table.iter())));
    }
}

/// Errors of the [`Announcer`] implementation (none today: routes are accepted and sent
/// whenever sessions are up).
#[derive(Debug, thiserror::Error)]
#[error("BGP announcer error")]
pub struct AnnounceError;

#[async_trait]
impl Announcer for Speaker {
    type Error = AnnounceError;

    async fn apply(
        &self,
        service: &ServiceKey,
        desired: Option<&Announcement>,
    ) -> Result<(), Self::Error> {
        let mut table = lock(&self.shared.announcements);
        if table.apply(service, desired).is_some() {
            self.publish(&table);
        }
        Ok(())
    }

    async fn resync(&self, desired: &[Announcement]) -> Result<(), Self::Error> {
        let mut table = lock(&self.shared.announcements);
        if !table.resync(desired).is_empty() {
            self.publish(&table);
        }
        Ok(())
    }
}
