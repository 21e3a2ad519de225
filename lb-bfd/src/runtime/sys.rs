//! The one place with `unsafe`: receiving a datagram with the TTL (hop limit) it arrived
//! with, which neither socket2 nor tokio offer for IPv4.

#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

/// Asks the kernel to report each datagram's TTL (IPv4: `IP_RECVTTL`) or hop limit (IPv6:
/// `IPV6_RECVHOPLIMIT`) with it.
pub(crate) fn set_receive_ttl(socket: &impl AsRawFd, v6: bool) -> io::Result<()> {
    let on: libc::c_int = 1;
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVTTL)
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or_default();
    // SAFETY: `on` is an initialised c_int that outlives the call, `len` is its size, and the
    // kernel only reads from the pointer.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&on).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bytes of the control buffer: room for a TTL or hop-limit message and more.
const CONTROL_LEN: usize = 128;

/// Control buffer, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);

/// Receives one datagram into `buf`: its length, its source, and the TTL or hop limit it
/// arrived with (`None` when the kernel did not say). Non-blocking sockets return
/// `WouldBlock` when nothing is waiting.
pub(crate) fn recv_with_ttl(
    socket: &impl AsRawFd,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    // SAFETY: all-zero is a valid sockaddr_storage (plain integers and bytes).
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = Control([0; CONTROL_LEN]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<libc::c_void>(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths); the fields used are
    // set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = std::ptr::from_mut(&mut from).cast::<libc::c_void>();
    msg.msg_namelen =
        libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_storage>()).unwrap_or(0);
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast::<libc::c_void>();
    // size_t with glibc, socklen_t with musl; 128 fits both.
    msg.msg_controllen = CONTROL_LEN as _;
    // SAFETY: every pointer in `msg` points to a live, writable buffer of the length given
    // beside it, all of which outlive the call.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    let Ok(n) = usize::try_from(n) else {
        return Err(io::Error::last_os_error());
    };
    let source = source_of(&from).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
    })?;
    let mut ttl = None;
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR / CMSG_NXTHDR only walk within
    // msg_control[..msg_controllen], and CMSG_DATA of a header they return points inside it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            let is_ttl = (level == libc::IPPROTO_IP && kind == libc::IP_TTL)
                || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT);
            if is_ttl {
                let value = libc::CMSG_DATA(cmsg).cast::<libc::c_int>().read_unaligned();
                ttl = u8::try_from(value).ok();
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, source, ttl))
}

fn source_of(from: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(from.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // enough and aligned enough for.
            let sin = unsafe { &*std::ptr::from_ref(from).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*std::ptr::from_ref(from).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be(sin6.sin6_port),
            ))
        }
        _ => None,
    }
}
