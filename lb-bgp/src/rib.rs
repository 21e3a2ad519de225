//! The Adj-RIB-Out: what one session has advertised, and the UPDATEs that move it to a new
//! desired set (RFC 4271 §3.2, §9.2).
//!
//! Routes with identical attributes share UPDATEs, packed up to the 4096-octet message limit;
//! withdrawals are batched the same way. When a session comes up the whole table is sent and
//! each family is closed with an End-of-RIB marker (RFC 4724 §2).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use lb_core::{Community, LargeCommunity};

use crate::wire::{
    AS_TRANS, AsPath, Attribute, Codec, ExtendedCommunity, Family, HEADER_LEN, MAX_MESSAGE_LEN,
    MpNextHop, MpReach, MpUnreach, Origin, Update, encode_attribute, ipv4_prefixes,
};

/// The attributes we attach to an advertised prefix, beyond the ones every route carries
/// (ORIGIN, AS_PATH, next hop).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteAttributes {
    /// LOCAL_PREF; sent to iBGP peers only.
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// Standard communities, sorted and without duplicates.
    pub communities: Vec<Community>,
    /// Large communities, sorted and without duplicates.
    pub large_communities: Vec<LargeCommunity>,
    /// Extended communities (for example link bandwidth), sorted and without duplicates.
    pub extended_communities: Vec<ExtendedCommunity>,
}

impl RouteAttributes {
    /// Sorts and de-duplicates the community lists, so equal sets compare equal.
    pub fn normalize(&mut self) {
        self.communities.sort_unstable();
        self.communities.dedup();
        self.large_communities.sort_unstable();
        self.large_communities.dedup();
        self.extended_communities.sort_unstable();
        self.extended_communities.dedup();
    }

    /// Folds `other` into `self` for a prefix advertised twice (two services behind one
    /// aggregate): communities are united, the higher LOCAL_PREF and the lower MED win.
    pub fn merge(&mut self, other: &Self) {
        self.local_pref = self.local_pref.max(other.local_pref);
        self.med = match (self.med, other.med) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.communities.extend_from_slice(&other.communities);
        self.large_communities
            .extend_from_slice(&other.large_communities);
        self.extended_communities
            .extend_from_slice(&other.extended_communities);
        self.normalize();
    }
}

/// The desired routes of one session: prefix → attributes.
pub type RouteSet = BTreeMap<IpNet, RouteAttributes>;

/// Routes of a [`RouteSet`] borrowed for one session.
pub type RouteRefs<'a> = Vec<(&'a IpNet, &'a RouteAttributes)>;

/// Prefixes a session cannot carry, each with the reason.
pub type Skipped = Vec<(IpNet, &'static str)>;

/// The per-session facts that shape UPDATEs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// Our ASN.
    pub local_asn: u32,
    /// The peer's ASN.
    pub peer_asn: u32,
    /// How AS numbers are encoded on this session.
    pub codec: Codec,
    /// Families negotiated on this session.
    pub families: Vec<Family>,
    /// Next hop for IPv4 prefixes (normally the session's local IPv4 address).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 prefixes (normally the session's local IPv6 address), with an
    /// optional link-local address.
    pub next_hop_v6: Option<(Ipv6Addr, Option<Ipv6Addr>)>,
}

impl SessionParams {
    fn is_ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }

    /// Why `prefix` cannot be advertised on this session, if it cannot.
    pub fn unroutable(&self, prefix: &IpNet) -> Option<&'static str> {
        let family = Family::of(prefix);
        if !self.families.contains(&family) {
            return Some("address family not negotiated with the peer");
        }
        match prefix {
            IpNet::V4(_) if self.next_hop_v4.is_none() => Some("no IPv4 next hop on this session"),
            IpNet::V6(_) if self.next_hop_v6.is_none() => Some("no IPv6 next hop on this session"),
            _ => None,
        }
    }

    /// The path attributes for a route with `attrs`, without the NLRI part (MP_REACH for IPv6
    /// is added when packing).
    fn path_attributes(&self, attrs: &RouteAttributes, v4: bool) -> Vec<Attribute> {
        let mut out = vec![Attribute::Origin(Origin::Igp)];
        if self.is_ibgp() {
            out.push(Attribute::AsPath(AsPath::default()));
        } else if !self.codec.four_octet_as && self.local_asn > u32::from(u16::MAX) {
            out.push(Attribute::AsPath(AsPath::sequence(vec![u32::from(
                AS_TRANS,
            )])));
        } else {
            out.push(Attribute::AsPath(AsPath::sequence(vec![self.local_asn])));
        }
        if let (true, Some(nh)) = (v4, self.next_hop_v4) {
            out.push(Attribute::NextHop(nh));
        }
        if let Some(med) = attrs.med {
            out.push(Attribute::MultiExitDisc(med));
        }
        if self.is_ibgp() {
            // RFC 4271 §5.1.5: LOCAL_PREF is mandatory on internal sessions (100 is the usual
            // default) and must not be sent to external peers.
            out.push(Attribute::LocalPref(attrs.local_pref.unwrap_or(100)));
        }
        if !attrs.communities.is_empty() {
            out.push(Attribute::Communities(attrs.communities.clone()));
        }
        if !attrs.extended_communities.is_empty() {
            out.push(Attribute::ExtendedCommunities(
                attrs.extended_communities.clone(),
            ));
        }
        if !self.is_ibgp() && !self.codec.four_octet_as && self.local_asn > u32::from(u16::MAX) {
            out.push(Attribute::As4Path(AsPath::sequence(vec![self.local_asn])));
        }
        if !attrs.large_communities.is_empty() {
            out.push(Attribute::LargeCommunities(attrs.large_communities.clone()));
        }
        out
    }
}

/// Room for NLRI or withdrawn prefixes once the header and fixed fields are written.
const BODY_ROOM: usize = MAX_MESSAGE_LEN - HEADER_LEN - 4;

fn encoded_len(attrs: &[Attribute], codec: Codec) -> usize {
    let mut buf = Vec::new();
    for a in attrs {
        // Encoding our own attributes cannot fail: every field is within its width.
        let _ = encode_attribute(a, codec, &mut buf);
    }
    buf.len()
}

/// Splits `prefixes` into chunks whose encoded size fits in `room` octets.
fn chunks(prefixes: &[IpNet], room: usize) -> Vec<Vec<IpNet>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for p in prefixes {
        let len = crate::wire::prefix_wire_len(p);
        if used + len > room && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            used = 0;
        }
        used += len;
        current.push(*p);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Packs announcements of prefixes sharing `attrs` into as few UPDATEs as fit.
fn announce(params: &SessionParams, attrs: &RouteAttributes, prefixes: &[IpNet]) -> Vec<Update> {
    let (v4s, v6s): (Vec<IpNet>, Vec<IpNet>) =
        prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)));
    let mut out = Vec::new();
    if !v4s.is_empty() {
        let path = params.path_attributes(attrs, true);
        let room = BODY_ROOM.saturating_sub(encoded_len(&path, params.codec));
        for chunk in chunks(&v4s, room) {
            out.push(Update {
                attributes: path.clone(),
                nlri: ipv4_prefixes(&chunk),
                ..Update::default()
            });
        }
    }
    if let (false, Some((global, link_local))) = (v6s.is_empty(), params.next_hop_v6) {
        let path = params.path_attributes(attrs, false);
        let next_hop = MpNextHop::V6 { global, link_local };
        let empty = Attribute::MpReach(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop,
            nlri: vec![],
        });
        // The MP_REACH header is written with the extended length (4 octets) once it is long.
        let room = BODY_ROOM
            .saturating_sub(encoded_len(&path, params.codec))
            .saturating_sub(encoded_len(std::slice::from_ref(&empty), params.codec) + 1);
        let at = path
            .iter()
            .position(|a| a.type_code() > 14)
            .unwrap_or(path.len());
        for chunk in chunks(&v6s, room) {
            let mut attributes = path.clone();
            attributes.insert(
                at,
                Attribute::MpReach(MpReach {
                    family: Family::IPV6_UNICAST,
                    next_hop,
                    nlri: chunk,
                }),
            );
            out.push(Update {
                attributes,
                ..Update::default()
            });
        }
    }
    out
}

/// Packs withdrawals into as few UPDATEs as fit.
fn withdraw(prefixes: &[IpNet]) -> Vec<Update> {
    let (v4s, v6s): (Vec<IpNet>, Vec<IpNet>) =
        prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)));
    let mut out = Vec::new();
    for chunk in chunks(&v4s, BODY_ROOM) {
        out.push(Update {
            withdrawn: ipv4_prefixes(&chunk),
            ..Update::default()
        });
    }
    // MP_UNREACH header: flags, type, 2-octet length, AFI, SAFI.
    for chunk in chunks(&v6s, BODY_ROOM - 7) {
        out.push(Update {
            attributes: vec![Attribute::MpUnreach(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: chunk,
            })],
            ..Update::default()
        });
    }
    out
}

/// What one session has advertised.
#[derive(Debug, Clone)]
pub struct AdjRibOut {
    params: SessionParams,
    advertised: RouteSet,
}

impl AdjRibOut {
    /// An empty Adj-RIB-Out for a session that just came up.
    pub fn new(params: SessionParams) -> Self {
        Self {
            params,
            advertised: RouteSet::new(),
        }
    }

    /// The session parameters.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// What the peer has been told.
    pub fn advertised(&self) -> &RouteSet {
        &self.advertised
    }

    /// The routes of `desired` this session can carry, and the rest with the reason.
    pub fn routable<'a>(&self, desired: &'a RouteSet) -> (RouteRefs<'a>, Skipped) {
        let mut ok = Vec::new();
        let mut skipped = Vec::new();
        for (prefix, attrs) in desired {
            match self.params.unroutable(prefix) {
                None => ok.push((prefix, attrs)),
                Some(reason) => skipped.push((*prefix, reason)),
            }
        }
        (ok, skipped)
    }

    /// The whole table followed by an End-of-RIB per negotiated family: what to send when the
    /// session reaches Established (or on a ROUTE-REFRESH).
    pub fn full_table(&mut self, desired: &RouteSet) -> Vec<Update> {
        // On a ROUTE-REFRESH the peer still holds what it was told: withdraw what is no longer
        // desired before sending the whole table again.
        let gone: Vec<IpNet> = self
            .advertised
            .keys()
            .filter(|p| !desired.contains_key(p))
            .copied()
            .collect();
        let mut out = withdraw(&gone);
        self.advertised.clear();
        out.extend(self.sync(desired));
        out.extend(self.params.families.iter().map(|f| Update::end_of_rib(*f)));
        out
    }

    /// The UPDATEs that take the peer from what it was told to `desired`: withdrawals first,
    /// then announcements grouped by attributes. Empty when nothing changed.
    pub fn sync(&mut self, desired: &RouteSet) -> Vec<Update> {
        // Both maps are looked up in place: no intermediate copy of the table.
        let wanted = |p: &IpNet| desired.contains_key(p) && self.params.unroutable(p).is_none();
        let gone: Vec<IpNet> = self
            .advertised
            .keys()
            .filter(|p| !wanted(p))
            .copied()
            .collect();
        let mut groups: BTreeMap<&RouteAttributes, Vec<IpNet>> = BTreeMap::new();
        for (prefix, attrs) in desired {
            if self.params.unroutable(prefix).is_none()
                && self.advertised.get(prefix) != Some(attrs)
            {
                groups.entry(attrs).or_default().push(*prefix);
            }
        }
        let mut out = withdraw(&gone);
        for (attrs, prefixes) in &groups {
            out.extend(announce(&self.params, attrs, prefixes));
        }
        for p in &gone {
            self.advertised.remove(p);
        }
        // Only what changed is recorded again: an unchanged table costs no clones.
        for (attrs, prefixes) in groups {
            for prefix in prefixes {
                self.advertised.insert(prefix, attrs.clone());
            }
        }
        out
    }

    /// The families that have routes in `desired` but cannot be sent on this session.
    pub fn unroutable_families(&self, desired: &RouteSet) -> BTreeSet<Family> {
        self.routable(desired)
            .1
            .iter()
            .map(|(p, _)| Family::of(p))
            .collect()
    }
}
