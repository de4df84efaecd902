//! Three lab nodes each run `metallb-speaker` as the DaemonSet starts it (no subcommand),
//! against the real API server, with Node objects, a pool, advertisements, two BGPPeers (eBGP
//! for node1 and node2, iBGP for node3, chosen by nodeSelectors), a LoadBalancer Service and
//! its EndpointSlice. The client's ARP request is answered by exactly the node MetalLB's hash
//! picks (ndisc6 too, for an IPv6 Service); FRR gets the route from every node with the
//! advertisement's community; a speaker that stops leaves the candidates and the next node
//! answers.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::cluster::{ClusterLab, VIP, assign_ingress, lab_peers, lab_services, winner_of};
use common::wait_for;
use metallb_testenv::{ControlPlane, test_name};

/// The node MetalLB's election picks for the VIP among `alive`, by the planner (whose hash
/// order is checked against hand-computed SHA-256 values in its own tests).
fn winner(alive: &[&str]) -> String {
    winner_of(IpAddr::V4(VIP), alive)
}

#[test]
fn three_speakers_on_the_cluster_elect_one_layer2_owner_and_all_send_the_route() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let namespace = ns.name();
    let mut cluster = ClusterLab::up(cp, "");
    cp.kubectl_with_input(
        ["apply", "-f", "-"],
        &format!("{}---\n{}", lab_services(namespace), lab_peers(namespace)),
    )
    .unwrap();
    assign_ingress(cp, namespace, "web", IpAddr::V4(VIP));
    assign_ingress(cp, namespace, "web6", "fd00:250::201".parse().unwrap());
    let started = Instant::now();
    cluster.start_all(namespace, &[]);

    let expected = winner(&["node1", "node2", "node3"]);
    let index_of = |node: &str| cluster.names.iter().position(|n| n == node).unwrap();
    cluster.wait_owner(VIP, Some(&expected), Duration::from_secs(40));
    println!(
        "first ARP answer {:?} after the speakers started",
        started.elapsed()
    );

    // Every node sends the /32 to FRR (node3 over iBGP), with the community.
    let all = wait_for(Duration::from_secs(40), Duration::from_millis(200), || {
        (cluster.route_sources("192.168.250.201/32").len() == 3).then_some(())
    });
    assert!(all.is_some(), "FRR lacks three paths\n{}", cluster.logs());
    let route = cluster
        .lab
        .bgp_route("192.168.250.201/32")
        .unwrap()
        .unwrap();
    for path in route["paths"].as_array().unwrap() {
        let community = path["community"]["string"].as_str().unwrap_or_default();
        assert!(community.contains("64500:100"), "{path}");
    }

    // IPv6: ndisc6 from the client gets the hash winner's MAC, and FRR the /128 from every
    // node over the IPv4 sessions.
    let vip6: std::net::Ipv6Addr = "fd00:250::201".parse().unwrap();
    let expected6 = winner_of(IpAddr::V6(vip6), &["node1", "node2", "node3"]);
    let ndp = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        let mac = cluster.lab.ndp(vip6).unwrap()?;
        cluster.node_of_mac(&mac)
    });
    assert_eq!(ndp, Some(expected6), "{}", cluster.logs());
    let all6 = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        (cluster.route_sources("fd00:250::201/128").len() == 3).then_some(())
    });
    assert!(
        all6.is_some(),
        "FRR lacks three IPv6 paths\n{}",
        cluster.logs()
    );

    // `show service` explains each node's part, from the planner's reasons.
    let service = format!("{namespace}/web");
    for (index, node) in cluster.names.iter().enumerate() {
        let text = cluster.show_service(index, &service);
        println!("{text}");
        if *node == expected {
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
    for (index, node) in cluster.names.iter().enumerate() {
        // The drivers' figures reach the metrics within a refresh period.
        let session_up = "metallb_bgp_session_up{peer=\"192.168.250.1\"} 1";
        let text = wait_for(Duration::from_secs(5), Duration::from_millis(100), || {
            Some(cluster.metrics(index)).filter(|text| text.contains(session_up))
        })
        .unwrap_or_else(|| cluster.metrics(index));
        let series = |protocol: &str| {
            format!(
                "metallb_speaker_announced{{service=\"{namespace}/web\",protocol=\"{protocol}\",node=\"{node}\",ip=\"192.168.250.201\"}} 1"
            )
        };
        assert_eq!(
            text.contains(&series("layer2")),
            *node == expected,
            "{text}"
        );
        assert!(text.contains(&series("bgp")), "{text}");
        assert!(text.contains(session_up), "{text}");
        if *node == expected {
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
    let l2_event = format!("announcing from node \"{expected}\" with protocol \"layer2\"");
    assert!(events.contains(&l2_event), "{events}");
    for node in &cluster.names {
        let bgp = format!("announcing from node \"{node}\" with protocol \"bgp\"");
        assert!(events.contains(&bgp), "{events}");
    }

    // Status objects as MetalLB writes them: one ServiceL2Status, from the owner; a
    // ServiceBGPStatus per node with its peer; a BGPSessionState per node and peer.
    let get = |kind: &str, jsonpath: &str| {
        let jsonpath = format!("jsonpath={jsonpath}");
        let args = [
            "-n",
            namespace,
            "get",
            kind,
            "-l",
            "metallb.io/service-name=web",
            "-o",
            &jsonpath,
        ];
        cp.kubectl(args).unwrap()
    };
    // Created first, then its status is written: wait for the whole object.
    let jsonpath = "{range .items[*]}{.status.node}/{.status.serviceName};{end}";
    let l2_statuses = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        Some(get("servicel2statuses", jsonpath))
            .filter(|text| text.ends_with("/web;") && !text.starts_with('/'))
    });
    assert_eq!(l2_statuses, Some(format!("{expected}/web;")));
    let bgp_statuses = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        let text = get(
            "servicebgpstatuses",
            "{range .items[*]}{.status.node}={.status.peers[*]};{end}",
        );
        let entries = ["node1=ebgp;", "node2=ebgp;", "node3=ibgp;"];
        (text.matches(';').count() == 3 && entries.iter().all(|e| text.contains(e))).then_some(text)
    });
    assert!(
        bgp_statuses.is_some(),
        "no ServiceBGPStatus per node with its peer\n{}",
        cluster.logs()
    );
    let sessions = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        let jsonpath = "jsonpath={range .items[*]}{.metadata.name}={.status.bgpStatus}/{.status.prefixesSent};{end}";
        let text = cp
            .kubectl(["-n", namespace, "get", "bgpsessionstates", "-o", jsonpath])
            .unwrap();
        (text.matches("established/2").count() == 3).then_some(text)
    });
    let sessions =
        sessions.unwrap_or_else(|| panic!("sessions not established\n{}", cluster.logs()));
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
            (0..3)
                .all(|i| cluster.metrics(i).contains(&line))
                .then_some(())
        })
    };
    assert!(stale("1").is_some(), "not stale\n{}", cluster.logs());
    assert_eq!(cluster.arp_owner(VIP), Some(expected.clone()));
    assert_eq!(cluster.route_sources("192.168.250.201/32").len(), 3);
    cp.kubectl(["-n", namespace, "delete", "bgpadvertisement", "broken"])
        .unwrap();
    assert!(stale("0").is_some(), "still stale\n{}", cluster.logs());

    // The owner's speaker stops: its Lease goes and the next node by the hash answers, and
    // the ServiceL2Status moves with it.
    let stopped = Instant::now();
    cluster.stop(index_of(&expected));
    let rest: Vec<&str> = ["node1", "node2", "node3"]
        .into_iter()
        .filter(|n| *n != expected)
        .collect();
    let next = winner(&rest);
    cluster.wait_owner(VIP, Some(&next), Duration::from_secs(15));
    println!(
        "{expected} stopped -> {next} answers after {:?}",
        stopped.elapsed()
    );
    let moved = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        (get("servicel2statuses", "{.items[*].status.node}") == next).then_some(())
    });
    assert!(
        moved.is_some(),
        "the ServiceL2Status did not move to {next}"
    );
    drop(cluster);
    for node in ["node1", "node2", "node3"] {
        let _ = cp.kubectl(["delete", "node", node, "--wait=false"]);
    }
}
