//! Fuzzes the BGP decoder: `frame_len` and `Message::decode` must never panic on any input,
//! with either AS-number codec, and whatever decodes must re-encode.
//!
//! Run with `cargo fuzz run -s none decode` from `lb-bgp/` (stable toolchain).

#![no_main]

use lb_bgp::wire::{Codec, Message, frame_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let framed = frame_len(data);
    for four_octet_as in [true, false] {
        let codec = Codec { four_octet_as };
        let Ok(message) = Message::decode(data, codec) else {
            continue;
        };
        // A whole message decoded, so its header framed it exactly.
        assert_eq!(framed, Ok(Some(data.len())));
        let bytes = match message.to_bytes(codec) {
            Ok(bytes) => bytes,
            Err(err) => panic!("decoded {message:?} but cannot re-encode it: {err}"),
        };
        assert!(Message::decode(&bytes, codec).is_ok() || multi_family_withdraw(&message));
    }
});

/// RFC 7606 treat-as-withdraw of an UPDATE with MP attributes of two families leaves one
/// MP_UNREACH_NLRI per family, which is not one valid wire message any more.
fn multi_family_withdraw(message: &Message) -> bool {
    match message {
        Message::Update(u) => {
            u.attributes
                .iter()
                .filter(|a| matches!(a, lb_bgp::wire::Attribute::MpUnreach(_)))
                .count()
                > 1
        }
        _ => false,
    }
}
