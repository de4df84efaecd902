//! Status kinds written by the speakers: which node announces which Service, and the state of
//! every BGP session.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::optional_spec::optional_spec;

/// Which node announces a Service in layer-2 mode; one object per (Service, node), created by
/// the announcing speaker.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    plural = "servicel2statuses",
    namespaced,
    status = "ServiceL2StatusStatus",
    derive = "PartialEq",
    doc = "ServiceL2Status records which node announces a Service with ARP/NDP.",
    printcolumn(name = "Allocated Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
#[serde(remote = "Self")]
pub struct ServiceL2StatusSpec {}

// The status kinds keep everything in `status`; their spec is empty and need not be written.
optional_spec!(ServiceL2StatusSpec);

/// Where and how a Service is announced in layer-2 mode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusStatus {
    /// The announcing node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Name of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Namespace of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_namespace: Option<String>,
    /// Interfaces the node answers on, when an L2Advertisement restricts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<InterfaceInfo>>,
}

/// A host interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InterfaceInfo {
    /// Name of the interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Which node announces a Service over BGP, and to which peers; one object per (Service, node).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    plural = "servicebgpstatuses",
    namespaced,
    status = "ServiceBGPStatusStatus",
    derive = "PartialEq",
    doc = "ServiceBGPStatus records which node announces a Service over BGP and to which peers.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
#[serde(remote = "Self")]
pub struct ServiceBGPStatusSpec {}

optional_spec!(ServiceBGPStatusSpec);

/// Where and to whom a Service is announced over BGP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBGPStatusStatus {
    /// The announcing node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Name of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Namespace of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_namespace: Option<String>,
    /// Names of the BGPPeers the Service is configured to be announced to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
}

/// The state of one BGP session of one node, written by that node's speaker (a metallb-rs
/// extension, shaped like FRR-K8s' kind of the same name).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPSessionState",
    plural = "bgpsessionstates",
    namespaced,
    status = "BGPSessionStateStatus",
    derive = "PartialEq",
    shortname = "bgpss",
    doc = "BGPSessionState reports the BGP and BFD state of one session of one node's speaker.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "Peer", type_ = "string", json_path = ".status.peer"),
    printcolumn(name = "BGP", type_ = "string", json_path = ".status.bgpStatus"),
    printcolumn(name = "BFD", type_ = "string", json_path = ".status.bfdStatus")
)]
#[serde(remote = "Self")]
pub struct BGPSessionStateSpec {}

optional_spec!(BGPSessionStateSpec);

/// BGP and BFD state of a session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPSessionStateStatus {
    /// The node whose speaker owns the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Address of the peer (with `%interface` for unnumbered sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Name of the BGPPeer object the session comes from.
    #[serde(default, rename = "bgpPeer", skip_serializing_if = "Option::is_none")]
    pub bgp_peer: Option<String>,
    /// VRF of the session; empty for the default VRF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// BGP finite-state-machine state: Idle, Connect, Active, OpenSent, OpenConfirm or
    /// Established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_status: Option<String>,
    /// BFD state: Up, Down, Init, AdminDown, or N/A without a BFD profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_status: Option<String>,
    /// Number of prefixes currently announced to the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes_sent: Option<i64>,
    /// Why the BGP session last went down (e.g. `hold_timer_expired`, `bfd_down`,
    /// `notification_received 6/2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_down_reason: Option<String>,
    /// When the BGP state last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}
