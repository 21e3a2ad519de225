//! Layer-2 announcement of service IPs: the elected node answers ARP (IPv4) and Neighbor
//! Solicitations (IPv6) for the IPs it owns, and tells the segment when it takes one over.
//!
//! The crate has a pure core usable anywhere, and a tokio runtime behind the default
//! `runtime` feature:
//!
//! * [`wire`]: Ethernet, ARP, IPv6, ICMPv6 and NDP codecs (views and values, no panics);
//! * [`responder`]: a received frame plus the IPs announced on that interface gives the reply
//!   frame or a typed reason to drop it;
//! * [`takeover`]: the gratuitous ARP / unsolicited NA schedule after an IP is (re)announced;
//! * [`interfaces`]: which links may answer (up, ARP-capable, not enslaved, not excluded by
//!   name), and the per-interface set of announced IPs built from [`lb_core::Announcement`]s;
//! * `runtime` (feature): AF_PACKET sockets with a classic BPF filter per interface, links
//!   followed through netlink, and [`lb_core::Announcer`].

pub mod interfaces;
pub mod responder;
pub mod takeover;
pub mod wire;

#[cfg(feature = "runtime")]
pub mod runtime;

pub use interfaces::{AnnouncedIps, ExcludePatterns, LinkInfo};
pub use responder::{DropReason, Reply, ReplyKind, respond};
pub use takeover::{Takeover, TakeoverSchedule, gratuitous_frames};
pub use wire::EthernetAddress;

#[cfg(feature = "runtime")]
pub use runtime::{InterfaceStatus, IpCounters, L2Error, RawSocket, Responder, ResponderConfig};
