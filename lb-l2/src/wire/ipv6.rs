//! The fixed IPv6 header (RFC 8200 §3). Extension headers are not walked: Neighbor Discovery
//! messages carry none, and the next-header value is reported as found.

use std::net::Ipv6Addr;

use super::{WireError, check_len, check_out, read, read_u8, read_u16, write};

/// The ICMPv6 next-header value.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// The solicited-node multicast group of `addr` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX with the
/// address's last 24 bits.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// True when `addr` is a solicited-node multicast group.
pub fn is_solicited_node(addr: Ipv6Addr) -> bool {
    let o = addr.octets();
    o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = 40;

    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds the fixed header and the payload length it declares (any
    /// bytes after that, such as Ethernet padding, are ignored).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self { buffer };
        let len = packet.buffer.as_ref().len();
        check_len("ipv6", len, Self::HEADER_LEN)?;
        check_len(
            "ipv6",
            len,
            Self::HEADER_LEN + usize::from(packet.payload_len()),
        )?;
        Ok(packet)
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (6 for a valid packet).
    pub fn version(&self) -> u8 {
        read_u8(self.buffer.as_ref(), 0) >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let b: [u8; 2] = read(self.buffer.as_ref(), 0);
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        let b: [u8; 4] = read(self.buffer.as_ref(), 0);
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }

    /// Payload length.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 4)
    }

    /// Next header.
    pub fn next_header(&self) -> u8 {
        read_u8(self.buffer.as_ref(), 6)
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        read_u8(self.buffer.as_ref(), 7)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read::<16>(self.buffer.as_ref(), 8))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read::<16>(self.buffer.as_ref(), 24))
    }

    /// The payload: the declared payload length, or what the buffer holds of it.
    pub fn payload(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        let end = (Self::HEADER_LEN + usize::from(self.payload_len())).min(buf.len());
        buf.get(Self::HEADER_LEN..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Mutable payload (the declared length, or what the buffer holds of it).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end =
            (Self::HEADER_LEN + usize::from(self.payload_len())).min(self.buffer.as_ref().len());
        self.buffer
            .as_mut()
            .get_mut(Self::HEADER_LEN..end)
            .unwrap_or(&mut [])
    }
}

/// The fixed IPv6 header as a value (traffic class and flow label are emitted as zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header (58 for ICMPv6).
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: u16,
    /// Hop limit (255 for Neighbor Discovery).
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Parses a view; a version other than 6 is malformed.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Self, WireError> {
        let len = packet.buffer.as_ref().len();
        check_len("ipv6", len, Ipv6Packet::<T>::HEADER_LEN)?;
        if packet.version() != 6 {
            return Err(WireError::Malformed {
                layer: "ipv6",
                what: "version is not 6",
            });
        }
        check_len(
            "ipv6",
            len,
            Ipv6Packet::<T>::HEADER_LEN + usize::from(packet.payload_len()),
        )?;
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
        })
    }

    /// Bytes the header takes.
    pub const fn buffer_len(&self) -> usize {
        Ipv6Packet::<&[u8]>::HEADER_LEN
    }

    /// Writes the header at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        check_out("ipv6", buf.len(), self.buffer_len())?;
        write(buf, 0, &[0x60, 0, 0, 0]);
        write(buf, 4, &self.payload_len.to_be_bytes());
        write(buf, 6, &[self.next_header, self.hop_limit]);
        write(buf, 8, &self.src_addr.octets());
        write(buf, 24, &self.dst_addr.octets());
        Ok(())
    }
}
