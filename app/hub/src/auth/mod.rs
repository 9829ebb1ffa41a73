//! Who is calling: users with roles, browser sessions, API tokens, TOTP, the first-boot claim,
//! login lockout and rate limits, and the guard that enforces the route table.
//!
//! Users live in the hub's settings store (`auth/user/<name>`): an Argon2id hash, a role and,
//! once enrolled, a sealed TOTP secret with hashed recovery codes. `[[auth.users]]` entries of
//! the configuration are created at start when no user of that name exists (the demo and tests
//! use them; an image ships none and is claimed on first boot).
//!
//! Credentials, in the order the guard looks for them: `Authorization: Basic` (existing API
//! clients; refused for users with TOTP), `Authorization: Bearer` (API tokens, stored as
//! SHA-256 digests: they are 256-bit random, so a slow hash adds nothing), the `wp_session`
//! cookie (browser sessions, also stored as digests; state-changing requests need the
//! session's CSRF token). Verifying Argon2 on every Basic request would cost tens of
//! milliseconds on a small ARM core, so a successful check is remembered for a short time
//! under a SHA-256 digest of the header (never the credentials themselves).

pub mod access;
pub mod claim;
pub mod guard;
pub mod limit;
pub mod pages;
pub mod totp;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use watchpost_config::{AuthConfig, Role};
use watchpost_store::{Store, StoreError};

const BASIC_CACHE_TTL: Duration = Duration::from_secs(300);
const BASIC_CACHE_MAX: usize = 256;
const USER_PREFIX: &str = "auth/user/";
const SESSION_PREFIX: &str = "auth/session/";
const TOKEN_PREFIX: &str = "auth/token/";
/// Token `last_used` is written to the store at most this often per token.
const LAST_USED_EVERY_US: u64 = 60_000_000;
pub const SESSION_COOKIE: &str = "wp_session";
pub const MIN_PASSWORD_LEN: usize = 8;

/// Why the user table could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("hashing the password of user {user}: {message}")]
    Hash { user: String, message: String },
    #[error("the password_hash of user {user} is not a PHC string: {message}")]
    BadHash { user: String, message: String },
    #[error("reading the users from the hub store: {0}")]
    Store(#[from] StoreError),
    #[error("the setup code in {path}: {source}")]
    SetupCode {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the device key: {0}")]
    Seal(#[from] watchpost_runtime::seal::SealError),
}

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Basic,
    Token,
    Session,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    pub via: Via,
}

/// The CSRF token of the caller's browser session (pages put it in their forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csrf(pub String);

/// A stored user.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecord {
    hash: String,
    role: Role,
    created_us: u64,
    /// The sealed TOTP secret, once enrollment was confirmed.
    #[serde(default)]
    totp: Option<String>,
    /// A sealed secret waiting for its first code.
    #[serde(default)]
    totp_pending: Option<String>,
    /// SHA-256 (hex) of each unused recovery code.
    #[serde(default)]
    recovery: Vec<String>,
    /// The last TOTP step used, so a code works once.
    #[serde(default)]
    totp_last_step: u64,
}

impl UserRecord {
    fn new(hash: String, role: Role) -> Self {
        Self {
            hash,
            role,
            created_us: now_us(),
            totp: None,
            totp_pending: None,
            recovery: Vec::new(),
            totp_last_step: 0,
        }
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub name: String,
    /// `admin`, `operator` or `viewer`.
    #[schema(value_type = String)]
    pub role: Role,
    pub created_us: u64,
    pub totp: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionRecord {
    user: String,
    csrf: String,
    created_us: u64,
    #[serde(skip, default = "Instant::now")]
    last_seen: Instant,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    id: String,
    name: String,
    owner: String,
    role: Role,
    /// SHA-256 (hex) of the whole token.
    digest: String,
    created_us: u64,
    last_used_us: Option<u64>,
    #[serde(skip)]
    persisted_last_used_us: Option<u64>,
}

/// An API token as the API lists it (never the token itself).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub owner: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub created_us: u64,
    pub last_used_us: Option<u64>,
}

/// A new session: the cookie value (only ever sent to the browser) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub cookie: String,
    pub csrf: String,
    pub principal: Principal,
}

/// Why a login (or a claim) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("wrong user name or password")]
    Invalid,
    #[error("this account needs a one-time code from its authenticator app")]
    TotpRequired,
    #[error("wrong one-time code")]
    TotpInvalid,
    #[error("too many failed attempts; try again in {} s", .0.as_secs().max(1))]
    Locked(Duration),
    #[error("the appliance is already claimed")]
    AlreadyClaimed,
    #[error("wrong setup code, and no button press in the last two minutes")]
    NoProof,
    #[error("{0}")]
    BadInput(String),
    #[error("storing: {0}")]
    Store(String),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Store(e.to_string())
    }
}

/// The users table, sessions, tokens and the limiters.
#[derive(Debug)]
pub struct Authenticator {
    config: AuthConfig,
    store: Store,
    data_dir: PathBuf,
    sealer: watchpost_runtime::seal::Sealer,
    users: RwLock<BTreeMap<String, UserRecord>>,
    sessions: Mutex<HashMap<[u8; 32], SessionRecord>>,
    tokens: Mutex<HashMap<String, TokenRecord>>,
    basic_cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
    setup_code: Mutex<Option<String>>,
    pub logins: limit::LoginLimiter,
    pub rates: limit::RateLimiter,
}

fn now_us() -> u64 {
    watchpost_store::now_us()
}

fn random_b64(len: usize) -> String {
    let mut b = vec![0u8; len];
    // getrandom failing means the kernel has no entropy source: nothing safe can go on.
    getrandom::fill(&mut b).expect("the kernel's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes): ~50 ms on a Cortex-A53.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_hash(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|p| {
        Argon2::default()
            .verify_password(password.as_bytes(), &p)
            .is_ok()
    })
}

/// A user name: 1–32 of `a-z 0-9 _ - .`, starting with a letter.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name {name:?}: 1 to 32 of a-z, 0-9, '_', '-', '.', starting with a letter"
        ))
    }
}

pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!(
            "the password needs at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    if password.len() > 1024 {
        return Err("the password is longer than 1024 bytes".into());
    }
    Ok(())
}

impl Authenticator {
    /// Loads users, sessions and tokens from the store; creates `[[auth.users]]` entries that
    /// do not exist yet; makes the setup code when there is no user.
    pub fn open(
        config: &AuthConfig,
        store: Store,
        data_dir: PathBuf,
    ) -> Result<Self, AuthSetupError> {
        let sealer = watchpost_runtime::seal::Sealer::for_data_dir(&data_dir)?;
        let settings = store.settings();
        let mut users = BTreeMap::new();
        let mut sessions = HashMap::new();
        let mut tokens = HashMap::new();
        for key in settings.keys()? {
            if let Some(name) = key.strip_prefix(USER_PREFIX) {
                if let Some(u) = settings.get::<UserRecord>(&key)? {
                    users.insert(name.to_string(), u);
                }
            } else if let Some(h) = key.strip_prefix(SESSION_PREFIX) {
                let bytes = (0..h.len())
                    .step_by(2)
                    .filter_map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                    .collect::<Vec<u8>>();
                if let (Ok(d), Some(s)) = (
                    <[u8; 32]>::try_from(bytes),
                    settings.get::<SessionRecord>(&key)?,
                ) {
                    sessions.insert(d, s);
                }
            } else if let Some(id) = key.strip_prefix(TOKEN_PREFIX)
                && let Some(mut t) = settings.get::<TokenRecord>(&key)?
            {
                t.persisted_last_used_us = t.last_used_us;
                tokens.insert(id.to_string(), t);
            }
        }
        for u in &config.users {
            let name = u.name.as_str().to_string();
            if users.contains_key(&name) {
                continue;
            }
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
            let rec = UserRecord::new(hash, u.role);
            settings.put(&format!("{USER_PREFIX}{name}"), &rec)?;
            users.insert(name, rec);
        }
        let setup_code = if users.is_empty() {
            let code =
                claim::ensure_code(&data_dir).map_err(|source| AuthSetupError::SetupCode {
                    path: claim::code_path(&data_dir),
                    source,
                })?;
            Some(code)
        } else {
            claim::remove_code(&data_dir);
            None
        };
        let policy = limit::LockoutPolicy {
            max_failures: config.login_max_failures,
            initial: Duration::from_secs(config.lockout_initial_s.into()),
            max: Duration::from_secs(config.lockout_max_s.into()),
        };
        Ok(Self {
            config: config.clone(),
            store,
            data_dir,
            sealer,
            users: RwLock::new(users),
            sessions: Mutex::new(sessions),
            tokens: Mutex::new(tokens),
            basic_cache: Mutex::new(HashMap::new()),
            setup_code: Mutex::new(setup_code),
            logins: limit::LoginLimiter::new(policy),
            rates: limit::RateLimiter::default(),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn user_count(&self) -> usize {
        self.users.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True until the first administrator exists.
    pub fn needs_claim(&self) -> bool {
        self.setup_code
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The setup code while unclaimed.
    pub fn setup_code(&self) -> Option<String> {
        self.setup_code
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn user(&self, name: &str) -> Option<UserRecord> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn save_user(&self, name: &str, rec: UserRecord) -> Result<(), StoreError> {
        self.store
            .settings()
            .put(&format!("{USER_PREFIX}{name}"), &rec)?;
        self.users
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), rec);
        self.forget_basic_cache();
        Ok(())
    }

    fn forget_basic_cache(&self) {
        self.basic_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Creates the first administrator. Proof: the setup code, or `button_pressed_ago` (how
    /// long since the board's button was pressed) within the window. Blocking (Argon2).
    pub fn claim(
        &self,
        code: Option<&str>,
        button_pressed_ago: Option<Duration>,
        user: &str,
        password: &str,
        addr: IpAddr,
    ) -> Result<NewSession, LoginError> {
        let Some(expected) = self.setup_code() else {
            return Err(LoginError::AlreadyClaimed);
        };
        self.logins.check(None, addr).map_err(LoginError::Locked)?;
        let by_code = code.is_some_and(|c| claim::code_matches(&expected, c));
        let by_button = button_pressed_ago.is_some_and(|d| d <= claim::BUTTON_WINDOW);
        if !by_code && !by_button {
            return Err(match self.logins.fail(None, addr) {
                Some(d) => LoginError::Locked(d),
                None => LoginError::NoProof,
            });
        }
        check_user_name(user).map_err(LoginError::BadInput)?;
        check_password(password).map_err(LoginError::BadInput)?;
        let hash = hash_password(password).map_err(LoginError::Store)?;
        {
            // Two browsers claiming at once: the first one wins.
            let mut code = self.setup_code.lock().unwrap_or_else(|p| p.into_inner());
            if code.is_none() {
                return Err(LoginError::AlreadyClaimed);
            }
            self.save_user(user, UserRecord::new(hash, Role::Admin))?;
            *code = None;
        }
        claim::remove_code(&self.data_dir);
        self.new_session(user, Role::Admin)
    }

    /// Checks a password (and the TOTP code when the user has one) and opens a session.
    /// Blocking (Argon2). Counts failures against the user and the address.
    pub fn login(
        &self,
        user: &str,
        password: &str,
        code: Option<&str>,
        addr: IpAddr,
    ) -> Result<NewSession, LoginError> {
        self.logins
            .check(Some(user), addr)
            .map_err(LoginError::Locked)?;
        let fail = |e: LoginError| match self.logins.fail(Some(user), addr) {
            Some(d) => LoginError::Locked(d),
            None => e,
        };
        let Some(rec) = self.user(user) else {
            // Same work as for a real user, so timing tells nothing.
            let _ = verify_hash(DUMMY_HASH, password);
            return Err(fail(LoginError::Invalid));
        };
        if !verify_hash(&rec.hash, password) {
            return Err(fail(LoginError::Invalid));
        }
        if rec.totp.is_some() {
            match code.map(str::trim).filter(|c| !c.is_empty()) {
                None => return Err(LoginError::TotpRequired),
                Some(c) => {
                    if !self.second_factor(user, c)? {
                        return Err(fail(LoginError::TotpInvalid));
                    }
                }
            }
        }
        self.logins.succeed(user);
        self.new_session(user, rec.role)
    }

    /// A TOTP code (once per step) or an unused recovery code.
    fn second_factor(&self, user: &str, code: &str) -> Result<bool, LoginError> {
        let Some(mut rec) = self.user(user) else {
            return Ok(false);
        };
        let Some(sealed) = &rec.totp else {
            return Ok(false);
        };
        let secret = self
            .sealer
            .open(&format!("totp/{user}"), sealed)
            .map_err(|e| LoginError::Store(e.to_string()))?;
        let now_s = now_us() / 1_000_000;
        if let Some(step) = totp::matching_step(&secret, code, now_s) {
            if step <= rec.totp_last_step {
                return Ok(false);
            }
            rec.totp_last_step = step;
            self.save_user(user, rec)?;
            return Ok(true);
        }
        let d = hex(&digest(&code.trim().to_ascii_lowercase()));
        if let Some(i) = rec.recovery.iter().position(|r| *r == d) {
            rec.recovery.remove(i);
            self.save_user(user, rec)?;
            return Ok(true);
        }
        Ok(false)
    }

    fn new_session(&self, user: &str, role: Role) -> Result<NewSession, LoginError> {
        let cookie = random_b64(32);
        let csrf = random_b64(24);
        let rec = SessionRecord {
            user: user.to_string(),
            csrf: csrf.clone(),
            created_us: now_us(),
            last_seen: Instant::now(),
        };
        let d = digest(&cookie);
        self.store
            .settings()
            .put(&format!("{SESSION_PREFIX}{}", hex(&d)), &rec)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.insert(d, rec);
        Ok(NewSession {
            cookie,
            csrf,
            principal: Principal {
                user: user.to_string(),
                role,
                via: Via::Session,
            },
        })
    }

    /// The session a cookie value belongs to, if it is still valid. Refreshes its idle timer.
    pub fn session(&self, cookie: &str) -> Option<(Principal, Csrf)> {
        let d = digest(cookie);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let s = sessions.get_mut(&d)?;
        let idle = Duration::from_secs(u64::from(self.config.session_idle_minutes) * 60);
        let max_us = u64::from(self.config.session_max_hours) * 3_600_000_000;
        let expired =
            s.last_seen.elapsed() > idle || now_us().saturating_sub(s.created_us) > max_us;
        let role = self.user(&s.user).map(|u| u.role);
        match (expired, role) {
            (false, Some(role)) => {
                s.last_seen = Instant::now();
                Some((
                    Principal {
                        user: s.user.clone(),
                        role,
                        via: Via::Session,
                    },
                    Csrf(s.csrf.clone()),
                ))
            }
            _ => {
                sessions.remove(&d);
                drop(sessions);
                let _ = self
                    .store
                    .settings()
                    .remove(&format!("{SESSION_PREFIX}{}", hex(&d)));
                None
            }
        }
    }

    /// Ends a session.
    pub fn logout(&self, cookie: &str) -> Result<(), StoreError> {
        let d = digest(cookie);
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&d);
        self.store
            .settings()
            .remove(&format!("{SESSION_PREFIX}{}", hex(&d)))?;
        Ok(())
    }

    fn end_sessions_of(&self, user: &str) -> Result<(), StoreError> {
        let gone: Vec<[u8; 32]> = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            let gone = sessions
                .iter()
                .filter(|(_, s)| s.user == user)
                .map(|(d, _)| *d)
                .collect::<Vec<_>>();
            for d in &gone {
                sessions.remove(d);
            }
            gone
        };
        let settings = self.store.settings();
        for d in gone {
            settings.remove(&format!("{SESSION_PREFIX}{}", hex(&d)))?;
        }
        Ok(())
    }

    /// Checks an `Authorization` header: `Ok(None)` when it is neither Basic nor Bearer,
    /// `Err` with the reason when the credentials are wrong. Basic may block (Argon2).
    pub fn check_header(&self, header: &str, addr: IpAddr) -> Result<Principal, LoginError> {
        let encoded = match Scheme::of(header) {
            Some(Scheme::Bearer(token)) => return self.check_token(token, addr),
            Some(Scheme::Basic(encoded)) => encoded,
            None => return Err(LoginError::Invalid),
        };
        let d = digest(encoded);
        {
            let cache = self.basic_cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((p, at)) = cache.get(&d)
                && at.elapsed() < BASIC_CACHE_TTL
            {
                return Ok(p.clone());
            }
        }
        let (user, password) = basic_credentials(encoded).ok_or(LoginError::Invalid)?;
        let (user, password) = (user.as_str(), password.as_str());
        self.logins
            .check(Some(user), addr)
            .map_err(LoginError::Locked)?;
        let rec = self.user(user);
        let ok = match &rec {
            Some(r) => verify_hash(&r.hash, password),
            None => {
                let _ = verify_hash(DUMMY_HASH, password);
                false
            }
        };
        let Some(rec) = rec.filter(|_| ok) else {
            return Err(match self.logins.fail(Some(user), addr) {
                Some(d) => LoginError::Locked(d),
                None => LoginError::Invalid,
            });
        };
        if rec.totp.is_some() {
            // Basic cannot carry the second factor: such users use a session or a token.
            return Err(LoginError::TotpRequired);
        }
        self.logins.succeed(user);
        let principal = Principal {
            user: user.to_string(),
            role: rec.role,
            via: Via::Basic,
        };
        let mut cache = self.basic_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= BASIC_CACHE_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < BASIC_CACHE_TTL);
            if cache.len() >= BASIC_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(d, (principal.clone(), Instant::now()));
        Ok(principal)
    }

    /// `wpt_<id>_<secret>`: the id finds the record, the digest of the whole token proves it.
    fn check_token(&self, token: &str, addr: IpAddr) -> Result<Principal, LoginError> {
        self.logins.check(None, addr).map_err(LoginError::Locked)?;
        let id = token
            .strip_prefix("wpt_")
            .and_then(|r| r.split_once('_'))
            .map(|(id, _)| id);
        let d = hex(&digest(token));
        let found = id.and_then(|id| {
            let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            let t = tokens.get_mut(id)?;
            if !constant_eq(t.digest.as_bytes(), d.as_bytes()) {
                return None;
            }
            let now = now_us();
            t.last_used_us = Some(now);
            let persist = t
                .persisted_last_used_us
                .is_none_or(|p| now.saturating_sub(p) > LAST_USED_EVERY_US);
            if persist {
                t.persisted_last_used_us = Some(now);
            }
            Some((t.clone(), persist))
        });
        let Some((t, persist)) = found else {
            return Err(match self.logins.fail(None, addr) {
                Some(d) => LoginError::Locked(d),
                None => LoginError::Invalid,
            });
        };
        // The owner's current role caps the token's (a demoted owner demotes their tokens).
        let Some(owner) = self.user(&t.owner) else {
            return Err(LoginError::Invalid);
        };
        if persist {
            let _ = self
                .store
                .settings()
                .put(&format!("{TOKEN_PREFIX}{}", t.id), &t);
        }
        let role = if owner.role.allows(t.role) {
            t.role
        } else {
            owner.role
        };
        Ok(Principal {
            user: t.owner.clone(),
            role,
            via: Via::Token,
        })
    }

    // --- users -------------------------------------------------------------------------

    pub fn users(&self) -> Vec<UserView> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, u)| UserView {
                name: name.clone(),
                role: u.role,
                created_us: u.created_us,
                totp: u.totp.is_some(),
            })
            .collect()
    }

    /// A user's stored record (password hash, role, sealed second factor) as JSON, for a
    /// backup; the caller seals it.
    pub fn export_user(&self, name: &str) -> Option<String> {
        self.user(name).and_then(|u| serde_json::to_string(&u).ok())
    }

    /// Puts back a user exported by [`Self::export_user`] (replacing one of the same name):
    /// the restore of a backup. Their sessions end.
    pub fn import_user(&self, name: &str, record: &str) -> Result<(), UserError> {
        check_user_name(name).map_err(UserError::Invalid)?;
        let rec: UserRecord = serde_json::from_str(record)
            .map_err(|e| UserError::Invalid(format!("the backup's user {name}: {e}")))?;
        PasswordHash::new(&rec.hash).map_err(|e| {
            UserError::Invalid(format!("the backup's user {name} has no valid hash: {e}"))
        })?;
        self.save_user(name, rec)?;
        self.end_sessions_of(name)?;
        if self.needs_claim() {
            *self.setup_code.lock().unwrap_or_else(|p| p.into_inner()) = None;
            claim::remove_code(&self.data_dir);
        }
        Ok(())
    }

    /// Adds a user. Blocking (Argon2).
    pub fn create_user(&self, name: &str, password: &str, role: Role) -> Result<(), UserError> {
        check_user_name(name).map_err(UserError::Invalid)?;
        check_password(password).map_err(UserError::Invalid)?;
        if self.user(name).is_some() {
            return Err(UserError::Exists(name.into()));
        }
        let hash = hash_password(password).map_err(UserError::Invalid)?;
        self.save_user(name, UserRecord::new(hash, role))?;
        Ok(())
    }

    /// Changes a user's role and/or password (blocking when a password is given). The last
    /// administrator cannot be demoted.
    pub fn update_user(
        &self,
        name: &str,
        role: Option<Role>,
        password: Option<&str>,
    ) -> Result<(), UserError> {
        let mut rec = self
            .user(name)
            .ok_or_else(|| UserError::NotFound(name.into()))?;
        if let Some(r) = role
            && r != Role::Admin
            && rec.role == Role::Admin
            && self.admin_count() <= 1
        {
            return Err(UserError::LastAdmin);
        }
        if let Some(pw) = password {
            check_password(pw).map_err(UserError::Invalid)?;
            rec.hash = hash_password(pw).map_err(UserError::Invalid)?;
        }
        if let Some(r) = role {
            rec.role = r;
        }
        self.save_user(name, rec)?;
        if password.is_some() {
            self.end_sessions_of(name)?;
        }
        Ok(())
    }

    /// Changes one's own password after checking the current one (blocking).
    pub fn change_password(&self, name: &str, current: &str, new: &str) -> Result<(), UserError> {
        let rec = self
            .user(name)
            .ok_or_else(|| UserError::NotFound(name.into()))?;
        if !verify_hash(&rec.hash, current) {
            return Err(UserError::WrongPassword);
        }
        self.update_user(name, None, Some(new))
    }

    fn admin_count(&self) -> usize {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|u| u.role == Role::Admin)
            .count()
    }

    /// Removes a user, their sessions and their tokens. Not the last administrator.
    pub fn delete_user(&self, name: &str) -> Result<(), UserError> {
        let rec = self
            .user(name)
            .ok_or_else(|| UserError::NotFound(name.into()))?;
        if rec.role == Role::Admin && self.admin_count() <= 1 {
            return Err(UserError::LastAdmin);
        }
        self.store
            .settings()
            .remove(&format!("{USER_PREFIX}{name}"))?;
        self.users
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.forget_basic_cache();
        self.end_sessions_of(name)?;
        let ids: Vec<String> = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|t| t.owner == name)
            .map(|t| t.id.clone())
            .collect();
        for id in ids {
            self.revoke_token(&id)?;
        }
        Ok(())
    }

    // --- TOTP ----------------------------------------------------------------------------

    /// Starts TOTP enrollment: a new secret, kept sealed as pending until a code confirms it.
    /// Returns the `otpauth://` URI for the QR code.
    pub fn totp_begin(&self, name: &str) -> Result<String, UserError> {
        let mut rec = self
            .user(name)
            .ok_or_else(|| UserError::NotFound(name.into()))?;
        let mut secret = [0u8; totp::SECRET_LEN];
        getrandom::fill(&mut secret).map_err(|e| UserError::Invalid(e.to_string()))?;
        rec.totp_pending = Some(
            self.sealer
                .seal(&format!("totp/{name}"), &secret)
                .map_err(|e| UserError::Invalid(e.to_string()))?,
        );
        self.save_user(name, rec)?;
        Ok(totp::otpauth_uri("Watchpost", name, &secret))
    }

    /// Confirms enrollment with a first code; returns ten recovery codes (shown once).
    pub fn totp_confirm(&self, name: &str, code: &str) -> Result<Vec<String>, UserError> {
        let mut rec = self
            .user(name)
            .ok_or_else(|| UserError::NotFound(name.into()))?;
        let sealed = rec.totp_pending.clone().ok_or(UserError::NoEnrollment)?;
        let secret = self
            .sealer
            .open(&format!("totp/{name}"), &sealed)
            .map_err(|e| UserError::Invalid(e.to_string()))?;
        let step =
            totp::matching_step(&secret, code, now_us() / 1_000_000).ok_or(UserError::WrongCode)?;
        let codes: Vec<String> = (0..10)
            .map(|_| {
                let mut b = [0u8; 5];
                getrandom::fill(&mut b).expect("the kernel's random source");
                let s = totp::base32(&b).to_ascii_lowercase();
                format!("{}-{}", &s[..4], &s[4..])
            })
            .collect();
        rec.recovery = codes.iter().map(|c| hex(&digest(c))).collect();
        rec.totp = Some(sealed);
        rec.totp_pending = None;
        rec.totp_last_step = step;
        self.save_user(name, rec)?;
        Ok(codes)
    }

    /// Turns the caller's own second factor off after checking their password like a login
    /// (so it cannot be used to guess passwords). Blocking (Argon2).
    pub fn totp_disable_checked(
        &self,
        name: &str,
        password: &str,
        addr: IpAddr,
    ) -> Result<(), UserError> {
        match self.login(name, password, None, addr) {
            Ok(_) | Err(LoginError::TotpRequired) => {}
            Err(LoginError::Invalid) => return Err(UserError::WrongPassword),
            Err(other) => return Err(UserError::Invalid(other.to_string())),
        }
        self.totp_disable(name)
    }

    /// Turns TOTP off for a user.
    pub fn totp_disable(&self, name: &str) -> Result<(), UserError> {
        let mut rec = self
            .user(name)
            .ok_or_else(|| UserError::NotFound(name.into()))?;
        rec.totp = None;
        rec.totp_pending = None;
        rec.recovery.clear();
        self.save_user(name, rec)?;
        Ok(())
    }

    // --- tokens --------------------------------------------------------------------------

    /// Makes an API token for `owner` with at most the owner's role. The token is returned
    /// once and stored only as its digest.
    pub fn create_token(
        &self,
        owner: &str,
        name: &str,
        role: Role,
    ) -> Result<(TokenView, String), UserError> {
        let rec = self
            .user(owner)
            .ok_or_else(|| UserError::NotFound(owner.into()))?;
        if !rec.role.allows(role) {
            return Err(UserError::Invalid(format!(
                "a token cannot have more rights ({}) than its owner ({})",
                role.as_str(),
                rec.role.as_str()
            )));
        }
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(UserError::Invalid(
                "the token's name needs 1 to 64 characters".into(),
            ));
        }
        let mut idb = [0u8; 6];
        getrandom::fill(&mut idb).map_err(|e| UserError::Invalid(e.to_string()))?;
        let id = hex(&idb);
        let token = format!("wpt_{id}_{}", random_b64(32));
        let t = TokenRecord {
            id: id.clone(),
            name: name.to_string(),
            owner: owner.to_string(),
            role,
            digest: hex(&digest(&token)),
            created_us: now_us(),
            last_used_us: None,
            persisted_last_used_us: None,
        };
        self.store
            .settings()
            .put(&format!("{TOKEN_PREFIX}{id}"), &t)?;
        let view = token_view(&t);
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, t);
        Ok((view, token))
    }

    pub fn tokens(&self) -> Vec<TokenView> {
        let mut v: Vec<TokenView> = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(token_view)
            .collect();
        v.sort_by_key(|t| t.created_us);
        v
    }

    /// Revokes a token; false when there was none with that id.
    pub fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let had = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .is_some();
        self.store
            .settings()
            .remove(&format!("{TOKEN_PREFIX}{id}"))?;
        Ok(had)
    }
}

fn token_view(t: &TokenRecord) -> TokenView {
    TokenView {
        id: t.id.clone(),
        name: t.name.clone(),
        owner: t.owner.clone(),
        role: t.role,
        created_us: t.created_us,
        last_used_us: t.last_used_us,
    }
}

/// The scheme of an `Authorization` header and its credentials, trimmed. Pure (no store, no
/// Argon2), so it is fuzzed (`app/hub/fuzz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// `Bearer <token>`: an API token.
    Bearer(&'a str),
    /// `Basic <base64>`: still encoded; [`basic_credentials`] decodes it.
    Basic(&'a str),
}

impl<'a> Scheme<'a> {
    /// `None` when the header is neither Basic nor Bearer.
    pub fn of(header: &'a str) -> Option<Self> {
        if let Some(token) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
        {
            return Some(Scheme::Bearer(token.trim()));
        }
        header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .map(|encoded| Scheme::Basic(encoded.trim()))
    }
}

/// The user and password of Basic credentials (`base64(user:password)`, split at the first
/// colon); `None` when they are not base64 of UTF-8 with a colon.
pub fn basic_credentials(encoded: &str) -> Option<(String, String)> {
    let text = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An Argon2id hash of a random password, verified against when the user does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2tM3kcL7Sfv5hCCQpZ0xIJbUVLM8FFt2S8JOB/WCWq0";

/// Why a change to the user table was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user named {0} exists already")]
    Exists(String),
    #[error("no user named {0}")]
    NotFound(String),
    #[error("the last administrator cannot be removed or demoted")]
    LastAdmin,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("no TOTP enrollment was started")]
    NoEnrollment,
    #[error("wrong one-time code")]
    WrongCode,
    #[error("storing: {0}")]
    Store(#[from] StoreError),
}

/// Marks requests that came through the HTTPS listener (cookies get `Secure`).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;
