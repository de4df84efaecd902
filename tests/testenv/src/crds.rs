//! Installing the metallb.io CRDs of `manifests/crds/` into a control plane, once.

use std::path::PathBuf;

use crate::control_plane::ControlPlane;
use crate::error::{Error, Result};

/// The generated CRDs (`cargo run -p metallb-crdgen` writes them), found through this crate's
/// source directory so it works from any crate's tests.
pub const CRDS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../manifests/crds");

/// What `kubectl apply -o name` prints before a CRD's name.
const CRD_PREFIX: &str = "customresourcedefinition.apiextensions.k8s.io/";

impl ControlPlane {
    /// Applies every CRD file in `manifests/crds/` and waits until each CRD has the condition
    /// Established=True; returns their names, e.g. `ipaddresspools.metallb.io`.
    ///
    /// Done once per control plane: later and concurrent calls (the tests of one binary
    /// sharing [`ControlPlane::shared`]) wait for the first one and get its result, error
    /// included.
    pub fn install_crds(&self) -> Result<&[String]> {
        self.crds
            .get_or_init(|| install(|args| self.kubectl(args)).map_err(|e| e.to_string()))
            .as_deref()
            .map_err(|e| Error::Crds(e.clone()))
    }
}

/// Applies the CRDs and waits until they are Established, running kubectl through `kubectl`
/// (any control plane: [`ControlPlane`] or one member of an [`crate::ha::HaControlPlane`]).
pub(crate) fn install(kubectl: impl Fn(&[String]) -> Result<String>) -> Result<Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CRDS_DIR)
        .map_err(Error::io(format!("reading {CRDS_DIR}")))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Crds(format!(
            "no *.yaml in {CRDS_DIR}; `cargo run -p metallb-crdgen` writes them"
        )));
    }
    // Server-side: the largest CRDs exceed the client-side last-applied annotation limit.
    // --force-conflicts: the files win over fields another manager set (a test's patch, a
    // client-side `kubectl apply` of the same files), so installing is idempotent.
    let mut apply: Vec<String> = ["apply", "--server-side", "--force-conflicts", "-o", "name"]
        .map(String::from)
        .to_vec();
    for file in &files {
        apply.extend(["-f".to_string(), file.display().to_string()]);
    }
    let applied = kubectl(&apply)?;
    let names: Vec<String> = applied
        .lines()
        .filter_map(|line| line.trim().strip_prefix(CRD_PREFIX))
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(Error::Crds(format!(
            "{CRDS_DIR} holds no CustomResourceDefinition (kubectl printed: {applied:?})"
        )));
    }
    // Only the CRDs applied here: other tests may add CRDs of their own at the same time.
    let mut wait = vec![
        "wait".to_string(),
        "--for=condition=Established".to_string(),
        "--timeout=60s".to_string(),
    ];
    wait.extend(names.iter().map(|name| format!("crd/{name}")));
    kubectl(&wait)?;
    Ok(names)
}
