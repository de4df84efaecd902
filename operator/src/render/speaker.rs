//! The speaker DaemonSet: one `metallb-speaker` per node, on the host network, with what it
//! needs for raw ARP/NDP sockets and BGP, and the drain, graceful-shutdown and fencing settings
//! of the spec as command-line arguments.
//!
//! Arguments, all written on every render so the pod spec shows the effective values:
//!
//! | argument | from |
//! |---|---|
//! | `--log-level=<level>` | `spec.logLevel` (default `info`) |
//! | `--lb-class=<class>` | `spec.loadBalancerClass`, only when set |
//! | `--metrics-port=7472`, `--heartbeat-port=7946` | fixed |
//! | `--membership-key-file=<path>` | the mounted membership Secret |
//! | `--excludel2-file=<path>` | the mounted `metallb-excludel2` ConfigMap |
//! | `--drain-on-cordon=<bool>` | `spec.drain.onCordon` (default false) |
//! | `--drain-taint-keys=<k1,k2>` | `spec.drain.taintKeys`, only when not empty |
//! | `--never-blackhole=<bool>` | `spec.drain.neverBlackhole` (default true) |
//! | `--graceful-shutdown=<bool>` | `spec.gracefulShutdown.enabled` (default true) |
//! | `--graceful-shutdown-delay=<duration>` | `spec.gracefulShutdown.delay` (default `5s`) |
//! | `--fencing=<bool>` | `spec.fencing.enabled` (default true) |
//! | `--fencing-lease-duration=<duration>` | `spec.fencing.leaseDuration` (default `10s`) |
//!
//! Environment: `NODE_NAME` (`spec.nodeName`), `POD_NAME`, `METALLB_NAMESPACE`, `HOST_IP`.

use std::time::Duration;

use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, DaemonSetSpec},
        core::v1::{
            Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
            PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, SecretVolumeSource,
            SecurityContext, Toleration, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta},
};
use metallb_api::{
    duration::GoDuration,
    metallb::{FencingConfig, GracefulShutdownConfig, MetalLBSpec},
};
use metallb_runtime::consts::{
    EXCLUDE_L2_DIR, EXCLUDE_L2_KEY, HEARTBEAT_PORT, MEMBERSHIP_DIR, MEMBERSHIP_KEY, METRICS_PORT,
};

use super::{
    OperandSettings, RenderError, apply_config, default_resources, field_env, labels, log_level,
    monitoring_port, names, node_selector, probe, selector_labels,
};

/// Where the speaker creates its control socket (`metallb-speaker show` in the pod talks to
/// it; the directory of the speaker's `DEFAULT_CONTROL`). The root file system is read-only,
/// so the pod gives it a directory of its own.
pub(crate) const CONTROL_DIR: &str = "/run/metallb-speaker";

/// Time a speaker gets after SIGTERM on top of its graceful-shutdown delay: handing layer 2
/// ownership over, withdrawing with Cease and exiting. Only a hung speaker uses all of it.
pub const GRACE_MARGIN: Duration = Duration::from_secs(10);

/// The termination grace period of the speakers: the graceful-shutdown delay (when graceful
/// shutdown is on) plus [`GRACE_MARGIN`], in whole seconds rounded up.
pub fn speaker_grace_period(spec: &MetalLBSpec) -> Result<Duration, RenderError> {
    let delay = if graceful(spec).enabled() {
        graceful_delay(spec)?
    } else {
        Duration::ZERO
    };
    let total = delay + GRACE_MARGIN;
    Ok(Duration::from_secs(
        total.as_secs() + u64::from(total.subsec_nanos() > 0),
    ))
}

fn graceful(spec: &MetalLBSpec) -> GracefulShutdownConfig {
    spec.graceful_shutdown.clone().unwrap_or_default()
}

fn graceful_delay(spec: &MetalLBSpec) -> Result<Duration, RenderError> {
    match &graceful(spec).delay {
        Some(delay) => delay.parse().map_err(|source| RenderError::Duration {
            field: "spec.gracefulShutdown.delay",
            source,
        }),
        None => Ok(GracefulShutdownConfig::DEFAULT_DELAY),
    }
}

fn fencing_lease(fencing: &FencingConfig) -> Result<Duration, RenderError> {
    match &fencing.lease_duration {
        Some(lease) => lease.parse().map_err(|source| RenderError::Duration {
            field: "spec.fencing.leaseDuration",
            source,
        }),
        None => Ok(FencingConfig::DEFAULT_LEASE_DURATION),
    }
}

/// The speaker's arguments for `spec` (see the module documentation).
fn args(spec: &MetalLBSpec) -> Result<Vec<String>, RenderError> {
    let mut args = vec![format!("--log-level={}", log_level(spec.log_level))];
    if let Some(class) = &spec.load_balancer_class {
        args.push(format!("--lb-class={class}"));
    }
    args.push(format!("--metrics-port={METRICS_PORT}"));
    args.push(format!("--heartbeat-port={HEARTBEAT_PORT}"));
    args.push(format!(
        "--membership-key-file={}/{}",
        MEMBERSHIP_DIR, MEMBERSHIP_KEY
    ));
    args.push(format!(
        "--excludel2-file={}/{}",
        EXCLUDE_L2_DIR, EXCLUDE_L2_KEY
    ));

    let drain = spec.drain.clone().unwrap_or_default();
    args.push(format!("--drain-on-cordon={}", drain.on_cordon()));
    let taint_keys = drain.taint_keys.as_deref().unwrap_or_default();
    if !taint_keys.is_empty() {
        // Taint keys are qualified names, so a comma never occurs inside one.
        args.push(format!("--drain-taint-keys={}", taint_keys.join(",")));
    }
    args.push(format!("--never-blackhole={}", drain.never_blackhole()));

    let graceful = graceful(spec);
    args.push(format!("--graceful-shutdown={}", graceful.enabled()));
    args.push(format!(
        "--graceful-shutdown-delay={}",
        GoDuration::from(graceful_delay(spec)?)
    ));

    let fencing = spec.fencing.clone().unwrap_or_default();
    args.push(format!("--fencing={}", fencing.enabled()));
    args.push(format!(
        "--fencing-lease-duration={}",
        GoDuration::from(fencing_lease(&fencing)?)
    ));
    Ok(args)
}

/// Speakers run on control-plane nodes too unless told otherwise; the spec's tolerations come
/// after these.
fn default_tolerations() -> Vec<Toleration> {
    [
        "node-role.kubernetes.io/master",
        "node-role.kubernetes.io/control-plane",
    ]
    .into_iter()
    .map(|key| Toleration {
        key: Some(key.to_owned()),
        operator: Some("Exists".to_owned()),
        effect: Some("NoSchedule".to_owned()),
        ..Toleration::default()
    })
    .collect()
}

/// The speaker DaemonSet for `spec`.
pub(super) fn daemon_set(
    spec: &MetalLBSpec,
    settings: &OperandSettings,
    metadata: ObjectMeta,
) -> Result<DaemonSet, RenderError> {
    let grace = speaker_grace_period(spec)?;
    let container = Container {
        name: names::SPEAKER.to_owned(),
        image: Some(settings.image.clone()),
        command: Some(vec!["metallb-speaker".to_owned()]),
        args: Some(args(spec)?),
        env: Some(vec![
            field_env("NODE_NAME", "spec.nodeName"),
            field_env("POD_NAME", "metadata.name"),
            field_env("METALLB_NAMESPACE", "metadata.namespace"),
            field_env("HOST_IP", "status.hostIP"),
        ]),
        ports: Some(vec![
            monitoring_port(),
            ContainerPort {
                name: Some("heartbeat".to_owned()),
                container_port: HEARTBEAT_PORT.into(),
                protocol: Some("UDP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        liveness_probe: Some(probe("/healthz")),
        readiness_probe: Some(probe("/readyz")),
        resources: Some(default_resources()),
        security_context: Some(SecurityContext {
            // Capabilities only take effect for root inside the container (Kubernetes has no
            // ambient capabilities); everything else is dropped.
            run_as_user: Some(0),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                // Raw ARP/NDP sockets, interface and socket options (TCP-MD5, TTL), port 179.
                add: Some(vec![
                    "NET_RAW".to_owned(),
                    "NET_ADMIN".to_owned(),
                    "NET_BIND_SERVICE".to_owned(),
                ]),
                drop: Some(vec!["ALL".to_owned()]),
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "membership".to_owned(),
                mount_path: MEMBERSHIP_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "excludel2".to_owned(),
                mount_path: EXCLUDE_L2_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "control".to_owned(),
                mount_path: CONTROL_DIR.to_owned(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };
    let mut tolerations = default_tolerations();
    tolerations.extend(spec.speaker_tolerations.iter().flatten().cloned());
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(Some(names::SPEAKER))),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            service_account_name: Some(names::SPEAKER.to_owned()),
            host_network: Some(true),
            node_selector: Some(node_selector(spec.node_selector.as_ref())),
            tolerations: Some(tolerations),
            termination_grace_period_seconds: Some(grace.as_secs() as i64),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            volumes: Some(vec![
                Volume {
                    name: "membership".to_owned(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(names::MEMBERSHIP_SECRET.to_owned()),
                        default_mode: Some(0o400),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "excludel2".to_owned(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: names::EXCLUDE_L2.to_owned(),
                        default_mode: Some(0o444),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "control".to_owned(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: Some("Memory".to_owned()),
                        ..EmptyDirVolumeSource::default()
                    }),
                    ..Volume::default()
                },
            ]),
            ..PodSpec::default()
        }),
    };
    apply_config(&mut template, spec.speaker_config.as_ref());
    Ok(DaemonSet {
        metadata,
        spec: DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector_labels(names::SPEAKER)),
                ..LabelSelector::default()
            },
            template,
            ..DaemonSetSpec::default()
        },
        ..DaemonSet::default()
    })
}
