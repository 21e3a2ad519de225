#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Integration tests of the Adj-RIB-Out (`lb_bgp::rib`): path attributes per session kind,
//! packing of UPDATEs within 4096 octets, End-of-RIB, incremental sync, and a property test
//! that replays the UPDATE stream, through the wire codec, into a simulated peer RIB.
//!
//! Prefixes are from the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
//! 2001:db8::/32), except the 10,000-prefix packing test, which uses host routes of the
//! benchmarking range 198.18.0.0/15 (RFC 2544): nothing is ever sent on a network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use lb_bgp::rib::{AdjRibOut, RouteAttributes, RouteSet, SessionParams};
use lb_bgp::wire::{
    AS_TRANS, AsPath, Attribute, Codec, ExtendedCommunity, Family, MAX_MESSAGE_LEN, Message,
    MpNextHop, Origin, Update, attr_type,
};
use lb_core::{Community, LargeCommunity};
use proptest::prelude::*;

mod fixtures;

use fixtures::net;

const LOCAL_ASN: u32 = 64500;
const PEER_ASN: u32 = 64501;
const NH4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const NH6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const LL6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// Fixed part of an UPDATE: header, withdrawn routes length, path attributes length.
const UPDATE_FIXED: usize = 19 + 2 + 2;

fn params(local_asn: u32, peer_asn: u32, four_octet_as: bool) -> SessionParams {
    SessionParams {
        local_asn,
        peer_asn,
        codec: Codec { four_octet_as },
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        next_hop_v4: Some(NH4),
        next_hop_v6: Some((NH6, None)),
    }
}

fn ebgp() -> SessionParams {
    params(LOCAL_ASN, PEER_ASN, true)
}

fn ibgp() -> SessionParams {
    params(LOCAL_ASN, LOCAL_ASN, true)
}

fn set(routes: &[(&str, &RouteAttributes)]) -> RouteSet {
    routes.iter().map(|(p, a)| (net(p), (*a).clone())).collect()
}

fn rich_attributes() -> RouteAttributes {
    let mut a = RouteAttributes {
        local_pref: Some(200),
        med: Some(10),
        communities: vec![Community::new(64500, 20), Community::new(64500, 10)],
        large_communities: vec![LargeCommunity {
            global_admin: 4_200_000_000,
            local1: 1,
            local2: 2,
        }],
        extended_communities: vec![ExtendedCommunity::link_bandwidth(64500, 1.25e9)],
    };
    a.normalize();
    a
}

/// Encodes `u` with `codec`, checks the size, and decodes it back.
fn roundtrip(u: &Update, codec: Codec) -> (usize, Update) {
    let bytes = Message::Update(u.clone()).to_bytes(codec).unwrap();
    assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} octets", bytes.len());
    let Message::Update(decoded) = Message::decode(&bytes, codec).unwrap() else {
        panic!("not an UPDATE");
    };
    assert!(decoded.issues.is_empty(), "{:?}", decoded.issues);
    (bytes.len(), decoded)
}

/// What a peer stores for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PeerRoute {
    origin: Option<Origin>,
    as_path: Option<AsPath>,
    as4_path: Option<AsPath>,
    next_hop: Option<MpNextHop>,
    med: Option<u32>,
    local_pref: Option<u32>,
    communities: Vec<Community>,
    large_communities: Vec<LargeCommunity>,
    extended_communities: Vec<ExtendedCommunity>,
    /// Attributes we never send.
    unexpected: Vec<u8>,
}

impl PeerRoute {
    /// The route a peer builds from a decoded UPDATE's attributes for a prefix of
    /// family `v6`.
    fn from_attributes(attributes: &[Attribute], v6: bool) -> Self {
        let mut r = Self {
            origin: None,
            as_path: None,
            as4_path: None,
            next_hop: None,
            med: None,
            local_pref: None,
            communities: vec![],
            large_communities: vec![],
            extended_communities: vec![],
            unexpected: vec![],
        };
        for a in attributes {
            match a {
                Attribute::Origin(o) => r.origin = Some(*o),
                Attribute::AsPath(p) => r.as_path = Some(p.clone()),
                Attribute::As4Path(p) => r.as4_path = Some(p.clone()),
                Attribute::NextHop(nh) if !v6 => r.next_hop = Some(MpNextHop::V4(*nh)),
                Attribute::MpReach(mp) if v6 => r.next_hop = Some(mp.next_hop),
                Attribute::MultiExitDisc(m) => r.med = Some(*m),
                Attribute::LocalPref(l) => r.local_pref = Some(*l),
                Attribute::Communities(c) => r.communities = c.clone(),
                Attribute::LargeCommunities(c) => r.large_communities = c.clone(),
                Attribute::ExtendedCommunities(c) => r.extended_communities = c.clone(),
                other => r.unexpected.push(other.type_code()),
            }
        }
        r
    }

    /// The route the peer must end up with, computed from RFC 4271 / 6793 rules.
    fn expected(p: &SessionParams, prefix: &IpNet, a: &RouteAttributes) -> Self {
        let ibgp = p.local_asn == p.peer_asn;
        let (as_path, as4_path) = if ibgp {
            (AsPath::default(), None)
        } else if !p.codec.four_octet_as && p.local_asn > u32::from(u16::MAX) {
            (
                AsPath::sequence(vec![u32::from(AS_TRANS)]),
                Some(AsPath::sequence(vec![p.local_asn])),
            )
        } else {
            (AsPath::sequence(vec![p.local_asn]), None)
        };
        let next_hop = match prefix {
            IpNet::V4(_) => p.next_hop_v4.map(MpNextHop::V4),
            IpNet::V6(_) => p
                .next_hop_v6
                .map(|(global, link_local)| MpNextHop::V6 { global, link_local }),
        };
        let mut communities = a.communities.clone();
        communities.sort_unstable();
        communities.dedup();
        let mut large_communities = a.large_communities.clone();
        large_communities.sort_unstable();
        large_communities.dedup();
        let mut extended_communities = a.extended_communities.clone();
        extended_communities.sort_unstable();
        extended_communities.dedup();
        Self {
            origin: Some(Origin::Igp),
            as_path: Some(as_path),
            as4_path,
            next_hop,
            med: a.med,
            local_pref: ibgp.then(|| a.local_pref.unwrap_or(100)),
            communities,
            large_communities,
            extended_communities,
            unexpected: vec![],
        }
    }
}

/// A peer's Adj-RIB-In, fed with the bytes we send.
#[derive(Debug, Default)]
struct Peer {
    rib: BTreeMap<IpNet, PeerRoute>,
    end_of_rib: Vec<Family>,
    messages: usize,
}

impl Peer {
    fn apply(&mut self, updates: &[Update], codec: Codec) {
        for u in updates {
            let (_, d) = roundtrip(u, codec);
            self.messages += 1;
            if let Some(f) = d.end_of_rib_family() {
                self.end_of_rib.push(f);
                continue;
            }
            for p in d.withdrawn_all() {
                self.rib.remove(&p);
            }
            let v4 = PeerRoute::from_attributes(&d.attributes, false);
            for p in &d.nlri {
                self.rib.insert(IpNet::V4(*p), v4.clone());
            }
            let v6 = PeerRoute::from_attributes(&d.attributes, true);
            for a in &d.attributes {
                if let Attribute::MpReach(mp) = a {
                    for p in &mp.nlri {
                        self.rib.insert(*p, v6.clone());
                    }
                }
            }
        }
    }
}

fn routable_by_rule(p: &SessionParams, prefix: &IpNet) -> bool {
    p.families.contains(&Family::of(prefix))
        && match prefix {
            IpNet::V4(_) => p.next_hop_v4.is_some(),
            IpNet::V6(_) => p.next_hop_v6.is_some(),
        }
}

fn expected_rib(p: &SessionParams, desired: &RouteSet) -> BTreeMap<IpNet, PeerRoute> {
    desired
        .iter()
        .filter(|(prefix, _)| routable_by_rule(p, prefix))
        .map(|(prefix, a)| (*prefix, PeerRoute::expected(p, prefix, a)))
        .collect()
}

fn type_codes(u: &Update) -> Vec<u8> {
    u.attributes.iter().map(Attribute::type_code).collect()
}

// ---------------------------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------------------------

#[test]
fn ebgp_attributes() {
    let attrs = rich_attributes();
    let desired = set(&[("192.0.2.10/32", &attrs), ("2001:db8::10/128", &attrs)]);
    let mut p = ebgp();
    p.next_hop_v6 = Some((NH6, Some(LL6)));
    let mut rib = AdjRibOut::new(p.clone());
    let updates = rib.sync(&desired);
    assert_eq!(updates.len(), 2, "{updates:?}");

    let (_, v4) = roundtrip(&updates[0], p.codec);
    assert_eq!(v4.nlri, vec!["192.0.2.10/32".parse::<Ipv4Net>().unwrap()]);
    assert!(v4.withdrawn.is_empty());
    assert_eq!(
        type_codes(&v4),
        vec![
            attr_type::ORIGIN,
            attr_type::AS_PATH,
            attr_type::NEXT_HOP,
            attr_type::MULTI_EXIT_DISC,
            attr_type::COMMUNITIES,
            attr_type::EXTENDED_COMMUNITIES,
            attr_type::LARGE_COMMUNITIES,
        ]
    );
    let route = PeerRoute::from_attributes(&v4.attributes, false);
    assert_eq!(route.as_path, Some(AsPath::sequence(vec![LOCAL_ASN])));
    assert_eq!(
        route.local_pref, None,
        "LOCAL_PREF must not go to eBGP peers"
    );
    assert_eq!(route.next_hop, Some(MpNextHop::V4(NH4)));
    assert_eq!(route.med, Some(10));
    assert_eq!(
        route.communities,
        vec![Community::new(64500, 10), Community::new(64500, 20)]
    );
    assert_eq!(route.large_communities, attrs.large_communities);
    assert_eq!(
        route.extended_communities[0].as_link_bandwidth(),
        Some((64500, 1.25e9))
    );
    assert_eq!(
        route,
        PeerRoute::expected(&p, &net("192.0.2.10/32"), &attrs)
    );

    let (_, v6) = roundtrip(&updates[1], p.codec);
    assert!(v6.nlri.is_empty(), "IPv6 must travel in MP_REACH_NLRI");
    assert_eq!(
        type_codes(&v6),
        vec![
            attr_type::ORIGIN,
            attr_type::AS_PATH,
            attr_type::MULTI_EXIT_DISC,
            attr_type::COMMUNITIES,
            attr_type::MP_REACH_NLRI,
            attr_type::EXTENDED_COMMUNITIES,
            attr_type::LARGE_COMMUNITIES,
        ]
    );
    let Some(Attribute::MpReach(mp)) = v6
        .attributes
        .iter()
        .find(|a| matches!(a, Attribute::MpReach(_)))
    else {
        panic!("no MP_REACH_NLRI");
    };
    assert_eq!(mp.family, Family::IPV6_UNICAST);
    assert_eq!(
        mp.next_hop,
        MpNextHop::V6 {
            global: NH6,
            link_local: Some(LL6)
        }
    );
    assert_eq!(mp.nlri, vec![net("2001:db8::10/128")]);
    assert_eq!(
        PeerRoute::from_attributes(&v6.attributes, true),
        PeerRoute::expected(&p, &net("2001:db8::10/128"), &attrs)
    );
}

#[test]
fn ipv6_next_hop_without_link_local() {
    let desired = set(&[("2001:db8:1::/48", &RouteAttributes::default())]);
    let p = ebgp();
    let mut rib = AdjRibOut::new(p.clone());
    let updates = rib.sync(&desired);
    let (_, d) = roundtrip(&updates[0], p.codec);
    assert_eq!(
        type_codes(&d),
        vec![
            attr_type::ORIGIN,
            attr_type::AS_PATH,
            attr_type::MP_REACH_NLRI
        ]
    );
    let route = PeerRoute::from_attributes(&d.attributes, true);
    assert_eq!(
        route.next_hop,
        Some(MpNextHop::V6 {
            global: NH6,
            link_local: None
        })
    );
}

#[test]
fn ibgp_attributes() {
    let p = ibgp();
    let default_pref = RouteAttributes::default();
    let rich = rich_attributes();
    let desired = set(&[
        ("192.0.2.1/32", &default_pref),
        ("192.0.2.2/32", &rich),
        ("2001:db8::2/128", &rich),
    ]);
    let mut rib = AdjRibOut::new(p.clone());
    let mut peer = Peer::default();
    let updates = rib.sync(&desired);
    assert_eq!(updates.len(), 3);
    peer.apply(&updates, p.codec);

    let plain = &peer.rib[&net("192.0.2.1/32")];
    assert_eq!(
        plain.as_path,
        Some(AsPath::default()),
        "iBGP AS_PATH is empty"
    );
    assert_eq!(plain.local_pref, Some(100));
    assert_eq!(plain.next_hop, Some(MpNextHop::V4(NH4)));
    assert_eq!(plain.med, None);
    assert!(plain.communities.is_empty());

    let rich_v4 = &peer.rib[&net("192.0.2.2/32")];
    assert_eq!(rich_v4.as_path, Some(AsPath::default()));
    assert_eq!(rich_v4.local_pref, Some(200));
    let rich_v6 = &peer.rib[&net("2001:db8::2/128")];
    assert_eq!(rich_v6.local_pref, Some(200));
    assert_eq!(peer.rib, expected_rib(&p, &desired));

    // On the wire the empty AS_PATH is a zero-length attribute.
    let bytes = Message::Update(updates[0].clone())
        .to_bytes(p.codec)
        .unwrap();
    assert!(
        bytes.windows(3).any(|w| w == [0x40, attr_type::AS_PATH, 0]),
        "{bytes:02x?}"
    );
}

#[test]
fn four_octet_local_asn_towards_two_octet_session() {
    let attrs = RouteAttributes::default();
    let desired = set(&[("198.51.100.0/24", &attrs), ("2001:db8:2::/64", &attrs)]);
    let p = params(4_200_000_000, PEER_ASN, false);
    let mut rib = AdjRibOut::new(p.clone());
    let updates = rib.sync(&desired);
    let mut peer = Peer::default();
    peer.apply(
        &updates,
        Codec {
            four_octet_as: false,
        },
    );
    for prefix in ["198.51.100.0/24", "2001:db8:2::/64"] {
        let route = &peer.rib[&net(prefix)];
        assert_eq!(route.as_path, Some(AsPath::sequence(vec![23456])));
        assert_eq!(route.as4_path, Some(AsPath::sequence(vec![4_200_000_000])));
    }
    assert_eq!(peer.rib, expected_rib(&p, &desired));
    // AS4_PATH comes after the other attributes we send, before LARGE_COMMUNITY.
    assert_eq!(
        type_codes(&updates[0]),
        vec![
            attr_type::ORIGIN,
            attr_type::AS_PATH,
            attr_type::NEXT_HOP,
            attr_type::AS4_PATH
        ]
    );
    // On the wire the AS_PATH holds the 2-octet AS_TRANS.
    let bytes = Message::Update(updates[0].clone())
        .to_bytes(p.codec)
        .unwrap();
    let [hi, lo] = AS_TRANS.to_be_bytes();
    assert!(
        bytes
            .windows(7)
            .any(|w| w == [0x40, attr_type::AS_PATH, 4, 2, 1, hi, lo]),
        "{bytes:02x?}"
    );

    // The same ASN towards a 4-octet session: AS_PATH carries it directly, no AS4_PATH.
    let p4 = params(4_200_000_000, PEER_ASN, true);
    let mut rib = AdjRibOut::new(p4.clone());
    let mut peer = Peer::default();
    peer.apply(&rib.sync(&desired), p4.codec);
    let route = &peer.rib[&net("198.51.100.0/24")];
    assert_eq!(route.as_path, Some(AsPath::sequence(vec![4_200_000_000])));
    assert_eq!(route.as4_path, None);

    // iBGP on a 2-octet session: empty AS_PATH, no AS4_PATH.
    let pi = params(4_200_000_000, 4_200_000_000, false);
    let mut rib = AdjRibOut::new(pi.clone());
    let mut peer = Peer::default();
    peer.apply(&rib.sync(&desired), pi.codec);
    let route = &peer.rib[&net("198.51.100.0/24")];
    assert_eq!(route.as_path, Some(AsPath::default()));
    assert_eq!(route.as4_path, None);
    assert_eq!(route.local_pref, Some(100));

    // A 2-octet local ASN on a 2-octet session: plain AS_PATH.
    let p2 = params(LOCAL_ASN, PEER_ASN, false);
    let mut rib = AdjRibOut::new(p2.clone());
    let mut peer = Peer::default();
    peer.apply(&rib.sync(&desired), p2.codec);
    let route = &peer.rib[&net("198.51.100.0/24")];
    assert_eq!(route.as_path, Some(AsPath::sequence(vec![LOCAL_ASN])));
    assert_eq!(route.as4_path, None);
}

// ---------------------------------------------------------------------------------------------
// Packing
// ---------------------------------------------------------------------------------------------

/// `n` IPv4 host routes from 198.18.0.0/15 (RFC 2544 benchmarking range).
fn v4_hosts(n: u32) -> Vec<IpNet> {
    assert!(n <= 1 << 17);
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    (0..n)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base + i), 32).unwrap()))
        .collect()
}

/// `n` IPv6 host routes from 2001:db8::/32.
fn v6_hosts(n: u32) -> Vec<IpNet> {
    let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0));
    (0..n)
        .map(|i| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(base + u128::from(i)), 128).unwrap()))
        .collect()
}

/// Encodes and decodes `updates`, checks that each is ≤ 4096 octets, and returns the sizes
/// and decoded messages.
fn on_wire(updates: &[Update], codec: Codec) -> Vec<(usize, Update)> {
    updates.iter().map(|u| roundtrip(u, codec)).collect()
}

/// Checks that `count` messages is minimal within one, for `total` prefixes of `per_prefix`
/// octets each and `overhead` octets of everything else per message.
fn assert_near_minimal(count: usize, total: usize, per_prefix: usize, overhead: usize) {
    let per_message = (MAX_MESSAGE_LEN - overhead) / per_prefix;
    let minimum = total.div_ceil(per_message);
    assert!(
        count >= minimum && count <= minimum + 1,
        "{count} UPDATEs for {total} prefixes ({per_message} per message, minimum {minimum})"
    );
}

#[test]
fn packs_ten_thousand_ipv4_host_routes() {
    let attrs = RouteAttributes {
        communities: vec![Community::new(64500, 1)],
        ..RouteAttributes::default()
    };
    let prefixes = v4_hosts(10_000);
    let desired: RouteSet = prefixes.iter().map(|p| (*p, attrs.clone())).collect();
    let p = ebgp();
    let mut rib = AdjRibOut::new(p.clone());
    let updates = rib.sync(&desired);
    let decoded = on_wire(&updates, p.codec);

    // Everything but the 5-octet prefixes is the same in every message.
    let (first_len, first) = &decoded[0];
    let overhead = first_len - 5 * first.nlri.len();
    // Header, two length fields, ORIGIN (4), AS_PATH (3 + 2 + 4), NEXT_HOP (7),
    // COMMUNITIES (3 + 4).
    assert_eq!(overhead, UPDATE_FIXED + 4 + 9 + 7 + 7);
    for (len, u) in &decoded {
        assert_eq!(*len, overhead + 5 * u.nlri.len());
        assert!(u.withdrawn.is_empty());
        assert_eq!(u.attributes, first.attributes);
    }
    assert_near_minimal(decoded.len(), 10_000, 5, overhead);
    // All but the last are full: no room for another prefix.
    for (len, _) in &decoded[..decoded.len() - 1] {
        assert!(
            len + 5 > MAX_MESSAGE_LEN,
            "message of {len} octets not full"
        );
    }

    let mut seen: Vec<IpNet> = decoded.iter().flat_map(|(_, u)| u.announced()).collect();
    assert_eq!(seen.len(), 10_000);
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 10_000, "a prefix was announced twice");
    let mut wanted = prefixes;
    wanted.sort_unstable();
    assert_eq!(seen, wanted);
    assert_eq!(rib.advertised(), &desired);
}

#[test]
fn packs_three_thousand_ipv6_host_routes() {
    for link_local in [None, Some(LL6)] {
        let prefixes = v6_hosts(3_000);
        let attrs = RouteAttributes::default();
        let desired: RouteSet = prefixes.iter().map(|p| (*p, attrs.clone())).collect();
        let mut p = ebgp();
        p.next_hop_v6 = Some((NH6, link_local));
        let mut rib = AdjRibOut::new(p.clone());
        let updates = rib.sync(&desired);
        let decoded = on_wire(&updates, p.codec);

        let (first_len, first) = &decoded[0];
        let count = first.announced().len();
        let overhead = first_len - 17 * count;
        // Header, two length fields, ORIGIN (4), AS_PATH (9), MP_REACH_NLRI with an extended
        // length (4 + AFI 2 + SAFI 1 + next hop length 1 + next hop + reserved 1).
        let next_hop_len = if link_local.is_some() { 32 } else { 16 };
        assert_eq!(overhead, UPDATE_FIXED + 4 + 9 + 4 + 5 + next_hop_len);
        for (len, u) in &decoded {
            assert!(u.nlri.is_empty() && u.withdrawn.is_empty());
            let n = u.announced().len();
            if n * 17 + 5 + next_hop_len >= 256 {
                assert_eq!(*len, overhead + 17 * n);
            }
            assert_eq!(
                PeerRoute::from_attributes(&u.attributes, true),
                PeerRoute::expected(&p, &prefixes[0], &attrs)
            );
        }
        assert_near_minimal(decoded.len(), 3_000, 17, overhead);

        let mut seen: Vec<IpNet> = decoded.iter().flat_map(|(_, u)| u.announced()).collect();
        assert_eq!(seen.len(), 3_000);
        seen.sort_unstable();
        seen.dedup();
        let mut wanted = prefixes.clone();
        wanted.sort_unstable();
        assert_eq!(seen, wanted);
    }
}

#[test]
fn attribute_groups_never_share_an_update() {
    let a = RouteAttributes {
        med: Some(1),
        ..RouteAttributes::default()
    };
    let b = RouteAttributes {
        communities: vec![Community::new(64500, 2)],
        ..RouteAttributes::default()
    };
    let c = RouteAttributes::default();
    let groups = [&a, &b, &c];
    let mut desired = RouteSet::new();
    for (i, p) in v4_hosts(2_500).into_iter().enumerate() {
        desired.insert(p, groups[i % 3].clone());
    }
    for (i, p) in v6_hosts(700).into_iter().enumerate() {
        desired.insert(p, groups[i % 3].clone());
    }
    let p = ebgp();
    let mut rib = AdjRibOut::new(p.clone());
    let updates = rib.sync(&desired);
    let mut per_group = [0usize; 3];
    let mut total = 0;
    for (_, u) in on_wire(&updates, p.codec) {
        let announced = u.announced();
        assert!(!announced.is_empty());
        let fams: BTreeSet<Family> = announced.iter().map(Family::of).collect();
        assert_eq!(fams.len(), 1, "one family per UPDATE");
        let group = groups
            .iter()
            .position(|g| **g == desired[&announced[0]])
            .unwrap();
        for prefix in &announced {
            assert_eq!(
                &desired[prefix], groups[group],
                "{prefix} in the wrong UPDATE"
            );
            assert_eq!(
                PeerRoute::from_attributes(&u.attributes, prefix.addr().is_ipv6()),
                PeerRoute::expected(&p, prefix, groups[group])
            );
        }
        per_group[group] += 1;
        total += announced.len();
    }
    assert_eq!(total, 3_200);
    // Each group of ~833 IPv4 and ~233 IPv6 host routes needs two IPv4 and one IPv6 UPDATE.
    assert_eq!(per_group, [3, 3, 3]);
}

// ---------------------------------------------------------------------------------------------
// Full table, End-of-RIB, sync
// ---------------------------------------------------------------------------------------------

#[test]
fn full_table_ends_with_end_of_rib_per_family() {
    let attrs = RouteAttributes::default();
    let desired = set(&[("192.0.2.0/24", &attrs), ("2001:db8::/32", &attrs)]);
    let p = ebgp();
    let mut rib = AdjRibOut::new(p.clone());
    let updates = rib.full_table(&desired);
    assert_eq!(updates.len(), 4);
    let n = updates.len();
    assert_eq!(updates[n - 2], Update::end_of_rib(Family::IPV4_UNICAST));
    assert_eq!(updates[n - 1], Update::end_of_rib(Family::IPV6_UNICAST));

    // IPv4 End-of-RIB: an empty UPDATE (23 octets); IPv6: MP_UNREACH_NLRI with no prefixes.
    let v4_eor = Message::Update(updates[n - 2].clone())
        .to_bytes(p.codec)
        .unwrap();
    assert_eq!(v4_eor.len(), 23);
    assert_eq!(&v4_eor[19..], &[0, 0, 0, 0]);
    let (_, v6_eor) = roundtrip(&updates[n - 1], p.codec);
    assert_eq!(v6_eor.end_of_rib_family(), Some(Family::IPV6_UNICAST));
    assert!(v6_eor.withdrawn_all().is_empty() && v6_eor.announced().is_empty());
    assert!(matches!(
        v6_eor.attributes.as_slice(),
        [Attribute::MpUnreach(un)] if un.family == Family::IPV6_UNICAST && un.withdrawn.is_empty()
    ));
    // The routes come before the markers.
    for u in &updates[..n - 2] {
        assert_eq!(u.end_of_rib_family(), None);
    }
    let mut peer = Peer::default();
    peer.apply(&updates, p.codec);
    assert_eq!(
        peer.end_of_rib,
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert_eq!(peer.rib, expected_rib(&p, &desired));

    // An empty table is just the markers.
    let mut rib = AdjRibOut::new(p);
    assert_eq!(
        rib.full_table(&RouteSet::new()),
        vec![
            Update::end_of_rib(Family::IPV4_UNICAST),
            Update::end_of_rib(Family::IPV6_UNICAST)
        ]
    );

    // Only the negotiated families get a marker.
    let mut v6_only = ebgp();
    v6_only.families = vec![Family::IPV6_UNICAST];
    let mut rib = AdjRibOut::new(v6_only);
    let updates = rib.full_table(&desired);
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[1], Update::end_of_rib(Family::IPV6_UNICAST));
}

#[test]
fn sync_without_change_sends_nothing() {
    let attrs = rich_attributes();
    let desired: RouteSet = v4_hosts(300)
        .into_iter()
        .chain(v6_hosts(50))
        .map(|p| (p, attrs.clone()))
        .collect();
    let mut rib = AdjRibOut::new(ebgp());
    assert!(!rib.full_table(&desired).is_empty());
    assert_eq!(rib.sync(&desired), vec![]);
    // Unroutable additions change nothing either.
    let mut more = desired.clone();
    let mut no_v6 = ebgp();
    no_v6.families = vec![Family::IPV4_UNICAST];
    let mut rib = AdjRibOut::new(no_v6);
    rib.sync(&desired);
    more.insert(net("2001:db8:ffff::/48"), attrs);
    assert_eq!(rib.sync(&more), vec![]);
}

#[test]
fn removing_prefixes_sends_only_batched_withdrawals() {
    let attrs = rich_attributes();
    let v4 = v4_hosts(6_000);
    let v6 = v6_hosts(1_200);
    let desired: RouteSet = v4.iter().chain(&v6).map(|p| (*p, attrs.clone())).collect();
    let p = ebgp();
    let mut rib = AdjRibOut::new(p.clone());
    let mut peer = Peer::default();
    peer.apply(&rib.full_table(&desired), p.codec);
    assert_eq!(peer.rib.len(), 7_200);

    // Keep the first 1,000 of each family.
    let kept: RouteSet = v4[..1_000]
        .iter()
        .chain(&v6[..1_000])
        .map(|p| (*p, attrs.clone()))
        .collect();
    let updates = rib.sync(&kept);
    let decoded = on_wire(&updates, p.codec);
    let mut v4_msgs = 0;
    let mut v6_msgs = 0;
    let mut withdrawn = Vec::new();
    for (len, u) in &decoded {
        assert!(u.announced().is_empty(), "withdrawal only");
        assert!(u.nlri.is_empty());
        if u.withdrawn.is_empty() {
            // IPv6: a lone MP_UNREACH_NLRI.
            assert!(matches!(u.attributes.as_slice(), [Attribute::MpUnreach(_)]));
            v6_msgs += 1;
        } else {
            assert!(u.attributes.is_empty());
            assert_eq!(*len, UPDATE_FIXED + 5 * u.withdrawn.len());
            v4_msgs += 1;
        }
        withdrawn.extend(u.withdrawn_all());
    }
    assert_near_minimal(v4_msgs, 5_000, 5, UPDATE_FIXED);
    // MP_UNREACH_NLRI: extended-length header (4), AFI, SAFI.
    assert_near_minimal(v6_msgs, 200, 17, UPDATE_FIXED + 7);
    withdrawn.sort_unstable();
    let mut expected: Vec<IpNet> = v4[1_000..].iter().chain(&v6[1_000..]).copied().collect();
    expected.sort_unstable();
    assert_eq!(withdrawn, expected);

    peer.apply(&updates, p.codec);
    assert_eq!(peer.rib, expected_rib(&p, &kept));
    assert_eq!(rib.advertised(), &kept);
}

#[test]
fn changing_attributes_reannounces_only_the_changed_prefixes() {
    let old = RouteAttributes::default();
    let new = RouteAttributes {
        med: Some(50),
        ..RouteAttributes::default()
    };
    let mut desired: RouteSet = v4_hosts(100)
        .into_iter()
        .chain(v6_hosts(100))
        .map(|p| (p, old.clone()))
        .collect();
    let p = ebgp();
    let mut rib = AdjRibOut::new(p.clone());
    let mut peer = Peer::default();
    peer.apply(&rib.full_table(&desired), p.codec);

    let changed: Vec<IpNet> = desired.keys().step_by(7).copied().collect();
    for prefix in &changed {
        desired.insert(*prefix, new.clone());
    }
    let updates = rib.sync(&desired);
    assert_eq!(updates.len(), 2, "one UPDATE per family");
    let mut announced = Vec::new();
    for (_, u) in on_wire(&updates, p.codec) {
        assert!(
            u.withdrawn_all().is_empty(),
            "no withdrawal on an attribute change"
        );
        let route = PeerRoute::from_attributes(&u.attributes, !u.announced()[0].addr().is_ipv4());
        assert_eq!(route.med, Some(50));
        announced.extend(u.announced());
    }
    announced.sort_unstable();
    assert_eq!(announced, changed);
    peer.apply(&updates, p.codec);
    assert_eq!(peer.rib, expected_rib(&p, &desired));
}

#[test]
fn unroutable_prefixes_are_skipped_and_reported() {
    let attrs = RouteAttributes::default();
    let desired = set(&[
        ("192.0.2.0/25", &attrs),
        ("203.0.113.7/32", &attrs),
        ("2001:db8::7/128", &attrs),
    ]);

    // IPv6 not negotiated.
    let mut p = ebgp();
    p.families = vec![Family::IPV4_UNICAST];
    let mut rib = AdjRibOut::new(p.clone());
    let (ok, skipped) = rib.routable(&desired);
    assert_eq!(ok.len(), 2);
    assert_eq!(
        skipped,
        vec![(
            net("2001:db8::7/128"),
            "address family not negotiated with the peer"
        )]
    );
    assert_eq!(
        rib.unroutable_families(&desired),
        BTreeSet::from([Family::IPV6_UNICAST])
    );
    let updates = rib.full_table(&desired);
    let mut peer = Peer::default();
    peer.apply(&updates, p.codec);
    assert_eq!(peer.rib.len(), 2);
    assert_eq!(peer.rib, expected_rib(&p, &desired));
    assert_eq!(peer.end_of_rib, vec![Family::IPV4_UNICAST]);
    assert!(!rib.advertised().contains_key(&net("2001:db8::7/128")));

    // No IPv4 next hop on the session.
    let mut p = ebgp();
    p.next_hop_v4 = None;
    let mut rib = AdjRibOut::new(p.clone());
    let (ok, skipped) = rib.routable(&desired);
    assert_eq!(ok, vec![(&net("2001:db8::7/128"), &attrs)]);
    assert_eq!(
        skipped,
        vec![
            (net("192.0.2.0/25"), "no IPv4 next hop on this session"),
            (net("203.0.113.7/32"), "no IPv4 next hop on this session"),
        ]
    );
    let mut peer = Peer::default();
    peer.apply(&rib.full_table(&desired), p.codec);
    assert_eq!(
        peer.rib.keys().copied().collect::<Vec<_>>(),
        vec![net("2001:db8::7/128")]
    );
    // Both families are negotiated, so both get End-of-RIB.
    assert_eq!(
        peer.end_of_rib,
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert_eq!(
        rib.unroutable_families(&desired),
        BTreeSet::from([Family::IPV4_UNICAST])
    );

    // No IPv6 next hop.
    let mut p = ebgp();
    p.next_hop_v6 = None;
    let rib = AdjRibOut::new(p.clone());
    assert_eq!(
        p.unroutable(&net("2001:db8::7/128")),
        Some("no IPv6 next hop on this session")
    );
    assert_eq!(rib.routable(&desired).0.len(), 2);
}

#[test]
fn route_refresh_resend_matches_the_desired_set() {
    // full_table is also what is sent on a ROUTE-REFRESH, on a session whose peer still
    // holds what it was told before: it must end up with exactly the desired set.
    let attrs = RouteAttributes::default();
    let before = set(&[
        ("192.0.2.1/32", &attrs),
        ("192.0.2.2/32", &attrs),
        ("2001:db8::1/128", &attrs),
        ("2001:db8::2/128", &attrs),
    ]);
    let after = set(&[("192.0.2.1/32", &attrs), ("2001:db8::1/128", &attrs)]);
    let p = ebgp();
    let mut rib = AdjRibOut::new(p.clone());
    let mut peer = Peer::default();
    peer.apply(&rib.full_table(&before), p.codec);
    assert_eq!(peer.rib.len(), 4);

    // Refresh with the same set: everything again, then End-of-RIB.
    let again = rib.full_table(&before);
    let announced: usize = again.iter().map(|u| u.announced().len()).sum();
    assert_eq!(announced, 4);
    peer.apply(&again, p.codec);
    assert_eq!(peer.rib, expected_rib(&p, &before));

    // Refresh after the desired set shrank without a sync in between.
    let updates = rib.full_table(&after);
    peer.apply(&updates, p.codec);
    assert_eq!(peer.rib, expected_rib(&p, &after));
    assert_eq!(rib.advertised(), &after);
    assert_eq!(rib.sync(&after), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Property test
// ---------------------------------------------------------------------------------------------

fn universe() -> Vec<IpNet> {
    let mut out: Vec<IpNet> = (0..12)
        .map(|i| net(&format!("192.0.2.{i}/32")))
        .chain(
            [
                "192.0.2.128/25",
                "198.51.100.0/24",
                "198.51.100.128/25",
                "203.0.113.0/24",
                "203.0.113.64/26",
                "203.0.113.200/30",
            ]
            .map(net),
        )
        .collect();
    out.extend((1..=10).map(|i| net(&format!("2001:db8::{i:x}/128"))));
    out.extend(
        [
            "2001:db8::/32",
            "2001:db8:1::/48",
            "2001:db8:2::/64",
            "2001:db8:3:4::/62",
        ]
        .map(net),
    );
    out
}

fn attribute_pool() -> Vec<RouteAttributes> {
    let mut pool = vec![
        RouteAttributes::default(),
        RouteAttributes {
            local_pref: Some(200),
            ..RouteAttributes::default()
        },
        RouteAttributes {
            med: Some(7),
            communities: vec![Community::new(64500, 1)],
            ..RouteAttributes::default()
        },
        RouteAttributes {
            large_communities: vec![LargeCommunity {
                global_admin: 64500,
                local1: 0,
                local2: 9,
            }],
            ..RouteAttributes::default()
        },
        RouteAttributes {
            extended_communities: vec![ExtendedCommunity::link_bandwidth(64500, 1e6)],
            ..RouteAttributes::default()
        },
        rich_attributes(),
    ];
    // Many communities: a long attribute with the extended length.
    let mut long = RouteAttributes {
        communities: (0..100).map(|i| Community::new(64512, i)).collect(),
        ..RouteAttributes::default()
    };
    long.normalize();
    pool.push(long);
    pool
}

fn session_params() -> impl Strategy<Value = SessionParams> {
    (
        any::<bool>(),
        prop::sample::select(vec![64500u32, 4_200_000_000]),
        any::<bool>(),
        prop::sample::select(vec![
            vec![Family::IPV4_UNICAST],
            vec![Family::IPV6_UNICAST],
            vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            vec![Family::IPV6_UNICAST, Family::IPV4_UNICAST],
        ]),
        prop::bool::weighted(0.85),
        prop::option::weighted(0.85, prop::option::of(Just(LL6))),
    )
        .prop_map(
            |(ibgp, local_asn, four, families, nh4, nh6)| SessionParams {
                local_asn,
                peer_asn: if ibgp {
                    local_asn
                } else if local_asn > 65535 {
                    4_200_000_001
                } else {
                    PEER_ASN
                },
                codec: Codec {
                    four_octet_as: four,
                },
                families,
                next_hop_v4: nh4.then_some(NH4),
                next_hop_v6: nh6.map(|ll| (NH6, ll)),
            },
        )
}

fn desired_set() -> impl Strategy<Value = RouteSet> {
    let universe = universe();
    let pool = attribute_pool();
    prop::collection::btree_map(
        prop::sample::select(universe),
        prop::sample::select(pool),
        0..30,
    )
}

#[derive(Debug, Clone)]
enum Step {
    Sync(RouteSet),
    /// A ROUTE-REFRESH: the whole table again.
    Refresh(RouteSet),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => desired_set().prop_map(Step::Sync),
        1 => desired_set().prop_map(Step::Refresh),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn peer_rib_follows_the_desired_set(
        p in session_params(),
        first in desired_set(),
        steps in prop::collection::vec(step(), 0..8),
    ) {
        let mut rib = AdjRibOut::new(p.clone());
        let mut peer = Peer::default();
        let updates = rib.full_table(&first);
        peer.apply(&updates, p.codec);
        prop_assert_eq!(&peer.end_of_rib, &p.families);
        prop_assert_eq!(&peer.rib, &expected_rib(&p, &first));
        for step in steps {
            let before = rib.advertised().clone();
            let (desired, refresh) = match step {
                Step::Sync(d) => (d, false),
                Step::Refresh(d) => (d, true),
            };
            let updates = if refresh {
                rib.full_table(&desired)
            } else {
                rib.sync(&desired)
            };
            let wanted: RouteSet = desired
                .iter()
                .filter(|(prefix, _)| routable_by_rule(&p, prefix))
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            if !refresh {
                // Withdrawals exactly for the routes gone, announcements exactly for the new
                // or changed ones, each once; nothing at all when nothing changed.
                let mut withdrawn: Vec<IpNet> =
                    updates.iter().flat_map(Update::withdrawn_all).collect();
                let mut announced: Vec<IpNet> =
                    updates.iter().flat_map(Update::announced).collect();
                withdrawn.sort_unstable();
                announced.sort_unstable();
                let gone: Vec<IpNet> = before
                    .keys()
                    .filter(|k| !wanted.contains_key(k))
                    .copied()
                    .collect();
                let changed: Vec<IpNet> = wanted
                    .iter()
                    .filter(|(k, v)| before.get(k) != Some(v))
                    .map(|(k, _)| *k)
                    .collect();
                prop_assert_eq!(withdrawn, gone);
                prop_assert_eq!(announced, changed);
                if wanted == before {
                    prop_assert!(updates.is_empty());
                }
            }
            peer.apply(&updates, p.codec);
            prop_assert_eq!(&peer.rib, &expected_rib(&p, &desired));
            prop_assert_eq!(rib.advertised(), &wanted);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_prefixes_pack_within_the_limit(
        p in session_params(),
        v4_lens in prop::collection::vec((15u8..=32, any::<u32>()), 0..3_000),
        v6_lens in prop::collection::vec((32u8..=128, any::<u128>()), 0..1_500),
        attrs in prop::sample::select(attribute_pool()),
    ) {
        // Prefixes of any length inside 198.18.0.0/15 and 2001:db8::/32.
        let v4_base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
        let v6_base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0));
        let mut desired = RouteSet::new();
        for (len, bits) in v4_lens {
            let addr = Ipv4Addr::from(v4_base | (bits & 0x1_ffff));
            desired.insert(IpNet::V4(Ipv4Net::new(addr, len).unwrap().trunc()), attrs.clone());
        }
        for (len, bits) in v6_lens {
            let addr = Ipv6Addr::from(v6_base | (bits >> 32));
            desired.insert(IpNet::V6(Ipv6Net::new(addr, len).unwrap().trunc()), attrs.clone());
        }
        let mut rib = AdjRibOut::new(p.clone());
        let updates = rib.full_table(&desired);
        let mut peer = Peer::default();
        peer.apply(&updates, p.codec);
        prop_assert_eq!(&peer.rib, &expected_rib(&p, &desired));

        // Next-fit packing wastes less than one prefix per message.
        for v6 in [false, true] {
            let msgs: Vec<(usize, Update)> = updates
                .iter()
                .filter(|u| u.end_of_rib_family().is_none())
                .map(|u| roundtrip(u, p.codec))
                .filter(|(_, u)| u.announced().first().is_some_and(|a| a.addr().is_ipv6() == v6))
                .collect();
            let Some((len, first)) = msgs.first() else { continue };
            let bytes: Vec<usize> = desired
                .keys()
                .filter(|k| k.addr().is_ipv6() == v6 && routable_by_rule(&p, k))
                .map(|k| 1 + usize::from(k.prefix_len()).div_ceil(8))
                .collect();
            let first_bytes: usize = first
                .announced()
                .iter()
                .map(|k| 1 + usize::from(k.prefix_len()).div_ceil(8))
                .sum();
            // Everything but the prefixes (at most one octet more for a short MP_REACH).
            let overhead = len - first_bytes + usize::from(v6);
            let room = MAX_MESSAGE_LEN - overhead;
            let largest = if v6 { 17 } else { 5 };
            // Every message but the last is closed with more than `room - largest` octets.
            let bound = bytes.iter().sum::<usize>() / (room + 1 - largest) + 1;
            prop_assert!(
                msgs.len() <= bound,
                "{} messages, bound {}", msgs.len(), bound
            );
        }

        // Withdrawing everything packs the same way.
        let updates = rib.sync(&RouteSet::new());
        peer.apply(&updates, p.codec);
        prop_assert!(peer.rib.is_empty());
    }
}
