//! BGP community values carried in announcements: standard communities (RFC 1997) and large
//! communities (RFC 8092), with MetalLB's text forms `a:b` and `large:a:b:c`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A community string that is not `a:b` (two 16-bit numbers) or `large:a:b:c` (three 32-bit
/// numbers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid BGP community {value:?}: {reason}")]
pub struct CommunityParseError {
    /// The rejected text.
    pub value: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// A standard BGP community (RFC 1997): a 32-bit value written `high:low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Community(pub u32);

impl Community {
    /// A community from its two 16-bit halves.
    pub fn new(high: u16, low: u16) -> Self {
        Self((u32::from(high) << 16) | u32::from(low))
    }

    /// The upper 16 bits (by convention an ASN).
    pub fn high(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The lower 16 bits.
    pub fn low(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.high(), self.low())
    }
}

impl FromStr for Community {
    type Err = CommunityParseError;

    /// Parses `a:b` with both parts in `0..=65535`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| CommunityParseError {
            value: s.into(),
            reason,
        };
        let (a, b) = s.split_once(':').ok_or_else(|| err("expected a:b"))?;
        let a = a
            .parse::<u16>()
            .map_err(|_| err("first part is not a number in 0..=65535"))?;
        let b = b
            .parse::<u16>()
            .map_err(|_| err("second part is not a number in 0..=65535"))?;
        Ok(Self::new(a, b))
    }
}

/// A large BGP community (RFC 8092): global administrator and two local data parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LargeCommunity {
    /// Global administrator (an ASN).
    pub global_admin: u32,
    /// First local data part.
    pub local1: u32,
    /// Second local data part.
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "large:{}:{}:{}",
            self.global_admin, self.local1, self.local2
        )
    }
}

impl FromStr for LargeCommunity {
    type Err = CommunityParseError;

    /// Parses `large:a:b:c` (MetalLB's form) or plain `a:b:c`, each part a 32-bit number.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| CommunityParseError {
            value: s.into(),
            reason,
        };
        let body = s.strip_prefix("large:").unwrap_or(s);
        let mut parts = body.split(':');
        let mut next = || -> Result<u32, CommunityParseError> {
            parts
                .next()
                .ok_or_else(|| err("expected large:a:b:c"))?
                .parse::<u32>()
                .map_err(|_| err("each part must be a number in 0..=4294967295"))
        };
        let value = Self {
            global_admin: next()?,
            local1: next()?,
            local2: next()?,
        };
        if parts.next().is_some() {
            return Err(err("expected large:a:b:c"));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_community_round_trips() {
        let c: Community = "65000:100".parse().unwrap();
        assert_eq!(c.0, 65000 << 16 | 100);
        assert_eq!(c.to_string(), "65000:100");
    }

    #[test]
    fn standard_community_rejects_out_of_range_parts() {
        assert!("65536:1".parse::<Community>().is_err());
        assert!("1".parse::<Community>().is_err());
        assert!("a:b".parse::<Community>().is_err());
    }

    #[test]
    fn large_community_round_trips_with_and_without_prefix() {
        let l: LargeCommunity = "large:4200000000:1:2".parse().unwrap();
        assert_eq!(
            l,
            LargeCommunity {
                global_admin: 4_200_000_000,
                local1: 1,
                local2: 2
            }
        );
        assert_eq!(l.to_string(), "large:4200000000:1:2");
        assert_eq!("4200000000:1:2".parse::<LargeCommunity>().unwrap(), l);
        assert!("large:1:2".parse::<LargeCommunity>().is_err());
        assert!("large:1:2:3:4".parse::<LargeCommunity>().is_err());
    }
}
