//! Events against the real API server: repeats of an event become one `events.k8s.io/v1` Event
//! whose series counts them, and an event with another message is an Event of its own.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::runtime::events::Reporter;
use metallb_runtime::events::{EventRecorder, Notice, Severity};
use metallb_testenv::{ControlPlane, test_name};

fn notice(message: &str) -> Notice {
    Notice {
        severity: Severity::Normal,
        reason: "nodeAssigned",
        action: "Announce",
        message: message.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_are_counted_on_one_event_and_a_new_message_is_an_event_of_its_own() {
    let cp = ControlPlane::shared();
    let ns = tokio::task::block_in_place(|| cp.namespace(test_name!())).unwrap();
    let client = cp.client().await.unwrap();
    let reporter = Reporter {
        controller: "metallb-speaker".into(),
        instance: Some("node-a".into()),
    };
    let (recorder, mut workers) = EventRecorder::start(client.clone(), reporter, 2);
    let web = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some(ns.name().to_owned()),
        name: Some("web".into()),
        ..ObjectReference::default()
    };
    for _ in 0..3 {
        recorder
            .record(notice("announcing from node \"node-a\""), web.clone())
            .await;
    }
    recorder
        .record(notice("announcing from node \"node-b\""), web.clone())
        .await;
    drop(recorder);
    while let Some(joined) = workers.join_next().await {
        joined.unwrap();
    }

    let events: Api<Event> = Api::namespaced(client, ns.name());
    let list = events.list(&Default::default()).await.unwrap();
    let mut seen: Vec<(String, Option<i32>, String)> = list
        .items
        .iter()
        .map(|event| {
            (
                event.note.clone().unwrap_or_default(),
                event.series.as_ref().map(|series| series.count),
                event.reporting_instance.clone().unwrap_or_default(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "announcing from node \"node-a\"".to_owned(),
                Some(3),
                "node-a".to_owned()
            ),
            (
                "announcing from node \"node-b\"".to_owned(),
                None,
                "node-a".to_owned()
            ),
        ]
    );
    let first = list
        .items
        .iter()
        .find(|event| event.series.is_some())
        .unwrap();
    assert_eq!(first.regarding.as_ref(), Some(&web));
    assert_eq!(first.reason.as_deref(), Some("nodeAssigned"));
    assert!(first.metadata.name.as_deref().unwrap().starts_with("web."));
}
