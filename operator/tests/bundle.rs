//! The OLM bundle and catalog: the committed files are what the code generates, and the real
//! tools accept them (`operator-sdk bundle validate` with the operatorframework suite, `opm
//! validate`) and refuse a broken CSV. The tools are built from the Go module proxy once and
//! cached (tests/testenv/olm/build.sh). What static validation cannot see (a webhook naming no
//! Deployment) is shown by the real OLM install in tests/testenv/tests/olm.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use metallb_operator::bundle::{self, BundleSettings, PACKAGE};
use metallb_testenv::olm;
use serde_json::Value;

fn source() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn generated() -> Vec<bundle::BundleFile> {
    let samples = bundle::read_samples(&source().join("manifests/samples")).unwrap();
    let settings = BundleSettings {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        image: metallb_operator::render::DEFAULT_OPERAND_IMAGE.to_owned(),
    };
    bundle::files(&settings, &samples).unwrap()
}

fn csv_path() -> String {
    format!("manifests/{PACKAGE}.clusterserviceversion.yaml")
}

fn csv() -> Value {
    let file = generated()
        .into_iter()
        .find(|f| f.path == csv_path())
        .unwrap();
    serde_saphyr::from_str(&file.text).unwrap()
}

/// `operator-sdk bundle validate DIR` with the operatorframework suite: (passed, output).
fn validate(dir: &Path) -> (bool, String) {
    let dir = dir.to_str().unwrap();
    let output = olm::tool(
        "operator-sdk",
        &[
            "bundle",
            "validate",
            dir,
            "--select-optional",
            "suite=operatorframework",
            "--optional-values=k8s-version=1.36",
        ],
    )
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The generated bundle in a temporary directory, with the CSV changed by `edit`.
fn bundle_with(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files = generated();
    bundle::sync(dir.path(), &files, true).unwrap();
    let mut csv = csv();
    edit(&mut csv);
    std::fs::write(
        dir.path().join(csv_path()),
        serde_saphyr::to_string(&csv).unwrap(),
    )
    .unwrap();
    dir
}

#[test]
fn the_committed_bundle_is_what_the_code_generates() {
    let stale = bundle::sync(&source().join("bundle"), &generated(), false).unwrap();
    assert!(
        stale.is_empty(),
        "bundle/ is stale: {stale:?}; run `cargo run -p metallb-operator -- bundle` and `olm/olm.sh catalog`"
    );
}

#[test]
fn operator_sdk_validates_the_committed_bundle_with_the_operatorframework_suite() {
    let (passed, output) = validate(&source().join("bundle"));
    assert!(passed, "{output}");
    assert!(
        output.contains("All validation tests have completed successfully"),
        "{output}"
    );
}

#[test]
fn a_csv_owning_a_kind_its_crd_does_not_serve_fails_validation() {
    let broken = bundle_with(|csv| {
        let owned = csv["spec"]["customresourcedefinitions"]["owned"]
            .as_array_mut()
            .unwrap();
        let metallb = owned.iter_mut().find(|o| o["kind"] == "MetalLB").unwrap();
        metallb["kind"] = Value::from("MetalLb");
    });
    let (passed, output) = validate(broken.path());
    assert!(!passed, "a wrong owned kind passed validation:\n{output}");
    assert!(output.contains("MetalLb"), "{output}");
}

#[test]
fn a_crd_missing_from_the_csv_fails_validation() {
    let broken = bundle_with(|csv| {
        let owned = csv["spec"]["customresourcedefinitions"]["owned"]
            .as_array_mut()
            .unwrap();
        owned.retain(|o| o["kind"] != "Community");
    });
    let (passed, output) = validate(broken.path());
    assert!(!passed, "a CRD missing from the CSV passed:\n{output}");
    assert!(output.contains("Kind=Community"), "{output}");
    assert!(output.contains("not defined in CSV"), "{output}");
}

#[test]
fn the_committed_catalog_is_the_rendered_bundle_and_opm_validates_it() {
    let check = Command::new("bash")
        .args([olm::OLM_SCRIPT, "catalog", "--check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let catalog = source().join("olm/catalog");
    let output = olm::tool("opm", &["validate", catalog.to_str().unwrap()]).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_webhook_is_served_by_the_csv_deployment_on_the_operator_webhook_port() {
    let csv = csv();
    let deployments: Vec<&str> = csv["spec"]["install"]["spec"]["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    let definitions = csv["spec"]["webhookdefinitions"].as_array().unwrap();
    // Every validating webhook of the plain install, and the BGPPeer conversion.
    let plain = metallb_webhooks::validating_webhook_configuration(
        &metallb_webhooks::Endpoint::Url("https://x".into()),
        None,
    );
    assert_eq!(definitions.len(), plain.webhooks.unwrap().len() + 1);
    for definition in definitions {
        assert!(
            deployments.contains(&definition["deploymentName"].as_str().unwrap()),
            "{definition}"
        );
        assert_eq!(
            definition["targetPort"],
            metallb_runtime::consts::WEBHOOK_PORT
        );
    }
    let conversion = definitions
        .iter()
        .find(|d| d["type"] == "ConversionWebhook")
        .unwrap();
    assert_eq!(conversion["conversionCRDs"][0], "bgppeers.metallb.io");
    assert_eq!(conversion["webhookPath"], "/convert");
}

#[test]
fn under_olm_the_operator_serves_the_mounted_certificate_and_may_not_register_webhooks() {
    let csv = csv();
    let container = &csv["spec"]["install"]["spec"]["deployments"][0]["spec"]["template"]["spec"]["containers"]
        [0];
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .contains(&Value::from(format!("--cert-dir={}", bundle::OLM_CERT_DIR))),
        "{container}"
    );
    let cluster_rules = csv["spec"]["install"]["spec"]["clusterPermissions"].to_string();
    assert!(!cluster_rules.contains("validatingwebhookconfigurations"));
    assert!(!cluster_rules.contains("customresourcedefinitions"));
    let accounts: Vec<&str> = csv["spec"]["install"]["spec"]["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["serviceAccountName"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["metallb-operator", "controller", "speaker"]);
}
