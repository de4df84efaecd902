//! ServiceAccounts and least-privilege RBAC for the operator, the controller and the speakers.
//!
//! Namespaced needs go into Roles in the MetalLB namespace; only what must be cluster-wide
//! (nodes, Services, the operator's webhook cache and registrations) is in ClusterRoles, and
//! the operator's cluster-scoped writes are limited by `resourceNames`.

use k8s_openapi::{
    api::{
        core::v1::ServiceAccount,
        rbac::v1::{
            ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
        },
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde_json::Value;

use metallb_runtime::consts::OPERATOR_LEASE;

use super::{OPERATOR, object};
use crate::{render::names, webhook};

/// The metallb.io kinds that configure the stack.
const CONFIG_KINDS: [&str; 7] = [
    "addresspools",
    "ipaddresspools",
    "bgpadvertisements",
    "l2advertisements",
    "communities",
    "bgppeers",
    "bfdprofiles",
];

const READ: [&str; 3] = ["get", "list", "watch"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let owned = |items: &[&str]| Some(items.iter().map(|s| (*s).to_owned()).collect());
    PolicyRule {
        api_groups: owned(groups),
        resources: owned(resources),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

fn named(rule: PolicyRule, names: &[&str]) -> PolicyRule {
    PolicyRule {
        resource_names: Some(names.iter().map(|s| (*s).to_owned()).collect()),
        ..rule
    }
}

/// Cluster-scoped RBAC objects are prefixed so they cannot collide with an upstream MetalLB.
fn cluster_name(account: &str) -> String {
    format!("metallb-rs:{account}")
}

fn operator_role() -> Vec<PolicyRule> {
    let write = ["get", "list", "watch", "create", "patch"];
    vec![
        rule(&["metallb.io"], &["metallbs"], &READ),
        rule(
            &["metallb.io"],
            &["metallbs/status"],
            &["get", "patch", "update"],
        ),
        rule(&["apps"], &["deployments", "daemonsets"], &write),
        rule(&[""], &["services", "configmaps"], &write),
        // Rendered when the cluster serves them (render::Monitoring).
        rule(&["monitoring.coreos.com"], &["servicemonitors"], &write),
        // Secrets: the membership key and the webhook certificate (replaced on rotation).
        rule(
            &[""],
            &["secrets"],
            &["get", "list", "watch", "create", "patch", "update"],
        ),
        rule(&["coordination.k8s.io"], &["leases"], &["create"]),
        named(
            rule(&["coordination.k8s.io"], &["leases"], &["get", "update"]),
            &[OPERATOR_LEASE],
        ),
    ]
}

fn operator_cluster_role(registration: bool) -> Vec<PolicyRule> {
    let mut rules = vec![
        // The webhook validates against every configuration object and node.
        rule(&["metallb.io"], &CONFIG_KINDS, &READ),
        rule(&[""], &["nodes"], &READ),
    ];
    if registration {
        rules.extend(registration_rules());
    }
    rules
}

/// What keeping the webhooks' `caBundle`s current takes; not needed when whoever mounts the
/// certificate registers the webhooks (OLM).
fn registration_rules() -> [PolicyRule; 2] {
    [
        named(
            rule(
                &["admissionregistration.k8s.io"],
                &["validatingwebhookconfigurations"],
                &["patch"],
            ),
            &[metallb_webhooks::CONFIGURATION_NAME],
        ),
        named(
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                &["patch"],
            ),
            &[webhook::BGPPEER_CRD],
        ),
    ]
}

fn controller_role() -> Vec<PolicyRule> {
    vec![
        rule(&["metallb.io"], &CONFIG_KINDS, &READ),
        rule(
            &["metallb.io"],
            &["ipaddresspools/status"],
            &["get", "patch", "update"],
        ),
        // Leader election of the controller.
        rule(&["coordination.k8s.io"], &["leases"], &["create"]),
        named(
            rule(&["coordination.k8s.io"], &["leases"], &["get", "update"]),
            &["metallb-controller"],
        ),
    ]
}

fn controller_cluster_role() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &["services"],
            &["get", "list", "watch", "patch", "update"],
        ),
        rule(&[""], &["services/status"], &["patch", "update"]),
        // Pools may be limited to namespaces by label.
        rule(&[""], &["namespaces"], &READ),
        rule(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
    ]
    .into_iter()
    .chain(metrics_reviews())
    .collect()
}

/// Asking the API server who a metrics scraper is and whether it may read `/metrics`
/// (`--metrics-tls-dir`, see `metallb_runtime::secure`).
fn metrics_reviews() -> [PolicyRule; 2] {
    [
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
            &["create"],
        ),
    ]
}

fn speaker_role() -> Vec<PolicyRule> {
    let statuses = [
        "servicel2statuses",
        "servicebgpstatuses",
        "bgpsessionstates",
    ];
    vec![
        rule(&["metallb.io"], &CONFIG_KINDS, &READ),
        rule(
            &["metallb.io"],
            &statuses,
            &[
                "get", "list", "watch", "create", "patch", "update", "delete",
            ],
        ),
        rule(
            &["metallb.io"],
            &[
                "servicel2statuses/status",
                "servicebgpstatuses/status",
                "bgpsessionstates/status",
            ],
            &["get", "patch", "update"],
        ),
        // BGP passwords and the membership key; the exclusion list; peer speakers.
        rule(&[""], &["secrets", "configmaps", "pods"], &READ),
        // Per-node speaker leases; a speaker deletes its own when it leaves.
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "list", "watch", "create", "update", "delete"],
        ),
    ]
}

fn speaker_cluster_role() -> Vec<PolicyRule> {
    vec![
        rule(&[""], &["services", "endpoints", "nodes"], &READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], &READ),
        rule(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
    ]
    .into_iter()
    .chain(metrics_reviews())
    .collect()
}

/// ServiceAccount, Role, ClusterRole and both bindings of one account.
fn account(
    namespace: &str,
    account: &str,
    role: Vec<PolicyRule>,
    cluster_role: Vec<PolicyRule>,
) -> Vec<Value> {
    let meta = |name: String, namespaced: bool| ObjectMeta {
        name: Some(name),
        namespace: namespaced.then(|| namespace.to_owned()),
        labels: Some(super::labels()),
        ..ObjectMeta::default()
    };
    let subjects = Some(vec![Subject {
        kind: "ServiceAccount".to_owned(),
        name: account.to_owned(),
        namespace: Some(namespace.to_owned()),
        ..Subject::default()
    }]);
    let role_ref = |kind: &str, name: String| RoleRef {
        api_group: Some("rbac.authorization.k8s.io".to_owned()),
        kind: kind.to_owned(),
        name,
    };
    vec![
        object(&ServiceAccount {
            metadata: meta(account.to_owned(), true),
            ..ServiceAccount::default()
        }),
        object(&Role {
            metadata: meta(account.to_owned(), true),
            rules: Some(role),
        }),
        object(&RoleBinding {
            metadata: meta(account.to_owned(), true),
            role_ref: role_ref("Role", account.to_owned()),
            subjects: subjects.clone(),
        }),
        object(&ClusterRole {
            metadata: meta(cluster_name(account), false),
            rules: Some(cluster_role),
            ..ClusterRole::default()
        }),
        object(&ClusterRoleBinding {
            metadata: meta(cluster_name(account), false),
            role_ref: role_ref("ClusterRole", cluster_name(account)),
            subjects,
        }),
    ]
}

/// What one ServiceAccount may do.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountRules {
    /// The ServiceAccount's name.
    pub account: &'static str,
    /// Rules in the MetalLB namespace (a Role).
    pub namespaced: Vec<PolicyRule>,
    /// Cluster-wide rules (a ClusterRole).
    pub cluster: Vec<PolicyRule>,
}

/// The rules of the operator, the controller and the speakers. `registration`: the operator
/// registers its webhooks itself (it manages their certificate).
pub fn accounts(registration: bool) -> Vec<AccountRules> {
    vec![
        AccountRules {
            account: OPERATOR,
            namespaced: operator_role(),
            cluster: operator_cluster_role(registration),
        },
        AccountRules {
            account: names::CONTROLLER,
            namespaced: controller_role(),
            cluster: controller_cluster_role(),
        },
        AccountRules {
            account: names::SPEAKER,
            namespaced: speaker_role(),
            cluster: speaker_cluster_role(),
        },
    ]
}

/// Every ServiceAccount and RBAC object of the install.
pub(super) fn rbac(namespace: &str) -> Vec<Value> {
    accounts(true)
        .into_iter()
        .flat_map(|a| account(namespace, a.account, a.namespaced, a.cluster))
        .collect()
}
