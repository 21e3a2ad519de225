#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Property tests for the `wire` codecs: arbitrary values round-trip through their frames,
//! no parser panics on arbitrary or mutated bytes, and a changed byte in the ICMPv6 part of a
//! Neighbor Discovery frame never goes unnoticed.

use std::net::{Ipv4Addr, Ipv6Addr};

use lb_l2::wire::icmpv6::checksum;
use lb_l2::wire::ipv6::NEXT_HEADER_ICMPV6;
use lb_l2::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Frame, Icmpv6Packet, Ipv6Packet, Ipv6Repr, NdpOptions, NdpRepr, NeighborFlags, WireError,
    arp_frame, ndp_frame,
};
use proptest::prelude::*;

/// Offset of the ICMPv6 message in an Ethernet + IPv6 frame.
const ICMP_OFF: usize = 14 + 40;

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn unicast_ipv6() -> impl Strategy<Value = Ipv6Addr> {
    ipv6().prop_filter("NDP targets are not multicast", |a| !a.is_multicast())
}

fn arp_operation() -> impl Strategy<Value = ArpOperation> {
    prop_oneof![
        Just(ArpOperation::Request),
        Just(ArpOperation::Reply),
        any::<u16>().prop_map(ArpOperation::from),
    ]
}

fn arp_repr() -> impl Strategy<Value = ArpRepr> {
    (arp_operation(), mac(), ipv4(), mac(), ipv4()).prop_map(|(op, sha, spa, tha, tpa)| ArpRepr {
        operation: op,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    })
}

fn flags() -> impl Strategy<Value = NeighborFlags> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(router, solicited, override_)| {
        NeighborFlags {
            router,
            solicited,
            override_,
        }
    })
}

fn ndp_repr() -> impl Strategy<Value = NdpRepr> {
    prop_oneof![
        (unicast_ipv6(), proptest::option::of(mac())).prop_map(|(target_addr, source_lladdr)| {
            NdpRepr::NeighborSolicit {
                target_addr,
                source_lladdr,
            }
        }),
        (flags(), unicast_ipv6(), proptest::option::of(mac())).prop_map(
            |(flags, target_addr, target_lladdr)| NdpRepr::NeighborAdvert {
                flags,
                target_addr,
                target_lladdr,
            }
        ),
    ]
}

/// The arguments of [`ndp_frame`]: (source, destination) MACs and IPs, and the message.
type NdpParts = (
    (EthernetAddress, EthernetAddress),
    (Ipv6Addr, Ipv6Addr),
    NdpRepr,
);

/// Any NDP frame this crate can emit.
fn ndp_parts() -> impl Strategy<Value = NdpParts> {
    ((mac(), mac()), (ipv6(), ipv6()), ndp_repr())
}

fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (mac(), mac(), arp_repr()).prop_map(|(src, dst, arp)| arp_frame(src, dst, arp)),
        ndp_parts().prop_map(|(macs, ips, ndp)| ndp_frame(macs, ips, ndp)),
    ]
}

/// Arbitrary bytes, half of them behind an Ethernet header with the ARP or IPv6 EtherType
/// (and for IPv6 a plausible version nibble) so the deeper parsers get exercised.
fn frame_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..128),
        (
            any::<[u8; 12]>(),
            prop_oneof![Just([0x08u8, 0x06]), Just([0x86, 0xdd])],
            proptest::collection::vec(any::<u8>(), 0..128),
        )
            .prop_map(|(addrs, ethertype, mut rest)| {
                if ethertype == [0x86, 0xdd] {
                    if let Some(first) = rest.first_mut() {
                        *first = 0x60 | (*first & 0x0f);
                    }
                    // A small payload length, often matching what follows.
                    if rest.len() >= 7 {
                        let len = u16::try_from(rest.len().saturating_sub(40) % 256).unwrap();
                        rest[4..6].copy_from_slice(&len.to_be_bytes());
                        rest[6] = NEXT_HEADER_ICMPV6;
                    }
                }
                let mut bytes = addrs.to_vec();
                bytes.extend_from_slice(&ethertype);
                bytes.extend_from_slice(&rest);
                bytes
            }),
    ]
}

/// Runs every parser and getter over `bytes`; the test fails if any panics.
fn exercise_all_parsers(bytes: &[u8]) {
    let _ = Frame::parse(bytes);

    let eth = EthernetFrame::new_unchecked(bytes);
    let _ = (
        eth.dst_addr(),
        eth.src_addr(),
        eth.ethertype(),
        eth.payload(),
    );
    if let Ok(eth) = EthernetFrame::new_checked(bytes) {
        let _ = EthernetRepr::parse(&eth).unwrap();
    }
    let _ = EthernetRepr::parse(&eth);

    let arp = ArpPacket::new_unchecked(bytes);
    let _ = (
        arp.hardware_type(),
        arp.protocol_type(),
        arp.hardware_len(),
        arp.protocol_len(),
        arp.operation(),
        arp.source_hardware_addr(),
        arp.source_protocol_addr(),
        arp.target_hardware_addr(),
        arp.target_protocol_addr(),
    );
    let _ = ArpRepr::parse(&arp);
    if let Ok(arp) = ArpPacket::new_checked(bytes) {
        let _ = ArpRepr::parse(&arp);
    }

    let ip = Ipv6Packet::new_unchecked(bytes);
    let _ = (
        ip.version(),
        ip.traffic_class(),
        ip.flow_label(),
        ip.payload_len(),
        ip.next_header(),
        ip.hop_limit(),
        ip.src_addr(),
        ip.dst_addr(),
        ip.payload(),
    );
    let _ = Ipv6Repr::parse(&ip);
    if let Ok(ip) = Ipv6Packet::new_checked(bytes) {
        assert_eq!(ip.payload().len(), usize::from(ip.payload_len()));
        let _ = Ipv6Repr::parse(&ip);
    }

    let icmp = Icmpv6Packet::new_unchecked(bytes);
    let _ = (
        icmp.msg_type(),
        icmp.msg_code(),
        icmp.checksum(),
        icmp.body(),
    );
    let _ = icmp.verify_checksum(Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST);
    let _ = NdpRepr::parse(&icmp);
    if let Ok(icmp) = Icmpv6Packet::new_checked(bytes) {
        let _ = NdpRepr::parse(&icmp);
    }

    let _ = NdpOptions::new(bytes).count();
}

/// The IPv6 source and destination of an Ethernet + IPv6 frame.
fn ndp_addrs(bytes: &[u8]) -> (Ipv6Addr, Ipv6Addr) {
    let ip = Ipv6Packet::new_checked(&bytes[14..]).unwrap();
    (ip.src_addr(), ip.dst_addr())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arp_frames_round_trip(src in mac(), dst in mac(), arp in arp_repr()) {
        let bytes = arp_frame(src, dst, arp);
        prop_assert_eq!(bytes.len(), 42);
        let expected = Frame::Arp {
            ethernet: EthernetRepr { src_addr: src, dst_addr: dst, ethertype: EtherType::ARP },
            arp,
        };
        prop_assert_eq!(Frame::parse(&bytes), Ok(expected));
        prop_assert_eq!(&expected.to_bytes(), &bytes);

        // The ARP packet on its own.
        let packet = ArpPacket::new_checked(&bytes[14..]).unwrap();
        prop_assert_eq!(ArpRepr::parse(&packet), Ok(arp));
        let mut buf = [0u8; 28];
        arp.emit(&mut buf).unwrap();
        prop_assert_eq!(&buf[..], &bytes[14..]);

        // Ethernet padding to any length is ignored.
        let mut padded = bytes;
        padded.resize(60, 0);
        prop_assert_eq!(Frame::parse(&padded), Ok(expected));
    }

    #[test]
    fn ndp_frames_round_trip(((src_mac, dst_mac), (src_ip, dst_ip), ndp) in ndp_parts()) {
        let bytes = ndp_frame((src_mac, dst_mac), (src_ip, dst_ip), ndp);
        prop_assert_eq!(bytes.len(), ICMP_OFF + ndp.buffer_len());
        let expected = Frame::Ndp {
            ethernet: EthernetRepr {
                src_addr: src_mac,
                dst_addr: dst_mac,
                ethertype: EtherType::IPV6,
            },
            ipv6: Ipv6Repr {
                src_addr: src_ip,
                dst_addr: dst_ip,
                next_header: NEXT_HEADER_ICMPV6,
                payload_len: u16::try_from(ndp.buffer_len()).unwrap(),
                hop_limit: 255,
            },
            ndp,
        };
        prop_assert_eq!(Frame::parse(&bytes), Ok(expected));
        prop_assert_eq!(&expected.to_bytes(), &bytes);

        // The message alone, and its checksum.
        let icmp = Icmpv6Packet::new_checked(&bytes[ICMP_OFF..]).unwrap();
        prop_assert_eq!(icmp.verify_checksum(src_ip, dst_ip), Ok(()));
        prop_assert_eq!(checksum(src_ip, dst_ip, &bytes[ICMP_OFF..]), 0);
        prop_assert_eq!(NdpRepr::parse(&icmp), Ok(ndp));
        let mut message = vec![0u8; ndp.buffer_len()];
        ndp.emit(src_ip, dst_ip, &mut message).unwrap();
        prop_assert_eq!(&message[..], &bytes[ICMP_OFF..]);
    }

    #[test]
    fn ipv6_headers_round_trip(
        src_addr in ipv6(),
        dst_addr in ipv6(),
        next_header in any::<u8>(),
        payload_len in any::<u16>(),
        hop_limit in any::<u8>(),
        extra in 0usize..8,
    ) {
        let repr = Ipv6Repr { src_addr, dst_addr, next_header, payload_len, hop_limit };
        let mut buf = vec![0xa5u8; 40 + usize::from(payload_len) + extra];
        repr.emit(&mut buf).unwrap();
        let packet = Ipv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(packet.version(), 6);
        prop_assert_eq!(packet.traffic_class(), 0);
        prop_assert_eq!(packet.flow_label(), 0);
        prop_assert_eq!(packet.payload().len(), usize::from(payload_len));
        prop_assert_eq!(Ipv6Repr::parse(&packet), Ok(repr));
        let mut again = [0u8; 40];
        Ipv6Repr::parse(&packet).unwrap().emit(&mut again).unwrap();
        prop_assert_eq!(&again[..], &buf[..40]);
        if payload_len > 0 {
            let short = &buf[..40 + usize::from(payload_len) - 1];
            prop_assert_eq!(
                Ipv6Packet::new_checked(short).err(),
                Some(WireError::Truncated {
                    layer: "ipv6",
                    needed: 40 + usize::from(payload_len),
                    available: 39 + usize::from(payload_len),
                })
            );
        }
    }

    #[test]
    fn ethernet_headers_round_trip(src in mac(), dst in mac(), ethertype in any::<u16>()) {
        let repr = EthernetRepr { src_addr: src, dst_addr: dst, ethertype: EtherType(ethertype) };
        let mut buf = [0u8; 14];
        repr.emit(&mut buf).unwrap();
        let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&frame), Ok(repr));
    }

    #[test]
    fn mac_display_parses_back(mac in mac()) {
        prop_assert_eq!(mac.to_string().parse::<EthernetAddress>(), Ok(mac));
        prop_assert_eq!(mac.to_string().len(), 17);
    }

    #[test]
    fn mac_parse_never_panics(s in "\\PC{0,24}") {
        let _ = s.parse::<EthernetAddress>();
    }

    #[test]
    fn mac_parse_of_hexish_strings_matches_display(s in "[0-9a-fA-F:+ -]{0,20}") {
        // Whatever parses displays as the canonical form of the same bytes.
        if let Ok(mac) = s.parse::<EthernetAddress>() {
            prop_assert_eq!(mac.to_string().parse::<EthernetAddress>(), Ok(mac));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        exercise_all_parsers(&bytes);
    }

    #[test]
    fn frame_like_bytes_never_panic(bytes in frame_like_bytes()) {
        exercise_all_parsers(&bytes);
        if bytes.len() >= 14 {
            exercise_all_parsers(&bytes[14..]);
        }
        if bytes.len() >= ICMP_OFF {
            exercise_all_parsers(&bytes[ICMP_OFF..]);
        }
    }

    #[test]
    fn ndp_options_iteration_terminates(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let mut items = 0usize;
        let mut errors = 0usize;
        for item in NdpOptions::new(&bytes) {
            items += 1;
            if item.is_err() {
                errors += 1;
            }
            // Every option takes at least 8 bytes, and an error ends the iteration.
            prop_assert!(items <= bytes.len() / 8 + 1);
        }
        prop_assert!(errors <= 1);
        let mut options = NdpOptions::new(&bytes);
        while let Some(item) = options.next() {
            if item.is_err() {
                prop_assert!(options.next().is_none());
                break;
            }
        }
    }

    #[test]
    fn unchecked_views_over_short_buffers(len in 0usize..64, fill in any::<u8>()) {
        let mut buf = vec![fill; len];
        exercise_all_parsers(&buf);

        // A field entirely past the end reads as zero.
        let eth = EthernetFrame::new_unchecked(&buf[..]);
        if len <= 12 {
            prop_assert_eq!(eth.ethertype(), EtherType(0));
        }
        let ip = Ipv6Packet::new_unchecked(&buf[..]);
        if len <= 24 {
            prop_assert_eq!(ip.dst_addr(), Ipv6Addr::UNSPECIFIED);
        }
        let arp = ArpPacket::new_unchecked(&buf[..]);
        if len <= 24 {
            prop_assert_eq!(arp.target_protocol_addr(), Ipv4Addr::UNSPECIFIED);
        }

        // Setters never panic, and never write past the end (the length is unchanged).
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_dst_addr(EthernetAddress::BROADCAST);
        eth.set_src_addr(EthernetAddress::BROADCAST);
        eth.set_ethertype(EtherType::IPV6);
        let _ = eth.payload_mut().len();
        let mut arp = ArpPacket::new_unchecked(&mut buf[..]);
        arp.set_source_hardware_addr(EthernetAddress::BROADCAST);
        arp.set_source_protocol_addr(Ipv4Addr::BROADCAST);
        arp.set_target_hardware_addr(EthernetAddress::BROADCAST);
        arp.set_target_protocol_addr(Ipv4Addr::BROADCAST);
        let mut ip = Ipv6Packet::new_unchecked(&mut buf[..]);
        let _ = ip.payload_mut().len();
        let mut icmp = Icmpv6Packet::new_unchecked(&mut buf[..]);
        icmp.fill_checksum(Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST);
        prop_assert_eq!(buf.len(), len);
    }

    #[test]
    fn emit_into_short_buffers_fails_cleanly(
        arp in arp_repr(),
        ndp in ndp_repr(),
        cut in 1usize..=14,
    ) {
        let mut buf = vec![0u8; arp.buffer_len() - cut.min(arp.buffer_len())];
        prop_assert!(
            matches!(arp.emit(&mut buf), Err(WireError::BufferTooSmall { .. })),
            "arp into {} bytes", buf.len()
        );
        let mut buf = vec![0u8; ndp.buffer_len() - cut];
        prop_assert!(
            matches!(
                ndp.emit(Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST, &mut buf),
                Err(WireError::BufferTooSmall { .. })
            ),
            "ndp into {} bytes", buf.len()
        );
        prop_assert!(buf.iter().all(|&b| b == 0), "failed emit wrote bytes");
    }

    #[test]
    fn fixing_the_reported_checksum_makes_it_verify(
        bytes in proptest::collection::vec(any::<u8>(), 4..96),
        src in ipv6(),
        dst in ipv6(),
    ) {
        let mut bytes = bytes;
        let icmp = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        let verified = icmp.verify_checksum(src, dst);
        if verified.is_ok() {
            prop_assert_eq!(checksum(src, dst, &bytes), 0);
        } else if let Err(WireError::Checksum { expected, found }) = verified {
            prop_assert_eq!(found, u16::from_be_bytes([bytes[2], bytes[3]]));
            prop_assert_ne!(expected, found);
            bytes[2..4].copy_from_slice(&expected.to_be_bytes());
            let fixed = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(fixed.verify_checksum(src, dst), Ok(()));
        } else {
            prop_assert!(verified.is_ok(), "unexpected error {:?}", verified);
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        bytes in valid_frame(),
        index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mut mutated = bytes;
        let i = index.index(mutated.len());
        mutated[i] ^= mask;
        exercise_all_parsers(&mutated);
        // Whatever still parses re-emits to a frame that parses to the same value.
        if let Ok(frame) = Frame::parse(&mutated) {
            let again = frame.to_bytes();
            prop_assert_eq!(Frame::parse(&again), Ok(frame));
        }
    }

    #[test]
    fn flipped_icmpv6_byte_is_detected(
        parts in ndp_parts(),
        index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let (macs, ips, ndp) = parts;
        let bytes = ndp_frame(macs, ips, ndp);
        let icmp_len = bytes.len() - ICMP_OFF;
        let i = ICMP_OFF + index.index(icmp_len);
        let mut mutated = bytes.clone();
        mutated[i] ^= mask;
        prop_assert_ne!(&mutated, &bytes);
        let result = Frame::parse(&mutated);
        prop_assert!(result.is_err(), "byte {} ^ {:#04x} went unnoticed: {:?}", i, mask, result);
        // The message alone fails its checksum whatever else is wrong with it.
        let (src, dst) = ndp_addrs(&mutated);
        let icmp = Icmpv6Packet::new_checked(&mutated[ICMP_OFF..]).unwrap();
        let verified = icmp.verify_checksum(src, dst);
        prop_assert!(
            matches!(verified, Err(WireError::Checksum { .. })),
            "byte {} ^ {:#04x}: {:?}", i, mask, verified
        );
    }

    #[test]
    fn flipped_ipv6_address_byte_is_detected(
        parts in ndp_parts(),
        offset in 0usize..32,
        mask in 1u8..=255,
    ) {
        // Source and destination are in the pseudo-header, so the checksum covers them.
        let (macs, ips, ndp) = parts;
        let mut mutated = ndp_frame(macs, ips, ndp);
        mutated[14 + 8 + offset] ^= mask;
        prop_assert!(
            matches!(Frame::parse(&mutated), Err(WireError::Checksum { .. })),
            "address byte {} ^ {:#04x}", offset, mask
        );
    }
}
