//! Why a node does not announce a Service over a protocol: MetalLB's reasons, spelled as
//! MetalLB spells them (in `plan`'s output and the speaker's logs), and two of our own.

use std::fmt;

use serde::Serialize;

/// Why a node does not announce a Service over a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NotAnnouncedReason {
    /// Another node is elected (layer 2), or no advertisement selects this node.
    NotOwner,
    /// No advertisement of the pool matches the Service.
    NoMatchingAdvertisement,
    /// The Service has no usable endpoint.
    NoEndpoints,
    /// `externalTrafficPolicy: Local` and no usable endpoint on this node.
    NoLocalEndpoints,
    /// The Service shares its IP, and an advertisement that selects it uses service selectors.
    #[serde(rename = "sharedIPWithServiceSelector")]
    SharedIpWithServiceSelector,
    /// Two BGP advertisements of one prefix disagree (LOCAL_PREF).
    ConflictingAdvertisements,
    /// The node's `NetworkUnavailable` condition is true.
    NodeNetworkUnavailable,
    /// The node carries the exclude-from-external-load-balancers label.
    NodeLabeledExcludeBalancers,
    /// No pool allows all of the Service's IPs.
    IpNotAllowed,
    /// Ours: the node's speaker is not alive.
    SpeakerDown,
    /// Ours: no BGP session of this node takes the Service's advertisements.
    NoPeers,
}

impl NotAnnouncedReason {
    /// The reason as MetalLB spells it (`notOwner`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotOwner => "notOwner",
            Self::NoMatchingAdvertisement => "noMatchingAdvertisement",
            Self::NoEndpoints => "noEndpoints",
            Self::NoLocalEndpoints => "noLocalEndpoints",
            Self::SharedIpWithServiceSelector => "sharedIPWithServiceSelector",
            Self::ConflictingAdvertisements => "conflictingAdvertisements",
            Self::NodeNetworkUnavailable => "nodeNetworkUnavailable",
            Self::NodeLabeledExcludeBalancers => "nodeLabeledExcludeBalancers",
            Self::IpNotAllowed => "ipNotAllowed",
            Self::SpeakerDown => "speakerDown",
            Self::NoPeers => "noPeers",
        }
    }
}

impl fmt::Display for NotAnnouncedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::NotAnnouncedReason as R;

    #[test]
    fn serialised_and_displayed_with_metallbs_spelling() {
        for r in [
            R::NotOwner,
            R::NoMatchingAdvertisement,
            R::NoEndpoints,
            R::NoLocalEndpoints,
            R::SharedIpWithServiceSelector,
            R::ConflictingAdvertisements,
            R::NodeNetworkUnavailable,
            R::NodeLabeledExcludeBalancers,
            R::IpNotAllowed,
            R::SpeakerDown,
            R::NoPeers,
        ] {
            let json = serde_json::to_string(&r).unwrap_or_default();
            assert_eq!(json, format!("\"{r}\""));
        }
        assert_eq!(
            R::SharedIpWithServiceSelector.to_string(),
            "sharedIPWithServiceSelector"
        );
        assert_eq!(R::IpNotAllowed.to_string(), "ipNotAllowed");
    }
}
