//! `Community` (metallb.io/v1beta1): named aliases for BGP communities.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `spec` of a `Community`: named aliases for BGP community values.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "Community",
    plural = "communities",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    doc = "Named aliases for BGP communities, usable in BGPAdvertisement.spec.communities."
)]
pub struct CommunitySpec {
    /// The aliases. Names are unique across all `Community` objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<CommunityAlias>,
}

/// One alias of a `Community`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommunityAlias {
    /// The alias.
    #[serde(default)]
    pub name: String,
    /// `a:b` (two 16-bit numbers) or `large:a:b:c` (three 32-bit numbers).
    #[serde(default)]
    pub value: String,
}
