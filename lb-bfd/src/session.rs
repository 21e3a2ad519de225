//! One BFD session in asynchronous mode (RFC 5880 §6), without sockets or clocks.
//!
//! Packets ([`ControlRepr`]) and the current time go in ([`Session::handle_packet`],
//! [`Session::handle_timeout`]); packets to send ([`Session::poll_transmit`]), state changes
//! ([`Session::poll_event`]) and the next deadline ([`Session::next_deadline`]) come out.
//!
//! What it does, with the RFC's sections:
//! - the three-way handshake Down → Init → Up and the way down (§6.2, §6.8.6), with the
//!   diagnostics of §4.1;
//! - timer negotiation: packets go out every `max(DesiredMinTx, remote RequiredMinRx)`,
//!   reduced by a random 0–25 % (10–25 % with a detect multiplier of 1) per packet (§6.8.7);
//!   the detection time is the remote multiplier times `max(RequiredMinRx, remote
//!   DesiredMinTx)` (§6.8.4);
//! - at most one packet a second while the session is not Up (§6.8.3), then the configured
//!   rate through a Poll Sequence once it is;
//! - Poll Sequences for every timer change while Up (§6.5, §6.8.3): a slower transmission
//!   rate or a shorter detection time only takes effect once the remote system answered with
//!   Final; a Poll is answered with Final at once;
//! - the passive role (§6.1): nothing is sent before the remote system is heard;
//! - a remote system in demand mode (§6.6) is honoured by not sending periodically; this side
//!   never asks for demand mode, and has no echo function;
//! - AdminDown (§6.8.16).

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use crate::wire::{ControlRepr, Diagnostic, State};

/// The slowest rate a session sends at while it is not Up: one packet a second (§6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// The shortest interval a session may be configured with.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// What a session is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// How often this side wants to send, at the fastest (MetalLB's `transmitInterval`).
    pub desired_min_tx: Duration,
    /// How often this side can receive, at the fastest (MetalLB's `receiveInterval`).
    pub required_min_rx: Duration,
    /// The remote system declares the session down after this many intervals without a
    /// packet from us (MetalLB's `detectMultiplier`).
    pub detect_mult: u8,
    /// Send nothing until the remote system has sent something (MetalLB's `passiveMode`).
    pub passive: bool,
}

impl Default for SessionConfig {
    /// MetalLB's and FRR's defaults: 300 ms both ways, multiplier 3, active.
    fn default() -> Self {
        Self {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
        }
    }
}

/// A configuration a session cannot run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The transmit interval is under 1 ms (zero is reserved by RFC 5880; faster than a
    /// millisecond no timer here keeps up) or over 4294 s.
    #[error("the transmit interval must be between 1 ms and 4294 s, not {0:?}")]
    TransmitInterval(Duration),
    /// The receive interval is under 1 ms (zero would ask the remote system to send nothing,
    /// which makes detection impossible without echo or demand mode) or over 4294 s.
    #[error("the receive interval must be between 1 ms and 4294 s, not {0:?}")]
    ReceiveInterval(Duration),
    /// The detect multiplier is zero.
    #[error("the detect multiplier must be at least 1")]
    DetectMult,
}

impl SessionConfig {
    /// Checks the values fit the packet fields and the RFC.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.desired_min_tx < MIN_INTERVAL || micros(self.desired_min_tx).is_none() {
            return Err(ConfigError::TransmitInterval(self.desired_min_tx));
        }
        if self.required_min_rx < MIN_INTERVAL || micros(self.required_min_rx).is_none() {
            return Err(ConfigError::ReceiveInterval(self.required_min_rx));
        }
        if self.detect_mult == 0 {
            return Err(ConfigError::DetectMult);
        }
        Ok(())
    }
}

/// `d` in whole microseconds, if it fits a packet field.
fn micros(d: Duration) -> Option<u32> {
    u32::try_from(d.as_micros()).ok()
}

/// A change a session reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// The session changed state.
    StateChanged {
        /// The state before.
        from: State,
        /// The state now.
        to: State,
        /// Why (the local diagnostic).
        diagnostic: Diagnostic,
        /// The remote system's state as it last said: AdminDown when it took the session
        /// down on purpose, which RFC 5882 §3.2 says is not a forwarding failure.
        remote: State,
    },
}

/// Packet and state counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Control packets taken by [`Session::handle_packet`] for this session.
    pub control_in: u64,
    /// Control packets handed out by [`Session::poll_transmit`].
    pub control_out: u64,
    /// Times the session went Up.
    pub up_events: u64,
    /// Times the session left Up.
    pub down_events: u64,
    /// Packets discarded: for another discriminator, or while AdminDown.
    pub discarded: u64,
}

/// One BFD session.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    state: State,
    diagnostic: Diagnostic,
    local_discriminator: u32,
    remote_discriminator: u32,
    remote_state: State,
    remote_demand: bool,
    /// bfd.RemoteMinRxInterval, µs (1 until the remote system is heard).
    remote_min_rx: u32,
    /// The remote system's last Desired Min TX, µs.
    remote_desired_min_tx: u32,
    remote_detect_mult: u8,
    /// bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval: what the packets say, µs.
    desired_min_tx: u32,
    required_min_rx: u32,
    /// The values timing uses while a Poll Sequence is outstanding (§6.8.3), µs.
    tx_in_force: u32,
    rx_in_force: u32,
    polling: bool,
    send_final: bool,
    send_now: bool,
    next_tx: Option<Instant>,
    detect_at: Option<Instant>,
    rng: u64,
    outbox: VecDeque<ControlRepr>,
    events: VecDeque<SessionEvent>,
    counters: Counters,
}

impl Session {
    /// A session in state Down with `local_discriminator` (unique among the caller's
    /// sessions), at time `now`. `seed` drives the transmission jitter. An active session
    /// sends its first packet at once ([`Session::next_deadline`] is `now`).
    ///
    /// Fails when `config` does not pass [`SessionConfig::check`].
    pub fn new(
        config: SessionConfig,
        local_discriminator: NonZeroU32,
        now: Instant,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        config.check()?;
        let mut s = Self {
            config,
            state: State::Down,
            diagnostic: Diagnostic::None,
            local_discriminator: local_discriminator.get(),
            remote_discriminator: 0,
            remote_state: State::Down,
            remote_demand: false,
            remote_min_rx: 1,
            remote_desired_min_tx: 0,
            remote_detect_mult: 0,
            desired_min_tx: 0,
            required_min_rx: 0,
            tx_in_force: 0,
            rx_in_force: 0,
            polling: false,
            send_final: false,
            send_now: false,
            next_tx: None,
            detect_at: None,
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
        };
        let (tx, rx) = s.targets();
        (s.desired_min_tx, s.required_min_rx) = (tx, rx);
        (s.tx_in_force, s.rx_in_force) = (tx, rx);
        if s.may_send_periodically() {
            s.next_tx = Some(now);
        }
        Ok(s)
    }

    /// The session's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The remote system's state, as it last said.
    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    /// The local diagnostic: why the session last went down.
    pub fn diagnostic(&self) -> Diagnostic {
        self.diagnostic
    }

    /// This side's discriminator.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discriminator
    }

    /// The remote system's discriminator (0 until it is heard, and after the detection time
    /// passes without a packet).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discriminator
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// True while a Poll Sequence waits for the remote system's Final.
    pub fn polling(&self) -> bool {
        self.polling
    }

    /// The interval this side sends at now, before jitter (`None`: no periodic packets).
    pub fn transmit_interval(&self) -> Option<Duration> {
        self.may_send_periodically()
            .then(|| Duration::from_micros(u64::from(self.tx_in_force.max(self.remote_min_rx))))
    }

    /// The detection time in force (`None` until the remote system is heard).
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_detect_mult > 0).then(|| {
            let interval = self.rx_in_force.max(self.remote_desired_min_tx);
            Duration::from_micros(u64::from(self.remote_detect_mult) * u64::from(interval))
        })
    }

    /// When [`Session::handle_timeout`] must be called next at the latest.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next packet to send, in order.
    pub fn poll_transmit(&mut self) -> Option<ControlRepr> {
        let p = self.outbox.pop_front()?;
        self.counters.control_out += 1;
        Some(p)
    }

    /// The next state change, in order.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Takes a packet the runtime has matched to this session (by Your Discriminator, or by
    /// address while that is zero), received at `now`.
    pub fn handle_packet(&mut self, p: &ControlRepr, now: Instant) {
        self.counters.control_in += 1;
        if (p.your_discriminator != 0 && p.your_discriminator != self.local_discriminator)
            || self.state == State::AdminDown
        {
            self.counters.discarded += 1;
            return;
        }
        let was_silent = !self.may_send_periodically();
        self.remote_discriminator = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_demand = p.demand;
        self.remote_min_rx = p.required_min_rx;
        self.remote_desired_min_tx = p.desired_min_tx;
        self.remote_detect_mult = p.detect_mult;
        if p.final_ && self.polling {
            self.end_poll();
        }
        match (p.state, self.state) {
            (State::AdminDown, State::Down) => {}
            (State::AdminDown, _) => {
                self.set_state(State::Down, Diagnostic::NeighborSignaledSessionDown, now);
            }
            (State::Down, State::Down) => self.set_state(State::Init, Diagnostic::None, now),
            (State::Init, State::Down) | (State::Init | State::Up, State::Init) => {
                self.set_state(State::Up, Diagnostic::None, now);
            }
            (State::Down, State::Up) => {
                self.set_state(State::Down, Diagnostic::NeighborSignaledSessionDown, now);
            }
            _ => {}
        }
        if p.poll {
            self.send_final = true;
        }
        self.detect_at = self.detection_time().map(|d| now + d);
        if was_silent && self.may_send_periodically() && self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
        self.flush(now);
    }

    /// Runs what is due at `now`: the detection time, and the next periodic packet.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.detect_at.is_some_and(|t| t <= now) {
            self.detect_at = None;
            if matches!(self.state, State::Init | State::Up) {
                self.set_state(State::Down, Diagnostic::ControlDetectionTimeExpired, now);
            }
            self.forget_remote(now);
        }
        if self.next_tx.is_some_and(|t| t <= now) {
            self.next_tx = None;
            if self.may_send_periodically() {
                self.send_now = true;
            }
        }
        self.flush(now);
    }

    /// Applies a new configuration. While Up, a changed interval goes through a Poll
    /// Sequence: the session stays Up.
    ///
    /// Fails, changing nothing, when `config` does not pass [`SessionConfig::check`].
    pub fn set_config(&mut self, config: SessionConfig, now: Instant) -> Result<(), ConfigError> {
        config.check()?;
        let mult_changed = config.detect_mult != self.config.detect_mult;
        self.config = config;
        self.retime(now);
        if mult_changed {
            self.send_now = true;
        }
        if !self.may_send_periodically() {
            self.next_tx = None;
        } else if self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
        self.flush(now);
        Ok(())
    }

    /// Holds the session down (AdminDown), or lets it come up again.
    pub fn set_admin_down(&mut self, down: bool, now: Instant) {
        match (down, self.state) {
            (true, State::AdminDown) | (false, State::Down | State::Init | State::Up) => return,
            // The remote discriminator stays: the AdminDown packets must reach the remote
            // system's session.
            (true, _) => self.set_state(State::AdminDown, Diagnostic::AdministrativelyDown, now),
            (false, State::AdminDown) => {
                self.set_state(State::Down, Diagnostic::None, now);
                // The remote system may have restarted meanwhile: start from scratch.
                self.forget_remote(now);
            }
        }
        self.detect_at = None;
        if self.next_tx.is_none() && self.may_send_periodically() {
            self.next_tx = Some(now);
        }
        self.flush(now);
    }

    /// bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval as the configuration and state
    /// want them: never faster than one packet a second while not Up.
    fn targets(&self) -> (u32, u32) {
        let tx = micros(self.config.desired_min_tx).unwrap_or(u32::MAX);
        let slow = micros(SLOW_TX).unwrap_or(u32::MAX);
        let tx = if self.state == State::Up {
            tx
        } else {
            tx.max(slow)
        };
        (tx, micros(self.config.required_min_rx).unwrap_or(u32::MAX))
    }

    /// Moves bfd.DesiredMinTxInterval / bfd.RequiredMinRxInterval to their targets: at once
    /// when not Up, through a Poll Sequence when Up (§6.8.3).
    fn retime(&mut self, _now: Instant) {
        let (tx, rx) = self.targets();
        let up = self.state == State::Up && self.remote_discriminator != 0;
        if !up && self.polling {
            // A Poll Sequence only runs while Up.
            self.end_poll();
        }
        if (tx, rx) == (self.desired_min_tx, self.required_min_rx) {
            return;
        }
        (self.desired_min_tx, self.required_min_rx) = (tx, rx);
        if up {
            // A faster rate and a longer detection time are safe at once; the others wait
            // for the remote system's Final. Compared with what is in force, not with what
            // was last asked: a second change before the Final must not put an unanswered
            // value in force.
            self.tx_in_force = tx.min(self.tx_in_force);
            self.rx_in_force = rx.max(self.rx_in_force);
            self.polling = true;
            self.send_now = true;
        } else {
            (self.tx_in_force, self.rx_in_force) = (tx, rx);
            self.polling = false;
        }
    }

    fn end_poll(&mut self) {
        self.polling = false;
        (self.tx_in_force, self.rx_in_force) = (self.desired_min_tx, self.required_min_rx);
    }

    fn set_state(&mut self, to: State, diagnostic: Diagnostic, now: Instant) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.diagnostic = diagnostic;
        if to == State::Up {
            self.counters.up_events += 1;
        } else if from == State::Up {
            self.counters.down_events += 1;
        }
        self.events.push_back(SessionEvent::StateChanged {
            from,
            to,
            diagnostic,
            remote: self.remote_state,
        });
        self.send_now = true;
        self.retime(now);
    }

    /// What is known of the remote system goes when it is not heard for a detection time
    /// (§6.8.1).
    fn forget_remote(&mut self, now: Instant) {
        self.remote_discriminator = 0;
        self.remote_state = State::Down;
        self.remote_demand = false;
        self.remote_min_rx = 1;
        self.remote_desired_min_tx = 0;
        self.remote_detect_mult = 0;
        if self.polling {
            self.end_poll();
        }
        self.retime(now);
    }

    fn may_send_periodically(&self) -> bool {
        let passive_waiting = self.config.passive && self.remote_discriminator == 0;
        // §6.8.7: a Poll Sequence goes on being sent even to a remote system in demand mode.
        let remote_demand = self.remote_demand
            && self.state == State::Up
            && self.remote_state == State::Up
            && !self.polling;
        !passive_waiting && !remote_demand && self.remote_min_rx != 0
    }

    fn packet(&self, final_: bool) -> ControlRepr {
        ControlRepr {
            diagnostic: self.diagnostic,
            state: self.state,
            poll: self.polling && !final_,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discriminator,
            your_discriminator: self.remote_discriminator,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            required_min_echo_rx: 0,
        }
    }

    /// Queues the packets due (a Final first) and schedules the next periodic one.
    fn flush(&mut self, now: Instant) {
        let passive_waiting = self.config.passive && self.remote_discriminator == 0;
        let mut sent = false;
        if std::mem::take(&mut self.send_final) && !passive_waiting {
            self.outbox.push_back(self.packet(true));
            sent = true;
        }
        if std::mem::take(&mut self.send_now) && !passive_waiting {
            self.outbox.push_back(self.packet(false));
            sent = true;
        }
        if sent || self.next_tx.is_none() {
            self.next_tx = self.transmit_interval().map(|i| now + self.jitter(i));
        }
    }

    /// `interval` reduced by a random 0–25 %, or 10–25 % with a detect multiplier of 1
    /// (§6.8.7).
    fn jitter(&mut self, interval: Duration) -> Duration {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let (low, span) = if self.config.detect_mult == 1 {
            (10, 15)
        } else {
            (0, 25)
        };
        // Percent to take off, in hundredths of a percent for smoothness: low..low+span.
        let off = low * 100 + z % (span * 100 + 1);
        let micros = interval.as_micros();
        let kept = micros.saturating_mul(u128::from(10_000 - off)) / 10_000;
        Duration::from_micros(u64::try_from(kept).unwrap_or(u64::MAX))
    }
}
