//! Scenarios of the controller's `Engine` end to end, and of its reflectors.

use super::*;

/// The engine end to end on hand-filled caches: start (ConfigurationState, restore,
/// pool statuses), a deleted Service, a pool change, an invalid configuration; with the
/// metrics after each step.
pub(super) async fn engine_start_delete_pool_change_and_invalid_config(log: &Log) {
    let (client, mut api) = mock_client(log);
    let logged_before = log.all().len();
    let holder_annotations = json!({"metallb.io/ip-allocated-from-pool": "default"});
    let a = service(
        "default",
        "a",
        "192.0.2.10",
        &["203.0.113.5"],
        &holder_annotations,
    );
    let b_json = service_json("default", "b", "192.0.2.11", &[], &json!({}));
    let b: Service = serde_json::from_value(b_json.clone()).unwrap();
    let c = service(
        "other",
        "c",
        "192.0.2.12",
        &["198.51.100.3"],
        &json!({
            "metallb.io/address-pool": "other",
            "metallb.io/ip-allocated-from-pool": "other",
        }),
    );
    let (stores, mut services_writer, mut pools_writer) = stores(
        vec![a.clone(), b.clone(), c],
        vec![
            pool("default", &["203.0.113.0/28"], true),
            pool("other", &["198.51.100.0/28"], false),
        ],
    );
    let metrics = Arc::new(Metrics::new());
    let mut engine = engine(client, stores, &metrics);

    // 1. Start: ConfigurationState, nothing for a (it holds .5), b gets an IP, pool
    //    statuses of both pools.
    let mut b_ip = String::new();
    drive(engine.start(), async {
        api.expect_get(CONFIGURATION_STATE)
            .await
            .fail(404, "NotFound");
        api.expect_create(CONFIGURATION_STATES)
            .await
            .1
            .created(&configuration_state_json());
        let (seen, reply) = api.expect_patch(CONFIGURATION_STATE_STATUS).await;
        assert_configuration_state_patch(&seen.body, "Valid", "True", "Reconciled", &|m| {
            m.is_empty()
        });
        reply.ok(&configuration_state_json());

        let (seen, reply) = api
            .expect_patch("/api/v1/namespaces/default/services/b/status")
            .await;
        let ingress = seen.body["status"]["loadBalancer"]["ingress"]
            .as_array()
            .unwrap();
        assert_eq!(ingress.len(), 1, "{:#}", seen.body);
        b_ip = ingress[0]["ip"].as_str().unwrap().to_string();
        let parsed = ip(&b_ip);
        assert!(
            "203.0.113.0/28"
                .parse::<ipnet::IpNet>()
                .unwrap()
                .contains(&parsed),
            "{b_ip}"
        );
        assert_ne!(b_ip, "203.0.113.5", "b must not take a's IP");
        assert_eq!(
            seen.body,
            json!({"status": {"loadBalancer": {"ingress": [{"ip": b_ip}]}}})
        );
        reply.ok(&b_json);
        api.expect_merge_patch(
            "/api/v1/namespaces/default/services/b",
            &json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "default"}}}),
        )
        .await
        .ok(&b_json);
        api.expect_event(
            "b",
            "Normal",
            "IPAllocated",
            &format!("Assigned IP [\"{b_ip}\"]"),
            "2",
        )
        .await;

        api.expect_merge_patch(
            &format!("{POOLS}/default/status"),
            &json!({"status": {"assignedIPv4": 2, "assignedIPv6": 0, "availableIPv4": 14, "availableIPv6": 0}}),
        )
        .await
        .ok(&pool_json("default", &["203.0.113.0/28"], true));
        api.expect_merge_patch(
            &format!("{POOLS}/other/status"),
            &json!({"status": {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 15, "availableIPv6": 0}}),
        )
        .await
        .ok(&pool_json("other", &["198.51.100.0/28"], false));
    })
    .await;
    assert!(engine.failed().is_empty());
    assert!(engine.state().is_restored());
    let text = metrics.encode();
    assert_metric(&text, "metallb_k8s_client_config_loaded_bool 1");
    assert_metric(&text, "metallb_k8s_client_config_stale_bool 0");
    assert_metric(
        &text,
        "metallb_allocator_addresses_total{pool=\"default\"} 16.0",
    );
    assert_metric(
        &text,
        "metallb_allocator_addresses_in_use_total{pool=\"default\"} 2.0",
    );
    assert_metric(
        &text,
        "metallb_allocator_ipv4_addresses_in_use_total{pool=\"other\"} 1.0",
    );
    assert_metric(&text, "lb_controller_pending_services 0");

    // 2. b is deleted: no Service write, the pool status follows.
    services_writer.apply_watcher_event(&watcher::Event::Delete(b));
    drive(
        engine.process(vec![Trigger::Service(ServiceKey::new("default", "b"))]),
        async {
            api.expect_merge_patch(
                &format!("{POOLS}/default/status"),
                &json!({"status": {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 15, "availableIPv6": 0}}),
            )
            .await
            .ok(&pool_json("default", &["203.0.113.0/28"], true));
        },
    )
    .await;
    assert_metric(
        &metrics.encode(),
        "metallb_allocator_addresses_in_use_total{pool=\"default\"} 1.0",
    );
    assert_metric(&metrics.encode(), "metallb_k8s_client_updates_total 1");

    // 3. The pool shrinks past .5: a loses it (ClearAssignment) and gets a new IP (its
    //    annotation stays); c, in the unchanged pool `other`, sees nothing;
    //    ConfigurationState unchanged.
    pools_writer.apply_watcher_event(&watcher::Event::Apply(pool(
        "default",
        &["203.0.113.8/29"],
        true,
    )));
    let a_json = service_json(
        "default",
        "a",
        "192.0.2.10",
        &["203.0.113.5"],
        &holder_annotations,
    );
    drive(engine.process(vec![Trigger::Config]), async {
        let (seen, reply) = api
            .expect_patch("/api/v1/namespaces/default/services/a/status")
            .await;
        let new_ip = seen.body["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            "203.0.113.8/29"
                .parse::<ipnet::IpNet>()
                .unwrap()
                .contains(&ip(&new_ip)),
            "{new_ip}"
        );
        assert_eq!(
            seen.body,
            json!({"status": {"loadBalancer": {"ingress": [{"ip": new_ip}]}}})
        );
        reply.ok(&a_json);
        // ClearAssignment for .5, then IPAllocated for the new IP.
        api.expect_event("a", "Normal", "ClearAssignment", CLEARED_BY_SHRINK, "3").await;
        api.expect_event(
            "a",
            "Normal",
            "IPAllocated",
            &format!("Assigned IP [\"{new_ip}\"]"),
            "4",
        )
        .await;
        api.expect_merge_patch(
            &format!("{POOLS}/default/status"),
            &json!({"status": {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 7, "availableIPv6": 0}}),
        )
        .await
        .ok(&pool_json("default", &["203.0.113.8/29"], true));
    })
    .await;
    assert!(engine.failed().is_empty());
    let text = metrics.encode();
    assert_metric(
        &text,
        "metallb_allocator_addresses_total{pool=\"default\"} 8.0",
    );
    assert_metric(
        &text,
        "metallb_allocator_addresses_in_use_total{pool=\"other\"} 1.0",
    );

    // 4. Two overlapping pools: rejected, stale; ConfigurationState Invalid; no Service
    //    or pool write.
    pools_writer.apply_watcher_event(&watcher::Event::Apply(pool(
        "overlap",
        &["203.0.113.12/30"],
        true,
    )));
    drive(engine.process(vec![Trigger::Config]), async {
        api.expect_get(CONFIGURATION_STATE)
            .await
            .ok(&configuration_state_json());
        let (seen, reply) = api.expect_patch(CONFIGURATION_STATE_STATUS).await;
        assert_configuration_state_patch(
            &seen.body,
            "Invalid",
            "False",
            "ConfigurationError",
            &|m| m.contains("overlap"),
        );
        reply.ok(&configuration_state_json());
    })
    .await;
    let text = metrics.encode();
    assert_metric(&text, "metallb_k8s_client_config_loaded_bool 1");
    assert_metric(&text, "metallb_k8s_client_config_stale_bool 1");
    assert!(!text.contains("pool=\"overlap\""), "{text}");

    // 5. The same invalid configuration again: nothing new to write.
    drive(engine.process(vec![Trigger::Config]), async {}).await;
    api.assert_quiet().await;

    // Never a request about c, in the untouched pool of another namespace.
    let about_c: Vec<Seen> = log.all()[logged_before..]
        .iter()
        .filter(|s| s.path.contains("/namespaces/other/") || s.body["regarding"]["name"] == "c")
        .cloned()
        .collect();
    assert!(about_c.is_empty(), "{about_c:#?}");
}

/// A Service write that fails (500) is remembered and retried by the next `process`: the
/// same status and annotation are written again, and the `IPAllocated` event the failed
/// attempt never sent goes out with the retry that succeeds (once, however many retries
/// failed before). A write answered 404 (Service deleted meanwhile) is not retried and its
/// events are dropped. Each failure counts in `update_errors`.
pub(super) async fn engine_retries_a_failed_service_write(log: &Log) {
    let (client, mut api) = mock_client(log);
    let b_json = service_json("default", "b", "192.0.2.11", &[], &json!({}));
    let d_json = service_json("default", "d", "192.0.2.13", &[], &json!({}));
    let (stores, mut services, _pools) = stores(
        vec![
            serde_json::from_value(b_json.clone()).unwrap(),
            serde_json::from_value(d_json.clone()).unwrap(),
        ],
        vec![pool("default", &["203.0.113.0/28"], true)],
    );
    let metrics = Arc::new(Metrics::new());
    let mut engine = engine(client, stores, &metrics);
    let mut b_ip = Value::Null;
    drive(engine.start(), async {
        api.expect_get(CONFIGURATION_STATE)
            .await
            .ok(&configuration_state_json());
        let (seen, reply) = api.expect_patch(CONFIGURATION_STATE_STATUS).await;
        assert_configuration_state_patch(&seen.body, "Valid", "True", "Reconciled", &|m| {
            m.is_empty()
        });
        reply.ok(&configuration_state_json());
        let (seen, reply) = api
            .expect_patch("/api/v1/namespaces/default/services/b/status")
            .await;
        b_ip = seen.body["status"]["loadBalancer"]["ingress"][0]["ip"].clone();
        reply.fail(500, "InternalError");
        api.expect_patch("/api/v1/namespaces/default/services/d/status")
            .await
            .1
            .fail(404, "NotFound");
        api.expect_merge_patch(
            &format!("{POOLS}/default/status"),
            &json!({"status": {"assignedIPv4": 2, "assignedIPv6": 0, "availableIPv4": 14, "availableIPv6": 0}}),
        )
        .await
        .ok(&pool_json("default", &["203.0.113.0/28"], true));
    })
    .await;
    assert!(b_ip.is_string(), "{b_ip}");
    let key = ServiceKey::new("default", "b");
    assert_eq!(
        engine.failed().iter().collect::<Vec<_>>(),
        [&key],
        "only the 500 is retried"
    );
    let text = metrics.encode();
    assert_metric(&text, "metallb_k8s_client_update_errors_total 2");
    assert_metric(
        &text,
        "lb_controller_reconcile_errors_total{reason=\"api_error\"} 1",
    );

    let b_status = json!({"status": {"loadBalancer": {"ingress": [{"ip": b_ip}]}}});

    // The first retry fails again: still remembered, nothing else sent.
    drive(engine.process(Vec::new()), async {
        api.expect_merge_patch("/api/v1/namespaces/default/services/b/status", &b_status)
            .await
            .fail(500, "InternalError");
    })
    .await;
    assert_eq!(engine.failed().iter().collect::<Vec<_>>(), [&key]);
    assert_metric(
        &metrics.encode(),
        "metallb_k8s_client_update_errors_total 3",
    );

    // The next one succeeds: status, annotation, and the event b never got, once.
    drive(engine.process(Vec::new()), async {
        api.expect_merge_patch("/api/v1/namespaces/default/services/b/status", &b_status)
            .await
            .ok(&b_json);
        api.expect_merge_patch(
            "/api/v1/namespaces/default/services/b",
            &json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "default"}}}),
        )
        .await
        .ok(&b_json);
        api.expect_event(
            "b",
            "Normal",
            "IPAllocated",
            &format!("Assigned IP [{b_ip}]"),
            "5",
        )
        .await;
    })
    .await;
    assert!(engine.failed().is_empty());
    assert_metric(
        &metrics.encode(),
        "metallb_k8s_client_update_errors_total 3",
    );
    api.assert_quiet().await;

    // Nothing left over: once the caches show b written and d deleted, a pass over both
    // writes no Service and sends no event, only the pool status that d's IP left.
    let mut b_written = service_json(
        "default",
        "b",
        "192.0.2.11",
        &[b_ip.as_str().unwrap()],
        &json!({"metallb.io/ip-allocated-from-pool": "default"}),
    );
    b_written["metadata"]["resourceVersion"] = json!("101");
    services.apply_watcher_event(&watcher::Event::Apply(
        serde_json::from_value(b_written).unwrap(),
    ));
    services.apply_watcher_event(&watcher::Event::Delete(
        serde_json::from_value(d_json).unwrap(),
    ));
    drive(
        engine.process(vec![
            Trigger::Service(key.clone()),
            Trigger::Service(ServiceKey::new("default", "d")),
        ]),
        async {
            api.expect_merge_patch(
                &format!("{POOLS}/default/status"),
                &json!({"status": {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 15, "availableIPv6": 0}}),
            )
            .await
            .ok(&pool_json("default", &["203.0.113.0/28"], true));
        },
    )
    .await;
    assert!(engine.failed().is_empty());
    api.assert_quiet().await;
}

/// `Stores::start`: one reflector per kind lists (`limit=500`) then watches (from the
/// list's resourceVersion, with bookmarks); the caches become ready and every kind sends
/// its trigger.
pub(super) async fn reflectors_list_then_watch_every_kind(log: &Log) {
    let (client, mut api) = mock_client(log);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stores = Stores::start(&client, NS, &tx);
    let kinds: [(&str, &str, &str); 10] = [
        ("/api/v1/services", "v1", "ServiceList"),
        (
            "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools",
            "metallb.io/v1beta1",
            "IPAddressPoolList",
        ),
        (
            "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements",
            "metallb.io/v1beta1",
            "L2AdvertisementList",
        ),
        (
            "/apis/metallb.io/v1beta1/namespaces/metallb-system/bgpadvertisements",
            "metallb.io/v1beta1",
            "BGPAdvertisementList",
        ),
        (
            "/apis/metallb.io/v1beta1/namespaces/metallb-system/communities",
            "metallb.io/v1beta1",
            "CommunityList",
        ),
        (
            "/apis/metallb.io/v1beta1/namespaces/metallb-system/bfdprofiles",
            "metallb.io/v1beta1",
            "BFDProfileList",
        ),
        (
            "/apis/metallb.io/v1beta2/namespaces/metallb-system/bgppeers",
            "metallb.io/v1beta2",
            "BGPPeerList",
        ),
        (
            "/api/v1/namespaces/metallb-system/secrets",
            "v1",
            "SecretList",
        ),
        ("/api/v1/namespaces", "v1", "NamespaceList"),
        ("/api/v1/nodes", "v1", "NodeList"),
    ];
    let mut listed = BTreeSet::new();
    let mut watched = BTreeSet::new();
    let mut held = Vec::new();
    while watched.len() < kinds.len() {
        let (seen, reply) = api.next().await;
        assert_eq!(seen.method, Method::GET, "{seen:#?}");
        let Some((_, api_version, kind)) = kinds.iter().find(|k| k.0 == seen.path) else {
            panic!("unexpected request {seen:#?}");
        };
        if seen.param("watch") == Some("true") {
            assert!(listed.contains(&seen.path), "watch before list: {seen:#?}");
            assert_eq!(seen.param("resourceVersion"), Some("1"), "{seen:#?}");
            assert_eq!(seen.param("allowWatchBookmarks"), Some("true"), "{seen:#?}");
            assert!(
                watched.insert(seen.path.clone()),
                "watched twice: {seen:#?}"
            );
            // Held open: no event, no end.
            held.push(reply);
        } else {
            // kube writes the list query as `&limit=500`.
            assert_eq!(seen.param("limit"), Some("500"), "{seen:#?}");
            assert_eq!(seen.param("watch"), None, "{seen:#?}");
            assert!(listed.insert(seen.path.clone()), "listed twice: {seen:#?}");
            reply.ok(&json!({
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"resourceVersion": "1"},
                "items": [],
            }));
        }
    }
    let all: BTreeSet<String> = kinds.iter().map(|k| k.0.to_string()).collect();
    assert_eq!(listed, all);
    timeout(WAIT, stores.wait_until_ready())
        .await
        .expect("the caches did not become ready")
        .unwrap();
    let mut triggers = Vec::new();
    while triggers.len() < kinds.len() {
        triggers.push(
            timeout(WAIT, rx.recv())
                .await
                .expect("a trigger per kind")
                .unwrap(),
        );
    }
    assert_eq!(
        triggers
            .iter()
            .filter(|t| **t == Trigger::AllServices)
            .count(),
        1
    );
    assert_eq!(
        triggers.iter().filter(|t| **t == Trigger::Config).count(),
        9
    );
    api.assert_quiet().await;
    assert!(stores.objects().pools.is_empty());
    drop(held);
}

/// A GitOps replace of the pool (delete, then create again) moves no IP and writes nothing,
/// twenty times over; a deletion that lasts past the grace period releases the IP then, with
/// MetalLB's writes.
pub(super) async fn engine_pool_replace_moves_nothing(log: &Log) {
    let (client, mut api) = mock_client(log);
    let annotations = json!({"metallb.io/ip-allocated-from-pool": "default"});
    let a = service("default", "a", "192.0.2.10", &["203.0.113.5"], &annotations);
    let the_pool = || pool("default", &["203.0.113.0/28"], true);
    let (stores, _services_writer, mut pools_writer) = stores(vec![a], vec![the_pool()]);
    let metrics = Arc::new(Metrics::new());
    let mut engine = engine(client, stores, &metrics);
    let grace = Duration::from_millis(400);
    engine.set_deletion_grace(grace);
    drive(
        engine.start(),
        answer_start_with_one_pool(&mut api, &["203.0.113.0/28"]),
    )
    .await;
    let logged = log.all().len();
    for round in 0..20 {
        pools_writer.apply_watcher_event(&watcher::Event::Delete(the_pool()));
        drive(engine.process(vec![Trigger::Config]), async {}).await;
        assert!(engine.grace_deadline().is_some(), "round {round}");
        pools_writer.apply_watcher_event(&watcher::Event::Apply(the_pool()));
        drive(engine.process(vec![Trigger::Config]), async {}).await;
        assert!(engine.grace_deadline().is_none(), "round {round}");
    }
    api.assert_quiet().await;
    assert_eq!(log.all().len(), logged, "requests during the replaces");
    assert_eq!(
        engine
            .state()
            .allocator()
            .allocations()
            .map(|(k, a)| (k.to_string(), a.pool.clone(), format!("{:?}", a.ips)))
            .collect::<Vec<_>>(),
        [(
            "default/a".to_string(),
            "default".to_string(),
            "[203.0.113.5]".to_string()
        )]
    );

    // Deleted for good: nothing until the grace period ends, then the IP is released.
    pools_writer.apply_watcher_event(&watcher::Event::Delete(the_pool()));
    drive(engine.process(vec![Trigger::Config]), async {}).await;
    api.assert_quiet().await;
    let deadline = engine.grace_deadline().expect("a grace deadline");
    tokio::time::sleep_until(deadline).await;
    let mut seen = Vec::new();
    drive(engine.process(vec![Trigger::Config]), async {
        // Bounded: every request answered, until none comes for a while.
        for _ in 0..20 {
            let Some((s, reply)) = api.next_within(Duration::from_millis(300)).await else {
                break;
            };
            reply.ok(&json!({}));
            seen.push(s);
        }
    })
    .await;
    let status = seen
        .iter()
        .find(|s| s.path == "/api/v1/namespaces/default/services/a/status")
        .unwrap_or_else(|| panic!("a's status not written: {seen:#?}"));
    assert_eq!(
        status.body["status"]["loadBalancer"],
        json!({"ingress": null}),
        "{status:#?}"
    );
    assert!(engine.grace_deadline().is_none());
    assert!(engine.state().allocator().allocations().next().is_none());
}
