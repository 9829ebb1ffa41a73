//! WS-UsernameToken authentication with replay protection.
//!
//! `PasswordDigest = Base64(SHA1(Base64Decode(Nonce) ‖ Created ‖ Password))`: the nonce goes in
//! as its decoded bytes, `Created` as the exact string from the header. A token is accepted
//! when its `Created` lies within `created_window_s` of the device clock (either side) and its
//! nonce has not been accepted before within that window. Accepted nonces are remembered until
//! their window ends; the cache is bounded, and when it is full the oldest entry makes room.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha1::{Digest as _, Sha1};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::soap::{PasswordType, UsernameToken};

/// How tokens are checked.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Largest accepted difference between `Created` and the device clock, in seconds.
    pub created_window_s: i64,
    /// How many accepted nonces are remembered at most.
    pub nonce_cache_size: usize,
    /// Accept `#PasswordText` tokens (the password in clear on the wire). Off by default.
    pub allow_password_text: bool,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            created_window_s: 300,
            nonce_cache_size: 4096,
            allow_password_text: false,
        }
    }
}

/// Why a token was refused. Every variant becomes the same `ter:NotAuthorized` fault on the
/// wire; the detail is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no UsernameToken in the request")]
    Missing,
    #[error("unknown user `{user}`")]
    UnknownUser { user: String },
    #[error("user `{user}`: wrong password")]
    WrongPassword { user: String },
    #[error("user `{user}`: PasswordText tokens are not accepted")]
    TextNotAllowed { user: String },
    #[error("user `{user}`: digest token without {field}")]
    MissingField { user: String, field: &'static str },
    #[error("user `{user}`: nonce is not base64")]
    BadNonce { user: String },
    #[error("user `{user}`: Created `{created}` is not an RFC 3339 time")]
    BadCreated { user: String, created: String },
    #[error("user `{user}`: Created `{created}` is {skew_s} s away from the device clock")]
    Stale {
        user: String,
        created: String,
        skew_s: i64,
    },
    #[error("user `{user}`: nonce was already used")]
    Replay { user: String },
    #[error("user `{user}` is not an admin")]
    NotAdmin { user: String },
}

/// Computes the PasswordDigest for a decoded nonce.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    B64.encode(h.finalize())
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a `wsu:Created` value (`…Z` or `…+00:00`, fractions allowed) to Unix seconds.
pub fn parse_created(created: &str) -> Option<i64> {
    OffsetDateTime::parse(created.trim(), &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Checks tokens against a user table and remembers nonces.
#[derive(Debug)]
pub struct Authenticator {
    users: HashMap<String, String>,
    policy: AuthPolicy,
    /// Accepted nonces and the Unix second after which they may be forgotten.
    seen: HashMap<Vec<u8>, i64>,
    order: VecDeque<(Vec<u8>, i64)>,
}

impl Authenticator {
    /// `users` maps user name to clear-text password (digests need the password itself).
    pub fn new(users: HashMap<String, String>, policy: AuthPolicy) -> Self {
        Self {
            users,
            policy,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Replaces the user table (nonce memory is kept).
    pub fn set_users(&mut self, users: HashMap<String, String>) {
        self.users = users;
    }

    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// Verifies `token` at Unix time `now`; returns the user name.
    pub fn verify(&mut self, token: Option<&UsernameToken>, now: i64) -> Result<String, AuthError> {
        let token = token.ok_or(AuthError::Missing)?;
        let user = token.username.clone();
        let Some(password) = self.users.get(&user) else {
            return Err(AuthError::UnknownUser { user });
        };
        match token.password_type {
            PasswordType::Text => {
                if !self.policy.allow_password_text {
                    return Err(AuthError::TextNotAllowed { user });
                }
                if constant_time_eq(token.password.as_bytes(), password.as_bytes()) {
                    Ok(user)
                } else {
                    Err(AuthError::WrongPassword { user })
                }
            }
            PasswordType::Digest => {
                let nonce_text = token.nonce.as_deref().ok_or(AuthError::MissingField {
                    user: user.clone(),
                    field: "Nonce",
                })?;
                let created = token.created.as_deref().ok_or(AuthError::MissingField {
                    user: user.clone(),
                    field: "Created",
                })?;
                let nonce = B64
                    .decode(nonce_text.trim())
                    .map_err(|_| AuthError::BadNonce { user: user.clone() })?;
                let created_s = parse_created(created).ok_or_else(|| AuthError::BadCreated {
                    user: user.clone(),
                    created: created.to_string(),
                })?;
                let expected = password_digest(&nonce, created, password);
                if !constant_time_eq(expected.as_bytes(), token.password.trim().as_bytes()) {
                    return Err(AuthError::WrongPassword { user });
                }
                let skew_s = created_s - now;
                if skew_s.abs() > self.policy.created_window_s {
                    return Err(AuthError::Stale {
                        user,
                        created: created.to_string(),
                        skew_s,
                    });
                }
                self.expire(now);
                if self.seen.contains_key(&nonce) {
                    return Err(AuthError::Replay { user });
                }
                self.remember(nonce, created_s.max(now) + self.policy.created_window_s);
                Ok(user)
            }
        }
    }

    fn expire(&mut self, now: i64) {
        // Entries are pushed in roughly increasing expiry order; drop every expired one at
        // the front, then any expired ones the order missed are cleaned on eviction.
        while let Some((_, until)) = self.order.front() {
            if *until >= now {
                break;
            }
            if let Some((nonce, until)) = self.order.pop_front()
                && self.seen.get(&nonce) == Some(&until)
            {
                self.seen.remove(&nonce);
            }
        }
    }

    fn remember(&mut self, nonce: Vec<u8>, until: i64) {
        while self.seen.len() >= self.policy.nonce_cache_size.max(1) {
            match self.order.pop_front() {
                Some((old, old_until)) => {
                    if self.seen.get(&old) == Some(&old_until) {
                        self.seen.remove(&old);
                    }
                }
                None => {
                    self.seen.clear();
                    break;
                }
            }
        }
        self.seen.insert(nonce.clone(), until);
        self.order.push_back((nonce, until));
    }

    /// How many nonces are remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of the ONVIF application programmer's guide.
    const NONCE: &str = "LKqI6G/AikKCQrN0zqZFlg==";
    const CREATED: &str = "2010-09-16T07:50:45Z";
    const PASSWORD: &str = "userpassword";
    const DIGEST: &str = "tuOSpGlFlIXsozq4HFNeeGeFLEI=";

    fn token(nonce: &str, created: &str, digest: &str) -> UsernameToken {
        UsernameToken {
            username: "user".into(),
            password: digest.into(),
            password_type: PasswordType::Digest,
            nonce: Some(nonce.into()),
            created: Some(created.into()),
        }
    }

    fn auth(policy: AuthPolicy) -> Authenticator {
        Authenticator::new(
            HashMap::from([("user".to_string(), PASSWORD.to_string())]),
            policy,
        )
    }

    fn created_s() -> i64 {
        parse_created(CREATED).unwrap()
    }

    #[test]
    fn digest_matches_known_vector() {
        let nonce = B64.decode(NONCE).unwrap();
        assert_eq!(password_digest(&nonce, CREATED, PASSWORD), DIGEST);
        // Hashing the base64 text instead of the decoded bytes gives something else.
        assert_ne!(password_digest(NONCE.as_bytes(), CREATED, PASSWORD), DIGEST);
    }

    #[test]
    fn accepts_then_rejects_replay() {
        let mut a = auth(AuthPolicy::default());
        let t = token(NONCE, CREATED, DIGEST);
        assert_eq!(a.verify(Some(&t), created_s() + 3).unwrap(), "user");
        assert_eq!(
            a.verify(Some(&t), created_s() + 4),
            Err(AuthError::Replay {
                user: "user".into()
            })
        );
    }

    #[test]
    fn rejects_stale_wrong_and_missing() {
        let mut a = auth(AuthPolicy::default());
        let t = token(NONCE, CREATED, DIGEST);
        assert!(matches!(
            a.verify(Some(&t), created_s() + 301),
            Err(AuthError::Stale { skew_s: -301, .. })
        ));
        assert!(matches!(
            a.verify(Some(&t), created_s() - 400),
            Err(AuthError::Stale { .. })
        ));
        let wrong = token(NONCE, CREATED, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(matches!(
            a.verify(Some(&wrong), created_s()),
            Err(AuthError::WrongPassword { .. })
        ));
        assert_eq!(a.verify(None, 0), Err(AuthError::Missing));
        let mut other = t.clone();
        other.username = "nobody".into();
        assert!(matches!(
            a.verify(Some(&other), created_s()),
            Err(AuthError::UnknownUser { .. })
        ));
        let mut text = t.clone();
        text.password_type = PasswordType::Text;
        text.password = PASSWORD.into();
        assert!(matches!(
            a.verify(Some(&text), created_s()),
            Err(AuthError::TextNotAllowed { .. })
        ));
        let mut a2 = auth(AuthPolicy {
            allow_password_text: true,
            ..AuthPolicy::default()
        });
        assert!(a2.verify(Some(&text), created_s()).is_ok());
        let bad = token("***", CREATED, DIGEST);
        assert!(matches!(
            a.verify(Some(&bad), created_s()),
            Err(AuthError::BadNonce { .. })
        ));
    }

    #[test]
    fn offset_timestamps_and_fractions_are_accepted() {
        assert_eq!(
            parse_created("2010-09-16T07:50:45+00:00"),
            Some(created_s())
        );
        assert_eq!(parse_created("2010-09-16T07:50:45.120Z"), Some(created_s()));
        assert_eq!(parse_created("2010-09-16 07:50:45"), None);
    }

    #[test]
    fn nonce_memory_is_bounded_and_expires() {
        let mut a = auth(AuthPolicy {
            nonce_cache_size: 3,
            ..AuthPolicy::default()
        });
        let now = 1_800_000_000;
        let created = OffsetDateTime::from_unix_timestamp(now)
            .unwrap()
            .format(&Rfc3339)
            .unwrap();
        for i in 0u8..5 {
            let nonce = [i; 16];
            let d = password_digest(&nonce, &created, PASSWORD);
            let t = token(&B64.encode(nonce), &created, &d);
            a.verify(Some(&t), now).unwrap();
        }
        assert_eq!(a.remembered(), 3);
        // After the window, a fresh nonce clears the expired ones.
        let later = now + 1000;
        let created2 = OffsetDateTime::from_unix_timestamp(later)
            .unwrap()
            .format(&Rfc3339)
            .unwrap();
        let nonce = [9u8; 16];
        let d = password_digest(&nonce, &created2, PASSWORD);
        a.verify(Some(&token(&B64.encode(nonce), &created2, &d)), later)
            .unwrap();
        assert_eq!(a.remembered(), 1);
    }
}
