//! The tokio runtime: every session of the process over a handful of UDP sockets.
//!
//! - **Receiving:** one socket per family and kind: single-hop on port 3784 (RFC 5881),
//!   multihop on port 4784 (RFC 5883). A packet goes to the session its Your Discriminator
//!   names, or, while that is zero, to the session of its source address. A single-hop packet
//!   must arrive with TTL (hop limit) 255, so it cannot come from further than the link; a
//!   multihop packet needs at least the session's `minimum_ttl`.
//! - **Sending:** one socket per family (and per local address a session names), bound to a
//!   source port in 49152–65535 that all its sessions share, TTL 255.
//! - **Sessions:** [`Bfd::set_peers`] sets the whole list, like the BGP speaker's peers: new
//!   ones start, changed ones get their new timers through a Poll Sequence (no flap), removed
//!   ones send AdminDown and go. State changes are logged, broadcast ([`Bfd::subscribe`]) and
//!   visible in [`Bfd::peers`].

mod sys;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

pub use crate::peer::{PeerKey, PeerSpec};
use crate::session::{ConfigError, Counters, Session, SessionConfig, SessionEvent};
use crate::wire::{ControlRepr, Diagnostic, State};

/// RFC 5881: the destination port of single-hop control packets.
pub const SINGLE_HOP_PORT: u16 = 3784;
/// RFC 5883: the destination port of multihop control packets.
pub const MULTIHOP_PORT: u16 = 4784;
/// Datagrams read from one socket per wake at most, after the one that woke it.
const BATCH: usize = 64;

/// RFC 5881 §4: the source ports control packets are sent from.
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;

/// What a session looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStatus {
    /// Which session.
    pub key: PeerKey,
    /// Its state.
    pub state: State,
    /// The remote system's state, as it last said.
    pub remote_state: State,
    /// Why it last went down.
    pub diagnostic: Diagnostic,
    /// Our discriminator.
    pub local_discriminator: u32,
    /// The remote system's (0 while unknown).
    pub remote_discriminator: u32,
    /// Packet and state counters.
    pub counters: Counters,
    /// The interval packets go out at now, before jitter.
    pub transmit_interval: Option<Duration>,
    /// The detection time in force.
    pub detection_time: Option<Duration>,
    /// The configuration.
    pub config: SessionConfig,
}

/// A session changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdEvent {
    /// Which session.
    pub key: PeerKey,
    /// The state before.
    pub from: State,
    /// The state now.
    pub to: State,
    /// Why.
    pub diagnostic: Diagnostic,
    /// The remote system's state as it last said (AdminDown: it took the session down on
    /// purpose, not a forwarding failure, RFC 5882 §3.2).
    pub remote: State,
}

/// Packets no session took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unmatched {
    /// Not a valid control packet.
    pub malformed: u64,
    /// For no session we run.
    pub unknown: u64,
    /// Arrived with too low a TTL, or from another address than the session's.
    pub refused: u64,
    /// Could not be sent at once (the socket's buffer was full): dropped.
    pub send_dropped: u64,
}

/// Why the runtime could not start or take a peer list.
#[derive(Debug, thiserror::Error)]
pub enum BfdError {
    /// A socket could not be opened or bound.
    #[error("bfd: cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// A peer's configuration cannot run.
    #[error("bfd: peer {peer}: {error}")]
    Config {
        /// The peer.
        peer: PeerKey,
        /// What is wrong.
        error: ConfigError,
    },
    /// The same peer is listed twice.
    #[error("bfd: peer {0} is listed twice")]
    Duplicate(PeerKey),
    /// The runtime has stopped.
    #[error("bfd: the runtime has stopped")]
    Stopped,
}

/// Where the runtime listens.
#[derive(Debug, Clone)]
pub struct BfdOptions {
    /// Single-hop port (3784).
    pub single_hop_port: u16,
    /// Multihop port (4784).
    pub multihop_port: u16,
    /// Source ports to send from.
    pub source_ports: RangeInclusive<u16>,
    /// Listen on IPv4.
    pub ipv4: bool,
    /// Listen on IPv6 (a host without IPv6 only logs that it cannot).
    pub ipv6: bool,
}

impl Default for BfdOptions {
    fn default() -> Self {
        Self {
            single_hop_port: SINGLE_HOP_PORT,
            multihop_port: MULTIHOP_PORT,
            source_ports: SOURCE_PORTS,
            ipv4: true,
            ipv6: true,
        }
    }
}

enum Command {
    Set(Vec<PeerSpec>),
    Shutdown(oneshot::Sender<()>),
}

type StatusMap = Arc<Mutex<BTreeMap<PeerKey, PeerStatus>>>;

/// The running BFD sessions of this process.
#[derive(Debug)]
pub struct Bfd {
    commands: mpsc::UnboundedSender<Command>,
    status: StatusMap,
    unmatched: Arc<Mutex<Unmatched>>,
    events: broadcast::Sender<BfdEvent>,
    task: JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A random number from the standard library's hasher keys (no extra dependency).
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}

impl Bfd {
    /// Binds the receiving sockets and starts the runtime (no sessions yet).
    ///
    /// Fails when an IPv4 socket cannot be bound; an IPv6 one that cannot is only logged.
    pub async fn start(options: BfdOptions) -> Result<Self, BfdError> {
        let mut listeners = Vec::new();
        for (v6, enabled) in [(false, options.ipv4), (true, options.ipv6)] {
            if !enabled {
                continue;
            }
            for (multihop, port) in [
                (false, options.single_hop_port),
                (true, options.multihop_port),
            ] {
                let ip = if v6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                match listener(SocketAddr::new(ip, port)) {
                    Ok(socket) => listeners.push(Listener { socket, multihop }),
                    Err(e) if v6 => {
                        tracing::warn!(error = %e, "BFD over IPv6 unavailable");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let (commands, rx) = mpsc::unbounded_channel();
        let status: StatusMap = Arc::default();
        let unmatched = Arc::new(Mutex::new(Unmatched::default()));
        let (events, _) = broadcast::channel(256);
        let worker = Worker {
            options,
            listeners,
            senders: HashMap::new(),
            sessions: BTreeMap::new(),
            by_discriminator: HashMap::new(),
            by_address: HashMap::new(),
            status: Arc::clone(&status),
            unmatched: Arc::clone(&unmatched),
            events: events.clone(),
            seed: random_u64(),
        };
        let task = tokio::spawn(worker.run(rx));
        Ok(Self {
            commands,
            status,
            unmatched,
            events,
            task,
        })
    }

    /// Replaces the sessions: new peers start, changed ones take their new timers through a
    /// Poll Sequence, missing ones send AdminDown and stop.
    ///
    /// Fails, changing nothing, when a peer's configuration cannot run or a peer is listed
    /// twice.
    pub fn set_peers(&self, peers: Vec<PeerSpec>) -> Result<(), BfdError> {
        let mut seen = std::collections::BTreeSet::new();
        for p in &peers {
            p.config
                .check()
                .map_err(|error| BfdError::Config { peer: p.key, error })?;
            if !seen.insert(p.key) {
                return Err(BfdError::Duplicate(p.key));
            }
        }
        self.commands
            .send(Command::Set(peers))
            .map_err(|_| BfdError::Stopped)
    }

    /// Every session, as it is now.
    pub fn peers(&self) -> Vec<PeerStatus> {
        lock(&self.status).values().copied().collect()
    }

    /// A handle that reads the sessions' status, for a task that outlives a borrow of `self`.
    pub fn status_reader(&self) -> StatusReader {
        StatusReader(Arc::clone(&self.status))
    }

    /// One session's state.
    pub fn state(&self, key: &PeerKey) -> Option<State> {
        lock(&self.status).get(key).map(|s| s.state)
    }

    /// Packets no session took.
    pub fn unmatched(&self) -> Unmatched {
        *lock(&self.unmatched)
    }

    /// State changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BfdEvent> {
        self.events.subscribe()
    }

    /// Sends AdminDown on every session (so the remote systems take them down at once rather
    /// than after their detection time) and stops.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
        self.task.abort();
    }
}

/// Reads the status of a runtime's sessions ([`Bfd::status_reader`]).
#[derive(Debug, Clone)]
pub struct StatusReader(StatusMap);

impl StatusReader {
    /// Every session, as it is now.
    pub fn peers(&self) -> Vec<PeerStatus> {
        lock(&self.0).values().copied().collect()
    }
}

impl Drop for Bfd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn listener(addr: SocketAddr) -> Result<UdpSocket, BfdError> {
    let bind = |source| BfdError::Bind { addr, source };
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(bind)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(bind)?;
    }
    sys::set_receive_ttl(&socket, addr.is_ipv6()).map_err(bind)?;
    socket.bind(&addr.into()).map_err(bind)?;
    socket.set_nonblocking(true).map_err(bind)?;
    UdpSocket::from_std(socket.into()).map_err(bind)
}

/// A socket to send from `local` (the unspecified address of the family when `None`), TTL
/// 255, bound to the first free port of `ports` from a random start.
fn sender(local: IpAddr, ports: &RangeInclusive<u16>, start: u64) -> Result<UdpSocket, BfdError> {
    let unbound = SocketAddr::new(local, 0);
    let bind = |source| BfdError::Bind {
        addr: unbound,
        source,
    };
    let domain = if local.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(bind)?;
    if local.is_ipv6() {
        socket.set_only_v6(true).map_err(bind)?;
        socket.set_unicast_hops_v6(255).map_err(bind)?;
    } else {
        socket.set_ttl_v4(255).map_err(bind)?;
    }
    let (low, high) = (u64::from(*ports.start()), u64::from(*ports.end()));
    let span = high.saturating_sub(low) + 1;
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    // Bounded: each port of the range at most once.
    for i in 0..span {
        let port = u16::try_from(low + (start + i) % span).unwrap_or(*ports.start());
        match socket.bind(&SocketAddr::new(local, port).into()) {
            Ok(()) => {
                socket.set_nonblocking(true).map_err(bind)?;
                return UdpSocket::from_std(socket.into()).map_err(bind);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(bind(e)),
        }
    }
    Err(bind(last))
}

struct Listener {
    socket: UdpSocket,
    multihop: bool,
}

struct Entry {
    session: Session,
    minimum_ttl: u8,
}

struct Worker {
    options: BfdOptions,
    listeners: Vec<Listener>,
    senders: HashMap<(Option<IpAddr>, bool), UdpSocket>,
    sessions: BTreeMap<PeerKey, Entry>,
    by_discriminator: HashMap<u32, PeerKey>,
    by_address: HashMap<(IpAddr, bool), PeerKey>,
    status: StatusMap,
    unmatched: Arc<Mutex<Unmatched>>,
    events: broadcast::Sender<BfdEvent>,
    seed: u64,
}

/// Waits for a datagram on the `i`-th listener; never when there is none.
async fn receive(
    listeners: &[Listener],
    i: usize,
    buf: &mut [u8],
) -> (usize, io::Result<(usize, SocketAddr, Option<u8>)>) {
    match listeners.get(i) {
        Some(l) => {
            let r = l
                .socket
                .async_io(Interest::READABLE, || sys::recv_with_ttl(&l.socket, buf))
                .await;
            (i, r)
        }
        None => std::future::pending().await,
    }
}

impl Worker {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut bufs = [[0u8; 256]; 4];
        // One timer, moved to each new deadline (cheaper than a new one per wake).
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        let timer = tokio::time::sleep_until(far());
        tokio::pin!(timer);
        loop {
            let deadline = self
                .sessions
                .values()
                .filter_map(|e| e.session.next_deadline())
                .min()
                .map_or_else(far, tokio::time::Instant::from_std);
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            let [b0, b1, b2, b3] = &mut bufs;
            let listeners = &self.listeners;
            let wake = tokio::select! {
                c = commands.recv() => Wake::Command(c),
                r = receive(listeners, 0, b0) => Wake::Datagram(r),
                r = receive(listeners, 1, b1) => Wake::Datagram(r),
                r = receive(listeners, 2, b2) => Wake::Datagram(r),
                r = receive(listeners, 3, b3) => Wake::Datagram(r),
                () = &mut timer => Wake::Timer,
            };
            match wake {
                Wake::Command(None) => return,
                Wake::Command(Some(Command::Set(peers))) => self.set(peers),
                Wake::Command(Some(Command::Shutdown(done))) => {
                    self.set(Vec::new());
                    let _ = done.send(());
                    return;
                }
                Wake::Datagram((i, Ok((n, from, ttl)))) => {
                    let multihop = self.listeners.get(i).is_some_and(|l| l.multihop);
                    let buf = bufs.get_mut(i).map(|b| &mut b[..]).unwrap_or_default();
                    let packet = buf.get(..n).unwrap_or_default();
                    self.on_datagram(packet, from, ttl, multihop);
                    // Whatever else is waiting on this socket, in the same wake (bounded: one
                    // batch, then the other sockets and the timers get their turn).
                    for _ in 0..BATCH {
                        let Some(l) = self.listeners.get(i) else {
                            break;
                        };
                        let Ok((n, from, ttl)) = l
                            .socket
                            .try_io(Interest::READABLE, || sys::recv_with_ttl(&l.socket, buf))
                        else {
                            break;
                        };
                        let packet = buf.get(..n).unwrap_or_default();
                        self.on_datagram(packet, from, ttl, multihop);
                    }
                }
                Wake::Datagram((_, Err(e))) => {
                    tracing::debug!(error = %e, "BFD receive failed");
                }
                // Only a timer wake can find a deadline passed: packets and commands settle
                // their own sessions (a new session's first deadline is now, so the timer
                // fires at once).
                Wake::Timer => self.run_timers(),
            }
        }
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<PeerKey> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.session.next_deadline().is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(e) = self.sessions.get_mut(&key) {
                e.session.handle_timeout(now);
            }
            self.service(&key);
        }
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr, ttl: Option<u8>, multihop: bool) {
        let Ok(p) = ControlRepr::parse_bytes(bytes) else {
            lock(&self.unmatched).malformed += 1;
            return;
        };
        let key = if p.your_discriminator != 0 {
            self.by_discriminator.get(&p.your_discriminator)
        } else {
            self.by_address.get(&(from.ip(), multihop))
        };
        let Some(key) = key.copied() else {
            lock(&self.unmatched).unknown += 1;
            return;
        };
        let Some(entry) = self.sessions.get_mut(&key) else {
            return;
        };
        let min_ttl = if key.multihop { entry.minimum_ttl } else { 255 };
        if key.multihop != multihop || key.peer != from.ip() || ttl.is_none_or(|t| t < min_ttl) {
            lock(&self.unmatched).refused += 1;
            return;
        }
        entry.session.handle_packet(&p, Instant::now());
        self.service(&key);
    }

    fn set(&mut self, peers: Vec<PeerSpec>) {
        let now = Instant::now();
        let wanted: BTreeMap<PeerKey, PeerSpec> = peers.into_iter().map(|p| (p.key, p)).collect();
        let gone: Vec<PeerKey> = self
            .sessions
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            let mut admin_down = None;
            if let Some(e) = self.sessions.get_mut(&key) {
                e.session.set_admin_down(true, now);
                admin_down = e.session.poll_transmit();
            }
            self.service(&key);
            // The session goes now: its AdminDown three times (RFC 5880 §6.8.16 wants it
            // sent for a detection time), so one lost packet does not make the remote system
            // take it for a failure.
            if let Some(p) = admin_down {
                for _ in 0..3 {
                    self.send(&key, &p);
                }
            }
            if let Some(e) = self.sessions.remove(&key) {
                self.by_discriminator
                    .remove(&e.session.local_discriminator());
            }
            self.by_address.retain(|_, k| *k != key);
            lock(&self.status).remove(&key);
            tracing::info!(peer = %key, "BFD session removed");
        }
        for (key, spec) in wanted {
            if let Some(e) = self.sessions.get_mut(&key) {
                e.minimum_ttl = spec.minimum_ttl;
                if e.session.config() != &spec.config {
                    if let Err(error) = e.session.set_config(spec.config, now) {
                        tracing::error!(peer = %key, %error, "BFD configuration refused");
                    }
                    tracing::info!(peer = %key, "BFD timers changed");
                }
            } else {
                let discriminator = self.new_discriminator();
                self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                match Session::new(spec.config, discriminator, now, self.seed) {
                    Ok(session) => {
                        self.by_discriminator.insert(discriminator.get(), key);
                        self.by_address
                            .entry((key.peer, key.multihop))
                            .or_insert(key);
                        self.sessions.insert(
                            key,
                            Entry {
                                session,
                                minimum_ttl: spec.minimum_ttl,
                            },
                        );
                        tracing::info!(peer = %key, discriminator, "BFD session added");
                    }
                    Err(error) => {
                        tracing::error!(peer = %key, %error, "BFD configuration refused");
                        continue;
                    }
                }
            }
            self.service(&key);
        }
    }

    fn new_discriminator(&mut self) -> NonZeroU32 {
        // Bounded: a free one is found among the first few draws (at most a few thousand
        // sessions of four billion values).
        for _ in 0..1_000 {
            self.seed = self
                .seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let candidate = u32::try_from(self.seed >> 32).unwrap_or(1);
            if let Some(d) = NonZeroU32::new(candidate)
                && !self.by_discriminator.contains_key(&d.get())
            {
                return d;
            }
        }
        let next = self.by_discriminator.keys().max().copied().unwrap_or(0);
        NonZeroU32::new(next.wrapping_add(1)).unwrap_or(NonZeroU32::MIN)
    }

    /// Sends what `key`'s session has to send, reports its state changes and refreshes its
    /// status.
    fn service(&mut self, key: &PeerKey) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        let mut packets = Vec::new();
        while let Some(p) = entry.session.poll_transmit() {
            packets.push(p);
        }
        while let Some(SessionEvent::StateChanged {
            from,
            to,
            diagnostic,
            remote,
        }) = entry.session.poll_event()
        {
            if to == State::Up {
                tracing::info!(peer = %key, %from, %to, "BFD session up");
            } else {
                tracing::warn!(peer = %key, %from, %to, %diagnostic, "BFD session state changed");
            }
            let _ = self.events.send(BfdEvent {
                key: *key,
                from,
                to,
                diagnostic,
                remote,
            });
        }
        let s = &entry.session;
        lock(&self.status).insert(
            *key,
            PeerStatus {
                key: *key,
                state: s.state(),
                remote_state: s.remote_state(),
                diagnostic: s.diagnostic(),
                local_discriminator: s.local_discriminator(),
                remote_discriminator: s.remote_discriminator(),
                counters: s.counters(),
                transmit_interval: s.transmit_interval(),
                detection_time: s.detection_time(),
                config: *s.config(),
            },
        );
        for p in packets {
            self.send(key, &p);
        }
    }

    fn send(&mut self, key: &PeerKey, packet: &ControlRepr) {
        let v6 = key.peer.is_ipv6();
        let slot = (key.local, v6);
        if !self.senders.contains_key(&slot) {
            let local = key.local.unwrap_or(if v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            });
            match sender(local, &self.options.source_ports, self.seed) {
                Ok(s) => {
                    self.senders.insert(slot, s);
                }
                Err(e) => {
                    tracing::warn!(peer = %key, error = %e, "cannot open a BFD send socket");
                    lock(&self.unmatched).send_dropped += 1;
                    return;
                }
            }
        }
        let port = if key.multihop {
            self.options.multihop_port
        } else {
            self.options.single_hop_port
        };
        let to = SocketAddr::new(key.peer, port);
        // Straight to the non-blocking socket: tokio's `try_send_to` refuses until the reactor
        // has seen the socket writable once, which drops a new session's first packet.
        if let Some(socket) = self.senders.get(&slot)
            && socket2::SockRef::from(socket)
                .send_to(&packet.to_bytes(), &to.into())
                .is_err()
        {
            lock(&self.unmatched).send_dropped += 1;
        }
    }
}

enum Wake {
    Command(Option<Command>),
    Datagram((usize, io::Result<(usize, SocketAddr, Option<u8>)>)),
    Timer,
}
