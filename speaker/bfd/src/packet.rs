//! BFD Control packets (RFC 5880 §4.1) and the reception checks of §6.8.6 that need nothing
//! but the packet itself.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       My Discriminator                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Your Discriminator                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Desired Min TX Interval                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Required Min RX Interval                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! We configure no authentication, so a packet with the A bit set is refused (§6.8.6) and the
//! optional authentication section is never decoded or emitted.

use std::{
    fmt,
    num::{NonZeroU8, NonZeroU32},
};

use thiserror::Error;

/// Length of a Control packet without an authentication section, in bytes.
pub const PACKET_LEN: usize = 24;

/// The protocol version of RFC 5880.
pub const VERSION: u8 = 1;

/// The smallest Length field of a packet with the A bit set: the header plus the shortest
/// authentication section (§6.8.6).
const MIN_AUTH_LEN: u8 = 26;

/// Byte offsets of the fields.
mod field {
    use std::ops::Range;

    pub(super) const VERS_DIAG: usize = 0;
    pub(super) const FLAGS: usize = 1;
    pub(super) const DETECT_MULT: usize = 2;
    pub(super) const LENGTH: usize = 3;
    pub(super) const MY_DISCR: Range<usize> = 4..8;
    pub(super) const YOUR_DISCR: Range<usize> = 8..12;
    pub(super) const DESIRED_MIN_TX: Range<usize> = 12..16;
    pub(super) const REQUIRED_MIN_RX: Range<usize> = 16..20;
    pub(super) const REQUIRED_MIN_ECHO_RX: Range<usize> = 20..24;
}

/// Bits of the flags byte below the two state bits.
mod flag {
    pub(super) const POLL: u8 = 0x20;
    pub(super) const FINAL: u8 = 0x10;
    pub(super) const CONTROL_PLANE_INDEPENDENT: u8 = 0x08;
    pub(super) const AUTH: u8 = 0x04;
    pub(super) const DEMAND: u8 = 0x02;
    pub(super) const MULTIPOINT: u8 = 0x01;
}

/// Session state as carried in the Sta field (§4.1) and kept by a session (§6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Held down by configuration; never counts as a path failure.
    AdminDown,
    /// No session, or the session failed.
    Down,
    /// The peer has been heard, but the peer has not yet heard us.
    Init,
    /// Both directions work.
    Up,
}

impl State {
    fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
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
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AdminDown => "AdminDown",
            Self::Down => "Down",
            Self::Init => "Init",
            Self::Up => "Up",
        })
    }
}

/// Why a system last changed its session state (§4.1, the Diag field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0: no diagnostic.
    None,
    /// 1: no packet arrived within the detection time.
    ControlDetectionTimeExpired,
    /// 2: the echo function failed.
    EchoFunctionFailed,
    /// 3: the neighbor reported Down or AdminDown.
    NeighborSignaledSessionDown,
    /// 4: the forwarding plane was reset.
    ForwardingPlaneReset,
    /// 5: the path is down.
    PathDown,
    /// 6: a concatenated path is down.
    ConcatenatedPathDown,
    /// 7: held down by configuration.
    AdministrativelyDown,
    /// 8: a reverse concatenated path is down.
    ReverseConcatenatedPathDown,
    /// 9–31: codes RFC 5880 reserves. Kept so that a peer's newer code still decodes.
    Reserved(u8),
}

impl Diagnostic {
    fn from_code(code: u8) -> Self {
        match code & 0x1f {
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

    /// The 5-bit code on the wire.
    pub fn code(self) -> u8 {
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
            Self::Reserved(code) => code & 0x1f,
        }
    }
}

// The texts are FRR's, so `show bfd` here and on the router read the same.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "ok",
            Self::ControlDetectionTimeExpired => "control detection time expired",
            Self::EchoFunctionFailed => "echo function failed",
            Self::NeighborSignaledSessionDown => "neighbor signaled session down",
            Self::ForwardingPlaneReset => "forwarding plane reset",
            Self::PathDown => "path down",
            Self::ConcatenatedPathDown => "concatenated path down",
            Self::AdministrativelyDown => "administratively down",
            Self::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Self::Reserved(code) => return write!(f, "reserved diagnostic {code}"),
        })
    }
}

/// A BFD Control packet without authentication section. Intervals are in microseconds, as on
/// the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlPacket {
    /// The sender's reason for its last state change.
    pub diagnostic: Diagnostic,
    /// The sender's session state.
    pub state: State,
    /// P bit: the sender asks for a packet with the F bit back (§6.5).
    pub poll: bool,
    /// F bit: the sender answers a packet with the P bit.
    pub final_: bool,
    /// C bit: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// D bit: the sender wants to run in Demand mode.
    pub demand: bool,
    /// How many transmit intervals the receiver waits before declaring the session down.
    pub detect_multiplier: NonZeroU8,
    /// The sender's discriminator for this session.
    pub my_discriminator: NonZeroU32,
    /// The receiver's discriminator as last heard by the sender; zero while unknown.
    pub your_discriminator: u32,
    /// The fastest rate the sender wants to transmit at, in microseconds.
    pub desired_min_tx_us: u32,
    /// The fastest rate the sender can receive at, in microseconds; zero asks for no packets.
    pub required_min_rx_us: u32,
    /// The fastest rate of echo packets the sender can loop back, in microseconds; zero for none.
    pub required_min_echo_rx_us: u32,
}

impl ControlPacket {
    /// Decodes the UDP payload of a Control packet and applies the checks of RFC 5880 §6.8.6
    /// that depend on the packet alone, in the RFC's order. Bytes after the Length field are
    /// ignored. Never panics.
    ///
    /// # Errors
    ///
    /// The first check that fails, as a [`PacketError`] whose [`label`](PacketError::label)
    /// names a drop counter.
    pub fn parse(payload: &[u8]) -> Result<Self, PacketError> {
        let Some(header) = payload.first_chunk::<PACKET_LEN>() else {
            return Err(PacketError::Truncated { len: payload.len() });
        };
        let version = header[field::VERS_DIAG] >> 5;
        if version != VERSION {
            return Err(PacketError::BadVersion(version));
        }
        let flags = header[field::FLAGS];
        let auth = flags & flag::AUTH != 0;
        let length = header[field::LENGTH];
        let minimum = if auth { MIN_AUTH_LEN } else { PACKET_LEN as u8 };
        if length < minimum {
            return Err(PacketError::LengthTooShort { length, minimum });
        }
        if usize::from(length) > payload.len() {
            return Err(PacketError::LengthExceedsPayload {
                length,
                payload: payload.len(),
            });
        }
        let detect_multiplier =
            NonZeroU8::new(header[field::DETECT_MULT]).ok_or(PacketError::ZeroDetectMultiplier)?;
        if flags & flag::MULTIPOINT != 0 {
            return Err(PacketError::Multipoint);
        }
        let my_discriminator = NonZeroU32::new(read_u32(header, field::MY_DISCR))
            .ok_or(PacketError::ZeroMyDiscriminator)?;
        let your_discriminator = read_u32(header, field::YOUR_DISCR);
        let state = State::from_bits(flags >> 6);
        // Until the sender has heard us it can only be Down or AdminDown.
        if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(PacketError::ZeroYourDiscriminator(state));
        }
        if auth {
            return Err(PacketError::AuthenticationNotConfigured);
        }
        Ok(Self {
            diagnostic: Diagnostic::from_code(header[field::VERS_DIAG]),
            state,
            poll: flags & flag::POLL != 0,
            final_: flags & flag::FINAL != 0,
            control_plane_independent: flags & flag::CONTROL_PLANE_INDEPENDENT != 0,
            demand: flags & flag::DEMAND != 0,
            detect_multiplier,
            my_discriminator,
            your_discriminator,
            desired_min_tx_us: read_u32(header, field::DESIRED_MIN_TX),
            required_min_rx_us: read_u32(header, field::REQUIRED_MIN_RX),
            required_min_echo_rx_us: read_u32(header, field::REQUIRED_MIN_ECHO_RX),
        })
    }

    /// Encodes the packet as the 24-byte UDP payload.
    pub fn encode(&self) -> [u8; PACKET_LEN] {
        let mut bytes = [0; PACKET_LEN];
        bytes[field::VERS_DIAG] = (VERSION << 5) | self.diagnostic.code();
        bytes[field::FLAGS] = (self.state.bits() << 6)
            | bit(self.poll, flag::POLL)
            | bit(self.final_, flag::FINAL)
            | bit(
                self.control_plane_independent,
                flag::CONTROL_PLANE_INDEPENDENT,
            )
            | bit(self.demand, flag::DEMAND);
        bytes[field::DETECT_MULT] = self.detect_multiplier.get();
        bytes[field::LENGTH] = PACKET_LEN as u8;
        let words = [
            (field::MY_DISCR, self.my_discriminator.get()),
            (field::YOUR_DISCR, self.your_discriminator),
            (field::DESIRED_MIN_TX, self.desired_min_tx_us),
            (field::REQUIRED_MIN_RX, self.required_min_rx_us),
            (field::REQUIRED_MIN_ECHO_RX, self.required_min_echo_rx_us),
        ];
        for (range, value) in words {
            bytes[range].copy_from_slice(&value.to_be_bytes());
        }
        bytes
    }
}

fn read_u32(header: &[u8; PACKET_LEN], range: std::ops::Range<usize>) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&header[range]);
    u32::from_be_bytes(word)
}

fn bit(set: bool, mask: u8) -> u8 {
    if set { mask } else { 0 }
}

/// Why a received payload is not an acceptable Control packet (RFC 5880 §6.8.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PacketError {
    /// The payload cannot hold the mandatory section.
    #[error("payload of {len} bytes is shorter than the {PACKET_LEN}-byte control packet")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The version is not 1.
    #[error("unsupported BFD version {0}")]
    BadVersion(u8),
    /// The Length field is below the minimum for the packet's A bit.
    #[error("length field {length} is below the minimum of {minimum}")]
    LengthTooShort {
        /// The Length field.
        length: u8,
        /// 24, or 26 with the A bit set.
        minimum: u8,
    },
    /// The Length field claims more bytes than arrived.
    #[error("length field {length} exceeds the {payload}-byte payload")]
    LengthExceedsPayload {
        /// The Length field.
        length: u8,
        /// Bytes received.
        payload: usize,
    },
    /// Detect Mult is zero.
    #[error("detect multiplier is zero")]
    ZeroDetectMultiplier,
    /// The M bit, reserved for multipoint, is set.
    #[error("multipoint bit is set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("my discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero although the sender claims to have heard us.
    #[error("your discriminator is zero in state {0}")]
    ZeroYourDiscriminator(State),
    /// The A bit is set, and this side configures no authentication.
    #[error("authentication bit is set but no authentication is configured")]
    AuthenticationNotConfigured,
}

impl PacketError {
    /// A fixed snake_case name for a drop counter's label; it carries no packet values, so the
    /// metric keeps a handful of series.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::BadVersion(_) => "bad_version",
            Self::LengthTooShort { .. } => "length_too_short",
            Self::LengthExceedsPayload { .. } => "length_exceeds_payload",
            Self::ZeroDetectMultiplier => "zero_detect_multiplier",
            Self::Multipoint => "multipoint",
            Self::ZeroMyDiscriminator => "zero_my_discriminator",
            Self::ZeroYourDiscriminator(_) => "zero_your_discriminator",
            Self::AuthenticationNotConfigured => "authentication_not_configured",
        }
    }
}
