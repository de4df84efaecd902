//! Why a message is refused, and the NOTIFICATION (RFC 4271 §6) each refusal answers with.

use std::net::Ipv4Addr;

use thiserror::Error;

use crate::message::{CAPABILITY_FOUR_OCTET_AS, Notification};

/// A received message, or the OPEN of a peer, that brings the session down. Each one maps to
/// the NOTIFICATION code and subcode RFC 4271 §6 (with RFC 5492 and RFC 7606) prescribes.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MessageError {
    /// The 16-byte marker is not all ones.
    #[error("header marker is not all ones")]
    NotSynchronized,
    /// The Length field is outside 19..=4096 or too short for the message type.
    #[error("bad message length {length}")]
    BadLength {
        /// The Length field as received.
        length: u16,
    },
    /// The Type field names no message we understand (ROUTE-REFRESH is never negotiated).
    #[error("bad message type {kind}")]
    BadType {
        /// The Type field as received.
        kind: u8,
    },
    /// The OPEN carries a version other than 4.
    #[error("unsupported BGP version {version}")]
    UnsupportedVersion {
        /// The Version field as received.
        version: u8,
    },
    /// The OPEN's optional parameters do not add up to its length fields.
    #[error("malformed OPEN optional parameters")]
    MalformedOpen,
    /// A capability we interpret whose value is malformed, such as a Graceful Restart
    /// capability whose length is not 2 + 4n.
    #[error("malformed capability {code}")]
    MalformedCapability {
        /// The capability code, echoed with the NOTIFICATION.
        code: u8,
    },
    /// An optional parameter other than Capabilities (RFC 5492 §4).
    #[error("unsupported optional parameter {kind}")]
    UnsupportedOptionalParameter {
        /// The parameter type.
        kind: u8,
    },
    /// The peer's ASN is not the configured one.
    #[error("peer AS {asn} is not the configured one")]
    BadPeerAs {
        /// The ASN the peer announced (from the 4-octet AS capability if present).
        asn: u32,
    },
    /// The peer's BGP Identifier is zero, or equals ours on an iBGP session (RFC 6286).
    #[error("bad BGP identifier {id}")]
    BadBgpIdentifier {
        /// The identifier as received.
        id: Ipv4Addr,
    },
    /// A hold time of one or two seconds (RFC 4271 §4.2).
    #[error("unacceptable hold time {seconds} s")]
    UnacceptableHoldTime {
        /// The Hold Time field as received.
        seconds: u16,
    },
    /// Our ASN needs four octets but the peer lacks the capability (as MetalLB's native
    /// speaker: such a peer would see AS_TRANS in every path).
    #[error("peer lacks the 4-octet AS capability that AS {local_asn} needs")]
    FourOctetAsRequired {
        /// Our ASN, echoed in the NOTIFICATION data.
        local_asn: u32,
    },
    /// The attribute list cannot be parsed: lengths overrun or MP attributes repeat.
    #[error("malformed attribute list")]
    MalformedAttributeList,
    /// A well-known attribute (Optional bit clear) that we do not know.
    #[error("unrecognized well-known attribute {type_code}")]
    UnrecognizedWellKnown {
        /// The attribute type code.
        type_code: u8,
        /// The whole attribute (flags, type, length, value), the NOTIFICATION's data.
        attribute: Vec<u8>,
    },
    /// MP_REACH_NLRI or MP_UNREACH_NLRI is malformed; RFC 7606 §7.11 allows a session reset.
    #[error("malformed optional attribute {type_code}")]
    OptionalAttribute {
        /// The attribute type code.
        type_code: u8,
    },
    /// An IPv4 prefix with a length above 32 or bytes past the end.
    #[error("invalid network field")]
    InvalidNetworkField,
}

impl MessageError {
    /// The NOTIFICATION to send before closing the connection.
    pub fn notification(&self) -> Notification {
        let (code, subcode, data) = match self {
            Self::NotSynchronized => (1, 1, Vec::new()),
            Self::BadLength { length } => (1, 2, length.to_be_bytes().to_vec()),
            Self::BadType { kind } => (1, 3, vec![*kind]),
            // The data is the largest version we support, as a 2-octet number.
            Self::UnsupportedVersion { .. } => (2, 1, vec![0, 4]),
            Self::MalformedOpen => (2, 0, Vec::new()),
            Self::MalformedCapability { code } => (2, 0, vec![*code]),
            Self::UnsupportedOptionalParameter { .. } => (2, 4, Vec::new()),
            Self::BadPeerAs { .. } => (2, 2, Vec::new()),
            Self::BadBgpIdentifier { .. } => (2, 3, Vec::new()),
            Self::UnacceptableHoldTime { .. } => (2, 6, Vec::new()),
            Self::FourOctetAsRequired { local_asn } => {
                let mut data = vec![CAPABILITY_FOUR_OCTET_AS, 4];
                data.extend_from_slice(&local_asn.to_be_bytes());
                (2, 7, data)
            }
            Self::MalformedAttributeList => (3, 1, Vec::new()),
            Self::UnrecognizedWellKnown { attribute, .. } => (3, 2, attribute.clone()),
            Self::OptionalAttribute { .. } => (3, 9, Vec::new()),
            Self::InvalidNetworkField => (3, 10, Vec::new()),
        };
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// A fixed snake_case name for an error counter's label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotSynchronized => "not_synchronized",
            Self::BadLength { .. } => "bad_length",
            Self::BadType { .. } => "bad_type",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::MalformedOpen => "malformed_open",
            Self::MalformedCapability { .. } => "malformed_capability",
            Self::UnsupportedOptionalParameter { .. } => "unsupported_optional_parameter",
            Self::BadPeerAs { .. } => "bad_peer_as",
            Self::BadBgpIdentifier { .. } => "bad_bgp_identifier",
            Self::UnacceptableHoldTime { .. } => "unacceptable_hold_time",
            Self::FourOctetAsRequired { .. } => "four_octet_as_required",
            Self::MalformedAttributeList => "malformed_attribute_list",
            Self::UnrecognizedWellKnown { .. } => "unrecognized_well_known",
            Self::OptionalAttribute { .. } => "optional_attribute",
            Self::InvalidNetworkField => "invalid_network_field",
        }
    }
}
