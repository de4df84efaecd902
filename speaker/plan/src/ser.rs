//! Serde helpers for the `show` output of types from the protocol cores, which do not
//! implement `Serialize` themselves.

use std::{collections::BTreeSet, fmt::Display};

use metallb_l2::AllowedInterfaces;
use serde::Serializer;

/// Every interface as `"all"`, otherwise the list of names.
pub(crate) fn interfaces<S: Serializer>(
    interfaces: &AllowedInterfaces,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match interfaces {
        AllowedInterfaces::All => serializer.serialize_str("all"),
        AllowedInterfaces::Only(names) => serializer.collect_seq(names),
    }
}

/// A set as the list of its items' text (`65535:0`, `1:2:3`).
pub(crate) fn display_all<S: Serializer, T: Display>(
    items: &BTreeSet<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(items.iter().map(ToString::to_string))
}
