//! The golden harness: a simulated cluster that applies every write as the API server would, the scenario format, and the fixtures the unit and property tests share.

use super::*;

pub(crate) const NAMESPACE: &str = "metallb-system";
pub(crate) const POOL_ANNOTATION: &str = "metallb.io/ip-allocated-from-pool";

pub(crate) fn settings(lb_class: Option<&str>) -> Settings {
    Settings {
        namespace: NAMESPACE.into(),
        lb_class: lb_class.map(String::from),
    }
}

pub(crate) fn key(text: &str) -> ServiceKey {
    text.parse().unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
}

// --- the simulated cluster ---------------------------------------------------------------

/// RFC 7386 JSON merge patch, as the API server applies `--type merge` patches.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(map) = target else {
        unreachable!()
    };
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Identity of an object: kind, namespace (empty when none) and name.
pub(crate) type ObjectId = (String, String, String);

pub(crate) fn object_id(v: &Value) -> ObjectId {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let kind = s("/kind");
    let mut ns = s("/metadata/namespace");
    if kind == "Service" && ns.is_empty() {
        ns = "default".into();
    }
    (kind, ns, s("/metadata/name"))
}

pub(crate) fn parse_id(text: &str) -> ObjectId {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [kind, name] => (kind.to_string(), String::new(), name.to_string()),
        [kind, ns, name] => (kind.to_string(), ns.to_string(), name.to_string()),
        _ => panic!("bad object {text:?}: expected Kind/name or Kind/namespace/name"),
    }
}

/// The objects of a cluster, in creation order, and the controller watching them.
pub(crate) struct Cluster {
    pub(crate) settings: Settings,
    pub(crate) state: ControllerState,
    pub(crate) objects: Vec<(ObjectId, Value)>,
}

impl Cluster {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            state: ControllerState::new(settings.clone()),
            settings,
            objects: Vec::new(),
        }
    }

    pub(crate) fn apply(&mut self, object: Value) {
        let id = object_id(&object);
        match self.objects.iter_mut().find(|(i, _)| *i == id) {
            Some(slot) => slot.1 = object,
            None => self.objects.push((id, object)),
        }
    }

    pub(crate) fn patch(&mut self, id: &ObjectId, patch: &Value) {
        let (_, v) = self
            .objects
            .iter_mut()
            .find(|(i, _)| i == id)
            .unwrap_or_else(|| panic!("patch {id:?}: no such object"));
        merge_patch(v, patch);
    }

    pub(crate) fn delete(&mut self, id: &ObjectId) {
        let before = self.objects.len();
        self.objects.retain(|(i, _)| i != id);
        assert_ne!(before, self.objects.len(), "delete {id:?}: no such object");
    }

    pub(crate) fn objects(&self) -> Objects {
        let mut o = Objects::default();
        for (id, v) in &self.objects {
            o.add_value(v.clone())
                .unwrap_or_else(|e| panic!("{id:?}: {e}"));
        }
        o
    }

    pub(crate) fn service_value(&mut self, key: &ServiceKey) -> Option<&mut Value> {
        let id = (
            "Service".to_string(),
            key.namespace.to_string(),
            key.name.to_string(),
        );
        self.objects
            .iter_mut()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v)
    }

    pub(crate) fn service(&mut self, key: &ServiceKey) -> Option<Service> {
        self.service_value(key)
            .map(|v| serde_json::from_value(v.clone()).unwrap())
    }

    pub(crate) fn services(&self) -> Vec<Service> {
        self.objects().services
    }

    /// Applies the writes of `u` the way the API server would.
    pub(crate) fn write(&mut self, u: &ServiceUpdate) {
        let Some(v) = self.service_value(&u.key) else {
            assert!(!u.writes(), "{}: write to a deleted Service", u.key);
            return;
        };
        if let Some(ips) = &u.status {
            merge_patch(v, &status_patch(ips));
        }
        if let Some(pool) = &u.pool_annotation {
            merge_patch(v, &pool_annotation_patch(pool.as_deref()));
        }
    }
}

pub(crate) fn sharing_key(svc: &Service) -> Option<&str> {
    let a = svc.metadata.annotations.as_ref()?;
    a.get("metallb.io/allow-shared-ip")
        .or_else(|| a.get("metallb.universe.tf/allow-shared-ip"))
        .map(String::as_str)
        .filter(|k| !k.is_empty())
}

/// No IP written for `key` is recorded by another Service of this controller, unless both
/// carry the same sharing key: a write must never hand out an IP another Service announces.
pub(crate) fn check_not_stolen(cluster: &Cluster, key: &ServiceKey, at: &str) {
    let services = cluster.services();
    let lb_class = cluster.settings.lb_class.as_deref();
    let ours = |s: &&Service| is_load_balancer(s) && class_of(s) == lb_class;
    let Some(me) = services
        .iter()
        .find(|s| lb_metallb::service::key_of(s) == *key)
    else {
        return;
    };
    let (ips, _) = recorded(me);
    for other in services.iter().filter(ours) {
        let k = lb_metallb::service::key_of(other);
        if k == *key {
            continue;
        }
        let (theirs, _) = recorded(other);
        for ip in ips.iter().filter(|ip| theirs.contains(ip)) {
            let shared = sharing_key(me).is_some() && sharing_key(me) == sharing_key(other);
            assert!(shared, "{at}: {key} was given {ip}, which {k} records");
        }
    }
}

/// What a Service records: status IPs and the pool annotation.
pub(crate) fn recorded(svc: &Service) -> (Vec<IpAddr>, Option<String>) {
    let ips = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|l| {
            l.iter()
                .filter_map(|i| i.ip.as_ref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let pool = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POOL_ANNOTATION))
        .cloned();
    (ips, pool)
}

pub(crate) fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

pub(crate) fn class_of(svc: &Service) -> Option<&str> {
    svc.spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref())
}

// --- scenario format -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Scenario {
    #[serde(default)]
    pub(crate) lb_class: Option<String>,
    pub(crate) steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Step {
    pub(crate) note: String,
    #[serde(default)]
    pub(crate) apply: Vec<Value>,
    #[serde(default)]
    pub(crate) patch: BTreeMap<String, Value>,
    #[serde(default)]
    pub(crate) delete: Vec<String>,
    #[serde(default)]
    pub(crate) restart: bool,
    #[serde(default)]
    pub(crate) config: bool,
    #[serde(default)]
    pub(crate) restore: bool,
    #[serde(default)]
    pub(crate) reconcile: Vec<String>,
    #[serde(default)]
    pub(crate) reconcile_affected: bool,
    #[serde(default)]
    pub(crate) follow_retry: bool,
    #[serde(default)]
    pub(crate) expect: Option<Expect>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Expect {
    pub(crate) affected: Option<Vec<String>>,
    pub(crate) rejected: Option<bool>,
    pub(crate) pending: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) holds: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) reasons: BTreeMap<String, Vec<String>>,
    pub(crate) writes: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) retry: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StepOut {
    pub(crate) step: usize,
    pub(crate) note: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) config: Option<Value>,
    pub(crate) updates: Vec<UpdateOut>,
    pub(crate) allocations: BTreeMap<String, String>,
    pub(crate) pending: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateOut {
    pub(crate) pass: &'static str,
    pub(crate) key: String,
    pub(crate) status_patch: Option<Value>,
    pub(crate) annotation_patch: Option<Value>,
    pub(crate) events: Vec<Event>,
    pub(crate) retry: Vec<String>,
    pub(crate) error: Option<&'static str>,
}

pub(crate) fn update_out(pass: &'static str, u: &ServiceUpdate) -> UpdateOut {
    UpdateOut {
        pass,
        key: u.key.to_string(),
        status_patch: u.status.as_deref().map(status_patch),
        annotation_patch: u
            .pool_annotation
            .as_ref()
            .map(|p| pool_annotation_patch(p.as_deref())),
        events: u.events.clone(),
        retry: u.retry.iter().map(ToString::to_string).collect(),
        error: u.error.map(ReconcileError::as_str),
    }
}

pub(crate) fn holding(state: &ControllerState, key: &ServiceKey) -> String {
    match state.allocator().allocation(key) {
        None => "none".into(),
        Some(a) => {
            let ips: Vec<String> = a.ips.iter().map(ToString::to_string).collect();
            format!("{} {}", a.pool, ips.join(","))
        }
    }
}

pub(crate) fn keys_text<'a>(keys: impl IntoIterator<Item = &'a ServiceKey>) -> Vec<String> {
    keys.into_iter().map(ToString::to_string).collect()
}

/// Runs one step, checks what it must, and returns what it did.
pub(crate) fn run_step(cluster: &mut Cluster, i: usize, step: &Step, case: &str) -> StepOut {
    let at = format!("{case}: step {i} ({})", step.note);
    for o in &step.apply {
        cluster.apply(o.clone());
    }
    for (target, patch) in &step.patch {
        cluster.patch(&parse_id(target), patch);
    }
    for d in &step.delete {
        cluster.delete(&parse_id(d));
    }
    if step.restart {
        cluster.state = ControllerState::new(cluster.settings.clone());
    }
    let mut out = StepOut {
        step: i,
        note: step.note.clone(),
        config: None,
        updates: Vec::new(),
        allocations: BTreeMap::new(),
        pending: Vec::new(),
    };
    let mut all: Vec<ServiceUpdate> = Vec::new();
    let mut converged: BTreeSet<ServiceKey> = BTreeSet::new();
    let mut affected: Vec<ServiceKey> = Vec::new();
    let mut rejected = false;
    if step.config {
        let outcome = cluster.state.apply_config(&cluster.objects());
        out.config = Some(match &outcome {
            ConfigOutcome::Applied {
                affected: a,
                warnings,
            } => {
                affected.clone_from(a);
                json!({ "applied": { "affected": keys_text(a), "warnings": warnings } })
            }
            ConfigOutcome::Rejected(errors) => {
                rejected = true;
                let list: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                json!({ "rejected": list })
            }
        });
        assert_eq!(cluster.state.rejected().is_some(), rejected, "{at}");
    }
    if step.restore {
        let services = cluster.services();
        let updates = cluster.state.restore(services.iter());
        assert!(
            cluster.state.is_restored(),
            "{at}: restore ran without config"
        );
        for u in &updates {
            assert!(!u.is_empty(), "{at}: restore returned an empty update");
            cluster.write(u);
            out.updates.push(update_out("restore", u));
        }
        for u in updates.iter().filter(|u| u.status.is_some()) {
            check_not_stolen(cluster, &u.key, &at);
        }
        all.extend(updates);
        converged.extend(services.iter().map(lb_metallb::service::key_of));
    }
    let mut queue: Vec<ServiceKey> = step.reconcile.iter().map(|k| key(k)).collect();
    if step.reconcile_affected {
        queue.extend(affected.iter().cloned());
    }
    let mut done: BTreeSet<ServiceKey> = BTreeSet::new();
    let mut next = 0;
    while let Some(k) = queue.get(next).cloned() {
        next += 1;
        if step.follow_retry && !done.insert(k.clone()) {
            continue;
        }
        let svc = cluster.service(&k);
        let u = cluster.state.reconcile(&k, svc.as_ref());
        cluster.write(&u);
        if u.status.is_some() {
            check_not_stolen(cluster, &u.key, &at);
        }
        out.updates.push(update_out("reconcile", &u));
        if step.follow_retry {
            queue.extend(u.retry.iter().cloned());
        }
        converged.insert(k);
        all.push(u);
    }
    for (k, _) in cluster.state.allocator().allocations() {
        out.allocations
            .insert(k.to_string(), holding(&cluster.state, k));
    }
    out.pending = keys_text(cluster.state.pending());

    check_converged(cluster, &converged, &all, &at);
    if let Some(e) = &step.expect {
        check_expect(cluster, e, &affected, rejected, &all, &at);
    }
    out
}

/// Every Service converged in a step records exactly what the allocator holds for it (or
/// nothing, when it is not ours); a Service of another class is never written.
pub(crate) fn check_converged(
    cluster: &mut Cluster,
    converged: &BTreeSet<ServiceKey>,
    updates: &[ServiceUpdate],
    at: &str,
) {
    let lb_class = cluster.settings.lb_class.clone();
    for k in converged {
        let invalid = updates
            .iter()
            .any(|u| u.key == *k && u.error == Some(ReconcileError::InvalidService));
        let held = cluster.state.allocator().allocation(k).cloned();
        let Some(svc) = cluster.service(k) else {
            assert!(held.is_none(), "{at}: deleted {k} still holds {held:?}");
            continue;
        };
        if class_of(&svc) != lb_class.as_deref() {
            assert!(held.is_none(), "{at}: {k} of another class holds {held:?}");
            assert!(
                updates.iter().all(|u| u.key != *k || !u.writes()),
                "{at}: {k} of another class was written"
            );
            continue;
        }
        if invalid {
            continue;
        }
        let (ips, pool) = recorded(&svc);
        if !is_load_balancer(&svc) {
            assert!(held.is_none(), "{at}: non-LoadBalancer {k} holds {held:?}");
        }
        let want_ips = held.as_ref().map(|a| a.ips.clone()).unwrap_or_default();
        let want_pool = held.map(|a| a.pool);
        assert_eq!(ips, want_ips, "{at}: {k}: status vs allocator");
        assert_eq!(pool, want_pool, "{at}: {k}: annotation vs allocator");
    }
}

pub(crate) fn check_expect(
    cluster: &Cluster,
    e: &Expect,
    affected: &[ServiceKey],
    rejected: bool,
    updates: &[ServiceUpdate],
    at: &str,
) {
    if let Some(want) = &e.affected {
        assert_eq!(&keys_text(affected), want, "{at}: affected");
    }
    if let Some(want) = e.rejected {
        assert_eq!(rejected, want, "{at}: rejected");
    }
    if let Some(want) = &e.pending {
        assert_eq!(&keys_text(cluster.state.pending()), want, "{at}: pending");
    }
    for (k, want) in &e.holds {
        assert_eq!(&holding(&cluster.state, &key(k)), want, "{at}: holds {k}");
    }
    for (k, want) in &e.reasons {
        let got: Vec<&str> = updates
            .iter()
            .filter(|u| u.key.to_string() == *k)
            .flat_map(|u| u.events.iter().map(|ev| ev.reason))
            .collect();
        assert_eq!(&got, want, "{at}: event reasons of {k}");
    }
    if let Some(want) = &e.writes {
        let got: BTreeSet<String> = updates
            .iter()
            .filter(|u| u.writes())
            .map(|u| u.key.to_string())
            .collect();
        let want: BTreeSet<String> = want.iter().cloned().collect();
        assert_eq!(got, want, "{at}: Services written");
    }
    for (k, want) in &e.retry {
        let got: Vec<String> = updates
            .iter()
            .filter(|u| u.key.to_string() == *k)
            .flat_map(|u| keys_text(&u.retry))
            .collect();
        assert_eq!(&got, want, "{at}: retry of {k}");
    }
}

pub(crate) fn scenario(case: &str) {
    let dir = root().join("tests/golden/controller");
    let input = dir.join(format!("{case}.yaml"));
    let text = std::fs::read_to_string(&input).unwrap();
    let sc: Scenario =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let mut cluster = Cluster::new(settings(sc.lb_class.as_deref()));
    let out: Vec<StepOut> = sc
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| run_step(&mut cluster, i, s, case))
        .collect();
    let actual = serde_json::to_string_pretty(&out).unwrap() + "\n";
    check(&dir.join(format!("{case}.json")), &actual);
}

pub(crate) fn objects_of(yaml: &str) -> Objects {
    let mut o = Objects::default();
    o.add_yaml("test", yaml).unwrap();
    o
}

/// A realistic single-stack IPv4 LoadBalancer Service; `annotations` and `status_ips` may be
/// empty.
pub(crate) fn lb_service(
    namespace: &str,
    name: &str,
    annotations: &[(&str, &str)],
    status_ips: &[&str],
) -> Service {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
        .collect();
    let ingress: Vec<Value> = status_ips.iter().map(|ip| json!({ "ip": ip })).collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "namespace": namespace, "annotations": annotations },
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "203.0.113.149",
            "clusterIPs": ["203.0.113.149"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{ "port": 80, "targetPort": 8080, "protocol": "TCP" }],
        },
        "status": { "loadBalancer": { "ingress": ingress } },
    }))
    .unwrap()
}

/// Applies the writes of `u` to `svc` as the API server would.
pub(crate) fn apply_writes(svc: &mut Service, u: &ServiceUpdate) {
    let mut v = serde_json::to_value(&*svc).unwrap();
    if let Some(ips) = &u.status {
        merge_patch(&mut v, &status_patch(ips));
    }
    if let Some(pool) = &u.pool_annotation {
        merge_patch(&mut v, &pool_annotation_patch(pool.as_deref()));
    }
    *svc = serde_json::from_value(v).unwrap();
}

/// Restores `services` and applies the writes; returns the updates.
pub(crate) fn restore_and_write(
    state: &mut ControllerState,
    services: &mut [Service],
) -> Vec<ServiceUpdate> {
    let updates = state.restore(services.iter());
    for u in &updates {
        if let Some(s) = services
            .iter_mut()
            .find(|s| lb_metallb::service::key_of(s) == u.key)
        {
            apply_writes(s, u);
        }
    }
    updates
}

pub(crate) fn held(state: &ControllerState, k: &str) -> Option<(String, Vec<String>)> {
    state.allocator().allocation(&key(k)).map(|a| {
        (
            a.pool.clone(),
            a.ips.iter().map(ToString::to_string).collect(),
        )
    })
}

pub(crate) fn pool_names(state: &ControllerState) -> Vec<String> {
    state
        .config()
        .map(|c| {
            c.pools
                .pools()
                .iter()
                .map(|p| p.name().to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) const POOL_A: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: metallb-system}
spec: {addresses: [192.0.2.0/29]}
";

pub(crate) const TWO_POOLS: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: metallb-system}
spec: {addresses: [192.0.2.0/30]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: b, namespace: metallb-system}
spec: {addresses: [198.51.100.0/30]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
";

pub(crate) fn affected_by(state: &mut ControllerState, yaml: &str) -> Vec<String> {
    match state.apply_config(&objects_of(yaml)) {
        ConfigOutcome::Applied { affected, .. } => keys_text(&affected),
        ConfigOutcome::Rejected(e) => panic!("rejected: {e}"),
    }
}

/// A varied set of Services in one namespace, as YAML.
pub(crate) const VARIED: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: mix}
spec: {type: LoadBalancer, clusterIP: 203.0.113.100, clusterIPs: [203.0.113.100], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: v6, namespace: mix}
spec: {type: LoadBalancer, clusterIP: "2001:db8:c1::2", clusterIPs: ["2001:db8:c1::2"], ipFamilies: [IPv6], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: prefer, namespace: mix}
spec: {type: LoadBalancer, clusterIP: 203.0.113.102, clusterIPs: [203.0.113.102, "2001:db8:c1::3"], ipFamilies: [IPv4, IPv6], ipFamilyPolicy: PreferDualStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: require, namespace: mix}
spec: {type: LoadBalancer, clusterIP: "2001:db8:c1::4", clusterIPs: ["2001:db8:c1::4", 203.0.113.103], ipFamilies: [IPv6, IPv4], ipFamilyPolicy: RequireDualStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: requested, namespace: mix, annotations: {metallb.io/loadBalancerIPs: 198.51.100.2}}
spec: {type: LoadBalancer, clusterIP: 203.0.113.104, clusterIPs: [203.0.113.104], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: share-tcp, namespace: mix, annotations: {metallb.io/allow-shared-ip: k}}
spec: {type: LoadBalancer, clusterIP: 203.0.113.105, clusterIPs: [203.0.113.105], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 53, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: share-udp, namespace: mix, annotations: {metallb.io/allow-shared-ip: k}}
spec: {type: LoadBalancer, clusterIP: 203.0.113.106, clusterIPs: [203.0.113.106], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: deprecated, namespace: mix, annotations: {metallb.universe.tf/address-pool: b}}
spec: {type: LoadBalancer, clusterIP: 203.0.113.107, clusterIPs: [203.0.113.107], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: cluster-ip, namespace: mix}
spec: {type: ClusterIP, clusterIP: 203.0.113.108, clusterIPs: [203.0.113.108], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: unreadable, namespace: mix, annotations: {metallb.io/loadBalancerIPs: 198.51.100.3}}
spec: {type: LoadBalancer, loadBalancerIP: 198.51.100.3, clusterIP: 203.0.113.109, clusterIPs: [203.0.113.109], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: starved, namespace: mix, annotations: {metallb.io/loadBalancerIPs: 203.0.113.9}}
spec: {type: LoadBalancer, clusterIP: 203.0.113.110, clusterIPs: [203.0.113.110], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, ports: [{port: 80, protocol: TCP}]}
"#;

pub(crate) const DUAL_POOLS: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: metallb-system}
spec: {addresses: [192.0.2.0/29, '2001:db8:a::/125']}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: b, namespace: metallb-system}
spec: {addresses: [198.51.100.0/29, '2001:db8:b::/125']}
";
