//! The shared vocabulary of the load balancer.
//!
//! Every other crate speaks in these types: which service ([`ServiceKey`]), which ports
//! ([`ServicePort`]), which address families ([`IpFamily`], [`IpFamilyPolicy`]), which nodes
//! ([`NodeName`]), and what a backend is asked to announce ([`Announcement`], handed to an
//! [`Announcer`]). The Layer-2 election order ([`rank_nodes`]) lives here too, so that the
//! speaker, the offline planner and tests all compute the same owner.
//!
//! This crate is pure: no async runtime, no Kubernetes client, no sockets.

mod announcement;
mod announcer;
mod backoff;
mod community;
mod node;
mod ranking;
mod service;

pub use announcement::{Announcement, BgpAdvertisement, BgpAttributes, L2Attributes};
pub use announcer::{AnnouncementChange, AnnouncementTable, Announcer};
pub use backoff::Backoff;
pub use community::{Community, CommunityParseError, LargeCommunity};
pub use node::NodeName;
pub use ranking::{RankCandidate, rank_nodes};
pub use service::{
    IpFamily, IpFamilyPolicy, ParseError, Protocol, ServiceKey, ServicePort, TrafficPolicy,
};
