//! Which node announces an IP in layer 2 mode: MetalLB's ordering (the reference's B.2,
//! step 9), which every speaker computes alike from the same candidates.
//!
//! Candidates sort by preference score, highest first, then by the SHA-256 digest of the bytes
//! `<node name>#<ip>`, compared bytewise, lowest first; the first one owns the IP. `<ip>` is the
//! text of the Service's first ingress IP as Go's `net.IP.String` writes it, so both families of
//! a dual-stack Service land on one node and Services sharing an IP land together. Filtering
//! the candidates (advertisements, node conditions, the exclude label, endpoints) is the
//! speaker's job; this module only orders them.

use std::{cmp::Reverse, net::IpAddr};

use sha2::{Digest, Sha256};

/// A node that may announce an IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The Node's name.
    pub node: &'a str,
    /// The sum of the `preferredNodeSelectors` weights that match the node; 0 without any.
    pub preference: u32,
}

impl<'a> From<&'a str> for Candidate<'a> {
    /// A candidate without preference, as every node is before preferred node selectors.
    fn from(node: &'a str) -> Self {
        Self {
            node,
            preference: 0,
        }
    }
}

/// SHA-256 of `<node>#<ip>`, the hash part of a candidate's sort key.
pub fn election_hash(node: &str, ip: IpAddr) -> [u8; 32] {
    // Go prints an IPv4-mapped IPv6 address in dotted IPv4 form; `to_canonical` gives the same
    // text. Otherwise Rust's IPv6 text is Go's: RFC 5952, lowercase, longest zero run as `::`.
    let ip = ip.to_canonical().to_string();
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    hasher.update(b"#");
    hasher.update(ip.as_bytes());
    hasher.finalize().into()
}

/// The candidates' node names in election order for `ip`: the owner first, then who takes
/// over if it leaves.
pub fn rank<'a, I>(ip: IpAddr, candidates: I) -> Vec<&'a str>
where
    I: IntoIterator,
    I::Item: Into<Candidate<'a>>,
{
    let mut keyed: Vec<_> = candidates
        .into_iter()
        .map(|candidate| {
            let candidate = candidate.into();
            (sort_key(candidate, ip), candidate.node)
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, node)| node).collect()
}

/// The node that announces `ip`: the first of [`rank`], found without sorting. `None` when
/// there is no candidate, and then nobody announces.
pub fn owner<'a, I>(ip: IpAddr, candidates: I) -> Option<&'a str>
where
    I: IntoIterator,
    I::Item: Into<Candidate<'a>>,
{
    candidates
        .into_iter()
        .map(Into::into)
        .min_by_key(|candidate| sort_key(*candidate, ip))
        .map(|candidate| candidate.node)
}

fn sort_key(candidate: Candidate<'_>, ip: IpAddr) -> (Reverse<u32>, [u8; 32]) {
    (
        Reverse(candidate.preference),
        election_hash(candidate.node, ip),
    )
}
