//! Fuzzes the Ethernet header: `EthernetFrame::new_checked` and `EthernetRepr::parse` must
//! never panic, and a parsed header must re-emit to the same 14 bytes.
//!
//! Run with `cargo fuzz run -s none ethernet` from `lb-l2/fuzz/` (stable toolchain).

#![no_main]

use lb_l2::wire::{EthernetFrame, EthernetRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let unchecked = EthernetFrame::new_unchecked(data);
    let _ = (
        unchecked.dst_addr(),
        unchecked.src_addr(),
        unchecked.ethertype(),
    );
    let _ = EthernetRepr::parse(&unchecked);
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    let repr = match EthernetRepr::parse(&frame) {
        Ok(repr) => repr,
        Err(err) => panic!(
            "checked frame of {} bytes does not parse: {err}",
            data.len()
        ),
    };
    assert_eq!(
        frame.payload().len(),
        data.len() - EthernetFrame::<&[u8]>::HEADER_LEN
    );
    let mut buf = [0u8; 14];
    repr.emit(&mut buf).expect("14 bytes hold the header");
    assert_eq!(&buf[..], &data[..14]);
});
