//! The BGP session state machine (RFC 4271 §8), sans-IO.
//!
//! A [`Session`] is one configured peer. The runtime feeds it [`Event`]s (a TCP connection
//! came up or failed, a message or a decode error arrived on a connection) and the current
//! time, and carries out the [`Action`]s it returns (connect, send, close). Timers are not
//! run by the machine: the runtime asks [`Session::next_deadline`] and calls
//! [`Session::poll`] when it passes. Time is a [`Duration`] since any fixed origin, so tests
//! drive it by hand.
//!
//! The machine holds up to two connections to the peer, the one we opened
//! ([`Direction::Outbound`]) and the one the peer opened ([`Direction::Inbound`]), and
//! resolves a collision between them as §6.8 says: the connection opened by the speaker with
//! the higher BGP Identifier survives.

use std::time::Duration;

pub use crate::config::SessionConfig;

use crate::wire::{
    Capability, Codec, DecodeError, ErrorCode, Family, GracefulRestart, GracefulRestartFamily,
    Message, Notification, Open, cease, fsm as fsm_error, open_error,
};

/// Hold time used while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// The hold time we propose when none is configured (MetalLB's default).
pub const DEFAULT_HOLD_TIME: u16 = 90;

pub use lb_core::Backoff;

/// The RFC 4271 states, as seen from outside the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Not started, or stopped.
    Idle,
    /// Opening a TCP connection to the peer.
    Connect,
    /// Waiting for the connect-retry timer or for the peer to connect.
    Active,
    /// Our OPEN is sent; waiting for the peer's.
    OpenSent,
    /// OPENs exchanged; waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// The session is up; routes flow.
    Established,
}

impl State {
    /// The RFC name of the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Connect => "Connect",
            Self::Active => "Active",
            Self::OpenSent => "OpenSent",
            Self::OpenConfirm => "OpenConfirm",
            Self::Established => "Established",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of the (at most two) connections to the peer an event or action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The connection we opened.
    Outbound,
    /// The connection the peer opened.
    Inbound,
}

/// Something that happened to the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Start connecting (ManualStart).
    Start,
    /// Stop: send this NOTIFICATION on every open connection and stay idle (ManualStop).
    Stop(Notification),
    /// Our outbound TCP connection is up.
    Connected,
    /// Our outbound TCP connection attempt failed.
    ConnectFailed,
    /// The peer opened a TCP connection to us.
    Accepted,
    /// A whole message arrived on a connection.
    Message(Direction, Message),
    /// A connection received bytes that do not decode.
    DecodeError(Direction, DecodeError),
    /// A connection was closed or failed (EOF, reset, write error).
    Closed(Direction),
    /// The peer does not read: what waits to be sent on this connection passed its limit.
    /// The session is reset with Cease / Out of Resources (RFC 4486 §4), as FRR does.
    SendQueueFull(Direction),
}

/// Why a session left Established, or why a connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// The peer sent this NOTIFICATION.
    PeerNotification(Notification),
    /// We sent this NOTIFICATION (hold timer expired, malformed message, stop, collision ...).
    LocalNotification(Notification),
    /// The TCP connection closed without a NOTIFICATION.
    ConnectionClosed,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PeerNotification(n) => write!(f, "received NOTIFICATION {n}"),
            Self::LocalNotification(n) => write!(f, "sent NOTIFICATION {n}"),
            Self::ConnectionClosed => f.write_str("connection closed"),
        }
    }
}

/// What the two OPENs agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The connection the session runs on.
    pub direction: Direction,
    /// The peer's OPEN.
    pub peer_open: Open,
    /// Negotiated hold time (0: no hold timer and no keepalives).
    pub hold_time: Duration,
    /// Keepalive interval: a third of the hold time.
    pub keepalive: Duration,
    /// Both sides support 4-octet AS numbers.
    pub four_octet_as: bool,
    /// Families both sides offered.
    pub families: Vec<Family>,
    /// The peer's graceful restart capability, if any.
    pub peer_graceful_restart: Option<GracefulRestart>,
}

impl Negotiated {
    /// The codec for this session's UPDATEs.
    pub fn codec(&self) -> Codec {
        Codec {
            four_octet_as: self.four_octet_as,
        }
    }
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a TCP connection to the peer, then report [`Event::Connected`] or
    /// [`Event::ConnectFailed`].
    Connect,
    /// Write a message on a connection.
    Send(Direction, Message),
    /// Close a connection, after writing what is queued on it.
    Close(Direction),
    /// The session is up: send the full table and End-of-RIB on `direction`.
    Established(Negotiated),
    /// The session left Established.
    Down(DownReason),
    /// The peer asked for our routes of a family again (ROUTE-REFRESH).
    RouteRefresh(Family),
    /// A connection failed before the session was up (for logs and counters).
    ConnectionFailed(Direction, DownReason),
    /// The externally visible state changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    /// TCP is up but nothing is sent yet (an accepted connection before we answer).
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug, Clone)]
struct Conn {
    state: ConnState,
    hold_time: Duration,
    hold_deadline: Option<Duration>,
    keepalive_deadline: Option<Duration>,
    negotiated: Option<Negotiated>,
}

/// How long a session must stay Established before its connect-retry backoff starts over: a
/// peer that comes up and then misbehaves (drops, or sends what makes us reset) is retried
/// with the same growing delays as one that never comes up.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// One configured peer's session.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    started: bool,
    connecting: bool,
    retry_at: Option<Duration>,
    failures: u32,
    /// When the session last reached Established: the backoff starts over only once it has
    /// stayed up for [`STABLE_AFTER`].
    established_at: Option<Duration>,
    outbound: Option<Conn>,
    inbound: Option<Conn>,
    rng: u64,
    opens_sent: u64,
    state: State,
}

impl Session {
    /// A stopped session.
    pub fn new(config: SessionConfig) -> Self {
        let rng = config.seed | 1;
        Self {
            config,
            started: false,
            connecting: false,
            retry_at: None,
            failures: 0,
            established_at: None,
            outbound: None,
            inbound: None,
            rng,
            opens_sent: 0,
            state: State::Idle,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What was negotiated, while Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        [&self.outbound, &self.inbound]
            .into_iter()
            .flatten()
            .find(|c| c.state == ConnState::Established)
            .and_then(|c| c.negotiated.as_ref())
    }

    /// When [`Session::poll`] must next be called, if a timer is running.
    pub fn next_deadline(&self) -> Option<Duration> {
        let conns = [&self.outbound, &self.inbound].into_iter().flatten();
        conns
            .flat_map(|c| [c.hold_deadline, c.keepalive_deadline])
            .chain([self.retry_at])
            .flatten()
            .min()
    }

    /// Handles one event at time `now`.
    pub fn handle(&mut self, now: Duration, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => {
                self.started = true;
                if !self.connecting && self.outbound.is_none() && !self.is_established() {
                    self.retry_at = None;
                    self.connecting = true;
                    out.push(Action::Connect);
                }
            }
            Event::Stop(notification) => {
                self.started = false;
                self.retry_at = None;
                self.connecting = false;
                for dir in [Direction::Outbound, Direction::Inbound] {
                    if self.conn(dir).is_some() {
                        self.fail(dir, Some(notification.clone()), &mut out);
                    }
                }
            }
            Event::Connected => {
                self.connecting = false;
                if !self.started || self.outbound.is_some() {
                    out.push(Action::Close(Direction::Outbound));
                } else {
                    self.open_connection(now, Direction::Outbound, &mut out);
                }
            }
            Event::ConnectFailed => {
                self.connecting = false;
                out.push(Action::ConnectionFailed(
                    Direction::Outbound,
                    DownReason::ConnectionClosed,
                ));
                self.schedule_retry(now);
            }
            Event::Accepted => {
                if !self.started || self.inbound.is_some() {
                    out.push(Action::Send(
                        Direction::Inbound,
                        Message::Notification(Notification::new(
                            ErrorCode::Cease,
                            cease::CONNECTION_REJECTED,
                            vec![],
                        )),
                    ));
                    out.push(Action::Close(Direction::Inbound));
                } else {
                    self.open_connection(now, Direction::Inbound, &mut out);
                }
            }
            Event::Message(dir, message) => self.on_message(now, dir, message, &mut out),
            Event::DecodeError(dir, err) => {
                if self.conn(dir).is_some() {
                    self.fail(dir, Some(err.notification), &mut out);
                }
            }
            Event::Closed(dir) => {
                if self.conn(dir).is_some() {
                    self.fail(dir, None, &mut out);
                }
            }
            Event::SendQueueFull(dir) => {
                if self.conn(dir).is_some() {
                    let n = Notification::new(ErrorCode::Cease, cease::OUT_OF_RESOURCES, vec![]);
                    self.fail(dir, Some(n), &mut out);
                }
            }
        }
        self.settle(now, &mut out);
        out
    }

    /// Runs the timers that are due at `now`.
    pub fn poll(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        for dir in [Direction::Outbound, Direction::Inbound] {
            let Some(conn) = self.conn_mut(dir) else {
                continue;
            };
            if conn.hold_deadline.is_some_and(|d| d <= now) {
                let n = Notification::new(ErrorCode::HoldTimerExpired, 0, vec![]);
                self.fail(dir, Some(n), &mut out);
                continue;
            }
            if conn.keepalive_deadline.is_some_and(|d| d <= now) {
                let interval = conn.hold_time / 3;
                // Next keepalive one interval after this one is sent, even when the poll came
                // late: RFC 4271 §4.4 forbids KEEPALIVEs more often than once per second.
                conn.keepalive_deadline = Some(now + interval);
                out.push(Action::Send(dir, Message::Keepalive));
            }
        }
        if self.retry_at.is_some_and(|d| d <= now) {
            self.retry_at = None;
            if self.started && !self.connecting && self.outbound.is_none() && !self.is_established()
            {
                self.connecting = true;
                out.push(Action::Connect);
            }
        }
        self.settle(now, &mut out);
        out
    }

    fn is_established(&self) -> bool {
        [&self.outbound, &self.inbound]
            .into_iter()
            .flatten()
            .any(|c| c.state == ConnState::Established)
    }

    fn conn(&self, dir: Direction) -> Option<&Conn> {
        match dir {
            Direction::Outbound => self.outbound.as_ref(),
            Direction::Inbound => self.inbound.as_ref(),
        }
    }

    fn conn_mut(&mut self, dir: Direction) -> Option<&mut Conn> {
        match dir {
            Direction::Outbound => self.outbound.as_mut(),
            Direction::Inbound => self.inbound.as_mut(),
        }
    }

    fn slot(&mut self, dir: Direction) -> &mut Option<Conn> {
        match dir {
            Direction::Outbound => &mut self.outbound,
            Direction::Inbound => &mut self.inbound,
        }
    }

    fn random(&mut self) -> f64 {
        // xorshift64*: plenty for jitter, and deterministic for a given seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let value = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (value >> 11) as f64 / (1u64 << 53) as f64
    }

    fn schedule_retry(&mut self, now: Duration) {
        if !self.started || self.connecting || self.retry_at.is_some() {
            return;
        }
        if self.outbound.is_some() || self.is_established() {
            return;
        }
        if let Some(up) = self.established_at.take()
            && now.saturating_sub(up) >= STABLE_AFTER
        {
            self.failures = 0;
        }
        let random = self.random();
        let delay = self.config.backoff.delay(self.failures, random);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + delay);
    }

    /// Our OPEN for this session.
    pub fn local_open(&self) -> Open {
        let mut caps: Vec<Capability> = self
            .config
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        caps.push(Capability::RouteRefresh);
        caps.push(Capability::FourOctetAs(self.config.local_asn));
        if let Some(restart_time) = self.config.graceful_restart {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                // R bit on our first OPEN since start: we may have just restarted, and the
                // peer must not wait for our End-of-RIB before sending its own.
                restart_state: self.opens_sent == 0,
                notification: false,
                restart_time: restart_time.min(0x0fff),
                families: self
                    .config
                    .families
                    .iter()
                    .map(|f| GracefulRestartFamily {
                        family: *f,
                        forwarding_preserved: true,
                    })
                    .collect(),
            }));
        }
        Open::new(
            self.config.local_asn,
            self.config.hold_time,
            self.config.router_id,
            caps,
        )
    }

    fn open_connection(&mut self, now: Duration, dir: Direction, out: &mut Vec<Action>) {
        let open = self.local_open();
        self.opens_sent += 1;
        *self.slot(dir) = Some(Conn {
            state: ConnState::OpenSent,
            hold_time: OPEN_HOLD_TIME,
            hold_deadline: Some(now + OPEN_HOLD_TIME),
            keepalive_deadline: None,
            negotiated: None,
        });
        out.push(Action::Send(dir, Message::Open(open)));
    }

    /// Closes connection `dir`, sending `notification` first when given.
    fn fail(&mut self, dir: Direction, notification: Option<Notification>, out: &mut Vec<Action>) {
        let Some(conn) = self.slot(dir).take() else {
            return;
        };
        let reason = match notification {
            Some(n) => {
                out.push(Action::Send(dir, Message::Notification(n.clone())));
                DownReason::LocalNotification(n)
            }
            None => DownReason::ConnectionClosed,
        };
        out.push(Action::Close(dir));
        self.connection_lost(conn.state, dir, reason, out);
    }

    fn connection_lost(
        &mut self,
        state: ConnState,
        dir: Direction,
        reason: DownReason,
        out: &mut Vec<Action>,
    ) {
        if state == ConnState::Established {
            out.push(Action::Down(reason));
        } else {
            out.push(Action::ConnectionFailed(dir, reason));
        }
    }

    fn on_message(
        &mut self,
        now: Duration,
        dir: Direction,
        message: Message,
        out: &mut Vec<Action>,
    ) {
        let Some(conn) = self.conn_mut(dir) else {
            return;
        };
        if conn.hold_time > Duration::ZERO {
            conn.hold_deadline = Some(now + conn.hold_time);
        }
        let state = conn.state;
        match (state, message) {
            (_, Message::Notification(n)) => {
                if let Some(conn) = self.slot(dir).take() {
                    out.push(Action::Close(dir));
                    self.connection_lost(conn.state, dir, DownReason::PeerNotification(n), out);
                }
            }
            (ConnState::OpenSent, Message::Open(open)) => self.on_open(now, dir, &open, out),
            (ConnState::OpenConfirm, Message::Keepalive) => {
                let Some(conn) = self.conn_mut(dir) else {
                    return;
                };
                conn.state = ConnState::Established;
                let negotiated = conn.negotiated.clone();
                self.established_at = Some(now);
                if let Some(negotiated) = negotiated {
                    out.push(Action::Established(negotiated));
                }
            }
            (ConnState::Established, Message::Keepalive | Message::Update(_)) => {}
            (ConnState::Established, Message::RouteRefresh(rr)) => {
                // A family that was not negotiated is ignored (RFC 2918 §4).
                let negotiated = self
                    .conn_mut(dir)
                    .and_then(|c| c.negotiated.as_ref())
                    .is_some_and(|n| n.families.contains(&rr.family));
                if negotiated {
                    out.push(Action::RouteRefresh(rr.family));
                }
            }
            (state, _) => {
                let subcode = match state {
                    ConnState::OpenSent => fsm_error::UNEXPECTED_IN_OPEN_SENT,
                    ConnState::OpenConfirm => fsm_error::UNEXPECTED_IN_OPEN_CONFIRM,
                    ConnState::Established => fsm_error::UNEXPECTED_IN_ESTABLISHED,
                };
                let n = Notification::new(ErrorCode::FiniteStateMachine, subcode, vec![]);
                self.fail(dir, Some(n), out);
            }
        }
    }

    /// Checks the peer's OPEN (RFC 4271 §6.2) and what the capabilities allow.
    fn check_open(&self, open: &Open) -> Result<Negotiated, Notification> {
        let err = |subcode, data| Notification::new(ErrorCode::OpenMessage, subcode, data);
        if open.asn() != self.config.peer_asn {
            return Err(err(
                open_error::BAD_PEER_AS,
                open.my_as.to_be_bytes().to_vec(),
            ));
        }
        let id = open.router_id;
        if id.is_unspecified() || (self.config.is_ibgp() && id == self.config.router_id) {
            return Err(err(open_error::BAD_BGP_IDENTIFIER, id.octets().to_vec()));
        }
        let four_octet_as = open.four_octet_as().is_some();
        if !four_octet_as && self.config.local_asn > u32::from(u16::MAX) {
            // Our ASN cannot be expressed to a peer without 4-octet AS support (RFC 6793 §4.1):
            // the data names the capability we need (RFC 5492 §3).
            let mut data = Vec::new();
            let _ = Capability::FourOctetAs(self.config.local_asn).encode(&mut data);
            return Err(err(open_error::UNSUPPORTED_CAPABILITY, data));
        }
        let theirs = open.families();
        let families: Vec<Family> = self
            .config
            .families
            .iter()
            .copied()
            .filter(|f| theirs.contains(f))
            .collect();
        if families.is_empty() {
            // No family in common: name the Multiprotocol capabilities we need (RFC 5492 §3).
            let mut data = Vec::new();
            for f in &self.config.families {
                let _ = Capability::Multiprotocol(*f).encode(&mut data);
            }
            return Err(err(open_error::UNSUPPORTED_CAPABILITY, data));
        }
        let hold = self.config.hold_time.min(open.hold_time);
        let hold_time = Duration::from_secs(u64::from(hold));
        Ok(Negotiated {
            direction: Direction::Outbound,
            peer_open: open.clone(),
            hold_time,
            keepalive: hold_time / 3,
            four_octet_as,
            families,
            peer_graceful_restart: open.graceful_restart().cloned(),
        })
    }

    fn on_open(&mut self, now: Duration, dir: Direction, open: &Open, out: &mut Vec<Action>) {
        let mut negotiated = match self.check_open(open) {
            Ok(n) => n,
            Err(n) => return self.fail(dir, Some(n), out),
        };
        negotiated.direction = dir;
        let other = match dir {
            Direction::Outbound => Direction::Inbound,
            Direction::Inbound => Direction::Outbound,
        };
        if let Some(existing) = self.conn(other).map(|c| c.state) {
            let collision = Notification::new(
                ErrorCode::Cease,
                cease::CONNECTION_COLLISION_RESOLUTION,
                vec![],
            );
            let peer_restarted = open.graceful_restart().is_some_and(|gr| gr.restart_state);
            let close_new = match existing {
                // §6.8: a collision with an Established connection closes the new one, unless
                // the peer restarted (RFC 4724 §4.2): then the old connection is dead.
                ConnState::Established => !peer_restarted,
                // Keep the connection opened by the speaker with the higher identifier.
                ConnState::OpenSent | ConnState::OpenConfirm => {
                    let local_wins = self.config.router_id > open.router_id;
                    (dir == Direction::Outbound) != local_wins
                }
            };
            if close_new {
                return self.fail(dir, Some(collision), out);
            }
            self.fail(other, Some(collision), out);
        }
        let Some(conn) = self.conn_mut(dir) else {
            return;
        };
        conn.hold_time = negotiated.hold_time;
        conn.state = ConnState::OpenConfirm;
        if negotiated.hold_time > Duration::ZERO {
            conn.hold_deadline = Some(now + negotiated.hold_time);
            conn.keepalive_deadline = Some(now + negotiated.keepalive);
        } else {
            conn.hold_deadline = None;
            conn.keepalive_deadline = None;
        }
        conn.negotiated = Some(negotiated);
        out.push(Action::Send(dir, Message::Keepalive));
    }

    /// Recomputes the visible state, schedules a retry when nothing is left, and reports a
    /// state change.
    fn settle(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.started && self.outbound.is_none() && !self.connecting && !self.is_established() {
            self.schedule_retry(now);
        }
        let best = [&self.outbound, &self.inbound]
            .into_iter()
            .flatten()
            .map(|c| c.state)
            .max_by_key(|s| match s {
                ConnState::OpenSent => 0,
                ConnState::OpenConfirm => 1,
                ConnState::Established => 2,
            });
        let state = match best {
            Some(ConnState::Established) => State::Established,
            Some(ConnState::OpenConfirm) => State::OpenConfirm,
            Some(ConnState::OpenSent) => State::OpenSent,
            None if self.connecting => State::Connect,
            None if self.started => State::Active,
            None => State::Idle,
        };
        if state != self.state {
            out.push(Action::StateChanged {
                from: self.state,
                to: state,
            });
            self.state = state;
        }
    }
}
