//! Pure builders of every operand: from the `MetalLB` resource and the operator's settings to
//! the objects the operator applies. No I/O and no clock; the membership key comes in as an
//! argument so that it survives reconciles.
//!
//! Every object carries a controller owner reference to the `MetalLB` resource (garbage
//! collection removes them with it) and the `MANAGED_BY` label (the operator's watches of
//! its own objects select on it).

mod controller;
mod monitoring;
mod speaker;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::{DaemonSet, Deployment},
        core::v1::{
            ConfigMap, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
            PodTemplateSpec, Probe, ResourceRequirements, Secret, Service, ServicePort,
            ServiceSpec,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity, apis::meta::v1::ObjectMeta, util::intstr::IntOrString,
    },
};
use kube::{Resource, ResourceExt};
use metallb_api::{
    duration::DurationError,
    metallb::{Config, LogLevel, MetalLB},
};
use metallb_runtime::consts::{EXCLUDE_L2_KEY, MANAGED_BY, MEMBERSHIP_KEY, METRICS_PORT};

pub use monitoring::{
    Monitoring, SERVICE_MONITOR_API_VERSION, SERVING_CERT_ANNOTATION, tls_secret,
};
pub use speaker::{GRACE_MARGIN, speaker_grace_period};

/// Names of the objects the operator renders in its namespace.
pub mod names {
    /// The controller Deployment, its container and its ServiceAccount.
    pub const CONTROLLER: &str = "controller";
    /// The speaker DaemonSet, its container and its ServiceAccount.
    pub const SPEAKER: &str = "speaker";
    /// Secret with the key speakers authenticate their heartbeats with.
    pub const MEMBERSHIP_SECRET: &str = "metallb-memberlist";
    /// ConfigMap with the interfaces layer 2 never announces on.
    pub const EXCLUDE_L2: &str = "metallb-excludel2";
    /// Headless Service in front of the controller's metrics.
    pub const CONTROLLER_METRICS: &str = "controller-monitor-service";
    /// Headless Service in front of the speakers' metrics.
    pub const SPEAKER_METRICS: &str = "speaker-monitor-service";
}

/// MetalLB's default list of interface patterns layer 2 never announces on.
pub const DEFAULT_EXCLUDE_L2: &str = r#"announcedInterfacesToExclude: ["^docker.*", "^cbr.*", "^dummy.*", "^virbr.*", "^lxcbr.*", "^veth.*", "^lo$", "^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*", "^nodelocaldns.*", "^lxc.*"]
"#;

/// Image of the controller and speakers unless the operator is told otherwise.
pub const DEFAULT_OPERAND_IMAGE: &str =
    concat!("quay.io/metallb-rs/metallb-rs:", env!("CARGO_PKG_VERSION"));

/// What shapes the operands besides the MetalLB spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperandSettings {
    /// Namespace of the operator, the `MetalLB` resource and every operand.
    pub namespace: String,
    /// Image carrying `metallb-controller` and `metallb-speaker`.
    pub image: String,
    /// ServiceMonitors and metrics TLS.
    pub monitoring: Monitoring,
}

impl OperandSettings {
    /// Settings for `namespace` with the default image, plain metrics and no ServiceMonitors.
    pub fn new(namespace: impl Into<String>) -> Self {
        OperandSettings {
            namespace: namespace.into(),
            image: DEFAULT_OPERAND_IMAGE.to_owned(),
            monitoring: Monitoring::default(),
        }
    }
}

/// Why the operands could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Owner references need the resource's uid, which only the API server assigns.
    #[error("MetalLB {0:?} has no uid, so nothing can name it as owner")]
    NoIdentity(String),
    /// A duration field does not parse (validation normally refuses it first).
    #[error("{field}: {source}")]
    Duration {
        /// JSON path of the field.
        field: &'static str,
        /// The parse error.
        source: DurationError,
    },
}

/// Every object the operator applies for one `MetalLB` resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Operands {
    /// The speakers' heartbeat key.
    pub membership_secret: Secret,
    /// The layer 2 interface exclusion list.
    pub excludel2: ConfigMap,
    /// Metrics Service of the controller.
    pub controller_metrics: Service,
    /// Metrics Service of the speakers.
    pub speaker_metrics: Service,
    /// The controller.
    pub controller: Deployment,
    /// The speakers.
    pub speaker: DaemonSet,
    /// ServiceMonitors of the controller and the speakers (`monitoring.coreos.com/v1`), when
    /// [`Monitoring::service_monitors`].
    pub service_monitors: Vec<serde_json::Value>,
}

/// Renders every operand of `metallb`. `membership_key` is the existing key, or a fresh one
/// when there is none yet.
pub fn render(
    metallb: &MetalLB,
    settings: &OperandSettings,
    membership_key: &[u8],
) -> Result<Operands, RenderError> {
    let owner = metallb
        .controller_owner_ref(&())
        .ok_or_else(|| RenderError::NoIdentity(metallb.name_any()))?;
    let meta = |name: &str, component: Option<&str>| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels(component)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    };
    let spec = &metallb.spec;
    let mut operands = Operands {
        membership_secret: Secret {
            metadata: meta(names::MEMBERSHIP_SECRET, None),
            data: Some(BTreeMap::from([(
                MEMBERSHIP_KEY.to_owned(),
                ByteString(membership_key.to_vec()),
            )])),
            type_: Some("Opaque".to_owned()),
            ..Secret::default()
        },
        excludel2: ConfigMap {
            metadata: meta(names::EXCLUDE_L2, None),
            data: Some(BTreeMap::from([(
                EXCLUDE_L2_KEY.to_owned(),
                DEFAULT_EXCLUDE_L2.to_owned(),
            )])),
            ..ConfigMap::default()
        },
        controller_metrics: metrics_service(
            meta(names::CONTROLLER_METRICS, Some(names::CONTROLLER)),
            names::CONTROLLER,
        ),
        speaker_metrics: metrics_service(
            meta(names::SPEAKER_METRICS, Some(names::SPEAKER)),
            names::SPEAKER,
        ),
        controller: controller::deployment(
            spec,
            settings,
            meta(names::CONTROLLER, Some(names::CONTROLLER)),
        ),
        speaker: speaker::daemon_set(spec, settings, meta(names::SPEAKER, Some(names::SPEAKER)))?,
        service_monitors: Vec::new(),
    };
    if settings.monitoring.tls {
        monitoring::annotate(&mut operands.controller_metrics, names::CONTROLLER);
        monitoring::annotate(&mut operands.speaker_metrics, names::SPEAKER);
        monitoring::secure(&mut operands.controller.spec.template, names::CONTROLLER);
        monitoring::secure(&mut operands.speaker.spec.template, names::SPEAKER);
    }
    if settings.monitoring.service_monitors {
        operands.service_monitors = vec![
            monitoring::service_monitor(settings, names::CONTROLLER, &operands.controller_metrics),
            monitoring::service_monitor(settings, names::SPEAKER, &operands.speaker_metrics),
        ];
    }
    Ok(operands)
}

/// Labels that select the pods of `component`; fixed forever, because selectors are immutable.
fn selector_labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_owned(), "metallb".to_owned()),
        ("component".to_owned(), component.to_owned()),
    ])
}

/// Labels of a rendered object (and of the pods of `component`).
fn labels(component: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = match component {
        Some(component) => selector_labels(component),
        None => BTreeMap::from([("app".to_owned(), "metallb".to_owned())]),
    };
    labels.insert(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned());
    labels.insert("app.kubernetes.io/part-of".to_owned(), "metallb".to_owned());
    labels
}

/// A headless Service exposing the metrics port of `component`'s pods, for scrapers that
/// discover targets through endpoints.
fn metrics_service(metadata: ObjectMeta, component: &str) -> Service {
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(selector_labels(component)),
            ports: Some(vec![ServicePort {
                name: Some("monitoring".to_owned()),
                port: METRICS_PORT.into(),
                target_port: Some(IntOrString::String("monitoring".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `kubernetes.io/os: linux` with the spec's selector merged on top (the current operator's
/// semantics; 4.10 replaced the default instead).
fn node_selector(extra: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut selector = BTreeMap::from([("kubernetes.io/os".to_owned(), "linux".to_owned())]);
    selector.extend(
        extra
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    selector
}

/// Applies a pod `Config` onto a template whose first container is the main one: class names
/// set, affinity and resources replaced, annotations added.
fn apply_config(template: &mut PodTemplateSpec, config: Option<&Config>) {
    let Some(config) = config else {
        return;
    };
    if let Some(annotations) = &config.annotations {
        let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(annotations.clone());
    }
    let Some(pod) = template.spec.as_mut() else {
        return;
    };
    if config.priority_class_name.is_some() {
        pod.priority_class_name
            .clone_from(&config.priority_class_name);
    }
    if config.runtime_class_name.is_some() {
        pod.runtime_class_name
            .clone_from(&config.runtime_class_name);
    }
    if config.affinity.is_some() {
        pod.affinity.clone_from(&config.affinity);
    }
    if let (Some(resources), Some(main)) = (&config.resources, pod.containers.first_mut()) {
        main.resources = Some(resources.clone());
    }
}

/// The `--log-level` value; `info` when the spec leaves it out.
fn log_level(level: Option<LogLevel>) -> &'static str {
    match level.unwrap_or_default() {
        LogLevel::All => "all",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
        LogLevel::None => "none",
    }
}

/// An environment variable from the pod's own fields (downward API).
fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn monitoring_port() -> ContainerPort {
    ContainerPort {
        name: Some("monitoring".to_owned()),
        container_port: METRICS_PORT.into(),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

/// An HTTP probe of `path` on the monitoring port.
fn probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("monitoring".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// Requests only: enough for the scheduler to account for the pod, no limit that could kill a
/// speaker in the middle of a handover. `Config.resources` replaces them.
fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("10m".to_owned())),
            ("memory".to_owned(), Quantity("32Mi".to_owned())),
        ])),
        ..ResourceRequirements::default()
    }
}
