//! The declarative contract between the decision layer and the announcing backends.
//!
//! The decision layer computes, for every service, what this node should announce and hands
//! it to each backend. Backends converge to it; they never receive "add" or "remove" commands.
//! [`AnnouncementTable`] is the bookkeeping a backend embeds to turn desired states into the
//! minimal set of changes, so that re-sending an unchanged state costs nothing.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{Announcement, ServiceKey};

/// A backend that makes service IPs reachable (Layer 2 or BGP).
///
/// Both calls are declarative and idempotent: handing a backend the state it already has is a
/// no-op, and a backend must converge to the last state it was handed even after errors.
#[async_trait]
pub trait Announcer: Send + Sync {
    /// Error returned when the backend could not converge (for example a socket failure).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Converges one service to `desired`; `None` withdraws everything the backend announces
    /// for `service`.
    ///
    /// Fails when the backend cannot apply the state now; it keeps the desired state and
    /// retries on its own schedule or at the next call.
    async fn apply(
        &self,
        service: &ServiceKey,
        desired: Option<&Announcement>,
    ) -> Result<(), Self::Error>;

    /// Replaces the whole desired state: every service not in `desired` is withdrawn.
    ///
    /// Fails like [`Announcer::apply`].
    async fn resync(&self, desired: &[Announcement]) -> Result<(), Self::Error>;
}

/// What changed for one service when a desired state was applied to an [`AnnouncementTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnouncementChange {
    /// The service was not announced and now is.
    Added(Announcement),
    /// The service was announced and its announcement changed.
    Updated {
        /// What was announced before.
        previous: Announcement,
        /// What is announced now.
        current: Announcement,
    },
    /// The service is no longer announced.
    Removed(Announcement),
}

/// The current desired announcements of a backend, keyed by service.
///
/// Applying a state returns only what changed; applying the same state twice returns nothing
/// the second time. Empty announcements (see [`Announcement::is_empty`]) are treated as absent.
#[derive(Debug, Clone, Default)]
pub struct AnnouncementTable {
    entries: BTreeMap<ServiceKey, Announcement>,
}

impl AnnouncementTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The announcement currently held for `service`.
    pub fn get(&self, service: &ServiceKey) -> Option<&Announcement> {
        self.entries.get(service)
    }

    /// All held announcements, ordered by service.
    pub fn iter(&self) -> impl Iterator<Item = &Announcement> {
        self.entries.values()
    }

    /// Number of services announced.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is announced.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets the desired state of one service and returns the change, if any.
    ///
    /// The `service` argument wins over `desired.service` when they differ.
    pub fn apply(
        &mut self,
        service: &ServiceKey,
        desired: Option<&Announcement>,
    ) -> Option<AnnouncementChange> {
        let desired = desired.filter(|a| !a.is_empty()).map(|a| {
            let mut a = a.clone();
            a.service.clone_from(service);
            a
        });
        match (self.entries.remove(service), desired) {
            (None, None) => None,
            (None, Some(new)) => {
                self.entries.insert(service.clone(), new.clone());
                Some(AnnouncementChange::Added(new))
            }
            (Some(old), None) => Some(AnnouncementChange::Removed(old)),
            (Some(old), Some(new)) => {
                self.entries.insert(service.clone(), new.clone());
                (old != new).then_some(AnnouncementChange::Updated {
                    previous: old,
                    current: new,
                })
            }
        }
    }

    /// Replaces the whole state and returns the changes, removals first, then additions and
    /// updates in service order. When `desired` names a service twice, the last entry wins.
    pub fn resync(&mut self, desired: &[Announcement]) -> Vec<AnnouncementChange> {
        let wanted: BTreeMap<&ServiceKey, &Announcement> =
            desired.iter().map(|a| (&a.service, a)).collect();
        let gone: Vec<ServiceKey> = self
            .entries
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .cloned()
            .collect();
        let mut changes: Vec<AnnouncementChange> =
            gone.iter().filter_map(|k| self.apply(k, None)).collect();
        changes.extend(
            wanted
                .into_iter()
                .filter_map(|(k, a)| self.apply(k, Some(a))),
        );
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::L2Attributes;

    fn l2(ns: &str, name: &str, ip: &str) -> Announcement {
        Announcement {
            service: ServiceKey::new(ns, name),
            ips: vec![ip.parse().unwrap()],
            l2: Some(L2Attributes::default()),
            bgp: None,
        }
    }

    #[test]
    fn applying_the_same_state_twice_is_a_no_op() {
        let mut table = AnnouncementTable::new();
        let a = l2("default", "web", "192.0.2.1");
        assert!(matches!(
            table.apply(&a.service, Some(&a)),
            Some(AnnouncementChange::Added(_))
        ));
        assert_eq!(table.apply(&a.service, Some(&a)), None);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn changed_ip_is_an_update_and_none_withdraws() {
        let mut table = AnnouncementTable::new();
        let a = l2("default", "web", "192.0.2.1");
        let b = l2("default", "web", "192.0.2.2");
        table.apply(&a.service, Some(&a));
        assert_eq!(
            table.apply(&b.service, Some(&b)),
            Some(AnnouncementChange::Updated {
                previous: a,
                current: b.clone()
            })
        );
        assert_eq!(
            table.apply(&b.service, None),
            Some(AnnouncementChange::Removed(b))
        );
        assert!(table.is_empty());
    }

    #[test]
    fn empty_announcement_counts_as_withdrawal() {
        let mut table = AnnouncementTable::new();
        let a = l2("default", "web", "192.0.2.1");
        table.apply(&a.service, Some(&a));
        let mut empty = a.clone();
        empty.l2 = None;
        assert_eq!(
            table.apply(&a.service, Some(&empty)),
            Some(AnnouncementChange::Removed(a))
        );
    }

    #[test]
    fn resync_removes_missing_services_and_reports_only_changes() {
        let mut table = AnnouncementTable::new();
        let a = l2("default", "a", "192.0.2.1");
        let b = l2("default", "b", "192.0.2.2");
        let c = l2("default", "c", "192.0.2.3");
        assert_eq!(table.resync(&[a.clone(), b.clone()]).len(), 2);
        let changes = table.resync(&[b.clone(), c.clone()]);
        assert_eq!(
            changes,
            vec![
                AnnouncementChange::Removed(a),
                AnnouncementChange::Added(c.clone())
            ]
        );
        assert!(table.resync(&[b, c]).is_empty());
    }
}
