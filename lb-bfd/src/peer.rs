//! Which session, and how it runs: what a caller (the speaker's decision, say) hands to the
//! runtime. Pure data, available without the `runtime` feature.

use std::net::IpAddr;

use crate::session::SessionConfig;

/// Which session: the remote address, the local address packets go out from (the routing
/// table's choice when `None`), and whether the remote system is more than one hop away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    /// The remote system's address.
    pub peer: IpAddr,
    /// The local address to send from.
    pub local: Option<IpAddr>,
    /// Multihop (RFC 5883) rather than single-hop (RFC 5881).
    pub multihop: bool,
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.peer)?;
        if let Some(local) = self.local {
            write!(f, " from {local}")?;
        }
        if self.multihop {
            f.write_str(" (multihop)")?;
        }
        Ok(())
    }
}

/// A session to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSpec {
    /// Which session.
    pub key: PeerKey,
    /// Its timers and role.
    pub config: SessionConfig,
    /// Multihop only: the lowest TTL a packet may arrive with (MetalLB's `minimumTtl`).
    /// Single-hop packets must always arrive with 255.
    pub minimum_ttl: u8,
}
