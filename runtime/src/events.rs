//! The event recorder: events go into a bounded queue and a few workers publish them as
//! `events.k8s.io/v1` Events, so the task that decides never waits on the API server for one.
//!
//! A repeat of a recent event (same object, type, reason, action and note within
//! [`SERIES_WINDOW`]) patches the first Event's series instead of creating another, as client-go
//! does. Unlike kube's `Recorder`, whose memory of past events keeps every event for six minutes
//! (tens of MB on a speaker announcing 10k Services), each worker remembers at most [`RECENT`]
//! events: a repeat older than the oldest remembered one becomes a new Event, nothing is lost.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
use kube::{Client, Error};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::warn;

/// Events waiting to be published before [`EventRecorder::record`] waits for room.
const QUEUE: usize = 1024;

/// The longest note the events API accepts, in bytes.
pub const NOTE_LIMIT: usize = 1024;

/// How many recently published events are remembered to count repeats.
pub const RECENT: usize = 512;

/// How long after its last occurrence an event still counts repeats, as client-go's.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// An event's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// Something happened as expected.
    Normal,
    /// Something needs the user's attention.
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }
}

/// An event as the binaries word it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Normal or Warning.
    pub severity: Severity,
    /// The reason, in MetalLB's words where MetalLB has one.
    pub reason: &'static str,
    /// What the reporter did; the events API requires one.
    pub action: &'static str,
    /// The message.
    pub message: String,
}

impl Notice {
    /// The note to publish: the message, cut on a character boundary when longer than the
    /// API accepts.
    pub fn note(&self) -> &str {
        let mut end = self.message.len().min(NOTE_LIMIT);
        while !self.message.is_char_boundary(end) {
            end -= 1;
        }
        &self.message[..end]
    }

    /// A new Event named `name` by `reporter` about `regarding`, first seen `now`.
    pub fn event(
        &self,
        name: String,
        reporter: &Reporter,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace(regarding).to_owned()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(self.severity.as_str().to_owned()),
            reason: Some(self.reason.to_owned()),
            action: Some(self.action.to_owned()),
            note: Some(self.note().to_owned()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(reporter.controller.clone()),
            reporting_instance: Some(
                reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| reporter.controller.clone()),
            ),
            ..Event::default()
        }
    }
}

/// Events about cluster-scoped objects go to `default`, as client-go puts them.
fn namespace(regarding: &ObjectReference) -> &str {
    regarding.namespace.as_deref().unwrap_or("default")
}

/// What makes two events the same event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    severity: Severity,
    reason: &'static str,
    action: &'static str,
    note: String,
}

impl Key {
    fn new(notice: &Notice, regarding: &ObjectReference) -> Self {
        Key {
            kind: regarding.kind.clone(),
            namespace: regarding.namespace.clone(),
            name: regarding.name.clone(),
            uid: regarding.uid.clone(),
            severity: notice.severity,
            reason: notice.reason,
            action: notice.action,
            note: notice.note().to_owned(),
        }
    }
}

#[derive(Debug)]
struct Seen {
    name: String,
    count: i32,
    last: Timestamp,
}

/// What a worker publishes for one occurrence.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    /// The first occurrence: create the Event with this name.
    New(String),
    /// A repeat: set the series of the Event with this name.
    Repeat { name: String, count: i32 },
}

/// The recently published events of one worker, at most [`RECENT`].
#[derive(Debug, Default)]
struct Recent {
    seen: HashMap<Key, Seen>,
    /// The last name stamp handed out; names stay unique when two events share a nanosecond.
    stamp: i128,
}

impl Recent {
    /// Counts this occurrence of `key` at `now`.
    fn claim(&mut self, key: Key, regarding: &str, now: Timestamp) -> Claim {
        let window = SignedDuration::try_from(SERIES_WINDOW).unwrap_or(SignedDuration::MAX);
        if let Some(seen) = self.seen.get_mut(&key)
            && now.duration_since(seen.last) < window
        {
            seen.count = seen.count.saturating_add(1);
            seen.last = now;
            return Claim::Repeat {
                name: seen.name.clone(),
                count: seen.count,
            };
        }
        if self.seen.len() >= RECENT && !self.seen.contains_key(&key) {
            self.seen
                .retain(|_, seen| now.duration_since(seen.last) < window);
            if self.seen.len() >= RECENT
                && let Some(oldest) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, seen)| seen.last)
                    .map(|(key, _)| key.clone())
            {
                self.seen.remove(&oldest);
            }
        }
        self.stamp = now.as_nanosecond().max(self.stamp + 1);
        let name = format!("{regarding}.{:x}", self.stamp);
        self.seen.insert(
            key,
            Seen {
                name: name.clone(),
                count: 1,
                last: now,
            },
        );
        Claim::New(name)
    }

    fn forget(&mut self, key: &Key) {
        self.seen.remove(key);
    }
}

/// Where events are recorded; clones share the queues.
#[derive(Debug, Clone)]
pub struct EventRecorder {
    queues: Arc<[mpsc::Sender<(Notice, ObjectReference)>]>,
}

impl EventRecorder {
    /// Starts `workers` publishers as `reporter`. They stop once every recorder is dropped and
    /// the queues are empty; join the returned set to wait for that.
    pub fn start(client: Client, reporter: Reporter, workers: usize) -> (Self, JoinSet<()>) {
        let mut tasks = JoinSet::new();
        let queues = (0..workers.max(1))
            .map(|_| {
                let (queue, mut rx) = mpsc::channel::<(Notice, ObjectReference)>(QUEUE);
                let mut publisher = Publisher {
                    client: client.clone(),
                    reporter: reporter.clone(),
                    recent: Recent::default(),
                };
                tasks.spawn(async move {
                    while let Some((notice, regarding)) = rx.recv().await {
                        publisher.publish(&notice, &regarding).await;
                    }
                });
                queue
            })
            .collect();
        (EventRecorder { queues }, tasks)
    }

    /// Queues `notice` about the object `regarding`; waits only while its queue is full.
    /// One worker publishes all events of an object, in order, so its repeats are counted on
    /// one Event.
    pub async fn record(&self, notice: Notice, regarding: ObjectReference) {
        let mut hasher = DefaultHasher::new();
        (&regarding.namespace, &regarding.name).hash(&mut hasher);
        let shard = (hasher.finish() % self.queues.len() as u64) as usize;
        // The workers only stop after every recorder is gone, so the queue is open here.
        let _ = self.queues[shard].send((notice, regarding)).await;
    }
}

struct Publisher {
    client: Client,
    reporter: Reporter,
    recent: Recent,
}

impl Publisher {
    async fn publish(&mut self, notice: &Notice, regarding: &ObjectReference) {
        let now = Timestamp::now();
        let claim = self.recent.claim(
            Key::new(notice, regarding),
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            now,
        );
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace(regarding));
        let result = match claim {
            Claim::New(name) => {
                let event = notice.event(name, &self.reporter, regarding, now);
                events
                    .create(&PostParams::default(), &event)
                    .await
                    .map(drop)
            }
            Claim::Repeat { name, count } => {
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                };
                let patch = serde_json::json!({ "series": series });
                events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
        };
        if let Err(error) = result {
            if let Error::Api(status) = &error
                && status.is_not_found()
            {
                // Deleted meanwhile (or never created): the next occurrence starts a new Event.
                self.recent.forget(&Key::new(notice, regarding));
            }
            warn!(
                %error,
                reason = notice.reason,
                kind = regarding.kind.as_deref().unwrap_or_default(),
                name = regarding.name.as_deref().unwrap_or_default(),
                namespace = regarding.namespace.as_deref().unwrap_or_default(),
                "could not publish event"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(message: &str) -> Notice {
        Notice {
            severity: Severity::Normal,
            reason: "nodeAssigned",
            action: "Announce",
            message: message.to_owned(),
        }
    }

    fn service(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Service".into()),
            namespace: Some("default".into()),
            name: Some(name.into()),
            ..ObjectReference::default()
        }
    }

    /// Claims at `at` milliseconds.
    fn claim(recent: &mut Recent, message: &str, name: &str, at: i64) -> Claim {
        let regarding = service(name);
        let key = Key::new(&notice(message), &regarding);
        recent.claim(key, name, Timestamp::from_millisecond(at).unwrap())
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let notice = Notice {
            severity: Severity::Warning,
            reason: "R",
            action: "A",
            message: "é".repeat(600),
        };
        let event = notice.event(
            "x.1".into(),
            &Reporter::from("metallb-speaker".to_owned()),
            &service("x"),
            Timestamp::UNIX_EPOCH,
        );
        let note = event.note.unwrap();
        assert!(note.len() <= NOTE_LIMIT);
        assert!(note.chars().all(|c| c == 'é'));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.reporting_instance.as_deref(), Some("metallb-speaker"));
    }

    #[test]
    fn a_repeat_within_the_window_counts_on_the_first_event_and_a_late_one_starts_anew() {
        let mut recent = Recent::default();
        let Claim::New(first) = claim(&mut recent, "announcing", "web", 100_000) else {
            panic!("the first occurrence is new");
        };
        assert!(first.starts_with("web."));
        let repeat = claim(&mut recent, "announcing", "web", 160_000);
        assert_eq!(
            repeat,
            Claim::Repeat {
                name: first.clone(),
                count: 2
            }
        );
        assert!(matches!(
            claim(&mut recent, "another message", "web", 161_000),
            Claim::New(_)
        ));
        let late = 160_000 + SERIES_WINDOW.as_millis() as i64;
        assert!(
            matches!(claim(&mut recent, "announcing", "web", late), Claim::New(name) if name != first)
        );
    }

    #[test]
    fn memory_stays_bounded_and_forgets_the_oldest_first() {
        let mut recent = Recent::default();
        // All within one series window, so only the bound makes room.
        let end = RECENT as i64 * 3;
        for i in 0..end {
            claim(&mut recent, "announcing", &format!("svc-{i}"), 100_000 + i);
            assert!(recent.seen.len() <= RECENT);
        }
        assert_eq!(recent.seen.len(), RECENT);
        let newest = format!("svc-{}", end - 1);
        assert!(matches!(
            claim(&mut recent, "announcing", &newest, 100_000 + end),
            Claim::Repeat { count: 2, .. }
        ));
        assert!(matches!(
            claim(&mut recent, "announcing", "svc-0", 100_000 + end),
            Claim::New(_)
        ));
    }
}
