//! The status writer against the real API server: it takes over the objects its node already
//! has, keeps one per Service (a create that timed out can leave a second one), writes the
//! desired status on it and deletes the objects of Services it no longer announces; before
//! it is told what the node announces, it touches nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use metallb_plan::{AllowedInterfaces, Layer2Plan, Plan, Planned, Reason, ServiceKey, ServicePlan};
use metallb_speaker::status::{Desired, StatusWriter};
use metallb_testenv::{ControlPlane, test_name, wait_for};

/// A ServiceL2Status of `node` for the Service `service`, with no status yet.
fn l2_status(name: &str, node: &str, service: &str, ns: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata:\n  name: {name}\n  \
         labels:\n    metallb.io/node: {node}\n    metallb.io/service-name: {service}\n    \
         metallb.io/service-namespace: {ns}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_keeps_one_object_per_service_and_deletes_what_it_no_longer_announces() {
    let cp = ControlPlane::shared();
    let ns = tokio::task::block_in_place(|| {
        cp.install_crds().unwrap();
        cp.namespace(test_name!()).unwrap()
    });
    let ns = ns.name().to_owned();
    let objects = [
        l2_status("l2-first", "node-a", "web", &ns),
        l2_status("l2-second", "node-a", "web", &ns),
        l2_status("l2-old", "node-a", "old", &ns),
        l2_status("l2-other-node", "node-b", "db", &ns),
    ]
    .join("---\n");
    tokio::task::block_in_place(|| {
        cp.kubectl_with_input(["-n", &ns, "apply", "-f", "-"], &objects)
            .unwrap()
    });

    let client = cp.client().await.unwrap();
    let (writer, task) = StatusWriter::start(client, &ns, "node-a", None);
    let jsonpath = "jsonpath={range .items[*]}{.metadata.name}={.status.node};{end}";
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = tokio::task::block_in_place(|| {
        cp.kubectl(["-n", &ns, "get", "servicel2statuses", "-o", jsonpath])
    });
    assert_eq!(
        before.as_deref().ok(),
        Some("l2-first=;l2-old=;l2-other-node=;l2-second=;"),
        "a writer that has not been told what the node announces leaves every object alone"
    );
    // node-a announces `web` in layer 2.
    let web = ServicePlan::Planned(Planned {
        ips: vec!["192.0.2.1".parse().unwrap()],
        pool: "pool".into(),
        layer2: Some(Layer2Plan {
            reason: Reason::Announce,
            owner: Some("node-a".into()),
            candidates: 1,
            interfaces: AllowedInterfaces::All,
        }),
        bgp: None,
    });
    let plan = Plan {
        node: "node-a".into(),
        draining: None,
        layer2: BTreeMap::new(),
        peers: BTreeMap::new(),
        services: BTreeMap::from([(ServiceKey::new(ns.clone(), "web"), web)]),
    };
    writer.publish(Desired {
        plan: Arc::new(plan),
        sessions: BTreeMap::new(),
    });

    let expected = "l2-first=node-a;l2-other-node=;";
    let listed = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
            let text = cp
                .kubectl(["-n", &ns, "get", "servicel2statuses", "-o", jsonpath])
                .ok()?;
            (text == expected).then_some(text)
        })
    });
    let now = tokio::task::block_in_place(|| {
        cp.kubectl(["-n", &ns, "get", "servicel2statuses", "-o", jsonpath])
    });
    assert_eq!(listed.as_deref(), Some(expected), "listed: {now:?}");
    drop(writer);
    task.await.unwrap();
}
