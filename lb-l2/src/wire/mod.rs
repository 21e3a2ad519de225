//! Wire formats, in the style of smoltcp's `wire` module: for each protocol a zero-copy view
//! (`…Packet<T: AsRef<[u8]>>` / [`EthernetFrame`]) that reads and writes fields in place, and
//! a plain value (`…Repr`) that is parsed from a view and emitted into a buffer.
//!
//! # No-panic contract
//!
//! Nothing in this module panics on any input. `new_checked` constructors verify that the
//! buffer holds every fixed field before a view is handed out; a view made with
//! `new_unchecked` over a short buffer reads missing bytes as zero and ignores writes past
//! the end instead of panicking. Every `emit` checks the buffer length first and returns
//! [`WireError::BufferTooSmall`]. The fuzz targets in `lb-l2/fuzz` drive every parser with
//! arbitrary bytes.

pub mod arp;
pub mod ethernet;
pub mod frame;
pub mod icmpv6;
pub mod ipv6;
pub mod ndp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use frame::{Frame, arp_frame, ndp_frame};
pub use icmpv6::Icmpv6Packet;
pub use ipv6::{Ipv6Packet, Ipv6Repr, solicited_node};
pub use ndp::{NdpOption, NdpOptions, NdpRepr, NeighborFlags};

/// Why bytes could not be parsed or a value could not be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer ends before a field the header says is there.
    #[error("{layer}: truncated: {needed} bytes needed, {available} present")]
    Truncated {
        /// Protocol layer (`"ethernet"`, `"arp"`, …).
        layer: &'static str,
        /// Bytes the header requires.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// A field holds a value the protocol forbids.
    #[error("{layer}: malformed: {what}")]
    Malformed {
        /// Protocol layer.
        layer: &'static str,
        /// What is wrong.
        what: &'static str,
    },
    /// Valid, but not a variant this crate handles (for example ARP over a non-Ethernet link).
    #[error("{layer}: unsupported: {what}")]
    Unsupported {
        /// Protocol layer.
        layer: &'static str,
        /// What is not supported.
        what: &'static str,
    },
    /// The ICMPv6 checksum does not match the pseudo-header and message.
    #[error("icmpv6: bad checksum {found:#06x}, expected {expected:#06x}")]
    Checksum {
        /// Checksum computed over the message.
        expected: u16,
        /// Checksum carried by the message.
        found: u16,
    },
    /// The output buffer is too small for the value being emitted.
    #[error("{layer}: buffer too small: {needed} bytes needed, {available} present")]
    BufferTooSmall {
        /// Protocol layer.
        layer: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
}

/// Reads `N` bytes at `offset`, or zeros when the buffer is too short (views made with
/// `new_checked` never are).
fn read<const N: usize>(buf: &[u8], offset: usize) -> [u8; N] {
    offset
        .checked_add(N)
        .and_then(|end| buf.get(offset..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .unwrap_or([0; N])
}

fn read_u8(buf: &[u8], offset: usize) -> u8 {
    buf.get(offset).copied().unwrap_or(0)
}

fn read_u16(buf: &[u8], offset: usize) -> u16 {
    u16::from_be_bytes(read(buf, offset))
}

/// Writes `bytes` at `offset`; ignored when the buffer is too short.
fn write(buf: &mut [u8], offset: usize, bytes: &[u8]) {
    if let Some(dst) = offset
        .checked_add(bytes.len())
        .and_then(|end| buf.get_mut(offset..end))
    {
        dst.copy_from_slice(bytes);
    }
}

fn check_len(layer: &'static str, available: usize, needed: usize) -> Result<(), WireError> {
    if available < needed {
        Err(WireError::Truncated {
            layer,
            needed,
            available,
        })
    } else {
        Ok(())
    }
}

fn check_out(layer: &'static str, available: usize, needed: usize) -> Result<(), WireError> {
    if available < needed {
        Err(WireError::BufferTooSmall {
            layer,
            needed,
            available,
        })
    } else {
        Ok(())
    }
}
