//! Build identity printed once at start by every binary and exported as a metric.

use serde::Serialize;

/// Version, git revision and target triple of a binary. Binaries fill it from their own
/// build script so that a new commit only relinks the binaries, not every library.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: &'static str,
    pub git_sha: &'static str,
    pub target: &'static str,
}

impl BuildInfo {
    /// Logs the build banner once.
    pub fn log_banner(&self, binary: &str) {
        tracing::info!(
            binary,
            version = self.version,
            git_sha = self.git_sha,
            target = self.target,
            "starting"
        );
    }
}
