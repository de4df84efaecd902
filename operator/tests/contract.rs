//! The contract between the operator and the binaries it deploys: every container command the
//! operator renders (the controller Deployment and the speaker DaemonSet for the sample and
//! for every combination of the spec fields that change arguments, and the operator's own
//! install Deployment) parses with the argument types of the binary that will run it, and the
//! parsed values are the ones the spec asked for.

use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use metallb_api::duration::GoDuration;
use metallb_api::metallb::{
    DrainConfig, FencingConfig, GracefulShutdownConfig, LogLevel, MetalLB, MetalLBSpec,
};
use metallb_operator::install;
use metallb_operator::render::{OperandSettings, Operands, render};
use metallb_runtime::cli::LogLevel as CliLevel;
use metallb_runtime::consts::{EXCLUDE_L2_DIR, HEARTBEAT_PORT, MEMBERSHIP_DIR, METRICS_PORT};

fn sample() -> MetalLB {
    let text = include_str!("../../manifests/samples/metallb.yaml");
    serde_saphyr::from_str(text).expect("the sample MetalLB parses")
}

fn operands(spec: MetalLBSpec) -> Operands {
    let mut metallb = MetalLB::new("metallb", spec);
    metallb.metadata.namespace = Some("metallb-system".into());
    metallb.metadata.uid = Some("0a1b2c3d".into());
    render(&metallb, &OperandSettings::new("metallb-system"), b"key").unwrap()
}

/// The container's command line as the kubelet runs it: command, then args.
fn argv(container: &Container) -> Vec<String> {
    let command = container.command.clone().unwrap_or_default();
    assert!(!command.is_empty(), "{} has no command", container.name);
    command
        .into_iter()
        .chain(container.args.clone().unwrap_or_default())
        .collect()
}

fn controller_argv(operands: &Operands) -> Vec<String> {
    let pod = operands.controller.spec.template.spec.as_ref();
    argv(&pod.unwrap().containers[0])
}

fn speaker_argv(operands: &Operands) -> Vec<String> {
    let pod = operands.speaker.spec.template.spec.as_ref();
    argv(&pod.unwrap().containers[0])
}

fn controller(argv: &[String]) -> metallb_controller::cli::Args {
    assert_eq!(argv[0], "metallb-controller");
    metallb_controller::cli::Args::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("the controller refuses {argv:?}:\n{e}"))
}

fn speaker(argv: &[String]) -> metallb_speaker::cli::Cli {
    assert_eq!(argv[0], "metallb-speaker");
    let cli = metallb_speaker::cli::Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("the speaker refuses {argv:?}:\n{e}"));
    assert!(cli.command.is_none(), "{argv:?} runs a lab subcommand");
    cli
}

/// Every spec that changes the rendered arguments, each field alone and all at once.
fn specs() -> Vec<MetalLBSpec> {
    let levels = [
        LogLevel::All,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
        LogLevel::None,
    ];
    let mut specs = vec![sample().spec, MetalLBSpec::default()];
    for level in levels {
        specs.push(MetalLBSpec {
            log_level: Some(level),
            ..MetalLBSpec::default()
        });
    }
    let everything = MetalLBSpec {
        log_level: Some(LogLevel::Debug),
        load_balancer_class: Some("example.com/metallb".into()),
        drain: Some(DrainConfig {
            on_cordon: Some(true),
            taint_keys: Some(vec![
                "example.com/maintenance".into(),
                "example.com/drain".into(),
            ]),
            never_blackhole: Some(false),
        }),
        graceful_shutdown: Some(GracefulShutdownConfig {
            enabled: Some(false),
            delay: Some(GoDuration("1m30s".into())),
        }),
        fencing: Some(FencingConfig {
            enabled: Some(false),
            lease_duration: Some(GoDuration("2500ms".into())),
        }),
        ..MetalLBSpec::default()
    };
    specs.push(MetalLBSpec {
        load_balancer_class: everything.load_balancer_class.clone(),
        ..MetalLBSpec::default()
    });
    specs.push(MetalLBSpec {
        drain: everything.drain.clone(),
        ..MetalLBSpec::default()
    });
    specs.push(MetalLBSpec {
        graceful_shutdown: everything.graceful_shutdown.clone(),
        ..MetalLBSpec::default()
    });
    specs.push(MetalLBSpec {
        fencing: everything.fencing.clone(),
        ..MetalLBSpec::default()
    });
    specs.push(everything);
    specs
}

fn level(spec: &MetalLBSpec) -> CliLevel {
    match spec.log_level.unwrap_or_default() {
        LogLevel::All => CliLevel::All,
        LogLevel::Debug => CliLevel::Debug,
        LogLevel::Info => CliLevel::Info,
        LogLevel::Warn => CliLevel::Warn,
        LogLevel::Error => CliLevel::Error,
        LogLevel::None => CliLevel::None,
    }
}

#[test]
fn every_rendered_controller_command_parses_with_the_controllers_own_arguments() {
    for spec in specs() {
        let args = controller(&controller_argv(&operands(spec.clone())));
        assert_eq!(args.log.log_level, level(&spec), "{spec:?}");
        assert_eq!(args.scope.lb_class, spec.load_balancer_class, "{spec:?}");
        assert_eq!(args.metrics.metrics_port, METRICS_PORT);
    }
}

#[test]
fn every_rendered_speaker_command_parses_with_the_speakers_own_arguments() {
    for spec in specs() {
        let node = speaker(&speaker_argv(&operands(spec.clone()))).node;
        let drain = spec.drain.clone().unwrap_or_default();
        let graceful = spec.graceful_shutdown.clone().unwrap_or_default();
        let fencing = spec.fencing.clone().unwrap_or_default();
        assert_eq!(node.log.log_level, level(&spec), "{spec:?}");
        assert_eq!(node.scope.lb_class, spec.load_balancer_class, "{spec:?}");
        assert_eq!(node.metrics.metrics_port, METRICS_PORT);
        assert_eq!(node.heartbeat_port, HEARTBEAT_PORT);
        let key = node.membership_key_file.unwrap();
        assert!(key.starts_with(MEMBERSHIP_DIR), "{key:?}");
        assert!(node.excludel2_file.unwrap().starts_with(EXCLUDE_L2_DIR));
        assert_eq!(node.drain_on_cordon, drain.on_cordon());
        assert_eq!(node.never_blackhole, drain.never_blackhole());
        assert_eq!(node.drain_taint_keys, drain.taint_keys.unwrap_or_default());
        assert_eq!(node.graceful_shutdown, graceful.enabled());
        let delay = graceful
            .delay
            .map_or(Ok(Duration::from_secs(5)), |d| d.parse());
        assert_eq!(node.graceful_shutdown_delay, delay.unwrap());
        assert_eq!(node.fencing, fencing.enabled());
        let lease = fencing
            .lease_duration
            .map_or(Ok(FencingConfig::DEFAULT_LEASE_DURATION), |d| d.parse());
        assert_eq!(node.fencing_lease_duration, lease.unwrap());
    }
}

#[test]
fn the_operators_own_deployment_command_parses_with_the_operators_arguments() {
    let files = install::files("metallb-system", "registry.example/metallb-rs:test");
    let deployment: Deployment = files
        .iter()
        .flat_map(|file| file.objects.iter())
        .find(|object| object["kind"] == "Deployment")
        .map(|object| serde_json::from_value(object.clone()).unwrap())
        .expect("the install has the operator Deployment");
    let deployment: Deployment = deployment;
    let pod = deployment.spec.template.spec.unwrap();
    let argv = argv(&pod.containers[0]);
    let cli = metallb_operator::cli::Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("the operator refuses {argv:?}:\n{e}"));
    assert!(cli.command.is_none());
    assert!(cli.run.leader_elect);
}

#[test]
fn a_flag_the_binary_does_not_know_fails_the_contract() {
    let operands = operands(sample().spec);
    for (mut argv, parse) in [
        (
            controller_argv(&operands),
            (|a: &[String]| metallb_controller::cli::Args::try_parse_from(a).map(drop))
                as fn(&[String]) -> Result<(), clap::Error>,
        ),
        (speaker_argv(&operands), |a: &[String]| {
            metallb_speaker::cli::Cli::try_parse_from(a).map(drop)
        }),
    ] {
        assert!(parse(&argv).is_ok());
        argv.push("--announce-everything=true".into());
        let error = parse(&argv).unwrap_err().to_string();
        assert!(error.contains("--announce-everything"), "{error}");
    }
}
