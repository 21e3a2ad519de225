//! The membership agent without sockets or clocks: datagrams and the current time in, sealed
//! datagrams to send, the next deadline and the view out. [`crate::Membership`] drives it over
//! a tokio UDP socket; a test, or another runtime, can drive it in memory.
//!
//! foca (SWIM) is itself sans-IO: the core feeds it opened datagrams and due timers, seals
//! what it wants sent, keeps its timers in a heap, and after every call turns foca's
//! notifications into the [`View`].

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::{Duration, Instant};

use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PostcardCodec, Timer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::replay::{Refusal, ReplayGuard};
use crate::seal::{STAMPED_OVERHEAD, Sealer, Stamp};
use crate::{Counters, Member, MembershipConfig, MembershipError, Timers, View, WireFormat};

/// The first two octets of a mismatch notice: sent unsealed to a sender whose datagram could
/// not be opened, followed by that datagram's nonce. A sealed datagram starts with its
/// version (1), so the leading 0 tells the two apart.
pub const MISMATCH_NOTICE: [u8; 2] = [0, b'K'];

/// Length of a mismatch notice: the two octets, then the 12-octet nonce it echoes.
pub const MISMATCH_NOTICE_LEN: usize = 2 + 12;

/// The notice telling the sender of the datagram with `nonce` that its key is not ours.
///
/// It counts at the receiver only when it echoes the nonce of a datagram the receiver sent
/// to the notice's source in the last [`NOTICE_ECHO_WINDOW`]: a blind forger (who does not
/// see the receiver's traffic) cannot make a speaker believe its key is wrong, and an
/// unverified notice changes nothing.
pub fn mismatch_notice(nonce: &[u8; 12]) -> [u8; MISMATCH_NOTICE_LEN] {
    let mut out = [0u8; MISMATCH_NOTICE_LEN];
    out[..2].copy_from_slice(&MISMATCH_NOTICE);
    out[2..].copy_from_slice(nonce);
    out
}

/// How long the nonces of sent datagrams are kept to verify the notices that echo them.
pub const NOTICE_ECHO_WINDOW: Duration = Duration::from_secs(10);
/// Nonces kept at most (the oldest go first).
const SENT_NONCES_MAX: usize = 4096;
/// Addresses remembered for the once-a-second limit on mismatch notices.
const NOTICED_MAX: usize = 1024;
/// Notices sent per second at most, to all addresses together: forged sources cannot turn a
/// flood into a flood of notices that fills the socket's send buffer.
pub const NOTICES_PER_SECOND: u32 = 20;
/// Addresses remembered as writing version 2, in the upgrade mode.
const STAMPED_PEERS_MAX: usize = 4096;
/// The shortest pace of the rejoin check (faster while nobody answered).
const REJOIN_CHECK: Duration = Duration::from_millis(200);

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A sealed SWIM datagram: send it, waiting for room in the socket's buffer.
    Sealed {
        /// Where to.
        to: SocketAddr,
        /// The sealed bytes.
        datagram: Vec<u8>,
    },
    /// A mismatch notice ([`mismatch_notice`] of `nonce`).
    Notice {
        /// Where to.
        to: SocketAddr,
        /// The nonce of the datagram that could not be opened.
        nonce: [u8; 12],
    },
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

fn foca_config(t: &Timers) -> Result<Config, MembershipError> {
    t.check()?;
    let mut c = Config::simple();
    c.probe_period = t.probe_period;
    c.probe_rtt = t.probe_timeout;
    c.suspect_to_down_after = t.suspicion;
    c.num_indirect_probes = NonZeroUsize::MIN.saturating_add(1);
    c.max_transmissions = NonZeroU8::MIN.saturating_add(5);
    c.notify_down_members = true;
    c.remove_down_after = Duration::from_secs(30).into();
    c.max_packet_size = NonZeroUsize::MIN.saturating_add(1400 - 1 - STAMPED_OVERHEAD);
    c.periodic_gossip = Some(foca::PeriodicParams {
        frequency: t.probe_period,
        num_members: NonZeroUsize::MIN.saturating_add(2),
    });
    Ok(c)
}

/// One speaker's membership state machine.
pub struct Core {
    foca: Foca<Member, PostcardCodec, StdRng, foca::NoCustomBroadcast>,
    runtime: AccumulatingRuntime<Member>,
    sealer: Sealer,
    config: MembershipConfig,
    seeds: Vec<SocketAddr>,
    timers: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    outbox: VecDeque<Transmit>,
    view: View,
    counters: Counters,
    /// A datagram sealed with our key arrived (or foca said we are active).
    heard: bool,
    started: Instant,
    next_rejoin_check: Instant,
    last_rejoin: Option<Instant>,
    refused_logged: Option<Instant>,
    /// When a mismatch notice last went to each address (bounded).
    noticed: HashMap<SocketAddr, Instant>,
    /// The start of the current second of notices, and how many went out in it.
    notice_window: (Instant, u32),
    /// The nonces of the recent sealed datagrams, oldest first (for expiry), ...
    sent_order: VecDeque<[u8; 12]>,
    /// ... and when and where each went (looked up for every notice: no scan).
    sent_nonces: HashMap<[u8; 12], (Instant, SocketAddr)>,
    /// This incarnation's random id, sealed into every version-2 datagram, ...
    incarnation: u64,
    /// ... and the counter of the last one.
    counter: u64,
    /// The wall clock at `started`, in milliseconds since the epoch.
    wall_at_start: u64,
    /// The counters and incarnations heard, to refuse replays.
    guard: ReplayGuard,
    /// In the upgrade mode: addresses that sent us a version-2 datagram (written to in
    /// version 2; the others in version 1).
    stamped_peers: HashSet<SocketAddr>,
    stale_logged: Option<Instant>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("node", &self.config.node)
            .field("view", &self.view)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core for `config` at time `now`, with identity generation `generation` and `seed`
    /// for SWIM's random choices and the incarnation id. Nothing is sent before the first
    /// call.
    ///
    /// `generation` is the wall clock at `now` in milliseconds since the epoch: a restarted
    /// speaker supersedes its old self, and the clock in datagram stamps is `generation`
    /// plus the time elapsed since `now`.
    ///
    /// Fails when the timers are not usable ([`Timers::check`]).
    pub fn new(
        config: MembershipConfig,
        sealer: Sealer,
        generation: u64,
        seed: [u8; 32],
        now: Instant,
    ) -> Result<Self, MembershipError> {
        let foca_config = foca_config(&config.timers)?;
        let me = Member {
            node: config.node.clone(),
            addr: config.advertise,
            generation,
        };
        let mut rng = StdRng::from_seed(seed);
        let incarnation = rng.next_u64();
        let foca = Foca::new(me, foca_config, rng, PostcardCodec);
        let view = View {
            alive: BTreeSet::from([config.node.clone()]),
            settled: false,
            key_mismatch: false,
        };
        Ok(Self {
            foca,
            runtime: AccumulatingRuntime::new(),
            sealer,
            seeds: config.seeds.clone(),
            config,
            timers: BinaryHeap::new(),
            seq: 0,
            outbox: VecDeque::new(),
            view,
            counters: Counters::default(),
            heard: false,
            started: now,
            next_rejoin_check: now,
            last_rejoin: None,
            refused_logged: None,
            noticed: HashMap::new(),
            notice_window: (now, 0),
            sent_order: VecDeque::new(),
            sent_nonces: HashMap::new(),
            incarnation,
            counter: 0,
            wall_at_start: generation,
            guard: ReplayGuard::default(),
            stamped_peers: HashSet::new(),
            stale_logged: None,
        })
    }

    /// What this speaker knows of the cluster now.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Datagram counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// When [`Core::handle_timeout`] must be called next at the latest.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse(p)| p.at);
        Some(timer.map_or(self.next_rejoin_check, |t| t.min(self.next_rejoin_check)))
    }

    /// The next datagram to send, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// Counts one [`Transmit::Sealed`] datagram as sent: the driver calls it when the socket
    /// took the datagram.
    pub fn count_sent(&mut self) {
        self.counters.sent += 1;
    }

    /// Counts one datagram the socket had no room for: the driver drops it rather than wait.
    pub fn count_dropped(&mut self) {
        self.counters.dropped += 1;
    }

    /// Takes a datagram received from `from` at `now`.
    pub fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        self.receive(datagram, from, now);
        self.settle(now);
    }

    /// Runs every timer due at `now`: SWIM's probes and suspicions, and the announcements to
    /// seeds that are not members (fast while nobody answered, then every
    /// [`Timers::rejoin`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.timers.peek().is_some_and(|Reverse(p)| p.at <= now) {
            if let Some(Reverse(p)) = self.timers.pop() {
                let _ = self.foca.handle_timer(p.timer, &mut self.runtime);
            }
        }
        if now >= self.next_rejoin_check {
            self.next_rejoin_check = now + self.config.timers.rejoin.min(REJOIN_CHECK);
            let due = self.last_rejoin.is_none_or(|t| {
                !self.heard || now.saturating_duration_since(t) >= self.config.timers.rejoin
            });
            if due {
                self.last_rejoin = Some(now);
                self.announce_to_missing_seeds();
            }
        }
        self.settle(now);
    }

    /// Replaces the seeds (for example when the nodes change) and announces this speaker to
    /// the new ones that are not members yet.
    pub fn set_seeds(&mut self, seeds: Vec<SocketAddr>, now: Instant) {
        self.seeds = seeds;
        self.announce_to_missing_seeds();
        self.settle(now);
    }

    /// Tells the others this speaker leaves (they drop it at once); send what
    /// [`Core::poll_transmit`] then returns and stop.
    pub fn leave(&mut self, now: Instant) {
        let _ = self.foca.leave_cluster(&mut self.runtime);
        self.settle(now);
    }

    fn receive(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        if datagram.starts_with(&MISMATCH_NOTICE) {
            let echoed = datagram
                .get(2..)
                .and_then(|n| <[u8; 12]>::try_from(n).ok())
                .filter(|n| self.sent_to(from, n, now));
            if echoed.is_some() {
                self.counters.mismatch_notices += 1;
                if !self.heard {
                    tracing::error!(%from, "this speaker's membership key differs from the cluster's: it stays out and makes no layer-2 announcement");
                }
            } else {
                // Forged, stale, or from a speaker of an older version: a hint at most.
                self.counters.unverified_notices += 1;
                tracing::debug!(%from, "unverified key-mismatch notice ignored");
            }
            return;
        }
        match self.sealer.open(datagram) {
            Ok(opened) => {
                if !self.admit(opened.stamp, from, now) {
                    return;
                }
                let plain = opened.payload;
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
                if let Some(nonce) = Sealer::nonce_of(datagram) {
                    self.notice(from, nonce, now);
                }
                self.log_refusal(now, || {
                    tracing::warn!(%from, error = %e, "membership datagram refused (further refusals for 10 s are only counted)");
                });
            }
        }
    }

    /// The wall clock at `now`, in milliseconds since the epoch.
    fn wall_ms(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started).as_millis();
        self.wall_at_start
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    /// Whether an authenticated datagram with `stamp` (`None`: version 1) from `from` may be
    /// used: not a replay, not too old, not our own, and of a version this mode reads.
    fn admit(&mut self, stamp: Option<Stamp>, from: SocketAddr, now: Instant) -> bool {
        let Some(stamp) = stamp else {
            if self.config.wire == WireFormat::Upgrade {
                return true;
            }
            self.counters.refused += 1;
            self.log_refusal(now, || {
                tracing::warn!(%from, "membership datagram of version 1 (a speaker without replay protection) refused: upgrade through the upgrade wire mode (docs/speaker.md)");
            });
            return false;
        };
        if stamp.sender == self.incarnation {
            // Our own datagram sent back to us: nobody else can have our incarnation id.
            self.counters.replayed += 1;
            return false;
        }
        match self.guard.accept(&stamp, self.wall_ms(now)) {
            Ok(()) => {
                if self.config.wire == WireFormat::Upgrade
                    && !self.stamped_peers.contains(&from)
                    && self.stamped_peers.len() < STAMPED_PEERS_MAX
                {
                    self.stamped_peers.insert(from);
                }
                true
            }
            Err(Refusal::Replayed) => {
                self.counters.replayed += 1;
                tracing::debug!(%from, counter = stamp.counter, "replayed membership datagram refused");
                false
            }
            Err(Refusal::Stale { ahead_ms }) => {
                self.counters.stale += 1;
                let quiet = self
                    .stale_logged
                    .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(10));
                if !quiet {
                    self.stale_logged = Some(now);
                    tracing::warn!(%from, ahead_ms, max_ms = crate::replay::MAX_AGE.as_millis(), "membership datagram refused: its clock is too far from ours (a captured datagram played again, or the nodes' clocks differ; further ones for 10 s are only counted)");
                }
                false
            }
        }
    }

    /// Runs `log` at most once every 10 s (refusals of one kind or another).
    fn log_refusal(&mut self, now: Instant, log: impl FnOnce()) {
        let quiet = self
            .refused_logged
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(10));
        if !quiet {
            self.refused_logged = Some(now);
            log();
        }
    }

    /// True when a sealed datagram with `nonce` went to `to` within [`NOTICE_ECHO_WINDOW`].
    fn sent_to(&self, to: SocketAddr, nonce: &[u8; 12], now: Instant) -> bool {
        self.sent_nonces.get(nonce).is_some_and(|(t, a)| {
            *a == to && now.saturating_duration_since(*t) <= NOTICE_ECHO_WINDOW
        })
    }

    /// Tells `to` that its datagram with `nonce` cannot be opened here: at most once a second
    /// per address, and [`NOTICES_PER_SECOND`] in all.
    fn notice(&mut self, to: SocketAddr, nonce: [u8; 12], now: Instant) {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < Duration::from_secs(1);
        if self.noticed.get(&to).is_some_and(recent) {
            return;
        }
        if !recent(&self.notice_window.0) {
            self.notice_window = (now, 0);
        }
        if self.notice_window.1 >= NOTICES_PER_SECOND {
            return;
        }
        if self.noticed.len() >= NOTICED_MAX {
            self.noticed.retain(|_, t| recent(t));
        }
        if self.noticed.len() < NOTICED_MAX {
            self.noticed.insert(to, now);
            self.notice_window.1 += 1;
            self.outbox.push_back(Transmit::Notice { to, nonce });
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

    /// Collects what foca produced: datagrams sealed into the outbox, timers into the heap,
    /// notifications into the view.
    fn settle(&mut self, now: Instant) {
        let wall = self.wall_ms(now);
        while let Some((to, data)) = self.runtime.to_send() {
            let legacy =
                self.config.wire == WireFormat::Upgrade && !self.stamped_peers.contains(&to.addr);
            let sealed = if legacy {
                self.sealer.seal(&data)
            } else {
                self.counter += 1;
                let stamp = Stamp {
                    sender: self.incarnation,
                    counter: self.counter,
                    sent_at_ms: wall,
                };
                self.sealer.seal_stamped(stamp, &data)
            };
            if let Some(sealed) = sealed {
                if let Some(nonce) = Sealer::nonce_of(&sealed) {
                    self.sent_order.push_back(nonce);
                    self.sent_nonces.insert(nonce, (now, to.addr));
                }
                self.outbox.push_back(Transmit::Sealed {
                    to: to.addr,
                    datagram: sealed,
                });
            }
        }
        while let Some(oldest) = self.sent_order.front() {
            let expired = self
                .sent_nonces
                .get(oldest)
                .is_none_or(|(t, _)| now.saturating_duration_since(*t) > NOTICE_ECHO_WINDOW);
            if !expired && self.sent_order.len() <= SENT_NONCES_MAX {
                break;
            }
            if let Some(n) = self.sent_order.pop_front() {
                self.sent_nonces.remove(&n);
            }
        }
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
        self.view.settled = self.heard
            || (!key_mismatch
                && (now.saturating_duration_since(self.started) >= self.config.timers.join_wait
                    || !self.seeds.iter().any(|s| *s != self.config.advertise)));
        self.view.key_mismatch = key_mismatch;
        // This runs after every datagram and timer: the member set only changes with a
        // notification, so it is only rebuilt then.
        if notified {
            let mut alive: BTreeSet<String> = self
                .foca
                .iter_members()
                .map(|m| m.id().node.clone())
                .collect();
            alive.insert(self.config.node.clone());
            self.view.alive = alive;
        }
    }
}
