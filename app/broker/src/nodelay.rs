//! TCP_NODELAY on the broker's connections.
//!
//! Bus messages are small and an alarm crosses the broker twice, so Nagle's algorithm (which
//! holds a small segment until the previous one is acknowledged) meeting the peer's delayed ACK
//! costs up to 40 ms per hop. rumqttd binds and accepts on its own and offers no option for
//! its accepted sockets. Linux copies TCP_NODELAY from a listening socket to every socket it
//! accepts, so the worker finds rumqttd's listener among this process's descriptors and sets
//! the option there, once, right after the listener is bound.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{BorrowedFd, RawFd};

use nix::sys::socket::{SockaddrStorage, getsockname, getsockopt, setsockopt, sockopt};

/// Sets TCP_NODELAY on this process's listening socket bound to `addr`. Returns whether such
/// a listener was found.
pub fn set_on_listener(addr: SocketAddr) -> std::io::Result<bool> {
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
        if socket_addr(&local) != Some(addr) {
            continue;
        }
        // SAFETY: `fd` was listed in /proc/self/fd a moment ago and is only borrowed for the
        // two socket-option calls below. If it was closed and reused in between, the calls act
        // on (or fail on) another descriptor of this process: AcceptConn filters out anything
        // but a listening socket, and TCP_NODELAY on a listener is harmless. No ownership is
        // taken, so nothing is closed twice.
        #[allow(unsafe_code)]
        let sock = unsafe { BorrowedFd::borrow_raw(fd) };
        if !getsockopt(&sock, sockopt::AcceptConn).unwrap_or(false) {
            continue;
        }
        setsockopt(&sock, sockopt::TcpNoDelay, &true)?;
        return Ok(true);
    }
    Ok(false)
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
        let (accepted, _) = listener.accept().unwrap();
        assert!(
            !accepted.nodelay().unwrap(),
            "the kernel default is Nagle on"
        );

        assert!(set_on_listener(addr).unwrap());
        let _client = TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }

    #[test]
    fn only_the_listener_on_that_address_is_touched() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        // The client's own address is not a listener; an unbound address matches nothing.
        assert!(!set_on_listener(client.local_addr().unwrap()).unwrap());
        drop(listener);
        assert!(!set_on_listener(addr).unwrap());
    }
}
