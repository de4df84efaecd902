//! Status writes, many at once but at most one per object at a time. A newer write for an
//! object replaces one still waiting (each write is the whole desired state), and a failed
//! write is retried with backoff unless a newer one came meanwhile.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use metallb_allocator::{PoolCounters, ServiceKey};
use metallb_api::ipaddresspool::IPAddressPool;
use serde_json::json;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::FIELD_MANAGER;
use crate::decide::{Desired, status_patch};

/// Writes in flight at once; the API server and the client's connection pool take this many
/// without queueing much.
const CONCURRENCY: usize = 32;

/// Longest wait between two attempts of one write.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

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
        /// The `IPAddressPool`.
        name: String,
        /// Its counts.
        counters: PoolCounters,
    },
}

impl Job {
    fn target(&self) -> Target {
        match self {
            Job::Service { key, .. } => Target::Service(key.clone()),
            Job::Pool { name, .. } => Target::Pool(name.clone()),
        }
    }
}

/// A finished attempt.
#[derive(Debug)]
pub struct Done {
    target: Target,
    retry: Option<(Job, u32)>,
}

/// Which writes wait and which run: the bookkeeping of [`Writer`], without I/O.
///
/// `order` may hold a target twice or one that is running; [`Queue::start_next`] skips
/// those, so no step has to search it.
#[derive(Debug, Default)]
struct Queue {
    waiting: HashMap<Target, (Job, u32)>,
    order: VecDeque<Target>,
    running: HashSet<Target>,
}

impl Queue {
    /// Queues attempt number `attempt` of a write, replacing a waiting one for its object.
    fn push(&mut self, job: Job, attempt: u32) {
        let target = job.target();
        if self
            .waiting
            .insert(target.clone(), (job, attempt))
            .is_none()
        {
            self.order.push_back(target);
        }
    }

    /// The next write to start, if fewer than `limit` run and one may start (its object has
    /// no write running).
    fn start_next(&mut self, limit: usize) -> Option<(Job, u32)> {
        while self.running.len() < limit {
            let target = self.order.pop_front()?;
            // A running target is queued again when it finishes.
            if self.running.contains(&target) {
                continue;
            }
            if let Some(next) = self.waiting.remove(&target) {
                self.running.insert(target);
                return Some(next);
            }
        }
        None
    }

    /// A write finished; `retry` is the attempt to queue again when it failed, dropped if a
    /// newer write for the object is waiting.
    fn finish(&mut self, target: Target, retry: Option<(Job, u32)>) {
        self.running.remove(&target);
        if self.waiting.contains_key(&target) {
            self.order.push_back(target);
        } else if let Some((job, attempt)) = retry {
            self.push(job, attempt);
        }
    }
}

/// The write queue and its running writes; owned by the reconcile loop, which also drives
/// their completions.
pub struct Writer {
    client: Client,
    namespace: String,
    queue: Queue,
    tasks: JoinSet<Done>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("waiting", &self.queue.waiting.len())
            .field("running", &self.queue.running.len())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer for pools of the MetalLB `namespace`.
    pub fn new(client: Client, namespace: String) -> Self {
        Self {
            client,
            namespace,
            queue: Queue::default(),
            tasks: JoinSet::new(),
        }
    }

    /// Queues a write, replacing a waiting one for the same object.
    pub fn enqueue(&mut self, job: Job) {
        self.queue.push(job, 0);
    }

    /// Starts waiting writes while there is room.
    pub fn pump(&mut self) {
        while let Some((job, attempt)) = self.queue.start_next(CONCURRENCY) {
            let client = self.client.clone();
            let namespace = self.namespace.clone();
            self.tasks
                .spawn(attempt_write(client, namespace, job, attempt));
        }
    }

    /// The next finished attempt; pending forever while nothing runs.
    pub async fn next_done(&mut self) -> Done {
        match self.tasks.join_next().await {
            Some(Ok(done)) => done,
            Some(Err(join_error)) => panic!("a status write panicked: {join_error}"),
            None => std::future::pending().await,
        }
    }

    /// Whether no write waits or runs.
    pub fn is_idle(&self) -> bool {
        self.queue.waiting.is_empty() && self.queue.running.is_empty()
    }

    /// Books a finished attempt (a failed one is retried unless a newer write is waiting)
    /// and starts what may start.
    pub fn finish(&mut self, done: Done) {
        self.queue.finish(done.target, done.retry);
        self.pump();
    }
}

/// One attempt; waits the backoff first when it is a retry.
async fn attempt_write(client: Client, namespace: String, job: Job, attempt: u32) -> Done {
    if attempt > 0 {
        let backoff = Duration::from_millis(100 << attempt.min(7)).min(MAX_BACKOFF);
        tokio::time::sleep(backoff).await;
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let result = match &job {
        Job::Service { key, uid, desired } => {
            let api = Api::<Service>::namespaced(client, &key.namespace);
            let patch = status_patch(uid, desired);
            api.patch_status(&key.name, &params, &Patch::Merge(&patch))
                .await
                .map(drop)
        }
        Job::Pool { name, counters } => {
            let api = Api::<IPAddressPool>::namespaced(client, &namespace);
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
    };
    let target = job.target();
    let retry = match result {
        Ok(()) => {
            debug!(?target, "status written");
            None
        }
        Err(kube::Error::Api(status)) if is_final(status.code) => {
            if status.code != 404 {
                warn!(?target, code = status.code, message = %status.message, "status write refused");
            }
            None
        }
        Err(error) => {
            warn!(?target, %error, attempt, "status write failed; retrying");
            Some((job, attempt + 1))
        }
    };
    Done { target, retry }
}

/// Client errors that another attempt cannot fix: the object is gone (404), was replaced
/// (the UID precondition gives 409 or 422), or the request is refused as it is.
fn is_final(code: u16) -> bool {
    (400..500).contains(&code) && code != 408 && code != 429
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_job(name: &str, assigned: i64) -> Job {
        Job::Pool {
            name: name.into(),
            counters: PoolCounters {
                assigned_ipv4: assigned,
                ..PoolCounters::default()
            },
        }
    }

    #[test]
    fn a_newer_write_replaces_a_waiting_one() {
        let mut queue = Queue::default();
        queue.push(pool_job("a", 1), 0);
        queue.push(pool_job("a", 2), 0);
        assert_eq!(queue.start_next(8), Some((pool_job("a", 2), 0)));
        assert_eq!(queue.start_next(8), None);
    }

    #[test]
    fn one_object_has_one_write_running_and_the_next_starts_after_it() {
        let mut queue = Queue::default();
        queue.push(pool_job("a", 1), 0);
        assert!(queue.start_next(8).is_some());
        queue.push(pool_job("a", 2), 0);
        assert_eq!(queue.start_next(8), None);
        queue.finish(Target::Pool("a".into()), None);
        assert_eq!(queue.start_next(8), Some((pool_job("a", 2), 0)));
    }

    #[test]
    fn a_failed_write_is_retried_unless_a_newer_one_waits() {
        let mut queue = Queue::default();
        queue.push(pool_job("a", 1), 0);
        let (job, _) = queue.start_next(8).unwrap();
        queue.finish(Target::Pool("a".into()), Some((job, 1)));
        assert_eq!(queue.start_next(8), Some((pool_job("a", 1), 1)));
        queue.push(pool_job("a", 2), 0);
        queue.finish(Target::Pool("a".into()), Some((pool_job("a", 1), 2)));
        assert_eq!(queue.start_next(8), Some((pool_job("a", 2), 0)));
    }

    #[test]
    fn no_more_than_the_limit_run_at_once() {
        let mut queue = Queue::default();
        for name in ["a", "b", "c"] {
            queue.push(pool_job(name, 1), 0);
        }
        assert!(queue.start_next(2).is_some());
        assert!(queue.start_next(2).is_some());
        assert_eq!(queue.start_next(2), None);
        queue.finish(Target::Pool("a".into()), None);
        assert_eq!(queue.start_next(2), Some((pool_job("c", 1), 0)));
    }

    #[test]
    fn only_timeouts_throttling_and_server_errors_are_retried() {
        for code in [400, 403, 404, 409, 422] {
            assert!(is_final(code), "{code}");
        }
        for code in [408, 429, 500, 503] {
            assert!(!is_final(code), "{code}");
        }
    }
}
