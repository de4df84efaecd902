//! Two `metallb-controller` replicas against the real control plane. The leader's path to the
//! API server is frozen by a proxy that stops forwarding (the API server of a node being torn
//! down accepts connections and never answers). The leader must stop acting before its Lease
//! can expire, and the other replica takes over only after that: there is no moment when both
//! write.
//!
//! `METALLB_CONTROLLER_UNDER_TEST` runs another build of the controller through the same test
//! (it only uses arguments every version knows), e.g. one from before the Lease calls had
//! deadlines, which keeps acting as leader and fails here.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use metallb_testenv::{ControlPlane, Watched, leader_freeze, lease_holder, test_name, wait_for};

/// client-go's Lease duration, the controller's default.
const LEASE_DURATION: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

fn controller_binary() -> PathBuf {
    std::env::var_os("METALLB_CONTROLLER_UNDER_TEST").map_or_else(
        || env!("CARGO_BIN_EXE_metallb-controller").into(),
        PathBuf::from,
    )
}

fn start(identity: &str, kubeconfig: &Path, namespace: &str) -> Watched {
    let args = [
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--namespace={namespace}"),
        format!("--pod-name={identity}"),
        "--metrics-host=127.0.0.1".to_owned(),
        format!("--metrics-port={}", free_port()),
        "--log-level=info".to_owned(),
    ];
    Watched::spawn(identity, &controller_binary(), &args).unwrap()
}

#[test]
fn a_leader_cut_off_from_the_api_server_stops_before_the_other_replica_takes_over() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let namespace = ns.name();
    let lease = "metallb-controller";
    // The controller stops acting by exiting: nothing of it can write after that.
    let exited = |a: &Watched| a.exited().map(|(at, _)| at);
    let takeover = leader_freeze(
        cp,
        namespace,
        lease,
        LEASE_DURATION,
        |identity, kubeconfig| start(identity, kubeconfig, namespace),
        exited,
    );
    let (_, status) = takeover.a.exited().unwrap();
    assert!(
        !status.success(),
        "losing the Lease is an error exit\n{}",
        takeover.report()
    );
    println!(
        "freeze -> replica-a exits: {:?}; freeze -> replica-b leads: {:?}",
        takeover.stopped_after, takeover.taken_after
    );

    // The new leader acts: a new Service gets an address from a pool.
    let pool = format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: freeze\n  \
         namespace: {namespace}\nspec:\n  addresses: [192.168.77.0/24]\n"
    );
    cp.kubectl_with_input(["apply", "-f", "-"], &pool).unwrap();
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {namespace}\nspec:\n  \
         type: LoadBalancer\n  ports: [{{port: 80}}]\n"
    );
    cp.kubectl_with_input(["apply", "-f", "-"], &service)
        .unwrap();
    let jsonpath = "jsonpath={.status.loadBalancer.ingress[0].ip}";
    let assigned = wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        let args = ["-n", namespace, "get", "service", "web", "-o", jsonpath];
        cp.kubectl(args).ok().filter(|ip| !ip.is_empty())
    });
    assert_eq!(
        assigned.as_deref(),
        Some("192.168.77.0"),
        "{}",
        takeover.report()
    );
    assert_eq!(
        lease_holder(cp, namespace, lease).as_deref(),
        Some("replica-b")
    );
}
