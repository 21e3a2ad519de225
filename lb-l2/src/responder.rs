//! The pure responder: one received frame and the IPs announced on the interface it arrived
//! on give either the reply to send or the reason not to.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::interfaces::{AnnouncedIps, Lookup};
use crate::wire::frame::NDP_HOP_LIMIT;
use crate::wire::ipv6::is_solicited_node;
use crate::wire::{
    ArpOperation, ArpRepr, EthernetAddress, Frame, NdpRepr, NeighborFlags, WireError, arp_frame,
    ndp_frame, solicited_node,
};

/// The all-nodes multicast group, destination of unsolicited advertisements.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The interface a frame arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Interface<'a> {
    /// Its name (announcements may be restricted by name).
    pub name: &'a str,
    /// Its Ethernet address: the address every answer carries.
    pub mac: EthernetAddress,
}

/// What kind of answer a [`Reply`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// An ARP reply.
    ArpReply,
    /// A Neighbor Advertisement answering a solicitation.
    NeighborAdvert,
}

/// A frame to send in answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The announced IP the request asked about.
    pub ip: IpAddr,
    /// ARP reply or Neighbor Advertisement.
    pub kind: ReplyKind,
    /// The whole Ethernet frame.
    pub frame: Vec<u8>,
}

/// Why a received frame gets no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Not ARP or Neighbor Discovery, or a variant this crate does not handle (ARP over
    /// another link type, another ICMPv6 type).
    Unsupported(WireError),
    /// Bytes that do not parse, or a bad ICMPv6 checksum.
    Malformed(WireError),
    /// An ARP reply or other operation, or a Neighbor Advertisement.
    NotRequest,
    /// Sent by this interface (our own frame looped back).
    FromUs,
    /// Addressed at the Ethernet layer to another host.
    NotForUs {
        /// The frame's destination.
        dst: EthernetAddress,
    },
    /// Asks about an IP nobody announces.
    NotOurs(IpAddr),
    /// Asks about an IP announced, but not on this interface.
    WrongInterface(IpAddr),
    /// Another host claims one of our IPs (a gratuitous ARP for it): a conflict to report,
    /// not a question to answer.
    Conflict {
        /// The IP.
        ip: IpAddr,
        /// The other host's Ethernet address.
        mac: EthernetAddress,
    },
    /// A Neighbor Solicitation whose hop limit is not 255: it crossed a router, so RFC 4861
    /// §7.1.1 says discard it.
    HopLimit(u8),
    /// A request that cannot be answered: a Neighbor Solicitation breaking an RFC 4861
    /// §7.1.1 rule that needs the IP header, or a request with no unicast address to answer.
    InvalidRequest(&'static str),
}

impl DropReason {
    /// A short, stable name for counters and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Unsupported(_) => "unsupported",
            Self::Malformed(_) => "malformed",
            Self::NotRequest => "not_request",
            Self::FromUs => "from_us",
            Self::NotForUs { .. } => "not_for_us",
            Self::NotOurs(_) => "not_ours",
            Self::WrongInterface(_) => "wrong_interface",
            Self::Conflict { .. } => "conflict",
            Self::HopLimit(_) => "hop_limit",
            Self::InvalidRequest(_) => "invalid_request",
        }
    }

    /// The announced-or-not IP the frame asked about, when it got that far.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::NotOurs(ip) | Self::WrongInterface(ip) | Self::Conflict { ip, .. } => Some(*ip),
            _ => None,
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported(e) | Self::Malformed(e) => write!(f, "{e}"),
            Self::NotRequest => f.write_str("not a request"),
            Self::FromUs => f.write_str("sent by this interface"),
            Self::NotForUs { dst } => write!(f, "addressed to {dst}"),
            Self::NotOurs(ip) => write!(f, "{ip} is not announced"),
            Self::WrongInterface(ip) => write!(f, "{ip} is not announced on this interface"),
            Self::Conflict { ip, mac } => write!(f, "{mac} claims {ip}, which we announce"),
            Self::HopLimit(h) => write!(f, "hop limit {h}, not 255"),
            Self::InvalidRequest(what) => write!(f, "invalid request: {what}"),
        }
    }
}

/// Answers one received frame.
///
/// * ARP: a request (Ethernet destination broadcast or our MAC) whose target is an IPv4
///   address announced on this interface gets a unicast reply with our MAC, to the
///   requester's hardware address. Probes (sender 0.0.0.0, RFC 5227) are answered too: we
///   own the address and the prober must learn that. Any ARP packet whose sender is one of
///   our IPs with another host's hardware address (a gratuitous request or reply, RFC 5227
///   §2.4), and any Neighbor Advertisement of one of our IPs by another host, is reported as
///   [`DropReason::Conflict`]: two nodes announce the same IP.
/// * NDP: a Neighbor Solicitation (hop limit 255, valid checksum, to the target's
///   solicited-node group or to the target itself) for an announced IPv6 target gets a
///   Neighbor Advertisement from the target address with our MAC as target link-layer
///   address. It goes to the solicitor's link-layer address (its option, else the frame's
///   source) with Solicited set; a duplicate-address-detection probe (source `::`) is
///   answered to all-nodes with Solicited clear (RFC 4861 §7.2.4), which makes the prober
///   give the address up.
///
/// The advertisement sets **Override**. RFC 4861 §7.2.5: a host whose cache already holds
/// another link-layer address for the target ignores an advertisement without Override (it
/// only marks the entry STALE and keeps the old address). After a failover, every client's
/// cache holds the previous owner's MAC, so without Override they would keep sending to the
/// dead node until their entry expired and they solicited again. Override is only to be left
/// clear by proxies and anycast responders, where other answers are equally valid; a service
/// IP has exactly one owner at a time (MetalLB clears it; that is the bug this avoids).
pub fn respond(
    frame: &[u8],
    interface: Interface<'_>,
    announced: &AnnouncedIps,
) -> Result<Reply, DropReason> {
    let parsed = Frame::parse(frame).map_err(|e| match e {
        WireError::Unsupported { .. } => DropReason::Unsupported(e),
        _ => DropReason::Malformed(e),
    })?;
    let ethernet = parsed.ethernet();
    if ethernet.src_addr == interface.mac {
        return Err(DropReason::FromUs);
    }
    if !ethernet.dst_addr.is_multicast() && ethernet.dst_addr != interface.mac {
        return Err(DropReason::NotForUs {
            dst: ethernet.dst_addr,
        });
    }
    match parsed {
        Frame::Arp { ethernet, arp } => answer_arp(&ethernet, &arp, interface, announced),
        Frame::Ndp {
            ethernet,
            ipv6,
            ndp,
        } => {
            let (target_addr, source_lladdr) = match ndp {
                NdpRepr::NeighborSolicit {
                    target_addr,
                    source_lladdr,
                } => (target_addr, source_lladdr),
                NdpRepr::NeighborAdvert {
                    target_addr,
                    target_lladdr,
                    ..
                } => {
                    // Another host advertising one of our IPs: a conflict (RFC 4861 §7.2.5).
                    let ip = IpAddr::V6(target_addr);
                    let mac = target_lladdr.unwrap_or(ethernet.src_addr);
                    if mac != interface.mac && announced.lookup(ip, interface.name) == Lookup::Here
                    {
                        return Err(DropReason::Conflict { ip, mac });
                    }
                    return Err(DropReason::NotRequest);
                }
            };
            if ipv6.hop_limit != NDP_HOP_LIMIT {
                return Err(DropReason::HopLimit(ipv6.hop_limit));
            }
            if ipv6.src_addr.is_multicast() {
                return Err(DropReason::InvalidRequest("multicast IPv6 source"));
            }
            let dad = ipv6.src_addr.is_unspecified();
            if dad && (source_lladdr.is_some() || !is_solicited_node(ipv6.dst_addr)) {
                return Err(DropReason::InvalidRequest(
                    "unspecified source needs a solicited-node destination and no source link-layer address",
                ));
            }
            if ipv6.dst_addr != target_addr && ipv6.dst_addr != solicited_node(target_addr) {
                return Err(DropReason::InvalidRequest(
                    "destination is neither the target nor its solicited-node group",
                ));
            }
            check_announced(IpAddr::V6(target_addr), interface, announced)?;
            let advert = NdpRepr::NeighborAdvert {
                flags: NeighborFlags {
                    router: false,
                    solicited: !dad,
                    override_: true,
                },
                target_addr,
                target_lladdr: Some(interface.mac),
            };
            let (dst_mac, dst_ip) = if dad {
                (EthernetAddress::ipv6_multicast(ALL_NODES), ALL_NODES)
            } else {
                let mac = source_lladdr.unwrap_or(ethernet.src_addr);
                if !mac.is_unicast() {
                    return Err(DropReason::InvalidRequest(
                        "no unicast link-layer address to answer to",
                    ));
                }
                (mac, ipv6.src_addr)
            };
            Ok(Reply {
                ip: IpAddr::V6(target_addr),
                kind: ReplyKind::NeighborAdvert,
                frame: ndp_frame((interface.mac, dst_mac), (target_addr, dst_ip), advert),
            })
        }
    }
}

fn answer_arp(
    ethernet: &crate::wire::EthernetRepr,
    arp: &ArpRepr,
    interface: Interface<'_>,
    announced: &AnnouncedIps,
) -> Result<Reply, DropReason> {
    // RFC 5227 §2.4: any ARP packet whose sender is one of our IPs and another host's
    // hardware address is a conflict (a gratuitous request or reply, or a host using it).
    let sender = IpAddr::V4(arp.source_protocol_addr);
    if arp.source_hardware_addr != interface.mac
        && announced.lookup(sender, interface.name) == Lookup::Here
    {
        return Err(DropReason::Conflict {
            ip: sender,
            mac: arp.source_hardware_addr,
        });
    }
    if arp.operation != ArpOperation::Request {
        return Err(DropReason::NotRequest);
    }
    let ip = IpAddr::V4(arp.target_protocol_addr);
    check_announced(ip, interface, announced)?;
    let to = if arp.source_hardware_addr.is_unicast() {
        arp.source_hardware_addr
    } else if ethernet.src_addr.is_unicast() {
        ethernet.src_addr
    } else {
        return Err(DropReason::InvalidRequest(
            "no unicast hardware address to answer to",
        ));
    };
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: interface.mac,
        source_protocol_addr: arp.target_protocol_addr,
        target_hardware_addr: to,
        target_protocol_addr: arp.source_protocol_addr,
    };
    Ok(Reply {
        ip,
        kind: ReplyKind::ArpReply,
        frame: arp_frame(interface.mac, to, reply),
    })
}

fn check_announced(
    ip: IpAddr,
    interface: Interface<'_>,
    announced: &AnnouncedIps,
) -> Result<(), DropReason> {
    match announced.lookup(ip, interface.name) {
        Lookup::Here => Ok(()),
        Lookup::OtherInterface => Err(DropReason::WrongInterface(ip)),
        Lookup::NotAnnounced => Err(DropReason::NotOurs(ip)),
    }
}
