//! AF_PACKET sockets bound to one interface, for the ARP and NDP responders: the `bind` with a
//! `sockaddr_ll`, the `packet_mreq` memberships and the `recvfrom` that reports the packet type,
//! none of which nix or socket2 wrap for packet sockets.

// The kernel takes sockaddr_ll and packet_mreq by pointer; every such call is below.
#![allow(unsafe_code)]

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, RawFd},
    task::{Context, Poll, ready},
};

use socket2::{Domain, Protocol, SockFilter, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};

/// What `recvfrom` said about one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The frame's full length, which exceeds the buffer if the frame did not fit.
    pub len: usize,
    /// The frame was sent by this host (`PACKET_OUTGOING`). Only a socket bound to every
    /// protocol sees those, but the flag is what the kernel says, not what we assume.
    pub outgoing: bool,
}

/// A nonblocking `AF_PACKET`/`SOCK_RAW` socket bound to one interface and registered with the
/// tokio reactor. Frames are read and written whole, starting at the destination MAC.
#[derive(Debug)]
pub struct PacketSocket(AsyncFd<BoundSocket>);

impl PacketSocket {
    /// Opens a socket receiving the frames of interface `ifindex` with EtherType `protocol`
    /// that pass the classic BPF `filter`. Must run inside a tokio runtime.
    pub fn open(ifindex: u32, protocol: u16, filter: &[SockFilter]) -> io::Result<Self> {
        let socket = BoundSocket::open(ifindex, protocol, filter)?;
        // SAFETY: `BoundSocket` owns its fd, which stays open until it is dropped, and always
        // returns that same fd; this type never hands out `&mut` access that could replace it.
        let registered = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        Ok(Self(registered))
    }

    /// Reads one frame into `buffer` if one is waiting, or registers the task's waker. A frame
    /// longer than the buffer is cut to it and its full length reported.
    pub fn poll_recv(&self, buffer: &mut [u8], cx: &mut Context<'_>) -> Poll<io::Result<Received>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            // `try_io` clears the readiness on WouldBlock; polling again registers the waker.
            if let Ok(result) = guard.try_io(|socket| socket.get_ref().recv(buffer)) {
                return Poll::Ready(result);
            }
        }
    }

    /// Sends one whole frame on the bound interface; a full socket buffer is an error, not a
    /// wait.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let sent = self.0.get_ref().socket.send(frame)?;
        if sent == frame.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "frame sent in part",
            ))
        }
    }

    /// Receives frames sent to the multicast MAC `group` (the interface's filter lets them in).
    pub fn join(&self, group: [u8; 6]) -> io::Result<()> {
        self.0
            .get_ref()
            .membership(libc::PACKET_ADD_MEMBERSHIP, group)
    }

    /// Undoes [`join`](Self::join).
    pub fn leave(&self, group: [u8; 6]) -> io::Result<()> {
        self.0
            .get_ref()
            .membership(libc::PACKET_DROP_MEMBERSHIP, group)
    }
}

/// The socket itself, before and after registration.
#[derive(Debug)]
struct BoundSocket {
    socket: Socket,
    ifindex: libc::c_int,
}

impl BoundSocket {
    fn open(ifindex: u32, protocol: u16, filter: &[SockFilter]) -> io::Result<Self> {
        let ifindex = libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
        // Protocol 0 receives nothing until `bind` names one, so no frame gets past before the
        // filter is attached.
        let socket = Socket::new(
            Domain::PACKET,
            Type::RAW.nonblocking(),
            Some(Protocol::from(0)),
        )?;
        socket.attach_filter(filter)?;
        let address = link_address(ifindex, protocol.to_be());
        // SAFETY: `address` is a fully initialised sockaddr_ll that outlives the call, and the
        // length passed is its size; the fd is open for the duration of the call.
        let rc =
            unsafe { libc::bind(socket.as_raw_fd(), (&raw const address).cast(), ADDRESS_LEN) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { socket, ifindex })
    }

    /// Reads one frame; `WouldBlock` when none is waiting.
    fn recv(&self, buffer: &mut [u8]) -> io::Result<Received> {
        let mut address = link_address(0, 0);
        let mut address_len = ADDRESS_LEN;
        // SAFETY: `buffer` is valid for `buffer.len()` bytes of writes; `address` is a
        // sockaddr_ll valid for `address_len` bytes, which is all the kernel writes there
        // (a longer address is truncated, never overflowed). Both outlive the call.
        let len = unsafe {
            libc::recvfrom(
                self.socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_TRUNC,
                (&raw mut address).cast(),
                &mut address_len,
            )
        };
        // A negative return is an error; anything else fits a usize.
        let len = usize::try_from(len).map_err(|_| io::Error::last_os_error())?;
        Ok(Received {
            len,
            outgoing: address.sll_pkttype == libc::PACKET_OUTGOING,
        })
    }

    fn membership(&self, option: libc::c_int, group: [u8; 6]) -> io::Result<()> {
        let mut mr_address = [0; 8];
        mr_address[..6].copy_from_slice(&group);
        let request = libc::packet_mreq {
            mr_ifindex: self.ifindex,
            mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
            mr_alen: 6,
            mr_address,
        };
        // SAFETY: `request` is a fully initialised packet_mreq that outlives the call, and the
        // length passed is its size; the fd is open for the duration of the call.
        let rc = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                option,
                (&raw const request).cast(),
                MREQ_LEN,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl AsRawFd for BoundSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

fn link_address(ifindex: libc::c_int, protocol: u16) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: protocol,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    }
}

// Both structs are 20 bytes or less, so the casts are exact.
const ADDRESS_LEN: libc::socklen_t = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
const MREQ_LEN: libc::socklen_t = size_of::<libc::packet_mreq>() as libc::socklen_t;
