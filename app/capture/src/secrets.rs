//! Camera credentials at rest: encrypted with ChaCha20-Poly1305 under a per-device key.
//!
//! The key is 32 random bytes in `<data_dir>/secrets/device.key` (mode 0600), created on first
//! use. Credentials set through the API are stored in the worker's store under
//! `credentials/<camera>` as `{username, nonce, ciphertext}` (hex), the ciphertext holding the
//! password and bound to the camera id as associated data. They are never logged, published or
//! returned.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use serde::{Deserialize, Serialize};

/// Credential errors (never carrying the secret).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("device key {path}: {source}")]
    Key {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("device key {path} has {len} bytes, expected 32")]
    KeyLength { path: PathBuf, len: usize },
    #[error("generating random bytes: {reason}")]
    Random { reason: String },
    #[error("credentials of camera {camera} cannot be decrypted (wrong device key or damaged)")]
    Decrypt { camera: String },
    #[error("credentials of camera {camera}: {source}")]
    Store {
        camera: String,
        source: Box<watchpost_store::StoreError>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sealed {
    username: String,
    nonce: String,
    ciphertext: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The per-device key and the store it seals into.
#[derive(Clone)]
pub struct CredentialVault {
    cipher: ChaCha20Poly1305,
    store: watchpost_store::Store,
}

impl std::fmt::Debug for CredentialVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialVault(***)")
    }
}

fn random(buf: &mut [u8]) -> Result<(), SecretError> {
    getrandom::fill(buf).map_err(|e| SecretError::Random {
        reason: e.to_string(),
    })
}

/// Reads the device key, creating it if missing.
pub fn device_key(data_dir: &Path) -> Result<[u8; 32], SecretError> {
    let path = data_dir.join("secrets").join("device.key");
    let kerr = |source| SecretError::Key {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let len = bytes.len();
            bytes.try_into().map_err(|_| SecretError::KeyLength {
                path: path.clone(),
                len,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            random(&mut key)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(kerr)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(kerr)?;
            f.write_all(&key).map_err(kerr)?;
            f.sync_all().map_err(kerr)?;
            Ok(key)
        }
        Err(e) => Err(kerr(e)),
    }
}

impl CredentialVault {
    pub fn new(key: [u8; 32], store: watchpost_store::Store) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(&key.into()),
            store,
        }
    }

    fn key(camera: &str) -> String {
        format!("credentials/{camera}")
    }

    /// Seals and stores the credentials of `camera`.
    pub fn put(&self, camera: &str, username: &str, password: &str) -> Result<(), SecretError> {
        let mut nonce = [0u8; 12];
        random(&mut nonce)?;
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: password.as_bytes(),
                    aad: camera.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt {
                camera: camera.into(),
            })?;
        let sealed = Sealed {
            username: username.into(),
            nonce: hex(&nonce),
            ciphertext: hex(&ciphertext),
        };
        self.store
            .settings()
            .put(&Self::key(camera), &sealed)
            .map_err(|source| SecretError::Store {
                camera: camera.into(),
                source: Box::new(source),
            })
    }

    /// The stored credentials of `camera`, if any.
    pub fn get(&self, camera: &str) -> Result<Option<(String, String)>, SecretError> {
        let sealed: Option<Sealed> =
            self.store
                .settings()
                .get(&Self::key(camera))
                .map_err(|source| SecretError::Store {
                    camera: camera.into(),
                    source: Box::new(source),
                })?;
        let Some(s) = sealed else { return Ok(None) };
        let bad = || SecretError::Decrypt {
            camera: camera.into(),
        };
        let nonce = unhex(&s.nonce).filter(|n| n.len() == 12).ok_or_else(bad)?;
        let ct = unhex(&s.ciphertext).ok_or_else(bad)?;
        let pw = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: camera.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        let pw = String::from_utf8(pw).map_err(|_| bad())?;
        Ok(Some((s.username, pw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_at_rest_and_bound_to_the_camera() {
        let dir = tempfile::tempdir().unwrap();
        let key = device_key(dir.path()).unwrap();
        assert_eq!(device_key(dir.path()).unwrap(), key);
        let store = watchpost_store::Store::open(dir.path().join("c.redb")).unwrap();
        let vault = CredentialVault::new(key, store.clone());
        vault.put("front", "admin", "s3cret-pw").unwrap();
        assert_eq!(
            vault.get("front").unwrap(),
            Some(("admin".into(), "s3cret-pw".into()))
        );
        assert_eq!(vault.get("back").unwrap(), None);
        drop(vault);
        drop(store);
        let raw = std::fs::read(dir.path().join("c.redb")).unwrap();
        assert!(!raw.windows(9).any(|w| w == b"s3cret-pw"));
        // Another device's key cannot open it.
        let store = watchpost_store::Store::open(dir.path().join("c.redb")).unwrap();
        let other = CredentialVault::new([7; 32], store);
        assert!(matches!(
            other.get("front"),
            Err(SecretError::Decrypt { .. })
        ));
    }
}
