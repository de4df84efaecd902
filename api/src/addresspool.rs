//! `AddressPool` (v1alpha1 and v1beta1): the OpenShift 4.10 pool kind with its protocol and
//! inline BGP advertisements. Both versions share one schema; v1beta1 is stored.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

/// Protocol a 4.10 pool is announced with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::field_doc_wins)]
pub enum Protocol {
    /// ARP/NDP from the elected node.
    #[serde(rename = "layer2")]
    Layer2,
    /// BGP from every eligible node.
    #[serde(rename = "bgp")]
    Bgp,
}

impl Protocol {
    /// The value as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Layer2 => "layer2",
            Protocol::Bgp => "bgp",
        }
    }
}

/// How the IPs of a BGP pool are advertised (4.10 inline form).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(rename_all = "camelCase")]
pub struct LegacyBgpAdvertisement {
    /// Prefix length IPv4 service IPs are aggregated to. Default 32 (one route per IP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 32))]
    #[schemars(extend("default" = 32))]
    pub aggregation_length: Option<i32>,
    /// Prefix length IPv6 service IPs are aggregated to. Default 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 128))]
    #[schemars(extend("default" = 128))]
    pub aggregation_length_v6: Option<i32>,
    /// BGP LOCAL_PREF attribute, sent to iBGP peers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// BGP communities (`65535:65282`) attached to the announcements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Vec<String>>,
}

macro_rules! address_pool_version {
    ($module:ident, $version:literal, $doc:literal) => {
        #[doc = $doc]
        pub mod $module {
            use kube::CustomResource;
            use schemars::JsonSchema;
            use serde::{Deserialize, Serialize};
            use validator::Validate;

            use super::{LegacyBgpAdvertisement, Protocol};

            /// A range of IPs MetalLB may assign to Services, with the protocol that announces
            /// them.
            #[derive(
                CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, Validate,
            )]
            #[kube(
                group = "metallb.io",
                version = $version,
                kind = "AddressPool",
                plural = "addresspools",
                namespaced,
                status = "AddressPoolStatus",
                derive = "PartialEq",
                shortname = "ap",
                doc = "AddressPool is the OpenShift 4.10 kind of address pool: addresses plus the protocol that announces them.",
                printcolumn(name = "Protocol", type_ = "string", json_path = ".spec.protocol"),
                printcolumn(name = "Auto Assign", type_ = "boolean", json_path = ".spec.autoAssign"),
                printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses")
            )]
            #[serde(rename_all = "camelCase")]
            pub struct AddressPoolSpec {
                /// How the pool's IPs are announced: `layer2` or `bgp`.
                pub protocol: Protocol,
                /// IPs of the pool: CIDRs (`192.168.1.0/24`, `fc00:f853::/120`) or inclusive
                /// ranges (`192.168.1.10-192.168.1.20`).
                pub addresses: Vec<String>,
                /// Whether IPs are handed out automatically; when false, only Services that ask
                /// for this pool or one of its IPs get one. Default true.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[schemars(extend("default" = true))]
                pub auto_assign: Option<bool>,
                /// How a `bgp` pool is advertised; several entries announce the IPs several ways.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[validate(nested)]
                pub bgp_advertisements: Option<Vec<LegacyBgpAdvertisement>>,
            }

            /// Observed state of the pool (none is reported).
            #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
            pub struct AddressPoolStatus {}

            impl AddressPoolSpec {
                /// Whether IPs are handed out automatically.
                pub fn auto_assign(&self) -> bool {
                    self.auto_assign.unwrap_or(true)
                }
            }
        }
    };
}

address_pool_version!(
    v1alpha1,
    "v1alpha1",
    "AddressPool v1alpha1, served for old clients."
);
address_pool_version!(
    v1beta1,
    "v1beta1",
    "AddressPool v1beta1, the stored version."
);
