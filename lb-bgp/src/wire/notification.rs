//! NOTIFICATION messages and the error codes of RFC 4271 §4.5 and later RFCs.

use std::fmt;

/// Error codes of the NOTIFICATION message (IANA "BGP Error (Notification) Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// 1, Message Header Error (RFC 4271).
    MessageHeader = 1,
    /// 2, OPEN Message Error (RFC 4271).
    OpenMessage = 2,
    /// 3, UPDATE Message Error (RFC 4271).
    UpdateMessage = 3,
    /// 4, Hold Timer Expired (RFC 4271).
    HoldTimerExpired = 4,
    /// 5, Finite State Machine Error (RFC 4271, subcodes RFC 6608).
    FiniteStateMachine = 5,
    /// 6, Cease (RFC 4271, subcodes RFC 4486).
    Cease = 6,
    /// 7, ROUTE-REFRESH Message Error (RFC 7313).
    RouteRefresh = 7,
}

impl ErrorCode {
    /// The code for a wire value, if it is one we know.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::MessageHeader,
            2 => Self::OpenMessage,
            3 => Self::UpdateMessage,
            4 => Self::HoldTimerExpired,
            5 => Self::FiniteStateMachine,
            6 => Self::Cease,
            7 => Self::RouteRefresh,
            _ => return None,
        })
    }

    /// The RFC name of the code.
    pub fn name(self) -> &'static str {
        match self {
            Self::MessageHeader => "Message Header Error",
            Self::OpenMessage => "OPEN Message Error",
            Self::UpdateMessage => "UPDATE Message Error",
            Self::HoldTimerExpired => "Hold Timer Expired",
            Self::FiniteStateMachine => "Finite State Machine Error",
            Self::Cease => "Cease",
            Self::RouteRefresh => "ROUTE-REFRESH Message Error",
        }
    }
}

/// Subcodes of [`ErrorCode::MessageHeader`].
pub mod header {
    /// Connection Not Synchronized (the marker is not all ones).
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Bad Message Length; data is the offending length field.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Bad Message Type; data is the offending type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// Subcodes of [`ErrorCode::OpenMessage`].
pub mod open {
    /// Unspecific: a recognised optional parameter is malformed (RFC 4271 §6.2).
    pub const UNSPECIFIC: u8 = 0;
    /// Unsupported Version Number; data is the largest supported version (2 octets).
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492); data lists the capabilities.
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    /// Role Mismatch (RFC 9234).
    pub const ROLE_MISMATCH: u8 = 11;
}

/// Subcodes of [`ErrorCode::UpdateMessage`].
pub mod update {
    /// Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    /// Missing Well-known Attribute.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    /// Attribute Flags Error.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    /// Attribute Length Error.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    /// Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    /// Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Subcodes of [`ErrorCode::FiniteStateMachine`] (RFC 6608).
pub mod fsm {
    /// Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Subcodes of [`ErrorCode::Cease`] (RFC 4486, RFC 8538, RFC 9384).
pub mod cease {
    /// Maximum Number of Prefixes Reached.
    pub const MAXIMUM_PREFIXES: u8 = 1;
    /// Administrative Shutdown (data: RFC 9003 shutdown communication).
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset.
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other Configuration Change.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    /// Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// Hard Reset (RFC 8538).
    pub const HARD_RESET: u8 = 9;
    /// BFD Down (RFC 9384).
    pub const BFD_DOWN: u8 = 10;
}

/// Subcodes of [`ErrorCode::RouteRefresh`] (RFC 7313).
pub mod route_refresh {
    /// Invalid Message Length.
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// A NOTIFICATION message: the error that closes a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code (see [`ErrorCode`]); kept as the wire value so unknown codes survive.
    pub code: u8,
    /// Error subcode (see the submodules of this module).
    pub subcode: u8,
    /// Diagnostic data, format defined per code and subcode.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with the given code, subcode and data.
    pub fn new(code: ErrorCode, subcode: u8, data: Vec<u8>) -> Self {
        Self {
            code: code as u8,
            subcode,
            data,
        }
    }

    /// Cease / Administrative Shutdown with an RFC 9003 shutdown communication (truncated to
    /// 255 bytes on a character boundary).
    pub fn shutdown(message: &str) -> Self {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = message.get(..end).unwrap_or_default();
        let mut data = Vec::with_capacity(text.len() + 1);
        data.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
        data.extend_from_slice(text.as_bytes());
        Self::new(ErrorCode::Cease, cease::ADMINISTRATIVE_SHUTDOWN, data)
    }

    /// The typed error code, if known.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u8(self.code)
    }

    /// The RFC name of the subcode, if known.
    pub fn subcode_name(&self) -> Option<&'static str> {
        let name = match (self.error_code()?, self.subcode) {
            (ErrorCode::MessageHeader, header::CONNECTION_NOT_SYNCHRONIZED) => {
                "Connection Not Synchronized"
            }
            (ErrorCode::MessageHeader, header::BAD_MESSAGE_LENGTH) => "Bad Message Length",
            (ErrorCode::MessageHeader, header::BAD_MESSAGE_TYPE) => "Bad Message Type",
            (ErrorCode::OpenMessage, open::UNSPECIFIC) => "Unspecific",
            (ErrorCode::OpenMessage, open::UNSUPPORTED_VERSION_NUMBER) => {
                "Unsupported Version Number"
            }
            (ErrorCode::OpenMessage, open::BAD_PEER_AS) => "Bad Peer AS",
            (ErrorCode::OpenMessage, open::BAD_BGP_IDENTIFIER) => "Bad BGP Identifier",
            (ErrorCode::OpenMessage, open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
                "Unsupported Optional Parameter"
            }
            (ErrorCode::OpenMessage, open::UNACCEPTABLE_HOLD_TIME) => "Unacceptable Hold Time",
            (ErrorCode::OpenMessage, open::UNSUPPORTED_CAPABILITY) => "Unsupported Capability",
            (ErrorCode::OpenMessage, open::ROLE_MISMATCH) => "Role Mismatch",
            (ErrorCode::UpdateMessage, update::MALFORMED_ATTRIBUTE_LIST) => {
                "Malformed Attribute List"
            }
            (ErrorCode::UpdateMessage, update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => {
                "Unrecognized Well-known Attribute"
            }
            (ErrorCode::UpdateMessage, update::MISSING_WELL_KNOWN_ATTRIBUTE) => {
                "Missing Well-known Attribute"
            }
            (ErrorCode::UpdateMessage, update::ATTRIBUTE_FLAGS_ERROR) => "Attribute Flags Error",
            (ErrorCode::UpdateMessage, update::ATTRIBUTE_LENGTH_ERROR) => "Attribute Length Error",
            (ErrorCode::UpdateMessage, update::INVALID_ORIGIN_ATTRIBUTE) => {
                "Invalid ORIGIN Attribute"
            }
            (ErrorCode::UpdateMessage, update::INVALID_NEXT_HOP_ATTRIBUTE) => {
                "Invalid NEXT_HOP Attribute"
            }
            (ErrorCode::UpdateMessage, update::OPTIONAL_ATTRIBUTE_ERROR) => {
                "Optional Attribute Error"
            }
            (ErrorCode::UpdateMessage, update::INVALID_NETWORK_FIELD) => "Invalid Network Field",
            (ErrorCode::UpdateMessage, update::MALFORMED_AS_PATH) => "Malformed AS_PATH",
            (ErrorCode::FiniteStateMachine, fsm::UNEXPECTED_IN_OPEN_SENT) => {
                "Receive Unexpected Message in OpenSent State"
            }
            (ErrorCode::FiniteStateMachine, fsm::UNEXPECTED_IN_OPEN_CONFIRM) => {
                "Receive Unexpected Message in OpenConfirm State"
            }
            (ErrorCode::FiniteStateMachine, fsm::UNEXPECTED_IN_ESTABLISHED) => {
                "Receive Unexpected Message in Established State"
            }
            (ErrorCode::Cease, cease::MAXIMUM_PREFIXES) => "Maximum Number of Prefixes Reached",
            (ErrorCode::Cease, cease::ADMINISTRATIVE_SHUTDOWN) => "Administrative Shutdown",
            (ErrorCode::Cease, cease::PEER_DECONFIGURED) => "Peer De-configured",
            (ErrorCode::Cease, cease::ADMINISTRATIVE_RESET) => "Administrative Reset",
            (ErrorCode::Cease, cease::CONNECTION_REJECTED) => "Connection Rejected",
            (ErrorCode::Cease, cease::OTHER_CONFIGURATION_CHANGE) => "Other Configuration Change",
            (ErrorCode::Cease, cease::CONNECTION_COLLISION_RESOLUTION) => {
                "Connection Collision Resolution"
            }
            (ErrorCode::Cease, cease::OUT_OF_RESOURCES) => "Out of Resources",
            (ErrorCode::Cease, cease::HARD_RESET) => "Hard Reset",
            (ErrorCode::Cease, cease::BFD_DOWN) => "BFD Down",
            (ErrorCode::RouteRefresh, route_refresh::INVALID_MESSAGE_LENGTH) => {
                "Invalid Message Length"
            }
            _ => return None,
        };
        Some(name)
    }

    /// The RFC 9003 shutdown communication carried by an Administrative Shutdown or Reset.
    pub fn shutdown_message(&self) -> Option<&str> {
        if self.error_code() != Some(ErrorCode::Cease)
            || !matches!(
                self.subcode,
                cease::ADMINISTRATIVE_SHUTDOWN | cease::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        std::str::from_utf8(rest.get(..usize::from(len))?).ok()
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error_code() {
            Some(code) => write!(f, "{}", code.name())?,
            None => write!(f, "error code {}", self.code)?,
        }
        match self.subcode_name() {
            Some(name) => write!(f, " / {name}")?,
            None => write!(f, " / subcode {}", self.subcode)?,
        }
        if let Some(text) = self.shutdown_message() {
            write!(f, " ({text:?})")?;
        } else if !self.data.is_empty() {
            write!(f, " (data")?;
            for byte in self.data.iter().take(32) {
                write!(f, " {byte:02x}")?;
            }
            if self.data.len() > 32 {
                write!(f, " ...")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}
