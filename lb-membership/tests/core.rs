//! Tests of the sans-IO membership core ([`lb_membership::Core`]) in a simulated network: no
//! sockets, no clock. Every datagram a core puts out is delivered to the core at its address
//! one millisecond later, and time moves in one-millisecond steps, so each run is
//! deterministic and a second of cluster life takes a few milliseconds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lb_membership::{
    Core, MISMATCH_NOTICE, MembershipConfig, NOTICES_PER_SECOND, Sealer, Timers, Transmit,
    WireFormat, mismatch_notice,
};

mod support;

use support::{KEY, OTHER_KEY, names};

const TICK: Duration = Duration::from_millis(1);

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, i], 7946))
}

/// A simulated cluster: cores by address, the datagrams in flight, and the time.
struct Net {
    cores: BTreeMap<SocketAddr, Core>,
    /// Addresses whose traffic is dropped both ways (a killed or cut-off speaker).
    cut: BTreeSet<SocketAddr>,
    in_flight: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    now: Instant,
    /// Notices each address put out.
    notices: BTreeMap<SocketAddr, usize>,
    /// When the simulation started (its wall clock reads [`WALL_AT_START`] then).
    start: Instant,
    /// Datagrams sent by this address are recorded in `captured` (as a tap on the wire).
    tap: Option<SocketAddr>,
    /// What the tap recorded: from, to, bytes.
    captured: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Speakers of a release without replay protection: they cannot open version 2 (added in the upgrade
    /// mode, they never hear version 2, so they write version 1 only).
    old: BTreeSet<SocketAddr>,
}

/// The simulated wall clock at the start, in milliseconds since the epoch.
const WALL_AT_START: u64 = 1_700_000_000_000;

impl Net {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            cores: BTreeMap::new(),
            cut: BTreeSet::new(),
            in_flight: Vec::new(),
            now,
            notices: BTreeMap::new(),
            start: now,
            tap: None,
            captured: Vec::new(),
            old: BTreeSet::new(),
        }
    }

    /// Adds speaker `node` at 192.0.2.`i` with `seeds` and `key`.
    fn add(&mut self, node: &str, i: u8, seeds: &[u8], key: &[u8]) {
        self.add_with(node, i, seeds, key, WireFormat::Stamped, 0);
    }

    /// Adds a speaker writing `wire`, whose clock is `skew_ms` ahead of the others.
    fn add_with(
        &mut self,
        node: &str,
        i: u8,
        seeds: &[u8],
        key: &[u8],
        wire: WireFormat,
        skew_ms: i64,
    ) {
        let config = MembershipConfig {
            node: node.into(),
            bind: addr(i),
            advertise: addr(i),
            seeds: seeds.iter().map(|s| addr(*s)).collect(),
            timers: Timers::default(),
            wire,
        };
        let elapsed = u64::try_from((self.now - self.start).as_millis()).unwrap();
        let wall = (WALL_AT_START + elapsed)
            .checked_add_signed(skew_ms)
            .unwrap();
        let core = Core::new(
            config,
            Sealer::from_secret(key).unwrap(),
            wall,
            [i; 32],
            self.now,
        )
        .unwrap();
        self.cores.insert(addr(i), core);
    }

    /// Sends `bytes` from `from` to `to` (a forger or a replayer on the wire).
    fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.in_flight.push((self.now + TICK, from, to, bytes));
    }

    fn core(&self, i: u8) -> &Core {
        &self.cores[&addr(i)]
    }

    /// Collects what every core wants to send.
    fn collect(&mut self) {
        for (from, core) in &mut self.cores {
            while let Some(t) = core.poll_transmit() {
                let (to, bytes) = match t {
                    Transmit::Sealed { to, datagram } => {
                        core.count_sent();
                        (to, datagram)
                    }
                    Transmit::Notice { to, nonce } => {
                        *self.notices.entry(*from).or_default() += 1;
                        (to, mismatch_notice(&nonce).to_vec())
                    }
                };
                if self.tap == Some(*from) {
                    self.captured.push((*from, to, bytes.clone()));
                }
                self.in_flight.push((self.now + TICK, *from, to, bytes));
            }
        }
    }

    /// Moves time on by `d`, one tick at a time, delivering datagrams and running timers.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        // Bounded: one iteration per millisecond.
        for _ in 0..=d.as_millis() {
            if self.now >= end {
                break;
            }
            self.now += TICK;
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
                .into_iter()
                .partition(|d| d.0 <= now);
            self.in_flight = later;
            for (_, from, to, bytes) in due {
                if self.cut.contains(&from) || self.cut.contains(&to) {
                    continue;
                }
                // A speaker without replay protection cannot open version 2 (and answers nothing).
                if self.old.contains(&to) && bytes.first() == Some(&2) {
                    continue;
                }
                if let Some(core) = self.cores.get_mut(&to) {
                    core.handle_datagram(&bytes, from, now);
                }
            }
            for (a, core) in &mut self.cores {
                if self.cut.contains(a) {
                    continue;
                }
                if core.next_deadline().is_some_and(|t| t <= now) {
                    core.handle_timeout(now);
                }
            }
            self.collect();
        }
    }

    /// Runs until `done` holds, at most `limit`; returns how long it took.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Self) -> bool) -> Option<Duration> {
        let start = self.now;
        while self.now < start + limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.run(Duration::from_millis(5));
        }
        done(self).then(|| self.now - start)
    }
}

fn three() -> Net {
    let mut net = Net::new();
    net.add("a", 1, &[1, 2, 3], KEY);
    net.add("b", 2, &[1, 2, 3], KEY);
    net.add("c", 3, &[1, 2, 3], KEY);
    net
}

fn all_see(net: &Net, nodes: &[u8], alive: &[&str]) -> bool {
    nodes
        .iter()
        .all(|i| net.core(*i).view().alive == names(alive))
}

#[test]
fn three_speakers_find_each_other_through_their_seeds_and_settle() {
    let mut net = three();
    let took = net
        .run_until(Duration::from_secs(2), |n| {
            all_see(n, &[1, 2, 3], &["a", "b", "c"])
        })
        .expect("no agreement in 2 s");
    assert!(took < Duration::from_millis(500), "{took:?}");
    for i in 1..=3 {
        let v = net.core(i).view();
        assert!(v.settled && !v.key_mismatch, "{v:?}");
        assert!(net.core(i).counters().received > 0);
    }
}

#[test]
fn a_silent_speaker_is_declared_down_within_a_second() {
    let mut net = three();
    net.run_until(Duration::from_secs(2), |n| {
        all_see(n, &[1, 2, 3], &["a", "b", "c"])
    })
    .unwrap();
    net.cut.insert(addr(3));
    let took = net
        .run_until(Duration::from_secs(3), |n| all_see(n, &[1, 2], &["a", "b"]))
        .expect("c never declared down");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn a_leaving_speaker_is_dropped_at_once() {
    let mut net = three();
    net.run_until(Duration::from_secs(2), |n| {
        all_see(n, &[1, 2, 3], &["a", "b", "c"])
    })
    .unwrap();
    let now = net.now;
    net.cores.get_mut(&addr(3)).unwrap().leave(now);
    net.collect();
    // The agent stops once its leave is sent: its datagrams are in flight, nothing more.
    net.cores.remove(&addr(3));
    let took = net
        .run_until(Duration::from_secs(1), |n| all_see(n, &[1, 2], &["a", "b"]))
        .expect("c still a member");
    assert!(took < Duration::from_millis(100), "{took:?}");
}

#[test]
fn a_speaker_with_another_key_stays_out_unsettled_and_disturbs_nobody() {
    let mut net = three();
    net.add("x", 9, &[1, 2, 3], OTHER_KEY);
    net.run(Duration::from_secs(3));
    assert!(all_see(&net, &[1, 2, 3], &["a", "b", "c"]));
    let x = net.core(9).view();
    assert_eq!(x.alive, names(&["x"]));
    assert!(x.key_mismatch && !x.settled, "{x:?}");
    let refused: u64 = (1..=3).map(|i| net.core(i).counters().refused).sum();
    assert!(refused > 0);
}

#[test]
fn mismatch_notices_go_to_one_address_at_most_once_a_second() {
    let mut net = Net::new();
    net.add("a", 1, &[], KEY);
    let from = addr(50);
    let start = net.now;
    let other = Sealer::from_secret(OTHER_KEY).unwrap();
    // Ten datagrams of another key a millisecond apart, then ten more a second later; and
    // garbage, which is refused without a notice.
    for round in 0..2u32 {
        for k in 0..10u32 {
            let now = start + Duration::from_secs(u64::from(round)) + TICK * k;
            let core = net.cores.get_mut(&addr(1)).unwrap();
            core.handle_datagram(&other.seal(b"hello").unwrap(), from, now);
            core.handle_datagram(b"not sealed at all", addr(51), now);
        }
    }
    let mut notices = Vec::new();
    while let Some(t) = net.cores.get_mut(&addr(1)).unwrap().poll_transmit() {
        if let Transmit::Notice { to, .. } = t {
            notices.push(to);
        }
    }
    assert_eq!(notices, vec![from, from]);
    assert_eq!(net.core(1).counters().refused, 40);
}

#[test]
fn a_flood_from_forged_sources_gets_a_bounded_number_of_notices() {
    let mut net = Net::new();
    net.add("a", 1, &[], KEY);
    let other = Sealer::from_secret(OTHER_KEY).unwrap();
    let datagram = other.seal(b"flood").unwrap();
    let start = net.now;
    // 5,000 datagrams in one second, each from another forged source.
    let core = net.cores.get_mut(&addr(1)).unwrap();
    for k in 0..5_000u16 {
        let host = u8::try_from(k % 250).unwrap();
        let from = std::net::SocketAddr::from(([198, 51, 100, host], 10_000 + k));
        core.handle_datagram(
            &datagram,
            from,
            start + Duration::from_micros(u64::from(k) * 200),
        );
    }
    let mut notices = 0u32;
    while let Some(t) = core.poll_transmit() {
        if matches!(t, Transmit::Notice { .. }) {
            notices += 1;
        }
    }
    assert_eq!(notices, NOTICES_PER_SECOND);
    assert_eq!(core.counters().refused, 5_000);
}

#[test]
fn a_forged_notice_changes_nothing() {
    let mut net = Net::new();
    // A lone speaker whose seeds never answer: only the join wait settles it.
    net.add("a", 1, &[2], KEY);
    net.run(Duration::from_millis(50));
    let now = net.now;
    let core = net.cores.get_mut(&addr(1)).unwrap();
    // The old two-octet notice, and one echoing a nonce it never sent, from its seed.
    core.handle_datagram(&MISMATCH_NOTICE, addr(2), now);
    core.handle_datagram(&mismatch_notice(&[7; 12]), addr(2), now);
    assert_eq!(core.counters().mismatch_notices, 0);
    assert_eq!(core.counters().unverified_notices, 2);
    assert!(!core.view().key_mismatch);
    net.run(Timers::default().join_wait);
    let v = net.core(1).view();
    assert!(v.settled && !v.key_mismatch, "{v:?}");
}

#[test]
fn a_speaker_whose_seeds_never_answer_settles_after_the_join_wait() {
    let mut net = Net::new();
    net.add("a", 1, &[2, 3], KEY);
    let wait = Timers::default().join_wait;
    net.run(wait - Duration::from_millis(100));
    assert!(!net.core(1).view().settled);
    net.run(Duration::from_millis(200));
    assert!(net.core(1).view().settled);
    assert_eq!(net.core(1).view().alive, names(&["a"]));
}

#[test]
fn a_speaker_without_seeds_is_settled_at_once() {
    let mut net = Net::new();
    net.add("a", 1, &[1], KEY);
    net.run(Duration::from_millis(2));
    assert!(net.core(1).view().settled);
}

#[test]
fn a_later_seed_list_joins_two_lone_speakers() {
    let mut net = Net::new();
    net.add("a", 1, &[], KEY);
    net.add("b", 2, &[], KEY);
    net.run(Duration::from_millis(300));
    assert!(all_see(&net, &[1], &["a"]) && all_see(&net, &[2], &["b"]));
    let now = net.now;
    net.cores
        .get_mut(&addr(1))
        .unwrap()
        .set_seeds(vec![addr(1), addr(2)], now);
    net.collect();
    net.run_until(Duration::from_secs(1), |n| all_see(n, &[1, 2], &["a", "b"]))
        .expect("the new seed was never joined");
}

#[test]
fn unusable_timers_are_refused_naming_them() {
    let config = |timers| MembershipConfig {
        node: "a".into(),
        bind: addr(1),
        advertise: addr(1),
        seeds: Vec::new(),
        timers,
        wire: WireFormat::Stamped,
    };
    let core = |timers| {
        Core::new(
            config(timers),
            Sealer::from_secret(KEY).unwrap(),
            1,
            [0; 32],
            Instant::now(),
        )
    };
    let zero_rejoin = Timers {
        rejoin: Duration::ZERO,
        ..Timers::default()
    };
    let e = core(zero_rejoin).unwrap_err();
    assert!(e.to_string().contains("rejoin period (0ns)"), "{e}");
    let slow_probe = Timers {
        probe_timeout: Duration::from_millis(200),
        ..Timers::default()
    };
    let e = core(slow_probe).unwrap_err();
    assert!(e.to_string().contains("probe timeout (200ms)"), "{e}");
    assert!(core(Timers::default()).is_ok());
}

#[test]
fn captured_datagrams_of_a_dead_speaker_never_bring_it_back() {
    let mut net = three();
    net.tap = Some(addr(3));
    net.run_until(Duration::from_secs(2), |n| {
        all_see(n, &[1, 2, 3], &["a", "b", "c"])
    })
    .unwrap();
    // Two seconds of c's traffic: probes, acks, gossip and announcements.
    net.run(Duration::from_secs(2));
    net.tap = None;
    let captured = std::mem::take(&mut net.captured);
    assert!(captured.len() > 20, "{}", captured.len());
    // c dies.
    net.cores.remove(&addr(3));
    net.run_until(Duration::from_secs(2), |n| all_see(n, &[1, 2], &["a", "b"]))
        .expect("c never declared down");
    let replay = |net: &mut Net| {
        for (from, to, bytes) in &captured {
            net.inject(*from, *to, bytes.clone());
        }
        // Bounded: 200 rounds of 5 ms.
        for _ in 0..200 {
            net.run(Duration::from_millis(5));
            assert!(all_see(net, &[1, 2], &["a", "b"]), "c came back");
        }
    };
    // At once, while a and b still remember c's counters: every datagram is a duplicate.
    replay(&mut net);
    for i in [1, 2] {
        assert!(
            net.core(i).counters().replayed > 0,
            "{:?}",
            net.core(i).counters()
        );
    }
    // After a and b forgot c (SWIM drops a dead member after 30 s): too old to count.
    net.run(Duration::from_secs(35));
    replay(&mut net);
    for i in [1, 2] {
        assert!(
            net.core(i).counters().stale > 0,
            "{:?}",
            net.core(i).counters()
        );
    }
    // A speaker started now, which never heard of c, refuses them too.
    net.add("d", 4, &[1, 2], KEY);
    net.run_until(Duration::from_secs(2), |n| {
        all_see(n, &[1, 2, 4], &["a", "b", "d"])
    })
    .expect("d never joined");
    let to_d: Vec<_> = captured
        .iter()
        .map(|(f, _, b)| (*f, addr(4), b.clone()))
        .collect();
    for (from, to, bytes) in to_d {
        net.inject(from, to, bytes);
    }
    for _ in 0..200 {
        net.run(Duration::from_millis(5));
        assert!(all_see(&net, &[1, 2, 4], &["a", "b", "d"]), "c came back");
    }
    assert!(net.core(4).counters().stale > 0);
}

#[test]
fn a_speaker_echoing_our_own_datagrams_back_changes_nothing() {
    let mut net = three();
    net.tap = Some(addr(1));
    net.run_until(Duration::from_secs(2), |n| {
        all_see(n, &[1, 2, 3], &["a", "b", "c"])
    })
    .unwrap();
    net.tap = None;
    let captured = std::mem::take(&mut net.captured);
    for (_, to, bytes) in &captured {
        // Back to a, as if from the speaker it went to.
        net.inject(*to, addr(1), bytes.clone());
    }
    net.run(Duration::from_millis(100));
    assert!(net.core(1).counters().replayed >= u64::try_from(captured.len()).unwrap());
    assert!(all_see(&net, &[1, 2, 3], &["a", "b", "c"]));
}

#[test]
fn a_speaker_whose_clock_is_far_off_is_refused_and_counted() {
    let mut net = Net::new();
    net.add("a", 1, &[1, 2], KEY);
    net.add_with("b", 2, &[1, 2], KEY, WireFormat::Stamped, 60_000);
    net.run(Duration::from_secs(3));
    for i in [1, 2] {
        let c = net.core(i).counters();
        assert!(c.stale > 0 && c.received == 0, "{c:?}");
        assert_eq!(net.core(i).view().alive.len(), 1);
    }
    // Within the limit is fine.
    let mut net = Net::new();
    net.add("a", 1, &[1, 2], KEY);
    net.add_with("b", 2, &[1, 2], KEY, WireFormat::Stamped, -20_000);
    net.run_until(Duration::from_secs(2), |n| all_see(n, &[1, 2], &["a", "b"]))
        .expect("20 s of clock difference refused");
}

#[test]
fn an_upgrade_from_version_1_keeps_one_cluster_at_every_step() {
    // Step 0 to 1: speakers without replay protection (a, b) and one upgraded in the upgrade mode (c).
    let mut net = Net::new();
    net.old = BTreeSet::from([addr(1), addr(2)]);
    net.add_with("a", 1, &[1, 2, 3], KEY, WireFormat::Upgrade, 0);
    net.add_with("b", 2, &[1, 2, 3], KEY, WireFormat::Upgrade, 0);
    net.add_with("c", 3, &[1, 2, 3], KEY, WireFormat::Upgrade, 0);
    net.run_until(Duration::from_secs(2), |n| {
        all_see(n, &[1, 2, 3], &["a", "b", "c"])
    })
    .expect("old speakers and the upgrade mode did not agree");
    // Step 1 to 2: two in the upgrade mode, one without it (version 2 only).
    let mut net = Net::new();
    net.add_with("a", 1, &[1, 2, 3], KEY, WireFormat::Upgrade, 0);
    net.add_with("b", 2, &[1, 2, 3], KEY, WireFormat::Upgrade, 0);
    net.add("c", 3, &[1, 2, 3], KEY);
    net.run_until(Duration::from_secs(2), |n| {
        all_see(n, &[1, 2, 3], &["a", "b", "c"])
    })
    .expect("the upgrade mode and version 2 did not agree");
    // Without the upgrade mode a speaker refuses version 1 (counted), so the mode is needed.
    let mut net = Net::new();
    net.old = BTreeSet::from([addr(1)]);
    net.add_with("a", 1, &[1, 2], KEY, WireFormat::Upgrade, 0);
    net.add("b", 2, &[1, 2], KEY);
    net.run(Duration::from_secs(1));
    assert!(net.core(2).counters().refused > 0);
    assert_eq!(net.core(2).view().alive, names(&["b"]));
}
