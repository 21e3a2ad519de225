#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Hand-written byte vectors for the BGP codec (`lb_bgp::wire`): every message kind both ways
//! (bytes → typed message, typed message → exact bytes), the NOTIFICATION that each malformed
//! input must produce (RFC 4271 §6), and the RFC 7606 errors that decode with `issues` instead.
//!
//! The wire bytes are written out here by hand (with small framing helpers), never produced by
//! the encoder under test.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};
use lb_bgp::wire::{
    AS_TRANS, AsPath, AsPathSegment, Attribute, Capability, Codec, ErrorCode, ExtendedCommunity,
    Family, GracefulRestart, GracefulRestartFamily, Message, MpNextHop, MpReach, MpUnreach,
    Notification, Open, Origin, RouteRefresh, SegmentType, Treatment, Update, attr_type, frame_len,
};
use lb_core::{Community, LargeCommunity};

mod fixtures;

use fixtures::{FOUR, TWO, net, v4};

// ---------------------------------------------------------------------------------------------
// Hand framing helpers.
// ---------------------------------------------------------------------------------------------

/// Marker, length, type, body.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = 19 + body.len();
    let mut out = vec![0xff; 16];
    out.push(u8::try_from(len >> 8).unwrap());
    out.push(u8::try_from(len & 0xff).unwrap());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// One path attribute: flags, type, 1- or 2-octet length (by the extended-length flag), value.
fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, code];
    if flags & 0x10 != 0 {
        out.push(u8::try_from(value.len() >> 8).unwrap());
        out.push(u8::try_from(value.len() & 0xff).unwrap());
    } else {
        out.push(u8::try_from(value.len()).unwrap());
    }
    out.extend_from_slice(value);
    out
}

/// An UPDATE message from its three raw sections.
fn update_msg(withdrawn: &[u8], attrs: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs.concat();
    let mut body = vec![
        u8::try_from(withdrawn.len() >> 8).unwrap(),
        u8::try_from(withdrawn.len() & 0xff).unwrap(),
    ];
    body.extend_from_slice(withdrawn);
    body.push(u8::try_from(attrs.len() >> 8).unwrap());
    body.push(u8::try_from(attrs.len() & 0xff).unwrap());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(nlri);
    frame(2, &body)
}

fn decode(bytes: &[u8], codec: Codec) -> Message {
    match Message::decode(bytes, codec) {
        Ok(m) => m,
        Err(e) => panic!("decode failed: {e}"),
    }
}

fn decode_update(bytes: &[u8], codec: Codec) -> Update {
    match decode(bytes, codec) {
        Message::Update(u) => u,
        other => panic!("expected UPDATE, got {other:?}"),
    }
}

fn decode_err(bytes: &[u8], codec: Codec) -> Notification {
    match Message::decode(bytes, codec) {
        Ok(m) => panic!("expected an error, decoded {m:?}"),
        Err(e) => e.notification,
    }
}

/// Asserts bytes → message and message → the very same bytes.
fn both_ways(bytes: &[u8], message: &Message, codec: Codec) {
    assert_eq!(frame_len(bytes).unwrap(), Some(bytes.len()));
    assert_eq!(&decode(bytes, codec), message, "decode");
    assert_eq!(message.to_bytes(codec).unwrap(), bytes, "encode");
}

// 2001:db8::1, 2001:db8::2, fe80::1
const V6_NH: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
];
const V6_NH2: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
];
const V6_LL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];

const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
/// AS_PATH, 4-octet: AS_SEQUENCE 4200000000 64496.
const AS_PATH4: [u8; 13] = [
    0x40, 2, 10, 2, 2, 0xfa, 0x56, 0xea, 0x00, 0x00, 0x00, 0xfb, 0xf0,
];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 192, 0, 2, 1];

fn as_path(asns: &[u32]) -> Attribute {
    Attribute::AsPath(AsPath::sequence(asns.to_vec()))
}

fn error(code: u8, subcode: u8, data: &[u8]) -> Notification {
    Notification {
        code,
        subcode,
        data: data.to_vec(),
    }
}

// ---------------------------------------------------------------------------------------------
// KEEPALIVE, OPEN.
// ---------------------------------------------------------------------------------------------

#[test]
fn keepalive() {
    let bytes = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x00, 0x13, 0x04,
    ];
    both_ways(&bytes, &Message::Keepalive, FOUR);
    both_ways(&bytes, &Message::Keepalive, TWO);
    assert_eq!(Message::Keepalive.name(), "KEEPALIVE");
    assert_eq!(Message::Keepalive.type_code(), 4);
}

fn full_open() -> (Vec<u8>, Open) {
    let caps: Vec<u8> = [
        &[1, 4, 0, 1, 0, 1][..],                             // MP IPv4 unicast
        &[1, 4, 0, 2, 0, 1],                                 // MP IPv6 unicast
        &[2, 0],                                             // route refresh
        &[70, 0],                                            // enhanced route refresh
        &[65, 4, 0xfa, 0x56, 0xea, 0x00],                    // 4-octet AS 4200000000
        &[64, 10, 0xc0, 0x78, 0, 1, 1, 0x80, 0, 2, 1, 0x00], // GR R+N, 120 s
        &[0x80, 3, 0xde, 0xad, 0x01],                        // unknown code 128
    ]
    .concat();
    let mut body = vec![
        4, // version
        0x5b, 0xa0, // AS_TRANS
        0, 90, // hold time
        192, 0, 2, 1, // router id
    ];
    body.push(u8::try_from(caps.len() + 2).unwrap());
    body.push(2); // capabilities parameter
    body.push(u8::try_from(caps.len()).unwrap());
    body.extend_from_slice(&caps);
    let open = fixtures::open_with_every_capability(128, &[0xde, 0xad, 0x01]);
    (frame(1, &body), open)
}

#[test]
fn open_with_capabilities() {
    let (bytes, open) = full_open();
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.my_as, 23456);
    both_ways(&bytes, &Message::Open(open.clone()), FOUR);
    both_ways(&bytes, &Message::Open(open), TWO);

    let Message::Open(got) = decode(&bytes, FOUR) else {
        panic!("not an OPEN")
    };
    assert_eq!(got.asn(), 4_200_000_000);
    assert_eq!(got.four_octet_as(), Some(4_200_000_000));
    assert_eq!(got.hold_time, 90);
    assert_eq!(got.router_id, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(
        got.families(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert!(got.route_refresh());
    let gr = got.graceful_restart().unwrap();
    assert!(gr.restart_state);
    assert!(gr.notification);
    assert_eq!(gr.restart_time, 120);
    assert!(gr.families[0].forwarding_preserved);
    assert!(!gr.families[1].forwarding_preserved);
    assert!(got.capabilities.contains(&Capability::Unknown {
        code: 128,
        value: vec![0xde, 0xad, 0x01]
    }));
}

#[test]
fn open_two_octet_asn_without_capabilities() {
    // No optional parameters at all: only IPv4 unicast, no 4-octet AS.
    let bytes = frame(1, &[4, 0xfb, 0xf0, 0, 0, 198, 51, 100, 7, 0]);
    let open = Open::new(64496, 0, Ipv4Addr::new(198, 51, 100, 7), vec![]);
    assert_eq!(open.my_as, 64496);
    both_ways(&bytes, &Message::Open(open.clone()), FOUR);
    assert_eq!(open.asn(), 64496);
    assert_eq!(open.families(), vec![Family::IPV4_UNICAST]);
    assert!(!open.route_refresh());
    assert!(open.graceful_restart().is_none());
}

#[test]
fn open_graceful_restart_bits() {
    // R=0, N=0, time 4095 (all 12 bits), one family with F=0; reserved flag bits ignored.
    let caps = [64, 6, 0x0f, 0xff, 0, 2, 1, 0x00];
    let mut body = vec![4, 0xfb, 0xf0, 0, 180, 192, 0, 2, 2, 10, 2, 8];
    body.extend_from_slice(&caps);
    let bytes = frame(1, &body);
    let gr = GracefulRestart {
        restart_state: false,
        notification: false,
        restart_time: 4095,
        families: vec![GracefulRestartFamily {
            family: Family::IPV6_UNICAST,
            forwarding_preserved: false,
        }],
    };
    let open = Open::new(
        64496,
        180,
        Ipv4Addr::new(192, 0, 2, 2),
        vec![Capability::GracefulRestart(gr.clone())],
    );
    both_ways(&bytes, &Message::Open(open), FOUR);

    // Only the R bit, no families (a helper speaker).
    let mut body = vec![4, 0xfb, 0xf0, 0, 180, 192, 0, 2, 2, 6, 2, 4];
    body.extend_from_slice(&[64, 2, 0x80, 0x00]);
    let Message::Open(open) = decode(&frame(1, &body), FOUR) else {
        panic!("not an OPEN")
    };
    assert_eq!(
        open.graceful_restart(),
        Some(&GracefulRestart {
            restart_state: true,
            notification: false,
            restart_time: 0,
            families: vec![],
        })
    );
    // A restart time above 12 bits cannot be written.
    let bad = Open::new(
        64496,
        180,
        Ipv4Addr::new(192, 0, 2, 2),
        vec![Capability::GracefulRestart(GracefulRestart {
            restart_time: 4096,
            ..gr
        })],
    );
    assert!(Message::Open(bad).to_bytes(FOUR).is_err());
}

#[test]
fn open_capabilities_in_several_parameters() {
    // Each capability in its own optional parameter, as some speakers send them.
    let params = [
        &[2, 6, 1, 4, 0, 2, 0, 1][..],
        &[2, 2, 2, 0],
        &[2, 6, 65, 4, 0, 0, 0xfb, 0xf0],
    ]
    .concat();
    let mut body = vec![4, 0xfb, 0xf0, 0, 90, 203, 0, 113, 1];
    body.push(u8::try_from(params.len()).unwrap());
    body.extend_from_slice(&params);
    let Message::Open(open) = decode(&frame(1, &body), FOUR) else {
        panic!("not an OPEN")
    };
    assert_eq!(
        open.capabilities,
        vec![
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(64496),
        ]
    );
}

#[test]
fn open_rfc9072_extended_parameters_decode() {
    // Non-extended length 255, then type 255 and a 2-octet total length; each parameter has a
    // 2-octet length.
    let caps = [&[1, 4, 0, 1, 0, 1][..], &[65, 4, 0xfa, 0x56, 0xea, 0x01]].concat();
    let mut body = vec![4, 0x5b, 0xa0, 0, 90, 192, 0, 2, 3, 255, 255];
    let param_len = caps.len() + 3;
    body.extend_from_slice(&[0, u8::try_from(param_len).unwrap()]);
    body.extend_from_slice(&[2, 0, u8::try_from(caps.len()).unwrap()]);
    body.extend_from_slice(&caps);
    let Message::Open(open) = decode(&frame(1, &body), FOUR) else {
        panic!("not an OPEN")
    };
    assert_eq!(open.asn(), 4_200_000_001);
    assert_eq!(
        open.capabilities,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(4_200_000_001),
        ]
    );
}

#[test]
fn open_rfc9072_extended_parameters_both_ways() {
    // Capabilities longer than 253 octets need the extended format on the way out.
    let big: Vec<u8> = (0..=254u8).collect(); // 255-octet value
    let mut caps = vec![0x81, 255];
    caps.extend_from_slice(&big);
    caps.extend_from_slice(&[65, 4, 0xfa, 0x56, 0xea, 0x00]);
    let mut body = vec![4, 0x5b, 0xa0, 0, 90, 192, 0, 2, 4, 255, 255];
    let total = caps.len() + 3; // parameter type + 2-octet parameter length
    body.extend_from_slice(&[
        u8::try_from(total >> 8).unwrap(),
        u8::try_from(total & 0xff).unwrap(),
    ]);
    body.extend_from_slice(&[
        2,
        u8::try_from(caps.len() >> 8).unwrap(),
        u8::try_from(caps.len() & 0xff).unwrap(),
    ]);
    body.extend_from_slice(&caps);
    let open = Open::new(
        4_200_000_000,
        90,
        Ipv4Addr::new(192, 0, 2, 4),
        vec![
            Capability::Unknown {
                code: 0x81,
                value: big,
            },
            Capability::FourOctetAs(4_200_000_000),
        ],
    );
    both_ways(&frame(1, &body), &Message::Open(open), FOUR);
}

// ---------------------------------------------------------------------------------------------
// UPDATE, IPv4.
// ---------------------------------------------------------------------------------------------

fn ipv4_update() -> (Vec<u8>, Update) {
    let bytes = update_msg(
        &[24, 192, 0, 2],
        &[
            ORIGIN_IGP.to_vec(),
            AS_PATH4.to_vec(),
            NEXT_HOP.to_vec(),
            attr(0x80, 4, &[0, 0, 0, 100]), // MED 100
            attr(0x40, 5, &[0, 0, 0, 200]), // LOCAL_PREF 200
            attr(0xc0, 8, &[0xfb, 0xf0, 0, 100, 0xff, 0xff, 0xff, 0x01]), // COMMUNITIES
            attr(
                0xc0,
                16,
                &[
                    0x40, 0x04, 0xfb, 0xf0, 0x4c, 0xee, 0x6b, 0x28, // link bandwidth 1 Gbit/s
                    0x00, 0x02, 0xfb, 0xf0, 0x00, 0x00, 0x00, 0x64, // route target 64496:100
                ],
            ),
            attr(
                0xc0,
                32,
                &[0xfa, 0x56, 0xea, 0x00, 0, 0, 0, 1, 0, 0, 0, 2], // 4200000000:1:2
            ),
        ],
        &[24, 198, 51, 100, 25, 203, 0, 113, 128, 32, 192, 0, 2, 1],
    );
    let update = Update {
        withdrawn: vec![v4("192.0.2.0/24")],
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            as_path(&[4_200_000_000, 64496]),
            Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            Attribute::MultiExitDisc(100),
            Attribute::LocalPref(200),
            Attribute::Communities(vec![Community::new(64496, 100), Community(0xffff_ff01)]),
            Attribute::ExtendedCommunities(vec![
                ExtendedCommunity::link_bandwidth(64496, 125_000_000.0),
                ExtendedCommunity([0x00, 0x02, 0xfb, 0xf0, 0, 0, 0, 100]),
            ]),
            Attribute::LargeCommunities(vec![LargeCommunity {
                global_admin: 4_200_000_000,
                local1: 1,
                local2: 2,
            }]),
        ],
        nlri: vec![
            v4("198.51.100.0/24"),
            v4("203.0.113.128/25"),
            v4("192.0.2.1/32"),
        ],
        issues: vec![],
    };
    (bytes, update)
}

#[test]
fn update_ipv4_all_attributes_four_octet() {
    let (bytes, update) = ipv4_update();
    both_ways(&bytes, &Message::Update(update.clone()), FOUR);
    assert_eq!(
        update.announced(),
        vec![
            net("198.51.100.0/24"),
            net("203.0.113.128/25"),
            net("192.0.2.1/32")
        ]
    );
    assert_eq!(update.withdrawn_all(), vec![net("192.0.2.0/24")]);
    assert_eq!(update.end_of_rib_family(), None);
    let Attribute::ExtendedCommunities(ext) = &update.attributes[6] else {
        panic!("not extended communities")
    };
    assert_eq!(ext[0].0, [0x40, 0x04, 0xfb, 0xf0, 0x4c, 0xee, 0x6b, 0x28]);
    assert_eq!(ext[0].as_link_bandwidth(), Some((64496, 125_000_000.0)));
    assert_eq!(ext[1].as_link_bandwidth(), None);
    // The transitive variant (type 0x00, subtype 4) is recognised too.
    assert_eq!(
        ExtendedCommunity([0x00, 0x04, 0xfb, 0xf0, 0x4c, 0xee, 0x6b, 0x28]).as_link_bandwidth(),
        Some((64496, 125_000_000.0))
    );
}

#[test]
fn update_two_octet_as_path() {
    // A 2-octet session: AS_PATH carries AS_TRANS for the 4-octet ASN, AS4_PATH the real path;
    // AGGREGATOR is 6 octets, AS4_AGGREGATOR 8.
    let bytes = update_msg(
        &[],
        &[
            ORIGIN_IGP.to_vec(),
            attr(0x40, 2, &[2, 2, 0x5b, 0xa0, 0xfb, 0xf0]),
            NEXT_HOP.to_vec(),
            attr(0x40, 6, &[]),
            attr(0xc0, 7, &[0x5b, 0xa0, 192, 0, 2, 9]),
            attr(0xc0, 17, &[2, 2, 0xfa, 0x56, 0xea, 0x00, 0, 0, 0xfb, 0xf0]),
            attr(0xc0, 18, &[0xfa, 0x56, 0xea, 0x00, 192, 0, 2, 9]),
        ],
        &[24, 198, 51, 100],
    );
    let typed = Update {
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            as_path(&[u32::from(AS_TRANS), 64496]),
            Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            Attribute::AtomicAggregate,
            Attribute::Aggregator {
                asn: u32::from(AS_TRANS),
                address: Ipv4Addr::new(192, 0, 2, 9),
            },
            Attribute::As4Path(AsPath::sequence(vec![4_200_000_000, 64496])),
            Attribute::As4Aggregator {
                asn: 4_200_000_000,
                address: Ipv4Addr::new(192, 0, 2, 9),
            },
        ],
        nlri: vec![v4("198.51.100.0/24")],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(typed.clone()), TWO);

    // The encoder writes AS_TRANS for a 4-octet ASN in a 2-octet AS_PATH and AGGREGATOR.
    let mut wide = typed;
    wide.attributes[1] = as_path(&[4_200_000_000, 64496]);
    wide.attributes[4] = Attribute::Aggregator {
        asn: 4_200_000_000,
        address: Ipv4Addr::new(192, 0, 2, 9),
    };
    assert_eq!(Message::Update(wide).to_bytes(TWO).unwrap(), bytes);
}

#[test]
fn update_as_path_segment_kinds_and_codec_width() {
    // AS_SEQUENCE 64496, AS_SET {64497 64498}, AS_CONFED_SEQUENCE 64512, AS_CONFED_SET 64513.
    let path4 = [
        2, 1, 0, 0, 0xfb, 0xf0, 1, 2, 0, 0, 0xfb, 0xf1, 0, 0, 0xfb, 0xf2, 3, 1, 0, 0, 0xfc, 0x00,
        4, 1, 0, 0, 0xfc, 0x01,
    ];
    let path2 = [
        2, 1, 0xfb, 0xf0, 1, 2, 0xfb, 0xf1, 0xfb, 0xf2, 3, 1, 0xfc, 0x00, 4, 1, 0xfc, 0x01,
    ];
    let typed = AsPath {
        segments: vec![
            AsPathSegment {
                kind: SegmentType::Sequence,
                asns: vec![64496],
            },
            AsPathSegment {
                kind: SegmentType::Set,
                asns: vec![64497, 64498],
            },
            AsPathSegment {
                kind: SegmentType::ConfedSequence,
                asns: vec![64512],
            },
            AsPathSegment {
                kind: SegmentType::ConfedSet,
                asns: vec![64513],
            },
        ],
    };
    assert!(!typed.has_four_octet());
    for (codec, path) in [(FOUR, &path4[..]), (TWO, &path2[..])] {
        let bytes = update_msg(
            &[],
            &[ORIGIN_IGP.to_vec(), attr(0x40, 2, path), NEXT_HOP.to_vec()],
            &[24, 203, 0, 113],
        );
        let update = Update {
            attributes: vec![
                Attribute::Origin(Origin::Igp),
                Attribute::AsPath(typed.clone()),
                Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            ],
            nlri: vec![v4("203.0.113.0/24")],
            ..Update::default()
        };
        both_ways(&bytes, &Message::Update(update), codec);
    }
    // An empty AS_PATH (iBGP) is zero octets.
    let bytes = update_msg(
        &[],
        &[ORIGIN_IGP.to_vec(), attr(0x40, 2, &[]), NEXT_HOP.to_vec()],
        &[24, 203, 0, 113],
    );
    let update = Update {
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            as_path(&[]),
            Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
        ],
        nlri: vec![v4("203.0.113.0/24")],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update), FOUR);

    // The same 4-octet AS_PATH read by a 2-octet session is malformed: treat-as-withdraw.
    let bytes = update_msg(
        &[],
        &[ORIGIN_IGP.to_vec(), AS_PATH4.to_vec(), NEXT_HOP.to_vec()],
        &[24, 203, 0, 113],
    );
    let update = decode_update(&bytes, TWO);
    assert_eq!(update.issues.len(), 1);
    assert_eq!(update.issues[0].type_code, attr_type::AS_PATH);
    assert_eq!(update.issues[0].treatment, Treatment::TreatAsWithdraw);
    assert_eq!(update.withdrawn, vec![v4("203.0.113.0/24")]);
    assert!(update.nlri.is_empty());
}

#[test]
fn update_origin_values() {
    for (value, origin) in [(0, Origin::Igp), (1, Origin::Egp), (2, Origin::Incomplete)] {
        let bytes = update_msg(
            &[],
            &[
                attr(0x40, 1, &[value]),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
            ],
            &[24, 198, 51, 100],
        );
        let update = Update {
            attributes: vec![
                Attribute::Origin(origin),
                as_path(&[4_200_000_000, 64496]),
                Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            ],
            nlri: vec![v4("198.51.100.0/24")],
            ..Update::default()
        };
        both_ways(&bytes, &Message::Update(update), FOUR);
    }
}

#[test]
fn update_attribute_longer_than_255_uses_extended_length() {
    // 70 communities = 280 octets: flags 0xd0 (optional, transitive, extended length), length
    // 0x0118.
    let mut value = Vec::new();
    let mut communities = Vec::new();
    for i in 0..70u8 {
        value.extend_from_slice(&[0xfb, 0xf0, 0, i]);
        communities.push(Community::new(64496, u16::from(i)));
    }
    let community_attr = attr(0xd0, 8, &value);
    assert_eq!(&community_attr[..4], &[0xd0, 8, 0x01, 0x18]);
    let bytes = update_msg(
        &[],
        &[
            ORIGIN_IGP.to_vec(),
            AS_PATH4.to_vec(),
            NEXT_HOP.to_vec(),
            community_attr,
        ],
        &[24, 198, 51, 100],
    );
    let update = Update {
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            as_path(&[4_200_000_000, 64496]),
            Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            Attribute::Communities(communities),
        ],
        nlri: vec![v4("198.51.100.0/24")],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update), FOUR);

    // The extended-length bit on a short attribute is accepted (and dropped on re-encode).
    let bytes = update_msg(
        &[],
        &[attr(0x50, 1, &[2]), AS_PATH4.to_vec(), NEXT_HOP.to_vec()],
        &[24, 198, 51, 100],
    );
    let update = decode_update(&bytes, FOUR);
    assert!(update.issues.is_empty());
    assert_eq!(update.attributes[0], Attribute::Origin(Origin::Incomplete));
}

#[test]
fn update_unknown_optional_attribute_is_kept() {
    // Optional transitive partial attribute type 99; flags survive, extended length recomputed.
    let bytes = update_msg(
        &[],
        &[
            ORIGIN_IGP.to_vec(),
            AS_PATH4.to_vec(),
            NEXT_HOP.to_vec(),
            attr(0xe0, 99, &[1, 2, 3]),
        ],
        &[24, 198, 51, 100],
    );
    let update = Update {
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            as_path(&[4_200_000_000, 64496]),
            Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            Attribute::Unknown {
                flags: 0xe0,
                type_code: 99,
                value: vec![1, 2, 3],
            },
        ],
        nlri: vec![v4("198.51.100.0/24")],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update), FOUR);
}

// ---------------------------------------------------------------------------------------------
// UPDATE, IPv6 (MP_REACH_NLRI / MP_UNREACH_NLRI).
// ---------------------------------------------------------------------------------------------

fn mp_reach_value(next_hop: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, u8::try_from(next_hop.len()).unwrap()];
    v.extend_from_slice(next_hop);
    v.push(0); // reserved
    v.extend_from_slice(nlri);
    v
}

/// 2001:db8:1::/48 and 2001:db8:2:3::/64 and 2001:db8::1/128 in NLRI form.
const V6_NLRI: [u8; 33] = [
    48, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, //
    64, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02, 0x00, 0x03, //
    128, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
];

fn v6_prefixes() -> Vec<IpNet> {
    vec![
        net("2001:db8:1::/48"),
        net("2001:db8:2:3::/64"),
        net("2001:db8::1/128"),
    ]
}

#[test]
fn update_ipv6_mp_reach_global_next_hop() {
    let bytes = update_msg(
        &[],
        &[
            ORIGIN_IGP.to_vec(),
            AS_PATH4.to_vec(),
            attr(0x80, 14, &mp_reach_value(&V6_NH, &V6_NLRI)),
        ],
        &[],
    );
    let update = Update {
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            as_path(&[4_200_000_000, 64496]),
            Attribute::MpReach(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: MpNextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: None,
                },
                nlri: v6_prefixes(),
            }),
        ],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update.clone()), FOUR);
    assert_eq!(update.announced(), v6_prefixes());
    assert_eq!(update.end_of_rib_family(), None);
}

#[test]
fn update_ipv6_mp_reach_global_and_link_local_next_hop() {
    let nh = [V6_NH2, V6_LL].concat();
    assert_eq!(nh.len(), 32);
    let bytes = update_msg(
        &[],
        &[
            ORIGIN_IGP.to_vec(),
            AS_PATH4.to_vec(),
            attr(0x80, 14, &mp_reach_value(&nh, &V6_NLRI[..7])),
        ],
        &[],
    );
    let update = Update {
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            as_path(&[4_200_000_000, 64496]),
            Attribute::MpReach(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: MpNextHop::V6 {
                    global: "2001:db8::2".parse().unwrap(),
                    link_local: Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
                },
                nlri: vec![net("2001:db8:1::/48")],
            }),
        ],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update), FOUR);
}

#[test]
fn update_ipv4_in_mp_reach() {
    // IPv4 unicast carried in MP_REACH_NLRI with a 4-octet next hop.
    let value = [0, 1, 1, 4, 192, 0, 2, 1, 0, 24, 198, 51, 100];
    let bytes = update_msg(
        &[],
        &[
            ORIGIN_IGP.to_vec(),
            AS_PATH4.to_vec(),
            attr(0x80, 14, &value),
        ],
        &[],
    );
    let update = Update {
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            as_path(&[4_200_000_000, 64496]),
            Attribute::MpReach(MpReach {
                family: Family::IPV4_UNICAST,
                next_hop: MpNextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
                nlri: vec![net("198.51.100.0/24")],
            }),
        ],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update), FOUR);
}

#[test]
fn update_ipv6_mp_unreach() {
    let mut value = vec![0, 2, 1];
    value.extend_from_slice(&V6_NLRI);
    let bytes = update_msg(&[], &[attr(0x80, 15, &value)], &[]);
    let update = Update {
        attributes: vec![Attribute::MpUnreach(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: v6_prefixes(),
        })],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update.clone()), FOUR);
    assert_eq!(update.withdrawn_all(), v6_prefixes());
    assert!(update.announced().is_empty());
    assert_eq!(update.end_of_rib_family(), None);
}

#[test]
fn update_mp_of_other_family_is_unknown() {
    // IPv4 multicast (1/2) MP_REACH is kept opaque.
    let value = [0, 1, 2, 4, 192, 0, 2, 1, 0, 24, 198, 51, 100];
    let bytes = update_msg(&[], &[attr(0x80, 14, &value)], &[]);
    let update = decode_update(&bytes, FOUR);
    assert_eq!(
        update.attributes,
        vec![Attribute::Unknown {
            flags: 0x80,
            type_code: 14,
            value: value.to_vec()
        }]
    );
    assert_eq!(Message::Update(update).to_bytes(FOUR).unwrap(), bytes);
}

// ---------------------------------------------------------------------------------------------
// End-of-RIB.
// ---------------------------------------------------------------------------------------------

#[test]
fn end_of_rib_ipv4() {
    let bytes = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x00, 0x17, 0x02, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(bytes.len(), 23);
    let eor = Update::end_of_rib(Family::IPV4_UNICAST);
    both_ways(&bytes, &Message::Update(eor.clone()), FOUR);
    assert_eq!(eor.end_of_rib_family(), Some(Family::IPV4_UNICAST));
    assert_eq!(
        decode_update(&bytes, TWO).end_of_rib_family(),
        Some(Family::IPV4_UNICAST)
    );
}

#[test]
fn end_of_rib_ipv6() {
    let mut bytes = vec![0xff; 16];
    bytes.extend_from_slice(&[0x00, 0x1d, 0x02, 0x00, 0x00, 0x00, 0x06]);
    bytes.extend_from_slice(&[0x80, 0x0f, 0x03, 0x00, 0x02, 0x01]);
    assert_eq!(bytes.len(), 29);
    let eor = Update::end_of_rib(Family::IPV6_UNICAST);
    both_ways(&bytes, &Message::Update(eor), FOUR);
    assert_eq!(
        decode_update(&bytes, FOUR).end_of_rib_family(),
        Some(Family::IPV6_UNICAST)
    );
}

#[test]
fn malformed_update_is_not_end_of_rib() {
    // An UPDATE with path attributes but no NLRI is not an End-of-RIB, even after RFC 7606
    // discarded its faulty attributes: here an invalid ORIGIN (treat-as-withdraw) leaves no
    // prefixes and no attributes.
    let bytes = update_msg(&[], &[attr(0x40, 1, &[7])], &[]);
    let update = decode_update(&bytes, FOUR);
    assert!(update.withdrawn.is_empty() && update.nlri.is_empty());
    assert!(update.attributes.is_empty());
    assert_eq!(update.issues.len(), 1);
    assert_eq!(update.end_of_rib_family(), None);

    // Same for an MP_REACH without NLRI and a bad ORIGIN: it becomes an empty MP_UNREACH.
    let bytes = update_msg(
        &[],
        &[
            attr(0x40, 1, &[7]),
            AS_PATH4.to_vec(),
            attr(0x80, 14, &mp_reach_value(&V6_NH, &[])),
        ],
        &[],
    );
    let update = decode_update(&bytes, FOUR);
    assert_eq!(
        update.attributes,
        vec![Attribute::MpUnreach(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![],
        })]
    );
    assert_eq!(update.end_of_rib_family(), None);
}

// ---------------------------------------------------------------------------------------------
// NOTIFICATION, ROUTE-REFRESH.
// ---------------------------------------------------------------------------------------------

#[test]
fn notification_shutdown() {
    let mut body = vec![6, 2, 11];
    body.extend_from_slice(b"maintenance");
    let bytes = frame(3, &body);
    let n = Notification::shutdown("maintenance");
    assert_eq!(
        n,
        Notification::new(ErrorCode::Cease, 2, {
            let mut d = vec![11];
            d.extend_from_slice(b"maintenance");
            d
        })
    );
    both_ways(&bytes, &Message::Notification(n.clone()), FOUR);
    assert_eq!(n.error_code(), Some(ErrorCode::Cease));
    assert_eq!(n.shutdown_message(), Some("maintenance"));
    assert_eq!(
        n.to_string(),
        "Cease / Administrative Shutdown (\"maintenance\")"
    );
}

#[test]
fn notification_shutdown_truncates_on_char_boundary() {
    let long = "é".repeat(200); // 400 octets
    let n = Notification::shutdown(&long);
    assert_eq!(n.data[0], 254);
    assert_eq!(n.data.len(), 255);
    assert_eq!(n.shutdown_message(), Some("é".repeat(127).as_str()));
    let empty = Notification::shutdown("");
    assert_eq!(empty.data, vec![0]);
    assert_eq!(empty.to_string(), "Cease / Administrative Shutdown (\"\")");
}

#[test]
fn notification_display_names_rfc_codes() {
    let cases = [
        (
            error(1, 2, &[0, 18]),
            "Message Header Error / Bad Message Length (data 00 12)",
        ),
        (
            error(1, 1, &[]),
            "Message Header Error / Connection Not Synchronized",
        ),
        (
            error(1, 3, &[9]),
            "Message Header Error / Bad Message Type (data 09)",
        ),
        (
            error(2, 1, &[0, 4]),
            "OPEN Message Error / Unsupported Version Number (data 00 04)",
        ),
        (
            error(2, 6, &[]),
            "OPEN Message Error / Unacceptable Hold Time",
        ),
        (
            error(2, 4, &[]),
            "OPEN Message Error / Unsupported Optional Parameter",
        ),
        (error(2, 0, &[]), "OPEN Message Error / Unspecific"),
        (
            error(3, 1, &[]),
            "UPDATE Message Error / Malformed Attribute List",
        ),
        (
            error(3, 2, &[0x40, 99, 0]),
            "UPDATE Message Error / Unrecognized Well-known Attribute (data 40 63 00)",
        ),
        (
            error(3, 5, &[]),
            "UPDATE Message Error / Attribute Length Error",
        ),
        (
            error(3, 10, &[]),
            "UPDATE Message Error / Invalid Network Field",
        ),
        (error(4, 0, &[]), "Hold Timer Expired / subcode 0"),
        (
            error(5, 3, &[]),
            "Finite State Machine Error / Receive Unexpected Message in Established State",
        ),
        (error(6, 9, &[]), "Cease / Hard Reset"),
        (
            error(6, 4, &[2, b'o', b'k']),
            "Cease / Administrative Reset (\"ok\")",
        ),
        (
            error(7, 1, &[0, 24]),
            "ROUTE-REFRESH Message Error / Invalid Message Length (data 00 18)",
        ),
        (
            error(9, 1, &[1, 2]),
            "error code 9 / subcode 1 (data 01 02)",
        ),
    ];
    for (n, text) in cases {
        assert_eq!(n.to_string(), text);
    }
    let long = error(3, 9, &[0xab; 40]);
    let text = long.to_string();
    assert!(text.starts_with("UPDATE Message Error / Optional Attribute Error (data ab ab"));
    assert!(text.ends_with(" ...)"), "{text}");
}

#[test]
fn notification_both_ways() {
    let bytes = frame(3, &[4, 0]);
    assert_eq!(bytes.len(), 21);
    let n = Notification::new(ErrorCode::HoldTimerExpired, 0, vec![]);
    both_ways(&bytes, &Message::Notification(n), FOUR);

    let bytes = frame(3, &[3, 2, 0x40, 99, 1, 7]);
    both_ways(
        &bytes,
        &Message::Notification(error(3, 2, &[0x40, 99, 1, 7])),
        FOUR,
    );
    // Unknown codes survive.
    let bytes = frame(3, &[200, 201, 1]);
    both_ways(&bytes, &Message::Notification(error(200, 201, &[1])), FOUR);
}

#[test]
fn route_refresh() {
    let bytes = frame(5, &[0, 2, 0, 1]);
    assert_eq!(bytes.len(), 23);
    let rr = RouteRefresh {
        family: Family::IPV6_UNICAST,
        subtype: 0,
    };
    both_ways(&bytes, &Message::RouteRefresh(rr), FOUR);
    // RFC 7313 Beginning / End of Route Refresh.
    for subtype in [1, 2] {
        let bytes = frame(5, &[0, 1, subtype, 1]);
        let rr = RouteRefresh {
            family: Family::IPV4_UNICAST,
            subtype,
        };
        both_ways(&bytes, &Message::RouteRefresh(rr), FOUR);
    }
    assert_eq!(Message::RouteRefresh(rr).name(), "ROUTE-REFRESH");
}

// ---------------------------------------------------------------------------------------------
// Errors that reset the session: the exact NOTIFICATION (RFC 4271 §6, RFC 7606, RFC 5492).
// ---------------------------------------------------------------------------------------------

fn open_body(version: u8, hold: u16, params: &[u8]) -> Vec<u8> {
    let mut body = vec![version, 0xfb, 0xf0];
    body.extend_from_slice(&[
        u8::try_from(hold >> 8).unwrap(),
        u8::try_from(hold & 0xff).unwrap(),
    ]);
    body.extend_from_slice(&[192, 0, 2, 1]);
    body.push(u8::try_from(params.len()).unwrap());
    body.extend_from_slice(params);
    body
}

#[test]
fn header_errors() {
    // Bad marker → 1/1, no data.
    let mut bad_marker = frame(4, &[]);
    bad_marker[3] = 0xfe;
    // Length 18 → 1/2 with the length field.
    let mut short = frame(4, &[]);
    short[17] = 18;
    // Length 4097 → 1/2 (only the header is needed).
    let mut long = frame(2, &[0, 0, 0, 0]);
    long[16] = 0x10;
    long[17] = 0x01;
    // A KEEPALIVE must be exactly 19 octets.
    let keepalive_20 = frame(4, &[0]);
    // Type 9 → 1/3 with the type.
    let type_9 = frame(9, &[]);
    // Type 0 too.
    let type_0 = frame(0, &[0, 0, 0, 0]);
    // Below the minimum of the type: an OPEN of 28 octets, an UPDATE of 22, a NOTIFICATION of
    // 20, a ROUTE-REFRESH of 24.
    let open_28 = frame(1, &[4, 0xfb, 0xf0, 0, 90, 192, 0, 2, 1]);
    let update_22 = frame(2, &[0, 0, 0]);
    let notification_20 = frame(3, &[6]);
    let refresh_24 = frame(5, &[0, 1, 0, 1, 0]);

    let cases: Vec<(&str, Vec<u8>, Notification)> = vec![
        ("bad marker", bad_marker, error(1, 1, &[])),
        ("length 18", short, error(1, 2, &[0, 18])),
        ("length 4097", long, error(1, 2, &[0x10, 0x01])),
        ("KEEPALIVE of 20", keepalive_20, error(1, 2, &[0, 20])),
        ("type 9", type_9, error(1, 3, &[9])),
        ("type 0", type_0, error(1, 3, &[0])),
        ("OPEN of 28", open_28, error(1, 2, &[0, 28])),
        ("UPDATE of 22", update_22, error(1, 2, &[0, 22])),
        ("NOTIFICATION of 20", notification_20, error(1, 2, &[0, 20])),
        ("ROUTE-REFRESH of 24", refresh_24, error(1, 2, &[0, 24])),
    ];
    for (name, bytes, expected) in cases {
        let from_frame = frame_len(&bytes).expect_err(name).notification;
        assert_eq!(from_frame, expected, "{name}: frame_len");
        assert_eq!(decode_err(&bytes, FOUR), expected, "{name}: decode");
        assert_eq!(
            decode_err(&bytes, TWO),
            expected,
            "{name}: decode (2-octet)"
        );
    }
}

#[test]
fn frame_len_needs_a_whole_header() {
    let keepalive = frame(4, &[]);
    for cut in 0..19 {
        assert_eq!(frame_len(&keepalive[..cut]), Ok(None), "{cut} octets");
    }
    // The header is enough to know the length; the body need not be buffered yet.
    let (open, _) = full_open();
    assert_eq!(frame_len(&open[..19]), Ok(Some(open.len())));
    // Two messages back to back: the first one's length.
    let mut two = keepalive;
    two.extend_from_slice(&open);
    assert_eq!(frame_len(&two), Ok(Some(19)));
    // A whole message followed by more bytes is not one message.
    assert_eq!(decode_err(&two, FOUR), error(1, 2, &[0, 19]));
    // A header promising more than the slice holds is not one message either.
    assert_eq!(decode_err(&open[..40], FOUR).code, 1);
}

#[test]
fn open_errors() {
    let cases: Vec<(&str, Vec<u8>, Notification)> = vec![
        (
            "version 3",
            frame(1, &open_body(3, 90, &[])),
            error(2, 1, &[0, 4]),
        ),
        (
            "hold time 1",
            frame(1, &open_body(4, 1, &[])),
            error(2, 6, &[]),
        ),
        (
            "hold time 2",
            frame(1, &open_body(4, 2, &[])),
            error(2, 6, &[]),
        ),
        (
            "optional parameter type 1 (authentication)",
            frame(1, &open_body(4, 90, &[1, 2, 0, 0])),
            error(2, 4, &[]),
        ),
        (
            "multiprotocol capability of 3 octets",
            frame(1, &open_body(4, 90, &[2, 5, 1, 3, 0, 1, 0])),
            error(2, 0, &[]),
        ),
        (
            "4-octet AS capability of 2 octets",
            frame(1, &open_body(4, 90, &[2, 4, 65, 2, 0xfb, 0xf0])),
            error(2, 0, &[]),
        ),
        (
            "route refresh capability with a value",
            frame(1, &open_body(4, 90, &[2, 3, 2, 1, 0])),
            error(2, 0, &[]),
        ),
        (
            "graceful restart family of 3 octets",
            frame(1, &open_body(4, 90, &[2, 7, 64, 5, 0, 120, 0, 1, 1])),
            error(2, 0, &[]),
        ),
        (
            "capability overruns its parameter",
            frame(1, &open_body(4, 90, &[2, 2, 65, 4])),
            error(2, 0, &[]),
        ),
        (
            "parameter overruns the OPEN",
            {
                let mut body = open_body(4, 90, &[2, 2, 2, 0]);
                body[11] = 9; // parameter length 9, only 2 octets follow
                frame(1, &body)
            },
            error(2, 0, &[]),
        ),
        (
            "optional parameters length longer than the OPEN",
            {
                let mut body = open_body(4, 90, &[2, 0]);
                body[9] = 5;
                frame(1, &body)
            },
            error(2, 0, &[]),
        ),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(decode_err(&bytes, FOUR), expected, "{name}");
    }
}

#[test]
fn update_errors() {
    let good_attrs = || vec![ORIGIN_IGP.to_vec(), AS_PATH4.to_vec(), NEXT_HOP.to_vec()];
    let mp_reach = attr(0x80, 14, &mp_reach_value(&V6_NH, &V6_NLRI[..7]));
    let cases: Vec<(&str, Vec<u8>, Notification)> = vec![
        (
            "withdrawn routes length overruns the message",
            frame(2, &[0, 10, 24, 192, 0, 2, 0, 0]),
            error(3, 1, &[]),
        ),
        (
            "path attribute length overruns the message",
            frame(2, &[0, 0, 0, 9, 0x40, 1, 1, 0]),
            error(3, 1, &[]),
        ),
        (
            "NLRI prefix length 33",
            update_msg(&[], &good_attrs(), &[33, 192, 0, 2, 1, 0]),
            error(3, 10, &[]),
        ),
        (
            "withdrawn prefix length 33",
            update_msg(&[33, 192, 0, 2, 1, 0], &[], &[]),
            error(3, 10, &[]),
        ),
        (
            "NLRI prefix truncated",
            update_msg(&[], &good_attrs(), &[24, 198, 51]),
            error(3, 10, &[]),
        ),
        (
            "MP_REACH IPv6 prefix length 129",
            update_msg(
                &[],
                &[
                    ORIGIN_IGP.to_vec(),
                    AS_PATH4.to_vec(),
                    attr(0x80, 14, &mp_reach_value(&V6_NH, &[129, 0x20])),
                ],
                &[],
            ),
            error(3, 10, &[]),
        ),
        (
            "unrecognized well-known attribute",
            update_msg(&[], &[attr(0x40, 99, &[1, 2])], &[]),
            // RFC 4271 §6.3: the data is the attribute: type (flags, code), length, value.
            error(3, 2, &[0x40, 99, 2, 1, 2]),
        ),
        (
            "unrecognized well-known attribute with an extended length",
            update_msg(&[], &[attr(0x50, 99, &[1])], &[]),
            error(3, 2, &[0x50, 99, 0, 1, 1]),
        ),
        (
            "MP_REACH_NLRI repeated",
            update_msg(
                &[],
                &[
                    ORIGIN_IGP.to_vec(),
                    AS_PATH4.to_vec(),
                    mp_reach.clone(),
                    mp_reach,
                ],
                &[],
            ),
            error(3, 1, &[]),
        ),
        (
            "MP_UNREACH_NLRI repeated",
            update_msg(
                &[],
                &[attr(0x80, 15, &[0, 2, 1]), attr(0x80, 15, &[0, 2, 1])],
                &[],
            ),
            error(3, 1, &[]),
        ),
        (
            "MP_REACH next hop of 5 octets",
            update_msg(
                &[],
                &[
                    ORIGIN_IGP.to_vec(),
                    AS_PATH4.to_vec(),
                    attr(0x80, 14, &mp_reach_value(&[1, 2, 3, 4, 5], &[])),
                ],
                &[],
            ),
            error(3, 9, &[]),
        ),
        (
            "MP_REACH truncated",
            update_msg(&[], &[attr(0x80, 14, &[0, 2])], &[]),
            error(3, 9, &[]),
        ),
        (
            "MP_REACH with well-known flags",
            update_msg(&[], &[attr(0x40, 14, &mp_reach_value(&V6_NH, &[]))], &[]),
            error(3, 4, &[]),
        ),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(decode_err(&bytes, FOUR), expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 7606: errors handled without a session reset.
// ---------------------------------------------------------------------------------------------

fn issue_codes(update: &Update) -> Vec<(u8, Treatment)> {
    update
        .issues
        .iter()
        .map(|i| (i.type_code, i.treatment))
        .collect()
}

/// The NLRI of the test UPDATEs: 198.51.100.0/24 and 203.0.113.0/25.
const NLRI: [u8; 9] = [24, 198, 51, 100, 25, 203, 0, 113, 0];

fn nlri() -> Vec<Ipv4Net> {
    vec![v4("198.51.100.0/24"), v4("203.0.113.0/25")]
}

#[test]
fn treat_as_withdraw_cases() {
    use Treatment::TreatAsWithdraw as W;
    let cases: Vec<(&str, Vec<Vec<u8>>, u8)> = vec![
        (
            "ORIGIN value 3",
            vec![attr(0x40, 1, &[3]), AS_PATH4.to_vec(), NEXT_HOP.to_vec()],
            attr_type::ORIGIN,
        ),
        (
            "ORIGIN length 2",
            vec![attr(0x40, 1, &[0, 0]), AS_PATH4.to_vec(), NEXT_HOP.to_vec()],
            attr_type::ORIGIN,
        ),
        (
            "NEXT_HOP length 5",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                attr(0x40, 3, &[192, 0, 2, 1, 0]),
            ],
            attr_type::NEXT_HOP,
        ),
        (
            "COMMUNITIES length 3",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                attr(0xc0, 8, &[0xfb, 0xf0, 0]),
            ],
            attr_type::COMMUNITIES,
        ),
        (
            "COMMUNITIES length 0",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                attr(0xc0, 8, &[]),
            ],
            attr_type::COMMUNITIES,
        ),
        (
            "LARGE_COMMUNITY length 8",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                attr(0xc0, 32, &[0; 8]),
            ],
            attr_type::LARGE_COMMUNITIES,
        ),
        (
            "EXTENDED COMMUNITIES length 4",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                attr(0xc0, 16, &[0; 4]),
            ],
            attr_type::EXTENDED_COMMUNITIES,
        ),
        (
            "MED length 2",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                attr(0x80, 4, &[0, 1]),
            ],
            attr_type::MULTI_EXIT_DISC,
        ),
        (
            "LOCAL_PREF length 5",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                attr(0x40, 5, &[0, 0, 0, 0, 1]),
            ],
            attr_type::LOCAL_PREF,
        ),
        (
            "AS_PATH segment type 5",
            vec![
                ORIGIN_IGP.to_vec(),
                attr(0x40, 2, &[5, 1, 0, 0, 0xfb, 0xf0]),
                NEXT_HOP.to_vec(),
            ],
            attr_type::AS_PATH,
        ),
        (
            "AS_PATH segment of zero ASNs",
            vec![
                ORIGIN_IGP.to_vec(),
                attr(0x40, 2, &[2, 0]),
                NEXT_HOP.to_vec(),
            ],
            attr_type::AS_PATH,
        ),
        (
            "ORIGIN flagged optional",
            vec![attr(0xc0, 1, &[0]), AS_PATH4.to_vec(), NEXT_HOP.to_vec()],
            attr_type::ORIGIN,
        ),
        (
            "missing AS_PATH",
            vec![ORIGIN_IGP.to_vec(), NEXT_HOP.to_vec()],
            attr_type::AS_PATH,
        ),
        (
            "missing ORIGIN",
            vec![AS_PATH4.to_vec(), NEXT_HOP.to_vec()],
            attr_type::ORIGIN,
        ),
        (
            "missing NEXT_HOP",
            vec![ORIGIN_IGP.to_vec(), AS_PATH4.to_vec()],
            attr_type::NEXT_HOP,
        ),
        // RFC 7606 §4: the attribute list's length still locates the NLRI.
        (
            "attribute overruns the attribute list",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                vec![0x40, 5, 9, 0],
            ],
            attr_type::LOCAL_PREF,
        ),
        (
            "attribute header truncated",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                vec![0x40, 5],
            ],
            attr_type::LOCAL_PREF,
        ),
        (
            "extended length truncated",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                vec![0x50, 5, 0],
            ],
            attr_type::LOCAL_PREF,
        ),
        (
            "a flags octet alone",
            vec![
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                vec![0x40],
            ],
            0,
        ),
        (
            "overrun before the mandatory attributes",
            vec![vec![0x40, 1, 200, 0]],
            attr_type::ORIGIN,
        ),
    ];
    for (name, attrs, code) in cases {
        let bytes = update_msg(&[24, 192, 0, 2], &attrs, &NLRI);
        let update = decode_update(&bytes, FOUR);
        assert_eq!(issue_codes(&update), vec![(code, W)], "{name}");
        // The announced NLRI joins the withdrawn routes; nothing is announced.
        let mut withdrawn = vec![v4("192.0.2.0/24")];
        withdrawn.extend(nlri());
        assert_eq!(update.withdrawn, withdrawn, "{name}");
        assert!(update.nlri.is_empty(), "{name}");
        assert!(update.attributes.is_empty(), "{name}");
        assert!(update.announced().is_empty(), "{name}");
        assert_eq!(update.end_of_rib_family(), None, "{name}");
    }
}

#[test]
fn treat_as_withdraw_moves_mp_reach_to_mp_unreach() {
    // Missing ORIGIN with an IPv6 MP_REACH: its NLRI becomes an MP_UNREACH of the family.
    let bytes = update_msg(
        &[],
        &[
            AS_PATH4.to_vec(),
            attr(0x80, 14, &mp_reach_value(&V6_NH, &V6_NLRI)),
        ],
        &[],
    );
    let update = decode_update(&bytes, FOUR);
    assert_eq!(
        issue_codes(&update),
        vec![(attr_type::ORIGIN, Treatment::TreatAsWithdraw)]
    );
    assert_eq!(
        update.attributes,
        vec![Attribute::MpUnreach(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: v6_prefixes(),
        })]
    );
    assert_eq!(update.withdrawn_all(), v6_prefixes());
    assert!(update.announced().is_empty());

    // With an MP_UNREACH of the same family as well, the two merge (reach's NLRI after).
    let mut unreach = vec![0, 2, 1];
    unreach.extend_from_slice(&[32, 0x20, 0x01, 0x0d, 0xb8]);
    let bytes = update_msg(
        &[],
        &[
            attr(0x80, 15, &unreach),
            attr(0x40, 1, &[9]),
            AS_PATH4.to_vec(),
            attr(0x80, 14, &mp_reach_value(&V6_NH, &V6_NLRI[..7])),
        ],
        &[],
    );
    let update = decode_update(&bytes, FOUR);
    assert_eq!(
        issue_codes(&update),
        vec![(attr_type::ORIGIN, Treatment::TreatAsWithdraw)]
    );
    assert_eq!(
        update.attributes,
        vec![Attribute::MpUnreach(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![net("2001:db8::/32"), net("2001:db8:1::/48")],
        })]
    );
}

#[test]
fn attribute_discard_cases() {
    use Treatment::AttributeDiscard as D;
    let kept = || {
        vec![
            Attribute::Origin(Origin::Igp),
            as_path(&[4_200_000_000, 64496]),
            Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            Attribute::Communities(vec![Community::new(64496, 1)]),
        ]
    };
    let communities = attr(0xc0, 8, &[0xfb, 0xf0, 0, 1]);
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        (
            "ATOMIC_AGGREGATE with a value",
            attr(0x40, 6, &[1]),
            attr_type::ATOMIC_AGGREGATE,
        ),
        (
            "COMMUNITIES repeated",
            attr(0xc0, 8, &[0xfb, 0xf0, 0, 2]),
            attr_type::COMMUNITIES,
        ),
        (
            "AGGREGATOR of 7 octets",
            attr(0xc0, 7, &[0, 0, 0xfb, 0xf0, 192, 0, 2]),
            attr_type::AGGREGATOR,
        ),
        (
            "AS4_AGGREGATOR of 6 octets",
            attr(0xc0, 18, &[0xfb, 0xf0, 192, 0, 2, 1]),
            attr_type::AS4_AGGREGATOR,
        ),
        (
            "AS4_PATH malformed",
            attr(0xc0, 17, &[2, 1, 0, 0]),
            attr_type::AS4_PATH,
        ),
    ];
    for (name, faulty, code) in cases {
        let bytes = update_msg(
            &[],
            &[
                ORIGIN_IGP.to_vec(),
                AS_PATH4.to_vec(),
                NEXT_HOP.to_vec(),
                communities.clone(),
                faulty,
            ],
            &NLRI,
        );
        let update = decode_update(&bytes, FOUR);
        assert_eq!(issue_codes(&update), vec![(code, D)], "{name}");
        assert_eq!(update.attributes, kept(), "{name}");
        assert_eq!(update.nlri, nlri(), "{name}");
        assert!(update.withdrawn.is_empty(), "{name}");
    }

    // A repeated attribute is discarded even before a later faulty one turns the UPDATE into a
    // withdrawal; both issues are recorded in wire order.
    let bytes = update_msg(
        &[],
        &[
            ORIGIN_IGP.to_vec(),
            ORIGIN_IGP.to_vec(),
            AS_PATH4.to_vec(),
            attr(0x40, 3, &[1]),
        ],
        &NLRI,
    );
    let update = decode_update(&bytes, FOUR);
    assert_eq!(
        issue_codes(&update),
        vec![
            (attr_type::ORIGIN, D),
            (attr_type::NEXT_HOP, Treatment::TreatAsWithdraw)
        ]
    );
    assert_eq!(update.withdrawn, nlri());
}

#[test]
fn encode_errors() {
    // A capability value longer than 255 octets cannot be written.
    let open = Open::new(
        64496,
        90,
        Ipv4Addr::new(192, 0, 2, 1),
        vec![Capability::Unknown {
            code: 200,
            value: vec![0; 256],
        }],
    );
    assert!(Message::Open(open).to_bytes(FOUR).is_err());
    // A message over 4096 octets is refused, and `out` is left as it was.
    let update = Update {
        nlri: vec![v4("192.0.2.1/32"); 900],
        ..Update::default()
    };
    let mut out = vec![1, 2, 3];
    assert!(Message::Update(update).encode(FOUR, &mut out).is_err());
    assert_eq!(out, vec![1, 2, 3]);
    // A NOTIFICATION of exactly 4096 octets is fine, one more is not.
    let n = error(6, 0, &vec![0; 4096 - 21]);
    assert_eq!(Message::Notification(n).to_bytes(FOUR).unwrap().len(), 4096);
    let n = error(6, 0, &vec![0; 4096 - 20]);
    assert!(Message::Notification(n).to_bytes(FOUR).is_err());
}
