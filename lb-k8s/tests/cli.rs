//! The `lb-k8s` binary as a user runs it: exit codes, one error per line, the JSON forms,
//! stdin, and no panic on arbitrary input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use lb_metallb::input::Objects;
use lb_metallb::plan::{PlanOptions, plan};
use proptest::prelude::*;

fn lb_k8s(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lb-k8s"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

const BAD: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: first-pool}
spec:
  addresses: [192.0.2.0/28, 192.0.2.25-192.0.2.20]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, passwordSecret: {name: missing}}
";

#[test]
fn validate_accepts_the_quickstart() {
    let out = lb_k8s(&["validate", "-f", "examples/quickstart.yaml"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn validate_prints_one_error_per_line_and_exits_1() {
    let out = lb_k8s(&["validate", "-f", "-"], Some(BAD));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "BGPPeer/router: spec.passwordSecret: Secret metallb-system/missing does not exist (transient)",
            "IPAddressPool/first-pool: spec.addresses[1]: 192.0.2.25-192.0.2.20: start is after end",
        ]
    );
}

#[test]
fn validate_json_lists_kind_name_field_reason_and_transient() {
    let out = lb_k8s(&["validate", "-o", "json", "-f", "-"], Some(BAD));
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["kind"], "BGPPeer");
    assert_eq!(list[0]["transient"], true);
    assert_eq!(list[1]["name"], "first-pool");
    assert_eq!(list[1]["field"], "spec.addresses[1]");
    assert_eq!(list[1]["transient"], false);
}

#[test]
fn unreadable_input_exits_2_with_the_file_and_document() {
    let out = lb_k8s(&["validate", "-f", "-"], Some("kind: [unclosed"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid YAML"));
    let out = lb_k8s(&["validate", "-f", "no/such/file.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.yaml"));
}

#[test]
fn plan_json_has_the_documented_schema() {
    let out = lb_k8s(
        &[
            "plan",
            "-o",
            "json",
            "-f",
            "examples/quickstart.yaml",
            "--node",
            "node-b",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for s in v["services"].as_array().unwrap() {
        for key in ["namespace", "name", "ips", "pool", "error", "events"] {
            assert!(s.get(key).is_some(), "services[].{key} missing");
        }
    }
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["name"], "node-b");
    let bgp = &nodes[0]["bgp"][0];
    for key in [
        "service",
        "prefix",
        "peers",
        "communities",
        "large_communities",
        "local_pref",
    ] {
        assert!(bgp.get(key).is_some(), "nodes[].bgp[].{key} missing");
    }
    let l2 = &nodes[0]["l2"][0];
    for key in ["service", "ip", "interfaces"] {
        assert!(l2.get(key).is_some(), "nodes[].l2[].{key} missing");
    }
    let not = &nodes[0]["not_announced"][0];
    for key in ["service", "protocol", "reason"] {
        assert!(
            not.get(key).is_some(),
            "nodes[].not_announced[].{key} missing"
        );
    }
}

#[test]
fn plan_refuses_an_invalid_configuration() {
    let out = lb_k8s(&["plan", "-f", "-"], Some(BAD));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("start is after end"));
}

#[test]
fn convert_prints_objects_that_validate() {
    let out = lb_k8s(
        &[
            "convert",
            "-f",
            "lb-metallb/tests/golden/convert/layer2-only.yaml",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("kind: L2Advertisement"));
    let check = lb_k8s(&["validate", "--namespace", "lb", "-f", "-"], Some(&yaml));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn crds_command_prints_the_checked_in_manifest() {
    let out = lb_k8s(&["crds"], None);
    assert!(out.status.success());
    let checked_in = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/crds/metallb.io.yaml"
    ))
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), checked_in);
}

/// Fragments that make plausible-looking but often wrong objects.
fn document() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool"),
        Just("apiVersion: metallb.io/v1beta1\nkind: L2Advertisement"),
        Just("apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement"),
        Just("apiVersion: metallb.io/v1beta1\nkind: Community"),
        Just("apiVersion: metallb.io/v1beta2\nkind: BGPPeer"),
        Just("apiVersion: v1\nkind: Service"),
        Just("apiVersion: v1\nkind: Node"),
        Just("apiVersion: v1\nkind: ConfigMap"),
        Just("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice"),
        Just("kind: Mystery"),
    ];
    let field = prop_oneof![
        Just("spec: {addresses: [192.0.2.0/30]}".to_string()),
        Just("spec: {addresses: [\"192.0.2.9-192.0.2.1\", 2001:db8::/126]}".to_string()),
        Just("spec: {addresses: []}".to_string()),
        Just("spec: {aggregationLength: 40, communities: [\"x:y\", alias]}".to_string()),
        Just("spec: {myASN: 0, peerAddress: not-an-ip, holdTime: 1s}".to_string()),
        Just("spec: {myASN: 64512, peerASN: 64512, peerAddress: 198.51.100.1, ebgpMultiHop: true}".to_string()),
        Just("spec: {type: LoadBalancer, clusterIPs: [203.0.113.150], ports: [{port: 53, protocol: UDP}]}".to_string()),
        Just("spec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, clusterIPs: [203.0.113.151]}".to_string()),
        Just("spec: {type: LoadBalancer, loadBalancerIP: 192.0.2.1, clusterIPs: [\"2001:db8:c1::1\"]}".to_string()),
        Just("spec: {communities: [{name: a, value: \"1:2\"}, {name: a, value: large:1}]}".to_string()),
        Just("spec: [1, 2]".to_string()),
        Just("spec: 7".to_string()),
        Just("status: {loadBalancer: {ingress: [{ip: 192.0.2.3}, {ip: nonsense}]}}".to_string()),
        Just("data: {config: \"address-pools: [{name: x, protocol: layer2, addresses: [192.0.2.8/29]}]\"}".to_string()),
        Just("data: {config: \"peers: 5\"}".to_string()),
        Just("endpoints: [{addresses: [198.51.100.200], nodeName: n1}]".to_string()),
        Just("metadata: {labels: {kubernetes.io/service-name: s0}}".to_string()),
        "[a-z:{}\\[\\], 0-9.-]{0,30}".prop_map(String::from),
    ];
    (kind, "[a-z0-9-]{0,6}", prop::collection::vec(field, 0..3)).prop_map(|(k, name, fields)| {
        let mut doc = format!("{k}\nmetadata: {{name: {name:?}, namespace: default}}\n");
        for f in fields {
            doc.push_str(&f);
            doc.push('\n');
        }
        doc
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the YAML, validate and plan return data or a readable error; nothing panics.
    #[test]
    fn arbitrary_documents_never_panic_validate_or_plan(docs in prop::collection::vec(document(), 1..6)) {
        let text = docs.join("---\n");
        let mut objects = Objects::default();
        match objects.add_yaml("fuzz", &text) {
            Err(e) => prop_assert!(!e.to_string().is_empty()),
            Ok(()) => {
                if lb_metallb::legacy::expand(&mut objects).is_ok() {
                    for e in lb_metallb::config::validate(&objects) {
                        prop_assert!(!e.kind.is_empty() && !e.reason.is_empty(), "{e:?}");
                    }
                    let _ = plan(&objects, &PlanOptions::default());
                }
            }
        }
    }
}

#[test]
fn files_are_read_and_loaded_in_order_so_a_bad_first_file_is_reported_first() {
    let out = lb_k8s(
        &["validate", "-f", "-", "-f", "/nonexistent/second.yaml"],
        Some("kind: [not yaml"),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid YAML"), "{stderr}");
    assert!(!stderr.contains("/nonexistent/second.yaml"), "{stderr}");
}
