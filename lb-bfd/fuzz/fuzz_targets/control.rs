//! Fuzzes the control packet codec: the view and `ControlRepr::parse` must never panic, and
//! whatever parses must re-emit to the same 24 bytes (when its length field says 24).
//!
//! Run with `cargo fuzz run -s none control` from `lb-bfd/fuzz/` (stable toolchain).

#![no_main]

use lb_bfd::wire::{ControlPacket, ControlRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let unchecked = ControlPacket::new_unchecked(data);
    let _ = (
        unchecked.version(),
        unchecked.diagnostic(),
        unchecked.state(),
        unchecked.poll(),
        unchecked.final_(),
        unchecked.detect_mult(),
        unchecked.length(),
        unchecked.my_discriminator(),
        unchecked.your_discriminator(),
        unchecked.desired_min_tx(),
        unchecked.required_min_rx(),
        unchecked.required_min_echo_rx(),
    );
    let Ok(repr) = ControlRepr::parse_bytes(data) else {
        return;
    };
    let out = repr.to_bytes();
    if data.get(3) == Some(&24) {
        assert_eq!(&out[..], &data[..24]);
    }
    assert_eq!(ControlRepr::parse_bytes(&out), Ok(repr));
});
