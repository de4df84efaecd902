//! The task that writes this node's status objects. It takes the latest desired set (a newer
//! one replaces one not yet written), creates, updates and deletes only what differs, runs up
//! to [`CONCURRENT`] calls at once, bounds every call by [`CALL_DEADLINE`], and retries a
//! failed pass after [`RETRY`].
//!
//! What was written is remembered as a fingerprint of each status, not a copy: with 10,000
//! Services the copies would be a good part of the speaker's memory.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use metallb_api::status::{
    BGPSessionState, BGPSessionStateStatus, ServiceBGPStatus, ServiceL2Status,
};
use metallb_plan::{Plan, ServiceKey, ServicePlan};
use metallb_runtime::consts::{
    SPEAKER_FIELD_MANAGER, STATUS_NODE_LABEL, STATUS_SERVICE_NAME_LABEL,
    STATUS_SERVICE_NAMESPACE_LABEL,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{Desired, bgp as bgp_status, layer2 as layer2_status};

/// The longest one API call may take.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// How long a failed pass waits before the next.
const RETRY: Duration = Duration::from_secs(2);

/// Calls in flight at once: enough to write thousands of objects in seconds, few enough not
/// to crowd out the speaker's Lease renewal on the same connection pool.
const CONCURRENT: usize = 16;

/// Hands desired sets to the writing task.
#[derive(Debug)]
pub struct StatusWriter {
    /// None until the first publish: the task writes nothing before it knows what the node
    /// announces, or a restarted speaker would delete its objects and create them again.
    desired: watch::Sender<Option<Desired>>,
}

impl StatusWriter {
    /// Starts the task writing `node`'s objects in `namespace`, owned by `owner` when given.
    pub fn start(
        client: Client,
        namespace: &str,
        node: &str,
        owner: Option<OwnerReference>,
    ) -> (Self, JoinHandle<()>) {
        let (desired, rx) = watch::channel(None);
        let task = Task {
            client,
            namespace: namespace.to_owned(),
            node: node.to_owned(),
            owner,
            written: Written::default(),
        };
        (StatusWriter { desired }, tokio::spawn(task.run(rx)))
    }

    /// The latest desired set; written soon, replaced if a newer one comes first.
    pub fn publish(&self, desired: Desired) {
        self.desired.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&desired);
            *current = Some(desired);
            changed
        });
    }
}

/// A status's fingerprint: equal statuses have equal fingerprints.
fn fingerprint<S: Serialize>(status: &S) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_vec(status)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// The status of a Service's object, if the plan gives the Service one on this node.
type StatusOf<S> = fn(&Plan, &ServiceKey, &ServicePlan) -> Option<S>;

/// What one pass does to one kind's objects. Owned lists: a stream of closures over
/// borrowed items does not satisfy the spawned task's lifetime bounds; and made before the
/// first call, so that the pass does not keep its plan alive while it writes (a newer plan
/// may have replaced it, and two plans of 10,000 Services weigh).
struct Work<S> {
    /// The objects of Services that get none now, with their names.
    gone: Vec<(ServiceKey, String)>,
    /// The statuses that differ from the ones written, with their fingerprints and the names
    /// of the objects that exist.
    changed: Vec<(ServiceKey, S, u64, Option<String>)>,
}

impl<S: Serialize> Work<S> {
    /// The work that brings `written` to what `status_of` gives the Services of `plan`.
    fn of(plan: &Plan, status_of: StatusOf<S>, written: &BTreeMap<ServiceKey, Existing>) -> Self {
        let wanted = |key: &ServiceKey| {
            let service = plan.services.get(key)?;
            status_of(plan, key, service)
        };
        let gone = written
            .iter()
            .filter(|(key, _)| wanted(key).is_none())
            .map(|(key, (name, _))| (key.clone(), name.clone()))
            .collect();
        let changed = plan
            .services
            .iter()
            .filter_map(|(key, service)| {
                let status = status_of(plan, key, service)?;
                let print = fingerprint(&status);
                match written.get(key) {
                    Some((_, Some(written))) if *written == print => None,
                    existing => {
                        let name = existing.map(|(name, _)| name.clone());
                        Some((key.clone(), status, print, name))
                    }
                }
            })
            .collect();
        Work { gone, changed }
    }
}

/// An object that exists: its name and the fingerprint of the status last written (none
/// while it has none).
type Existing = (String, Option<u64>);

/// What exists, by key.
#[derive(Debug, Default)]
struct Written {
    layer2: BTreeMap<ServiceKey, Existing>,
    bgp: BTreeMap<ServiceKey, Existing>,
    sessions: BTreeMap<String, Option<u64>>,
}

struct Task {
    client: Client,
    namespace: String,
    node: String,
    owner: Option<OwnerReference>,
    written: Written,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("no answer within {CALL_DEADLINE:?}")]
    TimedOut,
}

async fn bounded<T>(call: impl Future<Output = Result<T, kube::Error>>) -> Result<T, CallError> {
    match tokio::time::timeout(CALL_DEADLINE, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(CallError::TimedOut),
    }
}

/// Deletes `name`; an object already gone counts as deleted.
async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), CallError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match bounded(api.delete(name, &DeleteParams::default())).await {
        Ok(_) => Ok(()),
        Err(CallError::Api(kube::Error::Api(s))) if s.is_not_found() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Writes `status` as the status of `name`.
async fn patch_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<(), CallError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({ "status": status });
    let params = PatchParams::apply(SPEAKER_FIELD_MANAGER);
    bounded(api.patch_status(name, &params, &Patch::Merge(&patch))).await?;
    Ok(())
}

/// The first error of `results`, after `keep` has seen every success.
fn first_error<T>(
    results: Vec<Result<T, CallError>>,
    mut keep: impl FnMut(T),
) -> Result<(), CallError> {
    let mut failed = None;
    for result in results {
        match result {
            Ok(done) => keep(done),
            Err(error) => failed = failed.or(Some(error)),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// The Service of a status object, from its labels.
fn key_of(meta: &ObjectMeta) -> Option<ServiceKey> {
    let labels = meta.labels.as_ref()?;
    Some(ServiceKey::new(
        labels.get(STATUS_SERVICE_NAMESPACE_LABEL)?.clone(),
        labels.get(STATUS_SERVICE_NAME_LABEL)?.clone(),
    ))
}

/// What exists of one kind, from the `listed` objects with their status's fingerprint;
/// deletes every object after the first for a Service.
async fn adopt_kind<K>(
    api: &Api<K>,
    listed: impl Iterator<Item = (ObjectMeta, Option<u64>)>,
) -> Result<BTreeMap<ServiceKey, Existing>, CallError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut existing = BTreeMap::new();
    for (meta, print) in listed {
        let (Some(key), Some(name)) = (key_of(&meta), meta.name) else {
            continue;
        };
        match existing.entry(key) {
            Entry::Vacant(vacant) => {
                vacant.insert((name, print));
            }
            Entry::Occupied(first) => {
                delete(api, &name).await?;
                let service = first.key();
                debug!(%name, %service, "a second status object for the Service deleted");
            }
        }
    }
    Ok(existing)
}

impl Task {
    async fn run(mut self, mut desired: watch::Receiver<Option<Desired>>) {
        let mut adopted = false;
        loop {
            let Some(want) = desired.borrow_and_update().clone() else {
                if desired.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let pass = async {
                if !adopted {
                    self.adopt().await?;
                    adopted = true;
                }
                self.sync(want).await
            };
            match pass.await {
                Ok(()) => {
                    if desired.changed().await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    warn!(node = %self.node, %error, "status objects not written; retrying");
                    // A create that timed out may have made an object this task does not
                    // know: the next pass lists what exists first.
                    adopted = false;
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    fn labels(&self, key: Option<&ServiceKey>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(STATUS_NODE_LABEL.to_owned(), self.node.clone())]);
        if let Some(key) = key {
            labels.insert(STATUS_SERVICE_NAME_LABEL.to_owned(), key.name.clone());
            labels.insert(
                STATUS_SERVICE_NAMESPACE_LABEL.to_owned(),
                key.namespace.clone(),
            );
        }
        labels
    }

    /// Takes over this node's objects as they exist: those a previous run of its speaker
    /// left, and those a create that timed out made. Of two objects for one Service, the
    /// second is deleted.
    async fn adopt(&mut self) -> Result<(), CallError> {
        let selector = format!("{STATUS_NODE_LABEL}={}", self.node);
        let params = ListParams::default().labels(&selector);
        let l2: Api<ServiceL2Status> = Api::namespaced(self.client.clone(), &self.namespace);
        let listed = bounded(l2.list(&params)).await?.items;
        let listed = listed.into_iter().map(|o| {
            let print = o.status.as_ref().map(fingerprint);
            (o.metadata, print)
        });
        self.written.layer2 = adopt_kind(&l2, listed).await?;
        let bgp: Api<ServiceBGPStatus> = Api::namespaced(self.client.clone(), &self.namespace);
        let listed = bounded(bgp.list(&params)).await?.items;
        let listed = listed.into_iter().map(|o| {
            let print = o.status.as_ref().map(fingerprint);
            (o.metadata, print)
        });
        self.written.bgp = adopt_kind(&bgp, listed).await?;
        let sessions: Api<BGPSessionState> = Api::namespaced(self.client.clone(), &self.namespace);
        self.written.sessions.clear();
        for object in bounded(sessions.list(&params)).await? {
            if let Some(peer) = object.status.as_ref().and_then(|s| s.bgp_peer.clone()) {
                let status = object.status.as_ref().map(fingerprint);
                self.written.sessions.insert(peer, status);
            }
        }
        Ok(())
    }

    async fn sync(&mut self, want: Desired) -> Result<(), CallError> {
        let Desired { plan, sessions } = want;
        let layer2_work = Work::of(&plan, layer2_status, &self.written.layer2);
        let bgp_work = Work::of(&plan, bgp_status, &self.written.bgp);
        drop(plan);
        let ns = self.namespace.clone();
        let l2: Api<ServiceL2Status> = Api::namespaced(self.client.clone(), &ns);
        let bgp: Api<ServiceBGPStatus> = Api::namespaced(self.client.clone(), &ns);
        let mut layer2 = std::mem::take(&mut self.written.layer2);
        let new = |metadata| ServiceL2Status {
            metadata,
            spec: Default::default(),
            status: None,
        };
        let result = self
            .sync_kind(&l2, "l2-", new, layer2_work, &mut layer2)
            .await;
        self.written.layer2 = layer2;
        result?;
        let mut services = std::mem::take(&mut self.written.bgp);
        let new = |metadata| ServiceBGPStatus {
            metadata,
            spec: Default::default(),
            status: None,
        };
        let result = self
            .sync_kind(&bgp, "bgp-", new, bgp_work, &mut services)
            .await;
        self.written.bgp = services;
        result?;
        self.sync_sessions(&sessions).await
    }

    /// Does one kind's `work`, keeping `written` up to date; `new` makes an object with the
    /// given metadata, named `prefix` and a generated suffix.
    async fn sync_kind<K, S>(
        &self,
        api: &Api<K>,
        prefix: &str,
        new: impl Fn(ObjectMeta) -> K,
        work: Work<S>,
        written: &mut BTreeMap<ServiceKey, Existing>,
    ) -> Result<(), CallError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
        S: Serialize,
    {
        let Work { gone, changed } = work;
        let deletions: Vec<_> = stream::iter(gone)
            .map(|(key, name)| async move {
                delete(api, &name).await?;
                debug!(%name, service = %key, "status object deleted");
                Ok(key)
            })
            .buffer_unordered(CONCURRENT)
            .collect()
            .await;
        let deleted = first_error(deletions, |key| {
            written.remove(&key);
        });
        let new = &new;
        let writes: Vec<_> = stream::iter(changed)
            .map(|(key, status, print, name)| async move {
                let name = match name {
                    Some(name) => name,
                    None => match self.create(api, prefix, new, &key).await {
                        Ok(name) => name,
                        Err(error) => return Err((key, None, error)),
                    },
                };
                if prefix == "l2-"
                    && let Err(error) = self.delete_others(api, &key).await
                {
                    return Err((key, Some(name), error));
                }
                match patch_status(api, &name, &status).await {
                    Ok(()) => Ok((key, name, print)),
                    // Recorded without a status, so the next pass patches this object
                    // instead of creating a second one.
                    Err(error) => Err((key, Some(name), error)),
                }
            })
            .buffer_unordered(CONCURRENT)
            .collect()
            .await;
        let mut failed = deleted.err();
        for write in writes {
            match write {
                Ok((key, name, print)) => {
                    written.insert(key, (name, Some(print)));
                }
                Err((key, name, error)) => {
                    if let Some(name) = name {
                        written.insert(key, (name, None));
                    }
                    failed = failed.or(Some(error));
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Creates the object of `key` and returns its generated name.
    async fn create<K>(
        &self,
        api: &Api<K>,
        prefix: &str,
        new: &impl Fn(ObjectMeta) -> K,
        key: &ServiceKey,
    ) -> Result<String, CallError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        let object = new(ObjectMeta {
            generate_name: Some(prefix.to_owned()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(Some(key))),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        });
        let created = bounded(api.create(&PostParams::default(), &object)).await?;
        Ok(created.meta().name.clone().unwrap_or_default())
    }

    /// Deletes the layer 2 objects other nodes left for `key`: one node announces a Service
    /// in layer 2, and a node that stopped may not have cleaned up (MetalLB does the same).
    async fn delete_others<K>(&self, api: &Api<K>, key: &ServiceKey) -> Result<(), CallError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let selector = format!(
            "{STATUS_SERVICE_NAME_LABEL}={},{STATUS_SERVICE_NAMESPACE_LABEL}={},{STATUS_NODE_LABEL}!={}",
            key.name, key.namespace, self.node
        );
        let params = ListParams::default().labels(&selector);
        for object in bounded(api.list(&params)).await? {
            let Some(name) = object.meta().name.clone() else {
                continue;
            };
            delete(api, &name).await?;
            debug!(%name, service = %key, "another node's status object deleted");
        }
        Ok(())
    }

    async fn sync_sessions(
        &mut self,
        want: &BTreeMap<String, BGPSessionStateStatus>,
    ) -> Result<(), CallError> {
        let api: Api<BGPSessionState> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = |peer: &str| format!("{}-{peer}", self.node);
        let gone: Vec<String> = self
            .written
            .sessions
            .keys()
            .filter(|p| !want.contains_key(*p))
            .cloned()
            .collect();
        for peer in gone {
            delete(&api, &name(&peer)).await?;
            self.written.sessions.remove(&peer);
        }
        for (peer, status) in want {
            let print = fingerprint(status);
            match self.written.sessions.get(peer) {
                Some(Some(written)) if *written == print => continue,
                Some(_) => {}
                None => {
                    let object = BGPSessionState {
                        metadata: ObjectMeta {
                            name: Some(name(peer)),
                            namespace: Some(self.namespace.clone()),
                            labels: Some(self.labels(None)),
                            owner_references: self.owner.clone().map(|o| vec![o]),
                            ..ObjectMeta::default()
                        },
                        spec: Default::default(),
                        status: None,
                    };
                    match bounded(api.create(&PostParams::default(), &object)).await {
                        Ok(_) => {}
                        Err(CallError::Api(kube::Error::Api(s))) if s.is_already_exists() => {}
                        Err(error) => return Err(error),
                    }
                    self.written.sessions.insert(peer.clone(), None);
                }
            }
            patch_status(&api, &name(peer), status).await?;
            self.written.sessions.insert(peer.clone(), Some(print));
        }
        Ok(())
    }
}
