//! The operands' metrics as a monitoring stack finds them.
//!
//! Two independent switches, both decided once at operator start ([`Monitoring`]):
//!
//! - **ServiceMonitors** (when the cluster serves `monitoring.coreos.com/v1`
//!   ServiceMonitors): one per component, selecting its metrics Service.
//! - **TLS** (OpenShift, whose service CA issues the certificate): the metrics Service asks
//!   the service CA for a serving certificate (`service.beta.openshift.io/serving-cert-secret-name`),
//!   the pods mount that Secret and run with `--metrics-tls-dir`, so `/metrics` is HTTPS and
//!   answers only callers the API server authorizes (`metallb_runtime::secure`); the probes
//!   switch to HTTPS; the ServiceMonitor scrapes with the scraper's own token and checks the
//!   certificate against the service CA bundle that OpenShift's Prometheus mounts.
//!
//! Without TLS the metrics stay plain HTTP on the monitoring port, as the plain install has
//! always served them: vanilla Kubernetes has no CA that would issue the certificate, and
//! the probes, `hack/run` and the lab tests read them directly.

use k8s_openapi::api::core::v1::{
    PodTemplateSpec, SecretVolumeSource, Service, Volume, VolumeMount,
};
use metallb_runtime::consts::METRICS_TLS_DIR;
use serde_json::{Value, json};

use super::OperandSettings;

/// Group and version of the ServiceMonitor kind.
pub const SERVICE_MONITOR_API_VERSION: &str = "monitoring.coreos.com/v1";

/// Annotation that makes OpenShift's service CA write a serving certificate Secret.
pub const SERVING_CERT_ANNOTATION: &str = "service.beta.openshift.io/serving-cert-secret-name";

/// Where OpenShift's Prometheus finds the service CA bundle.
const SERVICE_CA_FILE: &str = "/etc/prometheus/configmaps/serving-certs-ca-bundle/service-ca.crt";

/// The scraper's own ServiceAccount token, which the operands' authorizer reviews.
const SCRAPER_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How the operands' metrics are exposed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Monitoring {
    /// Render a ServiceMonitor per component.
    pub service_monitors: bool,
    /// Serve metrics over HTTPS with authorization, certificates from the service CA.
    pub tls: bool,
}

/// The Secret the service CA writes for `component`'s metrics Service.
pub fn tls_secret(component: &str) -> String {
    format!("{component}-metrics-tls")
}

/// Asks the service CA for the metrics Service's certificate.
pub(super) fn annotate(service: &mut Service, component: &str) {
    service
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SERVING_CERT_ANNOTATION.to_owned(), tls_secret(component));
}

/// Mounts the certificate into the main container, turns on `--metrics-tls-dir` and switches
/// the probes to HTTPS.
pub(super) fn secure(template: &mut PodTemplateSpec, component: &str) {
    let Some(pod) = template.spec.as_mut() else {
        return;
    };
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: "metrics-tls".to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(tls_secret(component)),
            // Readable by the non-root controller, whatever uid the platform assigns it
            // (OpenShift's restricted SCC picks one); nothing else runs in the container.
            default_mode: Some(0o444),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    });
    let Some(main) = pod.containers.first_mut() else {
        return;
    };
    main.volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            name: "metrics-tls".to_owned(),
            mount_path: METRICS_TLS_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    main.args
        .get_or_insert_with(Vec::new)
        .push(format!("--metrics-tls-dir={METRICS_TLS_DIR}"));
    for probe in [main.liveness_probe.as_mut(), main.readiness_probe.as_mut()]
        .into_iter()
        .flatten()
    {
        if let Some(get) = probe.http_get.as_mut() {
            get.scheme = Some("HTTPS".to_owned());
        }
    }
}

/// The ServiceMonitor of `component`'s metrics Service `service`.
pub(super) fn service_monitor(
    settings: &OperandSettings,
    component: &str,
    service: &Service,
) -> Value {
    let service_name = service.metadata.name.clone().unwrap_or_default();
    let mut endpoint = json!({ "port": "monitoring", "interval": "30s" });
    if settings.monitoring.tls {
        endpoint["scheme"] = json!("https");
        endpoint["bearerTokenFile"] = json!(SCRAPER_TOKEN_FILE);
        endpoint["tlsConfig"] = json!({
            "caFile": SERVICE_CA_FILE,
            "serverName": format!("{service_name}.{}.svc", settings.namespace),
        });
    }
    json!({
        "apiVersion": SERVICE_MONITOR_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": {
            "name": format!("{component}-monitor"),
            "namespace": settings.namespace,
            "labels": service.metadata.labels,
            "ownerReferences": service.metadata.owner_references,
        },
        "spec": {
            // The Service carries its pods' selector labels among its own.
            "selector": { "matchLabels": service.spec.as_ref().and_then(|s| s.selector.clone()) },
            "namespaceSelector": { "matchNames": [settings.namespace] },
            "endpoints": [endpoint],
        },
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;
    use metallb_api::metallb::{MetalLB, MetalLBSpec};

    use super::super::{Operands, names, render};
    use super::*;

    fn operands(monitoring: Monitoring) -> Operands {
        let mut metallb = MetalLB::new("metallb", MetalLBSpec::default());
        metallb.metadata.namespace = Some("metallb-system".into());
        metallb.metadata.uid = Some("0a1b2c3d".into());
        let settings = OperandSettings {
            monitoring,
            ..OperandSettings::new("metallb-system")
        };
        render(&metallb, &settings, b"key").unwrap()
    }

    fn containers(operands: &Operands) -> [Container; 2] {
        let first = |t: &PodTemplateSpec| t.spec.as_ref().unwrap().containers[0].clone();
        [
            first(&operands.controller.spec.template),
            first(&operands.speaker.spec.template),
        ]
    }

    #[test]
    fn without_a_monitoring_stack_metrics_stay_plain_and_no_service_monitor_is_rendered() {
        let operands = operands(Monitoring::default());
        assert!(operands.service_monitors.is_empty());
        assert!(operands.controller_metrics.metadata.annotations.is_none());
        for container in containers(&operands) {
            let args = container.args.unwrap();
            assert!(
                !args.iter().any(|a| a.starts_with("--metrics-tls-dir")),
                "{args:?}"
            );
            let probe = container.readiness_probe.unwrap().http_get.unwrap();
            assert_eq!(probe.scheme, None);
        }
    }

    #[test]
    fn with_tls_the_pods_serve_the_service_ca_certificate_and_probe_over_https() {
        let operands = operands(Monitoring {
            service_monitors: false,
            tls: true,
        });
        for (service, component) in [
            (&operands.controller_metrics, names::CONTROLLER),
            (&operands.speaker_metrics, names::SPEAKER),
        ] {
            let annotations = service.metadata.annotations.clone().unwrap();
            assert_eq!(annotations[SERVING_CERT_ANNOTATION], tls_secret(component));
        }
        for (container, template) in containers(&operands).into_iter().zip([
            &operands.controller.spec.template,
            &operands.speaker.spec.template,
        ]) {
            let args = container.args.clone().unwrap();
            assert!(
                args.contains(&format!("--metrics-tls-dir={METRICS_TLS_DIR}")),
                "{args:?}"
            );
            let mounts = container.volume_mounts.clone().unwrap();
            assert!(mounts.iter().any(|m| m.mount_path == METRICS_TLS_DIR));
            for probe in [container.liveness_probe, container.readiness_probe] {
                assert_eq!(
                    probe.unwrap().http_get.unwrap().scheme.as_deref(),
                    Some("HTTPS")
                );
            }
            let volumes = template.spec.as_ref().unwrap().volumes.clone().unwrap();
            let mounted = volumes
                .iter()
                .filter_map(|v| v.secret.as_ref()?.secret_name.as_deref())
                .any(|name| name == tls_secret(&container.name));
            assert!(mounted, "{volumes:?}");
        }
    }

    #[test]
    fn service_monitors_select_the_metrics_services_and_scrape_with_a_token_under_tls() {
        let plain = operands(Monitoring {
            service_monitors: true,
            tls: false,
        });
        assert_eq!(plain.service_monitors.len(), 2);
        let controller = &plain.service_monitors[0];
        assert_eq!(controller["apiVersion"], SERVICE_MONITOR_API_VERSION);
        assert_eq!(controller["metadata"]["name"], "controller-monitor");
        assert_eq!(controller["metadata"]["namespace"], "metallb-system");
        assert_eq!(
            controller["metadata"]["ownerReferences"][0]["kind"],
            "MetalLB"
        );
        let service_labels = plain.controller_metrics.metadata.labels.clone().unwrap();
        for (key, value) in controller["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(service_labels.get(key).map(String::as_str), value.as_str());
        }
        assert_eq!(controller["spec"]["endpoints"][0]["port"], "monitoring");
        assert!(controller["spec"]["endpoints"][0].get("scheme").is_none());

        let secure = operands(Monitoring {
            service_monitors: true,
            tls: true,
        });
        let endpoint = &secure.service_monitors[1]["spec"]["endpoints"][0];
        assert_eq!(endpoint["scheme"], "https");
        assert_eq!(endpoint["bearerTokenFile"], SCRAPER_TOKEN_FILE);
        assert_eq!(
            endpoint["tlsConfig"]["serverName"],
            "speaker-monitor-service.metallb-system.svc"
        );
    }
}
