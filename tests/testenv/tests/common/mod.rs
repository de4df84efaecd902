//! Helpers shared by the integration tests: installing CRDs, reading objects back,
//! comparing specs, and looking for processes of an instance.

#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use metallb_testenv::ControlPlane;
use serde_json::Value;

/// The workspace root (two levels above this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The YAML files directly in `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// What the tests need to know about an installed CRD.
#[derive(Debug, Clone)]
pub struct Crd {
    pub name: String,
    pub group: String,
    pub kind: String,
    pub namespaced: bool,
    /// Served versions, storage version first.
    pub versions: Vec<String>,
}

/// Applies a test's own CRD files (server-side, as large CRDs exceed the client-side
/// annotation limit), waits until each is Established and returns them. The metallb.io CRDs
/// come from `ControlPlane::install_crds`.
pub fn install_crds(cp: &ControlPlane, files: &[PathBuf]) -> Vec<Crd> {
    let mut names = Vec::new();
    for file in files {
        let mut args: Vec<OsString> = ["apply", "--server-side", "-o", "name", "-f"]
            .map(OsString::from)
            .into();
        args.push(file.into());
        let out = cp
            .kubectl(&args)
            .unwrap_or_else(|e| panic!("applying {}: {e}", file.display()));
        names.extend(
            out.lines()
                .filter(|l| l.starts_with("customresourcedefinition"))
                .map(str::to_string),
        );
    }
    assert!(
        !names.is_empty(),
        "the files {files:?} contain no CustomResourceDefinition"
    );
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    wait.extend(names.iter().map(String::as_str));
    cp.kubectl(&wait).expect("CRDs become Established");
    names.iter().map(|name| crd_info(cp, name)).collect()
}

/// What the tests need to know about the CRD `name` (e.g. `crd/widgets.example.dev`).
pub fn crd_info(cp: &ControlPlane, name: &str) -> Crd {
    let crd = get_json(cp, &[name]);
    let spec = &crd["spec"];
    let mut versions: Vec<(bool, String)> = spec["versions"]
        .as_array()
        .expect("CRD has versions")
        .iter()
        .filter(|v| v["served"] == true)
        .map(|v| {
            (
                v["storage"] != true,
                v["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    versions.sort();
    Crd {
        name: crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        group: spec["group"].as_str().unwrap_or_default().to_string(),
        kind: spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        namespaced: spec["scope"] == "Namespaced",
        versions: versions.into_iter().map(|(_, v)| v).collect(),
    }
}

/// `kubectl get <args> -o json`, parsed.
pub fn get_json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    let out = cp.kubectl(&all).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {all:?} printed no JSON: {e}"))
}

/// Every leaf of `expected` must exist in `actual` with an equal value; returns the paths
/// that do not. Fields only in `actual` (server defaults) are ignored.
pub fn missing_leaves(expected: &Value, actual: &Value, path: &str) -> Vec<String> {
    match expected {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| missing_leaves(v, &actual[k.as_str()], &format!("{path}.{k}")))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .flat_map(|(i, v)| {
                let other = actual.get(i).unwrap_or(&Value::Null);
                missing_leaves(v, other, &format!("{path}[{i}]"))
            })
            .collect(),
        leaf if leaf == actual => Vec::new(),
        leaf => vec![format!("{path}: expected {leaf}, stored {actual}")],
    }
}

/// Process ids whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// Whether a process with this id exists (and is not a zombie waiting to be reaped).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// Polls `done` until it holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    metallb_testenv::wait_for(timeout, Duration::from_millis(100), || done().then_some(()))
        .is_some()
}
