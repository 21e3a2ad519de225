//! Tests of the speaker's pure decision ([`lb_metallb::speaker::desired`]) and its helpers: the
//! layer-2 election every speaker makes from its membership view agrees with the offline
//! `plan`, a dead owner is replaced by the node `plan --down` predicts, an unsettled view
//! holds layer-2 back but not BGP, membership off counts every node alive, BGP sessions are
//! mapped from `BGPPeer`s field by field, `externalTrafficPolicy: Local` limits BGP to nodes
//! with an endpoint, and node addresses and router IDs come from `status.addresses`. The
//! API-server source's inputs (IPs from Service status, no allocation) give the same decision
//! as the file source once the controller has recorded the IPs.
//!
//! Objects are written as YAML the way an operator applies them. Only documentation prefixes
//! are used (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lb_bgp::wire::Family;
use lb_metallb::announce::{AnnounceProtocol, NodeAnnouncements};
use lb_metallb::input::Objects;
use lb_metallb::plan::{PlanOptions, plan};
use lb_metallb::speaker::inputs_from_cluster;
use lb_metallb::speaker::{
    Desired, GRACEFUL_RESTART_TIME, Inputs, Liveness, bfd_sessions, default_router_id, desired,
    node_addresses, session_peers,
};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

// ---------------------------------------------------------------------------------------------
// Building the input
// ---------------------------------------------------------------------------------------------

/// Three nodes, each with an InternalIP and an ExternalIP.
fn nodes_yaml() -> String {
    NODES
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "---\napiVersion: v1\nkind: Node\n\
                 metadata: {{name: {n}, labels: {{kubernetes.io/hostname: {n}}}}}\n\
                 status:\n  addresses:\n\
                 \x20   - {{type: InternalIP, address: 192.0.2.{}}}\n\
                 \x20   - {{type: ExternalIP, address: 203.0.113.{}}}\n",
                i + 1,
                i + 1
            )
        })
        .collect()
}

/// A pool announced over layer 2, assigned automatically.
const L2_POOL: &str = "
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: l2-pool, namespace: metallb-system}
spec:
  addresses: [192.0.2.100-192.0.2.120]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec:
  ipAddressPools: [l2-pool]
";

/// A pool advertised over BGP to one router on every node, reached only by annotation.
const BGP_POOL: &str = "
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp-pool, namespace: metallb-system}
spec:
  addresses: [198.51.100.64/26]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: metallb-system}
spec:
  ipAddressPools: [bgp-pool]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: 198.51.100.1
";

/// A LoadBalancer Service in `default`; `pool` pins it with the address-pool annotation.
fn service(name: &str, index: usize, pool: Option<&str>, local: bool) -> String {
    let annotations = pool.map_or_else(String::new, |p| {
        format!("  annotations: {{metallb.io/address-pool: {p}}}\n")
    });
    let policy = if local { "Local" } else { "Cluster" };
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n\
         {annotations}spec:\n  type: LoadBalancer\n  externalTrafficPolicy: {policy}\n\
         \x20 clusterIPs: [203.0.113.{}]\n  selector: {{app: {name}}}\n\
         \x20 ports: [{{port: 80, protocol: TCP}}]\n",
        100 + index
    )
}

/// An EndpointSlice of service `name` with one ready endpoint on each of `nodes`.
fn endpoints(name: &str, index: usize, nodes: &[&str]) -> String {
    let mut out = format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-1, namespace: default, \
         labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nendpoints:\n"
    );
    for (j, n) in nodes.iter().enumerate() {
        out.push_str(&format!(
            "  - {{addresses: [198.51.100.{}], nodeName: {n}, conditions: {{ready: true}}}}\n",
            150 + index * 4 + j
        ));
    }
    out
}

/// `count` layer-2 services `web-0`.. with endpoints on every node.
fn l2_services(count: usize) -> String {
    (0..count)
        .map(|i| {
            let name = format!("web-{i}");
            service(&name, i, None, false) + &endpoints(&name, i, &NODES)
        })
        .collect()
}

fn objects(yaml: &str) -> Objects {
    let mut objects = Objects::default();
    objects.add_yaml("test", yaml).unwrap();
    objects
}

fn inputs(objects: &Objects) -> Inputs {
    Inputs::from_objects(objects, &PlanOptions::default()).unwrap()
}

fn set(nodes: &[&str]) -> BTreeSet<String> {
    nodes.iter().map(|n| (*n).to_string()).collect()
}

fn all_alive() -> Liveness {
    Liveness {
        alive: Some(set(&NODES)),
        settled: true,
    }
}

/// The node `plan` shows announcing `service` over layer 2, exactly one.
fn plan_owner(nodes: &[NodeAnnouncements], service: &str) -> String {
    let owners: Vec<&str> = nodes
        .iter()
        .filter(|n| n.l2.iter().any(|e| e.service.to_string() == service))
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(owners.len(), 1, "plan owners of {service}: {owners:?}");
    owners[0].to_string()
}

/// The nodes among `nodes` whose own decision announces `service` over layer 2.
fn desired_owners(inputs: &Inputs, nodes: &[&str], service: &str, live: &Liveness) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| {
            desired(inputs, n, live)
                .node
                .l2
                .iter()
                .any(|e| e.service.to_string() == service)
        })
        .map(|n| (*n).to_string())
        .collect()
}

fn has_bgp(d: &Desired, inputs: &Inputs, service: &str) -> bool {
    d.announcements(inputs)
        .iter()
        .any(|a| a.service.to_string() == service && a.bgp.is_some())
}

// ---------------------------------------------------------------------------------------------
// Layer-2 election
// ---------------------------------------------------------------------------------------------

#[test]
fn each_node_elects_itself_exactly_where_plan_says() {
    let yaml = nodes_yaml() + L2_POOL + &l2_services(6);
    let objects = objects(&yaml);
    let inputs = inputs(&objects);
    let planned = plan(&objects, &PlanOptions::default()).unwrap();
    assert_eq!(planned.services.len(), 6);
    let live = all_alive();
    let mut owners = BTreeSet::new();
    for s in &planned.services {
        assert_eq!(s.ips.len(), 1, "{s:?}");
        let name = format!("default/{}", s.name);
        let expected = plan_owner(&planned.nodes, &name);
        let mine = desired_owners(&inputs, &NODES, &name, &live);
        assert_eq!(mine, vec![expected.clone()], "{name}");
        owners.insert(expected);
    }
    // The decision of each node is the plan's row for that node, entry for entry.
    for (n, row) in NODES.iter().zip(&planned.nodes) {
        assert_eq!(row.name, *n);
        let d = desired(&inputs, n, &live);
        assert_eq!(*d.node, *row, "{n}");
        assert!(!d.l2_held);
        assert_eq!(
            d.announcements(&inputs)
                .iter()
                .filter(|a| a.l2.is_some())
                .map(|a| a.service.to_string())
                .collect::<BTreeSet<_>>(),
            row.l2
                .iter()
                .map(|e| e.service.to_string())
                .collect::<BTreeSet<_>>(),
            "{n}"
        );
    }
    // Six services spread over more than one node: the election is per IP, not one leader.
    assert!(owners.len() > 1, "every service elected {owners:?}");
}

#[test]
fn a_dead_owner_is_replaced_by_the_node_plan_down_predicts() {
    let yaml = nodes_yaml() + L2_POOL + &l2_services(6);
    let objects = objects(&yaml);
    let inputs = inputs(&objects);
    let planned = plan(&objects, &PlanOptions::default()).unwrap();
    for s in &planned.services {
        let name = format!("default/{}", s.name);
        let elected = plan_owner(&planned.nodes, &name);
        let down = PlanOptions {
            down: set(&[&elected]),
            ..PlanOptions::default()
        };
        let replanned = plan(&objects, &down).unwrap();
        let successor = plan_owner(&replanned.nodes, &name);
        assert_ne!(successor, elected, "{name}");

        let others: Vec<&str> = NODES
            .iter()
            .copied()
            .filter(|n| *n != elected.as_str())
            .collect();
        let live = Liveness {
            alive: Some(set(&others)),
            settled: true,
        };
        let mine = desired_owners(&inputs, &others, &name, &live);
        assert_eq!(mine, vec![successor], "{name} after {elected} died");
    }
}

#[test]
fn an_unsettled_view_holds_layer2_back_but_not_bgp() {
    let yaml = nodes_yaml()
        + L2_POOL
        + BGP_POOL
        + &l2_services(1)
        + &service("routed", 10, Some("bgp-pool"), false)
        + &endpoints("routed", 10, &NODES);
    let objects = objects(&yaml);
    let inputs = inputs(&objects);
    let settled = all_alive();
    let unsettled = Liveness {
        alive: settled.alive.clone(),
        settled: false,
    };
    let elected = desired_owners(&inputs, &NODES, "default/web-0", &settled);
    assert_eq!(elected.len(), 1, "{elected:?}");
    for n in NODES {
        let before = desired(&inputs, n, &settled);
        let after = desired(&inputs, n, &unsettled);
        assert!(after.node.l2.is_empty(), "{n}: {:?}", after.node.l2);
        assert!(
            after.announcements(&inputs).iter().all(|a| a.l2.is_none()),
            "{n}"
        );
        // Held only where there was something to hold.
        assert_eq!(after.l2_held, elected[0] == n, "{n}");
        assert_eq!(after.l2_held, !before.node.l2.is_empty(), "{n}");
        // BGP is not affected: every node advertises the routed service either way.
        assert!(!before.node.bgp.is_empty(), "{n}");
        assert_eq!(after.node.bgp, before.node.bgp, "{n}");
        assert!(has_bgp(&before, &inputs, "default/routed"), "{n}");
        let bgp_of = |d: &Desired| -> Vec<_> {
            d.announcements(&inputs)
                .into_iter()
                .filter(|a| a.bgp.is_some())
                .collect()
        };
        assert_eq!(bgp_of(&after), bgp_of(&before), "{n}");
        assert_eq!(after.peers, before.peers, "{n}");
        assert_eq!(after.peers.len(), 1, "{n}");
    }
}

#[test]
fn without_membership_every_node_of_the_file_counts_as_alive() {
    let yaml = nodes_yaml() + L2_POOL + &l2_services(6);
    let objects = objects(&yaml);
    let inputs = inputs(&objects);
    let planned = plan(&objects, &PlanOptions::default()).unwrap();
    let off = Liveness {
        alive: None,
        settled: true,
    };
    for (n, row) in NODES.iter().zip(&planned.nodes) {
        let d = desired(&inputs, n, &off);
        assert_eq!(*d.node, *row, "{n}");
        assert_eq!(d, desired(&inputs, n, &all_alive()), "{n}");
        // Had the others counted as dead, this node would own every service.
        let lonely = desired(
            &inputs,
            n,
            &Liveness {
                alive: Some(BTreeSet::new()),
                settled: true,
            },
        );
        assert_eq!(lonely.node.l2.len(), 6, "{n}");
    }
    for s in &planned.services {
        let name = format!("default/{}", s.name);
        assert_eq!(
            desired_owners(&inputs, &NODES, &name, &off).len(),
            1,
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// BGP sessions and advertisements
// ---------------------------------------------------------------------------------------------

const PEERS: &str = "
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: only-b, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: 198.51.100.1
  peerPort: 1179
  holdTime: 30s
  routerID: 192.0.2.250
  sourceAddress: 192.0.2.2
  enableGracefulRestart: true
  ebgpMultiHop: true
  nodeSelectors:
    - matchLabels: {kubernetes.io/hostname: node-b}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: everywhere-dual, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64512
  peerAddress: 198.51.100.2
  dualStackAddressFamily: true
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: everywhere-v6, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64501
  peerAddress: 2001:db8::1
  holdTime: 0s
";

#[test]
fn bgp_peers_become_sessions_on_the_selected_nodes_field_by_field() {
    let objects = objects(&(nodes_yaml() + PEERS));
    let inputs = inputs(&objects);
    let names = |node: &str| -> Vec<String> {
        session_peers(&inputs.config, &inputs.node(node))
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    assert_eq!(names("node-a"), ["everywhere-dual", "everywhere-v6"]);
    assert_eq!(
        names("node-b"),
        ["everywhere-dual", "everywhere-v6", "only-b"]
    );
    assert_eq!(names("node-c"), ["everywhere-dual", "everywhere-v6"]);
    // A node the file does not know has no labels: only the unrestricted peers.
    assert_eq!(names("node-z"), ["everywhere-dual", "everywhere-v6"]);

    let on_b = session_peers(&inputs.config, &inputs.node("node-b"));
    // `desired` hands the same sessions to the runtime.
    assert_eq!(desired(&inputs, "node-b", &all_alive()).peers, on_b);

    let only_b = on_b.iter().find(|p| p.name == "only-b").unwrap();
    assert_eq!(only_b.address, "198.51.100.1".parse::<IpAddr>().unwrap());
    assert_eq!((only_b.local_asn, only_b.peer_asn), (64512, 64500));
    assert_eq!(only_b.port, 1179);
    assert_eq!(only_b.hold_time, 30);
    assert_eq!(only_b.password, None);
    assert_eq!(only_b.graceful_restart, Some(120));
    assert_eq!(only_b.graceful_restart, Some(GRACEFUL_RESTART_TIME));
    assert_eq!(only_b.ebgp_multihop, Some(255));
    assert_eq!(only_b.router_id, Some(Ipv4Addr::new(192, 0, 2, 250)));
    assert_eq!(only_b.source, Some("192.0.2.2".parse().unwrap()));
    assert_eq!(only_b.families, vec![Family::IPV4_UNICAST]);

    let dual = on_b.iter().find(|p| p.name == "everywhere-dual").unwrap();
    assert_eq!(dual.port, 179);
    assert_eq!(dual.hold_time, 90);
    assert_eq!(dual.password, None);
    assert_eq!(dual.graceful_restart, None);
    assert_eq!(dual.ebgp_multihop, None);
    assert_eq!(dual.router_id, None);
    assert_eq!(dual.source, None);
    assert_eq!(
        dual.families,
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );

    let v6 = on_b.iter().find(|p| p.name == "everywhere-v6").unwrap();
    assert_eq!(v6.hold_time, 0);
    assert_eq!(v6.families, vec![Family::IPV6_UNICAST]);
    // connectTime unset: the speaker's default connect timeout stays.
    assert_eq!(v6.connect_timeout, Duration::from_secs(10));
}

/// Two peers with BFD profiles (one eBGP multihop from a source address, one only on
/// node-b) and one without.
const BFD_PEERS: &str = "
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
spec: {receiveInterval: 50, transmitInterval: 100, detectMultiplier: 4, passiveMode: true}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: far, namespace: metallb-system}
spec: {minimumTtl: 250}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, bfdProfile: fast}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: remote, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64501
  peerAddress: 203.0.113.9
  sourceAddress: 192.0.2.2
  ebgpMultiHop: true
  bfdProfile: far
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node-b}}]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: plain, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64502, peerAddress: 198.51.100.3}
";

#[test]
fn bgp_peers_with_a_bfd_profile_get_bfd_sessions_with_its_timers() {
    let objects = objects(&(nodes_yaml() + BFD_PEERS));
    let inputs = inputs(&objects);
    let on_a = bfd_sessions(&inputs.config, &inputs.node("node-a"));
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    let tor = on_a[0];
    assert_eq!(tor.key.peer, ip("198.51.100.1"));
    assert_eq!((tor.key.local, tor.key.multihop), (None, false));
    assert_eq!(tor.config.desired_min_tx, Duration::from_millis(100));
    assert_eq!(tor.config.required_min_rx, Duration::from_millis(50));
    assert_eq!((tor.config.detect_mult, tor.config.passive), (4, true));
    let on_b = bfd_sessions(&inputs.config, &inputs.node("node-b"));
    let remote = on_b
        .iter()
        .find(|s| s.key.peer == ip("203.0.113.9"))
        .unwrap();
    assert_eq!(remote.key.local, Some(ip("192.0.2.2")));
    assert!(remote.key.multihop);
    assert_eq!(remote.minimum_ttl, 250);
    // MetalLB's defaults: 300 ms both ways, multiplier 3, active.
    assert_eq!(remote.config, lb_bfd::SessionConfig::default());
    // `desired` hands the same sessions to the runtime.
    assert_eq!(desired(&inputs, "node-b", &all_alive()).bfd, on_b);
}

#[test]
fn a_local_policy_bgp_service_is_advertised_only_from_its_endpoint_node() {
    let yaml = nodes_yaml()
        + BGP_POOL
        + &service("api", 0, Some("bgp-pool"), true)
        + &endpoints("api", 0, &["node-c"]);
    let objects = objects(&yaml);
    let inputs = inputs(&objects);
    let planned = plan(&objects, &PlanOptions::default()).unwrap();
    assert_eq!(planned.services[0].ips.len(), 1, "{:?}", planned.services);
    let ip = planned.services[0].ips[0];
    for n in NODES {
        let d = desired(&inputs, n, &all_alive());
        let bgp = has_bgp(&d, &inputs, "default/api");
        assert_eq!(bgp, n == "node-c", "{n}: {:?}", d.announcements(&inputs));
        if n == "node-c" {
            let all = d.announcements(&inputs);
            let a = &all[0];
            assert_eq!(a.ips, vec![ip]);
            let ads = &a.bgp.as_ref().unwrap().advertisements;
            assert_eq!(ads.len(), 1);
            assert_eq!(ads[0].prefix, ipnet::IpNet::from(ip));
            assert_eq!(ads[0].peers, ["router"]);
        } else {
            assert!(
                d.node
                    .not_announced
                    .iter()
                    .any(|x| x.service.to_string() == "default/api"
                        && x.protocol == AnnounceProtocol::Bgp
                        && x.reason.as_str() == "noLocalEndpoints"),
                "{n}: {:?}",
                d.node.not_announced
            );
        }
        // Every node keeps its session either way.
        assert_eq!(d.peers.len(), 1, "{n}");
    }
}

// ---------------------------------------------------------------------------------------------
// The API-server source
// ---------------------------------------------------------------------------------------------

/// Writes each Service's planned IPs into its `status.loadBalancer.ingress`, as the
/// controller would.
fn record_planned_ips(objects: &mut Objects) {
    let planned = plan(objects, &PlanOptions::default()).unwrap();
    for svc in &mut objects.services {
        let name = svc.metadata.name.clone().unwrap();
        let Some(p) = planned.services.iter().find(|p| p.name == name) else {
            continue;
        };
        let ingress: Vec<serde_json::Value> = p
            .ips
            .iter()
            .map(|ip| serde_json::json!({"ip": ip.to_string()}))
            .collect();
        svc.status = Some(
            serde_json::from_value(serde_json::json!({"loadBalancer": {"ingress": ingress}}))
                .unwrap(),
        );
    }
}

fn cluster_inputs(objects: &Objects, options: &PlanOptions) -> Inputs {
    inputs_from_cluster(
        objects,
        objects.services.iter(),
        objects.endpoint_slices.iter(),
        options,
    )
    .unwrap()
}

#[test]
fn the_cluster_source_decides_what_the_file_source_decides_once_ips_are_recorded() {
    let yaml = nodes_yaml()
        + L2_POOL
        + BGP_POOL
        + &l2_services(6)
        + &service("api", 10, Some("bgp-pool"), true)
        + &endpoints("api", 10, &["node-c"]);
    let mut objects = objects(&yaml);
    record_planned_ips(&mut objects);
    let from_file = inputs(&objects);
    // The stores hand Services over in any order; the decision must not care.
    let mut shuffled = objects.clone();
    shuffled.services.reverse();
    shuffled.endpoint_slices.reverse();
    let from_cluster = cluster_inputs(&shuffled, &PlanOptions::default());
    assert_eq!(from_cluster.services.len(), 7);
    for n in NODES {
        for live in [
            all_alive(),
            Liveness {
                alive: Some(set(&[n])),
                settled: true,
            },
        ] {
            let a = desired(&from_file, n, &live);
            let b = desired(&from_cluster, n, &live);
            let sorted = |d: &Desired| {
                let mut l2: Vec<String> = d.node.l2.iter().map(|e| format!("{e:?}")).collect();
                let mut bgp: Vec<String> = d.node.bgp.iter().map(|e| format!("{e:?}")).collect();
                l2.sort();
                bgp.sort();
                (l2, bgp, d.peers.clone())
            };
            assert_eq!(sorted(&a), sorted(&b), "{n}");
        }
    }
}

#[test]
fn the_cluster_source_announces_only_recorded_ips_of_its_class() {
    let yaml = nodes_yaml()
        + L2_POOL
        + &l2_services(2)
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: other-class, namespace: default}\n\
           spec: {type: LoadBalancer, loadBalancerClass: example.com/other}\n\
           status: {loadBalancer: {ingress: [{ip: 192.0.2.111}]}}\n"
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: internal, namespace: default}\n\
           spec: {type: ClusterIP}\n\
           status: {loadBalancer: {ingress: [{ip: 192.0.2.112}]}}\n";
    let mut objects = objects(&yaml);
    // Only web-0 has been given an IP by the controller so far.
    for svc in &mut objects.services {
        if svc.metadata.name.as_deref() == Some("web-0") {
            svc.status = Some(
                serde_json::from_value(
                    serde_json::json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.105"}]}}),
                )
                .unwrap(),
            );
        }
    }
    let cluster = cluster_inputs(&objects, &PlanOptions::default());
    let names: Vec<String> = cluster
        .services
        .iter()
        .map(|s| s.view.key.to_string())
        .collect();
    assert_eq!(names, ["default/web-0"]);
    assert_eq!(cluster.services[0].view.ingress_ips, [ip("192.0.2.105")]);
    assert_eq!(cluster.services[0].endpoints.len(), 3);
    // The file source, by contrast, allocates for web-1 as the controller would.
    assert_eq!(inputs(&objects).services.len(), 2);
    // With the class flag, only the class's Service is announced.
    let other = cluster_inputs(
        &objects,
        &PlanOptions {
            lb_class: Some("example.com/other".into()),
            ..PlanOptions::default()
        },
    );
    let names: Vec<String> = other
        .services
        .iter()
        .map(|s| s.view.key.to_string())
        .collect();
    assert_eq!(names, ["default/other-class"]);
    // An invalid configuration is an error naming the object, not an empty input.
    let mut broken = objects.clone();
    broken.pools[0].spec.addresses = vec!["not-an-address".into()];
    let errors = inputs_from_cluster(
        &broken,
        broken.services.iter(),
        broken.endpoint_slices.iter(),
        &PlanOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(errors.contains("l2-pool"), "{errors}");
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Node addresses
// ---------------------------------------------------------------------------------------------

/// Addresses listed External first, an IPv6 InternalIP before the IPv4 one, a duplicate and
/// a host name.
const ODD_NODE: &str = "
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
status:
  addresses:
    - {type: ExternalIP, address: 203.0.113.7}
    - {type: Hostname, address: node-a}
    - {type: InternalIP, address: '2001:db8::7'}
    - {type: ExternalIP, address: '2001:db8:1::7'}
    - {type: InternalIP, address: 192.0.2.7}
    - {type: InternalIP, address: 192.0.2.8}
    - {type: ExternalIP, address: 192.0.2.7}
---
apiVersion: v1
kind: Node
metadata: {name: node-v6}
status:
  addresses:
    - {type: InternalIP, address: '2001:db8::9'}
";

#[test]
fn node_addresses_put_internal_ips_first_and_the_router_id_is_the_first_internal_ipv4() {
    let objects = objects(ODD_NODE);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        node_addresses(&objects.nodes[0]),
        vec![
            ip("2001:db8::7"),
            ip("192.0.2.7"),
            ip("192.0.2.8"),
            ip("203.0.113.7"),
            ip("2001:db8:1::7"),
        ]
    );
    let inputs = inputs(&objects);
    assert_eq!(
        inputs.addresses.get("node-a"),
        Some(&node_addresses(&objects.nodes[0]))
    );
    assert_eq!(
        default_router_id(&inputs, "node-a"),
        Some(Ipv4Addr::new(192, 0, 2, 7))
    );
    assert_eq!(default_router_id(&inputs, "node-v6"), None);
    assert_eq!(default_router_id(&inputs, "node-z"), None);

    let three = inputs_of(&nodes_yaml());
    for (i, n) in NODES.iter().enumerate() {
        let last = u8::try_from(i + 1).unwrap();
        assert_eq!(
            default_router_id(&three, n),
            Some(Ipv4Addr::new(192, 0, 2, last)),
            "{n}"
        );
        assert_eq!(
            three.addresses[*n],
            vec![
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, last)),
            ]
        );
    }
}

fn inputs_of(yaml: &str) -> Inputs {
    inputs(&objects(yaml))
}

/// Regression: an inline `spec.password` (also what the legacy converter writes) reaches the
/// session; it used to be dropped when no `passwordSecret` was set, so MD5 was silently off.
#[test]
fn an_inline_bgp_password_reaches_the_session() {
    let yaml = format!(
        "{}---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router, namespace: metallb-system}}
spec: {{myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, password: s3cret}}
",
        nodes_yaml()
    );
    let inputs = inputs(&objects(&yaml));
    assert_eq!(inputs.config.peers[0].password.as_deref(), Some("s3cret"));
    let me = inputs.node(NODES[0]);
    let peers = session_peers(&inputs.config, &me);
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].password.as_deref(), Some("s3cret"));
}

/// A legacy MetalLB ConfigMap (pre-v0.13) with one layer-2 pool.
const LEGACY: &str = "
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data:
  config: |
    address-pools:
    - name: legacy
      protocol: layer2
      addresses:
      - 192.0.2.240-192.0.2.250
";

#[test]
fn the_file_source_reads_a_legacy_config_map_as_plan_does() {
    let text = nodes_yaml() + LEGACY + &l2_services(2);
    // What `plan -f` prints for the same file.
    let objects = lb_metallb::input::load([("legacy.yaml", text.as_str())]).unwrap();
    let planned = plan(&objects, &PlanOptions::default()).unwrap();
    let loaded = Inputs::load([("legacy.yaml", text.as_str())], &PlanOptions::default()).unwrap();
    assert_eq!(loaded.services.len(), 2);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("ConfigMap/config")),
        "{:?}",
        loaded.warnings
    );
    for s in ["default/web-0", "default/web-1"] {
        let owner = plan_owner(&planned.nodes, s);
        assert_eq!(desired_owners(&loaded, &NODES, s, &all_alive()), [owner]);
    }
    let ip = loaded.services[0].view.ingress_ips[0];
    assert!(ip.to_string().starts_with("192.0.2.24"), "{ip}");
}

#[test]
fn a_legacy_config_map_that_cannot_be_converted_is_an_error_naming_it() {
    // A hold time under 3 s cannot be converted.
    let bad = LEGACY.replace(
        "    address-pools:\n",
        "    peers:\n    - {my-asn: 64512, peer-asn: 64500, peer-address: 198.51.100.1, hold-time: 2s}\n    address-pools:\n",
    );
    let text = nodes_yaml() + &bad;
    let e = Inputs::load([("bad.yaml", text.as_str())], &PlanOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            lb_metallb::speaker::inputs::InputsError::Load(lb_metallb::input::LoadError::Legacy(_))
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("metallb-system/config"), "{e}");
}
