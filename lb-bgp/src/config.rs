//! Peer and session settings: plain data, with no sockets or runtime, so a configuration
//! layer (the MetalLB translation in `lb-metallb`, a test, another controller) can build them
//! without the tokio speaker.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::fsm::{Backoff, DEFAULT_HOLD_TIME};
use crate::wire::Family;

/// Longest TCP MD5 key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`, RFC 2385).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// One BGP neighbour.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// Name used by [`lb_core::BgpAdvertisement::peers`] to restrict routes to some peers.
    pub name: String,
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's TCP port (179).
    pub port: u16,
    /// Our ASN on this session.
    pub local_asn: u32,
    /// The peer's ASN; equal to `local_asn` for iBGP.
    pub peer_asn: u32,
    /// Our BGP Identifier; when `None`, the speaker's, else `source` if it is IPv4.
    pub router_id: Option<Ipv4Addr>,
    /// Local address to connect from.
    pub source: Option<IpAddr>,
    /// Proposed hold time in seconds: 0 or at least 3. Keepalives go every third of it.
    pub hold_time: u16,
    /// eBGP multihop: the TTL of our packets. eBGP sessions use TTL 1 otherwise.
    pub ebgp_multihop: Option<u8>,
    /// TCP MD5 password (RFC 2385), at most 80 bytes.
    pub password: Option<String>,
    /// Graceful restart time in seconds (at most 4095), if graceful restart is enabled.
    pub graceful_restart: Option<u16>,
    /// Next hop for IPv4 routes; the session's local address when it is IPv4.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes; the session's local address when it is IPv6.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Families offered (IPv4 and IPv6 unicast).
    pub families: Vec<Family>,
    /// Limit on one TCP connect attempt.
    pub connect_timeout: Duration,
    /// Connect-retry backoff.
    pub backoff: Backoff,
}

impl PeerConfig {
    /// A peer with the defaults: port 179, hold time 90 s, both families, no MD5, no graceful
    /// restart.
    pub fn new(name: impl Into<String>, address: IpAddr, local_asn: u32, peer_asn: u32) -> Self {
        Self {
            name: name.into(),
            address,
            port: 179,
            local_asn,
            peer_asn,
            router_id: None,
            source: None,
            hold_time: DEFAULT_HOLD_TIME,
            ebgp_multihop: None,
            password: None,
            graceful_restart: None,
            next_hop_v4: None,
            next_hop_v6: None,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            connect_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
        }
    }
}

/// What a session needs to know about its peer and itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Our ASN.
    pub local_asn: u32,
    /// The ASN the peer must present in its OPEN.
    pub peer_asn: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Hold time we propose, in seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// Families we offer (Multiprotocol capabilities).
    pub families: Vec<Family>,
    /// Graceful restart: the restart time we ask the peer to keep our routes for, if enabled.
    pub graceful_restart: Option<u16>,
    /// Connect-retry backoff.
    pub backoff: Backoff,
    /// Seed of the jitter generator (any value; fixed in tests).
    pub seed: u64,
}

impl SessionConfig {
    /// A configuration with the defaults: hold time 90 s, IPv4 and IPv6 unicast, no graceful
    /// restart, default backoff.
    pub fn new(local_asn: u32, peer_asn: u32, router_id: Ipv4Addr) -> Self {
        Self {
            local_asn,
            peer_asn,
            router_id,
            hold_time: DEFAULT_HOLD_TIME,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            graceful_restart: None,
            backoff: Backoff::default(),
            seed: u64::from(u32::from(router_id)) ^ u64::from(peer_asn) << 32,
        }
    }

    /// Whether the session is internal (same ASN on both sides).
    pub fn is_ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }
}
