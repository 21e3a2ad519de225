//! The speaker's API-server side: its objects, the unordered request sets of a status sync, and its reflectors' cluster.

use super::*;

/// The node the speaker scenarios run on; its Node has UID `uid-n1`.
pub(crate) const NODE: &str = "n1";
pub(crate) const L2_STATUSES: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses";
pub(crate) const BGP_STATUSES: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicebgpstatuses";
pub(crate) const DEFAULT_EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
pub(crate) const SPEAKER_STATE: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/speaker-n1";
pub(crate) const SPEAKER_STATE_STATUS: &str =
    "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/speaker-n1/status";
/// The label selector of the speaker's list of its status objects, as kube encodes it.
/// (kube starts it with `&`, as it does every list query.)
pub(crate) const NODE_SELECTOR_QUERY: &str = "&labelSelector=metallb.io%2Fnode%3Dn1";

/// A report of node n1 about Services of `default`: over layer 2 with their interfaces, over
/// BGP with their peers, failed with the interfaces the advertisements allow.
pub(crate) fn node_report(
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
pub(crate) fn node_n1() -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE, "uid": "uid-n1", "resourceVersion": "9"},
    }))
    .unwrap()
}

/// The speaker's Service cache: default/web (announced over layer 2) and default/db (over
/// BGP), both holding an IP.
pub(crate) fn speaker_services() -> Store<Service> {
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
pub(crate) fn status_kind(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Layer2 => ("ServiceL2Status", L2_STATUSES),
        Kind::Bgp => ("ServiceBGPStatus", BGP_STATUSES),
    }
}

/// The labels of node n1's status object about Service default/`service`.
pub(crate) fn status_labels(service: &str) -> Value {
    json!({
        "metallb.io/node": NODE,
        "metallb.io/service-name": service,
        "metallb.io/service-namespace": "default",
    })
}

/// Exactly what the speaker creates for Service default/`service` over `kind`: a generated
/// name, its labels, owned by Node n1, an empty `spec` (the content goes to `status`).
pub(crate) fn status_create_body(kind: Kind, service: &str) -> Value {
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
pub(crate) fn status_body(kind: Kind, service: &str, detail: &[&str]) -> Value {
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
pub(crate) fn status_object(kind: Kind, name: &str, labels: &Value, status: &Value) -> Value {
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
pub(crate) enum Answer {
    /// 200 with this body.
    Ok(Value),
    /// 201 with the request's body as stored, under the name given (a `generateName` create)
    /// or as sent (`None`: an event).
    Created(Option<String>),
    /// A `Status` failure with this code and reason.
    Fail(u16, &'static str),
}

impl Answer {
    pub(crate) fn send(self, seen: &Seen, reply: Reply) {
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
pub(crate) struct Expected {
    pub(crate) method: Method,
    pub(crate) path: String,
    /// Tells this request from others of the same method and path (events or creates about
    /// other Services): (JSON pointer into the body, value there).
    pub(crate) tell: Vec<(&'static str, Value)>,
    /// Checks the whole request: query, content type, body.
    pub(crate) check: Box<dyn Fn(&Seen)>,
    pub(crate) answer: Answer,
}

impl Expected {
    /// A JSON create (POST) into `path` of exactly `body`, answered as object `name`.
    pub(crate) fn create(path: &str, body: Value, name: &str) -> Self {
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
    pub(crate) fn merge_patch(path: &str, body: Value, stored: Value) -> Self {
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
    pub(crate) fn delete(path: &str) -> Self {
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
    pub(crate) fn speaker_event(
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
    pub(crate) fn answered(mut self, answer: Answer) -> Self {
        self.answer = answer;
        self
    }

    /// The same request, told from others by `value` at `pointer` in its body.
    pub(crate) fn telling(mut self, pointer: &'static str, value: Value) -> Self {
        self.tell.push((pointer, value));
        self
    }

    pub(crate) fn selects(&self, seen: &Seen) -> bool {
        seen.method == self.method
            && seen.path == self.path
            && self
                .tell
                .iter()
                .all(|(pointer, value)| seen.body.pointer(pointer) == Some(value))
    }

    /// Checks `seen`, which must be this request, and answers it.
    pub(crate) fn take(self, seen: &Seen, reply: Reply) {
        assert!(
            self.selects(seen),
            "expected {}, got {seen:#?}",
            self.describe()
        );
        (self.check)(seen);
        self.answer.send(seen, reply);
    }

    pub(crate) fn describe(&self) -> String {
        let tell: Vec<String> = self.tell.iter().map(|(p, v)| format!("{p}={v}")).collect();
        format!("{} {} {}", self.method, self.path, tell.join(" "))
    }
}

impl ApiServer {
    /// Answers the requests `expected` lists, in whatever order they come: each request must
    /// be one of those not yet seen (method, path, and for events reason and Service) and pass
    /// its checks; a request that is none of them fails, and so does one that does not come
    /// within [`WAIT`].
    pub(crate) async fn expect_unordered(&mut self, mut expected: Vec<Expected>) {
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
pub(crate) fn node_assigned(service: &str, protocol: &str) -> Expected {
    Expected::speaker_event(
        service,
        "Normal",
        "nodeAssigned",
        format!("announcing from node \"n1\" with protocol \"{protocol}\""),
    )
}

/// `announceFailed` about default/`service`, with the allowed `interfaces` as listed.
pub(crate) fn announce_failed(service: &str, interfaces: &str) -> Expected {
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
pub(crate) fn create_status(kind: Kind, service: &str, name: &str) -> Expected {
    Expected::create(status_kind(kind).1, status_create_body(kind, service), name)
        .telling("/metadata/labels/metallb.io~1service-name", json!(service))
}

/// The status merge patch of n1's `kind` object `name` about default/`service` with
/// `detail`, answered 200.
pub(crate) fn patch_status(kind: Kind, name: &str, service: &str, detail: &[&str]) -> Expected {
    let status = status_body(kind, service, detail);
    Expected::merge_patch(
        &format!("{}/{name}/status", status_kind(kind).1),
        json!({ "status": status }),
        status_object(kind, name, &status_labels(service), &status),
    )
}

/// The deletion of n1's `kind` object `name`.
pub(crate) fn delete_status(kind: Kind, name: &str) -> Expected {
    Expected::delete(&format!("{}/{name}", status_kind(kind).1))
}

/// The names of the objects a writer believes it owns, by (kind, Service name).
pub(crate) fn known_names(writer: &StatusWriter) -> Vec<(Kind, String, String)> {
    writer
        .known()
        .iter()
        .map(|((kind, key), owned)| (*kind, key.name.to_string(), owned.name.clone()))
        .collect()
}

/// The `ConfigurationState` `speaker-n1` as the API server returns it (no `spec`).
pub(crate) fn speaker_state_json() -> Value {
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

/// The speaker's reflectors: collection path, list apiVersion and kind.
pub(crate) const SPEAKER_KINDS: [(&str, &str, &str); 10] = [
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
pub(crate) const SERVICES: &str = "/api/v1/services";
pub(crate) const ENDPOINT_SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";
pub(crate) const NODES: &str = "/api/v1/nodes";

/// The cluster the speaker's reflectors list, by list kind: Services default/web
/// (LoadBalancer, 203.0.113.10), default/internal (ClusterIP, with a stale IP in its status)
/// and default/pending (LoadBalancer without IP); the EndpointSlices of web (ready on n1, not
/// ready on n2) and internal; Nodes n1 and n2; pool `default`; nothing else.
pub(crate) fn speaker_cluster(kind: &str) -> Vec<Value> {
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
pub(crate) async fn answer_speaker_lists(
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
pub(crate) async fn assert_ready(
    stores: &SpeakerStores,
    rx: &mut mpsc::UnboundedReceiver<Trigger>,
) {
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
pub(crate) fn endpoint_slice_json(service: &str, endpoints: &[(&str, &str, bool)]) -> Value {
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
pub(crate) fn node_json(name: &str, address: &str, heartbeat: &str) -> Value {
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
