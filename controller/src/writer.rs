//! The controller's status writes (a Service's addresses, a pool's counts), written through
//! `metallb-runtime`'s coalescing writer: one write per object at a time, the newest wins.

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use metallb_allocator::{PoolCounters, ServiceKey};
use metallb_api::ipaddresspool::IPAddressPool;
use metallb_runtime::consts::CONTROLLER_FIELD_MANAGER;
use metallb_runtime::writer::StatusWrite;
use serde_json::json;

use crate::decide::{Desired, status_patch};

/// Writes in flight at once; the API server and the client's connection pool take this many
/// without queueing much.
pub const WRITE_CONCURRENCY: usize = 32;

/// The object a write is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A Service's status and pool annotation.
    Service(ServiceKey),
    /// An `IPAddressPool`'s status counts.
    Pool(String),
}

/// What to write, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A Service's status.
    Service {
        /// The Service.
        key: ServiceKey,
        /// Precondition: the Service the decision was made for.
        uid: String,
        /// Addresses and pool, or none.
        desired: Desired,
    },
    /// A pool's status counts.
    Pool {
        /// The MetalLB namespace.
        namespace: String,
        /// The `IPAddressPool`.
        name: String,
        /// Its counts.
        counters: PoolCounters,
    },
}

impl StatusWrite for Job {
    type Target = Target;

    fn target(&self) -> Target {
        match self {
            Job::Service { key, .. } => Target::Service(key.clone()),
            Job::Pool { name, .. } => Target::Pool(name.clone()),
        }
    }

    async fn write(&self, client: Client) -> Result<(), kube::Error> {
        let params = PatchParams {
            field_manager: Some(CONTROLLER_FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match self {
            Job::Service { key, uid, desired } => {
                let api = Api::<Service>::namespaced(client, &key.namespace);
                let patch = status_patch(uid, desired);
                api.patch_status(&key.name, &params, &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
            Job::Pool {
                namespace,
                name,
                counters,
            } => {
                let api = Api::<IPAddressPool>::namespaced(client, namespace);
                let patch = json!({"status": {
                    "assignedIPv4": counters.assigned_ipv4,
                    "assignedIPv6": counters.assigned_ipv6,
                    "availableIPv4": counters.available_ipv4,
                    "availableIPv6": counters.available_ipv6,
                }});
                api.patch_status(name, &params, &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
        }
    }
}
