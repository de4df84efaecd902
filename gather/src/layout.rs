//! Where each piece of the collection goes: `oc adm inspect`'s tree, which the OpenShift
//! must-gather scripts for MetalLB produce and support engineers know how to read, plus the
//! speakers' own state next to their logs.
//!
//! ```text
//! <dest>/
//!   gather.json                                   what ran, when, and every error
//!   cluster-scoped-resources/core/nodes/<node>.yaml
//!   cluster-scoped-resources/<group>/<resource>/<name>.yaml   (cluster-scoped metallb.io kinds)
//!   namespaces/<ns>/<ns>.yaml
//!   namespaces/<ns>/core/{pods,services,configmaps,events,secrets}.yaml
//!   namespaces/<ns>/apps/{deployments,daemonsets,replicasets}.yaml
//!   namespaces/<ns>/coordination.k8s.io/leases.yaml
//!   namespaces/<ns>/metallb.io/<resource>.yaml    (every namespace holding metallb.io objects)
//!   namespaces/<ns>/operators.coreos.com/<resource>.yaml   (when OLM's CRDs exist)
//!   namespaces/<ns>/pods/<pod>/<pod>.yaml
//!   namespaces/<ns>/pods/<pod>/<container>/<container>/logs/{current,previous}.log
//!   namespaces/<ns>/pods/<speaker>/speaker/speaker/show/{bgp,bfd,l2}.json
//! ```
//!
//! A piece that could not be collected leaves `<its path>.error` with the reason instead.
//! Names from the cluster become path components only through [`component`], so no object
//! name can place a file outside the destination.

use std::path::PathBuf;

/// The summary file at the root of the tree.
pub const SUMMARY: &str = "gather.json";

/// What `metallb-speaker show` is asked for, one file each.
pub const SHOW: [&str; 3] = ["bgp", "bfd", "l2"];

/// `name` as one path component: characters outside `[A-Za-z0-9._-]` become `_`, and names
/// that mean something to the file system (empty, `.`, `..`) get a leading `_`. Kubernetes
/// names never need either, so a valid name maps to itself.
pub fn component(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.chars().all(|c| c == '.') {
        format!("_{safe}")
    } else {
        safe
    }
}

/// The group's directory name: `core` for the core group, as `oc adm inspect` writes it.
fn group_dir(group: &str) -> String {
    if group.is_empty() {
        "core".to_owned()
    } else {
        component(group)
    }
}

/// `namespaces/<ns>`.
pub fn namespace_dir(namespace: &str) -> PathBuf {
    PathBuf::from("namespaces").join(component(namespace))
}

/// The Namespace object: `namespaces/<ns>/<ns>.yaml`.
pub fn namespace_object(namespace: &str) -> PathBuf {
    namespace_dir(namespace).join(format!("{}.yaml", component(namespace)))
}

/// A list of one kind in one namespace: `namespaces/<ns>/<group>/<resource>.yaml`.
pub fn namespaced_list(namespace: &str, group: &str, resource: &str) -> PathBuf {
    namespace_dir(namespace)
        .join(group_dir(group))
        .join(format!("{}.yaml", component(resource)))
}

/// One cluster-scoped object: `cluster-scoped-resources/<group>/<resource>/<name>.yaml`.
pub fn cluster_object(group: &str, resource: &str, name: &str) -> PathBuf {
    PathBuf::from("cluster-scoped-resources")
        .join(group_dir(group))
        .join(component(resource))
        .join(format!("{}.yaml", component(name)))
}

/// `namespaces/<ns>/pods/<pod>`.
fn pod_dir(namespace: &str, pod: &str) -> PathBuf {
    namespace_dir(namespace).join("pods").join(component(pod))
}

/// The Pod object: `namespaces/<ns>/pods/<pod>/<pod>.yaml`.
pub fn pod_object(namespace: &str, pod: &str) -> PathBuf {
    pod_dir(namespace, pod).join(format!("{}.yaml", component(pod)))
}

/// A container's log: `.../pods/<pod>/<container>/<container>/logs/current.log`, or
/// `previous.log` for the instance before the last restart.
pub fn container_log(namespace: &str, pod: &str, container: &str, previous: bool) -> PathBuf {
    let container = component(container);
    let file = if previous {
        "previous.log"
    } else {
        "current.log"
    };
    pod_dir(namespace, pod)
        .join(&container)
        .join(&container)
        .join("logs")
        .join(file)
}

/// A speaker's `metallb-speaker show <what> --json`:
/// `.../pods/<pod>/speaker/speaker/show/<what>.json`.
pub fn speaker_show(namespace: &str, pod: &str, what: &str) -> PathBuf {
    pod_dir(namespace, pod)
        .join("speaker")
        .join("speaker")
        .join("show")
        .join(format!("{}.json", component(what)))
}

/// Where the reason goes when `path` could not be collected: `<path>.error`.
pub fn error_file(path: &std::path::Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".error");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_is_the_one_oc_adm_inspect_writes() {
        assert_eq!(
            namespace_object("metallb-system"),
            PathBuf::from("namespaces/metallb-system/metallb-system.yaml")
        );
        assert_eq!(
            namespaced_list("metallb-system", "", "pods"),
            PathBuf::from("namespaces/metallb-system/core/pods.yaml")
        );
        assert_eq!(
            namespaced_list("metallb-system", "metallb.io", "bgppeers"),
            PathBuf::from("namespaces/metallb-system/metallb.io/bgppeers.yaml")
        );
        assert_eq!(
            cluster_object("", "nodes", "node1"),
            PathBuf::from("cluster-scoped-resources/core/nodes/node1.yaml")
        );
        assert_eq!(
            pod_object("metallb-system", "speaker-x"),
            PathBuf::from("namespaces/metallb-system/pods/speaker-x/speaker-x.yaml")
        );
        assert_eq!(
            container_log("metallb-system", "speaker-x", "speaker", true),
            PathBuf::from(
                "namespaces/metallb-system/pods/speaker-x/speaker/speaker/logs/previous.log"
            )
        );
        assert_eq!(
            speaker_show("metallb-system", "speaker-x", "bgp"),
            PathBuf::from("namespaces/metallb-system/pods/speaker-x/speaker/speaker/show/bgp.json")
        );
        assert_eq!(
            error_file(&container_log("ns", "p", "c", false)),
            PathBuf::from("namespaces/ns/pods/p/c/c/logs/current.log.error")
        );
    }

    #[test]
    fn no_name_can_leave_the_destination() {
        assert_eq!(component(".."), "_..");
        assert_eq!(component("."), "_.");
        assert_eq!(component(""), "_");
        assert_eq!(component("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(component("speaker-7xk2p"), "speaker-7xk2p");
        let path = pod_object("..", "../x");
        assert!(
            path.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{path:?}"
        );
    }
}
