//! The event recorder: events go into a bounded queue and a few workers publish them through
//! kube's `Recorder` (which aggregates repeats into one `events.k8s.io` Event with a count), so
//! the task that decides never waits on the API server for an event.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tracing::warn;

/// Events waiting to be published before [`EventRecorder::record`] waits for room.
const QUEUE: usize = 1024;

/// The longest note the events API accepts, in bytes.
pub const NOTE_LIMIT: usize = 1024;

/// An event's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something happened as expected.
    Normal,
    /// Something needs the user's attention.
    Warning,
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
    /// The event to publish; a note longer than the API accepts is cut on a character
    /// boundary.
    pub fn event(&self) -> Event {
        let mut note = self.message.clone();
        if note.len() > NOTE_LIMIT {
            let mut end = NOTE_LIMIT;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        Event {
            type_: match self.severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: self.reason.to_owned(),
            note: Some(note),
            action: self.action.to_owned(),
            secondary: None,
        }
    }
}

/// Where events are recorded; clones share the queue.
#[derive(Debug, Clone)]
pub struct EventRecorder {
    queue: mpsc::Sender<(Notice, ObjectReference)>,
}

impl EventRecorder {
    /// Starts `workers` publishers as `reporter`. They stop once every recorder is dropped and
    /// the queue is empty; join the returned set to wait for that.
    pub fn start(client: Client, reporter: Reporter, workers: usize) -> (Self, JoinSet<()>) {
        let (queue, rx) = mpsc::channel::<(Notice, ObjectReference)>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut tasks = JoinSet::new();
        for _ in 0..workers.max(1) {
            let recorder = Recorder::new(client.clone(), reporter.clone());
            let rx = rx.clone();
            tasks.spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((notice, reference)) = next else {
                        break;
                    };
                    publish(&recorder, &notice, &reference).await;
                }
            });
        }
        (EventRecorder { queue }, tasks)
    }

    /// Queues `notice` about the object `reference`; waits only while the queue is full.
    pub async fn record(&self, notice: Notice, reference: ObjectReference) {
        // The workers only stop after every recorder is gone, so the queue is open here.
        let _ = self.queue.send((notice, reference)).await;
    }
}

async fn publish(recorder: &Recorder, notice: &Notice, reference: &ObjectReference) {
    if let Err(error) = recorder.publish(&notice.event(), reference).await {
        warn!(
            %error,
            reason = notice.reason,
            kind = reference.kind.as_deref().unwrap_or_default(),
            name = reference.name.as_deref().unwrap_or_default(),
            namespace = reference.namespace.as_deref().unwrap_or_default(),
            "could not publish event"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let notice = Notice {
            severity: Severity::Warning,
            reason: "R",
            action: "A",
            message: "é".repeat(600),
        };
        let event = notice.event();
        let note = event.note.unwrap();
        assert!(note.len() <= NOTE_LIMIT);
        assert!(note.chars().all(|c| c == 'é'));
        assert_eq!(event.type_, EventType::Warning);
    }
}
