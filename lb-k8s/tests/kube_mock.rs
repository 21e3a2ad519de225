//! Tests of the controller's Kubernetes I/O (`lb_k8s::controller`) against kube's mocked API
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
//! The speaker's side is tested the same way, with scenarios and an RBAC log of its own: its
//! [`StatusWriter`] (adopting, creating, patching and deleting its `ServiceL2Status` /
//! `ServiceBGPStatus` objects, the `nodeAssigned` / `announceFailed` events; the writes of one
//! sync run concurrently, so the script accepts them in any order), its `ConfigurationState`
//! `speaker-NODE`, and the reflectors of [`SpeakerStores::start`].
//!
//! Only documentation prefixes are used for IPs (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, Store, store::Writer as StoreWriter};
use kube::runtime::watcher;
use lb_core::ServiceKey;
use lb_k8s::controller::metrics::Metrics;
use lb_k8s::controller::{Engine, Stores};
use lb_k8s::http::Encode;
use lb_k8s::lease::{Elector, LeaseSettings, Round};
use lb_k8s::reflect::{ConfigStores, Trigger};
use lb_k8s::speaker::cluster::SpeakerStores;
use lb_k8s::speaker::status::StatusWriter;
use lb_k8s::writer::{Writer, configuration_state};
use lb_metallb::announce::EndpointState;
use lb_metallb::controller::{ServiceUpdate, Settings};
use lb_metallb::crd::{IPAddressPool, IPAddressPoolStatus};
use lb_metallb::events;
use lb_metallb::plan::PlanOptions;
use lb_metallb::speaker::status::{Kind, Owned, Report};
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

    /// 200 with a watch stream of `events` (one JSON object a line), then its end.
    fn watch_events(self, events: &[Value]) {
        let mut bytes = Vec::new();
        for e in events {
            bytes.extend(serde_json::to_vec(e).unwrap());
            bytes.push(b'\n');
        }
        self.0.send_response(
            Response::builder()
                .status(200)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(bytes))
                .unwrap(),
        );
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
        self.next_within(WAIT)
            .await
            .expect("the expected request did not come")
    }

    /// The next request, or `None` when none comes within `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<(Seen, Reply)> {
        let (request, send) = timeout(wait, self.handle.next_request())
            .await
            .ok()?
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
        Some((seen, Reply(send)))
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
    let reporter = ("metallb-controller", "controller-0");
    assert_event_by(reporter, body, ns, name, type_, reason, note);
    assert_eq!(body["action"], action_of(reason), "{body:#}");
}

/// Checks an `events.k8s.io/v1` Event created by `reporter` (controller, instance) about
/// Service `ns/name`: a new event (no series); its action is left to the caller.
fn assert_event_by(
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
    ($run_all:ident in $module:ident: $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                $module::$name(&Log::default()).await;
            }
        )*

        /// Every scenario of the module, one after the other, logging into `log`.
        async fn $run_all(log: &Log) {
            $( $module::$name(log).await; )*
        }
    };
}

scenario_tests!(
    run_all in scenarios:
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
// The speaker's API-server side: status objects, events, ConfigurationState, reflectors
// ---------------------------------------------------------------------------------------------

/// The node the speaker scenarios run on; its Node has UID `uid-n1`.
const NODE: &str = "n1";
const L2_STATUSES: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses";
const BGP_STATUSES: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicebgpstatuses";
const DEFAULT_EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const SPEAKER_STATE: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/speaker-n1";
const SPEAKER_STATE_STATUS: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/speaker-n1/status";
/// The label selector of the speaker's list of its status objects, as kube encodes it.
/// (kube starts it with `&`, as it does every list query.)
const NODE_SELECTOR_QUERY: &str = "&labelSelector=metallb.io%2Fnode%3Dn1";

/// A report of node n1 about Services of `default`: over layer 2 with their interfaces, over
/// BGP with their peers, failed with the interfaces the advertisements allow.
fn node_report(
    l2: &[(&str, &[&str])],
    bgp: &[(&str, &[&str])],
    failed: &[(&str, &[&str])],
) -> Report {
    let map = |entries: &[(&str, &[&str])]| -> BTreeMap<ServiceKey, Vec<String>> {
        entries
            .iter()
            .map(|(name, detail)| {
                (
                    ServiceKey::new("default", *name),
                    detail.iter().map(|d| (*d).to_string()).collect(),
                )
            })
            .collect()
    };
    Report {
        l2: map(l2),
        bgp: map(bgp),
        failed: map(failed),
    }
}

/// Node n1 as the speaker's Node cache holds it.
fn node_n1() -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE, "uid": "uid-n1", "resourceVersion": "9"},
    }))
    .unwrap()
}

/// The speaker's Service cache: default/web (announced over layer 2) and default/db (over
/// BGP), both holding an IP.
fn speaker_services() -> Store<Service> {
    cache(vec![
        service(
            "default",
            "web",
            "192.0.2.10",
            &["203.0.113.10"],
            &json!({}),
        ),
        service("default", "db", "192.0.2.11", &["203.0.113.11"], &json!({})),
    ])
    .0
}

/// The object kind and collection path of a status kind.
fn status_kind(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Layer2 => ("ServiceL2Status", L2_STATUSES),
        Kind::Bgp => ("ServiceBGPStatus", BGP_STATUSES),
    }
}

/// The labels of node n1's status object about Service default/`service`.
fn status_labels(service: &str) -> Value {
    json!({
        "metallb.io/node": NODE,
        "metallb.io/service-name": service,
        "metallb.io/service-namespace": "default",
    })
}

/// Exactly what the speaker creates for Service default/`service` over `kind`: a generated
/// name, its labels, owned by Node n1, an empty `spec` (the content goes to `status`).
fn status_create_body(kind: Kind, service: &str) -> Value {
    let (kind_name, _) = status_kind(kind);
    let prefix = match kind {
        Kind::Layer2 => "l2-",
        Kind::Bgp => "bgp-",
    };
    json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": kind_name,
        "metadata": {
            "generateName": prefix,
            "namespace": NS,
            "labels": status_labels(service),
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": "uid-n1"}],
        },
        "spec": {},
    })
}

/// The `status` node n1 writes about Service default/`service`: its interfaces (layer 2) or
/// peers (BGP).
fn status_body(kind: Kind, service: &str, detail: &[&str]) -> Value {
    let mut status = json!({"node": NODE, "serviceName": service, "serviceNamespace": "default"});
    match kind {
        Kind::Layer2 => {
            let interfaces: Vec<Value> = detail.iter().map(|i| json!({ "name": i })).collect();
            status["interfaces"] = json!(interfaces);
        }
        Kind::Bgp => status["peers"] = json!(detail),
    }
    status
}

/// A status object `name` as the API server stores it, with `labels` and `status` (none when
/// `Null`).
fn status_object(kind: Kind, name: &str, labels: &Value, status: &Value) -> Value {
    let (kind_name, _) = status_kind(kind);
    let mut o = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": kind_name,
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": format!("uid-{name}"),
            "resourceVersion": "20",
            "labels": labels,
        },
        "spec": {},
    });
    if !status.is_null() {
        o["status"] = status.clone();
    }
    o
}

/// What the scripted API server answers to one request of an unordered set.
enum Answer {
    /// 200 with this body.
    Ok(Value),
    /// 201 with the request's body as stored, under the name given (a `generateName` create)
    /// or as sent (`None`: an event).
    Created(Option<String>),
    /// A `Status` failure with this code and reason.
    Fail(u16, &'static str),
}

impl Answer {
    fn send(self, seen: &Seen, reply: Reply) {
        match self {
            Self::Ok(body) => reply.ok(&body),
            Self::Created(name) => {
                let mut body = stored(&seen.body, "11");
                if let Some(name) = name {
                    body["metadata"]["uid"] = json!(format!("uid-{name}"));
                    body["metadata"]["name"] = json!(name);
                }
                reply.created(&body);
            }
            Self::Fail(code, reason) => reply.fail(code, reason),
        }
    }
}

/// One request of a set whose order is free (the writes of one `StatusWriter::sync` run
/// concurrently, up to 16 at once).
struct Expected {
    method: Method,
    path: String,
    /// Tells this request from others of the same method and path (events or creates about
    /// other Services): (JSON pointer into the body, value there).
    tell: Vec<(&'static str, Value)>,
    /// Checks the whole request: query, content type, body.
    check: Box<dyn Fn(&Seen)>,
    answer: Answer,
}

impl Expected {
    /// A JSON create (POST) into `path` of exactly `body`, answered as object `name`.
    fn create(path: &str, body: Value, name: &str) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            tell: Vec::new(),
            check: Box::new(move |seen| {
                assert_eq!(seen.query, None, "{seen:#?}");
                assert_eq!(
                    seen.content_type.as_deref(),
                    Some("application/json"),
                    "{seen:#?}"
                );
                assert_eq!(seen.body, body, "body of the create into {}", seen.path);
            }),
            answer: Answer::Created(Some(name.into())),
        }
    }

    /// A JSON merge patch of `path` with exactly `body`, answered 200 with `stored`.
    fn merge_patch(path: &str, body: Value, stored: Value) -> Self {
        Self {
            method: Method::PATCH,
            path: path.into(),
            tell: Vec::new(),
            check: Box::new(move |seen| {
                assert_eq!(seen.query, None, "{seen:#?}");
                assert_eq!(seen.content_type.as_deref(), Some(MERGE_PATCH), "{seen:#?}");
                assert_eq!(seen.body, body, "body of the patch of {}", seen.path);
            }),
            answer: Answer::Ok(stored),
        }
    }

    /// A DELETE of `path` with default options, answered 200 with a `Success` status.
    fn delete(path: &str) -> Self {
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        Self {
            method: Method::DELETE,
            path: path.into(),
            tell: Vec::new(),
            check: Box::new(|seen| {
                assert_eq!(seen.query, None, "{seen:#?}");
                assert_eq!(
                    seen.content_type.as_deref(),
                    Some("application/json"),
                    "{seen:#?}"
                );
                assert_eq!(seen.body, json!({}), "{seen:#?}");
            }),
            answer: Answer::Ok(json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": "metallb.io"},
            })),
        }
    }

    /// An event of the speaker of n1 (`metallb-speaker`, action `Announce`) about Service
    /// default/`service`, answered 201.
    fn speaker_event(
        service: &str,
        type_: &'static str,
        reason: &'static str,
        note: String,
    ) -> Self {
        let name = service.to_string();
        Self {
            method: Method::POST,
            path: DEFAULT_EVENTS.into(),
            tell: vec![
                ("/reason", json!(reason)),
                ("/regarding/name", json!(service)),
            ],
            check: Box::new(move |seen| {
                assert_eq!(seen.query, None, "{seen:#?}");
                assert_eq!(
                    seen.content_type.as_deref(),
                    Some("application/json"),
                    "{seen:#?}"
                );
                let reporter = ("metallb-speaker", NODE);
                assert_event_by(reporter, &seen.body, "default", &name, type_, reason, &note);
                assert_eq!(seen.body["action"], "Announce", "{:#}", seen.body);
            }),
            answer: Answer::Created(None),
        }
    }

    /// The same request, answered `answer` instead.
    fn answered(mut self, answer: Answer) -> Self {
        self.answer = answer;
        self
    }

    /// The same request, told from others by `value` at `pointer` in its body.
    fn telling(mut self, pointer: &'static str, value: Value) -> Self {
        self.tell.push((pointer, value));
        self
    }

    fn selects(&self, seen: &Seen) -> bool {
        seen.method == self.method
            && seen.path == self.path
            && self
                .tell
                .iter()
                .all(|(pointer, value)| seen.body.pointer(pointer) == Some(value))
    }

    /// Checks `seen`, which must be this request, and answers it.
    fn take(self, seen: &Seen, reply: Reply) {
        assert!(
            self.selects(seen),
            "expected {}, got {seen:#?}",
            self.describe()
        );
        (self.check)(seen);
        self.answer.send(seen, reply);
    }

    fn describe(&self) -> String {
        let tell: Vec<String> = self.tell.iter().map(|(p, v)| format!("{p}={v}")).collect();
        format!("{} {} {}", self.method, self.path, tell.join(" "))
    }
}

impl ApiServer {
    /// Answers the requests `expected` lists, in whatever order they come: each request must
    /// be one of those not yet seen (method, path, and for events reason and Service) and pass
    /// its checks; a request that is none of them fails, and so does one that does not come
    /// within [`WAIT`].
    async fn expect_unordered(&mut self, mut expected: Vec<Expected>) {
        while !expected.is_empty() {
            let left: Vec<String> = expected.iter().map(Expected::describe).collect();
            let Some((seen, reply)) = self.next_within(WAIT).await else {
                panic!("these requests did not come: {left:#?}");
            };
            let Some(i) = expected.iter().position(|e| e.selects(&seen)) else {
                panic!("unexpected request {seen:#?}; still expected: {left:#?}");
            };
            expected.swap_remove(i).take(&seen, reply);
        }
    }
}

/// `nodeAssigned` about default/`service` over `protocol` (`layer2` or `bgp`).
fn node_assigned(service: &str, protocol: &str) -> Expected {
    Expected::speaker_event(
        service,
        "Normal",
        "nodeAssigned",
        format!("announcing from node \"n1\" with protocol \"{protocol}\""),
    )
}

/// `announceFailed` about default/`service`, with the allowed `interfaces` as listed.
fn announce_failed(service: &str, interfaces: &str) -> Expected {
    Expected::speaker_event(
        service,
        "Warning",
        "announceFailed",
        format!(
            "node \"n1\" has none of the interfaces the L2Advertisements allow ({interfaces}): not announced"
        ),
    )
}

/// The create of n1's `kind` object about default/`service`, answered as object `name`.
fn create_status(kind: Kind, service: &str, name: &str) -> Expected {
    Expected::create(status_kind(kind).1, status_create_body(kind, service), name)
        .telling("/metadata/labels/metallb.io~1service-name", json!(service))
}

/// The status merge patch of n1's `kind` object `name` about default/`service` with
/// `detail`, answered 200.
fn patch_status(kind: Kind, name: &str, service: &str, detail: &[&str]) -> Expected {
    let status = status_body(kind, service, detail);
    Expected::merge_patch(
        &format!("{}/{name}/status", status_kind(kind).1),
        json!({ "status": status }),
        status_object(kind, name, &status_labels(service), &status),
    )
}

/// The deletion of n1's `kind` object `name`.
fn delete_status(kind: Kind, name: &str) -> Expected {
    Expected::delete(&format!("{}/{name}", status_kind(kind).1))
}

/// The names of the objects a writer believes it owns, by (kind, Service name).
fn known_names(writer: &StatusWriter) -> Vec<(Kind, String, String)> {
    writer
        .known()
        .iter()
        .map(|((kind, key), owned)| (*kind, key.name.to_string(), owned.name.clone()))
        .collect()
}

/// The `ConfigurationState` `speaker-n1` as the API server returns it (no `spec`).
fn speaker_state_json() -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {
            "name": "speaker-n1",
            "namespace": NS,
            "resourceVersion": "4",
            "labels": {"metallb.io/component-type": "speaker", "metallb.io/node-name": NODE},
        },
    })
}

mod speaker_scenarios {
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
        let entries: Vec<(&str, &[&str])> =
            names.iter().map(|n| (n.as_str(), &["eth0"][..])).collect();
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
        let inputs = stores.inputs(&options).unwrap();
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
}

/// The speaker's reflectors: collection path, list apiVersion and kind.
const SPEAKER_KINDS: [(&str, &str, &str); 10] = [
    (SERVICES, "v1", "ServiceList"),
    (ENDPOINT_SLICES, "discovery.k8s.io/v1", "EndpointSliceList"),
    (NODES, "v1", "NodeList"),
    (POOLS, "metallb.io/v1beta1", "IPAddressPoolList"),
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
];
const SERVICES: &str = "/api/v1/services";
const ENDPOINT_SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";
const NODES: &str = "/api/v1/nodes";

/// The cluster the speaker's reflectors list, by list kind: Services default/web
/// (LoadBalancer, 203.0.113.10), default/internal (ClusterIP, with a stale IP in its status)
/// and default/pending (LoadBalancer without IP); the EndpointSlices of web (ready on n1, not
/// ready on n2) and internal; Nodes n1 and n2; pool `default`; nothing else.
fn speaker_cluster(kind: &str) -> Vec<Value> {
    match kind {
        "ServiceList" => {
            let mut internal = service_json(
                "default",
                "internal",
                "192.0.2.12",
                &["203.0.113.12"],
                &json!({}),
            );
            internal["spec"]["type"] = json!("ClusterIP");
            vec![
                service_json(
                    "default",
                    "web",
                    "192.0.2.10",
                    &["203.0.113.10"],
                    &json!({}),
                ),
                internal,
                service_json("default", "pending", "192.0.2.13", &[], &json!({})),
            ]
        }
        "EndpointSliceList" => vec![
            endpoint_slice_json(
                "web",
                &[("192.0.2.50", "n1", true), ("192.0.2.51", "n2", false)],
            ),
            endpoint_slice_json("internal", &[("192.0.2.52", "n1", true)]),
        ],
        "NodeList" => vec![
            node_json("n1", "192.0.2.21", "2024-05-06T07:08:00Z"),
            node_json("n2", "192.0.2.22", "2024-05-06T07:08:00Z"),
        ],
        "IPAddressPoolList" => vec![pool_json("default", &["203.0.113.0/28"], true)],
        _ => Vec::new(),
    }
}

/// Answers the first list (`limit=500`, no selector) of every speaker reflector with
/// `items(kind)` at resourceVersion 1, and takes its watch (from resourceVersion 1, with
/// bookmarks), which must come after its list. Returns the watches, unanswered, by path.
async fn answer_speaker_lists(
    api: &mut ApiServer,
    items: impl Fn(&str) -> Vec<Value>,
) -> BTreeMap<String, Reply> {
    let mut listed = BTreeSet::new();
    let mut watches = BTreeMap::new();
    while watches.len() < SPEAKER_KINDS.len() {
        let (seen, reply) = api.next().await;
        assert_eq!(seen.method, Method::GET, "{seen:#?}");
        assert_eq!(seen.body, Value::Null, "{seen:#?}");
        assert_eq!(seen.param("labelSelector"), None, "{seen:#?}");
        assert_eq!(seen.param("fieldSelector"), None, "{seen:#?}");
        let Some((_, api_version, kind)) = SPEAKER_KINDS.iter().find(|k| k.0 == seen.path) else {
            panic!("unexpected request {seen:#?}");
        };
        if seen.param("watch") == Some("true") {
            assert!(listed.contains(&seen.path), "watch before list: {seen:#?}");
            assert_eq!(seen.param("resourceVersion"), Some("1"), "{seen:#?}");
            assert_eq!(seen.param("allowWatchBookmarks"), Some("true"), "{seen:#?}");
            assert!(
                watches.insert(seen.path.clone(), reply).is_none(),
                "watched twice: {seen:#?}"
            );
        } else {
            // kube writes the list query as `&limit=500`.
            assert_eq!(seen.param("limit"), Some("500"), "{seen:#?}");
            assert_eq!(seen.param("watch"), None, "{seen:#?}");
            assert!(listed.insert(seen.path.clone()), "listed twice: {seen:#?}");
            reply.ok(&json!({
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"resourceVersion": "1"},
                "items": items(kind),
            }));
        }
    }
    let all: BTreeSet<String> = SPEAKER_KINDS.iter().map(|k| k.0.to_string()).collect();
    assert_eq!(listed, all);
    watches
}

/// Waits until the speaker's caches are ready and every kind has sent its one `Config`
/// trigger.
async fn assert_ready(stores: &SpeakerStores, rx: &mut mpsc::UnboundedReceiver<Trigger>) {
    timeout(WAIT, stores.wait_until_ready())
        .await
        .expect("the caches did not become ready")
        .unwrap();
    for n in 0..SPEAKER_KINDS.len() {
        let trigger = timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("trigger {n} of one per kind did not come"))
            .unwrap();
        assert_eq!(trigger, Trigger::Config);
    }
    assert!(rx.try_recv().is_err(), "one trigger per kind, no more");
}

/// An EndpointSlice of Service default/`service` with `endpoints` as (address, node, ready).
fn endpoint_slice_json(service: &str, endpoints: &[(&str, &str, bool)]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(address, node, ready)| {
            json!({
                "addresses": [address],
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
                "nodeName": node,
                "targetRef": {"kind": "Pod", "namespace": "default", "name": format!("{service}-{node}")},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service}-abcde"),
            "namespace": "default",
            "resourceVersion": "1",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// Node `name` with InternalIP `address`, Ready, with its last heartbeat at `heartbeat`.
fn node_json(name: &str, address: &str, heartbeat: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": format!("uid-{name}"),
            "resourceVersion": "1",
            "labels": {"kubernetes.io/hostname": name},
        },
        "status": {
            "addresses": [{"type": "InternalIP", "address": address}],
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": "2024-05-06T06:00:00Z",
            }],
        },
    })
}

scenario_tests!(
    run_all_speaker in speaker_scenarios:
    status_adopt_keeps_one_object_per_service,
    status_sync_creates_patches_and_deletes,
    status_sync_recreates_an_object_deleted_behind_its_back,
    status_sync_retries_failed_writes,
    status_announce_failed_event_without_l2_status,
    status_sync_bounds_writes_in_flight,
    speaker_configuration_state_created_then_valid,
    // Last: its reflector tasks outlive it.
    speaker_reflectors_list_then_watch_every_kind,
);

// ---------------------------------------------------------------------------------------------
// The speaker beyond the scenarios (the same kinds of requests: not replayed for RBAC)
// ---------------------------------------------------------------------------------------------

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
    let inputs = stores.inputs(&options).unwrap();
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
    let inputs = stores.inputs(&options).unwrap();
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
    let inputs = stores.inputs(&options).unwrap();
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
    assert_eq!(stores.inputs(&options).unwrap().nodes.len(), 2);
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
    assert!(
        matches!(&result, Err(kube::Error::Api(s)) if s.code == 500),
        "{result:?}"
    );
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
    rules_of("controller", "metallb-system:controller", "controller")
}

/// The rules of ServiceAccount metallb-system/`account` from `deploy/rbac.yaml`: those of
/// ClusterRole `cluster_role` (everywhere) and of Role `role` (in metallb-system), each
/// checked to be bound to that ServiceAccount.
fn rules_of(account: &str, cluster_role: &str, role: &str) -> (Vec<PolicyRule>, Vec<PolicyRule>) {
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
    let is_account = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount" && s.name == account && s.namespace.as_deref() == Some(NS)
        })
    };
    assert!(
        cluster_bindings
            .iter()
            .any(|b| b.role_ref.kind == "ClusterRole"
                && b.role_ref.name == cluster_role
                && is_account(&b.subjects)),
        "no ClusterRoleBinding of {cluster_role} to ServiceAccount {NS}/{account}"
    );
    assert!(
        bindings
            .iter()
            .any(|b| b.metadata.namespace.as_deref() == Some(NS)
                && b.role_ref.kind == "Role"
                && b.role_ref.name == role
                && is_account(&b.subjects)),
        "no RoleBinding of Role {role} to ServiceAccount {NS}/{account}"
    );
    let cluster = cluster_roles
        .into_iter()
        .find(|r| r.metadata.name.as_deref() == Some(cluster_role))
        .unwrap_or_else(|| panic!("ClusterRole {cluster_role}"))
        .rules
        .unwrap_or_default();
    let namespaced = roles
        .into_iter()
        .find(|r| {
            r.metadata.name.as_deref() == Some(role) && r.metadata.namespace.as_deref() == Some(NS)
        })
        .unwrap_or_else(|| panic!("Role {role} in {NS}"))
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

/// Every request of every controller scenario, the reflectors' included.
async fn recorded_accesses() -> BTreeSet<Access> {
    let log = Log::default();
    run_all(&log).await;
    log.all().iter().map(access).collect()
}

/// Every request of every speaker scenario, the reflectors' included, from a log of its own,
/// apart from the controller's.
async fn recorded_speaker_accesses() -> BTreeSet<Access> {
    let log = Log::default();
    run_all_speaker(&log).await;
    log.all().iter().map(access).collect()
}

/// (verb, group, resource) for display.
fn triple(a: &Access) -> (String, String, String) {
    (a.verb.clone(), a.group.clone(), a.resource.clone())
}

/// Fails unless `accesses` hold every (verb, group, resource) of `needed`: the scenarios
/// still exercise them.
fn assert_exercised(accesses: &BTreeSet<Access>, needed: &[(&str, &str, &str)]) {
    for needed in needed {
        assert!(
            accesses
                .iter()
                .any(|a| triple(a) == (needed.0.into(), needed.1.into(), needed.2.into())),
            "the scenarios no longer exercise {needed:?}"
        );
    }
}

/// The (verb, group, resource) of `accesses` that neither the ClusterRole's rules `cluster`
/// (everywhere) nor the Role's rules `namespaced` (in metallb-system only) grant.
fn not_granted(
    cluster: &[PolicyRule],
    namespaced: &[PolicyRule],
    accesses: &BTreeSet<Access>,
) -> BTreeSet<(String, String, String)> {
    let granted = |a: &Access| {
        cluster.iter().any(|r| rule_allows(r, a))
            || (a.namespace.as_deref() == Some(NS) && namespaced.iter().any(|r| rule_allows(r, a)))
    };
    accesses
        .iter()
        .filter(|a| !granted(a))
        .map(triple)
        .collect()
}

/// The grants of the ClusterRole's rules `cluster` and the Role's rules `namespaced` that no
/// access in `accesses` uses (a Role's grant only by an access in metallb-system), except
/// `tolerated`, as (scope, verb, apiGroup, resource). A wildcard grant fails.
fn unused_grants(
    cluster: &[PolicyRule],
    namespaced: &[PolicyRule],
    accesses: &BTreeSet<Access>,
    tolerated: &[(&str, &str, &str, &str)],
) -> BTreeSet<(&'static str, String, String, String)> {
    let mut unused = BTreeSet::new();
    for (scope, rules) in [("ClusterRole", cluster), ("Role", namespaced)] {
        for rule in rules {
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        assert!(
                            group != "*" && resource != "*" && verb != "*",
                            "{scope} grants a wildcard: {rule:?}"
                        );
                        let used = accesses.iter().any(|a| {
                            &a.verb == verb
                                && &a.group == group
                                && &a.resource == resource
                                && (scope == "ClusterRole" || a.namespace.as_deref() == Some(NS))
                        });
                        let is_tolerated = tolerated.iter().any(|t| {
                            (t.0, t.1, t.2) == (verb.as_str(), group.as_str(), resource.as_str())
                        });
                        if !used && !is_tolerated {
                            unused.insert((scope, verb.clone(), group.clone(), resource.clone()));
                        }
                    }
                }
            }
        }
    }
    unused
}

/// Every request the controller makes is granted to its ServiceAccount.
#[tokio::test]
async fn rbac_grants_every_request_the_controller_makes() {
    let (cluster, namespaced) = controller_rules();
    let accesses = recorded_accesses().await;
    // The scenarios cover every kind of request the controller makes.
    assert_exercised(
        &accesses,
        &[
            ("watch", "", "nodes"),
            ("patch", "", "services/status"),
            ("update", "coordination.k8s.io", "leases"),
            ("create", "", "secrets"),
            ("create", "events.k8s.io", "events"),
        ],
    );
    let missing = not_granted(&cluster, &namespaced, &accesses);
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
    let unused = unused_grants(&cluster, &namespaced, &accesses, TOLERATED_UNUSED);
    assert!(
        unused.is_empty(),
        "the controller's RBAC grants what no request uses: {unused:#?}"
    );
}

/// The speaker's rules from `deploy/rbac.yaml`: ClusterRole `metallb-system:speaker`
/// (everywhere) and Role `speaker` (in metallb-system), each checked to be bound to
/// ServiceAccount metallb-system/speaker.
fn speaker_rules() -> (Vec<PolicyRule>, Vec<PolicyRule>) {
    rules_of("speaker", "metallb-system:speaker", "speaker")
}

/// Every request the speaker makes (its reflectors, status objects, events and
/// `ConfigurationState`) is granted to its ServiceAccount; only Services, EndpointSlices,
/// Nodes and the Services' events are reached outside metallb-system.
#[tokio::test]
async fn rbac_grants_every_request_the_speaker_makes() {
    let (cluster, namespaced) = speaker_rules();
    let accesses = recorded_speaker_accesses().await;
    // The scenarios cover every kind of request the speaker makes.
    assert_exercised(
        &accesses,
        &[
            ("list", "", "services"),
            ("watch", "discovery.k8s.io", "endpointslices"),
            ("watch", "", "nodes"),
            ("watch", "", "secrets"),
            ("watch", "metallb.io", "bgppeers"),
            ("create", "events.k8s.io", "events"),
            ("list", "metallb.io", "servicel2statuses"),
            ("create", "metallb.io", "servicebgpstatuses"),
            ("patch", "metallb.io", "servicel2statuses/status"),
            ("delete", "metallb.io", "servicebgpstatuses"),
            ("get", "metallb.io", "configurationstates"),
            ("patch", "metallb.io", "configurationstates/status"),
        ],
    );
    for a in &accesses {
        let elsewhere = matches!(
            (a.group.as_str(), a.resource.as_str()),
            ("", "services" | "nodes")
                | ("discovery.k8s.io", "endpointslices")
                | ("events.k8s.io", "events")
        );
        assert!(
            elsewhere || a.namespace.as_deref() == Some(NS),
            "the speaker reaches outside {NS}: {a:?}"
        );
    }
    let missing = not_granted(&cluster, &namespaced, &accesses);
    assert!(
        missing.is_empty(),
        "deploy/rbac.yaml does not grant the speaker these (verb, apiGroup, resource) it uses: {missing:#?}"
    );
}

/// Every (verb, group, resource) the speaker's ClusterRole and Role grant is used by some
/// speaker request (least privilege); nothing is tolerated unused.
#[tokio::test]
async fn rbac_grants_nothing_the_speaker_does_not_use() {
    let (cluster, namespaced) = speaker_rules();
    let accesses = recorded_speaker_accesses().await;
    let unused = unused_grants(&cluster, &namespaced, &accesses, &[]);
    assert!(
        unused.is_empty(),
        "the speaker's RBAC grants what no request uses: {unused:#?}"
    );
}
