//! [`SmallMap`]: an ordered map for the few entries every service's plan holds (its peers, its
//! prefixes per peer). A `BTreeMap` allocates a node for eleven entries even for one; at 10k
//! services those nodes were a fifth of the speaker's heap. A sorted `Vec` holds exactly what it
//! has and keeps the same order, lookups and serialization.

use std::borrow::Borrow;
use std::ops::Index;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// An ordered map backed by a sorted vector; for maps of a handful of entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmallMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    fn position<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.position(key).ok().map(|i| &self.entries[i].1)
    }

    /// Whether `key` has a value.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.position(key).is_ok()
    }

    /// Sets the value of `key`, returning the one it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }
}

impl<K, V> SmallMap<K, V> {
    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Collects in key order; of equal keys the last value stays, as a `BTreeMap` collects.
impl<K: Ord, V> FromIterator<(K, V)> for SmallMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut entries: Vec<(K, V)> = iter.into_iter().collect();
        // Stable, so equal keys keep their order and the last of each run is the last given.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut deduplicated: Vec<(K, V)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match deduplicated.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => deduplicated.push(entry),
            }
        }
        deduplicated.shrink_to_fit();
        SmallMap {
            entries: deduplicated,
        }
    }
}

impl<'a, K, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<K, V> IntoIterator for SmallMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K, V, Q> Index<&Q> for SmallMap<K, V>
where
    K: Ord + Borrow<Q>,
    Q: Ord + ?Sized,
{
    type Output = V;

    /// Panics when `key` is missing, as a `BTreeMap` does.
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry for the key in SmallMap")
    }
}

/// Serializes as a map, like a `BTreeMap`.
impl<K: Serialize, V: Serialize> Serialize for SmallMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn it_orders_looks_up_and_collects_like_a_btreemap() {
        let pairs = [("c", 1), ("a", 2), ("b", 3), ("a", 4)];
        let small: SmallMap<&str, i32> = pairs.into_iter().collect();
        let btree: BTreeMap<&str, i32> = pairs.into_iter().collect();
        assert_eq!(
            small.iter().collect::<Vec<_>>(),
            btree.iter().collect::<Vec<_>>()
        );
        assert_eq!(small.len(), 3);
        assert_eq!(small.get("a"), Some(&4));
        assert_eq!(small["b"], 3);
        assert!(!small.contains_key("d"));

        let mut grown = SmallMap::default();
        for (k, v) in pairs {
            grown.insert(k, v);
        }
        assert_eq!(grown, small);
        assert_eq!(grown.insert("b", 9), Some(3));
        assert_eq!(grown.keys().copied().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn it_serializes_as_the_map_it_stands_for() {
        let small: SmallMap<String, u8> = [("y".to_owned(), 2), ("x".to_owned(), 1)]
            .into_iter()
            .collect();
        let btree: BTreeMap<String, u8> = small.clone().into_iter().collect();
        assert_eq!(
            serde_json::to_string(&small).unwrap(),
            serde_json::to_string(&btree).unwrap()
        );
    }
}
