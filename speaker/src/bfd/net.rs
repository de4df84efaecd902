//! The sockets: four shared receive sockets that report the TTL of every datagram, and one
//! transmit socket per session with TTL 255 and a source port from the range RFC 5881 asks
//! for.

use std::{
    io::{self, IoSliceMut},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd,
};

use metallb_bfd::{Hop, JitterSource, SOURCE_PORTS, TTL, Xorshift};
use nix::sys::socket::{
    self as nix_socket, ControlMessageOwned, MsgFlags, SockaddrStorage, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::{io::Interest, net::UdpSocket};

use super::BfdError;

/// DSCP CS6 (network control), as FRR and other routers mark BFD, so that queues under load
/// do not delay the packets that say the path is alive.
const TOS_NETWORK_CONTROL: u32 = 0xc0;

/// How often a free source port is drawn before giving up.
const SOURCE_PORT_ATTEMPTS: usize = 64;

/// Room for one `int` control message: the TTL (IPv4) or the hop limit (IPv6).
const CMSG_LEN: usize = nix_socket::cmsg_space::<libc::c_int>();

/// The control message buffer, aligned for the `cmsghdr` the kernel writes into it.
#[repr(C, align(8))]
#[derive(Debug)]
pub(super) struct CmsgBuffer([u8; CMSG_LEN]);

impl CmsgBuffer {
    pub(super) fn new() -> Self {
        Self([0; CMSG_LEN])
    }
}

/// One receive socket, bound to the wildcard address of a family on a hop's port.
#[derive(Debug)]
pub(super) struct Receiver {
    socket: UdpSocket,
    hop: Hop,
}

/// Where a datagram came from and with which TTL or hop limit.
#[derive(Clone, Copy, Debug)]
pub(super) struct Datagram {
    pub(super) source: IpAddr,
    pub(super) len: usize,
    /// `None` if the kernel attached no TTL, which the socket options should rule out.
    pub(super) ttl: Option<u8>,
}

impl Receiver {
    /// Binds `[::]` or `0.0.0.0` on the port of `hop`, with the TTL reported per datagram.
    pub(super) fn bind(wildcard: IpAddr, hop: Hop) -> Result<Self, BfdError> {
        let address = SocketAddr::new(wildcard, hop.port());
        let error = |source| BfdError::Bind { address, source };
        let socket = Socket::new(
            Domain::for_address(address),
            Type::DGRAM,
            Some(Protocol::UDP),
        )
        .map_err(error)?;
        socket.set_nonblocking(true).map_err(error)?;
        match wildcard {
            IpAddr::V4(_) => setsockopt(&socket, sockopt::Ipv4RecvTtl, &true),
            IpAddr::V6(_) => {
                socket.set_only_v6(true).map_err(error)?;
                setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)
            }
        }
        .map_err(|errno| error(errno.into()))?;
        socket.bind(&address.into()).map_err(error)?;
        let socket = UdpSocket::from_std(socket.into()).map_err(error)?;
        Ok(Self { socket, hop })
    }

    /// The single hop or multi hop port this socket listens on.
    pub(super) fn hop(&self) -> Hop {
        self.hop
    }

    /// Waits until a datagram may be waiting.
    pub(super) async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Reads one datagram into `buffer` without blocking (`WouldBlock` when none is
    /// queued). A datagram longer than `buffer` is cut short; the parser reads only the
    /// Length the packet announces, and refuses it if that is longer than what arrived.
    pub(super) fn try_receive(
        &self,
        buffer: &mut [u8],
        cmsg: &mut CmsgBuffer,
    ) -> io::Result<Datagram> {
        self.socket
            .try_io(Interest::READABLE, || receive(&self.socket, buffer, cmsg))
    }
}

fn receive(socket: &UdpSocket, buffer: &mut [u8], cmsg: &mut CmsgBuffer) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buffer)];
    let message = nix_socket::recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg.0),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let source = message.address.and_then(|address| {
        address
            .as_sockaddr_in()
            .map(|v4| IpAddr::V4(v4.ip()))
            .or_else(|| address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
    });
    let ttl = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::Ipv4Ttl(ttl) | ControlMessageOwned::Ipv6HopLimit(ttl) => {
                u8::try_from(ttl).ok()
            }
            _ => None,
        })
    });
    let source = source.ok_or_else(|| io::Error::other("datagram without a source address"))?;
    Ok(Datagram {
        source,
        len: message.bytes,
        ttl,
    })
}

/// The transmit side of one session.
#[derive(Debug)]
pub(super) struct Transmitter {
    socket: Socket,
    destination: SockAddr,
}

impl Transmitter {
    /// A socket towards `peer` on the port of `hop`, bound to `local` (or the wildcard, so
    /// the kernel chooses the source address) and a random free port of [`SOURCE_PORTS`].
    /// `local` may be an address the host does not have yet: the session then starts
    /// sending as soon as it appears.
    pub(super) fn open(
        peer: IpAddr,
        local: Option<IpAddr>,
        hop: Hop,
        random: &mut Xorshift,
    ) -> io::Result<Self> {
        let destination = SocketAddr::new(peer, hop.port());
        let socket = Socket::new(
            Domain::for_address(destination),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        socket.set_nonblocking(true)?;
        // Nothing is read from this socket: keep what strays into it small.
        socket.set_recv_buffer_size(1)?;
        let local = match peer {
            IpAddr::V4(_) => {
                socket.set_ttl_v4(TTL.into())?;
                socket.set_tos_v4(TOS_NETWORK_CONTROL)?;
                socket.set_freebind_v4(true)?;
                local.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            }
            IpAddr::V6(_) => {
                socket.set_only_v6(true)?;
                socket.set_unicast_hops_v6(TTL.into())?;
                socket.set_tclass_v6(TOS_NETWORK_CONTROL)?;
                socket.set_freebind_v6(true)?;
                local.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
            }
        };
        bind_source_port(&socket, local, random)?;
        Ok(Self {
            socket,
            destination: destination.into(),
        })
    }

    /// Sends one packet without blocking; a full socket buffer is an error like any other.
    pub(super) fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.socket.send_to(packet, &self.destination).map(drop)
    }
}

fn bind_source_port(socket: &Socket, local: IpAddr, random: &mut Xorshift) -> io::Result<()> {
    let first = u32::from(*SOURCE_PORTS.start());
    let count = u32::from(*SOURCE_PORTS.end()) - first + 1;
    let mut last_error = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..SOURCE_PORT_ATTEMPTS {
        let port = u16::try_from(first + random.next_u32() % count).unwrap_or(u16::MAX);
        match socket.bind(&SocketAddr::new(local, port).into()) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = error,
            Err(error) => return Err(error),
        }
    }
    Err(last_error)
}
