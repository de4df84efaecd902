//! The operator installed the OperatorHub way on a real multi-node cluster (tests/testenv/cluster)
//! by the real OLM v0 (olm and catalog operators built from the Go module proxy): the catalog of
//! `bundle/` and a second, generated version is served with `opm serve`, and an administrator's
//! CatalogSource, OperatorGroup and Subscription (olm/install) install, upgrade and uninstall it.
//! It is installed into a namespace other than the suggested one, so the operator must follow
//! `OPERATOR_NAMESPACE`. Each step's time is printed. Needs root and cgroup v1; builds the product
//! image first.

mod helpers;

use std::time::{Duration, Instant};

use helpers::*;
use metallb_operator::bundle::{PACKAGE, csv_name};
use metallb_testenv::cluster::{Cluster, ClusterOptions, product_image, product_image_tagged};
use metallb_testenv::olm;
use serde_json::Value;

const NEXT_VERSION: &str = "0.1.1";
const BROKEN_VERSION: &str = "0.1.2";
const BROKEN_PORT: u16 = 50052;

#[test]
fn olm_installs_upgrades_and_uninstalls_the_operator_and_every_service_keeps_its_address() {
    let mut steps = Steps::new();
    let cluster = Cluster::up(ClusterOptions::default()).unwrap();
    steps.mark("cluster up (3 nodes)");

    let next_image = format!("quay.io/metallb-rs/metallb-rs:{NEXT_VERSION}");
    cluster.import(&product_image().unwrap()).unwrap();
    cluster
        .import(&product_image_tagged(&next_image).unwrap())
        .unwrap();
    steps.mark("product images built and imported");

    let work = tempfile::tempdir().unwrap();
    let next = bundle_at(work.path(), NEXT_VERSION, &next_image, |_| {});
    let catalog = work.path().join("catalog");
    olm::catalog(&catalog, &[&source().join("bundle"), &next]).unwrap();
    olm::up(&cluster).unwrap();
    olm::serve(&cluster, &catalog, olm::CATALOG_PORT).unwrap();
    steps.mark("OLM up, catalog of two versions served");

    // olm/install, in a namespace other than the suggested one.
    for file in [
        "00-namespace.yaml",
        "10-catalogsource.yaml",
        "20-operatorgroup.yaml",
    ] {
        apply(&cluster, &manifest(&format!("olm/install/{file}")));
    }
    eventually("CatalogSource READY", Duration::from_secs(120), || {
        let source = json(&cluster, &["get", "catalogsource", "metallb-rs-catalog"])?;
        match source["status"]["connectionState"]["lastObservedState"].as_str() {
            Some("READY") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    steps.mark("CatalogSource READY");

    // olm/install's Subscription, pinned to the first version with manual approval so that the
    // upgrade waits for its step.
    let first = csv_name(env!("CARGO_PKG_VERSION"));
    let subscription = manifest("olm/install/30-subscription.yaml").replace(
        "installPlanApproval: Automatic",
        &format!("installPlanApproval: Manual\n  startingCSV: {first}"),
    );
    apply(&cluster, &subscription);
    approve_install_plan(&cluster, &first);
    steps.mark("Subscription -> InstallPlan Complete");
    wait_csv_succeeded(&cluster, &first);
    let images = eventually("operator pods Running", Duration::from_secs(60), || {
        operator_images(&cluster)
    });
    assert!(
        images
            .iter()
            .all(|i| i == metallb_operator::render::DEFAULT_OPERAND_IMAGE),
        "{images:?}"
    );
    steps.mark("CSV Succeeded, operator pods Running");

    let sample = manifest("manifests/samples/metallb.yaml");
    eventually(
        "the sample MetalLB accepted",
        Duration::from_secs(60),
        || {
            cluster
                .kubectl_stdin(["apply", "-f", "-"], &sample)
                .map_err(|e| e.to_string())
        },
    );
    wait_available(&cluster);
    steps.mark("MetalLB Available=True");

    let before = services(&cluster);
    steps.mark("LoadBalancer Services have addresses");

    webhook_refuses_through_olm(&cluster, &first);
    steps.mark("webhook refusal through OLM's certificate");

    // The BGPPeer conversion goes through OLM's registration: v1beta1 in, the stored v1beta2 out.
    apply(
        &cluster,
        &manifest("manifests/samples/bgppeer-v1beta1.yaml"),
    );
    let converted = kubectl(
        &cluster,
        &[
            "get",
            "bgppeers.v1beta2.metallb.io",
            "doc-example-peer",
            "-o",
            "jsonpath={.apiVersion}",
        ],
    )
    .unwrap();
    assert_eq!(converted, "metallb.io/v1beta2");
    kubectl(&cluster, &["delete", "bgppeer", "doc-example-peer"]).unwrap();
    steps.mark("BGPPeer conversion through OLM's registration");

    let second = csv_name(NEXT_VERSION);
    approve_install_plan(&cluster, &second);
    // OLM replaces the CSV, then renews the webhook certificate for the new one (a second
    // rollout of the operator); every Service keeps its address all along.
    let mut changed = Vec::new();
    eventually(
        &format!("{first} replaced"),
        Duration::from_secs(300),
        || {
            if let Ok(now) = addresses(&cluster)
                && now != before
            {
                changed.push(now);
            }
            match kubectl(&cluster, &["get", "csv", &first]) {
                Err(e) if e.contains("NotFound") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    assert!(
        changed.is_empty(),
        "addresses changed in the upgrade: {changed:?}"
    );
    eventually(
        "operator pods of the new version",
        Duration::from_secs(180),
        || {
            let images = operator_images(&cluster)?;
            if images.iter().all(|i| *i == next_image) {
                Ok(())
            } else {
                Err(format!("{images:?}"))
            }
        },
    );
    eventually(
        "speakers of the new version",
        Duration::from_secs(240),
        || {
            let speakers = json(&cluster, &["get", "daemonset", "speaker"])?;
            let image = &speakers["spec"]["template"]["spec"]["containers"][0]["image"];
            let status = &speakers["status"];
            let rolled = *image == *next_image
                && status["updatedNumberScheduled"] == status["desiredNumberScheduled"]
                && status["numberAvailable"] == status["desiredNumberScheduled"];
            if rolled {
                Ok(())
            } else {
                Err(format!("{image} {status}"))
            }
        },
    );
    wait_available(&cluster);
    wait_csv_succeeded(&cluster, &second);
    assert_eq!(
        addresses(&cluster).unwrap(),
        before,
        "an address changed in the upgrade"
    );
    steps.mark("upgrade through the channel, operands rolled");
    webhook_refuses_through_olm(&cluster, &second);
    steps.mark("webhook refusal with the new CSV's certificate");

    kubectl(&cluster, &["delete", "subscription", PACKAGE]).unwrap();
    kubectl(&cluster, &["delete", "csv", &second]).unwrap();
    eventually(
        "the operator Deployment gone",
        Duration::from_secs(120),
        || match kubectl(&cluster, &["get", "deployment", "metallb-operator"]) {
            Err(e) if e.contains("NotFound") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    // What OLM documents: the CRDs, the custom resources and what they own stay.
    for kind in [
        "metallb/metallb",
        "deployment/controller",
        "daemonset/speaker",
        "ipaddresspool/lab",
    ] {
        kubectl(&cluster, &["get", kind]).unwrap();
    }
    cluster
        .kubectl(["get", "crd", "metallbs.metallb.io"])
        .unwrap();
    let left = cluster
        .kubectl([
            "get",
            "validatingwebhookconfigurations",
            "-l",
            &format!("olm.owner={second}"),
            "-o",
            "name",
        ])
        .unwrap();
    assert!(left.trim().is_empty(), "OLM left its webhooks: {left}");
    assert_eq!(
        addresses(&cluster).unwrap(),
        before,
        "an address changed on uninstall"
    );
    // The ServiceAccounts and roles were the CSV's and went with it: the operands run on with
    // credentials that no longer work.
    let accounts = kubectl(&cluster, &["get", "serviceaccounts", "-o", "name"]).unwrap();
    assert!(!accounts.contains("serviceaccount/speaker"), "{accounts}");
    steps.mark("Subscription and CSV deleted, operands left");

    // A CSV whose webhooks name no Deployment: static validation passes it, OLM must not.
    let broken = bundle_at(work.path(), BROKEN_VERSION, &next_image, |csv| {
        for definition in csv["spec"]["webhookdefinitions"].as_array_mut().unwrap() {
            definition["deploymentName"] = Value::from("metallb-operator-missing");
        }
    });
    let (passed, output) = validate(&broken);
    assert!(
        passed,
        "static validation is expected to miss this:\n{output}"
    );
    let broken_catalog = work.path().join("broken-catalog");
    olm::catalog(&broken_catalog, &[&broken]).unwrap();
    olm::serve(&cluster, &broken_catalog, BROKEN_PORT).unwrap();
    apply(
        &cluster,
        &manifest("olm/install/10-catalogsource.yaml")
            .replace("metallb-rs-catalog", "broken")
            .replace(&olm::CATALOG_PORT.to_string(), &BROKEN_PORT.to_string()),
    );
    apply(
        &cluster,
        &manifest("olm/install/30-subscription.yaml")
            .replace("source: metallb-rs-catalog", "source: broken"),
    );
    let broken_csv = csv_name(BROKEN_VERSION);
    eventually(
        "the broken CSV's operator pods",
        Duration::from_secs(180),
        || {
            let pods = json(
                &cluster,
                &[
                    "get",
                    "pods",
                    "-l",
                    "app.kubernetes.io/name=metallb-operator",
                ],
            )?;
            match pods["items"].as_array().map_or(0, Vec::len) {
                0 => Err("no pod yet".to_owned()),
                _ => Ok(()),
            }
        },
    );
    // A good CSV is Succeeded seconds after its pods are ready (above); this one's pods get no
    // certificate, so they never serve, and OLM keeps reinstalling it.
    let watched = Instant::now();
    let mut messages = std::collections::BTreeSet::new();
    while watched.elapsed() < Duration::from_secs(45) {
        let csv = json(&cluster, &["get", "csv", &broken_csv]).unwrap();
        let status = &csv["status"];
        assert_ne!(
            status["phase"], "Succeeded",
            "the broken CSV succeeded: {status}"
        );
        for condition in status["conditions"].as_array().into_iter().flatten() {
            messages.insert(condition["message"].as_str().unwrap_or_default().to_owned());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        messages.contains("calculated deployment install is bad"),
        "{messages:?}"
    );
    let unserved = cluster
        .kubectl_stdin(
            ["apply", "-f", "-"],
            &manifest("manifests/samples/community.yaml"),
        )
        .expect_err("a metallb.io write passed a webhook that is not served");
    assert!(
        unserved.to_string().contains("failed calling webhook"),
        "{unserved}"
    );
    eprintln!("olm: the broken CSV never Succeeded; its conditions said {messages:?}");
    steps.mark("a webhook naming no Deployment is refused by OLM");

    steps.print();
}
