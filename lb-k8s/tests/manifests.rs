//! The install artifacts: the manifests under `deploy/` and the Helm chart `charts/lb-k8s/`.
//!
//! - Every document parses **strictly** into its Kubernetes type: it is deserialised into the
//!   k8s-openapi type named by its `apiVersion` and `kind`, serialised back, and compared
//!   with the input, so a misspelt or misplaced field (which k8s-openapi would silently drop)
//!   fails. Unknown kinds fail.
//! - `deploy/lb-k8s.yaml` is exactly what `scripts/gen-deploy` makes of the parts, and the
//!   CRDs in `deploy/crds/` and `charts/lb-k8s/crds/` are what the code generates.
//! - RBAC grants exactly the calls the code makes (a fixed list below, no more, no less, no
//!   wildcard), and the workloads carry the security settings they must.
//! - The chart, rendered here with `gotmpl` (Go's text/template) and the few Helm functions
//!   it uses (implemented below; helm itself is not needed), gives the same RBAC and the same
//!   Deployment and DaemonSet specs as `deploy/` with default values, and its toggles work.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use gotmpl::{MissingKey, Template, TemplateError, Value as Tv};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const NAMESPACE: &str = "metallb-system";
const IMAGE: &str = "ghcr.io/example/lb-k8s:v0.1.0";

/// The parts of `deploy/lb-k8s.yaml`, in order (as listed in `scripts/gen-deploy`).
const PARTS: [&str; 5] = [
    "deploy/namespace.yaml",
    "deploy/crds/metallb.io.yaml",
    "deploy/rbac.yaml",
    "deploy/controller.yaml",
    "deploy/speaker.yaml",
];

// ---------------------------------------------------------------------------------------
// The RBAC contract: exactly the calls the code makes. `tests/kube_mock/rbac.rs` checks the other
// direction for the controller: every request it makes is granted by deploy/rbac.yaml, and
// every grant there is used.

/// `(apiGroup, resources, verbs)`.
type Rules = &'static [(
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
)];

const CONFIG_KINDS: &[&str] = &[
    "ipaddresspools",
    "l2advertisements",
    "bgpadvertisements",
    "bgppeers",
    "communities",
    "bfdprofiles",
];

const CONTROLLER_CLUSTER_RULES: Rules = &[
    ("", &["services"], &["list", "watch", "patch"]),
    ("", &["services/status"], &["patch"]),
    ("", &["namespaces", "nodes"], &["list", "watch"]),
    ("events.k8s.io", &["events"], &["create"]),
];

const CONTROLLER_NAMESPACE_RULES: Rules = &[
    ("metallb.io", CONFIG_KINDS, &["list", "watch"]),
    ("metallb.io", &["ipaddresspools/status"], &["patch"]),
    ("metallb.io", &["configurationstates"], &["get", "create"]),
    ("metallb.io", &["configurationstates/status"], &["patch"]),
    ("", &["secrets"], &["get", "list", "watch", "create"]),
    (
        "coordination.k8s.io",
        &["leases"],
        &["get", "create", "update"],
    ),
];

const SPEAKER_CLUSTER_RULES: Rules = &[
    ("", &["services", "nodes"], &["list", "watch"]),
    ("discovery.k8s.io", &["endpointslices"], &["list", "watch"]),
    ("events.k8s.io", &["events"], &["create"]),
];

const SPEAKER_NAMESPACE_RULES: Rules = &[
    ("metallb.io", CONFIG_KINDS, &["list", "watch"]),
    (
        "metallb.io",
        &["servicel2statuses", "servicebgpstatuses"],
        &["list", "create", "delete"],
    ),
    (
        "metallb.io",
        &["servicel2statuses/status", "servicebgpstatuses/status"],
        &["patch"],
    ),
    ("metallb.io", &["configurationstates"], &["get", "create"]),
    ("metallb.io", &["configurationstates/status"], &["patch"]),
    ("", &["secrets"], &["list", "watch"]),
];

const LOG_LEVELS: &[&str] = &["all", "debug", "info", "warn", "error", "none"];

// ---------------------------------------------------------------------------------------
// Reading and strict parsing.

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// One YAML document and where it came from (`file#index`).
#[derive(Clone)]
struct Doc {
    origin: String,
    value: Value,
}

impl Doc {
    fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.value["metadata"]["labels"][key].as_str()
    }

    fn typed<K: DeserializeOwned>(&self) -> K {
        serde_json::from_value(self.value.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", self.origin))
    }
}

fn parse_docs(origin: &str, text: &str) -> Vec<Doc> {
    let values: Vec<Value> = serde_saphyr::from_multiple(text)
        .unwrap_or_else(|e| panic!("{origin}: not valid YAML: {e}\n{text}"));
    values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(i, value)| Doc {
            origin: format!("{origin}#{i}"),
            value,
        })
        .collect()
}

fn read_docs(rel: &str) -> Vec<Doc> {
    parse_docs(rel, &read(rel))
}

/// The first difference between `want` and `got`, as a JSON path. Numbers compare by value
/// (a schema's `maximum: 255` comes back as the float 255).
fn difference(path: &str, want: &Value, got: &Value) -> Option<String> {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    None => return Some(format!("{here} is dropped (unknown or misplaced field)")),
                    Some(other) => {
                        if let Some(d) = difference(&here, value, other) {
                            return Some(d);
                        }
                    }
                }
            }
            b.keys()
                .find(|key| !a.contains_key(*key))
                .map(|key| format!("{path}.{key} appears"))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| difference(&format!("{path}[{i}]"), x, y)),
        (Value::Number(a), Value::Number(b)) if a == b || a.as_f64() == b.as_f64() => None,
        _ if want == got => None,
        _ => Some(format!("{path}: expected {want}, found {got}")),
    }
}

/// Deserialises `value` into `K` and fails unless serialising it gives `value` back.
fn strict_value<K: DeserializeOwned + Serialize>(origin: &str, value: &Value) {
    let typed: K = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{origin}: not a valid {}: {e}", std::any::type_name::<K>()));
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(d) = difference("", value, &back) {
        panic!(
            "{origin}: {} round trip changes the object: {d}",
            std::any::type_name::<K>()
        );
    }
}

/// prometheus-operator's ServiceMonitor has no k8s-openapi type: its shape is checked
/// instead (top-level keys, metadata, selector, endpoints).
fn check_service_monitor(doc: &Doc) {
    let object = doc.value.as_object().unwrap();
    for key in object.keys() {
        assert!(
            ["apiVersion", "kind", "metadata", "spec"].contains(&key.as_str()),
            "{}: unexpected top-level field {key}",
            doc.origin
        );
    }
    strict_value::<ObjectMeta>(&doc.origin, &doc.value["metadata"]);
    let spec = &doc.value["spec"];
    strict_value::<LabelSelector>(&doc.origin, &spec["selector"]);
    let endpoints = spec["endpoints"].as_array().unwrap();
    assert!(!endpoints.is_empty(), "{}: no endpoints", doc.origin);
    for endpoint in endpoints {
        assert!(
            endpoint["port"].is_string(),
            "{}: endpoint without port",
            doc.origin
        );
    }
    for key in spec.as_object().unwrap().keys() {
        assert!(
            ["selector", "endpoints", "namespaceSelector", "jobLabel"].contains(&key.as_str()),
            "{}: unexpected spec field {key}",
            doc.origin
        );
    }
}

/// Checks a document strictly by its `(apiVersion, kind)`; panics on an unknown one.
fn check_strict(doc: &Doc, allow_service_monitor: bool) {
    let origin = doc.origin.as_str();
    let value = &doc.value;
    match (doc.api_version(), doc.kind()) {
        ("v1", "Namespace") => strict_value::<Namespace>(origin, value),
        ("v1", "ServiceAccount") => strict_value::<ServiceAccount>(origin, value),
        ("v1", "Service") => strict_value::<Service>(origin, value),
        ("v1", "Secret") => strict_value::<Secret>(origin, value),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            strict_value::<ClusterRole>(origin, value);
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            strict_value::<ClusterRoleBinding>(origin, value);
        }
        ("rbac.authorization.k8s.io/v1", "Role") => strict_value::<Role>(origin, value),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            strict_value::<RoleBinding>(origin, value);
        }
        ("apps/v1", "Deployment") => strict_value::<Deployment>(origin, value),
        ("apps/v1", "DaemonSet") => strict_value::<DaemonSet>(origin, value),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            strict_value::<CustomResourceDefinition>(origin, value);
        }
        ("monitoring.coreos.com/v1", "ServiceMonitor") if allow_service_monitor => {
            check_service_monitor(doc);
        }
        (api_version, kind) => panic!("{origin}: unknown apiVersion/kind {api_version}/{kind}"),
    }
}

/// A set of objects (a file, the one-file install, or a rendered chart).
struct Objects {
    docs: Vec<Doc>,
}

impl Objects {
    fn new(docs: Vec<Doc>, allow_service_monitor: bool) -> Self {
        for doc in &docs {
            check_strict(doc, allow_service_monitor);
        }
        Objects { docs }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Doc> {
        self.docs.iter().filter(|d| d.kind() == kind).collect()
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Doc> {
        self.docs
            .iter()
            .find(|d| d.kind() == kind && d.name() == name)
    }

    fn get<K: DeserializeOwned>(&self, kind: &str, name: &str) -> K {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", self.summary()))
            .typed()
    }

    /// `(kind, name)` of every object, sorted.
    fn summary(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .docs
            .iter()
            .map(|d| (d.kind().to_owned(), d.name().to_owned()))
            .collect();
        out.sort();
        out
    }
}

fn kinds_and_names(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// RBAC checks.

type Grant = (String, String, String);

fn expected_grants(rules: Rules) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in rules {
        for resource in *resources {
            for verb in *verbs {
                out.insert((
                    (*group).to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                ));
            }
        }
    }
    out
}

/// The `(apiGroup, resource, verb)` triples `rules` grant; fails on wildcards, resource
/// names (they would make the set comparison lie) and non-resource URLs.
fn grants(origin: &str, rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.non_resource_urls
                .as_deref()
                .unwrap_or_default()
                .is_empty(),
            "{origin}: nonResourceURLs"
        );
        assert!(
            rule.resource_names
                .as_deref()
                .unwrap_or_default()
                .is_empty(),
            "{origin}: resourceNames"
        );
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        assert!(
            !groups.is_empty() && !resources.is_empty(),
            "{origin}: empty rule"
        );
        for group in groups {
            for resource in resources {
                for verb in &rule.verbs {
                    for part in [group, resource, verb] {
                        assert!(!part.contains('*'), "{origin}: wildcard {part:?}");
                    }
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

fn assert_grants(origin: &str, rules: &[PolicyRule], want: Rules) {
    let got = grants(origin, rules);
    let want = expected_grants(want);
    let extra: Vec<&Grant> = got.difference(&want).collect();
    let missing: Vec<&Grant> = want.difference(&got).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{origin}: grants more than the contract: {extra:?}; lacks: {missing:?}"
    );
}

fn service_account_subject(name: &str, namespace: &str) -> Vec<Subject> {
    vec![Subject {
        api_group: None,
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(namespace.into()),
    }]
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: kind.into(),
        name: name.into(),
    }
}

/// The controller's and (when `speaker`) the speaker's RBAC: exactly the contract, bound to
/// the right ServiceAccounts, and nothing else.
fn check_rbac(objects: &Objects, namespace: &str, controller: bool, speaker: bool) {
    let mut components = Vec::new();
    if controller {
        components.push((
            "controller",
            CONTROLLER_CLUSTER_RULES,
            CONTROLLER_NAMESPACE_RULES,
        ));
    }
    if speaker {
        components.push(("speaker", SPEAKER_CLUSTER_RULES, SPEAKER_NAMESPACE_RULES));
    }
    let mut want_objects = Vec::new();
    for (component, cluster_rules, namespace_rules) in components {
        let cluster_name = format!("{namespace}:{component}");
        let cluster_role: ClusterRole = objects.get("ClusterRole", &cluster_name);
        assert!(cluster_role.aggregation_rule.is_none());
        assert_grants(
            &cluster_name,
            cluster_role.rules.as_deref().unwrap_or_default(),
            cluster_rules,
        );
        let role: Role = objects.get("Role", component);
        assert_eq!(role.metadata.namespace.as_deref(), Some(namespace));
        assert_grants(
            &format!("Role {component}"),
            role.rules.as_deref().unwrap_or_default(),
            namespace_rules,
        );
        let cluster_binding: ClusterRoleBinding = objects.get("ClusterRoleBinding", &cluster_name);
        assert_eq!(
            cluster_binding.role_ref,
            role_ref("ClusterRole", &cluster_name)
        );
        assert_eq!(
            cluster_binding.subjects.unwrap_or_default(),
            service_account_subject(component, namespace)
        );
        let binding: RoleBinding = objects.get("RoleBinding", component);
        assert_eq!(binding.metadata.namespace.as_deref(), Some(namespace));
        assert_eq!(binding.role_ref, role_ref("Role", component));
        assert_eq!(
            binding.subjects.unwrap_or_default(),
            service_account_subject(component, namespace)
        );
        want_objects.extend([
            ("ClusterRole".to_owned(), cluster_name.clone()),
            ("ClusterRoleBinding".to_owned(), cluster_name),
            ("Role".to_owned(), component.to_owned()),
            ("RoleBinding".to_owned(), component.to_owned()),
        ]);
    }
    want_objects.sort();
    let mut rbac_objects: Vec<(String, String)> = objects
        .summary()
        .into_iter()
        .filter(|(kind, _)| {
            ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"].contains(&kind.as_str())
        })
        .collect();
    rbac_objects.sort();
    assert_eq!(rbac_objects, want_objects, "RBAC objects");
}

// ---------------------------------------------------------------------------------------
// Workload checks.

/// What a controller or speaker is expected to look like.
struct Expect<'a> {
    namespace: &'a str,
    lb_class: Option<&'a str>,
    replicas: i32,
    leader_elect: bool,
}

impl Default for Expect<'_> {
    fn default() -> Self {
        Expect {
            namespace: NAMESPACE,
            lb_class: None,
            replicas: 2,
            leader_elect: true,
        }
    }
}

fn pod_spec_of(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> &PodSpec {
    template.spec.as_ref().unwrap()
}

fn only_container(spec: &PodSpec) -> &Container {
    assert_eq!(spec.containers.len(), 1, "one container");
    assert!(spec.init_containers.is_none(), "no init containers");
    &spec.containers[0]
}

/// `--flag=value` arguments as a map; fails on a repeated flag or a positional argument
/// after the subcommand.
fn flags(args: &[String]) -> BTreeMap<&str, &str> {
    let mut out = BTreeMap::new();
    for arg in &args[1..] {
        assert!(arg.starts_with("--"), "positional argument {arg}");
        let (flag, value) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        assert!(out.insert(flag, value).is_none(), "flag {flag} repeated");
    }
    out
}

fn env_field_ref(container: &Container, name: &str) -> String {
    let env = container.env.as_deref().unwrap_or_default();
    let var = env
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no env {name}"));
    var.value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.clone())
        .unwrap_or_else(|| panic!("env {name} is not a fieldRef"))
}

/// The named container port: `(number, protocol)`.
fn port(container: &Container, name: &str) -> (i32, String) {
    let port = container
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no port {name}"));
    (
        port.container_port,
        port.protocol.clone().unwrap_or_else(|| "TCP".into()),
    )
}

/// Liveness on /healthz and readiness on /readyz, both on the `monitoring` port.
fn check_probes(container: &Container) {
    for (probe, path) in [
        (&container.liveness_probe, "/healthz"),
        (&container.readiness_probe, "/readyz"),
    ] {
        let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::String("monitoring".into()));
        assert!(get.scheme.is_none() || get.scheme.as_deref() == Some("HTTP"));
    }
}

fn check_resources(container: &Container) {
    let resources = container.resources.as_ref().unwrap();
    let requests = resources.requests.as_ref().unwrap();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    assert!(resources.limits.as_ref().unwrap().contains_key("memory"));
}

/// Every flag is one the subcommand has: from `lb-k8s SUBCOMMAND --help` when the binary
/// has the subcommand, else from `fallback`.
fn check_flags_exist(subcommand: &str, flags: &BTreeMap<&str, &str>) {
    let output = Command::new(env!("CARGO_BIN_EXE_lb-k8s"))
        .args([subcommand, "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "lb-k8s {subcommand} --help failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let known: BTreeSet<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--"))
        .map(str::to_owned)
        .collect();
    for flag in flags.keys() {
        assert!(
            known.contains(*flag),
            "lb-k8s {subcommand} has no flag {flag}"
        );
    }
}

fn check_controller(deployment: &Deployment, expect: &Expect<'_>) {
    assert_eq!(
        deployment.metadata.namespace.as_deref(),
        Some(expect.namespace)
    );
    let spec = &deployment.spec;
    assert_eq!(spec.replicas, Some(expect.replicas));
    let pod = pod_spec_of(&spec.template);
    let container = only_container(pod);
    assert_eq!(pod.service_account_name.as_deref(), Some("controller"));
    assert_ne!(pod.host_network, Some(true));

    // Pod and container security: non-root, nothing extra.
    let pod_security = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(65534));
    assert_eq!(
        pod_security
            .seccomp_profile
            .as_ref()
            .map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_ne!(security.privileged, Some(true));
    assert!(security.run_as_user.is_none() || security.run_as_user == Some(65534));
    let caps = security.capabilities.as_ref().unwrap();
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert!(
        caps.add.as_deref().unwrap_or_default().is_empty(),
        "controller adds no capability"
    );

    // Replicas on different nodes.
    if expect.replicas > 1 {
        let spread = pod
            .topology_spread_constraints
            .as_deref()
            .unwrap_or_default();
        let by_host = pod
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .is_some();
        assert!(
            by_host
                || spread
                    .iter()
                    .any(|c| c.topology_key == "kubernetes.io/hostname" && c.max_skew == 1),
            "controller replicas are not spread over nodes"
        );
        for constraint in spread {
            let selector = constraint.label_selector.as_ref().unwrap();
            assert_eq!(
                selector.match_labels.as_ref(),
                spec.selector.match_labels.as_ref(),
                "the spread constraint counts the controller pods"
            );
        }
    }

    let args = container.args.as_deref().unwrap();
    assert_eq!(args[0], "controller");
    assert!(container.command.is_none(), "the image's entrypoint runs");
    let flags = flags(args);
    check_flags_exist("controller", &flags);
    assert_eq!(flags.contains_key("--leader-elect"), expect.leader_elect);
    assert_eq!(flags.get("--lb-class").copied(), expect.lb_class);
    assert!(LOG_LEVELS.contains(&flags["--log-level"]));
    assert!(["json", "text"].contains(&flags["--log-format"]));
    assert_eq!(env_field_ref(container, "POD_NAME"), "metadata.name");
    assert_eq!(
        env_field_ref(container, "METALLB_NAMESPACE"),
        "metadata.namespace"
    );

    let (number, protocol) = port(container, "monitoring");
    assert_eq!(protocol, "TCP");
    let listen = flags.get("--listen").copied().unwrap_or("0.0.0.0:7472");
    assert!(
        listen.ends_with(&format!(":{number}")),
        "--listen={listen} but the monitoring port is {number}"
    );
    check_probes(container);
    check_resources(container);
}

fn check_speaker(daemon_set: &DaemonSet, expect: &Expect<'_>) {
    assert_eq!(
        daemon_set.metadata.namespace.as_deref(),
        Some(expect.namespace)
    );
    let spec = &daemon_set.spec;
    let pod = pod_spec_of(&spec.template);
    let container = only_container(pod);
    assert_eq!(pod.service_account_name.as_deref(), Some("speaker"));
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    assert!(pod.termination_grace_period_seconds.is_some());

    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_ne!(security.privileged, Some(true));
    assert_eq!(security.run_as_user, Some(0));
    let caps = security.capabilities.as_ref().unwrap();
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert_eq!(caps.add.as_deref(), Some(&["NET_RAW".to_owned()][..]));

    // Control-plane nodes are tolerated, like MetalLB's speakers.
    let tolerations = pod.tolerations.as_deref().unwrap_or_default();
    for key in [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ] {
        assert!(
            tolerations.iter().any(|t| t.key.as_deref() == Some(key)
                && t.operator.as_deref() == Some("Exists")
                && t.effect.as_deref() == Some("NoSchedule")),
            "no toleration for {key}"
        );
    }

    let args = container.args.as_deref().unwrap();
    assert_eq!(args[0], "speaker");
    let flags = flags(args);
    check_flags_exist("speaker", &flags);
    assert_eq!(flags.get("--lb-class").copied(), expect.lb_class);
    assert!(LOG_LEVELS.contains(&flags["--log-level"]));
    assert_eq!(
        env_field_ref(container, "METALLB_NODE_NAME"),
        "spec.nodeName"
    );
    assert_eq!(
        env_field_ref(container, "METALLB_NAMESPACE"),
        "metadata.namespace"
    );
    assert_eq!(
        env_field_ref(container, "METALLB_ML_BIND_ADDR"),
        "status.podIP"
    );

    // The memberlist key: the Secret mounted read-only where --ml-secret-key-path points.
    let key_path = flags["--ml-secret-key-path"];
    let mount = container
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|m| m.mount_path == key_path)
        .unwrap_or_else(|| panic!("nothing mounted at {key_path}"));
    assert_eq!(mount.read_only, Some(true));
    let volume = pod
        .volumes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    assert_eq!(
        volume
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref()),
        Some("memberlist")
    );

    let (monitoring, protocol) = port(container, "monitoring");
    assert_eq!(protocol, "TCP");
    assert!(flags["--listen"].ends_with(&format!(":{monitoring}")));
    let (memberlist, protocol) = port(container, "memberlist-udp");
    assert_eq!(protocol, "UDP");
    assert_eq!(flags["--ml-bindport"], memberlist.to_string());
    check_probes(container);
    check_resources(container);
}

/// No manifest ships the memberlist Secret (or any Secret): a key in a public manifest would
/// be shared by every cluster that applied it. The controller creates it.
fn check_no_secret(objects: &Objects) {
    assert!(objects.of_kind("Secret").is_empty(), "a Secret is shipped");
}

/// Every namespaced object is in `namespace`; cluster-scoped ones have none.
fn check_namespaces(objects: &Objects, namespace: &str) {
    for doc in &objects.docs {
        let cluster_scoped = [
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
        ]
        .contains(&doc.kind());
        if cluster_scoped {
            assert_eq!(doc.namespace(), None, "{}", doc.origin);
        } else {
            assert_eq!(doc.namespace(), Some(namespace), "{}", doc.origin);
        }
    }
}

// ---------------------------------------------------------------------------------------
// deploy/

fn deploy_part_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("deploy"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "lb-k8s.yaml")
        .map(|n| format!("deploy/{n}"))
        .collect();
    files.push("deploy/crds/metallb.io.yaml".into());
    files.sort();
    files
}

fn deploy() -> Objects {
    Objects::new(read_docs("deploy/lb-k8s.yaml"), false)
}

#[test]
fn every_deploy_document_parses_strictly() {
    let mut from_parts = Vec::new();
    for file in deploy_part_files() {
        let objects = Objects::new(read_docs(&file), false);
        assert!(!objects.docs.is_empty(), "{file} is empty");
        from_parts.extend(objects.summary());
    }
    from_parts.sort();
    let all = deploy();
    assert_eq!(all.summary(), from_parts, "lb-k8s.yaml holds every part");
    let expected_counts = [
        ("Namespace", 1),
        ("CustomResourceDefinition", 9),
        ("ServiceAccount", 2),
        ("ClusterRole", 2),
        ("ClusterRoleBinding", 2),
        ("Role", 2),
        ("RoleBinding", 2),
        ("Deployment", 1),
        ("DaemonSet", 1),
    ];
    for (kind, count) in expected_counts {
        assert_eq!(all.of_kind(kind).len(), count, "{kind}");
    }
    assert_eq!(
        all.docs.len(),
        expected_counts.iter().map(|(_, n)| n).sum::<usize>()
    );
}

#[test]
fn one_file_install_is_generated_from_the_parts() {
    // The script and this test list the same parts, in the same order.
    let script = read("scripts/gen-deploy");
    let listed: Vec<&str> = script
        .split_once("PARTS=(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list.split_whitespace().collect())
        .unwrap();
    assert_eq!(listed, PARTS, "PARTS in scripts/gen-deploy");
    assert_eq!(
        deploy_part_files(),
        {
            let mut sorted: Vec<String> = PARTS.iter().map(|p| (*p).to_owned()).collect();
            sorted.sort();
            sorted
        },
        "every file of deploy/ is a part of lb-k8s.yaml"
    );

    let mut want = String::from(
        "# GENERATED by scripts/gen-deploy from the files below; do not edit by hand:\n",
    );
    for part in PARTS {
        want.push_str(&format!("#   {part}\n"));
    }
    want.push_str("#\n");
    want.push_str("# lb-k8s, a MetalLB-compatible load balancer for bare-metal clusters.\n");
    want.push_str("# Install: kubectl apply -f deploy/lb-k8s.yaml (see docs/install.md).\n");
    for part in PARTS {
        let text = read(part);
        assert!(text.ends_with('\n'), "{part} does not end with a newline");
        if text.lines().next() != Some("---") {
            want.push_str("---\n");
        }
        want.push_str(&text);
    }
    let got = read("deploy/lb-k8s.yaml");
    assert!(
        got == want,
        "deploy/lb-k8s.yaml is out of date: run scripts/gen-deploy"
    );
}

#[test]
fn crds_everywhere_are_the_generated_ones() {
    let generated = lb_metallb::crd::crds_yaml().unwrap();
    for file in [
        "deploy/crds/metallb.io.yaml",
        "charts/lb-k8s/crds/metallb.io.yaml",
    ] {
        assert!(
            read(file) == generated,
            "{file} differs from `lb-k8s crds`: run `scripts/gen-deploy --crds`"
        );
    }
    let chart_crds: Vec<String> = std::fs::read_dir(repo().join("charts/lb-k8s/crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(chart_crds, ["metallb.io.yaml"]);

    // Every metallb.io resource named by RBAC is a CRD plural (or its status subresource).
    let plurals: BTreeSet<String> = lb_metallb::crd::all_crds()
        .into_iter()
        .flat_map(|c| {
            let plural = c.spec.names.plural;
            [format!("{plural}/status"), plural]
        })
        .collect();
    for rules in [
        CONTROLLER_NAMESPACE_RULES,
        SPEAKER_NAMESPACE_RULES,
        CONTROLLER_CLUSTER_RULES,
        SPEAKER_CLUSTER_RULES,
    ] {
        for (group, resources, _) in rules {
            if *group == "metallb.io" {
                for resource in *resources {
                    assert!(plurals.contains(*resource), "no CRD for {resource}");
                }
            }
        }
    }
}

#[test]
fn deploy_rbac_is_exactly_the_contract() {
    let rbac = Objects::new(read_docs("deploy/rbac.yaml"), false);
    check_rbac(&rbac, NAMESPACE, true, true);
    assert_eq!(
        rbac.summary()
            .into_iter()
            .filter(|(kind, _)| kind == "ServiceAccount")
            .collect::<Vec<_>>(),
        kinds_and_names(&[
            ("ServiceAccount", "controller"),
            ("ServiceAccount", "speaker")
        ])
    );
    check_rbac(&deploy(), NAMESPACE, true, true);
}

#[test]
fn deploy_workloads() {
    let all = deploy();
    check_controller(&all.get("Deployment", "controller"), &Expect::default());
    check_speaker(&all.get("DaemonSet", "speaker"), &Expect::default());
    check_no_secret(&all);
    check_namespaces(&all, NAMESPACE);

    let deployment: Deployment = all.get("Deployment", "controller");
    let image = only_container(pod_spec_of(&deployment.spec.template))
        .image
        .clone();
    assert_eq!(image.as_deref(), Some(IMAGE));
    let daemon_set: DaemonSet = all.get("DaemonSet", "speaker");
    let image = only_container(pod_spec_of(&daemon_set.spec.template))
        .image
        .clone();
    assert_eq!(image.as_deref(), Some(IMAGE));

    // The speaker runs on the host network: the namespace must allow it.
    let namespace: Namespace = all.get("Namespace", NAMESPACE);
    let labels = namespace.metadata.labels.unwrap();
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            labels
                .get(&format!("pod-security.kubernetes.io/{mode}"))
                .map(String::as_str),
            Some("privileged"),
            "pod-security {mode}"
        );
    }
}

/// `kubectl apply -f deploy/lb-k8s.yaml -l 'app.kubernetes.io/component!=speaker'` is the
/// documented controller-only install: every speaker object carries the label, nothing of
/// the controller does.
#[test]
fn speaker_objects_are_selectable_by_label() {
    let all = deploy();
    let speaker: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = all
            .docs
            .iter()
            .filter(|d| d.label("app.kubernetes.io/component") == Some("speaker"))
            .map(|d| (d.kind().to_owned(), d.name().to_owned()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        speaker,
        kinds_and_names(&[
            ("ServiceAccount", "speaker"),
            ("ClusterRole", "metallb-system:speaker"),
            ("ClusterRoleBinding", "metallb-system:speaker"),
            ("Role", "speaker"),
            ("RoleBinding", "speaker"),
            ("DaemonSet", "speaker"),
        ])
    );
    let rest = Objects {
        docs: all
            .docs
            .iter()
            .filter(|d| d.label("app.kubernetes.io/component") != Some("speaker"))
            .cloned()
            .collect(),
    };
    check_rbac(&rest, NAMESPACE, true, false);
    assert!(rest.of_kind("DaemonSet").is_empty());
    assert!(rest.find("Deployment", "controller").is_some());
}

// ---------------------------------------------------------------------------------------
// The Helm chart, rendered without helm.

fn exec_error(message: impl Into<String>) -> TemplateError {
    TemplateError::Exec(message.into())
}

fn to_template_value(value: &Value) -> Tv {
    match value {
        Value::Null => Tv::Nil,
        Value::Bool(b) => Tv::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(Tv::Int)
            .or_else(|| n.as_u64().map(Tv::Uint))
            .unwrap_or_else(|| Tv::Float(n.as_f64().unwrap_or_default())),
        Value::String(s) => Tv::String(s.as_str().into()),
        Value::Array(items) => Tv::List(items.iter().map(to_template_value).collect()),
        Value::Object(map) => Tv::Map(Arc::new(
            map.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), to_template_value(v)))
                .collect(),
        )),
    }
}

fn to_json(value: &Tv) -> gotmpl::Result<Value> {
    Ok(match value {
        Tv::Nil => Value::Null,
        Tv::Bool(b) => Value::Bool(*b),
        Tv::Int(i) => json!(i),
        Tv::Uint(u) => json!(u),
        Tv::Float(f) => json!(f),
        Tv::String(s) => Value::String(s.to_string()),
        Tv::List(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Tv::Map(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.to_string(), to_json(v)?)))
                .collect::<gotmpl::Result<_>>()?,
        ),
        Tv::Function(_) => return Err(exec_error("toYaml: a function")),
    })
}

/// Go's `fmt.Sprint` of a value, near enough for strings and numbers.
fn sprint(value: &Tv) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

/// Go's `strconv.Quote`, for the characters a chart meets.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Sprig's notion of empty, used by `default`.
fn is_empty(value: &Tv) -> bool {
    match value {
        Tv::Nil => true,
        Tv::Bool(b) => !b,
        Tv::Int(i) => *i == 0,
        Tv::Uint(u) => *u == 0,
        Tv::Float(f) => *f == 0.0,
        Tv::String(s) => s.is_empty(),
        Tv::List(items) => items.is_empty(),
        Tv::Map(map) => map.is_empty(),
        Tv::Function(_) => false,
    }
}

fn int_arg(value: &Tv, function: &str) -> gotmpl::Result<i64> {
    value
        .as_int()
        .ok_or_else(|| exec_error(format!("{function}: {value} is not an integer")))
}

fn indent(width: i64, text: &str) -> gotmpl::Result<String> {
    let width = usize::try_from(width).map_err(|_| exec_error("indent: negative width"))?;
    let pad = " ".repeat(width);
    Ok(format!("{pad}{}", text.replace('\n', &format!("\n{pad}"))))
}

/// The Helm (Sprig) functions the chart uses. `include` renders a named template of
/// `defines`, which holds every `{{define}}` of the chart once parsed.
fn with_helm_functions(template: Template, defines: &Arc<OnceLock<Template>>) -> Template {
    let defines = Arc::clone(defines);
    template
        .missing_key(MissingKey::Error)
        .func("include", move |args| {
            let [name, data] = args else {
                return Err(exec_error("include takes a template name and data"));
            };
            let name = name
                .as_str()
                .ok_or_else(|| exec_error("include: the name is not a string"))?;
            let set = defines
                .get()
                .ok_or_else(|| exec_error("include before the chart was parsed"))?;
            Ok(Tv::String(
                set.execute_template_to_string(name, data)?.into(),
            ))
        })
        .func("toYaml", |args| {
            let [value] = args else {
                return Err(exec_error("toYaml takes one value"));
            };
            let yaml = serde_saphyr::to_string(&to_json(value)?)
                .map_err(|e| exec_error(format!("toYaml: {e}")))?;
            Ok(Tv::String(yaml.strip_suffix('\n').unwrap_or(&yaml).into()))
        })
        .func("indent", |args| {
            let [width, text] = args else {
                return Err(exec_error("indent takes a width and a string"));
            };
            Ok(Tv::String(
                indent(int_arg(width, "indent")?, &sprint(text))?.into(),
            ))
        })
        .func("nindent", |args| {
            let [width, text] = args else {
                return Err(exec_error("nindent takes a width and a string"));
            };
            let indented = indent(int_arg(width, "nindent")?, &sprint(text))?;
            Ok(Tv::String(format!("\n{indented}").into()))
        })
        .func("quote", |args| {
            let quoted: Vec<String> = args
                .iter()
                .filter(|a| !matches!(a, Tv::Nil))
                .map(|a| go_quote(&sprint(a)))
                .collect();
            Ok(Tv::String(quoted.join(" ").into()))
        })
        .func("default", |args| match args {
            [fallback] => Ok(fallback.clone()),
            [fallback, value] => Ok(if is_empty(value) {
                fallback.clone()
            } else {
                value.clone()
            }),
            _ => Err(exec_error("default takes a default and a value")),
        })
        .func("trunc", |args| {
            let [length, text] = args else {
                return Err(exec_error("trunc takes a length and a string"));
            };
            let length = int_arg(length, "trunc")?;
            let text = sprint(text);
            let chars: Vec<char> = text.chars().collect();
            let keep = usize::try_from(length.unsigned_abs()).unwrap_or(usize::MAX);
            let out: String = if length >= 0 {
                chars.iter().take(keep).collect()
            } else {
                chars[chars.len().saturating_sub(keep)..].iter().collect()
            };
            Ok(Tv::String(out.into()))
        })
        .func("trimSuffix", |args| {
            let [suffix, text] = args else {
                return Err(exec_error("trimSuffix takes a suffix and a string"));
            };
            let (suffix, text) = (sprint(suffix), sprint(text));
            Ok(Tv::String(
                text.strip_suffix(suffix.as_str()).unwrap_or(&text).into(),
            ))
        })
}

/// `overlay` merged into `base`, maps recursively (Helm's `--set` / `-f` semantics).
fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value);
                    }
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

/// A rendered chart: the objects and NOTES.txt.
struct Rendered {
    objects: Objects,
    notes: String,
}

const CHART: &str = "charts/lb-k8s";

fn chart_metadata() -> Value {
    parse_docs("Chart.yaml", &read(&format!("{CHART}/Chart.yaml")))
        .remove(0)
        .value
}

fn default_values() -> Value {
    parse_docs("values.yaml", &read(&format!("{CHART}/values.yaml")))
        .remove(0)
        .value
}

/// Renders every template of the chart like `helm template RELEASE -n NAMESPACE` with
/// `overrides` on top of values.yaml.
fn render(release: &str, namespace: &str, overrides: &Value) -> Rendered {
    let mut values = default_values();
    merge(&mut values, overrides);
    let chart = chart_metadata();
    let data = to_template_value(&json!({
        "Values": values,
        "Release": {
            "Name": release,
            "Namespace": namespace,
            "Service": "Helm",
            "IsInstall": true,
            "IsUpgrade": false,
            "Revision": 1,
        },
        "Chart": {
            "Name": chart["name"],
            "Version": chart["version"],
            "AppVersion": chart["appVersion"],
        },
    }));

    let dir = repo().join(CHART).join("templates");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let source = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let helpers: String = files
        .iter()
        .filter(|f| f.starts_with('_'))
        .map(|f| source(f))
        .collect();

    let defines = Arc::new(OnceLock::new());
    let set = with_helm_functions(Template::new("_helpers.tpl"), &defines)
        .parse(&helpers)
        .unwrap_or_else(|e| panic!("_helpers.tpl: {e}"));
    assert!(defines.set(set).is_ok());

    let mut docs = Vec::new();
    let mut notes = None;
    for name in files.iter().filter(|f| !f.starts_with('_')) {
        let out = with_helm_functions(Template::new(name), &defines)
            .parse(&helpers)
            .and_then(|t| t.parse(&source(name)))
            .and_then(|t| t.execute_to_string(&data))
            .unwrap_or_else(|e| panic!("templates/{name}: {e}"));
        assert!(
            !out.contains("<no value>"),
            "templates/{name} renders <no value>:\n{out}"
        );
        if let Some(dir) = std::env::var_os("LB_CHART_DUMP") {
            // `LB_CHART_DUMP=/tmp/out cargo test -p lb-k8s --test manifests` writes what the
            // chart renders, one directory per release, namespace and set of overrides.
            let label: String = overrides
                .to_string()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .take(80)
                .collect();
            let dir = Path::new(&dir).join(format!("{release}-{namespace}-{label}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), &out).unwrap();
        }
        if name == "NOTES.txt" {
            notes = Some(out);
        } else {
            assert!(name.ends_with(".yaml"), "templates/{name}: unexpected file");
            docs.extend(parse_docs(&format!("templates/{name}"), &out));
        }
    }
    Rendered {
        objects: Objects::new(docs, true),
        notes: notes.expect("templates/NOTES.txt"),
    }
}

fn render_default() -> Rendered {
    render("lb-k8s", NAMESPACE, &json!({}))
}

#[test]
fn chart_metadata_matches_the_release() {
    let chart = chart_metadata();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "lb-k8s");
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        chart["appVersion"],
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        IMAGE,
        format!(
            "{}:{}",
            default_values()["image"]["repository"].as_str().unwrap(),
            chart["appVersion"].as_str().unwrap()
        )
    );
}

#[test]
fn chart_with_defaults_renders_the_install() {
    let rendered = render_default();
    let objects = &rendered.objects;
    assert_eq!(
        objects.summary(),
        kinds_and_names(&[
            ("ServiceAccount", "controller"),
            ("ServiceAccount", "speaker"),
            ("ClusterRole", "metallb-system:controller"),
            ("ClusterRole", "metallb-system:speaker"),
            ("ClusterRoleBinding", "metallb-system:controller"),
            ("ClusterRoleBinding", "metallb-system:speaker"),
            ("Role", "controller"),
            ("Role", "speaker"),
            ("RoleBinding", "controller"),
            ("RoleBinding", "speaker"),
            ("Deployment", "controller"),
            ("DaemonSet", "speaker"),
        ])
    );
    check_rbac(objects, NAMESPACE, true, true);
    check_controller(&objects.get("Deployment", "controller"), &Expect::default());
    check_speaker(&objects.get("DaemonSet", "speaker"), &Expect::default());
    check_no_secret(objects);
    check_namespaces(objects, NAMESPACE);
    assert!(rendered.notes.contains("metallb-system"));
}

/// With default values (release "lb-k8s" in metallb-system) the chart and deploy/ cannot
/// drift: same RBAC objects and rules, same workload specs (args, ports, probes, security,
/// resources, scheduling), same ServiceAccounts.
#[test]
fn chart_with_defaults_equals_deploy() {
    let chart = render_default().objects;
    let deploy = deploy();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "DaemonSet",
    ] {
        let names = |objects: &Objects| -> Vec<String> {
            objects
                .of_kind(kind)
                .iter()
                .map(|d| d.name().to_owned())
                .collect()
        };
        assert_eq!(names(&chart), names(&deploy), "{kind} names");
        for name in names(&deploy) {
            let (a, b) = (
                chart.find(kind, &name).unwrap(),
                deploy.find(kind, &name).unwrap(),
            );
            assert_eq!(a.namespace(), b.namespace(), "{kind} {name}");
            for field in ["rules", "roleRef", "subjects", "spec"] {
                if let Some(d) = difference(field, &b.value[field], &a.value[field]) {
                    panic!("{kind} {name}: the chart differs from deploy/: {d}");
                }
            }
            let component = "app.kubernetes.io/component";
            assert_eq!(a.label(component), b.label(component), "{kind} {name}");
        }
    }
}

#[test]
fn chart_toggles() {
    // ServiceMonitor on, speaker off, a load-balancer class.
    let rendered = render(
        "lb-k8s",
        NAMESPACE,
        &json!({
            "serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}},
            "speaker": {"enabled": false},
            "loadBalancerClass": "example.org/lb",
        }),
    );
    let objects = &rendered.objects;
    assert!(objects.of_kind("DaemonSet").is_empty());
    assert!(objects.find("ServiceAccount", "speaker").is_none());
    check_rbac(objects, NAMESPACE, true, false);
    check_controller(
        &objects.get("Deployment", "controller"),
        &Expect {
            lb_class: Some("example.org/lb"),
            ..Expect::default()
        },
    );
    assert!(rendered.notes.contains("example.org/lb"));
    assert!(!rendered.notes.contains("privileged"));
    let monitors = objects.of_kind("ServiceMonitor");
    assert_eq!(monitors.len(), 1, "only the controller is monitored");
    let monitor = monitors[0];
    assert_eq!(monitor.label("release"), Some("prometheus"));
    assert_eq!(monitor.namespace(), Some(NAMESPACE));
    // The ServiceMonitor selects the metrics Service by its labels, on a port it names; the
    // Service selects the controller pods and targets their monitoring port.
    let services = objects.of_kind("Service");
    assert_eq!(services.len(), 1);
    let service: Service = services[0].typed();
    let selector: LabelSelector =
        serde_json::from_value(monitor.value["spec"]["selector"].clone()).unwrap();
    let service_labels = service.metadata.labels.clone().unwrap();
    for (key, value) in selector.match_labels.unwrap() {
        assert_eq!(
            service_labels.get(&key),
            Some(&value),
            "ServiceMonitor selector {key}"
        );
    }
    let service_spec = service.spec.unwrap();
    assert_eq!(service_spec.cluster_ip.as_deref(), Some("None"));
    let service_port = &service_spec.ports.as_deref().unwrap()[0];
    assert_eq!(
        Some(service_port.name.as_deref().unwrap()),
        monitor.value["spec"]["endpoints"][0]["port"].as_str()
    );
    assert_eq!(
        service_port.target_port,
        Some(IntOrString::String("monitoring".into()))
    );
    let deployment: Deployment = objects.get("Deployment", "controller");
    let pod_labels = deployment.spec.template.metadata.unwrap().labels.unwrap();
    for (key, value) in service_spec.selector.unwrap() {
        assert_eq!(pod_labels.get(&key), Some(&value), "Service selector {key}");
    }

    // Both monitored, the speaker with the class too.
    let rendered = render(
        "lb-k8s",
        NAMESPACE,
        &json!({"serviceMonitor": {"enabled": true}, "loadBalancerClass": "example.org/lb"}),
    );
    let objects = &rendered.objects;
    assert_eq!(objects.of_kind("ServiceMonitor").len(), 2);
    assert_eq!(objects.of_kind("Service").len(), 2);
    check_speaker(
        &objects.get("DaemonSet", "speaker"),
        &Expect {
            lb_class: Some("example.org/lb"),
            ..Expect::default()
        },
    );

    // Controller off: the speaker alone.
    let rendered = render(
        "lb-k8s",
        NAMESPACE,
        &json!({"controller": {"enabled": false}}),
    );
    let objects = &rendered.objects;
    assert!(objects.of_kind("Deployment").is_empty());
    assert!(objects.find("ServiceAccount", "controller").is_none());
    check_rbac(objects, NAMESPACE, false, true);

    // No RBAC, no ServiceAccounts: only the workloads.
    let rendered = render(
        "lb-k8s",
        NAMESPACE,
        &json!({"rbac": {"create": false}, "serviceAccount": {"create": false}}),
    );
    assert_eq!(
        rendered.objects.summary(),
        kinds_and_names(&[("Deployment", "controller"), ("DaemonSet", "speaker")])
    );

    // Without leader election, one replica whatever `replicas` says.
    let rendered = render(
        "lb-k8s",
        NAMESPACE,
        &json!({"controller": {"leaderElect": false, "replicas": 3}}),
    );
    check_controller(
        &rendered.objects.get("Deployment", "controller"),
        &Expect {
            replicas: 1,
            leader_elect: false,
            ..Expect::default()
        },
    );
}

/// Another release name and namespace, and every optional value set: names and namespaces
/// follow the release, and everything still parses strictly.
#[test]
fn chart_with_every_option() {
    let rendered = render(
        "edge",
        "lb-system",
        &json!({
            "image": {"repository": "registry.example/lb-k8s", "tag": "v9.9.9", "pullPolicy": "Always"},
            "imagePullSecrets": [{"name": "regcred"}],
            "logLevel": "debug",
            "logFormat": "text",
            "serviceAccount": {"annotations": {"example.org/role": "lb"}},
            "controller": {
                "replicas": 3,
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "node-role.kubernetes.io/infra", "operator": "Exists"}]}]}}},
                "podAnnotations": {"example.org/team": "network"},
                "podLabels": {"team": "network"},
                "priorityClassName": "system-cluster-critical",
                "topologySpread": {"whenUnsatisfiable": "ScheduleAnyway"},
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
            },
            "speaker": {
                "priorityClassName": "system-node-critical",
                "nodeSelector": {"kubernetes.io/os": "linux", "example.org/edge": "true"},
                "memberlist": {"port": 7947, "secretName": "lb-memberlist", "upgradeWire": true},
            },
            "metrics": {"bindAddress": "[::]", "port": 9472, "speakerPort": 9473, "prometheusAnnotations": false},
            "serviceMonitor": {"enabled": true, "interval": "15s"},
        }),
    );
    let objects = &rendered.objects;
    check_namespaces(objects, "lb-system");
    check_rbac(objects, "lb-system", true, true);
    let expect = Expect {
        namespace: "lb-system",
        replicas: 3,
        ..Expect::default()
    };
    let deployment: Deployment = objects.get("Deployment", "controller");
    check_controller(&deployment, &expect);
    let pod = deployment.spec.template;
    let annotations = pod.metadata.as_ref().unwrap().annotations.clone().unwrap();
    assert_eq!(
        annotations.keys().collect::<Vec<_>>(),
        ["example.org/team"],
        "prometheus annotations off, pod annotations on"
    );
    let container = only_container(pod.spec.as_ref().unwrap());
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/lb-k8s:v9.9.9")
    );
    let args = container.args.as_deref().unwrap();
    for arg in [
        "--listen=[::]:9472",
        "--log-level=debug",
        "--log-format=text",
        "--ml-secret-name=lb-memberlist",
    ] {
        assert!(args.iter().any(|a| a == arg), "controller {arg}");
    }
    let speaker: DaemonSet = objects.get("DaemonSet", "speaker");
    check_speaker_memberlist(&speaker, "lb-memberlist", 7947);
    let speaker_args = only_container(pod_spec_of(&speaker.spec.template))
        .args
        .clone()
        .unwrap();
    assert!(speaker_args.iter().any(|a| a == "--ml-upgrade-wire"));
    for monitor in objects.of_kind("ServiceMonitor") {
        assert!(
            monitor.name().starts_with("edge-lb-k8s-"),
            "{}",
            monitor.name()
        );
        assert_eq!(monitor.value["spec"]["endpoints"][0]["interval"], "15s");
    }
    assert!(rendered.notes.contains("lb-system"));
}

fn check_speaker_memberlist(daemon_set: &DaemonSet, secret: &str, port_number: i32) {
    let pod = pod_spec_of(&daemon_set.spec.template);
    let container = only_container(pod);
    let args = container.args.as_deref().unwrap();
    assert!(args.contains(&format!("--ml-bindport={port_number}")));
    assert_eq!(
        port(container, "memberlist-udp"),
        (port_number, "UDP".into())
    );
    let volume = &pod.volumes.as_deref().unwrap()[0];
    assert_eq!(
        volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some(secret)
    );
}
