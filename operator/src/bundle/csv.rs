//! The ClusterServiceVersion: the plain install's operator Deployment (told to serve with OLM's
//! certificate), its ServiceAccounts' rules as `permissions` (Roles in the install namespace)
//! and `clusterPermissions`, one `webhookdefinitions` entry per validating webhook of
//! `metallb-webhooks` plus the BGPPeer conversion, every CRD version as owned, the samples as
//! `alm-examples`.
//!
//! Install modes: AllNamespaces only. The operator works in its own namespace but its
//! controller and speakers watch Services everywhere, and OLM serves a conversion webhook only
//! for operators installed that way.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use metallb_api::DEFAULT_NAMESPACE;
use metallb_runtime::consts::WEBHOOK_PORT;
use metallb_webhooks::{Endpoint, bgppeer_conversion, validating_webhook_configuration};
use serde_json::{Value, json};

use super::{BundleError, BundleSettings, OLM_CERT_DIR, Sample, descriptors};
use crate::install::{self, OPERATOR, accounts};
use crate::webhook::BGPPEER_CRD;

/// The oldest Kubernetes the CRDs work on: their CEL validation rules are GA from 1.29.
pub const MIN_KUBE_VERSION: &str = "1.29.0";

/// The port of the Service OLM puts in front of the webhooks.
const SERVICE_PORT: i32 = 443;

const DESCRIPTION: &str = "\
MetalLB gives Services of type LoadBalancer an address on clusters without a cloud load \
balancer, and attracts the traffic for it to the nodes: by answering ARP and NDP (layer 2) or \
by announcing routes over BGP, with BFD for fast failure detection.

This operator is metallb-rs, a Rust implementation compatible with the `metallb.io` API of \
MetalLB and its operator. Its speaker speaks BGP and BFD itself (no FRR), withdraws an address \
before its node is drained or shut down, and fences itself when cut off from the API server.

## Getting started

Create the single `MetalLB` resource in the operator's namespace to deploy the controller and \
the speakers, then an `IPAddressPool` and an `L2Advertisement` or `BGPAdvertisement` (with \
`BGPPeer`s) to announce addresses. The namespace must allow privileged pods: the speakers use \
the host network with NET_RAW and NET_ADMIN.";

/// The ClusterServiceVersion for `settings`.
pub fn cluster_service_version(
    settings: &BundleSettings,
    crds: &[CustomResourceDefinition],
    samples: &[Sample],
) -> Result<Value, BundleError> {
    let owned = descriptors::owned(crds)?;
    let examples = examples(&owned, samples)?;
    Ok(json!({
        "apiVersion": "operators.coreos.com/v1alpha1",
        "kind": "ClusterServiceVersion",
        "metadata": {
            "name": settings.csv_name(),
            "namespace": "placeholder",
            "annotations": annotations(settings, &examples),
            "labels": {
                "operatorframework.io/arch.amd64": "supported",
                "operatorframework.io/os.linux": "supported",
            },
        },
        "spec": {
            "displayName": "MetalLB (metallb-rs)",
            "description": DESCRIPTION,
            "version": settings.version,
            "minKubeVersion": MIN_KUBE_VERSION,
            "maturity": "alpha",
            "provider": {"name": "metallb-rs", "url": env!("CARGO_PKG_REPOSITORY")},
            "links": [{"name": "Source code", "url": env!("CARGO_PKG_REPOSITORY")}],
            "keywords": ["metallb", "load balancer", "bgp", "bfd", "layer 2", "networking", "bare metal"],
            "icon": [{"base64data": ICON_SVG_BASE64, "mediatype": "image/svg+xml"}],
            "installModes": install_modes(),
            "install": {
                "strategy": "deployment",
                "spec": {
                    "deployments": [deployment(settings)],
                    "permissions": permissions(false),
                    "clusterPermissions": permissions(true),
                },
            },
            "customresourcedefinitions": {"owned": owned},
            "webhookdefinitions": webhook_definitions(),
            "relatedImages": [{"name": "metallb-rs", "image": settings.image}],
        },
    }))
}

fn annotations(settings: &BundleSettings, examples: &str) -> BTreeMap<String, String> {
    let namespace_template = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": DEFAULT_NAMESPACE,
            "labels": {
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/audit": "privileged",
                "pod-security.kubernetes.io/warn": "privileged",
            },
        },
    });
    let feature = |name: &str| format!("features.operators.openshift.io/{name}");
    let mut annotations: BTreeMap<String, String> = [
        ("alm-examples", examples.to_owned()),
        ("capabilities", "Seamless Upgrades".to_owned()),
        ("categories", "Networking".to_owned()),
        ("certified", "false".to_owned()),
        ("containerImage", settings.image.clone()),
        (
            "description",
            "Load balancer addresses for bare-metal clusters: layer 2 and BGP with BFD".to_owned(),
        ),
        ("repository", env!("CARGO_PKG_REPOSITORY").to_owned()),
        ("support", "metallb-rs".to_owned()),
        // Every earlier version upgrades straight to this one.
        ("olm.skipRange", format!(">=0.0.0 <{}", settings.version)),
        (
            "operatorframework.io/suggested-namespace",
            DEFAULT_NAMESPACE.to_owned(),
        ),
        (
            "operatorframework.io/suggested-namespace-template",
            namespace_template.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // Pulls nothing but relatedImages; plain HTTPS clients, no proxy settings honoured; ring,
    // not a FIPS-validated module; the cluster's TLS profile is not read; no cloud tokens.
    for (name, value) in [
        ("disconnected", "true"),
        ("fips-compliant", "false"),
        ("proxy-aware", "false"),
        ("tls-profiles", "false"),
        ("token-auth-aws", "false"),
        ("token-auth-azure", "false"),
        ("token-auth-gcp", "false"),
        ("cnf", "false"),
        ("cni", "false"),
        ("csi", "false"),
    ] {
        annotations.insert(feature(name), value.to_owned());
    }
    annotations
}

fn install_modes() -> Value {
    let mode = |name: &str, supported: bool| json!({"type": name, "supported": supported});
    json!([
        mode("OwnNamespace", false),
        mode("SingleNamespace", false),
        mode("MultiNamespace", false),
        mode("AllNamespaces", true),
    ])
}

/// The plain install's Deployment, serving with OLM's certificate and registering nothing.
fn deployment(settings: &BundleSettings) -> Value {
    let mut deployment = install::operator_deployment(DEFAULT_NAMESPACE, &settings.image);
    let template = &mut deployment.spec.template;
    template
        .metadata
        .get_or_insert_default()
        .annotations
        .get_or_insert_default()
        .insert(
            "openshift.io/required-scc".to_owned(),
            "restricted-v2".to_owned(),
        );
    if let Some(pod) = template.spec.as_mut() {
        for container in &mut pod.containers {
            container
                .args
                .get_or_insert_default()
                .push(format!("--cert-dir={OLM_CERT_DIR}"));
        }
    }
    json!({
        "name": OPERATOR,
        "label": install::labels(),
        "spec": install::object(&deployment.spec),
    })
}

/// `permissions` (namespaced) or `clusterPermissions`, per ServiceAccount.
fn permissions(cluster: bool) -> Value {
    accounts(false)
        .into_iter()
        .map(|account| {
            let rules = if cluster {
                account.cluster
            } else {
                account.namespaced
            };
            json!({"serviceAccountName": account.account, "rules": install::object(&rules)})
        })
        .collect()
}

/// The plain install's ValidatingWebhookConfiguration and BGPPeer conversion, as OLM webhook
/// descriptions on the operator's Deployment.
fn webhook_definitions() -> Value {
    // Only the paths are taken from the endpoint: OLM names its own Service.
    let endpoint = Endpoint::Service {
        name: OPERATOR.to_owned(),
        namespace: DEFAULT_NAMESPACE.to_owned(),
    };
    let configuration = validating_webhook_configuration(&endpoint, None);
    let mut definitions: Vec<Value> = configuration
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .map(|webhook| {
            let path = webhook.client_config.service.and_then(|s| s.path);
            json!({
                "type": "ValidatingAdmissionWebhook",
                "generateName": webhook.name,
                "deploymentName": OPERATOR,
                "containerPort": SERVICE_PORT,
                "targetPort": WEBHOOK_PORT,
                "webhookPath": path,
                "admissionReviewVersions": webhook.admission_review_versions,
                "sideEffects": webhook.side_effects,
                "failurePolicy": webhook.failure_policy,
                "matchPolicy": webhook.match_policy,
                "timeoutSeconds": webhook.timeout_seconds,
                "rules": install::object(&webhook.rules),
            })
        })
        .collect();
    let conversion = bgppeer_conversion(&endpoint, None).webhook;
    let path = conversion
        .as_ref()
        .and_then(|w| w.client_config.as_ref())
        .and_then(|c| c.service.as_ref())
        .and_then(|s| s.path.clone());
    definitions.push(json!({
        "type": "ConversionWebhook",
        "generateName": "cbgppeers.metallb.io",
        "deploymentName": OPERATOR,
        "containerPort": SERVICE_PORT,
        "targetPort": WEBHOOK_PORT,
        "webhookPath": path,
        "conversionCRDs": [BGPPEER_CRD],
        "admissionReviewVersions": conversion.map(|w| w.conversion_review_versions),
        "sideEffects": "None",
    }));
    Value::Array(definitions)
}

/// `alm-examples`: every sample, in file order; every owned kind must have one.
fn examples(owned: &[Value], samples: &[Sample]) -> Result<String, BundleError> {
    for entry in owned {
        let kind = entry["kind"].as_str().unwrap_or_default();
        if !samples.iter().any(|s| s.object["kind"] == kind) {
            return Err(BundleError::Csv(format!(
                "no sample of kind {kind} for alm-examples"
            )));
        }
    }
    let objects: Vec<&Value> = samples.iter().map(|s| &s.object).collect();
    serde_json::to_string_pretty(&objects).map_err(|e| BundleError::Csv(e.to_string()))
}

/// A small icon: an address pin over two stacked links.
const ICON_SVG_BASE64: &str = "PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCA2NCA2NCI+PHJlY3Qgd2lkdGg9IjY0IiBoZWlnaHQ9IjY0IiByeD0iMTIiIGZpbGw9IiMxZjRlNzkiLz48cGF0aCBkPSJNMzIgOGExMiAxMiAwIDAgMC0xMiAxMmMwIDkgMTIgMjIgMTIgMjJzMTItMTMgMTItMjJhMTIgMTIgMCAwIDAtMTItMTJ6bTAgMTZhNCA0IDAgMSAxIDAtOCA0IDQgMCAwIDEgMCA4eiIgZmlsbD0iI2ZmZiIvPjxyZWN0IHg9IjE0IiB5PSI0OCIgd2lkdGg9IjM2IiBoZWlnaHQ9IjQiIHJ4PSIyIiBmaWxsPSIjZmZmIi8+PHJlY3QgeD0iMTQiIHk9IjU1IiB3aWR0aD0iMzYiIGhlaWdodD0iNCIgcng9IjIiIGZpbGw9IiNmZmYiLz48L3N2Zz4=";
