//! Objects and assertions the scenarios share: Services, pools, Leases, caches, events.

use super::*;

pub(crate) fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A LoadBalancer Service holding `ingress`, with `annotations`.
pub(crate) fn service_json(
    namespace: &str,
    name: &str,
    cluster_ip: &str,
    ingress: &[&str],
    annotations: &Value,
) -> Value {
    let mut s = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("uid-{name}"),
            "resourceVersion": "100",
            "annotations": annotations,
        },
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        },
    });
    if !ingress.is_empty() {
        let list: Vec<Value> = ingress.iter().map(|ip| json!({ "ip": ip })).collect();
        s["status"] = json!({ "loadBalancer": { "ingress": list } });
    }
    s
}

pub(crate) fn service(
    namespace: &str,
    name: &str,
    cluster_ip: &str,
    ingress: &[&str],
    annotations: &Value,
) -> Service {
    serde_json::from_value(service_json(
        namespace,
        name,
        cluster_ip,
        ingress,
        annotations,
    ))
    .unwrap()
}

pub(crate) fn pool_json(name: &str, addresses: &[&str], auto_assign: bool) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-pool-{name}"), "resourceVersion": "5"},
        "spec": {"addresses": addresses, "autoAssign": auto_assign},
    })
}

pub(crate) fn pool(name: &str, addresses: &[&str], auto_assign: bool) -> IPAddressPool {
    serde_json::from_value(pool_json(name, addresses, auto_assign)).unwrap()
}

/// The `ConfigurationState` the controller created, as the API server returns it: without
/// `spec`, which its CRD schema does not have (the API server prunes it).
pub(crate) fn configuration_state_json() -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {
            "name": "controller",
            "namespace": NS,
            "resourceVersion": "3",
            "labels": {"metallb.io/component-type": "controller"},
        },
    })
}

/// Checks the `ConfigurationState` status patch: result, summary and the one condition.
pub(crate) fn assert_configuration_state_patch(
    body: &Value,
    result: &str,
    status: &str,
    reason: &str,
    message: &dyn Fn(&str) -> bool,
) {
    let s = &body["status"];
    assert_eq!(body.as_object().unwrap().len(), 1, "{body:#}");
    assert_eq!(s.as_object().unwrap().len(), 3, "{body:#}");
    assert_eq!(s["result"], result, "{body:#}");
    let summary = s["errorSummary"].as_str().unwrap();
    assert!(message(summary), "errorSummary {summary:?}");
    let conditions = s["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1, "{body:#}");
    let c = &conditions[0];
    assert_eq!(c["type"], "configReconcilerValid");
    assert_eq!(c["status"], status);
    assert_eq!(c["reason"], reason);
    assert_eq!(c["message"], summary);
    let time = c["lastTransitionTime"].as_str().unwrap();
    time.parse::<Timestamp>()
        .expect("lastTransitionTime is an RFC 3339 time");
    assert_eq!(c.as_object().unwrap().len(), 5, "{c:#}");
}

/// The `action` of an event with `reason`: what the controller did.
pub(crate) fn action_of(reason: &str) -> &'static str {
    match reason {
        "IPAllocated" | "AllocationFailed" | "AdditionalAssignFailed" => "Allocate",
        "ClearAssignment" => "Clear",
        _ => "Validate",
    }
}

/// Checks an `events.k8s.io/v1` Event created by the controller about Service `ns/name`: a
/// new event (no series), its action following from its reason.
pub(crate) fn assert_event(
    body: &Value,
    ns: &str,
    name: &str,
    type_: &str,
    reason: &str,
    note: &str,
) {
    let reporter = ("metallb-controller", "controller-0");
    assert_event_by(reporter, body, ns, name, type_, reason, note);
    assert_eq!(body["action"], action_of(reason), "{body:#}");
}

/// Checks an `events.k8s.io/v1` Event created by `reporter` (controller, instance) about
/// Service `ns/name`: a new event (no series); its action is left to the caller.
pub(crate) fn assert_event_by(
    reporter: (&str, &str),
    body: &Value,
    ns: &str,
    name: &str,
    type_: &str,
    reason: &str,
    note: &str,
) {
    assert_eq!(body["apiVersion"], "events.k8s.io/v1", "{body:#}");
    assert_eq!(body["kind"], "Event", "{body:#}");
    assert_eq!(body["type"], type_, "{body:#}");
    assert_eq!(body["reason"], reason, "{body:#}");
    assert_eq!(body["note"], note, "{body:#}");
    assert!(body.get("series").is_none(), "{body:#}");
    assert_eq!(body["reportingController"], reporter.0, "{body:#}");
    assert_eq!(body["reportingInstance"], reporter.1, "{body:#}");
    assert_eq!(
        body["regarding"],
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "name": name,
            "namespace": ns,
            "uid": format!("uid-{name}"),
        }),
        "{body:#}"
    );
    assert_eq!(body["metadata"]["namespace"], ns, "{body:#}");
    let event_name = body["metadata"]["name"].as_str().unwrap();
    assert!(event_name.starts_with(&format!("{name}.")), "{event_name}");
    body["eventTime"]
        .as_str()
        .unwrap()
        .parse::<Timestamp>()
        .unwrap();
}

pub(crate) fn lease_settings(identity: &str) -> LeaseSettings {
    LeaseSettings {
        name: "lb-k8s-controller".into(),
        namespace: NS.into(),
        identity: identity.into(),
        duration: Duration::from_secs(15),
    }
}

/// A Lease as the API server returns it.
pub(crate) fn lease_json(holder: Option<&str>, renew: &str, transitions: i32, rv: &str) -> Value {
    let mut spec = json!({
        "leaseDurationSeconds": 15,
        "acquireTime": "2024-05-06T06:00:00.000000Z",
        "renewTime": renew,
        "leaseTransitions": transitions,
    });
    if let Some(h) = holder {
        spec["holderIdentity"] = json!(h);
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lb-k8s-controller", "namespace": NS, "resourceVersion": rv},
        "spec": spec,
    })
}

/// `body` as the API server stores it: with a new resourceVersion.
pub(crate) fn stored(body: &Value, rv: &str) -> Value {
    let mut out = body.clone();
    out["metadata"]["resourceVersion"] = json!(rv);
    out
}

pub(crate) fn wall(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A filled reflector cache of `objects`, as after the initial list.
pub(crate) fn cache<K>(objects: Vec<K>) -> (Store<K>, StoreWriter<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (reader, writer)
}

/// Caches holding `services` and `pools` and nothing else; the writers of the first two.
pub(crate) fn stores(
    services: Vec<Service>,
    pools: Vec<IPAddressPool>,
) -> (Stores, StoreWriter<Service>, StoreWriter<IPAddressPool>) {
    let (services, services_writer) = cache(services);
    let (pools, pools_writer) = cache(pools);
    let stores = Stores {
        services,
        config: ConfigStores {
            pools,
            l2_advertisements: cache(Vec::new()).0,
            bgp_advertisements: cache(Vec::new()).0,
            communities: cache(Vec::new()).0,
            bfd_profiles: cache(Vec::new()).0,
            peers: cache(Vec::new()).0,
            secrets: cache(Vec::new()).0,
        },
        namespaces: cache(Vec::new()).0,
        nodes: cache(Vec::new()).0,
    };
    (stores, services_writer, pools_writer)
}

/// An engine of MetalLB's namespace, no `--lb-class`, one write at a time.
pub(crate) fn engine(client: Client, stores: Stores, metrics: &Arc<Metrics>) -> Engine {
    let settings = Settings {
        namespace: NS.into(),
        lb_class: None,
    };
    Engine::new(
        settings,
        stores,
        Writer::new(client, NS, "controller-0"),
        Arc::clone(metrics),
        1,
    )
}

/// One line of the OpenMetrics text, `name{labels} value`, must be present.
pub(crate) fn assert_metric(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "metric line {line:?} missing from:\n{text}"
    );
}

/// The collection the controller's Events about Services of `default` go to.
const DEFAULT_NS_EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

/// An update of Service `default/name` that sets `ip` from `pool`, with the `IPAllocated`
/// event: what a fresh allocation writes.
pub(crate) fn update_allocating(name: &str, ip: IpAddr, pool: &str) -> ServiceUpdate {
    ServiceUpdate {
        key: ServiceKey::new("default", name),
        status: Some(vec![ip]),
        pool_annotation: Some(Some(pool.into())),
        events: vec![events::allocated(&[ip])],
        retry: Vec::new(),
        error: None,
    }
}

/// Fails unless `result` is an API error with HTTP status `code`.
pub(crate) fn assert_api_error<T: std::fmt::Debug>(result: &Result<T, kube::Error>, code: u16) {
    assert!(
        matches!(result, Err(kube::Error::Api(s)) if s.code == code),
        "{result:?}"
    );
}

impl ApiServer {
    /// The next request, which must create the controller's Event (see [`assert_event`])
    /// about Service `default/name`; answered as stored with resourceVersion `rv`.
    pub(crate) async fn expect_event(
        &mut self,
        name: &str,
        type_: &str,
        reason: &str,
        note: &str,
        rv: &str,
    ) {
        let (seen, reply) = self.expect_create(DEFAULT_NS_EVENTS).await;
        assert_event(&seen.body, "default", name, type_, reason, note);
        reply.created(&stored(&seen.body, rv));
    }
}

/// The API server's side of `Engine::start` when the ConfigurationState exists, nothing is
/// to be written for the Services, and one pool `default` of `addresses` (auto-assign) gets
/// its status.
pub(crate) async fn answer_start_with_one_pool(api: &mut ApiServer, addresses: &[&str]) {
    api.expect_get(CONFIGURATION_STATE)
        .await
        .ok(&configuration_state_json());
    api.expect_patch(CONFIGURATION_STATE_STATUS)
        .await
        .1
        .ok(&configuration_state_json());
    api.expect_patch(&format!("{POOLS}/default/status"))
        .await
        .1
        .ok(&pool_json("default", addresses, true));
}
