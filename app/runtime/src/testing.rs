//! For tests that need a peer from outside the workspace (a tool, a GStreamer element, the test
//! venv): when it is missing, the test is skipped with the reason printed, except under
//! `make test`, which installs and builds every peer and sets `WATCHPOST_REQUIRE_PEERS=1`.
//! There a missing peer is a failure, so a broken install step cannot pass as a green run that
//! tested less. Skips for what the machine cannot offer (a camera device) do not use this.

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
    fn child() {
        if std::env::var_os("WATCHPOST_TESTING_CHILD").is_some() {
            super::missing_peer("frobnicator is not installed");
        }
    }
}
