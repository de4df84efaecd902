//! The sockets of the BGP driver: the outgoing connection, the listener, and the next hops a
//! connection gives us.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    os::fd::AsFd,
    time::Duration,
};

use metallb_bgp::{NextHops, PeerAsn};
use nix::ifaddrs::getifaddrs;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tracing::warn;

use super::PeerOptions;
use crate::sys::md5;

/// How long a dial may take; a peer that drops our SYNs (a wrong TCP-MD5 key does that) is
/// retried after the back-off instead of blocking the session.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// IP TTL of a peer's packets: 1 keeps single-hop eBGP on the link (RFC 4271 §5.1.3 practice),
/// iBGP and multihop eBGP may cross routers.
fn ttl(options: &PeerOptions) -> u32 {
    let session = &options.session;
    let ibgp = match session.peer_asn {
        PeerAsn::Exact(asn) => asn == session.local_asn,
        PeerAsn::Internal => true,
        PeerAsn::External => false,
    };
    if ibgp || options.ebgp_multihop {
        255
    } else {
        1
    }
}

/// Sets the TTL (IPv4) or hop limit (IPv6) for traffic to `peer` on a connected or
/// connecting socket. A dual-stack socket talking IPv4 takes the IPv4 option.
pub(super) fn set_ttl(socket: SockRef<'_>, peer: IpAddr, options: &PeerOptions) -> io::Result<()> {
    match peer.to_canonical() {
        IpAddr::V4(_) => socket.set_ttl_v4(ttl(options)),
        IpAddr::V6(_) => socket.set_unicast_hops_v6(ttl(options)),
    }
}

/// Opens a TCP connection to the peer: TCP-MD5 key and TTL set before the SYN, bound to the
/// source address when one is configured.
pub(super) async fn dial(options: PeerOptions) -> io::Result<TcpStream> {
    let remote = SocketAddr::new(options.address, options.port);
    let socket = Socket::new(
        Domain::for_address(remote),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    if let Some(password) = &options.password {
        md5::set_key(
            socket.as_fd(),
            remote.is_ipv6(),
            remote.ip(),
            password.as_bytes(),
        )?;
    }
    set_ttl(SockRef::from(&socket), remote.ip(), &options)?;
    if let Some(source) = options.source {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    let socket = TcpSocket::from_std_stream(socket.into());
    tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(remote))
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// A listening socket on `address`; an unspecified IPv6 address listens on both families.
pub(super) fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() && address.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(128)?;
    TcpListener::from_std(socket.into())
}

/// The TCP-MD5 keys set on the listener, kept equal to the configured peers' passwords so an
/// accepted connection is signed from its first segment.
#[derive(Debug, Default)]
pub(super) struct ListenerKeys {
    applied: HashMap<IpAddr, String>,
}

impl ListenerKeys {
    /// Sets new and changed keys and removes the ones no peer needs any more.
    pub(super) fn update(&mut self, listener: &TcpListener, wanted: HashMap<IpAddr, String>) {
        let ipv6_socket = listener.local_addr().is_ok_and(|address| address.is_ipv6());
        let fd = listener.as_fd();
        for (address, key) in &wanted {
            if self.applied.get(address) != Some(key)
                && let Err(error) = md5::set_key(fd, ipv6_socket, *address, key.as_bytes())
            {
                warn!(peer = %address, %error, "cannot set tcp-md5 key on the bgp listener");
            }
        }
        for address in self
            .applied
            .keys()
            .filter(|address| !wanted.contains_key(address))
        {
            if let Err(error) = md5::set_key(fd, ipv6_socket, *address, b"") {
                warn!(peer = %address, %error, "cannot remove tcp-md5 key from the bgp listener");
            }
        }
        self.applied = wanted;
    }
}

/// Our next hops on a connection whose local address is `local`: that address for its family,
/// and for the other family the addresses of the interface holding it, so IPv6 prefixes can
/// be announced over an IPv4 session and the other way round.
pub(super) fn next_hops(local: IpAddr) -> NextHops {
    let local = local.to_canonical();
    let addresses = interface_addresses(local);
    let ipv4 = addresses.iter().find_map(|address| match address {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    });
    let ipv6 = |link_local: bool| {
        addresses.iter().find_map(|address| match address {
            IpAddr::V6(v6) if v6.is_unicast_link_local() == link_local => Some(*v6),
            _ => None,
        })
    };
    match local {
        IpAddr::V4(v4) => NextHops {
            ipv4: Some(v4),
            ipv6: ipv6(false),
            ipv6_link_local: ipv6(true),
        },
        IpAddr::V6(v6) => NextHops {
            ipv4,
            ipv6: Some(v6),
            ipv6_link_local: ipv6(true),
        },
    }
}

/// Every address of the interface that holds `local`; empty when none does (the address
/// went away, or it is not a local one).
fn interface_addresses(local: IpAddr) -> Vec<IpAddr> {
    let Ok(all) = getifaddrs() else {
        return Vec::new();
    };
    let all: Vec<(String, IpAddr)> = all
        .filter_map(|interface| {
            let address = interface.address?;
            let ip = if let Some(v4) = address.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else {
                IpAddr::V6(address.as_sockaddr_in6()?.ip())
            };
            Some((interface.interface_name, ip))
        })
        .collect();
    let Some((name, _)) = all.iter().find(|(_, ip)| *ip == local) else {
        return Vec::new();
    };
    all.iter()
        .filter(|(other, _)| other == name)
        .map(|(_, ip)| *ip)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn an_address_on_no_interface_gives_only_itself() {
        let local: IpAddr = "192.0.2.77".parse().expect("an address");
        let hops = next_hops(local);
        assert_eq!(hops.ipv4, Some(Ipv4Addr::new(192, 0, 2, 77)));
        assert_eq!((hops.ipv6, hops.ipv6_link_local), (None, None));
    }

    #[test]
    fn an_ipv4_mapped_local_address_is_an_ipv4_next_hop() {
        let hops = next_hops("::ffff:127.0.0.1".parse().expect("an address"));
        assert_eq!(hops.ipv4, Some(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn an_accepted_ipv4_connection_on_a_dual_stack_listener_takes_the_ttl() {
        let listener = std::net::TcpListener::bind("[::]:0").expect("a dual-stack listener");
        let port = listener.local_addr().expect("an address").port();
        let _client = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("a client");
        let (accepted, remote) = listener.accept().expect("the connection");
        let options = PeerOptions {
            name: "router".to_owned(),
            address: remote.ip().to_canonical(),
            port: 179,
            source: None,
            session: metallb_bgp::Config::new(64500, PeerAsn::Exact(64512), Ipv4Addr::LOCALHOST),
            password: None,
            ebgp_multihop: false,
        };
        set_ttl(SockRef::from(&accepted), remote.ip(), &options).expect("the ttl is set");
        assert_eq!(SockRef::from(&accepted).ttl_v4().expect("the ttl"), 1);
    }
}
