//! Leases against the real API server: a speaker's node Lease is created, renewed and seen as
//! alive by an observer, and gone from the observer at once after a planned exit; an elected
//! leader that releases its Lease hands it to the waiting candidate without waiting for it to
//! expire.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use metallb_runtime::lease::{Elector, LeaseTiming, NodeLease, NodeLeaseObserver};
use metallb_runtime::shutdown::Shutdown;
use metallb_testenv::{ControlPlane, test_name, wait_for};

/// Polls `check` every 20 ms for up to `within`.
fn until<T>(within: Duration, check: impl FnMut() -> Option<T>) -> Option<T> {
    tokio::task::block_in_place(|| wait_for(within, Duration::from_millis(20), check))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lease_is_seen_alive_while_renewed_and_gone_at_once_after_a_planned_exit() {
    let cp = ControlPlane::shared();
    let ns = tokio::task::block_in_place(|| cp.namespace(test_name!())).unwrap();
    let client = cp.client().await.unwrap();
    let (observer, watching) = NodeLeaseObserver::watch(client.clone(), ns.name());
    let watching = tokio::spawn(watching);

    let stop = Shutdown::manual();
    let lease = NodeLease::new(client, ns.name(), "node-a", Duration::from_secs(2));
    let mut renewals = lease.subscribe();
    let renewing = tokio::spawn(lease.run_until(stop.wait()));
    let alive = until(Duration::from_secs(10), || {
        Some(observer.alive(Instant::now())).filter(|alive| !alive.is_empty())
    });
    assert_eq!(alive, Some(BTreeSet::from(["node-a".to_owned()])));

    // Past two Lease durations the node is still alive: the renewals keep changing the record.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(observer.alive(Instant::now()).contains("node-a"));
    let renewal = *renewals.borrow_and_update();
    assert_eq!(renewal.failures, 0);
    assert!(renewal.fresh(Duration::from_secs(2), Instant::now()));
    let holder = cp
        .kubectl([
            "-n",
            ns.name(),
            "get",
            "lease",
            "metallb-speaker-node-a",
            "-o",
            "jsonpath={.spec.holderIdentity} {.spec.leaseDurationSeconds}",
        ])
        .unwrap();
    assert_eq!(holder, "node-a 2");

    let stopped = Instant::now();
    stop.trigger();
    renewing.await.unwrap();
    let gone = until(Duration::from_secs(5), || {
        observer.alive(Instant::now()).is_empty().then(Instant::now)
    });
    let gone = gone.expect("the observer still counts the stopped node");
    assert!(
        gone - stopped < Duration::from_secs(1),
        "{:?}",
        gone - stopped
    );
    watching.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_leader_lease_goes_to_the_waiting_candidate_without_expiring() {
    let cp = ControlPlane::shared();
    let ns = tokio::task::block_in_place(|| cp.namespace(test_name!())).unwrap();
    let client = cp.client().await.unwrap();
    let timing = LeaseTiming::default();
    let mut first = Elector::new(client.clone(), ns.name(), "lock", "first", timing);
    tokio::time::timeout(Duration::from_secs(10), first.acquire())
        .await
        .expect("a free Lease is acquired at once");
    let mut second = Elector::new(client, ns.name(), "lock", "second", timing);
    let waiting = tokio::spawn(async move {
        second.acquire().await;
        Instant::now()
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "the second candidate took a held Lease"
    );
    let released = Instant::now();
    first.release().await;
    let acquired = waiting.await.unwrap();
    // One retry period, not the 15 s Lease duration.
    assert!(
        acquired - released <= timing.retry() + Duration::from_secs(1),
        "{:?}",
        acquired - released
    );
}
