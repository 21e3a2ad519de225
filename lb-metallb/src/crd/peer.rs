//! `BGPPeer`: the storage version `v1beta2` and the deprecated `v1beta1`, with the conversion
//! from the old version to the new one.

// `KubeSchema` emits a private copy of each struct for its schema, and the lint fires on the copy.
#![allow(unreachable_pub)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pool::is_false;

/// The storage version of `BGPPeer`.
pub mod v1beta2 {
    use super::*;

    /// `spec` of a `BGPPeer` (v1beta2): one BGP session, opened by every selected node.
    #[derive(
        CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, KubeSchema,
    )]
    #[kube(
        group = "metallb.io",
        version = "v1beta2",
        kind = "BGPPeer",
        plural = "bgppeers",
        namespaced,
        status = "BGPPeerStatus",
        derive = "PartialEq",
        derive = "Default",
        doc = "A BGP router that the selected nodes open a session to.",
        printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
        printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
        printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
        printcolumn(
            name = "Multi Hops",
            type_ = "string",
            json_path = ".spec.ebgpMultiHop"
        ),
        printcolumn(
            name = "Established",
            type_ = "string",
            json_path = ".status.established"
        )
    )]
    #[serde(rename_all = "camelCase")]
    pub struct BGPPeerSpec {
        /// Our ASN on this session (1 to 4294967295).
        #[serde(rename = "myASN")]
        #[schemars(range(min = 0, max = 4294967295u32), extend("format" = "int64"))]
        pub my_asn: u32,
        /// The peer's ASN. Exactly one of `peerASN` and `dynamicASN`.
        #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 4294967295u32), extend("format" = "int64"))]
        pub peer_asn: Option<u32>,
        /// ASN presented to the peer instead of `myASN` (FRR only; not supported here).
        #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1, max = 4294967295u32), extend("format" = "int64"))]
        pub local_asn: Option<u32>,
        /// `internal` or `external`: accept any ASN of that kind (FRR only; not supported here).
        #[serde(
            default,
            rename = "dynamicASN",
            skip_serializing_if = "Option::is_none"
        )]
        #[schemars(extend("enum" = ["internal", "external"]))]
        pub dynamic_asn: Option<String>,
        /// The peer's address. Exactly one of `peerAddress` and `interface`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub peer_address: Option<String>,
        /// Interface for unnumbered BGP (FRR only; not supported here).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub interface: Option<String>,
        /// Local address of the session (it must exist on the node).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source_address: Option<String>,
        /// The peer's TCP port (default 179).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1, max = 16384), extend("default" = 179))]
        pub peer_port: Option<u16>,
        /// Proposed hold time (`90s`, `1m30s`); 0 or at least 3 s. Default 90 s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hold_time: Option<String>,
        /// Keepalive interval; default a third of the hold time; not above it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keepalive_time: Option<String>,
        /// Time between connection attempts, 1 to 65535 whole seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[x_kube(validation = Rule::new("duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535").message("connect time should be between 1 seconds to 65535"))]
        #[x_kube(validation = Rule::new("duration(self).getMilliseconds() % 1000 == 0").message("connect time should contain a whole number of seconds"))]
        pub connect_time: Option<String>,
        /// BGP router ID (an IPv4 address); default the session's local IPv4 address.
        #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
        pub router_id: Option<String>,
        /// Nodes that open this session (all when empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub node_selectors: Vec<LabelSelector>,
        /// TCP MD5 password. Not with `passwordSecret`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password: Option<String>,
        /// A `kubernetes.io/basic-auth` Secret whose `password` key is the TCP MD5 password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password_secret: Option<SecretReference>,
        /// Name of a `BFDProfile` for this session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bfd_profile: Option<String>,
        /// Graceful restart (RFC 4724); cannot be changed after creation.
        #[serde(default, skip_serializing_if = "is_false")]
        #[x_kube(validation = Rule::new("self == oldSelf").message("EnableGracefulRestart cannot be changed after creation"))]
        pub enable_graceful_restart: bool,
        /// The peer is more than one hop away (eBGP only).
        #[serde(default, rename = "ebgpMultiHop", skip_serializing_if = "is_false")]
        pub ebgp_multi_hop: bool,
        /// VRF of the session (FRR only; not supported here).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub vrf: Option<String>,
        /// Deprecated, no effect.
        #[serde(default, rename = "disableMP", skip_serializing_if = "is_false")]
        #[schemars(extend("default" = false))]
        pub disable_mp: bool,
        /// Carry IPv4 and IPv6 prefixes on this one session.
        #[serde(default, skip_serializing_if = "is_false")]
        #[schemars(extend("default" = false))]
        pub dual_stack_address_family: bool,
    }

    /// A reference to a Secret by name (and namespace, default the peer's).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    pub struct SecretReference {
        /// Secret name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// Secret namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
    }

    /// `status` of a `BGPPeer`: how many of the nodes that should open the session have it
    /// established. Written by the speakers.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    pub struct BGPPeerStatus {
        /// `established/selected`, e.g. `3/3`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub established: Option<String>,
    }
}

/// The deprecated version of `BGPPeer`, read and converted to [`v1beta2`].
pub mod v1beta1 {
    use super::*;

    /// `spec` of a `BGPPeer` (v1beta1).
    #[derive(
        CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema,
    )]
    #[kube(
        group = "metallb.io",
        version = "v1beta1",
        kind = "BGPPeer",
        plural = "bgppeers",
        namespaced,
        derive = "PartialEq",
        derive = "Default",
        storage = false,
        deprecated = "v1beta1 is deprecated, please use v1beta2",
        doc = "A BGP router (deprecated version; use v1beta2).",
        printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
        printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
        printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
        printcolumn(
            name = "Multi Hops",
            type_ = "string",
            json_path = ".spec.ebgpMultiHop"
        )
    )]
    #[serde(rename_all = "camelCase")]
    pub struct BGPPeerSpec {
        /// Our ASN.
        #[serde(rename = "myASN")]
        #[schemars(range(min = 0, max = 4294967295u32), extend("format" = "int64"))]
        pub my_asn: u32,
        /// The peer's ASN.
        #[serde(rename = "peerASN")]
        #[schemars(range(min = 0, max = 4294967295u32), extend("format" = "int64"))]
        pub peer_asn: u32,
        /// The peer's address.
        pub peer_address: String,
        /// Local address of the session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source_address: Option<String>,
        /// The peer's TCP port (0 = 179).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 16384))]
        pub peer_port: Option<u16>,
        /// Proposed hold time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hold_time: Option<String>,
        /// Keepalive interval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keepalive_time: Option<String>,
        /// BGP router ID.
        #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
        pub router_id: Option<String>,
        /// Nodes that open this session, in the old selector format.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub node_selectors: Vec<NodeSelector>,
        /// TCP MD5 password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password: Option<String>,
        /// Name of a `BFDProfile`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bfd_profile: Option<String>,
        /// The peer is more than one hop away.
        #[serde(default, rename = "ebgpMultiHop", skip_serializing_if = "is_false")]
        pub ebgp_multi_hop: bool,
    }

    /// The v1beta1 node selector.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct NodeSelector {
        /// Exact labels.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        pub match_labels: std::collections::BTreeMap<String, String>,
        /// Set-based requirements.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub match_expressions: Vec<MatchExpression>,
    }

    /// A v1beta1 match expression.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct MatchExpression {
        /// Label key.
        pub key: String,
        /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
        pub operator: String,
        /// Values (at least one).
        #[schemars(length(min = 1))]
        pub values: Vec<String>,
    }

    impl From<&BGPPeer> for super::v1beta2::BGPPeer {
        /// The v1beta2 form of a v1beta1 peer: every field carried over, selectors converted.
        fn from(old: &BGPPeer) -> Self {
            let s = &old.spec;
            let spec = super::v1beta2::BGPPeerSpec {
                my_asn: s.my_asn,
                peer_asn: Some(s.peer_asn),
                peer_address: Some(s.peer_address.clone()),
                source_address: s.source_address.clone(),
                peer_port: s.peer_port.filter(|p| *p != 0),
                hold_time: s.hold_time.clone(),
                keepalive_time: s.keepalive_time.clone(),
                router_id: s.router_id.clone(),
                node_selectors: s.node_selectors.iter().map(LabelSelector::from).collect(),
                password: s.password.clone(),
                bfd_profile: s.bfd_profile.clone(),
                ebgp_multi_hop: s.ebgp_multi_hop,
                ..Default::default()
            };
            let mut peer = super::v1beta2::BGPPeer::new("", spec);
            peer.metadata = old.metadata.clone();
            peer
        }
    }

    impl From<&NodeSelector> for LabelSelector {
        fn from(old: &NodeSelector) -> Self {
            LabelSelector {
                match_labels: (!old.match_labels.is_empty()).then(|| old.match_labels.clone()),
                match_expressions: (!old.match_expressions.is_empty()).then(|| {
                    old.match_expressions
                        .iter()
                        .map(|e| LabelSelectorRequirement {
                            key: e.key.clone(),
                            operator: e.operator.clone(),
                            values: Some(e.values.clone()),
                        })
                        .collect()
                }),
            }
        }
    }
}
