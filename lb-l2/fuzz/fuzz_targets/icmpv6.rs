//! Fuzzes ICMPv6 and Neighbor Discovery messages: `Icmpv6Packet::new_checked`,
//! `verify_checksum` (with fixed documentation addresses) and `NdpRepr::parse` must never
//! panic; a reported expected checksum must make the message verify; and a message that
//! parses must re-emit to one that verifies and parses to the same value.
//!
//! Run with `cargo fuzz run -s none icmpv6` from `lb-l2/fuzz/` (stable toolchain).

#![no_main]

use std::net::Ipv6Addr;

use lb_l2::wire::{Icmpv6Packet, NdpRepr, WireError};
use libfuzzer_sys::fuzz_target;

/// 2001:db8::1
const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// ff02::1:ff00:10, the solicited-node group of 2001:db8::10.
const DST: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x10);

fuzz_target!(|data: &[u8]| {
    let unchecked = Icmpv6Packet::new_unchecked(data);
    let _ = (
        unchecked.msg_type(),
        unchecked.msg_code(),
        unchecked.checksum(),
        unchecked.body(),
    );
    let _ = NdpRepr::parse(&unchecked);
    let Ok(packet) = Icmpv6Packet::new_checked(data) else {
        return;
    };
    match packet.verify_checksum(SRC, DST) {
        Ok(()) => {}
        Err(WireError::Checksum { expected, found }) => {
            assert_eq!(found, packet.checksum());
            let mut fixed = data.to_vec();
            fixed[2..4].copy_from_slice(&expected.to_be_bytes());
            let fixed = Icmpv6Packet::new_checked(&fixed[..]).expect("same length");
            assert_eq!(fixed.verify_checksum(SRC, DST), Ok(()));
        }
        Err(other) => panic!("verify_checksum returned {other}"),
    }
    let Ok(repr) = NdpRepr::parse(&packet) else {
        return;
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(SRC, DST, &mut buf)
        .expect("buffer_len bytes hold the message");
    let emitted = Icmpv6Packet::new_checked(&buf[..]).expect("an NDP message is 24+ bytes");
    assert_eq!(emitted.verify_checksum(SRC, DST), Ok(()));
    assert_eq!(NdpRepr::parse(&emitted), Ok(repr));
});
