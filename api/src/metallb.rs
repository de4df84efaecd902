//! `MetalLB` v1beta1: the singleton that tells the operator how to deploy the stack.

use std::{collections::BTreeMap, sync::LazyLock};

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::optional_spec::optional_spec;
use crate::{condition::Condition, duration::GoDuration};

/// Pattern of `spec.loadBalancerClass`: an optionally prefixed qualified name.
pub const LOAD_BALANCER_CLASS_PATTERN: &str =
    r"^([a-z0-9A-Z]([\w.\-]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([\w.\-]*[a-z0-9A-Z])?$";

static LOAD_BALANCER_CLASS: LazyLock<regex::Regex> =
    LazyLock::new(|| crate::schema_regex(LOAD_BALANCER_CLASS_PATTERN));

/// Desired state of the MetalLB deployment. Only the object named `metallb` in the operator's
/// namespace is reconciled; any other name is reported `Degraded`.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Validate,
)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "MetalLB",
    plural = "metallbs",
    namespaced,
    status = "MetalLBStatus",
    derive = "PartialEq",
    doc = "MetalLB is the singleton that makes the operator deploy the MetalLB controller and speakers.",
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Available")].status"#
    ),
    printcolumn(
        name = "Progressing",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Progressing")].status"#
    ),
    printcolumn(
        name = "Degraded",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Degraded")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(remote = "Self", rename_all = "camelCase")]
pub struct MetalLBSpec {
    /// Deprecated and ignored: the operator deploys the image it was built with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Node labels the speaker pods must match, merged on top of `kubernetes.io/os: linux`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations added to the speaker pods after the default control-plane tolerations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_tolerations: Option<Vec<Toleration>>,
    /// Node labels the controller pod must match, merged on top of `kubernetes.io/os: linux`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the controller pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_tolerations: Option<Vec<Toleration>>,
    /// Extra settings of the controller pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_config: Option<Config>,
    /// Extra settings of the speaker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_config: Option<Config>,
    /// Verbosity of the controller and speakers; `info` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// Only Services with this `spec.loadBalancerClass` are handled; when unset, only Services
    /// without a class are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(regex(
        path = *LOAD_BALANCER_CLASS,
        message = "must be a qualified name: an optional DNS subdomain and `/`, then alphanumerics, `-`, `_` or `.`"
    ))]
    pub load_balancer_class: Option<String>,
    /// BGP implementation. Only `native` (the default) is supported: the speaker speaks BGP and
    /// BFD itself, so the FRR-based backends are refused by the admission webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_backend: Option<BgpBackend>,
    /// Settings of an FRR-K8s backend. Accepted for compatibility; they have no effect with the
    /// native backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frrk8s_config: Option<FrrK8sConfig>,
    /// When a node counts as draining, in addition to the triggers that always apply (the
    /// `node.kubernetes.io/exclude-from-external-load-balancers` label, `NetworkUnavailable`,
    /// the `node.kubernetes.io/out-of-service` taint, a node being deleted and the
    /// `metallb.io/drain` annotation). A draining node hands its IPs over but keeps its BGP and
    /// BFD sessions up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainConfig>,
    /// How a speaker withdraws its BGP routes on a planned exit or a drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(nested)]
    pub graceful_shutdown: Option<GracefulShutdownConfig>,
    /// Fencing of speakers cut off from the API server: each speaker renews a per-node Lease and
    /// one that cannot while its peers can stops announcing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(nested)]
    pub fencing: Option<FencingConfig>,
}

// The operator's quick start creates the MetalLB object with metadata only.
optional_spec!(MetalLBSpec);

/// Pod-level settings for the controller or the speakers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Priority class of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Runtime class of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// Affinity of the pods; replaces the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Annotations added to the pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Resources of the main container; replaces the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Log verbosity of the operands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::field_doc_wins)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including per-packet traces.
    All,
    /// Debug and above.
    Debug,
    /// Info and above (the default).
    #[default]
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
    /// Nothing.
    None,
}

/// BGP implementation selector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::field_doc_wins)]
pub enum BgpBackend {
    /// The speaker's own BGP and BFD (the default and the only supported value).
    #[default]
    #[serde(rename = "native")]
    Native,
    /// An FRR sidecar in the speaker pod (not supported by metallb-rs).
    #[serde(rename = "frr")]
    Frr,
    /// An FRR-K8s DaemonSet deployed by the operator (not supported by metallb-rs).
    #[serde(rename = "frr-k8s")]
    FrrK8s,
    /// An FRR-K8s deployed by someone else (not supported by metallb-rs).
    #[serde(rename = "frr-k8s-external")]
    FrrK8sExternal,
}

/// Settings of an FRR-K8s backend, kept for compatibility with the upstream API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrrK8sConfig {
    /// CIDRs FRR-K8s must never accept from peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_block: Option<Vec<String>>,
    /// Namespace of an external FRR-K8s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Hand BGP password secrets to FRR-K8s unresolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_passthrough: Option<bool>,
}

/// Optional drain triggers and the rule that keeps a service reachable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainConfig {
    /// Treat a cordoned node (`spec.unschedulable: true`) as draining. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub on_cordon: Option<bool>,
    /// Taint keys (any effect) that mark a node as draining, for example
    /// `node.kubernetes.io/unschedulable` or a maintenance taint of your own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taint_keys: Option<Vec<String>>,
    /// Keep announcing a service from a draining node when no other node is eligible for it,
    /// and report that in an event, instead of leaving the service unreachable. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub never_blackhole: Option<bool>,
}

impl DrainConfig {
    /// Whether a cordon counts as a drain.
    pub fn on_cordon(&self) -> bool {
        self.on_cordon.unwrap_or(false)
    }

    /// Whether a draining node keeps serving what nobody else can.
    pub fn never_blackhole(&self) -> bool {
        self.never_blackhole.unwrap_or(true)
    }
}

/// BGP graceful shutdown (RFC 8326) before withdrawal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(rename_all = "camelCase")]
pub struct GracefulShutdownConfig {
    /// Re-announce every prefix with the GRACEFUL_SHUTDOWN community (65535:0) before
    /// withdrawing, so routers move traffic away first. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,
    /// How long to wait between the GRACEFUL_SHUTDOWN announcement and the withdrawal.
    /// Default `5s`. The operator sets the speaker's termination grace period above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "5s"))]
    #[validate(nested)]
    pub delay: Option<GoDuration>,
}

impl GracefulShutdownConfig {
    /// Default delay between the GRACEFUL_SHUTDOWN announcement and the withdrawal.
    pub const DEFAULT_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

    /// Whether graceful shutdown is on.
    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// Fencing of speakers that lose the API server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(rename_all = "camelCase")]
pub struct FencingConfig {
    /// Whether speakers fence themselves. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,
    /// Validity of a speaker's node Lease; a speaker that has not renewed it for this long while
    /// its peers have stops announcing. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10s"))]
    #[validate(nested)]
    pub lease_duration: Option<GoDuration>,
}

impl FencingConfig {
    /// Default lease validity.
    pub const DEFAULT_LEASE_DURATION: std::time::Duration = std::time::Duration::from_secs(10);

    /// Whether fencing is on.
    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// Observed state of the MetalLB deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetalLBStatus {
    /// `Available`, `Progressing`, `Degraded` and `Upgradeable`; exactly one of the first three
    /// is `True` once the operator has seen the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}
