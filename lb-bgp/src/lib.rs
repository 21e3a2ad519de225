//! A native BGP-4 speaker for announcing service IPs.
//!
//! The crate is layered so that everything but the sockets is pure and testable without a
//! network:
//!
//! - [`config`]: the settings of a peer and of its session, plain data;
//! - [`wire`]: the codec, bytes ⇄ typed messages (OPEN with capabilities, UPDATE with the
//!   attributes a load balancer needs and everything a peer may send, NOTIFICATION,
//!   KEEPALIVE, ROUTE-REFRESH), with RFC 4271 / RFC 7606 error handling;
//! - [`fsm`]: the session state machine of RFC 4271 §8, sans-IO: events and the current time
//!   in, actions out, including collision detection and connect-retry backoff;
//! - [`rib`]: the Adj-RIB-Out, which turns a desired set of routes into the minimal UPDATE
//!   stream for one session;
//! - `speaker` (feature `runtime`, on by default): the tokio speaker that drives many peers
//!   and implements [`lb_core::Announcer`].

pub mod config;
pub mod fsm;
pub mod rib;
#[cfg(feature = "runtime")]
pub mod speaker;
pub mod wire;

pub use config::{PeerConfig, SessionConfig};
#[cfg(feature = "runtime")]
pub use speaker::{PeerEvent, PeerStatus, Route, RouteTable, Speaker, SpeakerConfig, SpeakerError};
