//! Golden replays: inputs and expected outputs checked in under `tests/golden/`, compared
//! byte for byte. `UPDATE_GOLDEN=1 cargo test -p lb-metallb --test golden` rewrites the expected
//! files; review the diff before committing it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;

use lb_metallb::input::Objects;
use lb_metallb::plan::{PlanOptions, plan};
use lb_metallb::{crd, legacy};

mod support;

use support::{check, root};

fn plan_json(input: &Path, down: &[&str]) -> String {
    let mut objects = Objects::default();
    objects
        .add_yaml(
            &input.display().to_string(),
            &std::fs::read_to_string(input).unwrap(),
        )
        .unwrap();
    legacy::expand(&mut objects).unwrap();
    let options = PlanOptions {
        down: down.iter().map(|s| s.to_string()).collect(),
        ..PlanOptions::default()
    };
    let p = plan(&objects, &options).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    serde_json::to_string_pretty(&p).unwrap() + "\n"
}

fn plan_case(name: &str, down: &[&str], expected: &str) {
    let dir = root().join("tests/golden/plan");
    check(
        &dir.join(expected),
        &plan_json(&dir.join(format!("{name}.yaml")), down),
    );
}

#[test]
fn quickstart_plan_matches_golden() {
    let input = root().join("../examples/quickstart.yaml");
    check(
        &root().join("tests/golden/plan/quickstart.json"),
        &plan_json(&input, &[]),
    );
}

#[test]
fn election_plan_matches_golden() {
    plan_case("election", &[], "election.json");
}

#[test]
fn election_with_a_dead_speaker_matches_golden() {
    plan_case("election", &["node-a"], "election-node-a-down.json");
}

#[test]
fn sharing_plan_matches_golden() {
    plan_case("sharing", &[], "sharing.json");
}

#[test]
fn dual_stack_plan_matches_golden() {
    plan_case("dual-stack", &[], "dual-stack.json");
}

#[test]
fn local_traffic_policy_plan_matches_golden() {
    plan_case("local-policy", &[], "local-policy.json");
}

fn convert_case(name: &str) {
    let dir = root().join("tests/golden/convert");
    let input = dir.join(format!("{name}.yaml"));
    let mut objects = Objects::default();
    objects
        .add_yaml(name, &std::fs::read_to_string(&input).unwrap())
        .unwrap();
    assert_eq!(
        objects.legacy_config_maps.len(),
        1,
        "{name}: one legacy ConfigMap"
    );
    let actual = match legacy::convert(&objects.legacy_config_maps[0]) {
        Ok(c) => c.to_yaml().unwrap(),
        Err(e) => format!("error: {e}\n"),
    };
    check(&dir.join(format!("{name}.out")), &actual);
}

#[test]
fn full_legacy_config_converts_to_golden_objects() {
    convert_case("full");
}

#[test]
fn layer2_only_legacy_config_converts_to_golden_objects() {
    convert_case("layer2-only");
}

#[test]
fn legacy_hold_time_under_three_seconds_is_refused() {
    convert_case("bad-hold-time");
}

#[test]
fn legacy_pool_of_an_unknown_protocol_is_refused_naming_the_field() {
    convert_case("unknown-protocol");
}

#[test]
fn converted_legacy_config_is_valid_and_keeps_every_pool() {
    let input = root().join("tests/golden/convert/full.yaml");
    let mut objects = Objects::default();
    objects
        .add_yaml("full", &std::fs::read_to_string(input).unwrap())
        .unwrap();
    legacy::expand(&mut objects).unwrap();
    // The BFD profile is accepted with a warning; nothing else may be wrong.
    let config = lb_metallb::config::Config::from_objects(&objects).unwrap();
    let names: Vec<&str> = config.pools.pools().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["office-lan", "production", "staging"]);
    assert_eq!(config.peers.len(), 2);
    assert_eq!(config.peers[0].hold_time.as_secs(), 60);
    assert_eq!(config.peers[0].keepalive_time.as_secs(), 20);
    assert_eq!(config.peers[1].hold_time.as_secs(), 90);
    assert!(
        config
            .l2_advertisements
            .iter()
            .any(|a| a.pools.contains("office-lan"))
    );
}

#[test]
fn checked_in_crds_match_the_generated_ones() {
    let path = root().join("../deploy/crds/metallb.io.yaml");
    check(&path, &crd::crds_yaml().unwrap());
}

#[test]
fn generated_crds_cover_every_kind_with_the_versions_metallb_serves() {
    let crds = crd::all_crds();
    type Versions<'a> = Vec<(&'a str, bool, bool)>;
    let kinds: Vec<(&str, Versions<'_>)> = crds
        .iter()
        .map(|c| {
            (
                c.spec.names.kind.as_str(),
                c.spec
                    .versions
                    .iter()
                    .map(|v| (v.name.as_str(), v.served, v.storage))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("BFDProfile", vec![("v1beta1", true, true)]),
            ("BGPAdvertisement", vec![("v1beta1", true, true)]),
            (
                "BGPPeer",
                vec![("v1beta2", true, true), ("v1beta1", true, false)]
            ),
            ("Community", vec![("v1beta1", true, true)]),
            ("ConfigurationState", vec![("v1beta1", true, true)]),
            ("IPAddressPool", vec![("v1beta1", true, true)]),
            ("L2Advertisement", vec![("v1beta1", true, true)]),
            ("ServiceBGPStatus", vec![("v1beta1", true, true)]),
            ("ServiceL2Status", vec![("v1beta1", true, true)]),
        ]
    );
    let yaml = crd::crds_yaml().unwrap();
    assert!(yaml.contains("serviceSelectors and aggregationLength are mutually exclusive"));
    assert!(yaml.contains("EnableGracefulRestart cannot be changed after creation"));
    assert!(yaml.contains("jsonPath: .spec.addresses"));
    assert!(yaml.contains("jsonPath: .spec.peerAddress"));
    assert!(yaml.contains("deprecationWarning: v1beta1 is deprecated, please use v1beta2"));
}
