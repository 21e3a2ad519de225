//! Scenarios of the speaker's `StatusWriter`, `ConfigurationState` and reflectors (replayed for RBAC).

use super::*;

/// `adopt` lists both kinds with the node's label selector; of two objects for the same
/// Service it keeps the first and deletes the other; an object without the Service labels
/// is deleted (a 404, already gone, is fine). The first sync after it only sends the
/// events: the adopted objects already hold the statuses of the report.
pub(super) async fn status_adopt_keeps_one_object_per_service(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut writer = StatusWriter::new(client, NS, NODE, NODE);
    let web_status = status_body(Kind::Layer2, "web", &["eth0"]);
    let db_status = status_body(Kind::Bgp, "db", &["peer-a"]);
    drive(writer.adopt(), async {
        let (seen, reply) = api.expect(Method::GET, L2_STATUSES).await;
        assert_eq!(seen.query.as_deref(), Some(NODE_SELECTOR_QUERY), "{seen:#?}");
        assert_eq!(seen.body, Value::Null, "{seen:#?}");
        reply.ok(&json!({
            "apiVersion": "metallb.io/v1beta1",
            "kind": "ServiceL2StatusList",
            "metadata": {"resourceVersion": "30"},
            "items": [
                status_object(Kind::Layer2, "l2-aaaaa", &status_labels("web"), &web_status),
                status_object(Kind::Layer2, "l2-bbbbb", &status_labels("web"), &web_status),
                status_object(Kind::Layer2, "l2-ccccc", &json!({"metallb.io/node": NODE}), &Value::Null),
            ],
        }));
        api.expect_unordered(vec![delete_status(Kind::Layer2, "l2-bbbbb")])
            .await;
        api.expect_unordered(vec![
            delete_status(Kind::Layer2, "l2-ccccc").answered(Answer::Fail(404, "NotFound")),
        ])
        .await;
        let (seen, reply) = api.expect(Method::GET, BGP_STATUSES).await;
        assert_eq!(seen.query.as_deref(), Some(NODE_SELECTOR_QUERY), "{seen:#?}");
        assert_eq!(seen.body, Value::Null, "{seen:#?}");
        reply.ok(&json!({
            "apiVersion": "metallb.io/v1beta1",
            "kind": "ServiceBGPStatusList",
            "metadata": {"resourceVersion": "30"},
            "items": [status_object(Kind::Bgp, "bgp-aaaaa", &status_labels("db"), &db_status)],
        }));
    })
    .await
    .unwrap();
    let want: BTreeMap<(Kind, ServiceKey), Owned> = BTreeMap::from([
        (
            (Kind::Layer2, ServiceKey::new("default", "web")),
            Owned {
                name: "l2-aaaaa".into(),
                status: Some(web_status),
            },
        ),
        (
            (Kind::Bgp, ServiceKey::new("default", "db")),
            Owned {
                name: "bgp-aaaaa".into(),
                status: Some(db_status),
            },
        ),
    ]);
    assert_eq!(writer.known(), &want);
    let report = node_report(&[("web", &["eth0"])], &[("db", &["peer-a"])], &[]);
    let services = speaker_services();
    let node = node_n1();
    let ok = drive(writer.sync(&report, &services, Some(&node)), async {
        api.expect_unordered(vec![
            node_assigned("web", "layer2"),
            node_assigned("db", "bgp"),
        ])
        .await;
    })
    .await;
    assert!(ok);
    assert_eq!(writer.known(), &want);
    api.assert_quiet().await;
}

/// A report with one Service over layer 2 and one over BGP: a `nodeAssigned` event each,
/// then each object is created (generateName, labels, owned by the Node) and its status
/// merge-patched. The same report again writes nothing; changed interfaces and peers are
/// patched (no event: nothing newly assigned); an empty report deletes both objects.
pub(super) async fn status_sync_creates_patches_and_deletes(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut writer = StatusWriter::new(client, NS, NODE, NODE);
    let services = speaker_services();
    let node = node_n1();
    let report = node_report(&[("web", &["eth0"])], &[("db", &["peer-a", "peer-b"])], &[]);
    let ok = drive(writer.sync(&report, &services, Some(&node)), async {
        api.expect_unordered(vec![
            node_assigned("web", "layer2"),
            node_assigned("db", "bgp"),
            create_status(Kind::Layer2, "web", "l2-x7k2p"),
            patch_status(Kind::Layer2, "l2-x7k2p", "web", &["eth0"]),
            create_status(Kind::Bgp, "db", "bgp-q9w4z"),
            patch_status(Kind::Bgp, "bgp-q9w4z", "db", &["peer-a", "peer-b"]),
        ])
        .await;
    })
    .await;
    assert!(ok);
    assert_eq!(
        known_names(&writer),
        [
            (Kind::Layer2, "web".into(), "l2-x7k2p".into()),
            (Kind::Bgp, "db".into(), "bgp-q9w4z".into()),
        ]
    );

    // The same report: no request at all.
    let ok = drive(writer.sync(&report, &services, Some(&node)), async {}).await;
    assert!(ok);
    api.assert_quiet().await;

    // Changed interfaces and peers: status patches only.
    let changed = node_report(&[("web", &["eth0", "eth1"])], &[("db", &["peer-b"])], &[]);
    let ok = drive(writer.sync(&changed, &services, Some(&node)), async {
        api.expect_unordered(vec![
            patch_status(Kind::Layer2, "l2-x7k2p", "web", &["eth0", "eth1"]),
            patch_status(Kind::Bgp, "bgp-q9w4z", "db", &["peer-b"]),
        ])
        .await;
    })
    .await;
    assert!(ok);
    api.assert_quiet().await;

    // Nothing announced any more: both objects deleted, no event.
    let ok = drive(
        writer.sync(&Report::default(), &services, Some(&node)),
        async {
            api.expect_unordered(vec![
                delete_status(Kind::Layer2, "l2-x7k2p"),
                delete_status(Kind::Bgp, "bgp-q9w4z"),
            ])
            .await;
        },
    )
    .await;
    assert!(ok);
    assert!(writer.known().is_empty());
    api.assert_quiet().await;
}

/// A status patch answered 404 (the object was deleted behind the speaker's back) forgets
/// the object: the next sync creates it again and writes its status, without a new event.
pub(super) async fn status_sync_recreates_an_object_deleted_behind_its_back(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut writer = StatusWriter::new(client, NS, NODE, NODE);
    let services = speaker_services();
    let node = node_n1();
    let first = node_report(&[("web", &["eth0"])], &[], &[]);
    let ok = drive(writer.sync(&first, &services, Some(&node)), async {
        api.expect_unordered(vec![
            node_assigned("web", "layer2"),
            create_status(Kind::Layer2, "web", "l2-first"),
            patch_status(Kind::Layer2, "l2-first", "web", &["eth0"]),
        ])
        .await;
    })
    .await;
    assert!(ok);
    let moved = node_report(&[("web", &["eth1"])], &[], &[]);
    drive(writer.sync(&moved, &services, Some(&node)), async {
        api.expect_unordered(vec![
            patch_status(Kind::Layer2, "l2-first", "web", &["eth1"])
                .answered(Answer::Fail(404, "NotFound")),
        ])
        .await;
    })
    .await;
    assert!(writer.known().is_empty(), "{:?}", writer.known());
    let ok = drive(writer.sync(&moved, &services, Some(&node)), async {
        api.expect_unordered(vec![
            create_status(Kind::Layer2, "web", "l2-second"),
            patch_status(Kind::Layer2, "l2-second", "web", &["eth1"]),
        ])
        .await;
    })
    .await;
    assert!(ok);
    assert_eq!(
        known_names(&writer),
        [(Kind::Layer2, "web".into(), "l2-second".into())]
    );
    api.assert_quiet().await;
}

/// A create answered 500 and a status patch answered 500 (after its create succeeded)
/// make `sync` return false; the next sync creates the first object and patches the
/// second (no second create of it), without repeating the events; then nothing is left.
pub(super) async fn status_sync_retries_failed_writes(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut writer = StatusWriter::new(client, NS, NODE, NODE);
    let services = speaker_services();
    let node = node_n1();
    let report = node_report(&[("web", &["eth0"])], &[("db", &["peer-a"])], &[]);
    let ok = drive(writer.sync(&report, &services, Some(&node)), async {
        api.expect_unordered(vec![
            node_assigned("web", "layer2"),
            node_assigned("db", "bgp"),
            create_status(Kind::Layer2, "web", "l2-never")
                .answered(Answer::Fail(500, "InternalError")),
            create_status(Kind::Bgp, "db", "bgp-q9w4z"),
            patch_status(Kind::Bgp, "bgp-q9w4z", "db", &["peer-a"])
                .answered(Answer::Fail(500, "InternalError")),
        ])
        .await;
    })
    .await;
    assert!(!ok, "failed writes must be reported");
    assert_eq!(
        writer.known().values().cloned().collect::<Vec<_>>(),
        [Owned {
            name: "bgp-q9w4z".into(),
            status: None,
        }]
    );
    let ok = drive(writer.sync(&report, &services, Some(&node)), async {
        api.expect_unordered(vec![
            create_status(Kind::Layer2, "web", "l2-x7k2p"),
            patch_status(Kind::Layer2, "l2-x7k2p", "web", &["eth0"]),
            patch_status(Kind::Bgp, "bgp-q9w4z", "db", &["peer-a"]),
        ])
        .await;
    })
    .await;
    assert!(ok);
    assert_eq!(
        known_names(&writer),
        [
            (Kind::Layer2, "web".into(), "l2-x7k2p".into()),
            (Kind::Bgp, "db".into(), "bgp-q9w4z".into()),
        ]
    );
    let ok = drive(writer.sync(&report, &services, Some(&node)), async {}).await;
    assert!(ok);
    api.assert_quiet().await;
}

/// A Service in the report's `failed` map gets an `announceFailed` warning naming the
/// allowed interfaces, and no `ServiceL2Status`; once an interface appears it is assigned
/// (`nodeAssigned`, object created); failing again sends `announceFailed` again and
/// deletes its object.
pub(super) async fn status_announce_failed_event_without_l2_status(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut writer = StatusWriter::new(client, NS, NODE, NODE);
    let services = speaker_services();
    let node = node_n1();
    let failing = node_report(&[], &[("db", &["peer-a"])], &[("web", &["eth1", "eth2"])]);
    let ok = drive(writer.sync(&failing, &services, Some(&node)), async {
        api.expect_unordered(vec![
            announce_failed("web", "eth1, eth2"),
            node_assigned("db", "bgp"),
            create_status(Kind::Bgp, "db", "bgp-q9w4z"),
            patch_status(Kind::Bgp, "bgp-q9w4z", "db", &["peer-a"]),
        ])
        .await;
    })
    .await;
    assert!(ok);
    assert_eq!(
        known_names(&writer),
        [(Kind::Bgp, "db".into(), "bgp-q9w4z".into())]
    );
    // Still failing: no second warning.
    let ok = drive(writer.sync(&failing, &services, Some(&node)), async {}).await;
    assert!(ok);
    api.assert_quiet().await;

    let announced = node_report(&[("web", &["eth1"])], &[("db", &["peer-a"])], &[]);
    let ok = drive(writer.sync(&announced, &services, Some(&node)), async {
        api.expect_unordered(vec![
            node_assigned("web", "layer2"),
            create_status(Kind::Layer2, "web", "l2-x7k2p"),
            patch_status(Kind::Layer2, "l2-x7k2p", "web", &["eth1"]),
        ])
        .await;
    })
    .await;
    assert!(ok);

    let failing_again = node_report(&[], &[("db", &["peer-a"])], &[("web", &["eth1"])]);
    let ok = drive(writer.sync(&failing_again, &services, Some(&node)), async {
        api.expect_unordered(vec![
            announce_failed("web", "eth1"),
            delete_status(Kind::Layer2, "l2-x7k2p"),
        ])
        .await;
    })
    .await;
    assert!(ok);
    assert_eq!(
        known_names(&writer),
        [(Kind::Bgp, "db".into(), "bgp-q9w4z".into())]
    );
    api.assert_quiet().await;
}

/// 20 Services to create: at most 16 writes are in flight at once (a create and then its
/// status patch hold one slot); each finished write lets the next create start. Services
/// missing from the cache get no event (it needs their UID), only their objects.
pub(super) async fn status_sync_bounds_writes_in_flight(log: &Log) {
    let (client, mut api) = mock_client(log);
    let mut writer = StatusWriter::new(client, NS, NODE, NODE);
    let services: Store<Service> = cache(Vec::new()).0;
    let node = node_n1();
    let names: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
    let entries: Vec<(&str, &[&str])> = names.iter().map(|n| (n.as_str(), &["eth0"][..])).collect();
    let report = node_report(&entries, &[], &[]);
    let service_of = |seen: &Seen| -> String {
        seen.body["metadata"]["labels"]["metallb.io/service-name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ok = drive(writer.sync(&report, &services, Some(&node)), async {
        let mut held = Vec::new();
        for _ in 0..16 {
            let (seen, reply) = api.expect_create(L2_STATUSES).await;
            let service = service_of(&seen);
            assert_eq!(seen.body, status_create_body(Kind::Layer2, &service));
            held.push((service, seen, reply));
        }
        // A 17th would exceed the bound.
        api.assert_quiet().await;
        // One create answered: its status patch comes in the same slot, nothing more.
        let (service, seen, reply) = held.pop().unwrap();
        Answer::Created(Some(format!("l2-{service}"))).send(&seen, reply);
        let status = status_body(Kind::Layer2, &service, &["eth0"]);
        api.expect_merge_patch(
            &format!("{L2_STATUSES}/l2-{service}/status"),
            &json!({ "status": status }),
        )
        .await
        .ok(&status_object(
            Kind::Layer2,
            &format!("l2-{service}"),
            &status_labels(&service),
            &status,
        ));
        let mut started: BTreeSet<String> = BTreeSet::from([service]);
        // That write done, its slot starts the next create.
        let (seen, reply) = api.expect_create(L2_STATUSES).await;
        let service = service_of(&seen);
        assert_eq!(seen.body, status_create_body(Kind::Layer2, &service));
        held.push((service, seen, reply));
        api.assert_quiet().await;
        // The rest, in any order.
        let mut expected = Vec::new();
        for (service, seen, reply) in held {
            Answer::Created(Some(format!("l2-{service}"))).send(&seen, reply);
            expected.push(patch_status(
                Kind::Layer2,
                &format!("l2-{service}"),
                &service,
                &["eth0"],
            ));
            assert!(started.insert(service), "created twice");
        }
        for service in names.iter().filter(|n| !started.contains(*n)) {
            let name = format!("l2-{service}");
            expected.push(create_status(Kind::Layer2, service, &name));
            expected.push(patch_status(Kind::Layer2, &name, service, &["eth0"]));
        }
        assert_eq!(expected.len(), 3 * 2 + 16);
        api.expect_unordered(expected).await;
    })
    .await;
    assert!(ok);
    assert_eq!(writer.known().len(), 20);
    api.assert_quiet().await;
}

/// `configuration_state` for the speaker: GET `speaker-n1` 404, create it with the
/// speaker's labels, then patch its status `Valid`; present and invalid: GET 200, no
/// create, status `Invalid` with the summary.
pub(super) async fn speaker_configuration_state_created_then_valid(log: &Log) {
    let (client, mut api) = mock_client(log);
    let labels = BTreeMap::from([
        (
            "metallb.io/component-type".to_string(),
            "speaker".to_string(),
        ),
        ("metallb.io/node-name".to_string(), NODE.to_string()),
    ]);
    let at = wall("2024-05-06T07:08:09Z");
    drive(
        configuration_state(&client, NS, "speaker-n1", labels.clone(), None, at),
        async {
            api.expect_get(SPEAKER_STATE).await.fail(404, "NotFound");
            let (seen, reply) = api.expect_create(CONFIGURATION_STATES).await;
            assert_eq!(
                seen.body,
                json!({
                    "apiVersion": "metallb.io/v1beta1",
                    "kind": "ConfigurationState",
                    "metadata": {
                        "name": "speaker-n1",
                        "namespace": NS,
                        "labels": {
                            "metallb.io/component-type": "speaker",
                            "metallb.io/node-name": NODE,
                        },
                    },
                    "spec": {},
                })
            );
            reply.created(&speaker_state_json());
            api.expect_merge_patch(
                SPEAKER_STATE_STATUS,
                &json!({"status": {
                    "result": "Valid",
                    "errorSummary": "",
                    "conditions": [{
                        "type": "configReconcilerValid",
                        "status": "True",
                        "reason": "Reconciled",
                        "message": "",
                        "lastTransitionTime": "2024-05-06T07:08:09Z",
                    }],
                }}),
            )
            .await
            .ok(&speaker_state_json());
        },
    )
    .await
    .unwrap();
    let summary = "BGPPeer/p: unknown BFD profile \"fast\"";
    drive(
        configuration_state(&client, NS, "speaker-n1", labels, Some(summary), at),
        async {
            api.expect_get(SPEAKER_STATE)
                .await
                .ok(&speaker_state_json());
            api.expect_merge_patch(
                SPEAKER_STATE_STATUS,
                &json!({"status": {
                    "result": "Invalid",
                    "errorSummary": summary,
                    "conditions": [{
                        "type": "configReconcilerValid",
                        "status": "False",
                        "reason": "ConfigurationError",
                        "message": summary,
                        "lastTransitionTime": "2024-05-06T07:08:09Z",
                    }],
                }}),
            )
            .await
            .ok(&speaker_state_json());
        },
    )
    .await
    .unwrap();
    api.assert_quiet().await;
}

/// `SpeakerStores::start`: one reflector per kind lists (`limit=500`) then watches (from
/// the list's resourceVersion, with bookmarks): Services, EndpointSlices and Nodes of the
/// whole cluster, the configuration and Secrets in metallb-system. Once ready, every kind
/// has sent a `Config` trigger and `inputs()` holds the LoadBalancer Service with the IP
/// of its status and the endpoints of its EndpointSlice; the ClusterIP Service and the
/// LoadBalancer without an IP are left out.
pub(super) async fn speaker_reflectors_list_then_watch_every_kind(log: &Log) {
    let (client, mut api) = mock_client(log);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stores = SpeakerStores::start(&client, NS, &tx);
    let watches = answer_speaker_lists(&mut api, speaker_cluster).await;
    assert_ready(&stores, &mut rx).await;
    api.assert_quiet().await;

    let options = PlanOptions {
        namespace: NS.into(),
        ..PlanOptions::default()
    };
    let inputs = stores
        .inputs(&options, &mut lb_metallb::grace::DeletionGrace::default())
        .0
        .unwrap();
    let keys: Vec<String> = inputs
        .services
        .iter()
        .map(|s| s.view.key.to_string())
        .collect();
    assert_eq!(keys, ["default/web"], "only the LoadBalancer holding an IP");
    let web = &inputs.services[0];
    assert_eq!(web.view.ingress_ips, [ip("203.0.113.10")]);
    assert_eq!(
        web.endpoints,
        [
            EndpointState {
                node: Some("n1".into()),
                usable: true,
                has_addresses: true,
            },
            EndpointState {
                node: Some("n2".into()),
                usable: false,
                has_addresses: true,
            },
        ]
    );
    let nodes: Vec<&str> = inputs.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(nodes, ["n1", "n2"]);
    assert_eq!(inputs.addresses["n1"], [ip("192.0.2.21")]);
    assert!(inputs.config.pools.get("default").is_some());
    // The ClusterIP Service is cached with nothing but its type.
    let cached = stores
        .services
        .get(&reflector::ObjectRef::new("internal").within("default"))
        .expect("the ClusterIP Service is cached");
    assert!(cached.status.is_none(), "{cached:?}");
    assert_eq!(
        cached.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("ClusterIP")
    );
    assert_eq!(
        cached.spec.as_ref().and_then(|s| s.cluster_ip.clone()),
        None
    );
    drop(watches);
}
