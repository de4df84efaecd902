//! The `metallb.io` API: every custom resource kind and version as Rust types, the constants
//! the components share, and the CRD definitions generated from the types.
//!
//! The types keep optional fields optional and leave defaults to the CRD schema (and to the
//! accessor methods), so an object read from the API server and written back is unchanged.

pub mod addresspool;
pub mod advertisement;
pub mod bfdprofile;
pub mod bgppeer;
pub mod community;
pub mod condition;
pub mod conversion;
pub mod crds;
pub mod duration;
pub mod ipaddresspool;
pub mod metallb;
mod optional_spec;
pub mod status;
pub mod validation;

/// The API group of every kind in this crate.
pub const GROUP: &str = "metallb.io";

/// The namespace the operator and its operands run in unless configured otherwise.
pub const DEFAULT_NAMESPACE: &str = "metallb-system";

/// The only `MetalLB` object name the operator reconciles.
pub const METALLB_SINGLETON_NAME: &str = "metallb";

/// Service annotations, in the current prefix; each has a deprecated twin under
/// [`annotations::LEGACY_PREFIX`].
pub mod annotations {
    /// Current annotation prefix.
    pub const PREFIX: &str = "metallb.io/";
    /// Deprecated prefix, still honoured; the current one wins when both are present.
    pub const LEGACY_PREFIX: &str = "metallb.universe.tf/";
    /// Pool to allocate from.
    pub const ADDRESS_POOL: &str = "address-pool";
    /// Comma-separated requested IPs (at most one per family).
    pub const LOAD_BALANCER_IPS: &str = "loadBalancerIPs";
    /// Sharing key: services with equal keys may share an IP.
    pub const ALLOW_SHARED_IP: &str = "allow-shared-ip";
    /// Written by the controller: the pool the IP came from.
    pub const IP_ALLOCATED_FROM_POOL: &str = "ip-allocated-from-pool";
    /// Node annotation that makes its speaker drain (a lever for cluster-lifecycle tools).
    pub const DRAIN: &str = "metallb.io/drain";
}

/// Compiles a schema pattern for `#[validate(regex(path = ..))]`. Matching is ASCII-only, as in
/// the API server's (Go) regular expressions, and the regex displays as the pattern itself, which
/// is what schemars writes into the CRD.
pub(crate) fn schema_regex(pattern: &str) -> regex::Regex {
    regex::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .expect("schema patterns are valid regular expressions")
}

/// Removes a type's own description from its schema so that the documentation of the field
/// using it becomes the CRD description (kube's handling of `Option<Enum>` would otherwise
/// replace the field's text with the type's).
pub(crate) fn field_doc_wins(schema: &mut schemars::Schema) {
    schema.remove("description");
}
