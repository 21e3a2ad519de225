//! The pre-v0.13 MetalLB configuration (ConfigMap `metallb-system/config`, key `config`)
//! converted to `metallb.io` objects, following MetalLB's `configmaptocrs` rules (reference
//! a.4): peers become `peer1..N` (hold time defaulted to 90 s, timers truncated to whole
//! seconds), each pool an `IPAddressPool`, each pool BGP advertisement a
//! `bgpadvertisement<i>` (an empty one for a `bgp` pool without any), each `layer2` pool an
//! `l2advertisement<i>`, all community aliases one `Community` named `communities`, and names
//! Kubernetes would refuse made acceptable.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use serde::{Deserialize, Serialize};

use crate::crd::{
    BFDProfile, BFDProfileSpec, BGPAdvertisement, BGPAdvertisementSpec, Community, CommunityAlias,
    CommunitySpec, IPAddressPool, IPAddressPoolSpec, L2Advertisement, L2AdvertisementSpec, v1beta2,
};
use crate::duration::{check_hold_time, format_go_duration, parse_whole_seconds};
use crate::input::{DEFAULT_NAMESPACE, Objects};

/// Why a legacy configuration cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("legacy ConfigMap {config_map}: {field}: {reason}")]
pub struct LegacyError {
    /// `namespace/name` of the ConfigMap.
    pub config_map: String,
    /// Where in the `config` key (`peers[0].hold-time`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// The `config` key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct LegacyConfig {
    #[serde(default)]
    peers: Vec<LegacyPeer>,
    #[serde(default)]
    bgp_communities: BTreeMap<String, String>,
    #[serde(default)]
    address_pools: Vec<LegacyPool>,
    #[serde(default)]
    bfd_profiles: Vec<LegacyBfd>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct LegacyPeer {
    my_asn: u32,
    peer_asn: u32,
    peer_address: String,
    #[serde(default)]
    source_address: Option<String>,
    #[serde(default)]
    peer_port: Option<u16>,
    #[serde(default)]
    hold_time: Option<String>,
    #[serde(default)]
    keepalive_time: Option<String>,
    #[serde(default)]
    router_id: Option<String>,
    #[serde(default)]
    node_selectors: Vec<LegacySelector>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    bfd_profile: Option<String>,
    #[serde(default)]
    ebgp_multihop: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct LegacySelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<LegacyExpression>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyExpression {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct LegacyPool {
    name: String,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    auto_assign: Option<bool>,
    #[serde(default)]
    avoid_buggy_ips: Option<bool>,
    #[serde(default)]
    bgp_advertisements: Vec<LegacyBgpAdvertisement>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct LegacyBgpAdvertisement {
    #[serde(default)]
    aggregation_length: Option<i32>,
    #[serde(default)]
    aggregation_length_v6: Option<i32>,
    #[serde(default)]
    localpref: Option<u32>,
    #[serde(default)]
    communities: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct LegacyBfd {
    name: String,
    #[serde(default)]
    receive_interval: Option<u32>,
    #[serde(default)]
    transmit_interval: Option<u32>,
    #[serde(default)]
    detect_multiplier: Option<u32>,
    #[serde(default)]
    echo_interval: Option<u32>,
    #[serde(default)]
    echo_mode: Option<bool>,
    #[serde(default)]
    passive_mode: Option<bool>,
    #[serde(default)]
    minimum_ttl: Option<u32>,
}

/// The objects a legacy configuration becomes, in MetalLB's output order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Converted {
    /// `peer1..N`.
    pub peers: Vec<v1beta2::BGPPeer>,
    /// One per address pool.
    pub pools: Vec<IPAddressPool>,
    /// `bgpadvertisement1..N`.
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    /// `l2advertisement1..N`.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// One per BFD profile.
    pub bfd_profiles: Vec<BFDProfile>,
    /// `communities`, when there are aliases.
    pub communities: Vec<Community>,
}

impl Converted {
    /// Every object as one multi-document YAML stream.
    ///
    /// Fails only if serialisation fails, which would be a bug in the types.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::ser::Error> {
        let mut out = String::new();
        let mut doc = |text: String| {
            out.push_str("---\n");
            out.push_str(&text);
        };
        for o in &self.peers {
            doc(serde_saphyr::to_string(o)?);
        }
        for o in &self.pools {
            doc(serde_saphyr::to_string(o)?);
        }
        for o in &self.bgp_advertisements {
            doc(serde_saphyr::to_string(o)?);
        }
        for o in &self.l2_advertisements {
            doc(serde_saphyr::to_string(o)?);
        }
        for o in &self.bfd_profiles {
            doc(serde_saphyr::to_string(o)?);
        }
        for o in &self.communities {
            doc(serde_saphyr::to_string(o)?);
        }
        Ok(out)
    }

    /// Adds the objects to `objects`.
    pub fn add_to(self, objects: &mut Objects) {
        objects.peers.extend(self.peers);
        objects.pools.extend(self.pools);
        objects.bgp_advertisements.extend(self.bgp_advertisements);
        objects.l2_advertisements.extend(self.l2_advertisements);
        objects.bfd_profiles.extend(self.bfd_profiles);
        objects.communities.extend(self.communities);
    }
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        ..ObjectMeta::default()
    }
}

/// A name Kubernetes accepts: at most 63 characters, lower case, `_` as `-`, starting at the
/// first letter, ending with a letter or digit. `None` when nothing is left.
fn kubernetes_name(name: &str) -> Option<String> {
    let truncated: String = name.chars().take(63).collect();
    let lowered = truncated.to_lowercase().replace('_', "-");
    let start = lowered.find(|c: char| c.is_ascii_lowercase())?;
    let kept: String = lowered
        .get(start..)?
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.')
        .collect();
    let trimmed = kept.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// Converts one legacy ConfigMap.
///
/// Fails when the `config` key is missing or not valid YAML of the legacy format (unknown
/// keys included), when a hold or keepalive time does not parse or a hold time is non-zero
/// and under 3 s, or when a name cannot be made acceptable to Kubernetes.
pub fn convert(config_map: &ConfigMap) -> Result<Converted, LegacyError> {
    let namespace = config_map
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    let cm_name = format!(
        "{namespace}/{}",
        config_map.metadata.name.as_deref().unwrap_or("config")
    );
    let err = |field: &str, reason: String| LegacyError {
        config_map: cm_name.clone(),
        field: field.into(),
        reason,
    };
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get("config"))
        .ok_or_else(|| err("data", "no `config` key".into()))?;
    let config: LegacyConfig = if text.trim().is_empty() {
        LegacyConfig::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| err("data.config", e.to_string()))?
    };
    let rename = |field: &str, name: &str| {
        kubernetes_name(name)
            .ok_or_else(|| err(field, format!("{name:?} cannot be made a Kubernetes name")))
    };

    let mut out = Converted::default();
    for (i, p) in config.peers.iter().enumerate() {
        let field = |f: &str| format!("peers[{i}].{f}");
        let hold = match p.hold_time.as_deref().filter(|h| !h.is_empty()) {
            None => Duration::from_secs(90),
            Some(h) => {
                let d =
                    parse_whole_seconds(h).map_err(|r| err(&field("hold-time"), r.to_string()))?;
                check_hold_time(d).map_err(|r| err(&field("hold-time"), r.to_string()))?;
                d
            }
        };
        let keepalive = p
            .keepalive_time
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| {
                parse_whole_seconds(k)
                    .map(format_go_duration)
                    .map_err(|r| err(&field("keepalive-time"), r.to_string()))
            })
            .transpose()?;
        let bfd_profile = p
            .bfd_profile
            .as_deref()
            .filter(|b| !b.is_empty())
            .map(|b| rename(&field("bfd-profile"), b))
            .transpose()?;
        let spec = v1beta2::BGPPeerSpec {
            my_asn: p.my_asn,
            peer_asn: Some(p.peer_asn),
            peer_address: Some(p.peer_address.clone()),
            source_address: p.source_address.clone().filter(|s| !s.is_empty()),
            peer_port: p.peer_port.filter(|x| *x != 0),
            hold_time: Some(format_go_duration(hold)),
            keepalive_time: keepalive,
            router_id: p.router_id.clone().filter(|s| !s.is_empty()),
            node_selectors: p.node_selectors.iter().map(selector).collect(),
            password: p.password.clone().filter(|s| !s.is_empty()),
            bfd_profile,
            ebgp_multi_hop: p.ebgp_multihop,
            ..Default::default()
        };
        let mut peer = v1beta2::BGPPeer::new(&format!("peer{}", i + 1), spec);
        peer.metadata = meta(&format!("peer{}", i + 1), &namespace);
        out.peers.push(peer);
    }

    let mut bgp_index = 1;
    let mut l2_index = 1;
    for (i, p) in config.address_pools.iter().enumerate() {
        let name = rename(&format!("address-pools[{i}].name"), &p.name)?;
        // MetalLB's own reading of this ConfigMap refused these; its converter tool made a
        // pool that nothing announces (a typo such as `l2` lost every announcement silently).
        let protocol = format!("address-pools[{i}].protocol");
        match p.protocol.as_str() {
            "bgp" => {}
            "layer2" if p.bgp_advertisements.is_empty() => {}
            "layer2" => {
                return Err(err(
                    &format!("address-pools[{i}].bgp-advertisements"),
                    "not allowed in a layer2 pool (protocol: bgp announces over BGP)".into(),
                ));
            }
            "" => return Err(err(&protocol, "missing: layer2 or bgp".into())),
            other => {
                return Err(err(
                    &protocol,
                    format!("unknown protocol {other:?}: layer2 or bgp"),
                ));
            }
        }
        out.pools.push(IPAddressPool {
            metadata: meta(&name, &namespace),
            spec: IPAddressPoolSpec {
                addresses: p.addresses.clone(),
                auto_assign: p.auto_assign,
                avoid_buggy_ips: p.avoid_buggy_ips.unwrap_or(false),
                service_allocation: None,
            },
            status: None,
        });
        let mut ads: Vec<BGPAdvertisementSpec> = p
            .bgp_advertisements
            .iter()
            .map(|a| BGPAdvertisementSpec {
                aggregation_length: a.aggregation_length,
                aggregation_length_v6: a.aggregation_length_v6,
                local_pref: a.localpref.unwrap_or(0),
                communities: a.communities.clone(),
                ip_address_pools: vec![name.clone()],
                ..Default::default()
            })
            .collect();
        if ads.is_empty() && p.protocol == "bgp" {
            ads.push(BGPAdvertisementSpec {
                ip_address_pools: vec![name.clone()],
                ..Default::default()
            });
        }
        for spec in ads {
            let ad_name = format!("bgpadvertisement{bgp_index}");
            bgp_index += 1;
            out.bgp_advertisements.push(BGPAdvertisement {
                metadata: meta(&ad_name, &namespace),
                spec,
            });
        }
        if p.protocol == "layer2" {
            let ad_name = format!("l2advertisement{l2_index}");
            l2_index += 1;
            out.l2_advertisements.push(L2Advertisement {
                metadata: meta(&ad_name, &namespace),
                spec: L2AdvertisementSpec {
                    ip_address_pools: vec![name.clone()],
                    ..Default::default()
                },
            });
        }
    }

    for (i, b) in config.bfd_profiles.iter().enumerate() {
        let name = rename(&format!("bfd-profiles[{i}].name"), &b.name)?;
        out.bfd_profiles.push(BFDProfile {
            metadata: meta(&name, &namespace),
            spec: BFDProfileSpec {
                receive_interval: b.receive_interval,
                transmit_interval: b.transmit_interval,
                detect_multiplier: b.detect_multiplier,
                echo_interval: b.echo_interval,
                echo_mode: b.echo_mode,
                passive_mode: b.passive_mode,
                minimum_ttl: b.minimum_ttl,
            },
        });
    }

    if !config.bgp_communities.is_empty() {
        out.communities.push(Community {
            metadata: meta("communities", &namespace),
            spec: CommunitySpec {
                communities: config
                    .bgp_communities
                    .iter()
                    .map(|(name, value)| CommunityAlias {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            },
        });
    }
    Ok(out)
}

fn selector(s: &LegacySelector) -> LabelSelector {
    LabelSelector {
        match_labels: (!s.match_labels.is_empty()).then(|| s.match_labels.clone()),
        match_expressions: (!s.match_expressions.is_empty()).then(|| {
            s.match_expressions
                .iter()
                .map(|e| LabelSelectorRequirement {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: (!e.values.is_empty()).then(|| e.values.clone()),
                })
                .collect()
        }),
    }
}

/// Converts every legacy ConfigMap in `objects` and adds the result to them.
///
/// Fails on the first ConfigMap that cannot be converted.
pub fn expand(objects: &mut Objects) -> Result<(), LegacyError> {
    let maps = std::mem::take(&mut objects.legacy_config_maps);
    for cm in &maps {
        let converted = convert(cm)?;
        objects.warnings.push(format!(
            "ConfigMap/{}: legacy MetalLB configuration converted (see `lb-k8s convert`)",
            cm.metadata.name.as_deref().unwrap_or("")
        ));
        converted.add_to(objects);
    }
    Ok(())
}
