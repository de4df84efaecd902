//! Per-test namespaces with names derived from the test name.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// Longest namespace name Kubernetes accepts (an RFC 1123 label).
const MAX_NAME: usize = 63;

/// A namespace created for one test. It is not deleted afterwards: without
/// kube-controller-manager a deleted namespace stays `Terminating`, and the whole control
/// plane is thrown away at the end of the test binary anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestNamespace {
    name: String,
}

impl TestNamespace {
    pub(crate) fn new(name: String) -> TestNamespace {
        TestNamespace { name }
    }

    /// The namespace name, for `-n` or `Api::namespaced`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for TestNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl AsRef<str> for TestNamespace {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

/// A valid, unique-in-this-process namespace name for `test_name`.
///
/// `test_name` may be a full path such as `my_crate::tests::applies_samples` (what
/// [`test_name!`](crate::test_name) returns); the last segment is used, turned into a DNS
/// label and followed by a counter, e.g. `applies-samples-3`.
pub(crate) fn unique_name(test_name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let last = test_name
        .rsplit("::")
        .find(|s| !s.is_empty() && !s.starts_with('{'))
        .unwrap_or("test");
    let mut base: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let suffix = format!("-{n}");
    base.truncate(MAX_NAME - suffix.len());
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "test" } else { base };
    format!("{base}{suffix}")
}

/// The path of the enclosing function, e.g. `my_crate::tests::applies_samples`.
///
/// Use it in a test to name things after the test:
/// `control_plane.namespace(metallb_testenv::test_name!())`.
#[macro_export]
macro_rules! test_name {
    () => {{
        fn here() {}
        fn name_of<T>(_: T) -> &'static str {
            ::std::any::type_name::<T>()
        }
        name_of(here).trim_end_matches("::here")
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_taken_from_the_last_path_segment() {
        let name = unique_name("my_crate::tests::Applies_Samples");
        assert!(name.starts_with("applies-samples-"), "{name}");
    }

    #[test]
    fn closure_segments_of_async_tests_are_skipped() {
        let name = unique_name("my_crate::reads_back::{{closure}}");
        assert!(name.starts_with("reads-back-"), "{name}");
    }

    #[test]
    fn long_names_are_cut_to_63_characters() {
        let name = unique_name(&"x".repeat(100));
        assert!(name.len() <= MAX_NAME, "{name}");
    }

    #[test]
    fn test_name_macro_names_the_enclosing_function() {
        assert!(test_name!().ends_with("::test_name_macro_names_the_enclosing_function"));
    }
}
