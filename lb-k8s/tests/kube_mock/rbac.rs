//! RBAC: every request the scenarios make is granted, and every grant is used (least privilege).

use super::*;

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
