//! The plain install: the committed files are what the code generates, they apply to a real
//! API server with the documented command, the operator does its whole job with nothing but
//! its ServiceAccount's permissions, and each ServiceAccount gets what its component needs
//! and no more.

use std::{
    io::Read,
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    admissionregistration::v1::ValidatingWebhookConfiguration,
    apps::v1::DaemonSet,
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    config::Kubeconfig,
};
use metallb_api::{condition::ConditionStatus, metallb::MetalLB};
use metallb_operator::install;
use metallb_testenv::ControlPlane;

const NS: &str = "metallb-system";

fn manifests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

#[test]
fn the_committed_install_manifests_are_what_the_code_generates() {
    let files = install::files(
        metallb_api::DEFAULT_NAMESPACE,
        metallb_operator::render::DEFAULT_OPERAND_IMAGE,
    );
    let stale = install::sync(&manifests().join("install"), &files, false).unwrap();
    assert!(
        stale.is_empty(),
        "manifests/install is stale: {stale:?}; run `cargo run -p metallb-operator -- manifests`"
    );
}

/// The control plane after `kubectl apply -f manifests/crds -f manifests/install`.
fn installed() -> &'static ControlPlane {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let cp = ControlPlane::shared();
    INSTALLED.get_or_init(|| {
        let (crds, install) = (manifests().join("crds"), manifests().join("install"));
        let output = cp
            .kubectl(["apply", "-f", crds.to_str().unwrap(), "-f", install.to_str().unwrap()])
            .unwrap();
        for expected in [
            "namespace/metallb-system created",
            "deployment.apps/metallb-operator created",
            "service/metallb-operator-webhook-service created",
            "validatingwebhookconfiguration.admissionregistration.k8s.io/metallb-rs-webhook-configuration created",
            "clusterrolebinding.rbac.authorization.k8s.io/metallb-rs:speaker created",
        ] {
            assert!(output.contains(expected), "{expected} missing from\n{output}");
        }
        // Re-applies the same CRDs (no change) and waits until they are Established.
        cp.install_crds().unwrap();
    });
    cp
}

/// Kills the operator if the test fails before it ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn eventually<T, Fut: Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_does_its_job_with_only_its_service_accounts_permissions() {
    let cp = tokio::task::block_in_place(installed);
    let admin = cp.client().await.unwrap();

    // The admin kubeconfig, acting as the operator's ServiceAccount.
    let mut kubeconfig = Kubeconfig::read_from(cp.kubeconfig_path()).unwrap();
    for user in &mut kubeconfig.auth_infos {
        if let Some(auth) = user.auth_info.as_mut() {
            auth.impersonate = Some(format!("system:serviceaccount:{NS}:metallb-operator"));
        }
    }
    let as_operator = cp.dir().join("operator-sa.kubeconfig");
    std::fs::write(&as_operator, serde_json::to_string(&kubeconfig).unwrap()).unwrap();

    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = cp.dir().join("metallb-operator-sa.log");
    let _operator = Operator(
        Command::new(env!("CARGO_BIN_EXE_metallb-operator"))
            .args([
                format!("--kubeconfig={}", as_operator.display()),
                "--http-addr=127.0.0.1:0".to_owned(),
                format!("--webhook-addr=127.0.0.1:{port}"),
                format!("--webhook-url=https://127.0.0.1:{port}"),
                "--identity=sa-test".to_owned(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    // It re-registers the installed configuration at its URL, with its CA bundle.
    let configurations = Api::<ValidatingWebhookConfiguration>::all(admin.clone());
    eventually("the webhook registered at the URL", || async {
        let configuration = configurations
            .get("metallb-rs-webhook-configuration")
            .await
            .ok()?;
        let first = configuration.webhooks?.into_iter().next()?.client_config;
        (first
            .url?
            .starts_with(&format!("https://127.0.0.1:{port}/"))
            && first.ca_bundle.is_some())
        .then_some(())
    })
    .await;
    let metallbs = Api::<MetalLB>::namespaced(admin.clone(), NS);
    let sample: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(manifests().join("samples/metallb.yaml")).unwrap(),
    )
    .unwrap();
    // Until the API server picks the new registration up, calls still go to the Service.
    eventually("the sample accepted through the webhook", || async {
        metallbs
            .patch(
                "metallb",
                &PatchParams::apply("administrator"),
                &Patch::Apply(&sample),
            )
            .await
            .ok()
    })
    .await;
    eventually("the speaker DaemonSet", || async {
        Api::<DaemonSet>::namespaced(admin.clone(), NS)
            .get_opt("speaker")
            .await
            .unwrap()
    })
    .await;
    eventually("the status written", || async {
        let conditions = metallbs.get("metallb").await.ok()?.status?.conditions?;
        conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.status == ConditionStatus::True)
            .then_some(())
    })
    .await;

    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(
        !text.contains("forbidden"),
        "the operator was refused something:\n{text}"
    );
    assert!(text.contains("became leader"), "{text}");
}

async fn allowed(
    client: &Client,
    account: &str,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> bool {
    let (group, resource) = resource
        .split_once('.')
        .map_or(("", resource), |(r, g)| (g, r));
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{NS}:{account}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{NS}"),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                subresource,
                verb: Some(verb.to_owned()),
                namespace: namespace.map(str::to_owned),
                name: name.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .is_some_and(|s| s.allowed)
}

/// Account, verb, `resource[/subresource].group`, namespace, object name, whether allowed.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    bool,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_account_can_do_what_its_component_needs_and_no_more() {
    let cp = tokio::task::block_in_place(installed);
    let client = cp.client().await.unwrap();
    let ns = Some(NS);
    let cases: &[Case] = &[
        (
            "metallb-operator",
            "patch",
            "daemonsets.apps",
            ns,
            None,
            true,
        ),
        (
            "metallb-operator",
            "create",
            "deployments.apps",
            ns,
            None,
            true,
        ),
        (
            "metallb-operator",
            "patch",
            "metallbs/status.metallb.io",
            ns,
            None,
            true,
        ),
        (
            "metallb-operator",
            "update",
            "leases.coordination.k8s.io",
            ns,
            Some("metallb-operator-lock"),
            true,
        ),
        (
            "metallb-operator",
            "update",
            "leases.coordination.k8s.io",
            ns,
            Some("someone-else"),
            false,
        ),
        (
            "metallb-operator",
            "watch",
            "bgppeers.metallb.io",
            None,
            None,
            true,
        ),
        (
            "metallb-operator",
            "patch",
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
            None,
            Some("metallb-rs-webhook-configuration"),
            true,
        ),
        (
            "metallb-operator",
            "patch",
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
            None,
            Some("another"),
            false,
        ),
        (
            "metallb-operator",
            "create",
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
            None,
            None,
            false,
        ),
        (
            "metallb-operator",
            "patch",
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            Some("bgppeers.metallb.io"),
            true,
        ),
        (
            "metallb-operator",
            "patch",
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            Some("ipaddresspools.metallb.io"),
            false,
        ),
        (
            "metallb-operator",
            "get",
            "secrets",
            Some("kube-system"),
            None,
            false,
        ),
        (
            "metallb-operator",
            "delete",
            "daemonsets.apps",
            ns,
            None,
            false,
        ),
        ("controller", "update", "services/status", None, None, true),
        (
            "controller",
            "list",
            "ipaddresspools.metallb.io",
            ns,
            None,
            true,
        ),
        (
            "controller",
            "patch",
            "ipaddresspools/status.metallb.io",
            ns,
            None,
            true,
        ),
        ("controller", "get", "secrets", ns, None, false),
        ("controller", "create", "daemonsets.apps", ns, None, false),
        (
            "speaker",
            "create",
            "leases.coordination.k8s.io",
            ns,
            None,
            true,
        ),
        (
            "speaker",
            "list",
            "endpointslices.discovery.k8s.io",
            None,
            None,
            true,
        ),
        ("speaker", "get", "secrets", ns, None, true),
        (
            "speaker",
            "create",
            "servicel2statuses.metallb.io",
            ns,
            None,
            true,
        ),
        (
            "speaker",
            "patch",
            "bgpsessionstates/status.metallb.io",
            ns,
            None,
            true,
        ),
        ("speaker", "update", "services", None, None, false),
        (
            "speaker",
            "list",
            "secrets",
            Some("kube-system"),
            None,
            false,
        ),
        ("speaker", "delete", "nodes", None, None, false),
    ];
    let mut wrong = Vec::new();
    for &(account, verb, resource, namespace, name, expected) in cases {
        if allowed(&client, account, verb, resource, namespace, name).await != expected {
            wrong.push(format!(
                "{account} {verb} {resource} ns={namespace:?} name={name:?}: expected {expected}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The generated file lists exactly these three accounts.
    let accounts = cp
        .kubectl(["get", "serviceaccounts", "-n", NS, "-o", "name"])
        .unwrap();
    for account in ["metallb-operator", "controller", "speaker"] {
        assert!(
            accounts.contains(&format!("serviceaccount/{account}")),
            "{accounts}"
        );
    }
}
