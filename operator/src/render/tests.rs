use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, Toleration};
use metallb_api::metallb::{GracefulShutdownConfig, MetalLBSpec};
use metallb_runtime::consts::{EXCLUDE_L2_DIR, MEMBERSHIP_DIR};

use super::*;

/// The sample every administrator starts from, as stored by the API server (with a uid).
fn sample() -> MetalLB {
    let text = include_str!("../../../manifests/samples/metallb.yaml");
    let mut metallb: MetalLB = serde_saphyr::from_str(text).unwrap();
    metallb.metadata.uid = Some("0a1b2c3d".into());
    metallb
}

fn with_spec(spec: MetalLBSpec) -> MetalLB {
    let mut metallb = MetalLB::new(METALLB, spec);
    metallb.metadata.namespace = Some("metallb-system".into());
    metallb.metadata.uid = Some("0a1b2c3d".into());
    metallb
}

const METALLB: &str = "metallb";

fn settings() -> OperandSettings {
    OperandSettings {
        namespace: "metallb-system".into(),
        image: "registry.example/metallb-rs:test".into(),
        monitoring: Monitoring::default(),
    }
}

fn operands(metallb: &MetalLB) -> Operands {
    render(metallb, &settings(), b"key").unwrap()
}

fn pod(operands: &Operands, component: &str) -> PodSpec {
    match component {
        "controller" => operands.controller.spec.template.spec.clone().unwrap(),
        _ => operands.speaker.spec.template.spec.clone().unwrap(),
    }
}

fn main_container(pod: &PodSpec) -> &Container {
    &pod.containers[0]
}

fn args(container: &Container) -> Vec<&str> {
    container
        .args
        .iter()
        .flatten()
        .map(String::as_str)
        .collect()
}

fn toleration(key: &str, operator: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some(operator.into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    }
}

#[test]
fn every_object_is_owned_by_the_metallb_resource_and_labelled() {
    let operands = operands(&sample());
    let metas = [
        &operands.membership_secret.metadata,
        &operands.excludel2.metadata,
        &operands.controller_metrics.metadata,
        &operands.speaker_metrics.metadata,
        &operands.controller.metadata,
        &operands.speaker.metadata,
    ];
    for meta in metas {
        let owners = meta.owner_references.as_deref().unwrap();
        assert_eq!(owners.len(), 1);
        let owner = &owners[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("MetalLB", "metallb", "0a1b2c3d")
        );
        assert_eq!(owner.api_version, "metallb.io/v1beta1");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("metallb-system"));
        assert_eq!(
            meta.labels
                .as_ref()
                .unwrap()
                .get(MANAGED_BY.0)
                .map(String::as_str),
            Some(MANAGED_BY.1)
        );
    }
}

#[test]
fn a_resource_without_uid_cannot_be_rendered() {
    let mut metallb = sample();
    metallb.metadata.uid = None;
    assert!(matches!(
        render(&metallb, &settings(), b"key"),
        Err(RenderError::NoIdentity(name)) if name == "metallb"
    ));
}

#[test]
fn the_controller_takes_its_fields_from_the_sample() {
    let operands = operands(&sample());
    let deployment = &operands.controller;
    assert_eq!(deployment.metadata.name.as_deref(), Some("controller"));
    assert_eq!(deployment.spec.replicas, Some(1));
    let template = &deployment.spec.template;
    let pod = template.spec.as_ref().unwrap();
    let container = main_container(pod);
    assert_eq!(container.name, "controller");
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/metallb-rs:test")
    );
    assert_eq!(
        container.command.as_deref(),
        Some(&["metallb-controller".to_owned()][..])
    );
    assert_eq!(args(container), ["--log-level=info", "--metrics-port=7472"]);
    assert_eq!(pod.service_account_name.as_deref(), Some("controller"));
    assert_eq!(
        pod.node_selector,
        Some(BTreeMap::from([(
            "kubernetes.io/os".into(),
            "linux".into()
        )]))
    );
    // controllerConfig: priority class, annotations, resources replaced.
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    assert_eq!(
        template.metadata.as_ref().unwrap().annotations,
        Some(BTreeMap::from([(
            "example.com/owner".into(),
            "network-team".into()
        )]))
    );
    let resources = container.resources.as_ref().unwrap();
    assert_eq!(
        resources.requests, None,
        "the spec's resources replace the defaults"
    );
    assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "128Mi");
}

#[test]
fn controller_fields_follow_every_controller_setting() {
    let spec = MetalLBSpec {
        log_level: Some(LogLevel::Debug),
        load_balancer_class: Some("example.com/metallb".into()),
        controller_node_selector: Some(BTreeMap::from([
            ("node-role.kubernetes.io/infra".into(), "".into()),
            ("kubernetes.io/os".into(), "linux".into()),
        ])),
        controller_tolerations: Some(vec![toleration("infra", "Exists", "NoSchedule")]),
        controller_config: Some(Config {
            runtime_class_name: Some("gvisor".into()),
            affinity: Some(Default::default()),
            ..Config::default()
        }),
        ..MetalLBSpec::default()
    };
    let pod = pod(&operands(&with_spec(spec)), "controller");
    assert_eq!(
        args(main_container(&pod)),
        [
            "--log-level=debug",
            "--metrics-port=7472",
            "--lb-class=example.com/metallb"
        ]
    );
    let selector = pod.node_selector.clone().unwrap();
    assert_eq!(selector.len(), 2);
    assert_eq!(selector["node-role.kubernetes.io/infra"], "");
    assert_eq!(
        pod.tolerations,
        Some(vec![toleration("infra", "Exists", "NoSchedule")])
    );
    assert_eq!(pod.runtime_class_name.as_deref(), Some("gvisor"));
    assert_eq!(pod.affinity, Some(Default::default()));
    assert!(
        main_container(&pod)
            .resources
            .as_ref()
            .unwrap()
            .requests
            .is_some()
    );
}

#[test]
fn the_speaker_runs_on_the_host_network_with_what_raw_sockets_and_bgp_need() {
    let operands = operands(&sample());
    let pod = pod(&operands, "speaker");
    let container = main_container(&pod);
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.service_account_name.as_deref(), Some("speaker"));
    assert_eq!(
        container.command.as_deref(),
        Some(&["metallb-speaker".to_owned()][..])
    );
    let caps = container
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .unwrap();
    assert_eq!(
        caps.add.as_deref().unwrap(),
        ["NET_RAW", "NET_ADMIN", "NET_BIND_SERVICE"]
    );
    assert_eq!(caps.drop.as_deref().unwrap(), ["ALL"]);
    let node_name = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "NODE_NAME")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(node_name, Some("spec.nodeName"));
}

#[test]
fn speaker_selector_and_tolerations_are_merged_onto_the_defaults() {
    let pod = pod(&operands(&sample()), "speaker");
    assert_eq!(
        pod.node_selector,
        Some(BTreeMap::from([
            ("kubernetes.io/os".into(), "linux".into()),
            ("node-role.kubernetes.io/worker".into(), "".into()),
        ]))
    );
    assert_eq!(
        pod.tolerations,
        Some(vec![
            toleration("node-role.kubernetes.io/master", "Exists", "NoSchedule"),
            toleration(
                "node-role.kubernetes.io/control-plane",
                "Exists",
                "NoSchedule"
            ),
            toleration("Example", "Exists", "NoExecute"),
        ])
    );
    // speakerConfig.affinity replaces the (empty) default.
    let affinity = pod.affinity.unwrap();
    assert!(
        affinity
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .is_some()
    );
}

#[test]
fn drain_graceful_shutdown_and_fencing_reach_the_speaker_arguments() {
    let pod = pod(&operands(&sample()), "speaker");
    assert_eq!(
        args(main_container(&pod)),
        [
            "--log-level=info",
            "--metrics-port=7472",
            "--heartbeat-port=7946",
            "--membership-key-file=/etc/metallb/membership/secretkey",
            "--excludel2-file=/etc/metallb/excludel2/excludel2.yaml",
            "--drain-on-cordon=true",
            "--drain-taint-keys=example.com/maintenance",
            "--never-blackhole=true",
            "--graceful-shutdown=true",
            "--graceful-shutdown-delay=5s",
            "--fencing=true",
            "--fencing-lease-duration=10s",
        ]
    );
}

#[test]
fn an_empty_spec_gets_the_documented_defaults() {
    let operands = operands(&with_spec(MetalLBSpec::default()));
    let pod = pod(&operands, "speaker");
    let args = args(main_container(&pod));
    for expected in [
        "--log-level=info",
        "--drain-on-cordon=false",
        "--never-blackhole=true",
        "--graceful-shutdown=true",
        "--graceful-shutdown-delay=5s",
        "--fencing=true",
        "--fencing-lease-duration=10s",
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--drain-taint-keys") || a.starts_with("--lb-class"))
    );
    assert_eq!(pod.tolerations.unwrap().len(), 2);
    assert_eq!(pod.termination_grace_period_seconds, Some(15));
}

#[test]
fn the_grace_period_covers_the_graceful_shutdown_delay_and_a_margin() {
    let spec = |enabled, delay: &str| MetalLBSpec {
        graceful_shutdown: Some(GracefulShutdownConfig {
            enabled: Some(enabled),
            delay: Some(metallb_api::duration::GoDuration(delay.into())),
        }),
        ..MetalLBSpec::default()
    };
    let grace = |spec: &MetalLBSpec| speaker_grace_period(spec).unwrap().as_secs();
    assert_eq!(grace(&spec(true, "30s")), 40);
    assert_eq!(
        grace(&spec(true, "1500ms")),
        12,
        "rounded up to whole seconds"
    );
    assert_eq!(
        grace(&spec(false, "30s")),
        10,
        "nothing to wait for when disabled"
    );
    let pod = pod(&operands(&with_spec(spec(true, "2m"))), "speaker");
    assert_eq!(pod.termination_grace_period_seconds, Some(130));
    assert!(args(main_container(&pod)).contains(&"--graceful-shutdown-delay=2m0s"));
    assert!(matches!(
        render(&with_spec(spec(true, "soon")), &settings(), b"k"),
        Err(RenderError::Duration {
            field: "spec.gracefulShutdown.delay",
            ..
        })
    ));
}

#[test]
fn the_speaker_mounts_the_membership_key_and_the_exclusion_list() {
    let operands = operands(&sample());
    let secret = &operands.membership_secret;
    assert_eq!(secret.metadata.name.as_deref(), Some("metallb-memberlist"));
    assert_eq!(secret.data.as_ref().unwrap()["secretkey"].0, b"key");
    let excludel2 = &operands.excludel2;
    assert_eq!(
        excludel2.metadata.name.as_deref(),
        Some("metallb-excludel2")
    );
    let list = &excludel2.data.as_ref().unwrap()["excludel2.yaml"];
    assert!(
        list.starts_with("announcedInterfacesToExclude: [\"^docker.*\""),
        "{list}"
    );
    assert_eq!(list.matches("\"^").count(), 14);

    let pod = pod(&operands, "speaker");
    let volumes = pod.volumes.clone().unwrap();
    assert_eq!(
        volumes[0].secret.as_ref().unwrap().secret_name.as_deref(),
        Some("metallb-memberlist")
    );
    assert_eq!(
        volumes[1].config_map.as_ref().unwrap().name,
        "metallb-excludel2"
    );
    // the control socket's directory is writable, in memory, and goes with the pod
    assert_eq!(
        volumes[2].empty_dir.as_ref().unwrap().medium.as_deref(),
        Some("Memory")
    );
    let mounts: Vec<_> = main_container(&pod)
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("membership", MEMBERSHIP_DIR),
            ("excludel2", EXCLUDE_L2_DIR),
            ("control", super::speaker::CONTROL_DIR)
        ]
    );
}

#[test]
fn metrics_services_are_headless_and_select_their_component() {
    let operands = operands(&sample());
    for (service, component) in [
        (&operands.controller_metrics, "controller"),
        (&operands.speaker_metrics, "speaker"),
    ] {
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.selector.as_ref().unwrap()["component"], component);
        assert_eq!(
            spec.ports.as_ref().unwrap()[0].port,
            i32::from(METRICS_PORT)
        );
    }
}

#[test]
fn pods_match_their_selectors() {
    let operands = operands(&sample());
    let check = |selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
        assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    };
    let controller = &operands.controller.spec;
    check(
        controller.selector.match_labels.as_ref().unwrap(),
        controller
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap(),
    );
    let speaker = &operands.speaker.spec;
    check(
        speaker.selector.match_labels.as_ref().unwrap(),
        speaker
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap(),
    );
}
