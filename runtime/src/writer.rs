//! The coalescing status writer: many writes at once, but at most one per object at a time. A
//! newer write for an object replaces one still waiting (each write carries the whole desired
//! state), and a failed write is retried with backoff unless a newer one came meanwhile.
//!
//! The writer is owned by the task that decides; that task drives completions with
//! [`Writer::next_done`] and [`Writer::finish`], so no lock is shared.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use kube::Client;
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// Longest wait between two attempts of one write.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One write of a whole status.
pub trait StatusWrite: Debug + Clone + Send + Sync + 'static {
    /// The object written; one write per target runs at a time.
    type Target: Debug + Clone + Hash + Eq + Send + Sync + 'static;

    /// The object this write is for.
    fn target(&self) -> Self::Target;

    /// Performs the write.
    fn write(&self, client: Client) -> impl Future<Output = Result<(), kube::Error>> + Send;
}

/// A finished attempt.
#[derive(Debug)]
pub struct Done<W: StatusWrite> {
    target: W::Target,
    retry: Option<(W, u32)>,
}

/// Which writes wait and which run: the bookkeeping of [`Writer`], without I/O.
///
/// `order` may hold a target twice or one that is running; [`Queue::start_next`] skips
/// those, so no step has to search it.
#[derive(Debug)]
struct Queue<W: StatusWrite> {
    waiting: HashMap<W::Target, (W, u32)>,
    order: VecDeque<W::Target>,
    running: HashSet<W::Target>,
}

impl<W: StatusWrite> Default for Queue<W> {
    fn default() -> Self {
        Queue {
            waiting: HashMap::new(),
            order: VecDeque::new(),
            running: HashSet::new(),
        }
    }
}

impl<W: StatusWrite> Queue<W> {
    /// Queues attempt number `attempt` of a write, replacing a waiting one for its object.
    fn push(&mut self, write: W, attempt: u32) {
        let target = write.target();
        if self
            .waiting
            .insert(target.clone(), (write, attempt))
            .is_none()
        {
            self.order.push_back(target);
        }
    }

    /// The next write to start, if fewer than `limit` run and one may start (its object has
    /// no write running).
    fn start_next(&mut self, limit: usize) -> Option<(W, u32)> {
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
    fn finish(&mut self, target: W::Target, retry: Option<(W, u32)>) {
        self.running.remove(&target);
        if self.waiting.contains_key(&target) {
            self.order.push_back(target);
        } else if let Some((write, attempt)) = retry {
            self.push(write, attempt);
        }
    }
}

/// The write queue and its running writes.
pub struct Writer<W: StatusWrite> {
    client: Client,
    concurrency: usize,
    queue: Queue<W>,
    tasks: JoinSet<Done<W>>,
}

impl<W: StatusWrite> Debug for Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("waiting", &self.queue.waiting.len())
            .field("running", &self.queue.running.len())
            .finish_non_exhaustive()
    }
}

impl<W: StatusWrite> Writer<W> {
    /// A writer running at most `concurrency` writes at once.
    pub fn new(client: Client, concurrency: usize) -> Self {
        Writer {
            client,
            concurrency: concurrency.max(1),
            queue: Queue::default(),
            tasks: JoinSet::new(),
        }
    }

    /// Queues a write, replacing a waiting one for the same object.
    pub fn enqueue(&mut self, write: W) {
        self.queue.push(write, 0);
    }

    /// Starts waiting writes while there is room.
    pub fn pump(&mut self) {
        while let Some((write, attempt)) = self.queue.start_next(self.concurrency) {
            self.tasks
                .spawn(attempt_write(self.client.clone(), write, attempt));
        }
    }

    /// The next finished attempt; pending forever while nothing runs.
    pub async fn next_done(&mut self) -> Done<W> {
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
    pub fn finish(&mut self, done: Done<W>) {
        self.queue.finish(done.target, done.retry);
        self.pump();
    }
}

/// One attempt; waits the backoff first when it is a retry.
async fn attempt_write<W: StatusWrite>(client: Client, write: W, attempt: u32) -> Done<W> {
    if attempt > 0 {
        let backoff = Duration::from_millis(100 << attempt.min(7)).min(MAX_BACKOFF);
        tokio::time::sleep(backoff).await;
    }
    let target = write.target();
    let retry = match write.write(client).await {
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
            Some((write, attempt + 1))
        }
    };
    Done { target, retry }
}

/// Client errors that another attempt cannot fix: the object is gone (404), was replaced
/// (a UID precondition gives 409 or 422), or the request is refused as it is.
fn is_final(code: u16) -> bool {
    (400..500).contains(&code) && code != 408 && code != 429
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Count(&'static str, u32);

    impl StatusWrite for Count {
        type Target = &'static str;

        fn target(&self) -> &'static str {
            self.0
        }

        async fn write(&self, _client: Client) -> Result<(), kube::Error> {
            Ok(())
        }
    }

    #[test]
    fn a_newer_write_replaces_a_waiting_one() {
        let mut queue = Queue::default();
        queue.push(Count("a", 1), 0);
        queue.push(Count("a", 2), 0);
        assert_eq!(queue.start_next(8), Some((Count("a", 2), 0)));
        assert_eq!(queue.start_next(8), None);
    }

    #[test]
    fn one_object_has_one_write_running_and_the_next_starts_after_it() {
        let mut queue = Queue::default();
        queue.push(Count("a", 1), 0);
        assert!(queue.start_next(8).is_some());
        queue.push(Count("a", 2), 0);
        assert_eq!(queue.start_next(8), None);
        queue.finish("a", None);
        assert_eq!(queue.start_next(8), Some((Count("a", 2), 0)));
    }

    #[test]
    fn a_failed_write_is_retried_unless_a_newer_one_waits() {
        let mut queue = Queue::default();
        queue.push(Count("a", 1), 0);
        let (write, _) = queue.start_next(8).unwrap();
        queue.finish("a", Some((write, 1)));
        assert_eq!(queue.start_next(8), Some((Count("a", 1), 1)));
        queue.push(Count("a", 2), 0);
        queue.finish("a", Some((Count("a", 1), 2)));
        assert_eq!(queue.start_next(8), Some((Count("a", 2), 0)));
    }

    #[test]
    fn no_more_than_the_limit_run_at_once() {
        let mut queue = Queue::default();
        for name in ["a", "b", "c"] {
            queue.push(Count(name, 1), 0);
        }
        assert!(queue.start_next(2).is_some());
        assert!(queue.start_next(2).is_some());
        assert_eq!(queue.start_next(2), None);
        queue.finish("a", None);
        assert_eq!(queue.start_next(2), Some((Count("c", 1), 0)));
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
