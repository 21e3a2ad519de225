//! Prefixes in the NLRI encoding (RFC 4271 §4.3: length in bits, then the significant
//! octets), for the UPDATE body and MP_REACH/MP_UNREACH (RFC 4760).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::notification::update as sub;
use super::update::reset;
use super::{DecodeError, Reader};

/// Reads prefixes of `family` in the NLRI encoding (length in bits, then the significant
/// octets). Errors are Invalid Network Field (RFC 7606 §5.3: session reset).
pub(super) fn decode_prefixes(bytes: &[u8], v6: bool) -> Result<Vec<IpNet>, DecodeError> {
    let max = if v6 { 128 } else { 32 };
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while let Some(len) = r.u8() {
        if len > max {
            return Err(reset(
                sub::INVALID_NETWORK_FIELD,
                vec![],
                "prefix length too long",
            ));
        }
        let octets = r
            .take(usize::from(len).div_ceil(8))
            .ok_or_else(|| reset(sub::INVALID_NETWORK_FIELD, vec![], "prefix truncated"))?;
        let net = if v6 {
            let mut a = [0u8; 16];
            a.iter_mut().zip(octets).for_each(|(d, s)| *d = *s);
            Ipv6Net::new(Ipv6Addr::from(a), len).map(|n| IpNet::V6(n.trunc()))
        } else {
            let mut a = [0u8; 4];
            a.iter_mut().zip(octets).for_each(|(d, s)| *d = *s);
            Ipv4Net::new(Ipv4Addr::from(a), len).map(|n| IpNet::V4(n.trunc()))
        };
        out.push(net.map_err(|_| reset(sub::INVALID_NETWORK_FIELD, vec![], "bad prefix"))?);
    }
    Ok(out)
}

/// The IPv4 prefixes among `prefixes`, in order.
pub(crate) fn ipv4_prefixes<'a>(prefixes: impl IntoIterator<Item = &'a IpNet>) -> Vec<Ipv4Net> {
    prefixes
        .into_iter()
        .filter_map(|p| match p {
            IpNet::V4(n) => Some(*n),
            IpNet::V6(_) => None,
        })
        .collect()
}

/// Octets one prefix takes in NLRI form: its length, then the significant octets.
pub(crate) fn prefix_wire_len(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}

pub(super) fn encode_prefix(prefix: &IpNet, out: &mut Vec<u8>) {
    let len = prefix.prefix_len();
    let octets = prefix_wire_len(prefix) - 1;
    out.push(len);
    match prefix.trunc().addr() {
        IpAddr::V4(a) => out.extend(a.octets().into_iter().take(octets)),
        IpAddr::V6(a) => out.extend(a.octets().into_iter().take(octets)),
    }
}
