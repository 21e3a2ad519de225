//! Which speakers are alive: SWIM membership (the `foca` crate) over UDP between the node
//! speakers, every datagram sealed with a key derived from the memberlist Secret.
//!
//! Each speaker probes the others on a short period; a member that answers neither a direct
//! nor an indirect probe becomes suspect and, unless it refutes in time, down. With the
//! default [`Timers`] a killed speaker is declared down by the others in about half a
//! second. A speaker that stops cleanly leaves the cluster at once ([`Membership::leave`]).
//!
//! The alive set ([`View::alive`]) feeds the layer-2 election: every speaker with the same
//! view elects the same node for a service.
//!
//! The agent is a sans-IO [`Core`] (datagrams and the time in, sealed datagrams, a deadline
//! and the view out) driven over a tokio UDP socket by [`Membership`]. Nothing here knows
//! Kubernetes: any set of processes that share a secret and can reach each other over UDP
//! can use it to agree on who is alive.
//!
//! In a network partition each side declares the other side down and elects owners among
//! its own members, so a service IP may be answered on both sides, each side's clients
//! reaching its own owner (MetalLB behaves the same way). When the partition heals, the
//! periodic announcements to the seeds join the sides again, every speaker sees the same
//! members, and the elections agree again.

pub mod core;
mod driver;
pub mod replay;
mod seal;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::core::{
    Core, MISMATCH_NOTICE, MISMATCH_NOTICE_LEN, NOTICE_ECHO_WINDOW, NOTICES_PER_SECOND, Transmit,
    mismatch_notice,
};
pub use driver::Membership;
pub use seal::{KeyError, OVERHEAD, OpenError, Opened, STAMPED_OVERHEAD, Sealer, Stamp};

/// A speaker's identity in the cluster.
///
/// The address identifies the member; a speaker that restarts on the same address comes
/// back with a higher generation, which replaces the old identity at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Node name.
    pub node: String,
    /// Where it receives membership datagrams.
    pub addr: SocketAddr,
    /// Start time in milliseconds since the epoch, plus one per rejoin.
    pub generation: u64,
}

impl foca::Identity for Member {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// SWIM timers. The defaults declare a killed speaker down in well under a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How often each member probes another one.
    pub probe_period: Duration,
    /// How long a direct probe may take before indirect probes are sent (less than
    /// `probe_period`).
    pub probe_timeout: Duration,
    /// How long a suspect member has to refute the suspicion before it is declared down.
    pub suspicion: Duration,
    /// How often the seeds that are not members are asked to let us in.
    pub rejoin: Duration,
    /// How long to wait for a first answer before the view counts as settled anyway.
    pub join_wait: Duration,
}

impl Timers {
    /// Checks the timers: the probe timeout shorter than the probe period, none zero (a zero
    /// rejoin period would announce to the seeds without pause).
    ///
    /// Fails with an error naming the values.
    pub fn check(&self) -> Result<(), TimersError> {
        if self.probe_period.is_zero()
            || self.probe_timeout.is_zero()
            || self.probe_timeout >= self.probe_period
            || self.suspicion.is_zero()
            || self.rejoin.is_zero()
        {
            return Err(TimersError {
                probe_period: self.probe_period,
                probe_timeout: self.probe_timeout,
                suspicion: self.suspicion,
                rejoin: self.rejoin,
            });
        }
        Ok(())
    }
}

/// SWIM timers that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the probe timeout ({probe_timeout:?}) must be shorter than the probe period \
     ({probe_period:?}), and neither it nor the suspicion timeout ({suspicion:?}) nor the \
     rejoin period ({rejoin:?}) may be zero"
)]
pub struct TimersError {
    /// The probe period.
    pub probe_period: Duration,
    /// The probe timeout.
    pub probe_timeout: Duration,
    /// The suspicion timeout.
    pub suspicion: Duration,
    /// The rejoin period.
    pub rejoin: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(100),
            probe_timeout: Duration::from_millis(40),
            suspicion: Duration::from_millis(150),
            rejoin: Duration::from_secs(1),
            join_wait: Duration::from_secs(2),
        }
    }
}

/// How membership runs.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This node's name.
    pub node: String,
    /// Local address the UDP socket binds.
    pub bind: SocketAddr,
    /// Address the others send to (the bind address unless it is a wildcard).
    pub advertise: SocketAddr,
    /// Addresses of other speakers to join through; our own address is skipped.
    pub seeds: Vec<SocketAddr>,
    /// Timers.
    pub timers: Timers,
    /// Which datagram versions are written and read.
    pub wire: WireFormat,
}

/// Which datagram versions a speaker writes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireFormat {
    /// Version 2 only: every datagram stamped, replays refused ([`crate::replay`]).
    #[default]
    Stamped,
    /// For an upgrade from speakers without replay protection, which read version 1 only: read both
    /// versions, write version 2 to the addresses that sent us version 2 and version 1 to
    /// the others. Version-1 datagrams have no replay protection; run it only while the
    /// cluster has speakers of both kinds.
    Upgrade,
}

/// What this speaker knows of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// Nodes whose speaker is alive (suspect members included), this node among them.
    pub alive: BTreeSet<String>,
    /// True once we have heard from the cluster, or waited [`Timers::join_wait`] without an
    /// answer, or have no seeds. Layer-2 announcements should wait for it, so a starting
    /// speaker does not briefly claim every IP before it has seen the others.
    ///
    /// A speaker told by others that its key is not theirs ([`View::key_mismatch`]) and that
    /// never heard a valid datagram stays unsettled: it must not take IPs from a cluster it
    /// cannot join.
    pub settled: bool,
    /// Other speakers refused our datagrams (their key differs) and none accepted us.
    pub key_mismatch: bool,
}

/// Counters of the membership layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received and opened.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams refused: wrong key, tampered, malformed or of another version.
    pub refused: u64,
    /// "Key mismatch" notices received that echo a datagram we sent to their source: someone
    /// could not open our datagrams.
    pub mismatch_notices: u64,
    /// Notices that echo nothing we sent there (forged, stale, or from an older version):
    /// ignored.
    pub unverified_notices: u64,
    /// Datagrams dropped because the socket had no room at once (sends never wait).
    pub dropped: u64,
    /// Authenticated datagrams refused as replays: seen before, or too far behind the
    /// newest of their sender ([`crate::replay`]).
    pub replayed: u64,
    /// Authenticated datagrams refused because their clock reading is more than
    /// [`crate::replay::MAX_AGE`] from ours (captured long ago, or the clocks differ).
    pub stale: u64,
}

/// Why membership could not start.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The UDP socket could not be bound.
    #[error("membership: cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The timers are not usable.
    #[error("membership: {0}")]
    Timers(#[from] TimersError),
    /// The system gave no randomness for SWIM's choices.
    #[error("membership: no system randomness")]
    NoRandomness,
}
