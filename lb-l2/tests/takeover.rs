#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Tests of the takeover schedule (`Takeover`, `TakeoverSchedule`) and of the gratuitous
//! ARP / unsolicited Neighbor Advertisement frames (`gratuitous_frames`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use lb_l2::responder::ALL_NODES;
use lb_l2::wire::icmpv6::checksum;
use lb_l2::wire::ipv6::NEXT_HEADER_ICMPV6;
use lb_l2::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetRepr, Frame, NdpRepr, NeighborFlags,
};
use lb_l2::{Takeover, TakeoverSchedule, gratuitous_frames};
use proptest::prelude::*;

const MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
const VIP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn default_offsets() -> Vec<Duration> {
    TakeoverSchedule::default().offsets().collect()
}

// ---------------------------------------------------------------------------------------------
// TakeoverSchedule
// ---------------------------------------------------------------------------------------------

#[test]
fn default_schedule_is_five_rounds_1_1_s_apart() {
    let schedule = TakeoverSchedule::default();
    assert_eq!(schedule.interval, ms(1100));
    assert_eq!(schedule.rounds, 5);
    assert_eq!(
        default_offsets(),
        vec![ms(0), ms(1100), ms(2200), ms(3300), ms(4400)]
    );
}

#[test]
fn offsets_of_custom_and_empty_schedules() {
    let custom = TakeoverSchedule {
        interval: ms(200),
        rounds: 3,
    };
    assert_eq!(
        custom.offsets().collect::<Vec<_>>(),
        vec![ms(0), ms(200), ms(400)]
    );
    let none = TakeoverSchedule {
        interval: ms(200),
        rounds: 0,
    };
    assert_eq!(none.offsets().count(), 0);
}

#[test]
fn new_takeover_is_empty_and_keeps_its_schedule() {
    let schedule = TakeoverSchedule {
        interval: ms(250),
        rounds: 2,
    };
    let t: Takeover<u32> = Takeover::new(schedule);
    assert_eq!(t.schedule(), schedule);
    assert!(t.is_empty());
    assert_eq!(t.len(), 0);
    assert_eq!(t.next_deadline(), None);
}

// ---------------------------------------------------------------------------------------------
// Takeover
// ---------------------------------------------------------------------------------------------

#[test]
fn announce_then_poll_at_each_offset_yields_the_key_five_times_then_never() {
    let start = secs(100.0);
    let mut t = Takeover::new(TakeoverSchedule::default());
    t.announce("a", start);
    assert!(t.is_pending(&"a"));
    let mut sent = 0;
    for offset in default_offsets() {
        assert_eq!(t.next_deadline(), Some(start + offset));
        assert_eq!(t.poll(start + offset), vec!["a"], "round at {offset:?}");
        sent += 1;
    }
    assert_eq!(sent, 5);
    assert!(!t.is_pending(&"a"));
    assert!(t.is_empty());
    assert_eq!(t.next_deadline(), None);
    for later in [ms(4400), ms(5500), ms(6600), secs(3600.0)] {
        assert!(t.poll(start + later).is_empty());
    }
}

#[test]
fn first_round_is_due_immediately() {
    let mut t = Takeover::new(TakeoverSchedule::default());
    t.announce(1u8, ms(500));
    assert_eq!(t.next_deadline(), Some(ms(500)));
    assert_eq!(t.poll(ms(500)), vec![1]);
}

#[test]
fn poll_before_due_yields_nothing() {
    let mut t = Takeover::new(TakeoverSchedule::default());
    // Before the announcement time itself.
    t.announce(1u8, ms(1000));
    assert!(t.poll(ms(999)).is_empty());
    assert_eq!(t.poll(ms(1000)), vec![1]);
    // Just before the second round, repeatedly.
    for now in [1000, 1001, 1500, 2099] {
        assert!(t.poll(ms(now)).is_empty(), "at {now} ms");
    }
    assert!(t.poll(ms(2100) - Duration::from_nanos(1)).is_empty());
    assert_eq!(t.poll(ms(2100)), vec![1]);
    assert!(t.is_pending(&1));
}

#[test]
fn each_key_is_yielded_once_per_poll_however_late() {
    let mut t = Takeover::new(TakeoverSchedule::default());
    t.announce(1u8, ms(0));
    // Polled long after all five rounds were due: one round, not five.
    assert_eq!(t.poll(secs(60.0)), vec![1]);
    assert!(t.poll(secs(60.0)).is_empty());
    assert_eq!(t.next_deadline(), Some(secs(60.0) + ms(1100)));
}

#[test]
fn next_deadline_follows_the_schedule() {
    let mut t = Takeover::new(TakeoverSchedule::default());
    assert_eq!(t.next_deadline(), None);
    t.announce(1u8, ms(0));
    assert_eq!(t.next_deadline(), Some(ms(0)));
    t.poll(ms(0));
    assert_eq!(t.next_deadline(), Some(ms(1100)));
    // A poll before due does not move it.
    t.poll(ms(600));
    assert_eq!(t.next_deadline(), Some(ms(1100)));
    // A second key due earlier becomes the deadline.
    t.announce(2u8, ms(700));
    assert_eq!(t.next_deadline(), Some(ms(700)));
    assert_eq!(t.poll(ms(700)), vec![2]);
    assert_eq!(t.next_deadline(), Some(ms(1100)));
    assert_eq!(t.poll(ms(1100)), vec![1]);
    assert_eq!(t.next_deadline(), Some(ms(1800)));
}

#[test]
fn late_poll_delays_the_following_round_by_one_interval() {
    let mut t = Takeover::new(TakeoverSchedule::default());
    t.announce(1u8, ms(0));
    assert_eq!(t.poll(ms(0)), vec![1]);
    // Second round due at 1100 but polled at 1600.
    assert_eq!(t.poll(ms(1600)), vec![1]);
    // The third round is 1100 after the late poll, not at 2200: no bunching.
    assert_eq!(t.next_deadline(), Some(ms(2700)));
    assert!(t.poll(ms(2200)).is_empty());
    assert!(t.poll(ms(2699)).is_empty());
    assert_eq!(t.poll(ms(2700)), vec![1]);
    // Rounds still total five.
    assert_eq!(t.poll(ms(3800)), vec![1]);
    assert_eq!(t.poll(ms(4900)), vec![1]);
    assert!(t.is_empty());
    assert!(t.poll(ms(6000)).is_empty());
}

#[test]
fn withdraw_stops_the_rounds() {
    let mut t = Takeover::new(TakeoverSchedule::default());
    t.announce(1u8, ms(0));
    t.announce(2u8, ms(0));
    assert_eq!(t.poll(ms(0)), vec![1, 2]);
    t.withdraw(&1);
    assert!(!t.is_pending(&1));
    assert!(t.is_pending(&2));
    assert_eq!(t.len(), 1);
    for offset in [1100, 2200, 3300, 4400] {
        assert_eq!(t.poll(ms(offset)), vec![2]);
    }
    assert!(t.is_empty());
    // Withdrawing an unknown key is harmless.
    t.withdraw(&9);
    assert!(t.is_empty());
}

#[test]
fn withdraw_before_the_first_poll_sends_nothing() {
    let mut t = Takeover::new(TakeoverSchedule::default());
    t.announce(1u8, ms(0));
    t.withdraw(&1);
    assert!(t.poll(ms(0)).is_empty());
    assert_eq!(t.next_deadline(), None);
}

#[test]
fn re_announce_restarts_the_count() {
    let mut t = Takeover::new(TakeoverSchedule::default());
    t.announce(1u8, ms(0));
    assert_eq!(t.poll(ms(0)), vec![1]);
    assert_eq!(t.poll(ms(1100)), vec![1]);
    assert_eq!(t.poll(ms(2200)), vec![1]);
    // Re-announced at 2500: due at once, and five more rounds from there.
    t.announce(1u8, ms(2500));
    assert_eq!(t.len(), 1);
    assert_eq!(t.next_deadline(), Some(ms(2500)));
    let mut rounds = 0;
    for offset in default_offsets() {
        assert_eq!(t.poll(ms(2500) + offset), vec![1]);
        rounds += 1;
    }
    assert_eq!(rounds, 5);
    assert!(t.is_empty());
}

#[test]
fn re_announce_after_completion_starts_again() {
    let schedule = TakeoverSchedule {
        interval: ms(100),
        rounds: 2,
    };
    let mut t = Takeover::new(schedule);
    t.announce(1u8, ms(0));
    assert_eq!(t.poll(ms(0)), vec![1]);
    assert_eq!(t.poll(ms(100)), vec![1]);
    assert!(t.is_empty());
    t.announce(1u8, ms(1000));
    assert_eq!(t.poll(ms(1000)), vec![1]);
    assert_eq!(t.poll(ms(1100)), vec![1]);
    assert!(t.poll(ms(1200)).is_empty());
}

#[test]
fn zero_rounds_sends_nothing() {
    let mut t = Takeover::new(TakeoverSchedule {
        interval: ms(1100),
        rounds: 0,
    });
    t.announce(1u8, ms(0));
    assert!(t.is_empty());
    assert!(!t.is_pending(&1));
    assert_eq!(t.next_deadline(), None);
    for now in [0, 1100, 5000] {
        assert!(t.poll(ms(now)).is_empty());
    }
}

#[test]
fn one_round_sends_once() {
    let mut t = Takeover::new(TakeoverSchedule {
        interval: ms(1100),
        rounds: 1,
    });
    t.announce(1u8, ms(0));
    assert_eq!(t.poll(ms(0)), vec![1]);
    assert!(t.is_empty());
    assert!(t.poll(ms(1100)).is_empty());
}

#[test]
fn custom_schedule_200_ms_three_rounds() {
    let schedule = TakeoverSchedule {
        interval: ms(200),
        rounds: 3,
    };
    let mut t = Takeover::new(schedule);
    t.announce("vip", ms(10));
    let mut when = Vec::new();
    // Poll every 10 ms for two seconds.
    for now in (10..2000).step_by(10) {
        if !t.poll(ms(now)).is_empty() {
            when.push(now);
        }
    }
    assert_eq!(when, vec![10, 210, 410]);
    assert!(t.is_empty());
}

#[test]
fn several_keys_interleave_in_time_and_key_order() {
    let mut t = Takeover::new(TakeoverSchedule {
        interval: ms(1000),
        rounds: 2,
    });
    t.announce("b", ms(0));
    t.announce("a", ms(0));
    t.announce("c", ms(500));
    assert_eq!(t.len(), 3);
    // Same due time: key order, not insertion order.
    assert_eq!(t.poll(ms(0)), vec!["a", "b"]);
    assert_eq!(t.next_deadline(), Some(ms(500)));
    assert_eq!(t.poll(ms(500)), vec!["c"]);
    assert_eq!(t.next_deadline(), Some(ms(1000)));
    assert_eq!(t.poll(ms(1000)), vec!["a", "b"]);
    assert_eq!(t.len(), 1);
    assert_eq!(t.poll(ms(1500)), vec!["c"]);
    assert!(t.is_empty());
}

#[test]
fn one_poll_after_several_deadlines_yields_every_due_key_once_in_key_order() {
    let mut t = Takeover::new(TakeoverSchedule::default());
    t.announce(3u8, ms(30));
    t.announce(1u8, ms(20));
    t.announce(2u8, ms(10));
    t.announce(4u8, ms(5000));
    assert_eq!(t.poll(ms(100)), vec![1, 2, 3]);
    assert_eq!(t.next_deadline(), Some(ms(1200)));
}

#[test]
fn keys_can_be_interface_and_ip_pairs() {
    let mut t: Takeover<(String, IpAddr)> = Takeover::new(TakeoverSchedule::default());
    let k1 = ("eth0".to_owned(), IpAddr::V4(VIP4));
    let k2 = ("eth0".to_owned(), IpAddr::V6(VIP6));
    let k3 = ("eth1".to_owned(), IpAddr::V4(VIP4));
    t.announce(k3.clone(), ms(0));
    t.announce(k2.clone(), ms(0));
    t.announce(k1.clone(), ms(0));
    assert_eq!(t.poll(ms(0)), vec![k1, k2, k3]);
}

#[test]
fn retain_forgets_rejected_keys() {
    let mut t: Takeover<(String, IpAddr)> = Takeover::new(TakeoverSchedule::default());
    let eth0_v4 = ("eth0".to_owned(), IpAddr::V4(VIP4));
    let eth0_v6 = ("eth0".to_owned(), IpAddr::V6(VIP6));
    let eth1_v4 = ("eth1".to_owned(), IpAddr::V4(VIP4));
    for k in [&eth0_v4, &eth0_v6, &eth1_v4] {
        t.announce(k.clone(), ms(0));
    }
    // eth0 went away.
    t.retain(|(link, _)| link != "eth0");
    assert_eq!(t.len(), 1);
    assert!(!t.is_pending(&eth0_v4));
    assert!(!t.is_pending(&eth0_v6));
    assert!(t.is_pending(&eth1_v4));
    assert_eq!(t.poll(ms(0)), vec![eth1_v4]);
    // Retaining everything changes nothing; retaining nothing empties it.
    t.retain(|_| true);
    assert_eq!(t.len(), 1);
    t.retain(|_| false);
    assert!(t.is_empty());
    assert_eq!(t.next_deadline(), None);
}

proptest! {
    /// Whatever the schedule and however irregularly it is polled, a key announced once is
    /// yielded exactly `rounds` times, never twice in one poll, and consecutive rounds are at
    /// least one interval apart.
    #[test]
    fn rounds_are_counted_and_spaced(
        interval_ms in 1u64..2000,
        rounds in 0u32..8,
        gaps in prop::collection::vec(0u64..3000, 1..200),
    ) {
        let schedule = TakeoverSchedule { interval: ms(interval_ms), rounds };
        let mut t = Takeover::new(schedule);
        t.announce(0u8, ms(0));
        let mut now = ms(0);
        let mut sent: Vec<Duration> = Vec::new();
        // The first poll at the announcement time, then irregular gaps, then enough polls
        // to finish.
        let tail = std::iter::repeat_n(interval_ms, usize::try_from(rounds).unwrap() + 1);
        for gap in std::iter::once(0).chain(gaps).chain(tail) {
            now += ms(gap);
            let due = t.poll(now);
            prop_assert!(due.len() <= 1);
            if !due.is_empty() {
                sent.push(now);
                // The next round, if any, is one interval after this poll.
                let expected = t.is_pending(&0).then(|| now + ms(interval_ms));
                prop_assert_eq!(t.next_deadline(), expected);
            }
        }
        prop_assert_eq!(sent.len(), usize::try_from(rounds).unwrap());
        prop_assert_eq!(sent.first().copied(), (rounds > 0).then_some(ms(0)));
        for pair in sent.windows(2) {
            prop_assert!(pair[1] - pair[0] >= ms(interval_ms));
        }
        prop_assert!(t.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// gratuitous_frames
// ---------------------------------------------------------------------------------------------

#[test]
fn ipv4_takeover_is_a_broadcast_gratuitous_request_and_reply() {
    let frames = gratuitous_frames(IpAddr::V4(VIP4), MAC);
    assert_eq!(frames.len(), 2);
    let parsed: Vec<Frame> = frames
        .iter()
        .map(|f| Frame::parse(f).expect("parses"))
        .collect();
    let broadcast = EthernetRepr {
        src_addr: MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::ARP,
    };
    assert_eq!(
        parsed[0],
        Frame::Arp {
            ethernet: broadcast,
            arp: ArpRepr {
                operation: ArpOperation::Request,
                source_hardware_addr: MAC,
                source_protocol_addr: VIP4,
                target_hardware_addr: EthernetAddress::ZERO,
                target_protocol_addr: VIP4,
            },
        }
    );
    let Frame::Arp { ethernet, arp } = parsed[1] else {
        panic!("second frame is not ARP: {:?}", parsed[1]);
    };
    assert_eq!(ethernet, broadcast);
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert_eq!(arp.source_hardware_addr, MAC);
    assert_eq!(arp.source_protocol_addr, VIP4);
    assert_eq!(arp.target_protocol_addr, VIP4);
    for frame in &frames {
        assert_eq!(frame.len(), 14 + 28);
        assert_eq!(&frame[..6], &[0xff; 6]);
        assert_eq!(&frame[6..12], MAC.as_bytes());
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
    }
    // The request's target hardware address is all zeros on the wire.
    assert_eq!(&frames[0][14 + 18..14 + 24], &[0; 6]);
}

#[test]
fn ipv6_takeover_is_an_unsolicited_override_advert_to_all_nodes() {
    let frames = gratuitous_frames(IpAddr::V6(VIP6), MAC);
    assert_eq!(frames.len(), 1);
    let frame = &frames[0];
    let Frame::Ndp {
        ethernet,
        ipv6,
        ndp,
    } = Frame::parse(frame).expect("parses, so the checksum is valid")
    else {
        panic!("not an NDP frame");
    };
    assert_eq!(
        ethernet,
        EthernetRepr {
            src_addr: MAC,
            dst_addr: EthernetAddress([0x33, 0x33, 0, 0, 0, 1]),
            ethertype: EtherType::IPV6,
        }
    );
    assert_eq!(ipv6.src_addr, VIP6);
    assert_eq!(ipv6.dst_addr, ALL_NODES);
    assert_eq!(ALL_NODES, "ff02::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(ipv6.hop_limit, 255);
    assert_eq!(ipv6.next_header, NEXT_HEADER_ICMPV6);
    assert_eq!(ipv6.payload_len, 32);
    assert_eq!(
        ndp,
        NdpRepr::NeighborAdvert {
            flags: NeighborFlags {
                router: false,
                solicited: false,
                override_: true,
            },
            target_addr: VIP6,
            target_lladdr: Some(MAC),
        }
    );
    let icmp = &frame[54..];
    assert_eq!(icmp.len(), 32);
    assert_eq!(icmp[0], 136);
    assert_eq!(icmp[4], 0x20, "O set, R and S clear");
    assert_eq!(checksum(VIP6, ALL_NODES, icmp), 0);
}

#[test]
fn gratuitous_frames_carry_the_given_mac_and_ip() {
    let mac: EthernetAddress = "02:12:34:56:78:9a".parse().unwrap();
    for ip in [
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 200)),
        IpAddr::V6("2001:db8:ffff::1234".parse().unwrap()),
    ] {
        for frame in gratuitous_frames(ip, mac) {
            match Frame::parse(&frame).unwrap() {
                Frame::Arp { ethernet, arp } => {
                    assert_eq!(ethernet.src_addr, mac);
                    assert_eq!(arp.source_hardware_addr, mac);
                    assert_eq!(IpAddr::V4(arp.source_protocol_addr), ip);
                    assert_eq!(IpAddr::V4(arp.target_protocol_addr), ip);
                }
                Frame::Ndp {
                    ethernet,
                    ipv6,
                    ndp,
                } => {
                    assert_eq!(ethernet.src_addr, mac);
                    assert_eq!(IpAddr::V6(ipv6.src_addr), ip);
                    assert_eq!(IpAddr::V6(ndp.target_addr()), ip);
                }
            }
        }
    }
}
