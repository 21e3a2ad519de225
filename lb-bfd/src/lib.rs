//! Bidirectional Forwarding Detection (RFC 5880) for the load balancer's BGP sessions.
//!
//! - [`wire`]: BFD control packets (RFC 5880 §4.1) as a zero-copy view and a plain value,
//!   panic-free on any input.
//! - [`session`]: one session's state machine (RFC 5880 §6.2, §6.8) without sockets or
//!   clocks: packets and the time in; packets to send, state changes and the next deadline
//!   out.
//!
//! - [`runtime`] (feature `runtime`, on by default): every session of a process over UDP,
//!   single-hop (RFC 5881) and multihop (RFC 5883), IPv4 and IPv6, on tokio.
//!
//! None of them knows Kubernetes or BGP: any program that wants to know within milliseconds
//! whether a neighbour's forwarding plane is alive can embed them.

pub mod peer;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod session;
pub mod wire;

pub use peer::{PeerKey, PeerSpec};
pub use session::{Session, SessionConfig, SessionEvent};
pub use wire::{ControlPacket, ControlRepr, Diagnostic, State, WireError};
