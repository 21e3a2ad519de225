#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Integration tests of the sans-IO session state machine (`lb_bgp::fsm`, RFC 4271 §8): exact
//! actions and states for the happy path, hold-time negotiation and timers, connect-retry
//! backoff, OPEN checks, unexpected messages, collision detection (§6.8), stop, and a property
//! test over random event sequences.

use std::net::Ipv4Addr;
use std::time::Duration;

use lb_bgp::fsm::{
    Action, Backoff, Direction, DownReason, Event, Negotiated, STABLE_AFTER, Session,
    SessionConfig, State,
};
use lb_bgp::wire::{
    AS_TRANS, Capability, Codec, DecodeError, ErrorCode, Family, GracefulRestart,
    GracefulRestartFamily, Message, Notification, Open, RouteRefresh, Update, cease,
    fsm as fsm_error, open_error,
};
use proptest::prelude::*;

use Direction::{Inbound, Outbound};

mod fixtures;

const LOCAL_ASN: u32 = 64500;
const PEER_ASN: u32 = 64501;
const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// A peer identifier lower than ours.
const LOWER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
/// A peer identifier higher than ours.
const HIGHER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

fn config() -> SessionConfig {
    let mut c = SessionConfig::new(LOCAL_ASN, PEER_ASN, LOCAL_ID);
    c.seed = 0x5eed_1234_abcd_0001;
    c
}

/// The capabilities a well-behaved peer advertises for `asn`.
fn peer_caps(asn: u32) -> Vec<Capability> {
    vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::Multiprotocol(Family::IPV6_UNICAST),
        Capability::RouteRefresh,
        Capability::FourOctetAs(asn),
    ]
}

fn peer_open(hold: u16, id: Ipv4Addr) -> Open {
    Open::new(PEER_ASN, hold, id, peer_caps(PEER_ASN))
}

fn peer_open_gr(hold: u16, id: Ipv4Addr, restart: bool) -> Open {
    let mut open = peer_open(hold, id);
    open.capabilities
        .push(Capability::GracefulRestart(GracefulRestart {
            restart_state: restart,
            notification: false,
            restart_time: 120,
            families: vec![GracefulRestartFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
            }],
        }));
    open
}

fn changed(from: State, to: State) -> Action {
    Action::StateChanged { from, to }
}

fn send(dir: Direction, message: Message) -> Action {
    Action::Send(dir, message)
}

fn notif(code: ErrorCode, subcode: u8, data: Vec<u8>) -> Notification {
    Notification::new(code, subcode, data)
}

fn msg(dir: Direction, m: Message) -> Event {
    Event::Message(dir, m)
}

/// The actions of closing `dir` after sending `n`, when the connection was not established.
fn failed_with(dir: Direction, n: &Notification) -> Vec<Action> {
    vec![
        send(dir, Message::Notification(n.clone())),
        Action::Close(dir),
        Action::ConnectionFailed(dir, DownReason::LocalNotification(n.clone())),
    ]
}

/// Start, Connected at 1 s: the outbound connection is in OpenSent.
fn open_sent(config: SessionConfig) -> Session {
    let mut s = Session::new(config);
    s.handle(secs(0), Event::Start);
    s.handle(secs(1), Event::Connected);
    assert_eq!(s.state(), State::OpenSent);
    s
}

/// Drives a session to Established on the outbound connection: OPEN received at 2 s,
/// KEEPALIVE at 3 s.
fn established(config: SessionConfig, peer: Open) -> (Session, Negotiated) {
    let mut s = open_sent(config);
    s.handle(secs(2), msg(Outbound, Message::Open(peer)));
    let actions = s.handle(secs(3), msg(Outbound, Message::Keepalive));
    let Some(Action::Established(n)) = actions.first() else {
        panic!("not established: {actions:?}");
    };
    assert_eq!(s.state(), State::Established);
    (s, n.clone())
}

fn negotiated_hold(ours: u16, theirs: u16) -> Negotiated {
    let mut c = config();
    c.hold_time = ours;
    established(c, peer_open(theirs, LOWER_ID)).1
}

// ---------------------------------------------------------------------------------------------
// Happy path
// ---------------------------------------------------------------------------------------------

#[test]
fn happy_path_outbound_with_graceful_restart() {
    let mut c = config();
    c.graceful_restart = Some(120);
    c.hold_time = 90;
    let mut s = Session::new(c);
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.next_deadline(), None);

    assert_eq!(
        s.handle(secs(0), Event::Start),
        vec![Action::Connect, changed(State::Idle, State::Connect)]
    );
    assert_eq!(s.state(), State::Connect);

    let expected_open = Open {
        my_as: 64500,
        hold_time: 90,
        router_id: LOCAL_ID,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(LOCAL_ASN),
            Capability::GracefulRestart(fixtures::graceful_restart_both(true, false, (true, true))),
        ],
    };
    assert_eq!(s.local_open(), expected_open);
    assert_eq!(
        s.handle(secs(1), Event::Connected),
        vec![
            send(Outbound, Message::Open(expected_open.clone())),
            changed(State::Connect, State::OpenSent)
        ]
    );
    assert_eq!(s.state(), State::OpenSent);
    // The OPEN hold timer (4 minutes) runs while waiting for the peer's OPEN.
    assert_eq!(s.next_deadline(), Some(secs(1) + secs(240)));

    // On the wire: the GR capability is code 64, R bit + 120 s, both families with F bit.
    let bytes = Message::Open(expected_open)
        .to_bytes(Codec::default())
        .unwrap();
    let gr: [u8; 12] = [64, 10, 0x80, 120, 0, 1, 1, 0x80, 0, 2, 1, 0x80];
    assert!(
        bytes.windows(gr.len()).any(|w| w == gr),
        "GR capability not found in {bytes:02x?}"
    );

    // The R bit is only on the first OPEN since the session was created.
    assert!(!s.local_open().graceful_restart().unwrap().restart_state);

    // Peer offers IPv6 unicast and IPv4 multicast only, 2-octet-capable ASN, hold 30.
    let peer = Open::new(
        PEER_ASN,
        30,
        HIGHER_ID,
        vec![
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::Multiprotocol(Family { afi: 1, safi: 2 }),
            Capability::RouteRefresh,
            Capability::FourOctetAs(PEER_ASN),
        ],
    );
    assert_eq!(
        s.handle(secs(2), msg(Outbound, Message::Open(peer.clone()))),
        vec![
            send(Outbound, Message::Keepalive),
            changed(State::OpenSent, State::OpenConfirm)
        ]
    );
    assert_eq!(s.state(), State::OpenConfirm);
    assert_eq!(s.negotiated(), None);
    // Keepalive at a third of the negotiated hold time.
    assert_eq!(s.next_deadline(), Some(secs(2) + secs(10)));

    let negotiated = Negotiated {
        direction: Outbound,
        peer_open: peer,
        hold_time: secs(30),
        keepalive: secs(10),
        four_octet_as: true,
        families: vec![Family::IPV6_UNICAST],
        peer_graceful_restart: None,
    };
    assert_eq!(
        s.handle(secs(3), msg(Outbound, Message::Keepalive)),
        vec![
            Action::Established(negotiated.clone()),
            changed(State::OpenConfirm, State::Established)
        ]
    );
    assert_eq!(s.state(), State::Established);
    assert_eq!(s.negotiated(), Some(&negotiated));
    assert_eq!(negotiated.codec(), Codec::FOUR_OCTET);
}

#[test]
fn state_changes_are_reported_in_order() {
    let mut s = Session::new(config());
    let mut all = Vec::new();
    all.extend(s.handle(secs(0), Event::Start));
    all.extend(s.handle(secs(1), Event::Connected));
    all.extend(s.handle(
        secs(2),
        msg(Outbound, Message::Open(peer_open(90, LOWER_ID))),
    ));
    all.extend(s.handle(secs(3), msg(Outbound, Message::Keepalive)));
    let states: Vec<(State, State)> = all
        .iter()
        .filter_map(|a| match a {
            Action::StateChanged { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (State::Idle, State::Connect),
            (State::Connect, State::OpenSent),
            (State::OpenSent, State::OpenConfirm),
            (State::OpenConfirm, State::Established),
        ]
    );
}

#[test]
fn open_without_graceful_restart_has_no_gr_capability() {
    let s = Session::new(config());
    let open = s.local_open();
    assert_eq!(open.graceful_restart(), None);
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.asn(), LOCAL_ASN);
    assert!(open.route_refresh());
    assert_eq!(
        open.families(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
}

#[test]
fn graceful_restart_bit_only_on_first_open_since_creation() {
    let mut c = config();
    c.graceful_restart = Some(300);
    c.backoff.jitter = 0.0;
    let mut s = Session::new(c);
    s.handle(secs(0), Event::Start);
    let first = s.handle(secs(1), Event::Connected);
    let Action::Send(Outbound, Message::Open(open)) = &first[0] else {
        panic!("{first:?}");
    };
    let gr = open.graceful_restart().unwrap();
    assert!(gr.restart_state);
    assert_eq!(gr.restart_time, 300);
    assert!(gr.families.iter().all(|f| f.forwarding_preserved));

    // The connection drops; the retry sends a second OPEN without the R bit.
    s.handle(secs(2), Event::Closed(Outbound));
    assert_eq!(s.next_deadline(), Some(secs(3)));
    assert_eq!(
        s.poll(secs(3)),
        vec![Action::Connect, changed(State::Active, State::Connect)]
    );
    let second = s.handle(secs(4), Event::Connected);
    let Action::Send(Outbound, Message::Open(open)) = &second[0] else {
        panic!("{second:?}");
    };
    let gr = open.graceful_restart().unwrap();
    assert!(!gr.restart_state);
    assert!(gr.families.iter().all(|f| f.forwarding_preserved));
}

#[test]
fn four_octet_local_asn_is_sent_as_as_trans() {
    let s = Session::new(SessionConfig::new(4_200_000_000, PEER_ASN, LOCAL_ID));
    let open = s.local_open();
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.four_octet_as(), Some(4_200_000_000));
}

// ---------------------------------------------------------------------------------------------
// Hold time and keepalives
// ---------------------------------------------------------------------------------------------

#[test]
fn hold_time_negotiation_table() {
    // (ours, theirs) -> (hold, keepalive)
    let table: [(u16, u16, Duration, Duration); 8] = [
        (90, 9, secs(9), secs(3)),
        (90, 180, secs(90), secs(30)),
        (30, 90, secs(30), secs(10)),
        (90, 3, secs(3), secs(1)),
        (10, 10, secs(10), Duration::from_secs(10) / 3),
        (90, 0, Duration::ZERO, Duration::ZERO),
        (0, 90, Duration::ZERO, Duration::ZERO),
        (0, 0, Duration::ZERO, Duration::ZERO),
    ];
    for (ours, theirs, hold, keepalive) in table {
        let n = negotiated_hold(ours, theirs);
        assert_eq!(
            (n.hold_time, n.keepalive),
            (hold, keepalive),
            "ours {ours}, theirs {theirs}"
        );
    }
}

#[test]
fn keepalives_every_third_of_hold_time_and_hold_timer_expiry() {
    let mut c = config();
    c.backoff.jitter = 0.25;
    // OPEN received at 2 s, KEEPALIVE at 3 s; negotiated hold 9 s, keepalive 3 s.
    let (mut s, n) = established(c, peer_open(9, LOWER_ID));
    assert_eq!((n.hold_time, n.keepalive), (secs(9), secs(3)));
    // Keepalive timer started when the OPEN was accepted (2 s); hold timer restarted at 3 s.
    assert_eq!(s.next_deadline(), Some(secs(5)));
    assert_eq!(s.poll(ms(4_999)), vec![]);
    assert_eq!(s.poll(secs(5)), vec![send(Outbound, Message::Keepalive)]);
    assert_eq!(s.next_deadline(), Some(secs(8)));
    assert_eq!(s.poll(secs(8)), vec![send(Outbound, Message::Keepalive)]);
    assert_eq!(s.next_deadline(), Some(secs(11)));
    assert_eq!(s.poll(secs(11)), vec![send(Outbound, Message::Keepalive)]);
    // The peer has been silent since 3 s: the hold timer expires at 12 s.
    assert_eq!(s.next_deadline(), Some(secs(12)));
    assert_eq!(s.poll(ms(11_999)), vec![]);
    let hold_expired = notif(ErrorCode::HoldTimerExpired, 0, vec![]);
    assert_eq!(hold_expired.code, 4);
    assert_eq!(
        s.poll(secs(12)),
        vec![
            send(Outbound, Message::Notification(hold_expired.clone())),
            Action::Close(Outbound),
            Action::Down(DownReason::LocalNotification(hold_expired)),
            changed(State::Established, State::Active),
        ]
    );
    assert_eq!(s.state(), State::Active);
    // A retry is scheduled about a second later (the backoff restarted at Established).
    let retry = s.next_deadline().unwrap();
    assert!(
        retry >= secs(12) + ms(750) && retry <= secs(13),
        "{retry:?}"
    );
    assert_eq!(s.poll(retry - ms(1)), vec![]);
    assert_eq!(
        s.poll(retry),
        vec![Action::Connect, changed(State::Active, State::Connect)]
    );
}

#[test]
fn a_peer_that_does_not_read_is_reset_with_cease_out_of_resources() {
    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    let full = notif(ErrorCode::Cease, cease::OUT_OF_RESOURCES, vec![]);
    assert_eq!((full.code, full.subcode), (6, 8));
    assert_eq!(
        s.handle(secs(5), Event::SendQueueFull(Outbound)),
        vec![
            send(Outbound, Message::Notification(full.clone())),
            Action::Close(Outbound),
            Action::Down(DownReason::LocalNotification(full)),
            changed(State::Established, State::Active),
        ]
    );
    // Nothing left to reset: a late report changes nothing.
    assert_eq!(s.handle(secs(5), Event::SendQueueFull(Outbound)), vec![]);
}

/// Brings a session whose retry is due at `at` up again: Connect, Connected, the peer's
/// OPEN and KEEPALIVE, all at `at`.
fn reestablish(s: &mut Session, at: Duration) {
    assert_eq!(
        s.poll(at),
        vec![Action::Connect, changed(State::Active, State::Connect)]
    );
    s.handle(at, Event::Connected);
    s.handle(at, msg(Outbound, Message::Open(peer_open(90, LOWER_ID))));
    s.handle(at, msg(Outbound, Message::Keepalive));
    assert_eq!(s.state(), State::Established);
}

#[test]
fn a_peer_that_comes_up_and_drops_at_once_is_retried_with_growing_delays() {
    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    let mut now = secs(3);
    let mut delays = Vec::new();
    for _ in 0..5 {
        // Up for a second, then the peer closes the connection.
        now += secs(1);
        s.handle(now, Event::Closed(Outbound));
        let retry = s.next_deadline().unwrap();
        delays.push(retry - now);
        now = retry;
        reestablish(&mut s, now);
    }
    // 1, 2, 4, 8, 16 s, each less up to a quarter of jitter.
    for (i, d) in delays.iter().enumerate() {
        let full = secs(1 << i);
        assert!(
            *d <= full && *d >= full.mul_f64(0.75),
            "retry {i}: {delays:?}"
        );
    }
    // Up for longer than STABLE_AFTER: the next drop starts the backoff over.
    now += STABLE_AFTER;
    s.handle(now, Event::Closed(Outbound));
    let d = s.next_deadline().unwrap() - now;
    assert!(d <= secs(1) && d >= ms(750), "{d:?}");
}

#[test]
fn received_messages_restart_the_hold_timer() {
    let (mut s, _) = established(config(), peer_open(9, LOWER_ID));
    // Keepalive at 5 s; peer messages at 10 s and 18 s keep the session up past 12 s.
    assert_eq!(s.poll(secs(5)), vec![send(Outbound, Message::Keepalive)]);
    assert_eq!(s.poll(secs(8)), vec![send(Outbound, Message::Keepalive)]);
    assert_eq!(
        s.handle(secs(10), msg(Outbound, Message::Keepalive)),
        vec![]
    );
    assert_eq!(s.poll(secs(11)), vec![send(Outbound, Message::Keepalive)]);
    assert_eq!(s.poll(secs(12)), vec![]);
    assert_eq!(s.poll(secs(14)), vec![send(Outbound, Message::Keepalive)]);
    assert_eq!(s.poll(secs(17)), vec![send(Outbound, Message::Keepalive)]);
    assert_eq!(
        s.handle(secs(18), msg(Outbound, Message::Update(Update::default()))),
        vec![]
    );
    assert_eq!(s.poll(secs(20)), vec![send(Outbound, Message::Keepalive)]);
    assert_eq!(s.poll(secs(23)), vec![send(Outbound, Message::Keepalive)]);
    assert_eq!(s.poll(secs(26)), vec![send(Outbound, Message::Keepalive)]);
    assert_eq!(s.state(), State::Established);
    // Silent since 18 s: expires at 27 s.
    let actions = s.poll(secs(27));
    assert!(
        matches!(actions[0], Action::Send(Outbound, Message::Notification(ref n)) if n.code == 4)
    );
    assert_eq!(s.state(), State::Active);
}

#[test]
fn zero_hold_time_means_no_timers() {
    let (mut s, n) = established(config(), peer_open(0, LOWER_ID));
    assert_eq!(n.hold_time, Duration::ZERO);
    assert_eq!(n.keepalive, Duration::ZERO);
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.poll(secs(3600)), vec![]);
    assert_eq!(s.poll(secs(86_400)), vec![]);
    assert_eq!(s.state(), State::Established);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn zero_hold_time_has_no_timer_in_open_confirm_either() {
    let mut s = open_sent(config());
    s.handle(
        secs(2),
        msg(Outbound, Message::Open(peer_open(0, LOWER_ID))),
    );
    assert_eq!(s.state(), State::OpenConfirm);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn open_hold_timer_expires_in_open_sent() {
    let mut s = open_sent(config());
    assert_eq!(s.next_deadline(), Some(secs(241)));
    let n = notif(ErrorCode::HoldTimerExpired, 0, vec![]);
    let mut expected = failed_with(Outbound, &n);
    expected.push(changed(State::OpenSent, State::Active));
    assert_eq!(s.poll(secs(241)), expected);
}

#[test]
fn late_poll_does_not_send_back_to_back_keepalives() {
    // RFC 4271 §4.4: KEEPALIVEs are not sent more often than once per second (and §10: at a
    // third of the hold time). A runtime that wakes up late must not get a second keepalive
    // due immediately.
    let (mut s, _) = established(config(), peer_open(9, LOWER_ID));
    assert_eq!(s.next_deadline(), Some(secs(5)));
    // The peer keeps talking, so the hold timer does not expire.
    assert_eq!(
        s.handle(secs(10), msg(Outbound, Message::Keepalive)),
        vec![]
    );
    // The runtime was stalled: the keepalive due at 5 s is polled at 12 s.
    assert_eq!(s.poll(secs(12)), vec![send(Outbound, Message::Keepalive)]);
    let next = s.next_deadline().unwrap();
    assert!(next >= secs(12) + secs(1), "next keepalive at {next:?}");
    assert_eq!(s.poll(secs(12)), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Connect-retry backoff
// ---------------------------------------------------------------------------------------------

/// Fails `attempts` outbound connections in a row and returns the retry delays.
fn retry_delays(s: &mut Session, start: Duration, attempts: usize) -> (Vec<Duration>, Duration) {
    let mut now = start;
    let mut delays = Vec::new();
    for _ in 0..attempts {
        assert_eq!(s.state(), State::Connect);
        assert_eq!(
            s.handle(now, Event::ConnectFailed),
            vec![
                Action::ConnectionFailed(Outbound, DownReason::ConnectionClosed),
                changed(State::Connect, State::Active),
            ]
        );
        let at = s.next_deadline().unwrap();
        delays.push(at - now);
        assert_eq!(s.poll(at - Duration::from_nanos(1)), vec![]);
        assert_eq!(
            s.poll(at),
            vec![Action::Connect, changed(State::Active, State::Connect)]
        );
        now = at + ms(100);
    }
    (delays, now)
}

const NOMINAL: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 120, 120, 120, 120, 120];

#[test]
fn connect_retry_backoff_with_jitter() {
    for seed in [1, 2, 3, 0xdead_beef, u64::MAX] {
        let mut c = config();
        c.seed = seed;
        let mut s = Session::new(c);
        s.handle(secs(0), Event::Start);
        let (delays, _) = retry_delays(&mut s, secs(0), NOMINAL.len());
        for (d, nominal) in delays.iter().zip(NOMINAL) {
            let nominal = secs(nominal);
            assert!(
                *d >= nominal.mul_f64(0.75) && *d <= nominal,
                "seed {seed}: delay {d:?} for nominal {nominal:?} ({delays:?})"
            );
        }
    }
}

#[test]
fn connect_retry_backoff_without_jitter_is_exact() {
    let mut c = config();
    c.backoff = Backoff {
        jitter: 0.0,
        ..Backoff::default()
    };
    let mut s = Session::new(c);
    s.handle(secs(0), Event::Start);
    let (delays, _) = retry_delays(&mut s, secs(0), NOMINAL.len());
    assert_eq!(delays, NOMINAL.map(secs).to_vec());
}

#[test]
fn custom_backoff_bounds() {
    let mut c = config();
    c.backoff = Backoff {
        initial: ms(500),
        max: secs(5),
        jitter: 0.0,
    };
    let mut s = Session::new(c);
    s.handle(secs(0), Event::Start);
    let (delays, _) = retry_delays(&mut s, secs(0), 6);
    assert_eq!(
        delays,
        vec![ms(500), secs(1), secs(2), secs(4), secs(5), secs(5)]
    );
}

#[test]
fn backoff_restarts_after_established() {
    for jitter in [0.0, 0.25] {
        let mut c = config();
        c.backoff.jitter = jitter;
        let mut s = Session::new(c);
        s.handle(secs(0), Event::Start);
        let (delays, now) = retry_delays(&mut s, secs(0), 6);
        assert!(delays[5] > secs(23));
        s.handle(now, Event::Connected);
        s.handle(
            now + secs(1),
            msg(Outbound, Message::Open(peer_open(90, LOWER_ID))),
        );
        let up = s.handle(now + secs(2), msg(Outbound, Message::Keepalive));
        assert!(matches!(up[0], Action::Established(_)));
        let down_at = now + secs(100);
        assert_eq!(
            s.handle(down_at, Event::Closed(Outbound)),
            vec![
                Action::Close(Outbound),
                Action::Down(DownReason::ConnectionClosed),
                changed(State::Established, State::Active),
            ]
        );
        let delay = s.next_deadline().unwrap() - down_at;
        assert!(
            delay >= ms(750) && delay <= secs(1),
            "jitter {jitter}: {delay:?}"
        );
        if jitter == 0.0 {
            assert_eq!(delay, secs(1));
        }
    }
}

#[test]
fn backoff_delay_unit() {
    let b = Backoff::default();
    assert_eq!(b.initial, secs(1));
    assert_eq!(b.max, secs(120));
    assert!((b.jitter - 0.25).abs() < f64::EPSILON);
    for (attempt, nominal) in NOMINAL.iter().enumerate() {
        let attempt = u32::try_from(attempt).unwrap();
        assert_eq!(b.delay(attempt, 0.0), secs(*nominal));
        assert_eq!(b.delay(attempt, 1.0), secs(*nominal).mul_f64(0.75));
        let mid = b.delay(attempt, 0.5);
        assert_eq!(mid, secs(*nominal).mul_f64(0.875));
    }
    // Huge attempt numbers neither overflow nor exceed the cap.
    assert_eq!(b.delay(31, 0.0), secs(120));
    assert_eq!(b.delay(u32::MAX, 0.0), secs(120));
    // `random` is clamped to [0, 1].
    assert_eq!(b.delay(0, -3.0), secs(1));
    assert_eq!(b.delay(0, 7.0), ms(750));
    // No jitter: exact.
    let exact = Backoff {
        jitter: 0.0,
        ..Backoff::default()
    };
    assert_eq!(exact.delay(3, 0.99), secs(8));
    // Jitter is clamped to [0, 1].
    let wild = Backoff {
        jitter: 5.0,
        ..Backoff::default()
    };
    assert_eq!(wild.delay(1, 0.5), secs(1));
    assert_eq!(wild.delay(1, 1.0), Duration::ZERO);
    let negative = Backoff {
        jitter: -1.0,
        ..Backoff::default()
    };
    assert_eq!(negative.delay(2, 0.9), secs(4));
    // A large initial delay saturates instead of overflowing.
    let huge = Backoff {
        initial: Duration::MAX,
        max: secs(60),
        jitter: 0.0,
    };
    assert_eq!(huge.delay(20, 0.0), secs(60));
}

// ---------------------------------------------------------------------------------------------
// OPEN checks
// ---------------------------------------------------------------------------------------------

/// Feeds `peer` to a session in OpenSent and expects the NOTIFICATION `n` and a retry.
fn rejects_open(config: SessionConfig, peer: Open, n: &Notification) {
    let mut s = open_sent(config);
    let mut expected = failed_with(Outbound, n);
    expected.push(changed(State::OpenSent, State::Active));
    assert_eq!(
        s.handle(secs(2), msg(Outbound, Message::Open(peer))),
        expected
    );
    assert_eq!(s.state(), State::Active);
    assert!(s.next_deadline().is_some_and(|d| d > secs(2)));
}

fn accepts_open(config: SessionConfig, peer: Open) -> Session {
    let mut s = open_sent(config);
    assert_eq!(
        s.handle(secs(2), msg(Outbound, Message::Open(peer))),
        vec![
            send(Outbound, Message::Keepalive),
            changed(State::OpenSent, State::OpenConfirm)
        ]
    );
    s
}

#[test]
fn open_with_wrong_peer_as_is_bad_peer_as() {
    let peer = Open::new(64502, 90, LOWER_ID, peer_caps(64502));
    let n = notif(
        ErrorCode::OpenMessage,
        open_error::BAD_PEER_AS,
        64502u16.to_be_bytes().to_vec(),
    );
    assert_eq!((n.code, n.subcode), (2, 2));
    rejects_open(config(), peer, &n);
}

#[test]
fn open_with_as_trans_but_no_four_octet_capability_is_bad_peer_as() {
    let mut c = config();
    c.peer_asn = 4_200_000_001;
    let peer = Open::new(
        4_200_000_001,
        90,
        LOWER_ID,
        vec![Capability::Multiprotocol(Family::IPV4_UNICAST)],
    );
    assert_eq!(peer.my_as, AS_TRANS);
    let n = notif(
        ErrorCode::OpenMessage,
        open_error::BAD_PEER_AS,
        AS_TRANS.to_be_bytes().to_vec(),
    );
    rejects_open(c, peer, &n);
}

#[test]
fn open_with_zero_router_id_is_bad_bgp_identifier() {
    let n = notif(
        ErrorCode::OpenMessage,
        open_error::BAD_BGP_IDENTIFIER,
        vec![0, 0, 0, 0],
    );
    assert_eq!((n.code, n.subcode), (2, 3));
    rejects_open(config(), peer_open(90, Ipv4Addr::UNSPECIFIED), &n);
}

#[test]
fn ibgp_open_with_our_router_id_is_bad_bgp_identifier() {
    let c = SessionConfig::new(LOCAL_ASN, LOCAL_ASN, LOCAL_ID);
    let peer = Open::new(LOCAL_ASN, 90, LOCAL_ID, peer_caps(LOCAL_ASN));
    let n = notif(
        ErrorCode::OpenMessage,
        open_error::BAD_BGP_IDENTIFIER,
        LOCAL_ID.octets().to_vec(),
    );
    rejects_open(c, peer, &n);
}

#[test]
fn ebgp_open_with_our_router_id_is_accepted() {
    let s = accepts_open(config(), peer_open(90, LOCAL_ID));
    assert_eq!(s.state(), State::OpenConfirm);
}

#[test]
fn ibgp_open_with_another_router_id_is_accepted() {
    let c = SessionConfig::new(LOCAL_ASN, LOCAL_ASN, LOCAL_ID);
    let peer = Open::new(LOCAL_ASN, 90, HIGHER_ID, peer_caps(LOCAL_ASN));
    accepts_open(c, peer);
}

#[test]
fn four_octet_local_asn_needs_the_peer_capability() {
    let mut c = config();
    c.local_asn = 4_200_000_000;
    let peer = Open::new(
        PEER_ASN,
        90,
        LOWER_ID,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
        ],
    );
    let n = notif(
        ErrorCode::OpenMessage,
        open_error::UNSUPPORTED_CAPABILITY,
        vec![65, 4, 0xfa, 0x56, 0xea, 0x00],
    );
    assert_eq!((n.code, n.subcode), (2, 7));
    rejects_open(c, peer.clone(), &n);

    // A 2-octet local ASN works with such a peer, and the session uses 2-octet AS_PATHs.
    let (_, negotiated) = established(config(), peer);
    assert!(!negotiated.four_octet_as);
    assert_eq!(negotiated.codec(), Codec::default());
}

#[test]
fn open_without_common_family_is_unsupported_capability() {
    let peer = Open::new(
        PEER_ASN,
        90,
        LOWER_ID,
        vec![
            Capability::Multiprotocol(Family { afi: 1, safi: 2 }),
            Capability::Multiprotocol(Family { afi: 2, safi: 2 }),
            Capability::FourOctetAs(PEER_ASN),
        ],
    );
    let n = notif(
        ErrorCode::OpenMessage,
        open_error::UNSUPPORTED_CAPABILITY,
        vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1],
    );
    assert_eq!((n.code, n.subcode), (2, 7));
    rejects_open(config(), peer, &n);

    // A peer without Multiprotocol capabilities speaks IPv4 unicast only (RFC 4760 §8): no
    // common family with an IPv6-only session.
    let mut c = config();
    c.families = vec![Family::IPV6_UNICAST];
    let peer = Open::new(
        PEER_ASN,
        90,
        LOWER_ID,
        vec![Capability::FourOctetAs(PEER_ASN)],
    );
    let n = notif(
        ErrorCode::OpenMessage,
        open_error::UNSUPPORTED_CAPABILITY,
        vec![1, 4, 0, 2, 0, 1],
    );
    rejects_open(c, peer.clone(), &n);

    // ... but is fine for the default session, which then carries IPv4 only.
    let (_, negotiated) = established(config(), peer);
    assert_eq!(negotiated.families, vec![Family::IPV4_UNICAST]);
}

#[test]
fn four_octet_peer_asn_as_trans_with_capability_is_accepted() {
    let mut c = config();
    c.peer_asn = 4_200_000_000;
    let peer = Open::new(4_200_000_000, 90, LOWER_ID, peer_caps(4_200_000_000));
    assert_eq!(peer.my_as, AS_TRANS);
    let s = accepts_open(c.clone(), peer.clone());
    assert_eq!(s.state(), State::OpenConfirm);
    let (_, negotiated) = established(c, peer);
    assert!(negotiated.four_octet_as);
    assert_eq!(negotiated.peer_open.asn(), 4_200_000_000);
}

// ---------------------------------------------------------------------------------------------
// Unexpected messages and errors
// ---------------------------------------------------------------------------------------------

#[test]
fn update_in_open_sent_is_fsm_error_1() {
    let mut s = open_sent(config());
    let n = notif(
        ErrorCode::FiniteStateMachine,
        fsm_error::UNEXPECTED_IN_OPEN_SENT,
        vec![],
    );
    assert_eq!((n.code, n.subcode), (5, 1));
    let mut expected = failed_with(Outbound, &n);
    expected.push(changed(State::OpenSent, State::Active));
    assert_eq!(
        s.handle(secs(2), msg(Outbound, Message::Update(Update::default()))),
        expected
    );
}

#[test]
fn keepalive_in_open_sent_is_fsm_error_1() {
    let mut s = open_sent(config());
    let actions = s.handle(secs(2), msg(Outbound, Message::Keepalive));
    assert_eq!(
        actions[0],
        send(
            Outbound,
            Message::Notification(notif(ErrorCode::FiniteStateMachine, 1, vec![]))
        )
    );
}

#[test]
fn open_in_open_confirm_is_fsm_error_2() {
    let mut s = accepts_open(config(), peer_open(90, LOWER_ID));
    let n = notif(
        ErrorCode::FiniteStateMachine,
        fsm_error::UNEXPECTED_IN_OPEN_CONFIRM,
        vec![],
    );
    assert_eq!((n.code, n.subcode), (5, 2));
    let mut expected = failed_with(Outbound, &n);
    expected.push(changed(State::OpenConfirm, State::Active));
    assert_eq!(
        s.handle(
            secs(3),
            msg(Outbound, Message::Open(peer_open(90, LOWER_ID)))
        ),
        expected
    );
}

#[test]
fn open_in_established_is_fsm_error_3() {
    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    let n = notif(
        ErrorCode::FiniteStateMachine,
        fsm_error::UNEXPECTED_IN_ESTABLISHED,
        vec![],
    );
    assert_eq!((n.code, n.subcode), (5, 3));
    assert_eq!(
        s.handle(
            secs(4),
            msg(Outbound, Message::Open(peer_open(90, LOWER_ID)))
        ),
        vec![
            send(Outbound, Message::Notification(n.clone())),
            Action::Close(Outbound),
            Action::Down(DownReason::LocalNotification(n)),
            changed(State::Established, State::Active),
        ]
    );
}

#[test]
fn received_notification_closes_without_sending_one() {
    let peer_n = Notification::shutdown("maintenance");
    // Established: Down with the peer's notification.
    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    assert_eq!(
        s.handle(
            secs(4),
            msg(Outbound, Message::Notification(peer_n.clone()))
        ),
        vec![
            Action::Close(Outbound),
            Action::Down(DownReason::PeerNotification(peer_n.clone())),
            changed(State::Established, State::Active),
        ]
    );
    // OpenSent: a connection failure, no Down.
    let mut s = open_sent(config());
    assert_eq!(
        s.handle(
            secs(2),
            msg(Outbound, Message::Notification(peer_n.clone()))
        ),
        vec![
            Action::Close(Outbound),
            Action::ConnectionFailed(Outbound, DownReason::PeerNotification(peer_n.clone())),
            changed(State::OpenSent, State::Active),
        ]
    );
    // OpenConfirm too.
    let mut s = accepts_open(config(), peer_open(90, LOWER_ID));
    let actions = s.handle(secs(3), msg(Outbound, Message::Notification(peer_n)));
    assert!(!actions.iter().any(|a| matches!(a, Action::Send(..))));
    assert_eq!(s.state(), State::Active);
}

#[test]
fn decode_error_sends_its_notification_then_closes() {
    // A real decode error: a header with a broken marker.
    let mut bytes = Message::Keepalive.to_bytes(Codec::default()).unwrap();
    bytes[0] = 0;
    let err: DecodeError = Message::decode(&bytes, Codec::default()).unwrap_err();
    assert_eq!((err.notification.code, err.notification.subcode), (1, 1));

    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    assert_eq!(
        s.handle(secs(4), Event::DecodeError(Outbound, err.clone())),
        vec![
            send(Outbound, Message::Notification(err.notification.clone())),
            Action::Close(Outbound),
            Action::Down(DownReason::LocalNotification(err.notification.clone())),
            changed(State::Established, State::Active),
        ]
    );

    let mut s = open_sent(config());
    let mut expected = failed_with(Outbound, &err.notification);
    expected.push(changed(State::OpenSent, State::Active));
    assert_eq!(
        s.handle(secs(2), Event::DecodeError(Outbound, err.clone())),
        expected
    );

    // On a direction without a connection it is ignored.
    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    assert_eq!(s.handle(secs(4), Event::DecodeError(Inbound, err)), vec![]);
    assert_eq!(s.state(), State::Established);
}

#[test]
fn route_refresh_in_established_is_reported() {
    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
        assert_eq!(
            s.handle(
                secs(4),
                msg(
                    Outbound,
                    Message::RouteRefresh(RouteRefresh { family, subtype: 0 })
                )
            ),
            vec![Action::RouteRefresh(family)]
        );
    }
    assert_eq!(s.state(), State::Established);
}

#[test]
fn route_refresh_for_a_family_not_negotiated_is_ignored() {
    // The session offers IPv4 only; the peer asks for IPv6 and for an unknown family.
    let mut c = config();
    c.families = vec![Family::IPV4_UNICAST];
    let (mut s, negotiated) = established(c, peer_open(90, LOWER_ID));
    assert_eq!(negotiated.families, [Family::IPV4_UNICAST]);
    for family in [Family::IPV6_UNICAST, Family { afi: 25, safi: 65 }] {
        assert_eq!(
            s.handle(
                secs(4),
                msg(
                    Outbound,
                    Message::RouteRefresh(RouteRefresh { family, subtype: 0 })
                )
            ),
            vec![],
            "{family}"
        );
    }
    assert_eq!(s.state(), State::Established);
}

#[test]
fn keepalive_and_update_in_established_are_silent() {
    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    assert_eq!(s.handle(secs(4), msg(Outbound, Message::Keepalive)), vec![]);
    assert_eq!(
        s.handle(secs(5), msg(Outbound, Message::Update(Update::default()))),
        vec![]
    );
    assert_eq!(s.state(), State::Established);
}

#[test]
fn closed_connection_before_established_is_a_connection_failure() {
    let mut s = open_sent(config());
    assert_eq!(
        s.handle(secs(2), Event::Closed(Outbound)),
        vec![
            Action::Close(Outbound),
            Action::ConnectionFailed(Outbound, DownReason::ConnectionClosed),
            changed(State::OpenSent, State::Active),
        ]
    );
    // A second Closed for the same direction is ignored.
    assert_eq!(s.handle(secs(2), Event::Closed(Outbound)), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Collision detection (RFC 4271 §6.8)
// ---------------------------------------------------------------------------------------------

/// Outbound in OpenSent (or OpenConfirm when `confirm`), then the peer connects and its OPEN
/// arrives on the inbound connection.
fn collide(confirm: bool, peer_id: Ipv4Addr) -> (Session, Vec<Action>) {
    let mut s = open_sent(config());
    if confirm {
        s.handle(
            secs(2),
            msg(Outbound, Message::Open(peer_open(90, peer_id))),
        );
        assert_eq!(s.state(), State::OpenConfirm);
    }
    let accepted = s.handle(secs(3), Event::Accepted);
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    let Action::Send(Inbound, Message::Open(open)) = &accepted[0] else {
        panic!("{accepted:?}");
    };
    assert_eq!(open.router_id, LOCAL_ID);
    let actions = s.handle(secs(4), msg(Inbound, Message::Open(peer_open(90, peer_id))));
    (s, actions)
}

fn collision() -> Notification {
    let n = notif(
        ErrorCode::Cease,
        cease::CONNECTION_COLLISION_RESOLUTION,
        vec![],
    );
    assert_eq!((n.code, n.subcode), (6, 7));
    n
}

#[test]
fn collision_local_id_higher_closes_inbound() {
    for confirm in [false, true] {
        let (mut s, actions) = collide(confirm, LOWER_ID);
        assert_eq!(
            actions,
            failed_with(Inbound, &collision()),
            "confirm {confirm}"
        );
        let expected_state = if confirm {
            State::OpenConfirm
        } else {
            State::OpenSent
        };
        assert_eq!(s.state(), expected_state);
        // The outbound connection goes on to Established.
        if !confirm {
            s.handle(
                secs(5),
                msg(Outbound, Message::Open(peer_open(90, LOWER_ID))),
            );
        }
        let up = s.handle(secs(6), msg(Outbound, Message::Keepalive));
        let Action::Established(n) = &up[0] else {
            panic!("{up:?}");
        };
        assert_eq!(n.direction, Outbound);
        assert_eq!(s.state(), State::Established);
    }
}

#[test]
fn collision_local_id_lower_closes_outbound() {
    for confirm in [false, true] {
        let (mut s, actions) = collide(confirm, HIGHER_ID);
        let mut expected = failed_with(Outbound, &collision());
        expected.push(send(Inbound, Message::Keepalive));
        if !confirm {
            expected.push(changed(State::OpenSent, State::OpenConfirm));
        }
        assert_eq!(actions, expected, "confirm {confirm}");
        assert_eq!(s.state(), State::OpenConfirm);
        let up = s.handle(secs(5), msg(Inbound, Message::Keepalive));
        let Action::Established(n) = &up[0] else {
            panic!("{up:?}");
        };
        assert_eq!(n.direction, Inbound);
        assert_eq!(n.peer_open.router_id, HIGHER_ID);
        assert_eq!(up[1], changed(State::OpenConfirm, State::Established));
        assert_eq!(s.state(), State::Established);
        assert_eq!(s.negotiated().unwrap().direction, Inbound);
        // Keepalives now go on the inbound connection; the pending retry does not reconnect.
        let mut now = secs(5);
        for _ in 0..10 {
            let Some(d) = s.next_deadline() else { break };
            now = now.max(d);
            for a in s.poll(now) {
                assert!(
                    matches!(a, Action::Send(Inbound, Message::Keepalive)),
                    "{a:?}"
                );
            }
            s.handle(now, msg(Inbound, Message::Keepalive));
        }
    }
}

#[test]
fn collision_with_established_closes_the_new_connection() {
    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    let accepted = s.handle(secs(10), Event::Accepted);
    assert!(matches!(
        accepted.as_slice(),
        [Action::Send(Inbound, Message::Open(_))]
    ));
    assert_eq!(s.state(), State::Established);
    // Whatever the identifiers, an OPEN without the GR restart bit loses.
    for peer in [peer_open(90, HIGHER_ID), peer_open_gr(90, HIGHER_ID, false)] {
        let mut s = s.clone();
        assert_eq!(
            s.handle(secs(11), msg(Inbound, Message::Open(peer))),
            failed_with(Inbound, &collision())
        );
        assert_eq!(s.state(), State::Established);
        assert_eq!(s.negotiated().unwrap().direction, Outbound);
        // Only the established connection's keepalive timer (OPEN at 2 s + 30 s) is left.
        assert_eq!(s.next_deadline(), Some(secs(32)));
    }
}

#[test]
fn collision_with_established_and_peer_restart_replaces_the_old_connection() {
    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    s.handle(secs(10), Event::Accepted);
    let restarted = peer_open_gr(90, LOWER_ID, true);
    let n = collision();
    assert_eq!(
        s.handle(secs(11), msg(Inbound, Message::Open(restarted.clone()))),
        vec![
            send(Outbound, Message::Notification(n.clone())),
            Action::Close(Outbound),
            Action::Down(DownReason::LocalNotification(n)),
            send(Inbound, Message::Keepalive),
            changed(State::Established, State::OpenConfirm),
        ]
    );
    let up = s.handle(secs(12), msg(Inbound, Message::Keepalive));
    let Action::Established(negotiated) = &up[0] else {
        panic!("{up:?}");
    };
    assert_eq!(negotiated.direction, Inbound);
    assert_eq!(
        negotiated.peer_graceful_restart,
        restarted.graceful_restart().cloned()
    );
    assert_eq!(up[1], changed(State::OpenConfirm, State::Established));
}

#[test]
fn accepted_while_stopped_is_rejected() {
    let rejected = notif(ErrorCode::Cease, cease::CONNECTION_REJECTED, vec![]);
    assert_eq!((rejected.code, rejected.subcode), (6, 5));
    let expected = vec![
        send(Inbound, Message::Notification(rejected)),
        Action::Close(Inbound),
    ];
    // Never started.
    let mut s = Session::new(config());
    assert_eq!(s.handle(secs(1), Event::Accepted), expected);
    assert_eq!(s.state(), State::Idle);
    // Stopped after running.
    let (mut s, _) = established(config(), peer_open(90, LOWER_ID));
    s.handle(secs(5), Event::Stop(Notification::shutdown("bye")));
    assert_eq!(s.handle(secs(6), Event::Accepted), expected);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn inbound_only_session() {
    // The peer connects while we wait for the retry timer: the session comes up inbound.
    let mut s = Session::new(config());
    s.handle(secs(0), Event::Start);
    s.handle(secs(1), Event::ConnectFailed);
    assert_eq!(s.state(), State::Active);
    let accepted = s.handle(secs(1) + ms(10), Event::Accepted);
    assert!(matches!(
        accepted[0],
        Action::Send(Inbound, Message::Open(_))
    ));
    assert_eq!(accepted[1], changed(State::Active, State::OpenSent));
    let actions = s.handle(
        secs(1) + ms(20),
        msg(Inbound, Message::Open(peer_open(90, HIGHER_ID))),
    );
    assert_eq!(
        actions,
        vec![
            send(Inbound, Message::Keepalive),
            changed(State::OpenSent, State::OpenConfirm)
        ]
    );
    let up = s.handle(secs(1) + ms(30), msg(Inbound, Message::Keepalive));
    assert!(matches!(&up[0], Action::Established(n) if n.direction == Inbound));
}

// ---------------------------------------------------------------------------------------------
// Stop
// ---------------------------------------------------------------------------------------------

#[test]
fn stop_while_established() {
    let (mut s, _) = established(config(), peer_open(9, LOWER_ID));
    let bye = Notification::shutdown("bye");
    assert_eq!(bye.shutdown_message(), Some("bye"));
    assert_eq!(
        s.handle(secs(4), Event::Stop(bye.clone())),
        vec![
            send(Outbound, Message::Notification(bye.clone())),
            Action::Close(Outbound),
            Action::Down(DownReason::LocalNotification(bye)),
            changed(State::Established, State::Idle),
        ]
    );
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.next_deadline(), None);
    for t in [5, 10, 100, 10_000] {
        assert_eq!(s.poll(secs(t)), vec![]);
    }
    // Messages on the closed connection are ignored.
    assert_eq!(
        s.handle(secs(20), msg(Outbound, Message::Keepalive)),
        vec![]
    );
    // Start again connects at once.
    assert_eq!(
        s.handle(secs(30), Event::Start),
        vec![Action::Connect, changed(State::Idle, State::Connect)]
    );
}

#[test]
fn stop_closes_both_connections_and_cancels_the_retry() {
    let mut s = open_sent(config());
    s.handle(secs(2), Event::Accepted);
    let bye = Notification::shutdown("bye");
    let mut expected = failed_with(Outbound, &bye);
    expected.extend(failed_with(Inbound, &bye));
    expected.push(changed(State::OpenSent, State::Idle));
    assert_eq!(s.handle(secs(3), Event::Stop(bye)), expected);
    assert_eq!(s.next_deadline(), None);

    // Stop while waiting for the retry timer.
    let mut s = Session::new(config());
    s.handle(secs(0), Event::Start);
    s.handle(secs(1), Event::ConnectFailed);
    assert!(s.next_deadline().is_some());
    assert_eq!(
        s.handle(secs(1), Event::Stop(Notification::shutdown("bye"))),
        vec![changed(State::Active, State::Idle)]
    );
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.poll(secs(1000)), vec![]);

    // A connection that completes after Stop is closed at once.
    let mut s = Session::new(config());
    s.handle(secs(0), Event::Start);
    assert_eq!(
        s.handle(secs(0), Event::Stop(Notification::shutdown("bye"))),
        vec![changed(State::Connect, State::Idle)]
    );
    assert_eq!(
        s.handle(secs(1), Event::Connected),
        vec![Action::Close(Outbound)]
    );
    assert_eq!(s.state(), State::Idle);
}

// ---------------------------------------------------------------------------------------------
// Property test
// ---------------------------------------------------------------------------------------------

/// What the peer sends in a generated message.
#[derive(Debug, Clone)]
enum PeerMsg {
    Open {
        hold: u16,
        higher_id: bool,
        restart: bool,
        bad_asn: bool,
    },
    Keepalive,
    Update,
    Notification,
    RouteRefresh,
}

/// One step of the simulated runtime.
#[derive(Debug, Clone)]
enum Op {
    Start,
    Stop,
    Connected,
    ConnectFailed,
    Accepted,
    Closed(Direction),
    Message(Direction, PeerMsg),
    DecodeError(Direction),
    Poll,
    /// Jump to the next deadline (when there is one) and poll.
    PollAtDeadline,
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Outbound), Just(Inbound)]
}

fn peer_msg() -> impl Strategy<Value = PeerMsg> {
    prop_oneof![
        4 => (
            prop::sample::select(vec![0u16, 3, 9, 90, 240]),
            any::<bool>(),
            any::<bool>(),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(hold, higher_id, restart, bad_asn)| PeerMsg::Open {
                hold,
                higher_id,
                restart,
                bad_asn
            }),
        6 => Just(PeerMsg::Keepalive),
        1 => Just(PeerMsg::Update),
        1 => Just(PeerMsg::Notification),
        1 => Just(PeerMsg::RouteRefresh),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Start),
        1 => Just(Op::Stop),
        4 => Just(Op::Connected),
        2 => Just(Op::ConnectFailed),
        3 => Just(Op::Accepted),
        1 => direction().prop_map(Op::Closed),
        10 => (direction(), peer_msg()).prop_map(|(d, m)| Op::Message(d, m)),
        1 => direction().prop_map(Op::DecodeError),
        3 => Just(Op::Poll),
        4 => Just(Op::PollAtDeadline),
    ]
}

fn delta() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => Just(Duration::ZERO),
        4 => (0u64..5_000).prop_map(Duration::from_millis),
        2 => (0u64..300_000).prop_map(Duration::from_millis),
    ]
}

/// The simulated runtime's view: which connections exist, whether a connect is in flight.
#[derive(Debug, Default)]
struct Runtime {
    outbound: bool,
    inbound: bool,
    connect_pending: bool,
    started: bool,
    up: bool,
    /// When the last KEEPALIVE was sent on each open connection.
    last_keepalive: [Option<Duration>; 2],
}

fn slot(dir: Direction) -> usize {
    match dir {
        Outbound => 0,
        Inbound => 1,
    }
}

impl Runtime {
    fn open(&self, dir: Direction) -> bool {
        match dir {
            Outbound => self.outbound,
            Inbound => self.inbound,
        }
    }

    fn set(&mut self, dir: Direction, open: bool) {
        match dir {
            Outbound => self.outbound = open,
            Inbound => self.inbound = open,
        }
        if !open {
            self.last_keepalive[slot(dir)] = None;
        }
    }

    /// Checks and applies the actions of one step.
    fn apply(&mut self, now: Duration, actions: &[Action]) -> Result<(), TestCaseError> {
        for a in actions {
            match a {
                Action::Connect => {
                    prop_assert!(self.started, "Connect while stopped");
                    prop_assert!(!self.outbound, "Connect with an outbound connection");
                    prop_assert!(!self.up, "Connect while established");
                    self.connect_pending = true;
                }
                Action::Send(dir, m) => {
                    prop_assert!(self.open(*dir), "Send {} on closed {dir:?}", m.name());
                    if *m == Message::Keepalive {
                        if let Some(last) = self.last_keepalive[slot(*dir)] {
                            prop_assert!(
                                now >= last + Duration::from_secs(1),
                                "KEEPALIVEs on {dir:?} at {last:?} and {now:?}"
                            );
                        }
                        self.last_keepalive[slot(*dir)] = Some(now);
                    }
                }
                Action::Close(dir) => self.set(*dir, false),
                Action::Established(_) => {
                    prop_assert!(!self.up, "two Established without Down");
                    self.up = true;
                }
                Action::Down(_) => {
                    prop_assert!(self.up, "Down while not established");
                    self.up = false;
                }
                Action::RouteRefresh(_) => prop_assert!(self.up),
                Action::ConnectionFailed(..) | Action::StateChanged { .. } => {}
            }
        }
        Ok(())
    }
}

fn build_message(m: &PeerMsg) -> Message {
    match m {
        PeerMsg::Open {
            hold,
            higher_id,
            restart,
            bad_asn,
        } => {
            let id = if *higher_id { HIGHER_ID } else { LOWER_ID };
            let mut open = peer_open_gr(*hold, id, *restart);
            if *bad_asn {
                open = Open::new(64511, *hold, id, peer_caps(64511));
            }
            Message::Open(open)
        }
        PeerMsg::Keepalive => Message::Keepalive,
        PeerMsg::Update => Message::Update(Update::default()),
        PeerMsg::Notification => Message::Notification(Notification::new(
            ErrorCode::Cease,
            cease::ADMINISTRATIVE_RESET,
            vec![],
        )),
        PeerMsg::RouteRefresh => Message::RouteRefresh(RouteRefresh {
            family: Family::IPV4_UNICAST,
            subtype: 0,
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_keep_the_invariants(
        steps in prop::collection::vec((delta(), op()), 1..120),
        seed in any::<u64>(),
        graceful_restart in any::<bool>(),
    ) {
        let mut c = config();
        c.seed = seed;
        c.graceful_restart = graceful_restart.then_some(120);
        let mut s = Session::new(c);
        let mut rt = Runtime::default();
        let mut now = Duration::ZERO;
        for (delta, op) in steps {
            now += delta;
            let is_poll = matches!(op, Op::Poll | Op::PollAtDeadline);
            let at_deadline = matches!(op, Op::PollAtDeadline);
            let actions = match op {
                Op::Start => {
                    rt.started = true;
                    s.handle(now, Event::Start)
                }
                Op::Stop => {
                    rt.started = false;
                    s.handle(now, Event::Stop(Notification::shutdown("bye")))
                }
                Op::Connected | Op::ConnectFailed if !rt.connect_pending => continue,
                Op::Connected => {
                    rt.connect_pending = false;
                    rt.set(Outbound, true);
                    s.handle(now, Event::Connected)
                }
                Op::ConnectFailed => {
                    rt.connect_pending = false;
                    s.handle(now, Event::ConnectFailed)
                }
                Op::Accepted if rt.inbound => continue,
                Op::Accepted => {
                    rt.set(Inbound, true);
                    s.handle(now, Event::Accepted)
                }
                Op::Closed(dir) | Op::DecodeError(dir) | Op::Message(dir, _)
                    if !rt.open(dir) => continue,
                Op::Closed(dir) => {
                    rt.set(dir, false);
                    s.handle(now, Event::Closed(dir))
                }
                Op::DecodeError(dir) => {
                    let err = DecodeError {
                        notification: Notification::new(ErrorCode::MessageHeader, 1, vec![]),
                        reason: "test",
                    };
                    s.handle(now, Event::DecodeError(dir, err))
                }
                Op::Message(dir, m) => s.handle(now, Event::Message(dir, build_message(&m))),
                Op::Poll | Op::PollAtDeadline => {
                    if at_deadline && let Some(d) = s.next_deadline() {
                        now = now.max(d);
                    }
                    let actions = s.poll(now);
                    rt.apply(now, &actions)?;
                    if let Some(d) = s.next_deadline() {
                        prop_assert!(d >= now, "deadline {d:?} before {now:?} after poll");
                    }
                    actions
                }
            };
            if !is_poll {
                rt.apply(now, &actions)?;
            }
            // The visible state agrees with what was reported.
            prop_assert_eq!(s.state() == State::Established, rt.up);
            prop_assert_eq!(s.negotiated().is_some(), rt.up);
            if let Some(n) = s.negotiated() {
                prop_assert!(rt.open(n.direction));
            }
            // Every StateChanged chains from the previous state.
            let mut states = actions.iter().filter_map(|a| match a {
                Action::StateChanged { from, to } => Some((*from, *to)),
                _ => None,
            });
            if let Some((_, to)) = states.next() {
                prop_assert!(states.next().is_none(), "two state changes in one step");
                prop_assert_eq!(to, s.state());
            }
            if !rt.started {
                prop_assert!(!actions.contains(&Action::Connect));
            }
            // Liveness: a started session with nothing going on has a retry scheduled.
            if rt.started && !rt.up && !rt.outbound && !rt.connect_pending {
                prop_assert!(s.next_deadline().is_some(), "started but nothing scheduled");
            }
            // Not started and no connection: Idle with no timers.
            if !rt.started && !rt.outbound && !rt.inbound {
                prop_assert_eq!(s.state(), State::Idle);
                prop_assert_eq!(s.next_deadline(), None);
            }
        }
    }
}
