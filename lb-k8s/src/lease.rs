//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go does it: the holder
//! renews the Lease every third of its duration; a candidate takes it over only after it has
//! seen the same holder and renew time, unchanged, for a whole lease duration on its own clock
//! (so clock skew between nodes does not matter); every write carries the `resourceVersion`
//! it read, so two candidates cannot both win. A leader that cannot renew within two thirds of
//! the duration stops acting as leader before anyone else may take over. On a clean stop the
//! leader gives the Lease up so a standby takes over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;

/// Where and as whom to hold the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// `leaseDurationSeconds`.
    pub duration: Duration,
}

impl LeaseSettings {
    /// How often the holder renews and a candidate retries: a third of the duration.
    pub fn retry_period(&self) -> Duration {
        self.duration / 3
    }

    /// How long the holder keeps acting as leader without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// The result of one election round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// This replica holds the Lease (it created, renewed or took it over).
    Leader,
    /// Another replica holds it (or won the race for it).
    Follower,
}

/// One candidate's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The holder and renew time last seen, and when they were first seen on our clock.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
    /// When this replica last renewed successfully.
    last_renewal: Option<Instant>,
}

impl Elector {
    /// A candidate for the Lease described by `settings`.
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
            last_renewal: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// True while this replica may act as leader: it renewed within the renew deadline.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.last_renewal
            .is_some_and(|t| now.duration_since(t) < self.settings.renew_deadline())
    }

    /// One round: reads the Lease, then creates, renews or takes it over when allowed.
    /// `wall` is written into the Lease; `now` (monotonic) measures expiry.
    ///
    /// Fails on API errors other than a lost race (409 Conflict, which is a
    /// [`Round::Follower`]); the caller retries after [`LeaseSettings::retry_period`].
    pub async fn round(&mut self, wall: Timestamp, now: Instant) -> Result<Round, kube::Error> {
        let me = self.settings.identity.clone();
        let seconds = i32::try_from(self.settings.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(wall)),
                    renew_time: Some(MicroTime(wall)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return self.settle(self.api.create(&PostParams::default(), &lease).await, now);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (holder.clone(), spec.renew_time.clone());
        let first_seen = match &self.observed {
            Some((h, r, at)) if (h, r) == (&record.0, &record.1) => *at,
            _ => now,
        };
        self.observed = Some((record.0, record.1, first_seen));
        if holder.as_deref() == Some(me.as_str()) {
            spec.renew_time = Some(MicroTime(wall));
            spec.lease_duration_seconds = Some(seconds);
        } else {
            let their = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.settings.duration, Duration::from_secs);
            if holder.is_some() && now.duration_since(first_seen) < their {
                self.last_renewal = None;
                return Ok(Round::Follower);
            }
            spec.holder_identity = Some(me);
            spec.acquire_time = Some(MicroTime(wall));
            spec.renew_time = Some(MicroTime(wall));
            spec.lease_duration_seconds = Some(seconds);
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        let name = self.settings.name.clone();
        let result = self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await;
        self.settle(result, now)
    }

    /// Gives the Lease up (holder cleared, duration 1 s) if this replica holds it, so a
    /// standby takes over without waiting for expiry.
    ///
    /// Fails on API errors; the Lease then expires on its own.
    pub async fn release(&mut self, wall: Timestamp) -> Result<(), kube::Error> {
        if self.last_renewal.take().is_none() {
            return Ok(());
        }
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(wall));
        let name = self.settings.name.clone();
        self.api
            .replace(&name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }

    fn settle(
        &mut self,
        result: Result<Lease, kube::Error>,
        now: Instant,
    ) -> Result<Round, kube::Error> {
        match result {
            Ok(lease) => {
                let spec = lease.spec.unwrap_or_default();
                self.observed = Some((spec.holder_identity, spec.renew_time, now));
                self.last_renewal = Some(now);
                Ok(Round::Leader)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                self.last_renewal = None;
                Ok(Round::Follower)
            }
            Err(e) => Err(e),
        }
    }
}
