//! The `metallb.io` custom resources, field for field compatible with MetalLB, and the CRD
//! manifests generated from them (`lb-k8s crds`, `deploy/crds/`).

// `printcolumn(type_ = ...)` repeats per column inside `#[kube]`; clippy takes the repeats for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

mod advertisement;
mod bfd_profile;
mod community;
mod peer;
mod pool;
mod status;

pub use advertisement::{
    BGPAdvertisement, BGPAdvertisementSpec, L2Advertisement, L2AdvertisementSpec,
    PreferredNodeSelector,
};
pub use bfd_profile::{BFDProfile, BFDProfileSpec};
pub use community::{Community, CommunityAlias, CommunitySpec};
pub use peer::{v1beta1, v1beta2};
pub use pool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use status::{
    ConfigurationState, ConfigurationStateSpec, ConfigurationStateStatus, InterfaceInfo,
    ServiceBGPStatus, ServiceBGPStatusSpec, ServiceBGPStatusStatus, ServiceL2Status,
    ServiceL2StatusSpec, ServiceL2StatusStatus,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

/// Every CRD this project installs, in a stable order (sorted by plural name).
///
/// `BGPPeer` carries both versions: `v1beta2` served and stored, `v1beta1` served and
/// deprecated.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let peers = kube::core::crd::merge_crds(
        vec![v1beta1::BGPPeer::crd(), v1beta2::BGPPeer::crd()],
        "v1beta2",
    );
    let mut configuration_state = ConfigurationState::crd();
    edit_schemas(&mut configuration_state, |schema| {
        // MetalLB's ConfigurationState has no spec at all.
        if let Some(p) = schema.properties.as_mut() {
            p.remove("spec");
        }
        schema.required = None;
    });
    let mut crds = vec![
        BFDProfile::crd(),
        BGPAdvertisement::crd(),
        Community::crd(),
        configuration_state,
        IPAddressPool::crd(),
        L2Advertisement::crd(),
        ServiceBGPStatus::crd(),
        ServiceL2Status::crd(),
    ];
    for crd in crds
        .iter_mut()
        .filter(|c| c.spec.names.kind != "IPAddressPool")
    {
        // Only IPAddressPool requires a spec in MetalLB; `kind: L2Advertisement` with no
        // spec at all (every pool, every node) is the most common object there is.
        edit_schemas(crd, |schema| schema.required = None);
    }
    match peers {
        Ok(crd) => crds.push(crd),
        // Both versions come from this file with the same names; merge_crds cannot fail on
        // them. Keep both rather than panic if a future edit breaks that.
        Err(_) => crds.extend([v1beta2::BGPPeer::crd(), v1beta1::BGPPeer::crd()]),
    }
    crds.sort_by(|a, b| a.spec.names.plural.cmp(&b.spec.names.plural));
    crds
}

/// Applies `edit` to the top-level schema of every version of `crd`.
fn edit_schemas(crd: &mut CustomResourceDefinition, edit: impl Fn(&mut JSONSchemaProps)) {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            edit(schema);
        }
    }
}

/// Every CRD as one multi-document YAML stream, each document preceded by `---`.
///
/// Fails only if serialisation fails, which would be a bug in the types.
pub fn crds_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}
