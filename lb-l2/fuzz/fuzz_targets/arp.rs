//! Fuzzes ARP: `ArpPacket::new_checked` and `ArpRepr::parse` must never panic, and whatever
//! parses must re-emit to the same 28 bytes.
//!
//! Run with `cargo fuzz run -s none arp` from `lb-l2/fuzz/` (stable toolchain).

#![no_main]

use lb_l2::wire::{ArpPacket, ArpRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let unchecked = ArpPacket::new_unchecked(data);
    let _ = (
        unchecked.hardware_type(),
        unchecked.protocol_type(),
        unchecked.hardware_len(),
        unchecked.protocol_len(),
        unchecked.operation(),
        unchecked.source_hardware_addr(),
        unchecked.source_protocol_addr(),
        unchecked.target_hardware_addr(),
        unchecked.target_protocol_addr(),
    );
    let unchecked_result = ArpRepr::parse(&unchecked);
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return;
    };
    let Ok(repr) = ArpRepr::parse(&packet) else {
        return;
    };
    // Checking the view first changes nothing for a packet that parses.
    assert_eq!(unchecked_result, Ok(repr));
    let mut buf = [0u8; 28];
    repr.emit(&mut buf).expect("28 bytes hold an ARP packet");
    assert_eq!(&buf[..], &data[..28]);
});
