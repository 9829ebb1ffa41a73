//! Secrets at rest and in backups: ChaCha20-Poly1305 under the per-device key.
//!
//! The device key is 32 random bytes in `<data_dir>/secrets/device.key` (mode 0600), created
//! by whichever worker needs it first ([`device_key`]; two processes racing to create it end
//! up with the same key). A value is sealed with a fresh 96-bit random nonce and bound to what
//! it belongs to through the associated data (a camera id, a configuration key path), so a
//! sealed value moved to another place does not open. Without the key nothing opens: a
//! backup whose secrets are sealed restores only on the same box, or on one given a copy of
//! its `device.key`.
//!
//! One implementation for every worker: the capture worker's camera credentials and the hub's
//! settings backups use it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

/// The device key's path relative to the data directory.
pub const DEVICE_KEY_FILE: &str = "secrets/device.key";

/// Sealing errors (never carrying the secret).
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("device key {path}: {source}")]
    Key {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("device key {path} has {len} bytes, expected 32")]
    KeyLength { path: PathBuf, len: usize },
    #[error("generating random bytes: {reason}")]
    Random { reason: String },
    #[error("the sealed value of {what} cannot be opened (another device's key, or damaged)")]
    Open { what: String },
}

/// Fills `buf` from the system's random source.
pub fn random(buf: &mut [u8]) -> Result<(), SealError> {
    getrandom::fill(buf).map_err(|e| SealError::Random {
        reason: e.to_string(),
    })
}

/// Reads the device key of `data_dir`, creating it if missing.
pub fn device_key(data_dir: &Path) -> Result<[u8; 32], SealError> {
    let path = data_dir.join(DEVICE_KEY_FILE);
    let kerr = |source| SealError::Key {
        path: path.clone(),
        source,
    };
    let read = |path: &Path| -> Result<[u8; 32], SealError> {
        let bytes = std::fs::read(path).map_err(kerr)?;
        let len = bytes.len();
        bytes.try_into().map_err(|_| SealError::KeyLength {
            path: path.to_path_buf(),
            len,
        })
    };
    match std::fs::metadata(&path) {
        Ok(_) => read(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            random(&mut key)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(kerr)?;
            }
            // Written aside and linked into place: a reader never sees a short key, and of two
            // processes creating it at once, the first link wins and the other reads it.
            let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(kerr)?;
            f.write_all(&key).map_err(kerr)?;
            f.sync_all().map_err(kerr)?;
            drop(f);
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    if let Some(dir) = path.parent()
                        && let Ok(d) = std::fs::File::open(dir)
                    {
                        let _ = d.sync_all();
                    }
                    Ok(key)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
                Err(e) => Err(kerr(e)),
            }
        }
        Err(e) => Err(kerr(e)),
    }
}

/// Seals and opens values with one device key.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(&key.into()),
        }
    }

    /// The sealer of `data_dir`'s device key (created if missing).
    pub fn for_data_dir(data_dir: &Path) -> Result<Self, SealError> {
        device_key(data_dir).map(Self::new)
    }

    /// Seals `secret` bound to `aad`: the nonce and the ciphertext (with its tag).
    pub fn seal_parts(&self, aad: &str, secret: &[u8]) -> Result<([u8; 12], Vec<u8>), SealError> {
        let mut nonce = [0u8; 12];
        random(&mut nonce)?;
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open { what: aad.into() })?;
        Ok((nonce, ct))
    }

    /// Opens what [`Sealer::seal_parts`] sealed under the same `aad`.
    pub fn open_parts(&self, aad: &str, nonce: &[u8], ct: &[u8]) -> Result<Vec<u8>, SealError> {
        if nonce.len() != 12 {
            return Err(SealError::Open { what: aad.into() });
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open { what: aad.into() })
    }

    /// Seals `secret` bound to `aad` as one string: hex of `nonce ‖ ciphertext`.
    pub fn seal(&self, aad: &str, secret: &[u8]) -> Result<String, SealError> {
        let (nonce, ct) = self.seal_parts(aad, secret)?;
        Ok(format!("{}{}", hex(&nonce), hex(&ct)))
    }

    /// Opens what [`Sealer::seal`] sealed under the same `aad`.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = unhex(sealed).ok_or_else(|| SealError::Open { what: aad.into() })?;
        if raw.len() < 12 {
            return Err(SealError::Open { what: aad.into() });
        }
        let (nonce, ct) = raw.split_at(12);
        self.open_parts(aad, nonce, ct)
    }
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes of a hex string; `None` when it is not one.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "wp-seal-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_device_key_is_created_once_and_kept() {
        let dir = tempdir();
        let key = device_key(&dir).unwrap();
        assert_eq!(device_key(&dir).unwrap(), key);
        let meta = std::fs::metadata(dir.join(DEVICE_KEY_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        std::fs::write(dir.join(DEVICE_KEY_FILE), b"short").unwrap();
        assert!(matches!(
            device_key(&dir),
            Err(SealError::KeyLength { len: 5, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sealed_values_open_only_with_the_key_and_their_aad() {
        let s = Sealer::new([1; 32]);
        let sealed = s.seal("bus.password", b"pw-123").unwrap();
        assert!(!sealed.contains("pw-123"));
        assert_eq!(s.open("bus.password", &sealed).unwrap(), b"pw-123");
        assert!(s.open("hub.password", &sealed).is_err());
        assert!(Sealer::new([2; 32]).open("bus.password", &sealed).is_err());
        assert!(s.open("bus.password", "zz").is_err());
        assert_ne!(s.seal("a", b"x").unwrap(), s.seal("a", b"x").unwrap());
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
    }
}
