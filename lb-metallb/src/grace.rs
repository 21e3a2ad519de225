//! The deletion grace period: a configuration object that disappears is kept in force for
//! [`DELETION_GRACE`] before its removal takes effect.
//!
//! GitOps tools replace an object by deleting it and creating it again (Argo CD's `Replace`,
//! `kubectl replace --force`, a Flux re-create). Without a grace period every Service of a
//! deleted pool would lose its IP in the gap and get one again a moment later, possibly
//! another, and its announcements would be withdrawn and made again. With it, an object
//! created again under the same name within the grace period replaces the kept copy and
//! nothing moves. An object that stays deleted is removed once the grace period is over,
//! with MetalLB's usual consequences (and events).
//!
//! Kept: `IPAddressPool`, `L2Advertisement`, `BGPAdvertisement`, `BGPPeer`, `Community`,
//! `BFDProfile` and the legacy ConfigMap. Not kept: Services, Nodes, Namespaces and Secrets,
//! whose deletion is not a configuration change. A kept object that makes the configuration
//! invalid with the objects in force (the same pool created again under another name, so the
//! two overlap) is dropped at once: the live objects always win.
//!
//! Both the controller and the speakers apply it, each from the moment it saw the deletion.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

use crate::crd::{
    BFDProfile, BGPAdvertisement, Community, IPAddressPool, L2Advertisement, v1beta2,
};
use crate::input::Objects;

/// How long a deleted configuration object stays in force.
pub const DELETION_GRACE: Duration = Duration::from_secs(5);

/// A configuration object of a kind the grace period keeps.
#[derive(Debug, Clone)]
enum Kept {
    Pool(IPAddressPool),
    L2(L2Advertisement),
    Bgp(BGPAdvertisement),
    Peer(Box<v1beta2::BGPPeer>),
    Community(Community),
    Bfd(BFDProfile),
    Legacy(ConfigMap),
}

/// Kind, namespace, name.
type Key = (&'static str, String, String);

fn key(kind: &'static str, o: &impl ResourceExt) -> Key {
    (kind, o.namespace().unwrap_or_default(), o.name_any())
}

impl Kept {
    /// Every kept kind of `objects`, by key.
    fn all(objects: &Objects) -> BTreeMap<Key, Kept> {
        let mut out = BTreeMap::new();
        for o in &objects.pools {
            out.insert(key("IPAddressPool", o), Kept::Pool(o.clone()));
        }
        for o in &objects.l2_advertisements {
            out.insert(key("L2Advertisement", o), Kept::L2(o.clone()));
        }
        for o in &objects.bgp_advertisements {
            out.insert(key("BGPAdvertisement", o), Kept::Bgp(o.clone()));
        }
        for o in &objects.peers {
            out.insert(key("BGPPeer", o), Kept::Peer(Box::new(o.clone())));
        }
        for o in &objects.communities {
            out.insert(key("Community", o), Kept::Community(o.clone()));
        }
        for o in &objects.bfd_profiles {
            out.insert(key("BFDProfile", o), Kept::Bfd(o.clone()));
        }
        for o in &objects.legacy_config_maps {
            out.insert(key("ConfigMap", o), Kept::Legacy(o.clone()));
        }
        out
    }

    fn add_to(self, objects: &mut Objects) {
        match self {
            Kept::Pool(o) => objects.pools.push(o),
            Kept::L2(o) => objects.l2_advertisements.push(o),
            Kept::Bgp(o) => objects.bgp_advertisements.push(o),
            Kept::Peer(o) => objects.peers.push(*o),
            Kept::Community(o) => objects.communities.push(o),
            Kept::Bfd(o) => objects.bfd_profiles.push(o),
            Kept::Legacy(o) => objects.legacy_config_maps.push(o),
        }
    }
}

/// What the grace period did in one [`DeletionGrace::hold`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Objects deleted within the grace period and still in force ("Kind namespace/name").
    pub kept: Vec<String>,
    /// Objects whose grace period ended in this call: their removal takes effect now.
    pub expired: Vec<String>,
    /// Objects created again within the grace period: the new object replaced the kept one.
    pub recreated: Vec<String>,
    /// Kept objects dropped because the configuration was not valid with them.
    pub dropped: Vec<String>,
    /// When the next kept object's grace period ends: call again then.
    pub next: Option<Instant>,
}

fn describe(k: &Key) -> String {
    if k.1.is_empty() {
        format!("{} {}", k.0, k.2)
    } else {
        format!("{} {}/{}", k.0, k.1, k.2)
    }
}

/// The deleted configuration objects still in force, and what was seen last.
#[derive(Debug, Clone, Default)]
pub struct DeletionGrace {
    grace: Duration,
    /// The kept kinds as last seen.
    last: BTreeMap<Key, Kept>,
    /// Deleted objects still in force, with the end of their grace period.
    deleted: BTreeMap<Key, (Kept, Instant)>,
}

impl DeletionGrace {
    /// A grace period of `grace` (the controller and speaker use [`DELETION_GRACE`]; zero
    /// turns it off).
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            ..Self::default()
        }
    }

    /// Adds to `objects` (what the caches hold at `now`) the configuration objects deleted
    /// less than the grace period ago and not created again. `valid` tells whether a set of
    /// objects makes a valid configuration; when `objects` alone is valid and is not with the
    /// kept ones, the kept ones are dropped.
    pub fn hold(
        &mut self,
        objects: &mut Objects,
        now: Instant,
        valid: impl Fn(&Objects) -> bool,
    ) -> Held {
        let mut held = Held::default();
        let current = Kept::all(objects);
        for (k, o) in std::mem::take(&mut self.last) {
            if !current.contains_key(&k) && !self.grace.is_zero() {
                self.deleted.entry(k).or_insert((o, now + self.grace));
            }
        }
        self.deleted.retain(|k, (_, until)| {
            if current.contains_key(k) {
                held.recreated.push(describe(k));
                false
            } else if *until <= now {
                held.expired.push(describe(k));
                false
            } else {
                true
            }
        });
        self.last = current;
        if self.deleted.is_empty() {
            return held;
        }
        let mut with = objects.clone();
        for (o, _) in self.deleted.values() {
            o.clone().add_to(&mut with);
        }
        if !valid(&with) && valid(objects) {
            held.dropped = self.deleted.keys().map(describe).collect();
            self.deleted.clear();
            return held;
        }
        *objects = with;
        held.kept = self.deleted.keys().map(describe).collect();
        held.next = self.deleted.values().map(|(_, until)| *until).min();
        held
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn objects(yaml: &str) -> Objects {
        let mut o = Objects::default();
        o.add_yaml("test", yaml).unwrap();
        o
    }

    const POOL_A: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: metallb-system}\nspec: {addresses: [192.0.2.0/28]}\n";
    const POOL_A2: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a2, namespace: metallb-system}\nspec: {addresses: [192.0.2.0/28]}\n";
    const AD: &str = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\n";

    fn names(o: &Objects) -> Vec<String> {
        o.pools.iter().map(ResourceExt::name_any).collect()
    }

    #[test]
    fn a_deleted_object_stays_for_the_grace_period_unless_created_again() {
        let t0 = Instant::now();
        let mut g = DeletionGrace::new(DELETION_GRACE);
        let ok = |_: &Objects| true;
        let mut o = objects(&format!("{POOL_A}---\n{AD}"));
        assert_eq!(g.hold(&mut o, t0, ok), Held::default());
        // Deleted: kept, with the end of its grace period.
        let mut o = objects(AD);
        let h = g.hold(&mut o, t0 + Duration::from_secs(1), ok);
        assert_eq!(names(&o), ["a"]);
        assert_eq!(h.kept, ["IPAddressPool metallb-system/a"]);
        assert_eq!(h.next, Some(t0 + Duration::from_secs(1) + DELETION_GRACE));
        // Created again: the new object stands alone.
        let mut o = objects(&format!("{POOL_A}---\n{AD}"));
        let h = g.hold(&mut o, t0 + Duration::from_secs(2), ok);
        assert_eq!(names(&o), ["a"]);
        assert_eq!(h.recreated, ["IPAddressPool metallb-system/a"]);
        assert_eq!(h.next, None);
        // Deleted for good: kept until the end of the grace period, then removed.
        let t1 = t0 + Duration::from_secs(10);
        let mut o = objects(AD);
        assert_eq!(g.hold(&mut o, t1, ok).kept.len(), 1);
        let mut o = objects(AD);
        let h = g.hold(&mut o, t1 + DELETION_GRACE - Duration::from_millis(1), ok);
        assert_eq!((names(&o), h.kept.len()), (vec!["a".to_string()], 1));
        let mut o = objects(AD);
        let h = g.hold(&mut o, t1 + DELETION_GRACE, ok);
        assert!(names(&o).is_empty());
        assert_eq!(h.expired, ["IPAddressPool metallb-system/a"]);
        assert_eq!(h.next, None);
        // The advertisement is kept too.
        let mut o = Objects::default();
        let h = g.hold(&mut o, t1 + DELETION_GRACE, ok);
        assert_eq!(h.kept, ["L2Advertisement metallb-system/l2"]);
        assert_eq!(o.l2_advertisements.len(), 1);
    }

    #[test]
    fn a_kept_object_that_breaks_the_configuration_is_dropped() {
        let t0 = Instant::now();
        let mut g = DeletionGrace::new(DELETION_GRACE);
        // "Valid" here: no two pools (as two pools of the same addresses would overlap).
        let valid = |o: &Objects| o.pools.len() < 2;
        let mut o = objects(POOL_A);
        g.hold(&mut o, t0, valid);
        // The pool comes back under another name: the live one wins at once.
        let mut o = objects(POOL_A2);
        let h = g.hold(&mut o, t0 + Duration::from_secs(1), valid);
        assert_eq!(names(&o), ["a2"]);
        assert_eq!(h.dropped, ["IPAddressPool metallb-system/a"]);
        assert_eq!(h.next, None);
    }

    #[test]
    fn a_zero_grace_keeps_nothing() {
        let t0 = Instant::now();
        let mut g = DeletionGrace::new(Duration::ZERO);
        let mut o = objects(POOL_A);
        g.hold(&mut o, t0, |_| true);
        let mut o = Objects::default();
        assert_eq!(g.hold(&mut o, t0, |_| true), Held::default());
        assert!(o.pools.is_empty());
    }
}
