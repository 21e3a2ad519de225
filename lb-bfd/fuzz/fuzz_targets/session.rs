//! Fuzzes the session state machine: any sequence of packets (whatever parses) and timer
//! runs must never panic, and a session never sends a packet with both Poll and Final.
//!
//! Run with `cargo fuzz run -s none session` from `lb-bfd/fuzz/` (stable toolchain).

#![no_main]

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use lb_bfd::session::{Session, SessionConfig};
use lb_bfd::wire::ControlRepr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let Some(one) = NonZeroU32::new(1) else {
        return;
    };
    let Ok(mut s) = Session::new(SessionConfig::default(), one, start, 7) else {
        return;
    };
    let mut now = start;
    // Each chunk: one octet of time to advance (ms), then 24 octets of packet.
    for chunk in data.chunks(25) {
        let Some((&step, packet)) = chunk.split_first() else {
            break;
        };
        now += Duration::from_millis(u64::from(step));
        s.handle_timeout(now);
        if let Ok(p) = ControlRepr::parse_bytes(packet) {
            s.handle_packet(&p, now);
        }
        while let Some(p) = s.poll_transmit() {
            assert!(!(p.poll && p.final_));
            assert!(ControlRepr::parse_bytes(&p.to_bytes()).is_ok());
        }
        while s.poll_event().is_some() {}
    }
});
