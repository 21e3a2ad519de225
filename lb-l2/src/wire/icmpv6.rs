//! ICMPv6 (RFC 4443) message framing and its checksum over the IPv6 pseudo-header
//! (RFC 8200 §8.1).

use std::net::Ipv6Addr;

use super::ipv6::NEXT_HEADER_ICMPV6;
use super::{WireError, check_len, read_u8, read_u16, write};

/// Neighbor Solicitation message type.
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// Neighbor Advertisement message type.
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;

/// The Internet checksum of `message` (ICMPv6 header and body, checksum field included as
/// found) with the IPv6 pseudo-header for `src` → `dst`. A message whose checksum field is
/// correct sums to zero; emitting code zeroes the field, computes this and writes it.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for pair in &mut chunks {
            if let [hi, lo] = *pair {
                sum += u64::from(u16::from_be_bytes([hi, lo]));
            }
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(u16::from_be_bytes([*last, 0]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    // Upper-layer packet length as 32 bits, three zero bytes, next header.
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    add(&len.to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // `sum` now fits 16 bits.
    !u16::try_from(sum).unwrap_or(0xffff)
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Length of the type, code and checksum fields.
    pub const HEADER_LEN: usize = 4;

    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds at least type, code and checksum.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_len("icmpv6", buffer.as_ref().len(), Self::HEADER_LEN)?;
        Ok(Self { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        read_u8(self.buffer.as_ref(), 0)
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        read_u8(self.buffer.as_ref(), 1)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    /// Everything after type, code and checksum.
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(Self::HEADER_LEN..).unwrap_or(&[])
    }

    /// Checks the checksum against the pseudo-header for `src` → `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Result<(), WireError> {
        if checksum(src, dst, self.buffer.as_ref()) == 0 {
            return Ok(());
        }
        let found = self.checksum();
        let mut copy = self.buffer.as_ref().to_vec();
        write(&mut copy, 2, &[0, 0]);
        Err(WireError::Checksum {
            expected: checksum(src, dst, &copy),
            found,
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Computes and writes the checksum for `src` → `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        write(self.buffer.as_mut(), 2, &[0, 0]);
        let sum = checksum(src, dst, self.buffer.as_ref());
        write(self.buffer.as_mut(), 2, &sum.to_be_bytes());
    }
}
