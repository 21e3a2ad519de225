#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Property tests for the BGP codec (`lb_bgp::wire`): arbitrary valid messages survive
//! `decode(encode(m)) == m` with both the 4-octet and the 2-octet AS codec, and arbitrary or
//! mutated bytes never make `frame_len` / `Message::decode` panic, while anything that does
//! decode re-encodes (and re-decodes to the same message, less the RFC 7606 `issues`).
//!
//! Addresses are drawn from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32, fe80:: for link-local) and truncated to the random prefix
//! length; AS numbers from the private ranges (64496-65534, 4200000000-4294967294).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use lb_bgp::wire::{
    AS_TRANS, AsPath, AsPathSegment, Attribute, Capability, Codec, ExtendedCommunity, Family,
    GracefulRestart, GracefulRestartFamily, MAX_MESSAGE_LEN, Message, MpNextHop, MpReach,
    MpUnreach, Notification, Open, Origin, RouteRefresh, SegmentType, Update, frame_len,
};
use lb_core::{Community, LargeCommunity};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;

mod fixtures;

use fixtures::{FOUR, TWO};

// ---------------------------------------------------------------------------------------------
// Strategies: addresses, prefixes, AS numbers.
// ---------------------------------------------------------------------------------------------

fn doc_v4() -> impl Strategy<Value = Ipv4Addr> {
    (
        prop::sample::select(vec![[192u8, 0, 2], [198, 51, 100], [203, 0, 113]]),
        any::<u8>(),
    )
        .prop_map(|(net, host)| Ipv4Addr::new(net[0], net[1], net[2], host))
}

fn doc_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(|low| Ipv6Addr::from((0x2001_0db8_u128 << 96) | (low >> 32)))
}

fn link_local() -> impl Strategy<Value = Ipv6Addr> {
    any::<u64>().prop_map(|iid| Ipv6Addr::from((0xfe80_u128 << 112) | u128::from(iid)))
}

fn v4_prefix() -> impl Strategy<Value = Ipv4Net> {
    (doc_v4(), 0u8..=32).prop_map(|(a, len)| Ipv4Net::new(a, len).unwrap().trunc())
}

fn v6_prefix() -> impl Strategy<Value = Ipv6Net> {
    (doc_v6(), 0u8..=128).prop_map(|(a, len)| Ipv6Net::new(a, len).unwrap().trunc())
}

/// A private ASN; a 4-octet one only when `four`.
fn asn(four: bool) -> BoxedStrategy<u32> {
    if four {
        prop_oneof![64496u32..=65534, 4_200_000_000u32..=4_294_967_294].boxed()
    } else {
        (64496u32..=65534).boxed()
    }
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![
        Just(Family::IPV4_UNICAST),
        Just(Family::IPV6_UNICAST),
        (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Family { afi, safi }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Strategies: OPEN.
// ---------------------------------------------------------------------------------------------

fn unknown_capability_code() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("known capability", |c| !matches!(c, 1 | 2 | 64 | 65 | 70))
}

fn graceful_restart() -> impl Strategy<Value = GracefulRestart> {
    (
        any::<bool>(),
        any::<bool>(),
        0u16..=0x0fff,
        vec((family(), any::<bool>()), 0..4),
    )
        .prop_map(
            |(restart_state, notification, restart_time, families)| GracefulRestart {
                restart_state,
                notification,
                restart_time,
                families: families
                    .into_iter()
                    .map(|(family, forwarding_preserved)| GracefulRestartFamily {
                        family,
                        forwarding_preserved,
                    })
                    .collect(),
            },
        )
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        3 => family().prop_map(Capability::Multiprotocol),
        1 => Just(Capability::RouteRefresh),
        1 => Just(Capability::EnhancedRouteRefresh),
        1 => asn(true).prop_map(Capability::FourOctetAs),
        2 => graceful_restart().prop_map(Capability::GracefulRestart),
        3 => (unknown_capability_code(), vec(any::<u8>(), 0..=32))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
        // Long values push the optional parameters past 255 octets (RFC 9072 encoding).
        1 => (unknown_capability_code(), vec(any::<u8>(), 200..=255))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        prop_oneof![64496u16..=65534, Just(AS_TRANS)],
        prop_oneof![Just(0u16), 3u16..=u16::MAX],
        doc_v4(),
        vec(capability(), 0..12),
    )
        .prop_map(|(my_as, hold_time, router_id, capabilities)| Open {
            my_as,
            hold_time,
            router_id,
            capabilities,
        })
}

// ---------------------------------------------------------------------------------------------
// Strategies: UPDATE.
// ---------------------------------------------------------------------------------------------

fn segment_type() -> impl Strategy<Value = SegmentType> {
    prop_oneof![
        Just(SegmentType::Sequence),
        Just(SegmentType::Set),
        Just(SegmentType::ConfedSequence),
        Just(SegmentType::ConfedSet),
    ]
}

fn as_path(four: bool) -> impl Strategy<Value = AsPath> {
    prop_oneof![
        1 => Just(AsPath::default()),
        9 => vec(
            (segment_type(), vec(asn(four), 1..=20))
                .prop_map(|(kind, asns)| AsPathSegment { kind, asns }),
            1..=4,
        )
        .prop_map(|segments| AsPath { segments }),
    ]
}

fn origin() -> impl Strategy<Value = Origin> {
    prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ]
}

fn extended_community() -> impl Strategy<Value = ExtendedCommunity> {
    prop_oneof![
        any::<[u8; 8]>().prop_map(ExtendedCommunity),
        (64496u16..=65534, 0.0f32..1.0e12)
            .prop_map(|(a, bw)| ExtendedCommunity::link_bandwidth(a, bw)),
    ]
}

fn large_community() -> impl Strategy<Value = LargeCommunity> {
    (asn(true), any::<u32>(), any::<u32>()).prop_map(|(global_admin, local1, local2)| {
        LargeCommunity {
            global_admin,
            local1,
            local2,
        }
    })
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    prop_oneof![
        4 => (doc_v6(), prop::option::of(link_local()), vec(v6_prefix(), 0..20)).prop_map(
            |(global, link_local, nlri)| MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: MpNextHop::V6 { global, link_local },
                nlri: nlri.into_iter().map(IpNet::V6).collect(),
            }
        ),
        1 => (doc_v4(), vec(v4_prefix(), 0..20)).prop_map(|(nh, nlri)| MpReach {
            family: Family::IPV4_UNICAST,
            next_hop: MpNextHop::V4(nh),
            nlri: nlri.into_iter().map(IpNet::V4).collect(),
        }),
    ]
}

fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    prop_oneof![
        4 => vec(v6_prefix(), 0..20).prop_map(|w| MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: w.into_iter().map(IpNet::V6).collect(),
        }),
        1 => vec(v4_prefix(), 0..20).prop_map(|w| MpUnreach {
            family: Family::IPV4_UNICAST,
            withdrawn: w.into_iter().map(IpNet::V4).collect(),
        }),
    ]
}

/// Type codes the codec parses; an `Attribute::Unknown` must use another one.
fn is_known_type(code: u8) -> bool {
    matches!(code, 1..=8 | 14..=18 | 32)
}

/// Unknown optional attributes, each type at most once: flags have the optional bit and never
/// the extended-length bit (the encoder computes it).
fn unknown_attributes() -> impl Strategy<Value = Vec<Attribute>> {
    btree_map(
        any::<u8>().prop_filter("known type", |c| !is_known_type(*c)),
        (
            any::<u8>(),
            prop_oneof![4 => vec(any::<u8>(), 0..16), 1 => vec(any::<u8>(), 250..300)],
        ),
        0..3,
    )
    .prop_map(|m: BTreeMap<u8, (u8, Vec<u8>)>| {
        m.into_iter()
            .map(|(type_code, (flags, value))| Attribute::Unknown {
                flags: 0x80 | (flags & 0x6f),
                type_code,
                value,
            })
            .collect()
    })
}

type Head = (
    Option<Origin>,
    Option<AsPath>,
    Option<Ipv4Addr>,
    Option<u32>,
    Option<u32>,
    bool,
    Option<(u32, Ipv4Addr)>,
    Option<Vec<Community>>,
);
type Tail = (
    Option<MpReach>,
    Option<MpUnreach>,
    Option<Vec<ExtendedCommunity>>,
    Option<AsPath>,
    Option<(u32, Ipv4Addr)>,
    Option<Vec<LargeCommunity>>,
    Vec<Attribute>,
);

/// A valid UPDATE: attributes each at most once, in a fixed canonical order; when it announces
/// anything it carries ORIGIN and AS_PATH (and NEXT_HOP for IPv4 NLRI), so RFC 7606 leaves it
/// alone. `four`: AS numbers in AS_PATH and AGGREGATOR may need 4 octets.
fn update(four: bool) -> impl Strategy<Value = Update> {
    let head = (
        prop::option::of(origin()),
        prop::option::of(as_path(four)),
        prop::option::of(doc_v4()),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        any::<bool>(),
        prop::option::of((asn(four), doc_v4())),
        prop::option::of(vec(any::<u32>().prop_map(Community), 1..20)),
    );
    let tail = (
        prop::option::of(mp_reach()),
        prop::option::of(mp_unreach()),
        prop::option::of(vec(extended_community(), 1..10)),
        prop::option::of(as_path(true)),
        prop::option::of((asn(true), doc_v4())),
        prop::option::of(vec(large_community(), 1..10)),
        unknown_attributes(),
    );
    (vec(v4_prefix(), 0..20), head, tail, vec(v4_prefix(), 0..20))
        .prop_map(|(withdrawn, head, tail, nlri)| build_update(withdrawn, head, tail, nlri))
}

fn build_update(withdrawn: Vec<Ipv4Net>, head: Head, tail: Tail, nlri: Vec<Ipv4Net>) -> Update {
    let (mut origin, mut path, mut next_hop, med, local_pref, atomic, aggregator, communities) =
        head;
    let (reach, unreach, ext, as4_path, as4_aggregator, large, unknown) = tail;
    let announces = !nlri.is_empty() || reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
    if announces {
        origin.get_or_insert(Origin::Igp);
        path.get_or_insert_with(|| AsPath::sequence(vec![64496]));
    }
    if !nlri.is_empty() {
        next_hop.get_or_insert(Ipv4Addr::new(192, 0, 2, 1));
    }
    let mut attributes = Vec::new();
    attributes.extend(origin.map(Attribute::Origin));
    attributes.extend(path.map(Attribute::AsPath));
    attributes.extend(next_hop.map(Attribute::NextHop));
    attributes.extend(med.map(Attribute::MultiExitDisc));
    attributes.extend(local_pref.map(Attribute::LocalPref));
    if atomic {
        attributes.push(Attribute::AtomicAggregate);
    }
    attributes.extend(aggregator.map(|(asn, address)| Attribute::Aggregator { asn, address }));
    attributes.extend(communities.map(Attribute::Communities));
    attributes.extend(reach.map(Attribute::MpReach));
    attributes.extend(unreach.map(Attribute::MpUnreach));
    attributes.extend(ext.map(Attribute::ExtendedCommunities));
    attributes.extend(as4_path.map(Attribute::As4Path));
    attributes
        .extend(as4_aggregator.map(|(asn, address)| Attribute::As4Aggregator { asn, address }));
    attributes.extend(large.map(Attribute::LargeCommunities));
    attributes.extend(unknown);
    Update {
        withdrawn,
        attributes,
        nlri,
        issues: vec![],
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies: whole messages.
// ---------------------------------------------------------------------------------------------

fn notification() -> impl Strategy<Value = Notification> {
    (
        any::<u8>(),
        any::<u8>(),
        prop_oneof![
            8 => vec(any::<u8>(), 0..64),
            1 => vec(any::<u8>(), 0..=(MAX_MESSAGE_LEN - 21)),
        ],
    )
        .prop_map(|(code, subcode, data)| Notification {
            code,
            subcode,
            data,
        })
}

fn route_refresh() -> impl Strategy<Value = RouteRefresh> {
    (family(), any::<u8>()).prop_map(|(family, subtype)| RouteRefresh { family, subtype })
}

fn message(four: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        2 => open().prop_map(Message::Open),
        6 => update(four).prop_map(Message::Update),
        1 => notification().prop_map(Message::Notification),
        1 => Just(Message::Keepalive),
        1 => route_refresh().prop_map(Message::RouteRefresh),
    ]
}

// ---------------------------------------------------------------------------------------------
// Checks.
// ---------------------------------------------------------------------------------------------

fn roundtrip(m: &Message, codec: Codec) {
    let bytes = m.to_bytes(codec).expect("a valid message encodes");
    assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} octets", bytes.len());
    assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
    assert_eq!(
        usize::from(u16::from_be_bytes([bytes[16], bytes[17]])),
        bytes.len()
    );
    assert_eq!(bytes[18], m.type_code());
    let back = Message::decode(&bytes, codec).expect("decodes");
    assert_eq!(&back, m);
    // encode appends: a second message after the first frames independently.
    let mut two = bytes.clone();
    m.encode(codec, &mut two).unwrap();
    assert_eq!(&two[bytes.len()..], &bytes[..]);
}

fn without_issues(m: Message) -> Message {
    match m {
        Message::Update(mut u) => {
            u.issues.clear();
            Message::Update(u)
        }
        other => other,
    }
}

fn unreach_count(m: &Message) -> usize {
    match m {
        Message::Update(u) => u
            .attributes
            .iter()
            .filter(|a| matches!(a, Attribute::MpUnreach(_)))
            .count(),
        _ => 0,
    }
}

/// Whatever the input, nothing panics; a message that decodes re-encodes, and the re-encoded
/// bytes decode to the same message with no issues left.
fn robust(bytes: &[u8]) {
    let framed = frame_len(bytes);
    for codec in [FOUR, TWO] {
        let Ok(m) = Message::decode(bytes, codec) else {
            continue;
        };
        assert_eq!(framed, Ok(Some(bytes.len())));
        let again = m.to_bytes(codec).expect("a decoded message re-encodes");
        if unreach_count(&m) > 1 {
            // Treat-as-withdraw of an UPDATE with MP attributes of two families leaves one
            // MP_UNREACH per family: right for the receiver, but not one wire message any more
            // (MP_UNREACH_NLRI may appear only once), so it does not re-decode.
            continue;
        }
        let back = Message::decode(&again, codec).expect("a re-encoded message decodes");
        assert_eq!(back, without_issues(m));
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    SetU16(Index, u16),
    SetU8(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    HeaderLength(u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 1u8..).prop_map(|(i, x)| Mutation::Flip(i, x)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), any::<u16>()).prop_map(|(i, v)| Mutation::SetU16(i, v)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetU8(i, v)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => any::<Index>().prop_map(Mutation::Remove),
        1 => any::<u16>().prop_map(Mutation::HeaderLength),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match m {
        Mutation::Flip(i, x) => bytes[i.index(len)] ^= x,
        Mutation::Truncate(i) => bytes.truncate(i.index(len)),
        Mutation::SetU16(i, v) => {
            let at = i.index(len);
            for (k, b) in v.to_be_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + k) {
                    *slot = b;
                }
            }
        }
        Mutation::SetU8(i, v) => bytes[i.index(len)] = *v,
        Mutation::Insert(i, v) => bytes.insert(i.index(len + 1), *v),
        Mutation::Remove(i) => {
            bytes.remove(i.index(len));
        }
        Mutation::HeaderLength(v) => {
            if len >= 18 {
                bytes[16..18].copy_from_slice(&v.to_be_bytes());
            }
        }
    }
}

/// Restores the marker and the header length so the mutated body reaches the parsers.
fn repair_header(bytes: &mut [u8]) {
    if bytes.len() >= 19 {
        bytes[..16].fill(0xff);
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        bytes[16..18].copy_from_slice(&len.to_be_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn roundtrip_four_octet(m in message(true)) {
        roundtrip(&m, FOUR);
    }

    #[test]
    fn roundtrip_two_octet(m in message(false)) {
        roundtrip(&m, TWO);
    }

    #[test]
    fn roundtrip_update_four_octet(u in update(true)) {
        roundtrip(&Message::Update(u), FOUR);
    }

    #[test]
    fn roundtrip_update_two_octet(u in update(false)) {
        roundtrip(&Message::Update(u), TWO);
    }

}

proptest! {
    // The robustness properties are cheap: run more of them.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        robust(&bytes);
    }

    #[test]
    fn arbitrary_bodies_never_panic(kind in 0u8..=6, body in vec(any::<u8>(), 0..400)) {
        // A valid header in front of arbitrary bytes, so the body parsers see them.
        let mut bytes = vec![0xff; 16];
        let len = u16::try_from(19 + body.len()).unwrap();
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&body);
        robust(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        m in message(true),
        mutations in vec(mutation(), 1..6),
        repair in any::<bool>(),
    ) {
        for codec in [FOUR, TWO] {
            let Ok(mut bytes) = m.to_bytes(codec) else { continue };
            for mutation in &mutations {
                apply(&mut bytes, mutation);
            }
            if repair {
                repair_header(&mut bytes);
            }
            robust(&bytes);
        }
    }
}
