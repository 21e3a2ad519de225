//! Fuzzes the Neighbor Discovery option iterator: it must never panic, must end, must yield
//! at most one error and nothing after it, and every option it yields takes at least 8 bytes.
//!
//! Run with `cargo fuzz run -s none ndp_options` from `lb-l2/fuzz/` (stable toolchain).

#![no_main]

use lb_l2::wire::{NdpOption, NdpOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut options = NdpOptions::new(data);
    let mut consumed = 0usize;
    let mut items = 0usize;
    while let Some(item) = options.next() {
        items += 1;
        assert!(
            items <= data.len() / 8 + 1,
            "more options than the bytes hold"
        );
        match item {
            Ok(NdpOption::SourceLinkLayerAddr(_) | NdpOption::TargetLinkLayerAddr(_)) => {
                consumed += 8;
            }
            Ok(NdpOption::Other { data: option, .. }) => {
                // The option's bytes after type and length: a multiple of 8, minus 2.
                assert_eq!((option.len() + 2) % 8, 0);
                consumed += option.len() + 2;
            }
            Err(_) => {
                assert!(options.next().is_none(), "an item after an error");
                return;
            }
        }
        assert!(consumed <= data.len());
    }
    // Without an error the options cover the input exactly.
    assert_eq!(consumed, data.len());
});
