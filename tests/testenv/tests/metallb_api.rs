//! The metallb.io CRDs and samples in `manifests/` against a real API server.
//!
//! These tests fail, rather than pass vacuously, while `manifests/crds/` or
//! `manifests/samples/` hold no YAML files.

mod common;

use std::collections::HashSet;
use std::sync::OnceLock;

use common::{Crd, crd_info, get_json, missing_leaves, workspace_dir, yaml_files};
use metallb_testenv::{ControlPlane, Error, test_name};
use serde_json::{Value, json};

const GROUP: &str = "metallb.io";

/// Installs the metallb.io CRDs once per test binary.
fn metallb_crds() -> &'static [Crd] {
    static CRDS: OnceLock<Vec<Crd>> = OnceLock::new();
    CRDS.get_or_init(|| {
        let cp = ControlPlane::shared();
        let names = cp
            .install_crds()
            .expect("the CRDs of manifests/crds install");
        let crds: Vec<Crd> = names
            .iter()
            .map(|name| crd_info(cp, &format!("crd/{name}")))
            .collect();
        assert!(
            crds.iter().any(|c| c.group == GROUP),
            "none of the CRDs in manifests/crds is in the {GROUP} group"
        );
        crds
    })
}

#[test]
fn install_crds_installs_once_for_concurrent_callers() {
    let cp = ControlPlane::shared();
    let results: Vec<&[String]> = std::thread::scope(|s| {
        let callers: Vec<_> = (0..4)
            .map(|_| s.spawn(|| cp.install_crds().unwrap()))
            .collect();
        callers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let files = yaml_files(&workspace_dir().join("manifests/crds"));
    assert_eq!(
        results[0].len(),
        files.len(),
        "one CRD per file: {:?}",
        results[0]
    );
    for names in &results {
        // The same installation, not four.
        assert!(std::ptr::eq(*names, results[0]));
    }
    for name in results[0] {
        let established = cp
            .kubectl([
                "get",
                &format!("crd/{name}"),
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ])
            .unwrap();
        assert_eq!(established, "True", "{name}");
    }
}

#[test]
fn every_metallb_crd_is_established_and_listed_by_api_resources() {
    let cp = ControlPlane::shared();
    let crds = metallb_crds();
    let listed = cp
        .kubectl(["api-resources", "--api-group", GROUP, "--no-headers"])
        .unwrap();
    // The KIND column is the last one.
    let kinds: HashSet<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    for crd in crds.iter().filter(|c| c.group == GROUP) {
        assert!(
            kinds.contains(crd.kind.as_str()),
            "kind {} of {} is missing from `kubectl api-resources --api-group={GROUP}`:\n{listed}",
            crd.kind,
            crd.name
        );
    }
}

#[test]
fn every_sample_is_stored_with_its_spec_intact() {
    let cp = ControlPlane::shared();
    metallb_crds();
    let dir = workspace_dir().join("manifests/samples");
    let files = yaml_files(&dir);
    assert!(
        !files.is_empty(),
        "no samples (*.yaml) in {}",
        dir.display()
    );
    let ns = cp.namespace(test_name!()).unwrap();
    let cluster_scoped = cluster_scoped_kinds(cp);

    let mut checked = 0;
    let mut problems = Vec::new();
    for file in &files {
        // kubectl turns the YAML (possibly several documents) into JSON without the server.
        let parsed: Value = serde_json::from_str(
            &cp.kubectl([
                "create",
                "--dry-run=client",
                "-o",
                "json",
                "-f",
                &file.to_string_lossy(),
            ])
            .unwrap_or_else(|e| panic!("parsing {}: {e}", file.display())),
        )
        .unwrap();
        let objects = match parsed["kind"].as_str() {
            Some("List") => parsed["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![parsed],
        };
        for mut object in objects {
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let what = format!("{} {kind}/{name}", file.display());
            // Samples name the operator's namespace or none; the test's namespace keeps
            // tests independent.
            if !cluster_scoped.contains(&kind) {
                object["metadata"]["namespace"] = json!(ns.name());
            }
            let manifest = object.to_string();
            if let Err(err) =
                cp.kubectl_with_input(["apply", "--server-side", "-f", "-"], &manifest)
            {
                problems.push(format!("{what}: refused: {err}"));
                continue;
            }
            // `get -f` asks for the sample's own apiVersion, so no conversion is involved.
            let read: Value = serde_json::from_str(
                &cp.kubectl_with_input(["get", "-o", "json", "-f", "-"], &manifest)
                    .unwrap_or_else(|e| panic!("reading back {what}: {e}")),
            )
            .unwrap();
            let stored = match read["kind"].as_str() {
                Some("List") => read["items"][0].clone(),
                _ => read,
            };
            if object["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with(GROUP))
            {
                checked += 1;
            }
            if let Some(spec) = object.get("spec") {
                problems.extend(
                    missing_leaves(spec, &stored["spec"], "spec")
                        .into_iter()
                        .map(|p| format!("{what}: {p}")),
                );
            }
        }
    }
    assert!(
        checked > 0,
        "the samples in {} contain no {GROUP} object",
        dir.display()
    );
    assert!(
        problems.is_empty(),
        "samples not stored as written:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_api_server_refuses_a_bfd_profile_with_detect_multiplier_256() {
    let cp = ControlPlane::shared();
    let crd = metallb_crds()
        .iter()
        .find(|c| c.group == GROUP && c.kind == "BFDProfile")
        .expect("manifests/crds has a BFDProfile CRD");
    let ns = cp.namespace(test_name!()).unwrap();
    let profile = |name: &str, multiplier: u32| {
        json!({
            "apiVersion": format!("{GROUP}/{}", crd.versions[0]),
            "kind": "BFDProfile",
            "metadata": {"name": name, "namespace": ns.name()},
            "spec": {"detectMultiplier": multiplier}
        })
        .to_string()
    };

    let err = cp
        .kubectl_with_input(["apply", "-f", "-"], &profile("too-many", 256))
        .expect_err("detectMultiplier 256 must be refused");
    let Error::Kubectl { stderr, .. } = &err else {
        panic!("expected a kubectl error, got {err}");
    };
    assert!(stderr.contains("spec.detectMultiplier"), "{stderr}");

    // The boundary itself is accepted, so the refusal above is the range check.
    cp.kubectl_with_input(["apply", "-f", "-"], &profile("just-enough", 255))
        .unwrap();
    let stored = get_json(
        cp,
        &["-n", ns.name(), "bfdprofiles.metallb.io", "just-enough"],
    );
    assert_eq!(stored["spec"]["detectMultiplier"], 255);
}

/// Kinds that are not namespaced (their objects must not get a namespace).
fn cluster_scoped_kinds(cp: &ControlPlane) -> HashSet<String> {
    cp.kubectl(["api-resources", "--namespaced=false", "--no-headers"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}
