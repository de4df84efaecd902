//! The `MetalLB` resource: the current operator's rules, `bgpBackend` limited to `native`, and
//! our drain, graceful-shutdown and fencing settings.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Affinity, PodAffinityTerm, Toleration};

use super::{Denial, Report, selector};
use crate::metallb::{BgpBackend, Config, MetalLB};

/// Longest graceful-shutdown delay: the speaker's termination grace period is derived from it.
pub const MAX_GRACEFUL_SHUTDOWN_DELAY: Duration = Duration::from_secs(300);
/// Shortest lease: renewals need a few round trips to the API server inside it.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(2);
/// Longest lease: fencing later than this is no fencing.
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(300);

/// Validates a `MetalLB` resource. Name and namespace are not checked: the singleton rule is
/// reported in the status by the operator.
pub fn validate_metallb(metallb: &MetalLB) -> Result<(), Denial> {
    let spec = &metallb.spec;
    let mut report = Report::new("metallb", metallb.metadata.name.as_deref());
    report.check_fields("spec", spec);

    check_tolerations(
        &mut report,
        "spec.controllerTolerations",
        "ControllerToleration",
        spec.controller_tolerations.as_deref(),
    );
    check_tolerations(
        &mut report,
        "spec.speakerTolerations",
        "SpeakerToleration",
        spec.speaker_tolerations.as_deref(),
    );
    check_affinity(
        &mut report,
        "spec.speakerConfig",
        "SpeakerConfig",
        spec.speaker_config.as_ref(),
    );
    check_affinity(
        &mut report,
        "spec.controllerConfig",
        "ControllerConfig",
        spec.controller_config.as_ref(),
    );

    if let Some(backend) = spec.bgp_backend
        && backend != BgpBackend::Native
    {
        let name = serde_json::to_value(backend)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        report.add(
            "spec.bgpBackend",
            format!(
                "invalid BGP Backend {name:?}: the metallb-rs speaker implements BGP and BFD itself, so only \"native\" is supported (leave the field empty or set it to native)"
            ),
        );
    }
    for (i, entry) in spec
        .frrk8s_config
        .iter()
        .flat_map(|c| c.always_block.iter().flatten())
        .enumerate()
    {
        if entry.trim().parse::<ipnet::IpNet>().is_err() {
            report.add(
                format!("spec.frrk8sConfig.alwaysBlock[{i}]"),
                format!("invalid CIDR {entry} in AlwaysBlock"),
            );
        }
    }

    if let Some(drain) = &spec.drain {
        let mut seen = std::collections::BTreeSet::new();
        for (i, key) in drain.taint_keys.iter().flatten().enumerate() {
            let field = format!("spec.drain.taintKeys[{i}]");
            if !is_qualified_name(key) {
                report.add(&field, format!("invalid taint key {key:?}: must be a qualified name like example.com/maintenance"));
            } else if !seen.insert(key) {
                report.add(&field, format!("duplicate taint key {key:?}"));
            }
        }
    }
    // Unparsable durations are reported by `check_fields`.
    if let Some(delay) = spec
        .graceful_shutdown
        .as_ref()
        .and_then(|g| g.delay.as_ref())
        && delay.parse().is_ok_and(|d| d > MAX_GRACEFUL_SHUTDOWN_DELAY)
    {
        report.add(
            "spec.gracefulShutdown.delay",
            format!("graceful shutdown delay {delay} is longer than the maximum 5m0s"),
        );
    }
    if let Some(lease) = spec
        .fencing
        .as_ref()
        .and_then(|f| f.lease_duration.as_ref())
        && lease
            .parse()
            .is_ok_and(|d| !(MIN_LEASE_DURATION..=MAX_LEASE_DURATION).contains(&d))
    {
        report.add(
            "spec.fencing.leaseDuration",
            format!("lease duration {lease} must be between 2s and 5m0s"),
        );
    }
    report.finish()
}

fn check_tolerations(
    report: &mut Report,
    field: &str,
    what: &str,
    tolerations: Option<&[Toleration]>,
) {
    for (i, t) in tolerations.unwrap_or_default().iter().enumerate() {
        if t.toleration_seconds.is_some_and(|s| s > 0) && t.effect.as_deref() != Some("NoExecute") {
            report.add(
                format!("{field}[{i}].effect"),
                format!("{what} effect must be NoExecute when tolerationSeconds is set"),
            );
        }
    }
}

fn check_affinity(report: &mut Report, field: &str, what: &str, config: Option<&Config>) {
    let Some(affinity) = config.and_then(|c| c.affinity.as_ref()) else {
        return;
    };
    let Affinity {
        node_affinity,
        pod_affinity,
        ..
    } = affinity;
    let bad = |w: i32| !(1..=100).contains(&w);
    let node_weights = node_affinity
        .iter()
        .flat_map(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
        })
        .map(|t| t.weight);
    if node_weights.into_iter().any(bad) {
        report.add(
            format!("{field}.affinity.nodeAffinity"),
            format!("{what} NodeAffinity set with invalid weight for preferred scheduling term"),
        );
    }
    let pod_weights = pod_affinity
        .iter()
        .flat_map(|p| {
            p.preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
        })
        .map(|t| t.weight);
    if pod_weights.into_iter().any(bad) {
        report.add(
            format!("{field}.affinity.podAffinity"),
            format!("{what} PodAffinity set with invalid weight for preferred scheduling term"),
        );
    }
    check_pod_selectors(report, &format!("{field}.affinity"), affinity);
}

/// Reports malformed label and namespace selectors of the pod (anti-)affinity terms.
fn check_pod_selectors(report: &mut Report, field: &str, affinity: &Affinity) {
    let pod = affinity.pod_affinity.as_ref();
    let anti = affinity.pod_anti_affinity.as_ref();
    let groups = [
        (
            "podAffinity",
            pod.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_deref()
            }),
            pod.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            }),
        ),
        (
            "podAntiAffinity",
            anti.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_deref()
            }),
            anti.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            }),
        ),
    ];
    for (name, required, preferred) in groups {
        let required = required
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let path =
                    format!("{field}.{name}.requiredDuringSchedulingIgnoredDuringExecution[{i}]");
                (path, t)
            });
        let preferred = preferred.unwrap_or_default().iter().enumerate().map(|(i, w)| {
            let path = format!(
                "{field}.{name}.preferredDuringSchedulingIgnoredDuringExecution[{i}].podAffinityTerm"
            );
            (path, &w.pod_affinity_term)
        });
        for (path, term) in required.chain(preferred) {
            check_term(report, &path, term);
        }
    }
}

fn check_term(report: &mut Report, path: &str, term: &PodAffinityTerm) {
    for (name, selector) in [
        ("labelSelector", &term.label_selector),
        ("namespaceSelector", &term.namespace_selector),
    ] {
        selector::check_one(report, &format!("{path}.{name}"), selector.as_ref());
    }
}

/// A Kubernetes qualified name: optional DNS-subdomain prefix and `/`, then a name of at most
/// 63 alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric.
fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    name_ok && prefix_ok
}
