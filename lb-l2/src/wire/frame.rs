//! Whole frames: the ARP and Neighbor Discovery messages this crate receives and sends, each
//! parsed from or emitted into one Ethernet frame.

use super::icmpv6::Icmpv6Packet;
use super::ipv6::NEXT_HEADER_ICMPV6;
use super::{
    ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Ipv6Packet,
    Ipv6Repr, NdpRepr, WireError,
};
use std::net::Ipv6Addr;

/// The hop limit every Neighbor Discovery message is sent with and must arrive with
/// (RFC 4861 §7.1): a message that crossed a router has a lower one and is discarded.
pub const NDP_HOP_LIMIT: u8 = 255;

/// A parsed ARP or Neighbor Discovery frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frame {
    /// An ARP packet.
    Arp {
        /// Ethernet header.
        ethernet: EthernetRepr,
        /// ARP packet.
        arp: ArpRepr,
    },
    /// A Neighbor Solicitation or Advertisement.
    Ndp {
        /// Ethernet header.
        ethernet: EthernetRepr,
        /// IPv6 header (`payload_len` is the NDP message's length).
        ipv6: Ipv6Repr,
        /// The message.
        ndp: NdpRepr,
    },
}

impl Frame {
    /// Parses a frame: Ethernet, then ARP or IPv6 + ICMPv6 (checksum verified) + NDP. Other
    /// EtherTypes, IPv6 next headers and ICMPv6 types are [`WireError::Unsupported`].
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let frame = EthernetFrame::new_checked(bytes)?;
        let ethernet = EthernetRepr::parse(&frame)?;
        match ethernet.ethertype {
            EtherType::ARP => {
                let packet = ArpPacket::new_checked(frame.payload())?;
                Ok(Self::Arp {
                    ethernet,
                    arp: ArpRepr::parse(&packet)?,
                })
            }
            EtherType::IPV6 => {
                let packet = Ipv6Packet::new_checked(frame.payload())?;
                let ipv6 = Ipv6Repr::parse(&packet)?;
                if ipv6.next_header != NEXT_HEADER_ICMPV6 {
                    return Err(WireError::Unsupported {
                        layer: "ipv6",
                        what: "next header other than ICMPv6",
                    });
                }
                let icmp = Icmpv6Packet::new_checked(packet.payload())?;
                icmp.verify_checksum(ipv6.src_addr, ipv6.dst_addr)?;
                let ndp = NdpRepr::parse(&icmp)?;
                Ok(Self::Ndp {
                    ethernet,
                    ipv6,
                    ndp,
                })
            }
            _ => Err(WireError::Unsupported {
                layer: "ethernet",
                what: "EtherType other than ARP or IPv6",
            }),
        }
    }

    /// The Ethernet header.
    pub fn ethernet(&self) -> &EthernetRepr {
        match self {
            Self::Arp { ethernet, .. } | Self::Ndp { ethernet, .. } => ethernet,
        }
    }

    /// Bytes the frame takes.
    pub fn buffer_len(&self) -> usize {
        EthernetFrame::<&[u8]>::HEADER_LEN
            + match self {
                Self::Arp { arp, .. } => arp.buffer_len(),
                Self::Ndp { ipv6, ndp, .. } => ipv6.buffer_len() + ndp.buffer_len(),
            }
    }

    /// Writes the frame at the start of `buf`. For NDP, the IPv6 payload length is the
    /// message's length whatever `ipv6.payload_len` says, and the ICMPv6 checksum is computed.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(WireError::BufferTooSmall {
                layer: "frame",
                needed: len,
                available: buf.len(),
            });
        }
        let ethernet = self.ethernet();
        ethernet.emit(buf)?;
        let payload = buf
            .get_mut(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .unwrap_or(&mut []);
        match self {
            Self::Arp { arp, .. } => arp.emit(payload),
            Self::Ndp { ipv6, ndp, .. } => {
                let header = Ipv6Repr {
                    payload_len: u16::try_from(ndp.buffer_len()).unwrap_or(u16::MAX),
                    ..*ipv6
                };
                header.emit(payload)?;
                let message = payload
                    .get_mut(Ipv6Packet::<&[u8]>::HEADER_LEN..)
                    .unwrap_or(&mut []);
                ndp.emit(ipv6.src_addr, ipv6.dst_addr, message)
            }
        }
    }

    /// The frame as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0; self.buffer_len()];
        // The buffer has exactly the length emit needs, so it cannot fail.
        let _ = self.emit(&mut buf);
        buf
    }
}

/// An ARP packet in an Ethernet frame from `src` to `dst`.
pub fn arp_frame(src: EthernetAddress, dst: EthernetAddress, arp: ArpRepr) -> Vec<u8> {
    Frame::Arp {
        ethernet: EthernetRepr {
            src_addr: src,
            dst_addr: dst,
            ethertype: EtherType::ARP,
        },
        arp,
    }
    .to_bytes()
}

/// A Neighbor Discovery message in IPv6 (hop limit 255) in an Ethernet frame.
pub fn ndp_frame(
    (src_mac, dst_mac): (EthernetAddress, EthernetAddress),
    (src_ip, dst_ip): (Ipv6Addr, Ipv6Addr),
    ndp: NdpRepr,
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
            payload_len: u16::try_from(ndp.buffer_len()).unwrap_or(u16::MAX),
            hop_limit: NDP_HOP_LIMIT,
        },
        ndp,
    }
    .to_bytes()
}
