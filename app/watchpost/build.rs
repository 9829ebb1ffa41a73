//! Embeds the git revision and target triple for the build banner and `watchpost_build_info`.
use std::process::Command;

fn main() {
    let sha = std::env::var("WATCHPOST_GIT_SHA").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
    });
    println!(
        "cargo:rustc-env=WATCHPOST_GIT_SHA={}",
        sha.unwrap_or_else(|| "unknown".into())
    );
    println!(
        "cargo:rustc-env=WATCHPOST_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    println!("cargo:rerun-if-env-changed=WATCHPOST_GIT_SHA");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/refs/heads");
}
