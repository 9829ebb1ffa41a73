//! TCP_NODELAY on the broker's connections.
//!
//! Bus messages are small and an alarm crosses the broker twice, so Nagle's algorithm (which
//! holds a small segment until the previous one is acknowledged) meeting the peer's delayed ACK
//! costs up to 40 ms per hop. rumqttd binds and accepts on its own and offers no option for
//! its accepted sockets. Linux copies TCP_NODELAY from a listening socket to every socket it
//! accepts, so the worker finds rumqttd's listener among this process's descriptors and sets
//! the option there, once, right after the listener is bound. A client that connected in the
//! moment between the bind and that call (a worker reconnecting after a broker restart) has a
//! socket accepted before the option was set: the same call sets it on those too, so no
//! connection keeps Nagle's algorithm for its lifetime.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{BorrowedFd, RawFd};

use nix::sys::socket::{SockaddrStorage, getsockname, getsockopt, setsockopt, sockopt};

/// What [`set_on_listener`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Found {
    /// The listening socket bound to the address.
    pub listener: bool,
    /// Connections it had accepted already.
    pub accepted: usize,
}

/// Sets TCP_NODELAY on this process's listening socket bound to `addr` and on the connections
/// it has accepted so far (sockets whose local end is that address; with an unspecified IP,
/// any local IP on that port).
pub fn set_on_listener(addr: SocketAddr) -> std::io::Result<Found> {
    let mut found = Found::default();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let Ok(local) = getsockname::<SockaddrStorage>(fd) else {
            continue;
        };
        let Some(local) = socket_addr(&local) else {
            continue;
        };
        if local.port() != addr.port() || !(addr.ip().is_unspecified() || local.ip() == addr.ip()) {
            continue;
        }
        // SAFETY: `fd` was listed in /proc/self/fd a moment ago and is only borrowed for the
        // socket-option calls below. If it was closed and reused in between, the calls act on
        // (or fail on) another descriptor of this process; TCP_NODELAY on any TCP socket is
        // harmless, and anything else refuses it. No ownership is taken, so nothing is closed
        // twice.
        #[allow(unsafe_code)]
        let sock = unsafe { BorrowedFd::borrow_raw(fd) };
        let listening = getsockopt(&sock, sockopt::AcceptConn).unwrap_or(false);
        if listening && local != addr {
            continue;
        }
        if setsockopt(&sock, sockopt::TcpNoDelay, &true).is_err() {
            continue;
        }
        if listening {
            found.listener = true;
        } else {
            found.accepted += 1;
        }
    }
    Ok(found)
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    if let Some(v6) = a.as_sockaddr_in6() {
        return Some(SocketAddr::V6(SocketAddrV6::from(*v6)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();

        let _before = TcpStream::connect(addr).unwrap();
        let (early, _) = listener.accept().unwrap();
        assert!(!early.nodelay().unwrap(), "the kernel default is Nagle on");

        // The connection accepted before the call gets it too.
        assert_eq!(
            set_on_listener(addr).unwrap(),
            Found {
                listener: true,
                accepted: 1
            }
        );
        let _client = TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        assert!(early.nodelay().unwrap());
    }

    #[test]
    fn only_that_listener_and_its_connections_are_touched() {
        let ours = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        let (accepted, _) = other.accept().unwrap();
        assert_eq!(
            set_on_listener(ours.local_addr().unwrap()).unwrap(),
            Found {
                listener: true,
                accepted: 0
            }
        );
        assert!(!accepted.nodelay().unwrap());
        assert!(!client.nodelay().unwrap());
        let addr = ours.local_addr().unwrap();
        drop(ours);
        assert_eq!(set_on_listener(addr).unwrap(), Found::default());
    }
}
