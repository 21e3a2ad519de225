//! Address entries of a pool: CIDRs (`192.0.2.0/24`, `2001:db8::/64`) and inclusive ranges
//! (`192.0.2.10-192.0.2.20`, spaces around `-` allowed), as MetalLB accepts them.
//!
//! An entry is kept as its first and last address; nothing here enumerates addresses, so an
//! IPv6 `/48` costs the same as a `/32`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use lb_core::IpFamily;

/// Why the text of an address entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The entry is empty or only spaces.
    #[error("empty address entry")]
    Empty,
    /// Text with a `/` that is not a valid CIDR.
    #[error("invalid CIDR")]
    InvalidCidr,
    /// A bare address: MetalLB needs a CIDR or a range.
    #[error("a single address must be written as a CIDR (for example {0}/{1}) or a range")]
    BareAddress(IpAddr, u8),
    /// The start of a range is not an IP address.
    #[error("invalid range start {0:?}")]
    InvalidStart(String),
    /// The end of a range is not an IP address.
    #[error("invalid range end {0:?}")]
    InvalidEnd(String),
    /// A range from an IPv4 to an IPv6 address or back.
    #[error("range mixes IPv4 and IPv6")]
    MixedFamilies,
    /// A range whose start comes after its end.
    #[error("start is after end")]
    StartAfterEnd,
    /// The text is neither a CIDR nor a range.
    #[error("expected a CIDR (a.b.c.d/n) or a range (a.b.c.d-e.f.g.h)")]
    Unrecognised,
}

/// An inclusive range of addresses of one family, from a CIDR or an `a-b` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressRange {
    first: IpAddr,
    last: IpAddr,
}

impl AddressRange {
    /// A range from `first` to `last` inclusive.
    ///
    /// Fails when the families differ or `first` comes after `last`.
    pub fn new(first: IpAddr, last: IpAddr) -> Result<Self, AddressError> {
        if IpFamily::of(&first) != IpFamily::of(&last) {
            return Err(AddressError::MixedFamilies);
        }
        if first > last {
            return Err(AddressError::StartAfterEnd);
        }
        Ok(Self { first, last })
    }

    /// Parses an entry of `spec.addresses`: a CIDR (host bits may be set; they are masked off
    /// like Go's `net.ParseCIDR` does) or an inclusive `first-last` range.
    ///
    /// Fails with the reason the text is not acceptable.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if text.contains('/') {
            let net: IpNet = text.parse().map_err(|_| AddressError::InvalidCidr)?;
            let net = net.trunc();
            return Self::new(net.network(), net.broadcast());
        }
        if let Some((start, end)) = text.split_once('-') {
            let (start, end) = (start.trim(), end.trim());
            let first: IpAddr = start
                .parse()
                .map_err(|_| AddressError::InvalidStart(start.to_string()))?;
            let last: IpAddr = end
                .parse()
                .map_err(|_| AddressError::InvalidEnd(end.to_string()))?;
            return Self::new(first, last);
        }
        match text.parse::<IpAddr>() {
            Ok(ip) => Err(AddressError::BareAddress(
                ip,
                if ip.is_ipv4() { 32 } else { 128 },
            )),
            Err(_) => Err(AddressError::Unrecognised),
        }
    }

    /// First address (inclusive).
    pub fn first(&self) -> IpAddr {
        self.first
    }

    /// Last address (inclusive).
    pub fn last(&self) -> IpAddr {
        self.last
    }

    /// Address family of the range.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.first)
    }

    /// True when `ip` lies in the range.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.first <= *ip && *ip <= self.last
    }

    /// True when the two ranges share at least one address.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// Number of addresses minus one (so that `::/0` fits).
    pub fn span(&self) -> u128 {
        to_u128(self.last) - to_u128(self.first)
    }

    /// The range as the smallest list of CIDRs covering exactly it, in address order
    /// (MetalLB's summarisation of a range).
    pub fn cidrs(&self) -> Vec<IpNet> {
        match (self.first, self.last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                ipnet::Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect()
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                ipnet::Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Length of the shortest prefix among [`AddressRange::cidrs`]: a BGP aggregation length
    /// shorter than this would announce addresses outside the pool.
    pub fn shortest_prefix_len(&self) -> u8 {
        self.cidrs()
            .iter()
            .map(IpNet::prefix_len)
            .min()
            .unwrap_or(0)
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The address as a number: IPv4 in the low 32 bits.
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `family` whose number is `n`; IPv4 uses the low 32 bits.
pub(crate) fn from_u128(family: IpFamily, n: u128) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from((n & 0xffff_ffff) as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// True for IPv4 addresses ending in `.0` or `.255`, which some CPE firmwares drop as smurf
/// attacks; pools with `avoidBuggyIPs` never hand them out. IPv6 addresses are never buggy.
pub fn is_buggy_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_covers_network_and_broadcast() {
        let r = AddressRange::parse("192.0.2.0/30").unwrap();
        assert_eq!((r.first(), r.last()), (ip("192.0.2.0"), ip("192.0.2.3")));
        assert_eq!(r.span(), 3);
    }

    #[test]
    fn cidr_with_host_bits_is_masked() {
        let r = AddressRange::parse("192.0.2.77/24").unwrap();
        assert_eq!(r.first(), ip("192.0.2.0"));
    }

    #[test]
    fn range_accepts_spaces_around_dash() {
        let r = AddressRange::parse(" 192.0.2.10 - 192.0.2.20 ").unwrap();
        assert_eq!((r.first(), r.last()), (ip("192.0.2.10"), ip("192.0.2.20")));
        let r6 = AddressRange::parse("2001:db8::1-2001:db8::ff").unwrap();
        assert_eq!(r6.family(), IpFamily::V6);
    }

    #[test]
    fn bad_entries_are_typed_errors() {
        assert_eq!(
            AddressRange::parse("192.0.2.9-192.0.2.1"),
            Err(AddressError::StartAfterEnd)
        );
        assert_eq!(
            AddressRange::parse("192.0.2.1-2001:db8::1"),
            Err(AddressError::MixedFamilies)
        );
        assert_eq!(
            AddressRange::parse("192.0.2.0/33"),
            Err(AddressError::InvalidCidr)
        );
        assert_eq!(
            AddressRange::parse("192.0.2.x-192.0.2.9"),
            Err(AddressError::InvalidStart("192.0.2.x".into()))
        );
        assert_eq!(
            AddressRange::parse("hello"),
            Err(AddressError::Unrecognised)
        );
        assert_eq!(AddressRange::parse(""), Err(AddressError::Empty));
        assert!(matches!(
            AddressRange::parse("192.0.2.1"),
            Err(AddressError::BareAddress(_, 32))
        ));
    }

    #[test]
    fn whole_ipv6_space_does_not_overflow() {
        let r = AddressRange::parse("::/0").unwrap();
        assert_eq!(r.span(), u128::MAX);
    }

    #[test]
    fn range_summarises_into_cidrs_like_metallb() {
        // MetalLB's aggregation check: 3.3.3.2-3.3.3.254 allows /26 and longer only.
        let r = AddressRange::parse("198.51.100.2-198.51.100.254").unwrap();
        assert_eq!(r.shortest_prefix_len(), 26);
        let cidrs: Vec<String> = r.cidrs().iter().map(ToString::to_string).collect();
        assert_eq!(cidrs.first().map(String::as_str), Some("198.51.100.2/31"));
        assert_eq!(cidrs.last().map(String::as_str), Some("198.51.100.254/32"));
    }

    #[test]
    fn overlap_is_symmetric_and_inclusive() {
        let a = AddressRange::parse("192.0.2.0/25").unwrap();
        let b = AddressRange::parse("192.0.2.127-192.0.2.200").unwrap();
        let c = AddressRange::parse("192.0.2.128/25").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }

    #[test]
    fn buggy_ips_are_ipv4_dot_zero_and_dot_255_only() {
        assert!(is_buggy_ip(&ip("192.0.2.0")));
        assert!(is_buggy_ip(&ip("192.0.2.255")));
        assert!(!is_buggy_ip(&ip("192.0.2.1")));
        assert!(!is_buggy_ip(&ip("2001:db8::ff")));
        assert!(!is_buggy_ip(&ip("2001:db8::")));
    }
}
