//! Two `metallb-operator` replicas against the real control plane. The leader's path to the API
//! server is frozen by a proxy that stops forwarding; it must stop reconciling before its Lease
//! can expire, and the other replica takes over only after that.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::Duration;

use metallb_operator::webhook::certs::write_files;
use metallb_testenv::{ControlPlane, Watched, leader_freeze, test_name};
use metallb_webhooks::GeneratedCerts;

/// client-go's Lease duration, the operator's default.
const LEASE_DURATION: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_leader_cut_off_from_the_api_server_stops_reconciling_before_the_other_replica_takes_over() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let namespace = ns.name();
    // Mounted certificates: these replicas must not register webhooks with the API server.
    let certs = tempfile::tempdir().unwrap();
    let cert = GeneratedCerts::new(vec!["127.0.0.1".into()], Duration::from_secs(3600))
        .issue(time::OffsetDateTime::now_utc())
        .unwrap();
    write_files(certs.path(), &cert).unwrap();
    let start = |identity: &str, kubeconfig: &Path| {
        let args = [
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--namespace={namespace}"),
            format!("--http-addr=127.0.0.1:{}", free_port()),
            format!("--webhook-addr=127.0.0.1:{}", free_port()),
            format!("--cert-dir={}", certs.path().display()),
            format!("--identity={identity}"),
        ];
        Watched::spawn(
            identity,
            Path::new(env!("CARGO_BIN_EXE_metallb-operator")),
            &args,
        )
        .unwrap()
    };
    // The operator stops reconciling the moment it logs this; its servers drain afterwards.
    let stopped = |a: &Watched| a.printed("stopped leading");
    let takeover = leader_freeze(
        cp,
        namespace,
        "metallb-operator-lock",
        LEASE_DURATION,
        start,
        stopped,
    );
    println!(
        "freeze -> replica-a stops reconciling: {:?}; freeze -> replica-b leads: {:?}",
        takeover.stopped_after, takeover.taken_after
    );
}
