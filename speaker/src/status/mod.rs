//! The speaker's status objects, as MetalLB writes them: a `ServiceL2Status` for every Service
//! this node announces in layer 2 and a `ServiceBGPStatus` for every one it announces over BGP
//! (generated names `l2-…`/`bgp-…`, labelled with the node and the Service, owned by the
//! speaker pod so they go with it), plus our `BGPSessionState` per node and peer.
//!
//! A task of its own writes them. It takes the latest desired set (a newer one replaces one
//! not yet written), creates, updates and deletes only what differs, bounds every call by
//! [`CALL_DEADLINE`], and retries a failed pass after [`RETRY`].

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use metallb_api::status::{
    BGPSessionState, BGPSessionStateStatus, InterfaceInfo, ServiceBGPStatus,
    ServiceBGPStatusStatus, ServiceL2Status, ServiceL2StatusStatus,
};
use metallb_plan::{AllowedInterfaces, Plan, Reason, ServiceKey, ServicePlan};
use metallb_runtime::consts::{
    SPEAKER_FIELD_MANAGER, STATUS_NODE_LABEL, STATUS_SERVICE_NAME_LABEL,
    STATUS_SERVICE_NAMESPACE_LABEL,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::bfd::BfdPeerStatus;
use crate::bgp::PeerStatus;

/// The longest one API call may take.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// How long a failed pass waits before the next.
pub const RETRY: Duration = Duration::from_secs(2);

/// What this node's status objects should say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// Services announced in layer 2, with the interfaces when restricted.
    pub layer2: BTreeMap<ServiceKey, ServiceL2StatusStatus>,
    /// Services announced over BGP, with their peers.
    pub bgp: BTreeMap<ServiceKey, ServiceBGPStatusStatus>,
    /// Sessions, by BGPPeer name.
    pub sessions: BTreeMap<String, BGPSessionStateStatus>,
}

/// The status objects `plan` and the drivers' state call for.
pub fn desired(plan: &Plan, bgp: &[PeerStatus], bfd: &[BfdPeerStatus]) -> Desired {
    let announces = |r: &Reason| matches!(r, Reason::Announce | Reason::AnnounceDraining { .. });
    let mut out = Desired::default();
    for (key, service) in &plan.services {
        let ServicePlan::Planned(planned) = service else {
            continue;
        };
        let base = |key: &ServiceKey| {
            (
                Some(plan.node.clone()),
                Some(key.name.clone()),
                Some(key.namespace.clone()),
            )
        };
        if let Some(l2) = planned.layer2.as_ref().filter(|l2| announces(&l2.reason)) {
            let (node, service_name, service_namespace) = base(key);
            let interfaces = match &l2.interfaces {
                AllowedInterfaces::All => None,
                AllowedInterfaces::Only(names) => Some(
                    names
                        .iter()
                        .map(|name| InterfaceInfo {
                            name: Some(name.clone()),
                        })
                        .collect(),
                ),
            };
            let status = ServiceL2StatusStatus {
                node,
                service_name,
                service_namespace,
                interfaces,
            };
            out.layer2.insert(key.clone(), status);
        }
        if let Some(plan_bgp) = &planned.bgp {
            let peers: Vec<String> = plan_bgp
                .peers
                .iter()
                .filter(|(_, p)| announces(&p.reason))
                .map(|(name, _)| name.clone())
                .collect();
            if !peers.is_empty() {
                let (node, service_name, service_namespace) = base(key);
                let status = ServiceBGPStatusStatus {
                    node,
                    service_name,
                    service_namespace,
                    peers: Some(peers),
                };
                out.bgp.insert(key.clone(), status);
            }
        }
    }
    for session in bgp.iter().filter(|s| plan.peers.contains_key(&s.name)) {
        let bfd_status = bfd
            .iter()
            .find(|b| b.peer == session.address.to_canonical())
            .map(|b| format!("{:?}", b.state).to_lowercase());
        let status = BGPSessionStateStatus {
            node: Some(plan.node.clone()),
            peer: Some(session.address.to_string()),
            bgp_peer: Some(session.name.clone()),
            bgp_status: Some(session.state.to_owned()),
            bfd_status,
            prefixes_sent: i64::try_from(session.prefixes_advertised).ok(),
            last_down_reason: session.last_down_reason.clone(),
            ..BGPSessionStateStatus::default()
        };
        out.sessions.insert(session.name.clone(), status);
    }
    out
}

/// Hands desired sets to the writing task.
#[derive(Debug)]
pub struct StatusWriter {
    desired: watch::Sender<Desired>,
}

impl StatusWriter {
    /// Starts the task writing `node`'s objects in `namespace`, owned by `owner` when given.
    pub fn start(
        client: Client,
        namespace: &str,
        node: &str,
        owner: Option<OwnerReference>,
    ) -> (Self, JoinHandle<()>) {
        let (desired, rx) = watch::channel(Desired::default());
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
            let changed = *current != desired;
            *current = desired;
            changed
        });
    }
}

/// What exists, by key: the object's name and the status last written.
#[derive(Debug, Default)]
struct Written {
    layer2: BTreeMap<ServiceKey, (String, Option<ServiceL2StatusStatus>)>,
    bgp: BTreeMap<ServiceKey, (String, Option<ServiceBGPStatusStatus>)>,
    sessions: BTreeMap<String, Option<BGPSessionStateStatus>>,
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

impl Task {
    async fn run(mut self, mut desired: watch::Receiver<Desired>) {
        let mut adopted = false;
        loop {
            let want = desired.borrow_and_update().clone();
            let pass = async {
                if !adopted {
                    self.adopt().await?;
                    adopted = true;
                }
                self.sync(&want).await
            };
            match pass.await {
                Ok(()) => {
                    if desired.changed().await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    warn!(node = %self.node, %error, "status objects not written; retrying");
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

    /// Takes over the objects a previous run of this node's speaker left.
    async fn adopt(&mut self) -> Result<(), CallError> {
        let selector = format!("{STATUS_NODE_LABEL}={}", self.node);
        let params = ListParams::default().labels(&selector);
        let key_of = |meta: &ObjectMeta| {
            let labels = meta.labels.as_ref()?;
            Some(ServiceKey::new(
                labels.get(STATUS_SERVICE_NAMESPACE_LABEL)?.clone(),
                labels.get(STATUS_SERVICE_NAME_LABEL)?.clone(),
            ))
        };
        let l2: Api<ServiceL2Status> = Api::namespaced(self.client.clone(), &self.namespace);
        for object in bounded(l2.list(&params)).await? {
            if let (Some(key), Some(name)) = (key_of(&object.metadata), object.metadata.name) {
                self.written.layer2.insert(key, (name, object.status));
            }
        }
        let bgp: Api<ServiceBGPStatus> = Api::namespaced(self.client.clone(), &self.namespace);
        for object in bounded(bgp.list(&params)).await? {
            if let (Some(key), Some(name)) = (key_of(&object.metadata), object.metadata.name) {
                self.written.bgp.insert(key, (name, object.status));
            }
        }
        let sessions: Api<BGPSessionState> = Api::namespaced(self.client.clone(), &self.namespace);
        for object in bounded(sessions.list(&params)).await? {
            if let Some(peer) = object.status.as_ref().and_then(|s| s.bgp_peer.clone()) {
                self.written.sessions.insert(peer, object.status);
            }
        }
        Ok(())
    }

    async fn sync(&mut self, want: &Desired) -> Result<(), CallError> {
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
            .sync_kind(&l2, "l2-", new, &want.layer2, &mut layer2)
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
            .sync_kind(&bgp, "bgp-", new, &want.bgp, &mut services)
            .await;
        self.written.bgp = services;
        result?;
        self.sync_sessions(&want.sessions).await
    }

    /// Brings one kind's objects from `written` to `want`; `new` makes an object with the
    /// given metadata, named `prefix` and a generated suffix.
    async fn sync_kind<K, S>(
        &self,
        api: &Api<K>,
        prefix: &str,
        new: impl Fn(ObjectMeta) -> K,
        want: &BTreeMap<ServiceKey, S>,
        written: &mut BTreeMap<ServiceKey, (String, Option<S>)>,
    ) -> Result<(), CallError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
        S: Clone + PartialEq + Serialize,
    {
        let gone: Vec<ServiceKey> = written
            .keys()
            .filter(|k| !want.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            let (name, _) = &written[&key];
            match bounded(api.delete(name, &DeleteParams::default())).await {
                Ok(_) => {}
                Err(CallError::Api(kube::Error::Api(s))) if s.is_not_found() => {}
                Err(error) => return Err(error),
            }
            debug!(%name, service = %key, "status object deleted");
            written.remove(&key);
        }
        for (key, status) in want {
            if written
                .get(key)
                .is_some_and(|(_, s)| s.as_ref() == Some(status))
            {
                continue;
            }
            let name = match written.get(key) {
                Some((name, _)) => name.clone(),
                None => {
                    let object = new(ObjectMeta {
                        generate_name: Some(prefix.to_owned()),
                        namespace: Some(self.namespace.clone()),
                        labels: Some(self.labels(Some(key))),
                        owner_references: self.owner.clone().map(|o| vec![o]),
                        ..ObjectMeta::default()
                    });
                    let created = bounded(api.create(&PostParams::default(), &object)).await?;
                    let name = created.meta().name.clone().unwrap_or_default();
                    if prefix == "l2-" {
                        self.delete_others(api, key).await?;
                    }
                    written.insert(key.clone(), (name.clone(), None));
                    name
                }
            };
            let patch = serde_json::json!({ "status": status });
            let params = PatchParams::apply(SPEAKER_FIELD_MANAGER);
            let merge = Patch::Merge(&patch);
            bounded(api.patch_status(&name, &params, &merge)).await?;
            written.insert(key.clone(), (name, Some(status.clone())));
        }
        Ok(())
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
            match bounded(api.delete(&name, &DeleteParams::default())).await {
                Ok(_) => debug!(%name, service = %key, "another node's status object deleted"),
                Err(CallError::Api(kube::Error::Api(s))) if s.is_not_found() => {}
                Err(error) => return Err(error),
            }
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
            match bounded(api.delete(&name(&peer), &DeleteParams::default())).await {
                Ok(_) => {}
                Err(CallError::Api(kube::Error::Api(s))) if s.is_not_found() => {}
                Err(error) => return Err(error),
            }
            self.written.sessions.remove(&peer);
        }
        for (peer, status) in want {
            if self
                .written
                .sessions
                .get(peer)
                .is_some_and(|s| s.as_ref() == Some(status))
            {
                continue;
            }
            if !self.written.sessions.contains_key(peer) {
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
            let patch = serde_json::json!({ "status": status });
            let params = PatchParams::apply(SPEAKER_FIELD_MANAGER);
            bounded(api.patch_status(&name(peer), &params, &Patch::Merge(&patch))).await?;
            self.written
                .sessions
                .insert(peer.clone(), Some(status.clone()));
        }
        Ok(())
    }
}
