//! HTTP authentication of the snapshot URIs: Digest (RFC 7616) and Basic (RFC 7617), sans-IO.
//!
//! ONVIF clients fetch `GetSnapshotUri` results with plain HTTP, not SOAP, so the
//! WS-UsernameToken of the SOAP services does not apply. Home Assistant probes Digest first
//! (Python `requests`' `HTTPDigestAuth`) and fetches later snapshots with whichever scheme
//! worked (httpx's `DigestAuth` or `BasicAuth` in onvif-zeep-async), so both are accepted
//! against the same users as RTSP and ONVIF.
//!
//! Digest details:
//! - The challenge offers `algorithm=MD5, qop="auth"` (every client implements it; a second
//!   Digest challenge confuses `requests`, which merges all `WWW-Authenticate` headers into one
//!   line). Responses computed with `MD5`, `MD5-sess`, `SHA-256` or `SHA-256-sess` are all
//!   verified, as is the RFC 2069 form without `qop`.
//! - Nonces are stateless: the issue time, a serial number (two challenges in the same second
//!   differ, so each client's counts start afresh) and a SHA-256 tag over both keyed with a
//!   per-process secret. A nonce older than [`HttpAuth::NONCE_LIFETIME_S`] is answered `stale=true`, so the
//!   client retries with the new nonce without asking the user again.
//! - With `qop`, the nonce count must grow per nonce (replay protection); the memory of counts
//!   is bounded and forgets the oldest nonce first.
//! - The `uri` parameter must be the request target the server saw.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Why a request was refused; every variant is a 401 with a fresh challenge on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpAuthError {
    #[error("no Authorization header")]
    Missing,
    #[error("unsupported authorization scheme `{scheme}`")]
    Scheme { scheme: String },
    #[error("malformed {scheme} credentials: {why}")]
    Malformed { scheme: &'static str, why: String },
    #[error("unknown user `{user}`")]
    UnknownUser { user: String },
    #[error("user `{user}`: wrong password")]
    WrongPassword { user: String },
    #[error("user `{user}`: digest algorithm `{algorithm}` is not supported")]
    Algorithm { user: String, algorithm: String },
    #[error("user `{user}`: digest for realm `{realm}`, not ours")]
    Realm { user: String, realm: String },
    #[error("user `{user}`: digest for `{uri}`, but the request was for `{target}`")]
    Uri {
        user: String,
        uri: String,
        target: String,
    },
    #[error("user `{user}`: the nonce was not issued here")]
    BadNonce { user: String },
    #[error("user `{user}`: the nonce has expired")]
    StaleNonce { user: String },
    #[error("user `{user}`: nonce count {nc} was already used")]
    Replay { user: String, nc: u32 },
}

impl HttpAuthError {
    /// Whether the challenge should say `stale=true` (right password, old nonce).
    pub fn is_stale(&self) -> bool {
        matches!(self, HttpAuthError::StaleNonce { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits `k=v, k="quoted, v"` auth-params (RFC 9110 §11.2); `None` when malformed.
pub fn parse_params(input: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = input.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        if key.is_empty() || key.contains([',', ' ', '"']) {
            return None;
        }
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => v.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            rest = &q[end?..];
            value = v;
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            if value.contains(char::is_whitespace) || value.contains('"') {
                return None;
            }
            rest = &rest[end..];
        }
        out.push((key.to_ascii_lowercase(), value));
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    Some(out)
}

/// Checks `Authorization` headers against a user table and issues challenges.
#[derive(Debug)]
pub struct HttpAuth {
    users: HashMap<String, String>,
    realm: String,
    secret: [u8; 32],
    /// Highest nonce count seen per nonce, oldest nonce first in `order`.
    counts: HashMap<String, u32>,
    order: VecDeque<String>,
    /// Serial number of the next nonce.
    serial: std::sync::atomic::AtomicU64,
}

impl HttpAuth {
    /// How long a nonce is accepted, in seconds.
    pub const NONCE_LIFETIME_S: i64 = 300;
    /// How many nonces' counts are remembered.
    pub const MAX_NONCES: usize = 1024;

    /// `users` maps user name to clear-text password; `secret` keys the nonces (random, per
    /// process).
    pub fn new(users: HashMap<String, String>, realm: impl Into<String>, secret: [u8; 32]) -> Self {
        Self {
            users,
            realm: realm.into(),
            secret,
            counts: HashMap::new(),
            order: VecDeque::new(),
            serial: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn tag(&self, issued: i64, serial: u64) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(issued.to_be_bytes());
        h.update(serial.to_be_bytes());
        let full = h.finalize();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }

    /// A fresh nonce issued at Unix second `now`.
    pub fn nonce(&self, now: i64) -> String {
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut raw = [0u8; 32];
        raw[..8].copy_from_slice(&now.to_be_bytes());
        raw[8..16].copy_from_slice(&serial.to_be_bytes());
        raw[16..].copy_from_slice(&self.tag(now, serial));
        B64URL.encode(raw)
    }

    /// The issue time of a nonce made here, or `None`.
    fn nonce_time(&self, nonce: &str) -> Option<i64> {
        let raw = B64URL.decode(nonce).ok()?;
        if raw.len() != 32 {
            return None;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&raw[..8]);
        let issued = i64::from_be_bytes(word);
        word.copy_from_slice(&raw[8..16]);
        let serial = u64::from_be_bytes(word);
        constant_time_eq(&raw[16..], &self.tag(issued, serial)).then_some(issued)
    }

    /// The `WWW-Authenticate` values of a 401 (Digest first, then Basic).
    pub fn challenges(&self, now: i64, stale: bool) -> Vec<String> {
        let mut digest = format!(
            "Digest realm=\"{}\", qop=\"auth\", algorithm=MD5, nonce=\"{}\"",
            self.realm,
            self.nonce(now)
        );
        if stale {
            digest.push_str(", stale=true");
        }
        vec![digest, format!("Basic realm=\"{}\"", self.realm)]
    }

    /// Checks one request: `method` and `target` (path and query as received) and its
    /// `Authorization` header, at Unix second `now`. Returns the user name.
    pub fn check(
        &mut self,
        method: &str,
        target: &str,
        authorization: Option<&str>,
        now: i64,
    ) -> Result<String, HttpAuthError> {
        let header = authorization.ok_or(HttpAuthError::Missing)?.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            self.basic(rest.trim())
        } else if scheme.eq_ignore_ascii_case("digest") {
            self.digest(method, target, rest, now)
        } else {
            Err(HttpAuthError::Scheme {
                scheme: scheme.chars().take(32).collect(),
            })
        }
    }

    fn basic(&self, token: &str) -> Result<String, HttpAuthError> {
        let malformed = |why: &str| HttpAuthError::Malformed {
            scheme: "Basic",
            why: why.to_string(),
        };
        let decoded = B64.decode(token).map_err(|_| malformed("not base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| malformed("not UTF-8"))?;
        let (user, pass) = text.split_once(':').ok_or_else(|| malformed("no `:`"))?;
        let Some(expected) = self.users.get(user) else {
            return Err(HttpAuthError::UnknownUser { user: user.into() });
        };
        if constant_time_eq(expected.as_bytes(), pass.as_bytes()) {
            Ok(user.to_string())
        } else {
            Err(HttpAuthError::WrongPassword { user: user.into() })
        }
    }

    fn digest(
        &mut self,
        method: &str,
        target: &str,
        params: &str,
        now: i64,
    ) -> Result<String, HttpAuthError> {
        let malformed = |why: String| HttpAuthError::Malformed {
            scheme: "Digest",
            why,
        };
        let params =
            parse_params(params).ok_or_else(|| malformed("unreadable parameters".into()))?;
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let need = |k: &'static str| get(k).ok_or_else(|| malformed(format!("no {k}")));
        let user = need("username")?.to_string();
        let realm = need("realm")?;
        let nonce = need("nonce")?;
        let uri = need("uri")?;
        let response = need("response")?;
        let (algorithm, sess) = match get("algorithm").unwrap_or("MD5") {
            a if a.eq_ignore_ascii_case("MD5") => (Algorithm::Md5, false),
            a if a.eq_ignore_ascii_case("MD5-sess") => (Algorithm::Md5, true),
            a if a.eq_ignore_ascii_case("SHA-256") => (Algorithm::Sha256, false),
            a if a.eq_ignore_ascii_case("SHA-256-sess") => (Algorithm::Sha256, true),
            other => {
                return Err(HttpAuthError::Algorithm {
                    user,
                    algorithm: other.chars().take(32).collect(),
                });
            }
        };
        let Some(password) = self.users.get(&user) else {
            return Err(HttpAuthError::UnknownUser { user });
        };
        if realm != self.realm {
            return Err(HttpAuthError::Realm {
                user,
                realm: realm.chars().take(64).collect(),
            });
        }
        if uri != target {
            return Err(HttpAuthError::Uri {
                user,
                uri: uri.chars().take(256).collect(),
                target: target.to_string(),
            });
        }
        let qop = get("qop");
        let cnonce = get("cnonce");
        let nc_text = get("nc");
        let mut ha1 = algorithm.hex(&format!("{user}:{realm}:{password}"));
        if sess {
            let c = cnonce.ok_or_else(|| malformed("-sess without cnonce".into()))?;
            ha1 = algorithm.hex(&format!("{ha1}:{nonce}:{c}"));
        }
        let ha2 = algorithm.hex(&format!("{method}:{uri}"));
        let (expected, nc) = match qop {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let c = cnonce.ok_or_else(|| malformed("qop without cnonce".into()))?;
                let nc_text = nc_text.ok_or_else(|| malformed("qop without nc".into()))?;
                let nc = u32::from_str_radix(nc_text, 16)
                    .ok()
                    .filter(|_| nc_text.len() == 8)
                    .ok_or_else(|| malformed("nc is not 8 hex digits".into()))?;
                (
                    algorithm.hex(&format!("{ha1}:{nonce}:{nc_text}:{c}:{q}:{ha2}")),
                    Some(nc),
                )
            }
            Some(other) => return Err(malformed(format!("qop {other} is not offered"))),
            None => (algorithm.hex(&format!("{ha1}:{nonce}:{ha2}")), None),
        };
        if !constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        ) {
            // A wrong password and a forged nonce look the same from here; say which.
            return Err(match self.nonce_time(nonce) {
                None => HttpAuthError::BadNonce { user },
                Some(_) => HttpAuthError::WrongPassword { user },
            });
        }
        let issued = self
            .nonce_time(nonce)
            .ok_or_else(|| HttpAuthError::BadNonce { user: user.clone() })?;
        if now - issued > Self::NONCE_LIFETIME_S || issued - now > 5 {
            return Err(HttpAuthError::StaleNonce { user });
        }
        if let Some(nc) = nc {
            match self.counts.get_mut(nonce) {
                Some(seen) if nc <= *seen => return Err(HttpAuthError::Replay { user, nc }),
                Some(seen) => *seen = nc,
                None => {
                    while self.counts.len() >= Self::MAX_NONCES {
                        match self.order.pop_front() {
                            Some(old) => {
                                self.counts.remove(&old);
                            }
                            None => self.counts.clear(),
                        }
                    }
                    self.counts.insert(nonce.to_string(), nc);
                    self.order.push_back(nonce.to_string());
                }
            }
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> HttpAuth {
        HttpAuth::new(
            HashMap::from([("Mufasa".to_string(), "Circle of Life".to_string())]),
            "http-auth@example.org",
            [7; 32],
        )
    }

    /// What a client computes (RFC 7616 §3.4.1), for the tests.
    fn client_response(
        alg: Algorithm,
        nonce: &str,
        uri: &str,
        nc: &str,
        cnonce: &str,
        password: &str,
    ) -> String {
        let ha1 = alg.hex(&format!("Mufasa:http-auth@example.org:{password}"));
        let ha2 = alg.hex(&format!("GET:{uri}"));
        alg.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
    }

    #[test]
    fn rfc7616_example_digests() {
        // RFC 7616 §3.9.1, with its nonce and cnonce.
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let uri = "/dir/index.html";
        assert_eq!(
            client_response(
                Algorithm::Md5,
                nonce,
                uri,
                "00000001",
                cnonce,
                "Circle of Life"
            ),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        assert_eq!(
            client_response(
                Algorithm::Sha256,
                nonce,
                uri,
                "00000001",
                cnonce,
                "Circle of Life"
            ),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    fn header(alg: &str, nonce: &str, uri: &str, nc: &str, response: &str) -> String {
        format!(
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", nonce=\"{nonce}\", \
             uri=\"{uri}\", algorithm={alg}, qop=auth, nc={nc}, cnonce=\"abc\", response=\"{response}\""
        )
    }

    #[test]
    fn digest_accepts_then_refuses_replay_and_stale() {
        let mut a = auth();
        let now = 1_800_000_000;
        let nonce = a.nonce(now);
        let uri = "/onvif/snapshot/dashboard.jpg";
        for (alg, name) in [(Algorithm::Md5, "MD5"), (Algorithm::Sha256, "SHA-256")] {
            let nc = if alg == Algorithm::Md5 {
                "00000001"
            } else {
                "00000002"
            };
            let r = client_response(alg, &nonce, uri, nc, "abc", "Circle of Life");
            assert_eq!(
                a.check(
                    "GET",
                    uri,
                    Some(&header(name, &nonce, uri, nc, &r)),
                    now + 1
                ),
                Ok("Mufasa".to_string())
            );
        }
        // The same count again is a replay.
        let r = client_response(
            Algorithm::Md5,
            &nonce,
            uri,
            "00000001",
            "abc",
            "Circle of Life",
        );
        let h = header("MD5", &nonce, uri, "00000001", &r);
        assert!(matches!(
            a.check("GET", uri, Some(&h), now + 2),
            Err(HttpAuthError::Replay { nc: 1, .. })
        ));
        // A later count with an old nonce is stale (the client retries without asking).
        let r = client_response(
            Algorithm::Md5,
            &nonce,
            uri,
            "00000009",
            "abc",
            "Circle of Life",
        );
        let h = header("MD5", &nonce, uri, "00000009", &r);
        let e = a.check("GET", uri, Some(&h), now + 301).unwrap_err();
        assert!(e.is_stale(), "{e}");
        // Another URI, a wrong password, a nonce made elsewhere.
        let r = client_response(
            Algorithm::Md5,
            &nonce,
            uri,
            "0000000a",
            "abc",
            "Circle of Life",
        );
        assert!(matches!(
            a.check(
                "GET",
                "/other",
                Some(&header("MD5", &nonce, uri, "0000000a", &r)),
                now
            ),
            Err(HttpAuthError::Uri { .. })
        ));
        let r = client_response(Algorithm::Md5, &nonce, uri, "0000000b", "abc", "wrong");
        assert!(matches!(
            a.check(
                "GET",
                uri,
                Some(&header("MD5", &nonce, uri, "0000000b", &r)),
                now
            ),
            Err(HttpAuthError::WrongPassword { .. })
        ));
        let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let r = client_response(
            Algorithm::Md5,
            forged,
            uri,
            "00000001",
            "abc",
            "Circle of Life",
        );
        assert!(matches!(
            a.check(
                "GET",
                uri,
                Some(&header("MD5", forged, uri, "00000001", &r)),
                now
            ),
            Err(HttpAuthError::BadNonce { .. })
        ));
    }

    #[test]
    fn nonces_differ_within_a_second() {
        let a = auth();
        let (n1, n2) = (a.nonce(5), a.nonce(5));
        assert_ne!(n1, n2);
        assert_eq!(a.nonce_time(&n1), Some(5));
        assert_eq!(a.nonce_time(&n2), Some(5));
        assert_eq!(a.nonce_time("AAAA"), None);
    }

    #[test]
    fn basic_and_challenges() {
        let mut a = auth();
        let ok = format!("Basic {}", B64.encode("Mufasa:Circle of Life"));
        assert_eq!(a.check("GET", "/", Some(&ok), 0), Ok("Mufasa".into()));
        let bad = format!("Basic {}", B64.encode("Mufasa:circle of life"));
        assert!(matches!(
            a.check("GET", "/", Some(&bad), 0),
            Err(HttpAuthError::WrongPassword { .. })
        ));
        assert_eq!(a.check("GET", "/", None, 0), Err(HttpAuthError::Missing));
        assert!(matches!(
            a.check("GET", "/", Some("Bearer x"), 0),
            Err(HttpAuthError::Scheme { .. })
        ));
        let c = a.challenges(5, true);
        assert!(c[0].starts_with("Digest ") && c[0].ends_with("stale=true"));
        assert_eq!(c[1], "Basic realm=\"http-auth@example.org\"");
        let params = parse_params(c[0].trim_start_matches("Digest ")).unwrap();
        assert!(params.contains(&("qop".into(), "auth".into())));
        assert!(params.contains(&("algorithm".into(), "MD5".into())));
    }

    #[test]
    fn params_parse() {
        assert_eq!(
            parse_params(r#"a=1, b="x, \"y\"",c=z"#),
            Some(vec![
                ("a".into(), "1".into()),
                ("b".into(), "x, \"y\"".into()),
                ("c".into(), "z".into())
            ])
        );
        assert_eq!(parse_params(r#"a="unterminated"#), None);
        assert_eq!(parse_params("a=1 b=2"), None);
        assert_eq!(parse_params(""), Some(vec![]));
    }
}
