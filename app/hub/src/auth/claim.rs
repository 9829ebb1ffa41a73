//! First-boot claim: the one-time setup code that proves physical access.
//!
//! While the appliance has no user, the hub keeps a setup code in `<data_dir>/setup-code`
//! (mode 0600, kept across restarts until the claim) and prints it in its log (the journal,
//! and the serial console on the image). The first administrator is created with that code, or
//! after a short press of the board's button within [`BUTTON_WINDOW`].

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A button press this recent proves physical access.
pub const BUTTON_WINDOW: Duration = Duration::from_secs(120);

/// Unambiguous characters (no 0/O, 1/I/L).
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789-";

pub fn code_path(data_dir: &Path) -> PathBuf {
    data_dir.join("setup-code")
}

/// Reads the setup code, making one if there is none: eight characters as `XXXX-XXXX`.
pub fn ensure_code(data_dir: &Path) -> std::io::Result<String> {
    let path = code_path(data_dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let code = text.trim().to_string();
        if code.len() == 9 {
            return Ok(code);
        }
    }
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let chars: String = raw
        .iter()
        .map(|b| ALPHABET[usize::from(b % 31)] as char)
        .collect();
    let code = format!("{}-{}", &chars[..4], &chars[4..]);
    std::fs::create_dir_all(data_dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{code}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(code)
}

/// Compares a typed code with the real one, ignoring case, spaces and the dash.
pub fn code_matches(expected: &str, typed: &str) -> bool {
    let norm = |s: &str| -> Vec<u8> {
        s.bytes()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(|b| b.to_ascii_uppercase())
            .collect()
    };
    let (a, b) = (norm(expected), norm(typed));
    // Constant time in the code's length.
    a.len() == b.len() && a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Removes the code once the appliance is claimed.
pub fn remove_code(data_dir: &Path) {
    let _ = std::fs::remove_file(code_path(data_dir));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_kept_until_removed_and_compared_loosely() {
        let dir = std::env::temp_dir().join(format!("wp-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = ensure_code(&dir).unwrap();
        assert_eq!(a.len(), 9);
        assert_eq!(a.as_bytes()[4], b'-');
        assert_eq!(ensure_code(&dir).unwrap(), a);
        assert!(code_matches(&a, &a.to_lowercase().replace('-', " ")));
        assert!(!code_matches(&a, "AAAA-AAAA") || a == "AAAA-AAAA");
        remove_code(&dir);
        assert_ne!(ensure_code(&dir).unwrap(), "");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
