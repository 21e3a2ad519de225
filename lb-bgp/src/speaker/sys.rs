//! The one place with `unsafe`: socket options that neither socket2 nor tokio wrap.

#![allow(unsafe_code)]

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use crate::config::MD5_MAX_KEY_LEN;

/// `struct tcp_md5sig` from `<linux/tcp.h>`; libc has the constant but not the struct.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; MD5_MAX_KEY_LEN],
}

/// Sets (or, with an empty key, removes) the RFC 2385 TCP MD5 key for segments to and from
/// `peer` on `socket`. On a listener it applies to connections accepted from `peer`.
pub(crate) fn set_tcp_md5(socket: &impl AsRawFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP MD5 key longer than 80 bytes",
        ));
    }
    // SAFETY: TcpMd5Sig is plain old data (integers and byte arrays); all-zero is a valid value.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let storage: *mut libc::sockaddr_storage = &mut sig.addr;
    match peer {
        IpAddr::V4(addr) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or_default(),
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(addr.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned at least as strictly as
            // sockaddr_in, and `storage` points to a live, writable field of `sig`.
            unsafe { storage.cast::<libc::sockaddr_in>().write(sin) };
        }
        IpAddr::V6(addr) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or_default(),
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: addr.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { storage.cast::<libc::sockaddr_in6>().write(sin6) };
        }
    }
    sig.keylen = u16::try_from(key.len()).unwrap_or_default();
    for (dst, src) in sig.key.iter_mut().zip(key) {
        *dst = *src;
    }
    let len = libc::socklen_t::try_from(std::mem::size_of::<TcpMd5Sig>()).unwrap_or_default();
    // SAFETY: `sig` is initialised and outlives the call; `len` is its exact size; the kernel
    // only reads from the pointer.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            std::ptr::from_ref(&sig).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Hands the allocator's free memory back to the system.
///
/// glibc's malloc keeps what a flood freed (thousands of small queued frames) in its arenas;
/// `malloc_trim` returns the free pages. musl's allocator returns freed memory by itself, and
/// other C libraries are left alone.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}
