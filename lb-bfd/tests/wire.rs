//! The control packet codec: byte vectors, every discard rule of RFC 5880 §6.8.6 that
//! depends on the packet alone, and round trips (property tests).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use lb_bfd::wire::{ControlPacket, ControlRepr, Diagnostic, State, WireError};
use proptest::prelude::*;

/// FRR's first packet of a session: Down, no flags, multiplier 3, discriminator 1, 1 s / 300
/// ms / 50 ms.
const FIRST: [u8; 24] = [
    0x20, 0x40, 0x03, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x42, 0x40,
    0x00, 0x04, 0x93, 0xe0, 0x00, 0x00, 0xc3, 0x50,
];

fn first() -> ControlRepr {
    ControlRepr {
        diagnostic: Diagnostic::None,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 1,
        your_discriminator: 0,
        desired_min_tx: 1_000_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 50_000,
    }
}

#[test]
fn a_known_packet_parses_and_emits_byte_for_byte() {
    assert_eq!(ControlRepr::parse_bytes(&FIRST), Ok(first()));
    assert_eq!(first().to_bytes(), FIRST);
    // Up with Poll, diagnostic 3, your discriminator set.
    let up = ControlRepr {
        diagnostic: Diagnostic::NeighborSignaledSessionDown,
        state: State::Up,
        poll: true,
        your_discriminator: 0x0102_0304,
        ..first()
    };
    let bytes = up.to_bytes();
    assert_eq!(&bytes[..4], &[0x23, 0xe0, 0x03, 0x18]);
    assert_eq!(&bytes[8..12], &[1, 2, 3, 4]);
    assert_eq!(ControlRepr::parse_bytes(&bytes), Ok(up));
    // Final and demand.
    let fin = ControlRepr {
        state: State::Init,
        final_: true,
        demand: true,
        your_discriminator: 9,
        ..first()
    };
    assert_eq!(fin.to_bytes()[1], 0x80 | 0x10 | 0x02);
    // The view reads every field.
    let v = ControlPacket::new_checked(&FIRST[..]).unwrap();
    assert_eq!(
        (
            v.version(),
            v.length(),
            v.detect_mult(),
            v.my_discriminator()
        ),
        (1, 24, 3, 1)
    );
    assert_eq!(v.required_min_echo_rx(), 50_000);
}

#[test]
fn what_rfc_5880_discards_is_refused() {
    let with = |i: usize, v: u8| {
        let mut b = FIRST;
        b[i] = v;
        b
    };
    let cases: Vec<(&str, Vec<u8>, WireError)> = vec![
        (
            "23 bytes",
            FIRST[..23].to_vec(),
            WireError::Truncated {
                needed: 24,
                available: 23,
            },
        ),
        (
            "version 2",
            with(0, 0x40).to_vec(),
            WireError::Malformed("version other than 1"),
        ),
        (
            "length 20",
            with(3, 20).to_vec(),
            WireError::Malformed("length under 24"),
        ),
        (
            "length 30 in 24 bytes",
            with(3, 30).to_vec(),
            WireError::Truncated {
                needed: 30,
                available: 24,
            },
        ),
        (
            "authentication",
            with(1, 0x44).to_vec(),
            WireError::Unsupported("authentication"),
        ),
        (
            "multiplier 0",
            with(2, 0).to_vec(),
            WireError::Malformed("detect multiplier 0"),
        ),
        (
            "multipoint",
            with(1, 0x41).to_vec(),
            WireError::Malformed("multipoint bit set"),
        ),
        (
            "my discriminator 0",
            with(7, 0).to_vec(),
            WireError::Malformed("my discriminator 0"),
        ),
        (
            "Up without your discriminator",
            with(1, 0xc0).to_vec(),
            WireError::Malformed("your discriminator 0 in state Init or Up"),
        ),
        (
            "Init without your discriminator",
            with(1, 0x80).to_vec(),
            WireError::Malformed("your discriminator 0 in state Init or Up"),
        ),
    ];
    for (what, bytes, want) in cases {
        assert_eq!(ControlRepr::parse_bytes(&bytes), Err(want), "{what}");
    }
    // AdminDown without your discriminator is fine, as is a longer buffer.
    assert!(ControlRepr::parse_bytes(&with(1, 0x00)).is_ok());
    let mut longer = FIRST.to_vec();
    longer.extend_from_slice(&[0; 8]);
    assert_eq!(ControlRepr::parse_bytes(&longer), Ok(first()));
    // Emitting needs 24 bytes.
    assert_eq!(
        first().emit(&mut [0u8; 23]),
        Err(WireError::BufferTooSmall {
            needed: 24,
            available: 23
        })
    );
}

#[test]
fn a_view_over_a_short_buffer_reads_zeros_and_never_panics() {
    let v = ControlPacket::new_unchecked(&FIRST[..5]);
    assert_eq!(v.my_discriminator(), 0);
    assert_eq!(v.required_min_echo_rx(), 0);
    assert_eq!(v.state(), State::Down);
    assert!(ControlPacket::new_checked(&FIRST[..5]).is_err());
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::AdminDown),
        Just(State::Down),
        Just(State::Init),
        Just(State::Up)
    ]
}

fn repr() -> impl Strategy<Value = ControlRepr> {
    (
        (0u8..32, state(), any::<[bool; 4]>(), 1u8..=255),
        (
            1u32..,
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |((diag, state, flags, mult), (mine, yours, tx, rx, echo))| {
                let yours = if matches!(state, State::Init | State::Up) {
                    yours.max(1)
                } else {
                    yours
                };
                let mut bytes = [0u8; 24];
                bytes[0] = (1 << 5) | diag;
                let diagnostic = ControlPacket::new_unchecked(&bytes[..]).diagnostic();
                ControlRepr {
                    diagnostic,
                    state,
                    poll: flags[0],
                    final_: flags[1],
                    control_plane_independent: flags[2],
                    demand: flags[3],
                    detect_mult: mult,
                    my_discriminator: mine,
                    your_discriminator: yours,
                    desired_min_tx: tx,
                    required_min_rx: rx,
                    required_min_echo_rx: echo,
                }
            },
        )
}

proptest! {
    #[test]
    fn every_valid_value_round_trips(r in repr()) {
        let bytes = r.to_bytes();
        prop_assert_eq!(ControlRepr::parse_bytes(&bytes), Ok(r));
    }

    #[test]
    fn any_bytes_parse_without_panic_and_what_parses_re_emits(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let unchecked = ControlPacket::new_unchecked(&bytes[..]);
        let _ = (unchecked.state(), unchecked.diagnostic(), unchecked.my_discriminator());
        if let Ok(r) = ControlRepr::parse_bytes(&bytes) {
            let out = r.to_bytes();
            if bytes[3] == 24 {
                prop_assert_eq!(&out[..], &bytes[..24]);
            }
            prop_assert_eq!(ControlRepr::parse_bytes(&out), Ok(r));
        }
    }
}
