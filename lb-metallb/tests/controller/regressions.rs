//! Bugs found earlier, each kept as a test of the behaviour that fixed it.

use super::*;

fn reconcile_all(state: &mut ControllerState, services: &mut [Service], keys: &[&str]) {
    let mut queue: Vec<ServiceKey> = keys.iter().map(|k| key(k)).collect();
    let mut i = 0;
    while let Some(k) = queue.get(i).cloned() {
        i += 1;
        assert!(i < 100, "retries do not end");
        let svc = services
            .iter_mut()
            .find(|s| lb_metallb::service::key_of(s) == k);
        let u = state.reconcile(&k, svc.as_deref());
        if let Some(svc) = svc {
            apply_writes(svc, &u);
        }
        queue.extend(u.retry.iter().cloned());
    }
}

/// A request the Service cannot have (here an IPv6 `loadBalancerIPs` on an IPv4 Service):
/// `Allocator::ensure` fails before it looks at the allocation, which stays held, but
/// `converge` (no `kept`, no `cleared`) reports no IPs, so the status and the annotation are
/// removed. The IP is then held but recorded nowhere: reserved while the controller runs,
/// handed to another Service after a restart. Either the allocation is kept and written (as
/// for other failed changes, deliberate difference 3) or it is released with the status;
/// status and allocator must agree.
#[test]
fn an_invalid_request_keeps_status_and_allocation_in_step() {
    let mut state = ControllerState::new(settings(None));
    affected_by(&mut state, DUAL_POOLS);
    let mut services = vec![lb_service("default", "web", &[], &[])];
    restore_and_write(&mut state, &mut services);
    assert_eq!(
        recorded(&services[0]).0,
        ["192.0.2.0".parse::<IpAddr>().unwrap()]
    );

    let mut v = serde_json::to_value(&services[0]).unwrap();
    v["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] = json!("2001:db8:a::5");
    services[0] = serde_json::from_value(v).unwrap();
    let u = state.reconcile(&key("default/web"), Some(&services[0]));
    apply_writes(&mut services[0], &u);
    assert_eq!(u.error, Some(ReconcileError::AllocationFailed), "{u:?}");
    let held = state
        .allocator()
        .allocation(&key("default/web"))
        .map(|a| (a.ips.clone(), a.pool.clone()));
    let (ips, pool) = recorded(&services[0]);
    // Actual: status [] and no annotation, while the allocator holds 192.0.2.0 from "a".
    assert_eq!(
        (ips, pool),
        held.map_or((Vec::new(), None), |(ips, pool)| (ips, Some(pool))),
        "{u:?}"
    );
}

/// A PreferDualStack Service that got one family because the other was exhausted is not
/// waiting (it has an IP), so when an address of its missing family is freed it is not
/// listed in `retry`; it gets the family only at its next change or a restart. MetalLB
/// reprocesses every Service when one is deleted (`SyncStateReprocessAll`), so it completes
/// the Service at once; a restart here does, which makes a restart write.
#[test]
fn a_prefer_dual_stack_service_gets_its_missing_family_when_one_frees() {
    let mut state = ControllerState::new(settings(None));
    affected_by(
        &mut state,
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: both, namespace: metallb-system}
spec: {addresses: [192.0.2.0/31, '2001:db8:a::/128']}
",
    );
    let mut services = objects_of(
        r#"
apiVersion: v1
kind: Service
metadata: {name: a-v6, namespace: default}
spec: {type: LoadBalancer, clusterIP: "2001:db8:c1::1", clusterIPs: ["2001:db8:c1::1"], ipFamilies: [IPv6], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: b-prefer, namespace: default}
spec: {type: LoadBalancer, clusterIP: 203.0.113.101, clusterIPs: [203.0.113.101, "2001:db8:c1::2"], ipFamilies: [IPv4, IPv6], ipFamilyPolicy: PreferDualStack, ports: [{port: 80, protocol: TCP}]}
"#,
    )
    .services;
    restore_and_write(&mut state, &mut services);
    assert_eq!(held(&state, "default/b-prefer").unwrap().1, ["192.0.2.0"]);
    // The IPv6 holder goes away.
    services.retain(|s| lb_metallb::service::key_of(s) != key("default/a-v6"));
    reconcile_all(&mut state, &mut services, &["default/a-v6"]);
    assert_eq!(
        held(&state, "default/b-prefer").unwrap().1,
        ["192.0.2.0", "2001:db8:a::"]
    );
}

/// A holder gaining the sharing key of a waiting Service (different ports) makes its IP
/// shareable, but its IPs do not change, so nothing is listed in `retry` and the waiting
/// Service stays waiting until something else happens. MetalLB reprocesses every Service
/// when an allocation's sharing key changes (`prevAllocKey != newAllocKey`).
#[test]
fn a_sharing_key_change_retries_waiting_services() {
    let mut state = ControllerState::new(settings(None));
    affected_by(
        &mut state,
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: one, namespace: metallb-system}
spec: {addresses: [192.0.2.10/32]}
",
    );
    let mut services = vec![
        lb_service("default", "holder", &[], &[]),
        lb_service(
            "default",
            "waiting",
            &[("metallb.io/allow-shared-ip", "k")],
            &[],
        ),
    ];
    let mut v = serde_json::to_value(&services[1]).unwrap();
    v["spec"]["ports"][0]["port"] = json!(443);
    services[1] = serde_json::from_value(v).unwrap();
    restore_and_write(&mut state, &mut services);
    assert_eq!(keys_text(state.pending()), ["default/waiting"]);
    // The holder now allows sharing with key k.
    let mut v = serde_json::to_value(&services[0]).unwrap();
    v["metadata"]["annotations"]["metallb.io/allow-shared-ip"] = json!("k");
    services[0] = serde_json::from_value(v).unwrap();
    reconcile_all(&mut state, &mut services, &["default/holder"]);
    assert_eq!(
        held(&state, "default/waiting").map(|h| h.1),
        Some(vec!["192.0.2.10".into()])
    );
    assert_eq!(state.pending().count(), 0);
}

/// In `restore`, Services converge in key order. A Service whose recorded IP was taken back
/// but whose annotation asks for another pool moves after Services sorting before it were
/// tried; an earlier Service that failed for want of the IP now freed stays waiting: no
/// update lists it in `retry`, and only a second restart gives it the IP.
#[test]
fn restore_retries_waiting_services_after_a_move_frees_an_ip() {
    let mut state = ControllerState::new(settings(None));
    affected_by(
        &mut state,
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p1, namespace: metallb-system}
spec: {addresses: [192.0.2.0/32]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p2, namespace: metallb-system}
spec: {addresses: [198.51.100.0/32]}
",
    );
    let mut services = vec![
        lb_service(
            "default",
            "a-wants-p1",
            &[("metallb.io/address-pool", "p1")],
            &[],
        ),
        lb_service(
            "default",
            "b-moves-to-p2",
            &[("metallb.io/address-pool", "p2"), (POOL_ANNOTATION, "p1")],
            &["192.0.2.0"],
        ),
    ];
    let updates = restore_and_write(&mut state, &mut services);
    assert_eq!(
        held(&state, "default/b-moves-to-p2").unwrap().1,
        ["198.51.100.0"]
    );
    // The runtime reconciles what the restore's updates list in `retry`.
    let retry: Vec<String> = updates.iter().flat_map(|u| keys_text(&u.retry)).collect();
    let retry: Vec<&str> = retry.iter().map(String::as_str).collect();
    reconcile_all(&mut state, &mut services, &retry);
    // Actual: default/a-wants-p1 waits while 192.0.2.0 is free.
    assert_eq!(
        held(&state, "default/a-wants-p1").map(|h| h.1),
        Some(vec!["192.0.2.0".into()])
    );
}

/// An unreadable Service whose recorded IP cannot be taken back (in no pool any more, or
/// already taken back by another unreadable Service recording the same IP) keeps that stale
/// status through `restore`, while `reconcile` clears it (ClearAssignment), as MetalLB does
/// (`convergeBalancer` clears the status when `Assign` fails, before it reads the requested
/// IPs). The restore should do what the first reconcile would do.
#[test]
fn restore_clears_an_unreadable_service_whose_recorded_ip_is_not_allowed() {
    let mut state = ControllerState::new(settings(None));
    affected_by(&mut state, POOL_A);
    let both_forms = |name: &str, ip: &str| {
        let mut s = lb_service(
            "edge",
            name,
            &[("metallb.io/loadBalancerIPs", ip), (POOL_ANNOTATION, "a")],
            &[ip],
        );
        s.spec.as_mut().unwrap().load_balancer_ip = Some(ip.into());
        s
    };
    // One records an IP in no pool, two record the same IP.
    let mut services = vec![
        both_forms("stale", "203.0.113.7"),
        both_forms("first", "192.0.2.5"),
        both_forms("second", "192.0.2.5"),
    ];
    let restored = restore_and_write(&mut state, &mut services);
    // What a reconcile right after the restore would still change.
    let mut later = Vec::new();
    for svc in &services {
        let k = lb_metallb::service::key_of(svc);
        let u = state.reconcile(&k, Some(svc));
        if u.writes() {
            later.push(u);
        }
    }
    assert!(
        later.is_empty(),
        "restore wrote {restored:?}\nthen reconcile writes {later:?}"
    );
    let recorders = services
        .iter()
        .filter(|s| recorded(s).0.contains(&"192.0.2.5".parse().unwrap()))
        .count();
    assert_eq!(recorders, 1);
}

/// A pool whose `serviceAllocation` stops admitting its holder: `set_pools` drops the holder's
/// allocation at once (deliberate difference 5), but the holder's status still records the
/// IP until it is reconciled. Reconciled in the order `apply_config` names them (key order,
/// as the runtime does), a waiting Service sorting before the holder is handed that IP while
/// the holder still records it: for the length of one API round trip (longer if the holder's
/// write fails) two Services announce one IP. MetalLB keeps the allocation until the holder's
/// own sync clears it, so the waiting one gets the IP only afterwards. Fixed: `apply_config`
/// names the Services that lost IPs first.
#[test]
fn service_allocation_change_never_writes_an_ip_another_service_records() {
    let config = |ns: &str| {
        format!(
            "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: reserved, namespace: metallb-system}}
spec:
  addresses: [192.0.2.10/32]
  serviceAllocation: {{namespaces: [{ns}]}}
"
        )
    };
    let mut state = ControllerState::new(settings(None));
    affected_by(&mut state, &config("zulu"));
    let mut services = vec![
        lb_service("alpha", "waiting", &[], &[]),
        lb_service("zulu", "holder", &[], &[]),
    ];
    restore_and_write(&mut state, &mut services);
    assert_eq!(held(&state, "zulu/holder").unwrap().1, ["192.0.2.10"]);
    assert_eq!(keys_text(state.pending()), ["alpha/waiting"]);

    let affected = match state.apply_config(&objects_of(&config("alpha"))) {
        ConfigOutcome::Applied { affected, .. } => affected,
        ConfigOutcome::Rejected(e) => panic!("{e}"),
    };
    // The holder that lost the IP comes first, so its status is cleared before the IP is
    // written to anyone else.
    assert_eq!(keys_text(&affected), ["zulu/holder", "alpha/waiting"]);
    // The runtime's loop: reconcile what is named, in order, then what `retry` lists.
    let mut queue: Vec<ServiceKey> = affected;
    let mut i = 0;
    while let Some(k) = queue.get(i).cloned() {
        i += 1;
        let idx = services
            .iter()
            .position(|s| lb_metallb::service::key_of(s) == k)
            .unwrap();
        let u = state.reconcile(&k, Some(&services[idx]));
        apply_writes(&mut services[idx], &u);
        let next: Vec<ServiceKey> = u
            .retry
            .iter()
            .filter(|r| !queue[i..].contains(r))
            .cloned()
            .collect();
        queue.extend(next);
        let recorders: Vec<String> = services
            .iter()
            .filter(|s| recorded(s).0.contains(&"192.0.2.10".parse().unwrap()))
            .map(|s| lb_metallb::service::key_of(s).to_string())
            .collect();
        assert!(
            recorders.len() <= 1,
            "after reconciling {k}, 192.0.2.10 is recorded by {recorders:?}"
        );
    }
    assert_eq!(held(&state, "alpha/waiting").unwrap().1, ["192.0.2.10"]);
    assert_eq!(held(&state, "zulu/holder"), None);
    assert_eq!(recorded(&services[1]), (Vec::new(), None));
}
