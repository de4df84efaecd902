//! MetalLB's election order: the reference's test vectors (recomputed with `sha256sum` over
//! `printf '%s#%s' node ip`), IPv6 and IPv4-mapped text, preference scores, and the stability
//! properties users rely on.

use std::net::IpAddr;

use metallb_l2::{Candidate, election_hash, owner, rank};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn hex(digest: [u8; 32]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn the_hash_is_sha256_of_node_hash_sign_ip() {
    assert_eq!(
        hex(election_hash("node-a", ip("10.0.0.1"))),
        "dd41591fe8f31f9f38e297fe9892a8eff47892ea017c4167619a62f366fb8149"
    );
    assert_eq!(
        hex(election_hash("node-a", ip("fd00:250::201"))),
        "b118dab30428d22d9a9b4e7907554c9b528e80a5b12ff30e64a8aedabb7a0c5a"
    );
}

#[test]
fn the_reference_vectors_order_as_metallb_does() {
    let cases = [
        (
            "10.0.0.1",
            ["node-a", "node-b", "node-c"],
            ["node-b", "node-a", "node-c"],
        ),
        (
            "10.0.0.2",
            ["node-a", "node-b", "node-c"],
            ["node-b", "node-c", "node-a"],
        ),
        (
            "192.168.250.201",
            ["node1", "node2", "node3"],
            ["node3", "node2", "node1"],
        ),
        (
            "fd00:250::201",
            ["node1", "node2", "node3"],
            ["node2", "node1", "node3"],
        ),
    ];
    for (address, nodes, expected) in cases {
        assert_eq!(rank(ip(address), nodes), expected, "{address}");
        assert_eq!(owner(ip(address), nodes), Some(expected[0]), "{address}");
    }
}

#[test]
fn the_input_order_does_not_matter() {
    let forward = rank(ip("10.0.0.2"), ["node-a", "node-b", "node-c"]);
    let backward = rank(ip("10.0.0.2"), ["node-c", "node-b", "node-a"]);
    assert_eq!(forward, backward);
}

#[test]
fn preference_scores_come_before_the_hash() {
    let nodes = ["edge-a", "edge-b", "worker-a"];
    assert_eq!(
        rank(ip("10.20.30.1"), nodes),
        ["edge-b", "worker-a", "edge-a"]
    );
    let scored = nodes.map(|node| Candidate {
        node,
        preference: if node.starts_with("edge") { 100 } else { 0 },
    });
    assert_eq!(
        rank(ip("10.20.30.1"), scored),
        ["edge-b", "edge-a", "worker-a"]
    );
    assert_eq!(owner(ip("10.20.30.1"), scored), Some("edge-b"));
    let worker_preferred = nodes.map(|node| Candidate {
        node,
        preference: u32::from(node == "worker-a") * 50,
    });
    assert_eq!(owner(ip("10.20.30.1"), worker_preferred), Some("worker-a"));
}

#[test]
fn an_ipv4_mapped_address_hashes_as_go_prints_it() {
    // Go's net.IP.String writes ::ffff:10.0.0.1 as 10.0.0.1.
    assert_eq!(
        election_hash("node-a", ip("::ffff:10.0.0.1")),
        election_hash("node-a", ip("10.0.0.1"))
    );
}

#[test]
fn ipv6_text_is_the_compressed_lowercase_form() {
    assert_eq!(
        election_hash("node-a", ip("FD00:0250:0000:0000:0000:0000:0000:0201")),
        election_hash("node-a", ip("fd00:250::201"))
    );
}

#[test]
fn no_candidate_means_nobody_announces() {
    assert_eq!(owner(ip("10.0.0.1"), Vec::<&str>::new()), None);
    assert!(rank(ip("10.0.0.1"), Vec::<&str>::new()).is_empty());
}

#[test]
fn removing_a_node_that_does_not_own_an_ip_never_moves_it() {
    let nodes = ["node-a", "node-b", "node-c", "node-d", "node-e"];
    for last in 1..=50 {
        let address = ip(&format!("10.0.0.{last}"));
        let winner = owner(address, nodes).unwrap();
        for gone in nodes.iter().filter(|node| **node != winner) {
            let rest = nodes.iter().copied().filter(|node| node != gone);
            assert_eq!(
                owner(address, rest),
                Some(winner),
                "{address} without {gone}"
            );
        }
    }
}

#[test]
fn adding_a_node_moves_an_ip_only_to_that_node() {
    let nodes = ["node-a", "node-b", "node-c"];
    let mut moved = 0;
    for last in 1..=50 {
        let address = ip(&format!("10.0.0.{last}"));
        let before = owner(address, nodes).unwrap();
        let after = owner(address, nodes.iter().copied().chain(["node-d"])).unwrap();
        if after != before {
            assert_eq!(after, "node-d", "{address}");
            moved += 1;
        }
    }
    // Roughly a quarter of the IPs should go to the new node.
    assert!((5..=25).contains(&moved), "{moved} of 50 moved");
}

#[test]
fn the_owner_is_the_first_of_the_ranking() {
    let nodes = ["worker-0", "worker-1", "worker-2", "worker-3"];
    for last in 0..=255 {
        let address = ip(&format!("fd00::{last:x}"));
        assert_eq!(owner(address, nodes), rank(address, nodes).first().copied());
    }
}
