//! Fuzzes whole frames: `Frame::parse` must never panic, and a frame that parses must re-emit
//! to bytes that parse to the same value. The one field re-emitting may change is the IPv6
//! payload length of an NDP frame, which `Frame::emit` sets to the length of the message it
//! writes (options the value does not hold are dropped); the value is compared with that field
//! set accordingly, and the re-emitted bytes must then be a fixed point.
//!
//! Run with `cargo fuzz run -s none frame` from `lb-l2/fuzz/` (stable toolchain).

#![no_main]

use lb_l2::wire::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::parse(data) else {
        return;
    };
    let bytes = frame.to_bytes();
    assert_eq!(bytes.len(), frame.buffer_len());
    let reparsed = match Frame::parse(&bytes) {
        Ok(reparsed) => reparsed,
        Err(err) => panic!("{frame:?} re-emitted to bytes that do not parse: {err}"),
    };
    let expected = match frame {
        Frame::Arp { .. } => frame,
        Frame::Ndp {
            ethernet,
            mut ipv6,
            ndp,
        } => {
            ipv6.payload_len = u16::try_from(ndp.buffer_len()).expect("an NDP message is short");
            Frame::Ndp {
                ethernet,
                ipv6,
                ndp,
            }
        }
    };
    assert_eq!(reparsed, expected);
    assert_eq!(reparsed.to_bytes(), bytes);
});
