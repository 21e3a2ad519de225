//! The controller's decisions, without I/O: which configuration is in force, which IPs every
//! Service holds, what its status and annotation must say, which events to emit, and which
//! Services a change can affect. The Kubernetes side (`lb_k8s::controller`) feeds it objects from
//! its reflectors and writes what it returns.
//!
//! - [`ControllerState::apply_config`] validates a new configuration; an invalid one is never
//!   applied (the last good one stays) and a valid one names only the Services it can affect:
//!   holders of a pool that changed or went away, and Services still waiting for an IP.
//! - [`ControllerState::restore`] is the first pass after a start or a leadership change: every
//!   IP recorded in a Service's status is taken back (most IPs first) before anything new is
//!   allocated, so no pending Service can take another's IP.
//! - [`ControllerState::reconcile`] converges one Service and says what to write; a [`Batch`]
//!   says which Services one batch of changes reconciles, in which order, and how often.

mod batch;
mod converge;
mod update;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use lb_alloc::{Allocator, ClearReason, PoolSet, SharingKey};
use lb_core::ServiceKey;

pub use batch::Batch;
pub use converge::{Converged, converge, take_back};
pub use update::{ReconcileError, ServiceUpdate, pool_annotation_patch, status_patch};

use crate::config::{Config, ConfigErrors};
use crate::crd::IPAddressPoolStatus;
use crate::events;
use crate::input::Objects;
use crate::service::{self, ServiceView};

/// What the controller was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Namespace of MetalLB's objects.
    pub namespace: String,
    /// `--lb-class`: only Services of this class (`None`: only Services without a class).
    pub lb_class: Option<String>,
}

/// What [`ControllerState::apply_config`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigOutcome {
    /// The configuration is valid and in force.
    Applied {
        /// Services to reconcile because of it, in this order: those that lost their IPs,
        /// the other holders of changed pools, then the Services waiting for an IP (each
        /// group in key order).
        affected: Vec<ServiceKey>,
        /// Accepted with remarks (deprecated fields, settings without effect).
        warnings: Vec<String>,
    },
    /// The configuration is invalid and was not applied; the previous one (if any) stays.
    Rejected(ConfigErrors),
}

/// The controller's state: the configuration in force, the allocations, and the Services
/// waiting for an IP.
#[derive(Debug)]
pub struct ControllerState {
    settings: Settings,
    config: Option<Config>,
    rejected: Option<ConfigErrors>,
    allocator: Allocator,
    /// Services whose last allocation failed; retried when IPs are freed or pools change.
    pending: BTreeSet<ServiceKey>,
    /// IPs a pool change took from Services, until their next reconcile reports it.
    dropped: BTreeMap<ServiceKey, Vec<IpAddr>>,
    restored: bool,
}

impl ControllerState {
    /// A state with no configuration yet.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            config: None,
            rejected: None,
            allocator: Allocator::new(PoolSet::default()),
            pending: BTreeSet::new(),
            dropped: BTreeMap::new(),
            restored: false,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The configuration in force (the last valid one), if any.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// Why the latest configuration was rejected, while it is (the stale state).
    pub fn rejected(&self) -> Option<&ConfigErrors> {
        self.rejected.as_ref()
    }

    /// The allocations.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// True when `service` waits for an IP.
    pub fn is_pending(&self, service: &ServiceKey) -> bool {
        self.pending.contains(service)
    }

    /// Services waiting for an IP, in key order.
    pub fn pending(&self) -> impl Iterator<Item = &ServiceKey> {
        self.pending.iter()
    }

    /// True once [`ControllerState::restore`] ran with a configuration in force: Services may
    /// be reconciled one by one.
    pub fn is_restored(&self) -> bool {
        self.restored
    }

    /// Validates `objects` and, when valid, puts the configuration in force.
    ///
    /// The pools are replaced as a unit (MetalLB's `SetPools`): allocations whose IPs still lie
    /// in a pool stay (re-homed if the pool's name changed), the others are dropped and their
    /// Services re-evaluated. Only the Services the change can affect are returned: holders of
    /// a pool that was added, changed or removed, and the Services still waiting for an IP.
    /// Before [`ControllerState::restore`] ran, nothing is returned (the restore handles all).
    pub fn apply_config(&mut self, objects: &Objects) -> ConfigOutcome {
        let new = match Config::from_objects_in(objects, &self.settings.namespace) {
            Ok(c) => c,
            Err(errors) => {
                self.rejected = Some(errors.clone());
                return ConfigOutcome::Rejected(errors);
            }
        };
        self.rejected = None;
        let mut warnings = objects.warnings.clone();
        warnings.extend(new.warnings.iter().cloned());
        let changed: BTreeSet<String> = changed_pools(self.allocator.pools(), &new.pools);
        // Holders first (those that lost their IPs before all), then the waiting Services:
        // a freed IP must leave its old holder's status before it is written to another's.
        let mut holders: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut lost: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut waiting: BTreeSet<ServiceKey> = BTreeSet::new();
        if self.restored && !changed.is_empty() {
            holders.extend(
                self.allocator
                    .allocations()
                    .filter(|(_, a)| changed.contains(&a.pool))
                    .map(|(k, _)| k.clone()),
            );
            let change = self.allocator.set_pools(new.pools.clone());
            holders.extend(change.rehomed.into_iter().map(|(k, _, _)| k));
            for (k, allocation) in change.dropped {
                self.dropped.insert(k.clone(), allocation.ips);
                lost.insert(k);
            }
            waiting.extend(self.pending.iter().cloned());
        } else if !changed.is_empty() {
            self.allocator = Allocator::new(new.pools.clone());
        }
        self.config = Some(new);
        let mut affected: Vec<ServiceKey> = lost.iter().cloned().collect();
        affected.extend(holders.into_iter().filter(|k| !lost.contains(k)));
        let named: BTreeSet<ServiceKey> = affected.iter().cloned().collect();
        affected.extend(waiting.into_iter().filter(|k| !named.contains(k)));
        ConfigOutcome::Applied { affected, warnings }
    }

    /// The first pass after a start or after becoming leader: rebuilds every allocation from
    /// what the Services record, then converges every Service, and returns one update per
    /// Service that needs a write or an event, in key order.
    ///
    /// Recorded IPs are taken back first, Services with the most IPs first and then by key,
    /// so a pending Service never takes an IP another Service records. Does nothing (and
    /// returns nothing) while no configuration is in force.
    pub fn restore<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a Service>,
    ) -> Vec<ServiceUpdate> {
        let Some(config) = &self.config else {
            return Vec::new();
        };
        self.allocator = Allocator::new(config.pools.clone());
        self.pending.clear();
        self.dropped.clear();
        let mut ours: Vec<(&Service, ServiceView)> = services
            .into_iter()
            .filter(|s| service::handled_by(s, self.settings.lb_class.as_deref()))
            .map(|s| (s, service::view(s)))
            .collect();
        ours.sort_by(|a, b| a.1.key.cmp(&b.1.key));
        ours.dedup_by(|a, b| a.1.key == b.1.key);

        let mut updates: BTreeMap<ServiceKey, ServiceUpdate> = BTreeMap::new();
        let mut requests = Vec::with_capacity(ours.len());
        let mut unreadable = Vec::new();
        for (svc, view) in &ours {
            if !view.is_load_balancer {
                continue;
            }
            match service::allocation_request(svc, view) {
                Ok(r) => requests.push((*svc, view, r)),
                Err(e) => {
                    let mut u = ServiceUpdate::new(view.key.clone());
                    u.events.push(events::invalid_service(&e));
                    u.error = Some(ReconcileError::InvalidService);
                    updates.insert(view.key.clone(), u);
                    unreadable.push((*svc, view));
                }
            }
        }
        // Services that cannot be read still hold what they record, before anyone else; what
        // they cannot hold any more is cleared, as a reconcile would.
        for (svc, view) in &unreadable {
            if let Some(u) = updates.get_mut(&view.key) {
                self.hold_recorded(u, svc, view);
            }
        }
        let mut recorded: Vec<usize> = (0..requests.len())
            .filter(|i| {
                requests
                    .get(*i)
                    .is_some_and(|r| !r.1.ingress_ips.is_empty())
            })
            .collect();
        recorded.sort_by_key(|i| {
            std::cmp::Reverse(requests.get(*i).map_or(0, |r| r.1.ingress_ips.len()))
        });
        for i in recorded {
            let Some((_, view, request)) = requests.get(i) else {
                continue;
            };
            if let Some(event) = take_back(&mut self.allocator, request, &view.ingress_ips) {
                updates
                    .entry(view.key.clone())
                    .or_insert_with(|| ServiceUpdate::new(view.key.clone()))
                    .events
                    .push(event);
            }
        }
        for (svc, view, request) in &requests {
            let c = converge(&mut self.allocator, request);
            let mut u = updates
                .remove(&view.key)
                .unwrap_or_else(|| ServiceUpdate::new(view.key.clone()));
            self.settle(&mut u, svc, view, c);
            updates.insert(view.key.clone(), u);
        }
        // A Service that moved (another pool, other IPs) may have freed what one converged
        // before it wanted: retry the waiting ones while that makes progress.
        for _ in 0..requests.len() {
            let waiting = self.waiting();
            let mut progress = false;
            for (svc, view, request) in requests.iter().filter(|r| waiting.contains(&r.1.key)) {
                let before = self.allocator.allocation(&view.key).map(|a| a.ips.clone());
                let c = converge(&mut self.allocator, request);
                if c.error.is_some() || before.as_ref() == Some(&c.ips) {
                    continue; // no better than the first pass, which already said so
                }
                progress = true;
                let mut u = ServiceUpdate::new(view.key.clone());
                self.settle(&mut u, svc, view, c);
                if let Some(prev) = updates.get_mut(&view.key) {
                    // Keep the earlier events (the failure that is now resolved included).
                    prev.events.append(&mut u.events);
                    prev.status = u.status;
                    prev.pool_annotation = u.pool_annotation;
                    prev.error = None;
                } else {
                    updates.insert(view.key.clone(), u);
                }
            }
            if !progress {
                break;
            }
        }
        // Services that are ours but not LoadBalancers any more may still carry our status.
        for (svc, view) in &ours {
            if !view.is_load_balancer {
                let mut u = ServiceUpdate::new(view.key.clone());
                u.set_writes(svc, view, &[], None);
                updates.insert(view.key.clone(), u);
            }
        }
        self.restored = true;
        updates.into_values().filter(|u| !u.is_empty()).collect()
    }

    /// Converges one Service (`None`: it was deleted) and says what to write.
    ///
    /// A Service that is not a LoadBalancer of this controller's class loses its IPs (its
    /// status is cleared if it records any); a Service this controller cannot read (both
    /// requested-IP forms, an unparsable IP, no cluster IP) keeps what it holds and gets a
    /// Warning event. When IPs are freed, the Services waiting for one are listed in
    /// [`ServiceUpdate::retry`].
    pub fn reconcile(&mut self, key: &ServiceKey, svc: Option<&Service>) -> ServiceUpdate {
        let mut u = ServiceUpdate::new(key.clone());
        if self.config.is_none() || !self.restored {
            return u;
        }
        let held_before = self.hold_of(key);
        let dropped = self.dropped.remove(key);
        let Some(svc) = svc else {
            self.allocator.release(key);
            self.pending.remove(key);
            self.retry_if_changed(&mut u, held_before);
            return u;
        };
        if !service::handled_by(svc, self.settings.lb_class.as_deref()) {
            // Another controller's Service (or one that changed class): not ours to write.
            self.allocator.release(key);
            self.pending.remove(key);
            self.retry_if_changed(&mut u, held_before);
            return u;
        }
        let view = service::view(svc);
        if !view.is_load_balancer {
            self.allocator.release(key);
            self.pending.remove(key);
            u.set_writes(svc, &view, &[], None);
            if !view.ingress_ips.is_empty() {
                u.events
                    .push(events::cleared_not_load_balancer(&view.ingress_ips));
            }
            self.retry_if_changed(&mut u, held_before);
            return u;
        }
        let request = match service::allocation_request(svc, &view) {
            Ok(r) => r,
            Err(e) => {
                // Keep what the Service holds (or, if nothing is held, what it records and
                // nobody else holds): a typo must not take a working IP away.
                u.events.push(events::invalid_service(&e));
                u.error = Some(ReconcileError::InvalidService);
                if self.allocator.allocation(key).is_none() {
                    self.hold_recorded(&mut u, svc, &view);
                }
                return u;
            }
        };
        if let Some(ips) = dropped
            && let Some(event) = take_back(&mut self.allocator, &request, &ips)
        {
            // A pool change took these IPs; say so before the Service gets new ones. (Taken
            // back when they are allowed again by now.)
            u.events.push(event);
        }
        let c = converge(&mut self.allocator, &request);
        self.settle(&mut u, svc, &view, c);
        self.retry_if_changed(&mut u, held_before);
        u
    }

    /// `IPAddressPool.status` of every pool in force, by pool name.
    pub fn pool_statuses(&self) -> BTreeMap<String, IPAddressPoolStatus> {
        let clamp = |v: u128| i64::try_from(v).unwrap_or(i64::MAX);
        self.allocator
            .stats()
            .into_iter()
            .map(|(name, s)| {
                (
                    name,
                    IPAddressPoolStatus {
                        assigned_ipv4: clamp(s.in_use_v4),
                        assigned_ipv6: clamp(s.in_use_v6),
                        available_ipv4: clamp(s.available_v4()),
                        available_ipv6: clamp(s.available_v6()),
                    },
                )
            })
            .collect()
    }

    /// Records a convergence in `u`: pending set, writes, events.
    fn settle(&mut self, u: &mut ServiceUpdate, svc: &Service, view: &ServiceView, c: Converged) {
        if c.error.is_some() {
            self.pending.insert(view.key.clone());
            u.error = Some(ReconcileError::AllocationFailed);
        } else {
            self.pending.remove(&view.key);
        }
        u.events.extend(c.events);
        u.set_writes(svc, view, &c.ips, c.pool.as_deref());
    }

    /// For a Service that cannot be read and holds nothing: takes back the IPs its status
    /// records, so nobody else is given them; what it cannot hold (taken, no longer allowed,
    /// or a set no request could hold) is cleared with `ClearAssignment`.
    fn hold_recorded(&mut self, u: &mut ServiceUpdate, svc: &Service, view: &ServiceView) {
        let ips = &view.ingress_ips;
        if ips.is_empty() {
            return;
        }
        let event = match service::holding_request(view) {
            Some(request) => take_back(&mut self.allocator, &request, ips),
            None => Some(events::cleared(ips, &ClearReason::FamilyChanged)),
        };
        if let Some(event) = event {
            u.events.push(event);
            u.set_writes(svc, view, &[], None);
        }
    }

    /// The Services that may get more when IPs free up: the pending ones and the
    /// `PreferDualStack` ones still missing a family.
    fn waiting(&self) -> BTreeSet<ServiceKey> {
        let incomplete = self
            .allocator
            .held()
            .filter(|(r, a)| r.families.prefers_dual() && a.ips.len() == 1)
            .map(|(r, _)| r.service.clone());
        self.pending.iter().cloned().chain(incomplete).collect()
    }

    /// What `service` holds: its IPs and the sharing key they were allocated under.
    fn hold_of(&self, service: &ServiceKey) -> Option<(Vec<IpAddr>, SharingKey)> {
        let ips = self.allocator.allocation(service)?.ips.clone();
        let sharing = self.allocator.request(service)?.sharing.clone();
        Some((ips, sharing))
    }

    /// Lists in `u.retry` the Services that may now get what they wait for, when the Service
    /// gave up IPs or changed the sharing key of the IPs it holds: the pending Services and
    /// the `PreferDualStack` Services still missing a family.
    fn retry_if_changed(&self, u: &mut ServiceUpdate, before: Option<(Vec<IpAddr>, SharingKey)>) {
        let Some(before) = before else {
            return;
        };
        if self.hold_of(&u.key).as_ref() == Some(&before) {
            return;
        }
        let mut retry = self.waiting();
        retry.remove(&u.key);
        u.retry = retry.into_iter().collect();
    }
}

/// Names of the pools added, removed or changed between `old` and `new`.
fn changed_pools(old: &PoolSet, new: &PoolSet) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in old.pools() {
        if new.get(p.name()) != Some(p) {
            out.insert(p.name().to_string());
        }
    }
    for p in new.pools() {
        if old.get(p.name()) != Some(p) {
            out.insert(p.name().to_string());
        }
    }
    out
}
