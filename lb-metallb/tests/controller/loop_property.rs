//! The runtime's loop, by property: random Service edits, deletions, pool changes and
//! restarts, each followed by the reconciles the runtime would run, keep status, annotation
//! and allocator in step.

use super::*;
use crate::restart_property::CANDIDATES;
use proptest::prelude::*;

/// Pool sets the configuration moves between: as given, p1 shrunk, p2 renamed p3, p2
/// deleted.
fn pools(variant: u8) -> String {
    let pool = |name: &str, v4: &str, v6: &str| {
        format!(
            "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n\
             metadata: {{name: {name}, namespace: metallb-system}}\n\
             spec: {{addresses: [{v4}, '{v6}']}}\n"
        )
    };
    let p1 = pool("p1", "192.0.2.0/30", "2001:db8:1::/126");
    let p1_small = pool("p1", "192.0.2.0/31", "2001:db8:1::/127");
    let p2 = pool("p2", "198.51.100.0/30", "2001:db8:2::/126");
    let p3 = pool("p3", "198.51.100.0/30", "2001:db8:2::/126");
    match variant {
        0 => p1 + &p2,
        1 => p1_small + &p2,
        2 => p1 + &p3,
        _ => p1,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Upsert {
        id: usize,
        families: u8,
        pool: Option<&'static str>,
        shared: bool,
        port: i32,
        requested: Option<usize>,
        load_balancer: bool,
    },
    Delete(usize),
    Config(u8),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            0usize..6,
            0u8..4,
            prop::option::of(prop::sample::select(vec!["p1", "p2", "p3"])),
            any::<bool>(),
            prop::sample::select(vec![80, 443]),
            prop::option::weighted(0.2, 0..CANDIDATES.len()),
            prop::bool::weighted(0.9),
        )
            .prop_map(|(id, families, pool, shared, port, requested, load_balancer)| {
                Op::Upsert { id, families, pool, shared, port, requested, load_balancer }
            }),
        2 => (0usize..6).prop_map(Op::Delete),
        2 => (0u8..4).prop_map(Op::Config),
        1 => Just(Op::Restart),
    ]
}

fn build(op: &Op) -> Value {
    let Op::Upsert {
        id,
        families,
        pool,
        shared,
        port,
        requested,
        load_balancer,
    } = op
    else {
        unreachable!()
    };
    let v4 = format!("203.0.113.{}", 100 + id % 100);
    let v6 = format!("2001:db8:c1::2:{id}");
    let (ips, fams, policy) = match families {
        0 => (vec![v4], vec!["IPv4"], "SingleStack"),
        1 => (vec![v6], vec!["IPv6"], "SingleStack"),
        2 => (vec![v4, v6], vec!["IPv4", "IPv6"], "PreferDualStack"),
        _ => (vec![v6, v4], vec!["IPv6", "IPv4"], "RequireDualStack"),
    };
    let mut annotations = serde_json::Map::new();
    if let Some(p) = pool {
        annotations.insert("metallb.io/address-pool".into(), json!(p));
    }
    if *shared {
        annotations.insert("metallb.io/allow-shared-ip".into(), json!("k"));
    }
    // Any candidate, of the Service's family or not: a request that cannot be met keeps
    // status and allocator in step too.
    if let Some(n) = requested.as_ref() {
        annotations.insert("metallb.io/loadBalancerIPs".into(), json!(CANDIDATES[*n]));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": format!("s{id}"), "namespace": "loop", "annotations": annotations },
        "spec": {
            "type": if *load_balancer { "LoadBalancer" } else { "ClusterIP" },
            "clusterIP": ips[0],
            "clusterIPs": ips,
            "ipFamilies": fams,
            "ipFamilyPolicy": policy,
            "ports": [{ "port": port, "protocol": "TCP" }],
        },
    })
}

/// Runs `op` and then reconciles like the runtime: what the configuration names or the
/// Service touched, then whatever the updates list in `retry` (here even when already
/// reconciled in this batch, so that only the pure layer is under test).
fn step(cluster: &mut Cluster, op: &Op) -> Result<(), TestCaseError> {
    let mut queue: Vec<ServiceKey> = Vec::new();
    match op {
        Op::Upsert { id, .. } => {
            let k = key(&format!("loop/s{id}"));
            let mut new = build(op);
            // The user edits spec and annotations; status and our annotation stay.
            if let Some(old) = cluster.service_value(&k) {
                if let Some(status) = old.get("status") {
                    new["status"] = status.clone();
                }
                if let Some(pool) =
                    old.pointer("/metadata/annotations/metallb.io~1ip-allocated-from-pool")
                {
                    new["metadata"]["annotations"][POOL_ANNOTATION] = pool.clone();
                }
            }
            cluster.apply(new);
            queue.push(k);
        }
        Op::Delete(id) => {
            let k = key(&format!("loop/s{id}"));
            if cluster.service_value(&k).is_some() {
                cluster.delete(&("Service".into(), "loop".into(), format!("s{id}")));
            }
            queue.push(k);
        }
        Op::Config(v) => {
            cluster.objects.retain(|(id, _)| id.0 != "IPAddressPool");
            for doc in objects_of(&pools(*v)).pools {
                cluster.apply(serde_json::to_value(doc).unwrap());
            }
            match cluster.state.apply_config(&cluster.objects()) {
                ConfigOutcome::Applied { affected, .. } => queue.extend(affected),
                ConfigOutcome::Rejected(e) => panic!("{e}"),
            }
        }
        Op::Restart => {
            cluster.state = ControllerState::new(cluster.settings.clone());
            cluster.state.apply_config(&cluster.objects());
            let services = cluster.services();
            for u in cluster.state.restore(services.iter()) {
                cluster.write(&u);
                queue.extend(u.retry.iter().cloned());
            }
        }
    }
    let mut i = 0;
    while let Some(k) = queue.get(i).cloned() {
        i += 1;
        prop_assert!(i < 500, "the retries do not end: {:?}", queue);
        let svc = cluster.service(&k);
        let u = cluster.state.reconcile(&k, svc.as_ref());
        cluster.write(&u);
        queue.extend(u.retry.iter().cloned());
    }
    Ok(())
}

fn check(cluster: &mut Cluster, at: &str) -> Result<(), TestCaseError> {
    let services = cluster.services();
    let config = cluster.state.config().unwrap().pools.clone();
    for (i, svc) in services.iter().enumerate() {
        let k = lb_metallb::service::key_of(svc);
        let (ips, pool) = recorded(svc);
        let held = cluster.state.allocator().allocation(&k);
        prop_assert_eq!(
            &ips,
            &held.map(|a| a.ips.clone()).unwrap_or_default(),
            "{}: {}",
            at,
            k
        );
        prop_assert_eq!(&pool, &held.map(|a| a.pool.clone()), "{}: {}", at, k);
        if let Some(p) = &pool {
            let p = config.get(p);
            prop_assert!(p.is_some(), "{}: {} names a pool not in force", at, k);
            for ip in &ips {
                prop_assert!(
                    p.unwrap().contains(ip),
                    "{}: {}: {} outside its pool",
                    at,
                    k,
                    ip
                );
            }
        }
        for other in services.iter().skip(i + 1) {
            let (theirs, _) = recorded(other);
            if ips.iter().any(|ip| theirs.contains(ip)) {
                let ok = sharing_key(svc).is_some()
                    && sharing_key(svc) == sharing_key(other)
                    && view_ports(svc) != view_ports(other);
                prop_assert!(
                    ok,
                    "{}: {} and {} both record {:?}",
                    at,
                    k,
                    lb_metallb::service::key_of(other),
                    ips
                );
            }
        }
    }
    Ok(())
}

fn view_ports(svc: &Service) -> Vec<lb_core::ServicePort> {
    lb_metallb::service::view(svc).ports
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// After every operation and the reconciles it triggers, every Service records what
    /// the allocator holds, in a pool in force, and no IP is recorded twice unless shared;
    /// at the end, a restart from what was written writes nothing: no Service was left
    /// waiting while an IP it could take was free, and nothing moves on a restart.
    #[test]
    fn the_loop_keeps_status_and_allocator_in_step(ops in prop::collection::vec(op(), 1..24)) {
        let mut cluster = Cluster::new(settings(None));
        for doc in objects_of(&pools(0)).pools {
            cluster.apply(serde_json::to_value(doc).unwrap());
        }
        cluster.state.apply_config(&cluster.objects());
        cluster.state.restore(std::iter::empty());
        for (n, op) in ops.iter().enumerate() {
            step(&mut cluster, op)?;
            check(&mut cluster, &format!("after op {n} {op:?}"))?;
        }
        // Known gaps, excused for now: a PreferDualStack Service missing a family is not
        // retried when one frees
        // (`a_prefer_dual_stack_service_gets_its_missing_family_when_one_frees`),
        // and a waiting Service is not retried when a holder's sharing key changes so that
        // it could share (`a_sharing_key_change_retries_waiting_services`).
        let waiting: BTreeSet<ServiceKey> = cluster.state.pending().cloned().collect();
        let mut again = ControllerState::new(settings(None));
        again.apply_config(&cluster.objects());
        let services = cluster.services();
        let updates = again.restore(services.iter());
        for u in &updates {
            let completes_family = u.pool_annotation.is_none()
                && u.events.len() == 1
                && u.events[0].message.starts_with("Assigned additional IP");
            let was_waiting = waiting.contains(&u.key) && u.error.is_none();
            prop_assert!(
                !u.writes() || completes_family || was_waiting,
                "a restart writes {:?}", u
            );
        }
    }
}
