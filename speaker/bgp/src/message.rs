//! The BGP-4 message frame (RFC 4271 §4): header, OPEN with capabilities (RFC 5492, 4760,
//! 6793), KEEPALIVE and NOTIFICATION. UPDATE lives in [`crate::update`].

use std::net::Ipv4Addr;

use crate::{
    error::MessageError,
    restart::{CAPABILITY_GRACEFUL_RESTART, GracefulRestart},
    update::Update,
};

/// Length of the fixed header: marker, length and type.
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended message capability (RFC 8654), which we never offer.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The 2-octet stand-in for an ASN above 65535 (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;
/// Capability code of Multiprotocol Extensions (RFC 4760).
pub const CAPABILITY_MULTIPROTOCOL: u8 = 1;
/// Capability code of 4-octet AS numbers (RFC 6793).
pub const CAPABILITY_FOUR_OCTET_AS: u8 = 65;
/// Address family identifier of IPv4.
pub const AFI_IPV4: u16 = 1;
/// Address family identifier of IPv6.
pub const AFI_IPV6: u16 = 2;
/// Subsequent address family identifier of unicast.
pub const SAFI_UNICAST: u8 = 1;

const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;
const PARAMETER_CAPABILITIES: u8 = 2;

/// How AS numbers are written in AS_PATH: two octets until both sides announced the 4-octet
/// AS capability (RFC 6793 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AsWidth {
    /// 2-octet AS numbers; larger ones are written as [`AS_TRANS`].
    Two,
    /// 4-octet AS numbers.
    Four,
}

/// One BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Type 1: the first message on a connection.
    Open(Open),
    /// Type 2: routes announced and withdrawn.
    Update(Box<Update>),
    /// Type 3: an error; the sender closes the connection after it.
    Notification(Notification),
    /// Type 4: proof of life, and the acceptance of an OPEN.
    Keepalive,
}

impl Message {
    /// Parses exactly one message, header included. `width` says how AS_PATH is written on
    /// this session. Never panics; every error maps to a NOTIFICATION.
    pub fn parse(bytes: &[u8], width: AsWidth) -> Result<Self, MessageError> {
        let length = frame_len(bytes)?;
        if bytes.len() != length {
            return Err(MessageError::BadLength {
                length: u16::try_from(bytes.len()).unwrap_or(u16::MAX),
            });
        }
        let body = &bytes[HEADER_LEN..];
        let kind = bytes[18];
        let minimum = match kind {
            OPEN => 10,
            UPDATE => 4,
            NOTIFICATION => 2,
            KEEPALIVE => 0,
            kind => return Err(MessageError::BadType { kind }),
        };
        if body.len() < minimum || (kind == KEEPALIVE && !body.is_empty()) {
            return Err(MessageError::BadLength {
                length: length as u16,
            });
        }
        match kind {
            OPEN => Open::parse_body(body).map(Self::Open),
            UPDATE => Update::parse_body(body, width).map(|update| Self::Update(Box::new(update))),
            NOTIFICATION => Ok(Self::Notification(Notification {
                code: body[0],
                subcode: body[1],
                data: body[2..].to_vec(),
            })),
            _ => Ok(Self::Keepalive),
        }
    }

    /// Encodes the message with its header. An UPDATE larger than [`MAX_MESSAGE_LEN`] is the
    /// caller's mistake; the outbound RIB never builds one.
    pub fn encode(&self, width: AsWidth) -> Vec<u8> {
        let mut out = vec![0xff; 16];
        out.extend_from_slice(&[0, 0]);
        match self {
            Self::Open(open) => {
                out.push(OPEN);
                open.encode_body(&mut out);
            }
            Self::Update(update) => {
                out.push(UPDATE);
                update.encode_body(&mut out, width);
            }
            Self::Notification(notification) => {
                out.extend_from_slice(&[NOTIFICATION, notification.code, notification.subcode]);
                out.extend_from_slice(&notification.data);
            }
            Self::Keepalive => out.push(KEEPALIVE),
        }
        let length = u16::try_from(out.len()).unwrap_or(u16::MAX);
        out[16..18].copy_from_slice(&length.to_be_bytes());
        out
    }
}

/// Checks a message header and returns the message's total length. `header` needs at least
/// [`HEADER_LEN`] bytes; this is how a byte stream is cut into messages.
pub fn frame_len(header: &[u8]) -> Result<usize, MessageError> {
    let Some(header) = header.get(..HEADER_LEN) else {
        return Err(MessageError::BadLength {
            length: header.len() as u16,
        });
    };
    if header[..16].iter().any(|&byte| byte != 0xff) {
        return Err(MessageError::NotSynchronized);
    }
    let length = u16::from_be_bytes([header[16], header[17]]);
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&usize::from(length)) {
        return Err(MessageError::BadLength { length });
    }
    Ok(usize::from(length))
}

/// An OPEN message (RFC 4271 §4.2). The version is always 4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// My Autonomous System: the sender's ASN, or [`AS_TRANS`] when it needs four octets.
    pub my_as: u16,
    /// Proposed hold time in seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// BGP Identifier (router ID).
    pub router_id: Ipv4Addr,
    /// Capabilities from every Capabilities optional parameter, in order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The ASN the sender speaks for: the 4-octet AS capability if present, else My AS.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|capability| match capability {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Whether the sender announced the capability.
    pub fn has(&self, wanted: &Capability) -> bool {
        self.capabilities.contains(wanted)
    }

    /// Whether the sender supports 4-octet AS numbers.
    pub fn four_octet_as(&self) -> bool {
        self.capabilities
            .iter()
            .any(|capability| matches!(capability, Capability::FourOctetAs(_)))
    }

    /// The sender's Graceful Restart capability; of several, the last counts (RFC 4724 §3).
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities
            .iter()
            .rev()
            .find_map(|capability| match capability {
                Capability::GracefulRestart(restart) => Some(restart),
                _ => None,
            })
    }

    /// Whether the sender announced any Multiprotocol capability; without one, IPv4 unicast
    /// is implied (RFC 4760 §8).
    pub fn multiprotocol(&self) -> bool {
        self.capabilities
            .iter()
            .any(|capability| matches!(capability, Capability::Multiprotocol { .. }))
    }

    fn parse_body(body: &[u8]) -> Result<Self, MessageError> {
        if body[0] != 4 {
            return Err(MessageError::UnsupportedVersion { version: body[0] });
        }
        let my_as = u16::from_be_bytes([body[1], body[2]]);
        let hold_time = u16::from_be_bytes([body[3], body[4]]);
        let router_id = Ipv4Addr::new(body[5], body[6], body[7], body[8]);
        let mut parameters = &body[10..];
        if parameters.len() != usize::from(body[9]) {
            return Err(MessageError::MalformedOpen);
        }
        let mut capabilities = Vec::new();
        while let [kind, length, rest @ ..] = parameters {
            let Some((value, rest)) = rest.split_at_checked(usize::from(*length)) else {
                return Err(MessageError::MalformedOpen);
            };
            if *kind != PARAMETER_CAPABILITIES {
                return Err(MessageError::UnsupportedOptionalParameter { kind: *kind });
            }
            parse_capabilities(value, &mut capabilities)?;
            parameters = rest;
        }
        if !parameters.is_empty() {
            return Err(MessageError::MalformedOpen);
        }
        Ok(Self {
            my_as,
            hold_time,
            router_id,
            capabilities,
        })
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(4);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.router_id.octets());
        let length_at = out.len();
        out.push(0);
        // One Capabilities parameter as long as they fit its one-octet length, as FRR does.
        let mut parameter_at = None;
        for capability in &self.capabilities {
            let mut encoded = Vec::new();
            capability.encode(&mut encoded);
            let fits =
                parameter_at.is_some_and(|at: usize| out.len() - at - 2 + encoded.len() <= 255);
            if !fits {
                parameter_at = Some(out.len());
                out.extend_from_slice(&[PARAMETER_CAPABILITIES, 0]);
            }
            out.extend_from_slice(&encoded);
            if let Some(at) = parameter_at {
                out[at + 1] = (out.len() - at - 2) as u8;
            }
        }
        out[length_at] = u8::try_from(out.len() - length_at - 1).unwrap_or(u8::MAX);
    }
}

fn parse_capabilities(mut bytes: &[u8], into: &mut Vec<Capability>) -> Result<(), MessageError> {
    while let [code, length, rest @ ..] = bytes {
        let Some((value, rest)) = rest.split_at_checked(usize::from(*length)) else {
            return Err(MessageError::MalformedOpen);
        };
        into.push(match (*code, value) {
            (CAPABILITY_MULTIPROTOCOL, &[a, b, _reserved, safi]) => Capability::Multiprotocol {
                afi: u16::from_be_bytes([a, b]),
                safi,
            },
            (CAPABILITY_FOUR_OCTET_AS, &[a, b, c, d]) => {
                Capability::FourOctetAs(u32::from_be_bytes([a, b, c, d]))
            }
            // A restart capability we misread could keep routes the peer meant to drop.
            (CAPABILITY_GRACEFUL_RESTART, value) => Capability::GracefulRestart(
                GracefulRestart::parse(value).ok_or(MessageError::MalformedCapability {
                    code: CAPABILITY_GRACEFUL_RESTART,
                })?,
            ),
            // Kept, not interpreted: route refresh, FQDN and the like, and Multiprotocol or
            // 4-octet AS with a wrong length, which we then simply do not use.
            (code, value) => Capability::Unknown {
                code,
                value: value.to_vec(),
            },
        });
        bytes = rest;
    }
    if bytes.is_empty() {
        Ok(())
    } else {
        Err(MessageError::MalformedOpen)
    }
}

/// One capability of an OPEN (RFC 5492).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol Extensions for one AFI/SAFI (RFC 4760 §8).
    Multiprotocol {
        /// Address family, [`AFI_IPV4`] or [`AFI_IPV6`] for the ones we use.
        afi: u16,
        /// Subsequent address family, [`SAFI_UNICAST`] for the ones we use.
        safi: u8,
    },
    /// Support for 4-octet AS numbers, carrying the sender's ASN (RFC 6793).
    FourOctetAs(u32),
    /// Graceful Restart (RFC 4724).
    GracefulRestart(GracefulRestart),
    /// Any other capability, kept as received.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

impl Capability {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Self = Self::Multiprotocol {
        afi: AFI_IPV4,
        safi: SAFI_UNICAST,
    };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Self = Self::Multiprotocol {
        afi: AFI_IPV6,
        safi: SAFI_UNICAST,
    };

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Multiprotocol { afi, safi } => {
                out.extend_from_slice(&[CAPABILITY_MULTIPROTOCOL, 4]);
                out.extend_from_slice(&afi.to_be_bytes());
                out.extend_from_slice(&[0, *safi]);
            }
            Self::FourOctetAs(asn) => {
                out.extend_from_slice(&[CAPABILITY_FOUR_OCTET_AS, 4]);
                out.extend_from_slice(&asn.to_be_bytes());
            }
            Self::GracefulRestart(restart) => {
                let at = out.len();
                out.extend_from_slice(&[CAPABILITY_GRACEFUL_RESTART, 0]);
                restart.encode_value(out);
                out[at + 1] = (out.len() - at - 2) as u8;
            }
            Self::Unknown { code, value } => {
                // A value never exceeds 255 bytes when parsed; longer ones are cut.
                let value = &value[..value.len().min(255)];
                out.extend_from_slice(&[*code, value.len() as u8]);
                out.extend_from_slice(value);
            }
        }
    }
}

/// A NOTIFICATION message (RFC 4271 §4.5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code: 1 header, 2 OPEN, 3 UPDATE, 4 hold timer expired, 5 FSM, 6 Cease.
    pub code: u8,
    /// Error subcode, meaning depends on the code.
    pub subcode: u8,
    /// Diagnostic data.
    pub data: Vec<u8>,
}

impl Notification {
    /// Error code of Cease.
    pub const CEASE: u8 = 6;

    /// The hold timer expired (4/0).
    pub fn hold_timer_expired() -> Self {
        Self::new(4, 0)
    }

    /// A message arrived that the state does not expect (RFC 6608: subcode 1 in OpenSent,
    /// 2 in OpenConfirm, 3 in Established).
    pub fn fsm_error(subcode: u8) -> Self {
        Self::new(5, subcode)
    }

    /// Cease, Administrative Shutdown (6/2, RFC 4486): we are stopping this session.
    pub fn administrative_shutdown() -> Self {
        Self::new(Self::CEASE, 2)
    }

    /// Cease, Administrative Reset (6/4, RFC 4486): the session restarts with new settings.
    pub fn administrative_reset() -> Self {
        Self::new(Self::CEASE, 4)
    }

    /// Cease, BFD Down (6/10, RFC 9384): BFD declared the forwarding path down.
    pub fn bfd_down() -> Self {
        Self::new(Self::CEASE, 10)
    }

    fn new(code: u8, subcode: u8) -> Self {
        Self {
            code,
            subcode,
            data: Vec::new(),
        }
    }
}
