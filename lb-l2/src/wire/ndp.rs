//! Neighbor Discovery (RFC 4861 §4.3, §4.4, §4.6.1): Neighbor Solicitation and Neighbor
//! Advertisement with source / target link-layer address options, for Ethernet links.

use std::net::Ipv6Addr;

use super::icmpv6::{Icmpv6Packet, TYPE_NEIGHBOR_ADVERT, TYPE_NEIGHBOR_SOLICIT};
use super::{EthernetAddress, WireError, check_len, check_out, read, read_u8, write};

/// Source link-layer address option type.
pub const OPTION_SOURCE_LLADDR: u8 = 1;
/// Target link-layer address option type.
pub const OPTION_TARGET_LLADDR: u8 = 2;

/// Length of an NS or NA up to the options: type, code, checksum, flags/reserved, target.
pub const MESSAGE_LEN: usize = 24;
/// Length of a link-layer address option for Ethernet.
pub const LLADDR_OPTION_LEN: usize = 8;

/// One Neighbor Discovery option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpOption<'a> {
    /// Source link-layer address (type 1).
    SourceLinkLayerAddr(EthernetAddress),
    /// Target link-layer address (type 2).
    TargetLinkLayerAddr(EthernetAddress),
    /// Any other option: its type and its bytes after the type and length octets.
    Other {
        /// Option type.
        kind: u8,
        /// Option data.
        data: &'a [u8],
    },
}

/// Iterator over the options that follow an NS or NA. Yields an error (and then stops) at an
/// option with length zero or one that runs past the end, which RFC 4861 §4.6 says makes the
/// whole message invalid.
#[derive(Debug, Clone)]
pub struct NdpOptions<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> NdpOptions<'a> {
    /// Options in `bytes` (everything after the 24-byte message).
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            failed: false,
        }
    }
}

impl<'a> Iterator for NdpOptions<'a> {
    type Item = Result<NdpOption<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let malformed = |what| Some(Err(WireError::Malformed { layer: "ndp", what }));
        let [kind, units, ..] = *self.rest else {
            self.failed = true;
            return malformed("option header truncated");
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            self.failed = true;
            return malformed("option with length zero");
        }
        let Some((option, rest)) = self.rest.split_at_checked(len) else {
            self.failed = true;
            return malformed("option runs past the end of the message");
        };
        self.rest = rest;
        let data = option.get(2..).unwrap_or(&[]);
        let lladdr = || EthernetAddress(read(data, 0));
        Some(Ok(match (kind, len) {
            (OPTION_SOURCE_LLADDR, LLADDR_OPTION_LEN) => NdpOption::SourceLinkLayerAddr(lladdr()),
            (OPTION_TARGET_LLADDR, LLADDR_OPTION_LEN) => NdpOption::TargetLinkLayerAddr(lladdr()),
            _ => NdpOption::Other { kind, data },
        }))
    }
}

/// The R, S and O flags of a Neighbor Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a Neighbor Solicitation.
    pub solicited: bool,
    /// O: the advertisement should override an existing cache entry.
    pub override_: bool,
}

impl NeighborFlags {
    fn to_byte(self) -> u8 {
        (u8::from(self.router) << 7)
            | (u8::from(self.solicited) << 6)
            | (u8::from(self.override_) << 5)
    }

    fn from_byte(b: u8) -> Self {
        Self {
            router: b & 0x80 != 0,
            solicited: b & 0x40 != 0,
            override_: b & 0x20 != 0,
        }
    }
}

/// A Neighbor Solicitation or Advertisement as a value. Options other than the link-layer
/// address are skipped when parsing and never emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdpRepr {
    /// Neighbor Solicitation (type 135).
    NeighborSolicit {
        /// The address being resolved.
        target_addr: Ipv6Addr,
        /// The solicitor's link-layer address, absent in DAD probes.
        source_lladdr: Option<EthernetAddress>,
    },
    /// Neighbor Advertisement (type 136).
    NeighborAdvert {
        /// R, S, O.
        flags: NeighborFlags,
        /// The address being advertised.
        target_addr: Ipv6Addr,
        /// The advertiser's link-layer address.
        target_lladdr: Option<EthernetAddress>,
    },
}

impl NdpRepr {
    /// Parses an NS or NA (checksum not verified here; see
    /// [`Icmpv6Packet::verify_checksum`]). Enforces the message checks of RFC 4861 §7.1.1 and
    /// §7.1.2 that need no IP header: code 0, length at least 24, target not multicast, every
    /// option of non-zero length.
    pub fn parse<T: AsRef<[u8]>>(packet: &Icmpv6Packet<T>) -> Result<Self, WireError> {
        let bytes = packet.as_bytes();
        let msg_type = packet.msg_type();
        if msg_type != TYPE_NEIGHBOR_SOLICIT && msg_type != TYPE_NEIGHBOR_ADVERT {
            return Err(WireError::Unsupported {
                layer: "ndp",
                what: "ICMPv6 type other than Neighbor Solicitation or Advertisement",
            });
        }
        check_len("ndp", bytes.len(), MESSAGE_LEN)?;
        if packet.msg_code() != 0 {
            return Err(WireError::Malformed {
                layer: "ndp",
                what: "code is not 0",
            });
        }
        let target_addr = Ipv6Addr::from(read::<16>(bytes, 8));
        if target_addr.is_multicast() {
            return Err(WireError::Malformed {
                layer: "ndp",
                what: "target address is multicast",
            });
        }
        let mut source = None;
        let mut target = None;
        for option in NdpOptions::new(bytes.get(MESSAGE_LEN..).unwrap_or(&[])) {
            match option? {
                NdpOption::SourceLinkLayerAddr(mac) => source = source.or(Some(mac)),
                NdpOption::TargetLinkLayerAddr(mac) => target = target.or(Some(mac)),
                NdpOption::Other { .. } => {}
            }
        }
        Ok(if msg_type == TYPE_NEIGHBOR_SOLICIT {
            Self::NeighborSolicit {
                target_addr,
                source_lladdr: source,
            }
        } else {
            Self::NeighborAdvert {
                flags: NeighborFlags::from_byte(read_u8(bytes, 4)),
                target_addr,
                target_lladdr: target,
            }
        })
    }

    /// The target address.
    pub fn target_addr(&self) -> Ipv6Addr {
        match *self {
            Self::NeighborSolicit { target_addr, .. }
            | Self::NeighborAdvert { target_addr, .. } => target_addr,
        }
    }

    /// Bytes the message takes.
    pub fn buffer_len(&self) -> usize {
        let lladdr = match self {
            Self::NeighborSolicit { source_lladdr, .. } => source_lladdr.is_some(),
            Self::NeighborAdvert { target_lladdr, .. } => target_lladdr.is_some(),
        };
        MESSAGE_LEN + if lladdr { LLADDR_OPTION_LEN } else { 0 }
    }

    /// Writes the message at the start of `buf` with its checksum for `src` → `dst`.
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr, buf: &mut [u8]) -> Result<(), WireError> {
        let len = self.buffer_len();
        check_out("ndp", buf.len(), len)?;
        let (kind, flags, target, option) = match *self {
            Self::NeighborSolicit {
                target_addr,
                source_lladdr,
            } => (
                TYPE_NEIGHBOR_SOLICIT,
                0,
                target_addr,
                source_lladdr.map(|m| (OPTION_SOURCE_LLADDR, m)),
            ),
            Self::NeighborAdvert {
                flags,
                target_addr,
                target_lladdr,
            } => (
                TYPE_NEIGHBOR_ADVERT,
                flags.to_byte(),
                target_addr,
                target_lladdr.map(|m| (OPTION_TARGET_LLADDR, m)),
            ),
        };
        write(buf, 0, &[kind, 0, 0, 0, flags, 0, 0, 0]);
        write(buf, 8, &target.octets());
        if let Some((option_type, mac)) = option {
            write(buf, MESSAGE_LEN, &[option_type, 1]);
            write(buf, MESSAGE_LEN + 2, &mac.0);
        }
        let message = buf.get_mut(..len).unwrap_or(&mut []);
        Icmpv6Packet::new_unchecked(message).fill_checksum(src, dst);
        Ok(())
    }
}
