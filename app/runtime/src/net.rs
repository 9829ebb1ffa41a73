//! Network helpers shared by the supervisor and the tests.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage, sockopt};

/// A loopback TCP port held for a peer that must be told its port before it listens, or that
/// goes away and comes back on the same port (an outage), or for an address where nothing may
/// listen. Servers of ours bind port 0 and report their address instead; this is for peers
/// that cannot (a child process that takes `--port N` and is restarted on it).
///
/// The port is bound here with `SO_REUSEADDR` and never listened on, so a connection to it is
/// refused, as with no peer at all. Linux lets another socket with `SO_REUSEADDR` bind and
/// listen on it while no socket listens there (tokio, GLib and therefore gst-rtsp-server,
/// asyncio and mosquitto set it), and it never hands a held port to a port-0 bind or to an
/// outgoing connection: between the peer's runs the port stays ours, where a port found by
/// binding port 0 and closing the socket could be taken by anyone. Released on drop.
#[derive(Debug)]
pub struct HeldPort {
    _socket: OwnedFd,
    addr: SocketAddr,
}

impl HeldPort {
    /// Holds a free port on 127.0.0.1.
    pub fn new() -> std::io::Result<Self> {
        Self::on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Holds `addr` (port 0: a free port the kernel picks on that address). The supervisor
    /// holds the ports it picks for listeners configured with port 0 this way, for as long as
    /// it runs, so a worker restarted on its port never finds it taken.
    pub fn on(addr: SocketAddr) -> std::io::Result<Self> {
        let family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
        let bound: SockaddrStorage = socket::getsockname(fd.as_raw_fd())?;
        let addr = bound
            .as_sockaddr_in()
            .map(|a| SocketAddr::from(std::net::SocketAddrV4::from(*a)))
            .or_else(|| {
                bound
                    .as_sockaddr_in6()
                    .map(|a| SocketAddr::from(std::net::SocketAddrV6::from(*a)))
            })
            .ok_or_else(|| std::io::Error::other("the held socket has no IP address"))?;
        Ok(Self { _socket: fd, addr })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The held address, with its port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
