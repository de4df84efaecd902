//! The ring: node IDs and who sends heartbeats to whom.
//!
//! Nodes are ordered by their ID, the first 8 bytes of SHA-256 of the node name, so every
//! speaker orders them alike without coordination. On a ring of `n` nodes, a node sends to
//! its successors at distances 1, 2, 4, ... below `n`, and so hears from (monitors) its
//! predecessors at the same distances: `ceil(log2 n)` of each. Every node is monitored by as
//! many nodes as it sends to, and news flooded along these links reaches every node in about
//! `log2 n` hops (the links form a Chord-like graph of diameter `ceil(log2 n)`).

use sha2::{Digest, Sha256};

/// The ID of a node: the first 8 bytes of SHA-256 of its name, big-endian.
pub fn node_id(name: &str) -> u64 {
    let digest = Sha256::digest(name.as_bytes());
    let mut id = [0; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

/// The distances 1, 2, 4, ... below `n`.
fn distances(n: usize) -> impl Iterator<Item = usize> {
    std::iter::successors(Some(1_usize), |d| d.checked_mul(2)).take_while(move |&d| d < n)
}

/// The nodes `me` sends heartbeats to, on the sorted `ring` that contains `me`.
pub fn targets(ring: &[u64], me: u64) -> Vec<u64> {
    let Ok(at) = ring.binary_search(&me) else {
        return Vec::new();
    };
    let n = ring.len();
    distances(n).map(|d| ring[(at + d) % n]).collect()
}

/// The nodes `me` expects heartbeats from, on the sorted `ring` that contains `me`.
pub fn monitored(ring: &[u64], me: u64) -> Vec<u64> {
    let Ok(at) = ring.binary_search(&me) else {
        return Vec::new();
    };
    let n = ring.len();
    distances(n).map(|d| ring[(at + n - d) % n]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_sends_to_log2_successors_and_hears_from_as_many_predecessors() {
        let ring: Vec<u64> = (0..10).collect();
        assert_eq!(targets(&ring, 3), vec![4, 5, 7, 1]);
        assert_eq!(monitored(&ring, 3), vec![2, 1, 9, 5]);
        let thousand: Vec<u64> = (0..1000).collect();
        assert_eq!(targets(&thousand, 0).len(), 10);
    }

    #[test]
    fn every_node_is_monitored_by_exactly_the_nodes_that_send_to_it() {
        let ring: Vec<u64> = (0..37).map(|i| i * 7).collect();
        for &node in &ring {
            let mut senders: Vec<u64> = ring
                .iter()
                .copied()
                .filter(|&other| targets(&ring, other).contains(&node))
                .collect();
            let mut expected = monitored(&ring, node);
            senders.sort_unstable();
            expected.sort_unstable();
            assert_eq!(senders, expected, "node {node}");
        }
    }

    #[test]
    fn a_lone_node_sends_to_nobody_and_a_pair_to_each_other() {
        assert!(targets(&[5], 5).is_empty());
        assert_eq!(targets(&[5, 9], 5), vec![9]);
        assert_eq!(monitored(&[5, 9], 5), vec![9]);
        assert!(targets(&[5, 9], 7).is_empty());
    }

    #[test]
    fn ids_are_stable_and_spread() {
        assert_eq!(node_id("node1"), node_id("node1"));
        assert_ne!(node_id("node1"), node_id("node2"));
    }
}
