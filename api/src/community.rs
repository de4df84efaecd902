//! `Community` v1beta1: names for BGP community values.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::optional_spec::optional_spec;

/// Aliases for BGP communities, usable by name in BGPAdvertisements.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "Community",
    plural = "communities",
    namespaced,
    status = "CommunityStatus",
    derive = "PartialEq",
    shortname = "bgpcomm",
    doc = "Community gives names to BGP community values for use in BGPAdvertisements."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
pub struct CommunitySpec {
    /// The aliases; names must be unique across all Community objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Vec<CommunityAlias>>,
}

// A Community without spec defines no alias.
optional_spec!(CommunitySpec);

/// One named community value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommunityAlias {
    /// The alias used in BGPAdvertisements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The value: `65535:65282` (standard) or `large:1:2:3` (large).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Observed state of a Community (none is reported).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommunityStatus {}
