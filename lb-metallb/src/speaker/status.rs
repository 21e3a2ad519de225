//! What a speaker tells the cluster about its node: one `ServiceL2Status` per Service it
//! announces over layer 2, one `ServiceBGPStatus` per Service it advertises over BGP (MetalLB's
//! objects: `generateName` `l2-` / `bgp-`, labels `metallb.io/node`,
//! `metallb.io/service-name`, `metallb.io/service-namespace`), and the Service events
//! `nodeAssigned` and `announceFailed`.
//!
//! This module decides what to write ([`report`], [`diff`], [`events_between`]); the writer in
//! `lb-k8s` applies it to the API server.

use std::collections::{BTreeMap, BTreeSet};

use lb_core::ServiceKey;
use serde_json::{Value, json};

use super::Desired;
use crate::events::{self, Event};

/// The speaker's event reporter name, MetalLB's.
pub const REPORTER: &str = "metallb-speaker";
/// Label: the announcing node.
pub const NODE_LABEL: &str = "metallb.io/node";
/// Label: the Service's name.
pub const SERVICE_NAME_LABEL: &str = "metallb.io/service-name";
/// Label: the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "metallb.io/service-namespace";
/// Which status kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `ServiceL2Status`.
    Layer2,
    /// `ServiceBGPStatus`.
    Bgp,
}

impl Kind {
    /// The `generateName` of its objects, MetalLB's.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Layer2 => "l2-",
            Self::Bgp => "bgp-",
        }
    }

    /// The protocol name in events.
    pub fn protocol(self) -> &'static str {
        match self {
            Self::Layer2 => "layer2",
            Self::Bgp => "bgp",
        }
    }
}

/// What the node reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Services announced over layer 2, with the interfaces the advertisements restrict them
    /// to (empty: every eligible interface).
    pub l2: BTreeMap<ServiceKey, Vec<String>>,
    /// Services advertised over BGP, with the peers they go to.
    pub bgp: BTreeMap<ServiceKey, Vec<String>>,
    /// Services this node is elected for over layer 2 without any of the interfaces the
    /// advertisements allow (those interfaces).
    pub failed: BTreeMap<ServiceKey, Vec<String>>,
}

/// The report of decision `d` on a node whose responder answers on the interfaces `active`.
pub fn report(d: &Desired, active: &BTreeSet<String>) -> Report {
    let mut out = Report::default();
    let mut unrestricted: BTreeSet<ServiceKey> = BTreeSet::new();
    for e in &d.node.l2 {
        let key = e.service.clone();
        if e.interfaces.is_empty() {
            unrestricted.insert(key.clone());
        }
        let entry = out.l2.entry(key).or_default();
        entry.extend(e.interfaces.iter().cloned());
    }
    for (key, interfaces) in &mut out.l2 {
        interfaces.sort();
        interfaces.dedup();
        if unrestricted.contains(key) {
            interfaces.clear();
        }
    }
    let failed: Vec<ServiceKey> = out
        .l2
        .iter()
        .filter(|(_, i)| !i.is_empty() && !i.iter().any(|i| active.contains(i)))
        .map(|(k, _)| k.clone())
        .collect();
    for key in failed {
        if let Some(interfaces) = out.l2.remove(&key) {
            out.failed.insert(key, interfaces);
        }
    }
    for e in &d.node.bgp {
        out.bgp
            .entry(e.service.clone())
            .or_default()
            .extend(e.peers.iter().cloned());
    }
    for peers in out.bgp.values_mut() {
        peers.sort();
        peers.dedup();
    }
    out
}

/// The `status` of an object for `key` over `kind` on `node`.
pub fn status_of(kind: Kind, node: &str, key: &ServiceKey, detail: &[String]) -> Value {
    let mut status = json!({
        "node": node,
        "serviceName": &*key.name,
        "serviceNamespace": &*key.namespace,
    });
    if let Some(map) = status.as_object_mut() {
        match kind {
            Kind::Layer2 => {
                let interfaces: Vec<Value> =
                    detail.iter().map(|name| json!({ "name": name })).collect();
                map.insert("interfaces".into(), Value::Array(interfaces));
            }
            Kind::Bgp => {
                map.insert("peers".into(), json!(detail));
            }
        }
    }
    status
}

/// An object the speaker owns: its name and the status last written (`None` when its status
/// write failed).
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    /// The object's name.
    pub name: String,
    /// The status it holds.
    pub status: Option<Value>,
}

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Create an object for the Service, then write its status.
    Create(Kind, ServiceKey, Value),
    /// Write the status of an existing object.
    Patch(Kind, ServiceKey, String, Value),
    /// Delete an object.
    Delete(Kind, ServiceKey, String),
}

/// The writes that turn `known` into what `report` says for `node`.
pub fn diff(known: &BTreeMap<(Kind, ServiceKey), Owned>, report: &Report, node: &str) -> Vec<Op> {
    let mut want: BTreeMap<(Kind, ServiceKey), Value> = BTreeMap::new();
    for (key, interfaces) in &report.l2 {
        want.insert(
            (Kind::Layer2, key.clone()),
            status_of(Kind::Layer2, node, key, interfaces),
        );
    }
    for (key, peers) in &report.bgp {
        want.insert(
            (Kind::Bgp, key.clone()),
            status_of(Kind::Bgp, node, key, peers),
        );
    }
    let mut ops = Vec::new();
    for ((kind, key), owned) in known {
        if !want.contains_key(&(*kind, key.clone())) {
            ops.push(Op::Delete(*kind, key.clone(), owned.name.clone()));
        }
    }
    for ((kind, key), status) in want {
        match known.get(&(kind, key.clone())) {
            None => ops.push(Op::Create(kind, key, status)),
            Some(owned) if owned.status.as_ref() != Some(&status) => {
                ops.push(Op::Patch(kind, key, owned.name.clone(), status));
            }
            Some(_) => {}
        }
    }
    ops
}

/// The events a change of report from `before` to `now` gives: `nodeAssigned` for every
/// Service this node starts announcing over a protocol, `announceFailed` for every Service that
/// starts failing.
pub fn events_between(before: &Report, now: &Report, node: &str) -> Vec<(ServiceKey, Event)> {
    let mut out = Vec::new();
    for (kind, was, is) in [
        (Kind::Layer2, &before.l2, &now.l2),
        (Kind::Bgp, &before.bgp, &now.bgp),
    ] {
        for key in is.keys().filter(|k| !was.contains_key(*k)) {
            out.push((key.clone(), events::node_assigned(node, kind.protocol())));
        }
    }
    for (key, interfaces) in &now.failed {
        if !before.failed.contains_key(key) {
            out.push((key.clone(), events::announce_failed(node, interfaces)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::{BgpEntry, L2Entry, NodeAnnouncements};

    fn l2(service: &str, ip: &str, interfaces: &[&str]) -> L2Entry {
        L2Entry {
            service: key(service),
            ip: ip.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
            interfaces: interfaces.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    fn bgp(service: &str, prefix: &str, peers: &[&str]) -> BgpEntry {
        BgpEntry {
            service: key(service),
            prefix: prefix.parse().unwrap_or_default(),
            peers: peers.iter().map(|s| (*s).to_string()).collect(),
            communities: Vec::new(),
            large_communities: Vec::new(),
            local_pref: None,
        }
    }

    fn decision(l2_entries: Vec<L2Entry>, bgp_entries: Vec<BgpEntry>) -> Desired {
        Desired {
            node: std::sync::Arc::new(NodeAnnouncements {
                name: "n1".into(),
                l2: l2_entries,
                bgp: bgp_entries,
                not_announced: Vec::new(),
            }),
            peers: Vec::new(),
            bfd: Vec::new(),
            l2_held: false,
        }
    }

    fn key(s: &str) -> ServiceKey {
        s.parse().unwrap_or_else(|_| ServiceKey::new("", ""))
    }

    fn active(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn interfaces_of_a_service_are_merged_and_an_unrestricted_ad_wins() {
        let d = decision(
            vec![
                l2("ns/a", "192.0.2.1", &["eth1"]),
                l2("ns/a", "2001:db8::1", &["eth0", "eth1"]),
                l2("ns/b", "192.0.2.2", &["eth0"]),
                l2("ns/b", "192.0.2.3", &[]),
            ],
            vec![
                bgp("ns/c", "198.51.100.1/32", &["r2", "r1"]),
                bgp("ns/c", "2001:db8::c/128", &["r1"]),
            ],
        );
        let r = report(&d, &active(&["eth0", "eth1"]));
        assert_eq!(
            r.l2.get(&key("ns/a")),
            Some(&vec!["eth0".to_string(), "eth1".to_string()])
        );
        assert_eq!(r.l2.get(&key("ns/b")), Some(&Vec::new()));
        assert_eq!(
            r.bgp.get(&key("ns/c")),
            Some(&vec!["r1".to_string(), "r2".to_string()])
        );
        assert!(r.failed.is_empty());
    }

    #[test]
    fn a_service_whose_interfaces_are_all_absent_fails_and_gets_no_status() {
        let d = decision(
            vec![
                l2("ns/a", "192.0.2.1", &["eth9"]),
                l2("ns/b", "192.0.2.2", &["eth9", "eth0"]),
                l2("ns/c", "192.0.2.3", &[]),
            ],
            Vec::new(),
        );
        let r = report(&d, &active(&["eth0"]));
        assert_eq!(r.failed.get(&key("ns/a")), Some(&vec!["eth9".to_string()]));
        assert!(!r.l2.contains_key(&key("ns/a")));
        assert!(r.l2.contains_key(&key("ns/b")));
        assert!(r.l2.contains_key(&key("ns/c")));
        let ops = diff(&BTreeMap::new(), &r, "n1");
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn diff_creates_patches_and_deletes() {
        let mut r = Report::default();
        r.l2.insert(key("ns/a"), vec!["eth0".into()]);
        r.l2.insert(key("ns/b"), Vec::new());
        r.bgp.insert(key("ns/a"), vec!["r1".into()]);
        let mut known = BTreeMap::new();
        // Up to date.
        known.insert(
            (Kind::Layer2, key("ns/a")),
            Owned {
                name: "l2-aaaaa".into(),
                status: Some(status_of(
                    Kind::Layer2,
                    "n1",
                    &key("ns/a"),
                    &["eth0".into()],
                )),
            },
        );
        // Created earlier but its status write failed.
        known.insert(
            (Kind::Layer2, key("ns/b")),
            Owned {
                name: "l2-bbbbb".into(),
                status: None,
            },
        );
        // No longer announced.
        known.insert(
            (Kind::Bgp, key("ns/gone")),
            Owned {
                name: "bgp-ggggg".into(),
                status: None,
            },
        );
        let ops = diff(&known, &r, "n1");
        assert_eq!(
            ops,
            vec![
                Op::Delete(Kind::Bgp, key("ns/gone"), "bgp-ggggg".into()),
                Op::Patch(
                    Kind::Layer2,
                    key("ns/b"),
                    "l2-bbbbb".into(),
                    json!({"node": "n1", "serviceName": "b", "serviceNamespace": "ns", "interfaces": []}),
                ),
                Op::Create(
                    Kind::Bgp,
                    key("ns/a"),
                    json!({"node": "n1", "serviceName": "a", "serviceNamespace": "ns", "peers": ["r1"]}),
                ),
            ]
        );
    }

    #[test]
    fn events_only_on_transitions() {
        let mut before = Report::default();
        before.l2.insert(key("ns/a"), Vec::new());
        let mut now = before.clone();
        now.bgp.insert(key("ns/a"), vec!["r1".into()]);
        now.l2.insert(key("ns/b"), Vec::new());
        now.failed.insert(key("ns/c"), vec!["eth9".into()]);
        let events = events_between(&before, &now, "n1");
        let shown: Vec<(String, &str, String)> = events
            .iter()
            .map(|(k, e)| (k.to_string(), e.reason, e.message.clone()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "ns/b".to_string(),
                    "nodeAssigned",
                    "announcing from node \"n1\" with protocol \"layer2\"".to_string()
                ),
                (
                    "ns/a".to_string(),
                    "nodeAssigned",
                    "announcing from node \"n1\" with protocol \"bgp\"".to_string()
                ),
                (
                    "ns/c".to_string(),
                    "announceFailed",
                    "node \"n1\" has none of the interfaces the L2Advertisements allow (eth9): not announced".to_string()
                ),
            ]
        );
        assert!(events_between(&now, &now, "n1").is_empty());
    }
}
