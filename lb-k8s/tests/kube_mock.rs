//! Tests of the controller's Kubernetes I/O (`lb_k8s::runtime`) against kube's mocked API
//! service (`tower-test`): the [`Writer`], the lease [`Elector`], the [`Engine`] and the
//! reflectors of [`Stores::start`] talk to a scripted API server that checks every request
//! (method, path, query, content type, JSON body) in order and answers the way the real one
//! would (the object, or a `Status` with the HTTP code). A missing, extra or different request
//! fails the test; every wait is bounded.
//!
//! The same scenarios, replayed into one shared log, feed the RBAC checks: every
//! (verb, group, resource) the controller uses must be granted to its ServiceAccount by
//! `deploy/rbac.yaml`, and every grant of its ClusterRole and Role must be used (least
//! privilege).
//!
//! Only documentation prefixes are used for IPs (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, Store, store::Writer as StoreWriter};
use kube::runtime::watcher;
use lb_core::ServiceKey;
use lb_k8s::controller::{ServiceUpdate, Settings};
use lb_k8s::crd::{IPAddressPool, IPAddressPoolStatus};
use lb_k8s::events;
use lb_k8s::runtime::http::Encode;
use lb_k8s::runtime::lease::{Elector, LeaseSettings, Round};
use lb_k8s::runtime::metrics::Metrics;
use lb_k8s::runtime::writer::Writer;
use lb_k8s::runtime::{Engine, Stores, Trigger};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tower_test::mock;

/// MetalLB's namespace.
const NS: &str = "metallb-system";
/// The longest wait for one request or one answer.
const WAIT: Duration = Duration::from_secs(10);
/// How long a test listens for a request that must not come.
const QUIET: Duration = Duration::from_millis(200);
/// The wall time the lease tests write, and its `MicroTime` form.
const WALL: &str = "2024-05-06T07:08:09.123456Z";
/// A later wall time.
const WALL_LATER: &str = "2024-05-06T07:08:14.654321Z";

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/metallb-system/leases";
const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/metallb-system/leases/lb-k8s-controller";
const CONFIGURATION_STATES: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates";
const CONFIGURATION_STATE: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/controller";
const CONFIGURATION_STATE_STATUS: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/controller/status";
const POOLS: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools";
const MERGE_PATCH: &str = "application/merge-patch+json";
/// The note of the `ClearAssignment` of Service default/a when pool `default` shrinks from
/// 203.0.113.0/28 to 203.0.113.8/29.
const CLEARED_BY_SHRINK: &str = "current IP [\"203.0.113.5\"] cleared: the current IPs are no longer allowed: service default/a: 203.0.113.5 is not in any address pool";

// ---------------------------------------------------------------------------------------------
// The scripted API server
// ---------------------------------------------------------------------------------------------

/// One request as the API server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: Method,
    path: String,
    /// The query string; `None` when empty.
    query: Option<String>,
    content_type: Option<String>,
    /// The JSON body; `Null` when empty.
    body: Value,
}

impl Seen {
    /// The value of query parameter `key`.
    fn param(&self, key: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then_some(v)
        })
    }
}

/// Every request of one or more scenarios.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn push(&self, seen: Seen) {
        self.0.lock().unwrap().push(seen);
    }

    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

/// The server side of a mocked client.
struct ApiServer {
    handle: mock::Handle<Request<Body>, Response<Body>>,
    log: Log,
}

/// A client whose requests go to the returned [`ApiServer`], logged into `log`.
fn mock_client(log: &Log) -> (Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (
        Client::new(service, "default"),
        ApiServer {
            handle,
            log: log.clone(),
        },
    )
}

/// The answer to one request.
struct Reply(mock::SendResponse<Response<Body>>);

impl Reply {
    fn send(self, code: u16, body: &Value) {
        self.0.send_response(
            Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        );
    }

    fn ok(self, body: &Value) {
        self.send(200, body);
    }

    fn created(self, body: &Value) {
        self.send(201, body);
    }

    /// A `Status` failure, as the API server sends it.
    fn fail(self, code: u16, reason: &str) {
        self.send(
            code,
            &json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "reason": reason,
                "code": code,
                "message": format!("mock API server: {reason}"),
            }),
        );
    }
}

impl ApiServer {
    /// The next request, within [`WAIT`].
    async fn next(&mut self) -> (Seen, Reply) {
        let (request, send) = timeout(WAIT, self.handle.next_request())
            .await
            .expect("the expected request did not come")
            .expect("the client is gone");
        let (parts, body) = request.into_parts();
        let bytes = timeout(WAIT, body.collect_bytes())
            .await
            .expect("the request body did not come")
            .expect("a readable request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        let seen = Seen {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts
                .uri
                .query()
                .filter(|q| !q.is_empty())
                .map(String::from),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string()),
            body,
        };
        self.log.push(seen.clone());
        (seen, Reply(send))
    }

    /// The next request, which must be `method path`.
    async fn expect(&mut self, method: Method, path: &str) -> (Seen, Reply) {
        let (seen, reply) = self.next().await;
        assert_eq!(
            (&seen.method, seen.path.as_str()),
            (&method, path),
            "unexpected request: {seen:#?}"
        );
        (seen, reply)
    }

    /// The next request, which must be a GET of one object without query.
    async fn expect_get(&mut self, path: &str) -> Reply {
        let (seen, reply) = self.expect(Method::GET, path).await;
        assert_eq!(seen.query, None, "{seen:#?}");
        assert_eq!(seen.body, Value::Null, "{seen:#?}");
        reply
    }

    /// The next request, which must be a JSON create (POST) into `path`.
    async fn expect_create(&mut self, path: &str) -> (Seen, Reply) {
        let (seen, reply) = self.expect(Method::POST, path).await;
        assert_eq!(seen.query, None, "{seen:#?}");
        assert_eq!(seen.content_type.as_deref(), Some("application/json"));
        (seen, reply)
    }

    /// The next request, which must be a JSON replace (PUT) of `path`.
    async fn expect_replace(&mut self, path: &str) -> (Seen, Reply) {
        let (seen, reply) = self.expect(Method::PUT, path).await;
        assert_eq!(seen.query, None, "{seen:#?}");
        assert_eq!(seen.content_type.as_deref(), Some("application/json"));
        (seen, reply)
    }

    /// The next request, which must be a JSON merge patch of `path` with exactly `body`.
    async fn expect_merge_patch(&mut self, path: &str, body: &Value) -> Reply {
        let (seen, reply) = self.expect_patch(path).await;
        assert_eq!(&seen.body, body, "body of the patch of {path}");
        reply
    }

    /// The next request, which must be a JSON merge patch of `path`.
    async fn expect_patch(&mut self, path: &str) -> (Seen, Reply) {
        let (seen, reply) = self.expect(Method::PATCH, path).await;
        assert_eq!(seen.query, None, "{seen:#?}");
        assert_eq!(seen.content_type.as_deref(), Some(MERGE_PATCH), "{seen:#?}");
        (seen, reply)
    }

    /// Fails if a request arrives within [`QUIET`].
    async fn assert_quiet(&mut self) {
        if let Ok(Some((r, _))) = timeout(QUIET, self.handle.next_request()).await {
            panic!("unexpected request {} {}", r.method(), r.uri());
        }
    }
}

/// Runs `op` (the code under test) and `script` (the API server's side) together; fails when
/// they do not both finish within a bounded time (an extra request the script does not answer
/// keeps `op` waiting).
async fn drive<T>(op: impl Future<Output = T>, script: impl Future<Output = ()>) -> T {
    timeout(WAIT + WAIT, async { tokio::join!(op, script).0 })
        .await
        .expect("timed out: the code under test made a request the script did not expect")
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A LoadBalancer Service holding `ingress`, with `annotations`.
fn service_json(
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

fn service(
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

fn pool_json(name: &str, addresses: &[&str], auto_assign: bool) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-pool-{name}"), "resourceVersion": "5"},
        "spec": {"addresses": addresses, "autoAssign": auto_assign},
    })
}

fn pool(name: &str, addresses: &[&str], auto_assign: bool) -> IPAddressPool {
    serde_json::from_value(pool_json(name, addresses, auto_assign)).unwrap()
}

/// The `ConfigurationState` the controller created, as the API server returns it: without
/// `spec`, which its CRD schema does not have (the API server prunes it).
fn configuration_state_json() -> Value {
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
fn assert_configuration_state_patch(
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
fn action_of(reason: &str) -> &'static str {
    match reason {
        "IPAllocated" | "AllocationFailed" | "AdditionalAssignFailed" => "Allocate",
        "ClearAssignment" => "Clear",
        _ => "Validate",
    }
}

/// Checks an `events.k8s.io/v1` Event created by the controller about Service `ns/name`: a
/// new event (no series), its action following from its reason.
fn assert_event(body: &Value, ns: &str, name: &str, type_: &str, reason: &str, note: &str) {
    assert_eq!(body["apiVersion"], "events.k8s.io/v1", "{body:#}");
    assert_eq!(body["kind"], "Event", "{body:#}");
    assert_eq!(body["type"], type_, "{body:#}");
    assert_eq!(body["reason"], reason, "{body:#}");
    assert_eq!(body["note"], note, "{body:#}");
    assert_eq!(body["action"], action_of(reason), "{body:#}");
    assert!(body.get("series").is_none(), "{body:#}");
    assert_eq!(
        body["reportingController"], "metallb-controller",
        "{body:#}"
    );
    assert_eq!(body["reportingInstance"], "controller-0", "{body:#}");
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

fn lease_settings(identity: &str) -> LeaseSettings {
    LeaseSettings {
        name: "lb-k8s-controller".into(),
        namespace: NS.into(),
        identity: identity.into(),
        duration: Duration::from_secs(15),
    }
}

/// A Lease as the API server returns it.
fn lease_json(holder: Option<&str>, renew: &str, transitions: i32, rv: &str) -> Value {
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
fn stored(body: &Value, rv: &str) -> Value {
    let mut out = body.clone();
    out["metadata"]["resourceVersion"] = json!(rv);
    out
}

fn wall(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A filled reflector cache of `objects`, as after the initial list.
fn cache<K>(objects: Vec<K>) -> (Store<K>, StoreWriter<K>)
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
fn stores(
    services: Vec<Service>,
    pools: Vec<IPAddressPool>,
) -> (Stores, StoreWriter<Service>, StoreWriter<IPAddressPool>) {
    let (services, services_writer) = cache(services);
    let (pools, pools_writer) = cache(pools);
    let stores = Stores {
        services,
        pools,
        l2_advertisements: cache(Vec::new()).0,
        bgp_advertisements: cache(Vec::new()).0,
        communities: cache(Vec::new()).0,
        bfd_profiles: cache(Vec::new()).0,
        peers: cache(Vec::new()).0,
        secrets: cache(Vec::new()).0,
        namespaces: cache(Vec::new()).0,
        nodes: cache(Vec::new()).0,
    };
    (stores, services_writer, pools_writer)
}

/// An engine of MetalLB's namespace, no `--lb-class`, one write at a time.
fn engine(client: Client, stores: Stores, metrics: &Arc<Metrics>) -> Engine {
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
fn assert_metric(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "metric line {line:?} missing from:\n{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios: each runs against its own mocked client and logs every request into `log`; the
// RBAC tests replay all of them.
// ---------------------------------------------------------------------------------------------

mod scenarios {
    use super::*;

    /// `Writer::service` with new IPs, pool annotation and an event: status subresource patch,
    /// then annotation patch, then the event, exactly.
    pub(super) async fn writer_service_writes_status_annotation_then_event(log: &Log) {
        let (client, mut api) = mock_client(log);
        let writer = Writer::new(client, NS, "controller-0");
        let svc_json = service_json("default", "web", "192.0.2.10", &[], &json!({}));
        let svc: Service = serde_json::from_value(svc_json.clone()).unwrap();
        let allocated = ip("203.0.113.10");
        let u = ServiceUpdate {
            key: ServiceKey::new("default", "web"),
            status: Some(vec![allocated]),
            pool_annotation: Some(Some("default".into())),
            events: vec![events::allocated(&[allocated])],
            retry: Vec::new(),
            error: None,
        };
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
            let (seen, reply) = api
                .expect_create("/apis/events.k8s.io/v1/namespaces/default/events")
                .await;
            assert_event(
                &seen.body,
                "default",
                "web",
                "Normal",
                "IPAllocated",
                "Assigned IP [\"203.0.113.10\"]",
            );
            reply.created(&stored(&seen.body, "7"));
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
        let u = ServiceUpdate {
            key: ServiceKey::new("default", "web"),
            status: Some(vec![allocated]),
            pool_annotation: Some(Some("default".into())),
            events: vec![events::allocated(&[allocated])],
            retry: Vec::new(),
            error: None,
        };
        let result = drive(writer.service(&u, &svc), async {
            api.expect_patch("/api/v1/namespaces/default/services/web/status")
                .await
                .1
                .fail(500, "InternalError");
        })
        .await;
        assert!(
            matches!(&result, Err(kube::Error::Api(s)) if s.code == 500),
            "{result:?}"
        );
        api.assert_quiet().await;
    }

    /// An annotation patch answered 404 (Service deleted meanwhile) fails the write: no event.
    pub(super) async fn writer_service_stops_at_a_failed_annotation_patch(log: &Log) {
        let (client, mut api) = mock_client(log);
        let writer = Writer::new(client, NS, "controller-0");
        let svc_json = service_json("default", "web", "192.0.2.10", &[], &json!({}));
        let svc: Service = serde_json::from_value(svc_json.clone()).unwrap();
        let allocated = ip("203.0.113.10");
        let u = ServiceUpdate {
            key: ServiceKey::new("default", "web"),
            status: Some(vec![allocated]),
            pool_annotation: Some(Some("default".into())),
            events: vec![events::allocated(&[allocated])],
            retry: Vec::new(),
            error: None,
        };
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
        assert!(
            matches!(&result, Err(kube::Error::Api(s)) if s.code == 404),
            "{result:?}"
        );
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
        assert!(
            matches!(&result, Err(kube::Error::Api(s)) if s.code == 404),
            "{result:?}"
        );
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
        let summary =
            "IPAddressPool/b: 203.0.113.0/28 overlaps with 203.0.113.0/24 of IPAddressPool/a";
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
        assert!(
            matches!(&result, Err(kube::Error::Api(s)) if s.code == 500),
            "{result:?}"
        );
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

    /// No Lease: it is created with us as holder, transitions 0, acquire and renew time = the
    /// wall time given; we lead until the renew deadline (2/3 of 15 s) passes.
    pub(super) async fn lease_created_when_missing(log: &Log) {
        let (client, mut api) = mock_client(log);
        let mut elector = Elector::new(client, lease_settings("a"));
        let now = Instant::now();
        let round = drive(elector.round(wall(WALL), now), async {
            api.expect_get(LEASE).await.fail(404, "NotFound");
            let (seen, reply) = api.expect_create(LEASES).await;
            assert_eq!(
                seen.body,
                json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": "lb-k8s-controller", "namespace": NS},
                    "spec": {
                        "holderIdentity": "a",
                        "leaseDurationSeconds": 15,
                        "acquireTime": WALL,
                        "renewTime": WALL,
                        "leaseTransitions": 0,
                    },
                })
            );
            reply.created(&stored(&seen.body, "1"));
        })
        .await
        .unwrap();
        assert_eq!(round, Round::Leader);
        assert!(elector.is_leader(now));
        assert!(elector.is_leader(now + Duration::from_millis(9_999)));
        assert!(!elector.is_leader(now + Duration::from_secs(10)));
    }

    /// Held by us: replaced (PUT) with the resourceVersion read, a new renew time, acquire
    /// time and transitions unchanged.
    pub(super) async fn lease_renewed_by_its_holder(log: &Log) {
        let (client, mut api) = mock_client(log);
        let mut elector = Elector::new(client, lease_settings("a"));
        let now = Instant::now();
        let current = lease_json(Some("a"), "2024-05-06T07:08:04.000000Z", 3, "7");
        let round = drive(elector.round(wall(WALL), now), async {
            api.expect_get(LEASE).await.ok(&current);
            let (seen, reply) = api.expect_replace(LEASE).await;
            let mut want = current.clone();
            want["spec"]["renewTime"] = json!(WALL);
            assert_eq!(seen.body, want);
            reply.ok(&stored(&seen.body, "8"));
        })
        .await
        .unwrap();
        assert_eq!(round, Round::Leader);
        assert!(elector.is_leader(now + Duration::from_secs(9)));
    }

    /// Held by b, freshly renewed: we follow without writing, even when b's renew time is far
    /// in the past by our wall clock (skew); the same record seen unchanged for a whole lease
    /// duration on our clock is taken over (holder a, transitions + 1).
    pub(super) async fn lease_taken_over_after_a_duration_unchanged(log: &Log) {
        let (client, mut api) = mock_client(log);
        let mut elector = Elector::new(client, lease_settings("a"));
        let now = Instant::now();
        // b's clock is an hour behind ours.
        let b = lease_json(Some("b"), "2024-05-06T06:08:00.000000Z", 2, "20");
        for offset in [0, 14] {
            let round = drive(
                elector.round(wall(WALL), now + Duration::from_secs(offset)),
                async {
                    api.expect_get(LEASE).await.ok(&b);
                },
            )
            .await
            .unwrap();
            assert_eq!(round, Round::Follower, "after {offset} s");
            assert!(!elector.is_leader(now + Duration::from_secs(offset)));
        }
        let later = now + Duration::from_secs(16);
        let round = drive(elector.round(wall(WALL_LATER), later), async {
            api.expect_get(LEASE).await.ok(&b);
            let (seen, reply) = api.expect_replace(LEASE).await;
            let mut want = b.clone();
            want["spec"]["holderIdentity"] = json!("a");
            want["spec"]["acquireTime"] = json!(WALL_LATER);
            want["spec"]["renewTime"] = json!(WALL_LATER);
            want["spec"]["leaseTransitions"] = json!(3);
            assert_eq!(seen.body, want);
            reply.ok(&stored(&seen.body, "21"));
        })
        .await
        .unwrap();
        assert_eq!(round, Round::Leader);
        assert!(elector.is_leader(later));
    }

    /// Held by b, who keeps renewing: every change restarts our count, so we never take over
    /// while b is alive, and do one duration after its last renewal.
    pub(super) async fn lease_of_a_renewing_holder_is_not_taken(log: &Log) {
        let (client, mut api) = mock_client(log);
        let mut elector = Elector::new(client, lease_settings("a"));
        let now = Instant::now();
        let first = lease_json(Some("b"), "2024-05-06T07:08:00.000000Z", 0, "30");
        let renewed = lease_json(Some("b"), "2024-05-06T07:08:10.000000Z", 0, "31");
        for (offset, seen_lease) in [(0, &first), (10, &renewed), (16, &renewed), (24, &renewed)] {
            let round = drive(
                elector.round(wall(WALL), now + Duration::from_secs(offset)),
                async {
                    api.expect_get(LEASE).await.ok(seen_lease);
                },
            )
            .await
            .unwrap();
            assert_eq!(round, Round::Follower, "after {offset} s");
        }
        let round = drive(
            elector.round(wall(WALL), now + Duration::from_secs(25)),
            async {
                api.expect_get(LEASE).await.ok(&renewed);
                let (seen, reply) = api.expect_replace(LEASE).await;
                assert_eq!(seen.body["spec"]["holderIdentity"], "a");
                assert_eq!(seen.body["spec"]["leaseTransitions"], 1);
                assert_eq!(seen.body["metadata"]["resourceVersion"], "31");
                reply.ok(&stored(&seen.body, "32"));
            },
        )
        .await
        .unwrap();
        assert_eq!(round, Round::Leader);
    }

    /// A released Lease (no holder) is taken over at once.
    pub(super) async fn lease_released_is_taken_at_once(log: &Log) {
        // Released by us (holder absent) or by client-go (holder "").
        for holder in [None, Some("")] {
            let (client, mut api) = mock_client(log);
            let mut elector = Elector::new(client, lease_settings("a"));
            let released = lease_json(holder, "2024-05-06T07:08:00.000000Z", 4, "40");
            let round = drive(elector.round(wall(WALL), Instant::now()), async {
                api.expect_get(LEASE).await.ok(&released);
                let (seen, reply) = api.expect_replace(LEASE).await;
                let mut want = released.clone();
                want["spec"]["holderIdentity"] = json!("a");
                want["spec"]["acquireTime"] = json!(WALL);
                want["spec"]["renewTime"] = json!(WALL);
                want["spec"]["leaseTransitions"] = json!(5);
                assert_eq!(seen.body, want, "holder {holder:?}");
                reply.ok(&stored(&seen.body, "41"));
            })
            .await
            .unwrap();
            assert_eq!(round, Round::Leader, "holder {holder:?}");
        }
    }

    /// Losing the race (409 on the PUT or on the create) makes us a follower, not an error;
    /// other failures are errors.
    pub(super) async fn lease_conflict_is_follower(log: &Log) {
        let (client, mut api) = mock_client(log);
        let mut elector = Elector::new(client, lease_settings("a"));
        let now = Instant::now();
        let mine = lease_json(Some("a"), "2024-05-06T07:08:04.000000Z", 0, "7");
        let round = drive(elector.round(wall(WALL), now), async {
            api.expect_get(LEASE).await.ok(&mine);
            api.expect_replace(LEASE).await.1.fail(409, "Conflict");
        })
        .await
        .unwrap();
        assert_eq!(round, Round::Follower);
        assert!(!elector.is_leader(now));
        let round = drive(elector.round(wall(WALL), now), async {
            api.expect_get(LEASE).await.fail(404, "NotFound");
            api.expect_create(LEASES).await.1.fail(409, "AlreadyExists");
        })
        .await
        .unwrap();
        assert_eq!(round, Round::Follower);
        let result = drive(elector.round(wall(WALL), now), async {
            api.expect_get(LEASE).await.fail(500, "InternalError");
        })
        .await;
        assert!(
            matches!(&result, Err(kube::Error::Api(s)) if s.code == 500),
            "{result:?}"
        );
    }

    /// `release` as holder: GET, then PUT without holder, duration 1 s, renew time = wall,
    /// with the resourceVersion read. Afterwards (not leading any more) and for a replica that
    /// never led: no request at all.
    pub(super) async fn lease_release(log: &Log) {
        let (client, mut api) = mock_client(log);
        let mut elector = Elector::new(client, lease_settings("a"));
        let now = Instant::now();
        drive(elector.round(wall(WALL), now), async {
            api.expect_get(LEASE).await.fail(404, "NotFound");
            let (seen, reply) = api.expect_create(LEASES).await;
            reply.created(&stored(&seen.body, "1"));
        })
        .await
        .unwrap();
        let held = lease_json(Some("a"), WALL, 0, "9");
        drive(elector.release(wall(WALL_LATER)), async {
            api.expect_get(LEASE).await.ok(&held);
            let (seen, reply) = api.expect_replace(LEASE).await;
            let mut want = held.clone();
            want["spec"]
                .as_object_mut()
                .unwrap()
                .remove("holderIdentity");
            want["spec"]["leaseDurationSeconds"] = json!(1);
            want["spec"]["renewTime"] = json!(WALL_LATER);
            assert_eq!(seen.body, want);
            reply.ok(&stored(&seen.body, "10"));
        })
        .await
        .unwrap();
        assert!(!elector.is_leader(now));
        drive(elector.release(wall(WALL_LATER)), async {})
            .await
            .unwrap();
        let (client, mut other_api) = mock_client(log);
        let mut never = Elector::new(client, lease_settings("b"));
        drive(never.release(wall(WALL_LATER)), async {})
            .await
            .unwrap();
        api.assert_quiet().await;
        other_api.assert_quiet().await;
    }

    /// `release` when someone else took the Lease meanwhile: GET only, nothing written.
    pub(super) async fn lease_release_after_losing_it_writes_nothing(log: &Log) {
        let (client, mut api) = mock_client(log);
        let mut elector = Elector::new(client, lease_settings("a"));
        drive(elector.round(wall(WALL), Instant::now()), async {
            api.expect_get(LEASE).await.fail(404, "NotFound");
            let (seen, reply) = api.expect_create(LEASES).await;
            reply.created(&stored(&seen.body, "1"));
        })
        .await
        .unwrap();
        drive(elector.release(wall(WALL_LATER)), async {
            api.expect_get(LEASE)
                .await
                .ok(&lease_json(Some("b"), WALL_LATER, 1, "12"));
        })
        .await
        .unwrap();
        api.assert_quiet().await;
    }

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
            let (seen, reply) = api
                .expect_create("/apis/events.k8s.io/v1/namespaces/default/events")
                .await;
            assert_event(
                &seen.body,
                "default",
                "b",
                "Normal",
                "IPAllocated",
                &format!("Assigned IP [\"{b_ip}\"]"),
            );
            reply.created(&stored(&seen.body, "2"));

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
                &format!("Assigned IP [\"{new_ip}\"]"),
            );
            reply.created(&stored(&seen.body, "4"));
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
            let (seen, reply) = api
                .expect_create("/apis/events.k8s.io/v1/namespaces/default/events")
                .await;
            assert_event(
                &seen.body,
                "default",
                "b",
                "Normal",
                "IPAllocated",
                &format!("Assigned IP [{b_ip}]"),
            );
            reply.created(&stored(&seen.body, "5"));
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
}

macro_rules! scenario_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                scenarios::$name(&Log::default()).await;
            }
        )*

        /// Every scenario, one after the other, logging into `log`.
        async fn run_all(log: &Log) {
            $( scenarios::$name(log).await; )*
        }
    };
}

scenario_tests!(
    writer_service_writes_status_annotation_then_event,
    writer_service_clears_status_and_annotation,
    writer_service_stops_at_a_failed_status_patch,
    writer_service_stops_at_a_failed_annotation_patch,
    writer_service_ignores_a_refused_event,
    writer_service_every_event_is_created,
    writer_pool_status_patches_the_status_subresource,
    writer_configuration_state_created_then_valid,
    writer_configuration_state_invalid_when_present,
    writer_configuration_state_conflict_and_failure,
    writer_memberlist_secret,
    lease_created_when_missing,
    lease_renewed_by_its_holder,
    lease_taken_over_after_a_duration_unchanged,
    lease_of_a_renewing_holder_is_not_taken,
    lease_released_is_taken_at_once,
    lease_conflict_is_follower,
    lease_release,
    lease_release_after_losing_it_writes_nothing,
    engine_start_delete_pool_change_and_invalid_config,
    engine_retries_a_failed_service_write,
    // Last: its reflector tasks outlive it.
    reflectors_list_then_watch_every_kind,
);

// ---------------------------------------------------------------------------------------------
// Regressions: bugs these tests once documented
// ---------------------------------------------------------------------------------------------

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
    drive(engine.start(), async {
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
            .ok(&pool_json("default", &["203.0.113.0/28"], true));
    })
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

// ---------------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------------

/// One API access, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Access {
    verb: String,
    group: String,
    /// `resource` or `resource/subresource`.
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
}

/// The RBAC view of a request: GET of a collection is `list` (`watch` with `watch=true`), GET
/// of an object `get`, POST `create`, PATCH `patch`, PUT `update`, DELETE `delete`.
fn access(seen: &Seen) -> Access {
    let segments: Vec<&str> = seen.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => panic!("not a resource path: {seen:#?}"),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() => (Some((*ns).to_string()), r),
        r => (None, r),
    };
    let (resource, name, sub) = match rest {
        [r] => (*r, None, None),
        [r, n] => (*r, Some((*n).to_string()), None),
        [r, n, s] => (*r, Some((*n).to_string()), Some(*s)),
        _ => panic!("not a resource path: {seen:#?}"),
    };
    let verb = match (&seen.method, &name) {
        (&Method::GET, None) if seen.param("watch") == Some("true") => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PATCH, _) => "patch",
        (&Method::PUT, _) => "update",
        (&Method::DELETE, None) => "deletecollection",
        (&Method::DELETE, Some(_)) => "delete",
        _ => panic!("unexpected method: {seen:#?}"),
    };
    Access {
        verb: verb.into(),
        group: group.into(),
        resource: sub.map_or_else(|| resource.to_string(), |s| format!("{resource}/{s}")),
        namespace,
        name,
    }
}

/// The controller's rules from `deploy/rbac.yaml`: its ClusterRole's (everywhere) and its
/// Role's (in metallb-system), each checked to be bound to ServiceAccount
/// metallb-system/controller.
fn controller_rules() -> (Vec<PolicyRule>, Vec<PolicyRule>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let of_kind = |kind: &str| {
        documents
            .iter()
            .filter(move |d| d["kind"] == kind)
            .cloned()
            .collect::<Vec<Value>>()
    };
    let cluster_roles: Vec<ClusterRole> = of_kind("ClusterRole")
        .into_iter()
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    let roles: Vec<Role> = of_kind("Role")
        .into_iter()
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    let cluster_bindings: Vec<ClusterRoleBinding> = of_kind("ClusterRoleBinding")
        .into_iter()
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    let bindings: Vec<RoleBinding> = of_kind("RoleBinding")
        .into_iter()
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    let is_controller = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == "controller"
                && s.namespace.as_deref() == Some(NS)
        })
    };
    assert!(
        cluster_bindings
            .iter()
            .any(|b| b.role_ref.kind == "ClusterRole"
                && b.role_ref.name == "metallb-system:controller"
                && is_controller(&b.subjects)),
        "no ClusterRoleBinding of metallb-system:controller to ServiceAccount {NS}/controller"
    );
    assert!(
        bindings
            .iter()
            .any(|b| b.metadata.namespace.as_deref() == Some(NS)
                && b.role_ref.kind == "Role"
                && b.role_ref.name == "controller"
                && is_controller(&b.subjects)),
        "no RoleBinding of Role controller to ServiceAccount {NS}/controller"
    );
    let cluster = cluster_roles
        .into_iter()
        .find(|r| r.metadata.name.as_deref() == Some("metallb-system:controller"))
        .expect("ClusterRole metallb-system:controller")
        .rules
        .unwrap_or_default();
    let namespaced = roles
        .into_iter()
        .find(|r| {
            r.metadata.name.as_deref() == Some("controller")
                && r.metadata.namespace.as_deref() == Some(NS)
        })
        .expect("Role controller in metallb-system")
        .rules
        .unwrap_or_default();
    (cluster, namespaced)
}

fn listed(list: Option<&Vec<String>>, value: &str) -> bool {
    list.into_iter().flatten().any(|v| v == value || v == "*")
}

fn rule_allows(rule: &PolicyRule, a: &Access) -> bool {
    listed(rule.api_groups.as_ref(), &a.group)
        && listed(rule.resources.as_ref(), &a.resource)
        && listed(Some(&rule.verbs), &a.verb)
        && rule.resource_names.as_ref().is_none_or(|names| {
            names.is_empty() || a.name.as_ref().is_some_and(|n| names.contains(n))
        })
}

/// Every request of every scenario, the reflectors' included.
async fn recorded_accesses() -> BTreeSet<Access> {
    let log = Log::default();
    run_all(&log).await;
    log.all().iter().map(access).collect()
}

/// (verb, group, resource) for display.
fn triple(a: &Access) -> (String, String, String) {
    (a.verb.clone(), a.group.clone(), a.resource.clone())
}

/// Every request the controller makes is granted to its ServiceAccount.
#[tokio::test]
async fn rbac_grants_every_request_the_controller_makes() {
    let (cluster, namespaced) = controller_rules();
    let accesses = recorded_accesses().await;
    // The scenarios cover every kind of request the controller makes.
    for needed in [
        ("watch", "", "nodes"),
        ("patch", "", "services/status"),
        ("update", "coordination.k8s.io", "leases"),
        ("create", "", "secrets"),
        ("create", "events.k8s.io", "events"),
    ] {
        assert!(
            accesses
                .iter()
                .any(|a| triple(a) == (needed.0.into(), needed.1.into(), needed.2.into())),
            "the scenarios no longer exercise {needed:?}"
        );
    }
    // The ClusterRole applies everywhere, the Role only in metallb-system.
    let granted = |a: &Access| {
        cluster.iter().any(|r| rule_allows(r, a))
            || (a.namespace.as_deref() == Some(NS) && namespaced.iter().any(|r| rule_allows(r, a)))
    };
    let missing: BTreeSet<(String, String, String)> = accesses
        .iter()
        .filter(|a| !granted(a))
        .map(triple)
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/rbac.yaml does not grant the controller these (verb, apiGroup, resource) it uses: {missing:#?}"
    );
}

/// Grants the controller's ClusterRole or Role may carry although no request uses them, as
/// (verb, apiGroup, resource, why it stays). Empty: every grant is exercised above (the
/// Lease's get/create/update by the lease scenarios). Events are only ever created, never
/// patched (`writer_service_every_event_is_created`), so `patch` on events is not granted.
const TOLERATED_UNUSED: &[(&str, &str, &str, &str)] = &[];

/// Every (verb, group, resource) the controller's ClusterRole and Role grant is used by some
/// request (least privilege), except [`TOLERATED_UNUSED`].
#[tokio::test]
async fn rbac_grants_nothing_the_controller_does_not_use() {
    let (cluster, namespaced) = controller_rules();
    let accesses = recorded_accesses().await;
    let mut unused = BTreeSet::new();
    for (scope, rules) in [("ClusterRole", &cluster), ("Role", &namespaced)] {
        for rule in rules {
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        assert!(
                            group != "*" && resource != "*" && verb != "*",
                            "{scope} of the controller grants a wildcard: {rule:?}"
                        );
                        let used = accesses.iter().any(|a| {
                            &a.verb == verb
                                && &a.group == group
                                && &a.resource == resource
                                && (scope == "ClusterRole" || a.namespace.as_deref() == Some(NS))
                        });
                        let tolerated = TOLERATED_UNUSED.iter().any(|t| {
                            (t.0, t.1, t.2) == (verb.as_str(), group.as_str(), resource.as_str())
                        });
                        if !used && !tolerated {
                            unused.insert((scope, verb.clone(), group.clone(), resource.clone()));
                        }
                    }
                }
            }
        }
    }
    assert!(
        unused.is_empty(),
        "the controller's RBAC grants what no request uses: {unused:#?}"
    );
}
