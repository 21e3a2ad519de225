//! OPEN messages and capabilities (RFC 4271 §4.2, RFC 5492, RFC 9072).

use std::net::Ipv4Addr;

use super::notification::{ErrorCode, Notification, open as sub};
use super::{DecodeError, EncodeError, Family, Reader};

/// The 2-octet AS number written in place of a 4-octet one for old peers (RFC 6793).
pub const AS_TRANS: u16 = 23456;

const PARAM_CAPABILITIES: u8 = 2;
const PARAM_EXTENDED: u8 = 255;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_GRACEFUL_RESTART: u8 = 64;
const CAP_FOUR_OCTET_AS: u8 = 65;
const CAP_ENHANCED_ROUTE_REFRESH: u8 = 70;

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The "My Autonomous System" field: the ASN, or [`AS_TRANS`] when it needs 4 octets.
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// The sender's BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Capabilities in the order they were sent.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`, writing [`AS_TRANS`] in the 2-octet field when `asn` needs 4 octets;
    /// the caller adds [`Capability::FourOctetAs`].
    pub fn new(
        asn: u32,
        hold_time: u16,
        router_id: Ipv4Addr,
        capabilities: Vec<Capability>,
    ) -> Self {
        Self {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            router_id,
            capabilities,
        }
    }

    /// The sender's ASN: the 4-octet AS capability when present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The 4-octet AS capability's value, if the sender advertised it.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// The families of the Multiprotocol capabilities. A peer that sends none speaks only
    /// IPv4 unicast (RFC 4760 §8).
    pub fn families(&self) -> Vec<Family> {
        let families: Vec<Family> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if families.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            families
        }
    }

    /// The graceful restart capability, if advertised.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    /// Whether the route refresh capability (standard or enhanced) is advertised.
    pub fn route_refresh(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::RouteRefresh))
    }
}

/// A capability advertised in OPEN (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions for one family (code 1, RFC 4760).
    Multiprotocol(Family),
    /// Route refresh (code 2, RFC 2918).
    RouteRefresh,
    /// Graceful restart (code 64, RFC 4724).
    GracefulRestart(GracefulRestart),
    /// 4-octet AS numbers, carrying the sender's ASN (code 65, RFC 6793).
    FourOctetAs(u32),
    /// Enhanced route refresh (code 70, RFC 7313).
    EnhancedRouteRefresh,
    /// Any other capability, kept as received.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// The graceful restart capability (RFC 4724 §3, with the N bit of RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted and will not wait for End-of-RIB from its peer.
    pub restart_state: bool,
    /// N bit: the sender applies graceful restart to NOTIFICATIONs too (RFC 8538).
    pub notification: bool,
    /// Seconds the peer should keep our routes after the session drops (12 bits).
    pub restart_time: u16,
    /// Families whose routes should be retained.
    pub families: Vec<GracefulRestartFamily>,
}

/// One family in the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: Family,
    /// F bit: forwarding state for the family was preserved across the restart.
    pub forwarding_preserved: bool,
}

fn malformed(reason: &'static str) -> DecodeError {
    DecodeError::new(
        Notification::new(ErrorCode::OpenMessage, sub::UNSPECIFIC, vec![]),
        reason,
    )
}

pub(super) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
    let mut r = Reader::new(body);
    let (Some(version), Some(my_as), Some(hold_time), Some(id), Some(opt_len)) =
        (r.u8(), r.u16(), r.u16(), r.array::<4>(), r.u8())
    else {
        return Err(malformed("OPEN shorter than its fixed fields"));
    };
    if version != 4 {
        return Err(DecodeError::new(
            Notification::new(
                ErrorCode::OpenMessage,
                sub::UNSUPPORTED_VERSION_NUMBER,
                vec![0, 4],
            ),
            "BGP version is not 4",
        ));
    }
    if hold_time == 1 || hold_time == 2 {
        return Err(DecodeError::new(
            Notification::new(ErrorCode::OpenMessage, sub::UNACCEPTABLE_HOLD_TIME, vec![]),
            "hold time of 1 or 2 seconds",
        ));
    }
    // RFC 9072: a non-extended length of 255 followed by a parameter type of 255 announces
    // 2-octet parameter lengths.
    let extended = opt_len == PARAM_EXTENDED && r.rest().first() == Some(&PARAM_EXTENDED);
    let params_len = if extended {
        let _ = r.u8();
        usize::from(
            r.u16()
                .ok_or_else(|| malformed("extended parameters length truncated"))?,
        )
    } else {
        usize::from(opt_len)
    };
    if params_len != r.remaining() {
        return Err(malformed(
            "optional parameters length does not match the message",
        ));
    }
    let mut capabilities = Vec::new();
    while !r.is_empty() {
        let kind = r.u8().ok_or_else(|| malformed("parameter truncated"))?;
        let len = if extended {
            r.u16()
        } else {
            r.u8().map(u16::from)
        }
        .ok_or_else(|| malformed("parameter length truncated"))?;
        let value = r
            .take(usize::from(len))
            .ok_or_else(|| malformed("parameter overruns OPEN"))?;
        if kind != PARAM_CAPABILITIES {
            return Err(DecodeError::new(
                Notification::new(
                    ErrorCode::OpenMessage,
                    sub::UNSUPPORTED_OPTIONAL_PARAMETER,
                    vec![],
                ),
                "optional parameter other than capabilities",
            ));
        }
        decode_capabilities(value, &mut capabilities)?;
    }
    Ok(Open {
        my_as,
        hold_time,
        router_id: Ipv4Addr::from(id),
        capabilities,
    })
}

fn decode_capabilities(value: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    let mut r = Reader::new(value);
    while !r.is_empty() {
        let (Some(code), Some(len)) = (r.u8(), r.u8()) else {
            return Err(malformed("capability header truncated"));
        };
        let body = r
            .take(usize::from(len))
            .ok_or_else(|| malformed("capability overruns"))?;
        out.push(decode_capability(code, body)?);
    }
    Ok(())
}

fn decode_capability(code: u8, body: &[u8]) -> Result<Capability, DecodeError> {
    let mut r = Reader::new(body);
    let cap = match code {
        CAP_MULTIPROTOCOL => match (r.u16(), r.u8(), r.u8()) {
            (Some(afi), Some(_reserved), Some(safi)) if r.is_empty() => {
                Capability::Multiprotocol(Family { afi, safi })
            }
            _ => return Err(malformed("multiprotocol capability is not 4 octets")),
        },
        CAP_ROUTE_REFRESH if body.is_empty() => Capability::RouteRefresh,
        CAP_ENHANCED_ROUTE_REFRESH if body.is_empty() => Capability::EnhancedRouteRefresh,
        CAP_ROUTE_REFRESH | CAP_ENHANCED_ROUTE_REFRESH => {
            return Err(malformed("route refresh capability with a value"));
        }
        CAP_FOUR_OCTET_AS => match r.u32() {
            Some(asn) if r.is_empty() => Capability::FourOctetAs(asn),
            _ => return Err(malformed("4-octet AS capability is not 4 octets")),
        },
        CAP_GRACEFUL_RESTART => {
            let head = r
                .u16()
                .ok_or_else(|| malformed("graceful restart capability truncated"))?;
            if !r.remaining().is_multiple_of(4) {
                return Err(malformed("graceful restart families are not 4 octets each"));
            }
            let mut families = Vec::new();
            while let (Some(afi), Some(safi), Some(flags)) = (r.u16(), r.u8(), r.u8()) {
                families.push(GracefulRestartFamily {
                    family: Family { afi, safi },
                    forwarding_preserved: flags & 0x80 != 0,
                });
            }
            Capability::GracefulRestart(GracefulRestart {
                restart_state: head & 0x8000 != 0,
                notification: head & 0x4000 != 0,
                restart_time: head & 0x0fff,
                families,
            })
        }
        _ => Capability::Unknown {
            code,
            value: body.to_vec(),
        },
    };
    Ok(cap)
}

impl Capability {
    /// Appends the capability as a (code, length, value) triple (RFC 5492 §4), the form it
    /// takes in an OPEN and in the data of an Unsupported Capability NOTIFICATION (§3).
    ///
    /// Fails when a value does not fit its field (a graceful-restart time above 4095 s, a
    /// value over 255 octets).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_capability(self, out)
    }
}

fn encode_capability(cap: &Capability, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let (code, value): (u8, Vec<u8>) = match cap {
        Capability::Multiprotocol(f) => {
            let [a0, a1] = f.afi.to_be_bytes();
            (CAP_MULTIPROTOCOL, vec![a0, a1, 0, f.safi])
        }
        Capability::RouteRefresh => (CAP_ROUTE_REFRESH, vec![]),
        Capability::EnhancedRouteRefresh => (CAP_ENHANCED_ROUTE_REFRESH, vec![]),
        Capability::FourOctetAs(asn) => (CAP_FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
        Capability::GracefulRestart(gr) => {
            if gr.restart_time > 0x0fff {
                return Err(EncodeError::FieldTooLong("graceful restart time"));
            }
            let head = gr.restart_time
                | if gr.restart_state { 0x8000 } else { 0 }
                | if gr.notification { 0x4000 } else { 0 };
            let mut v = head.to_be_bytes().to_vec();
            for f in &gr.families {
                v.extend_from_slice(&f.family.afi.to_be_bytes());
                v.push(f.family.safi);
                v.push(if f.forwarding_preserved { 0x80 } else { 0 });
            }
            (CAP_GRACEFUL_RESTART, v)
        }
        Capability::Unknown { code, value } => (*code, value.clone()),
    };
    let len = u8::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong("capability"))?;
    out.push(code);
    out.push(len);
    out.extend_from_slice(&value);
    Ok(())
}

pub(super) fn encode(open: &Open, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.push(4);
    out.extend_from_slice(&open.my_as.to_be_bytes());
    out.extend_from_slice(&open.hold_time.to_be_bytes());
    out.extend_from_slice(&open.router_id.octets());
    let mut caps = Vec::new();
    for cap in &open.capabilities {
        encode_capability(cap, &mut caps)?;
    }
    if caps.is_empty() {
        out.push(0);
    } else if let Ok(len) = u8::try_from(caps.len() + 2) {
        out.push(len);
        out.push(PARAM_CAPABILITIES);
        out.push(len - 2);
        out.extend_from_slice(&caps);
    } else {
        // RFC 9072 extended optional parameters.
        let len = u16::try_from(caps.len())
            .map_err(|_| EncodeError::FieldTooLong("optional parameters"))?;
        out.extend_from_slice(&[PARAM_EXTENDED, PARAM_EXTENDED]);
        out.extend_from_slice(&(len + 3).to_be_bytes());
        out.push(PARAM_CAPABILITIES);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&caps);
    }
    Ok(())
}
