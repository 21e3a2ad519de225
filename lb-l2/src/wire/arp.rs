//! ARP (RFC 826) for IPv4 over Ethernet.

use std::net::Ipv4Addr;

use super::{EthernetAddress, WireError, check_len, check_out, read, read_u8, read_u16, write};

/// An ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1: who has the target protocol address?
    Request,
    /// 2: the sender hardware address has the sender protocol address.
    Reply,
    /// Any other code (RARP, InARP, …).
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => Self::Request,
            2 => Self::Reply,
            other => Self::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(op: ArpOperation) -> Self {
        match op {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(v) => v,
        }
    }
}

/// A view of an ARP packet. Field offsets past `oper` assume Ethernet/IPv4 address lengths,
/// which [`ArpPacket::new_checked`] verifies.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of the fixed header (hardware and protocol types and lengths, operation).
    pub const HEADER_LEN: usize = 8;
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = 28;

    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds the fixed header and the four addresses its lengths declare.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self { buffer };
        let len = packet.buffer.as_ref().len();
        check_len("arp", len, Self::HEADER_LEN)?;
        let addrs = 2 * (usize::from(packet.hardware_len()) + usize::from(packet.protocol_len()));
        check_len("arp", len, Self::HEADER_LEN + addrs)?;
        Ok(packet)
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 0)
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        read_u8(self.buffer.as_ref(), 4)
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        read_u8(self.buffer.as_ref(), 5)
    }

    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        read_u16(self.buffer.as_ref(), 6).into()
    }

    /// Sender hardware address (Ethernet layout).
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress(read(self.buffer.as_ref(), 8))
    }

    /// Sender protocol address (IPv4 layout).
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read::<4>(self.buffer.as_ref(), 14))
    }

    /// Target hardware address (Ethernet layout).
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress(read(self.buffer.as_ref(), 18))
    }

    /// Target protocol address (IPv4 layout).
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read::<4>(self.buffer.as_ref(), 24))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    fn set_header(&mut self, operation: ArpOperation) {
        let buf = self.buffer.as_mut();
        write(buf, 0, &HTYPE_ETHERNET.to_be_bytes());
        write(buf, 2, &PTYPE_IPV4.to_be_bytes());
        write(buf, 4, &[6, 4]);
        write(buf, 6, &u16::from(operation).to_be_bytes());
    }

    /// Sets the sender hardware address.
    pub fn set_source_hardware_addr(&mut self, addr: EthernetAddress) {
        write(self.buffer.as_mut(), 8, &addr.0);
    }

    /// Sets the sender protocol address.
    pub fn set_source_protocol_addr(&mut self, addr: Ipv4Addr) {
        write(self.buffer.as_mut(), 14, &addr.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, addr: EthernetAddress) {
        write(self.buffer.as_mut(), 18, &addr.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        write(self.buffer.as_mut(), 24, &addr.octets());
    }
}

/// An Ethernet/IPv4 ARP packet as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address.
    pub target_hardware_addr: EthernetAddress,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a view; anything but Ethernet/IPv4 is [`WireError::Unsupported`].
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<Self, WireError> {
        check_len(
            "arp",
            packet.buffer.as_ref().len(),
            ArpPacket::<T>::HEADER_LEN,
        )?;
        if packet.hardware_type() != HTYPE_ETHERNET || packet.hardware_len() != 6 {
            return Err(WireError::Unsupported {
                layer: "arp",
                what: "hardware type other than Ethernet",
            });
        }
        if packet.protocol_type() != PTYPE_IPV4 || packet.protocol_len() != 4 {
            return Err(WireError::Unsupported {
                layer: "arp",
                what: "protocol type other than IPv4",
            });
        }
        check_len("arp", packet.buffer.as_ref().len(), ArpPacket::<T>::LEN)?;
        Ok(Self {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Bytes the packet takes.
    pub const fn buffer_len(&self) -> usize {
        ArpPacket::<&[u8]>::LEN
    }

    /// Writes the packet at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        check_out("arp", buf.len(), self.buffer_len())?;
        let mut packet = ArpPacket::new_unchecked(buf);
        packet.set_header(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
        Ok(())
    }
}
