//! Table-style tests of the configuration validator ([`lb_metallb::config::validate`]): every rule
//! rejects a bad configuration with the expected kind, name, field, reason and transience, and
//! the smallest change that fixes it (the near miss) is accepted.
//!
//! Objects are written as YAML, the way an operator would apply them, and read with
//! [`Objects::add_yaml`]. Only documentation prefixes are used (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use lb_metallb::config::{Config, ConfigError, validate};
use lb_metallb::input::Objects;

const V1BETA1: &str = "metallb.io/v1beta1";
const V1BETA2: &str = "metallb.io/v1beta2";

// ---------------------------------------------------------------------------------------------
// Building the input
// ---------------------------------------------------------------------------------------------

/// One YAML document of a `metallb.io` object; `spec` is a flow mapping.
fn object(api_version: &str, kind: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

fn pool(name: &str, spec: &str) -> String {
    object(V1BETA1, "IPAddressPool", name, spec)
}

fn l2(name: &str, spec: &str) -> String {
    object(V1BETA1, "L2Advertisement", name, spec)
}

fn bgp_ad(name: &str, spec: &str) -> String {
    object(V1BETA1, "BGPAdvertisement", name, spec)
}

fn community(name: &str, spec: &str) -> String {
    object(V1BETA1, "Community", name, spec)
}

fn bfd(name: &str, spec: &str) -> String {
    object(V1BETA1, "BFDProfile", name, spec)
}

fn peer(name: &str, spec: &str) -> String {
    object(V1BETA2, "BGPPeer", name, spec)
}

/// A Secret in the default namespace; `rest` holds `data`/`stringData` lines.
fn secret(name: &str, type_: &str, rest: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: {type_}\n{rest}\n"
    )
}

/// The pool most tests use: `p`, 192.0.2.0/24.
fn base_pool() -> String {
    pool("p", "{addresses: ['192.0.2.0/24']}")
}

/// BGPPeer `peer` with a valid minimal spec plus `extra` (flow-mapping entries, may be empty).
fn peer_with(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { ", " };
    peer(
        "peer",
        &format!("{{myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1'{sep}{extra}}}"),
    )
}

/// BGPPeer `peer` with exactly `spec` (for rules about the required fields).
fn peer_spec(spec: &str) -> String {
    peer("peer", &format!("{{{spec}}}"))
}

// ---------------------------------------------------------------------------------------------
// Checking the output
// ---------------------------------------------------------------------------------------------

fn read(yaml: &str) -> Objects {
    let mut objects = Objects::default();
    objects
        .add_yaml("test", yaml)
        .unwrap_or_else(|e| panic!("input not readable: {e}\n--- input:\n{yaml}"));
    objects
}

fn errors(yaml: &str) -> Vec<ConfigError> {
    validate(&read(yaml))
}

fn show(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e} (transient: {})", e.transient))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The configuration validates without any error.
fn assert_accepts(yaml: &str) {
    let found = errors(yaml);
    assert!(
        found.is_empty(),
        "expected no errors, got:\n{}\n--- input:\n{yaml}",
        show(&found)
    );
}

/// The configuration is rejected with an error on `kind`/`name` at exactly `field`, whose
/// reason contains `reason`, with the given transience; and every error concerns that object
/// (so the rest of the input is known to be fine).
fn assert_rejects(yaml: &str, kind: &str, name: &str, field: &str, transient: bool, reason: &str) {
    let found = errors(yaml);
    let hit = found.iter().find(|e| {
        e.kind == kind && e.name == name && e.field == field && e.reason.contains(reason)
    });
    let Some(hit) = hit else {
        panic!(
            "expected an error {kind}/{name}: {field}: ...{reason}..., got:\n{}\n--- input:\n{yaml}",
            show(&found)
        );
    };
    assert_eq!(
        hit.transient, transient,
        "transience of {hit}\n--- input:\n{yaml}"
    );
    let display = hit.to_string();
    assert!(
        display.starts_with(&format!("{kind}/{name}: {field}: ")),
        "display {display:?}"
    );
    let others: Vec<ConfigError> = found
        .iter()
        .filter(|e| e.kind != kind || e.name != name)
        .cloned()
        .collect();
    assert!(
        others.is_empty(),
        "errors on other objects than {kind}/{name}:\n{}\n--- input:\n{yaml}",
        show(&others)
    );
}

/// The configuration loads; its warnings are returned.
fn warnings(yaml: &str) -> Vec<String> {
    match Config::from_objects(&read(yaml)) {
        Ok(config) => config.warnings,
        Err(e) => panic!("expected the configuration to load, got:\n{e}\n--- input:\n{yaml}"),
    }
}

// ---------------------------------------------------------------------------------------------
// IPAddressPool
// ---------------------------------------------------------------------------------------------

#[test]
fn pool_without_addresses_is_rejected() {
    assert_rejects(
        &pool("p", "{addresses: []}"),
        "IPAddressPool",
        "p",
        "spec.addresses",
        false,
        "no addresses",
    );
    assert_accepts(&base_pool());
}

#[test]
fn pool_entry_that_is_not_a_cidr_or_range_is_rejected() {
    let rows = [
        ("192.0.2.0/33", "invalid CIDR"),
        ("192.0.2.256/24", "invalid CIDR"),
        ("192.0.2.7", "a single address must be written as a CIDR"),
        ("not-an-address", "invalid range start"),
        ("192.0.2.1-2001:db8::1", "range mixes IPv4 and IPv6"),
        ("2001:db8::/129", "invalid CIDR"),
    ];
    for (entry, reason) in rows {
        assert_rejects(
            &pool(
                "p",
                &format!("{{addresses: ['198.51.100.0/24', '{entry}']}}"),
            ),
            "IPAddressPool",
            "p",
            "spec.addresses[1]",
            false,
            &format!("{entry}: {reason}"),
        );
    }
    for good in ["192.0.2.0/32", "192.0.2.1-192.0.2.9", "2001:db8::/120"] {
        assert_accepts(&pool(
            "p",
            &format!("{{addresses: ['198.51.100.0/24', '{good}']}}"),
        ));
    }
}

#[test]
fn pool_range_with_start_after_end_is_rejected() {
    assert_rejects(
        &pool(
            "p",
            "{addresses: ['198.51.100.0/24', '192.0.2.9-192.0.2.1']}",
        ),
        "IPAddressPool",
        "p",
        "spec.addresses[1]",
        false,
        "192.0.2.9-192.0.2.1: start is after end",
    );
    assert_accepts(&pool(
        "p",
        "{addresses: ['198.51.100.0/24', '192.0.2.1-192.0.2.9']}",
    ));
    // A one-address range is fine.
    assert_accepts(&pool(
        "p",
        "{addresses: ['198.51.100.0/24', '192.0.2.9-192.0.2.9']}",
    ));
}

#[test]
fn overlapping_entries_within_one_pool_are_rejected() {
    assert_rejects(
        &pool(
            "p",
            "{addresses: ['192.0.2.0/25', '192.0.2.100-192.0.2.110']}",
        ),
        "IPAddressPool",
        "p",
        "spec.addresses[1]",
        false,
        "192.0.2.100-192.0.2.110 overlaps with 192.0.2.0/25 of the same pool",
    );
    // Adjacent, not overlapping.
    assert_accepts(&pool(
        "p",
        "{addresses: ['192.0.2.0/25', '192.0.2.128-192.0.2.140']}",
    ));
}

#[test]
fn overlapping_pools_are_rejected() {
    assert_rejects(
        &(pool("a", "{addresses: ['192.0.2.0/24']}")
            + &pool("b", "{addresses: ['198.51.100.0/24', '192.0.2.128/25']}")),
        "IPAddressPool",
        "b",
        "spec.addresses[1]",
        false,
        "192.0.2.128/25 overlaps with 192.0.2.0/24 of IPAddressPool/a",
    );
    assert_accepts(
        &(pool("a", "{addresses: ['192.0.2.0/25']}")
            + &pool("b", "{addresses: ['198.51.100.0/24', '192.0.2.128/25']}")),
    );
}

#[test]
fn pool_listing_a_namespace_twice_is_rejected() {
    assert_rejects(
        &pool(
            "p",
            "{addresses: ['192.0.2.0/24'], serviceAllocation: {namespaces: [web, web]}}",
        ),
        "IPAddressPool",
        "p",
        "spec.serviceAllocation.namespaces",
        false,
        "\"web\" is listed more than once",
    );
    assert_accepts(&pool(
        "p",
        "{addresses: ['192.0.2.0/24'], serviceAllocation: {namespaces: [web, db]}}",
    ));
}

#[test]
fn pool_with_duplicate_allocation_selectors_is_rejected() {
    for list in ["namespaceSelectors", "serviceSelectors"] {
        // The second is the first with its terms and values in another order: same meaning.
        let duplicate = format!(
            "{{addresses: ['192.0.2.0/24'], serviceAllocation: {{{list}: [\
             {{matchLabels: {{team: a}}, matchExpressions: [{{key: tier, operator: In, values: [blue, green]}}]}}, \
             {{matchExpressions: [{{key: tier, operator: In, values: [green, blue]}}], matchLabels: {{team: a}}}}]}}}}"
        );
        assert_rejects(
            &pool("p", &duplicate),
            "IPAddressPool",
            "p",
            &format!("spec.serviceAllocation.{list}[1]"),
            false,
            "duplicate selector",
        );
        let distinct = format!(
            "{{addresses: ['192.0.2.0/24'], serviceAllocation: {{{list}: [\
             {{matchLabels: {{team: a}}, matchExpressions: [{{key: tier, operator: In, values: [blue, green]}}]}}, \
             {{matchLabels: {{team: a}}, matchExpressions: [{{key: tier, operator: In, values: [blue]}}]}}]}}}}"
        );
        assert_accepts(&pool("p", &distinct));
    }
}

#[test]
fn pool_with_invalid_allocation_selectors_is_rejected() {
    let rows = [
        (
            "{key: team, operator: Foo, values: [a]}",
            "operator \"Foo\" on \"team\" is not one of In, NotIn, Exists, DoesNotExist",
        ),
        ("{key: team, operator: In}", "needs at least one value"),
        (
            "{key: team, operator: NotIn, values: []}",
            "needs at least one value",
        ),
        (
            "{key: team, operator: Exists, values: [a]}",
            "takes no values",
        ),
    ];
    for list in ["namespaceSelectors", "serviceSelectors"] {
        for (expression, reason) in rows {
            assert_rejects(
                &pool(
                    "p",
                    &format!(
                        "{{addresses: ['192.0.2.0/24'], serviceAllocation: {{{list}: [{{matchExpressions: [{expression}]}}]}}}}"
                    ),
                ),
                "IPAddressPool",
                "p",
                &format!("spec.serviceAllocation.{list}[0]"),
                false,
                reason,
            );
        }
        for expression in [
            "{key: team, operator: In, values: [a]}",
            "{key: team, operator: NotIn, values: [a]}",
            "{key: team, operator: Exists}",
            "{key: team, operator: DoesNotExist}",
        ] {
            assert_accepts(&pool(
                "p",
                &format!(
                    "{{addresses: ['192.0.2.0/24'], serviceAllocation: {{{list}: [{{matchExpressions: [{expression}]}}]}}}}"
                ),
            ));
        }
    }
}

#[test]
fn objects_outside_the_metallb_namespace_are_rejected() {
    let rows = [
        (V1BETA1, "IPAddressPool", "{addresses: ['192.0.2.0/24']}"),
        (V1BETA1, "L2Advertisement", "{}"),
        (V1BETA1, "BGPAdvertisement", "{}"),
        (
            V1BETA1,
            "Community",
            "{communities: [{name: gold, value: '65000:1'}]}",
        ),
        (V1BETA1, "BFDProfile", "{}"),
        (
            V1BETA2,
            "BGPPeer",
            "{myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1'}",
        ),
    ];
    for (api_version, kind, spec) in rows {
        let in_namespace = |ns: &str| {
            format!(
                "---\napiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x, namespace: {ns}}}\nspec: {spec}\n"
            )
        };
        assert_rejects(
            &in_namespace("default"),
            kind,
            "x",
            "metadata.namespace",
            false,
            "must be created in the metallb-system namespace, not default",
        );
        assert_accepts(&in_namespace("metallb-system"));
        // No namespace counts as metallb-system.
        assert_accepts(&object(api_version, kind, "x", spec));
    }
}

#[test]
fn two_pools_with_the_same_name_are_rejected() {
    assert_rejects(
        &(pool("p", "{addresses: ['192.0.2.0/24']}")
            + &pool("p", "{addresses: ['198.51.100.0/24']}")),
        "IPAddressPool",
        "p",
        "metadata.name",
        false,
        "another IPAddressPool has the same name",
    );
    assert_accepts(
        &(pool("p", "{addresses: ['192.0.2.0/24']}")
            + &pool("q", "{addresses: ['198.51.100.0/24']}")),
    );
}

// ---------------------------------------------------------------------------------------------
// Community
// ---------------------------------------------------------------------------------------------

#[test]
fn community_alias_with_an_invalid_value_is_rejected() {
    let rows = [
        ("65536:1", "first part is not a number in 0..=65535"),
        ("1:65536", "second part is not a number in 0..=65535"),
        ("gold", "expected a:b"),
        ("1:2:3", "second part is not a number"),
        ("large:1:2", "large:1:2"),
    ];
    for (value, reason) in rows {
        assert_rejects(
            &community(
                "c",
                &format!("{{communities: [{{name: gold, value: '{value}'}}]}}"),
            ),
            "Community",
            "c",
            "spec.communities[0].value",
            false,
            reason,
        );
    }
    for value in ["65535:65535", "0:0", "large:4294967295:1:2"] {
        assert_accepts(&community(
            "c",
            &format!("{{communities: [{{name: gold, value: '{value}'}}]}}"),
        ));
    }
}

#[test]
fn community_alias_defined_in_two_objects_is_rejected() {
    assert_rejects(
        &(community("c1", "{communities: [{name: gold, value: '65000:1'}]}")
            + &community("c2", "{communities: [{name: gold, value: '65000:2'}]}")),
        "Community",
        "c2",
        "spec.communities[0].name",
        false,
        "alias \"gold\" is already defined in Community/c1",
    );
    assert_accepts(
        &(community("c1", "{communities: [{name: gold, value: '65000:1'}]}")
            + &community("c2", "{communities: [{name: silver, value: '65000:1'}]}")),
    );
}

#[test]
fn community_alias_defined_twice_in_one_object_is_rejected() {
    assert_rejects(
        &community(
            "c",
            "{communities: [{name: gold, value: '65000:1'}, {name: gold, value: '65000:2'}]}",
        ),
        "Community",
        "c",
        "spec.communities[1].name",
        false,
        "already defined in Community/c",
    );
}

#[test]
fn community_alias_with_an_empty_name_is_rejected() {
    assert_rejects(
        &community("c", "{communities: [{name: '', value: '65000:1'}]}"),
        "Community",
        "c",
        "spec.communities[0].name",
        false,
        "alias name is empty",
    );
    assert_accepts(&community(
        "c",
        "{communities: [{name: g, value: '65000:1'}]}",
    ));
}

// ---------------------------------------------------------------------------------------------
// L2Advertisement
// ---------------------------------------------------------------------------------------------

#[test]
fn l2_advertisement_listing_a_pool_twice_is_rejected() {
    assert_rejects(
        &(base_pool() + &l2("l2", "{ipAddressPools: [p, p]}")),
        "L2Advertisement",
        "l2",
        "spec.ipAddressPools[1]",
        false,
        "\"p\" is listed more than once",
    );
    assert_accepts(&(base_pool() + &l2("l2", "{ipAddressPools: [p]}")));
}

#[test]
fn l2_advertisement_with_duplicate_selectors_is_rejected() {
    for list in [
        "nodeSelectors",
        "serviceSelectors",
        "ipAddressPoolSelectors",
    ] {
        assert_rejects(
            &(base_pool()
                + &l2(
                    "l2",
                    &format!(
                        "{{{list}: [{{matchLabels: {{a: b, c: d}}}}, {{matchLabels: {{c: d, a: b}}}}]}}"
                    ),
                )),
            "L2Advertisement",
            "l2",
            &format!("spec.{list}[1]"),
            false,
            "duplicate selector",
        );
        assert_accepts(
            &(base_pool()
                + &l2(
                    "l2",
                    &format!("{{{list}: [{{matchLabels: {{a: b}}}}, {{matchLabels: {{c: d}}}}]}}"),
                )),
        );
    }
}

#[test]
fn l2_advertisement_with_invalid_selectors_is_rejected() {
    let rows = [
        (
            "{key: zone, operator: Foo, values: [a]}",
            "operator \"Foo\"",
        ),
        ("{key: zone, operator: In}", "needs at least one value"),
    ];
    for list in [
        "nodeSelectors",
        "serviceSelectors",
        "ipAddressPoolSelectors",
    ] {
        for (expression, reason) in rows {
            assert_rejects(
                &(base_pool()
                    + &l2(
                        "l2",
                        &format!("{{{list}: [{{matchExpressions: [{expression}]}}]}}"),
                    )),
                "L2Advertisement",
                "l2",
                &format!("spec.{list}[0]"),
                false,
                reason,
            );
        }
        assert_accepts(
            &(base_pool()
                + &l2(
                    "l2",
                    &format!(
                        "{{{list}: [{{matchExpressions: [{{key: zone, operator: In, values: [a]}}]}}]}}"
                    ),
                )),
        );
    }
    // The same checks apply to a preference.
    assert_rejects(
        &(base_pool()
            + &l2(
                "l2",
                "{preferredNodeSelectors: [{weight: 10, preference: {matchExpressions: [{key: zone, operator: Foo}]}}]}",
            )),
        "L2Advertisement",
        "l2",
        "spec.preferredNodeSelectors[0].preference",
        false,
        "operator \"Foo\"",
    );
}

#[test]
fn l2_preferred_node_weight_outside_1_to_100_is_rejected() {
    let with_weight = |weight: i32| {
        base_pool()
            + &l2(
                "l2",
                &format!(
                    "{{preferredNodeSelectors: [{{weight: {weight}, preference: {{matchLabels: {{zone: a}}}}}}]}}"
                ),
            )
    };
    for weight in [0, 101, -1] {
        assert_rejects(
            &with_weight(weight),
            "L2Advertisement",
            "l2",
            "spec.preferredNodeSelectors[0].weight",
            false,
            &format!("weight {weight} is outside 1..=100"),
        );
    }
    for weight in [1, 100] {
        assert_accepts(&with_weight(weight));
    }
}

// ---------------------------------------------------------------------------------------------
// BGPAdvertisement
// ---------------------------------------------------------------------------------------------

#[test]
fn bgp_advertisement_with_duplicate_list_entries_is_rejected() {
    let rows = [
        ("communities", "['65000:1', '65000:1']", "\"65000:1\""),
        ("peers", "[peer, peer]", "\"peer\""),
        ("ipAddressPools", "[p, p]", "\"p\""),
    ];
    for (list, values, repeated) in rows {
        assert_rejects(
            &(base_pool() + &peer_with("") + &bgp_ad("ad", &format!("{{{list}: {values}}}"))),
            "BGPAdvertisement",
            "ad",
            &format!("spec.{list}[1]"),
            false,
            &format!("{repeated} is listed more than once"),
        );
    }
    assert_accepts(
        &(base_pool()
            + &peer_with("")
            + &bgp_ad(
                "ad",
                "{communities: ['65000:1', '65000:2'], peers: [peer], ipAddressPools: [p]}",
            )),
    );
}

#[test]
fn bgp_aggregation_length_outside_1_to_32_is_rejected() {
    for length in [33, 0] {
        assert_rejects(
            &(base_pool() + &bgp_ad("ad", &format!("{{aggregationLength: {length}}}"))),
            "BGPAdvertisement",
            "ad",
            "spec.aggregationLength",
            false,
            &format!("{length} is outside 1..=32"),
        );
    }
    for length in [32, 24] {
        assert_accepts(&(base_pool() + &bgp_ad("ad", &format!("{{aggregationLength: {length}}}"))));
    }
}

#[test]
fn bgp_aggregation_length_v6_outside_1_to_128_is_rejected() {
    let v6_pool = pool("p6", "{addresses: ['2001:db8::/120']}");
    for length in [129, 0] {
        assert_rejects(
            &(v6_pool.clone() + &bgp_ad("ad", &format!("{{aggregationLengthV6: {length}}}"))),
            "BGPAdvertisement",
            "ad",
            "spec.aggregationLengthV6",
            false,
            &format!("{length} is outside 1..=128"),
        );
    }
    for length in [128, 120] {
        assert_accepts(
            &(v6_pool.clone() + &bgp_ad("ad", &format!("{{aggregationLengthV6: {length}}}"))),
        );
    }
}

#[test]
fn bgp_service_selectors_with_a_non_default_aggregation_length_are_rejected() {
    let selectors = "serviceSelectors: [{matchLabels: {app: web}}]";
    assert_rejects(
        &(base_pool() + &bgp_ad("ad", &format!("{{{selectors}, aggregationLength: 24}}"))),
        "BGPAdvertisement",
        "ad",
        "spec.serviceSelectors",
        false,
        "default aggregation lengths",
    );
    assert_rejects(
        &(base_pool() + &bgp_ad("ad", &format!("{{{selectors}, aggregationLengthV6: 64}}"))),
        "BGPAdvertisement",
        "ad",
        "spec.serviceSelectors",
        false,
        "default aggregation lengths",
    );
    assert_accepts(
        &(base_pool()
            + &bgp_ad(
                "ad",
                &format!("{{{selectors}, aggregationLength: 32, aggregationLengthV6: 128}}"),
            )),
    );
    assert_accepts(&(base_pool() + &bgp_ad("ad", "{aggregationLength: 24}")));
}

#[test]
fn bgp_invalid_community_literal_is_rejected_permanently() {
    for (value, reason) in [
        ("65536:1", "first part is not a number in 0..=65535"),
        ("large:1:2", "large:1:2"),
    ] {
        assert_rejects(
            &(base_pool() + &bgp_ad("ad", &format!("{{communities: ['{value}']}}"))),
            "BGPAdvertisement",
            "ad",
            "spec.communities[0]",
            false,
            reason,
        );
    }
    assert_accepts(&(base_pool() + &bgp_ad("ad", "{communities: ['65535:1', 'large:64500:1:2']}")));
}

#[test]
fn bgp_unknown_community_alias_is_rejected_transiently() {
    assert_rejects(
        &(base_pool() + &bgp_ad("ad", "{communities: [foo]}")),
        "BGPAdvertisement",
        "ad",
        "spec.communities[0]",
        true,
        "\"foo\" is neither a:b, large:a:b:c nor a known Community alias",
    );
    assert_accepts(
        &(base_pool()
            + &community("c", "{communities: [{name: foo, value: '65000:100'}]}")
            + &bgp_ad("ad", "{communities: [foo]}")),
    );
}

#[test]
fn two_bgp_advertisements_with_identical_specs_are_rejected() {
    assert_rejects(
        &(base_pool()
            + &bgp_ad("a", "{ipAddressPools: [p]}")
            + &bgp_ad("b", "{ipAddressPools: [p]}")),
        "BGPAdvertisement",
        "b",
        "spec",
        false,
        "identical to BGPAdvertisement/a",
    );
    assert_accepts(
        &(base_pool()
            + &bgp_ad("a", "{ipAddressPools: [p]}")
            + &bgp_ad("b", "{ipAddressPools: [p], communities: ['65000:1']}")),
    );
}

#[test]
fn bgp_aggregation_length_shorter_than_the_pool_prefix_is_rejected() {
    assert_rejects(
        &(base_pool() + &bgp_ad("ad", "{aggregationLength: 16}")),
        "BGPAdvertisement",
        "ad",
        "spec.aggregationLength",
        false,
        "16 is shorter than /24 of 192.0.2.0-192.0.2.255 in IPAddressPool/p",
    );
    for length in [24, 28] {
        assert_accepts(&(base_pool() + &bgp_ad("ad", &format!("{{aggregationLength: {length}}}"))));
    }
}

#[test]
fn bgp_aggregation_length_shorter_than_a_range_summary_is_rejected() {
    // 192.0.2.2-192.0.2.254 summarises to CIDRs whose shortest is /26.
    let range_pool = pool("r", "{addresses: ['192.0.2.2-192.0.2.254']}");
    assert_rejects(
        &(range_pool.clone() + &bgp_ad("ad", "{aggregationLength: 25}")),
        "BGPAdvertisement",
        "ad",
        "spec.aggregationLength",
        false,
        "25 is shorter than /26 of 192.0.2.2-192.0.2.254 in IPAddressPool/r",
    );
    assert_accepts(&(range_pool + &bgp_ad("ad", "{aggregationLength: 26}")));
}

#[test]
fn bgp_aggregation_length_v6_shorter_than_the_pool_prefix_is_rejected() {
    let v6_pool = pool("p6", "{addresses: ['2001:db8::/120']}");
    assert_rejects(
        &(v6_pool.clone() + &bgp_ad("ad", "{aggregationLengthV6: 112}")),
        "BGPAdvertisement",
        "ad",
        "spec.aggregationLengthV6",
        false,
        "112 is shorter than /120",
    );
    assert_accepts(&(v6_pool + &bgp_ad("ad", "{aggregationLengthV6: 124}")));
}

#[test]
fn bgp_advertisements_of_one_pool_with_different_local_pref_are_rejected() {
    let peers = peer(
        "p1",
        "{myASN: 64500, peerASN: 64500, peerAddress: '198.51.100.1'}",
    ) + &peer(
        "p2",
        "{myASN: 64500, peerASN: 64500, peerAddress: '198.51.100.2'}",
    );
    let pair = |a: &str, b: &str| {
        base_pool()
            + &peers
            + &bgp_ad("a", &format!("{{ipAddressPools: [p], localPref: 100{a}}}"))
            + &bgp_ad("b", &format!("{{ipAddressPools: [p], localPref: 200{b}}}"))
    };
    for (a, b) in [
        ("", ""),
        (", peers: [p1]", ", peers: [p1, p2]"),
        (", peers: [p1]", ""),
    ] {
        assert_rejects(
            &pair(a, b),
            "BGPAdvertisement",
            "b",
            "spec.localPref",
            false,
            "LOCAL_PREF 200 conflicts with 100 of BGPAdvertisement/a for IPAddressPool/p",
        );
    }
    // Near misses: something tells the two advertisements apart.
    assert_accepts(&pair("", ", aggregationLength: 24"));
    assert_accepts(&pair(", peers: [p1]", ", peers: [p2]"));
    assert_accepts(&pair("", ", serviceSelectors: [{matchLabels: {app: web}}]"));
    assert_accepts(&pair(", serviceSelectors: [{matchLabels: {app: web}}]", ""));
    // Same LOCAL_PREF: no conflict.
    assert_accepts(
        &(base_pool()
            + &bgp_ad("a", "{ipAddressPools: [p], localPref: 100}")
            + &bgp_ad(
                "b",
                "{ipAddressPools: [p], localPref: 100, communities: ['65000:1']}",
            )),
    );
}

#[test]
fn bgp_advertisement_naming_an_unknown_peer_only_warns() {
    let yaml = base_pool() + &bgp_ad("ad", "{peers: [nobody]}");
    assert_accepts(&yaml);
    let found = warnings(&yaml);
    assert!(
        found
            .iter()
            .any(|w| w.contains("BGPAdvertisement/ad: spec.peers[0]") && w.contains("\"nobody\"")),
        "warnings: {found:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// BGPPeer
// ---------------------------------------------------------------------------------------------

#[test]
fn bgp_peer_with_my_asn_zero_is_rejected() {
    assert_rejects(
        &peer_spec("myASN: 0, peerASN: 64501, peerAddress: '198.51.100.1'"),
        "BGPPeer",
        "peer",
        "spec.myASN",
        false,
        "myASN must not be 0",
    );
    assert_accepts(&peer_spec(
        "myASN: 1, peerASN: 64501, peerAddress: '198.51.100.1'",
    ));
}

#[test]
fn bgp_peer_without_peer_asn_or_dynamic_asn_is_rejected() {
    assert_rejects(
        &peer_spec("myASN: 64500, peerAddress: '198.51.100.1'"),
        "BGPPeer",
        "peer",
        "spec.peerASN",
        false,
        "one of peerASN and dynamicASN is required",
    );
    assert_accepts(&peer_spec(
        "myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1'",
    ));
}

#[test]
fn bgp_peer_with_both_peer_asn_and_dynamic_asn_is_rejected() {
    assert_rejects(
        &peer_with("dynamicASN: external"),
        "BGPPeer",
        "peer",
        "spec.dynamicASN",
        false,
        "peerASN and dynamicASN are mutually exclusive",
    );
    assert_accepts(&peer_with(""));
}

#[test]
fn bgp_peer_with_dynamic_asn_is_rejected() {
    for mode in ["internal", "external"] {
        assert_rejects(
            &peer_spec(&format!(
                "myASN: 64500, dynamicASN: {mode}, peerAddress: '198.51.100.1'"
            )),
            "BGPPeer",
            "peer",
            "spec.dynamicASN",
            false,
            "spec.dynamicASN is not supported by lb's BGP speaker",
        );
    }
    assert_rejects(
        &peer_spec("myASN: 64500, dynamicASN: sideways, peerAddress: '198.51.100.1'"),
        "BGPPeer",
        "peer",
        "spec.dynamicASN",
        false,
        "\"sideways\" is neither internal nor external",
    );
}

#[test]
fn bgp_peer_with_ebgp_multihop_to_its_own_asn_is_rejected() {
    assert_rejects(
        &peer_spec("myASN: 64500, peerASN: 64500, peerAddress: '198.51.100.1', ebgpMultiHop: true"),
        "BGPPeer",
        "peer",
        "spec.ebgpMultiHop",
        false,
        "ebgpMultiHop is for eBGP only",
    );
    assert_accepts(&peer_with("ebgpMultiHop: true"));
    assert_accepts(&peer_spec(
        "myASN: 64500, peerASN: 64500, peerAddress: '198.51.100.1'",
    ));
}

#[test]
fn bgp_peer_without_peer_address_or_interface_is_rejected() {
    assert_rejects(
        &peer_spec("myASN: 64500, peerASN: 64501"),
        "BGPPeer",
        "peer",
        "spec.peerAddress",
        false,
        "one of peerAddress and interface is required",
    );
    assert_accepts(&peer_with(""));
}

#[test]
fn bgp_peer_with_an_interface_is_rejected_as_unsupported() {
    assert_rejects(
        &peer_spec("myASN: 64500, peerASN: 64501, interface: eth0"),
        "BGPPeer",
        "peer",
        "spec.interface",
        false,
        "spec.interface is not supported",
    );
    assert_rejects(
        &peer_with("interface: eth0"),
        "BGPPeer",
        "peer",
        "spec.interface",
        false,
        "peerAddress and interface are mutually exclusive",
    );
}

#[test]
fn bgp_peer_with_unparsable_addresses_is_rejected() {
    let rows = [
        (
            "myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.300'",
            "spec.peerAddress",
            "\"198.51.100.300\" is not an IP address",
        ),
        (
            "myASN: 64500, peerASN: 64501, peerAddress: 'peer.example'",
            "spec.peerAddress",
            "\"peer.example\" is not an IP address",
        ),
        (
            "myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1', routerID: '1.2.3'",
            "spec.routerID",
            "\"1.2.3\" is not an IPv4 address",
        ),
        (
            "myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1', routerID: '2001:db8::1'",
            "spec.routerID",
            "\"2001:db8::1\" is not an IPv4 address",
        ),
        (
            "myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1', sourceAddress: 'nope'",
            "spec.sourceAddress",
            "\"nope\" is not an IP address",
        ),
    ];
    for (spec, field, reason) in rows {
        assert_rejects(&peer_spec(spec), "BGPPeer", "peer", field, false, reason);
    }
    assert_accepts(&peer_with(
        "routerID: '192.0.2.1', sourceAddress: '198.51.100.10'",
    ));
    assert_accepts(&peer_spec(
        "myASN: 64500, peerASN: 64501, peerAddress: '2001:db8::1', sourceAddress: '2001:db8::2'",
    ));
}

#[test]
fn bgp_peer_hold_time_below_three_seconds_is_rejected() {
    for hold in ["2s", "1s", "2500ms"] {
        assert_rejects(
            &peer_with(&format!("holdTime: {hold}")),
            "BGPPeer",
            "peer",
            "spec.holdTime",
            false,
            "must be 0 or at least 3s",
        );
    }
    for hold in ["0s", "3s", "90s", "1m30s", "65535s"] {
        assert_accepts(&peer_with(&format!("holdTime: {hold}")));
    }
}

#[test]
fn bgp_peer_hold_time_beyond_the_open_field_is_rejected_not_clamped() {
    for hold in ["65536s", "24h"] {
        assert_rejects(
            &peer_with(&format!("holdTime: {hold}")),
            "BGPPeer",
            "peer",
            "spec.holdTime",
            false,
            "must be at most 65535s",
        );
    }
}

#[test]
fn bgp_peer_with_unparsable_durations_is_rejected() {
    for field in ["holdTime", "keepaliveTime", "connectTime"] {
        for (value, reason) in [
            ("1x", "unknown unit \"x\""),
            ("'90'", "missing unit"),
            ("-5s", "cannot be negative"),
        ] {
            assert_rejects(
                &peer_with(&format!("{field}: {value}")),
                "BGPPeer",
                "peer",
                &format!("spec.{field}"),
                false,
                reason,
            );
        }
    }
}

#[test]
fn bgp_peer_keepalive_longer_than_hold_time_is_rejected() {
    assert_rejects(
        &peer_with("holdTime: 30s, keepaliveTime: 60s"),
        "BGPPeer",
        "peer",
        "spec.keepaliveTime",
        false,
        "60s is longer than the hold time 30s",
    );
    assert_accepts(&peer_with("holdTime: 30s, keepaliveTime: 10s"));
    assert_accepts(&peer_with("holdTime: 30s, keepaliveTime: 30s"));
}

#[test]
fn bgp_peer_connect_time_outside_1s_to_65535s_is_rejected() {
    for connect in ["0s", "70000s", "500ms"] {
        assert_rejects(
            &peer_with(&format!("connectTime: {connect}")),
            "BGPPeer",
            "peer",
            "spec.connectTime",
            false,
            "is outside 1s..=65535s",
        );
    }
    for connect in ["1s", "65535s", "10s"] {
        assert_accepts(&peer_with(&format!("connectTime: {connect}")));
    }
}

#[test]
fn bgp_peer_frr_only_fields_are_rejected_as_unsupported() {
    for (extra, field) in [
        ("localASN: 64510", "spec.localASN"),
        ("vrf: red", "spec.vrf"),
    ] {
        assert_rejects(
            &peer_with(extra),
            "BGPPeer",
            "peer",
            field,
            false,
            &format!("{field} is not supported by lb's BGP speaker"),
        );
    }
    // An empty VRF is the default one.
    assert_accepts(&peer_with("vrf: ''"));
}

#[test]
fn bgp_peer_with_duplicate_node_selectors_is_rejected() {
    assert_rejects(
        &peer_with("nodeSelectors: [{matchLabels: {rack: r1}}, {matchLabels: {rack: r1}}]"),
        "BGPPeer",
        "peer",
        "spec.nodeSelectors[1]",
        false,
        "duplicate selector",
    );
    assert_rejects(
        &peer_with("nodeSelectors: [{matchExpressions: [{key: rack, operator: Foo}]}]"),
        "BGPPeer",
        "peer",
        "spec.nodeSelectors[0]",
        false,
        "operator \"Foo\"",
    );
    assert_accepts(&peer_with(
        "nodeSelectors: [{matchLabels: {rack: r1}}, {matchLabels: {rack: r2}}]",
    ));
}

#[test]
fn bgp_peer_with_password_and_password_secret_is_rejected() {
    let secret = secret(
        "bgp-pass",
        "kubernetes.io/basic-auth",
        "stringData: {password: x}",
    );
    assert_rejects(
        &(secret.clone() + &peer_with("password: x, passwordSecret: {name: bgp-pass}")),
        "BGPPeer",
        "peer",
        "spec.passwordSecret",
        false,
        "password and passwordSecret are mutually exclusive",
    );
    assert_accepts(&(secret + &peer_with("passwordSecret: {name: bgp-pass}")));
    assert_accepts(&peer_with("password: x"));
}

#[test]
fn bgp_peer_password_secret_that_does_not_exist_is_rejected_transiently() {
    let yaml = peer_with("passwordSecret: {name: bgp-pass}");
    assert_rejects(
        &yaml,
        "BGPPeer",
        "peer",
        "spec.passwordSecret",
        true,
        "Secret metallb-system/bgp-pass does not exist",
    );
    let err = Config::from_objects(&read(&yaml)).unwrap_err();
    assert!(err.all_transient(), "{err}");
    // A Secret of that name in another namespace is not the one referred to.
    let elsewhere = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: bgp-pass, namespace: default}\n\
                     type: kubernetes.io/basic-auth\nstringData: {password: x}\n";
    assert_rejects(
        &(elsewhere.to_string() + &yaml),
        "BGPPeer",
        "peer",
        "spec.passwordSecret",
        true,
        "does not exist",
    );
    assert_accepts(
        &(elsewhere.to_string()
            + &peer_with("passwordSecret: {name: bgp-pass, namespace: default}")),
    );
}

#[test]
fn bgp_peer_password_secret_of_the_wrong_type_is_rejected_permanently() {
    assert_rejects(
        &(secret("bgp-pass", "Opaque", "stringData: {password: x}")
            + &peer_with("passwordSecret: {name: bgp-pass}")),
        "BGPPeer",
        "peer",
        "spec.passwordSecret",
        false,
        "has type \"Opaque\", not kubernetes.io/basic-auth",
    );
}

#[test]
fn bgp_peer_password_secret_without_a_password_key_is_rejected() {
    let yaml = secret(
        "bgp-pass",
        "kubernetes.io/basic-auth",
        "stringData: {username: x}",
    ) + &peer_with("passwordSecret: {name: bgp-pass}");
    assert_rejects(
        &yaml,
        "BGPPeer",
        "peer",
        "spec.passwordSecret",
        false,
        "has no `password` key",
    );
    for body in ["stringData: {password: x}", "data: {password: eA==}"] {
        assert_accepts(
            &(secret("bgp-pass", "kubernetes.io/basic-auth", body)
                + &peer_with("passwordSecret: {name: bgp-pass}")),
        );
    }
}

#[test]
fn bgp_peer_naming_a_missing_bfd_profile_is_rejected_transiently() {
    assert_rejects(
        &peer_with("bfdProfile: fast"),
        "BGPPeer",
        "peer",
        "spec.bfdProfile",
        true,
        "no BFDProfile named \"fast\"",
    );
    // An existing profile: accepted, and BFD runs (no "not implemented" warning any more).
    let yaml = bfd("fast", "{}") + &peer_with("bfdProfile: fast");
    assert_accepts(&yaml);
    let found = warnings(&yaml);
    assert!(
        !found.iter().any(|w| w.contains("bfdProfile")),
        "warnings: {found:?}"
    );
}

#[test]
fn bgp_peer_disable_mp_only_warns() {
    let yaml = peer_with("disableMP: true");
    assert_accepts(&yaml);
    let found = warnings(&yaml);
    assert!(
        found
            .iter()
            .any(|w| w.contains("BGPPeer/peer: spec.disableMP")),
        "warnings: {found:?}"
    );
}

#[test]
fn two_bgp_peers_with_the_same_address_and_port_are_rejected() {
    let two = |second: &str| {
        peer(
            "a",
            "{myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1'}",
        ) + &peer("b", &format!("{{myASN: 64500, peerASN: 64502, {second}}}"))
    };
    assert_rejects(
        &two("peerAddress: '198.51.100.1'"),
        "BGPPeer",
        "b",
        "spec.peerAddress",
        false,
        "198.51.100.1:179 is already the peer of BGPPeer/a",
    );
    assert_rejects(
        &two("peerAddress: '198.51.100.1', peerPort: 179"),
        "BGPPeer",
        "b",
        "spec.peerAddress",
        false,
        "is already the peer of BGPPeer/a",
    );
    assert_accepts(&two("peerAddress: '198.51.100.1', peerPort: 1179"));
    assert_accepts(&two("peerAddress: '198.51.100.2'"));
    // Different nodes open the two sessions.
    assert_accepts(&two(
        "peerAddress: '198.51.100.1', nodeSelectors: [{matchLabels: {rack: r1}}]",
    ));
}

#[test]
fn bgp_peer_port_outside_1_to_16384_is_rejected() {
    for port in [0, 16385] {
        assert_rejects(
            &peer_with(&format!("peerPort: {port}")),
            "BGPPeer",
            "peer",
            "spec.peerPort",
            false,
            &format!("{port} is outside 1..=16384"),
        );
    }
    for port in [1, 16384, 179] {
        assert_accepts(&peer_with(&format!("peerPort: {port}")));
    }
}

#[test]
fn v1beta1_bgp_peer_is_read_as_v1beta2_with_a_deprecation_warning() {
    let yaml = object(
        V1BETA1,
        "BGPPeer",
        "old",
        "{myASN: 64500, peerASN: 64501, peerAddress: '198.51.100.1', holdTime: 30s}",
    );
    let objects = read(&yaml);
    assert!(
        objects
            .warnings
            .iter()
            .any(|w| w.contains("BGPPeer/old") && w.contains("deprecated")),
        "warnings: {:?}",
        objects.warnings
    );
    assert_eq!(objects.peers.len(), 1);
    assert!(validate(&objects).is_empty());
    let config = Config::from_objects(&objects).unwrap();
    let peer = &config.peers[0];
    assert_eq!(peer.name, "old");
    assert_eq!((peer.my_asn, peer.peer_asn), (64500, 64501));
    assert_eq!(peer.address.to_string(), "198.51.100.1");
    assert_eq!(peer.hold_time.as_secs(), 30);
}

// ---------------------------------------------------------------------------------------------
// BFDProfile
// ---------------------------------------------------------------------------------------------

#[test]
fn bfd_profile_values_out_of_range_are_rejected() {
    let rows = [
        ("receiveInterval", 5, 10, "5 is outside 10..=60000"),
        (
            "receiveInterval",
            60001,
            60000,
            "60001 is outside 10..=60000",
        ),
        ("transmitInterval", 9, 10, "9 is outside 10..=60000"),
        ("echoInterval", 9, 10, "9 is outside 10..=60000"),
        ("detectMultiplier", 1, 2, "1 is outside 2..=255"),
        ("detectMultiplier", 256, 255, "256 is outside 2..=255"),
        ("minimumTtl", 0, 1, "0 is outside 1..=254"),
        ("minimumTtl", 255, 254, "255 is outside 1..=254"),
    ];
    for (field, bad, good, reason) in rows {
        assert_rejects(
            &bfd("b", &format!("{{{field}: {bad}}}")),
            "BFDProfile",
            "b",
            &format!("spec.{field}"),
            false,
            reason,
        );
        assert_accepts(&bfd("b", &format!("{{{field}: {good}}}")));
    }
}

#[test]
fn two_bfd_profiles_with_the_same_name_are_rejected() {
    assert_rejects(
        &(bfd("b", "{}") + &bfd("b", "{receiveInterval: 100}")),
        "BFDProfile",
        "b",
        "metadata.name",
        false,
        "another BFDProfile has the same name",
    );
    assert_accepts(&(bfd("b", "{}") + &bfd("c", "{receiveInterval: 100}")));
}

// ---------------------------------------------------------------------------------------------
// Across objects
// ---------------------------------------------------------------------------------------------

#[test]
fn bfd_echo_mode_is_rejected_naming_the_field() {
    // lb's BFD has no echo function: a profile asking for it is refused, whatever uses it.
    assert_rejects(
        &bfd("echo", "{echoMode: true}"),
        "BFDProfile",
        "echo",
        "spec.echoMode",
        false,
        "echo mode is not implemented",
    );
    assert_accepts(
        &(pool("p", "{addresses: ['2001:db8::/120']}")
            + &bfd("echo", "{echoMode: false, echoInterval: 100}")
            + &peer_with("bfdProfile: echo")
            + &bgp_ad("ad", "{}")),
    );
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let yaml = pool("p", "{addresses: ['192.0.2.9-192.0.2.1']}")
        + &bfd("b", "{detectMultiplier: 1}")
        + &peer_with("peerPort: 0, holdTime: 2s");
    let found = errors(&yaml);
    let fields: Vec<String> = found
        .iter()
        .map(|e| format!("{}/{}: {}", e.kind, e.name, e.field))
        .collect();
    assert_eq!(
        fields,
        [
            "BFDProfile/b: spec.detectMultiplier",
            "BGPPeer/peer: spec.holdTime",
            "BGPPeer/peer: spec.peerPort",
            "IPAddressPool/p: spec.addresses[0]",
        ],
        "{}",
        show(&found)
    );
}
