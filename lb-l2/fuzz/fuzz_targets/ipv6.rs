//! Fuzzes the IPv6 header: `Ipv6Packet::new_checked` and `Ipv6Repr::parse` must never panic,
//! the payload must be exactly the declared length, and a parsed header whose traffic class
//! and flow label are zero must re-emit to the same 40 bytes.
//!
//! Run with `cargo fuzz run -s none ipv6` from `lb-l2/fuzz/` (stable toolchain).

#![no_main]

use lb_l2::wire::{Ipv6Packet, Ipv6Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let unchecked = Ipv6Packet::new_unchecked(data);
    let _ = (
        unchecked.version(),
        unchecked.traffic_class(),
        unchecked.flow_label(),
        unchecked.payload_len(),
        unchecked.next_header(),
        unchecked.hop_limit(),
        unchecked.src_addr(),
        unchecked.dst_addr(),
        unchecked.payload(),
    );
    let _ = Ipv6Repr::parse(&unchecked);
    let Ok(packet) = Ipv6Packet::new_checked(data) else {
        return;
    };
    assert_eq!(packet.payload().len(), usize::from(packet.payload_len()));
    let Ok(repr) = Ipv6Repr::parse(&packet) else {
        return;
    };
    let mut buf = [0u8; 40];
    repr.emit(&mut buf).expect("40 bytes hold the header");
    let emitted = Ipv6Packet::new_unchecked(&buf[..]);
    assert_eq!(emitted.traffic_class(), 0);
    assert_eq!(emitted.flow_label(), 0);
    assert_eq!(&buf[4..40], &data[4..40]);
    if packet.traffic_class() == 0 && packet.flow_label() == 0 {
        assert_eq!(&buf[..], &data[..40]);
    }
});
