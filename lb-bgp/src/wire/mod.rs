//! The BGP-4 wire codec: bytes ⇄ typed messages, pure and panic-free.
//!
//! [`frame_len`] finds message boundaries in a byte stream and checks the header;
//! [`Message::decode`] parses one whole message; [`Message::encode`] writes one. Malformed
//! input is a [`DecodeError`] that carries the [`Notification`] the speaker must send
//! (RFC 4271 §6). UPDATE errors that RFC 7606 handles without a session reset do not fail the
//! decode: they are recorded in [`Update::issues`] and, for "treat-as-withdraw", the UPDATE's
//! announced prefixes are moved to its withdrawn prefixes.

mod attribute;
mod notification;
mod open;
mod prefix;
mod reader;
mod update;

use std::fmt;

pub use attribute::{
    AsPath, AsPathSegment, Attribute, ExtendedCommunity, MpNextHop, MpReach, MpUnreach, Origin,
    SegmentType, attr_type,
};
pub use notification::{
    ErrorCode, Notification, cease, fsm, header, open as open_error, route_refresh,
    update as update_error,
};
pub use open::{AS_TRANS, Capability, GracefulRestart, GracefulRestartFamily, Open};
pub use update::{Treatment, Update, UpdateIssue};

pub(crate) use attribute::encode_attribute;
pub(crate) use prefix::{ipv4_prefixes, prefix_wire_len};
use reader::Reader;

/// The 16-octet all-ones marker that starts every message.
pub const MARKER: [u8; 16] = [0xff; 16];
/// Length of the fixed header (marker, length, type).
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended-message capability (RFC 4271).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Message type codes.
pub mod message_type {
    /// OPEN.
    pub const OPEN: u8 = 1;
    /// UPDATE.
    pub const UPDATE: u8 = 2;
    /// NOTIFICATION.
    pub const NOTIFICATION: u8 = 3;
    /// KEEPALIVE.
    pub const KEEPALIVE: u8 = 4;
    /// ROUTE-REFRESH (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 5;
}

/// An address family and subsequent address family (AFI/SAFI) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address Family Identifier (1 = IPv4, 2 = IPv6).
    pub afi: u16,
    /// Subsequent Address Family Identifier (1 = unicast).
    pub safi: u8,
}

impl Family {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Self = Self { afi: 1, safi: 1 };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Self = Self { afi: 2, safi: 1 };

    /// The family of an IP prefix (unicast).
    pub fn of(prefix: &ipnet::IpNet) -> Self {
        match prefix {
            ipnet::IpNet::V4(_) => Self::IPV4_UNICAST,
            ipnet::IpNet::V6(_) => Self::IPV6_UNICAST,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Self::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            Family { afi, safi } => write!(f, "afi {afi} safi {safi}"),
        }
    }
}

/// What the decoder and encoder need to know about the session: how AS numbers are written in
/// AS_PATH. Both sides must have advertised the 4-octet AS capability (RFC 6793) for 4-octet
/// AS_PATH encoding; before the OPEN exchange it does not matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Codec {
    /// AS_PATH and AGGREGATOR carry 4-octet AS numbers.
    pub four_octet_as: bool,
}

impl Codec {
    /// The codec of a session where both sides support 4-octet AS numbers.
    pub const FOUR_OCTET: Self = Self {
        four_octet_as: true,
    };
}

/// A ROUTE-REFRESH message (RFC 2918, subtypes of RFC 7313).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family to re-send.
    pub family: Family,
    /// 0 = normal request, 1 = Beginning of Route Refresh, 2 = End of Route Refresh.
    pub subtype: u8,
}

/// One BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message's type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Self::Open(_) => message_type::OPEN,
            Self::Update(_) => message_type::UPDATE,
            Self::Notification(_) => message_type::NOTIFICATION,
            Self::Keepalive => message_type::KEEPALIVE,
            Self::RouteRefresh(_) => message_type::ROUTE_REFRESH,
        }
    }

    /// A short name for logs ("OPEN", "UPDATE", ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Open(_) => "OPEN",
            Self::Update(_) => "UPDATE",
            Self::Notification(_) => "NOTIFICATION",
            Self::Keepalive => "KEEPALIVE",
            Self::RouteRefresh(_) => "ROUTE-REFRESH",
        }
    }

    /// Decodes one whole message (header included). `bytes` must hold exactly one message, as
    /// delimited by [`frame_len`].
    pub fn decode(bytes: &[u8], codec: Codec) -> Result<Self, DecodeError> {
        let len = frame_len(bytes)?.ok_or_else(|| {
            DecodeError::new(
                Notification::new(ErrorCode::MessageHeader, header::BAD_MESSAGE_LENGTH, vec![]),
                "message shorter than its header",
            )
        })?;
        if len != bytes.len() {
            return Err(DecodeError::new(
                Notification::new(
                    ErrorCode::MessageHeader,
                    header::BAD_MESSAGE_LENGTH,
                    length_data(len),
                ),
                "length field does not match the message size",
            ));
        }
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        match bytes.get(18).copied().unwrap_or_default() {
            message_type::OPEN => open::decode(body).map(Self::Open),
            message_type::UPDATE => update::decode(body, codec).map(Self::Update),
            message_type::NOTIFICATION => decode_notification(body).map(Self::Notification),
            message_type::KEEPALIVE => Ok(Self::Keepalive),
            _ => decode_route_refresh(body).map(Self::RouteRefresh),
        }
    }

    /// Appends the encoded message to `out`.
    ///
    /// Fails when the message would exceed [`MAX_MESSAGE_LEN`] or a field does not fit its
    /// wire width; `out` is left as it was.
    pub fn encode(&self, codec: Codec, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&[0, 0, self.type_code()]);
        let result = match self {
            Self::Open(open) => open::encode(open, out),
            Self::Update(update) => update::encode(update, codec, out),
            Self::Notification(n) => {
                out.push(n.code);
                out.push(n.subcode);
                out.extend_from_slice(&n.data);
                Ok(())
            }
            Self::Keepalive => Ok(()),
            Self::RouteRefresh(rr) => {
                out.extend_from_slice(&rr.family.afi.to_be_bytes());
                out.push(rr.subtype);
                out.push(rr.family.safi);
                Ok(())
            }
        };
        let len = out.len() - start;
        let result = match result {
            Ok(()) if len > MAX_MESSAGE_LEN => Err(EncodeError::TooLong(len)),
            other => other,
        };
        match (result, u16::try_from(len)) {
            (Ok(()), Ok(len16)) => {
                if let Some(field) = out.get_mut(start + 16..start + 18) {
                    field.copy_from_slice(&len16.to_be_bytes());
                }
                Ok(())
            }
            (Err(err), _) => {
                out.truncate(start);
                Err(err)
            }
            (Ok(()), Err(_)) => {
                out.truncate(start);
                Err(EncodeError::TooLong(len))
            }
        }
    }

    /// The encoded message as a new vector.
    pub fn to_bytes(&self, codec: Codec) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(codec, &mut out)?;
        Ok(out)
    }
}

fn length_data(len: usize) -> Vec<u8> {
    u16::try_from(len)
        .unwrap_or(u16::MAX)
        .to_be_bytes()
        .to_vec()
}

/// Checks the header at the start of `buf` and returns the length of the message it starts,
/// or `None` when fewer than [`HEADER_LEN`] bytes are buffered.
///
/// Errors are the Message Header Errors of RFC 4271 §6.1: a wrong marker, a length outside
/// 19..=4096 or below the minimum of the type, an unknown type.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let (marker, rest) = head.split_at(16);
    if marker != MARKER {
        return Err(DecodeError::new(
            Notification::new(
                ErrorCode::MessageHeader,
                header::CONNECTION_NOT_SYNCHRONIZED,
                vec![],
            ),
            "marker is not all ones",
        ));
    }
    let [l0, l1, kind] = [rest.first(), rest.get(1), rest.get(2)].map(|b| b.copied().unwrap_or(0));
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let min = match kind {
        message_type::OPEN => HEADER_LEN + 10,
        message_type::UPDATE => HEADER_LEN + 4,
        message_type::NOTIFICATION => HEADER_LEN + 2,
        message_type::KEEPALIVE => HEADER_LEN,
        message_type::ROUTE_REFRESH => HEADER_LEN + 4,
        _ => {
            return Err(DecodeError::new(
                Notification::new(
                    ErrorCode::MessageHeader,
                    header::BAD_MESSAGE_TYPE,
                    vec![kind],
                ),
                "unknown message type",
            ));
        }
    };
    let exact = matches!(kind, message_type::KEEPALIVE | message_type::ROUTE_REFRESH);
    if len < min || len > MAX_MESSAGE_LEN || (exact && len != min) {
        return Err(DecodeError::new(
            Notification::new(
                ErrorCode::MessageHeader,
                header::BAD_MESSAGE_LENGTH,
                vec![l0, l1],
            ),
            "message length out of range for its type",
        ));
    }
    Ok(Some(len))
}

fn decode_notification(body: &[u8]) -> Result<Notification, DecodeError> {
    let mut r = Reader::new(body);
    match (r.u8(), r.u8()) {
        (Some(code), Some(subcode)) => Ok(Notification {
            code,
            subcode,
            data: r.rest().to_vec(),
        }),
        _ => Err(DecodeError::new(
            Notification::new(ErrorCode::MessageHeader, header::BAD_MESSAGE_LENGTH, vec![]),
            "NOTIFICATION shorter than code and subcode",
        )),
    }
}

fn decode_route_refresh(body: &[u8]) -> Result<RouteRefresh, DecodeError> {
    let mut r = Reader::new(body);
    match (r.u16(), r.u8(), r.u8()) {
        (Some(afi), Some(subtype), Some(safi)) if r.is_empty() => Ok(RouteRefresh {
            family: Family { afi, safi },
            subtype,
        }),
        _ => Err(DecodeError::new(
            Notification::new(
                ErrorCode::RouteRefresh,
                route_refresh::INVALID_MESSAGE_LENGTH,
                length_data(body.len() + HEADER_LEN),
            ),
            "ROUTE-REFRESH is not 23 octets",
        )),
    }
}

/// A message that cannot be accepted: the session must send [`DecodeError::notification`]
/// and close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The NOTIFICATION to send to the peer.
    pub notification: Notification,
    /// What was wrong, for logs.
    pub reason: &'static str,
}

impl DecodeError {
    pub(crate) fn new(notification: Notification, reason: &'static str) -> Self {
        Self {
            notification,
            reason,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.notification)
    }
}

impl std::error::Error for DecodeError {}

/// A message that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would be longer than [`MAX_MESSAGE_LEN`] octets.
    #[error("message of {0} octets exceeds the 4096-octet limit")]
    TooLong(usize),
    /// A field does not fit its wire width.
    #[error("{0} does not fit its field")]
    FieldTooLong(&'static str),
}
