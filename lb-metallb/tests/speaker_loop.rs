//! Tests of the speaker's loop as a pure step ([`lb_metallb::speaker::step::SpeakerLoop`]):
//! each rule the async loop used to keep in local variables, checked without tokio. Decide
//! only on a change and apply only a different decision; re-announce layer 2 when a speaker
//! joins; send the seeds when they change; readiness; report after the decision was applied
//! and only when it or the interfaces changed, never while layer 2 is held; metrics refreshed
//! after a change and once per `REFRESH` otherwise; nothing after shutdown.
//!
//! Only documentation prefixes are used (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lb_core::ServiceKey;
use lb_metallb::input::Objects;
use lb_metallb::plan::PlanOptions;
use lb_metallb::speaker::step::{Action, Event, LoopSettings, REFRESH, SeedSettings, SpeakerLoop};
use lb_metallb::speaker::{Inputs, Liveness};

/// Two nodes; the layer-2 advertisement allows only node-a, on interface eth0; one Service
/// with an endpoint on each node.
const OBJECTS: &str = "
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
status: {addresses: [{type: InternalIP, address: 192.0.2.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {kubernetes.io/hostname: node-b}}
status: {addresses: [{type: InternalIP, address: 192.0.2.2}]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool, namespace: metallb-system}
spec:
  addresses: [192.0.2.100-192.0.2.120]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec:
  ipAddressPools: [pool]
  interfaces: [eth0]
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node-a}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  clusterIPs: [203.0.113.10]
  selector: {app: web}
  ports: [{port: 80, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
  - {addresses: [198.51.100.1], nodeName: node-a, conditions: {ready: true}}
  - {addresses: [198.51.100.2], nodeName: node-b, conditions: {ready: true}}
";

fn inputs_of(yaml: &str) -> Arc<Inputs> {
    let mut objects = Objects::default();
    objects.add_yaml("test", yaml).unwrap();
    Arc::new(Inputs::from_objects(&objects, &PlanOptions::default()).unwrap())
}

fn inputs() -> Arc<Inputs> {
    inputs_of(OBJECTS)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_string()).collect()
}

fn view(alive: &[&str], settled: bool) -> Liveness {
    Liveness {
        alive: Some(set(alive)),
        settled,
    }
}

const PORT: u16 = 7946;

fn with_membership(reports: bool) -> SpeakerLoop {
    SpeakerLoop::new(LoopSettings {
        node: "node-a".into(),
        membership: Some(SeedSettings {
            port: PORT,
            join: vec!["198.51.100.9:7946".parse().unwrap()],
        }),
        reports,
    })
}

/// The loop of node-b (which may not announce over layer 2), with membership, no reports.
fn node_b() -> SpeakerLoop {
    SpeakerLoop::new(LoopSettings {
        node: "node-b".into(),
        membership: Some(SeedSettings {
            port: PORT,
            join: Vec::new(),
        }),
        reports: false,
    })
}

fn changed(inputs: Option<Arc<Inputs>>, liveness: Option<Liveness>) -> Event {
    Event::Changed {
        inputs,
        liveness,
        stale: None,
    }
}

/// The source's latest inputs were rejected (`true`) or accepted again.
fn stale(rejected: bool) -> Event {
    Event::Changed {
        inputs: None,
        liveness: None,
        stale: Some(rejected),
    }
}

fn applies(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Apply(..)))
        .count()
}

fn has(actions: &[Action], wanted: &Action) -> bool {
    actions.iter().any(|a| a == wanted)
}

/// A loop that has applied its first decision (node-a alone, settled) at `t0`.
fn started(reports: bool, t0: Instant) -> (SpeakerLoop, Arc<Inputs>) {
    let mut l = with_membership(reports);
    let i = inputs();
    let actions = l.step(
        changed(Some(Arc::clone(&i)), Some(view(&["node-a"], true))),
        t0,
    );
    assert_eq!(applies(&actions), 1, "{actions:?}");
    (l, i)
}

#[test]
fn the_first_inputs_are_applied_with_seeds_readiness_and_metrics() {
    let t0 = Instant::now();
    let mut l = with_membership(false);
    let i = inputs();
    let actions = l.step(
        changed(Some(Arc::clone(&i)), Some(view(&["node-a"], true))),
        t0,
    );
    let d = l.decision().unwrap().clone();
    assert_eq!(d.node.l2.len(), 1, "node-a owns the one layer-2 IP");
    let seeds: Vec<SocketAddr> = ["192.0.2.1:7946", "192.0.2.2:7946", "198.51.100.9:7946"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            Action::Apply(d, i),
            Action::SetSeeds(seeds),
            Action::SetReady(true),
            Action::Publish,
        ]
    );
}

#[test]
fn nothing_is_decided_before_the_first_inputs() {
    let mut l = with_membership(true);
    let t0 = Instant::now();
    let actions = l.step(changed(None, Some(view(&["node-a"], true))), t0);
    assert_eq!(actions, vec![Action::Publish]);
    assert!(l.decision().is_none());
    assert!(l.step(Event::Interfaces(set(&["eth0"])), t0).is_empty());
}

#[test]
fn equal_inputs_are_not_applied_again_and_seeds_not_sent_again() {
    let t0 = Instant::now();
    let (mut l, _) = started(false, t0);
    // New inputs with the same content: a new decision equal to the last one. Nothing to
    // apply, no seeds; only the metrics are refreshed.
    let actions = l.step(changed(Some(inputs()), None), t0);
    assert_eq!(actions, vec![Action::Publish]);
}

#[test]
fn a_new_view_that_changes_no_decision_refreshes_the_metrics_at_once() {
    let t0 = Instant::now();
    let mut l = node_b();
    l.step(changed(Some(inputs()), Some(view(&["node-b"], true))), t0);
    let soon = t0 + REFRESH / 10;
    // node-a joins: node-b (no layer-2 IP) decides the same; the member count changes.
    let actions = l.step(changed(None, Some(view(&["node-a", "node-b"], true))), soon);
    assert_eq!(actions, vec![Action::Publish]);
    assert_eq!(l.liveness().alive, Some(set(&["node-a", "node-b"])));
    assert_eq!(l.deadline(), Some(soon + REFRESH));
}

#[test]
fn a_change_of_the_view_alone_is_decided_on_the_inputs_in_force() {
    let t0 = Instant::now();
    let mut l = with_membership(false);
    let i = inputs();
    l.step(
        changed(Some(Arc::clone(&i)), Some(view(&["node-a"], false))),
        t0,
    );
    assert!(l.decision().unwrap().l2_held, "held while unsettled");
    let actions = l.step(changed(None, Some(view(&["node-a"], true))), t0);
    let d = l.decision().unwrap().clone();
    assert!(!d.l2_held);
    assert_eq!(actions.first(), Some(&Action::Apply(d, i)));
    assert!(has(&actions, &Action::SetReady(true)));
}

#[test]
fn an_unsettled_view_holds_layer2_and_is_not_ready() {
    let t0 = Instant::now();
    let mut l = with_membership(true);
    let actions = l.step(changed(Some(inputs()), Some(view(&["node-a"], false))), t0);
    assert!(has(&actions, &Action::SetReady(false)));
    assert!(l.decision().unwrap().node.l2.is_empty());
    // No report while layer 2 is held: it would say "nothing over layer 2".
    assert!(l.step(Event::Interfaces(set(&["eth0"])), t0).is_empty());
}

#[test]
fn a_joining_speaker_makes_the_owner_announce_again() {
    let t0 = Instant::now();
    let (mut l, _) = started(false, t0);
    // node-b may not announce (node selector), so node-a keeps the IP and re-announces it.
    let actions = l.step(changed(None, Some(view(&["node-a", "node-b"], true))), t0);
    assert_eq!(applies(&actions), 0, "same decision: {actions:?}");
    assert!(has(&actions, &Action::Reannounce), "{actions:?}");
    // The same view again is no join.
    let actions = l.step(changed(None, Some(view(&["node-a", "node-b"], true))), t0);
    assert!(!has(&actions, &Action::Reannounce), "{actions:?}");
    // A leave is no join either.
    let actions = l.step(changed(None, Some(view(&["node-a"], true))), t0);
    assert!(!has(&actions, &Action::Reannounce), "{actions:?}");
}

#[test]
fn a_join_is_not_announced_again_by_a_node_without_layer2_ips() {
    let t0 = Instant::now();
    let mut l = node_b();
    l.step(changed(Some(inputs()), Some(view(&["node-b"], true))), t0);
    assert!(l.decision().unwrap().node.l2.is_empty());
    let actions = l.step(changed(None, Some(view(&["node-a", "node-b"], true))), t0);
    assert!(!has(&actions, &Action::Reannounce), "{actions:?}");
}

#[test]
fn new_node_addresses_change_the_seeds() {
    let t0 = Instant::now();
    let (mut l, _) = started(false, t0);
    let moved = OBJECTS.replace("192.0.2.2}", "192.0.2.3}");
    let actions = l.step(changed(Some(inputs_of(&moved)), None), t0);
    let seeds: Vec<SocketAddr> = ["192.0.2.1:7946", "192.0.2.3:7946", "198.51.100.9:7946"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(has(&actions, &Action::SetSeeds(seeds)), "{actions:?}");
}

#[test]
fn without_membership_no_seeds_and_every_node_counts_alive() {
    let t0 = Instant::now();
    let mut l = SpeakerLoop::new(LoopSettings {
        node: "node-a".into(),
        membership: None,
        reports: false,
    });
    let actions = l.step(changed(Some(inputs()), None), t0);
    assert_eq!(applies(&actions), 1);
    assert!(!actions.iter().any(|a| matches!(a, Action::SetSeeds(_))));
    assert!(has(&actions, &Action::SetReady(true)));
    assert_eq!(l.liveness().alive, None);
}

#[test]
fn the_report_follows_the_applied_decision_and_the_interfaces() {
    let t0 = Instant::now();
    let (mut l, _) = started(true, t0);
    let web = ServiceKey::new("default", "web");
    // The responder does not answer on eth0 yet: the Service fails on this node.
    let actions = l.step(Event::Interfaces(BTreeSet::new()), t0);
    let Some(Action::Report(r)) = actions.first() else {
        panic!("no report: {actions:?}");
    };
    assert_eq!(r.failed.get(&web), Some(&vec!["eth0".to_string()]));
    assert!(r.l2.is_empty());
    // Same decision, same interfaces: nothing new to report.
    assert!(l.step(Event::Interfaces(BTreeSet::new()), t0).is_empty());
    // eth0 comes up: reported over layer 2.
    let actions = l.step(Event::Interfaces(set(&["eth0"])), t0);
    let Some(Action::Report(r)) = actions.first() else {
        panic!("no report: {actions:?}");
    };
    assert_eq!(r.l2.get(&web), Some(&vec!["eth0".to_string()]));
    assert!(r.failed.is_empty());
    // A new decision (the Service is gone) is reported even with the same interfaces.
    let without = OBJECTS
        .split("\n---\n")
        .filter(|d| !d.contains("name: web"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let actions = l.step(changed(Some(inputs_of(&without)), None), t0);
    assert_eq!(applies(&actions), 1);
    let actions = l.step(Event::Interfaces(set(&["eth0"])), t0);
    let Some(Action::Report(r)) = actions.first() else {
        panic!("no report: {actions:?}");
    };
    assert!(r.l2.is_empty() && r.failed.is_empty());
}

#[test]
fn no_report_when_reports_are_off() {
    let t0 = Instant::now();
    let (mut l, _) = started(false, t0);
    assert!(l.step(Event::Interfaces(set(&["eth0"])), t0).is_empty());
}

#[test]
fn metrics_are_refreshed_once_per_period_when_nothing_changes() {
    let t0 = Instant::now();
    let (mut l, _) = started(false, t0);
    assert_eq!(l.deadline(), Some(t0 + REFRESH));
    let early = t0 + REFRESH / 2;
    assert!(l.step(Event::Tick, early).is_empty());
    assert!(l.step(changed(None, None), early).is_empty());
    let due = t0 + REFRESH;
    assert_eq!(l.step(Event::Tick, due), vec![Action::Publish]);
    assert_eq!(l.deadline(), Some(due + REFRESH));
}

#[test]
fn a_rejected_change_is_published_at_once() {
    let t0 = Instant::now();
    let (mut l, _) = started(false, t0);
    let soon = t0 + Duration::from_millis(10);
    assert_eq!(l.step(stale(true), soon), vec![Action::Publish]);
    assert!(l.stale());
    assert!(l.step(stale(true), soon).is_empty());
    assert_eq!(l.step(stale(false), soon), vec![Action::Publish]);
    assert!(!l.stale());
}

#[test]
fn shutdown_stops_once_and_nothing_follows() {
    let t0 = Instant::now();
    let (mut l, i) = started(true, t0);
    assert_eq!(
        l.step(Event::Shutdown, t0),
        vec![Action::SetReady(false), Action::Stop]
    );
    assert_eq!(l.deadline(), None);
    assert!(l.step(changed(Some(i), None), t0 + REFRESH).is_empty());
    assert!(l.step(Event::Tick, t0 + REFRESH * 2).is_empty());
    assert!(l.step(Event::Shutdown, t0).is_empty());
}
