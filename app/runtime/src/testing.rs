//! For tests that need a peer from outside the workspace (a tool, a GStreamer element, the test
//! venv): when it is missing, the test is skipped with the reason printed, except under
//! `make test`, which installs and builds every peer and sets `WATCHPOST_REQUIRE_PEERS=1`.
//! There a missing peer is a failure, so a broken install step cannot pass as a green run that
//! tested less. Skips for what the machine cannot offer (a camera device) do not use this.
//!
//! [`HeldPort`] keeps a loopback port for a peer that must be told its port before it listens.

/// Call when the test's peer `what` is missing, then return from the test. Panics under
/// `WATCHPOST_REQUIRE_PEERS=1`; otherwise prints `SKIP: <what>`.
pub fn missing_peer(what: &str) {
    if peers_required() {
        panic!("{what} (WATCHPOST_REQUIRE_PEERS=1: make installs and builds every test peer)");
    }
    eprintln!("SKIP: {what}");
}

fn peers_required() -> bool {
    std::env::var("WATCHPOST_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

pub use crate::net::HeldPort;

#[cfg(test)]
mod tests {
    #[test]
    fn missing_peer_skips_or_fails_by_the_environment() {
        // The variable is set for a child run of this test binary (`child` below), not
        // changed in this process, where other tests run at the same time.
        let exe = std::env::current_exe().unwrap();
        let run = |required: &str| {
            std::process::Command::new(&exe)
                .args(["--exact", "testing::tests::child", "--nocapture"])
                .env("WATCHPOST_REQUIRE_PEERS", required)
                .env("WATCHPOST_TESTING_CHILD", "1")
                .output()
                .unwrap()
        };
        let relaxed = run("0");
        assert!(relaxed.status.success());
        assert!(
            String::from_utf8_lossy(&relaxed.stderr).contains("SKIP: frobnicator is not installed")
        );
        assert!(!run("1").status.success());
    }

    #[test]
    fn a_held_port_refuses_until_a_peer_listens_and_again_after_it_left() {
        use std::net::{TcpListener, TcpStream};
        let held = super::HeldPort::new().unwrap();
        let addr = ("127.0.0.1", held.port());
        assert!(TcpStream::connect(addr).is_err());
        // A peer with SO_REUSEADDR (std and tokio listeners set it) binds and serves it...
        let peer = TcpListener::bind(addr).unwrap();
        assert!(TcpStream::connect(addr).is_ok());
        drop(peer);
        // ...and once it is gone, connections are refused again and it can come back.
        assert!(TcpStream::connect(addr).is_err());
        let again = TcpListener::bind(addr).unwrap();
        assert!(TcpStream::connect(addr).is_ok());
        drop(again);
    }

    #[test]
    fn child() {
        if std::env::var_os("WATCHPOST_TESTING_CHILD").is_some() {
            super::missing_peer("frobnicator is not installed");
        }
    }
}
