//! `BGPPeer` v1beta1 and v1beta2: the routers speakers open BGP sessions with.
//! v1beta2 is stored; v1beta1 is the OpenShift 4.10 form.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

/// Highest 4-octet AS number.
pub const MAX_ASN: u32 = u32::MAX;

/// The 4.10 BGPPeer.
pub mod v1beta1 {
    use super::*;
    use crate::duration::GoDuration;
    use kube::CustomResource;

    /// A BGP router the speakers on the selected nodes peer with.
    #[derive(
        CustomResource,
        Clone,
        Debug,
        Default,
        PartialEq,
        Serialize,
        Deserialize,
        JsonSchema,
        Validate,
    )]
    #[kube(
        group = "metallb.io",
        version = "v1beta1",
        kind = "BGPPeer",
        plural = "bgppeers",
        namespaced,
        status = "BGPPeerStatus",
        derive = "PartialEq",
        shortname = "bgpp",
        doc = "BGPPeer is a BGP router that the speakers on the selected nodes open a session with.",
        printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
        printcolumn(name = "ASN", type_ = "integer", json_path = ".spec.peerASN"),
        printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
        printcolumn(
            name = "Multi Hops",
            type_ = "boolean",
            json_path = ".spec.ebgpMultiHop"
        )
    )]
    #[serde(rename_all = "camelCase")]
    pub struct BGPPeerSpec {
        /// AS number of the speakers.
        #[serde(rename = "myASN")]
        #[validate(range(min = 0, max = MAX_ASN))]
        pub my_asn: u32,
        /// AS number of the peer.
        #[serde(rename = "peerASN")]
        #[validate(range(min = 0, max = MAX_ASN))]
        pub peer_asn: u32,
        /// IP address of the peer.
        pub peer_address: String,
        /// Local IP address to open the session from; must exist on the node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source_address: Option<String>,
        /// TCP port of the peer. Default 179.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[validate(range(min = 0, max = 16384))]
        pub peer_port: Option<u16>,
        /// Proposed BGP hold time (`90s`); 0 or at least 3s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[validate(nested)]
        pub hold_time: Option<GoDuration>,
        /// Proposed keepalive interval; at most the hold time. Default: a third of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[validate(nested)]
        pub keepalive_time: Option<GoDuration>,
        /// BGP router ID to use; all peers selecting a node must agree on it.
        #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
        pub router_id: Option<String>,
        /// Nodes whose speakers open this session; all nodes when empty.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[validate(nested)]
        pub node_selectors: Option<Vec<NodeSelector>>,
        /// TCP-MD5 password of the session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password: Option<String>,
        /// Name of the BFDProfile that runs BFD with this peer; no BFD when empty.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bfd_profile: Option<String>,
        /// The peer is more than one hop away (eBGP multi-hop).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ebgp_multi_hop: Option<bool>,
        /// VRF to open the session in; the default VRF when empty.
        #[serde(default, rename = "vrf", skip_serializing_if = "Option::is_none")]
        pub vrf: Option<String>,
    }

    /// A node selector in the 4.10 form; the same JSON shape as a label selector.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Validate)]
    #[serde(rename_all = "camelCase")]
    pub struct NodeSelector {
        /// Labels a node must carry, all of them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub match_labels: Option<BTreeMap<String, String>>,
        /// Label requirements a node must meet, all of them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[validate(nested)]
        pub match_expressions: Option<Vec<MatchExpression>>,
    }

    /// One label requirement.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Validate)]
    #[serde(rename_all = "camelCase")]
    pub struct MatchExpression {
        /// The label key.
        pub key: String,
        /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
        pub operator: String,
        /// Values for `In` and `NotIn`.
        #[validate(length(min = 1))]
        pub values: Vec<String>,
    }

    /// Observed state of a BGPPeer (none is reported; see BGPSessionState).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct BGPPeerStatus {}
}

/// The current BGPPeer.
pub mod v1beta2 {
    use super::*;
    use crate::duration::GoDuration;
    use k8s_openapi::{
        api::core::v1::SecretReference, apimachinery::pkg::apis::meta::v1::LabelSelector,
    };
    use kube::CustomResource;

    /// A BGP router the speakers on the selected nodes peer with.
    #[derive(
        CustomResource,
        Clone,
        Debug,
        Default,
        PartialEq,
        Serialize,
        Deserialize,
        JsonSchema,
        Validate,
    )]
    #[kube(
        group = "metallb.io",
        version = "v1beta2",
        kind = "BGPPeer",
        plural = "bgppeers",
        namespaced,
        status = "BGPPeerStatus",
        derive = "PartialEq",
        shortname = "bgpp",
        doc = "BGPPeer is a BGP router that the speakers on the selected nodes open a session with.",
        printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
        printcolumn(name = "ASN", type_ = "integer", json_path = ".spec.peerASN"),
        printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
        printcolumn(
            name = "Multi Hops",
            type_ = "boolean",
            json_path = ".spec.ebgpMultiHop"
        )
    )]
    #[serde(rename_all = "camelCase")]
    pub struct BGPPeerSpec {
        /// AS number of the speakers.
        #[serde(rename = "myASN")]
        #[validate(range(min = 0, max = MAX_ASN))]
        pub my_asn: u32,
        /// AS number of the peer; leave empty when `dynamicASN` is set.
        #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
        #[validate(range(min = 0, max = MAX_ASN))]
        pub peer_asn: Option<u32>,
        /// Accept any peer AS of this kind (`internal` = ours, `external` = another) instead
        /// of a fixed `peerASN`.
        #[serde(
            default,
            rename = "dynamicASN",
            skip_serializing_if = "Option::is_none"
        )]
        pub dynamic_asn: Option<DynamicAsnMode>,
        /// AS number the session announces instead of `myASN`.
        #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
        #[validate(range(min = 0, max = MAX_ASN))]
        pub local_asn: Option<u32>,
        /// IP address of the peer; leave empty when `interface` is set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub peer_address: Option<String>,
        /// Host interface for an unnumbered session (the peer is found by IPv6 link-local
        /// discovery); leave empty when `peerAddress` is set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub interface: Option<String>,
        /// Local IP address to open the session from; must exist on the node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source_address: Option<String>,
        /// TCP port of the peer. Default 179.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[validate(range(min = 1, max = 16384))]
        #[schemars(extend("default" = 179))]
        pub peer_port: Option<u16>,
        /// Proposed BGP hold time (`90s`); 0 or at least 3s. Default 90s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[validate(nested)]
        pub hold_time: Option<GoDuration>,
        /// Proposed keepalive interval; at most the hold time. Default: a third of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[validate(nested)]
        pub keepalive_time: Option<GoDuration>,
        /// Upper bound of the pause between connection attempts, whole seconds from 1s to
        /// 65535s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[validate(nested)]
        pub connect_time: Option<GoDuration>,
        /// BGP router ID to use; all peers selecting a node must agree on it.
        #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
        pub router_id: Option<String>,
        /// Nodes whose speakers open this session; all nodes when empty.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub node_selectors: Option<Vec<LabelSelector>>,
        /// TCP-MD5 password of the session; mutually exclusive with `passwordSecret`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password: Option<String>,
        /// Secret of type `kubernetes.io/basic-auth` whose `password` key holds the TCP-MD5
        /// password; it must be in the MetalLB namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password_secret: Option<SecretReference>,
        /// Name of the BFDProfile that runs BFD with this peer; no BFD when empty.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bfd_profile: Option<String>,
        /// Advertise the BGP graceful-restart capability. Cannot be changed after creation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("x-kubernetes-validations" = [{
            "rule": "self == oldSelf",
            "message": "enableGracefulRestart cannot be changed after creation",
        }]))]
        pub enable_graceful_restart: Option<bool>,
        /// The peer is more than one hop away (eBGP multi-hop).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ebgp_multi_hop: Option<bool>,
        /// VRF to open the session in; the default VRF when empty.
        #[serde(default, rename = "vrf", skip_serializing_if = "Option::is_none")]
        pub vrf: Option<String>,
        /// Deprecated: carry each address family in its own session. Use
        /// `dualStackAddressFamily` instead. Default false.
        #[serde(default, rename = "disableMP", skip_serializing_if = "Option::is_none")]
        pub disable_mp: Option<bool>,
        /// Carry both IPv4 and IPv6 prefixes over this one session. Default false; the native
        /// speaker always negotiates both families.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub dual_stack_address_family: Option<bool>,
    }

    /// Which peer AS numbers a dynamic session accepts.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[schemars(transform = crate::field_doc_wins)]
    #[serde(rename_all = "lowercase")]
    pub enum DynamicAsnMode {
        /// The peer is in our AS (iBGP).
        Internal,
        /// The peer is in another AS (eBGP).
        External,
    }

    /// Observed state of a BGPPeer (none is reported; see BGPSessionState).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct BGPPeerStatus {}
}
