//! The session state machine between two simulated systems: no sockets, no clock. Every
//! packet goes through its wire form and arrives 1 ms after it was sent; time moves in 1 ms
//! steps, so each run is deterministic.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use lb_bfd::session::{Session, SessionConfig, SessionEvent};
use lb_bfd::wire::{ControlRepr, Diagnostic, State};

const MS: Duration = Duration::from_millis(1);

/// Two sessions, A and B, and the packets between them.
struct Link {
    a: Session,
    b: Session,
    now: Instant,
    start: Instant,
    /// (arrival, to B?, packet)
    in_flight: Vec<(Instant, bool, ControlRepr)>,
    /// Packets from A (true) or B (false) are lost.
    cut_a: bool,
    cut_b: bool,
    /// Every packet sent: (time since start, from A?, packet).
    sent: Vec<(Duration, bool, ControlRepr)>,
    /// Every state change: (time since start, A?, event).
    events: Vec<(Duration, bool, SessionEvent)>,
}

fn config(tx_ms: u64, rx_ms: u64, mult: u8) -> SessionConfig {
    SessionConfig {
        desired_min_tx: Duration::from_millis(tx_ms),
        required_min_rx: Duration::from_millis(rx_ms),
        detect_mult: mult,
        passive: false,
    }
}

impl Link {
    fn new(a: SessionConfig, b: SessionConfig) -> Self {
        let now = Instant::now();
        let disc = |n| NonZeroU32::new(n).unwrap();
        Self {
            a: Session::new(a, disc(1), now, 1).unwrap(),
            b: Session::new(b, disc(2), now, 2).unwrap(),
            now,
            start: now,
            in_flight: Vec::new(),
            cut_a: false,
            cut_b: false,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn collect(&mut self) {
        let at = self.now - self.start;
        for (from_a, s) in [(true, &mut self.a), (false, &mut self.b)] {
            while let Some(p) = s.poll_transmit() {
                self.sent.push((at, from_a, p));
                let cut = if from_a { self.cut_a } else { self.cut_b };
                if !cut {
                    self.in_flight.push((self.now + MS, from_a, p));
                }
            }
            while let Some(e) = s.poll_event() {
                self.events.push((at, from_a, e));
            }
        }
    }

    /// Moves time on by `d`, delivering packets and running timers.
    fn run(&mut self, d: Duration) {
        self.collect();
        // Bounded: one step per millisecond.
        for _ in 0..d.as_millis() {
            self.now += MS;
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
                .into_iter()
                .partition(|(t, _, _)| *t <= now);
            self.in_flight = later;
            for (_, to_b, p) in due {
                // Through the wire form, as a socket would carry it.
                let p = ControlRepr::parse_bytes(&p.to_bytes()).unwrap();
                if to_b {
                    self.b.handle_packet(&p, now);
                } else {
                    self.a.handle_packet(&p, now);
                }
            }
            for s in [&mut self.a, &mut self.b] {
                if s.next_deadline().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
            self.collect();
        }
    }

    fn run_until(&mut self, limit: Duration, done: impl Fn(&Self) -> bool) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.run(MS);
        }
        done(self).then(|| self.now - start)
    }

    fn both_up(&self) -> bool {
        self.a.state() == State::Up && self.b.state() == State::Up
    }

    /// The gaps between consecutive periodic packets (no Poll/Final, same state) of one side
    /// sent after `after`.
    fn gaps(&self, from_a: bool, after: Duration) -> Vec<Duration> {
        let times: Vec<Duration> = self
            .sent
            .iter()
            .filter(|(t, a, p)| *a == from_a && *t >= after && !p.final_ && !p.poll)
            .map(|(t, _, _)| *t)
            .collect();
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[test]
fn two_active_systems_come_up_then_switch_to_the_fast_rate_through_a_poll() {
    let mut l = Link::new(config(300, 300, 3), config(300, 300, 3));
    let took = l
        .run_until(Duration::from_secs(3), Link::both_up)
        .expect("never Up");
    assert!(took < Duration::from_millis(50), "{took:?}");
    // Up: the poll sequence settles and both send every 300 ms (less jitter).
    l.run(Duration::from_secs(2));
    for s in [&l.a, &l.b] {
        assert!(!s.polling(), "poll sequence never ended");
        assert_eq!(s.transmit_interval(), Some(Duration::from_millis(300)));
        assert_eq!(s.detection_time(), Some(Duration::from_millis(900)));
    }
    // Before Up, at most one packet a second went out (apart from the state-change ones).
    let polls: Vec<_> = l.sent.iter().filter(|(_, _, p)| p.poll).collect();
    assert!(!polls.is_empty(), "no poll sequence after coming Up");
    assert!(l.sent.iter().any(|(_, _, p)| p.final_), "no Final");
    // Events: Down -> Init -> Up or Down -> Up on each side, nothing else.
    for side in [true, false] {
        let to: Vec<State> = l
            .events
            .iter()
            .filter(|(_, a, _)| *a == side)
            .map(|(_, _, SessionEvent::StateChanged { to, .. })| *to)
            .collect();
        assert!(
            to == [State::Init, State::Up] || to == [State::Up],
            "{side}: {to:?}"
        );
    }
}

#[test]
fn periodic_packets_are_jittered_between_75_and_100_percent() {
    let mut l = Link::new(config(100, 100, 3), config(100, 100, 3));
    l.run_until(Duration::from_secs(3), Link::both_up).unwrap();
    l.run(Duration::from_secs(1));
    let after = l.now - l.start;
    l.run(Duration::from_secs(10));
    let gaps = l.gaps(true, after);
    assert!(gaps.len() > 90, "{} gaps", gaps.len());
    for g in &gaps {
        // 1 ms of simulation granularity either way.
        assert!(
            *g >= Duration::from_millis(74) && *g <= Duration::from_millis(101),
            "{g:?}"
        );
    }
    let spread = gaps.iter().max().unwrap().as_millis() - gaps.iter().min().unwrap().as_millis();
    assert!(spread >= 15, "no jitter: {gaps:?}");
    // With a multiplier of 1: 75 to 90 %.
    let mut l = Link::new(config(100, 100, 1), config(100, 100, 1));
    l.run_until(Duration::from_secs(3), Link::both_up).unwrap();
    l.run(Duration::from_secs(1));
    let after = l.now - l.start;
    l.run(Duration::from_secs(10));
    for g in l.gaps(true, after) {
        assert!(
            g >= Duration::from_millis(74) && g <= Duration::from_millis(91),
            "{g:?}"
        );
    }
}

#[test]
fn a_silent_remote_is_declared_down_within_the_detection_time() {
    let mut l = Link::new(config(50, 50, 3), config(50, 50, 3));
    l.run_until(Duration::from_secs(3), Link::both_up).unwrap();
    l.run(Duration::from_secs(1));
    // B stops sending (frozen, or its link cut).
    l.cut_b = true;
    let last = l
        .sent
        .iter()
        .rev()
        .find(|(_, a, _)| !*a)
        .map(|(t, _, _)| *t)
        .unwrap();
    let took = l
        .run_until(Duration::from_secs(2), |l| l.a.state() == State::Down)
        .expect("A never went Down");
    let since_last = (l.now - l.start) - last;
    // Detection time 150 ms from the last packet (plus the 1 ms link delay and step).
    assert!(since_last <= Duration::from_millis(153), "{since_last:?}");
    assert!(took <= Duration::from_millis(153), "{took:?}");
    assert_eq!(l.a.diagnostic(), Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(l.a.counters().down_events, 1);
    // A tells B it is down; B, still hearing A, goes Down too (neighbour signalled).
    l.run(Duration::from_millis(50));
    assert_eq!(l.b.state(), State::Down);
    assert_eq!(l.b.diagnostic(), Diagnostic::NeighborSignaledSessionDown);
    // B is back: the session comes up again.
    l.cut_b = false;
    l.run_until(Duration::from_secs(5), Link::both_up)
        .expect("never Up again");
    assert_eq!(l.a.counters().up_events, 2);
}

#[test]
fn a_passive_system_waits_for_the_other_and_two_passive_ones_never_talk() {
    let passive = SessionConfig {
        passive: true,
        ..config(300, 300, 3)
    };
    let mut l = Link::new(passive, passive);
    l.run(Duration::from_secs(5));
    assert!(l.sent.is_empty(), "a passive system sent {:?}", l.sent[0]);
    assert_eq!(l.a.next_deadline(), None);

    let mut l = Link::new(passive, config(300, 300, 3));
    let took = l.run_until(Duration::from_secs(3), Link::both_up).unwrap();
    assert!(took < Duration::from_millis(50), "{took:?}");
    // A's first packet came after B's first.
    let first_a = l.sent.iter().find(|(_, a, _)| *a).unwrap().0;
    let first_b = l.sent.iter().find(|(_, a, _)| !*a).unwrap().0;
    assert!(first_a > first_b);
    // B goes away for good: A detects it, forgets it and falls silent again.
    l.cut_b = true;
    l.run(Duration::from_secs(3));
    assert_eq!(l.a.state(), State::Down);
    assert_eq!(l.a.remote_discriminator(), 0);
    let sent_by_a = l.sent.iter().filter(|(_, a, _)| *a).count();
    l.run(Duration::from_secs(3));
    assert_eq!(l.sent.iter().filter(|(_, a, _)| *a).count(), sent_by_a);
}

#[test]
fn a_timer_change_while_up_goes_through_a_poll_and_keeps_the_session_up() {
    let mut l = Link::new(config(300, 300, 3), config(300, 300, 3));
    l.run_until(Duration::from_secs(3), Link::both_up).unwrap();
    l.run(Duration::from_secs(2));
    let downs = l.a.counters().down_events + l.b.counters().down_events;
    // Slower transmission on A: its rate stays until B answers the poll.
    let now = l.now;
    l.a.set_config(config(1000, 1000, 5), now).unwrap();
    assert!(l.a.polling());
    assert_eq!(l.a.transmit_interval(), Some(Duration::from_millis(300)));
    // B's detection time follows A's new packets only once they arrive.
    l.run_until(Duration::from_secs(1), |l| !l.a.polling())
        .expect("the poll never ended");
    assert_eq!(l.a.transmit_interval(), Some(Duration::from_millis(1000)));
    l.run(Duration::from_secs(5));
    assert_eq!(l.b.detection_time(), Some(Duration::from_millis(5000)));
    // Faster again.
    let now = l.now;
    l.a.set_config(config(50, 50, 3), now).unwrap();
    l.run(Duration::from_secs(3));
    assert!(!l.a.polling());
    assert_eq!(l.a.transmit_interval(), Some(Duration::from_millis(300)));
    assert_eq!(l.b.transmit_interval(), Some(Duration::from_millis(300)));
    assert_eq!(l.b.detection_time(), Some(Duration::from_millis(900)));
    assert!(l.both_up());
    assert_eq!(
        l.a.counters().down_events + l.b.counters().down_events,
        downs,
        "the change flapped the session"
    );
}

#[test]
fn admin_down_takes_the_remote_down_and_holds_the_session() {
    let mut l = Link::new(config(100, 100, 3), config(100, 100, 3));
    l.run_until(Duration::from_secs(3), Link::both_up).unwrap();
    let now = l.now;
    l.a.set_admin_down(true, now);
    l.run(Duration::from_millis(10));
    assert_eq!(l.a.state(), State::AdminDown);
    assert_eq!(l.a.diagnostic(), Diagnostic::AdministrativelyDown);
    assert_eq!(l.b.state(), State::Down);
    assert_eq!(l.b.diagnostic(), Diagnostic::NeighborSignaledSessionDown);
    // Held: B keeps trying, nothing comes up.
    l.run(Duration::from_secs(5));
    assert_eq!(l.a.state(), State::AdminDown);
    assert_ne!(l.b.state(), State::Up);
    assert!(l.a.counters().discarded > 0);
    let now = l.now;
    l.a.set_admin_down(false, now);
    l.run_until(Duration::from_secs(5), Link::both_up)
        .expect("never Up after AdminDown ends");
}

/// A packet from a remote system with discriminator 99.
fn remote(state: State, your: u32, rx_us: u32) -> ControlRepr {
    ControlRepr {
        diagnostic: Diagnostic::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 99,
        your_discriminator: your,
        desired_min_tx: 1_000_000,
        required_min_rx: rx_us,
        required_min_echo_rx: 0,
    }
}

#[test]
fn a_remote_that_asks_for_no_packets_gets_no_periodic_ones() {
    let start = Instant::now();
    let one = NonZeroU32::new(1).unwrap();
    let mut s = Session::new(config(100, 100, 3), one, start, 0).unwrap();
    s.handle_timeout(start);
    assert!(
        s.poll_transmit().is_some(),
        "an active session starts sending"
    );
    // The remote system says Down with a RequiredMinRx of 0: A answers the state change
    // (Init) once, then sends nothing periodically.
    s.handle_packet(&remote(State::Down, 0, 0), start);
    assert_eq!(s.state(), State::Init);
    assert_eq!(s.poll_transmit().map(|p| p.state), Some(State::Init));
    assert_eq!(s.transmit_interval(), None);
    let mut now = start;
    // Bounded: 2 s in 1 ms steps, fed a packet every 500 ms so detection never fires.
    for step in 0..2000u32 {
        now += MS;
        if step % 500 == 0 {
            s.handle_packet(&remote(State::Init, 1, 0), now);
        }
        if s.next_deadline().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
    }
    assert_eq!(s.state(), State::Up);
    // Only the Up state change went out.
    let sent: Vec<State> = std::iter::from_fn(|| s.poll_transmit())
        .map(|p| p.state)
        .collect();
    assert_eq!(sent, [State::Up]);
}

#[test]
fn packets_for_another_discriminator_are_discarded() {
    let now = Instant::now();
    let mut s = Session::new(config(300, 300, 3), NonZeroU32::new(7).unwrap(), now, 0).unwrap();
    let p = remote(State::Init, 8, 300_000);
    s.handle_packet(&p, now);
    assert_eq!(s.state(), State::Down);
    assert_eq!(s.counters().discarded, 1);
    // Addressed to us, it counts.
    s.handle_packet(
        &ControlRepr {
            your_discriminator: 7,
            ..p
        },
        now,
    );
    assert_eq!(s.state(), State::Up);
}

#[test]
fn a_configuration_the_packets_cannot_carry_is_refused() {
    let now = Instant::now();
    let one = NonZeroU32::new(1).unwrap();
    for bad in [
        config(0, 300, 3),
        config(300, 0, 3),
        config(300, 300, 0),
        SessionConfig {
            desired_min_tx: Duration::from_secs(5_000),
            ..config(300, 300, 3)
        },
    ] {
        assert!(Session::new(bad, one, now, 0).is_err(), "{bad:?}");
    }
    let mut s = Session::new(config(300, 300, 3), one, now, 0).unwrap();
    assert!(s.set_config(config(0, 300, 3), now).is_err());
    assert_eq!(s.config(), &config(300, 300, 3));
}

#[test]
fn a_second_change_before_the_final_puts_no_unanswered_value_in_force() {
    let mut l = Link::new(config(300, 300, 3), config(300, 300, 3));
    l.run_until(Duration::from_secs(3), Link::both_up).unwrap();
    l.run(Duration::from_secs(2));
    // A's polls are lost for a moment: no Final comes back.
    l.cut_a = true;
    let now = l.now;
    l.a.set_config(config(2000, 300, 3), now).unwrap();
    l.run(Duration::from_millis(100));
    let now = l.now;
    l.a.set_config(config(1000, 300, 3), now).unwrap();
    // Still the 300 ms B last agreed to: 1000 ms would outlast B's 900 ms detection time.
    assert!(l.a.polling());
    assert_eq!(l.a.transmit_interval(), Some(Duration::from_millis(300)));
    l.cut_a = false;
    l.run_until(Duration::from_secs(2), |l| !l.a.polling())
        .expect("the poll never ended");
    assert_eq!(l.a.transmit_interval(), Some(Duration::from_millis(1000)));
    assert!(l.both_up());
    assert_eq!(l.b.counters().down_events, 0);
}
