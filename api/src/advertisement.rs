//! `L2Advertisement` and `BGPAdvertisement` v1beta1: how and where pool IPs are announced.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::optional_spec::optional_spec;

/// Announces the IPs of the selected pools with ARP (IPv4) and NDP (IPv6) from one elected
/// node per Service.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    plural = "l2advertisements",
    namespaced,
    status = "L2AdvertisementStatus",
    derive = "PartialEq",
    shortname = "l2adv",
    doc = "L2Advertisement announces the IPs of the selected pools with ARP and NDP.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    )
)]
#[serde(remote = "Self", rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Names of the pools to announce. With neither pools nor pool selectors, every pool is.
    #[serde(
        default,
        rename = "ipAddressPools",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address_pools: Option<Vec<String>>,
    /// Labels of the pools to announce.
    #[serde(
        default,
        rename = "ipAddressPoolSelectors",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address_pool_selectors: Option<Vec<LabelSelector>>,
    /// Labels of the nodes that may announce; all nodes when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selectors: Option<Vec<LabelSelector>>,
    /// Host interfaces to answer ARP/NDP on; all suitable interfaces when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<String>>,
}

// An L2Advertisement without spec announces every pool from every node.
optional_spec!(L2AdvertisementSpec);

/// Observed state of an L2Advertisement (none is reported).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct L2AdvertisementStatus {}

/// Announces the IPs of the selected pools to BGP peers.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Validate,
)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    namespaced,
    status = "BGPAdvertisementStatus",
    derive = "PartialEq",
    shortname = "bgpadv",
    doc = "BGPAdvertisement announces the IPs of the selected pools to BGP peers.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    )
)]
#[serde(remote = "Self", rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Prefix length IPv4 service IPs are aggregated to. Default 32 (one route per IP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 0, max = 32))]
    #[schemars(extend("default" = 32))]
    pub aggregation_length: Option<i32>,
    /// Prefix length IPv6 service IPs are aggregated to. Default 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 0, max = 128))]
    #[schemars(extend("default" = 128))]
    pub aggregation_length_v6: Option<i32>,
    /// BGP LOCAL_PREF attribute, sent to iBGP peers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// BGP communities: `65535:65282`, `large:1:2:3`, or the name of an alias defined in a
    /// Community object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Vec<String>>,
    /// Names of the pools to announce. With neither pools nor pool selectors, every pool is.
    #[serde(
        default,
        rename = "ipAddressPools",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address_pools: Option<Vec<String>>,
    /// Labels of the pools to announce.
    #[serde(
        default,
        rename = "ipAddressPoolSelectors",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address_pool_selectors: Option<Vec<LabelSelector>>,
    /// Labels of the nodes that announce; all nodes when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selectors: Option<Vec<LabelSelector>>,
    /// Names of the BGPPeers to announce to; all peers when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
}

// A BGPAdvertisement without spec announces every pool from every node to every peer.
optional_spec!(BGPAdvertisementSpec);

/// Observed state of a BGPAdvertisement (none is reported).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BGPAdvertisementStatus {}
