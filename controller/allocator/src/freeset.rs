//! The free addresses of one CIDR, as an ordered set of intervals.
//!
//! Every operation is a few `BTreeMap` look-ups, so the cost is logarithmic in the number of
//! intervals, never linear in the size of the CIDR. Addresses are integers of their family
//! (see `addr::to_u128`).
//!
//! With `skip_buggy`, IPv4 addresses ending in `.0` or `.255` are never handed out. Instead
//! of storing hundreds of thousands of tiny intervals around them, an interval may span them:
//! "free" means "every usable address inside". Two invariants keep look-ups short:
//! every interval starts on a usable address, and two intervals are separated by at least one
//! usable address that is not free (otherwise they are merged).

use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub(crate) struct FreeSet {
    /// Interval start -> inclusive end.
    runs: BTreeMap<u128, u128>,
    skip_buggy: bool,
}

impl FreeSet {
    /// All usable addresses of `first..=last` free.
    pub(crate) fn new(first: u128, last: u128, skip_buggy: bool) -> Self {
        let mut set = Self {
            runs: BTreeMap::new(),
            skip_buggy,
        };
        set.insert_run(first, last);
        set
    }

    /// The lowest free address.
    pub(crate) fn lowest(&self) -> Option<u128> {
        self.runs.first_key_value().map(|(start, _)| *start)
    }

    /// Whether `addr` is free (and usable).
    #[cfg(test)]
    pub(crate) fn contains(&self, addr: u128) -> bool {
        self.usable(addr) && self.run_holding(addr).is_some()
    }

    /// Marks `addr` used; false when it was not free.
    pub(crate) fn take(&mut self, addr: u128) -> bool {
        if !self.usable(addr) {
            return false;
        }
        let Some((start, end)) = self.run_holding(addr) else {
            return false;
        };
        self.runs.remove(&start);
        if addr > start {
            self.insert_run(start, addr - 1);
        }
        if addr < end {
            self.insert_run(addr + 1, end);
        }
        true
    }

    /// Marks `addr` free again. The caller guarantees it is usable and was taken.
    pub(crate) fn give(&mut self, addr: u128) {
        let (mut start, mut end) = (addr, addr);
        // Merge with a neighbour when only unusable addresses lie between it and `addr`.
        if let Some((&a, &b)) = self.runs.range(..addr).next_back()
            && self.next_usable(b + 1) == addr
        {
            self.runs.remove(&a);
            start = a;
        }
        // `checked_add`: the last IPv6 address has no successor.
        if let Some(after) = addr.checked_add(1)
            && let Some((&c, &d)) = self.runs.range(after..).next()
            && self.next_usable(after) == c
        {
            self.runs.remove(&c);
            end = d;
        }
        self.runs.insert(start, end);
    }

    fn run_holding(&self, addr: u128) -> Option<(u128, u128)> {
        let (&start, &end) = self.runs.range(..=addr).next_back()?;
        (end >= addr).then_some((start, end))
    }

    /// Inserts `first..=last` trimmed to start on a usable address; nothing if none is usable.
    fn insert_run(&mut self, first: u128, last: u128) {
        let start = self.next_usable(first);
        if start <= last {
            self.runs.insert(start, last);
        }
    }

    fn usable(&self, addr: u128) -> bool {
        self.next_usable(addr) == addr
    }

    /// The lowest usable address at or after `addr`.
    fn next_usable(&self, addr: u128) -> u128 {
        if !self.skip_buggy {
            return addr;
        }
        match addr & 0xff {
            0 => addr + 1,
            255 => addr + 2,
            _ => addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Free usable addresses, by brute force over `first..=last`.
    fn listed(set: &FreeSet, first: u128, last: u128) -> Vec<u128> {
        (first..=last).filter(|a| set.contains(*a)).collect()
    }

    #[test]
    fn the_lowest_free_address_is_taken_first_and_returns_when_given_back() {
        let mut set = FreeSet::new(10, 13, false);
        assert_eq!(set.lowest(), Some(10));
        assert!(set.take(10));
        assert!(set.take(12));
        assert_eq!(listed(&set, 10, 13), [11, 13]);
        assert!(!set.take(12));
        set.give(10);
        assert_eq!(set.lowest(), Some(10));
        set.give(12);
        assert_eq!(set.runs.len(), 1);
        assert_eq!(listed(&set, 10, 13), [10, 11, 12, 13]);
    }

    #[test]
    fn buggy_addresses_are_never_free_nor_taken() {
        // 10.0.0.254 - 10.0.1.1 as integers.
        let (first, last) = (0x0a00_00fe, 0x0a00_0101);
        let mut set = FreeSet::new(first, last, true);
        assert_eq!(listed(&set, first, last), [0x0a00_00fe, 0x0a00_0101]);
        assert!(!set.take(0x0a00_00ff));
        assert!(!set.take(0x0a00_0100));
        assert!(set.take(0x0a00_00fe));
        assert_eq!(set.lowest(), Some(0x0a00_0101));
        assert!(set.take(0x0a00_0101));
        assert_eq!(set.lowest(), None);
        set.give(0x0a00_0101);
        set.give(0x0a00_00fe);
        assert_eq!(set.runs.len(), 1, "runs merge across the buggy gap");
    }

    #[test]
    fn a_range_of_only_buggy_addresses_has_nothing_free() {
        let set = FreeSet::new(0x0a00_00ff, 0x0a00_0100, true);
        assert_eq!(set.lowest(), None);
    }

    #[test]
    fn random_take_and_give_match_a_brute_force_model() {
        let (first, last) = (0x0a00_00f0, 0x0a00_0210);
        let mut set = FreeSet::new(first, last, true);
        let usable = |a: u128| !matches!(a & 0xff, 0 | 255);
        let mut model: Vec<u128> = (first..=last).filter(|a| usable(*a)).collect();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..4000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let addr = first + u128::from(seed) % (last - first + 1);
            if !usable(addr) {
                assert!(!set.take(addr));
            } else if let Some(pos) = model.iter().position(|a| *a == addr) {
                assert!(set.take(addr));
                model.remove(pos);
            } else {
                set.give(addr);
                model.push(addr);
                model.sort_unstable();
            }
            assert_eq!(set.lowest(), model.first().copied());
            for pair in set.runs.iter().zip(set.runs.iter().skip(1)) {
                let ((_, b), (c, _)) = pair;
                assert!(set.next_usable(b + 1) < *c, "adjacent runs are merged");
            }
        }
        assert_eq!(listed(&set, first, last), model);
    }
}
