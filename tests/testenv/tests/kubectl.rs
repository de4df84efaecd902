//! kubectl and kube-rs reach the shared control plane with the harness kubeconfig.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use metallb_testenv::{ControlPlane, Error, test_name};
use serde_json::json;

#[test]
fn kubectl_reaches_readyz_with_the_harness_kubeconfig() {
    let cp = ControlPlane::shared();
    let out = cp.kubectl(["get", "--raw", "/readyz"]).unwrap();
    assert_eq!(out.trim(), "ok");
}

#[test]
fn the_harness_kubeconfig_is_a_cluster_admin() {
    let cp = ControlPlane::shared();
    let out = cp
        .kubectl(["auth", "can-i", "*", "*", "--all-namespaces"])
        .unwrap();
    assert_eq!(out.trim(), "yes");
}

#[test]
fn each_test_gets_its_own_namespace_named_after_the_test() {
    let cp = ControlPlane::shared();
    let first = cp.namespace(test_name!()).unwrap();
    let second = cp.namespace(test_name!()).unwrap();
    assert_ne!(first, second);
    assert!(
        first
            .name()
            .starts_with("each-test-gets-its-own-namespace-named-after"),
        "{first}"
    );
    let phase = cp
        .kubectl([
            "get",
            "namespace",
            first.name(),
            "-o",
            "jsonpath={.status.phase}",
        ])
        .unwrap();
    assert_eq!(phase, "Active");
}

#[test]
fn kubectl_errors_carry_the_server_message() {
    let cp = ControlPlane::shared();
    let err = cp
        .kubectl(["get", "configmap", "does-not-exist", "-n", "default"])
        .unwrap_err();
    let Error::Kubectl { args, stderr, .. } = &err else {
        panic!("expected a kubectl error, got {err}");
    };
    assert!(args.contains("does-not-exist"), "{err}");
    assert!(
        stderr.contains("NotFound") || stderr.contains("not found"),
        "{err}"
    );
}

#[test]
fn validating_admission_webhooks_are_called_by_the_api_server() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(test_name!()).unwrap();
    cp.kubectl(["label", "namespace", ns.name(), "webhook-test=on"])
        .unwrap();
    // Nothing listens on port 1, so a configured webhook that is actually called fails the
    // request; with the admission plugin off the ConfigMap would simply be created.
    let webhook = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": ns.name()},
        "webhooks": [{
            "name": "refuse.testenv.metallb.io",
            "clientConfig": {"url": "https://127.0.0.1:1/validate"},
            "rules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["configmaps"]
            }],
            "namespaceSelector": {"matchLabels": {"webhook-test": "on"}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5
        }]
    });
    cp.kubectl_with_input(["apply", "-f", "-"], &webhook.to_string())
        .unwrap();
    let err = cp
        .kubectl(["create", "configmap", "blocked", "-n", ns.name()])
        .unwrap_err();
    assert!(err.to_string().contains("failed calling webhook"), "{err}");
    cp.kubectl(["delete", "validatingwebhookconfiguration", ns.name()])
        .unwrap();
}

#[test]
fn service_account_tokens_are_signed_and_accepted() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(test_name!()).unwrap();
    cp.kubectl(["-n", ns.name(), "create", "serviceaccount", "robot"])
        .unwrap();
    let token = cp
        .kubectl(["-n", ns.name(), "create", "token", "robot"])
        .unwrap();
    let review = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token.trim()}
    });
    let out = cp
        .kubectl_with_input(["create", "-o", "json", "-f", "-"], &review.to_string())
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["status"]["authenticated"], true, "{out}");
    assert_eq!(
        status["status"]["user"]["username"],
        format!("system:serviceaccount:{ns}:robot")
    );
}

#[tokio::test]
async fn a_kube_client_from_the_harness_lists_namespaces() {
    let cp = ControlPlane::shared();
    let client = cp.client().await.unwrap();
    let namespaces = Api::<Namespace>::all(client)
        .list(&Default::default())
        .await
        .unwrap();
    let names: Vec<_> = namespaces
        .items
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    assert!(names.contains(&"default"), "{names:?}");
}
