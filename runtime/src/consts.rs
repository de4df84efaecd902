//! Values the binaries must agree on: what the operator renders and what the controller and
//! speaker read. One place, so a port or a path cannot differ between the two sides.

/// Port of `/metrics`, `/healthz` and `/readyz` of the controller and the speakers (MetalLB's).
pub const METRICS_PORT: u16 = 7472;

/// UDP port of the speakers' heartbeats (memberlist's, so existing firewall rules carry over).
pub const HEARTBEAT_PORT: u16 = 7946;

/// Port of the operator's HTTPS webhook server.
pub const WEBHOOK_PORT: u16 = 9443;

/// Port of the operator's `/healthz`, `/readyz` and `/metrics`.
pub const OPERATOR_HTTP_PORT: u16 = 8080;

/// Where the speaker finds the membership Secret.
pub const MEMBERSHIP_DIR: &str = "/etc/metallb/membership";

/// Key of the membership Secret that holds the heartbeat key.
pub const MEMBERSHIP_KEY: &str = "secretkey";

/// Length of a generated membership key in bytes.
pub const MEMBERSHIP_KEY_LEN: usize = 32;

/// Where the controller and speakers find their metrics serving certificate (`tls.crt`,
/// `tls.key`) when the operator turns metrics TLS on.
pub const METRICS_TLS_DIR: &str = "/etc/metallb/metrics-tls";

/// Where the speaker finds the layer-2 interface exclusion ConfigMap.
pub const EXCLUDE_L2_DIR: &str = "/etc/metallb/excludel2";

/// Key of the exclusion ConfigMap.
pub const EXCLUDE_L2_KEY: &str = "excludel2.yaml";

/// Lease that elects the operator replica that reconciles.
pub const OPERATOR_LEASE: &str = "metallb-operator-lock";

/// Lease that elects the controller replica that assigns addresses.
pub const CONTROLLER_LEASE: &str = "metallb-controller";

/// Prefix of the per-node Lease a speaker renews: `metallb-speaker-<node>`.
pub const SPEAKER_LEASE_PREFIX: &str = "metallb-speaker-";

/// Label every rendered object carries (the operator's watches select on it).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "metallb-operator");

/// Label of the speakers' per-node Leases, so observers can watch them alone.
pub const SPEAKER_LEASE_LABEL: (&str, &str) = ("app.kubernetes.io/component", "speaker");

/// Node label that removes a node from every load balancer (Kubernetes' own).
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Node annotation that makes its speaker drain (a lever for cluster-lifecycle tools).
pub const DRAIN_ANNOTATION: &str = metallb_api::annotations::DRAIN;

/// Field manager of every write the operator makes.
pub const OPERATOR_FIELD_MANAGER: &str = "metallb-operator";

/// Field manager of every write the controller makes (also its events' reporting controller).
pub const CONTROLLER_FIELD_MANAGER: &str = "metallb-controller";

/// Field manager of every write a speaker makes.
pub const SPEAKER_FIELD_MANAGER: &str = "metallb-speaker";

/// Label of the speakers' status objects: the node that wrote them.
pub const STATUS_NODE_LABEL: &str = "metallb.io/node";

/// Label of the speakers' status objects: the Service's name.
pub const STATUS_SERVICE_NAME_LABEL: &str = "metallb.io/service-name";

/// Label of the speakers' status objects: the Service's namespace.
pub const STATUS_SERVICE_NAMESPACE_LABEL: &str = "metallb.io/service-namespace";
