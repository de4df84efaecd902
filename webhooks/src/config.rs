//! The ValidatingWebhookConfiguration and the BGPPeer CRD conversion settings that point the
//! API server at this webhook, for an in-cluster Service or a URL.

use k8s_openapi::{
    ByteString,
    api::admissionregistration::v1::{
        RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
        WebhookClientConfig,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceConversion, ServiceReference as CrdServiceReference,
        WebhookClientConfig as CrdClientConfig, WebhookConversion,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use crate::targets::Target;

/// Name of the ValidatingWebhookConfiguration the operator owns.
pub const CONFIGURATION_NAME: &str = "metallb-rs-webhook-configuration";

/// Where the API server reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Service in the cluster, port 443.
    Service {
        /// Service name.
        name: String,
        /// Service namespace.
        namespace: String,
    },
    /// A URL prefix such as `https://127.0.0.1:9443`, for a local control plane.
    Url(String),
}

impl Endpoint {
    fn admission(&self, path: String, ca_bundle: Option<&str>) -> WebhookClientConfig {
        let (service, url) = match self {
            Endpoint::Service { name, namespace } => (
                Some(ServiceReference {
                    name: name.clone(),
                    namespace: namespace.clone(),
                    path: Some(path),
                    port: Some(443),
                }),
                None,
            ),
            Endpoint::Url(prefix) => (None, Some(format!("{prefix}{path}"))),
        };
        WebhookClientConfig {
            ca_bundle: ca_bundle.map(|pem| ByteString(pem.as_bytes().to_vec())),
            service,
            url,
        }
    }
}

/// The configuration registering every target: failurePolicy Fail, sideEffects None,
/// AdmissionReview v1, CREATE and UPDATE, and DELETE where the kind needs it.
pub fn validating_webhook_configuration(
    endpoint: &Endpoint,
    ca_bundle: Option<&str>,
) -> ValidatingWebhookConfiguration {
    let webhooks = Target::ALL
        .iter()
        .map(|&target| {
            let (version, plural) = target.version_and_plural();
            let mut operations = vec!["CREATE".to_owned(), "UPDATE".to_owned()];
            if target.reviews_delete() {
                operations.push("DELETE".to_owned());
            }
            ValidatingWebhook {
                name: target.webhook_name(),
                admission_review_versions: vec!["v1".into()],
                client_config: endpoint.admission(target.path(), ca_bundle),
                failure_policy: Some("Fail".into()),
                side_effects: "None".into(),
                match_policy: Some(target.match_policy().into()),
                timeout_seconds: Some(10),
                rules: Some(vec![RuleWithOperations {
                    api_groups: Some(vec![metallb_api::GROUP.into()]),
                    api_versions: Some(vec![version.into()]),
                    operations: Some(operations),
                    resources: Some(vec![plural.into()]),
                    scope: Some("Namespaced".into()),
                }]),
                ..Default::default()
            }
        })
        .collect();
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(CONFIGURATION_NAME.into()),
            ..Default::default()
        },
        webhooks: Some(webhooks),
    }
}

/// The `spec.conversion` of the BGPPeer CRD that sends conversions to `/convert`.
pub fn bgppeer_conversion(
    endpoint: &Endpoint,
    ca_bundle: Option<&str>,
) -> CustomResourceConversion {
    let (service, url) = match endpoint {
        Endpoint::Service { name, namespace } => (
            Some(CrdServiceReference {
                name: name.clone(),
                namespace: namespace.clone(),
                path: Some("/convert".into()),
                port: Some(443),
            }),
            None,
        ),
        Endpoint::Url(prefix) => (None, Some(format!("{prefix}/convert"))),
    };
    CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            client_config: Some(CrdClientConfig {
                ca_bundle: ca_bundle.map(|pem| ByteString(pem.as_bytes().to_vec())),
                service,
                url,
            }),
            conversion_review_versions: vec!["v1".into()],
        }),
    }
}
