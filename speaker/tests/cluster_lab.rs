//! Three lab nodes each run `metallb-speaker` as the DaemonSet starts it (no subcommand),
//! against the real API server, with Node objects, a pool, advertisements, two BGPPeers (eBGP
//! for node1 and node2, iBGP for node3, chosen by nodeSelectors), a LoadBalancer Service and
//! its EndpointSlice. The client's ARP request is answered by exactly the node MetalLB's hash
//! picks; FRR gets the route from every node with the advertisement's community; a speaker
//! that stops leaves the candidates and the next node answers.
//!
//! Each node reaches the API server through a proxy whose listener sits in the node's network
//! namespace (`127.0.0.1:<port>` there).

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{SPEAKER, wait_for};
use metallb_plan as plan;
use metallb_testenv::lab::{Daemon, Host, Lab, LabOptions};
use metallb_testenv::{ControlPlane, FreezableProxy, test_name};

const NODES: [Host; 3] = [Host::Node(1), Host::Node(2), Host::Node(3)];
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 201);

fn objects(ns: &str) -> String {
    format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: lab, namespace: {ns}}}
spec: {{addresses: [192.168.250.200/29]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: l2, namespace: {ns}}}
spec: {{}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: {ns}}}
spec: {{communities: ["64500:100"]}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: ebgp, namespace: {ns}}}
spec:
  myASN: 64500
  peerASN: 64512
  peerAddress: 192.168.250.1
  holdTime: 9s
  nodeSelectors:
    - matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [node1, node2]}}]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: ibgp, namespace: {ns}}}
spec:
  myASN: 64512
  peerASN: 64512
  peerAddress: 192.168.250.1
  holdTime: 9s
  nodeSelectors:
    - matchLabels: {{kubernetes.io/hostname: node3}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec: {{type: LoadBalancer, ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: {ns}
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints:
  - {{addresses: [10.0.1.1], nodeName: node1, conditions: {{ready: true}}}}
  - {{addresses: [10.0.2.1], nodeName: node2, conditions: {{ready: true}}}}
  - {{addresses: [10.0.3.1], nodeName: node3, conditions: {{ready: true}}}}
"#
    )
}

/// The node MetalLB's election picks for the VIP among `alive`, by the planner (whose hash
/// order is checked against hand-computed SHA-256 values in its own tests).
fn winner(alive: &[&str]) -> String {
    let mut cluster = plan::Cluster::default();
    for node in ["node1", "node2", "node3"] {
        cluster.nodes.insert(node.into(), plan::Node::default());
    }
    cluster.alive = alive.iter().map(|n| n.to_string()).collect();
    let pool = plan::Pool {
        addresses: vec![plan::Addresses::Cidr("192.168.250.200/29".parse().unwrap())],
        ..plan::Pool::default()
    };
    cluster.pools.insert("lab".into(), pool);
    cluster
        .l2_advertisements
        .insert("l2".into(), plan::L2Advertisement::default());
    let endpoints = ["node1", "node2", "node3"].map(|node| plan::Endpoint {
        node: Some(node.into()),
        ready: Some(true),
        serving: None,
    });
    let service = plan::Service {
        ours: true,
        ingress: vec![IpAddr::V4(VIP)],
        endpoints: endpoints.to_vec(),
        ..plan::Service::default()
    };
    cluster
        .services
        .insert(plan::ServiceKey::new("ns", "web"), service);
    let owners: BTreeSet<String> = alive
        .iter()
        .filter(|node| {
            plan::plan(&cluster, node)
                .unwrap()
                .layer2
                .contains_key(&IpAddr::V4(VIP))
        })
        .map(|n| n.to_string())
        .collect();
    assert_eq!(owners.len(), 1, "{owners:?}");
    owners.into_iter().next().unwrap()
}

/// A proxy to the API server listening inside `host`'s network namespace.
fn proxy_into(lab: &Lab, host: Host, upstream: SocketAddr) -> FreezableProxy {
    let listener = std::thread::scope(|s| {
        s.spawn(|| {
            lab.enter(host).unwrap();
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
        })
        .join()
        .unwrap()
    });
    FreezableProxy::start_with(listener, upstream).unwrap()
}

fn speaker(lab: &Lab, host: Host, kubeconfig: &Path, ns: &str, dir: &Path) -> Daemon {
    let (address, _) = Lab::address(host);
    let control = dir.join(format!("{}.sock", host.name()));
    let args = [
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--namespace={ns}"),
        format!("--node-name={}", host.name()),
        format!("--host-ip={address}"),
        "--metrics-host=127.0.0.1".to_owned(),
        "--metrics-port=7472".to_owned(),
        format!("--control={}", control.display()),
        "--graceful-shutdown=false".to_owned(),
        "--fencing-lease-duration=4s".to_owned(),
        "--log-format=json".to_owned(),
        "--log-level=debug".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.spawn(host, SPEAKER, &args).unwrap()
}

/// `metallb-speaker show service NAME` against the speaker's control socket.
fn show_service(control: &Path, name: &str) -> String {
    let output = std::process::Command::new(SPEAKER)
        .args(["show", "service", name, "--control"])
        .arg(control)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `GET /metrics` of the speaker in `host` (on 127.0.0.1:7472 there).
fn metrics(lab: &Lab, host: Host) -> String {
    let script = "exec 3<>/dev/tcp/127.0.0.1/7472 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";
    let output = lab
        .command(host, "bash")
        .args(["-c", script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn logs(lab: &Lab) -> String {
    NODES
        .iter()
        .map(|host| {
            let path = lab
                .state_dir()
                .join(format!("metallb-speaker-{}.log", host.name()));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            format!(
                "--- {} ---\n{}\n",
                host.name(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect()
}

#[test]
fn three_speakers_on_the_cluster_elect_one_layer2_owner_and_all_send_the_route() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let namespace = ns.name();
    for host in NODES {
        let node = format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {0}\n  labels: {{kubernetes.io/hostname: {0}}}\n",
            host.name()
        );
        cp.kubectl_with_input(["apply", "-f", "-"], &node).unwrap();
    }
    cp.kubectl_with_input(["apply", "-f", "-"], &objects(namespace))
        .unwrap();
    let status = r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.168.250.201"}]}}}"#;
    let args = [
        "-n",
        namespace,
        "patch",
        "service",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ];
    cp.kubectl(args).unwrap();

    let lab = Lab::up(LabOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let upstream: SocketAddr = cp.server().trim_start_matches("https://").parse().unwrap();
    let mut proxies = Vec::new();
    let mut speakers = Vec::new();
    for host in NODES {
        let proxy = proxy_into(&lab, host, upstream);
        let kubeconfig = proxy.kubeconfig(cp.kubeconfig_path(), cp.server()).unwrap();
        speakers.push(Some(speaker(
            &lab,
            host,
            &kubeconfig,
            namespace,
            dir.path(),
        )));
        proxies.push(proxy);
    }

    let expected = winner(&["node1", "node2", "node3"]);
    let mac_of = |node: &str| {
        let host = NODES.into_iter().find(|h| h.name() == node).unwrap();
        Lab::mac(host)
    };
    let started = Instant::now();
    let answered = wait_for(Duration::from_secs(40), Duration::from_millis(200), || {
        lab.arp(VIP).unwrap()
    });
    let answered = answered.unwrap_or_else(|| panic!("nobody answers ARP\n{}", logs(&lab)));
    println!(
        "first ARP answer {:?} after the speakers started",
        started.elapsed()
    );
    assert_eq!(answered.to_lowercase(), mac_of(&expected), "{}", logs(&lab));

    // Every node sends the /32 to FRR (node3 over iBGP), with the community.
    let all_paths = wait_for(Duration::from_secs(40), Duration::from_millis(200), || {
        let route = lab.bgp_route("192.168.250.201/32").unwrap()?;
        let paths = route["paths"].as_array()?.clone();
        (paths.len() == 3).then_some(paths)
    });
    let paths = all_paths.unwrap_or_else(|| panic!("FRR lacks three paths\n{}", logs(&lab)));
    for path in &paths {
        let community = path["community"]["string"].as_str().unwrap_or_default();
        assert!(community.contains("64500:100"), "{path}");
    }

    // `show service` explains each node's part, from the planner's reasons.
    let service = format!("{namespace}/web");
    for host in NODES {
        let control = dir.path().join(format!("{}.sock", host.name()));
        let text = show_service(&control, &service);
        println!("{text}");
        if host.name() == expected {
            assert!(text.contains(&format!("{expected} announces")), "{text}");
        } else {
            assert!(
                text.contains(&format!("{expected} won the election")),
                "{text}"
            );
        }
        assert!(
            text.contains("bgp: peer ebgp:") && text.contains("bgp: peer ibgp:"),
            "{text}"
        );
        assert!(text.contains("192.168.250.201/32"), "{text}");
    }

    // Metrics and events with MetalLB's names: only the owner announces in layer 2, every
    // node in BGP; the owner has answered the client's ARP requests.
    for host in NODES {
        // The drivers' figures reach the metrics within a refresh period.
        let session_up = "metallb_bgp_session_up{peer=\"192.168.250.1\"} 1";
        let text = wait_for(Duration::from_secs(5), Duration::from_millis(100), || {
            Some(metrics(&lab, host)).filter(|text| text.contains(session_up))
        })
        .unwrap_or_else(|| metrics(&lab, host));
        let series = |protocol: &str| {
            format!(
                "metallb_speaker_announced{{service=\"{namespace}/web\",protocol=\"{protocol}\",node=\"{}\",ip=\"192.168.250.201\"}} 1",
                host.name()
            )
        };
        assert_eq!(
            text.contains(&series("layer2")),
            host.name() == expected,
            "{text}"
        );
        assert!(text.contains(&series("bgp")), "{text}");
        assert!(
            text.contains("metallb_bgp_session_up{peer=\"192.168.250.1\"} 1"),
            "{text}"
        );
        if host.name() == expected {
            let requests = "metallb_layer2_requests_received{ip=\"192.168.250.201\"}";
            assert!(text.contains(requests), "{text}");
        }
    }
    let events = cp
        .kubectl([
            "-n",
            namespace,
            "get",
            "events",
            "--field-selector=reason=nodeAssigned",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .unwrap();
    assert!(
        events.contains(&format!(
            "announcing from node \"{expected}\" with protocol \"layer2\""
        )),
        "{events}"
    );
    for node in ["node1", "node2", "node3"] {
        let bgp = format!("announcing from node \"{node}\" with protocol \"bgp\"");
        assert!(events.contains(&bgp), "{events}");
    }

    // Status objects as MetalLB writes them: one ServiceL2Status, from the owner; a
    // ServiceBGPStatus per node with its peer; a BGPSessionState per node and peer.
    let get = |kind: &str, jsonpath: &str| {
        cp.kubectl([
            "-n",
            namespace,
            "get",
            kind,
            "-o",
            &format!("jsonpath={jsonpath}"),
        ])
        .unwrap()
    };
    let l2_statuses = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        Some(get(
            "servicel2statuses",
            "{range .items[*]}{.status.node}/{.status.serviceName};{end}",
        ))
        .filter(|text| !text.is_empty())
    });
    assert_eq!(l2_statuses, Some(format!("{expected}/web;")));
    let bgp_statuses = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        let text = get(
            "servicebgpstatuses",
            "{range .items[*]}{.status.node}={.status.peers[*]};{end}",
        );
        (text.matches(';').count() == 3).then_some(text)
    });
    let bgp_statuses =
        bgp_statuses.unwrap_or_else(|| panic!("no three ServiceBGPStatus\n{}", logs(&lab)));
    for expected_entry in ["node1=ebgp;", "node2=ebgp;", "node3=ibgp;"] {
        assert!(bgp_statuses.contains(expected_entry), "{bgp_statuses}");
    }
    let sessions = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        let text = get(
            "bgpsessionstates",
            "{range .items[*]}{.metadata.name}={.status.bgpStatus}/{.status.prefixesSent};{end}",
        );
        (text.matches("established/1").count() == 3).then_some(text)
    });
    let sessions = sessions.unwrap_or_else(|| panic!("sessions not established\n{}", logs(&lab)));
    for name in ["node1-ebgp", "node2-ebgp", "node3-ibgp"] {
        assert!(sessions.contains(name), "{sessions}");
    }

    // A broken advertisement (an alias no Community defines) keeps the running plan and says
    // so in the metric; fixing it clears the metric.
    let broken = format!(
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: broken, namespace: {namespace}}}\nspec: {{communities: [no-such-alias]}}\n"
    );
    cp.kubectl_with_input(["apply", "-f", "-"], &broken)
        .unwrap();
    let stale = |value: &str| {
        let line = format!("metallb_k8s_client_config_stale_bool {value}");
        wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            NODES
                .iter()
                .all(|host| metrics(&lab, *host).contains(&line))
                .then_some(())
        })
    };
    assert!(stale("1").is_some(), "not stale\n{}", logs(&lab));
    assert_eq!(
        lab.arp(VIP).unwrap().map(|m| m.to_lowercase()),
        Some(mac_of(&expected))
    );
    assert!(lab.bgp_route("192.168.250.201/32").unwrap().is_some());
    cp.kubectl(["-n", namespace, "delete", "bgpadvertisement", "broken"])
        .unwrap();
    assert!(stale("0").is_some(), "still stale\n{}", logs(&lab));

    // The owner's speaker stops: its Lease goes and the next node by the hash answers.
    let index = NODES.iter().position(|h| h.name() == expected).unwrap();
    let stopped = Instant::now();
    speakers[index] = None;
    let rest: Vec<&str> = ["node1", "node2", "node3"]
        .into_iter()
        .filter(|n| *n != expected)
        .collect();
    let next = winner(&rest);
    let moved = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        lab.arp(VIP)
            .unwrap()
            .filter(|mac| mac.to_lowercase() == mac_of(&next))
    });
    assert!(moved.is_some(), "{next} did not take over\n{}", logs(&lab));
    // The new owner's status replaces the old one's.
    let l2_statuses = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        let text = cp
            .kubectl([
                "-n",
                namespace,
                "get",
                "servicel2statuses",
                "-o",
                "jsonpath={.items[*].status.node}",
            ])
            .unwrap();
        (text == next).then_some(text)
    });
    assert!(
        l2_statuses.is_some(),
        "the ServiceL2Status did not move to {next}"
    );
    println!(
        "{expected} stopped -> {next} answers after {:?}",
        stopped.elapsed()
    );
    drop(speakers);
    drop(proxies);
    for host in NODES {
        let _ = cp.kubectl(["delete", "node", host.name(), "--wait=false"]);
    }
}
