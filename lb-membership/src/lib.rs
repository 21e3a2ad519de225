//! Which speakers are alive: SWIM membership (the `foca` crate) over UDP between the node
//! speakers, every datagram sealed with a key derived from the memberlist Secret.
//!
//! Each speaker probes the others on a short period; a member that answers neither a direct
//! nor an indirect probe becomes suspect and, unless it refutes in time, down. With the
//! default [`Timers`] a killed speaker is declared down by the others in about half a
//! second. A speaker that stops cleanly leaves the cluster at once ([`Membership::leave`]).
//!
//! The alive set ([`View::alive`]) feeds the layer-2 election: every speaker with the same
//! view elects the same node for a service.
//!
//! In a network partition each side declares the other side down and elects owners among
//! its own members, so a service IP may be answered on both sides, each side's clients
//! reaching its own owner (MetalLB behaves the same way). When the partition heals, the
//! periodic announcements to the seeds join the sides again, every speaker sees the same
//! members, and the elections agree again.

mod seal;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PostcardCodec, Timer};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use seal::{KeyError, OVERHEAD, OpenError, Sealer};

/// A speaker's identity in the cluster.
///
/// The address identifies the member; a speaker that restarts on the same address comes
/// back with a higher generation, which replaces the old identity at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Node name.
    pub node: String,
    /// Where it receives membership datagrams.
    pub addr: SocketAddr,
    /// Start time in milliseconds since the epoch, plus one per rejoin.
    pub generation: u64,
}

impl foca::Identity for Member {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// SWIM timers. The defaults declare a killed speaker down in well under a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How often each member probes another one.
    pub probe_period: Duration,
    /// How long a direct probe may take before indirect probes are sent (less than
    /// `probe_period`).
    pub probe_timeout: Duration,
    /// How long a suspect member has to refute the suspicion before it is declared down.
    pub suspicion: Duration,
    /// How often the seeds that are not members are asked to let us in.
    pub rejoin: Duration,
    /// How long to wait for a first answer before the view counts as settled anyway.
    pub join_wait: Duration,
}

impl Timers {
    /// Checks the timers: the probe timeout shorter than the probe period, none zero.
    ///
    /// Fails with a message naming the values.
    pub fn check(&self) -> Result<(), String> {
        if self.probe_period.is_zero()
            || self.probe_timeout.is_zero()
            || self.probe_timeout >= self.probe_period
            || self.suspicion.is_zero()
        {
            return Err(format!(
                "the probe timeout ({:?}) must be shorter than the probe period ({:?}), and \
                 neither it nor the suspicion timeout ({:?}) may be zero",
                self.probe_timeout, self.probe_period, self.suspicion
            ));
        }
        Ok(())
    }
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(100),
            probe_timeout: Duration::from_millis(40),
            suspicion: Duration::from_millis(150),
            rejoin: Duration::from_secs(1),
            join_wait: Duration::from_secs(2),
        }
    }
}

/// How membership runs.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This node's name.
    pub node: String,
    /// Local address the UDP socket binds.
    pub bind: SocketAddr,
    /// Address the others send to (the bind address unless it is a wildcard).
    pub advertise: SocketAddr,
    /// Addresses of other speakers to join through; our own address is skipped.
    pub seeds: Vec<SocketAddr>,
    /// Timers.
    pub timers: Timers,
}

/// What this speaker knows of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// Nodes whose speaker is alive (suspect members included), this node among them.
    pub alive: BTreeSet<String>,
    /// True once we have heard from the cluster, or waited [`Timers::join_wait`] without an
    /// answer, or have no seeds. Layer-2 announcements should wait for it, so a starting
    /// speaker does not briefly claim every IP before it has seen the others.
    ///
    /// A speaker told by others that its key is not theirs ([`View::key_mismatch`]) and that
    /// never heard a valid datagram stays unsettled: it must not take IPs from a cluster it
    /// cannot join.
    pub settled: bool,
    /// Other speakers refused our datagrams (their key differs) and none accepted us.
    pub key_mismatch: bool,
}

/// Counters of the membership layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received and opened.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams refused: wrong key, tampered, malformed or of another version.
    pub refused: u64,
    /// "Key mismatch" notices received: someone could not open our datagrams.
    pub mismatch_notices: u64,
}

/// The notice sent (unsealed, at most once per second per address) to a sender whose
/// datagram could not be opened. It carries no information beyond "your key is not mine":
/// forging it can only keep a speaker that never joined from taking layer-2 IPs, which
/// dropping its packets would do as well.
const MISMATCH_NOTICE: [u8; 2] = [0, b'K'];

/// Why membership could not start.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The UDP socket could not be bound.
    #[error("membership: cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The timers are not usable.
    #[error("membership: {0}")]
    Timers(String),
}

enum Command {
    Seeds(Vec<SocketAddr>),
    Leave(oneshot::Sender<()>),
}

/// A running membership agent.
#[derive(Debug)]
pub struct Membership {
    view: watch::Receiver<View>,
    counters: watch::Receiver<Counters>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

fn foca_config(t: &Timers) -> Result<Config, MembershipError> {
    t.check().map_err(MembershipError::Timers)?;
    let mut c = Config::simple();
    c.probe_period = t.probe_period;
    c.probe_rtt = t.probe_timeout;
    c.suspect_to_down_after = t.suspicion;
    c.num_indirect_probes = NonZeroUsize::MIN.saturating_add(1);
    c.max_transmissions = NonZeroU8::MIN.saturating_add(5);
    c.notify_down_members = true;
    c.remove_down_after = Duration::from_secs(30).into();
    c.max_packet_size = NonZeroUsize::MIN.saturating_add(1400 - 1 - OVERHEAD);
    c.periodic_gossip = Some(foca::PeriodicParams {
        frequency: t.probe_period,
        num_members: NonZeroUsize::MIN.saturating_add(2),
    });
    Ok(c)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Membership {
    /// Binds the socket and starts the agent; it announces itself to the seeds at once.
    pub async fn start(config: MembershipConfig, sealer: Sealer) -> Result<Self, MembershipError> {
        let foca_config = foca_config(&config.timers)?;
        let socket =
            UdpSocket::bind(config.bind)
                .await
                .map_err(|source| MembershipError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let me = Member {
            node: config.node.clone(),
            addr: config.advertise,
            generation: now_millis(),
        };
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| MembershipError::Timers("no system randomness".into()))?;
        let foca = Foca::new(me, foca_config, StdRng::from_seed(seed), PostcardCodec);
        let seeds: Vec<SocketAddr> = config.seeds.clone();
        let (view_tx, view) = watch::channel(View {
            alive: BTreeSet::from([config.node.clone()]),
            settled: false,
            key_mismatch: false,
        });
        let (counters_tx, counters) = watch::channel(Counters::default());
        let (commands, rx) = mpsc::channel(8);
        let agent = Agent {
            foca,
            socket: Arc::new(socket),
            sealer,
            timers: BinaryHeap::new(),
            seq: 0,
            seeds,
            config,
            view_tx,
            counters_tx,
            counters: Counters::default(),
            runtime: AccumulatingRuntime::new(),
            heard: false,
            started: Instant::now(),
            refused_logged: None,
            noticed: std::collections::HashMap::new(),
        };
        let task = tokio::spawn(agent.run(rx));
        Ok(Self {
            view,
            counters,
            commands,
            task,
        })
    }

    /// The current view; `changed()` on the receiver wakes on every change.
    pub fn view(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    /// Datagram counters.
    pub fn counters(&self) -> Counters {
        *self.counters.borrow()
    }

    /// Replaces the seeds (for example when the speaker pods change).
    pub async fn set_seeds(&self, seeds: Vec<SocketAddr>) {
        let _ = self.commands.send(Command::Seeds(seeds)).await;
    }

    /// Tells the others we are leaving (they drop us at once) and stops the agent.
    pub async fn leave(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
        self.task.abort();
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A pending foca timer, ordered by deadline then submission order.
struct Pending {
    at: Instant,
    seq: u64,
    timer: Timer<Member>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Agent {
    foca: Foca<Member, PostcardCodec, StdRng, foca::NoCustomBroadcast>,
    socket: Arc<UdpSocket>,
    sealer: Sealer,
    timers: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    seeds: Vec<SocketAddr>,
    config: MembershipConfig,
    view_tx: watch::Sender<View>,
    counters_tx: watch::Sender<Counters>,
    counters: Counters,
    runtime: AccumulatingRuntime<Member>,
    heard: bool,
    started: Instant,
    refused_logged: Option<Instant>,
    /// When a mismatch notice last went to each address (bounded).
    noticed: std::collections::HashMap<SocketAddr, Instant>,
}

impl Agent {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 65536];
        let mut rejoin =
            tokio::time::interval(self.config.timers.rejoin.min(Duration::from_millis(200)));
        rejoin.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_rejoin: Option<Instant> = None;
        loop {
            let next_timer = self.timers.peek().map(|Reverse(p)| p.at);
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, from)) = received {
                        self.receive(buf.get(..n).unwrap_or_default(), from);
                    }
                }
                () = sleep_until(next_timer) => {
                    let now = Instant::now();
                    while self.timers.peek().is_some_and(|Reverse(p)| p.at <= now) {
                        if let Some(Reverse(p)) = self.timers.pop() {
                            let _ = self.foca.handle_timer(p.timer, &mut self.runtime);
                        }
                    }
                }
                _ = rejoin.tick() => {
                    // Fast while nobody answered, then at the configured pace.
                    let due = last_rejoin.is_none_or(|t| {
                        !self.heard || t.elapsed() >= self.config.timers.rejoin
                    });
                    if due {
                        last_rejoin = Some(Instant::now());
                        self.announce_to_missing_seeds();
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Seeds(seeds)) => {
                        self.seeds = seeds;
                        self.announce_to_missing_seeds();
                    }
                    Some(Command::Leave(done)) => {
                        let _ = self.foca.leave_cluster(&mut self.runtime);
                        self.drain().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
            }
            self.drain().await;
        }
    }

    fn receive(&mut self, datagram: &[u8], from: SocketAddr) {
        if datagram == MISMATCH_NOTICE {
            self.counters.mismatch_notices += 1;
            if !self.heard {
                tracing::error!(%from, "this speaker's membership key differs from the cluster's: it stays out and makes no layer-2 announcement");
            }
            return;
        }
        match self.sealer.open(datagram) {
            Ok(plain) => {
                self.counters.received += 1;
                // A datagram sealed with our key comes from the cluster, whatever foca makes
                // of it (a message for our previous identity is refused by foca but still
                // proves we share the key): we have heard from the cluster.
                self.heard = true;
                if let Err(e) = self.foca.handle_data(&plain, &mut self.runtime) {
                    tracing::debug!(%from, error = %e, "membership datagram not used");
                }
            }
            Err(e) => {
                self.counters.refused += 1;
                self.notice(from);
                let quiet = self
                    .refused_logged
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(10));
                if !quiet {
                    self.refused_logged = Some(Instant::now());
                    tracing::warn!(%from, error = %e, "membership datagram refused (further refusals for 10 s are only counted)");
                }
            }
        }
    }

    /// Tells `to` that its datagrams cannot be opened here, at most once a second.
    fn notice(&mut self, to: SocketAddr) {
        let now = Instant::now();
        if self
            .noticed
            .get(&to)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
        {
            return;
        }
        if self.noticed.len() >= 1024 {
            self.noticed
                .retain(|_, t| now.duration_since(*t) < Duration::from_secs(1));
        }
        if self.noticed.len() < 1024 {
            self.noticed.insert(to, now);
            let _ = self.socket.try_send_to(&MISMATCH_NOTICE, to);
        }
    }

    fn announce_to_missing_seeds(&mut self) {
        let known: BTreeSet<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        let seeds: Vec<SocketAddr> = self
            .seeds
            .iter()
            .filter(|s| **s != self.config.advertise && !known.contains(*s))
            .copied()
            .collect();
        for addr in seeds {
            let placeholder = Member {
                node: String::new(),
                addr,
                generation: 0,
            };
            let _ = self.foca.announce(placeholder, &mut self.runtime);
        }
    }

    async fn drain(&mut self) {
        while let Some((to, data)) = self.runtime.to_send() {
            if let Some(sealed) = self.sealer.seal(&data)
                && self.socket.send_to(&sealed, to.addr).await.is_ok()
            {
                self.counters.sent += 1;
            }
        }
        let now = Instant::now();
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.seq += 1;
            self.timers.push(Reverse(Pending {
                at: now + after,
                seq: self.seq,
                timer,
            }));
        }
        let mut notified = false;
        while let Some(n) = self.runtime.to_notify() {
            match &n {
                OwnedNotification::MemberUp(m) => {
                    tracing::info!(node = %m.node, addr = %m.addr, "speaker joined");
                }
                OwnedNotification::MemberDown(m) => {
                    tracing::info!(node = %m.node, addr = %m.addr, "speaker down");
                }
                OwnedNotification::Active => self.heard = true,
                OwnedNotification::Rejoin(m) => tracing::warn!(
                    generation = m.generation,
                    "declared down by the others; rejoined with a new generation"
                ),
                _ => {}
            }
            notified = true;
        }
        let key_mismatch = !self.heard && self.counters.mismatch_notices > 0;
        let settled = self.heard
            || (!key_mismatch
                && (self.started.elapsed() >= self.config.timers.join_wait
                    || !self.seeds.iter().any(|s| *s != self.config.advertise)));
        // This runs after every datagram and timer: the member set only changes with a
        // notification, so it is only rebuilt then.
        let alive = notified.then(|| {
            let mut alive: BTreeSet<String> = self
                .foca
                .iter_members()
                .map(|m| m.id().node.clone())
                .collect();
            alive.insert(self.config.node.clone());
            alive
        });
        self.view_tx.send_if_modified(|v| {
            let mut modified = v.settled != settled || v.key_mismatch != key_mismatch;
            v.settled = settled;
            v.key_mismatch = key_mismatch;
            if let Some(alive) = alive
                && v.alive != alive
            {
                v.alive = alive;
                modified = true;
            }
            modified
        });
        self.counters_tx.send_if_modified(|c| {
            if *c == self.counters {
                false
            } else {
                *c = self.counters;
                true
            }
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
