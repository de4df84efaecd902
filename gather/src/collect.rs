//! The API side: bounded calls (every request under the per-call timeout), listing any kind as
//! JSON, pod logs and `metallb-speaker show` through exec.

use std::future::Future;
use std::time::Duration;

use futures::TryFutureExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, AttachParams, DynamicObject, ListParams, LogParams};
use kube::discovery::{self, Scope};
use kube::error::DiscoveryError;
use kube::{Client, Resource};
use serde_json::Value;
use tokio::io::AsyncReadExt;

/// A kube error as one line: the API server's message alone for an API error (its whole
/// `Status` says the same thing three times).
struct Short(kube::Error);

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            kube::Error::Api(status) => write!(f, "{} ({})", status.message, status.code),
            other => write!(f, "{other}"),
        }
    }
}

/// Runs `call` under `timeout`; the error is a sentence naming `what`.
pub async fn bounded<T, E: std::fmt::Display>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: no answer within {timeout:?}")),
    }
}

/// The `ApiResource` of a typed kind.
pub fn resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// One listable kind of an API group, as discovery reports it.
#[derive(Debug, Clone)]
pub struct Kind {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
}

/// The kinds of `group`, each at its most stable version; none when the group is not served
/// (OLM not installed, the CRDs not applied yet).
pub async fn kinds(client: &Client, timeout: Duration, group: &str) -> Result<Vec<Kind>, String> {
    let what = format!("discovery of {group}");
    match tokio::time::timeout(timeout, discovery::group(client, group)).await {
        Err(_) => Err(format!("{what}: no answer within {timeout:?}")),
        Ok(Err(kube::Error::Discovery(DiscoveryError::MissingApiGroup(_)))) => Ok(Vec::new()),
        Ok(Err(error)) => Err(format!("{what}: {}", Short(error))),
        Ok(Ok(api_group)) => {
            // Each kind at its own most stable version: the group's preferred version need
            // not serve every kind (metallb.io's v1beta2 has only BGPPeer).
            let mut kinds: Vec<Kind> = api_group
                .resources_by_stability()
                .into_iter()
                .filter(|(_, caps)| caps.supports_operation(discovery::verbs::LIST))
                .map(|(resource, caps)| Kind {
                    resource,
                    namespaced: caps.scope == Scope::Namespaced,
                })
                .collect();
            kinds.sort_by(|a, b| a.resource.plural.cmp(&b.resource.plural));
            Ok(kinds)
        }
    }
}

/// Every object of `resource` in `namespace` (or in all namespaces), as JSON with its
/// `apiVersion` and `kind` set (list items come without them).
pub async fn list(
    client: &Client,
    timeout: Duration,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Result<Vec<Value>, String> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let where_ = namespace.map_or("all namespaces".to_owned(), |ns| format!("namespace {ns}"));
    let what = format!("listing {} in {where_}", resource.plural);
    let params = ListParams::default();
    let call = api.list(&params).map_err(Short);
    let list = bounded(timeout, &what, call).await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|item| serde_json::to_value(item).ok())
        .map(|mut item| {
            item["apiVersion"] = Value::from(resource.api_version.clone());
            item["kind"] = Value::from(resource.kind.clone());
            item
        })
        .collect())
}

/// One object of `resource`, as JSON.
pub async fn get(
    client: &Client,
    timeout: Duration,
    resource: &ApiResource,
    namespace: &str,
    name: &str,
) -> Result<Value, String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let what = format!("reading {} {namespace}/{name}", resource.kind);
    let object = bounded(timeout, &what, api.get(name).map_err(Short)).await?;
    let mut object = serde_json::to_value(object).map_err(|e| format!("{what}: {e}"))?;
    object["apiVersion"] = Value::from(resource.api_version.clone());
    object["kind"] = Value::from(resource.kind.clone());
    Ok(object)
}

/// The log of `container` in `pod` (of its previous instance with `previous`).
pub async fn log(
    pods: &Api<Pod>,
    timeout: Duration,
    pod: &str,
    container: &str,
    previous: bool,
    since: &LogParams,
) -> Result<String, String> {
    let params = LogParams {
        container: Some(container.to_owned()),
        previous,
        timestamps: true,
        ..since.clone()
    };
    let which = if previous { "previous " } else { "" };
    let what = format!("{which}log of {pod}/{container}");
    bounded(timeout, &what, pods.logs(pod, &params).map_err(Short)).await
}

/// `metallb-speaker show <what> --json` in the speaker container of `pod`: its standard
/// output when the command succeeds.
pub async fn show(
    pods: &Api<Pod>,
    timeout: Duration,
    pod: &str,
    container: &str,
    what: &str,
) -> Result<String, String> {
    let describe = format!("`metallb-speaker show {what} --json` in {pod}");
    let run = async {
        let params = AttachParams::default().container(container);
        let mut process = pods
            .exec(pod, ["metallb-speaker", "show", what, "--json"], &params)
            .await
            .map_err(|e| Short(e).to_string())?;
        let (mut stdout, mut stderr) = (process.stdout(), process.stderr());
        let status = process.take_status();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(stdout) = stdout.as_mut() {
                stdout.read_to_end(&mut out).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let read_err = async {
            if let Some(stderr) = stderr.as_mut() {
                stderr.read_to_end(&mut err).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (read_out, read_err) = tokio::join!(read_out, read_err);
        read_out.and(read_err).map_err(|e| e.to_string())?;
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        process.join().await.map_err(|e| e.to_string())?;
        let succeeded = status
            .as_ref()
            .is_some_and(|s| s.status.as_deref() == Some("Success"));
        if succeeded {
            Ok(String::from_utf8_lossy(&out).into_owned())
        } else {
            let message = status.and_then(|s| s.message).unwrap_or_default();
            Err(format!(
                "{message}; stderr: {}",
                String::from_utf8_lossy(&err).trim()
            ))
        }
    };
    bounded(timeout, &describe, run).await
}
