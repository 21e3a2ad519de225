//! The speaker's loop as a pure step: [`SpeakerLoop::step`] takes what happened and the current
//! time and returns what to do. The async runtime only waits for events, feeds them in and
//! carries out the [`Action`]s, so every rule of the loop has a test without tokio:
//!
//! - decide again only when the inputs or the live speakers changed, and hand the backends
//!   the whole decision only when it differs from the last one (they converge to it);
//! - a speaker that joined makes this node send its layer-2 takeover announcements again,
//!   because clients may have moved to another node while it was away;
//! - the membership seeds follow the inputs (every node's first address, plus the extra
//!   join addresses), sent only when they change;
//! - ready once the view is settled and layer 2 is not held back;
//! - the status report is made after the decision was applied, from the interfaces the
//!   responder then answers on, and only when the decision or those interfaces changed; never
//!   while layer 2 is held back (it would wrongly say "nothing over layer 2");
//! - the metrics are refreshed after every step that brought new inputs, a new view or a
//!   rejected change, or that produced an action, and at least once per [`REFRESH`] otherwise;
//! - on shutdown: not ready, then stop (leave the membership first, so the others take the
//!   layer-2 IPs over at once, then withdraw and stop the backends).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::status::{Report, report};
use super::{Desired, Inputs, Liveness, desired};

/// How often the metrics are refreshed when nothing happens.
pub const REFRESH: Duration = Duration::from_secs(1);

/// What the membership seeds are made of, besides the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSettings {
    /// The membership UDP port every speaker listens on (7946).
    pub port: u16,
    /// Extra addresses to join through.
    pub join: Vec<SocketAddr>,
}

/// How the loop runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopSettings {
    /// This node's name.
    pub node: String,
    /// Membership; `None` counts every node as alive (MetalLB without memberlist).
    pub membership: Option<SeedSettings>,
    /// Whether status reports are wanted (the API-server source writes them).
    pub reports: bool,
}

/// What happened since the last step.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something the source or the membership publishes changed (each `None`: unchanged).
    Changed {
        /// New inputs.
        inputs: Option<Arc<Inputs>>,
        /// A new membership view.
        liveness: Option<Liveness>,
        /// The source's latest inputs were rejected (`true`; the last good ones stay in
        /// force) or accepted again (`false`).
        stale: Option<bool>,
    },
    /// The layer-2 interfaces the responder answers on now (after the last actions ran).
    Interfaces(BTreeSet<String>),
    /// Time passed, nothing changed (the deadline of [`SpeakerLoop::deadline`] was reached).
    Tick,
    /// The speaker is stopping.
    Shutdown,
}

/// What the runtime must do, in order.
#[derive(Debug, Clone)]
pub enum Action {
    /// Hand this decision to both backends (the layer-2 responder and the BGP speaker). The
    /// inputs are the ones it was made from (its IPs come from them).
    Apply(Desired, Arc<Inputs>),
    /// Send the layer-2 takeover announcements (gratuitous ARP, unsolicited NA) again.
    Reannounce,
    /// Replace the membership seeds.
    SetSeeds(Vec<SocketAddr>),
    /// Say ready (or not) on `/readyz`.
    SetReady(bool),
    /// Write this status report.
    Report(Report),
    /// Refresh the metrics from [`SpeakerLoop::decision`] and the backends.
    Publish,
    /// Leave the membership, then withdraw every announcement and stop the backends, in
    /// that order.
    Stop,
}

/// Two `Apply` actions are equal when their decisions are and they carry the same inputs
/// (the same allocation, not equal contents).
impl PartialEq for Action {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Apply(a, i), Self::Apply(b, j)) => a == b && Arc::ptr_eq(i, j),
            (Self::SetSeeds(a), Self::SetSeeds(b)) => a == b,
            (Self::SetReady(a), Self::SetReady(b)) => a == b,
            (Self::Report(a), Self::Report(b)) => a == b,
            (Self::Reannounce, Self::Reannounce)
            | (Self::Publish, Self::Publish)
            | (Self::Stop, Self::Stop) => true,
            _ => false,
        }
    }
}

/// The loop's memory between steps: what `drive` used to keep in local variables.
#[derive(Debug, Clone)]
pub struct SpeakerLoop {
    settings: LoopSettings,
    inputs: Option<Arc<Inputs>>,
    liveness: Liveness,
    /// The inputs or the view changed since the last decision.
    dirty: bool,
    last: Option<Desired>,
    /// How many decisions were applied (a new one makes the report stale).
    decisions: usize,
    last_alive: Option<BTreeSet<String>>,
    last_seeds: Option<Vec<SocketAddr>>,
    /// The latest interfaces the responder answers on.
    interfaces: BTreeSet<String>,
    /// What the last report was made from: the decision's number and the interfaces.
    reported: Option<(usize, BTreeSet<String>)>,
    ready: Option<bool>,
    stale: bool,
    next_refresh: Option<Instant>,
    stopped: bool,
}

impl SpeakerLoop {
    /// A loop that has seen nothing yet.
    pub fn new(settings: LoopSettings) -> Self {
        let liveness = match settings.membership {
            Some(_) => Liveness {
                alive: Some(BTreeSet::from([settings.node.clone()])),
                settled: false,
            },
            None => Liveness {
                alive: None,
                settled: true,
            },
        };
        Self {
            settings,
            inputs: None,
            liveness,
            dirty: true,
            last: None,
            decisions: 0,
            last_alive: None,
            last_seeds: None,
            interfaces: BTreeSet::new(),
            reported: None,
            ready: None,
            stale: false,
            next_refresh: None,
            stopped: false,
        }
    }

    /// The decision in force, if any.
    pub fn decision(&self) -> Option<&Desired> {
        self.last.as_ref()
    }

    /// The live speakers as last seen.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// The inputs in force, if any arrived.
    pub fn inputs(&self) -> Option<&Arc<Inputs>> {
        self.inputs.as_ref()
    }

    /// Whether the source's latest inputs were rejected.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// When the loop wants a [`Event::Tick`] at the latest (`None` before the first step, and
    /// once stopped).
    pub fn deadline(&self) -> Option<Instant> {
        self.next_refresh.filter(|_| !self.stopped)
    }

    /// Takes one event at time `now` and returns what to do, in order.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Action> {
        if self.stopped {
            return Vec::new();
        }
        let mut out = Vec::new();
        // Whether the metrics show something new even when nothing is to be done.
        let mut news = false;
        match event {
            Event::Changed {
                inputs,
                liveness,
                stale,
            } => {
                news = inputs.is_some() || liveness.is_some();
                if let Some(i) = inputs {
                    self.inputs = Some(i);
                    self.dirty = true;
                }
                if let Some(l) = liveness {
                    self.liveness = l;
                    self.dirty = true;
                }
                if let Some(s) = stale.filter(|s| *s != self.stale) {
                    self.stale = s;
                    news = true;
                }
                self.decide(&mut out);
            }
            Event::Interfaces(active) => {
                self.interfaces = active;
                self.report(&mut out);
            }
            Event::Tick => {}
            Event::Shutdown => {
                self.stopped = true;
                if self.ready != Some(false) {
                    out.push(Action::SetReady(false));
                }
                out.push(Action::Stop);
                return out;
            }
        }
        let due = self.next_refresh.is_none_or(|t| now >= t);
        if news || !out.is_empty() || due {
            out.push(Action::Publish);
            self.next_refresh = Some(now + REFRESH);
        }
        out
    }

    fn decide(&mut self, out: &mut Vec<Action>) {
        let Some(current) = self.inputs.clone().filter(|_| self.dirty) else {
            return;
        };
        self.dirty = false;
        let d = desired(&current, &self.settings.node, &self.liveness);
        if self.last.as_ref() != Some(&d) {
            out.push(Action::Apply(d.clone(), Arc::clone(&current)));
            self.last = Some(d);
            self.decisions += 1;
        }
        let joined = match (&self.last_alive, &self.liveness.alive) {
            (Some(before), Some(now)) => now.iter().any(|n| !before.contains(n)),
            _ => false,
        };
        if joined && self.last.as_ref().is_some_and(|d| !d.node.l2.is_empty()) {
            out.push(Action::Reannounce);
        }
        self.last_alive.clone_from(&self.liveness.alive);
        if let Some(m) = &self.settings.membership {
            let now = seeds(&current, m);
            if self.last_seeds.as_ref() != Some(&now) {
                out.push(Action::SetSeeds(now.clone()));
                self.last_seeds = Some(now);
            }
        }
        let ready = self.liveness.settled && !self.last.as_ref().is_some_and(|d| d.l2_held);
        if self.ready != Some(ready) {
            out.push(Action::SetReady(ready));
            self.ready = Some(ready);
        }
    }

    fn report(&mut self, out: &mut Vec<Action>) {
        if !self.settings.reports {
            return;
        }
        let Some(d) = self.last.as_ref().filter(|d| !d.l2_held) else {
            return;
        };
        let unchanged = self
            .reported
            .as_ref()
            .is_some_and(|(n, i)| *n == self.decisions && *i == self.interfaces);
        if !unchanged {
            out.push(Action::Report(report(d, &self.interfaces)));
            self.reported = Some((self.decisions, self.interfaces.clone()));
        }
    }
}

/// The membership seeds the inputs give: every node's first address on the membership port,
/// and the extra join addresses, sorted, each once.
pub fn seeds(inputs: &Inputs, m: &SeedSettings) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = inputs
        .addresses
        .values()
        .filter_map(|a| a.first())
        .map(|ip| SocketAddr::new(*ip, m.port))
        .collect();
    out.extend(m.join.iter().copied());
    out.sort();
    out.dedup();
    out
}
