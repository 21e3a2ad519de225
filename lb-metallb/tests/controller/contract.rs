//! Unit tests of the contract: patch bodies, configuration rejection, affected Services, idempotence, pool status counts, restore.

use super::*;

#[test]
fn status_and_annotation_patch_bodies_are_merge_patches() {
    let ips: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
    assert_eq!(
        status_patch(&ips),
        json!({"status": {"loadBalancer": {"ingress": [
            {"ip": "192.0.2.1"},
            {"ip": "2001:db8::1"},
        ]}}})
    );
    assert_eq!(
        status_patch(&[]),
        json!({"status": {"loadBalancer": {"ingress": null}}})
    );
    assert_eq!(
        pool_annotation_patch(Some("a")),
        json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "a"}}})
    );
    assert_eq!(
        pool_annotation_patch(None),
        json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": null}}})
    );
    // Applied, they remove the fields they clear.
    let mut svc = lb_service("default", "s", &[(POOL_ANNOTATION, "a")], &["192.0.2.1"]);
    let mut u = ServiceUpdate::new(key("default/s"));
    u.status = Some(Vec::new());
    u.pool_annotation = Some(None);
    apply_writes(&mut svc, &u);
    assert_eq!(recorded(&svc), (Vec::new(), None));
}

#[test]
fn invalid_configuration_is_rejected_and_the_previous_one_stays() {
    let mut state = ControllerState::new(settings(None));
    assert!(matches!(
        state.apply_config(&objects_of(POOL_A)),
        ConfigOutcome::Applied { .. }
    ));
    let mut services = vec![lb_service("default", "first", &[], &[])];
    restore_and_write(&mut state, &mut services);
    assert_eq!(
        held(&state, "default/first"),
        Some(("a".into(), vec!["192.0.2.0".into()]))
    );

    // Overlapping pools.
    let overlapping = format!(
        "{POOL_A}---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: b, namespace: metallb-system}}
spec: {{addresses: [192.0.2.4-192.0.2.9]}}
"
    );
    let ConfigOutcome::Rejected(errors) = state.apply_config(&objects_of(&overlapping)) else {
        panic!("overlapping pools accepted");
    };
    assert!(errors.to_string().contains("overlaps"), "{errors}");
    assert_eq!(state.rejected(), Some(&errors));
    assert_eq!(pool_names(&state), ["a"]);
    assert_eq!(
        held(&state, "default/first"),
        Some(("a".into(), vec!["192.0.2.0".into()]))
    );

    // A bad CIDR, while still stale.
    let bad = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: metallb-system}
spec: {addresses: [192.0.2.0/33]}
";
    assert!(matches!(
        state.apply_config(&objects_of(bad)),
        ConfigOutcome::Rejected(_)
    ));
    assert!(state.rejected().is_some());
    assert_eq!(pool_names(&state), ["a"]);

    // The old pools still serve new Services.
    let second = lb_service("default", "second", &[], &[]);
    let u = state.reconcile(&key("default/second"), Some(&second));
    assert_eq!(u.status, Some(vec!["192.0.2.1".parse().unwrap()]));
    assert_eq!(u.pool_annotation, Some(Some("a".into())));
    assert_eq!(u.error, None);
    // Nothing the rejected configurations said leaked in: 192.0.2.9 (pool b) is not allocatable.
    let wants_9 = lb_service(
        "default",
        "nine",
        &[("metallb.io/loadBalancerIPs", "192.0.2.9")],
        &[],
    );
    let u = state.reconcile(&key("default/nine"), Some(&wants_9));
    assert_eq!(u.error, Some(ReconcileError::AllocationFailed));

    // A valid configuration clears the stale state.
    let fixed = format!(
        "{POOL_A}---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: b, namespace: metallb-system}}
spec: {{addresses: [192.0.2.8-192.0.2.9]}}
"
    );
    let ConfigOutcome::Applied { affected, .. } = state.apply_config(&objects_of(&fixed)) else {
        panic!("valid configuration rejected");
    };
    assert_eq!(state.rejected(), None);
    assert_eq!(pool_names(&state), ["a", "b"]);
    // Pool a did not change: only the waiting Service is named.
    assert_eq!(keys_text(&affected), ["default/nine"]);
    let u = state.reconcile(&key("default/nine"), Some(&wants_9));
    assert_eq!(u.status, Some(vec!["192.0.2.9".parse().unwrap()]));
}

#[test]
fn apply_config_names_only_the_affected_services() {
    let mut state = ControllerState::new(settings(None));
    assert_eq!(affected_by(&mut state, TWO_POOLS), Vec::<String>::new());
    let mut services = vec![
        lb_service("ns", "a1", &[("metallb.io/address-pool", "a")], &[]),
        lb_service("ns", "a2", &[("metallb.io/address-pool", "a")], &[]),
        lb_service("ns", "b1", &[("metallb.io/address-pool", "b")], &[]),
        // In no pool: waits.
        lb_service(
            "ns",
            "waiting",
            &[("metallb.io/loadBalancerIPs", "203.0.113.1")],
            &[],
        ),
    ];
    restore_and_write(&mut state, &mut services);
    assert_eq!(keys_text(state.pending()), ["ns/waiting"]);

    // The same configuration again.
    assert_eq!(affected_by(&mut state, TWO_POOLS), Vec::<String>::new());
    // An L2Advertisement changes.
    let l2_changed = TWO_POOLS.replace(
        "metadata: {name: l2, namespace: metallb-system}",
        "metadata: {name: l2, namespace: metallb-system}\n\
         spec: {ipAddressPools: [a], interfaces: [eth1]}",
    );
    assert_eq!(affected_by(&mut state, &l2_changed), Vec::<String>::new());
    // A BGP peer and advertisement are added.
    let with_bgp = format!(
        "{TWO_POOLS}---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: tor, namespace: metallb-system}}
spec: {{myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.254}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: metallb-system}}
"
    );
    assert_eq!(affected_by(&mut state, &with_bgp), Vec::<String>::new());
    // Pool a changes: its holders and the waiting Service, not b's holder.
    let a_changed = TWO_POOLS.replace("[192.0.2.0/30]", "[192.0.2.0/30, 192.0.2.16/30]");
    assert_eq!(
        affected_by(&mut state, &a_changed),
        ["ns/a1", "ns/a2", "ns/waiting"]
    );
    // A pool is added: only the waiting Service.
    let c_added = format!(
        "{a_changed}---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: c, namespace: metallb-system}}
spec: {{addresses: [203.0.113.0/30]}}
"
    );
    assert_eq!(affected_by(&mut state, &c_added), ["ns/waiting"]);
    // Pool b's autoAssign changes: its holder and the waiting Service.
    let b_changed = c_added.replace(
        "spec: {addresses: [198.51.100.0/30]}",
        "spec: {addresses: [198.51.100.0/30], autoAssign: false}",
    );
    assert_eq!(affected_by(&mut state, &b_changed), ["ns/b1", "ns/waiting"]);
    // Nothing was moved by any of this.
    assert_eq!(
        held(&state, "ns/a1"),
        Some(("a".into(), vec!["192.0.2.0".into()]))
    );
    assert_eq!(
        held(&state, "ns/b1"),
        Some(("b".into(), vec!["198.51.100.0".into()]))
    );
}

#[test]
fn nothing_happens_before_a_configuration_and_the_restore() {
    let mut state = ControllerState::new(settings(None));
    let svc = lb_service("default", "early", &[], &[]);
    // No configuration: reconcile and restore do nothing.
    assert!(
        state
            .reconcile(&key("default/early"), Some(&svc))
            .is_empty()
    );
    assert!(state.restore([&svc]).is_empty());
    assert!(!state.is_restored());
    assert!(state.config().is_none());
    // A configuration, but no restore yet: still nothing, and nothing is named.
    assert_eq!(affected_by(&mut state, TWO_POOLS), Vec::<String>::new());
    assert!(
        state
            .reconcile(&key("default/early"), Some(&svc))
            .is_empty()
    );
    assert!(state.reconcile(&key("default/early"), None).is_empty());
    assert!(state.allocator().is_empty());
    assert_eq!(state.pending().count(), 0);
    // A configuration change before the restore names nobody either.
    let changed = TWO_POOLS.replace("[192.0.2.0/30]", "[192.0.2.0/29]");
    assert_eq!(affected_by(&mut state, &changed), Vec::<String>::new());
    // The restore does the work, with the latest pools.
    let updates = state.restore([&svc]);
    assert!(state.is_restored());
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].status, Some(vec!["192.0.2.0".parse().unwrap()]));
    assert_eq!(
        state
            .allocator()
            .pools()
            .get("a")
            .map(|p| p.ranges().count()),
        Some(1)
    );
}

#[test]
fn reconciling_twice_writes_nothing_the_second_time() {
    let mut state = ControllerState::new(settings(None));
    affected_by(&mut state, DUAL_POOLS);
    assert!(state.restore(std::iter::empty()).is_empty());
    let mut services = objects_of(VARIED).services;
    for svc in &mut services {
        let k = lb_metallb::service::key_of(svc);
        let first = state.reconcile(&k, Some(svc));
        apply_writes(svc, &first);
        let second = state.reconcile(&k, Some(svc));
        assert!(!second.writes(), "{k}: second reconcile writes {second:?}");
        assert!(second.retry.is_empty(), "{k}: {second:?}");
        if first.error.is_none() {
            assert!(second.is_empty(), "{k}: {second:?}");
        } else {
            // Failures are reported again (MetalLB emits the Warning on every sync).
            assert_eq!(second.error, first.error, "{k}");
        }
    }
    // And once more over all of them, in another order.
    for svc in services.iter().rev() {
        let k = lb_metallb::service::key_of(svc);
        let again = state.reconcile(&k, Some(svc));
        assert!(!again.writes(), "{k}: {again:?}");
    }
    assert_eq!(
        held(&state, "mix/share-udp").map(|h| h.1),
        held(&state, "mix/share-tcp").map(|h| h.1)
    );
    assert_eq!(keys_text(state.pending()), ["mix/starved"]);
    // A restart from what was written changes nothing either.
    let mut fresh = ControllerState::new(settings(None));
    affected_by(&mut fresh, DUAL_POOLS);
    let updates = fresh.restore(services.iter());
    assert!(updates.iter().all(|u| !u.writes()), "{updates:?}");
    let before: Vec<_> = state
        .allocator()
        .allocations()
        .map(|(k, a)| (k.clone(), a.clone()))
        .collect();
    let after: Vec<_> = fresh
        .allocator()
        .allocations()
        .map(|(k, a)| (k.clone(), a.clone()))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn pool_statuses_count_assigned_and_available_per_family() {
    let mut state = ControllerState::new(settings(None));
    affected_by(
        &mut state,
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: v4, namespace: metallb-system}
spec: {addresses: [192.0.2.0/30], avoidBuggyIPs: false}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: v6, namespace: metallb-system}
spec: {addresses: ['2001:db8:6::/126']}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: wide, namespace: metallb-system}
spec: {addresses: [198.51.100.0/24], avoidBuggyIPs: true, autoAssign: false}
",
    );
    let statuses = state.pool_statuses();
    assert_eq!(statuses.len(), 3);
    assert_eq!(statuses["v4"].available_ipv4, 4);
    assert_eq!(statuses["v6"].available_ipv6, 4);
    assert_eq!(statuses["wide"].available_ipv4, 254);

    let mut services = objects_of(
        r#"
apiVersion: v1
kind: Service
metadata: {name: a, namespace: s}
spec: {type: LoadBalancer, clusterIP: 203.0.113.100, clusterIPs: [203.0.113.100], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: s, annotations: {metallb.io/allow-shared-ip: k}}
spec: {type: LoadBalancer, clusterIP: 203.0.113.101, clusterIPs: [203.0.113.101], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 53, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: c, namespace: s, annotations: {metallb.io/allow-shared-ip: k}}
spec: {type: LoadBalancer, clusterIP: 203.0.113.102, clusterIPs: [203.0.113.102], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: d, namespace: s}
spec: {type: LoadBalancer, clusterIP: "2001:db8:c1::4", clusterIPs: ["2001:db8:c1::4"], ipFamilies: [IPv6], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: e, namespace: s, annotations: {metallb.io/address-pool: wide}}
spec: {type: LoadBalancer, clusterIP: 203.0.113.104, clusterIPs: [203.0.113.104], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
"#,
    )
    .services;
    restore_and_write(&mut state, &mut services);
    assert_eq!(held(&state, "s/b").unwrap().1, ["192.0.2.1"]);
    assert_eq!(held(&state, "s/c").unwrap().1, ["192.0.2.1"]);
    assert_eq!(held(&state, "s/e").unwrap().1, ["198.51.100.1"]);
    let statuses = state.pool_statuses();
    let v4 = &statuses["v4"];
    // a: .0; b and c share .1: two addresses in use.
    assert_eq!((v4.assigned_ipv4, v4.available_ipv4), (2, 2));
    assert_eq!((v4.assigned_ipv6, v4.available_ipv6), (0, 0));
    let v6 = &statuses["v6"];
    assert_eq!((v6.assigned_ipv4, v6.available_ipv4), (0, 0));
    assert_eq!((v6.assigned_ipv6, v6.available_ipv6), (1, 3));
    let wide = &statuses["wide"];
    assert_eq!((wide.assigned_ipv4, wide.available_ipv4), (1, 253));
    // Releasing one sharer keeps the address in use; releasing both frees it.
    state.reconcile(&key("s/b"), None);
    assert_eq!(state.pool_statuses()["v4"].assigned_ipv4, 2);
    state.reconcile(&key("s/c"), None);
    assert_eq!(state.pool_statuses()["v4"].assigned_ipv4, 1);
    assert_eq!(state.pool_statuses()["v4"].available_ipv4, 3);
    // The JSON field names MetalLB's IPAddressPool.status uses.
    assert_eq!(
        serde_json::to_value(&state.pool_statuses()["v6"]).unwrap(),
        json!({"assignedIPv4": 0, "assignedIPv6": 1, "availableIPv4": 0, "availableIPv6": 3})
    );
}

#[test]
fn a_status_with_extra_ingress_fields_is_rewritten_to_ip_only() {
    let mut state = ControllerState::new(settings(None));
    affected_by(&mut state, POOL_A);
    let mut svc = lb_service("default", "vip", &[(POOL_ANNOTATION, "a")], &["192.0.2.3"]);
    let mut v = serde_json::to_value(&svc).unwrap();
    v["status"]["loadBalancer"]["ingress"][0]["ipMode"] = json!("Proxy");
    svc = serde_json::from_value(v).unwrap();
    let updates = state.restore([&svc]);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].status, Some(vec!["192.0.2.3".parse().unwrap()]));
    assert_eq!(updates[0].pool_annotation, None);
    assert!(updates[0].events.is_empty(), "{updates:?}");
}

#[test]
fn a_deleted_service_never_seen_is_harmless() {
    let mut state = ControllerState::new(settings(None));
    affected_by(&mut state, POOL_A);
    state.restore(std::iter::empty());
    assert!(state.reconcile(&key("default/ghost"), None).is_empty());
}

/// After a restart, a Service whose request cannot be read (here: both requested-IP forms)
/// must keep the IP its status records, as `reconcile` keeps it while running and as MetalLB
/// does (`convergeBalancer` re-`Assign`s the status IPs before it looks at the requested
/// IPs). Otherwise a waiting Service is given the same IP while the first still records and
/// announces it, and fixing the annotation later leaves the first without its IP.
#[test]
fn restore_keeps_the_recorded_ip_of_an_unreadable_service() {
    let mut state = ControllerState::new(settings(None));
    affected_by(
        &mut state,
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: only, namespace: metallb-system}
spec: {addresses: [192.0.2.200/32]}
",
    );
    let mut gateway = lb_service(
        "edge",
        "gateway",
        &[
            ("metallb.io/loadBalancerIPs", "192.0.2.200"),
            (POOL_ANNOTATION, "only"),
        ],
        &["192.0.2.200"],
    );
    gateway.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.200".into());
    let another = lb_service("edge", "another", &[], &[]);
    let updates = state.restore([&gateway, &another]);

    let by_key = |k: &str| updates.iter().find(|u| u.key == key(k));
    let g = by_key("edge/gateway").expect("a LoadBalancerFailed event for edge/gateway");
    assert_eq!(g.error, Some(ReconcileError::InvalidService));
    assert!(!g.writes(), "{g:?}");
    // The recorded IP stays with edge/gateway; edge/another waits.
    assert_eq!(
        held(&state, "edge/gateway"),
        Some(("only".into(), vec!["192.0.2.200".into()]))
    );
    assert_eq!(held(&state, "edge/another"), None);
    let a = by_key("edge/another").unwrap();
    assert_eq!(a.error, Some(ReconcileError::AllocationFailed), "{a:?}");
    assert!(!a.writes(), "{a:?}");
}

/// When a configuration change drops a Service's allocation (pool deleted or shrunk), its
/// next reconcile must say so with a ClearAssignment event before IPAllocated or
/// AllocationFailed, as MetalLB does (its `convergeBalancer` finds the status IP no longer
/// `Assign`able: "current IP ... not allowed by config"), and as `restore` already does for
/// a recorded IP in no pool.
#[test]
fn a_pool_change_dropping_an_ip_emits_clear_assignment() {
    let mut state = ControllerState::new(settings(None));
    let blue_green = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: blue, namespace: metallb-system}
spec: {addresses: [192.0.2.10/32]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: green, namespace: metallb-system}
spec: {addresses: [198.51.100.10/32]}
";
    affected_by(&mut state, blue_green);
    let mut services = vec![
        lb_service(
            "default",
            "alpha",
            &[(POOL_ANNOTATION, "blue")],
            &["192.0.2.10"],
        ),
        lb_service(
            "default",
            "bravo",
            &[("metallb.io/address-pool", "blue")],
            &[],
        ),
    ];
    // bravo waits for blue, which alpha fills.
    restore_and_write(&mut state, &mut services);
    assert_eq!(keys_text(state.pending()), ["default/bravo"]);
    // Blue is deleted: alpha moves to green.
    let green_only = blue_green.split("---").nth(1).unwrap();
    assert_eq!(
        affected_by(&mut state, green_only),
        ["default/alpha", "default/bravo"]
    );
    let u = state.reconcile(&key("default/alpha"), Some(&services[0]));
    let reasons: Vec<&str> = u.events.iter().map(|e| e.reason).collect();
    assert_eq!(u.status, Some(vec!["198.51.100.10".parse().unwrap()]));
    assert_eq!(reasons, ["ClearAssignment", "IPAllocated"], "{u:?}");
    assert!(u.events[0].message.contains("192.0.2.10"), "{u:?}");

    // Shrink: a pool loses the address its holder records; nothing else is free.
    let mut state = ControllerState::new(settings(None));
    let wide = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lab, namespace: metallb-system}
spec: {addresses: [192.0.2.12/31]}
";
    affected_by(&mut state, wide);
    let mut services = vec![
        lb_service("lab", "one", &[], &[]),
        lb_service("lab", "two", &[], &[]),
    ];
    restore_and_write(&mut state, &mut services);
    affected_by(&mut state, &wide.replace("192.0.2.12/31", "192.0.2.12/32"));
    let u = state.reconcile(&key("lab/two"), Some(&services[1]));
    let reasons: Vec<&str> = u.events.iter().map(|e| e.reason).collect();
    assert_eq!(u.status, Some(Vec::new()));
    assert_eq!(reasons, ["ClearAssignment", "AllocationFailed"], "{u:?}");
}
