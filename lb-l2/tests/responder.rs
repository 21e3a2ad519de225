#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Behaviour tests of the pure ARP / NDP responder, `lb_l2::respond`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lb_core::{Announcement, L2Attributes, ServiceKey};
use lb_l2::interfaces::{AnnouncedIps, Lookup, Scope};
use lb_l2::responder::{ALL_NODES, DropReason, Interface, Reply, ReplyKind, respond};
use lb_l2::wire::frame::NDP_HOP_LIMIT;
use lb_l2::wire::icmpv6::checksum;
use lb_l2::wire::ipv6::NEXT_HEADER_ICMPV6;
use lb_l2::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetRepr, Frame, Ipv6Repr, NdpRepr,
    NeighborFlags, WireError, arp_frame, ndp_frame, solicited_node,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Our interface's MAC (locally administered).
const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
/// The requesting host.
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0xaa]);
/// A third host.
const OTHER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0xbb]);

const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const VIP4_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const PEER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const UNANNOUNCED4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xaa);
const PEER6_GLOBAL: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99);
const UNANNOUNCED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x7);

const ALL_NODES_MAC: EthernetAddress = EthernetAddress([0x33, 0x33, 0x00, 0x00, 0x00, 0x01]);

fn eth0() -> Interface<'static> {
    Interface {
        name: "eth0",
        mac: OUR_MAC,
    }
}

fn on(name: &str) -> Interface<'_> {
    Interface { name, mac: OUR_MAC }
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

fn announcement(name: &str, ips: &[IpAddr], interfaces: &[&str]) -> Announcement {
    Announcement {
        service: key(name),
        ips: ips.to_vec(),
        l2: Some(L2Attributes {
            interfaces: interfaces.iter().map(|s| (*s).to_owned()).collect(),
        }),
        bgp: None,
    }
}

/// `ips` announced by one service on every interface.
fn announced(ips: &[IpAddr]) -> AnnouncedIps {
    let mut a = AnnouncedIps::new();
    assert!(a.apply(&key("svc"), Some(&announcement("svc", ips, &[]))));
    a
}

fn default_announced() -> AnnouncedIps {
    announced(&[IpAddr::V4(VIP4), IpAddr::V6(VIP6)])
}

// ----- ARP frames ----------------------------------------------------------------------------

fn arp(
    operation: ArpOperation,
    (sha, spa): (EthernetAddress, Ipv4Addr),
    (tha, tpa): (EthernetAddress, Ipv4Addr),
) -> ArpRepr {
    ArpRepr {
        operation,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    }
}

/// A broadcast ARP request from the peer asking who has `target`.
fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        PEER_MAC,
        EthernetAddress::BROADCAST,
        arp(
            ArpOperation::Request,
            (PEER_MAC, PEER4),
            (EthernetAddress::ZERO, target),
        ),
    )
}

fn parse_arp(frame: &[u8]) -> (EthernetRepr, ArpRepr) {
    match Frame::parse(frame).expect("reply parses") {
        Frame::Arp { ethernet, arp } => (ethernet, arp),
        other => panic!("expected an ARP frame, got {other:?}"),
    }
}

/// Asserts `reply` is an ARP reply from us for `vip` to `(mac, ip)`, checking every field.
fn assert_arp_reply(reply: &Reply, vip: Ipv4Addr, to_mac: EthernetAddress, to_ip: Ipv4Addr) {
    assert_eq!(reply.ip, IpAddr::V4(vip));
    assert_eq!(reply.kind, ReplyKind::ArpReply);
    let (ethernet, arp) = parse_arp(&reply.frame);
    assert_eq!(
        ethernet,
        EthernetRepr {
            src_addr: OUR_MAC,
            dst_addr: to_mac,
            ethertype: EtherType::ARP,
        }
    );
    assert_eq!(
        arp,
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: OUR_MAC,
            source_protocol_addr: vip,
            target_hardware_addr: to_mac,
            target_protocol_addr: to_ip,
        }
    );
    // Ethernet header + Ethernet/IPv4 ARP, no more.
    assert_eq!(reply.frame.len(), 14 + 28);
    // Raw bytes of the fixed ARP header: htype 1, ptype 0x0800, hlen 6, plen 4, oper 2.
    assert_eq!(
        &reply.frame[14..22],
        &[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02]
    );
}

// ----- NDP frames ----------------------------------------------------------------------------

fn ns(target: Ipv6Addr, slla: Option<EthernetAddress>) -> NdpRepr {
    NdpRepr::NeighborSolicit {
        target_addr: target,
        source_lladdr: slla,
    }
}

/// A multicast NS from the peer (link-local source, SLLA) for `target`.
fn ns_multicast(target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    ndp_frame(
        (PEER_MAC, EthernetAddress::ipv6_multicast(group)),
        (PEER6, group),
        ns(target, Some(PEER_MAC)),
    )
}

/// An NDP frame with an arbitrary hop limit.
fn ndp_with_hop_limit(
    (src_mac, dst_mac): (EthernetAddress, EthernetAddress),
    (src_ip, dst_ip): (Ipv6Addr, Ipv6Addr),
    ndp: NdpRepr,
    hop_limit: u8,
) -> Vec<u8> {
    Frame::Ndp {
        ethernet: EthernetRepr {
            src_addr: src_mac,
            dst_addr: dst_mac,
            ethertype: EtherType::IPV6,
        },
        ipv6: Ipv6Repr {
            src_addr: src_ip,
            dst_addr: dst_ip,
            next_header: NEXT_HEADER_ICMPV6,
            payload_len: 0,
            hop_limit,
        },
        ndp,
    }
    .to_bytes()
}

/// An Ethernet + IPv6 frame with an arbitrary next header and payload (ICMPv6 payloads get
/// their checksum filled in when `fill_icmp_checksum`).
fn ipv6_frame(
    (src_ip, dst_ip): (Ipv6Addr, Ipv6Addr),
    next_header: u8,
    payload: &[u8],
    fill_icmp_checksum: bool,
) -> Vec<u8> {
    let mut payload = payload.to_vec();
    if fill_icmp_checksum {
        payload[2] = 0;
        payload[3] = 0;
        let sum = checksum(src_ip, dst_ip, &payload);
        payload[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let mut buf = vec![0u8; 14 + 40 + payload.len()];
    EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: OUR_MAC,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut buf)
    .unwrap();
    Ipv6Repr {
        src_addr: src_ip,
        dst_addr: dst_ip,
        next_header,
        payload_len: u16::try_from(payload.len()).unwrap(),
        hop_limit: 255,
    }
    .emit(&mut buf[14..])
    .unwrap();
    buf[54..].copy_from_slice(&payload);
    buf
}

struct Advert {
    ethernet: EthernetRepr,
    ipv6: Ipv6Repr,
    flags: NeighborFlags,
    target_addr: Ipv6Addr,
    target_lladdr: Option<EthernetAddress>,
}

fn parse_na(frame: &[u8]) -> Advert {
    // Frame::parse verifies the ICMPv6 checksum: success means the checksum is valid.
    match Frame::parse(frame).expect("reply parses, checksum included") {
        Frame::Ndp {
            ethernet,
            ipv6,
            ndp:
                NdpRepr::NeighborAdvert {
                    flags,
                    target_addr,
                    target_lladdr,
                },
        } => Advert {
            ethernet,
            ipv6,
            flags,
            target_addr,
            target_lladdr,
        },
        other => panic!("expected a Neighbor Advertisement, got {other:?}"),
    }
}

/// Asserts `reply` is a Neighbor Advertisement from us for `vip`, sent to `(mac, ip)` with
/// `solicited`, Override set and Router clear.
fn assert_na(
    reply: &Reply,
    vip: Ipv6Addr,
    (to_mac, to_ip): (EthernetAddress, Ipv6Addr),
    solicited: bool,
) {
    assert_eq!(reply.ip, IpAddr::V6(vip));
    assert_eq!(reply.kind, ReplyKind::NeighborAdvert);
    let na = parse_na(&reply.frame);
    assert_eq!(
        na.ethernet,
        EthernetRepr {
            src_addr: OUR_MAC,
            dst_addr: to_mac,
            ethertype: EtherType::IPV6,
        }
    );
    assert_eq!(na.ipv6.src_addr, vip);
    assert_eq!(na.ipv6.dst_addr, to_ip);
    assert_eq!(na.ipv6.hop_limit, 255);
    assert_eq!(na.ipv6.hop_limit, NDP_HOP_LIMIT);
    assert_eq!(na.ipv6.next_header, NEXT_HEADER_ICMPV6);
    assert_eq!(na.ipv6.payload_len, 32, "24-byte NA + 8-byte TLLA option");
    assert_eq!(
        na.flags,
        NeighborFlags {
            router: false,
            solicited,
            override_: true,
        }
    );
    assert_eq!(na.target_addr, vip);
    assert_eq!(na.target_lladdr, Some(OUR_MAC));
    // Raw bytes: ICMPv6 type 136 code 0, flags byte, TLLA option type 2 length 1.
    let icmp = &reply.frame[54..];
    assert_eq!(icmp.len(), 32);
    assert_eq!(icmp[0], 136);
    assert_eq!(icmp[1], 0);
    let flags = if solicited { 0x60 } else { 0x20 };
    assert_eq!(icmp[4], flags);
    assert_eq!(&icmp[24..26], &[2, 1]);
    assert_eq!(&icmp[26..32], OUR_MAC.as_bytes());
    // The checksum, recomputed over the message as sent, sums to zero.
    assert_eq!(checksum(vip, to_ip, icmp), 0);
}

// ---------------------------------------------------------------------------------------------
// ARP
// ---------------------------------------------------------------------------------------------

#[test]
fn arp_broadcast_request_for_announced_ip_gets_unicast_reply() {
    let reply = respond(&arp_request(VIP4), eth0(), &default_announced()).unwrap();
    assert_arp_reply(&reply, VIP4, PEER_MAC, PEER4);
}

#[test]
fn arp_unicast_request_to_our_mac_is_answered() {
    // A cache-refresh request: unicast to the MAC the peer already holds.
    let frame = arp_frame(
        PEER_MAC,
        OUR_MAC,
        arp(ArpOperation::Request, (PEER_MAC, PEER4), (OUR_MAC, VIP4)),
    );
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_arp_reply(&reply, VIP4, PEER_MAC, PEER4);
}

#[test]
fn arp_request_padded_to_the_ethernet_minimum_is_answered() {
    let mut frame = arp_request(VIP4);
    frame.resize(60, 0);
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_arp_reply(&reply, VIP4, PEER_MAC, PEER4);
}

#[test]
fn arp_reply_goes_to_sender_hardware_address() {
    // RFC 826: the reply's target is the request's sender hardware address, even when the
    // frame was relayed by another station.
    let frame = arp_frame(
        OTHER_MAC,
        EthernetAddress::BROADCAST,
        arp(
            ArpOperation::Request,
            (PEER_MAC, PEER4),
            (EthernetAddress::ZERO, VIP4),
        ),
    );
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_arp_reply(&reply, VIP4, PEER_MAC, PEER4);
}

#[test]
fn arp_reply_falls_back_to_ethernet_source_when_sender_hardware_address_is_not_unicast() {
    let frame = arp_frame(
        PEER_MAC,
        EthernetAddress::BROADCAST,
        arp(
            ArpOperation::Request,
            (EthernetAddress::ZERO, PEER4),
            (EthernetAddress::ZERO, VIP4),
        ),
    );
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_arp_reply(&reply, VIP4, PEER_MAC, PEER4);
}

#[test]
fn arp_probe_is_answered() {
    // RFC 5227 probe: sender IP 0.0.0.0, target hardware address zero.
    let frame = arp_frame(
        PEER_MAC,
        EthernetAddress::BROADCAST,
        arp(
            ArpOperation::Request,
            (PEER_MAC, Ipv4Addr::UNSPECIFIED),
            (EthernetAddress::ZERO, VIP4),
        ),
    );
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_arp_reply(&reply, VIP4, PEER_MAC, Ipv4Addr::UNSPECIFIED);
}

#[test]
fn arp_request_for_unannounced_ip_is_not_ours() {
    let err = respond(&arp_request(UNANNOUNCED4), eth0(), &default_announced()).unwrap_err();
    assert_eq!(err, DropReason::NotOurs(IpAddr::V4(UNANNOUNCED4)));
    assert_eq!(err.name(), "not_ours");
    assert_eq!(err.ip(), Some(IpAddr::V4(UNANNOUNCED4)));
}

#[test]
fn arp_request_with_nothing_announced_is_not_ours() {
    let err = respond(&arp_request(VIP4), eth0(), &AnnouncedIps::new()).unwrap_err();
    assert_eq!(err, DropReason::NotOurs(IpAddr::V4(VIP4)));
}

#[test]
fn arp_request_for_ip_announced_on_another_interface_is_wrong_interface() {
    let mut a = AnnouncedIps::new();
    a.apply(
        &key("svc"),
        Some(&announcement("svc", &[IpAddr::V4(VIP4)], &["eth1"])),
    );
    let err = respond(&arp_request(VIP4), on("eth0"), &a).unwrap_err();
    assert_eq!(err, DropReason::WrongInterface(IpAddr::V4(VIP4)));
    assert_eq!(err.name(), "wrong_interface");
    assert_eq!(err.ip(), Some(IpAddr::V4(VIP4)));
    // And it is answered on eth1.
    let reply = respond(&arp_request(VIP4), on("eth1"), &a).unwrap();
    assert_arp_reply(&reply, VIP4, PEER_MAC, PEER4);
}

#[test]
fn arp_reply_is_not_a_request() {
    let frame = arp_frame(
        PEER_MAC,
        OUR_MAC,
        arp(ArpOperation::Reply, (PEER_MAC, PEER4), (OUR_MAC, VIP4)),
    );
    let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
    assert_eq!(err, DropReason::NotRequest);
    assert_eq!(err.name(), "not_request");
    assert_eq!(err.ip(), None);
}

#[test]
fn arp_unknown_operation_is_not_a_request() {
    let frame = arp_frame(
        PEER_MAC,
        EthernetAddress::BROADCAST,
        arp(
            ArpOperation::Unknown(3),
            (PEER_MAC, PEER4),
            (EthernetAddress::ZERO, VIP4),
        ),
    );
    assert_eq!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::NotRequest)
    );
}

#[test]
fn arp_from_our_own_mac_is_from_us() {
    let frame = arp_frame(
        OUR_MAC,
        EthernetAddress::BROADCAST,
        arp(
            ArpOperation::Request,
            (OUR_MAC, PEER4),
            (EthernetAddress::ZERO, VIP4),
        ),
    );
    let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
    assert_eq!(err, DropReason::FromUs);
    assert_eq!(err.name(), "from_us");
}

#[test]
fn our_own_gratuitous_arp_looped_back_is_from_us_not_a_conflict() {
    for frame in lb_l2::gratuitous_frames(IpAddr::V4(VIP4), OUR_MAC) {
        assert_eq!(
            respond(&frame, eth0(), &default_announced()),
            Err(DropReason::FromUs)
        );
    }
}

#[test]
fn arp_unicast_to_another_mac_is_not_for_us() {
    let frame = arp_frame(
        PEER_MAC,
        OTHER_MAC,
        arp(ArpOperation::Request, (PEER_MAC, PEER4), (OTHER_MAC, VIP4)),
    );
    let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
    assert_eq!(err, DropReason::NotForUs { dst: OTHER_MAC });
    assert_eq!(err.name(), "not_for_us");
    assert_eq!(err.to_string(), "addressed to 02:00:00:00:00:bb");
}

#[test]
fn gratuitous_arp_from_another_host_for_our_vip_is_a_conflict() {
    let frame = arp_frame(
        OTHER_MAC,
        EthernetAddress::BROADCAST,
        arp(
            ArpOperation::Request,
            (OTHER_MAC, VIP4),
            (EthernetAddress::ZERO, VIP4),
        ),
    );
    let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
    assert_eq!(
        err,
        DropReason::Conflict {
            ip: IpAddr::V4(VIP4),
            mac: OTHER_MAC,
        }
    );
    assert_eq!(err.name(), "conflict");
    assert_eq!(err.ip(), Some(IpAddr::V4(VIP4)));
    assert_eq!(
        err.to_string(),
        "02:00:00:00:00:bb claims 192.0.2.10, which we announce"
    );
}

#[test]
fn gratuitous_arp_for_an_ip_we_do_not_announce_is_not_ours() {
    let frame = arp_frame(
        OTHER_MAC,
        EthernetAddress::BROADCAST,
        arp(
            ArpOperation::Request,
            (OTHER_MAC, UNANNOUNCED4),
            (EthernetAddress::ZERO, UNANNOUNCED4),
        ),
    );
    assert_eq!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::NotOurs(IpAddr::V4(UNANNOUNCED4)))
    );
}

#[test]
fn ipv4_ethertype_is_unsupported() {
    let mut frame = vec![0u8; 14 + 20];
    EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: OUR_MAC,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut frame)
    .unwrap();
    frame[14] = 0x45;
    let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
    assert!(
        matches!(
            err,
            DropReason::Unsupported(WireError::Unsupported {
                layer: "ethernet",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(err.name(), "unsupported");
}

#[test]
fn vlan_tagged_arp_is_unsupported() {
    // An 802.1Q tag in front of an ARP request: reported as EtherType 0x8100.
    let plain = arp_request(VIP4);
    let mut frame = plain[..12].to_vec();
    frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    frame.extend_from_slice(&plain[12..]);
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::Unsupported(_))
    ));
}

#[test]
fn arp_over_another_hardware_type_is_unsupported() {
    let mut frame = arp_request(VIP4);
    frame[14..16].copy_from_slice(&6u16.to_be_bytes()); // IEEE 802 networks
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::Unsupported(WireError::Unsupported {
            layer: "arp",
            ..
        }))
    ));
}

#[test]
fn truncated_arp_is_malformed() {
    let frame = arp_request(VIP4);
    for len in [14, 15, 14 + 8, 14 + 20, 14 + 27] {
        let err = respond(&frame[..len], eth0(), &default_announced()).unwrap_err();
        assert!(
            matches!(
                err,
                DropReason::Malformed(WireError::Truncated { layer: "arp", .. })
            ),
            "length {len}: {err:?}"
        );
        assert_eq!(err.name(), "malformed");
    }
}

#[test]
fn truncated_ethernet_header_is_malformed() {
    let frame = arp_request(VIP4);
    for len in 0..14 {
        assert!(
            matches!(
                respond(&frame[..len], eth0(), &default_announced()),
                Err(DropReason::Malformed(WireError::Truncated {
                    layer: "ethernet",
                    ..
                }))
            ),
            "length {len}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// NDP
// ---------------------------------------------------------------------------------------------

#[test]
fn ns_to_solicited_node_group_gets_solicited_override_advert() {
    let frame = ns_multicast(VIP6);
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_na(&reply, VIP6, (PEER_MAC, PEER6), true);
}

#[test]
fn ns_reply_goes_to_slla_not_ethernet_source() {
    let group = solicited_node(VIP6);
    let frame = ndp_frame(
        (OTHER_MAC, EthernetAddress::ipv6_multicast(group)),
        (PEER6, group),
        ns(VIP6, Some(PEER_MAC)),
    );
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_na(&reply, VIP6, (PEER_MAC, PEER6), true);
}

#[test]
fn unicast_ns_is_answered() {
    // Neighbor unreachability detection: IPv6 destination is the target itself, Ethernet
    // destination our MAC.
    let frame = ndp_frame(
        (PEER_MAC, OUR_MAC),
        (PEER6_GLOBAL, VIP6),
        ns(VIP6, Some(PEER_MAC)),
    );
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_na(&reply, VIP6, (PEER_MAC, PEER6_GLOBAL), true);
}

#[test]
fn ns_without_slla_is_answered_to_ethernet_source() {
    let frame = ndp_frame((PEER_MAC, OUR_MAC), (PEER6, VIP6), ns(VIP6, None));
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_na(&reply, VIP6, (PEER_MAC, PEER6), true);
}

#[test]
fn ns_with_ethernet_padding_is_answered() {
    // An NS without options is 14 + 40 + 24 = 78 bytes; add trailing junk anyway.
    let mut frame = ns_multicast(VIP6);
    frame.extend_from_slice(&[0xee; 10]);
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_na(&reply, VIP6, (PEER_MAC, PEER6), true);
}

#[test]
fn dad_ns_gets_unsolicited_advert_to_all_nodes() {
    let group = solicited_node(VIP6);
    let frame = ndp_frame(
        (PEER_MAC, EthernetAddress::ipv6_multicast(group)),
        (Ipv6Addr::UNSPECIFIED, group),
        ns(VIP6, None),
    );
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_eq!(EthernetAddress::ipv6_multicast(ALL_NODES), ALL_NODES_MAC);
    assert_eq!(ALL_NODES, "ff02::1".parse::<Ipv6Addr>().unwrap());
    assert_na(&reply, VIP6, (ALL_NODES_MAC, ALL_NODES), false);
}

#[test]
fn dad_ns_with_slla_is_invalid() {
    let group = solicited_node(VIP6);
    let frame = ndp_frame(
        (PEER_MAC, EthernetAddress::ipv6_multicast(group)),
        (Ipv6Addr::UNSPECIFIED, group),
        ns(VIP6, Some(PEER_MAC)),
    );
    let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
    assert!(matches!(err, DropReason::InvalidRequest(_)), "{err:?}");
    assert_eq!(err.name(), "invalid_request");
}

#[test]
fn dad_ns_to_the_target_itself_is_invalid() {
    // RFC 4861 §7.1.1: an unspecified source needs a solicited-node destination.
    let frame = ndp_frame(
        (PEER_MAC, OUR_MAC),
        (Ipv6Addr::UNSPECIFIED, VIP6),
        ns(VIP6, None),
    );
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::InvalidRequest(_))
    ));
}

#[test]
fn ns_with_hop_limit_64_is_dropped() {
    let group = solicited_node(VIP6);
    let frame = ndp_with_hop_limit(
        (PEER_MAC, EthernetAddress::ipv6_multicast(group)),
        (PEER6, group),
        ns(VIP6, Some(PEER_MAC)),
        64,
    );
    // Well-formed otherwise.
    assert!(Frame::parse(&frame).is_ok());
    let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
    assert_eq!(err, DropReason::HopLimit(64));
    assert_eq!(err.name(), "hop_limit");
    assert_eq!(err.to_string(), "hop limit 64, not 255");
}

#[test]
fn ns_with_hop_limit_254_is_dropped() {
    let frame = ndp_with_hop_limit(
        (PEER_MAC, OUR_MAC),
        (PEER6, VIP6),
        ns(VIP6, Some(PEER_MAC)),
        254,
    );
    assert_eq!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::HopLimit(254))
    );
}

#[test]
fn ns_to_another_multicast_group_is_invalid() {
    // To all-nodes.
    let frame = ndp_frame(
        (PEER_MAC, ALL_NODES_MAC),
        (PEER6, ALL_NODES),
        ns(VIP6, Some(PEER_MAC)),
    );
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::InvalidRequest(_))
    ));
    // To the solicited-node group of a different address.
    let group = solicited_node(UNANNOUNCED6);
    assert_ne!(group, solicited_node(VIP6));
    let frame = ndp_frame(
        (PEER_MAC, EthernetAddress::ipv6_multicast(group)),
        (PEER6, group),
        ns(VIP6, Some(PEER_MAC)),
    );
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::InvalidRequest(_))
    ));
}

#[test]
fn ns_unicast_to_another_ip_is_invalid() {
    let frame = ndp_frame(
        (PEER_MAC, OUR_MAC),
        (PEER6, UNANNOUNCED6),
        ns(VIP6, Some(PEER_MAC)),
    );
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::InvalidRequest(_))
    ));
}

#[test]
fn neighbor_advert_is_not_a_request() {
    let frame = ndp_frame(
        (PEER_MAC, ALL_NODES_MAC),
        (PEER6, ALL_NODES),
        NdpRepr::NeighborAdvert {
            flags: NeighborFlags {
                router: false,
                solicited: false,
                override_: true,
            },
            target_addr: PEER6,
            target_lladdr: Some(PEER_MAC),
        },
    );
    assert_eq!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::NotRequest)
    );
}

#[test]
fn ns_with_bad_checksum_is_malformed() {
    let mut frame = ns_multicast(VIP6);
    frame[14 + 40 + 2] ^= 0x01;
    let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
    assert!(
        matches!(err, DropReason::Malformed(WireError::Checksum { .. })),
        "{err:?}"
    );
}

#[test]
fn ns_with_corrupted_target_is_malformed() {
    // Changing a byte of the body without fixing the checksum.
    let mut frame = ns_multicast(VIP6);
    frame[14 + 40 + 8 + 15] ^= 0x01;
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::Malformed(WireError::Checksum { .. }))
    ));
}

#[test]
fn ns_for_multicast_target_is_malformed() {
    let frame = ndp_frame(
        (PEER_MAC, ALL_NODES_MAC),
        (PEER6, ALL_NODES),
        ns(ALL_NODES, Some(PEER_MAC)),
    );
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::Malformed(_))
    ));
}

#[test]
fn ns_with_nonzero_code_is_malformed() {
    let mut frame = ns_multicast(VIP6);
    let group = solicited_node(VIP6);
    let icmp = &mut frame[54..];
    icmp[1] = 1;
    icmp[2] = 0;
    icmp[3] = 0;
    let sum = checksum(PEER6, group, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::Malformed(WireError::Malformed {
            layer: "ndp",
            ..
        }))
    ));
}

#[test]
fn ns_with_zero_length_option_is_malformed() {
    let group = solicited_node(VIP6);
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&VIP6.octets());
    icmp.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    let mut frame = ipv6_frame((PEER6, group), NEXT_HEADER_ICMPV6, &icmp, true);
    frame[..6].copy_from_slice(EthernetAddress::ipv6_multicast(group).as_bytes());
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::Malformed(_))
    ));
}

#[test]
fn ns_with_unknown_option_before_slla_is_answered() {
    let group = solicited_node(VIP6);
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&VIP6.octets());
    // A nonce option (type 14, RFC 3971) of 8 bytes, then the SLLA.
    icmp.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(PEER_MAC.as_bytes());
    let mut frame = ipv6_frame((PEER6, group), NEXT_HEADER_ICMPV6, &icmp, true);
    frame[..6].copy_from_slice(EthernetAddress::ipv6_multicast(group).as_bytes());
    let reply = respond(&frame, eth0(), &default_announced()).unwrap();
    assert_na(&reply, VIP6, (PEER_MAC, PEER6), true);
}

#[test]
fn truncated_ndp_is_malformed() {
    let frame = ns_multicast(VIP6);
    for len in [14, 14 + 39, 14 + 40, 14 + 40 + 20, frame.len() - 1] {
        assert!(
            matches!(
                respond(&frame[..len], eth0(), &default_announced()),
                Err(DropReason::Malformed(_))
            ),
            "length {len}"
        );
    }
}

#[test]
fn ipv6_version_mismatch_is_malformed() {
    let mut frame = ns_multicast(VIP6);
    frame[14] = 0x40;
    assert!(matches!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::Malformed(WireError::Malformed {
            layer: "ipv6",
            ..
        }))
    ));
}

#[test]
fn ns_for_unannounced_target_is_not_ours() {
    let err = respond(&ns_multicast(UNANNOUNCED6), eth0(), &default_announced()).unwrap_err();
    assert_eq!(err, DropReason::NotOurs(IpAddr::V6(UNANNOUNCED6)));
    assert_eq!(err.ip(), Some(IpAddr::V6(UNANNOUNCED6)));
}

#[test]
fn ns_for_target_announced_on_another_interface_is_wrong_interface() {
    let mut a = AnnouncedIps::new();
    a.apply(
        &key("svc"),
        Some(&announcement("svc", &[IpAddr::V6(VIP6)], &["eth1"])),
    );
    assert_eq!(
        respond(&ns_multicast(VIP6), on("eth0"), &a),
        Err(DropReason::WrongInterface(IpAddr::V6(VIP6)))
    );
    let reply = respond(&ns_multicast(VIP6), on("eth1"), &a).unwrap();
    assert_na(&reply, VIP6, (PEER_MAC, PEER6), true);
}

#[test]
fn ns_from_our_own_mac_is_from_us() {
    let group = solicited_node(VIP6);
    let frame = ndp_frame(
        (OUR_MAC, EthernetAddress::ipv6_multicast(group)),
        (PEER6, group),
        ns(VIP6, Some(OUR_MAC)),
    );
    assert_eq!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::FromUs)
    );
}

#[test]
fn ns_unicast_to_another_mac_is_not_for_us() {
    let frame = ndp_frame(
        (PEER_MAC, OTHER_MAC),
        (PEER6, VIP6),
        ns(VIP6, Some(PEER_MAC)),
    );
    assert_eq!(
        respond(&frame, eth0(), &default_announced()),
        Err(DropReason::NotForUs { dst: OTHER_MAC })
    );
}

#[test]
fn ipv6_udp_is_unsupported() {
    let udp = [0x12, 0x34, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00];
    let frame = ipv6_frame((PEER6_GLOBAL, VIP6), 17, &udp, false);
    let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
    assert!(
        matches!(
            err,
            DropReason::Unsupported(WireError::Unsupported { layer: "ipv6", .. })
        ),
        "{err:?}"
    );
}

#[test]
fn icmpv6_echo_request_is_unsupported() {
    // A default-size ping: 8-byte header + 56 bytes of data.
    let mut echo = vec![128, 0, 0, 0, 0x12, 0x34, 0x00, 0x01];
    echo.extend(std::iter::repeat_n(0xab, 56));
    let frame = ipv6_frame((PEER6_GLOBAL, VIP6), NEXT_HEADER_ICMPV6, &echo, true);
    let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
    assert!(
        matches!(
            err,
            DropReason::Unsupported(WireError::Unsupported { layer: "ndp", .. })
        ),
        "{err:?}"
    );
}

#[test]
fn short_icmpv6_messages_of_other_types_are_unsupported() {
    // An echo request without data (ping -s 0) is 8 bytes; a Router Solicitation with its
    // SLLA option is 16. Both are valid ICMPv6 this crate does not handle.
    let echo = [128, 0, 0, 0, 0x12, 0x34, 0x00, 0x01];
    let mut rs = vec![133, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    rs.extend_from_slice(PEER_MAC.as_bytes());
    let all_routers: Ipv6Addr = "ff02::2".parse().unwrap();
    for (dst, message) in [(VIP6, &echo[..]), (all_routers, &rs[..])] {
        let frame = ipv6_frame((PEER6, dst), NEXT_HEADER_ICMPV6, message, true);
        let err = respond(&frame, eth0(), &default_announced()).unwrap_err();
        assert!(
            matches!(err, DropReason::Unsupported(_)),
            "type {}: {err:?}",
            message[0]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Announced IPs
// ---------------------------------------------------------------------------------------------

#[test]
fn shared_ip_answers_on_the_union_of_interfaces() {
    let shared = IpAddr::V4(VIP4);
    let mut a = AnnouncedIps::new();
    assert!(a.apply(&key("a"), Some(&announcement("a", &[shared], &["eth0"]))));
    assert!(a.apply(&key("b"), Some(&announcement("b", &[shared], &["eth1"]))));
    for name in ["eth0", "eth1"] {
        let reply = respond(&arp_request(VIP4), on(name), &a).unwrap();
        assert_arp_reply(&reply, VIP4, PEER_MAC, PEER4);
        assert_eq!(a.lookup(shared, name), Lookup::Here);
    }
    assert_eq!(
        respond(&arp_request(VIP4), on("eth2"), &a),
        Err(DropReason::WrongInterface(shared))
    );
    let scopes: Vec<_> = a.iter().collect();
    assert_eq!(
        scopes,
        vec![(
            shared,
            &Scope::Only(["eth0", "eth1"].iter().map(|s| (*s).to_owned()).collect())
        )]
    );
}

#[test]
fn shared_ip_with_one_unrestricted_service_answers_everywhere() {
    let shared = IpAddr::V6(VIP6);
    let mut a = AnnouncedIps::new();
    a.apply(&key("a"), Some(&announcement("a", &[shared], &["eth0"])));
    a.apply(&key("b"), Some(&announcement("b", &[shared], &[])));
    for name in ["eth0", "eth1", "bond0"] {
        let reply = respond(&ns_multicast(VIP6), on(name), &a).unwrap();
        assert_na(&reply, VIP6, (PEER_MAC, PEER6), true);
    }
    assert_eq!(a.iter().collect::<Vec<_>>(), vec![(shared, &Scope::All)]);
}

#[test]
fn withdrawing_one_sharer_keeps_the_others_interfaces() {
    let shared = IpAddr::V4(VIP4);
    let mut a = AnnouncedIps::new();
    a.apply(&key("a"), Some(&announcement("a", &[shared], &["eth0"])));
    a.apply(
        &key("b"),
        Some(&announcement("b", &[shared, IpAddr::V4(VIP4_B)], &["eth1"])),
    );
    assert!(a.apply(&key("b"), None));
    assert!(
        !a.apply(&key("b"), None),
        "second withdrawal changes nothing"
    );
    let reply = respond(&arp_request(VIP4), on("eth0"), &a).unwrap();
    assert_arp_reply(&reply, VIP4, PEER_MAC, PEER4);
    assert_eq!(
        respond(&arp_request(VIP4), on("eth1"), &a),
        Err(DropReason::WrongInterface(shared))
    );
    assert_eq!(
        respond(&arp_request(VIP4_B), on("eth1"), &a),
        Err(DropReason::NotOurs(IpAddr::V4(VIP4_B)))
    );
    // Withdrawing the last one removes the IP altogether.
    assert!(a.apply(&key("a"), None));
    assert!(a.is_empty());
    assert_eq!(
        respond(&arp_request(VIP4), on("eth0"), &a),
        Err(DropReason::NotOurs(shared))
    );
}

#[test]
fn announcement_without_l2_attributes_is_not_announced() {
    let mut a = AnnouncedIps::new();
    let mut ann = announcement("svc", &[IpAddr::V4(VIP4), IpAddr::V6(VIP6)], &[]);
    ann.l2 = None;
    assert!(!a.apply(&key("svc"), Some(&ann)));
    assert!(a.is_empty());
    assert_eq!(
        respond(&arp_request(VIP4), eth0(), &a),
        Err(DropReason::NotOurs(IpAddr::V4(VIP4)))
    );
    assert_eq!(
        respond(&ns_multicast(VIP6), eth0(), &a),
        Err(DropReason::NotOurs(IpAddr::V6(VIP6)))
    );
}

#[test]
fn l2_attributes_removed_from_an_announced_service_withdraw_it() {
    let mut a = default_announced();
    let mut ann = announcement("svc", &[IpAddr::V4(VIP4)], &[]);
    ann.l2 = None;
    assert!(a.apply(&key("svc"), Some(&ann)));
    assert!(a.is_empty());
}

#[test]
fn announcement_without_ips_is_not_announced() {
    let mut a = AnnouncedIps::new();
    assert!(!a.apply(&key("svc"), Some(&announcement("svc", &[], &["eth0"]))));
    assert!(a.is_empty());
}

#[test]
fn applying_the_same_announcement_twice_reports_no_change() {
    let mut a = AnnouncedIps::new();
    let ann = announcement("svc", &[IpAddr::V4(VIP4)], &["eth0"]);
    assert!(a.apply(&key("svc"), Some(&ann)));
    assert!(!a.apply(&key("svc"), Some(&ann)));
    let moved = announcement("svc", &[IpAddr::V4(VIP4)], &["eth1"]);
    assert!(a.apply(&key("svc"), Some(&moved)));
    assert_eq!(a.lookup(IpAddr::V4(VIP4), "eth0"), Lookup::OtherInterface);
    assert_eq!(a.lookup(IpAddr::V4(VIP4), "eth1"), Lookup::Here);
}

#[test]
fn resync_replaces_everything() {
    let mut a = AnnouncedIps::new();
    a.apply(
        &key("old"),
        Some(&announcement("old", &[IpAddr::V4(VIP4)], &[])),
    );
    a.apply(
        &key("old6"),
        Some(&announcement("old6", &[IpAddr::V6(VIP6)], &[])),
    );
    let mut no_l2 = announcement("gone", &[IpAddr::V4(UNANNOUNCED4)], &[]);
    no_l2.l2 = None;
    let desired = [announcement("new", &[IpAddr::V4(VIP4_B)], &["eth1"]), no_l2];
    assert!(a.resync(&desired));
    assert!(!a.resync(&desired), "same set again changes nothing");

    assert_eq!(
        respond(&arp_request(VIP4), on("eth1"), &a),
        Err(DropReason::NotOurs(IpAddr::V4(VIP4)))
    );
    assert_eq!(
        respond(&ns_multicast(VIP6), on("eth1"), &a),
        Err(DropReason::NotOurs(IpAddr::V6(VIP6)))
    );
    assert_eq!(
        respond(&arp_request(UNANNOUNCED4), on("eth1"), &a),
        Err(DropReason::NotOurs(IpAddr::V4(UNANNOUNCED4)))
    );
    assert_eq!(
        respond(&arp_request(VIP4_B), on("eth0"), &a),
        Err(DropReason::WrongInterface(IpAddr::V4(VIP4_B)))
    );
    let reply = respond(&arp_request(VIP4_B), on("eth1"), &a).unwrap();
    assert_arp_reply(&reply, VIP4_B, PEER_MAC, PEER4);
    assert_eq!(
        a.on_interface("eth1").collect::<Vec<_>>(),
        vec![IpAddr::V4(VIP4_B)]
    );
    assert_eq!(a.on_interface("eth0").count(), 0);

    assert!(a.resync(&[]));
    assert!(a.is_empty());
}

#[test]
fn drop_reason_display_is_informative() {
    let cases = [
        (DropReason::NotRequest, "not a request"),
        (DropReason::FromUs, "sent by this interface"),
        (
            DropReason::NotOurs(IpAddr::V4(VIP4)),
            "192.0.2.10 is not announced",
        ),
        (
            DropReason::WrongInterface(IpAddr::V6(VIP6)),
            "2001:db8::10 is not announced on this interface",
        ),
        (DropReason::InvalidRequest("x"), "invalid request: x"),
    ];
    for (reason, text) in cases {
        assert_eq!(reason.to_string(), text);
    }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

const IFACES: [&str; 3] = ["eth0", "eth1", "eth2"];

/// One service: a few IPs from a small pool (so services share IPs) and an interface
/// restriction (empty = everywhere).
#[derive(Debug, Clone)]
struct Svc {
    ips: Vec<IpAddr>,
    interfaces: Vec<&'static str>,
}

fn pool_ip(index: u8, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            0x100 + u16::from(index),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + index))
    }
}

fn ip_strategy() -> impl Strategy<Value = IpAddr> {
    (0u8..8, any::<bool>()).prop_map(|(i, v6)| pool_ip(i, v6))
}

fn svc_strategy() -> impl Strategy<Value = Svc> {
    (
        prop::collection::vec(ip_strategy(), 0..4),
        prop::sample::subsequence(IFACES.to_vec(), 0..=2),
    )
        .prop_map(|(ips, interfaces)| Svc { ips, interfaces })
}

/// Where each IP should be answered, computed independently of `AnnouncedIps`: `None` means
/// everywhere.
fn model(services: &[Option<Svc>]) -> BTreeMap<IpAddr, Option<BTreeSet<&'static str>>> {
    let mut out: BTreeMap<IpAddr, Option<BTreeSet<&'static str>>> = BTreeMap::new();
    for svc in services.iter().flatten() {
        for ip in &svc.ips {
            let entry = out.entry(*ip).or_insert_with(|| Some(BTreeSet::new()));
            if svc.interfaces.is_empty() {
                *entry = None;
            } else if let Some(set) = entry {
                set.extend(svc.interfaces.iter().copied());
            }
        }
    }
    out
}

fn build(services: &[Option<Svc>]) -> AnnouncedIps {
    let mut a = AnnouncedIps::new();
    for (i, svc) in services.iter().enumerate() {
        let name = format!("svc{i}");
        let ann = svc.as_ref().map(|s| {
            let mut ann = announcement(&name, &s.ips, &s.interfaces);
            if s.ips.is_empty() {
                ann.l2 = None;
            }
            ann
        });
        a.apply(&key(&name), ann.as_ref());
    }
    a
}

/// How a request is addressed.
#[derive(Debug, Clone, Copy)]
enum Request {
    /// ARP, broadcast or unicast to us, with a sender IP outside the pool (or 0.0.0.0).
    Arp { unicast: bool, probe: bool },
    /// NS from a link-local address, to the solicited-node group or to the target.
    Ns { unicast: bool, slla: bool },
    /// DAD NS.
    Dad,
}

fn request_strategy() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<bool>(), any::<bool>()).prop_map(|(unicast, probe)| Request::Arp { unicast, probe }),
        (any::<bool>(), any::<bool>()).prop_map(|(unicast, slla)| Request::Ns { unicast, slla }),
        Just(Request::Dad),
    ]
}

fn mac_strategy() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(|mut b| {
        b[0] = (b[0] & 0xfe) | 0x02; // unicast, locally administered
        if b == *OUR_MAC.as_bytes() {
            b[5] ^= 0xff;
        }
        EthernetAddress(b)
    })
}

/// The request frame for `target` (ARP requests only for IPv4 targets, NS only for IPv6: the
/// request kind adapts to the target family).
fn request_frame(request: Request, target: IpAddr, peer: EthernetAddress) -> Vec<u8> {
    match (target, request) {
        (IpAddr::V4(t), Request::Arp { unicast, probe }) => {
            let spa = if probe {
                Ipv4Addr::UNSPECIFIED
            } else {
                UNANNOUNCED4
            };
            let dst = if unicast {
                OUR_MAC
            } else {
                EthernetAddress::BROADCAST
            };
            arp_frame(
                peer,
                dst,
                arp(
                    ArpOperation::Request,
                    (peer, spa),
                    (EthernetAddress::ZERO, t),
                ),
            )
        }
        (IpAddr::V4(_), Request::Ns { unicast, slla }) => request_frame(
            Request::Arp {
                unicast,
                probe: slla,
            },
            target,
            peer,
        ),
        (IpAddr::V4(_), Request::Dad) => request_frame(
            Request::Arp {
                unicast: false,
                probe: true,
            },
            target,
            peer,
        ),
        (IpAddr::V6(t), Request::Ns { unicast, slla }) => {
            let group = solicited_node(t);
            let (dst_mac, dst_ip) = if unicast {
                (OUR_MAC, t)
            } else {
                (EthernetAddress::ipv6_multicast(group), group)
            };
            ndp_frame(
                (peer, dst_mac),
                (PEER6, dst_ip),
                ns(t, slla.then_some(peer)),
            )
        }
        (IpAddr::V6(t), Request::Dad) => {
            let group = solicited_node(t);
            ndp_frame(
                (peer, EthernetAddress::ipv6_multicast(group)),
                (Ipv6Addr::UNSPECIFIED, group),
                ns(t, None),
            )
        }
        (IpAddr::V6(_), Request::Arp { unicast, probe }) => request_frame(
            Request::Ns {
                unicast,
                slla: probe,
            },
            target,
            peer,
        ),
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let a = default_announced();
        for name in IFACES {
            let _ = respond(&bytes, on(name), &a);
        }
    }

    #[test]
    fn arbitrary_payloads_behind_arp_and_ipv6_headers_never_panic(
        ipv6 in any::<bool>(),
        dst_us in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut frame = Vec::with_capacity(14 + payload.len());
        frame.extend_from_slice(if dst_us { OUR_MAC.as_bytes() } else { &[0xff; 6] });
        frame.extend_from_slice(PEER_MAC.as_bytes());
        frame.extend_from_slice(if ipv6 { &[0x86, 0xdd] } else { &[0x08, 0x06] });
        frame.extend_from_slice(&payload);
        let _ = respond(&frame, eth0(), &default_announced());
    }

    #[test]
    fn mutated_valid_requests_never_panic_and_replies_parse(
        v6 in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let a = default_announced();
        let mut frame = if v6 { ns_multicast(VIP6) } else { arp_request(VIP4) };
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] ^= byte;
        }
        if truncate {
            frame.truncate(cut.index(frame.len() + 1));
        }
        if let Ok(reply) = respond(&frame, eth0(), &a) {
            let parsed = Frame::parse(&reply.frame).expect("reply parses");
            prop_assert_eq!(parsed.ethernet().src_addr, OUR_MAC);
        }
    }

    #[test]
    fn reply_iff_target_announced_on_that_interface(
        services in prop::collection::vec(prop::option::of(svc_strategy()), 0..5),
        target in ip_strategy(),
        request in request_strategy(),
        peer in mac_strategy(),
        interface in prop::sample::select(IFACES.to_vec()),
    ) {
        let a = build(&services);
        let expected = model(&services);
        let frame = request_frame(request, target, peer);
        prop_assert!(Frame::parse(&frame).is_ok());
        let result = respond(&frame, on(interface), &a);
        match expected.get(&target) {
            None => prop_assert_eq!(result, Err(DropReason::NotOurs(target))),
            Some(Some(set)) if !set.contains(interface) => {
                prop_assert_eq!(result, Err(DropReason::WrongInterface(target)));
            }
            Some(_) => {
                let reply = result.expect("announced here: answered");
                prop_assert_eq!(reply.ip, target);
                let parsed = Frame::parse(&reply.frame).expect("reply parses");
                prop_assert_eq!(parsed.ethernet().src_addr, OUR_MAC);
                match parsed {
                    Frame::Arp { ethernet, arp } => {
                        prop_assert_eq!(reply.kind, ReplyKind::ArpReply);
                        prop_assert_eq!(arp.operation, ArpOperation::Reply);
                        prop_assert_eq!(arp.source_hardware_addr, OUR_MAC);
                        prop_assert_eq!(IpAddr::V4(arp.source_protocol_addr), target);
                        prop_assert_eq!(arp.target_hardware_addr, peer);
                        prop_assert_eq!(ethernet.dst_addr, peer);
                    }
                    Frame::Ndp { ethernet, ipv6, ndp } => {
                        prop_assert_eq!(reply.kind, ReplyKind::NeighborAdvert);
                        prop_assert_eq!(ipv6.hop_limit, 255);
                        prop_assert_eq!(IpAddr::V6(ipv6.src_addr), target);
                        let NdpRepr::NeighborAdvert { flags, target_addr, target_lladdr } = ndp
                        else {
                            return Err(TestCaseError::fail("not an advertisement"));
                        };
                        prop_assert_eq!(IpAddr::V6(target_addr), target);
                        prop_assert_eq!(target_lladdr, Some(OUR_MAC));
                        prop_assert!(flags.override_);
                        prop_assert!(!flags.router);
                        if matches!(request, Request::Dad) {
                            prop_assert!(!flags.solicited);
                            prop_assert_eq!(ipv6.dst_addr, ALL_NODES);
                            prop_assert_eq!(ethernet.dst_addr, ALL_NODES_MAC);
                        } else {
                            prop_assert!(flags.solicited);
                            prop_assert_eq!(ipv6.dst_addr, PEER6);
                            prop_assert_eq!(ethernet.dst_addr, peer);
                        }
                    }
                }
            }
        }
        // The lookup agrees with the model too.
        let lookup = a.lookup(target, interface);
        let want = match expected.get(&target) {
            None => Lookup::NotAnnounced,
            Some(Some(set)) if !set.contains(interface) => Lookup::OtherInterface,
            Some(_) => Lookup::Here,
        };
        prop_assert_eq!(lookup, want);
    }
}
