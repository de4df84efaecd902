//! `IPAddressPool` v1beta1: addresses the controller may assign, and to whom.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

/// A set of IPs MetalLB may assign to Services of type LoadBalancer. How they are announced is
/// decided by L2Advertisements and BGPAdvertisements that select the pool.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Validate,
)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    plural = "ipaddresspools",
    namespaced,
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    shortname = "ipp",
    doc = "IPAddressPool is a set of IPs that MetalLB may assign to Services of type LoadBalancer.",
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses")
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// IPs of the pool: CIDRs (`192.168.1.0/24`, a single IP as `/32` or `/128`) or inclusive
    /// ranges (`192.168.1.10-192.168.1.20`). No two pools may overlap.
    #[validate(length(min = 1, message = "the pool has no addresses"))]
    pub addresses: Vec<String>,
    /// Whether IPs are handed out automatically; when false, only Services that ask for this
    /// pool or one of its IPs get one. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub auto_assign: Option<bool>,
    /// Never hand out IPv4 addresses ending in `.0` or `.255`, which some buggy consumer
    /// devices drop. Default false.
    #[serde(
        default,
        rename = "avoidBuggyIPs",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("default" = false))]
    pub avoid_buggy_ips: Option<bool>,
    /// Which Services may get IPs from this pool, and with what priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

impl IPAddressPoolSpec {
    /// Whether IPs are handed out automatically.
    pub fn auto_assign(&self) -> bool {
        self.auto_assign.unwrap_or(true)
    }

    /// Whether `.0` and `.255` IPv4 addresses are skipped.
    pub fn avoid_buggy_ips(&self) -> bool {
        self.avoid_buggy_ips.unwrap_or(false)
    }
}

/// Restricts a pool to some Services and orders it among pools.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Pools with a lower number are tried first; pools without a priority come last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Labels of namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selectors: Option<Vec<LabelSelector>>,
    /// Labels of Services that may use the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selectors: Option<Vec<LabelSelector>>,
}

/// Usage counts of a pool, kept by the controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// Number of IPv4 addresses assigned to Services.
    #[serde(
        default,
        rename = "assignedIPv4",
        skip_serializing_if = "Option::is_none"
    )]
    pub assigned_ipv4: Option<i64>,
    /// Number of IPv6 addresses assigned to Services.
    #[serde(
        default,
        rename = "assignedIPv6",
        skip_serializing_if = "Option::is_none"
    )]
    pub assigned_ipv6: Option<i64>,
    /// Number of IPv4 addresses still free.
    #[serde(
        default,
        rename = "availableIPv4",
        skip_serializing_if = "Option::is_none"
    )]
    pub available_ipv4: Option<i64>,
    /// Number of IPv6 addresses still free (saturates at the largest 64-bit number).
    #[serde(
        default,
        rename = "availableIPv6",
        skip_serializing_if = "Option::is_none"
    )]
    pub available_ipv6: Option<i64>,
}
