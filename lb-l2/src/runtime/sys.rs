//! The only `unsafe` in this crate: link-layer socket addresses and packet-socket multicast
//! membership, which neither socket2 nor nix exposes safely.
#![allow(unsafe_code)]

use std::io;
use std::mem;

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type};

use crate::wire::EthernetAddress;

/// `ETH_P_ALL`: every protocol (the BPF filter below narrows it).
const ETH_P_ALL: u16 = 0x0003;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: the classic-BPF ancillary load of `skb->pkt_type`.
const SKF_AD_PKTTYPE: u32 = 0xffff_f000 + 4;
/// `PACKET_OUTGOING`: a frame this host sends, seen by a tap.
const PACKET_OUTGOING: u32 = 4;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;

/// `SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT`: 1 when the kernel moved an 802.1Q tag off the
/// frame into its metadata.
const SKF_AD_VLAN_TAG_PRESENT: u32 = 0xffff_f000 + 48;

/// The filter every responder socket carries, so the kernel wakes us only for untagged ARP
/// requests and ICMPv6 Neighbor Solicitations, never for our own outgoing frames or other
/// traffic. Tagged frames are dropped: the kernel strips the tag before taps see the frame,
/// so a request from VLAN 100 would otherwise look like one from the untagged network and
/// be answered there (VLANs are answered on their own `eth0.100`-style interfaces).
///
/// ```text
///  0: ld   #pkttype            ; drop what this host sends
///  1: jeq  #4 (OUTGOING)   → 14
///  2: ld   #vlan_avail         ; drop 802.1Q-tagged frames
///  3: jeq  #1              → 14
///  4: ldh  [12]                ; EtherType
///  5: jeq  #0x0806 (ARP)   → 6 else 8
///  6: ldh  [20]                ; ARP operation
///  7: jeq  #1 (request)    → 13 else 14
///  8: jeq  #0x86dd (IPv6)  → 9 else 14
///  9: ldb  [20]                ; IPv6 next header (no extension headers: NDP has none)
/// 10: jeq  #58 (ICMPv6)    → 11 else 14
/// 11: ldb  [54]                ; ICMPv6 type
/// 12: jeq  #135 (NS)       → 13 else 14
/// 13: ret  #262144             ; accept the whole frame
/// 14: ret  #0                  ; drop
/// ```
pub(crate) const FILTER: [SockFilter; 15] = [
    SockFilter::new(LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),
    SockFilter::new(JEQ_K, 12, 0, PACKET_OUTGOING),
    SockFilter::new(LD_W_ABS, 0, 0, SKF_AD_VLAN_TAG_PRESENT),
    SockFilter::new(JEQ_K, 10, 0, 1),
    SockFilter::new(LD_H_ABS, 0, 0, 12),
    SockFilter::new(JEQ_K, 0, 2, 0x0806),
    SockFilter::new(LD_H_ABS, 0, 0, 20),
    SockFilter::new(JEQ_K, 5, 6, 1),
    SockFilter::new(JEQ_K, 0, 5, 0x86dd),
    SockFilter::new(LD_B_ABS, 0, 0, 20),
    SockFilter::new(JEQ_K, 0, 3, 58),
    SockFilter::new(LD_B_ABS, 0, 0, 54),
    SockFilter::new(JEQ_K, 0, 1, 135),
    SockFilter::new(RET_K, 0, 0, 0x0004_0000),
    SockFilter::new(RET_K, 0, 0, 0),
];

/// A link-layer socket address for interface `ifindex` and EtherType `protocol`.
pub(crate) fn link_addr(ifindex: u32, protocol: u16, dst: Option<EthernetAddress>) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_ll, and all-zero bytes
    // are a valid sockaddr_ll.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::sa_family_t::try_from(libc::AF_PACKET).unwrap_or(17);
    ll.sll_protocol = protocol.to_be();
    ll.sll_ifindex = i32::try_from(ifindex).unwrap_or(0);
    if let Some(mac) = dst {
        ll.sll_halen = 6;
        for (d, s) in ll.sll_addr.iter_mut().zip(mac.0) {
            *d = s;
        }
    }
    let len = libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_ll>()).unwrap_or(0);
    // SAFETY: the storage holds an initialised sockaddr_ll of exactly `len` bytes.
    unsafe { SockAddr::new(storage, len) }
}

/// An `AF_PACKET`/`SOCK_RAW` socket bound to `ifindex`, carrying [`FILTER`], nonblocking.
///
/// The socket is created with protocol 0 (it receives nothing), the filter attached, and only
/// then bound to `ETH_P_ALL`, so no unfiltered frame is ever queued on it.
pub(crate) fn packet_socket(ifindex: u32) -> io::Result<Socket> {
    let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
    socket.attach_filter(&FILTER)?;
    socket.bind(&link_addr(ifindex, ETH_P_ALL, None))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Adds or drops membership of the link-layer multicast group `mac` on `ifindex` for this
/// packet socket, so the device's multicast filter passes frames sent to it.
pub(crate) fn packet_membership(
    socket: &Socket,
    ifindex: u32,
    mac: EthernetAddress,
    add: bool,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut mreq = libc::packet_mreq {
        mr_ifindex: i32::try_from(ifindex).unwrap_or(0),
        mr_type: libc::c_ushort::try_from(libc::PACKET_MR_MULTICAST).unwrap_or(0),
        mr_alen: 6,
        mr_address: [0; 8],
    };
    for (d, s) in mreq.mr_address.iter_mut().zip(mac.0) {
        *d = s;
    }
    let option = if add {
        libc::PACKET_ADD_MEMBERSHIP
    } else {
        libc::PACKET_DROP_MEMBERSHIP
    };
    let len = libc::socklen_t::try_from(mem::size_of::<libc::packet_mreq>()).unwrap_or(0);
    // SAFETY: `mreq` is a valid packet_mreq that outlives the call, and `len` is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            option,
            (&raw const mreq).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// [`packet_socket`] registered with the tokio reactor.
pub(crate) fn async_packet_socket(ifindex: u32) -> io::Result<tokio::io::unix::AsyncFd<Socket>> {
    let socket = packet_socket(ifindex)?;
    // SAFETY: a socket2 `Socket` owns its descriptor: it stays open, and `as_raw_fd` returns
    // the same one, until the Socket is dropped, which happens only when the AsyncFd that
    // now owns it is dropped.
    unsafe { tokio::io::unix::AsyncFd::register(socket) }.map_err(io::Error::from)
}

/// An unfiltered `AF_PACKET` socket bound to `ifindex` for sending only (protocol 0: it
/// receives nothing).
pub(crate) fn send_socket(ifindex: u32) -> io::Result<Socket> {
    let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
    socket.bind(&link_addr(ifindex, 0, None))?;
    Ok(socket)
}

/// The index of the interface named `name` in the calling thread's network namespace.
pub(crate) fn if_index(name: &str) -> io::Result<u32> {
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}
