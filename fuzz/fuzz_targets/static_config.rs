//! Any text as the speaker's static configuration: parsing and resolving never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use metallb_speaker::config::{parse, resolve};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse(text).and_then(|config| resolve(&config));
    }
});
