//! What a backend is asked to announce for one service.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{Community, LargeCommunity, ServiceKey};

/// The desired announcement of one service on this node.
///
/// A backend reads the part meant for it (`l2` or `bgp`); a `None` part means that protocol
/// does not announce the service here. An announcement with both parts `None` is the same as
/// withdrawing the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The service being announced.
    pub service: ServiceKey,
    /// Its load-balancer IPs (`status.loadBalancer.ingress`), first one first.
    pub ips: Vec<IpAddr>,
    /// Layer-2 attributes, when this node is the elected Layer-2 owner.
    pub l2: Option<L2Attributes>,
    /// BGP attributes, when this node advertises the service over BGP.
    pub bgp: Option<BgpAttributes>,
}

impl Announcement {
    /// True when neither protocol announces anything.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty() || (self.l2.is_none() && self.bgp.is_none())
    }
}

/// Layer-2 (ARP/NDP) attributes of an announcement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct L2Attributes {
    /// Interfaces to answer on; empty means every eligible interface.
    pub interfaces: Vec<String>,
}

/// BGP attributes of an announcement: one advertisement per (prefix, attributes) pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpAttributes {
    /// The advertisements to make.
    pub advertisements: Vec<BgpAdvertisement>,
}

/// One BGP route to advertise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpAdvertisement {
    /// The prefix: a service IP masked to the advertisement's aggregation length.
    pub prefix: IpNet,
    /// LOCAL_PREF, sent on iBGP sessions only.
    pub local_pref: Option<u32>,
    /// Standard communities (RFC 1997).
    pub communities: Vec<Community>,
    /// Large communities (RFC 8092).
    pub large_communities: Vec<LargeCommunity>,
    /// Names of the peers to advertise to; empty means every peer of this node.
    pub peers: Vec<String>,
}
