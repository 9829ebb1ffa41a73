//! HTTP Basic authentication against the appliance's users.
//!
//! Passwords are kept only as Argon2id hashes. Verifying Argon2 on every request would cost
//! tens of milliseconds on a small ARM core, so a successful check is remembered for a short
//! time under a SHA-256 digest of the credentials (never the credentials themselves).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use sha2::{Digest, Sha256};
use watchpost_config::{AuthConfig, Role};

const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 256;

/// Why a user could not be loaded from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("hashing the password of user {user}: {message}")]
    Hash { user: String, message: String },
    #[error("the password_hash of user {user} is not a PHC string: {message}")]
    BadHash { user: String, message: String },
}

#[derive(Debug, Clone)]
struct User {
    hash: String,
    role: Role,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

/// The users table and the verification cache.
#[derive(Debug)]
pub struct Authenticator {
    users: HashMap<String, User>,
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl Authenticator {
    /// Loads the users of `[auth]`, hashing plain passwords.
    pub fn from_config(auth: &AuthConfig) -> Result<Self, AuthSetupError> {
        let mut users = HashMap::new();
        for u in &auth.users {
            let name = u.name.as_str().to_string();
            let hash = match (&u.password, &u.password_hash) {
                (Some(pw), _) => {
                    hash_password(pw.expose()).map_err(|message| AuthSetupError::Hash {
                        user: name.clone(),
                        message,
                    })?
                }
                (None, Some(h)) => {
                    PasswordHash::new(h).map_err(|e| AuthSetupError::BadHash {
                        user: name.clone(),
                        message: e.to_string(),
                    })?;
                    h.clone()
                }
                // Config validation rejects a user with neither.
                (None, None) => continue,
            };
            users.insert(name, User { hash, role: u.role });
        }
        Ok(Self {
            users,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Checks an `Authorization` header value.
    pub fn check_header(&self, header: &str) -> Option<Principal> {
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))?;
        let digest: [u8; 32] = Sha256::digest(encoded.trim().as_bytes()).into();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((p, at)) = cache.get(&digest)
                && at.elapsed() < CACHE_TTL
            {
                return Some(p.clone());
            }
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        let principal = self.verify(user, password)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(digest, (principal.clone(), Instant::now()));
        Some(principal)
    }

    /// Verifies a user name and password.
    pub fn verify(&self, user: &str, password: &str) -> Option<Principal> {
        let u = self.users.get(user)?;
        let parsed = PasswordHash::new(&u.hash).ok()?;
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .ok()?;
        Some(Principal {
            user: user.to_string(),
            role: u.role,
        })
    }
}

fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchpost_config::{Secret, UserConfig};

    fn auth() -> Authenticator {
        Authenticator::from_config(&AuthConfig {
            users: vec![UserConfig {
                name: "admin".parse().unwrap(),
                password: Some(Secret::new("demo-admin")),
                password_hash: None,
                role: Role::Admin,
            }],
        })
        .unwrap()
    }

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[test]
    fn accepts_right_and_rejects_wrong_credentials() {
        let a = auth();
        assert_eq!(
            a.check_header(&basic("admin", "demo-admin")).unwrap().user,
            "admin"
        );
        // Cached path gives the same answer.
        assert!(a.check_header(&basic("admin", "demo-admin")).is_some());
        assert!(a.check_header(&basic("admin", "wrong")).is_none());
        assert!(a.check_header(&basic("nobody", "demo-admin")).is_none());
        assert!(a.check_header("Bearer x").is_none());
        assert!(a.check_header("Basic !!!").is_none());
    }
}
