//! `metallb-speaker` started the way the operator's DaemonSet starts it (no subcommand, the
//! rendered arguments) against the real API server: it keeps its node's speaker Lease renewed,
//! is ready once it has and has loaded the configuration, and deletes the Lease when SIGTERM
//! stops it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use metallb_testenv::{ControlPlane, Watched, test_name, wait_for};

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// The status line and body of `GET /readyz`.
fn readyz(port: u16) -> String {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return String::new();
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: speaker\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    let _ = stream.write_all(request.as_bytes());
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn a_speaker_started_like_the_daemonset_holds_its_node_lease_until_sigterm() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let node = "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-7\n";
    cp.kubectl_with_input(["apply", "-f", "-"], node).unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("speaker.sock");
    // What the operator mounts from the metallb-excludel2 ConfigMap.
    let excludel2 = dir.path().join("excludel2.yaml");
    std::fs::write(
        &excludel2,
        "announcedInterfacesToExclude: [\"^docker.*\", \"^veth.*\"]\n",
    )
    .unwrap();
    // What the operator mounts from the membership Secret.
    let key = dir.path().join("secretkey");
    std::fs::write(&key, "a membership key").unwrap();
    let args = [
        format!("--control={}", control.display()),
        format!("--kubeconfig={}", cp.kubeconfig_path().display()),
        format!("--namespace={}", ns.name()),
        "--node-name=node-7".to_owned(),
        "--log-level=info".to_owned(),
        "--metrics-host=127.0.0.1".to_owned(),
        format!("--metrics-port={port}"),
        "--host-ip=127.0.0.1".to_owned(),
        format!("--heartbeat-port={}", free_port()),
        format!("--membership-key-file={}", key.display()),
        format!("--excludel2-file={}", excludel2.display()),
        "--drain-on-cordon=false".to_owned(),
        "--never-blackhole=true".to_owned(),
        "--graceful-shutdown=true".to_owned(),
        "--graceful-shutdown-delay=5s".to_owned(),
        "--fencing=true".to_owned(),
        "--fencing-lease-duration=4s".to_owned(),
    ];
    let speaker = Watched::spawn(
        "speaker",
        Path::new(env!("CARGO_BIN_EXE_metallb-speaker")),
        &args,
    )
    .unwrap();
    let lease = |field: &str| {
        let args = [
            "-n",
            ns.name(),
            "get",
            "lease",
            "metallb-speaker-node-7",
            "-o",
        ];
        cp.kubectl(
            args.into_iter()
                .chain([format!("jsonpath={{{field}}}").as_str()]),
        )
        .ok()
    };
    let held = wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        lease(".spec.holderIdentity").filter(|h| h == "node-7")
    });
    assert!(held.is_some(), "no Lease for node-7\n{}", speaker.output());
    assert_eq!(lease(".spec.leaseDurationSeconds").as_deref(), Some("4"));
    let ready = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        readyz(port).starts_with("HTTP/1.1 200").then_some(())
    });
    assert!(ready.is_some(), "never ready\n{}", speaker.output());

    // Renewed: the renew time moves on.
    let first = lease(".spec.renewTime").unwrap();
    let renewed = wait_for(Duration::from_secs(5), Duration::from_millis(100), || {
        lease(".spec.renewTime").filter(|t| *t != first)
    });
    assert!(
        renewed.is_some(),
        "the Lease was not renewed\n{}",
        speaker.output()
    );

    speaker.terminate();
    let exited = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        speaker.exited()
    });
    let (_, status) = exited.unwrap_or_else(|| panic!("no exit on SIGTERM\n{}", speaker.output()));
    assert!(status.success(), "{status}\n{}", speaker.output());
    assert_eq!(
        lease(".metadata.name"),
        None,
        "the Lease outlived the speaker"
    );
}
