//! Path attributes (RFC 4271 §4.3, §5; RFC 4760 MP_REACH/MP_UNREACH; RFC 6793 4-octet AS;
//! RFC 1997, 4360, 8092 communities): the typed values, their flags, and their encoding and
//! decoding with RFC 7606's error handling.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use lb_core::{Community, LargeCommunity};

use super::notification::update as sub;
use super::open::AS_TRANS;
use super::prefix::{decode_prefixes, encode_prefix};
use super::update::{Treatment, reset};
use super::{Codec, DecodeError, EncodeError, Family, Reader};

pub(super) const FLAG_OPTIONAL: u8 = 0x80;
pub(super) const FLAG_TRANSITIVE: u8 = 0x40;
pub(super) const FLAG_PARTIAL: u8 = 0x20;
pub(super) const FLAG_EXTENDED_LENGTH: u8 = 0x10;

/// Path attribute type codes.
pub mod attr_type {
    /// ORIGIN.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP.
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC.
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// LOCAL_PREF.
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// EXTENDED COMMUNITIES (RFC 4360).
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITIES: u8 = 32;
}
use attr_type as t;

/// ORIGIN values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Learned from an interior protocol (0).
    Igp,
    /// Learned from EGP (1).
    Egp,
    /// Learned some other way (2).
    Incomplete,
}

/// AS_PATH segment types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentType {
    /// AS_SET (1).
    Set,
    /// AS_SEQUENCE (2).
    Sequence,
    /// AS_CONFED_SEQUENCE (3, RFC 5065).
    ConfedSequence,
    /// AS_CONFED_SET (4, RFC 5065).
    ConfedSet,
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsPathSegment {
    /// Segment type.
    pub kind: SegmentType,
    /// AS numbers, at most 255.
    pub asns: Vec<u32>,
}

/// An AS_PATH or AS4_PATH value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    /// Segments in order.
    pub segments: Vec<AsPathSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty when `asns` is empty, as iBGP sends it).
    pub fn sequence(asns: Vec<u32>) -> Self {
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![AsPathSegment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    /// Whether any AS number needs 4 octets.
    pub fn has_four_octet(&self) -> bool {
        self.segments
            .iter()
            .flat_map(|s| &s.asns)
            .any(|&a| a > u32::from(u16::MAX))
    }
}

/// A BGP extended community (RFC 4360), kept as its 8 octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

impl ExtendedCommunity {
    /// The link bandwidth community (draft-ietf-idr-link-bandwidth): non-transitive two-octet
    /// AS specific, subtype 4, bandwidth in bytes per second as an IEEE float.
    pub fn link_bandwidth(asn: u16, bytes_per_second: f32) -> Self {
        let [a0, a1] = asn.to_be_bytes();
        let [b0, b1, b2, b3] = bytes_per_second.to_be_bytes();
        Self([0x40, 0x04, a0, a1, b0, b1, b2, b3])
    }

    /// The AS and bandwidth (bytes per second) if this is a link bandwidth community.
    pub fn as_link_bandwidth(&self) -> Option<(u16, f32)> {
        let [kind, subtype, a0, a1, b0, b1, b2, b3] = self.0;
        (kind & 0xbf == 0x00 && subtype == 0x04).then(|| {
            (
                u16::from_be_bytes([a0, a1]),
                f32::from_be_bytes([b0, b1, b2, b3]),
            )
        })
    }
}

/// The next hop of an MP_REACH_NLRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MpNextHop {
    /// An IPv4 next hop (IPv4 family, 4 octets).
    V4(Ipv4Addr),
    /// An IPv6 global next hop, with the link-local one when the route is on a shared link
    /// (RFC 2545, 16 or 32 octets).
    V6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address.
        link_local: Option<Ipv6Addr>,
    },
}

/// MP_REACH_NLRI for IPv4 or IPv6 unicast (other families are kept as
/// [`Attribute::Unknown`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    /// The family of `nlri`.
    pub family: Family,
    /// Next hop.
    pub next_hop: MpNextHop,
    /// Prefixes announced; all of `family`.
    pub nlri: Vec<IpNet>,
}

/// MP_UNREACH_NLRI for IPv4 or IPv6 unicast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    /// The family of `withdrawn`.
    pub family: Family,
    /// Prefixes withdrawn; all of `family`. Empty in an End-of-RIB marker.
    pub withdrawn: Vec<IpNet>,
}

/// A path attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// ORIGIN (1).
    Origin(Origin),
    /// AS_PATH (2), written with 2- or 4-octet AS numbers as the session negotiated.
    AsPath(AsPath),
    /// NEXT_HOP (3), IPv4 unicast only.
    NextHop(Ipv4Addr),
    /// MULTI_EXIT_DISC (4).
    MultiExitDisc(u32),
    /// LOCAL_PREF (5), iBGP only.
    LocalPref(u32),
    /// ATOMIC_AGGREGATE (6).
    AtomicAggregate,
    /// AGGREGATOR (7).
    Aggregator {
        /// AS of the aggregating speaker.
        asn: u32,
        /// Its BGP identifier.
        address: Ipv4Addr,
    },
    /// COMMUNITIES (8).
    Communities(Vec<Community>),
    /// MP_REACH_NLRI (14).
    MpReach(MpReach),
    /// MP_UNREACH_NLRI (15).
    MpUnreach(MpUnreach),
    /// EXTENDED COMMUNITIES (16).
    ExtendedCommunities(Vec<ExtendedCommunity>),
    /// AS4_PATH (17): the real path next to an AS_PATH written with AS_TRANS.
    As4Path(AsPath),
    /// AS4_AGGREGATOR (18).
    As4Aggregator {
        /// AS of the aggregating speaker.
        asn: u32,
        /// Its BGP identifier.
        address: Ipv4Addr,
    },
    /// LARGE_COMMUNITY (32).
    LargeCommunities(Vec<LargeCommunity>),
    /// Any other attribute, or an MP attribute of a family other than IPv4/IPv6 unicast.
    Unknown {
        /// Flags as received (the extended-length bit is recomputed on encode).
        flags: u8,
        /// Type code.
        type_code: u8,
        /// Value.
        value: Vec<u8>,
    },
}

impl Attribute {
    /// The attribute's type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Self::Origin(_) => t::ORIGIN,
            Self::AsPath(_) => t::AS_PATH,
            Self::NextHop(_) => t::NEXT_HOP,
            Self::MultiExitDisc(_) => t::MULTI_EXIT_DISC,
            Self::LocalPref(_) => t::LOCAL_PREF,
            Self::AtomicAggregate => t::ATOMIC_AGGREGATE,
            Self::Aggregator { .. } => t::AGGREGATOR,
            Self::Communities(_) => t::COMMUNITIES,
            Self::MpReach(_) => t::MP_REACH_NLRI,
            Self::MpUnreach(_) => t::MP_UNREACH_NLRI,
            Self::ExtendedCommunities(_) => t::EXTENDED_COMMUNITIES,
            Self::As4Path(_) => t::AS4_PATH,
            Self::As4Aggregator { .. } => t::AS4_AGGREGATOR,
            Self::LargeCommunities(_) => t::LARGE_COMMUNITIES,
            Self::Unknown { type_code, .. } => *type_code,
        }
    }
}

/// The optional and transitive bits an attribute type must carry, for the types we know.
pub(super) fn expected_flags(type_code: u8) -> Option<u8> {
    Some(match type_code {
        t::ORIGIN | t::AS_PATH | t::NEXT_HOP | t::LOCAL_PREF | t::ATOMIC_AGGREGATE => {
            FLAG_TRANSITIVE
        }
        t::MULTI_EXIT_DISC | t::MP_REACH_NLRI | t::MP_UNREACH_NLRI => FLAG_OPTIONAL,
        t::AGGREGATOR
        | t::COMMUNITIES
        | t::EXTENDED_COMMUNITIES
        | t::AS4_PATH
        | t::AS4_AGGREGATOR
        | t::LARGE_COMMUNITIES => FLAG_OPTIONAL | FLAG_TRANSITIVE,
        _ => return None,
    })
}

fn decode_as_path(value: &[u8], four_octet: bool) -> Option<AsPath> {
    let mut r = Reader::new(value);
    let mut segments = Vec::new();
    while !r.is_empty() {
        let kind = match r.u8()? {
            1 => SegmentType::Set,
            2 => SegmentType::Sequence,
            3 => SegmentType::ConfedSequence,
            4 => SegmentType::ConfedSet,
            _ => return None,
        };
        let count = r.u8()?;
        if count == 0 {
            return None;
        }
        let mut asns = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            asns.push(if four_octet {
                r.u32()?
            } else {
                u32::from(r.u16()?)
            });
        }
        segments.push(AsPathSegment { kind, asns });
    }
    Some(AsPath { segments })
}

fn encode_as_path(path: &AsPath, four_octet: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for seg in &path.segments {
        out.push(match seg.kind {
            SegmentType::Set => 1,
            SegmentType::Sequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        });
        out.push(
            u8::try_from(seg.asns.len())
                .map_err(|_| EncodeError::FieldTooLong("AS_PATH segment"))?,
        );
        for &asn in &seg.asns {
            if four_octet {
                out.extend_from_slice(&asn.to_be_bytes());
            } else {
                out.extend_from_slice(&u16::try_from(asn).unwrap_or(AS_TRANS).to_be_bytes());
            }
        }
    }
    Ok(())
}

/// What parsing one attribute value gave.
pub(super) enum Parsed {
    Ok(Attribute),
    Issue(Treatment, &'static str),
}

fn family_v6(afi: u16, safi: u8) -> Option<bool> {
    match (Family { afi, safi }) {
        Family::IPV4_UNICAST => Some(false),
        Family::IPV6_UNICAST => Some(true),
        _ => None,
    }
}

fn parse_mp_reach(value: &[u8]) -> Result<Option<MpReach>, DecodeError> {
    let bad = |reason| reset(sub::OPTIONAL_ATTRIBUTE_ERROR, vec![], reason);
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi), Some(nh_len)) = (r.u16(), r.u8(), r.u8()) else {
        return Err(bad("MP_REACH_NLRI truncated"));
    };
    let Some(v6) = family_v6(afi, safi) else {
        return Ok(None);
    };
    let nh = r
        .take(usize::from(nh_len))
        .ok_or_else(|| bad("MP_REACH_NLRI next hop truncated"))?;
    let next_hop = match (v6, nh.len()) {
        (false, 4) => MpNextHop::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(nh).map_err(|_| bad("next hop"))?,
        )),
        (_, 16) | (_, 32) => {
            let global = nh.first_chunk::<16>().copied().map(Ipv6Addr::from);
            let link_local = nh
                .get(16..)
                .and_then(|s| s.first_chunk::<16>())
                .copied()
                .map(Ipv6Addr::from);
            MpNextHop::V6 {
                global: global.ok_or_else(|| bad("next hop"))?,
                link_local,
            }
        }
        _ => return Err(bad("MP_REACH_NLRI next hop length")),
    };
    let _reserved = r
        .u8()
        .ok_or_else(|| bad("MP_REACH_NLRI reserved octet missing"))?;
    let nlri = decode_prefixes(r.rest(), v6)?;
    Ok(Some(MpReach {
        family: Family { afi, safi },
        next_hop,
        nlri,
    }))
}

fn parse_mp_unreach(value: &[u8]) -> Result<Option<MpUnreach>, DecodeError> {
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
        return Err(reset(
            sub::OPTIONAL_ATTRIBUTE_ERROR,
            vec![],
            "MP_UNREACH_NLRI truncated",
        ));
    };
    let Some(v6) = family_v6(afi, safi) else {
        return Ok(None);
    };
    let withdrawn = decode_prefixes(r.rest(), v6)?;
    Ok(Some(MpUnreach {
        family: Family { afi, safi },
        withdrawn,
    }))
}

fn u32_value(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes)
}

fn parse_aggregator(value: &[u8], four_octet: bool) -> Option<(u32, Ipv4Addr)> {
    let mut r = Reader::new(value);
    let asn = if four_octet {
        r.u32()?
    } else {
        u32::from(r.u16()?)
    };
    let address = Ipv4Addr::from(r.array::<4>()?);
    r.is_empty().then_some((asn, address))
}

pub(super) fn parse_attribute(
    flags: u8,
    type_code: u8,
    value: &[u8],
    codec: Codec,
) -> Result<Parsed, DecodeError> {
    use Treatment::{AttributeDiscard as Discard, TreatAsWithdraw as Withdraw};
    if let Some(expected) = expected_flags(type_code) {
        if flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) != expected {
            if matches!(type_code, t::MP_REACH_NLRI | t::MP_UNREACH_NLRI) {
                return Err(reset(
                    sub::ATTRIBUTE_FLAGS_ERROR,
                    vec![],
                    "MP attribute flags",
                ));
            }
            return Ok(Parsed::Issue(
                Withdraw,
                "attribute flags conflict with its type",
            ));
        }
    } else if flags & FLAG_OPTIONAL == 0 {
        // RFC 4271 §6.3: the data is the whole attribute, type (flags and code), length and
        // value, with the length as wide as the extended-length bit made it.
        let mut data = vec![flags, type_code];
        if flags & FLAG_EXTENDED_LENGTH != 0 {
            data.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        } else {
            data.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
        }
        data.extend_from_slice(value);
        return Err(reset(
            sub::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            data,
            "unrecognised well-known attribute",
        ));
    }
    let four = codec.four_octet_as;
    let attr = match type_code {
        t::ORIGIN => match value {
            [0] => Attribute::Origin(Origin::Igp),
            [1] => Attribute::Origin(Origin::Egp),
            [2] => Attribute::Origin(Origin::Incomplete),
            [_] => return Ok(Parsed::Issue(Withdraw, "invalid ORIGIN value")),
            _ => return Ok(Parsed::Issue(Withdraw, "ORIGIN length is not 1")),
        },
        t::AS_PATH => match decode_as_path(value, four) {
            Some(path) => Attribute::AsPath(path),
            None => return Ok(Parsed::Issue(Withdraw, "malformed AS_PATH")),
        },
        t::NEXT_HOP => match <[u8; 4]>::try_from(value) {
            Ok(a) => Attribute::NextHop(Ipv4Addr::from(a)),
            Err(_) => return Ok(Parsed::Issue(Withdraw, "NEXT_HOP length is not 4")),
        },
        t::MULTI_EXIT_DISC => match u32_value(value) {
            Some(v) => Attribute::MultiExitDisc(v),
            None => return Ok(Parsed::Issue(Withdraw, "MULTI_EXIT_DISC length is not 4")),
        },
        t::LOCAL_PREF => match u32_value(value) {
            Some(v) => Attribute::LocalPref(v),
            None => return Ok(Parsed::Issue(Withdraw, "LOCAL_PREF length is not 4")),
        },
        t::ATOMIC_AGGREGATE if value.is_empty() => Attribute::AtomicAggregate,
        t::ATOMIC_AGGREGATE => return Ok(Parsed::Issue(Discard, "ATOMIC_AGGREGATE has a value")),
        t::AGGREGATOR => match parse_aggregator(value, four) {
            Some((asn, address)) => Attribute::Aggregator { asn, address },
            None => return Ok(Parsed::Issue(Discard, "AGGREGATOR length")),
        },
        t::AS4_AGGREGATOR => match parse_aggregator(value, true) {
            Some((asn, address)) => Attribute::As4Aggregator { asn, address },
            None => return Ok(Parsed::Issue(Discard, "AS4_AGGREGATOR length")),
        },
        t::AS4_PATH => match decode_as_path(value, true) {
            Some(path) => Attribute::As4Path(path),
            None => return Ok(Parsed::Issue(Discard, "malformed AS4_PATH")),
        },
        t::COMMUNITIES => {
            if value.is_empty() || !value.len().is_multiple_of(4) {
                return Ok(Parsed::Issue(
                    Withdraw,
                    "COMMUNITIES length is not a multiple of 4",
                ));
            }
            Attribute::Communities(
                value
                    .chunks_exact(4)
                    .filter_map(u32_value)
                    .map(Community)
                    .collect(),
            )
        }
        t::EXTENDED_COMMUNITIES => {
            if value.is_empty() || !value.len().is_multiple_of(8) {
                return Ok(Parsed::Issue(Withdraw, "EXTENDED COMMUNITIES length"));
            }
            Attribute::ExtendedCommunities(
                value
                    .chunks_exact(8)
                    .filter_map(|c| <[u8; 8]>::try_from(c).ok())
                    .map(ExtendedCommunity)
                    .collect(),
            )
        }
        t::LARGE_COMMUNITIES => {
            if value.is_empty() || !value.len().is_multiple_of(12) {
                return Ok(Parsed::Issue(Withdraw, "LARGE_COMMUNITY length"));
            }
            Attribute::LargeCommunities(
                value
                    .chunks_exact(12)
                    .filter_map(|c| {
                        let mut r = Reader::new(c);
                        Some(LargeCommunity {
                            global_admin: r.u32()?,
                            local1: r.u32()?,
                            local2: r.u32()?,
                        })
                    })
                    .collect(),
            )
        }
        t::MP_REACH_NLRI => match parse_mp_reach(value)? {
            Some(mp) => Attribute::MpReach(mp),
            None => unknown(flags, type_code, value),
        },
        t::MP_UNREACH_NLRI => match parse_mp_unreach(value)? {
            Some(mp) => Attribute::MpUnreach(mp),
            None => unknown(flags, type_code, value),
        },
        _ => unknown(flags, type_code, value),
    };
    Ok(Parsed::Ok(attr))
}

fn unknown(flags: u8, type_code: u8, value: &[u8]) -> Attribute {
    Attribute::Unknown {
        flags: flags & !FLAG_EXTENDED_LENGTH,
        type_code,
        value: value.to_vec(),
    }
}

fn encode_value(attr: &Attribute, codec: Codec, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match attr {
        Attribute::Origin(o) => out.push(match o {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }),
        Attribute::AsPath(p) => encode_as_path(p, codec.four_octet_as, out)?,
        Attribute::As4Path(p) => encode_as_path(p, true, out)?,
        Attribute::NextHop(a) => out.extend_from_slice(&a.octets()),
        Attribute::MultiExitDisc(v) | Attribute::LocalPref(v) => {
            out.extend_from_slice(&v.to_be_bytes());
        }
        Attribute::AtomicAggregate => {}
        Attribute::Aggregator { asn, address } => {
            if codec.four_octet_as {
                out.extend_from_slice(&asn.to_be_bytes());
            } else {
                out.extend_from_slice(&u16::try_from(*asn).unwrap_or(AS_TRANS).to_be_bytes());
            }
            out.extend_from_slice(&address.octets());
        }
        Attribute::As4Aggregator { asn, address } => {
            out.extend_from_slice(&asn.to_be_bytes());
            out.extend_from_slice(&address.octets());
        }
        Attribute::Communities(cs) => cs
            .iter()
            .for_each(|c| out.extend_from_slice(&c.0.to_be_bytes())),
        Attribute::ExtendedCommunities(cs) => cs.iter().for_each(|c| out.extend_from_slice(&c.0)),
        Attribute::LargeCommunities(cs) => {
            for c in cs {
                out.extend_from_slice(&c.global_admin.to_be_bytes());
                out.extend_from_slice(&c.local1.to_be_bytes());
                out.extend_from_slice(&c.local2.to_be_bytes());
            }
        }
        Attribute::MpReach(mp) => {
            out.extend_from_slice(&mp.family.afi.to_be_bytes());
            out.push(mp.family.safi);
            match mp.next_hop {
                MpNextHop::V4(a) => {
                    out.push(4);
                    out.extend_from_slice(&a.octets());
                }
                MpNextHop::V6 { global, link_local } => {
                    out.push(if link_local.is_some() { 32 } else { 16 });
                    out.extend_from_slice(&global.octets());
                    if let Some(ll) = link_local {
                        out.extend_from_slice(&ll.octets());
                    }
                }
            }
            out.push(0);
            mp.nlri.iter().for_each(|p| encode_prefix(p, out));
        }
        Attribute::MpUnreach(mp) => {
            out.extend_from_slice(&mp.family.afi.to_be_bytes());
            out.push(mp.family.safi);
            mp.withdrawn.iter().for_each(|p| encode_prefix(p, out));
        }
        Attribute::Unknown { value, .. } => out.extend_from_slice(value),
    }
    Ok(())
}

/// Appends one path attribute (flags, type, length, value) to `out`.
pub(crate) fn encode_attribute(
    attr: &Attribute,
    codec: Codec,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut value = Vec::new();
    encode_value(attr, codec, &mut value)?;
    let type_code = attr.type_code();
    let base = match attr {
        Attribute::Unknown { flags, .. } => flags & !FLAG_EXTENDED_LENGTH,
        _ => expected_flags(type_code).unwrap_or(FLAG_OPTIONAL),
    };
    if let Ok(len) = u8::try_from(value.len()) {
        out.extend_from_slice(&[base, type_code, len]);
    } else {
        let len = u16::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong("attribute"))?;
        out.extend_from_slice(&[base | FLAG_EXTENDED_LENGTH, type_code]);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&value);
    Ok(())
}
