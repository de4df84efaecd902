//! The HA control plane: three etcd members with an API server each; removing a member leaves
//! its API server serving what it had while its writes fail, as on a control-plane node torn
//! down in a rolling update.

use std::time::Duration;

use metallb_testenv::ha::HaControlPlane;
use metallb_testenv::wait_for;

#[test]
fn a_removed_members_api_server_serves_stale_reads_and_fails_writes() {
    let mut cp = HaControlPlane::start(3).unwrap();
    let dir = cp.dir().to_path_buf();
    cp.kubectl(0, &["create", "configmap", "before", "--from-literal=k=v"])
        .unwrap();
    // Every member sees a write made through any one of them.
    for i in 0..3 {
        cp.kubectl(i, &["get", "configmap", "before"]).unwrap();
    }

    cp.remove_member(0).unwrap();
    // The removed member may have led: the others elect a leader first.
    let created = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        cp.kubectl(1, &["create", "configmap", "after", "--from-literal=k=v"])
            .ok()
    });
    assert!(
        created.is_some(),
        "the remaining members never took a write"
    );
    cp.kubectl(2, &["get", "configmap", "after"]).unwrap();
    // Reads from the watch cache (resourceVersion=0) still answer on the removed member...
    let stale = cp
        .kubectl(
            0,
            &[
                "get",
                "--raw",
                "/api/v1/namespaces/default/configmaps?resourceVersion=0",
            ],
        )
        .unwrap();
    assert!(stale.contains("\"before\""), "{stale}");
    assert!(
        !stale.contains("\"after\""),
        "the removed member saw a later write: {stale}"
    );
    // ...and its writes fail.
    let write = cp.kubectl(0, &["create", "configmap", "lost", "--from-literal=k=v"]);
    assert!(
        write.is_err(),
        "a write through the removed member succeeded"
    );
    assert!(cp.kubectl(1, &["get", "configmap", "lost"]).is_err());

    drop(cp);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
