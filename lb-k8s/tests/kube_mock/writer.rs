//! Scenarios of the controller's `Writer`: Service status, annotation and events, pool status, `ConfigurationState`, the memberlist Secret.

use super::*;

/// `Writer::service` with new IPs, pool annotation and an event: status subresource patch,
/// then annotation patch, then the event, exactly.
pub(super) async fn writer_service_writes_status_annotation_then_event(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    let svc_json = service_json("default", "web", "192.0.2.10", &[], &json!({}));
    let svc: Service = serde_json::from_value(svc_json.clone()).unwrap();
    let allocated = ip("203.0.113.10");
    let u = update_allocating("web", allocated, "default");
    let result = drive(writer.service(&u, &svc), async {
        api.expect_merge_patch(
            "/api/v1/namespaces/default/services/web/status",
            &json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}}),
        )
        .await
        .ok(&svc_json);
        api.expect_merge_patch(
            "/api/v1/namespaces/default/services/web",
            &json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "default"}}}),
        )
        .await
        .ok(&svc_json);
        api.expect_event(
            "web",
            "Normal",
            "IPAllocated",
            "Assigned IP [\"203.0.113.10\"]",
            "7",
        )
        .await;
    })
    .await;
    result.unwrap();
}

/// Clearing: an empty status removes `ingress`, `Some(None)` removes the annotation; no
/// event, no further request.
pub(super) async fn writer_service_clears_status_and_annotation(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    let svc_json = service_json(
        "default",
        "web",
        "192.0.2.10",
        &["203.0.113.10"],
        &json!({"metallb.io/ip-allocated-from-pool": "default"}),
    );
    let svc: Service = serde_json::from_value(svc_json.clone()).unwrap();
    let u = ServiceUpdate {
        key: ServiceKey::new("default", "web"),
        status: Some(Vec::new()),
        pool_annotation: Some(None),
        events: Vec::new(),
        retry: Vec::new(),
        error: None,
    };
    let result = drive(writer.service(&u, &svc), async {
        api.expect_merge_patch(
            "/api/v1/namespaces/default/services/web/status",
            &json!({"status": {"loadBalancer": {"ingress": null}}}),
        )
        .await
        .ok(&svc_json);
        api.expect_merge_patch(
            "/api/v1/namespaces/default/services/web",
            &json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": null}}}),
        )
        .await
        .ok(&svc_json);
    })
    .await;
    result.unwrap();
    api.assert_quiet().await;
}

/// A status patch answered 500 fails the write: no annotation patch, no event.
pub(super) async fn writer_service_stops_at_a_failed_status_patch(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    let svc = service("default", "web", "192.0.2.10", &[], &json!({}));
    let allocated = ip("203.0.113.10");
    let u = update_allocating("web", allocated, "default");
    let result = drive(writer.service(&u, &svc), async {
        api.expect_patch("/api/v1/namespaces/default/services/web/status")
            .await
            .1
            .fail(500, "InternalError");
    })
    .await;
    assert_api_error(&result, 500);
    api.assert_quiet().await;
}

/// An annotation patch answered 404 (Service deleted meanwhile) fails the write: no event.
pub(super) async fn writer_service_stops_at_a_failed_annotation_patch(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    let svc_json = service_json("default", "web", "192.0.2.10", &[], &json!({}));
    let svc: Service = serde_json::from_value(svc_json.clone()).unwrap();
    let allocated = ip("203.0.113.10");
    let u = update_allocating("web", allocated, "default");
    let result = drive(writer.service(&u, &svc), async {
        api.expect_patch("/api/v1/namespaces/default/services/web/status")
            .await
            .1
            .ok(&svc_json);
        api.expect_patch("/api/v1/namespaces/default/services/web")
            .await
            .1
            .fail(404, "NotFound");
    })
    .await;
    assert_api_error(&result, 404);
    api.assert_quiet().await;
}

/// An event the API server refuses is only logged: the write succeeds.
pub(super) async fn writer_service_ignores_a_refused_event(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    let svc = service("default", "web", "192.0.2.10", &[], &json!({}));
    let u = ServiceUpdate {
        key: ServiceKey::new("default", "web"),
        status: None,
        pool_annotation: None,
        events: vec![events::allocation_failed(
            "default",
            "web",
            &"no available IPs",
        )],
        retry: Vec::new(),
        error: None,
    };
    let result = drive(writer.service(&u, &svc), async {
        let (seen, reply) = api
            .expect_create("/apis/events.k8s.io/v1/namespaces/default/events")
            .await;
        assert_event(
            &seen.body,
            "default",
            "web",
            "Warning",
            "AllocationFailed",
            "Failed to allocate IP for \"default/web\": no available IPs",
        );
        reply.fail(403, "Forbidden");
    })
    .await;
    result.unwrap();
    api.assert_quiet().await;
}

/// Every event is a new Event (POST create), never a series update (PATCH) of an earlier
/// one: the same reason with another message (`IPAllocated` for a new IP after a pool
/// change) reaches the API server with its own note, and so does an exact repeat. In one
/// update the events go out in order, each with the action of its reason (`Clear`,
/// `Allocate`, `Validate`), under distinct names.
pub(super) async fn writer_service_every_event_is_created(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    let svc = service("default", "web", "192.0.2.10", &[], &json!({}));
    let events_path = "/apis/events.k8s.io/v1/namespaces/default/events";
    let update = |events: Vec<events::Event>| ServiceUpdate {
        key: ServiceKey::new("default", "web"),
        status: None,
        pool_annotation: None,
        events,
        retry: Vec::new(),
        error: None,
    };
    let mut names = BTreeSet::new();
    // The same reason twice with different messages, then an exact repeat of the second.
    for (n, addr) in ["203.0.113.10", "203.0.113.11", "203.0.113.11"]
        .into_iter()
        .enumerate()
    {
        let u = update(vec![events::allocated(&[ip(addr)])]);
        drive(writer.service(&u, &svc), async {
            let (seen, reply) = api.expect_create(events_path).await;
            assert_event(
                &seen.body,
                "default",
                "web",
                "Normal",
                "IPAllocated",
                &format!("Assigned IP [\"{addr}\"]"),
            );
            let name = seen.body["metadata"]["name"].as_str().unwrap().to_string();
            assert!(names.insert(name), "event {n} reuses a name: {seen:#?}");
            reply.created(&stored(&seen.body, "7"));
        })
        .await
        .unwrap();
    }
    // Several events in one update, one action each.
    let cleared = [ip("203.0.113.11")];
    let u = update(vec![
        events::cleared_not_load_balancer(&cleared),
        events::allocated(&[ip("203.0.113.12")]),
        events::deprecated_annotation("metallb.universe.tf/address-pool"),
    ]);
    drive(writer.service(&u, &svc), async {
        for (type_, reason, action, note) in [
            (
                "Normal",
                "ClearAssignment",
                "Clear",
                "current IP [\"203.0.113.11\"] cleared: the service is no longer a LoadBalancer handled here",
            ),
            (
                "Normal",
                "IPAllocated",
                "Allocate",
                "Assigned IP [\"203.0.113.12\"]",
            ),
            (
                "Warning",
                "deprecatedAnnotation",
                "Validate",
                "annotation metallb.universe.tf/address-pool is deprecated, use metallb.io/address-pool",
            ),
        ] {
            let (seen, reply) = api.expect_create(events_path).await;
            assert_event(&seen.body, "default", "web", type_, reason, note);
            assert_eq!(seen.body["action"], action, "{:#}", seen.body);
            let name = seen.body["metadata"]["name"].as_str().unwrap().to_string();
            assert!(names.insert(name), "{reason} reuses a name: {seen:#?}");
            reply.created(&stored(&seen.body, "8"));
        }
    })
    .await
    .unwrap();
    api.assert_quiet().await;
}

/// `Writer::pool_status`: a merge patch of the status subresource; a 404 is an error.
pub(super) async fn writer_pool_status_patches_the_status_subresource(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    let status = IPAddressPoolStatus {
        assigned_ipv4: 2,
        assigned_ipv6: 0,
        available_ipv4: 14,
        available_ipv6: 0,
    };
    drive(writer.pool_status("default", &status), async {
        api.expect_merge_patch(
            &format!("{POOLS}/default/status"),
            &json!({"status": {"assignedIPv4": 2, "assignedIPv6": 0, "availableIPv4": 14, "availableIPv6": 0}}),
        )
        .await
        .ok(&pool_json("default", &["203.0.113.0/28"], true));
    })
    .await
    .unwrap();
    let result = drive(writer.pool_status("gone", &status), async {
        api.expect_patch(&format!("{POOLS}/gone/status"))
            .await
            .1
            .fail(404, "NotFound");
    })
    .await;
    assert_api_error(&result, 404);
}

/// `Writer::configuration_state(None)` with no object: GET 404, create `controller`
/// (labelled), then patch its status `Valid`.
pub(super) async fn writer_configuration_state_created_then_valid(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    drive(
        writer.configuration_state(None, wall("2024-05-06T07:08:09Z")),
        async {
            api.expect_get(CONFIGURATION_STATE)
                .await
                .fail(404, "NotFound");
            let (seen, reply) = api.expect_create(CONFIGURATION_STATES).await;
            assert_eq!(
                seen.body,
                json!({
                    "apiVersion": "metallb.io/v1beta1",
                    "kind": "ConfigurationState",
                    "metadata": {
                        "name": "controller",
                        "namespace": NS,
                        "labels": {"metallb.io/component-type": "controller"},
                    },
                    "spec": {},
                })
            );
            reply.created(&configuration_state_json());
            let (seen, reply) = api.expect_patch(CONFIGURATION_STATE_STATUS).await;
            assert_eq!(
                seen.body,
                json!({"status": {
                    "result": "Valid",
                    "errorSummary": "",
                    "conditions": [{
                        "type": "configReconcilerValid",
                        "status": "True",
                        "reason": "Reconciled",
                        "message": "",
                        "lastTransitionTime": "2024-05-06T07:08:09Z",
                    }],
                }})
            );
            reply.ok(&configuration_state_json());
        },
    )
    .await
    .unwrap();
}

/// `Writer::configuration_state(Some(..))` with the object present: GET 200, no create,
/// status `Invalid` with the summary.
pub(super) async fn writer_configuration_state_invalid_when_present(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    let summary = "IPAddressPool/b: 203.0.113.0/28 overlaps with 203.0.113.0/24 of IPAddressPool/a";
    drive(
        writer.configuration_state(Some(summary), wall("2024-05-06T07:08:09Z")),
        async {
            api.expect_get(CONFIGURATION_STATE)
                .await
                .ok(&configuration_state_json());
            let (seen, reply) = api.expect_patch(CONFIGURATION_STATE_STATUS).await;
            assert_eq!(
                seen.body,
                json!({"status": {
                    "result": "Invalid",
                    "errorSummary": summary,
                    "conditions": [{
                        "type": "configReconcilerValid",
                        "status": "False",
                        "reason": "ConfigurationError",
                        "message": summary,
                        "lastTransitionTime": "2024-05-06T07:08:09Z",
                    }],
                }})
            );
            reply.ok(&configuration_state_json());
        },
    )
    .await
    .unwrap();
}

/// A create that loses the race (409) still patches the status; a failing GET (500) is an
/// error and creates nothing.
pub(super) async fn writer_configuration_state_conflict_and_failure(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    drive(writer.configuration_state(None, Timestamp::now()), async {
        api.expect_get(CONFIGURATION_STATE)
            .await
            .fail(404, "NotFound");
        api.expect_create(CONFIGURATION_STATES)
            .await
            .1
            .fail(409, "AlreadyExists");
        let (seen, reply) = api.expect_patch(CONFIGURATION_STATE_STATUS).await;
        assert_configuration_state_patch(&seen.body, "Valid", "True", "Reconciled", &|m| {
            m.is_empty()
        });
        reply.ok(&configuration_state_json());
    })
    .await
    .unwrap();
    let result = drive(writer.configuration_state(None, Timestamp::now()), async {
        api.expect_get(CONFIGURATION_STATE)
            .await
            .fail(500, "InternalError");
    })
    .await;
    assert_api_error(&result, 500);
    api.assert_quiet().await;
}

/// `Writer::memberlist_secret`: GET 404 creates the Secret with a 128-byte `secretkey`
/// (base64 in JSON) and returns true; GET 200 creates nothing and returns false; a create
/// that loses the race (409) returns false.
pub(super) async fn writer_memberlist_secret(log: &Log) {
    let (client, mut api) = mock_client(log);
    let writer = Writer::new(client, NS, "controller-0");
    let secrets = "/api/v1/namespaces/metallb-system/secrets";
    let created = drive(writer.memberlist_secret("memberlist"), async {
        api.expect_get(&format!("{secrets}/memberlist"))
            .await
            .fail(404, "NotFound");
        let (seen, reply) = api.expect_create(secrets).await;
        let b = &seen.body;
        assert_eq!(b["apiVersion"], "v1");
        assert_eq!(b["kind"], "Secret");
        assert_eq!(
            b["metadata"],
            json!({"name": "memberlist", "namespace": NS})
        );
        let data = b["data"].as_object().unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["secretkey"]);
        // 128 bytes are 172 base64 characters with padding.
        assert_eq!(data["secretkey"].as_str().unwrap().len(), 172);
        let secret: Secret = serde_json::from_value(b.clone()).unwrap();
        let key = &secret.data.as_ref().unwrap()["secretkey"].0;
        assert_eq!(key.len(), 128);
        assert!(key.iter().any(|b| *b != 0), "the key is random");
        reply.created(&stored(b, "1"));
    })
    .await
    .unwrap();
    assert!(created);
    let existing = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "memberlist", "namespace": NS, "resourceVersion": "1"},
        "data": {"secretkey": "c2VjcmV0"},
    });
    let created = drive(writer.memberlist_secret("memberlist"), async {
        api.expect_get(&format!("{secrets}/memberlist"))
            .await
            .ok(&existing);
    })
    .await
    .unwrap();
    assert!(!created);
    let created = drive(writer.memberlist_secret("memberlist"), async {
        api.expect_get(&format!("{secrets}/memberlist"))
            .await
            .fail(404, "NotFound");
        api.expect_create(secrets)
            .await
            .1
            .fail(409, "AlreadyExists");
    })
    .await
    .unwrap();
    assert!(!created);
    api.assert_quiet().await;
}
