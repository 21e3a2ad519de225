//! Regressions: bugs these tests once documented.

use super::*;

/// The API server prunes `spec` from a `ConfigurationState` (its CRD schema has none), so the
/// objects it returns have no `spec`; the controller reads them, whether it found the object
/// or created it.
#[tokio::test]
async fn configuration_state_accepts_the_object_the_api_server_returns() {
    let log = Log::default();
    let (client, mut api) = mock_client(&log);
    let writer = Writer::new(client, NS, "controller-0");
    let returned = configuration_state_json();
    assert!(returned.get("spec").is_none(), "{returned:#}");
    // Present: GET 200, then the status patch.
    drive(writer.configuration_state(None, Timestamp::now()), async {
        api.expect_get(CONFIGURATION_STATE).await.ok(&returned);
        api.expect_patch(CONFIGURATION_STATE_STATUS)
            .await
            .1
            .ok(&returned);
    })
    .await
    .expect("reading the existing ConfigurationState");
    // Missing: GET 404, create, then the status patch.
    drive(writer.configuration_state(None, Timestamp::now()), async {
        api.expect_get(CONFIGURATION_STATE)
            .await
            .fail(404, "NotFound");
        api.expect_create(CONFIGURATION_STATES)
            .await
            .1
            .created(&returned);
        api.expect_patch(CONFIGURATION_STATE_STATUS)
            .await
            .1
            .ok(&returned);
    })
    .await
    .expect("creating the ConfigurationState");
    let patches = log
        .all()
        .iter()
        .filter(|s| s.path == CONFIGURATION_STATE_STATUS)
        .count();
    assert_eq!(patches, 2);
    api.assert_quiet().await;
}

/// A pool change that drops a Service's IP: `ClearAssignment` for the old IP (action
/// `Clear`) before `IPAllocated` for the new one, on the Service's next reconcile.
#[tokio::test]
async fn pool_change_dropping_an_ip_posts_clear_assignment() {
    let (client, mut api) = mock_client(&Log::default());
    let annotations = json!({"metallb.io/ip-allocated-from-pool": "default"});
    let a_json = service_json("default", "a", "192.0.2.10", &["203.0.113.5"], &annotations);
    let (stores, _services, mut pools) = stores(
        vec![serde_json::from_value(a_json.clone()).unwrap()],
        vec![pool("default", &["203.0.113.0/28"], true)],
    );
    let metrics = Arc::new(Metrics::new());
    let mut engine = engine(client, stores, &metrics);
    drive(
        engine.start(),
        answer_start_with_one_pool(&mut api, &["203.0.113.0/28"]),
    )
    .await;
    pools.apply_watcher_event(&watcher::Event::Apply(pool(
        "default",
        &["203.0.113.8/29"],
        true,
    )));
    drive(engine.process(vec![Trigger::Config]), async {
        let (seen, reply) = api
            .expect_patch("/api/v1/namespaces/default/services/a/status")
            .await;
        let new_ip = seen.body["status"]["loadBalancer"]["ingress"][0]["ip"].clone();
        reply.ok(&a_json);
        let (seen, reply) = api
            .expect_create("/apis/events.k8s.io/v1/namespaces/default/events")
            .await;
        assert_event(
            &seen.body,
            "default",
            "a",
            "Normal",
            "ClearAssignment",
            CLEARED_BY_SHRINK,
        );
        assert_eq!(seen.body["action"], "Clear", "{:#}", seen.body);
        reply.created(&stored(&seen.body, "3"));
        let (seen, reply) = api
            .expect_create("/apis/events.k8s.io/v1/namespaces/default/events")
            .await;
        assert_event(
            &seen.body,
            "default",
            "a",
            "Normal",
            "IPAllocated",
            &format!("Assigned IP [{new_ip}]"),
        );
        assert_eq!(seen.body["action"], "Allocate", "{:#}", seen.body);
        reply.created(&stored(&seen.body, "4"));
        api.expect_patch(&format!("{POOLS}/default/status"))
            .await
            .1
            .ok(&pool_json("default", &["203.0.113.8/29"], true));
    })
    .await;
    api.assert_quiet().await;
}
