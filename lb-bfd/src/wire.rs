//! BFD control packets (RFC 5880 §4.1), in the style of the other codecs of this project: a
//! zero-copy view ([`ControlPacket`]) that reads and writes fields in place, and a plain value
//! ([`ControlRepr`]) parsed from a view and emitted into a buffer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! ```
//!
//! Intervals are in microseconds. Nothing here panics on any input: a view made with
//! [`ControlPacket::new_unchecked`] over a short buffer reads missing bytes as zero and
//! ignores writes past its end; [`ControlRepr::parse`] applies every check of RFC 5880 §6.8.6
//! that depends on the packet alone.

/// The BFD version this codec reads and writes.
pub const VERSION: u8 = 1;

/// Why bytes could not be parsed or a value could not be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the mandatory section, or than the length field says.
    #[error("bfd: truncated: {needed} bytes needed, {available} present")]
    Truncated {
        /// Bytes the packet needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// A field holds a value RFC 5880 §6.8.6 says to discard.
    #[error("bfd: malformed: {0}")]
    Malformed(&'static str),
    /// Valid, but not something this crate does (authentication).
    #[error("bfd: unsupported: {0}")]
    Unsupported(&'static str),
    /// The output buffer is too small.
    #[error("bfd: buffer too small: {needed} bytes needed, {available} present")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
}

/// A session state (RFC 5880 §4.1, the `Sta` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// 0: held down by an administrator.
    AdminDown,
    /// 1: down.
    Down,
    /// 2: the remote system is heard, the session is coming up.
    Init,
    /// 3: up.
    Up,
}

impl State {
    fn from_bits(v: u8) -> Self {
        match v & 0x03 {
            0 => Self::AdminDown,
            1 => Self::Down,
            2 => Self::Init,
            _ => Self::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::AdminDown => 0,
            Self::Down => 1,
            Self::Init => 2,
            Self::Up => 3,
        }
    }

    /// The name FRR and the RFC use: `AdminDown`, `Down`, `Init`, `Up`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdminDown => "AdminDown",
            Self::Down => "Down",
            Self::Init => "Init",
            Self::Up => "Up",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the local system last changed state (RFC 5880 §4.1, the `Diag` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0.
    None,
    /// 1: no packet from the remote system within the detection time.
    ControlDetectionTimeExpired,
    /// 2.
    EchoFunctionFailed,
    /// 3: the remote system said it went down.
    NeighborSignaledSessionDown,
    /// 4.
    ForwardingPlaneReset,
    /// 5.
    PathDown,
    /// 6.
    ConcatenatedPathDown,
    /// 7: held down by an administrator.
    AdministrativelyDown,
    /// 8.
    ReverseConcatenatedPathDown,
    /// 9–31: reserved.
    Reserved(u8),
}

impl Diagnostic {
    fn from_bits(v: u8) -> Self {
        match v & 0x1f {
            0 => Self::None,
            1 => Self::ControlDetectionTimeExpired,
            2 => Self::EchoFunctionFailed,
            3 => Self::NeighborSignaledSessionDown,
            4 => Self::ForwardingPlaneReset,
            5 => Self::PathDown,
            6 => Self::ConcatenatedPathDown,
            7 => Self::AdministrativelyDown,
            8 => Self::ReverseConcatenatedPathDown,
            other => Self::Reserved(other),
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::None => 0,
            Self::ControlDetectionTimeExpired => 1,
            Self::EchoFunctionFailed => 2,
            Self::NeighborSignaledSessionDown => 3,
            Self::ForwardingPlaneReset => 4,
            Self::PathDown => 5,
            Self::ConcatenatedPathDown => 6,
            Self::AdministrativelyDown => 7,
            Self::ReverseConcatenatedPathDown => 8,
            Self::Reserved(v) => v & 0x1f,
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::None => "no diagnostic",
            Self::ControlDetectionTimeExpired => "control detection time expired",
            Self::EchoFunctionFailed => "echo function failed",
            Self::NeighborSignaledSessionDown => "neighbor signaled session down",
            Self::ForwardingPlaneReset => "forwarding plane reset",
            Self::PathDown => "path down",
            Self::ConcatenatedPathDown => "concatenated path down",
            Self::AdministrativelyDown => "administratively down",
            Self::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Self::Reserved(v) => return write!(f, "reserved diagnostic {v}"),
        };
        f.write_str(s)
    }
}

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CPI: u8 = 0x08;
const FLAG_AUTH: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

/// A view of a BFD control packet.
#[derive(Debug, Clone)]
pub struct ControlPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn byte(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

fn word(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    for (i, slot) in b.iter_mut().enumerate() {
        *slot = byte(buf, at + i);
    }
    u32::from_be_bytes(b)
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        if let Some(slot) = buf.get_mut(at + i) {
            *slot = *b;
        }
    }
}

impl<T: AsRef<[u8]>> ControlPacket<T> {
    /// Length of the mandatory section (a packet without authentication).
    pub const LEN: usize = 24;

    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds the mandatory section and at least the length its length
    /// field declares.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self { buffer };
        let available = packet.buffer.as_ref().len();
        if available < Self::LEN {
            return Err(WireError::Truncated {
                needed: Self::LEN,
                available,
            });
        }
        let declared = usize::from(packet.length());
        if declared > available {
            return Err(WireError::Truncated {
                needed: declared,
                available,
            });
        }
        Ok(packet)
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (1).
    pub fn version(&self) -> u8 {
        byte(self.buffer.as_ref(), 0) >> 5
    }

    /// Diagnostic.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::from_bits(byte(self.buffer.as_ref(), 0))
    }

    /// State.
    pub fn state(&self) -> State {
        State::from_bits(byte(self.buffer.as_ref(), 1) >> 6)
    }

    fn flag(&self, bit: u8) -> bool {
        byte(self.buffer.as_ref(), 1) & bit != 0
    }

    /// Poll (P): the sender asks for a packet with Final.
    pub fn poll(&self) -> bool {
        self.flag(FLAG_POLL)
    }

    /// Final (F): the answer to a Poll.
    pub fn final_(&self) -> bool {
        self.flag(FLAG_FINAL)
    }

    /// Control Plane Independent (C).
    pub fn control_plane_independent(&self) -> bool {
        self.flag(FLAG_CPI)
    }

    /// Authentication Present (A).
    pub fn authentication_present(&self) -> bool {
        self.flag(FLAG_AUTH)
    }

    /// Demand (D).
    pub fn demand(&self) -> bool {
        self.flag(FLAG_DEMAND)
    }

    /// Multipoint (M), reserved: must be zero.
    pub fn multipoint(&self) -> bool {
        self.flag(FLAG_MULTIPOINT)
    }

    /// Detect Mult.
    pub fn detect_mult(&self) -> u8 {
        byte(self.buffer.as_ref(), 2)
    }

    /// Length of the packet in bytes, as the packet says.
    pub fn length(&self) -> u8 {
        byte(self.buffer.as_ref(), 3)
    }

    /// My Discriminator.
    pub fn my_discriminator(&self) -> u32 {
        word(self.buffer.as_ref(), 4)
    }

    /// Your Discriminator.
    pub fn your_discriminator(&self) -> u32 {
        word(self.buffer.as_ref(), 8)
    }

    /// Desired Min TX Interval, in microseconds.
    pub fn desired_min_tx(&self) -> u32 {
        word(self.buffer.as_ref(), 12)
    }

    /// Required Min RX Interval, in microseconds.
    pub fn required_min_rx(&self) -> u32 {
        word(self.buffer.as_ref(), 16)
    }

    /// Required Min Echo RX Interval, in microseconds.
    pub fn required_min_echo_rx(&self) -> u32 {
        word(self.buffer.as_ref(), 20)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ControlPacket<T> {
    /// Sets version, diagnostic, state, flags, detect multiplier and length.
    fn set_header(&mut self, repr: &ControlRepr) {
        let mut flags = repr.state.bits() << 6;
        for (on, bit) in [
            (repr.poll, FLAG_POLL),
            (repr.final_, FLAG_FINAL),
            (repr.control_plane_independent, FLAG_CPI),
            (repr.demand, FLAG_DEMAND),
        ] {
            if on {
                flags |= bit;
            }
        }
        let len = u8::try_from(Self::LEN).unwrap_or(u8::MAX);
        put(
            self.buffer.as_mut(),
            0,
            &[
                (VERSION << 5) | repr.diagnostic.bits(),
                flags,
                repr.detect_mult,
                len,
            ],
        );
    }

    /// Sets the discriminators and intervals.
    fn set_fields(&mut self, repr: &ControlRepr) {
        let buf = self.buffer.as_mut();
        put(buf, 4, &repr.my_discriminator.to_be_bytes());
        put(buf, 8, &repr.your_discriminator.to_be_bytes());
        put(buf, 12, &repr.desired_min_tx.to_be_bytes());
        put(buf, 16, &repr.required_min_rx.to_be_bytes());
        put(buf, 20, &repr.required_min_echo_rx.to_be_bytes());
    }
}

/// A BFD control packet without authentication, as a value. Intervals are in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRepr {
    /// Why the sender last changed state.
    pub diagnostic: Diagnostic,
    /// The sender's state.
    pub state: State,
    /// Poll (P).
    pub poll: bool,
    /// Final (F).
    pub final_: bool,
    /// Control Plane Independent (C).
    pub control_plane_independent: bool,
    /// Demand (D).
    pub demand: bool,
    /// Detect Mult: the sender's detection time is this times the agreed interval.
    pub detect_mult: u8,
    /// The sender's discriminator of the session (never zero).
    pub my_discriminator: u32,
    /// The receiver's discriminator as the sender knows it (zero when it does not).
    pub your_discriminator: u32,
    /// How often the sender wants to send, at the fastest.
    pub desired_min_tx: u32,
    /// How often the sender can receive, at the fastest (0: send nothing periodically).
    pub required_min_rx: u32,
    /// How often the sender can receive echo packets (0: no echo).
    pub required_min_echo_rx: u32,
}

impl ControlRepr {
    /// Parses a view, discarding what RFC 5880 §6.8.6 discards based on the packet alone:
    /// another version, a length under 24 or over the bytes present, a detect multiplier of
    /// zero, the Multipoint bit, a zero My Discriminator, and a zero Your Discriminator in a
    /// state other than Down or AdminDown. Authenticated packets are
    /// [`WireError::Unsupported`] (this crate runs sessions without authentication, which
    /// discard them).
    pub fn parse<T: AsRef<[u8]>>(packet: &ControlPacket<T>) -> Result<Self, WireError> {
        let available = packet.buffer.as_ref().len();
        if available < ControlPacket::<T>::LEN {
            return Err(WireError::Truncated {
                needed: ControlPacket::<T>::LEN,
                available,
            });
        }
        if packet.version() != VERSION {
            return Err(WireError::Malformed("version other than 1"));
        }
        let length = usize::from(packet.length());
        if length < ControlPacket::<T>::LEN {
            return Err(WireError::Malformed("length under 24"));
        }
        if length > available {
            return Err(WireError::Truncated {
                needed: length,
                available,
            });
        }
        if packet.authentication_present() {
            return Err(WireError::Unsupported("authentication"));
        }
        if packet.detect_mult() == 0 {
            return Err(WireError::Malformed("detect multiplier 0"));
        }
        if packet.multipoint() {
            return Err(WireError::Malformed("multipoint bit set"));
        }
        if packet.my_discriminator() == 0 {
            return Err(WireError::Malformed("my discriminator 0"));
        }
        let state = packet.state();
        if packet.your_discriminator() == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(WireError::Malformed(
                "your discriminator 0 in state Init or Up",
            ));
        }
        Ok(Self {
            diagnostic: packet.diagnostic(),
            state,
            poll: packet.poll(),
            final_: packet.final_(),
            control_plane_independent: packet.control_plane_independent(),
            demand: packet.demand(),
            detect_mult: packet.detect_mult(),
            my_discriminator: packet.my_discriminator(),
            your_discriminator: packet.your_discriminator(),
            desired_min_tx: packet.desired_min_tx(),
            required_min_rx: packet.required_min_rx(),
            required_min_echo_rx: packet.required_min_echo_rx(),
        })
    }

    /// Parses bytes: [`ControlPacket::new_checked`] then [`ControlRepr::parse`].
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        Self::parse(&ControlPacket::new_checked(bytes)?)
    }

    /// Bytes the packet takes.
    pub const fn buffer_len(&self) -> usize {
        ControlPacket::<&[u8]>::LEN
    }

    /// Writes the packet at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        if buf.len() < self.buffer_len() {
            return Err(WireError::BufferTooSmall {
                needed: self.buffer_len(),
                available: buf.len(),
            });
        }
        let mut packet = ControlPacket::new_unchecked(buf);
        packet.set_header(self);
        packet.set_fields(self);
        Ok(())
    }

    /// The packet as bytes.
    pub fn to_bytes(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        // 24 bytes always hold it.
        let _ = self.emit(&mut out);
        out
    }
}
