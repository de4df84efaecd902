//! TCP-MD5 signatures (RFC 2385) through `setsockopt(TCP_MD5SIG)`: libc has the option
//! number but not Linux's `struct tcp_md5sig`, and neither nix nor socket2 wraps it.
// The one setsockopt call below needs a raw pointer to a C struct.
#![allow(unsafe_code)]

use std::{
    io, mem,
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd, BorrowedFd},
};

use socket2::SockAddr;

/// Longest key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// Linux's `struct tcp_md5sig` (include/uapi/linux/tcp.h), 216 bytes.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; MAX_KEY_LEN],
}

const _: () = assert!(mem::size_of::<TcpMd5Sig>() == 216);

/// Sets the key for segments to and from `peer` on `socket`, or removes it when `key` is empty.
/// An IPv6 socket (a dual-stack listener) names an IPv4 peer by its IPv4-mapped address, as
/// the kernel expects there. The key must be set before `connect` or `listen`.
pub fn set_key(
    socket: BorrowedFd<'_>,
    ipv6_socket: bool,
    peer: IpAddr,
    key: &[u8],
) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a TCP-MD5 key has at most 80 bytes",
        ));
    }
    let peer = match peer {
        IpAddr::V4(v4) if ipv6_socket => IpAddr::V6(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) if !ipv6_socket => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return Err(io::Error::from(io::ErrorKind::AddrNotAvailable)),
        },
        other => other,
    };
    let address = SockAddr::from(SocketAddr::new(peer, 0));
    // SAFETY: the struct is plain old data (integers and byte arrays), for which all zeroes is
    // a valid value.
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    // SAFETY: `SockAddr` holds a `sockaddr_storage`, so `len()` bytes fit into `sig.addr`, and
    // the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            address.as_ptr().cast::<u8>(),
            (&raw mut sig.addr).cast::<u8>(),
            address.len() as usize,
        );
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: the pointer and length describe `sig`, a live, initialised `struct tcp_md5sig`
    // that the kernel only reads during the call; the fd is borrowed, hence open.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast::<libc::c_void>(),
            mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_longer_than_80_bytes_is_refused() {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        let fd = std::os::fd::AsFd::as_fd(&socket);
        let peer = "192.0.2.1".parse().expect("an address");
        assert!(set_key(fd, false, peer, &[b'x'; 81]).is_err());
        set_key(fd, false, peer, b"secret").expect("the kernel takes a 6-byte key");
        set_key(fd, false, peer, b"").expect("and removes it again");
    }
}
