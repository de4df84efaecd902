//! Any bytes: parsing a BGP message never panics, and whatever parses cleanly (not
//! treat-as-withdraw, whose malformed attribute is dropped) survives encode and parse unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use metallb_bgp::{AsWidth, Message};

fuzz_target!(|data: &[u8]| {
    for width in [AsWidth::Two, AsWidth::Four] {
        if let Ok(message) = Message::parse(data, width) {
            if matches!(&message, Message::Update(update) if update.treat_as_withdraw.is_some()) {
                continue;
            }
            let bytes = message.encode(width);
            assert_eq!(Message::parse(&bytes, width), Ok(message));
        }
    }
});
