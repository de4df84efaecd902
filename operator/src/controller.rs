//! The reconciler: renders the operands of the `MetalLB` resource, applies them with
//! server-side apply, and writes the status conditions.
//!
//! The controller watches `MetalLB` objects of the operator's namespace only (a namespaced
//! watch: objects elsewhere are never seen) and the objects it rendered (selected by the
//! `MANAGED_BY` label), so an edited or deleted operand triggers a reconcile that puts it
//! back at once.

use std::{future::Future, sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt};
use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, Deployment},
        core::v1::{ConfigMap, Secret, Service},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
    runtime::{Controller, controller::Action, watcher},
};
use metallb_api::{METALLB_SINGLETON_NAME, metallb::MetalLB, validation::validate_metallb};
use metallb_runtime::consts::{
    MANAGED_BY, MEMBERSHIP_KEY, MEMBERSHIP_KEY_LEN, OPERATOR_FIELD_MANAGER,
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    error::Error,
    metrics::Metrics,
    render::{OperandSettings, Operands, names, render},
    status::{DegradedReason, Outcome, conditions, readiness},
};

/// Requeue while operands roll out (the reference's 5 s); the owned-object watches usually
/// come first.
pub const NOT_READY_REQUEUE: Duration = Duration::from_secs(5);
/// Periodic check of a healthy deployment, in case a watch event was missed.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How long a stopping controller waits for the reconciles in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Retry after a failed reconcile.
pub const ERROR_REQUEUE: Duration = Duration::from_secs(10);

/// What the reconciler needs.
#[derive(Clone)]
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Namespace and image of the operands.
    pub settings: OperandSettings,
    /// Where reconciles are counted.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Runs the controller until `shutdown` resolves and the reconciles in flight have finished
/// (at most [`SHUTDOWN_GRACE`] later).
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let namespace = ctx.settings.namespace.clone();
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let shutdown = shutdown.shared();
    info!(%namespace, "reconciling MetalLB resources");
    let controller = Controller::new(
        Api::<MetalLB>::namespaced(client.clone(), &namespace),
        watcher::Config::default(),
    )
    .owns(
        Api::<Deployment>::namespaced(client.clone(), &namespace),
        owned.clone(),
    )
    .owns(
        Api::<DaemonSet>::namespaced(client.clone(), &namespace),
        owned.clone(),
    )
    .owns(
        Api::<Service>::namespaced(client.clone(), &namespace),
        owned.clone(),
    )
    .owns(
        Api::<ConfigMap>::namespaced(client.clone(), &namespace),
        owned.clone(),
    )
    .owns(Api::<Secret>::namespaced(client, &namespace), owned)
    .graceful_shutdown_on(shutdown.clone())
    .run(reconcile, error_policy, ctx)
    .for_each(|result| {
        if let Err(error) = result {
            debug!(%error, "reconcile did not complete");
        }
        futures::future::ready(())
    });
    // kube's graceful shutdown never completes when it starts before the first list of
    // MetalLB objects arrived (the runner waits for a cache nothing feeds any more), so the
    // wait is bounded.
    let deadline = async {
        shutdown.await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = controller => info!(%namespace, "controller stopped"),
        () = deadline => warn!(%namespace, grace = ?SHUTDOWN_GRACE, "controller stopped without waiting any longer"),
    }
}

/// One reconcile of one `MetalLB` object.
pub async fn reconcile(metallb: Arc<MetalLB>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = metallb.name_any();
    let span = info_span!("reconcile", %name, generation = metallb.metadata.generation);
    async move {
        let _timer = ctx.metrics.reconcile_started();
        let (outcome, action) = match deploy(&metallb, &ctx).await {
            Ok(step) => step,
            Err((outcome, error)) => {
                write_status(&ctx, &metallb, &outcome).await?;
                return Err(error);
            }
        };
        write_status(&ctx, &metallb, &outcome).await?;
        Ok(action)
    }
    .instrument(span)
    .await
}

/// Decides the outcome, applying the operands when the resource deserves them. An error comes
/// with the outcome to report before it is retried.
async fn deploy(metallb: &MetalLB, ctx: &Context) -> Result<(Outcome, Action), (Outcome, Error)> {
    let name = metallb.name_any();
    if name != METALLB_SINGLETON_NAME {
        warn!(%name, "MetalLB resource name must be 'metallb'");
        let outcome = Outcome::Degraded {
            reason: DegradedReason::IncorrectMetalLBResourceName,
            message: format!("Incorrect MetalLB resource name: {name}"),
        };
        return Ok((outcome, Action::await_change()));
    }
    // The webhook refuses such specs; this catches objects stored while it was not running.
    if let Err(denial) = validate_metallb(metallb) {
        warn!(%denial, "invalid MetalLB spec");
        let outcome = Outcome::Degraded {
            reason: DegradedReason::InvalidSpec,
            message: denial.to_string(),
        };
        return Ok((outcome, Action::await_change()));
    }
    let degraded = |reason, error: &Error| Outcome::Degraded {
        reason,
        message: error.to_string(),
    };
    let key = membership_key(ctx)
        .await
        .map_err(|e| (degraded(DegradedReason::ApplyFailed, &e), e))?;
    let operands = match render(metallb, &ctx.settings, &key) {
        Ok(operands) => operands,
        Err(error) => {
            warn!(%error, "cannot render the operands");
            let outcome = Outcome::Degraded {
                reason: DegradedReason::RenderFailed,
                message: error.to_string(),
            };
            return Ok((outcome, Action::await_change()));
        }
    };
    let (controller, speaker) = apply_all(&ctx.client, &operands)
        .await
        .map_err(|e| (degraded(DegradedReason::ApplyFailed, &e), e))?;
    let outcome = readiness(&controller, &speaker);
    let action = match &outcome {
        Outcome::Available { .. } => Action::requeue(RESYNC),
        _ => Action::requeue(NOT_READY_REQUEUE),
    };
    Ok((outcome, action))
}

/// The key in the membership Secret, or a fresh random one when there is none: the key is
/// generated once and then preserved, because every speaker must hold the same one.
async fn membership_key(ctx: &Context) -> Result<Vec<u8>, Error> {
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let existing = secrets
        .get_opt(names::MEMBERSHIP_SECRET)
        .await
        .map_err(|source| Error::ReadSecret {
            name: names::MEMBERSHIP_SECRET,
            source,
        })?;
    if let Some(key) = existing
        .and_then(|s| s.data)
        .and_then(|mut data| data.remove(MEMBERSHIP_KEY))
        .filter(|key| !key.0.is_empty())
    {
        return Ok(key.0);
    }
    let mut key = vec![0; MEMBERSHIP_KEY_LEN];
    getrandom::fill(&mut key)?;
    info!(
        secret = names::MEMBERSHIP_SECRET,
        "generated a new membership key"
    );
    Ok(key)
}

/// Applies every operand concurrently and returns the controller and speaker as stored, with
/// their status.
async fn apply_all(client: &Client, operands: &Operands) -> Result<(Deployment, DaemonSet), Error> {
    let (_, _, _, _, controller, speaker, ()) = futures::try_join!(
        apply(client, &operands.membership_secret),
        apply(client, &operands.excludel2),
        apply(client, &operands.controller_metrics),
        apply(client, &operands.speaker_metrics),
        apply(client, &operands.controller),
        apply(client, &operands.speaker),
        apply_service_monitors(client, &operands.service_monitors),
    )?;
    Ok((controller, speaker))
}

/// Server-side applies the ServiceMonitors (a kind only known at run time).
async fn apply_service_monitors(
    client: &Client,
    monitors: &[serde_json::Value],
) -> Result<(), Error> {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "servicemonitors");
    for monitor in monitors {
        let name = monitor["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let namespace = monitor["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
            .patch(
                &name,
                &PatchParams::apply(OPERATOR_FIELD_MANAGER).force(),
                &Patch::Apply(monitor),
            )
            .await
            .map_err(|source| Error::Apply {
                kind: gvk.kind.clone(),
                name,
                source,
            })?;
    }
    Ok(())
}

/// Server-side applies `object`, taking over fields someone else changed.
async fn apply<K>(client: &Client, object: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    let api = Api::<K>::namespaced(client.clone(), &namespace);
    api.patch(
        &name,
        &PatchParams::apply(OPERATOR_FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: K::kind(&()).into_owned(),
        name,
        source,
    })
}

/// Writes the conditions for `outcome` through the status subresource, unless they are
/// already what the object shows.
async fn write_status(ctx: &Context, metallb: &MetalLB, outcome: &Outcome) -> Result<(), Error> {
    let name = metallb.name_any();
    let previous = metallb
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let now = Time(Timestamp::now());
    let next = conditions(outcome, metallb.metadata.generation, previous, &now);
    if next == previous {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": MetalLB::api_version(&()),
        "kind": MetalLB::kind(&()),
        "status": { "conditions": next },
    });
    Api::<MetalLB>::namespaced(ctx.client.clone(), &ctx.settings.namespace)
        .patch_status(
            &name,
            &PatchParams::apply(OPERATOR_FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| Error::Status {
            name: name.clone(),
            source,
        })?;
    match outcome {
        Outcome::Available { message } => info!(%message, "available"),
        Outcome::Progressing { message } => info!(%message, "progressing"),
        Outcome::Degraded { reason, message } => {
            warn!(reason = reason.as_str(), %message, "degraded");
        }
    }
    Ok(())
}

/// Counts the failure and retries later; the status already says what went wrong.
pub fn error_policy(metallb: Arc<MetalLB>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.metric_label());
    warn!(name = %metallb.name_any(), %error, retry_in = ?ERROR_REQUEUE, "reconcile failed");
    Action::requeue(ERROR_REQUEUE)
}
