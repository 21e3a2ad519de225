//! The membership agent without sockets or clocks: datagrams and the current time in, sealed
//! datagrams to send, the next deadline and the view out. [`crate::Membership`] drives it over
//! a tokio UDP socket; a test, or another runtime, can drive it in memory.
//!
//! foca (SWIM) is itself sans-IO: the core feeds it opened datagrams and due timers, seals
//! what it wants sent, keeps its timers in a heap, and after every call turns foca's
//! notifications into the [`View`].

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::{Duration, Instant};

use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PostcardCodec, Timer};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::seal::{OVERHEAD, Sealer};
use crate::{Counters, Member, MembershipConfig, MembershipError, Timers, View};

/// The notice sent (unsealed, at most once per second per address) to a sender whose
/// datagram could not be opened. It carries no information beyond "your key is not mine":
/// forging it can only keep a speaker that never joined from taking layer-2 IPs, which
/// dropping its packets would do as well.
pub const MISMATCH_NOTICE: [u8; 2] = [0, b'K'];

/// Addresses remembered for the once-a-second limit on mismatch notices.
const NOTICED_MAX: usize = 1024;
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
    /// A [`MISMATCH_NOTICE`]: send it only if the socket has room at once, else drop it.
    Notice {
        /// Where to.
        to: SocketAddr,
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
    c.max_packet_size = NonZeroUsize::MIN.saturating_add(1400 - 1 - OVERHEAD);
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
    /// A core for `config` at time `now`, with identity generation `generation` (a start
    /// time in milliseconds since the epoch, so a restarted speaker supersedes its old self)
    /// and `seed` for SWIM's random choices. Nothing is sent before the first call.
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
        let foca = Foca::new(me, foca_config, StdRng::from_seed(seed), PostcardCodec);
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
                self.notice(from, now);
                let quiet = self
                    .refused_logged
                    .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(10));
                if !quiet {
                    self.refused_logged = Some(now);
                    tracing::warn!(%from, error = %e, "membership datagram refused (further refusals for 10 s are only counted)");
                }
            }
        }
    }

    /// Tells `to` that its datagrams cannot be opened here, at most once a second.
    fn notice(&mut self, to: SocketAddr, now: Instant) {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < Duration::from_secs(1);
        if self.noticed.get(&to).is_some_and(recent) {
            return;
        }
        if self.noticed.len() >= NOTICED_MAX {
            self.noticed.retain(|_, t| recent(t));
        }
        if self.noticed.len() < NOTICED_MAX {
            self.noticed.insert(to, now);
            self.outbox.push_back(Transmit::Notice { to });
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
        while let Some((to, data)) = self.runtime.to_send() {
            if let Some(sealed) = self.sealer.seal(&data) {
                self.outbox.push_back(Transmit::Sealed {
                    to: to.addr,
                    datagram: sealed,
                });
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
