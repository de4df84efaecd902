//! Arbitrary bytes as an AdmissionReview on every webhook path: a verdict or a 400-style
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metallb_webhooks::{StaticSnapshot, Target, review};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let target = Target::ALL[usize::from(selector) % Target::ALL.len()];
    let _ = review(target, body, &StaticSnapshot::default());
});
