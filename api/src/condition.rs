//! Status conditions with the schema rules of `metav1.Condition`.

use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate;

/// Pattern of a condition type: a qualified name, optionally with a DNS-subdomain prefix.
pub const TYPE_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

/// Pattern of a condition reason: CamelCase words, no spaces.
pub const REASON_PATTERN: &str = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

static TYPE: LazyLock<Regex> = LazyLock::new(|| crate::schema_regex(TYPE_PATTERN));
static REASON: LazyLock<Regex> = LazyLock::new(|| crate::schema_regex(REASON_PATTERN));

/// One aspect of an object's current state, as `metav1.Condition` describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of condition in CamelCase, for example `Available`.
    #[validate(
        length(max = 316),
        regex(path = *TYPE, message = "must be a qualified name in CamelCase")
    )]
    #[serde(rename = "type")]
    pub type_: String,
    /// Status of the condition: `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// The `.metadata.generation` the condition was set from; a condition with an older value
    /// is out of date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// When the condition last changed from one status to another.
    pub last_transition_time: Time,
    /// Programmatic identifier of the reason for the last transition, in CamelCase.
    #[validate(
        length(min = 1, max = 1024),
        regex(path = *REASON, message = "must be CamelCase words without spaces")
    )]
    pub reason: String,
    /// Human-readable details about the transition; may be empty.
    #[validate(length(max = 32768))]
    pub message: String,
}

/// Status value of a [`Condition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::field_doc_wins)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It is not known whether the condition holds.
    Unknown,
}
