//! The one validation module: the admission webhooks, the controller and the speaker all call
//! these functions, so they never disagree about what a valid configuration is.
//!
//! Each function takes the object under review and a [`Snapshot`] of the existing objects and
//! returns every problem found, or the first one where the reference stops at the first.
//! Texts keep the key phrases of MetalLB and its operator and always name the object and the
//! field.
//!
//! Ranges, lengths and patterns of single fields are declared once, as `#[validate(..)]`
//! attributes on the types: schemars writes them into the CRD schema and each function here
//! checks them with `Validate::validate()` (see `fields`). Rules about several fields or
//! objects (overlaps, uniqueness, references, selectors) are written here.

pub mod addresses;
mod communities;
mod fields;
mod metallb;
mod peers;
mod pools;
pub mod selector;

use std::{collections::BTreeMap, fmt};

pub use communities::{
    Community, parse_community, validate_bgp_advertisement, validate_community,
    validate_l2_advertisement,
};
pub use metallb::validate_metallb;
pub use peers::{
    validate_bfd_profile, validate_bfd_profile_delete, validate_bgp_peer_v1beta1,
    validate_bgp_peer_v1beta2,
};
pub use pools::{validate_address_pool, validate_ip_address_pool};

use crate::{
    addresspool::v1beta1::AddressPool,
    advertisement::{BGPAdvertisement, L2Advertisement},
    bfdprofile::BFDProfile,
    bgppeer::v1beta2::BGPPeer,
    community::Community as CommunityObject,
    ipaddresspool::IPAddressPool,
};

/// The admission operation under review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A change to an existing object (the old version is in the snapshot under its name).
    Update,
    /// Removal of an object.
    Delete,
}

/// The existing objects a rule compares against, from the MetalLB namespace.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The MetalLB namespace; current-era kinds must be created there.
    pub namespace: String,
    /// 4.10 address pools (v1alpha1 objects are read as v1beta1).
    pub address_pools: Vec<AddressPool>,
    /// Current address pools.
    pub ip_address_pools: Vec<IPAddressPool>,
    /// BGP peers, in the stored v1beta2 form.
    pub bgp_peers: Vec<BGPPeer>,
    /// BFD profiles.
    pub bfd_profiles: Vec<BFDProfile>,
    /// BGP advertisements.
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    /// L2 advertisements.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// Community alias objects.
    pub communities: Vec<CommunityObject>,
    /// Labels of every node, by node name; empty when nodes are unknown.
    pub nodes: BTreeMap<String, selector::Labels>,
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// JSON path of the field, e.g. `spec.holdTime`.
    pub field: String,
    /// What is wrong, with the reference's key phrase.
    pub text: String,
}

/// Why an object is refused: the object and every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Denial {
    /// Lowercase kind, e.g. `bgppeer`.
    pub kind: String,
    /// Name of the object.
    pub name: String,
    /// At least one problem.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: ", self.kind, self.name)?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.field, p.text)?;
        }
        Ok(())
    }
}

/// Collects problems for one object.
#[derive(Debug)]
pub(crate) struct Report {
    kind: &'static str,
    name: String,
    problems: Vec<Problem>,
}

impl Report {
    pub(crate) fn new(kind: &'static str, name: Option<&str>) -> Self {
        Report {
            kind,
            name: name.unwrap_or_default().to_owned(),
            problems: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, field: impl Into<String>, text: impl Into<String>) {
        self.problems.push(Problem {
            field: field.into(),
            text: text.into(),
        });
    }

    /// Whether a problem was already found with this field.
    pub(crate) fn has_problem(&self, field: &str) -> bool {
        self.problems.iter().any(|p| p.field == field)
    }

    /// Adds every broken field rule declared on `value` (a spec), with paths under `prefix`.
    pub(crate) fn check_fields(&mut self, prefix: &str, value: &impl validator::Validate) {
        self.problems.extend(fields::problems(prefix, value));
    }

    pub(crate) fn finish(self) -> Result<(), Denial> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Denial {
                kind: self.kind.to_owned(),
                name: self.name,
                problems: self.problems,
            })
        }
    }
}

/// The CREATE-only rule of the current-era kinds: they live in the MetalLB namespace.
pub(crate) fn check_namespace(
    report: &mut Report,
    op: Operation,
    namespace: Option<&str>,
    snapshot: &Snapshot,
) {
    if op == Operation::Create
        && !snapshot.namespace.is_empty()
        && namespace != Some(snapshot.namespace.as_str())
    {
        report.add(
            "metadata.namespace",
            format!(
                "resource must be created in {} namespace",
                snapshot.namespace
            ),
        );
    }
}
