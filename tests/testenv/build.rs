//! Computes a build id from the crate's sources.
//!
//! The library finds the `metallb-testenv` binary next to the test executable when another
//! crate's tests run; comparing this id with the binary's `build-id` output tells whether that
//! binary was built from the same sources, so a stale one is never used as the supervisor.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

fn hash_dir(dir: &Path, hasher: &mut DefaultHasher) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("src/ entry is readable").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            hash_dir(&path, hasher);
        } else {
            path.file_name().hash(hasher);
            std::fs::read(&path)
                .expect("source file is readable")
                .hash(hasher);
        }
    }
}

fn main() {
    println!("cargo::rerun-if-changed=src");
    let mut hasher = DefaultHasher::new();
    hash_dir(Path::new("src"), &mut hasher);
    println!(
        "cargo::rustc-env=METALLB_TESTENV_BUILD_ID={:016x}",
        hasher.finish()
    );
}
