//! `BFDProfile` v1beta1: BFD session parameters shared by BGPPeers.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::optional_spec::optional_spec;

/// Parameters of the BFD sessions of the BGPPeers that name this profile.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Validate,
)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    plural = "bfdprofiles",
    namespaced,
    status = "BFDProfileStatus",
    derive = "PartialEq",
    shortname = "bfdp",
    doc = "BFDProfile holds the BFD parameters of the BGPPeers that refer to it by name.",
    printcolumn(
        name = "Passive Mode",
        type_ = "boolean",
        json_path = ".spec.passiveMode"
    ),
    printcolumn(
        name = "Transmit Interval",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Receive Interval",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    )
)]
#[serde(remote = "Self", rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// Minimum interval between received control packets this system can handle, in
    /// milliseconds. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 10, max = 60000))]
    pub receive_interval: Option<u32>,
    /// Minimum interval between transmitted control packets, in milliseconds. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 10, max = 60000))]
    pub transmit_interval: Option<u32>,
    /// Number of missed packets after which the session is declared down. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 2, max = 255))]
    pub detect_multiplier: Option<u32>,
    /// Minimum interval between transmitted echo packets, in milliseconds. Default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 10, max = 60000))]
    pub echo_interval: Option<u32>,
    /// Send echo packets (single hop only; not with IPv6 advertisements). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,
    /// Wait for the peer to start the session instead of sending first. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// For multi-hop sessions, the lowest TTL a received packet may carry. Default 254.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 254))]
    pub minimum_ttl: Option<u32>,
}

impl BFDProfileSpec {
    /// Default receive and transmit interval, in milliseconds.
    pub const DEFAULT_INTERVAL_MS: u32 = 300;
    /// Default detection multiplier.
    pub const DEFAULT_DETECT_MULTIPLIER: u32 = 3;
    /// Default echo interval, in milliseconds.
    pub const DEFAULT_ECHO_INTERVAL_MS: u32 = 50;
    /// Default minimum TTL of multi-hop sessions.
    pub const DEFAULT_MINIMUM_TTL: u32 = 254;
}

// A BFDProfile without spec has every default.
optional_spec!(BFDProfileSpec);

/// Observed state of a BFDProfile (none is reported).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BFDProfileStatus {}
