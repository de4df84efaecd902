//! The controller Deployment: one `metallb-controller` that assigns addresses to Services.

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            Capabilities, Container, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile,
            SecurityContext,
        },
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta},
};
use metallb_api::metallb::MetalLBSpec;
use metallb_runtime::consts::METRICS_PORT;

use super::{
    OperandSettings, apply_config, default_resources, field_env, labels, log_level,
    monitoring_port, names, node_selector, probe, selector_labels,
};

/// The controller Deployment for `spec`.
pub(super) fn deployment(
    spec: &MetalLBSpec,
    settings: &OperandSettings,
    metadata: ObjectMeta,
) -> Deployment {
    let mut args = vec![
        format!("--log-level={}", log_level(spec.log_level)),
        format!("--metrics-port={METRICS_PORT}"),
    ];
    if let Some(class) = &spec.load_balancer_class {
        args.push(format!("--lb-class={class}"));
    }
    let container = Container {
        name: names::CONTROLLER.to_owned(),
        image: Some(settings.image.clone()),
        command: Some(vec!["metallb-controller".to_owned()]),
        args: Some(args),
        env: Some(vec![
            field_env("METALLB_NAMESPACE", "metadata.namespace"),
            field_env("POD_NAME", "metadata.name"),
        ]),
        ports: Some(vec![monitoring_port()]),
        liveness_probe: Some(probe("/healthz")),
        readiness_probe: Some(probe("/readyz")),
        resources: Some(default_resources()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(Some(names::CONTROLLER))),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            service_account_name: Some(names::CONTROLLER.to_owned()),
            node_selector: Some(node_selector(spec.controller_node_selector.as_ref())),
            tolerations: spec.controller_tolerations.clone(),
            // The controller keeps no state outside the API server: nothing to finish on exit.
            termination_grace_period_seconds: Some(0),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
    };
    apply_config(&mut template, spec.controller_config.as_ref());
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector_labels(names::CONTROLLER)),
                ..LabelSelector::default()
            },
            // Two allocators side by side during a rolling update could hand out the same
            // address twice; the old controller stops before the new one starts.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            template,
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}
