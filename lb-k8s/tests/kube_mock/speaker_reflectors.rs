//! The speaker beyond the scenarios (the same kinds of requests: not replayed for RBAC): reflector wake-ups, status sync and adoption edge cases.

use super::*;

/// A watch event of `type_` about `object`.
fn watch_event(type_: &str, object: &Value) -> Value {
    json!({ "type": type_, "object": object })
}

/// `object` at resourceVersion `rv`.
fn at_rv(mut object: Value, rv: &str) -> Value {
    object["metadata"]["resourceVersion"] = json!(rv);
    object
}

/// The next request, which must be a watch of `path` from resourceVersion `rv`.
async fn expect_watch(api: &mut ApiServer, path: &str, rv: &str) -> Reply {
    let (seen, reply) = api.expect(Method::GET, path).await;
    assert_eq!(seen.param("watch"), Some("true"), "{seen:#?}");
    assert_eq!(seen.param("resourceVersion"), Some(rv), "{seen:#?}");
    assert_eq!(seen.param("allowWatchBookmarks"), Some("true"), "{seen:#?}");
    assert_eq!(seen.body, Value::Null, "{seen:#?}");
    reply
}

/// The next requests, which must be watches of the paths of `rvs` from their resourceVersion,
/// in any order; their replies by path.
async fn expect_watches(api: &mut ApiServer, rvs: &[(&str, &str)]) -> BTreeMap<String, Reply> {
    let mut out = BTreeMap::new();
    while out.len() < rvs.len() {
        let (seen, reply) = api.next().await;
        let Some((path, rv)) = rvs.iter().find(|(p, _)| *p == seen.path) else {
            panic!("unexpected request {seen:#?}");
        };
        assert_eq!(seen.method, Method::GET, "{seen:#?}");
        assert_eq!(seen.param("watch"), Some("true"), "{seen:#?}");
        assert_eq!(seen.param("resourceVersion"), Some(*rv), "{seen:#?}");
        assert!(
            out.insert((*path).to_string(), reply).is_none(),
            "{seen:#?}"
        );
    }
    out
}

/// Fails if a trigger comes within [`QUIET`].
async fn assert_no_trigger(rx: &mut mpsc::UnboundedReceiver<Trigger>, after: &str) {
    if let Ok(t) = timeout(QUIET, rx.recv()).await {
        panic!("{after} must wake nobody, but sent {t:?}");
    }
}

/// Exactly one `Config` trigger comes, within [`WAIT`].
async fn expect_one_trigger(rx: &mut mpsc::UnboundedReceiver<Trigger>, after: &str) {
    let t = timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{after} must wake the speaker, but sent no trigger"));
    assert_eq!(t, Some(Trigger::Config), "after {after}");
    assert_no_trigger(rx, after).await;
}

/// After the first list, only what the decision reads wakes the speaker: a Node heartbeat, a
/// change of a ClusterIP Service, a LoadBalancer's new resourceVersion or `kubectl apply`
/// copy and an EndpointSlice's new targets send no trigger (the caches still take them);
/// a LoadBalancer's new IP, a Node's `NetworkUnavailable` and an endpoint becoming ready
/// send one each, and `inputs()` shows them.
#[tokio::test]
async fn speaker_reflectors_wake_only_for_what_the_decision_reads() {
    let (client, mut api) = mock_client(&Log::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stores = SpeakerStores::start(&client, NS, &tx);
    let mut watches = answer_speaker_lists(&mut api, speaker_cluster).await;
    assert_ready(&stores, &mut rx).await;
    let options = PlanOptions {
        namespace: NS.into(),
        ..PlanOptions::default()
    };

    // Irrelevant changes; each stream then ends and its reflector watches on from there.
    let heartbeat = node_json("n1", "192.0.2.21", "2024-05-06T07:09:00Z");
    watches
        .remove(NODES)
        .unwrap()
        .watch_events(&[watch_event("MODIFIED", &at_rv(heartbeat, "2"))]);
    let mut internal = speaker_cluster("ServiceList")[1].clone();
    internal["spec"]["ports"][0]["port"] = json!(81);
    internal["metadata"]["labels"] = json!({"app": "internal"});
    let mut web = speaker_cluster("ServiceList")[0].clone();
    web["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Service\"}"});
    watches.remove(SERVICES).unwrap().watch_events(&[
        watch_event("MODIFIED", &at_rv(internal, "3")),
        watch_event("MODIFIED", &at_rv(web.clone(), "4")),
    ]);
    let mut slice = speaker_cluster("EndpointSliceList")[0].clone();
    slice["endpoints"][0]["targetRef"]["name"] = json!("web-n1-restarted");
    slice["endpoints"][0]["zone"] = json!("zone-a");
    watches
        .remove(ENDPOINT_SLICES)
        .unwrap()
        .watch_events(&[watch_event("MODIFIED", &at_rv(slice.clone(), "5"))]);
    let mut again = expect_watches(
        &mut api,
        &[(NODES, "2"), (SERVICES, "4"), (ENDPOINT_SLICES, "5")],
    )
    .await;
    assert_no_trigger(
        &mut rx,
        "a heartbeat, a ClusterIP change, an apply copy, new targets",
    )
    .await;
    let n1 = stores.nodes.get(&reflector::ObjectRef::new("n1")).unwrap();
    assert_eq!(n1.metadata.resource_version.as_deref(), Some("2"), "cached");
    let cached_web = stores
        .services
        .get(&reflector::ObjectRef::new("web").within("default"))
        .unwrap();
    assert_eq!(cached_web.metadata.resource_version.as_deref(), Some("4"));

    // A new IP for web.
    web["status"]["loadBalancer"]["ingress"] = json!([{"ip": "203.0.113.14"}]);
    again
        .remove(SERVICES)
        .unwrap()
        .watch_events(&[watch_event("MODIFIED", &at_rv(web, "6"))]);
    let _services = expect_watch(&mut api, SERVICES, "6").await;
    expect_one_trigger(&mut rx, "a new IP of a LoadBalancer").await;
    let inputs = stores
        .inputs(&options, &mut lb_metallb::grace::DeletionGrace::default())
        .0
        .unwrap();
    assert_eq!(inputs.services[0].view.ingress_ips, [ip("203.0.113.14")]);

    // n1's network goes down.
    let mut down = node_json("n1", "192.0.2.21", "2024-05-06T07:09:10Z");
    down["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "NetworkUnavailable", "status": "True", "reason": "NoRouteCreated"}));
    again
        .remove(NODES)
        .unwrap()
        .watch_events(&[watch_event("MODIFIED", &at_rv(down, "7"))]);
    let _nodes = expect_watch(&mut api, NODES, "7").await;
    expect_one_trigger(&mut rx, "NetworkUnavailable").await;
    let inputs = stores
        .inputs(&options, &mut lb_metallb::grace::DeletionGrace::default())
        .0
        .unwrap();
    assert!(inputs.node("n1").network_unavailable);

    // web's endpoint on n2 becomes ready.
    slice["endpoints"][1]["conditions"] =
        json!({"ready": true, "serving": true, "terminating": false});
    again
        .remove(ENDPOINT_SLICES)
        .unwrap()
        .watch_events(&[watch_event("MODIFIED", &at_rv(slice, "8"))]);
    let _slices = expect_watch(&mut api, ENDPOINT_SLICES, "8").await;
    expect_one_trigger(&mut rx, "an endpoint becoming ready").await;
    let inputs = stores
        .inputs(&options, &mut lb_metallb::grace::DeletionGrace::default())
        .0
        .unwrap();
    assert!(inputs.services[0].endpoints.iter().all(|e| e.usable));
    api.assert_quiet().await;
}

/// A Node deleted while the Nodes watch was down (the watch expires, 410, and the reflector
/// lists again without it) and then registered again unchanged is new to the speaker: its
/// return must wake it like any other change. (The reflector remembers what it last saw of
/// each object to skip heartbeats; a new list must not leave it remembering objects the list
/// no longer has.)
#[tokio::test]
async fn speaker_reflectors_wake_for_a_node_back_after_a_new_list() {
    let (client, mut api) = mock_client(&Log::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stores = SpeakerStores::start(&client, NS, &tx);
    let mut watches = answer_speaker_lists(&mut api, speaker_cluster).await;
    assert_ready(&stores, &mut rx).await;

    watches.remove(NODES).unwrap().watch_events(&[watch_event(
        "ERROR",
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "too old resource version: 1 (10)",
            "reason": "Expired",
            "code": 410,
        }),
    )]);
    // After its backoff, the reflector lists the Nodes again: n1 is gone.
    let (seen, reply) = api.expect(Method::GET, NODES).await;
    assert_eq!(seen.param("watch"), None, "a new list: {seen:#?}");
    assert_eq!(seen.param("limit"), Some("500"), "{seen:#?}");
    reply.ok(&json!({
        "apiVersion": "v1",
        "kind": "NodeList",
        "metadata": {"resourceVersion": "10"},
        "items": [at_rv(node_json("n2", "192.0.2.22", "2024-05-06T07:08:00Z"), "9")],
    }));
    let watch = expect_watch(&mut api, NODES, "10").await;
    expect_one_trigger(&mut rx, "a new list of the Nodes").await;
    assert!(stores.nodes.get(&reflector::ObjectRef::new("n1")).is_none());

    // n1 registers again, as it was.
    let back = node_json("n1", "192.0.2.21", "2024-05-06T07:20:00Z");
    watch.watch_events(&[watch_event("ADDED", &at_rv(back, "11"))]);
    let _watch = expect_watch(&mut api, NODES, "11").await;
    assert!(
        stores.nodes.get(&reflector::ObjectRef::new("n1")).is_some(),
        "the cache has n1 again"
    );
    let options = PlanOptions {
        namespace: NS.into(),
        ..PlanOptions::default()
    };
    assert_eq!(
        stores
            .inputs(&options, &mut lb_metallb::grace::DeletionGrace::default())
            .0
            .unwrap()
            .nodes
            .len(),
        2
    );
    expect_one_trigger(
        &mut rx,
        "Node n1 coming back after a new list that lacked it",
    )
    .await;
    api.assert_quiet().await;
}

/// A status patch answered 404 leaves a Service the report announces without its object:
/// `sync` must not report success then. Either it creates the object again at once, or it
/// returns false so that its caller retries (`write_statuses` syncs again only on a new
/// report or, after a false, on its retry tick; a report that does not change would leave
/// the object missing for good).
#[tokio::test]
async fn status_sync_is_not_done_while_a_wanted_object_is_missing() {
    let (client, mut api) = mock_client(&Log::default());
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
    let mut recreated = false;
    let ok = drive(writer.sync(&moved, &services, Some(&node)), async {
        api.expect_unordered(vec![
            patch_status(Kind::Layer2, "l2-first", "web", &["eth1"])
                .answered(Answer::Fail(404, "NotFound")),
        ])
        .await;
        // Re-created within the same sync: fine too.
        if let Some((seen, reply)) = api.next_within(QUIET).await {
            create_status(Kind::Layer2, "web", "l2-second").take(&seen, reply);
            api.expect_unordered(vec![patch_status(
                Kind::Layer2,
                "l2-second",
                "web",
                &["eth1"],
            )])
            .await;
            recreated = true;
        }
    })
    .await;
    assert_eq!(
        ok, recreated,
        "the status patch of l2-first was answered 404, so default/web has no ServiceL2Status \
         (re-created in the same sync: {recreated}); sync returned {ok}, and a caller told \
         `true` never retries"
    );
}

/// `adopt` is retried when a list fails (`write_statuses` calls it again on its retry tick,
/// with the same writer). The retry lists the layer-2 objects again and finds the one it
/// adopted the first time: that is the object it owns, not a duplicate to delete (the writer
/// would go on believing it exists, and never create it again).
#[tokio::test]
async fn status_adopt_retried_after_a_failed_list_keeps_what_it_adopted() {
    let (client, mut api) = mock_client(&Log::default());
    let mut writer = StatusWriter::new(client, NS, NODE, NODE);
    let web_status = status_body(Kind::Layer2, "web", &["eth0"]);
    let l2_list = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ServiceL2StatusList",
        "metadata": {"resourceVersion": "30"},
        "items": [status_object(Kind::Layer2, "l2-aaaaa", &status_labels("web"), &web_status)],
    });
    let result = drive(writer.adopt(), async {
        let (seen, reply) = api.expect(Method::GET, L2_STATUSES).await;
        assert_eq!(
            seen.query.as_deref(),
            Some(NODE_SELECTOR_QUERY),
            "{seen:#?}"
        );
        reply.ok(&l2_list);
        let (seen, reply) = api.expect(Method::GET, BGP_STATUSES).await;
        assert_eq!(
            seen.query.as_deref(),
            Some(NODE_SELECTOR_QUERY),
            "{seen:#?}"
        );
        reply.fail(500, "InternalError");
    })
    .await;
    assert_api_error(&result, 500);
    drive(writer.adopt(), async {
        let (seen, reply) = api.expect(Method::GET, L2_STATUSES).await;
        assert_eq!(
            seen.query.as_deref(),
            Some(NODE_SELECTOR_QUERY),
            "{seen:#?}"
        );
        reply.ok(&l2_list);
        let (seen, reply) = api.next().await;
        assert_ne!(
            (&seen.method, seen.path.as_str()),
            (&Method::DELETE, format!("{L2_STATUSES}/l2-aaaaa").as_str()),
            "the retried adopt deletes l2-aaaaa, the object it adopted on its first try, as a \
             duplicate of itself"
        );
        assert_eq!(
            (&seen.method, seen.path.as_str()),
            (&Method::GET, BGP_STATUSES)
        );
        assert_eq!(
            seen.query.as_deref(),
            Some(NODE_SELECTOR_QUERY),
            "{seen:#?}"
        );
        reply.ok(&json!({
            "apiVersion": "metallb.io/v1beta1",
            "kind": "ServiceBGPStatusList",
            "metadata": {"resourceVersion": "30"},
            "items": [],
        }));
    })
    .await
    .unwrap();
    assert_eq!(
        known_names(&writer),
        [(Kind::Layer2, "web".into(), "l2-aaaaa".into())]
    );
    api.assert_quiet().await;
}

/// An API-server outage, then its return: the Services watch fails again and again (the other
/// watches stay open) and each retry comes within the 2 s cap (kube's default grows to 30 s);
/// back up, the API server says the resource version is gone (a 410 ERROR event, as it does
/// after a restart) and the reflector lists again at once, and watches on from the new list.
#[tokio::test]
#[allow(clippy::print_stderr)]
async fn after_an_outage_retries_stay_short_and_a_410_relists_at_once() {
    let (client, mut api) = mock_client(&Log::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stores = SpeakerStores::start(&client, NS, &tx);
    let mut watches = answer_speaker_lists(&mut api, speaker_cluster).await;
    assert_ready(&stores, &mut rx).await;

    // The Services watch ends; every new watch fails while the API server is down.
    watches.remove(SERVICES).unwrap().watch_events(&[]);
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    for retry in 0..6 {
        let reply = expect_watch(&mut api, SERVICES, "1").await;
        let waited = last.elapsed();
        longest = longest.max(waited);
        assert!(
            waited < Duration::from_millis(2500),
            "retry {retry} came after {waited:?}"
        );
        reply.fail(503, "ServiceUnavailable");
        last = Instant::now();
    }

    // Back, with the resource version gone.
    let gone = json!({
        "type": "ERROR",
        "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": "Expired", "code": 410, "message": "too old resource version: 1 (42)",
        },
    });
    expect_watch(&mut api, SERVICES, "1")
        .await
        .watch_events(&[gone]);
    let answered = Instant::now();
    let (seen, reply) = api.next().await;
    let waited = answered.elapsed();
    assert_eq!(
        (seen.path.as_str(), seen.param("watch")),
        (SERVICES, None),
        "a list must follow the 410: {seen:#?}"
    );
    assert!(
        waited < Duration::from_millis(500),
        "the list came {waited:?} after the 410"
    );
    eprintln!(
        "RESULT API outage: longest gap between watch retries {longest:?}; list {waited:?} after the 410"
    );
    reply.ok(&json!({
        "apiVersion": "v1",
        "kind": "ServiceList",
        "metadata": {"resourceVersion": "42"},
        "items": speaker_cluster("ServiceList"),
    }));
    expect_watch(&mut api, SERVICES, "42")
        .await
        .watch_events(&[]);
    drop(watches);
}
