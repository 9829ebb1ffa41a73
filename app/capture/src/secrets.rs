//! Camera credentials at rest: encrypted with ChaCha20-Poly1305 under a per-device key.
//!
//! The key is 32 random bytes in `<data_dir>/secrets/device.key` (mode 0600), created on first
//! use. Credentials set through the API are stored in the worker's store under
//! `credentials/<camera>` as `{username, nonce, ciphertext}` (hex), the ciphertext holding the
//! password and bound to the camera id as associated data. They are never logged, published or
//! returned. The device key and the cipher are `watchpost_runtime::seal`'s, shared with the
//! hub's settings backups.

use std::path::Path;

use serde::{Deserialize, Serialize};
use watchpost_runtime::seal::{self, SealError, Sealer, hex, unhex};

/// Credential errors (never carrying the secret). The device key and the cipher are the
/// runtime's, so their failures are its [`SealError`], wrapped with the camera they were for.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    DeviceKey(#[from] SealError),
    #[error("credentials of camera {camera}: {source}")]
    Seal { camera: String, source: SealError },
    #[error("credentials of camera {camera} are damaged (not a sealed value)")]
    Damaged { camera: String },
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

/// The per-device key and the store it seals into.
#[derive(Clone)]
pub struct CredentialVault {
    sealer: Sealer,
    store: watchpost_store::Store,
}

impl std::fmt::Debug for CredentialVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialVault(***)")
    }
}

/// Reads the device key, creating it if missing (`watchpost_runtime::seal`).
pub fn device_key(data_dir: &Path) -> Result<[u8; 32], SecretError> {
    Ok(seal::device_key(data_dir)?)
}

impl CredentialVault {
    pub fn new(key: [u8; 32], store: watchpost_store::Store) -> Self {
        Self {
            sealer: Sealer::new(key),
            store,
        }
    }

    fn key(camera: &str) -> String {
        format!("credentials/{camera}")
    }

    /// Seals and stores the credentials of `camera`.
    pub fn put(&self, camera: &str, username: &str, password: &str) -> Result<(), SecretError> {
        let (nonce, ciphertext) = self
            .sealer
            .seal_parts(camera, password.as_bytes())
            .map_err(|source| SecretError::Seal {
                camera: camera.into(),
                source,
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
        let bad = || SecretError::Damaged {
            camera: camera.into(),
        };
        let nonce = unhex(&s.nonce).filter(|n| n.len() == 12).ok_or_else(bad)?;
        let ct = unhex(&s.ciphertext).ok_or_else(bad)?;
        let pw = self
            .sealer
            .open_parts(camera, &nonce, &ct)
            .map_err(|source| SecretError::Seal {
                camera: camera.into(),
                source,
            })?;
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
            Err(SecretError::Seal {
                source: SealError::Open { .. },
                ..
            })
        ));
    }
}
