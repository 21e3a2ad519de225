//! Restart safety, by property: a restore of random Services leaves no IP held twice, every
//! status in its annotated pool, and a second restore writes nothing.

use super::*;
use ipnet::IpNet;
use proptest::prelude::*;

const POOLS: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p1, namespace: metallb-system}
spec: {addresses: [192.0.2.0/30, '2001:db8:1::/126']}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p2, namespace: metallb-system}
spec: {addresses: [198.51.100.0/30, '2001:db8:2::/126']}
";

fn ranges(pool: &str) -> Vec<IpNet> {
    let list: &[&str] = match pool {
        "p1" => &["192.0.2.0/30", "2001:db8:1::/126"],
        "p2" => &["198.51.100.0/30", "2001:db8:2::/126"],
        _ => &[],
    };
    list.iter().map(|n| n.parse().unwrap()).collect()
}

/// Addresses a status may record: every address of both pools (network and broadcast
/// addresses included: they are allocatable), and two of no pool.
pub(super) const CANDIDATES: [&str; 18] = [
    "192.0.2.0",
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.3",
    "2001:db8:1::",
    "2001:db8:1::1",
    "2001:db8:1::2",
    "2001:db8:1::3",
    "198.51.100.0",
    "198.51.100.1",
    "198.51.100.2",
    "198.51.100.3",
    "2001:db8:2::",
    "2001:db8:2::1",
    "2001:db8:2::2",
    "2001:db8:2::3",
    "203.0.113.1",
    "2001:db8:ff::1",
];

fn candidates() -> Vec<IpAddr> {
    CANDIDATES.iter().map(|ip| ip.parse().unwrap()).collect()
}

#[derive(Debug, Clone)]
struct Spec {
    /// 0: IPv4, 1: IPv6, 2: PreferDualStack, 3: RequireDualStack.
    families: u8,
    v6_first: bool,
    pool: Option<&'static str>,
    shared: bool,
    port: i32,
    recorded: Vec<usize>,
    annotation: Option<&'static str>,
    /// Both requested-IP forms: the Service cannot be read.
    unreadable: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..4,
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["p1", "p2"])),
        any::<bool>(),
        prop::sample::select(vec![80, 443]),
        prop::collection::vec(0..CANDIDATES.len(), 0..=2),
        prop::option::of(prop::sample::select(vec!["p1", "p2", "gone"])),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(families, v6_first, pool, shared, port, recorded, annotation, unreadable)| Spec {
                families,
                v6_first,
                pool,
                shared,
                port,
                recorded,
                annotation,
                unreadable,
            },
        )
}

fn build(i: usize, s: &Spec, candidates: &[IpAddr]) -> Service {
    let v4 = format!("203.0.113.{i}");
    let v6 = format!("2001:db8:c1::1:{i}");
    let (ips, families, policy) = match s.families {
        0 => (vec![v4], vec!["IPv4"], "SingleStack"),
        1 => (vec![v6], vec!["IPv6"], "SingleStack"),
        n => {
            let policy = if n == 2 {
                "PreferDualStack"
            } else {
                "RequireDualStack"
            };
            if s.v6_first {
                (vec![v6, v4], vec!["IPv6", "IPv4"], policy)
            } else {
                (vec![v4, v6], vec!["IPv4", "IPv6"], policy)
            }
        }
    };
    let mut annotations = serde_json::Map::new();
    if let Some(p) = s.pool {
        annotations.insert("metallb.io/address-pool".into(), json!(p));
    }
    if s.shared {
        annotations.insert("metallb.io/allow-shared-ip".into(), json!("k"));
    }
    if let Some(p) = s.annotation {
        annotations.insert(POOL_ANNOTATION.into(), json!(p));
    }
    let ingress: Vec<Value> = s
        .recorded
        .iter()
        .map(|n| json!({ "ip": candidates[*n].to_string() }))
        .collect();
    let mut v = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": format!("s{i}"), "namespace": "prop", "annotations": annotations },
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": ips[0],
            "clusterIPs": ips,
            "ipFamilies": families,
            "ipFamilyPolicy": policy,
            "ports": [{ "port": s.port, "protocol": "TCP" }],
        },
        "status": { "loadBalancer": { "ingress": ingress } },
    });
    if s.unreadable {
        v["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] = json!("192.0.2.1");
        v["spec"]["loadBalancerIP"] = json!("192.0.2.1");
    }
    serde_json::from_value(v).unwrap()
}

fn allocations(state: &ControllerState) -> Vec<(ServiceKey, lb_alloc::Allocation)> {
    state
        .allocator()
        .allocations()
        .map(|(k, a)| (k.clone(), a.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 384,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn restore_is_safe_and_a_fixed_point(specs in prop::collection::vec(spec(), 1..8)) {
        let candidates = candidates();
        let mut services: Vec<Service> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| build(i, s, &candidates))
            .collect();
        let mut state = ControllerState::new(settings(None));
        affected_by(&mut state, POOLS);
        restore_and_write(&mut state, &mut services);

        for (i, (svc, s)) in services.iter().zip(&specs).enumerate() {
            let k = lb_metallb::service::key_of(svc);
            let (ips, pool) = recorded(svc);
            let held = state.allocator().allocation(&k);
            if s.unreadable {
                // It holds what it records when it can; what it cannot hold is cleared.
                prop_assert_eq!(&ips, &held.map(|a| a.ips.clone()).unwrap_or_default(), "{}", k);
                continue;
            }
            // What is written is what the allocator holds.
            prop_assert_eq!(&ips, &held.map(|a| a.ips.clone()).unwrap_or_default(), "{}", k);
            prop_assert_eq!(&pool, &held.map(|a| a.pool.clone()), "{}", k);
            // Every IP lies in the pool the annotation names, which is the requested one.
            if let Some(p) = &pool {
                let nets = ranges(p);
                for ip in &ips {
                    let inside = nets.iter().any(|n| n.contains(ip));
                    prop_assert!(inside, "{}: {} not in {}", k, ip, p);
                }
                // A Service that cannot move to the pool it asks for keeps its IP and
                // waits (deliberate difference 3 of docs/allocation.md).
                let waiting = state.pending().any(|w| *w == k);
                if let Some(want) = s.pool.filter(|_| !waiting) {
                    prop_assert_eq!(p.as_str(), want, "{}", k);
                }
            }
            // The families fit the Service.
            let v4 = ips.iter().filter(|ip| ip.is_ipv4()).count();
            let v6 = ips.len() - v4;
            let fits = match s.families {
                0 => (v4, v6) == (1, 0),
                1 => (v4, v6) == (0, 1),
                2 => v4 <= 1 && v6 <= 1 && !ips.is_empty(),
                _ => (v4, v6) == (1, 1),
            };
            let families = s.families;
            prop_assert!(ips.is_empty() || fits, "{}: {:?} for families {}", k, ips, families);
            // No IP is held by two Services unless they may share it.
            for (j, (other, t)) in services.iter().zip(&specs).enumerate() {
                if j == i || (j < i && !t.unreadable) {
                    continue;
                }
                let other_key = lb_metallb::service::key_of(other);
                if t.unreadable && state.allocator().allocation(&other_key).is_none() {
                    continue;
                }
                let (theirs, _) = recorded(other);
                if ips.iter().any(|ip| theirs.contains(ip)) {
                    prop_assert!(
                        s.shared && t.shared && s.port != t.port,
                        "{} and {} both record {:?} / {:?}", k, other_key, ips, theirs
                    );
                }
            }
        }

        // A restart from what was written writes nothing and holds the same.
        let mut again = ControllerState::new(settings(None));
        affected_by(&mut again, POOLS);
        let updates = again.restore(services.iter());
        for u in &updates {
            prop_assert!(!u.writes(), "second restore writes {:?}", u);
        }
        prop_assert_eq!(allocations(&state), allocations(&again));
    }
}
