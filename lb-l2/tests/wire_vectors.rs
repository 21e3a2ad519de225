#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Byte vectors for the `wire` codecs, checked both ways: literal bytes parse to the expected
//! value, and the value emits exactly those bytes. The ICMPv6 checksums in the Neighbor
//! Discovery vectors were computed outside the library and are re-checked here with a
//! separate one's-complement implementation, so the library's checksum is compared with
//! something it did not produce.
//!
//! Only documentation addresses are used: 192.0.2.0/24 (RFC 5737), 2001:db8::/32 (RFC 3849)
//! and the MAC block 00:00:5e:00:53:00/24 (RFC 7042 §2.1.1), plus the link-local and multicast
//! addresses Neighbor Discovery needs.

use std::net::{Ipv4Addr, Ipv6Addr};

use lb_l2::wire::icmpv6::{self, TYPE_NEIGHBOR_ADVERT, TYPE_NEIGHBOR_SOLICIT};
use lb_l2::wire::ipv6::{NEXT_HEADER_ICMPV6, is_solicited_node};
use lb_l2::wire::ndp::{LLADDR_OPTION_LEN, MESSAGE_LEN};
use lb_l2::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Frame, Icmpv6Packet, Ipv6Packet, Ipv6Repr, NdpOption, NdpOptions, NdpRepr, NeighborFlags,
    WireError, arp_frame, ndp_frame, solicited_node,
};

// ---------------------------------------------------------------------------------------------
// Shared values
// ---------------------------------------------------------------------------------------------

/// 00:00:5e:00:53:01, the requester / solicitor.
const MAC_A: EthernetAddress = EthernetAddress([0x00, 0x00, 0x5e, 0x00, 0x53, 0x01]);
/// 00:00:5e:00:53:02, the owner of the address being resolved.
const MAC_B: EthernetAddress = EthernetAddress([0x00, 0x00, 0x5e, 0x00, 0x53, 0x02]);

const IP4_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const IP4_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// 2001:db8::1
const IP6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// 2001:db8::10
const IP6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
/// ff02::1:ff00:10, the solicited-node group of 2001:db8::10.
const IP6_B_SNM: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x10);

/// Offset of the IPv6 header in an Ethernet frame.
const IP_OFF: usize = 14;
/// Offset of the ICMPv6 message in an Ethernet + IPv6 frame.
const ICMP_OFF: usize = 14 + 40;

/// The Internet checksum (RFC 1071) of the IPv6 pseudo-header (RFC 8200 §8.1) and `message`,
/// written independently of `lb_l2::wire::icmpv6::checksum`: 32-bit accumulator, bytes paired
/// by index, end-around carry folded at the end.
fn reference_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut data = Vec::new();
    data.extend_from_slice(&src.octets());
    data.extend_from_slice(&dst.octets());
    data.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 58]);
    data.extend_from_slice(message);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut acc: u32 = 0;
    let mut i = 0;
    while i < data.len() {
        acc += (u32::from(data[i]) << 8) | u32::from(data[i + 1]);
        i += 2;
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !u16::try_from(acc).unwrap()
}

/// Recomputes the ICMPv6 checksum of an Ethernet + IPv6 + ICMPv6 frame with the reference
/// implementation (for vectors that are edited in the test).
fn refill_checksum(frame: &mut [u8]) {
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[IP_OFF + 8..IP_OFF + 24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[IP_OFF + 24..IP_OFF + 40]).unwrap());
    frame[ICMP_OFF + 2] = 0;
    frame[ICMP_OFF + 3] = 0;
    let sum = reference_checksum(src, dst, &frame[ICMP_OFF..]);
    frame[ICMP_OFF + 2..ICMP_OFF + 4].copy_from_slice(&sum.to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// Ethernet
// ---------------------------------------------------------------------------------------------

/// Broadcast, from 00:00:5e:00:53:01, EtherType ARP.
const ETH_HEADER: [u8; 14] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // source
    0x08, 0x06, // EtherType
];

#[test]
fn ethernet_header_parses() {
    let frame = EthernetFrame::new_checked(&ETH_HEADER[..]).unwrap();
    assert_eq!(frame.dst_addr(), EthernetAddress::BROADCAST);
    assert_eq!(frame.src_addr(), MAC_A);
    assert_eq!(frame.ethertype(), EtherType::ARP);
    assert!(frame.payload().is_empty());
    let repr = EthernetRepr::parse(&frame).unwrap();
    assert_eq!(
        repr,
        EthernetRepr {
            src_addr: MAC_A,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::ARP,
        }
    );
}

#[test]
fn ethernet_header_emits_exact_bytes() {
    let repr = EthernetRepr {
        src_addr: MAC_A,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::ARP,
    };
    assert_eq!(repr.buffer_len(), 14);
    let mut buf = [0u8; 14];
    repr.emit(&mut buf).unwrap();
    assert_eq!(buf, ETH_HEADER);

    // Emitting into a larger buffer touches only the header.
    let mut big = [0xaau8; 20];
    repr.emit(&mut big).unwrap();
    assert_eq!(big[..14], ETH_HEADER);
    assert_eq!(big[14..], [0xaa; 6]);
}

#[test]
fn ethernet_payload_follows_header() {
    let mut bytes = ETH_HEADER.to_vec();
    bytes.extend_from_slice(&[1, 2, 3]);
    let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
    assert_eq!(frame.payload(), &[1, 2, 3]);
}

#[test]
fn ethernet_setters_write_in_place() {
    let mut buf = [0u8; 16];
    let mut frame = EthernetFrame::new_checked(&mut buf[..]).unwrap();
    frame.set_dst_addr(EthernetAddress::BROADCAST);
    frame.set_src_addr(MAC_A);
    frame.set_ethertype(EtherType::ARP);
    frame.payload_mut().copy_from_slice(&[7, 8]);
    assert_eq!(buf[..14], ETH_HEADER);
    assert_eq!(buf[14..], [7, 8]);
}

#[test]
fn ethernet_truncated_and_too_small() {
    assert_eq!(
        EthernetFrame::new_checked(&ETH_HEADER[..13]).unwrap_err(),
        WireError::Truncated {
            layer: "ethernet",
            needed: 14,
            available: 13,
        }
    );
    assert_eq!(
        EthernetRepr::parse(&EthernetFrame::new_unchecked(&ETH_HEADER[..3])).unwrap_err(),
        WireError::Truncated {
            layer: "ethernet",
            needed: 14,
            available: 3,
        }
    );
    let repr = EthernetRepr {
        src_addr: MAC_A,
        dst_addr: MAC_B,
        ethertype: EtherType::IPV6,
    };
    let mut small = [0u8; 13];
    assert_eq!(
        repr.emit(&mut small).unwrap_err(),
        WireError::BufferTooSmall {
            layer: "ethernet",
            needed: 14,
            available: 13,
        }
    );
    assert_eq!(small, [0; 13], "a failed emit writes nothing");
}

#[test]
fn ethertype_display_and_constants() {
    assert_eq!(EtherType::ARP.to_string(), "0x0806");
    assert_eq!(EtherType::IPV6.to_string(), "0x86dd");
    assert_eq!(EtherType::IPV4, EtherType(0x0800));
    assert_eq!(EtherType::VLAN, EtherType(0x8100));
}

#[test]
fn ethernet_vlan_tag_reports_8100() {
    let mut bytes = ETH_HEADER.to_vec();
    bytes[12..14].copy_from_slice(&[0x81, 0x00]);
    bytes.extend_from_slice(&[0x00, 0x0a, 0x08, 0x06]);
    let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
    assert_eq!(frame.ethertype(), EtherType::VLAN);
    assert_eq!(
        Frame::parse(&bytes).unwrap_err(),
        WireError::Unsupported {
            layer: "ethernet",
            what: "EtherType other than ARP or IPv6",
        }
    );
}

// ---------------------------------------------------------------------------------------------
// ARP
// ---------------------------------------------------------------------------------------------

/// ARP request, RFC 826 layout: who-has 192.0.2.10 tell 192.0.2.1 (from 00:00:5e:00:53:01,
/// Ethernet broadcast). 42 bytes, as a host hands it to the NIC before padding.
const ARP_REQUEST_FRAME: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // Ethernet destination: broadcast
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // Ethernet source
    0x08, 0x06, // EtherType ARP
    0x00, 0x01, // hardware type: Ethernet
    0x08, 0x00, // protocol type: IPv4
    0x06, 0x04, // hardware / protocol address lengths
    0x00, 0x01, // operation: request
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // sender hardware address
    0xc0, 0x00, 0x02, 0x01, // sender protocol address 192.0.2.1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target hardware address: unknown
    0xc0, 0x00, 0x02, 0x0a, // target protocol address 192.0.2.10
];

/// ARP reply: 192.0.2.10 is-at 00:00:5e:00:53:02, unicast back to the requester.
const ARP_REPLY_FRAME: [u8; 42] = [
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // Ethernet destination: the requester
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x02, // Ethernet source
    0x08, 0x06, // EtherType ARP
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // Ethernet / IPv4
    0x00, 0x02, // operation: reply
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x02, // sender hardware address
    0xc0, 0x00, 0x02, 0x0a, // sender protocol address 192.0.2.10
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // target hardware address
    0xc0, 0x00, 0x02, 0x01, // target protocol address 192.0.2.1
];

fn arp_request() -> ArpRepr {
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: MAC_A,
        source_protocol_addr: IP4_A,
        target_hardware_addr: EthernetAddress::ZERO,
        target_protocol_addr: IP4_B,
    }
}

fn arp_reply() -> ArpRepr {
    ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: MAC_B,
        source_protocol_addr: IP4_B,
        target_hardware_addr: MAC_A,
        target_protocol_addr: IP4_A,
    }
}

#[test]
fn arp_request_view_getters() {
    let packet = ArpPacket::new_checked(&ARP_REQUEST_FRAME[14..]).unwrap();
    assert_eq!(packet.hardware_type(), 1);
    assert_eq!(packet.protocol_type(), 0x0800);
    assert_eq!(packet.hardware_len(), 6);
    assert_eq!(packet.protocol_len(), 4);
    assert_eq!(packet.operation(), ArpOperation::Request);
    assert_eq!(packet.source_hardware_addr(), MAC_A);
    assert_eq!(packet.source_protocol_addr(), IP4_A);
    assert_eq!(packet.target_hardware_addr(), EthernetAddress::ZERO);
    assert_eq!(packet.target_protocol_addr(), IP4_B);
    assert_eq!(ArpRepr::parse(&packet).unwrap(), arp_request());
}

#[test]
fn arp_request_frame_both_ways() {
    assert_eq!(
        Frame::parse(&ARP_REQUEST_FRAME).unwrap(),
        Frame::Arp {
            ethernet: EthernetRepr {
                src_addr: MAC_A,
                dst_addr: EthernetAddress::BROADCAST,
                ethertype: EtherType::ARP,
            },
            arp: arp_request(),
        }
    );
    assert_eq!(
        arp_frame(MAC_A, EthernetAddress::BROADCAST, arp_request()),
        ARP_REQUEST_FRAME
    );
    let mut buf = [0u8; 28];
    arp_request().emit(&mut buf).unwrap();
    assert_eq!(buf, ARP_REQUEST_FRAME[14..]);
}

#[test]
fn arp_reply_frame_both_ways() {
    let frame = Frame::parse(&ARP_REPLY_FRAME).unwrap();
    assert_eq!(
        frame,
        Frame::Arp {
            ethernet: EthernetRepr {
                src_addr: MAC_B,
                dst_addr: MAC_A,
                ethertype: EtherType::ARP,
            },
            arp: arp_reply(),
        }
    );
    assert_eq!(frame.buffer_len(), 42);
    assert_eq!(frame.to_bytes(), ARP_REPLY_FRAME);
    assert_eq!(arp_frame(MAC_B, MAC_A, arp_reply()), ARP_REPLY_FRAME);
}

#[test]
fn arp_padded_60_byte_frame() {
    // The minimum Ethernet frame without FCS is 60 bytes; NICs pad ARP with 18 zero bytes
    // (some with junk), which the parser must ignore.
    let mut padded = ARP_REQUEST_FRAME.to_vec();
    padded.resize(60, 0);
    assert_eq!(padded.len(), 60);
    assert_eq!(
        Frame::parse(&padded).unwrap(),
        Frame::parse(&ARP_REQUEST_FRAME).unwrap()
    );
    for b in &mut padded[42..] {
        *b = 0xa5;
    }
    let Frame::Arp { arp, .. } = Frame::parse(&padded).unwrap() else {
        panic!("padded ARP request did not parse as ARP");
    };
    assert_eq!(arp, arp_request());
}

#[test]
fn arp_unknown_operation_round_trips() {
    let mut bytes = ARP_REQUEST_FRAME;
    bytes[21] = 3; // RARP request
    let Frame::Arp { arp, .. } = Frame::parse(&bytes).unwrap() else {
        panic!("ARP with operation 3 did not parse as ARP");
    };
    assert_eq!(arp.operation, ArpOperation::Unknown(3));
    assert_eq!(arp_frame(MAC_A, EthernetAddress::BROADCAST, arp), bytes);
}

#[test]
fn arp_operation_codes() {
    assert_eq!(ArpOperation::from(1), ArpOperation::Request);
    assert_eq!(ArpOperation::from(2), ArpOperation::Reply);
    assert_eq!(ArpOperation::from(0), ArpOperation::Unknown(0));
    assert_eq!(ArpOperation::from(0xffff), ArpOperation::Unknown(0xffff));
    assert_eq!(u16::from(ArpOperation::Request), 1);
    assert_eq!(u16::from(ArpOperation::Reply), 2);
    assert_eq!(u16::from(ArpOperation::Unknown(8)), 8);
}

#[test]
fn arp_non_ethernet_hardware_is_unsupported() {
    // Hardware type 6 (IEEE 802), same lengths.
    let mut bytes = ARP_REQUEST_FRAME;
    bytes[14..16].copy_from_slice(&[0x00, 0x06]);
    let unsupported_hw = WireError::Unsupported {
        layer: "arp",
        what: "hardware type other than Ethernet",
    };
    assert_eq!(Frame::parse(&bytes).unwrap_err(), unsupported_hw);
    let packet = ArpPacket::new_checked(&bytes[14..]).unwrap();
    assert_eq!(ArpRepr::parse(&packet).unwrap_err(), unsupported_hw);

    // Ethernet hardware type but an 8-byte hardware address length: new_checked accepts the
    // 8 + 2 * (8 + 4) = 32 bytes, Repr::parse refuses the layout.
    let mut odd = vec![0x00, 0x01, 0x08, 0x00, 0x08, 0x04, 0x00, 0x01];
    odd.resize(32, 0);
    let packet = ArpPacket::new_checked(&odd[..]).unwrap();
    assert_eq!(ArpRepr::parse(&packet).unwrap_err(), unsupported_hw);
    assert_eq!(
        ArpPacket::new_checked(&odd[..31]).unwrap_err(),
        WireError::Truncated {
            layer: "arp",
            needed: 32,
            available: 31,
        }
    );
}

#[test]
fn arp_non_ipv4_protocol_is_unsupported() {
    let mut bytes = ARP_REQUEST_FRAME;
    bytes[16..18].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(
        Frame::parse(&bytes).unwrap_err(),
        WireError::Unsupported {
            layer: "arp",
            what: "protocol type other than IPv4",
        }
    );
    let mut bytes = ARP_REQUEST_FRAME;
    bytes[19] = 5; // IPv4 protocol type, 5-byte protocol addresses (needs 30 bytes)
    let mut padded = bytes.to_vec();
    padded.resize(60, 0);
    assert_eq!(
        Frame::parse(&padded).unwrap_err(),
        WireError::Unsupported {
            layer: "arp",
            what: "protocol type other than IPv4",
        }
    );
}

#[test]
fn arp_truncated() {
    let arp = &ARP_REQUEST_FRAME[14..];
    assert_eq!(
        ArpPacket::new_checked(&arp[..27]).unwrap_err(),
        WireError::Truncated {
            layer: "arp",
            needed: 28,
            available: 27,
        }
    );
    assert_eq!(
        ArpPacket::new_checked(&arp[..7]).unwrap_err(),
        WireError::Truncated {
            layer: "arp",
            needed: 8,
            available: 7,
        }
    );
    assert_eq!(
        ArpPacket::new_checked(&[][..]).unwrap_err(),
        WireError::Truncated {
            layer: "arp",
            needed: 8,
            available: 0,
        }
    );
    // Repr::parse re-checks a view made without checks.
    assert_eq!(
        ArpRepr::parse(&ArpPacket::new_unchecked(&arp[..20])).unwrap_err(),
        WireError::Truncated {
            layer: "arp",
            needed: 28,
            available: 20,
        }
    );
    assert_eq!(
        ArpRepr::parse(&ArpPacket::new_unchecked(&arp[..5])).unwrap_err(),
        WireError::Truncated {
            layer: "arp",
            needed: 8,
            available: 5,
        }
    );
    // A whole frame cut one byte short.
    assert_eq!(
        Frame::parse(&ARP_REQUEST_FRAME[..41]).unwrap_err(),
        WireError::Truncated {
            layer: "arp",
            needed: 28,
            available: 27,
        }
    );
    assert_eq!(
        Frame::parse(&ARP_REQUEST_FRAME[..10]).unwrap_err(),
        WireError::Truncated {
            layer: "ethernet",
            needed: 14,
            available: 10,
        }
    );
}

#[test]
fn arp_emit_too_small() {
    let mut buf = [0u8; 27];
    assert_eq!(
        arp_request().emit(&mut buf).unwrap_err(),
        WireError::BufferTooSmall {
            layer: "arp",
            needed: 28,
            available: 27,
        }
    );
    let frame = Frame::parse(&ARP_REQUEST_FRAME).unwrap();
    let mut buf = [0u8; 41];
    assert_eq!(
        frame.emit(&mut buf).unwrap_err(),
        WireError::BufferTooSmall {
            layer: "frame",
            needed: 42,
            available: 41,
        }
    );
    assert_eq!(buf, [0; 41], "a failed emit writes nothing");
}

#[test]
fn arp_setters_write_in_place() {
    let mut buf = ARP_REQUEST_FRAME[14..].to_vec();
    let mut packet = ArpPacket::new_checked(&mut buf[..]).unwrap();
    packet.set_source_hardware_addr(MAC_B);
    packet.set_source_protocol_addr(IP4_B);
    packet.set_target_hardware_addr(MAC_A);
    packet.set_target_protocol_addr(IP4_A);
    assert_eq!(buf[8..], ARP_REPLY_FRAME[22..]);
    assert_eq!(buf[..6], ARP_REPLY_FRAME[14..20]);
}

// ---------------------------------------------------------------------------------------------
// IPv6
// ---------------------------------------------------------------------------------------------

/// IPv6 header: version 6, payload 8 bytes, next header 58, hop limit 255,
/// 2001:db8::1 → 2001:db8::10.
const IPV6_HEADER: [u8; 40] = [
    0x60, 0x00, 0x00, 0x00, // version, traffic class, flow label
    0x00, 0x08, // payload length
    0x3a, // next header: ICMPv6
    0xff, // hop limit
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // source 2001:db8::1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // destination 2001:db8::10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, //
];

fn ipv6_repr() -> Ipv6Repr {
    Ipv6Repr {
        src_addr: IP6_A,
        dst_addr: IP6_B,
        next_header: NEXT_HEADER_ICMPV6,
        payload_len: 8,
        hop_limit: 255,
    }
}

fn ipv6_packet() -> Vec<u8> {
    let mut bytes = IPV6_HEADER.to_vec();
    bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    bytes
}

#[test]
fn ipv6_header_parses() {
    let bytes = ipv6_packet();
    let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(packet.version(), 6);
    assert_eq!(packet.traffic_class(), 0);
    assert_eq!(packet.flow_label(), 0);
    assert_eq!(packet.payload_len(), 8);
    assert_eq!(packet.next_header(), 58);
    assert_eq!(packet.hop_limit(), 255);
    assert_eq!(packet.src_addr(), IP6_A);
    assert_eq!(packet.dst_addr(), IP6_B);
    assert_eq!(packet.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(Ipv6Repr::parse(&packet).unwrap(), ipv6_repr());
}

#[test]
fn ipv6_header_emits_exact_bytes() {
    let repr = ipv6_repr();
    assert_eq!(repr.buffer_len(), 40);
    let mut buf = [0xeeu8; 40];
    repr.emit(&mut buf).unwrap();
    assert_eq!(buf, IPV6_HEADER);
}

#[test]
fn ipv6_traffic_class_and_flow_label() {
    let mut bytes = ipv6_packet();
    bytes[..4].copy_from_slice(&[0x6a, 0xbc, 0xde, 0xf1]);
    let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(packet.version(), 6);
    assert_eq!(packet.traffic_class(), 0xab);
    assert_eq!(packet.flow_label(), 0xc_def1);
    // Not part of the value: it parses the same.
    assert_eq!(Ipv6Repr::parse(&packet).unwrap(), ipv6_repr());
}

#[test]
fn ipv6_version_other_than_6_is_malformed() {
    for first in [0x40, 0x00, 0x70, 0xf0] {
        let mut bytes = ipv6_packet();
        bytes[0] = first;
        let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            Ipv6Repr::parse(&packet).unwrap_err(),
            WireError::Malformed {
                layer: "ipv6",
                what: "version is not 6",
            },
            "first byte {first:#04x}"
        );
    }
}

#[test]
fn ipv6_payload_shorter_than_payload_len_is_truncated() {
    let bytes = ipv6_packet();
    let short = &bytes[..47];
    let truncated = WireError::Truncated {
        layer: "ipv6",
        needed: 48,
        available: 47,
    };
    assert_eq!(Ipv6Packet::new_checked(short).unwrap_err(), truncated);
    let unchecked = Ipv6Packet::new_unchecked(short);
    assert_eq!(Ipv6Repr::parse(&unchecked).unwrap_err(), truncated);
    // The unchecked view still gives what there is of the payload.
    assert_eq!(unchecked.payload(), &[1, 2, 3, 4, 5, 6, 7]);

    assert_eq!(
        Ipv6Packet::new_checked(&bytes[..39]).unwrap_err(),
        WireError::Truncated {
            layer: "ipv6",
            needed: 40,
            available: 39,
        }
    );
    assert_eq!(
        Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&bytes[..12])).unwrap_err(),
        WireError::Truncated {
            layer: "ipv6",
            needed: 40,
            available: 12,
        }
    );
}

#[test]
fn ipv6_trailing_padding_is_ignored() {
    let mut bytes = ipv6_packet();
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(packet.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(Ipv6Repr::parse(&packet).unwrap(), ipv6_repr());

    let mut packet = Ipv6Packet::new_checked(&mut bytes[..]).unwrap();
    assert_eq!(packet.payload_mut().len(), 8);
    packet.payload_mut().fill(0);
    assert_eq!(bytes[40..48], [0; 8]);
    assert_eq!(bytes[48..], [0xde, 0xad, 0xbe, 0xef]);
}

#[test]
fn ipv6_emit_too_small() {
    let mut buf = [0u8; 39];
    assert_eq!(
        ipv6_repr().emit(&mut buf).unwrap_err(),
        WireError::BufferTooSmall {
            layer: "ipv6",
            needed: 40,
            available: 39,
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Neighbor Discovery
// ---------------------------------------------------------------------------------------------

/// Neighbor Solicitation: 2001:db8::1 (00:00:5e:00:53:01) asks for 2001:db8::10, sent to the
/// solicited-node group ff02::1:ff00:10 (MAC 33:33:ff:00:00:10) with a source link-layer
/// address option. The checksum 0x6d0a was computed outside this crate (a one's-complement sum
/// in Python over the pseudo-header and message) and is re-checked by `reference_checksum`.
const NS_FRAME: [u8; 86] = [
    // Ethernet
    0x33, 0x33, 0xff, 0x00, 0x00, 0x10, // destination: solicited-node MAC
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // source
    0x86, 0xdd, // EtherType IPv6
    // IPv6
    0x60, 0x00, 0x00, 0x00, // version 6
    0x00, 0x20, // payload length 32
    0x3a, 0xff, // next header ICMPv6, hop limit 255
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // source 2001:db8::1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // destination ff02::1:ff00:10
    0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x10, //
    // ICMPv6 Neighbor Solicitation
    0x87, 0x00, // type 135, code 0
    0x6d, 0x0a, // checksum
    0x00, 0x00, 0x00, 0x00, // reserved
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // target 2001:db8::10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, //
    0x01, 0x01, // option: source link-layer address, length 1 (8 bytes)
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, //
];
const NS_CHECKSUM: u16 = 0x6d0a;

/// Neighbor Advertisement: 2001:db8::10 (00:00:5e:00:53:02) answers the solicitation above,
/// unicast, flags Solicited and Override, with a target link-layer address option. Checksum
/// 0xdb54 computed the same way.
const NA_FRAME: [u8; 86] = [
    // Ethernet
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // destination: the solicitor
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x02, // source
    0x86, 0xdd, // EtherType IPv6
    // IPv6
    0x60, 0x00, 0x00, 0x00, // version 6
    0x00, 0x20, // payload length 32
    0x3a, 0xff, // next header ICMPv6, hop limit 255
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // source 2001:db8::10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, //
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // destination 2001:db8::1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //
    // ICMPv6 Neighbor Advertisement
    0x88, 0x00, // type 136, code 0
    0xdb, 0x54, // checksum
    0x60, 0x00, 0x00, 0x00, // flags: R=0 S=1 O=1, reserved
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // target 2001:db8::10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, //
    0x02, 0x01, // option: target link-layer address, length 1 (8 bytes)
    0x00, 0x00, 0x5e, 0x00, 0x53, 0x02, //
];
const NA_CHECKSUM: u16 = 0xdb54;

fn ns_repr() -> NdpRepr {
    NdpRepr::NeighborSolicit {
        target_addr: IP6_B,
        source_lladdr: Some(MAC_A),
    }
}

fn na_flags() -> NeighborFlags {
    NeighborFlags {
        router: false,
        solicited: true,
        override_: true,
    }
}

fn na_repr() -> NdpRepr {
    NdpRepr::NeighborAdvert {
        flags: na_flags(),
        target_addr: IP6_B,
        target_lladdr: Some(MAC_B),
    }
}

fn ns_frame_value() -> Frame {
    Frame::Ndp {
        ethernet: EthernetRepr {
            src_addr: MAC_A,
            dst_addr: EthernetAddress([0x33, 0x33, 0xff, 0x00, 0x00, 0x10]),
            ethertype: EtherType::IPV6,
        },
        ipv6: Ipv6Repr {
            src_addr: IP6_A,
            dst_addr: IP6_B_SNM,
            next_header: 58,
            payload_len: 32,
            hop_limit: 255,
        },
        ndp: ns_repr(),
    }
}

fn na_frame_value() -> Frame {
    Frame::Ndp {
        ethernet: EthernetRepr {
            src_addr: MAC_B,
            dst_addr: MAC_A,
            ethertype: EtherType::IPV6,
        },
        ipv6: Ipv6Repr {
            src_addr: IP6_B,
            dst_addr: IP6_A,
            next_header: 58,
            payload_len: 32,
            hop_limit: 255,
        },
        ndp: na_repr(),
    }
}

#[test]
fn reference_checksum_agrees_with_literal_vectors() {
    // A message with a correct checksum field sums to zero...
    assert_eq!(
        reference_checksum(IP6_A, IP6_B_SNM, &NS_FRAME[ICMP_OFF..]),
        0
    );
    assert_eq!(reference_checksum(IP6_B, IP6_A, &NA_FRAME[ICMP_OFF..]), 0);
    // ...and with the field zeroed gives the field's value.
    let mut ns = NS_FRAME[ICMP_OFF..].to_vec();
    ns[2..4].fill(0);
    assert_eq!(reference_checksum(IP6_A, IP6_B_SNM, &ns), NS_CHECKSUM);
    let mut na = NA_FRAME[ICMP_OFF..].to_vec();
    na[2..4].fill(0);
    assert_eq!(reference_checksum(IP6_B, IP6_A, &na), NA_CHECKSUM);
}

#[test]
fn library_checksum_matches_reference() {
    let mut ns = NS_FRAME[ICMP_OFF..].to_vec();
    assert_eq!(icmpv6::checksum(IP6_A, IP6_B_SNM, &ns), 0);
    ns[2..4].fill(0);
    assert_eq!(icmpv6::checksum(IP6_A, IP6_B_SNM, &ns), NS_CHECKSUM);
    let mut na = NA_FRAME[ICMP_OFF..].to_vec();
    assert_eq!(icmpv6::checksum(IP6_B, IP6_A, &na), 0);
    na[2..4].fill(0);
    assert_eq!(icmpv6::checksum(IP6_B, IP6_A, &na), NA_CHECKSUM);

    // Odd lengths pad the last byte with zero; a few arbitrary messages.
    for message in [
        &[][..],
        &[0x01][..],
        &[0x80, 0x00, 0x00, 0x00, 0xff][..],
        &[0xff; 33][..],
        &NS_FRAME[..],
    ] {
        assert_eq!(
            icmpv6::checksum(IP6_A, IP6_B, message),
            reference_checksum(IP6_A, IP6_B, message),
            "message {message:02x?}"
        );
    }
}

#[test]
fn neighbor_solicitation_frame_parses() {
    assert_eq!(Frame::parse(&NS_FRAME).unwrap(), ns_frame_value());

    let icmp = Icmpv6Packet::new_checked(&NS_FRAME[ICMP_OFF..]).unwrap();
    assert_eq!(icmp.msg_type(), TYPE_NEIGHBOR_SOLICIT);
    assert_eq!(icmp.msg_code(), 0);
    assert_eq!(icmp.checksum(), NS_CHECKSUM);
    assert_eq!(icmp.body(), &NS_FRAME[ICMP_OFF + 4..]);
    assert_eq!(icmp.as_bytes(), &NS_FRAME[ICMP_OFF..]);
    icmp.verify_checksum(IP6_A, IP6_B_SNM).unwrap();
    assert_eq!(NdpRepr::parse(&icmp).unwrap(), ns_repr());
    assert_eq!(ns_repr().target_addr(), IP6_B);
}

#[test]
fn neighbor_solicitation_frame_emits_exact_bytes() {
    let bytes = ndp_frame(
        (MAC_A, EthernetAddress::ipv6_multicast(IP6_B_SNM)),
        (IP6_A, solicited_node(IP6_B)),
        ns_repr(),
    );
    assert_eq!(bytes, NS_FRAME);
    assert_eq!(ns_frame_value().to_bytes(), NS_FRAME);
    assert_eq!(ns_frame_value().buffer_len(), 86);

    let mut message = [0u8; 32];
    assert_eq!(ns_repr().buffer_len(), MESSAGE_LEN + LLADDR_OPTION_LEN);
    ns_repr().emit(IP6_A, IP6_B_SNM, &mut message).unwrap();
    assert_eq!(message, NS_FRAME[ICMP_OFF..]);
}

#[test]
fn neighbor_advertisement_frame_both_ways() {
    assert_eq!(Frame::parse(&NA_FRAME).unwrap(), na_frame_value());
    assert_eq!(
        ndp_frame((MAC_B, MAC_A), (IP6_B, IP6_A), na_repr()),
        NA_FRAME
    );
    assert_eq!(na_frame_value().to_bytes(), NA_FRAME);

    let icmp = Icmpv6Packet::new_checked(&NA_FRAME[ICMP_OFF..]).unwrap();
    assert_eq!(icmp.msg_type(), TYPE_NEIGHBOR_ADVERT);
    assert_eq!(icmp.checksum(), NA_CHECKSUM);
    icmp.verify_checksum(IP6_B, IP6_A).unwrap();
    assert_eq!(NdpRepr::parse(&icmp).unwrap(), na_repr());
}

#[test]
fn neighbor_advertisement_flag_bits() {
    for (byte, router, solicited, override_) in [
        (0x00, false, false, false),
        (0x80, true, false, false),
        (0x40, false, true, false),
        (0x20, false, false, true),
        (0xe0, true, true, true),
        (0xa0, true, false, true),
        // Reserved bits are ignored.
        (0x1f, false, false, false),
        (0xff, true, true, true),
    ] {
        let mut bytes = NA_FRAME;
        bytes[ICMP_OFF + 4] = byte;
        refill_checksum(&mut bytes);
        let flags = NeighborFlags {
            router,
            solicited,
            override_,
        };
        let Frame::Ndp { ndp, .. } = Frame::parse(&bytes).unwrap() else {
            panic!("NA with flags {byte:#04x} did not parse as NDP");
        };
        assert_eq!(
            ndp,
            NdpRepr::NeighborAdvert {
                flags,
                target_addr: IP6_B,
                target_lladdr: Some(MAC_B),
            },
            "flags byte {byte:#04x}"
        );
        // Emitting writes only the three defined bits.
        let emitted = ndp_frame((MAC_B, MAC_A), (IP6_B, IP6_A), ndp);
        assert_eq!(emitted[ICMP_OFF + 4], byte & 0xe0, "flags byte {byte:#04x}");
        let mut expected = bytes;
        expected[ICMP_OFF + 4] = byte & 0xe0;
        refill_checksum(&mut expected);
        assert_eq!(emitted, expected, "flags byte {byte:#04x}");
    }
}

#[test]
fn dad_neighbor_solicitation_without_option() {
    // Duplicate address detection: from ::, no source link-layer address option.
    let mut expected = vec![
        0x33, 0x33, 0xff, 0x00, 0x00, 0x10, // solicited-node MAC
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x02, //
        0x86, 0xdd, //
        0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x3a, 0xff, // payload length 24
    ];
    expected.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    expected.extend_from_slice(&IP6_B_SNM.octets());
    expected.extend_from_slice(&[0x87, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    expected.extend_from_slice(&IP6_B.octets());
    refill_checksum(&mut expected);

    let repr = NdpRepr::NeighborSolicit {
        target_addr: IP6_B,
        source_lladdr: None,
    };
    assert_eq!(repr.buffer_len(), MESSAGE_LEN);
    let bytes = ndp_frame(
        (MAC_B, EthernetAddress::ipv6_multicast(IP6_B_SNM)),
        (Ipv6Addr::UNSPECIFIED, IP6_B_SNM),
        repr,
    );
    assert_eq!(bytes, expected);
    let Frame::Ndp { ipv6, ndp, .. } = Frame::parse(&expected).unwrap() else {
        panic!("DAD probe did not parse as NDP");
    };
    assert_eq!(ndp, repr);
    assert_eq!(ipv6.payload_len, 24);
}

#[test]
fn bad_checksum_reports_expected_value() {
    let mut bytes = NS_FRAME;
    bytes[ICMP_OFF + 2..ICMP_OFF + 4].copy_from_slice(&[0x12, 0x34]);
    assert_eq!(
        Frame::parse(&bytes).unwrap_err(),
        WireError::Checksum {
            expected: NS_CHECKSUM,
            found: 0x1234,
        }
    );
    let icmp = Icmpv6Packet::new_checked(&bytes[ICMP_OFF..]).unwrap();
    assert_eq!(
        icmp.verify_checksum(IP6_A, IP6_B_SNM).unwrap_err(),
        WireError::Checksum {
            expected: NS_CHECKSUM,
            found: 0x1234,
        }
    );
    // The message itself still parses: NdpRepr::parse leaves the checksum to the caller.
    assert_eq!(NdpRepr::parse(&icmp).unwrap(), ns_repr());

    // A changed body byte: the expected value is that of the changed message.
    let mut bytes = NA_FRAME;
    bytes[ICMP_OFF + 23] = 0x11; // target 2001:db8::11
    let mut zeroed = bytes[ICMP_OFF..].to_vec();
    zeroed[2..4].fill(0);
    let expected = reference_checksum(IP6_B, IP6_A, &zeroed);
    assert_ne!(expected, NA_CHECKSUM);
    assert_eq!(
        Frame::parse(&bytes).unwrap_err(),
        WireError::Checksum {
            expected,
            found: NA_CHECKSUM,
        }
    );

    // The wrong pseudo-header (another destination) fails too. (Swapping source and
    // destination would not: the sum is commutative.)
    let icmp = Icmpv6Packet::new_checked(&NA_FRAME[ICMP_OFF..]).unwrap();
    assert_eq!(icmp.verify_checksum(IP6_A, IP6_B), Ok(()));
    assert!(matches!(
        icmp.verify_checksum(IP6_B, IP6_B_SNM),
        Err(WireError::Checksum {
            found: NA_CHECKSUM,
            ..
        })
    ));
}

#[test]
fn fill_checksum_writes_reference_value() {
    let mut message = NS_FRAME[ICMP_OFF..].to_vec();
    message[2..4].copy_from_slice(&[0xff, 0xff]);
    let mut packet = Icmpv6Packet::new_checked(&mut message[..]).unwrap();
    packet.fill_checksum(IP6_A, IP6_B_SNM);
    assert_eq!(packet.checksum(), NS_CHECKSUM);
    assert_eq!(message, NS_FRAME[ICMP_OFF..]);
}

/// An NS frame with `options` after the target in place of the SLLA, checksum filled.
fn ns_with_options(options: &[u8]) -> Vec<u8> {
    let mut bytes = NS_FRAME[..ICMP_OFF + MESSAGE_LEN].to_vec();
    bytes.extend_from_slice(options);
    let len = u16::try_from(bytes.len() - ICMP_OFF).unwrap();
    bytes[IP_OFF + 4..IP_OFF + 6].copy_from_slice(&len.to_be_bytes());
    refill_checksum(&mut bytes);
    bytes
}

#[test]
fn option_of_length_zero_is_malformed() {
    let bytes = ns_with_options(&[0x01, 0x00, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x01]);
    let malformed = WireError::Malformed {
        layer: "ndp",
        what: "option with length zero",
    };
    assert_eq!(Frame::parse(&bytes).unwrap_err(), malformed);
    let icmp = Icmpv6Packet::new_checked(&bytes[ICMP_OFF..]).unwrap();
    assert_eq!(NdpRepr::parse(&icmp).unwrap_err(), malformed);

    // The iterator yields the error once and stops.
    let mut options = NdpOptions::new(&bytes[ICMP_OFF + MESSAGE_LEN..]);
    assert_eq!(options.next(), Some(Err(malformed)));
    assert_eq!(options.next(), None);

    // Also after a valid option.
    let bytes = ns_with_options(&[
        0x01, 0x01, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, //
        0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]);
    assert_eq!(Frame::parse(&bytes).unwrap_err(), malformed);
}

#[test]
fn option_running_past_the_end_is_malformed() {
    // Length 2 (16 bytes) but 8 bytes left.
    let bytes = ns_with_options(&[0x01, 0x02, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x01]);
    let malformed = WireError::Malformed {
        layer: "ndp",
        what: "option runs past the end of the message",
    };
    assert_eq!(Frame::parse(&bytes).unwrap_err(), malformed);
    let mut options = NdpOptions::new(&bytes[ICMP_OFF + MESSAGE_LEN..]);
    assert_eq!(options.next(), Some(Err(malformed)));
    assert_eq!(options.next(), None);

    // A lone type octet without its length octet.
    let bytes = ns_with_options(&[0x01]);
    assert_eq!(
        Frame::parse(&bytes).unwrap_err(),
        WireError::Malformed {
            layer: "ndp",
            what: "option header truncated",
        }
    );
    // An option cut short by the IPv6 payload length, even though the buffer holds it.
    let mut bytes = NS_FRAME.to_vec();
    bytes[IP_OFF + 5] = 0x1c; // payload length 28: half the SLLA option
    refill_checksum(&mut bytes[..ICMP_OFF + 28]);
    assert_eq!(Frame::parse(&bytes).unwrap_err(), malformed);
}

#[test]
fn unknown_options_are_skipped() {
    let options = [
        0x0e, 0x01, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, // nonce (RFC 3971), 8 bytes
        0x01, 0x01, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // SLLA
        0xc8, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // unassigned type 200, 16 bytes
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x02, 0x01, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x02, // TLLA: not used in an NS
    ];
    let collected: Vec<_> = NdpOptions::new(&options).collect();
    assert_eq!(
        collected,
        vec![
            Ok(NdpOption::Other {
                kind: 0x0e,
                data: &[0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6],
            }),
            Ok(NdpOption::SourceLinkLayerAddr(MAC_A)),
            Ok(NdpOption::Other {
                kind: 200,
                data: &[0; 14],
            }),
            Ok(NdpOption::TargetLinkLayerAddr(MAC_B)),
        ]
    );

    let bytes = ns_with_options(&options);
    let frame = Frame::parse(&bytes).unwrap();
    let Frame::Ndp { ipv6, ndp, .. } = frame else {
        panic!("NS with unknown options did not parse as NDP");
    };
    assert_eq!(ndp, ns_repr());
    assert_eq!(ipv6.payload_len, 24 + 40);
    // Re-emitting drops the options the value does not hold and fixes the payload length.
    assert_eq!(frame.to_bytes(), NS_FRAME);
}

#[test]
fn first_link_layer_option_wins() {
    let bytes = ns_with_options(&[
        0x01, 0x01, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, //
        0x01, 0x01, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x02,
    ]);
    let Frame::Ndp { ndp, .. } = Frame::parse(&bytes).unwrap() else {
        panic!("NS with two SLLAs did not parse as NDP");
    };
    assert_eq!(ndp, ns_repr());
}

#[test]
fn empty_option_list() {
    assert_eq!(NdpOptions::new(&[]).next(), None);
}

#[test]
fn nonzero_code_is_malformed() {
    for frame in [NS_FRAME, NA_FRAME] {
        let mut bytes = frame;
        bytes[ICMP_OFF + 1] = 1;
        refill_checksum(&mut bytes);
        assert_eq!(
            Frame::parse(&bytes).unwrap_err(),
            WireError::Malformed {
                layer: "ndp",
                what: "code is not 0",
            }
        );
    }
}

#[test]
fn multicast_target_is_malformed() {
    for frame in [NS_FRAME, NA_FRAME] {
        let mut bytes = frame;
        bytes[ICMP_OFF + 8..ICMP_OFF + 24].copy_from_slice(&IP6_B_SNM.octets());
        refill_checksum(&mut bytes);
        assert_eq!(
            Frame::parse(&bytes).unwrap_err(),
            WireError::Malformed {
                layer: "ndp",
                what: "target address is multicast",
            }
        );
    }
}

#[test]
fn other_icmpv6_types_are_unsupported() {
    // Router Solicitation (133), Router Advertisement (134), Redirect (137), Echo Request (128).
    for msg_type in [133u8, 134, 137, 128, 0, 255] {
        let mut bytes = NS_FRAME;
        bytes[ICMP_OFF] = msg_type;
        refill_checksum(&mut bytes);
        assert_eq!(
            Frame::parse(&bytes).unwrap_err(),
            WireError::Unsupported {
                layer: "ndp",
                what: "ICMPv6 type other than Neighbor Solicitation or Advertisement",
            },
            "type {msg_type}"
        );
    }
}

#[test]
fn ndp_message_shorter_than_24_bytes_is_truncated() {
    let icmp = Icmpv6Packet::new_checked(&NS_FRAME[ICMP_OFF..ICMP_OFF + 23]).unwrap();
    assert_eq!(
        NdpRepr::parse(&icmp).unwrap_err(),
        WireError::Truncated {
            layer: "ndp",
            needed: 24,
            available: 23,
        }
    );
    assert_eq!(
        Icmpv6Packet::new_checked(&NS_FRAME[ICMP_OFF..ICMP_OFF + 3]).unwrap_err(),
        WireError::Truncated {
            layer: "icmpv6",
            needed: 4,
            available: 3,
        }
    );
    // Through a frame: payload length 4 (header only), checksum correct.
    let mut bytes = NS_FRAME[..ICMP_OFF + 4].to_vec();
    bytes[IP_OFF + 5] = 4;
    refill_checksum(&mut bytes);
    assert_eq!(
        Frame::parse(&bytes).unwrap_err(),
        WireError::Truncated {
            layer: "ndp",
            needed: 24,
            available: 4,
        }
    );
    // The frame cut short of its declared payload length.
    assert_eq!(
        Frame::parse(&NS_FRAME[..85]).unwrap_err(),
        WireError::Truncated {
            layer: "ipv6",
            needed: 72,
            available: 71,
        }
    );
}

#[test]
fn ndp_frame_with_trailing_bytes_parses() {
    let mut bytes = NS_FRAME.to_vec();
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(Frame::parse(&bytes).unwrap(), ns_frame_value());
}

#[test]
fn ipv6_frame_other_next_header_is_unsupported() {
    let mut bytes = NS_FRAME;
    bytes[IP_OFF + 6] = 17; // UDP
    assert_eq!(
        Frame::parse(&bytes).unwrap_err(),
        WireError::Unsupported {
            layer: "ipv6",
            what: "next header other than ICMPv6",
        }
    );
    let mut bytes = NS_FRAME;
    bytes[IP_OFF] = 0x40;
    assert_eq!(
        Frame::parse(&bytes).unwrap_err(),
        WireError::Malformed {
            layer: "ipv6",
            what: "version is not 6",
        }
    );
    let mut bytes = NS_FRAME;
    bytes[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(
        Frame::parse(&bytes).unwrap_err(),
        WireError::Unsupported {
            layer: "ethernet",
            what: "EtherType other than ARP or IPv6",
        }
    );
}

#[test]
fn ndp_emit_too_small() {
    let mut buf = [0u8; 31];
    assert_eq!(
        ns_repr().emit(IP6_A, IP6_B_SNM, &mut buf).unwrap_err(),
        WireError::BufferTooSmall {
            layer: "ndp",
            needed: 32,
            available: 31,
        }
    );
    let mut buf = [0u8; 23];
    assert_eq!(
        NdpRepr::NeighborSolicit {
            target_addr: IP6_B,
            source_lladdr: None,
        }
        .emit(IP6_A, IP6_B_SNM, &mut buf)
        .unwrap_err(),
        WireError::BufferTooSmall {
            layer: "ndp",
            needed: 24,
            available: 23,
        }
    );
    let mut buf = [0u8; 85];
    assert_eq!(
        na_frame_value().emit(&mut buf).unwrap_err(),
        WireError::BufferTooSmall {
            layer: "frame",
            needed: 86,
            available: 85,
        }
    );
    assert_eq!(buf, [0; 85], "a failed emit writes nothing");
}

#[test]
fn frame_emit_into_larger_buffer_and_fixes_payload_len() {
    let mut value = na_frame_value();
    if let Frame::Ndp { ipv6, .. } = &mut value {
        ipv6.payload_len = 999;
    }
    let mut buf = [0x55u8; 100];
    value.emit(&mut buf).unwrap();
    assert_eq!(buf[..86], NA_FRAME);
    assert_eq!(buf[86..], [0x55; 14]);
    assert_eq!(value.ethernet().src_addr, MAC_B);
}

#[test]
fn ndp_emit_overwrites_stale_bytes() {
    let mut buf = [0xffu8; 32];
    na_repr().emit(IP6_B, IP6_A, &mut buf).unwrap();
    assert_eq!(buf, NA_FRAME[ICMP_OFF..]);
}

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

#[test]
fn ethernet_address_display() {
    assert_eq!(MAC_A.to_string(), "00:00:5e:00:53:01");
    assert_eq!(EthernetAddress::BROADCAST.to_string(), "ff:ff:ff:ff:ff:ff");
    assert_eq!(EthernetAddress::ZERO.to_string(), "00:00:00:00:00:00");
    assert_eq!(
        EthernetAddress([0x0a, 0xb0, 0xc1, 0xd2, 0xe3, 0xf4]).to_string(),
        "0a:b0:c1:d2:e3:f4"
    );
}

#[test]
fn ethernet_address_parse() {
    assert_eq!(
        "00:00:5e:00:53:01".parse::<EthernetAddress>().unwrap(),
        MAC_A
    );
    assert_eq!(
        "00:00:5E:00:53:0A".parse::<EthernetAddress>().unwrap(),
        EthernetAddress([0x00, 0x00, 0x5e, 0x00, 0x53, 0x0a])
    );
    assert_eq!(
        "ff:ff:ff:ff:ff:ff".parse::<EthernetAddress>().unwrap(),
        EthernetAddress::BROADCAST
    );
    // One-digit groups are accepted (as `ip link` prints none but accepts them).
    assert_eq!("0:0:5e:0:53:1".parse::<EthernetAddress>().unwrap(), MAC_A);
    // Display output parses back.
    for mac in [
        MAC_A,
        MAC_B,
        EthernetAddress::BROADCAST,
        EthernetAddress::ZERO,
    ] {
        assert_eq!(mac.to_string().parse::<EthernetAddress>().unwrap(), mac);
    }
}

#[test]
fn ethernet_address_parse_rejects_bad_strings() {
    for bad in [
        "",
        ":",
        "00:00:5e:00:53",
        "00:00:5e:00:53:01:02",
        "00:00:5e:00:53:",
        ":00:00:5e:00:53:01",
        "00:00:5e::53:01",
        "00:00:5e:00:53:1g",
        "000:00:5e:00:53:01",
        "00:00:5e:00:53:001",
        "00-00-5e-00-53-01",
        "0000.5e00.5301",
        "00005e005301",
        " 00:00:5e:00:53:01",
        "00:00:5e:00:53:01 ",
        "00:00:5e:00:53:01:",
        "-1:00:5e:00:53:01",
        "00:00:5e:00:53:0x",
        "00:00:5e:00:53:é",
    ] {
        let err = bad.parse::<EthernetAddress>().unwrap_err();
        assert_eq!(err.0, bad, "error carries the input");
        assert!(err.to_string().contains("invalid MAC address"), "{err}");
    }
}

/// `u8::from_str_radix` accepts a leading `+`, so a group like `+1` must be refused before it
/// is reached.
#[test]
fn ethernet_address_parse_rejects_plus_sign() {
    for bad in [
        "+0:00:5e:00:53:01",
        "00:00:5e:00:53:+1",
        "+a:+b:+c:+d:+e:+f",
    ] {
        assert!(
            bad.parse::<EthernetAddress>().is_err(),
            "{bad:?} parsed as {:?}",
            bad.parse::<EthernetAddress>()
        );
    }
}

#[test]
fn ethernet_address_classes() {
    assert!(EthernetAddress::BROADCAST.is_broadcast());
    assert!(EthernetAddress::BROADCAST.is_multicast());
    assert!(!EthernetAddress::BROADCAST.is_unicast());
    assert!(EthernetAddress([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
    assert!(!EthernetAddress([0x33, 0x33, 0, 0, 0, 1]).is_broadcast());
    assert!(MAC_A.is_unicast());
    assert!(!MAC_A.is_multicast());
    assert!(!EthernetAddress::ZERO.is_unicast());
    assert!(!EthernetAddress::ZERO.is_multicast());
    assert_eq!(MAC_A.as_bytes(), &[0x00, 0x00, 0x5e, 0x00, 0x53, 0x01]);
}

#[test]
fn solicited_node_groups() {
    let cases = [
        ("2001:db8::1:2:3", "ff02::1:ff02:3"),
        ("2001:db8::10", "ff02::1:ff00:10"),
        ("2001:db8::abcd:ef12:3456", "ff02::1:ff12:3456"),
        ("fe80::200:5eff:fe00:5301", "ff02::1:ff00:5301"),
        ("::", "ff02::1:ff00:0"),
        (
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "ff02::1:ffff:ffff",
        ),
    ];
    for (addr, group) in cases {
        let addr: Ipv6Addr = addr.parse().unwrap();
        let group: Ipv6Addr = group.parse().unwrap();
        assert_eq!(solicited_node(addr), group, "{addr}");
        assert!(is_solicited_node(group), "{group}");
        assert!(!is_solicited_node(addr), "{addr}");
    }
    assert!(!is_solicited_node("ff02::1".parse().unwrap()));
    assert!(!is_solicited_node("ff02::2:ff00:1".parse().unwrap()));
    assert!(!is_solicited_node("ff05::1:ff00:1".parse().unwrap()));
}

#[test]
fn ipv6_multicast_mac_mapping() {
    let cases = [
        ("ff02::1", [0x33, 0x33, 0x00, 0x00, 0x00, 0x01]),
        ("ff02::1:ff00:10", [0x33, 0x33, 0xff, 0x00, 0x00, 0x10]),
        ("ff02::1:ff02:3", [0x33, 0x33, 0xff, 0x02, 0x00, 0x03]),
        ("ff05::1:3", [0x33, 0x33, 0x00, 0x01, 0x00, 0x03]),
        ("ff0e::db8:1234:5678", [0x33, 0x33, 0x12, 0x34, 0x56, 0x78]),
    ];
    for (group, mac) in cases {
        let group: Ipv6Addr = group.parse().unwrap();
        let got = EthernetAddress::ipv6_multicast(group);
        assert_eq!(got, EthernetAddress(mac), "{group}");
        assert!(got.is_multicast(), "{group}");
    }
    assert_eq!(
        EthernetAddress::ipv6_multicast(solicited_node(IP6_B)).to_string(),
        "33:33:ff:00:00:10"
    );
}

// ---------------------------------------------------------------------------------------------
// Unchecked views over short buffers
// ---------------------------------------------------------------------------------------------

#[test]
fn unchecked_views_over_empty_buffers_read_zero() {
    let empty: &[u8] = &[];
    let eth = EthernetFrame::new_unchecked(empty);
    assert_eq!(eth.dst_addr(), EthernetAddress::ZERO);
    assert_eq!(eth.src_addr(), EthernetAddress::ZERO);
    assert_eq!(eth.ethertype(), EtherType(0));
    assert!(eth.payload().is_empty());

    let arp = ArpPacket::new_unchecked(empty);
    assert_eq!(arp.hardware_type(), 0);
    assert_eq!(arp.operation(), ArpOperation::Unknown(0));
    assert_eq!(arp.target_protocol_addr(), Ipv4Addr::UNSPECIFIED);

    let ip = Ipv6Packet::new_unchecked(empty);
    assert_eq!(ip.version(), 0);
    assert_eq!(ip.dst_addr(), Ipv6Addr::UNSPECIFIED);
    assert!(ip.payload().is_empty());

    let icmp = Icmpv6Packet::new_unchecked(empty);
    assert_eq!(icmp.msg_type(), 0);
    assert_eq!(icmp.checksum(), 0);
    assert!(icmp.body().is_empty());
    // Type 0 and no bytes: refused (as unsupported or truncated, whichever is checked first).
    assert!(matches!(
        NdpRepr::parse(&icmp),
        Err(WireError::Unsupported { layer: "ndp", .. } | WireError::Truncated { layer: "ndp", .. })
    ));

    // Writes past the end are ignored.
    let mut short = [0u8; 3];
    let mut eth = EthernetFrame::new_unchecked(&mut short[..]);
    eth.set_src_addr(MAC_A);
    eth.set_ethertype(EtherType::ARP);
    assert!(eth.payload_mut().is_empty());
    let mut arp = ArpPacket::new_unchecked(&mut short[..]);
    arp.set_target_protocol_addr(IP4_A);
    let mut icmp = Icmpv6Packet::new_unchecked(&mut short[..]);
    icmp.fill_checksum(IP6_A, IP6_B);
    assert_eq!(short, [0; 3]);
}
