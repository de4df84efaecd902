//! `metallb-gather`: the must-gather collection of metallb-rs. The product image carries it as
//! `/usr/bin/gather`, the command `oc adm must-gather --image=<product image>` runs; the same
//! binary runs from a workstation with the user's kubeconfig.
//!
//! What it collects, in the tree of [`layout`]: the MetalLB namespace (the Namespace; pods,
//! Services, ConfigMaps, events, Secrets by name only, Deployments, DaemonSets, ReplicaSets,
//! Leases), every `metallb.io` object in the cluster, the Nodes, the ClusterServiceVersions,
//! Subscriptions, InstallPlans and OperatorGroups of the namespace when OLM's CRDs exist,
//! MetalLB's events and the LoadBalancer Services of other namespaces, the current and
//! previous logs of every container in the namespace (operator, controller, speakers), and
//! each speaker's `metallb-speaker show bgp|bfd|l2 --json`.
//!
//! Contract:
//! - **every API call is bounded** by [`Options::timeout`];
//! - **one failure never stops the collection**: an unreachable pod, a forbidden list or a
//!   kind that is not served leaves `<path>.error` and a line in `gather.json`; only a
//!   destination that cannot be written is fatal;
//! - **secrets never reach the tree** ([`redact`]);
//! - logs and events honour [`Since`] (`--since`, `--since-time`, or `oc adm must-gather`'s
//!   `MUST_GATHER_SINCE` / `MUST_GATHER_SINCE_TIME`).

mod collect;
pub mod layout;
mod output;
pub mod redact;
mod since;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use jiff::Timestamp;
use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, ReplicaSet},
    coordination::v1::Lease,
    core::v1::{ConfigMap, Event, Namespace, Node, Pod, Secret, Service},
};
use kube::api::{Api, ApiResource};
use kube::{Client, ResourceExt};
use metallb_api::DEFAULT_NAMESPACE;
use metallb_api::metallb::MetalLB;
use serde_json::{Value, json};
use tracing::info;

use collect::{Kind, bounded, get, kinds, list, resource};
use output::Output;
pub use output::{Totals, WriteError};
use redact::Redactor;
pub use since::Since;
use since::recent;

/// Default per-call timeout (the OpenShift MetalLB gather script's limit for each command).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Pods collected at once.
const POD_CONCURRENCY: usize = 4;

/// OLM's group; collected only when served.
const OLM_GROUP: &str = "operators.coreos.com";
/// The OLM kinds collected from the MetalLB namespace.
const OLM_KINDS: [&str; 4] = [
    "clusterserviceversions",
    "subscriptions",
    "installplans",
    "operatorgroups",
];

/// What to collect and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The tree's root.
    pub dest: PathBuf,
    /// The MetalLB namespace; found from the `MetalLB` resource (or OLM's Subscription)
    /// when not given.
    pub namespace: Option<String>,
    /// From when logs and events are collected.
    pub since: Since,
    /// Limit of every API call.
    pub timeout: Duration,
}

/// What a collection did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The MetalLB namespace collected.
    pub namespace: String,
    /// Files, bytes and errors.
    pub totals: Totals,
    /// How long it took.
    pub elapsed: Duration,
}

/// What every step needs.
struct Ctx<'a> {
    client: &'a Client,
    options: &'a Options,
    namespace: String,
    out: Output,
}

impl Ctx<'_> {
    fn timeout(&self) -> Duration {
        self.options.timeout
    }

    /// Writes a list, or the reason it could not be read.
    fn write_list(
        &self,
        path: PathBuf,
        items: Result<Vec<Value>, String>,
    ) -> Result<(), WriteError> {
        match items {
            Ok(items) => self.out.list(&path, &items),
            Err(reason) => self.out.error(&path, &reason),
        }
    }
}

/// Runs the whole collection into `options.dest`.
pub async fn gather(client: Client, options: &Options) -> Result<Summary, WriteError> {
    let started = Instant::now();
    let started_at = Timestamp::now();
    let timeout = options.timeout;
    let (namespace, mut early_errors) = namespace(&client, options).await;
    info!(%namespace, dest = %options.dest.display(), "collecting");

    // Everything secret is read first, so that every file written afterwards is scrubbed.
    let metallb_kinds = kinds(&client, timeout, "metallb.io").await;
    let mut metallb_objects = Vec::new();
    for kind in metallb_kinds.iter().flatten() {
        let items = list(&client, timeout, &kind.resource, None).await;
        metallb_objects.push((kind.clone(), items));
    }
    let secrets = list(&client, timeout, &resource::<Secret>(), Some(&namespace)).await;
    let mut redactor = Redactor::default();
    for object in secrets.iter().flatten() {
        redactor.learn_object(object);
    }
    for (_, items) in &metallb_objects {
        for object in items.iter().flatten() {
            redactor.learn_object(object);
            if let Some(secret) = password_secret(object, &namespace) {
                match get(
                    &client,
                    timeout,
                    &resource::<Secret>(),
                    &secret.0,
                    &secret.1,
                )
                .await
                {
                    Ok(secret) => redactor.learn_object(&secret),
                    Err(reason) => early_errors.push(reason),
                }
            }
        }
    }
    info!(values = redactor.known(), "secret values to scrub");

    let ctx = Ctx {
        client: &client,
        options,
        out: Output::new(&options.dest, redactor)?,
        namespace,
    };
    let ns = ctx.namespace.clone();
    match metallb_kinds {
        Ok(_) => write_metallb(&ctx, &metallb_objects)?,
        Err(reason) => ctx
            .out
            .error(&layout::namespaced_list(&ns, "metallb.io", "all"), &reason)?,
    }
    let secret_names = secrets.map(|items| {
        items
            .iter()
            .map(|s| json!({ "kind": "Secret", "metadata": s["metadata"], "type": s["type"] }))
            .collect()
    });
    ctx.write_list(layout::namespaced_list(&ns, "", "secrets"), secret_names)?;
    write_namespace(&ctx, started_at).await?;
    write_cluster(&ctx, started_at).await?;
    write_olm(&ctx).await?;
    write_pods(&ctx).await?;

    for reason in early_errors {
        ctx.out.error(&PathBuf::from("gather"), &reason)?;
    }
    let totals = ctx.out.totals();
    let elapsed = started.elapsed();
    let summary = json!({
        "gatherer": concat!("metallb-gather ", env!("CARGO_PKG_VERSION")),
        "namespace": ns,
        "since": format!("{:?}", options.since),
        "started": started_at.to_string(),
        "seconds": elapsed.as_secs_f64(),
        "files": totals.files,
        "bytes": totals.bytes,
        "errors": totals.errors,
    });
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    ctx.out.text(&PathBuf::from(layout::SUMMARY), &text)?;
    Ok(Summary {
        namespace: ns,
        totals,
        elapsed,
    })
}

/// The MetalLB namespace: the option, else the `MetalLB` resource's, else that of OLM's
/// Subscription to `metallb-operator`, else the default. Also the errors met on the way.
async fn namespace(client: &Client, options: &Options) -> (String, Vec<String>) {
    if let Some(ns) = &options.namespace {
        return (ns.clone(), Vec::new());
    }
    let mut errors = Vec::new();
    let timeout = options.timeout;
    match list(client, timeout, &resource::<MetalLB>(), None).await {
        Ok(items) => {
            if let Some(ns) = items
                .iter()
                .find_map(|m| m["metadata"]["namespace"].as_str())
            {
                return (ns.to_owned(), errors);
            }
        }
        Err(reason) => errors.push(reason),
    }
    let subscriptions = kinds(client, timeout, OLM_GROUP)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|k| k.resource.plural == "subscriptions");
    if let Some(kind) = subscriptions {
        match list(client, timeout, &kind.resource, None).await {
            Ok(items) => {
                let ours = items
                    .iter()
                    .find(|s| s["spec"]["name"] == "metallb-operator");
                if let Some(ns) = ours.and_then(|s| s["metadata"]["namespace"].as_str()) {
                    return (ns.to_owned(), errors);
                }
            }
            Err(reason) => errors.push(reason),
        }
    }
    (DEFAULT_NAMESPACE.to_owned(), errors)
}

/// `(namespace, name)` of the Secret a BGPPeer's `spec.passwordSecret` names.
fn password_secret(object: &Value, default_namespace: &str) -> Option<(String, String)> {
    let reference = &object["spec"]["passwordSecret"];
    let name = reference["name"].as_str()?;
    let namespace = reference["namespace"]
        .as_str()
        .or_else(|| object["metadata"]["namespace"].as_str())
        .unwrap_or(default_namespace);
    Some((namespace.to_owned(), name.to_owned()))
}

/// Every metallb.io object, by namespace (cluster-scoped kinds one file per object).
fn write_metallb(
    ctx: &Ctx<'_>,
    objects: &[(Kind, Result<Vec<Value>, String>)],
) -> Result<(), WriteError> {
    for (kind, items) in objects {
        let plural = &kind.resource.plural;
        let items = match items {
            Ok(items) => items,
            Err(reason) => {
                let path = layout::namespaced_list(&ctx.namespace, "metallb.io", plural);
                ctx.out.error(&path, reason)?;
                continue;
            }
        };
        if !kind.namespaced {
            for item in items {
                let name = item["metadata"]["name"].as_str().unwrap_or_default();
                ctx.out
                    .object(&layout::cluster_object("metallb.io", plural, name), item)?;
            }
            continue;
        }
        let mut by_namespace: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
        // The MetalLB namespace gets a file for every kind, empty or not.
        by_namespace.entry(&ctx.namespace).or_default();
        for item in items {
            let ns = item["metadata"]["namespace"].as_str().unwrap_or_default();
            by_namespace.entry(ns).or_default().push(item.clone());
        }
        for (ns, items) in by_namespace {
            ctx.out
                .list(&layout::namespaced_list(ns, "metallb.io", plural), &items)?;
        }
    }
    Ok(())
}

/// The Namespace and its objects.
async fn write_namespace(ctx: &Ctx<'_>, started_at: Timestamp) -> Result<(), WriteError> {
    let (client, timeout, ns) = (ctx.client, ctx.timeout(), ctx.namespace.as_str());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let path = layout::namespace_object(ns);
    match bounded(
        timeout,
        &format!("reading namespace {ns}"),
        namespaces.get(ns),
    )
    .await
    {
        Ok(object) => match serde_json::to_value(object) {
            Ok(mut value) => {
                value["apiVersion"] = Value::from("v1");
                value["kind"] = Value::from("Namespace");
                ctx.out.object(&path, &value)?;
            }
            Err(e) => ctx.out.error(&path, &e.to_string())?,
        },
        Err(reason) => ctx.out.error(&path, &reason)?,
    }
    let kinds: [(ApiResource, &str); 8] = [
        (resource::<Pod>(), ""),
        (resource::<Service>(), ""),
        (resource::<ConfigMap>(), ""),
        (resource::<Event>(), ""),
        (resource::<Deployment>(), "apps"),
        (resource::<DaemonSet>(), "apps"),
        (resource::<ReplicaSet>(), "apps"),
        (resource::<Lease>(), "coordination.k8s.io"),
    ];
    let cutoff = ctx.options.since.cutoff(started_at);
    for (kind, group) in kinds {
        let mut items = list(client, timeout, &kind, Some(ns)).await;
        if kind.kind == "Event"
            && let Ok(events) = &mut items
        {
            events.retain(|e| recent(e, cutoff));
        }
        ctx.write_list(layout::namespaced_list(ns, group, &kind.plural), items)?;
    }
    Ok(())
}

/// Nodes, and what MetalLB did in other namespaces: its events and the LoadBalancer Services.
async fn write_cluster(ctx: &Ctx<'_>, started_at: Timestamp) -> Result<(), WriteError> {
    let (client, timeout) = (ctx.client, ctx.timeout());
    match list(client, timeout, &resource::<Node>(), None).await {
        Ok(nodes) => {
            for node in &nodes {
                let name = node["metadata"]["name"].as_str().unwrap_or_default();
                ctx.out
                    .object(&layout::cluster_object("", "nodes", name), node)?;
            }
        }
        Err(reason) => ctx
            .out
            .error(&layout::cluster_object("", "nodes", "all"), &reason)?,
    }
    let cutoff = ctx.options.since.cutoff(started_at);
    let others = |items: Vec<Value>, keep: &dyn Fn(&Value) -> bool| {
        let mut by_namespace: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        for item in items.into_iter().filter(|i| keep(i)) {
            let ns = item["metadata"]["namespace"].as_str().unwrap_or_default();
            if ns != ctx.namespace {
                by_namespace.entry(ns.to_owned()).or_default().push(item);
            }
        }
        by_namespace
    };
    let from_metallb = |event: &Value| {
        let reporter = event["reportingComponent"]
            .as_str()
            .filter(|r| !r.is_empty())
            .or_else(|| event["source"]["component"].as_str())
            .unwrap_or_default();
        reporter.starts_with("metallb") && recent(event, cutoff)
    };
    let load_balancer = |service: &Value| service["spec"]["type"] == "LoadBalancer";
    for (kind, keep) in [
        (
            resource::<Event>(),
            &from_metallb as &dyn Fn(&Value) -> bool,
        ),
        (resource::<Service>(), &load_balancer),
    ] {
        match list(client, timeout, &kind, None).await {
            Ok(items) => {
                for (ns, items) in others(items, keep) {
                    ctx.out
                        .list(&layout::namespaced_list(&ns, "", &kind.plural), &items)?;
                }
            }
            Err(reason) => ctx
                .out
                .error(&layout::namespaced_list("all", "", &kind.plural), &reason)?,
        }
    }
    Ok(())
}

/// OLM's objects in the MetalLB namespace, when OLM is installed.
async fn write_olm(ctx: &Ctx<'_>) -> Result<(), WriteError> {
    let ns = ctx.namespace.as_str();
    let kinds = match kinds(ctx.client, ctx.timeout(), OLM_GROUP).await {
        Ok(kinds) => kinds,
        Err(reason) => {
            return ctx
                .out
                .error(&layout::namespaced_list(ns, OLM_GROUP, "all"), &reason);
        }
    };
    for kind in kinds
        .iter()
        .filter(|k| OLM_KINDS.contains(&k.resource.plural.as_str()))
    {
        let items = list(ctx.client, ctx.timeout(), &kind.resource, Some(ns)).await;
        ctx.write_list(
            layout::namespaced_list(ns, OLM_GROUP, &kind.resource.plural),
            items,
        )?;
    }
    Ok(())
}

/// Every pod of the namespace: the object, its containers' logs, a speaker's `show` output;
/// a few pods at a time.
async fn write_pods(ctx: &Ctx<'_>) -> Result<(), WriteError> {
    let ns = ctx.namespace.as_str();
    let pods = match list(ctx.client, ctx.timeout(), &resource::<Pod>(), Some(ns)).await {
        Ok(pods) => pods,
        // Already recorded next to core/pods.yaml.
        Err(_) => return Ok(()),
    };
    futures::stream::iter(pods.into_iter().map(Ok))
        .try_for_each_concurrent(POD_CONCURRENCY, |pod| write_pod(ctx, pod))
        .await
}

async fn write_pod(ctx: &Ctx<'_>, object: Value) -> Result<(), WriteError> {
    let ns = ctx.namespace.as_str();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ctx.out.object(&layout::pod_object(ns, &name), &object)?;
    let pod: Pod = match serde_json::from_value(object) {
        Ok(pod) => pod,
        Err(e) => {
            return ctx
                .out
                .error(&layout::pod_object(ns, &name), &e.to_string());
        }
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let since = ctx.options.since.log_params();
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let restarts = |container: &str| {
        status
            .container_statuses
            .iter()
            .flatten()
            .chain(status.init_container_statuses.iter().flatten())
            .find(|s| s.name == container)
            .map_or(0, |s| s.restart_count)
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| c.name.clone());
    for container in containers {
        let previous_too = restarts(&container) > 0;
        for previous in [false, true] {
            if previous && !previous_too {
                continue;
            }
            let path = layout::container_log(ns, &name, &container, previous);
            let log = collect::log(&pods, ctx.timeout(), &name, &container, previous, &since);
            match log.await {
                Ok(text) => ctx.out.text(&path, &text)?,
                Err(reason) => ctx.out.error(&path, &reason)?,
            }
        }
    }
    if pod.labels().get("component").map(String::as_str) == Some("speaker") {
        let container = spec
            .containers
            .iter()
            .find(|c| c.name == "speaker")
            .or(spec.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        for what in layout::SHOW {
            let path = layout::speaker_show(ns, &name, what);
            match collect::show(&pods, ctx.timeout(), &name, &container, what).await {
                Ok(text) => ctx.out.text(&path, &text)?,
                Err(reason) => ctx.out.error(&path, &reason)?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_secret_reference_defaults_to_the_peer_namespace() {
        let peer = json!({
            "metadata": { "namespace": "metallb-system" },
            "spec": { "passwordSecret": { "name": "bgp-auth" } },
        });
        assert_eq!(
            password_secret(&peer, "other"),
            Some(("metallb-system".to_owned(), "bgp-auth".to_owned()))
        );
        assert_eq!(password_secret(&json!({ "spec": {} }), "x"), None);
    }
}
